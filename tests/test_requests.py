"""`BodilessRequests.build` builds what `httpx.Request(method, url, headers=...)` builds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cf._requests import BodilessRequests

_NAMES = st.sampled_from(
    ["Host", "host", "Content-Length", "content-length", "Transfer-Encoding", "X-A", "x-a"]
) | st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,12}\Z")
_VALUES = st.one_of(
    st.from_regex(r"\A[ -~]{0,20}\Z"),
    st.binary(max_size=12).filter(lambda b: b"\r" not in b and b"\n" not in b),
)
_METHODS = st.sampled_from(["GET", "HEAD", "DELETE", "OPTIONS", "POST", "PUT", "PATCH", "QUERY"])
_URLS = st.sampled_from(
    [
        "http://127.0.0.1:8080/small",
        "https://example.com/a?b=c#frag",
        "http://user:pw@example.com:80/",
        "https://[::1]:8443/x",
        "http://xn--bcher-kva.example/p",
        "unix:/no/host",
    ]
)


def _state(request: httpx.Request) -> dict[str, Any]:
    return {
        "method": request.method,
        "url": str(request.url),
        "raw": request.headers.raw,
        "encoding": request.headers.encoding,
        "extensions": request.extensions,
        "content": request.content,
        "stream": (type(request.stream), b"".join(request.stream)),  # type: ignore[arg-type]
    }


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a loaded CI machine
@given(
    method=_METHODS,
    url=_URLS,
    headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=6),
)
def test_same_as_httpx(method: str, url: str, headers: list[tuple[str, Any]]) -> None:
    given_headers = httpx.Headers(headers)
    extensions = {"timeout": {"connect": 1.0}, "x": object()}
    builder = BodilessRequests()
    theirs = httpx.Request(method, httpx.URL(url), headers=given_headers, extensions=extensions)
    for _ in range(2):  # built, then from what was kept
        ours = builder.build(method, httpx.URL(url), given_headers, extensions)
        assert _state(ours) == _state(theirs)
        assert ours.extensions is not extensions  # a copy, as httpx's
        assert ours.headers is not given_headers
        assert given_headers.raw == httpx.Headers(headers).raw  # the caller's left as it was
        ours.headers["X-Later"] = "changed"  # as a trace header or a token is added later


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_request_can_be_sent_twice(method: str) -> None:
    # As httpx's: its body is in memory (a retry, a redirect replays it).
    request = BodilessRequests().build(method, httpx.URL("http://a.example/"), httpx.Headers(), {})
    assert isinstance(request.stream, httpx.ByteStream)
    assert list(request.stream) == list(request.stream) == [b""]
    assert request.headers.raw[0] == (b"Host", b"a.example")


def test_kept_per_origin_and_headers_but_never_credentials() -> None:
    builder = BodilessRequests()
    build = builder.build
    a, b = httpx.URL("http://a.example/x"), httpx.URL("http://b.example:8080/y")
    assert build("GET", a, httpx.Headers({"X": "1"}), {}).headers.raw[0] == (b"Host", b"a.example")
    assert build("GET", b, httpx.Headers({"X": "1"}), {}).headers["Host"] == "b.example:8080"
    post = build("POST", a, httpx.Headers({"X": "1"}), {})
    assert post.headers["Content-Length"] == "0"
    assert build("GET", a, httpx.Headers({"X": "2"}), {}).headers["X"] == "2"
    assert len(builder._headers) == 4
    for secret in ("Authorization", "proxy-authorization", "Cookie", "X-Api-Key", "X-Session"):
        request = build("GET", a, httpx.Headers({secret: "s3cr3t"}), {})
        assert request.headers[secret] == "s3cr3t"
    assert len(builder._headers) == 4
    assert "s3cr3t" not in repr(builder._headers)
