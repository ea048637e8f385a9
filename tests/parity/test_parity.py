"""Parity: each case of `cases.CASES` gives the same normalised outcome through raw
httpx and through cf, in every variant (async on each engine, sync)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers.wire import WireServer

from .cases import CASES
from .harness import (
    VARIANTS,
    Call,
    Case,
    differences,
    normalise,
    prepare_environment,
    run_case,
)


def _params() -> list[Any]:
    params = []
    for name, case in CASES:
        for variant in case.variants:
            reason = case.xfail.get(variant)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(case, variant, id=f"{name}-{variant}", marks=marks))
    return params


@pytest.mark.parametrize(("case", "variant"), _params())
def test_parity(
    case: Case,
    variant: str,
    urls: dict[str, str],
    wire_server: WireServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prepare_environment(case, urls, monkeypatch)
    raw, cf = run_case(case, variant, urls, wire_server)
    diff = differences(raw, cf)
    assert not diff, "cf differs from httpx:\n" + "\n".join(diff)


# -- the harness itself: it sees a difference when there is one -------------------------


@pytest.mark.parametrize(
    ("case", "where"),
    [
        pytest.param(
            Case((Call("GET", "{a}/ok"),), cf={"headers": {"X-Only-Cf": "1"}}),
            {".calls[0].request", ".wire[0]"},
            id="a header only cf sends",
        ),
        pytest.param(
            Case((Call("GET", "{a}/redirect?status=302&to=/ok"),), cf={"follow_redirects": True}),
            {".calls[0].status", ".calls[0].history", ".calls[0].next_request", ".wire"},
            id="cf follows a redirect httpx does not",
        ),
        pytest.param(
            Case((Call("GET", "{a}/status?code=503"),), cf={"retries": 0}),
            {".calls[0].status", ".calls[0].error"},
            id="cf raises for a failure status (why cases pass failure_statuses=())",
        ),
        pytest.param(
            Case((Call("GET", "{a}/slow?seconds=0.1"),), cf={"timeout": 0.01, "retries": 0}),
            {".calls[0].status", ".calls[0].error", ".calls[0].kind"},
            id="cf times out where httpx does not",
        ),
    ],
)
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_harness_sees_a_difference(
    case: Case, where: set[str], variant: str, urls: dict[str, str], wire_server: WireServer
) -> None:
    raw, cf = run_case(case, variant, urls, wire_server)
    seen = {line.split(":", 1)[0] for line in differences(raw, cf)}
    assert where <= seen, seen


def test_normalise_hides_only_what_must_differ() -> None:
    urls = {"a": "http://127.0.0.1:4242", "b": "http://127.0.0.1:4343"}
    boundary = b"0123456789abcdef0123456789abcdef"
    wire = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:4242\r\nContent-Type: multipart/form-data; boundary="
        + boundary
        + b"\r\n\r\n--"
        + boundary
        + b"--\r\n"
    )
    digest = 'Digest username="u", nonce="n1", uri="/x", response="r1", cnonce="c1", nc=00000001'
    assert normalise({"w": [wire], "u": ("http://127.0.0.1:4343/x", digest)}, urls) == {
        "w": [
            b"POST / HTTP/1.1\r\nHost: <a>\r\nContent-Type: multipart/form-data; "
            b"boundary=<boundary>\r\n\r\n--<boundary>--\r\n"
        ],
        "u": (
            "http://<b>/x",
            'Digest username="u", nonce="<random>", uri="/x", response="<random>", '
            'cnonce="<random>", nc=00000001',
        ),
    }
    assert normalise(b"Host: 127.0.0.1:42420", urls) == b"Host: 127.0.0.1:42420"  # not <a>0
