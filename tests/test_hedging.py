"""Hedged requests against a real server (async only: the sync client refuses hedge=)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from cf.infrastructure.http_aio import Hedge, HTTPAio, RetryBudget
from cf.infrastructure.tracer import TraceInfo
from tests.servers.app import AppServer

pytestmark = pytest.mark.timeout(30)
FAST = Hedge(delay=0.05)


async def test_the_hedge_wins_with_the_same_trace_and_its_own_parent_id(
    server: AppServer,
) -> None:
    trace = TraceInfo.create_new()
    async with HTTPAio.create(hedge=FAST) as client:
        response = await client.get(f"{server.url}/stall-first?key=tr&seconds=5", trace=trace)
    assert response.json() == {"hit": 2}
    parents = [r.header("traceparent") for r in server.requests("tr")]
    assert len(parents) == 2 and all(p is not None for p in parents)
    assert {p.split("-")[1] for p in parents if p} == {trace.trace_id}
    assert len({p.split("-")[2] for p in parents if p}) == 2


async def test_a_post_is_never_hedged(server: AppServer) -> None:
    started = time.monotonic()
    async with HTTPAio.create(hedge=FAST) as client:
        response = await client.post(f"{server.url}/stall-first?key=post&seconds=0.4", json={})
    assert response.status_code == 200 and server.hits("post") == 1
    assert time.monotonic() - started >= 0.4


async def test_a_post_with_an_idempotency_key_is_hedged(server: AppServer) -> None:
    async with HTTPAio.create(hedge=FAST) as client:
        response = await client.post(
            f"{server.url}/stall-first?key=keyed&seconds=5",
            json={},
            headers={"Idempotency-Key": "order-1"},
        )
    assert response.json() == {"hit": 2} and server.hits("keyed") == 2


async def test_hedges_draw_on_the_retry_budget(server: AppServer) -> None:
    empty = RetryBudget(ratio=0.0, min_per_second=0.0)
    started = time.monotonic()
    async with HTTPAio.create(hedge=FAST, retry_budget=empty) as client:
        response = await client.get(f"{server.url}/stall-first?key=budget&seconds=0.4")
    assert response.status_code == 200 and server.hits("budget") == 1  # no hedge paid
    assert time.monotonic() - started >= 0.4


async def test_losers_leave_no_pool_slot_behind(server: AppServer) -> None:
    pool = HTTPAio.create_pool(2, hedge=FAST, timeout=httpx.Timeout(5.0, pool=1.0))
    async with pool, pool.item() as client:
        for i in range(3):  # each call: a stalled loser, cancelled, and a winner
            response = await client.get(f"{server.url}/stall-first?key=slot{i}&seconds=5")
            assert response.status_code == 200
        answers = await asyncio.gather(
            *(client.get(f"{server.url}/echo?key=after") for _ in range(4))
        )
    assert [a.status_code for a in answers] == [200] * 4


async def test_a_cancelled_hedged_call_leaves_no_pool_slot_behind(server: AppServer) -> None:
    pool = HTTPAio.create_pool(2, hedge=FAST, timeout=httpx.Timeout(5.0, pool=1.0))
    async with pool, pool.item() as client:
        task = asyncio.ensure_future(client.get(f"{server.url}/stall?key=cancel&seconds=5"))
        await asyncio.sleep(0.3)  # the attempt and its hedge are both in flight
        assert server.hits("cancel") == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        answers = await asyncio.gather(
            *(client.get(f"{server.url}/echo?key=after-cancel") for _ in range(2))
        )
    assert [a.status_code for a in answers] == [200, 200]


async def test_p95_delay_falls_back_to_one_second_while_little_is_known(
    server: AppServer,
) -> None:
    async with HTTPAio.create(hedge=Hedge(delay="p95")) as client:
        started = time.monotonic()
        response = await client.get(f"{server.url}/stall-first?key=p95&seconds=5")
        took = time.monotonic() - started
    assert response.json() == {"hit": 2}
    assert 0.9 <= took < 3.0  # fewer than 20 latencies known: the hedge waits 1 s
