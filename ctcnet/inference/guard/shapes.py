"""Shape measures of one channel over a mask, per crop of an (N, H, W) stack (pure numpy): how
wide a nucleus's edge is (:func:`edge_width`, focus) and how much shape of its own a channel has
once the best copy of another is taken off (:func:`own_structure`, a nucleus in its cytoplasm
against one body lit in both channels), and where one channel's pattern lies against another's
(:func:`best_move`, what a frame's registration is read from). The marker guard's measurements
read them (:mod:`.measurements`); the ONNX marker graph computes :func:`own_structure` (its
copy in place) step for step."""

from __future__ import annotations

import numpy as np

from ctcnet.inference.guard.masks import rim, touching_parts
from ctcnet.inference.guard.rules import EDGE_LEVELS
from ctcnet.inference.spillover import mean3x3


def edge_width(dna: np.ndarray, nucleus: np.ndarray, disk: np.ndarray) -> np.ndarray:
    """Per crop, the width (px) of the nucleus's edge: how far its DAPI takes to fall from 75 %
    to 25 % of its own peak, as (area above 25 % - area above 75 %) / length of the 50 %
    contour, over the parts above 25 % that touch the nucleus mask (a dim nucleus's 25 % level
    lies below the mask's). A nucleus in the focal plane has an edge about the optics' blur
    wide; an object above or below it (an out-of-focus blob) one several times wider.
    Independent of size and brightness, and it holds for a nucleus in pieces (areas and
    contours add up). NaN: no nucleus."""
    n = len(dna)
    peak = np.where(nucleus, dna, -np.inf).reshape(n, -1).max(axis=1)
    level = np.maximum(peak, 0.0)[:, None, None]
    low, mid, high = EDGE_LEVELS
    # The parts above the low level that touch the nucleus: the area above ``low`` itself.
    outline = touching_parts((dna > low * level) & disk, nucleus)
    above = {low: outline, **{share: outline & (dna > share * level) for share in (mid, high)}}
    contour = rim(above[mid]).sum(axis=(1, 2))
    width = (above[low].sum(axis=(1, 2)) - above[high].sum(axis=(1, 2))) / \
        np.maximum(contour, 1)
    return np.where(contour > 0, width, np.nan).astype(np.float32)


def own_structure(target: np.ndarray, source: np.ndarray, mask: np.ndarray,
                  moves: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per crop, the share of the best copy of ``source`` in ``target`` over ``mask`` (least
    squares, share >= 0) and the structure ``target`` has of its own once that copy is taken
    off: the power left that a 3x3 mean keeps, beyond what pixel noise would keep, as a share
    of that noise. Both inputs are raw (unfiltered) signal in noise units.

    White noise keeps 1/9 of its power under a 3x3 mean; an object's structure keeps nearly
    all. The noise is read from the residual itself (its power the mean removes), so the
    measure holds whatever the photon noise of a bright object: ~0 for a target that is a copy
    of the source plus noise, well above it where the target has a shape of its own (a
    nucleus in its cytoplasm). NaN where the mask is empty.

    ``moves``: (N, 2) whole pixels (dy, dx) each crop's copy is moved by first (None: none).
    A dye's leak is imaged in the exposure of the channel it leaks into, so planes out of
    register move the copy with that channel's plane, and a moved copy's edge otherwise
    reads as a shape of its own."""
    if moves is not None:
        source = moved_copies(source, moves)
    t = np.where(mask, target, 0.0).astype(np.float64)
    s = np.where(mask, source, 0.0).astype(np.float64)
    share = np.maximum((s * t).sum(axis=(1, 2)) / np.maximum((s * s).sum(axis=(1, 2)), 1e-12),
                       0.0)
    # The residual everywhere (its 3x3 mean at the mask's rim needs its neighbours), read over
    # the mask.
    residual = target.astype(np.float64) - share[:, None, None] * source
    count = mask.sum(axis=(1, 2))
    raw = (np.where(mask, residual, 0.0) ** 2).sum(axis=(1, 2)) / np.maximum(count, 1)
    smooth = (np.where(mask, mean3x3(residual), 0.0) ** 2).sum(axis=(1, 2)) / \
        np.maximum(count, 1)
    noise = np.maximum((raw - smooth) * 9.0 / 8.0, 1e-6)
    structure = (smooth - noise / 9.0) / noise
    return share, np.where(count > 0, structure, np.nan).astype(np.float32)


def best_move(target: np.ndarray, source: np.ndarray, mask: np.ndarray,
              shift_px: int) -> np.ndarray:
    """(N, 2) per crop, the whole-pixel move (dy, dx) within ``shift_px`` either way whose
    source, 3x3-smoothed, correlates best with the smoothed target over ``mask``: where the
    source's pattern lies against the target's. On a cell whose two channels are concentric
    (a leukocyte's cytoplasm round its nucleus, a copy) it is how far the planes are out of
    register; on one with its nucleus off-centre it also holds that offset, so a scan's
    registration is read as the median over many cells (``Evidence.copy_move``).

    Each axis is searched on its own, the other unmoved (a blob's correlation falls off
    alike along both, so its peak lies where each axis's does): 4k + 1 placements, not
    (2k + 1)^2. Where none correlates better, the axis stays unmoved."""
    t = np.where(mask, mean3x3(np.asarray(target, np.float32)), 0.0).astype(np.float32)
    k = shift_px
    h, w = t.shape[1:]
    # Each move's rolled source is a window of the source wrapped round by k pixels (a view,
    # not a copy).
    smooth = np.pad(mean3x3(np.asarray(source, np.float32)), ((0, 0), (k, k), (k, k)),
                    mode="wrap")
    power = smooth * smooth
    inside = mask.astype(np.float32)

    def score(dy: int, dx: int) -> np.ndarray:
        window = (slice(None), slice(k - dy, k - dy + h), slice(k - dx, k - dx + w))
        product = np.einsum("nij,nij->n", smooth[window], t)
        return np.maximum(product, 0.0) / \
            np.sqrt(np.maximum(np.einsum("nij,nij->n", power[window], inside), 1e-12))

    steps = [0] + [d for d in range(-k, k + 1) if d != 0]  # unmoved first: kept on a tie
    unmoved = score(0, 0)
    along = [np.stack([unmoved] + [score(d, 0) if axis == 0 else score(0, d)
                                   for d in steps[1:]]) for axis in (0, 1)]
    return np.asarray(steps)[np.stack([a.argmax(axis=0) for a in along], axis=1)]


def moved_copies(source: np.ndarray, moves: np.ndarray) -> np.ndarray:
    """(N, H, W) each crop's ``source`` rolled by its own (dy, dx) of ``moves``."""
    out = np.empty_like(source)
    for move in {tuple(m) for m in moves.tolist()}:
        rows = (moves == move).all(axis=1)
        out[rows] = np.roll(source[rows], move, axis=(1, 2))
    return out
