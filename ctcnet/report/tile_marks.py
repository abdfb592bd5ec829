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

Crop pixel ``j`` lies at frame pixel ``rint(centre) + (j + 0.5 - size / 2) * step`` (``step``:
frame pixels per crop pixel), as crops are cut round the event's nearest frame pixel
(:func:`ctcnet.detect.cropping.window_origins`); good to about a pixel.
"""

from __future__ import annotations

import numpy as np

# The hatch: diagonal stripes of this colour, one pixel of HATCH_PERIOD on (on the tile as
# drawn, after its zoom), the rest dark: nothing a marker's colour or a grey level reads as.
HATCH_COLOUR = (0.30, 0.30, 0.55)
HATCH_PERIOD = 4


def outside_frame(x, y, frame_shape, size: int, scan_px_per_crop_px: float) -> np.ndarray:
    """(N, size, size) bool: the pixels of each crop centred on (x, y) (frame pixels, as the
    events table gives them) that lie outside a frame of ``frame_shape`` (height, width);
    ``scan_px_per_crop_px``: the frame's pixels per crop pixel (model pixel size over the
    scan's). Crops are cut round the event's nearest frame pixel, as
    :func:`ctcnet.detect.cropping.window_origins` does; the mapping is good to about a
    pixel."""
    x = np.rint(np.asarray(x, np.float64))[:, None]
    y = np.rint(np.asarray(y, np.float64))[:, None]
    offsets = (np.arange(size) + 0.5 - size / 2.0) * float(scan_px_per_crop_px)
    height, width = (int(v) for v in frame_shape)
    cols = x + offsets[None, :]                                   # (N, size)
    rows = y + offsets[None, :]
    out_col = (cols < -0.5) | (cols > width - 0.5)
    out_row = (rows < -0.5) | (rows > height - 0.5)
    return out_row[:, :, None] | out_col[:, None, :]


def event_boxes(boxes, x, y, size: int, scan_px_per_crop_px: float) -> np.ndarray:
    """(N, 4) int: each event's bounding box (``boxes``: (N, 4) frame pixels x0, y0, x1, y1,
    as the events table's ``bbox_*``) in the pixels of its crop centred on (x, y): first and
    last column, first and last row; they may lie past the crop's edge."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    centre = np.stack([np.rint(np.asarray(x, np.float64)), np.rint(np.asarray(y, np.float64))],
                      axis=1)
    step = float(scan_px_per_crop_px)
    corner = lambda v, c: (v - c) / step + size / 2.0 - 0.5  # noqa: E731
    first = np.floor(corner(boxes[:, :2], centre))
    last = np.ceil(corner(boxes[:, 2:], centre))
    return np.concatenate([first[:, :1], last[:, :1], first[:, 1:], last[:, 1:]],
                          axis=1).astype(np.int64)


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


def zoomed(mask: np.ndarray, scale: int) -> np.ndarray:
    """(N, S, S) -> (N, S*scale, S*scale), each pixel a block, as a tile is zoomed."""
    return mask if scale == 1 else mask.repeat(scale, axis=1).repeat(scale, axis=2)


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
