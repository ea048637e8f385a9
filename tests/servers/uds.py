"""The test app served on a Unix domain socket (uvicorn), for `uds=` transports.

`ServerThread` binds a loopback TCP socket for every server; `on_unix_socket`
wraps a `Serve` so that it serves on a Unix socket at `path` instead (the TCP
socket stays unused and is closed with the thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable

from ._threaded import Serve
from .app import AppServer, Recorder

__all__ = ["UnixAppServer", "on_unix_socket"]


def on_unix_socket(serve: Serve, path: str) -> Serve:
    """`serve`, on a Unix socket listening at `path` (removed again at shutdown)."""

    async def run(
        _tcp: socket.socket, started: Callable[[], None], stopping: asyncio.Event
    ) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(path)
            sock.listen(128)
            sock.setblocking(False)
            await serve(sock, started, stopping)
        finally:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    return run


class UnixAppServer(AppServer):
    """What the `uds_server` fixture returns: the test app's `AppServer` on a Unix socket.

    `path` is the socket (`httpx.AsyncHTTPTransport(uds=path)`); `url` is the base
    URL to request through it (`http://localhost`, the host is only a name).
    """

    def __init__(self, path: str, recorder: Recorder) -> None:
        super().__init__("http://localhost", recorder)
        self.path = path

    def __repr__(self) -> str:
        return f"UnixAppServer({self.path!r})"
