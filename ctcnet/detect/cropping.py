"""Bring crops to model scale, and cut them around detected events of a frame.

:func:`to_model_scale` is the one way any crop reaches the model (predict on frames and on
crop datasets, evaluate, training from a crop folder, export calibration): resample by
``data pixel size / model pixel size`` (antialiased when shrinking, so a 0.02 um/px photo of
one cell hundreds of pixels across averages its pixels instead of aliasing), then centre-cut
or pad to the model's crop size. A crop then covers the same physical field of view as the
model's training crops. :func:`report_fit` logs how many crops had to be padded or cut.

On frames, :func:`extract_crops` cuts a window a little wider than the model's field of view
around each event and hands it to :func:`to_model_scale`. Whatever a crop lacks (the part of a
window past the frame border, the margin around a crop smaller than the field of view) is
filled with **background** (:func:`background_fill`): per channel the level and noise measured
on the pixels the crop has, drawn as a fixed noise pattern. Never by mirroring: a mirror turns
a cell at the frame border into two, and a tight export of one cell into a 3x3 tile of cells;
constant padding would fake a noise-free region that the model's per-crop noise estimate reads
as the background. A background that is clipped to black measures as zero noise and is filled
with zeros, as the file shows it. Such crops are reported as ``padded``; the object itself
touching the border is ``edge_cut`` (from detection).

:func:`to_model_scale` also takes torch tensors (frames on a GPU, :mod:`ctcnet.detect.device`)
and then computes with the same weights on the tensor's device, so both paths resample alike.
"""

from __future__ import annotations

import logging
import math
import sys

import numpy as np

from ctcnet.nn.background import background_from_percentiles

log = logging.getLogger(__name__)


def window_size(crop_size: int, model_pixel_um: float | None, scan_pixel_um: float | None
                ) -> int:
    """Scan pixels cut around an event so the model's field of view (``crop_size`` at
    ``model_pixel_um``) is covered: ``crop_size`` when the pixel sizes agree, else one scan
    pixel more than the field of view, so resampling never leaves a gap to pad."""
    if not model_pixel_um or not scan_pixel_um or model_pixel_um == scan_pixel_um:
        return int(crop_size)
    return int(math.ceil(crop_size * float(model_pixel_um) / float(scan_pixel_um))) + 1


def window_origins(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (row, col) of windows centred on (x, y); the centre pixel is window//2."""
    top = np.rint(np.asarray(y, dtype=np.float64)).astype(np.int64) - window // 2
    left = np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64) - window // 2
    return top, left


def place_windows(x: np.ndarray, y: np.ndarray, window: int, h: int, w: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(top, left, padded) of windows centred on (x, y) in an (h, w) frame; ``padded``: the
    window reaches past the frame border (so it is filled with background)."""
    top, left = window_origins(x, y, window)
    return top, left, (top < 0) | (left < 0) | (top + window > h) | (left + window > w)


def extract_windows(frame: np.ndarray, x: np.ndarray, y: np.ndarray, window: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Cut (N, C, window, window) windows centred on (x, y) from a (C, H, W) frame.

    Returns the windows (frame dtype) and a bool (N,) array: True where the window reached past
    the frame border and that part was filled with background (:func:`background_fill`).
    """
    frame = np.asarray(frame)
    c, h, w = frame.shape
    top, left, padded = place_windows(x, y, window, h, w)
    n = len(top)
    out = np.empty((n, c, window, window), dtype=frame.dtype)
    # One slice copy per window: half the time of a fancy-index gather over a sliding-window
    # view (7 against 12-16 ms for 290 windows of 67 px on a CellSearch frame).
    for i in np.flatnonzero(~padded):
        out[i] = frame[:, top[i]:top[i] + window, left[i]:left[i] + window]
    border = np.flatnonzero(padded)
    if len(border):
        rows, cols, inside = border_gather(top[border], left[border], window, h, w)
        gathered = frame[:, rows[:, :, None], cols[:, None, :]].transpose(1, 0, 2, 3)
        out[border] = background_fill(gathered, inside)
    return out, padded


def border_gather(top: np.ndarray, left: np.ndarray, window: int, h: int, w: int):
    """Row and column indices (B, window) of windows at (top, left), clamped into an (h, w)
    frame, and the (B, window, window) mask of the pixels truly inside it."""
    span = np.arange(window)
    rows, cols = top[:, None] + span, left[:, None] + span
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    return np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1), inside


# A fixed standard-normal pattern for the filled pixels: the same input always gives the same
# crop (and so the same call), on every path.
_FILL_SEED = 20261125


def fill_pattern(h: int, w: int) -> np.ndarray:
    """The (h, w) float32 standard-normal pattern background fills draw their noise from."""
    return np.random.default_rng(_FILL_SEED).standard_normal((h, w)).astype(np.float32)


def background_level(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row background level and noise sd of (C, M) pixel values: from the 10th and 30th
    percentiles, as the model's normalisation reads them (robust to an object covering up to
    ~70 % of the pixels). A clipped (constant) background gives zero noise."""
    q_low, q_high = np.percentile(values.astype(np.float64), (10, 30), axis=1)
    return background_from_percentiles(q_low, q_high)


def background_fill(crops, inside, measure=None):
    """(N, C, H, W) crops with the pixels outside ``inside`` ((N, H, W) bool) replaced by
    background: per crop and channel the level and noise of ``measure`` (default: the inside
    pixels) times a fixed noise pattern. Same dtype as ``crops`` (integers rounded and clipped
    to their range); numpy only."""
    crops = np.asarray(crops)
    out = crops.astype(np.float32)
    pattern = fill_pattern(*crops.shape[-2:])
    for i in range(len(crops)):
        mask = np.asarray(inside[i], bool)
        where = mask if measure is None else np.asarray(measure[i], bool)
        if not where.any():  # nothing to measure: the whole window lies outside
            where = np.ones_like(mask)
        measured = out[i][:, where]
        level, noise = background_level(measured)
        fill = level[:, None, None] + noise[:, None, None] * pattern[None]
        # Never darker or brighter than what was measured (a clipped background stays at its
        # floor; integer data keep their range).
        fill = np.clip(fill, measured.min(axis=1)[:, None, None],
                       measured.max(axis=1)[:, None, None])
        out[i] = np.where(mask[None], out[i], fill)
    if np.issubdtype(crops.dtype, np.integer):
        info = np.iinfo(crops.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(crops.dtype)
    return out.astype(crops.dtype, copy=False)


def resampled_size(h: int, w: int, factor: float) -> tuple[int, int]:
    """Size of an (h, w) image resampled by ``factor`` (output px per input px)."""
    return max(1, int(round(h * factor))), max(1, int(round(w * factor)))


def is_tensor(x) -> bool:
    """A torch tensor (told without importing torch, which the numpy path never needs: a
    tensor exists only once torch is imported)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def as_float32(crops):
    """float32 numpy array, or float32 tensor on its own device."""
    return crops.float() if is_tensor(crops) else np.asarray(crops, dtype=np.float32)


def resample(crops, factor: float):
    """Resample (N, C, H, W) crops by ``factor`` (output px per input px) to float32.

    Shrinking is antialiased (bilinear with the kernel widened by 1/factor, i.e. an area
    average), so large factors keep the signal of small bright spots instead of aliasing.
    Enlarging is plain bilinear interpolation (:func:`bilinear`). Numpy crops are resampled
    in numpy (:func:`antialias_matrix`: torch's weights, so predict needs no torch), tensors
    by torch on their device.
    """
    tensor = is_tensor(crops)
    crops = crops if tensor else np.asarray(crops)
    h, w = crops.shape[-2:]
    size = resampled_size(h, w, factor)
    if size == (h, w):
        return as_float32(crops)
    if size[0] >= h and size[1] >= w:
        return bilinear(crops, size)
    if not tensor:
        # Two large matrix products (columns, then rows): a stack of one small product per
        # image is as fast on one BLAS thread but ~100x slower on a busy multi-threaded BLAS.
        n, c = crops.shape[:2]
        cols = as_float32(crops).reshape(-1, w) @ antialias_matrix(w, size[1]).T
        rows = np.tensordot(cols.reshape(n, c, h, size[1]), antialias_matrix(h, size[0]),
                            axes=([2], [1]))
        return rows.swapaxes(-1, -2)
    import torch.nn.functional as F  # a tensor: torch is already imported

    t = as_float32(crops)
    if len(t) == 0:  # CUDA's antialiased interpolation refuses an empty batch
        return t.new_zeros((*t.shape[:2], *size))
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)


def antialias_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) float32 weights of antialiased bilinear resampling from ``n_in`` to
    ``n_out`` pixels, as ``torch.nn.functional.interpolate(mode="bilinear", antialias=True,
    align_corners=False)`` computes them (PIL's scheme): a triangle filter, widened by
    ``n_in / n_out`` when shrinking (an area average), cut to the pixels it reaches and
    normalised per output pixel."""
    scale = n_in / n_out
    support, invscale = (scale, 1 / scale) if scale >= 1 else (1.0, 1.0)
    centre = scale * (np.arange(n_out) + 0.5)
    first = np.maximum(np.trunc(centre - support + 0.5), 0)
    stop = np.minimum(np.trunc(centre + support + 0.5), n_in)
    j = np.arange(n_in, dtype=np.float64)[None]
    weights = np.maximum(1 - np.abs((j - centre[:, None] + 0.5) * invscale), 0)
    weights[(j < first[:, None]) | (j >= stop[:, None])] = 0
    total = weights.sum(axis=1, keepdims=True)
    return (weights / np.where(total == 0, 1, total)).astype(np.float32)


def bilinear_matrix(n_in: int, n_out: int, keep: slice = slice(None)) -> np.ndarray:
    """(kept outputs, n_in) float32 weights of bilinear resampling from ``n_in`` to ``n_out``
    pixels with pixel centres aligned, as ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False)`` computes them, for the output pixels in ``keep``."""
    dst = np.arange(n_out, dtype=np.float32)[keep]
    src = np.maximum(np.float32(n_in / n_out) * (dst + np.float32(0.5)) - np.float32(0.5), 0)
    lo = src.astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return two_tap_matrix(lo, hi, (src - lo).astype(np.float32), n_in)


def two_tap_matrix(lo: np.ndarray, hi: np.ndarray, t: np.ndarray, n_in: int) -> np.ndarray:
    """(len(lo), n_in) float32 linear-interpolation weights: row i blends inputs ``lo[i]``
    and ``hi[i]`` by ``1 - t[i]`` and ``t[i]`` (one weight where they are the same pixel)."""
    weights = np.zeros((len(lo), n_in), np.float32)
    rows = np.arange(len(lo))
    np.add.at(weights, (rows, lo), 1 - t)
    np.add.at(weights, (rows, hi), t)
    return weights


def bilinear(crops, size: tuple[int, int], rows: slice = slice(None),
             cols: slice = slice(None)):
    """Bilinear resampling of (N, C, H, W) crops (any number type) to ``size``, float32, of
    only the output ``rows`` and ``cols`` asked for.

    Two small matrix products per image (rows x H, then W x columns): faster on a CPU than
    torch's interpolation or numpy gathers, and the same numbers as torch's bilinear up to
    float rounding.
    """
    h, w = crops.shape[-2:]
    along_h = bilinear_matrix(h, size[0], rows)
    along_w = bilinear_matrix(w, size[1], cols)
    if is_tensor(crops):
        import torch

        along_h, along_w = (torch.from_numpy(m).to(crops.device) for m in (along_h, along_w))
    return along_h @ as_float32(crops) @ along_w.T


# Width of the crop border ring whose pixels give the background a smaller crop is padded with:
# the corners and edges of a tight crop are background even when the cell fills most of it.
_RING_PX = 2


def centre_fit(crops, size: int) -> tuple:
    """Centre-cut or background-pad (N, C, H, W) crops to (N, C, size, size).

    The margin of a crop smaller than ``size`` is filled with the background of its outer
    ring of pixels (:func:`background_fill`). Returns the crops and the pixels cut and padded
    (summed over both axes).
    """
    h, w = crops.shape[-2:]
    ph, pw = max(0, size - h), max(0, size - w)
    if (ph or pw) and is_tensor(crops):  # only crop datasets pad, and they come as numpy
        raise ValueError("padding is done on numpy crops only")
    if ph or pw:
        crops = np.asarray(crops, np.float32)
        hh, ww = h + ph, w + pw
        placed = np.zeros((*crops.shape[:2], hh, ww), np.float32)
        top, left = ph // 2, pw // 2
        placed[..., top:top + h, left:left + w] = crops
        inside = np.zeros((hh, ww), bool)
        inside[top:top + h, left:left + w] = True
        ring = inside.copy()
        r = min(_RING_PX, h // 2, w // 2)
        ring[top + r:top + h - r, left + r:left + w - r] = False
        n = len(crops)
        crops = background_fill(placed, np.broadcast_to(inside, (n, hh, ww)),
                                np.broadcast_to(ring, (n, hh, ww)))
    hh, ww = crops.shape[-2:]
    top, left = (hh - size) // 2, (ww - size) // 2
    return crops[..., top:top + size, left:left + size], (hh - size) + (ww - size), ph + pw


def to_model_scale(crops, data_pixel_um: float | None, model_pixel_um: float | None,
                   crop_size: int) -> tuple:
    """(N, C, H, W) crops at ``data_pixel_um`` -> (N, C, crop_size, crop_size) float32 at
    ``model_pixel_um``: resample, then centre-cut or pad with background (padding: numpy crops
    only).
    Torch tensors come back as tensors on their device.

    Returns the crops and the pixels cut and padded per crop (both axes). Without pixel
    sizes (either None) no resampling is done.
    """
    factor = 1.0
    if data_pixel_um and model_pixel_um:
        factor = float(data_pixel_um) / float(model_pixel_um)
    crop_size = int(crop_size)
    h, w = np.shape(crops)[-2:]
    size = resampled_size(h, w, factor)
    if size != (h, w) and crop_size <= min(size) and size[0] >= h and size[1] >= w:
        # Enlarged, then centre-cut: interpolate just the pixels that are kept (the frame
        # path's case when the scanner's pixels are larger than the model's).
        top, left = (size[0] - crop_size) // 2, (size[1] - crop_size) // 2
        fitted = bilinear(crops, size, slice(top, top + crop_size),
                          slice(left, left + crop_size))
        cut = (size[0] - crop_size) + (size[1] - crop_size)
        return _contiguous(fitted), cut, 0
    fitted, cut, padded = centre_fit(resample(crops, factor), crop_size)
    return _contiguous(fitted), cut, padded


def _contiguous(crops):
    if is_tensor(crops):
        return crops.float().contiguous()
    return np.ascontiguousarray(crops, dtype=np.float32)


def report_fit(what: str, n: int, cut: int, padded: int) -> None:
    """Log how many of ``n`` crops were cut or padded to the model's field of view."""
    if padded:
        log.warning("%s: %d of %d crops were smaller than the model's field of view after "
                    "resampling and were padded with their background", what, padded, n)
    if cut:
        log.info("%s: %d of %d crops were larger than the model's field of view; their "
                 "centre was used", what, cut, n)


def extract_crops(frame: np.ndarray, x: np.ndarray, y: np.ndarray, crop_size: int,
                  model_pixel_um: float | None = None, scan_pixel_um: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready crops (N, C, crop_size, crop_size) float32 around (x, y), plus ``padded``.

    With both pixel sizes given and different, a window covering the model's field of view is
    cut and brought to model scale by :func:`to_model_scale`.
    """
    windows, padded = extract_windows(frame, x, y,
                                      window_size(crop_size, model_pixel_um, scan_pixel_um))
    crops, _, _ = to_model_scale(windows, scan_pixel_um, model_pixel_um, crop_size)
    return crops, padded
