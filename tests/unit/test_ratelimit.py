"""The shared rate limiter, on a fake clock: no real sleeping."""

from __future__ import annotations

import math

import pytest

from aiotts._ratelimit import RateLimiter

pytestmark = pytest.mark.anyio


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(time: FakeTime, rate: float | None, burst: int = 1) -> RateLimiter:
    return RateLimiter(rate, burst=burst, clock=time.clock, sleep=time.sleep)


async def test_unlimited_never_sleeps() -> None:
    time = FakeTime()
    rl = limiter(time, None)
    for _ in range(1000):
        await rl.acquire()
    assert time.slept == []
    assert math.isinf(rl.rate)


async def test_a_cap_spaces_requests_evenly() -> None:
    time = FakeTime()
    rl = limiter(time, 10.0)
    start = time.now
    for _ in range(21):
        await rl.acquire()
    assert time.now - start == pytest.approx(2.0)


async def test_burst_lets_the_first_requests_through_at_once() -> None:
    time = FakeTime()
    rl = limiter(time, 10.0, burst=5)
    for _ in range(5):
        await rl.acquire()
    assert time.slept == []
    await rl.acquire()
    assert time.slept  # the sixth waits


async def test_a_429_halves_the_rate_once_per_cooldown() -> None:
    time = FakeTime()
    rl = limiter(time, 100.0)
    rl.throttled()
    assert rl.rate == pytest.approx(1.0)  # half of the 1/s sent so far, floored at min_rate
    rl2 = limiter(FakeTime(), 100.0)
    for _ in range(50):
        await rl2.acquire()
    rate_before = rl2.rate
    rl2.throttled()
    after_first = rl2.rate
    rl2.throttled()  # inside the cooldown: one signal, not two
    assert after_first < rate_before
    assert rl2.rate == after_first
    assert rl2.throttle_events == 1


async def test_successes_let_the_rate_regrow_to_the_cap() -> None:
    time = FakeTime()
    rl = limiter(time, 20.0)
    for _ in range(20):
        await rl.acquire()
    rl.throttled()
    low = rl.rate
    assert low < 20.0
    for _ in range(1000):
        rl.succeeded()
    assert rl.rate == 20.0
    assert rl.rate > low


async def test_unlimited_client_throttles_then_returns_to_unlimited() -> None:
    time = FakeTime()
    rl = limiter(time, None)
    for _ in range(200):
        await rl.acquire()
    rl.throttled()
    assert rl.rate == pytest.approx(100.0)  # half of the 200/s it was sending
    start = time.now
    for _ in range(100):
        await rl.acquire()
    assert time.now - start == pytest.approx(0.99, abs=0.02)  # now paced at 100/s
    for _ in range(10_000):
        rl.succeeded()
    assert math.isinf(rl.rate)
