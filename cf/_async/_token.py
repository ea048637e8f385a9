"""The token manager: one token for many callers, one fetch at a time.

Callers ask `get()` for a usable token; when none is stored, or the stored one
is inside its refresh margin, a single flight fetches a new one (concurrent
callers join it instead of fetching again) under the store's lock. A token the
API rejected is forgotten with `invalidate(token)` only if it is still the
stored one (compare and swap), so a late 401 never throws away a newer token.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

from cf._async._token_store import AsyncTokenInvalidator, AsyncTokenStore
from cf._exceptions import OAuthError
from cf._oauth import Token, refresh_pause
from cf._redact import register_secret
from cf._synchronization import AsyncSingleFlight

__all__ = ["AsyncTokenManager"]


class AsyncTokenManager:
    """Fetches, stores, renews and invalidates the token of one OAuth client."""

    def __init__(
        self,
        fetch: Callable[..., Awaitable[Token]],
        *,
        store: AsyncTokenStore,
        key: str,
        refresh_margin: float,
        clock: Callable[[], float],
        logger: logging.Logger,
    ) -> None:
        self._fetch = fetch
        self._store = store
        self._key = key
        self._margin = refresh_margin
        self._clock = clock
        self._logger = logger
        self._flight: AsyncSingleFlight[Token] = AsyncSingleFlight()
        self._pause_until = -math.inf  # no early refresh before this, after one failed
        self._registered: str | None = None

    async def get(self, timeout: float | None = None, deadline: float | None = None) -> Token:
        """A usable token, fetched first if needed; waits at most `timeout` for a fetch.

        Raises `OAuthError` when the fetch fails and no valid token is left,
        and the builtin `TimeoutError` when `timeout` runs out first. `deadline`
        bounds a fetch this caller performs itself (sync mode, where the first
        caller's thread fetches); in async mode a fetch runs in a task of its
        own for every waiter and is bounded by the token request's timeouts.
        """
        token = await self._store.get(self._key)
        if token is not None:
            now = self._clock()
            if not token.needs_refresh(now, self._margin) or (
                now < self._pause_until and not token.is_expired(now)
            ):
                self._register(token)
                return token
        bound = deadline if self._flight.INLINE else None
        return await self._flight.run(lambda: self._refresh(bound), timeout=timeout)

    async def invalidate(self, token: Token) -> None:
        """Forget `token` if it is still the stored one (the API rejected it).

        A store that can compare and delete atomically (`AsyncTokenInvalidator`,
        Redis) does it in one step; otherwise under the store's lock.
        """
        if isinstance(self._store, AsyncTokenInvalidator):
            if await self._store.invalidate(self._key, token):
                self._pause_until = -math.inf
            return
        async with self._store.lock(self._key):
            current = await self._store.get(self._key)
            if current is not None and current.access_token == token.access_token:
                await self._store.set(self._key, None)
                self._pause_until = -math.inf

    async def _refresh(self, deadline: float | None = None) -> Token:
        async with self._store.lock(self._key):
            # Another caller (or process, with a shared store) may have renewed it meanwhile.
            current = await self._store.get(self._key)
            if current is not None and not current.needs_refresh(self._clock(), self._margin):
                self._register(current)
                return current
            try:
                token = await (self._fetch(deadline) if deadline is not None else self._fetch())
            except OAuthError as exc:
                now = self._clock()
                if current is None or current.is_expired(now):
                    raise
                left = (current.expires_at or now) - now
                self._pause_until = now + refresh_pause(left)
                self._logger.warning(
                    "early token refresh failed; the current token is still valid for %.1fs: %s",
                    left,
                    exc,
                    extra={"token_url": exc.url, "reason": str(exc)},
                )
                return current
            await self._store.set(self._key, token)
            self._pause_until = -math.inf
            self._register(token)
            return token

    def _register(self, token: Token) -> None:
        # A token stored by another process must be redacted here too; registering is
        # cheap but invalidates the redaction pattern, so do it once per token.
        if token.access_token != self._registered:
            register_secret(token.access_token)
            self._registered = token.access_token
