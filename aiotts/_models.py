"""The values aiotts hands back: task statuses, result envelopes, tokens, outcomes.

All are frozen, slotted dataclasses. ``TaskResult.from_json`` is the one place that turns a
parsed envelope into types, and it refuses anything outside the documented shape.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiotts import _redact
from aiotts._errors import AiottsError, ResponseError, UnexpectedStatusError

__all__ = [
    "AudioResult",
    "Outcome",
    "OutcomeState",
    "TaskResult",
    "TaskStatus",
    "Token",
    "printable_id",
]


def printable_id(task_id: str) -> str:
    """``task_id`` as text any JSON writer accepts: bytes that were not UTF-8 (kept as lone
    surrogates when the id was read) are shown as ``\\xNN`` escapes."""
    try:
        task_id.encode("utf-8")
    except UnicodeEncodeError:
        raw = task_id.encode("utf-8", "surrogateescape")
        return raw.decode("utf-8", "backslashreplace")
    return task_id


class TaskStatus(enum.StrEnum):
    """``taskStatus`` as the server spells it."""

    PENDING = "Pending"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    ERROR = "Error"
    NOT_EXIST = "NotExist"

    @property
    def is_final(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.PROCESSING)


_STATUSES: dict[object, TaskStatus] = {status.value: status for status in TaskStatus}


def _safe_raw(raw: object, shown: str) -> object:
    """``raw`` to keep on an error: scalars as sent, text scrubbed, anything else as text."""
    if raw is None or isinstance(raw, bool | int | float):
        return raw
    return _redact.server_text(raw, limit=80) if isinstance(raw, str) else shown


def parse_status(raw: object, task_id: str) -> TaskStatus:
    """The status named by ``raw``; any other value is an error naming it (never a loop),
    as server text made safe to show."""
    try:
        status = _STATUSES.get(raw)
    except TypeError:  # unhashable: a list or an object
        status = None
    if status is not None:
        return status
    # Raised outside any handler, so no exception holding the raw value rides along.
    shown = _redact.server_text(repr(raw), limit=80)
    raise UnexpectedStatusError(
        f"task {task_id}: the server sent taskStatus {shown}, which is not one of "
        f"{', '.join(status.value for status in TaskStatus)}",
        task_id=task_id,
        raw=_safe_raw(raw, shown),
    )


_MAX_TEXTS = 20


def _strings(value: object) -> tuple[str, ...]:
    """The server's texts, each made safe to show (secrets scrubbed, length capped)."""
    if isinstance(value, list):
        return tuple(
            _redact.server_text(item if isinstance(item, str) else str(item))
            for item in value[:_MAX_TEXTS]
            if item is not None
        )
    return ()


def error_texts(error: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(messages, warnings)`` from the envelope's ``error`` object; empty if null or malformed."""
    if not isinstance(error, Mapping):
        return (), ()
    return _strings(error.get("messages")), _strings(error.get("warnings"))


@dataclass(frozen=True, slots=True)
class AudioResult:
    """One element of ``results``: its ``type`` (``WavFile``) and the decoded bytes."""

    type: str
    data: bytes = field(repr=False)

    def __repr__(self) -> str:
        return f"AudioResult(type={self.type!r}, bytes={len(self.data)})"


@dataclass(frozen=True, slots=True)
class TaskResult:
    """The result envelope of one task, as ``fetch`` and ``status`` return it."""

    task_id: str
    status: TaskStatus
    response_code: str | None = None
    messages: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    results: tuple[AudioResult, ...] | None = None

    @classmethod
    def from_fields(
        cls,
        fields: Mapping[str, Any],
        *,
        task_id: str,
        results: tuple[AudioResult, ...] | None = None,
    ) -> TaskResult:
        """Build from the envelope's top-level fields (``results`` handled by the caller).

        ``id`` must be the one asked for, or null; a ``NotExist`` answer may also leave it
        empty (the server knows no id to echo).
        """
        status = parse_status(fields.get("taskStatus"), task_id)
        answered_id = fields.get("id")
        echoed = answered_id in (None, task_id) or (
            status is TaskStatus.NOT_EXIST and answered_id == ""
        )
        if not echoed:
            raise ResponseError(
                f"asked for task {task_id} but the server answered about "
                f"{_redact.server_text(repr(answered_id), limit=80)}",
                task_id=task_id,
            )
        code = fields.get("responseStatusCode")
        messages, warnings = error_texts(fields.get("error"))
        return cls(
            task_id=task_id,
            status=status,
            response_code=code if isinstance(code, str) else None,
            messages=messages,
            warnings=warnings,
            results=results,
        )

    @property
    def why_no_audio(self) -> str:
        """Why this result holds no audio to save, for an error or an outcome."""
        if self.status is TaskStatus.ERROR:
            detail = f": {'; '.join(self.messages)}" if self.messages else ""
            return f"the server could not convert this task{detail}"
        if self.status is TaskStatus.NOT_EXIST:
            return (
                "the server does not know this task (unknown, cancelled or older than its "
                "retention); resubmit the text if needed"
            )
        return f"the task is {self.status.value}; wait for it (TTSClient.wait) first"


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and when to stop using it. The value never shows in a repr."""

    value: str = field(repr=False)
    expires_at: float
    refresh_at: float


class OutcomeState(enum.StrEnum):
    """How a task ended in a batch. Every id ends in exactly one of these."""

    DONE = "done"
    """Completed and saved: ``files`` hold the audio."""
    FAILED = "failed"
    """The server said ``Error``; ``messages`` hold what it said."""
    MISSING = "missing"
    """``NotExist``: unknown, cancelled, or older than the server keeps results."""
    EXPIRED = "expired"
    """The task's or the batch's deadline passed first."""
    ABORTED = "aborted"
    """aiotts gave up: retries ran out, or the answer was unusable; ``error`` says why."""
    CANCELLED = "cancelled"
    """The batch was cancelled before this task ended."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one task ended: what ``fetch_many`` yields and the manifest records."""

    task_id: str
    state: OutcomeState
    files: tuple[Path, ...] = ()
    bytes_written: int = 0
    error: str | None = None
    messages: tuple[str, ...] = ()
    """The server's ``error.messages``: why it failed, or notes sent with a success."""
    finished_at: float = 0.0
    """Wall-clock time (``time.time()``) when the outcome was decided."""
    warnings: tuple[str, ...] = ()
    """The server's ``error.warnings`` (they may come with a ``Completed`` task too)."""
    response_code: str | None = None
    """The server's ``responseStatusCode`` in the answer that ended the task, if one did."""
    resumed: bool = False
    """True when the outcome comes from the manifest of an earlier run (nothing was sent)."""
    cause: AiottsError | None = field(default=None, repr=False, compare=False)
    """The exception behind a ``failed`` or ``aborted`` outcome, when there was one."""
    key: str | None = None
    """The key of the text this task was made from (``synthesize``); None otherwise."""

    @property
    def ok(self) -> bool:
        return self.state is OutcomeState.DONE
