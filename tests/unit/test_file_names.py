"""File names map back to exactly one (task id, result index)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from aiotts._files import OutputTarget, safe_stem

# Ids built from the characters that could make two names meet (dots, digits, the
# separators safe stems keep), and any text at all.
ids = st.one_of(st.text(alphabet="a1._-/", max_size=12), st.text(max_size=120))
indexes = st.integers(min_value=0, max_value=12)
parts = st.text(alphabet="aZ1_-", min_size=1, max_size=6)


def name(task_id: str, index: int) -> str:
    return OutputTarget.in_folder(Path("out"), task_id).path(index).name


@given(ids, indexes, ids, indexes)
def test_distinct_id_and_index_pairs_never_share_a_file_name(
    first: str, i: int, second: str, j: int
) -> None:
    if (first, i) != (second, j):
        assert name(first, i) != name(second, j)


@given(ids, indexes)
def test_a_name_splits_back_into_its_stem_and_index(task_id: str, index: int) -> None:
    stem, _, rest = name(task_id, index).removesuffix(".wav").partition(".")
    assert stem == safe_stem(task_id)
    assert int(rest or 0) == index


@given(st.lists(parts, min_size=1, max_size=3).map(".".join), st.integers(1, 12))
def test_an_id_that_spells_another_ids_numbered_result_gets_its_own_name(
    base: str, index: int
) -> None:
    assert name(f"{base}.{index}", 0) != name(base, index)
    assert safe_stem(f"{base}.{index}") != safe_stem(base)


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


@given(ids)
def test_a_hashed_name_used_as_an_id_gets_another_name(task_id: str) -> None:
    stem = safe_stem(task_id)
    if stem != task_id:  # hashed: an id spelling that stem must not land on it
        assert safe_stem(stem) != stem
