"""The benchmark script still runs: tiny counts, the python server, no timings asserted."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"

pytestmark = pytest.mark.timeout(120)


def _run(script: Path, *args: str) -> str:
    """Run a benchmark script; its output (it must succeed)."""
    done = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_benchmark_quick_run_prints_the_table() -> None:
    out = _run(
        RUN,
        "--quick",
        "--server=python",
        "--requests=20",
        "--rounds=1",
        "--sections=table,outage,import",
        "--outage-calls=200",
        "--import-runs=1",
    )
    assert "Server: python at http://127.0.0.1:" in out
    assert "| body | in flight | client | median req/s |" in out
    for label in (
        "HTTPAio pool (default engine)",
        "HTTPAio pool on httpx.AsyncHTTPTransport",
        "httpx.AsyncClient (default transport)",
        "aiohttp.ClientSession",
        "HTTP pool (sync)",
        "httpx.Client (sync)",
        "requests.Session (sync)",
    ):
        assert f"| {label} |" in out, label
    if importlib.util.find_spec("httpx_aiohttp") is not None:
        assert "| httpx.AsyncClient over httpx-aiohttp |" in out
    assert "### Ratios" in out
    assert "## Retry amplification" in out
    assert "## Import time" in out


def test_resilience_benchmark_runs() -> None:
    script = RUN.parent / "resilience.py"
    out = _run(
        script,
        "--calls=300",
        "--in-flight=20",
        "--tail-calls=200",
        "--otel-calls=50",
        "--otel-rounds=1",
    )
    for heading in ("## Outage", "Recovery:", "## Tail", "## OpenTelemetry"):
        assert heading in out, heading


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instruction_count_runs() -> None:
    out = _run(
        RUN.parent / "instructions.py",
        "--server=python",
        "--variants=aiohttp",
        "--concurrency=2",
        "--requests=10,30",
    )
    assert "| client | instructions per request | raw aiohttp / this |" in out
    assert "| aiohttp |" in out
