"""Fixtures of the parity suite: the servers every case may name, the tools' processes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.servers.app import AppServer
from tests.servers.wire import WireServer

from .tools import Job, start_jobs


@pytest.fixture
def urls(
    wire_server: WireServer, server: AppServer, httpbin: Any, refused_url: str
) -> dict[str, str]:
    """The servers by the names case URLs use: `{a}`, `{b}`, `{app}`, `{httpbin}`, `{refused}`."""
    return {
        "a": wire_server.url,
        "b": wire_server.other_url,
        "app": server.url,
        "httpbin": httpbin.url.rstrip("/"),
        "refused": refused_url,
    }


@pytest.fixture(scope="session", autouse=True)
def tool_jobs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[object, Job]]:
    """The processes `test_tools.py` needs (for its selected tests), started with the
    first test of this package so that they run while the parity cases do."""
    wanted = {
        tuple(item.callspec.params.values())
        for item in request.session.items
        if item.module is not None
        and item.module.__name__.endswith(".test_tools")
        and hasattr(item, "callspec")
    }
    jobs = start_jobs(wanted, tmp_path_factory.mktemp("tools")) if wanted else {}
    yield jobs
    for job in jobs.values():
        job.kill()
