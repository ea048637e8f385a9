"""HTTPAio: a thin facade over one real `httpx.AsyncClient` with cf's transport.

The client is httpx's: redirects, auth flows, cookies, event hooks, decoding
and `httpx.Response` all come from it. cf adds its attempt loop as the
client's transport (`AsyncRetryTransport`, wrapping the engine and any proxy
mounts), validates options before any I/O, carries per-call options to the
transport in `request.extensions`, and turns httpx's errors and failure
statuses into cf's exceptions.
"""

from __future__ import annotations

import dataclasses
import logging
import random as _random
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from cf import _synchronization
from cf._async._pool import HTTPAioPool
from cf._async._transport import DEFAULT_ENGINE, AsyncRetryTransport, _Settings
from cf._backoff import RetryBudget, RetryPolicy
from cf._breaker import coerce_circuit_breaker
from cf._call import CALL, Call, error_for
from cf._hedge import Hedge
from cf._options import (
    CREATION_OPTIONS,
    DEFAULT_LIMITS,
    DEFAULT_TIMEOUT,
    ENGINE_OPTIONS,
    REQUEST_OPTIONS,
    UNSET,
    check_base_url,
    check_bool,
    check_budget,
    check_callable,
    check_cert,
    check_deadline,
    check_engine,
    check_headers,
    check_hedge,
    check_method,
    check_on_retry,
    check_timeout,
    check_trace,
    check_url,
    check_verify,
    make_policy,
    pool_limits,
)
from cf._redirects import redirect_request
from cf._requests import BodilessRequests
from cf._synchronization import AsyncDeadline
from cf._transports._engines import (
    ASYNC_ENGINES,
    EngineCache,
    EngineSettings,
    async_engine,
    check_http2,
    check_proxy,
    default_engine,
    proxy_map,
)

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

    from cf._async._types import ClientOptions, RequestOptions

__all__ = ["HTTPAio"]

_httpx_logger = logging.getLogger("httpx")
# httpx's own words for a body of the other mode (its client raises them too).
_WRONG_BODY = "Attempted to send an sync request with an AsyncClient instance."

# Passed to httpx.AsyncClient as they are (headers checked first).
_HTTPX_OPTIONS = (
    "headers",
    "params",
    "cookies",
    "auth",
    "follow_redirects",
    "max_redirects",
    "event_hooks",
    "default_encoding",
    "trust_env",
)
_BUILD = ("content", "data", "files", "json", "params", "headers", "cookies", "extensions")
_MAX_CACHED_URLS = 512


class HTTPAio:
    """An async HTTP client: httpx's API and `httpx.Response`, plus retries.

    Create it with `HTTPAio.create(**options)` or share one through
    `HTTPAio.create_pool(size, **options)`. Options given here are the
    defaults of every call; a call may override most of them (see
    `ClientOptions` and `RequestOptions`, and the README's options table).
    """

    def __init__(self, **options: Unpack[ClientOptions]) -> None:
        unknown = options.keys() - CREATION_OPTIONS
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        get = options.get
        clock = _given(check_callable("clock", get("clock")), time.monotonic)
        budget = get("retry_budget", UNSET)
        budget = RetryBudget(clock=clock) if budget is UNSET else check_budget(budget)
        self._settings = _Settings(
            policy=make_policy(None, options),
            deadline=check_deadline(get("deadline")),
            budget=budget,
            trace=check_trace(get("trace")),
            on_retry=check_on_retry(get("on_retry")),
            sleep=_given(check_callable("sleep", get("sleep")), _synchronization.async_sleep),
            clock=clock,
            random=_given(check_callable("random", get("random")), _random.random),
            engines=EngineCache(async_engine),
            circuit_breaker=coerce_circuit_breaker(get("circuit_breaker")),
            on_circuit_change=check_callable("on_circuit_change", get("on_circuit_change")),
            hedge=_check_hedge(get("hedge")),
            attempt_hooks=options.get("attempt_hooks"),
        )
        self._timeout = check_timeout(get("timeout", DEFAULT_TIMEOUT))
        self._timeout_dict = self._timeout.as_dict()
        self._urls: dict[str, httpx.URL] = {}
        self._bodiless = BodilessRequests()
        httpx_options: dict[str, Any] = {k: options[k] for k in _HTTPX_OPTIONS if k in options}  # type: ignore[literal-required]
        if "headers" in httpx_options:
            httpx_options["headers"] = check_headers(httpx_options["headers"])
        if "base_url" in options:
            httpx_options["base_url"] = check_base_url(options["base_url"])
        trust_env = check_bool("trust_env", get("trust_env", True))
        connection = EngineSettings(
            engine=check_engine(
                get("engine") or default_engine(DEFAULT_ENGINE, ASYNC_ENGINES), ASYNC_ENGINES
            ),
            verify=check_verify(get("verify", True)),
            cert=check_cert(get("cert")),
            http2=check_bool("http2", get("http2", False)),
            proxy=check_proxy(get("proxy")),
            trust_env=trust_env,
            limits=options.get("limits", DEFAULT_LIMITS),
        )
        check_http2(connection.http2)
        given = get("transport")
        if given is not None:
            if not isinstance(given, httpx.AsyncBaseTransport):
                raise TypeError(
                    f"transport must be an httpx.AsyncBaseTransport, not {type(given).__name__}"
                )
            if connection.proxy is not None:
                raise ValueError(
                    "proxy= and transport= together: the proxy needs a transport of its own "
                    "(httpx would silently ignore transport=); configure the proxy on yours"
                )
            self._transport = AsyncRetryTransport._create(given, self._settings, None)
        else:
            self._transport = AsyncRetryTransport._create(
                async_engine(connection), self._settings, connection
            )
        mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
        for pattern, proxy in proxy_map(connection.proxy, trust_env and given is None).items():
            if proxy is None:
                mounts[pattern] = None
            else:
                with_proxy = dataclasses.replace(connection, proxy=proxy)
                mounts[pattern] = AsyncRetryTransport._create(
                    async_engine(with_proxy), self._settings, with_proxy
                )
        for pattern, transport in (options.get("mounts") or {}).items():
            mounts[pattern] = None if transport is None else self._transport.share(transport)
        self._mounts = mounts
        self._client = httpx.AsyncClient(
            transport=self._transport, mounts=mounts, timeout=self._timeout, **httpx_options
        )
        self._base_url = self._client.base_url
        self._default_encoding = options.get("default_encoding", "utf-8")

    # Creation ---------------------------------------------------------------

    @classmethod
    def create(cls, **options: Unpack[ClientOptions]) -> Self:
        """A client with these defaults; see the options table in the README."""
        return cls(**options)

    @classmethod
    def create_pool(cls, size: int, **options: Unpack[ClientOptions]) -> HTTPAioPool[Self]:
        """A pool of `size` connections: `async with pool.item() as client`."""
        options["limits"] = pool_limits(size)
        return HTTPAioPool(cls(**options), size)

    # The underlying httpx pieces -------------------------------------------

    @property
    def httpx_client(self) -> httpx.AsyncClient:
        """The `httpx.AsyncClient` every call goes through (its cookies, headers, ...)."""
        return self._client

    @property
    def cookies(self) -> httpx.Cookies:
        """The client's cookie jar (persisted across calls, as in httpx)."""
        return self._client.cookies

    @property
    def transport(self) -> AsyncRetryTransport:
        """cf's attempt loop, the transport of `httpx_client`."""
        return self._transport

    @property
    def retry_budget(self) -> RetryBudget | None:
        """The retry budget shared by every call of this client (and its pool)."""
        return self._settings.budget

    @property
    def retry_policy(self) -> RetryPolicy:
        """The client's default retry policy."""
        return self._settings.policy

    @property
    def is_closed(self) -> bool:
        """Whether `aclose()` was called (a closed client sends nothing)."""
        return self._client.is_closed

    # Requests ---------------------------------------------------------------

    async def request(
        self, method: str, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """Send a request with retries; the body is read before it returns."""
        request, call, send = self._build(method, url, options, preload=True)
        return await self._send(request, call, send, stream=False)

    @asynccontextmanager
    async def stream(
        self, method: str, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> AsyncIterator[httpx.Response]:
        """Send a request with retries and yield the response before its body is read.

        Retries cover the attempt up to the response headers; a failure while
        you read the body is raised (as an HTTPAioTransportError), not retried.
        """
        request, call, send = self._build(method, url, options, preload=False)
        response = await self._send(request, call, send, stream=True)
        response.stream = _GuardedStream(response.stream, call, request)
        try:
            yield response
        finally:
            await response.aclose()

    def _build(
        self,
        method: str,
        url: httpx.URL | str,
        options: Mapping[str, Any],
        *,
        preload: bool,
    ) -> tuple[httpx.Request, Call, dict[str, Any]]:
        """Check a call's options and build its request; raises before any I/O."""
        settings = self._settings
        policy, deadline, trace, on_retry = (
            settings.policy,
            settings.deadline,
            settings.trace,
            settings.on_retry,
        )
        timeout = self._timeout
        hedge = settings.hedge
        transport = None
        connection: dict[str, Any] | None = None
        send: dict[str, Any] = {}
        if options:
            unknown = options.keys() - REQUEST_OPTIONS
            if unknown:
                raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
            get = options.get
            policy = make_policy(policy, options)
            if "timeout" in options:
                timeout = check_timeout(options["timeout"])
            if "deadline" in options:
                deadline = check_deadline(options["deadline"])
            trace = check_trace(get("trace", trace))
            on_retry = check_on_retry(get("on_retry", on_retry))
            if "hedge" in options:
                hedge = _check_hedge(options["hedge"])
            if "auth" in options:
                send["auth"] = options["auth"]
            if "follow_redirects" in options:
                send["follow_redirects"] = check_bool(
                    "follow_redirects", options["follow_redirects"]
                )
            transport, connection = self._connection(options)
        method = check_method(method)
        target = self._target(url, options)
        build = {k: options[k] for k in _BUILD if k in options} if options else {}
        if "headers" in build:
            build["headers"] = check_headers(build["headers"])
        try:
            request = self._request(method, target, timeout, build)
        except httpx.InvalidURL as exc:
            raise ValueError(f"invalid URL {str(target)!r}: {exc}") from None
        call = Call(
            policy=policy,
            clock=settings.clock,
            random=settings.random,
            budget=settings.budget,
            deadline=deadline,
            trace=trace,
            on_retry=on_retry,
            hedge=hedge,
            transport=transport,
            connection=connection,
            preload=preload,
            replayable=_replayable(options),
        )
        request.extensions[CALL] = call
        return request, call, send

    def _connection(
        self, options: Mapping[str, Any]
    ) -> tuple[httpx.AsyncBaseTransport | None, dict[str, Any] | None]:
        """A call's own transport, or the connection settings it overrides."""
        if not any(name in options for name in ENGINE_OPTIONS):
            return None, None
        transport = options.get("transport")
        if transport is not None:
            if not isinstance(transport, httpx.AsyncBaseTransport):
                raise TypeError(
                    f"transport must be an httpx.AsyncBaseTransport, not {type(transport).__name__}"
                )
            return transport, None
        overrides: dict[str, Any] = {}
        if "verify" in options:
            overrides["verify"] = check_verify(options["verify"])
        if "cert" in options:
            overrides["cert"] = check_cert(options["cert"])
        if "http2" in options:
            overrides["http2"] = check_bool("http2", options["http2"])
            check_http2(overrides["http2"])
        if "proxy" in options:
            overrides["proxy"] = check_proxy(options["proxy"])
        return None, overrides or None

    def _request(
        self, method: str, url: httpx.URL, timeout: httpx.Timeout, build: dict[str, Any]
    ) -> httpx.Request:
        """`httpx_client.build_request(...)`, without its merging work when there is
        nothing to merge (no params or cookies on the client or the call), and without
        its body encoding when there is no body: the same request, as the parity suite
        checks."""
        client = self._client
        if "params" in build or "cookies" in build or client.params or client.cookies:
            return client.build_request(method, url, timeout=timeout, **build)
        headers = client.headers
        if "headers" in build:
            headers = headers.copy()
            headers.update(build.pop("headers"))
        extensions = {
            "timeout": self._timeout_dict if timeout is self._timeout else timeout.as_dict()
        }
        if "extensions" in build:
            extensions = {**extensions, **build.pop("extensions")}
        if not build:  # no body either: what httpx builds, without its body encoding
            return self._bodiless.build(method, url, headers, extensions)
        return httpx.Request(method, url, headers=headers, extensions=extensions, **build)

    def _target(self, url: httpx.URL | str, options: Mapping[str, Any]) -> httpx.URL:
        """The absolute URL of a call, checked before any I/O (parsed strings cached)."""
        if options and "base_url" in options:
            return check_url(url, check_base_url(options["base_url"]))
        if type(url) is not str:
            return check_url(url, self._base_url)
        cache = self._urls
        target = cache.get(url)
        if target is None:
            target = check_url(url, self._base_url)
            if len(cache) >= _MAX_CACHED_URLS:
                cache.clear()
            cache[url] = target
        return target

    async def _send(
        self, request: httpx.Request, call: Call, send: dict[str, Any], *, stream: bool
    ) -> httpx.Response:
        """Send through httpx's client, under a hard stop at the call's deadline where one
        is possible (it also bounds an OAuth token wait); errors become cf's."""
        call.start()
        direct = self._direct(request, send)
        try:
            if call.deadline is None:
                if direct:
                    response = await self._send_direct(request)
                else:
                    response = await self._client.send(request, stream=True, **send)
            else:
                guard = AsyncDeadline(call.deadline)
                try:
                    async with guard:
                        if direct:
                            response = await self._send_direct(request)
                        else:
                            response = await self._client.send(request, stream=True, **send)
                except TimeoutError:
                    if guard.expired:
                        raise call.deadline_exceeded(request) from None
                    raise
        except httpx.RequestError as exc:
            raise error_for(exc, call, request) from exc
        try:
            if call.policy.raises_for_status(response.status_code):
                await response.aread()
                raise call.status_error(response)
            if not stream:
                await response.aread()
        except httpx.RequestError as exc:
            await response.aclose()
            raise error_for(exc, call, request) from exc
        except BaseException:
            await response.aclose()
            raise
        return response

    def _direct(self, request: httpx.Request, send: dict[str, Any]) -> bool:
        """Whether the call may skip httpx's send machinery: no auth flow to run, no
        redirects to follow, no event hooks, no mounts (proxies) to route through."""
        client = self._client
        if self._mounts or "auth" in send or client.auth is not None or request.url.userinfo:
            return False
        if send.get("follow_redirects", client.follow_redirects):
            return False
        hooks = client.event_hooks
        return not (hooks["request"] or hooks["response"])

    async def _send_direct(self, request: httpx.Request) -> httpx.Response:
        """What `httpx_client.send(request, stream=True)` does for a request with no auth
        flow, no redirects to follow and no hooks, straight to cf's transport (the
        parity suite checks both paths give the same)."""
        client = self._client
        if client.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        if not isinstance(request.stream, httpx.AsyncByteStream):
            raise RuntimeError(_WRONG_BODY)
        started = time.perf_counter()
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.RequestError as exc:
            if not _has_request(exc):
                exc.request = request
            raise
        response.request = request
        if isinstance(response.stream, httpx.ByteStream):
            # Read whole already (the call's body is preloaded): decode it now, without
            # the async generators of `aread()`, and it has taken what it has taken.
            response.read()
            response.elapsed = timedelta(seconds=time.perf_counter() - started)
        else:
            response.stream = _Timed(response.stream, response, started)
        if "set-cookie" in response.headers:  # cheap: read() has found the headers' encoding
            client.cookies.extract_cookies(response)
        response.default_encoding = self._default_encoding
        if _httpx_logger.isEnabledFor(logging.INFO):
            _httpx_logger.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        if response.has_redirect_location:
            try:
                response.next_request = redirect_request(request, response, client.cookies)
            except BaseException:
                await response.aclose()
                raise
        return response

    async def get(self, url: httpx.URL | str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send a GET request; see `request()`."""
        return await self.request("GET", url, **options)

    async def head(self, url: httpx.URL | str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send a HEAD request; see `request()`."""
        return await self.request("HEAD", url, **options)

    async def options(
        self, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """Send an OPTIONS request; see `request()`."""
        return await self.request("OPTIONS", url, **options)

    async def post(self, url: httpx.URL | str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send a POST request; see `request()`."""
        return await self.request("POST", url, **options)

    async def put(self, url: httpx.URL | str, **options: Unpack[RequestOptions]) -> httpx.Response:
        """Send a PUT request; see `request()`."""
        return await self.request("PUT", url, **options)

    async def patch(
        self, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """Send a PATCH request; see `request()`."""
        return await self.request("PATCH", url, **options)

    async def delete(
        self, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """Send a DELETE request; see `request()`."""
        return await self.request("DELETE", url, **options)

    # Lifetime ---------------------------------------------------------------

    async def aclose(self) -> None:
        """Close every connection this client holds."""
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} closed={self.is_closed}>"


def _check_hedge(hedge: Any) -> Hedge | None:
    """`hedge=`: a `Hedge` or None; the sync client refuses it before anything is sent."""
    checked: Hedge | None = check_hedge(hedge)
    if checked is not None and not _synchronization.async_can_hedge():
        raise TypeError(
            "hedge= needs the async client HTTPAio: the sync client sends one attempt at a time"
        )
    return checked


def _given(value: Any, default: Any) -> Any:
    """`value` unless it is None (an injected sleep may be a falsy object)."""
    return default if value is None else value


def _replayable(options: Mapping[str, Any]) -> bool | None:
    """Whether the body can be sent again: None lets the transport look at the stream."""
    if not options:
        return True
    content = options.get("content")
    if content is not None and not isinstance(content, (bytes, str)):
        return False
    files = options.get("files")
    if files:
        values = files.values() if isinstance(files, dict) else (v for _, v in files)
        for value in values:
            file = value[1] if isinstance(value, tuple) else value
            if not isinstance(file, (bytes, str)) and not _seekable(file):
                return False
    return True


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable())
    except Exception:
        return False


class _Timed(httpx.AsyncByteStream):
    """A response body that sets `response.elapsed` when closed, as httpx's client does.

    It holds its response weakly: the response holds it, and a reference cycle would
    keep both (and the request) until the cycle collector's next pass."""

    def __init__(self, stream: Any, response: httpx.Response, started: float) -> None:
        self._stream = stream
        self._response = weakref.ref(response)
        self._started = started

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        response = self._response()
        if response is not None:
            response.elapsed = timedelta(seconds=time.perf_counter() - self._started)
        await self._stream.aclose()


class _GuardedStream(httpx.AsyncByteStream):
    """A streamed body whose transport failures raise cf's exceptions."""

    def __init__(self, stream: Any, call: Call, request: httpx.Request) -> None:
        self._stream = stream
        self._call = call
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except httpx.RequestError as exc:
            if not _has_request(exc):
                exc.request = self._request  # as httpx's own iter_raw does
            raise error_for(exc, self._call, self._request) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


def _has_request(exc: httpx.RequestError) -> bool:
    try:
        exc.request  # noqa: B018 - httpx raises RuntimeError when it was never set
    except RuntimeError:
        return False
    return True
