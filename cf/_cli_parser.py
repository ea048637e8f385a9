"""`cf-http`'s argument parser: the commands, the options and their help.

Standard library only; each option's value is checked by `cf/_cli_args.py` (or
here, for the numbers) when the plan is made (`cf/_cli_plan.py`).
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable
from typing import Any, NoReturn

from cf._cli_args import UsageError
from cf._cli_errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OAUTH,
    EXIT_OK,
    EXIT_STATUS,
    EXIT_TIMEOUT,
    EXIT_TRANSPORT,
    EXIT_USAGE,
)
from cf._cli_render import COLOR_MODES

__all__ = ["METHODS", "PROG", "SECRET_ENV", "build_parser", "default_command", "parser"]

SECRET_ENV = "CF_HTTP_CLIENT_SECRET"
METHODS = ("get", "post", "put", "patch", "delete", "head")
PROG = "cf-http"

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
def parser() -> _Parser:
    """The parser, built once."""
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


def default_command(argv: list[str]) -> list[str]:
    """`cf-http URL ...` and `cf-http -v URL ...` mean get (post with a body option)."""
    if not argv or argv[0] in (*METHODS, "demo", "-h", "--help", "--version"):
        return argv
    if not (argv[0].startswith("-") or "://" in argv[0]):
        return argv  # a misspelt command: let argparse name the choices
    body = ("--json", "--data", "--form")
    has_body = any(a in body or a.startswith(tuple(f"{b}=" for b in body)) for a in argv)
    return ["post" if has_body else "get", *argv]
