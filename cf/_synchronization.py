"""Concurrency primitives in matching async/sync pairs.

Hand-written, as httpcore's `_synchronization.py`: `scripts/unasync.py`
renames `AsyncLock` to `Lock`, `async_sleep` to `sleep` and so on, so the
generated sync code needs no other change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar

# asyncio is imported where it is used: the sync client never needs it, and
# `import cf.infrastructure.http_aio` stays quick (see benchmarks/README.md).
if TYPE_CHECKING:
    import asyncio

__all__ = [
    "AsyncDeadline",
    "async_race",
    "race",
    "AsyncEvent",
    "AsyncLock",
    "AsyncSingleFlight",
    "Deadline",
    "Event",
    "Lock",
    "SingleFlight",
    "async_sleep",
    "sleep",
]

T = TypeVar("T")


async def async_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def sleep(seconds: float) -> None:
    time.sleep(seconds)


R = TypeVar("R")


async def async_race(
    first: Callable[[], Awaitable[R]],
    *,
    next_delay: Callable[[int], float | None],
    extra: Callable[[int], Callable[[], Awaitable[R]] | None],
    good: Callable[[R], bool],
    discard: Callable[[R], Awaitable[None]],
    clock: Callable[[], float],
) -> R:
    """Hedged attempts: `first()`, then an extra attempt each time the latest one has not
    answered within `next_delay(extras_so_far)` seconds (None: no more extras).

    `extra(n)` gives the starter of extra number n+1, or None when it may not start
    (then no further extra is tried). The first result `good()` accepts wins and the
    other attempts are cancelled; answers that lose are handed to `discard()`. When no
    attempt is good, the earliest-started one's outcome is returned (or raised) once
    every attempt has ended, the others discarded.
    """
    import asyncio

    task: asyncio.Future[R] = asyncio.ensure_future(first())
    order: dict[asyncio.Future[R], int] = {task: 0}
    pending = set(order)
    outcomes: dict[int, asyncio.Future[R]] = {}
    launched = 0
    latest = clock()
    more = True
    winner: asyncio.Future[R] | None = None
    try:
        while pending and winner is None:
            timeout = None
            if more:
                delay = next_delay(launched)
                if delay is None:
                    more = False
                else:
                    timeout = max(0.0, latest + delay - clock())
            done, pending = await asyncio.wait(
                pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                starter = extra(launched)
                if starter is None:
                    more = False
                    continue
                launched += 1
                task = asyncio.ensure_future(starter())
                order[task] = launched
                pending.add(task)
                latest = clock()
                continue
            for task in sorted(done, key=order.__getitem__):
                if winner is None and task.exception() is None and good(task.result()):
                    winner = task
                else:
                    outcomes[order[task]] = task
            if winner is None and not pending:
                break
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            for task in pending:
                if not task.cancelled() and task.exception() is None:
                    outcomes[order[task]] = task
    if winner is not None:
        for task in outcomes.values():
            if task.exception() is None:
                await discard(task.result())
        return winner.result()
    earliest = min(outcomes)
    for index, task in outcomes.items():
        if index != earliest and task.exception() is None:
            await discard(task.result())
    return outcomes[earliest].result()


def race(*args: Any, **kwargs: Any) -> NoReturn:
    """The sync client sends one attempt at a time: no hedging (refused at creation)."""
    raise TypeError("hedge= needs the async client: the sync client sends one attempt at a time")


def async_can_hedge() -> bool:
    """Whether this mode's transport can run hedged attempts (async: on tasks)."""
    return True


def can_hedge() -> bool:
    """The sync twin of `async_can_hedge`: no."""
    return False


class AsyncLock:
    """An asyncio lock that follows the event loop using it.

    It may be created outside a running loop, and used in one `asyncio.run()`
    after another: an asyncio lock binds to the first loop that waits on it, so a
    new one is made for a new loop (a lock cannot be held across loops anyway).
    """

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        if self._lock is None or self._loop is not loop:
            self._lock, self._loop = asyncio.Lock(), loop
        await self._lock.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._lock is not None
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
        import asyncio

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


class AsyncSingleFlight(Generic[T]):
    """At most one `fn()` in flight; every concurrent caller shares its result or error.

    The first caller starts `fn()` in a task of its own; later callers join it
    until it finishes. Waiters wait through `asyncio.shield`, so a cancelled
    waiter (or one whose `timeout` runs out) leaves the flight running for the
    others. `timeout` (seconds, None: no limit) bounds one caller's wait and
    raises the builtin `TimeoutError`.
    """

    INLINE = False
    """The flight runs in a task of its own, not in the first caller."""

    def __init__(self) -> None:
        self._task: asyncio.Task[T] | None = None

    async def run(
        self, fn: Callable[[], Coroutine[Any, Any, T]], timeout: float | None = None
    ) -> T:
        import asyncio

        task = self._task
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = asyncio.get_running_loop().create_task(fn())
            self._task = task
            task.add_done_callback(self._finished)
        if timeout is None:
            return await asyncio.shield(task)
        try:
            return await asyncio.wait_for(asyncio.shield(task), max(timeout, 0.0))
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            if task.done():
                return task.result()
            raise TimeoutError(f"gave up waiting after {timeout:g}s") from None

    @property
    def in_flight(self) -> bool:
        return self._task is not None and not self._task.done()

    def _finished(self, task: asyncio.Task[T]) -> None:
        if self._task is task:
            self._task = None
        if not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" when nobody waits


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "interrupted", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: Exception | None = None
        self.interrupted = False


class SingleFlight(Generic[T]):
    """At most one `fn()` in flight across threads; the others wait and share its outcome.

    The first thread runs `fn()` itself; threads arriving meanwhile wait (at
    most `timeout` seconds each, then the builtin `TimeoutError`) and get the
    same result or the same exception. If the running thread is interrupted
    (KeyboardInterrupt, SystemExit), a waiter starts a new flight instead.
    """

    INLINE = True
    """The first caller runs the flight in its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flight: _Flight[T] | None = None

    def run(self, fn: Callable[[], T], timeout: float | None = None) -> T:
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            with self._lock:
                flight = self._flight
                leader = flight is None
                if flight is None:
                    flight = self._flight = _Flight()
            if leader:
                return self._lead(flight, fn)
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not flight.done.wait(left):
                raise TimeoutError(f"gave up waiting after {timeout:g}s")
            if flight.interrupted:
                continue
            if flight.error is not None:
                raise flight.error
            return flight.result  # type: ignore[return-value]

    @property
    def in_flight(self) -> bool:
        return self._flight is not None

    def _lead(self, flight: _Flight[T], fn: Callable[[], T]) -> T:
        try:
            flight.result = result = fn()
            return result
        except Exception as exc:
            flight.error = exc
            raise
        except BaseException:
            flight.interrupted = True
            raise
        finally:
            with self._lock:
                self._flight = None
            flight.done.set()


class AsyncDeadline:
    """A hard stop for the enclosed block after `seconds` (None: none).

    At the deadline the block is cancelled, `TimeoutError` comes out and `expired`
    turns True: `asyncio.timeout` on Python 3.11+, and on 3.10 a timer that
    cancels the task (the same behaviour, for a block that does not itself
    swallow cancellation).
    """

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds
        self._scope: Any = None
        self._timer: Any = None
        self._fired = False

    async def __aenter__(self) -> None:
        if self._seconds is None:
            return
        import asyncio

        timeout = getattr(asyncio, "timeout", None)
        if timeout is not None:
            self._scope = timeout(self._seconds)
            await self._scope.__aenter__()
            return
        task = asyncio.current_task()  # pragma: no cover - Python 3.10
        assert task is not None

        def fire() -> None:
            self._fired = True
            task.cancel()

        self._timer = asyncio.get_running_loop().call_later(max(self._seconds, 0.0), fire)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._scope is not None:
            await self._scope.__aexit__(exc_type, exc, tb)
            return
        if self._timer is not None:  # pragma: no cover - Python 3.10
            self._timer.cancel()
            import asyncio

            if self._fired and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    @property
    def expired(self) -> bool:
        if self._scope is not None:
            return bool(self._scope.expired())
        return self._fired


class Deadline:
    """The sync twin of `AsyncDeadline`: a thread cannot be interrupted, so the
    per-operation timeouts, shrunk to the deadline, are the only bound."""

    def __init__(self, seconds: float | None) -> None:
        self._seconds = seconds

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    @property
    def expired(self) -> bool:
        return False
