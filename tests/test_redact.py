"""Redaction of URLs, headers and free text (cf._redact): pure functions, tested directly."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import cf._redact
from cf._redact import redact_headers, redact_text, redact_url, register_secret

R = "[redacted]"


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> Iterator[None]:
    cf._redact._clear_secrets()
    yield
    cf._redact._clear_secrets()


def test_exported_names() -> None:
    assert cf._redact.__all__ == ["redact_headers", "redact_text", "redact_url", "register_secret"]


# --- redact_url ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("https://example.com/a/b", "https://example.com/a/b", id="plain"),
        pytest.param("https://example.com", "https://example.com", id="no-path-no-query"),
        pytest.param(
            "https://user:pw@example.com/x", f"https://user:{R}@example.com/x", id="userinfo"
        ),
        pytest.param(
            "https://ghp_abcdef@example.com/x", f"https://{R}@example.com/x", id="lone-token"
        ),
        pytest.param("https://user:@example.com/", "https://user:@example.com/", id="empty-pw"),
        pytest.param(
            "https://u%40x:p%3Aw@example.com/", f"https://u%40x:{R}@example.com/", id="encoded-ui"
        ),
        pytest.param(
            "https://user:p@ss@example.com/", f"https://user:{R}@example.com/", id="at-in-password"
        ),
        pytest.param(
            "http://user:pw@[::1]:8080/p?token=t",
            f"http://user:{R}@[::1]:8080/p?token={R}",
            id="ipv6-host",
        ),
        pytest.param("http://[::1]:8080/?page=2", "http://[::1]:8080/?page=2", id="ipv6-no-ui"),
        pytest.param(
            "https://h/p?access_token=abc&page=2",
            f"https://h/p?access_token={R}&page=2",
            id="access-token",
        ),
        pytest.param(
            "https://h/?a=1&token=x&b=2&token=y&a=3",
            f"https://h/?a=1&token={R}&b=2&token={R}&a=3",
            id="repeated-params-order-kept",
        ),
        pytest.param(
            "https://h/?q=caf%C3%A9+au+lait&client_secret=s%20e%2Bc",
            f"https://h/?q=caf%C3%A9+au+lait&client_secret={R}",
            id="encoded-values",
        ),
        pytest.param(
            "https://h/?client%5Fsecret=abc", f"https://h/?client%5Fsecret={R}", id="encoded-name"
        ),
        pytest.param(
            "https://h/?PASSWORD=a&Api-Key=b&apiKey=c&X-Amz-Signature=d",
            f"https://h/?PASSWORD={R}&Api-Key={R}&apiKey={R}&X-Amz-Signature={R}",
            id="case-and-separators",
        ),
        pytest.param(
            "https://h/cb?code=abc&state=xyz&error_code=7",
            f"https://h/cb?code={R}&state=xyz&error_code=7",
            id="oauth-code-not-error-code",
        ),
        pytest.param(
            "https://h/?sig=a&key=b&pwd=c&auth=d&session=e&credentials=f&monkey=g&author=h",
            f"https://h/?sig={R}&key={R}&pwd={R}&auth={R}&session={R}&credentials={R}"
            "&monkey=g&author=h",
            id="short-names-whole-words-only",
        ),
        pytest.param("https://h/?token=&token", "https://h/?token=&token", id="empty-values"),
        pytest.param("https://h/?", "https://h/?", id="empty-query"),
        pytest.param("https://h/?a=1;token=x", f"https://h/?a=1;token={R}", id="semicolon"),
        pytest.param("https://h/p#section-2", "https://h/p#section-2", id="plain-fragment"),
        pytest.param(
            "https://h/cb#access_token=abc&token_type=bearer",
            f"https://h/cb#access_token={R}&token_type=bearer",
            id="implicit-flow-fragment",
        ),
        pytest.param(
            "https://h/?page=1#/route?sig=abc",
            f"https://h/?page=1#/route?sig={R}",
            id="spa-fragment",
        ),
        pytest.param("/relative/path?token=abc", f"/relative/path?token={R}", id="relative"),
        pytest.param("//user:pw@h/", f"//user:{R}@h/", id="scheme-relative"),
        pytest.param("mailto:someone@example.com", "mailto:someone@example.com", id="mailto"),
        pytest.param("", "", id="empty"),
        pytest.param("not a url at all", "not a url at all", id="garbage"),
        pytest.param("://@@??##==&&", f"://{R}@??##==&&", id="punctuation-garbage"),
        pytest.param("http://h/\x00\udcff?token=\n", f"http://h/\x00\udcff?token={R}", id="ctrl"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redact_url_accepts_httpx_url() -> None:
    url = httpx.URL("https://user:pw@example.com/p?access_token=abc&x=%2F")
    assert redact_url(url) == f"https://user:{R}@example.com/p?access_token={R}&x=%2F"


def test_redact_url_never_raises_on_a_bad_object() -> None:
    class Bad:
        def __str__(self) -> str:
            raise RuntimeError("boom")

    assert redact_url(Bad()) == R  # type: ignore[arg-type]


def test_redact_url_removes_registered_secrets() -> None:
    register_secret("s3cret/value+1")
    assert redact_url("https://h/s3cret%2Fvalue%2B1/x?q=s3cret/value+1") == f"https://h/{R}/x?q={R}"


# --- redact_headers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {"Authorization": "Bearer abc.def", "Accept": "*/*"},
            [("Authorization", f"Bearer {R}"), ("Accept", "*/*")],
            id="bearer-keeps-scheme",
        ),
        pytest.param(
            {"authorization": "Basic dXNlcjpwYXNz"},
            [("authorization", f"Basic {R}")],
            id="basic",
        ),
        pytest.param({"Authorization": "tokenonly"}, [("Authorization", R)], id="no-scheme"),
        pytest.param(
            {"Proxy-Authorization": 'Digest username="u", response="r"'},
            [("Proxy-Authorization", f"Digest {R}")],
            id="proxy-digest",
        ),
        pytest.param(
            [("Cookie", "sid=1"), ("Set-Cookie", "a=b"), ("Set-Cookie", "c=d")],
            [("Cookie", R), ("Set-Cookie", R), ("Set-Cookie", R)],
            id="cookies-as-pairs",
        ),
        pytest.param(
            {
                "X-Api-Key": "k",
                "X-Auth-Token": "t",
                "X-Client-Secret": "s",
                "X-Amz-Security-Token": "t2",
                "DB-Password": "p",
                "My-API-Key": "k2",
            },
            [
                ("X-Api-Key", R),
                ("X-Auth-Token", R),
                ("X-Client-Secret", R),
                ("X-Amz-Security-Token", R),
                ("DB-Password", R),
                ("My-API-Key", R),
            ],
            id="secret-like-names",
        ),
        pytest.param(
            {"Location": "https://u:pw@h/cb?code=abc", "traceparent": "00-ab-cd-01"},
            [("Location", f"https://u:{R}@h/cb?code={R}"), ("traceparent", "00-ab-cd-01")],
            id="other-values-scrubbed-as-text",
        ),
        pytest.param(
            [(b"Authorization", b"Bearer x")], [("Authorization", f"Bearer {R}")], id="bytes"
        ),
        pytest.param({}, [], id="empty"),
        pytest.param(None, [], id="none"),
        pytest.param("Authorization: Bearer x", [], id="a-string-is-not-headers"),
        pytest.param([("only-one",), 5, ("a", "b")], [("a", "b")], id="bad-pairs-skipped"),
    ],
)
def test_redact_headers(headers: object, expected: list[tuple[str, str]]) -> None:
    assert redact_headers(headers) == expected


def test_redact_headers_httpx_headers_keeps_every_value() -> None:
    headers = httpx.Headers([("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("Accept", "x")])
    assert redact_headers(headers) == [("set-cookie", R), ("set-cookie", R), ("accept", "x")]


# --- redact_text ---------------------------------------------------------------------------

BASIC = base64.b64encode(b"client-id:client-secret").decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("nothing to see here", "nothing to see here", id="plain"),
        pytest.param("", "", id="empty"),
        pytest.param(
            "sending Bearer eyJhbGciOi.eyJzdWIi.sig-_x== now",
            f"sending Bearer {R} now",
            id="bearer-jwt",
        ),
        pytest.param(f"basic: Basic {BASIC}", f"basic: Basic {R}", id="basic"),
        pytest.param(
            "the bearer token expired; basic retry policy; Basic auth failed",
            "the bearer token expired; basic retry policy; Basic auth failed",
            id="prose-untouched",
        ),
        pytest.param(
            'WWW-Authenticate: Bearer error="invalid_token", realm="api"',
            'WWW-Authenticate: Bearer error="invalid_token", realm="api"',
            id="challenge-untouched",
        ),
        pytest.param(
            "> GET /\nAuthorization: Bearer abc\nAccept: */*",
            f"> GET /\nAuthorization: Bearer {R}\nAccept: */*",
            id="header-line",
        ),
        pytest.param(
            "proxy-authorization: Digest username=u, response=r\r\nx: y",
            f"proxy-authorization: Digest {R}\r\nx: y",
            id="header-line-digest",
        ),
        pytest.param("Authorization: abc", f"Authorization: {R}", id="header-line-no-scheme"),
        pytest.param("Cookie: sid=abc; x=1", f"Cookie: {R}", id="cookie-line"),
        pytest.param(
            "grant_type=client_credentials&client_secret=s3&scope=a+b",
            f"grant_type=client_credentials&client_secret={R}&scope=a+b",
            id="form-body",
        ),
        pytest.param(
            "access_token=abc refresh_token=def\tpassword=ghi'",
            f"access_token={R} refresh_token={R}\tpassword={R}'",
            id="form-stops-at-space-and-quote",
        ),
        pytest.param(
            "Token(access_token='ab c', token_type='Bearer')",
            f"Token(access_token='{R}', token_type='Bearer')",
            id="repr-quoted-value",
        ),
        pytest.param(
            '{"access_token": "a\\"b", "token_type": "Bearer", "expires_in": 3600}',
            f'{{"access_token": "{R}", "token_type": "Bearer", "expires_in": 3600}}',
            id="json-token-response",
        ),
        pytest.param(
            '{"client_secret":"x","refresh_token" : "y","id_token":"z","password":"p"}',
            f'{{"client_secret":"{R}","refresh_token" : "{R}","id_token":"{R}","password":"{R}"}}',
            id="json-secrets",
        ),
        pytest.param(
            "{'Authorization': 'Bearer abc', 'Accept': 'x'}",
            f"{{'Authorization': 'Bearer {R}', 'Accept': 'x'}}",
            id="dict-repr-headers",
        ),
        pytest.param(
            "[('authorization', 'Token abc'), ('x', 'y')]",
            f"[('authorization', 'Token {R}'), ('x', 'y')]",
            id="pairs-repr-headers",
        ),
        pytest.param(
            'fields: ["access_token", "refresh_token"]',
            'fields: ["access_token", "refresh_token"]',
            id="list-of-names-untouched",
        ),
        pytest.param(
            "GET https://user:pw@api.example.com/v1?api_key=k&page=2 -> 500",
            f"GET https://user:{R}@api.example.com/v1?api_key={R}&page=2 -> 500",
            id="url-in-text",
        ),
        pytest.param(
            "redirect to 'https://h/cb?code=abc&state=s'",
            f"redirect to 'https://h/cb?code={R}&state=s'",
            id="quoted-url-code",
        ),
        pytest.param(
            "status code=500 key=abc error_code=7",
            "status code=500 key=abc error_code=7",
            id="code-and-key-outside-urls-untouched",
        ),
        pytest.param("user@example.com wrote", "user@example.com wrote", id="email"),
        pytest.param("x" * 50 + "://" + "@" * 50, "x" * 50 + f"://{R}" + "@", id="garbage"),
    ],
)
def test_redact_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(f"Authorization: Bearer {R}", id="header"),
        pytest.param(f"https://u:{R}@h/?token={R}", id="url"),
        pytest.param(f'{{"access_token": "{R}"}} password={R}', id="json-and-form"),
    ],
)
def test_redact_text_is_idempotent(text: str) -> None:
    assert redact_text(text) == text
    assert redact_text(redact_text(text)) == text


def test_redact_text_handles_long_pathological_input_quickly() -> None:
    # Catastrophic backtracking would make these take minutes.
    for text in ["a." * 20_000, "'" * 40_000, '"token' * 10_000, "Bearer " * 10_000, "=" * 40_000]:
        redact_text(text)
        redact_url(text)


# --- register_secret -----------------------------------------------------------------------


def test_registered_secret_is_replaced_anywhere() -> None:
    register_secret("hunter2-the-secret")
    text = 'err: body={"detail": "bad hunter2-the-secret"} id:hunter2-the-secret'
    assert redact_text(text) == f'err: body={{"detail": "bad {R}"}} id:{R}'


def test_registered_secret_encoded_forms() -> None:
    secret = 'p@ss w/"q"&é'
    register_secret(secret)
    assert redact_text("form: a=x&c=p%40ss%20w%2F%22q%22%26%C3%A9") == f"form: a=x&c={R}"
    assert redact_text("form: c=p%40ss+w%2F%22q%22%26%C3%A9") == f"form: c={R}"
    assert redact_text('json: {"c": "p@ss w/\\"q\\"&\\u00e9"}') == f'json: {{"c": "{R}"}}'


def test_short_secrets_are_ignored() -> None:
    register_secret("abc12")
    register_secret("")
    assert redact_text("abc12 is short") == "abc12 is short"
    assert cf._redact._secrets == {}


def test_registry_is_bounded_and_keeps_the_latest() -> None:
    for i in range(300):
        register_secret(f"secret-{i:04d}")
    assert len(cf._redact._secrets) == 256
    assert redact_text("secret-0000") == "secret-0000"  # evicted
    assert redact_text("secret-0299 secret-0044") == f"{R} {R}"


def test_re_registering_refreshes_a_secret() -> None:
    register_secret("first-secret")
    for i in range(255):
        register_secret(f"secret-{i:04d}")
    register_secret("first-secret")  # now the newest
    register_secret("one-more-secret")
    assert redact_text("first-secret") == R


def test_longest_secret_wins_over_its_prefix() -> None:
    register_secret("abcdef")
    register_secret("abcdefghij")
    assert redact_text("xabcdefghijx") == f"x{R}x"


def test_registration_is_thread_safe() -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(70):
                secret = f"thread{n}-secret-{i}"
                register_secret(secret)
                assert secret not in redact_text(f"value {secret} end")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cf._redact._secrets) == 256


# --- properties ----------------------------------------------------------------------------

secrets_st = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=6)


@given(st.text())
def test_redact_text_never_raises(text: str) -> None:
    assert isinstance(redact_text(text), str)


@given(st.text())
def test_redact_url_never_raises(text: str) -> None:
    assert isinstance(redact_url(text), str)


@given(st.one_of(st.dictionaries(st.text(), st.text()), st.lists(st.tuples(st.text(), st.text()))))
def test_redact_headers_never_raises(headers: object) -> None:
    assert isinstance(redact_headers(headers), list)


@given(secret=secrets_st, before=st.text(), after=st.text())
def test_redact_text_never_outputs_a_registered_secret(
    secret: str, before: str, after: str
) -> None:
    assume(secret not in "[redacted]")  # a substring of the placeholder cannot be avoided
    cf._redact._clear_secrets()
    register_secret(secret)
    assert secret not in redact_text(before + secret + after)


@given(secret=secrets_st, path=st.text(), query=st.text())
def test_redact_url_never_outputs_a_registered_secret(secret: str, path: str, query: str) -> None:
    assume(secret not in "[redacted]")
    cf._redact._clear_secrets()
    register_secret(secret)
    for url in (
        f"https://user:{secret}@example.com/{path}?{query}",
        f"https://example.com/{path}{secret}?{query}",
        f"https://example.com/{path}?{query}&x={secret}#{query}",
    ):
        assert secret not in redact_url(url)


def test_permanent_secret_survives_many_tokens() -> None:
    from cf._redact import _clear_secrets

    register_secret("client-S3cr3tValue!", permanent=True)
    try:
        for i in range(300):
            register_secret(f"access-token-{i:04d}")
        assert "client-S3cr3tValue!" not in redact_text("oops client-S3cr3tValue!")
        assert "access-token-0000" in redact_text("oops access-token-0000")  # evicted
        assert "access-token-0299" not in redact_text("oops access-token-0299")
    finally:
        _clear_secrets()
