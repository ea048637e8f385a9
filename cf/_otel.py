"""OpenTelemetry: one CLIENT span per attempt, the HTTP client metrics, cf's own counters.

Everything here costs nothing unless the application uses OpenTelemetry: the
API is looked up in `sys.modules` (cf never imports it), and spans and
metrics are made only when a real (SDK) tracer or meter provider is set, so
the no-op API is not even called. Then, following OpenTelemetry's HTTP client
semantic conventions:

- each attempt (first tries, retries, OAuth replays, hedges, redirect hops) is
  a CLIENT span named after the method, a child of the caller's active span or
  of the call's `trace=`, with `http.request.method`, `url.full` (redacted by
  cf's rules), `server.address`, `server.port`, `network.protocol.version`,
  `http.response.status_code`, `error.type` and, after the first attempt of
  a call, `http.request.resend_count`; the `traceparent` sent is that span's;
- retries, retry-budget refusals and circuit decisions are span events;
- metrics: `http.client.request.duration` (per attempt, seconds, the
  conventions' buckets), `http.client.active_requests`, and
  `cf.http.client.retries` (by reason), `cf.http.client.retry_budget.refusals`,
  `cf.http.client.circuit.changes`, `cf.oauth.token_requests` (by outcome) and
  `cf.oauth.token_request.duration`.

OpenTelemetry's own httpx (and aiohttp) instrumentation is suppressed for the
attempts cf sends, so that no attempt is counted twice: cf's spans are the
ones a cf call shows, in both modes and on every engine.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from cf._redact import redact_url

if TYPE_CHECKING:
    from cf._call import Call

__all__ = [
    "Attempt",
    "attempt",
    "circuit_changed",
    "event",
    "suppressed",
    "token_request",
]

_SCOPE = "cf-http"
# The HTTP client semantic conventions' advice for http.client.request.duration.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_OTHER_METHOD = "_OTHER"
_KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)


class _Instruments:
    """The tracer and the instruments of one (tracer provider, meter provider) pair."""

    def __init__(self, trace: Any, metrics: Any) -> None:
        self.tracer_provider = trace.get_tracer_provider() if trace else None
        self.meter_provider = metrics.get_meter_provider() if metrics else None
        self.tracer = None
        if self.tracer_provider is not None and _real(self.tracer_provider):
            self.tracer = self.tracer_provider.get_tracer(_SCOPE, _version())
        self.duration = self.active = self.retries = self.refusals = None
        self.circuits = self.tokens = self.token_duration = None
        if self.meter_provider is not None and _real(self.meter_provider):
            meter = self.meter_provider.get_meter(_SCOPE, _version())
            self.duration = meter.create_histogram(
                "http.client.request.duration",
                unit="s",
                description="Duration of HTTP client requests.",
                explicit_bucket_boundaries_advisory=list(_BUCKETS),
            )
            self.active = meter.create_up_down_counter(
                "http.client.active_requests",
                unit="{request}",
                description="Number of active HTTP requests.",
            )
            self.retries = meter.create_counter(
                "cf.http.client.retries",
                unit="{retry}",
                description="Attempts retried, by reason.",
            )
            self.refusals = meter.create_counter(
                "cf.http.client.retry_budget.refusals",
                unit="{retry}",
                description="Retries the retry budget refused.",
            )
            self.circuits = meter.create_counter(
                "cf.http.client.circuit.changes",
                unit="{change}",
                description="Circuit breaker state changes.",
            )
            self.tokens = meter.create_counter(
                "cf.oauth.token_requests",
                unit="{request}",
                description="OAuth token requests, by outcome.",
            )
            self.token_duration = meter.create_histogram(
                "cf.oauth.token_request.duration",
                unit="s",
                description="Duration of OAuth token requests, retries included.",
                explicit_bucket_boundaries_advisory=list(_BUCKETS),
            )


_cache: list[_Instruments] = []


def _real(provider: Any) -> bool:
    """A provider of an SDK, not the API's proxy or no-op one."""
    name = type(provider).__name__
    return not (name.startswith(("Proxy", "_Proxy", "NoOp", "_NoOp")))


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("cf-http")
    except Exception:
        return ""


def _instruments() -> _Instruments | None:
    """The current providers' instruments, or None when OpenTelemetry is not in use."""
    trace = sys.modules.get("opentelemetry.trace")
    metrics = sys.modules.get("opentelemetry.metrics")
    if trace is None and metrics is None:
        return None
    tracer_provider = trace.get_tracer_provider() if trace else None
    meter_provider = metrics.get_meter_provider() if metrics else None
    if _cache:
        cached = _cache[0]
        if cached.tracer_provider is tracer_provider and cached.meter_provider is meter_provider:
            return cached if (cached.tracer or cached.duration) else None
    instruments = _Instruments(trace, metrics)
    _cache[:] = [instruments]
    return instruments if (instruments.tracer or instruments.duration) else None


def _method(method: str) -> str:
    return method if method in _KNOWN_METHODS else _OTHER_METHOD


def _server(url: httpx.URL) -> tuple[str, int]:
    return url.host, url.port or (443 if url.scheme == "https" else 80)


class Attempt:
    """One attempt's span and metric attributes, ended once with its outcome."""

    __slots__ = ("_active", "_attributes", "_instruments", "_span", "_started", "ended")

    def __init__(self, instruments: _Instruments, span: Any, attributes: dict[str, Any]) -> None:
        self._instruments = instruments
        self._span = span
        self._attributes = attributes
        self._started = _now()
        self.ended = False
        self._active = {
            k: attributes[k] for k in ("http.request.method", "server.address", "server.port")
        }
        if instruments.active is not None:
            instruments.active.add(1, self._active)

    def event(self, name: str, attributes: Mapping[str, Any]) -> None:
        if self._span is not None and not self.ended:
            self._span.add_event(name, dict(attributes))

    def end(
        self,
        response: httpx.Response | None = None,
        exc: BaseException | None = None,
        *,
        counted: bool = True,
    ) -> None:
        """The attempt's outcome: a response, a failure, or neither (`counted=False`:
        cancelled, e.g. a losing hedge: its duration is not a request's)."""
        if self.ended:
            return
        self.ended = True
        attributes = dict(self._attributes)
        error: str | None = None
        if response is not None:
            attributes["http.response.status_code"] = response.status_code
            attributes["network.protocol.version"] = response.http_version.removeprefix("HTTP/")
            if response.status_code >= 400:
                error = str(response.status_code)
        elif exc is not None:
            error = type(exc).__qualname__
        if error is not None:
            attributes["error.type"] = error
        instruments = self._instruments
        if instruments.active is not None:
            instruments.active.add(-1, self._active)
        if counted and instruments.duration is not None:
            metric = {k: v for k, v in attributes.items() if k not in ("url.full",)}
            metric.pop("http.request.resend_count", None)
            instruments.duration.record(_now() - self._started, metric)
        span = self._span
        if span is None:
            return
        for name, value in attributes.items():
            span.set_attribute(name, value)
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR))
        span.end()


def _now() -> float:
    import time

    return time.perf_counter()


def attempt(call: Call, request: httpx.Request) -> Attempt | None:
    """Start the span (and the metrics) of the attempt `call.begin_attempt` just began,
    and send its context as the request's `traceparent`; None when OpenTelemetry is
    not in use."""
    instruments = _instruments()
    if instruments is None:
        return None
    url = request.url
    host, port = _server(url)
    attributes: dict[str, Any] = {
        "http.request.method": _method(request.method),
        "server.address": host,
        "server.port": port,
        "url.full": redact_url(url),
    }
    if request.method not in _KNOWN_METHODS:
        attributes["http.request.method_original"] = request.method
    if call.attempts > 1:
        attributes["http.request.resend_count"] = call.attempts - 1
    span = None
    if instruments.tracer is not None:
        from opentelemetry import propagate
        from opentelemetry import trace as otel_trace

        parent = _parent_context(call)
        span = instruments.tracer.start_span(
            _method(request.method) if request.method in _KNOWN_METHODS else "HTTP",
            context=parent,
            kind=otel_trace.SpanKind.CLIENT,
            attributes=attributes,
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=otel_trace.set_span_in_context(span, parent))
        for name, value in carrier.items():
            request.headers[name] = value
        call.trace_id = format(span.get_span_context().trace_id, "032x")
    return Attempt(instruments, span, attributes)


def _parent_context(call: Call) -> Any:
    """The caller's active context, or the call's `trace=` as a remote parent."""
    from opentelemetry import trace as otel_trace

    trace = call.trace
    if trace is None:
        return None  # the current context
    state = otel_trace.TraceState()
    if trace.tracestate:
        pairs = []
        for member in trace.tracestate.split(","):
            key, _, value = member.strip().partition("=")
            if key and value:
                pairs.append((key, value))
        try:
            state = otel_trace.TraceState(pairs)
        except Exception:
            state = otel_trace.TraceState()
    parent = otel_trace.SpanContext(
        trace_id=int(trace.trace_id, 16),
        span_id=int(trace.span_id, 16),
        is_remote=True,
        trace_flags=otel_trace.TraceFlags(trace.flags & 0xFF),
        trace_state=state,
    )
    return otel_trace.set_span_in_context(otel_trace.NonRecordingSpan(parent))


def event(
    span: Attempt | None,
    name: str,
    attributes: Mapping[str, Any],
    *,
    metric: str | None = None,
    metric_attributes: Mapping[str, Any] | None = None,
) -> None:
    """A span event on the attempt's span (or the caller's current span), and a count."""
    if span is not None:
        span.event(name, attributes)
    else:
        trace = sys.modules.get("opentelemetry.trace")
        if trace is not None:
            current = trace.get_current_span()
            if current.is_recording():
                current.add_event(name, dict(attributes))
    if metric is None:
        return
    instruments = _instruments()
    if instruments is None:
        return
    counter = getattr(instruments, metric)
    if counter is not None:
        counter.add(1, dict(metric_attributes or {}))


def circuit_changed(origin: str, old: str, new: str) -> None:
    """A circuit breaker state change: a span event and a count."""
    event(
        None,
        "cf.circuit.change",
        {"cf.circuit.origin": origin, "cf.circuit.old_state": old, "cf.circuit.new_state": new},
        metric="circuits",
        metric_attributes={"cf.circuit.origin": origin, "cf.circuit.state": new},
    )


def token_request(outcome: str, seconds: float, token_url: str) -> None:
    """An OAuth token request ended: `outcome` is "success" or the failure's kind."""
    instruments = _instruments()
    if instruments is None:
        return
    attributes = {"cf.oauth.outcome": outcome, "url.full": token_url}
    if instruments.tokens is not None:
        instruments.tokens.add(1, attributes)
    if instruments.token_duration is not None:
        instruments.token_duration.record(seconds, attributes)


_NOTHING = contextlib.nullcontext()


def suppressed() -> contextlib.AbstractContextManager[Any]:
    """OpenTelemetry's own HTTP instrumentation (httpx, aiohttp) off for what cf sends:
    cf's attempt span is the one span of an attempt (nothing to do, and no cost, when
    no instrumentation is loaded)."""
    utils = sys.modules.get("opentelemetry.instrumentation.utils")
    if utils is None:
        return _NOTHING
    manager: contextlib.AbstractContextManager[Any] = utils.suppress_http_instrumentation()
    return manager
