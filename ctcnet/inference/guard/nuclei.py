"""How many nuclei an object's DAPI mask holds: the evidence a ``cluster`` call of two or more
cells has when no partner marker (CD45, CD61, CD66b) is attached to its CTC.

Touching nuclei merge into one mask above any DAPI level, and in a projection the overlap of two
nuclei is their brightest part, so neither components nor intensity maxima count them. Their
mask's shape does: each nucleus is a bulge, and the distance from the mask's outline has one
maximum per bulge, with a waist between them. An elongated single nucleus (a spindle CTC's) has
one ridge whose distance rises to its middle: one maximum. :func:`count_nuclei` counts the
maxima at least ``min_half_width_um`` from the outline (a nucleus at least twice that wide) and
``min_separation_um`` apart.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.feature import peak_local_max


def count_nuclei(masks: np.ndarray, pixel_size_um: float, min_half_width_um: float,
                 min_separation_um: float) -> np.ndarray:
    """(N,) float32 number of nuclei in each of ``masks`` ((N, h, w) bool DAPI masks): maxima
    of the distance to the mask's outline (µm) at least ``min_half_width_um`` deep and
    ``min_separation_um`` apart. 0 for an empty mask."""
    masks = np.asarray(masks, bool)
    separation_px = max(1, int(round(min_separation_um / pixel_size_um)))
    counts = np.zeros(len(masks), np.float32)
    for i in np.flatnonzero(masks.any(axis=(1, 2))):
        # Padded by a pixel: the outline of a mask that reaches the box's edge is there too.
        mask = np.pad(masks[i], 1)
        depth = ndimage.distance_transform_edt(mask) * pixel_size_um
        parts, _ = ndimage.label(mask)
        peaks = peak_local_max(depth, min_distance=separation_px,
                               threshold_abs=min_half_width_um, labels=parts,
                               exclude_border=False)
        counts[i] = len(peaks)
    return counts
