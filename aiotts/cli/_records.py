"""The ``report`` verb: what one or more records hold, merged, with the ids left to retry.

Records (SQLite stores and JSONL manifests, of shards, processes or runs, in any mix) are
merged as a resume reads a record: the last word per id wins, later records after earlier
ones. Memory stays flat whatever the number of ids: the merge is an on-disk table
(``_store.merged_records``) and the ids to retry wait in a temporary file.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from rich.console import Console
from rich.table import Table

from aiotts._errors import OutputError, UsageError
from aiotts._models import OutcomeState
from aiotts._store import merged_records
from aiotts.cli._text import shown, shown_id

__all__ = ["RETRIED_ON_RESUME", "RETRIED_WITH_RETRY_FAILED", "RecordSummary", "report"]

MB = 1_000_000

RETRIED_ON_RESUME = frozenset({OutcomeState.ABORTED, OutcomeState.EXPIRED, OutcomeState.CANCELLED})
"""States that ``fetch --resume`` asks about again."""
RETRIED_WITH_RETRY_FAILED = frozenset({OutcomeState.FAILED, OutcomeState.MISSING})
"""The server's definite answers: asked about again only with ``--retry-failed`` too."""

_SHOWN_RETRIES = 10


def _require_files(paths: list[str]) -> None:
    for path in paths:
        if not os.path.isfile(path):
            raise OutputError(
                f"no record at {path}: give the store (DIR/aiotts.db) or JSONL manifest that "
                "a fetch wrote",
                path=path,
                errno=errno.ENOENT,
            )


@dataclass
class RecordSummary:
    """Counts, bytes (``sizes``) and times per state of merged records, and the ids left
    to retry (in a temporary file, one JSON line each: id, state, error)."""

    records: list[str]
    states: Counter[str] = field(default_factory=Counter)
    sizes: Counter[str] = field(default_factory=Counter)
    first: float = math.inf
    last: float = -math.inf
    retry: int = 0
    retry_failed: int = 0
    # Closed by ``close``: the summary outlives any one ``with`` block.
    retries: IO[bytes] = field(
        default_factory=lambda: tempfile.TemporaryFile("w+b")  # noqa: SIM115
    )

    def add(self, state: str, line: bytes) -> None:
        data: dict[str, Any] = orjson.loads(line)
        self.states[state] += 1
        self.sizes[state] += int(data.get("bytes") or 0)
        moment = data.get("time")
        if isinstance(moment, int | float) and moment > 0:
            self.first = min(self.first, float(moment))
            self.last = max(self.last, float(moment))
        kind = OutcomeState(state)
        if kind in RETRIED_ON_RESUME:
            self.retry += 1
        elif kind in RETRIED_WITH_RETRY_FAILED:
            self.retry_failed += 1
        else:
            return
        note = {"id": data.get("id"), "state": state, "error": data.get("error")}
        self.retries.write(orjson.dumps(note) + b"\n")

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    def retry_notes(self, *, with_failed: bool) -> Iterator[dict[str, Any]]:
        """The ids to retry, in the order merged: those ``--resume`` asks again, and with
        ``with_failed`` also those only ``--retry-failed`` asks again."""
        self.retries.flush()
        self.retries.seek(0)
        for raw in self.retries:
            note: dict[str, Any] = orjson.loads(raw)
            if with_failed or OutcomeState(note["state"]) in RETRIED_ON_RESUME:
                yield note

    def as_json(self) -> dict[str, Any]:
        known = self.first <= self.last
        return {
            "records": self.records,
            "states": dict(self.states),
            "total": self.total,
            "bytes": dict(self.sizes),
            "total_bytes": self.total_bytes,
            "first": round(self.first, 3) if known else None,
            "last": round(self.last, 3) if known else None,
            "seconds": round(self.last - self.first, 3) if known else None,
            "retry": self.retry,
            "retry_failed": self.retry_failed,
        }

    def close(self) -> None:
        self.retries.close()


def summarize(paths: list[str], lines_out: IO[bytes] | None = None) -> RecordSummary:
    """Merge the records at ``paths``; every id's last line also goes to ``lines_out``."""
    _require_files(paths)
    summary = RecordSummary(paths)
    try:
        for state, line in merged_records(paths):
            summary.add(state, line)
            if lines_out is not None:
                lines_out.write(line + b"\n")
    except BaseException:
        summary.close()
        raise
    return summary


def _when(moment: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))


def _summary_table(summary: RecordSummary) -> Table:
    table = Table(title="aiotts report", title_justify="left")
    table.add_column("state")
    table.add_column("ids", justify="right")
    table.add_column("MB", justify="right")
    for state in OutcomeState:
        if summary.states[state.value]:
            table.add_row(
                state.value,
                f"{summary.states[state.value]:,}",
                f"{summary.sizes[state.value] / MB:,.1f}",
            )
    table.add_row("total", f"{summary.total:,}", f"{summary.total_bytes / MB:,.1f}", style="bold")
    caption = ["records: " + ", ".join(shown(p) for p in summary.records)]
    if summary.first <= summary.last:
        caption.append(
            f"outcomes from {_when(summary.first)} to {_when(summary.last)} "
            f"({summary.last - summary.first:,.0f} s)"
        )
    table.caption = "\n".join(caption)
    table.caption_justify = "left"
    return table


def _retry_lines(summary: RecordSummary, paths: Iterable[str]) -> Iterator[str]:
    """What the text report says about the ids left to retry."""
    if not summary.retry and not summary.retry_failed:
        return
    if summary.retry:
        yield (
            f"{summary.retry:,} ids to retry (aborted, expired or cancelled): fetch --resume "
            "asks them again"
        )
    if summary.retry_failed:
        yield (
            f"{summary.retry_failed:,} ids the server failed or did not know: fetch --resume "
            "--retry-failed asks them again"
        )
    shown_notes = 0
    for note in summary.retry_notes(with_failed=True):
        if shown_notes == _SHOWN_RETRIES:
            break
        shown_notes += 1
        yield f"  {shown_id(str(note['id']))}: {note['state']}: {shown(note['error'] or '')}"
    rest = summary.retry + summary.retry_failed - shown_notes
    records = " ".join(shown(p) for p in paths)
    if rest:
        yield f"  ... and {rest:,} more"
    yield f"the ids, one a line: aiotts report {records} --retry-ids [--retry-failed]"


async def report(args: argparse.Namespace) -> int:
    """Merge the records (later ones win per id, as a resume would read them): a table per
    state (ids, MB, when) and the ids left to retry; ``--json``: each id's last line on
    standard output and the summary on standard error; ``--summary``: the summary alone on
    standard output; ``--retry-ids``: the ids to retry alone, one a line."""
    paths: list[str] = list(args.records)
    if args.retry_failed and not args.retry_ids:
        raise UsageError("--retry-failed goes with --retry-ids")
    out = sys.stdout.buffer
    summary = summarize(paths, out if args.json else None)
    try:
        if args.json:
            out.flush()
            print(orjson.dumps(summary.as_json()).decode(), file=sys.stderr)
        elif args.summary:
            out.write(orjson.dumps(summary.as_json()) + b"\n")
            out.flush()
        elif args.retry_ids:
            for note in summary.retry_notes(with_failed=args.retry_failed):
                out.write(str(note["id"]).encode("utf-8", "surrogatepass") + b"\n")
            out.flush()
        else:
            Console(highlight=False).print(_summary_table(summary))
            for line in _retry_lines(summary, paths):
                print(line, file=sys.stderr)
    finally:
        summary.close()
    return 0
