"""One test per private touch of aiohttp (cf/_transports/_aiohttp_compat.py).

Each test fails when its touch stops working (a renamed hook, a changed
attribute): a new aiohttp release that breaks one shows here first.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import httpx
import pytest

from cf._transports import _aiohttp_compat as compat
from cf._transports._aiohttp import AiohttpTransport

pytestmark = pytest.mark.timeout(20)


class RecordingServer:
    """A threaded HTTP/1.1 server: records each request's head, reads its body (by
    Content-Length or chunked), answers 200, and closes a connection that stays idle
    longer than `idle_close` seconds."""

    def __init__(self, idle_close: float | None = None) -> None:
        self.idle_close = idle_close
        self.heads: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buffer = b""
        with conn:
            conn.settimeout(self.idle_close or 5)
            while True:
                try:
                    while b"\r\n\r\n" not in buffer:
                        data = conn.recv(65536)
                        if not data:
                            return
                        buffer += data
                except (TimeoutError, OSError):
                    return  # idle too long: close without a word, as nginx does
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length, chunked = 0, False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                    chunked |= name.strip().lower() == b"transfer-encoding"
                if chunked:  # the body ends with the last chunk (no trailers sent)
                    while b"0\r\n\r\n" not in buffer:
                        buffer += conn.recv(65536)
                    length = buffer.index(b"0\r\n\r\n") + 5
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                buffer = buffer[length:]
                self.heads.append(head)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self._listener.close()


@pytest.fixture
def recording() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


async def test_touch_1_headers_go_out_exactly_as_httpx_built_them(
    recording: RecordingServer,
) -> None:
    headers = [("X-A", "1"), ("x-a", "2"), ("X-Trace", "t")]
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        await client.get(recording.url, headers=headers)
    lines = recording.heads[0].split(b"\r\n")[1:]
    assert [line for line in lines if line.lower().startswith(b"x-")] == [
        b"X-A: 1",
        b"x-a: 2",
        b"X-Trace: t",
    ]
    assert lines[0].startswith(b"Host: ")


async def test_touch_2_no_content_length_of_aiohttp_own(recording: RecordingServer) -> None:
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        await client.request("DELETE", recording.url)
        await client.request("VERSION-CONTROL", recording.url)
    for head in recording.heads:
        assert b"content-length" not in head.lower(), head


async def test_touch_2_no_header_of_aiohttp_own(recording: RecordingServer) -> None:
    # httpx.Request alone sets only Host and Content-Length; aiohttp would add
    # User-Agent, Accept, Accept-Encoding and, for a bytes body, a Content-Type.
    transport = AiohttpTransport()
    try:
        request = httpx.Request("POST", recording.url, content=b"payload")
        response = await transport.handle_async_request(request)
        await response.aread()
    finally:
        await transport.aclose()
    names = [line.split(b":")[0].lower() for line in recording.heads[0].split(b"\r\n")[1:] if line]
    assert names == [b"host", b"content-length"], recording.heads[0]


async def test_touch_3_aiohttp_does_not_resend_on_its_own() -> None:
    transport = AiohttpTransport()
    async with httpx.AsyncClient(transport=transport):
        pass
    session = aiohttp.ClientSession()
    try:
        assert session._retry_connection is True  # aiohttp's default: it would resend
        compat.disable_retry(session)
        assert session._retry_connection is False
    finally:
        await session.close()


def test_touch_4_a_connection_closed_while_the_loop_was_stopped_is_not_reused() -> None:
    # The seed's pattern: the loop runs only inside run_until_complete, so aiohttp never
    # sees the server close the idle connection; the POST must go out on a new one.
    server = RecordingServer(idle_close=0.1)
    loop = asyncio.new_event_loop()
    try:
        client = httpx.AsyncClient(transport=AiohttpTransport())
        first = loop.run_until_complete(client.post(server.url, content=b"one"))
        time.sleep(0.4)  # the server closes the idle connection meanwhile
        second = loop.run_until_complete(client.post(server.url, content=b"two"))
        loop.run_until_complete(client.aclose())
    finally:
        loop.close()
        server.close()
    assert (first.status_code, second.status_code) == (200, 200)
    assert server.connections == 2 and len(server.heads) == 2


@pytest.mark.parametrize("body", ["bytes", "stream"])
def test_touch_5_a_connection_closed_after_the_poll_is_not_written_on(
    body: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The close lands after touch 4's poll (it says "open") and before aiohttp's
    # body-writing task runs: nothing is written on that connection, the POST goes
    # out once, on a new one, instead of failing as a possibly-sent request.
    polls = [False]  # what the poll in CheckedConnector._get sees

    def closed_just_after_the_poll(connection: object) -> bool:
        return polls.pop() if polls else real_readable(connection)

    real_readable = compat._readable
    server = RecordingServer(idle_close=0.1)
    loop = asyncio.new_event_loop()

    async def chunks() -> AsyncIterator[bytes]:
        yield b"t"
        yield b"wo"

    try:
        client = httpx.AsyncClient(transport=AiohttpTransport())
        first = loop.run_until_complete(client.post(server.url, content=b"one"))
        time.sleep(0.4)  # the server closes the idle connection meanwhile
        monkeypatch.setattr(compat, "_readable", closed_just_after_the_poll)
        content = b"two" if body == "bytes" else chunks()
        second = loop.run_until_complete(client.post(server.url, content=content))
        loop.run_until_complete(client.aclose())
    finally:
        loop.close()
        server.close()
    assert polls == []  # the connection was handed out as open
    assert (first.status_code, second.status_code) == (200, 200)
    assert server.connections == 2 and len(server.heads) == 2


def test_the_overridden_hooks_exist_in_aiohttp() -> None:
    assert "_get" in vars(compat.CheckedConnector)
    assert "_get" in vars(aiohttp.TCPConnector) or hasattr(aiohttp.BaseConnector, "_get")
    hooks = {"update_headers", "update_auto_headers", "write_bytes"}
    assert hooks | {"GET_METHODS"} <= set(vars(compat.RawHeadersRequest))
    assert all(callable(getattr(aiohttp.ClientRequest, name, None)) for name in hooks)
    parameters = inspect.signature(aiohttp.ClientRequest.write_bytes).parameters
    assert list(parameters) == ["self", "writer", "conn", "content_length"]
