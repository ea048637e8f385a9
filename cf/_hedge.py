"""Hedged requests: the settings, the per-origin latency tracker and the decisions.

The model is Polly's hedging strategy (and Finagle's backup requests, from
"The Tail at Scale"): when an attempt has not answered within `delay`, a
further attempt of the same request starts alongside it, up to `max_extra`
of them, each `delay` after the previous one; the first good answer wins and
the others are cancelled. That trades a little extra load for a shorter tail,
and is only safe for requests the server may see twice: idempotent methods
with a replayable body, or a POST/PATCH carrying an `Idempotency-Key`.

`delay="p95"` waits for the 95th percentile of the origin's recent latency
(time to the response headers) over its last `SAMPLES` successful attempts,
so that about one call in twenty is hedged whatever the origin's speed; while
fewer than `MIN_SAMPLES` are known it waits `FALLBACK_DELAY` seconds.

Pure logic, no I/O: the loop measures, sleeps and cancels.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from cf._backoff import IDEMPOTENT_METHODS

__all__ = [
    "FALLBACK_DELAY",
    "MAX_EXTRA",
    "MIN_SAMPLES",
    "SAMPLES",
    "Hedge",
    "LatencyTracker",
    "Latencies",
    "coerce_hedge",
    "may_hedge",
    "next_hedge_delay",
]

SAMPLES = 100
MIN_SAMPLES = 20
FALLBACK_DELAY = 1.0
MAX_EXTRA = 10
_KEYED_METHODS = frozenset({"POST", "PATCH"})


@dataclass(frozen=True, slots=True)
class Hedge:
    """Hedging settings: `hedge=Hedge(delay=..., max_extra=1)` per client or call.

    - `delay`: seconds (>= 0, finite) to wait for an answer before starting
      the next extra attempt, or `"p95"`: the 95th percentile of the origin's
      last 100 successful attempts (1 s while fewer than 20 are known).
    - `max_extra`: how many extra attempts at most (1 to 10), each `delay`
      after the previous one. Each is charged to the retry budget, not to
      `retries=N`.
    """

    delay: float | Literal["p95"]
    max_extra: int = 1

    def __post_init__(self) -> None:
        delay = self.delay
        if isinstance(delay, str):
            if delay != "p95":
                raise ValueError(f'delay must be a number of seconds or "p95", got {delay!r}')
        elif isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(f'delay must be a number or "p95", not {type(delay).__name__}')
        elif not math.isfinite(delay) or delay < 0:
            raise ValueError(f"delay must be a finite number >= 0, got {delay!r}")
        else:
            object.__setattr__(self, "delay", float(delay))
        extra = self.max_extra
        if isinstance(extra, bool) or not isinstance(extra, int):
            raise TypeError(f"max_extra must be an int, not {type(extra).__name__}")
        if not 1 <= extra <= MAX_EXTRA:
            raise ValueError(f"max_extra must be between 1 and {MAX_EXTRA}, got {extra}")


def coerce_hedge(value: object) -> Hedge | None:
    """The `hedge=` option: a `Hedge`, or None for no hedging."""
    if value is None or isinstance(value, Hedge):
        return value
    raise TypeError(f"hedge must be a Hedge or None, not {type(value).__name__}")


class LatencyTracker:
    """One origin's latencies: the last `SAMPLES` successful attempts, and their p95.

    `add` is O(1) (a ring buffer); `p95` sorts the 100 values only when one
    was added since the last read. Thread-safe.
    """

    __slots__ = ("_cached", "_lock", "_next", "_values", "last_used")

    def __init__(self) -> None:
        self._values: list[float] = []
        self._next = 0
        self._cached: float | None = None
        self._lock = threading.Lock()
        self.last_used = 0.0

    def __len__(self) -> int:
        return len(self._values)

    def add(self, seconds: float) -> None:
        """Record one successful attempt's latency (a negative, infinite or NaN one is ignored)."""
        if not 0.0 <= seconds < math.inf:  # also rejects NaN
            return
        with self._lock:
            if len(self._values) < SAMPLES:
                self._values.append(seconds)
            else:
                self._values[self._next] = seconds
                self._next = (self._next + 1) % SAMPLES
            self._cached = None

    def p95(self) -> float:
        """The 95th percentile (`statistics.quantiles(n=20, method="inclusive")[18]`).

        `FALLBACK_DELAY` while fewer than `MIN_SAMPLES` latencies are known.
        """
        with self._lock:
            if self._cached is None:
                if len(self._values) < MIN_SAMPLES:
                    return FALLBACK_DELAY
                self._cached = _p95(sorted(self._values))
            return self._cached


def _p95(data: list[float]) -> float:
    # statistics.quantiles' inclusive method, 19th of 20 cut points, same arithmetic,
    # kept between its two neighbours (the weighted sum can round one ulp past them).
    j, delta = divmod(19 * (len(data) - 1), 20)
    low = data[j]
    if delta == 0:
        return low
    high = data[j + 1]
    return min(max((low * (20 - delta) + high * delta) / 20, low), high)


class Latencies:
    """A client's latency trackers by origin, at most `max_origins` kept.

    When full, the least recently used quarter is forgotten at once.
    """

    __slots__ = ("_lock", "_tick", "_trackers", "max_origins")

    def __init__(self, max_origins: int = 1024) -> None:
        if isinstance(max_origins, bool) or not isinstance(max_origins, int) or max_origins < 1:
            raise ValueError(f"max_origins must be an int >= 1, got {max_origins!r}")
        self.max_origins = max_origins
        self._trackers: dict[str, LatencyTracker] = {}
        self._lock = threading.Lock()
        self._tick = 0

    def __len__(self) -> int:
        return len(self._trackers)

    def get(self, origin: str) -> LatencyTracker:
        """The origin's tracker, made empty on first use."""
        tracker = self._trackers.get(origin)
        if tracker is None:
            with self._lock:
                tracker = self._trackers.get(origin)
                if tracker is None:
                    if len(self._trackers) >= self.max_origins:
                        keep = self.max_origins - max(1, self.max_origins // 4)
                        ranked = sorted(self._trackers.items(), key=lambda kv: kv[1].last_used)
                        for name, _ in ranked[: len(ranked) - keep]:
                            del self._trackers[name]
                    tracker = self._trackers[origin] = LatencyTracker()
        self._tick += 1  # a rough use order; a lost increment under a race is harmless
        tracker.last_used = self._tick
        return tracker

    def add(self, origin: str, seconds: float) -> None:
        """Record one successful attempt's latency for `origin`."""
        self.get(origin).add(seconds)

    def p95(self, origin: str) -> float:
        """`LatencyTracker.p95` for `origin`."""
        return self.get(origin).p95()


def may_hedge(
    method: str,
    *,
    replayable: bool,
    idempotency_key: bool = False,
    idempotent_methods: Iterable[str] = IDEMPOTENT_METHODS,
) -> bool:
    """Whether a request may be sent more than once at the same time.

    Only with a replayable body, and for an idempotent method (the retry
    policy's `idempotent_methods`) or a POST/PATCH carrying an
    `Idempotency-Key`. `retry_non_idempotent=True` does not extend to
    hedging: a retry follows a failure, a hedge runs alongside a live attempt.
    """
    if not replayable:
        return False
    method = method.upper()
    return method in idempotent_methods or (idempotency_key and method in _KEYED_METHODS)


def next_hedge_delay(
    hedge: Hedge,
    *,
    launched: int,
    p95: Callable[[], float],
    remaining: float | None = None,
) -> float | None:
    """Seconds to wait, after the latest attempt started, before the next extra one.

    `launched` is the number of extra attempts already started; `p95` reads
    the origin's percentile (called only for `delay="p95"`); `remaining` is
    what the deadline has left (None: no deadline). None means no further
    extra attempt: `max_extra` reached, or it would start after the deadline.
    """
    if launched >= hedge.max_extra:
        return None
    delay = hedge.delay
    seconds = p95() if isinstance(delay, str) else delay
    if remaining is not None and seconds >= remaining:
        return None
    return seconds
