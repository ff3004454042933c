"""Frozen configuration values: timeouts, limits, the poll and retry policies.

Every value is validated when it is built, so a bad setting fails at construction with a
message that names it, never later in the middle of a batch. Each is a frozen, slotted
dataclass: replace one with ``dataclasses.replace(DEFAULT_POLL, max_delay=10)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from aiotts import _backoff
from aiotts._errors import UsageError

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LIMITS",
    "DEFAULT_POLL",
    "DEFAULT_RETRY",
    "DEFAULT_TASK_TIMEOUT",
    "DEFAULT_TIMEOUTS",
    "Limits",
    "PollPolicy",
    "RetryPolicy",
    "Timeouts",
]

DEFAULT_BASE_URL = "https://api.aspose.cloud"

Jitter = Literal["full", "none"]


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise UsageError(message)


def _positive(name: str, value: float) -> None:
    _require(math.isfinite(value) and value > 0, f"{name} must be a positive number, got {value!r}")


DEFAULT_TASK_TIMEOUT = 3600.0
"""How long ``fetch_many``/``fetch_all`` wait for one task to end unless told otherwise."""


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Timeouts in seconds. ``connect`` and ``read`` bound each wait of a request; ``call``
    bounds the whole of one single-task call (``submit``, ``fetch``, ``status``,
    ``cancel``, ``download``), its token, retries and body included, so that a body that
    trickles a byte at a time can never hold a call forever. A batch's polls have no
    ``call`` deadline: each task has a deadline of its own (``task_timeout``)."""

    connect: float = 10.0
    """Establishing a connection (DNS, TCP, TLS)."""
    read: float = 60.0
    """The longest wait for the next bytes of a response."""
    call: float = 300.0
    """The whole of one single-task call, retries included; past it, ``RequestTimeout``
    (for a submit that may have been sent, ``SubmitUncertainError``). Each call can
    override it with its ``timeout`` argument."""

    def __post_init__(self) -> None:
        _positive("Timeouts.connect", self.connect)
        _positive("Timeouts.read", self.read)
        _positive("Timeouts.call", self.call)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed idempotent requests are retried: exponential backoff with full jitter,
    bounded both in attempts and in total time. ``Retry-After`` from the server is honoured
    when it is longer than the backoff delay, as long as it fits in ``max_time``."""

    max_attempts: int = 6
    max_time: float = 120.0
    first_delay: float = 0.2
    growth: float = 2.0
    max_delay: float = 10.0

    def __post_init__(self) -> None:
        _require(self.max_attempts >= 1, "RetryPolicy.max_attempts must be at least 1")
        _positive("RetryPolicy.max_time", self.max_time)
        _positive("RetryPolicy.first_delay", self.first_delay)
        _require(self.growth >= 1, "RetryPolicy.growth must be at least 1")
        _positive("RetryPolicy.max_delay", self.max_delay)

    def delays(self) -> Iterator[float]:
        """The delays before the second, third, ... attempts, already jittered."""
        return _backoff.jittered(
            _backoff.exponential(self.first_delay, self.growth, self.max_delay), "full"
        )


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """When to ask again about a task that is not finished.

    A ``Pending`` task has not started: it is asked about after ``first_delay``, then after
    delays that grow by ``growth`` up to ``max_delay``. A ``Processing`` task is being
    converted and ends soon: it is asked about every ``processing_delay``. With
    ``jitter="full"`` each delay is drawn uniformly from [``min_delay``, delay], so thousands
    of tasks started together do not poll in lockstep.

    ``budget`` caps how many times a second a client asks *again* about its tasks, every
    batch and every wait together (first polls are never held back; ``None``: no cap). A
    few pending tasks are each asked about as the delays above say; when thousands are
    pending, the budget spreads the polls out, so each is asked about every (pending tasks
    / budget) seconds instead. The client's policy sets the budget; a policy given to one
    ``wait`` or ``fetch_many`` sets only the delays of the tasks it starts polling.

    ``predict``: for tasks this client submitted itself, poll around the moment each is
    likely ready, as forecast from the tasks that ended before it (their order, their
    lengths, when they ended), instead of the delays above; never more than ``max_delay``
    apart. Tasks it did not submit, and any task before enough others have ended, follow
    the delays above. ``predict=False``: every task follows them.
    """

    first_delay: float = 0.25
    growth: float = 1.2
    max_delay: float = 5.0
    processing_delay: float = 0.4
    min_delay: float = 0.05
    jitter: Jitter = "full"
    budget: float | None = 1300.0
    predict: bool = True

    def __post_init__(self) -> None:
        _positive("PollPolicy.first_delay", self.first_delay)
        _require(self.growth >= 1, "PollPolicy.growth must be at least 1")
        _positive("PollPolicy.max_delay", self.max_delay)
        _positive("PollPolicy.processing_delay", self.processing_delay)
        _require(
            0 <= self.min_delay <= min(self.first_delay, self.processing_delay),
            "PollPolicy.min_delay must be between 0 and the smallest delay",
        )
        _require(self.jitter in ("full", "none"), "PollPolicy.jitter must be 'full' or 'none'")
        if self.budget is not None:
            _positive("PollPolicy.budget", self.budget)
        _require(isinstance(self.predict, bool), "PollPolicy.predict must be True or False")

    def pending_delays(self) -> Iterator[float]:
        """Delays between polls of a task that is still queued."""
        delays = _backoff.exponential(self.first_delay, self.growth, self.max_delay)
        return _backoff.jittered(delays, self.jitter, floor=self.min_delay)

    def processing_delays(self) -> Iterator[float]:
        """Delays between polls of a task that the server is converting."""
        delays = _backoff.constant(self.processing_delay)
        return _backoff.jittered(delays, self.jitter, floor=self.min_delay)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much aiotts does at once.

    ``polls`` bounds requests in flight for task results and is also the size of the
    connection pool, so requests queue in aiotts (before any timeout starts), never inside
    the pool. ``downloads`` bounds result bodies being written to disk at once; an answer
    that arrives while every download slot is busy waits with up to 512 KiB of its body
    read, so ``polls`` is kept at twice ``downloads``: raise both together for a distant
    server (each request in flight then waits longer for its answer).
    ``tasks_in_flight`` bounds ids taken from the caller's iterable and not yet finished,
    so an iterable of a million ids never sits in memory. ``rate`` caps requests per second
    across the whole client (tokens included); ``None`` means no cap until the server
    answers 429.
    """

    polls: int = 32
    downloads: int = 16
    tasks_in_flight: int = 10_000
    rate: float | None = None
    burst: int = 20

    def __post_init__(self) -> None:
        _require(self.polls >= 1, "Limits.polls must be at least 1")
        _require(self.downloads >= 1, "Limits.downloads must be at least 1")
        _require(self.tasks_in_flight >= 1, "Limits.tasks_in_flight must be at least 1")
        if self.rate is not None:
            _positive("Limits.rate", self.rate)
        _require(self.burst >= 1, "Limits.burst must be at least 1")


DEFAULT_TIMEOUTS = Timeouts()
DEFAULT_RETRY = RetryPolicy()
DEFAULT_POLL = PollPolicy()
DEFAULT_LIMITS = Limits()
