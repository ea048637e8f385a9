"""AiohttpTransport against real local servers: an aiohttp.web app for well-formed
HTTP, and raw asyncio servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import base64
import gc
import gzip
import json
import socket
import socketserver
import ssl
import struct
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import httpx
import pytest
import trustme
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

import cf._transports
from cf._transports import AiohttpTransport
from cf._transports._aiohttp import _NetworkStream, map_aiohttp_exceptions

pytestmark = pytest.mark.timeout(20)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
GZIPPED_TEXT = "hello gzip " * 100


# -- servers ---------------------------------------------------------------


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "path_qs": request.path_qs,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.raw_headers],
            "body": body.decode("latin-1"),
        }
    )


async def _gzip(request: web.Request) -> web.Response:
    body = gzip.compress(GZIPPED_TEXT.encode())
    return web.Response(body=body, headers={"Content-Encoding": "gzip"})


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound("/echo?redirected=1")


async def _big(request: web.Request) -> web.Response:
    return web.Response(body=b"x" * 1_000_000)


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("delay", "0.1")))
    return web.Response(text="slow")


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


@pytest.fixture
async def web_url() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/gzip", _gzip)
    app.router.add_get("/redirect", _redirect)
    app.router.add_get("/big", _big)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/no-content", _no_content)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


class RawServer:
    """An asyncio server running `handler` per connection, counting connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.active = 0
        self.max_active = 0
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.active -= 1
            writer.close()
            self._tasks.discard(task)

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for writer in self._writers:
                writer.close()
            await server.wait_closed()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def keep_alive_slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            await read_head(reader)
        except asyncio.IncompleteReadError:
            return
        await asyncio.sleep(0.1)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()


async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    await asyncio.sleep(3600)


@asynccontextmanager
async def raw(handler: Handler) -> AsyncIterator[str]:
    async with RawServer(handler).serve() as url:
        yield url


def client(**options: Any) -> httpx.AsyncClient:
    timeout = options.pop("timeout", 5.0)
    return httpx.AsyncClient(transport=AiohttpTransport(**options), timeout=timeout)


# -- requests and responses -----------------------------------------------


async def test_get(web_url: str) -> None:
    async with client() as c:
        r = await c.get(f"{web_url}/echo", params={"q": "a b", "x": "1"})
    assert r.status_code == 200
    assert r.json()["path_qs"] == "/echo?q=a+b&x=1"
    assert r.json()["method"] == "GET"
    assert r.reason_phrase == "OK"
    assert r.http_version == "HTTP/1.1"
    assert r.extensions["reason_phrase"] == b"OK"


async def test_headers_go_out_as_httpx_built_them(web_url: str) -> None:
    async with client() as c:
        request = c.build_request(
            "GET", f"{web_url}/echo", headers={"X-Trace": "abc", "Host": "example.test"}
        )
        r = await c.send(request)
    built = [(k.decode(), v.decode()) for k, v in request.headers.raw]
    # In httpx's order, but Host first, as h11 (httpx's own engine) writes it.
    sent = [h for h in built if h[0] == "Host"] + [h for h in built if h[0] != "Host"]
    assert sent != built
    assert [tuple(h) for h in r.json()["headers"]] == sent
    names = [k.lower() for k, _ in sent]
    assert names.count("user-agent") == 1 and names.count("accept-encoding") == 1
    assert sent[0] == ("Host", "example.test")


async def test_a_request_without_host_gets_one_first(web_url: str) -> None:
    # Built with stream=, httpx adds no header of its own; the engine adds Host, first,
    # as h11 (which refuses an HTTP/1.1 request without one) would need it.
    url = httpx.URL(f"{web_url}/echo")
    request = httpx.Request("GET", url, headers={"X-A": "1"}, stream=httpx.ByteStream(b""))
    assert "Host" not in request.headers
    transport = AiohttpTransport()
    try:
        response = await transport.handle_async_request(request)
        await response.aread()
    finally:
        await transport.aclose()
    sent = [tuple(h) for h in json.loads(response.content)["headers"]]
    assert sent == [("Host", url.netloc.decode()), ("X-A", "1")]


async def test_header_plans_are_kept_but_never_with_credentials(web_url: str) -> None:
    # What the engine makes of a request's headers is kept by their bytes: a second
    # request with the same headers goes the same way (aiohttp, or httpx's own
    # transport for headers aiohttp cannot send as they are); credentials are not kept.
    transport = AiohttpTransport()
    async with httpx.AsyncClient(transport=transport) as c:
        for _ in range(2):
            r = await c.get(f"{web_url}/echo", headers={"X-Bin": b"caf\xe9"})
            assert r.status_code == 200
            assert not isinstance(r.extensions["network_stream"], _NetworkStream)
            r = await c.get(f"{web_url}/echo", headers={"X-A": "1"})
            assert ["X-A", "1"] in r.json()["headers"]
            assert isinstance(r.extensions["network_stream"], _NetworkStream)
            for name in ("Authorization", "X-Api-Key"):  # named as secrets: not kept
                r = await c.get(f"{web_url}/echo", headers={name: "t0ken"})
                assert [name, "t0ken"] in r.json()["headers"]
    assert len(transport._headers) == 2
    assert b"t0ken" not in repr(transport._headers).encode()


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_no_headers_added_for_methods(web_url: str, method: str) -> None:
    async with client() as c:
        request = c.build_request(method, f"{web_url}/echo")
        r = await c.send(request)
    sent = [(k.decode(), v.decode()) for k, v in request.headers.raw]
    assert [tuple(h) for h in r.json()["headers"]] == sent


async def test_post_bytes(web_url: str) -> None:
    async with client() as c:
        r = await c.post(f"{web_url}/echo", content=b"\x00binary\xff")
    assert r.json()["body"] == "\x00binary\xff"
    names = [k.lower() for k, _ in r.json()["headers"]]
    assert "content-type" not in names  # aiohttp's octet-stream default is not added
    assert ["content-length", "5"] not in r.json()["headers"]


async def test_post_json(web_url: str) -> None:
    async with client() as c:
        r = await c.post(f"{web_url}/echo", json={"a": [1, 2]})
    assert json.loads(r.json()["body"]) == {"a": [1, 2]}
    assert ["Content-Type", "application/json"] in r.json()["headers"]


async def test_post_streamed_body(web_url: str) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"part one, "
        await asyncio.sleep(0)
        yield b"part two"

    async with client() as c:
        r = await c.post(f"{web_url}/echo", content=body())
    assert r.json()["body"] == "part one, part two"
    headers = [(k.lower(), v) for k, v in r.json()["headers"]]
    assert headers.count(("transfer-encoding", "chunked")) == 1
    assert not [k for k, _ in headers if k == "content-length"]


async def test_post_multipart_stream_with_length(web_url: str) -> None:
    async with client() as c:
        r = await c.post(f"{web_url}/echo", files={"f": ("a.txt", b"file body")}, data={"k": "v"})
    assert "file body" in r.json()["body"]
    headers = dict((k.lower(), v) for k, v in r.json()["headers"])
    assert int(headers["content-length"]) == len(r.json()["body"].encode("latin-1"))
    assert "transfer-encoding" not in headers


async def test_gzip_decoded_once_by_httpx(web_url: str) -> None:
    async with client() as c:
        r = await c.get(f"{web_url}/gzip")
    assert r.headers["content-encoding"] == "gzip"
    assert r.text == GZIPPED_TEXT


async def test_head_and_no_content(web_url: str) -> None:
    async with client() as c:
        head = await c.head(f"{web_url}/big")
        empty = await c.get(f"{web_url}/no-content")
    assert head.status_code == 200 and head.content == b""
    assert empty.status_code == 204 and empty.content == b""


async def test_streamed_response(web_url: str) -> None:
    async with client() as c, c.stream("GET", f"{web_url}/big") as r:
        size = 0
        async for chunk in r.aiter_raw():
            size += len(chunk)
    assert size == 1_000_000


async def test_redirects_are_followed_by_httpx(web_url: str) -> None:
    async with client() as c:
        not_followed = await c.get(f"{web_url}/redirect")
        followed = await c.get(f"{web_url}/redirect", follow_redirects=True)
    assert not_followed.status_code == 302
    assert not_followed.headers["location"] == "/echo?redirected=1"
    assert followed.status_code == 200
    assert [h.status_code for h in followed.history] == [302]
    assert followed.json()["path_qs"] == "/echo?redirected=1"


async def test_userinfo_becomes_httpx_basic_auth_only(web_url: str) -> None:
    async with client() as c:
        r = await c.get(web_url.replace("http://", "http://user:pw@") + "/echo#fragment")
    auths = [v for k, v in r.json()["headers"] if k.lower() == "authorization"]
    assert auths == ["Basic " + base64.b64encode(b"user:pw").decode()]
    assert r.json()["path_qs"] == "/echo"


async def test_proxy() -> None:
    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_head(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied")
        await writer.drain()

    async with raw(proxy) as proxy_url:
        proxy_url = proxy_url.replace("http://", "http://user:pw@")
        async with client(proxy=proxy_url) as c:
            r = await c.get("http://origin.test/path?q=1")
    assert r.text == "proxied"
    head = seen[0].decode()
    assert head.startswith("GET http://origin.test/path?q=1 HTTP/1.1\r\n")
    assert f"Proxy-Authorization: Basic {base64.b64encode(b'user:pw').decode()}" in head


async def test_local_address() -> None:
    peers: list[str] = []

    async def record_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername")[0])
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with raw(record_peer) as url, client(local_address="127.0.0.1") as c:
        assert (await c.get(url)).status_code == 200
    assert peers == ["127.0.0.1"]


async def test_sync_body_is_refused() -> None:
    transport = AiohttpTransport()
    request = httpx.Request("POST", "http://127.0.0.1:9/", content=iter([b"sync"]))
    with pytest.raises(RuntimeError, match="sync request body"):
        await transport.handle_async_request(request)
    await transport.aclose()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_url(ca: trustme.CA) -> AsyncIterator[str]:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    app = web.Application()
    app.router.add_get("/echo", _echo)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_context)
    await site.start()
    try:
        yield f"https://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def test_tls_with_a_trusted_ca(tls_url: str, ca: trustme.CA) -> None:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with client(verify=context) as c:
        r = await c.get(f"{tls_url}/echo")
    assert r.status_code == 200


async def test_tls_untrusted_certificate_is_a_connect_error(tls_url: str) -> None:
    async with client() as c:
        with pytest.raises(httpx.ConnectError) as info:
            await c.get(f"{tls_url}/echo")
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorCertificateError)


async def test_tls_verify_false(tls_url: str) -> None:
    async with client(verify=False) as c:
        assert (await c.get(f"{tls_url}/echo")).status_code == 200


def test_socks_proxy_is_refused() -> None:
    # cf's engine factory picks httpx's own transport for SOCKS proxies.
    with pytest.raises(ValueError, match="socks5"):
        AiohttpTransport(proxy="socks5://127.0.0.1:1080")


# -- pool ---------------------------------------------------------------------


async def test_connection_limit() -> None:
    server = RawServer(keep_alive_slow)
    async with server.serve() as url:
        async with client(limits=httpx.Limits(max_connections=2)) as c:
            responses = await asyncio.gather(*(c.get(url) for _ in range(5)))
    assert [r.text for r in responses] == ["ok"] * 5
    assert server.max_active == 2
    assert server.connections == 2  # kept alive and reused


async def test_no_keep_alive() -> None:
    server = RawServer(keep_alive_slow)
    async with server.serve() as url:
        async with client(limits=httpx.Limits(max_keepalive_connections=0)) as c:
            for _ in range(3):
                assert (await c.get(url)).text == "ok"
    assert server.connections == 3


async def test_pool_timeout() -> None:
    async with raw(stall) as url:
        limits = httpx.Limits(max_connections=1)
        async with client(limits=limits, timeout=httpx.Timeout(5.0, pool=0.1)) as c:
            first = asyncio.create_task(c.get(url))
            await asyncio.sleep(0.05)
            with pytest.raises(httpx.PoolTimeout) as info:
                await c.get(url)
            first.cancel()
            with pytest.raises(asyncio.CancelledError):
                await first
    assert info.value.request.url == url


async def test_cancelled_request_frees_its_connection(web_url: str) -> None:
    async with client(limits=httpx.Limits(max_connections=1)) as c:
        task = asyncio.create_task(c.get(f"{web_url}/slow", params={"delay": "10"}))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        r = await c.get(f"{web_url}/echo", timeout=httpx.Timeout(5.0, pool=1.0))
    assert r.status_code == 200


async def test_discarded_unread_responses_do_not_leak(web_url: str) -> None:
    limits = httpx.Limits(max_connections=1)
    async with client(limits=limits, timeout=httpx.Timeout(5.0, pool=1.0)) as c:
        for _ in range(20):
            async with c.stream("GET", f"{web_url}/big") as r:
                assert r.status_code == 200
        for _ in range(5):
            r = await c.send(c.build_request("GET", f"{web_url}/big"), stream=True)
            await r.aclose()
        assert (await c.get(f"{web_url}/echo")).status_code == 200


# -- exception mapping: real faults -------------------------------------------


async def _close_before_response(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await read_head(reader)


async def _reset_before_response(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    await read_head(reader)
    reset(w)


async def _truncated_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    await writer.drain()


async def _reset_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    await writer.drain()
    await asyncio.sleep(0.05)
    reset(writer)


async def _garbage_status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    await writer.drain()


async def _huge_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\nContent-Length: 0\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(1)


async def _stall_mid_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome")
    await writer.drain()
    await asyncio.sleep(3600)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        pytest.param(_close_before_response, httpx.RemoteProtocolError, id="close-before-response"),
        pytest.param(_reset_before_response, httpx.ReadError, id="reset-before-response"),
        pytest.param(_truncated_body, httpx.RemoteProtocolError, id="truncated-body"),
        pytest.param(_reset_mid_body, httpx.ReadError, id="reset-mid-body"),
        pytest.param(_garbage_status, httpx.RemoteProtocolError, id="garbage-status-line"),
        pytest.param(_huge_headers, httpx.RemoteProtocolError, id="huge-headers"),
        pytest.param(stall, httpx.ReadTimeout, id="stall-before-response"),
        pytest.param(_stall_mid_body, httpx.ReadTimeout, id="stall-mid-body"),
    ],
)
async def test_faults_after_sending(handler: Handler, expected: type[Exception]) -> None:
    server = RawServer(handler)
    async with server.serve() as url, client(timeout=httpx.Timeout(5.0, read=0.2)) as c:
        with pytest.raises(expected) as info:
            await c.get(url)
    assert type(info.value) is expected
    assert isinstance(info.value.__cause__, (aiohttp.ClientError, asyncio.TimeoutError))
    assert info.value.request.url == url
    assert server.connections == 1  # aiohttp did not retry behind our back


async def test_connect_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with client() as c:
        with pytest.raises(httpx.ConnectError) as info:
            await c.post(f"http://127.0.0.1:{port}/", content=b"x")
    assert type(info.value) is httpx.ConnectError
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)


async def test_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    class FailingResolver(aiohttp.abc.AbstractResolver):
        def __init__(self, **kwargs: Any) -> None:
            pass

        async def resolve(self, host: str, port: int = 0, family: int = 0) -> Any:
            raise OSError(socket.EAI_NONAME, "Name or service not known")

        async def close(self) -> None:
            pass

    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", FailingResolver)
    async with client() as c:
        with pytest.raises(httpx.ConnectError) as info:
            await c.get("http://does-not-exist.test/")
    assert type(info.value) is httpx.ConnectError
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorDNSError)


@contextmanager
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full: connecting hangs until the timeout."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(3):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            yield port
        finally:
            for filler in fillers:
                filler.close()


async def test_connect_timeout() -> None:
    with full_backlog() as port:
        async with client(timeout=httpx.Timeout(5.0, connect=0.2)) as c:
            with pytest.raises(httpx.ConnectTimeout) as info:
                await c.get(f"http://127.0.0.1:{port}/")
    assert isinstance(info.value.__cause__, aiohttp.ConnectionTimeoutError)


async def test_unsupported_scheme() -> None:
    transport = AiohttpTransport()
    try:
        with pytest.raises(httpx.UnsupportedProtocol):
            await transport.handle_async_request(httpx.Request("GET", "ftp://example.test/"))
    finally:
        await transport.aclose()


async def test_streamed_body_that_fails_raises_its_own_exception(web_url: str) -> None:
    # As httpx's own transport: the caller's generator error comes out as it is.
    async def body() -> AsyncIterator[bytes]:
        yield b"start"
        raise RuntimeError("producer broke")

    async with client() as c:
        with pytest.raises(RuntimeError, match="producer broke"):
            await c.post(f"{web_url}/echo", content=body())


# -- exception mapping: the table ---------------------------------------------

_KEY = ConnectionKey("h", 80, False, True, None, None, None)  # what connector errors carry


def _info() -> aiohttp.RequestInfo:
    url = URL("http://h/")
    return aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            aiohttp.ConnectionTimeoutError("t"), httpx.ConnectTimeout, id="connect-timeout"
        ),
        pytest.param(
            aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused")),
            httpx.ConnectError,
            id="refused",
        ),
        pytest.param(
            aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "no name")),
            httpx.ConnectError,
            id="dns",
        ),
        pytest.param(
            aiohttp.ClientHttpProxyError(_info(), (), status=407), httpx.ProxyError, id="proxy"
        ),
        pytest.param(aiohttp.SocketTimeoutError("t"), httpx.ReadTimeout, id="sock-read"),
        pytest.param(asyncio.TimeoutError(), httpx.ReadTimeout, id="timeout"),
        pytest.param(
            aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError, id="disconnected"
        ),
        pytest.param(
            aiohttp.ClientResponseError(_info(), (), status=400, message="bad"),
            httpx.RemoteProtocolError,
            id="bad-response",
        ),
        pytest.param(
            aiohttp.ClientPayloadError("cut"), httpx.RemoteProtocolError, id="payload-cut-short"
        ),
        pytest.param(aiohttp.ClientOSError(104, "Connection reset"), httpx.ReadError, id="reset"),
        pytest.param(
            aiohttp.ClientOSError(32, "Can not write request body for http://h/"),
            httpx.WriteError,
            id="write-body",
        ),
        pytest.param(
            aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
            httpx.WriteError,
            id="write-closing",
        ),
        pytest.param(
            aiohttp.ClientConnectionError("Connection closed"), httpx.ReadError, id="closed"
        ),
        pytest.param(aiohttp.InvalidURL("x"), httpx.UnsupportedProtocol, id="invalid-url"),
        pytest.param(
            aiohttp.NonHttpUrlClientError("ftp://x"), httpx.UnsupportedProtocol, id="scheme"
        ),
        pytest.param(aiohttp.ClientError("other"), httpx.TransportError, id="other"),
        pytest.param(ConnectionResetError(104, "reset"), httpx.ReadError, id="os-error"),
    ],
)
def test_exception_table(exc: Exception, expected: type[Exception]) -> None:
    request = httpx.Request("GET", "http://h/")
    with pytest.raises(httpx.RequestError) as info, map_aiohttp_exceptions(request):
        raise exc
    mapped = info.value
    assert type(mapped) is expected
    assert mapped.request is request and mapped.__cause__ is exc
    assert str(mapped)


def test_exception_table_leaves_other_errors_alone() -> None:
    exc = ValueError("not aiohttp's")
    with (
        pytest.raises(ValueError) as info,
        map_aiohttp_exceptions(httpx.Request("GET", "http://h/")),
    ):
        raise exc
    assert info.value is exc


# -- event loops, mocking, warnings -------------------------------------------


class _KeepAliveHandler(socketserver.StreamRequestHandler):
    server: _ThreadedServer

    def handle(self) -> None:
        with self.server.lock:
            self.server.active += 1
            self.server.connections += 1
        try:
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                while self.rfile.readline() not in (b"\r\n", b""):
                    pass
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        finally:
            with self.server.lock:
                self.server.active -= 1


class _ThreadedServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _KeepAliveHandler)
        self.lock = threading.Lock()
        self.active = 0
        self.connections = 0

    def wait_until_idle(self) -> None:
        deadline = time.monotonic() + 2
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)


@contextmanager
def threaded_server() -> Iterator[_ThreadedServer]:
    server = _ThreadedServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_created_outside_a_loop_and_used_in_two_loops() -> None:
    with threaded_server() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        transport = AiohttpTransport()  # no running loop here

        async def get() -> bytes:
            response = await transport.handle_async_request(httpx.Request("GET", url))
            try:
                return await response.aread()
            finally:
                await response.aclose()

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert asyncio.run(get()) == b"ok"
            server.wait_until_idle()
            assert server.active == 0  # closed when the first loop shut down
            assert asyncio.run(get()) == b"ok"
            asyncio.run(transport.aclose())
            server.wait_until_idle()
            gc.collect()
        assert [str(w.message) for w in caught] == []
        assert server.connections == 2 and server.active == 0


def test_a_loop_running_in_another_thread_keeps_its_own_session() -> None:
    # The first loop still runs (in its thread) when a second loop, in this thread,
    # sends through the same transport: the second gets a session of its own.
    with threaded_server() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        transport = AiohttpTransport()

        async def get() -> tuple[bytes, asyncio.AbstractEventLoop]:
            response = await transport.handle_async_request(httpx.Request("GET", url))
            try:
                return await response.aread(), asyncio.get_running_loop()
            finally:
                await response.aclose()

        async def first_session_closed(session: aiohttp.ClientSession) -> bool:
            # Retired when the second loop took over, it is closed in its own loop.
            for _ in range(500):
                if session.closed:
                    return True
                await asyncio.sleep(0.01)
            return False

        other = asyncio.new_event_loop()
        thread = threading.Thread(target=other.run_forever, daemon=True)
        thread.start()
        try:
            body, loop = asyncio.run_coroutine_threadsafe(get(), other).result(10)
            assert (body, loop) == (b"ok", other)
            assert transport._state is not None
            first = transport._state.session
            body, loop = asyncio.run(asyncio.wait_for(get(), 10))
            assert body == b"ok" and loop is not other
            closing = asyncio.run_coroutine_threadsafe(first_session_closed(first), other)
            assert closing.result(10)
        finally:
            asyncio.run_coroutine_threadsafe(other.shutdown_asyncgens(), other).result(10)
            other.call_soon_threadsafe(other.stop)
            thread.join(10)
            other.close()


def test_loop_closed_without_shutdown_then_another_loop() -> None:
    with threaded_server() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        transport = AiohttpTransport()

        async def get() -> bytes:
            async with httpx.AsyncClient(transport=transport) as c:
                return (await c.get(url)).content

        async def get_without_closing() -> bytes:
            response = await transport.handle_async_request(httpx.Request("GET", url))
            await response.aread()
            await response.aclose()
            return response.content

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop = asyncio.new_event_loop()
            assert loop.run_until_complete(get_without_closing()) == b"ok"
            assert asyncio.run(get()) == b"ok"  # the first loop is still open
            loop.run_until_complete(asyncio.sleep(0.05))  # lets it close its session
            loop.close()
            gc.collect()
        assert [str(w.message) for w in caught] == []


def test_loop_closed_without_shutting_down_asyncgens() -> None:
    with threaded_server() as server:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        transport = AiohttpTransport()

        async def get() -> bytes:
            response = await transport.handle_async_request(httpx.Request("GET", url))
            await response.aread()
            await response.aclose()
            return response.content

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loop = asyncio.new_event_loop()
            assert loop.run_until_complete(get()) == b"ok"
            loop.close()  # no shutdown_asyncgens(): our session is still open
            assert asyncio.run(get()) == b"ok"
            gc.collect()
        # The session is closed synchronously; only its socket, which nothing can
        # close once its loop is closed, is reported (as for any asyncio library).
        messages = [str(w.message) for w in caught]
        assert not [m for m in messages if "session" in m or "connector" in m]
        assert all(m.startswith(("unclosed <socket", "unclosed transport")) for m in messages)


async def test_no_resource_warning_after_aclose(web_url: str) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with client() as c:
            await c.get(f"{web_url}/echo")
            async with c.stream("GET", f"{web_url}/big"):
                pass
        gc.collect()
    assert [str(w.message) for w in caught] == []


def test_exported_members() -> None:
    assert cf._transports.__all__ == ["AiohttpTransport"]
    assert issubclass(AiohttpTransport, httpx.AsyncBaseTransport)
