"""Run an asyncio server in a background thread with its own event loop.

The test servers start once per session. Each gets a socket bound to 127.0.0.1
on a free port (created here, so the URL is known before the thread starts),
its own thread and its own event loop, and shuts down cleanly when asked.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["Serve", "ServerThread", "bind_loopback", "uvicorn_serve"]

# serve(sock, started, stopping): serve on the listening `sock`, call `started()` once
# requests are being accepted, return once `stopping` is set and everything is closed.
Serve = Callable[[socket.socket, Callable[[], None], asyncio.Event], Awaitable[None]]


def bind_loopback(backlog: int = 128) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 on a port chosen by the kernel."""
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listener says TCP; with proto 0, Nagle plus delayed ACKs add ~40 ms a response.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class ServerThread:
    """One server, one thread, one event loop.

    `stopping` is set (in the server's loop) when `stop()` is called: handlers
    that wait for a long time (stalls, latency) watch it so shutdown is prompt.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.stopping = asyncio.Event()  # bound to the server's loop on first use
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def port(self) -> int:
        assert self._sock is not None, "server not started"
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, serve: Serve, timeout: float = 10.0) -> None:
        self._sock = bind_loopback()
        self._thread = threading.Thread(
            target=self._run, args=(serve, self._sock), name=self.name, daemon=True
        )
        self._thread.start()
        if not self._started.wait(timeout) or self._error is not None:
            self.stop()
            raise RuntimeError(f"{self.name} did not start") from self._error

    def _run(self, serve: Serve, sock: socket.socket) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await serve(sock, self._started.set, self.stopping)

        try:
            asyncio.run(main())
        except BaseException as exc:  # reported by start() / stop()
            self._error = exc
        finally:
            self._started.set()  # never leave start() waiting

    def stop(self, timeout: float = 30.0) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            try:
                loop.call_soon_threadsafe(self.stopping.set)
            except RuntimeError:  # the loop already closed
                pass
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"{self.name} did not stop within {timeout} s")
        if self._sock is not None:
            self._sock.close()
        error, self._error = self._error, None
        if error is not None:
            raise RuntimeError(f"{self.name} failed") from error


def uvicorn_serve(app: Any) -> Serve:
    """A `Serve` running an ASGI 3 app under uvicorn (h11, no lifespan, no logging set-up)."""
    import uvicorn

    async def serve(
        sock: socket.socket, started: Callable[[], None], stopping: asyncio.Event
    ) -> None:
        config = uvicorn.Config(
            app,
            interface="asgi3",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,  # leave the test process's logging alone
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=30,  # longer than any test: no idle-close races
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)

        async def watch() -> None:
            while not server.started:
                await asyncio.sleep(0.005)
            started()
            await stopping.wait()
            server.should_exit = True

        watcher = asyncio.create_task(watch())
        try:
            await server.serve(sockets=[sock])
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    return serve
