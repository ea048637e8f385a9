"""The circuit breaker's pure state machine: transitions, probes, window, registry, threads."""

from __future__ import annotations

import random
import sys
import threading
import time
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cf._breaker import (
    CircuitBreaker,
    Circuits,
    CircuitState,
    OriginCircuit,
    Permit,
    Refused,
    coerce_circuit_breaker,
    origin_of,
)

ORIGIN = "https://api.example:443"


# -- settings ---------------------------------------------------------------


def test_defaults_match_the_spec() -> None:
    breaker = CircuitBreaker()
    assert breaker.failure_ratio == 0.5
    assert breaker.min_calls == 20
    assert breaker.window == 30.0
    assert breaker.break_duration == 5.0
    assert breaker.max_break_duration == 60.0
    assert breaker.clock is None
    with pytest.raises(AttributeError):
        breaker.min_calls = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"failure_ratio": 0}, ValueError, "failure_ratio", id="ratio-zero"),
        pytest.param({"failure_ratio": 1.5}, ValueError, "failure_ratio", id="ratio-above-one"),
        pytest.param({"failure_ratio": float("nan")}, ValueError, "failure_ratio", id="ratio-nan"),
        pytest.param({"failure_ratio": "0.5"}, TypeError, "failure_ratio", id="ratio-str"),
        pytest.param({"min_calls": 0}, ValueError, "min_calls", id="min-calls-zero"),
        pytest.param({"min_calls": 2.0}, TypeError, "min_calls", id="min-calls-float"),
        pytest.param({"min_calls": True}, TypeError, "min_calls", id="min-calls-bool"),
        pytest.param({"window": 0}, ValueError, "window", id="window-zero"),
        pytest.param({"window": float("inf")}, ValueError, "window", id="window-inf"),
        pytest.param({"break_duration": -1}, ValueError, "break_duration", id="break-negative"),
        pytest.param({"break_duration": None}, TypeError, "break_duration", id="break-none"),
        pytest.param({"max_break_duration": 4.0}, ValueError, "max_break", id="max-below-break"),
        pytest.param({"clock": 3.0}, TypeError, "clock", id="clock-not-callable"),
    ],
)
def test_bad_settings_raise(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        CircuitBreaker(**kwargs)


def test_ints_become_floats() -> None:
    breaker = CircuitBreaker(failure_ratio=1, window=10, break_duration=1, max_break_duration=1)
    assert isinstance(breaker.failure_ratio, float)
    assert isinstance(breaker.window, float)
    assert breaker.break_duration == breaker.max_break_duration == 1.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param(False, None, id="false"),
        pytest.param(True, CircuitBreaker(), id="true"),
        pytest.param(CircuitBreaker(min_calls=3), CircuitBreaker(min_calls=3), id="instance"),
    ],
)
def test_coerce_option(value: object, expected: CircuitBreaker | None) -> None:
    assert coerce_circuit_breaker(value) == expected


@pytest.mark.parametrize("value", [1, "on", {"min_calls": 3}])
def test_coerce_rejects_other_types(value: object) -> None:
    with pytest.raises(TypeError, match="circuit_breaker must be"):
        coerce_circuit_breaker(value)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        pytest.param(("https", "api.example", None), "https://api.example:443", id="https-default"),
        pytest.param(("http", "API.Example", None), "http://api.example:80", id="http-lowercase"),
        pytest.param(("https", "h", 443), "https://h:443", id="explicit-default"),
        pytest.param(("http", "h", 8080), "http://h:8080", id="explicit-port"),
        pytest.param(("http", "::1", 8080), "http://[::1]:8080", id="ipv6"),
        pytest.param(("foo", "h", None), "foo://h", id="unknown-scheme"),
    ],
)
def test_origin_of(parts: tuple[str, str, int | None], expected: str) -> None:
    assert origin_of(*parts) == expected


# -- the state machine, table-driven ------------------------------------------


class Driver:
    """Runs steps against one circuit and records what `on_change` saw."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.changes: list[tuple[CircuitState, CircuitState]] = []
        self.now = 0.0
        self.circuit = OriginCircuit(ORIGIN, breaker, self._changed, now=0.0)

    def _changed(self, origin: str, old: CircuitState, new: CircuitState) -> None:
        assert origin == ORIGIN
        self.changes.append((old, new))

    def step(self, verb: str, arg: Any) -> None:
        circuit, now = self.circuit, self.now
        if verb == "at":
            self.now = float(arg)
        elif verb in ("ok", "fail"):
            for _ in range(arg):
                permit = circuit.acquire(now)
                assert isinstance(permit, Permit), permit
                assert not permit.probe
                circuit.record(permit, verb == "ok", now)
        elif verb == "probe":
            permit = circuit.acquire(now)
            assert isinstance(permit, Permit), permit
            assert permit.probe
            circuit.record(permit, arg, now)
        elif verb == "refused":
            state, retry_after = arg
            refusal = circuit.acquire(now)
            assert isinstance(refusal, Refused), refusal
            assert refusal.origin == ORIGIN
            assert refusal.state == state
            assert refusal.retry_after == pytest.approx(retry_after)
        elif verb == "state":
            assert circuit.state(now) == arg
        else:  # pragma: no cover - a typo in the table
            raise AssertionError(verb)


CLOSED_OPEN = ("closed", "open")
OPEN_HALF = ("open", "half_open")
HALF_OPEN = ("half_open", "open")
HALF_CLOSED = ("half_open", "closed")

SCENARIOS = [
    pytest.param(
        {},
        [("fail", 19), ("state", "closed")],
        [],
        id="min-calls-not-reached",
    ),
    pytest.param(
        {},
        [("fail", 20), ("state", "open"), ("refused", ("open", 5.0))],
        [CLOSED_OPEN],
        id="all-failing-opens-at-min-calls",
    ),
    pytest.param(
        {},
        [("ok", 10), ("fail", 10), ("state", "open")],
        [CLOSED_OPEN],
        id="ratio-exactly-at-threshold-opens",
    ),
    pytest.param(
        {},
        [("ok", 11), ("fail", 9), ("ok", 5), ("fail", 4), ("state", "closed")],
        [],
        id="ratio-below-threshold-stays-closed",
    ),
    pytest.param(
        {"failure_ratio": 0.1, "min_calls": 30},
        [("ok", 27), ("fail", 3), ("state", "open")],
        [CLOSED_OPEN],
        id="ratio-0.1-exactly-3-of-30",
    ),
    pytest.param(
        {},
        [("fail", 10), ("ok", 10), ("state", "closed"), ("fail", 1), ("state", "open")],
        [CLOSED_OPEN],
        id="a-success-never-opens-the-next-failure-does",
    ),
    pytest.param(
        {},
        [("fail", 19), ("at", 30.0), ("fail", 1), ("state", "closed")],
        [],
        id="window-expiry-forgets-old-failures",
    ),
    pytest.param(
        {},
        [("fail", 10), ("at", 26.9), ("fail", 10), ("state", "open")],
        [CLOSED_OPEN],
        id="failures-within-the-window-add-up",
    ),
    pytest.param(
        {},
        [("ok", 100), ("at", 31.0), ("fail", 20), ("state", "open")],
        [CLOSED_OPEN],
        id="old-successes-expire-too",
    ),
    pytest.param(
        {},
        [
            ("at", 100.0),
            ("fail", 20),
            ("at", 102.0),
            ("refused", ("open", 3.0)),
            ("at", 104.999),
            ("state", "open"),
            ("at", 105.0),
            ("state", "half_open"),
            ("probe", True),
            ("state", "closed"),
            ("ok", 1),
        ],
        [CLOSED_OPEN, OPEN_HALF, HALF_CLOSED],
        id="open-break-then-probe-success-closes",
    ),
    pytest.param(
        {},
        [("fail", 20), ("at", 5.0), ("probe", False), ("refused", ("open", 10.0))],
        [CLOSED_OPEN, OPEN_HALF, HALF_OPEN],
        id="probe-failure-reopens-for-double",
    ),
    pytest.param(
        {},
        [
            ("fail", 20),
            ("at", 5.0),
            ("probe", False),  # break 10
            ("at", 15.0),
            ("probe", False),  # 20
            ("at", 35.0),
            ("probe", False),  # 40
            ("at", 75.0),
            ("probe", False),  # 60, the max
            ("refused", ("open", 60.0)),
            ("at", 135.0),
            ("probe", False),  # still 60
            ("refused", ("open", 60.0)),
            ("at", 195.0),
            ("probe", True),
            ("fail", 20),
            ("refused", ("open", 5.0)),  # a success reset the break
        ],
        [CLOSED_OPEN] + [OPEN_HALF, HALF_OPEN] * 5 + [OPEN_HALF, HALF_CLOSED, CLOSED_OPEN],
        id="break-doubles-up-to-the-max-and-resets",
    ),
    pytest.param(
        {},
        [("fail", 20), ("at", 5.0), ("probe", True), ("fail", 19), ("state", "closed")],
        [CLOSED_OPEN, OPEN_HALF, HALF_CLOSED],
        id="closing-resets-the-window",
    ),
    pytest.param(
        {"min_calls": 1, "failure_ratio": 1.0, "break_duration": 0.5, "max_break_duration": 0.5},
        [("fail", 1), ("at", 0.5), ("probe", False), ("refused", ("open", 0.5))],
        [CLOSED_OPEN, OPEN_HALF, HALF_OPEN],
        id="break-equal-to-max-never-grows",
    ),
]


@pytest.mark.parametrize(("kwargs", "steps", "changes"), SCENARIOS)
def test_state_machine(
    kwargs: dict[str, Any],
    steps: list[tuple[str, Any]],
    changes: list[tuple[str, str]],
) -> None:
    driver = Driver(CircuitBreaker(**kwargs))
    for verb, arg in steps:
        driver.step(verb, arg)
    assert driver.changes == changes


def opened(now: float = 0.0) -> Driver:
    driver = Driver(CircuitBreaker())
    driver.now = now
    driver.step("fail", 20)
    return driver


def test_half_open_refuses_everyone_but_the_probe() -> None:
    driver = opened()
    circuit = driver.circuit
    probe = circuit.acquire(5.0)
    assert isinstance(probe, Permit) and probe.probe
    for now in (5.0, 6.0, 9.99):
        refusal = circuit.acquire(now)
        assert isinstance(refusal, Refused)
        assert refusal.state == "half_open"
        assert refusal.retry_after == pytest.approx(10.0 - now)  # the probe's lease
        assert circuit.retry_after(now) == pytest.approx(10.0 - now)
    assert not circuit.allows_retry(6.0)
    circuit.record(probe, True, 7.0)
    assert circuit.state(7.0) == "closed"
    assert circuit.allows_retry(7.0)
    assert driver.changes == [CLOSED_OPEN, OPEN_HALF, HALF_CLOSED]


def test_a_released_probe_lets_the_next_caller_probe() -> None:
    circuit = opened().circuit
    first = circuit.acquire(5.0)
    assert isinstance(first, Permit) and first.probe
    circuit.release(first, 5.5)
    assert circuit.state(5.5) == "half_open"
    assert circuit.retry_after(5.5) == 0.0
    second = circuit.acquire(5.5)
    assert isinstance(second, Permit) and second.probe
    circuit.record(first, False, 5.6)  # released: its late report counts for nothing
    assert circuit.state(5.6) == "half_open"
    circuit.record(second, True, 5.7)
    assert circuit.state(5.7) == "closed"


def test_a_hung_probe_holds_the_circuit_for_one_break_only() -> None:
    driver = opened()
    circuit = driver.circuit
    hung = circuit.acquire(5.0)
    assert isinstance(hung, Permit) and hung.probe
    assert isinstance(circuit.acquire(9.9), Refused)
    fresh = circuit.acquire(10.0)
    assert isinstance(fresh, Permit) and fresh.probe
    circuit.record(hung, True, 10.1)  # stale: it does not close the circuit
    assert circuit.state(10.1) == "half_open"
    assert isinstance(circuit.acquire(10.1), Refused)  # the fresh probe is still out
    circuit.record(fresh, False, 10.2)
    assert circuit.state(10.2) == "open"
    assert circuit.retry_after(10.2) == pytest.approx(10.0)
    assert driver.changes == [CLOSED_OPEN, OPEN_HALF, HALF_OPEN]


def test_permits_from_before_a_state_change_have_no_say() -> None:
    driver = Driver(CircuitBreaker())
    circuit = driver.circuit
    late = [circuit.acquire(0.0) for _ in range(30)]
    driver.step("fail", 20)
    assert circuit.state(0.0) == "open"
    for permit in late[:10]:  # answers arriving while open
        assert isinstance(permit, Permit)
        circuit.record(permit, True, 1.0)
    assert circuit.state(1.0) == "open"
    probe = circuit.acquire(5.0)
    assert isinstance(probe, Permit) and probe.probe
    for i, permit in enumerate(late[10:20]):  # ... while half-open: neither closes nor reopens
        assert isinstance(permit, Permit)
        circuit.record(permit, i % 2 == 0, 5.0)
    assert circuit.state(5.0) == "half_open"
    circuit.record(probe, True, 5.0)
    for permit in late[20:]:  # ... after recovery: not counted in the fresh window
        assert isinstance(permit, Permit)
        circuit.record(permit, False, 6.0)
    assert circuit.counts == (0, 0)
    driver.now = 6.0
    driver.step("fail", 19)
    assert circuit.state(6.0) == "closed"


def test_state_reports_half_open_without_an_attempt_once() -> None:
    driver = opened()
    assert driver.circuit.state(4.0) == "open"
    assert driver.circuit.state(5.0) == "half_open"
    assert driver.circuit.state(50.0) == "half_open"
    assert driver.changes == [CLOSED_OPEN, OPEN_HALF]


def test_retry_after_follows_the_break() -> None:
    circuit = opened(10.0).circuit
    assert circuit.retry_after(0.0 + 10.0) == pytest.approx(5.0)
    assert circuit.retry_after(13.0) == pytest.approx(2.0)
    assert circuit.retry_after(20.0) == 0.0


def test_retry_after_never_exceeds_the_break_despite_rounding() -> None:
    breaker = CircuitBreaker(min_calls=1, break_duration=3.0, max_break_duration=3.0)
    circuit = OriginCircuit(ORIGIN, breaker)
    now = 1.9939088357753874  # found by hypothesis: now + 3.0 - now == 3.0000000000000004
    permit = circuit.acquire(now)
    assert isinstance(permit, Permit)
    circuit.record(permit, False, now)
    refusal = circuit.acquire(now)
    assert isinstance(refusal, Refused)
    assert refusal.retry_after == circuit.retry_after(now) == 3.0


def test_callbacks_run_outside_the_lock_and_in_order() -> None:
    seen: list[tuple[str, str]] = []
    circuit: OriginCircuit

    def on_change(origin: str, old: CircuitState, new: CircuitState) -> None:
        # re-entering the circuit would deadlock if the callback ran under its lock
        seen.append((old, new))
        circuit.state(100.0 if new == "open" else 0.0)

    circuit = OriginCircuit(ORIGIN, CircuitBreaker(min_calls=1), on_change)
    permit = circuit.acquire(0.0)
    assert isinstance(permit, Permit)
    circuit.record(permit, False, 0.0)
    # the callback for "open" asked for the state at t=100: the half-open change was
    # queued while "open" was being delivered, and delivered after it
    assert seen == [CLOSED_OPEN, OPEN_HALF]


def test_a_failing_callback_changes_the_state_and_then_raises() -> None:
    def on_change(origin: str, old: CircuitState, new: CircuitState) -> None:
        raise RuntimeError("boom")

    circuit = OriginCircuit(ORIGIN, CircuitBreaker(min_calls=1), on_change)
    permit = circuit.acquire(0.0)
    assert isinstance(permit, Permit)
    with pytest.raises(RuntimeError, match="boom"):
        circuit.record(permit, False, 0.0)
    refusal = circuit.acquire(1.0)
    assert isinstance(refusal, Refused) and refusal.state == "open"


def test_no_callback_is_fine() -> None:
    circuit = OriginCircuit(ORIGIN, CircuitBreaker(min_calls=1))
    permit = circuit.acquire(0.0)
    assert isinstance(permit, Permit)
    circuit.record(permit, False, 0.0)
    assert circuit.state(5.0) == "half_open"
    assert repr(circuit) == f"<OriginCircuit {ORIGIN} half_open>"


# -- random sequences: the invariants -----------------------------------------

ALLOWED = {CLOSED_OPEN, OPEN_HALF, HALF_OPEN, HALF_CLOSED}


class CircuitMachine(RuleBasedStateMachine):
    """Random attempts, outcomes, releases and clock steps against one circuit.

    A model of the expected break follows the reported changes; every
    change must be a documented one, caused by the operation that may cause it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.changes: list[tuple[CircuitState, CircuitState]] = []
        self.out: list[tuple[Permit, float]] = []  # permits not yet handed back, issued at
        self.break_ = 0.0
        self.opened_at: float | None = None
        self.circuit: OriginCircuit

    @initialize(
        ratio=st.sampled_from([0.25, 0.5, 1.0]),
        min_calls=st.integers(1, 5),
        window=st.sampled_from([1.0, 10.0]),
        break_=st.sampled_from([0.5, 1.0, 3.0]),
        factor=st.sampled_from([1, 2, 5]),
    )
    def setup(
        self, ratio: float, min_calls: int, window: float, break_: float, factor: int
    ) -> None:
        self.settings = CircuitBreaker(
            failure_ratio=ratio,
            min_calls=min_calls,
            window=window,
            break_duration=break_,
            max_break_duration=break_ * factor,
        )
        self.break_ = break_
        self.circuit = OriginCircuit(ORIGIN, self.settings, self._changed)

    def _changed(self, origin: str, old: CircuitState, new: CircuitState) -> None:
        self.changes.append((old, new))

    def _run(self, allowed: set[tuple[str, str]], fn: Any, *args: Any) -> Any:
        before = len(self.changes)
        result = fn(*args)
        for change in self.changes[before:]:
            assert change in ALLOWED
            assert change in allowed, (change, fn)
            old, new = change
            if new == "open":
                if old == "half_open":
                    self.break_ = min(self.break_ * 2, self.settings.max_break_duration)
                self.opened_at = self.now
            if change == OPEN_HALF:
                assert self.opened_at is not None
                assert self.now >= self.opened_at + self.break_
            if new == "closed":
                self.break_ = self.settings.break_duration
        return result

    @rule(dt=st.floats(0.0, 4.0))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule()
    def acquire(self) -> None:
        result = self._run({OPEN_HALF}, self.circuit.acquire, self.now)
        if isinstance(result, Refused):
            assert result.state in ("open", "half_open")
            assert 0.0 < result.retry_after <= self.settings.max_break_duration
            return
        if result.probe:
            # never two probes at once: any other probe still out has outlived its lease
            for other, issued in self.out:
                if other.probe:
                    assert self.now >= issued + self.break_
        self.out.append((result, self.now))

    @rule(data=st.data(), success=st.booleans())
    def record(self, data: st.DataObject, success: bool) -> None:
        if not self.out:
            return
        permit, _ = self.out.pop(data.draw(st.integers(0, len(self.out) - 1)))
        if permit.probe:
            allowed = {HALF_CLOSED} if success else {HALF_OPEN}
        else:
            allowed = set() if success else {CLOSED_OPEN}
        self._run(allowed, self.circuit.record, permit, success, self.now)

    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        if self.out:
            permit, _ = self.out.pop(data.draw(st.integers(0, len(self.out) - 1)))
            self._run(set(), self.circuit.release, permit, self.now)

    @invariant()
    def consistent(self) -> None:
        if not hasattr(self, "circuit"):
            return
        state = self._run({OPEN_HALF}, self.circuit.state, self.now)
        for (_, new), (old, _) in zip(self.changes, self.changes[1:], strict=False):
            assert new == old  # one chain of changes
        expected = self.changes[-1][1] if self.changes else "closed"
        assert state == expected
        assert self.break_ <= self.settings.max_break_duration
        if state == "open":  # open never lasts beyond its break
            assert self.opened_at is not None
            assert self.now < self.opened_at + self.break_
            assert self.circuit.retry_after(self.now) == pytest.approx(
                self.opened_at + self.break_ - self.now
            )
        calls, failures = self.circuit.counts
        assert 0 <= failures <= calls


TestCircuitMachine = CircuitMachine.TestCase
TestCircuitMachine.settings = settings(max_examples=150, stateful_step_count=60, deadline=None)


# -- the registry ---------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_circuits_are_per_origin_and_made_on_demand() -> None:
    clock = FakeClock()
    changes: list[tuple[str, str, str]] = []
    circuits = Circuits(
        CircuitBreaker(min_calls=2),
        clock=clock,
        on_change=lambda o, a, b: changes.append((o, a, b)),
    )
    assert len(circuits) == 0
    assert circuits.allows_retry("http://a:80")  # unknown: nothing against it
    assert len(circuits) == 0
    a = circuits.get("http://a:80")
    assert circuits.get("http://a:80") is a
    for _ in range(2):
        permit = circuits.acquire("http://a:80")
        assert isinstance(permit, Permit) and permit.circuit is a
        circuits.record(permit, False)
    assert isinstance(circuits.acquire("http://a:80"), Refused)
    assert not circuits.allows_retry("http://a:80")
    other = circuits.acquire("http://b:80")  # another origin is unaffected
    assert isinstance(other, Permit)
    circuits.release(other)
    clock.now = 5.0
    probe = circuits.acquire("http://a:80")
    assert isinstance(probe, Permit) and probe.probe
    circuits.record(probe, True)
    assert circuits.allows_retry("http://a:80")
    assert changes == [
        ("http://a:80", "closed", "open"),
        ("http://a:80", "open", "half_open"),
        ("http://a:80", "half_open", "closed"),
    ]


def test_the_breaker_clock_wins_over_the_client_clock() -> None:
    mine = FakeClock()
    circuits = Circuits(CircuitBreaker(clock=mine), clock=lambda: 1e9)
    assert circuits.clock is mine
    assert Circuits(CircuitBreaker(), clock=mine).clock is mine


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_bad_max_origins(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_origins"):
        Circuits(CircuitBreaker(), clock=FakeClock(), max_origins=bad)


def test_the_registry_stays_bounded() -> None:
    clock = FakeClock()
    circuits = Circuits(CircuitBreaker(), clock=clock, max_origins=100)
    for i in range(10_000):
        clock.now = i * 0.001
        permit = circuits.acquire(f"http://h{i}:80")
        assert isinstance(permit, Permit)
        circuits.record(permit, True)
        assert len(circuits) <= 100


def test_eviction_forgets_blank_then_idle_closed_then_open() -> None:
    clock = FakeClock()
    circuits = Circuits(CircuitBreaker(min_calls=1), clock=clock, max_origins=8)

    def use(origin: str, success: bool | None) -> None:
        clock.now += 1.0
        permit = circuits.acquire(origin)
        assert isinstance(permit, Permit)
        if success is not None:
            circuits.record(permit, success)

    use("http://open0:80", False)  # open, and the least recently used
    use("http://open1:80", False)
    use("http://busy0:80", None)  # an attempt in flight
    use("http://busy1:80", None)
    use("http://used0:80", True)  # closed, idle, with a success in the window
    use("http://used1:80", True)
    use("http://used2:80", True)
    circuits.get("http://blank:80")  # closed and blank, the most recently made
    assert len(circuits) == 8
    use("http://new0:80", True)  # full: a quarter (2) goes: the blank one, then used0
    assert len(circuits) == 7
    assert "http://blank:80" not in circuits and "http://used0:80" not in circuits
    use("http://new1:80", True)
    use("http://new2:80", True)  # full again: used1 and used2 go
    assert "http://used1:80" not in circuits and "http://used2:80" not in circuits
    use("http://new3:80", True)
    use("http://new4:80", True)  # full again: new0 and new1; open and busy circuits stay
    assert "http://new0:80" not in circuits and "http://new1:80" not in circuits
    for kept in ("open0", "open1", "busy0", "busy1", "new2", "new3", "new4"):
        assert f"http://{kept}:80" in circuits


def test_open_circuits_are_forgotten_last_but_the_bound_holds() -> None:
    clock = FakeClock()
    circuits = Circuits(CircuitBreaker(min_calls=1), clock=clock, max_origins=4)
    for i in range(10):
        clock.now += 1.0
        permit = circuits.acquire(f"http://h{i}:80")
        assert isinstance(permit, Permit)
        circuits.record(permit, False)
        assert len(circuits) <= 4
    assert "http://h9:80" in circuits and "http://h0:80" not in circuits


# -- real threads -----------------------------------------------------------------


def test_threads_hammering_one_origin() -> None:
    """Never two live probes, one ordered chain of changes, no lost update."""
    tick = threading.Lock()
    clock_value = [0.0]

    def clock() -> float:
        with tick:
            clock_value[0] += 0.0001
            return clock_value[0]

    breaker = CircuitBreaker(
        min_calls=5, window=0.05, break_duration=0.002, max_break_duration=0.01
    )
    changes: list[tuple[str, str]] = []

    def on_change(origin: str, old: CircuitState, new: CircuitState) -> None:
        time.sleep(0)  # a callback that lets other threads run (as logging does) before it acts
        changes.append((old, new))

    circuit = OriginCircuit(ORIGIN, breaker, on_change)
    book = threading.Lock()
    live_probes: list[float] = []  # the issue times of probes not yet handed back
    errors: list[str] = []
    counts = {"permits": 0, "refused": 0, "probes": 0}

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(3000):
            now = clock()
            result = circuit.acquire(now)
            if isinstance(result, Refused):
                with book:
                    counts["refused"] += 1
                continue
            with book:
                counts["permits"] += 1
                if result.probe:
                    counts["probes"] += 1
                    for issued in live_probes:  # registered in any order: compare both ways
                        if abs(now - issued) < breaker.break_duration - 1e-9:
                            errors.append(f"two probes at {issued} and {now}")
                    live_probes.append(now)
            success = rng.random() < 0.4
            if result.probe:
                with book:
                    live_probes.remove(now)
            if rng.random() < 0.05:
                circuit.release(result, clock())
            else:
                circuit.record(result, success, clock())

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not errors
    assert counts["permits"] + counts["refused"] == 8 * 3000
    assert counts["probes"] > 10 and counts["refused"] > 100  # it did go round
    assert changes and changes[0] == CLOSED_OPEN
    for change in changes:
        assert change in ALLOWED
    for (_, new), (old, _) in zip(changes, changes[1:], strict=False):
        assert new == old
    final = circuit.state(clock())
    assert final == changes[-1][1]
