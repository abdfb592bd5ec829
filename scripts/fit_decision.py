"""Fit a model's decision rule at cartridge prevalence and write it into the model files.

The network is trained on balanced classes; on a cartridge, debris outnumbers CTCs ~1,000 to 1.
This simulates ``--cartridges`` fitting cartridges (seeds from ``--seed``, disjoint from the
count evaluation's 61000 and from training), predicts them with the model *without* a rule,
and fits per-class log weights for the rare classes (``ctcnet.evaluation.decision``): the
weights that maximise the expected share of full-size cartridges (``--deployment-events``)
whose automatic CTC count is within max(1, 15 %) of the truth and on the right side of the
>= 5 cut-off. The rule goes into the checkpoint's spec (``spec.decision``) and, metadata only,
into the ONNX export beside it (same stem), which stays current; ``--out`` writes a copy
instead of changing ``--model``.

    python scripts/fit_decision.py --model models/ctcnet-default.pt [--cartridges 20]
        [--frames 10] [--seed 62000] [--work DIR] [--out NEW.pt]

Then measure on other seeds: ``python scripts/cartridge_counts.py --model models/...pt``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("fit_decision")
FIT_SEED = 62000  # count evaluation 61000, training 0, validation 1000, test 424242
CHECK_SEED = 72000  # the balanced crops on which the card records the rule's per-crop cost
# The least a rule is fitted on: 2 cartridges of 2 frames (26 CTCs, one cartridge without)
# wrote a weight of -0.25 over the shipped -3.00 into the model, its card reading recall 1.000.
MIN_CARTRIDGES = 10
MIN_CTCS = 100


def kept_review_band(before, rule):
    """``rule`` with the review band the model carried, where the refit gave the same weights
    (the band was fitted under them and still holds: the record is refreshed, not the rule);
    without it, saying so, where the weights moved (a band holds only for the rule it was
    fitted under: refit it with ``scripts/fit_review_band.py``)."""
    record = before.review_band_record
    if record is None:
        return rule
    if before.weights == rule.weights:
        return rule.with_review_band(record)
    log.warning("the rule's weights moved (%s -> %s): the review band fitted under the old "
                "rule is dropped; fit it again: python scripts/fit_review_band.py --model MODEL "
                "--write", before.weights, rule.weights)
    return rule


def per_crop_cost(model_path: Path, per_class: int, seed: int, device: str) -> dict:
    """Recall per class with the model's rule and with the plain most probable class, on a
    balanced simulated crop set (``evaluation.evaluate.rule_cost``)."""
    import numpy as np

    from ctcnet.evaluation.evaluate import rule_cost
    from ctcnet.evaluation.test_set import labels_to_indices
    from ctcnet.inference.backends import load_backend
    from ctcnet.simulate import simulate_crops

    backend = load_backend(model_path, "torch", device)
    spec = backend.spec
    batch = simulate_crops(per_class, spec.panel, spec.taxonomy, crop_size=spec.crop_size,
                           seed=seed, num_samples=32)
    proba = backend.predict_proba(batch.images.astype(np.float32))
    cost = rule_cost(proba, labels_to_indices(batch.labels, spec.class_names), spec)
    return {"per_class": per_class, "seed": seed, "recall": cost["recall"]}


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the script; returns the exit status."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", type=Path, required=True, help="the model's .pt checkpoint")
    parser.add_argument("--out", type=Path, help="write the model with its rule here (default: "
                        "--model itself, and its .onnx beside it)")
    parser.add_argument("--cartridges", type=int, default=20)
    parser.add_argument("--frames", type=int, default=10, help="frames per fitting cartridge")
    parser.add_argument("--events-per-frame", type=float, default=300)
    parser.add_argument("--seed", type=int, default=FIT_SEED)
    parser.add_argument("--deployment-events", type=float, default=175 * 300,
                        help="events per cartridge where the model is used")
    parser.add_argument("--classes", default="ctc,cluster",
                        help="rare classes to fit a weight for (comma-separated); the others "
                             "keep 0")
    parser.add_argument("--check-per-class", type=int, default=250,
                        help="balanced held-out crops per class on which the card records what "
                             "the rule costs per crop (0: none)")
    parser.add_argument("--check-seed", type=int, default=CHECK_SEED)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compensate", action=argparse.BooleanOptionalAction, default=None,
                        help="fit on calls made with CK's spillover taken off (ctcnet predict "
                             "--compensate; default: as the model was trained)")
    parser.add_argument("--work", type=Path, default=ROOT / "fit_decision_output",
                        help="fitting cartridges and predictions (kept: a re-run reuses them)")
    args = parser.parse_args(argv)
    if args.cartridges < MIN_CARTRIDGES:
        parser.error(f"--cartridges {args.cartridges}: at least {MIN_CARTRIDGES} (a rule fitted "
                     "on fewer reads its figures from a handful of CTCs)")
    if not args.model.is_file():
        parser.error(f"--model {args.model}: model file not found")
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import pandas as pd

    from ctcnet.deploy.export import restamp_onnx
    from ctcnet.evaluation.cartridge_evaluation import evaluate_cartridges
    from ctcnet.evaluation.counts import cartridge_panel_for, simulate_count_cartridges
    from ctcnet.evaluation.decision import FitTable, fit_decision
    from ctcnet.evaluation.model_card import refresh_decision
    from ctcnet.inference.ground_truth import truth_of_processed_frames
    from ctcnet.inference.spillover import wants_compensation
    from ctcnet.inference.summary import RunSummary
    from ctcnet.io.atomic import atomic_write_text
    from ctcnet.io.digests import file_sha256
    from ctcnet.io.scan import open_cartridge
    from ctcnet.nn.calls import DecisionRule
    from ctcnet.nn.classifier import load_model, save_model
    from ctcnet.simulate.cartridge import read_truth

    t0 = time.perf_counter()
    model, spec = load_model(args.model)
    compensate = wants_compensation(spec, args.compensate)
    paths = simulate_count_cartridges(args.work / "cartridges", args.cartridges, args.frames,
                                      args.seed, args.events_per_frame, prefix="fit",
                                      panel=cartridge_panel_for(spec.panel))
    fingerprint = hashlib.sha256(json.dumps(
        {"spec": {k: v for k, v in spec.to_dict().items() if k != "decision"},
         **({"compensate": True} if compensate else {})}, sort_keys=True).encode()
        + b"".join(v.cpu().numpy().tobytes() for v in model.state_dict().values())).hexdigest()
    stamp = args.work / "predicted_with.txt"
    if not stamp.exists() or stamp.read_text().strip() != fingerprint:
        # Predict without a rule, so every call the rule could keep has its guard flags.
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "without-rule.pt"
            save_model(plain, model, spec.replace(decision=DecisionRule.balanced()))
            evaluate_cartridges(paths, plain, args.work / "evaluation", device=args.device,
                                compensate=compensate)
        atomic_write_text(stamp, fingerprint + "\n")
    parts = []
    for path in paths:
        cart = open_cartridge(path)
        run = args.work / "evaluation" / cart.sample_id
        truth = truth_of_processed_frames(cart, read_truth(path),
                                          RunSummary.read(run).skipped_frames)
        parts.append((cart.sample_id, pd.read_parquet(run / "events.parquet"), truth))
    ctcs = sum(int((truth["class"] == "ctc").sum()) for _, _, truth in parts)
    if ctcs < MIN_CTCS:
        raise SystemExit(f"fit_decision.py: the fitting cartridges hold {ctcs} CTCs, fewer than "
                         f"the {MIN_CTCS} a rule is fitted on: more --cartridges or --frames; "
                         "nothing written")
    table = FitTable.build(parts, spec.class_names, spec.pixel_size_um)
    fitted, curves = fit_decision(table, spec, positives=args.classes.split(","),
                                  events=args.deployment_events)
    decision = fitted.to_dict()  # the rule as the spec stores it, its record completed here
    decision["fitted"].update(seeds=[args.seed, args.seed + args.cartridges - 1],
                              frames=args.frames,
                              command="python scripts/fit_decision.py --model MODEL "
                                      f"--cartridges {args.cartridges} --frames {args.frames} "
                                      f"--seed {args.seed} --events-per-frame "
                                      f"{args.events_per_frame:g} --check-per-class "
                                      f"{args.check_per_class}"
                                      + {True: " --compensate", False: " --no-compensate",
                                         None: ""}[args.compensate])
    rule = DecisionRule.from_dict(decision, spec.class_names)
    rule = kept_review_band(spec.decision, rule)
    atomic_write_text(args.work / "decision.json", json.dumps(
        {"decision": decision, "curves": curves}, indent=2, default=float) + "\n")

    out = args.out or args.model
    onnx = args.model.with_suffix(".onnx")
    before = file_sha256(args.model)
    save_model(out, model, spec.replace(decision=rule))
    print(f"rule {decision['log_weights']} written into {out}")
    if onnx.exists():
        target = Path(out).with_suffix(".onnx")
        if target != onnx:
            target.write_bytes(onnx.read_bytes())
        restamp_onnx(target, out, previous_sha256=before)
        print(f"and into {target} (metadata; the graph is unchanged)")
    card = Path(out).with_suffix(".json")
    if card.exists():
        per_crop = (per_crop_cost(Path(out), args.check_per_class, args.check_seed, args.device)
                    if args.check_per_class > 0 else None)
        refresh_decision(card, rule.to_dict(), per_crop)  # the band kept with it, if any
        print(f"card {card} (and .md) records the rule")
    for name, row in decision["fitted"]["at_fit"].items():
        cut = row["cutoff_agrees"]
        print(f"{name}: log weight {row['log_weight']:+.2f}, recall {row['recall']:.3f}, "
              f"{row['false_per_1000_events']:.3f} false calls per 1000 events, expected "
              f"within tolerance {row['within']:.0%}"
              + (f", >= 5 cut-off agreement {cut:.0%}" if cut is not None else "")
              + f" (fitting cartridges, projected to {args.deployment_events:.0f} events)")
    print(f"{time.perf_counter() - t0:.0f} s; curves in {args.work / 'decision.json'}")
    return 0


if __name__ == "__main__":
    from ctcnet.errors import run_script

    run_script(main, "fit_decision.py")
