"""W3C Trace Context: TraceInfo, traceparent/tracestate parsing and formatting. STUB: being written."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

__all__ = ["TraceInfo", "otel_headers"]


@dataclass(frozen=True, slots=True)
class TraceInfo:
    trace_id: str
    span_id: str
    sampled: bool = True
    tracestate: str | None = None

    @classmethod
    def create_new(cls) -> TraceInfo:
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    def child(self) -> TraceInfo:
        return TraceInfo(self.trace_id, secrets.token_hex(8), self.sampled, self.tracestate)

    def to_headers(self) -> dict[str, str]:
        h = {"traceparent": f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"}
        if self.tracestate:
            h["tracestate"] = self.tracestate
        return h


def otel_headers() -> dict[str, str]:
    return {}
