"""``aiotts fetch --processes P`` (and ``synthesize``): every core of one machine, one
shard per child process.

One aiotts process drives one core, and fetching completed results is CPU-bound on the
client. The parent starts P children, each ``aiotts fetch --shard k/P --json`` (or
``aiotts synthesize``; with the parent's other options) keeping its own record, reads
what they write, and shows one progress bar and one summary for all of them.

Invariants:

* The children's shards are disjoint and cover every id (``_shards``), so no id is asked
  twice and none is dropped; each child's record holds its own ids only, and ``--resume``
  resumes each child from its own record (``aiotts report`` merges them).
* Children run in sessions of their own, so a Ctrl-C at the terminal reaches the parent
  alone; the parent then sends each child one SIGTERM (each records what it had in
  flight as ``cancelled``) and waits for all of them before it exits with 130. A child
  whose parent died stops too: its next statistics line meets a closed pipe.
* The exit code is the worst of the children's: the highest in the README's table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Protocol

import anyio
import orjson
from rich.console import Console

from aiotts._batch import BatchStatistics
from aiotts._errors import UsageError
from aiotts._models import Outcome, OutcomeState
from aiotts._shards import Shard
from aiotts._states import State
from aiotts.cli._progress import BatchProgress, Summary, summary_line, summary_table
from aiotts.cli._sharding import shard_record, sub_shard
from aiotts.cli._text import shown

__all__ = [
    "GRACE_SECONDS",
    "child_arguments",
    "fetch_in_processes",
    "run_in_processes",
    "worst_exit_code",
    "write_statistics",
]

GRACE_SECONDS = 60.0
"""How long the parent waits for its children to record what was in flight after it
sent them SIGTERM, before it kills the ones left."""

_STATISTICS_EVERY = 0.25
"""Seconds between two statistics lines of a child (and two redraws of the bar)."""

_NOT_FORWARDED = frozenset(
    {"ids", "ids_file", "processes", "shard", "shards", "json", "quiet", "progress_lines"}
    | {"file", "format"}  # synthesize's input: the parent names it for every child
)
"""The options the parent sets for each child itself; every other is passed on as given."""

_INTERRUPTED = 130
_SERVICE = 4


# -- the child's side ----------------------------------------------------------------------


class _Running(Protocol):
    """What a child drives: a batch of ids, or a synthesis."""

    def statistics(self) -> BatchStatistics: ...
    def cancel(self) -> None: ...


async def write_statistics(batch: _Running, out: IO[bytes], total: int | None) -> None:
    """Write the batch's statistics as a JSON line every quarter of a second, for the
    parent's bar. A closed pipe means the parent is gone: the batch is cancelled, so it
    records what it had in flight and the child ends instead of fetching on alone."""
    while True:
        statistics = batch.statistics()
        line = {
            "statistics": {
                "states": dict(statistics.states),
                "bytes": statistics.bytes_written,
                "resumed": statistics.resumed,
                "total": total,
            }
        }
        try:
            out.write(orjson.dumps(line) + b"\n")
            out.flush()
        except OSError:
            batch.cancel()
            return
        await anyio.sleep(_STATISTICS_EVERY)


# -- the parent's side ---------------------------------------------------------------------


def worst_exit_code(codes: Iterable[int]) -> int:
    """The worst of the children's exit codes: the highest in the README's table (0 every
    task done, 1 some not done, 2 usage ... 6, 130 interrupted). A child killed by a
    signal counts as interrupted (SIGINT, SIGTERM) or as 4, an unexpected end (others)."""
    worst = 0
    for code in codes:
        if code < 0:
            code = _INTERRUPTED if -code in (signal.SIGINT, signal.SIGTERM) else _SERVICE
        worst = max(worst, code)
    return worst


def _verb_actions(verb: str) -> list[argparse.Action]:
    from aiotts.cli import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices[verb]._actions)
    raise AssertionError(f"the parser has no {verb} verb")  # pragma: no cover


def child_arguments(
    args: argparse.Namespace,
    shard: Shard,
    ids_file: str | None,
    *,
    verb: str = "fetch",
    inputs: tuple[str, ...] = (),
) -> list[str]:
    """``aiotts VERB`` arguments for the child that takes ``shard``: every option of the
    parent as it was given, except those the parent sets itself (``_NOT_FORWARDED``), then
    the shard, JSON lines with statistics, and the ids (``fetch``) or ``inputs``, the
    arguments that name the input (``synthesize``)."""
    argv: list[str] = [verb]
    for action in _verb_actions(verb):
        if action.dest in _NOT_FORWARDED or not action.option_strings:
            continue
        if isinstance(action, argparse._HelpAction | argparse._VersionAction):
            continue
        value = getattr(args, action.dest, None)
        flag = action.option_strings[-1]
        if isinstance(action, argparse._StoreTrueAction):
            if value:
                argv.append(flag)
        elif isinstance(action, argparse._CountAction):
            argv += [flag] * int(value or 0)
        elif value is None or value == action.default:
            continue
        elif isinstance(value, list | tuple):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    argv += ["--shard", f"{shard.index}/{shard.count}", "--json", "--progress-lines"]
    argv += inputs
    if ids_file is not None:
        argv += ["--ids-file", ids_file]
    if getattr(args, "ids", None):
        argv += ["--", *args.ids]
    return argv


@dataclass
class _Child:
    """One child process and what it said so far."""

    shard: Shard
    record: str
    process: asyncio.subprocess.Process | None = None
    statistics: Mapping[str, Any] = field(default_factory=dict)
    total: int | None = None
    reported_total: bool = False


def _combined(children: list[_Child], summary: Summary, *, final: bool = False) -> BatchStatistics:
    """The children's latest statistics added up. Final states come from the outcomes
    the parent has read (never fewer than those), the rest from the statistics lines;
    ``final``: every child ended, so nothing is in flight whatever its last line said."""
    states = dict.fromkeys((s.value for s in State), 0)
    written = 0
    resumed = 0
    for child in [] if final else children:
        for name, count in child.statistics.get("states", {}).items():
            if name in states and not State(name).is_final:
                states[name] += int(count)
        written += int(child.statistics.get("bytes", 0))
        resumed += int(child.statistics.get("resumed", 0))
    for state, count in summary.states.items():
        states[state.value] = count
    return BatchStatistics(
        states=MappingProxyType(states),
        requests=MappingProxyType({}),
        retries=0,
        throttled=0,
        bytes_written=max(written, summary.bytes_written),
        resumed=max(resumed, summary.resumed),
        elapsed=summary.elapsed,
    )


def _outcome(line: Mapping[str, Any]) -> Outcome:
    """The outcome a child's JSON line tells (``aiotts fetch --json``, or ``synthesize``'s,
    whose id is null for a text that got no task)."""
    key = line.get("key")
    return Outcome(
        task_id=str(line["id"] or ""),
        key=None if key is None else str(key),
        state=OutcomeState(line["state"]),
        files=tuple(Path(p) for p in line.get("files") or ()),
        bytes_written=int(line.get("bytes") or 0),
        error=line.get("error"),
        messages=tuple(line.get("messages") or ()),
        warnings=tuple(line.get("warnings") or ()),
        resumed=bool(line.get("resumed")),
    )


class _Parent:
    """Runs the children and gathers what they write."""

    def __init__(
        self,
        args: argparse.Namespace,
        shard: Shard | None,
        console: Console,
        *,
        verb: str = "fetch",
        inputs: tuple[str, ...] = (),
        record: str | None = None,
    ) -> None:
        self.args = args
        self.console = console
        self.verb = verb
        self.inputs = inputs
        count: int = args.processes
        self.children = [
            _Child(part, shard_record(record, args.out, part))
            for part in (sub_shard(shard, k, count) for k in range(count))
        ]
        self.summary = Summary()
        self.said: set[str] = set()
        self.out = sys.stdout.buffer

    def say(self, child: _Child, line: str) -> None:
        """A line a child wrote on standard error, once (the same error in every child,
        such as refused credentials, is shown once)."""
        if line in self.said:
            return
        self.said.add(line)
        self.console.print(
            f"shard {child.shard}: {line}", markup=False, highlight=False, soft_wrap=True
        )

    async def start(self, child: _Child, ids_file: str | None) -> None:
        argv = child_arguments(self.args, child.shard, ids_file, verb=self.verb, inputs=self.inputs)
        child.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "aiotts",
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # Ctrl-C at the terminal reaches the parent alone
        )

    async def pump(self, child: _Child) -> int:
        """Read the child's output to its end; its exit code."""
        process = child.process
        assert process is not None

        async def lines_out() -> None:
            assert process.stdout is not None
            async for raw in process.stdout:
                self.take(child, raw)

        async def lines_err() -> None:
            assert process.stderr is not None
            async for raw in process.stderr:
                text = raw.decode("utf-8", "replace").rstrip("\n")
                if text:
                    self.say(child, text)

        await asyncio.gather(lines_out(), lines_err())
        return await process.wait()

    def take(self, child: _Child, raw: bytes) -> None:
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.say(child, shown(raw.decode("utf-8", "replace").rstrip("\n")))
            return
        if not isinstance(line, dict):
            return
        statistics = line.get("statistics")
        if isinstance(statistics, dict):
            child.statistics = statistics
            if not child.reported_total:
                child.reported_total = True
                total = statistics.get("total")
                child.total = int(total) if isinstance(total, int) else None
            return
        if "id" in line and "state" in line:
            self.summary.add(_outcome(line))
            if self.args.json:
                self.out.write(raw.rstrip(b"\n") + b"\n")
                self.out.flush()

    def total(self) -> int | None:
        """Every child's number of ids, once all have told it."""
        if not all(c.reported_total and c.total is not None for c in self.children):
            return None
        return sum(c.total or 0 for c in self.children)

    def terminate(self) -> None:
        for child in self.children:
            process = child.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        for child in self.children:
            process = child.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()


def _spool_stdin(folder: str) -> str:
    """Standard input copied to a file, so that every child can read all of it."""
    with tempfile.NamedTemporaryFile("wb", prefix="aiotts-ids-", dir=folder, delete=False) as f:
        shutil.copyfileobj(sys.stdin.buffer, f, 1 << 20)
    return f.name


def _records_pattern(parent: _Parent) -> str:
    first = parent.children[0]
    return first.record.replace(f"shard-{first.shard.index}-", "shard-*-", 1)


async def fetch_in_processes(args: argparse.Namespace, shard: Shard | None) -> int:
    """``fetch --processes P``: P children, one bar, one summary, the worst exit code."""
    if args.progress_lines:
        raise UsageError("--processes is for the parent, not for one of its children")
    spool: str | None = None
    ids_file: str | None = args.ids_file
    if ids_file is None and not args.ids:
        raise UsageError("no task ids: give them as arguments or with --ids-file FILE")
    if ids_file == "-":
        spool = ids_file = await anyio.to_thread.run_sync(_spool_stdin, tempfile.gettempdir())
    elif ids_file is not None and not await anyio.Path(ids_file).is_file():
        raise UsageError(f"the ids file {ids_file} does not exist")
    try:
        return await run_in_processes(
            args, shard, ids_file, record=args.manifest, print_failures=_print_failures
        )
    finally:
        if spool is not None:
            with contextlib.suppress(OSError):
                os.unlink(spool)


async def run_in_processes(
    args: argparse.Namespace,
    shard: Shard | None,
    ids_file: str | None,
    *,
    verb: str = "fetch",
    inputs: tuple[str, ...] = (),
    record: str | None,
    print_failures: Callable[[Summary, int | None], None],
) -> int:
    """Run ``args.processes`` children of ``verb`` (each given ``inputs``, and the ids of
    ``ids_file``), each a share of ``shard`` with its own record (``record`` with the
    share's name in it: ``shard_record``), under one bar; print one summary
    (``print_failures`` lists the failures, all or at most a number); the worst exit
    code."""
    console = Console(stderr=True, highlight=False)
    parent = _Parent(args, shard, console, verb=verb, inputs=inputs, record=record)
    count: int = args.processes
    title = f"aiotts {parent.verb}"
    rate = f"; each at most {args.rate:g} requests/s" if args.rate else ""
    console.print(
        f"aiotts: {count} processes, shards {parent.children[0].shard} to "
        f"{parent.children[-1].shard} (counted from 0); records "
        f"{_records_pattern(parent)}{rate}",
        markup=False,
        soft_wrap=True,
    )
    show = not args.quiet and not args.json and console.is_terminal
    description = "synthesizing" if parent.verb == "synthesize" else "fetching"
    with BatchProgress(console, total=None, description=description, enabled=show) as bar:
        codes = await _run_children(parent, ids_file, bar)
        bar.set_total(parent.summary.total)
        bar.update(_combined(parent.children, parent.summary, final=True), final=True)
    summary = parent.summary
    if args.quiet:
        print_failures(summary, None)
        print(summary_line(summary, title=title))
    elif not args.json:
        table = summary_table(
            summary, title=title, folder=args.out, manifest=_records_pattern(parent)
        )
        table.add_row("processes", str(count))
        Console(highlight=False).print(table)
        print_failures(summary, 10)
    return worst_exit_code(codes)


def _print_failures(summary: Summary, limit: int | None) -> None:
    from aiotts.cli._commands import print_failures

    print_failures(summary, limit=limit)


async def _run_children(parent: _Parent, ids_file: str | None, bar: BatchProgress) -> list[int]:
    for child in parent.children:
        try:
            await parent.start(child, ids_file)
        except BaseException:
            parent.terminate()
            raise
    pumps = [asyncio.ensure_future(parent.pump(child)) for child in parent.children]
    try:
        pending: set[asyncio.Future[int]] = set(pumps)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=_STATISTICS_EVERY)
            total = parent.total()
            if total is not None:
                bar.set_total(total)
            bar.update(_combined(parent.children, parent.summary))
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM) or failed: each child records what it has in
        # flight, and the parent leaves only once every child has ended.
        parent.terminate()
        _, pending = await asyncio.wait(pumps, timeout=GRACE_SECONDS)
        if pending:
            parent.kill()
            await asyncio.wait(pumps)
        raise
    return [pump.result() for pump in pumps]
