"""OAuthHTTPAio against a real oauthlib token endpoint (generated into tests/_sync)."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from cf._synchronization import async_sleep
from cf.infrastructure.http_aio import (
    AsyncInMemoryTokenStore,
    HTTPAioStatusError,
    HTTPAioTimeoutError,
    HTTPAioTransportError,
    OAuthError,
    OAuthHTTPAio,
    Token,
)
from cf.infrastructure.tracer import TraceInfo
from tests.helpers import Sleeps, run_concurrently
from tests.servers.app import AppServer
from tests.servers.oauth import SERVER_THREAD_NAME, OAuthServer

FAST = {"backoff_base": 0.001, "backoff_max": 0.002}
SECRET = "s3cr3t-Value:with&odd=chars"


class FakeClock:
    """An injected monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def oauth(oauth_server: OAuthServer, **options: Any) -> OAuthHTTPAio:
    options.setdefault("client_id", "id")
    options.setdefault("client_secret", "secret")
    options.setdefault("sleep", Sleeps())
    return OAuthHTTPAio.create(authorize_url=oauth_server.token_url, **options)


async def wait_for_issued(oauth_server: OAuthServer, count: int) -> None:
    """Wait until the server has issued `count` tokens (it answers late requests late)."""
    for _ in range(300):
        if len(oauth_server.issued_tokens) >= count:
            return
        await async_sleep(0.01)
    pytest.fail(f"the server issued {len(oauth_server.issued_tokens)} tokens, not {count}")


def bearer(oauth_server: OAuthServer, index: int = -1) -> str:
    return oauth_server.api_request_log[index].header("authorization") or ""


# --- the token request -------------------------------------------------------------------


async def test_seed_pool_example(oauth_server: OAuthServer) -> None:
    pool = OAuthHTTPAio.create_pool(
        10, client_id="id", client_secret="secret", authorize_url=oauth_server.token_url
    )
    assert oauth_server.token_requests == 0  # creating does no I/O
    async with pool.item() as client:
        for _ in range(3):
            response = await client.get(oauth_server.api_url)
            assert response.status_code == 200
    await pool.aclose()
    assert oauth_server.token_requests == 1
    assert oauth_server.api_statuses == [200, 200, 200]
    assert bearer(oauth_server) == f"Bearer {oauth_server.current_token}"


async def test_client_secret_basic_urlencodes_before_base64(oauth_server: OAuthServer) -> None:
    oauth_server.client_id = "my id:é"
    oauth_server.client_secret = SECRET
    async with oauth(oauth_server, client_id="my id:é", client_secret=SECRET) as client:
        assert (await client.get(oauth_server.api_url)).status_code == 200
    (request,) = oauth_server.token_request_log
    assert request.auth_method == "client_secret_basic"
    pair = f"{quote_plus('my id:é')}:{quote_plus(SECRET)}"
    assert request.authorization == "Basic " + base64.b64encode(pair.encode()).decode()
    assert request.form == {"grant_type": "client_credentials"}


async def test_client_secret_post(oauth_server: OAuthServer) -> None:
    oauth_server.client_secret = SECRET
    async with oauth(
        oauth_server, client_secret=SECRET, auth_method="client_secret_post"
    ) as client:
        assert (await client.get(oauth_server.api_url)).status_code == 200
    (request,) = oauth_server.token_request_log
    assert request.auth_method == "client_secret_post"
    assert request.authorization is None
    assert request.form == {
        "grant_type": "client_credentials",
        "client_id": "id",
        "client_secret": SECRET,
    }


async def test_every_fetch_sends_every_parameter(oauth_server: OAuthServer) -> None:
    async with oauth(
        oauth_server,
        scope=["read", "write"],
        audience="https://api.example",
        extra_params={"resource": "r1"},
    ) as client:
        await client.get(oauth_server.api_url)
        oauth_server.revoke_current()
        await client.get(oauth_server.api_url)
    assert oauth_server.token_requests == 2
    for request in oauth_server.token_request_log:
        assert request.grant_type == "client_credentials"
        assert request.scope == "read write"
        assert request.audience == "https://api.example"
        assert request.form["resource"] == "r1"


async def test_granted_scope_is_exposed_not_raised(
    oauth_server: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    oauth_server.grant_scope = "read"
    async with oauth(oauth_server, scope="read write") as client:
        with caplog.at_level(logging.WARNING, logger="cf.infrastructure.http_aio"):
            token = await client.token()
        assert (await client.get(oauth_server.api_url)).status_code == 200
    assert token.scope == "read"
    assert client.scope == "read write"
    assert any("granted scope" in r.getMessage() for r in caplog.records)


async def test_token_value_hides_the_token(oauth_server: OAuthServer) -> None:
    async with oauth(oauth_server, scope="read") as client:
        token = await client.token()
    assert isinstance(token, Token)
    assert token.access_token == oauth_server.current_token
    assert token.scope == "read"
    assert token.expires_in == 3600
    for text in (repr(token), str(token), repr(client)):
        assert token.access_token not in text


# --- lifetime ------------------------------------------------------------------------------


async def test_refresh_before_use_with_an_injected_clock(oauth_server: OAuthServer) -> None:
    # A 3 s token under 10 s of steady calls: renewed when half its lifetime is left
    # (refresh_margin 60 s is capped at lifetime / 2), so at 0, 1.5, 3, ..., 9 s.
    oauth_server.expires_in = 3
    clock = FakeClock()
    async with oauth(oauth_server, clock=clock) as client:
        for _ in range(40):
            assert (await client.get(oauth_server.api_url)).status_code == 200
            clock.advance(0.25)
    assert oauth_server.token_requests == 7
    assert 401 not in oauth_server.api_statuses


async def test_short_real_lifetime_never_reaches_the_api_expired(
    oauth_server: OAuthServer,
) -> None:
    oauth_server.expires_in = 1  # renewed every 0.5 s
    async with oauth(oauth_server) as client:
        end = time.monotonic() + 2.2
        while time.monotonic() < end:
            assert (await client.get(oauth_server.api_url)).status_code == 200
    assert 401 not in oauth_server.api_statuses
    assert 3 <= oauth_server.token_requests <= 7


async def test_refresh_margin_is_honoured(oauth_server: OAuthServer) -> None:
    clock = FakeClock()
    async with oauth(oauth_server, clock=clock, refresh_margin=10) as client:
        await client.get(oauth_server.api_url)
        clock.advance(3600 - 10 - 0.01)
        await client.get(oauth_server.api_url)
        assert oauth_server.token_requests == 1
        clock.advance(0.02)
        await client.get(oauth_server.api_url)
        assert oauth_server.token_requests == 2


async def test_without_expires_in_the_token_is_used_until_a_401(
    oauth_server: OAuthServer,
) -> None:
    oauth_server.expires_in = None
    clock = FakeClock()
    async with oauth(oauth_server, clock=clock) as client:
        token = await client.token()
        assert token.expires_at is None
        clock.advance(10**7)
        assert (await client.get(oauth_server.api_url)).status_code == 200
        assert oauth_server.token_requests == 1
        oauth_server.revoke_current()
        assert (await client.get(oauth_server.api_url)).status_code == 200
        assert oauth_server.token_requests == 2


async def test_failed_early_refresh_keeps_the_valid_token(
    oauth_server: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    oauth_server.expires_in = 100  # renewed from 50 s on
    clock = FakeClock()
    async with oauth(oauth_server, clock=clock, retries=1, **FAST) as client:
        await client.get(oauth_server.api_url)
        first = oauth_server.current_token
        oauth_server.mode = "html_502"
        clock.advance(60)
        with caplog.at_level(logging.WARNING, logger="cf.infrastructure.http_aio"):
            assert (await client.get(oauth_server.api_url)).status_code == 200
        assert oauth_server.token_requests == 1 + 2
        assert bearer(oauth_server) == f"Bearer {first}"
        assert any("early token refresh failed" in r.getMessage() for r in caplog.records)
        # It does not try again on every call ...
        await client.get(oauth_server.api_url)
        assert oauth_server.token_requests == 3
        # ... but after a pause, and once the token has expired a failure is raised.
        clock.advance(15)
        await client.get(oauth_server.api_url)
        assert oauth_server.token_requests == 5
        clock.advance(30)
        with pytest.raises(OAuthError) as info:
            await client.get(oauth_server.api_url)
        assert info.value.status == 502
        oauth_server.mode = "ok"
        assert (await client.get(oauth_server.api_url)).status_code == 200


# --- 401 -----------------------------------------------------------------------------------


async def test_revoked_token_one_new_token_one_replay(oauth_server: OAuthServer) -> None:
    async with oauth(oauth_server) as client:
        await client.get(oauth_server.api_url)
        old = oauth_server.current_token
        oauth_server.revoke_current()
        response = await client.post(oauth_server.api_url, json={"a": 1})
        assert response.status_code == 200
        assert response.json()["body"] == '{"a":1}'
    assert oauth_server.token_requests == 2
    assert oauth_server.api_statuses == [200, 401, 200]
    assert bearer(oauth_server, 1) == f"Bearer {old}"
    assert bearer(oauth_server, 2) == f"Bearer {oauth_server.current_token}"


async def test_rejected_every_time_is_returned_after_one_replay(
    oauth_server: OAuthServer,
) -> None:
    oauth_server.reject_all_tokens = True
    async with oauth(oauth_server, retries=5) as client:
        response = await client.get(oauth_server.api_url)
    assert response.status_code == 401
    assert oauth_server.api_requests == 2
    assert oauth_server.token_requests == 2


async def test_rejected_every_time_raises_when_401_is_a_failure_status(
    oauth_server: OAuthServer,
) -> None:
    oauth_server.reject_all_tokens = True
    trace = TraceInfo.create_new()
    async with oauth(oauth_server, retries=5, failure_statuses=[401, 503], **FAST) as client:
        with pytest.raises(HTTPAioStatusError) as info:
            await client.get(oauth_server.api_url, trace=trace)
    assert info.value.status == 401
    assert info.value.attempts == 2  # the first try and its one replay
    assert oauth_server.api_requests == 2
    assert oauth_server.token_requests == 2
    parents = [r.header("traceparent") or "" for r in oauth_server.api_request_log]
    assert {p.split("-")[1] for p in parents} == {trace.trace_id}
    assert len({p.split("-")[2] for p in parents}) == 2  # the replay has its own parent id


async def test_non_replayable_body_is_not_replayed(oauth_server: OAuthServer) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"once"

    async with oauth(oauth_server) as client:
        await client.get(oauth_server.api_url)
        oauth_server.revoke_current()
        response = await client.post(oauth_server.api_url, content=body())
        assert response.status_code == 401
        assert oauth_server.api_requests == 2
        # The rejected token was dropped: the next call fetches a new one.
        assert (await client.get(oauth_server.api_url)).status_code == 200
    assert oauth_server.token_requests == 2


# --- token endpoint failures -------------------------------------------------------------


async def test_invalid_client_raises_after_one_call(oauth_server: OAuthServer) -> None:
    oauth_server.mode = "invalid_client"
    async with oauth(oauth_server, failure_statuses=[400, 401, 503]) as client:
        with pytest.raises(OAuthError) as info:
            await client.get(oauth_server.api_url)
    error = info.value
    assert oauth_server.token_requests == 1
    assert oauth_server.api_requests == 0
    assert error.error == "invalid_client"
    assert error.status == 401
    assert error.attempts == 1
    assert error.method == "POST"
    assert error.url == oauth_server.token_url
    assert "invalid_client" in str(error)


async def test_invalid_scope_raises_at_once(oauth_server: OAuthServer) -> None:
    oauth_server.mode = "invalid_scope"
    async with oauth(oauth_server, scope="admin") as client:
        with pytest.raises(OAuthError) as info:
            await client.get(oauth_server.api_url)
    assert info.value.error == "invalid_scope"
    assert info.value.status == 400
    assert oauth_server.token_requests == 1


async def test_transient_503_is_retried(oauth_server: OAuthServer) -> None:
    oauth_server.fail_first = 2
    sleeps = Sleeps()
    async with oauth(oauth_server, sleep=sleeps) as client:
        assert (await client.get(oauth_server.api_url)).status_code == 200
    assert oauth_server.token_requests == 3
    assert len(sleeps) == 2


async def test_retry_after_on_the_token_endpoint_is_honoured(oauth_server: OAuthServer) -> None:
    oauth_server.fail_first = 1
    oauth_server.fail_status = 429
    oauth_server.fail_retry_after = "7"
    sleeps = Sleeps()
    async with oauth(oauth_server, sleep=sleeps) as client:
        assert (await client.get(oauth_server.api_url)).status_code == 200
    assert sleeps == [7.0]


@pytest.mark.parametrize(
    ("mode", "status", "error", "calls"),
    [
        pytest.param("temporarily_unavailable", 503, "temporarily_unavailable", 3, id="503-rfc"),
        pytest.param("html_502", 502, None, 3, id="html-502"),
        pytest.param("not_json", 200, None, 1, id="not-json"),
        pytest.param("no_access_token", 200, None, 1, id="no-access-token"),
        pytest.param("wrong_token_type", 200, None, 1, id="wrong-token-type"),
    ],
)
async def test_unusable_token_responses_raise_oauth_error(
    oauth_server: OAuthServer, mode: Any, status: int, error: str | None, calls: int
) -> None:
    oauth_server.mode = mode
    async with oauth(oauth_server) as client:
        with pytest.raises(OAuthError) as info:
            await client.get(oauth_server.api_url)
    assert oauth_server.token_requests == calls
    assert oauth_server.api_requests == 0
    assert info.value.status == status
    assert info.value.error == error
    assert info.value.attempts == calls
    if calls > 1:
        assert isinstance(info.value.__cause__, HTTPAioStatusError)


async def test_token_endpoint_timeout_is_retried_then_raised(oauth_server: OAuthServer) -> None:
    oauth_server.latency = 1.0
    async with oauth(oauth_server, timeout=0.1, retries=1) as client:
        with pytest.raises(OAuthError) as info:
            await client.get(oauth_server.api_url)
    assert isinstance(info.value.__cause__, HTTPAioTimeoutError)
    assert info.value.attempts == 2
    assert oauth_server.token_requests == 2
    await wait_for_issued(oauth_server, 2)  # no late token in the next test


async def test_token_endpoint_refusing_connections(refused_url: str) -> None:
    async with OAuthHTTPAio.create(
        client_id="id",
        client_secret="secret",
        authorize_url=f"{refused_url}/token",
        retries=1,
        sleep=Sleeps(),
    ) as client:
        with pytest.raises(OAuthError) as info:
            await client.get(f"{refused_url}/api")
    assert isinstance(info.value.__cause__, HTTPAioTransportError)
    assert info.value.attempts == 2


async def test_waiting_for_a_token_respects_the_deadline(oauth_server: OAuthServer) -> None:
    oauth_server.latency = 0.5
    async with oauth(oauth_server) as client:
        with pytest.raises(HTTPAioTimeoutError):
            await client.get(oauth_server.api_url, deadline=0.3)
    assert oauth_server.api_requests == 0
    await wait_for_issued(oauth_server, 1)


# --- security ------------------------------------------------------------------------------


def _leaks(texts: list[str], secrets: list[str]) -> list[tuple[str, str]]:
    return [(secret, text) for text in texts for secret in secrets if secret in text]


def _record_texts(records: list[logging.LogRecord]) -> list[str]:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    texts = []
    for record in records:
        if record.threadName == SERVER_THREAD_NAME:
            continue  # the test server's own records (oauthlib logs the tokens it issues)
        texts.append(formatter.format(record))
        texts.extend(repr(v) for k, v in vars(record).items() if k not in ("msg", "args"))
    return texts


async def test_no_secret_or_token_in_logs_reprs_or_errors(
    oauth_server: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    oauth_server.client_secret = SECRET
    texts: list[str] = []
    caplog.set_level(logging.DEBUG)
    options: dict[str, Any] = {"client_secret": SECRET, "retries": 1, **FAST}
    for method in ("client_secret_basic", "client_secret_post"):
        async with oauth(oauth_server, auth_method=method, **options) as client:
            texts += [repr(client), str(client)]
            oauth_server.mode = "ok"
            await client.get(oauth_server.api_url)
            texts.append(repr(await client.token()))
            oauth_server.revoke((await client.token()).access_token)
            await client.get(oauth_server.api_url)  # 401, new token, replay
            oauth_server.reject_all_tokens = True
            await client.get(oauth_server.api_url)
            with pytest.raises(HTTPAioStatusError) as status_error:
                await client.get(oauth_server.api_url, failure_statuses=[401])
            texts += [str(status_error.value), repr(status_error.value)]
            oauth_server.reject_all_tokens = False
            oauth_server.revoke((await client.token()).access_token)
            for mode in (
                "invalid_client",
                "temporarily_unavailable",
                "html_502",
                "not_json",
                "no_access_token",
                "wrong_token_type",
            ):
                oauth_server.mode = mode
                with pytest.raises(OAuthError) as info:
                    await client.get(oauth_server.api_url)
                cause = info.value.__cause__
                texts += [str(info.value), repr(info.value), str(cause), repr(cause)]
                logging.getLogger("cf.infrastructure.http_aio").error(
                    "failed: %s", info.value, exc_info=info.value
                )
    oauth_server.mode = "ok"
    oauth_server.latency = 0.5
    issued = len(oauth_server.issued_tokens)
    for method in ("client_secret_basic", "client_secret_post"):
        async with oauth(oauth_server, auth_method=method, timeout=0.05, **options) as client:
            with pytest.raises(OAuthError) as timeout:
                await client.get(oauth_server.api_url)
        texts += [str(timeout.value), repr(timeout.value), str(timeout.value.__cause__)]
    await wait_for_issued(oauth_server, issued + 4)  # answered late, after the client gave up
    pool = OAuthHTTPAio.create_pool(
        2, **{**options, "authorize_url": oauth_server.token_url, "client_id": "id"}
    )
    texts += [repr(pool), str(pool)]
    await pool.aclose()
    texts += _record_texts(caplog.records)
    basic = base64.b64encode(f"id:{quote_plus(SECRET)}".encode()).decode()
    secrets = [SECRET, quote_plus(SECRET), basic, *oauth_server.issued_tokens]
    assert len(oauth_server.issued_tokens) >= 4
    assert any("token request" in text for text in texts)  # something was logged
    assert _leaks(texts, secrets) == []


async def test_bearer_is_not_sent_across_origins_on_redirect(
    oauth_server: OAuthServer, server: AppServer
) -> None:
    async with oauth(oauth_server, follow_redirects=True) as client:
        same = await client.get(f"{server.url}/redirect", params={"to": f"{server.url}/echo"})
        headers = dict((k.lower(), v) for k, v in same.json()["headers"])
        assert headers["authorization"] == f"Bearer {oauth_server.current_token}"
        # server -> oauth_server: another port, another origin.
        other = await client.get(
            f"{server.url}/redirect", params={"to": f"{oauth_server.api_url}/x"}
        )
        assert other.status_code == 401  # the API saw no token
    assert oauth_server.api_requests >= 1
    for request in oauth_server.api_request_log:
        assert request.header("authorization") is None
    for request in server.requests("/redirect"):
        assert (request.header("authorization") or "").startswith("Bearer ")


# --- creation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        pytest.param("https://auth.example/token", True, id="https"),
        pytest.param("http://127.0.0.1:1/token", True, id="127.0.0.1"),
        pytest.param("http://127.9.8.7/token", True, id="127/8"),
        pytest.param("http://[::1]:8080/token", True, id="::1"),
        pytest.param("http://localhost/token", True, id="localhost"),
        pytest.param("http://LOCALHOST/token", True, id="LOCALHOST"),
        pytest.param("http://auth.example/token", False, id="remote"),
        pytest.param("http://10.0.0.1/token", False, id="private-ip"),
        pytest.param("http://localhost.example/token", False, id="localhost-prefix"),
        pytest.param("http://128.0.0.1/token", False, id="128"),
    ],
)
async def test_plain_http_only_on_loopback(url: str, allowed: bool) -> None:
    options: dict[str, Any] = {"client_id": "id", "client_secret": "secret", "authorize_url": url}
    if allowed:
        await OAuthHTTPAio.create(**options).aclose()
    else:
        with pytest.raises(ValueError, match="allow_insecure_http"):
            OAuthHTTPAio.create(**options)
        await OAuthHTTPAio.create(**options, allow_insecure_http=True).aclose()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"client_id": ""}, ValueError, id="empty-id"),
        pytest.param({"client_id": 1}, TypeError, id="id-type"),
        pytest.param({"client_secret": None}, TypeError, id="secret-none"),
        pytest.param({"client_secret": ""}, ValueError, id="secret-empty"),
        pytest.param({"authorize_url": "not a url"}, ValueError, id="bad-url"),
        pytest.param({"authorize_url": "ftp://127.0.0.1/t"}, ValueError, id="scheme"),
        pytest.param({"authorize_url": "https://a:b@x/t"}, ValueError, id="userinfo"),
        pytest.param({"scope": 3}, TypeError, id="scope-type"),
        pytest.param({"scope": ["a", 3]}, TypeError, id="scope-item-type"),
        pytest.param({"scope": ['a"b']}, ValueError, id="scope-char"),
        pytest.param({"audience": 5}, TypeError, id="audience-type"),
        pytest.param({"extra_params": {"grant_type": "x"}}, ValueError, id="reserved"),
        pytest.param({"extra_params": {"a": 1}}, TypeError, id="extra-type"),
        pytest.param({"extra_params": [("a", "b")]}, TypeError, id="extra-mapping"),
        pytest.param({"auth_method": "private_key_jwt"}, ValueError, id="auth-method"),
        pytest.param({"refresh_margin": -1}, ValueError, id="margin"),
        pytest.param({"refresh_margin": "60"}, TypeError, id="margin-type"),
        pytest.param({"token_store": object()}, TypeError, id="store"),
        pytest.param({"allow_insecure_http": "yes"}, TypeError, id="insecure-type"),
        pytest.param({"retries": -1}, ValueError, id="client-option"),
        pytest.param({"bogus": 1}, TypeError, id="unknown-option"),
    ],
)
async def test_bad_arguments_raise_at_creation(options: dict[str, Any], error: type) -> None:
    base: dict[str, Any] = {
        "client_id": "id",
        "client_secret": "secret",
        "authorize_url": "https://auth.example/token",
    }
    with pytest.raises(error):
        OAuthHTTPAio.create(**{**base, **options})
    with pytest.raises(error):
        OAuthHTTPAio.create_pool(2, **{**base, **options})


async def test_shared_token_store(oauth_server: OAuthServer) -> None:
    store = AsyncInMemoryTokenStore()
    async with oauth(oauth_server, token_store=store) as one:
        async with oauth(oauth_server, token_store=store) as two:
            await one.get(oauth_server.api_url)
            await two.get(oauth_server.api_url)
        async with oauth(oauth_server, token_store=store, scope="other") as three:
            await three.get(oauth_server.api_url)  # other settings, other key
    assert oauth_server.token_requests == 2


async def test_a_custom_token_store(oauth_server: OAuthServer) -> None:
    class Store(AsyncInMemoryTokenStore):
        def __init__(self) -> None:
            super().__init__()
            self.sets: list[Token | None] = []

        async def set(self, key: str, token: Token | None) -> None:
            self.sets.append(token)
            await super().set(key, token)

    store = Store()
    async with oauth(oauth_server, token_store=store) as client:
        await client.get(oauth_server.api_url)
        oauth_server.revoke_current()
        await client.get(oauth_server.api_url)
    assert [t is None for t in store.sets] == [False, True, False]


async def test_concurrent_first_calls_share_one_token(oauth_server: OAuthServer) -> None:
    oauth_server.latency = 0.2
    async with oauth(oauth_server) as client:

        async def call() -> int:
            return (await client.get(oauth_server.api_url)).status_code

        results = await run_concurrently(*[call] * 20)
    assert results == [200] * 20
    assert oauth_server.token_requests == 1


async def test_concurrent_callers_share_the_error(oauth_server: OAuthServer) -> None:
    oauth_server.mode = "invalid_client"
    oauth_server.latency = 0.5  # every caller is waiting before the error comes back
    async with oauth(oauth_server) as client:

        async def call() -> httpx.Response:
            return await client.get(oauth_server.api_url)

        results = await run_concurrently(*[call] * 20)
    assert all(isinstance(r, OAuthError) and r.error == "invalid_client" for r in results)
    assert oauth_server.token_requests == 1


@pytest.mark.parametrize("lifetime", ["Infinity", "1e400", "999999999999", "1" + "0" * 400])
async def test_an_overflowing_lifetime_is_a_very_long_one(
    oauth_server: OAuthServer, lifetime: str
) -> None:
    oauth_server.mode = "raw"
    oauth_server.raw_body = (
        b'{"access_token": "tok-long-1", "token_type": "Bearer", "expires_in": '
        + lifetime.encode()
        + b"}"
    )
    async with oauth(oauth_server) as client:
        assert (await client.get(oauth_server.api_url)).status_code == 200
        token = await client.token()
    assert token.expires_in is not None and token.expires_in >= 365 * 24 * 3600
    assert oauth_server.token_requests == 1


@pytest.mark.parametrize("status", [400, 401, 403, 500])
async def test_a_token_in_an_error_body_never_shows(oauth_server: OAuthServer, status: int) -> None:
    oauth_server.mode = "raw"
    oauth_server.raw_status = status
    oauth_server.raw_body = (
        b'{"error": "invalid_request", "error_description": "echo leaked-tok-77 sk-9",'
        b' "access_token": "leaked-tok-77", "refresh_token": "sk-9"}'
    )
    async with oauth(oauth_server, retries=0) as client:
        with pytest.raises(OAuthError) as info:
            await client.get(oauth_server.api_url)
    texts = [str(info.value), repr(info.value), info.value.error_description or ""]
    assert all("leaked-tok-77" not in t and "sk-9" not in t for t in texts), texts
