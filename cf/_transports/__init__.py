"""httpx transports used by cf's clients.

`AiohttpTransport` is imported on first use: aiohttp takes longer to import
than httpx itself, and a program that only imports cf should not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._aiohttp import AiohttpTransport

__all__ = ["AiohttpTransport"]


def __getattr__(name: str) -> Any:
    if name == "AiohttpTransport":
        from ._aiohttp import AiohttpTransport

        return AiohttpTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
