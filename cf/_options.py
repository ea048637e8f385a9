"""Every option of the clients, defined once: name, type, default, scope, meaning, check.

`OPTIONS` is the one table. It drives the option TypedDicts of both modes
(`scripts/gen_options.py` writes `cf/_async/_types.py`, and unasync its sync
twin), the validation below, and the options tables of the README. Options
given at creation are the client's defaults; those of scope "call" may also be
given to a single call, overriding the default for that call. Everything is
checked here, before any I/O: bad values raise `ValueError` or `TypeError`.

Pure: no I/O, shared by both modes.
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from cf._backoff import RetryBudget, RetryPolicy
from cf._trace import TraceInfo

__all__ = [
    "CALL_OPTIONS",
    "CREATION_OPTIONS",
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "ENGINE_OPTIONS",
    "OAUTH_OPTIONS",
    "OPTIONS",
    "REQUEST_OPTIONS",
    "RETRY_OPTIONS",
    "UNSET",
    "Option",
    "check_deadline",
    "check_headers",
    "check_method",
    "check_on_retry",
    "check_timeout",
    "check_trace",
    "check_url",
    "make_policy",
    "pool_limits",
]


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()
"""The "not given" sentinel: the option keeps the client's (or httpx's) default."""

DEFAULT_TIMEOUT = httpx.Timeout(5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

Scope = Literal["call", "creation", "request", "oauth"]


@dataclass(frozen=True, slots=True)
class Option:
    """One option: its name, its async-mode type (source text), default and meaning.

    `scope`: "call" (a creation default that a call may override), "creation"
    (creation only), "request" (a call's own: its body and extensions), "oauth"
    (creation of the OAuth clients). `default` is what the README shows.
    `httpx`: passed on to httpx as it is (after its check).
    """

    name: str
    annotation: str
    default: str
    doc: str
    scope: Scope
    httpx: bool = False
    required: bool = False


OPTIONS: tuple[Option, ...] = (
    # What each attempt and the whole call may take.
    Option(
        "timeout",
        "float | tuple[float | None, ...] | httpx.Timeout | None",
        "5 s",
        "per attempt: seconds, an `httpx.Timeout` (connect, read, write, pool), "
        "or requests' `(connect, read)`",
        "call",
    ),
    Option(
        "deadline", "float | None", "none", "seconds for the whole call: attempts and waits", "call"
    ),
    # Retries: each builds the RetryPolicy (see cf.infrastructure.backoff).
    Option("retries", "int", "2", "further attempts after the first (>= 0)", "call"),
    Option(
        "failure_statuses",
        "Iterable[int]",
        "408, 429, 500, 502, 503, 504",
        "statuses that are failed attempts (raised after the last)",
        "call",
    ),
    Option("backoff_base", "float", "0.1 s", "full-jitter exponential backoff: base", "call"),
    Option("backoff_max", "float", "10 s", "full-jitter exponential backoff: cap", "call"),
    Option("max_retry_after", "float", "30 s", "a longer `Retry-After` raises at once", "call"),
    Option(
        "respect_retry_after",
        "bool",
        "`True`",
        "wait what `Retry-After` asks instead of the computed backoff",
        "call",
    ),
    Option(
        "retry_non_idempotent",
        "bool",
        "`False`",
        "retry POST/PATCH like idempotent methods",
        "call",
    ),
    Option(
        "raise_on_failure_status",
        "bool",
        "`True`",
        "`False`: after the last attempt, return a failure-status response instead of raising",
        "call",
    ),
    Option(
        "retry_policy",
        "RetryPolicy | None",
        "built from the above",
        "a `RetryPolicy` holding all of the above",
        "call",
    ),
    Option(
        "on_retry",
        "Callable[[RetryEvent], object] | None",
        "none",
        "called with a `RetryEvent` before each wait",
        "call",
    ),
    Option(
        "retry_budget",
        "RetryBudget | None",
        "`RetryBudget()`",
        "retries shared by every call of the client; `None` disables it",
        "creation",
    ),
    # Resilience beyond retries.
    Option(
        "circuit_breaker",
        "CircuitBreaker | bool | None",
        "off",
        "a per-origin circuit breaker: `True` or `CircuitBreaker(...)`",
        "creation",
    ),
    Option(
        "on_circuit_change",
        "Callable[[str, str, str], object] | None",
        "none",
        "called with `(origin, old_state, new_state)` on each change",
        "creation",
    ),
    Option(
        "hedge",
        "Hedge | None",
        "off",
        "`Hedge(delay=..., max_extra=1)`: an extra attempt when the first is slow",
        "call",
    ),
    # Tracing.
    Option(
        "trace", "TraceInfo | None", "none", "a `TraceInfo` to propagate on every attempt", "call"
    ),
    # What httpx merges into every request.
    Option(
        "headers",
        "HeaderTypes | None",
        "none",
        "as in httpx; per call they merge (the call wins)",
        "call",
        httpx=True,
    ),
    Option(
        "params",
        "QueryParamTypes | None",
        "none",
        "as in httpx; per call they merge (the call wins)",
        "call",
        httpx=True,
    ),
    Option(
        "cookies",
        "CookieTypes | None",
        "none",
        "as in httpx; per call they merge",
        "call",
        httpx=True,
    ),
    Option(
        "auth",
        "AuthTypes | None",
        "none",
        "as in httpx (`(user, password)`, any `httpx.Auth`)",
        "call",
        httpx=True,
    ),
    Option("base_url", "str | httpx.URL", "none", "relative URLs are joined to it", "call"),
    Option("follow_redirects", "bool", "`False`", "as in httpx", "call", httpx=True),
    # Connections: per call, a second engine with these settings (a bounded cache).
    Option(
        "verify",
        "ssl.SSLContext | str | bool",
        "`True`",
        "verify TLS: `True`, `False`, a CA bundle path or an `ssl.SSLContext`",
        "call",
    ),
    Option(
        "cert",
        "CertTypes | None",
        "none",
        "a client certificate: a path, `(cert, key)` or `(cert, key, password)`",
        "call",
    ),
    Option("http2", "bool", "`False`", "HTTP/2 (needs `h2`; uses httpx's own engine)", "call"),
    Option("proxy", "ProxyTypes | None", "from the environment", "as in httpx", "call"),
    Option(
        "transport",
        "httpx.AsyncBaseTransport | None",
        "the engine",
        "any httpx transport to send the attempts with",
        "call",
    ),
    Option(
        "engine",
        'Literal["aiohttp", "h11", "httpx"]',
        '`"aiohttp"` (async), `"h11"` (sync)',
        'the engine when no `transport=` is given: async `"aiohttp"` or `"httpx"`, sync '
        '`"h11"` or `"httpx"`',
        "creation",
    ),
    Option(
        "trust_env",
        "bool",
        "`True`",
        "read `HTTP(S)_PROXY`, `ALL_PROXY`, `NO_PROXY`, `SSL_CERT_FILE`/`SSL_CERT_DIR`",
        "creation",
        httpx=True,
    ),
    Option(
        "mounts",
        "Mapping[str, httpx.AsyncBaseTransport | None] | None",
        "none",
        "as in httpx; each transport gets cf's attempt loop",
        "creation",
    ),
    Option("limits", "httpx.Limits", "100 connections", "`create_pool(n)` sets n", "creation"),
    Option("max_redirects", "int", "20", "as in httpx", "creation", httpx=True),
    Option(
        "event_hooks",
        "Mapping[str, list[Callable[..., Any]]] | None",
        "none",
        "as in httpx",
        "creation",
        httpx=True,
    ),
    Option(
        "attempt_hooks",
        "Mapping[str, list[Callable[..., Any]]] | None",
        "none",
        'like `event_hooks`, for every attempt: `{"request": [...], "response": [...]}` '
        "(retries, hedges, token requests included)",
        "creation",
    ),
    Option(
        "default_encoding",
        "str | Callable[[bytes], str]",
        '`"utf-8"`',
        "as in httpx",
        "creation",
        httpx=True,
    ),
    # Time and randomness, injected in tests.
    Option(
        "sleep", "Callable[[float], Awaitable[None]] | None", "real", "inject in tests", "creation"
    ),
    Option(
        "clock", "Callable[[], float] | None", "`time.monotonic`", "inject in tests", "creation"
    ),
    Option(
        "random", "Callable[[], float] | None", "`random.random`", "inject in tests", "creation"
    ),
    # A call's body and extensions.
    Option(
        "content", "RequestContent | None", "", "raw body: bytes, str or a byte iterator", "request"
    ),
    Option("data", "Mapping[str, Any] | None", "", "form fields", "request"),
    Option("files", "RequestFiles | None", "", "multipart files", "request"),
    Option("json", "Any | None", "", "a JSON body", "request"),
    Option("extensions", "dict[str, Any] | None", "", "httpx request extensions", "request"),
    # OAuth2 client credentials.
    Option("client_id", "str", "required", "the client's id", "oauth", required=True),
    Option(
        "client_secret",
        "str",
        "required",
        "the client's secret; never in `repr`, logs or errors",
        "oauth",
        required=True,
    ),
    Option(
        "authorize_url",
        "str | httpx.URL",
        "required",
        "the token endpoint; `http://` only for loopback or with `allow_insecure_http`",
        "oauth",
        required=True,
    ),
    Option("scope", "str | Iterable[str] | None", "none", "sent on every token request", "oauth"),
    Option("audience", "str | None", "none", "sent as the form field `audience`", "oauth"),
    Option("extra_params", "Mapping[str, str] | None", "none", "more form fields", "oauth"),
    Option(
        "auth_method",
        'Literal["client_secret_basic", "client_secret_post"]',
        '`"client_secret_basic"`',
        "or `client_secret_post` (credentials in the form body)",
        "oauth",
    ),
    Option(
        "refresh_margin",
        "float",
        "60 s",
        "renew this long before expiry (at most half the lifetime)",
        "oauth",
    ),
    Option(
        "token_store",
        "AsyncTokenStore | None",
        "in memory",
        "where the token lives; share one between clients or processes",
        "oauth",
    ),
    Option(
        "token_origins",
        "Iterable[str] | None",
        "the origin of `base_url`",
        "the only origins the bearer is sent to (`scheme://host[:port]`)",
        "oauth",
    ),
    Option(
        "token_headers",
        "HeaderTypes | None",
        "none",
        "headers added to the token requests (nothing else of the client's goes there)",
        "oauth",
    ),
    Option(
        "allow_insecure_http",
        "bool",
        "`False`",
        "allow `http://` to hosts that are not loopback (token endpoint and bearer)",
        "oauth",
    ),
)

_BY_SCOPE: dict[str, frozenset[str]] = {
    scope: frozenset(o.name for o in OPTIONS if o.scope == scope)
    for scope in ("call", "creation", "request", "oauth")
}
CALL_OPTIONS = _BY_SCOPE["call"]
"""Options a call may override."""
CREATION_OPTIONS = CALL_OPTIONS | _BY_SCOPE["creation"]
"""Options of `create()` / `create_pool()`."""
REQUEST_OPTIONS = CALL_OPTIONS | _BY_SCOPE["request"]
"""Keyword arguments of the request methods."""
OAUTH_OPTIONS = _BY_SCOPE["oauth"]
"""The OAuth settings of `OAuthHTTPAio.create()` / `OAuthHTTP.create()`."""

RETRY_OPTIONS = (
    "retries",
    "failure_statuses",
    "backoff_base",
    "backoff_max",
    "max_retry_after",
    "respect_retry_after",
    "retry_non_idempotent",
    "raise_on_failure_status",
)
"""Keyword options that build a `RetryPolicy`."""
ENGINE_OPTIONS = ("verify", "cert", "http2", "proxy", "transport")
"""Connection options: given to a call, that call uses an engine with these settings."""


def make_policy(base: RetryPolicy | None, given: Mapping[str, Any]) -> RetryPolicy:
    """The policy from `retry_policy=` (or `base`), with plain keyword options applied."""
    policy = given.get("retry_policy", UNSET)
    if policy is UNSET or policy is None:
        policy = base if base is not None else RetryPolicy()
    elif not isinstance(policy, RetryPolicy):
        raise TypeError(f"retry_policy must be a RetryPolicy, not {type(policy).__name__}")
    changes = {k: given[k] for k in RETRY_OPTIONS if given.get(k, UNSET) is not UNSET}
    return policy.replace(**changes) if changes else policy


def check_timeout(timeout: Any) -> httpx.Timeout:
    """Seconds, an `httpx.Timeout`, requests' `(connect, read)` or httpx's 4-tuple; None: none.

    requests' `(connect, read)` bounds writes by `read` and the wait for a
    connection by `connect`, as requests' socket timeouts do.
    """
    if isinstance(timeout, httpx.Timeout):
        for part in (timeout.connect, timeout.read, timeout.write, timeout.pool):
            if part is not None:
                _positive("timeout", part)
        return timeout
    if timeout is None:
        return httpx.Timeout(None)
    if isinstance(timeout, tuple):
        if len(timeout) == 2:
            connect, read = (None if t is None else _positive("timeout", t) for t in timeout)
            return httpx.Timeout(connect=connect, read=read, write=read, pool=connect)
        if len(timeout) == 4:
            parts = [None if t is None else _positive("timeout", t) for t in timeout]
            return httpx.Timeout(connect=parts[0], read=parts[1], write=parts[2], pool=parts[3])
        raise ValueError(
            f"timeout tuple must be (connect, read) or (connect, read, write, pool), "
            f"got {len(timeout)} items"
        )
    return httpx.Timeout(_positive("timeout", timeout))


def check_trace(trace: Any) -> TraceInfo | None:
    if trace is not None and not isinstance(trace, TraceInfo):
        raise TypeError(f"trace must be a TraceInfo, not {type(trace).__name__}")
    return trace


def check_on_retry(on_retry: Any) -> Callable[..., object] | None:
    if on_retry is not None and not callable(on_retry):
        raise TypeError("on_retry must be callable")
    return on_retry  # type: ignore[no-any-return]


def check_budget(budget: Any) -> RetryBudget | None:
    if budget is not None and not isinstance(budget, RetryBudget):
        raise TypeError(f"retry_budget must be a RetryBudget or None, not {type(budget).__name__}")
    return budget


def pool_limits(size: Any) -> httpx.Limits:
    """The connection limits of a pool of `size` (checked)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"pool size must be an int, not {type(size).__name__}")
    if size < 1:
        raise ValueError(f"pool size must be >= 1, got {size}")
    return httpx.Limits(max_connections=size, max_keepalive_connections=size)


def check_deadline(deadline: Any) -> float | None:
    return None if deadline is None else _positive("deadline", deadline)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    return float(value)


def check_attempt_hooks(hooks: Any) -> dict[str, list[Callable[..., Any]]]:
    """`attempt_hooks=`: httpx's event-hooks shape, "request" and "response" lists of callables."""
    result: dict[str, list[Callable[..., Any]]] = {"request": [], "response": []}
    if hooks is None:
        return result
    if not isinstance(hooks, Mapping):
        raise TypeError("attempt_hooks must be a mapping of 'request'/'response' to callables")
    for name, functions in hooks.items():
        if name not in result:
            raise ValueError(f"attempt_hooks: unknown hook {name!r} (use 'request' or 'response')")
        for function in functions:
            if not callable(function):
                raise TypeError(f"attempt_hooks[{name!r}] must hold callables")
        result[name] = list(functions)
    return result


def check_hedge(hedge: Any) -> Any:
    """`hedge=`: a `Hedge` or None."""
    from cf._hedge import coerce_hedge

    return coerce_hedge(hedge)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def check_callable(name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable, not {type(value).__name__}")
    return value


def check_verify(verify: Any) -> ssl.SSLContext | str | bool:
    if not isinstance(verify, (ssl.SSLContext, str, bool)):
        raise TypeError(
            f"verify must be a bool, a CA bundle path or an ssl.SSLContext, "
            f"not {type(verify).__name__}"
        )
    return verify


def check_cert(cert: Any) -> str | tuple[str, ...] | None:
    """A certificate path, `(cert, key)` or `(cert, key, password)`, normalised to a tuple
    of str (so that two equal lists are one engine, never two by identity)."""
    if cert is None:
        return None
    if isinstance(cert, str):
        return cert
    if isinstance(cert, (tuple, list)) and 1 <= len(cert) <= 3:
        items = tuple(cert)
        if all(isinstance(item, str) or item is None for item in items) and isinstance(
            items[0], str
        ):
            return items
    raise TypeError("cert must be a path, (cert, key) or (cert, key, password) of str")


def check_engine(engine: Any, allowed: tuple[str, ...]) -> str:
    if engine not in allowed:
        raise ValueError(f"engine must be one of {', '.join(map(repr, allowed))}, got {engine!r}")
    return str(engine)


def check_headers(headers: Any) -> httpx.Headers | None:
    """Headers as httpx accepts them, refusing values that would split a request."""
    if headers is None:
        return None
    try:
        result = httpx.Headers(headers)
    except (TypeError, ValueError, AttributeError) as exc:
        raise TypeError(f"invalid headers: {exc}") from None
    for name, value in result.raw:
        if not name or any(c in name for c in b" \t\r\n:") or b"\r" in value or b"\n" in value:
            raise ValueError(f"invalid header {name.decode('latin-1')!r}")
    return result


# RFC 9110 5.6.2: token = 1*tchar
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE"})


def check_method(method: Any) -> str:
    """An HTTP method token (extension methods such as `VERSION-CONTROL` included),
    upper-cased as httpx does."""
    if method in _METHODS:
        return str(method)
    if isinstance(method, bytes):
        method = method.decode("ascii", "replace")
    if not isinstance(method, str) or not method or not set(method) <= _TCHAR:
        raise ValueError(f"invalid HTTP method {method!r}")
    return method.upper()


def check_url(url: httpx.URL | str, base_url: httpx.URL | None = None) -> httpx.URL:
    """An absolute http(s) URL, or ValueError (httpx's InvalidURL included)."""
    try:
        parsed = httpx.URL(url)
        if base_url is not None and base_url.raw_host:
            parsed = _merge_url(base_url, parsed)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"invalid URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"invalid URL {str(url)!r}: scheme must be http or https")
    if not parsed.host:
        raise ValueError(f"invalid URL {str(url)!r}: no host")
    return parsed


def check_base_url(url: Any) -> httpx.URL:
    """A base URL as httpx keeps it: absolute, with a trailing slash on its path."""
    parsed = check_url(url)
    if not parsed.raw_path.endswith(b"/"):
        parsed = parsed.copy_with(raw_path=parsed.raw_path + b"/")
    return parsed


def _merge_url(base: httpx.URL, url: httpx.URL) -> httpx.URL:
    # The same rule as httpx's client: relative paths append to base_url.
    if url.is_relative_url:
        merge_raw_path = base.raw_path + url.raw_path.lstrip(b"/")
        return base.copy_with(raw_path=merge_raw_path)
    return url


def check_origins(origins: Any) -> frozenset[str] | None:
    """`scheme://host[:port]` strings, normalised with the default port made explicit."""
    if origins is None:
        return None
    if isinstance(origins, (str, bytes)) or not isinstance(origins, Iterable):
        raise TypeError("token_origins must be an iterable of 'scheme://host[:port]' strings")
    result = set()
    for item in origins:
        result.add(origin_of(check_url(item)))
    return frozenset(result)


def origin_of(url: httpx.URL) -> str:
    """`scheme://host:port` with the default port made explicit."""
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.host if ":" not in url.host else f"[{url.host}]"
    return f"{url.scheme}://{host}:{port}"
