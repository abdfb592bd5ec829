"""Fit a model's marker fusion: its network output and the guard's marker measurements read
together into one crop-set call (:mod:`ctcnet.inference.marker_fusion`).

Crop sets are simulated from seeds of their own (none of the shape-swap family's, the cards' or
training's), most with every cell drawn in another class's shape, so that a cell's look cannot
stand in for its markers:

* models that read 16-bit scans: scan crops, the default look and shape-swapped;
* models whose markers an RGB export shows (DAPI, CK, CD45): tight single-cell RGB exports
  (R = CK, G = CD45, B = DAPI) at 0.05, 0.1 and 0.2 um/px, shape-swapped, and at 0.1 with the
  default look, each read with ``--pixel-size auto`` and ``fit`` as a user would read them;
* CK+CD45+ leukocytes (non-specific CK on every one) as a scan and as a tight export: the
  CellSearch line, a CD45-positive event is not a CTC;
* with ``--ck-copies``, the shape-swapped 0.1 um/px exports and the CK+CD45+ ones again with a
  copy of CK in every export's CD45 plane (15-30 %, as published dim-CK CTCs show one). The
  shipped fusions are fitted without them: with them, the composite model calls more such
  CTCs and more CK+CD45+ leukocytes ``ctc`` (docs/markers.md, "A copy of CK in the CD45
  plane").

The fusion (a multinomial logistic regression over the network's log-probabilities and the
marker measurements) is fitted on all of them; with ``--write`` it goes into the checkpoint's
spec (``metrics.marker_fusion``) and, metadata only, into the ONNX export beside it. Measure
it on the shape-swap family afterwards (``scripts/shape_swap.py``).

    python scripts/fit_marker_fusion.py --model models/ctcnet-core3.pt [--per-class 150] --write
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

log = logging.getLogger("fit_marker_fusion")
CLASSES = ("ctc", "wbc", "cluster", "debris")
SEED = 49000
# The markers a tight RGB export shows (R, G, B), which a model reading exports can be fed.
EXPORT_PLANES = ("CK", "CD45", "DAPI")


def fusion_sets(spec, out: Path, per_class: int, seed: int, ck_copies: bool = False
                ) -> list[tuple[str, Path, object]]:
    """(name, crop folder, pixel size to read it at) of the fitting sets, written once;
    ``ck_copies``: with the export sets whose CD45 planes show a copy of CK."""
    from shape_swap import family_config, make_scan_set, make_tight_set, reads_scans

    from ctcnet.simulate.config import SimConfig

    counts = {c: per_class for c in CLASSES}
    swap, plain = family_config(), SimConfig()
    ck_cd45 = family_config(nonspecific_ck_rate=(1.0, 1.0), nonspecific_ck_ratio=(0.3, 2.0))
    sets = []
    if reads_scans(spec):
        sets += [("scan", make_scan_set(out / "scan", spec, counts, seed, plain), None),
                 ("scan_swap", make_scan_set(out / "scan_swap", spec, counts, seed + 1, swap),
                  None),
                 ("scan_ck_cd45", make_scan_set(out / "scan_ck_cd45", spec,
                                                {"wbc": per_class}, seed + 2, ck_cd45), None)]
    if not set(spec.panel.names) <= set(EXPORT_PLANES):
        return sets  # a panel with more markers than an RGB export carries: scans only
    tight = [(f"tight_{um:g}um_swap", counts, swap, um, seed + 10 + k, 0.0)
             for k, um in enumerate((0.05, 0.1, 0.2))]
    tight += [("tight_0.1um", counts, plain, 0.1, seed + 20, 0.0),
              ("tight_ck_cd45", {"wbc": per_class}, ck_cd45, 0.1, seed + 30, 0.0)]
    if ck_copies:
        # Every export with a copy of CK in its CD45 plane, as published dim-CK CTCs show
        # one: a copy is no CD45, on a CTC or on a CK+CD45+ leukocyte.
        tight += [("tight_0.1um_copy", counts, swap, 0.1, seed + 40, 1.0),
                  ("tight_ck_cd45_copy", {"wbc": per_class}, ck_cd45, 0.1, seed + 50, 1.0)]
    for name, set_counts, config, um, set_seed, ck_copy in tight:
        root = make_tight_set(out / name, set_counts, set_seed, config, um, ck_copy)
        sets += [(f"{name}_{how}", root, how) for how in ("auto", "fit")]
    return sets


def collect(backend, sets) -> tuple:
    """Network probabilities, guard measurements and class indices over every set."""
    import numpy as np
    import pandas as pd

    from ctcnet.detect.crop_dataset import load_crops, read_crop_index
    from ctcnet.inference.guard import RULES, measure

    spec = backend.spec
    probas, tables, targets = [], [], []
    for name, root, pixel_size in sets:
        index = read_crop_index(root, pixel_size=pixel_size).conform(spec.panel)
        crops = load_crops(index, spec.crop_size, spec.pixel_size_um)
        probas.append(np.asarray(backend.predict_proba(crops)))
        # Measured as crop_set_calls measures them: a leak read as an export's on exports.
        tables.append(measure(crops, spec.panel, spec.pixel_size_um,
                              RULES.for_crops(index.exported)).assign(set=name))
        targets.append(np.array([spec.class_names.index(label) for label in index.labels]))
        log.info("%s: %d crops", name, len(crops))
    return (np.concatenate(probas), pd.concat(tables, ignore_index=True),
            np.concatenate(targets))


def main(argv=None) -> int:
    """Parse the command line and run the script; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", type=Path, required=True, help="the model's .pt checkpoint")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--strength", type=float, default=1.0,
                        help="inverse L2 penalty of the logistic regression")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "marker_fusion")
    parser.add_argument("--ck-copies", action="store_true",
                        help="also fit on exports whose CD45 plane shows a copy of CK")
    parser.add_argument("--write", action="store_true",
                        help="store the fusion in the checkpoint (and its ONNX export)")
    args = parser.parse_args(argv)

    import numpy as np

    from ctcnet.deploy.export import write_spec
    from ctcnet.inference.backends import TorchBackend
    from ctcnet.inference.marker_fusion import fit_fusion, fused_proba
    from ctcnet.nn.classifier import load_model

    t0 = time.perf_counter()
    model, spec = load_model(args.model)
    # The network alone: a fusion already in the spec must not feed its own fit.
    spec = spec.replace(metrics={k: v for k, v in spec.metrics.items() if k != "marker_fusion"})
    model.spec = spec
    backend = TorchBackend.from_model(model.eval())
    sets = fusion_sets(spec, args.out / "data", args.per_class, args.seed, args.ck_copies)
    proba, measured, targets = collect(backend, sets)
    fusion = fit_fusion(proba, measured, targets, spec.class_names, args.strength,
                        fitted_on={"script": "scripts/fit_marker_fusion.py",
                                   "seed": args.seed, "per_class": args.per_class,
                                   "sets": [name for name, _, _ in sets],
                                   "crops": int(len(targets)), "strength": args.strength})
    ctc = spec.class_names.index("ctc")
    fused = fused_proba(fusion, proba, measured, spec.class_names).argmax(axis=1)
    network = proba.argmax(axis=1)
    for name in measured["set"].unique():
        rows = (measured["set"] == name).to_numpy()
        true = targets[rows] == ctc
        log.info("%-24s CTC-vs-rest (fitted on it): network %.3f, fused %.3f", name,
                 np.mean((network[rows] == ctc) == true), np.mean((fused[rows] == ctc) == true))
    if args.write:
        onnx = write_spec(args.model, model,
                          spec.replace(metrics={**spec.metrics, "marker_fusion": fusion}))
        log.info("marker fusion written into %s%s", args.model,
                 f" and {onnx} (metadata; the graph is unchanged)" if onnx else "")
    log.info("%.0f s", time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
