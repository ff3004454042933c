"""The JSONL manifest: append, torn lines, last entry wins."""

from __future__ import annotations

from pathlib import Path

import orjson

from aiotts._manifest import Manifest, file_is_complete, read_manifest
from aiotts._models import Outcome, OutcomeState


def test_round_trip_and_last_line_wins(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    manifest = Manifest(path)
    manifest.append(Outcome("a", OutcomeState.ABORTED, error="503", finished_at=1.0))
    manifest.append(
        Outcome(
            "b",
            OutcomeState.FAILED,
            messages=("bad text",),
            warnings=("a note",),
            response_code="Error",
            finished_at=2.0,
        )
    )
    manifest.append(
        Outcome(
            "a", OutcomeState.DONE, files=(tmp_path / "a.wav",), bytes_written=10, finished_at=3.0
        )
    )
    manifest.close()
    entries = read_manifest(path)
    assert entries["a"].state is OutcomeState.DONE
    assert entries["a"].files == (tmp_path / "a.wav",)
    assert entries["b"].messages == ("bad text",)
    assert entries["b"].warnings == ("a note",)
    assert entries["b"].response_code == "Error"
    assert entries["b"].as_outcome().warnings == ("a note",)
    for line in path.read_bytes().splitlines():
        assert set(orjson.loads(line)) == {
            "id",
            "state",
            "files",
            "bytes",
            "error",
            "messages",
            "warnings",
            "code",
            "time",
            "v",
        }


def test_a_torn_last_line_is_skipped_and_the_next_line_starts_clean(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    manifest = Manifest(path)
    manifest.append(Outcome("a", OutcomeState.DONE, finished_at=1.0))
    manifest.close()
    with path.open("ab") as file:
        file.write(b'{"id": "b", "sta')  # a crash in the middle of a line
    assert set(read_manifest(path)) == {"a"}
    again = Manifest(path)
    again.append(Outcome("c", OutcomeState.MISSING, finished_at=2.0))
    again.close()
    assert set(read_manifest(path)) == {"a", "c"}


def test_missing_manifest_is_empty(tmp_path: Path) -> None:
    assert read_manifest(tmp_path / "none.jsonl") == {}


def test_file_is_complete_checks_size_and_header(tmp_path: Path) -> None:
    import struct

    path = tmp_path / "x.wav"
    body = b"RIFF" + struct.pack("<I", 36 + 6) + b"WAVE" + b"fmt " + b"\0" * 20 + b"data"
    body += struct.pack("<I", 6) + b"abcdef"
    path.write_bytes(body)
    assert file_is_complete(path)
    assert file_is_complete(path, len(body))
    assert not file_is_complete(path, len(body) + 1)
    path.write_bytes(body[:-1])
    assert not file_is_complete(path)
    assert not file_is_complete(tmp_path / "absent.wav")
