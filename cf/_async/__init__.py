"""The hand-written async client code; cf/_sync is generated from it."""

from cf._async._client import HTTPAio
from cf._async._oauth import OAuthHTTPAio
from cf._async._pool import HTTPAioPool
from cf._async._token_store import AsyncInMemoryTokenStore, AsyncTokenStore

__all__ = ["AsyncInMemoryTokenStore", "AsyncTokenStore", "HTTPAio", "HTTPAioPool", "OAuthHTTPAio"]
