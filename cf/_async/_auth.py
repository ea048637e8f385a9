"""AsyncClientCredentialsAuth: OAuth2 client credentials (RFC 6749 4.4) as an `httpx.Auth`.

Each request gets `Authorization: Bearer ...` from the token manager (one
token fetch at a time for every caller, renewed inside its refresh margin). A
401 from an origin the bearer was sent to forgets that token if it is still
the current one, fetches one new token and replays the request once; the
replay is the call's last attempt. The bearer goes only where it belongs: the
allowed origins (`token_origins`), never plain `http://` to a host that is
not loopback unless `allow_insecure_http`, and httpx itself strips it from a
redirect to another origin. Token requests carry only what the token endpoint
needs: the form body, the client authentication and `token_headers`.
"""

from __future__ import annotations

import random as _random
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping
from typing import Any

import httpx

from cf import _otel
from cf._async._token import AsyncTokenManager
from cf._async._token_store import (
    AsyncBindableTokenStore,
    AsyncInMemoryTokenStore,
    AsyncTokenStore,
)
from cf._async._transport import AsyncRetryTransport
from cf._backoff import RetryBudget, RetryEvent, RetryPolicy, Stop
from cf._call import CALL, Call, error_for
from cf._exceptions import (
    DeadlineExceeded,
    HTTPAioTimeoutError,
    HTTPAioTransportError,
    OAuthError,
)
from cf._oauth import (
    AuthMethod,
    OAuthConfig,
    Token,
    TokenProblem,
    is_loopback_host,
    parse_error_response,
    parse_token_response,
    scope_changed,
)
from cf._options import check_headers, check_origins, origin_of
from cf._redact import redact_text, redact_url
from cf.loggingutils import get_logger

__all__ = ["AsyncClientCredentialsAuth", "token_policy"]

logger = get_logger("cf.infrastructure.http_aio")

# RFC 6749 5.2 error statuses: retrying them never helps, whatever failure_statuses says.
_TOKEN_ERROR_STATUSES = frozenset({400, 401})
_CLIENT = "httpx.AsyncClient"
_REPLAYED = frozenset({401})  # answered by the flow (one replay), not retried by the loop


def token_policy(policy: RetryPolicy) -> RetryPolicy:
    """The retry policy of token requests: a POST retried like an idempotent request
    (a token request changes nothing), never on the RFC 6749 error statuses."""
    return policy.replace(
        retry_non_idempotent=True,
        failure_statuses=policy.failure_statuses - _TOKEN_ERROR_STATUSES,
        raise_on_failure_status=True,
        retry_after_statuses=frozenset(),
    )


class _FetchCutShort(BaseException):
    """The fetching caller's own deadline ended a token fetch that others wait for:
    they start a fetch of their own (a single flight treats it as an interruption)."""

    def __init__(self, error: DeadlineExceeded) -> None:
        super().__init__(str(error))
        self.error = error


def _outcome(exc: OAuthError) -> str:
    """How a token request failed, for the `cf.oauth.token_requests` counter."""
    cause = exc.__cause__
    if exc.error:
        return "refused"  # an RFC 6749 error response
    if isinstance(cause, HTTPAioTimeoutError):
        return "timeout"
    if isinstance(cause, HTTPAioTransportError):
        return "transport_error"
    if exc.status is not None:
        return "failure_status"
    return "malformed"


def _out_of_time(call: Call) -> bool:
    """Whether a timeout ended the call because its deadline ran out."""
    remaining = call.remaining()
    return call.stop is Stop.DEADLINE or (remaining is not None and remaining <= 0.01)


class AsyncClientCredentialsAuth(httpx.Auth):
    """OAuth2 client credentials for any `httpx.AsyncClient`: bearer tokens, renewed in time.

    `token_url` is the token endpoint (https, or http on loopback unless
    `allow_insecure_http`). Tokens are requested with `client` (an
    `httpx.AsyncClient`; by default one of its own over cf's transport, closed
    by `aclose()`), without redirects, event hooks or the API client's headers.
    Creating it does no I/O: the first token is fetched on the first request.
    """

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        token_url: str | httpx.URL,
        scope: str | Iterable[str] | None = None,
        audience: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        auth_method: AuthMethod = "client_secret_basic",
        refresh_margin: float = 60.0,
        token_store: AsyncTokenStore | None = None,
        token_origins: Iterable[str] | None = None,
        token_headers: Any = None,
        allow_insecure_http: bool = False,
        client: httpx.AsyncClient | None = None,
        retry_policy: RetryPolicy | None = None,
        retry_budget: RetryBudget | None = None,
        on_retry: Callable[[RetryEvent], object] | None = None,
        clock: Callable[[], float] | None = None,
        random: Callable[[], float] | None = None,
    ) -> None:
        self._config = OAuthConfig.create(
            client_id=client_id,
            client_secret=client_secret,
            authorize_url=token_url,
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
        if client is not None and not isinstance(client, httpx.AsyncClient):
            raise TypeError(f"client must be an {_CLIENT}, not {type(client).__name__}")
        self._origins = check_origins(token_origins)
        extra = check_headers(token_headers)
        self._headers = list(self._config.headers) + (
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in extra.raw] if extra else []
        )
        self._insecure = allow_insecure_http
        self._client = client
        self._owns_client = client is None
        self._policy = token_policy(retry_policy or RetryPolicy())
        self._budget = retry_budget
        self._on_retry = on_retry
        self._clock = clock or time.monotonic
        self._random = random or _random.random
        self._warned_insecure: set[str] = set()
        if isinstance(token_store, AsyncBindableTokenStore):
            # A shared store (Redis) derives its encryption key from the secret and sizes
            # its refresh lock to outlive one token request.
            timeout = client.timeout if client is not None else httpx.Timeout(5.0)
            parts = (timeout.connect, timeout.write, timeout.read)
            token_store.bind(
                self._config.store_key,
                client_secret=client_secret,
                request_timeout=None if None in parts else sum(p for p in parts if p),
            )
        self._tokens = AsyncTokenManager(
            self._fetch,
            store=token_store,
            key=self._config.store_key,
            refresh_margin=self._config.refresh_margin,
            clock=self._clock,
            logger=logger,
        )

    # What users see ---------------------------------------------------------

    @property
    def client_id(self) -> str:
        """The OAuth client id."""
        return self._config.client_id

    @property
    def token_url(self) -> str:
        """The token endpoint, redacted."""
        return redact_url(self._config.token_url)

    @property
    def scope(self) -> str | None:
        """The requested scope, space-separated (the granted one is `Token.scope`)."""
        return self._config.scope

    async def token(self) -> Token:
        """The current token, fetched first if there is none or it is due for renewal."""
        return await self._tokens.get()

    async def aclose(self) -> None:
        """Close the token client, if this auth created it."""
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.aclose()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} client_id={self._config.client_id!r} "
            f"token_url={self.token_url!r}>"
        )

    # The flow ---------------------------------------------------------------

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Refuses the other mode's client: the token manager is for this one."""
        raise TypeError(f"{type(self).__name__} works with {_CLIENT} only")
        yield request  # pragma: no cover - makes this a generator, as httpx expects

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """httpx's auth flow: the bearer on `request`; after a 401 from where it was sent,
        one replay with a new token (when the body can be sent again)."""
        if not self._bearer_allowed(request.url):
            yield request
            return
        call: Call | None = request.extensions.get(CALL)
        if call is not None:
            call.passthrough = _REPLAYED
        token = await self._token_for(call, request)
        request.headers["Authorization"] = token.authorization
        response = yield request
        if response.status_code != 401 or (call is not None and call.final):
            return
        answered = response.request.url if response.request is not None else request.url
        if origin_of(answered) != origin_of(request.url):
            return  # a 401 from where a redirect led (the bearer was not sent there)
        await self._tokens.invalidate(token)
        replayable = call.replayable if call is not None else None
        if replayable is None:
            replayable = isinstance(request.stream, httpx.ByteStream)
        if not replayable:
            return
        if call is not None:
            call.final = True  # one replay, never a loop: its outcome is the call's
        token = await self._token_for(call, request)
        request.headers["Authorization"] = token.authorization
        logger.debug(
            "replaying %s %s once with a new token after a 401",
            request.method,
            redact_url(request.url),
            extra={"method": request.method, "url": redact_url(request.url)},
        )
        yield request

    def _bearer_allowed(self, url: httpx.URL) -> bool:
        """Whether the bearer may go to `url`: an allowed origin, and not plain http
        to a host that is not loopback (unless `allow_insecure_http`)."""
        if self._origins is not None and origin_of(url) not in self._origins:
            return False
        if url.scheme == "http" and not self._insecure and not is_loopback_host(url.host):
            origin = origin_of(url)
            if origin not in self._warned_insecure:
                self._warned_insecure.add(origin)
                logger.warning(
                    "not sending the bearer token over plain http to %s "
                    "(use https, or allow_insecure_http=True)",
                    origin,
                )
            return False
        return True

    async def _token_for(self, call: Call | None, request: httpx.Request) -> Token:
        """The token for this attempt, waiting no longer than the call's deadline."""
        remaining = call.remaining() if call is not None else None
        try:
            if remaining is not None and remaining <= 0:
                raise TimeoutError
            return await self._tokens.get(timeout=remaining, deadline=remaining)
        except TimeoutError:
            assert call is not None
            raise call.deadline_exceeded(request) from None
        except _FetchCutShort as cut:
            raise cut.error from None

    # Token requests ---------------------------------------------------------

    def _token_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=AsyncRetryTransport(retry_budget=None), follow_redirects=False
            )
            self._owns_client = True
        return self._client

    async def _fetch(self, deadline: float | None = None) -> Token:
        """`_request_token`, counted and timed for OpenTelemetry by its outcome."""
        started = time.perf_counter()
        outcome = "success"
        try:
            return await self._request_token(deadline)
        except OAuthError as exc:
            outcome = _outcome(exc)
            raise
        except BaseException:
            outcome = "interrupted"
            raise
        finally:
            _otel.token_request(outcome, time.perf_counter() - started, self.token_url)

    async def _request_token(self, deadline: float | None = None) -> Token:
        """One token request (retried by the transport); OAuthError when it fails.

        `deadline`: what the fetching caller has left, where its fetch is its own
        (sync mode: the caller's thread fetches); None in async mode, where the
        fetch runs on for every waiter whatever one caller's deadline.
        """
        config = self._config
        call = Call(
            policy=self._policy,
            clock=self._clock,
            random=self._random,
            budget=self._budget,
            on_retry=self._on_retry,
            deadline=deadline,
            preload=True,
        )
        request = httpx.Request(
            "POST",
            config.token_url,
            content=config.body,
            headers=self._headers,
            extensions={CALL: call},
        )
        call.start()
        try:
            response = await self._token_client().send(request, auth=None, follow_redirects=False)
        except DeadlineExceeded as exc:
            raise _FetchCutShort(exc) from None
        except httpx.TimeoutException as exc:
            if deadline is not None and _out_of_time(call):
                raise _FetchCutShort(call.deadline_exceeded(request)) from None
            cause = error_for(exc, call, request)
            cause.__cause__ = exc
            raise self._error(f"token request failed: {cause.message}", call, request) from cause
        except httpx.RequestError as exc:
            cause = error_for(exc, call, request)
            cause.__cause__ = exc
            raise self._error(f"token request failed: {cause.message}", call, request) from cause
        status = response.status_code
        if not 200 <= status < 300:
            problem = parse_error_response(response.content)
            if status in self._policy.failure_statuses:
                failed = call.status_error(response)
                message = f"token request failed: {failed.message}"
                raise self._error(message, call, request, problem, response) from failed
            message = (
                problem.message
                if problem is not None
                else f"token endpoint answered status {status}, not an RFC 6749 response"
            )
            raise self._error(message, call, request, problem, response)
        result = parse_token_response(
            response.content,
            client_id=config.client_id,
            requested_scope=config.scope,
            obtained_at=call.attempt_started,
        )
        if isinstance(result, TokenProblem):
            raise self._error(result.message, call, request, result, None, status)
        if scope_changed(config.scope, result.scope):
            logger.warning(
                "the token endpoint granted scope %r instead of %r",
                result.scope,
                config.scope,
                extra={"token_url": self.token_url},
            )
        logger.debug(
            "obtained an access token from %s (lifetime %s, scope %r) after %d attempt(s)",
            self.token_url,
            "unknown" if result.expires_in is None else f"{result.expires_in:g}s",
            result.scope,
            call.attempts,
            extra={"token_url": self.token_url},
        )
        return result

    @staticmethod
    def _error(
        message: str,
        call: Call,
        request: httpx.Request,
        problem: TokenProblem | None = None,
        response: httpx.Response | None = None,
        status: int | None = None,
    ) -> OAuthError:
        return OAuthError(
            redact_text(message),
            error=problem.error if problem else None,
            error_description=problem.error_description if problem else None,
            method="POST",
            url=request.url,
            status=status if status is not None else (response.status_code if response else None),
            response=response,
            attempts=call.attempts,
            trace_id=call.trace_id,
            retry_budget_exhausted=call.stop is Stop.BUDGET,
        )
