"""A raw asyncio HTTP/1.1 server that records the bytes on the wire and answers odd responses.

It listens on two ports, `a` (the main one) and `b` (another origin, for
cross-origin redirects). Every request is recorded as it arrived, byte for byte
(request line, headers, body with its chunked framing), with the listener and
the connection it came on. The answer is chosen by path (query parameters tune it):

- `/ok[?body=TEXT]`: `200 OK`, text body (`ok` by default).
- `/status?code=N[&reason=R]`: status N, reason R (default: the standard phrase);
  a body except for 1xx/204/304.
- `/no-reason[?space=0]`: `HTTP/1.1 200 \\r\\n` (empty reason; `space=0`: no space either).
- `/odd-headers`: repeated and mixed-case headers, an empty value, a latin-1 value.
- `/http10`: an HTTP/1.0 answer without Content-Length, the body ending at close.
- `/chunked[?trailers=1]`: a chunked body in three chunks (then a trailer).
- `/encoded?coding=gzip|deflate|br|zstd[&chunked=1]`: a compressed body.
- `/cookies`: `Set-Cookie` variants (paths, Max-Age, quoting, a foreign domain, a deletion).
- `/redirect?status=N&to=TARGET[&body=1]`: a redirect to TARGET (`b:/path` means
  that path on listener `b`), with a body or with none.
- `/loop`: a 302 to itself.
- `/slow?seconds=S`: the headers at once, the body S seconds later.
- `/stall`: no answer until the client goes away.
- `/cut`: `Content-Length: 1000`, 10 bytes, then close.
- `/huge?size=N`: a header `X-Huge` of N bytes.
- `/no-continue`: never sends `100 Continue`, whatever `Expect` says; answers
  200 once the body (by Content-Length) has arrived.
- `/need?header=H&value=V`: 200 if request header H is V, else 401 with a
  `WWW-Authenticate: Custom` challenge.
- anything else: 404.

`/__settle` is the tests' own: it is not recorded, and it is answered (200) once
every other connection has closed, or (503) after `timeout` seconds. Sent on each
listener, it also waits out connections still queued for accept: see `settle()`.

Any path takes `idle_close=S`: the connection is closed (FIN) if no further
request arrives on it within S seconds, as servers with a keep-alive timeout do.
A request in absolute form (`GET http://host/path`, to a forward proxy) is
answered by its path, so either listener can play an HTTP proxy.

HEAD gets the same headers and no body. Connections are kept alive until the client
closes them (or an answer such as `/http10` or `/cut` ends them).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http
import socket
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from ._threaded import Serve, bind_loopback

__all__ = ["WireRecord", "WireServer", "WireState", "wire_serve"]

_MAX_HEAD = 1024 * 1024
ENCODED_TEXT = b"compressed hello " * 64


@dataclass
class WireRecord:
    """One request as it arrived: listener (`a`/`b`), connection number, raw bytes."""

    listener: str
    connection: int
    data: bytearray = field(default_factory=bytearray)


class WireState:
    """The records, shared between the server thread and the tests (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[WireRecord] = []
        self._connections = 0
        self._open = 0
        self.ports: dict[str, int] = {}

    def connection(self) -> int:
        """A new connection's number (it counts as open until `closed()`)."""
        with self._lock:
            self._connections += 1
            self._open += 1
            return self._connections

    def closed(self) -> None:
        with self._lock:
            self._open -= 1

    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def discard(self, record: WireRecord) -> None:
        with self._lock:
            self._records.remove(record)

    def new_record(self, listener: str, connection: int) -> WireRecord:
        record = WireRecord(listener, connection)
        with self._lock:
            self._records.append(record)
        return record

    def append(self, record: WireRecord, data: bytes) -> None:
        with self._lock:
            record.data += data

    def take(self) -> list[WireRecord]:
        """The records since the last take, in arrival order (copies)."""
        with self._lock:
            records, self._records = self._records, []
            return [WireRecord(r.listener, r.connection, bytearray(r.data)) for r in records]


@dataclass
class _Request:
    method: str
    path: str
    params: dict[str, str]
    headers: list[tuple[str, str]]
    record: WireRecord

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


class _Reader:
    """Reads one request at a time, copying every byte into the request's record."""

    def __init__(self, reader: asyncio.StreamReader, state: WireState, listener: str) -> None:
        self._reader = reader
        self._state = state
        self._listener = listener
        self._connection = state.connection()

    async def _read(self, record: WireRecord, coro: Awaitable[bytes]) -> bytes:
        data = await coro
        self._state.append(record, data)
        return data

    async def head(self) -> _Request | None:
        try:
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                record = self._state.new_record(self._listener, self._connection)
                self._state.append(record, exc.partial)
            return None
        record = self._state.new_record(self._listener, self._connection)
        self._state.append(record, head)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers.append((name.strip(), value.strip()))
        if target.startswith("http://"):  # absolute form: asked as a forward proxy
            target = "/" + target.removeprefix("http://").partition("/")[2]
        path, _, query = target.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
        return _Request(method, path, params, headers, record)

    async def body(self, request: _Request) -> None:
        """Read (and record) the body announced by Content-Length or chunked framing."""
        record, reader = request.record, self._reader
        if "chunked" in (request.header("transfer-encoding") or "").lower():
            while True:
                line = await self._read(record, reader.readuntil(b"\r\n"))
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while await self._read(record, reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    return
                await self._read(record, reader.readexactly(size + 2))
        length = int(request.header("content-length") or "0")
        while length > 0:
            chunk = await reader.read(min(length, 1 << 20))
            if not chunk:
                raise asyncio.IncompleteReadError(b"", length)
            self._state.append(record, chunk)
            length -= len(chunk)


def _response(
    status: int,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    reason: str | None = None,
    head: bool = False,
    length: bool = True,
) -> bytes:
    if reason is None:
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    lines = [f"HTTP/1.1 {status} {reason}".encode("latin-1")]
    for name, value in headers or []:
        lines.append(f"{name}: {value}".encode("latin-1"))
    if length:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (b"" if head else body)


def _encode(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data, mtime=0)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "br":
        try:
            import brotli  # type: ignore[import-not-found]
        except ImportError:
            import brotlicffi as brotli  # type: ignore[import-not-found,no-redef]
        return bytes(brotli.compress(data))
    if coding == "zstd":
        import zstandard  # type: ignore[import-not-found]

        return bytes(zstandard.ZstdCompressor().compress(data))
    raise ValueError(f"unknown coding {coding!r}")


def _chunked(parts: list[bytes], trailers: bytes = b"") -> bytes:
    out = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
    return out + b"0\r\n" + trailers + b"\r\n"


_COOKIES = [
    ("Set-Cookie", "plain=1"),
    ("Set-Cookie", "pathed=2; Path=/"),
    ("set-cookie", "aged=3; Max-Age=3600; HttpOnly"),
    ("Set-Cookie", 'quoted="a b"; Path=/'),
    ("Set-Cookie", "elsewhere=4; Path=/other"),
    ("Set-Cookie", "foreign=5; Domain=example.com"),
    ("Set-Cookie", "gone=; Max-Age=0"),
]

_ODD_HEADERS = [
    ("X-Rep", "1"),
    ("x-rep", "2"),
    ("X-MiXeD-CaSe", "v"),
    ("X-Empty", ""),
    ("X-Latin", "caf\xe9"),
    ("X-Rep", "3"),
    ("Content-Type", "text/plain"),
]


class _Handler:
    def __init__(self, state: WireState, stopping: asyncio.Event) -> None:
        self.state = state
        self.stopping = stopping
        self.tasks: set[asyncio.Task[None]] = set()

    def for_listener(self, listener: str) -> Callable[..., object]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self.tasks.add(task)
            wire_reader = _Reader(reader, self.state, listener)
            counted = True
            try:
                request = await wire_reader.head()
                if request is not None and request.path == "/__settle":
                    self.state.discard(request.record)
                    self.state.closed()
                    counted = False
                    await self._settle(request, writer)
                elif request is not None:
                    await self._serve(request, wire_reader, reader, writer)
            except (
                ConnectionError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
                asyncio.CancelledError,
            ):
                pass  # the client went away, sent nonsense, or the server stops
            finally:
                self.tasks.discard(task)
                writer.close()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await writer.wait_closed()
                if counted:
                    self.state.closed()

        return handle

    async def _settle(self, request: _Request, writer: asyncio.StreamWriter) -> None:
        deadline = time.monotonic() + float(request.params.get("timeout", "2"))
        while self.state.open_connections() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        status = 503 if self.state.open_connections() else 200
        writer.write(_response(status, [("Connection", "close")]))
        await writer.drain()

    async def _serve(
        self,
        request: _Request | None,
        rd: _Reader,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        while request is not None:
            await rd.body(request)
            keep_open = await self._answer(request, reader, writer)
            await writer.drain()
            if not keep_open:
                return
            idle = request.params.get("idle_close")
            if idle is None:
                request = await rd.head()
                continue
            try:
                request = await asyncio.wait_for(rd.head(), float(idle))
            except asyncio.TimeoutError:
                return  # idle for too long: close (FIN), as servers with keep-alive timeouts do

    async def _answer(
        self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Write the answer; False when the connection ends with it."""
        p, path = request.params, request.path
        head = request.method == "HEAD"
        text = [("Content-Type", "text/plain")]
        if path == "/ok":
            writer.write(_response(200, text, p.get("body", "ok").encode(), head=head))
        elif path == "/status":
            code = int(p["code"])
            no_body = code < 200 or code in (204, 304)
            body = b"" if no_body else f"status {code}".encode()
            writer.write(
                _response(code, text, body, reason=p.get("reason"), head=head, length=not no_body)
            )
        elif path == "/no-reason":
            line = b"HTTP/1.1 200 \r\n" if p.get("space") != "0" else b"HTTP/1.1 200\r\n"
            writer.write(line + b"Content-Length: 2\r\n\r\n" + (b"" if head else b"ok"))
        elif path == "/odd-headers":
            writer.write(_response(200, _ODD_HEADERS, b"odd", head=head))
        elif path == "/http10":
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            writer.write(b"" if head else b"old school")
            return False
        elif path == "/chunked":
            trailers = b"X-Trailer: t\r\n" if p.get("trailers") else b""
            hdrs = [*text, ("Transfer-Encoding", "chunked")]
            if trailers:
                hdrs.append(("Trailer", "X-Trailer"))
            writer.write(_response(200, hdrs, length=False))
            if not head:
                writer.write(_chunked([b"one,", b"two,", b"three"], trailers))
        elif path == "/encoded":
            coding = p["coding"]
            body = _encode(coding, ENCODED_TEXT)
            hdrs = [*text, ("Content-Encoding", coding)]
            if p.get("chunked"):
                writer.write(
                    _response(200, [*hdrs, ("Transfer-Encoding", "chunked")], length=False)
                )
                if not head:
                    half = len(body) // 2
                    writer.write(_chunked([body[:half], body[half:]]))
            else:
                writer.write(_response(200, hdrs, body, head=head))
        elif path == "/cookies":
            writer.write(_response(200, [*text, *_COOKIES], b"cookies", head=head))
        elif path == "/redirect":
            target = p["to"]
            if target.startswith("b:"):
                target = f"http://127.0.0.1:{self.state.ports['b']}{target[2:]}"
            body = f"see {target}".encode() if p.get("body") else b""
            writer.write(_response(int(p["status"]), [("Location", target)], body, head=head))
        elif path == "/loop":
            writer.write(_response(302, [("Location", "/loop")], head=head))
        elif path == "/slow":
            writer.write(_response(200, text, b"slow", head=True))  # headers only
            await writer.drain()
            await self._wait(float(p.get("seconds", "0.3")))
            writer.write(b"" if head else b"slow")
        elif path == "/stall":
            while await reader.read(65536):
                pass
            return False
        elif path == "/cut":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            return False
        elif path == "/huge":
            big = "h" * int(p.get("size", "65536"))
            writer.write(_response(200, [("X-Huge", big)], b"huge", head=head))
        elif path == "/no-continue":
            writer.write(_response(200, text, b"got it", head=head))
        elif path == "/need":
            if request.header(p["header"]) == p["value"]:
                writer.write(_response(200, text, b"welcome", head=head))
            else:
                writer.write(
                    _response(401, [("WWW-Authenticate", "Custom")], b"who are you", head=head)
                )
        else:
            writer.write(_response(404, text, b"not found", head=head))
        return True

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)


def wire_serve(state: WireState) -> Serve:
    """A `Serve` (see `_threaded`): listener `a` on the given socket, `b` on a new one."""

    async def serve(
        sock: socket.socket, started: Callable[[], None], stopping: asyncio.Event
    ) -> None:
        handler = _Handler(state, stopping)
        other = bind_loopback()
        state.ports = {"a": sock.getsockname()[1], "b": other.getsockname()[1]}
        servers = [
            await asyncio.start_server(handler.for_listener(name), sock=s, limit=_MAX_HEAD)
            for name, s in (("a", sock), ("b", other))
        ]
        started()
        try:
            await stopping.wait()
        finally:
            for server in servers:
                server.close()
            for task in list(handler.tasks):
                task.cancel()
            await asyncio.gather(*handler.tasks, return_exceptions=True)
            for server in servers:
                await server.wait_closed()
            other.close()

    return serve


class WireServer:
    """What the `wire_server` fixture returns: the two origins and the records."""

    def __init__(self, state: WireState) -> None:
        self._state = state

    @property
    def url(self) -> str:
        """Listener `a`: the main origin."""
        return f"http://127.0.0.1:{self._state.ports['a']}"

    @property
    def other_url(self) -> str:
        """Listener `b`: another origin (another port)."""
        return f"http://127.0.0.1:{self._state.ports['b']}"

    @property
    def ports(self) -> dict[str, int]:
        return dict(self._state.ports)

    def take(self) -> list[WireRecord]:
        """The requests recorded since the last take (or reset), in arrival order."""
        return self._state.take()

    def settle(self, timeout: float = 2.0) -> bool:
        """Wait until the server has seen every connection close (False: some still
        open after `timeout` seconds), so that a request cut short is all recorded.

        A probe goes to each listener: it is accepted after any connection still
        queued there, and answered once no other connection is open.
        """
        settled = True
        for port in self._state.ports.values():
            with socket.create_connection(("127.0.0.1", port), timeout=timeout + 5) as sock:
                sock.sendall(b"GET /__settle?timeout=%g HTTP/1.1\r\n\r\n" % timeout)
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            settled = settled and answer.startswith(b"HTTP/1.1 200 ")
        return settled

    def reset(self) -> None:
        self._state.take()

    def __repr__(self) -> str:
        return f"WireServer({self.url!r})"
