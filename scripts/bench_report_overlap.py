"""Several cartridges in one `ctcnet predict` run: each report drawn beside the next
cartridge's frames (the default: in a report process; in a thread, to compare) against one
after another (``--no-report-overlap``).

    python scripts/bench_report_overlap.py --frames 24,28,32,36 --repeats 2 --record docs

Simulates one cartridge of full-size frames (1036 x 1384, ~290 events a frame) and builds the
cartridges of ``--frames`` from hard links to its frames (as ``ctcnet benchmark`` does), then
runs ``ctcnet predict CARTRIDGES --overwrite`` in a fresh process per run, the configurations
taking turns. Prints the wall clock of each, its ratio to the sequential run's, the stage
times summed over the cartridges (from their summary.json) and the peak RSS of the predict
process and of its report process, as Markdown; ``--record docs`` adds the section to
docs/benchmarks.json (which ``ctcnet benchmark`` keeps) and rewrites docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ctcnet.benchmark.common import load_average

CHILD = """
import os, sys, threading, time
from pathlib import Path
from ctcnet.cli import main
peaks = {}
def watch():  # the report process's own peak (VmHWM), read while it runs
    me = os.getpid()
    while True:
        for pid in filter(str.isdigit, os.listdir('/proc')):
            try:
                if int(Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[1]) != me:
                    continue
                for line in Path(f'/proc/{pid}/status').read_text().splitlines():
                    if line.startswith('VmHWM'):
                        peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
            except (OSError, ValueError, IndexError):
                pass
        time.sleep(0.5)
threading.Thread(target=watch, daemon=True).start()
if os.environ.get("BENCH_REPORT_WORKER") == "thread":  # the overlap in a thread, to compare
    import ctcnet.inference.predict as predict
    from ctcnet.inference.report_overlap import ReportWorker
    predict.report_worker = lambda *args: ReportWorker("thread")
rc = main(sys.argv[1:])
hwm = [l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith('VmHWM')]
print('PEAK_KB', hwm[0].split()[1] if hwm else 0, max(peaks.values(), default=0),
      file=sys.stderr)
sys.exit(rc)
"""
STAGES = ("read", "detect", "crop", "guard", "classify", "write", "report")


MODES = {"sequential": "sequential (--no-report-overlap)",
         "process": "overlapped (the default: a report process)",
         "thread": "overlapped in a thread (for comparison)"}


def _raise_priority(nice: int) -> Callable[[], None]:
    def apply() -> None:
        try:
            os.nice(nice)
        except OSError:  # not allowed (not root): measured at the usual priority
            pass
    return apply


def run_once(scans: Path, out: Path, mode: str, nice: int = 0) -> dict:
    """One `ctcnet predict` process on every cartridge under ``scans`` (at ``nice``: below 0,
    other work on a shared machine yields it the cores, which steadies the figures)."""
    cmd = [sys.executable, "-c", CHILD, "predict", str(scans), "--out", str(out), "--overwrite",
           "--quiet", "--device", "cpu"] + (["--no-report-overlap"] if mode == "sequential"
                                            else [])
    env = dict(os.environ, BENCH_REPORT_WORKER=mode)
    load = load_average()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          preexec_fn=_raise_priority(nice) if nice else None)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"predict failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    peak, child = next(([int(x) for x in line.split()[1:3]] for line in proc.stderr.splitlines()
                        if line.startswith("PEAK_KB")), (0, 0))
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))]
    stages = {k: round(sum(s["timings_s"].get(k, 0.0) for s in summaries), 2) for k in STAGES}
    return {"mode": mode, "load": load, "wall_s": round(wall, 2),
            "peak_rss_mb": round(peak / 1024), "report_process_peak_mb": round(child / 1024),
            "events": sum(s["events"] for s in summaries), "cartridges": len(summaries),
            "cartridge_total_s": round(sum(s["timings_s"]["total"] for s in summaries), 2),
            "stages_s": stages}


def overlap_record(runs: list[dict], args, info: dict) -> dict:
    """The ``report_overlap`` entry of docs/benchmarks.json from the runs."""
    modes = list(dict.fromkeys(r["mode"] for r in runs))
    by_mode = {m: [r for r in runs if r["mode"] == m] for m in modes}
    wall = {m: statistics.median(r["wall_s"] for r in rs) for m, rs in by_mode.items()}
    base = wall.get("sequential")
    rows = []
    for mode, rs in by_mode.items():
        walls = [r["wall_s"] for r in rs]
        rows.append({
            "name": MODES[mode], "mode": mode,
            "wall_s": {"median": wall[mode], "min": min(walls), "max": max(walls)},
            "ratio": wall[mode] / base if base else float("nan"),
            "ratio_per_turn": [o["wall_s"] / q["wall_s"] for q, o in
                               zip(by_mode.get("sequential", []), rs)],
            "stages_s": {k: statistics.median(r["stages_s"][k] for r in rs) for k in STAGES},
            "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
            "report_process_mb": max(r.get("report_process_peak_mb", 0) for r in rs)})
    frames = args.frames.replace(",", ", ")
    return {"created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": f"python scripts/bench_report_overlap.py --frames {args.frames} "
                       f"--repeats {args.repeats}",
            "machine": f"{info.get('cpu')}, {info.get('cores')} cores, torch "
                       f"{info.get('torch')}, onnxruntime {info.get('onnxruntime')}",
            "cartridges": runs[0]["cartridges"], "frames": frames, "events": runs[0]["events"],
            "repeats": args.repeats, "nice": args.nice,
            "load": ", ".join(f"{r['load'][0]:.1f}" for r in runs if r.get("load")),
            "rows": rows, "runs": runs}


def main() -> None:
    """Build the cartridges, run the modes ``--repeats`` times in turn and print the table."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--frames", default="24,28,32,36",
                        help="frames of each cartridge, comma-separated")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--modes", default="sequential,process,thread",
                        help="which of " + ", ".join(MODES) + " to run, taking turns")
    parser.add_argument("--base-frames", type=int, default=12,
                        help="distinct simulated frames the cartridges repeat")
    parser.add_argument("--workdir", default="runs/bench-report-overlap")
    parser.add_argument("--json", default=None, help="also write the runs here")
    parser.add_argument("--from-json", default=None,
                        help="render the runs an earlier --json wrote instead of running")
    parser.add_argument("--nice", type=int, default=-10,
                        help="the predict processes' niceness (default -10, where allowed: "
                             "other work on the machine then disturbs the figures less)")
    parser.add_argument("--record", default=None, metavar="DIR",
                        help="add the section to DIR/benchmarks.json and rewrite "
                             "DIR/benchmarks.md (docs)")
    args = parser.parse_args()

    from ctcnet.benchmark.common import machine_info
    from ctcnet.benchmark.render import render_report_overlap

    if args.from_json:
        runs = json.loads(Path(args.from_json).read_text())["runs"]
    else:
        from ctcnet.benchmark.cartridges import linked_cartridge, simulate_base_cartridge
        from ctcnet.benchmark.common import BenchSettings

        work = Path(args.workdir)
        base = simulate_base_cartridge(work / "base", args.base_frames, BenchSettings())
        scans = work / "scans"
        for n in (int(x) for x in args.frames.split(",")):
            linked_cartridge(base, scans / f"cartridge-{n}", n)  # sample id bench-<n>
        runs = []
        for _ in range(args.repeats):
            for mode in args.modes.split(","):
                runs.append(run_once(scans, work / mode, mode, args.nice))
                print(json.dumps(runs[-1]), file=sys.stderr)
        if args.json:
            Path(args.json).write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    record = overlap_record(runs, args, machine_info())
    print("\n".join(render_report_overlap(record)))
    if args.record:
        from ctcnet.benchmark.record import record_script_section

        record_script_section(args.record, "report_overlap", record)


if __name__ == "__main__":
    main()
