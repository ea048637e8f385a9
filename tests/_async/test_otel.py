"""OpenTelemetry spans and metrics against real servers, with the SDK's in-memory
exporter and reader (both modes; every engine)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import opentelemetry.metrics
import opentelemetry.trace
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from cf.infrastructure.http_aio import HTTPAio, HTTPAioException, OAuthHTTPAio
from cf.infrastructure.tracer import TraceInfo
from tests.helpers import Sleeps
from tests.servers.app import AppServer
from tests.servers.oauth import OAuthServer


class Otel:
    """An SDK tracer and meter provider, in memory, seen by cf as the global ones."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self, kind: SpanKind = SpanKind.CLIENT) -> list[ReadableSpan]:
        return [s for s in self.exporter.get_finished_spans() if s.kind is kind]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found


@pytest.fixture
def otel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Otel]:
    state = Otel()
    # The global providers can be set once per process: cf reads them through these.
    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", lambda: state.tracer_provider)
    monkeypatch.setattr(opentelemetry.metrics, "get_meter_provider", lambda: state.meter_provider)
    yield state
    state.tracer_provider.shutdown()
    state.meter_provider.shutdown()


def _parent_ids(server: AppServer, key: str) -> list[str]:
    return [(r.header("traceparent") or "").split("-")[2] for r in server.requests(key)]


async def test_a_call_retried_twice_is_three_attempt_spans(otel: Otel, server: AppServer) -> None:
    tracer = otel.tracer_provider.get_tracer("test")
    async with HTTPAio.create(sleep=Sleeps()) as client:
        with tracer.start_as_current_span("caller") as caller:
            response = await client.get(f"{server.url}/fail/2?key=retried&access_token=s3cr3t")
    assert response.status_code == 200
    spans = otel.spans()
    assert len(spans) == 3
    context = caller.get_span_context()
    for span in spans:
        assert span.name == "GET" and span.context.trace_id == context.trace_id
        assert span.parent is not None and span.parent.span_id == context.span_id
        assert span.attributes["http.request.method"] == "GET"
        assert span.attributes["server.address"] == "127.0.0.1"
        assert "s3cr3t" not in span.attributes["url.full"]
        assert "[redacted]" in span.attributes["url.full"]
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [None, 1, 2]
    assert [s.attributes["http.response.status_code"] for s in spans] == [503, 503, 200]
    assert [s.attributes.get("error.type") for s in spans] == ["503", "503", None]
    assert [s.status.status_code for s in spans] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    assert [[e.name for e in s.events] for s in spans] == [["cf.retry"], ["cf.retry"], []]
    # The traceparent each attempt sent is its span's.
    assert _parent_ids(server, "retried") == [format(s.context.span_id, "016x") for s in spans]
    durations = otel.points("http.client.request.duration")
    assert sum(p.count for p in durations) == 3
    assert list(durations[0].explicit_bounds)[:3] == [0.005, 0.01, 0.025]
    retries = otel.points("cf.http.client.retries")
    assert sum(p.value for p in retries) == 2
    assert {p.attributes["cf.retry.reason"] for p in retries} == {"503"}
    assert sum(p.value for p in otel.points("http.client.active_requests")) == 0


async def test_trace_given_keeps_its_trace_id(otel: Otel, server: AppServer) -> None:
    trace = TraceInfo.create_new()
    async with HTTPAio.create() as client:
        await client.get(f"{server.url}/echo?key=given", trace=trace)
    (span,) = otel.spans()
    assert format(span.context.trace_id, "032x") == trace.trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == trace.span_id
    sent = server.requests("given")[0].header("traceparent") or ""
    assert sent.split("-")[1] == trace.trace_id
    assert sent.split("-")[2] == format(span.context.span_id, "016x")


async def test_a_redirect_is_two_attempts(otel: Otel, server: AppServer) -> None:
    async with HTTPAio.create(follow_redirects=True) as client:
        await client.get(f"{server.url}/redirect?to={server.url}/echo&key=hop")
    spans = otel.spans()
    assert [s.attributes["http.response.status_code"] for s in spans] == [302, 200]
    assert [s.attributes.get("http.request.resend_count") for s in spans] == [None, 1]
    assert "error.type" not in spans[0].attributes


async def test_a_failed_connect(otel: Otel, refused_url: str) -> None:
    async with HTTPAio.create(retries=0) as client:
        with pytest.raises(HTTPAioException):
            await client.get(f"{refused_url}/x")
    (span,) = otel.spans()
    assert span.attributes["error.type"] == "ConnectError"
    assert span.status.status_code is StatusCode.ERROR
    (point,) = otel.points("http.client.request.duration")
    assert point.attributes["error.type"] == "ConnectError" and point.count == 1


async def test_a_401_replay_and_the_token_requests(otel: Otel, oauth_server: OAuthServer) -> None:
    async with OAuthHTTPAio.create(
        client_id=oauth_server.client_id,
        client_secret=oauth_server.client_secret,
        authorize_url=oauth_server.token_url,
    ) as client:
        await client.get(f"{oauth_server.url}/api/first")
        oauth_server.revoke_current()
        response = await client.get(f"{oauth_server.url}/api/again")
    assert response.status_code == 200
    api = [s for s in otel.spans() if "/api/again" in str(s.attributes["url.full"])]
    assert [s.attributes["http.response.status_code"] for s in api] == [401, 200]
    assert [s.attributes.get("http.request.resend_count") for s in api] == [None, 1]
    tokens = [s for s in otel.spans() if "/token" in str(s.attributes["url.full"])]
    assert len(tokens) == 2 and all(s.name == "POST" for s in tokens)
    outcomes = otel.points("cf.oauth.token_requests")
    assert sum(p.value for p in outcomes) == 2
    assert {p.attributes["cf.oauth.outcome"] for p in outcomes} == {"success"}
    assert sum(p.count for p in otel.points("cf.oauth.token_request.duration")) == 2


@pytest.mark.parametrize("engine", ["default", "httpx"])
async def test_with_the_httpx_instrumentation_on_nothing_counts_twice(
    otel: Otel, server: AppServer, engine: str
) -> None:
    instrumentor = HTTPXClientInstrumentor()
    instrumentor.instrument(
        tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    try:
        options: dict[str, Any] = {} if engine == "default" else {"engine": "httpx"}
        async with HTTPAio.create(sleep=Sleeps(), **options) as client:
            response = await client.get(f"{server.url}/fail/1?key=twice-{engine}")
        async with httpx.AsyncClient() as plain:  # the instrumentation still sees others
            await plain.get(f"{server.url}/echo?key=plain-{engine}")
    finally:
        instrumentor.uninstrument()
    assert response.status_code == 200
    ours = [s for s in otel.spans() if s.instrumentation_scope.name == "cf-http"]
    theirs = [s for s in otel.spans() if s.instrumentation_scope.name != "cf-http"]
    assert len(ours) == 2  # one per attempt, none from the instrumentation for them
    assert len(theirs) == 1  # the plain client's request only
    assert "plain" in str(
        theirs[0].attributes.get("url.full", theirs[0].attributes.get("http.url"))
    )
    # The instrumentation records the old `http.client.duration`: these points are cf's.
    assert sum(p.count for p in otel.points("http.client.request.duration")) == 2


async def test_without_an_sdk_trace_headers_are_still_sent(server: AppServer) -> None:
    trace = TraceInfo.create_new()
    async with HTTPAio.create() as client:
        await client.get(f"{server.url}/echo?key=nosdk", trace=trace)
        await client.get(f"{server.url}/echo?key=nosdk-plain")
    assert (server.requests("nosdk")[0].header("traceparent") or "").split("-")[1] == trace.trace_id
    assert server.requests("nosdk-plain")[0].header("traceparent") is None
