"""`cf-http`'s plan: a command line checked into what to send and how to show it.

`parse(argv)` is the whole check, with no I/O but reading `@FILE` arguments
(and stdin for `@-`) and asking for a `-u` password; the fuzzing tests drive it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

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
from cf._cli_parser import SECRET_ENV, default_command, parser

__all__ = ["Plan", "parse", "plan_args", "terminal_prompt"]


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
    args = parser().parse_args(default_command(list(argv)))
    if args.command == "demo":
        raise UsageError("demo takes no request options")
    return plan_args(args, environ if environ is not None else dict(os.environ), stdin, prompt)


def plan_args(
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


def terminal_prompt(text: str) -> str:
    """Ask on the terminal, without echo (`getpass`)."""
    import getpass

    return getpass.getpass(text, stream=sys.stderr)
