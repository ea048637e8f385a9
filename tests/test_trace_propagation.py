"""A propagating service: incoming trace context -> outgoing calls through a pool.

The service is an ASGI app under uvicorn that reads `TraceInfo.from_headers`
from its request and calls the echo endpoint of the `server` fixture through
an `HTTPAio` pool (async mode) or an `HTTP` pool in a worker thread (sync mode).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cf.infrastructure.http import HTTP
from cf.infrastructure.http_aio import HTTPAio
from cf.infrastructure.tracer import TraceInfo
from tests.servers._threaded import ServerThread, uvicorn_serve
from tests.servers.app import AppServer

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


class Service:
    """ASGI app: continue the caller's trace (or start one) on an onward call."""

    def __init__(self, downstream: str, mode: str) -> None:
        self.downstream = downstream
        self.mode = mode
        self.aio_pool = HTTPAio.create_pool(4) if mode == "async" else None
        self.sync_pool = HTTP.create_pool(4) if mode == "sync" else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
        trace = TraceInfo.from_headers(headers) or TraceInfo.create_new()
        url = f"{self.downstream}/fail/1?key={scope['path'].strip('/')}"
        if self.aio_pool is not None:
            async with self.aio_pool.item() as client:
                await client.get(url, trace=trace, backoff_base=0.001)
        else:
            assert self.sync_pool is not None
            pool = self.sync_pool

            def call() -> None:
                with pool.item() as client:
                    client.get(url, trace=trace, backoff_base=0.001)

            await asyncio.to_thread(call)
        body = json.dumps({"trace_id": trace.trace_id}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    def close(self) -> None:
        if self.sync_pool is not None:
            self.sync_pool.close()


@pytest.fixture(params=["async", "sync"])
def service(request: pytest.FixtureRequest, server: AppServer) -> Iterator[str]:
    thread = ServerThread(f"cf-test-service-{request.param}")
    app = Service(server.url, request.param)
    thread.start(uvicorn_serve(app))
    try:
        yield thread.url
    finally:
        thread.stop()
        app.close()


def downstream_parents(server: AppServer, key: str) -> list[list[str]]:
    return [r.header("traceparent").split("-") for r in server.requests(key)]  # type: ignore[union-attr]


def test_service_keeps_incoming_trace_and_tracestate(service: str, server: AppServer) -> None:
    headers = {"traceparent": INCOMING, "tracestate": "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"}
    response = httpx.get(f"{service}/keep", headers=headers)
    assert response.json()["trace_id"] == TRACE_ID
    seen = server.requests("keep")
    assert len(seen) == 2  # the onward call was retried once
    parents = downstream_parents(server, "keep")
    assert {p[1] for p in parents} == {TRACE_ID}
    assert len({p[2] for p in parents} | {"00f067aa0ba902b7"}) == 3  # fresh parent ids
    assert all(p[3] == "01" for p in parents)
    assert {r.header("tracestate") for r in seen} == {"congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}


@pytest.mark.parametrize(
    "traceparent",
    [
        pytest.param(f"00-{'0' * 32}-00f067aa0ba902b7-01", id="zero-trace-id"),
        pytest.param(INCOMING.upper(), id="uppercase"),
        pytest.param("ff" + INCOMING[2:], id="version-ff"),
        pytest.param("garbage", id="garbage"),
    ],
)
def test_service_restarts_an_invalid_trace(
    service: str, server: AppServer, traceparent: str
) -> None:
    response = httpx.get(
        f"{service}/restart", headers={"traceparent": traceparent, "tracestate": "a=b"}
    )
    new_id = response.json()["trace_id"]
    assert new_id != TRACE_ID and len(new_id) == 32
    parents = downstream_parents(server, "restart")
    assert {p[1] for p in parents} == {new_id}
    assert all(r.header("tracestate") is None for r in server.requests("restart"))
