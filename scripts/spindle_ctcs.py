"""Spindle CTCs and true clusters: does a long single cell read as a cluster?

A cluster is a CTC with leukocytes or platelets attached, or two CTCs or more; a single CTC,
however long, is a CTC. The simulator draws CTCs round to oval, and its two-cell clusters are
what is long, so a network may learn "long = cluster". This family draws what the training
data lacks: single CTCs 1.8-3x as long as wide (``--shift elongated_ctcs``, area kept, the
nucleus stretched along), beside true clusters of the default look, as 16-bit crops in the
model's panel, and reads both as ``ctcnet predict`` reads a crop folder.

Reported per set: the calls, how many ``cluster`` calls the guard's ``one_cell`` flag sends to a
person (a cluster call with one nucleus and no partner marker), how many reach the automatic
count unflagged, and the share of spindle CTCs called ``ctc`` or shown to a person.

    python scripts/spindle_ctcs.py [--model ctcnet-default] [--per-set 300] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEED = 502  # far from the training (0), card (424242) and decision (62000) seeds


def make_sets(out: Path, panel, per_set: int) -> dict[str, Path]:
    """The spindle CTC set and the true cluster set (a few of each other class beside them,
    so a folder is not of one class), made once."""
    from ctcnet.simulate import SimConfig, simulate_crops, write_crop_batch

    sets = {}
    for k, (name, main, shifts) in enumerate((("spindle_ctcs", "ctc", ("elongated_ctcs",)),
                                              ("clusters", "cluster", ()))):
        root = out / name
        if not (root / "manifest.csv").exists():
            counts = {c: 5 for c in ("ctc", "wbc", "cluster", "debris")} | {main: per_set}
            batch = simulate_crops(counts, panel, seed=SEED + k,
                                   config=SimConfig().with_shift(*shifts))
            write_crop_batch(batch, root, panel)
        sets[name] = root
    return sets


def score(predictions, main: str) -> dict:
    """Calls of the set's own cells, the cluster calls' one_cell flags, and the share shown."""
    cells = predictions[predictions["label"] == main]
    calls = cells["class"].value_counts().to_dict()
    clusters = cells[cells["model_class"] == "cluster"]
    flagged = clusters["guard"].str.contains("one_cell")
    out = {"cells": len(cells), "calls": {k: int(v) for k, v in calls.items()},
           "cluster_calls": len(clusters), "one_cell": int(flagged.sum()),
           "cluster_counted_unflagged": int(((clusters["class"] == "cluster")
                                             & (clusters["guard"] == "")).sum())}
    if main == "ctc":  # what a person gets to see of the CTCs
        shown = (cells["class"] == "ctc") | cells["review"]
        out["ctc_called_or_shown"] = round(float(shown.mean()), 3)
    return out


def main() -> None:
    """Make the sets (once), predict them with the model, print the scores as JSON."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", default="ctcnet-default")
    parser.add_argument("--per-set", type=int, default=300)
    parser.add_argument("--out", type=Path, default=None,
                        help="where the sets and predictions go (default: a temporary folder)")
    args = parser.parse_args()
    import pandas as pd

    from ctcnet.cli import main as cli
    from ctcnet.inference.backends import load_backend

    out = args.out or Path(tempfile.mkdtemp(prefix="spindle_"))
    spec = load_backend(args.model, device="cpu").spec
    sets = make_sets(out / spec.panel.name, spec.panel, args.per_set)
    report = {"model": args.model, "seed": SEED}
    for name, root in sets.items():
        results = out / f"results_{Path(args.model).stem}" / name
        if cli(["--quiet", "predict", str(root), "--out", str(results), "--model", args.model,
                "--overwrite"]) not in (0, None):
            raise SystemExit(f"predict failed on {root}")
        predictions = pd.read_parquet(results / root.name / "predictions.parquet")
        report[name] = score(predictions, "ctc" if name == "spindle_ctcs" else "cluster")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
