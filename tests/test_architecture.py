"""The architecture's rules, checked on the source: no private httpx name anywhere in cf/,
every private touch of aiohttp in one module, public modules thin."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import httpx
import pytest

CF = Path(__file__).resolve().parent.parent / "cf"
SOURCES = sorted(CF.rglob("*.py"))
AIOHTTP_COMPAT = CF / "_transports" / "_aiohttp_compat.py"


def _httpx_private_names() -> set[str]:
    """Private attribute names of httpx's public classes (`_transport_for_url`, `_mounts`...)."""
    names: set[str] = set()
    for export in httpx.__all__:
        value = getattr(httpx, export)
        if inspect.isclass(value):
            for klass in value.__mro__:
                if klass.__module__.startswith("httpx"):
                    names |= {n for n in vars(klass) if n.startswith("_") and not n.endswith("__")}
    return names


def _foreign_private_attributes(tree: ast.AST) -> list[tuple[int, str]]:
    """`x._name` where x is not self, cls or super(): a reach into another object's privates."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            if node.attr.startswith("__") and node.attr.endswith("__"):
                continue
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            if isinstance(base, ast.Call) and getattr(base.func, "id", None) == "super":
                continue
            found.append((node.lineno, ast.unparse(node)))
    return found


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(CF)))
def test_no_private_httpx_name(path: Path) -> None:
    tree = ast.parse(path.read_text())
    private = _httpx_private_names()
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("httpx."):
            problems.append(f"line {node.lineno}: from {node.module} import ...")
        if isinstance(node, ast.Import):
            problems += [
                f"line {node.lineno}: import {a.name}"
                for a in node.names
                if a.name.startswith("httpx.")
            ]
        if isinstance(node, ast.Attribute):
            text = ast.unparse(node)
            if text.startswith("httpx._"):
                problems.append(f"line {node.lineno}: {text}")
    for line, text in _foreign_private_attributes(tree):
        name = text.rsplit(".", 1)[1]
        if name in private:
            problems.append(f"line {line}: {text} (a private name of httpx)")
    assert not problems, problems


def _imports_aiohttp(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "aiohttp" for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiohttp":
            return True
    return False


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if p != AIOHTTP_COMPAT and _imports_aiohttp(p)],
    ids=lambda p: str(p.relative_to(CF)),
)
def test_aiohttp_privates_only_in_the_compat_module(path: Path) -> None:
    found = _foreign_private_attributes(ast.parse(path.read_text()))
    # Our own module-level privates (a leading underscore on a name of cf's) are fine.
    foreign = [(line, text) for line, text in found if not text.split(".")[0].startswith("_")]
    assert not foreign, foreign


def test_the_compat_module_is_gated_on_aiohttp_version() -> None:
    from cf._transports import _aiohttp_compat as compat

    low, high = compat.SUPPORTED
    assert low <= compat.AIOHTTP_VERSION < high
    assert "SUPPORTED[0] <= AIOHTTP_VERSION < SUPPORTED[1]" in AIOHTTP_COMPAT.read_text()
