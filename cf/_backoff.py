"""Retry decisions, backoff, Retry-After and the retry budget: pure logic, no I/O.

Both clients (async and sync) run the same loop around these functions; the
loop only sends, sleeps and logs. Time and randomness come in as arguments so
that every decision can be tested without sleeping.
"""

from __future__ import annotations

import email.utils
import enum
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "DEFAULT_FAILURE_STATUSES",
    "IDEMPOTENT_METHODS",
    "Failure",
    "RetryBudget",
    "RetryDecision",
    "RetryEvent",
    "RetryPolicy",
    "Stop",
    "decide",
    "parse_retry_after",
]

DEFAULT_FAILURE_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
IDEMPOTENT_METHODS: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_DEFAULT_RETRIES = 2
_DEFAULT_BACKOFF_MAX = 10.0
# Statuses that say the server did not act on the request: safe to retry for any method.
_NOT_PROCESSED_STATUSES: frozenset[int] = frozenset({429, 503})


class Failure(enum.Enum):
    """Where an attempt failed: the safety matrix only needs to know this."""

    NOT_SENT = "not_sent"  # connect error, connect timeout, pool timeout
    SENT = "sent"  # read/write timeout, reset, protocol error: the server may have acted
    STATUS = "status"  # a response with a status in failure_statuses


def _check_float(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return value


def _check_statuses(statuses: Iterable[int]) -> frozenset[int]:
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, Iterable):
        raise TypeError("failure_statuses must be an iterable of ints")
    result = frozenset(statuses)
    for status in result:
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"failure_statuses must hold ints, got {status!r}")
        if not 100 <= status <= 599:
            raise ValueError(f"failure status {status} is outside 100-599")
    return result


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Every retry setting in one immutable value, shared by both modes.

    Pass it as `retry_policy=` at creation or per call; the plain keyword
    arguments (`retries=`, `failure_statuses=`, ...) build one.
    """

    retries: int = _DEFAULT_RETRIES
    failure_statuses: frozenset[int] = DEFAULT_FAILURE_STATUSES
    backoff_base: float = 0.1
    backoff_max: float = _DEFAULT_BACKOFF_MAX
    max_retry_after: float = 30.0
    respect_retry_after: bool = True
    retry_non_idempotent: bool = False
    idempotent_methods: frozenset[str] = field(default=IDEMPOTENT_METHODS)

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int):
            raise TypeError(f"retries must be an int, not {type(self.retries).__name__}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        set_ = object.__setattr__
        set_(self, "failure_statuses", _check_statuses(self.failure_statuses))
        set_(self, "backoff_base", _check_float("backoff_base", self.backoff_base))
        set_(self, "backoff_max", _check_float("backoff_max", self.backoff_max))
        set_(self, "max_retry_after", _check_float("max_retry_after", self.max_retry_after))
        methods = self.idempotent_methods
        if isinstance(methods, str) or not isinstance(methods, Iterable):
            raise TypeError("idempotent_methods must be an iterable of method names")
        set_(self, "idempotent_methods", frozenset(m.upper() for m in methods))

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)

    def backoff(self, failed_attempt: int, random: Callable[[], float]) -> float:
        """Full-jitter exponential backoff after attempt number `failed_attempt` (from 1)."""
        exponent = min(failed_attempt - 1, 64)
        return random() * min(self.backoff_max, self.backoff_base * 2.0**exponent)

    def is_retryable(
        self,
        method: str,
        failure: Failure,
        status: int | None = None,
        *,
        idempotency_key: bool = False,
    ) -> bool:
        """The safety matrix: may this kind of failure be retried for this method?"""
        if failure is Failure.NOT_SENT:
            return True
        if method in self.idempotent_methods or self.retry_non_idempotent or idempotency_key:
            return True
        return failure is Failure.STATUS and status in _NOT_PROCESSED_STATUSES

    @classmethod
    def from_urllib3(cls, retry: Any) -> RetryPolicy:
        """Convert an existing `urllib3.util.Retry`.

        Reads `total`, `status_forcelist`, `backoff_factor`, `backoff_max`,
        `allowed_methods` and `respect_retry_after_header`. urllib3's
        `allowed_methods=None` (retry every method) maps to
        `retry_non_idempotent=True`.
        """
        total = getattr(retry, "total", None)
        if total is None or total is False:
            counts = [getattr(retry, n, None) for n in ("connect", "read", "status")]
            ints = [c for c in counts if isinstance(c, int) and not isinstance(c, bool)]
            total = max(ints) if ints else _DEFAULT_RETRIES
        if total is True:
            total = _DEFAULT_RETRIES
        forcelist = getattr(retry, "status_forcelist", None) or ()
        allowed = getattr(retry, "allowed_methods", IDEMPOTENT_METHODS)
        backoff_max = getattr(retry, "backoff_max", None)
        if backoff_max is None:
            backoff_max = getattr(type(retry), "DEFAULT_BACKOFF_MAX", _DEFAULT_BACKOFF_MAX)
        return cls(
            retries=int(total),
            failure_statuses=frozenset(int(s) for s in forcelist),
            backoff_base=float(getattr(retry, "backoff_factor", 0.0) or 0.0),
            backoff_max=float(backoff_max),  # type: ignore[arg-type]
            respect_retry_after=bool(getattr(retry, "respect_retry_after_header", True)),
            retry_non_idempotent=allowed is None,
            idempotent_methods=frozenset(allowed) if allowed is not None else IDEMPOTENT_METHODS,
        )


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date).

    `now` is the wall-clock time (`time.time()`). A date in the past means 0.
    Anything unparsable returns None: the computed backoff is used instead.
    """
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > 64:
        return None
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        return None
    try:
        return max(0.0, parsed.timestamp() - now)
    except (OverflowError, OSError, ValueError):
        return None


class Stop(enum.Enum):
    """Why a failed attempt is not retried."""

    NOT_RETRYABLE = "not retryable for this method"
    NOT_REPLAYABLE = "request body cannot be replayed"
    ATTEMPTS_EXHAUSTED = "no retries left"
    RETRY_AFTER_TOO_LONG = "Retry-After asks for longer than max_retry_after"
    DEADLINE = "deadline reached"
    BUDGET = "retry budget exhausted"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Retry after `delay` seconds, or stop for `stop`."""

    delay: float = 0.0
    stop: Stop | None = None

    @property
    def retry(self) -> bool:
        return self.stop is None


def decide(
    policy: RetryPolicy,
    *,
    attempt: int,
    method: str,
    failure: Failure,
    status: int | None = None,
    idempotency_key: bool = False,
    replayable: bool = True,
    retry_after: str | None = None,
    remaining: float | None = None,
    random: Callable[[], float],
    now: Callable[[], float] = time.time,
) -> RetryDecision:
    """Decide what to do after failed attempt number `attempt` (from 1).

    `remaining` is what the deadline has left (None: no deadline). The retry
    budget is not consulted here: it has state, and the loop asks it last.
    """
    if not policy.is_retryable(method, failure, status, idempotency_key=idempotency_key):
        return RetryDecision(stop=Stop.NOT_RETRYABLE)
    if not replayable:
        return RetryDecision(stop=Stop.NOT_REPLAYABLE)
    if attempt > policy.retries:
        return RetryDecision(stop=Stop.ATTEMPTS_EXHAUSTED)
    delay = policy.backoff(attempt, random)
    if retry_after is not None and policy.respect_retry_after:
        asked = parse_retry_after(retry_after, now())
        if asked is not None:
            if asked > policy.max_retry_after:
                return RetryDecision(stop=Stop.RETRY_AFTER_TOO_LONG)
            delay = asked
    if remaining is not None and delay >= remaining:
        return RetryDecision(stop=Stop.DEADLINE)
    return RetryDecision(delay=delay)


class RetryBudget:
    """Caps retries across all calls of one client, so an outage is not amplified.

    Retries may be at most `ratio` of the first attempts seen over the last
    `window` seconds, plus a floor: a bucket of `min_per_second` tokens
    refilled at `min_per_second` per second, for quiet clients. Thread-safe;
    `clock` is injectable (monotonic seconds).
    """

    __slots__ = (
        "_bucket",
        "_clock",
        "_firsts",
        "_lock",
        "_retries",
        "_slot",
        "_slot_len",
        "_stamp",
        "min_per_second",
        "ratio",
        "window",
    )

    _SLOTS = 10

    def __init__(
        self,
        ratio: float = 0.2,
        window: float = 10.0,
        min_per_second: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ratio = _check_float("ratio", ratio)
        self.window = _check_float("window", window, positive=True)
        self.min_per_second = _check_float("min_per_second", min_per_second)
        self._clock = clock
        self._lock = threading.Lock()
        self._slot_len = self.window / self._SLOTS
        self._firsts = [0] * self._SLOTS
        self._retries = [0] * self._SLOTS
        self._slot = math.floor(clock() / self._slot_len)
        self._bucket = self.min_per_second
        self._stamp = clock()

    def __repr__(self) -> str:
        return (
            f"RetryBudget(ratio={self.ratio}, window={self.window}, "
            f"min_per_second={self.min_per_second})"
        )

    def _advance(self, now: float) -> int:
        slot = math.floor(now / self._slot_len)
        gap = slot - self._slot
        if gap > 0:
            for i in range(self._slot + 1, self._slot + 1 + min(gap, self._SLOTS)):
                self._firsts[i % self._SLOTS] = 0
                self._retries[i % self._SLOTS] = 0
            self._slot = slot
        return self._slot % self._SLOTS

    def deposit(self) -> None:
        """Record a first attempt."""
        with self._lock:
            self._firsts[self._advance(self._clock())] += 1

    def withdraw(self) -> bool:
        """Ask to make one retry; False when the budget is empty."""
        with self._lock:
            now = self._clock()
            index = self._advance(now)
            if sum(self._retries) + 1 <= self.ratio * sum(self._firsts):
                self._retries[index] += 1
                return True
            self._bucket = min(
                self.min_per_second,
                self._bucket + (now - self._stamp) * self.min_per_second,
            )
            self._stamp = now
            if self._bucket >= 1.0:
                self._bucket -= 1.0
                return True
            return False


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """What `on_retry` receives before each sleep."""

    method: str
    url: str
    attempt: int
    max_attempts: int
    status: int | None
    exception: BaseException | None
    delay: float
    trace_id: str | None
