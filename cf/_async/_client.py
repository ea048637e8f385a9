"""HTTPAio: httpx's API with retries, a retry budget, deadlines and trace propagation."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from cf._async._pool import HTTPAioPool
from cf._async._send import send_with_retries
from cf._backoff import RetryBudget
from cf._call import CLIENT_OPTIONS, Call, ClientOptions, RequestOptions, plan_call
from cf._options import (
    DEFAULT_TIMEOUT,
    ENGINE_OPTIONS,
    UNSET,
    Defaults,
    check_deadline,
    check_headers,
    check_on_retry,
    check_timeout,
    check_trace,
    check_url,
    make_policy,
    pool_limits,
)
from cf._synchronization import AsyncDeadline, async_sleep
from cf._transports._default import async_default_transport
from cf.loggingutils import get_logger

if TYPE_CHECKING:
    from typing_extensions import Self, Unpack

__all__ = ["HTTPAio"]

logger = get_logger("cf.infrastructure.http_aio")
_httpx_logger = logging.getLogger("httpx")

_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_HTTPX_CLIENT_OPTIONS = (
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


class HTTPAio:
    """An async HTTP client: httpx's API and `httpx.Response`, plus retries.

    Create it with `HTTPAio.create(**options)` or share one through
    `HTTPAio.create_pool(size, **options)`. Options given here are the
    defaults of every call; a call may override each of them.
    """

    def __init__(self, **options: Unpack[ClientOptions]) -> None:
        unknown = options.keys() - CLIENT_OPTIONS
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        clock = options.get("clock")
        if clock is None:
            clock = time.monotonic
        budget = options.get("retry_budget", UNSET)
        if budget is UNSET:
            budget = RetryBudget(clock=clock)
        elif budget is not None and not isinstance(budget, RetryBudget):
            raise TypeError("retry_budget must be a RetryBudget or None")
        trace = check_trace(options.get("trace"))
        on_retry = check_on_retry(options.get("on_retry"))
        timeout = check_timeout(options.get("timeout", DEFAULT_TIMEOUT))
        policy = make_policy(None, options)
        deadline = check_deadline(options.get("deadline"))
        self._sleep: Callable[[float], Any] = options.get("sleep", async_sleep)
        self._options: dict[str, Any] = {
            k: v for k, v in options.items() if k in _HTTPX_CLIENT_OPTIONS
        }
        if "headers" in self._options:
            self._options["headers"] = check_headers(self._options["headers"])
        if "base_url" in options:
            self._options["base_url"] = check_url(options["base_url"])
        self._engine_options: dict[str, Any] = {
            k: v for k, v in options.items() if k in ENGINE_OPTIONS
        }
        self._limits = options.get("limits", _DEFAULT_LIMITS)
        self._client = self._make_client(self._engine_options, timeout)
        self._engines: dict[tuple[tuple[str, Any], ...], httpx.AsyncClient] = {}
        client = self._client
        self._defaults = Defaults(
            policy=policy,
            timeout=timeout,
            deadline=deadline,
            trace=trace,
            on_retry=on_retry,
            budget=budget,
            clock=clock,
            random=options.get("random", random.random),
            direct=client.auth is None and not any(client.event_hooks.values()),
            timeout_dict=timeout.as_dict(),
        )
        self._default_encoding = options.get("default_encoding")

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

    def _make_client(
        self, engine: dict[str, Any], timeout: httpx.Timeout | None = None
    ) -> httpx.AsyncClient:
        transport = engine.get("transport")
        if transport is None:
            transport = async_default_transport(
                verify=engine.get("verify", True),
                cert=engine.get("cert"),
                trust_env=engine.get("trust_env", True),
                http2=engine.get("http2", False),
                proxy=engine.get("proxy"),
                limits=self._limits,
            )
        return httpx.AsyncClient(
            timeout=timeout or self._defaults.timeout, transport=transport, **self._options
        )

    def _engine(self, key: tuple[tuple[str, Any], ...]) -> httpx.AsyncClient:
        """The client for a call that overrides connection options (cached per set)."""
        cache_key = key
        try:
            hash(key)
        except TypeError:  # an unhashable option value: key the cache by identity
            cache_key = tuple((k, id(v)) for k, v in key)
        client = self._engines.get(cache_key)
        if client is None:
            client = self._make_client({**self._engine_options, **dict(key)})
            self._engines[cache_key] = client
        return client

    # Requests ---------------------------------------------------------------

    async def request(
        self, method: str, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        """Send a request with retries; the body is read before it returns."""
        call = plan_call(self._client, self._defaults, method, url, options, preload=True)
        return await self._send(call, stream=False)

    @asynccontextmanager
    async def stream(
        self, method: str, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> AsyncIterator[httpx.Response]:
        """Send a request with retries and yield the response before its body is read.

        Retries cover the attempt up to the response headers; a failure while
        you read the body is raised (as an HTTPAioTransportError), not retried.
        """
        call = plan_call(self._client, self._defaults, method, url, options)
        response = await self._send(call, stream=True)
        response.stream = _GuardedStream(response.stream, call)
        try:
            yield response
        finally:
            await response.aclose()

    async def _send(self, call: Call, *, stream: bool) -> httpx.Response:
        """The retry loop, under a hard stop at the call's deadline where one is possible."""
        if call.deadline is None:
            return await send_with_retries(
                self._send_once, call, stream=stream, sleep=self._sleep, logger=logger
            )
        guard = AsyncDeadline(call.deadline)
        try:
            async with guard:
                return await send_with_retries(
                    self._send_once, call, stream=stream, sleep=self._sleep, logger=logger
                )
        except TimeoutError:
            if guard.expired:
                raise call.deadline_error() from None
            raise

    async def _send_once(self, call: Call) -> httpx.Response:
        if call.direct:
            return await self._send_direct(call.request)
        client = self._client if call.engine_key is None else self._engine(call.engine_key)
        return await client.send(
            call.request, stream=True, auth=call.auth, follow_redirects=call.follow_redirects
        )

    async def _send_direct(self, request: httpx.Request) -> httpx.Response:
        """What `httpx.AsyncClient.send` does for a request with no auth flow, no
        redirects to follow and no event hooks, without its generators and wrappers."""
        client = self._client
        if client.is_closed:
            raise RuntimeError("Cannot send a request, as the client has been closed.")
        started = time.perf_counter()
        response = await client._transport_for_url(request.url).handle_async_request(request)
        response.request = request
        response.elapsed = timedelta(seconds=time.perf_counter() - started)
        if self._default_encoding is not None:
            response.default_encoding = self._default_encoding
        if "set-cookie" in response.headers:
            client.cookies.extract_cookies(response)
        if response.has_redirect_location:  # as httpx does when not following redirects
            response.next_request = client._build_redirect_request(request, response)
        if _httpx_logger.isEnabledFor(logging.INFO):
            _httpx_logger.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response

    async def get(self, url: httpx.URL | str, **options: Unpack[RequestOptions]) -> httpx.Response:
        return await self.request("GET", url, **options)

    async def head(self, url: httpx.URL | str, **options: Unpack[RequestOptions]) -> httpx.Response:
        return await self.request("HEAD", url, **options)

    async def options(
        self, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        return await self.request("OPTIONS", url, **options)

    async def post(self, url: httpx.URL | str, **options: Unpack[RequestOptions]) -> httpx.Response:
        return await self.request("POST", url, **options)

    async def put(self, url: httpx.URL | str, **options: Unpack[RequestOptions]) -> httpx.Response:
        return await self.request("PUT", url, **options)

    async def patch(
        self, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        return await self.request("PATCH", url, **options)

    async def delete(
        self, url: httpx.URL | str, **options: Unpack[RequestOptions]
    ) -> httpx.Response:
        return await self.request("DELETE", url, **options)

    # Lifetime ---------------------------------------------------------------

    @property
    def retry_budget(self) -> RetryBudget | None:
        return self._defaults.budget

    @property
    def is_closed(self) -> bool:
        return self._client.is_closed

    async def aclose(self) -> None:
        """Close every connection this client holds."""
        engines, self._engines = list(self._engines.values()), {}
        for client in [self._client, *engines]:
            await client.aclose()

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


class _GuardedStream(httpx.AsyncByteStream):
    """A streamed body whose transport failures raise HTTPAio exceptions."""

    def __init__(self, stream: Any, call: Call) -> None:
        self._stream = stream
        self._call = call

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except httpx.RequestError as exc:
            raise self._call.transport_error(exc, None) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()
