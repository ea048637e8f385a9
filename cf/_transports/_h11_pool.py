"""The h11 engine's connection pool: `httpx.Limits` for threads sharing one transport.

- `max_connections` bounds the connections open at once, idle or in use, across
  origins (None: no bound). A request beyond it waits for one, up to the pool
  timeout (clamped to the deadline), then `httpx.PoolTimeout`; when the bound is
  reached with idle connections to other origins, the oldest of them is closed to
  make room.
- `max_keepalive_connections` bounds the idle ones (the oldest goes first), and
  `keepalive_expiry` how long one stays idle.
- The most recently used idle connection is reused first (as urllib3 does): the
  others stay idle and expire, and a server's idle timeout is met less often.
- A candidate is polled before reuse (`Connection.dropped()`): a connection the
  server closed while idle is closed unused, and its slot goes to a new one.
"""

from __future__ import annotations

import threading
import time

import httpx

from cf._transports._h11_connection import Connection

__all__ = ["Pool"]

_Key = tuple[bytes, bytes, int]


class Pool:
    """Idle connections by origin, and the count of open ones."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._max = limits.max_connections
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._cond = threading.Condition(threading.Lock())
        self._idle: list[Connection] = []  # least recently used first
        self._open = 0  # idle, in use, or being opened
        self._closed = False

    def acquire(
        self, key: _Key, timeout: float | None, request: httpx.Request
    ) -> Connection | None:
        """An idle connection to `key` that is still usable, or None: a slot is reserved
        for a new connection, which the caller opens (then `release`s, or `discard`s when
        opening fails)."""
        with self._cond:
            candidate = self._wait_for(key, timeout, request)
        if candidate is None:
            return None
        if candidate.dropped():
            candidate.close()  # its slot goes to the new connection
            return None
        return candidate

    def _wait_for(
        self, key: _Key, timeout: float | None, request: httpx.Request
    ) -> Connection | None:
        """Under the lock: an idle connection to `key`, or a reserved slot (None)."""
        ends = None if timeout is None else time.monotonic() + timeout
        stale: list[Connection] = []
        try:
            while True:
                now = time.monotonic()
                idle = self._idle
                if self._expiry is not None:
                    while idle and now - idle[0].idle_since > self._expiry:
                        stale.append(idle.pop(0))
                        self._open -= 1
                for i in range(len(idle) - 1, -1, -1):
                    if idle[i].key == key:
                        return idle.pop(i)
                if self._max is None or self._open < self._max:
                    self._open += 1
                    return None
                if idle:  # make room: the least recently used connection to elsewhere
                    stale.append(idle.pop(0))
                    self._open -= 1
                    continue
                left = None if ends is None else ends - now
                if left is not None and left <= 0:
                    raise httpx.PoolTimeout(
                        f"No free connection within {timeout:g} s", request=request
                    )
                self._cond.wait(left)
        finally:
            for connection in stale:
                connection.close()

    def release(self, connection: Connection, reusable: bool) -> None:
        """The request is done with `connection`: kept idle when `reusable` (and the
        limits allow), else closed."""
        closing: Connection | None = None
        with self._cond:
            keep = reusable and not self._closed and self._max_idle != 0
            if keep:
                connection.idle_since = time.monotonic()
                self._idle.append(connection)
                if self._max_idle is not None and len(self._idle) > self._max_idle:
                    closing = self._idle.pop(0)
                    self._open -= 1
            else:
                closing = connection
                self._open -= 1
            self._cond.notify()
        if closing is not None:
            closing.close()

    def discard(self) -> None:
        """A reserved slot is free again: opening its connection failed."""
        with self._cond:
            self._open -= 1
            self._cond.notify()

    def close(self) -> None:
        """Close every idle connection; those in use close when released, and none is
        kept idle from now on (requests still work, each on a connection of its own)."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._closed = True
            self._cond.notify_all()
        for connection in idle:
            connection.close()
