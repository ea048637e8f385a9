"""Bounded fuzzing of the parsers of untrusted input: trace headers and Retry-After.

Each parser takes whatever a peer sends and must never raise anything but what it
documents (`TraceInfo.from_headers` and `parse_retry_after` never raise; the
constructors raise ValueError/TypeError only), and what it accepts must round-trip.
Strategies are built from the grammars so that generated input gets deep, plus raw
text, bytes, non-ASCII and oversized values. The whole file runs in a few seconds.
"""

from __future__ import annotations

import calendar
import datetime
import email.utils
import math
import os
from collections.abc import Callable
from typing import Any

import httpx
import multidict
import pytest
import urllib3.util
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers as StarletteHeaders

from cf._backoff import Failure, RetryPolicy, decide, parse_retry_after
from cf._trace import TraceInfo

# CF_FUZZ_SCALE=20 runs twenty times as many examples (a longer, non-CI fuzzing pass).
SCALE = max(1, int(os.environ.get("CF_FUZZ_SCALE", "1")))
FUZZ = settings(
    max_examples=500 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SOME = settings(
    max_examples=200 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
NOW = 1_700_000_000.0

HEX = "0123456789abcdef"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"

# --- traceparent and tracestate values, from their grammars, mutated -------------------------

hex_text = st.text(alphabet=HEX, min_size=0, max_size=34)
near_hex = st.text(alphabet=HEX + "ABCDEFgxz.-_ \t", min_size=0, max_size=34)
versions = st.one_of(
    st.sampled_from(["00", "01", "cc", "fe", "ff", "0", "000", "0A", "g0", ""]),
    st.text(alphabet=HEX, min_size=2, max_size=2),
)
trace_ids = st.one_of(
    st.just(TRACE_ID), st.just("0" * 32), st.text(alphabet=HEX, min_size=32, max_size=32), near_hex
)
span_ids = st.one_of(
    st.just(SPAN_ID), st.just("0" * 16), st.text(alphabet=HEX, min_size=16, max_size=16), near_hex
)
flag_values = st.one_of(st.text(alphabet=HEX, min_size=2, max_size=2), near_hex)
tails = st.sampled_from(["", "-", "-future", ".x", "-x,y", ",00-a-b-01", "\n", " ", "\t "])
ows = st.sampled_from(["", " ", "\t", " \t ", "  "])
traceparents = st.builds(
    lambda lead, v, t, s, f, tail, trail: f"{lead}{v}-{t}-{s}-{f}{tail}{trail}",
    ows,
    versions,
    trace_ids,
    span_ids,
    flag_values,
    tails,
    ows,
)

KEY_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
KEY_REST = KEY_FIRST + "_-*/@"
NBLK = "".join(chr(c) for c in [*range(0x21, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F)])
valid_keys = st.builds(str.__add__, st.sampled_from(KEY_FIRST), st.text(KEY_REST, max_size=10))
valid_values = st.builds(str.__add__, st.text(NBLK + " ", max_size=10), st.sampled_from(NBLK))
valid_members = st.builds(lambda k, v: f"{k}={v}", valid_keys, valid_values)
# Valid members of many sizes (some over 128 characters), some keys repeated.
POOL = [f"k{i % 40}={'v' * (i * 7 % 150 + 1)}" for i in range(64)] + ["a@b=1", "z=  x"]
keys = st.one_of(
    valid_keys,
    st.sampled_from(["k" * 256, "k" * 257, "t" * 241 + "@" + "v" * 14, "@x", "A", "", "a b"]),
    st.text(max_size=6),
)
member_values = st.one_of(
    valid_values,
    st.sampled_from(["v" * 256, "v" * 257, "", " ", "a=b", "x\ty", "caf\u00e9", "v" * 140]),
    st.text(max_size=6),
)
members = st.one_of(
    st.builds(lambda k, v: f"{k}={v}", keys, member_values),
    st.sampled_from(["", " ", "\t", "novalue", "=1"]),
)
separators = st.sampled_from([",", " ,", ", ", "\t,\t", ",,"])
tracestates = st.one_of(
    st.builds(lambda ms, sep: sep.join(ms), st.lists(members, max_size=8), separators),
    st.builds(  # mostly valid, around the 32-member and 512-character limits
        lambda ms, extra, sep: sep.join(ms + extra),
        st.lists(st.sampled_from(POOL), min_size=28, max_size=34),
        st.lists(st.sampled_from(["k" * 120 + "=1", "v=" + "x" * 200, "Bad=1"]), max_size=2),
        separators,
    ),
)
valid_tracestates = st.lists(valid_members, max_size=10).map(",".join)
huge = st.builds(
    lambda char, n: char * n,
    st.sampled_from(["a=1,", " ", ",", "9", "\u00e9", "\x00"]),
    st.integers(2000, 12000),
)
texts = st.one_of(traceparents, tracestates, st.text(max_size=80), huge)
values = st.one_of(
    texts,
    texts.map(lambda s: s.encode("utf-8")),
    st.binary(max_size=80),
    st.none(),
    st.integers(),
    st.lists(texts, max_size=3),
)
names = st.one_of(
    st.sampled_from(
        [
            "traceparent",
            "TraceParent",
            "TRACEPARENT",
            "tracestate",
            "TraceState",
            "trace-parent",
            "trace.state",
            "b3",
            "X-B3-TraceId",
            "x-b3-spanid",
            "X-B3-Sampled",
            "X-B3-Flags",
            "HTTP_TRACEPARENT",
            "HTTP_TRACESTATE",
            "HTTP_X_B3_TRACEID",
            "traceparent\u00e9",
            "\u212aB3",
            "x" * 40,
        ]
    ),
    st.text(max_size=12),
)
any_names = st.one_of(names, names.map(lambda s: s.encode("utf-8")), st.integers(), st.none())
str_pairs = st.lists(st.tuples(names, texts), max_size=6)


def _httpx(pairs: list[tuple[str, str]]) -> Any:
    try:
        return httpx.Headers(pairs)
    except (UnicodeError, TypeError, ValueError):
        return None  # httpx refuses it before any parser sees it


def _raw(pairs: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("utf-8").lower(), v.encode("utf-8")) for k, v in pairs]


header_shapes = st.one_of(
    st.dictionaries(any_names, values, max_size=6),
    st.lists(st.tuples(any_names, values), max_size=6),
    st.lists(st.one_of(st.tuples(any_names), st.tuples(any_names, values, values)), max_size=3),
    str_pairs,
    str_pairs.map(lambda pairs: [list(p) for p in pairs]),
    str_pairs.map(_httpx),
    str_pairs.map(multidict.CIMultiDict),
    str_pairs.map(multidict.MultiDict),
    str_pairs.map(lambda pairs: StarletteHeaders(raw=_raw(pairs))),
    str_pairs.map(lambda pairs: {"type": "http", "headers": _raw(pairs)}),
    str_pairs.map(lambda pairs: {"HTTP_" + k.upper().replace("-", "_"): v for k, v in pairs}),
    str_pairs.map(lambda pairs: iter(pairs)),
    texts,
    st.binary(),
    st.none(),
    st.integers(),
)


def _same_value(info: TraceInfo) -> TraceInfo:
    """The constructor's view of a parsed value: it must accept it unchanged."""
    return TraceInfo(info.trace_id, info.span_id, info.sampled, info.tracestate, info.flags)


@FUZZ
@given(header_shapes)
def test_from_headers_never_raises(headers: Any) -> None:
    info = TraceInfo.from_headers(headers)
    if info is None:
        return
    assert _same_value(info) == info  # whatever is accepted is a valid value
    assert TraceInfo.from_headers(info.to_headers()) == info  # and round-trips
    child = info.child()
    assert (child.trace_id, child.flags, child.tracestate) == (
        info.trace_id,
        info.flags,
        info.tracestate,
    )
    assert TraceInfo.from_headers(child.to_headers()) == child


@FUZZ
@given(tracestate=tracestates, more=st.lists(tracestates, max_size=3))
def test_tracestate_is_all_or_nothing(tracestate: str, more: list[str]) -> None:
    """A parsed tracestate is the input's members in order, or nothing; parsing it again
    gives it back unchanged (stable under re-serialisation)."""
    fields = [tracestate, *more]
    headers = [("traceparent", f"00-{TRACE_ID}-{SPAN_ID}-01")] + [("tracestate", f) for f in fields]
    info = TraceInfo.from_headers(headers)
    assert info is not None and info.trace_id == TRACE_ID  # never the traceparent
    state = info.tracestate
    given_members = [m.strip(" \t") for m in ",".join(fields).split(",") if m.strip(" \t")]
    if state is None:
        return
    kept = state.split(",")
    assert len(state) <= 512 and len(kept) <= 32
    assert _is_subsequence(kept, given_members)
    if len(",".join(given_members)) <= 512:
        assert kept == given_members  # nothing dropped when it fits
    again = TraceInfo.from_headers({"traceparent": info.traceparent, "tracestate": state})
    assert again is not None and again.tracestate == state


def _is_subsequence(part: list[str], whole: list[str]) -> bool:
    it = iter(whole)
    return all(any(m == w for w in it) for m in part)


@FUZZ
@given(
    trace_id=st.text(alphabet=HEX, min_size=32, max_size=32).filter(lambda s: s != "0" * 32),
    span_id=st.text(alphabet=HEX, min_size=16, max_size=16).filter(lambda s: s != "0" * 16),
    sampled=st.booleans(),
    flags=st.integers(0, 255),
    tracestate=st.one_of(st.none(), valid_tracestates),
)
def test_round_trip(
    trace_id: str, span_id: str, sampled: bool, flags: int, tracestate: str | None
) -> None:
    """`from_headers(to_headers(t)) == t` for every valid t, in every headers shape."""
    info = TraceInfo(trace_id, span_id, sampled, tracestate, flags)
    headers = info.to_headers()
    for shape in (dict, httpx.Headers, multidict.CIMultiDict, lambda h: list(h.items())):
        assert TraceInfo.from_headers(shape(headers)) == info
    assert TraceInfo.from_headers(StarletteHeaders(raw=_raw(list(headers.items())))) == info


@SOME
@given(
    trace_id=st.one_of(st.text(max_size=40), st.binary(max_size=4), st.none(), st.integers()),
    span_id=st.one_of(st.text(alphabet=HEX, max_size=17), st.text(max_size=4), st.none()),
    sampled=st.one_of(st.booleans(), st.integers(0, 2), st.none()),
    tracestate=st.one_of(st.none(), tracestates, st.binary(max_size=4), st.integers()),
    flags=st.one_of(st.integers(-2, 300), st.booleans(), st.text(max_size=2)),
)
def test_constructor_raises_only_value_error(**kwargs: Any) -> None:
    try:
        info = TraceInfo(**kwargs)
    except ValueError:
        return
    assert TraceInfo.from_headers(info.to_headers()) == info


# --- Retry-After -----------------------------------------------------------------------------

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
LONG_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
moments = st.datetimes(
    min_value=datetime.datetime(1974, 1, 1), max_value=datetime.datetime(2073, 11, 14)
)


def imf(moment: datetime.datetime) -> str:
    return (
        f"{WEEKDAYS[moment.weekday()]}, {moment.day:02d} {MONTHS[moment.month - 1]} "
        f"{moment.year:04d} {moment:%H:%M:%S} GMT"
    )


def rfc850(moment: datetime.datetime) -> str:
    return (
        f"{LONG_WEEKDAYS[moment.weekday()]}, {moment.day:02d}-{MONTHS[moment.month - 1]}-"
        f"{moment.year % 100:02d} {moment:%H:%M:%S} GMT"
    )


def asctime(moment: datetime.datetime) -> str:
    return (
        f"{WEEKDAYS[moment.weekday()]} {MONTHS[moment.month - 1]} {moment.day:2d} "
        f"{moment:%H:%M:%S} {moment.year:04d}"
    )


@FUZZ
@given(moment=moments, form=st.sampled_from([imf, rfc850, asctime]))
def test_retry_after_dates(moment: datetime.datetime, form: Callable[[Any], str]) -> None:
    """Each RFC 9110 form of the same instant (within the 50-year window) gives one wait."""
    when = calendar.timegm(moment.replace(microsecond=0).timetuple())
    assert parse_retry_after(form(moment), NOW) == pytest.approx(max(0.0, when - NOW))


@FUZZ
@given(st.floats(min_value=-1e10, max_value=2.5e11))
def test_retry_after_formatdate_round_trip(when: float) -> None:
    """What email.utils (and so most servers) writes is read back to the second."""
    value = email.utils.formatdate(when, usegmt=True)
    assert parse_retry_after(value, NOW) == pytest.approx(max(0.0, math.floor(when) - NOW))


date_parts = st.builds(
    lambda wd, d, m, y, h, mi, s, z, seps: seps.join(
        [wd, f"{d} {m} {y}" if seps != "-" else f"{d}-{m}-{y}", f"{h}:{mi}:{s}", z]
    ),
    st.sampled_from([*WEEKDAYS, *LONG_WEEKDAYS, "Mon,", "Friday,", "", "Xyz,"]),
    st.integers(-1, 40).map(str),
    st.sampled_from([*MONTHS, "jan", "JAN", "Foo", ""]),
    st.one_of(st.integers(0, 10000).map(str), st.sampled_from(["27", "94", "0000", "99999"])),
    st.integers(0, 99).map(lambda n: f"{n:02d}"),
    st.integers(0, 99).map(lambda n: f"{n:02d}"),
    st.integers(0, 99).map(lambda n: f"{n:02d}"),
    st.sampled_from(["GMT", "gmt", "UTC", "+0000", "-2359", "+9999", "EST", ""]),
    st.sampled_from([" ", "  ", "\t", "-"]),
)


@FUZZ
@given(
    st.one_of(
        date_parts,
        st.text(max_size=70),
        st.text(alphabet="0123456789 ", max_size=70),
        st.integers(0, 10**40).map(str),
        huge,
    ),
    st.one_of(st.just(NOW), st.floats(allow_nan=True, allow_infinity=True)),
)
def test_parse_retry_after_never_raises(value: str, now: float) -> None:
    result = parse_retry_after(value, now)
    assert result is None or result >= 0  # never nan, never negative, never an exception


@SOME
@given(
    retries=st.integers(0, 5),
    base=st.floats(0, 1e6),
    cap=st.one_of(st.floats(0, 1e6), st.just(math.inf)),
    jitter=st.one_of(st.none(), st.floats(0, 1e6), st.just(math.inf)),
    max_retry_after=st.one_of(st.floats(0, 1e12), st.just(math.inf)),
    attempt=st.one_of(st.integers(1, 4), st.integers(1, 10_000)),
    failure=st.sampled_from(list(Failure)),
    status=st.one_of(st.none(), st.integers(100, 599)),
    retry_after=st.one_of(st.none(), date_parts, st.integers(0, 10**30).map(str), st.text()),
    remaining=st.one_of(st.none(), st.floats(0, 1e12)),
    draw=st.floats(0, 1, exclude_max=True),
    retried=st.dictionaries(st.sampled_from(list(Failure)), st.integers(0, 10)),
)
def test_decide_never_raises(
    retries: int,
    base: float,
    cap: float,
    jitter: float | None,
    max_retry_after: float,
    attempt: int,
    failure: Failure,
    status: int | None,
    retry_after: str | None,
    remaining: float | None,
    draw: float,
    retried: dict[Failure, int],
) -> None:
    policy = RetryPolicy(
        retries=retries,
        backoff_base=base,
        backoff_max=cap,
        backoff_jitter=jitter,
        max_retry_after=max_retry_after,
        connect_retries=1,
    )
    decision = decide(
        policy,
        attempt=attempt,
        method="GET",
        failure=failure,
        status=status,
        retry_after=retry_after,
        remaining=remaining,
        random=lambda: draw,
        now=lambda: NOW,
        retried=retried,
    )
    assert 0 <= decision.delay <= 2**31  # finite: every sleep function takes it
    if remaining is not None and decision.retry:
        assert decision.delay < remaining


@SOME
@given(
    st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(
                st.none(),
                st.booleans(),
                st.integers(-2, 3),
                st.floats(allow_nan=True),
                st.text(max_size=3),
                st.lists(st.integers(0, 700), max_size=3),
                st.frozensets(st.sampled_from(["GET", "get", "POST", 1])),
            )
            for name in (
                "retries",
                "failure_statuses",
                "backoff_base",
                "backoff_max",
                "max_retry_after",
                "respect_retry_after",
                "retry_non_idempotent",
                "idempotent_methods",
                "backoff_jitter",
                "any_method_statuses",
                "retry_after_statuses",
                "connect_retries",
                "read_retries",
                "status_retries",
                "raise_on_failure_status",
            )
        },
    )
)
def test_policy_constructor_raises_only_type_or_value_error(kwargs: dict[str, Any]) -> None:
    try:
        policy = RetryPolicy(**kwargs)
    except (TypeError, ValueError):
        return
    assert policy.replace() == policy


counts = st.one_of(st.none(), st.booleans(), st.integers(-2, 5))


@SOME
@given(
    st.one_of(
        st.builds(
            urllib3.util.Retry,
            total=counts,
            connect=counts,
            read=counts,
            redirect=counts,
            status=counts,
            other=counts,
            status_forcelist=st.one_of(st.none(), st.sets(st.integers(100, 599), max_size=3)),
            allowed_methods=st.one_of(
                st.none(), st.sets(st.sampled_from(["GET", "post"]), min_size=1)
            ),
            backoff_factor=st.floats(0, 100),
            backoff_max=st.floats(0, 1e6),
            backoff_jitter=st.floats(0, 10),
            raise_on_status=st.booleans(),
            respect_retry_after_header=st.booleans(),
            retry_after_max=st.integers(0, 10**6),
        ),
        st.one_of(st.none(), st.integers(), st.text(max_size=3), st.builds(object)),
    )
)
def test_from_urllib3_raises_only_the_documented(retry: Any) -> None:
    try:
        policy = RetryPolicy.from_urllib3(retry)
    except TypeError:
        assert not isinstance(retry, urllib3.util.Retry)
        return
    except ValueError:
        assert isinstance(retry, urllib3.util.Retry)
        return
    assert isinstance(retry, urllib3.util.Retry) and policy.retries >= 0
