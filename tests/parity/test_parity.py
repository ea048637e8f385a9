"""Parity: each case of `cases.CASES` gives the same normalised outcome through raw
httpx and through cf, in every variant (async on each engine, sync)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers.wire import WireServer

from .cases import CASES
from .harness import Case, differences, run_case


def _params() -> list[Any]:
    params = []
    for name, case in CASES:
        for variant in case.variants:
            reason = case.xfail.get(variant)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(case, variant, id=f"{name}-{variant}", marks=marks))
    return params


@pytest.mark.parametrize(("case", "variant"), _params())
def test_parity(case: Case, variant: str, urls: dict[str, str], wire_server: WireServer) -> None:
    raw, cf = run_case(case, variant, urls, wire_server)
    diff = differences(raw, cf)
    assert not diff, "cf differs from httpx:\n" + "\n".join(diff)
