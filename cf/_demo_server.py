"""The server `cf-http demo` talks to: plain asyncio HTTP/1.1 on 127.0.0.1, in a thread.

No framework (uvicorn and starlette are not runtime dependencies). The token
endpoint is oauthlib's `BackendApplicationServer` (client credentials, RFC 6749
4.4) with an in-memory `RequestValidator`. Every request is counted under its
key (the `tag` query parameter, else the path) and remembered with the header
the demo reports (`traceparent`), so the demo can show what the server saw.
(The parameter is not called `key`: clients redact `key=` values in URLs.)

Endpoints (any method):

- `POST /token`: the token endpoint (client_secret_basic or client_secret_post).
- `/api/...`: needs `Authorization: Bearer <token>`; 200 JSON or 401.
- `/flaky/{n}[?status=503]`: the first n hits for the tag answer `status`, then 200.
- `/retry-after/{seconds}[?n=1]`: the first n hits answer 503 with `Retry-After`, then 200.
- `/status/{code}`: that status.
- `/echo`: 200 JSON with the method, path, query, headers (credentials masked) and body.
- `/work?ms=20`: 200 after `ms` milliseconds.
- `/slow/{seconds}`: 200 after that many seconds.
- `/bytes/{n}`: n bytes of a fixed pattern.
- `/hits?tag=T`: 200 JSON `{"tag": T, "hits": n}` (not counted itself).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import secrets
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth2 import BackendApplicationServer, RequestValidator

__all__ = ["DemoServer", "Seen"]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_PATTERN = bytes(range(256)) * 256  # 64 KiB
_MAX_LINE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    traceparent: str | None
    at: float  # time.monotonic() on arrival
    connection: int


@dataclass(slots=True)
class _Request:
    method: str
    target: str
    path: str
    query: dict[str, str]
    headers: list[tuple[str, str]]
    body: bytes
    connection: int

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    @property
    def key(self) -> str:
        return self.query.get("tag") or self.path


@dataclass(slots=True)
class _Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, value: object, *headers: tuple[str, str]) -> _Response:
        body = json.dumps(value).encode()
        return cls(status, body, [("Content-Type", "application/json"), *headers])


class _Validator(RequestValidator):
    """Clients and tokens in memory: just enough for the client credentials grant."""

    def __init__(self, clients: dict[str, str]) -> None:
        self.clients = clients
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (client_id, expires at)

    def client_authentication_required(self, request: OAuthRequest, *a: Any, **k: Any) -> bool:
        return True

    def authenticate_client(self, request: OAuthRequest, *args: Any, **kwargs: Any) -> bool:
        client_id, secret = request.client_id, request.client_secret
        auth = request.headers.get("Authorization", "")
        if auth[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(auth[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return False
            client_id, _, secret = (unquote(p) for p in decoded.partition(":"))
        expected = self.clients.get(client_id or "")
        if expected is None or not hmac.compare_digest(expected, secret or ""):
            return False
        request.client_id = client_id
        request.client = type("Client", (), {"client_id": client_id})()
        return True

    def validate_grant_type(
        self, client_id: str, grant_type: str, client: Any, request: OAuthRequest, *a: Any, **k: Any
    ) -> bool:
        return grant_type == "client_credentials"

    def validate_scopes(
        self,
        client_id: str,
        scopes: list[str],
        client: Any,
        request: OAuthRequest,
        *a: Any,
        **k: Any,
    ) -> bool:
        return True

    def get_default_scopes(
        self, client_id: str, request: OAuthRequest, *a: Any, **k: Any
    ) -> list[str]:
        return []

    def save_bearer_token(self, token: Any, request: OAuthRequest, *a: Any, **k: Any) -> None:
        expires = time.monotonic() + float(token.get("expires_in", 3600))
        self.tokens[token["access_token"]] = (request.client_id or "", expires)

    def validate_bearer_token(
        self, token: str | None, scopes: list[str], request: OAuthRequest
    ) -> bool:
        found = self.tokens.get(token or "")
        if found is None or found[1] < time.monotonic():
            return False
        request.client_id = found[0]
        return True


class DemoServer:
    """An HTTP/1.1 server on 127.0.0.1 (a free port) in a background thread.

    `with DemoServer() as server:` starts it; `server.url` is its base URL.
    Counters (`hits`, `seen`, `token_requests`, `stats`) are safe to read from
    any thread; `reset()` clears them.
    """

    def __init__(
        self,
        *,
        client_id: str = "demo-client",
        client_secret: str | None = None,
        token_delay: float = 0.05,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(24)
        self.token_delay = token_delay
        self._validator = _Validator({client_id: self.client_secret})
        self._oauth = BackendApplicationServer(self._validator, token_expires_in=3600)
        self._lock = threading.Lock()
        self._hits: Counter[str] = Counter()
        self._seen: dict[str, list[Seen]] = {}
        self._token_requests = 0
        self._connections = 0
        self._open = 0
        self._peak_open = 0
        self._in_flight = 0
        self._peak_in_flight = 0
        # proto=IPPROTO_TCP so that asyncio sets TCP_NODELAY on accepted connections
        # (it skips sockets whose proto is 0): no Nagle/delayed-ACK stalls of ~40 ms.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="cf-demo-server", daemon=True)
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None

    # Lifetime ----------------------------------------------------------------

    def start(self) -> DemoServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive() and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
            self._thread.join(10)
        self._sock.close()

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._connection, sock=self._sock, limit=_MAX_LINE)
        self._ready.set()
        try:
            await self._stopped.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    # What the server saw -------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
            self._seen.clear()
            self._token_requests = 0
            self._connections = self._peak_open = self._peak_in_flight = 0

    def hits(self, key: str) -> int:
        """How many requests arrived under `key` (a `tag` query value, else the path)."""
        with self._lock:
            return self._hits[key]

    def seen(self, key: str) -> list[Seen]:
        """The requests that arrived under `key`, in order."""
        with self._lock:
            return list(self._seen.get(key, ()))

    @property
    def total_hits(self) -> int:
        with self._lock:
            return sum(self._hits.values())

    @property
    def token_requests(self) -> int:
        with self._lock:
            return self._token_requests

    def stats(self) -> dict[str, int]:
        """Connections accepted, and the peaks of open connections and requests in flight."""
        with self._lock:
            return {
                "connections": self._connections,
                "peak_open": self._peak_open,
                "peak_in_flight": self._peak_in_flight,
            }

    def issue_token(self) -> str:
        """A valid bearer token, as if the token endpoint had issued it."""
        token = secrets.token_urlsafe(24)
        self._validator.tokens[token] = (self.client_id, time.monotonic() + 3600)
        return token

    # HTTP/1.1 ----------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        with self._lock:
            self._connections += 1
            number = self._connections
            self._open += 1
            self._peak_open = max(self._peak_open, self._open)
        try:
            while True:
                request = await _read_request(reader, number)
                if request is None:
                    break
                response = await self._dispatch(request)
                await _write_response(writer, request, response)
                if (request.header("connection") or "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # shutting down; a cancelled handler task upsets asyncio
            pass
        except ValueError:
            writer.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        finally:
            with self._lock:
                self._open -= 1
            self._tasks.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, asyncio.CancelledError):
                pass

    async def _dispatch(self, request: _Request) -> _Response:
        if request.path == "/hits":
            return _Response.json(200, {"tag": request.key, "hits": self.hits(request.key)})
        with self._lock:
            self._hits[request.key] += 1
            hit = self._hits[request.key]
            seen = Seen(
                request.method,
                request.target,
                request.header("traceparent"),
                time.monotonic(),
                request.connection,
            )
            self._seen.setdefault(request.key, []).append(seen)
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        try:
            return await self._route(request, hit)
        finally:
            with self._lock:
                self._in_flight -= 1

    async def _route(self, request: _Request, hit: int) -> _Response:
        parts = request.path.strip("/").split("/")
        head, arg = parts[0], (parts[1] if len(parts) > 1 else "")
        q = request.query
        try:
            if head == "token":
                return await self._token(request)
            if head == "api":
                return self._api(request, hit)
            if head == "flaky":
                failing = hit <= int(arg)
                status = int(q.get("status", "503")) if failing else 200
                return _Response.json(status, {"hits": hit, "failing": failing})
            if head == "retry-after":
                if hit <= int(q.get("n", "1")):
                    return _Response.json(503, {"hits": hit}, ("Retry-After", arg))
                return _Response.json(200, {"hits": hit})
            if head == "status":
                return _Response.json(int(arg), {"status": int(arg)})
            if head == "echo":
                return _Response.json(200, _echo(request))
            if head == "work":
                await asyncio.sleep(float(q.get("ms", "20")) / 1000)
                return _Response.json(200, {"connection": request.connection})
            if head == "slow":
                await asyncio.sleep(float(arg))
                return _Response.json(200, {"slept": float(arg)})
            if head == "bytes":
                n = int(arg)
                body = _PATTERN * (n // len(_PATTERN)) + _PATTERN[: n % len(_PATTERN)]
                return _Response(200, body, [("Content-Type", "application/octet-stream")])
        except ValueError:
            return _Response.json(400, {"error": "bad path or query"})
        return _Response.json(404, {"error": "not found", "path": request.path})

    async def _token(self, request: _Request) -> _Response:
        with self._lock:
            self._token_requests += 1
        if request.method != "POST":
            return _Response.json(405, {"error": "invalid_request"}, ("Allow", "POST"))
        await asyncio.sleep(self.token_delay)  # so that concurrent callers overlap
        headers, body, status = self._oauth.create_token_response(
            f"{self.url}{request.target}",
            "POST",
            request.body.decode("latin-1"),
            dict(request.headers),
        )
        return _Response(status, body.encode(), list(headers.items()))

    def _api(self, request: _Request, hit: int) -> _Response:
        valid, oauth_request = self._oauth.verify_request(
            f"{self.url}{request.target}",
            cast(Any, request.method),
            "",
            dict(request.headers),
            scopes=[],
        )
        if not valid:
            challenge = ("WWW-Authenticate", 'Bearer error="invalid_token"')
            return _Response.json(401, {"error": "invalid_token"}, challenge)
        body = {"client_id": oauth_request.client_id, "path": request.path, "hits": hit}
        return _Response.json(200, body)


def _echo(request: _Request) -> dict[str, object]:
    headers: dict[str, str] = {}
    for name, value in request.headers:
        lowered = name.lower()
        if lowered in ("authorization", "proxy-authorization"):
            value = value.split(" ", 1)[0] + " [masked]"
        headers[lowered] = f"{headers[lowered]}, {value}" if lowered in headers else value
    return {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "headers": headers,
        "body": request.body.decode("utf-8", "replace"),
    }


async def _read_request(reader: asyncio.StreamReader, connection: int) -> _Request | None:
    line = await reader.readline()
    if not line.strip():
        return None
    method, target, _version = line.decode("latin-1").split()
    headers: list[tuple[str, str]] = []
    while True:
        raw = await reader.readline()
        if raw in (b"\r\n", b"\n", b""):
            break
        name, sep, value = raw.decode("latin-1").partition(":")
        if not sep:
            raise ValueError("malformed header")
        headers.append((name.strip(), value.strip()))
    lowered = {k.lower(): v for k, v in headers}
    if "chunked" in lowered.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        body = await reader.readexactly(int(lowered.get("content-length", "0")))
    split = urlsplit(target)
    query = dict(parse_qsl(split.query, keep_blank_values=True))
    return _Request(method.upper(), target, unquote(split.path), query, headers, body, connection)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _write_response(
    writer: asyncio.StreamWriter, request: _Request, response: _Response
) -> None:
    reason = _REASONS.get(response.status, "Unknown")
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    lines += [f"{name}: {value}" for name, value in response.headers]
    lines.append(f"Content-Length: {len(response.body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if request.method != "HEAD":
        view = memoryview(response.body)
        for start in range(0, len(view), len(_PATTERN)):
            writer.write(view[start : start + len(_PATTERN)])
            await writer.drain()
    await writer.drain()
