"""What a request to cut crops from a frame must be (:func:`ctcnet.detect.cropping.extract_crops`,
called from Python with a frame and positions of one's own): checked before any window is cut,
and refused in words where the crops would be made up without a sign of it.
"""

from __future__ import annotations

import numpy as np

from ctcnet.errors import InputError


def checked_request(shape: tuple[int, ...], x, y, model_pixel_um: float | None,
                    scan_pixel_um: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a request to cut crops from a frame of ``shape`` (a numpy array's or an
    uploaded tensor's), float64 arrays of one length. Refused: a frame that is not (C, H, W)
    (a channels-last frame cut 1036 planes of crops); positions that are not one finite pair
    an event (a NaN position, a crop of anywhere); a position off the frame (its crop all
    background, called all the same); one pixel size without the other (the crop cut at the
    scan's scale, the cell read at the wrong size)."""
    shape = tuple(shape)
    x, y = (np.atleast_1d(np.asarray(v, np.float64)) for v in (x, y))
    if len(shape) != 3 or shape[-1] <= 8 < shape[0]:  # (a panel: 3-6 planes)
        raise InputError(f"a frame is (channels, height, width), got shape {shape}" +
                         (": channels last? np.moveaxis(frame, -1, 0)" if len(shape) == 3
                          else ""))
    if x.ndim != 1 or x.shape != y.shape:
        raise InputError(f"x and y are one position an event, of one length: got shapes "
                         f"{x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InputError("x and y hold a position that is not finite: no window to cut there")
    height, width = shape[1:]
    # (a pixel's centre is its index: the frame spans -0.5 to width - 0.5)
    off = (x < -0.5) | (x > width - 0.5) | (y < -0.5) | (y > height - 0.5)
    if off.any():
        first = int(np.flatnonzero(off)[0])
        raise InputError(f"{int(off.sum())} of the {len(x)} positions lie off the "
                         f"{width} x {height} frame (the first: x {x[first]:g}, y "
                         f"{y[first]:g}): x is the column, y the row, in the frame's pixels")
    if (model_pixel_um is None) != (scan_pixel_um is None):
        raise InputError("give both model_pixel_um and scan_pixel_um, or neither (the crops "
                         "then at the frame's own scale): with one, no scale can be known")
    return x, y
