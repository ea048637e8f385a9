"""Fixtures of the parity suite: the servers every case may name."""

from __future__ import annotations

from typing import Any

import pytest

from tests.servers.app import AppServer
from tests.servers.wire import WireServer


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
