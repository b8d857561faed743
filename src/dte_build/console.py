"""Human-facing output: `out` for a command's result (tables, text: stdout, so `dte inspect IMG | less` works),
`err` for progress and diagnostics (stderr). Both plain when not a terminal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)
for _console in (err, out):
    if not _console.is_terminal:
        _console.width = 120  # logs and pipes: rich's 80-column default folds tables into unreadable cells


def info(message: str) -> None:
    """One status line to stderr."""
    err.print(message, markup=False)


def warn(message: str) -> None:
    err.print(f"warning: {message}", style="yellow", markup=False)


class _Bar:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress = progress
        self._task = task

    def advance(self, amount: int) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, amount)


@contextmanager
def progress(description: str, total: int, *, unit_bytes: bool = True) -> Iterator[_Bar]:
    """A progress bar (bytes with MiB/s and ETA by default) on stderr; silent when not a terminal."""
    if not err.is_terminal:
        yield _Bar(None, None)
        return
    columns = [TextColumn("{task.description}"), BarColumn(), TaskProgressColumn()]
    if unit_bytes:
        columns += [DownloadColumn(binary_units=True), TransferSpeedColumn()]
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield _Bar(bar, task)


class _Steps:
    def __init__(self, progress: Progress | None, task: int | None) -> None:
        self._progress, self._task = progress, task

    def step(self, what: str, total: int) -> None:
        """One step done (`what`: the one just finished), of `total`."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total, advance=1, what=what)

    def phase(self, description: str) -> None:
        """A new phase: a fresh bar (or spinner until its first step) under `description`."""
        if self._progress is not None:
            if self._task is not None:
                self._progress.update(self._task, completed=self._progress.tasks[self._task].total or 1)
            self._task = self._progress.add_task(description, total=None, what="")


@contextmanager
def steps(description: str) -> Iterator[_Steps]:
    """Progress of a multi-step job (compile N files, then write an image ...) on stderr; silent when not a
    terminal. `phase()` starts the next bar, `step()` advances the current one."""
    if not err.is_terminal:
        yield _Steps(None, None)
        return
    columns = [SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("[dim]{task.fields[what]}")]
    with Progress(*columns, console=err, transient=True) as bar:
        yield _Steps(bar, bar.add_task(description, total=None, what=""))
