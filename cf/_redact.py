"""Redaction of secrets in URLs, headers and free text (pure, no I/O).

Used when exceptions, retry logs and log records are built, so every function
here is cheap, thread-safe and never raises: garbage in, best-effort string out.
Redacted values become ``[redacted]``; everything else is kept as it was.

One vocabulary decides, for query and form parameters, header names, JSON and
repr keys and ``name=value`` / ``name: value`` pairs in text alike, whether a
*name* holds a secret (`is_secret_name`); then its *value* is replaced, never
the name and never part of an ordinary word. The name is lowercased and split
into words on separators (``_ - . [ ]``, spaces) and camelCase:

- it is secret when its run-together form contains a strong word anywhere:
  password, passwd, passphrase, secret, token, apikey, signature, credential,
  session, authorization, cookie (``client_secret``, ``X-Session``, ``sessionid``,
  and also ``passwordless``, ``tokenizer``);
- or when one of its words *ends with* a short secret word: key, pwd, pass,
  sig, auth, jwt, otp, sid (``key``, ``api_key``, ``idkey``, ``accesskey``,
  ``userpwd``, ``oauth``, ``phpsessid``, and also ``monkey``);
- or when it is exactly code, authcode, devicecode or usercode (the OAuth
  codes; ``error_code`` is not); token_type and token_type_hint are public.

Why "ends with" for short words: a server reads ``sort_key``, ``sortKey`` and
``sortkey`` as spellings of the same name, and cf cannot split run-together
words, so a word ending in ``key`` is taken as a key (``idkey=`` hides its
value, as ``id_key=`` does). The price is a hidden value now and then
(``monkey=[redacted]``), never a leak and never a mangled word; a short word at
the start of a longer one is not matched (``author``, ``keyboard``, ``signal``).

In free text, ``name: value`` counts only where it reads as a header or a
mapping entry: at the start of a line, after ``{ ( [ , ;``, or when the name has
a ``-`` or ``_`` or is a header such as Authorization (so "refresh token:
connection refused" keeps its words). The value runs to the end of the line
for a header line, else it is one token; Authorization keeps its scheme.

Literal secrets registered with `register_secret` are replaced too, in their
percent-encoded, JSON-escaped and repr forms: a form of 8 characters or more
wherever it occurs, a shorter one only as a token of its own (not touching a
letter, digit, ``_`` or ``-``) and not in a name's place (right before ``=``
or ``:``), so a client secret ``id`` never turns ``invalid_client`` into
``inval[redacted]_client`` and ``secret`` keeps ``secret=[redacted]`` readable.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

import httpx

__all__ = [
    "REDACTED",
    "has_secret_header",
    "is_secret_name",
    "redact_exception_chain",
    "redact_headers",
    "redact_text",
    "redact_url",
    "register_secret",
]

REDACTED = "[redacted]"

# --- the vocabulary -------------------------------------------------------------------------

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
    "cookie",
)
_SECRET_SUFFIXES = ("key", "pwd", "pass", "sig", "auth", "jwt", "otp", "sid")
_SECRET_NAMES = frozenset({"code", "authcode", "devicecode", "usercode"})
_PUBLIC_NAMES = frozenset({"tokentype", "tokentypehint"})
# Header names whose value is `scheme credentials`: the scheme is kept.
_SCHEME_NAMES = frozenset({"authorization", "proxyauthorization"})


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


@lru_cache(maxsize=2048)
def _name_words(name: str) -> tuple[str, ...]:
    try:
        name = unquote_plus(name)
    except Exception:  # pragma: no cover - unquote_plus takes any str
        pass
    lowered = _CAMEL.compiled.sub("_", name.strip()).lower()
    return tuple(w for w in _WORD_SPLIT.compiled.split(lowered) if w)


@lru_cache(maxsize=2048)
def is_secret_name(name: str) -> bool:
    """True when a parameter, header or field called `name` holds a secret (see the module doc)."""
    words = _name_words(name)
    flat = "".join(words)
    if not flat or flat in _PUBLIC_NAMES:
        return False
    return (
        flat in _SECRET_NAMES
        or any(s in flat for s in _SECRET_SUBSTRINGS)
        or any(w.endswith(_SECRET_SUFFIXES) for w in words)
    )


def has_secret_header(raw: Iterable[tuple[bytes, bytes]]) -> bool:
    """True when any of these (name, value) header bytes is named as a secret: what a
    cache of headers must not keep."""
    return any(is_secret_name(name.decode("latin-1")) for name, _ in raw)


def _keeps_scheme(name: str) -> bool:
    return "".join(_name_words(name)) in _SCHEME_NAMES


# --- registered literal secrets ------------------------------------------------------------

_MAX_SECRETS = 256
_LONG_FORM = 8  # a form this long is replaced anywhere; a shorter one only as a token
_secrets_lock = threading.Lock()
# secret -> the forms it is matched in; insertion-ordered: the oldest is evicted first
_secrets: dict[str, tuple[str, ...]] = {}
_permanent: dict[str, tuple[str, ...]] = {}  # never evicted
_secrets_re: re.Pattern[str] | None = None
_secrets_stale = False  # the pattern is rebuilt lazily, once after a burst of registrations
_JOINER = re.compile(r"[\w-]")
# A short form followed by `=` or `:` is a name (`secret=...`, `"id": ...`), not a value.
_NAME_POSITION = r"(?![\"']?[ \t]*[=:])"
_HAS_ALNUM = re.compile(r"[^\W_]")
_HEX_ESCAPE = re.compile(r"%[0-9A-F]{2}")


def _forms(value: str) -> set[str]:
    percent = {quote(value, safe=""), quote_plus(value, safe="")}
    percent |= {_HEX_ESCAPE.sub(lambda m: m.group(0).lower(), p) for p in percent}
    forms = {value, *percent}
    forms.update((json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]))
    forms.add(repr(value)[1:-1])
    forms.add(repr(value.encode("utf-8", "surrogatepass"))[2:-1])
    return {f for f in forms if f}


def _short_alternative(form: str) -> str:
    escaped = re.escape(form)
    before = r"(?<![\w-])" if _JOINER.match(form[0]) else ""
    after = r"(?![\w-])" if _JOINER.match(form[-1]) else ""
    return before + escaped + after + _NAME_POSITION


def register_secret(value: str, *, permanent: bool = False) -> None:
    """Remember a literal secret so that `redact_text` and `redact_url` replace it.

    Keeps the last 256 values, plus every `permanent` one (client secrets: they
    live as long as the process, unlike tokens). Any length counts; a value
    without a letter or digit is ignored (it cannot be told from punctuation).
    Its percent-encoded, JSON-escaped and repr forms are matched too; forms of
    fewer than 8 characters only as tokens of their own (see the module doc).
    """
    global _secrets_stale
    if not isinstance(value, str) or not _HAS_ALNUM.search(value):
        return
    try:
        forms = tuple(_forms(value))
    except Exception:  # pragma: no cover - every str has these forms
        forms = (value,)
    with _secrets_lock:
        if permanent:
            _permanent[value] = forms
            _secrets.pop(value, None)
        elif value not in _permanent:
            _secrets.pop(value, None)
            _secrets[value] = forms
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


def _trie(words: Iterable[str]) -> str:
    """One regex matching any of `words`, longest first, that tries one branch per character
    (a plain alternation of 500 tokens tries all 500 at every position of the text)."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        parts = []
        for char in sorted(c for c in node if c):
            child, run = node[char], char
            while len(child) == 1 and "" not in child:  # a chain without branches: one literal
                ((char, child),) = child.items()
                run += char
            parts.append(re.escape(run) + build(child))
        if not parts:
            return ""
        body = parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
        return f"(?:{body})?" if "" in node else body  # greedy: the longer word first

    return build(root)


def _secrets_pattern() -> re.Pattern[str] | None:
    global _secrets_re, _secrets_stale
    if _secrets_stale:
        with _secrets_lock:
            if _secrets_stale:
                every = {f for forms in (*_secrets.values(), *_permanent.values()) for f in forms}
                if every:
                    # The marker is one of the words: a secret is never matched inside a
                    # "[redacted]" already there, so redacting twice changes nothing.
                    long = {f for f in every if len(f) >= _LONG_FORM} | {REDACTED}
                    short = sorted(every - long, key=lambda f: (-len(f), f))
                    alternatives = [*map(_short_alternative, short)]
                    try:
                        _secrets_re = re.compile("|".join([_trie(long), *alternatives]))
                    except (RecursionError, re.error, OverflowError):  # pragma: no cover
                        plain = [re.escape(f) for f in sorted(long, key=len, reverse=True)]
                        _secrets_re = re.compile("|".join([*plain, *alternatives]))
                else:
                    _secrets_re = None
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
        if eq and value and is_secret_name(name):
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
    if hash_:  # implicit-flow tokens live in the fragment
        fragment = _redact_params(fragment, _FRAGMENT_SEP.compiled)
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

_SCHEME = _LazyPattern(r"^([ \t]*[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)([ \t]+)\S")


def _redact_header_value(name: str, value: str) -> str:
    if is_secret_name(name):
        if _keeps_scheme(name):
            match = _SCHEME.compiled.match(value)
            if match:
                return f"{match.group(1)}{match.group(2)}{REDACTED}"
        return REDACTED
    return redact_text(value)


def _to_str(value: object) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
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
    multidict or an iterable of pairs (str or bytes). A header whose name is
    secret (`is_secret_name`: Authorization, Cookie, Set-Cookie, X-Api-Key,
    X-Session, ...) loses its value, Authorization and Proxy-Authorization keep
    their scheme (`Bearer [redacted]`); other values go through `redact_text`.
    Never raises.
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

# Quick rejection: lowercased text without any of these holds no secret name (each one
# contains one of them), no credential scheme and no userinfo: only the registered pass runs.
_WORDS = ("pass", "secret", "token", "credential", "session", "cookie", "code", *_SECRET_SUFFIXES)
_TRIGGERS = (*_WORDS, "bearer", "basic", "@", "%")
# A pass runs only where a secret word may be followed by its separator (on lowercased text).
_WORD_ALTERNATIVES = "(?:" + "|".join(_WORDS) + "|%[0-9a-f]{2})"
_CANDIDATE_COLON = _LazyPattern(_WORD_ALTERNATIVES + r"[\w.%\[\]-]*[ \t]*:")
_CANDIDATE_QUOTED = _LazyPattern(_WORD_ALTERNATIVES + r"[^\"'\r\n]*[\"'][ \t]*[:=,]")
_CANDIDATE_FORM = _LazyPattern(_WORD_ALTERNATIVES + r"[\w.%\[\]-]*[ \t]*=")
_NAME = r"[\w.%\[\]-]+"
_QUOTED_SRC = r"\"(?:[^\"\\\r\n]|\\.)*\"|'(?:[^'\\\r\n]|\\.)*'"
_QUOTED = _LazyPattern(r"[bB]?(?:" + _QUOTED_SRC + ")")
_URL = _LazyPattern(r"(?:\b[A-Za-z][A-Za-z0-9+.-]{0,30}:)?//[^\s\"'<>`]+")
# `name: value`, kept for where it reads as a header line or a mapping entry (module doc).
_COLON_PAIR = _LazyPattern(
    r"(?:(?P<line>^[ \t]*)|(?P<delim>(?<=[{(\[,;])[ \t]*)|(?<![\w.%\[\]-]))"
    r"(?P<key>" + _NAME + r")(?P<sep>[ \t]*:[ \t]*)(?=\S)",
    re.MULTILINE,
)
_LINE_REST = _LazyPattern(r"[^\r\n]*")
_HEADER_NAMES = frozenset({"authorization", "proxyauthorization", "cookie", "setcookie"})
_ONE_TOKEN = _LazyPattern(r"[^\s,;)\]}\"'<>]+")
_SCHEME_TOKEN = _LazyPattern(r"[A-Za-z][\w.-]*[ \t]+(?:\[redacted\]|[^\s,;)\]}\"'<>]+)")
_AUTH_SCHEME = _LazyPattern(r"(?P<scheme>[A-Za-z][\w.-]*)(?P<space>[ \t]+)(?P<rest>\S.*)")
# `Bearer <token>` / `Basic <b64>` anywhere; "bearer token" and challenge params are prose.
_BEARER = _LazyPattern(
    r"\b(?P<scheme>bearer|basic)(?P<space>[ \t]+)"
    r"(?!(?:tokens?|auth\w*|header|scheme|credentials?|realm|error\w*|scope|charset)\b)"
    r"(?P<cred>[A-Za-z0-9\-._~+/]+=*)",
    re.IGNORECASE,
)
# JSON / repr style: `"access_token": "x"`, `b'x-session': b'x'`, `("authorization", "Bearer x")`.
_QUOTED_PAIR = _LazyPattern(
    r"(?P<kq>[bB]?(?P<q>[\"']))(?P<key>(?:(?!(?P=q))[^\\\r\n])*)(?P=q)"
    r"(?:(?P<sep>[ \t]*[:=][ \t]*)"
    r"(?P<value>\[redacted\]|[bB]?(?:" + _QUOTED_SRC + r")|-?\d[\w.+-]*)"
    r"|(?P<comma>[ \t]*,[ \t]*)(?P<tvalue>[bB]?(?:" + _QUOTED_SRC + r"))(?=[ \t]*\)))"
)
# Form / query / repr style: `access_token=x&`, `password='x'`, `?session=x`.
_FORM_PAIR = _LazyPattern(
    r"(?<![\w.%\[\]-])(?P<key>" + _NAME + r")(?P<sep>[ \t]*=[ \t]*)"
    r"(?P<value>\[redacted\]|[bB]?(?:" + _QUOTED_SRC + r")|[^=&\s\"'][^&\s\"']*)"
)


def _scheme_kept(value: str) -> str:
    scheme = _AUTH_SCHEME.compiled.match(value)
    if scheme:
        return f"{scheme.group('scheme')}{scheme.group('space')}{REDACTED}"
    return REDACTED


def _is_quoted(value: str) -> bool:
    start = 1 if value[:1] in ("b", "B") else 0
    return len(value) >= start + 2 and value[start] in "\"'" and value[-1] == value[start]


def _redact_value_text(value: str, keep_scheme: bool) -> str:
    """A value -> `[redacted]`, keeping its quotes (`'x'`, `b"x"`) and, if asked, its scheme."""
    if not _is_quoted(value):
        return _scheme_kept(value) if keep_scheme else REDACTED
    start = 1 if value[0] in "bB" else 0
    inner = value[start + 1 : -1]
    redacted = _scheme_kept(inner) if keep_scheme else REDACTED
    return f"{value[: start + 1]}{redacted}{value[-1]}"


def _colon_value(match: re.Match[str], text: str) -> tuple[int, str] | None:
    """Where the value of a `name: value` match ends and what replaces it; None: keep it."""
    key, sep, start = match.group("key"), match.group("sep"), match.end()
    if text.startswith(REDACTED, start) or not is_secret_name(key):
        return None
    at_line, after_delim = match.group("line") is not None, match.group("delim") is not None
    header = "-" in key or "".join(_name_words(key)) in _HEADER_NAMES
    if not at_line and not (sep[-1].isspace() and (after_delim or header or "_" in key)):
        return None  # "host:443", "refresh token: connection refused"
    keep = _keeps_scheme(key)
    if at_line or (header and not after_delim):  # a header line: the value runs to its end
        rest = _LINE_REST.compiled.match(text, start)
        body = rest.group(0).rstrip() if rest else ""
    else:  # a mapping entry, or `snake_name: value` in prose: one token
        token = (_SCHEME_TOKEN if keep else _QUOTED).compiled.match(text, start)
        token = token or _ONE_TOKEN.compiled.match(text, start)
        body = token.group(0) if token else text[start : start + 1]
    return start + len(body), _redact_value_text(body, keep)


def _redact_colon_pairs(text: str) -> str:
    search = _COLON_PAIR.compiled.search
    pieces: list[str] = []
    pos = 0
    while (match := search(text, pos)) is not None:
        found = _colon_value(match, text)
        if found is None:
            pieces.append(text[pos : match.end()])
            pos = match.end()
        else:
            end, replacement = found
            pieces += (text[pos : match.end()], replacement)
            pos = end
    if not pieces:
        return text
    pieces.append(text[pos:])
    return "".join(pieces)


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
    key = match.group("key")
    if not is_secret_name(key):
        return match.group(0)
    head = f"{match.group('kq')}{key}{match.group('q')}"
    keep = _keeps_scheme(key)
    if match.group("sep") is not None:
        return f"{head}{match.group('sep')}{_redact_value_text(match.group('value'), keep)}"
    return f"{head}{match.group('comma')}{_redact_value_text(match.group('tvalue'), keep)}"


def _sub_form_pair(match: re.Match[str]) -> str:
    key = match.group("key")
    if not is_secret_name(key):
        return match.group(0)
    return f"{key}{match.group('sep')}{_redact_value_text(match.group('value'), False)}"


def _sub_url(match: re.Match[str]) -> str:
    return _redact_url_structure(match.group(0))


def redact_text(text: str) -> str:
    """Return `text` with credentials replaced by `[redacted]`.

    Covers `Bearer`/`Basic` credentials, the values of secret names (the module
    doc's vocabulary) in header lines, `name=value` pairs, JSON and repr pairs
    (bytes reprs included), userinfo passwords and secret query values of URLs,
    and every literal registered with `register_secret`. Redacting twice gives
    what redacting once gave. Never raises.
    """
    try:
        if not isinstance(text, str):
            text = str(text)
        low = text.lower()
        if any(word in low for word in _TRIGGERS):
            if "//" in text:
                text = _URL.compiled.sub(_sub_url, text)
            if "bearer" in low or "basic" in low:
                text = _BEARER.compiled.sub(_sub_bearer, text)
            if ":" in text and _CANDIDATE_COLON.compiled.search(low):
                text = _redact_colon_pairs(text)
            if ("'" in text or '"' in text) and _CANDIDATE_QUOTED.compiled.search(low):
                text = _QUOTED_PAIR.compiled.sub(_sub_quoted_pair, text)
            if "=" in text and _CANDIDATE_FORM.compiled.search(low):
                text = _FORM_PAIR.compiled.sub(_sub_form_pair, text)
        return _redact_registered(text)
    except Exception:
        return REDACTED


# --- exception chains ----------------------------------------------------------------------


def redact_exception_chain(exc: BaseException | None) -> None:
    """Redact, in place, `exc` and every exception behind it (`__cause__`, `__context__`,
    the members of exception groups).

    For the transports, before an exception leaves cf: a chained
    `httpx.RemoteProtocolError` or an aiohttp `ClientResponseError` may carry a
    raw URL or an Authorization header in its args, its attributes or its repr.
    Str args, notes and attributes go through `redact_text`; URLs (httpx's, yarl's)
    through `redact_url`; an `httpx.Request` attribute becomes a redacted copy;
    namedtuple attributes and args (aiohttp's `request_info`, `ConnectionKey`)
    get their URL, header and secret-named fields redacted; header attributes
    become the same kind of object holding redacted pairs. Never raises.
    """
    seen: set[int] = set()
    stack: list[BaseException] = [exc] if exc is not None else []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        try:
            _redact_one_exception(current)
        except Exception:  # pragma: no cover - keep the caller's error path alive
            pass
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                stack.append(nxt)
        for inner in getattr(current, "exceptions", None) or ():
            if isinstance(inner, BaseException):
                stack.append(inner)


def _redact_one_exception(exc: BaseException) -> None:
    try:
        exc.args = tuple(_redacted_object(a, "") for a in exc.args)
    except Exception:
        pass
    notes = getattr(exc, "__notes__", None)
    if isinstance(notes, list):
        notes[:] = [redact_text(n) if isinstance(n, str) else n for n in notes]
    attributes = getattr(exc, "__dict__", None)
    if not isinstance(attributes, dict):
        return
    for key, value in list(attributes.items()):
        if key.startswith("__") or isinstance(value, BaseException):
            continue
        try:
            attributes[key] = _redacted_object(value, key)
        except Exception:
            continue


def _redacted_request(request: httpx.Request) -> httpx.Request:
    """`request` itself when it holds nothing to redact (so an exception keeps the very
    request that failed, as httpx's does); else a copy with the same header names, in
    order, their secret values redacted."""
    url = redact_url(request.url)
    raw = request.headers.raw
    headers = [(name, _redact_header_value(_to_str(name), _to_str(value))) for name, value in raw]
    unchanged = all(v == _to_str(o) for (_, v), (_, o) in zip(headers, raw, strict=True))
    if url == str(request.url) and unchanged:
        return request
    return httpx.Request(
        request.method, url, headers=[(n.decode("latin-1"), v) for n, v in headers]
    )


def _looks_like_url(value: object) -> bool:
    return all(hasattr(value, a) for a in ("scheme", "host", "query_string", "fragment"))


def _redacted_object(value: Any, name: str) -> Any:
    """`value` (an exception's arg or attribute called `name`) with its secrets redacted."""
    if isinstance(value, str):
        return REDACTED if name and is_secret_name(name) else redact_text(value)
    if isinstance(value, bytes):
        return value if not (name and is_secret_name(name)) else REDACTED.encode()
    if isinstance(value, httpx.URL):
        return httpx.URL(redact_url(value))
    if isinstance(value, httpx.Request):
        return _redacted_request(value)
    if _looks_like_url(value):  # yarl.URL (aiohttp)
        try:
            return type(value)(redact_url(str(value)))
        except Exception:
            return redact_url(str(value))
    if isinstance(value, tuple) and hasattr(value, "_fields") and hasattr(value, "_replace"):
        changes = {}
        for field in value._fields:
            item = getattr(value, field)
            redacted = _redacted_object(item, field)
            if redacted is not item:
                changes[field] = redacted
        return value._replace(**changes) if changes else value
    if "header" in name.lower() and isinstance(value, Mapping):
        return _rebuilt_headers(value)
    return value


def _rebuilt_headers(headers: Any) -> Any:
    """The same kind of headers object holding the redacted pairs (a list of pairs if not)."""
    pairs = redact_headers(headers)
    kind = type(headers)
    try:
        return kind(pairs)
    except Exception:
        pass
    try:  # read-only proxies (multidict's CIMultiDictProxy) wrap their mutable kind
        mutable = headers.copy()
        mutable.clear()
        for name, value in pairs:
            mutable.add(name, value)
        return kind(mutable)
    except Exception:
        return pairs
