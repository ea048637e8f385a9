"""cf: an HTTP client for services, scripts and notebooks, built on httpx.

The public names live in `cf.infrastructure.http_aio` (async),
`cf.infrastructure.http` (sync), `cf.infrastructure.backoff`,
`cf.infrastructure.tracer` and `cf.loggingutils`.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
