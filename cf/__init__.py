"""cf: an HTTP client for services, scripts and notebooks, built on httpx.

httpx's API and `httpx.Response`, plus safe retries with backoff, Retry-After,
a retry budget and deadlines; OAuth2 client credentials with a single-flight
token manager; W3C trace context on every attempt; redacting logs; an async
client and its generated sync twin; and the `cf-http` command.

The public names live in five modules:

- `cf.infrastructure.http_aio`: the async clients `HTTPAio` and `OAuthHTTPAio`,
  their pools, token stores and exceptions;
- `cf.infrastructure.http`: the sync twins `HTTP` and `OAuthHTTP`, same options;
- `cf.infrastructure.backoff`: `RetryPolicy`, `RetryBudget`, `RetryEvent`;
- `cf.infrastructure.tracer`: `TraceInfo`, W3C trace context;
- `cf.loggingutils`: `get_logger`, `configure_logging` and the redaction filter.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
"""The package's version: the one source, read by the build (hatch) and by
`importlib.metadata.version("cf-http")`."""
