"""How many nuclei an object's DAPI mask holds: the evidence a ``cluster`` call of two or more
cells has when no partner marker (CD45, CD61, CD66b) is attached to its CTC.

Touching nuclei merge into one mask above any DAPI level, and in a projection the overlap of two
nuclei is their brightest part, so neither components nor intensity maxima count them. Their
mask's shape does: each nucleus is a bulge, and the distance from the mask's outline has a dome
over each bulge, with a waist between them where it dips. An elongated single nucleus (a spindle
CTC's) has one ridge along its length, which on a pixel grid carries several maxima of nearly
one height in a row: counting maxima would count those. :func:`count_nuclei` counts domes
instead: the parts of the distance that rise at least ``min_dip_um`` above every path to a
higher part (an h-dome transform), each at least ``min_half_width_um`` deep.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import reconstruction

_EIGHT = np.ones((3, 3), bool)


def count_nuclei(masks: np.ndarray, pixel_size_um: float, min_half_width_um: float,
                 min_dip_um: float) -> np.ndarray:
    """(N,) float32 number of nuclei in each of ``masks`` ((N, h, w) bool DAPI masks): domes
    of the distance to the mask's outline (um) that rise ``min_dip_um`` above the waist to any
    higher one and reach ``min_half_width_um`` (a nucleus at least twice that wide). 0 for an
    empty mask."""
    masks = np.asarray(masks, bool)
    counts = np.zeros(len(masks), np.float32)
    for i in np.flatnonzero(masks.any(axis=(1, 2))):
        # Padded by a pixel: the outline of a mask that reaches the box's edge is there too.
        depth = ndimage.distance_transform_edt(np.pad(masks[i], 1)) * pixel_size_um
        # The depth with every dome lowered to min_dip_um under its top: what is left above
        # it is one connected part per dome, whatever the grid does to a flat ridge.
        floor = reconstruction(depth - min_dip_um, depth, method="dilation")
        domes, n = ndimage.label(depth - floor > 1e-6, structure=_EIGHT)
        if n:
            tops = ndimage.maximum(depth, domes, index=np.arange(1, n + 1))
            counts[i] = int((np.asarray(tops) >= min_half_width_um).sum())
    return counts
