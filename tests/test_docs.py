"""The API reference: pdoc builds it with warnings as errors, and every public name has a docstring.

pdoc renders whatever docstrings exist and says nothing about missing ones, so
`test_every_public_name_has_a_docstring` walks the `__all__` of every public
module (no part of its dotted path starts with `_`) and asks for a docstring on
every class, function, method and property, and for every attribute of a class
(dataclass fields, TypedDict keys, annotations, slots, what `__init__` sets on
`self`) to be named in its class's docstring (in backticks, or as an
`Attributes:` entry), which is what
`help()` shows. The build
itself is the one `scripts/docs` runs (`python tests/test_docs.py DIR`), here into
a temporary directory.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any, is_typeddict

import pytest

import cf

ROOT = Path(__file__).resolve().parent.parent

# Public names without a docstring today, as "module:qualified.name" (or
# "module:Class.field" for a field its class docstring does not name). This list
# only shrinks: a name documented since must be struck off it, and a new public
# name without a docstring fails the test.
KNOWN_MISSING: frozenset[str] = frozenset(
    {
        "cf.infrastructure.http:Token.access_token",
        "cf.infrastructure.http:Token.is_expired",
        "cf.infrastructure.http:Token.needs_refresh",
        "cf.infrastructure.http:Token.token_type",
        "cf.loggingutils:RedactingFilter.filter",
    }
)

# Docstrings of generated sync code that still describe the async code.
KNOWN_ASYNC_WORDING: frozenset[str] = frozenset()


def public_modules() -> list[str]:
    names = ["cf"]
    for info in pkgutil.walk_packages(cf.__path__, "cf."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _own_doc(obj: Any) -> str | None:
    """The docstring written for `obj` itself (not one dataclass generated or a base's)."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")
        if dataclasses.is_dataclass(obj) and doc is not None:
            generated = obj.__name__ + str(inspect.signature(obj)).replace(" -> None", "")
            if doc == generated:
                return None
        return doc.strip() if isinstance(doc, str) and doc.strip() else None
    doc = getattr(obj, "__doc__", None)
    return doc.strip() if isinstance(doc, str) and doc.strip() else None


def _own_classes(cls: type, exported: dict[int, str]) -> list[type]:
    """`cls` and its bases of cf's own that are not public themselves (a public
    base's members are checked there)."""
    return [
        klass
        for klass in cls.__mro__
        if klass.__module__.startswith("cf") and (klass is cls or id(klass) not in exported)
    ]


def _fields(cls: type, exported: dict[int, str]) -> list[str]:
    """Attributes a user reads or passes: dataclass and NamedTuple fields, TypedDict
    keys, annotated class attributes, slots and what `__init__` sets on `self`."""
    names: list[str] = []
    if is_typeddict(cls):
        names += cls.__annotations__
    for klass in _own_classes(cls, exported):
        names += klass.__dict__.get("__annotations__", {})
        names += klass.__dict__.get("__slots__", ())
        init = klass.__dict__.get("__init__")
        if inspect.isfunction(init) and not dataclasses.is_dataclass(klass):
            tree = ast.parse(textwrap.dedent(inspect.getsource(init)))
            names += [
                node.attr
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ]
    if dataclasses.is_dataclass(cls):
        names += [f.name for f in dataclasses.fields(cls)]
    return [name for name in dict.fromkeys(names) if not name.startswith("_")]


def _exported() -> dict[int, str]:
    """Every public object by id: "module:Name" where it is first exported."""
    where: dict[int, str] = {}
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in module.__all__:
            where.setdefault(id(getattr(module, name)), f"{module_name}:{name}")
    return where


def _members(cls: type, exported: dict[int, str]) -> Iterator[tuple[str, Any]]:
    """Public methods and properties `cls` defines or takes from a base that is not
    public itself (a public base's members are checked there)."""
    seen: set[str] = set()
    for klass in _own_classes(cls, exported):
        for name, value in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if isinstance(value, property):
                value = value.fget
            if inspect.isfunction(value):
                yield name, value


def _names_field(doc: str, field: str) -> bool:
    """The class docstring names `field`: in backticks, or as a Google-style
    `Attributes:` entry (`    field: what it is`)."""
    return f"`{field}`" in doc or re.search(rf"^\s+{re.escape(field)}:", doc, re.M) is not None


def undocumented() -> Iterator[str]:
    exported = _exported()
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        if not _own_doc(module):
            yield f"{module_name}:(module)"
    for where in exported.values():
        module_name, name = where.split(":")
        obj = getattr(importlib.import_module(module_name), name)
        if inspect.isclass(obj):
            doc = _own_doc(obj)
            if not doc:
                yield where
            for field in _fields(obj, exported):
                if not doc or not _names_field(doc, field):
                    yield f"{where}.{field}"
            for member, value in _members(obj, exported):
                if not _own_doc(value):
                    yield f"{where}.{member}"
        elif inspect.isfunction(obj) and not _own_doc(obj):
            yield where


def async_wording(module_name: str) -> Iterator[str]:
    """Sync names (generated into cf._sync) whose docstrings speak of the async code."""
    words = re.compile(r"\b(async|await|aclose|__aenter__|__aexit__|AsyncIterator)\b|\w+Aio\b")
    module = importlib.import_module(module_name)
    exported = _exported()
    for name in module.__all__:
        obj = getattr(module, name)
        if not getattr(obj, "__module__", "").startswith("cf._sync"):
            continue
        texts = [(name, _own_doc(obj))]
        if inspect.isclass(obj):
            texts += [(f"{name}.{m}", _own_doc(v)) for m, v in _members(obj, exported)]
        for where, doc in texts:
            if doc and words.search(doc):
                yield f"{module_name}:{where}"


def test_public_modules_are_the_documented_ones() -> None:
    assert public_modules() == [
        "cf",
        "cf.infrastructure",
        "cf.infrastructure.backoff",
        "cf.infrastructure.http",
        "cf.infrastructure.http_aio",
        "cf.infrastructure.tracer",
        "cf.loggingutils",
    ]


def test_every_public_name_has_a_docstring() -> None:
    missing = set(undocumented())
    new = sorted(missing - KNOWN_MISSING)
    fixed = sorted(KNOWN_MISSING - missing)
    assert not new, "public names without a docstring:\n" + "\n".join(new)
    assert not fixed, "documented now, strike off KNOWN_MISSING:\n" + "\n".join(fixed)


def test_sync_docstrings_describe_the_sync_code() -> None:
    found = {entry for entry in async_wording("cf.infrastructure.http")}
    new = sorted(found - KNOWN_ASYNC_WORDING)
    fixed = sorted(KNOWN_ASYNC_WORDING - found)
    assert not new, "sync docstrings that describe the async code:\n" + "\n".join(new)
    assert not fixed, "fixed now, strike off KNOWN_ASYNC_WORDING:\n" + "\n".join(fixed)


def build_reference(out: Path, **run: Any) -> subprocess.CompletedProcess[str]:
    """Build the reference into `out` in a fresh interpreter (`main` below)."""
    return subprocess.run(
        [sys.executable, __file__, str(out)], text=True, cwd=ROOT, timeout=120, **run
    )


def main(out: Path) -> int:
    """pdoc on every public module, any warning an error (scripts/docs runs this).

    Modules are named one by one (`__all__` hides submodules from pdoc), and the
    names a public module loads on first use (its `__getattr__`) are loaded
    first, since pdoc reads `__all__` from the module's namespace alone.
    """
    import warnings

    import pdoc
    import pdoc.render

    modules = public_modules()
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            vars(module).setdefault(name, getattr(module, name))
    pdoc.render.configure(docformat="markdown", footer_text=f"cf-http {cf.__version__}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules, output_directory=out)
    for warning in caught:
        print(f"pdoc: {warning.category.__name__}: {warning.message}", file=sys.stderr)
    return 1 if caught else 0


@pytest.fixture(scope="module")
def api_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api")
    result = build_reference(out, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    return out


def test_api_reference_has_a_page_per_public_module(api_reference: Path) -> None:
    pages = {
        p.relative_to(api_reference).as_posix()
        for p in api_reference.rglob("*.html")
        if p.name != "index.html"
    }
    assert pages == {m.replace(".", "/") + ".html" for m in public_modules()}


@pytest.mark.parametrize(
    ("page", "names"),
    [
        ("cf/infrastructure/http_aio.html", ["HTTPAio", "OAuthHTTPAio", "HTTPAioException"]),
        ("cf/infrastructure/http.html", ["HTTP", "OAuthHTTP", "HTTPException"]),
        ("cf/infrastructure/backoff.html", ["RetryPolicy", "max_retry_after", "RetryEvent"]),
        ("cf/infrastructure/tracer.html", ["TraceInfo", "from_headers"]),
        ("cf/loggingutils.html", ["configure_logging", "get_logger", "RedactingFilter"]),
        ("cf.html", [cf.__version__]),
    ],
)
def test_api_reference_documents_the_public_names(
    api_reference: Path, page: str, names: list[str]
) -> None:
    html = (api_reference / page).read_text()
    for name in names:
        assert name in html, f"{page} does not mention {name}"


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(Path(sys.argv[1])))
