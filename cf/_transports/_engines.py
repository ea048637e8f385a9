"""Engines: the httpx transports that move the bytes, built from connection settings.

An engine is any httpx transport. The async default is cf's aiohttp-backed
transport (httpx's own async pool slows down sharply with many requests in
flight), except where aiohttp cannot do what was asked (HTTP/2, SOCKS
proxies), where httpx's own transport is used. The sync default is cf's h11
transport (`_h11.py`: httpx's own parser, a connection never reused after a
response that broke its framing, the deadline on every socket operation);
httpx's own for `engine="httpx"`, HTTP/2, SOCKS and `https://` proxies. cf's
attempt loop wraps the engine.

Also here: TLS contexts built so that nothing the caller passed is mutated,
the proxies httpx reads from the environment (the same rules as httpx), and a
small bounded cache of per-call engines (a call that overrides `verify`,
`cert`, `http2` or `proxy` uses an engine of its own, shared by later calls
with the same settings).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import ssl
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.request import getproxies

import httpx

__all__ = [
    "ASYNC_ENGINES",
    "ENGINE_VARIABLE",
    "SYNC_ENGINES",
    "EngineCache",
    "EngineSettings",
    "async_engine",
    "check_http2",
    "check_proxy",
    "default_engine",
    "environment_proxies",
    "proxy_map",
    "ssl_context",
    "sync_engine",
]

ASYNC_ENGINES = ("aiohttp", "httpx")
SYNC_ENGINES = ("h11", "httpx")
ENGINE_VARIABLE = "CF_HTTP_ENGINE"
"""The environment variable naming the default engine (cf's pytest plugin sets it to
"httpx" when pytest-httpx or respx is installed, so that they see every call)."""
_H2_MISSING = (
    "Using http2=True, but the 'h2' package is not installed. "
    "Make sure to install httpx using `pip install httpx[http2]`."
)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Connection settings of one engine (hashable: the per-call cache key)."""

    engine: str
    verify: ssl.SSLContext | str | bool = True
    cert: str | tuple[str | None, ...] | None = None
    http2: bool = False
    proxy: httpx.Proxy | None = None
    trust_env: bool = True
    limits: httpx.Limits | None = None

    def key(self) -> tuple[Any, ...]:
        proxy = self.proxy
        proxy_key = (
            None
            if proxy is None
            else (str(proxy.url), proxy.auth, tuple(proxy.headers.raw), id(proxy.ssl_context))
        )
        verify = self.verify if not isinstance(self.verify, ssl.SSLContext) else id(self.verify)
        return (self.engine, verify, self.cert, self.http2, proxy_key, self.trust_env)


def default_engine(default: str, allowed: tuple[str, ...]) -> str:
    """The engine when `engine=` is not given: `CF_HTTP_ENGINE` if it names one of this
    mode's engines, else the mode's default."""
    chosen = os.environ.get(ENGINE_VARIABLE, "").strip().lower()
    return chosen if chosen in allowed else default


def check_http2(http2: bool) -> None:
    """httpx's own clear error, at once, when `http2=True` cannot work."""
    if http2 and importlib.util.find_spec("h2") is None:
        raise ImportError(_H2_MISSING)


def ssl_context(
    verify: ssl.SSLContext | str | bool,
    cert: str | tuple[str | None, ...] | None,
    trust_env: bool,
) -> ssl.SSLContext:
    """The TLS context for these settings; never mutates a context the caller passed.

    `verify=True` reads `SSL_CERT_FILE`/`SSL_CERT_DIR` when `trust_env` (as httpx
    does); a path is a CA bundle file or directory. A client `cert` is loaded into
    a context of our own: combined with a caller's `ssl.SSLContext` it is refused
    (load it into your context with `load_cert_chain()`).
    """
    if isinstance(verify, ssl.SSLContext):
        if cert:
            raise ValueError(
                "cert= cannot be combined with verify=<ssl.SSLContext>: cf never changes a "
                "context you pass; call ctx.load_cert_chain(...) on it yourself"
            )
        return verify
    if isinstance(verify, str):
        if os.path.isdir(verify):
            context = ssl.create_default_context(capath=verify)
        else:
            context = ssl.create_default_context(cafile=verify)
    else:
        context = httpx.create_ssl_context(verify=verify, trust_env=trust_env)
    if cert:
        if isinstance(cert, str):
            context.load_cert_chain(cert)
        else:
            context.load_cert_chain(*cert)  # type: ignore[arg-type]
    return context


def _proxy(proxy: Any) -> httpx.Proxy | None:
    if proxy is None or isinstance(proxy, httpx.Proxy):
        return proxy
    if isinstance(proxy, (str, httpx.URL)):
        return httpx.Proxy(url=proxy)
    raise TypeError(
        f"proxy must be a URL string, httpx.URL or httpx.Proxy, not {type(proxy).__name__}"
    )


def check_proxy(proxy: Any) -> httpx.Proxy | None:
    """A proxy as httpx accepts it (ValueError for an unsupported scheme)."""
    try:
        return _proxy(proxy)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid proxy URL: {exc}") from None


def async_engine(settings: EngineSettings) -> httpx.AsyncBaseTransport:
    """The async engine for `settings`."""
    check_http2(settings.http2)
    proxy = settings.proxy
    context = ssl_context(settings.verify, settings.cert, settings.trust_env)
    limits = settings.limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
    socks = proxy is not None and proxy.url.scheme.startswith("socks")
    if settings.engine == "httpx" or settings.http2 or socks:
        return httpx.AsyncHTTPTransport(
            verify=context,
            http2=settings.http2,
            proxy=proxy,
            limits=limits,
            trust_env=settings.trust_env,
        )
    from cf._transports._aiohttp import AiohttpTransport

    return AiohttpTransport(
        verify=context,
        proxy=proxy,
        limits=limits,
        trust_env=settings.trust_env,
    )


def sync_engine(settings: EngineSettings) -> httpx.BaseTransport:
    """The sync engine for `settings`: cf's h11 transport, or httpx's own where asked
    (`engine="httpx"`) or where the h11 one cannot do it (HTTP/2, SOCKS and `https://`
    proxies)."""
    check_http2(settings.http2)
    proxy = settings.proxy
    context = ssl_context(settings.verify, settings.cert, settings.trust_env)
    limits = settings.limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
    if settings.engine == "httpx" or settings.http2 or (proxy and proxy.url.scheme != "http"):
        return httpx.HTTPTransport(
            verify=context,
            http2=settings.http2,
            proxy=proxy,
            limits=limits,
            trust_env=settings.trust_env,
        )
    from cf._transports._h11 import H11Transport

    return H11Transport(verify=context, proxy=proxy, limits=limits, trust_env=settings.trust_env)


# Proxies from the environment: httpx's rules (httpx reads them only when it
# builds its own transports, and cf always gives it one).


def environment_proxies() -> dict[str, str | None]:
    """`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` (any case) as httpx mounts."""
    info = getproxies()
    mounts: dict[str, str | None] = {}
    for scheme in ("http", "https", "all"):
        if info.get(scheme):
            hostname = info[scheme]
            mounts[f"{scheme}://"] = hostname if "://" in hostname else f"http://{hostname}"
    for hostname in (host.strip() for host in info.get("no", "").split(",")):
        if hostname == "*":
            return {}
        if not hostname:
            continue
        if "://" in hostname:
            mounts[hostname] = None
        elif _is_ipv4(hostname):
            mounts[f"all://{hostname}"] = None
        elif _is_ipv6(hostname):
            mounts[f"all://[{hostname}]"] = None
        elif hostname.lower() == "localhost":
            mounts[f"all://{hostname}"] = None
        else:
            mounts[f"all://*{hostname}"] = None
    return mounts


def _is_ipv4(hostname: str) -> bool:
    try:
        ipaddress.IPv4Address(hostname.split("/")[0])
    except ValueError:
        return False
    return True


def _is_ipv6(hostname: str) -> bool:
    try:
        ipaddress.IPv6Address(hostname.split("/")[0])
    except ValueError:
        return False
    return True


def proxy_map(proxy: httpx.Proxy | None, allow_env: bool) -> dict[str, httpx.Proxy | None]:
    """What httpx's client does with `proxy=` and the environment: pattern -> proxy or None."""
    if proxy is not None:
        return {"all://": proxy}
    if not allow_env:
        return {}
    return {
        key: None if url is None else httpx.Proxy(url=url)
        for key, url in environment_proxies().items()
    }


T = TypeVar("T")


class EngineCache(Generic[T]):
    """Per-call engines by settings: at most `size`, least recently used evicted.

    Thread-safe: threads racing on the first use of a setting build one engine.
    An evicted engine is handed back by `get()` so that the caller closes it
    once no call uses it (`release()` returns it then).
    """

    def __init__(self, build: Callable[[EngineSettings], T], size: int = 8) -> None:
        self._build = build
        self._size = size
        self._lock = threading.Lock()
        self._engines: OrderedDict[tuple[Any, ...], tuple[T, EngineSettings]] = OrderedDict()
        self._in_use: dict[int, int] = {}
        self._retired: dict[int, T] = {}

    def acquire(self, settings: EngineSettings) -> tuple[T, list[T]]:
        """The engine for `settings` (marked in use), and engines now safe to close."""
        key = settings.key()
        with self._lock:
            entry = self._engines.get(key)
            if entry is None:
                engine = self._build(settings)
                # The settings are kept with the engine: a caller's SSLContext, keyed
                # by identity, cannot be freed (and its id reused) while cached.
                self._engines[key] = (engine, settings)
            else:
                engine = entry[0]
                self._engines.move_to_end(key)
            self._in_use[id(engine)] = self._in_use.get(id(engine), 0) + 1
            closable = []
            while len(self._engines) > self._size:
                _, (old, _settings) = self._engines.popitem(last=False)
                if self._in_use.get(id(old)):
                    self._retired[id(old)] = old
                else:
                    closable.append(old)
            return engine, closable

    def release(self, engine: T) -> T | None:
        """The call is done with `engine`; returns it when it was evicted and is now idle."""
        with self._lock:
            count = self._in_use.get(id(engine), 0) - 1
            if count > 0:
                self._in_use[id(engine)] = count
                return None
            self._in_use.pop(id(engine), None)
            return self._retired.pop(id(engine), None)

    def drain(self) -> list[T]:
        """Every engine, for closing the client."""
        with self._lock:
            engines = [engine for engine, _ in self._engines.values()]
            engines.extend(self._retired.values())
            self._engines.clear()
            self._retired.clear()
            self._in_use.clear()
            return engines

    def __len__(self) -> int:
        return len(self._engines)
