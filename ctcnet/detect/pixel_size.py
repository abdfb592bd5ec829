"""Estimate the pixel size of a crop set whose files do not state it (``--pixel-size auto``),
or give each crop its own scale from its cell (``--pixel-size fit``).

Published single-cell crops rarely say how many micrometres a pixel spans, and read at the
wrong scale a cell looks like another class (a tight 300 px crop at 0.1 um/px, read as if at the
model's 0.64 um/px, is the inside of one nucleus). Nuclei are the one structure of known size in
every crop: this module measures each crop's central nucleus on the DNA channel (its area at half
its peak above the background of the crop's outer ring, so display scaling, offsets and a
clipped black background do not matter) and scales the set so that its median nucleus has
:data:`REFERENCE_NUCLEUS_UM`. One scale for the whole set, never one per crop: per crop it would
make every nucleus the same size and erase the size difference between CTCs and leukocytes.

Published figures often scale each crop to fit its cell, and then there is no size difference
left to keep: ``fit`` gives every crop the scale at which its cell (the object at the centre,
lit in any channel) is :data:`FIT_CELL_UM` across, so every cell reaches the model at one size
and only its markers and inner structure tell it apart. (CTCs are often leukocyte-sized in
patient samples; the CellSearch definition has no upper size limit.)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable

import numpy as np

from ctcnet.core.ordered import ordered_map
from ctcnet.core.robust import background_and_noise, background_sample
from ctcnet.errors import InputError
from ctcnet.io.hand_edits import pixel_unit_hint
from ctcnet.io.panel import PIXEL_SIZE_RANGE_UM

log = logging.getLogger(__name__)

# scipy.ndimage.label's default structure (4-connected in 2-D), made once: label makes it
# anew on every call otherwise, a quarter of its time on a crop's plane.
CROSS = np.array([[False, True, False], [True, True, True], [False, True, False]])

# The median nucleus (diameter at half maximum) of a crop set. On balanced simulated sets of
# CTCs, leukocytes, clusters and debris the measure gives 7.5 um on 16-bit scan crops at 0.64
# um/px, 7.0 um rendered at 0.2 um/px, and 5.6 um on tight 8-bit exports (their black point,
# set above the background, shrinks the area above half maximum); biology: leukocyte nuclei
# 5-8 um, CTC nuclei larger. 6.5 um sits between, so the estimate is within ~15 % either way
# for a mixed set; a set of one class only may be off more, within the 0.5-2x scale range
# the models are trained to tolerate.
REFERENCE_NUCLEUS_UM = 6.5
# The DNA a nucleus is lit by, in noise units over the background (the central object whose
# own half-peak :func:`own_nucleus_diameter_of` reads).
NUCLEUS_LIT_NOISE = 5.0
# Fewer measurable nuclei than this and the estimate is refused (a pixel size must be given).
MIN_NUCLEI = 5
# ``fit``: the diameter every crop's cell is brought to: a leukocyte's, and a common CTC's.
FIT_CELL_UM = 12.0
# Crops measured at once: scipy's filters and labelling release the GIL, so threads share the
# cores (2 of them: 5.2 -> 3.0 ms a 257 px RGB export); a few crops are read ahead of them.
MEASURE_THREADS = min(4, os.cpu_count() or 1)
# The option's words: one scale for the set from its nuclei, or a scale per crop from its cell.
PIXEL_SIZE_AUTO = "auto"
PIXEL_SIZE_FIT = "fit"
# The option a crop set's pixel size is given by on the command line (``predict``, ``evaluate``,
# ``robustness``, ``finetune``), named where a message asks for it; ``ctcnet train`` names its
# own (``--data.pixel_size``).
PIXEL_SIZE_OPTION = "--pixel-size"


def pixel_size_option(value: float | str) -> float | str:
    """A crop set's pixel size as a user gives it (``--pixel-size``, ``data.pixel_size``):
    ``"auto"``, ``"fit"`` or a number of um per pixel, checked; a ValueError says what is
    wrong with anything else."""
    if value in (PIXEL_SIZE_AUTO, PIXEL_SIZE_FIT):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        comma = f" (a decimal point: {value.replace(',', '.')}?)" if isinstance(value, str) \
            and value.count(",") == 1 else ""
        raise ValueError(f"expected a number of um, {PIXEL_SIZE_AUTO!r} or {PIXEL_SIZE_FIT!r}, "
                         f"got {value!r}{comma}") from None
    # panel.json's bounds: a stated size outside them is a typo or another unit (nm), not a
    # microscope's (a bound of its own here took 0.005, which panel.json then refused)
    low, high = PIXEL_SIZE_RANGE_UM
    if not low <= number <= high:  # (NaN fails it too)
        raise ValueError(f"{number} um per pixel is not a plausible pixel size ({low:g} to "
                         f"{high:g}){pixel_unit_hint(number)}")
    return number


def smoothed_over_ring(x: np.ndarray, whole: np.ndarray | None = None):
    """A (C, H, W) crop smoothed (sigma 1 px, or 1 % of the side), with each channel's
    background level and noise read on its outer ring (display scaling, offsets and a clipped
    black background do not matter), the noise at least detection's floor for such a crop
    (:func:`~ctcnet.detect.detection.noise_floor`: one level on 8-bit display levels, whose
    clipped black reads as no noise at all; a plane that holds nothing but a level or two of
    noise, a CTC's CD45 in a PNG, was otherwise lit everywhere and the whole image read as
    the cell; judged on ``whole``, the whole crop, when ``x`` is one of its planes)."""
    from scipy import ndimage

    from ctcnet.detect.detection import noise_floor

    h, w = x.shape[1:]
    ring = background_sample(x[None], 1, "ring", max(2, min(h, w) // 10))[0]
    level, noise = background_and_noise(ring, "linear")
    noise = np.maximum(noise, noise_floor(x if whole is None else whole))
    sigma = max(1.0, min(h, w) / 100)
    return ndimage.gaussian_filter(x, (0, sigma, sigma)), level, noise


def central_part(mask: np.ndarray, reach: float | None = None) -> np.ndarray | None:
    """The connected part of an (H, W) mask nearest its centre (bool (H, W)); None when the
    mask is empty, or (``reach``, px) when no part comes that close to the centre."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, CROSS)
    if n == 0:
        return None
    h, w = mask.shape
    yy, xx = np.nonzero(labels)
    distance = (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2
    nearest = np.argmin(distance)
    if reach is not None and distance[nearest] > reach ** 2:
        return None
    return labels == labels[yy[nearest], xx[nearest]]


def _central_diameter(mask: np.ndarray) -> float:
    """Equivalent diameter (px) of the part of an (H, W) mask nearest its centre; NaN when
    the mask is empty."""
    part = central_part(mask)
    if part is None:
        return float("nan")
    return float(2.0 * np.sqrt(np.count_nonzero(part) / np.pi))


def nucleus_diameter_px(crop: np.ndarray, dna: int) -> float:
    """Equivalent diameter (px) of the nucleus nearest the centre of a (C, H, W) crop, at
    half its peak above the background; NaN when the DNA channel shows nothing above it."""
    smooth, level, noise = smoothed_over_ring(np.asarray(crop[dna:dna + 1], np.float32),
                                               np.asarray(crop))
    return nucleus_diameter_of(smooth[0] - level[0], float(noise[0]))


def nucleus_diameter_of(above: np.ndarray, noise: float) -> float:
    """:func:`nucleus_diameter_px` of the DNA plane already smoothed, its background taken off
    (``above``, (H, W)), with its ``noise`` (:func:`smoothed_over_ring`'s)."""
    peak = float(np.percentile(above, 99.5))
    if peak <= max(5.0 * noise, 1e-6):
        return float("nan")
    return _central_diameter(above > 0.5 * peak)


def own_nucleus_diameter_of(above: np.ndarray, noise: float) -> float:
    """:func:`nucleus_diameter_of` at the central object's own half-peak (the DNA lit over
    ``NUCLEUS_LIT_NOISE`` noise units that lies nearest the centre), not the crop's. In a
    crowded frame a brighter neighbour's peak cuts the central nucleus at more than half its
    own: the crop's half-peak read a correctly stated scan's median nucleus 6.5 um at 300
    events a frame and 4.2 at 2,200 (this: 6.7 and 6.7); on a scan stated at half its pixel
    size, whose crops span twice the field and so more neighbours, the crop's read 3.2-5.2
    um and this 4.6-5.8 (blur keeps a nucleus at half its size wider than half)."""
    own = central_part(above > NUCLEUS_LIT_NOISE * noise)
    if own is None:
        return float("nan")
    # The crop's 99.5th percentile as if the central object were all it held.
    peak = float(np.percentile(np.where(own, above, 0.0), 99.5))
    if peak <= max(5.0 * noise, 1e-6):
        return float("nan")
    return _central_diameter((above > 0.5 * peak) & own)


# Nuclei of one folder this many times apart (90th over 10th percentile) are crops at different
# scales: a lymphocyte's and a large CTC's nucleus at one scale are 2-2.5x apart.
SCALES_APART = 4.0


def estimate_pixel_size(crops: Iterable[np.ndarray], dna: int,
                        reference_um: float = REFERENCE_NUCLEUS_UM, what: str = "crop set",
                        option: str = PIXEL_SIZE_OPTION) -> float:
    """The pixel size (um/px) that gives a crop set's median nucleus ``reference_um``
    (``option``: the command's option for the pixel size, named where it cannot be
    estimated)."""
    diameters = np.fromiter(ordered_map(lambda crop: nucleus_diameter_px(crop, dna), crops,
                                        MEASURE_THREADS, name="ctcnet-measure"), np.float64)
    found = diameters[np.isfinite(diameters)]
    if len(found) < MIN_NUCLEI:
        raise InputError(f"{what}: cannot estimate the pixel size: {len(found)} of "
                         f"{len(diameters)} crops show a nucleus (need {MIN_NUCLEI}); give "
                         f"the pixel size ({option} UM or pixel_size_um in panel.json)")
    estimate = reference_um / float(np.median(found))
    log.info("%s: pixel size estimated at %.3f um/px from %d nuclei (median %.1f px)", what,
             estimate, len(found), float(np.median(found)))
    low, high = np.percentile(found, [10, 90])
    if high > SCALES_APART * low:  # one pixel size reads most of such a folder wrong
        log.warning("%s: the crops' nuclei span %.0f-%.0f px (10th-90th percentile): crops at "
                    "very different scales (each scaled to fit its cell?), which one pixel "
                    "size (%.3f um/px) reads wrong; %s fit reads each at its own", what, low,
                    high, estimate, option)
    return estimate


def cell_diameter_px(crop: np.ndarray) -> float:
    """Equivalent diameter (px) of the object at the centre of a (C, H, W) crop: the pixels lit
    in any channel (over a fifth of that channel's peak above the background of the crop's
    outer ring, and over 5 noise units), connected to the centre, holes filled; NaN when no
    channel shows anything."""
    x = np.asarray(crop, np.float32)
    smooth, level, noise = smoothed_over_ring(x)
    above = smooth - level[:, None, None]
    peak = np.percentile(above.reshape(len(x), -1), 99.5, axis=1)
    lit = peak > np.maximum(5.0 * noise, 1e-6)
    if not lit.any():
        return float("nan")
    cut = np.maximum(0.2 * peak, 5.0 * noise)[:, None, None]
    return _central_diameter(filled_holes(((above > cut) & lit[:, None, None]).any(axis=0)))


def filled_holes(mask: np.ndarray) -> np.ndarray:
    """An (H, W) mask with its holes filled: ``scipy.ndimage.binary_fill_holes``'s result (the
    background 4-connected to the image's edge stays background), read off one labelling of
    the background instead of its repeated dilations (a third of the time on 200 px crops)."""
    from scipy import ndimage

    labels, n = ndimage.label(~mask, CROSS)
    # The labels of the background parts that reach the edge, looked up (np.isin sorted the
    # labels of every pixel, half of this function's time).
    reaches_edge = np.zeros(n + 1, bool)
    reaches_edge[labels[0]] = reaches_edge[labels[-1]] = True
    reaches_edge[labels[:, 0]] = reaches_edge[labels[:, -1]] = True
    reaches_edge[0] = False  # the mask itself
    return ~reaches_edge[labels]


def fitted_pixel_sizes(crops: Iterable[np.ndarray], cell_um: float = FIT_CELL_UM,
                       what: str = "crop set", done: Callable[[], None] | None = None,
                       option: str = PIXEL_SIZE_OPTION) -> np.ndarray:
    """Each crop's pixel size (um/px) at which its cell is ``cell_um`` across; a crop whose
    cell cannot be measured takes the set's median scale. ``done``: called after each crop
    (a progress bar's step); ``option``: as for :func:`estimate_pixel_size`."""
    sizes = []
    for diameter in ordered_map(cell_diameter_px, crops, MEASURE_THREADS, name="ctcnet-fit"):
        sizes.append(diameter)
        if done is not None:
            done()
    diameters = np.array(sizes, np.float64)
    found = np.isfinite(diameters) & (diameters > 0)
    if not found.any():
        raise InputError(f"{what}: {option} fit finds no cell in any crop; give the pixel "
                         f"size ({option} UM or pixel_size_um in panel.json)")
    scales = np.where(found, cell_um / np.where(found, diameters, 1.0), np.nan)
    median = float(np.nanmedian(scales))
    if not found.all():
        log.warning("%s: %d of %d crops show no cell to fit; read at the set's median scale "
                    "%.3f um/px", what, int((~found).sum()), len(found), median)
    log.info("%s: each crop scaled to fit its cell to %.0f um (median %.3f um/px)", what,
             cell_um, median)
    return np.where(found, scales, median)


def pixel_size_text(um: float | None, source: str | None) -> str:
    """The crops' pixel size as read: fitted per crop, the folder's median stands for them."""
    if not um:
        return str(source)
    if source and "fitted" in source:
        return f"{source} (median {um:.3g} um/px)"
    return f"{um:.3g} um/px ({source})"
