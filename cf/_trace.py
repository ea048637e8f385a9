"""W3C Trace Context: the `TraceInfo` value, header parsing and formatting.

Pure logic, no I/O: `TraceInfo.from_headers` reads `traceparent`/`tracestate`
(W3C Trace Context Level 1, with the Level 2 "random" flag and tracestate key
grammar) and falls back to Zipkin B3; output is always W3C. `otel_headers` propagates the
active OpenTelemetry span when the application already uses OpenTelemetry.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

__all__ = ["TraceInfo", "otel_headers"]

_SAMPLED = 0x01
_RANDOM = 0x02  # W3C Level 2: the trace id's rightmost 7 bytes are random
_KNOWN_FLAGS = _SAMPLED | _RANDOM
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16

_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
_B3_TRACE_ID = re.compile(r"[0-9a-f]{16}(?:[0-9a-f]{16})?")
# The first four fields of a traceparent; `match` only, the rest is checked by length.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# One tracestate list member, `fullmatch`ed on an OWS-stripped member: a key of
# 1-256 characters (W3C Level 2 grammar: "@" anywhere but first, which includes the
# Level 1 simple and multi-tenant keys) and a value of 1-256 printable characters
# without "," and "=", not ending in a space (leading spaces belong to the value).
_MEMBER = re.compile(
    r"([a-z0-9][a-z0-9_\-*/@]{0,255})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)

_OWS = " \t"
_MAX_MEMBERS = 32
_MAX_TRACESTATE = 512
_MAX_LONG_MEMBER = 128
_MAX_VALUE = 8192  # longer values (a tracestate: all its fields) count as invalid
_MAX_FIELDS = 4096  # header fields looked at
_MAX_NAME = 32  # longer names cannot be one of ours (the longest is "http_x_b3_traceid")
_BAD = "\x00"  # an unusable value (not text, too long): no grammar here accepts a NUL

_TP = "traceparent"
_TS = "tracestate"
_B3 = "b3"
_B3_TRACE = "x-b3-traceid"
_B3_SPAN = "x-b3-spanid"
_B3_SAMPLED = "x-b3-sampled"
_B3_FLAGS = "x-b3-flags"
_WANTED = frozenset({_TP, _TS, _B3, _B3_TRACE, _B3_SPAN, _B3_SAMPLED, _B3_FLAGS})
_STRINGS = (str, bytes, bytearray, memoryview)
_GETTERS = ("getall", "get_all", "get_list", "getlist")  # used when there is no items()
_B3_SINGLE_SAMPLED = {"1": True, "d": True, "0": False}  # "d": debug, implies sampled
_B3_MULTI_SAMPLED = {"1": True, "true": True, "0": False, "false": False}


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """The trace context of one call: ids, sampling decision, vendor `tracestate`.

    Attributes:
        trace_id: The trace, 32 lowercase hex characters, not all zeros.
        span_id: The caller's span (W3C `parent-id`), 16 lowercase hex
            characters, not all zeros.
        sampled: The caller may have recorded the trace (W3C sampled flag).
        tracestate: Vendors' `tracestate` list, or None. Stored in canonical
            form: members (at most 32, each valid) joined by "," without
            surrounding whitespace or empty members, at most 512 characters;
            "" becomes None. Duplicate keys are kept as received.
        flags: The W3C trace flags: only the sampled bit (always equal to
            `sampled`) and the Level 2 random-trace-id bit (0x02) are kept.

    Bad arguments raise ValueError.
    """

    trace_id: str
    span_id: str
    sampled: bool = True
    tracestate: str | None = None
    flags: int = 0

    def __post_init__(self) -> None:
        trace_id, span_id, flags = self.trace_id, self.span_id, self.flags
        if not isinstance(trace_id, str) or not _TRACE_ID.fullmatch(trace_id):
            raise ValueError(f"trace_id must be 32 lowercase hex characters, got {trace_id!r}")
        if trace_id == _ZERO_TRACE:
            raise ValueError("trace_id must not be all zeros")
        if not isinstance(span_id, str) or not _SPAN_ID.fullmatch(span_id):
            raise ValueError(f"span_id must be 16 lowercase hex characters, got {span_id!r}")
        if span_id == _ZERO_SPAN:
            raise ValueError("span_id must not be all zeros")
        if not isinstance(self.sampled, bool):
            raise ValueError(f"sampled must be a bool, got {self.sampled!r}")
        if isinstance(flags, bool) or not isinstance(flags, int) or not 0 <= flags <= 0xFF:
            raise ValueError(f"flags must be an int in 0..255, got {flags!r}")
        object.__setattr__(self, "flags", (flags & _RANDOM) | (_SAMPLED if self.sampled else 0))
        if self.tracestate is not None:
            object.__setattr__(self, "tracestate", _canonical_tracestate(self.tracestate))

    @classmethod
    def _trusted(cls, trace_id: str, span_id: str, flags: int, tracestate: str | None) -> TraceInfo:
        """Build from already-validated parts, skipping the checks (hot path)."""
        info = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(info, "trace_id", trace_id)
        setattr_(info, "span_id", span_id)
        setattr_(info, "sampled", bool(flags & _SAMPLED))
        setattr_(info, "tracestate", tracestate)
        setattr_(info, "flags", flags)
        return info

    @classmethod
    def create_new(cls) -> TraceInfo:
        """Start a new sampled trace with random ids from the OS CSPRNG.

        The whole trace id is random, so the W3C Level 2 random flag is set
        (flags `03`).
        """
        trace_id = os.urandom(16).hex()
        while trace_id == _ZERO_TRACE:  # pragma: no cover - probability 2**-128
            trace_id = os.urandom(16).hex()
        return cls._trusted(trace_id, _new_span_id(), _SAMPLED | _RANDOM, None)

    @classmethod
    def from_headers(cls, headers: object) -> TraceInfo | None:
        """Read an incoming request's trace context; None when absent or malformed.

        `headers`: a mapping, a multi-valued headers object (httpx, starlette,
        aiohttp/multidict, werkzeug), a WSGI environ (`HTTP_TRACEPARENT`), an
        ASGI scope or its `headers` list of byte pairs, or any iterable of
        (name, value) pairs. W3C `traceparent` wins; without one, B3 is read.
        Several `tracestate` fields are joined in order; a `tracestate` with an
        invalid member, more than 32 members or more than 8 KiB is dropped
        whole (the trace is kept), and one longer than 512 characters loses
        whole entries as the W3C says. Never raises.
        """
        try:
            fields = _collect(headers)
            if fields is None:
                return None
            traceparent = fields.get(_TP)
            if traceparent is None:
                return _from_b3(cls, fields)
            if len(traceparent) != 1:
                return None  # two traceparent fields
            parsed = _parse_traceparent(traceparent[0])
            if parsed is None:
                return None
            tracestate = fields.get(_TS)
            state = _parse_tracestate(tracestate) if tracestate else None
            return cls._trusted(*parsed, state)
        except Exception:
            return None

    def child(self) -> TraceInfo:
        """The context for an outgoing call: same trace, flags and tracestate, new span id."""
        return self._trusted(self.trace_id, _new_span_id(), self.flags, self.tracestate)

    @property
    def traceparent(self) -> str:
        """The `traceparent` header value, always version `00`."""
        return f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def to_headers(self) -> dict[str, str]:
        """`traceparent` and, when present, `tracestate`, ready to send."""
        headers = {_TP: f"00-{self.trace_id}-{self.span_id}-{self.flags:02x}"}
        if self.tracestate:
            headers[_TS] = self.tracestate
        return headers


def otel_headers() -> dict[str, str]:
    """Headers propagating the active OpenTelemetry span, or {}; never raises.

    Only when the application has already imported OpenTelemetry (looked up in
    `sys.modules`, so a program without it never pays its import cost) and a
    valid span is current.
    """
    otel_trace = sys.modules.get("opentelemetry.trace")
    if otel_trace is None:
        return {}
    try:
        if not otel_trace.get_current_span().get_span_context().is_valid:
            return {}
        from opentelemetry import propagate

        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return {str(name): str(value) for name, value in carrier.items()}
    except Exception:
        return {}


def _new_span_id() -> str:
    span_id = os.urandom(8).hex()
    while span_id == _ZERO_SPAN:  # pragma: no cover - probability 2**-64
        span_id = os.urandom(8).hex()
    return span_id


# --- reading headers -------------------------------------------------------------------------


def _pairs(headers: object) -> Iterable[object] | None:
    """The (name, value) entries of any supported headers shape, or None."""
    if headers is None or isinstance(headers, _STRINGS):
        return None
    if isinstance(headers, dict) and headers.get("type") in ("http", "websocket"):
        headers = headers.get("headers")  # an ASGI scope
        if not isinstance(headers, (list, tuple)):
            return None
    multi_items = getattr(headers, "multi_items", None)  # httpx: items() would merge
    if callable(multi_items):
        entries: Iterable[object] = multi_items()
        return entries
    items = getattr(headers, "items", None)  # dict, multidict, starlette, werkzeug, email
    if callable(items):
        entries = items()
        return entries
    for getter_name in _GETTERS:  # a multi-valued lookup without items()
        getter = getattr(headers, getter_name, None)
        if callable(getter):
            return _getter_pairs(getter)
    return headers if isinstance(headers, Iterable) else None


def _getter_pairs(getter: Callable[[str], object]) -> list[tuple[str, object]]:
    """(name, value) pairs from a multi-valued lookup such as `getall(name)`."""
    pairs: list[tuple[str, object]] = []
    for name in _WANTED:
        try:
            values = getter(name)
        except KeyError:  # multidict's getall without a default
            continue
        if isinstance(values, _STRINGS):
            values = [values]
        if isinstance(values, Iterable):
            pairs.extend((name, value) for value in islice(values, _MAX_FIELDS))
    return pairs


def _text(value: object) -> str:
    """A header value as text; anything unusable becomes `_BAD` (an invalid value)."""
    if isinstance(value, str):
        return value if len(value) <= _MAX_VALUE else _BAD
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("latin-1") if len(value) <= _MAX_VALUE else _BAD
    return _BAD


def _values(value: object) -> Iterator[str]:
    if isinstance(value, (list, tuple)):  # e.g. dict[str, list[str]]
        for item in islice(value, _MAX_FIELDS):
            yield _text(item)
    else:
        yield _text(value)


def _collect(headers: object) -> dict[str, list[str]] | None:
    """The values of the headers we read, by lowercase name, in order."""
    entries = _pairs(headers)
    if entries is None:
        return None
    fields: dict[str, list[str]] = {}
    for entry in islice(entries, _MAX_FIELDS):
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            continue
        name, value = entry
        if isinstance(name, (bytes, bytearray)):
            if len(name) > _MAX_NAME:
                continue
            name = bytes(name).decode("latin-1")
        if not isinstance(name, str) or len(name) > _MAX_NAME or not name.isascii():
            continue
        name = name.lower()  # ASCII case-insensitive
        if name.startswith("http_"):  # WSGI environ: HTTP_X_B3_TRACEID
            name = name[5:].replace("_", "-")
        if name in _WANTED:
            fields.setdefault(name, []).extend(_values(value))
    return fields


def _parse_traceparent(value: str) -> tuple[str, str, int] | None:
    """(trace_id, parent_id, flags) from a traceparent value, or None."""
    value = value.strip(_OWS)
    size = len(value)
    if size < 55 or "," in value:  # a comma: two fields joined into one
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags = match.groups()
    if version == "ff":
        return None
    if version == "00":
        if size != 55:
            return None
    elif size > 55 and value[55] != "-":  # a future version: its first four fields
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id, int(flags, 16) & _KNOWN_FLAGS


def _parse_tracestate(fields: list[str]) -> str | None:
    """The tracestate to propagate from its fields, in order; None to drop it.

    W3C: any invalid member or more than 32 members drops it whole; empty
    members and whitespace around members are ignored.
    """
    if sum(map(len, fields)) + len(fields) - 1 > _MAX_VALUE:
        return None
    members: list[str] = []
    for raw in ",".join(fields).split(","):
        member = raw.strip(_OWS)
        if not member:
            continue
        if _MEMBER.fullmatch(member) is None or len(members) == _MAX_MEMBERS:
            return None
        members.append(member)
    return _truncate(members)


def _truncate(members: list[str]) -> str | None:
    """The members joined, whole entries dropped to fit 512 characters (W3C order).

    Entries over 128 characters go first (longest first; of equal length,
    the last first) until the rest fits, then entries from the end.
    """
    size = sum(map(len, members)) + len(members) - 1
    if size > _MAX_TRACESTATE:
        long = [i for i, member in enumerate(members) if len(member) > _MAX_LONG_MEMBER]
        dropped: set[int] = set()
        for i in sorted(long, key=lambda i: (len(members[i]), i), reverse=True):
            if size <= _MAX_TRACESTATE:
                break
            dropped.add(i)
            size -= len(members[i]) + 1
        members = [member for i, member in enumerate(members) if i not in dropped]
        while size > _MAX_TRACESTATE:
            size -= len(members.pop()) + 1
    return ",".join(members) or None


def _canonical_tracestate(value: object) -> str | None:
    """The constructor's check: every member valid, within 32 members and 512 characters."""
    if not isinstance(value, str):
        raise ValueError(f"tracestate must be a str or None, got {value!r}")
    members = [m for m in (raw.strip(_OWS) for raw in value.split(",")) if m]
    for member in members:
        if _MEMBER.fullmatch(member) is None:
            raise ValueError(f"invalid tracestate member {member[:300]!r}")
    canonical = ",".join(members)
    if len(members) > _MAX_MEMBERS or len(canonical) > _MAX_TRACESTATE:
        raise ValueError("tracestate exceeds 32 members or 512 characters")
    return canonical or None


def _from_b3(cls: type[TraceInfo], fields: dict[str, list[str]]) -> TraceInfo | None:
    """Zipkin B3, single (`b3`) or multi (`X-B3-*`) header; None when absent or malformed."""
    single = fields.get(_B3)
    if single is not None:
        if len(single) != 1:
            return None
        parts = single[0].strip(_OWS).split("-")
        if not 2 <= len(parts) <= 4:
            return None  # includes a lone sampling decision ("0"): no ids to continue
        sampled: bool | None = True
        if len(parts) >= 3:
            sampled = _B3_SINGLE_SAMPLED.get(parts[2])
        if len(parts) == 4 and not _SPAN_ID.fullmatch(parts[3]):
            return None
        return _b3_info(cls, parts[0], parts[1], sampled)
    trace_ids, span_ids = fields.get(_B3_TRACE), fields.get(_B3_SPAN)
    if trace_ids is None or span_ids is None or len(trace_ids) != 1 or len(span_ids) != 1:
        return None
    flags, sampled_values = fields.get(_B3_FLAGS), fields.get(_B3_SAMPLED)
    sampled = True
    if flags is not None and len(flags) == 1 and flags[0].strip(_OWS) == "1":
        sampled = True  # debug implies an accept decision
    elif sampled_values is not None:
        sampled = None
        if len(sampled_values) == 1:
            decision = sampled_values[0].strip(_OWS).lower()
            sampled = _B3_MULTI_SAMPLED.get(decision)
    return _b3_info(cls, trace_ids[0].strip(_OWS), span_ids[0].strip(_OWS), sampled)


def _b3_info(
    cls: type[TraceInfo], trace_id: str, span_id: str, sampled: bool | None
) -> TraceInfo | None:
    if sampled is None or not _B3_TRACE_ID.fullmatch(trace_id) or not _SPAN_ID.fullmatch(span_id):
        return None
    trace_id = trace_id.rjust(32, "0")
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return cls._trusted(trace_id, span_id, _SAMPLED if sampled else 0, None)
