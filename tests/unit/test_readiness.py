"""The readiness model on a manual clock: forecasts for tasks the client submitted, the
fallback to the poll policy for the others, bounded memory. No event loop, no sleeping."""

from __future__ import annotations

import heapq
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotts import TaskStatus
from aiotts._readiness import BOOTSTRAP, MIN_COMPLETIONS, MIN_STEP, Readiness


def fifo_queue(
    lengths: list[int], *, workers: int, base: float, per_char: float, rate: float
) -> list[tuple[str, float, int, float]]:
    """(id, submitted at, characters, ready at) of tasks submitted ``rate`` a second into a
    FIFO queue of ``workers`` workers, each task taking ``base + per_char * chars``."""
    free = [0.0] * workers
    tasks = []
    for n, chars in enumerate(lengths):
        submitted = n / rate
        start = max(submitted, heapq.heappop(free))
        ready = start + base + per_char * chars
        heapq.heappush(free, ready)
        tasks.append((f"t{n}", submitted, chars, ready))
    return tasks


def learn(readiness: Readiness, tasks: list[tuple[str, float, int, float]], upto: int) -> None:
    """Submit every task; the first ``upto`` are seen not ready 50 ms before they are
    ready and ended 50 ms after."""
    for task_id, submitted, chars, _ in tasks:
        readiness.submitted(task_id, at=submitted, chars=chars)
    for task_id, _, _, ready in tasks[:upto]:
        readiness.not_ready(task_id, at=ready - 0.05)
        readiness.completed(task_id, at=ready + 0.05)


@settings(max_examples=30, deadline=None)
@given(
    workers=st.integers(1, 16),
    base=st.floats(0.05, 1.0),
    per_char=st.floats(0.0, 0.005),
    seed=st.integers(0, 2**32 - 1),
)
def test_forecasts_converge_on_a_fifo_queue_with_linear_service(
    workers: int, base: float, per_char: float, seed: int
) -> None:
    rng = random.Random(seed)
    lengths = [rng.randint(20, 500) for _ in range(400)]
    # Submitted faster than the queue drains, so that it stays busy.
    drain = workers / (base + per_char * 260)
    tasks = fifo_queue(lengths, workers=workers, base=base, per_char=per_char, rate=4 * drain)
    readiness = Readiness()
    learn(readiness, tasks, upto=300)
    # The next tasks in the queue, forecast from what ended before them.
    gaps = []
    for task_id, _, _, ready in tasks[300:320]:
        forecast = readiness.forecast(task_id)
        assert forecast is not None
        gaps.append(abs(forecast.likely - ready))
    # Within the queue's granularity: k workers finish in steps of up to one service time,
    # which a line through the completions is off by up to half of.
    service = base + per_char * 500
    assert max(gaps) < 0.6 * service + 0.05


def test_an_id_it_was_not_told_about_has_no_forecast() -> None:
    tasks = fifo_queue([100] * 50, workers=2, base=0.5, per_char=0.0, rate=100)
    readiness = Readiness()
    learn(readiness, tasks, upto=40)
    assert readiness.forecast("someone-else's") is None
    assert readiness.next_poll("someone-else's", now=10.0) is None  # the policy decides


def test_before_enough_completions_the_policy_decides() -> None:
    tasks = fifo_queue([100] * 20, workers=2, base=0.5, per_char=0.0, rate=100)
    readiness = Readiness()
    learn(readiness, tasks, upto=MIN_COMPLETIONS - 1)
    assert not readiness.fitted
    assert readiness.forecast("t10") is None
    assert readiness.next_poll("t10", now=1.0) is None


def test_a_task_deep_in_the_queue_waits_for_the_fit_instead_of_polling() -> None:
    readiness = Readiness()
    for n in range(BOOTSTRAP + 10):
        readiness.submitted(f"t{n}", at=0.0, chars=100)
    assert readiness.next_poll("t0", now=0.0) is None  # the oldest teach the fit
    # Deeper ones wait for the fit, as long as the caller allows.
    assert readiness.next_poll(f"t{BOOTSTRAP + 5}", now=0.0) == math.inf
    for n in range(MIN_COMPLETIONS - 1):
        readiness.completed(f"t{n}", at=1.0)  # the queue moves on: closer to its head
    assert not readiness.fitted
    assert readiness.next_poll(f"t{BOOTSTRAP + 5 - MIN_COMPLETIONS}", now=1.0) is None


def test_polls_aim_just_before_the_likely_time_then_step() -> None:
    tasks = fifo_queue([100] * 60, workers=1, base=1.0, per_char=0.0, rate=100)
    readiness = Readiness()
    learn(readiness, tasks, upto=20)
    # Never asked about, a task is first bounded by the ages at which tasks ended lately
    # (about 10 s +- 6 here): early in a queue that grows, asked about once too soon.
    first = readiness.forecast("t30")
    assert first is not None
    assert first.likely < 25.0
    readiness.not_ready("t30", at=first.likely)
    forecast = readiness.forecast("t30")  # then the fit alone: its place in the queue
    assert forecast is not None
    assert forecast.likely == pytest.approx(31.0, abs=0.05)
    assert forecast.earliest < forecast.likely < forecast.latest
    planned = readiness.next_poll("t30", now=20.0)
    assert planned is not None
    assert forecast.likely - 0.5 < planned < forecast.likely
    readiness.not_ready("t30", at=planned)  # not yet: short steps from here
    after = readiness.next_poll("t30", now=planned)
    assert after is not None
    assert MIN_STEP - 1e-9 <= after - planned <= 0.5


def test_processing_means_short_steps() -> None:
    tasks = fifo_queue([100] * 60, workers=1, base=1.0, per_char=0.0, rate=100)
    readiness = Readiness()
    learn(readiness, tasks, upto=20)
    readiness.observe("t40", TaskStatus.PROCESSING, sent=25.0, answered=25.01)
    planned = readiness.next_poll("t40", now=25.01)
    assert planned is not None
    assert planned - 25.01 <= 0.5  # not at its forecast, about 41 s


def test_a_forecast_is_never_before_the_last_time_it_was_seen_not_ready() -> None:
    tasks = fifo_queue([100] * 60, workers=1, base=1.0, per_char=0.0, rate=100)
    readiness = Readiness()
    learn(readiness, tasks, upto=20)
    readiness.not_ready("t25", at=40.0)
    forecast = readiness.forecast("t25")
    assert forecast is not None
    assert forecast.likely >= 40.0
    assert forecast.earliest >= 40.0


def test_a_forecast_that_was_too_late_moves_earlier() -> None:
    tasks = fifo_queue([100] * 80, workers=1, base=1.0, per_char=0.0, rate=100)
    readiness = Readiness()
    learn(readiness, tasks, upto=20)
    readiness.not_ready("t60", at=5.0)  # the fit alone speaks for it from now on
    before = readiness.forecast("t60")
    assert before is not None
    # The queue sped up: the next tasks are found ready at their first aimed poll, each
    # aimed poll earlier than the last one's forecast.
    for n in range(20, 40):
        planned = readiness.next_poll(f"t{n}", now=20.0)
        assert planned is not None
        readiness.completed(f"t{n}", at=planned)
    after = readiness.forecast("t60")
    assert after is not None
    assert after.likely < before.likely - 1.0


def test_every_ending_forgets_the_task() -> None:
    readiness = Readiness()
    for n in range(5):
        readiness.submitted(f"t{n}", at=0.0, chars=10)
    readiness.observe("t0", TaskStatus.COMPLETED, sent=1.0, answered=1.1)
    readiness.observe("t1", TaskStatus.ERROR, sent=1.0, answered=1.1)
    readiness.observe("t2", TaskStatus.NOT_EXIST, sent=1.0, answered=1.1)
    readiness.forget("t3")
    readiness.observe("t4", TaskStatus.PENDING, sent=1.0, answered=1.1)
    assert len(readiness) == 1
    assert "t4" in readiness


def test_memory_is_bounded_by_the_capacity_oldest_dropped_first() -> None:
    readiness = Readiness(capacity=100)
    for n in range(1000):
        readiness.submitted(f"t{n}", at=n / 100, chars=50)
    assert len(readiness) == 100
    assert "t899" not in readiness
    assert "t900" in readiness


def test_a_bad_capacity_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Readiness(capacity=0)


def test_repr_shows_the_live_state() -> None:
    readiness = Readiness()
    readiness.submitted("a", at=0.0, chars=10)
    assert repr(readiness) == "<Readiness tracked=1 learned=0 unfitted>"


def test_where_the_queue_keeps_up_a_first_poll_follows_the_ages_not_the_place() -> None:
    # One task every 2 s into a queue that serves each in 1 s: ready 1 s after its submit.
    readiness = Readiness()
    for n in range(30):
        readiness.submitted(f"t{n}", at=2.0 * n, chars=100)
        readiness.not_ready(f"t{n}", at=2.0 * n + 0.95)
        readiness.completed(f"t{n}", at=2.0 * n + 1.05)
    # Then a burst: ten at once. Their places (tasks before them) say up to 18 s more;
    # a queue that kept up says about 1 s after the submit.
    for n in range(30, 40):
        readiness.submitted(f"t{n}", at=60.0, chars=100)
    forecast = readiness.forecast("t39")
    assert forecast is not None
    assert forecast.likely < 62.0
