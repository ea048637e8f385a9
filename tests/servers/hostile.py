"""Hostile HTTP/1.1 servers (issue 15): a plain asyncio server that breaks the rules.

Every request is recorded as an `Arrival`: its request id (the `X-Request-Id`
header, else the `id` query parameter), its key (the `key` query parameter, else
the path), the connection it came on (numbered from 1 in accept order) and its
position on that connection. Every response echoes `X-Request-Id`, `X-Connection`
and `X-Index`, so a test can tell which request a response belongs to and that
no request arrived twice (`HostileServer.duplicates()`).

Paths (any method):

- `/ok`: 200 JSON `{"id", "connection", "index", "method", "path", "body_length"}`.
- `/close-after`: as `/ok`, then the server closes the connection (FIN) without
  having said `Connection: close` (a). The FIN leaves in the same TCP segment as
  the response's last bytes (TCP_CORK), as if from a server in its own process:
  a client that checks a pooled connection before reusing it always sees the close.
- `/idle-close?ms=N`: as `/ok`; the connection is then closed if no next request
  starts within N ms (b).
- `/short-length`: `Content-Length: 2`, body `ok`, followed in the same write by a
  whole second response (`X-Request-Id: evil`, body `EVIL`) that nobody asked
  for (c). A client that reuses the connection reads it as the next response.
- `/head-body`: the same smuggled response as the body, sent for GET and for HEAD
  alike (d); after a HEAD, a client that reuses the connection reads it.
- `/trickle?part=status|headers|body&interval=S&size=N`: a 200 with an N-byte
  body (default 10), one byte every S seconds (default 0.5) from the start of the
  status line, of the headers, or of the body (default `body`); earlier parts
  at once (e).
- `/stalled-upload?seconds=S`: reads the request head and never its body, never
  sends `100 Continue`; after S seconds (default 30) answers 408 and closes (f).
- `/retry-after?status=503&value=3600`: that status with `Retry-After: value` (g).
- `/hang?seconds=S`: reads the request, answers nothing for S seconds (default 30),
  then 504 and close.
- anything else: 404 with the `/ok` JSON.

Two query parameters work on every path: `close=1` (close after the response,
as `/close-after`) and `idle_ms=N` (as `/idle-close`). The same two behaviours
can be switched on for the whole server by a test (`HostileServer.close_after_response`,
`HostileServer.idle_ms`); the per-test reset switches them off, clears the
records and closes every connection still open from the previous test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from ._threaded import Serve

__all__ = [
    "EVIL_RESPONSE",
    "Arrival",
    "Head",
    "HostileServer",
    "HostileState",
    "hostile_serve",
    "read_body",
    "read_head",
    "response_bytes",
    "stream_serve",
]

_MAX_HEAD = 1024 * 1024

EVIL_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"
    b"X-Request-Id: evil\r\n\r\nEVIL"
)
"""The response smuggled by `/short-length` and `/head-body`."""

_REASONS = {
    200: "OK",
    404: "Not Found",
    408: "Request Timeout",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


# -- HTTP/1.1 pieces, shared with tests/servers/tls.py -----------------------------------


@dataclass(frozen=True, slots=True)
class Head:
    """A request line and its headers, as received."""

    method: str
    target: str
    path: str
    params: dict[str, str]
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


async def read_head(reader: asyncio.StreamReader) -> Head | None:
    """The next request head on the connection; None when the client closed it first."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = raw.decode("latin-1").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
    path, _, query = target.partition("?")
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    return Head(method, target, path, params, tuple(headers))


async def read_body(reader: asyncio.StreamReader, head: Head) -> bytes:
    """The request body (Content-Length or chunked), trailers dropped."""
    if "chunked" in (head.header("transfer-encoding") or "").lower():
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append((await reader.readexactly(size + 2))[:-2])
    length = int(head.header("content-length") or "0")
    return await reader.readexactly(length) if length else b""


def response_bytes(
    status: int,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    *,
    content_type: str = "application/json",
    length: int | None = None,
) -> bytes:
    """A whole HTTP/1.1 response; `length` overrides the Content-Length sent."""
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines.extend(f"{k}: {v}" for k, v in headers or ())
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_Headers = list[tuple[str, str]]
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class _Connections:
    """The handler tasks of one server, so that a reset or shutdown can end them."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[None]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None

    async def close_all(self) -> None:
        tasks = [t for t in self.tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close_all_threadsafe(self, timeout: float = 5.0) -> None:
        if self.loop is not None and self.loop.is_running():
            with contextlib.suppress(RuntimeError):  # the loop stopped meanwhile
                asyncio.run_coroutine_threadsafe(self.close_all(), self.loop).result(timeout)


def stream_serve(
    handler: Handler,
    *,
    ssl_context: ssl.SSLContext | None = None,
    connections: _Connections | None = None,
) -> Serve:
    """A `Serve` (see `_threaded`) running `handler(reader, writer)` per connection.

    The handler's network errors end its connection quietly; shutdown cancels
    the handlers and closes their connections.
    """
    registry = connections if connections is not None else _Connections()

    async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        registry.tasks.add(task)
        try:
            await handler(reader, writer)
        except (
            ConnectionError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ssl.SSLError,
            ValueError,
        ):
            pass  # the client went away or sent nonsense: drop the connection
        except asyncio.CancelledError:
            pass  # reset or shutdown
        finally:
            registry.tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def serve(
        sock: socket.socket, started: Callable[[], None], stopping: asyncio.Event
    ) -> None:
        registry.loop = asyncio.get_running_loop()
        server = await asyncio.start_server(run, sock=sock, limit=_MAX_HEAD, ssl=ssl_context)
        started()
        try:
            await stopping.wait()
        finally:
            server.close()
            await registry.close_all()
            await server.wait_closed()

    return serve


# -- the hostile server ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrival:
    """One request as the hostile server received it."""

    request_id: str | None
    key: str
    method: str
    path: str
    connection: int  # numbered from 1 in accept order (since the last reset)
    index: int  # position on its connection, from 1
    body_length: int  # -1 when the server did not read the body (/stalled-upload)
    headers: tuple[tuple[str, str], ...]
    time: float  # time.monotonic() when the request head arrived


class HostileState:
    """Records and knobs shared between the server thread and the tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._arrivals: list[Arrival] = []
        self._connections = 0
        self.close_after_response = False
        self.idle_ms: float | None = None
        self.connections_registry = _Connections()

    def connected(self) -> int:
        with self._lock:
            self._connections += 1
            return self._connections

    def arrive(self, arrival: Arrival) -> None:
        with self._lock:
            self._arrivals.append(arrival)

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return list(self._arrivals)

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def reset(self) -> None:
        self.connections_registry.close_all_threadsafe()
        with self._lock:
            self._arrivals.clear()
            self._connections = 0
            self.close_after_response = False
            self.idle_ms = None


def _float(params: dict[str, str], name: str, default: float) -> float:
    try:
        return float(params[name])
    except (KeyError, ValueError):
        return default


def _cork(writer: asyncio.StreamWriter, on: bool) -> None:
    """TCP_CORK (Linux): hold what is written until uncorked or shut down."""
    sock = writer.get_extra_info("socket")
    cork = getattr(socket, "TCP_CORK", None)
    if sock is not None and cork is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, cork, 1 if on else 0)


class _Connection:
    def __init__(
        self,
        state: HostileState,
        stopping: asyncio.Event,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.state = state
        self.stopping = stopping
        self.reader = reader
        self.writer = writer
        self.number = state.connected()
        self.index = 0

    async def serve(self) -> None:
        idle: float | None = None
        while True:
            if idle is None:
                head = await read_head(self.reader)
            else:
                try:
                    head = await asyncio.wait_for(read_head(self.reader), idle)
                except asyncio.TimeoutError:
                    await self._hang_up()  # idle too long: close without a word
                    return
            if head is None:
                return
            self.index += 1
            closing = (
                head.path == "/close-after"
                or head.params.get("close") == "1"
                or self.state.close_after_response
            )
            if closing and head.path != "/trickle":
                _cork(self.writer, True)
            if not await self._answer(head):
                return
            if closing:
                await self._hang_up()
                return
            idle = self._idle_after(head)

    async def _hang_up(self) -> None:
        """Close as a server process would: FIN at once (after a corked response, in the
        same segment as its last bytes, so no client can see the response without the
        FIN), then read and drop what the client still sends until its EOF (1 s at
        most), so that the close is a FIN and not a RST."""
        self.writer.write_eof()
        _cork(self.writer, False)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._discard_input(), 1.0)

    async def _discard_input(self) -> None:
        while await self.reader.read(65536):
            pass

    def _idle_after(self, head: Head) -> float | None:
        """How long (s) this connection may stay idle after answering `head`; None: forever."""
        ms = _float(head.params, "ms" if head.path == "/idle-close" else "idle_ms", -1.0)
        if ms < 0 and self.state.idle_ms is not None:
            ms = self.state.idle_ms
        return ms / 1000 if ms >= 0 else None

    def _record(self, head: Head, body_length: int) -> tuple[dict[str, object], _Headers]:
        """Record the arrival; return the `/ok` JSON fields and the echo headers."""
        request_id = head.header("x-request-id") or head.params.get("id")
        arrival = Arrival(
            request_id=request_id,
            key=head.params.get("key") or head.path,
            method=head.method,
            path=head.path,
            connection=self.number,
            index=self.index,
            body_length=body_length,
            headers=head.headers,
            time=time.monotonic(),
        )
        self.state.arrive(arrival)
        info: dict[str, object] = {
            "id": request_id,
            "connection": self.number,
            "index": self.index,
            "method": head.method,
            "path": head.path,
            "body_length": body_length,
        }
        headers = [("X-Connection", str(self.number)), ("X-Index", str(self.index))]
        if request_id is not None:
            headers.insert(0, ("X-Request-Id", request_id))
        return info, headers

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def _wait(self, seconds: float) -> None:
        """Sleep `seconds`, or less when the server stops."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _answer(self, head: Head) -> bool:
        """Answer one request; False when the connection must close now."""
        path, params = head.path, head.params
        if path == "/stalled-upload":
            _, headers = self._record(head, -1)
            await self._wait(_float(params, "seconds", 30.0))
            await self._write(response_bytes(408, b"", [*headers, ("Connection", "close")]))
            return False
        body = await read_body(self.reader, head)
        info, headers = self._record(head, len(body))
        ok = json.dumps(info).encode()
        if path == "/hang":
            await self._wait(_float(params, "seconds", 30.0))
            await self._write(response_bytes(504, b"", [*headers, ("Connection", "close")]))
            return False
        if path in ("/ok", "/close-after", "/idle-close"):
            await self._write(response_bytes(200, b"" if head.method == "HEAD" else ok, headers))
        elif path == "/short-length":
            await self._write(
                response_bytes(200, b"ok", headers, content_type="text/plain") + EVIL_RESPONSE
            )
        elif path == "/head-body":
            await self._write(
                response_bytes(200, EVIL_RESPONSE, headers, content_type="text/plain")
            )
        elif path == "/trickle":
            await self._trickle(params, headers)
        elif path == "/retry-after":
            status = int(_float(params, "status", 503))
            value = params.get("value", "3600")
            await self._write(response_bytes(status, ok, [*headers, ("Retry-After", value)]))
        else:
            await self._write(response_bytes(404, b"" if head.method == "HEAD" else ok, headers))
        return True

    async def _trickle(self, params: dict[str, str], headers: list[tuple[str, str]]) -> None:
        size = max(0, int(_float(params, "size", 10)))
        interval = _float(params, "interval", 0.5)
        part = params.get("part", "body")
        data = response_bytes(200, b"t" * size, headers, content_type="text/plain")
        status_end = data.index(b"\r\n") + 2
        head_end = len(data) - size
        start = {"status": 0, "headers": status_end}.get(part, head_end)
        if start:
            await self._write(data[:start])
        for i in range(start, len(data)):
            if self.stopping.is_set() or self.reader.at_eof():
                return
            await self._write(data[i : i + 1])
            if i + 1 < len(data):
                await self._wait(interval)


def hostile_serve(state: HostileState) -> Serve:
    """A `Serve` (see `_threaded`) for the hostile server."""
    holder: dict[str, asyncio.Event] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _Connection(state, holder["stopping"], reader, writer).serve()

    inner = stream_serve(handle, connections=state.connections_registry)

    async def serve(
        sock: socket.socket, started: Callable[[], None], stopping: asyncio.Event
    ) -> None:
        holder["stopping"] = stopping
        await inner(sock, started, stopping)

    return serve


class HostileServer:
    """What the `hostile_server` fixture returns."""

    def __init__(self, url: str, state: HostileState) -> None:
        self.url = url
        self._state = state

    def arrivals(
        self, key: str | None = None, *, min_count: int = 0, timeout: float = 2.0
    ) -> list[Arrival]:
        """The requests received (for `key` only, when given), in arrival order.

        Waits up to `timeout` for at least `min_count` of them: a client can have
        its (smuggled) answer before the server has even read its request.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = self._state.arrivals()
            if key is not None:
                found = [a for a in found if a.key == key]
            if len(found) >= min_count or time.monotonic() >= deadline:
                return found
            time.sleep(0.005)

    def hits(self, key: str) -> int:
        """How many requests arrived for `key` (the `key` query parameter, else the path)."""
        return len(self.arrivals(key))

    def duplicates(self) -> list[str]:
        """Request ids that arrived more than once (should be none)."""
        counts = Counter(a.request_id for a in self._state.arrivals() if a.request_id)
        return sorted(rid for rid, n in counts.items() if n > 1)

    @property
    def connections(self) -> int:
        """How many TCP connections were accepted (since the last reset)."""
        return self._state.connections

    @property
    def close_after_response(self) -> bool:
        """When True, every response is followed by a close (as `/close-after`)."""
        return self._state.close_after_response

    @close_after_response.setter
    def close_after_response(self, value: bool) -> None:
        self._state.close_after_response = value

    @property
    def idle_ms(self) -> float | None:
        """When set, every connection idle that long after a response is closed."""
        return self._state.idle_ms

    @idle_ms.setter
    def idle_ms(self, value: float | None) -> None:
        self._state.idle_ms = value

    def reset(self) -> None:
        """Clear the records and knobs; close the connections left open."""
        self._state.reset()

    def __repr__(self) -> str:
        return f"HostileServer({self.url!r})"
