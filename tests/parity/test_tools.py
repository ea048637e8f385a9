"""Users' test tools and instrumentation, as users have them: each in a fresh project.

Each case is a small project (a test file, a `pytest.ini`) in a temp dir, run with
`sys.executable -m pytest` in its own process (see `tools.py`), so that nothing
this suite imported or patched leaks in. cf is imported before the tool
(`cf-first`: a `-p` plugin loaded before pytest's entry-point plugins, then a
top-level import) or after it (`cf-last`: inside the test); the first
`create()` is always inside the test.

OpenTelemetry: with `HTTPXClientInstrumentor().instrument()` on, a cf call in
each mode must return what it returned before (status, headers, body).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from .tools import MODES, ORDERS, TOOL_IMPORT, TOOLS, Job, tool_project

# Known divergences: tool (and mode) -> reason. None today: cf's pytest plugin makes
# httpx's own transport the default engine when pytest-httpx or respx is installed.
TOOL_XFAIL: dict[tuple[str, str], str] = {}
OTEL_XFAIL: dict[str, str] = {}


def _param(*values: str, reason: str | None) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(*values, id="-".join(values), marks=marks)


@pytest.mark.parametrize(
    ("tool", "order", "mode"),
    [
        _param(tool, order, mode, reason=TOOL_XFAIL.get((tool, mode)))
        for tool in TOOLS
        for order in ORDERS
        for mode in MODES
    ],
)
def test_tool_intercepts(tool: str, order: str, mode: str, tool_jobs: dict[Any, Job]) -> None:
    job = tool_jobs[(tool, order)]
    code, out = job.wait()
    report = job.workdir / "result.xml"
    assert report.exists(), f"pytest did not run (exit {code}):\n{out}"
    cases = {case.get("name"): case for case in ET.parse(report).iter("testcase")}
    case = cases[f"test_{mode}"]
    problems = [child for child in case if child.tag in ("failure", "error", "skipped")]
    assert not problems, f"{tool} did not intercept {mode} cf:\n" + "\n".join(
        (p.text or p.get("message") or "")[-3000:] for p in problems
    )


@pytest.mark.parametrize("mode", [_param(mode, reason=OTEL_XFAIL.get(mode)) for mode in MODES])
def test_otel_instrumentation_changes_nothing(mode: str, tool_jobs: dict[Any, Job]) -> None:
    code, out = tool_jobs["otel"].wait()
    assert code == 0, out[-3000:]
    result = json.loads(out.strip().splitlines()[-1])[mode]
    assert "error" not in result["before"], result
    assert result["after"] == result["before"]


def test_projects_are_what_a_user_writes(tmp_path: Path) -> None:
    """The generated test file of each tool and order is valid Python naming its tool."""
    for tool in TOOLS:
        for order in ORDERS:
            workdir = tmp_path / f"{tool}-{order}"
            tool_project(workdir, tool, order)
            source = (workdir / "test_tool.py").read_text()
            compile(source, "test_tool.py", "exec")
            assert TOOL_IMPORT[tool] in source
            cf_at_top = (
                source.index("import cf.") < source.index(TOOL_IMPORT[tool])
                if order == "cf-first"
                else "import cf." not in source
            )
            assert cf_at_top, source
