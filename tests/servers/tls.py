"""TLS test material and servers: a trustme CA, certificates, TLS/mTLS/HTTP/2 servers.

- `TLSFiles` (`make_tls_files`): the CA bundle, a server certificate for
  `localhost`, `127.0.0.1`, `::1` and `sni.test` (issued by the CA), two client
  identities (`alice`, `bob`, issued by the CA), a self-signed certificate and
  an expired one (issued by the CA, expired yesterday), all as PEM files.
- `uvicorn_tls_serve`: the test app of `tests.servers.app` under uvicorn over TLS.
- `hypercorn_serve`: the same app under hypercorn over TLS, ALPN `h2` and
  `http/1.1` (a real HTTP/2 server).
- `VersionReporting`: wraps an ASGI app; each response says the HTTP version that
  served it (`X-HTTP-Version: 1.1` or `2`), and the versions are recorded.
- `tls_info_serve` / `TLSInfoServer`: a plain asyncio HTTP/1.1 server over TLS
  that answers every request with what it saw of the TLS session: the SNI name,
  the client certificate (common name and serial), the TLS version and the ALPN
  protocol, and counts the TLS handshakes begun (ClientHellos, failed ones too).
  Run with a client certificate required (mTLS), optional, or with an untrusted
  (self-signed) or expired server certificate.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme

from ._threaded import Serve
from .app import AppServer, Message, Receive, Recorder, Scope, Send
from .hostile import read_body, read_head, response_bytes, stream_serve

__all__ = [
    "SERVER_NAMES",
    "ClientIdentity",
    "TLSAppServer",
    "TLSFiles",
    "TLSInfoServer",
    "TLSInfoState",
    "TLSSeen",
    "VersionLog",
    "VersionReporting",
    "hypercorn_serve",
    "make_tls_files",
    "server_context",
    "tls_info_serve",
    "uvicorn_tls_serve",
]

SERVER_NAMES = ("localhost", "127.0.0.1", "::1", "sni.test")
"""The names the server certificate is valid for (`sni.test`: for `sni_hostname` tests)."""


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """A client certificate issued by the test CA, as PEM files.

    `cert` is the certificate chain, `key` its private key, `combined` both in
    one file (httpx's `cert="path"` form); `common_name` is what a server sees.
    """

    common_name: str
    cert: str
    key: str
    combined: str


@dataclass(frozen=True, slots=True)
class TLSFiles:
    """The PEM files of the TLS test material, in one temporary directory."""

    ca: trustme.CA
    ca_bundle: str  # the CA certificate: `verify=ca_bundle` trusts the test servers
    server_cert: str
    server_key: str
    alice: ClientIdentity
    bob: ClientIdentity
    self_signed_cert: str  # for localhost/127.0.0.1, signed by its own key
    self_signed_key: str
    expired_cert: str  # for localhost/127.0.0.1, issued by the CA, expired
    expired_key: str

    def client_context(self, identity: ClientIdentity | None = None) -> ssl.SSLContext:
        """A client `SSLContext` trusting the test CA, presenting `identity` when given."""
        context = ssl.create_default_context(cafile=self.ca_bundle)
        if identity is not None:
            context.load_cert_chain(identity.cert, identity.key)
        return context


def _self_signed(directory: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "self-signed.pem", directory / "self-signed.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def _client(ca: trustme.CA, directory: Path, name: str) -> ClientIdentity:
    leaf = ca.issue_cert(f"{name}@example.test", common_name=name)
    cert, key, combined = (directory / f"{name}{ext}" for ext in (".pem", ".key", "-combined.pem"))
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    leaf.private_key_and_cert_chain_pem.write_to_path(str(combined))
    return ClientIdentity(name, str(cert), str(key), str(combined))


def make_tls_files(directory: Path) -> TLSFiles:
    """Create the CA, the certificates and their PEM files in `directory`."""
    ca = trustme.CA()
    ca_bundle = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_bundle))
    server = ca.issue_cert(*SERVER_NAMES, common_name="localhost")
    server_cert, server_key = directory / "server.pem", directory / "server.key"
    server_cert.write_bytes(b"".join(blob.bytes() for blob in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(server_key))
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = ca.issue_cert(
        "localhost",
        "127.0.0.1",
        not_before=now - datetime.timedelta(days=2),
        not_after=now - datetime.timedelta(days=1),
    )
    expired_cert, expired_key = directory / "expired.pem", directory / "expired.key"
    expired_cert.write_bytes(b"".join(blob.bytes() for blob in expired.cert_chain_pems))
    expired.private_key_pem.write_to_path(str(expired_key))
    self_signed_cert, self_signed_key = _self_signed(directory)
    return TLSFiles(
        ca=ca,
        ca_bundle=str(ca_bundle),
        server_cert=str(server_cert),
        server_key=str(server_key),
        alice=_client(ca, directory, "alice"),
        bob=_client(ca, directory, "bob"),
        self_signed_cert=self_signed_cert,
        self_signed_key=self_signed_key,
        expired_cert=str(expired_cert),
        expired_key=str(expired_key),
    )


def server_context(
    cert: str,
    key: str,
    *,
    client_ca: str | None = None,
    client_cert: ssl.VerifyMode = ssl.CERT_NONE,
    alpn: tuple[str, ...] = ("http/1.1",),
) -> ssl.SSLContext:
    """A server `SSLContext`; with `client_ca`, client certificates are checked against it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
    context.verify_mode = client_cert
    context.set_alpn_protocols(list(alpn))
    return context


# -- ASGI servers over TLS ---------------------------------------------------------------


class VersionLog:
    """The HTTP versions of the requests served, in order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._versions: list[str] = []

    def add(self, version: str) -> None:
        with self._lock:
            self._versions.append(version)

    def versions(self) -> list[str]:
        with self._lock:
            return list(self._versions)

    def reset(self) -> None:
        with self._lock:
            self._versions.clear()


class VersionReporting:
    """ASGI middleware: record `scope["http_version"]`, send it as `X-HTTP-Version`."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Any], log: VersionLog) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        version = str(scope.get("http_version", "1.1"))
        self.log.add(version)

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [*message.get("headers", ()), (b"x-http-version", version.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)


def uvicorn_tls_serve(app: Any, certfile: str, keyfile: str) -> Serve:
    """A `Serve` running an ASGI 3 app under uvicorn over TLS (HTTP/1.1 only)."""
    import uvicorn

    async def serve(
        sock: socket.socket, started: Callable[[], None], stopping: asyncio.Event
    ) -> None:
        config = uvicorn.Config(
            app,
            interface="asgi3",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=2,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
        )
        server = uvicorn.Server(config)

        async def watch() -> None:
            while not server.started:
                await asyncio.sleep(0.005)
            started()
            await stopping.wait()
            server.should_exit = True

        watcher = asyncio.create_task(watch())
        try:
            await server.serve(sockets=[sock])
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    return serve


def hypercorn_serve(app: Any, certfile: str, keyfile: str) -> Serve:
    """A `Serve` running an ASGI 3 app under hypercorn over TLS, HTTP/2 and HTTP/1.1 by ALPN."""
    from hypercorn.asyncio import serve as hypercorn_run
    from hypercorn.config import Config

    async def serve(
        sock: socket.socket, started: Callable[[], None], stopping: asyncio.Event
    ) -> None:
        config = Config()
        config.bind = [f"fd://{os.dup(sock.fileno())}"]  # hypercorn owns (and closes) the dup
        config.certfile = certfile
        config.keyfile = keyfile
        config.alpn_protocols = ["h2", "http/1.1"]
        config.accesslog = None
        config.errorlog = logging.getLogger("tests.servers.hypercorn")  # no handler of its own
        config.keep_alive_timeout = 30
        config.graceful_timeout = 1
        task = asyncio.ensure_future(hypercorn_run(app, config, shutdown_trigger=stopping.wait))
        await asyncio.sleep(0.05)  # the socket already listens: connections queue meanwhile
        if task.done():
            task.result()  # a start-up error: raise it
        started()
        await task

    return serve


class TLSAppServer(AppServer):
    """What the TLS app fixtures return: an `AppServer` over https, with the HTTP versions."""

    def __init__(self, url: str, recorder: Recorder, versions: VersionLog, files: TLSFiles) -> None:
        super().__init__(url, recorder)
        port = url.rsplit(":", 1)[1]
        self.localhost_url = f"https://localhost:{port}"  # the same server, by name (SNI sent)
        self.ca_bundle = files.ca_bundle
        self._versions = versions

    def http_versions(self) -> list[str]:
        """The HTTP version of each request served ("1.1" or "2"), in order."""
        return self._versions.versions()

    def reset(self) -> None:
        super().reset()
        self._versions.reset()

    def __repr__(self) -> str:
        return f"TLSAppServer({self.url!r})"


# -- the TLS info server (mTLS, SNI, bad certificates) -----------------------------------


@dataclass(frozen=True, slots=True)
class TLSSeen:
    """One request as the TLS info server saw it, with its TLS session."""

    request_id: str | None
    path: str
    sni: str | None  # the server name the client sent (None: none, as for an IP address)
    client_cn: str | None  # the client certificate's common name (None: no certificate)
    client_serial: str | None
    tls_version: str | None
    alpn: str | None
    connection: int  # numbered from 1 in handshake order (since the last reset)


class TLSInfoState:
    """Handshake count and requests seen, shared between the server thread and the tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handshakes = 0
        self._connections = 0
        self._seen: list[TLSSeen] = []

    def hello(self) -> None:
        with self._lock:
            self._handshakes += 1

    def connected(self) -> int:
        with self._lock:
            self._connections += 1
            return self._connections

    def saw(self, seen: TLSSeen) -> None:
        with self._lock:
            self._seen.append(seen)

    def seen(self) -> list[TLSSeen]:
        with self._lock:
            return list(self._seen)

    @property
    def handshakes(self) -> int:
        with self._lock:
            return self._handshakes

    def reset(self) -> None:
        with self._lock:
            self._handshakes = 0
            self._connections = 0
            self._seen.clear()


def _subject_field(cert: dict[str, Any], field: str) -> str | None:
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == field:
                return str(value)
    return None


def tls_info_serve(state: TLSInfoState, context: ssl.SSLContext) -> Serve:
    """A `Serve` for the TLS info server on `context` (whose `sni_callback` it sets)."""

    def on_hello(ssl_object: Any, server_name: str | None, _context: ssl.SSLContext) -> None:
        state.hello()  # called for every ClientHello, with or without SNI
        ssl_object.cf_sni = server_name

    context.sni_callback = on_hello

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object = writer.get_extra_info("ssl_object")
        connection = state.connected()
        cert = ssl_object.getpeercert() or {}
        while (head := await read_head(reader)) is not None:
            await read_body(reader, head)
            seen = TLSSeen(
                request_id=head.header("x-request-id") or head.params.get("id"),
                path=head.path,
                sni=getattr(ssl_object, "cf_sni", None),
                client_cn=_subject_field(cert, "commonName"),
                client_serial=cert.get("serialNumber"),
                tls_version=ssl_object.version(),
                alpn=ssl_object.selected_alpn_protocol(),
                connection=connection,
            )
            state.saw(seen)
            body = json.dumps(
                {
                    "id": seen.request_id,
                    "path": seen.path,
                    "sni": seen.sni,
                    "client_cn": seen.client_cn,
                    "client_serial": seen.client_serial,
                    "tls_version": seen.tls_version,
                    "alpn": seen.alpn,
                    "connection": connection,
                }
            ).encode()
            writer.write(response_bytes(200, b"" if head.method == "HEAD" else body))
            await writer.drain()

    return stream_serve(handle, ssl_context=context)


class TLSInfoServer:
    """What the TLS info fixtures return: URLs, the CA bundle, what the server saw."""

    def __init__(self, port: int, state: TLSInfoState, files: TLSFiles) -> None:
        self.url = f"https://127.0.0.1:{port}"  # no SNI is sent for an IP address
        self.localhost_url = f"https://localhost:{port}"  # SNI "localhost"
        self.ca_bundle = files.ca_bundle
        self._state = state

    def seen(self) -> list[TLSSeen]:
        """The requests received, in order, with their TLS session."""
        return self._state.seen()

    @property
    def handshakes(self) -> int:
        """How many TLS handshakes were begun (ClientHellos received, failed ones too)."""
        return self._state.handshakes

    def reset(self) -> None:
        self._state.reset()

    def __repr__(self) -> str:
        return f"TLSInfoServer({self.url!r})"
