"""One call's state, carried in `request.extensions["cf.call"]` across its attempts.

A call is what the user asked for: one request, sent once or more (retries, a
401 replay, redirect hops, hedges). Its state travels with the request through
httpx's own machinery (redirects and auth flows copy or reuse the request's
extensions), so the attempt loop, the OAuth flow and the client facade all see
the same counters, deadline and trace.

Pure: no I/O. The loops in `cf/_async/_transport.py` (and its generated twin)
send, read, sleep and log; the decisions come from here and `cf._backoff`.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

from cf._backoff import (
    Failure,
    RetryBudget,
    RetryDecision,
    RetryEvent,
    RetryPolicy,
    Stop,
    decide,
)
from cf._exceptions import (
    CircuitOpen,
    DeadlineExceeded,
    HTTPAioCircuitOpenError,
    HTTPAioException,
    HTTPAioStatusError,
    HTTPAioTimeoutError,
    HTTPAioTransportError,
)
from cf._redact import redact_exception_chain, redact_text, redact_url
from cf._trace import TraceInfo, otel_headers
from cf.loggingutils import install_redaction

__all__ = ["CALL", "DEADLINE", "Call", "classify", "error_for", "has_header"]

CALL = "cf.call"
"""The request extension that holds a call's `Call`."""
DEADLINE = "cf.deadline"
"""The request extension an engine may read: `time.monotonic()` by which the attempt ends."""

# Records of httpx, httpcore, aiohttp and oauthlib go through cf's redaction filter too.
install_redaction()


class Call:
    """The settings and counters of one call, shared by all of its attempts."""

    __slots__ = (
        "attempt_started",
        "attempts",
        "budget",
        "clock",
        "connection",
        "deadline",
        "final",
        "headers",
        "hedge",
        "method",
        "on_retry",
        "passthrough",
        "policy",
        "preload",
        "random",
        "replayable",
        "retried",
        "spans",
        "started",
        "stop",
        "timeout",
        "trace",
        "trace_id",
        "transport",
        "url",
    )

    def __init__(
        self,
        *,
        policy: RetryPolicy,
        clock: Callable[[], float],
        random: Callable[[], float],
        budget: RetryBudget | None = None,
        deadline: float | None = None,
        trace: TraceInfo | None = None,
        on_retry: Callable[[RetryEvent], object] | None = None,
        hedge: Any = None,
        transport: Any = None,
        connection: dict[str, Any] | None = None,
        preload: bool = False,
        replayable: bool | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.random = random
        self.budget = budget
        self.deadline = deadline
        self.trace = trace
        self.on_retry = on_retry
        self.hedge = hedge
        # This call's own engine transport (a per-call `transport=`), or the
        # connection settings it overrides (`verify`, `cert`, `http2`, `proxy`).
        self.transport = transport
        self.connection = connection
        # The caller reads the whole body: the attempt loop reads it too, so that a
        # failure while reading is an attempt that failed (and may be retried).
        self.preload = preload
        # None: decided from the request's stream at the first attempt.
        self.replayable = replayable
        self.started: float | None = None
        self.attempt_started = 0.0
        self.attempts = 0
        self.retried: dict[Failure, int] = {}
        self.stop: Stop | None = None
        self.final = False  # the current attempt is the last (an OAuth replay)
        # Failure statuses returned at once, never retried by the attempt loop: a
        # 401 answering a bearer goes to the OAuth flow, which replays it once.
        self.passthrough: frozenset[int] = frozenset()
        # OpenTelemetry: attempts that ended, whose spans wait for the loop's decision
        # (a retry, a budget refusal) before they end: (span, response, exception).
        self.spans: list[tuple[Any, httpx.Response | None, BaseException | None]] = []
        self.trace_id: str | None = None
        self.timeout: dict[str, float | None] | None = None
        self.method = ""
        self.url: httpx.URL | None = None
        # The attempt's headers (for the Idempotency-Key); not the request itself, which
        # holds this call in its extensions: no reference cycle, so a call's objects go
        # when it ends, not at the cycle collector's next pass.
        self.headers: httpx.Headers | None = None

    # The clock ---------------------------------------------------------------

    def start(self) -> None:
        """Start the deadline's clock (at the call, before any token wait or attempt)."""
        if self.started is None:
            self.started = self.clock()

    def remaining(self) -> float | None:
        """Seconds the deadline has left (None: no deadline, or not started)."""
        if self.deadline is None or self.started is None:
            return self.deadline
        return self.deadline - (self.clock() - self.started)

    # Attempts ----------------------------------------------------------------

    def begin_attempt(self, request: httpx.Request) -> None:
        """Before each attempt: count it, fit its timeouts into the deadline, and give it
        a fresh trace parent id."""
        now = self.clock()
        if self.started is None:
            self.started = now
        if self.attempts == 0 and self.budget is not None:
            self.budget.deposit()
        self.attempts += 1
        self.attempt_started = now
        self.method = request.method
        self.url = request.url
        if self.timeout is None:
            self.timeout = request.extensions.get("timeout") or {}
        if self.replayable is None:
            self.replayable = isinstance(request.stream, httpx.ByteStream)
        self.headers = request.headers
        if self.deadline is not None:
            self.fit_timeouts(request)
        trace = self.trace
        if trace is not None:
            child = trace.child()
            request.headers["traceparent"] = child.traceparent
            if self.trace_id is None:
                self.trace_id = child.trace_id
                if child.tracestate:
                    request.headers["tracestate"] = child.tracestate
        elif self.attempts == 1:
            injected = otel_headers()
            if injected:
                request.headers.update(injected)
                self.trace_id = injected.get("traceparent", "")[3:35] or None

    def fit_timeouts(self, request: httpx.Request) -> None:
        """Shrink the attempt's timeouts to what the deadline has left (again after a
        wait inside the attempt, such as for an OAuth token)."""
        remaining = self.remaining()
        if remaining is None or self.timeout is None:
            return
        # For engines that can bound a whole attempt (not only each socket operation):
        # when, on this process's monotonic clock, the attempt must be over.
        request.extensions[DEADLINE] = time.monotonic() + remaining
        get = self.timeout.get
        request.extensions["timeout"] = {
            "connect": _shrink(get("connect"), remaining),
            "read": _shrink(get("read"), remaining),
            "write": _shrink(get("write"), remaining),
            "pool": _shrink(get("pool"), remaining),
        }

    def decide(
        self,
        failure: Failure,
        status: int | None = None,
        retry_after: str | None = None,
        *,
        healthy: bool = True,
    ) -> RetryDecision:
        """Retry the attempt that just failed, or stop: the policy, the origin's health
        (no retry into an open circuit), then the budget."""
        decision = decide(
            self.policy,
            attempt=sum(self.retried.values()) + 1,
            method=self.method,
            failure=failure,
            status=status,
            idempotency_key=self.idempotency_key,  # looked up only when deciding
            replayable=bool(self.replayable),
            retry_after=retry_after,
            remaining=self.remaining(),
            random=self.random,
            retried=self.retried,
        )
        if decision.retry and self.final:
            decision = RetryDecision(stop=Stop.ATTEMPTS_EXHAUSTED)
        elif decision.retry and not healthy:
            decision = RetryDecision(stop=Stop.CIRCUIT_OPEN)
        elif decision.retry and self.budget is not None and not self.budget.withdraw():
            decision = RetryDecision(stop=Stop.BUDGET)
        if decision.retry:
            self.retried[failure] = self.retried.get(failure, 0) + 1
            self.stop = None
        else:
            self.stop = decision.stop
        return decision

    @property
    def idempotency_key(self) -> bool:
        """Whether the request carries an `Idempotency-Key` header (makes POST retryable)."""
        return self.headers is not None and "idempotency-key" in self.headers

    def deadline_exceeded(self, request: httpx.Request) -> DeadlineExceeded:
        """The httpx-level error of a call whose deadline ran out."""
        return DeadlineExceeded(f"deadline of {self.deadline:g}s exceeded", request=request)

    # Events and logs ---------------------------------------------------------

    def retry_event(
        self, delay: float, status: int | None, exc: BaseException | None
    ) -> RetryEvent:
        return RetryEvent(
            method=self.method,
            url=redact_url(self.url) if self.url is not None else "",
            attempt=self.attempts,
            max_attempts=self.policy.max_attempts,
            status=status,
            exception=exc,
            delay=delay,
            trace_id=self.trace_id,
        )

    def log_attempt(
        self,
        logger: logging.Logger,
        response: httpx.Response | None = None,
        exc: BaseException | None = None,
    ) -> None:
        """A DEBUG record per attempt: when it starts, and how it ended (`cf-http -v` shows
        them). Attributes: `phase` ("start", "response", "error"), `attempt`, `method`,
        `url`, `status`, `reason`, `http_version`, `elapsed`, `trace_id`."""
        url = redact_url(self.url) if self.url is not None else ""
        elapsed = None if response is None and exc is None else self.clock() - self.attempt_started
        status = response.status_code if response is not None else None
        extra = {
            "phase": "start" if elapsed is None else ("response" if response else "error"),
            "attempt": self.attempts,
            "method": self.method,
            "url": url,
            "status": status,
            "reason": response.reason_phrase if response is not None else None,
            "http_version": response.http_version if response is not None else None,
            "elapsed": elapsed,
            "trace_id": self.trace_id,
        }
        if elapsed is None:
            logger.debug("attempt %d: %s %s", self.attempts, self.method, url, extra=extra)
        elif response is not None:
            logger.debug(
                "attempt %d: %s %s answered %d %s in %.1f ms",
                self.attempts,
                self.method,
                url,
                response.status_code,
                response.reason_phrase,
                elapsed * 1000,
                extra=extra,
            )
        else:
            logger.debug(
                "attempt %d: %s %s failed after %.1f ms: %s",
                self.attempts,
                self.method,
                url,
                elapsed * 1000,
                type(exc).__name__,
                extra=extra,
            )

    @staticmethod
    def log_retry(logger: logging.Logger, event: RetryEvent) -> None:
        reason = (
            f"status {event.status}" if event.status is not None else type(event.exception).__name__
        )
        extra = {
            "method": event.method,
            "url": event.url,
            "attempt": event.attempt,
            "max_attempts": event.max_attempts,
            "reason": reason,
            "delay": event.delay,
            "trace_id": event.trace_id,
        }
        if event.trace_id:
            logger.warning(
                "retrying %s %s after attempt %d/%d failed (%s) in %.3fs trace_id=%s",
                event.method,
                event.url,
                event.attempt,
                event.max_attempts,
                reason,
                event.delay,
                event.trace_id,
                extra=extra,
            )
        else:
            logger.warning(
                "retrying %s %s after attempt %d/%d failed (%s) in %.3fs",
                event.method,
                event.url,
                event.attempt,
                event.max_attempts,
                reason,
                event.delay,
                extra=extra,
            )

    # Errors of the client facade ---------------------------------------------

    def _details(self, request: httpx.Request | None) -> dict[str, Any]:
        url = self.url if self.url is not None else (request.url if request else "")
        return {
            "method": self.method or (request.method if request else ""),
            "url": url,
            "attempts": self.attempts,
            "trace_id": self.trace_id,
            "retry_budget_exhausted": self.stop is Stop.BUDGET,
        }

    def status_error(self, response: httpx.Response) -> HTTPAioStatusError:
        stop = self.stop
        return HTTPAioStatusError(
            f"status {response.status_code}"
            + (f" ({stop.value})" if stop not in (None, Stop.ATTEMPTS_EXHAUSTED) else ""),
            **self._details(response.request),
            response=response,
        )


def _has_header(raw: list[tuple[bytes, bytes]], name: bytes) -> bool:
    """Whether a header is there, from the raw pairs (`name in httpx.Headers` decodes
    every header to find the encoding, each time)."""
    return any(key.lower() == name for key, _ in raw)


def has_header(message: httpx.Request | httpx.Response, name: bytes) -> bool:
    """`name` (lowercase bytes) among the message's headers: the cheap way."""
    return _has_header(message.headers.raw, name)


def _shrink(value: float | None, remaining: float) -> float:
    return max(min(value, remaining) if value is not None else remaining, 0.001)


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
_SENT = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    httpx.CloseError,
)


def classify(exc: BaseException) -> Failure | None:
    """Where a transport failure happened; None: a failure that is never retried."""
    if isinstance(exc, (CircuitOpen, DeadlineExceeded)):
        return None
    if isinstance(exc, _NOT_SENT):
        if isinstance(exc, httpx.ProxyError) and "407" in str(exc):
            return None  # the proxy refused our credentials: retrying will not help
        if _is_certificate_failure(exc):
            return None
        return Failure.NOT_SENT
    if isinstance(exc, _SENT):
        return Failure.SENT
    return None


def _is_certificate_failure(exc: BaseException) -> bool:
    """A TLS certificate that failed verification: untrusted, expired, wrong host."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text


def error_for(
    exc: httpx.HTTPError, call: Call | None, request: httpx.Request | None
) -> HTTPAioException:
    """cf's exception for an httpx error that ended a call (raised `from exc`).

    The httpx exception and everything chained behind it (aiohttp's, the request
    it carries) are redacted in place first: a printed traceback or
    `logger.exception` shows no secret.
    """
    redact_exception_chain(exc)
    details = call._details(request) if call is not None else _bare_details(request)
    stop = call.stop if call is not None else None
    if isinstance(exc, DeadlineExceeded):
        return HTTPAioTimeoutError(str(exc), **details)
    if isinstance(exc, CircuitOpen):
        return HTTPAioCircuitOpenError(
            f"circuit open for {exc.origin}; next probe in {exc.retry_after:.3g}s",
            retry_after=exc.retry_after,
            **details,
        )
    cls: type[HTTPAioException] = HTTPAioException
    if isinstance(exc, httpx.TimeoutException):
        cls = HTTPAioTimeoutError
    elif isinstance(exc, httpx.TransportError):
        cls = HTTPAioTransportError
    text = str(exc)
    reason = f"{type(exc).__name__}: {redact_text(text)}" if text else type(exc).__name__
    if stop not in (None, Stop.ATTEMPTS_EXHAUSTED, Stop.NOT_RETRYABLE):
        reason += f" ({stop.value})"
    return cls(reason, **details)


def _bare_details(request: httpx.Request | None) -> dict[str, Any]:
    if request is None:
        return {}
    return {"method": request.method, "url": request.url, "attempts": 1}
