"""Parity cases against real programs and TLS: each runs in every variant it names.

The servers a case names in `servers` (see `network.SERVERS`) start for it; each
reports what it saw of each side (handshakes, SNI, client certificates, proxied
requests, nginx's access log), compared like the responses. `{a}`/`{b}` (the wire
server) are there too: through a proxy, the wire shows what the proxy sent on.

TLS: raw httpx 0.28 warns on `verify=<path>` and `cert=` (warnings are errors
here), so the raw side always gets an `ssl.SSLContext`; where cf is given the
path or `cert=` instead (`cf=`), it accepts them without a warning (README,
"Differences from httpx") and must do what httpx does with the context.

Retries stay on wherever a case checks that cf does not retry (bad certificates,
a 407 on CONNECT): the servers' counts must match httpx's single attempt.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from .cases import DEFAULT, NO_RETRY, SYNC, call, case, get, on
from .harness import ASYNC_VARIANTS, Call, Case, Ctx

__all__ = ["NETWORK_CASES"]

# Known divergences (bugs for the lead, or rows for README's "Differences from httpx").
DIFFERENCE_SNI_POOL = (
    "README, Differences from httpx: the aiohttp engine keeps connections per SNI name, "
    "so a request without sni_hostname after one with it opens its own connection; "
    "httpx's pool reuses the connection by origin (one handshake, SNI sni.test)"
)

TLS = ("certs", "tls")
INFO = ("certs", "info")


def ca(ctx: Ctx) -> ssl.SSLContext:
    """A context trusting the test CA (a new one for each side)."""
    return ssl.create_default_context(cafile=ctx.urls["ca"])


def ca_and(identity: str) -> Any:
    """Client options: the test CA, presenting `identity`'s certificate (a context)."""

    def options(ctx: Ctx) -> dict[str, Any]:
        context = ca(ctx)
        context.load_cert_chain(ctx.urls[f"{identity}_cert"], ctx.urls[f"{identity}_key"])
        return {"verify": context}

    return options


def trusting(ctx: Ctx) -> dict[str, Any]:
    return {"verify": ca(ctx)}


def proxied(proxy: str, **more: Any) -> Any:
    """Client options: `proxy=` the server named `proxy`, the test CA trusted."""

    def options(ctx: Ctx) -> dict[str, Any]:
        return {"proxy": ctx.urls[proxy], "verify": ca(ctx), **more}

    return options


def uds(ctx: Ctx) -> dict[str, Any]:
    path = ctx.urls["uds"]
    if ctx.is_async:
        return {"transport": httpx.AsyncHTTPTransport(uds=path)}
    return {"transport": httpx.HTTPTransport(uds=path)}


def by_name(server: str, path: str) -> Any:
    """The URL of `server` by the name `localhost` (not matched by NO_PROXY=127.0.0.1)."""
    return lambda ctx: ctx.urls[server].replace("127.0.0.1", "localhost") + path


def sub_localhost(ctx: Ctx) -> str:
    return ctx.urls["a"].replace("127.0.0.1", "sub.localhost") + "/ok"


def env_proxy(name: str, proxy: str = "tinyproxy", **more: str) -> dict[str, str]:
    return {name: f"{{{proxy}}}", **more}


def race(*variants: str, loop_per_call: bool = False) -> tuple[str, Case]:
    """Issue 9's keep-alive race: nginx closes the idle connection (1 s) before the POST."""
    suffix = "-loop-per-call" if loop_per_call else ""
    return case(
        f"keepalive-race-nginx{suffix}",
        Call("GET", "{nginx}/text", pause=1.6),
        call("POST", "{nginx}/text", content=b"after idle"),
        call("POST", "{nginx}/text", content=b"again"),
        servers=("nginx",),
        variants=variants,
        loop_per_call=loop_per_call,
    )


NETWORK_CASES: list[tuple[str, Case]] = [
    # -- TLS: verify -----------------------------------------------------------------
    case("tls-verify-ca-context", get("{tls}/echo"), client=trusting, servers=TLS),
    case("tls-verify-ca-by-name", get("{tls_name}/echo"), client=trusting, servers=TLS),
    case(
        "tls-verify-ca-path-in-cf",
        get("{tls}/echo"),
        client=trusting,
        cf=lambda c: {"verify": c.urls["ca"]},
        servers=TLS,
    ),
    case("tls-verify-system-cas-fail", get("{info}/x"), servers=INFO),
    case(
        "tls-self-signed-fails",
        get("{self_signed}/x"),
        client=trusting,
        servers=("certs", "self_signed"),
    ),
    case("tls-expired-fails", get("{expired}/x"), client=trusting, servers=("certs", "expired")),
    case(
        "tls-self-signed-verify-false",
        get("{self_signed}/x"),
        client={"verify": False},
        servers=("self_signed",),
    ),
    case(
        "tls-ssl-cert-file-from-env",
        get("{info}/x"),
        client={"verify": True},
        env={"SSL_CERT_FILE": "{ca}"},
        servers=INFO,
    ),
    case(
        "tls-ssl-cert-file-ignored-without-trust-env",
        get("{info}/x"),
        client={"verify": True, "trust_env": False},
        env={"SSL_CERT_FILE": "{ca}"},
        servers=INFO,
    ),
    case(
        "tls-post-kept-alive",
        call("POST", "{tls}/echo", json={"a": 1}),
        get("{tls}/echo?second=1"),
        client=trusting,
        servers=TLS,
    ),
    # -- TLS: client certificates ----------------------------------------------------
    case("mtls-context", get("{mtls}/who"), client=ca_and("alice"), servers=("certs", "mtls")),
    case(
        "mtls-cert-pair-in-cf",
        get("{mtls}/who"),
        client=ca_and("alice"),
        cf=lambda c: {"verify": c.urls["ca"], "cert": (c.urls["alice_cert"], c.urls["alice_key"])},
        servers=("certs", "mtls"),
    ),
    case(
        "mtls-cert-combined-file-in-cf",
        get("{mtls}/who"),
        client=ca_and("bob"),
        cf=lambda c: {"verify": c.urls["ca"], "cert": c.urls["bob"]},
        servers=("certs", "mtls"),
    ),
    case(
        "mtls-cert-with-system-cas-in-cf",
        get("{mtls}/who"),
        client=lambda c: {"verify": ssl.create_default_context()},
        # verify=True: the system's CAs, which do not know the test CA
        cf=lambda c: {"verify": True, "cert": c.urls["alice"]},
        servers=("certs", "mtls"),
    ),
    case(
        "mtls-without-certificate",
        get("{mtls}/who"),
        client=trusting,
        # The server drops the connection after the handshake: the client sees only
        # a close or a reset without a response, which cf retries for a GET as for
        # any idempotent request (3 handshakes): one attempt here.
        cf=NO_RETRY,
        servers=("certs", "mtls"),
        # a reset (the request was unread when the server closed) or a clean close
        errors_alike=("httpx.ReadError", "httpx.RemoteProtocolError"),
    ),
    case("mtls-optional-sees-bob", get("{info}/who"), client=ca_and("bob"), servers=INFO),
    # -- TLS: SNI ----------------------------------------------------------------------
    case("sni-none-for-an-ip-address", get("{info}/x"), client=trusting, servers=INFO),
    case("sni-localhost-by-name", get("{info_name}/x"), client=trusting, servers=INFO),
    case(
        "sni-hostname-extension",
        get("{info}/x", extensions={"sni_hostname": "sni.test"}),
        client=trusting,
        servers=INFO,
    ),
    case(
        "sni-hostname-extension-then-none",
        get("{info}/x", extensions={"sni_hostname": "sni.test"}),
        get("{info}/y"),
        client=trusting,
        servers=INFO,
        xfail=on(DIFFERENCE_SNI_POOL, DEFAULT),
    ),
    # -- HTTP/2 ------------------------------------------------------------------------
    case(
        "http2-hypercorn",
        get("{h2}/echo?q=1", headers={"X-A": "1"}),
        call("POST", "{h2}/echo", json={"k": "v"}),
        client=lambda c: {"http2": True, **trusting(c)},
        servers=("certs", "h2"),
    ),
    case(
        "http2-stream",
        call("GET", "{h2}/bytes?n=200000&chunked=1", read="iter_bytes"),
        client=lambda c: {"http2": True, **trusting(c)},
        servers=("certs", "h2"),
    ),
    case("http2-off-on-an-h2-server", get("{h2}/echo"), client=trusting, servers=("certs", "h2")),
    case(
        "http2-on-an-http1-server",
        get("{tls}/echo"),
        client=lambda c: {"http2": True, **trusting(c)},
        servers=TLS,
    ),
    # -- proxy= (tinyproxy forwards to the wire server, tunnels to the TLS app) --------
    case(
        "proxy-tinyproxy-http",
        get("{a}/ok?q=1"),
        client=proxied("tinyproxy"),
        servers=("certs", "tinyproxy"),
    ),
    case(
        "proxy-tinyproxy-post",
        call("POST", "{a}/ok", content=b"through the proxy"),
        client=proxied("tinyproxy"),
        servers=("certs", "tinyproxy"),
    ),
    case(
        "proxy-tinyproxy-https-connect",
        get("{tls}/echo"),
        get("{tls}/echo?again=1"),
        client=proxied("tinyproxy"),
        servers=("certs", "tls", "tinyproxy"),
    ),
    case(
        "proxy-auth-407-http",
        get("{a}/ok"),
        client=proxied("tinyproxy_auth"),
        servers=("certs", "tinyproxy_auth"),
    ),
    case(
        "proxy-auth-407-connect-not-retried",
        get("{tls}/echo"),
        client=proxied("tinyproxy_auth"),
        servers=("certs", "tls", "tinyproxy_auth"),
    ),
    case(
        "proxy-auth-credentials-http",
        get("{a}/ok"),
        client=proxied("tinyproxy_auth_cred"),
        servers=("certs", "tinyproxy_auth"),
    ),
    case(
        "proxy-auth-credentials-connect",
        get("{tls}/echo"),
        client=proxied("tinyproxy_auth_cred"),
        servers=("certs", "tls", "tinyproxy_auth"),
    ),
    # -- proxies from the environment --------------------------------------------------
    *[
        case(
            f"proxy-env-{name}",
            get("{a}/ok"),
            get("{tls}/echo"),
            client=trusting,
            env=env_proxy(name),
            servers=("certs", "tls", "tinyproxy"),
        )
        for name in (
            "HTTP_PROXY",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
        )
    ],
    case(
        "proxy-env-both-schemes",
        get("{a}/ok"),
        get("{tls}/echo"),
        client=trusting,
        env={"HTTP_PROXY": "{tinyproxy}", "HTTPS_PROXY": "{tinyproxy_auth_cred}"},
        servers=("certs", "tls", "tinyproxy", "tinyproxy_auth"),
    ),
    case(
        "proxy-env-lowercase-wins",
        get("{a}/ok"),
        env={"HTTP_PROXY": "{tinyproxy_auth}", "http_proxy": "{tinyproxy}"},
        servers=("tinyproxy", "tinyproxy_auth"),
    ),
    case(
        "proxy-env-http-proxy-ignored-under-cgi",
        get("{a}/ok"),
        env={"HTTP_PROXY": "{tinyproxy}", "REQUEST_METHOD": "GET"},
        servers=("tinyproxy",),
    ),
    case(
        "proxy-env-with-credentials",
        get("{a}/ok"),
        env={"HTTP_PROXY": "{tinyproxy_auth_cred}"},
        servers=("tinyproxy_auth",),
    ),
    *[
        case(
            f"proxy-env-{name}-{label}",
            Call("GET", target),
            env=env_proxy("HTTP_PROXY", **{name: value}),
            cf=NO_RETRY,
            servers=("tinyproxy",),
        )
        for name in ("NO_PROXY", "no_proxy")
        for label, value, target in (
            ("host", "127.0.0.1", "{a}/ok"),
            ("list", "other.test, 127.0.0.1", "{a}/ok"),
            ("other-host-proxied", "other.test", "{a}/ok"),
            ("localhost", "localhost", by_name("a", "/ok")),
            ("star", "*", "{a}/ok"),
        )
    ],
    case(
        "proxy-env-no-proxy-domain-not-the-bare-name",
        Call("GET", by_name("a", "/ok")),
        env=env_proxy("HTTP_PROXY", NO_PROXY=".localhost"),
        servers=("tinyproxy",),
    ),
    case(
        "proxy-env-no-proxy-domain-subdomain",
        Call("GET", sub_localhost),
        env=env_proxy("HTTP_PROXY", NO_PROXY=".localhost"),
        cf=NO_RETRY,  # sub.localhost may not resolve: one attempt against one
        servers=("tinyproxy",),
    ),
    case(
        "proxy-env-ignored-with-trust-env-false",
        get("{a}/ok"),
        client={"trust_env": False},
        env={"HTTP_PROXY": "{tinyproxy}", "ALL_PROXY": "{tinyproxy}"},
        servers=("tinyproxy",),
    ),
    case(
        "proxy-option-beats-env",
        get("{a}/ok"),
        client=proxied("tinyproxy_auth_cred"),
        env={"HTTP_PROXY": "{tinyproxy}"},
        servers=("certs", "tinyproxy", "tinyproxy_auth"),
    ),
    # -- SOCKS5 (microsocks): httpx's own transport in every variant -------------------
    case("socks5-http", get("{a}/ok"), client=proxied("socks"), servers=("certs", "socks")),
    case(
        "socks5h-http",
        get("{a}/ok"),
        client=lambda c: {"proxy": c.urls["socks"].replace("socks5:", "socks5h:")},
        servers=("socks",),
    ),
    case(
        "socks5-https",
        get("{tls}/echo"),
        client=proxied("socks"),
        servers=("certs", "tls", "socks"),
    ),
    case(
        "socks5-auth-credentials",
        get("{a}/ok"),
        client=proxied("socks_auth_cred"),
        servers=("certs", "socks_auth"),
    ),
    case(
        "socks5-auth-refused",
        get("{a}/ok"),
        client=proxied("socks_auth"),
        cf=NO_RETRY,
        servers=("certs", "socks_auth"),
        # httpcore leaves the proxy's socket open when the SOCKS5 handshake fails
        # (tests/test_programs.py): its ResourceWarning is httpx's, on both sides.
        warnings=(
            "ignore::pytest.PytestUnraisableExceptionWarning",
            "ignore::ResourceWarning",
        ),
    ),
    case("socks5-from-env", get("{a}/ok"), env={"ALL_PROXY": "{socks}"}, servers=("socks",)),
    # -- Unix socket ---------------------------------------------------------------------
    case(
        "uds-transport",
        get("{uds_url}/echo?k=v"),
        call("POST", "{uds_url}/echo", content=b"over the socket"),
        client=uds,
        servers=("uds",),
    ),
    # -- keep-alive: a connection the server closed while idle ---------------------------
    race(*ASYNC_VARIANTS, loop_per_call=True),
    race(SYNC),
    case(
        "keepalive-hostile-close-after-response",
        get("{hostile}/ok?id=1&close=1"),
        call("POST", "{hostile}/ok?id=2&close=1", content=b"x"),
        get("{hostile}/ok?id=3"),
        servers=("hostile",),
    ),
    case(
        "keepalive-hostile-idle-close",
        Call("GET", "{hostile}/ok?id=1&idle_ms=20", pause=0.1),
        call("POST", "{hostile}/ok?id=2&idle_ms=20", content=b"x"),
        servers=("hostile",),
    ),
    case(
        "keepalive-hostile-idle-close-loop-per-call",
        Call("GET", "{hostile}/ok?id=1&idle_ms=20", pause=0.1),
        call("POST", "{hostile}/ok?id=2&idle_ms=20", content=b"x"),
        servers=("hostile",),
        variants=ASYNC_VARIANTS,
        loop_per_call=True,
    ),
]
