"""Redaction of secrets in URLs, headers and free text (pure, no I/O). STUB: being written."""

from __future__ import annotations

import httpx

__all__ = ["redact_headers", "redact_text", "redact_url", "register_secret"]


def redact_url(url: str | httpx.URL) -> str:
    return str(url)


def redact_headers(headers: object) -> list[tuple[str, str]]:
    return []


def redact_text(text: str) -> str:
    return text


def register_secret(value: str) -> None:
    pass
