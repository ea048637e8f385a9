"""The README's Python examples run as they stand, against the local test servers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.app import AppServer
from tests.servers.oauth import OAuthServer

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = [
    block
    for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    if not block.startswith("# not run")
]


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 10


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(
    block: str, server: AppServer, oauth_server: OAuthServer, request: pytest.FixtureRequest
) -> None:
    code = block.replace("http://127.0.0.1:8000", server.url).replace(
        "http://127.0.0.1:9000", oauth_server.url
    )
    if REDIS_URL in code:  # the examples of a shared token store: a real redis-server
        redis_server = request.getfixturevalue("redis_server")
        code = code.replace(REDIS_URL, redis_server.url)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error::ResourceWarning"},
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
