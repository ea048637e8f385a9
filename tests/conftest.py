import os

# This suite tests cf's own engines: keep the aiohttp default, whatever cf's pytest
# plugin chose because pytest-httpx is installed (tests/parity/test_tools.py checks the
# plugin in fresh projects, each in its own process).
os.environ["CF_HTTP_ENGINE"] = "aiohttp"

pytest_plugins = ["tests.servers.fixtures"]
