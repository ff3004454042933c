"""``aiotts synthesize FILE --out DIR``: texts in, one WAV file per text out.

The input is read twice: first whole, to check every line (a malformed line, an empty
text, a key that cannot be one, a duplicate key: a ``UsageError`` naming the line, exit 2,
before anything is sent), then streamed into ``client.synthesize``. Standard input is
first copied to an anonymous temporary file. The record is one store, ``DIR/aiotts.db``
by default: the ledger of texts and the outcomes of their tasks, so ``--resume`` after
Ctrl-C, a crash or SIGKILL sends no text twice and fetches no audio twice.

``--shard K/N`` (or ``auto``) takes only the texts whose key falls in shard K of N
(``shard_of(key, N)``, as ``fetch`` does for ids), with a ledger of its own,
``DIR/aiotts.shard-K-of-N.db``: the key names both the file and the ledger row, so N runs
given the same input write every file once and send every text once. Every run checks
the whole input, so a bad line stops each of them alike. ``--processes P`` runs P such
shards as child processes under one bar (``_processes``), after the parent checked the
input once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

import orjson
from rich.console import Console

from aiotts._admission import SeenIds
from aiotts._batch import BatchStatistics
from aiotts._config import Limits
from aiotts._errors import OutputError, SubmitUncertainError, UsageError
from aiotts._models import Outcome, OutcomeState, printable_id
from aiotts._shards import Shard
from aiotts._store import OutcomeStore, is_store_path
from aiotts._submit import DEFAULT_SUBMIT_CONCURRENCY
from aiotts._synthesize import Synthesis
from aiotts._texts import INPUT_FORMATS, TextLine, input_format, read_texts, shown_key
from aiotts.cli._commands import (
    DEFAULT_RECORD,
    make_client,
    run_batch,
    say_on_stderr,
)
from aiotts.cli._processes import run_in_processes
from aiotts.cli._progress import Summary, summary_line, summary_table
from aiotts.cli._sharding import (
    add_shard_arguments,
    array_warning,
    chosen_shard,
    shard_line,
    shard_record,
)
from aiotts.cli._text import shown

__all__ = ["EXAMPLES", "add_arguments", "drive_synthesis", "synthesize"]

EXAMPLES = """\
examples:
  aiotts synthesize texts.txt --out audio/          # one text a line; key = line number
  aiotts synthesize texts.jsonl --out audio/        # {"key": "intro", "text": "Hello"}
  aiotts synthesize texts.csv --out audio/ --key-column id --text-column sentence
  aiotts synthesize texts.txt --out audio/ --resume # after Ctrl-C or a crash
  cat texts.txt | aiotts synthesize - --format txt --out audio/ --json
  aiotts synthesize texts.txt --out /shared/audio --shard auto --shards 16  # a job array
  aiotts synthesize texts.txt --out audio/ --processes 4   # every core of this machine
"""


def add_arguments(
    parser: argparse.ArgumentParser,
    *,
    positive_int: Callable[[str], int],
    positive_float: Callable[[str], float],
) -> None:
    """The verb's own options (the connection options come from the parent parser)."""
    parser.add_argument(
        "file",
        metavar="FILE",
        help='the texts: .txt (one a line), .jsonl ({"key", "text"}), .csv (a header '
        "row); '-': standard input",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="the folder for the WAV files")
    parser.add_argument(
        "--format",
        choices=INPUT_FORMATS,
        help="the input's format (default: from FILE's suffix; txt for standard input)",
    )
    parser.add_argument("--key-column", default="key", metavar="NAME", help="CSV: the key column")
    parser.add_argument(
        "--text-column", default="text", metavar="NAME", help="CSV: the text column"
    )
    parser.add_argument(
        "--ledger",
        metavar="FILE",
        help="the store of texts and outcomes, a .db file (default: DIR/aiotts.db)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue a run: no text is sent twice"
    )
    parser.add_argument(
        "--resubmit-uncertain",
        action="store_true",
        help="with --resume: send again the texts whose submit may have reached the server "
        "without an id coming back (they may be billed twice)",
    )
    parser.add_argument(
        "--resubmit-missing",
        action="store_true",
        help="with --resume: send again the texts whose task the server no longer knows",
    )
    parser.add_argument(
        "--submits",
        type=positive_int,
        default=DEFAULT_SUBMIT_CONCURRENCY,
        metavar="N",
        help="send at most N texts at once",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=32,
        metavar="N",
        help="at most N requests in flight at once",
    )
    parser.add_argument(
        "--rate",
        type=positive_float,
        metavar="N",
        help="send at most N requests a second",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=3600.0,
        metavar="SECONDS",
        help="give up on a task that has not ended SECONDS after its submit",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        action="store_true",
        help="print one JSON line per text on standard output, and nothing else",
    )
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bar and no table: only failures and a one-line summary",
    )
    add_shard_arguments(parser, items="texts (by key)", record="ledger")


# -- the input ----------------------------------------------------------------------------------


def _open_input(name: str) -> IO[bytes]:
    """The input as a binary file that can be read twice (standard input is copied)."""
    if name == "-":
        spool = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by the caller
        shutil.copyfileobj(sys.stdin.buffer, spool)
        spool.seek(0)
        return spool
    try:
        return open(name, "rb")
    except OSError as exc:
        raise UsageError(f"cannot read the input {name}: {exc.strerror}") from None


def _checked(
    file: IO[bytes], name: str, args: argparse.Namespace, form: str, shard: Shard | None
) -> int:
    """Read the whole input once and check every text (those of other shards too, so
    every shard of one input refuses it alike); the number of texts in ``shard``."""
    seen = SeenIds()
    first_line: dict[str, int] = {}
    count = 0
    everything = 0
    try:
        for item in _lines(file, name, args, form):
            if seen.first_sighting(item.key) is None:
                earlier = first_line.get(item.key)
                where = f" (first on line {earlier})" if earlier is not None else ""
                raise UsageError(
                    f"{name}, line {item.line}: the key {shown(shown_key(item.key))} appears "
                    f"again{where}: give each text its own key"
                )
            everything += 1
            if shard is None or shard.holds(item.key):
                count += 1
    finally:
        seen.close()
    if everything == 0:
        raise UsageError(f"{name} holds no texts")
    return count  # a shard may hold none of a few texts: nothing to do, not an error


def _lines(file: IO[bytes], name: str, args: argparse.Namespace, form: str) -> Iterator[TextLine]:
    file.seek(0)
    return read_texts(file, name, form, key_column=args.key_column, text_column=args.text_column)


def _pairs(
    file: IO[bytes], name: str, args: argparse.Namespace, form: str, shard: Shard | None
) -> Iterator[tuple[str, str]]:
    """The ``(key, text)`` pairs of ``shard`` (every one for None), streamed."""
    for item in _lines(file, name, args, form):
        if shard is None or shard.holds(item.key):
            yield item.key, item.text


def _check_ledger(path: str, *, resume: bool) -> None:
    """Without ``--resume``, a ledger that already records texts is refused at once."""
    if resume or not os.path.exists(path):
        return
    with OutcomeStore(path) as store:
        earlier = next(store.ledger(), None)
    if earlier is not None:
        raise UsageError(
            f"{path} already records texts of an earlier run: pass --resume to continue it "
            "(nothing is sent twice), or choose another --out or --ledger"
        )


# -- the run ------------------------------------------------------------------------------------


def outcome_json(outcome: Outcome) -> bytes:
    return orjson.dumps(
        {
            "key": outcome.key,
            "id": printable_id(outcome.task_id) if outcome.task_id else None,
            "state": outcome.state.value,
            "files": [str(path) for path in outcome.files],
            "bytes": outcome.bytes_written,
            "error": outcome.error,
            "messages": list(outcome.messages),
            "warnings": list(outcome.warnings),
            "resumed": outcome.resumed,
            "uncertain": isinstance(outcome.cause, SubmitUncertainError),
        }
    )


def _shown_statistics(synthesis: Synthesis) -> BatchStatistics:
    """The batch's statistics, with the texts that got no task counted as ended."""
    statistics = synthesis.statistics()
    if not synthesis.without_task:
        return statistics
    states = dict(statistics.states)
    states[OutcomeState.ABORTED.value] = states.get(OutcomeState.ABORTED.value, 0) + (
        synthesis.without_task
    )
    return dataclasses.replace(statistics, states=states)


async def drive_synthesis(
    synthesis: Synthesis,
    *,
    total: int,
    json_lines: bool,
    show_progress: bool,
    statistics_lines: bool = False,
) -> Summary:
    """Drive a synthesis as ``fetch`` drives a batch (``run_batch``), its bar showing the
    texts submitted first; ``statistics_lines`` (a child of ``--processes``) adds its
    statistics among the JSON lines."""
    return await run_batch(
        synthesis,
        total=total,
        description="synthesizing",
        json_lines=json_lines,
        show_progress=show_progress,
        statistics_lines=statistics_lines,
        shown=lambda: _shown_statistics(synthesis),
        submitted=lambda: synthesis.submitted,
        to_json=outcome_json,
    )


def _failure_line(outcome: Outcome) -> str:
    key = shown(shown_key(outcome.key or ""), 100)
    return f"{key}: {outcome.state.value}: {shown(outcome.error or '')}"


def _print_failures(summary: Summary, limit: int | None) -> None:
    failures = summary.failures if limit is None else summary.failures[:limit]
    for outcome in failures:
        say_on_stderr(_failure_line(outcome))
    if len(summary.failures) > len(failures):
        say_on_stderr(f"... and {len(summary.failures) - len(failures)} more (see the ledger)")


def _uncertain(summary: Summary) -> int:
    return sum(1 for outcome in summary.failures if isinstance(outcome.cause, SubmitUncertainError))


async def synthesize(args: argparse.Namespace) -> int:
    if (args.resubmit_uncertain or args.resubmit_missing) and not args.resume:
        raise UsageError("--resubmit-uncertain and --resubmit-missing go with --resume")
    args.interrupted = (
        "interrupted: every text sent and every task in flight was recorded; run the same "
        "command with --resume to continue"
    )
    shard = chosen_shard(args)
    if shard is None and (warning := array_warning(takes="sends every text")) is not None:
        say_on_stderr(warning)
    name = "standard input" if args.file == "-" else args.file
    form = input_format("" if args.file == "-" else args.file, args.format)
    if args.ledger is not None and not is_store_path(args.ledger):
        raise UsageError(f"--ledger {args.ledger} must be a store: a file ending in .db")
    if args.processes is not None:
        return await _in_processes(args, shard, name, form)
    if shard is None:
        ledger = args.ledger or os.path.join(args.out, DEFAULT_RECORD)
    else:
        ledger = shard_record(args.ledger, args.out, shard)
    with _open_input(args.file) as file:
        total = _checked(file, name, args, form, shard)
        try:
            os.makedirs(args.out, exist_ok=True)
        except OSError as exc:
            raise OutputError(
                f"cannot create the folder {args.out}: {exc.strerror}", path=args.out
            ) from None
        _check_ledger(ledger, resume=args.resume)
        if shard is not None and not args.progress_lines:
            say_on_stderr(shard_line(shard, ledger, kind="ledger"))
        limits = Limits(polls=args.concurrency, rate=args.rate)
        async with make_client(args, limits=limits) as client:
            synthesis = client.synthesize(
                _pairs(file, name, args, form, shard),
                args.out,
                ledger=ledger,
                resume=args.resume,
                resubmit_uncertain=args.resubmit_uncertain,
                resubmit_missing=args.resubmit_missing,
                task_timeout=args.timeout,
                concurrency=args.submits,
            )
            summary = await drive_synthesis(
                synthesis,
                total=total,
                json_lines=args.json,
                show_progress=not args.quiet,
                statistics_lines=args.progress_lines,
            )
    if args.quiet:
        _print_failures(summary, None)
        print(summary_line(summary, title="aiotts synthesize"))
    elif not args.json:
        Console(highlight=False).print(
            summary_table(summary, title="aiotts synthesize", folder=args.out, manifest=ledger)
        )
        _print_failures(summary, 10)
    uncertain = _uncertain(summary)
    if uncertain:
        say_on_stderr(
            f"aiotts: {uncertain} texts may have reached the server without an id coming back "
            "(they may be billed); --resume --resubmit-uncertain sends them again"
        )
        return 6
    return 0 if summary.done == summary.total else 1


def _spooled(file: IO[bytes]) -> str:
    """Standard input (already copied to ``file``) in a named file every child can read."""
    with tempfile.NamedTemporaryFile("wb", prefix="aiotts-texts-", delete=False) as named:
        file.seek(0)
        shutil.copyfileobj(file, named, 1 << 20)
    return named.name


async def _in_processes(args: argparse.Namespace, shard: Shard | None, name: str, form: str) -> int:
    """``--processes P``: the input checked once here, then P children, each
    ``synthesize --shard`` of one share with a ledger of its own."""
    if args.progress_lines:
        raise UsageError("--processes is for the parent, not for one of its children")
    with _open_input(args.file) as file:
        _checked(file, name, args, form, shard)
        source = _spooled(file) if args.file == "-" else args.file
    try:
        inputs = ("--format", form, "--", source)
        return await run_in_processes(
            args,
            shard,
            None,
            verb="synthesize",
            inputs=inputs,
            record=args.ledger,
            print_failures=_print_failures,
        )
    finally:
        if source != args.file:
            with contextlib.suppress(OSError):
                os.unlink(source)
