"""``_texts``: the file a key names (injective, safe), and the readers of input files."""

from __future__ import annotations

import io
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiotts import UsageError
from aiotts._files import OutputTarget
from aiotts._texts import MAX_KEY_LENGTH, file_stem, input_format, read_texts

_WEIRD_KEYS = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="aA./\\:-_ ~+\x00\x1f\u00e9\u0301\ufeff", max_size=12),
    st.sampled_from(["", ".", "..", "con", "CON", "Con", "nul", "com1", "lpt9", "a.1", "a"]),
    st.text(min_size=60, max_size=MAX_KEY_LENGTH),
)
_SAFE_STEM = re.compile(r"[a-z0-9_+-]{1,100}")


@given(st.lists(_WEIRD_KEYS, min_size=2, max_size=30, unique=True))
@settings(max_examples=300)
def test_no_two_keys_share_a_file_even_where_case_is_ignored(keys: list[str]) -> None:
    stems = [file_stem(key) for key in keys]
    assert len({stem.casefold() for stem in stems}) == len(keys)


@given(_WEIRD_KEYS)
@settings(max_examples=300)
def test_every_stem_is_a_safe_file_name(key: str) -> None:
    stem = file_stem(key)
    assert _SAFE_STEM.fullmatch(stem), stem
    assert stem not in {"con", "prn", "aux", "nul"} and not re.fullmatch(r"(com|lpt)\d", stem)
    assert file_stem(key) == stem  # the same key always names the same file
    target = OutputTarget(OutputTarget.in_folder("out", "x").folder, stem)
    assert target.path(0).parent.name == "out"  # never leaves the folder


def test_safe_keys_are_their_own_names_and_the_rest_keep_a_readable_slug() -> None:
    assert file_stem("1") == "1"
    assert file_stem("intro-part_2") == "intro-part_2"
    assert file_stem("Intro").startswith("intro+")
    assert file_stem("../../etc/passwd").startswith("etc-passwd+")
    assert file_stem("con").startswith("con+")
    assert file_stem("").startswith("+")
    assert file_stem("Café au lait").startswith("cafe-au-lait+")
    assert len(file_stem("x" * MAX_KEY_LENGTH)) <= 100


def _read(data: bytes, form: str, **options: str) -> list[tuple[str, str, int]]:
    return [(t.key, t.text, t.line) for t in read_texts(io.BytesIO(data), "in", form, **options)]


def test_one_text_a_line_keyed_by_line_number() -> None:
    data = "\ufeffFirst.\r\n\nThird.\n".encode()
    assert _read(data, "txt") == [("1", "First.", 1), ("3", "Third.", 3)]


def test_json_lines_with_string_or_number_keys() -> None:
    data = b'{"key": "a", "text": "A."}\n\n{"key": 7, "text": "Seven."}\n'
    assert _read(data, "jsonl") == [("a", "A.", 1), ("7", "Seven.", 3)]


def test_csv_with_named_columns_and_quoted_texts_over_lines() -> None:
    data = b'id,sentence\nx,"One,\nstill one."\n\ny,Two.\n'
    rows = _read(data, "csv", key_column="id", text_column="sentence")
    assert rows == [("x", "One,\nstill one.", 2), ("y", "Two.", 5)]


@pytest.mark.parametrize(
    ("data", "form", "message"),
    [
        (
            b'{"key": "a", "text": "A."}\n{"key": "b", "text": \n',
            "jsonl",
            r"in, line 2: not a JSON",
        ),
        (b'{"key": "a", "text": "A."}\n["b", "B."]\n', "jsonl", r"line 2: each line must be"),
        (b'{"key": "a"}\n', "jsonl", r'line 1: no "text"'),
        (b'{"key": true, "text": "x"}\n', "jsonl", r'line 1: no "key"'),
        (b'{"key": "a", "text": "  "}\n', "jsonl", r"line 1: the text of key 'a' is empty"),
        (b'{"key": "", "text": "x"}\n', "jsonl", r"line 1: the key is empty"),
        (b"key,text\na,A.\nb\n", "csv", r"line 3: 1 columns where the header has 2"),
        (b"name,text\na,A.\n", "csv", r"line 1: the header row has no column 'key'"),
        (b"key,text\na,\n", "csv", r"line 2: the text of key 'a' is empty"),
        (b"fine\n\xff\xfe\n", "txt", r"line 2: not valid UTF-8"),
    ],
)
def test_a_bad_line_is_an_error_naming_it(data: bytes, form: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _read(data, form)


def test_the_format_follows_the_suffix_unless_given() -> None:
    assert input_format("a.JSONL", None) == "jsonl"
    assert input_format("a.ndjson", None) == "jsonl"
    assert input_format("a.csv", None) == "csv"
    assert input_format("a.text", None) == "txt"
    assert input_format("a.csv", "txt") == "txt"
    with pytest.raises(UsageError, match="unknown input format 'xml'"):
        input_format("a", "xml")
