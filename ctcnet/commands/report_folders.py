"""The ``--out`` folder of an evaluation (``ctcnet evaluate``, ``ctcnet robustness``): a report
an earlier run wrote there is refused unless ``--overwrite``, as other commands refuse their
outputs. With it, the earlier report (its files and its page's ``gallery/``) is kept aside
until the new report is written: hard links in ``.earlier-report/`` (a copy where the disk has
none), the folder named so only once whole. Then the earlier files the new run did not write
again go, so that no figure of the earlier run (a baseline's confusion matrix) stays beside a
report that has none; a run that fails or is stopped puts the earlier report back whole, and a
run killed outright leaves it aside, put back by the next run into the folder (or, killed as
it cleared the earlier files away, the clearing finished). One evaluation writes a folder at a
time (a lock, as predict's). Other files in the folder (a lab's notes, a predict output's)
are left alone; a cartridge evaluation's per-sample runs are made again by each run."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ctcnet.io.atomic import check_output_folder, exclusive_folder, refuse_existing

# What an evaluation writes into its folder, by the report that marks it.
REPORTS = ("report.json", "counts.json", "robustness.json", "spike_in.json", "comparison.json")
FIGURES_AND_TABLES = ("confusion.json", "predictions.csv", "index.html", "confusion.png",
                      "reliability.png", "counts.png", "robustness.png", "spike_in.csv",
                      "comparison.csv", "changed_events.csv")
PAGE_DIR = "gallery"
EARLIER_DIR = ".earlier-report"  # whole: put back where a run did not finish
TAKING = ".earlier-report-taking"  # being filled: the earlier report is still in place
CLEARING = ".earlier-report-cleared"  # the new report whole: its earlier files to clear


def prepare_report_folder(out: str | Path, overwrite: bool) -> None:
    """Refuse ``out`` where it is no folder, or holds an earlier evaluation's report and
    ``overwrite`` is not given (an earlier report a killed run left aside put back first)."""
    out = Path(out)
    check_output_folder(out)
    if out.is_dir():
        with exclusive_folder(out, "evaluate"):
            _settle(out)
    refuse_existing([out / name for name in REPORTS], overwrite, "--out")


@contextlib.contextmanager
def report_replaced(out: str | Path, overwrite: bool) -> Iterator[None]:
    """Run an evaluation into ``out`` (refused as :func:`prepare_report_folder` refuses it),
    an earlier report there kept aside until the new one is written (the module's words)."""
    out = Path(out)
    check_output_folder(out)
    with exclusive_folder(out, "evaluate"):  # (a second evaluation into it: refused)
        _settle(out)
        refuse_existing([out / name for name in REPORTS], overwrite, "--out")
        earlier = {p: _stamp(p) for p in _report_files(out)} if overwrite and any(
            (out / name).is_file() for name in REPORTS) else {}
        if not earlier:
            yield
            return
        taking = out / TAKING
        taking.mkdir()
        for path in earlier:
            _link_or_copy(path, taking / path.relative_to(out))
        os.replace(taking, out / EARLIER_DIR)  # whole now: what a failure puts back
        try:
            yield
        except BaseException:
            _put_back(out)  # (a signal too: the earlier report whole again)
            raise
        if not any((out / name).is_file() and _stamp(out / name) != earlier.get(out / name)
                   for name in REPORTS):
            _put_back(out)  # ended without a report: the earlier one stands whole
            return
        os.replace(out / EARLIER_DIR, out / CLEARING)
        _clear(out)


def _settle(out: Path) -> None:
    """What a run killed outright left: a set-aside half made (the earlier report still in
    place: dropped), one whole (put back), or a clearing begun (finished)."""
    if (out / TAKING).is_dir():
        shutil.rmtree(out / TAKING)
    if (out / EARLIER_DIR).is_dir():
        _put_back(out)
    if (out / CLEARING).is_dir():
        _clear(out)


def _report_files(out: Path) -> list[Path]:
    """The files of a report in ``out``, its page's gallery among them."""
    named = [*(out / n for n in (*REPORTS, *FIGURES_AND_TABLES)),
             *sorted(out.glob("confusion_*.png"))]
    page = sorted(p for p in (out / PAGE_DIR).rglob("*") if p.is_file()) \
        if (out / PAGE_DIR).is_dir() else []
    return [p for p in named if p.is_file()] + page


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_mtime_ns


def _link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # (a disk without hard links: a share, FAT)
        shutil.copy2(source, target)


def _put_back(out: Path) -> None:
    """The earlier report kept aside, put back whole in place of whatever a run that did not
    finish wrote of its own report."""
    aside = out / EARLIER_DIR
    for path in _report_files(out):
        path.unlink()
    for kept in sorted(p for p in aside.rglob("*") if p.is_file()):
        target = out / kept.relative_to(aside)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(kept, target)
    shutil.rmtree(aside)


def _clear(out: Path) -> None:
    """The earlier report's files the new run did not write again, removed (each is still
    the file kept aside: the same inode), then the set-aside."""
    cleared = out / CLEARING
    for kept in (p for p in cleared.rglob("*") if p.is_file()):
        path = out / kept.relative_to(cleared)
        with contextlib.suppress(OSError):  # (a copy, where no hard link was made: its time
            if os.path.samefile(path, kept) or (   # and size, as copy2 keeps them)
                    _stamp(path)[2], path.stat().st_size) == (_stamp(kept)[2],
                                                              kept.stat().st_size):
                path.unlink()
    shutil.rmtree(cleared)
