"""`cf-http demo` and the server it embeds."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from cf._demo_server import DemoServer

SCENARIOS = (
    "Pool: 10 connections serving 100 concurrent calls",
    "Retries: ",
    "Retry-After: ",
    "Failure status: ",
    "OAuth2: 100 concurrent calls",
    "Trace context: ",
)


def test_demo_runs_every_scenario_in_both_modes() -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "cf", "demo"], capture_output=True, timeout=60, check=False
    )
    took = time.monotonic() - started
    report = result.stdout.decode()
    assert result.returncode == 0, report + result.stderr.decode()
    assert result.stderr == b""
    assert took < 30
    assert report.startswith("cf-http demo: embedded server on http://127.0.0.1:")
    async_part, _, sync_part = report.partition("== sync mode (HTTP, OAuthHTTP) ==")
    assert "== async mode (HTTPAio, OAuthHTTPAio) ==" in async_part
    for part in (async_part, sync_part):
        for scenario in SCENARIOS:
            assert f"\n  {scenario}" in part, scenario
        assert "UNEXPECTED" not in part and "skipped" not in part
        assert part.count("\n    ok ") == len(SCENARIOS)
        assert "1 token request(s)" in part
        # The failure scenario calls with `api_key=hunter2`: only that line shows it.
        assert part.count("hunter2") == 1 and part.count("api_key=[redacted]") == 2
    assert "All scenarios behaved as documented, in both modes" in report


@pytest.fixture(scope="module")
def server() -> Iterator[DemoServer]:
    with DemoServer(client_secret="demo-test-secret", token_delay=0.0) as demo:
        yield demo


def test_server_endpoints(server: DemoServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert [client.get("/flaky/2?tag=f").status_code for _ in range(3)] == [503, 503, 200]
        assert client.get("/hits?tag=f").json() == {"tag": "f", "hits": 3}
        answer = client.get("/retry-after/7?tag=r")
        assert answer.status_code == 503 and answer.headers["retry-after"] == "7"
        assert client.get("/retry-after/7?tag=r").status_code == 200
        assert client.get("/status/418").status_code == 418
        assert len(client.get("/bytes/70000").content) == 70000
        assert client.get("/nowhere").status_code == 404
        parent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        echo = client.post("/echo?tag=e", content=b"hi", headers={"traceparent": parent})
        assert echo.json()["body"] == "hi" and echo.json()["headers"]["traceparent"] == parent
        assert [s.traceparent for s in server.seen("e")] == [parent]


def test_server_oauth(server: DemoServer) -> None:
    form = {"grant_type": "client_credentials"}
    with httpx.Client(base_url=server.url) as client:
        refused = client.post("/token", data=form, auth=(server.client_id, "wrong"))
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        assert client.get("/api/x").status_code == 401
        basic = client.post("/token", data=form, auth=(server.client_id, "demo-test-secret"))
        post = client.post(
            "/token",
            data={**form, "client_id": server.client_id, "client_secret": "demo-test-secret"},
        )
        for issued in (basic, post):
            token = issued.json()
            assert issued.status_code == 200 and token["token_type"] == "Bearer"
            api = client.get("/api/x", headers={"Authorization": f"Bearer {token['access_token']}"})
            assert api.status_code == 200 and api.json()["client_id"] == server.client_id
        echo = client.get("/echo", headers={"Authorization": "Bearer abc"}).json()
        assert echo["headers"]["authorization"] == "Bearer [masked]"
