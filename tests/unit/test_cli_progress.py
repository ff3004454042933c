"""The progress bar tells the truth: every count from the batch's statistics, distinct ids,
in flight 0 at the end, and nothing cut at 80 columns."""

from __future__ import annotations

import io
import re
from pathlib import Path
from types import MappingProxyType

import pytest
from rich.console import Console

from aiotts import BatchStatistics
from aiotts.cli._commands import _ids_and_total, run_batch
from aiotts.cli._progress import BatchProgress
from aiotts.emulator import Emulator
from tests.helpers import client_for, without_escapes

pytestmark = pytest.mark.anyio


def terminal(width: int) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=True, width=width, color_system=None), buffer


def statistics(bytes_written: int = 0, **states: int) -> BatchStatistics:
    return BatchStatistics(
        states=MappingProxyType(states),
        requests=MappingProxyType({}),
        retries=0,
        throttled=0,
        bytes_written=bytes_written,
        resumed=0,
        elapsed=1.0,
    )


def screen_lines(buffer: io.StringIO) -> list[str]:
    text = without_escapes(buffer.getvalue())
    return [line.strip() for line in re.split(r"[\r\n]", text) if line.strip()]


@pytest.mark.parametrize("width", [80, 120])
def test_the_bar_fits_its_width_without_cutting_a_count(width: int) -> None:
    console, buffer = terminal(width)
    busy = statistics(987_654_321, done=49_990, failed=10, polling=45_000, downloading=64)
    with BatchProgress(console, total=100_000, description="fetching") as bar:
        bar.update(busy)
        console.file.write("\n")  # keep the live line apart from the final one
        bar.update(statistics(99_000_000_000, done=99_995, aborted=5), final=True)
    lines = screen_lines(buffer)
    assert not any("…" in line for line in lines), lines
    assert all(len(line) <= width for line in lines)
    mid = next(line for line in lines if "49990 done" in line)
    for part in ("50000/100000", "10 failed", "45000 waiting", "64 saving", "987.7 MB"):
        assert part in mid
    last = lines[-1]
    for part in ("100000/100000", "99995 done", "5 failed", "0 waiting", "99.0 GB"):
        assert part in last
    assert "saving" not in last


def test_the_total_counts_distinct_ids(tmp_path: Path) -> None:
    import argparse

    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("a\nb\na\n\nc\nb\n")
    args = argparse.Namespace(ids=["c", "d"], ids_file=str(ids_file))
    assert _ids_and_total(args)[1] == 4
    args = argparse.Namespace(ids=["x", "y", "x"], ids_file=None)
    assert _ids_and_total(args)[1] == 2


async def test_a_finished_run_shows_exact_final_counts(emulator: Emulator, tmp_path: Path) -> None:
    ids = emulator.create_tasks(12) + emulator.create_tasks(2, fail=True)
    given = [*ids, *ids[:3]]  # duplicates are fetched and counted once
    console, buffer = terminal(80)
    async with client_for(emulator) as client:
        batch = client.fetch_many(given, tmp_path)
        summary = await run_batch(
            batch, total=len(set(given)), description="fetching", json_lines=False, console=console
        )
    assert summary.total == 14
    last = screen_lines(buffer)[-1]
    for part in ("14/14", "12 done", "2 failed", "0 waiting"):
        assert part in last, last


async def test_no_bar_with_json_lines_even_on_a_terminal(
    emulator: Emulator, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    ids = emulator.create_tasks(5)
    console, buffer = terminal(80)
    async with client_for(emulator) as client:
        batch = client.fetch_many(ids, tmp_path)
        await run_batch(batch, total=5, description="fetching", json_lines=True, console=console)
    assert buffer.getvalue() == ""
    assert len(capsysbinary.readouterr().out.splitlines()) == 5
