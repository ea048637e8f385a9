"""httpx transports used by cf's clients."""

from ._aiohttp import AiohttpTransport

__all__ = ["AiohttpTransport"]
