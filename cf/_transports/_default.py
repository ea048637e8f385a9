"""The engine each mode uses when no `transport=` is given."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

__all__ = ["async_default_transport", "sync_default_transport"]


def async_default_transport(
    *,
    verify: ssl.SSLContext | str | bool = True,
    cert: Any = None,
    trust_env: bool = True,
    http2: bool = False,
    proxy: Any = None,
    limits: httpx.Limits,
) -> httpx.AsyncBaseTransport:
    """aiohttp under httpx's API; httpx's own transport where aiohttp can't (HTTP/2)."""
    if http2:
        return httpx.AsyncHTTPTransport(
            verify=verify, cert=cert, trust_env=trust_env, http2=True, proxy=proxy, limits=limits
        )
    try:
        from cf._transports._aiohttp import AiohttpTransport
    except ImportError:  # pragma: no cover - until the aiohttp transport lands
        return httpx.AsyncHTTPTransport(
            verify=verify, cert=cert, trust_env=trust_env, proxy=proxy, limits=limits
        )
    return AiohttpTransport(
        verify=verify, cert=cert, trust_env=trust_env, proxy=proxy, limits=limits
    )


def sync_default_transport(
    *,
    verify: ssl.SSLContext | str | bool = True,
    cert: Any = None,
    trust_env: bool = True,
    http2: bool = False,
    proxy: Any = None,
    limits: httpx.Limits,
) -> httpx.BaseTransport:
    """httpx's own sync transport."""
    return httpx.HTTPTransport(
        verify=verify, cert=cert, trust_env=trust_env, http2=http2, proxy=proxy, limits=limits
    )
