"""What the benchmark scripts share: client processes, measurements, tables.

Each measured client runs in a process of its own, started as ``python SCRIPT --worker
NAME``, so that its CPU time and peak RSS are its own and nobody else's:

1. the parent starts the worker; the worker imports everything it needs and prints
   ``ready``;
2. the parent prepares the run (typically: creates the tasks in the emulator, so that
   no task starts its clock while the worker is still importing) and writes the run's
   spec as one JSON line to the worker's stdin;
3. the worker measures ``getrusage(RUSAGE_SELF)`` and ``time.monotonic()`` around the
   work alone, and prints one JSON line: what the work returned, plus ``cpu`` (user +
   system seconds of the work, every thread included), ``wall``, and ``peak_rss_kib``
   (``ru_maxrss`` of the whole process, interpreter and imports included).

Only the standard library is imported here, so a worker process holds only the modules
its own client needs (its peak RSS is then its client's, not a neighbour's).

Times are ``time.monotonic()``, which on Linux is one clock for every process of the
machine; the emulator's task clock is the same clock, so a task's ``ready_at`` and the
moment a client's file landed can be compared exactly.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KB = 1000
MB = 1_000_000
KIB = 1024
MIB = 1024 * 1024
READY = "ready"

Spec = dict[str, Any]
Result = dict[str, Any]
WorkerFunction = Callable[[Spec], Result]


# -- the worker side ---------------------------------------------------------------------------


def worker_main(workers: dict[str, WorkerFunction], name: str, imports: Sequence[str] = ()) -> int:
    """Run worker ``name``: import ``imports`` (not measured), say ready, read the spec,
    measure the work, print the result."""
    function = workers[name]
    for module in imports:
        importlib.import_module(module)
    print(READY, flush=True)
    spec: Spec = json.loads(sys.stdin.readline())
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    result = function(spec)
    ended = time.monotonic()
    after = resource.getrusage(resource.RUSAGE_SELF)
    result.update(
        cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        cpu_user=after.ru_utime - before.ru_utime,
        cpu_sys=after.ru_stime - before.ru_stime,
        wall=ended - started,
        started=started,
        ended=ended,
        peak_rss_kib=after.ru_maxrss,
        rss_before_kib=before.ru_maxrss,
    )
    # An event loop may have left stdout non-blocking: a line longer than the pipe's
    # buffer would then be cut short.
    os.set_blocking(sys.stdout.fileno(), True)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


def run_loop(coroutine: Coroutine[Any, Any, Result], loop: str) -> Result:
    """Run ``coroutine`` on uvloop (as aiotts's command line does when it is installed) or
    on asyncio's own loop."""
    factory = None
    if loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)


def get_token(base_url: str, client_id: str, client_secret: str) -> str:
    """A token from a plain form POST to ``/connect/token`` (what users of the vendor SDK do:
    version 24.11.0 cannot get one itself)."""
    form = urllib.parse.urlencode(
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
    ).encode()
    with urllib.request.urlopen(base_url + "/connect/token", data=form, timeout=30) as response:
        token: str = json.loads(response.read())["access_token"]
    return token


# -- the parent side ---------------------------------------------------------------------------


class WorkerError(RuntimeError):
    pass


def run_worker(
    script: str | Path,
    name: str,
    prepare: Callable[[], Spec],
    *,
    timeout: float = 600.0,
) -> Result:
    """Start ``script --worker name``, wait for it to be ready, call ``prepare`` for the
    spec, hand it over and return the worker's result (with ``spec`` merged in under
    ``"spec"`` only if the caller keeps it)."""
    process = subprocess.Popen(
        [sys.executable, str(script), "--worker", name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        line = process.stdout.readline()
        if line.strip() != READY:
            _, err = process.communicate(timeout=30)
            raise WorkerError(f"worker {name} did not start: {line!r}\n{err}")
        spec = prepare()
        out, err = process.communicate(json.dumps(spec) + "\n", timeout=timeout)
    except BaseException:
        process.kill()
        process.wait()
        raise
    lines = out.strip().splitlines()
    if process.returncode != 0 or not lines:
        raise WorkerError(f"worker {name} failed (exit {process.returncode}):\n{err[-4000:]}")
    result: Result = json.loads(lines[-1])
    return result


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process so far (from ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@contextmanager
def scratch_folder(prefix: str, base: str | Path | None = None) -> Iterator[Path]:
    """A temporary folder for one client's files (under ``base``), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def count_files(folder: Path, size: int | None = None, suffix: str = ".wav") -> tuple[int, int]:
    """How many ``suffix`` files ``folder`` holds, and how many of them have ``size`` bytes."""
    total = matching = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.endswith(suffix) and entry.is_file():
                total += 1
                if size is None or entry.stat().st_size == size:
                    matching += 1
    return total, matching


def file_cost(base: str | Path | None, count: int = 300) -> float:
    """CPU seconds (user + system) to create, close and rename one empty file under
    ``base``: the least any client pays per task for a file of its own."""
    with scratch_folder("file-cost-", base) as folder:
        before = time.process_time()
        for i in range(count):
            part = folder / f".{i}.part"
            os.close(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            os.replace(part, folder / f"{i}.wav")
        return (time.process_time() - before) / count


def default_out_dir() -> str:
    """tmpfs (``/dev/shm``) when there is one, else the system's temporary folder."""
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


def revision() -> str:
    """The project's commit, marked when the working tree differs from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "aiotts"],
            cwd=root,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown revision"
    if not commit:
        return "unknown revision"
    return f"commit {commit}" + (" with local changes to aiotts/" if dirty else "")


def machine() -> str:
    """One line about this machine and the software measured."""
    import aiohttp
    import orjson
    import uvloop

    import aiotts

    return (
        f"{os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, aiotts {aiotts.__version__}, "
        f"aiohttp {aiohttp.__version__}, orjson {orjson.__version__}, uvloop {uvloop.__version__}"
        f" ({revision()})"
    )


# -- tables ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Table:
    """A table of strings; the first ``left`` columns are left-aligned, the rest right."""

    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    left: int = 1

    def text(self) -> str:
        widths = [
            max(len(str(cell)) for cell in column)
            for column in zip(self.headers, *self.rows, strict=True)
        ]

        def line(cells: Sequence[str]) -> str:
            parts = [
                f"{cell:<{w}}" if i < self.left else f"{cell:>{w}}"
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([line(self.headers), rule, *(line(row) for row in self.rows)])

    def markdown(self) -> str:
        aligns = [":--" if i < self.left else "--:" for i in range(len(self.headers))]
        out = ["| " + " | ".join(self.headers) + " |", "|" + "|".join(aligns) + "|"]
        out += [
            "| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in self.rows
        ]
        return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Check:
    """One target: what is compared, the measured value against the target, and the verdict."""

    what: str
    value: str
    ok: bool

    @property
    def verdict(self) -> str:
        return "PASS" if self.ok else "FAIL"


def checks_table(checks: Sequence[Check]) -> Table:
    return Table(
        ["target", "measured", "verdict"], [(c.what, c.value, c.verdict) for c in checks], left=2
    )


def fmt(value: float, digits: int = 2) -> str:
    """A number for a table; ``-`` for a missing one."""
    if value != value:  # NaN
        return "-"
    return f"{value:,.{digits}f}"


def ratio(value: float, reference: float) -> str:
    if not reference or value != value or reference != reference:
        return "-"
    return f"{value / reference:.2f}x"
