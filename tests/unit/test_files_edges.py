"""Files at their edges: stems at their length caps, the WAV check byte by byte, every
errno's advice, result files through each step, stale parts and shared files."""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from aiotts._errors import DecodeError, OutputError
from aiotts._files import (
    PART_SUFFIX,
    WAV_HEAD_BYTES,
    OutputTarget,
    ResultFile,
    check_wav,
    commit_all,
    is_out_of_descriptors,
    output_error,
    remove_stale_parts,
    safe_stem,
    share_file,
)

pytestmark = pytest.mark.anyio

NO_SUCH_PID = 99_999_999  # above any pid_max: never a running process


def digest(task_id: str) -> str:
    return hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def wav(data_bytes: int, *, before_data: bytes = b"") -> bytes:
    """A whole WAV: ``before_data`` holds extra chunks between ``fmt `` and ``data``."""
    body = b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 8000, 1, 8)
    body += before_data + b"data" + struct.pack("<I", data_bytes) + b"\x80" * data_bytes
    if data_bytes % 2:
        body += b"\x00"  # RIFF pads a chunk of odd size
    return b"RIFF" + struct.pack("<I", len(body)) + body


def chunk(chunk_id: bytes, size: int) -> bytes:
    return chunk_id + struct.pack("<I", size) + b"\x00" * (size + size % 2)


# -- names ------------------------------------------------------------------------------


def test_an_id_of_the_longest_kept_length_is_kept_and_one_more_is_hashed() -> None:
    longest = "a" * 100
    assert safe_stem(longest) == longest
    longer = "a" * 101
    assert safe_stem(longer) == f"_{'a' * 80}-{digest(longer)}"


@pytest.mark.parametrize(
    ("task_id", "cleaned"),
    [
        ("a/b", "a_b"),
        ("../../x", "x"),
        ("-lead", "-lead"),
        ("_lead", "lead"),
        ("a.1", "a_1"),
        ("XY/Z", "XY_Z"),
        ("ü-ñ", "-"),
        ("x" * 5000, "x" * 80),
        ("__" + "y" * 90 + "/", "y" * 80),
    ],
)
def test_an_unsafe_id_keeps_its_safe_characters_and_a_hash(task_id: str, cleaned: str) -> None:
    assert safe_stem(task_id) == f"_{cleaned}-{digest(task_id)}"


@pytest.mark.parametrize("task_id", ["", "...", "/", "\x00", "\ud800", "é"])
def test_an_id_without_safe_characters_is_its_hash(task_id: str) -> None:
    assert safe_stem(task_id) == f"_{digest(task_id)}"


def test_targets_name_each_result(tmp_path: Path) -> None:
    target = OutputTarget.in_folder(str(tmp_path), "a/b")
    assert target.folder == tmp_path
    stem = safe_stem("a/b")
    assert target.stem == stem
    assert target.name(0) == f"{tmp_path}/{stem}.wav"
    assert target.path(0) == tmp_path / f"{stem}.wav"
    assert target.name(2) == f"{tmp_path}/{stem}.2.wav"
    assert target.name(0, "Mp3File") == f"{tmp_path}/{stem}.bin"
    assert target.path(1, "Mp3File") == tmp_path / f"{stem}.1.bin"
    assert target.path(1, "WavFile") == tmp_path / f"{stem}.1.wav"


def test_a_target_path_is_a_folder_or_a_file_name(tmp_path: Path) -> None:
    assert OutputTarget.at_path(tmp_path, "TTSa") == OutputTarget(tmp_path, "TTSa")
    new = str(tmp_path / "new") + os.sep  # a folder to be made
    assert OutputTarget.at_path(new, "TTSa") == OutputTarget(tmp_path / "new", "TTSa")
    assert OutputTarget.at_path(tmp_path / "speech", "TTSa") == OutputTarget(
        tmp_path, "speech", ".wav"
    )
    named = OutputTarget.at_path(str(tmp_path / "speech.riff"), "TTSa")
    assert named == OutputTarget(tmp_path, "speech", ".riff")
    assert named.path(0) == tmp_path / "speech.riff"
    assert named.path(1) == tmp_path / "speech.1.riff"


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "advice"),
    [
        (errno.ENOSPC, "free some space, then resume"),
        (errno.EDQUOT, "free some space, then resume"),
        (errno.EACCES, "choose a folder you can write to"),
        (errno.EPERM, "choose a folder you can write to"),
        (errno.EROFS, "choose a folder you can write to"),
        (errno.ENOENT, "check that the output folder exists"),
        (errno.ENOTDIR, "check that the output folder exists"),
        (
            errno.EMFILE,
            "this process has too many files and connections open at once; lower the "
            "number of downloads in flight or raise the limit (ulimit -n)",
        ),
        (
            errno.ENFILE,
            "this process has too many files and connections open at once; lower the "
            "number of downloads in flight or raise the limit (ulimit -n)",
        ),
        (errno.EIO, "check the output folder"),
    ],
)
def test_each_errno_gets_its_advice(number: int, advice: str) -> None:
    path = Path("/out/a.wav")
    error = output_error(OSError(number, os.strerror(number)), path, "TTSa")
    assert str(error) == f"task TTSa: cannot write /out/a.wav: {os.strerror(number)}; {advice}"
    assert (error.path, error.errno, error.task_id) == ("/out/a.wav", number, "TTSa")
    plain = output_error(OSError(number, os.strerror(number)), path, None)
    assert str(plain) == f"cannot write /out/a.wav: {os.strerror(number)}; {advice}"
    assert plain.task_id is None


def test_an_error_without_strerror_shows_its_text() -> None:
    error = output_error(OSError("the disk went away"), Path("x.wav"), None)
    assert str(error) == "cannot write x.wav: the disk went away; check the output folder"
    assert error.errno is None


def test_out_of_descriptors_is_found_along_a_short_chain_of_causes() -> None:
    for number in (errno.EMFILE, errno.ENFILE):
        assert is_out_of_descriptors(OSError(number, "too many"))
    assert is_out_of_descriptors(OSError(errno.EACCES, "denied")) is False
    assert is_out_of_descriptors(RuntimeError("no cause")) is False

    def chain(depth: int) -> BaseException:
        exc: BaseException = OSError(errno.EMFILE, "too many")
        for _ in range(depth):
            outer = RuntimeError("wrapped")
            outer.__cause__ = exc
            exc = outer
        return exc

    assert is_out_of_descriptors(chain(1))
    assert is_out_of_descriptors(chain(7))  # the eighth exception looked at
    assert is_out_of_descriptors(chain(8)) is False


# -- the WAV check ----------------------------------------------------------------------


def check_error(head: bytes, size: int) -> tuple[int, str]:
    with pytest.raises(DecodeError) as caught:
        check_wav(head, size, task_id="TTSw")
    assert caught.value.task_id == "TTSw"
    return caught.value.offset, caught.value.reason


def test_a_wav_is_whole_only_at_its_declared_size() -> None:
    body = wav(10)
    check_wav(body, len(body))
    assert check_error(body, len(body) + 1) == (
        4,
        f"the WAV header declares {len(body)} bytes but {len(body) + 1} were received",
    )
    assert check_error(body, len(body) - 1) == (
        4,
        f"the WAV header declares {len(body)} bytes but {len(body) - 1} were received",
    )


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"RIFF",
        b"RIFX" + struct.pack("<I", 4) + b"WAVE",
        b"RIFF" + struct.pack("<I", 4) + b"AVI ",
    ],
)
def test_anything_but_riff_wave_is_refused(head: bytes) -> None:
    assert check_error(head, max(len(head), 12)) == (0, "the audio is not a RIFF/WAVE file")


def test_the_smallest_riff_has_no_data_chunk() -> None:
    head = b"RIFF" + struct.pack("<I", 4) + b"WAVE"
    assert check_error(head, 12) == (
        12,
        f"the WAV file has no data chunk within its first {WAV_HEAD_BYTES} bytes",
    )
    assert check_error(head[:11], 11) == (0, "the audio is not a RIFF/WAVE file")


def test_a_data_chunk_of_odd_size_may_end_with_its_pad_byte() -> None:
    padded = wav(5)
    check_wav(padded, len(padded))
    unpadded = padded[:-1]
    fixed = b"RIFF" + struct.pack("<I", len(unpadded) - 8) + unpadded[8:]
    check_wav(fixed, len(fixed))
    even = wav(6)
    longer = b"RIFF" + struct.pack("<I", len(even) - 7) + even[8:] + b"\x00"
    assert check_error(longer, len(longer)) == (
        40,
        "the WAV data chunk declares 6 bytes but 7 follow its header",
    )


def test_chunks_before_data_are_walked_with_their_pad_bytes() -> None:
    body = wav(8, before_data=chunk(b"LIST", 3) + chunk(b"fact", 4))
    check_wav(body, len(body))
    data_at = body.index(b"data")
    wrong = body[: data_at + 4] + struct.pack("<I", 9) + body[data_at + 8 :]
    assert check_error(wrong, len(wrong)) == (
        data_at + 4,
        "the WAV data chunk declares 9 bytes but 8 follow its header",
    )


def test_the_data_chunk_must_start_within_the_head() -> None:
    # The data chunk's header ends exactly at WAV_HEAD_BYTES: found.
    filler = WAV_HEAD_BYTES - 12 - 24 - 8 - 8
    body = wav(4, before_data=chunk(b"LIST", filler))
    assert body.index(b"data") + 8 == WAV_HEAD_BYTES
    check_wav(body[:WAV_HEAD_BYTES], len(body))
    # One byte further: not found within the head.
    later = wav(4, before_data=chunk(b"LIST", filler + 2))
    assert check_error(later[:WAV_HEAD_BYTES], len(later)) == (
        WAV_HEAD_BYTES - 6,
        f"the WAV file has no data chunk within its first {WAV_HEAD_BYTES} bytes",
    )


def test_a_chunk_running_past_the_end_means_no_data_chunk() -> None:
    body = wav(0, before_data=b"LIST" + struct.pack("<I", 1000))
    offset, reason = check_error(body, len(body))
    assert reason.startswith("the WAV file has no data chunk")
    assert offset == len(body)


# -- result files ----------------------------------------------------------------------


async def test_a_result_file_goes_through_its_steps(tmp_path: Path) -> None:
    final = tmp_path / "a.wav"
    file = ResultFile(str(final), task_id="TTSa")
    assert file.final == final
    assert file.temp.parent == tmp_path
    assert file.temp.name.startswith(".a.wav.") and file.temp.name.endswith(PART_SUFFIX)
    assert repr(file) == "<ResultFile a.wav open 0 bytes>"
    body = wav(3000)
    file.write(memoryview(body)[:100])
    file.write(bytearray(body[100:]))
    assert file.size == len(body)
    file.close()
    assert repr(file) == f"<ResultFile a.wav closed {len(body)} bytes>"
    with pytest.raises(RuntimeError, match="write to a closed ResultFile"):
        file.write(b"x")
    await commit_all([file], durable=True)  # closed: reopened to be synced
    assert final.read_bytes() == body
    assert sorted(os.listdir(tmp_path)) == ["a.wav"]


async def test_the_head_is_kept_across_writes_of_any_size(tmp_path: Path) -> None:
    filler = WAV_HEAD_BYTES - 12 - 24 - 8 - 8
    body = wav(5000, before_data=chunk(b"LIST", filler))
    for step in (1, 7, WAV_HEAD_BYTES - 1, WAV_HEAD_BYTES, len(body)):
        file = ResultFile(tmp_path / f"{step}.wav", task_id="t")
        for start in range(0, len(body), step):
            file.write(body[start : start + step])
        file.verify()
        file.discard()


async def test_only_wav_results_are_checked_and_a_new_type_is_checked_again(
    tmp_path: Path,
) -> None:
    file = ResultFile(tmp_path / "a.bin", task_id="t", result_type="Mp3File")
    file.write(b"ID3 not a wav")
    file.verify()
    file.name_as(tmp_path / "a.wav", "WavFile")
    assert file.final == tmp_path / "a.wav"
    with pytest.raises(DecodeError):
        file.verify()
    file.name_as(tmp_path / "a.other", "Other")
    await commit_all([file], durable=False)
    assert (tmp_path / "a.other").read_bytes() == b"ID3 not a wav"


async def test_a_verified_file_renamed_to_the_same_type_stays_verified(tmp_path: Path) -> None:
    file = ResultFile(tmp_path / "a.wav", task_id="t")
    file.write(wav(10))
    file.verify()
    file.name_as(tmp_path / "b.wav", "WavFile")
    await commit_all([file], durable=False)
    assert sorted(os.listdir(tmp_path)) == ["b.wav"]


async def test_a_write_after_verify_is_checked_again(tmp_path: Path) -> None:
    file = ResultFile(tmp_path / "a.wav", task_id="t")
    file.write(wav(10))
    file.verify()
    file.write(b"trailing")
    with pytest.raises(DecodeError, match="declares"):
        await commit_all([file], durable=False)
    assert os.listdir(tmp_path) == []


async def test_a_rename_that_fails_is_an_output_error_and_leaves_no_part(tmp_path: Path) -> None:
    final = tmp_path / "a.wav"
    final.mkdir()
    (final / "keep").write_bytes(b"")  # a folder with content cannot be replaced
    file = ResultFile(final, task_id="TTSa")
    file.write(wav(10))
    with pytest.raises(OutputError) as caught:
        await commit_all([file], durable=False)
    assert (caught.value.path, caught.value.task_id) == (str(final), "TTSa")
    assert sorted(os.listdir(tmp_path)) == ["a.wav"]


def test_discard_never_raises_even_when_the_descriptor_is_already_gone(tmp_path: Path) -> None:
    file = ResultFile(tmp_path / "a.wav", task_id="t")
    file.write(b"RIFF")
    (descriptor,) = (
        int(fd)
        for fd in os.listdir("/proc/self/fd")
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(file.temp.resolve())
    )
    os.close(descriptor)  # as after a failed close(2)
    file.discard()
    assert os.listdir(tmp_path) == []


# -- stale parts ------------------------------------------------------------------------


def test_only_the_parts_of_dead_writers_named_like_ours_are_removed(tmp_path: Path) -> None:
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = [f".a.wav.{NO_SUCH_PID}.0{PART_SUFFIX}", f".b.1.wav.{NO_SUCH_PID}.17{PART_SUFFIX}"]
    kept = [
        f".a.wav.{os.getpid()}.0{PART_SUFFIX}",  # this process still writes it
        f".c.wav.{writer.pid}.3{PART_SUFFIX}",  # and so does another one
        f"a.wav.{NO_SUCH_PID}.0{PART_SUFFIX}",  # no leading dot
        f".a.wav.{NO_SUCH_PID}.0.partial",
        f".a.wav.x{NO_SUCH_PID}.0{PART_SUFFIX}",  # no pid
        f".{NO_SUCH_PID}{PART_SUFFIX}",  # too few parts
        "notes.part",
    ]
    for name in dead + kept:
        (tmp_path / name).write_bytes(b"half")
    try:
        assert remove_stale_parts(tmp_path) == 2
        assert writer.poll() is None  # asked whether it runs, and left running
    finally:
        writer.kill()
        writer.wait()
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def test_a_part_that_cannot_be_removed_is_not_counted(tmp_path: Path) -> None:
    (tmp_path / f".a.wav.{NO_SUCH_PID}.0{PART_SUFFIX}").mkdir()  # unlink refuses a folder
    (tmp_path / f".b.wav.{NO_SUCH_PID}.0{PART_SUFFIX}").write_bytes(b"")
    assert remove_stale_parts(tmp_path) == 1
    assert remove_stale_parts(tmp_path / "missing") == 0


def test_a_writer_of_another_user_counts_as_alive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_permitted(pid: int, sig: int) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    part = tmp_path / f".a.wav.12345.0{PART_SUFFIX}"
    part.write_bytes(b"")
    monkeypatch.setattr(os, "kill", not_permitted)
    assert remove_stale_parts(tmp_path) == 0
    assert part.exists()


# -- shared files ----------------------------------------------------------------------


def test_a_shared_file_is_a_hard_link_where_possible(tmp_path: Path) -> None:
    source = tmp_path / "a.wav"
    source.write_bytes(wav(10))
    assert share_file(source, source, task_id="a") == source
    destination = tmp_path / "b.wav"
    assert share_file(source, destination, task_id="b") == destination
    assert os.stat(destination).st_ino == os.stat(source).st_ino
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "b.wav"]


def test_a_shared_file_is_copied_where_links_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, destination: object) -> None:
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    source = tmp_path / "a.wav"
    source.write_bytes(wav(10))
    monkeypatch.setattr(os, "link", no_links)
    destination = tmp_path / "b.wav"
    share_file(source, destination, task_id="b")
    assert destination.read_bytes() == source.read_bytes()
    assert os.stat(destination).st_ino != os.stat(source).st_ino
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "b.wav"]


def test_a_share_that_fails_is_an_output_error_and_leaves_no_part(tmp_path: Path) -> None:
    source = tmp_path / "a.wav"
    source.write_bytes(wav(10))
    destination = tmp_path / "b.wav"
    destination.mkdir()
    (destination / "keep").write_bytes(b"")
    with pytest.raises(OutputError) as caught:
        share_file(source, destination, task_id="TTSb")
    assert (caught.value.path, caught.value.task_id) == (str(destination), "TTSb")
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "b.wav"]
    missing = tmp_path / "no" / "c.wav"
    with pytest.raises(OutputError) as caught:
        share_file(source, missing, task_id="TTSc")
    assert caught.value.path == str(missing)


@pytest.mark.parametrize(
    "folder", ["/", "/data/out", "out", "out/sub", ".", "", "/data/out/", "a//b", "/../x"]
)
def test_a_target_names_its_files_as_os_path_join_does(folder: str) -> None:
    target = OutputTarget(Path(folder), "TTSa")
    assert target.name(0) == os.path.join(os.fspath(Path(folder)), "TTSa") + ".wav"
    target = OutputTarget(folder, "TTSa")  # type: ignore[arg-type]  # a str: "" too
    assert target.name(1) == os.path.join(folder, "TTSa") + ".1.wav"
