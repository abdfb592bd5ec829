"""The performance record: ``ctcnet benchmark`` measures the product on the machine it runs on.

Sections (each a plain function returning rows of plain data):

* classification throughput, crops/s, of the inference backends
  (:mod:`ctcnet.inference.backends`): torch eager fp32 (NCHW and channels_last), ONNX Runtime
  fp32, fp16 and int8, at batch 1 / 64 / 1024, as ratios to torch eager in the same run; on
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
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

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
    batch_sizes: tuple[int, ...] = (1, 64, 1024)
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
    import torch

    from ctcnet.deploy.export import export_onnx, simulated_crops
    from ctcnet.evaluation.metrics import macro_f1
    from ctcnet.inference.backends import OnnxBackend, TorchBackend
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
            export_onnx(model_path, path, precision=precision,
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
    from ctcnet.simulate import simulate_cartridge

    marker = root / "ground_truth.csv"
    if not marker.exists():
        simulate_cartridge(root, num_frames=frames, frame_shape=settings.frame_shape, seed=seed,
                           events_per_frame=settings.events_per_frame)
    return root


def linked_cartridge(base: Path, target: Path, frames: int, columns: int = 35) -> Path:
    """A cartridge of ``frames`` frames made of hard links to the base cartridge's frames."""
    from ctcnet.io.scan import open_cartridge, serpentine_position, write_cartridge_info

    if (target / "cartridge.json").exists():
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
                         (int(info.get("frame_height", 0)), int(info.get("frame_width", 0))))
    return target


def _run_worker(args: list[str]) -> dict:
    """Run one measurement in a fresh process (its own peak RSS); returns its JSON line."""
    cmd = [sys.executable, "-m", "ctcnet.benchmark", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed: {' '.join(args)}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker_predict(cartridge: str, model: str, out: str, backend: str,
                   workers: str | None = None) -> dict:
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, peak_memory_mb, predict_cartridge

    engine = load_backend(model, backend)
    options = PredictOptions(quiet=True, overwrite=True)
    if workers is not None:
        options.workers = int(workers)
    summary = predict_cartridge(cartridge, engine, out, options)
    return {"timings_s": summary.timings_s, "events": summary.events,
            "frames": asdict(summary.frames), "peak_rss_mb": peak_memory_mb()}


def worker_read(cartridge: str) -> dict:
    """The I/O lower bound: read every frame file's bytes, then decode every frame."""
    from ctcnet.inference.predict import peak_memory_mb
    from ctcnet.io.scan import open_cartridge, read_frame

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


def bench_cartridges(model_path: Path, settings: BenchSettings, workdir: Path,
                     backend: str = "onnx") -> dict:
    """End-to-end runs through the product's CPU default: the model's fp32 ONNX export (made
    in ``workdir`` if the classification section has not made it), or torch on CUDA."""
    import torch

    if torch.cuda.is_available():
        backend = "torch"
    model_file = Path(model_path)
    if backend == "onnx":
        model_file = workdir / "model-fp32.onnx"
        if not model_file.exists():
            from ctcnet.deploy.export import export_onnx

            export_onnx(model_path, model_file, precision="fp32")
    base_frames = min(max(settings.frame_counts), 175)
    base = simulate_base_cartridge(workdir / f"sim-{base_frames}", base_frames, settings)
    rows = []
    middle = sorted(settings.frame_counts)[len(settings.frame_counts) // 2]
    for frames in settings.frame_counts:
        cart = linked_cartridge(base, workdir / f"cartridge-{frames}", frames)
        io = [_run_worker(["read", str(cart)]) for _ in range(2 if frames == middle else 1)]
        repeats = settings.cartridge_repeats if frames == middle else 1
        runs = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(dir=workdir) as out:
                runs.append(_run_worker(["predict", str(cart), str(model_file), out, backend]))
        inline = None
        if frames == middle:
            # One run with reading and detection inline (no background threads), so the
            # per-stage split adds up to the wall time.
            with tempfile.TemporaryDirectory(dir=workdir) as out:
                inline = _run_worker(["predict", str(cart), str(model_file), out, backend, "0"])
        totals = [r["timings_s"]["total"] for r in runs]
        best = runs[totals.index(statistics.median(totals))] if len(runs) % 2 else runs[0]
        events = runs[0]["events"] or 0
        rows.append({
            "frames": frames, "events": events, "backend": backend,
            "total_s": stats(totals),
            "stages_s": {k: round(v, 3) for k, v in best["timings_s"].items()},
            "stages_inline_s": inline and {k: round(v, 3) for k, v in inline["timings_s"].items()},
            "events_per_s": events / statistics.median(totals) if events else None,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "io_read_bytes_s": stats([r["read_bytes_s"] for r in io]),
            "io_read_decode_s": stats([r["read_decode_s"] for r in io]),
            "bytes": io[0]["bytes"],
        })
    return {"rows": rows, "frame_shape": list(settings.frame_shape),
            "events_per_frame": settings.events_per_frame}


# ---------------------------------------------------------------------------------------------
# Training.

def training_throughput(arch: str = "compact", crop_size: int = 80, batch_size: int = 128,
                        steps: int = 5, device: str = "auto", panel=None,
                        augment: bool = True) -> dict:
    """Training speed in crops/s (forward, loss, backward, AdamW step; augmentation included).

    Runs on CUDA (bf16 autocast, channels_last) when present, else on the CPU; for the
    benchmark. Synthetic raw counts, so it needs no simulator.
    """
    import torch

    from ctcnet.nn.classifier import select_device
    from ctcnet.training.augment import build_train_augment
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

    def step() -> None:
        batch = np.stack([augmenter(c) for c in crops]) if augmenter else crops
        raw = torch.from_numpy(batch).to(dev, non_blocking=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = module.compute_loss(module(raw), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, cuDNN algorithm choice
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"arch": arch, "device": str(dev), "crop_size": crop_size, "batch_size": batch_size,
            "augment": augment, "steps": steps, "crops_per_s": steps * batch_size / seconds,
            "threads": torch.get_num_threads()}


def bench_training(settings: BenchSettings, spec) -> dict:
    crop = 32 if settings.quick else spec.crop_size
    runs = [training_throughput(arch=spec.arch, crop_size=crop, batch_size=settings.train_batch,
                                steps=settings.train_steps, panel=spec.panel.to_dict())
            for _ in range(1 if settings.quick else 3)]
    rates = [r["crops_per_s"] for r in runs]
    return {**runs[0], "crops_per_s": stats(rates)}


# ---------------------------------------------------------------------------------------------
# The record.

def run_benchmark(model_path: Path, out_dir: Path, settings: BenchSettings,
                  workdir: Path | None = None, sections=("classify", "cartridge", "train"),
                  log: Callable[[str], None] = print) -> dict:
    from ctcnet.io.atomic import atomic_write_text
    from ctcnet.nn.classifier import load_model

    _, spec = load_model(model_path)
    record = {"created": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine_info(),
              "model": str(model_path), "quick": settings.quick,
              "settings": {k: v for k, v in vars(settings).items()}}
    own_workdir = workdir is None
    workdir = Path(workdir or tempfile.mkdtemp(prefix="ctcnet-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if "classify" in sections:
            log("benchmark: classification throughput")
            record["classification"] = bench_classification(model_path, settings, workdir)
        if "cartridge" in sections:
            log("benchmark: whole cartridges")
            record["cartridges"] = bench_cartridges(model_path, settings, workdir)
        if "train" in sections:
            log("benchmark: training throughput")
            record["training"] = bench_training(settings, spec)
            card = Path(model_path).with_suffix(".json")
            if card.exists():
                record["training"]["shipped_model"] = json.loads(card.read_text()).get("training")
    finally:
        if own_workdir:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "benchmarks.json", json.dumps(record, indent=2, default=str)
                      + "\n")
    atomic_write_text(out_dir / "benchmarks.md", render_markdown(record))
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
        h, w = k["frame_shape"]
        lines += ["## Whole cartridges, end to end", "",
                  f"Simulated frames of {w} x {h} px, ~{k['events_per_frame']} events per frame "
                  "(frames beyond the simulated ones are hard links to them). Stage times: read, "
                  "detect and crop run in background threads (summed over frames, they overlap "
                  "classification); total is wall clock.", "",
                  "| frames | events | total s | events/s | read | detect | crop | classify | "
                  "write | report | peak RSS MB | read bytes s | read+decode s |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in k["rows"]:
            s = r["stages_s"]
            lines.append(
                f"| {r['frames']} | {r['events']:,} | {_fmt(r['total_s'], 1)} | "
                f"{(r['events_per_s'] or 0):,.0f} | {s.get('read', 0):.1f} | "
                f"{s.get('detect', 0):.1f} | {s.get('crop', 0):.1f} | "
                f"{s.get('classify', 0):.1f} | {s.get('write', 0):.1f} | "
                f"{s.get('report', 0):.1f} | {r['peak_rss_mb']:,.0f} | "
                f"{_fmt(r['io_read_bytes_s'], 2)} | {_fmt(r['io_read_decode_s'], 2)} |")
        rows = k["rows"]
        for r in rows:
            if r.get("stages_inline_s"):
                s = r["stages_inline_s"]
                lines += ["", f"{r['frames']} frames with reading and detection inline (no "
                          "background threads, so the stages add up): " + ", ".join(
                              f"{name} {s[name]:.1f} s" for name in
                              ("read", "detect", "crop", "classify", "write", "report", "total")
                              if name in s) + "."]
        if len(rows) >= 2 and rows[0]["frames"]:
            first, last = rows[0], rows[-1]
            t_ratio = last["total_s"]["median"] / first["total_s"]["median"]
            f_ratio = last["frames"] / first["frames"]
            m_ratio = last["peak_rss_mb"] / first["peak_rss_mb"]
            lines += ["", f"Growth from {first['frames']} to {last['frames']} frames "
                      f"({f_ratio:.1f}x): time {t_ratio:.1f}x, peak memory {m_ratio:.2f}x."]
        lines.append("")
    t = record.get("training")
    if t:
        lines += ["## Training", "",
                  f"{t['arch']} at {t['crop_size']} px, batch {t['batch_size']}, on "
                  f"{t['device']} ({t['threads']} threads), augmentation "
                  f"{'on' if t['augment'] else 'off'}: {_fmt(t['crops_per_s'])} crops/s."]
        shipped = t.get("shipped_model")
        if shipped:
            lines += ["", "The shipped model's training run (from its card): "
                      + ", ".join(f"{k}: {v}" for k, v in shipped.items()
                                  if isinstance(v, (int, float, str))) + "."]
        lines.append("")
    return "\n".join(lines)


def _worker_main(argv: list[str]) -> int:
    kind, *rest = argv
    if kind == "predict":
        result = worker_predict(*rest)
    elif kind == "read":
        result = worker_read(*rest)
    else:
        raise SystemExit(f"unknown benchmark worker {kind!r}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
