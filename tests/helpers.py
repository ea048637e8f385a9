"""Helpers shared by the async tests and their generated sync twins."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


async def run_concurrently(*calls: Callable[[], Awaitable[Any]]) -> list[Any]:
    """Run the calls as concurrent tasks; exceptions are returned, not raised."""
    return await asyncio.gather(*(call() for call in calls), return_exceptions=True)


def run_concurrently_in_threads(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in as many threads; exceptions are returned, not raised."""

    def run(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


class Sleeps(list[float]):
    """An injected sleep that records the delays instead of sleeping."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class SyncSleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)
