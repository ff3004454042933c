"""The pacing core on a manual clock: the order and times of polls, the poll budget,
deadlines and the cap on backoff. No event loop, no sleeping."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotts import PollPolicy
from aiotts._pacing import Expire, Pacer, Poll, Sleep, Timing

# No jitter: every delay is exactly what the policy says.
STEADY = PollPolicy(
    first_delay=1.0, growth=2.0, max_delay=4.0, processing_delay=0.5, jitter="none", budget=None
)


def run(
    pacer: Pacer[str],
    timings: dict[str, Timing[str]],
    until: float,
    *,
    processing: frozenset[str] = frozenset(),
    start: float = 0.0,
) -> list[tuple[float, str, str]]:
    """Drive ``pacer`` like the scheduler does, answering every poll "not ready" at once:
    every decision as (time, what, task)."""
    now = start
    log: list[tuple[float, str, str]] = []
    while now <= until:
        decision = pacer.decide(now)
        if isinstance(decision, Sleep):
            if decision.until > until:
                break
            assert decision.until > now  # never a busy loop
            now = decision.until
        elif isinstance(decision, Poll):
            log.append((now, "poll", decision.key))
            pacer.not_ready(timings[decision.key], now=now, processing=decision.key in processing)
        else:
            log.append((now, "expire", decision.key))
    return log


def test_polls_follow_the_growing_delays_up_to_the_cap() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timings = {"a": pacer.admit("a", now=0.0)}
    times = [t for t, _, _ in run(pacer, timings, until=30.0)]
    # 1, 2, 4, then capped at 4: the cap holds however long the task stays pending
    assert times == [0.0, 1.0, 3.0, 7.0, 11.0, 15.0, 19.0, 23.0, 27.0]


def test_processing_switches_to_the_processing_delay() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timings = {"a": pacer.admit("a", now=0.0)}
    times = [t for t, _, _ in run(pacer, timings, until=2.0, processing=frozenset({"a"}))]
    assert times == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_due_tasks_leave_in_due_order_not_arrival_order() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    early = pacer.admit("early", now=0.0)
    late = pacer.admit("late", now=0.0)
    # both polled once; "late" is answered first but told to wait longer
    assert pacer.decide(0.0) == Poll("early")
    assert pacer.decide(0.0) == Poll("late")
    pacer.not_ready(late, now=0.0, processing=False)  # due at 1.0
    pacer.not_ready(early, now=0.0, processing=True)  # due at 0.5
    assert pacer.decide(0.2) == Sleep(0.5)
    assert pacer.decide(0.5) == Poll("early")
    assert pacer.decide(0.5) == Sleep(1.0)
    assert pacer.decide(1.0) == Poll("late")


def test_a_first_poll_due_earlier_goes_before_a_poll_that_asks_again() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    old = pacer.admit("old", now=0.0)
    assert pacer.decide(0.0) == Poll("old")
    pacer.not_ready(old, now=0.0, processing=False)  # due again at 1.0
    pacer.admit("new", now=0.5)  # due at 0.5
    assert pacer.decide(2.0) == Poll("new")
    assert pacer.decide(2.0) == Poll("old")


def test_forgotten_tasks_do_not_pile_up() -> None:
    pacer: Pacer[int] = Pacer(STEADY, now=0.0)
    timings = [pacer.admit(key, now=0.0, deadline=3600.0) for key in range(10_000)]
    for timing in timings[:9_000]:
        pacer.forget(timing)
    assert len(pacer._deadlines) < 2 * 1_000 + 64


def test_ties_leave_in_the_order_they_were_scheduled() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    for key in "cab":
        pacer.admit(key, now=0.0)
    assert [pacer.decide(0.0) for _ in range(3)] == [Poll("c"), Poll("a"), Poll("b")]


def test_a_deadline_is_met_to_the_tick_and_counted_from_admission() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timings = {"a": pacer.admit("a", now=10.0, deadline=10.0 + 2.5)}
    log = run(pacer, timings, until=30.0, start=10.0)
    # polls at 10, 11; the next would be at 13 but the deadline (admission + 2.5) comes first
    assert log == [(10.0, "poll", "a"), (11.0, "poll", "a"), (12.5, "expire", "a")]


def test_the_next_poll_is_never_later_than_the_deadline() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timing = pacer.admit("a", now=0.0, deadline=0.4)
    assert pacer.decide(0.0) == Poll("a")
    assert pacer.not_ready(timing, now=0.0, processing=False) == 0.4
    assert pacer.decide(0.1) == Sleep(0.4)
    assert pacer.decide(0.4) == Expire("a")
    assert pacer.decide(0.4) == Sleep(math.inf)


def test_a_task_whose_deadline_came_while_it_was_out_is_expired_not_polled() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timing = pacer.admit("a", now=0.0, deadline=1.0)
    assert pacer.decide(0.0) == Poll("a")
    assert pacer.decide(1.5) == Sleep(math.inf)  # its poll is still out
    pacer.not_ready(timing, now=1.5, processing=False)
    assert pacer.decide(1.5) == Expire("a")
    assert pacer.decide(1.5) == Sleep(math.inf)


def test_a_later_deadline_replaces_an_earlier_one() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timing = pacer.admit("a", now=0.0, deadline=1.0)
    pacer.extend(timing, 5.0)
    pacer.extend(timing, 2.0)  # earlier: ignored
    assert pacer.decide(0.0) == Poll("a")
    pacer.not_ready(timing, now=0.0, processing=False)
    log = run(pacer, {"a": timing}, until=10.0, start=0.5)
    assert log[-1] == (5.0, "expire", "a")
    assert [t for t, what, _ in log if what == "poll"] == [1.0, 3.0]


def test_extending_deadlines_keeps_one_live_entry_per_task() -> None:
    pacer: Pacer[int] = Pacer(STEADY, now=0.0)
    timings = [pacer.admit(key, now=0.0, deadline=10.0) for key in range(100)]
    for timing in timings:
        for _ in range(3):
            pacer.extend(timing, 10.0)  # the same deadline: nothing to do
    assert len(pacer._deadlines) == 100
    for timing in timings:
        pacer.extend(timing, 20.0)
    assert pacer._live_deadlines == 100  # a task counts once, however often extended
    assert len(pacer._deadlines) == 200  # the earlier entries are stale until compacted
    for timing in timings[:90]:
        pacer.forget(timing)
    assert pacer._live_deadlines == 10
    assert len(pacer._deadlines) <= 64 + 2 * 10  # compacted as soon as stale ones dominate
    # a task without a deadline waits for ever: a finite one is earlier, so ignored
    open_ended = pacer.admit(100, now=0.0)
    pacer.extend(open_ended, 30.0)
    assert open_ended.deadline == math.inf
    assert pacer._live_deadlines == 10


def test_a_task_may_have_a_policy_of_its_own() -> None:
    fast = PollPolicy(first_delay=0.1, growth=1.0, processing_delay=0.05, jitter="none")
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timings = {"a": pacer.admit("a", now=0.0, policy=fast), "b": pacer.admit("b", now=0.0)}
    log = run(pacer, timings, until=1.0)
    assert [t for t, _, key in log if key == "b"] == [0.0, 1.0]
    assert len([t for t, _, key in log if key == "a"]) == 11  # every 0.1 s
    # and its own processing delay once it is Processing
    pacer = Pacer(STEADY, now=0.0)
    timings = {"a": pacer.admit("a", now=0.0, policy=fast), "b": pacer.admit("b", now=0.0)}
    log = run(pacer, timings, until=1.0, processing=frozenset({"a", "b"}))
    assert [t for t, _, key in log if key == "b"] == [0.0, 0.5, 1.0]
    a_times = [round(t, 6) for t, _, key in log if key == "a"]
    assert a_times[:5] == [0.0, 0.05, 0.1, 0.15, 0.2]  # every 0.05 s


def test_an_expired_task_needs_no_budget() -> None:
    policy = PollPolicy(first_delay=0.1, jitter="none", budget=1.0, min_delay=0.0)
    pacer: Pacer[str] = Pacer(policy, now=0.0, burst=1.0)
    a = pacer.admit("a", now=0.0, deadline=5.0)
    b = pacer.admit("b", now=0.0, deadline=0.3)
    assert pacer.decide(0.0) == Poll("a")
    assert pacer.decide(0.0) == Poll("b")
    pacer.not_ready(a, now=0.0, processing=False)
    pacer.not_ready(b, now=0.0, processing=False)
    assert pacer.decide(0.1) == Poll("a")  # spends the only token
    pacer.not_ready(a, now=0.1, processing=False)
    assert isinstance(pacer.decide(0.2), Sleep)  # "a" and "b" due, no token
    assert pacer.decide(0.3) == Expire("b")  # no token needed to end it


def test_first_polls_are_never_held_back_by_the_budget() -> None:
    policy = PollPolicy(jitter="none", budget=1.0)
    pacer: Pacer[int] = Pacer(policy, now=0.0)
    for key in range(100):
        pacer.admit(key, now=0.0)
    assert [pacer.decide(0.0) for _ in range(100)] == [Poll(k) for k in range(100)]
    assert pacer.polls_again == 0


def test_the_budget_is_spent_and_never_exceeded() -> None:
    # 1,000 pending tasks that would each be asked about every 0.1 s: 10,000 polls a second
    # wanted, 100 allowed.
    budget = 100.0
    policy = PollPolicy(first_delay=0.1, max_delay=0.1, min_delay=0.0, jitter="none", budget=budget)
    pacer: Pacer[int] = Pacer(policy, now=0.0)
    timings = {key: pacer.admit(key, now=0.0) for key in range(1000)}
    polls_again: list[float] = []
    now = 0.0
    while now <= 10.0:
        spent = pacer.polls_again
        decision = pacer.decide(now)
        if isinstance(decision, Sleep):
            now = decision.until
        elif isinstance(decision, Poll):
            if pacer.polls_again > spent:
                polls_again.append(now)
            pacer.not_ready(timings[decision.key], now=now, processing=False)
    # Spent: the budget of the 9.9 s from the first poll that asked again (at 0.1 s), give
    # or take the quarter-second bursts, plus the full bucket it starts with (25)
    assert budget * 9.5 <= len(polls_again) <= budget * 10 + budget * 0.25
    # Never exceeded: in any window of one second, at most a second's tokens plus the burst
    for start in polls_again:
        in_window = sum(1 for t in polls_again if start <= t < start + 1.0)
        assert in_window <= budget + budget * 0.25 + 1


def test_an_empty_budget_waits_for_several_tokens_at_once() -> None:
    policy = PollPolicy(first_delay=0.05, min_delay=0.0, jitter="none", budget=100.0)
    pacer: Pacer[int] = Pacer(policy, now=0.0, burst=0.25, min_wait=0.25)
    timings = {key: pacer.admit(key, now=0.0) for key in range(200)}
    for key in range(200):  # first polls: free
        assert pacer.decide(0.0) == Poll(key)
        pacer.not_ready(timings[key], now=0.0, processing=False)
    for _ in range(25):  # the full bucket: 25 tokens
        assert isinstance(pacer.decide(0.05), Poll)
    assert pacer.decide(0.05) == Sleep(0.05 + 0.25)  # not one token at a time


def test_a_forgotten_task_is_never_handed_out() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    a = pacer.admit("a", now=0.0)
    pacer.admit("b", now=0.0)
    pacer.forget(a)
    assert pacer.decide(0.0) == Poll("b")
    assert pacer.decide(0.0) == Sleep(math.inf)


@settings(max_examples=200, deadline=None)
@given(
    admissions=st.lists(st.floats(0, 10), min_size=1, max_size=30),
    timeout=st.floats(0.01, 20),
    budget=st.one_of(st.none(), st.floats(0.5, 50)),
)
def test_every_task_is_polled_at_admission_and_ends_at_its_deadline(
    admissions: list[float], timeout: float, budget: float | None
) -> None:
    policy = PollPolicy(first_delay=0.3, growth=1.5, max_delay=2.0, jitter="none", budget=budget)
    pacer: Pacer[int] = Pacer(policy, now=0.0)
    order = sorted(range(len(admissions)), key=admissions.__getitem__)
    timings: dict[int, Timing[int]] = {}
    first_poll: dict[int, float] = {}
    expired: dict[int, float] = {}
    pending = list(order)
    now = 0.0
    while len(expired) < len(admissions):
        while pending and admissions[pending[0]] <= now:
            key = pending.pop(0)
            timings[key] = pacer.admit(key, now=now, deadline=admissions[key] + timeout)
        decision = pacer.decide(now)
        if isinstance(decision, Sleep):
            next_admission = admissions[pending[0]] if pending else math.inf
            now = max(now, min(decision.until, next_admission))
            assert now < math.inf
        elif isinstance(decision, Poll):
            first_poll.setdefault(decision.key, now)
            assert now < timings[decision.key].deadline
            pacer.not_ready(timings[decision.key], now=now, processing=False)
        else:
            expired[decision.key] = now
    for key, admitted in enumerate(admissions):
        assert first_poll[key] == admitted  # never held back, whatever the budget
        assert expired[key] == pytest.approx(admitted + timeout)


def test_a_deadline_that_passes_before_the_first_poll_expires_the_task() -> None:
    # Every worker was busy until after the deadline: the task ends without a request.
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    pacer.admit("late", now=0.0, deadline=1.0)
    assert pacer.decide(2.0) == Expire("late")
    assert pacer.decide(2.0) == Sleep(math.inf)


def test_a_task_in_flight_at_its_deadline_is_left_to_its_owner() -> None:
    # Its poll is bounded by the same deadline; the pacer must not end it a second time.
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timing = pacer.admit("a", now=0.0, deadline=1.0)
    assert pacer.decide(0.0) == Poll("a")
    assert pacer.decide(1.5) == Sleep(math.inf)  # handed out: neither expired nor polled
    assert pacer.not_ready(timing, now=1.5, processing=False) == 1.0  # due at its deadline
    assert pacer.decide(1.5) == Expire("a")
    assert timing.forgotten  # ended: the owner need not forget it
    assert pacer.decide(1.5) == Sleep(math.inf)


def test_a_task_back_exactly_at_its_deadline_is_expired_not_polled() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timing = pacer.admit("a", now=0.0, deadline=1.0)
    assert pacer.decide(0.0) == Poll("a")
    assert pacer.decide(1.0) == Sleep(math.inf)  # its deadline came while it was out
    assert pacer.not_ready(timing, now=1.0, processing=False) == 1.0
    assert pacer.decide(1.0) == Expire("a")


def test_polls_again_counts_each_poll_that_spent_a_token() -> None:
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    timings = {key: pacer.admit(key, now=0.0) for key in "ab"}
    log = run(pacer, timings, until=3.0)
    assert [t for t, _, _ in log] == [0.0, 0.0, 1.0, 1.0, 3.0, 3.0]
    assert pacer.polls_again == 4  # every poll but the two first ones


def test_a_spent_budget_wakes_when_the_next_token_is_back() -> None:
    # Two tokens a second, a bucket of one, no minimum wait: after a poll at 1.0, half a
    # token is back at 1.25, so the next poll can go at 1.5 and not before.
    policy = PollPolicy(first_delay=1.0, min_delay=0.0, jitter="none", budget=2.0)
    pacer: Pacer[str] = Pacer(policy, now=0.0, burst=0.5, min_wait=0.0)
    timings = {key: pacer.admit(key, now=0.0) for key in "ab"}
    for key in "ab":
        assert pacer.decide(0.0) == Poll(key)
        pacer.not_ready(timings[key], now=0.0, processing=False)
    assert pacer.decide(1.0) == Poll("a")
    assert pacer.decide(1.25) == Sleep(1.5)
    assert pacer.decide(1.5) == Poll("b")


def test_a_spent_budget_still_wakes_for_a_deadline() -> None:
    policy = PollPolicy(first_delay=1.0, min_delay=0.0, jitter="none", budget=1.0)
    pacer: Pacer[str] = Pacer(policy, now=0.0, burst=1.0, min_wait=0.0)
    a = pacer.admit("a", now=0.0)
    b = pacer.admit("b", now=0.0, deadline=1.2)
    for timing in (a, b):
        assert pacer.decide(0.0) == Poll(timing.key)
        pacer.not_ready(timing, now=0.0, processing=False)
    assert pacer.decide(1.0) == Poll("a")  # the one token
    assert pacer.decide(1.0) == Sleep(1.2)  # b's deadline comes before the next token
    assert pacer.decide(1.2) == Expire("b")


def test_the_deadline_heap_is_compacted_exactly_when_stale_entries_outnumber_live_ones() -> None:
    # Entries of forgotten tasks stay on the deadline heap until they reach its top, or
    # until they outnumber the live ones by more than 64: then the heap is compacted.
    # Not later (memory follows the live tasks), and not sooner (a compaction costs a pass
    # over the heap, so it must stay rare). Also after deadlines that came took stale
    # entries off the top, and with tasks that have no deadline mixed in.
    pacer: Pacer[int] = Pacer(STEADY, now=0.0)
    timings = [
        pacer.admit(key, now=0.0, deadline=math.inf if key % 5 == 0 else 1.0 + key)
        for key in range(1_000)
    ]

    def stale_and_live() -> tuple[int, int]:
        stale = sum(1 for entry in pacer._deadlines if entry[2].forgotten)
        return stale, len(pacer._deadlines) - stale

    def forget_and_check(timing: Timing[int]) -> None:
        stale, live = stale_and_live()
        pacer.forget(timing)
        if timing.deadline == math.inf:
            assert stale_and_live() == (stale, live)
            return
        stale, live = stale + 1, live - 1
        due = stale > 64 + live
        assert stale_and_live() == ((0, live) if due else (stale, live)), (stale, live)

    for timing in timings[:200]:
        forget_and_check(timing)
    assert pacer.decide(200.5) == Poll(200)  # the stale entries of 0..199 leave the top
    assert stale_and_live() == (0, 640)
    for timing in timings[200:]:
        forget_and_check(timing)
    assert len(pacer._deadlines) <= 64


def test_tasks_without_a_deadline_keep_no_deadline_entry() -> None:
    # Most batches have no task deadline: their tasks must cost no entry that nothing
    # would ever take off the heap.
    pacer: Pacer[int] = Pacer(STEADY, now=0.0)
    for timing in [pacer.admit(key, now=0.0) for key in range(1_000)]:
        pacer.forget(timing)
    assert pacer._deadlines == []


def test_a_sleep_ends_when_a_task_admitted_later_is_due() -> None:
    # An owner may decide with a clock reading taken before its last admission: the
    # sleep must still end at that admission, never pass it by.
    pacer: Pacer[str] = Pacer(STEADY, now=0.0)
    pacer.admit("a", now=5.0)
    assert pacer.decide(4.0) == Sleep(5.0)
    assert pacer.decide(5.0) == Poll("a")


def test_a_spent_budget_sleeps_no_longer_than_the_next_first_poll() -> None:
    policy = PollPolicy(first_delay=1.0, min_delay=0.0, jitter="none", budget=1.0)
    pacer: Pacer[str] = Pacer(policy, now=0.0, burst=1.0, min_wait=10.0)
    timings = {key: pacer.admit(key, now=0.0) for key in "ab"}
    for key in "ab":
        assert pacer.decide(0.0) == Poll(key)
        pacer.not_ready(timings[key], now=0.0, processing=False)
    assert pacer.decide(1.0) == Poll("a")  # the one token
    pacer.admit("c", now=6.0)
    assert pacer.decide(1.5) == Sleep(6.0)  # not the budget's 10 s: c's first poll is free
    assert [pacer.decide(6.0), pacer.decide(6.0)] == [Poll("b"), Poll("c")]  # in due order


def test_repr_shows_the_live_state() -> None:
    policy = PollPolicy(first_delay=1.0, min_delay=0.0, jitter="none", budget=8.0)
    pacer: Pacer[str] = Pacer(policy, now=0.0, burst=0.5)
    a = pacer.admit("a", now=0.0, deadline=2.5)
    pacer.admit("b", now=0.0)
    assert repr(pacer) == "<Pacer first=2 again=0 tokens=4.0/4>"
    assert repr(a) == "<Timing 'a' waiting deadline=2.500>"
    assert pacer.decide(0.0) == Poll("a")
    assert repr(a) == "<Timing 'a' out deadline=2.500>"
    pacer.not_ready(a, now=0.0, processing=False)
    assert repr(pacer) == "<Pacer first=1 again=1 tokens=4.0/4>"
    pacer.forget(a)
    assert repr(a) == "<Timing 'a' forgotten deadline=2.500>"
    assert repr(Pacer(STEADY, now=0.0)) == "<Pacer first=0 again=0 tokens=unlimited>"
