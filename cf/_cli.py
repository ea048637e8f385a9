"""`cf-http`: the command-line client, built on the library's public API.

`cf-http get URL [options]` (also post, put, patch, delete, head) sends one
request with the library's retries, deadline, tracing and OAuth2, writes the
body to stdout (or to a file with `-o`) and exits with a status that says what
went wrong; `cf-http demo` runs the embedded walkthrough (`cf/_demo.py`).

This module (and `cf/_cli_output.py`, what the command writes) imports only the
standard library at import time; the client and httpx are imported once the
arguments are known to be good, so `--help` and usage errors are quick.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, NoReturn

from cf._cli_output import EXIT_ERROR, Download, Failure, Reporter

if TYPE_CHECKING:
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
    "UsageError",
    "build_parser",
    "main",
]

EXIT_OK = 0  # a response arrived and its status is not a failure status
# EXIT_ERROR = 1 (defined in cf._cli_output): anything else, e.g. the -o file cannot be written
EXIT_USAGE = 2  # bad arguments; nothing was sent
EXIT_STATUS = 3  # the last attempt's status is a failure status (retries exhausted)
EXIT_TRANSPORT = 4  # connection refused, reset, protocol error, ... (retries exhausted)
EXIT_TIMEOUT = 5  # a timeout, or the --deadline ran out
EXIT_OAUTH = 6  # the token endpoint failed or refused the client
EXIT_INTERRUPTED = 130  # Ctrl-C

SECRET_ENV = "CF_HTTP_CLIENT_SECRET"
METHODS = ("get", "post", "put", "patch", "delete", "head")
PROG = "cf-http"

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_EPILOG = f"""\
exit status:
  {EXIT_OK}    a response arrived whose status is not a failure status (even 404)
  {EXIT_ERROR}    other error (e.g. the -o file could not be written)
  {EXIT_USAGE}    usage error: bad arguments, nothing was sent
  {EXIT_STATUS}    failure status after the last attempt (see --failure-statuses)
  {EXIT_TRANSPORT}    transport error: connect, reset, protocol error
  {EXIT_TIMEOUT}    timeout: an attempt timed out, or --deadline ran out
  {EXIT_OAUTH}    OAuth error: the token endpoint failed or refused the client
  {EXIT_INTERRUPTED}  interrupted

The OAuth2 client secret is read only from the {SECRET_ENV} environment variable.
"""


class UsageError(Exception):
    """Bad arguments: reported with the usage line, exit status 2, nothing sent."""


class _Parser(argparse.ArgumentParser):
    commands: dict[str, argparse.ArgumentParser]

    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self)


class _RefuseSecret(argparse.Action):
    """`--oauth-client-secret`: refused without echoing the value (it would land in logs)."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option: str | None = None) -> None:
        raise UsageError(
            f"the client secret is not taken on the command line; set {SECRET_ENV}", parser
        )


def build_parser() -> _Parser:
    """The `cf-http` argument parser."""
    from cf import __version__

    parser = _Parser(
        prog=PROG,
        description="Send one HTTP request with retries, deadlines, tracing and OAuth2.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _Parser(add_help=False, allow_abbrev=False)
    _add_request_options(common)
    parser.commands = {}
    for method in METHODS:
        parser.commands[method] = commands.add_parser(
            method,
            parents=[common],
            help=f"send a {method.upper()} request",
            description=f"Send a {method.upper()} request; the body goes to stdout.",
            epilog=_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,
        )
    parser.commands["demo"] = commands.add_parser(
        "demo",
        help="run the walkthrough against an embedded local server",
        description="Start a server on 127.0.0.1 and show pools, retries, Retry-After, "
        "errors, OAuth2 tokens and trace headers, in async and sync mode.",
        allow_abbrev=False,
    )
    return parser


def _add_request_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", metavar="URL", help="an absolute http:// or https:// URL")
    p.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'K: V'",
        help="add a request header (repeatable)",
    )
    body = p.add_mutually_exclusive_group()
    body.add_argument(
        "--json", metavar="JSON", help="send JSON (text, @FILE or @- for stdin); sets Content-Type"
    )
    body.add_argument(
        "--data", metavar="DATA", help="send this body as is (text, @FILE or @- for stdin)"
    )
    p.add_argument(
        "--timeout",
        type=_seconds("--timeout"),
        metavar="SECONDS",
        help="timeout of each attempt (default 5)",
    )
    p.add_argument(
        "--retries", type=_retries, metavar="N", help="further attempts after the first (default 2)"
    )
    p.add_argument(
        "--failure-statuses",
        type=_statuses,
        metavar="500,503",
        help="statuses that count as failures (default 408,429,500,502,503,504; '' for none)",
    )
    p.add_argument(
        "--deadline",
        type=_seconds("--deadline"),
        metavar="SECONDS",
        help="bound on the whole call: every attempt and every wait",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="start a new trace (W3C traceparent); its id is printed on stderr",
    )
    p.add_argument(
        "--oauth-token-url",
        metavar="URL",
        help=f"OAuth2 token endpoint (client credentials; secret from {SECRET_ENV})",
    )
    p.add_argument("--oauth-client-id", metavar="ID", help="OAuth2 client id")
    p.add_argument("--oauth-scope", metavar="SCOPE", help="OAuth2 scope (space-separated)")
    p.add_argument("--oauth-client-secret", nargs="?", action=_RefuseSecret, help=argparse.SUPPRESS)
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="stream the body to FILE (progress bar on a terminal)",
    )
    p.add_argument(
        "-i",
        "--include",
        action="store_true",
        help="print the status line and the response headers first",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show each attempt, retry, delay and timing on stderr",
    )
    p.add_argument("--sync", action="store_true", help="use the sync client (HTTP)")


def _seconds(option: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text!r}")
        return value

    parse.__name__ = option
    return parse


def _retries(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _statuses(text: str) -> frozenset[int]:
    result = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if not part.isdigit() or not 100 <= int(part) <= 599:
            raise argparse.ArgumentTypeError(f"not a status between 100 and 599: {part!r}")
        result.add(int(part))
    return frozenset(result)


# Planning: every argument checked before anything is imported or sent ----------------------


@dataclass(slots=True)
class _Plan:
    method: str
    url: str
    headers: list[tuple[str, str]]
    body: dict[str, Any]
    client_options: dict[str, Any]
    oauth: dict[str, Any] | None
    output: str | None
    include: bool
    verbose: bool
    sync: bool
    trace: bool
    secret: str | None = None
    target: str = ""  # the URL as httpx writes it, to tell attempts from token requests


def _plan(args: argparse.Namespace) -> _Plan:
    import httpx

    url = _check_url("URL", args.url, httpx)
    headers = [_parse_header(h) for h in args.header]
    body: dict[str, Any] = {}
    if args.json is not None:
        try:
            body["json"] = json.loads(_read_arg("--json", args.json))
        except ValueError as exc:
            raise UsageError(f"--json: not valid JSON: {exc}") from None
    elif args.data is not None:
        body["content"] = _read_arg("--data", args.data)
    options: dict[str, Any] = {"retry_budget": None}  # one call: a budget makes no sense
    for name in ("timeout", "retries", "failure_statuses", "deadline"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    oauth = None
    secret = os.environ.get(SECRET_ENV) or None
    if args.oauth_token_url is not None:
        if not args.oauth_client_id:
            raise UsageError("--oauth-token-url needs --oauth-client-id")
        if secret is None:
            raise UsageError(f"--oauth-token-url needs the client secret in {SECRET_ENV}")
        oauth = {
            "authorize_url": _check_url("--oauth-token-url", args.oauth_token_url, httpx),
            "client_id": args.oauth_client_id,
            "client_secret": secret,
        }
        if args.oauth_scope:
            oauth["scope"] = args.oauth_scope
    elif args.oauth_client_id is not None or args.oauth_scope is not None:
        raise UsageError("--oauth-client-id and --oauth-scope need --oauth-token-url")
    if args.output is not None:
        _check_output(args.output)
    return _Plan(
        method=args.command.upper(),
        url=url,
        headers=headers,
        body=body,
        client_options=options,
        oauth=oauth,
        output=args.output,
        include=args.include,
        verbose=args.verbose,
        sync=args.sync,
        trace=args.trace,
        secret=secret,
        target=str(httpx.URL(url)),
    )


def _check_url(what: str, text: str, httpx: Any) -> str:
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UsageError(f"{what}: invalid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise UsageError(f"{what}: not an absolute http:// or https:// URL")
    return text


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.fullmatch(name) or "\r" in value or "\n" in value:
        raise UsageError(f"-H: malformed header {text!r}: expected 'Name: value'")
    return name, value


def _read_arg(option: str, value: str) -> bytes:
    if not value.startswith("@"):
        return value.encode()
    try:
        if value == "@-":
            return sys.stdin.buffer.read()
        with open(value[1:], "rb") as file:
            return file.read()
    except OSError as exc:
        raise UsageError(f"{option}: cannot read {value[1:]!r}: {exc.strerror}") from None


def _check_output(path: str) -> None:
    if os.path.isdir(path):
        raise UsageError(f"-o: {path!r} is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"-o: directory {parent!r} does not exist")


# Running ------------------------------------------------------------------------------------


def _call_options(plan: _Plan, reporter: Reporter) -> dict[str, Any]:
    reporter.started = time.monotonic()  # timings start here, imports and set-up excluded
    options: dict[str, Any] = dict(plan.body)
    if plan.headers:
        options["headers"] = plan.headers
    if plan.trace:
        from cf.infrastructure.tracer import TraceInfo

        trace = TraceInfo.create_new()
        reporter.line(f"{PROG}: trace_id={trace.trace_id}")
        options["trace"] = trace
    return options


def _client_options(plan: _Plan, reporter: Reporter, *, aio: bool) -> dict[str, Any]:
    options = dict(plan.client_options)
    if plan.verbose:
        options["on_retry"] = reporter.on_retry
        reporter.watch_attempts()
        reporter.verbose(
            "* %s %s with the %s client (%s)",
            plan.method,
            plan.url,
            "async" if aio else "sync",
            _describe(plan),
        )
    if plan.oauth is not None:
        options.update(plan.oauth)
    return options


def _describe(plan: _Plan) -> str:
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
    if plan.oauth is not None:
        parts.append(f"OAuth2 client {plan.oauth['client_id']!r}")
    return ", ".join(parts)


async def _run_async(plan: _Plan, reporter: Reporter) -> None:
    from cf.infrastructure import http_aio

    factory: type[HTTPAio] = http_aio.HTTPAio if plan.oauth is None else http_aio.OAuthHTTPAio
    client = factory.create(**_client_options(plan, reporter, aio=True))
    async with client:
        options = _call_options(plan, reporter)
        if plan.output is None:
            response = await client.request(plan.method, plan.url, **options)
            reporter.head(response)
            reporter.body(response)
            reporter.done(response, len(response.content))
            return
        async with client.stream(plan.method, plan.url, **options) as response:
            reporter.head(response)
            download = Download(plan.output, response, reporter.stderr)
            ok = False
            try:
                async for chunk in response.aiter_bytes():
                    download.write(chunk)
                ok = True
            finally:
                download.finish(ok)
            reporter.done(response, download.size)


def _run_sync(plan: _Plan, reporter: Reporter) -> None:
    from cf.infrastructure import http

    factory: type[HTTP] = http.HTTP if plan.oauth is None else http.OAuthHTTP
    client = factory.create(**_client_options(plan, reporter, aio=False))
    with client:
        options = _call_options(plan, reporter)
        if plan.output is None:
            response = client.request(plan.method, plan.url, **options)
            reporter.head(response)
            reporter.body(response)
            reporter.done(response, len(response.content))
            return
        with client.stream(plan.method, plan.url, **options) as response:
            reporter.head(response)
            download = Download(plan.output, response, reporter.stderr)
            ok = False
            try:
                for chunk in response.iter_bytes():
                    download.write(chunk)
                ok = True
            finally:
                download.finish(ok)
            reporter.done(response, download.size)


def _failure(exc: BaseException) -> tuple[int, str] | None:
    """The exit status and the label for an error the library raised; None if not one."""
    from cf.infrastructure.http_aio import (
        HTTPAioException,
        HTTPAioStatusError,
        HTTPAioTimeoutError,
        HTTPAioTransportError,
        OAuthError,
    )

    kinds: list[tuple[type[BaseException], int, str]] = [
        (OAuthError, EXIT_OAUTH, "OAuth error"),
        (HTTPAioTimeoutError, EXIT_TIMEOUT, "timeout"),
        (HTTPAioTransportError, EXIT_TRANSPORT, "transport error"),
        (HTTPAioStatusError, EXIT_STATUS, "failure status"),
        (HTTPAioException, EXIT_ERROR, "request failed"),
    ]
    for cls, code, label in kinds:
        if isinstance(exc, cls):
            return code, label
    return None


def _usage(
    parser: argparse.ArgumentParser, message: str, stderr: IO[str], secret: str | None
) -> int:
    text = f"{parser.format_usage()}{parser.prog}: error: {message}\n"
    stderr.write(text.replace(secret, "[redacted]") if secret else text)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run `cf-http` with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    stderr = sys.stderr
    secret = os.environ.get(SECRET_ENV) or None
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        return _usage(exc.args[1], exc.args[0], stderr, secret)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    if args.command == "demo":
        from cf._demo import run_demo

        return run_demo()
    try:
        plan = _plan(args)
    except UsageError as exc:
        return _usage(parser.commands[args.command], exc.args[0], stderr, secret)
    logging.getLogger("cf").addHandler(logging.NullHandler())  # -v reports retries itself
    reporter = Reporter(
        stdout=sys.stdout.buffer,
        stderr=stderr,
        target=plan.target,
        include=plan.include,
        verbose=plan.verbose,
        secret=plan.secret,
    )
    try:
        if plan.sync:
            _run_sync(plan, reporter)
        else:
            import asyncio

            asyncio.run(_run_async(plan, reporter))
    except KeyboardInterrupt:
        reporter.line(f"{PROG}: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_ERROR
    except Failure as exc:
        reporter.line(f"{PROG}: {exc}")
        return exc.code
    except (ValueError, TypeError) as exc:  # the library refused an option before any I/O
        return _usage(parser.commands[args.command], str(exc), stderr, secret)
    except Exception as exc:
        found = _failure(exc)
        if found is None:
            raise
        code, label = found
        reporter.verbose("* failed after %.3f s", reporter.elapsed())
        reporter.line(f"{PROG}: {label}: {exc}")
        return code
    return EXIT_OK


def _silence_stdout() -> None:
    # The reader went away (`cf-http get URL | head`): no traceback at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
