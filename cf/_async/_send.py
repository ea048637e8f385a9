"""The retry loop: send, read, decide, sleep. Decisions come from cf._backoff."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import httpx

from cf._backoff import Failure
from cf._call import Call, classify

__all__ = ["send_with_retries"]


async def send_with_retries(
    send_once: Callable[[Call], Awaitable[httpx.Response]],
    call: Call,
    *,
    stream: bool,
    sleep: Callable[[float], Awaitable[None]],
    logger: logging.Logger,
) -> httpx.Response:
    """Send `call.request` until it succeeds or its policy says stop.

    A response whose status is not a failure status is returned (its body
    read unless `stream`); the last failure is raised as an HTTPAioException.
    Every discarded response is closed before the next attempt.
    """
    policy = call.policy
    budget = call.budget
    call.started = call.clock()
    if budget is not None:
        budget.deposit()
    while True:
        remaining = call.remaining()
        if remaining is not None and remaining <= 0:
            raise call.deadline_error()
        call.start_attempt()
        response: httpx.Response | None = None
        status: int | None = None
        error: httpx.RequestError | None = None
        try:
            response = await send_once(call)
            status = response.status_code
            if status not in policy.failure_statuses:
                if not stream:
                    await response.aread()
                return response
        except httpx.RequestError as exc:
            if response is not None:
                await response.aclose()
            failure = classify(exc)
            if failure is None:
                raise call.transport_error(exc, None) from exc
            decision = call.decide(failure)
            if not decision.retry:
                raise call.transport_error(exc, decision.stop) from exc
            status, error = None, exc
        except BaseException:
            if response is not None:
                await response.aclose()
            raise
        else:
            decision = call.decide(Failure.STATUS, status, response.headers.get("retry-after"))
            if not decision.retry:
                try:
                    await response.aread()
                except httpx.RequestError as exc:  # the failure response's body broke off
                    await response.aclose()
                    raise call.transport_error(exc, None) from exc
                except BaseException:
                    await response.aclose()
                    raise
                raise call.status_error(response, decision.stop)
            await response.aclose()
        event = call.retry_event(decision.delay, status, error)
        call.log_retry(logger, event)
        if call.on_retry is not None:
            call.on_retry(event)
        await sleep(decision.delay)
