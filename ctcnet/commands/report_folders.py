"""The ``--out`` folder of an evaluation (``ctcnet evaluate``, ``ctcnet robustness``): a report
an earlier run wrote there is refused unless ``--overwrite``, as other commands refuse their
outputs; with it, that report's files go before the new one is written, so that no figure of
the earlier run (a baseline's confusion matrix) stays beside a report that has none. Other
files in the folder (a lab's notes) are left alone."""

from __future__ import annotations

from pathlib import Path

from ctcnet.io.atomic import check_output_folder, refuse_existing

# What an evaluation writes into its folder, by the report that marks it.
REPORTS = ("report.json", "counts.json", "robustness.json", "spike_in.json", "comparison.json")
FIGURES_AND_TABLES = ("confusion.json", "predictions.csv", "index.html", "confusion.png",
                      "reliability.png", "counts.png", "robustness.png", "spike_in.csv",
                      "comparison.csv")


def prepare_report_folder(out: str | Path, overwrite: bool) -> None:
    """Refuse ``out`` where it is no folder, or holds an earlier evaluation's report and
    ``overwrite`` is not given; with ``overwrite``, remove that report's files."""
    out = Path(out)
    check_output_folder(out)
    refuse_existing([out / name for name in REPORTS], overwrite, "--out")
    if not overwrite or not any((out / name).is_file() for name in REPORTS):
        return
    for path in [*(out / n for n in (*REPORTS, *FIGURES_AND_TABLES)),
                 *out.glob("confusion_*.png")]:
        if path.is_file():
            path.unlink()
