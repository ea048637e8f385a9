"""The benchmark's local HTTP server: nginx when installed, else a small asyncio server.

Both serve, with keep-alive on 127.0.0.1:

    /small   200, a 2-byte body ("ok")
    /large   200, a 1 MiB body
    /gib     200, a 1 GiB body (nginx: a sparse file; python: generated on the fly)

The python server (`python benchmarks/_server.py`, run in its own process) also
serves `/503` (always 503, counted), `/count` (how many `/503` requests it saw)
and `/reset` (sets that count to 0): the retry-amplification run needs it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LARGE", "SMALL", "GIB", "Server", "find_nginx", "start_server"]

SMALL = b"ok"
LARGE = 1024 * 1024  # bytes
GIB = 1024**3  # bytes

_NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {dir}/www;
        location = /small {{ default_type text/plain; return 200 "ok"; }}
        location = /large {{ try_files /large =404; }}
        location = /gib {{ try_files /gib =404; }}
    }}
}}
"""


@dataclass
class Server:
    """A running server: `url` + a path; `stop()` ends it."""

    kind: str  # "nginx" or "python"
    url: str
    process: subprocess.Popen[bytes]
    cpu: int | None
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def describe(self) -> str:
        where = f"pinned to CPU {self.cpu}" if self.cpu is not None else "not pinned"
        return f"{self.kind} at {self.url} (pid {self.process.pid}, {where})"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def find_nginx() -> str | None:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/small", timeout=1) as response:
                if response.read() == SMALL:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"server at {url} did not answer within {timeout} s")
        time.sleep(0.05)


def _start_nginx(nginx: str, cpu: int | None) -> Server:
    tmp = tempfile.TemporaryDirectory(prefix="cf-bench-nginx-")
    root = Path(tmp.name)
    www = root / "www"
    www.mkdir()
    (www / "large").write_bytes(b"x" * LARGE)
    with open(www / "gib", "wb") as f:  # sparse: no disk, no page cache to fill
        f.truncate(GIB)
    for path in (root, www, www / "large", www / "gib"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by nginx's worker user
    port = _free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    conf = root / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(dir=root, port=port, user=user))
    process = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(root), "-e", str(root / "error.log")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=(lambda: _pin(cpu)) if cpu is not None else None,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
    except RuntimeError as exc:
        process.kill()
        _, err = process.communicate()
        tmp.cleanup()
        raise RuntimeError(f"{exc}: {err.decode(errors='replace').strip()}") from None
    return Server("nginx", url, process, cpu, tmp)


def _start_python(cpu: int | None) -> Server:
    cmd = [sys.executable, os.path.abspath(__file__), "--port", "0"]
    if cpu is not None:
        cmd += ["--cpu", str(cpu)]
    process = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    assert process.stdout is not None
    line = process.stdout.readline().decode().split()
    if len(line) != 2 or line[0] != "READY":
        process.kill()
        raise RuntimeError(f"python server did not start: {line!r}")
    url = f"http://127.0.0.1:{line[1]}"
    _wait_until_up(url, process)
    return Server("python", url, process, cpu)


def start_server(kind: str = "auto", cpu: int | None = None) -> Server:
    """Start a server ("auto": nginx if installed, else python), optionally on one CPU."""
    if kind not in ("auto", "nginx", "python"):
        raise ValueError(f"unknown server kind {kind!r}")
    if kind != "python":
        nginx = find_nginx()
        if nginx is not None:
            try:
                return _start_nginx(nginx, cpu)
            except (RuntimeError, OSError) as exc:
                if kind == "nginx":
                    raise
                print(f"# nginx failed to start ({exc}); using the python server", flush=True)
        elif kind == "nginx":
            raise RuntimeError("nginx is not installed")
    return _start_python(cpu)


# The python server ------------------------------------------------------------------

_OK_SMALL = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_LARGE_BODY = b"x" * LARGE
_OK_LARGE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % LARGE
_OK_GIB = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % GIB
_UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_CHUNK = memoryview(b"\0" * (256 * 1024))


class _Counter:
    unavailable = 0


class _Protocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, just enough for the benchmark's requests."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._writable = asyncio.Event()
        self._writable.set()
        self._streaming = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        self._transport = None

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        transport = self._transport
        assert transport is not None
        while not self._streaming:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end]
            body_length = 0
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = lower.find(b"\r\n", at + 2)
                body_length = int(lower[at + 17 : stop if stop >= 0 else None])
            if len(buffer) < end + 4 + body_length:
                break
            buffer = buffer[end + 4 + body_length :]
            path = head.split(b" ", 2)[1]
            close = b"\r\nconnection: close" in lower
            if path == b"/small":
                transport.write(_OK_SMALL)
            elif path == b"/large":
                transport.write(_OK_LARGE)
                transport.write(_LARGE_BODY)
            elif path == b"/503":
                _Counter.unavailable += 1
                transport.write(_UNAVAILABLE)
            elif path == b"/count":
                body = b"%d" % _Counter.unavailable
                transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            elif path == b"/reset":
                _Counter.unavailable = 0
                transport.write(_OK_SMALL)
            elif path == b"/gib":
                self._streaming = True
                asyncio.ensure_future(self._stream_gib(close))
                break
            else:
                transport.write(_NOT_FOUND)
            if close:
                transport.close()
                return
        self._buffer = buffer

    async def _stream_gib(self, close: bool) -> None:
        transport = self._transport
        if transport is None:
            return
        transport.write(_OK_GIB)
        left = GIB
        while left > 0 and self._transport is not None:
            await self._writable.wait()
            size = min(left, len(_CHUNK))
            transport.write(_CHUNK[:size])
            left -= size
        self._streaming = False
        if close and self._transport is not None:
            transport.close()
        elif self._buffer and self._transport is not None:
            pending, self._buffer = self._buffer, b""
            self.data_received(pending)


async def _serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Protocol, "127.0.0.1", port, backlog=4096)
    sockname = server.sockets[0].getsockname()
    print(f"READY {sockname[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    _pin(args.cpu)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
