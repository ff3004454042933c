"""The benchmark scripts run from start to end at tiny sizes and print their tables.

No figure is checked: timings on a shared machine prove nothing in a test. Each script
exits 0 when its targets pass and 1 when one fails; anything else is a crash.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_bench_poll_runs() -> None:
    out = run("bench_poll.py")
    assert "bare aiohttp" in out
    assert "aiotts, durable=True" in out
    assert out.count("PASS") + out.count("FAIL") == 3


@pytest.mark.slow
def test_compare_runs_and_writes_markdown(tmp_path: Path) -> None:
    markdown = tmp_path / "results.md"
    out = run("compare.py", "--only", "a", "--markdown", str(markdown))
    for client in ("aiotts", "vendor SDK", "script"):
        assert client in out
    # The reference that a target of (a) is judged against runs in every run of (a).
    assert "bare aiohttp (reference" in out
    assert "(a) aiotts CPU per task / bare aiohttp's" in out
    text = markdown.read_text()
    assert "## (a) bulk retrieval" in text
    assert "| target | measured | verdict |" in text


@pytest.mark.slow
def test_bench_waits_runs() -> None:
    out = run("bench_waits.py")
    assert "x wait(), one client" in out
    assert "fetch_many over the same number" in out
    assert "waiters on one id" in out
    assert out.count("PASS") + out.count("FAIL") == 4


@pytest.mark.slow
def test_bench_scale_runs() -> None:
    out = run("bench_scale.py")
    for run_name in ("fetch N/10", "fetch N", "resume N", "ledger write N", "ledger look-up N"):
        rows = re.findall(rf"^{re.escape(run_name)} +(store|JSONL) ", out, re.MULTILINE)
        assert rows == ["store", "JSONL"], run_name
    assert out.count("PASS") + out.count("FAIL") == 8


@pytest.mark.slow
def test_compare_submit_and_fetch_runs() -> None:
    out = run("compare.py", "--only", "e")
    assert "(e) submit and fetch" in out
    assert "GETs/task" in out
    for target in ("GETs per task / script's", "mean delay", "wall time below both peers'"):
        assert f"(e) aiotts {target}" in out
    assert out.count("PASS") + out.count("FAIL") == 3


@pytest.mark.slow
def test_bench_instructions_workers_run() -> None:
    # The script counts under valgrind, which a fresh machine may lack: --smoke runs each
    # worker as the script runs it, without valgrind, and says what it wrote.
    out = run("bench_instructions.py")
    written = dict(re.findall(r"^  (\S+): wrote (.+)$", out, re.MULTILINE))
    expected = {"bare": [".body"] * 3, "bare-settings": [".body"] * 3}
    expected |= {"floor": [".wav"] * 3, "aiotts": [".wav"] * 3}
    for name in ("bare", "floor", "bare-settings", "aiotts", "no-http", "scanner", "base64"):
        assert written[name].split() == expected.get(name, ["nothing"]), name
