"""The manifest's records field by field, its torn-line repair byte by byte, its errors
word for word, and the resume check's rules at their edges."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotts._errors import OutputError
from aiotts._manifest import (
    Manifest,
    ManifestEntry,
    outcome_line,
    parse_line,
    read_manifest,
    relative_name,
    whole_files,
)
from aiotts._models import Outcome, OutcomeState
from aiotts._store import OutcomeStore


def wav(data_bytes: int = 6) -> bytes:
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + b"\0" * 20
    return header + b"data" + struct.pack("<I", data_bytes) + b"x" * data_bytes


def line_of(outcome: Outcome, base: Path) -> bytes:
    return outcome_line(outcome, os.path.abspath(base))


# -- names relative to the record's folder -----------------------------------------------

_PARTS = st.lists(st.sampled_from(["", ".", "..", "a", "b", "x.wav", "a.1.wav"]), max_size=5)


@given(
    base=_PARTS,
    path=_PARTS,
    absolute=st.booleans(),
    trailing=st.booleans(),
)
def test_relative_name_is_relpath_of_abspath(
    base: list[str], path: list[str], absolute: bool, trailing: bool
) -> None:
    folder = os.path.abspath("/" + "/".join(base))
    text = ("/" if absolute else "") + "/".join(path) + ("/" if trailing else "")
    if not text:
        text = "."
    assert relative_name(text, folder) == os.path.relpath(os.path.abspath(text), folder)
    assert relative_name(Path(text), folder) == os.path.relpath(os.path.abspath(text), folder)


def test_relative_name_of_a_file_in_the_folder_is_what_follows_it() -> None:
    assert relative_name("/data/out/TTS1.wav", "/data/out") == "TTS1.wav"
    assert relative_name("/data/out/sub/TTS1.wav", "/data/out") == "sub/TTS1.wav"
    assert relative_name("/TTS1.wav", "/") == "TTS1.wav"
    assert relative_name("/data/outer/TTS1.wav", "/data/out") == "../outer/TTS1.wav"
    assert relative_name("/data/out/../TTS1.wav", "/data/out") == "../TTS1.wav"
    assert relative_name("/data/out//TTS1.wav", "/data/out") == "TTS1.wav"


def test_a_file_in_the_folder_costs_no_relpath(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: str, start: str | None = None) -> str:
        raise AssertionError(f"os.path.relpath({path!r}, {start!r})")

    monkeypatch.setattr(os.path, "relpath", refuse)
    assert relative_name("/data/out/TTS1.wav", "/data/out") == "TTS1.wav"
    assert relative_name(Path("/data/out/sub/TTS1.wav"), "/data/out") == "sub/TTS1.wav"
    assert relative_name("/TTS1.wav", "/") == "TTS1.wav"


# -- lines ---------------------------------------------------------------------------


def test_a_line_holds_every_field_and_the_time_to_the_millisecond(tmp_path: Path) -> None:
    outcome = Outcome(
        "TTSa",
        OutcomeState.DONE,
        files=(tmp_path / "out" / "a.wav",),
        bytes_written=10,
        error="e",
        messages=("m",),
        warnings=("w",),
        response_code="Ok",
        finished_at=1.23456,
    )
    assert line_of(outcome, tmp_path) == (
        b'{"v":2,"id":"TTSa","state":"done","files":["out/a.wav"],"bytes":10,"error":"e",'
        b'"messages":["m"],"warnings":["w"],"code":"Ok","time":1.235}'
    )


def test_a_line_reads_back_as_the_entry_it_records(tmp_path: Path) -> None:
    outcome = Outcome(
        "TTSa",
        OutcomeState.FAILED,
        files=(tmp_path / "a.wav",),
        bytes_written=7,
        error="the server said Error",
        messages=("bad text",),
        warnings=("a note",),
        response_code="Error",
        finished_at=12.5,
    )
    entry = parse_line(line_of(outcome, tmp_path), tmp_path)
    assert entry == ManifestEntry(
        task_id="TTSa",
        state=OutcomeState.FAILED,
        files=(tmp_path / "a.wav",),
        bytes_written=7,
        error="the server said Error",
        messages=("bad text",),
        time=12.5,
        warnings=("a note",),
        response_code="Error",
        legacy_paths=False,
    )
    assert entry.as_outcome() == Outcome(
        "TTSa",
        OutcomeState.FAILED,
        files=(tmp_path / "a.wav",),
        bytes_written=7,
        error="the server said Error",
        messages=("bad text",),
        warnings=("a note",),
        response_code="Error",
        finished_at=12.5,
        resumed=True,
    )
    moved = (tmp_path / "elsewhere.wav",)
    assert entry.as_outcome(moved).files == moved
    assert entry.as_outcome(()).files == ()


def test_missing_fields_take_their_defaults(tmp_path: Path) -> None:
    entry = parse_line(b'{"v":2,"id":"a","state":"missing"}', tmp_path)
    assert entry == ManifestEntry(
        task_id="a",
        state=OutcomeState.MISSING,
        files=(),
        bytes_written=0,
        error=None,
        messages=(),
        time=0.0,
        warnings=(),
        response_code=None,
        legacy_paths=False,
    )


def test_odd_field_values_are_read_safely(tmp_path: Path) -> None:
    line = b'{"v":2,"id":7,"state":"done","bytes":null,"time":null,"messages":"x","code":5}'
    entry = parse_line(line, tmp_path)
    assert entry is not None
    assert (entry.task_id, entry.bytes_written, entry.time) == ("7", 0, 0.0)
    assert (entry.messages, entry.response_code) == ((), None)


def test_a_line_of_the_older_format_keeps_its_paths_as_written(tmp_path: Path) -> None:
    line = b'{"id":"a","state":"done","files":["out/a.wav"],"bytes":6,"time":3}'
    entry = parse_line(line, tmp_path / "records")
    assert entry is not None
    assert entry.legacy_paths
    assert entry.files == (Path("out/a.wav"),)
    assert entry.time == 3.0


@pytest.mark.parametrize(
    "line",
    [b"", b"\n", b"{", b"[]", b'{"state":"done"}', b'{"id":"a"}', b'{"id":"a","state":"odd"}'],
)
def test_a_line_that_is_no_record_is_skipped(line: bytes, tmp_path: Path) -> None:
    assert parse_line(line, tmp_path) is None


# -- the file --------------------------------------------------------------------------


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_manifest_is_created_with_its_folders_and_mode_0644(
    tmp_path: Path, umask_022: None
) -> None:
    path = tmp_path / "a" / "b" / "m.jsonl"
    manifest = Manifest(path)
    assert repr(manifest) == f"<Manifest {path} lines_written=0>"
    manifest.add(Outcome("x", OutcomeState.MISSING, finished_at=1.0))
    manifest.append(Outcome("y", OutcomeState.MISSING, finished_at=2.0))
    manifest.commit()
    assert manifest.lines_written == 2
    assert repr(manifest) == f"<Manifest {path} lines_written=2>"
    manifest.close()
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert list(read_manifest(path)) == ["x", "y"]


def test_reopening_a_whole_manifest_adds_no_byte(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    manifest = Manifest(path)
    manifest.append(Outcome("a", OutcomeState.MISSING, finished_at=1.0))
    manifest.close()
    before = path.read_bytes()
    Manifest(path).close()
    assert path.read_bytes() == before
    path.write_bytes(b"")
    Manifest(path).close()
    assert path.read_bytes() == b""


@pytest.mark.parametrize("torn", [b"{", b'{"id":"a","st', b"x\n{"])
def test_a_torn_last_line_is_ended_before_the_next_one(torn: bytes, tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(torn)
    manifest = Manifest(path)
    manifest.append(Outcome("b", OutcomeState.MISSING, finished_at=1.0))
    manifest.close()
    line = line_of(Outcome("b", OutcomeState.MISSING, finished_at=1.0), tmp_path)
    assert path.read_bytes() == torn + b"\n" + line + b"\n"
    assert set(read_manifest(path)) == {"b"}


def test_a_link_or_a_non_regular_file_is_refused_with_the_remedy(tmp_path: Path) -> None:
    link = tmp_path / "link.jsonl"
    link.symlink_to(tmp_path / "target.jsonl")
    for opener in (Manifest, read_manifest):
        with pytest.raises(OutputError) as caught:
            opener(link)
        assert str(caught.value) == (
            f"the manifest {link} is a symbolic link; aiotts reads and writes a manifest only "
            "as a regular file, never through a link: remove it, or pass another manifest path"
        )
        assert caught.value.path == str(link)
    assert not (tmp_path / "target.jsonl").exists()
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(OutputError) as caught:
        read_manifest(fifo)
    assert str(caught.value).startswith(f"the manifest {fifo} is not a regular file; ")
    assert caught.value.path == str(fifo)


def test_a_folder_at_the_manifest_path_is_an_output_error_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "m.jsonl"
    folder.mkdir()
    with pytest.raises(OutputError) as caught:
        Manifest(folder)
    assert caught.value.path == str(folder)
    assert caught.value.errno == errno.EISDIR
    assert str(folder) in str(caught.value)
    with pytest.raises(OutputError) as read:
        read_manifest(folder)
    assert read.value.path == str(folder)


def test_a_manifest_whose_folder_cannot_be_made_is_an_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    path = tmp_path / "file" / "m.jsonl"
    with pytest.raises(OutputError) as caught:
        Manifest(path)
    assert caught.value.path == str(path)
    assert caught.value.errno in (errno.EEXIST, errno.ENOTDIR)
    assert f"cannot write {path}: " in str(caught.value)


def test_a_failed_read_of_the_last_byte_is_an_output_error_and_closes_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"{}\n")

    def failing_pread(fd: int, size: int, offset: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "pread", failing_pread)
    with pytest.raises(OutputError) as caught:
        Manifest(path)
    monkeypatch.undo()
    assert (caught.value.path, caught.value.errno) == (str(path), errno.EIO)
    assert len(os.listdir("/proc/self/fd")) == before


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """Writes that would grow a file past ``limit`` bytes fail with EFBIG (the signal that
    would end the process is ignored), as on a file system that refuses to grow a file.
    Kept to the few calls inside: any file already longer refuses writes too."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_a_failed_write_is_an_output_error_naming_the_task(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    manifest = Manifest(path)
    outcome = Outcome("TTSbig", OutcomeState.FAILED, error="e" * 4096)
    with file_size_limit(4096):
        with pytest.raises(OutputError) as caught:
            manifest.append(outcome)
        manifest.close()  # the unwritten line cannot be flushed either: close says nothing
    assert (caught.value.path, caught.value.errno) == (str(path), errno.EFBIG)
    assert caught.value.task_id == "TTSbig"
    assert str(caught.value).startswith(f"task TTSbig: cannot write {path}: ")
    assert manifest.lines_written == 0


# -- stores ------------------------------------------------------------------------------


def test_a_store_is_read_while_its_run_still_writes_it(tmp_path: Path) -> None:
    path = tmp_path / "records.db"
    store = OutcomeStore(path)
    try:
        store.add(Outcome("a", OutcomeState.MISSING, finished_at=1.0))
        store.commit()
        entries = read_manifest(path)
    finally:
        store.close()
    assert list(entries) == ["a"]
    assert entries["a"].state is OutcomeState.MISSING


def test_a_missing_store_reads_as_empty_and_is_not_created(tmp_path: Path) -> None:
    # As a missing JSONL manifest: a run stopped before it made its store left nothing.
    path = tmp_path / "none.db"
    assert read_manifest(path) == {}
    assert not path.exists()


# -- the resume check -------------------------------------------------------------------


def entry_for(
    files: tuple[Path, ...], size: int, state: OutcomeState = OutcomeState.DONE
) -> ManifestEntry:
    return ManifestEntry("a", state, files, size, None, (), 0.0)


def test_every_file_of_a_task_counts_toward_its_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(wav(6))
    (tmp_path / "a.1.wav").write_bytes(wav(10))
    files = (tmp_path / "a.wav", tmp_path / "a.1.wav")
    total = len(wav(6)) + len(wav(10))
    assert whole_files(entry_for(files, total), tmp_path) == files
    assert whole_files(entry_for(files, total - 1), tmp_path) is None
    assert whole_files(entry_for(files, len(wav(10))), tmp_path) is None


def test_only_a_done_entry_with_files_is_whole(tmp_path: Path) -> None:
    (tmp_path / "a.wav").write_bytes(wav())
    files = (tmp_path / "a.wav",)
    assert whole_files(entry_for(files, len(wav())), tmp_path) == files
    for state in (OutcomeState.FAILED, OutcomeState.MISSING, OutcomeState.ABORTED):
        assert whole_files(entry_for(files, len(wav()), state), tmp_path) is None
    assert whole_files(entry_for((), 0), tmp_path) is None


def test_an_older_line_naming_a_parent_folder_is_not_looked_up_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.wav").write_bytes(wav())
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    for recorded, found in (("../a.wav", None), ("somewhere/a.wav", (out / "a.wav",))):
        line = orjson.dumps({"id": "a", "state": "done", "files": [recorded], "bytes": 50})
        entry = parse_line(line, out)
        assert entry is not None and entry.legacy_paths
        assert whole_files(entry, out) == found, recorded
