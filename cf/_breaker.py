"""The circuit breaker: per-origin closed/open/half-open state, pure logic, no I/O.

The model is Polly's circuit breaker strategy (failure ratio over a sampling
window, a minimum throughput, a break, one probe at a time) with the break
growing on each failed probe as Envoy's outlier detection grows its ejection
time. It works on attempts, not calls: each attempt the loop is about to send
asks `OriginCircuit.acquire` for a `Permit` and reports how it ended with
`OriginCircuit.record` (or `release` when it ended without a verdict, e.g. a
cancelled hedge).

- closed: everything goes through. Outcomes are counted in a rolling window
  of `window` seconds kept in `_BUCKETS` buckets (the window forgets in
  steps of `window / _BUCKETS`, so it covers between 90% and 100% of
  `window`); when an attempt fails and the window holds at least `min_calls`
  attempts of which at least `failure_ratio` failed, the circuit opens.
- open: every attempt is refused at once (`Refused.retry_after` says when the
  next probe may go) for the current break, `break_duration` at first,
  doubled on each failed probe up to `max_break_duration`.
- half_open: when the break is over, the next attempt is the probe and every
  other one is refused. The probe's success closes the circuit (fresh window,
  break back to `break_duration`); its failure reopens it for a doubled break.
  A probe that never reports (a hung attempt) holds the circuit for one break
  at most: then the next caller becomes the probe, and the late report of the
  old one is ignored, as is any report from a permit given out before the
  last state change.

Time is passed in (`now`, monotonic seconds), so every transition is tested
without sleeping. Each circuit has one small lock, held for a few arithmetic
operations; state changes are reported to `on_change(origin, old, new)` in the
order they happened, outside that lock, by the thread that caused them.
`Circuits` is a client's registry of circuits by origin, bounded in size.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeAlias

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "Circuits",
    "OnCircuitChange",
    "OriginCircuit",
    "Permit",
    "Refused",
    "coerce_circuit_breaker",
    "origin_of",
]

CircuitState: TypeAlias = Literal["closed", "open", "half_open"]
OnCircuitChange: TypeAlias = Callable[[str, CircuitState, CircuitState], None]

_BUCKETS = 10
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result) or result <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return result


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Circuit breaker settings (settings only: each client keeps the state per origin).

    Pass `circuit_breaker=CircuitBreaker(...)` (or `True` for these defaults)
    when creating a client. Per origin (`scheme://host:port`):

    - `failure_ratio`: the circuit opens when at least this share of the
      attempts in the window failed (a failure status or a transport error);
      0 < ratio <= 1, exactly at the ratio counts.
    - `min_calls`: ... provided the window holds at least this many attempts,
      so that a few failures on a quiet origin do not open it (int >= 1).
    - `window`: the rolling window, in seconds, over which attempts are counted.
    - `break_duration`: seconds the circuit stays open before one probe
      attempt is let through.
    - `max_break_duration`: each failed probe doubles the break, up to this
      many seconds (>= `break_duration`); a successful probe resets it.
    - `clock`: monotonic seconds; None uses the client's `clock=`.
    """

    failure_ratio: float = 0.5
    min_calls: int = 20
    window: float = 30.0
    break_duration: float = 5.0
    max_break_duration: float = 60.0
    clock: Callable[[], float] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        ratio = _number("failure_ratio", self.failure_ratio)
        if ratio > 1:
            raise ValueError(f"failure_ratio must be in (0, 1], got {self.failure_ratio!r}")
        set_(self, "failure_ratio", ratio)
        if isinstance(self.min_calls, bool) or not isinstance(self.min_calls, int):
            raise TypeError(f"min_calls must be an int, not {type(self.min_calls).__name__}")
        if self.min_calls < 1:
            raise ValueError(f"min_calls must be >= 1, got {self.min_calls}")
        set_(self, "window", _number("window", self.window))
        set_(self, "break_duration", _number("break_duration", self.break_duration))
        set_(self, "max_break_duration", _number("max_break_duration", self.max_break_duration))
        if self.max_break_duration < self.break_duration:
            raise ValueError(
                f"max_break_duration ({self.max_break_duration}) must be >= "
                f"break_duration ({self.break_duration})"
            )
        if self.clock is not None and not callable(self.clock):
            raise TypeError(f"clock must be callable, not {type(self.clock).__name__}")


def coerce_circuit_breaker(value: object) -> CircuitBreaker | None:
    """The `circuit_breaker=` option as settings: True means the defaults, False/None off."""
    if value is None or value is False:
        return None
    if value is True:
        return CircuitBreaker()
    if isinstance(value, CircuitBreaker):
        return value
    raise TypeError(
        f"circuit_breaker must be True, False, None or a CircuitBreaker, not {type(value).__name__}"
    )


def origin_of(scheme: str, host: str, port: int | None) -> str:
    """`scheme://host:port` for a URL's parts (`httpx.URL.scheme/.host/.port`).

    The default port is filled in, so `https://h` and `https://h:443` share a
    circuit; an IPv6 host is bracketed.
    """
    scheme = scheme.lower()
    host = host.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None:
        port = _DEFAULT_PORTS.get(scheme)
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


@dataclass(frozen=True, slots=True, eq=False)
class Permit:
    """Leave to send one attempt; hand it back to `record` or `release`.

    `probe` is True for the half-open circuit's one probe: its outcome decides
    whether the circuit closes or opens again.
    """

    circuit: OriginCircuit
    probe: bool
    epoch: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The circuit refuses the attempt: send nothing.

    `retry_after` is the number of seconds until the next probe may go (the
    value of `HTTPAioCircuitOpenError.retry_after`); `state` is "open" or
    "half_open" (a probe is already out).
    """

    origin: str
    state: CircuitState
    retry_after: float


class OriginCircuit:
    """One origin's circuit: the state machine, thread-safe, time passed in.

    Methods take `now` (monotonic seconds; `Circuits` passes its clock's
    reading, and the small reorderings between threads that read the clock
    before taking the lock are harmless). Exceptions from `on_change`
    propagate to the caller after the state has changed.
    """

    __slots__ = (
        "_break",
        "_calls",
        "_closed_permit",
        "_epoch",
        "_failures",
        "_in_flight",
        "_lock",
        "_notify_lock",
        "_on_change",
        "_pending",
        "_probe_out",
        "_slot",
        "_slot_calls",
        "_slot_failures",
        "_slot_len",
        "_state",
        "_until",
        "last_used",
        "origin",
        "settings",
    )

    def __init__(
        self,
        origin: str,
        settings: CircuitBreaker,
        on_change: OnCircuitChange | None = None,
        *,
        now: float = 0.0,
    ) -> None:
        self.origin = origin
        self.settings = settings
        self.last_used = now
        self._on_change = on_change
        self._lock = threading.Lock()
        self._notify_lock = threading.RLock()
        self._pending: deque[tuple[CircuitState, CircuitState]] = deque()
        self._state: CircuitState = "closed"
        self._epoch = 0
        self._closed_permit = Permit(self, False, 0)
        self._break = settings.break_duration
        self._until = 0.0  # open: end of the break; half_open: end of the probe's lease
        self._probe_out = False
        self._in_flight = 0
        self._slot_len = settings.window / _BUCKETS
        self._slot = math.floor(now / self._slot_len)
        self._slot_calls = [0] * _BUCKETS
        self._slot_failures = [0] * _BUCKETS
        self._calls = 0
        self._failures = 0

    def __repr__(self) -> str:
        return f"<OriginCircuit {self.origin} {self._state}>"

    # -- public API ---------------------------------------------------------

    def acquire(self, now: float) -> Permit | Refused:
        """A permit to send one attempt now, or the refusal while open or probing."""
        with self._lock:
            self.last_used = now
            if self._state == "closed":
                self._in_flight += 1
                return self._closed_permit
            if self._state == "open":
                if now < self._until:
                    return Refused(self.origin, "open", self._left(now))
                self._move("half_open")
            elif self._probe_out and now < self._until:
                return Refused(self.origin, "half_open", self._left(now))
            # half-open and no live probe: this caller is the probe (a new epoch
            # makes the report of an expired probe stale).
            self._epoch += 1
            self._probe_out = True
            self._until = now + self._break
            self._in_flight += 1
            permit = Permit(self, True, self._epoch)
        self._notify()
        return permit

    def record(self, permit: Permit, success: bool, now: float) -> None:
        """How the attempt sent under `permit` ended: True for a good answer.

        A failure is a failure status or a transport error; an answer the
        caller merely does not like (a 404) is a success for the circuit.
        """
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            if permit.epoch != self._epoch:
                return  # given out before the last state change: no say any more
            if permit.probe:
                self._probe_out = False
                if success:
                    self._break = self.settings.break_duration
                    self._clear_window(now)
                    self._move("closed")
                else:
                    self._break = min(self._break * 2.0, self.settings.max_break_duration)
                    self._until = now + self._break
                    self._move("open")
            else:
                index = self._advance(now)
                self._slot_calls[index] += 1
                self._calls += 1
                if success:
                    return
                self._slot_failures[index] += 1
                self._failures += 1
                settings = self.settings
                if (
                    self._calls < settings.min_calls
                    or self._failures / self._calls < settings.failure_ratio
                ):
                    return
                self._until = now + self._break
                self._move("open")
        self._notify()

    def release(self, permit: Permit, now: float) -> None:
        """The attempt ended without a verdict (cancelled): count nothing.

        A released probe lets the next caller probe at once.
        """
        with self._lock:
            self._in_flight = max(0, self._in_flight - 1)
            if permit.probe and permit.epoch == self._epoch:
                self._probe_out = False

    def state(self, now: float) -> CircuitState:
        """The state at `now` ("half_open" once an open circuit's break is over)."""
        with self._lock:
            if self._state == "open" and now >= self._until:
                self._move("half_open")
            state = self._state
        self._notify()
        return state

    def allows_retry(self, now: float) -> bool:
        """Whether a retry (or a hedge) may be spent on this origin: only while closed.

        The retry loop asks before it sleeps and before the retry budget, so
        no retry goes into an open circuit and none is charged to the budget.
        """
        return self.state(now) == "closed"

    def retry_after(self, now: float) -> float:
        """Seconds until the next probe may go; 0 when an attempt would be let through."""
        with self._lock:
            if self._state == "closed" or (self._state == "half_open" and not self._probe_out):
                return 0.0
            return max(0.0, self._left(now))

    @property
    def counts(self) -> tuple[int, int]:
        """(attempts, failures) in the window as last updated (for logs and tests)."""
        return self._calls, self._failures

    @property
    def idle(self) -> bool:
        """Closed with nothing in flight: forgetting it loses at most its window."""
        return self._state == "closed" and self._in_flight == 0

    @property
    def blank(self) -> bool:
        """Idle with an empty window: forgetting it loses nothing."""
        return self.idle and self._calls == 0

    # -- under the lock -----------------------------------------------------

    def _left(self, now: float) -> float:
        # never more than the break, whatever `now + break - now` rounds to
        return min(self._until - now, self._break)

    def _move(self, new: CircuitState) -> None:
        old = self._state
        self._state = new
        self._epoch += 1
        if new == "closed":
            self._closed_permit = Permit(self, False, self._epoch)
        if self._on_change is not None:
            self._pending.append((old, new))

    def _advance(self, now: float) -> int:
        slot = math.floor(now / self._slot_len)
        gap = slot - self._slot
        if gap > 0:
            if gap >= _BUCKETS:
                self._clear_window(now)
                return slot % _BUCKETS
            for i in range(self._slot + 1, slot + 1):
                index = i % _BUCKETS
                self._calls -= self._slot_calls[index]
                self._failures -= self._slot_failures[index]
                self._slot_calls[index] = 0
                self._slot_failures[index] = 0
            self._slot = slot
        return self._slot % _BUCKETS

    def _clear_window(self, now: float) -> None:
        self._slot = math.floor(now / self._slot_len)
        self._slot_calls = [0] * _BUCKETS
        self._slot_failures = [0] * _BUCKETS
        self._calls = 0
        self._failures = 0

    # -- outside the lock ---------------------------------------------------

    def _notify(self) -> None:
        """Deliver queued state changes in order, one thread at a time."""
        if not self._pending or self._on_change is None:
            return
        with self._notify_lock:
            while True:
                try:
                    old, new = self._pending.popleft()
                except IndexError:
                    return
                self._on_change(self.origin, old, new)


class Circuits:
    """A client's circuits by origin, made on demand, at most `max_origins` kept.

    When full, a quarter of the circuits is forgotten at once (so the cost is
    amortised): first closed ones with an empty window and nothing in flight,
    then other closed idle ones, least recently used first, and only then
    open ones. A forgotten origin starts closed again on its next attempt.
    """

    __slots__ = ("_circuits", "_lock", "clock", "max_origins", "on_change", "settings")

    def __init__(
        self,
        settings: CircuitBreaker,
        *,
        clock: Callable[[], float],
        on_change: OnCircuitChange | None = None,
        max_origins: int = 1024,
    ) -> None:
        if isinstance(max_origins, bool) or not isinstance(max_origins, int) or max_origins < 1:
            raise ValueError(f"max_origins must be an int >= 1, got {max_origins!r}")
        self.settings = settings
        self.clock: Callable[[], float] = settings.clock or clock
        self.on_change = on_change
        self.max_origins = max_origins
        self._circuits: dict[str, OriginCircuit] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._circuits)

    def __contains__(self, origin: object) -> bool:
        return origin in self._circuits

    def get(self, origin: str) -> OriginCircuit:
        """The origin's circuit, made (closed) on first use."""
        circuit = self._circuits.get(origin)  # a dict lookup is atomic: no lock on the hot path
        if circuit is not None:
            return circuit
        with self._lock:
            circuit = self._circuits.get(origin)
            if circuit is None:
                now = self.clock()
                if len(self._circuits) >= self.max_origins:
                    self._evict()
                circuit = OriginCircuit(origin, self.settings, self.on_change, now=now)
                self._circuits[origin] = circuit
            return circuit

    def acquire(self, origin: str) -> Permit | Refused:
        """`OriginCircuit.acquire` on the origin's circuit at the clock's time."""
        return self.get(origin).acquire(self.clock())

    def record(self, permit: Permit, success: bool) -> None:
        """`OriginCircuit.record` at the clock's time."""
        permit.circuit.record(permit, success, self.clock())

    def release(self, permit: Permit) -> None:
        """`OriginCircuit.release` at the clock's time."""
        permit.circuit.release(permit, self.clock())

    def allows_retry(self, origin: str) -> bool:
        """`OriginCircuit.allows_retry` at the clock's time (True for an unknown origin)."""
        circuit = self._circuits.get(origin)
        return circuit is None or circuit.allows_retry(self.clock())

    def _evict(self) -> None:
        keep = self.max_origins - max(1, self.max_origins // 4)
        ranked = sorted(
            self._circuits.values(),
            key=lambda c: (not c.blank, not c.idle, c.last_used),
        )
        for circuit in ranked[: len(ranked) - keep]:
            del self._circuits[circuit.origin]
