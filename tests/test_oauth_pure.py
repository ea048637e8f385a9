"""The pure OAuth logic of cf._oauth: token values, parsing, creation checks (no I/O)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import httpx
import pytest

from cf._oauth import (
    MAX_LIFETIME,
    OAuthConfig,
    Token,
    TokenProblem,
    basic_authorization,
    check_token_url,
    effective_margin,
    is_loopback_host,
    parse_error_response,
    parse_scope,
    parse_token_response,
    refresh_pause,
    scope_changed,
)
from cf._redact import redact_text


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def parse(raw: bytes, scope: str | None = None) -> Token | TokenProblem:
    return parse_token_response(raw, client_id="id", requested_scope=scope, obtained_at=100.0)


# --- Token and the refresh rule --------------------------------------------------------------


@pytest.mark.parametrize(
    ("margin", "lifetime", "expected"),
    [
        pytest.param(60, 3600, 60, id="margin"),
        pytest.param(60, 100, 50, id="half-lifetime"),
        pytest.param(60, 3, 1.5, id="short-token"),
        pytest.param(0, 3600, 0, id="no-margin"),
        pytest.param(60, 0, 0, id="zero-lifetime"),
    ],
)
def test_effective_margin(margin: float, lifetime: float, expected: float) -> None:
    assert effective_margin(margin, lifetime) == expected


@pytest.mark.parametrize(
    ("left", "expected"),
    [
        pytest.param(100, 10, id="capped"),
        pytest.param(8, 4, id="half"),
        pytest.param(0.2, 0.5, id="floor"),
        pytest.param(0, 0.5, id="expired"),
    ],
)
def test_refresh_pause(left: float, expected: float) -> None:
    assert refresh_pause(left) == expected


def test_token_lifetime_on_the_monotonic_clock() -> None:
    token = Token("abc", obtained_at=100.0, expires_in=100.0)
    assert token.expires_at == 200.0
    assert token.refresh_at(60) == 150.0  # at most half the lifetime
    assert token.refresh_at(10) == 190.0
    assert not token.needs_refresh(149.9, 60)
    assert token.needs_refresh(150.0, 60)
    assert not token.is_expired(199.9)
    assert token.is_expired(200.0)
    assert token.authorization == "Bearer abc"


def test_token_without_expiry_is_never_renewed_by_time() -> None:
    token = Token("abc", obtained_at=100.0)
    assert token.expires_at is None
    assert token.refresh_at(60) is None
    assert not token.needs_refresh(10**12, 60)
    assert not token.is_expired(10**12)


def test_token_repr_hides_the_token() -> None:
    token = Token("very-secret-token", scope="read", obtained_at=1.0, expires_in=3600)
    for text in (repr(token), str(token), f"{token}", repr([token])):
        assert "very-secret-token" not in text
    assert "read" in repr(token)
    assert "3600" in repr(token)


def test_token_is_frozen() -> None:
    token = Token("abc")
    with pytest.raises(AttributeError):
        token.access_token = "x"  # type: ignore[misc]


# --- parsing the token response ---------------------------------------------------------------


def test_parse_a_good_response() -> None:
    token = parse(body(access_token="tok-123", token_type="Bearer", expires_in=3600), "a b")
    assert token == Token("tok-123", "Bearer", "a b", 100.0, 3600.0)


@pytest.mark.parametrize(
    ("fields", "requested", "granted"),
    [
        pytest.param({"scope": "a"}, "a b", "a", id="narrowed"),
        pytest.param({"scope": "b a"}, "a b", "b a", id="reordered"),
        pytest.param({"scope": ["a", "c"]}, "a", "a c", id="list"),
        pytest.param({}, "a b", "a b", id="omitted-means-requested"),
        pytest.param({"scope": "x"}, None, "x", id="none-requested"),
        pytest.param({}, None, None, id="no-scope"),
    ],
)
def test_granted_scope_is_exposed_not_raised(
    fields: dict[str, Any], requested: str | None, granted: str | None
) -> None:
    token = parse(body(access_token="tok-123", token_type="Bearer", **fields), requested)
    assert isinstance(token, Token)
    assert token.scope == granted


@pytest.mark.parametrize(
    ("fields", "expires_in"),
    [
        pytest.param({"expires_in": 60}, 60.0, id="int"),
        pytest.param({"expires_in": 1.5}, 1.5, id="float"),
        pytest.param({"expires_in": "3600"}, 3600.0, id="string"),
        pytest.param({"expires_in": 0}, 0.0, id="zero"),
        pytest.param({}, None, id="absent"),
        pytest.param({"expires_in": None}, None, id="null"),
        pytest.param({"token_type": "bearer"}, None, id="lowercase-bearer"),
    ],
)
def test_parse_lifetimes_and_token_types(fields: dict[str, Any], expires_in: float | None) -> None:
    fields = {"access_token": "tok-123", "token_type": "Bearer", **fields}
    token = parse(body(**fields))
    assert isinstance(token, Token)
    assert token.expires_in == expires_in
    assert token.token_type == "Bearer"


def test_missing_token_type_is_taken_as_bearer() -> None:
    token = parse(body(access_token="tok-123"))
    assert isinstance(token, Token)
    assert token.token_type == "Bearer"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        pytest.param(b"<html>login</html>", "not a JSON object", id="html"),
        pytest.param(b"access_token=x&token_type=bearer", "not a JSON object", id="form"),
        pytest.param(b"[1, 2]", "not a JSON object", id="array"),
        pytest.param(b"\xff\xfe", "not a JSON object", id="not-utf8"),
        pytest.param(b"", "not a JSON object", id="empty"),
        pytest.param(body(token_type="Bearer"), "Missing access token", id="no-access-token"),
        pytest.param(body(access_token="", token_type="Bearer"), "access_token", id="empty"),
        pytest.param(body(access_token=5, token_type="Bearer"), "access_token", id="int"),
        pytest.param(body(access_token="a b", token_type="Bearer"), "invalid char", id="space"),
        pytest.param(body(access_token="tok-123", token_type="mac"), "token_type", id="mac"),
        pytest.param(body(access_token="tok-123", token_type=1), "token_type", id="int-type"),
        pytest.param(
            body(access_token="tok-123", token_type="Bearer", expires_in=-1),
            "expires_in",
            id="negative-expiry",
        ),
        pytest.param(
            body(access_token="tok-123", token_type="Bearer", expires_in="soon"),
            "malformed",
            id="text-expiry",
        ),
        pytest.param(
            body(access_token="tok-123", token_type="Bearer", expires_in=True),
            "expires_in",
            id="bool-expiry",
        ),
        pytest.param(
            body(access_token="tok-123", token_type="Bearer", scope=5), "malformed", id="scope"
        ),
    ],
)
def test_malformed_responses_are_problems(raw: bytes, text: str) -> None:
    result = parse(raw)
    assert isinstance(result, TokenProblem)
    assert text in result.message
    assert result.error is None
    assert "tok-123" not in result.message


def test_an_error_in_a_200_response_is_a_refusal() -> None:
    result = parse(body(error="invalid_client", error_description="Bad client."))
    assert result == TokenProblem("token request refused", "invalid_client", "Bad client.")


def test_every_access_token_seen_is_registered_for_redaction() -> None:
    parse(body(access_token="tok-registered-1", token_type="mac"))
    assert "tok-registered-1" not in redact_text("leaked tok-registered-1 here")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            body(error="invalid_client", error_description="Client authentication failed."),
            TokenProblem(
                "token request refused", "invalid_client", "Client authentication failed."
            ),
            id="rfc",
        ),
        pytest.param(
            body(error="custom_thing"),
            TokenProblem("token request refused", "custom_thing", None),
            id="custom",
        ),
        pytest.param(
            body(error="invalid_request", error_description="line\r\nForged: log"),
            TokenProblem("token request refused", "invalid_request", "line Forged: log"),
            id="control-chars",
        ),
        pytest.param(body(access_token="x"), None, id="not-an-error"),
        pytest.param(b"<html>502</html>", None, id="html"),
        pytest.param(b'"error"', None, id="json-string"),
    ],
)
def test_parse_error_response(raw: bytes, expected: TokenProblem | None) -> None:
    assert parse_error_response(raw) == expected


def test_error_description_is_shortened_and_redacted() -> None:
    problem = parse_error_response(
        body(error="invalid_grant", error_description="bad client_secret=hunter2 " + "x" * 500)
    )
    assert problem is not None
    assert problem.error_description is not None
    assert "hunter2" not in problem.error_description
    assert len(problem.error_description) <= 200


@pytest.mark.parametrize("status_body_field", ["access_token", "refresh_token", "id_token"])
def test_tokens_in_an_error_body_are_registered_and_never_shown(status_body_field: str) -> None:
    token = f"echoed-{status_body_field}-0123456789"
    raw = body(
        error="invalid_request",
        error_description=f"we also issued {token} to you",
        **{status_body_field: token},
    )
    problem = parse_error_response(raw)
    assert problem is not None and problem.error == "invalid_request"
    assert problem.error_description is not None
    assert token not in problem.error_description
    assert token not in redact_text(f"OAuthError: {raw.decode()} and {token}")


def test_tokens_in_a_non_error_body_are_registered_too() -> None:
    token = "tok-in-an-odd-4xx-body-12345"
    assert parse_error_response(body(access_token=token, detail="odd")) is None
    assert token not in redact_text(f"token endpoint answered 400: {token}")


def test_refresh_and_id_tokens_of_a_token_response_are_registered() -> None:
    fields = {"refresh_token": "refresh-tok-abcdef123", "id_token": "eyJhbGciOi.id-tok.sig"}
    token = parse(body(access_token="tok-registered-2", token_type="Bearer", **fields))
    assert isinstance(token, Token)
    for value in fields.values():
        assert value not in redact_text(f"leaked {value} here")


@pytest.mark.parametrize(
    ("raw_expires_in", "expected"),
    [
        pytest.param("Infinity", MAX_LIFETIME, id="Infinity"),
        pytest.param("1e400", MAX_LIFETIME, id="1e400"),
        pytest.param("-Infinity", None, id="-Infinity"),
        pytest.param("NaN", None, id="NaN"),
        pytest.param("999999999999", MAX_LIFETIME, id="999999999999"),
        pytest.param("1" + "0" * 400, MAX_LIFETIME, id="huge-int"),
        pytest.param("-" + "9" * 400, None, id="huge-negative-int"),
        pytest.param("-1", None, id="-1"),
        pytest.param('"NaN"', None, id="str-NaN"),
        pytest.param('"Infinity"', None, id="str-Infinity"),
        pytest.param('"1e400"', MAX_LIFETIME, id="str-1e400"),
        pytest.param('"9' + "9" * 400 + '"', MAX_LIFETIME, id="str-huge"),
        pytest.param('"-1"', None, id="str-negative"),
        pytest.param('"1_000"', None, id="str-underscore"),
        pytest.param('" 60.5 "', 60.5, id="str-spaces"),
        pytest.param("315360000", MAX_LIFETIME, id="ten-years"),
        pytest.param("315359999", 315359999.0, id="just-under-ten-years"),
        pytest.param("[60]", None, id="list"),
        pytest.param("{}", None, id="object"),
        pytest.param("true", None, id="bool"),
    ],
)
def test_expires_in_never_overflows(raw_expires_in: str, expected: float | None) -> None:
    raw = (
        b'{"access_token": "tok-123", "token_type": "Bearer", "expires_in": '
        + raw_expires_in.encode()
        + b"}"
    )
    result = parse(raw)
    if expected is None:
        assert isinstance(result, TokenProblem)
        assert "expires_in" in result.message
    else:
        assert isinstance(result, Token)
        assert result.expires_in == expected
        assert result.refresh_at(60) is not None and result.expires_at is not None
        repr(result)


@pytest.mark.parametrize("expires_at", ["1e400", "Infinity", "NaN", "-1", '"soon"', "9" * 400])
def test_expires_at_is_never_handed_to_oauthlib(expires_at: str) -> None:
    raw = b'{"access_token": "tok-123", "expires_in": 60, "expires_at": ' + expires_at.encode()
    result = parse(raw + b"}")
    assert isinstance(result, Token) and result.expires_in == 60.0


@pytest.mark.parametrize("expires_in", ["1e400", "Infinity", "NaN", "-1", "9" * 400])
def test_error_responses_with_odd_lifetimes(expires_in: str) -> None:
    raw = b'{"error": "invalid_client", "expires_in": ' + expires_in.encode() + b"}"
    assert parse_error_response(raw) == TokenProblem("token request refused", "invalid_client")
    result = parse(raw)
    assert isinstance(result, TokenProblem) and result.error == "invalid_client"


# --- creation checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        pytest.param("127.0.0.1", True, id="127.0.0.1"),
        pytest.param("127.255.0.9", True, id="127/8"),
        pytest.param("::1", True, id="::1"),
        pytest.param("[::1]", True, id="[::1]"),
        pytest.param("::ffff:127.0.0.1", True, id="mapped"),
        pytest.param("localhost", True, id="localhost"),
        pytest.param("LocalHost", True, id="case"),
        pytest.param("128.0.0.1", False, id="128"),
        pytest.param("10.0.0.1", False, id="private"),
        pytest.param("0.0.0.0", False, id="any"),
        pytest.param("::", False, id="ipv6-any"),
        pytest.param("localhost.example.com", False, id="suffix"),
        pytest.param("127.0.0.1.nip.io", False, id="dns-trick"),
        pytest.param("example.com", False, id="name"),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_insecure_transport_env_var_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    with pytest.raises(ValueError, match="allow_insecure_http"):
        check_token_url("http://auth.example/token", False)
    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT")
    assert check_token_url("http://127.0.0.1:9/token", False) == httpx.URL(
        "http://127.0.0.1:9/token"
    )
    assert check_token_url("http://auth.example/token", True).host == "auth.example"


@pytest.mark.parametrize(
    ("url", "error"),
    [
        pytest.param("https://auth.example/token#frag", ValueError, id="fragment"),
        pytest.param("https://user:pw@auth.example/token", ValueError, id="userinfo"),
        pytest.param("/token", ValueError, id="relative"),
        pytest.param("https://", ValueError, id="no-host"),
        pytest.param(b"https://auth.example/token", TypeError, id="bytes"),
        pytest.param(None, TypeError, id="none"),
    ],
)
def test_check_token_url_rejects(url: Any, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        check_token_url(url, True)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param("read write", "read write", id="string"),
        pytest.param("  read   write ", "read write", id="spaces"),
        pytest.param(["read", "write"], "read write", id="list"),
        pytest.param(("a", "b", "a"), "a b", id="duplicates"),
        pytest.param(iter(["a"]), "a", id="iterator"),
        pytest.param("", None, id="empty"),
        pytest.param([], None, id="empty-list"),
        pytest.param(["api://x/.default"], "api://x/.default", id="uri"),
    ],
)
def test_parse_scope(scope: Any, expected: str | None) -> None:
    assert parse_scope(scope) == expected


@pytest.mark.parametrize(
    ("scope", "error"),
    [
        pytest.param(b"read", TypeError, id="bytes"),
        pytest.param(3, TypeError, id="int"),
        pytest.param(["a", None], TypeError, id="item"),
        pytest.param(['a"b'], ValueError, id="quote"),
        pytest.param(["a\\b"], ValueError, id="backslash"),
        pytest.param(["é"], ValueError, id="non-ascii"),
        pytest.param([""], ValueError, id="empty-item"),
    ],
)
def test_parse_scope_rejects(scope: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_scope(scope)


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [
        pytest.param("id", "secret", id="plain"),
        pytest.param("my id", "p@ss:w+rd/=%", id="special"),
        pytest.param("ünï", "sécrét", id="unicode"),
    ],
)
def test_basic_authorization_urlencodes_before_base64(client_id: str, secret: str) -> None:
    header = basic_authorization(client_id, secret)
    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic"
    raw_id, _, raw_secret = base64.b64decode(encoded).decode("ascii").partition(":")
    assert (unquote_plus(raw_id), unquote_plus(raw_secret)) == (client_id, secret)
    assert ":" not in raw_secret and " " not in raw_id


@pytest.mark.parametrize(
    ("requested", "granted", "changed"),
    [
        pytest.param(None, "a", False, id="none-requested"),
        pytest.param("a b", "b a", False, id="reordered"),
        pytest.param("a b", "a", True, id="narrowed"),
        pytest.param("a", "a b", True, id="widened"),
        pytest.param("a", None, True, id="none-granted"),
    ],
)
def test_scope_changed(requested: str | None, granted: str | None, changed: bool) -> None:
    assert scope_changed(requested, granted) is changed


def test_basic_authorization_known_value() -> None:
    assert basic_authorization("a b", "c:d") == "Basic " + base64.b64encode(b"a+b:c%3Ad").decode()


def config(**options: Any) -> OAuthConfig:
    base: dict[str, Any] = {
        "client_id": "id",
        "client_secret": "s3cret-value",
        "authorize_url": "https://auth.example/token",
    }
    return OAuthConfig.create(**{**base, **options})


def test_config_basic_request() -> None:
    cfg = config(scope=["a", "b"], audience="https://api", extra_params={"resource": "r"})
    assert dict(parse_qsl(cfg.body.decode())) == {
        "grant_type": "client_credentials",
        "scope": "a b",
        "audience": "https://api",
        "resource": "r",
    }
    headers = dict(cfg.headers)
    assert headers["Authorization"] == basic_authorization("id", "s3cret-value")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert headers["Accept"] == "application/json"


def test_config_post_request() -> None:
    cfg = config(auth_method="client_secret_post")
    assert dict(parse_qsl(cfg.body.decode())) == {
        "grant_type": "client_credentials",
        "client_id": "id",
        "client_secret": "s3cret-value",
    }
    assert "Authorization" not in dict(cfg.headers)


def test_config_repr_hides_the_secret_and_registers_it() -> None:
    cfg = config(client_secret="another-s3cret")
    basic = basic_authorization("id", "another-s3cret").split()[1]
    for text in (repr(cfg), str(cfg)):
        assert "another-s3cret" not in text
        assert basic not in text
    assert "another-s3cret" not in redact_text("oops another-s3cret")
    assert basic not in redact_text(f"oops {basic}")


def test_store_key_depends_on_the_settings_not_the_secret() -> None:
    key = config().store_key
    assert key == config(client_secret="other-secret").store_key
    assert key != config(scope="x").store_key
    assert key != config(audience="x").store_key
    assert key != config(client_id="other").store_key
    assert key != config(authorize_url="https://other.example/token").store_key
    assert key != config(extra_params={"a": "b"}).store_key
    assert "s3cret" not in key


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"client_id": ""}, ValueError, id="empty-id"),
        pytest.param({"client_id": None}, TypeError, id="none-id"),
        pytest.param({"client_id": "a\nb"}, ValueError, id="newline-id"),
        pytest.param({"client_secret": ""}, ValueError, id="empty-secret"),
        pytest.param({"client_secret": b"x"}, TypeError, id="bytes-secret"),
        pytest.param({"audience": ""}, ValueError, id="empty-audience"),
        pytest.param({"extra_params": {"scope": "x"}}, ValueError, id="reserved-scope"),
        pytest.param({"extra_params": {"client_secret": "x"}}, ValueError, id="reserved"),
        pytest.param({"extra_params": {"a": ""}}, ValueError, id="empty-extra"),
        pytest.param({"extra_params": {1: "a"}}, TypeError, id="extra-name"),
        pytest.param({"auth_method": "basic"}, ValueError, id="auth-method"),
        pytest.param({"refresh_margin": float("nan")}, ValueError, id="nan-margin"),
        pytest.param({"refresh_margin": True}, TypeError, id="bool-margin"),
        pytest.param({"allow_insecure_http": 1}, TypeError, id="insecure-int"),
        pytest.param({"authorize_url": "http://auth.example/t"}, ValueError, id="http"),
    ],
)
def test_config_rejects(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        config(**options)
    assert "s3cret-value" not in str(info.value)


def test_error_messages_never_show_the_secret() -> None:
    with pytest.raises(ValueError) as info:
        config(client_secret="bad\x00secret")
    assert "bad" not in str(info.value)
