"""AsyncRetryTransport: cf's attempt loop as an httpx transport wrapping an engine.

Every attempt of a call goes through `handle_async_request`: retries with
backoff and Retry-After, the retry budget, the deadline (each attempt's
timeouts shrunk to what it has left, and a hard stop where the runtime allows
one), per-attempt trace headers, `on_retry` and the retry logs. httpx's client
around it does everything else as it always does (redirects, auth flows,
cookies, event hooks, decoding), so a call through cf is a call through httpx.

The decisions are pure (`cf._backoff`, `cf._call`); this module sends, reads,
sleeps and logs. It is the only hand-written copy: `cf/_sync/_transport.py` is
generated from it.
"""

from __future__ import annotations

import dataclasses
import logging
import random as _random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from cf import _synchronization
from cf._backoff import Failure, RetryBudget, RetryEvent, RetryPolicy
from cf._call import CALL, Call, classify
from cf._options import (
    UNSET,
    check_budget,
    check_deadline,
    check_on_retry,
    check_trace,
    make_policy,
)
from cf._synchronization import AsyncDeadline
from cf._trace import TraceInfo
from cf._transports._engines import (
    ASYNC_ENGINES,
    EngineCache,
    EngineSettings,
    async_engine,
    default_engine,
)
from cf.loggingutils import get_logger

__all__ = ["AsyncRetryTransport"]

logger = get_logger("cf.infrastructure.http_aio")

_PRELOAD = "cf.preload"
DEFAULT_ENGINE = "aiohttp"
"""The engine when none is given: aiohttp in async mode, httpx's own in sync mode."""


class _Settings:
    """What every call through one client's transports shares: defaults and state."""

    __slots__ = (
        "budget",
        "clock",
        "deadline",
        "engines",
        "on_retry",
        "policy",
        "random",
        "sleep",
        "trace",
    )

    def __init__(
        self,
        *,
        policy: RetryPolicy,
        deadline: float | None,
        budget: RetryBudget | None,
        trace: TraceInfo | None,
        on_retry: Callable[[RetryEvent], object] | None,
        sleep: Callable[[float], Awaitable[None]],
        clock: Callable[[], float],
        random: Callable[[], float],
        engines: EngineCache[httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.policy = policy
        self.deadline = deadline
        self.budget = budget
        self.trace = trace
        self.on_retry = on_retry
        self.sleep = sleep
        self.clock = clock
        self.random = random
        # Per-call engines (calls overriding verify/cert/http2/proxy), shared by the
        # client's transports.
        self.engines = engines if engines is not None else EngineCache(async_engine)

    def new_call(self) -> Call:
        """The state of a call that reached the transport without one (a plain httpx client)."""
        return Call(
            policy=self.policy,
            clock=self.clock,
            random=self.random,
            budget=self.budget,
            deadline=self.deadline,
            trace=self.trace,
            on_retry=self.on_retry,
        )


class AsyncRetryTransport(httpx.AsyncBaseTransport):
    """cf's retries, retry budget, deadline and trace headers around any httpx transport.

    Put it on your own `httpx.AsyncClient` (or hand such a client to an SDK that
    takes `http_client=`) and every request gets what `HTTPAio` gives: the
    safe-retry matrix, full-jitter backoff, Retry-After, the budget shared by
    all requests of this transport, `deadline` bounding each request (redirect
    hops and retries included), a fresh `traceparent` per attempt when `trace`
    is given. A failure status is returned as the last attempt's response (the
    client decides whether it raises); a transport failure raises httpx's own
    exception, a deadline `cf.DeadlineExceeded` (an `httpx.TimeoutException`).

    `transport`: the engine (default: cf's async default engine). The keyword
    options are those of `RetryPolicy` plus `deadline`, `retry_budget`,
    `trace`, `on_retry`, and `sleep`, `clock`, `random` for tests.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        retry_policy: RetryPolicy | None = None,
        deadline: float | None = None,
        retry_budget: RetryBudget | None = UNSET,
        trace: TraceInfo | None = None,
        on_retry: Callable[[RetryEvent], object] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
        random: Callable[[], float] | None = None,
        **policy: Any,
    ) -> None:
        unknown = policy.keys() - set(RetryPolicy.__dataclass_fields__) - {"retries"}
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
        clock = time.monotonic if clock is None else clock
        budget = RetryBudget(clock=clock) if retry_budget is UNSET else check_budget(retry_budget)
        settings = _Settings(
            policy=make_policy(None, {"retry_policy": retry_policy, **policy}),
            deadline=check_deadline(deadline),
            budget=budget,
            trace=check_trace(trace),
            on_retry=check_on_retry(on_retry),
            sleep=_synchronization.async_sleep if sleep is None else sleep,
            clock=clock,
            random=_random.random if random is None else random,
        )
        connection = None
        if transport is None:
            connection = EngineSettings(engine=default_engine(DEFAULT_ENGINE, ASYNC_ENGINES))
            transport = async_engine(connection)
        self._engine = transport
        self._settings = settings
        self._connection = connection

    @classmethod
    def _create(
        cls,
        engine: httpx.AsyncBaseTransport,
        settings: _Settings,
        connection: EngineSettings | None,
    ) -> AsyncRetryTransport:
        transport = cls.__new__(cls)
        transport._engine = engine
        transport._settings = settings
        transport._connection = connection
        return transport

    def share(self, transport: httpx.AsyncBaseTransport) -> AsyncRetryTransport:
        """Another engine behind the same settings and the same retry budget, e.g. for
        httpx's `mounts=` (a proxy) next to this transport."""
        return self._create(transport, self._settings, None)

    @property
    def engine(self) -> httpx.AsyncBaseTransport:
        """The transport that sends each attempt."""
        return self._engine

    @property
    def retry_budget(self) -> RetryBudget | None:
        return self._settings.budget

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        call = request.extensions.get(CALL)
        if call is None:
            call = self._settings.new_call()
            request.extensions = {**request.extensions, CALL: call}
        if call.connection is None:
            return await self._guarded(call.transport or self._engine, request, call)
        engines = self._settings.engines
        engine, closable = engines.acquire(self._connection_for(call.connection))
        try:
            for old in closable:
                await old.aclose()
            return await self._guarded(engine, request, call)
        finally:
            idle = engines.release(engine)
            if idle is not None:
                await idle.aclose()

    def _connection_for(self, overrides: dict[str, Any]) -> EngineSettings:
        """This transport's connection settings with a call's overrides."""
        if self._connection is None:
            raise ValueError(
                f"per-call {', '.join(sorted(overrides))}= needs cf's own engine, "
                "but this transport sends through a transport you gave"
            )
        return dataclasses.replace(self._connection, **overrides)

    async def _guarded(
        self, engine: httpx.AsyncBaseTransport, request: httpx.Request, call: Call
    ) -> httpx.Response:
        """The attempts, under a hard stop at the call's deadline where one is possible."""
        if call.deadline is None:
            return await self._attempts(engine, request, call)
        guard = AsyncDeadline(call.remaining())
        try:
            async with guard:
                return await self._attempts(engine, request, call)
        except TimeoutError:
            if guard.expired:
                raise call.deadline_exceeded(request) from None
            raise

    async def _attempts(
        self, engine: httpx.AsyncBaseTransport, request: httpx.Request, call: Call
    ) -> httpx.Response:
        failure_statuses = call.policy.failure_statuses
        while True:
            remaining = call.remaining()
            if remaining is not None and remaining <= 0:
                raise call.deadline_exceeded(request)
            call.begin_attempt(request)
            debug = logger.isEnabledFor(logging.DEBUG)
            if debug:
                call.log_attempt(logger)
            try:
                response = await self._send(engine, request, call)
            except httpx.TransportError as exc:
                if debug:
                    call.log_attempt(logger, exc=exc)
                failure = classify(exc)
                if failure is None:
                    call.stop = None
                    raise
                decision = call.decide(failure)
                if not decision.retry:
                    raise
                await self._before_retry(call, decision.delay, None, exc)
                continue
            if debug:
                call.log_attempt(logger, response)
            status = response.status_code
            if status not in failure_statuses or status in call.passthrough:
                return response
            decision = call.decide(Failure.STATUS, status, response.headers.get("retry-after"))
            if not decision.retry:
                return response
            await response.aclose()
            await self._before_retry(call, decision.delay, status, None)

    async def _send(
        self, engine: httpx.AsyncBaseTransport, request: httpx.Request, call: Call
    ) -> httpx.Response:
        """One attempt; with `preload`, the body is read inside it."""
        if not call.preload:
            return await engine.handle_async_request(request)
        if not request.extensions.get(_PRELOAD):
            request.extensions[_PRELOAD] = True
        response = await engine.handle_async_request(request)
        stream = response.stream
        if isinstance(stream, httpx.ByteStream):
            return response
        try:
            body = b"".join([chunk async for chunk in stream])  # type: ignore[union-attr]
        finally:
            await response.aclose()
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=httpx.ByteStream(body),
            extensions=response.extensions,
        )

    async def _before_retry(
        self, call: Call, delay: float, status: int | None, exc: BaseException | None
    ) -> None:
        event = call.retry_event(delay, status, exc)
        call.log_retry(logger, event)
        if call.on_retry is not None:
            call.on_retry(event)
        await self._settings.sleep(delay)

    async def aclose(self) -> None:
        """Close the engine and every per-call engine of this transport's client."""
        for engine in [self._engine, *self._settings.engines.drain()]:
            await engine.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} engine={type(self._engine).__name__}>"
