"""The verbs of the command line: fetch, submit, say, status, cancel."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import orjson
from rich.console import Console

from aiotts._admission import TaskIds
from aiotts._batch import Batch
from aiotts._client import TTSClient
from aiotts._config import DEFAULT_BASE_URL, Limits
from aiotts._errors import UsageError
from aiotts._models import Outcome, printable_id
from aiotts.cli._credentials import find_credentials
from aiotts.cli._progress import BatchProgress, Summary, summary_table

__all__ = ["cancel", "fetch", "make_client", "say", "status", "submit"]

DEFAULT_MANIFEST = "manifest.jsonl"


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False)


def make_client(
    args: argparse.Namespace, *, limits: Limits | None = None, durable: bool = False
) -> TTSClient:
    """A client configured from the connection options and the credentials' sources."""
    base_url = args.base_url or os.environ.get("AIOTTS_BASE_URL") or DEFAULT_BASE_URL
    options = {
        "base_url": base_url,
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
        print(f"aiotts: warning: {credentials.warning}", file=sys.stderr)
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


def _ids_and_total(args: argparse.Namespace) -> tuple[TaskIds, int | None]:
    if args.ids_file is None:
        if not args.ids:
            raise UsageError("no task ids: give them as arguments or with --ids-file FILE")
        return list(args.ids), len(set(args.ids))
    if args.ids_file == "-":
        return _ids_from_stdin(list(args.ids)), None
    if not Path(args.ids_file).is_file():
        raise UsageError(f"the ids file {args.ids_file} does not exist")
    total = sum(1 for _ in _ids_from_file(args.ids_file)) + len(args.ids)
    if total == 0:
        raise UsageError(f"the ids file {args.ids_file} holds no ids; put one id per line")

    def both() -> Iterator[str]:
        yield from args.ids
        yield from _ids_from_file(args.ids_file)

    return both(), total


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


async def run_batch(
    batch: Batch, *, total: int | None, description: str, json_lines: bool
) -> Summary:
    """Drive a batch with a progress bar (on a terminal) and JSON lines (if asked)."""
    console = stderr_console()
    out = sys.stdout.buffer
    with BatchProgress(console, total=total, description=description) as progress:
        async with batch, anyio.create_task_group() as ticker:

            async def tick() -> None:
                while True:
                    progress.tick(batch.statistics())
                    await anyio.sleep(0.25)

            ticker.start_soon(tick)
            async for outcome in batch:
                progress.add(outcome)
                if json_lines:
                    out.write(outcome_json(outcome) + b"\n")
                    out.flush()
            ticker.cancel_scope.cancel()
    return progress.summary


def print_summary(summary: Summary, *, title: str, folder: str, manifest: str | None) -> None:
    console = Console(highlight=False)
    console.print(summary_table(summary, title=title, folder=folder, manifest=manifest))
    errors = stderr_console()
    for outcome in summary.failures[:10]:
        errors.print(
            f"{printable_id(outcome.task_id)}: {outcome.state.value}: {outcome.error}",
            markup=False,
        )
    if len(summary.failures) > 10:
        errors.print(f"... and {len(summary.failures) - 10} more (see the manifest)")


async def fetch(args: argparse.Namespace) -> int:
    if args.retry_failed and not args.resume:
        raise UsageError("--retry-failed goes with --resume")
    ids, total = _ids_and_total(args)
    manifest = args.manifest or os.path.join(args.out, DEFAULT_MANIFEST)
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
        summary = await run_batch(batch, total=total, description="fetching", json_lines=args.json)
    if summary.total == 0:
        raise UsageError("no task ids were given")
    if not args.json:
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


async def submit(args: argparse.Namespace) -> int:
    text = _text(args)
    if args.out is not None and not args.wait:
        raise UsageError("--out goes with --wait")
    async with make_client(args) as client:
        task_id = await client.submit(text)
        print(task_id, flush=True)
        if args.wait:
            saved = await client.wait(task_id, args.out or ".", timeout=args.timeout)
            for path in saved.files:
                print(path)
    return 0


async def say(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        task_id = await client.submit(args.text)
        saved = await client.wait(task_id, args.output, timeout=args.timeout)
    for path in saved.files:
        print(path)
    return 0


async def status(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        result = await client.status(args.id)
    if args.json:
        line = {
            "id": result.task_id,
            "taskStatus": result.status.value,
            "responseStatusCode": result.response_code,
            "messages": list(result.messages),
            "warnings": list(result.warnings),
        }
        sys.stdout.buffer.write(orjson.dumps(line) + b"\n")
    else:
        print(f"{result.task_id}\t{result.status.value}")
        for message in result.messages:
            print(f"  error: {message}")
        for warning in result.warnings:
            print(f"  warning: {warning}")
    return 0


async def cancel(args: argparse.Namespace) -> int:
    async with make_client(args) as client:
        await client.cancel(args.id)
    print(f"cancelled {args.id}")
    return 0
