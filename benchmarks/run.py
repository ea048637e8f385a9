"""Side-by-side benchmarks of cf's clients and the clients people use instead.

    .venv/bin/python benchmarks/run.py [--quick] [--requests N] [--rounds R]

Starts its own server on 127.0.0.1 (nginx when installed, else a python server
in its own process), pins it to one CPU and the clients to another, runs every
variant in a fresh process, interleaved (A B C ... A B C ...) for R rounds, and
prints medians, min-max and ratios as markdown tables. Then, unless --quick:
retry amplification in a 503 outage, import times, and memory while streaming
1 GiB. `--profile FILE` also profiles the HTTPAio pool at 64 in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from importlib import metadata
from importlib.util import find_spec
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _server import GIB, LARGE, SMALL, Server, start_server  # noqa: E402

CLIENTS = str(HERE / "_clients.py")

# name -> (label, mode); the table lists them in this order.
VARIANTS: dict[str, tuple[str, str]] = {
    "httpaio": ("HTTPAio pool (default engine)", "async"),
    "httpaio_httpx": ("HTTPAio pool on httpx.AsyncHTTPTransport", "async"),
    "httpx": ("httpx.AsyncClient (default transport)", "async"),
    "httpx_cf_aiohttp": ("httpx.AsyncClient over cf AiohttpTransport", "async"),
    "httpx_aiohttp": ("httpx.AsyncClient over httpx-aiohttp", "async"),
    "aiohttp": ("aiohttp.ClientSession", "async"),
    "aiohttp_httpx_objects": ("aiohttp.ClientSession + httpx.Request/Response", "async"),
    "http": ("HTTP pool (sync)", "sync"),
    "httpx_sync": ("httpx.Client (sync)", "sync"),
    "requests": ("requests.Session (sync)", "sync"),
}
# variant -> [(baseline, target ratio, what the ratio says)]
RATIOS: dict[str, list[tuple[str, float, str]]] = {
    "httpaio": [
        ("aiohttp", 0.5, "HTTPAio pool / raw aiohttp (target >= 0.5, aim 0.8)"),
        ("httpx_cf_aiohttp", 0.95, "HTTPAio pool / httpx over the same engine (wrapper cost)"),
        (
            "aiohttp_httpx_objects",
            0.85,
            "HTTPAio pool / raw aiohttp + httpx's Request and Response (cf's own cost)",
        ),
    ],
    "aiohttp_httpx_objects": [
        ("aiohttp", 0.5, "raw aiohttp + httpx's Request and Response / raw aiohttp"),
    ],
    "httpaio_httpx": [
        ("httpx", 0.95, "HTTPAio on httpx transport / raw httpx.AsyncClient (wrapper cost)"),
    ],
    "http": [("httpx_sync", 0.95, "HTTP / raw httpx.Client (target >= 0.95)")],
}
# variant -> the module it needs beyond cf's own dependencies (skipped when missing)
NEEDS = {"httpx_aiohttp": "httpx_aiohttp", "requests": "requests"}
SYNC_CONCURRENCY = (1, 16)  # sync variants: 1 in flight, and 16 threads sharing one client
BODIES = {"small": ("/small", len(SMALL), "2 B"), "large": ("/large", LARGE, "1 MiB")}


# Machine ------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for package in ("httpx", "httpcore", "aiohttp", "httpx-aiohttp", "requests", "cf-http"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        **versions,
    }


def cpus() -> tuple[int | None, int | None]:
    """(server CPU, client CPU), or (None, None) when there is only one."""
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(available) < 2:
        return None, None
    return available[0], available[1]


# Running jobs -------------------------------------------------------------------------


def run_job(job: dict[str, Any], timeout: float = 600) -> list[dict[str, Any]]:
    """Run one job in a fresh interpreter; its JSON lines."""
    done = subprocess.run(
        [sys.executable, CLIENTS, json.dumps(job)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"job {job.get('variant', job.get('job'))} failed:\n{done.stderr}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def rotated(items: Sequence[str], by: int) -> list[str]:
    by %= max(len(items), 1)
    return [*items[by:], *items[:by]]


def cells_for(
    args: argparse.Namespace, server: Server
) -> list[tuple[str, int, list[str], dict[str, Any]]]:
    """(body, concurrency, variants, cell) for every table row group."""
    out = []
    for body in args.bodies:
        path, length, _ = BODIES[body]
        requests = args.requests if body == "small" else max(args.requests // 10, 1)
        warmup = max(min(requests // 10, 200), 1)
        for concurrency in args.concurrency:
            names = [
                v
                for v in args.variants
                if VARIANTS[v][1] == "async" or concurrency in SYNC_CONCURRENCY
            ]
            cell = {
                "url": server.url + path,
                "length": length,
                "concurrency": concurrency,
                "requests": requests,
                "warmup": warmup,
            }
            out.append((body, concurrency, names, cell))
    return out


def run_table(args: argparse.Namespace, server: Server, client_cpu: int | None) -> dict[Any, Any]:
    """Measure every (body, concurrency, variant); results[(body, conc)][variant] = [runs]."""
    results: dict[tuple[str, int], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    groups = cells_for(args, server)
    base = {"max_seconds": args.max_seconds, "cpu": client_cpu}
    if args.quick:  # one process per variant, all its cells: keeps the smoke test short
        for variant in args.variants:
            mine = [(b, c, cell) for b, c, names, cell in groups if variant in names]
            if not mine:
                continue
            lines = run_job({**base, "variant": variant, "cells": [cell for *_, cell in mine]})
            for (body, concurrency, _), line in zip(mine, lines, strict=True):
                results[body, concurrency][variant].append(line)
        return results
    total = sum(len(names) for *_, names, _ in groups) * args.rounds
    done = 0
    started = time.monotonic()
    for body, concurrency, names, cell in groups:
        for round_ in range(args.rounds):
            for variant in rotated(names, round_):
                (line,) = run_job({**base, "variant": variant, "cells": [cell]})
                results[body, concurrency][variant].append(line)
                done += 1
            elapsed = time.monotonic() - started
            print(
                f"# {done}/{total} runs, {elapsed:.0f} s (body {body}, {concurrency} in flight)",
                file=sys.stderr,
                flush=True,
            )
    return results


# Tables ---------------------------------------------------------------------------------


def median_rps(runs: list[dict[str, Any]]) -> float:
    return statistics.median(r["rps"] for r in runs)


def fmt(value: float) -> str:
    return f"{value:,.0f}"


def paired(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[float]:
    """Per-round ratios (run k of A against run k of B, measured next to each other)."""
    return [x["rps"] / y["rps"] for x, y in zip(a, b, strict=False) if y["rps"] > 0]


def table(results: dict[Any, Any], variants: Iterable[str]) -> list[str]:
    lines = [
        "| body | in flight | client | median req/s | min-max | spread | errors | ratio |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for (body, concurrency), by_variant in results.items():
        for variant in variants:
            runs = by_variant.get(variant)
            if not runs:
                continue
            rps = [r["rps"] for r in runs]
            med = statistics.median(rps)
            spread = (max(rps) - min(rps)) / med if med else 0.0
            errors = sum(r["errors"] for r in runs)
            ratios = []
            for baseline, _, _ in RATIOS.get(variant, []):
                if by_variant.get(baseline):
                    base = median_rps(by_variant[baseline])
                    if base > 0:
                        ratios.append(f"{med / base:.2f}x {baseline}")
            threads = " (threads)" if VARIANTS[variant][1] == "sync" and concurrency > 1 else ""
            lines.append(
                f"| {BODIES[body][2]} | {concurrency}{threads} | {VARIANTS[variant][0]} "
                f"| {fmt(med)} | {fmt(min(rps))}-{fmt(max(rps))} | {spread:.0%} | {errors} "
                f"| {'; '.join(ratios)} |"
            )
    return lines


def ratio_table(results: dict[Any, Any]) -> list[str]:
    lines = [
        "| ratio | body | in flight | median/median | paired min-median-max | target | met |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for variant, checks in RATIOS.items():
        for baseline, target, label in checks:
            for (body, concurrency), by_variant in results.items():
                a, b = by_variant.get(variant), by_variant.get(baseline)
                if not a or not b or median_rps(b) <= 0:
                    continue
                ratio = median_rps(a) / median_rps(b)
                pairs = paired(a, b)
                span = (
                    f"{min(pairs):.2f}-{statistics.median(pairs):.2f}-{max(pairs):.2f}"
                    if pairs
                    else "-"
                )
                met = "yes" if ratio >= target else "NO"
                lines.append(
                    f"| {label} | {BODIES[body][2]} | {concurrency} | {ratio:.2f} | {span} "
                    f"| >= {target} | {met} |"
                )
    return lines


# Other sections ---------------------------------------------------------------------


def run_outage(args: argparse.Namespace, server_cpu: int | None, client_cpu: int | None) -> None:
    print("\n## Retry amplification: full 503 outage, default options\n")
    with start_server("python", cpu=server_cpu) as server:
        urllib.request.urlopen(server.url + "/reset").read()
        job = {
            "job": "outage",
            "url": server.url + "/503",
            "calls": args.outage_calls,
            "in_flight": 100,
            "cpu": client_cpu,
        }
        (line,) = run_job(job)
        seen = int(urllib.request.urlopen(server.url + "/count").read())
    calls = args.outage_calls
    per_call = seen / calls
    print(
        "| calls | in flight | attempts seen by server | attempts/call | client-side attempts "
        "| budget-exhausted errors | other errors | seconds | target | met |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    print(
        f"| {calls:,} | 100 | {seen:,} | {per_call:.3f} | {line['attempts']:,} "
        f"| {line['exhausted']:,} | {line['other'] + line['returned']} | {line['seconds']:.1f} "
        f"| <= 1.25 | {'yes' if per_call <= 1.25 else 'NO'} |"
    )


def run_import(args: argparse.Namespace, client_cpu: int | None) -> None:
    print("\n## Import time (fresh interpreter each, wall time of the import statement)\n")
    # Compare like with like: httpx in site-packages was byte-compiled when pip
    # installed it, and so is cf installed from a wheel. An editable checkout run
    # with PYTHONDONTWRITEBYTECODE=1 would otherwise compile cf's source every time.
    cf_dir = Path(__file__).resolve().parent.parent / "cf"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(cf_dir)], check=True)
    print("(cf byte-compiled first, as a wheel install is)\n")
    modules = ["httpx", "cf.infrastructure.http_aio", "cf.infrastructure.http", "aiohttp"]
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    samples: dict[str, list[float]] = defaultdict(list)
    pin = (lambda: os.sched_setaffinity(0, {client_cpu})) if client_cpu is not None else None
    for _ in range(args.import_runs):
        for module in modules:
            out = subprocess.run(
                [sys.executable, "-c", code.format(module)],
                capture_output=True,
                text=True,
                check=True,
                preexec_fn=pin,
            ).stdout
            samples[module].append(float(out))
    base = statistics.median(samples["httpx"])
    print("| module | median ms | min-max ms | ratio to httpx | target | met |")
    print("|---|---:|---:|---:|---:|---|")
    for module in modules:
        values = samples[module]
        med = statistics.median(values)
        target = "<= 1.2" if module.startswith("cf.") else ""
        met = ("yes" if med / base <= 1.2 else "NO") if target else ""
        print(
            f"| {module} | {med * 1000:.0f} | {min(values) * 1000:.0f}-{max(values) * 1000:.0f} "
            f"| {med / base:.2f} | {target} | {met} |"
        )


def run_stream(args: argparse.Namespace, server: Server, client_cpu: int | None) -> None:
    print(
        "\n## Streaming 1 GiB with stream() + aiter_bytes() (sync: iter_bytes()), "
        f"{server.kind} server\n"
    )
    print(
        "| client | received | seconds | MiB/s | RSS before MiB | peak RSS growth MiB "
        "| target | met |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    # Once untimed: nginx serves a sparse file, whose first read fills the page cache.
    with urllib.request.urlopen(server.url + "/gib") as response:
        while response.read(1 << 20):
            pass
    for mode, label in (("async", "HTTPAio (default engine)"), ("sync", "HTTP")):
        job = {
            "job": "stream",
            "url": server.url + "/gib",
            "length": GIB,
            "mode": mode,
            "cpu": client_cpu,
        }
        (line,) = run_job(job)
        growth = line["growth_kib"] / 1024
        ok = line["received"] == GIB and growth < 32
        note = "" if line["reset"] else " (peak not resettable: growth over whole run)"
        print(
            f"| {label} | {line['received']:,} | {line['seconds']:.1f} "
            f"| {line['received'] / 2**20 / line['seconds']:,.0f} "
            f"| {line['rss_before_kib'] / 1024:.1f} | {growth:.1f}{note} | < 32 "
            f"| {'yes' if ok else 'NO'} |"
        )


def _package(filename: str) -> str:
    for marker, name in (
        ("/cf/_transports/", "cf transport"),
        ("/cf/", "cf wrapper"),
        ("/httpx_aiohttp/", "httpx-aiohttp"),
        ("/httpx/", "httpx"),
        ("/httpcore/", "httpcore"),
        ("/aiohttp/", "aiohttp"),
        ("/yarl/", "yarl"),
        ("/multidict/", "multidict"),
        ("/asyncio/", "asyncio"),
        ("/benchmarks/", "benchmark"),
    ):
        if marker in filename:
            return name
    if filename.startswith(("~", "<")):
        return "builtins"
    return "other stdlib"


def run_profile(args: argparse.Namespace, server: Server, client_cpu: int | None) -> None:
    requests = args.profile_requests
    label = VARIANTS[args.profile_variant][0]
    print(f"\n## Profile: {label}, 64 in flight, 2-byte body, {requests:,} requests\n")
    cell = {
        "url": server.url + "/small",
        "length": len(SMALL),
        "concurrency": 64,
        "requests": requests,
        "warmup": 500,
    }
    job = {
        "variant": args.profile_variant,
        "cells": [cell],
        "max_seconds": 120,
        "cpu": client_cpu,
        "profile": args.profile,
    }
    (line,) = run_job(job)
    done = line["requests"]
    print(
        f"{done:,} requests in {line['seconds']:.2f} s under cProfile ({line['rps']:,.0f}/s); "
        f"stats in {args.profile}\n"
    )
    stats = pstats.Stats(args.profile)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    by_package: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, tottime, _, _) in raw.items():
        by_package[_package(filename)] += tottime
    total = sum(by_package.values())
    print("| package | own time µs/request | share |")
    print("|---|---:|---:|")
    for name, seconds in sorted(by_package.items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {seconds / done * 1e6:.1f} | {seconds / total:.0%} |")
    print(f"| total | {total / done * 1e6:.1f} | |")
    print("\nTop functions by own time:\n")
    print("| own µs/req | cumulative µs/req | calls/req | function |")
    print("|---:|---:|---:|---|")
    rows = sorted(raw.items(), key=lambda kv: -kv[1][2])[: args.profile_top]
    for (filename, lineno, func), (_, ncalls, tottime, cumtime, _) in rows:
        short = filename
        for marker in ("site-packages/", "/work/main/", "lib/python3"):
            if marker in short:
                short = short.split(marker, 1)[1]
        print(
            f"| {tottime / done * 1e6:.2f} | {cumtime / done * 1e6:.1f} | {ncalls / done:.1f} "
            f"| {short}:{lineno} {func} |"
        )


# Main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small counts, 1 round, 1 and 16 in flight, table only"
    )
    parser.add_argument(
        "--requests",
        type=int,
        help="requests per run, 2-byte body (1 MiB body: a tenth); default 5000, quick 200",
    )
    parser.add_argument("--rounds", type=int, help="runs per variant (default 5, quick 1)")
    parser.add_argument(
        "--max-seconds", type=float, help="a run stops after this long (default 3, quick 1)"
    )
    parser.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="comma-separated subset of: " + ", ".join(VARIANTS),
    )
    parser.add_argument("--concurrency", help="comma-separated (default 1,16,64; quick 1,16)")
    parser.add_argument("--bodies", default="small,large", help="small, large or both")
    parser.add_argument(
        "--sections",
        help="comma-separated: table, outage, import, stream (default all; quick: table)",
    )
    parser.add_argument("--outage-calls", type=int, default=10_000)
    parser.add_argument("--import-runs", type=int, default=9)
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="also profile a variant at 64 in flight (cProfile) into FILE",
    )
    parser.add_argument("--profile-variant", default="httpaio", choices=list(VARIANTS))
    parser.add_argument("--profile-requests", type=int, default=20_000)
    parser.add_argument("--profile-top", type=int, default=30)
    args = parser.parse_args(argv)
    args.requests = args.requests or (200 if args.quick else 5000)
    args.rounds = args.rounds or (1 if args.quick else 5)
    args.max_seconds = args.max_seconds or (1.0 if args.quick else 3.0)
    args.concurrency = [
        int(c) for c in (args.concurrency or ("1,16" if args.quick else "1,16,64")).split(",")
    ]
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    missing = [v for v in args.variants if v in NEEDS and find_spec(NEEDS[v]) is None]
    for variant in missing:
        print(f"# skipping {variant}: {NEEDS[variant]} is not installed", file=sys.stderr)
    args.variants = [v for v in args.variants if v not in missing]
    args.bodies = [b.strip() for b in args.bodies.split(",") if b.strip()]
    if set(args.bodies) - set(BODIES):
        parser.error("--bodies takes small, large")
    args.sections = set(
        (args.sections or ("table" if args.quick else "table,outage,import,stream")).split(",")
    )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server_cpu, client_cpu = cpus()
    info = machine()
    print("# cf benchmarks\n")
    print("Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    with start_server(args.server, cpu=server_cpu) as server:
        print(
            f"Server: {server.describe()}; clients "
            + (f"pinned to CPU {client_cpu}" if client_cpu is not None else "not pinned")
        )
        print(f"Load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        if "table" in args.sections:
            print(
                f"\n## Requests per second ({args.rounds} rounds, interleaved, fresh process "
                f"per run; {args.requests:,} requests per run with the 2-byte body, "
                f"{max(args.requests // 10, 1):,} with 1 MiB; a run stops after "
                f"{args.max_seconds:g} s)\n"
            )
            results = run_table(args, server, client_cpu)
            print("\n".join(table(results, VARIANTS)))
            print("\n### Ratios (medians; paired = the runs of one round, side by side)\n")
            print("\n".join(ratio_table(results)))
        if "stream" in args.sections:
            run_stream(args, server, client_cpu)
        if args.profile:
            run_profile(args, server, client_cpu)
    if "outage" in args.sections:
        run_outage(args, server_cpu, client_cpu)
    if "import" in args.sections:
        run_import(args, client_cpu)
    print(f"\nLoad average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
