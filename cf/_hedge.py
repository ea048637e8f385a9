"""Placeholder: hedging lands from the `breaker` branch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Hedge"]


@dataclass(frozen=True, slots=True)
class Hedge:
    """Settings of hedged requests."""

    delay: float | Literal["p95"]
    max_extra: int = 1
