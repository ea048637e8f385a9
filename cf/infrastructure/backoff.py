"""Retry policy, retry budget, circuit breaker and hedging settings, shared by both modes.

Pure logic: no I/O, time and randomness injected. See `RetryPolicy`,
`RetryBudget`, `CircuitBreaker` and `Hedge`.
"""

from cf._backoff import (
    DEFAULT_FAILURE_STATUSES,
    IDEMPOTENT_METHODS,
    RetryBudget,
    RetryEvent,
    RetryPolicy,
    parse_retry_after,
)
from cf._breaker import CircuitBreaker
from cf._hedge import Hedge

__all__ = [
    "DEFAULT_FAILURE_STATUSES",
    "IDEMPOTENT_METHODS",
    "CircuitBreaker",
    "Hedge",
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
    "parse_retry_after",
]
