"""Tight single-cell exports: make the test family and score a model on it.

The family (``ctcnet.simulate.export.write_tight_export_dataset``): cells rendered at 0.2 um/px
(finer than any scan the models were trained on), cut tight round the object, auto-contrasted
with the background clipped to black, written as RGB (R = CK, G = CD45, B = DAPI) at 0.05,
0.08, 0.125 and 0.2 um/px, PNG and JPEG in turn, with no pixel size in panel.json, as published
crops come. Each set is scored as a person would run it: with the pixel size given, and with
``--pixel-size auto`` (estimated from the nuclei); also, for the record, at the model's own
scale (what taking them for scan crops would do). Reported per set, for the calls ``ctcnet
predict`` makes on a crop set (the network's, with the markers taking part:
``ctcnet.inference.guard.crop_set_calls``): CTC-vs-rest accuracy (and the network's alone), CTC
recall and precision, and the share of true CTCs called ctc or shown to a person (the review
threshold or the marker guard, its possible_ctc flag included).

The export's display can hide a dim marker: a CTC whose cytokeratin stays under
``CK_SHOWN`` of 255 (3x3 mean, at model scale) shows a person no CK, and by the CellSearch
definition (CK positive) cannot be called a CTC from the image. Each set also reports how many
of its CTCs that is, and the two scores again without them (``..._ck_shown``), so what the
model misses can be told from what the export removed.

    python scripts/tight_exports.py [--model ctcnet-core3] [--per-class 250] [--out DIR]

The model scored by default is ``ctcnet-core3-export``, the one ctcnet chooses for a folder of
RGB composite crops.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXPORT_PIXEL_UM = (0.05, 0.08, 0.125, 0.2)
# The least CK peak (of 255; 3x3 mean at model scale) a CTC's export shows: 4 % of white, a
# shade a viewer does not tell from the black background beside bright channels.
CK_SHOWN = 10.0


def make_family(out: Path, per_class: int, seed: int) -> list[Path]:
    """The test family's datasets (made once; an existing set is reused)."""
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import tight_rendering, write_tight_export_dataset

    # Cells rendered for the field of view of 80 px at 0.64 um/px, as the card's tight tests.
    panel, side, config = tight_rendering(Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                                                   "channels": ["DAPI", "CK", "CD45"]}), 80)
    roots = []
    for k, um in enumerate(EXPORT_PIXEL_UM):
        root = out / f"tight_{um:g}um"
        if not (root / "manifest.csv").exists():
            batch = simulate_crops({c: per_class for c in ("ctc", "wbc", "cluster", "debris")},
                                   panel, crop_size=side, seed=seed + k, config=config)
            write_tight_export_dataset(batch, root, panel, pixel_size_um=um,
                                       file_format=("png", "jpg")[k % 2], seed=seed + k,
                                       state_pixel_size=False)
        roots.append(root)
    return roots


def ck_peak(crops, spec):
    """Each crop's CK peak (3x3 mean; the panel's epithelial channel) in its export's grey
    levels, at model scale."""
    from ctcnet.inference.spillover import mean3x3

    return mean3x3(crops[:, spec.panel.roles().index("epithelial")]).max(axis=(1, 2))


def score(backend, root: Path, pixel_size) -> dict:
    """Call the crop set at ``root`` as ``ctcnet predict`` does and score the CTC calls
    (accuracy, recall, what review shows)."""
    import numpy as np

    from ctcnet.detect.crop_dataset import load_crops, read_crop_index
    from ctcnet.inference.guard import RULES, crop_set_review
    from ctcnet.inference.options import spec_for_crop_set
    from ctcnet.nn.calls import calls_from_proba

    spec = backend.spec
    index = read_crop_index(root, pixel_size=pixel_size).conform(spec.panel)
    crops = load_crops(index, spec.crop_size, spec.pixel_size_um)
    proba = np.asarray(backend.predict_proba(crops))
    # The rule predict applies to a crop folder: balanced, with the model's crop-set band.
    rule = spec_for_crop_set(spec, None)[0].decision
    called, _, review, _ = calls_from_proba(proba, spec.class_names, spec.review_threshold,
                                            rule)
    groups = np.asarray(index.sample_ids)
    network_said = called == "ctc"
    # The calls predict makes on a crop set: the markers take part (guard.crop_set_review).
    called, flags = crop_set_review(crops, proba, spec, called, groups,
                                    rules=RULES.for_crops(index.exported))
    labels = np.asarray(index.labels)
    true, said = labels == "ctc", called == "ctc"
    shown = review | flags["any"].to_numpy()
    # Scored again without the CTCs whose export shows no CK (CK_SHOWN).
    kept = ~true | (ck_peak(crops, spec) >= CK_SHOWN)
    return {"pixel_size_um": round(float(index.panel.pixel_size_um), 4), "n": int(len(labels)),
            "ctc_vs_rest_accuracy": float((true == said).mean()),
            "network_ctc_vs_rest_accuracy": float((true == network_said).mean()),
            "ctc_recall": float(said[true].mean()),
            "ctc_precision": float(true[said].mean()) if said.any() else float("nan"),
            "accuracy": float((called == labels).mean()),
            "ctc_called_or_shown": float((said | shown)[true].mean()),
            # ... or called cluster: reported as a CTC-bearing event, under the wrong class.
            "ctc_called_ctc_or_cluster_or_shown": float(
                (said | (called == "cluster") | shown)[true].mean()),
            "ctc_ck_not_shown": int((true & ~kept).sum()),
            "ctc_vs_rest_accuracy_ck_shown": float((true == said)[kept].mean()),
            "ctc_called_or_shown_ck_shown": float((said | shown)[true & kept].mean()),
            "flagged_share": float(flags["any"].mean()),
            # The review load: the share of crops shown to a person (called ctc or not).
            "shown_share": float(shown.mean()),
            "possible_ctc_share": float(flags["possible_ctc"].mean())}


def main(argv=None) -> int:
    """Parse the command line and run the script; returns the exit status."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", default="ctcnet-core3-export")
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--seed", type=int, default=37000)
    parser.add_argument("--out", type=Path, default=ROOT / "tight_exports_output")
    args = parser.parse_args(argv)

    from ctcnet.inference.backends import load_backend
    from ctcnet.io.atomic import atomic_write_text

    t0 = time.perf_counter()
    roots = make_family(args.out / "data", args.per_class, args.seed)
    backend = load_backend(args.model)
    results = {}
    print(f"model {backend.model_path}; {args.per_class} crops a class per set")
    print(f"{'set':16s} {'read at':14s} {'um/px':>6s} {'ctc-v-rest':>10s} {'recall':>7s} "
          f"{'precis':>7s} {'acc':>6s} {'shown':>6s} {'flag':>6s} {'no CK':>5s} "
          f"{'c-v-r CK':>8s} {'shown CK':>8s}")
    for root, um in zip(roots, EXPORT_PIXEL_UM):
        for how, pixel_size in (("given", um), ("auto", "auto"),
                                ("model scale", backend.spec.pixel_size_um)):
            r = score(backend, root, pixel_size)
            results[f"{root.name}/{how}"] = r
            print(f"{root.name:16s} {how:14s} {r['pixel_size_um']:6.3f} "
                  f"{r['ctc_vs_rest_accuracy']:10.3f} {r['ctc_recall']:7.3f} "
                  f"{r['ctc_precision']:7.3f} {r['accuracy']:6.3f} "
                  f"{r['ctc_called_or_shown']:6.3f} {r['flagged_share']:6.3f} "
                  f"{r['ctc_ck_not_shown']:5d} {r['ctc_vs_rest_accuracy_ck_shown']:8.3f} "
                  f"{r['ctc_called_or_shown_ck_shown']:8.3f}")
    for how in ("given", "auto", "model scale"):
        rows = [v for k, v in results.items() if k.endswith("/" + how)]
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in
                ("ctc_vs_rest_accuracy", "ctc_recall", "ctc_called_or_shown",
                 "ctc_called_ctc_or_cluster_or_shown", "ctc_vs_rest_accuracy_ck_shown",
                 "ctc_called_or_shown_ck_shown", "shown_share")}
        results[f"mean/{how}"] = mean
        print(f"mean, pixel size {how}: CTC-vs-rest {mean['ctc_vs_rest_accuracy']:.3f}, "
              f"recall {mean['ctc_recall']:.3f}, called or shown "
              f"{mean['ctc_called_or_shown']:.3f} (or cluster: "
              f"{mean['ctc_called_ctc_or_cluster_or_shown']:.3f}); without the CTCs whose "
              f"export shows no CK: CTC-vs-rest {mean['ctc_vs_rest_accuracy_ck_shown']:.3f}, "
              f"called or shown {mean['ctc_called_or_shown_ck_shown']:.3f}; crops shown "
              f"{mean['shown_share']:.3f}")
    out = {"model": str(backend.model_path), "per_class": args.per_class, "seed": args.seed,
           "results": results, "seconds": time.perf_counter() - t0}
    atomic_write_text(args.out / "tight_exports.json", json.dumps(out, indent=2) + "\n")
    print(f"{time.perf_counter() - t0:.0f} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
