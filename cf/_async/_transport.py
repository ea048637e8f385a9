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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from cf import _otel, _synchronization
from cf._backoff import Failure, RetryBudget, RetryDecision, RetryEvent, RetryPolicy, Stop
from cf._breaker import CircuitBreaker, Circuits, Permit, Refused, coerce_circuit_breaker
from cf._breaker import origin_of as _circuit_origin
from cf._call import CALL, Call, classify, has_header
from cf._exceptions import CircuitOpen
from cf._hedge import Hedge, Latencies, may_hedge, next_hedge_delay
from cf._options import (
    UNSET,
    check_attempt_hooks,
    check_budget,
    check_callable,
    check_deadline,
    check_hedge,
    check_on_retry,
    check_trace,
    make_policy,
)
from cf._redact import redact_exception_chain
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
"""The engine when none is given: cf's aiohttp engine in async mode, cf's h11 engine in sync
mode (`cf/_transports/`)."""


class _Settings:
    """What every call through one client's transports shares: defaults and state."""

    __slots__ = (
        "budget",
        "circuits",
        "request_hooks",
        "response_hooks",
        "clock",
        "deadline",
        "engines",
        "hedge",
        "latencies",
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
        circuit_breaker: CircuitBreaker | None = None,
        on_circuit_change: Callable[[str, str, str], object] | None = None,
        hedge: Hedge | None = None,
        attempt_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
    ) -> None:
        hooks = check_attempt_hooks(attempt_hooks)
        self.request_hooks = hooks["request"]
        self.response_hooks = hooks["response"]
        self.policy = policy
        self.deadline = deadline
        self.budget = budget
        self.trace = trace
        self.on_retry = on_retry
        self.sleep = sleep
        self.clock = clock
        self.random = random
        self.hedge = hedge
        # Per-call engines (calls overriding verify/cert/http2/proxy), shared by the
        # client's transports.
        self.engines = engines if engines is not None else EngineCache(async_engine)
        # One circuit per origin, shared by the client's transports (and its pool).
        self.circuits = (
            None
            if circuit_breaker is None
            else Circuits(
                circuit_breaker, clock=clock, on_change=_circuit_reporter(on_circuit_change)
            )
        )
        self.latencies = Latencies()

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
            hedge=self.hedge,
        )


def _circuit_reporter(
    on_change: Callable[[str, str, str], object] | None,
) -> Callable[[str, str, str], None]:
    """Each state change: a WARNING, then the user's `on_circuit_change`."""

    def report(origin: str, old: str, new: str) -> None:
        logger.warning(
            "circuit for %s: %s -> %s",
            origin,
            old,
            new,
            extra={"origin": origin, "old_state": old, "new_state": new},
        )
        _otel.circuit_changed(origin, old, new)
        if on_change is not None:
            on_change(origin, old, new)

    return report


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

    `transport`: the engine (default: this mode's default engine). The keyword
    options are those of `RetryPolicy` plus `deadline`, `retry_budget`,
    `trace`, `on_retry`, `circuit_breaker`, `on_circuit_change`, `hedge`,
    `attempt_hooks` (httpx-style event hooks called for every attempt), and
    `sleep`, `clock`, `random` for tests. An open circuit raises
    `cf.CircuitOpen` (an `httpx.ConnectError`: nothing was sent).
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
        circuit_breaker: CircuitBreaker | bool | None = None,
        on_circuit_change: Callable[[str, str, str], object] | None = None,
        hedge: Hedge | None = None,
        attempt_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
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
            circuit_breaker=coerce_circuit_breaker(circuit_breaker),
            on_circuit_change=check_callable("on_circuit_change", on_circuit_change),
            hedge=check_hedge(hedge),
            attempt_hooks=attempt_hooks,
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
        """The retry budget shared by every request through this transport (None: off)."""
        return self._settings.budget

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` with cf's attempt loop (httpx calls it for every request and
        redirect hop)."""
        call = request.extensions.get(CALL)
        if call is None:
            call = self._settings.new_call()
            request.extensions = {**request.extensions, CALL: call}
        if call.connection is None:
            engine = call.transport or self._engine
            if call.deadline is None:
                return await self._attempts(engine, request, call)
            return await self._guarded(engine, request, call)
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
        settings = self._settings
        circuits = settings.circuits
        policy = call.policy
        hedge = call.hedge
        origin = _origin(request.url) if circuits is not None or hedge is not None else ""
        if hedge is not None and not may_hedge(
            request.method,
            replayable=call.replayable is not False and _replayable(request),
            idempotency_key=has_header(request, b"idempotency-key"),
            idempotent_methods=policy.idempotent_methods,
        ):
            hedge = None
        while True:
            remaining = call.remaining()
            if remaining is not None and remaining <= 0:
                raise call.deadline_exceeded(request)
            permit = self._permit(circuits, origin, request, call)
            call.begin_attempt(request)
            try:
                if hedge is None:
                    response = await self._one(engine, request, call, origin, permit)
                else:
                    response = await self._hedged(engine, request, call, origin, permit, hedge)
            except httpx.TransportError as exc:
                failure = classify(exc)
                if failure is None:
                    call.stop = None
                    _end_spans(call)
                    raise
                healthy = circuits is None or circuits.allows_retry(origin)
                decision = call.decide(failure, healthy=healthy)
                _end_spans(call, decision, type(exc).__name__)
                if not decision.retry:
                    raise
                await self._before_retry(call, decision.delay, None, exc)
                continue
            except BaseException:
                _end_spans(call)
                raise
            status = response.status_code
            if status in call.passthrough or not _failed(policy, status, response):
                _end_spans(call)
                return response
            retry_after = response.headers.get("retry-after")
            healthy = circuits is None or circuits.allows_retry(origin)
            decision = call.decide(Failure.STATUS, status, retry_after, healthy=healthy)
            _end_spans(call, decision, str(status))
            if not decision.retry:
                return response
            await response.aclose()
            await self._before_retry(call, decision.delay, status, None)

    @staticmethod
    def _permit(
        circuits: Circuits | None, origin: str, request: httpx.Request, call: Call
    ) -> Permit | None:
        """The circuit's permit for the next attempt; an open circuit refuses at once."""
        if circuits is None:
            return None
        verdict = circuits.acquire(origin)
        if isinstance(verdict, Refused):
            call.stop = Stop.CIRCUIT_OPEN
            _otel.event(
                None,
                "cf.circuit.refused",
                {"cf.circuit.origin": origin, "cf.circuit.retry_after": verdict.retry_after},
            )
            message = f"circuit open for {origin}; next probe in {verdict.retry_after:.3g}s"
            raise CircuitOpen(
                message, origin=origin, retry_after=verdict.retry_after, request=request
            )
        return verdict

    async def _one(
        self,
        engine: httpx.AsyncBaseTransport,
        request: httpx.Request,
        call: Call,
        origin: str,
        permit: Permit | None,
    ) -> httpx.Response:
        """One attempt, logged, its outcome told to the circuit and its latency kept."""
        settings = self._settings
        circuits = settings.circuits
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            call.log_attempt(logger)
        span = _otel.attempt(call, request)
        for hook in settings.request_hooks:
            await hook(request)
        started = settings.clock()
        try:
            with _otel.suppressed():
                if call.preload:
                    # The caller reads the whole body: read inside the attempt, so that a
                    # failure while reading is this attempt's (and may be retried).
                    request.extensions[_PRELOAD] = True  # an engine may read it in one go
                    response = await engine.handle_async_request(request)
                    if not isinstance(response.stream, httpx.ByteStream):
                        response = await _read_whole(response)
                else:
                    response = await engine.handle_async_request(request)
        except httpx.TransportError as exc:
            if debug:
                call.log_attempt(logger, exc=exc)
            if span is not None:
                call.spans.append((span, None, exc))
            if permit is not None and circuits is not None:
                if isinstance(exc, httpx.PoolTimeout):
                    circuits.release(permit)  # our own congestion, not the origin's health
                else:
                    circuits.record(permit, False)
            raise
        except BaseException as exc:
            if span is not None:
                span.end(exc=exc, counted=False)
            if permit is not None and circuits is not None:
                circuits.release(permit)  # cancelled (a losing hedge): no verdict
            raise
        if span is not None:
            call.spans.append((span, response, None))
        if debug:
            call.log_attempt(logger, response)
        if settings.response_hooks:
            response.request = request
            for hook in settings.response_hooks:
                await hook(response)
        if circuits is not None or origin:  # a circuit to tell, or latencies for hedging
            status = response.status_code
            good = status in call.passthrough or not _failed(call.policy, status, response)
            if permit is not None and circuits is not None:
                circuits.record(permit, good)
            if good:
                settings.latencies.add(origin, settings.clock() - started)
        return response

    async def _hedged(
        self,
        engine: httpx.AsyncBaseTransport,
        request: httpx.Request,
        call: Call,
        origin: str,
        permit: Permit | None,
        hedge: Hedge,
    ) -> httpx.Response:
        """The attempt and its hedges: an extra attempt each time the latest has not
        answered within the hedge's delay; the first good answer wins, the others are
        cancelled (their connections closed) or, answered, closed."""
        settings = self._settings
        circuits = settings.circuits

        def next_delay(launched: int) -> float | None:
            return next_hedge_delay(
                hedge,
                launched=launched,
                p95=lambda: settings.latencies.p95(origin),
                remaining=call.remaining(),
            )

        def extra(launched: int) -> Callable[[], Awaitable[httpx.Response]] | None:
            if circuits is not None and not circuits.allows_retry(origin):
                return None
            if call.budget is not None and not call.budget.withdraw():
                return None
            try:
                hedge_permit = self._permit(circuits, origin, request, call)
            except CircuitOpen:
                return None
            copy = httpx.Request(
                request.method,
                request.url,
                headers=request.headers.copy(),
                stream=request.stream,
                extensions=request.extensions,
            )
            call.begin_attempt(copy)
            return lambda: self._one(engine, copy, call, origin, hedge_permit)

        def good(response: httpx.Response) -> bool:
            status = response.status_code
            return status in call.passthrough or not _failed(call.policy, status, response)

        async def discard(response: httpx.Response) -> None:
            await response.aclose()

        return await _synchronization.async_race(
            lambda: self._one(engine, request, call, origin, permit),
            next_delay=next_delay,
            extra=extra,
            good=good,
            discard=discard,
            clock=settings.clock,
        )

    async def _before_retry(
        self, call: Call, delay: float, status: int | None, exc: BaseException | None
    ) -> None:
        if exc is not None:
            redact_exception_chain(exc)  # on_retry and the logs see no secret
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


def _end_spans(call: Call, decision: RetryDecision | None = None, reason: str = "") -> None:
    """End the spans of the attempts that just ended, the loop's decision on the last:
    a retry or a retry-budget refusal as its event (and counted)."""
    spans, call.spans = call.spans, []
    if not spans:
        if decision is not None and decision.stop is Stop.BUDGET:
            _otel.event(None, "cf.retry_budget.exhausted", {}, metric="refusals")
        return
    last = spans[-1][0]
    if decision is not None and decision.retry:
        attributes = {"cf.retry.delay": decision.delay, "cf.retry.reason": reason}
        _otel.event(
            last,
            "cf.retry",
            attributes,
            metric="retries",
            metric_attributes={"cf.retry.reason": reason},
        )
    elif decision is not None and decision.stop is Stop.BUDGET:
        _otel.event(
            last, "cf.retry_budget.exhausted", {"cf.retry.reason": reason}, metric="refusals"
        )
    for span, response, exc in spans:
        span.end(response, exc)


async def _read_whole(response: httpx.Response) -> httpx.Response:
    """The response with its raw body read into memory (the connection given back)."""
    try:
        body = b"".join([chunk async for chunk in response.stream])  # type: ignore[union-attr]
    finally:
        await response.aclose()
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx.ByteStream(body),
        extensions=response.extensions,
    )


def _failed(policy: RetryPolicy, status: int, response: httpx.Response) -> bool:
    """Whether the response fails its attempt (Retry-After read only when it matters)."""
    if status in policy.failure_statuses:
        return True
    if status in policy.retry_after_statuses:
        return policy.is_failure_status(status, response.headers.get("retry-after"))
    return False


def _origin(url: httpx.URL) -> str:
    """`scheme://host:port` of a URL, the key of its circuit and latencies."""
    return _circuit_origin(url.scheme, url.host, url.port)


def _replayable(request: httpx.Request) -> bool:
    return isinstance(request.stream, httpx.ByteStream)
