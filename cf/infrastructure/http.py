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
from cf._sync import HTTP, HTTPPool

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
    "OAuthError",
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
]
