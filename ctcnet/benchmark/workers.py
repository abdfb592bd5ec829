"""The benchmark's measurements that run in a process of their own (``python -m
ctcnet.benchmark KIND ...``), so each has its own peak memory and imports only what it measures:
``predict`` (one ``ctcnet predict`` run), ``model`` (the model alone), ``read`` (the frame files
alone), ``floors`` (each frame stage's floor, :mod:`ctcnet.benchmark.floors`) and ``peer``
(the classic gate, :mod:`ctcnet.benchmark.peer`). Each prints one JSON line."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ctcnet.benchmark.common import stats, time_repeated
from ctcnet.benchmark.peer import worker_peer
from ctcnet.inference.backends import load_backend
from ctcnet.inference.resources import (
    children_peak_memory_mb,
    cpu_cores,
    one_malloc_arena,
    peak_memory_mb,
    single_threaded_blas,
)
from ctcnet.io.scan import open_cartridge, read_frame
from ctcnet.nn.crop_input import synthetic_crops


def worker_predict(cartridge: str, model: str, out: str, backend: str, *flags: str) -> dict:
    """One predict run as ``ctcnet predict`` makes it (flags: ``--workers N``,
    ``--no-report``, ``--saliency``, ``--frame-device D``, ``--frame-pool P``), then the write
    floor on its events table. Its peak RSS is its process's and its frame processes'."""
    # pandas, scipy: imported in the worker whose peak memory is measured, as predict would.
    from ctcnet.benchmark.floors import write_floor
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.report import run_report

    engine = load_backend(model, backend, device="auto")
    options = PredictOptions(quiet=True, overwrite=True, report=run_report)
    flags = list(flags)
    if "--workers" in flags:
        options.workers = int(flags[flags.index("--workers") + 1])
    if "--no-report" in flags:
        options.report = None
    if "--saliency" in flags:
        options.saliency = True
    if "--frame-device" in flags:
        options.frame_device = flags[flags.index("--frame-device") + 1]
    if "--frame-pool" in flags:
        options.frame_pool = flags[flags.index("--frame-pool") + 1]
    summary = predict_cartridge(cartridge, engine, out, options)
    peak = peak_memory_mb()  # before the write floor reads the table back
    children = children_peak_memory_mb()
    tables = sorted(Path(out).rglob("events.parquet"))
    written = write_floor(tables[0], Path(out) / "write-floor.parquet") if tables else None
    return {"timings_s": summary.timings_s, "events": summary.events,
            "frames": asdict(summary.frames), "peak_rss_mb": peak + children,
            "frame_processes_rss_mb": children,
            "device": engine.device_name, "frame_device": options.frame_device,
            "saliency": bool(options.report is not None and options.saliency
                             and engine.explainer() is not None),
            "write_floor": written}


def worker_model(model: str, backend: str, count: str, repeats: str) -> dict:
    """The classification floor: the model alone on ``count`` crops, crops/s over ``repeats``
    runs at predict's batch size, and the best batch size (the floor the stages are compared
    with)."""
    from ctcnet.benchmark.floors import model_floor  # scipy, the guard: not for this worker

    engine = load_backend(model, backend, device="auto")
    # float32, as predict hands crops to the model
    crops = synthetic_crops(engine.spec, int(count)).astype(np.float32)
    samples = time_repeated(lambda: engine.predict_proba(crops), int(repeats))
    # The batch sweep on a quarter of the crops (at least 256): enough to rank batch sizes.
    sweep = model_floor(engine, crops[:max(256, len(crops) // 4)], int(repeats))
    best = sweep["best_batch"]
    engine.batch_size = best
    best_samples = time_repeated(lambda: engine.predict_proba(crops), int(repeats))
    at_predict = stats([int(count) / t for t in samples])
    at_best = stats([int(count) / t for t in best_samples])
    # The floor is the fastest rate measured, the batch sweep's included: other work on the
    # machine only ever adds time, so the fastest run is the model's own pace most nearly
    # (a sweep's rate above the floor read stages faster than their own floor).
    floor_batch, floor = max((sweep["predict_batch"], at_predict["max"]), (best, at_best["max"]),
                             *sweep["crops_per_s_by_batch"].items(), key=lambda pair: pair[1])
    return {"crops_per_s": at_predict, "batch_size": sweep["predict_batch"],
            "device": engine.device_name, "best_batch": best, "best_crops_per_s": at_best,
            "floor_crops_per_s": floor, "floor_batch": floor_batch,
            "crops_per_s_by_batch": sweep["crops_per_s_by_batch"]}


def worker_read(cartridge: str) -> dict:
    """The I/O lower bound: read every frame file's bytes, then decode every frame."""

    cart = open_cartridge(cartridge)
    files = [p for f in cart.frames for p in f.files]
    t0 = time.perf_counter()
    nbytes = sum(len(p.read_bytes()) for p in files)
    t_bytes = time.perf_counter() - t0
    t0 = time.perf_counter()
    for frame in cart.frames:
        read_frame(frame, cart.panel)
    t_decode = time.perf_counter() - t0
    return {"bytes": nbytes, "read_bytes_s": t_bytes, "read_decode_s": t_decode,
            "peak_rss_mb": peak_memory_mb()}


def worker_floors(cartridge: str, model: str, backend: str, frames: str, repeats: str) -> dict:
    """Each frame stage's floor and the library's stage alone, per event, on one core as
    predict's frame threads run them (BLAS on one thread)."""
    from ctcnet.benchmark.floors import frame_floors  # scipy, detection, the guard

    spec = load_backend(model, backend, device="cpu").spec
    with single_threaded_blas():
        return frame_floors(cartridge, spec, int(frames), int(repeats))


WORKERS = {"predict": worker_predict, "model": worker_model, "read": worker_read,
           "floors": worker_floors, "peer": worker_peer}


def worker_main(argv: list[str]) -> int:
    """Run the worker named by ``argv[0]`` with the rest as its arguments; print its JSON."""
    kind, *rest = argv
    if kind not in WORKERS:
        raise SystemExit(f"unknown benchmark worker {kind!r}")
    if kind == "predict":  # as the predict command does, before any thread starts
        one_malloc_arena(cpu_cores())
    print(json.dumps(WORKERS[kind](*rest)))
    return 0
