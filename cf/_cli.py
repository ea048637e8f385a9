"""`cf-http`: the command-line client, built on the library's public API.

`cf-http get URL [options]` (also post, put, patch, delete, head; `-X` for any
other method; `cf-http URL` alone means get, or post with a body) sends one
request with the library's retries, deadline, tracing and OAuth2, writes the
body to stdout (or to a file with `-o`) and exits with a status that says what
went wrong; `cf-http demo` runs the embedded walkthrough (`cf/_demo.py`).

The work is split: `_cli_parser` declares the options, `_cli_args` checks each
argument and `_cli_plan` the whole command line, `_cli_output` writes the
response and `-v`, `_cli_render` colours and pretty-prints, `_cli_download`
streams `-o FILE` with its progress bar, `_cli_errors` words the failure line;
this module runs the request and maps what happens to the exit status.
These modules import only the standard library at import time; the client and
httpx are imported once the arguments are known to be good, so `--help` and
usage errors are quick.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import IO, TYPE_CHECKING, Any

from cf._cli_args import UsageError
from cf._cli_download import Download, Failure, Progress
from cf._cli_errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OAUTH,
    EXIT_OK,
    EXIT_STATUS,
    EXIT_TIMEOUT,
    EXIT_TRANSPORT,
    EXIT_USAGE,
    classify,
    failure_line,
)
from cf._cli_output import Reporter
from cf._cli_parser import METHODS, PROG, SECRET_ENV, build_parser, default_command
from cf._cli_parser import parser as cli_parser
from cf._cli_plan import Plan, parse, plan_args, terminal_prompt
from cf._cli_render import Style, isatty, use_color

if TYPE_CHECKING:
    import httpx

    from cf.infrastructure.http import HTTP
    from cf.infrastructure.http_aio import HTTPAio

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OAUTH",
    "EXIT_OK",
    "EXIT_STATUS",
    "EXIT_TIMEOUT",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "METHODS",
    "PROG",
    "SECRET_ENV",
    "Plan",
    "UsageError",
    "build_parser",
    "main",
    "parse",
]

_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# Running ------------------------------------------------------------------------------------


class _Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (removing a partial -o file), exit 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


def _stop_signals() -> tuple[int, ...]:
    """SIGTERM and SIGHUP where they exist, when signal handlers may be set (main thread)."""
    import threading

    return _STOP_SIGNALS if threading.current_thread() is threading.main_thread() else ()


def _call_options(plan: Plan, reporter: Reporter) -> dict[str, Any]:
    reporter.started = reporter.attempt_started = time.monotonic()  # set-up excluded
    options: dict[str, Any] = dict(plan.body)
    if plan.headers:
        options["headers"] = plan.headers
    if plan.trace:
        from cf.infrastructure.tracer import TraceInfo

        trace = TraceInfo.create_new()
        reporter.line(f"{PROG}: trace_id={trace.trace_id}")
        options["trace"] = trace
    return options


def _client_options(plan: Plan, reporter: Reporter, *, aio: bool) -> dict[str, Any]:
    options = dict(plan.client_options)
    if plan.verbose:
        options["on_retry"] = reporter.on_retry
        if aio:
            hooks: dict[str, list[Any]] = {
                "request": [reporter.aon_request],
                "response": [reporter.aon_response],
            }
        else:
            hooks = {"request": [reporter.on_request], "response": [reporter.on_response]}
        options["attempt_hooks"] = hooks  # every attempt: retries and token requests too
        reporter.verbose(
            f"* {plan.method} {_redacted(plan.url)} with the {'async' if aio else 'sync'} "
            f"client ({_describe(plan)})"
        )
    if plan.oauth is not None:
        options.update(plan.oauth)
    return options


def _redacted(url: str) -> str:
    from cf._redact import redact_url

    return redact_url(url)


def _describe(plan: Plan) -> str:
    o = plan.client_options
    statuses = "default"
    if "failure_statuses" in o:
        statuses = ",".join(map(str, sorted(o["failure_statuses"]))) or "none"
    parts = [
        f"timeout {o.get('timeout', 5):g} s",
        f"retries {o.get('retries', 2)}",
        f"failure statuses {statuses}",
    ]
    if "deadline" in o:
        parts.append(f"deadline {o['deadline']:g} s")
    if o.get("follow_redirects"):
        parts.append("following redirects")
    if o.get("verify") is False:
        parts.append("TLS certificate NOT verified")
    if plan.user is not None:
        parts.append(f"Basic auth as {plan.user!r}")
    if plan.oauth is not None:
        parts.append(f"OAuth2 client {plan.oauth['client_id']!r}")
    return ", ".join(parts)


def _show(plan: Plan, reporter: Reporter, response: httpx.Response, *, body: bool) -> None:
    """Write the response: heads (`-i`, or `head`), then the body."""
    if plan.include:
        for earlier in response.history:  # -L: every hop, as curl -i -L does
            reporter.head(earlier)
    if plan.include or plan.method.upper() == "HEAD":
        reporter.head(response)
    if body:
        reporter.body(response)


def _content_length(response: httpx.Response) -> int | None:
    if "content-encoding" in response.headers:
        return None  # the length of the encoded body: not what is written
    length = response.headers.get("content-length", "")
    return int(length) if length.isascii() and length.isdigit() else None


def _start_download(plan: Plan, reporter: Reporter, response: httpx.Response) -> Download:
    _show(plan, reporter, response, body=False)
    assert plan.output is not None
    total = _content_length(response)
    to_stdout = plan.output == "-"
    progress = None
    if isatty(reporter.stderr) and not (to_stdout and isatty(reporter.stdout)):
        progress = Progress(reporter.stderr, total)
    reporter.progress = progress
    download = Download(plan.output, total, progress, reporter.stdout)
    reporter.download = download
    return download


async def _run_async(plan: Plan, reporter: Reporter) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        received.append(signum)
        task.cancel()

    signals = _stop_signals()
    for signum in signals:
        loop.add_signal_handler(signum, stop, signum)
    try:
        await _send_async(plan, reporter)
    except asyncio.CancelledError:
        if received:
            raise _Stopped(received[0]) from None
        raise
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
            signal.signal(signum, _raise_stopped)


async def _send_async(plan: Plan, reporter: Reporter) -> None:
    from cf.infrastructure import http_aio

    factory: type[HTTPAio] = http_aio.HTTPAio if plan.oauth is None else http_aio.OAuthHTTPAio
    async with factory.create(**_client_options(plan, reporter, aio=True)) as client:
        options = _call_options(plan, reporter)
        if plan.output is None:
            response = await client.request(plan.method, plan.url, **options)
            _show(plan, reporter, response, body=True)
            reporter.done(response, len(response.content))
            return
        async with client.stream(plan.method, plan.url, **options) as response:
            download = _start_download(plan, reporter, response)
            ok = False
            try:
                async for chunk in response.aiter_bytes():
                    download.write(chunk)
                ok = True
            finally:
                download.finish(ok)
            reporter.done(response, download.size)


def _send_sync(plan: Plan, reporter: Reporter) -> None:
    from cf.infrastructure import http

    factory: type[HTTP] = http.HTTP if plan.oauth is None else http.OAuthHTTP
    with factory.create(**_client_options(plan, reporter, aio=False)) as client:
        options = _call_options(plan, reporter)
        if plan.output is None:
            response = client.request(plan.method, plan.url, **options)
            _show(plan, reporter, response, body=True)
            reporter.done(response, len(response.content))
            return
        with client.stream(plan.method, plan.url, **options) as response:
            download = _start_download(plan, reporter, response)
            ok = False
            try:
                for chunk in response.iter_bytes():
                    download.write(chunk)
                ok = True
            finally:
                download.finish(ok)
            reporter.done(response, download.size)


def _printable(text: str) -> str:
    """Control characters shown as escapes: a usage message may quote what was typed."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], " ".join(text.splitlines()))


def _usage(
    parser: argparse.ArgumentParser, message: str, stderr: IO[str], secret: str | None
) -> int:
    text = f"{parser.prog}: error: {_printable(message)} (see '{parser.prog} --help')\n"
    if secret:
        from cf._redact import redact_text, register_secret

        register_secret(secret, permanent=True)  # redacted as a value, not inside words
        text = redact_text(text)
    stderr.write(text)
    stderr.flush()
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run `cf-http` with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    stderr = sys.stderr
    environ = dict(os.environ)
    secret = environ.get(SECRET_ENV) or None
    parser = cli_parser()
    argv = default_command(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _usage(exc.args[1], exc.args[0], stderr, secret)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if args.command == "demo":
        from cf._demo import run_demo

        return run_demo()
    command = parser.commands[args.command]
    prompt = terminal_prompt if isatty(sys.stdin) else None
    try:
        plan = plan_args(args, environ, None, prompt)
    except UsageError as exc:
        return _usage(command, exc.args[0], stderr, secret)
    except KeyboardInterrupt:  # at the password prompt
        stderr.write(f"\n{PROG}: interrupted by SIGINT\n")
        return EXIT_INTERRUPTED
    return _run(plan, command, stderr, secret)


def _run(plan: Plan, command: argparse.ArgumentParser, stderr: IO[str], secret: str | None) -> int:
    logging.getLogger("cf").addHandler(logging.NullHandler())  # -v reports retries itself
    stdout = sys.stdout.buffer
    out_color = use_color(plan.color, sys.stdout)
    reporter = Reporter(
        stdout=stdout,
        stderr=stderr,
        verbose=plan.verbose,
        secret=plan.secret,
        out_style=Style(out_color),
        err_style=Style(use_color(plan.color, stderr)),
        pretty=isatty(sys.stdout) or plan.color == "always",
        token_url=_token_url(plan),
    )
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in _stop_signals()}
    try:
        if plan.sync:
            _send_sync(plan, reporter)
        else:
            import asyncio

            asyncio.run(_run_async(plan, reporter))
    except KeyboardInterrupt:
        reporter.line(f"{PROG}: interrupted by SIGINT")
        return EXIT_INTERRUPTED
    except _Stopped as exc:
        reporter.line(f"{PROG}: interrupted by {signal.Signals(exc.signum).name}")
        return 128 + exc.signum
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_ERROR
    except Failure as exc:
        reporter.line(f"{PROG}: {exc}")
        return exc.code
    except (ValueError, TypeError) as exc:  # the library refused an option before any I/O
        return _usage(command, str(exc), stderr, secret)
    except Exception as exc:
        return _report_failure(plan, reporter, exc)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return EXIT_OK


def _token_url(plan: Plan) -> str | None:
    if plan.oauth is None:
        return None
    import httpx

    return _redacted(str(httpx.URL(plan.oauth["authorize_url"])))


def _report_failure(plan: Plan, reporter: Reporter, exc: Exception) -> int:
    found = classify(exc)
    if found is None:
        raise exc
    code, label = found
    response = getattr(exc, "response", None)
    if code == EXIT_STATUS and response is not None:
        try:
            _show(plan, reporter, response, body=True)  # the failure body: stdout, as curl
        except BrokenPipeError:
            _silence_stdout()
    detail = None
    download = reporter.download
    if download is not None and download.cut_short and code == EXIT_TRANSPORT:
        detail = f"the body was cut short: {download.size} of {download.total} bytes received"
    reporter.verbose(f"* failed after {reporter.elapsed():.3f} s")
    reporter.error(f"{PROG}: {failure_line(exc, label, detail)}")
    return code


def _silence_stdout() -> None:
    # The reader went away (`cf-http get URL | head`): no traceback at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
