"""A plain asyncio HTTP/1.1 server for faults an ASGI server cannot produce.

It reads each request (request line, headers, a Content-Length or chunked body),
counts it under its key (the `key` query parameter, else the path), then by path:

- `/reset-before-response`: abortive close (RST: SO_LINGER on, linger 0), no answer.
- `/close-before-response`: plain close (FIN), no answer.
- `/reset-mid-body`: `200 OK`, `Content-Length: 1000`, 10 bytes of body, then RST.
- `/truncated`: `Content-Length: 1000`, 10 bytes of body, then FIN.
- `/garbage`: a non-HTTP answer, then FIN.
- `/stall`: no answer until the client closes.
- `/ok`: `200 OK`, body `ok`.
- anything else: 404.

Every path takes `?ok_after=N`: hits after the first N for that key answer a
normal `200 OK` with body `ok` (Content-Length, keep-alive). Requests on a kept
alive connection are served in a loop until a fault closes the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from ._threaded import Serve

__all__ = ["RawServer", "RawServerState", "raw_serve"]

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n"
_PARTIAL = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
)
_GARBAGE = b"SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n\xff\xfe\x00\r\n\r\n"
_MAX_HEAD = 1024 * 1024


class RawServerState:
    """Thread-safe counters shared between the server thread and the tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, int] = {}
        self._connections = 0

    def hit(self, key: str) -> int:
        with self._lock:
            n = self._hits.get(key, 0) + 1
            self._hits[key] = n
            return n

    def connected(self) -> None:
        with self._lock:
            self._connections += 1

    def hits(self, key: str) -> int:
        with self._lock:
            return self._hits.get(key, 0)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self._connections = 0


class _Request:
    __slots__ = ("method", "path", "params")

    def __init__(self, method: str, path: str, params: dict[str, str]) -> None:
        self.method = method
        self.path = path
        self.params = params


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """The next request on the connection, its body read and dropped; None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection between requests
    lines = head.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                break
            await reader.readexactly(size + 2)
    else:
        length = int(headers.get("content-length", "0") or "0")
        while length > 0:
            chunk = await reader.read(min(length, 1 << 20))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", length)
            length -= len(chunk)
    path, _, query = target.partition("?")
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return _Request(method, path, params)


def _unsent_bytes(writer: asyncio.StreamWriter) -> int:
    """Bytes written but not yet acknowledged by the peer (asyncio buffer + kernel queue)."""
    pending = writer.transport.get_write_buffer_size()
    sock = writer.get_extra_info("socket")
    try:
        import fcntl
        import termios

        buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # SIOCOUTQ on Linux
    except (ImportError, AttributeError, OSError):
        return pending
    return pending + int(struct.unpack("i", buf)[0])


async def _flushed(writer: asyncio.StreamWriter, timeout: float = 1.0) -> None:
    """Wait until the peer's kernel has acknowledged everything written so far.

    Without this the RST could overtake the data (linger 0 discards unsent bytes).
    """
    await writer.drain()
    await asyncio.sleep(0.01)  # where SIOCOUTQ is unavailable, a short grace period
    deadline = time.monotonic() + timeout
    while _unsent_bytes(writer) and time.monotonic() < deadline:
        await asyncio.sleep(0.001)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abortive close: SO_LINGER on with linger 0 makes close() send RST instead of FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _stall(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass


Fault = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _reset_before_response(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    _reset(writer)


async def _close_before_response(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    writer.close()


async def _reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(_PARTIAL)
    await _flushed(writer)  # the headers and 10 bytes reach the client before the RST
    _reset(writer)


async def _truncated(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(_PARTIAL)
    await writer.drain()
    writer.close()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(_GARBAGE)
    await writer.drain()
    writer.close()


async def _stall_fault(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _stall(reader)
    writer.close()


_FAULTS: dict[str, Fault] = {
    "/reset-before-response": _reset_before_response,
    "/close-before-response": _close_before_response,
    "/reset-mid-body": _reset_mid_body,
    "/truncated": _truncated,
    "/garbage": _garbage,
    "/stall": _stall_fault,
}


class _Handler:
    def __init__(self, state: RawServerState) -> None:
        self.state = state
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.state.connected()
        try:
            await self._serve(reader, writer)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            pass  # the client went away or sent nonsense: drop the connection
        except asyncio.CancelledError:
            pass  # shutdown
        finally:
            self.tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            request = await _read_request(reader)
            if request is None:
                return
            key = request.params.get("key") or request.path
            hit = self.state.hit(key)
            ok_after = request.params.get("ok_after")
            fault = _FAULTS.get(request.path)
            if request.path == "/ok" or (ok_after is not None and hit > int(ok_after)):
                writer.write(_OK if request.method == "HEAD" else _OK + b"ok")
            elif fault is None:
                writer.write(_NOT_FOUND if request.method == "HEAD" else _NOT_FOUND + b"not found")
            else:
                await fault(reader, writer)
                return
            await writer.drain()


def raw_serve(state: RawServerState) -> Serve:
    """A `Serve` (see `_threaded`) for the raw server."""

    async def serve(
        sock: socket.socket, started: Callable[[], None], stopping: asyncio.Event
    ) -> None:
        handler = _Handler(state)
        server = await asyncio.start_server(handler, sock=sock, limit=_MAX_HEAD)
        started()
        try:
            await stopping.wait()
        finally:
            server.close()
            for task in list(handler.tasks):
                task.cancel()
            await asyncio.gather(*handler.tasks, return_exceptions=True)
            await server.wait_closed()

    return serve


class RawServer:
    """What the `raw_server` fixture returns."""

    def __init__(self, url: str, state: RawServerState) -> None:
        self.url = url
        self._state = state

    def hits(self, key: str) -> int:
        """How many requests arrived for `key` (the `key` query parameter, else the path)."""
        return self._state.hits(key)

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted (since the last reset)."""
        return self._state.connections

    def reset(self) -> None:
        self._state.reset()

    def __repr__(self) -> str:
        return f"RawServer({self.url!r})"
