"""The async client: `HTTPAio`, `OAuthHTTPAio`, their pools and exceptions."""

from cf._async import HTTPAio, HTTPAioPool
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

__all__ = [
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
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
]
