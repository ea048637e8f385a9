"""cf.loggingutils: the redacting filter, get_logger, install_redaction, configure_logging."""

from __future__ import annotations

import ast
import base64
import io
import json
import logging
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

import cf._redact
import cf.loggingutils
from cf.loggingutils import (
    REDACTED_LOGGERS,
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
        "REDACTED_LOGGERS",
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


# --- library manners: a NullHandler on "cf" ------------------------------------------------


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )


def test_nothing_is_printed_when_no_logging_is_configured() -> None:
    code = (
        "import logging, cf.infrastructure.http_aio, cf.infrastructure.http;"
        "logging.getLogger('cf.infrastructure.http_aio').warning('GET x attempt 1/3 failed');"
        "logging.getLogger('cf.infrastructure.http').error('token refresh failed')"
    )
    result = _run(code)
    assert (result.stdout, result.stderr) == ("", "")


@pytest.mark.parametrize(
    "setup",
    [
        pytest.param("logging.basicConfig()", id="basicConfig"),
        pytest.param("cf.loggingutils.configure_logging()", id="configure_logging"),
    ],
)
def test_configured_logging_still_shows_cf_records(setup: str) -> None:
    code = (
        f"import logging, cf.loggingutils, cf.infrastructure.http_aio; {setup};"
        "logging.getLogger('cf.infrastructure.http_aio').warning('retrying password=%s', 'pw12')"
    )
    result = _run(code)
    assert "retrying password=[redacted]" in result.stderr
    assert "pw12" not in result.stderr


def test_the_null_handler_is_added_once() -> None:
    package = logging.getLogger("cf")
    before = package.handlers[:]
    assert any(isinstance(h, logging.NullHandler) for h in before)
    cf.loggingutils._install_null_handler()
    assert package.handlers == before


# --- every logger of every library, whatever handler shows it -----------------------------

LIBRARIES = ("aiohttp", "h2", "hpack", "httpcore", "httpx", "oauthlib", "urllib3")


def _library_logger_names() -> set[str]:
    """Every logger name the installed libraries ask `logging.getLogger` for (their source)."""
    import importlib.util

    names: set[str] = set()
    call = re.compile(r"getLogger\(\s*(__name__|['\"][^'\"]*['\"])\s*\)")
    for package in LIBRARIES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        for path in root.rglob("*.py"):
            module = ".".join((package, *path.relative_to(root).with_suffix("").parts))
            module = module.removesuffix(".__init__")
            for match in call.finditer(path.read_text(encoding="utf-8", errors="replace")):
                arg = match.group(1)
                names.add(module if arg == "__name__" else arg.strip("'\""))
    names.discard("spam")  # aiohttp's AccessLogger docstring example
    return names


def test_every_library_logger_is_covered() -> None:
    import importlib.util

    names = _library_logger_names()
    assert {"httpcore.http2", "oauthlib.oauth2.rfc6749.endpoints.token"} <= names
    if importlib.util.find_spec("hpack") is not None:  # with h2 (the test extra)
        assert {"hpack.hpack", "hpack.table"} <= names
    uncovered = sorted(n for n in names if n.partition(".")[0] not in REDACTED_LOGGERS)
    assert uncovered == []


LEAKY = (
    "GET https://u:pw-LEAK1@h/p?access_token=LEAK2&password=LEAK3 with Authorization: Bearer LEAK4"
)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


def _record_texts(records: list[logging.LogRecord]) -> list[str]:
    """What a formatter or a handler can show of each record (the live exc_info object aside:
    scrubbing exceptions is `cf._redact.redact_exception_chain`'s job, in the transports)."""
    texts = []
    for r in records:
        shown = {k: v for k, v in vars(r).items() if k != "exc_info"}
        texts += [str(r.msg), repr(r.args), r.getMessage(), str(r.exc_text), repr(shown)]
    return texts


@pytest.mark.parametrize("name", sorted(_library_logger_names()) + ["cf.anything.deep"])
def test_a_users_own_handler_on_any_library_logger_sees_no_secret(name: str) -> None:
    logger = logging.getLogger(name)
    handler = _Collect()
    logger.addHandler(handler)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.debug("%s", LEAKY)
        try:
            raise ValueError("refresh_token=LEAK5")
        except ValueError:
            logger.exception("failed: %r", {"client_secret": "LEAK6"})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
    assert len(handler.records) == 2
    for text in _record_texts(handler.records) + handler.lines:
        assert "LEAK" not in text, text


def test_records_made_by_makeLogRecord_still_work() -> None:
    record = logging.makeLogRecord({"msg": "hello", "name": "httpx"})
    assert record.getMessage() == "hello"


def test_filters_still_redact_if_the_record_factory_is_replaced() -> None:
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)  # an application that does not chain
    handler = _Collect()
    logger = logging.getLogger("httpcore.http11")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("%s", LEAKY)
        install_redaction()  # puts the factory back
        assert isinstance(logging.getLogRecordFactory(), cf.loggingutils._RedactingRecordFactory)
        logging.getLogger("httpcore.http11.child").debug("%s", LEAKY)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logging.setLogRecordFactory(previous)
    assert len(handler.records) == 2
    for text in _record_texts(handler.records):
        assert "LEAK" not in text, text


def test_the_record_factory_is_installed_once() -> None:
    install_redaction()
    install_redaction()
    factory = logging.getLogRecordFactory()
    assert isinstance(factory, cf.loggingutils._RedactingRecordFactory)
    assert not isinstance(factory.previous, cf.loggingutils._RedactingRecordFactory)


def test_records_of_other_loggers_are_left_alone() -> None:
    record = logging.getLogRecordFactory()(
        "app.mine", logging.INFO, __file__, 1, "token=%s", ("mine",), None
    )
    assert record.args == ("mine",) and record.msg == "token=%s"


# --- HTTP/2: hpack and h2 at DEBUG, driven for real ------------------------------------------

TOKEN = "h2-TOKEN-0123456789abcdef"
PASSWORD = 'pa55 w/"rd"é'
CLIENT_SECRET = "client-S3CRET-xyz"
BASIC = base64.b64encode(f"my-client:{CLIENT_SECRET}".encode()).decode()


def _forms(secret: str) -> set[str]:
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    forms |= {json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    return forms


def _h2_headers() -> list[tuple[str, str]]:
    return [
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "api.example.com"),
        (":path", f"/v1?access_token={TOKEN}&password={quote(PASSWORD)}&page=2"),
        ("authorization", f"Bearer {TOKEN}"),
        ("proxy-authorization", f"Basic {BASIC}"),
        ("x-session", TOKEN),
        ("cookie", f"sid={TOKEN}"),
        ("accept", "application/json"),
    ]


class _TraceAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """h2 calls `logger.trace(...)` too: what its docs ask of the logger it is given."""

    def trace(self, msg: object, *args: object) -> None:
        self.debug(msg, *args)


def _drive_http2() -> None:
    h2_connection = pytest.importorskip("h2.connection")
    h2_config = pytest.importorskip("h2.config")
    hpack = pytest.importorskip("hpack")
    headers = _h2_headers()
    for huffman in (True, False):
        encoder, decoder = hpack.Encoder(), hpack.Decoder()
        for _ in range(2):  # the second block reuses the dynamic table
            decoder.decode(encoder.encode(headers, huffman=huffman))
    client = h2_connection.H2Connection(
        h2_config.H2Configuration(client_side=True, logger=_TraceAdapter(logging.getLogger("h2")))
    )
    server = h2_connection.H2Connection(
        h2_config.H2Configuration(
            client_side=False, logger=_TraceAdapter(logging.getLogger("h2.server"), {})
        )
    )
    client.initiate_connection()
    server.initiate_connection()
    client.send_headers(1, headers)
    client.send_data(1, f"grant_type=x&client_secret={CLIENT_SECRET}".encode(), end_stream=True)
    events = server.receive_data(client.data_to_send())
    server.send_headers(1, [(":status", "200"), ("set-cookie", f"session={TOKEN}")])
    body = json.dumps({"access_token": TOKEN, "refresh_token": TOKEN + "r"}).encode()
    server.send_data(1, body, end_stream=True)
    client.receive_data(server.data_to_send())
    assert any(type(e).__name__ == "RequestReceived" for e in events)


def _decoded_header_blocks(records: list[logging.LogRecord]) -> list[str]:
    """The attack: decode the HPACK header blocks that hpack records dump (each with a fresh
    decoder: the first block of a connection needs no earlier state)."""
    hpack = pytest.importorskip("hpack")
    decoded = []
    quiet = logging.getLogger("hpack")
    level, quiet.level = quiet.level, logging.INFO  # decoding here logs too: not into `records`
    try:
        decoded = _decode_blocks(hpack, list(records))
    finally:
        quiet.level = level
    return decoded


def _decode_blocks(hpack: Any, records: list[logging.LogRecord]) -> list[str]:
    decoded = []
    for record in records:
        message = record.getMessage()
        for prefix in ("Encoded header block to ", "Decoding "):
            payload = message.removeprefix(prefix)
            if (
                record.name.startswith("hpack")
                and payload != message
                and payload[:2]
                in (
                    "b'",
                    'b"',
                )
            ):
                try:
                    block = ast.literal_eval(payload)
                    decoded.append(repr(hpack.Decoder().decode(block)))
                except hpack.HPACKError:
                    continue
    return decoded


def _assert_http2_records_clean(records: list[logging.LogRecord], lines: list[str]) -> None:
    names = {r.name for r in records}
    assert {"hpack.hpack", "h2", "h2.server"} <= names, names
    assert any("Encoded header block" in r.getMessage() for r in records)
    secrets = _forms(TOKEN) | _forms(PASSWORD) | _forms(CLIENT_SECRET) | {BASIC}
    for text in _record_texts(records) + lines + _decoded_header_blocks(records):
        for secret in secrets:
            assert secret not in text, (secret, text)
    # the header blocks are gone, ordinary headers are still readable
    messages = [r.getMessage() for r in records]
    assert any("Encoded header block to <" in m and " bytes>" in m for m in messages)
    assert any("b'accept'=b'application/json'" in m for m in messages)


@pytest.fixture
def _http2_debug() -> Iterator[None]:
    names = ("hpack", "h2")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.DEBUG)
    yield
    for n, level in levels.items():
        logging.getLogger(n).setLevel(level)


@pytest.mark.usefixtures("_http2_debug")
def test_http2_at_debug_with_configure_logging() -> None:
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    _drive_http2()
    _assert_http2_records_clean(collect.records, stream.getvalue().splitlines())


@pytest.mark.usefixtures("_http2_debug")
def test_http2_at_debug_with_a_plain_root_handler() -> None:
    stream = io.StringIO()
    root = logging.getLogger()
    plain = logging.StreamHandler(stream)  # what logging.basicConfig(level=DEBUG) installs
    root.addHandler(plain)
    root.setLevel(logging.DEBUG)
    collect = _Collect()
    root.addHandler(collect)
    _drive_http2()
    _assert_http2_records_clean(collect.records, stream.getvalue().splitlines())


@pytest.mark.usefixtures("_http2_debug")
def test_http2_at_debug_with_handlers_on_the_library_loggers() -> None:
    collect = _Collect()
    loggers = [logging.getLogger(n) for n in ("hpack.hpack", "hpack.table", "h2", "h2.server")]
    for logger in loggers:
        logger.addHandler(collect)
        logger.propagate = False
    try:
        _drive_http2()
    finally:
        for logger in loggers:
            logger.removeHandler(collect)
            logger.propagate = True
    _assert_http2_records_clean(collect.records, collect.lines)


# --- HTTP/2 end to end: httpx -> httpcore.http2 -> h2/hpack, at DEBUG ------------------------


@pytest.fixture
def h2c_url() -> Iterator[str]:
    """A cleartext HTTP/2 server (prior knowledge) on 127.0.0.1, built on h2: one JSON reply
    holding tokens and a Set-Cookie, for every request."""
    import socket
    import threading

    h2_connection = pytest.importorskip("h2.connection")
    h2_config = pytest.importorskip("h2.config")
    h2_events = pytest.importorskip("h2.events")
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve(conn: socket.socket) -> None:
        h2 = h2_connection.H2Connection(h2_config.H2Configuration(client_side=False))
        h2.initiate_connection()
        conn.sendall(h2.data_to_send())
        conn.settimeout(5)
        with conn:
            while not stopping.is_set():
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                for event in h2.receive_data(data):
                    if isinstance(event, h2_events.StreamEnded):
                        reply = json.dumps({"access_token": TOKEN, "refresh_token": TOKEN + "r"})
                        h2.send_headers(
                            event.stream_id,
                            [(":status", "200"), ("set-cookie", f"session={TOKEN}")],
                        )
                        h2.send_data(event.stream_id, reply.encode(), end_stream=True)
                conn.sendall(h2.data_to_send())

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, name="cf-test-h2c", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        thread.join(5)
        listener.close()


def _h2c_request(base_url: str) -> tuple[str, dict[str, str]]:
    url = f"{base_url}/v1?access_token={TOKEN}&password={quote(PASSWORD)}&page=2"
    return url, {"Authorization": f"Bearer {TOKEN}", "X-Session": TOKEN, "Accept": "*/*"}


@pytest.mark.usefixtures("_http2_debug")
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_httpx_over_http2_at_debug_logs_no_secret(h2c_url: str, mode: str) -> None:
    import asyncio

    root = logging.getLogger()
    stream = io.StringIO()
    plain = logging.StreamHandler(stream)  # logging.basicConfig(level=DEBUG)
    collect = _Collect()
    root.addHandler(plain)
    root.addHandler(collect)
    root.setLevel(logging.DEBUG)
    url, headers = _h2c_request(h2c_url)
    if mode == "sync":
        with httpx.Client(http1=False, http2=True) as client:
            response = client.get(url, headers=headers)
    else:

        async def call() -> httpx.Response:
            async with httpx.AsyncClient(http1=False, http2=True) as client:
                return await client.get(url, headers=headers)

        response = asyncio.run(call())
    assert response.http_version == "HTTP/2" and response.json()["access_token"] == TOKEN
    names = {r.name for r in collect.records}
    assert {"httpx", "httpcore.http2", "hpack.hpack"} <= names, names
    secrets = _forms(TOKEN) | _forms(PASSWORD)
    texts = _record_texts(collect.records) + stream.getvalue().splitlines()
    for text in texts + _decoded_header_blocks(collect.records):
        for secret in secrets:
            assert secret not in text, (secret, text)


def test_odd_hpack_records_keep_their_message() -> None:
    handler = _Collect()
    logger = logging.getLogger("hpack.hpack")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug({"token": "ODD1"})  # an unhashable msg
        logger.debug("Decoded %s", (b"authorization", b"Bearer ODD2"))
        logger.debug("Adding %s=%s", b"x", memoryview(b"ODD3"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    messages = [r.getMessage() for r in handler.records]
    assert messages == [
        "{'token': '[redacted]'}",
        "Decoded (b'authorization', b'Bearer [redacted]')",
        "Adding <1 bytes>=<4 bytes>",
    ]
