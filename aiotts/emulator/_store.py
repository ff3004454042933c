"""Tasks: ids, lazy states, outcomes, retention.

No timer runs per task. A task records when it was created and when it starts processing and
becomes final; its state at any moment is computed from the clock on demand
(:meth:`Task.state_at`). With the queue model on (``queue_workers > 0``) those two times come
from :class:`ServiceQueue` at creation instead of being drawn independently. Its outcome
(``Completed`` or ``Error``) is decided at creation from the seeded generator, so a run is
reproducible given the seed and the order of creations.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

from aiotts.emulator._clock import Clock
from aiotts.emulator._config import Duration, EmulatorConfig, check_duration
from aiotts.emulator._queue import ServiceQueue
from aiotts.emulator._snapshots import TaskState

__all__ = ["Task", "TaskStore", "new_task_id"]


def new_task_id(rng: random.Random) -> str:
    """A lower-case UUIDv4 whose first three hex digits read ``TTS``, as the service makes."""
    text = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return "TTS" + text[3:]


class Task:
    """One task's fixed facts and its live counters (mutated only on the event loop)."""

    __slots__ = (
        "audio_bytes",
        "audio_finished",
        "audio_started",
        "cancelled",
        "created_at",
        "expires_at",
        "fetches",
        "id",
        "messages",
        "outcome",
        "processing_at",
        "ready_at",
        "status_requests",
        "text",
        "trial",
    )

    def __init__(
        self,
        task_id: str,
        text: str,
        *,
        trial: bool,
        created_at: float,
        processing_at: float,
        ready_at: float,
        expires_at: float,
        outcome: TaskState,
        messages: tuple[str, ...],
        audio_bytes: int | None,
    ) -> None:
        self.id = task_id
        self.text = text
        self.trial = trial
        self.created_at = created_at
        self.processing_at = processing_at
        self.ready_at = ready_at
        self.expires_at = expires_at
        self.outcome = outcome
        self.messages = messages
        self.audio_bytes = audio_bytes
        self.cancelled = False
        self.fetches = 0
        self.status_requests = 0
        self.audio_started = 0
        self.audio_finished = 0

    def state_at(self, now: float) -> TaskState:
        """The ``taskStatus`` a fetch at ``now`` reports.

        Cancelled or past retention is ``NotExist``, whatever the outcome would have been.
        """
        if self.cancelled or now >= self.expires_at:
            return TaskState.NOT_EXIST
        if now < self.processing_at:
            return TaskState.PENDING
        if now < self.ready_at:
            return TaskState.PROCESSING
        return self.outcome

    def __repr__(self) -> str:
        return f"<Task {self.id} outcome={self.outcome} fetches={self.fetches}>"


class TaskStore:
    """Every task created in this run, by id; tasks are never forgotten (see retention)."""

    __slots__ = ("_clock", "_config", "_queue", "_rng", "_tasks")

    def __init__(self, config: EmulatorConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        # One generator for task facts, separate from the per-request one, so that fault
        # draws do not shift task outcomes and vice versa.
        self._rng = random.Random(f"aiotts-emulator-tasks:{config.seed}")
        self._tasks: dict[str, Task] = {}
        self._queue = (
            ServiceQueue(
                config.queue_workers,
                base=config.service_base_seconds,
                per_char=config.service_seconds_per_char,
                noise=config.service_noise,
            )
            if config.queue_workers
            else None
        )

    def _draw(self, duration: Duration) -> float:
        if isinstance(duration, tuple):
            low, high = duration
            return self._rng.uniform(low, high)
        return duration

    def create(
        self,
        text: str,
        *,
        trial: bool = False,
        pending: Duration | None = None,
        processing: Duration | None = None,
        fail: bool | float | None = None,
        audio_bytes: int | None = None,
    ) -> Task:
        """Add one task created now; ``None`` arguments take the config's values.

        With the queue model on, a task given neither ``pending`` nor ``processing`` joins
        the queue; one given either keeps to its own durations and takes no worker.
        ``fail`` is a share of tasks that end in ``Error`` (``True`` = all, ``False`` = none).
        """
        cfg = self._config
        pending_d = cfg.pending_seconds if pending is None else check_duration("pending", pending)
        processing_d = (
            cfg.processing_seconds
            if processing is None
            else check_duration("processing", processing)
        )
        share = cfg.error_share if fail is None else float(fail)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"fail must be a bool or a share in [0, 1], got {fail!r}")
        if audio_bytes is not None and (isinstance(audio_bytes, bool) or audio_bytes < 47):
            raise ValueError(f"audio_bytes must be at least 47, got {audio_bytes!r}")
        task_id = new_task_id(self._rng)
        while task_id in self._tasks:  # 2**122 ids: never in practice, but cheap to be sure
            task_id = new_task_id(self._rng)
        now = self._clock()
        if self._queue is not None and pending is None and processing is None:
            processing_at, ready_at = self._queue.admit(now, len(text), self._rng)
        else:
            processing_at = now + self._draw(pending_d)
            ready_at = processing_at + self._draw(processing_d)
        failed = self._rng.random() < share
        task = Task(
            task_id,
            text,
            trial=trial,
            created_at=now,
            processing_at=processing_at,
            ready_at=ready_at,
            expires_at=now + cfg.retention,
            outcome=TaskState.ERROR if failed else TaskState.COMPLETED,
            messages=cfg.error_messages if failed else (),
            audio_bytes=cfg.audio_bytes if audio_bytes is None else audio_bytes,
        )
        self._tasks[task_id] = task
        return task

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks.values())

    def ids(self) -> tuple[str, ...]:
        """Every id in creation order."""
        return tuple(self._tasks)
