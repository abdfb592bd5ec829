"""Detection's whole-frame work and crop cutting as torch ops, for frames on a GPU.

With the model on a CUDA device, ``ctcnet predict`` moves each frame there once and runs the
dense part of detection on it: binning, smoothing, the background map, the noise and the
signal-to-noise maps (steps 1-2 of :mod:`ctcnet.detect.detection`), then cuts the crops
around the events and brings them to model scale (:func:`ctcnet.detect.cropping.to_model_scale`,
which computes on the tensor's device). What comes back to the host is small: the binned frame
and the detection image (a ninth of the frame's pixels), for thresholding, splitting and
measuring (label-image work that stays with scipy and scikit-image), and the crops, which the
marker guard measures and the gallery keeps.

Frames go up as the raw counts they were read as (uint16: half the bytes of float32) through a
page-locked buffer and a CUDA stream of each frame thread's own, so one thread's copies and
kernels never wait for another's. Every function computes what its numpy twin does, up to float
rounding (summation order); the tests compare the two on CPU tensors, and on CUDA when present.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ctcnet.core.robust import median, median_and_mad_sigma
from ctcnet.detect.crop_request import checked_request
from ctcnet.detect.cropping import (
    background_fill,
    border_gather,
    place_windows,
    to_model_scale,
    window_size,
)
from ctcnet.detect.detection import (
    QUANTISATION_NOISE,
    DetectConfig,
    binned_planes,
    check_frame,
    check_frame_size,
    events_from_maps,
    interpolation_weights,
    noise_floor,
    non_finite_error,
)
from ctcnet.io.panel import Panel

# Frame dtypes torch holds as they are; others (e.g. big-endian TIFF data) become float32 first.
_TORCH_DTYPES = {np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32,
                                       np.uint32, np.int64, np.float16, np.float32, np.float64)}
_per_thread = threading.local()


def upload(frame: np.ndarray, device: torch.device) -> torch.Tensor:
    """A (C, H, W) frame of raw counts -> float32 tensor on ``device`` (after the same rank and
    type checks as the numpy path). On CUDA the counts travel in their own type through this
    thread's page-locked buffer and convert on the device."""
    frame = np.asarray(frame)
    check_frame(frame, 1)
    if frame.dtype not in _TORCH_DTYPES or not frame.dtype.isnative:
        frame = frame.astype(np.float32)
    host = torch.from_numpy(np.ascontiguousarray(frame))
    if device.type != "cuda":
        return host.to(device=device, dtype=torch.float32)
    staging = getattr(_per_thread, "staging", None)
    if staging is None or staging.shape != host.shape or staging.dtype != host.dtype:
        staging = torch.empty(host.shape, dtype=host.dtype, pin_memory=True)
        _per_thread.staging = staging
    done = getattr(_per_thread, "copied", None)
    if done is not None:  # the previous frame's copy out of this buffer must have finished
        done.synchronize()
    staging.copy_(host)
    stream = thread_stream(device)
    with torch.cuda.stream(stream):
        on_device = staging.to(device, non_blocking=True)
        _per_thread.copied = torch.cuda.Event()
        _per_thread.copied.record(stream)
        return on_device.float()


def thread_stream(device: torch.device):
    """This thread's own CUDA stream on ``device`` (keyed by device index, so ``cuda`` and
    ``cuda:0`` are one device and one stream)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    streams = getattr(_per_thread, "streams", None)
    if streams is None:
        streams = _per_thread.streams = {}
    if index not in streams:
        streams[index] = torch.cuda.Stream(torch.device("cuda", index))
    return streams[index]


def frame_stream(device: torch.device):
    """Work on ``device`` in this thread's own stream (a no-op context off CUDA)."""
    if device.type != "cuda":
        return contextlib.nullcontext()
    return torch.cuda.stream(thread_stream(device))


def bin_frame(frame: torch.Tensor, factor: int) -> torch.Tensor:
    """Mean of ``factor`` x ``factor`` blocks, dropping the last rows/columns that do not fill
    one (as :func:`ctcnet.detect.detection.bin_frame`)."""
    if factor == 1:
        return frame.float()
    return F.avg_pool2d(frame.float()[None], factor, stride=factor)[0]


def gaussian_filter(image: torch.Tensor, sigma: float, truncate: float = 3.0) -> torch.Tensor:
    """scipy's ``gaussian_filter(image, (0, sigma, sigma), mode="nearest", truncate=...)`` on a
    (C, H, W) tensor: the same normalised kernel, edges continued by their last pixel.

    A weighted sum of shifted views (the kernel has a few taps), not a convolution: cuDNN may
    run convolutions in TF32 on recent GPUs (~1e-3 relative), and detection thresholds need
    float32.
    """
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * x * x / (float(sigma) ** 2))
    kernel = (kernel / kernel.sum()).astype(np.float32).tolist()
    h, w = image.shape[1:]
    padded = F.pad(image[None], (radius, radius, radius, radius), mode="replicate")[0]
    rows = sum(k * padded[:, i:i + h, :] for i, k in enumerate(kernel))
    return sum(k * rows[:, :, i:i + w] for i, k in enumerate(kernel))


def linear_upsample(coarse: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Bilinear upsampling of (C, hb, wb) block values to (C, h, w), with the numpy path's
    indices and weights."""
    def weights(n_out: int, n_in: int):
        return (torch.from_numpy(a).to(coarse.device) for a in interpolation_weights(n_out, n_in))

    lo, hi, t = weights(h, coarse.shape[1])
    rows = coarse[:, lo] * (1 - t)[None, :, None] + coarse[:, hi] * t[None, :, None]
    lo, hi, t = weights(w, coarse.shape[2])
    return rows[:, :, lo] * (1 - t) + rows[:, :, hi] * t


def background_map(image: torch.Tensor, block: int) -> torch.Tensor:
    """Block medians of every second pixel, a 3 x 3 median over blocks, bilinearly upsampled
    (:func:`ctcnet.detect.detection.background_map`)."""
    c, h, w = image.shape
    block = max(4, min(block, h, w))
    block -= block % 2
    hb, wb = h // block, w // block
    blocks = image[:, :hb * block:2, :wb * block:2].reshape(c, hb, block // 2, wb, block // 2)
    coarse = median(blocks.permute(0, 1, 3, 2, 4).reshape(c, hb, wb, -1))
    if hb >= 3 and wb >= 3:
        padded = F.pad(coarse[None], (1, 1, 1, 1), mode="replicate")[0]
        coarse = median(padded.unfold(1, 3, 1).unfold(2, 3, 1).reshape(c, hb, wb, 9))
    return linear_upsample(coarse, h, w)


def robust_noise(residual: torch.Tensor, floor: float = QUANTISATION_NOISE) -> torch.Tensor:
    """Per-channel noise sigma (MAD of every third pixel, at least the quantisation's;
    :func:`~ctcnet.detect.detection.robust_noise`)."""
    sample = residual[:, ::3, ::3].reshape(residual.shape[0], -1)
    return torch.clamp(median_and_mad_sigma(sample)[1], min=floor)


def frame_maps(frame: torch.Tensor, panel: Panel, config: DetectConfig
               ) -> tuple[np.ndarray, np.ndarray]:
    """The binned frame and its per-channel signal-to-noise maps, as numpy arrays on the host
    (:func:`ctcnet.detect.detection.frame_maps`)."""
    factor, work_px = config.work_grid(panel.pixel_size_um)
    sigma_px, block_px = config.smoothing_px(work_px)
    binned = bin_frame(frame, factor)
    smooth = gaussian_filter(binned, sigma_px) if sigma_px >= 0.5 else binned
    residual = smooth - background_map(smooth, block_px)
    snr = residual / robust_noise(residual, noise_floor(frame))[:, None, None]
    if not bool(torch.isfinite(snr).all()):
        finite = frame[~torch.isnan(frame)]
        raise non_finite_error(float(finite.max()) if finite.numel() else float("nan"))
    return binned.cpu().numpy(), snr.cpu().numpy()


def detect_events(frame: torch.Tensor, panel: Panel, config: DetectConfig | None = None,
                  alternates: bool = False, measured: dict[str, np.ndarray] | None = None,
                  counts_checked: bool = True) -> pd.DataFrame:
    """The events of an uploaded frame (:func:`upload`), as
    :func:`ctcnet.detect.detection.detect_events` finds them (``measured``: host planes
    measured over the events' objects, binned on the host). A frame is uploaded as a scan's
    reader gave it, its counts checked there (``counts_checked``: taken as the host's is)."""
    config = config or DetectConfig()
    factor = config.binning(float(panel.pixel_size_um))
    check_frame_size(*frame.shape[1:], factor)
    with torch.inference_mode(), frame_stream(frame.device):
        binned, snr = frame_maps(frame, panel, config)
    return events_from_maps(binned, snr, tuple(frame.shape[1:]), panel, config,
                            alternates=alternates, measured=binned_planes(measured, factor))


def extract_crops(frame: torch.Tensor, x: np.ndarray, y: np.ndarray, crop_size: int,
                  model_pixel_um: float | None = None, scan_pixel_um: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready float32 crops on the host and ``padded``, cut from an uploaded frame
    (:func:`ctcnet.detect.cropping.extract_crops`: the same windows, filled with background
    past the border, and the same resampling; a request refused alike)."""
    x, y = checked_request(frame.shape, x, y, model_pixel_um, scan_pixel_um)
    _, h, w = frame.shape
    window = window_size(crop_size, model_pixel_um, scan_pixel_um)
    top, left, padded = place_windows(x, y, window, h, w)
    rows, cols, inside = border_gather(top, left, window, h, w)
    with torch.inference_mode(), frame_stream(frame.device):  # the index copies too
        rows, cols = (torch.from_numpy(v).to(frame.device) for v in (rows, cols))
        windows = frame[:, rows[:, :, None], cols[:, None, :]].permute(1, 0, 2, 3)
        if padded.any():
            # The few windows past the border are filled on the host, by the numpy path's code.
            border = torch.from_numpy(np.flatnonzero(padded)).to(frame.device)
            filled = background_fill(windows[border].cpu().numpy(), inside[padded])
            windows = windows.index_copy(0, border, torch.from_numpy(filled).to(frame.device))
        crops, _, _ = to_model_scale(windows, scan_pixel_um, model_pixel_um, crop_size)
        return crops.cpu().numpy(), padded
