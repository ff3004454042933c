"""Safe names, atomic result files and the WAV check."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiotts._errors import DecodeError, OutputError
from aiotts._files import OutputTarget, ResultFile, check_wav, commit_all, safe_stem

pytestmark = pytest.mark.anyio


def wav(data_bytes: int) -> bytes:
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 22050, 66150, 3, 24)
    header += b"data" + struct.pack("<I", data_bytes)
    return header + bytes(range(256)) * (data_bytes // 256) + b"\x01" * (data_bytes % 256)


def test_observed_ids_are_kept_as_they_are() -> None:
    assert (
        safe_stem("TTSb4705-728d-4258-8cca-b49fb7921aa1") == "TTSb4705-728d-4258-8cca-b49fb7921aa1"
    )


@pytest.mark.parametrize(
    "task_id",
    [
        "../../x",
        "..",
        ".",
        "/etc/passwd",
        "a/b",
        "a\\b",
        "nul\x00byte",
        "x" * 5000,
        "",
        " ",
        ".hidden",
        "C:\\evil",
        "ok\n",
        "ü-ñ",
        "a..b",
    ],
)
def test_unsafe_ids_become_one_plain_name(task_id: str, tmp_path: Path) -> None:
    stem = safe_stem(task_id)
    assert stem
    assert len(stem) <= 120
    assert "/" not in stem and "\\" not in stem and "\x00" not in stem
    assert not stem.startswith(".")
    target = OutputTarget.in_folder(tmp_path, task_id).path(3)
    assert target.parent == tmp_path
    assert target.resolve().parent == tmp_path.resolve()


@given(st.text(max_size=300))
def test_any_id_stays_inside_the_folder(task_id: str) -> None:
    folder = Path("/tmp/out")
    path = OutputTarget.in_folder(folder, task_id).path(0)
    assert path.parent == folder
    assert os.path.normpath(path).startswith("/tmp/out/")
    assert path.name not in (".", "..", ".wav")


def test_distinct_unsafe_ids_get_distinct_names() -> None:
    assert safe_stem("../x") != safe_stem("..\\x")
    assert safe_stem("a/b") != safe_stem("a_b")


def test_several_results_are_numbered(tmp_path: Path) -> None:
    target = OutputTarget.in_folder(tmp_path, "TTSabc")
    assert target.path(0).name == "TTSabc.wav"
    assert target.path(1).name == "TTSabc.1.wav"
    named = OutputTarget.at_path(tmp_path / "speech.wav", "TTSabc")
    assert named.path(0) == tmp_path / "speech.wav"
    assert named.path(2) == tmp_path / "speech.2.wav"


def test_check_wav_accepts_a_whole_file_and_names_what_disagrees() -> None:
    body = wav(1000)
    check_wav(body[:44], len(body))
    with pytest.raises(DecodeError, match="declares"):
        check_wav(body[:44], len(body) - 3)
    broken = bytearray(body[:44])
    broken[40:44] = struct.pack("<I", 5)
    with pytest.raises(DecodeError, match="data chunk"):
        check_wav(bytes(broken), len(body))
    with pytest.raises(DecodeError, match="RIFF"):
        check_wav(b"<html>" + b" " * 38, 1044)


async def test_commit_renames_only_a_verified_file(tmp_path: Path) -> None:
    final = tmp_path / "a.wav"
    file = ResultFile(final, task_id="a")
    body = wav(5000)
    for i in range(0, len(body), 7):
        file.write(body[i : i + 7])
    assert not final.exists()
    await commit_all([file], durable=True)
    assert final.read_bytes() == body
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]


async def test_a_bad_second_result_leaves_no_first_one(tmp_path: Path) -> None:
    good = ResultFile(tmp_path / "t.wav", task_id="t")
    good.write(wav(100))
    bad = ResultFile(tmp_path / "t.1.wav", task_id="t")
    bad.write(wav(100)[:-1])
    with pytest.raises(DecodeError):
        await commit_all([good, bad], durable=False)
    assert list(tmp_path.iterdir()) == []


async def test_discard_removes_the_temporary_file(tmp_path: Path) -> None:
    file = ResultFile(tmp_path / "x.wav", task_id="x")
    file.write(b"RIFF")
    assert file.temp.exists()
    assert file.temp.name.startswith(".") and file.temp.name.endswith(".part")
    file.discard()
    file.discard()
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_an_output_error_naming_path_and_remedy(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "x.wav"
    with pytest.raises(OutputError) as caught:
        ResultFile(missing, task_id="x")
    assert str(missing) in str(caught.value)
    assert "folder" in str(caught.value)


def test_full_disk_is_an_output_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    file = ResultFile(tmp_path / "x.wav", task_id="TTSx")
    real_write = os.write

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OutputError) as caught:
        file.write(b"RIFF....")
    monkeypatch.setattr(os, "write", real_write)
    assert caught.value.errno == errno.ENOSPC
    assert "TTSx" in str(caught.value) and "free some space" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_stale_temporary_files_of_dead_writers_are_removed(tmp_path: Path) -> None:
    import subprocess
    import sys

    from aiotts._files import remove_stale_parts

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".TTSa.wav.{dead_pid}.abcd1234.part"
    stale.write_bytes(b"half")
    live = ResultFile(tmp_path / "TTSb.wav", task_id="TTSb")  # this process still writes it
    mine = tmp_path / "notes.part"  # not one of ours
    mine.write_text("keep")
    done = tmp_path / "TTSc.wav"
    done.write_bytes(wav(10))
    assert remove_stale_parts(tmp_path) == 1
    assert not stale.exists()
    assert live.temp.exists()
    assert mine.exists()
    assert done.exists()
    live.discard()
