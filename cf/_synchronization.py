"""Concurrency primitives in matching async/sync pairs.

Hand-written, as httpcore's `_synchronization.py`: `scripts/unasync.py`
renames `AsyncLock` to `Lock`, `async_sleep` to `sleep` and so on, so the
generated sync code needs no other change.
"""

from __future__ import annotations

import asyncio
import threading
import time
from types import TracebackType

__all__ = ["AsyncEvent", "AsyncLock", "Event", "Lock", "async_sleep", "sleep"]


async def async_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


class AsyncLock:
    """An asyncio lock; may be created outside a running loop."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()


class Lock:
    """A threading lock with the same shape as `AsyncLock`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()


class AsyncEvent:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


class Event:
    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self) -> None:
        self._event.wait()
