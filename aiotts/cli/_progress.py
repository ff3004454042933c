"""What a person sees while a batch runs, and the summary after it."""

from __future__ import annotations

import time
from collections import Counter
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Column, Table

from aiotts._batch import BatchStatistics
from aiotts._models import Outcome, OutcomeState
from aiotts._states import State

__all__ = ["BatchProgress", "Summary", "progress_counts", "summary_line", "summary_table"]

MB = 1_000_000

_WIDE = 100
"""Columns from which the bar also shows a spinner and its description; below, the counts
keep their full text at 80 columns even with 100,000 ids (the bar itself shrinks)."""


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


def progress_counts(
    statistics: BatchStatistics, total: int | None, *, submitted: int | None = None
) -> str:
    """The bar's numbers, every one from the batch's own statistics: ids that ended (of the
    distinct ids given), how many ended done or not, how many wait for the server, how many
    are being saved, and the megabytes written; ``submitted``: texts that have a task id
    (``synthesize``), first."""
    finished = statistics.finished
    done = statistics.states.get(State.DONE.value, 0)
    waiting = statistics.states.get(State.POLLING.value, 0)
    saving = statistics.states.get(State.DOWNLOADING.value, 0)
    of = "?" if total is None else str(max(total, finished))
    parts = [f"{finished}/{of}", f"[green]{done} done[/]"]
    if submitted is not None:
        parts.insert(0, f"{submitted} submitted")
    if finished - done:
        parts.append(f"[red]{finished - done} failed[/]")
    parts.append(f"{waiting} waiting")
    if saving:
        parts.append(f"{saving} saving")
    parts.append(_size(statistics.bytes_written))
    return " ".join(parts)


def _size(count: int) -> str:
    if count >= 1000 * MB:
        return f"{count / (1000 * MB):.1f} GB"
    return f"{count / MB:.1f} MB"


class BatchProgress:
    """A progress bar on standard error while a batch runs, when ``enabled`` (by default:
    when the console is a terminal); otherwise nothing.

    It never writes to standard output, and nothing else may while it is live: its redraws
    would erase a line written to the same terminal.
    """

    def __init__(
        self,
        console: Console,
        *,
        total: int | None,
        description: str,
        enabled: bool | None = None,
    ) -> None:
        self._enabled = console.is_terminal if enabled is None else enabled
        self._total = total
        self._summary = Summary()
        columns: list[ProgressColumn] = []
        if console.width >= _WIDE:  # spinner and description only where there is room
            columns += [SpinnerColumn(), TextColumn("[bold]{task.description}")]
        self._progress = Progress(
            *columns,
            # The bar takes what the others leave; they never wrap or shrink.
            BarColumn(bar_width=None, table_column=Column(ratio=1)),
            TextColumn("{task.fields[counts]}", table_column=Column(no_wrap=True)),
            TimeElapsedColumn(table_column=Column(no_wrap=True)),
            console=console,
            transient=False,
            refresh_per_second=8,
            redirect_stdout=False,
            redirect_stderr=False,
            disable=not self._enabled,
        )
        self._task: TaskID = self._progress.add_task(
            description, total=total, counts=f"0/{'?' if total is None else total}"
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
        """Count an outcome for the summary (the bar's numbers come from ``update``)."""
        self._summary.add(outcome)

    def set_total(self, total: int | None) -> None:
        """The number of ids, once it is known (``fetch --processes`` learns it from its
        children after they started)."""
        self._total = total

    def update(
        self, statistics: BatchStatistics, *, final: bool = False, submitted: int | None = None
    ) -> None:
        """Show ``statistics``. ``final``: the batch ended, so what ended is the total.
        ``submitted``: texts with a task id so far, shown first (``synthesize``)."""
        if final:
            self._total = statistics.finished
        finished = statistics.finished
        total = self._total
        self._progress.update(
            self._task,
            completed=finished,
            total=None if total is None else max(total, finished),
            counts=progress_counts(statistics, total, submitted=submitted),
            refresh=True,  # a few times a second at most: the caller paces the updates
        )


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


def summary_line(summary: Summary, *, title: str) -> str:
    """The summary in one line, for ``--quiet``."""
    counts = ", ".join(
        f"{summary.states[state]} {state.value}"
        for state in OutcomeState
        if summary.states[state] or state is OutcomeState.DONE
    )
    resumed = f" ({summary.resumed} from an earlier run)" if summary.resumed else ""
    return (
        f"{title}: {summary.total} tasks: {counts}{resumed}; "
        f"{summary.bytes_written / MB:.1f} MB in {summary.elapsed:.1f} s"
    )
