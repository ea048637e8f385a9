"""`cf-http` on a terminal: pseudo-terminals read the way a terminal shows them.

The command runs with stdout and stderr each on a pseudo-terminal of its own
(so what goes where stays apart), optionally stdin on the stderr one (as a
real terminal has it). `render()` is a minimal terminal: carriage return,
newline, erase to end of line, colours dropped, and lines that wrap at the
terminal's width, so a test sees the screen a user would see, stale
characters included.
"""

from __future__ import annotations

import base64
import fcntl
import http.server
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cf._cli import EXIT_OK, EXIT_TRANSPORT
from tests.servers.app import AppServer
from tests.servers.raw import RawServer
from tests.test_cli import ENV_DROP, MODES

SGR = re.compile(rb"\x1b\[[0-9;]*m")


def render(data: bytes, width: int = 100) -> list[str]:
    """The screen after `data`: lines of text, trailing blanks dropped."""
    text = SGR.sub(b"", data).decode("utf-8", "replace")
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(text):
        c = text[i]
        if text.startswith("\x1b[K", i):
            del lines[row][col:]
            i += 3
            continue
        if c == "\r":
            col = 0
        elif c == "\n":
            row += 1
            if row == len(lines):
                lines.append([])
        else:
            if col == width:  # autowrap to the next line
                row, col = row + 1, 0
                if row == len(lines):
                    lines.append([])
            line = lines[row]
            line.extend(" " * (col - len(line) + 1) if col >= len(line) else "")
            line[col] = c
            col += 1
        i += 1
    shown = ["".join(line).rstrip() for line in lines]
    while shown and not shown[-1]:
        shown.pop()
    return shown


@dataclass
class Run:
    code: int
    out: bytes  # what reached the stdout terminal (or pipe)
    err: bytes  # what reached the stderr terminal


def _pty(width: int) -> tuple[int, int]:
    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, width, 0, 0))
    return controller, terminal


def on_terminal(
    *args: str,
    width: int = 100,
    stdout_tty: bool = True,
    stdin_tty: bool = False,
    env: dict[str, str] | None = None,
    answer: tuple[bytes, bytes] | None = None,
    cwd: Path | None = None,
) -> Run:
    """Run cf-http with stderr (and stdout) on a terminal `width` columns wide.

    `answer=(prompt, typed)`: once `prompt` shows on the stderr terminal, type `typed`
    (stdin is then that terminal).
    """
    environ = {k: v for k, v in os.environ.items() if k.upper() not in ENV_DROP}
    environ.update({"TERM": "xterm-256color", "COLUMNS": "", "LINES": ""})
    environ.update(env or {})
    err_controller, err_terminal = _pty(width)
    out_controller, out_terminal = _pty(width) if stdout_tty else os.pipe()
    stdin = err_terminal if stdin_tty or answer else subprocess.DEVNULL
    process = subprocess.Popen(
        [sys.executable, "-m", "cf", *args],
        stdin=stdin,
        stdout=out_terminal,
        stderr=err_terminal,
        env=environ,
        cwd=cwd,
        start_new_session=True,  # no controlling terminal: nothing reaches the developer's
    )
    os.close(err_terminal)
    os.close(out_terminal)
    streams = {err_controller: bytearray(), out_controller: bytearray()}
    open_fds = set(streams)
    deadline = time.monotonic() + 30
    try:
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 0.2)
            for fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:  # EIO: every writer closed the terminal
                    chunk = b""
                if not chunk:
                    open_fds.discard(fd)
                streams[fd] += chunk
            if answer is not None and answer[0] in streams[err_controller]:
                os.write(err_controller, answer[1])
                answer = None
            if not ready and process.poll() is not None:
                break
        code = process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for fd in streams:
            os.close(fd)
    return Run(code, bytes(streams[out_controller]), bytes(streams[err_controller]))


class _TrickleServer:
    """Sends `n` bytes in chunks of `chunk` bytes, `delay` seconds apart.

    `GET /?n=N&chunk=C&delay=D&byte=B`: bytes of value B (default b"x"), with
    `Content-Length` unless `&chunked=1`.
    """

    def __init__(self) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                n = int(query.get("n", ["1000"])[0])
                chunk = int(query.get("chunk", ["65536"])[0])
                delay = float(query.get("delay", ["0.02"])[0])
                chunked = query.get("chunked", ["0"])[0] == "1"
                fill = bytes([int(query.get("byte", ["120"])[0])])
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(n))
                self.end_headers()
                sent = 0
                try:
                    while sent < n:
                        size = min(chunk, n - sent)
                        data = fill * size
                        self.wfile.write(b"%x\r\n%s\r\n" % (size, data) if chunked else data)
                        self.wfile.flush()
                        sent += size
                        time.sleep(delay)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client went away

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def trickle() -> Iterator[_TrickleServer]:
    server = _TrickleServer()
    yield server
    server.close()


# The progress bar --------------------------------------------------------------------------

SIZE = r"\d+(?:\.\d)? (?:B|KiB|MiB)"
FRAME = re.compile(
    rf" *\d+% \[#* *\] {SIZE} / 2\.9 MiB  (?:{SIZE}/s|--- B/s)(?:  \d+:\d\d left)?\x1b\[K"
)
FINAL = re.compile(rf"100% \[#{{30}}\] 2\.9 MiB in \d+\.\d\d s, {SIZE}/s")


@pytest.mark.parametrize("mode", MODES)
def test_progress_bar_frames_clear_the_line_and_end_tidy(
    trickle: _TrickleServer, tmp_path: Path, mode: list[str]
) -> None:
    n = 3_000_000  # 2.9 MiB in 46 chunks 20 ms apart: about 1 s, 5 to 10 frames
    target = tmp_path / "big.bin"
    run = on_terminal("get", f"{trickle.url}/?n={n}", "-o", str(target), *mode, stdout_tty=False)
    assert run.code == EXIT_OK, run.err
    assert target.stat().st_size == n and run.out == b""
    frames = run.err.decode().split("\r")
    assert frames[0] == "" and frames[-1] == "\n"  # the pty turned the final "\n" into "\r\n"
    frames = frames[1:-1]
    assert len(frames) >= 3, frames
    for frame in frames[:-1]:  # each frame erases what a longer one left
        assert FRAME.fullmatch(frame), frame
    assert any("MiB/s" in f or "KiB/s" in f for f in frames[:-1])  # the rate
    assert FINAL.fullmatch(frames[-1].removesuffix("\x1b[K")), frames[-1]
    [line] = render(run.err)  # the screen: one tidy line, nothing stale after it
    assert FINAL.fullmatch(line), line


def test_progress_bar_fits_a_narrow_terminal(trickle: _TrickleServer, tmp_path: Path) -> None:
    run = on_terminal(
        "get", f"{trickle.url}/?n=3000000", "-o", str(tmp_path / "f"), width=40, stdout_tty=False
    )
    assert run.code == EXIT_OK, run.err
    frames = [f.removesuffix("\x1b[K") for f in run.err.decode().split("\r")[1:-1]]
    assert len(frames) >= 2 and all(len(f) <= 39 for f in frames), frames
    [line] = render(run.err, width=40)  # never wrapped onto a second line
    assert line.startswith("100% [######")


@pytest.mark.parametrize("mode", MODES)
def test_progress_without_a_length(
    trickle: _TrickleServer, tmp_path: Path, mode: list[str]
) -> None:
    run = on_terminal(
        "get", f"{trickle.url}/?n=500000&chunked=1", "-o", str(tmp_path / "f"), *mode,
        stdout_tty=False,
    )  # fmt: skip
    assert run.code == EXIT_OK, run.err
    assert (tmp_path / "f").stat().st_size == 500000
    [line] = render(run.err)
    assert re.fullmatch(rf"488\.3 KiB in \d+\.\d\d s, {SIZE}/s", line), line


@pytest.mark.parametrize("mode", MODES)
def test_failed_download_erases_the_bar_before_the_error(
    raw_server: RawServer, tmp_path: Path, mode: list[str]
) -> None:
    args = ("get", f"{raw_server.url}/truncated", "-o", str(tmp_path / "f"), *mode)
    run = on_terminal(*args, width=200)
    assert run.code == EXIT_TRANSPORT
    assert render(run.err, width=200) == [
        f"cf-http: transport error: GET {raw_server.url}/truncated: "
        "the body was cut short: 10 of 1000 bytes received after 1 attempt"
    ]
    assert b"\x1b[1;31mtransport error\x1b[0m" in run.err  # the kind in bold red
    assert list(tmp_path.iterdir()) == []


def test_output_dash_on_a_terminal_draws_no_bar(trickle: _TrickleServer) -> None:
    run = on_terminal("get", f"{trickle.url}/?n=1000", "-o", "-", width=100)
    assert run.code == EXIT_OK
    assert render(run.out) == ["x" * 100] * 10 and run.err == b""  # wrapped, no bar


# Colour and pretty JSON --------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_json_is_pretty_and_coloured_on_a_terminal(server: AppServer, mode: list[str]) -> None:
    run = on_terminal("get", f"{server.url}/echo?q=1", "-i", *mode)
    assert run.code == EXIT_OK and run.err == b""
    assert run.out.startswith(b"\x1b[1;32mHTTP/1.1 200 OK\x1b[0m\r\n\x1b[36mdate\x1b[0m: ")
    assert b'\x1b[1;34m"method"\x1b[0m: \x1b[32m"GET"\x1b[0m,\r\n' in run.out
    screen = render(run.out)
    start = screen.index("{")
    assert screen[start + 1 : start + 4] == [
        '  "method": "GET",',
        '  "path": "/echo",',
        '  "query": "q=1",',
    ]
    assert json.loads("\n".join(screen[start:]))["method"] == "GET"


@pytest.mark.parametrize(
    ("option", "env"),
    [
        pytest.param(["--color=never"], {}, id="never"),
        pytest.param([], {"NO_COLOR": "1"}, id="NO_COLOR"),
        pytest.param([], {"TERM": "dumb"}, id="dumb"),
    ],
)
def test_no_colour_but_still_pretty(
    server: AppServer, option: list[str], env: dict[str, str]
) -> None:
    run = on_terminal("get", f"{server.url}/echo", *option, env=env)
    assert run.code == EXIT_OK
    assert b"\x1b" not in run.out
    assert render(run.out)[:2] == ["{", '  "method": "GET",']


def test_hostile_json_cannot_drive_the_terminal(server: AppServer) -> None:
    # A JSON string holding C1 controls (U+009B is CSI on some terminals) is shown escaped.
    evil = '"\u009b31mred\u2028"'  # the characters themselves, not JSON escapes
    run = on_terminal("post", f"{server.url}/echo", "--data", evil, "--color=never")
    assert run.code == EXIT_OK
    assert "\u009b" not in run.out.decode() and "\\u009b31mred\\u2028" in run.out.decode()


def test_binary_body_is_not_written_to_a_terminal(trickle: _TrickleServer) -> None:
    run = on_terminal("get", f"{trickle.url}/?n=3000&byte=0", width=200)
    assert run.code == EXIT_OK and run.out == b""
    assert render(run.err, width=200) == [
        "cf-http: a binary body (2.9 KiB) is not written to a terminal; "
        "use -o FILE, or -o - to write it anyway"
    ]
    run = on_terminal("get", f"{trickle.url}/?n=3000&byte=0", "-o", "-")
    assert run.code == EXIT_OK and run.out == b"\0" * 3000 and run.err == b""


# The password prompt -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_user_alone_asks_for_the_password_without_echo(server: AppServer, mode: list[str]) -> None:
    typed = "typed-secret"
    prompt = b"Enter host password for user 'alice': "
    run = on_terminal(
        "get", f"{server.url}/echo", "-u", "alice", *mode, answer=(prompt, f"{typed}\n".encode()),
        stdout_tty=False,
    )  # fmt: skip
    assert run.code == EXIT_OK, run.err
    body = json.loads(run.out)
    expected = base64.b64encode(f"alice:{typed}".encode()).decode()
    assert ["authorization", f"Basic {expected}"] in body["headers"]
    assert typed.encode() not in run.err  # not echoed
    assert render(run.err) == [prompt.decode().rstrip()]
