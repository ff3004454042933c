"""The retry loop: bounds, Retry-After, idempotency and cancellation."""

from __future__ import annotations

import anyio
import pytest

from aiotts._config import RetryPolicy
from aiotts._errors import ConnectError, ServerError
from aiotts._retry import Retryable, UncertainDelivery, retrying

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def failing(times: int, failure: Retryable) -> tuple[list[int], object]:
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise failure
        return "ok"

    return calls, attempt


async def test_retries_until_success() -> None:
    clock = Clock()
    calls, attempt = failing(3, Retryable(ServerError("503", status=503), sent=True))
    result = await retrying(attempt, RetryPolicy(), idempotent=True, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert result == "ok"
    assert len(calls) == 4
    assert len(clock.sleeps) == 3


async def test_attempts_are_bounded() -> None:
    clock = Clock()
    calls, attempt = failing(100, Retryable(ServerError("503", status=503), sent=True))
    with pytest.raises(ServerError, match="503"):
        await retrying(
            attempt, RetryPolicy(max_attempts=4), idempotent=True, clock=clock, sleep=clock.sleep
        )  # type: ignore[arg-type]
    assert len(calls) == 4


async def test_time_is_bounded() -> None:
    clock = Clock()
    policy = RetryPolicy(max_attempts=1000, max_time=5.0, first_delay=1.0, max_delay=1.0)
    calls, attempt = failing(1000, Retryable(ServerError("503", status=503), sent=True))
    with pytest.raises(ServerError):
        await retrying(attempt, policy, idempotent=True, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert clock.now <= 5.0
    assert len(calls) > 3


async def test_retry_after_is_honoured_as_a_minimum() -> None:
    clock = Clock()
    _calls, attempt = failing(
        1, Retryable(ServerError("429", status=429), sent=True, retry_after=7.5)
    )
    await retrying(
        attempt, RetryPolicy(max_time=60), idempotent=True, clock=clock, sleep=clock.sleep
    )  # type: ignore[arg-type]
    assert clock.sleeps == [7.5]


async def test_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    clock = Clock()
    calls, attempt = failing(
        1, Retryable(ServerError("429", status=429), sent=True, retry_after=600)
    )
    with pytest.raises(ServerError):
        await retrying(
            attempt, RetryPolicy(max_time=60), idempotent=True, clock=clock, sleep=clock.sleep
        )  # type: ignore[arg-type]
    assert clock.sleeps == []
    assert len(calls) == 1


async def test_non_idempotent_requests_retry_only_when_unsent() -> None:
    clock = Clock()
    calls, attempt = failing(2, Retryable(ConnectError("refused"), sent=False))
    assert (
        await retrying(attempt, RetryPolicy(), idempotent=False, clock=clock, sleep=clock.sleep)
        == "ok"
    )  # type: ignore[arg-type]
    assert len(calls) == 3

    calls, attempt = failing(2, Retryable(ServerError("502", status=502), sent=True))
    with pytest.raises(UncertainDelivery) as caught:
        await retrying(attempt, RetryPolicy(), idempotent=False, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert len(calls) == 1
    assert isinstance(caught.value.error, ServerError)


async def test_other_errors_are_not_retried() -> None:
    clock = Clock()
    calls: list[int] = []

    async def attempt() -> None:
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await retrying(attempt, RetryPolicy(), idempotent=True, clock=clock, sleep=clock.sleep)
    assert len(calls) == 1


async def test_cancellation_during_the_backoff_sleep_is_not_swallowed() -> None:
    calls: list[int] = []

    async def attempt() -> None:
        calls.append(1)
        raise Retryable(ServerError("503", status=503), sent=True)

    policy = RetryPolicy(first_delay=5.0, max_delay=5.0, max_attempts=50, max_time=1000)
    with anyio.move_on_after(0.2) as scope:
        await retrying(
            attempt, policy, idempotent=True, clock=anyio.current_time, sleep=anyio.sleep
        )
    assert scope.cancelled_caught
    assert len(calls) <= 2


async def test_on_retry_hears_of_each_retry_with_its_failure_and_delay() -> None:
    clock = Clock()
    failure = Retryable(ServerError("503", status=503), sent=True, retry_after=2.0)
    _calls, attempt = failing(2, failure)
    heard: list[tuple[Retryable, float]] = []
    result = await retrying(
        attempt,  # type: ignore[arg-type]
        RetryPolicy(max_time=60),
        idempotent=True,
        clock=clock,
        sleep=clock.sleep,
        on_retry=lambda retry, delay: heard.append((retry, delay)),
    )
    assert result == "ok"
    assert heard == [(failure, 2.0), (failure, 2.0)]
    assert clock.sleeps == [2.0, 2.0]


async def test_a_retry_that_ends_exactly_at_max_time_still_happens() -> None:
    clock = Clock()
    _calls, attempt = failing(
        1, Retryable(ServerError("429", status=429), sent=True, retry_after=60.0)
    )
    result = await retrying(
        attempt,  # type: ignore[arg-type]
        RetryPolicy(max_time=60),
        idempotent=True,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result == "ok"
    assert clock.sleeps == [60.0]


def test_the_internal_signals_carry_the_error_text() -> None:
    error = ServerError("503 from the server", status=503)
    assert str(Retryable(error, sent=True)) == str(error)
    assert str(UncertainDelivery(error)) == str(error)
    assert UncertainDelivery(error).error is error
