"""The progress bar of a run: one row per cartridge (frames done, events found) or per step of
a crop folder (crops fitted, read, classified: :class:`StepBars`), with time elapsed and left;
none when the run is quiet. Where stderr is no terminal (a batch job's log file) a bar cannot
redraw, so a plain line says how far each task is once a minute and as it ends
(:class:`PlainProgress`): a hung job and a working one then look different in the log."""

from __future__ import annotations

import time

# Seconds between a batch log's progress lines.
PLAIN_EVERY_S = 60.0


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

    console = Console(stderr=True)
    # A log file is no terminal whatever the environment says: FORCE_COLOR (set in CI runners
    # and container images) made rich draw its bar, 24 redraws in 3 s, into a batch's log.
    if not (console.is_terminal and _stderr_is_a_terminal()):
        console = Console(stderr=True, force_terminal=False)
        if not quiet and total != 0:
            return PlainProgress(console)
    # A cartridge's events (" new" ones on a resume: its journal's frames are counted done,
    # their events not), and the frames skipped where any were (a frame counts as done either
    # way: "5 of 5" alone would read as complete).
    counted = (TextColumn("{task.fields[events]}{task.fields[new_note]} events"
                          "{task.fields[skipped_note]}"),) if events else ()
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    *counted, TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console,
                    disable=quiet or total == 0, transient=False)


def _stderr_is_a_terminal() -> bool:
    """Whether stderr is a terminal (a console that cannot say is none)."""
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError, OSError):  # (closed, or replaced by an object)
        return False


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


class PlainProgress:
    """The part of ``rich.progress.Progress`` a run uses (``add_task``, ``update``,
    ``advance``, a context manager), said as plain lines on a console that is no terminal:
    "S1: 120 of 600 (20 %), 95,310 events, 2 min 10 s" (", 1 frame skipped" after the events
    where one was), at most once every
    :data:`PLAIN_EVERY_S` seconds a task and as it completes."""

    def __init__(self, console, every_s: float = PLAIN_EVERY_S, clock=time.monotonic):
        self.console, self.every_s, self.clock = console, every_s, clock
        self.tasks: list[dict] = []

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: int | None = None, completed: int = 0,
                 **fields) -> int:
        """A task of ``total`` steps (None: not known), ``completed`` of them done before (a
        resumed cartridge's frames from its journal), its clock started now; ``fields``: its
        ``events``, ``new_note`` (" new": a resumed cartridge's events are this run's
        frames' alone) and ``skipped_note`` (:func:`skipped_note`), as a cartridge's bar has."""
        now = self.clock()
        self.tasks.append({"description": description, "total": total, "done": completed,
                           "fields": fields, "start": now, "said": now})
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        """``advance`` more steps of ``task`` done."""
        self.update(task, advance=advance)

    def update(self, task: int, advance: float = 0, **fields) -> None:
        """``advance`` more steps done and ``fields`` (events) as they are now; a line where
        a minute passed since the last or the task is done."""
        t = self.tasks[task]
        t["done"] += advance
        t["fields"].update(fields)
        now = self.clock()
        finished = t["total"] is not None and t["done"] >= t["total"]
        if finished or now - t["said"] >= self.every_s:
            t["said"] = now
            # One line however long (a long sample id): a log grepped for it finds it whole.
            self.console.print(self.line(t, now), markup=False, highlight=False,
                               soft_wrap=True)

    @staticmethod
    def line(t: dict, now: float) -> str:
        """A task's progress in words."""
        total, done = t["total"], int(t["done"])
        share = f" ({100 * done / total:.0f} %)" if total else ""
        events = t["fields"].get("events")
        minutes, seconds = divmod(int(now - t["start"]), 60)
        return (f"{t['description']}: {done:,}" + (f" of {total:,}" if total else "") + share
                + (f", {events:,}{t['fields'].get('new_note', '')} events"
                   if events is not None else "")
                + t["fields"].get("skipped_note", "") + f", {minutes} min {seconds} s")


def skipped_note(skipped: int, missing: int = 0) -> str:
    """What a cartridge's progress adds after its events: the frames skipped, and those
    cartridge.json lists that are not there ("4 of 4 (100 %)" alone read as the whole scan
    where it lists 5), if any."""
    return (f", {skipped:,} frame{'s' if skipped != 1 else ''} skipped" if skipped else "") + \
        (f", {missing:,} listed frame{'s' if missing != 1 else ''} missing" if missing else "")
