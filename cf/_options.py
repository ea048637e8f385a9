"""Options of the clients: validation and per-call overrides (pure, shared by both modes).

Options given at creation are the client's defaults; the same names given to
a call override them for that call. Everything is checked here, before any
I/O: bad values raise `ValueError` or `TypeError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from cf._backoff import RetryBudget, RetryEvent, RetryPolicy
from cf._trace import TraceInfo

__all__ = [
    "ENGINE_OPTIONS",
    "RETRY_OPTIONS",
    "UNSET",
    "Defaults",
    "check_deadline",
    "check_on_retry",
    "check_trace",
    "check_headers",
    "check_timeout",
    "check_url",
    "make_policy",
    "pool_limits",
]


class _Unset:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()

DEFAULT_TIMEOUT = httpx.Timeout(5.0)

# Keyword arguments that build a RetryPolicy.
RETRY_OPTIONS = (
    "retries",
    "failure_statuses",
    "backoff_base",
    "backoff_max",
    "max_retry_after",
    "respect_retry_after",
    "retry_non_idempotent",
)
# Options that need their own connection pool (transport); per call they pick
# (and cache) a second engine with those settings.
ENGINE_OPTIONS = ("verify", "cert", "http2", "proxy", "transport", "trust_env")


def make_policy(base: RetryPolicy | None, given: Mapping[str, Any]) -> RetryPolicy:
    """The policy from `retry_policy=` (or `base`), with plain keyword options applied."""
    policy = given.get("retry_policy", UNSET)
    if policy is UNSET or policy is None:
        policy = base if base is not None else RetryPolicy()
    elif not isinstance(policy, RetryPolicy):
        raise TypeError(f"retry_policy must be a RetryPolicy, not {type(policy).__name__}")
    changes = {k: given[k] for k in RETRY_OPTIONS if given.get(k, UNSET) is not UNSET}
    return policy.replace(**changes) if changes else policy


def check_timeout(timeout: Any) -> httpx.Timeout:
    """A float (seconds) or an httpx.Timeout, every part positive or None."""
    if isinstance(timeout, httpx.Timeout):
        parts = (timeout.connect, timeout.read, timeout.write, timeout.pool)
        for part in parts:
            if part is not None:
                _positive("timeout", part)
        return timeout
    if timeout is None:
        return httpx.Timeout(None)
    return httpx.Timeout(_positive("timeout", timeout))


def check_trace(trace: Any) -> TraceInfo | None:
    if trace is not None and not isinstance(trace, TraceInfo):
        raise TypeError(f"trace must be a TraceInfo, not {type(trace).__name__}")
    return trace


def check_on_retry(on_retry: Any) -> Callable[[RetryEvent], object] | None:
    if on_retry is not None and not callable(on_retry):
        raise TypeError("on_retry must be callable")
    return on_retry  # type: ignore[no-any-return]


def pool_limits(size: Any) -> httpx.Limits:
    """The connection limits of a pool of `size` (checked)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"pool size must be an int, not {type(size).__name__}")
    if size < 1:
        raise ValueError(f"pool size must be >= 1, got {size}")
    return httpx.Limits(max_connections=size, max_keepalive_connections=size)


def check_deadline(deadline: Any) -> float | None:
    return None if deadline is None else _positive("deadline", deadline)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if math.isnan(value) or value <= 0:
        raise ValueError(f"{name} must be > 0 seconds, got {value!r}")
    return float(value)


def check_headers(headers: Any) -> httpx.Headers | None:
    """Headers as httpx accepts them, refusing values that would split a request."""
    if headers is None:
        return None
    try:
        result = httpx.Headers(headers)
    except (TypeError, ValueError, AttributeError) as exc:
        raise TypeError(f"invalid headers: {exc}") from None
    for name, value in result.raw:
        if not name or any(c in name for c in b" \t\r\n:") or b"\r" in value or b"\n" in value:
            raise ValueError(f"invalid header {name.decode('latin-1')!r}")
    return result


def check_url(url: httpx.URL | str, base_url: httpx.URL | None = None) -> httpx.URL:
    """An absolute http(s) URL, or ValueError (httpx's InvalidURL included)."""
    try:
        parsed = httpx.URL(url)
        if base_url is not None and base_url.raw_host:
            parsed = _merge_url(base_url, parsed)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ValueError(f"invalid URL {url!r}: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError(f"invalid URL {str(url)!r}: scheme must be http or https")
    if not parsed.host:
        raise ValueError(f"invalid URL {str(url)!r}: no host")
    return parsed


def _merge_url(base: httpx.URL, url: httpx.URL) -> httpx.URL:
    # The same rule as httpx.Client._merge_url: relative paths append to base_url.
    if url.is_relative_url:
        merge_raw_path = base.raw_path + url.raw_path.lstrip(b"/")
        return base.copy_with(raw_path=merge_raw_path)
    return url


@dataclass(frozen=True, slots=True)
class Defaults:
    """The call options a client was created with (already validated)."""

    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    deadline: float | None = None
    trace: TraceInfo | None = None
    on_retry: Callable[[RetryEvent], object] | None = None
    budget: RetryBudget | None = None
    clock: Callable[[], float] | None = None
    random: Callable[[], float] | None = None
    # Derived by the client: whether calls may skip httpx's auth/redirect/hook
    # machinery, the timeout as httpx's extension dict, and parsed URLs by string.
    direct: bool = False
    timeout_dict: dict[str, float | None] = field(default_factory=dict)
    urls: dict[str, httpx.URL] = field(default_factory=dict)
