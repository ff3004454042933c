"""The fsync thread: syncs, closes exactly once, and keeps its promise when the waiter is
cancelled."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import anyio
import pytest

from aiotts._syncer import sync_and_close

pytestmark = pytest.mark.anyio


def is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


async def test_many_files_are_synced_and_closed(tmp_path: Path) -> None:
    fds = []
    for i in range(200):
        fd = os.open(tmp_path / f"{i}.bin", os.O_WRONLY | os.O_CREAT)
        os.write(fd, b"x" * 1000)
        fds.append(fd)
    async with anyio.create_task_group() as tg:
        for fd in fds:
            tg.start_soon(sync_and_close, fd)
    assert not any(is_open(fd) for fd in fds)


async def test_an_fsync_error_is_raised_and_the_fd_still_closed() -> None:
    read_end, write_end = os.pipe()  # fsync of a pipe fails with EINVAL
    os.close(read_end)
    with pytest.raises(OSError, match="Invalid argument") as caught:
        await sync_and_close(write_end)
    assert caught.value.errno == errno.EINVAL
    assert not is_open(write_end)


async def test_a_cancelled_waiter_still_gets_its_fd_closed(tmp_path: Path) -> None:
    fds = [os.open(tmp_path / f"{i}.bin", os.O_WRONLY | os.O_CREAT) for i in range(50)]
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:
            for fd in fds:
                tg.start_soon(sync_and_close, fd)
            scope.cancel()
    with anyio.fail_after(10):
        while any(is_open(fd) for fd in fds):
            await anyio.sleep(0.01)
