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


# The public surface, locked: adding or dropping a name fails here (update on purpose).
EXPORTS = {
    "cf": ["__version__"],
    "cf.infrastructure.http_aio": [
        "AsyncClientCredentialsAuth", "AsyncInMemoryTokenStore", "AsyncRedisTokenStore",
        "AsyncRetryTransport",
        "AsyncTokenStore", "CircuitBreaker", "CircuitOpen", "ClientOptions", "DeadlineExceeded",
        "HTTPAio", "HTTPAioCircuitOpenError", "HTTPAioException", "HTTPAioPool",
        "HTTPAioStatusError", "HTTPAioTimeoutError", "HTTPAioTransportError",
        "HTTPCircuitOpenError", "HTTPException", "HTTPStatusError", "HTTPTimeoutError",
        "HTTPTransportError", "Hedge", "OAuthClientOptions", "OAuthError", "OAuthHTTPAio",
        "RequestOptions", "RetryBudget", "RetryEvent", "RetryPolicy", "Token",
    ],
    "cf.infrastructure.http": [
        "CircuitBreaker", "CircuitOpen", "ClientCredentialsAuth", "ClientOptions",
        "DeadlineExceeded", "HTTP", "HTTPAioCircuitOpenError", "HTTPAioException",
        "HTTPAioStatusError", "HTTPAioTimeoutError", "HTTPAioTransportError",
        "HTTPCircuitOpenError", "HTTPException", "HTTPPool", "HTTPStatusError",
        "HTTPTimeoutError", "HTTPTransportError", "Hedge", "InMemoryTokenStore",
        "OAuthClientOptions", "OAuthError", "OAuthHTTP", "RedisTokenStore", "RequestOptions",
        "RetryBudget", "RetryEvent", "RetryPolicy", "RetryTransport", "Token", "TokenStore",
    ],
    "cf.infrastructure.backoff": [
        "CircuitBreaker", "DEFAULT_FAILURE_STATUSES", "Hedge", "IDEMPOTENT_METHODS",
        "RetryBudget", "RetryEvent", "RetryPolicy", "parse_retry_after",
    ],
    "cf.infrastructure.tracer": ["TraceInfo"],
    "cf.loggingutils": [
        "REDACTED_LOGGERS", "RedactingFilter", "THIRD_PARTY_LOGGERS", "configure_logging",
        "get_logger", "install_redaction",
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_exported_names_are_exactly_these(name: str) -> None:
    assert sorted(importlib.import_module(name).__all__) == sorted(EXPORTS[name])


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
