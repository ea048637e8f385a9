"""Hedging's pure part: the settings, who may be hedged, the delay, the p95 tracker."""

from __future__ import annotations

import statistics
import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cf._backoff import IDEMPOTENT_METHODS
from cf._hedge import (
    FALLBACK_DELAY,
    MIN_SAMPLES,
    SAMPLES,
    Hedge,
    Latencies,
    LatencyTracker,
    coerce_hedge,
    may_hedge,
    next_hedge_delay,
)

fast = settings(max_examples=200, deadline=None)


# -- settings ---------------------------------------------------------------


def test_spec_numbers() -> None:
    assert (SAMPLES, MIN_SAMPLES, FALLBACK_DELAY) == (100, 20, 1.0)
    assert Hedge(delay=0.2).max_extra == 1
    assert Hedge(delay="p95", max_extra=3) == Hedge("p95", 3)
    hedge = Hedge(delay=1)
    assert hedge.delay == 1.0 and isinstance(hedge.delay, float)
    with pytest.raises(AttributeError):
        hedge.max_extra = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param({"delay": -0.1}, ValueError, "delay", id="negative-delay"),
        pytest.param({"delay": float("nan")}, ValueError, "delay", id="nan-delay"),
        pytest.param({"delay": float("inf")}, ValueError, "delay", id="inf-delay"),
        pytest.param({"delay": "p99"}, ValueError, "p95", id="other-percentile"),
        pytest.param({"delay": None}, TypeError, "delay", id="none-delay"),
        pytest.param({"delay": True}, TypeError, "delay", id="bool-delay"),
        pytest.param({"delay": 0.1, "max_extra": 0}, ValueError, "max_extra", id="no-extra"),
        pytest.param({"delay": 0.1, "max_extra": 11}, ValueError, "max_extra", id="too-many"),
        pytest.param({"delay": 0.1, "max_extra": 1.0}, TypeError, "max_extra", id="float-extra"),
        pytest.param({"delay": 0.1, "max_extra": True}, TypeError, "max_extra", id="bool-extra"),
    ],
)
def test_bad_settings_raise(kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        Hedge(**kwargs)


def test_zero_delay_is_allowed() -> None:
    assert Hedge(delay=0).delay == 0.0


def test_coerce_option() -> None:
    hedge = Hedge(delay=0.1)
    assert coerce_hedge(hedge) is hedge
    assert coerce_hedge(None) is None
    for bad in (True, 0.1, "p95", {"delay": 0.1}):
        with pytest.raises(TypeError, match="hedge must be"):
            coerce_hedge(bad)


# -- who may be hedged ----------------------------------------------------------

MAY_HEDGE = [
    ("GET", True, False, True),
    ("get", True, False, True),
    ("HEAD", True, False, True),
    ("OPTIONS", True, False, True),
    ("PUT", True, False, True),
    ("DELETE", True, False, True),
    ("TRACE", True, False, True),
    ("GET", False, False, False),  # a streamed body is sent once
    ("PUT", False, True, False),
    ("POST", True, False, False),
    ("PATCH", True, False, False),
    ("POST", True, True, True),  # Idempotency-Key
    ("PATCH", True, True, True),
    ("POST", False, True, False),
    ("CONNECT", True, True, False),  # the key only vouches for POST and PATCH
]


@pytest.mark.parametrize(
    ("method", "replayable", "key", "expected"),
    [pytest.param(*row, id=f"{row[0]}-replayable{row[1]}-key{row[2]}") for row in MAY_HEDGE],
)
def test_may_hedge(method: str, replayable: bool, key: bool, expected: bool) -> None:
    assert may_hedge(method, replayable=replayable, idempotency_key=key) is expected


def test_may_hedge_follows_the_policy_methods() -> None:
    assert not may_hedge("DELETE", replayable=True, idempotent_methods={"GET"})
    assert may_hedge("PURGE", replayable=True, idempotent_methods=IDEMPOTENT_METHODS | {"PURGE"})


# -- the delay ------------------------------------------------------------------


def never() -> float:
    raise AssertionError("p95 read for a fixed delay")


@pytest.mark.parametrize(
    ("hedge", "launched", "p95", "remaining", "expected"),
    [
        pytest.param(Hedge(0.2), 0, never, None, 0.2, id="fixed"),
        pytest.param(Hedge(0.2), 1, never, None, None, id="max-extra-reached"),
        pytest.param(Hedge(0.2, 3), 2, never, None, 0.2, id="third-of-three"),
        pytest.param(Hedge(0.2, 3), 3, never, None, None, id="all-three-sent"),
        pytest.param(Hedge("p95"), 0, lambda: 0.05, None, 0.05, id="p95"),
        pytest.param(Hedge(0.2), 0, never, 0.5, 0.2, id="deadline-far"),
        pytest.param(Hedge(0.2), 0, never, 0.2, None, id="deadline-at-the-delay"),
        pytest.param(Hedge("p95"), 0, lambda: 1.0, 0.3, None, id="p95-past-the-deadline"),
        pytest.param(Hedge(0), 0, never, None, 0.0, id="zero-delay"),
    ],
)
def test_next_hedge_delay(
    hedge: Hedge, launched: int, p95: Any, remaining: float | None, expected: float | None
) -> None:
    assert next_hedge_delay(hedge, launched=launched, p95=p95, remaining=remaining) == expected


# -- the p95 tracker ------------------------------------------------------------


def test_fallback_until_twenty_latencies_are_known() -> None:
    tracker = LatencyTracker()
    for i in range(19):
        tracker.add(0.01 * (i + 1))
        assert tracker.p95() == FALLBACK_DELAY
    tracker.add(0.2)  # the 20th
    assert len(tracker) == 20
    known = [0.01 * (i + 1) for i in range(19)] + [0.2]
    expected = statistics.quantiles(known, n=20, method="inclusive")[18]
    assert tracker.p95() == pytest.approx(expected)
    assert tracker.p95() < FALLBACK_DELAY


@pytest.mark.parametrize("bad", [-0.001, float("nan"), float("inf"), float("-inf")])
def test_bad_latencies_are_ignored(bad: float) -> None:
    tracker = LatencyTracker()
    tracker.add(bad)
    assert len(tracker) == 0


def test_only_the_last_hundred_count() -> None:
    tracker = LatencyTracker()
    for _ in range(100):
        tracker.add(10.0)
    assert tracker.p95() == 10.0
    for _ in range(100):
        tracker.add(0.01)
    assert len(tracker) == 100
    assert tracker.p95() == 0.01  # the cached 10.0 was dropped on the first add


@fast
@given(st.lists(st.floats(0.0, 30.0), min_size=0, max_size=350))
def test_p95_matches_statistics_quantiles(latencies: list[float]) -> None:
    tracker = LatencyTracker()
    for value in latencies:
        tracker.add(value)
    recent = latencies[-SAMPLES:]
    assert len(tracker) == len(recent)
    if len(recent) < MIN_SAMPLES:
        assert tracker.p95() == FALLBACK_DELAY
        return
    expected = statistics.quantiles(recent, n=20, method="inclusive")[18]
    assert tracker.p95() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert min(recent) <= tracker.p95() <= max(recent)
    assert tracker.p95() == tracker.p95()  # cached read, same value


def test_p95_stays_within_the_samples_when_the_arithmetic_rounds_up() -> None:
    # Found by hypothesis: 19/20 and 1/20 of the same float sum to one ulp above it.
    tracker = LatencyTracker()
    for value in [0.0] * 18 + [27.368502381754265] * 2:
        tracker.add(value)
    assert tracker.p95() == 27.368502381754265


def test_p95_of_a_slow_tail() -> None:
    tracker = LatencyTracker()
    for i in range(100):  # 98 fast, 2 slow, the tail benchmark's mix
        tracker.add(0.5 if i % 50 == 0 else 0.005)
    assert tracker.p95() == pytest.approx(0.005)


def test_tracker_under_threads() -> None:
    """Threads filling fresh trackers at once: never more than 100 kept, p95 in range."""
    wrong: list[str] = []
    barrier = threading.Barrier(8)

    def worker(value: float, trackers: list[LatencyTracker]) -> None:
        for tracker in trackers:
            barrier.wait()
            for _ in range(14):  # 8 x 14 = 112: the buffer fills while all add
                tracker.add(value)
            p95 = tracker.p95()
            if p95 != FALLBACK_DELAY and not 0.001 <= p95 <= 0.008 + 1e-12:
                wrong.append(f"p95 {p95}")

    trackers = [LatencyTracker() for _ in range(300)]
    threads = [threading.Thread(target=worker, args=(0.001 * (i + 1), trackers)) for i in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not wrong
    assert [len(t) for t in trackers] == [SAMPLES] * len(trackers)


# -- the registry ---------------------------------------------------------------


def test_latencies_per_origin() -> None:
    latencies = Latencies()
    for _ in range(30):
        latencies.add("http://a:80", 0.1)
    assert latencies.p95("http://a:80") == pytest.approx(0.1)
    assert latencies.p95("http://b:80") == FALLBACK_DELAY
    assert latencies.get("http://a:80") is latencies.get("http://a:80")
    assert len(latencies) == 2


def test_latencies_stay_bounded_and_keep_the_recently_used() -> None:
    latencies = Latencies(max_origins=10)
    for _ in range(30):
        latencies.add("http://hot:80", 0.1)
    for i in range(1000):
        latencies.add(f"http://h{i}:80", 0.1)
        latencies.get("http://hot:80")  # in use all along
        assert len(latencies) <= 10
    assert latencies.p95("http://hot:80") == pytest.approx(0.1)


@pytest.mark.parametrize("bad", [0, -5, 2.5, False])
def test_bad_max_origins(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_origins"):
        Latencies(max_origins=bad)
