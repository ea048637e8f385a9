"""The pure retry logic: safety matrix, backoff, Retry-After, budget, urllib3's Retry."""

from __future__ import annotations

import calendar
import email.utils
import inspect
import math
import sys
from collections import Counter
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest
import urllib3
import urllib3.exceptions
import urllib3.response
import urllib3.util.retry
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cf._backoff import (
    IDEMPOTENT_METHODS,
    Failure,
    RetryBudget,
    RetryPolicy,
    Stop,
    decide,
    parse_retry_after,
)
from cf.infrastructure.backoff import DEFAULT_FAILURE_STATUSES

NOW = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
Retry = urllib3.util.Retry


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
    # the fields added for urllib3's knobs keep the behaviour above
    assert policy.backoff_jitter is None
    assert policy.any_method_statuses == {429, 503}
    assert policy.retry_after_statuses == frozenset()
    assert (policy.connect_retries, policy.read_retries, policy.status_retries) == (None,) * 3
    assert policy.raise_on_failure_status is True


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
        pytest.param({"backoff_jitter": -1}, ValueError, id="negative-jitter"),
        pytest.param({"backoff_jitter": "0.1"}, TypeError, id="str-jitter"),
        pytest.param({"any_method_statuses": [700]}, ValueError, id="any-method-status-700"),
        pytest.param({"retry_after_statuses": "503"}, TypeError, id="retry-after-statuses-str"),
        pytest.param({"connect_retries": -1}, ValueError, id="negative-connect-retries"),
        pytest.param({"read_retries": 1.0}, TypeError, id="float-read-retries"),
        pytest.param({"status_retries": False}, TypeError, id="bool-status-retries"),
        pytest.param({"raise_on_failure_status": 0}, TypeError, id="int-raise-on-failure"),
        pytest.param({"respect_retry_after": "no"}, TypeError, id="str-respect-retry-after"),
        pytest.param({"retry_non_idempotent": None}, TypeError, id="none-retry-non-idempotent"),
        pytest.param({"idempotent_methods": "GET"}, TypeError, id="methods-str"),
        pytest.param({"idempotent_methods": [b"GET"]}, TypeError, id="methods-bytes"),
    ],
)
def test_bad_policy_arguments_raise(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_every_field_is_documented() -> None:
    """help(RetryPolicy) names every field (the API reference is built from docstrings)."""
    import dataclasses

    from cf._backoff import RetryDecision, RetryEvent

    for cls in (RetryPolicy, RetryEvent, RetryDecision):
        doc = cls.__doc__ or ""
        for f in dataclasses.fields(cls):
            assert f"\n    {f.name}: " in inspect.cleandoc(doc), (cls.__name__, f.name)
    budget_doc = RetryBudget.__doc__ or ""
    for name in ("ratio", "window", "min_per_second", "clock"):
        assert name in budget_doc


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


@pytest.mark.parametrize(
    ("jitter", "r", "expected"),
    [
        pytest.param(0.0, 0.9, [0.0, 0.2, 0.4, 0.8, 1.0, 1.0], id="no-jitter"),
        pytest.param(0.5, 0.5, [0.0, 0.45, 0.65, 1.0, 1.0, 1.0], id="jitter-then-cap"),
        pytest.param(0.5, 0.0, [0.0, 0.2, 0.4, 0.8, 1.0, 1.0], id="jitter-draws-0"),
    ],
)
def test_backoff_urllib3_schedule(jitter: float, r: float, expected: list[float]) -> None:
    """backoff_jitter set: urllib3's Retry.get_backoff_time, 0 first, cap after jitter."""
    policy = RetryPolicy(backoff_base=0.1, backoff_max=1.0, backoff_jitter=jitter)
    assert [policy.backoff(n, always(r)) for n in range(1, 7)] == pytest.approx(expected)


def test_backoff_never_nan_or_endless() -> None:
    huge = RetryPolicy(backoff_base=math.inf, backoff_max=math.inf)
    assert huge.backoff(1, always(0.0)) == 0.0  # 0 * inf is nan
    assert huge.backoff(5, always(0.5)) == 2.0**31
    assert RetryPolicy(backoff_base=1e308, backoff_max=math.inf).backoff(64, always(1.0)) == 2**31
    jittery = RetryPolicy(backoff_jitter=math.inf, backoff_max=math.inf)
    assert jittery.backoff(2, always(1.0)) == 2**31


@given(
    attempt=st.integers(min_value=1, max_value=10_000),
    base=st.floats(min_value=0, max_value=100),
    cap=st.floats(min_value=0, max_value=1000),
    r=st.floats(min_value=0, max_value=1, exclude_max=True),
    jitter=st.one_of(st.none(), st.floats(min_value=0, max_value=10)),
)
def test_backoff_bounds(
    attempt: int, base: float, cap: float, r: float, jitter: float | None
) -> None:
    policy = RetryPolicy(backoff_base=base, backoff_max=cap, backoff_jitter=jitter)
    delay = policy.backoff(attempt, always(r))
    assert 0 <= delay <= cap
    if jitter is None:
        assert delay <= base * 2.0 ** min(attempt - 1, 64)


def _at(*fields: int) -> float:
    """Seconds from NOW to a UTC time (year, month, day, hour, minute, second)."""
    return calendar.timegm((*fields, 0, 0, 0)) - NOW


JAN_15_2027 = _at(2027, 1, 15, 8, 0, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("0", 0.0, id="zero"),
        pytest.param("7", 7.0, id="seconds"),
        pytest.param(" 12 ", 12.0, id="spaces"),
        pytest.param("\t12\t", 12.0, id="tabs"),
        pytest.param("007", 7.0, id="leading-zeros"),
        pytest.param("9" * 20, 1e20 - 1, id="20-digits"),
        pytest.param("9" * 21, math.inf, id="21-digits-longer-than-any-limit"),
        pytest.param("9" * 100, math.inf, id="100-digits"),
        pytest.param("9" * 100_000, math.inf, id="100000-digits"),
        pytest.param(email.utils.formatdate(NOW + 5, usegmt=True), 5.0, id="date-future"),
        pytest.param(email.utils.formatdate(NOW - 60, usegmt=True), 0.0, id="date-past"),
        pytest.param("Sun, 06 Nov 1994 08:49:37 GMT", 0.0, id="rfc-example-past"),
        # RFC 9110 section 5.6.7: the three HTTP-date forms
        pytest.param("Fri, 15 Jan 2027 08:00:00 GMT", JAN_15_2027, id="imf-fixdate"),
        pytest.param("Friday, 15-Jan-27 08:00:00 GMT", JAN_15_2027, id="rfc850"),
        pytest.param("Fri Jan 15 08:00:00 2027", JAN_15_2027, id="asctime"),
        pytest.param("Fri Jan  5 08:00:00 2027", _at(2027, 1, 5, 8, 0, 0), id="asctime-1-digit"),
        pytest.param("Sun Nov  6 08:49:37 1994", 0.0, id="asctime-rfc-example-past"),
        pytest.param("Sunday, 06-Nov-94 08:49:37 GMT", 0.0, id="rfc850-rfc-example-past"),
        # RFC 850's two-digit year: more than 50 years ahead means the past century
        pytest.param("Tue, 14-Nov-73 22:13:20 GMT", _at(2073, 11, 14, 22, 13, 20), id="yy-73"),
        pytest.param("Wed, 14-Nov-74 22:13:20 GMT", 0.0, id="yy-74-is-1974"),
        pytest.param("Mon, 01-Jan-24 00:00:00 GMT", _at(2024, 1, 1, 0, 0, 0), id="yy-24"),
        pytest.param("Wednesday, 15-Jan-2027 08:00:00 GMT", JAN_15_2027, id="rfc850-4-digit"),
        # a recipient is robust: case, weekday, spacing, zone spelling
        pytest.param("fri, 15 jan 2027 08:00:00 gmt", JAN_15_2027, id="lowercase"),
        pytest.param("FRI, 15 JAN 2027 08:00:00 GMT", JAN_15_2027, id="uppercase"),
        pytest.param("15 Jan 2027 08:00:00 GMT", JAN_15_2027, id="no-weekday"),
        pytest.param("Mon, 15 Jan 2027 08:00:00 GMT", JAN_15_2027, id="wrong-weekday-ignored"),
        pytest.param("Fri,  15  Jan  2027  08:00:00  GMT", JAN_15_2027, id="double-spaces"),
        pytest.param("Fri, 15 Jan 2027 08:00:00 UTC", JAN_15_2027, id="utc"),
        pytest.param("Fri, 15 Jan 2027 08:00:00 +0000", JAN_15_2027, id="zone-+0000"),
        pytest.param("Fri, 15 Jan 2027 09:00:00 +0100", JAN_15_2027, id="zone-+0100"),
        pytest.param("Fri, 15 Jan 2027 07:30:00 -0030", JAN_15_2027, id="zone--0030"),
        pytest.param("Fri, 15 Jan 27 08:00:00 GMT", JAN_15_2027, id="rfc1123-2-digit-year"),
        pytest.param("Fri, 15 Jan 2027 07:59:60 GMT", JAN_15_2027 - 1, id="leap-second"),
        pytest.param("Fri, 31 Dec 9999 23:59:59 GMT", _at(9999, 12, 31, 23, 59, 59), id="9999"),
        pytest.param("Mon, 01 Jan 0001 00:00:00 GMT", 0.0, id="year-1"),
        pytest.param("Sat, 29 Feb 2028 08:00:00 GMT", _at(2028, 2, 29, 8, 0, 0), id="feb-29-leap"),
        # not a Retry-After
        pytest.param("-1", None, id="negative"),
        pytest.param("+5", None, id="plus-sign"),
        pytest.param("1.5", None, id="fraction"),
        pytest.param("1e3", None, id="exponent"),
        pytest.param("5 s", None, id="unit"),
        pytest.param("soon", None, id="word"),
        pytest.param("", None, id="empty"),
        pytest.param("   ", None, id="blank"),
        pytest.param("\u0663", None, id="non-ascii-digit"),
        pytest.param("\uff15", None, id="fullwidth-digit"),
        pytest.param("Fri, \uff11\uff15 Jan 2027 08:00:00 GMT", None, id="fullwidth-day"),
        pytest.param("Fri, 15 Jan 2027 08:00:00", None, id="imf-no-zone"),
        pytest.param("Fri, 15 Jan 2027 08:00:00 EST", None, id="imf-named-zone"),
        pytest.param("Fri, 15 Jan 2027 08:00:00 +0160", None, id="zone-minutes-60"),
        pytest.param("Fri, 15 Jan 2027 08:00 GMT", None, id="no-seconds"),
        pytest.param("Fri, 32 Jan 2027 08:00:00 GMT", None, id="day-32"),
        pytest.param("Fri, 29 Feb 2027 08:00:00 GMT", None, id="feb-29-not-leap"),
        pytest.param("Fri, 00 Jan 2027 08:00:00 GMT", None, id="day-0"),
        pytest.param("Fri, 15 Foo 2027 08:00:00 GMT", None, id="bad-month"),
        pytest.param("Fri, 15 Jan 2027 24:00:00 GMT", None, id="hour-24"),
        pytest.param("Fri, 15 Jan 2027 08:60:00 GMT", None, id="minute-60"),
        pytest.param("Fri, 15 Jan 0000 08:00:00 GMT", None, id="year-0"),
        pytest.param("Fri, 15 Jan 202 08:00:00 GMT", None, id="3-digit-year"),
        pytest.param("Fri, 15 Jan 20277 08:00:00 GMT", None, id="5-digit-year"),
        pytest.param("Fri Jan 15 08:00:00 27", None, id="asctime-2-digit-year"),
        pytest.param("Fri Jan 15 08:00:00 2027 GMT", None, id="asctime-with-zone"),
        pytest.param("Friday, 15-Jan-27 08:00:00", None, id="rfc850-no-zone"),
        pytest.param("Fri, 15 Jan 2027 08:00:00 GMT x", None, id="trailing-junk"),
        pytest.param("Fri, 15 Jan 2027 08:00:00 GMT" + " " * 40, JAN_15_2027, id="trailing-ows"),
        pytest.param("Fri, 15 Jan 2027 08:00:00 GMT" + "0" * 40, None, id="over-64"),
        pytest.param(None, None, id="missing"),
        pytest.param(b"5", None, id="bytes"),
        pytest.param(5, None, id="int"),
    ],
)
def test_parse_retry_after(value: Any, expected: float | None) -> None:
    result = parse_retry_after(value, NOW)
    if expected is None or math.isinf(expected):
        assert result == expected
    else:
        assert result == pytest.approx(expected)


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(math.nan, id="nan"),
        pytest.param(math.inf, id="inf"),
        pytest.param(-math.inf, id="minus-inf"),
        pytest.param(1e300, id="1e300"),
        pytest.param(-1e300, id="minus-1e300"),
    ],
)
def test_parse_retry_after_odd_clock(now: float) -> None:
    """A broken wall clock never makes parsing raise nor give a negative or nan wait."""
    for value in ("Fri, 15 Jan 2027 08:00:00 GMT", "Friday, 15-Jan-27 08:00:00 GMT", "5"):
        result = parse_retry_after(value, now)
        assert result is not None and result >= 0


def test_any_method_statuses() -> None:
    """429 and 503 say the server did not act: retried for POST unless emptied (urllib3)."""
    assert RetryPolicy().is_retryable("POST", Failure.STATUS, 503)
    strict = RetryPolicy(any_method_statuses=())
    assert not strict.is_retryable("POST", Failure.STATUS, 503)
    assert not strict.is_retryable("POST", Failure.STATUS, 429)
    assert strict.is_retryable("GET", Failure.STATUS, 503)
    assert strict.is_retryable("POST", Failure.NOT_SENT)
    assert RetryPolicy(any_method_statuses={500}).is_retryable("PATCH", Failure.STATUS, 500)


@pytest.mark.parametrize(
    ("policy", "status", "retry_after", "failure", "raises"),
    [
        pytest.param(RetryPolicy(), 503, None, True, True, id="default-503"),
        pytest.param(RetryPolicy(), 404, "5", False, False, id="default-404"),
        pytest.param(RetryPolicy(), 413, "5", False, False, id="default-413-retry-after"),
        pytest.param(
            RetryPolicy(retry_after_statuses={413}), 413, "5", True, False, id="413-retry-after"
        ),
        pytest.param(
            RetryPolicy(retry_after_statuses={413}), 413, None, False, False, id="413-without"
        ),
        pytest.param(
            RetryPolicy(retry_after_statuses={413}), 413, " ", False, False, id="413-blank"
        ),
        pytest.param(
            RetryPolicy(retry_after_statuses={413}, respect_retry_after=False),
            413,
            "5",
            False,
            False,
            id="413-not-respected",
        ),
        pytest.param(
            RetryPolicy(retry_after_statuses={503}), 503, "5", True, True, id="also-failure-status"
        ),
        pytest.param(
            RetryPolicy(raise_on_failure_status=False), 503, None, True, False, id="return-last"
        ),
    ],
)
def test_failure_status_and_raise(
    policy: RetryPolicy, status: int, retry_after: str | None, failure: bool, raises: bool
) -> None:
    assert policy.is_failure_status(status, retry_after) is failure
    assert policy.raises_for_status(status) is raises


KIND_LIMITS = {"connect_retries": 1, "read_retries": 2, "status_retries": 0}


@pytest.mark.parametrize(
    ("failure", "retried", "attempt", "expected"),
    [
        pytest.param(Failure.NOT_SENT, {}, 1, True, id="connect-first"),
        pytest.param(Failure.NOT_SENT, {Failure.NOT_SENT: 1}, 2, False, id="connect-used-up"),
        pytest.param(Failure.NOT_SENT, {Failure.SENT: 2}, 3, True, id="connect-after-reads"),
        pytest.param(Failure.SENT, {Failure.NOT_SENT: 1, Failure.SENT: 1}, 3, True, id="read-2nd"),
        pytest.param(Failure.SENT, {Failure.SENT: 2}, 3, False, id="read-used-up"),
        pytest.param(Failure.STATUS, {}, 1, False, id="status-none-allowed"),
        pytest.param(Failure.SENT, {Failure.SENT: 1, Failure.NOT_SENT: 1}, 5, False, id="total"),
        # without `retried`: every earlier failure counted as this kind (never too many)
        pytest.param(Failure.NOT_SENT, None, 1, True, id="no-counts-first"),
        pytest.param(Failure.NOT_SENT, None, 2, False, id="no-counts-second"),
        pytest.param(Failure.SENT, None, 3, False, id="no-counts-third-read"),
    ],
)
def test_per_kind_limits(
    failure: Failure, retried: dict[Failure, int] | None, attempt: int, expected: bool
) -> None:
    policy = RetryPolicy(retries=4, **KIND_LIMITS)
    decision = decide(
        policy,
        attempt=attempt,
        method="GET",
        failure=failure,
        status=503 if failure is Failure.STATUS else None,
        random=always(0.5),
        retried=retried,
    )
    assert decision.retry is expected
    if not expected:
        assert decision.stop is Stop.ATTEMPTS_EXHAUSTED


def test_per_kind_limit_none_means_only_retries() -> None:
    policy = RetryPolicy(retries=3)
    args: dict[str, Any] = {"method": "GET", "failure": Failure.SENT, "random": always(0.5)}
    assert decide(policy, attempt=3, retried={Failure.SENT: 2}, **args).retry
    assert not decide(policy, attempt=4, retried={Failure.SENT: 3}, **args).retry


def test_huge_retry_after_never_sleeps_forever() -> None:
    args: dict[str, Any] = {
        "attempt": 1,
        "method": "GET",
        "failure": Failure.STATUS,
        "status": 503,
        "random": always(0.5),
        "now": always(NOW),
    }
    assert decide(RetryPolicy(), retry_after="9" * 30, **args).stop is Stop.RETRY_AFTER_TOO_LONG
    patient = RetryPolicy(max_retry_after=math.inf)
    assert decide(patient, retry_after="9" * 30, **args).delay == 2.0**31  # every sleep() takes it
    assert decide(patient, retry_after="9" * 30, remaining=5.0, **args).stop is Stop.DEADLINE


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


# --- urllib3's Retry -------------------------------------------------------------------------

RA_CODES = frozenset({413, 429, 503})
URLLIB3 = {  # RetryPolicy.from_urllib3(Retry()) with only `total` changed
    "failure_statuses": frozenset(),
    "backoff_base": 0.0,
    "backoff_max": 120.0,
    "backoff_jitter": 0.0,
    "max_retry_after": 21600.0,
    "respect_retry_after": True,
    "retry_non_idempotent": False,
    "idempotent_methods": IDEMPOTENT_METHODS,
    "any_method_statuses": frozenset(),
    "retry_after_statuses": RA_CODES,
    "raise_on_failure_status": True,
}


def converted(**changes: Any) -> RetryPolicy:
    return RetryPolicy(**{**URLLIB3, **changes})


class OnlyServiceUnavailable(Retry):
    RETRY_AFTER_STATUS_CODES = frozenset({503})


@pytest.mark.parametrize(
    ("retry", "expected"),
    [
        pytest.param(Retry(), converted(retries=10), id="default-total-10"),
        pytest.param(Retry.DEFAULT, converted(retries=3), id="Retry.DEFAULT"),
        pytest.param(Retry(3), converted(retries=3), id="int"),
        pytest.param(Retry(0), converted(retries=0, retry_after_statuses=()), id="zero"),
        pytest.param(
            Retry(total=False), converted(retries=0, retry_after_statuses=()), id="total-False"
        ),
        pytest.param(Retry(total=True), converted(retries=1), id="total-True-is-1"),
        pytest.param(
            Retry(total=-1), converted(retries=0, retry_after_statuses=()), id="total-negative"
        ),
        pytest.param(
            Retry(5, other=-1), converted(retries=0, retry_after_statuses=()), id="other-negative"
        ),
        pytest.param(
            Retry(0, read=False),
            converted(retries=0, read_retries=0, retry_after_statuses=()),
            id="requests-adapter-default",
        ),
        pytest.param(
            Retry(total=None, connect=2, read=1),
            converted(retries=3, connect_retries=2, read_retries=1, retry_after_statuses=()),
            id="total-None-sums-kinds",
        ),
        pytest.param(
            Retry(total=None, connect=2, read=1, status=4),
            converted(
                retries=3,
                connect_retries=2,
                read_retries=1,
                status_retries=4,
                retry_after_statuses=(),
            ),
            id="total-None-status-cannot-happen",
        ),
        pytest.param(
            Retry(total=None, connect=2, read=1, status=4, status_forcelist=[500]),
            converted(
                retries=7,
                connect_retries=2,
                read_retries=1,
                status_retries=4,
                failure_statuses={500},
                retry_after_statuses=(),
            ),
            id="total-None-with-status",
        ),
        pytest.param(
            Retry(total=None, connect=False, read=True),
            converted(retries=1, connect_retries=0, read_retries=1, retry_after_statuses=()),
            id="total-None-bool-counts",
        ),
        pytest.param(
            Retry(5, connect=1, read=2, status=3, other=9, redirect=4),
            converted(retries=5, connect_retries=1, read_retries=2, status_retries=3),
            id="per-kind-counts",
        ),
        pytest.param(Retry(5, redirect=False), converted(retries=5), id="redirect-False"),
        pytest.param(
            Retry(3, status_forcelist=[500, 503]),
            converted(retries=3, failure_statuses={500, 503}),
            id="status_forcelist",
        ),
        pytest.param(
            Retry(3, allowed_methods=None),
            converted(retries=3, retry_non_idempotent=True),
            id="allowed_methods-None",
        ),
        pytest.param(
            Retry(3, allowed_methods=["GET", "post", "PATCH"]),
            converted(retries=3, idempotent_methods={"GET", "PATCH"}),
            id="allowed_methods-lowercase-never-matches",
        ),
        pytest.param(
            Retry(3, allowed_methods=frozenset({"POST"})),
            converted(retries=3, idempotent_methods={"POST"}),
            id="allowed_methods-POST",
        ),
        pytest.param(
            Retry(3, backoff_factor=0.5, backoff_max=8, backoff_jitter=0.25),
            converted(retries=3, backoff_base=0.5, backoff_max=8.0, backoff_jitter=0.25),
            id="backoff",
        ),
        pytest.param(
            Retry(3, raise_on_status=False),
            converted(retries=3, raise_on_failure_status=False),
            id="raise_on_status-False",
        ),
        pytest.param(
            Retry(3, respect_retry_after_header=False),
            converted(retries=3, respect_retry_after=False, retry_after_statuses=()),
            id="respect_retry_after_header-False",
        ),
        pytest.param(
            Retry(3, retry_after_max=60), converted(retries=3, max_retry_after=60.0), id="ra-max"
        ),
        pytest.param(
            Retry(total=False, status_forcelist=[500], raise_on_status=False),
            converted(
                retries=0,
                failure_statuses={500},
                retry_after_statuses=(),
                raise_on_failure_status=False,
            ),
            id="total-False-return-status",
        ),
        pytest.param(
            OnlyServiceUnavailable(2),
            converted(retries=2, retry_after_statuses={503}),
            id="subclass-RETRY_AFTER_STATUS_CODES",
        ),
    ],
)
def test_from_urllib3(retry: Retry, expected: RetryPolicy) -> None:
    assert RetryPolicy.from_urllib3(retry) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(3, id="int"),
        pytest.param(None, id="None"),
        pytest.param("3", id="str"),
        pytest.param(False, id="False"),
        pytest.param(Retry, id="the-class"),
        pytest.param(SimpleNamespace(total=3, connect=None, read=None), id="look-alike"),
        pytest.param(RetryPolicy(), id="a-RetryPolicy"),
    ],
)
def test_from_urllib3_refuses_anything_else(value: object) -> None:
    with pytest.raises(TypeError, match="urllib3.util.Retry"):
        RetryPolicy.from_urllib3(value)


def test_from_urllib3_does_not_import_urllib3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "urllib3.util.retry")
    with pytest.raises(TypeError):
        RetryPolicy.from_urllib3(Retry(3))


@pytest.mark.parametrize(
    ("retry", "match"),
    [
        pytest.param(Retry(total=None), "connect=None, read=None", id="total-None-alone"),
        pytest.param(Retry(total=None, connect=1), "read=None", id="total-None-read-unbounded"),
        pytest.param(
            Retry(total=None, connect=1, read=1, status_forcelist=[500]),
            "status=None",
            id="total-None-status-unbounded",
        ),
        pytest.param(Retry(3, status_forcelist=[99]), "outside 100-599", id="bad-status"),
        pytest.param(Retry(3, connect=2.5), "connect", id="float-count"),  # type: ignore[arg-type]
        pytest.param(Retry(3, backoff_factor=-1), "backoff_factor", id="negative-factor"),
        pytest.param(Retry(3, backoff_factor=math.nan), "backoff_factor", id="nan-factor"),
        pytest.param(Retry(3, status_forcelist=["500"]), "status_forcelist", id="str-status"),  # type: ignore[list-item]
    ],
)
def test_from_urllib3_bad_retry(retry: Retry, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RetryPolicy.from_urllib3(retry)


def test_unbounded_retry_really_never_ends_in_urllib3() -> None:
    """Why `total=None` without a count is refused: urllib3 retries that kind forever."""
    retry = Retry(total=None, connect=1)
    for _ in range(1000):
        retry = retry.increment("GET", "/", error=_urllib3_error(READ))
    assert not retry.is_exhausted()


# Driving urllib3's own Retry and cf's decide() through the same outcomes. An outcome is
# CONNECT (nothing sent), READ (a read timeout) or (status, Retry-After value or None).
CONNECT, READ = "connect", "read"
OK = (200, None)
Outcome = Any


def _urllib3_error(kind: str) -> Exception:
    if kind == CONNECT:
        return urllib3.exceptions.ConnectTimeoutError("connect timed out")
    return urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out")  # type: ignore[arg-type]


def run_urllib3(retry: Retry, method: str, outcomes: list[Outcome]) -> tuple[str, list[float]]:
    """What urllib3's HTTPConnectionPool.urlopen does: the end and the wait before each retry."""
    waits: list[float] = []
    for outcome in outcomes:
        if isinstance(outcome, str):
            try:
                retry = retry.increment(method, "/", error=_urllib3_error(outcome))
            except (urllib3.exceptions.MaxRetryError, urllib3.exceptions.TimeoutError):
                return "raise", waits  # exhausted, or re-raised (total=False, method not allowed)
            waits.append(retry.get_backoff_time())
            continue
        status, retry_after = outcome
        headers = {"Retry-After": retry_after} if retry_after else {}
        response = urllib3.response.HTTPResponse(b"", headers=headers, status=status)
        if not retry.is_retry(method, status, bool(response.headers.get("Retry-After"))):
            return "return", waits
        try:
            retry = retry.increment(method, "/", response=response)
        except urllib3.exceptions.MaxRetryError:
            return ("raise" if retry.raise_on_status else "return"), waits
        asked = retry.get_retry_after(response) if retry.respect_retry_after_header else None
        waits.append(asked if asked else retry.get_backoff_time())  # Retry.sleep(response)
    return "unfinished", waits


def run_cf(policy: RetryPolicy, method: str, outcomes: list[Outcome]) -> tuple[str, list[float]]:
    """What cf's retry loop does with the same outcomes, deciding with `decide()`."""
    waits: list[float] = []
    retried: Counter[Failure] = Counter()
    for attempt, outcome in enumerate(outcomes, 1):
        status, retry_after = None, None
        if isinstance(outcome, str):
            failure = Failure.NOT_SENT if outcome == CONNECT else Failure.SENT
        else:
            status, retry_after = outcome
            if not policy.is_failure_status(status, retry_after):
                return "return", waits
            failure = Failure.STATUS
        decision = decide(
            policy,
            attempt=attempt,
            method=method,
            failure=failure,
            status=status,
            retry_after=retry_after,
            random=always(JITTER_DRAW),
            now=always(NOW),
            retried=retried,
        )
        if not decision.retry:
            if status is not None and not policy.raises_for_status(status):
                return "return", waits
            return "raise", waits
        waits.append(decision.delay)
        retried[failure] += 1
    return "unfinished", waits


JITTER_DRAW = 0.25


def both(retry: Retry, method: str, outcomes: list[Outcome]) -> tuple[Any, Any]:
    policy = RetryPolicy.from_urllib3(retry)
    with mock.patch.object(
        urllib3.util.retry, "random", SimpleNamespace(random=always(JITTER_DRAW))
    ):
        ours, theirs = run_cf(policy, method, outcomes), run_urllib3(retry, method, outcomes)
    return ours, theirs


S500, S503, S503_RA, S429_RA, S413_RA = (500, None), (503, None), (503, "1"), (429, "2"), (413, "1")


@pytest.mark.parametrize(
    ("retry", "method", "outcomes", "end", "retries"),
    [
        pytest.param(Retry(3), "GET", [CONNECT] * 5, "raise", 3, id="connect-errors"),
        pytest.param(Retry(3), "POST", [CONNECT] * 5, "raise", 3, id="connect-errors-POST"),
        pytest.param(Retry(3), "GET", [READ, READ, OK], "return", 2, id="read-errors-then-ok"),
        pytest.param(Retry(3), "POST", [READ], "raise", 0, id="read-error-POST"),
        pytest.param(Retry.DEFAULT, "GET", [CONNECT, READ] * 3, "raise", 3, id="Retry.DEFAULT"),
        pytest.param(Retry(total=False), "GET", [CONNECT, OK], "raise", 0, id="False-error"),
        pytest.param(
            Retry(total=False, status_forcelist=[500]), "GET", [S500], "raise", 0, id="False-500"
        ),
        pytest.param(
            Retry(total=False, status_forcelist=[500], raise_on_status=False),
            "GET",
            [S500],
            "return",
            0,
            id="False-500-return",
        ),
        pytest.param(Retry(total=True), "GET", [CONNECT] * 3, "raise", 1, id="True-is-1"),
        pytest.param(Retry(0, read=False), "GET", [READ], "raise", 0, id="requests-default"),
        pytest.param(
            Retry(total=None, connect=2, read=1),
            "GET",
            [CONNECT, READ, CONNECT, READ],
            "raise",
            3,
            id="None-per-kind",
        ),
        pytest.param(
            Retry(total=None, connect=1, read=1, status=1, status_forcelist=[502]),
            "GET",
            [(502, None), CONNECT, READ, (502, None)],
            "raise",
            3,
            id="None-three-kinds",
        ),
        pytest.param(Retry(5, connect=1), "GET", [CONNECT] * 3, "raise", 1, id="connect-count"),
        pytest.param(
            Retry(5, connect=1), "GET", [CONNECT, READ, READ, OK], "return", 3, id="connect-1-reads"
        ),
        pytest.param(Retry(5, read=0), "GET", [READ], "raise", 0, id="read-0"),
        pytest.param(Retry(5, connect=False), "GET", [CONNECT], "raise", 0, id="connect-False"),
        pytest.param(
            Retry(3, status=1, status_forcelist=[500]), "GET", [S500] * 3, "raise", 1, id="status-1"
        ),
        pytest.param(
            Retry(2, status_forcelist=[500], raise_on_status=False),
            "GET",
            [S500] * 3,
            "return",
            2,
            id="raise_on_status-False",
        ),
        pytest.param(
            Retry(2, status_forcelist=[500], allowed_methods=None),
            "POST",
            [S500, READ, S500],
            "raise",
            2,
            id="allowed-None-POST",
        ),
        pytest.param(
            Retry(3, allowed_methods=["POST"]), "GET", [READ], "raise", 0, id="allowed-POST-GET"
        ),
        pytest.param(
            Retry(3, allowed_methods=["POST"]), "POST", [READ, OK], "return", 1, id="allowed-POST"
        ),
        pytest.param(
            Retry(3, allowed_methods=["get"]), "GET", [READ], "raise", 0, id="allowed-lowercase"
        ),
        pytest.param(Retry(3), "GET", [S503], "return", 0, id="503-not-forced"),
        pytest.param(Retry(3), "GET", [S503_RA] * 5, "return", 3, id="503-retry-after"),
        pytest.param(
            Retry(3), "GET", [S429_RA, S413_RA, OK], "return", 2, id="429-413-retry-after"
        ),
        pytest.param(Retry(3), "POST", [S503_RA], "return", 0, id="503-retry-after-POST"),
        pytest.param(Retry(0), "GET", [S503_RA], "return", 0, id="503-retry-after-total-0"),
        pytest.param(
            Retry(total=None, connect=3, read=3),
            "GET",
            [S503_RA],
            "return",
            0,
            id="503-retry-after-total-None",
        ),
        pytest.param(
            Retry(3, respect_retry_after_header=False),
            "GET",
            [S503_RA],
            "return",
            0,
            id="503-retry-after-not-respected",
        ),
        pytest.param(
            Retry(3, status_forcelist=[503]),
            "GET",
            [S503_RA, S503, S503_RA, S503_RA],
            "raise",
            3,
            id="forced-503-retry-after-waits",
        ),
        pytest.param(
            Retry(3, status_forcelist=[503], respect_retry_after_header=False, backoff_factor=1),
            "GET",
            [S503_RA] * 4,
            "raise",
            3,
            id="forced-503-retry-after-ignored",
        ),
        pytest.param(
            Retry(4, status_forcelist=[500], backoff_factor=0.5),
            "GET",
            [S500] * 5,
            "raise",
            4,
            id="backoff-factor",
        ),
        pytest.param(
            Retry(4, backoff_factor=1, backoff_max=1.5),
            "GET",
            [CONNECT] * 5,
            "raise",
            4,
            id="backoff-max",
        ),
        pytest.param(
            Retry(4, backoff_factor=0.1, backoff_jitter=0.3),
            "GET",
            [READ] * 5,
            "raise",
            4,
            id="backoff-jitter",
        ),
        pytest.param(
            Retry(4, backoff_factor=0.1, backoff_jitter=0.3, backoff_max=0.3),
            "GET",
            [READ] * 5,
            "raise",
            4,
            id="backoff-jitter-capped",
        ),
        pytest.param(Retry(3), "GET", [OK], "return", 0, id="ok"),
        pytest.param(Retry(3, status_forcelist=[500]), "GET", [(404, None)], "return", 0, id="404"),
    ],
)
def test_from_urllib3_retries_as_urllib3_does(
    retry: Retry, method: str, outcomes: list[Outcome], end: str, retries: int
) -> None:
    ours, theirs = both(retry, method, outcomes)
    assert theirs[0] == end and len(theirs[1]) == retries  # the case shows what its id says
    assert ours[0] == theirs[0]
    assert ours[1] == pytest.approx(theirs[1])  # the same number of retries, the same waits


@pytest.mark.parametrize(
    ("retry", "method", "outcomes", "ours", "theirs"),
    [
        # cf: a failure status is a failure whatever the method; urllib3 returns the response
        pytest.param(
            Retry(3, status_forcelist=[500]),
            "POST",
            [S500],
            ("raise", []),
            ("return", []),
            id="forced-status-for-a-method-not-retried",
        ),
        # urllib3 waits retry_after_max and retries; cf stops at once, raising the failure
        pytest.param(
            Retry(3, status_forcelist=[503], retry_after_max=1),
            "GET",
            [(503, "5"), OK],
            ("raise", []),
            ("return", [1]),
            id="retry-after-over-the-max",
        ),
        # urllib3 reads "Retry-After: 0" as no header (the backoff); cf retries at once
        pytest.param(
            Retry(3, status_forcelist=[503], backoff_factor=10),
            "GET",
            [S503, (503, "0"), OK],
            ("return", [0.0, 0.0]),
            ("return", [0.0, 20.0]),
            id="retry-after-0",
        ),
        # a Retry-After status stopped by its own count: urllib3 raises, cf returns it
        pytest.param(
            Retry(5, status=1),
            "GET",
            [S503_RA, S503_RA],
            ("return", [1.0]),
            ("raise", [1.0]),
            id="retry-after-status-count-used-up",
        ),
    ],
)
def test_from_urllib3_documented_differences(
    retry: Retry, method: str, outcomes: list[Outcome], ours: Any, theirs: Any
) -> None:
    """What from_urllib3's docstring says cannot be the same, so that a change shows."""
    assert both(retry, method, outcomes) == (ours, theirs)


COUNTS = st.one_of(st.none(), st.booleans(), st.integers(0, 3))
OUTCOMES = st.lists(
    st.sampled_from(
        [CONNECT, READ, OK, S500, S503, S503_RA, S429_RA, S413_RA, (502, "2"), (404, None)]
    ),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(
    total=st.one_of(st.none(), st.booleans(), st.integers(0, 4)),
    connect=COUNTS,
    read=COUNTS,
    status=COUNTS,
    other=COUNTS,
    forcelist=st.sets(st.sampled_from([500, 502, 503, 429])),
    allowed=st.sampled_from([Retry.DEFAULT_ALLOWED_METHODS, None, ["POST"], ["GET", "post"]]),
    method=st.sampled_from(["GET", "POST"]),
    factor=st.sampled_from([0, 0.1, 1.5]),
    jitter=st.sampled_from([0.0, 0.3]),
    backoff_max=st.sampled_from([120, 0.5]),
    raise_on_status=st.booleans(),
    respect=st.booleans(),
    outcomes=OUTCOMES,
)
def test_from_urllib3_agrees_with_urllib3(
    total: Any,
    connect: Any,
    read: Any,
    status: Any,
    other: Any,
    forcelist: set[int],
    allowed: Any,
    method: str,
    factor: float,
    jitter: float,
    backoff_max: float,
    raise_on_status: bool,
    respect: bool,
    outcomes: list[Outcome],
) -> None:
    retry = Retry(
        total=total,
        connect=connect,
        read=read,
        status=status,
        other=other,
        status_forcelist=forcelist,
        allowed_methods=allowed,
        backoff_factor=factor,
        backoff_jitter=jitter,
        backoff_max=backoff_max,
        raise_on_status=raise_on_status,
        respect_retry_after_header=respect,
    )
    try:
        RetryPolicy.from_urllib3(retry)
    except ValueError:
        assume(False)  # unbounded in urllib3 (see test_from_urllib3_bad_retry)
    ours, theirs = both(retry, method, outcomes)
    assert ours[1] == pytest.approx(theirs[1])  # the same retries, with the same waits
    if ours[0] != theirs[0]:  # only the documented differences
        stop = outcomes[len(ours[1])]
        assert isinstance(stop, tuple)
        documented = (
            stop[0] in forcelist and (allowed is not None and method not in allowed),
            stop[0] not in forcelist and stop[1] is not None and status is not None,
        )
        assert any(documented), (ours, theirs)
