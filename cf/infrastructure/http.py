"""The sync client: `HTTP`, `OAuthHTTP`, their pools, transport, auth and exceptions.

`RetryTransport` (cf's attempt loop) and `ClientCredentialsAuth` (OAuth2
client credentials) work on any `httpx.Client` too. Generated from the async
code by scripts/unasync.py.
"""

from typing import TYPE_CHECKING, Any

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
from cf._sync import HTTP, HTTPPool, RetryTransport

if TYPE_CHECKING:
    from cf._oauth import Token
    from cf._sync import ClientCredentialsAuth, InMemoryTokenStore, OAuthHTTP, TokenStore
    from cf._sync._redis_store import RedisTokenStore
    from cf._sync._types import ClientOptions, OAuthClientOptions, RequestOptions

__all__ = [
    "HTTP",
    "CircuitBreaker",
    "CircuitOpen",
    "ClientCredentialsAuth",
    "ClientOptions",
    "DeadlineExceeded",
    "HTTPAioCircuitOpenError",
    "HTTPAioException",
    "HTTPAioStatusError",
    "HTTPAioTimeoutError",
    "HTTPAioTransportError",
    "HTTPCircuitOpenError",
    "HTTPException",
    "HTTPPool",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "HTTPTransportError",
    "Hedge",
    "InMemoryTokenStore",
    "OAuthClientOptions",
    "OAuthError",
    "OAuthHTTP",
    "RedisTokenStore",
    "RequestOptions",
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
    "RetryTransport",
    "Token",
    "TokenStore",
]


# OAuth loads on first use: importing the plain client does not import oauthlib.
_LAZY = {
    "OAuthHTTP": "cf._sync",
    "RedisTokenStore": "cf._sync._redis_store",
    "ClientCredentialsAuth": "cf._sync",
    "InMemoryTokenStore": "cf._sync",
    "TokenStore": "cf._sync",
    "Token": "cf._oauth",
    "ClientOptions": "cf._sync._types",
    "OAuthClientOptions": "cf._sync._types",
    "RequestOptions": "cf._sync._types",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
