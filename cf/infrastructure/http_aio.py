"""The async client: `HTTPAio`, `OAuthHTTPAio`, their pools and exceptions."""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from cf._async import AsyncInMemoryTokenStore, AsyncTokenStore, OAuthHTTPAio
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


# OAuth loads on first use: importing the plain client does not import oauthlib.
_LAZY = {
    "OAuthHTTPAio": "cf._async",
    "AsyncInMemoryTokenStore": "cf._async",
    "AsyncTokenStore": "cf._async",
    "Token": "cf._oauth",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
