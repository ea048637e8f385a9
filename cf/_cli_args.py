"""`cf-http`'s arguments, one checker each: `-H`, `-u`, `-X`, `--form`, `--data`/`--json`, URLs.

Pure functions of their text (plus reading `@FILE`), standard library only. Each
returns the checked value or raises `UsageError` with a one-line message that
quotes the bad input with `repr()`, so that a newline or an escape sequence typed
by mistake cannot break the line or reach the terminal. Text that the operating
system could not decode (lone surrogates in `sys.argv`) is turned back into the
bytes that were typed (`os.fsencode`) where bytes may go on the wire (header
values, bodies, form values) and refused where they may not (names, methods).
"""

from __future__ import annotations

import mimetypes
import os
import re
import sys
import urllib.parse
from dataclasses import dataclass, field
from typing import IO

__all__ = [
    "Form",
    "UsageError",
    "check_method",
    "check_output",
    "check_text",
    "check_url",
    "parse_form",
    "parse_header",
    "parse_user",
    "read_body_arg",
]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token: names and methods
_VALUE_OK = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")  # field-value: VCHAR, obs-text, SP, HTAB
_CTL = re.compile(r"[\x00-\x1f\x7f]")


class UsageError(Exception):
    """Bad arguments: reported on one line, exit status 2, nothing sent."""


def _quote(text: str, limit: int = 60) -> str:
    """`repr(text)` cut to `limit` characters: safe to print on one line."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _undecodable(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _bytes(option: str, text: str) -> bytes:
    """The bytes that were typed: `os.fsencode` undoes the OS decoding of `sys.argv`."""
    try:
        return os.fsencode(text)
    except UnicodeError:  # a surrogate that no byte sequence decodes to
        raise UsageError(f"{option}: {_quote(text)} is not valid text") from None


def parse_header(text: str) -> tuple[str, bytes]:
    """`-H 'Name: value'` (or `-H 'Name;'` for an empty value, as curl has it).

    The name must be an RFC 9110 token; the value, stripped of surrounding
    blanks, may hold any byte but CR, LF, NUL and other control characters.
    """
    name, sep, value = text.partition(":")
    if not sep and text.endswith(";"):
        name, sep, value = text[:-1], ";", ""
    name, value = name.strip(" \t"), value.strip(" \t")
    if not sep:
        raise UsageError(f"-H: {_quote(text)} is not 'Name: value'")
    if not _TOKEN.fullmatch(name):
        raise UsageError(f"-H: {_quote(name)} is not a valid header name")
    raw = _bytes("-H", value)
    if not _VALUE_OK.fullmatch(raw):
        raise UsageError(f"-H: the value of {name} holds a control character: {_quote(value)}")
    return name, raw


def check_text(option: str, text: str) -> str:
    """A plain one-line value (`--oauth-client-id`, `--oauth-scope`): no control characters."""
    if _CTL.search(text) or _undecodable(text):
        raise UsageError(f"{option}: {_quote(text)} holds a control character or is not text")
    return text


def check_method(text: str) -> str:
    """`-X METHOD`: any RFC 9110 token (`PURGE`, `PROPFIND`, ...)."""
    if not _TOKEN.fullmatch(text):
        raise UsageError(f"-X: {_quote(text)} is not a valid method name")
    return text


def parse_user(text: str) -> tuple[bytes, bytes | None]:
    """`-u user:password` (split at the first colon); `-u user` gives no password (None).

    RFC 7617 forbids control characters in both parts.
    """
    user, sep, password = text.partition(":")
    if not sep and not user:
        raise UsageError("-u: empty user name")
    if _CTL.search(text):
        raise UsageError("-u: the user name or password holds a control character")
    return _bytes("-u", user), _bytes("-u", password) if sep else None


@dataclass(slots=True)
class Form:
    """The `--form` arguments: plain fields, and files (`name@path`) read into memory."""

    fields: list[tuple[str, bytes]] = field(default_factory=list)
    files: list[tuple[str, tuple[str, bytes, str]]] = field(default_factory=list)

    def urlencoded(self) -> bytes:
        """The fields as `application/x-www-form-urlencoded`, byte for byte as typed."""
        pairs = [(name.encode(), value) for name, value in self.fields]
        return urllib.parse.urlencode(pairs).encode("ascii")


def parse_form(items: list[str], form: Form | None = None) -> Form:
    """`--form name=value` (a field) and `--form name@FILE` (a file upload, multipart).

    Whichever of `=` and `@` comes first separates the name, so `email=a@b.c` is a
    field and `doc@./a=b.txt` a file.
    """
    form = form if form is not None else Form()
    for item in items:
        cut = min((i for i in (item.find("="), item.find("@")) if i >= 0), default=-1)
        if cut <= 0:
            raise UsageError(f"--form: {_quote(item)} is not 'name=value' or 'name@FILE'")
        name, kind, rest = item[:cut], item[cut], item[cut + 1 :]
        if _undecodable(name) or _CTL.search(name):
            raise UsageError(f"--form: the field name {_quote(name)} is not printable UTF-8")
        if kind == "=":
            form.fields.append((name, _bytes("--form", rest)))
            continue
        content = _read_file("--form", rest)
        filename = os.path.basename(rest).encode("utf-8", "surrogateescape")
        shown = filename.decode("utf-8", "replace")
        kind_guess = mimetypes.guess_type(shown)[0] or "application/octet-stream"
        form.files.append((name, (shown, content, kind_guess)))
    return form


def read_body_arg(option: str, value: str, stdin: IO[bytes] | None = None) -> bytes:
    """`--data`/`--json` text (the bytes typed), `@FILE`, or `@-` for stdin."""
    if not value.startswith("@"):
        return _bytes(option, value)
    if value == "@-":
        return (stdin or sys.stdin.buffer).read()
    return _read_file(option, value[1:])


def _read_file(option: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"{option}: cannot read {_quote(path)}: {reason}") from None


def check_url(what: str, text: str) -> str:
    """An absolute `http://` or `https://` URL with a host, as httpx parses it."""
    import httpx

    try:
        url = httpx.URL(text)
        host, scheme = url.host, url.scheme
    except (httpx.InvalidURL, ValueError, TypeError) as exc:  # UnicodeError is a ValueError
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UsageError(
            f"{what}: invalid URL {_quote(text)}: {_quote(reason, 80)[1:-1]}"
        ) from None
    if scheme not in ("http", "https") or not host:
        raise UsageError(f"{what}: {_quote(text)} is not an absolute http:// or https:// URL")
    return text


def check_output(path: str) -> None:
    """`-o FILE`: `-` is stdout; otherwise FILE is not a directory and its directory exists."""
    if path == "-":
        return
    if not path or "\0" in path:
        raise UsageError(f"-o: {_quote(path)} is not a file name")
    _bytes("-o", path)
    if os.path.isdir(path):
        raise UsageError(f"-o: {_quote(path)} is a directory")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"-o: directory {_quote(parent)} does not exist")
