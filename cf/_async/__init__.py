"""The hand-written async client code; cf/_sync is generated from it.

The OAuth names load on first use (module `__getattr__`), so that importing
the plain client does not import oauthlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cf._async._client import HTTPAio
from cf._async._pool import HTTPAioPool

if TYPE_CHECKING:
    from cf._async._oauth import OAuthHTTPAio
    from cf._async._token_store import AsyncInMemoryTokenStore, AsyncTokenStore

__all__ = ["AsyncInMemoryTokenStore", "AsyncTokenStore", "HTTPAio", "HTTPAioPool", "OAuthHTTPAio"]


def __getattr__(name: str) -> Any:
    if name == "OAuthHTTPAio":
        from cf._async._oauth import OAuthHTTPAio

        return OAuthHTTPAio
    if name in ("AsyncInMemoryTokenStore", "AsyncTokenStore"):
        from cf._async import _token_store

        return getattr(_token_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
