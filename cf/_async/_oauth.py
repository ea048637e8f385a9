"""OAuthHTTPAio: HTTPAio with OAuth2 client credentials (RFC 6749 4.4) and bearer tokens.

Every request gets `Authorization: Bearer ...` from the token manager (one
token fetch at a time, renewed inside its refresh margin). A 401 from the API
forgets that token if it is still the current one, fetches one new token and
replays the request once; the replay is the call's last attempt. Token
requests go through the same retry loop as any call (the client's policy, any
method) and fail as `OAuthError`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import httpx

from cf._async._client import HTTPAio
from cf._async._pool import HTTPAioPool
from cf._async._send import send_with_retries
from cf._async._token import AsyncTokenManager
from cf._async._token_store import AsyncInMemoryTokenStore, AsyncTokenStore
from cf._call import Call, ClientOptions, plan_call
from cf._exceptions import HTTPAioException, HTTPAioStatusError, OAuthError
from cf._oauth import (
    AuthMethod,
    OAuthConfig,
    Token,
    TokenProblem,
    parse_error_response,
    parse_token_response,
    scope_changed,
)
from cf._options import pool_limits
from cf._redact import redact_text, redact_url
from cf.loggingutils import get_logger

if TYPE_CHECKING:
    from typing_extensions import Required, Self, Unpack

__all__ = ["OAuthHTTPAio"]

logger = get_logger("cf.infrastructure.http_aio")

# RFC 6749 5.2 error statuses: retrying them never helps, whatever failure_statuses says.
_TOKEN_ERROR_STATUSES = frozenset({400, 401})


class OAuthClientOptions(ClientOptions, total=False):
    """The keyword arguments of `OAuthHTTPAio.create()`: the OAuth settings (see
    `OAuthHTTPAio.__init__`) plus every client option."""

    client_id: Required[str]
    client_secret: Required[str]
    authorize_url: Required[str | httpx.URL]
    scope: str | Iterable[str] | None
    audience: str | None
    extra_params: Mapping[str, str] | None
    auth_method: AuthMethod
    refresh_margin: float
    token_store: AsyncTokenStore | None
    allow_insecure_http: bool


class OAuthHTTPAio(HTTPAio):
    """An `HTTPAio` that authenticates every request with an OAuth2 client-credentials token.

    `authorize_url` is the token endpoint. The first token is fetched on the
    first request (creating the client does no I/O). See the README for every
    option and its default.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authorize_url: str | httpx.URL,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        auth_method: AuthMethod = "client_secret_basic",
        refresh_margin: float = 60.0,
        token_store: AsyncTokenStore | None = None,
        allow_insecure_http: bool = False,
        **options: Unpack[ClientOptions],
    ) -> None:
        self._config = OAuthConfig.create(
            client_id=client_id,
            client_secret=client_secret,
            authorize_url=authorize_url,
            scope=scope,
            audience=audience,
            extra_params=extra_params,
            auth_method=auth_method,
            refresh_margin=refresh_margin,
            allow_insecure_http=allow_insecure_http,
        )
        if token_store is None:
            token_store = AsyncInMemoryTokenStore()
        elif not isinstance(token_store, AsyncTokenStore):
            raise TypeError("token_store must have get(key), set(key, token) and lock(key)")
        super().__init__(**options)
        policy = self._defaults.policy
        self._token_defaults = dataclasses.replace(
            self._defaults,
            policy=policy.replace(
                retry_non_idempotent=True,
                failure_statuses=policy.failure_statuses - _TOKEN_ERROR_STATUSES,
            ),
        )
        self._tokens = AsyncTokenManager(
            self._fetch_token,
            store=token_store,
            key=self._config.store_key,
            refresh_margin=self._config.refresh_margin,
            clock=self._defaults.clock or time.monotonic,
            logger=logger,
        )

    # Creation ---------------------------------------------------------------

    @classmethod
    def create(  # type: ignore[override]  # the OAuth settings are required
        cls, **options: Unpack[OAuthClientOptions]
    ) -> Self:
        """A client with these OAuth settings and client defaults; no I/O until a request."""
        return cls(**options)

    @classmethod
    def create_pool(  # type: ignore[override]  # the OAuth settings are required
        cls, size: int, **options: Unpack[OAuthClientOptions]
    ) -> HTTPAioPool[Self]:
        """A pool of `size` connections sharing one token: `async with pool.item() as client`."""
        options["limits"] = pool_limits(size)
        return HTTPAioPool(cls(**options), size)

    # Tokens -----------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self._config.client_id

    @property
    def token_url(self) -> str:
        """The token endpoint (`authorize_url`), redacted."""
        return redact_url(self._config.token_url)

    @property
    def scope(self) -> str | None:
        """The requested scope, space-separated (the granted one is `Token.scope`)."""
        return self._config.scope

    async def token(self) -> Token:
        """The current token, fetched first if there is none or it is due for renewal."""
        return await self._tokens.get()

    async def _send_once(self, call: Call) -> httpx.Response:
        token = await self._token_for(call)
        call.request.headers["Authorization"] = token.authorization
        response = await super()._send_once(call)
        if response.status_code != 401 or call.final:
            return response
        if not call.replayable:
            try:
                await self._tokens.invalidate(token)  # the next call fetches a new one
            except BaseException:
                await response.aclose()
                raise
            return response
        await response.aclose()
        await self._tokens.invalidate(token)
        call.final = True  # one replay, never a loop: its outcome is the call's
        call.start_attempt()  # an attempt of its own: counted, a fresh trace parent id
        token = await self._token_for(call)
        call.request.headers["Authorization"] = token.authorization
        logger.debug(
            "replaying %s %s once with a new token after a 401",
            call.method,
            call.url,
            extra={"method": call.method, "url": call.url, "trace_id": call.trace_id},
        )
        return await super()._send_once(call)

    async def _token_for(self, call: Call) -> Token:
        """The token for this attempt, waiting for a fetch no longer than the call's deadline."""
        try:
            token = await self._tokens.get(timeout=call.remaining())
        except TimeoutError:
            raise call.deadline_error() from None
        remaining = call.remaining()
        if remaining is not None:
            if remaining <= 0:
                raise call.deadline_error()
            call.shrink_timeouts()  # the wait for the token came out of this attempt's time
        return token

    async def _fetch_token(self) -> Token:
        """One token request, retried with the client's policy; OAuthError when it fails."""
        config = self._config
        call = plan_call(
            self._client,
            self._token_defaults,
            "POST",
            config.token_url,
            {
                "content": config.body,
                "headers": config.headers,
                "auth": None,
                "follow_redirects": False,  # never re-post the credentials elsewhere
            },
        )
        clock = call.clock
        sent_at = clock()
        send = super()._send_once

        async def send_once(call: Call) -> httpx.Response:
            nonlocal sent_at
            sent_at = clock()  # a token's lifetime counts from when its request was sent
            return await send(call)

        try:
            response = await send_with_retries(
                send_once, call, stream=False, sleep=self._sleep, logger=logger
            )
        except HTTPAioStatusError as exc:
            problem = parse_error_response(exc.response.content)
            raise self._oauth_error(
                f"token request failed: {exc.message}", call, exc, problem, exc.response
            ) from exc
        except HTTPAioException as exc:
            raise self._oauth_error(f"token request failed: {exc.message}", call, exc) from exc
        status = response.status_code
        if not 200 <= status < 300:
            problem = parse_error_response(response.content)
            message = (
                problem.message
                if problem is not None
                else f"token endpoint answered status {status}, not an RFC 6749 response"
            )
            raise self._oauth_error(message, call, None, problem, response)
        result = parse_token_response(
            response.content,
            client_id=config.client_id,
            requested_scope=config.scope,
            obtained_at=sent_at,
        )
        if isinstance(result, TokenProblem):
            raise self._oauth_error(result.message, call, None, result, None, status)
        if scope_changed(config.scope, result.scope):
            logger.warning(
                "the token endpoint granted scope %r instead of %r",
                result.scope,
                config.scope,
                extra={"token_url": call.url, "trace_id": call.trace_id},
            )
        logger.debug(
            "obtained an access token from %s (lifetime %s, scope %r) after %d attempt(s)",
            call.url,
            "unknown" if result.expires_in is None else f"{result.expires_in:g}s",
            result.scope,
            call.attempts,
            extra={"token_url": call.url, "trace_id": call.trace_id},
        )
        return result

    @staticmethod
    def _oauth_error(
        message: str,
        call: Call,
        cause: HTTPAioException | None,
        problem: TokenProblem | None = None,
        response: httpx.Response | None = None,
        status: int | None = None,
    ) -> OAuthError:
        return OAuthError(
            redact_text(message),
            error=problem.error if problem else None,
            error_description=problem.error_description if problem else None,
            method=call.method,
            url=call.request.url,
            status=status if status is not None else (cause.status if cause else None),
            response=response,
            attempts=call.attempts,
            trace_id=call.trace_id,
            retry_budget_exhausted=cause.retry_budget_exhausted if cause else False,
        )

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} client_id={self._config.client_id!r} "
            f"token_url={self.token_url!r} closed={self.is_closed}>"
        )
