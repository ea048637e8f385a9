"""Instructions per request in the client process, counted by valgrind's callgrind.

    .venv/bin/python benchmarks/instructions.py [--variants A,B,...] [--concurrency N]
                                                [--requests N1,N2] [--server auto|nginx|python]

Requests per second on a shared 2-core machine move by 20-60% from run to run;
instruction counts do not (the same count to within 0.5% run after run, whatever
else the machine does). Each variant (the names of `benchmarks/_clients.py`) runs
twice in a fresh interpreter under callgrind, warmed up the same way, then timing
N1 and N2 requests; (count2 - count1) / (N2 - N1) is what one request costs the
client: Python, aiohttp, httpx, asyncio, the C libraries. Not counted: the time
the kernel spends in system calls, and memory stalls, so this is a measure of the
work a client does, not a substitute for the throughput table of `run.py`.
The server (nginx when installed) runs natively, outside callgrind.

Needs valgrind (`apt-get install valgrind`). Two variants run at a time (one per
core); with the defaults a run takes about two minutes.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _server import start_server

_CLIENTS = Path(__file__).resolve().parent / "_clients.py"
_COLLECTED = re.compile(r"Collected : (\d+)")


def count(variant: str, url: str, concurrency: int, requests: int, warmup: int) -> int:
    """The instructions callgrind counts for one run of `variant` (start-up included)."""
    cell = {
        "url": url,
        "length": 2,
        "concurrency": concurrency,
        "requests": requests,
        "warmup": warmup,
    }
    job = {"variant": variant, "cells": [cell], "max_seconds": 3600, "cpu": None}
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(_CLIENTS),
            json.dumps(job),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{variant} under callgrind failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["requests"] != requests or result["errors"]:
        raise RuntimeError(f"{variant}: {result}")
    return int(found.group(1))


def per_request(variant: str, url: str, concurrency: int, n1: int, n2: int) -> float:
    warmup = max(200, concurrency)
    first = count(variant, url, concurrency, n1, warmup)
    second = count(variant, url, concurrency, n2, warmup)
    return (second - first) / (n2 - n1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="httpaio,aiohttp_httpx_objects,aiohttp")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", default="500,1500", help="N1,N2 (N2 > N1)")
    parser.add_argument("--server", choices=("auto", "nginx", "python"), default="auto")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    n1, n2 = (int(n) for n in args.requests.split(","))
    variants = args.variants.split(",")
    server = start_server(args.server)
    try:
        print(f"Server: {server.describe()}; {args.concurrency} in flight; N = {n1}, {n2}")
        url = server.url + "/small"
        with ThreadPoolExecutor(2) as pool:
            found = pool.map(lambda v: per_request(v, url, args.concurrency, n1, n2), variants)
            costs = dict(zip(variants, found, strict=True))
    finally:
        server.stop()
    base = costs.get("aiohttp")
    print("| client | instructions per request | raw aiohttp / this |")
    print("|---|---:|---:|")
    for variant, cost in costs.items():
        ratio = f"{base / cost:.2f}" if base else "-"
        print(f"| {variant} | {cost:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
