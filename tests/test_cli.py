"""`cf-http` run as a command (`python -m cf`) through pipes, against the test servers.

Every behaviour of a request runs in both modes (`MODES`: the async client, and
`--sync`). Each subprocess costs about 0.3 s, so a test checks several things
at once. Usage errors are checked in-process through `main()` (they exit before
anything is imported or sent) and once through a subprocess. What a terminal
shows (colour, pretty JSON, the progress bar, the password prompt) is in
`tests/test_cli_tty.py`.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from cf._cli import (
    EXIT_OAUTH,
    EXIT_OK,
    EXIT_STATUS,
    EXIT_TIMEOUT,
    EXIT_TRANSPORT,
    EXIT_USAGE,
    SECRET_ENV,
    main,
)
from tests.servers.app import AppServer
from tests.servers.oauth import OAuthServer
from tests.servers.raw import RawServer

MODES = [pytest.param([], id="async"), pytest.param(["--sync"], id="sync")]
TRACE_LINE = re.compile(r"cf-http: trace_id=([0-9a-f]{32})\n")
# What an engine's own wording looks like; none of it may reach the error line.
ENGINE_TEXT = re.compile(r"ssl:default|Errno|Connect call|aiohttp|httpcore|h11|payload|bytearray")
ENV_DROP = (SECRET_ENV, "NO_COLOR", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "SSL_CERT_FILE")


def cf_http(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run `cf-http ARGS` with stdin, stdout and stderr on pipes."""
    environ = {k: v for k, v in os.environ.items() if k.upper() not in ENV_DROP}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cf", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        env=environ,
        cwd=cwd,
        timeout=30,
        check=False,
    )


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


def echoed(result: subprocess.CompletedProcess[bytes]) -> dict[str, object]:
    """The /echo answer; the command must have succeeded."""
    assert result.returncode == EXIT_OK, err(result)
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


def header(body: dict[str, object], name: str) -> str | None:
    """The first value of header `name` as the echo server received it."""
    pairs = body["headers"]
    assert isinstance(pairs, list)
    return next((v for k, v in pairs if k == name.lower()), None)


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    lines = err(result).splitlines()
    assert len(lines) == 1, err(result)
    return lines[0]


# Requests: methods, headers, bodies ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_get_headers_and_trace(server: AppServer, mode: list[str]) -> None:
    result = cf_http(
        "get", f"{server.url}/echo?x=1", "-H", "X-One: 1", "-H", "x-two:  two words ", "-H",
        "X-Empty;", "-H", "X-Utf8: café", "--trace", *mode,
    )  # fmt: skip
    body = echoed(result)
    assert body["method"] == "GET" and body["query"] == "x=1"
    assert header(body, "x-one") == "1" and header(body, "x-two") == "two words"
    assert header(body, "x-empty") == ""
    assert header(body, "x-utf8") == "café".encode().decode("latin-1")  # UTF-8 bytes, as typed
    # --trace: the new trace id on stderr (one line, nothing else), in the header sent.
    match = TRACE_LINE.fullmatch(err(result))
    assert match is not None, err(result)
    assert (header(body, "traceparent") or "").split("-")[1] == match.group(1)
    # stdout is a pipe: the body exactly as the server sent it, not pretty-printed, no colour.
    assert b"\n" not in result.stdout and b"\x1b" not in result.stdout


@pytest.mark.parametrize("mode", MODES)
def test_any_method_with_x(server: AppServer, mode: list[str]) -> None:
    body = echoed(cf_http("get", f"{server.url}/echo", "-X", "PURGE", *mode))
    assert body["method"] == "PURGE"
    assert "traceparent" not in json.dumps(body)  # no --trace, no trace header
    # A URL alone means get; with a body option, post (as httpie and curl do).
    assert echoed(cf_http(f"{server.url}/echo", *mode))["method"] == "GET"
    body = echoed(cf_http(f"{server.url}/echo", "--data", "x", *mode))
    assert body["method"] == "POST" and body["body"] == "x"


@pytest.mark.parametrize("mode", MODES)
def test_post_json_as_typed(server: AppServer, mode: list[str]) -> None:
    typed = '{"a": [1, 2.50], "b": 1e400}'  # sent byte for byte, not re-encoded
    body = echoed(cf_http("post", f"{server.url}/echo", "--json", typed, *mode))
    assert body["method"] == "POST" and body["body"] == typed
    assert header(body, "content-type") == "application/json"
    assert header(body, "accept") == "application/json"


def test_json_from_file_and_data_from_stdin(server: AppServer, tmp_path: Path) -> None:
    (tmp_path / "body.json").write_text('{"from": "file"}')
    body = echoed(cf_http("patch", f"{server.url}/echo", "--json", "@body.json", cwd=tmp_path))
    assert body["method"] == "PATCH" and json.loads(str(body["body"])) == {"from": "file"}
    body = echoed(
        cf_http(
            "put", f"{server.url}/echo", "--data", "@-", "-H", "Content-Type: text/plain",
            stdin=b"raw\nbytes",
        )
    )  # fmt: skip
    assert body["method"] == "PUT" and body["body"] == "raw\nbytes"
    assert header(body, "content-type") == "text/plain"


@pytest.mark.parametrize("mode", MODES)
def test_form_urlencoded(server: AppServer, mode: list[str]) -> None:
    result = cf_http(
        "post", f"{server.url}/echo", "--form", "name=Zoë & co", "--form", "email=a@b.c",
        "--form", "name=second", "--form", "empty=", *mode,
    )  # fmt: skip
    body = echoed(result)
    assert header(body, "content-type") == "application/x-www-form-urlencoded"
    assert body["body"] == "name=Zo%C3%AB+%26+co&email=a%40b.c&name=second&empty="


@pytest.mark.parametrize("mode", MODES)
def test_form_file_upload_is_multipart(server: AppServer, tmp_path: Path, mode: list[str]) -> None:
    (tmp_path / "notes.txt").write_bytes(b"line one\nline two\n")
    result = cf_http(
        "post", f"{server.url}/echo", "--form", "doc@notes.txt", "--form", "title=My notes",
        *mode, cwd=tmp_path,
    )  # fmt: skip
    body = echoed(result)
    content_type = header(body, "content-type") or ""
    assert content_type.startswith("multipart/form-data; boundary=")
    text = str(body["body"])
    assert 'name="title"\r\n\r\nMy notes\r\n' in text
    assert 'name="doc"; filename="notes.txt"\r\nContent-Type: text/plain\r\n' in text
    assert "\r\n\r\nline one\nline two\n\r\n" in text


@pytest.mark.parametrize("mode", MODES)
def test_basic_auth(server: AppServer, mode: list[str]) -> None:
    password = "pw:with:colons-" + secrets.token_hex(4)
    result = cf_http("get", f"{server.url}/echo", "-u", f"alice:{password}", "-v", *mode)
    body = echoed(result)
    expected = base64.b64encode(f"alice:{password}".encode()).decode()
    assert header(body, "authorization") == f"Basic {expected}"
    assert "> Authorization: Basic [redacted]" in err(result).splitlines()
    assert "Basic auth as 'alice'" in err(result)
    assert password not in err(result) and expected not in err(result)


def test_user_without_password_needs_a_terminal(server: AppServer) -> None:
    result = cf_http("get", f"{server.url}/echo", "-u", "alice")  # stdin is a pipe
    assert result.returncode == EXIT_USAGE and result.stdout == b""
    assert "no terminal to ask on" in one_line(result)
    assert server.all_requests() == []


# What is printed: -i, head, redirects, -o - ------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_include_keeps_header_names_as_received(raw_server: RawServer, mode: list[str]) -> None:
    result = cf_http("get", f"{raw_server.url}/ok", "-i", *mode)
    assert result.returncode == EXIT_OK, err(result)
    assert result.stdout == b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 2\n\nok"
    assert result.stderr == b""


@pytest.mark.parametrize("mode", MODES)
def test_head_prints_status_and_headers(raw_server: RawServer, mode: list[str]) -> None:
    result = cf_http("head", f"{raw_server.url}/ok", *mode)
    assert result.returncode == EXIT_OK, err(result)
    assert result.stdout == b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 2\n\n"
    assert raw_server.hits("/ok") == 1


@pytest.mark.parametrize("mode", MODES)
def test_redirects_followed_only_with_follow(server: AppServer, mode: list[str]) -> None:
    url = f"{server.url}/redirect?to=/echo%3Fhop%3D2"
    result = cf_http("get", url, "-i", *mode)
    assert result.returncode == EXIT_OK
    assert result.stdout.startswith(b"HTTP/1.1 302 Found\n") and b"location: /echo?hop=2" in (
        result.stdout
    )
    result = cf_http("get", url, "-i", "-L", *mode)
    assert result.returncode == EXIT_OK, err(result)
    first, second, body = result.stdout.split(b"\n\n", 2)
    assert first.startswith(b"HTTP/1.1 302 Found\n")  # every hop's head, as curl -i -L
    assert second.startswith(b"HTTP/1.1 200 OK\n")
    assert json.loads(body)["query"] == "hop=2"


@pytest.mark.parametrize("mode", MODES)
def test_output_dash_is_stdout(server: AppServer, tmp_path: Path, mode: list[str]) -> None:
    result = cf_http("get", f"{server.url}/bytes?n=200000", "-o", "-", *mode, cwd=tmp_path)
    assert result.returncode == EXIT_OK, err(result)
    assert result.stdout == b"x" * 200000 and result.stderr == b""
    assert list(tmp_path.iterdir()) == []  # no file named "-"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "output", [pytest.param([], id="body"), pytest.param(["-o", "-"], id="o-")]
)
def test_reader_going_away_exits_1_quietly(
    server: AppServer, mode: list[str], output: list[str]
) -> None:
    # `cf-http get URL | head -c 10`: a short write, then EPIPE; no traceback, no line.
    process = subprocess.Popen(
        [sys.executable, "-m", "cf", "get", f"{server.url}/bytes?n=4000000", *output, *mode],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(10) == b"x" * 10
    time.sleep(0.3)  # let the writer block on a full pipe
    process.stdout.close()
    with process.stderr:
        error = process.stderr.read()
    assert process.wait(15) == 1 and error == b""


def test_color_always_in_a_pipe(server: AppServer) -> None:
    result = cf_http("get", f"{server.url}/echo", "--color=always")
    assert result.returncode == EXIT_OK
    assert result.stdout.startswith(b'{\n  \x1b[1;34m"method"\x1b[0m: \x1b[32m"GET"\x1b[0m,\n')
    # NO_COLOR does not override an explicit --color=always (https://no-color.org).
    again = cf_http("get", f"{server.url}/echo", "--color", env={"NO_COLOR": "1"})
    assert b"\x1b[1;34m" in again.stdout
    plain = cf_http("get", f"{server.url}/echo", "--color=never")
    assert plain.stdout.startswith(b'{"method": "GET"')


# Failures: the body on stdout, one line on stderr, the exit status ------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_failure_status_prints_body_and_one_line(server: AppServer, mode: list[str]) -> None:
    url = f"{server.url}/status/503?key=k1&password=hunter2"
    result = cf_http("get", url, "--retries", "1", "--trace", "-i", *mode)
    assert result.returncode == EXIT_STATUS
    head, _, body = result.stdout.partition(b"\n\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable\n") and body == b"status 503"
    assert server.hits("k1") == 2
    trace_line, line = err(result).splitlines()
    trace_id = trace_line.rpartition("=")[2]
    assert line.startswith(f"cf-http: failure status: GET {server.url}/status/503?")
    assert line.endswith(f"status 503 after 2 attempts trace_id={trace_id}")
    assert "hunter2" not in err(result) and "password=[redacted]" in line


def test_failure_statuses_option(server: AppServer) -> None:
    result = cf_http("get", f"{server.url}/status/404?key=a", "--failure-statuses", "404,500")
    assert result.returncode == EXIT_STATUS and result.stdout == b"status 404"
    assert server.hits("a") == 3  # the default retries=2
    assert "status 404 after 3 attempts" in one_line(result)
    # '' makes no status a failure: the 503 is a response like any other (404 too, as curl).
    result = cf_http("get", f"{server.url}/status/503?key=b", "--failure-statuses", "")
    assert result.returncode == EXIT_OK and result.stdout == b"status 503"
    assert server.hits("b") == 1


def _failure_lines(url: str, *args: str) -> tuple[str, str]:
    lines = []
    for mode in ([], ["--sync"]):
        result = cf_http("get", url, "--retries", "0", *args, *mode)
        assert result.returncode in (EXIT_TRANSPORT, EXIT_TIMEOUT), err(result)
        lines.append(one_line(result))
        assert result.stdout == b""
    return lines[0], lines[1]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/reset-before-response", "ReadError: connection reset by peer", id="reset"),
        pytest.param(
            "/close-before-response",
            "RemoteProtocolError: the server closed the connection early or sent invalid HTTP",
            id="closed",
        ),
        pytest.param(
            "/garbage",
            "RemoteProtocolError: the server closed the connection early or sent invalid HTTP",
            id="garbage",
        ),
    ],
)
def test_same_error_wording_in_both_modes(raw_server: RawServer, path: str, expected: str) -> None:
    aio, sync = _failure_lines(f"{raw_server.url}{path}")
    assert (
        aio
        == sync
        == f"cf-http: transport error: GET {raw_server.url}{path}: {expected} after 1 attempt"
    )


def test_connection_refused_reads_the_same_in_both_modes(refused_url: str) -> None:
    # aiohttp's own text says "ssl:default" for a plain http URL: not shown.
    aio, sync = _failure_lines(f"{refused_url}/x")
    expected = f"cf-http: transport error: GET {refused_url}/x: ConnectError: connection refused"
    assert aio == sync == f"{expected} after 1 attempt"


def test_timeout_reads_the_same_in_both_modes(server: AppServer) -> None:
    aio, sync = _failure_lines(f"{server.url}/stall?seconds=5", "--timeout", "0.3")
    expected = f"cf-http: timeout: GET {server.url}/stall?seconds=5: ReadTimeout: timed out"
    assert aio == sync == f"{expected} waiting for the server after 1 attempt"


@pytest.mark.parametrize("path", ["/truncated", "/reset-mid-body"])
def test_engine_text_never_reaches_the_error_line(raw_server: RawServer, path: str) -> None:
    # The httpx class differs between the engines here (a library matter, see the README);
    # the words never come from the engine.
    for line in _failure_lines(f"{raw_server.url}{path}"):
        assert line.startswith(f"cf-http: transport error: GET {raw_server.url}{path}: ")
        assert not ENGINE_TEXT.search(line), line


@pytest.mark.parametrize("mode", MODES)
def test_output_cut_short_same_words_in_both_modes(
    raw_server: RawServer, tmp_path: Path, mode: list[str]
) -> None:
    # The response headers arrive, then the connection closes 10 bytes into a 1000-byte body.
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    result = cf_http("get", f"{raw_server.url}/truncated", "-o", str(target), *mode)
    assert result.returncode == EXIT_TRANSPORT
    assert one_line(result) == (
        f"cf-http: transport error: GET {raw_server.url}/truncated: "
        "the body was cut short: 10 of 1000 bytes received after 1 attempt"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no partial file left
    assert target.read_bytes() == b"previous"


@pytest.mark.parametrize("mode", MODES)
def test_deadline_exit_5(server: AppServer, mode: list[str]) -> None:
    started = time.monotonic()
    result = cf_http("get", f"{server.url}/stall?seconds=5", "--deadline", "0.5", *mode)
    assert result.returncode == EXIT_TIMEOUT
    assert time.monotonic() - started < 4
    assert one_line(result).startswith("cf-http: timeout: GET ") and "deadline" in err(result)


# -o FILE ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_output_file_gets_exactly_the_body(
    server: AppServer, tmp_path: Path, mode: list[str]
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old content, replaced")
    result = cf_http("get", f"{server.url}/bytes?n=300000", "-o", str(target), *mode)
    assert result.returncode == EXIT_OK, err(result)
    assert target.read_bytes() == b"x" * 300000
    assert result.stdout == b"" and result.stderr == b""  # stderr is a pipe: no progress bar
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary file left


@pytest.mark.parametrize("mode", MODES)
def test_output_file_untouched_on_failure_status(
    server: AppServer, tmp_path: Path, mode: list[str]
) -> None:
    target = tmp_path / "out.bin"
    result = cf_http(
        "get", f"{server.url}/status/500", "-o", str(target), "--retries", "0", "-i", *mode
    )
    assert result.returncode == EXIT_STATUS
    assert list(tmp_path.iterdir()) == []
    assert result.stdout.startswith(b"HTTP/1.1 500 Internal Server Error\n")
    assert result.stdout.endswith(b"\n\nstatus 500")  # the failure body: on stdout, not in FILE


def _wait_for_part(directory: Path, process: subprocess.Popen[bytes]) -> Path:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        parts = list(directory.glob(".*.part"))
        if parts:
            return parts[0]
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    raise AssertionError("no .part file appeared")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "signum",
    [
        pytest.param(signal.SIGTERM, id="SIGTERM"),
        pytest.param(signal.SIGHUP, id="SIGHUP"),
        pytest.param(signal.SIGINT, id="SIGINT"),
    ],
)
def test_signal_during_download_removes_the_partial_file(
    server: AppServer, tmp_path: Path, signum: int, mode: list[str]
) -> None:
    # /slow-body sends the headers at once and the body after 30 s: the .part file exists.
    process = subprocess.Popen(
        [sys.executable, "-m", "cf", "get", f"{server.url}/slow-body?seconds=30", "-o", "f", *mode],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_part(tmp_path, process)
        process.send_signal(signum)
        out, error = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, error
    assert error.decode() == f"cf-http: interrupted by {name}\n" and out == b""
    assert list(tmp_path.iterdir()) == []


# -v ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_verbose_shows_headers_retries_and_timings(server: AppServer, mode: list[str]) -> None:
    url = f"{server.url}/fail/2?key=v1&access_token=tok-{secrets.token_hex(4)}"
    result = cf_http(
        "get", url, "-v", "--retries", "3", "-H", "X-Api-Key: key-123", "-H", "X-Case: Kept",
        *mode,
    )  # fmt: skip
    assert result.returncode == EXIT_OK, err(result)
    assert json.loads(result.stdout) == {"hits": 3}
    assert server.hits("v1") == 3
    text = err(result)
    lines = text.splitlines()
    client = "sync" if mode else "async"
    assert lines[0].startswith(f"* GET {server.url}/fail/2?") and "retries 3" in lines[0]
    assert f"with the {client} client" in lines[0]
    # Each request as sent (curl's "> "), credentials and secret query values redacted.
    requests = [i for i, line in enumerate(lines) if line.startswith("> GET ")]
    assert len(requests) == 3
    assert re.fullmatch(
        r"> GET /fail/2\?key=.*&access_token=\[redacted\] HTTP/1\.1", lines[requests[0]]
    )
    block = lines[requests[0] : lines.index(">", requests[0])]
    assert f"> Host: {server.url.removeprefix('http://')}" in block
    assert "> X-Api-Key: [redacted]" in block and "> X-Case: Kept" in block
    assert "tok-" not in text and "key-123" not in text
    # Each response as received ("< "), then the retry with its timing and delay.
    statuses = [line for line in lines if line.startswith("< HTTP/")]
    assert statuses == ["< HTTP/1.1 503 Service Unavailable"] * 2 + ["< HTTP/1.1 200 OK"]
    assert "< content-type: text/plain; charset=utf-8" in lines
    retries = [line for line in lines if line.startswith("* attempt ")]
    assert len(retries) == 2
    assert re.fullmatch(
        r"\* attempt 1/4 failed after \d+\.\d ms \(status 503\); retrying in \d+\.\d{3} s",
        retries[0],
    )
    assert re.fullmatch(
        r"\* 200 OK after 3 attempts, 11 bytes, \d+\.\d{3} s in all "
        r"\(the last attempt \d+\.\d ms\)",
        lines[-1],
    )


@pytest.mark.parametrize("mode", MODES)
def test_verbose_transport_retry_reads_the_same(refused_url: str, mode: list[str]) -> None:
    result = cf_http("get", f"{refused_url}/x", "-v", "--retries", "1", *mode)
    assert result.returncode == EXIT_TRANSPORT
    lines = err(result).splitlines()
    [retry] = [line for line in lines if line.startswith("* attempt ")]
    assert re.fullmatch(
        r"\* attempt 1/2 failed after \d+\.\d ms \(ConnectError: connection refused\); "
        r"retrying in \d+\.\d{3} s",
        retry,
    )
    assert lines[-1].endswith("ConnectError: connection refused after 2 attempts")
    assert not ENGINE_TEXT.search(err(result))


# OAuth2 and the secret ----------------------------------------------------------------------


def oauth_args(oauth_server: OAuthServer) -> list[str]:
    return ["--oauth-token-url", oauth_server.token_url, "--oauth-client-id", "id"]


@pytest.mark.parametrize("mode", MODES)
def test_oauth_secret_and_tokens_never_shown(oauth_server: OAuthServer, mode: list[str]) -> None:
    secret = "s3cret-" + secrets.token_hex(12)
    oauth_server.client_secret = secret
    result = cf_http(
        "get", f"{oauth_server.api_url}/me", *oauth_args(oauth_server), "--oauth-scope",
        "read write", "-v", "-i", "--trace", *mode, env={SECRET_ENV: secret},
    )  # fmt: skip
    assert result.returncode == EXIT_OK, err(result)
    head, _, body = result.stdout.partition(b"\n\n")
    assert head.startswith(b"HTTP/1.1 200 OK\n")
    assert json.loads(body)["path"] == "/api/me"
    assert oauth_server.token_requests == 1
    [token] = oauth_server.issued_tokens
    text = err(result)
    assert "> POST /token HTTP/1.1" in text  # -v shows the token request ...
    assert "> Authorization: Bearer [redacted]" in text
    assert secret not in text and token not in text  # ... never the secret nor the token
    basic = base64.b64encode(f"id:{secret}".encode()).decode()
    assert basic not in text


def test_oauth_failure_exit_6(oauth_server: OAuthServer) -> None:
    wrong = "wrong-" + secrets.token_hex(8)
    result = cf_http(
        "get", f"{oauth_server.api_url}/me", *oauth_args(oauth_server), env={SECRET_ENV: wrong}
    )
    assert result.returncode == EXIT_OAUTH and result.stdout == b""
    line = one_line(result)
    assert line.startswith(f"cf-http: OAuth error: POST {oauth_server.token_url}: ")
    assert "invalid_client" in line and wrong not in err(result)


@pytest.mark.parametrize("mode", MODES)
def test_oauth_unreachable_token_url_reads_the_same(refused_url: str, mode: list[str]) -> None:
    result = cf_http(
        "get", f"{refused_url}/api", "--oauth-token-url", f"{refused_url}/token",
        "--oauth-client-id", "id", "--retries", "0", *mode, env={SECRET_ENV: "a-secret-value"},
    )  # fmt: skip
    assert result.returncode == EXIT_OAUTH
    line = one_line(result)
    assert "ConnectError: connection refused" in line and not ENGINE_TEXT.search(line)


# TLS and the environment (trust_env stays on) ----------------------------------------------------


class _TLSServer:
    """HTTPS on 127.0.0.1 with a certificate from a test CA; answers 200 `tls ok`."""

    def __init__(self, ca: trustme.CA) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "6")
                self.end_headers()
                self.wfile.write(b"tls ok")

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(context)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_server(ca: trustme.CA) -> Iterator[_TLSServer]:
    tls = _TLSServer(ca)
    yield tls
    tls.close()


@pytest.mark.parametrize("mode", MODES)
def test_insecure_skips_certificate_verification(tls_server: _TLSServer, mode: list[str]) -> None:
    refused = cf_http("get", f"{tls_server.url}/", "--retries", "0", *mode)
    assert refused.returncode == EXIT_TRANSPORT
    assert one_line(refused).startswith(
        f"cf-http: transport error: GET {tls_server.url}/: ConnectError: certificate verify failed"
    )
    assert not ENGINE_TEXT.search(err(refused))
    result = cf_http("get", f"{tls_server.url}/", "-k", "-v", *mode)
    assert result.returncode == EXIT_OK, err(result)
    assert result.stdout == b"tls ok"
    assert "TLS certificate NOT verified" in err(result).splitlines()[0]


@pytest.mark.parametrize("mode", MODES)
def test_ssl_cert_file_from_the_environment(
    tls_server: _TLSServer, ca: trustme.CA, tmp_path: Path, mode: list[str]
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    result = cf_http("get", f"{tls_server.url}/", *mode, env={"SSL_CERT_FILE": str(bundle)})
    assert result.returncode == EXIT_OK, err(result)
    assert result.stdout == b"tls ok"


@pytest.mark.parametrize("mode", MODES)
def test_proxy_from_the_environment(raw_server: RawServer, mode: list[str]) -> None:
    # A plain-http proxy gets the absolute URL as the request target; the raw server
    # counts the request under its `key` parameter.
    result = cf_http(
        "get", "http://cf-http-proxied.invalid/ok?key=proxied", "--retries", "0", *mode,
        env={"HTTP_PROXY": raw_server.url},
    )  # fmt: skip
    assert raw_server.hits("proxied") == 1, err(result)


# Usage errors: exit 2, one line, nothing sent ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["get", "not a url"], "URL: ", id="invalid-url"),
        pytest.param(["get", "ftp://127.0.0.1/x"], "not an absolute http", id="bad-scheme"),
        pytest.param(["get", "{url}", "-H", "NoColon"], "is not 'Name: value'", id="header"),
        pytest.param(["get", "{url}", "-H", "Bad Name: v"], "not a valid header", id="name"),
        pytest.param(["get", "{url}", "-H", "X: a\x01b"], "control character", id="value"),
        pytest.param(["get", "{url}", "-X", "GE T"], "not a valid method", id="method"),
        pytest.param(["get", "{url}", "-u", ""], "empty user", id="empty-user"),
        pytest.param(["get", "{url}", "-u", "a:b\nc"], "control character", id="user-ctl"),
        pytest.param(["post", "{url}", "--form", "novalue"], "not 'name=value'", id="form"),
        pytest.param(["post", "{url}", "--form", "=v"], "not 'name=value'", id="form-name"),
        pytest.param(["post", "{url}", "--form", "f@/nonexistent"], "cannot read", id="form-file"),
        pytest.param(["post", "{url}", "--form", "a=1", "--json", "1"], "not allowed", id="both"),
        pytest.param(["get", "{url}", "--retries", "-1"], "between 0 and", id="negative-retries"),
        pytest.param(["get", "{url}", "--retries", "two"], "not an integer", id="retries-text"),
        pytest.param(["post", "{url}", "--json", "{nope"], "not valid JSON", id="bad-json"),
        pytest.param(
            ["post", "{url}", "--json", "@/nonexistent.json"], "cannot read", id="no-file"
        ),
        pytest.param(
            ["post", "{url}", "--json", "1", "--data", "x"], "not allowed", id="json-data"
        ),
        pytest.param(["get", "{url}", "--timeout", "0"], "must be > 0", id="zero-timeout"),
        pytest.param(["get", "{url}", "--deadline", "nan"], "must be > 0", id="nan-deadline"),
        pytest.param(["get", "{url}", "--failure-statuses", "5xx"], "between 100", id="statuses"),
        pytest.param(["get", "{url}", "--failure-statuses", "600"], "between 100", id="status-600"),
        pytest.param(["get", "{url}", "--color=sometimes"], "invalid choice", id="color"),
        pytest.param(["get", "{url}", "-o", "/nonexistent/dir/f"], "does not exist", id="output"),
        pytest.param(["get", "{url}", "--oauth-client-id", "x"], "need --oauth-token-url", id="id"),
        pytest.param(
            ["get", "{url}", "--oauth-token-url", "{url}"], "needs --oauth-client-id", id="no-id"
        ),
        pytest.param(
            ["get", "{url}", "--oauth-token-url", "{url}", "--oauth-client-id", "x"],
            SECRET_ENV,
            id="no-secret",
        ),
        pytest.param(["options", "{url}"], "invalid choice", id="command"),
        pytest.param([], "required", id="no-command"),
    ],
)
def test_usage_errors_send_nothing(
    server: AppServer, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    argv = [a.replace("{url}", f"{server.url}/echo") for a in args]
    assert main(argv) == EXIT_USAGE
    out, error = capsys.readouterr()
    assert out == ""
    [line] = error.splitlines()
    assert line.startswith("cf-http") and ": error: " in line and message in line
    assert server.all_requests() == []


def test_secret_on_the_command_line_is_refused_unseen(
    server: AppServer, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cret-" + secrets.token_hex(12)
    for argv in (["--oauth-client-secret", secret], [f"--oauth-client-secret={secret}"]):
        assert main(["get", f"{server.url}/echo", *argv]) == EXIT_USAGE
        out, error = capsys.readouterr()
        assert SECRET_ENV in error and secret not in error + out


def test_insecure_token_url_is_a_usage_error(
    server: AppServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library refuses a plain-http token endpoint that is not loopback, before any I/O.
    secret = "s3cret-" + secrets.token_hex(12)
    monkeypatch.setenv(SECRET_ENV, secret)
    argv = [
        "get", f"{server.url}/echo", "--oauth-token-url", "http://example.com/token",
        "--oauth-client-id", "x",
    ]  # fmt: skip
    assert main(argv) == EXIT_USAGE
    out, error = capsys.readouterr()
    assert "http" in error and secret not in error + out
    assert server.all_requests() == []


def test_usage_error_as_a_command(server: AppServer) -> None:
    result = cf_http("get", f"{server.url}/echo", "-H", "mal\x1b[2Jformed", "-v")
    assert result.returncode == EXIT_USAGE and result.stdout == b""
    assert one_line(result) == (
        "cf-http get: error: -H: 'mal\\x1b[2Jformed' is not 'Name: value' "
        "(see 'cf-http get --help')"
    )
    assert server.all_requests() == []


def test_console_script_and_help() -> None:
    script = Path(sys.executable).with_name("cf-http")
    result = subprocess.run([script, "get", "--help"], capture_output=True, timeout=30, check=False)
    assert result.returncode == EXIT_OK
    text = result.stdout.decode()
    for option in (
        "-H", "-X", "--json", "--data", "--form", "-u", "-L", "-k", "--timeout", "--retries",
        "--failure-statuses", "--deadline", "--trace", "--oauth-token-url", "--oauth-client-id",
        "--oauth-scope", "-o", "-i", "-v", "--color", "--sync", SECRET_ENV, "exit status",
        "SIGTERM: 143",
    ):  # fmt: skip
        assert option in text
    assert "--oauth-client-secret" not in text


def test_cli_import_is_light() -> None:
    code = (
        "import sys, cf._cli; "
        "print(sorted(m for m in sys.modules if m.startswith(('httpx', 'aiohttp', 'cf.'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=30, check=True
    )
    modules = json.loads(result.stdout.decode().replace("'", '"'))
    assert modules and all(m.startswith("cf._cli") for m in modules), modules
