"""The differential harness: one case, sent through raw httpx and through cf, normalised.

A `Case` is a short script of calls made on one client built from the same
options on both sides. `run_case` runs it through raw httpx and through cf for one
variant and returns both outcomes after `normalise`: equal outcomes are parity.

Variants (`VARIANTS`):
- `async-default`: `httpx.AsyncClient` against `HTTPAio` on its default engine;
- `async-httpx`: `httpx.AsyncClient` against `HTTPAio` on httpx's own engine;
- `sync`: `httpx.Client` against `HTTP`.

Every cf client is built by `cf_client`: the one place that chooses engines.

Servers beyond the wire server (TLS, HTTP/2, nginx, proxies, ...) take part
through `Probe`s: each is reset before a side runs and asked afterwards what its
server saw (handshakes, SNI, client certificates, proxied requests, access-log
lines), which becomes part of that side's outcome.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from cf.infrastructure.http import HTTP
from cf.infrastructure.http_aio import (
    HTTPAio,
    HTTPAioException,
    HTTPAioTimeoutError,
    HTTPAioTransportError,
)
from tests.servers.wire import WireRecord, WireServer

__all__ = [
    "ASYNC_VARIANTS",
    "PROXY_ENV",
    "VARIANTS",
    "VOLATILE_HEADERS",
    "Call",
    "Case",
    "Ctx",
    "Probe",
    "cf_client",
    "cookie_jar",
    "differences",
    "describe_error",
    "normalise",
    "prepare_environment",
    "raw_client",
    "run_case",
]

VARIANTS = ("async-default", "async-httpx", "sync")
# The proxy variables httpx reads (any case): cleared for every case, so that the
# machine's own proxies do not send requests elsewhere.
PROXY_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
ASYNC_VARIANTS = ("async-default", "async-httpx")

# Response headers whose values change from one response to the next: dropped
# (the name stays, so the order and count of headers are still compared).
VOLATILE_HEADERS = frozenset({b"date", b"server"})
# Options that configure a connection pool: given to httpx's transport when cf
# runs on it (today through `transport=`; `engine="httpx"` will replace this).
_ENGINE_OPTIONS = ("verify", "cert", "http2", "trust_env", "proxy", "limits")


# Building an SSL context costs ~25 ms, a third of a case: every server here is plain
# HTTP, so both sides share one (given as `verify=`) unless a case sets `verify`.
_TLS = ssl.create_default_context()


def cf_client(variant: str, **options: Any) -> HTTPAio | HTTP:
    """The cf client for `variant` with `options`: every cf client of the suite comes
    from here, so how an engine is chosen changes in this one place."""
    if variant == "sync":
        return HTTP.create(**options)
    if variant == "async-httpx" and "transport" not in options:
        options["engine"] = "httpx"
    return HTTPAio.create(**options)


def raw_client(variant: str, **options: Any) -> httpx.AsyncClient | httpx.Client:
    """The plain httpx client the cf client of `variant` is compared with."""
    if variant == "sync":
        return httpx.Client(**options)
    return httpx.AsyncClient(**options)


def cookie_jar(client: Any) -> httpx.Cookies:
    """The client's cookie jar (cf: its httpx client's, `client.cookies`)."""
    cookies = client.cookies
    assert isinstance(cookies, httpx.Cookies)
    return cookies


# -- the context a case is built in --------------------------------------------------


class Ctx:
    """What one side's run needs: mode, server URLs, and a log for hooks and auth flows."""

    def __init__(self, variant: str, urls: Mapping[str, str]) -> None:
        self.variant = variant
        self.is_async = variant != "sync"
        self.urls = dict(urls)
        self.log: list[Any] = []

    def url(self, template: str | Callable[[Ctx], str]) -> str:
        return template(self) if callable(template) else template.format(**self.urls)

    def hooks(self) -> dict[str, list[Callable[..., Any]]]:
        """Event hooks (async ones in async mode) that log what they see."""
        log = self.log

        def on_request(request: httpx.Request) -> None:
            log.append(("request hook", request.method, str(request.url)))

        def on_response(response: httpx.Response) -> None:
            log.append(("response hook", response.status_code, str(response.request.url)))

        if not self.is_async:
            return {"request": [on_request], "response": [on_response]}

        async def a_request(request: httpx.Request) -> None:
            on_request(request)

        async def a_response(response: httpx.Response) -> None:
            on_response(response)

        return {"request": [a_request], "response": [a_response]}

    def chunks(self, *parts: bytes, fail: BaseException | None = None) -> Any:
        """A generator body of this mode (async in async mode), optionally failing."""
        return agen(*parts, fail=fail) if self.is_async else gen(*parts, fail=fail)


def gen(*parts: bytes, fail: BaseException | None = None) -> Iterator[bytes]:
    yield from parts
    if fail is not None:
        raise fail


async def agen(*parts: bytes, fail: BaseException | None = None) -> AsyncIterator[bytes]:
    for part in parts:
        yield part
    if fail is not None:
        raise fail


class StepAuth(httpx.Auth):
    """A custom two-step auth flow: `X-Auth: 1`, then `X-Auth: 2` after a 401."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def auth_flow(self, request: httpx.Request) -> Any:
        request.headers["X-Auth"] = "1"
        response = yield request
        self.log.append(("auth flow saw", response.status_code))
        if response.status_code == 401:
            request.headers["X-Auth"] = "2"
            yield request


# -- the case table's vocabulary -----------------------------------------------------

Kwargs = Mapping[str, Any] | Callable[[Ctx], Mapping[str, Any]]


def _resolve(kwargs: Kwargs, ctx: Ctx) -> dict[str, Any]:
    return dict(kwargs(ctx) if callable(kwargs) else kwargs)


@dataclass(frozen=True)
class Call:
    """One request: `url` may name a server as `{a}`, `{b}`, `{app}`, `{httpbin}`,
    `{refused}` (or be a function of the `Ctx`).

    `read`: `content` (the whole body, the default), or `stream` with `iter_bytes`,
    `iter_raw` or `iter_text` (through `client.stream()`). `named`: call
    `client.get(...)` and friends instead of `client.request(method, ...)`.
    `pause`: seconds to wait after it, before the next call.
    """

    method: str
    url: str | Callable[[Ctx], str]
    kwargs: Kwargs = field(default_factory=dict)
    read: str = "content"
    named: bool = False
    pause: float = 0.0


@dataclass(frozen=True)
class Case:
    """Calls made in order on one client built with `client` options on both sides.

    `cf`: options given to cf alone, over `client` (say why in the case), a mapping
    or a function of the `Ctx` as `client` is. `min_elapsed`: compare
    `elapsed` too, which must reach it (when it is None, `elapsed` is not compared).
    `network_stream`: compare whether `response.extensions` has `network_stream`
    (the other extensions are always compared). `limit`: each side must end within
    it (seconds). `xfail`: variant -> reason, for known divergences.

    `elapsed` and `network_stream` are compared only where a case asks, so that
    one known divergence does not hide the others of the same case.
    `hide_modules`: modules that cannot be imported while the case runs. `env`:
    environment variables set while it runs (values may name servers, as URLs do).
    `loop_per_call`: async calls each run by `loop.run_until_complete` on one loop
    that does not run between them (the seed's first example), not in one task.
    `servers`: the servers beyond the default ones that the case names (keys of
    `tests.parity.network.SERVERS`: they start for it and their probes report).
    `warnings`: `filterwarnings` marks for the case (each says why where it is set).
    `errors_alike`: httpx error classes compared as one, where the server's timing
    decides between them (say why in the case).
    """

    calls: tuple[Call, ...]
    client: Kwargs = field(default_factory=dict)
    cf: Kwargs = field(default_factory=dict)
    variants: tuple[str, ...] = VARIANTS
    min_elapsed: float | None = None
    network_stream: bool = False
    hide_modules: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    loop_per_call: bool = False
    limit: float = 10.0
    xfail: Mapping[str, str] = field(default_factory=dict)
    servers: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    errors_alike: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe:
    """A server's side of a case: `reset()` before each side runs, `observe(case)`
    after it, what the server saw (plain data, compared with the other side's)."""

    reset: Callable[[], None]
    observe: Callable[[Case], Any]


def prepare_environment(case: Case, urls: Mapping[str, str], monkeypatch: Any) -> None:
    """The process environment `case` runs in: no proxy variables but the case's own
    `env` (its values may name servers), no `hide_modules`."""
    for module in case.hide_modules:
        monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    for name in PROXY_ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value.format(**urls))


# -- running -------------------------------------------------------------------------


async def _call_async(client: Any, call: Call, ctx: Ctx, case: Case) -> dict[str, Any]:
    url = ctx.url(call.url)
    kwargs = _resolve(call.kwargs, ctx)
    try:
        if call.read != "content":
            async with client.stream(call.method, url, **kwargs) as response:
                parts = [c async for c in getattr(response, "a" + call.read)()]
            body: Any = "".join(parts) if call.read == "iter_text" else b"".join(parts)
        else:
            if call.named:
                response = await getattr(client, call.method.lower())(url, **kwargs)
            else:
                response = await client.request(call.method, url, **kwargs)
            body = response.content
    except Exception as exc:
        return describe_error(exc)
    return describe_response(response, body, case)


def _call_sync(client: Any, call: Call, ctx: Ctx, case: Case) -> dict[str, Any]:
    url = ctx.url(call.url)
    kwargs = _resolve(call.kwargs, ctx)
    try:
        if call.read != "content":
            with client.stream(call.method, url, **kwargs) as response:
                parts = list(getattr(response, call.read)())
            body: Any = "".join(parts) if call.read == "iter_text" else b"".join(parts)
        else:
            if call.named:
                response = getattr(client, call.method.lower())(url, **kwargs)
            else:
                response = client.request(call.method, url, **kwargs)
            body = response.content
    except Exception as exc:
        return describe_error(exc)
    return describe_response(response, body, case)


async def _run_async(client: Any, case: Case, ctx: Ctx) -> dict[str, Any]:
    async with client:
        calls = []
        for call in case.calls:
            calls.append(await _call_async(client, call, ctx, case))
            await asyncio.sleep(call.pause)
        return {"calls": calls, "cookies": _jar(cookie_jar(client)), "log": ctx.log}


def _run_sync(client: Any, case: Case, ctx: Ctx) -> dict[str, Any]:
    with client:
        calls = []
        for call in case.calls:
            calls.append(_call_sync(client, call, ctx, case))
            time.sleep(call.pause)
        return {"calls": calls, "cookies": _jar(cookie_jar(client)), "log": ctx.log}


def _run_loop_per_call(client: Any, case: Case, ctx: Ctx) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    try:
        calls = []
        for call in case.calls:
            # The call is the loop's first task, as in the seed's example: no
            # `wait_for` around it, whose extra task would let the loop handle the
            # server's close before the call reaches the pool (`limit` is checked
            # afterwards, pytest-timeout stops a hang).
            calls.append(loop.run_until_complete(_call_async(client, call, ctx, case)))
            time.sleep(call.pause)  # the loop does not run meanwhile
        cookies = _jar(cookie_jar(client))
        loop.run_until_complete(client.aclose())
        return {"calls": calls, "cookies": cookies, "log": ctx.log}
    finally:
        loop.close()


def _run_side(
    side: str, case: Case, variant: str, urls: Mapping[str, str]
) -> tuple[dict[str, Any], float]:
    """One side (`raw` or `cf`): its outcome and how long it took."""
    ctx = Ctx(variant, urls)
    options = {"verify": _TLS, **_resolve(case.client, ctx)}
    started = time.monotonic()
    try:
        if side == "raw":
            client: Any = raw_client(variant, **options)
        else:
            client = cf_client(variant, **{**options, **_resolve(case.cf, ctx)})
    except Exception as exc:  # the options are refused at creation
        return {"create": describe_error(exc)}, time.monotonic() - started
    if not ctx.is_async:
        outcome = _run_sync(client, case, ctx)
    elif case.loop_per_call:
        outcome = _run_loop_per_call(client, case, ctx)
    else:

        async def main() -> dict[str, Any]:
            try:
                return await asyncio.wait_for(_run_async(client, case, ctx), case.limit)
            except asyncio.TimeoutError:
                return {"hung": f"still running after {case.limit} s"}

        outcome = asyncio.run(main())
    return outcome, time.monotonic() - started


def run_case(
    case: Case,
    variant: str,
    urls: Mapping[str, str],
    wire: WireServer,
    probes: Mapping[str, Probe] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(raw outcome, cf outcome) of `case` in `variant`, normalised: equal means parity.

    Each of `probes` is reset before each side and its observation kept in the
    side's outcome under `seen`."""
    probes = probes or {}
    outcomes = []
    for side in ("raw", "cf"):
        for probe in probes.values():
            probe.reset()
        outcome, seconds = _run_side(side, case, variant, urls)
        outcome["ended within limit"] = seconds <= case.limit
        outcome["connections closed with the client"] = wire.settle()
        outcome["wire"] = _wire(wire.take())
        if probes:
            outcome["seen"] = {name: probe.observe(case) for name, probe in probes.items()}
        if case.errors_alike:
            for described in outcome.get("calls", ()):
                if described.get("error") in case.errors_alike:
                    described["error"] = " or ".join(case.errors_alike)
        outcomes.append(normalise(outcome, urls))
    return outcomes[0], outcomes[1]


def differences(raw: Any, cf: Any, path: str = "") -> list[str]:
    """Where two outcomes differ: one entry per differing path, with both values."""
    if isinstance(raw, dict) and isinstance(cf, dict):
        return [
            line
            for key in dict.fromkeys([*raw, *cf])
            for line in differences(
                raw.get(key, "<missing>"), cf.get(key, "<missing>"), f"{path}.{key}"
            )
        ]
    if isinstance(raw, list) and isinstance(cf, list) and len(raw) == len(cf):
        return [
            line
            for i, (r, c) in enumerate(zip(raw, cf, strict=True))
            for line in differences(r, c, f"{path}[{i}]")
        ]
    return [] if raw == cf else [f"{path or '.'}:\n    httpx {raw!r}\n    cf    {cf!r}"]


# -- describing and normalising ------------------------------------------------------


def describe_request(request: httpx.Request) -> tuple[str, str, list[tuple[bytes, bytes]]]:
    return (request.method, str(request.url), list(request.headers.raw))


def describe_response(response: httpx.Response, body: Any, case: Case) -> dict[str, Any]:
    next_request = response.next_request
    extensions = dict(response.extensions)
    stream = extensions.pop("network_stream", None)
    out = {
        "status": response.status_code,
        "reason": response.reason_phrase,
        "http_version": response.http_version,
        "headers": [
            (k, b"..." if k.lower() in VOLATILE_HEADERS else v) for k, v in response.headers.raw
        ],
        "body": body,
        "history": [(r.status_code, str(r.url)) for r in response.history],
        "next_request": None
        if next_request is None
        else (next_request.method, str(next_request.url), list(next_request.headers.raw)),
        "extensions": {
            k: v if isinstance(v, bytes) else "<present>" for k, v in sorted(extensions.items())
        },
        "request": describe_request(response.request),
    }
    if case.network_stream:
        out["network_stream"] = stream is not None
    if case.min_elapsed is not None:
        try:
            seconds = response.elapsed.total_seconds()
        except Exception as exc:
            out["elapsed"] = f"raised {type(exc).__name__}: {exc}"
        else:
            enough = seconds >= case.min_elapsed
            out["elapsed"] = "ok" if enough else f"{seconds:.3f} s < {case.min_elapsed} s"
    return out


def describe_error(exc: BaseException) -> dict[str, Any]:
    """The httpx exception behind an error (cf's `__cause__`), its kind and its `.request`.

    Raw httpx: the exception itself. cf: its exception's `__cause__` when that is
    an httpx error; anything else (a user's exception, `StreamConsumed`) must come
    out of cf as it is, so it is described as it is.
    """
    if isinstance(exc, HTTPAioException) and isinstance(exc.__cause__, httpx.HTTPError):
        inner: BaseException = exc.__cause__
        if isinstance(exc, HTTPAioTimeoutError):
            kind = "timeout"
        elif isinstance(exc, HTTPAioTransportError):
            kind = "transport"
        else:
            kind = "other httpx error"
    else:
        inner = exc
        if isinstance(exc, httpx.TimeoutException):
            kind = "timeout"
        elif isinstance(exc, httpx.TransportError):
            kind = "transport"
        elif isinstance(exc, httpx.HTTPError):
            kind = "other httpx error"
        else:
            kind = "as it is"
    out: dict[str, Any] = {"error": f"{type(inner).__module__}.{type(inner).__qualname__}"}
    out["kind"] = kind
    if kind == "as it is":  # not httpx's: the message is the user's or httpx's own text
        out["message"] = str(inner)
    if isinstance(inner, httpx.RequestError):
        try:
            out["request"] = describe_request(inner.request)
        except RuntimeError as error:
            out["request"] = f"unset ({error})"
    return out


def _jar(cookies: httpx.Cookies) -> list[tuple[str, str | None, str, str]]:
    return sorted((c.name, c.value, c.domain, c.path) for c in cookies.jar)


def _wire(records: list[WireRecord]) -> list[tuple[str, int, bytes]]:
    """The recorded requests, connections numbered in order of first appearance."""
    numbers: dict[int, int] = {}
    return [
        (r.listener, numbers.setdefault(r.connection, len(numbers)), bytes(r.data)) for r in records
    ]


_ADDRESS = re.compile(r"127\.0\.0\.1:(\d+)")
_BOUNDARY = re.compile(rb"boundary=([0-9a-f]{32})")
# Digest auth: the server's nonce and opaque, the client's cnonce and the response
# computed from them are random on each side.
_DIGEST = re.compile(r'\b(nonce|cnonce|response|opaque)="[^"]*"')


def normalise(value: Any, urls: Mapping[str, str]) -> Any:
    """`value` with what must differ between two runs hidden: each server's
    `127.0.0.1:PORT` becomes `<name>`, multipart boundaries `<boundary>`, Digest
    auth's random parameters `<random>`. Containers are walked. Entries of `urls`
    that are not loopback URLs (file paths) are left alone."""
    ports = {
        m[1]: f"<{name}>" for name, url in urls.items() if (m := _ADDRESS.search(url)) is not None
    }

    def text(s: str) -> str:
        if "Digest " in s:
            s = _DIGEST.sub(r'\1="<random>"', s)
        return _ADDRESS.sub(lambda m: ports.get(m[1], m[0]), s)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return text(v)
        if isinstance(v, bytes):
            for boundary in set(_BOUNDARY.findall(v)):
                v = v.replace(boundary, b"<boundary>")
            return text(v.decode("latin-1")).encode("latin-1")
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(walk(x) for x in v)
        return v

    return walk(value)
