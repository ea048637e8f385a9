"""How `cf-http` renders for a terminal: colour (or not) and pretty-printed JSON.

`use_color(mode, stream)` decides colour for one stream: `always`, `never`, or
`auto` (the default: only when the stream is a terminal, `NO_COLOR` is unset or
empty and `TERM` is not `dumb`; https://no-color.org). `Style` wraps text in
ANSI SGR sequences when colour is on and returns it untouched otherwise, so the
same code writes plain text to a pipe. `pretty_json` re-indents a JSON body
keeping its numbers, key order and duplicate keys exactly as sent.
"""

from __future__ import annotations

import json
import os
import re
from typing import IO, Any

__all__ = ["COLOR_MODES", "Style", "is_json", "isatty", "pretty_json", "use_color"]

COLOR_MODES = ("auto", "never", "always")
PRETTY_LIMIT = 16 * 1024 * 1024  # larger JSON bodies are written as received

_RESET = "\x1b[0m"
_CODES = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "blue": "34",
    "magenta": "35",
    "cyan": "36",
    "key": "1;34",
}


def isatty(stream: IO[Any]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def use_color(mode: str, stream: IO[Any], environ: dict[str, str] | None = None) -> bool:
    """Whether to colour what goes to `stream` under `--color=mode`."""
    env = os.environ if environ is None else environ
    if mode == "always":
        return True
    if mode == "never":
        return False
    return isatty(stream) and not env.get("NO_COLOR") and env.get("TERM") != "dumb"


class Style:
    """ANSI colours when `enabled`, plain text otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles or not text:
            return text
        codes = ";".join(_CODES[s] for s in styles)
        return f"\x1b[{codes}m{text}{_RESET}"

    def status(self, line: str, status: int) -> str:
        """A status line, green for 2xx, yellow for 1xx/3xx, red for 4xx/5xx."""
        colour = "green" if 200 <= status < 300 else "red" if status >= 400 else "yellow"
        return self(line, "bold", colour)

    def header(self, name: str, value: str) -> str:
        return f"{self(name, 'cyan')}: {value}"


def is_json(content_type: str) -> bool:
    """`application/json`, `application/problem+json`, `text/json`, ..."""
    mime = content_type.partition(";")[0].strip().lower()
    return mime.endswith(("/json", "+json"))


class _Number(str):
    """A JSON number kept as the text that was sent (`1.0`, `1e400`, `-0`)."""


class _Object(list[tuple[str, Any]]):
    """A JSON object kept as its pairs, in order, duplicates included."""


def _keep_pairs(pairs: list[tuple[str, Any]]) -> _Object:
    return _Object(pairs)


def pretty_json(content: bytes, style: Style) -> str | None:
    """`content` re-indented by two spaces (coloured by `style`); None if it is not JSON."""
    if len(content) > PRETTY_LIMIT:
        return None
    try:
        value = json.loads(
            content,
            object_pairs_hook=_keep_pairs,
            parse_float=_Number,
            parse_int=_Number,
            parse_constant=_Number,
        )
        parts: list[str] = []
        _emit(value, style, 0, parts)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return "".join(parts)


_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _string(text: str) -> str:
    """A JSON string literal, readable (UTF-8) but with DEL, the C1 controls (which some
    terminals obey as escape sequences), line separators and lone surrogates escaped."""
    literal = json.dumps(text, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", literal)


def _emit(value: Any, style: Style, depth: int, out: list[str]) -> None:
    if isinstance(value, _Number):
        out.append(style(str(value), "cyan"))
    elif isinstance(value, str):
        out.append(style(_string(value), "green"))
    elif value is True or value is False or value is None:
        out.append(style(json.dumps(value), "magenta"))
    elif isinstance(value, _Object):
        if not value:
            out.append("{}")
            return
        inner = "  " * (depth + 1)
        out.append("{\n")
        for i, (key, item) in enumerate(value):
            out.append(inner + style(_string(key), "key") + ": ")
            _emit(item, style, depth + 1, out)
            out.append(",\n" if i < len(value) - 1 else "\n")
        out.append("  " * depth + "}")
    else:  # a list
        if not value:
            out.append("[]")
            return
        inner = "  " * (depth + 1)
        out.append("[\n")
        for i, item in enumerate(value):
            out.append(inner)
            _emit(item, style, depth + 1, out)
            out.append(",\n" if i < len(value) - 1 else "\n")
        out.append("  " * depth + "]")
