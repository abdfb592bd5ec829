"""The shape-swap test family: every cell drawn with another class's shape, only markers differ.

``SimConfig(shape_swap=1)`` gives every CTC a leukocyte's outline, size and nucleus (round and
small, lobed, kidney-shaped) and every leukocyte another shape (a CTC's included), bare
nuclei any cell's nucleus: a network that reads morphology gets the family wrong, one that
reads CK, CD45 and DAPI gets it right. Three sets per model, each written as a crop folder and
read back as ``ctcnet evaluate`` reads one:

* ``scan``: 16-bit crops of the model's panel at its pixel size (models that read scans);
* ``tight_<um>``: tight single-cell RGB exports (R = CK, G = CD45, B = DAPI, black background)
  at 0.05-0.2 um/px with no pixel size stated, read with ``--pixel-size auto`` and ``fit``;
* ``scale_agreement``: the 0.1 um/px export set read again with its pixel size stated at
  0.5x-2x of the truth, and with none stated (``auto``, ``fit``): the spread of CTC-vs-rest
  over those reads (target: within 0.02);
* ``ck_cd45``: CK+CD45+ leukocytes only (non-specific CK on every one, 0.3-2x their CD45), as
  a scan and as a tight export: the share called ``ctc`` (target: at most 1 %);
* ``copy_tight`` and ``ck_cd45_copy_tight``: the 0.1 um/px export set and the CK+CD45+ one
  drawn again (other seeds) with a copy of CK at 15-30 % in every export's CD45 plane, as
  published dim-CK CTCs show one (CK's dye seen through the CD45 filter).

A model that needs channels a three-marker export lacks (the five-channel default) is scored
on the scan sets alone.

Reported per set (``scripts/tight_exports.score``): CTC-vs-rest accuracy, CTC recall and
precision, and the share of true CTCs called ``ctc`` or shown to a person (targets: CTC-vs-rest
>= 0.97, called or shown >= 0.99).

    python scripts/shape_swap.py [--model ctcnet-core3] [--per-class 200] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

CLASSES = ("ctc", "wbc", "cluster", "debris")
EXPORT_PIXEL_UM = (0.05, 0.1, 0.2)
# How the exports (no pixel size stated) are read: one scale from the nuclei, or each crop
# fitted to its cell.
READ_AS = ("auto", "fit")
# Stated pixel sizes, as multiples of the true one, at which one export set is read again.
SCALE_FACTORS = (0.5, 0.71, 1.0, 1.41, 2.0)


def family_config(**knobs):
    """The simulator's default ranges with every cell's shape swapped."""
    from ctcnet.simulate.config import SimConfig

    return dataclasses.replace(SimConfig(), shape_swap=1.0, **knobs)


def make_scan_set(root: Path, spec, counts: dict, seed: int, config) -> Path:
    """16-bit crops of the model's panel (pixel size stated), written once."""
    from ctcnet.simulate.crops import simulate_crops, write_crop_batch

    if not (root / "manifest.csv").exists():
        batch = simulate_crops(counts, spec.panel, spec.taxonomy, crop_size=spec.crop_size,
                               seed=seed, config=config, num_samples=16)
        write_crop_batch(batch, root, spec.panel)
    return root


def make_tight_set(root: Path, counts: dict, seed: int, config, um: float,
                   ck_copy: float = 0.0) -> Path:
    """Tight RGB exports at ``um`` um/px, no pixel size stated, written once; ``ck_copy``: the
    share of them whose CD45 plane shows a copy of CK (``write_tight_export_dataset``)."""
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import tight_rendering, write_tight_export_dataset

    if not (root / "manifest.csv").exists():
        panel, side, config = tight_rendering(Panel.from_dict(
            {"name": "core3", "pixel_size_um": 0.64, "channels": ["DAPI", "CK", "CD45"]}), 80,
            config=config)
        batch = simulate_crops(counts, panel, crop_size=side, seed=seed, config=config,
                               num_samples=16)
        write_tight_export_dataset(batch, root, panel, pixel_size_um=um,
                                   file_format="png" if um < 0.1 else "jpg", seed=seed,
                                   state_pixel_size=False, ck_copy=ck_copy)
    return root


def reads_scans(spec) -> bool:
    """Whether the model reads 16-bit scans (an export-only model reads composites alone)."""
    return not spec.panel.to_dict().get("composite") and not spec.reads_exports


def reads_composites(spec) -> bool:
    """Whether a three-marker export (CK, CD45, DAPI) has every channel the model needs (a
    five-channel model's CD61 and CD66b are not in it)."""
    from ctcnet.io.panel import Panel
    from ctcnet.nn.registry import missing_channels

    export = Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                              "channels": ["DAPI", "CK", "CD45"]})
    return not missing_channels(spec.panel, export)


def run_family(backend, out: Path, per_class: int, seed: int) -> dict:
    """Score ``backend`` on the shape-swap crops (and the CK+CD45+ ones) in the view it reads,
    scans or exports."""
    from tight_exports import score

    spec = backend.spec
    counts = {c: per_class for c in CLASSES}
    swap = family_config()
    ck_cd45 = family_config(nonspecific_ck_rate=(1.0, 1.0), nonspecific_ck_ratio=(0.3, 2.0))
    results = {}
    if reads_scans(spec):
        root = make_scan_set(out / f"scan_{spec.panel.name}", spec, counts, seed, swap)
        results["scan"] = score(backend, root, None)
        root = make_scan_set(out / f"ck_cd45_scan_{spec.panel.name}", spec,
                             {"wbc": per_class}, seed + 1, ck_cd45)
        r = score(backend, root, None)
        results["ck_cd45_scan"] = {"called_ctc": 1.0 - r["ctc_vs_rest_accuracy"], "n": r["n"]}
    if not reads_composites(spec):
        return results
    for k, um in enumerate(EXPORT_PIXEL_UM):
        root = make_tight_set(out / f"tight_{um:g}um", counts, seed + 10 + k, swap, um)
        for how in READ_AS:
            results[f"tight_{um:g}um_{how}"] = score(backend, root, how)
    # One export set read at 0.5x-2x of its true pixel size, and with none stated (each crop
    # fitted to its cell; the nuclei's estimate): the calls must not swing with the scale.
    um = EXPORT_PIXEL_UM[1]
    root = out / f"tight_{um:g}um"
    reads = {f"{factor:g}x": score(backend, root, um * factor) for factor in SCALE_FACTORS}
    reads.update({how: results[f"tight_{um:g}um_{how}"] for how in READ_AS})
    accuracy = {k: r["ctc_vs_rest_accuracy"] for k, r in reads.items()}
    results["scale_agreement"] = {"ctc_vs_rest_accuracy": accuracy,
                                  "spread": max(accuracy.values()) - min(accuracy.values())}
    root = make_tight_set(out / "ck_cd45_tight", {"wbc": per_class}, seed + 20, ck_cd45, 0.1)
    for how in READ_AS:
        r = score(backend, root, how)
        results[f"ck_cd45_tight_{how}"] = {"called_ctc": 1.0 - r["ctc_vs_rest_accuracy"],
                                           "n": r["n"]}
    # Every export of every class with a copy of CK in its CD45 plane (15-30 %), as published
    # dim-CK CTCs show one: the copy must not make a CTC a leukocyte, nor a CK+CD45+
    # leukocyte a CTC.
    root = make_tight_set(out / f"copy_tight_{um:g}um", counts, seed + 30, swap, um, 1.0)
    for how in READ_AS:
        results[f"copy_tight_{um:g}um_{how}"] = score(backend, root, how)
    root = make_tight_set(out / "ck_cd45_copy_tight", {"wbc": per_class}, seed + 40, ck_cd45,
                          um, 1.0)
    for how in READ_AS:
        r = score(backend, root, how)
        results[f"ck_cd45_copy_tight_{how}"] = {"called_ctc": 1.0 - r["ctc_vs_rest_accuracy"],
                                                "n": r["n"]}
    for how in READ_AS:
        tight = [v for k, v in results.items() if k.startswith("tight_") and k.endswith(how)]
        results[f"tight_mean_{how}"] = {key: sum(r[key] for r in tight) / len(tight)
                                        for key in ("ctc_vs_rest_accuracy",
                                                    "network_ctc_vs_rest_accuracy",
                                                    "ctc_recall", "ctc_called_or_shown",
                                                    "shown_share")}
    return results


def main(argv=None) -> int:
    """Parse the command line and run the script; returns the exit status."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", action="append",
                        help="model name or file (repeatable; default: core3 and core3-export)")
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=48100)
    parser.add_argument("--out", type=Path, default=ROOT / "shape_swap_output")
    args = parser.parse_args(argv)
    # The CK+CD45+ sets hold no CTC: their CTC recall is an empty mean, reported as NaN.
    warnings.filterwarnings("ignore", category=RuntimeWarning)

    from ctcnet.inference.backends import load_backend
    from ctcnet.io.atomic import atomic_write_text

    t0 = time.perf_counter()
    report = {"per_class": args.per_class, "seed": args.seed, "models": {}}
    for name in args.model or ["ctcnet-core3", "ctcnet-core3-export"]:
        backend = load_backend(name)
        results = run_family(backend, args.out / "data", args.per_class, args.seed)
        report["models"][str(name)] = results
        print(f"model {name}")
        for key, r in results.items():
            if key == "scale_agreement":
                print(f"  {key:16s} CTC-vs-rest spread {r['spread']:.3f} over " + ", ".join(
                    f"{k} {v:.3f}" for k, v in r["ctc_vs_rest_accuracy"].items()))
            elif "called_ctc" in r:
                print(f"  {key:16s} CK+CD45+ leukocytes called ctc {r['called_ctc']:.3f} "
                      f"(n {r['n']})")
            elif "n" in r:
                print(f"  {key:16s} CTC-vs-rest {r['ctc_vs_rest_accuracy']:.3f} (network "
                      f"alone {r['network_ctc_vs_rest_accuracy']:.3f})  recall "
                      f"{r['ctc_recall']:.3f}  precision {r['ctc_precision']:.3f}  called or "
                      f"shown {r['ctc_called_or_shown']:.3f}  accuracy {r['accuracy']:.3f}  "
                      f"crops shown {r['shown_share']:.3f}")
            else:
                print(f"  {key:16s} CTC-vs-rest {r['ctc_vs_rest_accuracy']:.3f} (network "
                      f"alone {r['network_ctc_vs_rest_accuracy']:.3f})  recall "
                      f"{r['ctc_recall']:.3f}  called or shown {r['ctc_called_or_shown']:.3f}  "
                      f"crops shown {r['shown_share']:.3f}")
    report["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_text(args.out / "shape_swap.json", json.dumps(report, indent=2) + "\n")
    print(f"{report['seconds']:.0f} s; wrote {args.out / 'shape_swap.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
