"""One call, planned: the request built once, and everything the retry loop needs.

Shared by both modes. The loops in `cf/_async/_send.py` (and its generated
twin) only send, read, sleep and log; the decisions and the error values come
from here and from `cf._backoff`.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from typing import Any, TypedDict

import httpx

from cf._backoff import (
    Failure,
    RetryBudget,
    RetryDecision,
    RetryEvent,
    RetryPolicy,
    Stop,
    decide,
)
from cf._exceptions import (
    HTTPAioException,
    HTTPAioStatusError,
    HTTPAioTimeoutError,
    HTTPAioTransportError,
)
from cf._options import (
    ENGINE_OPTIONS,
    Defaults,
    check_deadline,
    check_headers,
    check_on_retry,
    check_timeout,
    check_trace,
    check_url,
    make_policy,
)
from cf._redact import redact_text, redact_url
from cf._trace import TraceInfo, otel_headers
from cf.loggingutils import install_redaction

__all__ = ["CLIENT_OPTIONS", "Call", "ClientOptions", "RequestOptions", "classify", "plan_call"]


class _CallDefaults(TypedDict, total=False):
    """Options that are client defaults at creation and per-call overrides."""

    timeout: float | httpx.Timeout | None
    retries: int
    failure_statuses: Iterable[int]
    backoff_base: float
    backoff_max: float
    max_retry_after: float
    respect_retry_after: bool
    retry_non_idempotent: bool
    retry_policy: RetryPolicy
    deadline: float | None
    trace: TraceInfo | None
    on_retry: Callable[[RetryEvent], object] | None
    headers: Any
    params: Any
    cookies: Any
    auth: Any
    base_url: str | httpx.URL
    follow_redirects: bool
    verify: ssl.SSLContext | str | bool
    cert: Any
    http2: bool
    proxy: Any
    transport: Any
    trust_env: bool


class RequestOptions(_CallDefaults, total=False):
    """Keyword arguments every request method takes (all optional)."""

    content: str | bytes | Iterable[bytes] | AsyncIterable[bytes] | None
    data: Mapping[str, Any] | None
    files: Any
    json: Any
    extensions: dict[str, Any] | None


class ClientOptions(_CallDefaults, total=False):
    """Keyword arguments of `create()` / `create_pool()`: the defaults of every call."""

    retry_budget: RetryBudget | None
    max_redirects: int
    event_hooks: Mapping[str, list[Callable[..., Any]]] | None
    default_encoding: str | Callable[[bytes], str]
    limits: httpx.Limits
    clock: Callable[[], float]
    sleep: Callable[[float], Any]
    random: Callable[[], float]


# Records of httpx, httpcore, aiohttp and oauthlib go through our redaction filter too.
install_redaction()

_KNOWN = RequestOptions.__optional_keys__ | RequestOptions.__required_keys__
CLIENT_OPTIONS = ClientOptions.__optional_keys__ | ClientOptions.__required_keys__
_BUILD = ("content", "data", "files", "json", "params", "headers", "cookies", "extensions")
_REPLAYABLE_STREAMS = (httpx.ByteStream,)


class Call:
    """A planned call: one request, sent up to `policy.max_attempts` times."""

    __slots__ = (
        "attempts",
        "auth",
        "budget",
        "clock",
        "deadline",
        "direct",
        "engine_key",
        "final",
        "follow_redirects",
        "idempotency_key",
        "method",
        "on_retry",
        "policy",
        "random",
        "replayable",
        "request",
        "started",
        "timeout",
        "trace",
        "trace_id",
    )

    def __init__(
        self,
        *,
        method: str,
        request: httpx.Request,
        policy: RetryPolicy,
        timeout: httpx.Timeout,
        deadline: float | None,
        trace: TraceInfo | None,
        on_retry: Callable[[RetryEvent], object] | None,
        budget: RetryBudget | None,
        follow_redirects: Any,
        auth: Any,
        replayable: bool,
        idempotency_key: bool,
        engine_key: tuple[tuple[str, Any], ...] | None,
        clock: Callable[[], float],
        random: Callable[[], float],
        direct: bool = False,
    ) -> None:
        self.method = method
        self.request = request
        self.policy = policy
        self.timeout = timeout
        self.deadline = deadline
        self.trace = trace
        self.on_retry = on_retry
        self.budget = budget
        self.follow_redirects = follow_redirects
        self.auth = auth
        self.replayable = replayable
        self.idempotency_key = idempotency_key
        self.engine_key = engine_key
        self.clock = clock
        self.random = random
        # True: send straight to the transport (no auth flow, redirects or hooks to run).
        self.direct = direct
        self.started = 0.0
        self.attempts = 0
        self.trace_id: str | None = None
        # Set by a send_once hook (OAuth's 401 replay) to make the current attempt the last.
        self.final = False

    @property
    def url(self) -> str:
        return redact_url(self.request.url)

    def remaining(self) -> float | None:
        """Seconds the deadline has left (None: no deadline)."""
        if self.deadline is None:
            return None
        return self.deadline - (self.clock() - self.started)

    def start_attempt(self) -> None:
        """Before each attempt: attempt timeouts and a fresh trace parent id."""
        self.attempts += 1
        request = self.request
        self.shrink_timeouts()
        if self.trace is not None:
            child = self.trace.child()
            request.headers["traceparent"] = child.traceparent
            if self.attempts == 1:
                self.trace_id = child.trace_id
                if child.tracestate:
                    request.headers["tracestate"] = child.tracestate
        elif self.attempts == 1:
            injected = otel_headers()
            if injected:
                request.headers.update(injected)
                parent = injected.get("traceparent", "")
                self.trace_id = parent[3:35] or None

    def decide(
        self, failure: Failure, status: int | None = None, retry_after: str | None = None
    ) -> RetryDecision:
        """Retry the attempt that just failed, or stop: the policy, then the budget."""
        decision = decide(
            self.policy,
            attempt=self.attempts,
            method=self.method,
            failure=failure,
            status=status,
            idempotency_key=self.idempotency_key,
            replayable=self.replayable,
            retry_after=retry_after,
            remaining=self.remaining(),
            random=self.random,
        )
        if decision.retry and self.final:
            return RetryDecision(stop=Stop.ATTEMPTS_EXHAUSTED)
        if decision.retry and self.budget is not None and not self.budget.withdraw():
            return RetryDecision(stop=Stop.BUDGET)
        return decision

    def shrink_timeouts(self) -> None:
        """Fit the attempt's timeouts into what the deadline has left (again after a
        wait inside the attempt, such as for an OAuth token)."""
        remaining = self.remaining()
        if remaining is not None:
            timeout = self.timeout
            self.request.extensions["timeout"] = httpx.Timeout(
                connect=_shrink(timeout.connect, remaining),
                read=_shrink(timeout.read, remaining),
                write=_shrink(timeout.write, remaining),
                pool=_shrink(timeout.pool, remaining),
            ).as_dict()

    # Errors, each stating method, redacted URL, attempts and trace id.
    def status_error(self, response: httpx.Response, stop: Stop | None) -> HTTPAioStatusError:
        return HTTPAioStatusError(
            f"status {response.status_code}"
            + (f" ({stop.value})" if stop not in (None, Stop.ATTEMPTS_EXHAUSTED) else ""),
            **self._details(stop),
            response=response,
        )

    def transport_error(self, exc: Exception, stop: Stop | None) -> HTTPAioException:
        cls: type[HTTPAioException] = HTTPAioException
        if isinstance(exc, httpx.TimeoutException):
            cls = HTTPAioTimeoutError
        elif isinstance(exc, httpx.TransportError):
            cls = HTTPAioTransportError
        # httpx's and aiohttp's messages may quote a URL or a header: redact them too.
        reason = (
            f"{type(exc).__name__}: {redact_text(str(exc))}" if str(exc) else type(exc).__name__
        )
        if stop not in (None, Stop.ATTEMPTS_EXHAUSTED, Stop.NOT_RETRYABLE):
            reason += f" ({stop.value})"
        return cls(reason, **self._details(stop))

    def deadline_error(self) -> HTTPAioTimeoutError:
        return HTTPAioTimeoutError(
            f"deadline of {self.deadline:g}s exceeded", **self._details(None)
        )

    def _details(self, stop: Stop | None) -> dict[str, Any]:
        return {
            "method": self.method,
            "url": self.request.url,
            "attempts": self.attempts,
            "trace_id": self.trace_id,
            "retry_budget_exhausted": stop is Stop.BUDGET,
        }

    def retry_event(
        self, delay: float, status: int | None, exc: BaseException | None
    ) -> RetryEvent:
        return RetryEvent(
            method=self.method,
            url=self.url,
            attempt=self.attempts,
            max_attempts=self.policy.max_attempts,
            status=status,
            exception=exc,
            delay=delay,
            trace_id=self.trace_id,
        )

    def log_retry(self, logger: logging.Logger, event: RetryEvent) -> None:
        reason = (
            f"status {event.status}" if event.status is not None else type(event.exception).__name__
        )
        logger.warning(
            "retrying %s %s after attempt %d/%d failed (%s) in %.3fs trace_id=%s",
            event.method,
            event.url,
            event.attempt,
            event.max_attempts,
            reason,
            event.delay,
            event.trace_id,
            extra={
                "method": event.method,
                "url": event.url,
                "attempt": event.attempt,
                "max_attempts": event.max_attempts,
                "reason": reason,
                "delay": event.delay,
                "trace_id": event.trace_id,
            },
        )


def _shrink(value: float | None, remaining: float) -> float:
    return max(min(value, remaining) if value is not None else remaining, 0.001)


def classify(exc: Exception) -> Failure | None:
    """Where a transport failure happened; None: not a failure we ever retry."""
    not_sent = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
    if isinstance(exc, not_sent):
        return Failure.NOT_SENT
    if isinstance(
        exc,
        (
            httpx.ReadTimeout,
            httpx.WriteTimeout,
            httpx.ReadError,
            httpx.WriteError,
            httpx.RemoteProtocolError,
            httpx.CloseError,
        ),
    ):
        return Failure.SENT
    return None


def plan_call(
    client: httpx.AsyncClient | httpx.Client,
    defaults: Defaults,
    method: str,
    url: httpx.URL | str,
    options: Mapping[str, Any],
    *,
    preload: bool = False,
) -> Call:
    """Validate a call's options and build its request; raises before any I/O.

    `preload`: the caller wants the whole body (not a stream); a transport that
    knows the `cf_preload` extension may read it in one go.
    """
    if options:
        unknown = options.keys() - _KNOWN
        if unknown:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    if method not in _METHODS:
        method = _check_method(method)
    target = _target_url(client, defaults, url, options)
    get = options.get
    policy = defaults.policy
    timeout = defaults.timeout
    deadline = defaults.deadline
    trace = defaults.trace
    on_retry = defaults.on_retry
    if options:
        policy = make_policy(policy, options)
        if "timeout" in options:
            timeout = check_timeout(options["timeout"])
        if "deadline" in options:
            deadline = check_deadline(options["deadline"])
        trace = check_trace(get("trace", trace))
        on_retry = check_on_retry(get("on_retry", on_retry))
    request = _build_request(client, defaults, method, target, timeout, options)
    if preload:
        request.extensions["cf_preload"] = True
    follow_redirects = get("follow_redirects", httpx.USE_CLIENT_DEFAULT)
    auth = get("auth", httpx.USE_CLIENT_DEFAULT)
    engine = tuple((k, options[k]) for k in ENGINE_OPTIONS if k in options) if options else ()
    direct = (
        defaults.direct
        and not engine
        and not target.userinfo  # httpx's auth flow turns it into Basic auth
        and auth is httpx.USE_CLIENT_DEFAULT
        and not (
            client.follow_redirects
            if follow_redirects is httpx.USE_CLIENT_DEFAULT
            else follow_redirects
        )
    )
    stream = request.stream
    return Call(
        method=method,
        request=request,
        policy=policy,
        timeout=timeout,
        deadline=deadline,
        trace=trace,
        on_retry=on_retry,
        budget=defaults.budget,
        follow_redirects=follow_redirects,
        auth=auth,
        replayable=type(stream) is httpx.ByteStream or _is_multipart(request),
        idempotency_key="idempotency-key" in request.headers,
        engine_key=engine or None,
        clock=defaults.clock or time.monotonic,
        random=defaults.random or random.random,
        direct=direct,
    )


_METHODS = {"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "TRACE"}


def _check_method(method: object) -> str:
    if not isinstance(method, str) or not method.isascii() or not method.isalpha():
        raise ValueError(f"invalid HTTP method {method!r}")
    return method.upper()


def _target_url(
    client: httpx.AsyncClient | httpx.Client,
    defaults: Defaults,
    url: httpx.URL | str,
    options: Mapping[str, Any],
) -> httpx.URL:
    """The absolute URL, checked; parsed strings are cached per client."""
    if "base_url" in options:
        base = check_url(options["base_url"])
        if not base.raw_path.endswith(b"/"):  # as httpx does for its base_url
            base = base.copy_with(raw_path=base.raw_path + b"/")
        return check_url(url, base)
    if type(url) is not str:
        return check_url(url, client.base_url)
    cache = defaults.urls
    target = cache.get(url)
    if target is None:
        target = check_url(url, client.base_url)
        if len(cache) >= _MAX_CACHED_URLS:
            cache.clear()
        cache[url] = target
    return target


_MAX_CACHED_URLS = 512


def _build_request(
    client: httpx.AsyncClient | httpx.Client,
    defaults: Defaults,
    method: str,
    url: httpx.URL,
    timeout: httpx.Timeout,
    options: Mapping[str, Any],
) -> httpx.Request:
    """What `client.build_request` builds, without its work when there is nothing to merge."""
    build = {k: options[k] for k in _BUILD if k in options} if options else {}
    if "headers" in build:
        build["headers"] = check_headers(build["headers"])
    try:
        if "params" in build or "cookies" in build or client.params or client.cookies:
            return client.build_request(method, url, timeout=timeout, **build)
        headers = client.headers
        if "headers" in build:
            headers = headers.copy()
            headers.update(build.pop("headers"))
        extensions = {
            "timeout": defaults.timeout_dict if timeout is defaults.timeout else timeout.as_dict()
        }
        if "extensions" in build:
            extensions.update(build.pop("extensions"))
        return httpx.Request(method, url, headers=headers, extensions=extensions, **build)
    except httpx.InvalidURL as exc:
        raise ValueError(f"invalid URL {str(url)!r}: {exc}") from None


def _is_multipart(request: httpx.Request) -> bool:
    # httpx's multipart stream re-reads (and seeks) its files on every iteration.
    return type(request.stream).__name__ == "MultipartStream"
