"""Would per-sample spillover compensation keep the calls of the robustness matrix?

    python experiments/ablate_spillover.py --out runs/spillover       # ~3 min on a 2-core CPU
    python experiments/ablate_spillover.py --cartridges 4 --frames 12  # the estimate on cartridges

The matrix's stain cells fail on leaks, not on the stain: with CK at 0.25x its unchanged leak
into CD45 reads as 20-30 % of the CK signal, and the network calls such CTCs leukocytes (CD45
at 8x the same; CD61 at 8x turns them into platelet clusters). One crop cannot tell such a leak
from a CK+CD45+ leukocyte; the sample can (every CK+ event shows the same ratio when it is a
leak). This script measures, on the matrix's held-out crops (the shipped model, unchanged), the
stain, bleed and non-specific cells three ways:

* ``raw``: the crops as perturbed (what the matrix and predict do today);
* ``oracle``: each crop compensated with its sample's true spillover (the simulator records it,
  ``CropBatch.spillover``) as the perturbation changed it: a channel scaled by f scales the
  leaks into it by f and the leaks out of it by 1/f. The ceiling of any compensation;
* ``estimated``: CK's leaks into every other channel estimated on each sample's own crops
  (below) and taken off before the model: what a product could do without the truth.

``--cartridges N`` instead simulates N cartridges and compares the estimate, pooled over their
frames' events, with the truth recorded in cartridge.json (the events of a cartridge are mostly
leukocytes and tdEVs, not the balanced crops of a crop set). Writes spillover.json (or
cartridges.json) into ``--out``; prints the tables.

The estimator is ``ctcnet.inference.spillover`` (its docstring says how), the one
``ctcnet predict|evaluate|robustness --compensate`` use.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ctcnet.inference.spillover import compensate, estimate_leaks, robust_background  # noqa: E402


def unmix(crops: np.ndarray, mixing: np.ndarray) -> np.ndarray:
    """Crops with a known (C, C) mixing undone: signal above the background times its inverse."""
    x = np.asarray(crops, np.float32)
    background, _ = robust_background(x)
    signal = x - background[:, :, None, None]
    inverse = np.linalg.inv(mixing).astype(np.float32)
    return background[:, :, None, None] + np.einsum("ts,nshw->nthw", inverse, signal)


def per_sample(crops: np.ndarray, groups: np.ndarray, fix) -> np.ndarray:
    """``fix(group, crops of that sample)`` applied sample by sample."""
    out = np.array(crops, np.float32, copy=True)
    for group in np.unique(groups):
        rows = np.flatnonzero(groups == group)
        out[rows] = fix(group, out[rows])
    return out


def perturbed_spillover(truth: np.ndarray, channel: int | None, factor: float,
                        extra: tuple | None) -> np.ndarray:
    """The spillover a perturbation leaves: a channel scaled by ``factor`` scales the leaks
    into it by f and those out of it by 1/f; ``extra`` = (target, source, share) a leak added."""
    mixing = np.array(truth, np.float64)
    if channel is not None:
        scale = np.ones(len(mixing))
        scale[channel] = factor
        mixing = mixing * scale[:, None] / scale[None, :]
    if extra is not None:
        mixing[extra[0], extra[1]] += extra[2]
    return mixing


def matrix_rows(panel) -> list[tuple]:
    """(name, apply, channel scaled or None, factor, added leak (t, s, share) or None)."""
    from ctcnet.evaluation.perturb import bleed, stain_strength

    rows = [("none", lambda x: x, None, 1.0, None)]
    for i, ch in enumerate(panel.channels):
        for f in (0.25, 8.0):
            rows.append((f"stain {ch.name} {f:g}x",
                         lambda x, i=i, f=f: stain_strength(x, i, f, panel), i, f, None))
    ck, cd45 = panel.index_of_role("epithelial"), panel.index_of_role("leukocyte")
    for i, ch in enumerate(panel.channels):
        if i != ck:
            rows.append((f"bleed CK->{ch.name} 10%",
                         lambda x, i=i: bleed(x, ck, i, 0.10, panel), None, 1.0, (i, ck, 0.10)))
            rows.append((f"bleed {ch.name}->CK 10%",
                         lambda x, i=i: bleed(x, i, ck, 0.10, panel), None, 1.0, (ck, i, 0.10)))
    rows.append(("CK += CD45 pattern 100%", lambda x: bleed(x, cd45, ck, 1.0, panel), None, 1.0,
                 (ck, cd45, 1.0)))
    return rows


def run_matrix(args) -> dict:
    from ctcnet.evaluation.metrics import macro_f1
    from ctcnet.inference.backends import load_backend
    from ctcnet.simulate import simulate_crops

    backend = load_backend(args.model, device="cpu")
    spec = backend.spec
    names, panel = spec.class_names, spec.panel
    out = {"model": str(backend.model_path), "per_class": args.per_class, "seeds": args.seeds,
           "rows": {}}
    for seed in args.seeds:
        batch = simulate_crops(args.per_class, panel, spec.taxonomy, spec.crop_size, seed=seed)
        x = batch.images.astype(np.float32)
        labels = np.array([names.index(v) for v in batch.labels])
        groups = np.array(batch.sample_ids)
        wbc = labels == names.index("wbc")
        clean = {}
        for name, apply, channel, factor, extra in matrix_rows(panel):
            xp = apply(x)
            variants = {
                "raw": xp,
                "oracle": per_sample(xp, groups, lambda g, c, truth=batch.spillover, ch=channel,
                                     f=factor, e=extra: unmix(c, perturbed_spillover(
                                         truth[g], ch, f, e))),
                "estimated": per_sample(xp, groups, lambda g, c: compensate(
                    c, estimate_leaks(c, panel), panel))}
            row = out["rows"].setdefault(name, {})
            for method, crops in variants.items():
                pred = np.asarray(backend.predict_proba(crops)).argmax(axis=1)
                if name == "none":
                    clean[method] = pred
                cell = row.setdefault(method, {"flips": [], "macro_f1": [], "wbc_called_ctc": []})
                cell["flips"].append(float((pred != clean[method]).mean()))
                cell["macro_f1"].append(macro_f1(labels, pred, len(names)))
                cell["wbc_called_ctc"].append(float((pred[wbc] == names.index("ctc")).mean()))
            print(f"seed {seed} {name:26s} " + "  ".join(
                f"{m} {row[m]['flips'][-1]:6.1%} {row[m]['macro_f1'][-1]:.3f}" for m in variants),
                flush=True)
    return out


def run_cartridges(args) -> dict:
    from ctcnet.detect.cropping import extract_crops
    from ctcnet.detect.detection import DetectConfig, detect_events
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.spillover import leak_channels
    from ctcnet.io.scan import open_cartridge
    from ctcnet.simulate import simulate_cartridge

    spec = load_backend(args.model, device="cpu").spec
    ck, targets = leak_channels(spec.panel)
    names = spec.panel.names
    out = {"frames": args.frames, "cartridges": []}
    for k in range(args.cartridges):
        seed = args.cartridge_seed + k
        folder = args.out / f"cartridge{seed}"
        if not (folder / "cartridge.json").exists():
            simulate_cartridge(folder, spec.panel, num_frames=args.frames, seed=seed)
        truth = np.array(json.loads((folder / "cartridge.json").read_text())["spillover"])
        cartridge = open_cartridge(folder)
        crops = []
        for frame in cartridge.frames:
            pixels = cartridge.read(frame)
            events = detect_events(pixels, cartridge.panel, DetectConfig())
            cut, _ = extract_crops(pixels, events["x"].to_numpy(), events["y"].to_numpy(),
                                   spec.crop_size, spec.pixel_size_um,
                                   cartridge.panel.pixel_size_um)
            crops.append(cut)
        crops = np.concatenate(crops)
        estimate = estimate_leaks(crops, spec.panel)
        entry = {"seed": seed, "events": len(crops),
                 "ck_leak_truth": {names[t]: round(float(truth[t, ck]), 4) for t in targets},
                 "ck_leak_estimate": {names[t]: round(float(estimate[t]), 4) for t in targets}}
        out["cartridges"].append(entry)
        print(f"cartridge {seed} ({len(crops)} events): CK leak into " + ", ".join(
            f"{n} {entry['ck_leak_estimate'][n]:.3f} (truth {entry['ck_leak_truth'][n]:.3f})"
            for n in entry["ck_leak_truth"]), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--per-class", type=int, default=250)
    parser.add_argument("--seeds", type=int, nargs="+", default=[52021, 7777],
                        help="crop sets (52021: the matrix's own)")
    parser.add_argument("--cartridges", type=int, default=0,
                        help="instead: the estimate on this many simulated cartridges")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--cartridge-seed", type=int, default=61001)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "spillover")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    result = run_cartridges(args) if args.cartridges else run_matrix(args)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    name = "cartridges.json" if args.cartridges else "spillover.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['seconds']:.0f} s; wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
