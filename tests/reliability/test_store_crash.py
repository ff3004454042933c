"""The store under a crash and under readers: ``aiotts fetch`` killed with SIGKILL while it
writes outcomes as fast as it can, then resumed; ``aiotts report`` while a batch runs."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts import OutcomeState, read_manifest
from aiotts._manifest import file_is_complete
from aiotts.cli import ExitCode
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import cli_env

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]
HANG_GUARD = 60  # seconds: only so that a regression fails instead of hanging the suite
COUNT = 1000


@pytest.fixture
async def emu() -> Emulator:  # type: ignore[misc]
    # Every task ready, small audio: outcomes are recorded as fast as the client can go.
    config = EmulatorConfig(pending_seconds=0, processing_seconds=0, audio_bytes=2_000)
    async with Emulator(config) as emulator:
        yield emulator


def fetch_command(ids_file: Path, out: Path) -> list[str]:
    return [*AIOTTS, "fetch", "--ids-file", str(ids_file), "--out", str(out), "--json"]


async def test_sigkill_while_writing_then_resume_exactly(emu: Emulator, tmp_path: Path) -> None:
    ids = emu.create_tasks(COUNT)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    out = tmp_path / "out"
    command = [*fetch_command(ids_file, out), "--concurrency", "64"]
    reported = b""
    with anyio.fail_after(HANG_GUARD):
        async with await anyio.open_process(command, env=cli_env(emu)) as process:
            assert process.stdout is not None
            while reported.count(b"\n") < COUNT // 3:  # killed in the thick of it
                reported += await process.stdout.receive()
            process.send_signal(signal.SIGKILL)
            await process.wait()
    seen = [orjson.loads(line) for line in reported.splitlines()[:-1]]  # whole lines
    record = read_manifest(out / "aiotts.db")  # opens, after the kill
    for line in seen:  # nothing that was reported is lost
        assert record[line["id"]].state.value == line["state"]
    assert len(record) < COUNT, "the kill came too late to test anything"
    whole = {p.stem for p in out.glob("*.wav") if file_is_complete(p)}
    assert whole == {p.stem for p in out.glob("*.wav")}  # no partial file at a final name
    asked_before = {task_id: emu.record(task_id).fetches for task_id in whole}

    with anyio.fail_after(HANG_GUARD):
        final = await anyio.run_process([*command, "--resume"], env=cli_env(emu), check=False)
    assert final.returncode == ExitCode.OK, final.stderr.decode()
    lines = [orjson.loads(line) for line in final.stdout.splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ids)
    assert {line["state"] for line in lines} == {"done"}
    for task_id, fetches in asked_before.items():  # whole before: never asked again
        assert emu.record(task_id).fetches == fetches, task_id
    assert {line["id"] for line in lines if line["resumed"]} >= set(record) & whole
    after = read_manifest(out / "aiotts.db")
    assert sorted(after) == sorted(ids)
    assert {e.state for e in after.values()} == {OutcomeState.DONE}


async def test_report_reads_the_store_while_a_batch_writes_it(
    emu: Emulator, tmp_path: Path
) -> None:
    ids = emu.create_tasks(COUNT)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(ids) + "\n")
    out = tmp_path / "out"
    store = out / "aiotts.db"
    counts: list[int] = []
    with anyio.fail_after(HANG_GUARD):
        async with await anyio.open_process(
            [*fetch_command(ids_file, out), "--concurrency", "16"], env=cli_env(emu)
        ) as process:
            assert process.stdout is not None
            first = await process.stdout.receive()  # the store exists and holds a line
            assert first
            while process.returncode is None and len(counts) < 20:
                report = await anyio.run_process(
                    [*AIOTTS, "report", str(store), "--json"], check=False
                )
                assert report.returncode == 0, report.stderr.decode()
                lines = [orjson.loads(line) for line in report.stdout.splitlines()]
                assert len({line["id"] for line in lines}) == len(lines)  # one per id
                assert set(orjson.loads(report.stderr)["states"]) <= {"done"}
                counts.append(len(lines))
            async for _ in process.stdout:
                pass
            assert await process.wait() == ExitCode.OK
    assert counts == sorted(counts), "a reader saw the record go backwards"
    assert any(0 < n < COUNT for n in counts), "no report ran during the batch"
    final = await anyio.run_process([*AIOTTS, "report", str(store)], check=False)
    assert final.returncode == 0
    assert f"{COUNT:,}" in final.stdout.decode() and "done" in final.stdout.decode()
