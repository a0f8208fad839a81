"""Progress of long work on stderr, the one way every package shows it.

On a terminal: rich progress bars. When stderr is a file or a pipe (CI, ``nohup``, a
notebook): plain lines, in order, flushed as they happen, each task at most every
``interval_s`` seconds (and always its last step), so a log reads like a transcript and
nothing arrives late. ``enabled=False`` shows nothing.

    with Progress() as progress:
        task = progress.task("measuring tiny.parquet", total=12)
        for ...:
            task.update(advance=1, description="conv1d C32 ...")
        progress.print("done")
"""
from __future__ import annotations

import sys
import time
from typing import TextIO


class Task:
    def __init__(self, progress: "Progress", title: str, total: int | None, completed: int):
        self.progress, self.title, self.total, self.completed = progress, title, total, completed
        self.description = title
        self._rich_id = None
        self._last_line = 0.0

    def update(self, completed: int | None = None, advance: int = 0, description: str | None = None) -> None:
        self.completed = (self.completed if completed is None else completed) + advance
        if description is not None:
            self.description = description
        self.progress._show(self)

    def finish(self) -> None:
        self.progress._finish(self)


class Progress:
    def __init__(self, enabled: bool = True, stream: TextIO | None = None, interval_s: float = 5.0,
                 rich: bool | None = None):
        self.enabled, self.stream, self.interval_s = enabled, stream or sys.stderr, interval_s
        self.rich = (self.stream.isatty() if rich is None else rich) and enabled
        self._bar = None

    def __enter__(self) -> "Progress":
        if self.rich:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(file=self.stream), transient=False)
            self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def task(self, title: str, total: int | None = None, completed: int = 0) -> Task:
        task = Task(self, title, total, completed)
        if self._bar is not None:
            task._rich_id = self._bar.add_task(title, total=total, completed=completed)
        elif self.enabled:
            self._line(f"{title}: {self._count(task)}")
            task._last_line = time.monotonic()
        return task

    def print(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
        else:
            self._line(text)

    @staticmethod
    def _count(task: Task) -> str:
        return f"{task.completed}/{task.total}" if task.total is not None else str(task.completed)

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def _show(self, task: Task) -> None:
        if self._bar is not None:
            self._bar.update(task._rich_id, completed=task.completed, description=task.description)
            return
        if not self.enabled:
            return
        now = time.monotonic()
        last = task.total is not None and task.completed >= task.total
        if last or now - task._last_line >= self.interval_s:
            detail = f" {task.description}" if task.description != task.title else ""
            self._line(f"{task.title}: {self._count(task)}{detail}")
            task._last_line = now

    def _finish(self, task: Task) -> None:
        if self._bar is not None and task._rich_id is not None:
            self._bar.remove_task(task._rich_id)
            task._rich_id = None


class _Shared:
    """A caller's running Progress, lent to a library function without closing it."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def __enter__(self) -> Progress:
        return self.progress

    def __exit__(self, *exc) -> None:
        pass


def as_progress(progress: "bool | Progress") -> "Progress | _Shared":
    """For library functions that take ``progress=True/False`` or a caller's Progress."""
    return _Shared(progress) if isinstance(progress, Progress) else Progress(enabled=bool(progress))
