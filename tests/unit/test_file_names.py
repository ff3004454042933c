"""File names map back to exactly one (task id, result index)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from aiotts._files import OutputTarget, safe_stem

# Ids built mostly from the characters that could make two names meet: dots, digits,
# the separators safe stems keep, and anything else hypothesis finds.
ids = st.text(alphabet=st.sampled_from("a1._-/ ") | st.characters(), max_size=120)
indexes = st.integers(min_value=0, max_value=12)


def name(task_id: str, index: int) -> str:
    return OutputTarget.in_folder(Path("out"), task_id).path(index).name


@given(ids, indexes, ids, indexes)
def test_distinct_id_and_index_pairs_never_share_a_file_name(
    first: str, i: int, second: str, j: int
) -> None:
    if (first, i) != (second, j):
        assert name(first, i) != name(second, j)


@given(ids)
def test_stems_never_contain_the_index_separator(task_id: str) -> None:
    stem = safe_stem(task_id)
    assert "." not in stem and "/" not in stem and stem


def test_the_two_claimants_of_a_1_wav() -> None:
    assert name("a", 1) == "a.1.wav"
    assert name("a.1", 0) != "a.1.wav"
    assert name("TTSb4705-728d-4258-8cca-b49fb7921aa1", 0) == (
        "TTSb4705-728d-4258-8cca-b49fb7921aa1.wav"
    )
