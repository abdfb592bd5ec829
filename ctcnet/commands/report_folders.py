"""The ``--out`` folder of an evaluation (``ctcnet evaluate``, ``ctcnet robustness``): a report
of the command's own kind an earlier run wrote there is refused unless ``--overwrite``, as other
commands refuse their outputs (another command's report beside it is left alone: a robustness
matrix and an evaluation share a folder). With it, the earlier report (its files and its page's
``gallery/``) is kept aside until the new report is written: hard links in ``.earlier-report/``
(a copy where the disk has none), the folder named so only once whole. Then the earlier files
the new run did not write again go, so that no figure of the earlier run (a baseline's
confusion matrix) stays beside a report that has none; a run that fails or is stopped puts the
earlier report back whole, and a run killed outright leaves it aside, put back by the next run
into the folder (or, killed as it cleared the earlier files away, the clearing finished). A
first run into the folder that does not finish leaves none of its files (a killed one's are
taken away by the next run). One evaluation writes a folder at a time (a lock, as predict's).
A predict output is no evaluation's folder; other files (a lab's notes) are left alone."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ctcnet.errors import InputError
from ctcnet.io.atomic import (
    atomic_write_text,
    check_output_folder,
    exclusive_folder,
    refuse_existing,
    refuse_not_a_folder,
)


@dataclass(frozen=True)
class ReportKind:
    """What one command writes into its folder: the reports that mark it, the other files
    (figures, tables, a page), and whether a page's ``gallery/`` is among them."""

    reports: tuple[str, ...]
    files: tuple[str, ...]
    patterns: tuple[str, ...] = ()
    page: bool = False

    def mark(self, what: str) -> str:
        """The name of this kind's hidden file or folder ``what`` (each kind's settled apart,
        whichever command comes next)."""
        return f".{Path(self.reports[0]).stem}-{what}"


EVALUATION = ReportKind(
    reports=("report.json", "counts.json", "spike_in.json", "comparison.json"),
    files=("confusion.json", "predictions.csv", "index.html", "confusion.png",
           "reliability.png", "counts.png", "spike_in.csv", "comparison.csv",
           "changed_events.csv"), patterns=("confusion_*.png",), page=True)
ROBUSTNESS = ReportKind(reports=("robustness.json",), files=("robustness.png",))
PAGE_DIR = "gallery"
# The hidden names of a kind's (ReportKind.mark): the earlier report set aside whole, put back
# where a run did not finish; being filled (the earlier report still in place); the new report
# whole, its earlier files to clear; a first run at work (the files there before it).
EARLIER, TAKING, CLEARING, UNFINISHED = "earlier", "taking", "cleared", "unfinished"


def refuse_output_in_data(path: str | Path | None, data, option: str = "--out") -> None:
    """Refuse an output (``option``'s ``path``) that is a folder read (``data``: a crop folder,
    results, several), or lies in one: its files were read as the data by the next run (a
    report's class-named folders as classes, its gallery as crops)."""
    if not path:
        return
    here = Path(path).absolute().resolve()
    for folder in [data] if isinstance(data, (str, Path)) else data or ():
        if not folder:
            continue
        read = Path(folder).absolute().resolve()
        if read.is_dir() and here.is_relative_to(read):
            raise InputError(f"{option} {'is' if here == read else 'lies in'} {folder}, which "
                             "this command reads: its files would be read as data by the next "
                             f"run; choose {option} outside it", path)


def prepare_report_folder(out: str | Path, overwrite: bool,
                          kind: ReportKind = EVALUATION) -> None:
    """Refuse ``out`` where it is no folder, a predict output, or holds an earlier report of
    ``kind`` and ``overwrite`` is not given (what a killed run left settled first)."""
    out = _refuse_no_report_folder(out)
    if out.is_dir():
        with exclusive_folder(out, "evaluate"):
            _settle(out)
    _refuse_linked_pages(out, kind)
    refuse_existing([out / name for name in kind.reports], overwrite, "--out")


def _refuse_linked_pages(out: Path, kind: ReportKind) -> None:
    """A link or a file at the folder of a report's tiles (written and cleared there, so
    never through a link), refused before any work."""
    if kind.page:
        refuse_not_a_folder(out / PAGE_DIR, "the report's tiles")


def _refuse_no_report_folder(out: str | Path) -> Path:
    """``out`` as a path, refused where it is no folder to write or a predict output."""
    out = Path(out)
    check_output_folder(out)
    if (out / "summary.json").is_file() or (out / "run.json").is_file():
        raise InputError("is a ctcnet predict output (its summary.json or run.json): an "
                         "evaluation would write over its page and table; give another --out",
                         out)
    return out


@contextlib.contextmanager
def report_replaced(out: str | Path, overwrite: bool,
                    kind: ReportKind = EVALUATION) -> Iterator[None]:
    """Run an evaluation into ``out`` (refused as :func:`prepare_report_folder` refuses it),
    an earlier report of ``kind`` there kept aside until the new one is written (the module's
    words)."""
    out = _refuse_no_report_folder(out)  # (settled and refused under the lock, once)
    with exclusive_folder(out, "evaluate"):  # (a second evaluation into it: refused)
        _settle(out)
        _refuse_linked_pages(out, kind)
        refuse_existing([out / name for name in kind.reports], overwrite, "--out")
        earlier = {p: _stamp(p) for p in _report_files(out, kind)}
        if not any((out / name).is_file() for name in kind.reports):
            yield from _first_report(out, kind, earlier)
            return
        taking = out / kind.mark(TAKING)
        taking.mkdir()
        for path in earlier:
            _link_or_copy(path, taking / path.relative_to(out))
        os.replace(taking, out / kind.mark(EARLIER))  # whole now: what a failure puts back
        try:
            yield
        except BaseException:
            _put_back(out, kind)  # (a signal too: the earlier report whole again)
            raise
        if not any((out / name).is_file() and _stamp(out / name) != earlier.get(out / name)
                   for name in kind.reports):
            _put_back(out, kind)  # ended without a report: the earlier one stands whole
            return
        os.replace(out / kind.mark(EARLIER), out / kind.mark(CLEARING))
        _clear(out, kind)


def _first_report(out: Path, kind: ReportKind, before: dict) -> Iterator[None]:
    """The block of a run with no earlier report in ``out``: what it wrote taken away where it
    does not finish with a report (a killed run's, by the next run: :data:`UNFINISHED`)."""
    atomic_write_text(out / kind.mark(UNFINISHED), json.dumps(sorted(str(p.relative_to(out))
                                                          for p in before)))
    try:
        yield
    except BaseException:
        _take_away_unfinished(out, kind)
        raise
    if not any((out / name).is_file() for name in kind.reports):
        _take_away_unfinished(out, kind)
        return
    (out / kind.mark(UNFINISHED)).unlink()


def _take_away_unfinished(out: Path, kind: ReportKind) -> None:
    """The files of ``kind`` an unfinished first run wrote (not there before it: the marker
    names those), removed with the marker."""
    try:
        kept = set(json.loads((out / kind.mark(UNFINISHED)).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        kept = set()
    for path in _report_files(out, kind):
        if str(path.relative_to(out)) not in kept:
            path.unlink()
    (out / kind.mark(UNFINISHED)).unlink(missing_ok=True)


def _settle(out: Path) -> None:
    """What a run of either kind killed outright left: a first run's files, a set-aside half
    made (the earlier report still in place: dropped), one whole (put back), or a clearing
    begun (finished)."""
    for kind in (EVALUATION, ROBUSTNESS):
        if (out / kind.mark(UNFINISHED)).is_file():
            _take_away_unfinished(out, kind)
        if (out / kind.mark(TAKING)).is_dir():
            shutil.rmtree(out / kind.mark(TAKING))
        if (out / kind.mark(EARLIER)).is_dir():
            _put_back(out, kind)
        if (out / kind.mark(CLEARING)).is_dir():
            _clear(out, kind)


def _report_files(out: Path, kind: ReportKind) -> list[Path]:
    """The files of a report of ``kind`` in ``out``, its page's gallery among them."""
    named = [*(out / n for n in (*kind.reports, *kind.files)),
             *(p for pattern in kind.patterns for p in sorted(out.glob(pattern)))]
    page = sorted(p for p in (out / PAGE_DIR).rglob("*") if p.is_file()) \
        if kind.page and (out / PAGE_DIR).is_dir() else []
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


def _put_back(out: Path, kind: ReportKind) -> None:
    """The earlier report kept aside, put back whole in place of whatever a run that did not
    finish wrote of its own report."""
    aside = out / kind.mark(EARLIER)
    for path in _report_files(out, kind):
        path.unlink()
    for kept in sorted(p for p in aside.rglob("*") if p.is_file()):
        target = out / kept.relative_to(aside)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(kept, target)
    shutil.rmtree(aside)


def _clear(out: Path, kind: ReportKind) -> None:
    """The earlier report's files the new run did not write again, removed (each is still
    the file kept aside: the same inode), then the set-aside."""
    cleared = out / kind.mark(CLEARING)
    for kept in (p for p in cleared.rglob("*") if p.is_file()):
        path = out / kept.relative_to(cleared)
        with contextlib.suppress(OSError):  # (a copy, where no hard link was made: its time
            if os.path.samefile(path, kept) or (   # and size, as copy2 keeps them)
                    _stamp(path)[2], path.stat().st_size) == (_stamp(kept)[2],
                                                              kept.stat().st_size):
                path.unlink()
    shutil.rmtree(cleared)


@contextlib.contextmanager
def file_kept_aside(path: str | Path | None) -> Iterator[None]:
    """A file the block writes over (``evaluate --calibrate-on``'s ``--save-model``, replaced
    before the evaluation runs) kept aside beside it, hidden, and put back where the block
    does not finish: a restored earlier report named the model file by a digest it no longer
    had. None: nothing to keep."""
    if path is None:
        yield
        return
    path = Path(path)
    kept = path.with_name(f".{path.name}.earlier")
    if kept.is_file():  # a run killed in the block: its earlier file back first
        os.replace(kept, path)
    if not path.is_file():
        yield
        return
    _link_or_copy(path, kept)
    try:
        yield
    except BaseException:
        os.replace(kept, path)
        raise
    kept.unlink()

