"""Placeholder: the circuit breaker lands from the `breaker` branch."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CircuitBreaker"]


@dataclass(frozen=True, slots=True)
class CircuitBreaker:
    """Settings of a per-origin circuit breaker."""

    failure_ratio: float = 0.5
    min_calls: int = 20
    window: float = 30.0
    break_duration: float = 5.0
    max_break_duration: float = 60.0
