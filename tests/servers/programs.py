"""Real third-party servers from the system packages, started by the tests.

Each runs as a child process on a free loopback port, as the current user,
with its own configuration, logs and data in a temporary directory; nothing of
the system's configuration, logs or ports is touched. `scripts/_system_deps.sh`
installs the Debian packages (`nginx`, `tinyproxy`, `microsocks`).

- `Nginx`: static files and a few locations (see `NGINX_PATHS`), keep-alive on
  with `keepalive_timeout 1s`, an access log that tells the connection each
  request came on (`Nginx.log()`).
- `TinyProxy`: a forwarding proxy (absolute-form HTTP and CONNECT) for 127.0.0.1
  clients; optionally with Basic authentication (a real `407`). `forwarded()`
  lists the requests it handled, read from its log.
- `MicroSocks`: a SOCKS5 proxy, optionally with username/password; `connects()`
  lists the connections it made, read from its output.

`find_program(name)` is None when a program is missing; the fixtures then skip,
or fail when `CF_REQUIRE_PROGRAMS=1` (set by `scripts/test` once the install
step succeeded), see `require_program`.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "LARGE_BODY",
    "NGINX_PATHS",
    "NGINX_TEXT",
    "AccessLine",
    "MicroSocks",
    "Nginx",
    "Program",
    "ProgramError",
    "TinyProxy",
    "find_program",
    "require_program",
]

_SEARCH = ("/usr/sbin", "/usr/local/sbin", "/sbin", "/usr/bin", "/usr/local/bin")


class ProgramError(RuntimeError):
    """A program that is installed failed to start (its log is in the message)."""


def find_program(name: str) -> str | None:
    """The path of executable `name` on PATH or in the usual sbin folders, else None."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SEARCH])
    return shutil.which(name, path=path)


def require_program(name: str, package: str | None = None) -> str:
    """The path of `name`; skip the test when it is missing (fail with CF_REQUIRE_PROGRAMS=1)."""
    found = find_program(name)
    if found is not None:
        return found
    reason = f"{name} is not installed (Debian package {package or name}; scripts/test installs it)"
    if os.environ.get("CF_REQUIRE_PROGRAMS") == "1":
        pytest.fail(f"{reason}, and CF_REQUIRE_PROGRAMS=1", pytrace=False)
    pytest.skip(reason)


def _parent_death_signal() -> Callable[[], None] | None:
    """A `preexec_fn` asking Linux to SIGTERM the child when the test process dies.

    So a test run that is killed leaves no server behind. Looked up once here: the
    child (forked from a process with threads) only makes the one system call.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, 15

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm)

    return preexec


_PREEXEC = _parent_death_signal() if os.uname().sysname == "Linux" else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Program:
    """A child process with a temporary directory; `stop()` ends both.

    `start()` picks a free port, writes the configuration (`_configure`), runs
    the command and waits until the port accepts connections; a port taken
    meanwhile by someone else is retried on another one.
    """

    name = "program"

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self._tmp = tempfile.TemporaryDirectory(prefix=f"cf-test-{self.name}-")
        self.dir = Path(self._tmp.name)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.output = self.dir / "output.log"  # the program's stdout and stderr
        self._log_offset = 0  # where the log read by the subclass starts (see reset())

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _configure(self) -> None:
        """Write the configuration for `self.port` into `self.dir`."""

    def start(self, timeout: float = 10.0) -> None:
        for _attempt in range(3):
            self.port = _free_port()
            self._configure()
            with open(self.output, "ab") as out:
                self.process = subprocess.Popen(
                    self._command(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=self.dir,
                    start_new_session=True,  # a ^C to pytest does not hit it first
                    preexec_fn=_PREEXEC,
                )
            if self._wait_listening(timeout):
                return
            self._end_process()
            if "in use" not in self._output_tail():
                break
        error = self._output_tail()
        self.stop()
        raise ProgramError(f"{self.name} did not start: {error}")

    def _wait_listening(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.02)
        return False

    def _output_tail(self, lines: int = 5) -> str:
        try:
            text = self.output.read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def _end_process(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        """End the process and remove the temporary directory."""
        self._end_process()
        self._tmp.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _poll(read: Callable[[], list[str]], min_lines: int, timeout: float) -> list[str]:
    """Lines from `read()`, waiting up to `timeout` until there are at least `min_lines`."""
    deadline = time.monotonic() + timeout
    while True:
        lines: list[str] = read()
        if len(lines) >= min_lines or time.monotonic() >= deadline:
            return lines
        time.sleep(0.01)


# -- nginx -------------------------------------------------------------------------------

NGINX_TEXT = b"hello from nginx\n"
"""The body of `/text`."""

LARGE_BODY = bytes(range(256)) * 4096
"""The content of `/large.bin` (1 MiB)."""

NGINX_PATHS = {
    "/text": "200 text/plain, NGINX_TEXT (any method; a request body is read and dropped)",
    "/large.bin": "200, LARGE_BODY (a static file: Content-Length, ETag, Last-Modified)",
    "/static/hello.txt": "200, a small static file (GET/HEAD only)",
    "/gzip.txt": "200, a text file gzip-compressed when the client accepts gzip",
    "/redirect": "302 to /text",
    "/redirect-307": "307 to /text (the method and body are kept)",
    "/redirect-loop": "302 to itself",
    "/cookies": "200 with two Set-Cookie headers (a=1, b=2)",
    "/missing": "404",
}
"""What the nginx test server serves (keep-alive on, `keepalive_timeout 1s`)."""

_GZIP_TEXT = b"compress me please " * 200

_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
events {{ worker_connections 256; }}
http {{
    log_format cf '$connection $connection_requests $request_method "$request_uri" '
                  '$status $body_bytes_sent "$http_x_request_id"';
    access_log {dir}/access.log cf;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    keepalive_timeout 1s;
    keepalive_requests 1000;
    tcp_nodelay on;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {dir}/www;
        location = /text {{ default_type text/plain; return 200 "hello from nginx\\n"; }}
        location = /redirect {{ return 302 /text; }}
        location = /redirect-307 {{ return 307 /text; }}
        location = /redirect-loop {{ return 302 /redirect-loop; }}
        location = /cookies {{
            add_header Set-Cookie "a=1; Path=/";
            add_header Set-Cookie "b=2; Path=/";
            default_type text/plain;
            return 200 "cookies\\n";
        }}
        location = /gzip.txt {{ gzip on; gzip_types text/plain; gzip_min_length 1; }}
    }}
}}
"""


@dataclass(frozen=True, slots=True)
class AccessLine:
    """One line of nginx's access log."""

    connection: int  # nginx's connection serial number
    connection_requests: int  # the request's position on its connection, from 1
    method: str
    uri: str
    status: int
    body_bytes: int
    request_id: str | None  # the X-Request-Id request header


_ACCESS = re.compile(r'^(\d+) (\d+) (\S+) "(.*)" (\d+) (\d+) "(.*)"$')


class Nginx(Program):
    """nginx on 127.0.0.1:`port` serving `NGINX_PATHS`."""

    name = "nginx"

    def _command(self) -> list[str]:
        conf = self.dir / "nginx.conf"
        return [self.executable, "-c", str(conf), "-p", str(self.dir), "-e", str(self.error_log)]

    @property
    def error_log(self) -> Path:
        return self.dir / "error.log"

    @property
    def access_log(self) -> Path:
        return self.dir / "access.log"

    def _configure(self) -> None:
        www = self.dir / "www"
        (www / "static").mkdir(parents=True, exist_ok=True)
        (www / "large.bin").write_bytes(LARGE_BODY)
        (www / "static" / "hello.txt").write_bytes(b"hello, static\n")
        (www / "gzip.txt").write_bytes(_GZIP_TEXT)
        # As root, the master starts its worker as root too (nginx's default is `nobody`,
        # which could not read this private directory); otherwise the current user.
        user = "user root root;" if os.geteuid() == 0 else ""
        conf = _NGINX_CONF.format(dir=self.dir, port=self.port, user=user)
        (self.dir / "nginx.conf").write_text(conf)

    def _end_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(15)  # SIGTERM: fast shutdown of master and worker
        super()._end_process()

    def _read_log(self) -> list[str]:
        return _read_from(self.access_log, self._log_offset).splitlines()

    def log(self, min_lines: int = 0, timeout: float = 2.0) -> list[AccessLine]:
        """The access log since the last reset; waits for `min_lines` (nginx logs after
        the response went out, so a client can be a moment ahead of the log)."""
        lines = _poll(self._read_log, min_lines, timeout)
        found: list[AccessLine] = []
        for line in lines:
            m = _ACCESS.match(line)
            if m is None:
                continue
            conn, nth, method, uri, status, sent, rid = m.groups()
            found.append(
                AccessLine(
                    int(conn),
                    int(nth),
                    method,
                    uri,
                    int(status),
                    int(sent),
                    None if rid == "-" else rid,
                )
            )
        return found

    def reset(self) -> None:
        """Forget the access log so far."""
        self._log_offset = _size(self.access_log)


# -- tinyproxy ---------------------------------------------------------------------------

_TINYPROXY_CONF = """\
Port {port}
Listen 127.0.0.1
Allow 127.0.0.1
Timeout 30
MaxClients 64
LogFile "{dir}/tinyproxy.log"
LogLevel Info
PidFile "{dir}/tinyproxy.pid"
XTinyproxy No
{auth}
"""

_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+) HTTP/")


class TinyProxy(Program):
    """tinyproxy on 127.0.0.1:`port`; with `username`, Basic authentication is required."""

    name = "tinyproxy"

    def __init__(
        self, executable: str, username: str | None = None, password: str | None = None
    ) -> None:
        super().__init__(executable)
        self.username = username
        self.password = password

    def _command(self) -> list[str]:
        return [self.executable, "-d", "-c", str(self.dir / "tinyproxy.conf")]

    @property
    def log_path(self) -> Path:
        return self.dir / "tinyproxy.log"

    def _configure(self) -> None:
        auth = f"BasicAuth {self.username} {self.password}" if self.username else ""
        conf = _TINYPROXY_CONF.format(port=self.port, dir=self.dir, auth=auth)
        (self.dir / "tinyproxy.conf").write_text(conf)
        self.reset()

    @property
    def url_with_credentials(self) -> str:
        """`http://user:password@127.0.0.1:port` (the plain `url` has no credentials)."""
        return f"http://{self.username}:{self.password}@127.0.0.1:{self.port}"

    def _read_requests(self) -> list[str]:
        text = _read_from(self.log_path, self._log_offset)
        return [f"{m.group(1)} {m.group(2)}" for m in _REQUEST.finditer(text)]

    def forwarded(self, min_count: int = 0, timeout: float = 2.0) -> list[tuple[str, str]]:
        """The requests tinyproxy received since the last reset, as (method, target):
        `("GET", "http://127.0.0.1:8000/x")`, `("CONNECT", "127.0.0.1:8443")`; a
        request refused with 407 is listed too."""
        lines = _poll(self._read_requests, min_count, timeout)
        return [(method, target) for method, target in (line.split(" ", 1) for line in lines)]

    def reset(self) -> None:
        """Forget the log so far."""
        self._log_offset = _size(self.log_path)


# -- microsocks --------------------------------------------------------------------------

_CONNECTED = re.compile(r"client\[\d+\] (\S+): connected to (\S+)")


class MicroSocks(Program):
    """microsocks (SOCKS5) on 127.0.0.1:`port`; with `username`, authentication is required."""

    name = "microsocks"

    def __init__(
        self, executable: str, username: str | None = None, password: str | None = None
    ) -> None:
        super().__init__(executable)
        self.username = username
        self.password = password

    def _command(self) -> list[str]:
        command = [self.executable, "-i", "127.0.0.1", "-p", str(self.port)]
        if self.username:
            command += ["-u", self.username, "-P", self.password or ""]
        return command

    def _configure(self) -> None:
        self.reset()

    @property
    def url(self) -> str:
        """`socks5://127.0.0.1:port` (no credentials)."""
        return f"socks5://127.0.0.1:{self.port}"

    @property
    def url_with_credentials(self) -> str:
        return f"socks5://{self.username}:{self.password}@127.0.0.1:{self.port}"

    def _read_connects(self) -> list[str]:
        text = _read_from(self.output, self._log_offset)
        return [m.group(2) for m in _CONNECTED.finditer(text)]

    def connects(self, min_count: int = 0, timeout: float = 2.0) -> list[str]:
        """The `host:port` of each connection the proxy made since the last reset."""
        return _poll(self._read_connects, min_count, timeout)

    def reset(self) -> None:
        """Forget the output so far."""
        self._log_offset = _size(self.output)
