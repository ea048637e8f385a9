"""`cf-http`, run as a subprocess (`python -m cf`) against the embedded demo server.

Each subprocess costs about 0.3 s, so each test checks several things at once.
Usage errors are checked in-process through `main()` (they exit before anything
is imported or sent) and once through a subprocess.
"""

from __future__ import annotations

import json
import os
import pty
import re
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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
from cf._demo_server import DemoServer
from tests.servers.raw import RawServer

SECRET = "s3cret-" + secrets.token_hex(12)
MODES = [pytest.param([], id="async"), pytest.param(["--sync"], id="sync")]
TRACE_LINE = re.compile(r"cf-http: trace_id=([0-9a-f]{32})\n")


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer(client_secret=SECRET, token_delay=0.0) as demo:
        yield demo


def tag() -> str:
    return secrets.token_hex(6)


def cf_http(
    *args: str,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cf", *args],
        input=stdin,
        capture_output=True,
        env=environ,
        cwd=cwd,
        timeout=30,
        check=False,
    )


def err(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stderr.decode()


def echoed(result: subprocess.CompletedProcess[bytes]) -> dict[str, object]:
    assert result.returncode == EXIT_OK, err(result)
    value = json.loads(result.stdout)
    assert isinstance(value, dict)
    return value


# Requests and options ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_get_headers_and_trace(server: DemoServer, mode: list[str]) -> None:
    result = cf_http(
        "get",
        f"{server.url}/echo?x=1",
        "-H",
        "X-One: 1",
        "-H",
        "x-two:  two words ",
        "--trace",
        *mode,
    )
    body = echoed(result)
    headers = body["headers"]
    assert isinstance(headers, dict)
    assert headers["x-one"] == "1" and headers["x-two"] == "two words"
    assert body["method"] == "GET" and body["query"] == {"x": "1"}
    # --trace: the new trace id on stderr (one line, nothing else), in the header sent.
    match = TRACE_LINE.fullmatch(err(result))
    assert match is not None, err(result)
    assert headers["traceparent"].split("-")[1] == match.group(1)
    # stdout is not a terminal: the body exactly as the server sent it, not pretty-printed.
    assert b"\n" not in result.stdout


def test_no_trace_header_without_trace(server: DemoServer) -> None:
    result = cf_http("delete", f"{server.url}/echo")
    body = echoed(result)
    assert body["method"] == "DELETE"
    assert "traceparent" not in body["headers"]  # type: ignore[operator]
    assert result.stderr == b""


@pytest.mark.parametrize("mode", MODES)
def test_post_json(server: DemoServer, mode: list[str]) -> None:
    body = echoed(cf_http("post", f"{server.url}/echo", "--json", '{"a": [1, 2]}', *mode))
    assert body["method"] == "POST"
    assert json.loads(str(body["body"])) == {"a": [1, 2]}
    assert body["headers"]["content-type"] == "application/json"  # type: ignore[index]


def test_json_from_file_and_data_from_stdin(server: DemoServer, tmp_path: Path) -> None:
    (tmp_path / "body.json").write_text('{"from": "file"}')
    body = echoed(cf_http("patch", f"{server.url}/echo", "--json", "@body.json", cwd=tmp_path))
    assert body["method"] == "PATCH" and json.loads(str(body["body"])) == {"from": "file"}
    body = echoed(
        cf_http(
            "put",
            f"{server.url}/echo",
            "--data",
            "@-",
            "-H",
            "Content-Type: text/plain",
            stdin=b"raw\nbytes",
        )
    )
    assert body["method"] == "PUT" and body["body"] == "raw\nbytes"
    assert body["headers"]["content-type"] == "text/plain"  # type: ignore[index]


def test_head_with_include(server: DemoServer) -> None:
    result = cf_http("head", f"{server.url}/bytes/1234", "-i")
    assert result.returncode == EXIT_OK, err(result)
    head, sep, rest = result.stdout.decode().partition("\n\n")
    lines = head.splitlines()
    assert sep and rest == ""
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "content-length: 1234" in lines and "content-type: application/octet-stream" in lines


def test_include_then_body(server: DemoServer) -> None:
    result = cf_http("get", f"{server.url}/status/404", "-i")
    assert result.returncode == EXIT_OK  # 404 is not a failure status: a response, as curl
    head, _, body = result.stdout.partition(b"\n\n")
    assert head.startswith(b"HTTP/1.1 404 Not Found\n")
    assert json.loads(body) == {"status": 404}
    assert result.stderr == b""


# Retries, -v and the exit statuses ------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_verbose_shows_attempts_retries_delays_and_timings(
    server: DemoServer, mode: list[str]
) -> None:
    key = tag()
    result = cf_http("get", f"{server.url}/flaky/2?tag={key}", "-v", "--retries", "3", *mode)
    assert result.returncode == EXIT_OK, err(result)
    assert json.loads(result.stdout) == {"hits": 3, "failing": False}
    assert server.hits(key) == 3
    lines = err(result).splitlines()
    client = "sync" if mode else "async"
    assert lines[0].startswith(f"* GET {server.url}/flaky/2?tag={key} with the {client} client")
    assert "retries 3" in lines[0]
    attempts = [line for line in lines if line.startswith("> attempt ")]
    assert [a.split(":")[0] for a in attempts] == ["> attempt 1", "> attempt 2", "> attempt 3"]
    responses = [line for line in lines if line.startswith("< ")]
    assert len(responses) == 3 and all(re.search(r" in \d+\.\d ms$", r) for r in responses)
    assert responses[0].startswith("< HTTP/1.1 503 Service Unavailable")
    retries = [line for line in lines if line.startswith("! ")]
    assert len(retries) == 2
    assert re.fullmatch(
        r"! attempt 1/4 failed \(status 503\); retrying in \d+\.\d{3} s", retries[0]
    )
    assert re.fullmatch(r"\* 200 OK after 3 attempts, 29 bytes, \d+\.\d{3} s in all", lines[-1])


@pytest.mark.parametrize("mode", MODES)
def test_failure_status_exit_3(server: DemoServer, mode: list[str]) -> None:
    key = tag()
    url = f"{server.url}/status/503?tag={key}&password=hunter2"
    result = cf_http("get", url, "--retries", "1", "--trace", *mode)
    assert result.returncode == EXIT_STATUS
    assert result.stdout == b""
    assert server.hits(key) == 2
    trace_line, line, *rest = err(result).splitlines()
    trace_id = trace_line.rpartition("=")[2]
    assert rest == []
    assert line.startswith("cf-http: failure status: GET http://127.0.0.1:")
    assert "status 503" in line and "after 2 attempts" in line and f"trace_id={trace_id}" in line
    assert "hunter2" not in line and "password=[redacted]" in line


def test_failure_statuses_option(server: DemoServer) -> None:
    key = tag()
    result = cf_http("get", f"{server.url}/status/404?tag={key}", "--failure-statuses", "404,500")
    assert result.returncode == EXIT_STATUS
    assert server.hits(key) == 3  # the default retries=2
    assert "status 404 after 3 attempts" in err(result)
    # '' makes no status a failure: the 503 is a response like any other.
    key = tag()
    result = cf_http("get", f"{server.url}/status/503?tag={key}", "--failure-statuses", "")
    assert result.returncode == EXIT_OK and json.loads(result.stdout) == {"status": 503}
    assert server.hits(key) == 1


@pytest.mark.parametrize("mode", MODES)
def test_transport_error_exit_4(refused_url: str, mode: list[str]) -> None:
    result = cf_http("get", f"{refused_url}/x", "--retries", "1", *mode)
    assert result.returncode == EXIT_TRANSPORT
    [line] = err(result).splitlines()
    assert line.startswith(f"cf-http: transport error: GET {refused_url}/x: ConnectError")
    assert line.endswith("after 2 attempts")
    assert result.stdout == b""


@pytest.mark.parametrize("mode", MODES)
def test_timeout_exit_5(server: DemoServer, mode: list[str]) -> None:
    key = tag()
    result = cf_http(
        "get", f"{server.url}/slow/5?tag={key}", "--timeout", "0.2", "--retries", "1", *mode
    )
    assert result.returncode == EXIT_TIMEOUT
    [line] = err(result).splitlines()
    assert line.startswith("cf-http: timeout: GET ") and "ReadTimeout" in line
    assert line.endswith("after 2 attempts")
    assert server.hits(key) == 2


def test_deadline_exit_5(server: DemoServer) -> None:
    key = tag()
    started = time.monotonic()
    result = cf_http("get", f"{server.url}/slow/5?tag={key}", "--deadline", "0.5", "--retries", "5")
    assert result.returncode == EXIT_TIMEOUT
    assert time.monotonic() - started < 4
    [line] = err(result).splitlines()
    assert line.startswith("cf-http: timeout: GET ") and "deadline" in line


# -o ----------------------------------------------------------------------------------------------


def pattern(n: int) -> bytes:
    block = bytes(range(256))
    return (block * (n // 256 + 1))[:n]


@pytest.mark.parametrize("mode", MODES)
def test_output_file_gets_exactly_the_body(
    server: DemoServer, tmp_path: Path, mode: list[str]
) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old content, replaced")
    result = cf_http("get", f"{server.url}/bytes/300000", "-o", str(target), *mode)
    assert result.returncode == EXIT_OK, err(result)
    assert target.read_bytes() == pattern(300000)
    assert result.stdout == b""
    assert result.stderr == b""  # stderr is not a terminal: no progress bar
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary file left


def test_output_file_untouched_on_failure(server: DemoServer, tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    result = cf_http("get", f"{server.url}/status/500", "-o", str(target), "--retries", "0", "-i")
    assert result.returncode == EXIT_STATUS
    assert list(tmp_path.iterdir()) == []
    assert result.stdout == b""


def test_output_body_cut_short_is_a_transport_error(raw_server: RawServer, tmp_path: Path) -> None:
    # The response headers arrive, then the connection closes 10 bytes into a 1000-byte body.
    target = tmp_path / "out.bin"
    result = cf_http("get", f"{raw_server.url}/truncated", "-o", str(target))
    assert result.returncode == EXIT_TRANSPORT
    [line] = err(result).splitlines()
    assert line.startswith(f"cf-http: transport error: GET {raw_server.url}/truncated: ")
    assert list(tmp_path.iterdir()) == []  # the partial body is not left behind


def run_on_terminal(*args: str) -> str:
    """Run cf-http with stdout and stderr on a pseudo-terminal; return what it wrote there."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "cf", *args],
        stdout=terminal,
        stderr=terminal,
        stdin=subprocess.DEVNULL,
    )
    os.close(terminal)
    output = bytearray()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal closed
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    assert process.wait(10) == EXIT_OK, output
    return output.decode()


def test_on_a_terminal_progress_bar_and_pretty_json(server: DemoServer, tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    shown = run_on_terminal("get", f"{server.url}/bytes/2000000", "-o", str(target))
    assert target.read_bytes() == pattern(2000000)
    assert "100% [##############################] 1.9 MiB / 1.9 MiB" in shown
    shown = run_on_terminal("get", f"{server.url}/echo")
    assert '{\r\n  "method": "GET",\r\n  "path": "/echo",' in shown


# OAuth2 and the secret ----------------------------------------------------------------------


def oauth_args(server: DemoServer) -> list[str]:
    return ["--oauth-token-url", f"{server.url}/token", "--oauth-client-id", server.client_id]


@pytest.mark.parametrize("mode", MODES)
def test_oauth_secret_never_shown(server: DemoServer, mode: list[str]) -> None:
    before = server.token_requests
    result = cf_http(
        "get",
        f"{server.url}/api/me",
        *oauth_args(server),
        "--oauth-scope",
        "read write",
        "-v",
        "-i",
        "--trace",
        *mode,
        env={SECRET_ENV: SECRET},
    )
    assert result.returncode == EXIT_OK, err(result)
    head, _, body = result.stdout.partition(b"\n\n")
    answer = json.loads(body)
    assert answer["client_id"] == server.client_id and answer["path"] == "/api/me"
    assert head.startswith(b"HTTP/1.1 200 OK\n")
    assert server.token_requests == before + 1
    assert f"> POST {server.url}/token" in err(result)  # -v shows the token request ...
    assert SECRET not in err(result) and SECRET.encode() not in result.stdout  # ... not the secret
    assert "Bearer" not in err(result)


def test_oauth_failure_exit_6(server: DemoServer) -> None:
    wrong = "wrong-" + SECRET
    result = cf_http(
        "get", f"{server.url}/api/me", *oauth_args(server), "-v", env={SECRET_ENV: wrong}
    )
    assert result.returncode == EXIT_OAUTH
    assert result.stdout == b""
    line = err(result).splitlines()[-1]
    assert line.startswith(f"cf-http: OAuth error: POST {server.url}/token: ")
    assert "invalid_client" in line
    assert wrong not in err(result)


# Usage errors: exit 2, nothing sent ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["get", "not a url"], "URL: ", id="invalid-url"),
        pytest.param(["get", "ftp://127.0.0.1/x"], "not an absolute http", id="bad-scheme"),
        pytest.param(["get", "{url}", "-H", "NoColon"], "malformed header", id="header"),
        pytest.param(["get", "{url}", "-H", "Bad Name: v"], "malformed header", id="header-name"),
        pytest.param(["get", "{url}", "--retries", "-1"], "must be >= 0", id="negative-retries"),
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
        pytest.param(["options", "{url}"], "invalid choice", id="method"),
        pytest.param([], "required", id="no-command"),
    ],
)
def test_usage_errors_send_nothing(
    server: DemoServer, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    before = server.total_hits
    argv = [a.replace("{url}", f"{server.url}/echo") for a in args]
    assert main(argv) == EXIT_USAGE
    out, error = capsys.readouterr()
    assert out == ""
    assert error.startswith("usage: cf-http") and message in error
    assert server.total_hits == before


def test_secret_on_the_command_line_is_refused_unseen(
    server: DemoServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["--oauth-client-secret", SECRET], [f"--oauth-client-secret={SECRET}"]):
        assert main(["get", f"{server.url}/echo", *argv]) == EXIT_USAGE
        out, error = capsys.readouterr()
        assert SECRET_ENV in error and SECRET not in error + out


def test_insecure_token_url_is_a_usage_error(
    server: DemoServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The library refuses a plain-http token endpoint that is not loopback, before any I/O.
    monkeypatch.setenv(SECRET_ENV, SECRET)
    before = server.total_hits
    argv = [
        "get",
        f"{server.url}/echo",
        "--oauth-token-url",
        "http://example.com/token",
        "--oauth-client-id",
        "x",
    ]
    assert main(argv) == EXIT_USAGE
    out, error = capsys.readouterr()
    assert "http" in error and SECRET not in error + out
    assert server.total_hits == before


def test_usage_error_as_a_command(server: DemoServer) -> None:
    before = server.total_hits
    result = cf_http("get", f"{server.url}/echo", "-H", "malformed", "-v")
    assert result.returncode == EXIT_USAGE
    assert result.stdout == b""
    assert err(result).splitlines()[-1] == (
        "cf-http get: error: -H: malformed header 'malformed': expected 'Name: value'"
    )
    assert server.total_hits == before


def test_console_script_and_help() -> None:
    script = Path(sys.executable).with_name("cf-http")
    result = subprocess.run([script, "get", "--help"], capture_output=True, timeout=30, check=False)
    assert result.returncode == EXIT_OK
    text = result.stdout.decode()
    for option in (
        "-H",
        "--json",
        "--data",
        "--timeout",
        "--retries",
        "--failure-statuses",
        "--deadline",
        "--trace",
        "--oauth-token-url",
        "--oauth-client-id",
        "--oauth-scope",
        "-o",
        "-i",
        "-v",
        "--sync",
        SECRET_ENV,
        "exit status",
    ):
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
    assert result.stdout.decode().strip() == "['cf._cli', 'cf._cli_output']"
