"""Behaviour only the async client has: cancellation, and the hard deadline."""

from __future__ import annotations

import asyncio
import sys
import time

import httpx
import pytest

from cf.infrastructure.http_aio import HTTPAio, HTTPAioTimeoutError, OAuthHTTPAio
from tests.servers.app import AppServer
from tests.servers.oauth import OAuthServer


async def test_cancelled_read_of_a_failure_body_leaks_no_connection(server: AppServer) -> None:
    pool = HTTPAio.create_pool(1, timeout=httpx.Timeout(5.0, pool=0.5), retries=0)
    async with pool, pool.item() as client:
        # 200 made a failure status: the loop reads the final failure's slow body.
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(
                client.get(f"{server.url}/slow-body?seconds=2", failure_statuses=[200]), 0.3
            )
        assert (await client.get(f"{server.url}/echo")).status_code == 200


async def test_cancelled_stream_read_leaks_no_connection(server: AppServer) -> None:
    pool = HTTPAio.create_pool(1, timeout=httpx.Timeout(5.0, pool=0.5))
    async with pool, pool.item() as client:

        async def read_slowly() -> None:
            async with client.stream("GET", f"{server.url}/slow-body?seconds=2") as response:
                await response.aread()

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(read_slowly(), 0.3)
        assert (await client.get(f"{server.url}/echo")).status_code == 200


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is 3.11+")
async def test_deadline_is_a_hard_stop_in_async_mode() -> None:
    # A body trickling a byte every 50 ms: no single read waits long enough for the
    # (shrunk) read timeout, so only the deadline's hard stop ends the call.
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        try:
            for _ in range(100):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(trickle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        async with HTTPAio.create(timeout=5.0, retries=0) as client:
            with pytest.raises(HTTPAioTimeoutError) as info:
                await client.get(f"http://127.0.0.1:{port}/", deadline=0.5)
        assert time.monotonic() - started < 2.0  # the body alone takes 5 s
        assert "deadline" in str(info.value)
    finally:
        server.close()
        await server.wait_closed()


def test_oauth_client_follows_the_loop_across_asyncio_runs(oauth_server: OAuthServer) -> None:
    # Created outside any loop, used in three successive asyncio.run() calls, a 401
    # (which takes the store's lock) met in each: every primitive follows the loop.
    client = OAuthHTTPAio.create(
        client_id=oauth_server.client_id,
        client_secret=oauth_server.client_secret,
        authorize_url=oauth_server.token_url,
    )
    oauth_server.latency = 0.2  # the fetch holds the store's lock while others arrive

    async def call() -> list[int]:
        # Concurrent callers meet the same 401: they wait on the store's lock (an
        # asyncio primitive binds to a loop when someone has to wait on it).
        responses = await asyncio.gather(*(client.get(oauth_server.api_url) for _ in range(5)))
        oauth_server.revoke_current()  # the next run meets a 401, replays with a new token
        return [r.status_code for r in responses]

    assert [asyncio.run(call()) for _ in range(3)] == [[200] * 5] * 3
    assert oauth_server.token_requests == 3
    asyncio.run(client.aclose())
