"""``wait`` and ``download`` prove their folder writable once per client, not per call."""

from __future__ import annotations

from pathlib import Path

import pytest

import aiotts._client
from aiotts import OutputError, Timeouts
from aiotts.emulator import Emulator
from tests.helpers import client_for

pytestmark = pytest.mark.anyio


async def test_a_folder_is_proved_once_per_client(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proved: list[Path] = []
    prove = aiotts._client._prepare_folder

    def counted(folder: Path) -> None:
        proved.append(folder)
        prove(folder)

    monkeypatch.setattr(aiotts._client, "_prepare_folder", counted)
    first, second, third, fourth = emulator.create_tasks(4, ready_after=0)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with client_for(emulator) as client:
        await client.wait(first, tmp_path / "a")
        await client.wait(second, tmp_path / "a")
        await client.with_options(timeouts=Timeouts(read=30.0)).wait(third, tmp_path / "a")
        await client.download(fourth, tmp_path / "b")
    assert proved == [tmp_path / "a", tmp_path / "b"]
    assert len(list((tmp_path / "a").glob("*.wav"))) == 3


async def test_a_folder_that_cannot_be_made_fails_before_any_request(
    emulator: Emulator, tmp_path: Path
) -> None:
    (task_id,) = emulator.create_tasks(1, ready_after=0)
    (tmp_path / "a-file").write_text("in the way")
    async with client_for(emulator) as client:
        with pytest.raises(OutputError):
            await client.wait(task_id, tmp_path / "a-file" / "audio")
    assert emulator.stats().count("fetch") == 0
