"""cf.loggingutils: the redacting filter, get_logger, install_redaction, configure_logging."""

from __future__ import annotations

import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

import cf._redact
import cf.loggingutils
from cf.loggingutils import (
    THIRD_PARTY_LOGGERS,
    RedactingFilter,
    configure_logging,
    get_logger,
    install_redaction,
)

ROOT = Path(__file__).resolve().parent.parent

# Credentials that must never reach a log line, and the text that carries each of them.
SECRETS = ["MSGBEARER1", "ARGPASSWORD2", "ARGTOKEN3", "EXTRASECRET4", "EXCSECRET5", "STACKTOK6"]
MSG = "calling with Authorization: Bearer MSGBEARER1"
ARG_URL = "https://alice:ARGPASSWORD2@api.example.com/v1?access_token=ARGTOKEN3&page=2"
EXTRA_URL = "https://api.example.com/cb?client_secret=EXTRASECRET4&state=s"
EXC_TEXT = '{"error": "bad", "refresh_token": "EXCSECRET5"}'


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    cf._redact._clear_secrets()


def _log_everything(logger: logging.Logger) -> None:
    logger.debug(MSG)
    logger.debug("GET %s -> %d", ARG_URL, 500, extra={"url": EXTRA_URL})
    try:
        raise ValueError(EXC_TEXT)
    except ValueError:
        logger.exception("token request failed for %s", ARG_URL)
    logger.debug("stack password=STACKTOK6", stack_info=True)


def _assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
    assert "[redacted]" in text


def test_exported_names() -> None:
    assert sorted(cf.loggingutils.__all__) == [
        "RedactingFilter",
        "THIRD_PARTY_LOGGERS",
        "configure_logging",
        "get_logger",
        "install_redaction",
    ]


def test_get_logger_returns_a_standard_logger_with_one_filter() -> None:
    logger = get_logger("cf.test.once")
    assert logger is logging.getLogger("cf.test.once")
    get_logger("cf.test.once")
    assert sum(isinstance(f, RedactingFilter) for f in logger.filters) == 1


def test_records_are_redacted_in_caplog(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="cf.test")
    _log_everything(get_logger("cf.test"))

    assert len(caplog.records) == 4
    _assert_clean(caplog.text)
    for record in caplog.records:
        assert record.args is None
        _assert_clean(record.getMessage() + str(getattr(record, "url", "[redacted]")))
    first, second, third, fourth = caplog.records
    assert first.getMessage() == "calling with Authorization: Bearer [redacted]"
    assert second.getMessage() == (
        "GET https://alice:[redacted]@api.example.com/v1?access_token=[redacted]&page=2 -> 500"
    )
    assert vars(second)["url"] == "https://api.example.com/cb?client_secret=[redacted]&state=s"
    assert third.exc_text is not None and "ValueError" in third.exc_text
    assert "EXCSECRET5" not in third.exc_text
    assert fourth.stack_info is not None and "STACKTOK6" not in fourth.stack_info


def test_records_are_redacted_in_a_handlers_output() -> None:
    logger = get_logger("cf.test.handler")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s url=%(url)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        for record_extra in ({"url": EXTRA_URL},):
            logger.debug(MSG, extra=record_extra)
            logger.debug("GET %s", ARG_URL, extra=record_extra)
            try:
                raise RuntimeError(EXC_TEXT)
            except RuntimeError:
                logger.exception("failed", extra=record_extra)
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    _assert_clean(output)
    assert "Traceback" in output and "RuntimeError" in output


def test_extras_of_other_types(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cf.test.extras")
    get_logger("cf.test.extras").info(
        "request",
        extra={
            "request_url": httpx.URL("https://u:pw-secret-1@h/?token=tok-secret-2"),
            "headers": {"Authorization": "Bearer hdr-secret-3", "Accept": "*/*"},
            "body": "grant_type=client_credentials&client_secret=body-secret-4",
            "attempt": 2,
        },
    )
    (record,) = caplog.records
    assert vars(record)["request_url"] == "https://u:[redacted]@h/?token=[redacted]"
    assert vars(record)["headers"] == [("Authorization", "Bearer [redacted]"), ("Accept", "*/*")]
    assert vars(record)["body"] == "grant_type=client_credentials&client_secret=[redacted]"
    assert vars(record)["attempt"] == 2


def test_registered_secrets_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    cf._redact.register_secret("literal-client-secret")
    caplog.set_level(logging.INFO, logger="cf.test.registered")
    get_logger("cf.test.registered").info("config: %r", {"secret_ish": "literal-client-secret"})
    assert "literal-client-secret" not in caplog.text
    assert "[redacted]" in caplog.text


def test_filter_never_drops_or_raises_on_bad_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="cf.test.bad")
    logger = get_logger("cf.test.bad")
    logger.info("%d items, password=%s", "not-a-number", "hunter22")  # bad format args
    logger.info({"access_token": "dict-token"})  # a non-str message
    logger.info(None)
    logger.info("%(user)s %(missing)s 100%% %d", {"user": "bob"}, extra={"x": 1})
    logger.info("%s", "one", "extra-arg")
    assert len(caplog.records) == 5
    assert "hunter22" not in caplog.text and "dict-token" not in caplog.text
    assert caplog.records[0].getMessage() == "not-a-number items, password=[redacted]"
    assert caplog.records[2].getMessage() == "None"
    assert caplog.records[3].getMessage() == "bob %(missing)s 100% %d"
    assert caplog.records[4].getMessage() == "one extra-arg"


def test_filter_survives_a_hand_made_exc_info() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "oops", None, (None, None, None))
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "oops"
    assert record.exc_text is not None


def test_filter_is_idempotent() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "token=%s", ("abc123",), None)
    redacting = RedactingFilter()
    assert redacting.filter(record) is True
    assert redacting.filter(record) is True
    assert record.getMessage() == "token=[redacted]"


def test_filter_redacts_a_record_another_handler_already_formatted() -> None:
    try:
        raise KeyError("password=early-secret")
    except KeyError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "oops %s", ("password=early-secret",), sys.exc_info()
        )
    logging.Formatter().format(record)  # sets record.message and record.exc_text, unredacted
    RedactingFilter().filter(record)
    assert "early-secret" not in record.message
    assert record.exc_text is not None and "early-secret" not in record.exc_text
    assert "early-secret" not in logging.Formatter().format(record)


def test_install_redaction_on_named_and_default_loggers(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction("cf.test.thirdparty")
    caplog.set_level(logging.INFO)
    logging.getLogger("cf.test.thirdparty").info("HTTP Request: GET %s", ARG_URL)
    assert "ARGTOKEN3" not in caplog.text and "ARGPASSWORD2" not in caplog.text

    install_redaction()
    install_redaction()
    for name in THIRD_PARTY_LOGGERS:
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, RedactingFilter) for f in filters) == 1
    assert "httpx" in THIRD_PARTY_LOGGERS and "httpcore.http11" in THIRD_PARTY_LOGGERS


# --- configure_logging ---------------------------------------------------------------------


def _our_handlers() -> list[logging.Handler]:
    return [h for h in logging.getLogger().handlers if type(h).__name__ == "_CfHandler"]


def test_configure_logging_plain_format() -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    logger = logging.getLogger("app.plain")  # no filter of its own: the handler's filter acts
    logger.info("hello %s", "world", extra={"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"})
    logger.debug("login password=plain-secret")
    lines = stream.getvalue().splitlines()
    pattern = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO app\.plain: hello world"
    assert re.fullmatch(pattern + r" \[trace_id=4bf92f3577b34da6a3ce929d0e0e4736\]", lines[0])
    assert lines[1].endswith("DEBUG app.plain: login password=[redacted]")
    assert logging.getLogger().level == logging.DEBUG


def test_configure_logging_json_lines() -> None:
    stream = io.StringIO()
    configure_logging(logging.INFO, json=True, stream=stream)
    logger = logging.getLogger("app.json")
    logger.debug("not shown")
    logger.info("GET %s", ARG_URL, extra={"trace_id": "abc"})
    try:
        raise ValueError(EXC_TEXT)
    except ValueError:
        logger.exception("multi\nline")
    output = stream.getvalue()
    _assert_clean(output)
    lines = output.splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message", "trace_id"}
    assert first["level"] == "INFO" and first["logger"] == "app.json"
    assert first["trace_id"] == "abc"
    assert first["message"].startswith("GET https://alice:[redacted]@")
    moment = datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - moment) < timedelta(minutes=5)
    assert second["trace_id"] is None
    assert second["message"] == "multi\nline"
    assert second["level"] == "ERROR"
    assert "Traceback" in second["exception"] and "ValueError" in second["exception"]


def test_configure_logging_is_idempotent() -> None:
    first, second = io.StringIO(), io.StringIO()
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    configure_logging(stream=first)
    configure_logging(json=True, stream=second)
    assert len(_our_handlers()) == 1
    assert other in logging.getLogger().handlers  # handlers of others are left alone
    logging.getLogger("app.twice").warning("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_configure_logging_defaults_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    logging.getLogger("app.stderr").info("to stderr")
    logging.getLogger("app.stderr").debug("below INFO")
    captured = capsys.readouterr()
    assert "INFO app.stderr: to stderr" in captured.err
    assert "below INFO" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("level", [pytest.param("LOUD", id="unknown-name"), pytest.param(2.5)])
def test_configure_logging_rejects_bad_levels(level: object) -> None:
    before = logging.getLogger().handlers[:]
    with pytest.raises((ValueError, TypeError)):
        configure_logging(level)  # type: ignore[arg-type]
    assert logging.getLogger().handlers == before


def test_import_adds_no_root_handler() -> None:
    code = (
        "import logging, cf.loggingutils, cf._redact;"
        "root = logging.getLogger();"
        "print(len(root.handlers), root.level)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["0", str(logging.WARNING)]
