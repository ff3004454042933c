"""When a task the client submitted is likely ready: the readiness model. Pure: no event
loop, no I/O, no clock.

The owner tells it what happened, with the time it happened: a task submitted with so many
characters, a poll that found it ``Pending`` or ``Processing``, a poll that found it ended.
It answers when a task is likely ready (``forecast``) and when to ask about it next
(``next_poll``). Tests drive it with a manual clock.

The model is the queue the service runs: one FIFO queue served by some number of workers,
each task taking a time that grows with its text. While the queue is busy, a task is ready
at about ``t0 + a * (tasks submitted before it) + b * (characters submitted before it) +
c * (its own characters)``: the work ahead of it drained at the queue's rate, then its own
service. The four numbers are fitted by least squares on the completions seen so far,
recent ones counting more (each older one weighs ``FORGET`` times less), so the fit follows
a queue whose speed changes.

A completion is seen only as an interval: after the last poll that found the task not
ready, and by the answer of the poll that found it ended. The fit takes the point of that
interval nearest to its forecast (moved inside by up to a spread when the forecast lies
outside), so an interval that agrees with the forecast leaves the fit where it is, and one
that does not pulls it toward the miss. A poll aimed a margin before the likely time is
what shows a forecast that is too late: the task is found ready already.

Rules:

* A task it was not told about, or any task before ``MIN_COMPLETIONS`` completions were
  seen, has no forecast. ``next_poll`` then says ``None`` (the poll policy decides),
  except for a task with ``BOOTSTRAP`` of the client's tasks ahead of it: it waits for a
  forecast (``math.inf``: as long as the caller allows, which is the policy's longest
  delay; the caller plans again when the fit becomes trusted, ``fitted``).
* With a forecast, a task is asked about a margin before its likely time; once found not
  ready then, in short steps (the spread, within [``MIN_STEP``, ``MAX_STEP``]) until it is
  ready. One never asked about whose likely time has passed: at once. One seen
  ``Processing`` is being served: at its target if that is near, else every ``MAX_STEP``.
* The first poll of a task is also bounded by its submit plus the ages at which tasks
  ended lately: where the queue keeps up with the client, a task's place among the
  client's tasks says little, and its age says more.
* A forecast is never earlier than the last time the task was seen not ready.

Memory: one small entry per task submitted and not yet ended, at most ``capacity`` (the
oldest are dropped past it, and then fall back to the policy), plus a fit of fixed size.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from aiotts._models import TaskStatus

__all__ = ["Forecast", "Readiness"]

FORGET = 0.99
"""The weight of a completion relative to the next one: about the last 100 count."""

MIN_COMPLETIONS = 8
"""Completions to learn from before the fit is trusted."""

MARGIN = 0.5
MIN_MARGIN = 0.1
"""The poll aimed at a forecast comes this many spreads (at least ``MIN_MARGIN`` seconds)
before the likely time, so that a forecast that is too late shows as a task already
ready, even through the time a request may wait in the client before it leaves."""

MIN_SPREAD = 0.03
"""Seconds: the least uncertainty claimed for a forecast."""

MIN_STEP = 0.2
MAX_STEP = 0.5
"""Seconds: the bounds of the short steps taken after the likely time."""

BOOTSTRAP = 32
"""Before the fit is trusted, the tasks with fewer than ``BOOTSTRAP`` of the client's
tasks still tracked ahead of them follow the policy (their endings teach the fit); the
others wait for it, so that a batch of thousands does not poll while nothing is known."""

DEFAULT_CAPACITY = 200_000
"""Tasks remembered at most; the oldest are dropped past it."""


@dataclass(frozen=True, slots=True)
class Forecast:
    """When a task is likely ready (``likely``), and how sure: it is expected within
    [``earliest``, ``latest``], the likely time plus or minus two spreads (never earlier
    than the last time it was seen not ready)."""

    likely: float
    earliest: float
    latest: float

    @property
    def spread(self) -> float:
        return (self.latest - self.likely) / 2


class _Entry:
    """What is known of one submitted task."""

    __slots__ = ("features", "not_before", "processing", "submitted_at")

    def __init__(self, features: tuple[float, float, float], submitted_at: float) -> None:
        self.features = features  # tasks before it, characters before it, its own characters
        self.submitted_at = submitted_at
        self.not_before = submitted_at  # the last time it was seen not ready
        self.processing = False


class _Fit:
    """Weighted least squares with exponential forgetting, kept as running means and
    centred co-moments (numerically stable however large the features grow)."""

    __slots__ = ("_coefficients", "_mean_x", "_mean_y", "_sxx", "_sxy", "count", "weight")

    def __init__(self, size: int) -> None:
        self.weight = 0.0
        self.count = 0
        self._mean_x = [0.0] * size
        self._mean_y = 0.0
        self._sxx = [[0.0] * size for _ in range(size)]
        self._sxy = [0.0] * size
        self._coefficients: list[float] | None = None  # None: to be solved again

    def add(self, x: Sequence[float], y: float, weight: float = 1.0) -> None:
        size = len(self._mean_x)
        total = FORGET * self.weight + weight
        share = weight / total
        dx = [x[i] - self._mean_x[i] for i in range(size)]
        dy = y - self._mean_y
        spread = weight * (1 - share)
        for i in range(size):
            row = self._sxx[i]
            for j in range(size):
                row[j] = FORGET * row[j] + spread * dx[i] * dx[j]
            self._sxy[i] = FORGET * self._sxy[i] + spread * dx[i] * dy
            self._mean_x[i] += share * dx[i]
        self._mean_y += share * dy
        self.weight = total
        self.count += 1
        self._coefficients = None

    def predict(self, x: Sequence[float]) -> float:
        coefficients = self._coefficients
        if coefficients is None:
            coefficients = self._coefficients = self._solve()
        mean_x = self._mean_x
        return self._mean_y + sum(c * (x[i] - mean_x[i]) for i, c in enumerate(coefficients))

    def _solve(self) -> list[float]:
        """The coefficients, solved on the correlation scale with a touch of ridge, so that
        a feature that does not vary gets 0 and two that move together share the weight."""
        size = len(self._mean_x)
        scale = [math.sqrt(max(self._sxx[i][i], 0.0)) for i in range(size)]
        used = [i for i in range(size) if scale[i] > 1e-9 * (1 + abs(self._mean_x[i]))]
        if not used:
            return [0.0] * size
        n = len(used)
        matrix = [
            [self._sxx[i][j] / (scale[i] * scale[j]) + (1e-6 if i == j else 0.0) for j in used]
            + [self._sxy[i] / scale[i]]
            for i in used
        ]
        for col in range(n):  # Gauss-Jordan; the matrix is symmetric positive definite
            pivot = matrix[col][col]
            for row in range(n):
                if row != col:
                    factor = matrix[row][col] / pivot
                    for k in range(col, n + 1):
                        matrix[row][k] -= factor * matrix[col][k]
        coefficients = [0.0] * size
        for k, i in enumerate(used):
            coefficients[i] = matrix[k][n] / matrix[k][k] / scale[i]
        return coefficients


class Readiness:
    """The client's readiness model: what it submitted, what it saw, what it expects."""

    def __init__(self, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        self._capacity = capacity
        self._tasks: OrderedDict[str, _Entry] = OrderedDict()  # in the order submitted
        self._ended = 0  # tracked tasks that ended or were dropped: about the oldest ones
        self._submitted = 0
        self._chars = 0
        self._fit = _Fit(3)
        self._square_miss = MIN_SPREAD**2  # forgetting mean of squared misses
        # Forgetting mean and mean square of the ages at which tasks ended (seconds from
        # submit): when the queue keeps up, a task is ready about that long after its
        # submit, whatever its place among the client's tasks says.
        self._age = 0.0
        self._square_age = 0.0

    def __repr__(self) -> str:
        fitted = f"spread={self.spread:.3f}" if self.fitted else "unfitted"
        return f"<Readiness tracked={len(self._tasks)} learned={self._fit.count} {fitted}>"

    def __len__(self) -> int:
        return len(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    @property
    def fitted(self) -> bool:
        return self._fit.count >= MIN_COMPLETIONS

    @property
    def spread(self) -> float:
        """Seconds: the typical miss of recent forecasts (at least ``MIN_SPREAD``)."""
        return max(MIN_SPREAD, math.sqrt(self._square_miss))

    # -- what happened -----------------------------------------------------------------------

    def submitted(self, task_id: str, *, at: float, chars: int) -> None:
        """The client submitted ``task_id``, a text of ``chars`` characters, at ``at``."""
        entry = _Entry((float(self._submitted), float(self._chars), float(chars)), at)
        self._submitted += 1
        self._chars += chars
        self._drop(task_id)  # the same id again: the newer submit counts
        self._tasks[task_id] = entry
        if len(self._tasks) > self._capacity:
            self._tasks.popitem(last=False)  # the oldest
            self._ended += 1

    def not_ready(self, task_id: str, *, at: float, processing: bool = False) -> None:
        """A poll sent at ``at`` found the task ``Pending`` (or ``Processing``)."""
        entry = self._tasks.get(task_id)
        if entry is None:
            return
        entry.not_before = max(entry.not_before, at)
        entry.processing = entry.processing or processing

    def completed(self, task_id: str, *, at: float) -> None:
        """A poll answered at ``at`` found the task ended by the queue (``Completed`` or
        ``Error``): it was ready after its last not-ready poll and by ``at``. The task is
        forgotten."""
        entry = self._drop(task_id)
        if entry is None:
            return
        low, high = entry.not_before, max(at, entry.not_before)
        if not self.fitted:
            self._learn(entry, (low + high) / 2)
            return
        predicted = self._fit.predict(entry.features)
        # The forecast itself if the interval allows it (no news); else the end of the
        # interval nearest to it, moved inside by up to a spread (the forecast missed by
        # more than the distance to that end).
        inside = min((high - low) / 2, self.spread)
        if predicted < low:
            seen = low + inside
        elif predicted > high:
            seen = high - inside
        else:
            seen = predicted
        miss = seen - predicted
        self._square_miss = FORGET * self._square_miss + (1 - FORGET) * miss * miss
        self._learn(entry, seen)

    def _learn(self, entry: _Entry, seen: float) -> None:
        self._fit.add(entry.features, seen)
        age = seen - entry.submitted_at
        weight = 1 / self._fit.count if self._fit.count < 1 / (1 - FORGET) else 1 - FORGET
        self._age += weight * (age - self._age)
        self._square_age += weight * (age * age - self._square_age)

    def _latest(self, entry: _Entry) -> float:
        """The latest a task is likely ready: its submit plus the mean age at which tasks
        ended lately and twice their spread. Where the queue keeps up with the client, this
        is what binds; where a backlog builds, ages grow and the fit binds. It bounds only
        the first poll: once a task was seen not ready, the fit alone speaks for it."""
        spread = math.sqrt(max(self._square_age - self._age * self._age, 0.0))
        return entry.submitted_at + self._age + 2 * spread

    def forget(self, task_id: str) -> None:
        """The task ended otherwise, or nobody waits for it: drop what is known of it."""
        self._drop(task_id)

    def _drop(self, task_id: str) -> _Entry | None:
        entry = self._tasks.pop(task_id, None)
        if entry is not None:
            self._ended += 1
        return entry

    def observe(self, task_id: str, status: TaskStatus, *, sent: float, answered: float) -> None:
        """What a poll sent at ``sent`` and answered by ``answered`` said, whatever it said.
        (Not ready: so at least until it was sent; ended: at the latest when it was
        answered, since a request may wait in the client before it leaves.)"""
        if status is TaskStatus.PENDING or status is TaskStatus.PROCESSING:
            self.not_ready(task_id, at=sent, processing=status is TaskStatus.PROCESSING)
        elif status is TaskStatus.COMPLETED or status is TaskStatus.ERROR:
            self.completed(task_id, at=answered)
        else:
            self.forget(task_id)

    # -- what to expect ----------------------------------------------------------------------

    def forecast(self, task_id: str) -> Forecast | None:
        """When the task is likely ready; None if it is unknown or the fit is not trusted."""
        entry = self._tasks.get(task_id)
        if entry is None or not self.fitted:
            return None
        spread = self.spread
        likely = self._fit.predict(entry.features)
        latest = self._latest(entry)
        if entry.not_before == entry.submitted_at:  # never seen not ready yet
            likely = min(likely, latest)
        likely = max(likely, entry.not_before)
        earliest = max(likely - 2 * spread, entry.not_before)
        return Forecast(likely, earliest, likely + 2 * spread)

    def next_poll(self, task_id: str, *, now: float) -> float | None:
        """When to ask about the task next, or None: the poll policy decides. Not earlier
        than ``now``; the caller bounds it by the policy's longest delay and the deadline."""
        entry = self._tasks.get(task_id)
        if entry is None:
            return None
        forecast = self.forecast(task_id)
        if forecast is None:
            return self._cold(entry, now)
        target = forecast.likely - max(MARGIN * forecast.spread, MIN_MARGIN)
        if entry.processing:
            # Being served: ready within its own service time. At its target if that
            # comes within ``MAX_STEP``, else every ``MAX_STEP``.
            return min(max(target, now + MIN_STEP), now + MAX_STEP)
        if target > now:
            return target
        if entry.not_before == entry.submitted_at:
            return now  # its time has come, and it was never asked about: at once
        # Not ready at its target: short steps until it is ready.
        return now + min(max(forecast.spread, MIN_STEP), MAX_STEP)

    def _cold(self, entry: _Entry, now: float) -> float | None:
        """Before the fit is trusted: None (the policy) for the oldest tasks tracked;
        ``math.inf`` (wait for the fit) for one with many of the client's tasks ahead."""
        if entry.features[0] - self._ended < BOOTSTRAP:
            return None
        return math.inf
