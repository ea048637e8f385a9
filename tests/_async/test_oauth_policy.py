"""The bearer only where it belongs, and token requests carrying only what they need
(SPEC "OAuth2 client credentials", Security), against real origins, both modes."""

from __future__ import annotations

from typing import Any

import pytest

from cf.infrastructure.http_aio import OAuthHTTPAio
from tests.servers.app import AppServer
from tests.servers.oauth import OAuthServer
from tests.servers.wire import WireServer


def oauth(oauth_server: OAuthServer, **options: Any) -> OAuthHTTPAio:
    return OAuthHTTPAio.create(
        client_id=oauth_server.client_id,
        client_secret=oauth_server.client_secret,
        authorize_url=oauth_server.token_url,
        **options,
    )


async def test_token_origins_limit_where_the_bearer_goes(
    oauth_server: OAuthServer, server: AppServer
) -> None:
    async with oauth(oauth_server, token_origins=[oauth_server.url]) as client:
        assert (await client.get(f"{oauth_server.url}/api/me")).status_code == 200
        await client.get(f"{server.url}/echo?key=elsewhere")
    assert server.requests("elsewhere")[0].header("authorization") is None
    assert (oauth_server.api_request_log[0].header("authorization") or "").startswith("Bearer ")


async def test_the_origin_of_base_url_is_the_default(
    oauth_server: OAuthServer, server: AppServer
) -> None:
    async with oauth(oauth_server, base_url=oauth_server.url) as client:
        assert (await client.get("/api/me")).status_code == 200
        await client.get(f"{server.url}/echo?key=not-base")
    assert server.requests("not-base")[0].header("authorization") is None


async def test_a_401_from_another_origin_neither_replays_nor_drops_the_token(
    oauth_server: OAuthServer, server: AppServer
) -> None:
    async with oauth(oauth_server, token_origins=[server.url]) as client:
        await client.get(f"{server.url}/echo?key=first")
        # An allowed origin redirects to another one, which answers 401 (the bearer
        # was not sent there): not replayed, and the token is kept.
        response = await client.get(
            f"{server.url}/redirect?to={oauth_server.url}/api/me", follow_redirects=True
        )
        assert response.status_code == 401
        await client.get(f"{server.url}/echo?key=after")
    assert oauth_server.token_requests == 1 and oauth_server.api_requests == 1
    first = server.requests("first")[0].header("authorization")
    assert first is not None and server.requests("after")[0].header("authorization") == first
    assert oauth_server.api_request_log[0].header("authorization") is None


async def test_no_bearer_over_plain_http_to_a_host_that_is_not_loopback(
    oauth_server: OAuthServer, wire_server: WireServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The wire server stands in as an HTTP proxy (this call's own): the request goes to
    # api.example.test; the token requests go to the token endpoint directly.
    async with oauth(oauth_server) as client:
        await client.get("http://api.example.test/ok", proxy=wire_server.url)
    wire = b"".join(r.data for r in wire_server.take())
    assert b"api.example.test" in wire
    assert b"authorization" not in wire.lower()
    assert any("plain http" in r.getMessage() for r in caplog.records)


async def test_allow_insecure_http_sends_it(
    oauth_server: OAuthServer, wire_server: WireServer
) -> None:
    async with oauth(oauth_server, allow_insecure_http=True) as client:
        await client.get("http://api.example.test/ok", proxy=wire_server.url)
    wire = b"".join(r.data for r in wire_server.take())
    assert b"authorization: bearer" in wire.lower()


async def test_token_requests_carry_only_what_the_endpoint_needs(
    oauth_server: OAuthServer,
) -> None:
    async with oauth(
        oauth_server,
        headers={"X-Api-Key": "default-key", "X-Tenant": "t1"},
        params={"tenant": "t1"},
        cookies={"session": "c00kie"},
        token_headers={"X-Request-Source": "billing"},
    ) as client:
        await client.get(f"{oauth_server.url}/api/me")
    (request,) = oauth_server.token_request_log
    names = {name.lower() for name, _ in request.headers}
    assert "x-api-key" not in names and "x-tenant" not in names and "cookie" not in names
    assert request.query == ""
    assert dict((k.lower(), v) for k, v in request.headers)["x-request-source"] == "billing"
    api = oauth_server.api_request_log[0]
    assert api.header("x-api-key") == "default-key"  # the API call has them
