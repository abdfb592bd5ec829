"""The ``--out`` folder of an evaluation (``ctcnet evaluate``, ``ctcnet robustness``): a report
an earlier run wrote there is refused unless ``--overwrite``, as other commands refuse their
outputs; with it, that report's files stay until the new report is written, and those the new
run did not write again go then, so that no figure of the earlier run (a baseline's confusion
matrix) stays beside a report that has none. A run that fails or is stopped leaves the earlier
report as it was. Other files in the folder (a lab's notes) are left alone."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ctcnet.io.atomic import check_output_folder, refuse_existing

# What an evaluation writes into its folder, by the report that marks it.
REPORTS = ("report.json", "counts.json", "robustness.json", "spike_in.json", "comparison.json")
FIGURES_AND_TABLES = ("confusion.json", "predictions.csv", "index.html", "confusion.png",
                      "reliability.png", "counts.png", "robustness.png", "spike_in.csv",
                      "comparison.csv")


def prepare_report_folder(out: str | Path, overwrite: bool) -> None:
    """Refuse ``out`` where it is no folder, or holds an earlier evaluation's report and
    ``overwrite`` is not given."""
    out = Path(out)
    check_output_folder(out)
    refuse_existing([out / name for name in REPORTS], overwrite, "--out")


@contextlib.contextmanager
def report_replaced(out: str | Path, overwrite: bool) -> Iterator[None]:
    """Run an evaluation into ``out`` (refused as :func:`prepare_report_folder` refuses it):
    once it has written a report, the earlier report's files it did not write again are
    removed; where it ends in an error, a signal or without a report, they are kept."""
    prepare_report_folder(out, overwrite)
    earlier = _report_files(Path(out)) if overwrite else {}
    yield
    now = _report_files(Path(out))
    if not any(now.get(p) != earlier.get(p) for p in now if p.name in REPORTS):
        return  # no report written (an exit without one): the earlier one stands whole
    for path, stamp in earlier.items():
        if now.get(path) == stamp:  # the same file, not written again: the earlier run's
            path.unlink(missing_ok=True)


def _report_files(out: Path) -> dict[Path, tuple[int, int]]:
    """The files of a report in ``out``, each with what tells a file written again (every
    report file is written whole, to a new file put in place: another inode)."""
    found = {}
    for path in [*(out / n for n in (*REPORTS, *FIGURES_AND_TABLES)),
                 *sorted(out.glob("confusion_*.png"))]:
        try:
            stat = path.stat()
        except OSError:
            continue
        if path.is_file():
            found[path] = (stat.st_ino, stat.st_mtime_ns)
    return found
