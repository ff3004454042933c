"""The delay sequences of the retry and poll policies, checked exactly, not by luck.

Without jitter a sequence must be exactly ``first * growth**n`` up to the cap. With full
jitter every draw must stay within [floor, unjittered delay], over thousands of draws
from a seeded generator, so a removed cap or floor fails on every run, not one in six.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator

import pytest

from aiotts import PollPolicy, RetryPolicy
from aiotts._backoff import constant, exponential, jittered

DRAWS = 40  # delays taken from each sequence: far past the point where the cap applies
SEQUENCES = 100  # sequences drawn, each with its own jitter


@pytest.fixture(autouse=True)
def seeded() -> None:
    random.seed(20260101)  # the jitter's draws are the same on every run


def take(delays: Iterator[float], count: int = DRAWS) -> list[float]:
    return list(itertools.islice(delays, count))


def expected(first: float, growth: float, cap: float, count: int = DRAWS) -> list[float]:
    return [min(first * growth**n, cap) for n in range(count)]


def test_exponential_is_exactly_the_capped_sequence() -> None:
    assert take(exponential(0.2, 2.0, 10.0)) == pytest.approx(expected(0.2, 2.0, 10.0))
    assert take(exponential(0.2, 2.0, 10.0), 8) == pytest.approx(
        [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    )


def test_exponential_with_growth_one_is_flat() -> None:
    assert take(exponential(0.5, 1.0, 10.0), 5) == [0.5] * 5


def test_constant_is_constant() -> None:
    assert take(constant(0.4), 5) == [0.4] * 5


def test_no_jitter_keeps_every_delay() -> None:
    assert take(jittered(iter([1.0, 2.0, 3.0]), "none", floor=0.5)) == [1.0, 2.0, 3.0]


def test_full_jitter_stays_between_the_floor_and_the_delay() -> None:
    draws = take(jittered(itertools.repeat(1.0), "full", floor=0.25), 2000)
    assert all(0.25 <= d <= 1.0 for d in draws)
    # drawn across the whole range, not pinned to one end
    assert min(draws) < 0.3
    assert max(draws) > 0.95
    assert 0.55 < sum(draws) / len(draws) < 0.70  # uniform on [0.25, 1]: mean 0.625


def test_full_jitter_of_a_delay_below_the_floor_is_the_floor() -> None:
    assert take(jittered(iter([0.1, 0.0]), "full", floor=0.25)) == [0.25, 0.25]


def test_retry_delays_never_exceed_the_cap_or_the_growing_delay() -> None:
    policy = RetryPolicy(first_delay=0.2, growth=2.0, max_delay=10.0)
    bounds = expected(0.2, 2.0, 10.0)
    tops = [0.0] * DRAWS
    for _ in range(SEQUENCES):
        for n, delay in enumerate(take(policy.delays())):
            assert 0.0 <= delay <= bounds[n], (n, delay)
            tops[n] = max(tops[n], delay)
    # the jitter is full: the largest draws come close to each bound
    assert all(top > 0.8 * bound for top, bound in zip(tops, bounds, strict=True))


def test_retry_delays_follow_the_policy_fields() -> None:
    policy = RetryPolicy(first_delay=1.0, growth=3.0, max_delay=5.0)
    for _ in range(SEQUENCES):
        first, second, *rest = take(policy.delays())
        assert first <= 1.0
        assert second <= 3.0
        assert all(d <= 5.0 for d in rest)


@pytest.mark.parametrize("jitter", ["none", "full"])
def test_pending_poll_delays_never_exceed_the_cap(jitter: str) -> None:
    policy = PollPolicy(
        first_delay=0.25,
        growth=1.2,
        max_delay=5.0,
        min_delay=0.05,
        jitter=jitter,  # type: ignore[arg-type]
    )
    bounds = expected(0.25, 1.2, 5.0)
    for _ in range(SEQUENCES if jitter == "full" else 1):
        for n, delay in enumerate(take(policy.pending_delays())):
            assert 0.05 <= delay <= bounds[n] + 1e-12, (n, delay)


def test_pending_poll_delays_without_jitter_are_exactly_the_sequence() -> None:
    policy = PollPolicy(first_delay=0.25, growth=1.2, max_delay=5.0, jitter="none")
    assert take(policy.pending_delays()) == pytest.approx(expected(0.25, 1.2, 5.0))


@pytest.mark.parametrize("jitter", ["none", "full"])
def test_processing_poll_delays_stay_at_the_processing_delay(jitter: str) -> None:
    policy = PollPolicy(processing_delay=0.4, min_delay=0.05, jitter=jitter)  # type: ignore[arg-type]
    draws = take(policy.processing_delays(), 1000)
    if jitter == "none":
        assert draws == [0.4] * 1000
    else:
        assert all(0.05 <= d <= 0.4 for d in draws)
        assert min(draws) < 0.1 and max(draws) > 0.35
