"""The seed examples of SPEC.md run verbatim, each in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.servers.app import AppServer


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_async_seed_examples(server: AppServer) -> None:
    code = f"""
    import asyncio
    from cf.infrastructure.http_aio import HTTPAio, OAuthHTTPAio, HTTPAioException
    from cf.infrastructure.tracer import TraceInfo
    from cf.loggingutils import get_logger

    url = "{server.url}/fail/1?status=500"

    client = HTTPAio.create()
    response = asyncio.get_event_loop().run_until_complete(client.get(url, timeout=0.1))
    response.content
    print(response.status_code)

    async def main():
        pool = HTTPAio.create_pool(10)
        async with pool.item() as client:
            await client.get(url, timeout=0.1, retries=2, failure_statuses=[500, 503, 400, 401])
            await client.get(url, timeout=0.1, trace=TraceInfo.create_new())
        try:
            async with pool.item() as client:
                await client.get("{server.url}/status/400", timeout=0.1, retries=2,
                                 failure_statuses=[500, 503, 400, 401])
        except HTTPAioException as e:
            get_logger(__name__).info("failed: %s", e)
            print("raised", e.status, e.attempts)

    asyncio.get_event_loop().run_until_complete(main())
    """
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["200", "raised 400 3"]


def test_sync_seed_examples(server: AppServer) -> None:
    code = f"""
    from cf.infrastructure.http import HTTP, OAuthHTTP, HTTPException
    from cf.infrastructure.tracer import TraceInfo

    url = "{server.url}/fail/1?status=500"
    client = HTTP.create()
    response = client.get(url, timeout=0.1)
    response.content
    print(response.status_code)

    pool = HTTP.create_pool(10)
    with pool.item() as client:
        client.get(url, timeout=0.1, retries=2, failure_statuses=[500, 503, 400, 401])
        client.get(url, timeout=0.1, trace=TraceInfo.create_new())
    try:
        with pool.item() as client:
            client.get("{server.url}/status/400", timeout=0.1, retries=2,
                       failure_statuses=[500, 503, 400, 401])
    except HTTPException as e:
        print("raised", e.status, e.attempts)
    """
    result = run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["200", "raised 400 3"]
