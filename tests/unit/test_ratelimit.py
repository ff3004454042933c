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


async def second(rl: RateLimiter, time: FakeTime, *, sent: int, ok: int, refused: int) -> None:
    """One second of traffic, then the clock moves on to the next second."""
    start = time.now
    for _ in range(sent):
        await rl.acquire()
    for _ in range(ok):
        rl.succeeded()
    for _ in range(refused):
        rl.throttled()
    time.now = max(time.now, start + 1.0)


async def test_stray_429s_do_not_slow_everyone() -> None:
    time = FakeTime()
    rl = limiter(time, 100.0)
    await second(rl, time, sent=100, ok=95, refused=5)
    await rl.acquire()  # the next second starts: the last one is judged
    assert rl.rate == 100.0
    assert rl.throttle_events == 0


async def test_many_429s_cut_the_rate_once_a_second() -> None:
    time = FakeTime()
    rl = limiter(time, 100.0)
    await second(rl, time, sent=50, ok=30, refused=20)
    await rl.acquire()
    assert rl.rate == pytest.approx(50 * (1 - 20 / 50))
    assert rl.throttle_events == 1


async def test_mostly_refused_requests_bring_the_rate_down_fast() -> None:
    time = FakeTime()
    rl = limiter(time, None)
    await second(rl, time, sent=400, ok=100, refused=300)
    await rl.acquire()
    assert rl.rate == pytest.approx(200.0)  # never cut by more than half at once
    for _ in range(4):
        sent = int(rl.rate)
        await second(rl, time, sent=sent, ok=min(sent, 100), refused=max(sent - 100, 0))
    await rl.acquire()
    assert 50 < rl.rate < 130  # near the 100/s the server accepts


async def test_successes_let_the_rate_regrow_to_the_cap() -> None:
    time = FakeTime()
    rl = limiter(time, 20.0)
    await second(rl, time, sent=20, ok=0, refused=20)
    await rl.acquire()
    low = rl.rate
    assert low == pytest.approx(10.0)
    for _ in range(1000):
        rl.succeeded()
    assert rl.rate == 20.0


async def test_unlimited_client_throttles_then_returns_to_unlimited() -> None:
    time = FakeTime()
    rl = limiter(time, None)
    await second(rl, time, sent=200, ok=100, refused=100)
    await rl.acquire()
    assert rl.rate == pytest.approx(100.0)
    start = time.now
    for _ in range(100):
        await rl.acquire()
    assert time.now - start == pytest.approx(1.0, abs=0.03)  # now paced at 100/s
    for _ in range(10_000):
        rl.succeeded()
    assert math.isinf(rl.rate)


@pytest.mark.parametrize(("ok", "refused"), [(0, 1), (2, 1), (9, 1), (0, 2)])
async def test_a_429_among_the_very_first_answers_does_not_slow_the_client(
    ok: int, refused: int
) -> None:
    # One refused answer out of one is not "everything is refused": too few answers to
    # judge, so the share is taken over at least 20 of them.
    for rate in (None, 50.0):
        time = FakeTime()
        rl = limiter(time, rate)
        await second(rl, time, sent=ok + refused, ok=ok, refused=refused)
        await rl.acquire()
        assert rl.rate == (math.inf if rate is None else rate)
        assert rl.throttle_events == 0


async def test_the_share_of_429s_is_judged_over_twenty_answers_at_least() -> None:
    time = FakeTime()
    rl = limiter(time, None)
    await second(rl, time, sent=3, ok=0, refused=3)  # 3 of at least 20: 15%, too many
    await rl.acquire()
    assert rl.throttle_events == 1
    assert rl.rate == pytest.approx(3 * (1 - 3 / 20))


@pytest.mark.parametrize(("ok", "refused", "slowed"), [(18, 2, False), (17, 3, True)])
async def test_more_than_one_answer_in_ten_refused_slows_the_client(
    ok: int, refused: int, slowed: bool
) -> None:
    time = FakeTime()
    rl = limiter(time, 100.0)
    await second(rl, time, sent=20, ok=ok, refused=refused)
    await rl.acquire()
    assert rl.throttle_events == int(slowed)
    assert (rl.rate < 100.0) is slowed


async def test_the_first_request_under_a_cap_does_not_sleep_at_all() -> None:
    time = FakeTime()
    rl = limiter(time, 10.0)
    await rl.acquire()
    assert time.slept == []  # not even a zero-second sleep
    await rl.acquire()
    assert time.slept == [pytest.approx(0.1)]


async def test_requests_sent_without_acquire_count_towards_the_rate() -> None:
    time = FakeTime()
    rl = limiter(time, None)
    start = time.now
    for _ in range(200):
        rl.sent()  # the unlimited fast path
    for _ in range(100):
        rl.succeeded()
    for _ in range(100):
        rl.throttled()
    time.now = start + 1.0
    await rl.acquire()
    assert rl.rate == pytest.approx(100.0)  # what it was sending, times the half accepted


async def test_every_slowdown_is_counted_and_the_rate_never_drops_below_the_floor() -> None:
    time = FakeTime()
    rl = limiter(time, 4.0)
    for slowdowns in (1, 2):
        for _ in range(20):
            rl.throttled()
        time.now += 1.0
        await rl.acquire()  # one request a second, half of it refused: the floor, 1/s
        assert rl.rate == 1.0
        assert rl.throttle_events == slowdowns


async def test_a_second_with_nothing_sent_counts_as_one_request() -> None:
    time = FakeTime()
    rl = RateLimiter(10.0, burst=1, clock=time.clock, sleep=time.sleep, min_rate=0.1)
    start = time.now
    for _ in range(20):
        rl.throttled()  # answers to requests of an earlier second
    time.now = start + 1.0
    await rl.acquire()
    assert rl.rate == pytest.approx(0.5)


@pytest.mark.parametrize("gap", [2.0, 2.5])
async def test_a_second_long_past_is_not_judged(gap: float) -> None:
    # Only the second that just ended says how the server is doing now.
    time = FakeTime()
    rl = limiter(time, 100.0)
    start = time.now
    await second(rl, time, sent=50, ok=0, refused=50)
    time.now = start + gap
    await rl.acquire()
    assert rl.rate == 100.0
    assert rl.throttle_events == 0


async def test_an_unlimited_client_is_free_again_at_twice_what_it_was_sending() -> None:
    time = FakeTime()
    rl = limiter(time, None)
    await second(rl, time, sent=200, ok=100, refused=100)
    await rl.acquire()
    assert rl.rate == pytest.approx(100.0)
    for _ in range(2_990):  # each success adds 0.1/s: 399/s, still limited
        rl.succeeded()
    assert rl.rate == pytest.approx(399.0)
    for _ in range(20):
        rl.succeeded()
    assert math.isinf(rl.rate)  # past 400/s: free again


async def test_repr_shows_the_rate_and_the_slowdowns() -> None:
    time = FakeTime()
    rl = limiter(time, None)
    assert repr(rl) == "<RateLimiter rate=unlimited throttle_events=0>"
    await second(rl, time, sent=200, ok=100, refused=100)
    await rl.acquire()
    assert repr(rl) == "<RateLimiter rate=100.0/s throttle_events=1>"


async def test_free_again_as_soon_as_it_has_regrown_to_twice_what_it_was_sending() -> None:
    time = FakeTime()
    rl = RateLimiter(None, burst=1, clock=time.clock, sleep=time.sleep, recovery=1.0)
    await second(rl, time, sent=200, ok=100, refused=100)
    await rl.acquire()
    assert rl.rate == 100.0
    for _ in range(299):
        rl.succeeded()
    assert rl.rate == 399.0
    rl.succeeded()  # exactly 400/s: twice the 200/s it was sending when slowed
    assert math.isinf(rl.rate)
