"""The sync client: `HTTP`, `OAuthHTTP`, their pools and exceptions (generated code)."""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from cf._oauth import Token
    from cf._sync import InMemoryTokenStore, OAuthHTTP, TokenStore

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


# OAuth loads on first use: importing the plain client does not import oauthlib.
_LAZY = {
    "OAuthHTTP": "cf._sync",
    "InMemoryTokenStore": "cf._sync",
    "TokenStore": "cf._sync",
    "Token": "cf._oauth",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
