"""Where OAuth tokens live: the `AsyncTokenStore` protocol and the in-memory default.

A store holds at most one `Token` per key (the client derives its key from the
token URL, client id, scope, audience and extra parameters, never the
secret) and a lock per key, held while a token is fetched and when a rejected
token is invalidated. A store shared by many processes (Redis, say) lets them
share one token and one refresh: its lock must then be a distributed lock, and
it must translate `Token`'s monotonic times (local to a process) to and from
wall-clock times.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Protocol, runtime_checkable

from cf._oauth import Token
from cf._synchronization import AsyncLock

__all__ = [
    "AsyncBindableTokenStore",
    "AsyncInMemoryTokenStore",
    "AsyncTokenInvalidator",
    "AsyncTokenStore",
]


@runtime_checkable
class AsyncTokenStore(Protocol):
    """get / set / a lock for refresh, per key."""

    async def get(self, key: str) -> Token | None:
        """The stored token, or None."""
        ...

    async def set(self, key: str, token: Token | None) -> None:
        """Store `token`; None forgets the stored one."""
        ...

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """A lock held while the token under `key` is fetched or invalidated."""
        ...


@runtime_checkable
class AsyncBindableTokenStore(Protocol):
    """A store the OAuth client tells, once at creation, its secret and token request timeout."""

    def bind(self, key: str, *, client_secret: str, request_timeout: float | None) -> None:
        """Derive what the store needs for `key` from the client secret (which is not kept).

        `request_timeout`: the longest one token request may take, in seconds
        (None: no limit); the refresh lock of a dead holder expires that much
        plus 5 s later, 35 s at most.
        """
        ...


@runtime_checkable
class AsyncTokenInvalidator(Protocol):
    """A store that forgets a rejected token atomically, without the lock."""

    async def invalidate(self, key: str, token: Token) -> bool:
        """Forget the token under `key` only if it is `token`; True when it was forgotten."""
        ...


class AsyncInMemoryTokenStore:
    """The default store: a dict in this process, one lock per key.

    Each client gets its own unless one is passed as `token_store=`; clients
    sharing one (with the same settings, hence the same key) share their token.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, Token] = {}
        self._locks: dict[str, AsyncLock] = {}

    async def get(self, key: str) -> Token | None:
        """The token stored under `key`, or None."""
        return self._tokens.get(key)

    async def set(self, key: str, token: Token | None) -> None:
        """Store `token` under `key`; None forgets it."""
        if token is None:
            self._tokens.pop(key, None)
        else:
            self._tokens[key] = token

    def lock(self, key: str) -> AsyncLock:
        """The lock of `key`, held while its token is fetched or invalidated."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks.setdefault(key, AsyncLock())
        return lock

    def __repr__(self) -> str:
        return f"<{type(self).__name__} keys={len(self._tokens)}>"
