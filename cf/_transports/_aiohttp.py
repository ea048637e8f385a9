"""An httpx async transport over aiohttp's connection pool.

httpx's own async pool slows down sharply with many requests in flight; aiohttp's
does not. `AiohttpTransport` keeps httpx's API and types (requests, responses,
exceptions, redirects, cookies, decoding all stay in httpx) and uses aiohttp only
to move bytes. aiohttp's exceptions become httpx's by what they say about retry
safety, that is whether the request may have reached the server:

    aiohttp                                      httpx                sent?
    (waiting for a free connection: our gate)    PoolTimeout          no
    ConnectionTimeoutError (DNS, TCP, TLS)       ConnectTimeout       no
    ClientConnectorError (refused, DNS, TLS,     ConnectError         no
      connecting to the proxy)
    ClientHttpProxyError (proxy refused CONNECT) ProxyError           no
    InvalidURL, NonHttpUrlClientError            UnsupportedProtocol  no
    ServerTimeoutError, TimeoutError (sock_read) ReadTimeout          maybe
    ServerDisconnectedError, ClientResponseError RemoteProtocolError  maybe
      (no response; bad status line or headers, LineTooLong, BadHttpMessage)
    writing the request failed                   WriteError           maybe
      (ClientConnectionResetError, "Can not write request body", "Failed to send bytes")
    ClientPayloadError (truncated body, reset    ReadError            maybe
      mid-body), ClientOSError (reset), other ClientConnectionError, OSError
    any other ClientError                        TransportError       maybe

Differences from httpx's own transport: no write timeout (aiohttp has none), no
cap on idle connections besides `max_keepalive_connections=0` (no keep-alive),
HTTP/1.1 only. aiohttp's own retry of idempotent requests on a dropped
connection is turned off: the cf retry loop owns retries and their budget.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from typing import Any

import aiohttp
import httpx
from aiohttp import hdrs
from multidict import CIMultiDict
from yarl import URL

__all__ = ["AiohttpTransport"]

_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_HTTPXTransport = httpx.AsyncHTTPTransport
# pytest-httpx (and similar mocks) replace this class attribute; see `_mocked_handle`.
_ORIGINAL_HANDLE = _HTTPXTransport.handle_async_request
_HTTPX_MODULE = _ORIGINAL_HANDLE.__module__
_NO_TIMEOUT: dict[str, float | None] = {}
_CertTypes = str | tuple[str, str] | tuple[str, str, str]  # as httpx's
_MAX_CACHED = 256
# httpx (h11) accepts up to 100 KiB of response head; aiohttp's default is 8 KiB a line.
_MAX_HEADER_BYTES = 100 * 1024


class _AllMethods(set[str]):
    """Contains every method: aiohttp then never adds `Content-Length: 0` of its own."""

    def __contains__(self, item: object) -> bool:
        return True


class _Request(aiohttp.ClientRequest):
    """A ClientRequest that sends httpx's headers as they are: no automatic
    User-Agent, Accept, Accept-Encoding, Content-Type or Content-Length: 0."""

    GET_METHODS = _AllMethods()
    _skip_auto_headers = CIMultiDict(((hdrs.CONTENT_TYPE, None),))

    def update_headers(self, headers: Any) -> None:
        # The session hands over a fresh CIMultiDict in httpx's order, Host included:
        # keep it as it is (aiohttp would move Host first).
        if isinstance(headers, CIMultiDict) and hdrs.HOST in headers:
            self.headers = headers
        else:
            super().update_headers(headers)

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:
        pass


# Ordered: subclasses first (ConnectionTimeoutError is a ServerTimeoutError, every
# timeout is an OSError, ClientConnectorError is a ClientOSError).
_MAPPING: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (asyncio.TimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (aiohttp.NonHttpUrlClientError, httpx.UnsupportedProtocol),
    (aiohttp.ClientConnectionResetError, httpx.WriteError),
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.ClientError, httpx.TransportError),
    (OSError, httpx.ReadError),
)
# aiohttp reports a failed request write with these messages (client_reqrep.py).
_WRITE_FAILURES = ("Can not write request body", "Failed to send bytes")


def _map_exception(exc: Exception, request: httpx.Request) -> Exception:
    """The httpx exception for an aiohttp one, or `exc` itself when it is not aiohttp's."""
    for source, target in _MAPPING:
        if isinstance(exc, source):
            message = str(exc) or type(exc).__name__
            if target is httpx.ReadError and any(m in message for m in _WRITE_FAILURES):
                target = httpx.WriteError
            return target(message, request=request)
    return exc


def _decode_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    # aiohttp writes headers as UTF-8, so decoding UTF-8 sends httpx's bytes unchanged.
    try:
        return [(k.decode(), v.decode()) for k, v in raw]
    except UnicodeDecodeError:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


class _ResponseStream(httpx.AsyncByteStream):
    """The body of an aiohttp response; `aclose()` gives the connection back."""

    __slots__ = ("_response", "_request", "_gate", "_closed")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        request: httpx.Request,
        gate: asyncio.Semaphore | None,
    ) -> None:
        self._response = response
        self._request = request
        self._gate = gate
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        read = self._response.content.readany
        try:
            while chunk := await read():
                yield chunk
        except Exception as exc:
            mapped = _map_exception(exc, self._request)
            if mapped is exc:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        response = self._response
        if response.content.at_eof():
            response.release()  # back to the pool
        else:
            response.close()  # unread body: the connection cannot be reused
        if self._gate is not None:
            self._gate.release()


async def _close_at_loop_end(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Waits for the loop's `shutdown_asyncgens()` (called by `asyncio.run`,
    `asyncio.Runner`, pytest-asyncio), then closes `session` inside its own loop."""
    try:
        yield
    finally:
        await session.close()


class _LoopState:
    """The aiohttp session of one event loop, and the gate bounding its connections."""

    __slots__ = ("loop", "session", "closer", "gate")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        session: aiohttp.ClientSession,
        closer: AsyncGenerator[None, None],
        gate: asyncio.Semaphore | None,
    ) -> None:
        self.loop = loop
        self.session = session
        self.closer = closer
        self.gate = gate

    def retire(self) -> None:
        """Let go of a session from another loop, which cannot be awaited from here.

        On a live loop, dropping the suspended closer makes that loop's asyncgen
        finalizer close the session there. On a closed loop nothing can run, and
        `ClientSession.close()` has nothing to wait for: finish it synchronously.
        """
        if self.session.closed or not self.loop.is_closed():
            return
        closing = self.session.close()
        try:
            closing.send(None)
        except StopIteration:
            return
        closing.close()
        self.session.detach()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An `httpx.AsyncBaseTransport` that sends requests with aiohttp.

    Options mean what they mean for `httpx.AsyncHTTPTransport`. Requests beyond
    `limits.max_connections` wait for a connection, bounded by the pool timeout.
    The aiohttp session is created on the first request in a running loop, and
    again for a request in another loop. While pytest-httpx (or any mock of
    `httpx.AsyncHTTPTransport.handle_async_request`) is active, requests go there.
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: _CertTypes | None = None,
        trust_env: bool = True,
        limits: httpx.Limits = _DEFAULT_LIMITS,
        proxy: str | httpx.URL | httpx.Proxy | None = None,
        local_address: str | None = None,
    ) -> None:
        self._ssl_context = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        self._trust_env = trust_env
        self._limits = limits
        self._local_address = local_address
        self._proxy = httpx.Proxy(proxy) if isinstance(proxy, (str, httpx.URL)) else proxy
        self._proxy_url: URL | None = None
        self._proxy_headers: list[tuple[str, str]] = []
        if self._proxy is not None:
            if self._proxy.url.scheme not in ("http", "https"):
                raise ValueError(f"aiohttp does not support {self._proxy.url.scheme} proxies")
            self._proxy_url = URL(str(self._proxy.url), encoded=True)
            self._proxy_headers = _decode_headers(self._proxy.headers.raw)
            if self._proxy.auth is not None:
                credentials = base64.b64encode(":".join(self._proxy.auth).encode()).decode()
                self._proxy_headers.insert(0, (hdrs.PROXY_AUTHORIZATION, f"Basic {credentials}"))
        self._state: _LoopState | None = None
        self._fallback: httpx.AsyncHTTPTransport | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        handle = _HTTPXTransport.handle_async_request
        if handle is not _ORIGINAL_HANDLE:
            return await self._mocked_handle(handle, request)

        state = self._state
        if state is None or state.loop is not asyncio.get_running_loop():
            state = await self._open()

        timeout = request.extensions.get("timeout", _NO_TIMEOUT)
        key = (timeout.get("connect"), timeout.get("read"))
        client_timeout = self._timeouts.get(key)
        if client_timeout is None:
            client_timeout = self._client_timeout(key)

        url = request.url
        url_key = str(url)
        aiohttp_url = self._urls.get(url_key)
        if aiohttp_url is None:
            aiohttp_url = self._aiohttp_url(request, url_key)

        raw_headers = request.headers.raw
        try:
            data: Any = request.content or None
        except httpx.RequestNotRead:
            data = request.stream  # aiohttp sends it chunked, or with httpx's Content-Length
            if not isinstance(data, httpx.AsyncByteStream):
                message = "Attempted to send a sync request body with an async transport."
                raise RuntimeError(message) from None
            raw_headers = [(k, v) for k, v in raw_headers if k.lower() != b"transfer-encoding"]
        headers = _decode_headers(raw_headers)
        if self._proxy_url is not None and url.scheme == "http":
            # Forwarded through the proxy (no CONNECT): it reads its headers from ours.
            headers = self._proxy_headers + headers

        gate = state.gate
        if gate is not None:
            if gate.locked():
                await self._wait_for_connection(gate, timeout.get("pool"), request)
            else:
                await gate.acquire()
        try:
            response = await state.session.request(
                request.method,
                aiohttp_url,
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=client_timeout,
                proxy=self._proxy_url,
                proxy_headers=self._proxy_headers or None,  # for CONNECT
            )
        except BaseException as exc:
            if gate is not None:
                gate.release()
            if isinstance(exc, Exception):
                mapped = _map_exception(exc, request)
                if mapped is not exc:
                    raise mapped from exc
            raise

        preload = request.extensions.get("cf_preload")
        stream: httpx.AsyncByteStream
        if preload:
            # The caller reads the whole body anyway: one read() beats a chunk loop.
            stream = await self._read_body(response, request, gate)
        else:
            stream = _ResponseStream(response, request, gate)
        result = httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=stream,
            request=request,
            extensions={
                "http_version": b"HTTP/1.0" if response.version == (1, 0) else b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
            },
        )
        if preload:
            result.read()  # in memory already: decode it now, without async generators
        return result

    @staticmethod
    async def _read_body(
        response: aiohttp.ClientResponse,
        request: httpx.Request,
        gate: asyncio.Semaphore | None,
    ) -> httpx.ByteStream:
        """The whole body, the connection released: for calls that read it all."""
        try:
            body = await response.read()
        except BaseException as exc:
            response.close()
            if isinstance(exc, Exception):
                mapped = _map_exception(exc, request)
                if mapped is not exc:
                    raise mapped from exc
            raise
        finally:
            if gate is not None:
                gate.release()
        response.release()
        return httpx.ByteStream(body)

    async def aclose(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            if state.loop is asyncio.get_running_loop():
                await state.closer.aclose()  # closes the session
            else:
                state.retire()
        fallback, self._fallback = self._fallback, None
        if fallback is not None:
            await fallback.aclose()

    async def _open(self) -> _LoopState:
        """Create the aiohttp session for the running loop."""
        if self._state is not None:
            self._state.retire()
            self._state = None
        limits = self._limits
        no_keep_alive = limits.max_keepalive_connections == 0
        # aiohttp refuses a keep-alive timeout together with force_close.
        keep_alive: dict[str, Any] = (
            {} if no_keep_alive else {"keepalive_timeout": limits.keepalive_expiry}
        )
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            limit_per_host=0,
            force_close=no_keep_alive,
            ssl=self._ssl_context,
            local_addr=None if self._local_address is None else (self._local_address, 0),
            **keep_alive,
        )
        session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            request_class=_Request,
            auto_decompress=False,
            trust_env=False,  # httpx's Client decides proxies; no per-request netrc lookup
            requote_redirect_url=False,
            raise_for_status=False,
            max_line_size=_MAX_HEADER_BYTES,
            max_field_size=_MAX_HEADER_BYTES,
        )
        session._retry_connection = False
        closer = _close_at_loop_end(session)
        await closer.asend(None)  # runs to its `yield` at once: registers with the loop
        gate = asyncio.Semaphore(limits.max_connections) if limits.max_connections else None
        state = _LoopState(asyncio.get_running_loop(), session, closer, gate)
        self._state = state
        return state

    def _client_timeout(self, key: tuple[float | None, float | None]) -> aiohttp.ClientTimeout:
        # `connect` bounds DNS, TCP and TLS; the wait for a free connection is
        # bounded separately by the pool timeout, before aiohttp is called.
        if len(self._timeouts) >= _MAX_CACHED:  # deadlines make many distinct values
            self._timeouts.clear()
        connect, read = key
        client_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect, sock_read=read
        )
        self._timeouts[key] = client_timeout
        return client_timeout

    def _aiohttp_url(self, request: httpx.Request, url_key: str) -> URL:
        # httpx has already encoded the URL; drop userinfo (httpx sent it as an
        # Authorization header) and the fragment, as httpx's own transport does.
        if len(self._urls) >= _MAX_CACHED:
            self._urls.clear()
        url = request.url
        try:
            netloc = url.netloc.decode("ascii")
            aiohttp_url = URL(
                f"{url.scheme}://{netloc}{url.raw_path.decode('ascii')}", encoded=True
            )
        except ValueError as exc:
            raise httpx.UnsupportedProtocol(str(exc), request=request) from exc
        self._urls[url_key] = aiohttp_url
        return aiohttp_url

    async def _wait_for_connection(
        self, gate: asyncio.Semaphore, timeout: float | None, request: httpx.Request
    ) -> None:
        try:
            await asyncio.wait_for(gate.acquire(), timeout)
        except asyncio.TimeoutError as exc:
            message = f"No free connection within {timeout} s"
            raise httpx.PoolTimeout(message, request=request) from exc

    async def _mocked_handle(self, handle: Any, request: httpx.Request) -> httpx.Response:
        """Send through a patched `httpx.AsyncHTTPTransport.handle_async_request`."""
        global _ORIGINAL_HANDLE
        if getattr(handle, "__module__", None) == _HTTPX_MODULE:
            _ORIGINAL_HANDLE = handle  # we were imported while a mock was active
            return await self.handle_async_request(request)
        if self._fallback is None:
            self._fallback = httpx.AsyncHTTPTransport(
                verify=self._ssl_context,
                trust_env=self._trust_env,
                limits=self._limits,
                proxy=self._proxy,
                local_address=self._local_address,
            )
        response: httpx.Response = await handle(self._fallback, request)
        return response
