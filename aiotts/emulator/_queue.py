"""The service queue model: N workers serve tasks in arrival order (``queue_workers > 0``).

A task is ``Pending`` while it waits in the one FIFO queue and ``Processing`` while a worker
serves it, for ``service_base_seconds + service_seconds_per_char * len(text)`` seconds times
a noise factor. Nothing runs in the background: since tasks arrive in clock order, each
task's start is fixed when it arrives, as ``max(arrival, earliest moment a worker frees
up)``, kept in a heap of the workers' free times. The task's state is then read lazily from
its times, like any other task.

Invariant: arrivals never go back in time (the emulator's clocks only move forward) and a
worker's free time only grows, so start times are non-decreasing in arrival order: FIFO.

A cancelled task keeps its place: the worker time it was given is not handed back, so the
tasks behind it are neither moved forward nor re-drawn (the schedule of a task never changes
once it is created).
"""

from __future__ import annotations

import heapq
import math
import random

__all__ = ["ServiceQueue"]


class ServiceQueue:
    """The workers' free times and the service-time rule; pure, driven by the task store."""

    __slots__ = ("_free_at", "base", "noise", "per_char")

    def __init__(self, workers: int, *, base: float, per_char: float, noise: float) -> None:
        if workers < 1:
            raise ValueError(f"a queue needs at least one worker, got {workers!r}")
        self.base = base
        self.per_char = per_char
        self.noise = noise
        # A heap of the moments each worker is next free; all are free from the start.
        self._free_at: list[float] = [-math.inf] * workers

    def service_seconds(self, chars: int, rng: random.Random) -> float:
        """How long serving ``chars`` characters takes: the rule times a noise factor.

        The factor is lognormal with mean 1 (``noise`` is its sigma); with no noise it is
        exactly 1 and nothing is drawn from ``rng``.
        """
        nominal = self.base + self.per_char * chars
        if not self.noise:
            return nominal
        sigma = self.noise
        return nominal * rng.lognormvariate(-sigma * sigma / 2, sigma)

    def admit(self, now: float, chars: int, rng: random.Random) -> tuple[float, float]:
        """Queue a task arriving at ``now``; return when it starts and when it is done."""
        # No await here or in the caller between pop and push: the heap is never short.
        start = max(now, heapq.heappop(self._free_at))
        done = start + self.service_seconds(chars, rng)
        heapq.heappush(self._free_at, done)
        return start, done

    def __repr__(self) -> str:
        return f"<ServiceQueue workers={len(self._free_at)} next_free={self._free_at[0]}>"
