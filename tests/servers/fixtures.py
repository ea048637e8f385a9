"""pytest fixtures: real servers on 127.0.0.1 (loaded by tests/conftest.py).

- `server`: the ASGI app of `tests.servers.app` under uvicorn (`AppServer`).
- `raw_server`: the asyncio fault server of `tests.servers.raw` (`RawServer`).
- `oauth_server`: the OAuth2 token endpoint and API of `tests.servers.oauth` (`OAuthServer`).
- `wire_server`: the wire-recording server of `tests.servers.wire` (`WireServer`).
- `refused_url`: a loopback URL where nothing listens (connection refused).
- `blackhole_url`: a loopback URL whose TCP connect never completes (connect timeout).
- `hostile_server`: the rule-breaking HTTP/1.1 server of `tests.servers.hostile` (`HostileServer`).
- `tls_certs`: the trustme CA, server and client certificates as PEM files (`TLSFiles`).
- `tls_server`: the test app under uvicorn over TLS (`TLSAppServer`, HTTP/1.1).
- `h2_server`: the test app under hypercorn over TLS, HTTP/2 by ALPN (`TLSAppServer`).
- `mtls_server`: the TLS info server, a client certificate required (`TLSInfoServer`).
- `tls_info_server`: the TLS info server, a client certificate optional (`TLSInfoServer`).
- `self_signed_server`, `expired_cert_server`: the TLS info server with a certificate
  that does not verify: self-signed, or issued by the CA and expired (`TLSInfoServer`).
- `uds_server`: the test app under uvicorn on a Unix socket (`UnixAppServer`).
- `nginx_server`: nginx from the system packages (`Nginx`), `keepalive_timeout 1s`.
- `tinyproxy`, `tinyproxy_auth`: tinyproxy forwarding proxies, the second one
  requiring Basic authentication (`TinyProxy`).
- `socks5_proxy`, `socks5_auth_proxy`: microsocks SOCKS5 proxies, the second one
  requiring a username and password (`MicroSocks`).
- `redis_server`: a real redis-server on a free loopback port (`tests.servers.redis`),
  skipped when the binary is missing unless `CF_REQUIRE_PROGRAMS=1`.

Servers start once per session, when a test first needs them, each in its own
thread and event loop (the programs: in their own process); the function-scoped
fixtures reset their counters, logs and knobs before each test. A program that is
not installed skips its tests, or fails them when `CF_REQUIRE_PROGRAMS=1`.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from ._threaded import Serve, ServerThread, uvicorn_serve
from .app import AppServer, Recorder, TestApp
from .hostile import HostileServer, HostileState, hostile_serve
from .oauth import SERVER_THREAD_NAME, OAuthApp, OAuthServer
from .programs import MicroSocks, Nginx, Program, TinyProxy, require_program
from .raw import RawServer, RawServerState, raw_serve
from .redis import RedisServer, find_redis_server
from .tls import (
    TLSAppServer,
    TLSFiles,
    TLSInfoServer,
    TLSInfoState,
    VersionLog,
    VersionReporting,
    hypercorn_serve,
    make_tls_files,
    server_context,
    tls_info_serve,
    uvicorn_tls_serve,
)
from .uds import UnixAppServer, on_unix_socket
from .wire import WireServer, WireState, wire_serve

__all__ = [
    "blackhole_url",
    "expired_cert_server",
    "h2_server",
    "hostile_server",
    "mtls_server",
    "nginx_server",
    "oauth_server",
    "raw_server",
    "redis_server",
    "refused_url",
    "self_signed_server",
    "server",
    "socks5_auth_proxy",
    "socks5_proxy",
    "tinyproxy",
    "tinyproxy_auth",
    "tls_certs",
    "tls_info_server",
    "tls_server",
    "uds_server",
    "wire_server",
]


@pytest.fixture(scope="session")
def _server_session() -> Iterator[AppServer]:
    thread = ServerThread("cf-test-app-server")
    recorder = Recorder()
    thread.start(uvicorn_serve(TestApp(recorder, thread.stopping)))
    try:
        yield AppServer(thread.url, recorder)
    finally:
        thread.stop()


@pytest.fixture
def server(_server_session: AppServer) -> AppServer:
    """The ASGI test app under uvicorn; counters and logs reset for this test."""
    _server_session.reset()
    return _server_session


@pytest.fixture(scope="session")
def _raw_server_session() -> Iterator[RawServer]:
    thread = ServerThread("cf-test-raw-server")
    state = RawServerState()
    thread.start(raw_serve(state))
    try:
        yield RawServer(thread.url, state)
    finally:
        thread.stop()


@pytest.fixture
def raw_server(_raw_server_session: RawServer) -> RawServer:
    """The plain asyncio fault server; counters reset for this test."""
    _raw_server_session.reset()
    return _raw_server_session


@pytest.fixture(scope="session")
def _oauth_server_session() -> Iterator[OAuthServer]:
    thread = ServerThread(SERVER_THREAD_NAME)
    oauth = OAuthServer()
    thread.start(uvicorn_serve(OAuthApp(oauth, thread.stopping)))
    oauth.url = thread.url
    try:
        yield oauth
    finally:
        thread.stop()


@pytest.fixture
def oauth_server(_oauth_server_session: OAuthServer) -> OAuthServer:
    """The OAuth2 token endpoint and protected API; counters, tokens and knobs reset."""
    _oauth_server_session.reset()
    return _oauth_server_session


@pytest.fixture(scope="session")
def _wire_server_session() -> Iterator[WireServer]:
    thread = ServerThread("cf-test-wire-server")
    state = WireState()
    thread.start(wire_serve(state))
    try:
        yield WireServer(state)
    finally:
        thread.stop()


@pytest.fixture
def wire_server(_wire_server_session: WireServer) -> WireServer:
    """The wire-recording server (two origins); its records emptied for this test."""
    _wire_server_session.reset()
    return _wire_server_session


@pytest.fixture
def refused_url() -> str:
    """http://127.0.0.1:PORT where nothing listens: connecting is refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class _Blackhole:
    """A loopback listener that never accepts, its accept queue full.

    With `listen(0)` Linux queues one connection; once it is queued the kernel
    drops further SYNs (the accept queue is full), so a client's connect waits
    for SYN retransmissions and times out. Nothing leaves the loopback interface.
    """

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.fillers: list[socket.socket] = []
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.address: tuple[str, int] = self.listener.getsockname()

    def fill(self, probe_seconds: float = 0.2) -> bool:
        """Queue connections until one cannot complete; True if that happened."""
        for _ in range(8):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(self.address)
            _, writable, _ = select.select([], [sock], [], probe_seconds)
            if writable and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                self.fillers.append(sock)  # established and queued: keep it open
                continue
            sock.close()  # its SYN was dropped: the queue is full
            return True
        return False

    def close(self) -> None:
        for sock in self.fillers:
            sock.close()
        self.listener.close()


@pytest.fixture(scope="session")
def _blackhole_session() -> Iterator[str]:
    hole = _Blackhole()
    try:
        if not hole.fill():
            pytest.skip("blackhole_url: this kernel accepts connections beyond a full accept queue")
        yield f"http://{hole.address[0]}:{hole.address[1]}"
    finally:
        hole.close()


@pytest.fixture
def blackhole_url(_blackhole_session: str) -> str:
    """http://127.0.0.1:PORT whose TCP connect never completes (a connect timeout)."""
    return _blackhole_session


@contextlib.contextmanager
def _thread(name: str, serve: Callable[[ServerThread], Serve]) -> Iterator[ServerThread]:
    """A `ServerThread` running `serve(thread)`, stopped on exit."""
    thread = ServerThread(name)
    thread.start(serve(thread))
    try:
        yield thread
    finally:
        thread.stop()


# -- hostile HTTP/1.1 server (issue 15) ---------------------------------------------------


@pytest.fixture(scope="session")
def _hostile_server_session() -> Iterator[HostileServer]:
    state = HostileState()
    with _thread("cf-test-hostile-server", lambda _: hostile_serve(state)) as thread:
        yield HostileServer(thread.url, state)


@pytest.fixture
def hostile_server(_hostile_server_session: HostileServer) -> HostileServer:
    """The rule-breaking HTTP/1.1 server; records and knobs reset, old connections closed."""
    _hostile_server_session.reset()
    return _hostile_server_session


# -- TLS, mTLS, HTTP/2 --------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """The trustme CA (`ca_bundle`), the server certificate, clients `alice` and `bob`."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _tls_app(name: str, files: TLSFiles, run: Callable[..., Serve]) -> Iterator[TLSAppServer]:
    recorder, versions = Recorder(), VersionLog()

    def serve(thread: ServerThread) -> Serve:
        app = VersionReporting(TestApp(recorder, thread.stopping), versions)
        return run(app, files.server_cert, files.server_key)

    with _thread(name, serve) as thread:
        yield TLSAppServer(f"https://127.0.0.1:{thread.port}", recorder, versions, files)


@pytest.fixture(scope="session")
def _tls_server_session(tls_certs: TLSFiles) -> Iterator[TLSAppServer]:
    yield from _tls_app("cf-test-tls-server", tls_certs, uvicorn_tls_serve)


@pytest.fixture
def tls_server(_tls_server_session: TLSAppServer) -> TLSAppServer:
    """The test app under uvicorn over TLS (HTTP/1.1); `url` is https://127.0.0.1:PORT."""
    _tls_server_session.reset()
    return _tls_server_session


@pytest.fixture(scope="session")
def _h2_server_session(tls_certs: TLSFiles) -> Iterator[TLSAppServer]:
    yield from _tls_app("cf-test-h2-server", tls_certs, hypercorn_serve)


@pytest.fixture
def h2_server(_h2_server_session: TLSAppServer) -> TLSAppServer:
    """The test app under hypercorn over TLS: HTTP/2 by ALPN (else HTTP/1.1)."""
    _h2_server_session.reset()
    return _h2_server_session


def _tls_info(
    name: str, files: TLSFiles, cert: str, key: str, client_cert: ssl.VerifyMode
) -> Iterator[TLSInfoServer]:
    state = TLSInfoState()
    context = server_context(cert, key, client_ca=files.ca_bundle, client_cert=client_cert)
    with _thread(name, lambda _: tls_info_serve(state, context)) as thread:
        yield TLSInfoServer(thread.port, state, files)


@pytest.fixture(scope="session")
def _mtls_server_session(tls_certs: TLSFiles) -> Iterator[TLSInfoServer]:
    f = tls_certs
    yield from _tls_info("cf-test-mtls", f, f.server_cert, f.server_key, ssl.CERT_REQUIRED)


@pytest.fixture
def mtls_server(_mtls_server_session: TLSInfoServer) -> TLSInfoServer:
    """TLS info server requiring a client certificate from the test CA."""
    _mtls_server_session.reset()
    return _mtls_server_session


@pytest.fixture(scope="session")
def _tls_info_server_session(tls_certs: TLSFiles) -> Iterator[TLSInfoServer]:
    f = tls_certs
    yield from _tls_info("cf-test-tls-info", f, f.server_cert, f.server_key, ssl.CERT_OPTIONAL)


@pytest.fixture
def tls_info_server(_tls_info_server_session: TLSInfoServer) -> TLSInfoServer:
    """TLS info server: reports the SNI and the client certificate, if any, per request."""
    _tls_info_server_session.reset()
    return _tls_info_server_session


@pytest.fixture(scope="session")
def _self_signed_server_session(tls_certs: TLSFiles) -> Iterator[TLSInfoServer]:
    f = tls_certs
    yield from _tls_info(
        "cf-test-self-signed", f, f.self_signed_cert, f.self_signed_key, ssl.CERT_NONE
    )


@pytest.fixture
def self_signed_server(_self_signed_server_session: TLSInfoServer) -> TLSInfoServer:
    """TLS info server with a self-signed certificate: verification fails, even with the CA."""
    _self_signed_server_session.reset()
    return _self_signed_server_session


@pytest.fixture(scope="session")
def _expired_cert_server_session(tls_certs: TLSFiles) -> Iterator[TLSInfoServer]:
    f = tls_certs
    yield from _tls_info("cf-test-expired", f, f.expired_cert, f.expired_key, ssl.CERT_NONE)


@pytest.fixture
def expired_cert_server(_expired_cert_server_session: TLSInfoServer) -> TLSInfoServer:
    """TLS info server whose certificate (from the test CA) expired yesterday."""
    _expired_cert_server_session.reset()
    return _expired_cert_server_session


# -- Unix socket ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _uds_server_session() -> Iterator[UnixAppServer]:
    recorder = Recorder()
    with tempfile.TemporaryDirectory(prefix="cf-uds-") as directory:  # short: sun_path <= 107
        path = str(Path(directory) / "app.sock")

        def serve(thread: ServerThread) -> Serve:
            return on_unix_socket(uvicorn_serve(TestApp(recorder, thread.stopping)), path)

        with _thread("cf-test-uds-server", serve):
            yield UnixAppServer(path, recorder)


@pytest.fixture
def uds_server(_uds_server_session: UnixAppServer) -> UnixAppServer:
    """The test app on a Unix socket: `path` for `uds=`, `url` (http://localhost) to request."""
    _uds_server_session.reset()
    return _uds_server_session


# -- programs from the system packages --------------------------------------------------------

_P = TypeVar("_P", bound=Program)


def _started(program: _P) -> Iterator[_P]:
    program.start()
    try:
        yield program
    finally:
        program.stop()


@pytest.fixture(scope="session")
def _nginx_session() -> Iterator[Nginx]:
    yield from _started(Nginx(require_program("nginx")))


@pytest.fixture
def nginx_server(_nginx_session: Nginx) -> Nginx:
    """nginx serving `tests.servers.programs.NGINX_PATHS`; its access log starts empty."""
    _nginx_session.reset()
    return _nginx_session


@pytest.fixture(scope="session")
def _tinyproxy_session() -> Iterator[TinyProxy]:
    yield from _started(TinyProxy(require_program("tinyproxy")))


@pytest.fixture
def tinyproxy(_tinyproxy_session: TinyProxy) -> TinyProxy:
    """A tinyproxy forwarding proxy (`url`: http://127.0.0.1:PORT); `forwarded()` starts empty."""
    _tinyproxy_session.reset()
    return _tinyproxy_session


@pytest.fixture(scope="session")
def _tinyproxy_auth_session() -> Iterator[TinyProxy]:
    yield from _started(TinyProxy(require_program("tinyproxy"), "proxyuser", "proxy-secret"))


@pytest.fixture
def tinyproxy_auth(_tinyproxy_auth_session: TinyProxy) -> TinyProxy:
    """tinyproxy requiring Basic auth (`url_with_credentials`); without it a real 407."""
    _tinyproxy_auth_session.reset()
    return _tinyproxy_auth_session


@pytest.fixture(scope="session")
def _socks5_session() -> Iterator[MicroSocks]:
    yield from _started(MicroSocks(require_program("microsocks")))


@pytest.fixture
def socks5_proxy(_socks5_session: MicroSocks) -> MicroSocks:
    """A microsocks SOCKS5 proxy (`url`: socks5://127.0.0.1:PORT); `connects()` starts empty."""
    _socks5_session.reset()
    return _socks5_session


@pytest.fixture(scope="session")
def _socks5_auth_session() -> Iterator[MicroSocks]:
    yield from _started(MicroSocks(require_program("microsocks"), "socksuser", "socks-secret"))


@pytest.fixture
def socks5_auth_proxy(_socks5_auth_session: MicroSocks) -> MicroSocks:
    """microsocks requiring a username and password (`url_with_credentials`)."""
    _socks5_auth_session.reset()
    return _socks5_auth_session


@pytest.fixture(scope="session")
def _redis_server_session() -> Iterator[RedisServer]:
    binary = find_redis_server()
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CF_REQUIRE_PROGRAMS") == "1":
            pytest.fail(f"{message}, and CF_REQUIRE_PROGRAMS=1 requires it")
        pytest.skip(message)
    redis = RedisServer(binary)
    redis.start()
    try:
        yield redis
    finally:
        redis.close()


@pytest.fixture
def redis_server(_redis_server_session: RedisServer) -> RedisServer:
    """A real redis-server on 127.0.0.1: running, answering and empty for this test."""
    _redis_server_session.reset()
    return _redis_server_session
