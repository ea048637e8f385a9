"""Every touch of aiohttp beyond its documented API, in one place, gated on its version.

The aiohttp engine sends httpx's requests byte for byte and lets cf's attempt
loop see every attempt. aiohttp's public API cannot say these things, so this
module reaches into it, each touch tested on its own
(`tests/test_aiohttp_compat.py`) and allowed only for the versions below:

1. `RawHeadersRequest.update_headers`: the request's headers are exactly
   httpx's, in order, repeats and case kept. `ClientSession` merges headers
   through a set of names, losing repeats that differ only in case (`X-A`,
   `x-a`); the request class takes them from `raw_headers()` instead.
2. `RawHeadersRequest.GET_METHODS`: aiohttp adds `Content-Length: 0` to
   bodiless requests of methods outside this set (DELETE, extension methods);
   httpx does not, so the set contains every method.
   `RawHeadersRequest.update_auto_headers` and `_skip_auto_headers`: no header of
   aiohttp's own (User-Agent, Accept, Accept-Encoding, a body's Content-Type):
   the public `skip_auto_headers=` does the same, but copies the request's
   headers on every request to do it.
3. `disable_retry(session)`: aiohttp silently resends an idempotent request
   once when a kept-alive connection turns out closed; cf's attempt loop and
   its retry budget must see every attempt.
4. `CheckedConnector._get`: before a kept-alive connection is reused, its
   socket is polled (as httpcore and urllib3 do): a connection the server has
   closed while idle (or that holds unexpected bytes) is dropped, not used; one
   handed out is remembered as reused (for touch 5).
   aiohttp only notices a close when its event loop runs in between, which a
   program driving the loop with `run_until_complete` per call never lets it do.
5. `RawHeadersRequest.write_bytes`: a request with a body is written by a task of
   aiohttp's own (started eagerly only on Python 3.12+), its head buffered until
   then; the server may close the reused connection in between (a loop turn, other
   tasks' work). Before anything is written the connection is polled again: if the
   server has closed it, nothing is written, the request fails with `RequestNotSent`
   and its `Attempt` says so, whatever aiohttp raises, so the engine sends it again
   on another connection, as httpcore and urllib3 do (nothing of it left).
"""

from __future__ import annotations

import contextvars
import select
import weakref
from collections.abc import Iterable
from typing import Any

import aiohttp
from multidict import CIMultiDict

__all__ = [
    "AIOHTTP_VERSION",
    "SUPPORTED",
    "Attempt",
    "CheckedConnector",
    "RawHeadersRequest",
    "RequestNotSent",
    "begin",
    "disable_retry",
    "end",
]

SUPPORTED = ((3, 14, 3), (4, 0, 0))
"""aiohttp versions these touches were written for and tested on: [low, high) (the low
end is the floor run's aiohttp, constraints/floor.txt)."""


def _version(text: str) -> tuple[int, int, int]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


AIOHTTP_VERSION = _version(aiohttp.__version__)

if not SUPPORTED[0] <= AIOHTTP_VERSION < SUPPORTED[1]:  # pragma: no cover - checked by the gate
    raise ImportError(
        f"cf's aiohttp engine needs aiohttp >= 3.14.3, < 4 (found {aiohttp.__version__}); "
        'install a supported aiohttp or use engine="httpx"'
    )


class Attempt:
    """One request the engine hands to aiohttp: its headers, sent as they are (touch 1),
    and `unsent`, set when its reused connection turned out closed before any of it
    was written (touch 5)."""

    __slots__ = ("headers", "unsent")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        self.headers = headers
        self.unsent = False


class RequestNotSent(aiohttp.ClientConnectionError):
    """The server had closed the reused connection; nothing of the request was written."""


_ATTEMPT: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar(
    "cf_aiohttp_attempt", default=None
)
# Protocols of the connections `CheckedConnector` handed out again (kept alive, polled).
_REUSED: weakref.WeakSet[Any] = weakref.WeakSet()


def begin(attempt: Attempt) -> contextvars.Token[Attempt | None]:
    """Make `attempt` the one the next `RawHeadersRequest` built in this task sends.

    aiohttp's body-writing task runs in a copy of this context: it sees the same object."""
    return _ATTEMPT.set(attempt)


def end(token: contextvars.Token[Attempt | None]) -> None:
    _ATTEMPT.reset(token)


class _AllMethods(set[str]):
    """Contains every method: aiohttp then never adds a `Content-Length: 0` of its own."""

    def __contains__(self, item: object) -> bool:
        return True


class RawHeadersRequest(aiohttp.ClientRequest):
    """A `ClientRequest` whose headers are exactly its `Attempt`'s (see `begin()`)."""

    GET_METHODS = _AllMethods()  # touch 2
    # A body's own Content-Type is not added (httpx sets the one it means); touch 2.
    _skip_auto_headers = CIMultiDict({"Content-Type": None})

    def update_auto_headers(self, skip_auto_headers: Iterable[str] | None) -> None:  # touch 2
        return None  # no User-Agent, Accept or Accept-Encoding of aiohttp's own

    def update_headers(self, headers: Any) -> None:  # touch 1
        attempt = _ATTEMPT.get()
        if attempt is None:  # not sent by the engine (aiohttp's own redirects never happen)
            super().update_headers(headers)
            return
        # Host goes first, as h11 (httpx's own engine) writes it (RFC 9112, 3.2: a user
        # agent SHOULD send Host first); the others in their order. httpx puts its own
        # Host first already; one the caller gave is wherever the caller put it.
        headers = attempt.headers
        result: CIMultiDict[str] = CIMultiDict(headers)
        hosts = len(result.getall("Host", ()))
        if hosts == 1 and headers[0][0].lower() == "host":
            self.headers = result  # as httpx builds them
            return
        first: list[tuple[str, str]] = [(k, v) for k, v in headers if k.lower() == "host"]
        if not first:
            host = self.url.host_port_subcomponent
            if host is not None:
                first.append(("Host", host))
        result = CIMultiDict(first)
        result.extend([(k, v) for k, v in headers if k.lower() != "host"])
        self.headers = result

    async def write_bytes(  # touch 5
        self, writer: Any, conn: Any, content_length: int | None = None
    ) -> None:
        protocol = conn.protocol
        if self._continue is None and protocol in _REUSED and _readable(conn):
            # The head is still in aiohttp's buffer: nothing of the request has left.
            attempt = _ATTEMPT.get()
            if attempt is not None:
                attempt.unsent = True
            if protocol is not None:
                protocol.set_exception(RequestNotSent("the server closed the connection"))
            return
        await super().write_bytes(writer, conn, content_length)


def disable_retry(session: aiohttp.ClientSession) -> None:  # touch 3
    """Turn off aiohttp's own resend of idempotent requests on a dropped connection."""
    if not hasattr(session, "_retry_connection"):  # pragma: no cover - gated above
        raise RuntimeError("aiohttp.ClientSession has no _retry_connection: unsupported version")
    session._retry_connection = False


def _readable(connection: Any) -> bool:
    """True when an idle connection's socket has something to read: EOF or stray bytes."""
    transport = connection.transport
    if transport is None:
        return True
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        fileno = sock.fileno()
        if fileno < 0:
            return True
        if hasattr(select, "poll"):  # no FD_SETSIZE limit
            poller = select.poll()
            poller.register(fileno, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([fileno], [], [], 0)  # pragma: no cover - Windows
    except (OSError, ValueError):
        return True
    return bool(readable)  # pragma: no cover - Windows


class CheckedConnector(aiohttp.TCPConnector):
    """A `TCPConnector` that polls a kept-alive connection before handing it out again."""

    async def _get(self, key: Any, traces: Iterable[Any]) -> Any:  # touch 4
        while True:
            connection = await super()._get(key, traces)  # type: ignore[arg-type]
            if connection is None:
                return None
            if not _readable(connection):
                _REUSED.add(connection.protocol)
                return connection
            connection.close()  # the server closed it while idle: never send on it
