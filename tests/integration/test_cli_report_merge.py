"""``aiotts report RECORD...``: stores and JSONL manifests of shards and runs merged into one
summary (ids and bytes per state, when), the ids left to retry, and JSON for pipelines."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import orjson
import pytest

from aiotts import TTSClient
from aiotts.cli import ExitCode
from aiotts.emulator import Emulator
from tests.helpers import FAST_POLL, FAST_RETRY, cli_env

pytestmark = pytest.mark.anyio

AIOTTS = [sys.executable, "-m", "aiotts"]


async def run(args: Sequence[str]) -> subprocess.CompletedProcess[bytes]:
    return await anyio.run_process([*AIOTTS, *args], env=cli_env(None), check=False)


async def fetch_into(emu: Emulator, ids: list[str], out: Path, record: Path) -> None:
    async with TTSClient(
        emu.client_id, emu.client_secret, base_url=emu.url, retry=FAST_RETRY, poll=FAST_POLL
    ) as client:
        await client.fetch_all(ids, out, manifest=record, task_timeout=5)


async def test_stores_and_manifests_merge_as_resume_reads_them(
    emulator: Emulator, tmp_path: Path
) -> None:
    good = emulator.create_tasks(6, audio_bytes=10_000)
    bad = emulator.create_tasks(2, fail=True)
    out = tmp_path / "out"
    first = out / "aiotts.shard-0-of-2.db"
    second = out / "run.jsonl"
    # The first record: four done, two failed, one missing.
    await fetch_into(emulator, [*good[:4], *bad, "TTSunknown"], out, first)
    # The second, later: the last two done, and one id of the first's now cancelled.
    await fetch_into(emulator, good[4:], out, second)
    line = {
        "v": 2,
        "id": good[0],
        "state": "cancelled",
        "files": [],
        "bytes": 0,
        "error": "the batch was cancelled",
        "messages": [],
        "warnings": [],
        "time": 1.0,
    }
    with second.open("ab") as f:
        f.write(orjson.dumps(line) + b"\n")

    result = await run(["report", str(first), str(second), "--summary"])
    assert result.returncode == 0, result.stderr.decode()
    summary = orjson.loads(result.stdout)
    assert summary["states"] == {"done": 5, "failed": 2, "missing": 1, "cancelled": 1}
    assert summary["total"] == 9
    wav = len(emulator.audio(good[1]))
    assert summary["bytes"]["done"] == summary["total_bytes"] == 5 * wav
    assert summary["retry"] == 1 and summary["retry_failed"] == 3
    assert summary["first"] == 1.0 and summary["last"] >= summary["first"]
    assert summary["records"] == [str(first), str(second)]

    # The later record wins per id: in the other order, good[0] is done again.
    swapped = orjson.loads((await run(["report", str(second), str(first), "--summary"])).stdout)
    assert swapped["states"]["done"] == 6 and "cancelled" not in swapped["states"]

    retry = await run(["report", str(first), str(second), "--retry-ids"])
    assert retry.stdout.decode().split() == [good[0]]
    retry = await run(["report", str(first), str(second), "--retry-ids", "--retry-failed"])
    assert sorted(retry.stdout.decode().split()) == sorted([good[0], *bad, "TTSunknown"])

    lines = await run(["report", str(first), str(second), "--json"])
    states = {orjson.loads(x)["id"]: orjson.loads(x)["state"] for x in lines.stdout.splitlines()}
    assert len(states) == 9 and states[good[0]] == "cancelled"
    assert orjson.loads(lines.stderr)["retry"] == 1

    table = await run(["report", str(first), str(second)])
    text = table.stdout.decode()
    for state in ("done", "failed", "missing", "cancelled", "total"):
        assert state in text
    (done_row,) = [row for row in text.splitlines() if " done " in row]
    assert "5" in done_row and f"{5 * wav / 1e6:,.1f}" in done_row
    notes = table.stderr.decode()
    assert "1 ids to retry (aborted, expired or cancelled): fetch --resume" in notes
    assert "3 ids the server failed or did not know" in notes
    assert f"{good[0]}: cancelled: the batch was cancelled" in notes
    assert "--retry-ids" in notes


async def test_report_refuses_what_is_not_a_record(tmp_path: Path) -> None:
    result = await run(["report", str(tmp_path / "nothing.db")])
    assert result.returncode == ExitCode.OUTPUT
    assert "no record at" in result.stderr.decode()
    result = await run(["report", str(tmp_path / "x.db"), "--retry-failed"])
    assert result.returncode == ExitCode.USAGE
    result = await run(["report", "a.db", "--json", "--summary"])
    assert result.returncode == ExitCode.USAGE
