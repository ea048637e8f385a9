"""The async client: `HTTPAio`, `OAuthHTTPAio`, their pools, transport, auth and exceptions.

`AsyncRetryTransport` (cf's attempt loop) and `AsyncClientCredentialsAuth`
(OAuth2 client credentials) work on any `httpx.AsyncClient` too.
"""

from typing import TYPE_CHECKING, Any

from cf._async import AsyncRetryTransport, HTTPAio, HTTPAioPool
from cf._backoff import RetryBudget, RetryEvent, RetryPolicy
from cf._breaker import CircuitBreaker
from cf._exceptions import (
    CircuitOpen,
    DeadlineExceeded,
    HTTPAioCircuitOpenError,
    HTTPAioException,
    HTTPAioStatusError,
    HTTPAioTimeoutError,
    HTTPAioTransportError,
    HTTPCircuitOpenError,
    HTTPException,
    HTTPStatusError,
    HTTPTimeoutError,
    HTTPTransportError,
    OAuthError,
)
from cf._hedge import Hedge

if TYPE_CHECKING:
    from cf._async import (
        AsyncClientCredentialsAuth,
        AsyncInMemoryTokenStore,
        AsyncTokenStore,
        OAuthHTTPAio,
    )
    from cf._async._redis_store import AsyncRedisTokenStore
    from cf._async._types import ClientOptions, OAuthClientOptions, RequestOptions
    from cf._oauth import Token

__all__ = [
    "AsyncClientCredentialsAuth",
    "AsyncInMemoryTokenStore",
    "AsyncRetryTransport",
    "AsyncTokenStore",
    "CircuitBreaker",
    "CircuitOpen",
    "ClientOptions",
    "DeadlineExceeded",
    "HTTPAio",
    "HTTPAioCircuitOpenError",
    "HTTPAioException",
    "HTTPAioPool",
    "HTTPAioStatusError",
    "HTTPAioTimeoutError",
    "HTTPAioTransportError",
    "HTTPCircuitOpenError",
    "HTTPException",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "HTTPTransportError",
    "Hedge",
    "OAuthClientOptions",
    "OAuthError",
    "OAuthHTTPAio",
    "AsyncRedisTokenStore",
    "RequestOptions",
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
    "Token",
]


# OAuth loads on first use: importing the plain client does not import oauthlib.
_LAZY = {
    "OAuthHTTPAio": "cf._async",
    "AsyncRedisTokenStore": "cf._async._redis_store",
    "AsyncClientCredentialsAuth": "cf._async",
    "AsyncInMemoryTokenStore": "cf._async",
    "AsyncTokenStore": "cf._async",
    "Token": "cf._oauth",
    "ClientOptions": "cf._async._types",
    "OAuthClientOptions": "cf._async._types",
    "RequestOptions": "cf._async._types",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
