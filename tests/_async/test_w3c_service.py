"""W3C Trace Context through a small propagating service built on cf's public API.

Each case of the specification's table (`tests/test_trace.py::W3C_CASES`, every
MUST and SHOULD of traceparent and tracestate, and the validation harness's
cases) goes as incoming headers through a real server (so the service sees them
as a server hands them over: names as sent, repeats kept); the service reads
them with `TraceInfo.from_headers`, starts a new trace when there is none, and
calls a downstream echo with `trace=`. What the downstream receives is checked
against what the specification asks for.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cf.infrastructure.http_aio import HTTPAio
from cf.infrastructure.tracer import TraceInfo
from tests.servers.app import AppServer
from tests.test_trace import W3C_CASES, Continue, Restart, check_w3c


async def service(client: HTTPAio, incoming: list[tuple[str, str]], downstream: str) -> None:
    """The propagating service: continue the caller's trace (or start one) downstream."""
    trace = TraceInfo.from_headers(incoming) or TraceInfo.create_new()
    await client.get(downstream, trace=trace)


def _travels(param: object) -> bool:
    """Whether a case's headers can be sent over HTTP at all: values without line
    breaks, in ASCII (the cases of raw values with those are tested directly)."""
    headers = param.values[0]  # type: ignore[attr-defined]
    return all(v.isascii() and "\n" not in v and "\r" not in v for _, v in headers)


def _on_the_wire(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # A server strips a field value's surrounding whitespace (RFC 9110 5.5); so do we,
    # since httpx (h11) refuses to send it.
    return [(name, value.strip(" \t")) for name, value in headers]


@pytest.fixture(scope="module")
def raw() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.mark.parametrize(("headers", "expected"), [c for c in W3C_CASES if _travels(c)])
async def test_w3c_through_a_service(
    headers: list[tuple[str, str]],
    expected: Continue | Restart,
    server: AppServer,
    raw: httpx.Client,
) -> None:
    # The incoming request, as a real server received it.
    echoed = raw.get(f"{server.url}/echo?key=incoming", headers=_on_the_wire(headers)).json()[
        "headers"
    ]
    incoming = [(name, value) for name, value in echoed]
    async with HTTPAio.create() as client:
        await service(client, incoming, f"{server.url}/echo?key=downstream")
    received = server.requests("downstream")[0]
    sent = {
        name: value
        for name in ("traceparent", "tracestate")
        if (value := received.header(name)) is not None
    }
    assert len(received.header_values("traceparent")) == 1
    check_w3c(headers, TraceInfo.from_headers(incoming), sent, expected)
