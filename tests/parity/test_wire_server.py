"""The wire server records exact bytes and answers as documented (checked with raw sockets)."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.servers.wire import ENCODED_TEXT, WireServer


def _exchange(server: WireServer, data: bytes, listener: str = "a") -> bytes:
    """Send raw bytes on a new connection, half-close, and read the answer to EOF."""
    with socket.create_connection(("127.0.0.1", server.ports[listener]), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_records_exact_bytes_per_connection(wire_server: WireServer) -> None:
    first = (
        b"POST /ok?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: \xe9\r\nContent-Length: 3\r\n\r\nabc"
    )
    second = b"GET /ok HTTP/1.1\r\nHost: h\r\n\r\n"
    answer = _exchange(wire_server, first + second)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2
    chunked = (
        b"PUT /ok HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
    )
    _exchange(wire_server, chunked, listener="b")
    records = wire_server.take()
    assert [bytes(r.data) for r in records] == [first, second, chunked]
    assert [r.listener for r in records] == ["a", "a", "b"]
    assert records[0].connection == records[1].connection != records[2].connection
    assert wire_server.take() == []


def test_a_partial_request_is_recorded(wire_server: WireServer) -> None:
    _exchange(wire_server, b"GET /ok HTTP/1.1\r\nHost:")
    assert [bytes(r.data) for r in wire_server.take()] == [b"GET /ok HTTP/1.1\r\nHost:"]


def test_settle_waits_for_every_connection_to_close(wire_server: WireServer) -> None:
    with socket.create_connection(("127.0.0.1", wire_server.ports["b"])) as sock:
        sock.sendall(b"POST /ok HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")
        assert not wire_server.settle(timeout=0.05)  # still open
    # Closed at once, possibly before the server accepted it: settle still sees it.
    assert wire_server.settle()
    records = wire_server.take()
    assert [bytes(r.data) for r in records] == [b"POST /ok HTTP/1.1\r\nContent-Length: 5\r\n\r\nab"]


@pytest.mark.parametrize(
    ("path", "start"),
    [
        ("/no-reason", b"HTTP/1.1 200 \r\n"),
        ("/no-reason?space=0", b"HTTP/1.1 200\r\n"),
        ("/http10", b"HTTP/1.0 200 OK\r\n"),
        ("/status?code=299", b"HTTP/1.1 299 \r\n"),
        ("/status?code=204", b"HTTP/1.1 204 No Content\r\nContent-Type: text/plain\r\n\r\n"),
        ("/redirect?status=307&to=b:/ok", b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://"),
        ("/no-continue", b"HTTP/1.1 200 OK\r\n"),
        ("/need?header=X-Auth&value=2", b"HTTP/1.1 401 Unauthorized\r\n"),
        ("/nowhere", b"HTTP/1.1 404 Not Found\r\n"),
    ],
)
def test_status_lines(wire_server: WireServer, path: str, start: bytes) -> None:
    assert _exchange(wire_server, b"GET %s HTTP/1.1\r\n\r\n" % path.encode()).startswith(start)


def test_responses_through_httpx(wire_server: WireServer) -> None:
    with httpx.Client(base_url=wire_server.url) as client:
        odd = client.get("/odd-headers")
        assert odd.headers.get_list("x-rep") == ["1", "2", "3"]
        assert (b"X-Latin", b"caf\xe9") in odd.headers.raw
        chunked = client.get("/chunked?trailers=1")
        assert chunked.content == b"one,two,three"
        for coding in ("gzip", "deflate"):
            assert client.get(f"/encoded?coding={coding}&chunked=1").content == ENCODED_TEXT
        assert client.get("/http10").text == "old school"
        assert len(client.get("/cookies").headers.get_list("set-cookie")) == 7
        assert client.get("/redirect?status=302&to=b:/ok", follow_redirects=True).history
        assert client.get("/slow?seconds=0.1").elapsed.total_seconds() >= 0.1
        assert len(client.get("/huge?size=20000").headers["x-huge"]) == 20000
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/cut")
        with pytest.raises(httpx.ReadTimeout):
            client.get("/stall", timeout=0.1)
    records = wire_server.take()
    assert {r.listener for r in records} == {"a", "b"}
