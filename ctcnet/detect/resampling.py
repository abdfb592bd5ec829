"""Resampling of (N, C, H, W) crops, numpy arrays or torch tensors, with the weights torch uses.

:func:`resample` shrinks with an antialiased filter (an area average, so small bright spots
keep their signal) and enlarges bilinearly (:func:`bilinear`). The weights are computed in
numpy (:func:`antialias_matrix`, :func:`bilinear_matrix`) as
``torch.nn.functional.interpolate`` computes them, so the numpy path needs no torch and both
paths resample alike. :mod:`ctcnet.detect.cropping` brings crops to model scale with them.
"""

from __future__ import annotations

import sys

import numpy as np


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
    if min(h, w) == 1:
        # torch's antialiased kernel gives every output the first value from a side of one
        # pixel (a 1 px strip): the same weights, as the numpy path applies them.
        import torch

        rows, cols = (torch.from_numpy(antialias_matrix(n, m)).to(t.device)
                      for n, m in ((h, size[0]), (w, size[1])))
        return torch.einsum("nchw,yh,xw->ncyx", t, rows, cols)
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
