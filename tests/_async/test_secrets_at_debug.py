"""No secret in any log record, at DEBUG, of any library, over HTTP/2 and HTTP/1.1
(both modes): the client secret, the Basic header, every token, password query values."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote

import pytest

from cf.infrastructure.http_aio import HTTPAioException, OAuthHTTPAio
from cf.loggingutils import configure_logging
from tests.servers.oauth import OAuthServer
from tests.servers.tls import TLSAppServer

SECRET = "s3cr3t-Pa55"
PASSWORD = "pw-query-4411"


def _forms(secret: str) -> list[str]:
    return [secret, quote(secret, safe=""), json.dumps(secret)[1:-1]]


def _texts(records: list[logging.LogRecord]) -> list[str]:
    texts = []
    for record in records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        texts.append(repr({k: v for k, v in vars(record).items() if k != "args"}))
    return texts


@pytest.mark.parametrize("http2", [True, False], ids=["h2", "h1"])
async def test_nothing_secret_in_any_record(
    oauth_server: OAuthServer,
    h2_server: TLSAppServer,
    caplog: pytest.LogCaptureFixture,
    http2: bool,
) -> None:
    oauth_server.client_secret = SECRET
    configure_logging(level="DEBUG")
    try:
        with caplog.at_level(logging.DEBUG):
            async with OAuthHTTPAio.create(
                client_id=oauth_server.client_id,
                client_secret=SECRET,
                authorize_url=oauth_server.token_url,
                http2=http2,
                verify=h2_server.ca_bundle,
                retries=0,
            ) as client:
                response = await client.get(f"{h2_server.url}/echo?password={PASSWORD}&page=2")
                assert response.status_code == 200
                if http2:
                    assert response.http_version == "HTTP/2"
                with pytest.raises(HTTPAioException) as info:
                    await client.get(f"{h2_server.url}/status/503?password={PASSWORD}")
    finally:
        logging.getLogger().handlers[:] = [
            h for h in logging.getLogger().handlers if type(h).__name__ != "_CfHandler"
        ]
    tokens = oauth_server.issued_tokens
    assert tokens
    basic = base64.b64encode(f"{oauth_server.client_id}:{SECRET}".encode()).decode()
    secrets = [*_forms(SECRET), basic, PASSWORD, *tokens]
    texts = _texts(caplog.records) + [caplog.text, str(info.value), repr(info.value)]
    assert any("hpack" in r.name or "h2" in r.name for r in caplog.records) or not http2
    leaks = [(s, t[:120]) for s in secrets for t in texts if s in t]
    assert not leaks, leaks
