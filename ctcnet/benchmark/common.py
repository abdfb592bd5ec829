"""What every section of the benchmark shares: its settings, repeated timing with medians, and
a description of the machine (and its load) that the numbers were measured on."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctcnet.io.plausibility import CELLSEARCH_FRAME_SHAPE

# The stages of one predict run, in the order a frame meets them (``summary.json``'s
# ``timings_s``): read, detect, crop and the guard's measurements in the frame workers; classify,
# write (labels, the guard's call checks, the journal and the tables) and the report after them.
STAGES = ("read", "detect", "crop", "guard", "classify", "write", "report")


@dataclass
class BenchSettings:
    """What the benchmark measures and how often (the defaults: the full record)."""

    batch_sizes: tuple[int, ...] = (1, 8, 64, 1024)
    repeats: int = 5
    frame_counts: tuple[int, ...] = (10, 175, 1000)
    cartridge_repeats: int = 3          # for the middle (175-frame) size; others run once
    frame_shape: tuple[int, int] = CELLSEARCH_FRAME_SHAPE
    events_per_frame: int = 290         # ~50,000 events in 175 frames
    # Frames whose stage floors are measured in isolation (distinct simulated frames: the
    # larger cartridges repeat these by hard links, so more would measure the same pixels).
    floor_frames: int = 12
    # The peers of the middle cartridge (ctcnet.benchmark.peer): the classic gate and predict
    # in 1 and 2 processes, each count run this often.
    peer: bool = True
    peer_repeats: int = 1
    train_steps: int = 10
    train_batch: int = 128
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> BenchSettings:
        """Tiny inputs that check every section still runs (CI); the numbers mean nothing."""
        return cls(batch_sizes=(1, 8), repeats=2, frame_counts=(2, 3), cartridge_repeats=1,
                   frame_shape=(256, 320), events_per_frame=20, floor_frames=2, train_steps=1,
                   train_batch=8, quick=True)


def stats(samples: list[float]) -> dict:
    """Median and spread of repeated measurements."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "n": len(samples)}


def time_repeated(fn: Callable[[], object], repeats: int, warmup: int = 1,
                  sync: Callable[[], None] | None = None) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn``, after ``warmup`` untimed ones (first
    calls pay for allocations, caches and lazy imports)."""
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


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """The median of :func:`time_repeated`: on a shared machine one slow call is another
    process's, not the code's."""
    return statistics.median(time_repeated(fn, repeats, warmup))


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (other work on the machine slows every number)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpuinfo_fields() -> dict[str, str]:
    """Each field of /proc/cpuinfo as it first appears (the first processor's, on Linux; empty
    where there is no such file)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_name() -> str:
    """The CPU's model name (Linux), else what ``platform`` knows."""
    return _cpuinfo_fields().get("model name") or platform.processor() or ""


def cpu_model() -> str | None:
    """The CPU's family and model numbers (Linux on x86: "family 25 model 17"), which tell
    apart generations that share a model name ("AMD EPYC" covers several, whose numpy and
    onnxruntime speeds compare differently); None where /proc/cpuinfo does not say."""
    fields = _cpuinfo_fields()
    if "cpu family" in fields and "model" in fields:
        return f"family {fields['cpu family']} model {fields['model']}"
    return None


def machine_info() -> dict:
    """What the numbers were measured on."""
    # onnxruntime and torch: their versions and threads are part of what was measured.
    import onnxruntime
    import torch

    from ctcnet.inference.resources import cpu_cores, physical_memory_bytes

    memory = physical_memory_bytes()
    mem_gib = memory / 2**30 if memory is not None else None
    info = {"cpu": cpu_name(), "cpu_model": cpu_model(), "cores": cpu_cores(),
            "memory_gib": round(mem_gib, 1) if mem_gib else None,
            "python": platform.python_version(), "platform": platform.platform(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "onnxruntime": onnxruntime.__version__, "cuda": None}
    if torch.cuda.is_available():
        info["cuda"] = {"device": torch.cuda.get_device_name(0),
                        "memory_gib": round(torch.cuda.get_device_properties(0).total_memory
                                            / 2**30, 1)}
    return info
