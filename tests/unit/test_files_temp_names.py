"""Temporary names carry the id of the process writing them, also in a forked child."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from aiotts._files import PART_SUFFIX, ResultFile


def _writer_pid(file: ResultFile) -> int:
    return int(file.temp.name[: -len(PART_SUFFIX)].rsplit(".", 2)[1])


def test_a_temporary_name_is_beside_its_file_and_names_this_process(tmp_path: Path) -> None:
    file = ResultFile(tmp_path / "a.wav", task_id="a")
    try:
        assert file.temp.parent == tmp_path
        assert file.temp.name.startswith(".a.wav.")
        assert _writer_pid(file) == os.getpid()
    finally:
        file.discard()


@pytest.mark.skipif(sys.platform == "win32", reason="no fork")
def test_a_forked_child_names_its_own_process(tmp_path: Path) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report the pid its temporary name carries
        try:
            file = ResultFile(tmp_path / "a.wav", task_id="a")
            os.write(write, str(_writer_pid(file)).encode())
            file.discard()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        named = int(pipe.read())
    os.waitpid(pid, 0)
    assert named == pid
