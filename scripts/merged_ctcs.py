"""Drawn CTCs lost inside a neighbour's event, over dense simulated cartridges, with and without
the members of merged objects offered as events of their own (``DetectConfig.offer_members``).

    python scripts/merged_ctcs.py --cartridges 20 --frames 3 --out runs/merged_ctcs

Each cartridge is simulated dense (``--events`` a frame, CTCs and clusters at ``--rates``; the
simulator draws its pixel size, 0.45-0.83 um/px; the first is the demo's seed, 2026), and
predicted with the model both ways. Per cartridge and in total: drawn CTCs; those no event
centre lies within 8 um of (not detected), and among them those inside another event's box
(lost to a merged event); CTCs counted (called ``ctc``, not held by the guard) and shown
(counted, held, or sent to review); drawn clusters called ``cluster``; events called ``ctc``
that match no drawn CTC or cluster. Writes ``merged_ctcs.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ctcnet.cli import main as ctcnet
from ctcnet.detect.detection import DetectConfig
from ctcnet.detect.truth_matching import MATCH_RADIUS_UM, match_to_truth
from ctcnet.inference.backends import load_backend
from ctcnet.inference.guard import counted
from ctcnet.inference.options import PredictOptions
from ctcnet.inference.predict import predict_cartridge
from ctcnet.io.atomic import atomic_write_text


def simulate(root: Path, seed: int, frames: int, events: int, rates: str,
             panel: Path | None = None) -> Path:
    """A dense cartridge of ``panel`` (default: the five-channel default panel), reused when
    already there of these settings (``simulated_with.json`` beside it says which: a fit into
    the same --work with other frames, rates or panel draws its cartridges again); the
    simulator draws its pixel size, 0.7-1.3x the panel's."""
    asked = {"seed": seed, "frames": frames, "events": events, "rates": rates,
             "panel": json.loads(Path(panel).read_text()) if panel else None}
    stamp = root / "simulated_with.json"
    try:
        same = json.loads(stamp.read_text()) == asked and (root / "ground_truth.csv").exists()
    except (OSError, ValueError):
        same = False
    if not same:
        rc = ctcnet(["--quiet", "simulate", "cartridge", str(root), "--frames", str(frames),
                     "--events", str(events), "--rates", rates, "--seed", str(seed),
                     "--overwrite", *(["--panel", str(panel)] if panel else [])])
        if rc:
            raise SystemExit(f"simulating {root} failed ({rc})")
        atomic_write_text(stamp, json.dumps(asked) + "\n")
    return root


def score(cart: Path, results: Path) -> dict:
    """The figures of one predicted cartridge against its truth."""
    truth = pd.read_csv(cart / "ground_truth.csv")
    events = pd.read_parquet(results / "events.parquet")
    px = json.loads((cart / "panel.json").read_text())["pixel_size_um"]
    radius = MATCH_RADIUS_UM / px
    out = dict(ctc_drawn=0, not_detected=0, lost_in_merged=0, counted=0, shown=0,
               cluster_drawn=0, cluster_called=0, ctc_false=0)
    is_counted = counted(events) & (events["class"] == "ctc").to_numpy()
    shown = is_counted | events["review"].to_numpy(bool) | (events["class"] == "ctc").to_numpy()
    for frame, t in truth.groupby("frame"):
        e = events[events["frame"] == frame]
        rows = e.index.to_numpy()
        ti, di = match_to_truth(e[["x", "y"]].to_numpy(), t[["x", "y"]].to_numpy(), radius)
        matched = dict(zip(ti, rows[di]))
        for k, (_, r) in enumerate(t.iterrows()):
            if r["class"] == "cluster":
                out["cluster_drawn"] += 1
                out["cluster_called"] += int(k in matched and
                                             events.at[matched[k], "class"] == "cluster")
            if r["class"] != "ctc":
                continue
            out["ctc_drawn"] += 1
            if k not in matched:
                out["not_detected"] += 1
                inside = ((e.bbox_x0 <= r.x) & (r.x < e.bbox_x1) & (e.bbox_y0 <= r.y)
                          & (r.y < e.bbox_y1))
                out["lost_in_merged"] += int(inside.any())
                continue
            out["counted"] += int(is_counted[matched[k]])
            out["shown"] += int(shown[matched[k]])
        rare = {matched[k] for k in matched if t.iloc[k]["class"] in ("ctc", "cluster")}
        out["ctc_false"] += int(sum(1 for i in rows[(e["class"] == "ctc").to_numpy()]
                                    if i not in rare))
    out["pixel_size_um"] = px
    out["events"] = int(len(events))
    return out


def main() -> int:
    """Simulate, predict both ways, score; print a table and write the record."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--cartridges", type=int, default=20)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--events", type=int, default=450)
    parser.add_argument("--rates", default="ctc=0.03,cluster=0.01")
    parser.add_argument("--model", default=None, help="model file or shipped name")
    parser.add_argument("--out", type=Path, default=Path("runs/merged_ctcs"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    backend = load_backend(args.model)
    seeds = [2026] + [9100 + i for i in range(1, args.cartridges)]
    record = {"model": str(args.model or "default"), "cartridges": []}
    for seed in seeds:
        cart = simulate(args.out / f"cart_{seed}", seed, args.frames, args.events, args.rates)
        row = {"seed": seed}
        for name, offer in (("whole_only", False), ("members", True)):
            res = args.out / f"res_{seed}_{name}"
            options = PredictOptions(detect=replace(DetectConfig(), offer_members=offer),
                                     quiet=True, overwrite=True)
            predict_cartridge(cart, backend, res, options)
            row[name] = score(cart, res)
        record["cartridges"].append(row)
        w, m = row["whole_only"], row["members"]
        print(f"seed {seed} {m['pixel_size_um']:.2f} um/px: CTCs {m['ctc_drawn']}, lost in "
              f"merged {w['lost_in_merged']} -> {m['lost_in_merged']}, counted {w['counted']} "
              f"-> {m['counted']}, shown {w['shown']} -> {m['shown']}, clusters called "
              f"{w['cluster_called']} -> {m['cluster_called']} of {m['cluster_drawn']}, false "
              f"ctc {w['ctc_false']} -> {m['ctc_false']}", flush=True)
    totals = {name: {k: sum(r[name][k] for r in record["cartridges"])
                     for k in record["cartridges"][0][name] if k != "pixel_size_um"}
              for name in ("whole_only", "members")}
    record["totals"] = totals
    print(json.dumps(totals, indent=1))
    atomic_write_text(args.out / "merged_ctcs.json", json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
