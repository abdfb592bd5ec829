"""Estimate the pixel size of a crop set whose files do not state it (``--pixel-size auto``).

Published single-cell crops rarely say how many micrometres a pixel spans, and read at the
wrong scale a cell looks like another class (a tight 300 px crop at 0.1 um/px, read as if at the
model's 0.64 um/px, is the inside of one nucleus). Nuclei are the one structure of known size in
every crop: this module measures each crop's central nucleus on the DNA channel (its area at half
its peak above the background of the crop's outer ring, so display scaling, offsets and a
clipped black background do not matter) and scales the set so that its median nucleus has
:data:`REFERENCE_NUCLEUS_UM`. One scale for the whole set, never one per crop: per crop it would
make every nucleus the same size and erase the size difference between CTCs and leukocytes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from ctcnet.errors import InputError

log = logging.getLogger(__name__)

# The median nucleus (diameter at half maximum) of a crop set. On balanced simulated sets of
# CTCs, leukocytes, clusters and debris the measure gives 7.5 um on 16-bit scan crops at 0.64
# um/px, 7.0 um rendered at 0.2 um/px, and 5.6 um on tight 8-bit exports (their black point,
# set above the background, shrinks the area above half maximum); biology: leukocyte nuclei
# 5-8 um, CTC nuclei larger. 6.5 um sits between, so the estimate is within ~15 % either way
# for a mixed set; a set of one class only may be off more, within the 0.5-2x scale range
# the models are trained to tolerate.
REFERENCE_NUCLEUS_UM = 6.5
# Fewer measurable nuclei than this and the estimate is refused (a pixel size must be given).
MIN_NUCLEI = 5


def nucleus_diameter_px(crop: np.ndarray, dna: int) -> float:
    """Equivalent diameter (px) of the nucleus nearest the centre of a (C, H, W) crop, at
    half its peak above the background; NaN when the DNA channel shows nothing above it."""
    from scipy import ndimage

    from ctcnet.detect.cropping import background_level
    from ctcnet.nn.background import background_sample

    plane = np.asarray(crop[dna], np.float32)
    h, w = plane.shape
    ring = background_sample(plane[None, None], 1, "ring", max(2, min(h, w) // 10))[0]
    level, noise = background_level(ring)
    smooth = ndimage.gaussian_filter(plane, max(1.0, min(h, w) / 100))
    peak = float(np.percentile(smooth, 99.5))
    if peak - level[0] <= max(5.0 * noise[0], 1e-6):
        return float("nan")
    labels, n = ndimage.label(smooth > level[0] + 0.5 * (peak - level[0]))
    if n == 0:
        return float("nan")
    yy, xx = np.nonzero(labels)
    nearest = np.argmin((yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2)
    area = np.count_nonzero(labels == labels[yy[nearest], xx[nearest]])
    return float(2.0 * np.sqrt(area / np.pi))


def estimate_pixel_size(crops: Iterable[np.ndarray], dna: int,
                        reference_um: float = REFERENCE_NUCLEUS_UM, what: str = "crop set"
                        ) -> float:
    """The pixel size (um/px) that gives a crop set's median nucleus ``reference_um``."""
    diameters = np.array([nucleus_diameter_px(c, dna) for c in crops])
    found = diameters[np.isfinite(diameters)]
    if len(found) < MIN_NUCLEI:
        raise InputError(f"{what}: cannot estimate the pixel size: {len(found)} of "
                         f"{len(diameters)} crops show a nucleus (need {MIN_NUCLEI}); give "
                         "the pixel size (--pixel-size UM or pixel_size_um in panel.json)")
    estimate = reference_um / float(np.median(found))
    log.info("%s: pixel size estimated at %.3f um/px from %d nuclei (median %.1f px)", what,
             estimate, len(found), float(np.median(found)))
    return estimate
