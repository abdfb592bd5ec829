"""Peak memory and time of `ctcnet predict` (or `ctcnet evaluate`) on crop folders of growing
size.

    python scripts/crop_set_memory.py --sizes 1000,4000,16000 --record docs
    python scripts/crop_set_memory.py --command evaluate --sizes 1000,4000,16000 --record docs

Simulates a crop folder of each size (five-channel 16-bit TIFF crops of the default panel,
four classes alike, four samples; kept under ``--workdir`` for the next run), runs the command
on each in a fresh process (``--model``, default the shipped default model, with its page),
and prints as Markdown per size: the process's peak RSS (VmHWM), the wall time and, for
predict, the run's own stage times per crop, and the largest size against the smallest.
Memory that grows with the folder is what stops a large folder on a workstation; it should
stay flat. ``--record docs`` adds the command's table to docs/benchmarks.json (which
``ctcnet benchmark`` keeps) and rewrites docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Run in the child: ctcnet predict, then its own peak RSS as the last line.
_CHILD = ("import sys\nfrom ctcnet.cli import main\nstatus = main(sys.argv[1:])\n"
          "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
          "print('PEAK_KB', int(hwm.split()[1]))\nsys.exit(status)\n")


def crop_folder(workdir: Path, crops: int, seed: int) -> Path:
    """A simulated crop folder of ``crops`` crops (reused when already made)."""
    root = workdir / f"crops-{crops}"
    if not (root / "panel.json").exists():
        per_class = crops // 4
        subprocess.run([sys.executable, "-m", "ctcnet", "simulate", "crops", str(root),
                        "--counts", str(per_class), "--samples", "4", "--seed", str(seed),
                        "--overwrite"], check=True, capture_output=True)
    return root


def measure(root: Path, command: str, model: str, workdir: Path) -> dict:
    """One run of the command on the folder in a fresh process: peak RSS, wall and (predict)
    stages."""
    with tempfile.TemporaryDirectory(dir=workdir) as out:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, command, str(root), "--model",
                               model, "--out", out], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(proc.stderr[-2000:])
        peak_kb = int(proc.stdout.strip().splitlines()[-1].split()[1])
        summaries = list(Path(out).glob("*/summary.json"))
        summary = json.loads(summaries[0].read_text()) if summaries else {}
        report = Path(out) / "report.json"
        crops = summary.get("crops") or json.loads(report.read_text())["n"]
    return {"crops": crops, "peak_rss_mb": peak_kb / 1024, "wall_s": wall,
            "timings_s": summary.get("timings_s", {})}


def main(argv=None) -> int:
    """Measure each size and print the table (and record it with ``--record``)."""
    from ctcnet.benchmark.common import machine_info
    from ctcnet.benchmark.render import render_crop_sets

    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--command", choices=("predict", "evaluate"), default="predict")
    parser.add_argument("--sizes", default="1000,4000,16000")
    parser.add_argument("--model", default="ctcnet-default")
    parser.add_argument("--workdir", default="runs/crop-set-memory")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--note", default=None, help="a sentence shown under the table")
    parser.add_argument("--record", default=None, metavar="DIR",
                        help="add the command's table to DIR/benchmarks.json (which `ctcnet "
                             "benchmark` keeps) and rewrite DIR/benchmarks.md")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    rows = [measure(crop_folder(workdir, int(n), args.seed), args.command, args.model, workdir)
            for n in args.sizes.split(",")]
    info = machine_info()
    entry = {"created": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "model": args.model,
             "command": f"python scripts/crop_set_memory.py --command {args.command} "
                        f"--sizes {args.sizes}",
             "machine": f"{info.get('cpu')}, {info.get('cores')} cores, onnxruntime "
                        f"{info.get('onnxruntime')}", "rows": rows, "note": args.note}
    print("\n".join(render_crop_sets({args.command: entry})))
    if args.record:
        from ctcnet.benchmark.record import record_script_section

        whole = json.loads((Path(args.record) / "benchmarks.json").read_text())
        record_script_section(args.record, "crop_sets",
                              {**whole.get("crop_sets", {}), args.command: entry})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
