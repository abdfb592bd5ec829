"""Scale bars and their labels burnt into colour composite crops, as published figures show
them, found and filled before anything reads the crop; and a panel's white or grey frame at
the crop's edges, filled too (:func:`without_frame`).

A figure's marks are drawn in white, which in a composite reads as every marker at full scale
at once (CK, CD45 and DAPI). Read as they are, they cost CTC calls: with ``--pixel-size fit``
a bar that touches the cell joins it and the cell is scaled down, and the bar's "CD45" sits
beside the CK (docs/markers.md, "Scale bars").

A cell can be white too: a leukocyte whose CK-channel signal and CD45 both saturate on its
membrane, with the nucleus's blue blurred out to it, shows a thin white ring. So a mark is
only what no cell draws:

* a **bar**: a straight, thin, filled stroke of white, at least ``BAR_MIN_LENGTH`` of the
  crop's side and ``BAR_MIN_PX`` long, at most ``BAR_MAX_WIDTH`` wide, filling the rectangle
  it spans (a ring's arc is curved and does not);
* drawn on the background: at least ``BACKGROUND_SHARE`` of the pixels round it are dark
  (a saturated piece of a cell has the cell on one side at least);
* with its **label**: within ``LABEL_REACH`` of the bar's length from it, whitened strokes
  (every plane at least ``GLYPH_LEVEL``: white text blends with the cell's colours where it is
  drawn over them) with white in them, no wider than the bar, a glyph each no larger than
  ``GLYPH_SIZE`` of the bar's length and ``GLYPH_PER_WIDTH`` of its widths. A cell beside a
  bar is wider than a stroke or larger than a glyph, and is kept.

A bar's white is near white and neutral: each plane at least ``WHITE_LEVEL``, the planes
within ``NEUTRAL_SPREAD`` of each other. The pixels next to a mark whitened in every plane
(anti-aliasing, JPEG ringing) go with it. A crop without a bar is returned as it is.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

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
# ... and never shorter than this many pixels (in a small crop a few white pixels in a row are
# a speck or a piece of a membrane, not a bar).
BAR_MIN_PX = 10
# A label's glyphs: within this share of the bar's length from it, each no larger than this
# share of its length and than so many times its width (at least GLYPH_MIN_PX): text as high
# as a few bar widths, not a cell.
LABEL_REACH = 0.5
GLYPH_SIZE = 0.5
GLYPH_PER_WIDTH = 6
GLYPH_MIN_PX = 12
# A piece of a glyph this small need not hold white (the tip of an anti-aliased stroke).
GLYPH_SPECK_PX = 4
# A bar is drawn on the background: at least this share of the pixels round it are dark
# (every plane at most ``DARK_LEVEL``).
DARK_LEVEL = 60
BACKGROUND_SHARE = 0.75
# A frame line: an edge row or column at least this share light grey to white (every plane at
# least FRAME_LEVEL, the planes within NEUTRAL_SPREAD: a figure's panel border, or the gap
# between panels cut with the panel), taken with the one line inside it that its
# anti-aliasing or JPEG ringing lightens; at most this share of a side per edge. No cell
# lights every marker alike along a whole edge.
FRAME_FILL = 0.9
FRAME_LEVEL = 100
FRAME_MAX_SHARE = 0.1


def annotation_mask(rgb: np.ndarray) -> np.ndarray:
    """The pixels of burnt-in scale bars and their labels in a (3, H, W) 8-bit composite:
    bool (H, W), all False where the crop holds no bar."""
    from scipy import ndimage

    planes = np.asarray(rgb)
    low, high = planes.min(axis=0), planes.max(axis=0)
    white = ((high.astype(np.int16) - low) <= NEUTRAL_SPREAD) & (low >= WHITE_LEVEL)
    none = np.zeros(white.shape, bool)
    if not white.any():
        return none
    dark = high <= DARK_LEVEL
    labels, _ = ndimage.label(white, structure=np.ones((3, 3), bool))
    bars = []  # (box, part, length, width) of each bar
    for i, box in enumerate(ndimage.find_objects(labels), 1):
        part = labels[box] == i
        shape = _bar_shape(part, min(white.shape))
        if shape is not None and _on_background(part, box, dark):
            bars.append((box, part, *shape))
    if not bars:
        return none
    marks = none.copy()
    for box, part, _, _ in bars:
        marks[box] |= part
    # A label's glyphs: beside a bar, small and drawn in strokes no wider than it, with white
    # in them, whitened rather than white where drawn over the cell's colours (anti-aliasing).
    glyphs, _ = ndimage.label(low >= GLYPH_LEVEL, structure=np.ones((3, 3), bool))
    boxes = ndimage.find_objects(glyphs)
    for box, _, length, width in bars:
        reach = int(np.ceil(LABEL_REACH * length))
        near = tuple(slice(max(0, b.start - reach), b.stop + reach) for b in box)
        largest = min(GLYPH_SIZE * length, max(GLYPH_MIN_PX, GLYPH_PER_WIDTH * width))
        for i in np.unique(glyphs[near]):
            if i == 0:
                continue
            gbox = boxes[i - 1]
            part = glyphs[gbox] == i
            # (white in it, unless it is a speck of a few pixels: the tip of a stroke)
            if max(part.shape) <= largest and \
                    (white[gbox][part].any() or part.sum() <= GLYPH_SPECK_PX) and \
                    ndimage.distance_transform_edt(np.pad(part, 1)).max() <= max(2.0, width):
                marks[gbox] |= part
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


def _bar_shape(part: np.ndarray, side: int) -> tuple[float, float] | None:
    """(length, width) in pixels of a white part that is a bar (straight, thin, long and
    filled), else None."""
    ys, xs = np.nonzero(part)
    if len(ys) < 3:
        return None
    # A filled straight stroke of length L and width T has variances L^2/12 and T^2/12
    # along and across its axis.
    minor, major = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(np.float64)))
    length, width = np.sqrt(12 * max(major, 0.0)), np.sqrt(12 * max(minor, 0.0))
    if length >= max(BAR_MIN_PX, BAR_MIN_LENGTH * side) and \
            width <= max(2.0, BAR_MAX_WIDTH * side) and \
            len(ys) >= BAR_FILL * length * max(width, 1.0):
        return length, max(width, 1.0)
    return None


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


def frame_widths(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """Lines of a light frame at each edge (top, bottom, left, right) of a (3, H, W) 8-bit
    composite: the edge lines at least ``FRAME_FILL`` light grey to white (``FRAME_LEVEL``),
    one more line beside them (its anti-aliasing or JPEG ringing), at most
    ``FRAME_MAX_SHARE`` of the side; 0 at an edge without one."""
    planes = np.asarray(rgb)
    low, high = planes.min(axis=0), planes.max(axis=0)
    light = ((high.astype(np.int16) - low) <= NEUTRAL_SPREAD) & (low >= FRAME_LEVEL)
    h, w = light.shape
    widths = []
    for lines, side in ((light, h), (light[::-1], h), (light.T, w), (light.T[::-1], w)):
        most = int(FRAME_MAX_SHARE * side)
        run = lines[:most].mean(axis=1) >= FRAME_FILL
        count = len(run) if run.all() else int(np.argmin(run))  # the frame's lines from the edge
        widths.append(min(count + 1, most) if count else 0)
    return tuple(widths)


def without_frame(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """A (3, H, W) 8-bit composite with a light frame at its edges (:func:`frame_widths`)
    filled from the nearest pixels inside it, and how many pixels were filled (0: ``rgb``
    itself). Filled, not cut away: the crop keeps its margin round the cell, whose outer ring
    is what a crop smaller than the model's field is padded from."""
    from scipy import ndimage

    top, bottom, left, right = frame_widths(rgb)
    if not top + bottom + left + right:
        return rgb, 0
    h, w = np.asarray(rgb).shape[1:]
    frame = np.ones((h, w), bool)
    frame[top:h - bottom, left:w - right] = False
    nearest = ndimage.distance_transform_edt(frame, return_distances=False, return_indices=True)
    return np.asarray(rgb)[:, nearest[0], nearest[1]], int(frame.sum())


# What a crop folder's reader says of each kind of mark it filled (:func:`warn_of_marks`).
MARK_NOTES = {
    "frame": "have a white or grey frame at their edges (a figure panel's border, read as "
             "every marker at once): it was filled from the pixels inside it before reading",
    "scale bar": "show a scale bar burnt in (white, read as every marker at once): it and its "
                 "label were filled from the pixels round them before reading",
}


def without_marks(rgb: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """A (3, H, W) 8-bit composite with its frame (:func:`without_frame`) and its scale
    bars and labels (:func:`without_annotations`) filled, and the kinds of mark it had (keys
    of ``MARK_NOTES``)."""
    rgb, framed = without_frame(rgb)
    rgb, filled = without_annotations(rgb)
    return rgb, [kind for kind, n in (("frame", framed), ("scale bar", filled)) if n]


def warn_of_marks(what, marks: list[str], total: int) -> None:
    """One warning per kind of mark filled in ``marks`` (one entry per crop that had it) of
    ``total`` crops of ``what``."""
    for kind, note in MARK_NOTES.items():
        if kind in marks:
            log.warning("crop dataset %s: %d of %d crops %s", what, marks.count(kind), total,
                        note)
