"""OAuth2 client credentials (RFC 6749 4.4): the pure part, shared by both modes.

No I/O and no async here: the token request body and headers, the parsing of
the token endpoint's answer (both through oauthlib's `BackendApplicationClient`),
the `Token` value and its refresh rule, and the checks made at creation.
The clients in `cf/_async/_oauth.py` (and its generated twin) send and wait.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote_plus

import httpx

from cf._options import check_url
from cf._redact import redact_text, redact_url, register_secret

__all__ = [
    "AUTH_METHODS",
    "MAX_LIFETIME",
    "AuthMethod",
    "OAuthConfig",
    "Token",
    "TokenProblem",
    "basic_authorization",
    "check_token_url",
    "effective_margin",
    "is_loopback_host",
    "parse_error_response",
    "parse_scope",
    "parse_token_response",
    "refresh_pause",
    "scope_changed",
]

AuthMethod = Literal["client_secret_basic", "client_secret_post"]
AUTH_METHODS: tuple[str, ...] = ("client_secret_basic", "client_secret_post")

# Form fields the token request sets itself: `extra_params` may not override them.
_RESERVED_PARAMS = frozenset({"grant_type", "scope", "audience", "client_id", "client_secret"})
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")
# What may follow "Bearer " in a header: visible ASCII (RFC 6750's b64token and more).
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_MAX_TEXT = 200
# The token fields registered for redaction as soon as a body holding them is parsed.
_TOKEN_FIELDS = ("access_token", "refresh_token", "id_token")
# oauthlib converts these itself (`int(inf)` overflows): it is never shown them.
_LIFETIME_FIELDS = ("expires_in", "expires_at")
# `expires_in` as a string: a plain decimal number (RFC 6749 5.1 asks for a number).
_DECIMAL = re.compile(r"\s*\+?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*")

MAX_LIFETIME = 10 * 365 * 24 * 3600.0
"""The longest token lifetime believed (ten years): a longer `expires_in` is read as this."""


# --- the token -----------------------------------------------------------------------------


def effective_margin(refresh_margin: float, lifetime: float) -> float:
    """How long before expiry a token is renewed: `refresh_margin`, at most half its lifetime."""
    return min(refresh_margin, max(lifetime, 0.0) / 2)


def refresh_pause(seconds_left: float) -> float:
    """After a failed early refresh, how long to keep the current token before trying again.

    Half of what the token has left, between 0.5 s and 10 s: an outage of the
    token endpoint costs a few attempts, not one per call.
    """
    return min(10.0, max(0.5, seconds_left / 2))


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and its lifetime, on a monotonic clock.

    `obtained_at` is when the token request was sent (the lifetime counts from
    there, so the client errs on the early side); `expires_in` is the lifetime
    in seconds the server announced, None when it sent none: such a token is
    used until the API answers 401. `scope` is the scope granted (the requested
    one when the server did not say). `repr()` and `str()` never show the token.
    """

    access_token: str
    token_type: str = "Bearer"
    scope: str | None = None
    obtained_at: float = 0.0
    expires_in: float | None = None

    @property
    def expires_at(self) -> float | None:
        """When (monotonic) the token expires; None: not known."""
        return None if self.expires_in is None else self.obtained_at + self.expires_in

    @property
    def authorization(self) -> str:
        """The `Authorization` header value."""
        return f"Bearer {self.access_token}"

    def refresh_at(self, refresh_margin: float) -> float | None:
        """When (monotonic) the token is renewed before use; None: never (no expiry)."""
        if self.expires_in is None:
            return None
        return (
            self.obtained_at + self.expires_in - effective_margin(refresh_margin, self.expires_in)
        )

    def needs_refresh(self, now: float, refresh_margin: float) -> bool:
        at = self.refresh_at(refresh_margin)
        return at is not None and now >= at

    def is_expired(self, now: float) -> bool:
        expires_at = self.expires_at
        return expires_at is not None and now >= expires_at

    def __repr__(self) -> str:
        lifetime = "unknown" if self.expires_in is None else f"{self.expires_in:g}s"
        return f"Token(token_type={self.token_type!r}, scope={self.scope!r}, expires_in={lifetime})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class TokenProblem:
    """Why a token endpoint answer is unusable: an RFC 6749 5.2 error or a malformed body.

    Texts taken from the answer are redacted, stripped of control characters
    and shortened; the body itself is never kept.
    """

    message: str
    error: str | None = None
    error_description: str | None = None


def _clean(value: object) -> str | None:
    if value is None:
        return None
    text = redact_text(_CONTROL.sub(" ", str(value)).strip())
    if len(text) > _MAX_TEXT:
        text = text[: _MAX_TEXT - 3] + "..."
    return text or None


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _oauthlib() -> tuple[Any, Any]:
    """oauthlib, imported on first use: `import cf` stays quick."""
    from oauthlib.oauth2 import BackendApplicationClient
    from oauthlib.oauth2.rfc6749.errors import OAuth2Error

    return BackendApplicationClient, OAuth2Error


def _register_tokens(params: Mapping[str, Any]) -> None:
    """Register every token of a token endpoint answer for redaction, whatever its status."""
    for field in _TOKEN_FIELDS:
        value = params.get(field)
        if isinstance(value, str):
            register_secret(value)


def _for_oauthlib(params: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in params.items() if k not in _LIFETIME_FIELDS})


def parse_error_response(body: bytes) -> TokenProblem | None:
    """The RFC 6749 5.2 error (`error`, `error_description`) in a token endpoint answer, if any.

    Any token in the body (`access_token`, `refresh_token`, `id_token`) is
    registered for redaction first, so that an error body echoing one never
    shows it, whatever the status.
    """
    params = _json_object(body)
    if params is None:
        return None
    _register_tokens(params)
    if "error" not in params:
        return None
    BackendApplicationClient, OAuth2Error = _oauthlib()
    try:
        BackendApplicationClient("").parse_request_body_response(_for_oauthlib(params))
    except OAuth2Error as exc:
        error, description = _clean(exc.error), _clean(exc.description)
    except (Warning, ValueError, TypeError, AttributeError, ArithmeticError, RecursionError):
        error, description = _clean(params.get("error")), _clean(params.get("error_description"))
    else:  # pragma: no cover - oauthlib always raises for an "error" field
        error, description = _clean(params.get("error")), None
    return TokenProblem("token request refused", error or "unknown_error", description)


def _expires_in(value: object) -> float | None:
    """`expires_in` in seconds, at most `MAX_LIFETIME`; ValueError when it is no lifetime.

    A number or a decimal string; a huge one (`1e400`, `Infinity`, 10**400,
    `"1e999"`) is read as `MAX_LIFETIME`. Negative, NaN, booleans, other
    strings and other types raise ValueError; never OverflowError.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise ValueError("expires_in is not a decimal number")
        value = float(value)  # too big for a float: inf, never OverflowError
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expires_in is not a number")
    if isinstance(value, int):  # no float(value): a huge int would overflow
        if value < 0:
            raise ValueError("expires_in is negative")
        return float(min(value, int(MAX_LIFETIME)))
    if math.isnan(value) or value < 0:
        raise ValueError("expires_in is negative or NaN")
    return min(value, MAX_LIFETIME)


def parse_token_response(
    body: bytes,
    *,
    client_id: str,
    requested_scope: str | None,
    obtained_at: float,
) -> Token | TokenProblem:
    """A `Token` from a successful token response, or why there is none.

    oauthlib's `BackendApplicationClient.parse_request_body_response` does the
    RFC 6749 5.1 checks; its scope-changed `Warning` is caught (the granted scope
    ends up in `Token.scope`). A body that is not a JSON object, has no
    `access_token`, has a `token_type` other than bearer or an `expires_in`
    that is no lifetime (negative, NaN, not a number: see `_expires_in`) is a
    `TokenProblem`; a lifetime over ten years (`Infinity`, `1e400`) is read as
    `MAX_LIFETIME`. Every token in the body (access, refresh, id) is
    registered for redaction before anything else is looked at.
    """
    params = _json_object(body)
    if params is None:
        return TokenProblem("token response is not a JSON object")
    _register_tokens(params)
    access_token = params.get("access_token")
    BackendApplicationClient, OAuth2Error = _oauthlib()
    client = BackendApplicationClient(client_id)
    try:
        client.parse_request_body_response(_for_oauthlib(params), scope=requested_scope)
    except OAuth2Error as exc:
        if "error" in params:
            return TokenProblem("token request refused", _clean(exc.error), _clean(exc.description))
        return TokenProblem(f"malformed token response: {_clean(exc.description) or exc.error}")
    except Warning as warning:  # scope changed: the server granted another scope
        if not hasattr(warning, "token"):  # pragma: no cover - not oauthlib's scope warning
            return TokenProblem("malformed token response")
    except (ValueError, TypeError, AttributeError, ArithmeticError, RecursionError) as exc:
        return TokenProblem(f"malformed token response ({type(exc).__name__})")
    if not isinstance(access_token, str) or not access_token:
        return TokenProblem("malformed token response: access_token is not a non-empty string")
    if not _HEADER_SAFE.fullmatch(access_token):
        return TokenProblem("malformed token response: access_token has invalid characters")
    token_type = params.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        shown = token_type if isinstance(token_type, str) else type(token_type).__name__
        return TokenProblem(f"unsupported token_type {_clean(shown)!r} (expected Bearer)")
    try:
        lifetime = _expires_in(params.get("expires_in"))
    except ValueError:
        return TokenProblem("malformed token response: expires_in is not a number of seconds")
    granted = params.get("scope")
    if isinstance(granted, list) and all(isinstance(s, str) for s in granted):
        granted = " ".join(granted)
    scope = granted if isinstance(granted, str) and granted.strip() else requested_scope
    return Token(
        access_token=access_token,
        token_type="Bearer",
        scope=scope,
        obtained_at=obtained_at,
        expires_in=lifetime,
    )


# --- creation checks ------------------------------------------------------------------------


def is_loopback_host(host: str) -> bool:
    """True for an IP in 127.0.0.0/8, ::1 (or an IPv4-mapped 127.x), or the name `localhost`."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def check_token_url(url: object, allow_insecure_http: bool) -> httpx.URL:
    """The token endpoint URL, or ValueError: https, or http:// on loopback only.

    oauthlib's `OAUTHLIB_INSECURE_TRANSPORT` is neither read nor set: the rule
    is this function's alone.
    """
    if not isinstance(url, (str, httpx.URL)):
        raise TypeError(f"authorize_url must be a str or httpx.URL, not {type(url).__name__}")
    parsed = check_url(url)
    shown = redact_url(parsed)
    if parsed.userinfo:
        raise ValueError(f"authorize_url {shown!r} must not hold credentials")
    if parsed.fragment:
        raise ValueError(f"authorize_url {shown!r} must not have a fragment (RFC 6749 3.2)")
    if parsed.scheme == "http" and not allow_insecure_http and not is_loopback_host(parsed.host):
        raise ValueError(
            f"refusing to send client credentials over plain http to {parsed.host!r}: "
            "use https, a loopback host, or allow_insecure_http=True"
        )
    return parsed


def parse_scope(scope: object) -> str | None:
    """A space-separated string or an iterable of strings -> the `scope` form value (or None)."""
    if scope is None:
        return None
    if isinstance(scope, str):
        items = scope.split()
    elif isinstance(scope, (bytes, bytearray)) or not isinstance(scope, Iterable):
        raise TypeError(f"scope must be a str or an iterable of str, not {type(scope).__name__}")
    else:
        items = []
        for item in scope:
            if not isinstance(item, str):
                raise TypeError(f"scope items must be str, not {type(item).__name__}")
            items.extend(item.split() if item.strip() else [item])
    for item in items:
        if not _SCOPE_TOKEN.fullmatch(item):
            raise ValueError(f"invalid scope token {item!r} (RFC 6749 3.3)")
    return " ".join(dict.fromkeys(items)) or None


def scope_changed(requested: str | None, granted: str | None) -> bool:
    """True when a scope was requested and the granted one is another set of scope tokens."""
    if requested is None:
        return False
    return set((granted or "").split()) != set(requested.split())


def basic_authorization(client_id: str, client_secret: str) -> str:
    """`Basic base64(urlencode(id):urlencode(secret))`, as RFC 6749 2.3.1 asks."""
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")


def _check_text(name: str, value: object, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not allow_empty and not value:
        raise ValueError(f"{name} must not be empty")
    if _CONTROL.search(value):
        raise ValueError(f"{name} must not contain control characters")
    return value


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    """Validated client-credentials settings: what every token request sends.

    Built once at creation (`OAuthConfig.create`), which raises ValueError or
    TypeError for bad arguments and registers the secret (and its Basic form)
    for redaction. `repr()` shows neither the secret nor the request body.
    """

    client_id: str
    token_url: httpx.URL
    scope: str | None
    audience: str | None
    extra_params: tuple[tuple[str, str], ...]
    auth_method: AuthMethod
    refresh_margin: float
    body: bytes
    headers: tuple[tuple[str, str], ...]
    store_key: str

    @classmethod
    def create(
        cls,
        *,
        client_id: object,
        client_secret: object,
        authorize_url: object,
        scope: object = None,
        audience: object = None,
        extra_params: object = None,
        auth_method: object = "client_secret_basic",
        refresh_margin: object = 60.0,
        allow_insecure_http: object = False,
    ) -> OAuthConfig:
        client_id = _check_text("client_id", client_id)
        secret = _check_text("client_secret", client_secret)
        if not isinstance(allow_insecure_http, bool):
            raise TypeError("allow_insecure_http must be a bool")
        url = check_token_url(authorize_url, allow_insecure_http)
        scope_value = parse_scope(scope)
        if audience is not None:
            audience = _check_text("audience", audience)
        extras = _check_extra_params(extra_params)
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"auth_method must be one of {AUTH_METHODS}, got {auth_method!r}")
        margin = _check_margin(refresh_margin)

        register_secret(secret, permanent=True)
        kwargs: dict[str, Any] = {}
        if audience:
            kwargs["audience"] = audience
        kwargs.update(extras)
        client = _oauthlib()[0](client_id)
        headers = [
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Accept", "application/json"),
        ]
        if auth_method == "client_secret_post":
            body = client.prepare_request_body(
                scope=scope_value, include_client_id=True, client_secret=secret, **kwargs
            )
        else:
            body = client.prepare_request_body(scope=scope_value, **kwargs)
            authorization = basic_authorization(client_id, secret)
            register_secret(authorization.partition(" ")[2], permanent=True)
            headers.append(("Authorization", authorization))
        key_source = json.dumps(
            [str(url), client_id, auth_method, scope_value, audience, sorted(extras.items())]
        )
        return cls(
            client_id=client_id,
            token_url=url,
            scope=scope_value,
            audience=audience,
            extra_params=tuple(extras.items()),
            auth_method=auth_method,  # type: ignore[arg-type]
            refresh_margin=margin,
            body=body.encode("ascii"),
            headers=tuple(headers),
            store_key="cf-oauth:" + hashlib.sha256(key_source.encode()).hexdigest()[:32],
        )

    def __repr__(self) -> str:
        return (
            f"OAuthConfig(client_id={self.client_id!r}, token_url={redact_url(self.token_url)!r}, "
            f"scope={self.scope!r}, audience={self.audience!r}, auth_method={self.auth_method!r})"
        )

    __str__ = __repr__


def _check_extra_params(extra_params: object) -> dict[str, str]:
    if extra_params is None:
        return {}
    if not isinstance(extra_params, Mapping):
        raise TypeError(f"extra_params must be a mapping, not {type(extra_params).__name__}")
    extras: dict[str, str] = {}
    for name, value in extra_params.items():
        name = _check_text("extra_params name", name)
        if name in _RESERVED_PARAMS:
            raise ValueError(f"extra_params may not set {name!r}: it has its own argument")
        extras[name] = _check_text(f"extra_params[{name!r}]", value)
    return extras


def _check_margin(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"refresh_margin must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"refresh_margin must be >= 0 seconds, got {value!r}")
    return float(value)
