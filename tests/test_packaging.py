"""A release as users get it: the wheel and sdist built offline and the wheel installed
into a fresh virtual environment, with its metadata, version, floors and install line.

The build runs hatchling from this environment (no build isolation, so no package
index); the fresh environment gets the wheel with `--no-deps --no-index` and finds
the dependencies through a .pth file naming this environment's site-packages, so
nothing here needs the network.
"""

from __future__ import annotations

import email.parser
import importlib.metadata
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import cf

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PUBLIC_MODULES = [
    "cf.infrastructure.http_aio",
    "cf.infrastructure.http",
    "cf.infrastructure.backoff",
    "cf.infrastructure.tracer",
    "cf.loggingutils",
]
SDIST_TOP = {
    "cf",
    "LICENSE",
    "README.md",
    "CHANGELOG.md",
    "pyproject.toml",
    "PKG-INFO",
    ".gitignore",
}


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


def hatchling(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hatchling", "build", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    hatchling("-t", "wheel", "-t", "sdist", "-d", str(out), cwd=ROOT)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dist(wheel, sdist)


@pytest.fixture(scope="module")
def venv(dist: Dist, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with the wheel installed, dependencies from ours."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-qq"]
        + ["--no-deps", "--no-index", "--disable-pip-version-check", str(dist.wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Only a path: the .pth files of our site-packages (the editable cf) are not run.
    Path(site, "_deps_from_test_venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return venv


def run_in(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        cwd=venv,  # not the repository: `import cf` must find the installed wheel
        env={**env, "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}"},
        timeout=60,
    )


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(zf.read(name).decode())


def test_version_has_one_source() -> None:
    assert "version" not in PYPROJECT["project"]
    assert PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "cf/__init__.py"
    assert importlib.metadata.version("cf-http") == cf.__version__


def test_changelog_has_the_version_and_an_unreleased_section() -> None:
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[:2] == ["Unreleased", cf.__version__]


def test_license_file_is_mit_as_pyproject_says() -> None:
    assert PYPROJECT["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "cf-http maintainers" in text


def test_wheel_installs_into_a_new_venv_and_imports_every_public_name(venv: Path) -> None:
    script = f"""
import importlib, importlib.metadata, importlib.resources, pathlib, sys
import cf
assert pathlib.Path(cf.__file__).is_relative_to(sys.prefix), cf.__file__
dist = importlib.metadata.distribution("cf-http")
assert pathlib.Path(dist.locate_file("cf")).is_relative_to(sys.prefix)
assert dist.version == cf.__version__, (dist.version, cf.__version__)
assert importlib.resources.files(cf).joinpath("py.typed").is_file()
count = 0
for name in {PUBLIC_MODULES!r}:
    module = importlib.import_module(name)
    for member in module.__all__:
        getattr(module, member)
        count += 1
print(count)
"""
    result = run_in(venv, "python", "-c", script)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) >= 40


def test_the_command_runs_from_the_new_venv(venv: Path) -> None:
    result = run_in(venv, "cf-http", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: cf-http")


def test_wheel_holds_the_package_and_nothing_else(dist: Dist) -> None:
    with zipfile.ZipFile(dist.wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"cf", f"cf_http-{cf.__version__}.dist-info"}
    assert "cf/py.typed" in names
    assert "cf/_sync/_client.py" in names
    assert f"cf_http-{cf.__version__}.dist-info/licenses/LICENSE" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_metadata(dist: Dist) -> None:
    meta = wheel_metadata(dist.wheel)
    assert meta["Name"] == "cf-http"
    assert meta["Version"] == cf.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.10"
    classifiers = meta.get_all("Classifier")
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Typing :: Typed" in classifiers
    urls = meta.get_all("Project-URL")
    assert urls and all(".invalid/" in url for url in urls)  # no stranger's domain
    assert set(meta.get_all("Provides-Extra")) >= {"otel", "http2", "test"}
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist")]
    assert {r.name for r in requires if r.marker is None} == {
        "httpx",
        "h11",
        "aiohttp",
        "oauthlib",
        "typing-extensions",
    }


@pytest.mark.parametrize(
    ("name", "refused", "accepted"),
    [
        # CVE-2024-52304, CVE-2025-53643, then GHSA-cq5v-8q36-5273 (fixed in 3.14.3)
        pytest.param(
            "aiohttp", ["3.10.10", "3.12.13", "3.14.2", "4.0.0"], ["3.14.3"], id="aiohttp"
        ),
        pytest.param("h11", ["0.14.0", "0.15.0"], ["0.16.0"], id="h11"),  # CVE-2025-43859
        pytest.param("oauthlib", ["3.2.0", "3.2.1"], ["3.2.2", "4.0.1"], id="oauthlib"),
        pytest.param("httpx", ["0.27.2", "0.29.0"], ["0.28.0", "0.28.1"], id="httpx"),
    ],
)
def test_dependency_floors_refuse_versions_with_advisories(
    name: str, refused: list[str], accepted: list[str]
) -> None:
    (req,) = [r for r in map(Requirement, PYPROJECT["project"]["dependencies"]) if r.name == name]
    assert not [v for v in refused if req.specifier.contains(v)], req
    assert all(req.specifier.contains(v) for v in accepted), req


def test_floor_constraints_pin_the_floors_of_pyproject() -> None:
    """constraints/floor.txt, what .venv-floor tests, pins each dependency's lowest version."""
    floors = {
        r.name: spec.version
        for r in map(Requirement, PYPROJECT["project"]["dependencies"])
        for spec in r.specifier
        if spec.operator == ">="
    }
    pinned = dict(
        line.split("==")
        for line in (ROOT / "constraints" / "floor.txt").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for name in ("httpx", "aiohttp", "oauthlib", "h11"):
        assert Version(pinned[name]) == Version(floors[name]), name


def test_sdist_holds_the_sources_and_the_documents(dist: Dist) -> None:
    prefix = f"cf_http-{cf.__version__}/"
    with tarfile.open(dist.sdist) as tf:
        names = [m.name.removeprefix(prefix) for m in tf.getmembers() if m.isfile()]
    assert {n.split("/")[0] for n in names} == SDIST_TOP
    assert "cf/py.typed" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_sdist_builds_the_same_wheel(dist: Dist, tmp_path: Path) -> None:
    with tarfile.open(dist.sdist) as tf:
        tf.extractall(tmp_path, filter="data")
    (src,) = tmp_path.iterdir()
    hatchling("-t", "wheel", "-d", str(tmp_path / "out"), cwd=src)
    (rebuilt,) = (tmp_path / "out").glob("*.whl")
    with zipfile.ZipFile(rebuilt) as a, zipfile.ZipFile(dist.wheel) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())


def test_readme_installs_from_the_repository_never_by_bare_name() -> None:
    """`cf-http` is not on PyPI: a bare `pip install cf-http` could fetch a stranger's."""
    text = " ".join((ROOT / "README.md").read_text().split())  # wrapped commands joined
    targets = [
        t.strip("\"'") for t in re.findall(r"pip install (\"[^\"]*\"|'[^']*'|[^\s`]+)", text)
    ]
    assert len(targets) >= 2
    for target in targets:  # a path, or a name with its direct reference
        assert target.startswith(("/", "./")) or " @ " in target, target
