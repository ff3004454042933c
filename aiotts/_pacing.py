"""When to poll: the scheduler's pacing core. Pure: no event loop, no I/O, no clock.

The owner tells it what happened, with the time it happened (a task admitted, an answer
that said the task is not ready), and asks it what to do next (``decide(now)``): poll this
task now, end this task (its deadline passed), or sleep until a given time. The owner does
the I/O and comes back. Time comes in as arguments, so tests drive it with a manual clock.

Rules:

* A task's first poll is due at its admission and is never held back.
* After a ``Pending`` answer the next poll waits for the next of the policy's pending
  delays (growing to ``max_delay``); after a ``Processing`` answer, for its processing
  delays. Jitter, if the policy has it, is drawn by the policy's delay iterators.
* Asking *again* about a task spends one token of the poll budget: a bucket that refills
  at ``PollPolicy.budget`` tokens a second and holds ``burst`` seconds of them. When it is
  empty, due polls wait until enough tokens are back for a few of them to go together
  (at least ``min_wait`` seconds), since polls sent together cost less CPU each.
* A task's deadline is counted from its admission and met to the tick: a waiting task
  whose deadline has come is handed out as ``Expire`` at that moment, needing neither
  budget nor a worker, and a task is never polled at or after its deadline.
* Due tasks leave in order of their due time (ties: in the order they were scheduled).
* With a ``planner`` (and a policy whose ``predict`` is on), a task the planner knows is
  polled when the planner says instead (its first poll too, which then waits on the heap
  and spends budget like any other); never sooner than ``min_delay`` after a poll, never
  later than ``max_delay`` after admission or a poll, so a forecast far off cannot starve
  it. A task the planner does not know follows the policy's delays.

Invariants: a task is either waiting (on the heap of due tasks) or handed out (its poll in
flight, or its ending being recorded); only ``not_ready`` puts a handed-out task back. So no
task is ever polled twice at once. A task the owner ``forget``s is never handed out again.
Memory is bounded by the tasks not yet forgotten: stale entries of forgotten tasks are
skipped when they reach the top, and the deadline heap is compacted when they outnumber
the live ones.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from aiotts._config import PollPolicy

__all__ = ["Expire", "Pacer", "Planner", "Poll", "Sleep", "Timing"]

K = TypeVar("K")
K_contra = TypeVar("K_contra", contravariant=True)

BUDGET_BURST = 0.25
"""Seconds of poll budget the bucket holds: the most that one wake-up may release.
Polls released together cost less CPU each than the same polls spaced evenly (measured
here: about 6% less at 250 ms than at 20 ms)."""

MIN_BUDGET_WAIT = 0.25
"""Seconds to wait at least when the poll budget is spent."""


class Timing(Generic[K]):
    """The pacing state of one task: its deadline and its delays."""

    __slots__ = ("deadline", "delays", "forgotten", "key", "policy", "processing", "waiting")

    def __init__(self, key: K, deadline: float, policy: PollPolicy | None = None) -> None:
        self.key = key
        self.deadline = deadline
        # Made at the first answer that says "not ready": most tasks of a bulk fetch are
        # done at their first poll and never need any.
        self.delays: Iterator[float] | None = None
        self.policy = policy  # None: the pacer's
        self.processing = False
        self.waiting = False  # on the heap of due tasks, not handed out
        self.forgotten = False

    def __repr__(self) -> str:
        where = "forgotten" if self.forgotten else "waiting" if self.waiting else "out"
        return f"<Timing {self.key!r} {where} deadline={self.deadline:.3f}>"


@dataclass(frozen=True, slots=True)
class Poll(Generic[K]):
    """Ask the server about ``key`` now."""

    key: K


@dataclass(frozen=True, slots=True)
class Expire(Generic[K]):
    """``key``'s deadline has come while it waited: end it without asking."""

    key: K


@dataclass(frozen=True, slots=True)
class Sleep:
    """Nothing to do before ``until`` (``math.inf``: until a task is admitted)."""

    until: float


Decision = Poll[K] | Expire[K] | Sleep


class Planner(Protocol[K_contra]):
    """Who knows when a task is likely ready (the client's readiness model)."""

    def next_poll(self, key: K_contra, *, now: float) -> float | None:
        """When to poll ``key`` next (at or after ``now``), or None: the policy decides."""


_Entry = tuple[float, int, Timing[K]]


def _current(entry: _Entry[K]) -> bool:
    """A deadline entry still speaks for its task: not forgotten, not since extended."""
    timing = entry[2]
    return not timing.forgotten and entry[0] == timing.deadline


class Pacer(Generic[K]):
    """The queue of first polls, the heap of due tasks, the deadlines and the poll budget."""

    def __init__(
        self,
        policy: PollPolicy,
        *,
        now: float,
        burst: float = BUDGET_BURST,
        min_wait: float = MIN_BUDGET_WAIT,
        planner: Planner[K] | None = None,
    ) -> None:
        self._policy = policy
        self._planner = planner
        self._sequence = 0
        # Admissions come in time order, so first polls wait in a plain queue, apart from
        # the heap, where a spent budget can never hold them back.
        self._fresh: deque[_Entry[K]] = deque()
        self._due: list[_Entry[K]] = []  # (due, sequence, timing): polls that ask again
        self._deadlines: list[_Entry[K]] = []  # (deadline, sequence, timing): finite ones
        self._live_deadlines = 0  # tasks not forgotten with a finite deadline
        self._rate = policy.budget  # tokens a second; None: asking again is never held back
        self._capacity = max(1.0, policy.budget * burst) if policy.budget else math.inf
        self._tokens = self._capacity
        self._refilled = now
        self._min_wait = min_wait
        self.polls_again = 0
        """Polls handed out that spent a budget token (every poll but each task's first)."""

    def __repr__(self) -> str:
        tokens = "unlimited" if self._rate is None else f"{self._tokens:.1f}/{self._capacity:.0f}"
        return f"<Pacer first={len(self._fresh)} again={len(self._due)} tokens={tokens}>"

    # -- what happened -----------------------------------------------------------------------

    def admit(
        self,
        key: K,
        *,
        now: float,
        deadline: float = math.inf,
        policy: PollPolicy | None = None,
    ) -> Timing[K]:
        """Take in a task: its first poll is due ``now``; it ends at ``deadline``. Its delays
        come from ``policy`` (default: the pacer's); the budget is always the pacer's."""
        timing = Timing(key, deadline, policy)
        timing.waiting = True
        planned = self._planned(timing, now)
        if planned is not None and planned > now:
            heapq.heappush(self._due, (planned, self._next_sequence(), timing))
        else:
            self._fresh.append((now, self._next_sequence(), timing))
        self._watch(timing)
        return timing

    def _planned(self, timing: Timing[K], now: float) -> float | None:
        """The planner's time for the next poll, within the policy's bounds; None when
        there is no planner, the policy does not predict, or the planner does not know."""
        if self._planner is None:
            return None
        policy = timing.policy or self._policy
        if not policy.predict:
            return None
        planned = self._planner.next_poll(timing.key, now=now)
        if planned is None:
            return None
        return min(max(planned, now + policy.min_delay), now + policy.max_delay, timing.deadline)

    def extend(self, timing: Timing[K], deadline: float) -> None:
        """Move the task's deadline later (an earlier one is ignored)."""
        if deadline <= timing.deadline or timing.forgotten:
            return
        if timing.deadline < math.inf:
            self._live_deadlines -= 1  # counted again by ``_watch`` if still finite
        # The entry of the earlier deadline is stale from now on: skipped at the top.
        timing.deadline = deadline
        self._watch(timing)

    def _watch(self, timing: Timing[K]) -> None:
        if timing.deadline < math.inf:
            self._live_deadlines += 1
            heapq.heappush(self._deadlines, (timing.deadline, self._next_sequence(), timing))

    def not_ready(self, timing: Timing[K], *, now: float, processing: bool) -> float:
        """The task's answer said it is not finished: schedule its next poll, and return
        when that is due. The first ``Processing`` answer switches to the processing delays."""
        delays = timing.delays
        if processing and not timing.processing:
            timing.processing = True
            delays = timing.delays = (timing.policy or self._policy).processing_delays()
        elif delays is None:
            delays = timing.delays = (timing.policy or self._policy).pending_delays()
        due = self._planned(timing, now) if self._planner is not None else None
        if due is None:
            due = min(now + next(delays), timing.deadline)
        timing.waiting = True
        heapq.heappush(self._due, (due, self._next_sequence(), timing))
        return due

    def replan(self, now: float) -> None:
        """The planner knows more than when it was last asked (its fit became trusted):
        ask it again about every task waiting for a poll that asks again, and move each
        whose time it now says is earlier to that time. O(waiting tasks); rare."""
        if self._planner is None:
            return
        entries: list[_Entry[K]] = []
        for entry in self._due:
            timing = entry[2]
            if timing.forgotten:
                continue  # stale: dropped here rather than at the top
            planned = self._planned(timing, now)
            if planned is not None and planned < entry[0]:
                entry = (planned, entry[1], timing)  # earlier only: the bounds still hold
            entries.append(entry)
        heapq.heapify(entries)
        self._due = entries

    def forget(self, timing: Timing[K]) -> None:
        """The task ended, or nobody wants it any more: it is never handed out again."""
        if timing.forgotten:
            return
        timing.forgotten = True
        if timing.deadline < math.inf:
            self._live_deadlines -= 1
            if len(self._deadlines) > 64 + 2 * self._live_deadlines:
                self._deadlines = [e for e in self._deadlines if _current(e)]
                heapq.heapify(self._deadlines)

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    # -- what to do next ---------------------------------------------------------------------

    def decide(self, now: float) -> Decision[K]:
        """The next thing to do at ``now``. A ``Poll`` or ``Expire`` hands the task out;
        after an ``Expire`` the task is forgotten."""
        deadline = self._next_deadline(now)
        if isinstance(deadline, Expire):
            return deadline
        fresh = self._live_top(self._fresh, now)
        if isinstance(fresh, Expire):
            return fresh
        again = self._live_top(self._due, now)
        if isinstance(again, Expire):
            return again
        if again is not None and again[0] <= now:
            self._refill(now)
            if self._tokens >= 1 and (fresh is None or again[:2] < fresh[:2]):
                heapq.heappop(self._due)
                self._tokens -= 1
                self.polls_again += 1
                return self._hand_out(again[2])
            if fresh is None or fresh[0] > now:
                # The budget is spent. Not before a few tokens are back: one wake-up
                # releases several polls.
                assert self._rate is not None
                wait = max((1 - self._tokens) / self._rate, self._min_wait)
                return Sleep(min(now + wait, deadline, fresh[0] if fresh else math.inf))
        if fresh is not None and fresh[0] <= now:
            self._fresh.popleft()
            return self._hand_out(fresh[2])
        # No deadline here: a waiting task is due at or before its deadline, so a deadline
        # that comes earlier than every due time belongs to a task handed out, whose owner
        # bounds its poll by it.
        return Sleep(min(fresh[0] if fresh else math.inf, again[0] if again else math.inf))

    def _hand_out(self, timing: Timing[K]) -> Poll[K]:
        timing.waiting = False
        return Poll(timing.key)

    def _next_deadline(self, now: float) -> float | Expire[K]:
        """``Expire`` for a waiting task whose deadline has come; else the next deadline.

        A task handed out when its deadline comes is not expired here: its owner bounds the
        poll in flight by the same deadline, and if it comes back through ``not_ready``,
        ``_live_top`` expires it."""
        deadlines = self._deadlines
        while deadlines:
            entry = deadlines[0]
            if _current(entry) and entry[0] > now:
                return entry[0]
            heapq.heappop(deadlines)
            timing = entry[2]
            if _current(entry) and timing.waiting:
                self.forget(timing)  # from now on only ``forgotten`` is read
                return Expire(timing.key)
        return math.inf

    def _live_top(
        self, queue: deque[_Entry[K]] | list[_Entry[K]], now: float
    ) -> _Entry[K] | Expire[K] | None:
        """The first entry of ``queue`` whose task is not forgotten (a forgotten task's
        entry is stale, and dropped). A task whose deadline came while it was handed out is
        taken off and returned as ``Expire``: it is never polled at or after its deadline."""
        while queue:
            entry = queue[0]
            timing = entry[2]
            if not timing.forgotten and now < timing.deadline:
                return entry
            if isinstance(queue, deque):
                queue.popleft()
            else:
                heapq.heappop(queue)
            if not timing.forgotten:
                self.forget(timing)  # from now on only ``forgotten`` is read
                return Expire(timing.key)
        return None

    def _refill(self, now: float) -> None:
        if self._rate is not None:
            self._tokens = min(self._capacity, self._tokens + (now - self._refilled) * self._rate)
            self._refilled = now
