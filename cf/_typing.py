"""Type aliases for what httpx accepts (httpx does not export its own aliases).

They mirror the shapes httpx documents for `headers=`, `params=`, `cookies=`,
`auth=`, `cert=`, `proxy=`, `content=` and `files=`, so that the option
TypedDicts of both modes can say what a call takes.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from http.cookiejar import CookieJar
from typing import IO, Any

import httpx

__all__ = [
    "AuthTypes",
    "CertTypes",
    "CookieTypes",
    "HeaderTypes",
    "ProxyTypes",
    "QueryParamTypes",
    "RequestContent",
    "RequestFiles",
]

HeaderTypes = (
    httpx.Headers
    | Mapping[str, str]
    | Mapping[bytes, bytes]
    | Sequence[tuple[str, str]]
    | Sequence[tuple[bytes, bytes]]
)
QueryParamTypes = (
    httpx.QueryParams
    | Mapping[str, Any]
    | list[tuple[str, Any]]
    | tuple[tuple[str, Any], ...]
    | str
    | bytes
)
CookieTypes = httpx.Cookies | CookieJar | dict[str, str] | list[tuple[str, str]]
AuthTypes = tuple[str | bytes, str | bytes] | Callable[[httpx.Request], httpx.Request] | httpx.Auth
CertTypes = str | tuple[str, str] | tuple[str, str, str]
ProxyTypes = str | httpx.URL | httpx.Proxy
RequestContent = str | bytes | Iterable[bytes] | AsyncIterable[bytes]
_FileContent = IO[bytes] | bytes | str
_FileTypes = (
    _FileContent
    | tuple[str | None, _FileContent]
    | tuple[str | None, _FileContent, str | None]
    | tuple[str | None, _FileContent, str | None, Mapping[str, str]]
)
RequestFiles = Mapping[str, _FileTypes] | Sequence[tuple[str, _FileTypes]]
