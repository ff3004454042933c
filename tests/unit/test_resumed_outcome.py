"""The outcome of a proven file is made without the dataclass call, either way equal to
the one that call makes, field by field, and as frozen."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import pytest

from aiotts import OutcomeState
from aiotts._admission import (
    _resumed_done_by_constructor,
    _resumed_done_by_twin,
    resumed_done,
)
from aiotts._models import Outcome


@pytest.mark.parametrize(
    "make", [resumed_done, _resumed_done_by_twin, _resumed_done_by_constructor]
)
def test_each_way_makes_what_the_constructor_makes(make: object) -> None:
    files = (Path("/out/a.wav"),)
    made = make("a", files, 2000, 12.5, None)  # type: ignore[operator]
    expected = Outcome(
        "a", OutcomeState.DONE, files, 2000, finished_at=12.5, response_code=None, resumed=True
    )
    assert type(made) is Outcome and made == expected and hash(made) == hash(expected)
    for field in dataclasses.fields(Outcome):
        assert getattr(made, field.name) == getattr(expected, field.name), field.name
    assert pickle.loads(pickle.dumps(made)) == expected
    assert repr(made) == repr(expected)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.bytes_written = 1  # type: ignore[misc]


def test_the_quickest_way_is_the_one_in_use() -> None:
    assert resumed_done is _resumed_done_by_twin
