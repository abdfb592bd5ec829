"""Scan-resolution thumbnails as RGB composites: make the test family and score the models on it.

The simulator's crops of the three-marker panel (DAPI, CK, CD45) at a scan's pixel size (80 px
at 0.64 um/px: what a scanner's gallery shows of an event), written three ways:

* ``tiff16``: the 16-bit crops themselves (panel.json states the pixel size);
* ``rgb_sample``: 8-bit RGB JPEG composites (R = CK, G = CD45, B = DAPI) with one display
  range per sample and channel, as a scanner's gallery exports a sample's events;
* ``rgb_image``: the same with one display range per crop (each stretched on its own).

Each folder is read as ``ctcnet predict`` reads a crop folder (the markers taking part in the
calls): with the model ctcnet chooses for it (``auto``: the scan model, for the 16-bit crops
and for composites stated at a scanner's pixel size alike) and with each three-marker model
named. Reported per folder and model: macro-F1 over the four classes, CTC recall, CTC-vs-rest
accuracy, leukocytes called ``ctc``, and the share of crops shown to a person. Targets (for
the composites, with the model ctcnet chooses): macro-F1 >= 0.95 and within 0.02 of the 16-bit
crops'.

    python scripts/scan_thumbnails.py [--per-class 150] [--seed 52700] [--out DIR] [--model M]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLASSES = ("ctc", "wbc", "cluster", "debris")
MODELS = ("auto", "ctcnet-core3", "ctcnet-core3-export")
PIXEL_UM, CROP = 0.64, 80


def composite(display: str) -> str:
    """The folder of the RGB composites with one display range per ``display``."""
    return f"rgb_{display}"


def make_family(out: Path, per_class: int, seed: int) -> dict[str, Path]:
    """The three folders of one simulated crop batch (made once; existing ones are reused)."""
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops, write_crop_batch
    from ctcnet.simulate.export import DISPLAYS, write_rgb_jpeg_dataset

    panel = Panel.from_dict({"name": "core3", "pixel_size_um": PIXEL_UM,
                             "channels": ["DAPI", "CK", "CD45"]})
    roots = {look: out / look for look in ("tiff16", *(composite(d) for d in DISPLAYS))}
    if all((r / "manifest.csv").exists() for r in roots.values()):
        return roots
    batch = simulate_crops({c: per_class for c in CLASSES}, panel, crop_size=CROP, seed=seed)
    write_crop_batch(batch, roots["tiff16"], panel)
    for display in DISPLAYS:
        write_rgb_jpeg_dataset(batch, roots[composite(display)], panel, seed=seed + 1,
                               display=display)
    return roots


def score(root: Path, model: str) -> dict:
    """``ctcnet predict`` on the folder (``model``: a model's name or file, or ``auto``)."""
    import numpy as np
    import pandas as pd

    from ctcnet.cli import main as ctcnet
    from ctcnet.evaluation.metrics import macro_f1

    args = ["predict", str(root), "--quiet", "--no-report"]
    if model != "auto":
        args += ["--model", model]
    with tempfile.TemporaryDirectory() as out, contextlib.redirect_stdout(io.StringIO()):
        if ctcnet([*args, "--out", out]) != 0:
            return {"error": f"ctcnet predict {' '.join(args)} failed"}
        folder = Path(out) / root.name
        table = pd.read_parquet(folder / "predictions.parquet")
        chosen = json.loads((folder / "summary.json").read_text()).get("model", model)
    labels, calls = table["label"].astype(str).to_numpy(), table["class"].astype(str).to_numpy()
    index = {c: k for k, c in enumerate(CLASSES)}
    y = np.array([index[c] for c in labels])
    p = np.array([index.get(c, -1) for c in calls])
    true, said = labels == "ctc", calls == "ctc"
    return {"model": Path(str(chosen)).stem, "n": int(len(table)),
            "macro_f1": round(float(macro_f1(y, p, len(CLASSES))), 4),
            "ctc_recall": round(float(said[true].mean()), 4),
            "ctc_vs_rest": round(float((true == said).mean()), 4),
            "wbc_called_ctc": round(float(said[labels == "wbc"].mean()), 4),
            "shown": round(float(table["review"].mean()), 4)}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the script; returns the exit status."""
    from ctcnet.io.atomic import atomic_write_text

    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--seed", type=int, default=52700)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "scan_thumbnails")
    parser.add_argument("--model", action="append", default=[],
                        help="also score this model (a file or a name; repeatable)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    roots = make_family(args.out / "data", args.per_class, args.seed)
    results = {f"{look}/{model}": score(root, model)
               for look, root in roots.items() for model in (*MODELS, *args.model)}
    print(f"{'folder / model asked':34s} {'model':22s} macro-F1 ctc-rec c-v-r  wbc>ctc shown")
    for key, r in results.items():
        if "error" in r:
            print(f"{key:34s} {r['error']}")
            continue
        print(f"{key:34s} {r['model']:22s} {r['macro_f1']:8.3f} {r['ctc_recall']:7.3f} "
              f"{r['ctc_vs_rest']:5.3f} {r['wbc_called_ctc']:7.3f} {r['shown']:5.3f}")
    base = results["tiff16/auto"].get("macro_f1")
    for look in (r for r in roots if r != "tiff16"):
        got = results[f"{look}/auto"].get("macro_f1")
        if got is not None and base is not None:
            print(f"{look}: macro-F1 {got:.3f} with the model ctcnet chooses, {got - base:+.3f} "
                  f"against the 16-bit crops' {base:.3f} (targets: >= 0.95, within 0.02)")
    record = {"per_class": args.per_class, "seed": args.seed, "pixel_size_um": PIXEL_UM,
              "crop_size": CROP, "results": results, "seconds": time.perf_counter() - t0}
    atomic_write_text(args.out / "scan_thumbnails.json", json.dumps(record, indent=2) + "\n")
    print(f"{record['seconds']:.0f} s; wrote {args.out / 'scan_thumbnails.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
