"""An httpx sync transport over h11 and the standard library's sockets: cf's sync default
engine.

Why not httpx's own sync transport (httpcore): it reuses a connection whose last
response broke its framing (a Content-Length shorter than the body, a HEAD answered
with a body), so the next request reads the smuggled bytes as its response; and each
socket read has its own timeout, so a server trickling a byte per read keeps a call
alive far past its deadline. Why h11 rather than urllib3: h11 is the parser under
httpx's own transport, so responses parse exactly as there (urllib3 goes through
`http.client`, which differs on header whitespace, more than 100 headers, heads over
64 KiB and malformed responses), and it exposes what the rules below need (the
bytes after a response). Measured on one connection, this transport costs about 20%
less CPU per request than httpx's own and about as much as urllib3's pool.

`H11Transport` keeps httpx's API and types (requests, responses, exceptions,
redirects, cookies, decoding all stay in httpx) and moves the bytes itself:

- the request goes out as httpx built it (headers byte for byte, in order);
- each socket operation's timeout is clamped to `request.extensions["cf.deadline"]`
  (set by cf's attempt loop for a call with a deadline): a trickling status line,
  head or body, a stalled upload or a hanging server ends at the deadline;
- a connection whose response broke its framing is closed, never reused; an idle
  one is polled before reuse; a reused one the server had closed before the request
  left is replaced by a fresh one (`_h11_connection.py`);
- `httpx.Limits` as httpx reads them (`_h11_pool.py`), `http://` proxies (forwarding
  for http, CONNECT tunnels for https), TLS with a given `ssl.SSLContext` (only its
  ALPN protocols are set, to HTTP/1.1, as httpx's transport does), `local_address`,
  the `sni_hostname` and `timeout` request extensions, the `http_version`,
  `reason_phrase` and `network_stream` response extensions.

HTTP/1.1 only. HTTP/2, SOCKS and `https://` proxies stay on httpx's own transport
(`_engines.py` routes them there). Failures become httpx's exceptions in
`map_h11_exceptions` (`_h11_errors.py`).
"""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Iterator

import httpx

from cf._call import DEADLINE
from cf._transports._engines import ssl_context
from cf._transports._h11_connection import (
    Connection,
    NetworkStream,
    NotSent,
    open_socket,
    open_tunnel,
    start_tls,
)
from cf._transports._h11_errors import Timeouts, map_h11_exceptions
from cf._transports._h11_pool import Pool

__all__ = ["H11Transport"]

_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_PRELOAD = "cf.preload"  # cf's attempt loop reads the whole body: read it at once
_SCHEMES = {b"http": False, b"https": True, b"ws": False, b"wss": True}  # -> TLS?
_NO_TIMEOUT: dict[str, float | None] = {}
_Headers = list[tuple[bytes, bytes]]


def _merge(defaults: _Headers, overrides: _Headers) -> _Headers:
    """`defaults` without the names `overrides` has, then `overrides` (httpcore's rule)."""
    names = {name.lower() for name, _ in overrides}
    return [(k, v) for k, v in defaults if k.lower() not in names] + overrides


class _ResponseStream(httpx.SyncByteStream):
    """The body, read from the connection as it is iterated; `close()` gives the
    connection back (kept only if the exchange ended cleanly)."""

    __slots__ = ("_pool", "_connection", "_request", "_timeouts", "_closed")

    def __init__(
        self, pool: Pool, connection: Connection, request: httpx.Request, timeouts: Timeouts
    ) -> None:
        self._pool = pool
        self._connection = connection
        self._request = request
        self._timeouts = timeouts
        self._closed = False

    def __iter__(self) -> Iterator[bytes]:
        read = self._connection.receive_chunk
        request, timeouts = self._request, self._timeouts
        try:
            while (chunk := read(request, timeouts)) is not None:
                yield chunk
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.release(self._connection, self._connection.finish())


class H11Transport(httpx.BaseTransport):
    """An `httpx.BaseTransport` sending HTTP/1.1 over its own connection pool, safe for
    threads sharing it.

    Options mean what they mean for `httpx.HTTPTransport` (`verify` may be an
    `ssl.SSLContext`, used as it is but for its ALPN protocols, set to HTTP/1.1 before
    each connection; `proxy` must be an `http://` proxy).
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: str | tuple[str, ...] | None = None,
        trust_env: bool = True,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        proxy: str | httpx.URL | httpx.Proxy | None = None,
        local_address: str | None = None,
    ) -> None:
        self._caller_context = isinstance(verify, ssl.SSLContext)
        self._ssl_context = ssl_context(verify, cert, trust_env)
        if not self._caller_context:
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        self._local_address = local_address
        self._pool = Pool(limits)
        proxy = httpx.Proxy(proxy) if isinstance(proxy, (str, httpx.URL)) else proxy
        self._proxy: tuple[str, int] | None = None
        self._proxy_headers: _Headers = []
        if proxy is not None:
            if proxy.url.scheme != "http":
                raise ValueError(
                    f"the h11 engine does not support {proxy.url.scheme}:// proxies "
                    "(cf uses httpx's own transport for them)"
                )
            self._proxy = (proxy.url.raw_host.decode("ascii"), proxy.url.port or 80)
            self._proxy_headers = list(proxy.headers.raw)
            if proxy.raw_auth is not None:
                user, password = proxy.raw_auth
                credentials = b"Basic " + base64.b64encode(user + b":" + password)
                self._proxy_headers.insert(0, (b"Proxy-Authorization", credentials))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        scheme = url.raw_scheme
        tls = _SCHEMES.get(scheme)
        if tls is None:
            if not scheme:
                message = "Request URL is missing an 'http://' or 'https://' protocol."
            else:
                message = f"Request URL has an unsupported protocol '{url.scheme}://'."
            raise httpx.UnsupportedProtocol(message, request=request)
        key = (scheme, url.raw_host, url.port or (443 if tls else 80))
        extensions = request.extensions
        timeouts = Timeouts(extensions.get("timeout", _NO_TIMEOUT), extensions.get(DEADLINE))
        try:
            pool_timeout = timeouts.pool()
        except TimeoutError:
            raise httpx.PoolTimeout("timed out", request=request) from None
        pool = self._pool
        connection = pool.acquire(key, pool_timeout, request)
        if self._proxy is not None and not tls:
            target = b"%b://%b%b" % (scheme, url.netloc, url.raw_path)
            headers = _merge(self._proxy_headers, request.headers.raw)
        else:
            target, headers = url.raw_path, request.headers.raw
        while True:
            if connection is None:
                connection = self._open(key, tls, request, timeouts)
            try:
                connection.send(request, target, headers, timeouts)
                head = connection.receive_head(request, timeouts)
            except NotSent:
                connection.close()  # its slot goes to a fresh connection
                connection = None
                continue
            except BaseException:
                pool.release(connection, False)
                raise
            break

        status = head.status_code
        switched = status == 101 or (request.method == "CONNECT" and 200 <= status < 300)
        response_extensions = {
            "http_version": b"HTTP/" + head.http_version,
            "reason_phrase": head.reason,
            "network_stream": NetworkStream(
                connection, connection.leading_data() if switched else b""
            ),
        }
        content: httpx.SyncByteStream
        if extensions.get(_PRELOAD) and not switched:
            content = self._read_body(connection, request, timeouts)
        else:
            content = _ResponseStream(pool, connection, request, timeouts)
        return httpx.Response(
            status,
            headers=head.headers.raw_items(),
            stream=content,
            extensions=response_extensions,
        )

    def _read_body(
        self, connection: Connection, request: httpx.Request, timeouts: Timeouts
    ) -> httpx.ByteStream:
        """The whole body, the connection given back: for calls that read it all."""
        try:
            body = connection.receive_body(request, timeouts)
        except BaseException:
            self._pool.release(connection, False)
            raise
        self._pool.release(connection, connection.finish())
        return httpx.ByteStream(body)

    def _open(
        self, key: tuple[bytes, bytes, int], tls: bool, request: httpx.Request, timeouts: Timeouts
    ) -> Connection:
        """A new connection for `key`, in the slot the pool reserved (freed on failure)."""
        _, host, port = key
        sock: socket.socket | None = None
        try:
            with map_h11_exceptions("connect", request):
                if self._proxy is None:
                    sock = open_socket(host.decode("ascii"), port, timeouts, self._local_address)
                else:
                    sock = open_socket(*self._proxy, timeouts, self._local_address)
                    if tls:
                        authority = b"%b:%d" % (b"[%b]" % host if b":" in host else host, port)
                        defaults = [(b"Host", authority), (b"Accept", b"*/*")]
                        headers = _merge(defaults, self._proxy_headers)
                        open_tunnel(sock, authority, headers, request, timeouts)
                if tls:
                    sni = request.extensions.get("sni_hostname")
                    if isinstance(sni, bytes):
                        sni = sni.decode("ascii")
                    context = self._ssl_context
                    if self._caller_context:
                        context.set_alpn_protocols(["http/1.1"])
                    plain, sock = sock, None
                    sock = start_tls(plain, context, sni or host.decode("ascii"), timeouts)
        except BaseException:
            if sock is not None:
                sock.close()
            self._pool.discard()
            raise
        return Connection(key, sock)

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
