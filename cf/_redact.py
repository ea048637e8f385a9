"""Redaction of secrets in URLs, headers and free text (pure, no I/O).

Used when exceptions, retry logs and log records are built, so every function
here is cheap, thread-safe and never raises: garbage in, best-effort string out.
Redacted values become ``[redacted]``; everything else is kept as it was.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from urllib.parse import quote, quote_plus, unquote_plus

import httpx

__all__ = ["redact_headers", "redact_text", "redact_url", "register_secret"]

REDACTED = "[redacted]"

# --- secret names -----------------------------------------------------------------------------

# A (query or form) parameter is secret when its name, lowercased with separators removed,
# contains one of these ...
_SECRET_SUBSTRINGS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "signature",
    "credential",
    "session",
    "authorization",
)
# ... or when one of its words (split on separators and camelCase) is one of these ...
_SECRET_WORDS = frozenset({"pwd", "key", "sig", "auth"})
# ... or when it is exactly one of these ("error_code" is not a secret, "code" is).
_SECRET_NAMES = frozenset({"code", "authcode", "authorizationcode", "devicecode", "usercode"})
# OAuth parameters that name a secret without being one.
_PUBLIC_NAMES = frozenset({"tokentype", "tokentypehint"})


class _LazyPattern:
    """A regular expression compiled on first use: `import cf` stays quick."""

    __slots__ = ("_compiled", "_flags", "_source")

    def __init__(self, source: str, flags: int = 0) -> None:
        self._source = source
        self._flags = flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        pattern = self._compiled
        if pattern is None:
            pattern = self._compiled = re.compile(self._source, self._flags)
        return pattern


_CAMEL = _LazyPattern(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD_SPLIT = _LazyPattern(r"[^a-z0-9]+")


@lru_cache(maxsize=1024)
def _is_secret_name(name: str) -> bool:
    lowered = _CAMEL.compiled.sub("_", unquote_plus(name).strip()).lower()
    words = [w for w in _WORD_SPLIT.compiled.split(lowered) if w]
    flat = "".join(words)
    if flat in _PUBLIC_NAMES:
        return False
    return (
        flat in _SECRET_NAMES
        or any(s in flat for s in _SECRET_SUBSTRINGS)
        or any(w in _SECRET_WORDS for w in words)
    )


# --- registered literal secrets ------------------------------------------------------------

_MAX_SECRETS = 256
_MIN_SECRET_LEN = 6
_secrets_lock = threading.Lock()
# secret -> the forms it is matched in; insertion-ordered, so the oldest is evicted first
_secrets: dict[str, tuple[str, ...]] = {}
_permanent: dict[str, tuple[str, ...]] = {}  # never evicted
_secrets_re: re.Pattern[str] | None = None
_secrets_stale = False  # the pattern is rebuilt lazily, once after a burst of registrations


def register_secret(value: str, *, permanent: bool = False) -> None:
    """Remember a literal secret so that `redact_text` and `redact_url` replace it anywhere.

    Keeps the last 256 values, plus every `permanent` one (client secrets: they
    live as long as the process, unlike tokens); values shorter than 6 characters
    are ignored (they would match ordinary text). Its percent-encoded and
    JSON-escaped forms are matched too.
    """
    global _secrets_stale
    if not isinstance(value, str) or len(value) < _MIN_SECRET_LEN:
        return
    forms = {value, quote(value, safe=""), quote_plus(value, safe="")}
    forms.update((json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]))
    with _secrets_lock:
        if permanent:
            _permanent[value] = tuple(forms)
        else:
            _secrets.pop(value, None)
            _secrets[value] = tuple(forms)
            while len(_secrets) > _MAX_SECRETS:
                del _secrets[next(iter(_secrets))]
        _secrets_stale = True


def _clear_secrets() -> None:
    """Forget every registered secret (for tests)."""
    global _secrets_re, _secrets_stale
    with _secrets_lock:
        _secrets.clear()
        _permanent.clear()
        _secrets_re, _secrets_stale = None, False


def _secrets_pattern() -> re.Pattern[str] | None:
    global _secrets_re, _secrets_stale
    if _secrets_stale:
        with _secrets_lock:
            if _secrets_stale:
                every = (*_secrets.values(), *_permanent.values())
                forms = {form for secret_forms in every for form in secret_forms}
                ordered = sorted(forms, key=len, reverse=True)  # longest first: no leftovers
                _secrets_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
                _secrets_stale = False
    return _secrets_re


def _redact_registered(text: str) -> str:
    if not _secrets and not _permanent:  # the common case: nothing registered, no lock, no regex
        return text
    pattern = _secrets_pattern()
    if pattern is None:
        return text
    return pattern.sub(REDACTED, text)


# --- URLs ----------------------------------------------------------------------------------

_PARAM_SEP = _LazyPattern(r"([&;])")
_FRAGMENT_SEP = _LazyPattern(r"([&;?/])")


def _redact_params(params: str, sep: re.Pattern[str]) -> str:
    if "=" not in params:
        return params
    pieces = sep.split(params)
    for i in range(0, len(pieces), 2):  # even indexes are parameters, odd are separators
        name, eq, value = pieces[i].partition("=")
        if eq and value and _is_secret_name(name):
            pieces[i] = f"{name}={REDACTED}"
    return "".join(pieces)


def _redact_url_structure(url: str) -> str:
    rest, hash_, fragment = url.partition("#")
    rest, qmark, query = rest.partition("?")
    scheme_end = rest.find("://")
    if scheme_end != -1:
        authority_start = scheme_end + 3
    elif rest.startswith("//"):
        authority_start = 2
    else:
        authority_start = -1
    if authority_start != -1:
        slash = rest.find("/", authority_start)
        authority_end = len(rest) if slash == -1 else slash
        at = rest.rfind("@", authority_start, authority_end)
        if at != -1:
            userinfo = rest[authority_start:at]
            user, colon, password = userinfo.partition(":")
            if colon:
                userinfo = f"{user}:{REDACTED}" if password else userinfo
            elif userinfo:
                userinfo = REDACTED  # a lone token (https://TOKEN@host) is a credential
            rest = rest[:authority_start] + userinfo + rest[at:]
    if qmark:
        query = _redact_params(query, _PARAM_SEP.compiled)
    if hash_:
        fragment = _redact_params(
            fragment, _FRAGMENT_SEP.compiled
        )  # implicit-flow tokens live here
    return f"{rest}{qmark}{query}{hash_}{fragment}"


def redact_url(url: str | httpx.URL) -> str:
    """Return `url` with its userinfo password and secret query values replaced.

    `https://user:pw@host/p?access_token=x&page=2` becomes
    `https://user:[redacted]@host/p?access_token=[redacted]&page=2`; a userinfo
    without a colon (a lone token) is replaced whole. Everything else, order and
    percent-encoding included, is kept byte for byte. Never raises.
    """
    try:
        text = url if isinstance(url, str) else str(url)
    except Exception:
        return REDACTED
    try:
        if "@" in text or "?" in text or "#" in text:
            text = _redact_url_structure(text)
        return _redact_registered(text)
    except Exception:  # pragma: no cover - defensive: keep the caller's error path alive
        return REDACTED


# --- headers -------------------------------------------------------------------------------

_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token"}
)
_SCHEME_HEADERS = frozenset({"authorization", "proxy-authorization"})
_SECRET_HEADER_PARTS = ("secret", "token", "password", "api-key", "api_key", "apikey")
_SCHEME = _LazyPattern(r"^\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s+\S")


def _redact_header_value(name: str, value: str) -> str:
    lowered = name.strip().lower()
    if lowered in _SECRET_HEADERS or any(p in lowered for p in _SECRET_HEADER_PARTS):
        if lowered in _SCHEME_HEADERS:
            match = _SCHEME.compiled.match(value)
            if match:
                return f"{match.group(1)} {REDACTED}"
        return REDACTED
    return redact_text(value)


def _to_str(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    return str(value)


def _header_pairs(headers: object) -> Iterable[tuple[object, object]]:
    if isinstance(headers, httpx.Headers):
        return headers.multi_items()
    if isinstance(headers, Mapping):
        items = headers.items()  # multidicts (aiohttp, starlette) yield every pair here
        return list(items)
    if isinstance(headers, str | bytes):
        return []
    if isinstance(headers, Iterable):
        pairs: list[tuple[object, object]] = []
        for item in headers:
            try:
                name, value = item
            except (TypeError, ValueError):
                continue
            pairs.append((name, value))
        return pairs
    return []


def redact_headers(headers: object) -> list[tuple[str, str]]:
    """Return the (name, value) pairs of `headers` with credential values replaced.

    Accepts a mapping, an `httpx.Headers` (every value of a repeated header), a
    multidict or an iterable of pairs. Authorization keeps its scheme
    (`Bearer [redacted]`); Cookie, Set-Cookie, X-Api-Key, X-Auth-Token and names
    containing "secret", "token", "password" or "api-key" lose the whole value;
    other values go through `redact_text`. Never raises.
    """
    try:
        pairs = _header_pairs(headers)
        result: list[tuple[str, str]] = []
        for raw_name, raw_value in pairs:
            name = _to_str(raw_name)
            result.append((name, _redact_header_value(name, _to_str(raw_value))))
        return result
    except Exception:
        return []


# --- free text -----------------------------------------------------------------------------

# Quick rejection: text without any of these needs only the registered-secret pass.
_TRIGGER = _LazyPattern(
    r"//|@|bearer|basic|auth|token|secret|pass|pwd|cookie|api|sig|credential|session",
    re.IGNORECASE,
)
_URL = _LazyPattern(r"(?:\b[A-Za-z][A-Za-z0-9+.-]{0,30}:)?//[^\s\"'<>`]+")
# `Authorization: Bearer x` style lines (the value runs to the end of the line).
_HEADER_LINE = _LazyPattern(
    r"(?P<name>\b(?:proxy-)?authorization|\b(?:set-)?cookie|\bx-api-key|\bx-auth-token)"
    r"(?P<sep>[ \t]*:[ \t]*)(?P<value>[^\r\n]*)",
    re.IGNORECASE,
)
_AUTH_SCHEME = _LazyPattern(r"(?P<scheme>[A-Za-z][\w.-]*)(?P<space>[ \t]+)(?P<rest>.*)")
# `Bearer <token>` / `Basic <b64>` anywhere; "bearer token" and challenge params are prose.
_BEARER = _LazyPattern(
    r"\b(?P<scheme>bearer|basic)(?P<space>[ \t]+)"
    r"(?!(?:tokens?|auth\w*|header|scheme|credentials?|realm|error\w*|scope|charset)\b)"
    r"(?P<cred>[A-Za-z0-9\-._~+/]+=*)",
    re.IGNORECASE,
)
_KEY = r"[\w.-]*?(?:token|secret|password|passwd|pwd|passphrase|api[_-]?key|signature|credentials?)"
_QUOTED = r"\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*'"
# JSON / repr style: `"access_token": "x"`, `'password': 'x'`, `("authorization", "Bearer x")`.
_QUOTED_PAIR = _LazyPattern(
    r"(?P<q>[\"'])(?P<key>" + _KEY + r"|(?:proxy-)?authorization|(?:set-)?cookie)(?P=q)"
    r"(?P<sep>[ \t]*[:=][ \t]*|[ \t]*,[ \t]*(?=(?:" + _QUOTED + r")[ \t]*\)))"
    r"(?P<value>" + _QUOTED + r")",
    re.IGNORECASE,
)
# Form / query / repr style: `access_token=x&`, `password='x'` (up to &, whitespace or quote).
_FORM_PAIR = _LazyPattern(
    r"(?<![\w.-])(?P<key>" + _KEY + r")(?P<sep>[ \t]*=[ \t]*)"
    r"(?P<value>" + _QUOTED + r"|[^&\s\"']+)",
    re.IGNORECASE,
)


def _sub_header_line(match: re.Match[str]) -> str:
    name, value = match.group("name"), match.group("value")
    if not value.strip():
        return match.group(0)
    if name.lower().endswith("authorization"):
        scheme = _AUTH_SCHEME.compiled.match(value)
        if scheme and scheme.group("rest"):
            value = f"{scheme.group('scheme')}{scheme.group('space')}{REDACTED}"
        else:
            value = REDACTED
    else:
        value = REDACTED
    return f"{name}{match.group('sep')}{value}"


def _sub_bearer(match: re.Match[str]) -> str:
    if match.group("scheme").lower() == "basic" and not _looks_like_basic(match.group("cred")):
        return match.group(0)  # "basic retry policy" is prose, not a credential
    return f"{match.group('scheme')}{match.group('space')}{REDACTED}"


def _looks_like_basic(credential: str) -> bool:
    """True when `credential` is base64 of `id:secret` (RFC 7617), however padded."""
    try:
        decoded = base64.b64decode(credential.rstrip("=") + "==", validate=False)
    except (binascii.Error, ValueError):
        return False
    return b":" in decoded


def _sub_quoted_pair(match: re.Match[str]) -> str:
    key, value = match.group("key"), match.group("value")
    quote_char = value[0]
    inner = REDACTED
    if key.lower().endswith("authorization"):
        scheme = _AUTH_SCHEME.compiled.match(value[1:-1])
        if scheme and scheme.group("rest"):
            inner = f"{scheme.group('scheme')}{scheme.group('space')}{REDACTED}"
    q = match.group("q")
    return f"{q}{key}{q}{match.group('sep')}{quote_char}{inner}{quote_char}"


def _sub_form_pair(match: re.Match[str]) -> str:
    value = match.group("value")
    if value[0] in "\"'":
        value = f"{value[0]}{REDACTED}{value[0]}"
    else:
        value = REDACTED
    return f"{match.group('key')}{match.group('sep')}{value}"


def _sub_url(match: re.Match[str]) -> str:
    return _redact_url_structure(match.group(0))


def redact_text(text: str) -> str:
    """Return `text` with credentials replaced by `[redacted]`.

    Covers `Bearer`/`Basic` credentials, `Authorization:`/`Cookie:` header lines,
    `access_token=...`-style form and query pairs, JSON-style `"client_secret": "..."`
    pairs, userinfo passwords and secret query values of URLs, and every literal
    registered with `register_secret`. Never raises.
    """
    try:
        if not isinstance(text, str):
            text = str(text)
        if _TRIGGER.compiled.search(text):
            text = _URL.compiled.sub(_sub_url, text)
            text = _HEADER_LINE.compiled.sub(_sub_header_line, text)
            text = _QUOTED_PAIR.compiled.sub(_sub_quoted_pair, text)
            text = _BEARER.compiled.sub(_sub_bearer, text)
            text = _FORM_PAIR.compiled.sub(_sub_form_pair, text)
        return _redact_registered(text)
    except Exception:
        return REDACTED
