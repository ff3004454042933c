"""The pacer with the readiness model as its planner, on a manual clock: tasks the client
submitted into a FIFO queue are polled fewer times and found no later than by the policy
alone; a forecast far off never holds a poll back beyond the policy's longest delay."""

from __future__ import annotations

import heapq
import math
import statistics

from aiotts import PollPolicy
from aiotts._pacing import Pacer, Poll, Sleep, Timing
from aiotts._readiness import Readiness

POLICY = PollPolicy(jitter="none")


class ByKey:
    """The planner the scheduler gives the pacer, with the task id as the key."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    def next_poll(self, key: str, *, now: float) -> float | None:
        return self.readiness.next_poll(key, now=now)


def queue(tasks: int, workers: int, rate: float) -> list[tuple[str, float, int, float, float]]:
    """(id, submitted at, characters, start, ready at): a FIFO queue, linear service."""
    free = [0.0] * workers
    out = []
    for n in range(tasks):
        chars = 20 + (n * 37) % 480
        submitted = n / rate
        start = max(submitted, heapq.heappop(free))
        ready = start + 0.1 + 0.001 * chars
        heapq.heappush(free, ready)
        out.append((f"t{n}", submitted, chars, start, ready))
    return out


def drive(
    tasks: list[tuple[str, float, int, float, float]], policy: PollPolicy, *, planner: bool
) -> tuple[dict[str, int], dict[str, float], list[float]]:
    """Submit and poll every task as the scheduler does; the polls of each task, the delay
    from ready to found of each, and every gap between two polls of one task."""
    readiness = Readiness()
    pacer: Pacer[str] = Pacer(policy, now=0.0, planner=ByKey(readiness) if planner else None)
    timings: dict[str, Timing[str]] = {}
    polls = dict.fromkeys((t[0] for t in tasks), 0)
    last: dict[str, float] = {}
    gaps: list[float] = []
    delays: dict[str, float] = {}
    by_id = {t[0]: t for t in tasks}
    arrivals = iter(tasks)
    upcoming = next(arrivals, None)
    now = 0.0
    while len(delays) < len(tasks):
        while upcoming is not None and upcoming[1] <= now:
            task_id, submitted, chars, _, _ = upcoming
            readiness.submitted(task_id, at=submitted, chars=chars)
            timings[task_id] = pacer.admit(task_id, now=now)
            last[task_id] = now
            upcoming = next(arrivals, None)
        decision = pacer.decide(now)
        if isinstance(decision, Sleep):
            now = min(decision.until, upcoming[1] if upcoming is not None else math.inf)
            continue
        assert isinstance(decision, Poll)
        task_id = decision.key
        _, _, _, start, ready = by_id[task_id]
        polls[task_id] += 1
        gaps.append(now - last[task_id])
        last[task_id] = now
        fitted = readiness.fitted
        if now >= ready:
            readiness.completed(task_id, at=now)
            pacer.forget(timings[task_id])
            delays[task_id] = now - ready
        else:
            readiness.not_ready(task_id, at=now, processing=now >= start)
            pacer.not_ready(timings[task_id], now=now, processing=now >= start)
        if readiness.fitted and not fitted:
            pacer.replan(now)  # as the scheduler does
    return polls, delays, gaps


def test_predicted_tasks_take_fewer_polls_and_are_found_no_later() -> None:
    tasks = queue(600, workers=8, rate=300)
    blind_polls, blind_delays, _ = drive(tasks, POLICY, planner=False)
    polls, delays, _ = drive(tasks, POLICY, planner=True)
    assert sum(polls.values()) < 0.6 * sum(blind_polls.values())
    assert statistics.fmean(delays.values()) <= statistics.fmean(blind_delays.values())
    assert max(delays.values()) <= max(blind_delays.values())


def test_predict_false_gives_the_policy_alone() -> None:
    tasks = queue(200, workers=4, rate=300)
    blind = drive(tasks, POLICY, planner=False)
    switched_off = drive(tasks, PollPolicy(jitter="none", predict=False), planner=True)
    assert switched_off == blind


def test_no_gap_between_polls_exceeds_the_policy_max_delay() -> None:
    # A long queue: most forecasts lie far beyond max_delay.
    tasks = queue(600, workers=2, rate=1000)
    policy = PollPolicy(jitter="none", max_delay=2.0)
    _, _, gaps = drive(tasks, policy, planner=True)
    assert max(gaps) <= policy.max_delay + 1e-9


class Told:
    """A planner that says what the test tells it."""

    def __init__(self, times: dict[str, float | None]) -> None:
        self.times = times

    def next_poll(self, key: str, *, now: float) -> float | None:
        return self.times.get(key)


def test_replan_moves_waiting_tasks_earlier_never_later() -> None:
    policy = PollPolicy(jitter="none", max_delay=5.0, budget=None)
    planner = Told({"a": math.inf, "b": math.inf})
    pacer: Pacer[str] = Pacer(policy, now=0.0, planner=planner)
    pacer.admit("a", now=0.0)
    pacer.admit("b", now=0.0)
    pacer.admit("unknown", now=0.0)
    assert pacer.decide(0.0) == Poll("unknown")  # the policy's first poll, at once
    assert pacer.decide(0.0) == Sleep(5.0)  # the others wait, at most max_delay
    planner.times = {"a": 2.0, "b": 9.0}
    pacer.replan(1.0)
    assert pacer.decide(1.0) == Sleep(2.0)
    assert pacer.decide(2.0) == Poll("a")
    assert pacer.decide(2.0) == Sleep(5.0)  # b keeps its bound
    assert pacer.decide(5.0) == Poll("b")


def test_a_forecast_of_now_still_waits_the_policy_min_delay() -> None:
    policy = PollPolicy(jitter="none", min_delay=0.05, budget=None)
    planner = Told({"a": 10.0})
    pacer: Pacer[str] = Pacer(policy, now=0.0, planner=planner)
    timing = pacer.admit("a", now=0.0)
    assert pacer.decide(0.0) == Sleep(5.0)  # far off: held back, at most max_delay
    assert pacer.decide(5.0) == Poll("a")
    planner.times = {"a": 5.0}  # the forecast says: ready right now
    assert pacer.not_ready(timing, now=5.0, processing=False) == 5.05  # never sooner


def test_replan_goes_past_a_forgotten_task_to_those_behind_it() -> None:
    policy = PollPolicy(jitter="none", max_delay=5.0, budget=None)
    planner = Told({"gone": math.inf, "a": math.inf, "b": math.inf})
    pacer: Pacer[str] = Pacer(policy, now=0.0, planner=planner)
    gone = pacer.admit("gone", now=0.0)
    pacer.admit("a", now=0.0)
    pacer.admit("b", now=0.0)
    pacer.forget(gone)
    planner.times = {"a": 2.0, "b": 3.0}
    pacer.replan(1.0)
    assert pacer.decide(1.0) == Sleep(2.0)
    assert pacer.decide(2.0) == Poll("a")
    assert pacer.decide(2.0) == Sleep(3.0)
    assert pacer.decide(3.0) == Poll("b")
