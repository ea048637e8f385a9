"""A request without a body, as `httpx.Request(method, url, headers=...)` builds it.

Used by the clients for a call with no body, no params and no cookies to merge (the
common GET): the same request, built without httpx's body encoding, which for no body
only adds httpx's automatic headers (`Host` first, then `Content-Length: 0` for POST,
PUT and PATCH) in front of the caller's. Those headers are kept per origin and headers
sent, as most calls send the same again, unless one of them is named as a secret
(`cf._redact.is_secret_name`: Authorization, Cookie, X-Api-Key, ...). Only httpx's
public API: the `stream=` argument, then `read()`, as httpx itself does for a body
given in memory.
`tests/test_requests.py` checks it against httpx's own for any method and headers,
and the parity suite the requests on the wire. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import httpx

from cf._redact import has_secret_header

__all__ = ["BodilessRequests"]

_CONTENT_LENGTH_ZERO = (b"Content-Length", b"0")
_SENDS_LENGTH = frozenset({"POST", "PUT", "PATCH"})
_MAX_CACHED = 256


class BodilessRequests:
    """Builds requests without a body, one builder per client (threads may share it:
    a race loses at most a kept entry, which is then built again)."""

    __slots__ = ("_headers",)

    def __init__(self) -> None:
        # (sends Content-Length, netloc, the caller's headers) -> the request's headers
        self._headers: dict[tuple[bool, bytes, tuple[tuple[bytes, bytes], ...]], httpx.Headers]
        self._headers = {}

    def build(
        self, method: str, url: httpx.URL, headers: httpx.Headers, extensions: dict[str, Any]
    ) -> httpx.Request:
        """`httpx.Request(method, url, headers=headers, extensions=extensions)` (`method`
        upper-case already): the same object, attribute for attribute."""
        raw = tuple(headers.raw)
        key = (method in _SENDS_LENGTH, url.netloc, raw)
        prepared = self._headers.get(key)
        if prepared is None:
            prepared = _prepare(key[0], url, headers)
            if not has_secret_header(raw):  # secrets are never kept
                if len(self._headers) >= _MAX_CACHED:
                    self._headers.clear()
                self._headers[key] = prepared
        # httpx.Request copies the headers: the one kept never changes.
        request = httpx.Request(
            method, url, headers=prepared, stream=httpx.ByteStream(b""), extensions=extensions
        )
        request.read()
        return request


def _prepare(sends_length: bool, url: httpx.URL, headers: httpx.Headers) -> httpx.Headers:
    """httpx's automatic headers for a request without a body, then the caller's."""
    auto: list[tuple[bytes, bytes]] = []
    if url.host and "Host" not in headers:
        auto.append((b"Host", url.netloc))
    if sends_length and "Content-Length" not in headers and "Transfer-Encoding" not in headers:
        auto.append(_CONTENT_LENGTH_ZERO)
    return httpx.Headers(auto + headers.raw)
