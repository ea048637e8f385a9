"""H11Transport, the sync default engine, on its own under `httpx.Client`: what it keeps
of httpx's own transport (proxies, TLS, limits, extensions, the bytes on the wire),
how its failures map to httpx's exceptions, and how engines are chosen."""

from __future__ import annotations

import asyncio
import errno
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import h11
import httpx
import pytest

from cf._transports._engines import EngineSettings, sync_engine
from cf._transports._h11 import H11Transport
from cf._transports._h11_errors import Phase, Timeouts, map_h11_exceptions
from tests.servers._threaded import ServerThread
from tests.servers.app import AppServer
from tests.servers.hostile import HostileServer, read_head, stream_serve
from tests.servers.programs import TinyProxy
from tests.servers.tls import TLSAppServer, TLSFiles, TLSInfoServer
from tests.servers.wire import WireServer

pytestmark = pytest.mark.timeout(30)

TIMEOUT = httpx.Timeout(5.0)


def client(**options: Any) -> httpx.Client:
    return httpx.Client(transport=H11Transport(**options), timeout=TIMEOUT)


def get(url: str, **options: Any) -> httpx.Response:
    with client(**options) as c:
        return c.get(url)


# -- exceptions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "exc", "expected"),
    [
        ("connect", TimeoutError("timed out"), httpx.ConnectTimeout),
        ("connect", ConnectionRefusedError(errno.ECONNREFUSED, "refused"), httpx.ConnectError),
        ("connect", ssl.SSLCertVerificationError("certificate verify failed"), httpx.ConnectError),
        ("connect", h11.RemoteProtocolError("bad proxy answer"), httpx.ProxyError),
        ("write", TimeoutError("timed out"), httpx.WriteTimeout),
        ("write", BrokenPipeError(errno.EPIPE, "broken pipe"), httpx.WriteError),
        ("write", h11.LocalProtocolError("Too much data"), httpx.LocalProtocolError),
        ("read", TimeoutError("timed out"), httpx.ReadTimeout),
        ("read", ConnectionResetError(errno.ECONNRESET, "reset"), httpx.ReadError),
        ("read", ssl.SSLEOFError("EOF occurred"), httpx.ReadError),
        ("read", h11.RemoteProtocolError("illegal status line"), httpx.RemoteProtocolError),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_exceptions_map_to_the_most_specific_httpx_class(
    phase: Phase, exc: Exception, expected: type[httpx.TransportError]
) -> None:
    request = httpx.Request("GET", "http://example.test/")
    with pytest.raises(httpx.TransportError) as info:
        with map_h11_exceptions(phase, request):
            raise exc
    assert type(info.value) is expected
    assert info.value.__cause__ is exc and info.value.request is request


def test_mapped_messages_are_redacted() -> None:
    request = httpx.Request("GET", "http://example.test/")
    leak = h11.LocalProtocolError("Illegal header value b'Bearer s3cr3t-t0ken-value'")
    with pytest.raises(httpx.LocalProtocolError) as info:
        with map_h11_exceptions("write", request):
            raise leak
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in str(leak.args)


@pytest.mark.parametrize(
    "exc", [ValueError("a caller's"), httpx.ReadTimeout("already httpx's")], ids=repr
)
def test_other_exceptions_pass_through(exc: Exception) -> None:
    with pytest.raises(type(exc)) as info:
        with map_h11_exceptions("read", None):
            raise exc
    assert info.value is exc


def test_timeouts_are_clamped_to_the_deadline() -> None:
    given = {"connect": 5.0, "read": None, "write": 0.5, "pool": 9.0}
    assert Timeouts(given, None).read() is None and Timeouts(given, None).connect() == 5.0
    soon = Timeouts(given, time.monotonic() + 2.0)
    assert 1.5 < soon.connect() <= 2.0  # type: ignore[operator]
    assert 1.5 < soon.read() <= 2.0  # type: ignore[operator]
    assert soon.write() == 0.5
    with pytest.raises(TimeoutError):
        Timeouts(given, time.monotonic() - 0.001).write()


# -- how engines are chosen ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (EngineSettings(engine="h11"), H11Transport),
        (EngineSettings(engine="h11", proxy=httpx.Proxy("http://127.0.0.1:1")), H11Transport),
        (EngineSettings(engine="httpx"), httpx.HTTPTransport),
        (EngineSettings(engine="h11", http2=True), httpx.HTTPTransport),
        (
            EngineSettings(engine="h11", proxy=httpx.Proxy("socks5://127.0.0.1:1")),
            httpx.HTTPTransport,
        ),
        (
            EngineSettings(engine="h11", proxy=httpx.Proxy("https://127.0.0.1:1")),
            httpx.HTTPTransport,
        ),
    ],
    ids=["default", "http-proxy", "httpx", "http2", "socks5", "https-proxy"],
)
def test_sync_engine_routing(settings: EngineSettings, expected: type) -> None:
    engine = sync_engine(settings)
    try:
        assert type(engine) is expected
    finally:
        engine.close()


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1", "https://127.0.0.1:1"])
def test_unsupported_proxies_are_refused(proxy: str) -> None:
    with pytest.raises(ValueError, match="httpx's own transport"):
        H11Transport(proxy=proxy)


@pytest.mark.parametrize(
    ("url", "message"),
    [("ftp://example.test/", "unsupported protocol 'ftp://'"), ("//example.test/", "missing")],
)
def test_unsupported_protocols(url: str, message: str) -> None:
    with H11Transport() as transport, pytest.raises(httpx.UnsupportedProtocol, match=message):
        transport.handle_request(httpx.Request("GET", url))


# -- the wire ------------------------------------------------------------------------------


def test_request_bytes_are_httpx_transports(wire_server: WireServer) -> None:
    """Headers byte for byte and in order, repeated, odd case and non-UTF-8 bytes kept;
    a streamed body chunked: the same bytes as httpx's own transport sends."""
    headers = [(b"X-B", b"2"), (b"x-a", b"1"), (b"X-B", b"3"), (b"X-Latin", b"caf\xe9")]

    def body() -> Iterator[bytes]:
        yield b"one"
        yield b"two"

    wires = []
    for transport in (httpx.HTTPTransport(), H11Transport()):
        with httpx.Client(transport=transport, timeout=TIMEOUT) as c:
            c.post(f"{wire_server.url}/ok?q=1", headers=headers, content=b"body")
            c.post(f"{wire_server.url}/ok", content=body())
            c.head(f"{wire_server.url}/ok")
        wire_server.settle()
        wires.append([(r.connection, bytes(r.data)) for r in wire_server.take()])
    httpx_wire, h11_wire = wires
    assert [data for _, data in h11_wire] == [data for _, data in httpx_wire]
    assert len({conn for conn, _ in h11_wire}) == 1  # one connection, kept alive
    assert b"X-Latin: caf\xe9\r\n" in h11_wire[0][1]


def test_response_extensions(wire_server: WireServer) -> None:
    with client(local_address="127.0.0.1") as c:
        response = c.get(f"{wire_server.url}/status?code=200&reason=Just%20Fine")
        stream = response.extensions["network_stream"]
        assert response.extensions["http_version"] == b"HTTP/1.1"
        assert response.extensions["reason_phrase"] == b"Just Fine"
        assert stream.get_extra_info("client_addr")[0] == "127.0.0.1"
        assert stream.get_extra_info("server_addr")[1] == httpx.URL(wire_server.url).port
        assert stream.get_extra_info("ssl_object") is None
        assert stream.get_extra_info("is_readable") is False
        assert c.get(f"{wire_server.url}/http10").http_version == "HTTP/1.0"


def test_streamed_response_closed_early_closes_its_connection(
    hostile_server: HostileServer,
) -> None:
    with client() as c:
        with c.stream("GET", f"{hostile_server.url}/trickle?interval=0.01&size=50") as r:
            first = next(r.iter_raw())
        assert first
        assert c.get(f"{hostile_server.url}/ok").json()["connection"] == 2
        assert c.get(f"{hostile_server.url}/ok").json()["connection"] == 2  # reused


def test_protocol_switch_gives_the_connection_to_the_caller() -> None:
    """A 101 response's `network_stream` reads and writes the connection (as with httpx's
    transport, e.g. for WebSockets); what came with the head is read first."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\nhello")
        while data := await reader.read(100):
            writer.write(data.upper())
            await writer.drain()

    thread = ServerThread("cf-test-upgrade")
    thread.start(stream_serve(handle))
    try:
        with client() as c:
            headers = {"Connection": "Upgrade", "Upgrade": "echo"}
            with c.stream("GET", thread.url, headers=headers) as response:
                assert response.status_code == 101
                stream = response.extensions["network_stream"]
                assert stream.read(100) == b"hello"
                stream.write(b"ping")
                assert stream.read(100, timeout=5.0) == b"PING"
    finally:
        thread.stop()


def test_a_malformed_response_is_a_protocol_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    thread = ServerThread("cf-test-garbage")
    thread.start(stream_serve(handle))
    try:
        with pytest.raises(httpx.RemoteProtocolError):
            get(thread.url)
    finally:
        thread.stop()


def test_connect_failures(refused_url: str, blackhole_url: str) -> None:
    with pytest.raises(httpx.ConnectError, match="Connection refused"):
        get(refused_url)
    with client() as c, pytest.raises(httpx.ConnectTimeout):
        c.get(blackhole_url, timeout=httpx.Timeout(5.0, connect=0.2))


# -- limits --------------------------------------------------------------------------------


def test_threads_share_the_pool_within_its_limits(hostile_server: HostileServer) -> None:
    limits = httpx.Limits(max_connections=3, max_keepalive_connections=3)
    with client(limits=limits) as c:

        def one(i: int) -> str | None:
            rid = f"t{i}"
            return c.get(f"{hostile_server.url}/ok", headers={"X-Request-Id": rid}).headers.get(
                "x-request-id"
            )

        with ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(one, range(200)))
    assert ids == [f"t{i}" for i in range(200)]
    assert hostile_server.duplicates() == [] and hostile_server.connections <= 3


def test_pool_timeout_when_every_connection_is_busy(hostile_server: HostileServer) -> None:
    with client(limits=httpx.Limits(max_connections=1)) as c:
        with c.stream("GET", f"{hostile_server.url}/trickle?interval=0.5&size=10"):
            with pytest.raises(httpx.PoolTimeout):
                c.get(f"{hostile_server.url}/ok", timeout=httpx.Timeout(5.0, pool=0.1))
        waiting = threading.Event()

        def later() -> httpx.Response:
            waiting.set()
            return c.get(f"{hostile_server.url}/ok")

        with ThreadPoolExecutor(1) as pool:
            with c.stream("GET", f"{hostile_server.url}/ok") as held:
                future = pool.submit(later)
                waiting.wait(5)
                time.sleep(0.05)
                assert not future.done()  # it waits for the one connection
                held.read()
            assert future.result(5).json()["connection"] == hostile_server.connections


def test_a_full_pool_closes_an_idle_connection_to_another_origin(
    hostile_server: HostileServer, wire_server: WireServer
) -> None:
    with client(limits=httpx.Limits(max_connections=1)) as c:
        assert c.get(f"{wire_server.url}/ok").status_code == 200
        assert c.get(f"{hostile_server.url}/ok").status_code == 200  # did not wait
    assert wire_server.settle()


@pytest.mark.parametrize(
    ("limits", "pause", "connections"),
    [
        (httpx.Limits(max_keepalive_connections=0), 0.0, 3),
        (httpx.Limits(keepalive_expiry=0.05), 0.15, 3),
        (httpx.Limits(keepalive_expiry=5.0), 0.15, 1),
    ],
    ids=["no-keep-alive", "expired", "kept"],
)
def test_keep_alive_limits(
    limits: httpx.Limits, pause: float, connections: int, hostile_server: HostileServer
) -> None:
    with client(limits=limits) as c:
        for _ in range(3):
            assert c.get(f"{hostile_server.url}/ok").status_code == 200
            time.sleep(pause)
    assert hostile_server.connections == connections


def test_the_most_recently_used_connection_is_reused(hostile_server: HostileServer) -> None:
    with client() as c:
        with c.stream("GET", f"{hostile_server.url}/ok") as one:
            with c.stream("GET", f"{hostile_server.url}/ok") as two:
                two.read()
            one.read()  # released last
        assert c.get(f"{hostile_server.url}/ok").json()["connection"] == 1


# -- TLS -----------------------------------------------------------------------------------


def test_tls_with_a_given_context(tls_server: TLSAppServer, tls_certs: TLSFiles) -> None:
    context = tls_certs.client_context()
    with client(verify=context) as c:
        for url in (tls_server.url, tls_server.localhost_url):
            response = c.get(f"{url}/echo")
            assert response.status_code == 200 and response.headers["x-http-version"] == "1.1"
            ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
            assert ssl_object.version().startswith("TLS")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(f"{tls_server.url}/echo")  # the system's CAs do not know the test CA


def test_tls_asks_for_http11_only(h2_server: TLSAppServer, tls_certs: TLSFiles) -> None:
    for verify in (tls_certs.client_context(), tls_certs.ca_bundle):  # a caller's, cf's own
        with client(verify=verify) as c:
            response = c.get(f"{h2_server.url}/echo")
            version = (response.http_version, response.headers["x-http-version"])
            assert version == ("HTTP/1.1", "1.1")
            ssl_object = response.extensions["network_stream"].get_extra_info("ssl_object")
            assert ssl_object.selected_alpn_protocol() == "http/1.1"


def test_sni_hostname_and_client_certificates(
    tls_info_server: TLSInfoServer, tls_certs: TLSFiles
) -> None:
    verify = tls_certs.client_context()
    by_ip = get(tls_info_server.url, verify=verify)  # no SNI for an IP address
    by_name = get(tls_info_server.localhost_url, verify=verify)
    with client(verify=verify) as c:  # (a connection to the origin would be reused, as httpx)
        by_sni = c.get(tls_info_server.url, extensions={"sni_hostname": "sni.test"})
    assert [r.json()["sni"] for r in (by_ip, by_name, by_sni)] == [None, "localhost", "sni.test"]
    with_cert = get(tls_info_server.url, verify=tls_certs.client_context(tls_certs.bob))
    assert with_cert.json()["client_cn"] == "bob"


def test_cert_option(tls_info_server: TLSInfoServer, tls_certs: TLSFiles) -> None:
    bob = tls_certs.bob
    response = get(tls_info_server.url, verify=tls_info_server.ca_bundle, cert=bob.combined)
    assert response.json()["client_cn"] == "bob"


# -- proxies -------------------------------------------------------------------------------


def test_forwarding_proxy(tinyproxy: TinyProxy, server: AppServer) -> None:
    response = get(f"{server.url}/echo?via=proxy", proxy=tinyproxy.url)
    assert response.status_code == 200
    assert tinyproxy.forwarded(min_count=1) == [("GET", f"{server.url}/echo?via=proxy")]
    (seen,) = server.requests("/echo")
    assert "tinyproxy" in (seen.header("via") or "")


def test_tunnelling_proxy(
    tinyproxy: TinyProxy, tls_server: TLSAppServer, tls_certs: TLSFiles
) -> None:
    with client(proxy=tinyproxy.url, verify=tls_certs.client_context()) as c:
        assert c.get(f"{tls_server.url}/echo").status_code == 200
        assert c.get(f"{tls_server.url}/echo").status_code == 200  # the tunnel is kept
    assert tinyproxy.forwarded(min_count=1) == [
        ("CONNECT", tls_server.url.removeprefix("https://"))
    ]
    assert tls_server.hits("/echo") == 2


def test_proxy_credentials(tinyproxy_auth: TinyProxy, server: AppServer) -> None:
    refused = get(f"{server.url}/echo", proxy=tinyproxy_auth.url)
    assert refused.status_code == 407 and server.hits("/echo") == 0
    allowed = get(f"{server.url}/echo", proxy=tinyproxy_auth.url_with_credentials)
    assert allowed.status_code == 200 and server.hits("/echo") == 1


def test_a_refused_tunnel_is_a_proxy_error(
    tinyproxy_auth: TinyProxy, tls_server: TLSAppServer, tls_certs: TLSFiles
) -> None:
    with pytest.raises(httpx.ProxyError, match="407"):
        get(tls_server.url, proxy=tinyproxy_auth.url, verify=tls_certs.client_context())
