"""The sync default engine (`H11Transport`) through `HTTP.create()` against servers that
break the rules (issue 15): no request is sent twice, no response is read by the wrong
request, and a call's deadline holds against trickling and stalling servers.

Each request carries its own `X-Request-Id`, which the servers echo: a response with
another id (or the smuggled `evil`) was read by the wrong request. Wall-clock bounds
are loose (a loaded 2-core machine): the deadline plus one second.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time
from collections.abc import Iterator
from itertools import count
from typing import Any

import httpx
import pytest

from cf._transports._h11 import H11Transport
from cf._transports._h11_connection import Connection
from cf.infrastructure.http import HTTP, HTTPTimeoutError, OAuthHTTP
from tests.servers._threaded import ServerThread
from tests.servers.hostile import EVIL_RESPONSE, HostileServer, read_head, stream_serve
from tests.servers.oauth import OAuthServer

pytestmark = pytest.mark.timeout(30)

DEADLINE = 1.0
SLACK = 1.0  # the bound asserted: deadline + SLACK (the figures measured go in the report)
_ids = count()


def rid() -> str:
    return f"r{next(_ids)}"


def client(**options: Any) -> HTTP:
    http = HTTP.create(**options)
    assert isinstance(http.transport.engine, H11Transport)  # the sync default engine
    return http


def call(http: HTTP, method: str, url: str, **kwargs: Any) -> tuple[str, httpx.Response]:
    request_id = rid()
    response = http.request(method, url, headers={"X-Request-Id": request_id}, **kwargs)
    return request_id, response


def assert_each_read_its_own(
    hostile: HostileServer, sent: list[tuple[str, httpx.Response]]
) -> None:
    """Every response is its request's, and the server saw each request once."""
    assert [r.headers.get("x-request-id") for _, r in sent] == [i for i, _ in sent]
    assert all(b"EVIL" not in r.content for _, r in sent)
    assert hostile.duplicates() == []
    arrived = {a.request_id for a in hostile.arrivals(min_count=len(sent))}
    assert {i for i, _ in sent} <= arrived


# -- connections that must not be reused --------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_close_after_every_response(method: str, hostile_server: HostileServer) -> None:
    """The server closes after each response without saying so: each next request
    notices before it reuses the connection, and goes out once on a new one."""
    hostile_server.close_after_response = True
    with client(retries=0) as http:
        sent = [call(http, method, f"{hostile_server.url}/ok", content=b"x") for _ in range(40)]
    assert_each_read_its_own(hostile_server, sent)
    assert hostile_server.connections == 40


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_server_closed_the_idle_connection(method: str, hostile_server: HostileServer) -> None:
    with client(retries=0) as http:
        sent = []
        for _ in range(5):
            sent.append(call(http, method, f"{hostile_server.url}/idle-close?ms=20", content=b"x"))
            time.sleep(0.08)
    assert_each_read_its_own(hostile_server, sent)
    assert hostile_server.connections == 5


def test_short_content_length(hostile_server: HostileServer) -> None:
    """`Content-Length: 2`, then a whole response nobody asked for: never read."""
    with client(retries=0) as http:
        first = call(http, "GET", f"{hostile_server.url}/short-length")
        second = call(http, "GET", f"{hostile_server.url}/ok")
    assert first[1].content == b"ok"
    assert_each_read_its_own(hostile_server, [first, second])
    assert hostile_server.connections == 2


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_head_answered_with_a_body(method: str, hostile_server: HostileServer) -> None:
    """A HEAD response has no body: what follows it is never a response. (For GET the
    same bytes are the body, read as such, and the connection is reused.)"""
    with client(retries=0) as http:
        first = call(http, method, f"{hostile_server.url}/head-body")
        second = call(http, "GET", f"{hostile_server.url}/ok")
    assert first[1].content == (b"" if method == "HEAD" else EVIL_RESPONSE)
    assert second[1].headers["x-request-id"] == second[0]
    assert hostile_server.duplicates() == []
    assert hostile_server.connections == (2 if method == "HEAD" else 1)


# A server whose responses carry bytes beyond their end: `/204`, `/304` (no body allowed,
# one sent), `/late-extra` (a clean response, then 50 ms later one nobody asked for);
# `/reset-after` (a clean response, then a reset 20 ms later); anything else: 200 with
# the request id and the connection's number.


class _Extra:
    def __init__(self) -> None:
        self.connections = 0
        self.arrivals: list[str | None] = []


@pytest.fixture(scope="module")
def extra_server() -> Iterator[tuple[str, _Extra]]:
    state = _Extra()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        number = state.connections
        while (head := await read_head(reader)) is not None:
            request_id = head.header("x-request-id") or ""
            state.arrivals.append(request_id)
            echo = f"X-Request-Id: {request_id}\r\nX-Connection: {number}\r\n".encode()
            if head.path in ("/204", "/304"):
                status = b"204 No Content" if head.path == "/204" else b"304 Not Modified"
                writer.write(b"HTTP/1.1 " + status + b"\r\n" + echo + b"\r\n" + EVIL_RESPONSE)
            elif head.path == "/reset-after":  # answers, then resets the idle connection
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + echo + b"\r\nok")
                await writer.drain()
                await asyncio.sleep(0.02)
                linger = struct.pack("ii", 1, 0)
                writer.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, linger
                )
                writer.transport.abort()
                return
            elif head.path == "/late-extra":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + echo + b"\r\nok")
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(EVIL_RESPONSE)
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + echo + b"\r\nok")
            await writer.drain()

    thread = ServerThread("cf-test-extra-bytes")
    thread.start(stream_serve(handle))
    try:
        yield thread.url, state
    finally:
        thread.stop()


@pytest.mark.parametrize("path", ["/204", "/304", "/late-extra"])
def test_bytes_beyond_the_response(path: str, extra_server: tuple[str, _Extra]) -> None:
    url, state = extra_server
    before = state.connections
    with client(retries=0) as http:
        first = call(http, "GET", url + path)
        time.sleep(0.15)  # /late-extra: the extra bytes have arrived by now
        second = call(http, "GET", url + "/ok")
    assert first[1].status_code in (200, 204, 304)
    assert second[1].headers["x-request-id"] == second[0] and second[1].content == b"ok"
    assert state.connections - before == 2  # the first connection was not reused
    assert state.arrivals.count(second[0]) == 1


def test_a_reused_connection_that_refuses_the_request_is_replaced(
    extra_server: tuple[str, _Extra], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the poll before reuse cannot see: the server resets the idle connection
    just after the poll. The POST's first write fails, so nothing of it left: it goes
    out once, on a fresh connection, and the call succeeds."""
    url, state = extra_server
    before = state.connections
    with client(retries=0) as http:
        first = call(http, "POST", url + "/reset-after", content=b"1")
        time.sleep(0.1)  # the reset has arrived
        monkeypatch.setattr(Connection, "dropped", lambda self: False)  # the poll missed it
        second = call(http, "POST", url + "/ok", content=b"2")
    assert first[1].content == b"ok"
    assert second[1].headers["x-request-id"] == second[0] and second[1].content == b"ok"
    assert state.arrivals.count(second[0]) == 1
    assert state.connections - before == 2


# -- deadlines -----------------------------------------------------------------------------


@contextlib.contextmanager
def ends_by(seconds: float) -> Iterator[None]:
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took < seconds, f"took {took:.3f} s"


@pytest.mark.parametrize("part", ["status", "headers", "body"])
def test_deadline_against_a_trickling_server(part: str, hostile_server: HostileServer) -> None:
    """One byte every 0.25 s, each well within the read timeout: the deadline still ends
    the call (without the clamp: about 30 s for the status line)."""
    url = f"{hostile_server.url}/trickle?part={part}&interval=0.25&size=20"
    with client(deadline=DEADLINE) as http:
        with ends_by(DEADLINE + SLACK), pytest.raises(HTTPTimeoutError):
            http.get(url)


def test_deadline_against_a_trickling_streamed_body(hostile_server: HostileServer) -> None:
    url = f"{hostile_server.url}/trickle?part=body&interval=0.25&size=20"
    with client(deadline=DEADLINE) as http:
        with ends_by(DEADLINE + SLACK), pytest.raises(HTTPTimeoutError):
            with http.stream("GET", url) as response:
                for _ in response.iter_bytes():
                    pass


def test_deadline_against_a_stalled_upload(hostile_server: HostileServer) -> None:
    body = b"u" * (32 * 1024 * 1024)  # more than the kernel buffers on both sides
    with client(deadline=DEADLINE, timeout=30.0) as http:
        with ends_by(DEADLINE + SLACK), pytest.raises(HTTPTimeoutError):
            http.post(f"{hostile_server.url}/stalled-upload?seconds=10", content=body)


def test_deadline_against_a_hanging_server(hostile_server: HostileServer) -> None:
    with client(deadline=DEADLINE, timeout=30.0) as http:
        with ends_by(DEADLINE + SLACK), pytest.raises(HTTPTimeoutError):
            http.get(f"{hostile_server.url}/hang?seconds=10")


def test_deadline_waiting_for_a_connection(hostile_server: HostileServer) -> None:
    """The only connection is held by a response nobody reads: the next call waits for
    it no longer than its deadline (PoolTimeout, nothing sent)."""
    limits = httpx.Limits(max_connections=1)
    with client(limits=limits, timeout=30.0) as http:
        with http.stream("GET", f"{hostile_server.url}/trickle?interval=0.5&size=20"):
            with ends_by(DEADLINE + SLACK), pytest.raises(HTTPTimeoutError) as info:
                http.get(f"{hostile_server.url}/ok", deadline=DEADLINE)
    assert isinstance(info.value.__cause__, httpx.PoolTimeout)


def test_oauth_deadline_against_a_hanging_token_endpoint(oauth_server: OAuthServer) -> None:
    oauth_server.latency = 30.0
    with OAuthHTTP.create(
        client_id="id",
        client_secret="secret",
        authorize_url=oauth_server.token_url,
        deadline=DEADLINE,
        timeout=30.0,
    ) as http:
        with ends_by(DEADLINE + SLACK), pytest.raises(HTTPTimeoutError):
            http.get(oauth_server.api_url)
    assert oauth_server.api_requests == 0


def test_oauth_deadline_against_a_trickling_token_endpoint(
    hostile_server: HostileServer,
) -> None:
    with OAuthHTTP.create(
        client_id="id",
        client_secret="secret",
        authorize_url=f"{hostile_server.url}/trickle?part=headers&interval=0.25",
        deadline=DEADLINE,
        timeout=30.0,
    ) as http:
        with ends_by(DEADLINE + SLACK), pytest.raises(HTTPTimeoutError):
            http.get(f"{hostile_server.url}/ok")
    assert [a.key for a in hostile_server.arrivals()] == ["/trickle"]
