"""Bounded fuzzing of the parsers of untrusted text: redaction and token responses.

Hypothesis, a few hundred examples per property (the whole file runs in about
ten seconds): no exception but the documented ones, redacting twice is
redacting once, a registered secret never survives whatever surrounds it, and
ordinary words come out as they went in.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import cf._redact
from cf._oauth import MAX_LIFETIME, Token, TokenProblem, parse_error_response, parse_token_response
from cf._redact import REDACTED, is_secret_name, redact_headers, redact_text, redact_url
from cf._redact import register_secret as register

# CF_FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps the file near ten seconds.
FUZZ = settings(
    max_examples=int(os.environ.get("CF_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> Iterator[None]:
    cf._redact._clear_secrets()
    yield
    cf._redact._clear_secrets()


# Fragments that steer random text towards the shapes the redaction rules look for.
FRAGMENTS = [
    "=",
    "&",
    ":",
    ": ",
    "; ",
    ", ",
    "?",
    "#",
    "@",
    "//",
    "https://",
    "u:p@",
    "'",
    '"',
    "b'",
    "\\",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "\n",
    "\r\n",
    " ",
    "\t",
    "%",
    "%5F",
    "%2",
    "Bearer ",
    "Basic ",
    "Authorization: ",
    "Cookie: ",
    "X-Session: ",
    "access_token",
    "client_secret",
    "password",
    "token",
    "session",
    "key",
    "monkey",
    "idkey",
    "code",
    "sig",
    "auth",
    "author",
    "[redacted]",
    "redacted",
    "dXNlcjpwYXNz",
    "abc",
    "é",
    "\x00",
]
soup = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=24).map(
    "".join
)
url_soup = st.builds(
    lambda scheme, rest: scheme + rest,
    st.sampled_from(["https://", "http://u:p@", "//", "/", "", "https://tok@"]),
    soup,
)


@FUZZ
@given(soup)
def test_redact_text_never_raises_and_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert isinstance(once, str)
    assert redact_text(once) == once


@FUZZ
@given(url_soup)
def test_redact_url_never_raises_and_is_idempotent(url: str) -> None:
    once = redact_url(url)
    assert isinstance(once, str)
    assert redact_url(once) == once
    assert redact_text(redact_text(url)) == redact_text(url)


header_names = st.one_of(
    st.sampled_from(["Authorization", "Cookie", "X-Session", "X-Api-Key", "Accept", "Location"]),
    st.text(max_size=12),
)


@FUZZ
@given(st.lists(st.tuples(header_names, soup), max_size=6))
def test_redact_headers_never_raises_and_hides_every_secret_header(
    pairs: list[tuple[str, str]],
) -> None:
    once = redact_headers(pairs)
    assert [name for name, _ in once] == [name for name, _ in pairs]
    assert redact_headers(once) == once
    for (name, _), (_, shown) in zip(pairs, once, strict=True):
        if is_secret_name(name):
            assert re.fullmatch(r"(?:[ \t]*[^\s\[]+[ \t]+)?\[redacted\]", shown), (name, shown)


@FUZZ
@given(st.one_of(st.binary(max_size=40), st.dictionaries(st.text(max_size=4), st.text())))
def test_redact_headers_takes_anything(headers: object) -> None:
    assert isinstance(redact_headers(headers), list)


# --- registered secrets --------------------------------------------------------------------

SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/=!$*é"
long_secrets = st.text(SECRET_ALPHABET, min_size=8, max_size=40).filter(
    lambda s: re.search(r"[A-Za-z0-9]", s) is not None and s not in REDACTED
)
short_secrets = st.text(SECRET_ALPHABET, min_size=1, max_size=7).filter(
    lambda s: s[0].isalnum() and s[-1].isalnum()
)


def _encodings(secret: str) -> list[str]:
    return [
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    ]


@FUZZ
@given(secret=long_secrets, before=soup, after=soup, form=st.integers(0, 4))
def test_a_long_registered_secret_never_survives(
    secret: str, before: str, after: str, form: int
) -> None:
    cf._redact._clear_secrets()
    register(secret)
    shown = _encodings(secret)[form]
    assume(shown not in REDACTED)
    for text in (before + shown + after, f"https://h/{before}?{after}={shown}#{shown}"):
        assert shown not in redact_text(text)
        assert shown not in redact_url(text)


DELIMITERS_BEFORE = [" ", ",", ";", "&", "=", "?", "/", "(", "[", "{", "<", "\n", ": ", "'", '"']
DELIMITERS_AFTER = [" ", ",", ";", "&", "/", ")", "]", "}", ">", "\n", ". ", "'", '"', "#"]


@FUZZ
@given(
    secret=short_secrets,
    before=st.sampled_from(DELIMITERS_BEFORE),
    after=st.sampled_from(DELIMITERS_AFTER),
    prefix=soup,
    suffix=soup,
)
def test_a_short_registered_secret_never_survives_as_a_token(
    secret: str, before: str, after: str, prefix: str, suffix: str
) -> None:
    cf._redact._clear_secrets()
    register(secret)
    as_token = re.compile(rf"(?<![\w-]){re.escape(secret)}(?![\w-])(?![\"']?[ \t]*[=:])")
    redacted = redact_text(f"{prefix} {before}{secret}{after} {suffix}")
    assert not as_token.search(redacted.replace(REDACTED, " ")), redacted


@FUZZ
@given(secret=short_secrets, name=st.sampled_from(["client_secret", "password", "X-Session"]))
def test_a_short_secret_as_a_value_never_survives(secret: str, name: str) -> None:
    cf._redact._clear_secrets()
    register(secret)
    for text in (f"{name}={secret}", f'{{"{name}": "{secret}"}}', f"{name}: {secret}"):
        assert secret not in redact_text(text).replace(REDACTED, "").replace(name, ""), text


WORDS = [
    "client_secret",
    "invalid_client",
    "identity",
    "author",
    "monkey",
    "idkey",
    "password",
    "token",
    "session",
    "secret",
    "keyboard",
    "retrying",
    "GET",
    "attempt",
    "1/3",
    "failed",
    "refresh",
    "connection",
    "refused",
    "the",
    "id",
    "s3",
    "a",
    "(client_secret)",
    "[invalid_client]",
]


@FUZZ
@given(
    words=st.lists(st.sampled_from(WORDS), max_size=12),
    separator=st.sampled_from([" ", ", ", "; ", " - "]),
    secret=st.sampled_from(["secret", "id", "s3", "a", "abcdef", "hunter2"]),
)
def test_ordinary_words_survive(words: list[str], separator: str, secret: str) -> None:
    cf._redact._clear_secrets()
    register(secret, permanent=True)
    kept = [w for w in words if w.strip("()[]") != secret]  # the secret itself is a token
    text = separator.join(kept)
    assert redact_text(text) == text


# --- token responses -----------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=6,
)
TOKEN_KEYS = [
    "access_token",
    "token_type",
    "expires_in",
    "expires_at",
    "scope",
    "refresh_token",
    "id_token",
    "error",
    "error_description",
    "error_uri",
]
lifetimes = st.one_of(
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["Infinity", "NaN", "1e400", "-1", "999999999999", " 60 ", "", "1_0"]),
    json_values,
)
token_bodies = st.fixed_dictionaries(
    {},
    optional={
        "access_token": st.one_of(st.text(SECRET_ALPHABET, min_size=8, max_size=30), json_values),
        "token_type": st.one_of(st.sampled_from(["Bearer", "bearer", "mac"]), json_values),
        "expires_in": lifetimes,
        "expires_at": lifetimes,
        "scope": st.one_of(st.text(max_size=10), json_values),
        "refresh_token": st.text(SECRET_ALPHABET, min_size=8, max_size=30),
        "error": st.one_of(st.sampled_from(["invalid_client", "invalid_grant"]), json_values),
        "error_description": json_values,
    },
).flatmap(lambda d: st.dictionaries(st.sampled_from(TOKEN_KEYS), json_values).map(d.__or__))


def _raw(document: object) -> bytes:
    return json.dumps(document).encode()


@FUZZ
@given(st.one_of(token_bodies.map(_raw), st.binary(max_size=60), soup.map(str.encode)))
def test_parse_token_response_never_raises(raw: bytes) -> None:
    cf._redact._clear_secrets()
    result = parse_token_response(raw, client_id="id", requested_scope="a b", obtained_at=5.0)
    assert isinstance(result, Token | TokenProblem)
    if isinstance(result, Token):
        assert result.expires_in is None or 0 <= result.expires_in <= MAX_LIFETIME
        assert result.refresh_at(60.0) is None or result.refresh_at(60.0) >= 5.0
    problem = parse_error_response(raw)
    assert problem is None or isinstance(problem, TokenProblem)
    # What reaches an OAuthError: the problems' texts (a Token's repr shows its scope, which
    # a hostile server may set to the token itself; the token is never in it otherwise).
    shown = repr(problem) + (repr(result) if isinstance(result, TokenProblem) else "")
    try:
        document = json.loads(raw)
    except ValueError:
        return
    if isinstance(document, dict):
        for field in ("access_token", "refresh_token", "id_token"):
            value = document.get(field)
            if isinstance(value, str) and len(value) >= 8 and value not in REDACTED:
                assert value not in shown
                assert value not in redact_text(f"echo {value} echo")


@FUZZ
@given(
    words=st.lists(st.text("ab[]é", min_size=1, max_size=6), min_size=1, max_size=8),
    text=st.text("ab[]é ", max_size=30),
)
def test_the_secrets_trie_matches_like_a_longest_first_alternation(
    words: list[str], text: str
) -> None:
    trie = re.compile(cf._redact._trie(words))
    plain = re.compile("|".join(re.escape(w) for w in sorted(set(words), key=len, reverse=True)))
    assert trie.findall(text) == plain.findall(text)
    assert all(trie.fullmatch(w) for w in words)
