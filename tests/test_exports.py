"""The public surface: every public module's names, as httpx's test_exported_members."""

from __future__ import annotations

import importlib
import importlib.resources

import pytest

PUBLIC_MODULES = [
    "cf",
    "cf.infrastructure.http_aio",
    "cf.infrastructure.http",
    "cf.infrastructure.backoff",
    "cf.infrastructure.tracer",
    "cf.loggingutils",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_all_is_explicit_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    for member in exported:
        assert hasattr(module, member), f"{name}.__all__ names missing {member}"
    defined_here = {
        m
        for m, value in vars(module).items()
        if not m.startswith("_") and getattr(value, "__module__", None) == name
    }
    assert defined_here <= exported, f"{name}: public but not in __all__"


def test_exceptions_are_one_hierarchy_in_both_modes() -> None:
    aio = importlib.import_module("cf.infrastructure.http_aio")
    sync = importlib.import_module("cf.infrastructure.http")
    for name in (
        "HTTPAioException",
        "HTTPAioStatusError",
        "HTTPAioTransportError",
        "HTTPAioTimeoutError",
        "OAuthError",
    ):
        assert getattr(aio, name) is getattr(sync, name)
    assert sync.HTTPException is aio.HTTPAioException
    assert issubclass(aio.HTTPAioTimeoutError, aio.HTTPAioTransportError)
    assert issubclass(aio.OAuthError, aio.HTTPAioException)


def test_py_typed_is_shipped() -> None:
    import cf

    assert importlib.resources.files(cf).joinpath("py.typed").is_file()
