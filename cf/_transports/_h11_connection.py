"""One HTTP/1.1 connection of the h11 engine: a socket, h11's state machine over it, and
the rule for reusing it.

h11 parses and frames exactly as it does under httpx's own transport (httpcore uses
it the same way), so responses read the same. What this module adds:

- every socket operation's timeout is clamped to the attempt's deadline (`Timeouts`);
- a connection is reused only if its last exchange ended cleanly: both messages
  complete and not one byte received beyond the response's end (a Content-Length
  shorter than the body, a HEAD, 204 or 304 answered with a body). Such bytes
  would be read as the next request's response: the connection is closed instead;
- an idle connection is polled before reuse: readable means the server closed it
  (or sent what nobody asked for), and it is dropped unused;
- a reused connection that refuses the request's first bytes (the server had
  closed it) raises `NotSent`: nothing of the request left, so the caller may send
  it again on a fresh connection, whatever its method.
"""

from __future__ import annotations

import errno
import select
import socket
import ssl
from typing import Any

import h11
import httpx

from cf._transports._h11_errors import Timeouts, map_h11_exceptions

__all__ = [
    "Connection",
    "NetworkStream",
    "NotSent",
    "open_socket",
    "open_tunnel",
    "start_tls",
]

_READ_SIZE = 64 * 1024
_MAX_HEAD = 100 * 1024  # httpx (httpcore) accepts a response head up to 100 KiB
_UNSET = -1.0  # a socket timeout never set by us
_JOIN_BELOW = 64 * 1024  # pieces of a write smaller than this together are joined
# A write that fails with these on a reused connection: the peer is gone.
_GONE = frozenset({errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ENOTCONN})
_Key = tuple[bytes, bytes, int]


class NotSent(Exception):
    """A reused connection refused the first bytes of the request: the server had closed
    it, and nothing of the request left (the caller sends it on a fresh connection)."""


def _readable(sock: socket.socket) -> bool:
    """Whether `sock` has something to read (or has been closed), without waiting."""
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


class Connection:
    """An HTTP/1.1 connection to one origin (`key`: scheme, host, port), used by one
    request at a time."""

    __slots__ = ("key", "sock", "requests", "idle_since", "_h11", "_timeout")

    def __init__(self, key: _Key, sock: socket.socket) -> None:
        self.key = key
        self.sock = sock
        self.requests = 0
        self.idle_since = 0.0
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        self._timeout: float | None = _UNSET

    def _settimeout(self, value: float | None) -> None:
        if value != self._timeout:
            self.sock.settimeout(value)
            self._timeout = value

    # Sending -----------------------------------------------------------------

    def send(
        self,
        request: httpx.Request,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        timeouts: Timeouts,
    ) -> None:
        """Send the request head and body.

        A write that fails once the request has started to leave is not raised: the
        server may have answered early (a 413, say) and closed; reading the response
        tells (httpx's own transport does the same). A write timeout is raised.
        """
        self.requests += 1
        state = self._h11
        with map_h11_exceptions("write", request):
            event = h11.Request(method=request.method, target=target, headers=headers)
            pieces = [state.send(event) or b""]
            stream = request.stream
            whole = isinstance(stream, httpx.ByteStream)
            if whole:  # a body held in memory: with the head, in one write when small
                body = b"".join(stream)  # type: ignore[arg-type]
                if body:
                    pieces += state.send_with_data_passthrough(h11.Data(data=body)) or ()
                pieces += state.send_with_data_passthrough(h11.EndOfMessage()) or ()
            if not self._write(pieces, timeouts, reused=self.requests > 1) or whole:
                return
        for chunk in stream:  # type: ignore[union-attr]
            with map_h11_exceptions("write", request):
                pieces = state.send_with_data_passthrough(h11.Data(data=chunk)) or []
                if pieces and not self._write(pieces, timeouts):
                    return
        with map_h11_exceptions("write", request):
            pieces = state.send_with_data_passthrough(h11.EndOfMessage()) or []
            if pieces:
                self._write(pieces, timeouts)

    def _write(self, pieces: list[bytes], timeouts: Timeouts, reused: bool = False) -> bool:
        """Write `pieces` (joined when small: one `send`), each `send` bounded by the
        write timeout clamped to the deadline (`sendall` would give each TLS record the
        whole timeout). False when the connection failed: the caller stops sending and
        reads. `reused`: `NotSent` when the very first `send` finds the peer gone."""
        if len(pieces) > 1 and sum(map(len, pieces)) <= _JOIN_BELOW:
            pieces = [b"".join(pieces)]
        sock = self.sock
        try:
            for piece in pieces:
                view = memoryview(piece)
                while view:
                    self._settimeout(timeouts.write())
                    sent = sock.send(view)
                    view = view[sent:]
                    reused = False
        except TimeoutError:
            raise
        except OSError as exc:
            if reused and exc.errno in _GONE:
                raise NotSent() from exc
            return False
        return True

    # Receiving ---------------------------------------------------------------

    def _event(self, request: httpx.Request, timeouts: Timeouts) -> Any:
        state = self._h11
        while True:
            event = state.next_event()
            if event is not h11.NEED_DATA:
                return event
            self._settimeout(timeouts.read())
            data = self.sock.recv(_READ_SIZE)
            if not data and state.their_state is h11.SEND_RESPONSE:
                message = "Server disconnected without sending a response."
                raise httpx.RemoteProtocolError(message, request=request)
            state.receive_data(data)

    def receive_head(
        self, request: httpx.Request, timeouts: Timeouts
    ) -> h11.Response | h11.InformationalResponse:
        """The response head (interim 1xx responses skipped, but for 101)."""
        with map_h11_exceptions("read", request):
            while True:
                event = self._event(request, timeouts)
                if isinstance(event, h11.Response):
                    return event
                if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                    return event

    def receive_chunk(self, request: httpx.Request, timeouts: Timeouts) -> bytes | None:
        """The next piece of the response body; None at its end."""
        with map_h11_exceptions("read", request):
            while True:
                event = self._event(request, timeouts)
                kind = type(event)
                if kind is h11.Data:
                    return bytes(event.data)
                if kind is h11.EndOfMessage or event is h11.PAUSED:
                    return None

    def receive_body(self, request: httpx.Request, timeouts: Timeouts) -> bytes:
        """The whole response body."""
        chunks = []
        with map_h11_exceptions("read", request):
            while True:
                event = self._event(request, timeouts)
                kind = type(event)
                if kind is h11.Data:
                    chunks.append(event.data)
                elif kind is h11.EndOfMessage or event is h11.PAUSED:
                    return b"".join(chunks)

    def leading_data(self) -> bytes:
        """What arrived after the response head (for a connection switching protocols)."""
        return bytes(self._h11.trailing_data[0])

    # Reuse -------------------------------------------------------------------

    def finish(self) -> bool:
        """After the response was closed: True, ready for the next request, when both
        messages are complete and nothing arrived beyond the response; else False (the
        caller closes it). Bytes still in the socket are seen by the poll before reuse."""
        state = self._h11
        if state.our_state is not h11.DONE or state.their_state is not h11.DONE:
            return False
        extra, closed = state.trailing_data
        if extra or closed:
            return False
        state.start_next_cycle()
        return True

    def dropped(self) -> bool:
        """Whether the idle connection is unusable: the server closed it or sent bytes
        nobody asked for (nothing may arrive on an idle HTTP/1.1 connection)."""
        try:
            return _readable(self.sock)
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class NetworkStream:
    """The `network_stream` response extension, as httpx's own transport offers it:
    `get_extra_info(name)` ("ssl_object", "client_addr", "server_addr", "socket",
    "is_readable"), and `read`/`write`/`close` for a connection whose protocol was
    switched (101, CONNECT). Its errors are httpx's."""

    __slots__ = ("_connection", "_leading")

    def __init__(self, connection: Connection, leading: bytes = b"") -> None:
        self._connection = connection
        self._leading = leading

    def get_extra_info(self, info: str) -> Any:
        sock = self._connection.sock
        try:
            if info == "ssl_object":
                return sock if isinstance(sock, ssl.SSLSocket) else None
            if info == "client_addr":
                return sock.getsockname()
            if info == "server_addr":
                return sock.getpeername()
            if info == "socket":
                return sock
            if info == "is_readable":
                return _readable(sock)
        except (OSError, ValueError):
            return None
        return None

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._leading:
            data, self._leading = self._leading[:max_bytes], self._leading[max_bytes:]
            return data
        sock = self._connection.sock
        with map_h11_exceptions("read", None):
            sock.settimeout(timeout)
            return sock.recv(max_bytes)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        sock = self._connection.sock
        with map_h11_exceptions("write", None):
            sock.settimeout(timeout)
            sock.sendall(buffer)

    def close(self) -> None:
        self._connection.close()


# Opening -----------------------------------------------------------------------


def open_socket(
    host: str, port: int, timeouts: Timeouts, local_address: str | None
) -> socket.socket:
    """A TCP connection to `host:port`: each address tried in turn, as
    `socket.create_connection` does, each attempt bounded by the connect timeout
    clamped to the deadline. Raises the last attempt's error."""
    source = None if local_address is None else (local_address, 0)
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        timeout = timeouts.connect()  # TimeoutError once the deadline has passed
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            if source is not None:
                sock.bind(source)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    if error is None:
        raise OSError(f"getaddrinfo returned no address for {host!r}")
    raise error


def start_tls(
    sock: socket.socket, context: ssl.SSLContext, server_hostname: str, timeouts: Timeouts
) -> ssl.SSLSocket:
    """TLS over `sock` (closed on failure); the handshake bounded by the connect timeout."""
    try:
        sock.settimeout(timeouts.connect())
        return context.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


def open_tunnel(
    sock: socket.socket,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    request: httpx.Request,
    timeouts: Timeouts,
) -> None:
    """Ask the HTTP proxy at the other end of `sock` for a tunnel to `target`
    (`host:port`): CONNECT, bounded by the connect timeout; `httpx.ProxyError` with the
    proxy's status and reason when it refuses."""
    state = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
    data = state.send(h11.Request(method=b"CONNECT", target=target, headers=headers)) or b""
    data += state.send(h11.EndOfMessage()) or b""
    sock.settimeout(timeouts.connect())
    sock.sendall(data)
    response = _tunnel_response(sock, state, request, timeouts)
    if not 200 <= response.status_code < 300:
        reason = response.reason.decode("ascii", errors="ignore")
        raise httpx.ProxyError(f"{response.status_code} {reason}", request=request)
    if state.trailing_data[0]:
        raise httpx.ProxyError("Proxy sent data before the tunnel was used.", request=request)


def _tunnel_response(
    sock: socket.socket, state: h11.Connection, request: httpx.Request, timeouts: Timeouts
) -> h11.Response:
    while True:
        event = state.next_event()
        if event is h11.NEED_DATA:
            sock.settimeout(timeouts.connect())
            data = sock.recv(_READ_SIZE)
            if not data:
                message = "Proxy disconnected without answering CONNECT."
                raise httpx.ProxyError(message, request=request)
            state.receive_data(data)
        elif isinstance(event, h11.Response):
            return event
