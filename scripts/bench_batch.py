"""A night's batch of cartridges on one machine: `ctcnet predict --processes N`, one process
against several, each taking its share of the cartridges.

    python scripts/bench_batch.py --cartridges 4 --frames 175 --processes 1,2,4 --json out.json

This script simulates one cartridge of full-size frames (1036 x 1384, ~290 events a frame),
builds ``--cartridges`` cartridges of ``--frames`` from hard links to its frames (as ``ctcnet
benchmark`` does), then runs the batch once per process count into a
fresh output folder and prints, as Markdown, the wall clock of the whole run, cartridges per
hour, events per second, the largest single process's peak RSS over the runs so far, and
whether every cartridge's counts equal those of the first run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build_batch(workdir: Path, count: int, frames: int, base_frames: int) -> Path:
    """The batch folder: ``count`` cartridges of ``frames`` hard-linked frames."""
    from ctcnet.benchmark.cartridges import linked_cartridge, simulate_base_cartridge
    from ctcnet.benchmark.common import BenchSettings
    from ctcnet.io.atomic import atomic_write_text

    base = simulate_base_cartridge(workdir / "base", base_frames, BenchSettings())
    scans = workdir / f"scans-{count}x{frames}"
    for name in (f"batch-{i:03d}" for i in range(count)):
        folder = linked_cartridge(base, scans / name, frames)
        info_path = folder / "cartridge.json"
        info = json.loads(info_path.read_text())
        if info.get("sample_id") != name:  # one sample id per cartridge (the split's key)
            atomic_write_text(info_path, json.dumps({**info, "sample_id": name}, indent=2)
                              + "\n")
    return scans


def run_batch(scans: Path, out: Path, processes: str, extra: list[str]) -> dict:
    """Every cartridge under ``scans`` through ``ctcnet predict --processes N``."""
    cmd = [sys.executable, "-m", "ctcnet", "predict", str(scans), "--out", str(out),
           "--overwrite", "--quiet", "--processes", str(processes), *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"predict failed with {processes} processes:\n{proc.stderr[-3000:]}")
    # ru_maxrss of the children: the largest single process's peak so far (KiB)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summaries = {p.parent.name: json.loads(p.read_text())
                 for p in sorted(out.glob("*/summary.json"))}
    ran_in = json.loads((out / "run.json").read_text())["world_size"]  # what auto chose
    return {"processes": processes if processes == str(ran_in) else f"{processes} ({ran_in})",
            "wall_s": round(wall, 2),
            "cartridges": len(summaries),
            "events": sum(s["events"] for s in summaries.values()),
            "counts": {name: s["counts"] for name, s in summaries.items()},
            "cartridge_total_s": {name: s["timings_s"]["total"]
                                  for name, s in summaries.items()},
            "largest_peak_rss_mb": round(peak / 1024)}


def render(runs: list[dict], frames: int) -> list[str]:
    """The Markdown table of the runs (the first is the reference for the counts)."""
    first = runs[0]
    lines = [f"{first['cartridges']} cartridges of {frames} frames ({first['events']:,} events)",
             "", "| processes | wall s | x the first row | cartridges/hour | events/s | "
             "largest process peak RSS MB (so far) | counts as the first row |",
             "|---:|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        lines.append(
            f"| {run['processes']} | {run['wall_s']:.1f} | "
            f"{run['wall_s'] / first['wall_s']:.2f} | "
            f"{3600 * run['cartridges'] / run['wall_s']:.0f} | "
            f"{run['events'] / run['wall_s']:,.0f} | {run['largest_peak_rss_mb']:,} | "
            f"{'yes' if run['counts'] == first['counts'] else 'NO'} |")
    return lines


def main() -> None:
    """Build the batch, run it at each process count and print the table."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--cartridges", type=int, default=4)
    parser.add_argument("--frames", type=int, default=175)
    parser.add_argument("--base-frames", type=int, default=20,
                        help="distinct simulated frames the cartridges repeat")
    parser.add_argument("--processes", default="1,2,4",
                        help="process counts (or auto) to compare, comma-separated (the "
                             "first is the reference)")
    parser.add_argument("--workdir", default="runs/bench-batch")
    parser.add_argument("--json", default=None, help="also write the runs here")
    parser.add_argument("predict_args", nargs="*",
                        help="more `ctcnet predict` options, after --")
    args = parser.parse_args()
    counts = args.processes.split(",")  # counts, or auto
    workdir = Path(args.workdir)
    scans = build_batch(workdir, args.cartridges, args.frames, args.base_frames)
    runs = []
    for n in counts:
        runs.append(run_batch(scans, workdir / f"out-{n}", n, args.predict_args))
        print(json.dumps({k: v for k, v in runs[-1].items() if k != "counts"}),
              file=sys.stderr, flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": args.frames, "runs": runs}, indent=2)
                                   + "\n")
    print("\n".join(render(runs, args.frames)))


if __name__ == "__main__":
    main()
