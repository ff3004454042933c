"""The verbs of the command line: fetch, submit, say, status, cancel."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import anyio
import orjson
from rich.console import Console

from aiotts._admission import TaskIds
from aiotts._batch import BatchStatistics
from aiotts._client import TTSClient
from aiotts._config import DEFAULT_RETRY, Limits
from aiotts._context import log_task_id
from aiotts._errors import TaskNotFoundError, UsageError
from aiotts._models import Outcome, TaskStatus, printable_id
from aiotts._shards import Shard, take_shard, take_shard_async
from aiotts._store import OutcomeStore
from aiotts.cli._credentials import find_credentials
from aiotts.cli._processes import fetch_in_processes, write_statistics
from aiotts.cli._progress import BatchProgress, Summary, summary_line, summary_table
from aiotts.cli._sharding import array_warning, chosen_shard, shard_line, shard_record
from aiotts.cli._text import shown, shown_id

__all__ = ["cancel", "fetch", "make_client", "say", "status", "submit"]

DEFAULT_RECORD = "aiotts.db"
"""The record a fetch keeps in its output folder unless ``--manifest`` names another."""
OLD_DEFAULT_MANIFEST = "manifest.jsonl"
"""What earlier versions kept there: imported into the store once, when present."""


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def say_on_stderr(line: str) -> None:
    """One whole line on standard error, never wrapped (a log keeps it as one line)."""
    print(line, file=sys.stderr, flush=True)


def make_client(
    args: argparse.Namespace, *, limits: Limits | None = None, durable: bool = False
) -> TTSClient:
    """A client configured from the connection options and the credentials' sources."""
    options: dict[str, Any] = {
        "retry": dataclasses.replace(DEFAULT_RETRY, max_attempts=args.retries + 1),
        # None: the library's own precedence, $AIOTTS_BASE_URL then the service's address
        "base_url": args.base_url,
        "token_url": args.token_url,
        "ca_file": args.ca_file,
        "allow_insecure_http": args.allow_insecure_http,
        "durable": durable,
    }
    if limits is not None:
        options["limits"] = limits
    if args.trial:
        return TTSClient(trial=True, **options)
    credentials = find_credentials(args.credentials_file)
    if credentials is None:
        raise UsageError(
            "no credentials: set ASPOSE_CLIENT_ID and ASPOSE_CLIENT_SECRET, or pass "
            "--credentials-file FILE, or use --trial"
        )
    if credentials.warning:
        say_on_stderr(f"aiotts: warning: {shown(credentials.warning)}")
    return TTSClient(credentials.client_id, credentials.client_secret, **options)


# -- fetch -----------------------------------------------------------------------------------


def _line_id(raw: bytes) -> str | None:
    """The id on one line, or None for a blank line. Bytes that are not UTF-8 are kept as
    surrogates, so such an id is reported (and refused) rather than silently changed."""
    line = raw.decode("utf-8", "surrogateescape").strip()
    return line or None


def _ids_from_file(name: str) -> Iterator[str]:
    try:
        with open(name, "rb") as file:
            for raw in file:
                task_id = _line_id(raw)
                if task_id is not None:
                    yield task_id
    except OSError as exc:
        raise UsageError(f"cannot read the ids file {name}: {exc.strerror}") from None


async def _ids_from_stdin(first: list[str]) -> AsyncIterator[str]:
    """Ids from standard input, read in a worker thread: a slow pipe must not stall the
    event loop (and every request in flight) while it waits for the next line."""
    for task_id in first:
        yield task_id
    readline = sys.stdin.buffer.readline
    while raw := await anyio.to_thread.run_sync(readline):
        line_id = _line_id(raw)
        if line_id is not None:
            yield line_id


def _distinct(ids: Iterable[str]) -> int:
    """How many distinct ids (the batch fetches and reports each once); 8 bytes an id."""
    seen = {
        hashlib.blake2b(i.encode("utf-8", "surrogatepass"), digest_size=8).digest() for i in ids
    }
    return len(seen)


def _ids_and_total(
    args: argparse.Namespace, shard: Shard | None = None
) -> tuple[TaskIds, int | None]:
    """The ids to fetch (only those of ``shard``, when given) and how many distinct ones."""
    if args.ids_file is None:
        if not args.ids:
            raise UsageError("no task ids: give them as arguments or with --ids-file FILE")
        mine = list(take_shard(args.ids, shard))
        return mine, _distinct(mine)
    if args.ids_file == "-":
        return take_shard_async(_ids_from_stdin(list(args.ids)), shard), None
    if not Path(args.ids_file).is_file():
        raise UsageError(f"the ids file {args.ids_file} does not exist")

    def both() -> Iterator[str]:
        yield from args.ids
        yield from _ids_from_file(args.ids_file)

    if shard is None:
        total = _distinct(both())
    elif next(iter(both()), None) is None:
        total = 0
    else:
        total = _distinct(take_shard(both(), shard))
        if total == 0:  # a shard may hold none of a few ids: nothing to do, not an error
            return [], 0
    if total == 0:
        raise UsageError(f"the ids file {args.ids_file} holds no ids; put one id per line")
    return take_shard(both(), shard), total


def outcome_json(outcome: Outcome) -> bytes:
    return orjson.dumps(
        {
            "id": printable_id(outcome.task_id),
            "state": outcome.state.value,
            "files": [str(path) for path in outcome.files],
            "bytes": outcome.bytes_written,
            "error": outcome.error,
            "messages": list(outcome.messages),
            "warnings": list(outcome.warnings),
            "resumed": outcome.resumed,
        }
    )


class Driven(Protocol):
    """What the command line drives: a batch of ids, or a synthesis of texts."""

    def statistics(self) -> BatchStatistics: ...
    def cancel(self) -> None: ...
    def __aiter__(self) -> AsyncIterator[Outcome]: ...
    async def __aenter__(self) -> Any: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...


async def run_batch(
    batch: Driven,
    *,
    total: int | None,
    description: str,
    json_lines: bool,
    show_progress: bool = True,
    console: Console | None = None,
    statistics_lines: bool = False,
    shown: Callable[[], BatchStatistics] | None = None,
    submitted: Callable[[], int] | None = None,
    to_json: Callable[[Outcome], bytes] = outcome_json,
) -> Summary:
    """Drive a batch with a progress bar (on a terminal) and JSON lines (if asked).

    The bar is not drawn with ``json_lines``: standard output then goes to a program that
    may print to the same terminal, and the bar's redraws would erase its lines. Whatever
    stops the batch is raised as itself (never wrapped in a group). ``statistics_lines``
    (a child of ``--processes``) adds the batch's statistics among the JSON lines.
    ``shown`` gives the bar's counts (default: the batch's statistics), ``submitted`` the
    texts with a task so far (a synthesis), ``to_json`` each outcome's line.
    """
    shown = shown or batch.statistics
    console = console or stderr_console()
    out = sys.stdout.buffer
    enabled = show_progress and not json_lines and console.is_terminal
    with BatchProgress(console, total=total, description=description, enabled=enabled) as bar:

        async def tick() -> None:
            while True:
                bar.update(shown(), submitted=submitted() if submitted else None)
                await anyio.sleep(0.25)

        # A plain task, not a task group: an error from the batch leaves ``async for``
        # as itself, and the ticker only ever reads statistics.
        ticker = asyncio.create_task(tick()) if enabled else None
        if statistics_lines:
            ticker = asyncio.create_task(write_statistics(batch, out, total))
        try:
            async with batch:
                async for outcome in batch:
                    bar.add(outcome)
                    if json_lines:
                        out.write(to_json(outcome) + b"\n")
                        out.flush()
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        # the exact final counts
        bar.update(shown(), final=True, submitted=submitted() if submitted else None)
    return bar.summary


def failure_line(outcome: Outcome) -> str:
    return f"{shown_id(outcome.task_id)}: {outcome.state.value}: {shown(outcome.error or '')}"


def print_failures(summary: Summary, *, limit: int | None = 10) -> None:
    """The failures on standard error, one whole line each."""
    failures = summary.failures if limit is None else summary.failures[:limit]
    for outcome in failures:
        say_on_stderr(failure_line(outcome))
    if len(summary.failures) > len(failures):
        say_on_stderr(f"... and {len(summary.failures) - len(failures)} more (see the manifest)")


def print_summary(summary: Summary, *, title: str, folder: str, manifest: str | None) -> None:
    console = Console(highlight=False)
    console.print(summary_table(summary, title=title, folder=folder, manifest=manifest))
    print_failures(summary)


def default_record(folder: str) -> str:
    """``DIR/aiotts.db``; a ``DIR/manifest.jsonl`` that an earlier version wrote is imported
    into it first (once: an unchanged manifest is not read again), so a resume skips what
    it records."""
    record = os.path.join(folder, DEFAULT_RECORD)
    old = os.path.join(folder, OLD_DEFAULT_MANIFEST)
    if os.path.lexists(old):
        with OutcomeStore(record) as store:
            store.import_jsonl(old)
    return record


async def fetch(args: argparse.Namespace) -> int:
    if args.retry_failed and not args.resume:
        raise UsageError("--retry-failed goes with --resume")
    if args.quiet and args.json:
        raise UsageError("--quiet and --json do not go together: --json prints only JSON lines")
    shard = chosen_shard(args)
    if shard is None and (warning := array_warning()) is not None:
        say_on_stderr(warning)
    if args.processes is not None:
        return await fetch_in_processes(args, shard)
    ids, total = _ids_and_total(args, shard)
    if shard is None:
        manifest = args.manifest or default_record(args.out)
    else:
        manifest = shard_record(args.manifest, args.out, shard)
        if not args.progress_lines:
            say_on_stderr(shard_line(shard, manifest))
    limits = Limits(polls=args.concurrency, rate=args.rate)
    async with make_client(args, limits=limits, durable=args.durable) as client:
        batch = client.fetch_many(
            ids,
            args.out,
            task_timeout=args.timeout,
            batch_timeout=args.batch_timeout,
            manifest=manifest,
            resume=args.resume,
            retry_failed=args.retry_failed,
        )
        summary = await run_batch(
            batch,
            total=total,
            description="fetching",
            json_lines=args.json,
            show_progress=not args.quiet,
            statistics_lines=args.progress_lines,
        )
    if summary.total == 0 and shard is None:
        raise UsageError("no task ids were given")
    if args.quiet:
        print_failures(summary, limit=None)
        print(summary_line(summary, title="aiotts fetch"))
    elif not args.json:
        print_summary(summary, title="aiotts fetch", folder=args.out, manifest=manifest)
    return 0 if summary.done == summary.total else 1


# -- single tasks ------------------------------------------------------------------------------


def _text(args: argparse.Namespace) -> str:
    if args.file is not None and args.text is not None:
        raise UsageError("give the text or --file, not both")
    if args.file is None:
        if args.text is None:
            raise UsageError("no text: give it as an argument or with --file FILE")
        return str(args.text)
    try:
        if args.file == "-":
            return sys.stdin.read()
        return Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the text file {args.file}: {exc}") from None


_INTERRUPTED_SUBMIT = (
    "interrupted while submitting: the text may have reached the server (it may be billed), "
    "but no task id came back"
)


def _fetch_later(task_id: str, folder: str) -> str:
    """What Ctrl-C after a submit says: the id (the task may be billed) and how to get it."""
    return (
        f"interrupted: task {shown_id(task_id)} was submitted (it may be billed); "
        f"fetch its audio later with: aiotts fetch {shown_id(task_id)} --out {shown(folder)}"
    )


def _wait_folder(out: str) -> str:
    """``--out DIR`` names a folder even when it does not exist yet: a trailing separator
    makes the saved file DIR/ID.wav, never a file named DIR.wav."""
    return os.path.join(out, "")


async def submit(args: argparse.Namespace) -> int:
    text = _text(args)
    if args.out is not None and not args.wait:
        raise UsageError("--out goes with --wait")
    folder = args.out or "."
    async with make_client(args) as client:
        args.interrupted = _INTERRUPTED_SUBMIT
        task_id = await client.submit(text)
        print(task_id, flush=True)
        if args.wait:
            args.interrupted = _fetch_later(task_id, folder)
            saved = await client.wait(task_id, _wait_folder(folder), timeout=args.timeout)
            for path in saved.files:
                print(path)
    return 0


async def say(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        args.interrupted = _INTERRUPTED_SUBMIT
        task_id = await client.submit(args.text)
        args.interrupted = _fetch_later(task_id, os.path.dirname(args.output) or ".")
        saved = await client.wait(task_id, args.output, timeout=args.timeout)
    for path in saved.files:
        print(path)
    return 0


async def status(args: argparse.Namespace) -> int:
    log_task_id.set(args.id)
    async with make_client(args) as client:
        result = await client.status(args.id, timeout=args.timeout)
    if args.json:
        line = {
            "id": printable_id(result.task_id),
            "taskStatus": result.status.value,
            "responseStatusCode": result.response_code,
            "messages": list(result.messages),
            "warnings": list(result.warnings),
        }
        sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    else:
        print(f"{shown_id(result.task_id)}\t{result.status.value}")
        for message in result.messages:
            print(f"  error: {shown(message)}")
        for warning in result.warnings:
            print(f"  warning: {shown(warning)}")
    return 0


async def cancel(args: argparse.Namespace) -> int:
    """Cancel a task, and say what the server answered.

    The server answers a cancel with an empty 200 whether it knew the id or not, so the
    status is asked before (an unknown id is reported, exit 1, and no cancel is sent) and
    after (the task must now be ``NotExist``).
    """
    task_id = args.id
    log_task_id.set(task_id)
    async with make_client(args) as client:
        before = await client.status(task_id, timeout=args.timeout)
        if before.status is TaskStatus.NOT_EXIST:
            raise TaskNotFoundError(
                f"the server knows no task {shown_id(task_id)} (unknown, already cancelled, or "
                "older than 24 hours): nothing was cancelled",
                task_id=task_id,
            )
        await client.cancel(task_id, timeout=args.timeout)
        after = await client.status(task_id, timeout=args.timeout)
    if after.status is not TaskStatus.NOT_EXIST:
        print(
            f"cancel sent for {shown_id(task_id)} (it was {before.status.value}), but the server "
            f"still reports it as {after.status.value}"
        )
        return 1
    print(f"cancelled {shown_id(task_id)} (it was {before.status.value}; now NotExist)")
    return 0
