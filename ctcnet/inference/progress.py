"""The progress bar of a run: one row per cartridge (frames done, events found) or per step of
a crop folder (crops fitted, read, classified: :class:`StepBars`), with time elapsed and left;
none when the run is quiet."""

from __future__ import annotations


def progress_bar(total: int | None, quiet: bool, *, events: bool = False):
    """A ``rich`` progress display (a context manager) for work of ``total`` steps (None: not
    known yet); disabled when ``quiet`` or when nothing is left to do (a rerun that takes
    every frame from the journal). ``events``: a column for each task's ``events`` field (a
    cartridge's). Drawn on stderr, always: stdout belongs to the caller (a command's JSON, a
    script's own output, a pipe)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    counted = (TextColumn("{task.fields[events]} events"),) if events else ()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    *counted, TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True),
                    disable=quiet or total == 0, transient=False)


class StepBars:
    """One bar per step of a run's work (a crop folder's: crops fitted, read, classified),
    each added when its step begins, so that its clock runs from then: call it with the step,
    the items just done (0 as the step begins) and, for the first call of a step, its total
    (default ``total``)."""

    def __init__(self, progress, name: str, total: int | None = None):
        self.progress, self.name, self.total = progress, name, total
        self._tasks: dict[str, int] = {}

    def __call__(self, step: str, done: int, total: int | None = None) -> None:
        """``done`` more items of ``step`` (its bar added first, of ``total`` items)."""
        if step not in self._tasks:
            self._tasks[step] = self.progress.add_task(f"{self.name}: {step}",
                                                       total=total or self.total)
        self.progress.advance(self._tasks[step], done)
