"""Retry decisions, backoff, Retry-After and the retry budget: pure logic, no I/O.

Both clients (async and sync) run the same loop around these functions; the
loop only sends, sleeps and logs. Time and randomness come in as arguments so
that every decision can be tested without sleeping.
"""

from __future__ import annotations

import datetime
import enum
import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
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
# Statuses that say the server did not act on the request: safe to retry for any method.
_NOT_PROCESSED_STATUSES: frozenset[int] = frozenset({429, 503})
_DEFAULT_RETRIES = 2
_DEFAULT_BACKOFF_MAX = 10.0
# No single wait is longer (about 68 years): every sleep function accepts it.
_MAX_DELAY = float(2**31)


class Failure(enum.Enum):
    """Where an attempt failed: the safety matrix only needs to know this.

    Each kind may have its own limit besides `RetryPolicy.retries`
    (`connect_retries`, `read_retries`, `status_retries`, as urllib3's
    `connect`, `read` and `status` counts).
    """

    NOT_SENT = "not_sent"
    """Connect error, connect timeout, pool timeout: nothing reached the server."""
    SENT = "sent"
    """Read/write timeout, reset, protocol error: the server may have acted."""
    STATUS = "status"
    """A response whose status is a failure status."""


def _check_float(name: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return value


def _check_count(name: str, value: object, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "an int or None" if optional else "an int"
        raise TypeError(f"{name} must be {kind}, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def _check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def _check_statuses(name: str, statuses: Iterable[int]) -> frozenset[int]:
    if isinstance(statuses, (str, bytes)) or not isinstance(statuses, Iterable):
        raise TypeError(f"{name} must be an iterable of ints")
    result = frozenset(statuses)
    for status in result:
        if isinstance(status, bool) or not isinstance(status, int):
            raise TypeError(f"{name} must hold ints, got {status!r}")
        if not 100 <= status <= 599:
            raise ValueError(f"{name}: status {status} is outside 100-599")
    return result


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Every retry setting in one immutable value, shared by both modes.

    Pass it as `retry_policy=` at creation or per call; the plain keyword
    arguments (`retries=`, `failure_statuses=`, ...) build one. Bad values
    raise TypeError or ValueError at once. `from_urllib3` converts a
    `urllib3.util.Retry`; its counterpart of each field is named below.

    Attributes:
        retries: At most this many further attempts after the first, whatever
            failed (int >= 0, default 2). urllib3: `total`.
        failure_statuses: Response statuses that make an attempt a failure
            (default 408, 429, 500, 502, 503, 504). After the last attempt such
            a response raises `HTTPAioStatusError` (see
            `raise_on_failure_status`); any other status is returned as it
            is, never raised. urllib3: `status_forcelist`.
        backoff_base: Seconds. After failed attempt n the wait is drawn
            uniformly from 0 to `min(backoff_max, backoff_base * 2**(n-1))`
            ("full jitter"; see `backoff_jitter`). urllib3: `backoff_factor`.
        backoff_max: The longest computed wait, in seconds (default 10).
            A Retry-After is bounded by `max_retry_after` instead.
        max_retry_after: A Retry-After asking for more seconds than this
            (default 30) stops the retries at once: the call ends with that
            failure, without sleeping. urllib3: `retry_after_max` (which waits that
            long instead of stopping).
        respect_retry_after: Wait what a failed response's Retry-After says
            instead of the computed backoff (default True). False ignores it.
            urllib3: `respect_retry_after_header`.
        retry_non_idempotent: Retry every method after a failure that may
            have reached the server (default False: only `idempotent_methods`,
            or a request with an `Idempotency-Key` header). urllib3:
            `allowed_methods=None`.
        idempotent_methods: The methods retried after a read failure or a
            failure status (default GET HEAD OPTIONS PUT DELETE TRACE). A
            failure where nothing was sent is retried for every method.
            urllib3: `allowed_methods`.
        backoff_jitter: None (default) for full jitter as above. A number of
            seconds selects urllib3's schedule instead: no wait after the
            first failure, then `backoff_base * 2**(n-1)` after failure n plus
            a random extra from 0 to `backoff_jitter`, at most `backoff_max`.
            urllib3: `backoff_jitter`.
        any_method_statuses: Failure statuses retried whatever the method,
            because they say the server did not act on the request (default
            429 and 503). Empty: failure statuses are retried only for
            idempotent methods, as urllib3 does.
        retry_after_statuses: Statuses that are a failure only when the
            response carries a Retry-After header (default none; urllib3's
            `Retry.RETRY_AFTER_STATUS_CODES`, 413 429 503, when
            `respect_retry_after_header`). When no retry is left such a
            response is returned, not raised, unless it is also in
            `failure_statuses`.
        connect_retries: At most this many retries of failures where nothing
            was sent (`Failure.NOT_SENT`); None (default): only `retries`
            bounds them. urllib3: `connect`.
        read_retries: The same for failures after sending (`Failure.SENT`).
            urllib3: `read`.
        status_retries: The same for failure statuses (`Failure.STATUS`).
            urllib3: `status`.
        raise_on_failure_status: True (default): after the last attempt, a
            failure status raises `HTTPAioStatusError`. False: that last
            response is returned as it is. urllib3: `raise_on_status`.
    """

    retries: int = _DEFAULT_RETRIES
    failure_statuses: frozenset[int] = DEFAULT_FAILURE_STATUSES
    backoff_base: float = 0.1
    backoff_max: float = _DEFAULT_BACKOFF_MAX
    max_retry_after: float = 30.0
    respect_retry_after: bool = True
    retry_non_idempotent: bool = False
    idempotent_methods: frozenset[str] = field(default=IDEMPOTENT_METHODS)
    backoff_jitter: float | None = None
    any_method_statuses: frozenset[int] = _NOT_PROCESSED_STATUSES
    retry_after_statuses: frozenset[int] = frozenset()
    connect_retries: int | None = None
    read_retries: int | None = None
    status_retries: int | None = None
    raise_on_failure_status: bool = True

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        _check_count("retries", self.retries)
        for name in ("failure_statuses", "any_method_statuses", "retry_after_statuses"):
            set_(self, name, _check_statuses(name, getattr(self, name)))
        for name in ("backoff_base", "backoff_max", "max_retry_after"):
            set_(self, name, _check_float(name, getattr(self, name)))
        if self.backoff_jitter is not None:
            set_(self, "backoff_jitter", _check_float("backoff_jitter", self.backoff_jitter))
        for name in ("respect_retry_after", "retry_non_idempotent", "raise_on_failure_status"):
            _check_bool(name, getattr(self, name))
        for name in ("connect_retries", "read_retries", "status_retries"):
            _check_count(name, getattr(self, name), optional=True)
        methods = self.idempotent_methods
        if isinstance(methods, str) or not isinstance(methods, Iterable):
            raise TypeError("idempotent_methods must be an iterable of method names")
        if not all(isinstance(m, str) for m in methods):
            raise TypeError("idempotent_methods must hold str method names")
        set_(self, "idempotent_methods", frozenset(m.upper() for m in methods))

    @property
    def max_attempts(self) -> int:
        """The first attempt plus `retries`."""
        return self.retries + 1

    def replace(self, **changes: Any) -> RetryPolicy:
        """A copy with some settings changed (validated again)."""
        return replace(self, **changes)

    def kind_limit(self, failure: Failure) -> int | None:
        """The limit of retries for this kind of failure besides `retries`, or None."""
        if failure is Failure.NOT_SENT:
            return self.connect_retries
        if failure is Failure.SENT:
            return self.read_retries
        return self.status_retries

    def is_failure_status(self, status: int, retry_after: str | None = None) -> bool:
        """Does a response with this status (and Retry-After value) fail the attempt?"""
        if status in self.failure_statuses:
            return True
        return (
            status in self.retry_after_statuses
            and self.respect_retry_after
            and retry_after is not None
            and bool(retry_after.strip())
        )

    def raises_for_status(self, status: int) -> bool:
        """After the last attempt: raise for this failure status (or return the response)?"""
        return self.raise_on_failure_status and status in self.failure_statuses

    def backoff(self, failed_attempt: int, random: Callable[[], float]) -> float:
        """The computed wait after attempt number `failed_attempt` (from 1), in seconds.

        Full jitter, or urllib3's schedule when `backoff_jitter` is set; `random`
        returns a float in [0, 1).
        """
        exponent = min(max(failed_attempt - 1, 0), 64)
        ceiling = self.backoff_base * 2.0**exponent
        if self.backoff_jitter is None:
            delay = random() * min(self.backoff_max, ceiling)
        elif failed_attempt <= 1:
            return 0.0  # urllib3: most errors go away with an immediate second try
        else:
            if self.backoff_jitter:
                ceiling += random() * self.backoff_jitter
            delay = min(self.backoff_max, ceiling)
        return min(delay, _MAX_DELAY) if delay > 0 else 0.0  # also turns nan into 0

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
        return failure is Failure.STATUS and status in self.any_method_statuses

    @classmethod
    def from_urllib3(cls, retry: object) -> RetryPolicy:
        """The policy that retries as the given `urllib3.util.Retry` does.

        Every field named in the class docstring is converted, so that the same
        failures are retried as often, with the same waits, and the same final
        responses are raised or returned: `total=False` means no retry at all,
        `total=None` the sum of the per-kind counts, `Retry-After` statuses
        (413 429 503) are retried while `total` lasts. Not converted:
        `redirect` (redirects are the client options `follow_redirects` and
        `max_redirects`, never retries) and `other` (cf never retries errors
        other than connect and read failures, such as TLS errors).

        Where cf differs by design: a status in `status_forcelist` for a
        method urllib3 does not retry is raised, not returned; a Retry-After
        over `retry_after_max` stops at once instead of waiting that maximum;
        `Retry-After: 0` retries at once where urllib3 uses the backoff; a
        Retry-After status that used up `status` is returned, not raised; a
        request with an `Idempotency-Key` header is retried like an idempotent one.

        Raises TypeError for anything but a Retry (urllib3 itself is not
        imported here), ValueError for a Retry that retries without end
        (`total=None` and no count for a kind of failure that can happen).
        """
        retry_module = sys.modules.get("urllib3.util.retry")
        retry_type = getattr(retry_module, "Retry", None)
        if not isinstance(retry_type, type) or not isinstance(retry, retry_type):
            raise TypeError(f"from_urllib3 takes a urllib3.util.Retry, not {type(retry).__name__}")
        return cls(**_urllib3_settings(retry))


_URLLIB3_KINDS = {Failure.NOT_SENT: "connect", Failure.SENT: "read", Failure.STATUS: "status"}
_URLLIB3_COUNTS = ("total", "connect", "read", "redirect", "status", "other")


def _urllib3_settings(retry: Any) -> dict[str, Any]:
    """RetryPolicy's arguments for a urllib3 Retry (1.26 or 2.x)."""
    forcelist = _urllib3_statuses(getattr(retry, "status_forcelist", None))
    limits = {
        kind: _urllib3_count(name, getattr(retry, name, None))
        for kind, name in _URLLIB3_KINDS.items()
    }
    total = getattr(retry, "total", None)
    every_count = [getattr(retry, name, None) for name in _URLLIB3_COUNTS]
    if any(isinstance(c, int) and not isinstance(c, bool) and c < 0 for c in every_count):
        retries = 0  # urllib3: a negative count makes the first failure exhaust the Retry
    elif total is None:  # no overall bound: only the per-kind counts
        kinds = [Failure.NOT_SENT, Failure.SENT] + ([Failure.STATUS] if forcelist else [])
        unbounded = ", ".join(f"{_URLLIB3_KINDS[k]}=None" for k in kinds if limits[k] is None)
        if unbounded:
            raise ValueError(
                f"Retry(total=None, {unbounded}) retries without end; "
                "cf needs a bound: give total= or a count for each kind"
            )
        retries = sum(limits[k] or 0 for k in kinds)
    else:
        retries = _urllib3_count("total", total) or 0  # False: no retry at all
    allowed = getattr(retry, "allowed_methods", IDEMPOTENT_METHODS)
    any_method = allowed is None or (isinstance(allowed, Iterable) and not allowed)
    methods = IDEMPOTENT_METHODS
    if not any_method:  # urllib3 compares method.upper(): other entries never match
        methods = frozenset(m for m in allowed if isinstance(m, str) and m == m.upper())
    respect = bool(getattr(retry, "respect_retry_after_header", True))
    retry_after_statuses: frozenset[int] = frozenset()
    if respect and total is not None and retries > 0:  # urllib3: only while `total` lasts
        codes = getattr(type(retry), "RETRY_AFTER_STATUS_CODES", (413, 429, 503))
        retry_after_statuses = _urllib3_statuses(codes)
    backoff_max = getattr(retry, "backoff_max", None)
    if backoff_max is None:  # urllib3 1.26: a class constant
        backoff_max = getattr(type(retry), "DEFAULT_BACKOFF_MAX", 120)
    retry_after_max = getattr(retry, "retry_after_max", None)  # urllib3 < 2.4: no limit
    return {
        "retries": retries,
        "failure_statuses": forcelist,
        "backoff_base": _urllib3_float("backoff_factor", getattr(retry, "backoff_factor", 0)),
        "backoff_max": _urllib3_float("backoff_max", backoff_max),
        "backoff_jitter": _urllib3_float("backoff_jitter", getattr(retry, "backoff_jitter", 0)),
        "max_retry_after": (
            math.inf
            if retry_after_max is None
            else _urllib3_float("retry_after_max", retry_after_max)
        ),
        "respect_retry_after": respect,
        "retry_non_idempotent": any_method,
        "idempotent_methods": methods,
        "any_method_statuses": frozenset(),
        "retry_after_statuses": retry_after_statuses,
        "connect_retries": limits[Failure.NOT_SENT],
        "read_retries": limits[Failure.SENT],
        "status_retries": limits[Failure.STATUS],
        "raise_on_failure_status": bool(getattr(retry, "raise_on_status", True)),
    }


def _urllib3_count(name: str, value: object) -> int | None:
    """A urllib3 count as retries allowed: None stays None, False is 0, True is 1."""
    if value is None:
        return None
    if not isinstance(value, int):
        raise ValueError(f"urllib3 Retry.{name} must be an int, a bool or None, got {value!r}")
    return max(int(value), 0)  # a negative count is already exhausted


def _urllib3_float(name: str, value: object) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"urllib3 Retry.{name} must be a number >= 0, got {value!r}")
    return float(value)


def _urllib3_statuses(value: object) -> frozenset[int]:
    if not value:
        return frozenset()
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(f"urllib3 Retry.status_forcelist must hold ints, got {value!r}")
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise ValueError(f"urllib3 Retry.status_forcelist must hold ints, got {value!r}")
    return frozenset(value)


# --- Retry-After (RFC 9110 section 10.2.3) ---------------------------------------------------

_WEEKDAY = r"(?:mon|tue|wed|thu|fri|sat|sun)(?:day|sday|nesday|rsday|urday)?"
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH = "(" + "|".join(_MONTHS) + ")"
_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})"
_ZONE = r"(gmt|utc|ut|z|[+-][0-9]{4})"
_FLAGS = re.ASCII | re.IGNORECASE
# IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT` (and RFC 1123/2822 variants: a
# two-digit year, a numeric zone, no weekday).
_IMF_DATE = re.compile(
    rf"(?:{_WEEKDAY}\s*,\s*)?([0-9]{{1,2}})\s+{_MONTH}\s+([0-9]{{2}}|[0-9]{{4}})\s+{_TIME}\s+{_ZONE}",
    _FLAGS,
)
# Obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT`.
_RFC850_DATE = re.compile(
    rf"(?:{_WEEKDAY}\s*,\s*)?([0-9]{{1,2}})-{_MONTH}-([0-9]{{2}}|[0-9]{{4}})\s+{_TIME}\s+{_ZONE}",
    _FLAGS,
)
# ANSI C asctime `Sun Nov  6 08:49:37 1994`, always GMT.
_ASCTIME_DATE = re.compile(
    rf"(?:{_WEEKDAY}\s+)?{_MONTH}\s+([0-9]{{1,2}})\s+{_TIME}\s+([0-9]{{4}})", _FLAGS
)
_MAX_DIGITS = 20  # longer delta-seconds mean "longer than any limit"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date.

    All three HTTP-date forms of RFC 9110 are read (IMF-fixdate, obsolete
    RFC 850 with its two-digit year, asctime). `now` is the wall-clock time
    (`time.time()`); a date in the past means 0. Absurdly many digits give
    `math.inf`. Anything unparsable returns None (the computed backoff is
    used instead); never raises.
    """
    if not isinstance(value, str):
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value)) if len(value) <= _MAX_DIGITS else math.inf
    if not value or len(value) > 64:
        return None
    timestamp = _http_date(value, now)
    if timestamp is None:
        return None
    delay = timestamp - now
    return delay if delay > 0 else 0.0  # also a nan `now`


def _http_date(value: str, now: float) -> float | None:
    """The POSIX timestamp of an HTTP-date, or None."""
    zone = "gmt"
    match = _IMF_DATE.fullmatch(value) or _RFC850_DATE.fullmatch(value)
    if match is not None:
        day, month, year, hour, minute, second, zone = match.groups()
    else:
        match = _ASCTIME_DATE.fullmatch(value)
        if match is None:
            return None
        month, day, hour, minute, second, year = match.groups()
    full_year = int(year) if len(year) == 4 else _two_digit_year(int(year), now)
    offset = 0
    if zone[0] in "+-":
        hours, minutes = int(zone[1:3]), int(zone[3:])
        if minutes > 59:
            return None
        offset = (hours * 60 + minutes) * 60 * (1 if zone[0] == "+" else -1)
    try:
        moment = datetime.datetime(
            full_year,
            _MONTHS.index(month.lower()) + 1,
            int(day),
            int(hour),
            int(minute),
            min(int(second), 59),  # a leap second
            tzinfo=datetime.timezone.utc,
        )
    except ValueError:  # day 31 of a short month, hour 24, year 0
        return None
    return moment.timestamp() - offset


def _two_digit_year(year: int, now: float) -> int:
    """RFC 9110: a two-digit year more than 50 years ahead is in the past century."""
    try:
        this_year = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).year
    except (OverflowError, OSError, ValueError):
        this_year = 2000
    candidate = this_year // 100 * 100 + year
    return candidate - 100 if candidate > this_year + 50 else candidate


# --- the decision ----------------------------------------------------------------------------


class Stop(enum.Enum):
    """Why a failed attempt is not retried (the reason an error states)."""

    NOT_RETRYABLE = "not retryable for this method"
    NOT_REPLAYABLE = "request body cannot be replayed"
    ATTEMPTS_EXHAUSTED = "no retries left"
    RETRY_AFTER_TOO_LONG = "Retry-After asks for longer than max_retry_after"
    DEADLINE = "deadline reached"
    BUDGET = "retry budget exhausted"
    CIRCUIT_OPEN = "the origin's circuit is open"


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """What to do after a failed attempt.

    Attributes:
        delay: Seconds to sleep before the next attempt (when retrying).
        stop: Why not to retry, or None to retry after `delay`.
    """

    delay: float = 0.0
    stop: Stop | None = None

    @property
    def retry(self) -> bool:
        """True: sleep `delay` seconds, then attempt again."""
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
    retried: Mapping[Failure, int] | None = None,
) -> RetryDecision:
    """Decide what to do after failed attempt number `attempt` (from 1).

    `retry_after` is the failed response's Retry-After value; `remaining`
    what the deadline has left (None: no deadline); `retried` counts the
    retries already made by kind of failure, for the per-kind limits (None:
    as if every earlier failure had been of this kind, which never retries
    more than allowed). The retry budget is not consulted here: it has
    state, and the loop asks it last.
    """
    if not policy.is_retryable(method, failure, status, idempotency_key=idempotency_key):
        return RetryDecision(stop=Stop.NOT_RETRYABLE)
    if not replayable:
        return RetryDecision(stop=Stop.NOT_REPLAYABLE)
    if attempt > policy.retries:
        return RetryDecision(stop=Stop.ATTEMPTS_EXHAUSTED)
    limit = policy.kind_limit(failure)
    if limit is not None:
        done = attempt - 1 if retried is None else retried.get(failure, 0)
        if done >= limit:
            return RetryDecision(stop=Stop.ATTEMPTS_EXHAUSTED)
    delay = policy.backoff(attempt, random)
    if retry_after is not None and policy.respect_retry_after:
        asked = parse_retry_after(retry_after, now())
        if asked is not None:
            if asked > policy.max_retry_after:
                return RetryDecision(stop=Stop.RETRY_AFTER_TOO_LONG)
            delay = min(asked, _MAX_DELAY)
    if remaining is not None and delay >= remaining:
        return RetryDecision(stop=Stop.DEADLINE)
    return RetryDecision(delay=delay)


# --- the budget ------------------------------------------------------------------------------


class RetryBudget:
    """Caps retries across all calls of one client, so an outage is not amplified.

    Retries may be at most `ratio` of the first attempts seen over the last
    `window` seconds, plus a floor for quiet clients. Thread-safe. Pass it as
    `retry_budget=` at creation (None disables it); one budget serves all the
    calls of a client.

    Attributes:
        ratio: Retries allowed per first attempt over the window (default 0.2:
            retries add at most about 20% load).
        window: Seconds of history the ratio looks at (default 10, > 0).
        min_per_second: The floor: a bucket of this many retries, refilled at
            this many per second, used when the ratio allows none (default 10;
            0 disables the floor).

    `clock` (keyword only) returns monotonic seconds; injectable for tests.
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
    """What the `on_retry` callback receives before each sleep.

    Attributes:
        method: The request method, uppercase.
        url: The request URL, with credentials and secret query values redacted.
        attempt: The attempt that just failed, from 1.
        max_attempts: The most attempts the policy allows (`retries + 1`).
        status: The failed response's status, or None for a transport error.
        exception: The transport error (an httpx exception), or None for a status.
        delay: Seconds the client now sleeps before the next attempt.
        trace_id: The call's W3C trace id, or None when no trace is propagated.
    """

    method: str
    url: str
    attempt: int
    max_attempts: int
    status: int | None
    exception: BaseException | None
    delay: float
    trace_id: str | None
