"""The ``report`` verb: what one or more records hold, one line per id, and a summary."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections import Counter

import orjson
from rich.console import Console
from rich.table import Table

from aiotts._errors import OutputError
from aiotts._models import OutcomeState
from aiotts._store import merged_records

__all__ = ["report"]


def _require_files(paths: list[str]) -> None:
    for path in paths:
        if not os.path.isfile(path):
            raise OutputError(
                f"no record at {path}: give the store (DIR/aiotts.db) or JSONL manifest that "
                "a fetch wrote",
                path=path,
                errno=errno.ENOENT,
            )


def _summary_table(counts: Counter[str], paths: list[str]) -> Table:
    table = Table(title="aiotts report", title_justify="left")
    table.add_column("state")
    table.add_column("ids", justify="right")
    for state in OutcomeState:
        if counts[state.value]:
            table.add_row(state.value, f"{counts[state.value]:,}")
    table.add_row("total", f"{sum(counts.values()):,}", style="bold")
    table.caption = "records: " + ", ".join(paths)
    table.caption_justify = "left"
    return table


async def report(args: argparse.Namespace) -> int:
    """Merge the records (later ones win per id, as a resume would read them); with
    ``--json`` print each id's last line on standard output, as the JSONL manifest held
    it; always a count per state (on standard error with ``--json``)."""
    paths: list[str] = list(args.records)
    _require_files(paths)
    counts: Counter[str] = Counter()
    out = sys.stdout.buffer
    for state, line in merged_records(paths):
        counts[state] += 1
        if args.json:
            out.write(line + b"\n")
    if args.json:
        out.flush()
        summary = {"records": paths, "states": dict(counts), "total": sum(counts.values())}
        print(orjson.dumps(summary).decode(), file=sys.stderr)
    else:
        Console(highlight=False).print(_summary_table(counts, paths))
    return 0
