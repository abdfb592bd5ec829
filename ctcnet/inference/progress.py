"""The progress bar of a run: one row per cartridge (frames done, events found) or crop folder
(crops read, then classified), with time elapsed and left; none when the run is quiet."""

from __future__ import annotations


def progress_bar(total: int, quiet: bool, *, events: bool = False):
    """A ``rich`` progress display (a context manager) for work of ``total`` steps; disabled
    when ``quiet`` or when nothing is left to do (a rerun that takes every frame from the
    journal). ``events``: a column for each task's ``events`` field (a cartridge's)."""
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
                    disable=quiet or not total, transient=False)
