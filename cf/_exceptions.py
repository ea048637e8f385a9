"""The one exception hierarchy, shared by the async and the sync client.

```
HTTPAioException                 (HTTPException is the same class)
├── HTTPAioStatusError           final response status in failure_statuses; .response
├── HTTPAioTransportError        connect / read / write / protocol failure; __cause__ is httpx's
│   ├── HTTPAioTimeoutError      any timeout, the deadline included
│   └── HTTPAioCircuitOpenError  the origin's circuit is open; nothing was sent
└── OAuthError                   token endpoint failure; .error, .error_description (RFC 6749 5.2)
```

Every instance carries `.method`, `.url` (already redacted), `.status`,
`.response`, `.attempts`, `.trace_id` and `.retry_budget_exhausted`, and
`str(e)` states them in one line. The sync names (`HTTPException`,
`HTTPStatusError`, ...) are aliases of the same classes, so one `except`
clause serves both modes.

cf's exceptions are not httpx's: `except httpx.HTTPError` does not catch them;
their `__cause__` is the httpx exception. On a plain httpx client, cf's
transport raises httpx's own exceptions, plus two of its own that subclass
them: `DeadlineExceeded` (an `httpx.TimeoutException`) and `CircuitOpen` (an
`httpx.ConnectError`: nothing was sent).
"""

from __future__ import annotations

import httpx

from cf._redact import redact_url

__all__ = [
    "CircuitOpen",
    "DeadlineExceeded",
    "HTTPAioCircuitOpenError",
    "HTTPAioException",
    "HTTPAioStatusError",
    "HTTPAioTimeoutError",
    "HTTPAioTransportError",
    "HTTPCircuitOpenError",
    "HTTPException",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "HTTPTransportError",
    "OAuthError",
]


class HTTPAioException(Exception):
    """Base class of every error the cf clients raise (not of bad-argument errors).

    Attributes:
        message: What went wrong, without the details below (redacted).
        method: The request method.
        url: The request URL, credentials and secret query values redacted.
        status: The last response's status, or None when none arrived.
        response: The last response (its body read), or None.
        attempts: Attempts made (0 for a call refused before any, e.g. an open circuit).
        trace_id: The call's W3C trace id, or None when no trace was propagated.
        retry_budget_exhausted: True when the retry budget stopped the retries.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        url: str | httpx.URL = "",
        status: int | None = None,
        response: httpx.Response | None = None,
        attempts: int = 0,
        trace_id: str | None = None,
        retry_budget_exhausted: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.method = method
        self.url = redact_url(url) if url else ""
        self.response = response
        self.status = status if status is not None else (response.status_code if response else None)
        self.attempts = attempts
        self.trace_id = trace_id
        self.retry_budget_exhausted = retry_budget_exhausted

    def __str__(self) -> str:
        parts = [f"{self.method} {self.url}:" if self.method else "", self.message]
        if self.status is not None and f"status {self.status}" not in self.message:
            parts.append(f"(status {self.status})")
        if self.attempts:
            parts.append(f"after {self.attempts} attempt{'s' if self.attempts != 1 else ''}")
        if self.retry_budget_exhausted:
            parts.append("retry budget exhausted")
        if self.trace_id:
            parts.append(f"trace_id={self.trace_id}")
        return " ".join(p for p in parts if p)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        # Exceptions with keyword-only arguments do not pickle by default.
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(
    cls: type[HTTPAioException], message: str, state: dict[str, object]
) -> HTTPAioException:
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(state)
    return exc


class HTTPAioStatusError(HTTPAioException):
    """The last attempt's response had a status in `failure_statuses`.

    Attributes:
        response: That response, its body read.
    """

    response: httpx.Response


class HTTPAioTransportError(HTTPAioException):
    """The request failed below HTTP: connect, read, write or protocol error.

    `__cause__` is the httpx exception.
    """


class HTTPAioTimeoutError(HTTPAioTransportError):
    """A timeout: connect, read, write, pool, or the call's `deadline`."""


class HTTPAioCircuitOpenError(HTTPAioTransportError):
    """The origin's circuit breaker is open: the call failed at once and nothing was sent.

    Attributes:
        retry_after: Seconds until the breaker lets a probe through.
    """

    def __init__(self, message: str, *, retry_after: float = 0.0, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.retry_after = retry_after


class OAuthError(HTTPAioException):
    """The token endpoint failed or answered something unusable.

    `__cause__` holds the underlying failure.

    Attributes:
        error: The RFC 6749 5.2 `error` code the endpoint sent (`invalid_client`, ...),
            or None.
        error_description: Its `error_description` (redacted, shortened), or None.
    """

    def __init__(
        self,
        message: str,
        *,
        error: str | None = None,
        error_description: str | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.error = error
        self.error_description = error_description

    def __str__(self) -> str:
        text = super().__str__()
        if self.error:
            detail = (
                f"{self.error}: {self.error_description}" if self.error_description else self.error
            )
            text = f"{text} [{detail}]"
        return text


# The sync names: the same classes.
HTTPException = HTTPAioException
HTTPStatusError = HTTPAioStatusError
HTTPTransportError = HTTPAioTransportError
HTTPTimeoutError = HTTPAioTimeoutError
HTTPCircuitOpenError = HTTPAioCircuitOpenError


class DeadlineExceeded(httpx.TimeoutException):
    """The call's `deadline` ran out (raised by cf's transport on any httpx client)."""


class CircuitOpen(httpx.ConnectError):
    """The origin's circuit breaker refused the attempt; nothing was sent.

    Raised by cf's transport on any httpx client; `origin` is `scheme://host:port`
    and `retry_after` the seconds until the next probe.
    """

    def __init__(
        self, message: str, *, origin: str, retry_after: float, request: httpx.Request
    ) -> None:
        super().__init__(message, request=request)
        self.origin = origin
        self.retry_after = retry_after
