"""An OAuth2 token endpoint (client credentials, RFC 6749 4.4) and a protected API.

Built on oauthlib's server side: `BackendApplicationServer` with a
`RequestValidator` subclass; `create_token_response` answers `POST /token`,
`verify_request` guards every path under `/api`. Served as a plain ASGI app.

Transport security: oauthlib's *server* classes used here never check for
https (only its client side and CORS do), so this server does not set
`OAUTHLIB_INSECURE_TRANSPORT`. That variable is process-wide: setting it here
would also relax the client under test, which must accept a loopback http://
token URL on its own.

Logging: oauthlib's server code logs the issued tokens at DEBUG. Records that
oauthlib emits from this server's thread are dropped (see `_ServerThreadFilter`)
so that tests asserting "no token in any log record" see only the client's logs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, unquote_plus

from oauthlib.common import Request
from oauthlib.oauth2 import BackendApplicationServer, RequestValidator

from .app import (
    Receive,
    Recorded,
    Scope,
    Send,
    decode_headers,
    json_body,
    read_body,
    send_response,
    wait_any,
)

__all__ = ["Mode", "OAuthServer", "TokenRequest", "OAuthApp"]

Mode = Literal[
    "ok",
    "invalid_client",
    "invalid_scope",
    "not_json",
    "html_502",
    "no_access_token",
    "wrong_token_type",
    "temporarily_unavailable",
    "raw",
]
MODES: tuple[str, ...] = get_args(Mode)

SERVER_THREAD_NAME = "cf-test-oauth-server"


class _ServerThreadFilter(logging.Filter):
    """Drops oauthlib records emitted by the test server's thread (they contain tokens)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != SERVER_THREAD_NAME


def _quiet_oauthlib_server_logs() -> None:
    flt = _ServerThreadFilter()
    for name in list(logging.Logger.manager.loggerDict):
        if name == "oauthlib" or name.startswith("oauthlib."):
            logger = logging.getLogger(name)
            if not any(isinstance(f, _ServerThreadFilter) for f in logger.filters):
                logger.addFilter(flt)


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request to the token endpoint, as received."""

    form: dict[str, str]
    authorization: str | None
    time: float  # time.monotonic() on arrival
    auth_method: str | None  # "client_secret_basic", "client_secret_post" or None
    headers: list[tuple[str, str]] = field(default_factory=list)  # every header, as received
    query: str = ""

    @property
    def scope(self) -> str | None:
        return self.form.get("scope")

    @property
    def audience(self) -> str | None:
        return self.form.get("audience")

    @property
    def grant_type(self) -> str | None:
        return self.form.get("grant_type")


@dataclass(slots=True)
class _Token:
    scopes: list[str]
    expires_at: float | None  # time.monotonic(); None: never expires
    revoked: bool = False


@dataclass
class _Client:
    client_id: str


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    token_log: list[TokenRequest] = field(default_factory=list)
    api_log: list[Recorded] = field(default_factory=list)
    api_statuses: list[int] = field(default_factory=list)
    tokens: dict[str, _Token] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)


class OAuthServer:
    """What the `oauth_server` fixture returns: URLs, counters, logs and knobs.

    Knobs (plain attributes, reset before each test by the fixture):
    `latency`, `expires_in`, `mode`, `fail_first`, `fail_status`,
    `fail_retry_after`, `reject_all_tokens`, `grant_scope`, `client_id`,
    `client_secret`, `raw_status` and `raw_body` (mode "raw").
    """

    def __init__(self) -> None:
        self.url = ""
        self._state = _State()
        self.reset()

    # -- knobs --------------------------------------------------------------------------

    def reset(self) -> None:
        self.latency: float = 0.0  # seconds before the token endpoint answers
        self.expires_in: int | None = 3600  # None: the field is left out, the token never expires
        self._mode: Mode = "ok"
        self.fail_first: int = 0  # the first N token requests answer `fail_status`
        self.fail_status: int = 503
        self.fail_retry_after: str | None = None  # Retry-After on those failures
        self.reject_all_tokens: bool = False  # the API answers 401 to every token
        self.grant_scope: str | None = None  # grant this scope instead of the requested one
        self.client_id: str = "id"  # the valid credentials
        self.client_secret: str = "secret"
        # mode "raw": the token endpoint answers this status and body as they are; an
        # access_token in the body (JSON, Infinity allowed) becomes a valid token.
        self.raw_status: int = 200
        self.raw_body: bytes = b""
        with self._state.lock:
            self._state.token_log.clear()
            self._state.api_log.clear()
            self._state.api_statuses.clear()
            self._state.tokens.clear()
            self._state.issued.clear()

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, value: Mode) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {value!r}")
        self._mode = value

    @property
    def token_url(self) -> str:
        return f"{self.url}/token"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    # -- what happened ------------------------------------------------------------------

    @property
    def token_requests(self) -> int:
        with self._state.lock:
            return len(self._state.token_log)

    @property
    def token_request_log(self) -> list[TokenRequest]:
        with self._state.lock:
            return list(self._state.token_log)

    @property
    def api_requests(self) -> int:
        with self._state.lock:
            return len(self._state.api_log)

    @property
    def api_request_log(self) -> list[Recorded]:
        with self._state.lock:
            return list(self._state.api_log)

    @property
    def api_statuses(self) -> list[int]:
        with self._state.lock:
            return list(self._state.api_statuses)

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued (and saved) since the last reset, oldest first."""
        with self._state.lock:
            return list(self._state.issued)

    @property
    def current_token(self) -> str | None:
        with self._state.lock:
            return self._state.issued[-1] if self._state.issued else None

    def revoke_current(self) -> None:
        """The most recently issued token stops being valid."""
        with self._state.lock:
            if self._state.issued:
                self._state.tokens[self._state.issued[-1]].revoked = True

    def revoke(self, token: str) -> None:
        with self._state.lock:
            if token in self._state.tokens:
                self._state.tokens[token].revoked = True

    def __repr__(self) -> str:
        return f"OAuthServer({self.url!r})"


class _Validator(RequestValidator):
    """Client `id`/`secret` (knobs), any scope, tokens kept in `OAuthServer` state."""

    def __init__(self, server: OAuthServer) -> None:
        super().__init__()
        self.server = server

    def client_authentication_required(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        return True

    def authenticate_client(self, request: Request, *args: Any, **kwargs: Any) -> bool:
        authorization = request.headers.get("Authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "basic":
            if request.client_secret is not None:
                return False  # RFC 6749 2.3: at most one authentication method per request
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            raw_id, sep, raw_secret = decoded.partition(":")
            if not sep:
                return False
            # RFC 6749 2.3.1: id and secret are form-urlencoded before base64.
            client_id: str | None = unquote_plus(raw_id)
            secret: str | None = unquote_plus(raw_secret)
            if request.client_id is not None and request.client_id != client_id:
                return False
        else:
            client_id, secret = request.client_id, request.client_secret
        client_id = client_id if isinstance(client_id, str) else None
        secret = secret if isinstance(secret, str) else None
        if self.server.mode == "invalid_client" or client_id is None or secret is None:
            return False
        good_id = hmac.compare_digest(client_id.encode(), self.server.client_id.encode())
        good_secret = hmac.compare_digest(secret.encode(), self.server.client_secret.encode())
        if not (good_id and good_secret):
            return False
        request.client = _Client(client_id)
        return True

    def validate_grant_type(
        self,
        client_id: str,
        grant_type: str,
        client: Any,
        request: Request,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        return grant_type == "client_credentials"

    def validate_scopes(
        self,
        client_id: str,
        scopes: list[str],
        client: Any,
        request: Request,
        *args: Any,
        **kwargs: Any,
    ) -> bool:
        return self.server.mode != "invalid_scope"

    def get_default_scopes(
        self, client_id: str, request: Request, *args: Any, **kwargs: Any
    ) -> list[str]:
        return []

    def save_bearer_token(
        self, token: Mapping[str, Any], request: Request, *args: Any, **kwargs: Any
    ) -> None:
        expires_in = token.get("expires_in")
        expires_at = None if expires_in is None else time.monotonic() + float(expires_in)
        scopes = str(token.get("scope") or "").split()
        state = self.server._state
        with state.lock:
            state.tokens[token["access_token"]] = _Token(scopes, expires_at)
            state.issued.append(token["access_token"])

    def validate_bearer_token(self, token: str | None, scopes: list[str], request: Request) -> bool:
        if token is None or self.server.reject_all_tokens:
            return False
        with self.server._state.lock:
            saved = self.server._state.tokens.get(token)
        if saved is None or saved.revoked:
            return False
        return saved.expires_at is None or time.monotonic() < saved.expires_at


class OAuthApp:
    """ASGI app: `POST /token` and everything under `/api`."""

    def __init__(self, server: OAuthServer, stopping: asyncio.Event) -> None:
        self.server = server
        self.stopping = stopping
        self.endpoint = BackendApplicationServer(
            _Validator(server), token_expires_in=self._expires_in
        )
        self.endpoint.credentials_grant.register_token_modifier(self._modify_token)
        _quiet_oauthlib_server_logs()

    def _expires_in(self, request: Request) -> int:
        return 3600 if self.server.expires_in is None else self.server.expires_in

    def _modify_token(self, token: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.server.expires_in is None:
            token.pop("expires_in", None)
        if self.server.grant_scope is not None:
            token["scope"] = self.server.grant_scope
        elif not token.get("scope"):
            token.pop("scope", None)  # no scope asked, none granted: leave the field out
        if self.server.mode == "wrong_token_type":
            token["token_type"] = "mac"
        return token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/token":
            await self._token(scope, receive, send)
        elif path == "/api" or path.startswith("/api/"):
            await self._api(scope, receive, send)
        else:
            await read_body(receive, keep=False)
            await send_response(send, 404, b"not found")

    @staticmethod
    def _uri(scope: Scope) -> str:
        host = dict(decode_headers(scope)).get("host", "127.0.0.1")
        query = scope.get("query_string", b"").decode("latin-1")
        return f"http://{host}{scope['path']}" + (f"?{query}" if query else "")

    @staticmethod
    def _oauthlib_headers(scope: Scope) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in decode_headers(scope):
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return headers

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = time.monotonic()
        body, _, gone = await read_body(receive)
        headers = self._oauthlib_headers(scope)
        text = body.decode("utf-8", "replace")
        form = dict(parse_qsl(text, keep_blank_values=True))
        authorization = headers.get("authorization")
        if authorization is not None and authorization.lower().startswith("basic "):
            auth_method: str | None = "client_secret_basic"
        elif "client_secret" in form:
            auth_method = "client_secret_post"
        else:
            auth_method = None
        state = self.server._state
        with state.lock:
            state.token_log.append(
                TokenRequest(
                    form,
                    authorization,
                    received,
                    auth_method,
                    headers=decode_headers(scope),
                    query=scope.get("query_string", b"").decode("latin-1"),
                )
            )
            number = len(state.token_log)
        if gone:
            return
        if self.server.latency > 0:
            await wait_any(self.server.latency, self.stopping)
        mode = self.server.mode
        if number <= self.server.fail_first:
            retry_after = self.server.fail_retry_after
            extra = [] if retry_after is None else [("retry-after", retry_after)]
            await send_response(send, self.server.fail_status, b"token endpoint failing", extra)
        elif mode == "not_json":
            page = b"<html><body>Welcome to the login portal</body></html>"
            await send_response(send, 200, page, [], "text/html; charset=utf-8")
        elif mode == "html_502":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            await send_response(send, 502, page, [], "text/html; charset=utf-8")
        elif mode == "no_access_token":
            payload = {"token_type": "Bearer", "expires_in": 3600}
            await send_response(send, 200, json_body(payload), [], "application/json")
        elif mode == "raw":
            self._accept_raw_token()
            await send_response(
                send, self.server.raw_status, self.server.raw_body, [], "application/json"
            )
        elif mode == "temporarily_unavailable":
            payload = {
                "error": "temporarily_unavailable",
                "error_description": "The authorization server is temporarily unavailable.",
            }
            await send_response(send, 503, json_body(payload), [], "application/json")
        else:
            await self._oauthlib_token(scope, text, headers, send)

    def _accept_raw_token(self) -> None:
        """The access token of a raw answer is valid for the API (until revoked)."""
        import json

        try:
            value = json.loads(self.server.raw_body)
        except ValueError:
            return
        token = value.get("access_token") if isinstance(value, dict) else None
        if isinstance(token, str) and token:
            state = self.server._state
            with state.lock:
                state.tokens[token] = _Token([], None)
                state.issued.append(token)

    async def _oauthlib_token(
        self, scope: Scope, body: str, headers: dict[str, str], send: Send
    ) -> None:
        try:
            out_headers, out_body, status = self.endpoint.create_token_response(
                self._uri(scope), http_method=scope["method"], body=body, headers=headers
            )
        except ValueError:  # oauthlib refuses a body or query that is not urlencoded
            payload = {"error": "invalid_request", "error_description": "Malformed request."}
            await send_response(send, 400, json_body(payload), [], "application/json")
            return
        response_headers = [
            (k.lower(), v) for k, v in out_headers.items() if k.lower() != "content-type"
        ]
        if status == 401:
            # RFC 6749 5.2: the challenge matches the scheme of client authentication.
            response_headers = [(k, v) for k, v in response_headers if k != "www-authenticate"]
            response_headers.append(("www-authenticate", 'Basic realm="token"'))
        content_type = out_headers.get("Content-Type", "application/json")
        await send_response(send, status, (out_body or "").encode(), response_headers, content_type)

    async def _api(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = time.monotonic()
        body, _, gone = await read_body(receive)
        raw_headers = decode_headers(scope)
        query = scope.get("query_string", b"").decode("latin-1")
        client = scope.get("client")
        record = Recorded(
            method=scope["method"],
            path=scope["path"],
            query=query,
            headers=raw_headers,
            body=body,
            time=received,
            client=(str(client[0]), int(client[1])) if client else None,
        )
        state = self.server._state
        with state.lock:
            state.api_log.append(record)
        if gone:
            return
        uri = self._uri({**scope, "query_string": b""})  # the bearer token comes in the header
        valid, _ = self.endpoint.verify_request(
            uri, http_method=scope["method"], headers=self._oauthlib_headers(scope), scopes=[]
        )
        status = 200 if valid else 401
        with state.lock:
            state.api_statuses.append(status)
        if valid:
            payload = {
                "method": scope["method"],
                "path": scope["path"],
                "query": query,
                "headers": [list(h) for h in raw_headers],
                "body": body.decode("utf-8", "replace"),
            }
            await send_response(send, 200, json_body(payload), [], "application/json")
        else:
            challenge = [("www-authenticate", 'Bearer error="invalid_token"')]
            payload = {"error": "invalid_token"}
            await send_response(send, 401, json_body(payload), challenge, "application/json")
