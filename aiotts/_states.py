"""The life of one task in a batch, as one transition table. Pure: no I/O, no time.

::

    queued ──admit──▶ polling ──download──▶ downloading ──saved──▶ done
                       ▲  │ ▲                   │
                       │  │ └────not_ready──────┘
                       └──┘ not_ready
    polling | downloading ──server_error / unknown_status──▶ failed
    polling | downloading ──not_found──▶ missing
    polling | downloading ──gave_up──▶ aborted
    queued | polling | downloading ──deadline──▶ expired
    queued | polling | downloading ──cancel──▶ cancelled

Invariant: ``TaskMachine.apply`` either moves along an edge of ``TRANSITIONS`` or raises
``InvalidTransition`` and leaves the state as it was. Final states have no way out, so a
task ends exactly once.
"""

from __future__ import annotations

import enum

from aiotts._models import OutcomeState

__all__ = ["TRANSITIONS", "Event", "InvalidTransition", "State", "TaskMachine"]


class State(enum.StrEnum):
    QUEUED = "queued"
    POLLING = "polling"
    DOWNLOADING = "downloading"
    DONE = "done"
    FAILED = "failed"
    MISSING = "missing"
    EXPIRED = "expired"
    ABORTED = "aborted"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in _FINAL

    @property
    def outcome(self) -> OutcomeState:
        """The outcome a final state reports (``ValueError`` for a state that is not final)."""
        return OutcomeState(self.value)


_FINAL = frozenset(
    {State.DONE, State.FAILED, State.MISSING, State.EXPIRED, State.ABORTED, State.CANCELLED}
)


class Event(enum.StrEnum):
    ADMIT = "admit"
    """The scheduler took the task in."""
    NOT_READY = "not_ready"
    """The server said ``Pending`` or ``Processing``."""
    DOWNLOAD = "download"
    """A result body started streaming to disk."""
    SAVED = "saved"
    """The server said ``Completed`` and every file took its final name."""
    SERVER_ERROR = "server_error"
    """The server said ``Error``."""
    NOT_FOUND = "not_found"
    """The server said ``NotExist``."""
    UNKNOWN_STATUS = "unknown_status"
    """The server sent a ``taskStatus`` outside the documented set."""
    GAVE_UP = "gave_up"
    """Retries ran out, or the answer could not be used."""
    DEADLINE = "deadline"
    """The task's or the batch's deadline passed."""
    CANCEL = "cancel"
    """The batch was cancelled."""


_ACTIVE = (State.POLLING, State.DOWNLOADING)
_UNFINISHED = (State.QUEUED, *_ACTIVE)

TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.QUEUED, Event.ADMIT): State.POLLING,
    (State.POLLING, Event.NOT_READY): State.POLLING,
    (State.POLLING, Event.DOWNLOAD): State.DOWNLOADING,
    (State.DOWNLOADING, Event.DOWNLOAD): State.DOWNLOADING,  # restarted after a cut body
    (State.DOWNLOADING, Event.NOT_READY): State.POLLING,
    (State.DOWNLOADING, Event.SAVED): State.DONE,
    **{(state, Event.SERVER_ERROR): State.FAILED for state in _ACTIVE},
    **{(state, Event.UNKNOWN_STATUS): State.FAILED for state in _ACTIVE},
    **{(state, Event.NOT_FOUND): State.MISSING for state in _ACTIVE},
    **{(state, Event.GAVE_UP): State.ABORTED for state in _ACTIVE},
    **{(state, Event.DEADLINE): State.EXPIRED for state in _UNFINISHED},
    **{(state, Event.CANCEL): State.CANCELLED for state in _UNFINISHED},
}


class InvalidTransition(RuntimeError):
    """An event the table does not allow in the current state (a bug, never a server answer)."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"event {event.value!r} is not allowed in state {state.value!r}")
        self.state = state
        self.event = event


class TaskMachine:
    """The state of one task; changed only through ``apply``."""

    __slots__ = ("state",)

    def __init__(self, state: State = State.QUEUED) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<TaskMachine {self.state.value}>"

    def apply(self, event: Event) -> State:
        try:
            self.state = TRANSITIONS[self.state, event]
        except KeyError:
            raise InvalidTransition(self.state, event) from None
        return self.state
