"""Where a tile reaches past its frame: the pixels of a crop that lie outside the frame the event
was cut from (:func:`outside_frame`), hatched on every panel (:func:`hatch_outside`).

A crop of an event at the frame border is filled past the border with the frame's background
(:mod:`ctcnet.detect.cropping`: never mirrored). Drawn like the rest, that fill looks like
more background, so a reviewer cannot tell a cell cut by the border from a whole one beside
empty glass; the border is where the review of a cut cell turns. The hatch covers the fill,
so the frame's own pixels alone look like data.
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
