"""aiotts against bare aiohttp, in one run: CPU per poll, download throughput, peak memory.

The emulator runs in its own process (``EmulatorProcess``), and so does every measured
client (this script re-run as ``--worker NAME``), which reports the CPU time (user +
system, every thread) of its work alone and the peak RSS of its whole process.

Pending (``--pending`` tasks that stay Pending for the run):

* ``bare aiohttp``: one ``ClientSession`` (``TCPConnector(limit=32)``), 32 coroutines
  that send ``GET /v5.0/ocr/ConvertTextToSpeech?id=...`` with a bearer token round-robin
  over the ids for ``--duration`` seconds and parse each small JSON body with orjson;
* ``aiotts, no poll budget``: ``TTSClient.fetch_many`` over the same ids for the same
  duration (``batch_timeout``), with its default limits (32 polls in flight) and a poll
  policy of a fixed 50 ms delay and no poll budget, so that every task is always due again
  and aiotts, like the bare loop, sends as fast as 32 requests in flight allow. Its polls
  are ``batch.statistics().requests["poll"]``. The target is judged on this pair.
* ``aiotts, no-op hooks``: the same, with a sync hook that does nothing registered for
  every kind of event (``Hooks`` with all seven fields), so every answer calls one;
* ``aiotts, OpenTelemetry``: the same, with ``aiotts.otel.telemetry_hooks`` feeding the
  OpenTelemetry SDK (a ``MeterProvider`` with an in-memory reader that is never read, and a
  ``TracerProvider`` with no exporter): a counter and a histogram per answer, a span per
  task. Both are compared with the plain aiotts row (``vs aiotts``).
* for information, both again at the pace of aiotts's default poll budget
  (``PollPolicy.budget`` polls a second): the bare loop spacing its requests 1/budget
  seconds apart, and aiotts with the same 50 ms delays but the default budget. Spaced
  requests cost more CPU each than back-to-back ones (less work per trip through the
  event loop), so the paced pair is compared with each other.

  The figure is CPU per poll over the whole run (start-up, admission of every id and the
  expiry of every id at the deadline included); the "steady" column is the same ratio
  between two samples taken inside the run, after a warm-up, for information.

Completed (``--completed`` tasks of 1 MB of WAV each, already done; the files go to the
system's temporary folder, on disk, unless ``--out-dir`` says otherwise):

* ``bare aiohttp``: ``ClientSession(read_bufsize=256 KiB)``, ``--concurrency`` GETs in
  flight, each body streamed with ``iter_chunked(256 KiB)`` into its own file with plain
  writes: no JSON, no Base64, no fsync (the physical baseline: network and disk only);
* ``aiotts``: ``fetch_many`` with default settings (no fsync, ``durable=False``), and
  again with ``durable=True`` (an fsync per file); both with the default ``Limits``.

  Throughput is in tasks/s and in MB/s (10**6 bytes) of WAV landed; since every task is
  the same, their ratio to the baseline is the same in either unit. The baseline writes
  the Base64 body (1.33 MB a task), aiotts the decoded WAV (1 MB).

Cost per event (in this process, no I/O): what the client's event entry points cost with
nothing registered, with a no-op sync hook on every event, and with OpenTelemetry as
above, per answer (``RequestFinished``) and per task's life (two moves and an ending),
best of five rounds of CPU time.

Before the completed runs, one untimed pass reads every body once, so the emulator's
cache is equally warm for every client. Between runs the files are removed and the
page cache flushed (``os.sync``). Each client is run ``--repeat`` times, in rotation;
the table shows the best run of each.

Both clients run on uvloop (aiotts's command line uses it when installed), or both on
asyncio's loop with ``--loop asyncio``.

Run: ``python benchmarks/bench_poll.py`` (``--quick``: small sizes, seconds). Exits 1 if
a target fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import orjson
import yarl

from aiotts import DEFAULT_POLL, Hooks, Limits, PollPolicy, TTSClient
from aiotts.emulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    EmulatorConfig,
    EmulatorProcess,
)

from _common import (
    KIB,
    MB,
    Check,
    Result,
    Spec,
    Table,
    checks_table,
    count_files,
    file_cost,
    fmt,
    machine,
    process_cpu,
    run_loop,
    run_worker,
    scratch_folder,
    worker_main,
)

SCRIPT = Path(__file__).resolve()
TTS_PATH = "/v5.0/ocr/ConvertTextToSpeech"
CHUNK = 256 * KIB
AUDIO_BYTES = 1_000_000
CONCURRENCY = Limits().polls  # aiotts's default
FAST_POLL = PollPolicy(
    first_delay=0.05,
    growth=1.0,
    max_delay=0.05,
    processing_delay=0.05,
    jitter="none",
    budget=None,
)
"""Every task due again 50 ms after its answer, and no poll budget: aiotts sends as fast as
its 32 requests in flight allow, like the bare loop."""

# Targets.
MAX_CPU_PER_POLL_RATIO = 1.5
MIN_THROUGHPUT_RATIO = 0.8
MAX_RSS_MB = 200


# -- workers (each in its own process) ---------------------------------------------------------


async def _token(session: aiohttp.ClientSession, url: str) -> str:
    form = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
    }
    async with session.post(url + "/connect/token", data=form) as response:
        token: str = orjson.loads(await response.read())["access_token"]
    return token


class Sampler:
    """Two samples of (CPU, count) inside a run, for the steady-state ratio."""

    def __init__(self, count: Callable[[], int], duration: float) -> None:
        self._count = count
        self._warm = min(2.0, duration * 0.2)
        self._span = max(0.1, duration - self._warm - min(2.0, duration * 0.2))
        self.cpu = float("nan")
        self.polls = 0

    async def run(self) -> None:
        await anyio.sleep(self._warm)
        cpu0, n0 = time.process_time(), self._count()
        await anyio.sleep(self._span)
        self.cpu, self.polls = time.process_time() - cpu0, self._count() - n0


def bare_poll(spec: Spec) -> Result:
    url, ids, duration = spec["url"], spec["ids"], spec["duration"]

    async def main() -> Result:
        polls = 0
        statuses: dict[str, int] = {}
        connector = aiohttp.TCPConnector(limit=spec["concurrency"])
        async with aiohttp.ClientSession(connector=connector) as session:
            headers = {"Authorization": "Bearer " + await _token(session, url)}
            endpoint = url + TTS_PATH
            next_id = itertools.cycle(ids).__next__
            deadline = time.monotonic() + duration

            rate = spec.get("rate")
            next_slot = 0.0

            async def loop() -> None:
                nonlocal polls, next_slot
                while time.monotonic() < deadline:
                    if rate:  # paced: one request every 1/rate seconds, across the loops
                        now = time.monotonic()
                        slot = max(next_slot, now)
                        next_slot = slot + 1.0 / rate
                        if slot > now:
                            await anyio.sleep(slot - now)
                    params = {"id": next_id()}
                    async with session.get(endpoint, params=params, headers=headers) as resp:
                        status = orjson.loads(await resp.read())["taskStatus"]
                    statuses[status] = statuses.get(status, 0) + 1
                    polls += 1

            sampler = Sampler(lambda: polls, duration)
            async with anyio.create_task_group() as group:
                group.start_soon(sampler.run)
                for _ in range(spec["concurrency"]):
                    group.start_soon(loop)
        return {
            "polls": polls,
            "statuses": statuses,
            "steady_cpu": sampler.cpu,
            "steady_polls": sampler.polls,
        }

    return run_loop(main(), spec["loop"])


def observing(how: str | None) -> Hooks | None:
    """The hooks of a measured client: none, a no-op on every event, or OpenTelemetry."""
    if how is None:
        return None
    if how == "hooks":

        def nothing(event: object) -> None:
            pass

        return Hooks(*[nothing] * len(dataclasses.fields(Hooks)))
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    from aiotts.otel import telemetry_hooks

    return telemetry_hooks(MeterProvider(metric_readers=[InMemoryMetricReader()]), TracerProvider())


def aiotts_poll(spec: Spec) -> Result:
    url, ids, duration = spec["url"], spec["ids"], spec["duration"]

    async def main() -> Result:
        outcomes: dict[str, int] = {}
        hooks = observing(spec.get("observe"))
        with scratch_folder("bench-poll-") as out:
            async with TTSClient(
                DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, base_url=url, hooks=hooks
            ) as client:
                poll = dataclasses.replace(FAST_POLL, budget=spec.get("budget"))
                batch = client.fetch_many(ids, out, batch_timeout=duration, poll=poll)
                sampler = Sampler(lambda: batch.statistics().requests.get("poll", 0), duration)
                async with anyio.create_task_group() as group:
                    group.start_soon(sampler.run)
                    async for outcome in batch:
                        outcomes[outcome.state.value] = outcomes.get(outcome.state.value, 0) + 1
                    group.cancel_scope.cancel()
                stats = batch.statistics()
        return {
            "polls": stats.requests.get("poll", 0),
            "requests": dict(stats.requests),
            "outcomes": outcomes,
            "steady_cpu": sampler.cpu,
            "steady_polls": sampler.polls,
        }

    return run_loop(main(), spec["loop"])


def bare_fetch(spec: Spec) -> Result:
    url, ids = spec["url"], spec["ids"]
    out = Path(spec["out"]) if spec.get("out") else None

    async def main() -> Result:
        body_bytes = 0
        connector = aiohttp.TCPConnector(limit=spec["concurrency"])
        async with aiohttp.ClientSession(connector=connector, read_bufsize=CHUNK) as session:
            headers = {"Authorization": "Bearer " + await _token(session, url)}
            endpoint = url + TTS_PATH
            queue = iter(ids)

            async def loop() -> None:
                nonlocal body_bytes
                for task_id in queue:
                    params = {"id": task_id}
                    async with session.get(endpoint, params=params, headers=headers) as resp:
                        if out is None:  # the warm-up pass: read, keep nothing
                            async for chunk in resp.content.iter_chunked(CHUNK):
                                body_bytes += len(chunk)
                            continue
                        with open(out / f"{task_id}.wav", "wb", buffering=0) as file:
                            async for chunk in resp.content.iter_chunked(CHUNK):
                                file.write(chunk)
                                body_bytes += len(chunk)

            async with anyio.create_task_group() as group:
                for _ in range(spec["concurrency"]):
                    group.start_soon(loop)
        return {"done": len(ids), "body_bytes": body_bytes}

    return run_loop(main(), spec["loop"])


def aiotts_fetch(spec: Spec) -> Result:
    url, ids, out = spec["url"], spec["ids"], spec["out"]

    async def main() -> Result:
        done = written = 0
        async with TTSClient(
            DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, base_url=url, durable=spec["durable"]
        ) as client:
            async for outcome in client.fetch_many(ids, out):
                if outcome.ok:
                    done += 1
                    written += outcome.bytes_written
        return {"done": done, "wav_bytes": written}

    return run_loop(main(), spec["loop"])


WORKERS = {
    "bare_poll": bare_poll,
    "aiotts_poll": aiotts_poll,
    "bare_fetch": bare_fetch,
    "aiotts_fetch": aiotts_fetch,
}


# -- the parent --------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    result: Result
    server_cpu: float

    def __getitem__(self, key: str) -> Any:
        return self.result[key]


def measured(emulator: EmulatorProcess, label: str, worker: str, spec: Spec) -> Run:
    holder: dict[str, float] = {}

    def prepare() -> Spec:
        holder["cpu"] = process_cpu(emulator.pid)
        return spec

    result = run_worker(SCRIPT, worker, prepare)
    return Run(label, result, process_cpu(emulator.pid) - holder["cpu"])


def pending_scenario(
    emulator: EmulatorProcess, args: argparse.Namespace, checks: list[Check]
) -> Table:
    ids = emulator.create_tasks(args.pending, ready_after=24 * 3600.0)
    common = {"url": emulator.url, "ids": ids, "duration": args.duration, "loop": args.loop}
    bare_spec = {**common, "concurrency": CONCURRENCY}
    budget = DEFAULT_POLL.budget
    clients = [
        ("bare", "bare aiohttp", "bare_poll", bare_spec),
        ("aiotts", "aiotts, no poll budget", "aiotts_poll", {**common, "budget": None}),
        (
            "aiotts hooks",
            "aiotts, no poll budget, no-op hooks",
            "aiotts_poll",
            {**common, "budget": None, "observe": "hooks"},
        ),
        (
            "aiotts otel",
            "aiotts, no poll budget, OpenTelemetry",
            "aiotts_poll",
            {**common, "budget": None, "observe": "otel"},
        ),
    ]
    if budget and not args.smoke:
        clients += [
            (
                "bare paced",
                f"bare aiohttp, paced at {budget:,.0f}/s",
                "bare_poll",
                {**bare_spec, "rate": budget},
            ),
            (
                "aiotts paced",
                f"aiotts, default poll budget ({budget:,.0f}/s)",
                "aiotts_poll",
                {**common, "budget": budget},
            ),
        ]
    runs: dict[str, list[Run]] = {key: [] for key, *_ in clients}
    for _ in range(args.repeat):
        for key, label, worker, spec in clients:
            runs[key].append(measured(emulator, label, worker, spec))
        if set(runs["bare"][-1]["statuses"]) != {"Pending"}:
            raise RuntimeError(f"tasks left Pending: {runs['bare'][-1]['statuses']}")

    def per_poll(run: Run) -> float:
        return float(run["cpu"]) / max(1, run["polls"])

    best = {name: min(rs, key=per_poll) for name, rs in runs.items()}
    bare, ours = best["bare"], best["aiotts"]
    rows = []
    for key, run in best.items():
        reference = best["bare paced"] if key == "aiotts paced" else bare
        steady = run["steady_cpu"] / max(1, run["steady_polls"])
        against_aiotts = (
            f"{per_poll(run) / per_poll(ours):.2f}x"
            if key in ("aiotts hooks", "aiotts otel")
            else ""
        )
        rows.append(
            (
                run.label,
                fmt(run["wall"], 1),
                f"{run['polls']:,}",
                fmt(run["polls"] / run["wall"], 0),
                fmt(run["cpu"], 2),
                fmt(per_poll(run) * 1e6, 0),
                fmt(steady * 1e6, 0),
                f"{per_poll(run) / per_poll(reference):.2f}x",
                against_aiotts,
                fmt(run["peak_rss_kib"] / 1024, 0),
                fmt(run.server_cpu / max(1, run["polls"]) * 1e6, 0),
            )
        )
    cpu_ratio = per_poll(ours) / per_poll(bare)
    checks.append(
        Check(
            f"{args.pending:,} Pending tasks: aiotts CPU per poll / bare aiohttp's",
            f"{cpu_ratio:.2f}x (target <= {MAX_CPU_PER_POLL_RATIO}x)",
            cpu_ratio <= MAX_CPU_PER_POLL_RATIO,
        )
    )
    rss_mb = max(r["peak_rss_kib"] for key in runs if "aiotts" in key for r in runs[key]) / 1024
    checks.append(
        Check(
            f"{args.pending:,} tasks in flight: aiotts peak RSS",
            f"{rss_mb:.0f} MB (target < {MAX_RSS_MB} MB)",
            rss_mb < MAX_RSS_MB,
        )
    )
    return Table(
        [
            "client",
            "wall s",
            "polls",
            "polls/s",
            "CPU s",
            "CPU us/poll",
            "steady us/poll",
            "vs bare (paced: vs paced)",
            "vs aiotts",
            "peak RSS MB",
            "server us/poll",
        ],
        rows,
    )


def completed_scenario(
    emulator: EmulatorProcess, args: argparse.Namespace, checks: list[Check]
) -> Table:
    ids = emulator.create_tasks(args.completed, ready_after=0, audio_bytes=AUDIO_BYTES)
    wav_length = emulator.record(ids[0]).wav_length  # whole samples: 999,998 bytes
    common = {"url": emulator.url, "ids": ids, "loop": args.loop}
    if not args.smoke:
        warm = {**common, "concurrency": args.concurrency, "out": None}
        run_worker(SCRIPT, "bare_fetch", lambda: warm)
    clients: list[tuple[str, str, dict[str, Any]]] = [
        ("bare aiohttp, no decode, no fsync", "bare_fetch", {"concurrency": args.concurrency}),
        ("aiotts (default: durable=False)", "aiotts_fetch", {"durable": False}),
        ("aiotts, durable=True", "aiotts_fetch", {"durable": True}),
    ]
    runs: dict[str, list[Run]] = {label: [] for label, _, _ in clients}
    for repeat in range(args.repeat):
        # Each round starts with the next client, so none always runs first after a flush.
        for label, worker, extra in clients[repeat:] + clients[:repeat]:
            with scratch_folder("bench-fetch-", args.out_dir) as out:
                run = measured(emulator, label, worker, {**common, **extra, "out": str(out)})
                files, whole = count_files(out, None if worker == "bare_fetch" else wav_length)
                if files != len(ids) or whole != len(ids):
                    raise RuntimeError(f"{label}: {whole} whole files of {len(ids)}")
                runs[label].append(run)
            os.sync()  # nothing left to write back while the next client runs

    def rate(run: Run) -> float:
        return float(run["done"]) / float(run["wall"])

    best = {label: max(rs, key=rate) for label, rs in runs.items()}
    bare = best[clients[0][0]]
    rows = []
    for label, run in best.items():
        tasks_per_s = rate(run)
        rows.append(
            (
                label,
                fmt(run["wall"], 2),
                fmt(tasks_per_s, 0),
                fmt(tasks_per_s * wav_length / MB, 0),
                fmt(run["cpu"], 2),
                fmt(run["cpu"] / run["done"] * 1000, 2),
                f"{tasks_per_s / rate(bare):.2f}",
                fmt(run["peak_rss_kib"] / 1024, 0),
                fmt(run.server_cpu, 2),
            )
        )
    for label, _, _ in clients[1:2]:  # the target is judged on aiotts as it ships
        ratio = rate(best[label]) / rate(bare)
        checks.append(
            Check(
                f"{args.completed:,} x 1 MB: {label} MB/s / baseline's",
                f"{ratio:.2f} (target >= {MIN_THROUGHPUT_RATIO})",
                ratio >= MIN_THROUGHPUT_RATIO,
            )
        )
    return Table(
        [
            "client",
            "wall s",
            "tasks/s",
            "WAV MB/s",
            "CPU s",
            "CPU ms/task",
            "vs baseline",
            "peak RSS MB",
            "server CPU s",
        ],
        rows,
    )


def event_costs(rounds: int = 5, answers: int = 50_000, tasks: int = 10_000) -> Table:
    """CPU per event at the client's entry points, with each kind of observer."""
    from aiotts import Outcome, OutcomeState
    from aiotts._context import log_task_id
    from aiotts._hooks import Emitter
    from aiotts._states import State

    log_task_id.set("bench-task")
    url = yarl.URL("http://127.0.0.1:8080/v5.0/ocr/ConvertTextToSpeech").with_query(id="x")
    rows = []
    for label, how in (
        ("nothing registered", None),
        ("no-op hooks", "hooks"),
        ("OpenTelemetry", "otel"),
    ):
        hooks = observing(how)
        emitter = Emitter([hooks] if hooks is not None else [])

        def per_answer(n: int, emitter: Emitter = emitter) -> None:
            for _ in range(n):
                if (answered := emitter.response) is not None:  # the call site, as written
                    answered("poll", "GET", 200, 0.0, url)

        def per_task(n: int, emitter: Emitter = emitter) -> None:
            for number in range(n):
                task_id = f"bench-{number}"
                if (moved := emitter.moved) is not None:
                    moved(task_id, None, State.POLLING, ())
                    moved(task_id, State.POLLING, State.DOWNLOADING, ())
                outcome = Outcome(task_id, OutcomeState.DONE, bytes_written=1000)
                if (ended := emitter.ended) is not None:
                    ended(outcome, None)

        def best(work: Callable[[int], None], n: int) -> float:
            times = []
            for _ in range(rounds):
                started = time.process_time()
                work(n)
                times.append((time.process_time() - started) / n)
            return min(times) * 1e6

        rows.append((label, fmt(best(per_answer, answers), 2), fmt(best(per_task, tasks), 1)))
    return Table(["observer", "CPU us per answer", "CPU us per task (outcome included)"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes: seconds, not minutes")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pending", type=int, help="Pending tasks (default 10,000)")
    parser.add_argument("--duration", type=float, help="seconds of each Pending run (10)")
    parser.add_argument("--completed", type=int, help="completed 1 MB tasks (default 2,000)")
    parser.add_argument("--concurrency", type=int, default=16, help="baseline downloads (16)")
    parser.add_argument("--repeat", type=int, help="runs of each client; the best counts (2)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--only", choices=("pending", "completed"), help="run one scenario (default: both)"
    )
    parser.add_argument(
        "--out-dir",
        default=tempfile.gettempdir(),
        help="where the completed scenario's files go (default: %(default)s, on disk)",
    )
    args = parser.parse_args()
    if args.worker:
        return worker_main(WORKERS, args.worker)
    # --smoke: tiny sizes for the test that checks this script runs (figures mean nothing).
    size = 2 if args.smoke else 1 if args.quick else 0
    args.pending = args.pending or (10_000, 1_000, 200)[size]
    args.duration = args.duration or (10.0, 2.0, 0.5)[size]
    args.completed = args.completed or (2_000, 100, 10)[size]
    args.repeat = args.repeat or (2, 1, 1)[size]

    started = time.monotonic()
    checks: list[Check] = []
    with EmulatorProcess(EmulatorConfig(seed=1)) as emulator:
        if args.only != "completed":
            print(
                f"Pending: {args.pending:,} tasks, {args.duration:g} s per run, {CONCURRENCY} "
                f"in flight, event loop: {args.loop}, best of {args.repeat}",
                flush=True,
            )
            print(pending_scenario(emulator, args, checks).text(), end="\n\n", flush=True)
        if args.only != "pending":
            print(
                f"Completed: {args.completed:,} tasks of {AUDIO_BYTES / MB:g} MB WAV "
                f"({AUDIO_BYTES * 4 // 3 / MB:.2f} MB body), baseline {args.concurrency} in "
                f"flight, best of {args.repeat}; files in {args.out_dir} (create + rename of "
                f"an empty file: {file_cost(args.out_dir) * 1e6:.0f} us of CPU)",
                flush=True,
            )
            print(completed_scenario(emulator, args, checks).text(), end="\n\n")
    print("Cost per event, in this process (best of 5 rounds):")
    print(event_costs(rounds=1 if args.smoke else 5).text(), end="\n\n")
    print(checks_table(checks).text())
    print(f"\n{machine()}; {time.monotonic() - started:.0f} s in all")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
