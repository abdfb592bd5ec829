"""Scale bars and their labels burnt into colour composite crops, as published figures show
them, found and filled before anything reads the crop.

A figure's marks are drawn in white, which in a composite reads as every marker at full scale
at once (CK, CD45 and DAPI). Read as they are, they cost CTC calls: with ``--pixel-size fit``
a bar that touches the cell joins it and the cell is scaled down, and the bar's "CD45" sits
beside the CK (docs/markers.md, "Scale bars").

A cell can be white too: a leukocyte whose CK-channel signal and CD45 both saturate on its
membrane, with the nucleus's blue blurred out to it, shows a thin white ring. So a mark is
only what no cell draws:

* a **bar**: a straight, thin, filled stroke of white, at least ``BAR_MIN_LENGTH`` of the
  crop's side long, at most ``BAR_MAX_WIDTH`` wide, filling the rectangle it spans
  (a ring's arc is curved and does not);
* drawn on the background: at least ``BACKGROUND_SHARE`` of the pixels round it are dark
  (a saturated piece of a cell is surrounded by the cell);
* with its **label**: small whitened strokes (every plane at least ``GLYPH_LEVEL``: white text
  blends with the cell's colours where it is drawn over them; a glyph each, no larger than
  ``GLYPH_SIZE`` of the bar's length) within ``LABEL_REACH`` of its length from it.

A bar's white is near white and neutral: each plane at least ``WHITE_LEVEL``, the planes
within ``NEUTRAL_SPREAD`` of each other. The pixels next to a mark whitened in every plane
(anti-aliasing, JPEG ringing) go with it. A crop without a bar is returned as it is. A CTC's
pixels are never whitened (its CD45 is dark); a leukocyte's near a label may be, and are then
filled from the pixels round them, which are its own.
"""

from __future__ import annotations

import numpy as np

# A mark's white: every plane at least this (8-bit levels; JPEG softens pure white a little)
# and the planes this close to each other.
WHITE_LEVEL = 230
NEUTRAL_SPREAD = 30
# A label's glyphs: every plane at least this (white text blended with the colours under it).
GLYPH_LEVEL = 150
# What smooths a mark's edges and goes with it: every plane at least this, next to the mark.
EDGE_LEVEL = 20
# A bar (shares of the crop's shorter side): at least this long, at most this wide, and
# filling at least this share of the rectangle its length and width span.
BAR_MIN_LENGTH = 0.12
BAR_MAX_WIDTH = 0.06
BAR_FILL = 0.75
# A label's glyphs: each no larger than this share of the bar's length, within this share
# of it from the bar.
GLYPH_SIZE = 0.8
LABEL_REACH = 0.8
# A bar is drawn on the background: at least this share of the pixels round it are dark
# (every plane at most ``DARK_LEVEL``).
DARK_LEVEL = 60
BACKGROUND_SHARE = 0.5


def annotation_mask(rgb: np.ndarray) -> np.ndarray:
    """The pixels of burnt-in scale bars and their labels in a (3, H, W) 8-bit composite:
    bool (H, W), all False where the crop holds no bar."""
    from scipy import ndimage

    planes = np.asarray(rgb)
    low, high = planes.min(axis=0), planes.max(axis=0)
    neutral = (high.astype(np.int16) - low) <= NEUTRAL_SPREAD
    white = neutral & (low >= WHITE_LEVEL)
    none = np.zeros(white.shape, bool)
    if not white.any():
        return none
    dark = high <= DARK_LEVEL
    labels, _ = ndimage.label(white, structure=np.ones((3, 3), bool))
    parts = [(box, labels[box] == i) for i, box in enumerate(ndimage.find_objects(labels), 1)]
    bars = none.copy()
    for box, part in parts:
        if _is_bar(part, min(white.shape)) and _on_background(part, box, dark):
            bars[box] |= part
    if not bars.any():
        return none
    longest = max(max(part.shape) for box, part in parts if bars[box][part].any())
    reach = ndimage.distance_transform_edt(~bars) <= LABEL_REACH * longest
    marks = bars.copy()
    # A label's glyphs: small beside the bar they name, next to it, and whitened rather
    # than white where they are drawn over the cell's colours (anti-aliased text).
    glyphs, _ = ndimage.label(low >= GLYPH_LEVEL, structure=np.ones((3, 3), bool))
    for i, box in enumerate(ndimage.find_objects(glyphs), 1):
        part = glyphs[box] == i
        if max(part.shape) <= GLYPH_SIZE * longest and reach[box][part].any():
            marks[box] |= part
    # What smooths a mark's edges (anti-aliasing, JPEG ringing) belongs to it: the pixels
    # next to it whitened in every plane.
    edges = (low >= EDGE_LEVEL) & \
        ndimage.binary_dilation(marks, np.ones((3, 3), bool), iterations=2)
    return marks | edges


def _on_background(part: np.ndarray, box: tuple, dark: np.ndarray) -> bool:
    """Whether most of the ring of pixels round a white part (two pixels wide) is dark: a
    mark drawn on the background, not a saturated piece of a cell."""
    from scipy import ndimage

    top, left = max(0, box[0].start - 2), max(0, box[1].start - 2)
    window = dark[top:box[0].stop + 2, left:box[1].stop + 2]
    inside = np.zeros(window.shape, bool)
    inside[box[0].start - top:box[0].stop - top, box[1].start - left:box[1].stop - left] = part
    ring = ndimage.binary_dilation(inside, np.ones((3, 3), bool), iterations=2) & ~inside
    # (anti-aliased edges are grey, not dark: the ring's outer pixel is read too)
    return bool(ring.any()) and window[ring].mean() >= BACKGROUND_SHARE


def _is_bar(part: np.ndarray, side: int) -> bool:
    """Whether a white part is a bar: straight, thin, long and filled."""
    ys, xs = np.nonzero(part)
    if len(ys) < 3:
        return False
    # A filled straight stroke of length L and width T has variances L^2/12 and T^2/12
    # along and across its axis.
    minor, major = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(np.float64)))
    length, width = np.sqrt(12 * max(major, 0.0)), np.sqrt(12 * max(minor, 0.0))
    return bool(length >= BAR_MIN_LENGTH * side and width <= max(2.0, BAR_MAX_WIDTH * side)
                and len(ys) >= BAR_FILL * length * max(width, 1.0))


def without_annotations(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """A (3, H, W) 8-bit composite with its scale bars and labels (:func:`annotation_mask`)
    filled from the nearest pixels that are not marks, and how many pixels were filled
    (0: ``rgb`` itself, untouched)."""
    from scipy import ndimage

    mask = annotation_mask(rgb)
    n = int(mask.sum())
    if n == 0 or n == mask.size:
        return rgb, 0
    nearest = ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True)
    return np.asarray(rgb)[:, nearest[0], nearest[1]], n
