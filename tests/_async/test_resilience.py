"""The circuit breaker and hedging against real servers (both modes; hedging: async)."""

from __future__ import annotations

import logging
import time

import httpx
import pytest

from cf import _synchronization
from cf.infrastructure.http_aio import (
    CircuitBreaker,
    Hedge,
    HTTPAio,
    HTTPAioCircuitOpenError,
    HTTPAioStatusError,
)
from tests.helpers import Sleeps
from tests.servers.app import AppServer


class Clock:
    """An injected monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


BREAKER = CircuitBreaker(min_calls=4, failure_ratio=0.5, window=10.0, break_duration=2.0)


async def test_circuit_opens_then_refuses_without_sending(
    server: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    changes: list[tuple[str, str, str]] = []
    clock = Clock()
    url = f"{server.url}/status/503?key=down"
    async with HTTPAio.create(
        circuit_breaker=BREAKER,
        on_circuit_change=lambda *change: changes.append(change),
        retries=0,
        clock=clock,
    ) as client:
        with caplog.at_level(logging.WARNING, logger="cf.infrastructure.http_aio"):
            for _ in range(4):
                with pytest.raises(HTTPAioStatusError):
                    await client.get(url)
            assert server.hits("down") == 4
            with pytest.raises(HTTPAioCircuitOpenError) as info:
                await client.get(url)
    assert server.hits("down") == 4  # refused at once: nothing sent
    error = info.value
    assert error.attempts == 0 and 0 < error.retry_after <= 2.0
    assert isinstance(error.__cause__, httpx.ConnectError)
    origin = "http://127.0.0.1:" + server.url.rsplit(":", 1)[1]
    assert changes == [(origin, "closed", "open")]
    assert any("circuit for" in r.getMessage() and "open" in r.getMessage() for r in caplog.records)


async def test_probe_closes_the_circuit_once_the_origin_heals(server: AppServer) -> None:
    changes: list[tuple[str, str, str]] = []
    clock = Clock()
    url = f"{server.url}/fail/4?key=heal"  # 503 four times, then 200
    async with HTTPAio.create(
        circuit_breaker=BREAKER,
        on_circuit_change=lambda *change: changes.append(change),
        retries=0,
        clock=clock,
    ) as client:
        for _ in range(4):
            with pytest.raises(HTTPAioStatusError):
                await client.get(url)
        with pytest.raises(HTTPAioCircuitOpenError):
            await client.get(url)
        clock.advance(2.5)  # the break is over: the next call is the probe
        response = await client.get(url)
        assert response.status_code == 200
        assert (await client.get(url)).status_code == 200
    assert server.hits("heal") == 6
    assert [new for _, _, new in changes] == ["open", "half_open", "closed"]


async def test_another_origin_is_unaffected(server: AppServer, refused_url: str) -> None:
    clock = Clock()
    async with HTTPAio.create(circuit_breaker=BREAKER, retries=0, clock=clock) as client:
        for _ in range(4):
            with pytest.raises(Exception):  # noqa: B017 - connection refused, any cf error
                await client.get(f"{refused_url}/x")
        with pytest.raises(HTTPAioCircuitOpenError):
            await client.get(f"{refused_url}/x")
        assert (await client.get(f"{server.url}/echo?key=other")).status_code == 200


async def test_no_retries_into_an_open_circuit(server: AppServer) -> None:
    clock = Clock()
    breaker = CircuitBreaker(min_calls=2, failure_ratio=0.5, window=10.0, break_duration=5.0)
    async with HTTPAio.create(
        circuit_breaker=breaker, retries=5, sleep=Sleeps(), clock=clock
    ) as client:
        with pytest.raises(HTTPAioStatusError) as info:
            await client.get(f"{server.url}/status/503?key=stop")
    # Two failed attempts open the circuit: the loop stops there, and says why.
    assert server.hits("stop") == 2 and info.value.attempts == 2
    assert "circuit" in str(info.value)


async def test_breaker_settings_are_checked_at_creation() -> None:
    with pytest.raises(TypeError):
        HTTPAio.create(circuit_breaker="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        CircuitBreaker(failure_ratio=2.0)
    async with HTTPAio.create(circuit_breaker=True) as client:
        with pytest.raises(TypeError, match="circuit_breaker"):
            await client.get("http://127.0.0.1:1/", circuit_breaker=True)  # type: ignore[call-arg]


async def test_hedge_in_this_mode(server: AppServer) -> None:
    hedge = Hedge(delay=0.05)
    if not _synchronization.async_can_hedge():
        # The sync client refuses hedge= before anything is sent (README).
        with pytest.raises(TypeError, match="async client"):
            HTTPAio.create(hedge=hedge)
        async with HTTPAio.create() as client:
            with pytest.raises(TypeError, match="async client"):
                await client.get(f"{server.url}/echo?key=refused", hedge=hedge)
        assert server.hits("refused") == 0
        return
    started = time.monotonic()
    async with HTTPAio.create(hedge=hedge) as client:
        response = await client.get(f"{server.url}/stall-first?key=hedged&seconds=5")
    assert response.status_code == 200 and response.json() == {"hit": 2}
    assert time.monotonic() - started < 2.5  # the hedge answered; the stall was cut short
    assert server.hits("hedged") == 2
