"""The one line `cf-http` prints for a failure, worded the same in both modes.

The library's exception names the method, the redacted URL, the attempts and
the trace id; its message also quotes the engine's own text (aiohttp's
`Cannot connect to host ... ssl:default [...]`, httpcore's `[Errno 111] ...`),
which differs between the async and the sync client for the same failure. Here
that text is replaced by a description built from facts that do not depend on
the engine: the httpx exception class, and the operating system's error
(errno, resolver or TLS error) found in the cause chain.
"""

from __future__ import annotations

import os
import socket
import ssl
from typing import Any

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OAUTH",
    "EXIT_OK",
    "EXIT_STATUS",
    "EXIT_TIMEOUT",
    "EXIT_TRANSPORT",
    "EXIT_USAGE",
    "classify",
    "describe_cause",
    "event_reason",
    "failure_line",
]

EXIT_OK = 0  # a response arrived and its status is not a failure status
EXIT_ERROR = 1  # anything else, e.g. the -o file cannot be written
EXIT_USAGE = 2  # bad arguments; nothing was sent
EXIT_STATUS = 3  # the last attempt's status is a failure status (retries exhausted)
EXIT_TRANSPORT = 4  # connection refused, reset, protocol error, ... (retries exhausted)
EXIT_TIMEOUT = 5  # a timeout, or the --deadline ran out
EXIT_OAUTH = 6  # the token endpoint failed or refused the client
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); SIGTERM and SIGHUP give 128 + their number

# What each httpx exception means, most specific class first (looked up along the MRO).
_PHRASES = {
    "ConnectTimeout": "connect timed out",
    "ReadTimeout": "timed out waiting for the server",
    "WriteTimeout": "timed out sending the request",
    "PoolTimeout": "timed out waiting for a free connection",
    "TimeoutException": "timed out",
    "ConnectError": "cannot connect",
    "ReadError": "connection lost while reading the response",
    "WriteError": "connection lost while sending the request",
    "CloseError": "error while closing the connection",
    "RemoteProtocolError": "the server closed the connection early or sent invalid HTTP",
    "LocalProtocolError": "the request could not be sent as HTTP",
    "ProxyError": "the proxy refused the connection",
    "UnsupportedProtocol": "unsupported protocol",
    "DecodingError": "cannot decode the response body",
    "TooManyRedirects": "too many redirects",
}


def classify(exc: BaseException) -> tuple[int, str] | None:
    """The exit status and the kind label for an error the library raised; None if not one."""
    # The sync names are the same classes as the async ones; this module does not load aiohttp.
    from cf.infrastructure.http import (
        HTTPException,
        HTTPStatusError,
        HTTPTimeoutError,
        HTTPTransportError,
        OAuthError,
    )

    kinds: list[tuple[type[BaseException], int, str]] = [
        (OAuthError, EXIT_OAUTH, "OAuth error"),
        (HTTPTimeoutError, EXIT_TIMEOUT, "timeout"),
        (HTTPTransportError, EXIT_TRANSPORT, "transport error"),
        (HTTPStatusError, EXIT_STATUS, "failure status"),
        (HTTPException, EXIT_ERROR, "request failed"),
    ]
    for cls, code, label in kinds:
        if isinstance(exc, cls):
            return code, label
    return None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen) and len(seen) < 32:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _httpx_error(exc: BaseException) -> BaseException | None:
    """The first httpx exception in the cause chain of `exc` (itself included)."""
    import httpx

    for item in _chain(exc):
        if isinstance(item, httpx.HTTPError | httpx.InvalidURL):
            return item
    return None


def _system_reason(exc: BaseException) -> str | None:
    """What the TLS library, the resolver or the OS said, found below `exc`.

    Worded from the error class and errno, never from the engine's message
    (asyncio writes `Connect call failed (...)` where the C library says
    `Connection refused`). TLS first: aiohttp's TLS errors are also OSErrors
    with an unrelated errno.
    """
    chain = _chain(exc)[1:]
    chain += [c for c in (getattr(i, "certificate_error", None) for i in chain) if c is not None]
    ssl_errors = [i for i in chain if isinstance(i, ssl.SSLError) and type(i).__module__ == "ssl"]
    for tls in ssl_errors:
        if isinstance(tls, ssl.SSLCertVerificationError):
            detail = getattr(tls, "verify_message", None) or getattr(tls, "reason", None)
            return f"certificate verify failed: {detail or 'unknown reason'}"
    if ssl_errors:
        reason = getattr(ssl_errors[0], "reason", None) or "handshake failed"
        return f"TLS error: {reason.replace('_', ' ').lower()}"
    for item in chain:
        if isinstance(item, socket.gaierror):
            return f"cannot resolve the host name: {item.strerror or 'lookup failed'}"
        if isinstance(item, OSError) and isinstance(item.errno, int) and item.errno > 0:
            return os.strerror(item.errno).lower()
    return None


def describe_cause(cause: BaseException) -> str:
    """`ClassName: what happened`, the same words whichever engine raised it."""
    name = type(cause).__name__
    reason = _system_reason(cause)
    if reason is None:
        names = (c.__name__ for c in type(cause).__mro__)
        reason = next((_PHRASES[n] for n in names if n in _PHRASES), None)
    return f"{name}: {reason}" if reason else name


def engine_text(cause: BaseException) -> str:
    """How the library quotes `cause` in its own message."""
    from cf._redact import redact_text

    text = str(cause)
    return f"{type(cause).__name__}: {redact_text(text)}" if text else type(cause).__name__


def normalise(text: str, exc: BaseException) -> str:
    """`text` (quoting `exc`) with the engine's wording of the httpx cause replaced."""
    cause = _httpx_error(exc)
    if cause is None:
        return text
    quoted = engine_text(cause)
    return text.replace(quoted, describe_cause(cause)) if quoted in text else text


def failure_line(exc: BaseException, label: str, detail: str | None = None) -> str:
    """`KIND: METHOD URL: what happened after N attempts trace_id=...`, on one line.

    `detail`, when given, replaces what the engine said (the CLI knows better, e.g.
    how many bytes of the body arrived).
    """
    text = str(exc)
    if detail is not None:
        cause = _httpx_error(exc)
        if cause is not None and engine_text(cause) in text:
            text = text.replace(engine_text(cause), detail)
    return " ".join(f"{label}: {normalise(text, exc)}".split())


def event_reason(exception: Any) -> str:
    """An `on_retry` event's exception, worded as `describe_cause` does."""
    cause = _httpx_error(exception) if isinstance(exception, BaseException) else None
    if cause is not None:
        return describe_cause(cause)
    return type(exception).__name__
