"""What a person sees while a batch runs, and the summary after it."""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from aiotts._batch import BatchStatistics
from aiotts._models import Outcome, OutcomeState

__all__ = ["BatchProgress", "Summary", "summary_table"]

MB = 1_000_000


class Summary:
    """Counts outcomes as they arrive; the numbers of the summary table."""

    def __init__(self) -> None:
        self.states: Counter[OutcomeState] = Counter()
        self.resumed = 0
        self.bytes_written = 0
        self.started = time.monotonic()
        self.failures: list[Outcome] = []

    def add(self, outcome: Outcome) -> None:
        self.states[outcome.state] += 1
        if outcome.resumed:
            self.resumed += 1
        else:
            self.bytes_written += outcome.bytes_written
        if not outcome.ok:
            self.failures.append(outcome)

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def done(self) -> int:
        return self.states[OutcomeState.DONE]

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.started, 1e-9)


class BatchProgress:
    """A rich progress bar on standard error, when it is a terminal; otherwise nothing."""

    def __init__(self, console: Console, *, total: int | None, description: str) -> None:
        self._enabled = console.is_terminal
        self._summary = Summary()
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[done]} done[/] [red]{task.fields[failed]} failed[/] "
                "{task.fields[in_flight]} in flight"
            ),
            TextColumn("{task.fields[mb]:.1f} MB {task.fields[rate]:.0f}/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
            refresh_per_second=8,
            disable=not self._enabled,
        )
        self._task: TaskID = self._progress.add_task(
            description, total=total, done=0, failed=0, in_flight=0, mb=0.0, rate=0.0
        )

    @property
    def summary(self) -> Summary:
        return self._summary

    def __enter__(self) -> BatchProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def add(self, outcome: Outcome) -> None:
        summary = self._summary
        summary.add(outcome)
        self._progress.update(
            self._task,
            completed=summary.total,
            done=summary.done,
            failed=summary.total - summary.done,
            mb=summary.bytes_written / MB,
            rate=summary.total / summary.elapsed,
        )

    def tick(self, statistics: BatchStatistics) -> None:
        self._progress.update(self._task, in_flight=statistics.in_flight)

    def set_total(self, total: int) -> None:
        self._progress.update(self._task, total=total)


def summary_table(
    summary: Summary, *, title: str, folder: str | None, manifest: str | None
) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("tasks", str(summary.total))
    for state in OutcomeState:
        count = summary.states[state]
        if count or state is OutcomeState.DONE:
            table.add_row(f"  {state.value}", str(count))
    if summary.resumed:
        table.add_row("  from an earlier run", str(summary.resumed))
    seconds = summary.elapsed
    table.add_row("seconds", f"{seconds:.2f}")
    table.add_row("tasks/s", f"{summary.total / seconds:.1f}")
    table.add_row("MB written", f"{summary.bytes_written / MB:.1f}")
    table.add_row("MB/s", f"{summary.bytes_written / MB / seconds:.1f}")
    if folder:
        table.add_row("files in", folder)
    if manifest:
        table.add_row("manifest", manifest)
    return table
