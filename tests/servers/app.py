"""A plain ASGI app (no framework) with endpoints that misbehave on purpose.

Endpoints (any method); the key a request is counted under is its `key` query
parameter when present, else its path:

- `/echo`: 200 JSON `{"method", "path", "query", "headers": [[name, value], ...], "body"}`.
- `/status/{code}[?retry_after=V]`: that status (and a `Retry-After: V` header).
- `/fail/{n}[?status=503][&retry_after=V]`: the first n hits for the key answer
  `status`; later hits answer 200 JSON `{"hits": k}`.
- `/stall[?seconds=S]`: waits S seconds (default: until the client goes away)
  before the response headers.
- `/stall-first[?seconds=S]`: the first request of a key stalls like `/stall`; the next answer
  200 at once (a slow first attempt, for hedging).
- `/slow-body[?seconds=S]`: headers (with Content-Length) at once, the body after S.
- `/bytes?n=N[&chunked=1]`: N bytes of b"x", streamed in 64 KiB chunks.
- `/redirect?to=URL[&status=302]`: a redirect to URL.
- `/huge-headers?size=K`: 200 with an `X-Huge` header of K bytes.
- `/drain`: reads the request body without keeping it; 200 JSON `{"received": n}`.
- anything else: 404.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

__all__ = [
    "AppServer",
    "Message",
    "Receive",
    "Recorded",
    "Recorder",
    "Scope",
    "Send",
    "TestApp",
    "decode_headers",
    "json_body",
    "query_params",
    "read_body",
    "request_key",
    "send_response",
    "wait_any",
]

Scope = Mapping[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHUNK = 64 * 1024
_XS = b"x" * CHUNK


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    time: float  # time.monotonic() when the request headers arrived
    client: tuple[str, int] | None = None  # the peer's (host, port)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


class Recorder:
    """Thread-safe hit counters and request logs, keyed by request key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, int] = {}
        self._requests: dict[str, list[Recorded]] = {}

    def hit(self, key: str) -> int:
        """Count one more request for `key`; return its number (from 1)."""
        with self._lock:
            n = self._hits.get(key, 0) + 1
            self._hits[key] = n
            return n

    def record(self, key: str, request: Recorded) -> None:
        with self._lock:
            self._requests.setdefault(key, []).append(request)

    def hits(self, key: str) -> int:
        with self._lock:
            return self._hits.get(key, 0)

    def requests(self, key: str) -> list[Recorded]:
        with self._lock:
            return list(self._requests.get(key, ()))

    def all_requests(self) -> list[Recorded]:
        with self._lock:
            return sorted((r for rs in self._requests.values() for r in rs), key=lambda r: r.time)

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self._requests.clear()


def query_params(scope: Scope) -> dict[str, str]:
    """The query parameters (last value wins)."""
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}


def request_key(scope: Scope) -> str:
    return query_params(scope).get("key") or str(scope["path"])


def decode_headers(scope: Scope) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", ())]


async def read_body(receive: Receive, keep: bool = True) -> tuple[bytes, int, bool]:
    """Read the whole request body: (body or b"" when not kept, size, client_disconnected)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(parts), size, True
        chunk = message.get("body", b"")
        size += len(chunk)
        if keep:
            parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts), size, False


async def send_response(
    send: Send,
    status: int,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    content_type: str | None = "text/plain; charset=utf-8",
) -> None:
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers or ()]
    no_body = status in (204, 304)
    if content_type is not None and not no_body:
        raw_headers.append((b"content-type", content_type.encode("latin-1")))
    if not no_body:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": b"" if no_body else body})


def json_body(value: object) -> bytes:
    return json.dumps(value).encode()


async def wait_any(timeout: float | None, *events: asyncio.Event) -> asyncio.Event | None:
    """Wait until one of `events` is set (returned) or `timeout` passes (None)."""
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    return next((e for e in events if e.is_set()), None)


class _DisconnectWatch:
    """After the request body is read, `receive()` only ever says `http.disconnect`."""

    def __init__(self, receive: Receive) -> None:
        self.disconnected = asyncio.Event()
        self._task = asyncio.ensure_future(self._run(receive))

    async def _run(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.disconnected.set()

    async def aclose(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _float(params: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(params[name])
    except (KeyError, ValueError):
        return default


def _int(params: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(params[name])
    except (KeyError, ValueError):
        return default


class TestApp:
    """The ASGI app behind the `server` fixture."""

    __test__ = False  # not a pytest test class

    def __init__(self, recorder: Recorder, stopping: asyncio.Event) -> None:
        self.recorder = recorder
        self.stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        received = time.monotonic()
        key = request_key(scope)
        hit = self.recorder.hit(key)
        path: str = scope["path"]
        body, size, gone = await read_body(receive, keep=path != "/drain")
        client = scope.get("client")
        self.recorder.record(
            key,
            Recorded(
                method=scope["method"],
                path=path,
                query=scope.get("query_string", b"").decode("latin-1"),
                headers=decode_headers(scope),
                body=body,
                time=received,
                client=(str(client[0]), int(client[1])) if client else None,
            ),
        )
        if gone:
            return
        params = query_params(scope)
        if path == "/echo":
            await self._echo(scope, body, send)
        elif path.startswith("/status/"):
            await self._status(path.removeprefix("/status/"), params, send)
        elif path.startswith("/fail/"):
            await self._fail(path.removeprefix("/fail/"), params, hit, send)
        elif path == "/stall":
            await self._stall(params, receive, send)
        elif path == "/stall-first":  # the first hit of a key stalls, later ones answer
            if hit == 1:
                await self._stall(params, receive, send)
            else:
                await send_response(send, 200, json_body({"hit": hit}), [], "application/json")
        elif path == "/slow-body":
            await self._slow_body(params, receive, send)
        elif path == "/bytes":
            await self._bytes(params, receive, send)
        elif path == "/redirect":
            await self._redirect(params, send)
        elif path == "/huge-headers":
            size_k = max(0, _int(params, "size", 0))
            await send_response(send, 200, b"ok", [("x-huge", "a" * size_k)])
        elif path == "/drain":
            await send_response(send, 200, json_body({"received": size}), [], "application/json")
        else:
            await send_response(send, 404, b"not found")

    async def _echo(self, scope: Scope, body: bytes, send: Send) -> None:
        payload = {
            "method": scope["method"],
            "path": scope["path"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": [list(h) for h in decode_headers(scope)],
            "body": body.decode("utf-8", "replace"),
        }
        await send_response(send, 200, json_body(payload), [], "application/json")

    @staticmethod
    def _retry_after(params: Mapping[str, str]) -> list[tuple[str, str]]:
        value = params.get("retry_after")
        return [] if value is None else [("retry-after", value)]

    async def _status(self, code: str, params: Mapping[str, str], send: Send) -> None:
        if not code.isdigit() or not 200 <= int(code) <= 599:
            await send_response(send, 400, b"status must be 200-599")
            return
        body = f"status {code}".encode()
        await send_response(send, int(code), body, self._retry_after(params))

    async def _fail(self, n: str, params: Mapping[str, str], hit: int, send: Send) -> None:
        status = _int(params, "status", 503)
        if not n.isdigit() or not 200 <= status <= 599:
            await send_response(send, 400, b"usage: /fail/{n}?status=503")
            return
        if hit <= int(n):
            body = f"failure {hit} of {n}".encode()
            await send_response(send, status, body, self._retry_after(params))
        else:
            await send_response(send, 200, json_body({"hits": hit}), [], "application/json")

    async def _stall(self, params: Mapping[str, str], receive: Receive, send: Send) -> None:
        seconds = _float(params, "seconds", 3600.0)
        watch = _DisconnectWatch(receive)
        try:
            woke = await wait_any(seconds, watch.disconnected, self.stopping)
        finally:
            await watch.aclose()
        if woke is watch.disconnected:
            return  # nobody to answer
        if woke is self.stopping:
            await send_response(send, 503, b"shutting down")
            return
        await send_response(send, 200, json_body({"stalled": seconds}), [], "application/json")

    async def _slow_body(self, params: Mapping[str, str], receive: Receive, send: Send) -> None:
        seconds = _float(params, "seconds", 3600.0)
        body = b"slow body"
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        watch = _DisconnectWatch(receive)
        try:
            woke = await wait_any(seconds, watch.disconnected, self.stopping)
        finally:
            await watch.aclose()
        if woke is not watch.disconnected:
            await send({"type": "http.response.body", "body": body})

    async def _bytes(self, params: Mapping[str, str], receive: Receive, send: Send) -> None:
        n = max(0, _int(params, "n", 0))
        chunked = params.get("chunked", "") not in ("", "0", "false")
        headers = [(b"content-type", b"application/octet-stream")]
        if not chunked:
            headers.append((b"content-length", str(n).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        watch = _DisconnectWatch(receive)
        try:
            left = n
            while left > 0:
                if watch.disconnected.is_set() or self.stopping.is_set():
                    return  # the client went away (or shutdown): stop producing
                chunk = _XS if left >= CHUNK else _XS[:left]
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
            if n == 0:
                await send({"type": "http.response.body", "body": b""})
        finally:
            await watch.aclose()

    async def _redirect(self, params: Mapping[str, str], send: Send) -> None:
        to = params.get("to")
        status = _int(params, "status", 302)
        if not to or not 300 <= status <= 399:
            await send_response(send, 400, b"usage: /redirect?to=URL&status=302")
            return
        await send_response(send, status, b"", [("location", to)])


class AppServer:
    """What the `server` fixture returns: the URL and what the server saw."""

    def __init__(self, url: str, recorder: Recorder) -> None:
        self.url = url
        self._recorder = recorder

    def hits(self, key: str) -> int:
        """How many requests arrived for `key` (the `key` query parameter, else the path)."""
        return self._recorder.hits(key)

    def requests(self, key: str) -> list[Recorded]:
        """The requests for `key` whose body was read, in arrival order."""
        return self._recorder.requests(key)

    def all_requests(self) -> list[Recorded]:
        return self._recorder.all_requests()

    def reset(self) -> None:
        self._recorder.reset()

    def __repr__(self) -> str:
        return f"AppServer({self.url!r})"
