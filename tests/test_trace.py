"""W3C Trace Context: `TraceInfo` construction, parsing (W3C and B3) and `otel_headers`."""

from __future__ import annotations

import dataclasses
import email.message
import inspect
import re
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import multidict
import pytest
from starlette.datastructures import Headers as StarletteHeaders

import cf._trace
import cf.infrastructure.tracer
from cf._trace import TraceInfo, otel_headers

TID = "0af7651916cd43dd8448eb211c80319c"
SID = "b7ad6b7169203331"
TP = f"00-{TID}-{SID}-01"
TP_UNSAMPLED = f"00-{TID}-{SID}-00"
B3_TID = "80f198ee56343ba864fe8b2a57d3eff7"
B3_SID = "e457b5a2e4d86bd1"
B3_TID16 = "a3ce929d0e0e4736"


def test_public_names() -> None:
    assert cf.infrastructure.tracer.__all__ == ["TraceInfo"]
    assert cf.infrastructure.tracer.TraceInfo is TraceInfo
    assert sorted(cf._trace.__all__) == ["TraceInfo", "otel_headers"]


# --- traceparent -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(TP, (TID, SID, True, 1), id="sampled"),
        pytest.param(TP_UNSAMPLED, (TID, SID, False, 0), id="not-sampled"),
        pytest.param(f"00-{TID}-{SID}-03", (TID, SID, True, 3), id="random-flag-kept"),
        pytest.param(f"00-{TID}-{SID}-02", (TID, SID, False, 2), id="random-not-sampled"),
        pytest.param(f"00-{TID}-{SID}-ff", (TID, SID, True, 3), id="unknown-flags-dropped"),
        pytest.param(f"00-{TID}-{SID}-08", (TID, SID, False, 0), id="unknown-flag-only"),
        pytest.param(f"  {TP}\t ", (TID, SID, True, 1), id="surrounding-whitespace"),
        pytest.param(f"01-{TID}-{SID}-01", (TID, SID, True, 1), id="v01-exactly-55"),
        pytest.param(f"01-{TID}-{SID}-01-extra-fields", (TID, SID, True, 1), id="v01-extra"),
        pytest.param(f"fe-{TID}-{SID}-00-", (TID, SID, False, 0), id="vfe-trailing-dash"),
        pytest.param(f"cc-{TID}-{SID}-01-x ", (TID, SID, True, 1), id="vcc-extra-whitespace"),
        pytest.param(
            f"00-{'0' * 31}1-{'0' * 15}1-01",
            ("0" * 31 + "1", "0" * 15 + "1", True, 1),
            id="ids-almost-zero",
        ),
    ],
)
def test_traceparent_valid(value: str, expected: tuple[str, str, bool, int]) -> None:
    info = TraceInfo.from_headers({"traceparent": value})
    assert info is not None
    assert (info.trace_id, info.span_id, info.sampled, info.flags) == expected
    assert info.tracestate is None
    assert info.traceparent == f"00-{expected[0]}-{expected[1]}-{expected[3]:02x}"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(TP[:-1], id="length-54"),
        pytest.param(TP + "0", id="length-56"),
        pytest.param(TP + "-", id="v00-trailing-dash"),
        pytest.param(TP + "-extra", id="v00-extra-field"),
        pytest.param("", id="empty"),
        pytest.param(" \t ", id="blank"),
        pytest.param(TP.upper(), id="all-uppercase"),
        pytest.param(f"00-{TID.upper()}-{SID}-01", id="uppercase-trace-id"),
        pytest.param(f"00-{TID}-{SID.upper()}-01", id="uppercase-span-id"),
        pytest.param(f"00-{TID}-{SID}-0A", id="uppercase-flags"),
        pytest.param(f"0A-{TID}-{SID}-01", id="uppercase-version"),
        pytest.param(f"00-{'0' * 32}-{SID}-01", id="zero-trace-id"),
        pytest.param(f"00-{TID}-{'0' * 16}-01", id="zero-span-id"),
        pytest.param(f"ff-{TID}-{SID}-01", id="version-ff"),
        pytest.param(f"ff-{TID}-{SID}-01-extra", id="version-ff-extra"),
        pytest.param(f"01-{TID}-{SID}-01x", id="v01-junk-after-flags"),
        pytest.param(f"01-{TID}-{SID}-01{SID}", id="v01-hex-after-flags"),
        pytest.param(f"01-{TID}-{SID}-0", id="v01-short"),
        pytest.param(f"01-{TID}-{SID}-01,01-{TID}-{SID}-01", id="v01-comma-joined"),
        pytest.param(f"01-{TID}-{SID}-01-x,y", id="v01-comma-in-extra"),
        pytest.param(f"{TP},{TP}", id="comma-joined"),
        pytest.param(f"{TP}, {TP}", id="comma-space-joined"),
        pytest.param(f"{TP}\n", id="trailing-newline"),
        pytest.param(f"\r\n{TP}", id="leading-crlf"),
        pytest.param(f"00-{TID[:-1]}g-{SID}-01", id="non-hex"),
        pytest.param(f"00_{TID}_{SID}_01", id="wrong-separator"),
        pytest.param(f"00-{TID}{SID}-01-aa", id="misplaced-dashes"),
        pytest.param(f"0-{TID}-{SID}-01a", id="short-version"),
        pytest.param(f"00-{TID[:-1]}\u0660-{SID}-01", id="non-ascii-digit"),
        pytest.param(f"00-{TID}-{SID}-\uff10\uff11", id="fullwidth-digits"),
    ],
)
def test_traceparent_invalid(value: str) -> None:
    assert TraceInfo.from_headers({"traceparent": value}) is None
    assert TraceInfo.from_headers({"traceparent": value, "tracestate": "a=1"}) is None


def test_two_traceparent_fields_invalid() -> None:
    assert TraceInfo.from_headers([("traceparent", TP), ("traceparent", TP)]) is None
    assert TraceInfo.from_headers(httpx.Headers([("traceparent", TP), ("Traceparent", TP)])) is None
    assert TraceInfo.from_headers({"traceparent": TP, "TraceParent": TP}) is None


def test_invalid_traceparent_does_not_fall_back_to_b3() -> None:
    headers = {"traceparent": TP[:-1], "b3": f"{B3_TID}-{B3_SID}-1"}
    assert TraceInfo.from_headers(headers) is None


def test_traceparent_wins_over_b3() -> None:
    info = TraceInfo.from_headers({"b3": f"{B3_TID}-{B3_SID}-0", "traceparent": TP})
    assert info is not None
    assert (info.trace_id, info.span_id, info.sampled) == (TID, SID, True)


# --- tracestate ------------------------------------------------------------------------------


def _members(count: int, size: int = 5, prefix: str = "k") -> list[str]:
    """`count` distinct members of exactly `size` characters each."""
    out = []
    for i in range(count):
        key = f"{prefix}{i}"
        out.append(f"{key}={'v' * (size - len(key) - 1)}")
    return out


M128 = "big=" + "x" * 124  # 128 characters: not "long"
M129 = "big=" + "x" * 125
M200 = "huge=" + "x" * 195
KEY256 = "k" * 256
VALUE256 = "v" * 255 + "!"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param([], None, id="absent"),
        pytest.param(["congo=t61rcWkgMzE"], "congo=t61rcWkgMzE", id="single"),
        pytest.param(["a=1", "b=2", "c=3"], "a=1,b=2,c=3", id="fields-joined-in-order"),
        pytest.param(["a=1,b=2", "c=3"], "a=1,b=2,c=3", id="lists-joined"),
        pytest.param(["a=1 ,\tb=2 , c=3"], "a=1,b=2,c=3", id="ows-around-commas"),
        pytest.param([" \ta=1\t "], "a=1", id="ows-around-value"),
        pytest.param([",a=1,,, b=2,"], "a=1,b=2", id="empty-members"),
        pytest.param(["", "a=1", ""], "a=1", id="empty-fields"),
        pytest.param([""], None, id="empty"),
        pytest.param([" , ,\t,"], None, id="only-empty-members"),
        pytest.param(["a=1,b=2,a=3"], "a=1,b=2,a=3", id="duplicate-key-kept"),
        pytest.param(["a=1", "a=2"], "a=1,a=2", id="duplicate-across-fields-kept"),
        pytest.param(["a=1,A=2,B=3"], None, id="uppercase-key"),
        pytest.param(["_a=1,a=6"], None, id="key-first-char-underscore"),
        pytest.param(["-a=2,a=6"], None, id="key-first-char-dash"),
        pytest.param(["*a=3,a=6"], None, id="key-first-char-star"),
        pytest.param(["/a=4,a=6"], None, id="key-first-char-slash"),
        pytest.param(["@a=5,a=6"], None, id="key-first-char-at"),
        pytest.param(["1a=1"], "1a=1", id="key-starts-with-digit"),
        pytest.param(["a_-*/z=1"], "a_-*/z=1", id="key-special-chars"),
        pytest.param(["tenant@sys=1"], "tenant@sys=1", id="multi-tenant-key"),
        pytest.param(["0tenant@sys=1"], "0tenant@sys=1", id="multi-tenant-digit-tenant"),
        pytest.param(["a@b@c=1,x@=2"], "a@b@c=1,x@=2", id="level2-at-anywhere"),
        pytest.param(["a.b=1,a b=2,a%b=3,é=4"], None, id="key-bad-chars"),
        pytest.param([f"{KEY256}=1"], f"{KEY256}=1", id="key-256"),
        pytest.param([f"{KEY256}k=1,b=2"], None, id="key-257"),
        pytest.param(["b=2", f"{KEY256}k=1"], None, id="key-257-in-second-field"),
        pytest.param(["=1,b=2"], None, id="empty-key"),
        pytest.param(["a=,b=2"], None, id="empty-value"),
        pytest.param(["a= ,b=2"], None, id="blank-value"),
        pytest.param(["a,b=2"], None, id="no-equals"),
        pytest.param(["a=b=c,d=e"], None, id="equals-in-value"),
        pytest.param(["a= b"], "a= b", id="value-leading-space"),
        pytest.param(["a=   b  "], "a=   b", id="value-leading-spaces-kept-trailing-dropped"),
        pytest.param(["a=x y"], "a=x y", id="value-inner-space"),
        pytest.param(
            ["a=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"],
            "a=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~",
            id="value-punctuation",
        ),
        pytest.param(["a=x\x7f,b=2"], None, id="value-del"),
        pytest.param(["a=x\x01,b=2"], None, id="value-control"),
        pytest.param(["a=x\ty,b=2"], None, id="value-inner-tab"),
        pytest.param(["a=x\r\nb=2"], None, id="value-crlf"),
        pytest.param(["a=caf\u00e9,b=2"], None, id="value-non-ascii"),
        pytest.param([f"a={VALUE256}"], f"a={VALUE256}", id="value-256"),
        pytest.param([f"a=x{VALUE256},b=2"], None, id="value-257"),
        pytest.param([",".join(_members(32))], ",".join(_members(32)), id="32-members"),
        pytest.param([",".join(_members(33))], None, id="33-members-dropped"),
        pytest.param(_members(40), None, id="40-fields-dropped"),
        pytest.param(
            [",,".join(_members(32)) + ", ,\t,"], ",".join(_members(32)), id="empties-not-counted"
        ),
        pytest.param(["A=1," + ",".join(_members(31))], None, id="one-invalid-drops-all"),
        pytest.param(["a=1,a=2," + ",".join(_members(31))], None, id="duplicates-counted"),
    ],
)
def test_tracestate(fields: list[str], expected: str | None) -> None:
    headers = [("traceparent", TP)] + [("tracestate", f) for f in fields]
    info = TraceInfo.from_headers(headers)
    assert info is not None
    assert info.tracestate == expected
    assert info.to_headers().get("tracestate") == expected


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        # 16 members of 31 characters: 16 * 31 + 15 commas = 511
        pytest.param(_members(16, 31), _members(16, 31), id="511-fits"),
        pytest.param(
            _members(15, 31) + ["x=" + "y" * 30],
            _members(15, 31) + ["x=" + "y" * 30],
            id="512-fits",
        ),
        pytest.param(_members(15, 31) + ["x=" + "y" * 31], _members(15, 31), id="513-drops-last"),
        pytest.param(_members(20, 31), _members(16, 31), id="no-long-drops-from-end"),
        pytest.param(
            _members(2, 31) + [M200] + _members(12, 31, "j"),
            _members(2, 31) + _members(12, 31, "j"),
            id="long-entry-dropped-first",
        ),
        pytest.param(
            [M129] + _members(11, 31) + [M200], [M129] + _members(11, 31), id="longest-first"
        ),
        pytest.param([M129, M200] + _members(14, 31), _members(14, 31), id="all-long-dropped"),
        pytest.param(
            [M200, M200.replace("huge", "hugf")] + _members(4, 31),
            [M200] + _members(4, 31),
            id="same-length-last-dropped-first",
        ),
        pytest.param(
            [M128] + _members(13, 31) + [M129], [M128] + _members(12, 31), id="128-is-not-long"
        ),
    ],
)
def test_tracestate_truncated_to_512(members: list[str], expected: list[str]) -> None:
    info = TraceInfo.from_headers({"traceparent": TP, "tracestate": ",".join(members)})
    assert info is not None and info.tracestate is not None
    assert info.tracestate == ",".join(expected)
    assert len(info.tracestate) <= 512


def test_tracestate_without_valid_traceparent_is_ignored() -> None:
    assert TraceInfo.from_headers({"tracestate": "a=1"}) is None
    info = TraceInfo.from_headers({"tracestate": "a=1", "b3": f"{B3_TID}-{B3_SID}"})
    assert info is not None and info.tracestate is None
    info = TraceInfo.from_headers(
        {"tracestate": "a=1", "x-b3-traceid": B3_TID, "x-b3-spanid": B3_SID}
    )
    assert info is not None and info.tracestate is None


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(["a=1" + " " * 8189], "a=1", id="8192-read"),
        pytest.param(["a=1" + " " * 8190], None, id="8193-dropped"),
        pytest.param(["a=1", " " * 8184, "b=2"], "a=1,b=2", id="fields-8192-read"),
        pytest.param(["a=1", " " * 8185, "b=2"], None, id="fields-8193-dropped"),
        pytest.param(["a=1", "z" * 8000, "z" * 8000, "b=2"], None, id="fields-over-cap-dropped"),
        pytest.param(["a=1", "b=2" + " " * 9000], None, id="one-field-over-cap"),
    ],
)
def test_tracestate_over_size_cap_is_dropped(fields: list[str], expected: str | None) -> None:
    """Prohibitively large input (over 8 KiB in all) drops the tracestate, keeps the trace."""
    info = TraceInfo.from_headers([("traceparent", TP)] + [("tracestate", f) for f in fields])
    assert info is not None and info.trace_id == TID
    assert info.tracestate == expected


# --- W3C Trace Context: the specification and its validation harness -------------------------
#
# Every case is what a propagating service receives and what it must send downstream:
# `TraceInfo.from_headers(incoming)`, or a new trace when that is None, then
# `.child().to_headers()` for the outgoing call. "harness-*" cases are the requests
# of the W3C validation harness (w3c/trace-context test/test.py, STRICT_LEVEL=2,
# SPEC_LEVEL=2); "spec-*" cases are the MUSTs and SHOULDs of the specification's
# traceparent, tracestate and mutation sections that the harness does not exercise.

HT = "12345678901234567890123456789012"  # the harness's trace id and parent id
HP = "1234567890123456"
V00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


@dataclasses.dataclass(frozen=True)
class Continue:
    """The incoming trace is continued: same trace id, new parent id, these flags."""

    flags: int
    tracestate: str | None = None
    trace_id: str = HT


@dataclasses.dataclass(frozen=True)
class Restart:
    """The incoming context is ignored: a new trace, no tracestate."""

    not_ids: tuple[str, ...] = (HT,)


def tp(value: str) -> tuple[str, str]:
    return ("traceparent", value)


def ts(value: str) -> tuple[str, str]:
    return ("tracestate", value)


TP00 = f"00-{HT}-{HP}-00"
TP01 = f"00-{HT}-{HP}-01"
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-*/"
KEY_VENDOR = KEY_CHARS + "@a-z0-9_-*/"
VALUE_CHARS = "".join(chr(c) for c in [*range(0x20, 0x2C), *range(0x2D, 0x3D), *range(0x3E, 0x7F)])
BARS = [f"bar{i:02d}={i:02d}" for i in range(1, 34)]
BAR_FIELDS = [",".join(BARS[i : i + 10]) for i in (0, 10, 20)]

W3C_CASES = [
    # harness: traceparent
    pytest.param([], Restart(), id="harness-both-missing"),
    pytest.param([tp(TP01)], Continue(1), id="harness-traceparent-without-tracestate"),
    pytest.param(
        [tp(f"00-{HT[:-1]}1-{HP}-01"), tp(TP01)],
        Restart((HT, HT[:-1] + "1")),
        id="harness-traceparent-duplicated",
    ),
    pytest.param([("trace-parent", TP01)], Restart(), id="harness-name-trace-parent"),
    pytest.param([("trace.parent", TP01)], Restart(), id="harness-name-trace.parent"),
    pytest.param([("TraceParent", TP01)], Continue(1), id="harness-name-TraceParent"),
    pytest.param([("TrAcEpArEnT", TP01)], Continue(1), id="harness-name-TrAcEpArEnT"),
    pytest.param([("TRACEPARENT", TP01)], Continue(1), id="harness-name-TRACEPARENT"),
    pytest.param([tp(TP01 + ".")], Restart(), id="harness-v00-trailing-dot"),
    pytest.param(
        [tp(TP01 + "-what-the-future-will-be-like")], Restart(), id="harness-v00-future-fields"
    ),
    pytest.param([tp(f"cc-{HT}-{HP}-01")], Continue(1), id="harness-vcc"),
    pytest.param(
        [tp(f"cc-{HT}-{HP}-01-what-the-future-will-be-like")],
        Continue(1),
        id="harness-vcc-future-fields",
    ),
    pytest.param(
        [tp(f"cc-{HT}-{HP}-01.what-the-future-will-be-like")],
        Restart(),
        id="harness-vcc-no-dash-after-flags",
    ),
    pytest.param([tp(f"ff-{HT}-{HP}-01")], Restart(), id="harness-vff"),
    pytest.param([tp(f".0-{HT}-{HP}-01")], Restart(), id="harness-version-.0"),
    pytest.param([tp(f"0.-{HT}-{HP}-01")], Restart(), id="harness-version-0."),
    pytest.param([tp(f"000-{HT}-{HP}-01")], Restart(), id="harness-version-000"),
    pytest.param([tp(f"0000-{HT}-{HP}-01")], Restart(), id="harness-version-0000"),
    pytest.param([tp(f"0-{HT}-{HP}-01")], Restart(), id="harness-version-0"),
    pytest.param([tp(f"00-{'0' * 32}-{HP}-01")], Restart(), id="harness-trace-id-zero"),
    pytest.param([tp(f"00-.{HT[1:]}-{HP}-01")], Restart(), id="harness-trace-id-leading-dot"),
    pytest.param([tp(f"00-{HT[:-1]}.-{HP}-01")], Restart(), id="harness-trace-id-trailing-dot"),
    pytest.param([tp(f"00-{HT}3-{HP}-01")], Restart((HT, HT[1:] + "3")), id="harness-trace-id-33"),
    pytest.param([tp(f"00-{HT[:-1]}-{HP}-01")], Restart(), id="harness-trace-id-31"),
    pytest.param([tp(f"00-{HT}-{'0' * 16}-01")], Restart(), id="harness-parent-id-zero"),
    pytest.param([tp(f"00-{HT}-.{HP[1:]}-01")], Restart(), id="harness-parent-id-leading-dot"),
    pytest.param([tp(f"00-{HT}-{HP[:-1]}.-01")], Restart(), id="harness-parent-id-trailing-dot"),
    pytest.param([tp(f"00-{HT}-{HP}7-01")], Restart(), id="harness-parent-id-17"),
    pytest.param([tp(f"00-{HT}-{HP[:-1]}-01")], Restart(), id="harness-parent-id-15"),
    pytest.param([tp(f"00-{HT}-{HP}-.0")], Restart(), id="harness-flags-.0"),
    pytest.param([tp(f"00-{HT}-{HP}-0.")], Restart(), id="harness-flags-0."),
    pytest.param([tp(f"00-{HT}-{HP}-001")], Restart(), id="harness-flags-001"),
    pytest.param([tp(f"00-{HT}-{HP}-1")], Restart(), id="harness-flags-1"),
    pytest.param([tp(" " + TP01)], Continue(1), id="harness-ows-leading-space"),
    pytest.param([tp("\t" + TP01)], Continue(1), id="harness-ows-leading-tab"),
    pytest.param([tp(TP01 + " ")], Continue(1), id="harness-ows-trailing-space"),
    pytest.param([tp(TP01 + "\t")], Continue(1), id="harness-ows-trailing-tab"),
    pytest.param([tp("\t " + TP01 + " \t")], Continue(1), id="harness-ows-both"),
    # harness: tracestate
    pytest.param([ts("foo=1")], Restart(), id="harness-tracestate-without-traceparent"),
    pytest.param([ts("foo=1,bar=2")], Restart(), id="harness-tracestate-2-without-traceparent"),
    pytest.param([tp(TP00), ts("foo=1,bar=2")], Continue(0, "foo=1,bar=2"), id="harness-both"),
    pytest.param([tp(TP00), ("trace-state", "foo=1")], Continue(0), id="harness-name-trace-state"),
    pytest.param([tp(TP00), ("trace.state", "foo=1")], Continue(0), id="harness-name-trace.state"),
    pytest.param(
        [tp(TP00), ("TraceState", "foo=1")], Continue(0, "foo=1"), id="harness-TraceState"
    ),
    pytest.param(
        [tp(TP00), ("TrAcEsTaTe", "foo=1")], Continue(0, "foo=1"), id="harness-TrAcEsTaTe"
    ),
    pytest.param(
        [tp(TP00), ("TRACESTATE", "foo=1")], Continue(0, "foo=1"), id="harness-TRACESTATE"
    ),
    pytest.param([tp(TP00), ts("")], Continue(0), id="harness-empty"),
    pytest.param([tp(TP00), ts("foo=1"), ts("")], Continue(0, "foo=1"), id="harness-empty-last"),
    pytest.param([tp(TP00), ts(""), ts("foo=1")], Continue(0, "foo=1"), id="harness-empty-first"),
    pytest.param(
        [tp(TP00), ts("foo=1,bar=2"), ts("rojo=1,congo=2"), ts("baz=3")],
        Continue(0, "foo=1,bar=2,rojo=1,congo=2,baz=3"),
        id="harness-multiple-headers",
    ),
    pytest.param([tp(TP00), ts("foo=1,foo=1")], Continue(0, "foo=1,foo=1"), id="harness-dup-same"),
    pytest.param([tp(TP00), ts("foo=1,foo=2")], Continue(0, "foo=1,foo=2"), id="harness-dup"),
    pytest.param(
        [tp(TP00), ts("foo=1"), ts("foo=1")], Continue(0, "foo=1,foo=1"), id="harness-dup-fields"
    ),
    pytest.param(
        [tp(TP00), ts("foo=1"), ts("foo=2")], Continue(0, "foo=1,foo=2"), id="harness-dup-fields-2"
    ),
    pytest.param(
        [tp(TP00), ts(f"{KEY_CHARS}={VALUE_CHARS}")],
        Continue(0, f"{KEY_CHARS}={VALUE_CHARS}"),
        id="harness-all-allowed-characters",
    ),
    pytest.param(
        [tp(TP00), ts(f"{KEY_VENDOR}={VALUE_CHARS}")],
        Continue(0, f"{KEY_VENDOR}={VALUE_CHARS}"),
        id="harness-all-allowed-characters-vendor",
    ),
    pytest.param(
        [tp(TP00), ts("foo=1 \t , \t bar=2, \t baz=3")],
        Continue(0, "foo=1,bar=2,baz=3"),
        id="harness-ows-spaces-tabs",
    ),
    pytest.param(
        [tp(TP00), ts("foo=1\t \t,\t \tbar=2,\t \tbaz=3")],
        Continue(0, "foo=1,bar=2,baz=3"),
        id="harness-ows-tabs-spaces",
    ),
    pytest.param([tp(TP00), ts(" foo=1")], Continue(0, "foo=1"), id="harness-ows-leading-space"),
    pytest.param([tp(TP00), ts("\tfoo=1")], Continue(0, "foo=1"), id="harness-ows-leading-tab"),
    pytest.param([tp(TP00), ts("foo=1 ")], Continue(0, "foo=1"), id="harness-ows-trailing-space"),
    pytest.param([tp(TP00), ts("foo=1\t")], Continue(0, "foo=1"), id="harness-ows-trailing-tab"),
    pytest.param([tp(TP00), ts("\t foo=1 \t")], Continue(0, "foo=1"), id="harness-ows-both"),
    pytest.param([tp(TP00), ts("foo =1")], Continue(0), id="harness-key-space"),
    pytest.param([tp(TP00), ts("FOO=1")], Continue(0), id="harness-key-uppercase"),
    pytest.param([tp(TP00), ts("foo.bar=1")], Continue(0), id="harness-key-dot"),
    pytest.param(
        [tp(TP00), ts("foo@=1,bar=2")], Continue(0, "foo@=1,bar=2"), id="harness-key-at-last"
    ),
    pytest.param([tp(TP00), ts("@foo=1,bar=2")], Continue(0), id="harness-key-at-first"),
    pytest.param(
        [tp(TP00), ts("foo@@bar=1,bar=2")], Continue(0, "foo@@bar=1,bar=2"), id="harness-key-at-at"
    ),
    pytest.param(
        [tp(TP00), ts("foo@bar@baz=1,bar=2")],
        Continue(0, "foo@bar@baz=1,bar=2"),
        id="harness-key-two-ats",
    ),
    pytest.param(
        [tp(TP00), *map(ts, BAR_FIELDS), ts(",".join(BARS[30:32]))],
        Continue(0, ",".join(BARS[:32])),
        id="harness-32-members",
    ),
    pytest.param(
        [tp(TP00), *map(ts, BAR_FIELDS), ts(",".join(BARS[30:33]))],
        Continue(0),
        id="harness-33-members",
    ),
    pytest.param(
        [tp(TP00), ts("foo=1"), ts("z" * 256 + "=1")],
        Continue(0, "foo=1," + "z" * 256 + "=1"),
        id="harness-key-256",
    ),
    pytest.param([tp(TP00), ts("foo=1"), ts("z" * 257 + "=1")], Continue(0), id="harness-key-257"),
    pytest.param(
        [tp(TP00), ts("foo=1"), ts("t" * 241 + "@" + "v" * 14 + "=1")],
        Continue(0, "foo=1," + "t" * 241 + "@" + "v" * 14 + "=1"),
        id="harness-key-256-with-at",
    ),
    pytest.param(
        [tp(TP00), ts("foo=1"), ts("t" * 242 + "@v=1")],
        Continue(0, "foo=1," + "t" * 242 + "@v=1"),
        id="harness-key-244-with-at",
    ),
    pytest.param(
        [tp(TP00), ts("foo=1"), ts("t@" + "v" * 15 + "=1")],
        Continue(0, "foo=1,t@" + "v" * 15 + "=1"),
        id="harness-key-short-tenant",
    ),
    pytest.param([tp(TP00), ts("foo=bar=baz")], Continue(0), id="harness-value-equals"),
    pytest.param([tp(TP00), ts("foo=,bar=3")], Continue(0), id="harness-value-empty"),
    pytest.param([tp(f"00-{HT}-{HP}-02")], Continue(2), id="harness-level2-random-flag"),
    # spec: traceparent field values
    pytest.param([tp(f"00-{TID.upper()}-{SID}-01")], Restart((TID,)), id="spec-trace-id-uppercase"),
    pytest.param(
        [tp(f"00-{TID}-{SID.upper()}-01")], Restart((TID,)), id="spec-parent-id-uppercase"
    ),
    pytest.param([tp(f"00-{HT}-{HP}-0A")], Restart(), id="spec-flags-uppercase"),
    pytest.param([tp(f"0A-{HT}-{HP}-01")], Restart(), id="spec-version-uppercase"),
    pytest.param([tp(f"00-{HT}-{HP}-03")], Continue(3), id="spec-random-set-stays-set"),
    pytest.param([tp(f"00-{HT}-{HP}-01")], Continue(1), id="spec-random-unset-stays-unset"),
    pytest.param([tp(f"00-{HT}-{HP}-ff")], Continue(3), id="spec-other-flags-set-to-zero"),
    pytest.param([tp(f"00-{HT}-{HP}-04")], Continue(0), id="spec-other-flag-only"),
    pytest.param([tp(f"00-{HT}-{HP}-81")], Continue(1), id="spec-high-flag-dropped"),
    # spec: versioning (a higher version is parsed by its first fields, sent as 00)
    pytest.param([tp(f"01-{HT}-{HP}-0")], Restart(), id="spec-future-shorter-than-55"),
    pytest.param([tp(f"01-{HT}_{HP}-01")], Restart(), id="spec-future-no-dash-after-trace-id"),
    pytest.param([tp(f"01-{HT}-{HP}_01")], Restart(), id="spec-future-no-dash-after-parent-id"),
    pytest.param([tp(f"01-{HT}-{HP}-01x")], Restart(), id="spec-future-no-dash-after-flags"),
    pytest.param([tp(f"01-{HT}-{HP}-01-")], Continue(1), id="spec-future-dash-after-flags"),
    pytest.param(
        [tp(f"fe-{HT}-{HP}-02-ffffffffff-xyz")], Continue(2), id="spec-future-fields-not-parsed"
    ),
    pytest.param([tp(f"01-{HT[:-1]}g-{HP}-01")], Restart(), id="spec-future-trace-id-not-hex"),
    pytest.param([tp(f"01-{HT}-{HP[:-1]}g-01")], Restart(), id="spec-future-parent-id-not-hex"),
    pytest.param([tp(f"01-{HT}-{HP}-0g")], Restart(), id="spec-future-flags-not-hex"),
    pytest.param([tp(f"g0-{HT}-{HP}-01")], Restart(), id="spec-version-not-hex"),
    pytest.param([tp(f"00{HT}-{HP}-01")], Restart(), id="spec-version-no-dash"),
    # spec: tracestate
    pytest.param(
        [tp(f"00-{'0' * 32}-{HP}-01"), ts("foo=1")], Restart(), id="spec-bad-traceparent-no-state"
    ),
    pytest.param([tp(TP01), tp(TP01), ts("foo=1")], Restart(), id="spec-two-traceparents-no-state"),
    pytest.param(
        [tp(TP01), ts("foo=1,Bad=2")], Continue(1), id="spec-bad-tracestate-keeps-traceparent"
    ),
    pytest.param(
        [tp(TP01), ts("foo=1, ,\t,bar=2")], Continue(1, "foo=1,bar=2"), id="spec-empty-members"
    ),
    pytest.param([tp(TP01), ts(" , ,\t")], Continue(1), id="spec-only-empty-members-not-sent"),
    pytest.param(
        [tp(TP01), ts("foo=1 ,  bar=2")], Continue(1, "foo=1,bar=2"), id="spec-no-ows-generated"
    ),
    pytest.param([tp(TP01), ts("0foo=1")], Continue(1, "0foo=1"), id="spec-key-starts-digit"),
    pytest.param([tp(TP01), ts("_foo=1")], Continue(1), id="spec-key-starts-underscore"),
    pytest.param([tp(TP01), ts("-foo=1")], Continue(1), id="spec-key-starts-dash"),
    pytest.param([tp(TP01), ts("*foo=1")], Continue(1), id="spec-key-starts-star"),
    pytest.param([tp(TP01), ts("/foo=1")], Continue(1), id="spec-key-starts-slash"),
    pytest.param([tp(TP01), ts("fOo=1")], Continue(1), id="spec-key-inner-uppercase"),
    pytest.param([tp(TP01), ts("foo:bar=1")], Continue(1), id="spec-key-colon"),
    pytest.param(
        [tp(TP01), ts("foo=" + "v" * 256)], Continue(1, "foo=" + "v" * 256), id="spec-v256"
    ),
    pytest.param([tp(TP01), ts("foo=" + "v" * 257)], Continue(1), id="spec-value-257"),
    pytest.param([tp(TP01), ts("foo=a\tb")], Continue(1), id="spec-value-tab"),
    pytest.param([tp(TP01), ts("foo=a\nb")], Continue(1), id="spec-value-newline"),
    pytest.param([tp(TP01), ts("foo=a\x7fb")], Continue(1), id="spec-value-del"),
    pytest.param([tp(TP01), ts("foo=caf\u00e9")], Continue(1), id="spec-value-non-ascii"),
    pytest.param([tp(TP01), ts("foo= ")], Continue(1), id="spec-value-only-space"),
    pytest.param([tp(TP01), ts("foo=  x")], Continue(1, "foo=  x"), id="spec-leading-spaces-kept"),
    pytest.param([tp(TP01), ts("foo=x  ")], Continue(1, "foo=x"), id="spec-trailing-spaces-ows"),
    pytest.param(
        [tp(TP01), ts(",".join(_members(16, 31)))],
        Continue(1, ",".join(_members(16, 31))),
        id="spec-propagate-511",
    ),
    pytest.param(
        [tp(TP01), ts(",".join([*_members(15, 31), "x=" + "y" * 30]))],
        Continue(1, ",".join([*_members(15, 31), "x=" + "y" * 30])),
        id="spec-propagate-512",
    ),
    pytest.param(
        [tp(TP01), ts(",".join([*_members(2, 31), M200, *_members(12, 31, "j")]))],
        Continue(1, ",".join([*_members(2, 31), *_members(12, 31, "j")])),
        id="spec-truncate-long-entry-first",
    ),
    pytest.param(
        [tp(TP01), ts(",".join(_members(20, 31)))],
        Continue(1, ",".join(_members(16, 31))),
        id="spec-truncate-from-the-end",
    ),
    pytest.param(
        [tp(TP01), ts("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")],
        Continue(1, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"),
        id="spec-order-preserved",
    ),
    # B3 fallback (cf's, not W3C): read, then sent as W3C; a tracestate is not joined to it
    pytest.param(
        [("b3", f"{B3_TID}-{B3_SID}-1"), ts("foo=1")],
        Continue(1, None, B3_TID),
        id="b3-continued-without-tracestate",
    ),
]


def downstream(headers: list[tuple[str, str]]) -> tuple[TraceInfo | None, dict[str, str]]:
    """What a propagating service parses, and the headers of its outgoing call."""
    info = TraceInfo.from_headers(headers)
    return info, (info or TraceInfo.create_new()).child().to_headers()


@pytest.mark.parametrize(("headers", "expected"), W3C_CASES)
def test_w3c(headers: list[tuple[str, str]], expected: Continue | Restart) -> None:
    info, sent = downstream(headers)
    check_w3c(headers, info, sent, expected)


def check_w3c(
    headers: list[tuple[str, str]],
    info: TraceInfo | None,
    sent: dict[str, str],
    expected: Continue | Restart,
) -> None:
    """What a propagating service sent downstream is what the W3C specification asks."""
    assert set(sent) <= {"traceparent", "tracestate"}  # lowercase names, one field each
    match = V00.fullmatch(sent["traceparent"])  # always version 00, lowercase hex
    assert match is not None
    trace_id, parent_id, flags = match[1], match[2], int(match[3], 16)
    assert trace_id != "0" * 32 and parent_id != "0" * 16
    incoming_parents = {p for k, v in headers if k.lower() == "traceparent" for p in v.split("-")}
    if isinstance(expected, Restart):
        assert info is None
        assert trace_id not in expected.not_ids
        assert "tracestate" not in sent  # tracestate is cleaned up on restart
        assert flags == 3  # a new random trace id, sampled
        return
    assert info is not None
    assert (info.trace_id, info.flags, info.tracestate) == (
        expected.trace_id,
        expected.flags,
        expected.tracestate,
    )
    assert trace_id == expected.trace_id  # MUST send the trace on
    assert parent_id not in incoming_parents  # the only mutation: a new parent id...
    assert flags == expected.flags  # ...and flags with undefined bits zeroed
    assert sent.get("tracestate") == expected.tracestate
    if expected.tracestate is not None:
        parsed = TraceInfo(trace_id, parent_id, bool(flags & 1), expected.tracestate, flags)
        assert TraceInfo.from_headers(sent) == parsed  # the next hop reads the same


def test_w3c_harness_multiple_requests() -> None:
    """harness AdvancedTest: each outgoing call has its own parent id, the trace is kept."""
    for incoming, keeps in [
        ([tp(TP01)], True),
        ([], False),
        ([tp(f"00-{'0' * 32}-{HP}-01")], False),
    ]:
        info = TraceInfo.from_headers(incoming) or TraceInfo.create_new()
        sent = [V00.fullmatch(info.child().to_headers()["traceparent"]) for _ in range(3)]
        assert all(m is not None for m in sent)
        trace_ids = {m[1] for m in sent if m is not None}
        assert len(trace_ids) == 1 and (HT in trace_ids) is keeps
        assert "0" * 32 not in trace_ids
        assert len({m[2] for m in sent if m is not None}) == 3


def test_w3c_unchanged_traceparent_keeps_tracestate() -> None:
    """spec: if the traceparent is not changed, the tracestate MUST NOT be modified."""
    headers = {"traceparent": TP01, "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE,a=  b"}
    info = TraceInfo.from_headers(headers)
    assert info is not None and info.to_headers() == headers


def test_w3c_new_trace() -> None:
    """spec: a request without traceparent SHOULD get one generated for outbound calls; the
    trace id SHOULD be random (at least its right-most 7 bytes) and then the random flag
    SHOULD be set."""
    sent = TraceInfo.create_new().to_headers()
    assert list(sent) == ["traceparent"]
    match = V00.fullmatch(sent["traceparent"])
    assert match is not None and match[3] == "03"
    tails = {TraceInfo.create_new().trace_id[-14:] for _ in range(1000)}
    assert len(tails) == 1000  # 56 random bits: a collision among 1000 is ~1e-11


# --- B3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param({"b3": f"{B3_TID}-{B3_SID}"}, (B3_TID, B3_SID, True), id="single-no-decision"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}-1"}, (B3_TID, B3_SID, True), id="single-1"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}-0"}, (B3_TID, B3_SID, False), id="single-0"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}-d"}, (B3_TID, B3_SID, True), id="single-debug"),
        pytest.param(
            {"B3": f"{B3_TID}-{B3_SID}-1-{SID}"}, (B3_TID, B3_SID, True), id="single-with-parent"
        ),
        pytest.param(
            {"b3": f"{B3_TID16}-{B3_SID}-1"},
            ("0" * 16 + B3_TID16, B3_SID, True),
            id="single-16-hex-padded",
        ),
        pytest.param(
            {"b3": f" {B3_TID}-{B3_SID}-1\t"}, (B3_TID, B3_SID, True), id="single-whitespace"
        ),
        pytest.param(
            {"HTTP_B3": f"{B3_TID}-{B3_SID}-0"}, (B3_TID, B3_SID, False), id="single-wsgi"
        ),
        pytest.param(
            {"X-B3-TraceId": B3_TID, "X-B3-SpanId": B3_SID},
            (B3_TID, B3_SID, True),
            id="multi-no-decision",
        ),
        pytest.param(
            {"x-b3-traceid": B3_TID16, "x-b3-spanid": B3_SID, "x-b3-sampled": "1"},
            ("0" * 16 + B3_TID16, B3_SID, True),
            id="multi-16-hex-padded",
        ),
        pytest.param(
            {"X-B3-TraceId": B3_TID, "X-B3-SpanId": B3_SID, "X-B3-Sampled": "0"},
            (B3_TID, B3_SID, False),
            id="multi-sampled-0",
        ),
        pytest.param(
            {"X-B3-TraceId": B3_TID, "X-B3-SpanId": B3_SID, "X-B3-Sampled": "true"},
            (B3_TID, B3_SID, True),
            id="multi-sampled-true",
        ),
        pytest.param(
            {"X-B3-TraceId": B3_TID, "X-B3-SpanId": B3_SID, "X-B3-Sampled": "False"},
            (B3_TID, B3_SID, False),
            id="multi-sampled-false",
        ),
        pytest.param(
            {"X-B3-TraceId": B3_TID, "X-B3-SpanId": B3_SID, "X-B3-Flags": "1"},
            (B3_TID, B3_SID, True),
            id="multi-debug",
        ),
        pytest.param(
            {"X-B3-TraceId": B3_TID, "X-B3-SpanId": B3_SID, "X-B3-Sampled": "0", "X-B3-Flags": "1"},
            (B3_TID, B3_SID, True),
            id="multi-debug-wins",
        ),
        pytest.param(
            {"X-B3-TraceId": B3_TID, "X-B3-SpanId": B3_SID, "X-B3-Sampled": "0", "X-B3-Flags": "0"},
            (B3_TID, B3_SID, False),
            id="multi-flags-0",
        ),
        pytest.param(
            {"HTTP_X_B3_TRACEID": B3_TID, "HTTP_X_B3_SPANID": B3_SID, "HTTP_X_B3_SAMPLED": "0"},
            (B3_TID, B3_SID, False),
            id="multi-wsgi",
        ),
        pytest.param(
            {"b3": f"{B3_TID}-{B3_SID}-0", "X-B3-TraceId": TID, "X-B3-SpanId": SID},
            (B3_TID, B3_SID, False),
            id="single-wins-over-multi",
        ),
    ],
)
def test_b3_valid(headers: dict[str, str], expected: tuple[str, str, bool]) -> None:
    info = TraceInfo.from_headers(headers)
    assert info is not None
    assert (info.trace_id, info.span_id, info.sampled) == expected
    assert info.tracestate is None
    assert info.to_headers() == {
        "traceparent": f"00-{expected[0]}-{expected[1]}-0{int(expected[2])}"
    }


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"b3": "0"}, id="single-decision-only"),
        pytest.param({"b3": "1"}, id="single-accept-only"),
        pytest.param({"b3": ""}, id="single-empty"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}-x"}, id="single-bad-sampling"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}-true"}, id="single-true-not-allowed"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}-1-xyz"}, id="single-bad-parent"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}-1-{SID}-x"}, id="single-too-many-parts"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}-"}, id="single-trailing-dash"),
        pytest.param({"b3": f"{B3_TID.upper()}-{B3_SID}"}, id="single-uppercase"),
        pytest.param({"b3": f"{B3_TID[:-1]}-{B3_SID}"}, id="single-31-hex"),
        pytest.param({"b3": f"{B3_TID}0-{B3_SID}"}, id="single-33-hex"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}0"}, id="single-17-hex-span"),
        pytest.param({"b3": f"{'0' * 32}-{B3_SID}"}, id="single-zero-trace"),
        pytest.param({"b3": f"{'0' * 16}-{B3_SID}"}, id="single-zero-trace-16"),
        pytest.param({"b3": f"{B3_TID}-{'0' * 16}"}, id="single-zero-span"),
        pytest.param([("b3", f"{B3_TID}-{B3_SID}"), ("b3", f"{B3_TID}-{B3_SID}")], id="two-b3"),
        pytest.param(
            {"b3": "garbage", "X-B3-TraceId": B3_TID, "X-B3-SpanId": B3_SID},
            id="bad-single-no-fallback",
        ),
        pytest.param({"X-B3-TraceId": B3_TID}, id="multi-no-span"),
        pytest.param({"X-B3-SpanId": B3_SID}, id="multi-no-trace"),
        pytest.param(
            {"X-B3-TraceId": B3_TID, "X-B3-SpanId": B3_SID, "X-B3-Sampled": "yes"},
            id="multi-bad-sampled",
        ),
        pytest.param({"X-B3-TraceId": B3_TID, "X-B3-SpanId": "xyz"}, id="multi-bad-span"),
        pytest.param({"X-B3-TraceId": "0" * 16, "X-B3-SpanId": B3_SID}, id="multi-zero-trace"),
        pytest.param(
            [("X-B3-TraceId", B3_TID), ("X-B3-TraceId", TID), ("X-B3-SpanId", B3_SID)],
            id="multi-two-trace-ids",
        ),
        pytest.param({"X-B3-Sampled": "1", "X-B3-Flags": "1"}, id="multi-decision-only"),
    ],
)
def test_b3_invalid(headers: Any) -> None:
    assert TraceInfo.from_headers(headers) is None


# --- header shapes ---------------------------------------------------------------------------


class ItemsOnly:
    """A multi-valued headers object known only by an items() yielding repeated names."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def items(self) -> list[tuple[str, str]]:
        return self._pairs


class GetAllOnly:
    """A multi-valued headers object with only a case-insensitive getall(name)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._pairs = pairs

    def getall(self, name: str) -> list[str]:
        values = [v for k, v in self._pairs if k.lower() == name]
        if not values:
            raise KeyError(name)
        return values


def _email_message() -> email.message.Message:
    msg = email.message.Message()
    msg["Traceparent"] = TP
    msg["Tracestate"] = "a=1"
    msg["Tracestate"] = "b=2"
    return msg


PAIRS = [("Traceparent", TP), ("TraceState", "a=1"), ("tracestate", "b=2")]
RAW = [(k.lower().encode(), v.encode()) for k, v in PAIRS]


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: {"traceparent": TP, "tracestate": "a=1,b=2"}, id="dict"),
        pytest.param(lambda: {"TRACEPARENT": TP, "TraceState": "a=1,b=2"}, id="dict-mixed-case"),
        pytest.param(lambda: {"traceparent": [TP], "tracestate": ["a=1", "b=2"]}, id="dict-lists"),
        pytest.param(
            lambda: {b"traceparent": TP.encode(), b"tracestate": b"a=1,b=2"}, id="dict-bytes"
        ),
        pytest.param(lambda: httpx.Headers(PAIRS), id="httpx-headers"),
        pytest.param(lambda: StarletteHeaders(raw=RAW), id="starlette-headers"),
        pytest.param(lambda: multidict.CIMultiDict(PAIRS), id="multidict"),
        pytest.param(
            lambda: multidict.CIMultiDictProxy(multidict.CIMultiDict(PAIRS)),
            id="aiohttp-multidict-proxy",
        ),
        pytest.param(lambda: multidict.MultiDict(PAIRS), id="case-sensitive-multidict"),
        pytest.param(lambda: ItemsOnly(PAIRS), id="items-repeated"),
        pytest.param(lambda: GetAllOnly(PAIRS), id="getall-only"),
        pytest.param(_email_message, id="email-message"),
        pytest.param(
            lambda: {
                "REQUEST_METHOD": "GET",
                "wsgi.input": object(),
                "HTTP_TRACEPARENT": TP,
                "HTTP_TRACESTATE": "a=1,b=2",
            },
            id="wsgi-environ",
        ),
        pytest.param(lambda: RAW, id="asgi-header-list"),
        pytest.param(lambda: {"type": "http", "path": "/", "headers": RAW}, id="asgi-scope"),
        pytest.param(lambda: PAIRS, id="list-of-pairs"),
        pytest.param(lambda: tuple(PAIRS), id="tuple-of-pairs"),
        pytest.param(lambda: [list(p) for p in PAIRS], id="list-of-lists"),
        pytest.param(lambda: iter(PAIRS), id="iterator"),
        pytest.param(lambda: ((k, v) for k, v in PAIRS), id="generator"),
        pytest.param(lambda: [(k, bytearray(v.encode())) for k, v in PAIRS], id="bytearray"),
        pytest.param(lambda: [(k, memoryview(v.encode())) for k, v in PAIRS], id="memoryview"),
        pytest.param(lambda: [("x-other", "1")] * 100 + PAIRS, id="among-others"),
    ],
)
def test_header_shapes(make: Any) -> None:
    info = TraceInfo.from_headers(make())
    assert info is not None
    assert (info.trace_id, info.span_id, info.sampled, info.tracestate) == (
        TID,
        SID,
        True,
        "a=1,b=2",
    )


def test_httpx_headers_two_traceparent_fields() -> None:
    assert TraceInfo.from_headers(httpx.Headers([("traceparent", TP)] * 2)) is None
    assert TraceInfo.from_headers(multidict.CIMultiDict([("traceparent", TP)] * 2)) is None
    assert TraceInfo.from_headers(StarletteHeaders(raw=[(b"traceparent", TP.encode())] * 2)) is None
    assert TraceInfo.from_headers({"HTTP_TRACEPARENT": f"{TP},{TP}"}) is None  # WSGI joins


def test_bytes_values_decoded_as_latin1() -> None:
    info = TraceInfo.from_headers([(b"traceparent", TP.encode()), (b"tracestate", b"a=\xe9,b=2")])
    assert info is not None and info.tracestate is None  # "\xe9" is not printable ASCII
    info = TraceInfo.from_headers([(b"traceparent", TP.encode()), (b"tracestate", b"a=~,b=2")])
    assert info is not None and info.tracestate == "a=~,b=2"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param(42, id="int"),
        pytest.param(object(), id="object"),
        pytest.param("a=1" * 3000, id="str-over-cap"),
        pytest.param(b"a=1" * 3000, id="bytes-over-cap"),
    ],
)
def test_unusable_tracestate_value_drops_tracestate(value: object) -> None:
    info = TraceInfo.from_headers(
        [("traceparent", TP), ("tracestate", "a=1"), ("tracestate", value)]
    )
    assert info is not None and info.trace_id == TID
    assert info.tracestate is None


class Exploding:
    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("boom")


class ExplodingItems:
    def items(self) -> Any:
        raise RuntimeError("boom")


class ExplodingValue:
    def __len__(self) -> int:
        raise RuntimeError("boom")

    def __str__(self) -> str:
        raise RuntimeError("boom")


def _explode_midway() -> Iterator[tuple[str, str]]:
    yield ("traceparent", TP)
    raise RuntimeError("boom")


def _endless() -> Iterator[tuple[str, str]]:
    while True:
        yield ("x-junk", "1")


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(None, id="none"),
        pytest.param(TP, id="str"),
        pytest.param(f"traceparent: {TP}", id="str-header-line"),
        pytest.param(TP.encode(), id="bytes"),
        pytest.param(bytearray(TP.encode()), id="bytearray"),
        pytest.param(42, id="int"),
        pytest.param(4.2, id="float"),
        pytest.param(object(), id="object"),
        pytest.param([1, 2, 3], id="list-of-ints"),
        pytest.param([("traceparent",)], id="one-tuple"),
        pytest.param([("traceparent", TP, "x")], id="three-tuple"),
        pytest.param([(None, None)], id="none-pair"),
        pytest.param([(42, TP)], id="int-name"),
        pytest.param({"traceparent": None}, id="none-value"),
        pytest.param({"traceparent": 42}, id="int-value"),
        pytest.param({"traceparent": ExplodingValue()}, id="exploding-value"),
        pytest.param({"traceparent": [TP, TP]}, id="list-of-two"),
        pytest.param({"traceparent": TP.encode().replace(b"0", b"\xb0")}, id="latin1-garbage"),
        pytest.param({"traceparent": TP.replace("0", "\u0660")}, id="non-ascii"),
        pytest.param({"traceparent": TP + " " * 10**6}, id="absurdly-long"),
        pytest.param({"traceparent": TP.encode() + b" " * 10**6}, id="absurdly-long-bytes"),
        pytest.param({"b3": f"{B3_TID}-{B3_SID}" + "-" * 10**6}, id="absurdly-long-b3"),
        pytest.param({"x" * 10**6: TP}, id="absurdly-long-name"),
        pytest.param(Exploding(), id="iteration-raises"),
        pytest.param(ExplodingItems(), id="items-raises"),
        pytest.param(_explode_midway(), id="generator-raises"),
        pytest.param(_endless(), id="endless-generator"),
        pytest.param({"type": "http", "headers": None}, id="asgi-scope-no-headers"),
        pytest.param({}, id="empty-dict"),
        pytest.param([], id="empty-list"),
    ],
)
def test_bad_input_returns_none(headers: Any) -> None:
    assert TraceInfo.from_headers(headers) is None


def test_absurdly_long_tracestate_is_ignored() -> None:
    info = TraceInfo.from_headers({"traceparent": TP, "tracestate": "a=1," * 10**5})
    assert info is not None and info.tracestate is None


# --- the value -------------------------------------------------------------------------------


def test_construct_defaults() -> None:
    info = TraceInfo(TID, SID)
    assert (info.sampled, info.tracestate, info.flags) == (True, None, 1)
    assert TraceInfo(TID, SID, False).flags == 0
    assert info == TraceInfo(TID, SID, True, None, 1)


@pytest.mark.parametrize(
    ("sampled", "flags", "expected"),
    [
        pytest.param(True, 0, 1, id="bit0-follows-sampled"),
        pytest.param(False, 1, 0, id="bit0-cleared"),
        pytest.param(True, 2, 3, id="random-kept"),
        pytest.param(False, 0xFF, 2, id="unknown-bits-dropped"),
    ],
)
def test_construct_flags(sampled: bool, flags: int, expected: int) -> None:
    info = TraceInfo(TID, SID, sampled, flags=flags)
    assert info.flags == expected
    assert info.traceparent.endswith(f"-{expected:02x}")


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"trace_id": TID.upper()}, id="uppercase-trace-id"),
        pytest.param({"trace_id": TID[:-1]}, id="short-trace-id"),
        pytest.param({"trace_id": TID + "0"}, id="long-trace-id"),
        pytest.param({"trace_id": "0" * 32}, id="zero-trace-id"),
        pytest.param({"trace_id": TID.encode()}, id="bytes-trace-id"),
        pytest.param({"trace_id": None}, id="none-trace-id"),
        pytest.param({"trace_id": TID + "\n"}, id="newline-trace-id"),
        pytest.param({"span_id": SID.upper()}, id="uppercase-span-id"),
        pytest.param({"span_id": SID[:-1]}, id="short-span-id"),
        pytest.param({"span_id": "0" * 16}, id="zero-span-id"),
        pytest.param({"span_id": 123}, id="int-span-id"),
        pytest.param({"sampled": 1}, id="int-sampled"),
        pytest.param({"flags": 256}, id="flags-too-big"),
        pytest.param({"flags": -1}, id="flags-negative"),
        pytest.param({"flags": True}, id="flags-bool"),
        pytest.param({"flags": "01"}, id="flags-str"),
        pytest.param({"tracestate": "A=1"}, id="tracestate-bad-key"),
        pytest.param({"tracestate": "a=1,b"}, id="tracestate-bad-member"),
        pytest.param({"tracestate": "a=1\r\nx-evil: 1"}, id="tracestate-header-injection"),
        pytest.param({"tracestate": ",".join(_members(33))}, id="tracestate-33-members"),
        pytest.param({"tracestate": ",".join(_members(16, 32))}, id="tracestate-over-512"),
        pytest.param({"tracestate": b"a=1"}, id="tracestate-bytes"),
    ],
)
def test_construct_invalid_raises(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"trace_id": TID, "span_id": SID, **kwargs}
    with pytest.raises(ValueError):
        TraceInfo(**args)


@pytest.mark.parametrize(
    ("tracestate", "expected"),
    [
        pytest.param("", None, id="empty-is-none"),
        pytest.param(" , ", None, id="blank-is-none"),
        pytest.param("a=1", "a=1", id="plain"),
        pytest.param(" a=1 ,, b=2\t", "a=1,b=2", id="canonical"),
        pytest.param("a=1,a=2", "a=1,a=2", id="duplicates-kept-as-the-parser-does"),
        pytest.param(",".join(_members(32, 15)), ",".join(_members(32, 15)), id="32-members-511"),
    ],
)
def test_construct_tracestate(tracestate: str, expected: str | None) -> None:
    assert TraceInfo(TID, SID, tracestate=tracestate).tracestate == expected


def test_frozen_and_slotted() -> None:
    info = TraceInfo(TID, SID)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.trace_id = "1" * 32  # type: ignore[misc]
    assert not hasattr(info, "__dict__")
    assert hash(info) == hash(TraceInfo(TID, SID))


def test_to_headers() -> None:
    assert TraceInfo(TID, SID).to_headers() == {"traceparent": TP}
    assert TraceInfo(TID, SID, False, "a=1").to_headers() == {
        "traceparent": TP_UNSAMPLED,
        "tracestate": "a=1",
    }
    assert TraceInfo(TID, SID, True, flags=2).traceparent == f"00-{TID}-{SID}-03"


def test_higher_version_reemitted_as_00() -> None:
    info = TraceInfo.from_headers({"traceparent": f"cc-{TID}-{SID}-03-future"})
    assert info is not None
    assert info.to_headers() == {"traceparent": f"00-{TID}-{SID}-03"}


def test_child() -> None:
    parent = TraceInfo(TID, SID, False, "a=1,b=2", flags=2)
    children = {parent.child() for _ in range(50)}
    assert len({c.span_id for c in children}) == 50
    for child in children:
        assert (child.trace_id, child.sampled, child.flags, child.tracestate) == (
            TID,
            False,
            2,
            "a=1,b=2",
        )
        assert child.span_id != SID
        assert child == TraceInfo(TID, child.span_id, False, "a=1,b=2", 2)  # valid per constructor


def test_create_new() -> None:
    seen = set()
    for _ in range(200):
        info = TraceInfo.create_new()
        assert info == TraceInfo(info.trace_id, info.span_id, flags=3)  # passes validation
        assert (info.sampled, info.flags, info.tracestate) == (True, 3, None)  # random flag
        assert info.trace_id != "0" * 32 and info.span_id != "0" * 16
        seen.add(info.trace_id)
    assert len(seen) == 200


# --- OpenTelemetry ---------------------------------------------------------------------------


@pytest.fixture
def tracer() -> Any:
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider().get_tracer(__name__)


def test_otel_headers_with_active_span(tracer: Any) -> None:
    with tracer.start_as_current_span("outgoing") as span:
        ctx = span.get_span_context()
        headers = otel_headers()
    assert (
        headers["traceparent"] == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
    )
    info = TraceInfo.from_headers(headers)
    assert info is not None and info.trace_id == f"{ctx.trace_id:032x}"


def test_otel_headers_without_span(tracer: Any) -> None:
    assert otel_headers() == {}


def test_otel_headers_not_imported(tracer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with tracer.start_as_current_span("outgoing"):
        monkeypatch.delitem(sys.modules, "opentelemetry.trace")
        assert otel_headers() == {}


def test_otel_headers_never_raises(tracer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import propagate

    def boom(carrier: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(propagate, "inject", boom)
    with tracer.start_as_current_span("outgoing"):
        assert otel_headers() == {}


def test_every_field_is_documented() -> None:
    """help(TraceInfo) names every field (the API reference is built from docstrings)."""
    for f in dataclasses.fields(TraceInfo):
        assert f"\n    {f.name}: " in inspect.cleandoc(TraceInfo.__doc__ or ""), f.name
