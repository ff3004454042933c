"""Frozen snapshots the emulator hands out: :class:`Stats` and :class:`TaskRecord`.

A snapshot never changes after it is made; ask again for a newer one. Both convert to and
from the JSON the admin API speaks, so a test gets the same objects whether the emulator
runs in its own process or in the test's event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

__all__ = ["Endpoint", "Stats", "TaskRecord", "TaskState"]


class TaskState(StrEnum):
    """A task's ``taskStatus`` as the service spells it."""

    PENDING = "Pending"
    PROCESSING = "Processing"
    COMPLETED = "Completed"
    ERROR = "Error"
    NOT_EXIST = "NotExist"


class Endpoint(StrEnum):
    """The names under which requests are counted (values are plain strings)."""

    TOKEN = "token"
    SUBMIT = "submit"
    FETCH = "fetch"
    CANCEL = "cancel"
    STATUS = "status"
    TRIAL_SUBMIT = "trial_submit"
    TRIAL_FETCH = "trial_fetch"
    TRIAL_CANCEL = "trial_cancel"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Stats:
    """Counters of vendor-endpoint traffic (admin requests are not counted).

    ``requests`` maps ``(endpoint, status)`` to a count; a request answered by a fault counts
    under the status the fault sent. ``token_requests`` counts every request to the token
    endpoint (faulted ones too), ``tokens_issued`` the 200s among them, ``tasks_created``
    submits and ``create_tasks`` alike. ``audio_started``/``audio_finished`` count full
    ``Completed`` result bodies begun and written to their last byte. ``faults`` counts the
    body faults injected by kind (``cut``, ``trickle``, ``reorder``, ``pretty``, ``escape``
    and each bad answer); 5xx and 429 faults show in ``requests`` under their status.
    """

    requests: Mapping[tuple[str, int], int] = field(default_factory=dict, hash=False)
    token_requests: int = 0
    tokens_issued: int = 0
    tasks_created: int = 0
    audio_started: int = 0
    audio_finished: int = 0
    faults: Mapping[str, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # Plain str keys (an Endpoint is a str subclass): snapshots compare and print alike
        # whether they came from this process or from the admin API.
        plain = {(str(e), int(s)): n for (e, s), n in self.requests.items()}
        object.__setattr__(self, "requests", MappingProxyType(plain))
        object.__setattr__(self, "faults", MappingProxyType(dict(self.faults)))

    def count(self, endpoint: str | None = None, status: int | None = None) -> int:
        """Requests to ``endpoint`` (any if None) answered ``status`` (any if None)."""
        return sum(
            n
            for (e, s), n in self.requests.items()
            if (endpoint is None or e == endpoint) and (status is None or s == status)
        )

    def to_json(self) -> dict[str, Any]:
        """``{"requests": {endpoint: {status: n}}, "token_requests": n, ...}``."""
        nested: dict[str, dict[str, int]] = {}
        for (endpoint, status), n in sorted(self.requests.items()):
            nested.setdefault(str(endpoint), {})[str(status)] = n
        return {
            "requests": nested,
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "tasks_created": self.tasks_created,
            "audio_started": self.audio_started,
            "audio_finished": self.audio_finished,
            "faults": dict(self.faults),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stats:
        """Inverse of :meth:`to_json`."""
        requests = {
            (endpoint, int(status)): int(n)
            for endpoint, by_status in data["requests"].items()
            for status, n in by_status.items()
        }
        return cls(
            requests=requests,
            token_requests=int(data["token_requests"]),
            tokens_issued=int(data["tokens_issued"]),
            tasks_created=int(data["tasks_created"]),
            audio_started=int(data["audio_started"]),
            audio_finished=int(data["audio_finished"]),
            faults={str(k): int(v) for k, v in data.get("faults", {}).items()},
        )


def _no_wav() -> bytes:
    raise LookupError("this record carries no audio source")


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task as the emulator sees it at the moment of the snapshot.

    ``state`` is what a fetch would report now; ``outcome`` is where the task ends
    (``Completed`` or ``Error``, decided at creation); ``messages`` are the error messages
    it reports if its outcome is ``Error``. Times are on the emulator's clock. ``fetches``
    counts result requests for this id, ``status_requests`` ``GetTaskStatus`` requests;
    ``audio_started``/``audio_finished`` count full ``Completed`` bodies begun and finished
    (a cut body is started, never finished). :meth:`wav` returns the exact WAV it serves.
    """

    id: str
    text: str
    trial: bool
    state: TaskState
    outcome: TaskState
    messages: tuple[str, ...]
    cancelled: bool
    created_at: float
    processing_at: float
    ready_at: float
    expires_at: float
    fetches: int
    status_requests: int
    audio_started: int
    audio_finished: int
    wav_length: int
    wav_source: Callable[[], bytes] = field(default=_no_wav, repr=False, compare=False, hash=False)

    def wav(self) -> bytes:
        """The WAV bytes this task's ``Completed`` result carries (made on demand)."""
        return self.wav_source()

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready dict, without the audio (see ``/_emulator/audio/{id}``)."""
        return {
            "id": self.id,
            "text": self.text,
            "trial": self.trial,
            "state": str(self.state),
            "outcome": str(self.outcome),
            "messages": list(self.messages),
            "cancelled": self.cancelled,
            "created_at": self.created_at,
            "processing_at": self.processing_at,
            "ready_at": self.ready_at,
            "expires_at": self.expires_at,
            "fetches": self.fetches,
            "status_requests": self.status_requests,
            "audio_started": self.audio_started,
            "audio_finished": self.audio_finished,
            "wav_length": self.wav_length,
        }

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any], wav_source: Callable[[], bytes] = _no_wav
    ) -> TaskRecord:
        """Inverse of :meth:`to_json`; extra keys (such as ``wav_sha256``) are ignored."""
        return cls(
            id=data["id"],
            text=data["text"],
            trial=bool(data["trial"]),
            state=TaskState(data["state"]),
            outcome=TaskState(data["outcome"]),
            messages=tuple(data["messages"]),
            cancelled=bool(data["cancelled"]),
            created_at=float(data["created_at"]),
            processing_at=float(data["processing_at"]),
            ready_at=float(data["ready_at"]),
            expires_at=float(data["expires_at"]),
            fetches=int(data["fetches"]),
            status_requests=int(data["status_requests"]),
            audio_started=int(data["audio_started"]),
            audio_finished=int(data["audio_finished"]),
            wav_length=int(data["wav_length"]),
            wav_source=wav_source,
        )
