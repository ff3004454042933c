"""Everything one emulator knows, shared by the vendor endpoints, the admin API and Python.

All mutation happens on the event loop thread, between awaits, so no lock is needed: each
method here is synchronous and so runs to completion without interleaving.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

from aiotts.emulator._audio import Runs, base64_runs, synthesize, wav_length
from aiotts.emulator._auth import Authority
from aiotts.emulator._cache import ByteLRU
from aiotts.emulator._clock import Clock, OffsetClock, default_clock
from aiotts.emulator._config import Duration, EmulatorConfig, Faults
from aiotts.emulator._snapshots import Stats, TaskRecord
from aiotts.emulator._store import Task, TaskStore

__all__ = ["DAY", "EmulatorState"]

DAY = 86_400.0


class EmulatorState:
    """Config, live faults, tasks, tokens, counters and the encoded-audio cache."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        faults: Faults | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.faults = faults if faults is not None else Faults()  # the setter below
        self.clock = OffsetClock(clock if clock is not None else default_clock)
        self.store = TaskStore(self.config, self.clock)
        self.authority = Authority(self.config, self.clock)
        # Per-request draws (fault shares) come from here, separate from task facts.
        self.rng = random.Random(f"aiotts-emulator-requests:{self.config.seed}")
        self._cache: ByteLRU[Runs] = ByteLRU(self.config.cache_bytes)
        self._default_texts = itertools.count(1)
        self._trial_windows: dict[str, tuple[float, int]] = {}  # address -> (start, calls)
        self.reset_stats()

    @property
    def faults(self) -> Faults:
        """The knobs in force; replacing them is one assignment, safe between requests."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        # Summaries read on every request, computed once per change rather than per request.
        # Set before the knobs themselves; nothing awaits in between, so no request sees a mix.
        self.any_transient = faults.any_transient
        self.any_body = faults.any_body
        self._faults = faults

    # -- counters --------------------------------------------------------------------------

    def reset_stats(self) -> None:
        """Zero the global counters (per-task counters are kept)."""
        self.requests: dict[tuple[str, int], int] = {}
        self.token_requests = 0
        self.tokens_issued = 0
        self.tasks_created = 0
        self.audio_started = 0
        self.audio_finished = 0
        self.faults_injected: dict[str, int] = {}

    def note_fault(self, kind: str) -> None:
        """Count one injected body fault (cut, trickle, an encoding, a bad answer)."""
        self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1

    def count(self, endpoint: str, status: int) -> None:
        key = (endpoint, status)
        self.requests[key] = self.requests.get(key, 0) + 1

    def stats(self) -> Stats:
        return Stats(
            requests=self.requests,
            token_requests=self.token_requests,
            tokens_issued=self.tokens_issued,
            tasks_created=self.tasks_created,
            audio_started=self.audio_started,
            audio_finished=self.audio_finished,
            faults=self.faults_injected,
        )

    # -- tasks -----------------------------------------------------------------------------

    def create_task(
        self,
        text: str,
        *,
        trial: bool = False,
        pending: Duration | None = None,
        processing: Duration | None = None,
        fail: bool | float | None = None,
        audio_bytes: int | None = None,
    ) -> Task:
        task = self.store.create(
            text,
            trial=trial,
            pending=pending,
            processing=processing,
            fail=fail,
            audio_bytes=audio_bytes,
        )
        self.tasks_created += 1
        return task

    def create_tasks(
        self,
        texts: Iterable[str] | int,
        *,
        ready_after: Duration | None = None,
        pending: Duration | None = None,
        processing: Duration | None = None,
        fail: bool | float | None = None,
        trial: bool = False,
        audio_bytes: int | None = None,
    ) -> list[str]:
        """Create tasks as if submitted now, without requests; return their ids in order.

        ``texts`` is the texts, or a count of tasks with distinct generated texts.
        ``ready_after`` (seconds, or a ``(low, high)`` range drawn per task) means "Pending
        until then, then the outcome", and excludes ``pending``/``processing``; with neither,
        the config's durations apply. ``fail`` is the share ending in ``Error`` (``True``:
        all, ``False``: none, ``None``: the config's ``error_share``).
        """
        if ready_after is not None:
            if pending is not None or processing is not None:
                raise ValueError("give ready_after, or pending/processing, not both")
            pending, processing = ready_after, 0.0
        if isinstance(texts, int):
            if isinstance(texts, bool) or texts < 0:
                raise ValueError(f"a task count must be a non-negative integer, got {texts!r}")
            texts = [self._default_text() for _ in range(texts)]
        ids = []
        for text in texts:
            if not isinstance(text, str) or not text:
                raise ValueError("every text must be a non-empty string")
            task = self.create_task(
                text,
                trial=trial,
                pending=pending,
                processing=processing,
                fail=fail,
                audio_bytes=audio_bytes,
            )
            ids.append(task.id)
        return ids

    def _default_text(self) -> str:
        n = next(self._default_texts)
        return f"Emulated task number {n}: the quick brown fox jumps over the lazy dog."

    def record(self, task_id: str) -> TaskRecord:
        """A snapshot of one task; ``KeyError`` if the id was never created here."""
        task = self.store.get(task_id)
        if task is None:
            raise KeyError(task_id)
        return TaskRecord(
            id=task.id,
            text=task.text,
            trial=task.trial,
            state=task.state_at(self.clock()),
            outcome=task.outcome,
            messages=task.messages,
            cancelled=task.cancelled,
            created_at=task.created_at,
            processing_at=task.processing_at,
            ready_at=task.ready_at,
            expires_at=task.expires_at,
            fetches=task.fetches,
            status_requests=task.status_requests,
            audio_started=task.audio_started,
            audio_finished=task.audio_finished,
            wav_length=wav_length(task.text, size=task.audio_bytes, watermark=task.trial),
            wav_source=lambda: self.wav(task),
        )

    # -- audio -----------------------------------------------------------------------------

    @staticmethod
    def wav(task: Task) -> bytes:
        """The exact WAV a ``Completed`` fetch of ``task`` carries."""
        return synthesize(task.text, size=task.audio_bytes, watermark=task.trial)

    def encoded(self, task: Task) -> Runs:
        """The task's WAV as standard Base64 (padded), as runs; made once, kept while it fits.

        Keyed by what determines the audio, not by id: tasks with the same text and size
        share one entry. A sized result is periodic, so even 30 MB costs a few hundred KB
        here (see :func:`base64_runs`).
        """
        key = (task.text, task.trial, task.audio_bytes)
        runs = self._cache.get(key)
        if runs is None:
            runs = base64_runs(task.text, size=task.audio_bytes, watermark=task.trial)
            self._cache.put(key, runs, sum(len(piece) for piece, _ in runs))
        return runs

    # -- trial window ----------------------------------------------------------------------

    def trial_wait(self, address: str) -> float | None:
        """Seconds until ``address`` may submit on trial again, or None if it may now."""
        now = self.clock()
        start, calls = self._trial_windows.get(address, (now, 0))
        if now - start >= DAY:
            return None
        if calls >= self.config.trial_daily_limit:
            return start + DAY - now
        return None

    def trial_used(self, address: str) -> None:
        """Count one accepted trial submit from ``address`` in its current day."""
        now = self.clock()
        start, calls = self._trial_windows.get(address, (now, 0))
        if now - start >= DAY:
            start, calls = now, 0
        self._trial_windows[address] = (start, calls + 1)

    def __repr__(self) -> str:
        return (
            f"<EmulatorState tasks={len(self.store)} requests={sum(self.requests.values())} "
            f"cache={self._cache!r}>"
        )
