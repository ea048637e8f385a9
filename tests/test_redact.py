"""Redaction of URLs, headers and free text (cf._redact): pure functions, tested directly."""

from __future__ import annotations

import base64
import builtins
import re
import sys
import threading
from collections.abc import Iterator

import httpx
import pytest

import cf._redact
from cf._redact import (
    is_secret_name,
    redact_exception_chain,
    redact_headers,
    redact_text,
    redact_url,
    register_secret,
)

R = "[redacted]"


@pytest.fixture(autouse=True)
def _no_registered_secrets() -> Iterator[None]:
    cf._redact._clear_secrets()
    yield
    cf._redact._clear_secrets()


def test_exported_names() -> None:
    assert cf._redact.__all__ == [
        "REDACTED",
        "has_secret_header",
        "is_secret_name",
        "redact_exception_chain",
        "redact_headers",
        "redact_text",
        "redact_url",
        "register_secret",
    ]


def test_has_secret_header() -> None:
    from cf._redact import has_secret_header

    assert not has_secret_header([])
    assert not has_secret_header([(b"Accept", b"*/*"), (b"X-Trace", b"abc")])
    for name in (
        b"Authorization",
        b"cookie",
        b"X-Api-Key",
        b"Proxy-Authorization",
        b"x-\xe9-token",
    ):
        assert has_secret_header([(b"Accept", b"*/*"), (name, b"v")]), name


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
            "https://h/?sig=a&key=b&pwd=c&auth=d&session=e&credentials=f&author=h&keyboard=i",
            f"https://h/?sig={R}&key={R}&pwd={R}&auth={R}&session={R}&credentials={R}"
            "&author=h&keyboard=i",
            id="short-words-not-at-the-start-of-a-longer-word",
        ),
        pytest.param(
            "https://h/?idkey=a&accesskey=b&monkey=c&passwordless=d&userpwd=e",
            f"https://h/?idkey={R}&accesskey={R}&monkey={R}&passwordless={R}&userpwd={R}",
            id="secret-words-ending-or-inside-a-longer-word",
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
            "status code=500 key=abc error_code=7 page=2",
            f"status code={R} key={R} error_code=7 page=2",
            id="one-vocabulary-in-text-and-urls",
        ),
        pytest.param(
            "GET /p?session=abc&page=2 HTTP/1.1",
            f"GET /p?session={R}&page=2 HTTP/1.1",
            id="relative-url-in-text",
        ),
        pytest.param(
            "X-Session: abc\r\nAccept: */*\r\nX-Api-Key: k 1\r\n",
            f"X-Session: {R}\r\nAccept: */*\r\nX-Api-Key: {R}\r\n",
            id="secret-header-lines",
        ),
        pytest.param(
            "sent X-Session: abc; Authorization: Bearer t",
            f"sent X-Session: {R}",
            id="header-mid-line-runs-to-end-of-line",
        ),
        pytest.param(
            "password: hunter2\n  token: abc def\nlevel: 3",
            f"password: {R}\n  token: {R}\nlevel: 3",
            id="colon-pairs-at-line-start",
        ),
        pytest.param(
            "{password: abc, page: 2}; (token: xyz)",
            f"{{password: {R}, page: 2}}; (token: {R})",
            id="colon-pairs-in-mappings-one-token",
        ),
        pytest.param(
            "refresh token: connection refused; session: closed",
            f"refresh token: connection refused; session: {R}",
            id="colon-in-prose-keeps-words",
        ),
        pytest.param(
            "bad client_secret: s3cr3t given",
            f"bad client_secret: {R} given",
            id="snake-name-colon-one-token",
        ),
        pytest.param(
            "Starting new HTTPS connection (1): api-key.example.com:443",
            "Starting new HTTPS connection (1): api-key.example.com:443",
            id="host-port-untouched",
        ),
        pytest.param(
            "[(b'Authorization', b'Bearer abc'), (b':path', b'/p?access_token=x&password=y')]",
            f"[(b'Authorization', b'Bearer {R}'), (b':path', b'/p?access_token={R}&password={R}')]",
            id="bytes-pairs-repr",
        ),
        pytest.param(
            "(b'x-session', b'abc') b'set-cookie': b'sid=1' b'cookie'=b'a=b' (b'accept', b'*/*')",
            f"(b'x-session', b'{R}') b'set-cookie': b'{R}' b'cookie'=b'{R}' (b'accept', b'*/*')",
            id="bytes-reprs-of-secret-headers",
        ),
        pytest.param(
            "password=b'abc' token=b\"x y\" apikey=bad",
            f"password=b'{R}' token=b\"{R}\" apikey={R}",
            id="form-values-as-bytes-reprs",
        ),
        pytest.param(
            '{"pin_password": 123456, "session": null, "expires_in": 3600}',
            f'{{"pin_password": {R}, "session": null, "expires_in": 3600}}',
            id="json-numbers",
        ),
        pytest.param(
            "error=invalid_client client_secret identity author monkey idkey password",
            "error=invalid_client client_secret identity author monkey idkey password",
            id="names-alone-are-words",
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


def test_short_secrets_are_redacted_as_tokens_only() -> None:
    register_secret("id")
    text = "[invalid_client] identity id=abc x=id 'id' id. client-id id_x id"
    assert (
        redact_text(text) == f"[invalid_client] identity id=abc x={R} '{R}' {R}. client-id id_x {R}"
    )
    assert redact_url("https://h/id/p?q=id&idx=1") == f"https://h/{R}/p?q={R}&idx=1"


@pytest.mark.parametrize("secret", ["a", "s3", "abc", "x9z!", "ab-cd", "abcde", "hunter7"])
def test_short_secrets_as_values_and_tokens(secret: str) -> None:
    register_secret(secret)
    for text in (
        f"client_secret={secret}",
        f"q={secret}&x=1",
        f'{{"echo": "{secret}"}}',
        f"got {secret} from the server",
        f"Basic {base64.b64encode(f'id:{secret}'.encode()).decode()}",
    ):
        as_token = re.compile(rf"(?<![\w-]){re.escape(secret)}(?![\w-])")
        assert not as_token.search(redact_text(text).replace(R, " ")), text


def test_readme_secret_keeps_ordinary_words() -> None:
    register_secret("secret", permanent=True)
    text = "token request refused: invalid_client (client_secret is wrong) secret=secret"
    assert redact_text(text) == (
        f"token request refused: invalid_client (client_secret is wrong) secret={R}"
    )
    register_secret("id", permanent=True)
    assert redact_text("[invalid_client] identity") == "[invalid_client] identity"


def test_secrets_without_a_letter_or_digit_are_ignored() -> None:
    for value in ("", " ", "   ", "--", "!!", "\t"):
        register_secret(value)
    assert cf._redact._secrets == {}
    assert redact_text("a -- b !! c") == "a -- b !! c"


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


def test_a_permanent_secret_is_never_evicted_by_registering_it_as_a_token() -> None:
    register_secret("the-client-secret", permanent=True)
    register_secret("the-client-secret")
    for i in range(300):
        register_secret(f"secret-{i:04d}")
    assert redact_text("the-client-secret") == R


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


# --- one vocabulary ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        *[
            pytest.param(n, True, id=n)
            for n in [
                "password",
                "client_secret",
                "access_token",
                "X-Session",
                "sessionid",
                "JSESSIONID",
                "phpsessid",
                "Cookie",
                "Set-Cookie",
                "Authorization",
                "Proxy-Authorization",
                "X-Api-Key",
                "apiKey",
                "key",
                "idkey",
                "accesskey",
                "AccessKey",
                "monkey",
                "sort_key",
                "userpwd",
                "pass",
                "oauth",
                "sig",
                "X-Amz-Signature",
                "passwordless",
                "code",
                "user[password]",
                "client%5Fsecret",
                "jwt",
            ]
        ],
        *[
            pytest.param(n, False, id=n)
            for n in [
                "author",
                "authority",
                "keyboard",
                "keys_count",
                "signal",
                "token_type",
                "token_type_hint",
                "error_code",
                "codec",
                "page",
                "id",
                "accept",
                "www-authenticate",
                "traceparent",
                "",
                "--",
            ]
        ],
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


@pytest.mark.parametrize("name", ["session", "X-Session", "monkey", "idkey", "client_secret"])
def test_one_vocabulary_for_urls_headers_and_text(name: str) -> None:
    value = "v4lue-0f-" + name
    shown = [
        redact_url(f"https://h/p?{name}={value}&page=2"),
        redact_text(f"GET /p?{name}={value}&page=2"),
        redact_text(f"{name}={value}"),
        redact_text(f'{{"{name}": "{value}"}}'),
        redact_text(f"{name}: {value}"),
        redact_text(f"[(b'{name}', b'{value}')]"),
        *(v for _, v in redact_headers({name: value})),
    ]
    for text in shown:
        assert value not in text, text


def test_x_session_header_is_redacted() -> None:
    assert redact_headers({"X-Session": "abc", "X-Request-Id": "r1"}) == [
        ("X-Session", R),
        ("X-Request-Id", "r1"),
    ]


# --- exception chains ----------------------------------------------------------------------


def _chain() -> BaseException:
    import aiohttp
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    url = "https://h/p?api_key=CHAINKEY1&page=2"
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": "Bearer CHAINTOK2", "Accept": "*/*"}))
    info = aiohttp.RequestInfo(URL(url), "GET", headers, URL(url))
    aio = aiohttp.ClientResponseError(info, (), status=500, message="bad api_key=CHAINKEY1")
    request = httpx.Request("GET", url, headers={"Authorization": "Bearer CHAINTOK2"})
    try:
        try:
            raise aio
        except aiohttp.ClientResponseError as exc:
            raise httpx.RemoteProtocolError(f"broken reply from {url}", request=request) from exc
    except httpx.RemoteProtocolError as exc:
        try:
            raise RuntimeError("cf's own, already redacted") from exc
        except RuntimeError as top:
            if hasattr(top, "add_note"):  # Python 3.11+
                top.add_note("see Authorization: Bearer CHAINTOK2")
            return top


def _chain_texts(exc: BaseException) -> list[str]:
    import traceback

    texts = ["".join(traceback.format_exception(exc))]
    current: BaseException | None = exc
    while current is not None:
        texts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        current = current.__cause__ or current.__context__
    return texts


def test_redact_exception_chain_with_real_httpx_and_aiohttp_exceptions() -> None:
    exc = _chain()
    assert any("CHAINKEY1" in t or "CHAINTOK2" in t for t in _chain_texts(exc))  # the leak
    redact_exception_chain(exc)
    texts = _chain_texts(exc)
    for text in texts:
        assert "CHAINKEY1" not in text and "CHAINTOK2" not in text, text
    cause = exc.__cause__
    assert isinstance(cause, httpx.RemoteProtocolError)
    assert cause.request.headers["Authorization"] == f"Bearer {R}"
    assert cause.request.url.params["page"] == "2"
    aio = cause.__cause__
    assert aio is not None and "500" in str(aio)
    assert aio.request_info.headers["Accept"] == "*/*"  # type: ignore[attr-defined]
    assert type(aio.request_info.headers).__name__ == "CIMultiDictProxy"  # type: ignore[attr-defined]


def test_redact_exception_chain_survives_odd_exceptions() -> None:
    class Frozen(Exception):
        @property  # type: ignore[misc]
        def args(self) -> tuple[object, ...]:  # type: ignore[override]
            return ("token=FROZEN1",)

    loop = ValueError("password=LOOP2")
    loop.__context__ = KeyError("x")
    loop.__context__.__context__ = loop  # a cycle
    group = None
    if sys.version_info >= (3, 11):
        group = builtins.ExceptionGroup("g", [ValueError("secret=GROUP3")])
    for exc in (Frozen(), loop, group, None):
        redact_exception_chain(exc)  # never raises
    assert "LOOP2" not in str(loop)
    if group is not None:
        assert "GROUP3" not in str(group.exceptions[0])
