"""The async client: `HTTPAio`, `OAuthHTTPAio`, their pools and exceptions."""

from cf._async import (
    AsyncInMemoryTokenStore,
    AsyncTokenStore,
    HTTPAio,
    HTTPAioPool,
    OAuthHTTPAio,
)
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

__all__ = [
    "AsyncInMemoryTokenStore",
    "AsyncTokenStore",
    "HTTPAio",
    "HTTPAioException",
    "HTTPAioPool",
    "HTTPAioStatusError",
    "HTTPAioTimeoutError",
    "HTTPAioTransportError",
    "HTTPException",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "HTTPTransportError",
    "OAuthError",
    "OAuthHTTPAio",
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
    "Token",
]
