"""Cut model-sized crops around detected events, vectorised over all events of a frame.

A crop covers the same physical field of view as the model's training crops: when the scan's
pixel size differs from the model's, a window of ``crop_size * model_px / scan_px`` scan pixels
is cut and resized to ``crop_size`` (antialiased when shrinking). Windows that reach past the
frame border are filled by mirroring the frame (numpy ``reflect``): mirrored background keeps
the background level and noise that the model's per-crop normalisation estimates, where
constant padding would fake a noise-free region and edge replication would draw streaks. Such
crops are reported as ``padded``; the object itself touching the border is ``edge_cut`` (from
detection).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def window_size(crop_size: int, model_pixel_um: float, scan_pixel_um: float) -> int:
    """Scan pixels a crop must span to cover the model's field of view (crop_size at model px)."""
    return max(1, int(round(crop_size * float(model_pixel_um) / float(scan_pixel_um))))


def window_origins(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (row, col) of windows centred on (x, y); the centre pixel is window//2."""
    top = np.rint(np.asarray(y, dtype=np.float64)).astype(np.int64) - window // 2
    left = np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64) - window // 2
    return top, left


def extract_windows(frame: np.ndarray, x: np.ndarray, y: np.ndarray, window: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Cut (N, C, window, window) windows centred on (x, y) from a (C, H, W) frame.

    Returns the windows (frame dtype) and a bool (N,) array: True where the window reached past
    the frame border and was filled by mirroring.
    """
    frame = np.asarray(frame)
    c, h, w = frame.shape
    top, left = window_origins(x, y, window)
    n = len(top)
    padded = (top < 0) | (left < 0) | (top + window > h) | (left + window > w)
    if n == 0:
        return np.empty((0, c, window, window), dtype=frame.dtype), padded
    source, dy, dx = frame, 0, 0
    if padded.any():
        # Mirror-pad once per frame (not per event); numpy's reflect needs pad < size, so very
        # small frames are padded in several rounds by np.pad itself ('reflect' repeats).
        pad_y = int(max(0, -top.min(), (top + window - h).max()))
        pad_x = int(max(0, -left.min(), (left + window - w).max()))
        source = np.pad(frame, ((0, 0), (pad_y, pad_y), (pad_x, pad_x)), mode="reflect")
        dy, dx = pad_y, pad_x
    views = sliding_window_view(source, (window, window), axis=(1, 2))  # (C, H', W', win, win)
    out = views[:, top + dy, left + dx]                                  # (C, N, win, win) copy
    return np.ascontiguousarray(out.transpose(1, 0, 2, 3)), padded


def resize_crops(windows: np.ndarray, size: int) -> np.ndarray:
    """Resize (N, C, w, w) windows to (N, C, size, size) float32 (bilinear, antialiased)."""
    if windows.shape[-1] == size and windows.shape[-2] == size:
        return np.asarray(windows, dtype=np.float32)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))
    shrink = windows.shape[-1] > size
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False,
                        antialias=shrink)
    return out.numpy()


def extract_crops(frame: np.ndarray, x: np.ndarray, y: np.ndarray, crop_size: int,
                  model_pixel_um: float | None = None, scan_pixel_um: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready crops (N, C, crop_size, crop_size) float32 around (x, y), plus ``padded``.

    With both pixel sizes given and different, the window covering the model's field of view
    is cut and resampled to ``crop_size``.
    """
    window = crop_size
    if model_pixel_um and scan_pixel_um:
        window = window_size(crop_size, model_pixel_um, scan_pixel_um)
    windows, padded = extract_windows(frame, x, y, window)
    return resize_crops(windows, crop_size), padded
