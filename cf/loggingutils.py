"""Logging for cf: `get_logger`, `configure_logging`, and the redaction filter. STUB."""

from __future__ import annotations

import logging

__all__ = ["configure_logging", "get_logger"]


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def configure_logging(level: str | int = "INFO", json: bool = False) -> None:
    logging.basicConfig(level=level)
