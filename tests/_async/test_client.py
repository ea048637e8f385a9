"""HTTPAio against real local servers (generated into tests/_sync for HTTP)."""

from __future__ import annotations

import email.utils
import gc
import logging
import time
import weakref
from typing import Any

import httpx
import pytest

from cf.infrastructure.backoff import RetryBudget, RetryEvent, RetryPolicy
from cf.infrastructure.http_aio import (
    HTTPAio,
    HTTPAioException,
    HTTPAioStatusError,
    HTTPAioTimeoutError,
    HTTPAioTransportError,
)
from cf.infrastructure.tracer import TraceInfo
from tests.helpers import Sleeps, run_concurrently
from tests.servers.app import AppServer
from tests.servers.raw import RawServer

FAST = {"backoff_base": 0.001, "backoff_max": 0.002}


async def test_seed_pool_and_exception_examples(server: AppServer) -> None:
    url = f"{server.url}/fail/1?status=500&key=seed"
    pool = HTTPAio.create_pool(10)
    async with pool.item() as client:
        response = await client.get(
            url, timeout=0.1, retries=2, failure_statuses=[500, 503, 400, 401]
        )
        assert response.status_code == 200
        await client.get(f"{server.url}/echo", timeout=0.1, trace=TraceInfo.create_new())
    try:
        async with pool.item() as client:
            await client.get(f"{server.url}/status/401", retries=0, failure_statuses=[401])
    except HTTPAioException as exc:
        assert exc.status == 401
    else:
        pytest.fail("no exception")
    await pool.aclose()
    assert server.hits("seed") == 2


async def test_methods_and_bodies(server: AppServer) -> None:
    async with HTTPAio.create(base_url=server.url, headers={"X-Default": "1"}) as client:
        for method in ("get", "post", "put", "patch", "delete", "options"):
            response = await getattr(client, method)("/echo")
            assert response.status_code == 200
            assert response.json()["method"] == method.upper()
        assert (await client.head("/echo")).status_code == 200
        assert (await client.post("/echo", json={"a": 1})).json()["body"] == '{"a":1}'
        assert (await client.post("/echo", data={"a": "b"})).json()["body"] == "a=b"
        assert (await client.put("/echo", content=b"raw")).json()["body"] == "raw"
        files = {"f": ("a.txt", b"hello")}
        assert "hello" in (await client.post("/echo", files=files)).json()["body"]
        echo = (
            await client.request(
                "GET", "/echo", params={"q": "1"}, headers={"X-Call": "2", "x-default": "3"}
            )
        ).json()
        headers = {k.lower(): v for k, v in echo["headers"]}
        assert echo["query"] == "q=1"
        assert headers["x-call"] == "2"
        assert headers["x-default"] == "3"  # the call's value wins


@pytest.mark.parametrize("how", ["get", "post", "stream", "retried"])
async def test_a_finished_call_leaves_no_reference_cycle(server: AppServer, how: str) -> None:
    # Its request, headers and call state go when the response goes, not at the cycle
    # collector's next pass (which, at thousands of calls a second, costs time). Calls
    # that go through httpx's own send (redirects followed, auth flows, event hooks)
    # keep httpx's own cycle: its response and the stream wrapper that times it.
    async with HTTPAio.create(base_url=server.url, **FAST) as client:
        await client.get("/echo")  # the connection and the caches are in place
        gc.collect()
        gc.disable()
        try:
            if how == "get":
                response = await client.get("/echo")
            elif how == "post":
                response = await client.post("/echo", json={"a": 1})
            elif how == "stream":
                async with client.stream("GET", "/echo") as response:
                    await response.aread()
            else:
                response = await client.get("/fail/1?status=503&key=cycle")
            assert response.status_code == 200
            request = weakref.ref(response.request)
            del response
            assert request() is None
        finally:
            gc.enable()


async def test_status_not_in_failure_statuses_is_returned(server: AppServer) -> None:
    async with HTTPAio.create() as client:
        response = await client.get(f"{server.url}/status/404")
        assert response.status_code == 404
        assert server.hits("/status/404") == 1


async def test_fail_then_succeed_with_logged_retries(
    server: AppServer, caplog: pytest.LogCaptureFixture
) -> None:
    sleeps = Sleeps()
    events: list[RetryEvent] = []
    trace = TraceInfo.create_new()
    async with HTTPAio.create(sleep=sleeps, on_retry=events.append) as client:
        with caplog.at_level(logging.WARNING, logger="cf.infrastructure.http_aio"):
            response = await client.get(f"{server.url}/fail/2?key=ok", trace=trace)
    assert response.status_code == 200
    assert server.hits("ok") == 3
    assert len(sleeps) == 2
    assert [e.attempt for e in events] == [1, 2]
    assert all(
        e.max_attempts == 3 and e.status == 503 and e.trace_id == trace.trace_id for e in events
    )
    assert [e.delay for e in events] == sleeps
    records = [r for r in caplog.records if r.name == "cf.infrastructure.http_aio"]
    assert len(records) == 2
    assert records[0].levelno == logging.WARNING
    assert records[0].attempt == 1  # type: ignore[attr-defined]
    assert records[0].max_attempts == 3  # type: ignore[attr-defined]
    assert records[0].trace_id == trace.trace_id  # type: ignore[attr-defined]
    assert "1/3" in records[0].getMessage() and "status 503" in records[0].getMessage()


async def test_per_attempt_traceparent(server: AppServer) -> None:
    trace = TraceInfo.create_new()
    async with HTTPAio.create(sleep=Sleeps()) as client:
        await client.get(f"{server.url}/fail/2?key=tp", trace=trace)
    parents = [r.header("traceparent") for r in server.requests("tp")]
    assert len(parents) == 3
    assert {p.split("-")[1] for p in parents if p} == {trace.trace_id}
    assert len({p.split("-")[2] for p in parents if p}) == 3


async def test_no_trace_header_without_trace(server: AppServer) -> None:
    async with HTTPAio.create() as client:
        await client.get(f"{server.url}/echo?key=none")
    assert server.requests("none")[0].header("traceparent") is None


async def test_retries_exhausted_raise_status_error(server: AppServer) -> None:
    trace = TraceInfo.create_new()
    async with HTTPAio.create(sleep=Sleeps(), retries=1) as client:
        with pytest.raises(HTTPAioStatusError) as info:
            await client.get(f"{server.url}/status/503?key=x", trace=trace)
    exc = info.value
    assert server.hits("x") == 2
    assert (exc.status, exc.attempts, exc.method) == (503, 2, "GET")
    assert exc.response is not None and exc.response.status_code == 503
    assert exc.response.content == b"status 503"
    assert exc.trace_id == trace.trace_id
    assert exc.retry_budget_exhausted is False
    assert "\n" not in str(exc) and "503" in str(exc) and "2 attempts" in str(exc)


@pytest.mark.parametrize(
    ("value", "expected"),
    [pytest.param("2", 2.0, id="seconds"), pytest.param("date", None, id="http-date")],
)
async def test_retry_after_is_honoured(
    server: AppServer, value: str, expected: float | None
) -> None:
    if value == "date":
        value = email.utils.formatdate(time.time() + 3, usegmt=True)
    sleeps = Sleeps()
    async with HTTPAio.create(sleep=sleeps) as client:
        response = await client.get(
            f"{server.url}/fail/1", params={"retry_after": value, "key": "ra"}
        )
    assert response.status_code == 200
    assert server.hits("ra") == 2
    if expected is not None:
        assert sleeps == [expected]
    else:
        assert 1.0 <= sleeps[0] <= 3.0


async def test_retry_after_over_cap_raises_at_once(server: AppServer) -> None:
    sleeps = Sleeps()
    async with HTTPAio.create(sleep=sleeps, max_retry_after=5) as client:
        with pytest.raises(HTTPAioStatusError) as info:
            await client.get(f"{server.url}/status/503?retry_after=60&key=cap")
    assert server.hits("cap") == 1 and sleeps == []
    assert info.value.attempts == 1 and "max_retry_after" in str(info.value)


async def test_retry_after_past_deadline_raises_at_once(server: AppServer) -> None:
    async with HTTPAio.create(sleep=Sleeps()) as client:
        with pytest.raises(HTTPAioStatusError):
            await client.get(f"{server.url}/status/429?retry_after=20&key=dl", deadline=10)
    assert server.hits("dl") == 1


async def test_deadline_bounds_the_call(server: AppServer) -> None:
    started = time.monotonic()
    async with HTTPAio.create(timeout=5) as client:
        with pytest.raises(HTTPAioTimeoutError) as info:
            await client.get(f"{server.url}/stall?seconds=5", deadline=0.3)
    assert time.monotonic() - started < 3
    assert isinstance(info.value, HTTPAioTransportError)


async def test_read_timeout_is_a_timeout_error(server: AppServer) -> None:
    async with HTTPAio.create(timeout=0.1, retries=0) as client:
        with pytest.raises(HTTPAioTimeoutError) as info:
            await client.get(f"{server.url}/stall?seconds=2")
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


# The safety matrix: each fault x method, asserting how many attempts were made.
METHODS = [
    pytest.param("GET", {}, True, id="GET"),
    pytest.param("PUT", {}, True, id="PUT"),
    pytest.param("POST", {}, False, id="POST"),
    pytest.param("POST", {"Idempotency-Key": "k1"}, True, id="POST-idempotency-key"),
    pytest.param("PATCH", {}, False, id="PATCH"),
]
FAULTS = ["refused", "connect-timeout", "read-timeout", "reset-mid-body", "500", "503", "429"]


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize(("method", "headers", "idempotent"), METHODS)
async def test_safety_matrix(
    fault: str,
    method: str,
    headers: dict[str, str],
    idempotent: bool,
    server: AppServer,
    raw_server: RawServer,
    refused_url: str,
    request: pytest.FixtureRequest,
) -> None:
    timeout: Any = 2.0
    if fault == "refused":
        url, count = f"{refused_url}/x", None
    elif fault == "connect-timeout":
        url, count = request.getfixturevalue("blackhole_url") + "/x", None
        timeout = httpx.Timeout(2.0, connect=0.05)
    elif fault == "read-timeout":
        url, count = f"{server.url}/stall?seconds=2&key=k", server
        timeout = 0.1
    elif fault == "reset-mid-body":
        url, count = f"{raw_server.url}/reset-mid-body?key=k", raw_server
    else:
        url, count = f"{server.url}/status/{fault}?key=k", server
    expected = 3 if fault in ("refused", "connect-timeout", "503", "429") or idempotent else 1
    async with HTTPAio.create(sleep=Sleeps(), retries=2, timeout=timeout) as client:
        with pytest.raises(HTTPAioException) as info:
            await client.request(method, url, headers=headers, content=b"body")
    assert info.value.attempts == expected
    if count is not None:
        assert count.hits("k") == expected
    if fault in ("500", "503", "429"):
        assert isinstance(info.value, HTTPAioStatusError)
    else:
        assert isinstance(info.value, HTTPAioTransportError)
        assert info.value.__cause__ is not None
    if fault in ("connect-timeout", "read-timeout"):
        assert isinstance(info.value, HTTPAioTimeoutError)


async def test_retry_non_idempotent_option(server: AppServer) -> None:
    async with HTTPAio.create(sleep=Sleeps(), retry_non_idempotent=True) as client:
        response = await client.post(f"{server.url}/fail/2?status=500&key=p")
    assert response.status_code == 200 and server.hits("p") == 3


async def test_retry_policy_object_per_call(server: AppServer) -> None:
    policy = RetryPolicy(retries=4, failure_statuses={418})
    async with HTTPAio.create(sleep=Sleeps()) as client:
        response = await client.get(f"{server.url}/fail/4?status=418&key=t", retry_policy=policy)
        assert response.status_code == 200
        assert (
            await client.get(f"{server.url}/status/503?key=n", retry_policy=policy)
        ).status_code == 503
    assert server.hits("t") == 5 and server.hits("n") == 1


async def test_reset_mid_body_is_retried_and_recovers(raw_server: RawServer) -> None:
    async with HTTPAio.create(sleep=Sleeps()) as client:
        response = await client.get(f"{raw_server.url}/reset-mid-body?ok_after=1&key=r")
    assert response.content == b"ok" and raw_server.hits("r") == 2


@pytest.mark.parametrize(
    "path", ["truncated", "close-before-response", "reset-before-response", "garbage"]
)
async def test_broken_responses_raise_transport_errors(raw_server: RawServer, path: str) -> None:
    async with HTTPAio.create(sleep=Sleeps(), retries=1) as client:
        with pytest.raises(HTTPAioTransportError) as info:
            await client.get(f"{raw_server.url}/{path}?key=b")
    assert raw_server.hits("b") == 2 and info.value.attempts == 2


async def test_non_replayable_body_is_sent_once(server: AppServer) -> None:
    async def body() -> Any:
        yield b"chunk"

    async with HTTPAio.create(sleep=Sleeps()) as client:
        with pytest.raises(HTTPAioStatusError):
            await client.put(f"{server.url}/status/503?key=g", content=body())
    assert server.hits("g") == 1


async def test_huge_response_headers_are_a_clear_error(server: AppServer) -> None:
    async with HTTPAio.create(retries=0) as client:
        with pytest.raises(HTTPAioTransportError):
            await client.get(f"{server.url}/huge-headers?size=200000")


async def test_discarded_responses_are_closed(server: AppServer) -> None:
    # One connection only: a leaked response would hold it and the next attempt would
    # time out. stream(): the loop, not the transport, owns each response's body.
    pool = HTTPAio.create_pool(1, timeout=httpx.Timeout(2.0, pool=0.5), sleep=Sleeps())
    async with pool, pool.item() as client:
        for i in range(3):
            url = f"{server.url}/fail/3?key=leak{i}"
            async with client.stream("GET", url, retries=3) as response:
                assert response.status_code == 200
            assert (await client.get(url)).status_code == 200


async def test_pool_size_limits_connections(server: AppServer) -> None:
    pool = HTTPAio.create_pool(1, timeout=httpx.Timeout(5.0, pool=0.2), retries=0)
    async with pool, pool.item() as client:
        results = await run_concurrently(
            lambda: client.get(f"{server.url}/stall?seconds=1"),
            lambda: client.get(f"{server.url}/stall?seconds=1"),
        )
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], HTTPAioTimeoutError)
    assert isinstance(errors[0].__cause__, httpx.PoolTimeout)


async def test_retry_budget_caps_an_outage(server: AppServer) -> None:
    budget = RetryBudget(clock=lambda: 0.0)  # frozen time: the floor does not refill
    # A long timeout: on a loaded machine 100 callers at once must not time out instead.
    async with HTTPAio.create(
        retry_budget=budget, retries=3, sleep=Sleeps(), timeout=30.0
    ) as client:
        results = await run_concurrently(
            *[lambda: client.get(f"{server.url}/status/503?key=o") for _ in range(100)]
        )
    assert all(isinstance(r, HTTPAioStatusError) for r in results)
    assert server.hits("o") == 100 + 20 + 10  # first attempts + 20% + the floor of 10
    assert sum(r.retry_budget_exhausted for r in results) >= 70
    assert "retry budget exhausted" in str(next(r for r in results if r.retry_budget_exhausted))


async def test_retry_budget_none_disables_it(server: AppServer) -> None:
    async with HTTPAio.create(retry_budget=None, retries=3, sleep=Sleeps()) as client:
        await run_concurrently(
            *[lambda: client.get(f"{server.url}/status/503?key=n") for _ in range(20)]
        )
    assert server.hits("n") == 80


async def test_stream_reads_incrementally(server: AppServer) -> None:
    async with HTTPAio.create() as client:
        async with client.stream("GET", f"{server.url}/bytes?n=300000") as response:
            assert response.status_code == 200
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
    assert total == 300000


async def test_stream_retries_before_the_body(server: AppServer) -> None:
    async with HTTPAio.create(sleep=Sleeps()) as client:
        async with client.stream("GET", f"{server.url}/fail/1?key=s") as response:
            assert (await response.aread()).startswith(b"{")
    assert server.hits("s") == 2


async def test_stream_failure_mid_body_is_a_transport_error(raw_server: RawServer) -> None:
    async with HTTPAio.create() as client:
        async with client.stream("GET", f"{raw_server.url}/reset-mid-body") as response:
            with pytest.raises(HTTPAioTransportError):
                await response.aread()


async def test_stream_failure_status_raises(server: AppServer) -> None:
    async with HTTPAio.create(retries=0) as client:
        with pytest.raises(HTTPAioStatusError) as info:
            async with client.stream("GET", f"{server.url}/status/500"):
                pass
    assert info.value.response is not None and info.value.response.content


async def test_exception_redacts_the_url(refused_url: str) -> None:
    url = refused_url.replace("http://", "http://user:hunter2@") + "/x?token=s3cr3t&page=2"
    async with HTTPAio.create(retries=0) as client:
        with pytest.raises(HTTPAioTransportError) as info:
            await client.get(url)
    text = str(info.value) + repr(info.value) + info.value.url
    assert "hunter2" not in text and "s3cr3t" not in text
    assert "page=2" in info.value.url


@pytest.mark.parametrize(
    ("options", "error"),
    [
        pytest.param({"retries": -1}, ValueError, id="negative-retries"),
        pytest.param({"failure_statuses": [700]}, ValueError, id="status-out-of-range"),
        pytest.param({"timeout": 0}, ValueError, id="zero-timeout"),
        pytest.param({"timeout": -1.0}, ValueError, id="negative-timeout"),
        pytest.param({"timeout": "5"}, TypeError, id="str-timeout"),
        pytest.param({"deadline": 0}, ValueError, id="zero-deadline"),
        pytest.param({"trace": "00-abc"}, TypeError, id="trace-not-traceinfo"),
        pytest.param({"headers": {"X-A": "a\r\nInjected: 1"}}, ValueError, id="header-injection"),
        pytest.param({"retry_policy": {"retries": 1}}, TypeError, id="policy-dict"),
        pytest.param({"nonsense": 1}, TypeError, id="unknown-option"),
    ],
)
async def test_bad_options_raise_before_any_io(
    server: AppServer, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        HTTPAio.create(**options)
    async with HTTPAio.create() as client:
        with pytest.raises(error):
            await client.get(f"{server.url}/echo?key=bad", **options)
    assert server.hits("bad") == 0


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("not a url", id="words"),
        pytest.param("ftp://127.0.0.1/x", id="ftp"),
        pytest.param("/relative", id="relative-without-base"),
        pytest.param("http://", id="no-host"),
        pytest.param("http://[::1", id="bad-ipv6"),
    ],
)
async def test_bad_urls_raise_value_error(url: str) -> None:
    async with HTTPAio.create() as client:
        with pytest.raises(ValueError):
            await client.get(url)


async def test_bad_pool_size() -> None:
    with pytest.raises(ValueError):
        HTTPAio.create_pool(0)
    with pytest.raises(TypeError):
        HTTPAio.create_pool("10")  # type: ignore[arg-type]


async def test_any_httpx_transport_and_per_call_override(server: AppServer) -> None:
    mock = httpx.MockTransport(lambda request: httpx.Response(299, text="mocked"))
    async with HTTPAio.create(transport=mock) as client:
        assert (await client.get("http://example.invalid/")).status_code == 299
    async with HTTPAio.create() as client:
        response = await client.get(f"{server.url}/echo", transport=mock)
        assert response.text == "mocked"
        assert (await client.get(f"{server.url}/echo")).status_code == 200


async def test_redirects_follow_httpx_defaults(server: AppServer) -> None:
    target = f"{server.url}/echo"
    async with HTTPAio.create() as client:
        response = await client.get(f"{server.url}/redirect", params={"to": target})
        assert response.status_code == 302
        followed = await client.get(
            f"{server.url}/redirect", params={"to": target}, follow_redirects=True
        )
        assert followed.status_code == 200 and followed.url == target


async def test_httpx_mock_intercepts_httpx_engine(httpx_mock: Any) -> None:
    # Without engine=, cf's pytest plugin picks this engine when pytest-httpx is
    # installed (this suite forces aiohttp: tests/conftest.py; see tests/parity/test_tools.py).
    httpx_mock.add_response(url="http://api.test/items", json={"items": [1]})
    async with HTTPAio.create(engine="httpx") as client:
        response = await client.get("http://api.test/items")
    assert response.json() == {"items": [1]}


async def test_pool_and_client_close() -> None:
    pool = HTTPAio.create_pool(2)
    async with pool.item() as client:
        assert not client.is_closed
    await pool.aclose()
    assert client.is_closed


async def test_cookies_persist_and_elapsed_is_set() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"Set-Cookie": "session=abc; Path=/"}, text="ok")

    async with HTTPAio.create(transport=httpx.MockTransport(handler)) as client:
        first = await client.get("http://api.test/a")
        await client.get("http://api.test/b")
    assert seen == [None, "session=abc"]
    assert first.request.url == "http://api.test/a"


async def test_default_encoding_and_event_hooks_are_honoured(server: AppServer) -> None:
    events: list[str] = []

    async def hook(request: httpx.Request) -> None:
        events.append(request.method)

    async with HTTPAio.create(
        default_encoding="latin-1", event_hooks={"request": [hook]}
    ) as client:
        response = await client.get(f"{server.url}/status/200")
    assert events == ["GET"]
    assert response.status_code == 200


async def test_url_credentials_become_basic_auth(server: AppServer) -> None:
    url = server.url.replace("http://", "http://alice:pw@") + "/echo"
    async with HTTPAio.create() as client:
        headers = dict((await client.get(url)).json()["headers"])
    assert headers["authorization"] == "Basic YWxpY2U6cHc="


async def test_per_call_base_url_is_joined_as_httpx_does(server: AppServer) -> None:
    async with HTTPAio.create(base_url=f"{server.url}/status") as client:
        assert (await client.get("404")).status_code == 404
        response = await client.get("418", base_url=f"{server.url}/status")
        assert response.status_code == 418
        with pytest.raises(ValueError):
            await client.get("x", base_url="http://[::1")


async def test_closed_client_refuses_to_send(server: AppServer) -> None:
    client = HTTPAio.create()
    await client.aclose()
    with pytest.raises(RuntimeError):
        await client.get(f"{server.url}/echo")


async def test_unhashable_per_call_transport(server: AppServer) -> None:
    class Transport(httpx.MockTransport):
        def __eq__(self, other: object) -> bool:  # makes instances unhashable
            return self is other

    transport = Transport(lambda request: httpx.Response(299))
    async with HTTPAio.create() as client:
        assert (await client.get(f"{server.url}/echo", transport=transport)).status_code == 299
        assert (await client.get(f"{server.url}/echo", transport=transport)).status_code == 299


async def test_redirect_not_followed_has_next_request(server: AppServer) -> None:
    async with HTTPAio.create() as client:
        response = await client.get(f"{server.url}/redirect", params={"to": f"{server.url}/echo"})
    assert response.status_code == 302
    assert response.next_request is not None
    assert response.next_request.url == f"{server.url}/echo"


async def test_proxy_with_transport_is_refused() -> None:
    # httpx would ignore transport= silently (its proxy mount serves every URL): README,
    # "Differences from httpx".
    with pytest.raises(ValueError, match="proxy= and transport="):
        HTTPAio.create(proxy="http://127.0.0.1:1", transport=httpx.AsyncHTTPTransport())
