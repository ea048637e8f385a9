"""pytest fixtures: real servers on 127.0.0.1 (loaded by tests/conftest.py).

- `server`: the ASGI app of `tests.servers.app` under uvicorn (`AppServer`).
- `raw_server`: the asyncio fault server of `tests.servers.raw` (`RawServer`).
- `oauth_server`: the OAuth2 token endpoint and API of `tests.servers.oauth` (`OAuthServer`).
- `wire_server`: the wire-recording server of `tests.servers.wire` (`WireServer`).
- `refused_url`: a loopback URL where nothing listens (connection refused).
- `blackhole_url`: a loopback URL whose TCP connect never completes (connect timeout).

Servers start once per session, each in its own thread and event loop; the
function-scoped fixtures reset their counters, logs and knobs before each test.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Iterator

import pytest

from ._threaded import ServerThread, uvicorn_serve
from .app import AppServer, Recorder, TestApp
from .oauth import SERVER_THREAD_NAME, OAuthApp, OAuthServer
from .raw import RawServer, RawServerState, raw_serve
from .wire import WireServer, WireState, wire_serve

__all__ = [
    "blackhole_url",
    "oauth_server",
    "raw_server",
    "refused_url",
    "server",
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
