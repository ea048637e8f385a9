"""The h11 engine's timeouts and errors: each socket operation bounded by the attempt's
deadline, and every failure raised as the most specific httpx exception.

`Timeouts` gives the timeout of one socket operation: the request's own (httpx's
`timeout` extension) clamped to what is left until `cf.deadline`, the absolute
`time.monotonic()` by which the attempt must end. A server that trickles a byte
just inside each read timeout therefore still ends at the deadline.

`map_h11_exceptions` turns what the socket, ssl and h11 raise into httpx's
exceptions, by the phase the failure happened in (which says whether the request
can have reached the server) and the exception's own class (most specific first,
by its MRO):

    phase    TimeoutError     OSError (ssl too)  h11.RemoteProtocolError  h11.LocalProtocolError
    connect  ConnectTimeout   ConnectError       ProxyError (CONNECT)     LocalProtocolError
    write    WriteTimeout     WriteError         RemoteProtocolError      LocalProtocolError
    read     ReadTimeout      ReadError          RemoteProtocolError      LocalProtocolError

Waiting for a free connection (the pool) raises `httpx.PoolTimeout` itself.
Messages are the library's own (as httpcore passes them on), redacted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Literal

import h11
import httpx

from cf._redact import redact_text

__all__ = ["Phase", "Timeouts", "map_h11_exceptions"]

Phase = Literal["connect", "write", "read"]

_ByClass = dict[type[BaseException], type[httpx.TransportError]]
_EXCEPTIONS: dict[Phase, _ByClass] = {
    "connect": {
        TimeoutError: httpx.ConnectTimeout,
        OSError: httpx.ConnectError,
        h11.RemoteProtocolError: httpx.ProxyError,
        h11.LocalProtocolError: httpx.LocalProtocolError,
    },
    "write": {
        TimeoutError: httpx.WriteTimeout,
        OSError: httpx.WriteError,
        h11.RemoteProtocolError: httpx.RemoteProtocolError,
        h11.LocalProtocolError: httpx.LocalProtocolError,
    },
    "read": {
        TimeoutError: httpx.ReadTimeout,
        OSError: httpx.ReadError,
        h11.RemoteProtocolError: httpx.RemoteProtocolError,
        h11.LocalProtocolError: httpx.LocalProtocolError,
    },
}


def _target(exc: BaseException, phase: Phase) -> type[httpx.TransportError] | None:
    """The httpx class for `exc` in `phase`: the entry of its most specific class."""
    table = _EXCEPTIONS[phase]
    for cls in type(exc).__mro__:
        target = table.get(cls)
        if target is not None:
            return target
    return None


class map_h11_exceptions:  # lowercase: used like a function, `with map_h11_exceptions(...)`
    """Raise socket, ssl and h11 exceptions as the most specific httpx ones (see the
    module's table); httpx's own exceptions and anything else pass through as they are
    (a caller's body generator may raise whatever it likes). A class, not a generator:
    it is entered several times per request."""

    __slots__ = ("_phase", "_request")

    def __init__(self, phase: Phase, request: httpx.Request | None) -> None:
        self._phase = phase
        self._request = request

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, httpx.HTTPError):
            return
        target = _target(exc, self._phase)
        if target is None:
            return
        message = redact_text(str(exc)) or type(exc).__name__
        if exc.args:
            exc.args = tuple(redact_text(a) if isinstance(a, str) else a for a in exc.args)
        raise target(message, request=self._request) from exc


class Timeouts:
    """One request's timeouts (httpx's `timeout` extension), each clamped to what is left
    until `deadline` (`time.monotonic()`; None: no deadline). A method raises
    `TimeoutError` when the deadline has passed: the operation is not even tried."""

    __slots__ = ("_connect", "_read", "_write", "_pool", "deadline")

    def __init__(self, timeouts: Mapping[str, float | None], deadline: float | None) -> None:
        get = timeouts.get
        self._connect = get("connect")
        self._read = get("read")
        self._write = get("write")
        self._pool = get("pool")
        self.deadline = deadline

    def _clamp(self, value: float | None) -> float | None:
        deadline = self.deadline
        if deadline is None:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left if value is None or value > left else value

    def connect(self) -> float | None:
        return self._clamp(self._connect)

    def read(self) -> float | None:
        return self._clamp(self._read)

    def write(self) -> float | None:
        return self._clamp(self._write)

    def pool(self) -> float | None:
        return self._clamp(self._pool)
