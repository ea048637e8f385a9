"""Retry policy and retry budget, shared by `HTTPAio` and `HTTP`.

Pure logic: no I/O, time and randomness injected. See `RetryPolicy`.
"""

from cf._backoff import (
    DEFAULT_FAILURE_STATUSES,
    IDEMPOTENT_METHODS,
    RetryBudget,
    RetryEvent,
    RetryPolicy,
    parse_retry_after,
)

__all__ = [
    "DEFAULT_FAILURE_STATUSES",
    "IDEMPOTENT_METHODS",
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
    "parse_retry_after",
]
