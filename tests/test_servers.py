"""The test servers behave as documented (checked with plain httpx, sync and async)."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from urllib.parse import quote_plus

import httpx
import pytest
from oauthlib.oauth2 import BackendApplicationClient

from tests.servers.app import AppServer
from tests.servers.oauth import OAuthServer
from tests.servers.raw import RawServer

SHORT = httpx.Timeout(5.0, read=0.2)


# -- server (ASGI app under uvicorn) ----------------------------------------------------


def test_echo_records_the_request(server: AppServer) -> None:
    before = time.monotonic()
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/echo?a=1", content=b"hello", headers={"X-Test": "yes"})
    assert response.status_code == 200
    data = response.json()
    assert (data["method"], data["path"], data["query"], data["body"]) == (
        "POST",
        "/echo",
        "a=1",
        "hello",
    )
    assert ["x-test", "yes"] in data["headers"]
    assert server.hits("/echo") == 1
    (seen,) = server.requests("/echo")
    assert (seen.method, seen.path, seen.query, seen.body) == ("POST", "/echo", "a=1", b"hello")
    assert seen.header("X-TEST") == "yes"
    assert before <= seen.time <= time.monotonic()


def test_key_parameter_and_reset(server: AppServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        client.get("/echo", params={"key": "k1"})
        client.get("/status/204", params={"key": "k1"})
    assert server.hits("k1") == 2
    assert server.hits("/echo") == 0
    server.reset()
    assert server.hits("k1") == 0 and server.requests("k1") == []


def test_status_and_retry_after(server: AppServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/status/429", params={"retry_after": "2"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "2"
        assert client.get("/status/204").status_code == 204
        assert "retry-after" not in client.get("/status/500").headers
        assert client.get("/nowhere").status_code == 404


async def test_fail_then_succeed(server: AppServer) -> None:
    url = f"{server.url}/fail/2"
    async with httpx.AsyncClient() as client:
        first = await client.get(url, params={"key": "f", "status": "500", "retry_after": "0"})
        second = await client.get(url, params={"key": "f", "status": "500"})
        third = await client.get(url, params={"key": "f"})
    assert [first.status_code, second.status_code, third.status_code] == [500, 500, 200]
    assert first.headers["retry-after"] == "0"
    assert third.json() == {"hits": 3}
    assert server.hits("f") == 3


async def test_stall_times_out_without_blocking_others(server: AppServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        timeout = httpx.Timeout(5.0, read=0.5)
        stalled = asyncio.create_task(client.get("/stall", timeout=timeout))
        await asyncio.sleep(0.05)
        assert (await client.get("/echo")).status_code == 200
        assert not stalled.done()  # the stall does not hold up other requests
        with pytest.raises(httpx.ReadTimeout):
            await stalled
        done = await client.get("/stall", params={"seconds": "0.05"})
    assert done.json() == {"stalled": 0.05}
    assert server.hits("/stall") == 2


def test_slow_body_times_out_after_the_headers(server: AppServer) -> None:
    with httpx.Client(base_url=server.url, timeout=SHORT) as client:
        with client.stream("GET", "/slow-body", params={"seconds": "5"}) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == "9"
            with pytest.raises(httpx.ReadTimeout):
                response.read()
        assert client.get("/slow-body", params={"seconds": "0.05"}).content == b"slow body"


def test_bytes_with_length_and_chunked(server: AppServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        sized = client.get("/bytes", params={"n": 200_000})
        assert sized.headers["content-length"] == "200000"
        assert sized.content == b"x" * 200_000
        chunked = client.get("/bytes", params={"n": 70_000, "chunked": 1})
        assert "content-length" not in chunked.headers
        assert chunked.headers["transfer-encoding"] == "chunked"
        assert len(chunked.content) == 70_000
        assert client.get("/bytes", params={"n": 0}).content == b""


async def test_bytes_gigabyte_is_streamed(server: AppServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        async with client.stream("GET", "/bytes", params={"n": 1 << 30}) as response:
            assert response.headers["content-length"] == str(1 << 30)
            received = 0
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received >= 1 << 20:
                    break
    assert received >= 1 << 20
    # The server noticed the disconnect and serves the next request normally.
    async with httpx.AsyncClient(base_url=server.url) as client:
        assert (await client.get("/echo")).status_code == 200


def test_redirect(server: AppServer) -> None:
    target = f"{server.url}/echo"
    with httpx.Client(base_url=server.url) as client:
        response = client.get("/redirect", params={"to": target})
        assert response.status_code == 302
        assert response.headers["location"] == target
        assert client.get("/redirect", params={"to": target, "status": 307}).status_code == 307
        followed = client.get("/redirect", params={"to": target}, follow_redirects=True)
    assert followed.json()["path"] == "/echo"


def test_huge_headers(server: AppServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert len(client.get("/huge-headers", params={"size": 8000}).headers["x-huge"]) == 8000
        with pytest.raises(httpx.RemoteProtocolError):  # over h11's 100 KiB limit
            client.get("/huge-headers", params={"size": 200_000})


def test_drain_counts_without_keeping(server: AppServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/drain", content=iter([b"a" * 100_000] * 5))
    assert response.json() == {"received": 500_000}
    assert server.requests("/drain")[0].body == b""


# -- raw_server (plain asyncio faults) --------------------------------------------------


@pytest.mark.parametrize(
    ("path", "errors"),
    [
        pytest.param(
            "/reset-before-response", (httpx.ReadError, httpx.RemoteProtocolError), id="rst"
        ),
        pytest.param("/close-before-response", (httpx.RemoteProtocolError,), id="fin"),
        pytest.param("/garbage", (httpx.RemoteProtocolError,), id="garbage"),
        pytest.param("/stall", (httpx.ReadTimeout,), id="stall"),
    ],
)
def test_raw_faults_before_response(
    raw_server: RawServer, path: str, errors: tuple[type[Exception], ...]
) -> None:
    with httpx.Client(base_url=raw_server.url, timeout=SHORT) as client:
        with pytest.raises(errors):
            client.get(path)
    assert raw_server.hits(path) == 1


@pytest.mark.parametrize(
    ("path", "errors"),
    [
        pytest.param("/reset-mid-body", (httpx.ReadError, httpx.RemoteProtocolError), id="rst"),
        pytest.param("/truncated", (httpx.RemoteProtocolError,), id="fin"),
    ],
)
async def test_raw_faults_mid_body(
    raw_server: RawServer, path: str, errors: tuple[type[Exception], ...]
) -> None:
    async with httpx.AsyncClient(base_url=raw_server.url, timeout=SHORT) as client:
        async with client.stream("GET", path) as response:
            assert response.status_code == 200
            assert response.headers["content-length"] == "1000"
            with pytest.raises(errors):
                await response.aread()


def test_raw_ok_after_and_keep_alive(raw_server: RawServer) -> None:
    url = "/reset-before-response"
    with httpx.Client(base_url=raw_server.url, timeout=SHORT) as client:
        for _ in range(2):
            with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                client.get(url, params={"ok_after": 2, "key": "r"})
        responses = [client.get(url, params={"ok_after": 2, "key": "r"}) for _ in range(3)]
        # A chunked (generator) body is read too.
        responses.append(client.post("/ok", content=iter([b"abc", b"def"])))
    assert [(r.status_code, r.text) for r in responses] == [(200, "ok")] * 4
    assert raw_server.hits("r") == 5
    assert raw_server.connections == 3  # two broken ones, then one kept alive


# -- refused_url and blackhole_url ------------------------------------------------------


def test_refused(refused_url: str) -> None:
    with pytest.raises(httpx.ConnectError):
        httpx.get(refused_url, timeout=1)


def test_blackhole_connect_times_out(blackhole_url: str) -> None:
    for _ in range(2):  # the accept queue stays full
        started = time.monotonic()
        with httpx.Client(timeout=httpx.Timeout(5, connect=0.2)) as client:
            with pytest.raises(httpx.ConnectTimeout):
                client.get(blackhole_url)
        assert time.monotonic() - started < 0.5


async def test_blackhole_async(blackhole_url: str) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5, connect=0.2)) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.get(blackhole_url)


# -- oauth_server -----------------------------------------------------------------------


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 2.3.1: form-urlencode id and secret, then base64."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


def _token(
    client: httpx.Client, oauth: OAuthServer, basic: bool = True, **form: str
) -> httpx.Response:
    data = {"grant_type": "client_credentials", **form}
    if basic:
        return client.post(
            oauth.token_url, data=data, headers={"Authorization": _basic("id", "secret")}
        )
    return client.post(oauth.token_url, data={**data, "client_id": "id", "client_secret": "secret"})


def test_token_with_basic_auth(oauth_server: OAuthServer) -> None:
    with httpx.Client() as client:
        response = _token(client, oauth_server, scope="read write", audience="api://x", extra="1")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    assert token["scope"] == "read write"
    assert token["access_token"] == oauth_server.current_token
    assert oauth_server.token_requests == 1
    (seen,) = oauth_server.token_request_log
    assert seen.auth_method == "client_secret_basic"
    assert seen.authorization == _basic("id", "secret")
    assert (seen.scope, seen.audience, seen.form["extra"]) == ("read write", "api://x", "1")


def test_token_with_post_auth_and_no_scope(oauth_server: OAuthServer) -> None:
    with httpx.Client() as client:
        response = _token(client, oauth_server, basic=False)
    assert response.status_code == 200
    assert "scope" not in response.json()
    assert oauth_server.token_request_log[0].auth_method == "client_secret_post"


def test_basic_credentials_are_form_urlencoded(oauth_server: OAuthServer) -> None:
    oauth_server.client_id, oauth_server.client_secret = "my id", "s3cr:t/+&%"
    form = {"grant_type": "client_credentials"}
    with httpx.Client() as client:
        good = client.post(
            oauth_server.token_url,
            data=form,
            headers={"Authorization": _basic("my id", "s3cr:t/+&%")},
        )
        # httpx's own BasicAuth does not form-urlencode: the server refuses it.
        raw = client.post(oauth_server.token_url, data=form, auth=("my id", "s3cr:t/+&%"))
    assert good.status_code == 200
    assert raw.status_code == 401


@pytest.mark.parametrize(
    ("headers", "form"),
    [
        pytest.param({"Authorization": _basic("id", "wrong")}, {}, id="basic-bad-secret"),
        pytest.param({}, {"client_id": "id", "client_secret": "wrong"}, id="post-bad-secret"),
        pytest.param({}, {}, id="no-credentials"),
        pytest.param(
            {"Authorization": _basic("id", "secret")}, {"client_secret": "secret"}, id="two-methods"
        ),
    ],
)
def test_token_rejects_bad_clients(
    oauth_server: OAuthServer, headers: dict[str, str], form: dict[str, str]
) -> None:
    data = {"grant_type": "client_credentials", **form}
    response = httpx.post(oauth_server.token_url, data=data, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert oauth_server.issued_tokens == []


@pytest.mark.parametrize(
    ("mode", "status", "check"),
    [
        pytest.param("invalid_client", 401, "invalid_client", id="invalid_client"),
        pytest.param("invalid_scope", 400, "invalid_scope", id="invalid_scope"),
        pytest.param("temporarily_unavailable", 503, "temporarily_unavailable", id="unavailable"),
        pytest.param("not_json", 200, "text/html", id="not_json"),
        pytest.param("html_502", 502, "text/html", id="html_502"),
        pytest.param("no_access_token", 200, "no access_token", id="no_access_token"),
        pytest.param("wrong_token_type", 200, "mac", id="wrong_token_type"),
    ],
)
def test_token_modes(oauth_server: OAuthServer, mode: str, status: int, check: str) -> None:
    oauth_server.mode = mode  # type: ignore[assignment]
    with httpx.Client() as client:
        response = _token(client, oauth_server, scope="read")
    assert response.status_code == status
    if check == "text/html":
        assert response.headers["content-type"].startswith("text/html")
    elif check == "no access_token":
        assert "access_token" not in response.json()
    elif check == "mac":
        assert response.json()["token_type"] == "mac"
    else:
        assert response.json()["error"] == check


def test_mode_is_checked(oauth_server: OAuthServer) -> None:
    with pytest.raises(ValueError):
        oauth_server.mode = "nope"  # type: ignore[assignment]


def test_fail_first_then_ok(oauth_server: OAuthServer) -> None:
    oauth_server.fail_first = 2
    oauth_server.fail_retry_after = "1"
    with httpx.Client() as client:
        statuses = [_token(client, oauth_server).status_code for _ in range(3)]
        first = oauth_server.token_request_log[0]
    assert statuses == [503, 503, 200]
    assert oauth_server.token_requests == 3
    assert first.grant_type == "client_credentials"


def test_expires_in_none_and_grant_scope(oauth_server: OAuthServer) -> None:
    oauth_server.expires_in = None
    oauth_server.grant_scope = "read"
    with httpx.Client() as client:
        token = _token(client, oauth_server, scope="read write").json()
        api = client.get(
            f"{oauth_server.api_url}/echo",
            headers={"Authorization": f"Bearer {token['access_token']}"},
        )
    assert "expires_in" not in token
    assert token["scope"] == "read"
    assert api.status_code == 200


async def test_latency_is_asynchronous(oauth_server: OAuthServer) -> None:
    oauth_server.latency = 0.3
    started = time.monotonic()
    data = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"}
    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(
            *(client.post(oauth_server.token_url, data=data) for _ in range(5))
        )
    elapsed = time.monotonic() - started
    assert [r.status_code for r in responses] == [200] * 5
    assert 0.3 <= elapsed < 1.2  # one after the other would take 1.5 s
    assert oauth_server.token_requests == 5
    assert len(set(oauth_server.issued_tokens)) == 5


def test_api_accepts_and_refuses_tokens(oauth_server: OAuthServer) -> None:
    with httpx.Client() as client:
        token = _token(client, oauth_server).json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        ok = client.post(f"{oauth_server.api_url}/echo?q=1", headers=bearer, content=b"body")
        missing = client.get(f"{oauth_server.api_url}/echo")
        invalid = client.get(oauth_server.api_url, headers={"Authorization": "Bearer nope"})
        oauth_server.reject_all_tokens = True
        rejected = client.get(oauth_server.api_url, headers=bearer)
        oauth_server.reject_all_tokens = False
        oauth_server.revoke_current()
        revoked = client.get(oauth_server.api_url, headers=bearer)
    assert ok.status_code == 200
    assert ["authorization", f"Bearer {token}"] in ok.json()["headers"]
    assert (ok.json()["path"], ok.json()["body"]) == ("/api/echo", "body")
    for refused in (missing, invalid, rejected, revoked):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert oauth_server.api_requests == 5
    assert oauth_server.api_statuses == [200, 401, 401, 401, 401]
    assert oauth_server.api_request_log[0].header("authorization") == f"Bearer {token}"


async def test_api_rejects_expired_tokens(oauth_server: OAuthServer) -> None:
    oauth_server.expires_in = 1
    data = {"grant_type": "client_credentials", "client_id": "id", "client_secret": "secret"}
    async with httpx.AsyncClient() as client:
        token = (await client.post(oauth_server.token_url, data=data)).json()
        assert token["expires_in"] == 1
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        assert (await client.get(oauth_server.api_url, headers=bearer)).status_code == 200
        await asyncio.sleep(1.05)
        assert (await client.get(oauth_server.api_url, headers=bearer)).status_code == 401


def test_oauthlib_client_parses_the_response(oauth_server: OAuthServer) -> None:
    oauth_client = BackendApplicationClient(client_id="id")
    body = oauth_client.prepare_request_body(scope=["a", "b"], include_client_id=True)
    response = httpx.post(
        oauth_server.token_url,
        content=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": _basic("id", "secret"),
        },
    )
    token = oauth_client.parse_request_body_response(response.text, scope=["a", "b"])
    assert token["access_token"] == oauth_server.current_token
    assert token["scope"] == ["a", "b"]


def test_server_does_not_relax_oauthlib_for_the_client(oauth_server: OAuthServer) -> None:
    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
