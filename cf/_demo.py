"""`cf-http demo`: the library at work against an embedded server, in both modes.

Starts `cf._demo_server.DemoServer` on 127.0.0.1 and runs the same scenarios
with the async clients (tasks) and the sync clients (threads): a pool serving
concurrent calls, retries and their delays, Retry-After, a failure status as
an exception, OAuth2 tokens shared by concurrent callers, and the trace header
the server sees on each attempt. Only the public API is used; the report says
what was called, what the server saw and how long it took. Exit status 0 when
every scenario behaved as documented, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from cf._demo_server import DemoServer
from cf.infrastructure import http, http_aio
from cf.infrastructure.http_aio import (
    HTTPAioException,
    HTTPAioStatusError,
    RetryEvent,
)
from cf.infrastructure.tracer import TraceInfo

__all__ = ["run_demo"]

# Small backoff settings keep the walkthrough quick.
_FAST = {"backoff_base": 0.05, "backoff_max": 0.5}
_CALLS = 100
_POOL = 10


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One call as the client saw it."""

    status: int | None
    body: Any
    error: HTTPAioException | None
    seconds: float


class _Mode:
    """How one mode runs `n` calls concurrently through one pool."""

    name = ""
    client: Any = None
    oauth: Any = None
    concurrency = ""

    def calls(
        self, factory: Any, urls: Sequence[str], options: dict[str, Any], **call: Any
    ) -> list[_Outcome]:
        raise NotImplementedError


class _AsyncMode(_Mode):
    name = "async"
    client = http_aio.HTTPAio
    oauth = http_aio.OAuthHTTPAio
    concurrency = "tasks"

    def calls(
        self, factory: Any, urls: Sequence[str], options: dict[str, Any], **call: Any
    ) -> list[_Outcome]:
        async def run() -> list[_Outcome]:
            async with factory.create_pool(_POOL, **options) as pool:

                async def one(url: str) -> _Outcome:
                    started = time.monotonic()
                    async with pool.item() as client:
                        try:
                            response = await client.get(url, **call)
                        except HTTPAioException as exc:
                            return _Outcome(None, None, exc, time.monotonic() - started)
                    return _outcome(response, started)

                return list(await asyncio.gather(*(one(url) for url in urls)))

        return asyncio.run(run())


class _SyncMode(_Mode):
    name = "sync"
    client = http.HTTP
    oauth = http.OAuthHTTP
    concurrency = "threads"

    def calls(
        self, factory: Any, urls: Sequence[str], options: dict[str, Any], **call: Any
    ) -> list[_Outcome]:
        with factory.create_pool(_POOL, **options) as pool:

            def one(url: str) -> _Outcome:
                started = time.monotonic()
                with pool.item() as client:
                    try:
                        response = client.get(url, **call)
                    except HTTPAioException as exc:  # HTTPException is the same class
                        return _Outcome(None, None, exc, time.monotonic() - started)
                return _outcome(response, started)

            if len(urls) == 1:
                return [one(urls[0])]
            with ThreadPoolExecutor(max_workers=len(urls)) as executor:
                return list(executor.map(one, urls))


def _outcome(response: Any, started: float) -> _Outcome:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    return _Outcome(response.status_code, body, None, time.monotonic() - started)


class _Report:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.problems: list[str] = []

    def write(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def item(self, label: str, text: str) -> None:
        self.write(f"    {label:<9}{text}")

    def check(self, ok: bool, expected: str) -> None:
        if ok:
            self.item("ok", expected)
        else:
            self.item("UNEXPECTED", f"expected {expected}")
            self.problems.append(expected)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _path(server: DemoServer, url: str) -> str:
    return url[len(server.url) :]


# Scenarios ------------------------------------------------------------------------------------


def _pool(report: _Report, server: DemoServer, mode: _Mode) -> None:
    report.write(
        f"  Pool: {_POOL} connections serving {_CALLS} concurrent calls ({mode.concurrency})"
    )
    url = f"{server.url}/work?ms=20&tag={mode.name}-pool"
    server.reset()
    started = time.monotonic()
    outcomes = mode.calls(mode.client, [url] * _CALLS, {})
    took = time.monotonic() - started
    stats = server.stats()
    per_call = sorted(o.seconds for o in outcomes)
    report.item(
        "called",
        f"{_CALLS} x GET {_path(server, url)} through {mode.client.__name__}.create_pool({_POOL})",
    )
    report.item(
        "server",
        f"saw {server.hits(f'{mode.name}-pool')} requests over {stats['connections']} "
        f"connections, at most {stats['peak_in_flight']} in flight at once",
    )
    report.item(
        "timing",
        f"{_ms(took)} in all; each call takes 20 ms on the server, median "
        f"{_ms(statistics.median(per_call))} and slowest {_ms(per_call[-1])} here "
        "(queued for a free connection)",
    )
    report.check(
        all(o.status == 200 for o in outcomes) and 0 < stats["peak_in_flight"] <= _POOL,
        f"{_CALLS} answers 200, never more than {_POOL} requests in flight",
    )


def _retries(report: _Report, server: DemoServer, mode: _Mode) -> None:
    report.write("  Retries: a flaky endpoint, retried with exponential backoff and full jitter")
    tag = f"{mode.name}-retries"
    url = f"{server.url}/flaky/2?tag={tag}"
    events: list[RetryEvent] = []
    options = {"retries": 3, **_FAST, "on_retry": events.append}
    [outcome] = mode.calls(mode.client, [url], options)
    report.item(
        "called",
        f"GET {_path(server, url)} with retries=3, backoff_base=0.05 "
        "(the endpoint answers 503 twice, then 200)",
    )
    for event in events:
        report.item(
            "on_retry",
            f"attempt {event.attempt}/{event.max_attempts} failed (status {event.status}), "
            f"sleeping {_ms(event.delay)}",
        )
    seen = server.seen(tag)
    gaps = ", ".join(_ms(b.at - a.at) for a, b in zip(seen, seen[1:], strict=False))
    report.item("server", f"saw {len(seen)} attempts, {gaps} apart")
    report.item(
        "result", f"{outcome.status} {json.dumps(outcome.body)} after {_ms(outcome.seconds)}"
    )
    report.check(
        outcome.status == 200 and len(seen) == 3 and len(events) == 2,
        "200 on the third attempt, after 2 on_retry events",
    )


def _retry_after(report: _Report, server: DemoServer, mode: _Mode) -> None:
    report.write("  Retry-After: the server's delay replaces the computed backoff")
    tag = f"{mode.name}-retry-after"
    url = f"{server.url}/retry-after/1?tag={tag}"
    events: list[RetryEvent] = []
    options = {"retries": 2, **_FAST, "on_retry": events.append}
    [outcome] = mode.calls(mode.client, [url], options)
    report.item(
        "called",
        f"GET {_path(server, url)} with backoff_base=0.05 (the first answer is 503 with "
        "Retry-After: 1)",
    )
    for event in events:
        report.item(
            "on_retry",
            f"attempt {event.attempt}/{event.max_attempts} failed (status {event.status}), "
            f"sleeping {_ms(event.delay)}, as the server asked",
        )
    seen = server.seen(tag)
    gap = seen[1].at - seen[0].at if len(seen) > 1 else 0.0
    report.item("server", f"saw {len(seen)} attempts, {_ms(gap)} apart")
    report.item("result", f"{outcome.status} after {_ms(outcome.seconds)}")
    report.check(
        outcome.status == 200 and [e.delay for e in events] == [1.0] and gap >= 0.95,
        "one retry, 1 s after the 503",
    )


def _failure(report: _Report, server: DemoServer, mode: _Mode) -> None:
    report.write("  Failure status: raised as an exception once the retries are spent")
    tag = f"{mode.name}-failure"
    url = f"{server.url}/status/503?tag={tag}&api_key=hunter2"
    trace = TraceInfo.create_new()
    [outcome] = mode.calls(mode.client, [url], {"retries": 1, **_FAST}, trace=trace)
    report.item(
        "called", f"GET {_path(server, url)} with retries=1 and trace=TraceInfo.create_new()"
    )
    report.item("server", f"saw {server.hits(tag)} attempts, answered 503 to each")
    exc = outcome.error
    if exc is None:
        report.check(False, "an HTTPAioStatusError")
        return
    report.item("raised", f"{type(exc).__name__} (except HTTPAioException catches it, sync too)")
    for name in ("method", "url", "status", "attempts", "trace_id", "retry_budget_exhausted"):
        report.item("", f".{name} = {getattr(exc, name)!r}")
    report.item("", f"str(e) = {str(exc)!r}")
    [not_failure] = mode.calls(mode.client, [f"{server.url}/status/404?tag={tag}-404"], {})
    report.item(
        "and",
        f"GET /status/404 returns the response ({not_failure.status}): 404 is not a failure status",
    )
    report.check(
        isinstance(exc, HTTPAioStatusError)
        and exc.status == 503
        and exc.attempts == 2
        and exc.trace_id == trace.trace_id
        and "hunter2" not in str(exc)
        and not_failure.status == 404,
        "HTTPAioStatusError, status 503, 2 attempts, the trace id, the api_key redacted",
    )


def _oauth(report: _Report, server: DemoServer, mode: _Mode) -> None:
    factory = mode.oauth
    name = factory.__name__
    report.write(f"  OAuth2: {_CALLS} concurrent calls ({mode.concurrency}), one token request")
    server.reset()
    url = f"{server.url}/api/whoami?tag={mode.name}-oauth"
    options = {
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "authorize_url": f"{server.url}/token",
    }
    started = time.monotonic()
    outcomes = mode.calls(factory, [url] * _CALLS, options)
    took = time.monotonic() - started
    report.item(
        "called",
        f"{_CALLS} x GET {_path(server, url)} through {name}.create_pool({_POOL}, "
        f"client_id={server.client_id!r}, client_secret=..., authorize_url='/token')",
    )
    ok = sum(o.status == 200 for o in outcomes)
    report.item(
        "server",
        f"{server.token_requests} token request(s) (oauthlib BackendApplicationServer, "
        f"{_ms(server.token_delay)} each); {ok} bearer-authorised API calls",
    )
    report.item("timing", f"{_ms(took)} in all")
    report.check(
        server.token_requests == 1 and ok == _CALLS,
        f"exactly 1 token request for {_CALLS} concurrent callers, all answered 200",
    )


def _traceparent(report: _Report, server: DemoServer, mode: _Mode) -> None:
    report.write("  Trace context: one trace id across attempts, a new parent id for each")
    tag = f"{mode.name}-trace"
    url = f"{server.url}/flaky/2?tag={tag}"
    trace = TraceInfo.create_new()
    [outcome] = mode.calls(mode.client, [url], {"retries": 2, **_FAST}, trace=trace)
    report.item("called", f"GET {_path(server, url)} with trace=TraceInfo.create_new()")
    report.item("", f"trace_id {trace.trace_id}")
    seen = server.seen(tag)
    parents = []
    for number, request in enumerate(seen, 1):
        header = request.traceparent or "(none)"
        report.item("server", f"attempt {number}: traceparent {header}")
        parsed = TraceInfo.from_headers({"traceparent": header})
        if parsed is not None and parsed.trace_id == trace.trace_id:
            parents.append(parsed.span_id)
    report.item("result", f"{outcome.status} after {_ms(outcome.seconds)}")
    report.check(
        outcome.status == 200 and len(parents) == len(seen) == 3 and len(set(parents)) == 3,
        "3 attempts with the same trace id and 3 different parent ids",
    )


_SCENARIOS: list[Callable[[_Report, DemoServer, _Mode], None]] = [
    _pool,
    _retries,
    _retry_after,
    _failure,
    _oauth,
    _traceparent,
]


def run_demo(out: IO[str] | None = None) -> int:
    """Run every scenario in both modes, report on `out` (stdout); 0 when all behaved."""
    report = _Report(out or sys.stdout)
    logging.getLogger("cf").addHandler(logging.NullHandler())  # on_retry tells the story
    started = time.monotonic()
    with DemoServer() as server:
        report.write(
            f"cf-http demo: embedded server on {server.url} (no network, no configuration)"
        )
        report.write(
            "  endpoints: /token (OAuth2 client credentials), /api (bearer), /flaky, "
            "/retry-after, /status, /echo, /work"
        )
        for mode in (_AsyncMode(), _SyncMode()):
            clients = f"{mode.client.__name__}, {mode.oauth.__name__}"
            report.write()
            report.write(f"== {mode.name} mode ({clients}) ==")
            for scenario in _SCENARIOS:
                report.write()
                mode_started = time.monotonic()
                scenario(report, server, mode)
                report.item("took", _ms(time.monotonic() - mode_started))
    report.write()
    took = time.monotonic() - started
    if report.problems:
        report.write(
            f"{len(report.problems)} scenario(s) did not behave as expected ({took:.1f} s)"
        )
        return 1
    report.write(f"All scenarios behaved as documented, in both modes ({took:.1f} s).")
    return 0
