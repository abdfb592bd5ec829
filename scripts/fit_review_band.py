"""Fit a model's review band for a stated miss rate on simulated cartridges, check it on a
fresh family, and write it into the model files (``ctcnet.evaluation.miss_rate``).

A call of an uncounted class is shown to a person when a counted class (``ctc``, ``cluster``)
holds at least the band of its posterior at cartridge prevalence. The band is the largest one
whose share of CTCs and clusters neither counted nor shown (among those detected) stays under
``--level`` with ``--confidence``, fitted on ``--cartridges`` CTC-rich simulated cartridges
(CTCs and clusters at ``--rates``, so that the fit holds hundreds of them) and measured on
``--check-cartridges`` of other seeds. ``--write`` puts the band, with its record, into the
model's decision rule (``spec.decision``: the checkpoint, and metadata only the ONNX export
beside it) and its card.

    python scripts/fit_review_band.py --model models/ctcnet-default.pt [--cartridges 20]
        [--check-cartridges 10] [--level 0.01] [--confidence 0.95] [--write]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
FIT_SEED = 63000    # decision fit 62000, count evaluation 61000, training 0
CHECK_SEED = 73000


def labelled(paths: list[Path], model: Path, work: Path, spec) -> pd.DataFrame:
    """The band's inputs over the events of every cartridge, predicted with ``model``."""
    from ctcnet.evaluation.miss_rate import band_inputs
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.options import PredictOptions
    from ctcnet.inference.predict import predict_cartridge
    from ctcnet.io.digests import file_sha256
    from ctcnet.io.scan import open_cartridge

    backend = load_backend(model)
    model_sha256 = file_sha256(model)
    parts = []
    for path in paths:
        out = work / "runs" / path.name
        if not reusable(out, path, model_sha256):
            predict_cartridge(path, backend, out, PredictOptions(quiet=True, overwrite=True))
        cart = open_cartridge(path)
        events = pd.read_parquet(out / "events.parquet")
        truth = pd.read_csv(path / "ground_truth.csv")
        parts.append(band_inputs(events, truth, spec, cart.panel.pixel_size_um))
    return pd.concat(parts, ignore_index=True)


def reusable(run: Path, cartridge: Path, model_sha256: str) -> bool:
    """Whether the run in ``run`` may stand for a run of ``cartridge`` now: made by the model
    file of digest ``model_sha256`` (another model fitted into the same --work, every `ctcnet
    train` output being named model.pt, would lend its calls) after the cartridge was last
    drawn (one drawn again since, with other --frames or --events, would be scored on the
    calls of the cells drawn before)."""
    try:
        made_by = json.loads((run / "summary.json").read_text())["model"]["sha256"]
        written = (run / "summary.json").stat().st_mtime_ns
        drawn = (cartridge / "ground_truth.csv").stat().st_mtime_ns
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return made_by == model_sha256 and written > drawn


def main() -> int:
    """Simulate, predict, fit, check and (with ``--write``) record the band."""
    from merged_ctcs import simulate

    from ctcnet.deploy.export import write_spec
    from ctcnet.evaluation.miss_rate import (
        band_for_miss_rate,
        fresh_verdict,
        misses_at,
        no_band_text,
    )
    from ctcnet.evaluation.model_card import refresh_decision
    from ctcnet.inference.marker_fusion import scan_fusion_role
    from ctcnet.io.atomic import atomic_write_text
    from ctcnet.io.panel import save_panel
    from ctcnet.nn.calls import as_rule
    from ctcnet.nn.classifier import load_model

    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "ctcnet-default.pt")
    parser.add_argument("--cartridges", type=int, default=20)
    parser.add_argument("--check-cartridges", type=int, default=10)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--events", type=int, default=450)
    parser.add_argument("--rates", default="ctc=0.03,cluster=0.01")
    parser.add_argument("--level", type=float, default=0.01)
    parser.add_argument("--confidence", type=float, default=0.95)
    parser.add_argument("--work", type=Path, default=None,
                        help="where the cartridges and runs go (default: runs/review_band/"
                             "<model name>)")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.cartridges < 1 or args.check_cartridges < 1:
        parser.error("--cartridges and --check-cartridges: at least 1 each (the band is "
                     "fitted on the first and its statement checked on the second)")
    logging.basicConfig(level=logging.WARNING)
    args.work = args.work or ROOT / "runs" / "review_band" / args.model.stem
    t0 = time.perf_counter()
    model, spec = load_model(args.model)
    # Cartridges of the model's own panel (its channels, at its pixel size before the draw).
    panel_file = args.work / "panel.json"
    args.work.mkdir(parents=True, exist_ok=True)
    save_panel(spec.panel, panel_file)
    families = {}
    for name, seed, count in (("fit", FIT_SEED, args.cartridges),
                              ("check", CHECK_SEED, args.check_cartridges)):
        paths = [simulate(args.work / f"{name}_{seed + i}", seed + i, args.frames, args.events,
                          args.rates, panel_file) for i in range(count)]
        families[name] = labelled(paths, args.model, args.work, spec)
    fit = families["fit"]
    record = band_for_miss_rate(fit["counted_mass"], fit["shown_otherwise"],
                                fit["is_counted_truth"], args.level, args.confidence)
    if record["band"] is None:
        print(f"{no_band_text(record)}: {json.dumps(record)}")
        return 1
    threshold_band = 1.0 - spec.review_threshold
    check = families["check"]
    inputs = lambda f: (f["counted_mass"], f["shown_otherwise"],  # noqa: E731
                        f["is_counted_truth"])
    record.update(
        # What the band reads: the cartridge marker fusion's posterior (a fusion in the
        # review role: ctcnet.inference.scan_fusion) or the network's.
        reads="fused" if scan_fusion_role(spec) == "review" else "network",
        fitted_on={"cartridges": args.cartridges, "seeds": [FIT_SEED, FIT_SEED + args.cartridges
                                                             - 1],
                   "frames": args.frames, "events_per_frame": args.events,
                   "rates": args.rates, "what": "simulated cartridges, CTC-rich; cells "
                   "detected and matched to a drawn CTC or cluster within 8 um"},
        fresh_family={**misses_at(record["band"], *inputs(check)),
                      "cartridges": args.check_cartridges,
                      "seeds": [CHECK_SEED, CHECK_SEED + args.check_cartridges - 1]},
        without_band={"fit": misses_at(threshold_band, *inputs(fit)),
                      "fresh_family": misses_at(threshold_band, *inputs(check))},
        command=f"python scripts/fit_review_band.py --model MODEL --cartridges "
                f"{args.cartridges} --check-cartridges {args.check_cartridges} --level "
                f"{args.level} --confidence {args.confidence}")
    atomic_write_text(args.work / "review_band.json", json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    verdict = fresh_verdict(record["fresh_family"], args.level, args.confidence)
    if verdict is not None:
        print(f"{verdict[0]}: {verdict[1]}")
    if args.write and verdict is not None and verdict[0] == "refuse":
        return 1
    if args.write:
        rule = as_rule(spec.decision).with_review_band(record)
        write_spec(args.model, model, spec.replace(decision=rule))
        card = args.model.with_suffix(".json")
        if card.exists():
            # The card's decision keeps what it recorded beside the rule (its per-crop cost).
            kept = json.loads(card.read_text()).get("decision") or {}
            refresh_decision(card, {**kept, **rule.to_dict()})
        print(f"band {record['band']:.4g} written into {args.model}")
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    from ctcnet.errors import run_script

    run_script(main, "fit_review_band.py")
