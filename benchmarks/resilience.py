"""The circuit breaker in an outage, hedging against a slow tail, and OpenTelemetry's cost.

    .venv/bin/python benchmarks/resilience.py [--sections outage,tail,otel]
        [--calls 10000] [--in-flight 100] [--tail-calls 5000] [--otel-calls 3000]

A small asyncio server runs in a process of its own (pinned to another CPU when
there are two) and counts every request it receives:

- outage: 10,000 calls at 100 in flight against an origin that answers 503 to
  everything, with the circuit breaker off and on (`circuit_breaker=True`,
  default retries): attempts that reached the server, and the median time a
  call takes to fail. Then recovery: the origin heals, and calls go on (the
  breaker on) until one succeeds: how long that took, and its share of the
  break.
- tail: a server whose latency is 5 ms for 98% of requests and 500 ms for 2%
  (a seeded draw per request): p50, p99 and p99.9 of 5,000 GETs at 16 in
  flight without hedging and with `Hedge(delay="p95")`, and the extra attempts
  hedging sent (target: p99 within 3x of p50 for at most 5% extra).
- otel: the cost of cf's OpenTelemetry spans and metrics per call, in one run
  and interleaved: no OpenTelemetry imported, the API imported with no SDK
  (cf does nothing), and an SDK with spans and metrics recorded in memory.

Prints markdown tables; nothing here is asserted (the smoke test only runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# The server ---------------------------------------------------------------------------


def _serve(port_out: Any, cpu: int | None) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    state = {"failing": False, "hits": 0, "tail": False}
    rng = random.Random(1234)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path.startswith("/control/"):
                    command = path.removeprefix("/control/")
                    if command == "stats":
                        body = json.dumps(state).encode()
                    else:
                        key, _, value = command.partition("=")
                        state[key] = value == "1"
                        if key == "reset":
                            state.update(failing=False, hits=0, tail=False)
                        body = b"ok"
                    status = b"200 OK"
                else:
                    state["hits"] += 1
                    if state["tail"]:
                        await asyncio.sleep(0.5 if rng.random() < 0.02 else 0.005)
                    status = b"503 Service Unavailable" if state["failing"] else b"200 OK"
                    body = b"ok"
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode()
                    + b"\r\nContent-Type: text/plain\r\n\r\n" + body
                )  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.send(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class Server:
    def __init__(self) -> None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.cpu = cpus[0] if len(cpus) >= 2 else None
        ours, theirs = multiprocessing.Pipe()
        self.process = multiprocessing.Process(target=_serve, args=(theirs, self.cpu), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{ours.recv()}"
        if self.cpu is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(cpus[1:]))

    def control(self, command: str) -> Any:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}/control/{command}", timeout=5) as response:
            data = response.read()
        return json.loads(data) if command == "stats" else data

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


# Outage ---------------------------------------------------------------------------------


async def _outage(url: str, calls: int, in_flight: int, breaker: bool) -> dict[str, Any]:
    from cf.infrastructure.http_aio import HTTPAio, HTTPAioException

    durations: list[float] = []
    pool = HTTPAio.create_pool(in_flight, circuit_breaker=breaker, backoff_base=0.01)
    queue = iter(range(calls))

    async def worker(client: HTTPAio) -> None:
        for _ in queue:
            started = time.perf_counter()
            try:
                await client.get(f"{url}/api")
            except HTTPAioException:
                pass
            durations.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with pool, pool.item() as client:
        await asyncio.gather(*(worker(client) for _ in range(in_flight)))
    return {
        "seconds": time.perf_counter() - started,
        "median": statistics.median(durations),
        "calls": len(durations),
    }


async def _recovery(server: Server, url: str) -> dict[str, Any]:
    from cf.infrastructure.http_aio import CircuitBreaker, HTTPAio, HTTPAioException

    breaker = CircuitBreaker()  # the defaults: a 5 s break
    async with HTTPAio.create(circuit_breaker=breaker, retries=0) as client:
        for _ in range(breaker.min_calls):
            try:
                await client.get(f"{url}/api")
            except HTTPAioException:
                pass
        server.control("failing=0")  # the origin heals
        healed = time.perf_counter()
        refused = 0
        while True:
            try:
                await client.get(f"{url}/api")
                break
            except HTTPAioException:
                refused += 1
                await asyncio.sleep(0.01)
    return {
        "seconds": time.perf_counter() - healed,
        "refused": refused,
        "break": breaker.break_duration,
    }


def outage(server: Server, calls: int, in_flight: int) -> None:
    rows = []
    for breaker in (False, True):
        server.control("reset=1")
        server.control("failing=1")
        result = asyncio.run(_outage(server.url, calls, in_flight, breaker))
        hits = server.control("stats")["hits"]
        rows.append((breaker, hits, result))
    print(f"## Outage: {calls:,} calls at {in_flight} in flight, every answer 503\n")
    print("| breaker | attempts at the server | attempts per call | median time to fail |")
    print("|---|---:|---:|---:|")
    for breaker, hits, result in rows:
        print(
            f"| {'on' if breaker else 'off'} | {hits:,} | {hits / result['calls']:.2f} | "
            f"{result['median'] * 1000:.1f} ms |"
        )
    off, on = rows[0][1], rows[1][1]
    print(f"\nWith the breaker, {on / off:.1%} of the attempts reached the origin.\n")
    server.control("reset=1")
    server.control("failing=1")
    recovery = asyncio.run(_recovery(server, server.url))
    print(
        f"Recovery: after the origin healed, the first call succeeded {recovery['seconds']:.2f} s"
        f" later (break {recovery['break']:g} s), {recovery['refused']} calls refused meanwhile.\n"
    )


# Tail -----------------------------------------------------------------------------------


async def _tail(url: str, calls: int, in_flight: int, hedge: bool) -> list[float]:
    from cf.infrastructure.http_aio import Hedge, HTTPAio

    latencies: list[float] = []
    options: dict[str, Any] = {"hedge": Hedge(delay="p95")} if hedge else {}
    pool = HTTPAio.create_pool(in_flight * 2, timeout=5.0, **options)
    queue = iter(range(calls))

    async def worker(client: HTTPAio) -> None:
        for _ in queue:
            started = time.perf_counter()
            await client.get(f"{url}/api")
            latencies.append(time.perf_counter() - started)

    async with pool, pool.item() as client:
        for _ in range(100):  # warm up: connections, and the origin's latency known
            await client.get(f"{url}/api")
        await asyncio.gather(*(worker(client) for _ in range(in_flight)))
    return latencies


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def tail(server: Server, calls: int, in_flight: int) -> None:
    print(f"## Tail: {calls:,} GETs at {in_flight} in flight, 5 ms (98%) or 500 ms (2%)\n")
    print("| hedging | p50 | p99 | p99.9 | p99/p50 | attempts per call |")
    print("|---|---:|---:|---:|---:|---:|")
    for hedge in (False, True):
        server.control("reset=1")
        server.control("tail=1")
        latencies = asyncio.run(_tail(server.url, calls, in_flight, hedge))
        hits = server.control("stats")["hits"] - 100
        p50, p99, p999 = (_quantile(latencies, q) for q in (0.5, 0.99, 0.999))
        label = 'Hedge(delay="p95")' if hedge else "off"
        print(
            f"| {label} | {p50 * 1000:.1f} ms | {p99 * 1000:.1f} ms | {p999 * 1000:.1f} ms | "
            f"{p99 / p50:.1f}x | {hits / calls:.3f} |"
        )
    print()


# OpenTelemetry --------------------------------------------------------------------------


def _otel_job(args: tuple[str, str, int, int]) -> float:
    """Requests per second of one variant, in a fresh interpreter (no state shared)."""
    url, variant, calls, rounds = args
    if variant != "none":
        import opentelemetry.metrics  # noqa: F401
    if variant == "sdk":
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        provider = TracerProvider()
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    from cf.infrastructure.http_aio import HTTPAio

    async def main() -> float:
        async with HTTPAio.create() as client:
            for _ in range(200):
                await client.get(f"{url}/api")
            started = time.perf_counter()
            for _ in range(calls):
                await client.get(f"{url}/api")
                if variant == "sdk":
                    exporter.clear()
            return calls / (time.perf_counter() - started)

    return asyncio.run(main())


def otel(server: Server, calls: int, rounds: int) -> None:
    server.control("reset=1")
    variants = ["none", "api", "sdk"]
    results: dict[str, list[float]] = {v: [] for v in variants}
    context = multiprocessing.get_context("spawn")
    with context.Pool(1, maxtasksperchild=1) as workers:  # a fresh interpreter each run
        for index in range(rounds):
            order = variants[index % 3 :] + variants[: index % 3]
            for variant in order:
                results[variant].append(
                    workers.apply(_otel_job, ((server.url, variant, calls, rounds),))
                )
    base = statistics.median(results["none"])
    print(f"## OpenTelemetry: the cost per call ({calls:,} sequential calls, {rounds} rounds)\n")
    print("| OpenTelemetry | median req/s | per call | ratio |")
    print("|---|---:|---:|---:|")
    labels = {
        "none": "not imported",
        "api": "API imported, no SDK",
        "sdk": "SDK: spans and metrics in memory",
    }
    for variant in variants:
        rate = statistics.median(results[variant])
        print(f"| {labels[variant]} | {rate:,.0f} | {1e6 / rate:.0f} µs | {rate / base:.2f}x |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", default="outage,tail,otel")
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--in-flight", type=int, default=100)
    parser.add_argument("--tail-calls", type=int, default=5_000)
    parser.add_argument("--tail-in-flight", type=int, default=16)
    parser.add_argument("--otel-calls", type=int, default=3_000)
    parser.add_argument("--otel-rounds", type=int, default=5)
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    server = Server()
    try:
        print(f"Server: asyncio at {server.url} (CPU {server.cpu})\n")
        if "outage" in sections:
            outage(server, args.calls, args.in_flight)
        if "tail" in sections:
            tail(server, args.tail_calls, args.tail_in_flight)
        if "otel" in sections:
            otel(server, args.otel_calls, args.otel_rounds)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
