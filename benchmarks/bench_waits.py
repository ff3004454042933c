"""A thousand ``wait()`` calls against one ``fetch_many``, in one run: what a wait costs.

Every ``wait()`` and every batch of a client feed its one scheduler (one heap, one poll
budget, one set of workers), so a thousand concurrent waits should cost what one batch
over the same ids costs, and a hundred waiters on one id what one waiter costs. The
emulator runs in its own process (``EmulatorProcess``), and so does every measured client
(this script re-run as ``--worker NAME``), which reports the CPU time (user + system,
every thread) of its work alone: opening the client, getting a token, the waits, closing.

Waits against a batch (``--tasks`` tasks of 100 KB of WAV, each ready a time drawn from
0.5-3 s after it is handed to the client; fresh tasks for every client run):

* ``wait()``: one ``TTSClient``, one ``client.wait(id, folder)`` per id, all started at
  once in one task group;
* ``fetch_many``: a fresh client, ``fetch_many(ids, folder)`` over its own fresh tasks.

  Both with aiotts's defaults (poll policy, budget, limits). GETs are the emulator's
  count of result requests for the run's ids (``TaskRecord.fetches``), so nothing the
  client says about itself is taken on trust; downloads are its count of result bodies
  begun. The delay is from a task's ``ready_at`` (the emulator's clock, the same
  monotonic clock as the client's) to the moment its ``wait()`` returned or its outcome
  came out of the batch.

  The machine is shared, and its load moves one run's CPU per task by tens of percent
  (and its GETs too: the poll budget paces by the clock). So the clients run in
  ``--repeat`` rounds, each a waits run next to a batch run (which goes first
  alternates), and the targets are judged on the rounds: the CPU ratio as the median of
  the rounds' ratios; "no more GETs" as the mean of the rounds' differences in GETs per
  task staying within two standard errors of that mean (polls are jittered, so two
  clients that poll alike still differ by chance). The table shows medians over the
  rounds (CPU: also the best run), means of the GETs and delays.

Many waiters on one id (``--waiters`` concurrent ``wait()`` calls on one id, each into a
folder of its own, and in the same client one ``wait()`` on each of ``--singles`` other
ids; all tasks ready ``--ready-at`` seconds after the start): GETs for the shared id
against the single-waiter ids (target: no more than the most any one of them needed),
and its downloads (target: 1). Every waiter's file is checked whole; the table says how
many distinct files (inodes) back them: one download, hard links to it.

Both clients run on uvloop (as aiotts's command line does when it is installed), or on
asyncio's loop with ``--loop asyncio``.

Run: ``python benchmarks/bench_waits.py`` (about a minute; ``--quick``: seconds). Exits 1
if a target is missed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from aiotts import AiottsError, TTSClient
from aiotts.emulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorProcess,
)

from _common import (
    KB,
    Check,
    Result,
    Spec,
    Table,
    WorkerFunction,
    checks_table,
    count_files,
    default_out_dir,
    fmt,
    machine,
    run_loop,
    run_worker,
    scratch_folder,
    worker_main,
)

SCRIPT = Path(__file__).resolve()
AUDIO_BYTES = 100 * KB

# Targets.
MAX_CPU_RATIO = 1.2
"""Waits' client CPU per task, at most this times the batch's."""
NOISE_SE = 2.0
"""GETs: the waits' mean may exceed the batch's by this many standard errors (the noise)."""


# -- workers (each in its own process) ---------------------------------------------------------


def waits_worker(spec: Spec) -> Result:
    """One client; one ``wait()`` per (id, folder) pair of ``spec["waits"]``, all at once.
    Returns, per pair, when its wait returned (None: it raised; the error is kept)."""
    pairs: list[tuple[str, str]] = [tuple(pair) for pair in spec["waits"]]

    async def main() -> Result:
        landed: list[float | None] = [None] * len(pairs)
        errors: list[str] = []
        async with TTSClient(
            DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, base_url=spec["url"]
        ) as client:

            async def wait(index: int, task_id: str, folder: str) -> None:
                try:
                    await client.wait(task_id, folder)
                except AiottsError as exc:
                    errors.append(f"{task_id}: {exc}")
                else:
                    landed[index] = time.monotonic()

            async with anyio.create_task_group() as group:
                for index, (task_id, folder) in enumerate(pairs):
                    group.start_soon(wait, index, task_id, folder)
        return {"landed": landed, "errors": errors}

    return run_loop(main(), spec["loop"])


def batch_worker(spec: Spec) -> Result:
    """One client; ``fetch_many`` over ``spec["ids"]`` into one folder."""
    ids: list[str] = spec["ids"]

    async def main() -> Result:
        landed: dict[str, float] = {}
        errors: list[str] = []
        async with TTSClient(
            DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, base_url=spec["url"]
        ) as client:
            async for outcome in client.fetch_many(ids, spec["out"]):
                if outcome.ok:
                    landed[outcome.task_id] = time.monotonic()
                else:
                    errors.append(f"{outcome.task_id}: {outcome.state.value}: {outcome.error}")
        return {"landed": [landed.get(task_id) for task_id in ids], "errors": errors}

    return run_loop(main(), spec["loop"])


WORKERS: dict[str, WorkerFunction] = {"waits": waits_worker, "batch": batch_worker}


# -- the parent --------------------------------------------------------------------------------


@dataclass
class Run:
    """One client run: its worker's result and the emulator's record of its tasks."""

    label: str
    result: Result
    ids: list[str]
    fetches: list[int] = field(default_factory=list)  # per id, as the emulator counted
    downloads: int = 0
    delays: list[float] = field(default_factory=list)
    last_lag: float = math.nan

    def __getitem__(self, key: str) -> Any:
        return self.result[key]

    @property
    def cpu_per_task(self) -> float:
        return float(self["cpu"]) / len(self.ids)


def measured(
    emulator: EmulatorProcess,
    label: str,
    worker: str,
    tasks: int,
    ready_after: float | tuple[float, float],
    spec_for: Callable[[list[str]], Spec],
) -> Run:
    """Start ``worker``; once it is ready, create its fresh tasks (their clocks start
    now) and hand it ``spec_for(ids)``; then read the emulator's record of those tasks."""
    ids: list[str] = []

    def prepare() -> Spec:
        ids.extend(
            emulator.create_tasks(
                tasks, ready_after=ready_after, fail=False, audio_bytes=AUDIO_BYTES
            )
        )
        spec: Spec = spec_for(ids)
        return spec

    result = run_worker(SCRIPT, worker, prepare)
    if result["errors"]:
        raise RuntimeError(f"{label}: {len(result['errors'])} failed: {result['errors'][:3]}")
    run = Run(label, result, ids)
    wanted = set(ids)
    records = {r.id: r for r, _ in emulator.records() if r.id in wanted}
    run.fetches = [records[task_id].fetches for task_id in ids]
    run.downloads = sum(records[task_id].audio_started for task_id in ids)
    return run


def with_delays(run: Run, emulator: EmulatorProcess, landed_ids: Sequence[str]) -> Run:
    """Delays from each task's ``ready_at`` to when the client had it."""
    wanted = set(landed_ids)
    ready_at = {r.id: r.ready_at for r, _ in emulator.records() if r.id in wanted}
    landed = run["landed"]
    run.delays = [t - ready_at[task_id] for task_id, t in zip(landed_ids, landed, strict=True)]
    run.last_lag = max(landed) - max(ready_at.values())
    return run


def extra_gets(rounds: Sequence[tuple[Run, Run]]) -> tuple[float, float]:
    """How many more GETs a task the waits sent than the batch (mean over the rounds), and
    the noise allowed: ``NOISE_SE`` standard errors of that mean. Polls are jittered and
    paced by a poll budget that the machine's load bends, so the counts move between
    rounds; with fewer than three rounds, the per-task counts of the one round give it."""
    differences = [statistics.fmean(w.fetches) - statistics.fmean(b.fetches) for w, b in rounds]
    more = statistics.fmean(differences)
    if len(differences) >= 3:
        error = statistics.stdev(differences) / math.sqrt(len(differences))
    else:
        waits, batch = rounds[0]
        error = math.hypot(
            *(statistics.stdev(run.fetches) / math.sqrt(len(run.fetches)) for run in (waits, batch))
        )
    return more, NOISE_SE * error


def waits_scenario(
    emulator: EmulatorProcess, args: argparse.Namespace, checks: list[Check]
) -> Table:
    clients = [
        (f"{args.tasks:,} x wait(), one client", "waits"),
        ("fetch_many over the same number", "batch"),
    ]
    runs: dict[str, list[Run]] = {worker: [] for _, worker in clients}
    for repeat in range(args.repeat):
        # Each round starts with the other client, so neither always runs first.
        for label, worker in clients[repeat % 2 :] + clients[: repeat % 2]:
            with scratch_folder(f"bench-waits-{worker}-", args.out_dir) as out:

                def spec_for(ids: list[str], worker: str = worker, out: Path = out) -> Spec:
                    common = {"url": emulator.url, "loop": args.loop}
                    if worker == "waits":
                        return {**common, "waits": [(task_id, str(out)) for task_id in ids]}
                    return {**common, "ids": ids, "out": str(out)}

                run = measured(emulator, label, worker, args.tasks, args.ready, spec_for)
                wav_length = emulator.record(run.ids[0]).wav_length
                files, whole = count_files(out, wav_length)
                if files != args.tasks or whole != args.tasks:
                    raise RuntimeError(f"{label}: {whole} whole files of {files}, not {args.tasks}")
            runs[worker].append(with_delays(run, emulator, run.ids))

    rows = []
    for label, worker in clients:
        every = runs[worker]
        rows.append(
            (
                label,
                fmt(statistics.median(r.cpu_per_task for r in every) * 1000, 3),
                fmt(min(r.cpu_per_task for r in every) * 1000, 3),
                fmt(statistics.fmean(n for r in every for n in r.fetches), 2),
                fmt(sum(r.downloads for r in every) / sum(len(r.ids) for r in every), 2),
                fmt(statistics.median(r["wall"] for r in every), 2),
                fmt(statistics.fmean(d for r in every for d in r.delays), 2),
                fmt(statistics.median(r.last_lag for r in every), 2),
                fmt(max(r["peak_rss_kib"] for r in every) / 1024, 0),
            )
        )
    # Judged on rounds: each pairs a waits run with the batch run next to it in time, so
    # what the shared machine was doing then weighs on both alike.
    rounds = list(zip(runs["waits"], runs["batch"], strict=True))
    ratios = [w.cpu_per_task / b.cpu_per_task for w, b in rounds]
    cpu_ratio = statistics.median(ratios)
    spread = (
        f", median of {len(ratios)} rounds ({min(ratios):.2f}-{max(ratios):.2f})"
        if len(ratios) > 1
        else ""
    )
    checks.append(
        Check(
            f"{args.tasks:,} waits: client CPU per task / fetch_many's",
            f"{cpu_ratio:.2f}x{spread} (target <= {MAX_CPU_RATIO}x)",
            cpu_ratio <= MAX_CPU_RATIO,
        )
    )
    more, noise = extra_gets(rounds)
    checks.append(
        Check(
            f"{args.tasks:,} waits: GETs per task, no more than fetch_many's",
            f"{more:+.2f} a task (target <= {noise:.2f}: {NOISE_SE:g} SE of the noise)",
            more <= noise,
        )
    )
    return Table(
        [
            "client",
            "CPU ms/task",
            "best",
            "GETs/task",
            "downloads/task",
            "wall s",
            "mean delay s",
            "last after last ready s",
            "peak RSS MB",
        ],
        rows,
    )


def shared_scenario(
    emulator: EmulatorProcess, args: argparse.Namespace, checks: list[Check]
) -> Table:
    with scratch_folder("bench-waits-shared-", args.out_dir) as out:
        folders = [out / f"waiter-{n}" for n in range(args.waiters)]

        def spec_for(ids: list[str]) -> Spec:
            shared, singles = ids[0], ids[1:]
            waits = [(shared, f"{folder}{os.sep}") for folder in folders]
            waits += [(task_id, str(out)) for task_id in singles]
            return {"url": emulator.url, "loop": args.loop, "waits": waits}

        run = measured(emulator, "shared", "waits", 1 + args.singles, args.ready_at, spec_for)
        shared = run.ids[0]
        wav_length = emulator.record(shared).wav_length
        inodes = set()
        for folder in folders:
            path = folder / f"{shared}.wav"
            if path.stat().st_size != wav_length:
                raise RuntimeError(f"{path}: {path.stat().st_size} bytes, not {wav_length}")
            inodes.add(path.stat().st_ino)
        files, whole = count_files(out, wav_length)
        if files != args.singles or whole != args.singles:
            raise RuntimeError(f"singles: {whole} whole files of {args.singles}")
    records = {r.id: r for r, _ in emulator.records() if r.id in set(run.ids)}
    shared_gets = records[shared].fetches
    shared_downloads = records[shared].audio_started
    singles = [records[task_id] for task_id in run.ids[1:]]
    single_gets = [r.fetches for r in singles]
    rows = [
        (
            f"{args.waiters} waiters on one id",
            f"{shared_gets}",
            f"{shared_downloads}",
            f"{args.waiters} ({len(inodes)} inode{'s' if len(inodes) > 1 else ''})",
        ),
        (
            f"1 waiter on each of {args.singles} other ids",
            f"{statistics.fmean(single_gets):.2f} mean, {min(single_gets)}-{max(single_gets)}",
            f"{statistics.fmean(r.audio_started for r in singles):.2f} mean",
            f"{args.singles}",
        ),
    ]
    checks.append(
        Check(
            f"{args.waiters} waiters on one id: its GETs, at most one waiter's",
            f"{shared_gets} (target <= {max(single_gets)}, the most of {args.singles} "
            f"single-waiter ids)",
            shared_gets <= max(single_gets),
        )
    )
    checks.append(
        Check(
            f"{args.waiters} waiters on one id: downloads",
            f"{shared_downloads} (target 1)",
            shared_downloads == 1,
        )
    )
    return Table(["waiters", "GETs per id", "downloads per id", "files"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds, not minutes")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tasks", type=int, help="tasks per client run (default 1,000)")
    parser.add_argument("--repeat", type=int, help="rounds of both clients (5)")
    parser.add_argument("--waiters", type=int, help="waiters on the shared id (100)")
    parser.add_argument("--singles", type=int, help="ids with one waiter each (100)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--only", choices=("waits", "shared"), help="run one scenario (default: both)"
    )
    parser.add_argument(
        "--out-dir",
        default=default_out_dir(),
        help="where the files go (default: %(default)s)",
    )
    args = parser.parse_args()
    if args.worker:
        return worker_main(WORKERS, args.worker)
    # --smoke: tiny sizes for the test that checks this script runs (figures mean nothing).
    size = 2 if args.smoke else 1 if args.quick else 0
    args.tasks = args.tasks or (1_000, 200, 20)[size]
    args.repeat = args.repeat or (5, 1, 1)[size]
    args.waiters = args.waiters or (100, 100, 10)[size]
    args.singles = args.singles or (100, 20, 5)[size]
    args.ready = ((0.5, 3.0), (0.5, 3.0), (0.1, 0.5))[size]
    args.ready_at = (2.0, 2.0, 0.3)[size]

    started = time.monotonic()
    checks: list[Check] = []
    with EmulatorProcess(EmulatorConfig(seed=1)) as emulator:
        if args.only != "shared":
            print(
                f"Waits against a batch: {args.tasks:,} tasks of {AUDIO_BYTES // KB} KB, each "
                f"ready {args.ready[0]:g}-{args.ready[1]:g} s after the start, fresh tasks for "
                f"each run; default settings, event loop: {args.loop}; {args.repeat} rounds",
                flush=True,
            )
            print(waits_scenario(emulator, args, checks).text(), end="\n\n", flush=True)
        if args.only != "waits":
            print(
                f"Many waiters on one id: {args.waiters} waiters on one id and one on each of "
                f"{args.singles} others, one client, every task ready {args.ready_at:g} s "
                f"after the start",
                flush=True,
            )
            print(shared_scenario(emulator, args, checks).text(), end="\n\n", flush=True)
    print(checks_table(checks).text())
    print(f"\n{machine()}; files in {args.out_dir}; {time.monotonic() - started:.0f} s in all")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
