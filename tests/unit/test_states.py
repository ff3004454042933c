"""The per-task state machine, walked edge by edge."""

from __future__ import annotations

import itertools

import pytest

from aiotts._models import OutcomeState
from aiotts._states import TRANSITIONS, Event, InvalidTransition, State, TaskMachine


def walk(*events: Event) -> TaskMachine:
    machine = TaskMachine()
    for event in events:
        machine.apply(event)
    return machine


@pytest.mark.parametrize(
    ("events", "final"),
    [
        ((Event.ADMIT, Event.NOT_READY, Event.DOWNLOAD, Event.SAVED), State.DONE),
        ((Event.ADMIT, Event.DOWNLOAD, Event.NOT_READY, Event.DOWNLOAD, Event.SAVED), State.DONE),
        ((Event.ADMIT, Event.DOWNLOAD, Event.DOWNLOAD, Event.SAVED), State.DONE),
        ((Event.ADMIT, Event.SERVER_ERROR), State.FAILED),
        ((Event.ADMIT, Event.DOWNLOAD, Event.SERVER_ERROR), State.FAILED),
        ((Event.ADMIT, Event.UNKNOWN_STATUS), State.FAILED),
        ((Event.ADMIT, Event.NOT_FOUND), State.MISSING),
        ((Event.ADMIT, Event.NOT_READY, Event.GAVE_UP), State.ABORTED),
        ((Event.ADMIT, Event.DOWNLOAD, Event.GAVE_UP), State.ABORTED),
        ((Event.DEADLINE,), State.EXPIRED),
        ((Event.ADMIT, Event.DEADLINE), State.EXPIRED),
        ((Event.ADMIT, Event.DOWNLOAD, Event.DEADLINE), State.EXPIRED),
        ((Event.CANCEL,), State.CANCELLED),
        ((Event.ADMIT, Event.NOT_READY, Event.CANCEL), State.CANCELLED),
        ((Event.ADMIT, Event.DOWNLOAD, Event.CANCEL), State.CANCELLED),
    ],
)
def test_paths_through_the_table(events: tuple[Event, ...], final: State) -> None:
    machine = walk(*events)
    assert machine.state is final
    assert final.is_final
    assert final.outcome is OutcomeState(final.value)


def test_each_step_of_a_successful_task() -> None:
    machine = TaskMachine()
    assert machine.state is State.QUEUED
    assert machine.apply(Event.ADMIT) is State.POLLING
    assert machine.apply(Event.NOT_READY) is State.POLLING
    assert machine.apply(Event.DOWNLOAD) is State.DOWNLOADING
    assert machine.apply(Event.SAVED) is State.DONE


@pytest.mark.parametrize(("state", "event"), list(itertools.product(State, Event)))
def test_every_pair_either_moves_by_the_table_or_raises_unchanged(
    state: State, event: Event
) -> None:
    machine = TaskMachine(state)
    expected = TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(InvalidTransition) as caught:
            machine.apply(event)
        assert machine.state is state
        assert caught.value.state is state
        assert caught.value.event is event
        assert state.value in str(caught.value)
    else:
        assert machine.apply(event) is expected


def test_final_states_have_no_way_out() -> None:
    for (state, _event), _target in TRANSITIONS.items():
        assert not state.is_final


def test_only_final_states_map_to_outcomes() -> None:
    for state in State:
        if state.is_final:
            assert state.outcome.value == state.value
        else:
            with pytest.raises(ValueError, match=state.value):
                _ = state.outcome
