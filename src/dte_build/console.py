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
    Progress,
    TaskProgressColumn,
    TextColumn,
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
