"""The retry loop: bounded in attempts and in time, never around cancellation.

An attempt signals "this may succeed if tried again" by raising ``Retryable``, which wraps
the error to report when the budget runs out. Nothing else is caught: cancellation
(a ``BaseException``) and every other error pass straight through, so a retry can never
swallow a cancel or hide a bug.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiotts._config import RetryPolicy
from aiotts._errors import AiottsError

__all__ = ["Retryable", "UncertainDelivery", "retry_after", "retrying"]

T = TypeVar("T")


class Retryable(Exception):
    """Internal signal: the attempt failed in a way that may pass.

    ``sent`` tells whether the request may have reached the server; ``retry_after`` is the
    server's own ``Retry-After``, in seconds, when it gave one. Raise it ``from`` the
    foreign exception behind it: that becomes the cause of ``error`` when it is reported.
    """

    def __init__(self, error: AiottsError, *, sent: bool, retry_after: float | None = None):
        super().__init__(str(error))
        self.error = error
        self.sent = sent
        self.retry_after = retry_after
        self.attempt = 1
        """Which attempt failed (1: the first); set by the retry loop."""


class UncertainDelivery(Exception):
    """Internal signal: a non-idempotent request failed after it may have been delivered."""

    def __init__(self, error: AiottsError) -> None:
        super().__init__(str(error))
        self.error = error


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    idempotent: bool,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    on_retry: Callable[[Retryable, float], None] | None = None,
) -> T:
    """Run ``attempt`` until it returns, retrying what it marks ``Retryable``.

    A non-idempotent request is retried only when it was provably not sent; otherwise
    ``UncertainDelivery`` is raised so the caller can say what it sent.
    """
    try:
        return await attempt()  # the common case: no retry, so no clock and no delays
    except Retryable as first:
        failure = first
    return await retry_after(
        failure,
        attempt,
        policy,
        idempotent=idempotent,
        clock=clock,
        sleep=sleep,
        on_retry=on_retry,
    )


async def retry_after(
    failure: Retryable,
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    idempotent: bool,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    on_retry: Callable[[Retryable, float], None] | None = None,
) -> T:
    """Go on after the first attempt failed with ``failure``: ``retrying`` without its
    first attempt, for callers that made that one themselves."""
    give_up_at = clock() + policy.max_time
    delays = policy.delays()
    attempts = 1
    last = failure
    while True:
        if last.sent and not idempotent:
            raise UncertainDelivery(last.error) from last.__cause__
        delay = next(delays)
        if last.retry_after is not None:
            delay = max(delay, last.retry_after)
        if attempts >= policy.max_attempts or clock() + delay > give_up_at:
            raise last.error from last.__cause__
        if on_retry is not None:
            last.attempt = attempts
            on_retry(last, delay)
        await sleep(delay)
        attempts += 1
        try:
            return await attempt()
        except Retryable as again:
            last = again
