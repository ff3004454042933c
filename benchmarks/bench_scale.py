"""Many ids on one machine: memory and resume time of the record, store against JSONL.

The emulator runs in its own process (``EmulatorProcess``), and so does every measured
client (this script re-run as ``--worker NAME``), which reports the CPU time and wall time
of its work alone and the peak RSS of its process, before and after the work.

``--n`` ready tasks with small audio (2 KB of WAV) are created, their ids written to a
file. For each record, a store (``aiotts.db``) and a JSONL manifest (``manifest.jsonl``,
what every earlier version kept, read whole on resume):

* ``fetch N/10`` and ``fetch N``: ``fetch_many`` over a generator that reads the ids file
  line by line, into a fresh folder; throughput in ids/s and the growth of peak RSS over
  the work (the process's RSS once everything is imported is the base);
* ``resume N``: the same command again with ``resume=True``: every id is skipped (its
  file is whole); the time from the call to the first outcome, ids skipped a second, and
  the growth of peak RSS;
* ``ledger N``: N keys recorded (``record_submitted``, committed every 1,000), then
  every key looked up again (``task_id_for``) from a fresh process, as a resumed bulk
  submit would; for JSONL, the same as lines of ``{"key", "id"}`` read into a dict.

``--jsonl-copy`` (the default above 100,000 ids): the JSONL runs do not fetch the N tasks
a second time; the manifest is written from the store's lines (the very lines a JSONL
run writes, files relative to the folder) beside the files the store's run fetched, and
``resume N`` for JSONL reads it whole and checks every file as a JSONL resume does. Its
``fetch`` rows are then left out. ``--no-tenth`` leaves out ``fetch N/10`` (compare with
the ``fetch N`` of a run at a tenth of the size instead), ``--no-jsonl`` every JSONL row.
``--prefill``: no fetch at all; N random ids shaped like the service's are made up, a
worker writes their N files (whole WAVs, named as a batch names them) and records each
outcome through the store's own ``add`` (so with the same file proof a batch records; in
about the input's order, shuffled within each run of 256 as tasks in flight finish), then
the resume and ledger rows are measured as above: the resume figures of a size whose fetch
would take hours here. A store written so holds no clean end, so the first resume reads the
folder for leftover temporary files as one after a crash would (``resume N, folder read``);
``resume N`` is the one after it, as after a clean end. Each row is printed as soon as it
is measured, so a long run that is stopped still shows what it measured.

Targets (store only): RSS growth <= 64 MB for each run; throughput at N within 10% of N/10;
first outcome of a resume within 1 s; >= 100,000 skipped ids a second, and <= 10 us of
CPU per skipped id (the figure a loaded machine does not distort); ledger lookups at that
rate, within that memory.

Run: ``python benchmarks/bench_scale.py --n 100000`` (default 1,000,000: long on a small
machine). ``--smoke``: tiny sizes, seconds, figures meaningless. Exits 1 if a target fails.

The scratch folder (``--out-dir``, default the system's temporary folder) is removed at
the end: in place up to 100,000 ids, above that by a process of its own left running in
the background (removing a million files takes minutes; the script does not wait, and
says which folder and which process); ``--keep-files`` leaves it and says where.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (
    MB,
    Check,
    Result,
    Spec,
    Table,
    checks_table,
    fmt,
    machine,
    run_worker,
    worker_main,
)

SCRIPT = Path(__file__).resolve()
AUDIO_BYTES = 2_000
CREATE_CHUNK = 20_000
RSS_LIMIT_MB = 64.0
LEDGER_COMMIT_EVERY = 1_000
IN_FLIGHT = 256
"""--prefill records the outcomes of each run of this many ids in a shuffled order."""


# -- workers -----------------------------------------------------------------------------------


def _ids(path: str, count: int) -> Iterator[str]:
    with open(path) as file:
        for n, line in enumerate(file):
            if n >= count:
                return
            yield line.rstrip("\n")


def fetch_worker(spec: Spec) -> Result:

    from aiotts import TTSClient
    from aiotts.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    async def work() -> Result:
        first: float | None = None
        counts = {"done": 0, "resumed": 0, "other": 0}
        started = time.monotonic()
        async with TTSClient(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, base_url=spec["url"]) as c:
            batch = c.fetch_many(
                _ids(spec["ids_file"], spec["count"]),
                spec["out"],
                manifest=spec["record"],
                resume=spec["resume"],
            )
            async for outcome in batch:
                if first is None:
                    first = time.monotonic() - started
                if outcome.resumed:
                    counts["resumed"] += 1
                elif outcome.ok:
                    counts["done"] += 1
                else:
                    counts["other"] += 1
            statistics = batch.statistics()
        return {
            "first": first,
            **counts,
            "requests": sum(statistics.requests.values()),
            "retries": statistics.retries,
            "throttled": statistics.throttled,
        }

    return _run(work())


def _run(coroutine: Any) -> Result:
    import asyncio

    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        result: Result = runner.run(coroutine)
    return result


def ledger_write_worker(spec: Spec) -> Result:
    n, path = spec["count"], spec["record"]
    if spec["kind"] == "store":
        from aiotts._store import OutcomeStore

        with OutcomeStore(path) as store:
            for i in range(n):
                store.record_submitted(f"key-{i}", f"TTS{i:08d}", commit=False)
                if i % LEDGER_COMMIT_EVERY == 0:
                    store.commit()
    else:
        import orjson

        with open(path, "ab") as file:
            for i in range(n):
                file.write(orjson.dumps({"key": f"key-{i}", "id": f"TTS{i:08d}"}) + b"\n")
                file.flush()
    return {}


def ledger_read_worker(spec: Spec) -> Result:
    n, path = spec["count"], spec["record"]
    found = 0
    started = time.monotonic()
    first: float | None = None
    if spec["kind"] == "store":
        from aiotts._store import OutcomeStore

        with OutcomeStore(path, read_only=True) as store:
            for i in range(n):
                found += store.task_id_for(f"key-{i}") == f"TTS{i:08d}"
                if first is None:
                    first = time.monotonic() - started
    else:
        import orjson

        ledger: dict[str, str] = {}
        with open(path, "rb") as file:
            for line in file:
                data = orjson.loads(line)
                ledger[data["key"]] = data["id"]
        for i in range(n):
            found += ledger.get(f"key-{i}") == f"TTS{i:08d}"
            if first is None:
                first = time.monotonic() - started
    return {"first": first, "found": found}


def prefill_worker(spec: Spec) -> Result:
    import io
    import wave

    from aiotts import Outcome, OutcomeState
    from aiotts._files import OutputTarget
    from aiotts._store import OutcomeStore

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(22_050)
        sound.writeframes(bytes(AUDIO_BYTES - 44))
    audio = buffer.getvalue()
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)

    def in_finishing_order() -> Iterator[str]:
        """The ids in about their order, as a batch with many tasks in flight finishes
        them: shuffled within each run of ``IN_FLIGHT``."""
        shuffle = random.Random(2).shuffle
        ids = _ids(spec["ids_file"], spec["count"])
        while run := list(itertools.islice(ids, IN_FLIGHT)):
            shuffle(run)
            yield from run

    with OutcomeStore(spec["record"]) as store:
        for n, task_id in enumerate(in_finishing_order()):
            path = OutputTarget.in_folder(out, task_id).path(0)
            path.write_bytes(audio)
            store.add(
                Outcome(
                    task_id,
                    OutcomeState.DONE,
                    files=(path,),
                    bytes_written=len(audio),
                    finished_at=time.time(),
                    response_code="Ok",
                )
            )
            if n % LEDGER_COMMIT_EVERY == 0:
                store.commit()
    return {}


WORKERS = {
    "fetch": fetch_worker,
    "prefill": prefill_worker,
    "ledger_write": ledger_write_worker,
    "ledger_read": ledger_read_worker,
}


# -- the parent --------------------------------------------------------------------------------

BACKGROUND_REMOVAL_ABOVE = 100_000
"""Ids above which the scratch folder is removed by a background process."""


@contextlib.contextmanager
def scratch(base: str | None, n: int, keep: bool) -> Iterator[Path]:
    """The run's scratch folder; removed afterwards (in the background for a big run), or
    kept with ``keep``."""
    path = Path(tempfile.mkdtemp(prefix="aiotts-scale-", dir=base))
    try:
        yield path
    finally:
        if keep:
            print(f"files kept in {path}", flush=True)
        elif n <= BACKGROUND_REMOVAL_ABOVE:
            shutil.rmtree(path, ignore_errors=True)
        else:
            remover = subprocess.Popen(
                [sys.executable, "-c", _REMOVE, str(path)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # outlives this script, and a Ctrl-C of it
            )
            print(f"{path} is being removed in the background (pid {remover.pid})", flush=True)


_REMOVE = "import os, shutil, sys; os.nice(10); shutil.rmtree(sys.argv[1], ignore_errors=True)"


def copy_lines(store: Path, manifest: Path) -> None:
    """Write the store's lines as a JSONL manifest beside it: what a JSONL run would have
    written (the same lines, files relative to the same folder), without fetching again."""
    from aiotts._store import OutcomeStore

    with OutcomeStore(store, read_only=True) as record, manifest.open("wb") as file:
        for line in record.lines():
            file.write(line + b"\n")


def growth_mb(result: Result) -> float:
    return (result["peak_rss_kib"] - result["rss_before_kib"]) * 1024 / MB


def row(label: str, kind: str, count: int, result: Result, ids: int) -> list[str]:
    first = result.get("first")
    return [
        label,
        kind,
        f"{count:,}",
        fmt(result["wall"], 1),
        f"{ids / result['wall']:,.0f}",
        "-" if first is None else f"{first * 1000:,.0f}",
        fmt(growth_mb(result), 1),
        fmt(result["cpu"], 2),
        fmt(result["cpu"] / ids * 1e6, 1) if ids else "-",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker")
    parser.add_argument("--n", type=int, default=1_000_000, help="ids (default %(default)s)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; figures meaningless")
    parser.add_argument("--out-dir", default=None, help="where the files go (default: /tmp)")
    parser.add_argument(
        "--jsonl-copy",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="JSONL manifest written from the store's lines, not fetched again "
        "(default: above 100,000 ids)",
    )
    parser.add_argument("--no-tenth", action="store_true", help="leave out fetch N/10")
    parser.add_argument(
        "--prefill", action="store_true", help="files and store written directly, no fetch"
    )
    parser.add_argument(
        "--keep-files", action="store_true", help="leave the scratch folder, say where"
    )
    parser.add_argument("--no-jsonl", action="store_true", help="leave out the JSONL rows")
    args = parser.parse_args()
    if args.worker:
        imports = ("aiotts", "aiotts._store", "aiotts.emulator", "orjson", "uvloop")
        return worker_main(WORKERS, args.worker, imports)
    from aiotts.emulator import EmulatorConfig, EmulatorProcess

    n = 300 if args.smoke else args.n
    tenth = max(n // 10, 1)
    jsonl_copy = args.prefill or (n > 100_000 if args.jsonl_copy is None else args.jsonl_copy)
    started = time.monotonic()
    rows: list[list[str]] = []
    checks: list[Check] = []
    headers = [
        "run",
        "record",
        "ids",
        "wall s",
        "ids/s",
        "first ms",
        "RSS +MB",
        "CPU s",
        "CPU us/id",
    ]

    def add(label: str, kind: str, count: int, result: Result, ids: int) -> None:
        rows.append(row(label, kind, count, result, ids))
        # Marked as progress, so that only the table at the end reads as the table.
        print(f"[{time.monotonic() - started:,.0f} s]", "  ".join(rows[-1]), flush=True)
        if ids:  # where the time went, and what was asked of the server
            asked = ", ".join(
                f"{name} {result[name] / ids:.3f}"
                for name in ("requests", "retries", "throttled")
                if name in result
            )
            print(
                f"[progress] CPU {result['cpu_user'] / ids * 1e6:.1f} us user"
                f" + {result['cpu_sys'] / ids * 1e6:.1f} us system per id"
                + (f"; per id: {asked}" if asked else ""),
                flush=True,
            )

    with (
        EmulatorProcess(EmulatorConfig(seed=1)) as emulator,
        scratch(args.out_dir, n, args.keep_files) as scratch_dir,
    ):
        ids_file = scratch_dir / "ids.txt"
        with ids_file.open("w") as file:
            left = n
            while left and not args.prefill:
                chunk = min(left, CREATE_CHUNK)
                ids = emulator.create_tasks(chunk, ready_after=0, audio_bytes=AUDIO_BYTES)
                file.write("\n".join(ids) + "\n")
                left -= chunk
            if args.prefill:  # random ids shaped like the service's, never asked about
                draw = random.Random(1).getrandbits
                file.writelines(f"{uuid.UUID(int=draw(128), version=4)}\n" for _ in range(n))
        made = (
            "ids made up, their files and store rows written by a worker (--prefill)"
            if args.prefill
            else f"ready tasks of {AUDIO_BYTES:,} bytes of WAV"
        )
        print(
            f"{n:,} {made}, ids file written in {time.monotonic() - started:,.0f} s; ids "
            "read from a file by a generator; client and emulator in processes of their own",
            flush=True,
        )
        print("[progress]", "  ".join(headers), flush=True)

        def fetch(kind: str, folder: str, count: int, resume: bool) -> Result:
            out = scratch_dir / folder
            record = out / ("aiotts.db" if kind == "store" else "manifest.jsonl")
            spec = {
                "url": emulator.url,
                "ids_file": str(ids_file),
                "count": count,
                "out": str(out),
                "record": str(record),
                "resume": resume,
            }
            return run_worker(SCRIPT, "fetch", lambda: spec, timeout=6 * 3600)

        for kind in ("store",) if args.no_jsonl else ("store", "JSONL"):
            copied = kind == "JSONL" and jsonl_copy
            small = big = None
            if not args.no_tenth and not copied and not args.prefill:
                small = fetch(kind, f"{kind}-tenth", tenth, False)
                add("fetch N/10", kind, tenth, small, small["done"])
            if copied:
                folder = "store-all"  # the store's files, with a manifest of the same lines
                store_all = scratch_dir / folder
                copy_lines(store_all / "aiotts.db", store_all / "manifest.jsonl")
            elif args.prefill:
                folder = f"{kind}-all"
                spec = {
                    "ids_file": str(ids_file),
                    "count": n,
                    "out": str(scratch_dir / folder),
                    "record": str(scratch_dir / folder / "aiotts.db"),
                }
                fill = run_worker(SCRIPT, "prefill", lambda s=spec: s, timeout=6 * 3600)
                add("prefill N", kind, n, fill, n)
            else:
                folder = f"{kind}-all"
                big = fetch(kind, folder, n, False)
                add("fetch N", kind, n, big, big["done"])
            if args.prefill and kind == "store":
                # Written without a batch, the store holds no clean end: this first resume
                # reads the folder for leftover temporary files, as one after a crash does.
                # It ends cleanly, so the next one (the row measured) does not.
                read = fetch(kind, folder, n, True)
                add("resume N, folder read", kind, n, read, read["resumed"])
            again = fetch(kind, folder, n, True)
            add("resume N", kind, n, again, again["resumed"])
            record = str(scratch_dir / f"ledger-{kind}.{'db' if kind == 'store' else 'jsonl'}")
            ledger_spec = {"kind": kind.lower(), "record": record, "count": n}
            write = run_worker(SCRIPT, "ledger_write", lambda s=ledger_spec: s, timeout=6 * 3600)
            add("ledger write N", kind, n, write, n)
            read = run_worker(SCRIPT, "ledger_read", lambda s=ledger_spec: s, timeout=6 * 3600)
            add("ledger look-up N", kind, n, read, read["found"])
            if kind != "store":
                continue
            if big is not None:
                checks.append(
                    Check(
                        "store: RSS growth, fetch N <= 64 MB",
                        f"{growth_mb(big):.1f} MB",
                        growth_mb(big) <= RSS_LIMIT_MB,
                    )
                )
            if small is not None and big is not None:
                small_rate, big_rate = small["done"] / small["wall"], big["done"] / big["wall"]
                checks.append(
                    Check(
                        "store: throughput at N within 10% of N/10",
                        f"{big_rate:,.0f} vs {small_rate:,.0f} ids/s",
                        big_rate >= 0.9 * small_rate,
                    )
                )
            checks += [
                Check(
                    "store: resume, first outcome <= 1 s",
                    f"{again['first'] * 1000:,.0f} ms",
                    again["first"] <= 1.0,
                ),
                Check(
                    "store: resume, >= 100,000 skipped ids/s",
                    f"{again['resumed'] / again['wall']:,.0f}/s",
                    again["resumed"] / again["wall"] >= 100_000 and again["resumed"] == n,
                ),
                Check(
                    "store: resume, <= 10 us of CPU per skipped id",
                    f"{again['cpu'] / max(again['resumed'], 1) * 1e6:.1f} us",
                    again["cpu"] <= 10e-6 * n and again["resumed"] == n,
                ),
                Check(
                    "store: resume, RSS growth <= 64 MB",
                    f"{growth_mb(again):.1f} MB",
                    growth_mb(again) <= RSS_LIMIT_MB,
                ),
                Check(
                    "store: ledger look-ups >= 100,000/s",
                    f"{read['found'] / read['wall']:,.0f}/s",
                    read["found"] / read["wall"] >= 100_000 and read["found"] == n,
                ),
                Check(
                    "store: ledger look-ups, RSS growth <= 64 MB",
                    f"{growth_mb(read):.1f} MB",
                    growth_mb(read) <= RSS_LIMIT_MB,
                ),
            ]
    print()
    print(Table(headers, rows, left=2).text(), end="\n\n")
    print(checks_table(checks).text())
    print(f"\n{machine()}; {time.monotonic() - started:.0f} s in all")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
