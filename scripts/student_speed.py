"""Would a narrower student network halve the model's time on the CPU? Speed only.

Builds the shipped network's architecture at narrower widths (``arch_kwargs={"width": W}``,
random weights: only the time is measured, not what a trained student would score), exports
each to ONNX as ``ctcnet export`` does (the normalisation inside the graph, as predict runs it)
and times onnxruntime on the same synthetic crops at predict's batch sizes, the widths
interleaved round by round so a busy machine slows them alike; FLOPs per crop as the
classification section counts them (``benchmark.classification.model_flops``). Width 1 leaves
almost nothing of the convolutions: what is left is the cost of the graph's normalisation and
its calls, which no student can remove.

    python scripts/student_speed.py [--widths 16 12 8 4 1] [--crops 4096] [--rounds 5]
        [--record docs]

``--record docs`` adds the table to docs/benchmarks.json (which ``ctcnet benchmark`` keeps) and
rewrites docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    """Export the widths, time them and print the table (markdown)."""
    p = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--model", default="ctcnet-default", help="the network whose shape is used")
    p.add_argument("--widths", type=int, nargs="+", default=[16, 12, 8, 4, 1])
    p.add_argument("--batches", type=int, nargs="+", default=[8, 16, 64])
    p.add_argument("--crops", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--record", default=None, metavar="DIR",
                   help="add the section to DIR/benchmarks.json and rewrite DIR/benchmarks.md")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    from ctcnet.benchmark.classification import model_flops
    from ctcnet.benchmark.common import load_average, machine_info
    from ctcnet.benchmark.record import record_script_section
    from ctcnet.benchmark.render import render_student
    from ctcnet.deploy.export import export_onnx
    from ctcnet.inference.onnx_runtime import OnnxClassifier
    from ctcnet.nn.classifier import build_classifier, load_model, save_model
    from ctcnet.nn.crop_input import synthetic_crops
    from ctcnet.nn.registry import resolve_model

    _, spec = load_model(resolve_model(args.model))
    if spec.arch != "compact":
        raise SystemExit(f"{args.model} is a {spec.arch!r} network; this compares compact widths")
    crops = synthetic_crops(spec, args.crops).astype(np.float32)
    load, info = load_average() or [0.0, 0.0, 0.0], machine_info()
    seconds: dict[tuple[int, int], list[float]] = {}
    flops = {}
    with tempfile.TemporaryDirectory() as tmp:
        engines = {}
        for width in args.widths:
            student = dataclasses.replace(spec, arch_kwargs={**spec.arch_kwargs, "width": width})
            path = Path(tmp) / f"width{width}.pt"
            network = build_classifier(student).eval()
            flops[width] = model_flops(network, crops[0])
            save_model(path, network, student)
            export_onnx(path, path.with_suffix(".onnx"))
            engines[width] = OnnxClassifier(path.with_suffix(".onnx"))
        for _ in range(args.rounds):
            for width, engine in engines.items():
                for batch in args.batches:
                    engine.run(crops[:256], batch)  # warm: the session's first runs allocate
                    t0 = time.perf_counter()
                    engine.run(crops, batch)
                    seconds.setdefault((width, batch), []).append(time.perf_counter() - t0)
    shipped = spec.arch_kwargs.get("width", 16)
    best = {w: min(min(seconds[w, b]) for b in args.batches) / len(crops) for w in args.widths}
    record = {"created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": "python scripts/student_speed.py " + " ".join(argv or sys.argv[1:]),
              "machine": f"{info.get('cpu')}, {info.get('cores')} cores, onnxruntime "
                         f"{info.get('onnxruntime')}", "load": " / ".join(f"{v:.1f}" for v in load),
              "crops": len(crops), "batches": args.batches, "rounds": args.rounds,
              "shipped_width": shipped,
              "rows": [{"width": w, "mflop": flops[w] / 1e6, "ms_per_crop": 1e3 * best[w],
                        "x_shipped": best[w] / best[shipped] if shipped in best else
                        float("nan")} for w in args.widths]}
    print("\n".join(render_student(record)))
    if args.record:
        record_script_section(args.record, "student", record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
