"""The sync client: `HTTP`, `OAuthHTTP`, their pools and exceptions (generated code)."""

from cf._backoff import RetryBudget, RetryEvent, RetryPolicy
from cf._exceptions import (
    HTTPAioException,
    HTTPAioStatusError,
    HTTPAioTimeoutError,
    HTTPAioTransportError,
    HTTPException,
    HTTPStatusError,
    HTTPTimeoutError,
    HTTPTransportError,
    OAuthError,
)
from cf._oauth import Token
from cf._sync import HTTP, HTTPPool, InMemoryTokenStore, OAuthHTTP, TokenStore

__all__ = [
    "HTTP",
    "HTTPAioException",
    "HTTPAioStatusError",
    "HTTPAioTimeoutError",
    "HTTPAioTransportError",
    "HTTPException",
    "HTTPPool",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "HTTPTransportError",
    "InMemoryTokenStore",
    "OAuthError",
    "OAuthHTTP",
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
    "Token",
    "TokenStore",
]
