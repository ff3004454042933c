"""The command line killed with SIGKILL at random moments, then resumed.

After each kill: no partial file at a final name and a readable manifest. After the
resume: every task done, and nothing that was whole on disk before was asked for again.
"""

from __future__ import annotations

import random
import signal
import sys
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts import OutcomeState, read_manifest
from aiotts._manifest import file_is_complete
from aiotts.emulator import Emulator, EmulatorConfig
from tests.helpers import cli_env

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_sigkill_at_a_random_moment_then_resume(seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    config = EmulatorConfig(
        pending_seconds=(0.2, 3.0), processing_seconds=(0.1, 1.0), audio_bytes=400_000, seed=seed
    )
    async with Emulator(config) as emu:
        ids = emu.create_tasks(150)
        emu.set_faults(trickle_share=0.3, trickle_chunk_bytes=32_768, trickle_delay=0.001)
        ids_file = tmp_path / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        out = tmp_path / "out"
        command = [
            sys.executable,
            "-m",
            "aiotts",
            "fetch",
            "--ids-file",
            str(ids_file),
            "--out",
            str(out),
            "--json",
        ]
        for kill in range(2):  # killed twice, at random moments, before the final resume
            args = command + (["--resume"] if kill else [])
            async with await anyio.open_process(args, env=cli_env(emu)) as process:
                await anyio.sleep(rng.uniform(0.5, 2.5))
                process.send_signal(signal.SIGKILL)
                await process.wait()
            whole = {p for p in out.glob("*.wav") if file_is_complete(p)}
            assert whole == set(out.glob("*.wav"))  # no partial file at a final name
            manifest = read_manifest(out / "aiotts.db")  # readable, torn write or not
            assert all(e.state is OutcomeState.DONE for e in manifest.values())
        asked_before = {p.stem: emu.record(p.stem).fetches for p in out.glob("*.wav")}
        assert len(asked_before) < 150, "the kills came too late to test anything"

        final = await anyio.run_process([*command, "--resume"], env=cli_env(emu), check=False)
        assert final.returncode == 0, final.stderr.decode()
        lines = [orjson.loads(line) for line in final.stdout.splitlines()]
        assert sorted(line["id"] for line in lines) == sorted(ids)
        assert {line["state"] for line in lines} == {"done"}
        for task_id, fetches in asked_before.items():  # whole before: never fetched again
            assert emu.record(task_id).fetches == fetches
        for task_id in ids:
            assert (out / f"{task_id}.wav").read_bytes() == emu.audio(task_id)
        assert [p.name for p in out.iterdir() if p.name.endswith(".part")] == []
