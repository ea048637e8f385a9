"""An httpx async transport over aiohttp's connection pool: cf's async default engine.

httpx's own async pool slows down sharply with many requests in flight;
aiohttp's does not. `AiohttpTransport` keeps httpx's API and types (requests,
responses, exceptions, redirects, cookies, decoding all stay in httpx) and
uses aiohttp only to move bytes: the request goes out as httpx built it
(headers in order, repeats and case kept, no header of aiohttp's own). What
aiohttp cannot send faithfully (non-UTF-8 header bytes, `Expect: 100-continue`,
which aiohttp waits for while httpx does not) goes through httpx's own
transport instead, and so do HTTP/2 and SOCKS proxies (see `_engines.py`).

aiohttp's exceptions become httpx's in `map_aiohttp_exceptions`, by what they
say about retry safety (could the request have reached the server?):

    aiohttp                                      httpx                sent?
    (waiting for a free connection: our gate)    PoolTimeout          no
    (reused connection closed before the write)  none: sent again     no
    ConnectionTimeoutError (DNS, TCP, TLS)       ConnectTimeout       no
    ClientConnectorError (refused, DNS, TLS)     ConnectError         no
    ClientHttpProxyError (proxy refused CONNECT) ProxyError           no
    InvalidURL, NonHttpUrlClientError            UnsupportedProtocol  no
    ServerTimeoutError, TimeoutError (sock_read) ReadTimeout          maybe
    ServerDisconnectedError, ClientResponseError RemoteProtocolError  maybe
    writing the request failed                   WriteError           maybe
    ClientPayloadError (body cut short)          RemoteProtocolError  maybe
    ClientPayloadError (reset), ClientOSError    ReadError            maybe
    any other ClientError                        TransportError       maybe

Messages are httpx-like and redacted; aiohttp exceptions that carry the
request (URL, headers) are scrubbed before they are chained as `__cause__`.

Differences from httpx's own transport: no write timeout (aiohttp has none;
cf's deadline still bounds the call), HTTP/1.1 only. Every touch of aiohttp
beyond its documented API is in `_aiohttp_compat.py`.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import ssl
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from types import TracebackType
from typing import Any

import aiohttp
import httpx
from aiohttp import hdrs
from yarl import URL

from cf._redact import has_secret_header, redact_text, redact_url
from cf._transports._aiohttp_compat import (
    Attempt,
    CheckedConnector,
    RawHeadersRequest,
    begin,
    disable_retry,
    end,
)
from cf._transports._engines import ssl_context

__all__ = ["AiohttpTransport", "map_aiohttp_exceptions"]

_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_NO_TIMEOUT: dict[str, float | None] = {}
_MAX_CACHED = 256
# A request's headers as aiohttp sends them, and whether aiohttp can send them as they are.
_HeaderPlan = tuple[list[tuple[str, str]], bool]
# httpx (h11) accepts up to 100 KiB of response head; aiohttp's default is 8 KiB a line.
_MAX_HEADER_BYTES = 100 * 1024
_PRELOAD = "cf.preload"

# Most specific first is not needed: the match is by the exception's own MRO.
_EXCEPTIONS: dict[type[BaseException], type[httpx.TransportError]] = {
    aiohttp.ConnectionTimeoutError: httpx.ConnectTimeout,
    aiohttp.ClientConnectorError: httpx.ConnectError,
    aiohttp.ClientHttpProxyError: httpx.ProxyError,
    aiohttp.ServerTimeoutError: httpx.ReadTimeout,
    asyncio.TimeoutError: httpx.ReadTimeout,
    aiohttp.ServerDisconnectedError: httpx.RemoteProtocolError,
    aiohttp.ClientResponseError: httpx.RemoteProtocolError,
    aiohttp.ClientPayloadError: httpx.ReadError,  # a reset; cut short: RemoteProtocolError
    aiohttp.InvalidURL: httpx.UnsupportedProtocol,
    aiohttp.NonHttpUrlClientError: httpx.UnsupportedProtocol,
    aiohttp.ClientConnectionResetError: httpx.WriteError,
    aiohttp.ClientConnectionError: httpx.ReadError,
    aiohttp.ClientError: httpx.TransportError,
    OSError: httpx.ReadError,
}
# aiohttp reports a failed request write with these messages (client_reqrep.py).
_WRITE_FAILURES = ("Can not write request body", "Failed to send bytes")


def _target(exc: BaseException) -> type[httpx.TransportError] | None:
    """The httpx class for `exc`: the entry of its most specific class (its own MRO)."""
    for cls in type(exc).__mro__:
        target = _EXCEPTIONS.get(cls)
        if target is not None:
            return target
    return None


def _message(exc: BaseException) -> str:
    """An httpx-like, redacted message: the OS error as httpcore states it where there is one."""
    os_error = getattr(exc, "os_error", None)
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(os_error, OSError):
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return redact_text(str(exc.certificate_error))
        code = os_error.errno
        if code is not None and code > 0:
            return f"[Errno {code}] {os.strerror(code)}"
        return redact_text(str(os_error) or type(os_error).__name__)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "Server disconnected without sending a response."
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return "timed out"
    return redact_text(str(exc)) or type(exc).__name__


def _scrub(exc: BaseException) -> None:
    """Redact what an aiohttp exception holds of the request before it is chained."""
    if isinstance(exc, aiohttp.ClientResponseError):
        info = exc.request_info
        url = URL(redact_url(str(info.real_url)), encoded=True)
        exc.request_info = aiohttp.RequestInfo(url, info.method, _redacted_proxy(), url)
        exc.message = redact_text(exc.message)
        exc.history = ()
        exc.headers = None
        exc.args = ()
    elif isinstance(exc, aiohttp.InvalidURL):
        exc.args = (redact_url(str(exc.url)),)
    elif exc.args:
        exc.args = tuple(redact_text(a) if isinstance(a, str) else a for a in exc.args)


def _redacted_proxy() -> Any:
    from multidict import CIMultiDict, CIMultiDictProxy

    return CIMultiDictProxy(CIMultiDict())


class _Body:
    """A streamed request body for aiohttp. An exception of the caller's body generator
    (or httpx's `StreamConsumed` on a second read) is kept, to be raised as it is:
    aiohttp would report it as a failed write."""

    __slots__ = ("_stream", "error")

    def __init__(self, stream: httpx.AsyncByteStream) -> None:
        self._stream = stream
        self.error: BaseException | None = None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except BaseException as exc:
            self.error = exc
            raise


class map_aiohttp_exceptions:  # noqa: N801 - used as a function, as contextlib's are
    """`with map_aiohttp_exceptions(request):` raises aiohttp's exceptions as the most
    specific httpx ones (others pass through), as httpx's `map_httpcore_exceptions` does.

    When the request's own body failed (`body.error`), that exception is raised as it is.
    A class rather than a generator: it wraps every request and every body read.
    """

    __slots__ = ("_body", "_request")

    def __init__(self, request: httpx.Request, body: _Body | None = None) -> None:
        self._request = request
        self._body = body

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        body = self._body
        if body is not None and body.error is not None and body.error is not exc:
            raise body.error from None
        target = _target(exc)
        if target is None or isinstance(exc, httpx.HTTPError):
            return
        message = _message(exc)
        if target is httpx.ReadError and any(m in str(exc) for m in _WRITE_FAILURES):
            target = httpx.WriteError
        if isinstance(exc, OSError) and exc.errno in (errno.EPIPE, errno.ECONNRESET):
            target = httpx.WriteError if "write" in str(exc).lower() else target
        if isinstance(exc, aiohttp.ClientPayloadError) and not _reset(exc):
            target = httpx.RemoteProtocolError  # as h11: the body ended before its length
        _scrub(exc)
        raise target(message, request=self._request) from exc


def _reset(exc: BaseException) -> bool:
    """Whether a connection reset is behind `exc` (not a plain early close)."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return False
        if isinstance(current, ConnectionResetError) or "reset" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


def _header_text(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]] | None:
    """httpx's header bytes as aiohttp sends them (UTF-8); None when they are not UTF-8."""
    try:
        return [(k.decode(), v.decode()) for k, v in raw]
    except UnicodeDecodeError:
        return None


class _NetworkStream:
    """What httpx's `network_stream` extension offers for inspection: `get_extra_info`
    (`ssl_object`, `client_addr`, `server_addr`, `socket`, and asyncio's own names)."""

    __slots__ = ("_transport",)

    _ALIASES = {"client_addr": "sockname", "server_addr": "peername"}

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self._transport = transport

    def get_extra_info(self, info: str) -> Any:
        if self._transport is None:
            return None
        return self._transport.get_extra_info(self._ALIASES.get(info, info))


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
        with map_aiohttp_exceptions(self._request):
            while chunk := await read():
                yield chunk

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

    __slots__ = ("loop", "thread", "session", "closer", "gate")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        session: aiohttp.ClientSession,
        closer: AsyncGenerator[None, None],
        gate: asyncio.Semaphore | None,
    ) -> None:
        self.loop = loop
        self.thread = threading.get_ident()
        self.session = session
        self.closer = closer
        self.gate = gate

    def current(self) -> bool:
        """Whether this state's loop is the running one. A thread runs one loop at a
        time, so a loop running in the thread that made this state is; only otherwise
        is `asyncio.get_running_loop()` asked (on Python 3.11 it makes a getpid()
        system call each time)."""
        if self.thread == threading.get_ident() and self.loop.is_running():
            return True
        return self.loop is asyncio.get_running_loop()

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

    Options mean what they mean for `httpx.AsyncHTTPTransport` (`verify` may be
    an `ssl.SSLContext`, which is used as it is, never changed but for its ALPN
    protocols, set to HTTP/1.1 before each connection). Requests beyond
    `limits.max_connections` wait for a connection, bounded by the pool
    timeout. The aiohttp session is created on the first request in a running
    loop, and again for a request in another loop.
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
        self._trust_env = trust_env
        self._limits = limits
        self._local_address = local_address
        self._proxy = httpx.Proxy(proxy) if isinstance(proxy, (str, httpx.URL)) else proxy
        self._proxy_url: URL | None = None
        self._proxy_headers: list[tuple[str, str]] = []
        if self._proxy is not None:
            if self._proxy.url.scheme not in ("http", "https"):
                raise ValueError(
                    f"aiohttp does not support {self._proxy.url.scheme} proxies "
                    "(cf uses httpx's own transport for them)"
                )
            self._proxy_url = URL(str(self._proxy.url), encoded=True)
            self._proxy_headers = _header_text(self._proxy.headers.raw) or []
            if self._proxy.auth is not None:
                credentials = base64.b64encode(":".join(self._proxy.auth).encode()).decode()
                self._proxy_headers.insert(0, (hdrs.PROXY_AUTHORIZATION, f"Basic {credentials}"))
        self._state: _LoopState | None = None
        self._fallback: httpx.AsyncHTTPTransport | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}
        self._headers: dict[tuple[tuple[bytes, bytes], ...], _HeaderPlan] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = tuple(request.headers.raw)
        plan = self._headers.get(raw)
        if plan is None:
            plan = self._header_plan(raw)
        headers, sendable = plan
        if not sendable:
            return await self._fallback_transport().handle_async_request(request)

        state = self._state
        if state is None or not state.current():
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

        stream = request.stream
        data: Any
        body: _Body | None = None
        if isinstance(stream, httpx.ByteStream):
            data = b"".join(stream) or None
        elif isinstance(stream, httpx.AsyncByteStream):
            # aiohttp sends it chunked, or with httpx's Content-Length.
            body = _Body(stream)
            data = None  # body.chunks(), once per try (see below)
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        else:
            message = "Attempted to send a sync request body with an async transport."
            raise RuntimeError(message)
        if self._proxy_url is not None and url.scheme == "http":
            # Forwarded through the proxy (no CONNECT): it reads its headers from ours.
            headers = self._proxy_headers + headers
        if self._caller_context and url.scheme == "https":
            self._ssl_context.set_alpn_protocols(["http/1.1"])
        sni = request.extensions.get("sni_hostname")

        gate = state.gate
        if gate is not None:
            if gate.locked():
                await self._wait_for_connection(gate, timeout.get("pool"), request)
            else:
                await gate.acquire()
        preload = request.extensions.get(_PRELOAD)
        content: bytes | None = None
        try:
            with map_aiohttp_exceptions(request, body):
                while True:
                    attempt = Attempt(headers)
                    token = begin(attempt)
                    try:
                        response = await state.session.request(
                            request.method,
                            aiohttp_url,
                            data=data if body is None else body.chunks(),
                            allow_redirects=False,
                            timeout=client_timeout,
                            proxy=self._proxy_url,
                            proxy_headers=self._proxy_headers or None,  # for CONNECT
                            server_hostname=sni.decode() if isinstance(sni, bytes) else sni,
                        )
                    except aiohttp.ClientError:
                        if not attempt.unsent:
                            raise
                        # The server had closed the reused connection and nothing of the
                        # request left: it goes out on another one (compat touch 5).
                        continue
                    finally:
                        end(token)
                    break
                connection = response.connection  # gone once the body is read
                network_stream = _NetworkStream(connection.transport if connection else None)
                if preload:
                    # The caller reads the whole body anyway: one read() beats a chunk loop.
                    try:
                        content = await response.read()
                    except BaseException:
                        response.close()
                        raise
        except BaseException:
            if gate is not None:
                gate.release()
            raise

        received: httpx.AsyncByteStream
        if content is not None:
            response.release()  # back to the pool
            if gate is not None:
                gate.release()
            received = httpx.ByteStream(content)
        else:
            received = _ResponseStream(response, request, gate)
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=received,
            extensions={
                "http_version": b"HTTP/1.0" if response.version == (1, 0) else b"HTTP/1.1",
                "reason_phrase": (response.reason or "").encode("latin-1", "replace"),
                "network_stream": network_stream,
            },
        )

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

    def _fallback_transport(self) -> httpx.AsyncHTTPTransport:
        """httpx's own transport, for the requests aiohttp cannot send as httpx built them."""
        if self._fallback is None:
            self._fallback = httpx.AsyncHTTPTransport(
                verify=self._ssl_context,
                trust_env=self._trust_env,
                limits=self._limits,
                proxy=self._proxy,
                local_address=self._local_address,
            )
        return self._fallback

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
        connector = CheckedConnector(
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
            request_class=RawHeadersRequest,
            auto_decompress=False,
            trust_env=False,  # httpx's client decides proxies; no per-request netrc lookup
            requote_redirect_url=False,
            raise_for_status=False,
            max_line_size=_MAX_HEADER_BYTES,
            max_field_size=_MAX_HEADER_BYTES,
        )
        disable_retry(session)
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
            raise httpx.UnsupportedProtocol(redact_text(str(exc)), request=request) from None
        self._urls[url_key] = aiohttp_url
        return aiohttp_url

    def _header_plan(self, raw: tuple[tuple[bytes, bytes], ...]) -> _HeaderPlan:
        """The request's headers as aiohttp sends them, and whether aiohttp can send
        them as httpx built them (UTF-8 text, no `Expect: 100-continue`); kept by the
        headers' bytes (most calls send the same headers again), unless one is named
        as a secret (`cf._redact.is_secret_name`): those are never kept beyond their
        request."""
        text = _header_text(raw)
        sendable = text is not None and not _expects_continue(text)
        plan = (text or [], sendable)
        if not has_secret_header(raw):
            if len(self._headers) >= _MAX_CACHED:  # per-call trace ids: many distinct
                self._headers.clear()
            self._headers[raw] = plan
        return plan

    async def _wait_for_connection(
        self, gate: asyncio.Semaphore, timeout: float | None, request: httpx.Request
    ) -> None:
        try:
            await asyncio.wait_for(gate.acquire(), timeout)
        except asyncio.TimeoutError:
            message = f"No free connection within {timeout} s"
            raise httpx.PoolTimeout(message, request=request) from None


def _expects_continue(headers: list[tuple[str, str]]) -> bool:
    return any(k.lower() == "expect" and v.lower() == "100-continue" for k, v in headers)
