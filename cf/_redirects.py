"""The request a redirect response points to (`response.next_request`), as httpx builds it.

Used by the clients' direct path (a call that follows no redirects, has no auth
flow and no event hooks goes straight to cf's transport, skipping httpx's
generic machinery for speed): the same `next_request` httpx's client gives,
by httpx's documented rules (RFC 9110 15.4 and what browsers do): 303 and 302
turn the method into GET (but HEAD), 301 turns POST into GET; a method turned
into GET drops the body and its headers; `Authorization` is dropped on the way
to another origin (but for a plain http -> https upgrade of the same host);
`Host` follows the URL; `Cookie` is recomputed from the client's jar. The
parity suite (`tests/parity/`) compares it with httpx's own. Pure: no I/O.
"""

from __future__ import annotations

import httpx

__all__ = ["redirect_request"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _port(url: httpx.URL) -> int | None:
    return url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme)


def _same_origin(url: httpx.URL, other: httpx.URL) -> bool:
    return url.scheme == other.scheme and url.host == other.host and _port(url) == _port(other)


def _is_https_upgrade(url: httpx.URL, location: httpx.URL) -> bool:
    return (
        url.host == location.host
        and url.scheme == "http"
        and _port(url) == 80
        and location.scheme == "https"
        and _port(location) == 443
    )


def _method(request: httpx.Request, status: int) -> str:
    method = request.method
    if status in (303, 302) and method != "HEAD":
        return "GET"
    if status == 301 and method == "POST":
        return "GET"
    return method


def _url(request: httpx.Request, response: httpx.Response) -> httpx.URL:
    location = response.headers["Location"]
    try:
        url = httpx.URL(location)
    except httpx.InvalidURL as exc:
        raise httpx.RemoteProtocolError(
            f"Invalid URL in location header: {exc}.", request=request
        ) from None
    if url.scheme and not url.host:  # "absolute" form without a host
        url = url.copy_with(host=request.url.host)
    if url.is_relative_url:
        url = request.url.join(url)
    if request.url.fragment and not url.fragment:
        url = url.copy_with(fragment=request.url.fragment)
    return url


def redirect_request(
    request: httpx.Request, response: httpx.Response, cookies: httpx.Cookies
) -> httpx.Request:
    """The next request of a redirect `response` to `request` (it has a Location)."""
    method = _method(request, response.status_code)
    url = _url(request, response)
    headers = httpx.Headers(request.headers)
    if not _same_origin(url, request.url):
        if not _is_https_upgrade(request.url, url):
            headers.pop("Authorization", None)
        headers["Host"] = url.netloc.decode("ascii")
    to_get = method != request.method and method == "GET"
    if to_get:
        headers.pop("Content-Length", None)
        headers.pop("Transfer-Encoding", None)
    headers.pop("Cookie", None)
    return httpx.Request(
        method=method,
        url=url,
        headers=headers,
        cookies=httpx.Cookies(cookies),
        stream=None if to_get else request.stream,
        extensions=request.extensions,
    )
