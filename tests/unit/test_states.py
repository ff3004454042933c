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


# The table as the design states it, written out by hand: every (state, event) pair, and
# where it leads, or None where the event is refused. The machine is compared with this,
# not with itself, so a wrong, missing or extra edge in TRANSITIONS fails here.
_ = None
EXPECTED: dict[State, dict[Event, State | None]] = {
    State.QUEUED: {
        Event.ADMIT: State.POLLING,
        Event.NOT_READY: _,
        Event.DOWNLOAD: _,
        Event.SAVED: _,
        Event.SERVER_ERROR: _,
        Event.NOT_FOUND: _,
        Event.UNKNOWN_STATUS: _,
        Event.GAVE_UP: _,
        Event.DEADLINE: State.EXPIRED,
        Event.CANCEL: State.CANCELLED,
    },
    State.POLLING: {
        Event.ADMIT: _,
        Event.NOT_READY: State.POLLING,
        Event.DOWNLOAD: State.DOWNLOADING,
        Event.SAVED: _,
        Event.SERVER_ERROR: State.FAILED,
        Event.NOT_FOUND: State.MISSING,
        Event.UNKNOWN_STATUS: State.FAILED,
        Event.GAVE_UP: State.ABORTED,
        Event.DEADLINE: State.EXPIRED,
        Event.CANCEL: State.CANCELLED,
    },
    State.DOWNLOADING: {
        Event.ADMIT: _,
        Event.NOT_READY: State.POLLING,
        Event.DOWNLOAD: State.DOWNLOADING,
        Event.SAVED: State.DONE,
        Event.SERVER_ERROR: State.FAILED,
        Event.NOT_FOUND: State.MISSING,
        Event.UNKNOWN_STATUS: State.FAILED,
        Event.GAVE_UP: State.ABORTED,
        Event.DEADLINE: State.EXPIRED,
        Event.CANCEL: State.CANCELLED,
    },
    **{
        final: dict.fromkeys(Event)
        for final in (
            State.DONE,
            State.FAILED,
            State.MISSING,
            State.EXPIRED,
            State.ABORTED,
            State.CANCELLED,
        )
    },
}


def test_the_expected_table_names_every_pair() -> None:
    assert set(EXPECTED) == set(State)
    for events in EXPECTED.values():
        assert set(events) == set(Event)


def test_transitions_are_exactly_the_expected_table() -> None:
    allowed = {
        (state, event): target
        for state, events in EXPECTED.items()
        for event, target in events.items()
        if target is not None
    }
    missing = {pair: allowed[pair] for pair in allowed.keys() - TRANSITIONS.keys()}
    extra = {pair: TRANSITIONS[pair] for pair in TRANSITIONS.keys() - allowed.keys()}
    wrong = {
        pair: (TRANSITIONS[pair], allowed[pair])
        for pair in allowed.keys() & TRANSITIONS.keys()
        if TRANSITIONS[pair] is not allowed[pair]
    }
    assert (missing, extra, wrong) == ({}, {}, {})


@pytest.mark.parametrize(("state", "event"), list(itertools.product(State, Event)))
def test_the_machine_follows_the_expected_table(state: State, event: Event) -> None:
    machine = TaskMachine(state)
    target = EXPECTED[state][event]
    if target is None:
        with pytest.raises(InvalidTransition):
            machine.apply(event)
        assert machine.state is state
    else:
        assert machine.apply(event) is target
        assert machine.state is target


def test_final_states_are_exactly_the_outcomes() -> None:
    assert {s for s in State if s.is_final} == {State(o.value) for o in OutcomeState}
    assert {s for s in State if not s.is_final} == {State.QUEUED, State.POLLING, State.DOWNLOADING}


def test_repr_shows_the_state() -> None:
    machine = TaskMachine()
    machine.apply(Event.ADMIT)
    assert repr(machine) == "<TaskMachine polling>"


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
