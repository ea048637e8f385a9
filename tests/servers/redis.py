"""A real redis-server (Debian's) for the tests: its own port, its own data directory.

`RedisServer.start()` runs `redis-server` on a free loopback port with a
temporary directory, no RDB snapshots and no AOF (nothing is written outside
that directory, and a restart starts empty), in the foreground of a child
process. Helpers stop it (SIGTERM), kill it (SIGKILL), start it again on the
same port, pause it (`CLIENT PAUSE`: connections open, commands wait) and
freeze it (SIGSTOP: not even the handshake answers). `command()` speaks RESP
over a plain socket, so the helpers need no client library.

`async_run` / `sync_run` run a worker's main function in a spawned process,
in the mode of the test module that spawned it, and `wrong_mode_client_async`
/ `wrong_mode_client` make a redis-py client of the *other* mode
(`scripts/unasync.py` renames each async name to its sync one).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "RedisServer",
    "async_run",
    "find_redis_server",
    "sync_run",
    "wrong_mode_client",
    "wrong_mode_client_async",
]

T = TypeVar("T")


def find_redis_server() -> str | None:
    """The redis-server binary, or None when it is not installed."""
    return shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)),
        None,
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _encode(*args: str | bytes) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.file = sock.makefile("rb")

    def reply(self) -> Any:
        line = self.file.readline()
        if not line:
            raise ConnectionError("redis-server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self.reply() for _ in range(count)]
        raise RuntimeError(f"unexpected RESP reply {line!r}")


class RedisServer:
    """One redis-server child process on 127.0.0.1; `url` stays the same across restarts."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.port = _free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="cf-test-redis-")
        self.dir = Path(self._dir.name)
        self.process: subprocess.Popen[bytes] | None = None
        self._frozen = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start redis-server (empty) on `self.port` and wait until it answers PING."""
        if self.running:
            return
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--enable-debug-command", "local",
            "--logfile", str(self.dir / "redis.log"),
            "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        self._frozen = False
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.command("PING", timeout=0.5) == "PONG":
                    return
            except (OSError, RuntimeError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.dir / "redis.log").read_text(errors="replace")[-2000:]
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop it cleanly (SIGTERM); nothing is saved, so a restart starts empty."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: the server dies at once, connections reset."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port, empty."""
        self.stop()
        self.start()

    def pause(self, seconds: float) -> None:
        """`CLIENT PAUSE` for `seconds`: connections stay open, every command waits."""
        self.command("CLIENT", "PAUSE", str(round(seconds * 1000)), "ALL")

    def unpause(self) -> None:
        self.command("CLIENT", "UNPAUSE")

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections, nothing answers."""
        if self.running and not self._frozen:
            assert self.process is not None
            self.process.send_signal(signal.SIGSTOP)
            self._frozen = True

    def thaw(self) -> None:
        if self.running and self._frozen:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
        self._frozen = False

    def reset(self) -> None:
        """Running, answering and empty: what each test starts with."""
        self.thaw()
        if not self.running:
            self.start()
        self.unpause()
        self.command("FLUSHALL")

    def command(self, *args: str | bytes, timeout: float = 2.0) -> Any:
        """Send one command over a fresh connection; the decoded reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(_encode(*args))
            return _Reader(sock).reply()

    def dump(self) -> dict[bytes, Any]:
        """Every key and its value (strings as bytes, other types as their members)."""
        out: dict[bytes, Any] = {}
        for key in self.command("KEYS", "*"):
            kind = self.command("TYPE", key)
            if kind == "string":
                out[key] = self.command("GET", key)
            elif kind == "hash":
                out[key] = self.command("HGETALL", key)
            elif kind == "list":
                out[key] = self.command("LRANGE", key, "0", "-1")
            elif kind == "set":
                out[key] = self.command("SMEMBERS", key)
            elif kind == "zset":
                out[key] = self.command("ZRANGE", key, "0", "-1")
            else:
                out[key] = kind
        return out

    def close(self) -> None:
        self.thaw()
        self.kill()
        self._dir.cleanup()

    def _end(self, sig: signal.Signals) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        if self._frozen:
            process.send_signal(signal.SIGCONT)
            self._frozen = False
        process.send_signal(sig)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __repr__(self) -> str:
        return f"RedisServer({self.url!r}, running={self.running})"


def async_run(main: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run an async worker's main function (in a spawned process)."""
    return asyncio.run(main(*args))


def sync_run(main: Callable[..., T], *args: Any) -> T:
    """Run a sync worker's main function (in a spawned process)."""
    return main(*args)


def wrong_mode_client_async(url: str) -> Any:
    """For the async tests: a sync redis-py client (the wrong mode for an async store)."""
    import redis

    return redis.Redis.from_url(url)


def wrong_mode_client(url: str) -> Any:
    """For the sync tests: an asyncio redis-py client (the wrong mode for a sync store)."""
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url)
