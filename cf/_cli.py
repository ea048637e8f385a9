"""`cf-http`: the command-line client, built on the library's public API.

`cf-http get URL [options]` (also post, put, patch, delete, head; `-X` for any
other method; `cf-http URL` alone means get, or post with a body) sends one
request with the library's retries, deadline, tracing and OAuth2, writes the
body to stdout (or to a file with `-o`) and exits with a status that says what
went wrong; `cf-http demo` runs the embedded walkthrough (`cf/_demo.py`).

The work is split: `_cli_args` checks each argument, `_cli_output` writes the
response and `-v`, `_cli_render` colours and pretty-prints, `_cli_download`
streams `-o FILE` with its progress bar, `_cli_errors` words the failure line.
These modules import only the standard library at import time; the client and
httpx are imported once the arguments are known to be good, so `--help` and
usage errors are quick.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import IO, TYPE_CHECKING, Any, NoReturn

from cf._cli_args import (
    Form,
    UsageError,
    check_method,
    check_output,
    check_text,
    check_url,
    parse_form,
    parse_header,
    parse_user,
    read_body_arg,
)
from cf._cli_download import Download, Failure, Progress
from cf._cli_errors import (
    EXIT_ERROR,
    EXIT_OAUTH,
    EXIT_STATUS,
    EXIT_TIMEOUT,
    EXIT_TRANSPORT,
    classify,
    failure_line,
)
from cf._cli_output import Reporter
from cf._cli_render import COLOR_MODES, Style, isatty, use_color

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

EXIT_OK = 0  # a response arrived and its status is not a failure status
EXIT_USAGE = 2  # bad arguments; nothing was sent
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); SIGTERM and SIGHUP give 128 + their number

SECRET_ENV = "CF_HTTP_CLIENT_SECRET"
METHODS = ("get", "post", "put", "patch", "delete", "head")
PROG = "cf-http"

_STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_EPILOG = f"""\
exit status:
  {EXIT_OK}    a response arrived whose status is not a failure status (even 404)
  {EXIT_ERROR}    other error (e.g. the -o file could not be written)
  {EXIT_USAGE}    usage error: bad arguments, nothing was sent
  {EXIT_STATUS}    failure status after the last attempt (see --failure-statuses);
       its body is still written to stdout
  {EXIT_TRANSPORT}    transport error: connect, TLS, reset, protocol error, body cut short
  {EXIT_TIMEOUT}    timeout: an attempt timed out, or --deadline ran out
  {EXIT_OAUTH}    OAuth error: the token endpoint failed or refused the client
  {EXIT_INTERRUPTED}  interrupted by Ctrl-C (SIGTERM: 143, SIGHUP: 129); -o leaves no partial file

`cf-http URL ...` is `cf-http get URL ...` (post when --json, --data or --form is given).
The OAuth2 client secret is read only from the {SECRET_ENV} environment variable.
Proxies (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, NO_PROXY) and SSL_CERT_FILE/SSL_CERT_DIR
are read from the environment.
"""


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


@functools.cache
def _parser() -> _Parser:
    return build_parser()  # parse_args() leaves a parser as it was: one serves every call


def _add_request_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("url", metavar="URL", help="an absolute http:// or https:// URL")
    p.add_argument(
        "-X",
        "--request",
        dest="method",
        metavar="METHOD",
        help="send this method instead of the command's (any token: PURGE, PROPFIND, ...)",
    )
    p.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'K: V'",
        help="add a request header (repeatable); 'K;' sends K with an empty value",
    )
    body = p.add_mutually_exclusive_group()
    body.add_argument(
        "--json",
        metavar="JSON",
        help="send JSON as typed (text, @FILE or @- for stdin); checked, sets Content-Type",
    )
    body.add_argument(
        "--data", metavar="DATA", help="send this body as is (text, @FILE or @- for stdin)"
    )
    body.add_argument(
        "--form",
        action="append",
        metavar="K=V",
        help="send a form field (repeatable, urlencoded); K@FILE uploads FILE (multipart)",
    )
    p.add_argument(
        "-u",
        "--user",
        metavar="USER[:PASSWORD]",
        help="HTTP Basic credentials; without :PASSWORD it is asked for on the terminal",
    )
    p.add_argument("-L", "--follow", action="store_true", help="follow redirects")
    p.add_argument(
        "-k", "--insecure", action="store_true", help="do not verify the server's TLS certificate"
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
        help="stream the body to FILE ('-' for stdout; a progress bar on a terminal)",
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
        help="on stderr: request and response headers, each retry, delays and timings",
    )
    p.add_argument(
        "--color",
        nargs="?",
        const="always",
        default="auto",
        choices=COLOR_MODES,
        help="colour and pretty JSON: auto (on a terminal, unless NO_COLOR), never, always",
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
    if not 0 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1000, got {value}")
    return value


def _statuses(text: str) -> frozenset[int]:
    result = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        if not (part.isascii() and part.isdigit()) or not 100 <= int(part) <= 599:
            raise argparse.ArgumentTypeError(f"not a status between 100 and 599: {part!r}")
        result.add(int(part))
    return frozenset(result)


# Planning: every argument checked before anything is sent -------------------------------------


@dataclass(slots=True)
class Plan:
    """One checked command line: what to send, with which options, and how to show it."""

    command: str
    method: str
    url: str
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)
    client_options: dict[str, Any] = field(default_factory=dict)
    oauth: dict[str, Any] | None = None
    output: str | None = None
    include: bool = False
    verbose: bool = False
    sync: bool = False
    trace: bool = False
    color: str = "auto"
    user: str | None = None  # -u's user name, for -v
    secret: str | None = None


def _default_command(argv: list[str]) -> list[str]:
    """`cf-http URL ...` and `cf-http -v URL ...` mean get (post with a body option)."""
    if not argv or argv[0] in (*METHODS, "demo", "-h", "--help", "--version"):
        return argv
    if not (argv[0].startswith("-") or "://" in argv[0]):
        return argv  # a misspelt command: let argparse name the choices
    body = ("--json", "--data", "--form")
    has_body = any(a in body or a.startswith(tuple(f"{b}=" for b in body)) for a in argv)
    return ["post" if has_body else "get", *argv]


def parse(
    argv: Sequence[str],
    *,
    environ: dict[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    prompt: Callable[[str], str] | None = None,
) -> Plan:
    """Check a request command line (not `demo`) and return its plan; raise `UsageError`.

    Nothing is sent; only `@FILE` arguments are read (and stdin for `@-`). `prompt`
    asks for the `-u` password (None: there is no terminal to ask on).
    """
    args = _parser().parse_args(_default_command(list(argv)))
    if args.command == "demo":
        raise UsageError("demo takes no request options")
    return _plan(args, environ if environ is not None else dict(os.environ), stdin, prompt)


def _plan(
    args: argparse.Namespace,
    environ: dict[str, str],
    stdin: IO[bytes] | None,
    prompt: Callable[[str], str] | None,
) -> Plan:
    url = check_url("URL", args.url)
    method = check_method(args.method) if args.method is not None else args.command.upper()
    headers = [parse_header(h) for h in args.header]
    given = {name.lower() for name, _ in headers}
    body: dict[str, Any] = {}
    if args.json is not None:
        raw = read_body_arg("--json", args.json, stdin)
        try:
            json.loads(raw)
        except (ValueError, RecursionError) as exc:
            reason = "nested too deep" if isinstance(exc, RecursionError) else str(exc)
            raise UsageError(f"--json: not valid JSON: {reason}") from None
        body["content"] = raw
        if "content-type" not in given:
            headers.append(("Content-Type", b"application/json"))
        if "accept" not in given:
            headers.append(("Accept", b"application/json"))
    elif args.data is not None:
        body["content"] = read_body_arg("--data", args.data, stdin)
    elif args.form is not None:
        form = parse_form(args.form, Form())
        if form.files:
            data: dict[str, list[bytes]] = {}
            for name, value in form.fields:
                data.setdefault(name, []).append(value)
            body["data"], body["files"] = data, form.files
        else:
            body["content"] = form.urlencoded()
            if "content-type" not in given:
                headers.append(("Content-Type", b"application/x-www-form-urlencoded"))
    options: dict[str, Any] = {"retry_budget": None}  # one call: a budget makes no sense
    for name in ("timeout", "retries", "failure_statuses", "deadline"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.follow:
        options["follow_redirects"] = True
    if args.insecure:
        options["verify"] = False
    oauth = None
    secret = environ.get(SECRET_ENV) or None
    if args.oauth_token_url is not None:
        if not args.oauth_client_id:
            raise UsageError("--oauth-token-url needs --oauth-client-id")
        if secret is None:
            raise UsageError(f"--oauth-token-url needs the client secret in {SECRET_ENV}")
        if args.user is not None:
            raise UsageError("-u and --oauth-token-url cannot be used together")
        oauth = {
            "authorize_url": check_url("--oauth-token-url", args.oauth_token_url),
            "client_id": check_text("--oauth-client-id", args.oauth_client_id),
            "client_secret": secret,
        }
        if args.oauth_scope:
            oauth["scope"] = check_text("--oauth-scope", args.oauth_scope)
    elif args.oauth_client_id is not None or args.oauth_scope is not None:
        raise UsageError("--oauth-client-id and --oauth-scope need --oauth-token-url")
    user_name = None
    if args.user is not None:
        user, password = parse_user(args.user)
        user_name = user.decode("utf-8", "replace")
        if password is None:
            password = _ask_password(user_name, prompt)
        options["auth"] = (user, password)
    if args.output is not None:
        check_output(args.output)
    return Plan(
        command=args.command,
        method=method,
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
        color=args.color,
        user=user_name,
        secret=secret,
    )


def _ask_password(user: str, prompt: Callable[[str], str] | None) -> bytes:
    if prompt is None:
        raise UsageError("-u: no password given and no terminal to ask on; use -u USER:PASSWORD")
    try:
        password = prompt(f"Enter host password for user {user!r}: ")
    except EOFError:
        raise UsageError("-u: no password given") from None
    if re.search(r"[\x00-\x1f\x7f]", password):
        raise UsageError("-u: the password holds a control character")
    try:
        return os.fsencode(password)
    except UnicodeError:
        raise UsageError("-u: the password is not valid text") from None


def _terminal_prompt(text: str) -> str:
    import getpass

    return getpass.getpass(text, stream=sys.stderr)


# Running ------------------------------------------------------------------------------------


class _Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: unwind (removing a partial -o file), exit 128 + signum."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(signum)


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
        options["event_hooks"] = hooks
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

    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop, signum)
    try:
        await _send_async(plan, reporter)
    except asyncio.CancelledError:
        if received:
            raise _Stopped(received[0]) from None
        raise
    finally:
        for signum in _STOP_SIGNALS:
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
    stderr.write(text.replace(secret, "[redacted]") if secret else text)
    stderr.flush()
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run `cf-http` with `argv` (default: `sys.argv[1:]`); returns the exit status."""
    stderr = sys.stderr
    environ = dict(os.environ)
    secret = environ.get(SECRET_ENV) or None
    parser = _parser()
    argv = _default_command(list(sys.argv[1:] if argv is None else argv))
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
    prompt = _terminal_prompt if isatty(sys.stdin) else None
    try:
        plan = _plan(args, environ, None, prompt)
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
    previous = {signum: signal.signal(signum, _raise_stopped) for signum in _STOP_SIGNALS}
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
