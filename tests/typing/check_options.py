"""Checked by mypy --strict (not run): what users write, and what mypy must refuse.

Every `# type: ignore[...]` below marks a mistake mypy has to catch: with
`warn_unused_ignores`, a mistake it stopped catching fails the type check.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from cf.infrastructure.http import HTTP, OAuthHTTP, RetryTransport
from cf.infrastructure.http_aio import AsyncRetryTransport, HTTPAio, OAuthHTTPAio, RetryPolicy


async def fine() -> None:
    async with HTTPAio.create(timeout=2.0, retries=3, sleep=asyncio.sleep) as client:
        response: httpx.Response = await client.get("http://x/", deadline=1.0, retries=0)
        assert response.status_code
    HTTPAio.create(transport=httpx.AsyncHTTPTransport(), retry_policy=RetryPolicy(retries=1))
    HTTP.create(transport=httpx.HTTPTransport(), sleep=time.sleep)
    OAuthHTTPAio.create(client_id="id", client_secret="s", authorize_url="http://127.0.0.1/t")
    OAuthHTTP.create(client_id="id", client_secret="s", authorize_url="http://127.0.0.1/t")
    httpx.AsyncClient(transport=AsyncRetryTransport())
    httpx.Client(transport=RetryTransport())


async def refused() -> None:
    HTTPAio.create(sleep=time.sleep)  # type: ignore[arg-type]
    HTTP.create(transport=httpx.AsyncHTTPTransport())  # type: ignore[arg-type]
    HTTPAio.create(transport=httpx.HTTPTransport())  # type: ignore[arg-type]
    HTTPAio.create(retries="3")  # type: ignore[arg-type]
    HTTPAio.create(no_such_option=1)  # type: ignore[call-arg]
    OAuthHTTPAio.create(client_id="id")  # type: ignore[call-arg]
    async with HTTPAio.create() as client:
        await client.get("http://x/", retry_budget=None)  # type: ignore[call-arg]
