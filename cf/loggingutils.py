"""Logging for cf: `get_logger`, `configure_logging` and the redaction filter.

The library adds no handler to the root logger. Its loggers (and, through
`install_redaction`, the httpx/httpcore/aiohttp/oauthlib loggers that can log
request details) carry a `RedactingFilter`, so that no record they emit holds an
Authorization value, a token, a client secret or a password-like query value.
`configure_logging` is for applications and scripts: one stderr handler on the
root logger, plain or JSON lines, with the same filter on the handler.
"""

from __future__ import annotations

import json as _json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TextIO

import httpx

from cf._redact import redact_headers, redact_text, redact_url

__all__ = [
    "THIRD_PARTY_LOGGERS",
    "RedactingFilter",
    "configure_logging",
    "get_logger",
    "install_redaction",
]

THIRD_PARTY_LOGGERS: tuple[str, ...] = (
    "httpx",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "aiohttp.client",
    "aiohttp.internal",
    "oauthlib",
    "oauthlib.oauth2.rfc6749",
)
"""Loggers of the libraries cf uses that may log URLs, headers or token responses."""

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_REDACTED_MARK = "_cf_redacted"


class RedactingFilter(logging.Filter):
    """Rewrite a record so that its message, args, string extras and exception text hold no secret.

    The message is formatted once with its args, redacted and stored back with
    `args=None`; string `extra` attributes are redacted (`url`-like ones as URLs,
    `headers`-like ones as headers); the exception and stack text are formatted
    and redacted into `record.exc_text` / `record.stack_info`, which formatters
    use as is. It never drops a record and never raises; applying it twice is a no-op.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _REDACTED_MARK, False):
            return True
        try:
            self._redact(record)
        except Exception:  # pragma: no cover - last line of defence: keep the record, lose text
            record.msg, record.args = "[unloggable record: redaction failed]", None
        setattr(record, _REDACTED_MARK, True)
        return True

    @staticmethod
    def _redact(record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # bad format args: show what can be shown, still redacted
            message = _lenient_format(record.msg, record.args)
        record.msg, record.args = redact_text(message), None
        if isinstance(getattr(record, "message", None), str):  # already formatted elsewhere
            record.message = record.msg
        for key, value in list(vars(record).items()):
            if key in _RECORD_ATTRS or key.startswith("_"):
                continue
            lowered = key.lower()
            if isinstance(value, httpx.URL) or ("url" in lowered and isinstance(value, str)):
                setattr(record, key, redact_text(redact_url(value)))
            elif isinstance(value, str):
                setattr(record, key, redact_text(value))
            elif "header" in lowered and isinstance(value, Mapping | list | tuple):
                setattr(record, key, redact_headers(value))
        if record.exc_info and not record.exc_text:
            try:
                lines = traceback.format_exception(*record.exc_info)
                record.exc_text = "".join(lines).rstrip("\n")
            except Exception:  # a hand-made exc_info; never let it cost the record
                record.exc_text = f"[unformattable exc_info: {record.exc_info!r}]"
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)


_PERCENT_SPEC = re.compile(r"%(?:\((?P<key>[^)]*)\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[a-zA-Z%]")


def _lenient_format(msg: object, args: object) -> str:
    """Substitute `args` into `msg` one by one with str(), as `msg % args` would have."""
    mapping = args if isinstance(args, Mapping) else None
    if isinstance(args, tuple):
        values = list(args)
    else:
        values = [] if args is None or mapping is not None else [args]

    def substitute(match: re.Match[str]) -> str:
        spec, key = match.group(0), match.group("key")
        if spec == "%%":
            return "%"
        if mapping is not None:
            return str(mapping.get(key, spec))
        return str(values.pop(0)) if values else spec

    return " ".join([_PERCENT_SPEC.sub(substitute, str(msg)), *map(str, values)])


_FILTER = RedactingFilter()
_attach_lock = threading.Lock()


def _attach(logger: logging.Logger) -> None:
    with _attach_lock:
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(_FILTER)


def get_logger(name: str) -> logging.Logger:
    """Return `logging.getLogger(name)` with a `RedactingFilter` attached (once).

    Logger filters do not see records propagated from child loggers, so every
    logger handed out gets its own.
    """
    logger = logging.getLogger(name)
    _attach(logger)
    return logger


def install_redaction(*logger_names: str) -> None:
    """Attach a `RedactingFilter` to the named loggers (default: `THIRD_PARTY_LOGGERS`).

    cf's client modules call this for the third-party loggers at import.
    """
    for name in logger_names or THIRD_PARTY_LOGGERS:
        _attach(logging.getLogger(name))


def _iso_utc(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _trace_id(record: logging.LogRecord) -> str | None:
    value = getattr(record, "trace_id", None)
    return None if value is None else str(value)


class _PlainFormatter(logging.Formatter):
    """`time level logger: message [trace_id=...]`, then the traceback if any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return _iso_utc(record.created)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        trace_id = _trace_id(record)
        return f"{line} [trace_id={trace_id}]" if trace_id else line


class _JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, trace_id (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": _iso_utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": _trace_id(record),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return _json.dumps(entry, ensure_ascii=False, default=str)


if TYPE_CHECKING:
    _StreamHandler = logging.StreamHandler[TextIO]
else:  # not subscriptable at runtime before Python 3.11
    _StreamHandler = logging.StreamHandler


class _CfHandler(_StreamHandler):
    """The handler `configure_logging` installs; recognised (and replaced) on a second call."""


def configure_logging(
    level: str | int = "INFO", json: bool = False, stream: TextIO | None = None
) -> None:
    """Send log records to stderr (or `stream`) through one redacting handler on the root logger.

    Calling it again replaces the handler it installed before; handlers added by
    others are left alone. `json=True` writes one JSON object a line with keys
    `time` (ISO 8601, UTC), `level`, `logger`, `message`, `trace_id` (the record's
    `trace_id` attribute, or null) and `exception` when there is one.
    """
    if isinstance(level, str):
        level = level.strip().upper()
    root = logging.getLogger()
    handler = _CfHandler(sys.stderr if stream is None else stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(_JsonFormatter() if json else _PlainFormatter())
    root.setLevel(level)  # bad level: ValueError/TypeError before anything changes
    for old in [h for h in root.handlers if isinstance(h, _CfHandler)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
