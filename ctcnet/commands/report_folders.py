"""The ``--out`` folder of an evaluation (``ctcnet evaluate``, ``ctcnet robustness``): a report
an earlier run wrote there is refused unless ``--overwrite``, as other commands refuse their
outputs. With it, the earlier report is kept aside (hard links in ``.earlier-report/``, a copy
where the disk has none) until the new report is written: then the earlier files the new run
did not write again go, so that no figure of the earlier run (a baseline's confusion matrix)
stays beside a report that has none; a run that fails or is stopped puts the earlier report
back whole, and a run killed outright leaves it aside, put back by the next run into the
folder. Other files in the folder (a lab's notes, a predict output's) are left alone."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from ctcnet.io.atomic import check_output_folder, refuse_existing

# What an evaluation writes into its folder, by the report that marks it.
REPORTS = ("report.json", "counts.json", "robustness.json", "spike_in.json", "comparison.json")
FIGURES_AND_TABLES = ("confusion.json", "predictions.csv", "index.html", "confusion.png",
                      "reliability.png", "counts.png", "robustness.png", "spike_in.csv",
                      "comparison.csv")
EARLIER_DIR = ".earlier-report"


def prepare_report_folder(out: str | Path, overwrite: bool) -> None:
    """Refuse ``out`` where it is no folder, or holds an earlier evaluation's report and
    ``overwrite`` is not given (an earlier report a killed run left aside put back first)."""
    out = Path(out)
    check_output_folder(out)
    _put_back(out)
    refuse_existing([out / name for name in REPORTS], overwrite, "--out")


@contextlib.contextmanager
def report_replaced(out: str | Path, overwrite: bool) -> Iterator[None]:
    """Run an evaluation into ``out`` (refused as :func:`prepare_report_folder` refuses it),
    an earlier report there kept aside until the new one is written (the module's words)."""
    prepare_report_folder(out, overwrite)
    out = Path(out)
    earlier = {p: _stamp(p) for p in _report_files(out)} if overwrite and any(
        (out / name).is_file() for name in REPORTS) else {}
    if not earlier:
        yield
        return
    aside = out / EARLIER_DIR
    aside.mkdir()
    for path in earlier:
        _link_or_copy(path, aside / path.name)
    try:
        yield
    except BaseException:
        _put_back(out)  # (a signal too: the earlier report whole again)
        raise
    # Every report file is written whole, to a new file put in place: another inode.
    if not any((out / name).is_file() and _stamp(out / name) != earlier.get(out / name)
               for name in REPORTS):
        _put_back(out)  # ended without a report: the earlier one stands whole
        return
    for path, stamp in earlier.items():
        if path.is_file() and _stamp(path) == stamp:
            path.unlink()  # the earlier run's, not written again
    shutil.rmtree(aside)


def _report_files(out: Path) -> list[Path]:
    """The files of a report in ``out``."""
    return [p for p in [*(out / n for n in (*REPORTS, *FIGURES_AND_TABLES)),
                        *sorted(out.glob("confusion_*.png"))] if p.is_file()]


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_mtime_ns


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # (a disk without hard links: a share, FAT)
        shutil.copy2(source, target)


def _put_back(out: Path) -> None:
    """The earlier report kept aside, put back whole in place of whatever a run that did not
    finish wrote of its own report."""
    aside = out / EARLIER_DIR
    if not aside.is_dir():
        return
    for path in _report_files(out):
        path.unlink()
    for kept in aside.iterdir():
        os.replace(kept, out / kept.name)
    aside.rmdir()
