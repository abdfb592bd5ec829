"""The main job on the shipped default model: simulate a demo cartridge, classify every event,
write the report, and compare the counts with the simulator's ground truth.

Run through ``./run demo [--frames N] [--out DIR]``. Steps that are not available in this build
are reported and skipped, never faked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "ctcnet-default.pt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=12, help="frames in the demo cartridge")
    parser.add_argument("--events-per-frame", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "demo_output")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)

    from ctcnet.cli import main as ctcnet

    cartridge = args.out / "cartridge"
    results = args.out / "results"
    if not (cartridge / "ground_truth.csv").exists():
        print(f"[1/3] simulating a {args.frames}-frame demo cartridge into {cartridge}")
        t0 = time.perf_counter()
        rc = ctcnet(["simulate", "cartridge", str(cartridge), "--frames", str(args.frames),
                     "--events", str(args.events_per_frame), "--seed", str(args.seed)])
        if rc:
            print("simulation is not available in this build; stopping", file=sys.stderr)
            return rc
        print(f"      done in {time.perf_counter() - t0:.1f} s")
    else:
        print(f"[1/3] reusing the demo cartridge in {cartridge}")

    if not DEFAULT_MODEL.exists():
        print(f"[2/3] no shipped model at {DEFAULT_MODEL}: classification skipped")
        return 1
    print("[2/3] classifying every event with the shipped model")
    t0 = time.perf_counter()
    # No --model: predict takes the shipped model, through onnxruntime when its ONNX export
    # matches the checkpoint (the fast CPU path), else through torch.
    rc = ctcnet(["predict", str(cartridge), "--out", str(results)])
    if rc:
        print("prediction failed or is not available in this build", file=sys.stderr)
        return rc
    print(f"      done in {time.perf_counter() - t0:.1f} s")

    print("[3/3] counts against the simulator's ground truth")
    import pandas as pd

    truth = pd.read_csv(cartridge / "ground_truth.csv")
    summaries = sorted(results.glob("*/summary.json"))
    if not summaries:
        print(f"no summary.json under {results}", file=sys.stderr)
        return 1
    summary = json.loads(summaries[0].read_text())
    predicted = summary.get("counts", {})
    drawn = truth["class"].value_counts().to_dict()
    print(f"      {'class':<10}{'drawn':>8}{'called':>8}")
    for name in sorted(set(drawn) | set(predicted)):
        print(f"      {name:<10}{drawn.get(name, 0):>8}{predicted.get(name, 0):>8}")
    report = summaries[0].parent / "index.html"
    print(f"      review page: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
