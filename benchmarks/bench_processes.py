"""``aiotts fetch --processes P`` against one process: tasks a second on compare.py's
scenario (a) (N completed tasks of 100 KB, the emulator in a process of its own), with
P = 1 and P = 2 in the same run, each on a fresh emulator.

Rows: ``fetch`` (one process, no shards), ``--processes 1`` (the same through one child:
what the parent costs) and ``--processes P`` for each P asked. Client CPU counts every
aiotts process of the run (the parent and its children); the emulator's is measured
from ``/proc``. The last column says how busy the machine's cores were: on 2 cores, two
client processes and the emulator compete, so the speed-up is bounded by what the
emulator and the rest of the machine leave.

    .venv/bin/python benchmarks/bench_processes.py             # 10,000 tasks (~2 min)
    .venv/bin/python benchmarks/bench_processes.py --n 2000 --processes 1,2,4
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    KB,
    MB,
    Table,
    count_files,
    default_out_dir,
    fmt,
    machine,
    process_cpu,
    scratch_folder,
)


@dataclass(frozen=True)
class Row:
    label: str
    processes: int
    tasks: int
    whole: int
    wall: float
    client_cpu: float
    emulator_cpu: float
    load: float


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(label: str, processes: int | None, n: int, out_base: str) -> Row:
    from aiotts.emulator import (
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        EmulatorConfig,
        EmulatorProcess,
    )

    config = EmulatorConfig(seed=1, audio_bytes=100 * KB)
    with (
        EmulatorProcess(config) as emulator,
        scratch_folder("bench-processes-", out_base) as folder,
    ):
        ids = emulator.create_tasks(n, ready_after=0)
        ids_file = folder / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        out = folder / "out"
        command = [sys.executable, "-m", "aiotts", "fetch", "--ids-file", str(ids_file)]
        command += ["--out", str(out), "-q"]
        if processes is not None:
            command += ["--processes", str(processes)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ASPOSE_", "AIOTTS_"))}
        env |= {
            "ASPOSE_CLIENT_ID": DEFAULT_CLIENT_ID,
            "ASPOSE_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "AIOTTS_BASE_URL": emulator.url,
        }
        cpu_before = _children_cpu()
        emulator_before = process_cpu(emulator.pid)
        started = time.monotonic()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        client_cpu = _children_cpu() - cpu_before
        emulator_cpu = process_cpu(emulator.pid) - emulator_before
        if done.returncode != 0:
            raise SystemExit(f"{label} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        wav = len(emulator.audio(ids[0]))
        _, whole = count_files(out, wav)
        shutil.rmtree(out, ignore_errors=True)
    cores = os.cpu_count() or 1
    return Row(
        label,
        processes or 1,
        n,
        whole,
        wall,
        client_cpu,
        emulator_cpu,
        (client_cpu + emulator_cpu) / wall / cores,
    )


def table(rows: list[Row]) -> Table:
    base = rows[0].tasks / rows[0].wall
    return Table(
        [
            "run",
            "processes",
            "tasks",
            "wall s",
            "tasks/s",
            "vs one process",
            "client CPU s",
            "client CPU ms/task",
            "emulator CPU s",
            "cores busy",
        ],
        [
            (
                r.label,
                str(r.processes),
                f"{r.whole:,}",
                fmt(r.wall, 1),
                fmt(r.tasks / r.wall, 0),
                f"{r.tasks / r.wall / base:.2f}x",
                fmt(r.client_cpu, 1),
                fmt(r.client_cpu / r.tasks * 1000, 2),
                fmt(r.emulator_cpu, 1),
                f"{r.load:.0%}",
            )
            for r in rows
        ],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="completed tasks (default 10,000)")
    parser.add_argument(
        "--processes", default="2", help="values of P besides 1, comma-separated (default 2)"
    )
    parser.add_argument("--out-dir", default=default_out_dir(), help="where files are written")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run (its figures mean nothing)"
    )
    args = parser.parse_args()
    n = 200 if args.smoke else args.n
    counts = [int(p) for p in args.processes.split(",") if p.strip()]
    print(f"aiotts fetch --processes P: {n:,} completed tasks of 100 KB (scenario (a))")
    print(machine())
    print(f"load average before: {Path('/proc/loadavg').read_text().split()[0]}", flush=True)
    rows = [measure("fetch", None, n, args.out_dir)]
    rows.append(measure("fetch --processes 1", 1, n, args.out_dir))
    for count in counts:
        if count != 1:
            rows.append(measure(f"fetch --processes {count}", count, n, args.out_dir))
    result = table(rows)
    print(result.text())
    if args.markdown:
        Path(args.markdown).write_text(result.markdown() + "\n")
    bad = [r.label for r in rows if r.whole != r.tasks]
    if bad:
        print(f"FAIL: not every file was whole in: {', '.join(bad)}")
        return 1
    print(f"MB per run: {n * 100 * KB / MB:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
