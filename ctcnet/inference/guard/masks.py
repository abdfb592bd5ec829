"""Per-crop mask operations on (N, H, W) stacks of the guard's crops (numpy and scipy): the
disk the measurements read, connected parts within each crop (never across two crops), a mask's
rim, its growth by 4-neighbour steps and what it encloses.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import label


def box_with_margin(mask: np.ndarray, margin: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """Row and column ranges of ``mask``'s bounding box grown by ``margin`` (within bounds)."""
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(ys):
        return (0, mask.shape[0]), (0, mask.shape[1])
    return ((max(0, ys[0] - margin), min(mask.shape[0], ys[-1] + 1 + margin)),
            (max(0, xs[0] - margin), min(mask.shape[1], xs[-1] + 1 + margin)))


def disk_core(h: int, w: int, radius_px: float) -> np.ndarray:
    """Boolean (H, W) disk of ``radius_px`` round the crop centre."""
    yy, xx = np.mgrid[:h, :w]
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= radius_px ** 2


# 4-connectivity within each crop of an (N, H, W) stack; never connects two crops.
IN_PLANE = np.zeros((3, 3, 3), bool)
IN_PLANE[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def central_component(mask: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per crop, the connected part of ``mask`` holding the best-scoring central pixel: the
    centred object's own CK, not a neighbour's."""
    n = len(mask)
    labels, _ = label(mask, structure=IN_PLANE)
    best = np.where(mask, score, -np.inf).reshape(n, -1).argmax(axis=1)
    chosen = labels.reshape(n, -1)[np.arange(n), best]
    return (labels == chosen[:, None, None]) & (chosen[:, None, None] > 0)


def touching_parts(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """Per crop, the connected parts of ``mask`` that share a pixel with ``seed`` (an
    apoptotic nucleus in pieces keeps all its pieces inside the CK area)."""
    labels, count = label(mask, structure=IN_PLANE)
    keep = np.zeros(count + 1, bool)
    keep[labels[mask & seed]] = True
    keep[0] = False
    return keep[labels]


def rim(mask: np.ndarray) -> np.ndarray:
    """Per crop of an (N, H, W) stack, the pixels of ``mask`` with a 4-neighbour outside it
    (beyond the crop's border counts as outside): ``mask & ~binary_erosion(mask)`` with the
    in-plane cross, by four shifted ANDs (0.7 against scipy's 6.3 ms on a frame's masks)."""
    inner = mask.copy()
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    inner[:, :, 1:] &= mask[:, :, :-1]
    inner[:, :, :-1] &= mask[:, :, 1:]
    inner[:, [0, -1]] = False
    inner[:, :, [0, -1]] = False
    return mask & ~inner


def grown(mask: np.ndarray, steps: int) -> np.ndarray:
    """Per crop of an (N, H, W) stack, ``mask`` grown by ``steps`` 4-neighbour steps within the
    crop: scipy's ``binary_dilation`` with the in-plane cross and ``iterations=steps``, by
    shifted ORs (0.4 against 1.3 ms for three steps on a frame's possible CTCs)."""
    grown = mask.copy()
    for _ in range(steps):
        step = grown.copy()
        step[:, 1:] |= grown[:, :-1]
        step[:, :-1] |= grown[:, 1:]
        step[:, :, 1:] |= grown[:, :, :-1]
        step[:, :, :-1] |= grown[:, :, 1:]
        grown = step
    return grown


def enclosed(mask: np.ndarray) -> np.ndarray:
    """Per crop of an (N, H, W) stack, ``mask`` and the pixels it encloses along both axes:
    those lying between the first and the last pixel of ``mask`` in their row and in their
    column. A ring's hole is enclosed, that of a ring open on one side but for the rows (or
    columns) through its gap; what lies beside a compact mask is not. No labelling: each row's
    and column's first and last pixel."""
    def between(axis: int) -> np.ndarray:
        size = mask.shape[axis]
        first = mask.argmax(axis=axis)
        last = size - 1 - np.flip(mask, axis=axis).argmax(axis=axis)
        lit = mask.any(axis=axis)
        index = np.arange(size).reshape((-1, 1) if axis == 1 else (1, -1))
        first, last, lit = (np.expand_dims(a, axis) for a in (first, last, lit))
        return lit & (index >= first) & (index <= last)

    return mask | (between(1) & between(2))
