"""Training throughput in crops/s, and its two parts alone (augmentation on one core, the
training step), which together say how many data-loader workers feed a GPU."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from ctcnet.benchmark.common import BenchSettings, stats


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
    """Training throughput of the model's architecture: medians of three runs (one in quick
    mode)."""
    crop = 32 if settings.quick else spec.crop_size
    runs = [training_throughput(arch=spec.arch, crop_size=crop, batch_size=settings.train_batch,
                                steps=settings.train_steps, panel=spec.panel.to_dict())
            for _ in range(1 if settings.quick else 3)]
    return {**runs[0], **{key: stats([r[key] for r in runs]) if runs[0][key] else None
                          for key in ("crops_per_s", "augment_crops_per_s", "step_crops_per_s")}}

