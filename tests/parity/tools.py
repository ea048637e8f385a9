"""Fresh projects for `test_tools.py`: a test file per tool and import order, run in
their own processes, and an OpenTelemetry check script.

A request a tool does not intercept goes to a loopback port where nothing
listens, so it fails instead of reaching a network. Every process is started
by `start_jobs` (from a fixture in `conftest.py`, with the first test of this
package, so that they run while the parity cases do); each test waits for its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "IMPORT_CF",
    "MODES",
    "ORDERS",
    "TOOLS",
    "TOOL_IMPORT",
    "Job",
    "start_jobs",
    "tool_project",
]

TOOLS = ("pytest-httpx", "respx", "vcrpy")
ORDERS = ("cf-first", "cf-last")
MODES = ("async", "sync")

IMPORT_CF = "import cf.infrastructure.http, cf.infrastructure.http_aio  # noqa: E401\n"
_PYTEST_INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""

# Per tool: what the test file imports, and the body of its two tests (`{client}`
# is the cf client expression, `{get}` the call; URL is refused unless intercepted).
TOOL_IMPORT = {
    "pytest-httpx": "import pytest_httpx\n",
    "respx": "import respx\n",
    "vcrpy": "import vcr\n",
}
_TOOL_TEST = {
    "pytest-httpx": """\
{prefix}def test_{mode}(httpx_mock):
    {cf_import}
    httpx_mock.add_response(url=URL, text="mocked")
    {with_} {client} as client:
        response = {get}
    assert response.text == "mocked"
""",
    "respx": """\
{prefix}def test_{mode}():
    {cf_import}
    with respx.mock:
        respx.get(URL).respond(text="mocked")
        {with_} {client} as client:
            response = {get}
    assert response.text == "mocked"
""",
    "vcrpy": """\
{prefix}def test_{mode}():
    {cf_import}
    with vcr.use_cassette("cassette.yaml", record_mode="none"):
        {with_} {client} as client:
            response = {get}
    assert response.text == "mocked"
""",
}
_CASSETTE = """\
interactions:
- request:
    body: null
    headers: {{}}
    method: GET
    uri: {url}
  response:
    status: {{code: 200, message: OK}}
    headers: {{content-type: [text/plain]}}
    body: {{string: mocked}}
version: 1
"""
_MODE = {
    "async": {
        "prefix": "async ",
        "with_": "async with",
        "client": "HTTPAio.create(retries=0)",
        "get": "await client.get(URL)",
        "cf_import": "from cf.infrastructure.http_aio import HTTPAio",
    },
    "sync": {
        "prefix": "",
        "with_": "with",
        "client": "HTTP.create(retries=0)",
        "get": "client.get(URL)",
        "cf_import": "from cf.infrastructure.http import HTTP",
    },
}

_OTEL_SCRIPT = '''\
"""A cf call before and after HTTPXClientInstrumentor().instrument(), as JSON."""
import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps([k.lower() for k in self.headers.keys()]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
URL = f"http://127.0.0.1:{server.server_port}/x"
VOLATILE = {"date", "server"}


def call(mode):
    if mode == "sync":
        from cf.infrastructure.http import HTTP

        def send():
            with HTTP.create(retries=0) as client:
                return client.get(URL)
    else:
        from cf.infrastructure.http_aio import HTTPAio

        async def main():
            async with HTTPAio.create(retries=0) as client:
                return await client.get(URL)

        def send():
            return asyncio.run(main())
    try:
        response = send()
    except BaseException as exc:
        cause = exc.__cause__
        return {"error": f"{type(exc).__name__}: {str(exc)[:300]}", "cause": repr(cause)[:300]}
    return {
        "status": response.status_code,
        "headers": [(k, v) for k, v in response.headers.items() if k not in VOLATILE],
        "request headers seen": response.json(),
    }


before = {mode: call(mode) for mode in ("sync", "async")}
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

HTTPXClientInstrumentor().instrument()
after = {mode: call(mode) for mode in ("sync", "async")}
print(json.dumps({mode: {"before": before[mode], "after": after[mode]} for mode in before}))
'''


def _refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/parity"


def _env() -> dict[str, str]:
    # A fresh project: no pytest variables, and no CF_HTTP_ENGINE (this suite's conftest
    # pins it to aiohttp; cf's pytest plugin chooses in the child).
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PYTEST_") and k != "CF_HTTP_ENGINE"
    }
    env["NO_PROXY"] = env["no_proxy"] = "*"  # loopback only, whatever the machine says
    return env


@dataclass
class Job:
    """One process: a fresh project, its output in `output.txt`, and its result."""

    process: subprocess.Popen[bytes]
    workdir: Path

    def wait(self, timeout: float = 120) -> tuple[int, str]:
        """Its exit code and output, once it has ended."""
        code = self.process.wait(timeout)
        return code, (self.workdir / "output.txt").read_text(errors="replace")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def tool_project(workdir: Path, tool: str, order: str) -> list[str]:
    """Write the project for `tool` in `order`; the pytest command line to run it."""
    url = _refused_url()
    workdir.mkdir(parents=True)
    (workdir / "pytest.ini").write_text(_PYTEST_INI)
    (workdir / "cassette.yaml").write_text(_CASSETTE.format(url=url))
    (workdir / "cf_first.py").write_text(IMPORT_CF)
    head = "import pytest  # noqa: F401\n"
    if order == "cf-first":
        head += IMPORT_CF + "from cf.infrastructure.http import HTTP\n"
        head += "from cf.infrastructure.http_aio import HTTPAio\n"
    head += TOOL_IMPORT[tool] + f"URL = {url!r}\n\n\n"
    tests = []
    for mode in MODES:
        fields = dict(_MODE[mode], mode=mode)
        if order == "cf-first":
            fields["cf_import"] = "pass"
        tests.append(_TOOL_TEST[tool].format(**fields))
    (workdir / "test_tool.py").write_text(head + "\n\n".join(tests))
    # This suite's own plugins that a user of these tools would not have: off.
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:httpbin"]
    args += ["-p", "no:hypothesispytest"]
    if order == "cf-first":
        args += ["-p", "cf_first"]  # loaded before the entry-point plugins (pytest-httpx)
    return [*args, "--junitxml=result.xml", "test_tool.py"]


def _start(workdir: Path, args: list[str]) -> Job:
    with open(workdir / "output.txt", "wb") as output:
        process = subprocess.Popen(
            [sys.executable, *args], cwd=workdir, env=_env(), stdout=output, stderr=output
        )
    return Job(process, workdir)


def start_jobs(wanted: Collection[tuple[str, ...]], base: Path) -> dict[object, Job]:
    """Start the processes for `wanted` keys: `(tool, order, mode)` of the tool tests,
    `(mode,)` of the OpenTelemetry test. Returns them by `(tool, order)` and `"otel"`."""
    started: dict[object, Job] = {}
    for tool in TOOLS:
        for order in ORDERS:
            if any(key[:2] == (tool, order) for key in wanted):
                workdir = base / f"{tool}-{order}"
                started[(tool, order)] = _start(workdir, tool_project(workdir, tool, order))
    if any(len(key) == 1 for key in wanted):  # the OpenTelemetry check: both modes
        workdir = base / "otel"
        workdir.mkdir()
        (workdir / "otel_check.py").write_text(_OTEL_SCRIPT)
        started["otel"] = _start(workdir, ["otel_check.py"])
    return started
