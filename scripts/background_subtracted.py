"""Crops whose background a viewer subtracted and clipped at 0, read by ``ctcnet predict``
with their clipped pixels drawn again (``ctcnet.detect.clipped_background``) and as they are.

    python scripts/background_subtracted.py [--counts 150] [--seed 777]
        [--percentiles 20,50,70] [--model NAME] [--out runs/background_subtracted]

Draws a labelled crop set of 16-bit counts (``ctcnet simulate crops``), writes copies with each
crop's channels less their own percentile (20th, 50th, 70th: a background subtracted at, under
or over its level) clipped at 0, and predicts each (the crop-set defaults) twice, restored and
not, beside the unsubtracted set. Per set: macro-F1, CTC recall, CTCs called or shown, crops
sent to review and leukocytes or debris called ``ctc``. Writes ``background_subtracted.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import tifffile
from sklearn.metrics import f1_score

from ctcnet.cli import main as ctcnet


def subtracted_copy(src: Path, dst: Path, q: float) -> Path:
    """``src``'s crops, each channel less its own ``q``-th percentile, clipped at 0."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    for path in dst.rglob("*.tif"):
        x = tifffile.imread(path).astype(np.float32)
        level = np.percentile(x.reshape(len(x), -1), q, axis=1)
        tifffile.imwrite(path, np.clip(x - level[:, None, None], 0, 65535).astype(np.uint16))
    return dst


def scored(folder: Path, out: Path, model: str | None, restore: bool) -> dict:
    """``ctcnet predict`` on a crop folder (restored or not), scored against its labels."""
    args = ["predict", str(folder), "--out", str(out), "--no-report", "--quiet"]
    args += ["--model", model] if model else []
    if restore:
        ctcnet(args)
    else:
        with mock.patch("ctcnet.detect.crop_checks.CropNotes.restored",
                        lambda self, i, crop: crop):
            ctcnet(args)
    p = pd.read_csv(out / folder.name / "predictions.csv")
    ctc, shown = p[p.label == "ctc"], p.review.astype(bool)
    return {"macro_f1": round(float(f1_score(p.label, p["class"], average="macro")), 3),
            "ctc_recall": round(float((ctc["class"] == "ctc").mean()), 3),
            "ctc_called_or_shown": int(((ctc["class"] == "ctc") | shown[ctc.index]).sum()),
            "ctcs": len(ctc), "shown": round(float(shown.mean()), 3),
            "false_ctc": int(((p["class"] == "ctc") & (p.label != "ctc")).sum())}


def main(argv=None) -> None:
    """Score the unsubtracted set and each subtracted one, clipped and restored."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", type=int, default=150)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--percentiles", default="20,50,70")
    ap.add_argument("--model", default=None)
    ap.add_argument("--out", type=Path, default=Path("runs/background_subtracted"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    crops = args.out / "crops"
    if not (crops / "manifest.csv").exists():
        ctcnet(["simulate", "crops", str(crops), "--counts", str(args.counts),
                "--seed", str(args.seed), "--overwrite"])
    results = {"unsubtracted": scored(crops, args.out / "runs", args.model, True)}
    for q in (float(v) for v in args.percentiles.split(",")):
        folder = subtracted_copy(crops, args.out / f"p{q:g}", q)
        for restore in (False, True):
            name = f"p{q:g} {'restored' if restore else 'clipped'}"
            results[name] = scored(folder, args.out / ("runs_" + name.replace(" ", "_")),
                                   args.model, restore)
    for name, row in results.items():
        print(f"{name:16s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    (args.out / "background_subtracted.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
