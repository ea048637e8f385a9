"""cf's pytest plugin (entry point `pytest11`): mocking tools see every call.

pytest-httpx and respx intercept httpx's own transports (pytest-httpx patches
`httpx.AsyncHTTPTransport`/`httpx.HTTPTransport`, respx httpcore's pools); cf's
aiohttp engine is neither. When either tool is installed, this plugin makes
httpx's own transport the default engine for the test run by setting
`CF_HTTP_ENGINE=httpx`, at import, before any test module (or module-level
client) is imported: whatever the import order, no set-up line is needed.
An explicit `CF_HTTP_ENGINE`, or `engine=` given to a client, wins; `-p
no:cf_http` turns the plugin off. vcrpy intercepts httpx's client itself and
needs nothing.
"""

from __future__ import annotations

import importlib.util
import os

__all__: list[str] = []

_VARIABLE = "CF_HTTP_ENGINE"  # the same as cf._transports._engines.ENGINE_VARIABLE
_TOOLS = ("pytest_httpx", "respx")

if _VARIABLE not in os.environ and any(importlib.util.find_spec(t) for t in _TOOLS):
    os.environ[_VARIABLE] = "httpx"
