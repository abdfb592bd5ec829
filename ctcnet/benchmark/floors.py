"""Each stage's floor: the least work that stage could do on the same frames and events, timed
in the same run as the stage itself, so a stage reads as a multiple of what it must cost.

Floors (seconds per event; plain numpy or pyarrow, never the library's own code, so a floor
does not move when the stage it measures changes):

* read: reading and decoding the frame files alone (the library's reader, page cache warm;
  there is no cheaper honest way to get the pixels);
* detect: one pass over the full-resolution pixels (block sums binning to detection's
  working grid) and one Gaussian smoothing of the binned channels: what any detector on the
  binned frame does;
* crop: one batched numpy gather of the same windows (the same bytes predict cuts), no
  resampling;
* guard: one vectorised pass over every crop pixel (a matrix product giving each crop's
  per-channel sum and disk-weighted sum);
* classify: the model alone on the same number of crops at its best batch size
  (:func:`model_floor`);
* write: pyarrow writing the run's events table once as Parquet (:func:`write_floor`).

The report has no floor: it belongs off the critical path, so its time is shown as a share of
the total instead.

Beside the floors stand the library's own detection, cropping and guard measurements on the
same frames, one stage at a time on one core (no thread waiting for a core), and cropping per
event at 0.45 and at 0.64 um/px on the same events (a finer scan cuts larger windows and
resamples them).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from ctcnet.benchmark.common import median_seconds
from ctcnet.detect.cropping import extract_crops, place_windows, window_size
from ctcnet.detect.detection import DetectConfig, detect_events
from ctcnet.inference.guard import measure_for_guard
from ctcnet.io.scan import open_cartridge, read_frame

# The scan pixel sizes whose cropping cost is compared: a fine scan (the demo's) and the
# CellSearch pixel the shipped model is trained at.
FINE_PIXEL_UM, MODEL_PIXEL_UM = 0.45, 0.64
# Batch sizes tried for the model floor (the best one is the floor).
FLOOR_BATCHES = (1, 4, 8, 16, 32, 64, 256)


# How the detect floor bins, as the record names it (records before it binned by a reshape-mean).
DETECT_FLOOR_BINNING = "block-sum"


def bin_and_smooth(frame: np.ndarray, factor: int, sigma: float) -> np.ndarray:
    """The detect floor's work: each factor x factor block summed (a strided add per column of
    the block, then per row: one pass over the full-resolution pixels, the least any binning
    does; a reshape-mean over two axes takes several times as long), then one Gaussian per
    channel of the binned frame."""
    c, h, w = frame.shape
    h, w = h - h % factor, w - w % factor
    cols = frame[:, :h, 0:w:factor].astype(np.float32)
    for dx in range(1, factor):
        cols += frame[:, :h, dx:w:factor]
    binned = cols[:, 0::factor].copy()
    for dy in range(1, factor):
        binned += cols[:, dy::factor]
    return np.stack([gaussian_filter(plane, sigma) for plane in binned])


def gather_windows(frame: np.ndarray, top: np.ndarray, left: np.ndarray, window: int
                   ) -> np.ndarray:
    """The crop floor's work: every window that lies inside the frame, by one fancy-index
    gather over a sliding-window view (N, C, window, window)."""
    view = np.lib.stride_tricks.sliding_window_view(frame, (window, window), axis=(1, 2))
    return np.ascontiguousarray(view[:, top, left].transpose(1, 0, 2, 3))


def pixel_weights(size: int) -> np.ndarray:
    """(size * size, 2) weights: ones, and a centred disk of half the crop's width."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    disk = (yy**2 + xx**2 <= (size / 2) ** 2).astype(np.float32)
    return np.stack([np.ones(size * size, np.float32), disk.ravel()], axis=1)


def guard_pass(crops: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The guard floor's work: per crop and channel, the sum and the disk-weighted sum."""
    n, c, h, w = crops.shape
    return crops.reshape(n * c, h * w) @ weights


def frame_floors(cartridge: str | Path, spec, frames: int, repeats: int) -> dict:
    """Per-event seconds of each frame stage's floor and of the library's stage alone, over
    the first ``frames`` frames of ``cartridge`` (medians over ``repeats`` per frame, summed
    over frames, divided by their events)."""
    cart = open_cartridge(cartridge)
    refs = cart.frames[:max(1, frames)]
    scan_um = float(cart.panel.pixel_size_um)
    window = window_size(spec.crop_size, spec.pixel_size_um, scan_um)
    total: dict[str, float] = {}
    events = 0
    for ref in refs:
        times, n = _one_frame(ref, cart.panel, spec, window, repeats)
        events += n
        for key, seconds in times.items():
            total[key] = total.get(key, 0.0) + seconds
    per_event = {k: (v / events if events else None) for k, v in total.items()}
    fine, model_px = total.get("crop_fine"), total.get("crop_model_pixel")
    return {"frames": len(refs), "events": events, "scan_pixel_um": scan_um, "window_px": window,
            "per_event_s": per_event, "detect_floor_binning": DETECT_FLOOR_BINNING,
            "crop_fine_to_model_pixel": fine / model_px if fine and model_px else None}


def _one_frame(ref, panel, spec, window: int, repeats: int) -> tuple[dict, int]:
    """One frame's floor and stage times (seconds) and its number of events."""
    config = DetectConfig()
    scan_um = float(panel.pixel_size_um)
    factor, work_px = config.work_grid(scan_um)
    sigma = config.smoothing_px(work_px)[0]
    times = {"read": median_seconds(lambda: read_frame(ref, panel), repeats)}
    pixels = read_frame(ref, panel)
    table = detect_events(pixels, panel, config, counts_checked=True)  # as predict reads it
    if not len(table):
        return times, 0
    x, y = table["x"].to_numpy(), table["y"].to_numpy()
    times["detect"] = median_seconds(lambda: bin_and_smooth(pixels, factor, sigma), repeats)
    times["detect_alone"] = median_seconds(lambda: detect_events(pixels, panel, config,
                                                                counts_checked=True), repeats)
    top, left, padded = place_windows(x, y, window, *pixels.shape[1:])
    inside = ~padded
    # Border windows are filled by the library, not gathered: the floor gathers the inside
    # ones and is scaled to every event of the frame.
    if inside.any():
        top, left = top[inside], left[inside]
        times["crop"] = len(table) / int(inside.sum()) * median_seconds(
            lambda: gather_windows(pixels, top, left, window), repeats)

    def cut(scan_pixel_um: float) -> np.ndarray:
        return extract_crops(pixels, x, y, spec.crop_size, spec.pixel_size_um, scan_pixel_um)[0]

    times["crop_alone"] = median_seconds(lambda: cut(scan_um), repeats)
    times["crop_fine"] = median_seconds(lambda: cut(FINE_PIXEL_UM), repeats)
    times["crop_model_pixel"] = median_seconds(lambda: cut(MODEL_PIXEL_UM), repeats)
    crops = cut(scan_um)
    weights = pixel_weights(spec.crop_size)
    times["guard"] = median_seconds(lambda: guard_pass(crops, weights), repeats)
    times["guard_alone"] = median_seconds(lambda: measure_for_guard(crops, spec), repeats)
    return times, len(table)


def model_floor(engine, crops: np.ndarray, repeats: int, batches=FLOOR_BATCHES) -> dict:
    """The model alone: crops/s at each batch size (medians over ``repeats``) and the best, as
    the floor; ``engine`` is a :class:`ctcnet.inference.backends.Backend`."""
    kept = engine.batch_size
    rates = {}
    try:
        for batch in batches:
            if batch > len(crops):
                continue
            engine.batch_size = batch
            rates[batch] = len(crops) / median_seconds(lambda: engine.predict_proba(crops),
                                                       repeats)
    finally:
        engine.batch_size = kept
    best = max(rates, key=rates.get)
    return {"crops_per_s_by_batch": rates, "best_batch": best,
            "best_crops_per_s": rates[best], "predict_batch": kept,
            "predict_crops_per_s": rates.get(kept)}


def write_floor(events_parquet: Path, out: Path, repeats: int = 3) -> dict:
    """pyarrow writing the run's events table (the same columns and rows) once as Parquet."""
    # pyarrow: only here and in predict's own writer.
    import pyarrow.parquet as pq

    table = pq.read_table(events_parquet)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pq.write_table(table, out)
        samples.append(time.perf_counter() - t0)
    out.unlink(missing_ok=True)
    return {"seconds": statistics.median(samples), "rows": table.num_rows,
            "per_event_s": statistics.median(samples) / table.num_rows if table.num_rows
            else None}
