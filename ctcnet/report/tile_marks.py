"""Marks on a tile that say where its pixels come from: those past the frame the event was cut
from (:func:`outside_frame`, hatched by :func:`hatch_outside`) and the event's own bounding
box (:func:`event_boxes`, outlined by :func:`outline_boxes`).

A crop of an event at the frame border is filled past the border with the frame's background
(:mod:`ctcnet.detect.cropping`: never mirrored). Drawn like the rest, that fill looks like
more background, so a reviewer cannot tell a cell cut by the border from a whole one beside
empty glass; the border is where the review of a cut cell turns. The hatch covers the fill,
so the frame's own pixels alone look like data.

An event's intensities are read over its whole object, and detection can merge a CTC with a
leukocyte beside it into one object: its CD45 then reads over its CK although the CTC has
none. The ticks mark the event's centre (which lies between merged cells); the box shows what
the event holds, so a reviewer sees that the numbers are those of two cells.

Each crop pixel's place in the frame is taken from how the crop was cut
(:func:`crop_pixel_positions`: :mod:`ctcnet.detect.cropping`'s window and resampling weights),
so the marks fall where the crop's pixels came from. The frame's shape is the cartridge's (a
frame more than a pixel off it is not read).
"""

from __future__ import annotations

import numpy as np

from ctcnet.detect.cropping import scale_factor, window_size, window_weights

# The hatch: diagonal stripes of this colour, one crop pixel of HATCH_PERIOD on (drawn before
# a tile's zoom), the rest dark: nothing a marker's colour or a grey level reads as.
HATCH_COLOUR = (0.30, 0.30, 0.55)
HATCH_PERIOD = 4


def crop_pixel_positions(size: int, model_pixel_um: float | None,
                         scan_pixel_um: float | None) -> tuple[np.ndarray, int]:
    """Where the pixels of a ``size`` crop lie along one axis of its frame: (``size``
    positions in frame pixels from the first pixel of the window cut round the event, the
    window's size). The window starts at ``rint(centre) - window // 2``
    (:func:`ctcnet.detect.cropping.window_origins`); a crop pixel lies at the mean position of
    the window pixels its resampling weights read."""
    window = window_size(size, model_pixel_um, scan_pixel_um)
    weights = window_weights(window, scale_factor(scan_pixel_um, model_pixel_um), size)
    if weights is not None:
        positions = weights @ np.arange(window, dtype=np.float64) / weights.sum(axis=1)
    else:  # cut as it is (no resampling), centre-cut or padded to the crop
        positions = np.arange(size, dtype=np.float64) + (window - size) // 2
    return positions, window


def _frame_positions(centre, size: int, model_pixel_um, scan_pixel_um) -> np.ndarray:
    """(N, size) frame positions of each crop's pixels along one axis (``centre``: (N,))."""
    positions, window = crop_pixel_positions(size, model_pixel_um, scan_pixel_um)
    first = np.rint(np.asarray(centre, np.float64)) - window // 2
    return first[:, None] + positions[None, :]


def outside_frame(x, y, frame_shape, size: int, model_pixel_um: float | None,
                  scan_pixel_um: float | None) -> np.ndarray:
    """(N, size, size) bool: the pixels of each crop cut round (x, y) (frame pixels, as the
    events table gives them) that lie outside a frame of ``frame_shape`` (height, width)."""
    height, width = (int(v) for v in frame_shape)
    cols = _frame_positions(x, size, model_pixel_um, scan_pixel_um)
    rows = _frame_positions(y, size, model_pixel_um, scan_pixel_um)
    out_col = (cols < -0.5) | (cols > width - 0.5)
    out_row = (rows < -0.5) | (rows > height - 0.5)
    return out_row[:, :, None] | out_col[:, None, :]


def event_boxes(boxes, x, y, size: int, model_pixel_um: float | None,
                scan_pixel_um: float | None) -> np.ndarray:
    """(N, 4) int: each event's bounding box (``boxes``: (N, 4) frame pixels x0, y0, x1, y1,
    the events table's ``bbox_*``, the ends exclusive) in the pixels of its crop cut round
    (x, y): the first and last column, the first and last row whose pixel lies on the box;
    they may lie past the crop's edge (-1, ``size``)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    out = []
    for centre, lo, hi in ((x, boxes[:, 0], boxes[:, 2]), (y, boxes[:, 1], boxes[:, 3])):
        positions = _frame_positions(centre, size, model_pixel_um, scan_pixel_um)
        # The crop pixels whose place lies within the box's pixels (edges at -0.5, +0.5).
        inside = (positions >= lo[:, None] - 0.5) & (positions <= hi[:, None] - 0.5)
        first = np.where(inside.any(axis=1), inside.argmax(axis=1),
                         np.where(positions[:, 0] > hi - 0.5, -1, size))
        last = np.where(inside.any(axis=1), size - 1 - inside[:, ::-1].argmax(axis=1), first)
        out += [first, last]
    return np.stack(out, axis=1).astype(np.int64)


def outline_boxes(panels: np.ndarray, boxes: np.ndarray, colours, scale: int = 1) -> None:
    """A dotted outline of each tile's box ((N, 4): first and last column, first and last row
    of :func:`event_boxes`, in crop pixels) on every panel of ``panels`` ((N, P, H, W, 3),
    zoomed ``scale`` times), in the panel's colour of ``colours`` ((P, 3)); a side past the
    panel's edge is left out. In place."""
    h, w = panels.shape[2:4]
    colour = np.asarray(colours, np.float32)[:, None, :]          # (P, 1, 3)
    dots_w = (np.arange(w) // max(1, scale)) % 2 == 0
    dots_h = (np.arange(h) // max(1, scale)) % 2 == 0
    for n, (c0, c1, r0, r1) in enumerate(np.asarray(boxes, np.int64)):
        c0, c1, r0, r1 = c0 * scale, (c1 + 1) * scale - 1, r0 * scale, (r1 + 1) * scale - 1
        cols = slice(max(c0, 0), min(c1, w - 1) + 1)
        rows = slice(max(r0, 0), min(r1, h - 1) + 1)
        for row in (r0, r1):
            if 0 <= row < h:
                panels[n, :, row, cols][:, dots_w[cols]] = colour
        for col in (c0, c1):
            if 0 <= col < w:
                panels[n, :, rows, col][:, dots_h[rows]] = colour


def hatch_outside(panels: np.ndarray, mask: np.ndarray) -> None:
    """Hatch the pixels of ``mask`` ((N, H, W): outside the frame) on every panel of
    ``panels`` ((N, P, H, W, 3) in [0, 1]). In place."""
    if not mask.any():
        return
    h, w = mask.shape[1:]
    stripes = ((np.arange(h)[:, None] + np.arange(w)[None, :]) % HATCH_PERIOD) == 0
    colour = np.where(stripes[..., None], np.asarray(HATCH_COLOUR, np.float32), 0.0)
    region = mask[:, None, :, :, None]                            # (N, 1, H, W, 1)
    panels[:] = np.where(region, colour[None, None], panels)
