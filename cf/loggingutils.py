"""Logging for cf: `get_logger`, `configure_logging` and the redaction of every record.

Library manners: cf adds no handler to the root logger, and its package logger
``cf`` has a `logging.NullHandler`, so a script that configures no logging
prints nothing (not even retry warnings through logging's last resort).
`configure_logging` is for applications and scripts: one stderr handler on the
root logger, plain or JSON lines, with a `RedactingFilter` on the handler.

Redaction reaches every record of cf and of the libraries under it
(`REDACTED_LOGGERS`: httpx, httpcore, h2, hpack, aiohttp, oauthlib, urllib3),
whatever handler shows it (`basicConfig`, `configure_logging`, pytest's caplog,
a handler of the user's own on any logger), in two ways:

- a `logging.setLogRecordFactory` wrapper, installed on import, redacts each
  record of those loggers *and their children* as it is created: a filter on a
  logger sees only records logged on that very logger, and these libraries
  log under dozens of module names (`oauthlib.oauth2.rfc6749.endpoints.token`,
  `hpack.hpack`, ...) and h2 under whatever logger it is given;
- a `RedactingFilter` on each logger name they use (`THIRD_PARTY_LOGGERS`) and
  on every logger from `get_logger`, in case an application later replaces
  the record factory without chaining to the previous one; the filter also
  redacts `extra=` attributes, which are set after the factory has run.

hpack and h2 dump HPACK header blocks and raw frames as bytes, in which a
Huffman-coded ``authorization: Bearer ...`` cannot be found by any text rule:
in their records every bytes argument is replaced by ``<N bytes>`` and every
``<hex:...>`` dump by ``<hex:[redacted]>``; header names and values they log
one by one are redacted as headers.
"""

from __future__ import annotations

import json as _json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

import httpx

from cf._redact import REDACTED, redact_headers, redact_text, redact_url

__all__ = [
    "REDACTED_LOGGERS",
    "THIRD_PARTY_LOGGERS",
    "RedactingFilter",
    "configure_logging",
    "get_logger",
    "install_redaction",
]

REDACTED_LOGGERS: tuple[str, ...] = (
    "cf",
    "aiohttp",
    "h2",
    "hpack",
    "httpcore",
    "httpx",
    "httpx_aiohttp",
    "hyperframe",
    "oauthlib",
    "urllib3",
)
"""Top-level loggers whose records, and those of all their children, are redacted."""

THIRD_PARTY_LOGGERS: tuple[str, ...] = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "h2",
    "hpack",
    "hpack.hpack",
    "hpack.table",
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "httpx",
    "oauthlib",
    "oauthlib.oauth2.rfc6749",
    "oauthlib.oauth2.rfc6749.endpoints.base",
    "oauthlib.oauth2.rfc6749.endpoints.token",
    "oauthlib.oauth2.rfc6749.grant_types.base",
    "oauthlib.oauth2.rfc6749.grant_types.client_credentials",
    "urllib3",
    "urllib3.connection",
    "urllib3.connectionpool",
    "urllib3.http2.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
)
"""The logger names (read in their sources) on which those libraries log request details."""

_COVERED = frozenset(REDACTED_LOGGERS)
_BINARY_LOGGERS = frozenset({"h2", "hpack", "hyperframe"})
# hpack's messages that show one header: (name, value) are the first two arguments.
_HPACK_PAIR_MESSAGES = frozenset(
    {
        "Adding %s=%s to the header table, sensitive:%s, huffman:%s",
        "Evicting %s: %s from the header table",
    }
)
_HEX_DUMP = re.compile(r"<hex:[0-9a-fA-F.]*>")

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
_MESSAGE_DONE = "_cf_redacted"
_EXTRAS_DONE = "_cf_redacted_extras"


def _top(name: object) -> str:
    return name.partition(".")[0] if isinstance(name, str) else ""


class RedactingFilter(logging.Filter):
    """Rewrite a record so that its message, args, string extras and exception text hold no secret.

    The message is formatted once with its args, redacted and stored back with
    `args=None`; string `extra` attributes are redacted (`url`-like ones as URLs,
    `headers`-like ones as headers); the exception and stack text are formatted
    and redacted into `record.exc_text` / `record.stack_info`, which formatters
    use as is. It never drops a record and never raises; applying it twice is a no-op.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, _MESSAGE_DONE, False):
            _redact_message(record)
        if not getattr(record, _EXTRAS_DONE, False):
            try:
                _redact_extras(record)
            except Exception:  # pragma: no cover - last line of defence
                pass
            setattr(record, _EXTRAS_DONE, True)
        return True


def _redact_message(record: logging.LogRecord) -> None:
    """Redact msg/args, exception and stack text in place (once); never raises."""
    try:
        binary = _top(record.name) in _BINARY_LOGGERS
        if binary:
            _hide_binary(record)
        try:
            message = record.getMessage()
        except Exception:  # bad format args: show what can be shown, still redacted
            message = _lenient_format(record.msg, record.args)
        if binary:
            message = _HEX_DUMP.sub("<hex:[redacted]>", message)
        record.msg, record.args = redact_text(message), None
        if isinstance(getattr(record, "message", None), str):  # already formatted elsewhere
            record.message = record.msg
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
    except Exception:  # pragma: no cover - last line of defence: keep the record, lose text
        record.msg, record.args = "[unloggable record: redaction failed]", None
        record.exc_text = record.stack_info = None
    setattr(record, _MESSAGE_DONE, True)


def _hide_binary(record: logging.LogRecord) -> None:
    """hpack/h2 records: bytes arguments become `<N bytes>`, logged headers are redacted."""
    args = record.args
    if not isinstance(args, tuple) or not args:
        return
    values: list[Any] = list(args)
    pair = isinstance(record.msg, str) and record.msg in _HPACK_PAIR_MESSAGES and len(values) >= 2
    for i, value in enumerate(values):
        if pair and i < 2:
            continue
        if isinstance(value, bytes | bytearray | memoryview):
            values[i] = f"<{len(value)} bytes>"
        elif isinstance(value, tuple) and len(value) == 2:  # hpack's HeaderTuple
            values[i] = _redacted_pair(value[0], value[1])
    if pair:
        values[0], values[1] = _redacted_pair(values[0], values[1])
    record.args = tuple(values)


def _redacted_pair(name: object, value: object) -> tuple[Any, Any]:
    ((shown_name, shown_value),) = redact_headers([(name, value)]) or [(REDACTED, REDACTED)]
    if isinstance(name, bytes | bytearray | memoryview):
        return bytes(name), shown_value.encode("latin-1", "replace")
    return shown_name, shown_value


def _redact_extras(record: logging.LogRecord) -> None:
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


class _RedactingRecordFactory:
    """Wraps the record factory in place: records of `REDACTED_LOGGERS` come out redacted."""

    def __init__(self, previous: Callable[..., logging.LogRecord]) -> None:
        self.previous = previous

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        if _top(getattr(record, "name", None)) in _COVERED:
            _redact_message(record)
        return record


def _install_record_factory() -> None:
    with _attach_lock:
        current = logging.getLogRecordFactory()
        if not isinstance(current, _RedactingRecordFactory):  # deeper in a chain: marks dedupe
            logging.setLogRecordFactory(_RedactingRecordFactory(current))


def _install_null_handler() -> None:
    package = logging.getLogger("cf")
    with _attach_lock:
        if not any(isinstance(h, logging.NullHandler) for h in package.handlers):
            package.addHandler(logging.NullHandler())


def install_redaction(*logger_names: str) -> None:
    """Attach a `RedactingFilter` to the named loggers (default: `THIRD_PARTY_LOGGERS`).

    Also (re)installs the redacting record factory if an application replaced
    it. cf does this for the defaults when `cf.loggingutils` is imported.
    """
    _install_record_factory()
    for name in logger_names or THIRD_PARTY_LOGGERS:
        _attach(logging.getLogger(name))


install_redaction()
_install_null_handler()


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
