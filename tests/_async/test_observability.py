"""Trace propagation from OpenTelemetry, and no secret in any log record (both modes)."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from cf.infrastructure.http_aio import HTTPAio, HTTPAioException
from cf.infrastructure.tracer import TraceInfo
from tests.helpers import Sleeps
from tests.servers.app import AppServer

SECRETS = ["hunter2pw", "sk-bearer-7f3a9", "tok-query-55aa", "pw-query-9911"]


async def test_active_otel_span_is_propagated(server: AppServer) -> None:
    tracer = TracerProvider().get_tracer("cf-tests")
    async with HTTPAio.create(sleep=Sleeps()) as client:
        with tracer.start_as_current_span("outgoing") as span:
            await client.get(f"{server.url}/fail/1?key=otel")
        context = span.get_span_context()
        await client.get(f"{server.url}/echo?key=plain")
    parents = [r.header("traceparent") for r in server.requests("otel")]
    assert len(parents) == 2
    assert all(p and p.split("-")[1] == format(context.trace_id, "032x") for p in parents)
    assert server.requests("plain")[0].header("traceparent") is None


async def test_explicit_trace_wins_over_otel(server: AppServer) -> None:
    tracer = TracerProvider().get_tracer("cf-tests")
    trace = TraceInfo.create_new()
    async with HTTPAio.create() as client:
        with tracer.start_as_current_span("outgoing"):
            await client.get(f"{server.url}/echo?key=explicit", trace=trace)
    parent = server.requests("explicit")[0].header("traceparent")
    assert parent is not None and parent.split("-")[1] == trace.trace_id


async def test_no_secret_in_any_record(
    server: AppServer, refused_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    host = server.url.replace("http://", f"http://user:{SECRETS[0]}@")
    query = f"access_token={SECRETS[2]}&password={SECRETS[3]}&page=1"
    headers = {"Authorization": f"Bearer {SECRETS[1]}"}
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        async with HTTPAio.create(sleep=Sleeps(), headers=headers) as client:
            await client.get(f"{host}/fail/1?key=leak&{query}")
            for url in (f"{host}/status/503?{query}", f"{refused_url}/x?{query}"):
                with pytest.raises(HTTPAioException) as info:
                    await client.get(url)
                texts += [str(info.value), repr(info.value), info.value.url]
    assert any(r.name.startswith("cf.") for r in caplog.records)  # retries were logged
    texts += [caplog.text] + [r.getMessage() for r in caplog.records]
    texts += [repr(r.args) for r in caplog.records] + [repr(r.__dict__) for r in caplog.records]
    for secret in SECRETS:
        assert not any(secret in text for text in texts), secret
