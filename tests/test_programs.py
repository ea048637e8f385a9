"""The real programs, TLS, HTTP/2, Unix-socket and hostile servers behave as documented.

Checked with plain httpx in both modes (and with raw sockets where the bytes on
the wire are the point), so that the parity and reliability suites can trust them.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.app import AppServer
from tests.servers.hostile import HostileServer
from tests.servers.programs import (
    LARGE_BODY,
    NGINX_TEXT,
    MicroSocks,
    Nginx,
    TinyProxy,
    require_program,
)
from tests.servers.tls import TLSAppServer, TLSFiles, TLSInfoServer
from tests.servers.uds import UnixAppServer

MODES = pytest.mark.parametrize("mode", ["sync", "async"])
SHORT = httpx.Timeout(5.0, read=2.0)


def run(mode: str, calls: Callable[[Any], Any], **client: Any) -> Any:
    """`calls(client)` on a fresh `httpx.Client` (sync) or `httpx.AsyncClient` (async).

    In async mode `calls` returns a coroutine, which runs in a fresh event loop.
    """
    client.setdefault("timeout", SHORT)
    if mode == "sync":
        with httpx.Client(**client) as sync_client:
            return calls(sync_client)

    async def main() -> Any:
        async with httpx.AsyncClient(**client) as async_client:
            return await calls(async_client)

    return asyncio.run(main())


def get(mode: str, url: str, **client: Any) -> httpx.Response:
    """One GET on a fresh client of `mode`, the body read."""
    return run(mode, lambda c: c.get(url), **client)  # type: ignore[no-any-return]


def gets(mode: str, urls: list[str], **client: Any) -> list[httpx.Response]:
    """Sequential GETs on one client of `mode` (one connection pool)."""
    if mode == "sync":
        return run(mode, lambda c: [c.get(u) for u in urls], **client)  # type: ignore[no-any-return]

    async def calls(c: httpx.AsyncClient) -> list[httpx.Response]:
        return [await c.get(u) for u in urls]

    return run(mode, calls, **client)  # type: ignore[no-any-return]


def raw_exchange(url: str, request: bytes, *, read_until_eof: float = 2.0) -> tuple[bytes, float]:
    """Send `request` on a plain socket; everything received until EOF, and when EOF came."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_until_eof) as sock:
        sock.sendall(request)
        start = time.monotonic()
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data, time.monotonic() - start


# -- nginx -------------------------------------------------------------------------------


NGINX_GETS = ["/text", "/large.bin", "/redirect", "/cookies", "/gzip.txt"]


@MODES
def test_nginx_serves_its_paths(mode: str, nginx_server: Nginx) -> None:
    urls = [nginx_server.url + path for path in NGINX_GETS]
    text, large, redirect, cookies, gz = gets(mode, urls)
    assert (text.status_code, text.content) == (200, NGINX_TEXT)
    assert text.headers["server"].startswith("nginx")
    assert large.content == LARGE_BODY and large.headers["content-length"] == str(len(LARGE_BODY))
    assert "etag" in large.headers
    assert redirect.status_code == 302
    assert redirect.headers["location"] == f"{nginx_server.url}/text"
    assert cookies.headers.get_list("set-cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert gz.headers["content-encoding"] == "gzip" and gz.content.startswith(b"compress me")
    log = nginx_server.log(min_lines=5)
    assert [line.uri for line in log] == NGINX_GETS
    assert len({line.connection for line in log}) == 1  # one kept-alive connection
    assert [line.connection_requests for line in log] == [1, 2, 3, 4, 5]


def test_nginx_gzip_on_the_wire(nginx_server: Nginx) -> None:
    data, _ = raw_exchange(
        nginx_server.url,
        b"GET /gzip.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Encoding: gzip" in head and b"Transfer-Encoding: chunked" in head
    chunks, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        chunks, rest = chunks + rest[:size], rest[size + 2 :]
    assert gzip.decompress(chunks).startswith(b"compress me please")


def test_nginx_closes_an_idle_connection_after_about_one_second(nginx_server: Nginx) -> None:
    data, waited = raw_exchange(nginx_server.url, b"GET /text HTTP/1.1\r\nHost: x\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200") and data.endswith(NGINX_TEXT)
    assert b"Connection: keep-alive" in data
    assert 0.8 <= waited <= 2.5, waited  # keepalive_timeout 1s


def test_nginx_keep_alive_reused_then_expired_httpx_reconnects(nginx_server: Nginx) -> None:
    with httpx.Client(base_url=nginx_server.url, timeout=SHORT) as client:
        assert client.get("/text").status_code == 200
        assert client.post("/text", content=b"x" * 100).status_code == 200
        time.sleep(1.3)  # past keepalive_timeout: nginx closed the connection meanwhile
        assert client.post("/text", content=b"after idle").status_code == 200
    first, second, third = nginx_server.log(min_lines=3)
    assert first.connection == second.connection != third.connection
    assert (second.method, second.status) == ("POST", 200)


# -- tinyproxy ---------------------------------------------------------------------------


@MODES
def test_tinyproxy_forwards_http(mode: str, tinyproxy: TinyProxy, server: AppServer) -> None:
    response = get(mode, f"{server.url}/echo?via=proxy", proxy=tinyproxy.url)
    assert response.status_code == 200
    assert tinyproxy.forwarded(min_count=1) == [("GET", f"{server.url}/echo?via=proxy")]
    (seen,) = server.requests("/echo")
    assert "tinyproxy" in (seen.header("via") or "")  # it went through the proxy


@MODES
def test_tinyproxy_tunnels_https(
    mode: str, tinyproxy: TinyProxy, tls_server: TLSAppServer, tls_certs: TLSFiles
) -> None:
    response = get(
        mode, f"{tls_server.url}/echo", proxy=tinyproxy.url, verify=tls_certs.client_context()
    )
    assert response.status_code == 200
    assert tinyproxy.forwarded(min_count=1) == [
        ("CONNECT", tls_server.url.removeprefix("https://"))
    ]
    assert tls_server.hits("/echo") == 1


@MODES
def test_tinyproxy_auth_407_without_credentials(
    mode: str, tinyproxy_auth: TinyProxy, server: AppServer
) -> None:
    refused = get(mode, f"{server.url}/echo", proxy=tinyproxy_auth.url)
    assert refused.status_code == 407
    assert refused.headers["proxy-authenticate"] == 'Basic realm="Tinyproxy"'
    assert server.hits("/echo") == 0
    allowed = get(mode, f"{server.url}/echo", proxy=tinyproxy_auth.url_with_credentials)
    assert allowed.status_code == 200 and server.hits("/echo") == 1
    assert len(tinyproxy_auth.forwarded(min_count=2)) == 2


@MODES
def test_tinyproxy_auth_connect_refused_is_a_proxy_error(
    mode: str, tinyproxy_auth: TinyProxy, tls_server: TLSAppServer, tls_certs: TLSFiles
) -> None:
    with pytest.raises(httpx.ProxyError, match="407"):
        get(mode, tls_server.url, proxy=tinyproxy_auth.url, verify=tls_certs.client_context())


# -- SOCKS5 ------------------------------------------------------------------------------


@MODES
def test_socks5_proxy_connects(mode: str, socks5_proxy: MicroSocks, server: AppServer) -> None:
    response = get(mode, f"{server.url}/echo", proxy=socks5_proxy.url)
    assert response.status_code == 200 and server.hits("/echo") == 1
    assert socks5_proxy.connects(min_count=1) == [server.url.removeprefix("http://")]


# httpcore leaves the proxy's socket open when the SOCKS5 handshake fails (its
# `connect_tcp` stream is not closed on that error): collected here, not in a later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@MODES
def test_socks5_auth_proxy(mode: str, socks5_auth_proxy: MicroSocks, server: AppServer) -> None:
    with pytest.raises(httpx.ProxyError):
        get(mode, f"{server.url}/echo", proxy=socks5_auth_proxy.url)
    gc.collect()
    assert server.hits("/echo") == 0
    response = get(mode, f"{server.url}/echo", proxy=socks5_auth_proxy.url_with_credentials)
    assert response.status_code == 200 and server.hits("/echo") == 1
    assert socks5_auth_proxy.connects(min_count=1) == [server.url.removeprefix("http://")]


# -- TLS ---------------------------------------------------------------------------------


@MODES
def test_tls_server_verifies_with_the_ca_only(
    mode: str, tls_server: TLSAppServer, tls_certs: TLSFiles
) -> None:
    for url in (tls_server.url, tls_server.localhost_url):
        response = get(mode, f"{url}/echo", verify=tls_certs.client_context())
        assert response.status_code == 200 and response.headers["x-http-version"] == "1.1"
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        get(mode, f"{tls_server.url}/echo")  # the system's CAs do not know the test CA
    assert tls_server.hits("/echo") == 2 and tls_server.http_versions() == ["1.1", "1.1"]


@MODES
def test_mtls_server_sees_which_client_certificate(
    mode: str, mtls_server: TLSInfoServer, tls_certs: TLSFiles
) -> None:
    for identity in (tls_certs.alice, tls_certs.bob):
        verify = tls_certs.client_context(identity)
        response = get(mode, f"{mtls_server.url}/who?id={identity.common_name}", verify=verify)
        assert response.json()["client_cn"] == identity.common_name
    assert [(s.request_id, s.client_cn) for s in mtls_server.seen()] == [
        ("alice", "alice"),
        ("bob", "bob"),
    ]
    assert mtls_server.seen()[0].client_serial != mtls_server.seen()[1].client_serial


@MODES
def test_mtls_server_refuses_a_client_without_certificate(
    mode: str, mtls_server: TLSInfoServer, tls_certs: TLSFiles
) -> None:
    with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
        get(mode, mtls_server.url, verify=tls_certs.client_context())
    assert mtls_server.seen() == [] and mtls_server.handshakes == 1


@MODES
def test_tls_info_server_reports_sni(
    mode: str, tls_info_server: TLSInfoServer, tls_certs: TLSFiles
) -> None:
    verify = tls_certs.client_context()
    by_ip = get(mode, tls_info_server.url, verify=verify)  # no SNI for an IP address
    by_name = get(mode, tls_info_server.localhost_url, verify=verify)

    def by_extension(c: Any) -> Any:
        return c.get(tls_info_server.url, extensions={"sni_hostname": "sni.test"})

    by_sni = run(mode, by_extension, verify=verify)
    assert [r.json()["sni"] for r in (by_ip, by_name, by_sni)] == [None, "localhost", "sni.test"]
    assert [s.sni for s in tls_info_server.seen()] == [None, "localhost", "sni.test"]
    assert {s.client_cn for s in tls_info_server.seen()} == {None}  # no client certificate
    assert tls_info_server.seen()[0].tls_version == "TLSv1.3"
    with_cert = get(mode, tls_info_server.url, verify=tls_certs.client_context(tls_certs.bob))
    assert with_cert.json()["client_cn"] == "bob"


@MODES
@pytest.mark.parametrize(
    ("which", "reason"),
    [("self_signed_server", "self-signed certificate"), ("expired_cert_server", "expired")],
)
def test_bad_certificates_fail_verification_once(
    mode: str, which: str, reason: str, tls_certs: TLSFiles, request: pytest.FixtureRequest
) -> None:
    bad: TLSInfoServer = request.getfixturevalue(which)
    with pytest.raises(httpx.ConnectError, match=reason):
        get(mode, f"{bad.url}/x", verify=tls_certs.client_context())
    assert bad.handshakes == 1 and bad.seen() == []
    insecure = get(mode, f"{bad.url}/x", verify=False)  # the server itself works
    assert insecure.json()["path"] == "/x" and bad.handshakes == 2


# -- HTTP/2 ------------------------------------------------------------------------------


@MODES
def test_h2_server_speaks_http2(mode: str, h2_server: TLSAppServer, tls_certs: TLSFiles) -> None:
    verify = tls_certs.client_context()
    h2 = get(mode, f"{h2_server.url}/echo", verify=verify, http2=True)
    assert (h2.http_version, h2.headers["x-http-version"]) == ("HTTP/2", "2")
    assert h2.json()["path"] == "/echo"
    h1 = get(mode, f"{h2_server.url}/echo", verify=verify)
    assert (h1.http_version, h1.headers["x-http-version"]) == ("HTTP/1.1", "1.1")
    assert h2_server.http_versions() == ["2", "1.1"] and h2_server.hits("/echo") == 2


# -- Unix socket -------------------------------------------------------------------------


@MODES
def test_uds_server(mode: str, uds_server: UnixAppServer) -> None:
    if mode == "sync":
        transport: Any = httpx.HTTPTransport(uds=uds_server.path)
    else:
        transport = httpx.AsyncHTTPTransport(uds=uds_server.path)
    response = get(mode, f"{uds_server.url}/echo?k=v", transport=transport)
    assert response.json()["query"] == "k=v"
    (seen,) = uds_server.requests("/echo")
    assert seen.header("host") == "localhost"


# -- hostile server ----------------------------------------------------------------------


def _ids(responses: list[httpx.Response]) -> list[str | None]:
    return [r.headers.get("x-request-id") for r in responses]


@MODES
def test_hostile_ok_echoes_request_id_and_connection(
    mode: str, hostile_server: HostileServer
) -> None:
    urls = [f"{hostile_server.url}/ok?id=r{i}" for i in range(3)]
    responses = gets(mode, urls)
    assert _ids(responses) == ["r0", "r1", "r2"]
    assert [r.json()["index"] for r in responses] == [1, 2, 3]  # kept alive
    assert [(a.request_id, a.connection, a.index) for a in hostile_server.arrivals()] == [
        ("r0", 1, 1),
        ("r1", 1, 2),
        ("r2", 1, 3),
    ]
    assert hostile_server.duplicates() == [] and hostile_server.connections == 1


def test_hostile_duplicates_are_counted(hostile_server: HostileServer) -> None:
    with httpx.Client(timeout=SHORT) as client:
        for rid in ("a", "b", "a"):
            client.post(f"{hostile_server.url}/ok", headers={"X-Request-Id": rid}, content=b"12")
    assert hostile_server.duplicates() == ["a"]
    assert [a.body_length for a in hostile_server.arrivals()] == [2, 2, 2]


def test_hostile_close_after_says_nothing_then_closes(hostile_server: HostileServer) -> None:
    data, waited = raw_exchange(hostile_server.url, b"GET /close-after?id=1 HTTP/1.1\r\n\r\n")
    head = data.partition(b"\r\n\r\n")[0].lower().split(b"\r\n")
    assert head[0].startswith(b"http/1.1 200")
    assert not [line for line in head if line.startswith(b"connection:")]
    assert waited < 1.0


@MODES
def test_hostile_close_after_every_response(mode: str, hostile_server: HostileServer) -> None:
    hostile_server.close_after_response = True
    responses = gets(mode, [f"{hostile_server.url}/ok?id={i}" for i in range(5)])
    assert _ids(responses) == [str(i) for i in range(5)]
    assert hostile_server.connections == 5 and hostile_server.duplicates() == []


def test_hostile_idle_close_after_n_ms(hostile_server: HostileServer) -> None:
    _, waited = raw_exchange(hostile_server.url, b"GET /idle-close?ms=100 HTTP/1.1\r\n\r\n")
    assert 0.09 <= waited < 1.0
    _, waited = raw_exchange(hostile_server.url, b"GET /ok?idle_ms=0 HTTP/1.1\r\n\r\n")
    assert waited < 0.5


@MODES
def test_hostile_idle_close_knob(mode: str, hostile_server: HostileServer) -> None:
    hostile_server.idle_ms = 30

    def calls(c: Any) -> Any:
        first = c.get(f"{hostile_server.url}/ok?id=1")
        time.sleep(0.2)
        return [first, c.get(f"{hostile_server.url}/ok?id=2")]

    async def acalls(c: httpx.AsyncClient) -> list[httpx.Response]:
        first = await c.get(f"{hostile_server.url}/ok?id=1")
        await asyncio.sleep(0.2)
        return [first, await c.get(f"{hostile_server.url}/ok?id=2")]

    responses = run(mode, calls if mode == "sync" else acalls)
    assert _ids(responses) == ["1", "2"] and hostile_server.connections == 2


@MODES
def test_hostile_short_length_desyncs_httpx(mode: str, hostile_server: HostileServer) -> None:
    """Issue 15 item 2: the bytes after a short Content-Length become the next response."""
    urls = [f"{hostile_server.url}/short-length?id=1", f"{hostile_server.url}/ok?id=2"]
    first, second = gets(mode, urls)
    assert first.content == b"ok"
    assert (second.content, second.headers["x-request-id"]) == (b"EVIL", "evil")  # not id 2's
    assert [a.request_id for a in hostile_server.arrivals(min_count=2)] == ["1", "2"]


@MODES
def test_hostile_head_with_body_desyncs_httpx(mode: str, hostile_server: HostileServer) -> None:
    """Issue 15 item 2: a HEAD response's body is read as the next request's response."""

    def calls(c: Any) -> Any:
        return [c.head(f"{hostile_server.url}/head-body?id=1"), c.get(f"{hostile_server.url}/ok")]

    async def acalls(c: httpx.AsyncClient) -> list[httpx.Response]:
        head = await c.head(f"{hostile_server.url}/head-body?id=1")
        return [head, await c.get(f"{hostile_server.url}/ok")]

    head, after = run(mode, calls if mode == "sync" else acalls)
    assert head.status_code == 200 and head.content == b""
    assert (after.content, after.headers["x-request-id"]) == (b"EVIL", "evil")


@pytest.mark.parametrize(
    ("part", "at_once"),
    [("status", b""), ("headers", b"HTTP/1.1 200 OK\r\n"), ("body", b"\r\n\r\n")],
)
def test_hostile_trickle_one_byte_at_a_time(
    part: str, at_once: bytes, hostile_server: HostileServer
) -> None:
    host, port = hostile_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.sendall(f"GET /trickle?part={part}&interval=0.05&size=3 HTTP/1.1\r\n\r\n".encode())
        first = sock.recv(1000)
        if part == "body":
            assert first.endswith((at_once, b"\r\n\r\nt")), first
        else:
            assert first in (at_once, at_once + first[-1:]) and len(first) <= len(at_once) + 1
        start = time.monotonic()
        assert len(sock.recv(1000)) == 1 and len(sock.recv(1000)) == 1
        assert time.monotonic() - start >= 0.04  # the next byte came an interval later


def test_hostile_trickle_outlasts_the_read_timeout(hostile_server: HostileServer) -> None:
    """Each byte arrives within the read timeout, so the whole response takes longer."""
    start = time.monotonic()
    with httpx.Client(timeout=httpx.Timeout(5.0, read=0.15)) as client:
        response = client.get(f"{hostile_server.url}/trickle?interval=0.05&size=10")
    assert response.content == b"t" * 10 and time.monotonic() - start >= 0.45


@MODES
def test_hostile_stalled_upload_never_reads(mode: str, hostile_server: HostileServer) -> None:
    body = b"u" * (32 * 1024 * 1024)  # more than the kernel buffers on both sides
    url = f"{hostile_server.url}/stalled-upload?id=up&seconds=5"
    timeout = httpx.Timeout(5.0, write=0.3)
    with pytest.raises(httpx.WriteTimeout):
        run(mode, lambda c: c.post(url, content=body), timeout=timeout)
    (arrival,) = hostile_server.arrivals()
    assert (arrival.request_id, arrival.body_length) == ("up", -1)


def test_hostile_stalled_upload_answers_408_later(hostile_server: HostileServer) -> None:
    data, waited = raw_exchange(
        hostile_server.url,
        b"POST /stalled-upload?seconds=0.1 HTTP/1.1\r\nContent-Length: 10\r\n"
        b"Expect: 100-continue\r\n\r\n",
    )
    assert data.startswith(b"HTTP/1.1 408 ") and b"100 Continue" not in data
    assert waited >= 0.09


@MODES
def test_hostile_retry_after(mode: str, hostile_server: HostileServer) -> None:
    response = get(mode, f"{hostile_server.url}/retry-after")
    assert (response.status_code, response.headers["retry-after"]) == (503, "3600")
    response = get(mode, f"{hostile_server.url}/retry-after?status=429&value=7")
    assert (response.status_code, response.headers["retry-after"]) == (429, "7")


@MODES
def test_hostile_hang(mode: str, hostile_server: HostileServer) -> None:
    with pytest.raises(httpx.ReadTimeout):
        get(mode, f"{hostile_server.url}/hang?id=h", timeout=httpx.Timeout(5.0, read=0.2))
    assert [a.request_id for a in hostile_server.arrivals()] == ["h"]


def test_hostile_reset_closes_connections_left_open(hostile_server: HostileServer) -> None:
    host, port = hostile_server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.sendall(b"GET /hang HTTP/1.1\r\n\r\n")
        deadline = time.monotonic() + 2
        while not hostile_server.arrivals() and time.monotonic() < deadline:
            time.sleep(0.005)
        hostile_server.reset()
        assert sock.recv(100) == b""  # closed by the reset, no answer
    assert hostile_server.arrivals() == [] and hostile_server.connections == 0


def test_json_body_of_ok(hostile_server: HostileServer) -> None:
    response = httpx.post(f"{hostile_server.url}/ok?key=k", content=b"abc", timeout=SHORT)
    assert json.loads(response.content) == {
        "id": None,
        "connection": 1,
        "index": 1,
        "method": "POST",
        "path": "/ok",
        "body_length": 3,
    }
    assert hostile_server.hits("k") == 1


# -- scripts/_system_deps.sh and require_program -------------------------------------------

SYSTEM_DEPS = Path(__file__).resolve().parent.parent / "scripts" / "_system_deps.sh"


def _stub(directory: Path, name: str, script: str) -> None:
    path = directory / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def _source_system_deps(bin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Source the script as scripts/test does (set -euo pipefail) with PATH=`bin_dir`.

    Only the stubs and the few tools the script and stubs use are on PATH, so that
    no real apt-get, sudo or program is found.
    """
    for tool in ("mktemp", "grep", "tail", "rm", "env", "touch", "chmod"):
        found = shutil.which(tool)
        if found is not None and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(found)
    script = f'set -euo pipefail; source "{SYSTEM_DEPS}"; echo "REQUIRE=${{CF_REQUIRE_PROGRAMS-}}"'
    environment = {"PATH": str(bin_dir), "HOME": str(bin_dir), **env}
    bash = shutil.which("bash") or "/bin/bash"
    return subprocess.run(
        [bash, "-c", script], env=environment, capture_output=True, text=True, timeout=30
    )


def test_system_deps_all_present_no_apt_call(tmp_path: Path) -> None:
    for program in ("prog-a", "prog-b"):
        _stub(tmp_path, program, "exit 0")
    _stub(tmp_path, "apt-get", f'echo "apt-get $*" >> "{tmp_path}/calls"; exit 1')
    packages = "pkg-a:prog-a pkg-b:prog-b"
    result = _source_system_deps(tmp_path, CF_SYSTEM_PACKAGES=packages)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "REQUIRE=1" and result.stderr == ""
    assert not (tmp_path / "calls").exists()


def test_system_deps_installs_and_updates_only_when_the_index_is_missing(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    # apt-get: "update" works; "install" fails for a missing index until "update" ran,
    # then installs the program (a stub) into tmp_path.
    _stub(
        tmp_path,
        "apt-get",
        f'echo "$*" >> "{calls}"\n'
        f'case "$1" in update) touch "{tmp_path}/updated"; exit 0;; esac\n'
        f'[ -f "{tmp_path}/updated" ] || {{ echo "E: Unable to locate package"; exit 100; }}\n'
        f'printf "#!/bin/sh\\n" > "{tmp_path}/prog-c"; chmod +x "{tmp_path}/prog-c"',
    )
    _stub(tmp_path, "id", "echo 0")
    result = _source_system_deps(tmp_path, CF_SYSTEM_PACKAGES="pkg-c:prog-c")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "REQUIRE=1"
    assert "installing pkg-c" in result.stderr
    lines = calls.read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["install", "update", "install"]
    assert "--no-install-recommends" in lines[0] and lines[0].endswith("pkg-c")


@pytest.mark.parametrize(
    ("stubs", "says"),
    [
        pytest.param({"id": "echo 1000"}, "not root, no sudo", id="not-root"),
        pytest.param({"id": "echo 1000", "sudo": "exit 1"}, "not root, no sudo", id="sudo-refuses"),
        pytest.param(
            {"id": "echo 0", "apt-get": "echo 'E: broken'; exit 100"}, "E: broken", id="apt-fails"
        ),
    ],
)
def test_system_deps_cannot_install_says_so_and_goes_on(
    tmp_path: Path, stubs: dict[str, str], says: str
) -> None:
    for name, script in stubs.items():
        _stub(tmp_path, name, script)
    result = _source_system_deps(tmp_path, CF_SYSTEM_PACKAGES="cf-no-such-pkg:cf-no-such-program")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "REQUIRE="  # the fixtures skip, not fail
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert "cf-no-such-pkg" in line and says in line and "skip" in line


def test_require_program_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CF_REQUIRE_PROGRAMS", raising=False)
    assert require_program("sh") == shutil.which("sh")
    # pytest.raises(BaseException): a skip where a failure is expected must fail this test.
    with pytest.raises(BaseException, match="cf-no-such-program is not installed") as skipped:
        require_program("cf-no-such-program")
    assert skipped.type is pytest.skip.Exception
    monkeypatch.setenv("CF_REQUIRE_PROGRAMS", "1")
    with pytest.raises(BaseException, match="CF_REQUIRE_PROGRAMS=1") as failed:
        require_program("cf-no-such-program")
    assert failed.type is pytest.fail.Exception
