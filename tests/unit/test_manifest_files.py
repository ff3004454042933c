"""The manifest and the resume checks against a hostile file system: links, FIFOs, paths
recorded from another directory or pointing outside the output folder, short files."""

from __future__ import annotations

import os
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from aiotts._errors import OutputError
from aiotts._manifest import Manifest, file_is_complete, read_manifest, whole_files
from aiotts._models import Outcome, OutcomeState


def wav(data_bytes: int = 6) -> bytes:
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + b"\0" * 20
    return header + b"data" + struct.pack("<I", data_bytes) + b"x" * data_bytes


@pytest.fixture
def no_hang() -> Iterator[None]:
    """Turns a blocking open into a failure instead of a test run that never ends."""

    def alarm(signum: int, frame: object) -> None:
        raise TimeoutError("blocked on a file check")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 5.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def done(path: Path, size: int, task_id: str = "a") -> Outcome:
    return Outcome(task_id, OutcomeState.DONE, files=(path,), bytes_written=size)


def test_paths_are_recorded_relative_to_the_manifest_and_read_from_any_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.wav").write_bytes(wav())
    monkeypatch.chdir(tmp_path)
    manifest = Manifest(Path("records") / "m.jsonl")
    manifest.append(done(Path("out") / "a.wav", len(wav())))
    manifest.close()
    line = orjson.loads((tmp_path / "records" / "m.jsonl").read_bytes())
    assert line["files"] == ["../out/a.wav"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    entry = read_manifest(tmp_path / "records" / "m.jsonl")["a"]
    assert whole_files(entry, tmp_path / "out") == (tmp_path / "out" / "a.wav",)


def test_lines_of_the_older_format_are_found_from_another_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.wav").write_bytes(wav())
    (out / "m.jsonl").write_bytes(
        orjson.dumps({"id": "a", "state": "done", "files": ["out/a.wav"], "bytes": len(wav())})
        + b"\n"
    )
    monkeypatch.chdir(out)  # "out/a.wav" does not exist from here
    entry = read_manifest("m.jsonl")["a"]
    assert entry.legacy_paths
    assert whole_files(entry, Path(".")) == (Path("a.wav"),)


def test_a_recorded_path_outside_the_output_folder_is_not_done(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "a.wav"
    outside.write_bytes(wav())
    (out / "a.wav").write_bytes(wav())  # the same name inside does not make it count
    manifest = Manifest(out / "m.jsonl")
    manifest.append(done(outside, len(wav())))
    manifest.close()
    (out / "legacy.jsonl").write_bytes(
        orjson.dumps({"id": "a", "state": "done", "files": [str(outside)], "bytes": len(wav())})
        + b"\n"
    )
    assert whole_files(read_manifest(out / "m.jsonl")["a"], out) is None
    assert whole_files(read_manifest(out / "legacy.jsonl")["a"], out) is None


def test_recorded_bytes_must_match_the_files(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(wav())
    manifest = Manifest(tmp_path / "m.jsonl")
    manifest.append(done(tmp_path / "a.wav", len(wav()) + 1))
    manifest.close()
    assert whole_files(read_manifest(tmp_path / "m.jsonl")["a"], tmp_path) is None


def test_links_and_fifos_at_a_final_name_are_not_whole_and_not_opened(
    tmp_path: Path, no_hang: None
) -> None:
    real = tmp_path / "real.wav"
    real.write_bytes(wav())
    link = tmp_path / "link.wav"
    link.symlink_to(real)
    fifo = tmp_path / "fifo.wav"
    os.mkfifo(fifo)
    assert file_is_complete(real)
    assert not file_is_complete(link)
    assert not file_is_complete(fifo)  # an open() here would block for ever
    manifest = Manifest(tmp_path / "m.jsonl")
    manifest.append(done(fifo, 0, "f"))
    manifest.append(done(link, len(wav()), "l"))
    manifest.close()
    entries = read_manifest(tmp_path / "m.jsonl")
    assert whole_files(entries["f"], tmp_path) is None
    assert whole_files(entries["l"], tmp_path) is None


def test_a_manifest_link_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n")
    link = tmp_path / "m.jsonl"
    link.symlink_to(victim)
    with pytest.raises(OutputError, match="symbolic link") as caught:
        Manifest(link)
    assert caught.value.path == str(link)
    with pytest.raises(OutputError, match="symbolic link"):
        read_manifest(link)
    assert victim.read_bytes() == b"precious\n"


def test_a_manifest_fifo_is_refused_without_blocking(tmp_path: Path, no_hang: None) -> None:
    fifo = tmp_path / "m.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        Manifest(fifo)
    with pytest.raises(OutputError, match="not a regular file"):
        read_manifest(fifo)
