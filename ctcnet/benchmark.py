"""The performance record: ``ctcnet benchmark`` measures the product on the machine it runs on.

Sections (each a plain function returning rows of plain data):

* classification throughput, crops/s, of the inference backends
  (:mod:`ctcnet.inference.backends`): torch eager fp32 (NCHW and channels_last), ONNX Runtime
  fp32, fp16 and int8, at batch 1 / 8 / 64 / 1024, as ratios to torch eager in the same run; on
  CUDA also fp32, bf16 and fp16 autocast and the fraction of the GPU's peak FLOP rate;
* whole cartridges end to end (read / detect / crop / classify / write), events/s and peak RSS,
  at 10, 175 and 1,000 frames (each run in its own process, so peak memory is its own);
* the I/O lower bound: the time just to read the cartridge's files from disk (bytes, and bytes
  decoded into arrays);
* training throughput, crops/s.

Every timing is a median over repeated runs with the spread (min-max) shown. Results go to
``docs/benchmarks.md`` (table) and ``docs/benchmarks.json`` (record), with the machine
description. ``--quick`` runs every section on tiny inputs, to check the benchmark still works
(CI); its numbers mean nothing.

Large cartridges are built by hard-linking the frames of one simulated cartridge under new
positions: the pipeline reads, detects and classifies real frames, and the 1,000-frame case costs
no extra simulation or disk.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ctcnet.evaluation.metrics import macro_f1
from ctcnet.inference.backends import OnnxBackend, TorchBackend, load_backend
from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.scan import open_cartridge, read_frame, serpentine_position, write_cartridge_info

# Dense peak FLOP rates (FLOP/s) by device name, for the "fraction of peak" figure on CUDA.
# Published datasheet values (SXM parts); an unknown GPU gets no fraction rather than a guess.
GPU_PEAK_FLOPS = {
    "H200": {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12},
    "H100": {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12},
    "A100": {"fp32": 19.5e12, "bf16": 312e12, "fp16": 312e12},
    "L4": {"fp32": 30e12, "bf16": 121e12, "fp16": 121e12},
}


@dataclass
class BenchSettings:
    batch_sizes: tuple[int, ...] = (1, 8, 64, 1024)
    repeats: int = 5
    frame_counts: tuple[int, ...] = (10, 175, 1000)
    cartridge_repeats: int = 3          # for the middle (175-frame) size; others run once
    frame_shape: tuple[int, int] = (1036, 1384)
    events_per_frame: int = 290         # ~50,000 events in 175 frames, as in the issue
    train_steps: int = 10
    train_batch: int = 128
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> BenchSettings:
        return cls(batch_sizes=(1, 8), repeats=2, frame_counts=(2, 3), cartridge_repeats=1,
                   frame_shape=(256, 320), events_per_frame=20, train_steps=1, train_batch=8,
                   quick=True)


def stats(samples: list[float]) -> dict:
    """Median and spread of repeated measurements."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "n": len(samples)}


def time_repeated(fn: Callable[[], object], repeats: int, warmup: int = 1,
                  sync: Callable[[], None] | None = None) -> list[float]:
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append(time.perf_counter() - t0)
    return out


def machine_info() -> dict:
    """What the numbers were measured on."""
    import onnxruntime
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem_gib = None
    info = {"cpu": cpu, "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "memory_gib": round(mem_gib, 1) if mem_gib else None,
            "python": platform.python_version(), "platform": platform.platform(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "onnxruntime": onnxruntime.__version__, "cuda": None}
    if torch.cuda.is_available():
        info["cuda"] = {"device": torch.cuda.get_device_name(0),
                        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory
                                            / 2**30, 1)}
    return info


# ---------------------------------------------------------------------------------------------
# Classification throughput.

def tile_to(images: np.ndarray, count: int) -> np.ndarray:
    """Repeat crops up to ``count`` (timing batches larger than the labelled set)."""
    reps = int(np.ceil(count / len(images)))
    return np.ascontiguousarray(np.tile(images, (reps, 1, 1, 1))[:count]).astype(np.float32)


def model_flops(model, crop: np.ndarray) -> float:
    """FLOPs of one forward pass on one crop (torch's FLOP counter: convs and matmuls)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.inference_mode():
        model(torch.from_numpy(crop[None]))
    return float(counter.get_total_flops())


def bench_classification(model_path: Path, settings: BenchSettings, workdir: Path) -> dict:
    """crops/s of every engine at every batch size, as ratios to torch eager; macro-F1 of each
    engine on the same labelled simulated crops (what quantisation or fp16 costs)."""
    # torch; each measurement runs in a worker process that imports only what it measures.
    import torch

    from ctcnet.deploy.export import export_onnx, simulated_crops
    from ctcnet.nn.classifier import load_model

    model, spec = load_model(model_path)
    labelled = simulated_crops(spec, 64 if settings.quick else 2000, seed=777)
    crops = tile_to(labelled.images, max(settings.batch_sizes))
    flops = model_flops(model, crops[0])
    # Every engine is a Backend (ctcnet.inference.backends), the same objects predict uses.
    engines: dict = {}

    def torch_engine(**options):
        return TorchBackend.from_model(load_model(model_path)[0], **options)

    engines["torch eager fp32"] = torch_engine(device="cpu")
    engines["torch eager fp32 channels_last"] = torch_engine(device="cpu", channels_last=True)
    onnx_files = {p: workdir / f"model-{p}.onnx" for p in ("fp32", "fp16", "int8")}
    notes = []
    for precision, path in list(onnx_files.items()):
        try:
            calibration = f"simulate:{64 if settings.quick else 512}"
            export_onnx(model_path, path, precision=precision, overwrite=True,
                        calibration=calibration if precision == "int8" else None)
            engines[f"ORT {precision}"] = OnnxBackend(path, device="cpu")
        except Exception as err:  # e.g. the int8 gate refuses a model that loses accuracy
            notes.append(f"ORT {precision} not measured: {err}")
            onnx_files.pop(precision)
    if torch.cuda.is_available():
        for precision in ("fp32", "bf16", "fp16"):
            engines[f"torch CUDA {precision}"] = torch_engine(device="cuda", precision=precision,
                                                              channels_last=True)

    accuracy = {}
    for name, engine in engines.items():
        engine.batch_size = 256
        scores = engine.predict_logits(labelled.images.astype(np.float32))
        accuracy[name] = macro_f1(labelled.labels, scores.argmax(axis=1), spec.num_classes)

    rows = []
    for batch_size in settings.batch_sizes:
        batch = crops[:batch_size]
        # Small batches are timed over several calls so each sample lasts long enough to time.
        calls = max(1, 256 // batch_size) if not settings.quick else 1
        base = None
        for name, engine in engines.items():
            sync = torch.cuda.synchronize if "CUDA" in name else None
            engine.batch_size = batch_size
            samples = time_repeated(lambda e=engine, b=batch, k=calls: [e.predict_logits(b)
                                                                        for _ in range(k)],
                                    settings.repeats, sync=sync)
            rates = [calls * batch_size / s for s in samples]
            row = {"engine": name, "batch": batch_size, "crops_per_s": stats(rates),
                   "macro_f1": accuracy[name]}
            if name == "torch eager fp32":
                base = row["crops_per_s"]["median"]
            row["ratio_to_torch_eager"] = row["crops_per_s"]["median"] / base
            if "CUDA" in name:
                peak = _gpu_peak(torch.cuda.get_device_name(0), name.split()[-1])
                if peak:
                    row["fraction_of_gpu_peak"] = row["crops_per_s"]["median"] * flops / peak
            rows.append(row)
    sizes = {k: v.stat().st_size for k, v in onnx_files.items()}
    sizes["torch .pt"] = Path(model_path).stat().st_size
    return {"rows": rows, "model_file_bytes": sizes, "flops_per_crop": flops,
            "crop_shape": list(crops.shape[1:]), "accuracy_crops": labelled.source,
            "note": "; ".join(notes) or None}


def _gpu_peak(device_name: str, precision: str) -> float | None:
    for key, peaks in GPU_PEAK_FLOPS.items():
        if key in device_name:
            return peaks.get(precision)
    return None


# ---------------------------------------------------------------------------------------------
# Whole cartridges.

def simulate_base_cartridge(root: Path, frames: int, settings: BenchSettings, seed: int = 11
                            ) -> Path:
    """A simulated cartridge reused across runs (kept under the work folder)."""
    from ctcnet.simulate import simulate_cartridge  # scipy, pandas

    marker = root / "ground_truth.csv"
    if not marker.exists():
        simulate_cartridge(root, num_frames=frames, frame_shape=settings.frame_shape, seed=seed,
                           events_per_frame=settings.events_per_frame)
    return root


def linked_cartridge(base: Path, target: Path, frames: int, columns: int = 35) -> Path:
    """A cartridge of ``frames`` frames made of hard links to the base cartridge's frames.

    Its cartridge.json says ``"repeated_frames": true``: predict would otherwise count each
    repeated frame once, as the same tile written under two names (``ctcnet.io.scan``)."""
    info_path = target / "cartridge.json"
    if info_path.exists():  # kept from an earlier run, perhaps from before the flag
        info = json.loads(info_path.read_text())
        if info.get("repeated_frames") is not True:
            atomic_write_text(info_path, json.dumps({**info, "repeated_frames": True},
                                                    indent=2) + "\n")
        return target
    source = open_cartridge(base)
    target.mkdir(parents=True, exist_ok=True)
    for index in range(frames):
        ref = source.frames[index % len(source.frames)]
        row, col = serpentine_position(index, columns)
        for path in ref.files:
            suffix = path.name[len(ref.stem):]
            link = target / f"r{row:02d}c{col:02d}{suffix}"
            try:
                os.link(path, link)
            except OSError:  # another file system: copy instead
                link.write_bytes(path.read_bytes())
    rows = (frames + columns - 1) // columns
    info = source.info
    write_cartridge_info(target, source.panel, f"bench-{frames}", frames, rows, columns,
                         (int(info.get("frame_height", 0)), int(info.get("frame_width", 0))),
                         extra={"repeated_frames": True})
    return target


def _run_worker(args: list[str]) -> dict:
    """Run one measurement in a fresh process (its own peak RSS); returns its JSON line, plus
    ``process_s``: the process's wall time from start to exit (imports and model load too)."""
    cmd = [sys.executable, "-m", "ctcnet.benchmark", *args]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": seconds}


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (other work on the machine slows every number)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# The 175-frame cartridge's configurations: (name, extra worker arguments).
CONFIGS = (("defaults", []), ("--workers 0", ["--workers", "0"]),
           ("--no-report", ["--no-report"]))
# With a GPU the defaults detect and cut crops on it; this row is the same run with that work
# in numpy on the CPU, so the benchmark shows what the GPU path gains.
GPU_CONFIGS = (("--frame-device numpy", ["--frame-device", "numpy"]),)


def worker_predict(cartridge: str, model: str, out: str, backend: str, *flags: str) -> dict:
    """One predict run as ``ctcnet predict`` makes it (flags: ``--workers N``,
    ``--no-report``, ``--frame-device D``)."""
    # pandas, scipy: imported in the worker whose peak memory is measured, as predict would.
    from ctcnet.inference.predict import PredictOptions, peak_memory_mb, predict_cartridge
    from ctcnet.report import review

    engine = load_backend(model, backend, device="auto")
    options = PredictOptions(quiet=True, overwrite=True, report=review)
    flags = list(flags)
    if "--workers" in flags:
        options.workers = int(flags[flags.index("--workers") + 1])
    if "--no-report" in flags:
        options.report = None
    if "--frame-device" in flags:
        options.frame_device = flags[flags.index("--frame-device") + 1]
    summary = predict_cartridge(cartridge, engine, out, options)
    return {"timings_s": summary.timings_s, "events": summary.events,
            "frames": asdict(summary.frames), "peak_rss_mb": peak_memory_mb(),
            "device": engine.device_name, "frame_device": options.frame_device,
            "saliency": options.report is not None and engine.explainer() is not None}


def worker_model(model: str, backend: str, count: str, repeats: str) -> dict:
    """The classification floor: the model alone on ``count`` crops, as predict runs it
    (same backend, threads and batch size), crops/s over ``repeats`` runs."""
    engine = load_backend(model, backend, device="auto")
    spec = engine.spec
    rng = np.random.default_rng(0)
    crops = rng.poisson(200, (int(count), spec.in_chans, spec.crop_size, spec.crop_size))
    crops = crops.astype(np.float32)
    samples = time_repeated(lambda: engine.predict_proba(crops), int(repeats))
    return {"crops_per_s": stats([int(count) / t for t in samples]),
            "batch_size": engine.batch_size, "device": engine.device_name}


def worker_read(cartridge: str) -> dict:
    """The I/O lower bound: read every frame file's bytes, then decode every frame."""
    from ctcnet.inference.predict import peak_memory_mb  # pandas, scipy, after the read

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


def _predict_runs(cart: Path, model_file: Path, backend: str, flags: list[str], repeats: int,
                  workdir: Path) -> list[dict]:
    runs = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(dir=workdir) as out:
            runs.append(_run_worker(["predict", str(cart), str(model_file), out, backend,
                                     *flags]))
    return runs


def _summarise_runs(runs: list[dict]) -> dict:
    """Median run's stages, the spread of wall times and the largest peak RSS."""
    totals = [r["timings_s"]["total"] for r in runs]
    ordered = sorted(range(len(runs)), key=lambda i: totals[i])
    median_run = runs[ordered[len(runs) // 2]]
    return {"total_s": stats(totals), "process_s": stats([r["process_s"] for r in runs]),
            "stages_s": {k: round(v, 3) for k, v in median_run["timings_s"].items()},
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "events": runs[0]["events"],
            "runs": len(runs), "saliency": runs[0].get("saliency")}


def bench_cartridges(model_path: Path, settings: BenchSettings, workdir: Path,
                     backend: str = "onnx",
                     on_progress: Callable[[dict], None] | None = None) -> dict:
    """End-to-end runs through the product's CPU default: the model's fp32 ONNX export (made
    in ``workdir`` if the classification section has not made it), or torch on CUDA.

    Every size runs with the defaults; the middle size (175 frames) also with ``--workers 0``
    (stages inline, so they add up), ``--no-report`` and, with a GPU, ``--frame-device numpy``
    (detection and cropping on the CPU, against the defaults' GPU path). Beside the stages
    stand their floors: reading and decoding the same frames alone, and the model alone at
    predict's settings. ``on_progress`` gets the section as far as it has come after each
    cartridge size (so a run stopped at the largest size keeps the smaller ones).
    """
    import torch

    gpu_configs = ()
    if torch.cuda.is_available():
        backend, gpu_configs = "torch", GPU_CONFIGS
    model_file = Path(model_path)
    if backend == "onnx":
        # Exported and copied afresh on every run: a --workdir kept between runs holds the
        # cartridges, but its model files may be of another model or an older export.
        from ctcnet.deploy.export import export_onnx  # torch

        model_file = workdir / "model-fp32.onnx"
        export_onnx(model_path, model_file, precision="fp32", overwrite=True)
        # The checkpoint beside its export, as the shipped model lies: the report then draws
        # saliency maps (torch) exactly as ``ctcnet predict`` with the shipped model does.
        shutil.copyfile(model_path, workdir / Path(model_path).name)
    base_frames = min(max(settings.frame_counts), 175)
    base = simulate_base_cartridge(workdir / f"sim-{base_frames}", base_frames, settings)
    model_floor = _run_worker(["model", str(model_file), backend,
                               str(256 if settings.quick else 4096),
                               str(1 if settings.quick else 3)])
    rate = model_floor["crops_per_s"]["median"]
    rows = []
    middle = sorted(settings.frame_counts)[len(settings.frame_counts) // 2]
    for frames in settings.frame_counts:
        cart = linked_cartridge(base, workdir / f"cartridge-{frames}", frames)
        io = [_run_worker(["read", str(cart)]) for _ in range(2 if frames == middle else 1)]
        read_floor = statistics.median(r["read_decode_s"] for r in io)
        configs = CONFIGS + gpu_configs if frames == middle else CONFIGS[:1]
        measured = {}
        for name, flags in configs:
            repeats = settings.cartridge_repeats if (frames == middle and name == "defaults") \
                else 1
            measured[name] = _summarise_runs(_predict_runs(cart, model_file, backend, flags,
                                                           repeats, workdir))
        default = measured["defaults"]
        events = default["events"] or 0
        floors = {"read_s": read_floor, "classify_s": events / rate if rate else None}
        stages = default["stages_s"]
        rows.append({
            "frames": frames, "events": events, "backend": backend,
            "total_s": default["total_s"], "process_s": default["process_s"],
            "stages_s": stages,
            "stages_inline_s": measured.get("--workers 0", {}).get("stages_s"),
            "configs": measured if len(measured) > 1 else None,
            "events_per_s": events / default["total_s"]["median"] if events else None,
            "peak_rss_mb": default["peak_rss_mb"], "saliency": default.get("saliency"),
            "floors_s": floors,
            "ratios_to_floor": {
                "read": stages.get("read", 0) / read_floor if read_floor else None,
                "classify": (stages.get("classify", 0) / floors["classify_s"]
                             if floors["classify_s"] else None),
                "total_to_read": default["total_s"]["median"] / read_floor if read_floor
                else None,
                "total_to_model": (default["total_s"]["median"] / floors["classify_s"]
                                   if floors["classify_s"] else None)},
            "io_read_bytes_s": stats([r["read_bytes_s"] for r in io]),
            "io_read_decode_s": stats([r["read_decode_s"] for r in io]),
            "bytes": io[0]["bytes"],
            "load_average": load_average(),
        })
        if on_progress is not None:
            on_progress(_cartridge_section(rows, settings, model_floor))
    return _cartridge_section(rows, settings, model_floor)


def _cartridge_section(rows: list[dict], settings: BenchSettings, model_floor: dict) -> dict:
    first, last = rows[0], rows[-1]
    flatness = None
    if len(rows) >= 2 and first["frames"] and first["events"] and last["events"]:
        flatness = {
            "from_frames": first["frames"], "to_frames": last["frames"],
            "time_per_event": (last["total_s"]["median"] / last["events"])
            / (first["total_s"]["median"] / first["events"]),
            "time_per_event_without_fixed": _marginal_ratio(rows),
            "peak_rss": last["peak_rss_mb"] / first["peak_rss_mb"]}
    return {"rows": rows, "frame_shape": list(settings.frame_shape),
            "events_per_frame": settings.events_per_frame, "model_floor": model_floor,
            "flatness": flatness, "device": model_floor.get("device")}


def _marginal_ratio(rows: list[dict]) -> float | None:
    """Time per event of the largest run over that of the middle one, after taking out the
    fixed cost (start, model load, report) that the two smaller sizes share; 1.0 is linear."""
    if len(rows) < 3:
        return None
    (a, b, c) = rows[0], rows[len(rows) // 2], rows[-1]
    ta, tb, tc = (r["total_s"]["median"] for r in (a, b, c))
    ea, eb, ec = (r["events"] for r in (a, b, c))
    if not (eb > ea and ec > eb):
        return None
    per_event_small = (tb - ta) / (eb - ea)
    per_event_large = (tc - tb) / (ec - eb)
    return per_event_large / per_event_small if per_event_small > 0 else None


# ---------------------------------------------------------------------------------------------
# Training.

def training_throughput(arch: str = "compact", crop_size: int = 80, batch_size: int = 128,
                        steps: int = 5, device: str = "auto", panel=None,
                        augment: bool = True) -> dict:
    """Training speed in crops/s (forward, loss, backward, AdamW step; augmentation included).

    Also the two parts alone: ``augment_crops_per_s`` (augmentation on one core, as one
    data-loader worker runs it) and ``step_crops_per_s`` (the training step on an augmented
    batch). Together they say what feeds a GPU: it needs step / augment workers. Runs on CUDA
    (bf16 autocast, channels_last) when present, else on the CPU; for the benchmark.
    Synthetic raw counts, so it needs no simulator.
    """
    # torch, Lightning: the training section only.
    import torch

    from ctcnet.nn.classifier import select_device
    from ctcnet.simulate.augment import build_train_augment
    from ctcnet.training.lit import CTCLitModule

    dev = select_device(device)
    module = CTCLitModule(panel=panel, crop_size=crop_size, arch=arch).to(dev)
    if dev.type == "cuda":
        module.model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
    rng = np.random.default_rng(0)
    crops = rng.poisson(150, (batch_size, module.spec.in_chans, crop_size, crop_size))
    crops = crops.astype(np.float32)
    targets = torch.from_numpy(rng.integers(0, module.spec.num_classes, batch_size)).to(dev)
    augmenter = build_train_augment(seed=0) if augment else None
    use_bf16 = dev.type == "cuda" and torch.cuda.is_bf16_supported()

    def augmented() -> np.ndarray:
        return np.stack([augmenter(c) for c in crops]) if augmenter else crops

    def train_step(batch: np.ndarray) -> None:
        raw = torch.from_numpy(batch).to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = module.compute_loss(module(raw), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def crops_per_s(work: Callable[[], object]) -> float:
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            work()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return steps * batch_size / (time.perf_counter() - start)

    batch = augmented()
    train_step(batch)  # warm-up: allocations, cuDNN algorithm choice
    return {"arch": arch, "device": str(dev), "crop_size": crop_size, "batch_size": batch_size,
            "augment": augment, "steps": steps,
            "crops_per_s": crops_per_s(lambda: train_step(augmented())),
            "augment_crops_per_s": crops_per_s(augmented) if augmenter else None,
            "step_crops_per_s": crops_per_s(lambda: train_step(batch)),
            "threads": torch.get_num_threads()}


def bench_training(settings: BenchSettings, spec) -> dict:
    crop = 32 if settings.quick else spec.crop_size
    runs = [training_throughput(arch=spec.arch, crop_size=crop, batch_size=settings.train_batch,
                                steps=settings.train_steps, panel=spec.panel.to_dict())
            for _ in range(1 if settings.quick else 3)]
    return {**runs[0], **{key: stats([r[key] for r in runs]) if runs[0][key] else None
                          for key in ("crops_per_s", "augment_crops_per_s", "step_crops_per_s")}}


# ---------------------------------------------------------------------------------------------
# The record.

def run_benchmark(model_path: Path, out_dir: Path, settings: BenchSettings,
                  workdir: Path | None = None, sections=("classify", "cartridge", "train"),
                  log: Callable[[str], None] = print) -> dict:
    from ctcnet.nn.classifier import load_model  # torch

    _, spec = load_model(model_path)
    record = {"created": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(),
              "model": str(model_path), "quick": settings.quick,
              "settings": {k: v for k, v in vars(settings).items()}}
    own_workdir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="ctcnet-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)

    def save(**update) -> None:
        # Written after every section and cartridge size: a run stopped part-way (a time
        # limit, Ctrl-C) leaves what it measured, marked incomplete.
        record.update(update)
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out_dir / "benchmarks.json",
                          json.dumps(record, indent=2, default=str) + "\n")
        atomic_write_text(out_dir / "benchmarks.md", render_markdown(record))

    record["complete"] = False
    try:
        if "classify" in sections:
            log("benchmark: classification throughput")
            save(classification=bench_classification(model_path, settings, workdir))
        if "cartridge" in sections:
            log("benchmark: whole cartridges")
            save(cartridges=bench_cartridges(model_path, settings, workdir,
                                             on_progress=lambda part: save(cartridges=part)))
        if "train" in sections:
            log("benchmark: training throughput")
            record["training"] = bench_training(settings, spec)
            card = Path(model_path).with_suffix(".json")
            if card.exists():
                record["training"]["shipped_model"] = json.loads(card.read_text()).get("training")
        save(complete=True)
    finally:
        if own_workdir:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    return record


def _fmt(s: dict, digits: int = 0) -> str:
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}-{s['max']:,.{digits}f})"


def render_markdown(record: dict) -> str:
    m = record["machine"]
    lines = ["# ctcnet benchmarks", "",
             f"Measured {record['created']} with `ctcnet benchmark"
             f"{' --quick' if record['quick'] else ''}` on: {m['cpu']}, {m['cores']} cores, "
             f"{m['memory_gib']} GiB; torch {m['torch']} ({m['torch_threads']} threads), "
             f"onnxruntime {m['onnxruntime']}; GPU: "
             f"{m['cuda']['device'] if m['cuda'] else 'none'}.", "",
             "Medians over repeated runs, spread (min-max) in brackets. Ratios compare engines "
             "within this one run; absolute numbers move with the machine's load.", ""]
    if record.get("quick"):
        lines += ["**Quick mode: tiny inputs, to check the benchmark runs. These numbers mean "
                  "nothing.**", ""]
    if record.get("complete") is False:
        lines += ["**Incomplete: the run stopped before it finished; below is what it had "
                  "measured by then.**", ""]
    c = record.get("classification")
    if c:
        lines += ["## Classification throughput (crops/s)", "",
                  f"Crops {c['crop_shape']} (C, H, W) of raw counts, normalisation included; "
                  f"{c['flops_per_crop'] / 1e6:.1f} MFLOP per crop. Macro-F1 of each engine on "
                  f"{c['accuracy_crops']}.", "",
                  "| engine | batch | crops/s | x torch eager | macro-F1 |",
                  "|---|---:|---:|---:|---:|"]
        for r in c["rows"]:
            frac = r.get("fraction_of_gpu_peak")
            extra = f" ({100 * frac:.1f}% of GPU peak)" if frac else ""
            lines.append(f"| {r['engine']} | {r['batch']} | {_fmt(r['crops_per_s'])}{extra} | "
                         f"{r['ratio_to_torch_eager']:.2f} | {r['macro_f1']:.4f} |")
        sizes = ", ".join(f"{k}: {v / 1024:.0f} KiB" for k, v in c["model_file_bytes"].items())
        lines += ["", f"Model files: {sizes}."]
        if c.get("note"):
            lines += ["", c["note"]]
        lines.append("")
    k = record.get("cartridges")
    if k:
        lines += render_cartridges(k)
    t = record.get("training")
    if t:
        lines += ["## Training", "",
                  f"{t['arch']} at {t['crop_size']} px, batch {t['batch_size']}, on "
                  f"{t['device']} ({t['threads']} threads), augmentation "
                  f"{'on' if t['augment'] else 'off'}: {_fmt(t['crops_per_s'])} crops/s."]
        if t.get("augment_crops_per_s") and t.get("step_crops_per_s"):
            aug, step = t["augment_crops_per_s"]["median"], t["step_crops_per_s"]["median"]
            parts = (f"The parts alone: augmentation {_fmt(t['augment_crops_per_s'])} crops/s "
                     f"on one core (one data-loader worker), the training step "
                     f"{_fmt(t['step_crops_per_s'])} crops/s")
            if t["device"].startswith("cuda"):  # on a CPU the workers and the step share cores
                parts += (f"; so about {math.ceil(step / aug)} workers (`--data.num_workers`) "
                          "keep the GPU busy")
            lines += ["", parts + "."]
        shipped = t.get("shipped_model")
        if shipped:
            lines += ["", "The shipped model's training run (from its card): "
                      + ", ".join(f"{k}: {v}" for k, v in shipped.items()
                                  if isinstance(v, (int, float, str))) + "."]
        lines.append("")
    return "\n".join(lines)


def render_cartridges(k: dict) -> list[str]:
    """The whole-cartridge section of benchmarks.md."""
    h, w = k["frame_shape"]
    floor = k.get("model_floor") or {}
    rate = (floor.get("crops_per_s") or {}).get("median")
    lines = ["## Whole cartridges, end to end", "",
             f"Simulated frames of {w} x {h} px, ~{k['events_per_frame']} events per frame "
             "(frames beyond the simulated ones are hard links to them), model on "
             f"{k.get('device') or 'cpu'}. Each run is its own process; `total` is predict's "
             "wall clock, `process` the whole process's (start, imports and model load "
             "included), peak RSS the process's high-water mark (VmHWM). Stage times: read, "
             "detect, crop and the guard's measurements run in the frame threads (summed "
             "over frames, they overlap classification). A load average above the core count "
             "(last column) means other work shared the CPU: every absolute time is inflated, "
             "the ratios less so. Floors: `read floor` is reading and decoding the same frames "
             "alone (tifffile, page cache warm); `model floor` the model alone on as many "
             "crops at predict's settings"
             + (f" ({rate:,.0f} crops/s, batch {floor.get('batch_size')})" if rate else "")
             + ".", "",
             "| frames | events | total s | process s | events/s | read (x floor) | detect | "
             "crop | guard | classify (x floor) | write | report | peak RSS MB | read floor s | "
             "model floor s | total / model floor | load avg |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
             "---|"]
    for r in k["rows"]:
        s = r["stages_s"]
        fl, ratio = r.get("floors_s") or {}, r.get("ratios_to_floor") or {}

        def x(v):
            return f" ({v:.1f}x)" if v else ""

        load = r.get("load_average")
        lines.append(
            f"| {r['frames']} | {r['events']:,} | {_fmt(r['total_s'], 1)} | "
            f"{_fmt(r['process_s'], 1) if r.get('process_s') else '-'} | "
            f"{(r['events_per_s'] or 0):,.0f} | {s.get('read', 0):.1f}{x(ratio.get('read'))} | "
            f"{s.get('detect', 0):.1f} | {s.get('crop', 0):.1f} | {s.get('guard', 0):.1f} | "
            f"{s.get('classify', 0):.1f}{x(ratio.get('classify'))} | {s.get('write', 0):.1f} | "
            f"{s.get('report', 0):.1f} | {r['peak_rss_mb']:,.0f} | "
            f"{fl.get('read_s', 0):.2f} | {fl.get('classify_s') or 0:.1f} | "
            f"{ratio.get('total_to_model') or 0:.2f} | "
            f"{' '.join(f'{v:.1f}' for v in load) if load else '-'} |")
    for r in k["rows"]:
        configs = r.get("configs")
        if not configs:
            continue
        lines += ["", f"{r['frames']} frames ({r['events']:,} events) in {len(configs)} "
                  "configurations (`ctcnet predict` options):", "",
                  "| configuration | runs | total s | process s | read | detect | crop | guard | "
                  "classify | write | report | peak RSS MB |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for name, c in configs.items():
            s = c["stages_s"]
            lines.append(f"| {name} | {c['runs']} | {_fmt(c['total_s'], 1)} | "
                         f"{_fmt(c['process_s'], 1)} | " + " | ".join(
                             f"{s.get(n, 0):.1f}" for n in
                             ("read", "detect", "crop", "guard", "classify", "write",
                              "report"))
                         + f" | {c['peak_rss_mb']:,.0f} |")
        lines += ["", "With `--workers 0` the stages run one after another, so they add up to "
                  "the total; with the defaults reading, detection, cropping and the guard's "
                  "measurements overlap classification."]
        if "--frame-device numpy" in configs:
            lines += ["", "The defaults detect and cut crops on the GPU (`--frame-device auto`); "
                      "`--frame-device numpy` does that work on the CPU."]
    saliency = {r.get("saliency") for r in k["rows"]}
    if saliency == {True}:
        lines += ["", "The report includes the gallery's saliency maps (torch, imported for them "
                  "alone), as `ctcnet predict` with the shipped model makes it."]
    elif saliency != {None}:
        lines += ["", "The report in this record has no saliency maps (the measured model had "
                  "no checkpoint beside it); with them the report imports torch, ~600 MB more "
                  "peak memory with the CUDA build of torch."]
    f = k.get("flatness")
    if f:
        marginal = f.get("time_per_event_without_fixed")
        lines += ["", f"Flatness from {f['from_frames']} to {f['to_frames']} frames: peak RSS "
                  f"{f['peak_rss']:.2f}x; time per event {f['time_per_event']:.2f}x"
                  + (f" ({marginal:.2f}x once the fixed start-up and report cost is taken "
                     "out: time per event added between the middle and the largest size over "
                     "that between the smallest and the middle)" if marginal else "") + "."]
    lines.append("")
    return lines


def _worker_main(argv: list[str]) -> int:
    kind, *rest = argv
    if kind == "predict":
        result = worker_predict(*rest)
    elif kind == "read":
        result = worker_read(*rest)
    elif kind == "model":
        result = worker_model(*rest)
    else:
        raise SystemExit(f"unknown benchmark worker {kind!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
