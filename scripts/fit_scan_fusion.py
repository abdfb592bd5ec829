"""Fit a model's cartridge fusion: its network output and the guard's marker measurements read
together into the posterior a cartridge's decision rule acts on
(:mod:`ctcnet.inference.scan_fusion`).

Simulates ``--cartridges`` CTC-rich cartridges of the model's own panel (CTCs and clusters at
``--rates``, so the fit holds hundreds of them; seeds from ``--seed``, apart from the count
evaluation's 61000, the decision fit's 62000, the review band's 63000/73000 and training's),
every other one with half its cells drawn in another class's shape (``SimConfig.shape_swap``),
so that a cell's look cannot stand in for its markers. Each frame's events are detected, cropped
and measured as ``ctcnet predict`` does it (:func:`ctcnet.inference.frames.prepare_frame`, the
same detection and crops; a split object's members left out), classified by the network alone,
their guard measurements completed (:func:`ctcnet.inference.scan_fusion.completed`) and matched
to the simulator's truth within 8 um (:func:`ctcnet.evaluation.counts.truth_class_of_events`;
an event matched to none is debris). The fusion (the crop sets' logistic regression, each class
weighed alike so that its posterior stands at the balanced training prior, as the network's
does) is fitted on the events where it applies (:func:`~ctcnet.inference.scan_fusion.fusion_rows`).

With ``--write`` it goes into the checkpoint's spec (``metrics.scan_fusion``) and, metadata
only, into the ONNX export beside it (``--out``: a copy of the model, its export and card,
changed instead). ``--role review`` (the default): the calls stay the network's and the review
band reads the fused posterior; refit the band (``scripts/fit_review_band.py --model ...
--write``). ``--role calls``: the cartridge's rule acts on the fused posterior; refit the
decision rule on it (``scripts/fit_decision.py --model ...``). Then measure
(``scripts/cartridge_counts.py``, ``scripts/cells_in_scans.py``).

    python scripts/fit_scan_fusion.py --model models/ctcnet-default.pt [--cartridges 16]
        [--frames 3] [--events 450] [--role review|calls] [--out COPY.pt] [--write]
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
FIT_SEED = 64000  # counts 61000, decision 62000, review band 63000 / 73000, training 0
log = logging.getLogger("fit_scan_fusion")


def simulate(work: Path, spec, count: int, seed: int, frames: int, events: float,
             rates: dict) -> list[Path]:
    """The fitting cartridges (written once): every other one shape-swapped on half its
    cells."""
    from ctcnet.simulate.cartridge import simulate_cartridge
    from ctcnet.simulate.config import SimConfig

    paths = []
    for i in range(count):
        path = work / "cartridges" / f"f{seed + i}"
        if not (path / "ground_truth.csv").exists():
            simulate_cartridge(path, panel=spec.panel, num_frames=frames, seed=seed + i,
                               config=SimConfig(shape_swap=0.5 if i % 2 else 0.0),
                               events_per_frame=events, rare_rates=rates,
                               sample_id=f"fuse{seed + i}")
        paths.append(path)
    return paths


def cartridge_table(path: Path, backend, spec) -> pd.DataFrame:
    """Every event of one cartridge as predict reads it: the network's probabilities, the
    guard's measurements (every column the fusion reads) and the true class."""
    from ctcnet.detect.members import PART
    from ctcnet.evaluation.counts import truth_class_of_events
    from ctcnet.inference.frames import measure_scan_leaks, prepare_frame
    from ctcnet.inference.options import PredictOptions
    from ctcnet.inference.scan_fusion import completed
    from ctcnet.inference.spillover import wants_compensation
    from ctcnet.io.scan import open_cartridge

    detect = PredictOptions().detect
    cart = open_cartridge(path).conform(spec.panel)
    truth = pd.read_csv(path / "ground_truth.csv")
    leaks = (measure_scan_leaks(cart, spec, detect, None, 0)[0]
             if wants_compensation(spec, None) else None)
    parts = []
    for frame in cart.frames:
        work = prepare_frame(frame, cart, spec, detect, None, leaks)
        if work.error is not None or not len(work.events):
            continue
        proba = np.asarray(backend.predict_proba(
            work.crops if work.model_crops is None else work.model_crops), np.float64)
        keep = ~work.events[PART].to_numpy(bool) if PART in work.events else \
            np.ones(len(proba), bool)
        measured = completed(work.crops, spec, work.measured, keep, work.guard_start)
        events = work.events[keep].reset_index(drop=True)
        table = measured[keep].reset_index(drop=True)
        for k, name in enumerate(spec.class_names):
            table[f"p_{name}"] = proba[keep, k]
        true = truth_class_of_events(events, truth, cart.panel.pixel_size_um)
        table["true"] = np.where(pd.isna(true), "debris", true).astype(object)
        table["sample_id"] = cart.sample_id
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the script; returns the exit status."""
    from ctcnet.inference.marker_fusion import SCAN_FUSION_ROLES

    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--model", type=Path, required=True, help="the model's .pt checkpoint")
    parser.add_argument("--cartridges", type=int, default=16)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--events", type=float, default=450)
    parser.add_argument("--rates", default="ctc=0.03,cluster=0.01")
    parser.add_argument("--seed", type=int, default=FIT_SEED)
    parser.add_argument("--strength", type=float, default=1.0,
                        help="inverse L2 penalty of the logistic regression")
    parser.add_argument("--work", type=Path, default=None,
                        help="cartridges and tables (default: runs/scan_fusion/<model name>)")
    parser.add_argument("--out", type=Path, default=None,
                        help="with --write: write a copy of the model (and its .onnx, .json, "
                             ".md) here, changed, instead of --model")
    parser.add_argument("--role", choices=SCAN_FUSION_ROLES, default="review",
                        help="what the fusion decides: which events the review band shows "
                             "(the calls stay the network's), or the calls themselves")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    from ctcnet.deploy.export import write_spec
    from ctcnet.inference.backends import TorchBackend
    from ctcnet.inference.marker_fusion import MEASURES, SCAN_FUSION, fit_fusion
    from ctcnet.inference.scan_fusion import DEFAULT_GATE, fuse, fusion_rows
    from ctcnet.nn.calls import calls_from_proba
    from ctcnet.nn.classifier import load_model

    t0 = time.perf_counter()
    work = args.work or ROOT / "runs" / "scan_fusion" / args.model.stem
    model, spec = load_model(args.model)
    # The network alone: a fusion already in the spec must not feed its own fit.
    plain = spec.replace(metrics={k: v for k, v in spec.metrics.items() if k != SCAN_FUSION})
    model.spec = plain
    backend = TorchBackend.from_model(model.eval())
    rates = {k: float(v) for k, v in (kv.split("=") for kv in args.rates.split(","))}
    paths = simulate(work, spec, args.cartridges, args.seed, args.frames, args.events, rates)
    cache = work / f"events_{args.seed}_{args.cartridges}.parquet"
    if cache.exists():
        table = pd.read_parquet(cache)
    else:
        table = pd.concat([cartridge_table(p, backend, plain) for p in paths],
                          ignore_index=True)
        table.to_parquet(cache)
    names = spec.class_names
    proba = table[[f"p_{n}" for n in names]].to_numpy(np.float64)
    rows = fusion_rows(proba, table, spec, DEFAULT_GATE)
    true = table["true"].to_numpy(object)
    is_ctc = true == "ctc"
    log.info("%d events, %d CTCs, %d clusters; the fusion applies to %.1f %% of events, "
             "holding %d of the CTCs and %d of the clusters", len(table), is_ctc.sum(),
             (true == "cluster").sum(), 100 * rows.mean(), (rows & is_ctc).sum(),
             (rows & (true == "cluster")).sum())
    targets = np.array([names.index(t) for t in true[rows]])
    fusion = fit_fusion(proba[rows], table[list(MEASURES)][rows], targets, names,
                        args.strength, class_weight="balanced",
                        fitted_on={"script": "scripts/fit_scan_fusion.py", "seed": args.seed,
                                   "cartridges": args.cartridges, "frames": args.frames,
                                   "events_per_frame": args.events, "rates": args.rates,
                                   "events": int(rows.sum()), "strength": args.strength,
                                   "what": "simulated cartridges (every other one with half "
                                           "its cells shape-swapped), events as predict "
                                           "detects them, matched to the truth within 8 um; "
                                           "classes weighed alike"})
    fusion["gate"] = dict(DEFAULT_GATE)
    fusion["role"] = args.role
    fused = fuse(proba, table, names, fusion, rows)
    # What the cartridge's prior makes of each (the rule as fitted on the network's output).
    for label, p in (("network", proba), ("fused", fused)):
        called = calls_from_proba(p, names, spec.review_threshold, spec.decision)[0]
        ctc_call = called == "ctc"
        log.info("%-8s at the model's prior: CTCs called ctc %d of %d; other events called ctc "
                 "%d (leukocytes %d)", label, (ctc_call & is_ctc).sum(), is_ctc.sum(),
                 (ctc_call & ~is_ctc).sum(), (ctc_call & (true == "wbc")).sum())
    record = {k: v for k, v in fusion.items() if k not in ("mean", "scale", "weights", "bias")}
    (work / "scan_fusion.json").write_text(json.dumps(fusion, indent=2) + "\n")
    log.info("%s", json.dumps(record))
    if args.write:
        target = args.model
        if args.out is not None:
            target = args.out
            target.parent.mkdir(parents=True, exist_ok=True)
            for suffix in (".pt", ".onnx", ".json", ".md"):
                if args.model.with_suffix(suffix).exists():
                    shutil.copyfile(args.model.with_suffix(suffix), target.with_suffix(suffix))
        onnx = write_spec(target, model,
                          spec.replace(metrics={**spec.metrics, SCAN_FUSION: fusion}))
        log.info("scan fusion written into %s%s", target,
                 f" and {onnx} (metadata; the graph is unchanged)" if onnx else "")
    log.info("%.0f s", time.perf_counter() - t0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
