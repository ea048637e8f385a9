"""The benchmark's client variants; each run happens in a fresh process.

    python benchmarks/_clients.py '<json job>'

A job is {"variant": NAME, "cells": [{"url", "length", "concurrency",
"requests", "warmup"}, ...], "max_seconds": S, "cpu": N or null,
"profile": false}. For each cell the process prints one JSON line:
{"requests": done, "seconds": elapsed, "rps": done / elapsed, "errors": n}.
A cell stops early once `max_seconds` have passed (a collapsing client would
otherwise take minutes), and its rate counts what was done by then.

Other jobs: {"job": "outage", ...} and {"job": "stream", ...} (see `outage` and
`stream_memory` below).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from typing import Any

AsyncFetch = Callable[[str], Awaitable[int]]
SyncFetch = Callable[[str], int]

# Async variants: name -> factory(concurrency) giving `fetch(url) -> body length`.


@asynccontextmanager
async def _httpaio(concurrency: int) -> AsyncIterator[AsyncFetch]:
    from cf.infrastructure.http_aio import HTTPAio

    pool = HTTPAio.create_pool(concurrency)

    async def fetch(url: str) -> int:
        async with pool.item() as client:
            response = await client.get(url)
        return len(response.content)

    async with pool:
        yield fetch


@asynccontextmanager
async def _httpaio_httpx(concurrency: int) -> AsyncIterator[AsyncFetch]:
    import httpx

    from cf.infrastructure.http_aio import HTTPAio

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    pool = HTTPAio.create_pool(concurrency, transport=httpx.AsyncHTTPTransport(limits=limits))

    async def fetch(url: str) -> int:
        async with pool.item() as client:
            response = await client.get(url)
        return len(response.content)

    async with pool:
        yield fetch


def _httpx_async_client(concurrency: int, transport: Any) -> Any:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    if transport is None:
        return httpx.AsyncClient(limits=limits)
    return httpx.AsyncClient(transport=transport(limits=limits))


@asynccontextmanager
async def _httpx_over(concurrency: int, transport: Any) -> AsyncIterator[AsyncFetch]:
    async with _httpx_async_client(concurrency, transport) as client:
        get = client.get

        async def fetch(url: str) -> int:
            return len((await get(url)).content)

        yield fetch


def _httpx(concurrency: int) -> AbstractAsyncContextManager[AsyncFetch]:
    return _httpx_over(concurrency, None)


def _httpx_cf_aiohttp(concurrency: int) -> AbstractAsyncContextManager[AsyncFetch]:
    from cf._transports._aiohttp import AiohttpTransport

    return _httpx_over(concurrency, AiohttpTransport)


def _httpx_aiohttp(concurrency: int) -> AbstractAsyncContextManager[AsyncFetch]:
    from httpx_aiohttp import AiohttpTransport

    return _httpx_over(concurrency, AiohttpTransport)


@asynccontextmanager
async def _aiohttp(concurrency: int) -> AsyncIterator[AsyncFetch]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        get = session.get

        async def fetch(url: str) -> int:
            async with get(url) as response:
                return len(await response.read())

        yield fetch


@asynccontextmanager
async def _aiohttp_httpx_objects(concurrency: int) -> AsyncIterator[AsyncFetch]:
    """Raw aiohttp plus the two objects any httpx-typed client builds per call (an
    `httpx.Request` and an `httpx.Response` whose body is read through httpx): the
    floor of such a client on aiohttp, with no client, transport or retry logic."""
    import aiohttp
    import httpx

    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        get = session.get

        async def fetch(url: str) -> int:
            request = httpx.Request("GET", url)
            async with get(url) as raw:
                body = await raw.read()
                response = httpx.Response(
                    raw.status, headers=raw.raw_headers, stream=httpx.ByteStream(body)
                )
            response.request = request
            return len(await response.aread())

        yield fetch


# Sync variants: name -> factory(concurrency) giving `fetch(url) -> body length`.


@contextmanager
def _http(concurrency: int) -> Iterator[SyncFetch]:
    from cf.infrastructure.http import HTTP

    pool = HTTP.create_pool(concurrency)

    def fetch(url: str) -> int:
        with pool.item() as client:
            response = client.get(url)
        return len(response.content)

    with pool:
        yield fetch


@contextmanager
def _httpx_sync(concurrency: int) -> Iterator[SyncFetch]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(limits=limits) as client:
        get = client.get

        def fetch(url: str) -> int:
            return len(get(url).content)

        yield fetch


@contextmanager
def _requests(concurrency: int) -> Iterator[SyncFetch]:
    import requests
    import requests.adapters

    with requests.Session() as session:
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=concurrency)
        session.mount("http://", adapter)
        get = session.get

        def fetch(url: str) -> int:
            return len(get(url).content)

        yield fetch


ASYNC_VARIANTS: dict[str, Callable[[int], AbstractAsyncContextManager[AsyncFetch]]] = {
    "httpaio": _httpaio,
    "httpaio_httpx": _httpaio_httpx,
    "httpx": _httpx,
    "httpx_cf_aiohttp": _httpx_cf_aiohttp,
    "httpx_aiohttp": _httpx_aiohttp,
    "aiohttp": _aiohttp,
    "aiohttp_httpx_objects": _aiohttp_httpx_objects,
}
SYNC_VARIANTS: dict[str, Callable[[int], AbstractContextManager[SyncFetch]]] = {
    "http": _http,
    "httpx_sync": _httpx_sync,
    "requests": _requests,
}


# Running a cell ---------------------------------------------------------------------


def _result(done: int, seconds: float, errors: int) -> dict[str, Any]:
    return {
        "requests": done,
        "seconds": seconds,
        "rps": done / seconds if seconds > 0 else 0.0,
        "errors": errors,
    }


async def _run_async_cell(
    fetch: AsyncFetch, cell: dict[str, Any], max_seconds: float, warm: bool = True
) -> Any:
    url, length, concurrency = cell["url"], cell["length"], cell["concurrency"]
    errors = 0

    async def worker(count: list[int], stop_at: float) -> None:
        nonlocal errors
        clock = time.perf_counter
        while count[0] > 0 and clock() < stop_at:
            count[0] -= 1
            try:
                if await fetch(url) != length:
                    errors += 1
            except Exception:
                errors += 1
            count[1] += 1

    async def phase(total: int, limit: float) -> tuple[int, float]:
        count = [total, 0]
        start = time.perf_counter()
        await asyncio.gather(*(worker(count, start + limit) for _ in range(concurrency)))
        return count[1], time.perf_counter() - start

    if warm:
        await phase(max(cell["warmup"], concurrency), max_seconds)  # opens the connections
    errors = 0
    done, seconds = await phase(cell["requests"], max_seconds)
    return _result(done, seconds, errors)


def _run_sync_cell(
    fetch: SyncFetch, cell: dict[str, Any], max_seconds: float, warm: bool = True
) -> Any:
    url, length, concurrency = cell["url"], cell["length"], cell["concurrency"]
    lock = threading.Lock()
    errors = 0

    def worker(count: list[int], stop_at: float) -> None:
        nonlocal errors
        clock = time.perf_counter
        while clock() < stop_at:
            with lock:
                if count[0] <= 0:
                    return
                count[0] -= 1
            try:
                ok = fetch(url) == length
            except Exception:
                ok = False
            with lock:
                count[1] += 1
                errors += not ok

    def phase(total: int, limit: float) -> tuple[int, float]:
        count = [total, 0]
        start = time.perf_counter()
        if concurrency == 1:
            worker(count, start + limit)
        else:
            threads = [
                threading.Thread(target=worker, args=(count, start + limit))
                for _ in range(concurrency)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        return count[1], time.perf_counter() - start

    if warm:
        phase(max(cell["warmup"], concurrency), max_seconds)
    errors = 0
    done, seconds = phase(cell["requests"], max_seconds)
    return _result(done, seconds, errors)


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def run_variant(job: dict[str, Any]) -> None:
    name, cells, max_seconds = job["variant"], job["cells"], job["max_seconds"]
    profiler = None
    if job.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    if name in SYNC_VARIANTS:
        for cell in cells:
            with SYNC_VARIANTS[name](cell["concurrency"]) as fetch:
                if profiler is not None:  # warm up unprofiled, then measure only the requests
                    _run_sync_cell(fetch, {**cell, "requests": cell["warmup"]}, max_seconds)
                    profiler.enable()
                _emit(_run_sync_cell(fetch, cell, max_seconds, warm=profiler is None))
    else:

        async def main() -> None:
            for cell in cells:
                async with ASYNC_VARIANTS[name](cell["concurrency"]) as fetch:
                    if profiler is not None:  # warm up unprofiled, then only the requests
                        warm = {**cell, "requests": cell["warmup"]}
                        await _run_async_cell(fetch, warm, max_seconds)
                        profiler.enable()
                    result = await _run_async_cell(fetch, cell, max_seconds, warm=profiler is None)
                    if profiler is not None:
                        profiler.disable()
                    _emit(result)

        asyncio.run(main())
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(job["profile"])


# Other measurements -----------------------------------------------------------------


def outage(job: dict[str, Any]) -> None:
    """`calls` GETs of an always-503 URL, `in_flight` at a time, with default options."""
    from cf.infrastructure.http_aio import HTTPAio, HTTPAioStatusError

    logging.getLogger("cf").addHandler(logging.NullHandler())  # no lastResort spam
    calls, in_flight, url = job["calls"], job["in_flight"], job["url"]
    outcome = {"attempts": 0, "exhausted": 0, "other": 0, "returned": 0}

    async def main() -> float:
        pool = HTTPAio.create_pool(in_flight)
        left = [calls]

        async def worker() -> None:
            while left[0] > 0:
                left[0] -= 1
                try:
                    async with pool.item() as client:
                        await client.get(url)
                    outcome["returned"] += 1
                except HTTPAioStatusError as exc:
                    outcome["attempts"] += exc.attempts
                    outcome["exhausted"] += exc.retry_budget_exhausted
                except Exception:
                    outcome["other"] += 1

        start = time.perf_counter()
        async with pool:
            await asyncio.gather(*(worker() for _ in range(in_flight)))
        return time.perf_counter() - start

    seconds = asyncio.run(main())
    _emit({**outcome, "seconds": seconds})


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def stream_memory(job: dict[str, Any]) -> None:
    """Stream `url` with `client.stream()` + `aiter_bytes()`; the peak RSS growth."""
    url, mode = job["url"], job["mode"]
    small = url.rsplit("/", 1)[0] + "/small"
    result: dict[str, Any] = {}

    def measure_start() -> None:
        result["reset"] = _reset_peak()
        result["rss_before_kib"] = _status_kib("VmRSS")
        result["hwm_before_kib"] = _status_kib("VmHWM")
        result["start"] = time.perf_counter()

    def measure_end(received: int) -> None:
        result["seconds"] = time.perf_counter() - result.pop("start")
        result["received"] = received
        result["hwm_after_kib"] = _status_kib("VmHWM")
        result["growth_kib"] = result["hwm_after_kib"] - result["rss_before_kib"]

    if mode == "async":
        from cf.infrastructure.http_aio import HTTPAio

        async def main() -> None:
            async with HTTPAio.create_pool(4) as pool, pool.item() as client:
                await client.get(small)  # the engine and its session exist before we measure
                measure_start()
                received = 0
                async with client.stream("GET", url) as response:
                    async for chunk in response.aiter_bytes():
                        received += len(chunk)
                measure_end(received)

        asyncio.run(main())
    else:
        from cf.infrastructure.http import HTTP

        with HTTP.create_pool(4) as pool, pool.item() as client:
            client.get(small)
            measure_start()
            received = 0
            with client.stream("GET", url) as response:
                for chunk in response.iter_bytes():
                    received += len(chunk)
            measure_end(received)
    _emit(result)


def main() -> None:
    job = json.loads(sys.argv[1])
    if job.get("cpu") is not None:
        os.sched_setaffinity(0, {job["cpu"]})
    kind = job.get("job", "variant")
    {"variant": run_variant, "outage": outage, "stream": stream_memory}[kind](job)


if __name__ == "__main__":
    main()
