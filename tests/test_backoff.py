"""The pure retry logic: safety matrix, backoff bounds, Retry-After, budget, urllib3."""

from __future__ import annotations

import email.utils

import pytest
import urllib3
from hypothesis import given
from hypothesis import strategies as st

from cf._backoff import Failure, RetryBudget, RetryPolicy, Stop, decide, parse_retry_after
from cf.infrastructure.backoff import DEFAULT_FAILURE_STATUSES

NOW = 1_700_000_000.0


def always(value: float):
    return lambda: value


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_defaults_match_the_spec() -> None:
    policy = RetryPolicy()
    assert policy.retries == 2
    assert policy.max_attempts == 3
    assert policy.failure_statuses == {408, 429, 500, 502, 503, 504} == DEFAULT_FAILURE_STATUSES
    assert (policy.backoff_base, policy.backoff_max, policy.max_retry_after) == (0.1, 10.0, 30.0)
    assert policy.respect_retry_after is True
    assert policy.retry_non_idempotent is False


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"retries": -1}, ValueError, id="negative-retries"),
        pytest.param({"retries": 1.5}, TypeError, id="float-retries"),
        pytest.param({"retries": True}, TypeError, id="bool-retries"),
        pytest.param({"failure_statuses": [99]}, ValueError, id="status-below-100"),
        pytest.param({"failure_statuses": [600]}, ValueError, id="status-above-599"),
        pytest.param({"failure_statuses": ["500"]}, TypeError, id="status-str"),
        pytest.param({"failure_statuses": "500"}, TypeError, id="statuses-str"),
        pytest.param({"backoff_base": -0.1}, ValueError, id="negative-base"),
        pytest.param({"backoff_max": float("nan")}, ValueError, id="nan-max"),
        pytest.param({"max_retry_after": "1"}, TypeError, id="str-max-retry-after"),
    ],
)
def test_bad_policy_arguments_raise(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_policy_is_immutable_and_replace_validates() -> None:
    policy = RetryPolicy(failure_statuses=[500, 503])
    assert policy.failure_statuses == frozenset({500, 503})
    with pytest.raises(AttributeError):
        policy.retries = 5  # type: ignore[misc]
    assert policy.replace(retries=5).retries == 5
    with pytest.raises(ValueError):
        policy.replace(retries=-2)


# The safety matrix: (method, failure, status, idempotency key) -> retried?
NOT_SENT, SENT, STATUS = Failure.NOT_SENT, Failure.SENT, Failure.STATUS
MATRIX = [
    ("GET", NOT_SENT, None, False, True),
    ("POST", NOT_SENT, None, False, True),
    ("PATCH", NOT_SENT, None, False, True),
    ("GET", SENT, None, False, True),
    ("PUT", SENT, None, False, True),
    ("DELETE", SENT, None, False, True),
    ("HEAD", SENT, None, False, True),
    ("OPTIONS", SENT, None, False, True),
    ("TRACE", SENT, None, False, True),
    ("POST", SENT, None, False, False),
    ("PATCH", SENT, None, False, False),
    ("POST", SENT, None, True, True),
    ("GET", STATUS, 500, False, True),
    ("PUT", STATUS, 502, False, True),
    ("POST", STATUS, 500, False, False),
    ("POST", STATUS, 503, False, True),
    ("POST", STATUS, 429, False, True),
    ("PATCH", STATUS, 504, False, False),
    ("PATCH", STATUS, 503, False, True),
    ("POST", STATUS, 500, True, True),
]


@pytest.mark.parametrize(
    ("method", "failure", "status", "key", "expected"),
    [pytest.param(*row, id=f"{row[0]}-{row[1].value}-{row[2]}-key{row[3]}") for row in MATRIX],
)
def test_safety_matrix(
    method: str, failure: Failure, status: int | None, key: bool, expected: bool
) -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(method, failure, status, idempotency_key=key) is expected
    decision = decide(
        policy,
        attempt=1,
        method=method,
        failure=failure,
        status=status,
        idempotency_key=key,
        random=always(0.5),
    )
    assert decision.retry is expected
    if not expected:
        assert decision.stop is Stop.NOT_RETRYABLE


def test_retry_non_idempotent_allows_post_after_send() -> None:
    policy = RetryPolicy(retry_non_idempotent=True)
    assert policy.is_retryable("POST", Failure.SENT)
    assert policy.is_retryable("PATCH", Failure.STATUS, 500)


def test_not_replayable_is_never_retried() -> None:
    decision = decide(
        RetryPolicy(),
        attempt=1,
        method="GET",
        failure=Failure.NOT_SENT,
        replayable=False,
        random=always(0.5),
    )
    assert decision.stop is Stop.NOT_REPLAYABLE


def test_attempts_run_out() -> None:
    policy = RetryPolicy(retries=2)
    args = {"method": "GET", "failure": Failure.SENT, "random": always(0.5)}
    assert decide(policy, attempt=2, **args).retry  # type: ignore[arg-type]
    assert decide(policy, attempt=3, **args).stop is Stop.ATTEMPTS_EXHAUSTED  # type: ignore[arg-type]
    assert decide(RetryPolicy(retries=0), attempt=1, **args).stop is Stop.ATTEMPTS_EXHAUSTED  # type: ignore[arg-type]


def test_backoff_is_full_jitter_exponential() -> None:
    policy = RetryPolicy(backoff_base=0.1, backoff_max=1.0)
    assert [policy.backoff(n, always(1.0)) for n in (1, 2, 3, 4, 5, 6)] == pytest.approx(
        [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    )
    assert policy.backoff(3, always(0.0)) == 0.0
    assert policy.backoff(10_000, always(1.0)) == 1.0  # no overflow


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0, max_value=100),
    cap=st.floats(min_value=0, max_value=1000),
    r=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_bounds(attempt: int, base: float, cap: float, r: float) -> None:
    delay = RetryPolicy(backoff_base=base, backoff_max=cap).backoff(attempt, always(r))
    assert 0 <= delay <= min(cap, base * 2.0 ** min(attempt - 1, 64))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("0", 0.0, id="zero"),
        pytest.param("7", 7.0, id="seconds"),
        pytest.param(" 12 ", 12.0, id="spaces"),
        pytest.param(email.utils.formatdate(NOW + 5, usegmt=True), 5.0, id="date-future"),
        pytest.param(email.utils.formatdate(NOW - 60, usegmt=True), 0.0, id="date-past"),
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", 0.0, id="rfc-example-past"),
        pytest.param("-1", None, id="negative"),
        pytest.param("1.5", None, id="fraction"),
        pytest.param("soon", None, id="word"),
        pytest.param("", None, id="empty"),
        pytest.param("٣", None, id="non-ascii-digit"),
        pytest.param("9" * 100, None, id="absurdly-long"),
        pytest.param(None, None, id="missing"),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


@given(st.text(max_size=80))
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, NOW)
    assert result is None or result >= 0


def test_retry_after_replaces_backoff() -> None:
    decision = decide(
        RetryPolicy(),
        attempt=1,
        method="GET",
        failure=Failure.STATUS,
        status=503,
        retry_after="3",
        random=always(1.0),
        now=always(NOW),
    )
    assert decision.retry and decision.delay == 3.0


def test_retry_after_ignored_when_not_respected() -> None:
    decision = decide(
        RetryPolicy(respect_retry_after=False),
        attempt=1,
        method="GET",
        failure=Failure.STATUS,
        status=503,
        retry_after="3",
        random=always(1.0),
    )
    assert decision.delay == pytest.approx(0.1)


def test_retry_after_over_the_cap_stops_at_once() -> None:
    decision = decide(
        RetryPolicy(max_retry_after=30),
        attempt=1,
        method="GET",
        failure=Failure.STATUS,
        status=503,
        retry_after="31",
        random=always(0.5),
    )
    assert decision.stop is Stop.RETRY_AFTER_TOO_LONG


def test_retry_after_past_the_deadline_stops_at_once() -> None:
    decision = decide(
        RetryPolicy(),
        attempt=1,
        method="GET",
        failure=Failure.STATUS,
        status=503,
        retry_after="5",
        remaining=4.0,
        random=always(0.5),
    )
    assert decision.stop is Stop.DEADLINE


def test_backoff_past_the_deadline_stops() -> None:
    decision = decide(
        RetryPolicy(backoff_base=10),
        attempt=1,
        method="GET",
        failure=Failure.SENT,
        remaining=1.0,
        random=always(0.5),
    )
    assert decision.stop is Stop.DEADLINE


def test_budget_ratio_plus_floor() -> None:
    clock = FakeClock()
    budget = RetryBudget(clock=clock)
    for _ in range(100):
        budget.deposit()
    granted = sum(budget.withdraw() for _ in range(100))
    assert granted == 20 + 10  # 20% of first attempts, plus the bucket of 10
    assert not budget.withdraw()
    clock.now += 0.5  # the floor refills at 10/s
    assert sum(budget.withdraw() for _ in range(100)) == 5


def test_budget_window_forgets_old_attempts() -> None:
    clock = FakeClock()
    budget = RetryBudget(min_per_second=0, clock=clock)
    for _ in range(50):
        budget.deposit()
    assert sum(budget.withdraw() for _ in range(50)) == 10
    clock.now += 11  # past the 10 s window: old deposits and retries expire
    assert not budget.withdraw()
    for _ in range(10):
        budget.deposit()
    assert sum(budget.withdraw() for _ in range(10)) == 2


@given(
    ops=st.lists(
        st.tuples(
            st.sampled_from(["deposit", "withdraw", "tick"]), st.floats(min_value=0, max_value=3)
        ),
        max_size=300,
    )
)
def test_budget_never_exceeds_ratio_plus_floor(ops: list[tuple[str, float]]) -> None:
    clock = FakeClock()
    budget = RetryBudget(ratio=0.2, window=10, min_per_second=10, clock=clock)
    deposits = granted = 0
    elapsed = 0.0
    for op, dt in ops:
        if op == "deposit":
            budget.deposit()
            deposits += 1
        elif op == "withdraw":
            granted += budget.withdraw()
        else:
            clock.now += dt
            elapsed += dt
    assert granted <= 0.2 * deposits + 10 + 10 * elapsed + 1e-9


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        pytest.param({"ratio": -1}, ValueError, id="negative-ratio"),
        pytest.param({"window": 0}, ValueError, id="zero-window"),
        pytest.param({"min_per_second": "x"}, TypeError, id="str-floor"),
    ],
)
def test_bad_budget_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        RetryBudget(**kwargs)  # type: ignore[arg-type]


def test_from_urllib3() -> None:
    retry = urllib3.util.Retry(
        total=4,
        status_forcelist=[500, 502],
        backoff_factor=0.5,
        backoff_max=8,
        allowed_methods=["GET", "POST"],
        respect_retry_after_header=False,
    )
    policy = RetryPolicy.from_urllib3(retry)
    assert policy.retries == 4
    assert policy.failure_statuses == {500, 502}
    assert (policy.backoff_base, policy.backoff_max) == (0.5, 8.0)
    assert policy.idempotent_methods == {"GET", "POST"}
    assert policy.respect_retry_after is False
    assert policy.is_retryable("POST", Failure.SENT)
    assert not policy.is_retryable("PUT", Failure.SENT)


def test_from_urllib3_defaults_and_any_method() -> None:
    policy = RetryPolicy.from_urllib3(urllib3.util.Retry(3, allowed_methods=None))
    assert policy.retries == 3
    assert policy.failure_statuses == frozenset()
    assert policy.retry_non_idempotent is True
    assert policy.backoff_max == urllib3.util.Retry.DEFAULT_BACKOFF_MAX
    connect_only = RetryPolicy.from_urllib3(urllib3.util.Retry(total=None, connect=5, read=1))
    assert connect_only.retries == 5
