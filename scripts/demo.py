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


def _drawn_with(cartridge: Path) -> dict | None:
    """The options an existing demo cartridge was drawn with (seed, frames, events a frame, as
    its cartridge.json records them); None where there is none."""
    try:
        info = json.loads((cartridge / "cartridge.json").read_text())
    except (OSError, ValueError):
        return None
    if not (cartridge / "ground_truth.csv").exists():
        return None
    return {"seed": info.get("seed"), "num_frames": info.get("num_frames"),
            "events_per_frame": float(info.get("events_per_frame", -1))}


def main(argv: list[str] | None = None) -> int:
    """Simulate the demo cartridge (or reuse it), classify it with the shipped model and write
    the report; returns the exit status."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--frames", type=int, default=12,
                        help="frames in the demo cartridge (default 12; a real one has 175)")
    parser.add_argument("--events-per-frame", type=int, default=300,
                        help="events drawn a frame (default 300, a full-size scan's)")
    parser.add_argument("--out", type=Path, default=ROOT / "demo_output",
                        help="where the cartridge/ and results/ folders go (default "
                             "demo_output/ in the checkout)")
    parser.add_argument("--seed", type=int, default=2026,
                        help="the simulator's seed: another draws another cartridge (default "
                             "2026)")
    args = parser.parse_args(argv)

    from ctcnet.cli import main as ctcnet

    cartridge = args.out / "cartridge"
    results = args.out / "results"
    drawn = _drawn_with(cartridge)
    asked = {"seed": args.seed, "num_frames": args.frames,
             "events_per_frame": float(args.events_per_frame)}
    if drawn != asked:
        if drawn is not None:  # the demo's own cartridge, of other options: drawn again
            print(f"[1/3] the demo cartridge in {cartridge} was drawn with {drawn}; drawing it "
                  f"again with {asked}")
        print(f"[1/3] simulating a {args.frames}-frame demo cartridge into {cartridge}")
        t0 = time.perf_counter()
        rc = ctcnet(["simulate", "cartridge", str(cartridge), "--frames", str(args.frames),
                     "--events", str(args.events_per_frame), "--seed", str(args.seed),
                     *(["--overwrite"] if drawn is not None else [])])
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
    # matches the checkpoint (the fast CPU path), else through torch. --overwrite: the results
    # folder is the demo's own, classified anew by the model and code installed now (predict
    # refuses to add to a run that an earlier version or model left there).
    rc = ctcnet(["predict", str(cartridge), "--out", str(results), "--overwrite"])
    if rc:
        print("prediction failed (its message is above)", file=sys.stderr)
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
    events = pd.read_parquet(summaries[0].parent / "events.parquet")
    print_counts(summary, events, truth)
    print_outcomes(events, truth, float(summary["panel"].get("pixel_size_um", 0.64)))
    out = summaries[0].parent
    print(f"      review the calls in the browser:  ctcnet review {out}")
    print(f"      or open the report:               {out / 'index.html'}")
    return 0


def print_counts(summary: dict, events, truth) -> None:
    """Per class: what the simulator drew, what was counted, what the guard held back from the
    count for a person, and the events of that call flagged for review (held ones included)."""
    # The run's one tally (summary.json), by the events' final class, as the counts are.
    tally = summary.get("tally", {})
    counted = tally.get("counted", summary.get("counts", {}))
    held, review = tally.get("held", {}), tally.get("review", {})
    drawn = truth["class"].value_counts()
    names = sorted(set(drawn.index) | set(counted))
    print(f"      {'class':<10}{'drawn':>8}   calls:{'counted':>9}{'held':>7}{'listed':>8}")
    for name in names:
        print(f"      {name:<10}{int(drawn.get(name, 0)):>8}         {int(counted.get(name, 0)):>8}"
              f"{int(held.get(name, 0)):>7}{int(review.get(name, 0)):>8}")
    # (the calls of a class, not the cells drawn as it: a drawn cluster called wbc and listed
    # is listed under wbc; what became of each drawn cell follows)
    print("      counted, held, listed: the calls of the class, not the cells drawn as it (what "
          "became of\n      each drawn CTC and cluster is below)")
    print("      held: calls the marker guard kept out of the count for a person to decide")
    print("      listed: calls of the class on the review list, held or counted (a counted call "
          "in doubt stays\n      counted until a person decides; the review page also lists "
          "every CTC and cluster call\n      and a few checks)")


def print_outcomes(events, truth, pixel_size_um: float, radius_um: float = 6.0) -> None:
    """What became of each drawn CTC and cluster: counted, held or sent to review, or neither
    (missed by detection, or called another class with confidence). A cluster counted as a CTC
    is counted: the CTC in it is found."""
    import numpy as np
    from scipy.spatial import cKDTree

    for drawn_class, plural, counted_as in (("ctc", "CTCs", ("ctc",)),
                                            ("cluster", "clusters", ("cluster", "ctc"))):
        cells = truth[truth["class"] == drawn_class]
        if drawn_class == "cluster" and not len(cells):
            continue
        outcome = {"counted": 0, "shown": 0, "missed": 0, "undetected": 0}
        as_ctc = counted_listed = 0
        for frame_id, drawn in cells.groupby("frame_id"):
            found = events[events["frame_id"] == frame_id]
            if not len(found):
                outcome["undetected"] += len(drawn)
                continue
            dist, nearest = cKDTree(found[["x", "y"]].to_numpy()).query(
                drawn[["x", "y"]].to_numpy())
            for d, i in zip(dist, nearest):
                event = found.iloc[i]
                if d * pixel_size_um > radius_um:
                    outcome["undetected"] += 1
                elif event["class"] in counted_as and not event["guard"]:
                    outcome["counted"] += 1
                    as_ctc += int(event["class"] != drawn_class)
                    counted_listed += bool(event["review"])
                elif bool(event["review"]) or event["guard"]:
                    outcome["shown"] += 1
                else:
                    outcome["missed"] += 1
        n = int(np.sum(list(outcome.values())))
        # The counted ones on the review list are among the counted: said so, not beside
        # them, where they read as more cells to add.
        print(f"      drawn {plural}: {n}; called {' or '.join(counted_as)} and counted "
              f"{outcome['counted']} ({counted_listed} of them on the review list), not counted "
              f"but on the review list {outcome['shown']}, called another class and not "
              f"listed {outcome['missed']}, not detected {outcome['undetected']}")
        if as_ctc:
            print(f"        ({as_ctc} of the counted clusters counted as CTCs)")


if __name__ == "__main__":
    sys.exit(main())
