"""Stress ``ctcnet predict`` for frames lost to thread races: the same small cartridge, many runs.

Each run is a fresh ``python -m ctcnet predict`` process (default options unless given after
``--``), so every run does its first imports of torch, scikit-image, tifffile and pyarrow again,
with its frame threads running. A race there once made an intact frame a skipped one while the
run still exited 0. The cartridge is simulated once (``ctcnet simulate cartridge``; small, so a
run takes seconds) and every frame of it is intact, so any skipped frame, any non-zero exit and
any run whose event count differs from the others is a failure.

    python scripts/stress_predict.py [--runs 50] [--frames 5] [--work DIR] [-- PREDICT OPTIONS]

Prints one line per run and a summary (also written to ``WORK/stress.json``); exits 1 when any
run failed, skipped a frame or disagreed.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ID = "stress"


def simulate(cart: Path, frames: int, shape: str, events: float, seed: int) -> None:
    """Simulate the stress cartridge with ``ctcnet simulate cartridge``."""
    subprocess.run([sys.executable, "-m", "ctcnet", "simulate", "cartridge", str(cart),
                    "--frames", str(frames), "--frame-shape", shape, "--events", str(events),
                    "--seed", str(seed), "--sample-id", SAMPLE_ID],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def one_run(cart: Path, out: Path, extra: list[str]) -> dict:
    """Run predict once into a fresh ``out``; what its exit status and summary.json say."""
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ctcnet", "predict", str(cart), "--out",
                           str(out), "--quiet", *extra],
                          cwd=ROOT, capture_output=True, text=True)
    result = {"rc": proc.returncode, "seconds": round(time.perf_counter() - t0, 1)}
    summary_path = out / SAMPLE_ID / "summary.json"
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        # summary.json lists every skipped frame with its reason (frames.skipped counts them).
        result.update(skipped=summary["skipped_frames"], status=summary["status"],
                      events=summary["events"])
    else:
        result.update(skipped=None, status=None, events=None)
    if proc.returncode != 0:
        result["stderr"] = proc.stderr.strip().splitlines()[-5:]
    return result


def main(argv: list[str] | None = None) -> int:
    """Predict the same cartridge ``--runs`` times and report the runs that failed, skipped
    frames or found other events; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--frame-shape", default="518x692", help="HxW (default: a quarter "
                                                                 "CellSearch frame)")
    parser.add_argument("--events", type=float, default=80, help="mean events per frame")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the cartridge, the runs and stress.json (default: a "
                             "temporary folder)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="ctcnet-stress-"))
    work.mkdir(parents=True, exist_ok=True)
    cart = work / "cartridge"
    if not cart.exists():
        simulate(cart, args.frames, args.frame_shape, args.events, args.seed)
    runs = []
    for i in range(args.runs):
        result = one_run(cart, work / "run", extra)
        runs.append(result)
        reasons = "; ".join(s["reason"] for s in result["skipped"] or [])
        print(f"run {i + 1:3d}: exit {result['rc']}, {result['status']}, {result['events']} "
              f"events, {len(result['skipped'] or [])} frame(s) skipped, "
              f"{result['seconds']} s" + (f" [{reasons}]" if reasons else ""), flush=True)
    events = collections.Counter(r["events"] for r in runs if r["events"] is not None)
    usual = events.most_common(1)[0][0] if events else None
    report = {
        "runs": len(runs),
        "frames": args.frames,
        "predict_options": extra,
        "failed_runs": sum(r["rc"] != 0 for r in runs),
        "runs_with_skipped_frames": sum(bool(r["skipped"]) for r in runs),
        "skipped_frames": sum(len(r["skipped"] or []) for r in runs),
        "runs_with_other_event_counts": sum(r["events"] is not None and r["events"] != usual
                                            for r in runs),
        "event_counts": dict(events),
        "skip_reasons": dict(collections.Counter(s["reason"] for r in runs
                                                 for s in r["skipped"] or [])),
        "errors": [r["stderr"] for r in runs if r.get("stderr")][:5],
        "seconds_per_run": round(sum(r["seconds"] for r in runs) / max(1, len(runs)), 1),
    }
    (work / "stress.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    bad = report["failed_runs"] or report["runs_with_skipped_frames"] or \
        report["runs_with_other_event_counts"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
