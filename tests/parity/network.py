"""The servers the network cases name, beyond the default ones: URLs and probes.

`SERVERS` maps a name a case lists in `Case.servers` to the pytest fixture that
starts the server and to what the case gets from it: template names for its
URLs (or file paths) and a `Probe` telling what the server saw of each side.

Names (as case templates use them, `{tls}/echo`):
- `certs`: no server; `{ca}` the test CA bundle, `{alice_cert}`, `{alice_key}`,
  `{alice}` (certificate and key in one file), the same for `bob`.
- `tls`, `h2`: the test app over TLS under uvicorn (HTTP/1.1) and hypercorn
  (HTTP/2 by ALPN); `{tls_name}`/`{h2_name}` the same by the name `localhost`.
  Probe: the requests the app saw (method, path, query, headers, body) and
  their HTTP versions.
- `info`, `mtls`, `self_signed`, `expired`: the TLS info servers (`{info}`,
  `{info_name}`, ...). Probe: the handshakes begun and, per request, the SNI,
  the client certificate, the TLS version and ALPN, the connection number.
- `nginx`: nginx with `keepalive_timeout 1s`. Probe: its access log (connections
  numbered in order of appearance).
- `tinyproxy`, `tinyproxy_auth` (`{tinyproxy_auth_cred}` with the credentials):
  the requests tinyproxy received (407-refused ones too).
- `socks`, `socks_auth` (`{socks_auth_cred}`): the connections microsocks made.
- `hostile`: the hostile server (`{hostile}`). Probe: the arrivals.
- `uds`: the test app on a Unix socket: `{uds}` its path, `{uds_url}` the URL to
  request through it. Probe: the requests the app saw.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import astuple
from typing import Any

from tests.servers.app import AppServer
from tests.servers.hostile import HostileServer
from tests.servers.programs import MicroSocks, Nginx, TinyProxy
from tests.servers.tls import TLSAppServer, TLSFiles, TLSInfoServer
from tests.servers.uds import UnixAppServer

from .harness import Case, Probe

__all__ = ["SERVERS", "Server", "settled"]


Server = tuple[dict[str, str], Probe | None]
"""What a case gets from one server: template names -> URL or path, and its probe."""


def settled(read: Callable[[], list[Any]], quiet: float = 0.02, timeout: float = 2.0) -> list[Any]:
    """`read()` once it has not grown for `quiet` seconds (a program logs a moment
    after the client got its answer)."""
    deadline = time.monotonic() + timeout
    last = read()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = read()
        if len(now) == len(last):
            return now
        last = now
    return last


def _app_requests(app: AppServer) -> list[Any]:
    return [(r.method, r.path, r.query, r.headers, r.body) for r in app.all_requests()]


def _tls_app(name: str, app: TLSAppServer) -> Server:
    def observe(case: Case) -> Any:
        return {"requests": _app_requests(app), "versions": app.http_versions()}

    urls = {name: app.url, f"{name}_name": app.localhost_url}
    return urls, Probe(app.reset, observe)


def _tls_info(name: str, info: TLSInfoServer) -> Server:
    def observe(case: Case) -> Any:
        return {"handshakes": info.handshakes, "requests": [astuple(s) for s in info.seen()]}

    urls = {name: info.url, f"{name}_name": info.localhost_url}
    return urls, Probe(info.reset, observe)


def _nginx(nginx: Nginx) -> Server:
    def observe(case: Case) -> Any:
        nginx.log(min_lines=len(case.calls))  # nginx logs once the response went out
        numbers: dict[int, int] = {}
        return [
            (numbers.setdefault(line.connection, len(numbers)), *astuple(line)[1:])
            for line in settled(nginx.log)
        ]

    return {"nginx": nginx.url}, Probe(nginx.reset, observe)


def _tinyproxy(name: str, proxy: TinyProxy) -> Server:
    def observe(case: Case) -> Any:
        return proxy.forwarded()  # logged as it arrives, before it is answered

    urls = {name: proxy.url}
    if proxy.username:
        urls[f"{name}_cred"] = proxy.url_with_credentials
    return urls, Probe(proxy.reset, observe)


def _socks(name: str, proxy: MicroSocks) -> Server:
    def observe(case: Case) -> Any:
        return proxy.connects()  # logged once connected, before anything is relayed

    urls = {name: proxy.url}
    if proxy.username:
        urls[f"{name}_cred"] = proxy.url_with_credentials
    return urls, Probe(proxy.reset, observe)


def _hostile(hostile: HostileServer) -> Server:
    def observe(case: Case) -> Any:
        return [
            (a.request_id, a.key, a.method, a.path, a.connection, a.index, a.body_length)
            for a in hostile.arrivals()
        ]

    return {"hostile": hostile.url}, Probe(hostile.reset, observe)


def _uds(uds: UnixAppServer) -> Server:
    def observe(case: Case) -> Any:
        return _app_requests(uds)

    return {"uds": uds.path, "uds_url": uds.url}, Probe(uds.reset, observe)


def _certs(files: TLSFiles) -> Server:
    urls = {"ca": files.ca_bundle}
    for identity in (files.alice, files.bob):
        name = identity.common_name
        urls |= {
            name: identity.combined,
            f"{name}_cert": identity.cert,
            f"{name}_key": identity.key,
        }
    return urls, None


SERVERS: Mapping[str, tuple[str, Callable[[Any], Server]]] = {
    "certs": ("tls_certs", _certs),
    "tls": ("tls_server", lambda s: _tls_app("tls", s)),
    "h2": ("h2_server", lambda s: _tls_app("h2", s)),
    "info": ("tls_info_server", lambda s: _tls_info("info", s)),
    "mtls": ("mtls_server", lambda s: _tls_info("mtls", s)),
    "self_signed": ("self_signed_server", lambda s: _tls_info("self_signed", s)),
    "expired": ("expired_cert_server", lambda s: _tls_info("expired", s)),
    "nginx": ("nginx_server", _nginx),
    "tinyproxy": ("tinyproxy", lambda s: _tinyproxy("tinyproxy", s)),
    "tinyproxy_auth": ("tinyproxy_auth", lambda s: _tinyproxy("tinyproxy_auth", s)),
    "socks": ("socks5_proxy", lambda s: _socks("socks", s)),
    "socks_auth": ("socks5_auth_proxy", lambda s: _socks("socks_auth", s)),
    "hostile": ("hostile_server", _hostile),
    "uds": ("uds_server", _uds),
}
"""Name -> (fixture, what the case gets from the fixture's value)."""
