"""Ablation of a candidate training recipe: which of its changes move the robustness matrix.

    python experiments/ablate_recipe.py --out runs/ablate_recipe     # ~4 min a variant, 2-core CPU

A candidate recipe (:data:`CANDIDATE_AUGMENT`, :data:`CANDIDATE_OVERRIDES`: keys to add to
``configs/default.yaml``) adds two groups of changes to the shipped recipe; each variant
trains the compact CNN briefly (``--train`` crops with the recipe's class shares,
``--epochs`` epochs, one seed: a comparison, not a product):

* ``optics``: augmentation over each matrix family's stated range: objects 0.6-2.1x as large
  (pixel size), defocus up to 3.5 px, an illumination gradient, noise up to ~2.2x, per-channel
  gain 0.1-10x, off-centre shifts up to ~7 px, 8-bit exports with clipped highlights and JPEG
  composites (the ``data.augment`` keys in :data:`OPTICS_KEYS`);
* ``mix``: the training mix: more CK+ fragments (with and without a DAPI piece) and tdEVs,
  more CK+CD45+ leukocytes, and non-specific CK / CD66b on leukocytes more often
  (``data.simulate.overrides`` and the ``data.augment`` keys in :data:`MIX_KEYS`).

Variants: ``previous`` (neither: the shipped recipe), ``+optics``, ``+mix``, ``all`` (the
candidate at this budget) and ``all-w24`` (the same, a 1.5x wider network: does capacity
limit it?). Every variant is scored on the same held-out crops (seed :data:`TEST_SEED`, not
the matrix's own seed): clean macro-F1, debris and CTC-fragment crops called ``ctc``, and every
range-end cell of the robustness matrix (flips, macro-F1, the matrix's targets). Writes
``ablation.json`` and ``ablation.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ctcnet.io.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
TEST_SEED = 31337
OPTICS_KEYS = ("zoom_p", "zoom_range", "defocus_p", "defocus_sigma", "gradient_p",
               "gradient_range", "noise_p", "noise_range", "gain_p", "gain_range",
               "shift_fraction", "export_p", "export_ceiling", "export_jpeg_share",
               "export_quality")
MIX_KEYS = ("nonspecific_ck_p", "nonspecific_ck_ratio", "nonspecific_neutrophil_p")
# The candidate recipe (experiments/marker-fidelity.md): `data.augment` and
# `data.simulate.overrides` to add to configs/default.yaml once a full-length run shows it does
# better than the shipped one.
CANDIDATE_AUGMENT = {
    "zoom_p": 0.4, "zoom_range": [0.55, 2.1], "defocus_p": 0.2, "defocus_sigma": [0.5, 3.5],
    "gradient_p": 0.25, "gradient_range": [0.05, 0.6], "noise_p": 0.25, "noise_range": [0.3, 2.0],
    "gain_p": 0.6, "gain_range": [0.1, 10.0], "shift_fraction": 0.09, "export_p": 0.3,
    "export_ceiling": [10.0, 800.0], "export_jpeg_share": 0.6, "export_quality": [30, 95],
    "nonspecific_ck_p": 0.4, "nonspecific_neutrophil_p": 0.15}
CANDIDATE_OVERRIDES = {"subtype_weights": {"fragment": 0.35, "tdev": 0.30},
                       "nonspecific_ck_rate": [0.1, 0.7]}
VARIANTS = {  # name -> (optics, mix, width)
    "previous": (False, False, 16),
    "+optics": (True, False, 16),
    "+mix": (False, True, 16),
    "all": (True, True, 16),
    "all-w24": (True, True, 24),
}


def recipe_parts() -> tuple[dict, dict, dict]:
    """(optics augment keys, mix augment keys, simulator overrides) of the candidate recipe."""
    return ({k: v for k, v in CANDIDATE_AUGMENT.items() if k in OPTICS_KEYS},
            {k: v for k, v in CANDIDATE_AUGMENT.items() if k in MIX_KEYS},
            dict(CANDIDATE_OVERRIDES))


def train(images, targets, spec, augment, epochs: int, seed: int = 0):
    """The recipe's loss and schedule in a plain loop (AdamW, one-cycle, balanced CE), one
    loader worker, gradients clipped at 5 as the recipe does."""
    from ablate_marker_fidelity import train_variant  # experiments/ is on sys.path when run

    return train_variant(images, targets, spec, augment, epochs, seed, num_workers=1,
                         clip_norm=5.0)


def score(model, test, subtypes: np.ndarray, cells) -> dict:
    from ctcnet.evaluation.matrix import check_targets, run_matrix
    from ctcnet.inference.backends import TorchBackend

    backend = TorchBackend.from_model(model, device="cpu")
    names = model.spec.class_names
    crops, labels = test
    matrix = run_matrix(crops, labels, names, lambda x: {"cnn": backend.predict_proba(x)},
                        cells, seed=TEST_SEED)
    panel = model.spec.panel
    matrix["epithelial_channel"] = panel.names[panel.index_of_role("epithelial")]
    check = check_targets(matrix)
    pred = backend.predict_proba(crops).argmax(1)
    ctc, debris = names.index("ctc"), names.index("debris")
    ends = [c for c in matrix["cells"] if c["range_end"]]
    return {
        "clean_macro_f1": matrix["clean"]["cnn"]["macro_f1"],
        "debris_called_ctc": float((pred[labels == debris] == ctc).mean()),
        "fragment_called_ctc": float((pred[subtypes == "fragment"] == ctc).mean()),
        "target_misses": len(check["failures"]),
        "cells_missing": len({f.rsplit(":", 1)[0] for f in check["failures"]}),
        "double_positive_wbc_called_ctc": check["double_positive_wbc_called_ctc"],
        "ends": {f"{c['name']} {c['label']}": [round(c["methods"]["cnn"]["flip_rate"], 4),
                                               round(c["methods"]["cnn"]["macro_f1"], 4)]
                 for c in ends},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "runs" / "ablate_recipe")
    p.add_argument("--train", type=int, default=6000, help="training crops per variant")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--test-per-class", type=int, default=100)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # the dataloader worker has the other core

    from ctcnet.evaluation.perturb import perturbation_catalogue
    from ctcnet.io.panel import default_panel
    from ctcnet.io.taxonomy import default_taxonomy
    from ctcnet.nn.spec import ModelSpec
    from ctcnet.simulate import SimConfig, simulate_crops
    from ctcnet.simulate.augment import build_train_augment
    from ctcnet.training.datamodule import with_overrides

    optics, mix, overrides = recipe_parts()
    panel, taxonomy = default_panel(), default_taxonomy()
    share = {"ctc": 0.25, "wbc": 0.25, "cluster": 1 / 6, "debris": 1 / 3}
    counts = {k: int(round(v * args.train)) for k, v in share.items()}
    t0 = time.perf_counter()
    test = simulate_crops(args.test_per_class, panel, taxonomy, 80, seed=TEST_SEED,
                          num_samples=24)
    test_xy = (test.images.astype(np.float32),
               np.array([taxonomy.index(s) for s in test.labels]))
    cells = [c for c in perturbation_catalogue(panel)[0] if c.range_end]

    def training_set(with_mix: bool):
        cfg = SimConfig()
        if with_mix:
            cfg = with_overrides(cfg, overrides)
        b = simulate_crops(counts, panel, taxonomy, 80, seed=7, config=cfg, num_samples=48)
        return b.images, np.array([taxonomy.index(s) for s in b.labels])

    sets = {flag: training_set(flag) for flag in {VARIANTS[v][1] for v in args.variants}}
    print(f"simulated in {time.perf_counter() - t0:.0f} s", flush=True)
    results = {}
    for name in args.variants:
        use_optics, use_mix, width = VARIANTS[name]
        augment = {**(optics if use_optics else {}), **(mix if use_mix else {})}
        spec = ModelSpec(arch="compact", panel=panel, taxonomy=taxonomy, crop_size=80,
                         arch_kwargs={} if width == 16 else {"width": width})
        t0 = time.perf_counter()
        model = train(*sets[use_mix], spec, build_train_augment(augment, seed=0,
                                                                roles=panel.roles()),
                      args.epochs)
        seconds = time.perf_counter() - t0
        results[name] = {"optics": use_optics, "mix": use_mix, "width": width,
                         "train_seconds": round(seconds),
                         **score(model, test_xy, np.array(test.subtypes), cells)}
        r = results[name]
        print(f"{name}: clean F1 {r['clean_macro_f1']:.3f}, misses {r['target_misses']}, "
              f"debris->ctc {r['debris_called_ctc']:.3f}, {seconds:.0f} s", flush=True)
        write(args, results)
    return 0


def write(args, results: dict) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"augment": CANDIDATE_AUGMENT, "overrides": CANDIDATE_OVERRIDES,
              "train_crops": args.train, "epochs": args.epochs,
              "test_per_class": args.test_per_class, "test_seed": TEST_SEED,
              "variants": results}
    atomic_write_text(args.out / "ablation.json", json.dumps(record, indent=2) + "\n")
    head = ["variant", "train s", "clean F1", "debris->ctc", "fragment->ctc",
            "CK+CD45+ wbc->ctc", "target misses (cells)"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for name, r in results.items():
        lines.append("| " + " | ".join([
            name, str(r["train_seconds"]), f"{r['clean_macro_f1']:.3f}",
            f"{r['debris_called_ctc']:.3f}", f"{r['fragment_called_ctc']:.2f}",
            f"{r['double_positive_wbc_called_ctc']:.3f}",
            f"{r['target_misses']} ({r['cells_missing']})"]) + " |")
    # Range-end cells where any variant misses a target, worst first for the first variant.
    first = next(iter(results.values()))
    shown = [k for k in first["ends"]
             if any(r["ends"][k][0] > 0.02 or r["ends"][k][1] < 0.97 for r in results.values())]
    shown.sort(key=lambda k: -first["ends"][k][0])
    lines += ["", "Range-end cells where a variant misses a target: flips / macro-F1.", "",
              "| cell | " + " | ".join(results) + " |", "|---" * (len(results) + 1) + "|"]
    for k in shown:
        lines.append(f"| {k} | " + " | ".join(f"{r['ends'][k][0]:.1%} / {r['ends'][k][1]:.3f}"
                                              for r in results.values()) + " |")
    atomic_write_text(args.out / "ablation.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())

