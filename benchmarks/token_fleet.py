"""Token requests per expiry window for a fleet of processes: with Redis, Redis killed, none.

    .venv/bin/python benchmarks/token_fleet.py [--processes 100] [--tasks 1]
        [--mode async|sync|both] [--seconds 6] [--scenarios redis,killed,memory]

Starts the tests' oauthlib token endpoint and protected API (in this process)
and a real redis-server (`tests/servers/redis.py`, Debian's binary) on
loopback, then for each scenario starts a fleet of processes (forked from a
clean server process), each with one OAuth client and `--tasks` tasks (async)
or threads (sync) calling the API every `--pause` seconds for `--seconds`.
Tokens live `--lifetime` seconds, so every process renews at the same moments
(half the lifetime: the refresh margin's cap).

- `redis`: every process uses `AsyncRedisTokenStore` / `RedisTokenStore` on one Redis.
- `killed`: the same, Redis SIGKILLed a third of the way in, back (empty) at two thirds.
- `memory`: every process has its own in-memory store (what cf does without Redis).

Prints a markdown table: calls made and failed, the processes whose store fell
back to fetching on its own (Redis failed or answered later than
`--store-timeout`), token requests, and the token requests of each renewal
(counted by the token endpoint: those within a quarter of the lifetime of a
renewal's first request).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import multiprocessing
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers._threaded import ServerThread, uvicorn_serve  # noqa: E402
from tests.servers.oauth import SERVER_THREAD_NAME, OAuthApp, OAuthServer  # noqa: E402
from tests.servers.redis import RedisServer, find_redis_server  # noqa: E402

SECRET = "fleet-benchmark-secret-0123456789"


@dataclass(frozen=True)
class Plan:
    mode: str
    store: str  # "redis" or "memory"
    token_url: str
    api_url: str
    redis_url: str
    tasks: int
    seconds: float
    pause: float
    store_timeout: float


def _bind(store: Any, token_url: str) -> None:
    """What the OAuth client will do at creation once it binds its store itself."""
    from cf._oauth import OAuthConfig

    config = OAuthConfig.create(client_id="id", client_secret=SECRET, authorize_url=token_url)
    store.bind(config.store_key, client_secret=SECRET, request_timeout=5.0)


async def _async_worker(plan: Plan, go: Any, results: Any) -> tuple[int, int]:
    from cf._async._redis_store import AsyncRedisTokenStore
    from cf.infrastructure.http_aio import AsyncInMemoryTokenStore, OAuthHTTPAio

    store: Any = AsyncInMemoryTokenStore()
    if plan.store == "redis":
        store = AsyncRedisTokenStore(plan.redis_url, timeout=plan.store_timeout)
        _bind(store, plan.token_url)
    client = OAuthHTTPAio.create(
        client_id="id",
        client_secret=SECRET,
        authorize_url=plan.token_url,
        token_store=store,
        timeout=10.0,
    )
    calls = failed = 0
    results.put("ready")
    go.wait()
    end = time.monotonic() + plan.seconds

    async def loop() -> None:
        nonlocal calls, failed
        while time.monotonic() < end:
            calls += 1
            try:
                if (await client.get(plan.api_url)).status_code != 200:
                    failed += 1
            except Exception:
                failed += 1
            await asyncio.sleep(plan.pause)

    await asyncio.gather(*(loop() for _ in range(plan.tasks)))
    await client.aclose()
    if plan.store == "redis":
        await store.aclose()
    return calls, failed


def _sync_worker(plan: Plan, go: Any, results: Any) -> tuple[int, int]:
    from cf._sync._redis_store import RedisTokenStore
    from cf.infrastructure.http import InMemoryTokenStore, OAuthHTTP

    store: Any = InMemoryTokenStore()
    if plan.store == "redis":
        store = RedisTokenStore(plan.redis_url, timeout=plan.store_timeout)
        _bind(store, plan.token_url)
    client = OAuthHTTP.create(
        client_id="id",
        client_secret=SECRET,
        authorize_url=plan.token_url,
        token_store=store,
        timeout=10.0,
    )
    counts = [0, 0]
    results.put("ready")
    go.wait()
    end = time.monotonic() + plan.seconds

    def loop() -> tuple[int, int]:
        calls = failed = 0
        while time.monotonic() < end:
            calls += 1
            try:
                if client.get(plan.api_url).status_code != 200:
                    failed += 1
            except Exception:
                failed += 1
            time.sleep(plan.pause)
        return calls, failed

    with ThreadPoolExecutor(plan.tasks) as pool:
        for calls, failed in pool.map(lambda _: loop(), range(plan.tasks)):
            counts[0] += calls
            counts[1] += failed
    client.close()
    if plan.store == "redis":
        store.close()
    return counts[0], counts[1]


class _FellBack(logging.Handler):
    """Counts the store's "failed ... each process fetches its own token" WARNINGs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "fetches its own token" in record.getMessage()


def worker(plan: Plan, go: Any, results: Any) -> None:
    fell_back = _FellBack()
    for name in ("cf.infrastructure.http_aio", "cf.infrastructure.http"):
        logging.getLogger(name).addHandler(fell_back)
        logging.getLogger(name).propagate = False  # counted, not printed
    if plan.mode == "async":
        calls, failed = asyncio.run(_async_worker(plan, go, results))
    else:
        calls, failed = _sync_worker(plan, go, results)
    results.put((calls, failed, fell_back.count > 0))


def run_fleet(
    ctx: Any, plan: Plan, processes: int, redis: RedisServer | None
) -> tuple[int, int, int]:
    """Start the fleet, let it go, kill/restart Redis if asked; (calls, failed, fell back)."""
    results = ctx.Queue()
    go = ctx.Event()
    fleet = [ctx.Process(target=worker, args=(plan, go, results)) for _ in range(processes)]
    for process in fleet:
        process.start()
    for _ in fleet:
        results.get(timeout=300)
    go.set()
    if redis is not None:
        time.sleep(plan.seconds / 3)
        redis.kill()
        time.sleep(plan.seconds / 3)
        redis.start()
    outcomes = [results.get(timeout=plan.seconds + 120) for _ in fleet]
    for process in fleet:
        process.join(30)
    calls, failed, fell_back = (sum(column) for column in zip(*outcomes, strict=True))
    return calls, failed, fell_back


def per_window(times: list[float], window: float) -> list[int]:
    """Token requests per renewal: a renewal gathers the requests within `window` / 2 of its first.

    The fleet renews every `window` s; grouping from each renewal's first
    request (not on fixed ticks) keeps a late renewal from spilling into the next.
    """
    counts: list[int] = []
    start = -math.inf
    for t in sorted(times):
        if t - start < window / 2:
            counts[-1] += 1
        else:
            counts.append(1)
            start = t
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=1, help="tasks (async) or threads (sync)")
    parser.add_argument("--mode", choices=["async", "sync", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--lifetime", type=int, default=2, help="token lifetime, s")
    parser.add_argument("--pause", type=float, default=0.5, help="between a task's calls, s")
    parser.add_argument("--scenarios", default="redis,killed,memory")
    parser.add_argument("--store-timeout", type=float, default=0.5, help="the store's timeout=")
    args = parser.parse_args(argv)
    scenarios = args.scenarios.split(",")
    modes = ["async", "sync"] if args.mode == "both" else [args.mode]

    binary = find_redis_server()
    if binary is None and set(scenarios) & {"redis", "killed"}:
        print("redis-server is not installed: apt-get install redis-server", file=sys.stderr)
        return 1
    redis = RedisServer(binary) if binary else None
    thread = ServerThread(SERVER_THREAD_NAME)
    oauth = OAuthServer()
    thread.start(uvicorn_serve(OAuthApp(oauth, thread.stopping)))
    oauth.url = thread.url
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(
        ["__main__", "cf.infrastructure.http_aio", "cf.infrastructure.http", "redis.asyncio"]
        + ["cf._async._redis_store", "cf._sync._redis_store", "oauthlib.oauth2", "aiohttp"]
        + ["cryptography.hazmat.primitives.ciphers.aead", "cf._transports._aiohttp"]
    )
    window = args.lifetime / 2
    print(
        f"{args.processes} processes x {args.tasks} tasks (async) or threads (sync), tokens of "
        f"{args.lifetime} s (renewed every {window:g} s), {args.seconds:g} s of calls "
        f"every {args.pause:g} s per task; redis-server {binary or 'absent'}\n"
    )
    print(
        "| mode | store | calls | failed | processes that fell back | token requests "
        "| per renewal | max per renewal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    try:
        for mode in modes:
            for scenario in scenarios:
                oauth.reset()
                oauth.client_secret = SECRET
                oauth.expires_in = args.lifetime
                if redis is not None:
                    redis.stop()
                    redis.start()
                plan = Plan(
                    mode,
                    "memory" if scenario == "memory" else "redis",
                    oauth.token_url,
                    oauth.api_url,
                    redis.url if redis is not None else "",
                    args.tasks,
                    args.seconds,
                    args.pause,
                    args.store_timeout,
                )
                killer = redis if scenario == "killed" else None
                calls, failed, fell_back = run_fleet(ctx, plan, args.processes, killer)
                counts = per_window([r.time for r in oauth.token_request_log], window)
                label = {
                    "redis": "Redis",
                    "killed": "Redis, killed at 1/3, back at 2/3",
                    "memory": "in-memory (no Redis)",
                }[scenario]
                shown = " ".join(map(str, counts))
                print(
                    f"| {mode} | {label} | {calls} | {failed} | {fell_back} "
                    f"| {oauth.token_requests} | {shown} | {max(counts, default=0)} |",
                    flush=True,
                )
    finally:
        thread.stop()
        if redis is not None:
            redis.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
