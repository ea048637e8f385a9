"""W3C Trace Context for outgoing calls: `TraceInfo`."""

from cf._trace import TraceInfo

__all__ = ["TraceInfo"]
