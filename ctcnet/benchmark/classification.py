"""Classification throughput: crops/s of every inference backend (torch eager fp32, NCHW and
channels_last; ONNX Runtime fp32, fp16 and int8; on CUDA fp32, bf16 and fp16 autocast) at
several batch sizes, as ratios to torch eager in the same run, with each engine's macro-F1 on
the same labelled simulated crops (what quantisation or fp16 costs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctcnet.benchmark.common import BenchSettings, stats, time_repeated
from ctcnet.evaluation.metrics import macro_f1
from ctcnet.inference.backends import OnnxBackend, TorchBackend

# Dense peak FLOP rates (FLOP/s) by device name, for the "fraction of peak" figure on CUDA.
# Published datasheet values (SXM parts); an unknown GPU gets no fraction rather than a guess.
GPU_PEAK_FLOPS = {
    "H200": {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12},
    "H100": {"fp32": 67e12, "bf16": 989e12, "fp16": 989e12},
    "A100": {"fp32": 19.5e12, "bf16": 312e12, "fp16": 312e12},
    "L4": {"fp32": 30e12, "bf16": 121e12, "fp16": 121e12},
}



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

    from ctcnet.deploy.export import export_onnx
    from ctcnet.deploy.export_crops import simulated_crops
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
        # Small batches are timed over several calls so each sample lasts long enough to time
        # (--quick too: one call of 8 crops, a few ms, read torch eager at 15 crops/s beside
        # channels_last's 641 on a busy machine, and every ratio to it 42x).
        calls = max(1, (64 if settings.quick else 256) // batch_size)
        base = None
        for name, engine in engines.items():
            sync = torch.cuda.synchronize if "CUDA" in name else None
            engine.batch_size = batch_size
            # (two untimed calls: a new batch shape costs the first one or two their kernels)
            samples = time_repeated(lambda e=engine, b=batch, k=calls: [e.predict_logits(b)
                                                                        for _ in range(k)],
                                    settings.repeats, warmup=2, sync=sync)
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

