"""The table of parity cases: each runs in every variant of `harness.VARIANTS` it names.

Servers: `{a}` and `{b}` are the wire server's two origins (`tests/servers/wire.py`
lists its paths), `{app}` the uvicorn app, `{httpbin}` pytest-httpbin's httpbin,
`{refused}` a port where nothing listens. Options given to cf alone (`cf=`) are
there because cf adds retries; each names why. Known divergences of cf are
`xfail` (strict) with the reason, one constant per divergence below.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import httpx

from .harness import ASYNC_VARIANTS, VARIANTS, Call, Case, Ctx, StepAuth, agen, gen

__all__ = ["CASES", "UserError"]

# cf retries failure statuses and raises HTTPAioStatusError for them: off, to compare.
NO_STATUS_RETRY = {"failure_statuses": ()}
# cf retries transport errors and timeouts: off, to compare one attempt with one.
NO_RETRY = {"retries": 0}
SHORT_READ = httpx.Timeout(5.0, read=0.1)
SLOW = 0.1  # seconds a slow body takes: `elapsed` must cover them

# Variants, for cases that run in some only.
DEFAULT, ON_HTTPX, SYNC = "async-default", "async-httpx", "sync"

# Deliberate differences, listed in the README's "Differences from httpx" table.
DIFFERENCE_CONSUMED_HEAD = (
    "README, Differences from httpx: a streamed body that cannot be read again (a 307) "
    "raises httpx.StreamConsumed before aiohttp sends the request head; httpx sends the "
    "head first"
)


class UserError(Exception):
    """Raised by a user's body generator: httpx lets it through as it is."""


def case(
    name: str, *calls: Call, xfail: dict[str, str] | None = None, **fields: Any
) -> tuple[str, Case]:
    return name, Case(calls, xfail=xfail or {}, **fields)


def on(reason: str, *variants: str) -> dict[str, str]:
    """`xfail=` for these variants (all when none is named)."""
    return dict.fromkeys(variants or VARIANTS, reason)


def call(method: str, url: str, read: str = "content", **kwargs: Any) -> Call:
    return Call(method, url, kwargs, read=read)


def get(url: str, **kwargs: Any) -> Call:
    return Call("GET", url, kwargs)


def follow(method: str, url: str, **kwargs: Any) -> Call:
    return Call(method, url, {"follow_redirects": True, **kwargs})


def _userinfo(ctx: Ctx) -> str:
    return ctx.urls["a"].replace("http://", "http://us%40r:p%C3%A4ss@") + "/ok"


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


_CODINGS = ("gzip", "deflate") + (("br",) if _has("brotli") or _has("brotlicffi") else ())
_CODINGS += ("zstd",) if _has("zstandard") else ()

CASES: list[tuple[str, Case]] = [
    # -- methods ----------------------------------------------------------------------
    *[
        case(f"method-{m.lower()}", Call(m, "{a}/ok", named=True))
        for m in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    ],
    case("method-extension", call("VERSION-CONTROL", "{a}/ok")),
    # -- URLs and params --------------------------------------------------------------
    case(
        "params-merged",
        get("{a}/ok?z=0", params={"a": "1", "b": ["x", "y"], "é": "ü"}),
        client={"params": {"c": "3", "a": "client"}},
    ),
    case("base-url", get("ok?q=1"), client=lambda ctx: {"base_url": ctx.urls["a"] + "/"}),
    # -- request bodies -----------------------------------------------------------------
    case("body-json", call("POST", "{a}/ok", json={"k": [1, "é", None]})),
    case("body-form", call("POST", "{a}/ok", data={"a": "1", "b": ["2", "3 4"]})),
    case(
        "body-multipart",
        call(
            "POST",
            "{a}/ok",
            data={"field": "v"},
            files={"f": ("a.txt", b"abc", "text/plain"), "g": b"\x00\xff"},
        ),
    ),
    case("body-bytes", call("PUT", "{a}/ok", content=b"\x00\xffraw")),
    case("body-text", call("PUT", "{a}/ok", content="text é")),
    case("body-empty-post", call("POST", "{a}/ok")),
    case("body-generator", Call("POST", "{a}/ok", lambda c: {"content": c.chunks(b"1", b"22")})),
    case(
        "body-generator-raises",
        Call("POST", "{a}/ok", lambda c: {"content": c.chunks(b"one", fail=UserError("mine"))}),
        cf=NO_RETRY,
    ),
    case(
        "body-sync-generator-to-async-client",
        Call("POST", "{a}/ok", lambda c: {"content": gen(b"one")}),
        variants=ASYNC_VARIANTS,
    ),
    case(
        "body-async-generator-to-sync-client",
        Call("POST", "{a}/ok", lambda c: {"content": agen(b"one")}),
        variants=(SYNC,),
    ),
    # -- responses ------------------------------------------------------------------------
    case("response-odd-headers", get("{a}/odd-headers")),
    case("response-empty-reason", get("{a}/no-reason")),
    case("response-no-reason", get("{a}/no-reason?space=0")),
    case("response-unknown-status", get("{a}/status?code=299")),
    case("response-custom-reason", get("{a}/status?code=200&reason=Just%20Fine")),
    case("response-http10", get("{a}/http10"), get("{a}/ok")),
    case("response-chunked-trailers", get("{a}/chunked?trailers=1"), get("{a}/ok")),
    case("response-204", get("{a}/status?code=204"), get("{a}/ok")),
    case("response-304", get("{a}/status?code=304"), get("{a}/ok")),
    case("response-404", get("{a}/nowhere")),
    *[
        case(f"response-{code}", get(f"{{a}}/status?code={code}"), cf=NO_STATUS_RETRY)
        for code in (408, 429, 500, 502, 503, 504)
    ],
    case("response-head-chunked", call("HEAD", "{a}/chunked"), get("{a}/ok")),
    case("response-huge-header", get("{a}/huge?size=20000")),
    case("response-app-echo", call("POST", "{app}/echo?x=1", json={"a": 1})),
    case("httpbin-get", get("{httpbin}/get?a=1&a=2", headers={"X-A": "1"})),
    case("httpbin-post-multipart", call("POST", "{httpbin}/post", files={"f": b"abc"})),
    case("httpbin-status-503", get("{httpbin}/status/503"), cf=NO_STATUS_RETRY),
    # -- compression --------------------------------------------------------------------
    *[case(f"compressed-{coding}", get(f"{{a}}/encoded?coding={coding}")) for coding in _CODINGS],
    case("compressed-gzip-chunked", get("{a}/encoded?coding=gzip&chunked=1")),
    case("compressed-httpbin-gzip", get("{httpbin}/gzip")),
    # -- streaming ----------------------------------------------------------------------
    case("stream-iter-bytes", call("GET", "{a}/chunked?trailers=1", read="iter_bytes")),
    case("stream-iter-raw-gzip", call("GET", "{a}/encoded?coding=gzip", read="iter_raw")),
    case("stream-iter-text", call("GET", "{a}/ok?body=h%C3%A9", read="iter_text")),
    case("stream-app-big", call("GET", "{app}/bytes?n=300000&chunked=1", read="iter_bytes")),
    # -- redirects ----------------------------------------------------------------------
    *[
        case(
            f"redirect-{status}-post{'-with-body' if body else ''}",
            follow(
                "POST",
                f"{{a}}/redirect?status={status}&to=/ok{'&body=1' if body else ''}",
                content=b"payload",
            ),
        )
        for status in (301, 302, 303, 307, 308)
        for body in (False, True)
    ],
    *[
        case(
            f"redirect-{status}-{method.lower()}",
            follow(method, f"{{a}}/redirect?status={status}&to=/ok"),
        )
        for status, method in ((302, "GET"), (303, "GET"), (307, "DELETE"), (301, "HEAD"))
    ],
    case(
        "redirect-cross-origin-strips-authorization",
        follow("GET", "{a}/redirect?status=302&to=b:/ok", headers={"Authorization": "t", "X": "1"}),
    ),
    case(
        "redirect-cross-origin-basic-auth",
        follow("GET", "{a}/redirect?status=307&to=b:/ok", auth=("u", "p")),
    ),
    case(
        "redirect-same-origin-keeps-authorization",
        follow("GET", "{a}/redirect?status=302&to=/ok", headers={"Authorization": "t"}),
    ),
    case(
        "redirect-chain-cross-origin",
        follow("GET", "{a}/redirect?status=301&to=b:/redirect%3Fstatus%3D302%26to%3D/ok"),
    ),
    case(
        "redirect-loop",
        follow("GET", "{a}/loop"),
        client={"max_redirects": 3},
    ),
    case("redirect-not-followed", get("{a}/redirect?status=302&to=/ok")),
    case(
        "redirect-not-followed-307-post",
        call("POST", "{a}/redirect?status=307&to=b:/ok", content=b"x"),
    ),
    case(
        "redirect-307-streamed-body",
        Call(
            "POST",
            "{a}/redirect?status=307&to=/ok",
            lambda c: {"content": c.chunks(b"a", b"b"), "follow_redirects": True},
        ),
        cf=NO_RETRY,
        xfail=on(DIFFERENCE_CONSUMED_HEAD, DEFAULT),
    ),
    case(
        "redirect-app",
        follow("GET", "{app}/redirect?to=/echo&status=303"),
    ),
    # -- cookies ------------------------------------------------------------------------
    case("cookies-set-and-sent-back", get("{a}/cookies"), get("{a}/ok")),
    case("cookies-client-default", get("{a}/ok"), get("{b}/ok"), client={"cookies": {"p": "1"}}),
    case(
        "cookies-httpbin-redirect",
        follow("GET", "{httpbin}/cookies/set?k=v"),
    ),
    # -- auth -----------------------------------------------------------------------------
    case("auth-basic", get("{a}/ok", auth=("u", "p"))),
    case("auth-basic-client", get("{a}/ok"), client={"auth": ("ü", "p:")}),
    case("auth-url-userinfo", Call("GET", _userinfo)),
    case(
        "auth-digest-httpbin",
        # DigestAuth keeps state (the nonce count): a new one for each side.
        Call(
            "GET", "{httpbin}/digest-auth/auth/u/p", lambda c: {"auth": httpx.DigestAuth("u", "p")}
        ),
    ),
    case("auth-basic-httpbin-wrong", get("{httpbin}/basic-auth/u/p", auth=("u", "no"))),
    case(
        "auth-custom-flow",
        Call("GET", "{a}/need?header=X-Auth&value=2", lambda c: {"auth": StepAuth(c.log)}),
    ),
    # -- event hooks ----------------------------------------------------------------------
    case(
        "hooks-request-response",
        follow("GET", "{a}/redirect?status=302&to=/ok"),
        client=lambda c: {"event_hooks": c.hooks()},
    ),
    case("hooks-no-redirect", get("{a}/ok"), client=lambda c: {"event_hooks": c.hooks()}),
    # -- request headers ------------------------------------------------------------------
    case(
        "headers-repeated-casing",
        get("{a}/ok", headers=[("X-A", "1"), ("x-a", "2")]),
    ),
    case(
        "headers-non-utf8-bytes",
        get("{a}/ok", headers={"X-Bin": b"caf\xe9"}),
    ),
    case(
        "headers-client-and-call-merge",
        get("{a}/ok", headers={"x-both": "call", "X-Call": "1"}),
        client={"headers": {"X-Client": "c", "X-Both": "client"}},
    ),
    # A call without a body is built without httpx's body encoding: its automatic
    # headers (Host, Content-Length: 0) must still give way to the caller's own.
    case("headers-host-given", get("{a}/ok", headers={"host": "other.test"})),
    case(
        "headers-host-given-by-client-post",
        call("POST", "{a}/ok", headers={"X-Call": "1"}),
        client={"headers": {"Host": "client.test"}},
    ),
    case(
        "headers-expect-100-never-sent",
        call(
            "POST",
            "{a}/no-continue",
            content=b"x" * 10,
            headers={"Expect": "100-continue"},
            timeout=0.3,
        ),
        cf=NO_RETRY,
        limit=1.5,
    ),
    # -- errors ---------------------------------------------------------------------------
    case(
        "error-read-timeout",
        get("{a}/stall", timeout=SHORT_READ),
        cf=NO_RETRY,
    ),
    case(
        "error-read-timeout-app",
        get("{app}/stall", timeout=SHORT_READ),
        cf=NO_RETRY,
    ),
    case(
        "error-connect-refused",
        get("{refused}/ok"),
        cf=NO_RETRY,
    ),
    case("error-body-cut-short", get("{a}/cut"), cf=NO_RETRY),
    case(
        "error-stream-cut-short",
        call("GET", "{a}/cut", read="iter_bytes"),
        cf=NO_RETRY,
    ),
    # -- elapsed and extensions -----------------------------------------------------------
    case(
        "elapsed-slow-body",
        get(f"{{a}}/slow?seconds={SLOW}"),
        min_elapsed=SLOW,
    ),
    case(
        "elapsed-slow-body-app",
        get(f"{{app}}/slow-body?seconds={SLOW}"),
        min_elapsed=SLOW,
    ),
    case(
        "elapsed-slow-body-streamed",
        call("GET", f"{{a}}/slow?seconds={SLOW}", read="iter_bytes"),
        min_elapsed=SLOW,
    ),
    case(
        "elapsed-after-redirect",
        follow("GET", f"{{a}}/redirect?status=302&to=/slow%3Fseconds%3D{SLOW}"),
        min_elapsed=SLOW,
    ),
    case(
        "elapsed-with-auth",
        get(f"{{a}}/slow?seconds={SLOW}", auth=("u", "p")),
        min_elapsed=SLOW,
    ),
    case(
        "elapsed-with-hooks",
        get(f"{{a}}/slow?seconds={SLOW}"),
        client=lambda c: {"event_hooks": c.hooks()},
        min_elapsed=SLOW,
    ),
    # -- proxies (listener b plays an HTTP forward proxy) and keep-alive ----------------
    case("proxy-option", get("{refused}/ok?via=proxy"), client=lambda c: {"proxy": c.urls["b"]}),
    # proxy= with transport=: httpx ignores transport= silently, cf refuses the pair with a
    # ValueError (README, "Differences from httpx"; tests/_async/test_client.py).
    case(
        "proxy-from-env",
        get("{refused}/ok?via=proxy"),
        env={"HTTP_PROXY": "{b}"},
        cf=NO_RETRY,
    ),
    case(
        "proxy-from-env-all-proxy",
        get("{refused}/ok?via=proxy"),
        env={"ALL_PROXY": "{b}"},
        cf=NO_RETRY,
    ),
    case(
        "proxy-from-env-no-proxy",
        get("{a}/ok"),
        env={"HTTP_PROXY": "{refused}", "NO_PROXY": "127.0.0.1"},
        cf=NO_RETRY,
    ),
    case(
        "proxy-env-ignored-without-trust-env",
        get("{a}/ok"),
        client={"trust_env": False},
        env={"HTTP_PROXY": "{refused}"},
    ),
    case(
        "keepalive-server-closed-while-idle",
        Call("GET", "{a}/ok?idle_close=0.05", pause=0.2),
        call("POST", "{a}/ok", content=b"after idle"),
        cf=NO_RETRY,
    ),
    case(
        "keepalive-server-closed-while-idle-loop-per-call",
        Call("GET", "{a}/ok?idle_close=0.05", pause=0.2),
        call("POST", "{a}/ok", content=b"after idle"),
        cf=NO_RETRY,
        variants=ASYNC_VARIANTS,
        loop_per_call=True,
    ),
    case(
        "http2-without-h2",
        get("{a}/ok"),
        client={"http2": True},
        hide_modules=("h2",),
    ),
    case(
        "extensions-network-stream",
        get("{a}/ok"),
        network_stream=True,
    ),
]
