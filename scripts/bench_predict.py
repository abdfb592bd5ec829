"""Benchmark slide-scale inference: events/s and seconds per 175-frame cartridge, by stage.

    .venv/bin/python scripts/bench_predict.py --frames 20 [--device cpu|cuda] [--model M]
        [--cartridge DIR] [--out bench.json]

Simulates (or reuses, with --cartridge) a cartridge of full 1036 x 1384 frames with ~300
events each, then runs ``predict_cartridge`` twice: once inline (``workers=0``: read, detect,
crop, classify and write one after another, so the per-stage split adds up to the wall time)
and once with ``--workers`` threads (default 1) that read and detect while the model runs.
Seconds per 175-frame cartridge are extrapolated from the per-frame figures (the report is
added once). Peak memory is the process's maximum resident set size. Without --model an
untrained ``compact`` model at the default crop size is used: speed does not depend on the
weights.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CARTRIDGE_FRAMES = 175


def make_cartridge(root: Path, frames: int, events_per_frame: int, seed: int) -> None:
    from ctcnet.panel import load_panel
    from ctcnet.simulate import simulate_cartridge

    t0 = time.perf_counter()
    simulate_cartridge(root, load_panel(None), num_frames=frames, seed=seed,
                       events_per_frame=events_per_frame, sample_id="bench")
    print(f"simulated {frames} frames in {time.perf_counter() - t0:.1f} s", flush=True)


def untrained_model(path: Path) -> Path:
    import torch

    from ctcnet.model import build_classifier, save_model
    from ctcnet.panel import load_panel
    from ctcnet.spec import ModelSpec
    from ctcnet.taxonomy import default_taxonomy

    torch.manual_seed(0)
    save_model(path, build_classifier(ModelSpec("compact", load_panel(None), default_taxonomy())))
    return path


def run_once(cartridge: Path, backend, out: Path, workers: int, batch_size: int) -> dict:
    from ctcnet.predict import PredictOptions, predict_cartridge

    shutil.rmtree(out, ignore_errors=True)
    options = PredictOptions(batch_size=batch_size, workers=workers, quiet=True, report=True)
    t0 = time.perf_counter()
    summary = predict_cartridge(cartridge, backend, out, options)
    wall = time.perf_counter() - t0
    frames = summary["frames"]["processed"]
    stages = summary["timings_s"]
    # The report (gallery + HTML) is made once per cartridge: not scaled with the frames.
    report = stages.get("report", 0.0)
    per_frame = {k: v / frames for k, v in stages.items() if k != "report"}
    per_frame["total"] = (stages["total"] - report) / frames
    return {
        "workers": summary["workers"], "frames": frames, "events": summary["events"],
        "events_per_frame": summary["events"] / frames, "wall_s": round(wall, 2),
        "events_per_s": round(summary["events"] / wall, 1),
        "classify_events_per_s": round(summary["classify_events_per_s"] or 0, 1),
        "stage_s": stages,
        "per_frame_ms": {k: round(1000 * v, 1) for k, v in per_frame.items()},
        "report_s": report,
        "s_per_175_frames": round(per_frame["total"] * CARTRIDGE_FRAMES + report, 1),
        "stage_s_per_175_frames": {k: round(v * CARTRIDGE_FRAMES, 1)
                                   for k, v in per_frame.items()},
        "peak_memory_mb": summary["peak_memory_mb"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--events-per-frame", type=int, default=300)
    parser.add_argument("--cartridge", type=Path, default=None,
                        help="reuse this cartridge folder (simulated there if empty)")
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--backend", choices=("torch", "onnx"), default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default: by device")
    parser.add_argument("--workers", type=int, default=1,
                        help="threads for the overlapped run (the inline run uses 0)")
    parser.add_argument("--skip-inline", action="store_true", help="only the overlapped run")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)

    import torch

    from ctcnet.predict import load_backend

    tmp = Path(tempfile.mkdtemp(prefix="ctcnet-bench-"))
    try:
        cartridge = args.cartridge or tmp / "cartridge"
        if not (cartridge / "cartridge.json").exists():
            make_cartridge(cartridge, args.frames, args.events_per_frame, seed=0)
        model = args.model or untrained_model(tmp / "model.pt")
        backend = load_backend(model, args.backend, args.device, args.batch_size)
        results = {"device": backend.device_name, "backend": backend.name,
                   "torch_threads": torch.get_num_threads(), "batch_size": backend.batch_size,
                   "crop_size": backend.spec.crop_size, "model": str(model), "runs": []}
        # Warm-up: first calls allocate and (on CUDA) pick kernels.
        import numpy as np

        backend.predict_proba(np.full((backend.batch_size, backend.spec.in_chans,
                                       backend.spec.crop_size, backend.spec.crop_size), 150.0,
                                      np.float32))
        for workers in ([] if args.skip_inline else [0]) + [args.workers]:
            result = run_once(cartridge, backend, tmp / f"out{workers}", workers,
                              backend.batch_size)
            results["runs"].append(result)
            print(json.dumps(result, indent=1), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
