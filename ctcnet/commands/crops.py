"""``ctcnet crops``: cut a run's events into a labelled crop dataset, e.g. for ``finetune``.

With ``--reviewed`` the labels are the reviewer's (events confirmed or relabelled in
``ctcnet review``; rejected ones are left out); without it, every event with the model's call.
Crops are cut again from the original frames named in each sample's summary.json.
"""

from __future__ import annotations

import argparse

from ctcnet.errors import InputError
from ctcnet.io.atomic import check_output_folder

HELP = "Cut a run's reviewed events (or all, with the model's calls) into a crop dataset."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``ctcnet crops`` to its subparser."""
    parser.add_argument("results", metavar="RESULTS",
                        help="a ctcnet predict --out folder (or one sample's folder in it)")
    parser.add_argument("--out", required=True, help="crop dataset folder to write")
    parser.add_argument("--reviewed", action="store_true",
                        help="only events a reviewer confirmed or relabelled, with the "
                             "reviewer's class (review.csv)")
    parser.add_argument("--scans", default=None,
                        help="the cartridge folder, if it moved since predict (one sample)")


def run(args: argparse.Namespace) -> int:
    """Run ``ctcnet crops``: cut the reviewed events of a run (or all, with the model's calls)
    into a crop dataset; returns the exit status."""
    from pathlib import Path

    # the library: imported when the command runs (see ctcnet.commands)
    from ctcnet.inference.inputs import check_writable
    from ctcnet.report.event_crops import write_event_dataset

    out = Path(args.out)
    check_output_folder(out)
    if out.exists() and any(out.iterdir()):
        raise InputError("output folder is not empty; choose a new one", out)
    check_writable(out)  # before any sample is read
    info = write_event_dataset(args.results, out, reviewed=args.reviewed, scans=args.scans)
    counts = ", ".join(f"{k} {v}" for k, v in info["class_counts"].items())
    print(f"{sum(info['class_counts'].values())} crops ({counts}) from "
          f"{len(info['sources'])} sample(s) -> {out}")
    return 0
