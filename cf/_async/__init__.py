"""The hand-written async client code; cf/_sync is generated from it.

The OAuth names load on first use (module `__getattr__`), so that importing
the plain client does not import oauthlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cf._async._client import HTTPAio
from cf._async._pool import HTTPAioPool
from cf._async._transport import AsyncRetryTransport

if TYPE_CHECKING:
    from cf._async._auth import AsyncClientCredentialsAuth
    from cf._async._oauth import OAuthHTTPAio
    from cf._async._token_store import AsyncInMemoryTokenStore, AsyncTokenStore

__all__ = [
    "AsyncClientCredentialsAuth",
    "AsyncInMemoryTokenStore",
    "AsyncRetryTransport",
    "AsyncTokenStore",
    "HTTPAio",
    "HTTPAioPool",
    "OAuthHTTPAio",
]

_LAZY = {
    "OAuthHTTPAio": "cf._async._oauth",
    "AsyncClientCredentialsAuth": "cf._async._auth",
    "AsyncInMemoryTokenStore": "cf._async._token_store",
    "AsyncTokenStore": "cf._async._token_store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
