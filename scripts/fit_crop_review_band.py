"""Fit a model's review band for crop sets for a stated miss rate on held-out crops, check it
on a fresh family, and write it into the model files (``ctcnet.evaluation.miss_rate``).

A crop folder is called at the balanced prior, the markers taking part (``ctcnet predict``).
A call of an uncounted class is shown to a person when a counted class (``ctc``, ``cluster``)
holds at least the band of the network's posterior. The band is the largest whose share of
CTCs and clusters neither called a counted class nor shown stays under ``--level`` with
``--confidence`` (fixed-sequence test, one-sided Clopper-Pearson bound), fitted on
``--per-class`` crops a class of each of the model's looks, predicted as ``ctcnet predict``
predicts a crop folder:

* a model that reads composite exports (``spec.reads_exports``): the export families on
  other seeds than their tests': tight single-cell exports at 0.05, 0.08, 0.125 and 0.2 um/px,
  PNG and JPEG in turn, read with the pixel size given (``scripts/tight_exports.py``); the
  same at 0.1 um/px of cells drawn in another class's shape (``scripts/shape_swap.py``); and
  hand-drawn published-style composites (a quarter as many a kind), each scaled to fit its
  cell (``scripts/drawn_composites.py``);
* a model that reads scans: 16-bit crops of its panel at its pixel size, several samples.

``--write`` puts the band, with its record, into ``spec.metrics["crop_review_band"]`` (the
checkpoint, and metadata only the ONNX export beside it) and its card. Without a band a crop
set shows an uncounted call under the review threshold whenever a counted class is its
runner-up.

    python scripts/fit_crop_review_band.py --model models/ctcnet-core3-export.pt
        [--per-class 150] [--level 0.01] [--confidence 0.95] [--write]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
FIT_SEED = 38000    # the tight export family's test seed is 37000
CHECK_SEED = 39000
EXPORT_PIXEL_UM = (0.05, 0.08, 0.125, 0.2)
CLASSES = ("ctc", "wbc", "cluster", "debris")


def folders(spec, out: Path, per_class: int, seed: int) -> list[tuple[Path, str | None]]:
    """The family's crop folders (written once) and the pixel size each is read at."""
    if spec.reads_exports:
        from drawn_composites import write_drawn_set
        from shape_swap import family_config, make_tight_set
        from tight_exports import make_family

        counts = {c: per_class for c in CLASSES}
        return [*zip(make_family(out, per_class, seed), EXPORT_PIXEL_UM),
                (make_tight_set(out / "swap", counts, seed + 10, family_config(), 0.1), 0.1),
                (write_drawn_set(out / "drawn", max(1, per_class // 4), seed=seed), "fit")]
    from ctcnet.simulate.crops import simulate_crops, write_crop_batch

    root = out / "scan"
    if not (root / "manifest.csv").exists():
        batch = simulate_crops({c: per_class for c in spec.class_names}, spec.panel,
                               crop_size=spec.crop_size, seed=seed, num_samples=8)
        write_crop_batch(batch, root, spec.panel)
    return [(root, None)]


def band_inputs(table: pd.DataFrame, spec) -> pd.DataFrame:
    """Per crop of a predicted crop folder: the largest counted-class share of the network's
    posterior that the band reads (0 where the band never reads it: a counted network call),
    whether the crop is on the review list whatever the band (flagged, a counted network call
    under the review threshold, failed) and whether it is shown so or called a counted class,
    whether it is a CTC or cluster, and whether the rule without a band listed it."""
    from ctcnet.nn.calls import COUNTED_CLASSES, FAILED_CLASS

    counted = [c for c in spec.class_names if c in COUNTED_CLASSES]
    mass = table[[f"p_{c}" for c in counted]].max(axis=1).to_numpy(np.float64)
    network_counted = table["model_class"].isin(counted).to_numpy()
    # On the review list whatever the band: flagged, failed, a counted network call in doubt.
    listed = (table["guard"].fillna("").astype(str) != "").to_numpy() | \
        (table["class"] == FAILED_CLASS).to_numpy() | \
        (network_counted & (table["confidence"].to_numpy() < spec.review_threshold))
    return pd.DataFrame({"counted_mass": np.where(network_counted, 0.0, mass),
                         "shown_otherwise": listed | table["class"].isin(counted).to_numpy(),
                         "listed_otherwise": listed,
                         "is_counted_truth": table["label"].isin(counted).to_numpy(),
                         "network_doubt_shown": table["review"].to_numpy(bool)})


def predicted(spec, model: Path, out: Path, per_class: int, seed: int) -> pd.DataFrame:
    """The band's inputs over every crop of the family of ``seed``, predicted with ``model``
    as ``ctcnet predict`` predicts a crop folder (without a crop band: the plain rule)."""
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.crop_sets import predict_crop_dataset
    from ctcnet.inference.options import CROP_REVIEW_BAND, PredictOptions

    backend = load_backend(model)
    metrics = dict(backend.spec.metrics or {})
    metrics.pop(CROP_REVIEW_BAND, None)
    backend.spec = backend.spec.replace(metrics=metrics)
    parts = []
    for root, pixel_size in folders(spec, out / "data", per_class, seed):
        res = out / "runs" / root.name
        predict_crop_dataset(root, backend, res, PredictOptions(
            quiet=True, overwrite=True, pixel_size=pixel_size))
        table = pd.read_parquet(next(res.rglob("predictions.parquet")))
        parts.append(band_inputs(table, spec))
    return pd.concat(parts, ignore_index=True)


def main() -> int:
    """Simulate, predict, fit, check and (with ``--write``) record the band."""
    from ctcnet.deploy.export import write_spec
    from ctcnet.evaluation.miss_rate import (
        band_for_miss_rate,
        fresh_verdict,
        misses_at,
        no_band_text,
    )
    from ctcnet.evaluation.model_card import update_card
    from ctcnet.inference.options import CROP_REVIEW_BAND
    from ctcnet.io.atomic import atomic_write_text
    from ctcnet.nn.classifier import load_model

    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", type=Path,
                        default=ROOT / "models" / "ctcnet-core3-export.pt")
    parser.add_argument("--per-class", type=int, default=150)
    parser.add_argument("--level", type=float, default=0.01)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--work", type=Path, default=None,
                        help="where the crops and runs go (default: runs/crop_review_band/"
                             "<model name>)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.work = args.work or ROOT / "runs" / "crop_review_band" / args.model.stem
    t0 = time.perf_counter()
    model, spec = load_model(args.model)
    families = {name: predicted(spec, args.model, args.work / name, args.per_class, seed)
                for name, seed in (("fit", FIT_SEED), ("check", CHECK_SEED))}
    fit, check = families["fit"], families["check"]
    inputs = lambda f: (f["counted_mass"], f["shown_otherwise"],  # noqa: E731
                        f["is_counted_truth"])
    record = band_for_miss_rate(*inputs(fit), args.level, args.confidence)
    if record["band"] is None:
        print(f"{no_band_text(record)}: {json.dumps(record)}")
        return 1
    look = ("tight single-cell composite exports at " + ", ".join(map(str, EXPORT_PIXEL_UM))
            + " um/px, PNG and JPEG, read with the pixel size given; the same of cells in "
            "another class's shape at 0.1 um/px; hand-drawn composites scaled to fit") \
        if spec.reads_exports \
        else f"16-bit crops of the model's panel at {spec.pixel_size_um} um/px, 8 samples"
    record.update(
        reads="network",
        fitted_on={"crops": int(len(fit)), "per_class": args.per_class, "seed": FIT_SEED,
                   "what": f"simulated held-out crops, balanced: {look}"},
        fresh_family={**misses_at(record["band"], *inputs(check)), "crops": int(len(check)),
                      "seed": CHECK_SEED},
        # The review list's share of the crops with the band, and under the rule before it
        # (a counted class the runner-up), with its misses.
        review_load={name: round(float((f["listed_otherwise"] |
                                        (f["counted_mass"] >= record["band"])).mean()), 5)
                     for name, f in (("fit", fit), ("fresh_family", check))},
        without_band={name: {"review_load": round(float((f["listed_otherwise"] |
                                                          f["network_doubt_shown"]).mean()), 5),
                             "misses": int((f["is_counted_truth"] & ~f["shown_otherwise"] &
                                            ~f["network_doubt_shown"]).sum())}
                      for name, f in (("fit", fit), ("fresh_family", check))},
        command=f"python scripts/fit_crop_review_band.py --model MODEL --per-class "
                f"{args.per_class} --level {args.level} --confidence {args.confidence}")
    atomic_write_text(args.work / "crop_review_band.json", json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    verdict = fresh_verdict(record["fresh_family"], args.level, args.confidence)
    if verdict is not None:
        print(f"{verdict[0]}: {verdict[1]}")
    if args.write and verdict is not None and verdict[0] == "refuse":
        return 1
    if args.write:
        metrics = {**dict(spec.metrics or {}), CROP_REVIEW_BAND: record}
        write_spec(args.model, model, spec.replace(metrics=metrics))
        card = args.model.with_suffix(".json")
        if card.exists():
            update_card(card, crop_review_band=record)
        print(f"crop band {record['band']:.4g} written into {args.model}")
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
