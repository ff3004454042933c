"""benchmarks/bench_processes.py runs from start to end at a tiny size (no figure is
checked: timings on a shared machine prove nothing in a test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_processes.py"


@pytest.mark.slow
def test_bench_processes_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    assert "fetch --processes 2" in done.stdout
    assert "fetch --processes 1" in done.stdout
    assert "vs one process" in done.stdout
