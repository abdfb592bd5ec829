"""Bring crops to model scale, and cut them around detected events of a frame.

:func:`to_model_scale` is the one way any crop reaches the model (predict on frames and on
crop datasets, evaluate, training from a crop folder, export calibration): resample by
``data pixel size / model pixel size`` (antialiased when shrinking, so a 0.02 um/px photo of
one cell hundreds of pixels across averages its pixels instead of aliasing), then centre-cut
or pad to the model's crop size. A crop then covers the same physical field of view as the
model's training crops. :func:`report_fit` logs how many crops had to be padded or cut.

On frames, :func:`extract_crops` cuts a window a little wider than the model's field of view
around each event and brings it to model scale with :func:`to_model_scale`'s weights, batched
over the frame's events (:func:`resampled_crops`: the same numbers up to float rounding). Each
crop keeps its own window's grid. Resampling a frame of finer pixels (0.45 um/px against 0.64)
once and cutting the crops from it is about half the work (the events' windows overlap), but it
moves each crop's pixels by up to half a model pixel, and that cost counts: on the 20 counting
cartridges (0.47-0.58 um/px) the automatic CTC count was within tolerance on 11 instead of 14,
with 0.014 false CTC calls per 1,000 events instead of 0.009 (docs/robustness_matrix.md; the
cartridge rule was fitted on crops cut a window per event). Whatever a crop lacks (the part of a
window past the frame border, the margin around a crop smaller than the field of view) is
filled with **background** (:func:`background_fill`): per channel the level and noise measured
on the pixels the crop has, drawn as a fixed noise pattern. Never by mirroring: a mirror turns
a cell at the frame border into two, and a tight export of one cell into a 3x3 tile of cells;
constant padding would fake a noise-free region that the model's per-crop noise estimate reads
as the background. A background that is clipped to black measures as zero noise and is filled
with zeros, as the file shows it. Such crops are reported as ``padded``; the object itself
touching the border is ``edge_cut`` (from detection).

:func:`to_model_scale` also takes torch tensors (frames on a GPU, :mod:`ctcnet.detect.device`)
and then computes with the same weights on the tensor's device, so both paths resample alike.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np

from ctcnet.core.robust import (
    NORMAL_QUANTILES,
    background_from_percentiles,
    percentiles_and_range,
)
from ctcnet.detect.crop_request import checked_request
from ctcnet.detect.resampling import (
    antialias_matrix,
    bilinear,
    bilinear_matrix,
    is_tensor,
    resample,
    resampled_size,
)
from ctcnet.errors import InputError

log = logging.getLogger(__name__)


def window_size(crop_size: int, model_pixel_um: float | None, scan_pixel_um: float | None
                ) -> int:
    """Scan pixels cut around an event so the model's field of view (``crop_size`` at
    ``model_pixel_um``) is covered: ``crop_size`` when the pixel sizes agree, else one scan
    pixel more than the field of view, so resampling never leaves a gap to pad."""
    if not model_pixel_um or not scan_pixel_um or model_pixel_um == scan_pixel_um:
        return int(crop_size)
    return int(math.ceil(crop_size * float(model_pixel_um) / float(scan_pixel_um))) + 1


def window_origins(x: np.ndarray, y: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (row, col) of windows centred on (x, y); the centre pixel is window//2."""
    top = np.rint(np.asarray(y, dtype=np.float64)).astype(np.int64) - window // 2
    left = np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64) - window // 2
    return top, left


def place_windows(x: np.ndarray, y: np.ndarray, window: int, h: int, w: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(top, left, padded) of windows centred on (x, y) in an (h, w) frame; ``padded``: the
    window reaches past the frame border (so it is filled with background)."""
    top, left = window_origins(x, y, window)
    return top, left, (top < 0) | (left < 0) | (top + window > h) | (left + window > w)


def extract_windows(frame: np.ndarray, x: np.ndarray, y: np.ndarray, window: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Cut (N, C, window, window) windows centred on (x, y) from a (C, H, W) frame.

    Returns the windows (float32 for an integer frame, else the frame's dtype) and a bool (N,)
    array: True where the window reached past the frame border and that part was filled with
    background (:func:`background_fill`).
    """
    frame = np.asarray(frame)
    top, left, padded = place_windows(x, y, window, *frame.shape[1:])
    return cut_windows(frame, top, left, window), padded


def cut_windows(frame: np.ndarray, top: np.ndarray, left: np.ndarray, window: int
                ) -> np.ndarray:
    """(N, C, window, window) windows with top-left corners (top, left) in a (C, H, W) frame,
    the part of a window past the frame border filled with background (:func:`window_dtype`)."""
    c, h, w = frame.shape
    out = np.empty((len(top), c, window, window), dtype=window_dtype(frame.dtype))
    # One slice copy per window: half the time of a fancy-index gather over a sliding-window
    # view (7 against 12-16 ms for 290 windows of 67 px on a CellSearch frame). Python ints:
    # numpy scalars would make each slice several times slower to set up.
    for i, (t, lf) in enumerate(zip(top.tolist(), left.tolist())):
        if t >= 0 and lf >= 0 and t + window <= h and lf + window <= w:
            out[i] = frame[:, t:t + window, lf:lf + window]
        else:
            out[i] = border_window(frame, t, lf, window)
    return out


def window_dtype(dtype) -> np.dtype:
    """Windows' dtype from a frame of ``dtype``: float32 for counts, whose border fill is so the
    same for a uint16 frame (a notebook's) as for its float32 copy (a reader's, a device's)."""
    return np.dtype(np.float32) if np.issubdtype(dtype, np.integer) else np.dtype(dtype)


def border_window(frame: np.ndarray, top: int, left: int, window: int) -> np.ndarray:
    """One (C, window, window) window reaching past the frame border: the part inside the frame
    as it is, the rest background measured on that part (:func:`background_fill`, the same
    numbers, without gathering or masking the window: the part inside is a rectangle)."""
    c, h, w = frame.shape
    r0, r1 = max(top, 0), min(top + window, h)
    c0, c1 = max(left, 0), min(left + window, w)
    if r0 >= r1 or c0 >= c1:  # wholly outside (never from detection): the general fill
        rows, cols, inside = border_gather(np.array([top]), np.array([left]), window, h, w)
        gathered = frame[:, rows[:, :, None], cols[:, None, :]].transpose(1, 0, 2, 3)
        return background_fill(gathered.astype(window_dtype(frame.dtype), copy=False),
                               inside)[0]
    part = frame[:, r0:r1, c0:c1]
    levels = fill_levels(part.reshape(c, -1).astype(np.float32, copy=False))
    out = np.empty((c, window, window), window_dtype(frame.dtype))
    inside = (r0 - top, r1 - top, c0 - left, c1 - left)
    out[:, inside[0]:inside[1], inside[2]:inside[3]] = part
    # Only the bands round the part are drawn (what fill_values would draw there): drawing
    # the whole window and overwriting its inside took a third of a border window's time.
    pattern = _fill_pattern(window, window)
    for rows, cols in _bands_round(inside, window):
        if out.dtype == np.float32:  # fill_block's numbers, made in place
            _fill_into(out[:, rows, cols], levels, pattern[rows, cols])
        else:
            out[:, rows, cols] = fill_block(levels, pattern[rows, cols], out.dtype)
    return out


def _fill_into(target: np.ndarray, levels: tuple[np.ndarray, ...], pattern: np.ndarray
               ) -> None:
    """:func:`fill_block` of float32 into ``target`` ((C, h, w) float32): the same float64
    steps (level plus noise times the pattern, clipped), in one buffer, the last cast to
    float32 made by the assignment: a border window's fill took a third of its time in
    the temporaries."""
    level, noise, lowest, highest = levels
    fill = np.multiply(noise[:, None, None], pattern[None], dtype=np.float64)
    fill += level[:, None, None]
    np.clip(fill, lowest[:, None, None], highest[:, None, None], out=fill)
    target[...] = fill


def _bands_round(inside: tuple[int, int, int, int], size: int) -> list[tuple[slice, slice]]:
    """The (rows, cols) blocks of a (size, size) window outside its rectangle ``inside``
    ((row start, stop, col start, stop)): above, below, left and right of it, none empty."""
    r0, r1, c0, c1 = inside
    blocks = [(slice(0, r0), slice(0, size)), (slice(r1, size), slice(0, size)),
              (slice(r0, r1), slice(0, c0)), (slice(r0, r1), slice(c1, size))]
    return [(rows, cols) for rows, cols in blocks
            if rows.stop > rows.start and cols.stop > cols.start]


def border_gather(top: np.ndarray, left: np.ndarray, window: int, h: int, w: int):
    """Row and column indices (B, window) of windows at (top, left), clamped into an (h, w)
    frame, and the (B, window, window) mask of the pixels truly inside it."""
    span = np.arange(window)
    rows, cols = top[:, None] + span, left[:, None] + span
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    return np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1), inside


# A fixed standard-normal pattern for the filled pixels: the same input always gives the same
# crop (and so the same call), on every path.
_FILL_SEED = 20261125


@functools.lru_cache(maxsize=8)
def _fill_pattern(h: int, w: int) -> np.ndarray:
    pattern = np.random.default_rng(_FILL_SEED).standard_normal((h, w)).astype(np.float32)
    pattern.flags.writeable = False  # shared between calls and threads
    return pattern


def fill_pattern(h: int, w: int) -> np.ndarray:
    """The (h, w) float32 standard-normal pattern background fills draw their noise from."""
    return _fill_pattern(int(h), int(w)).copy()


def fill_values(measured: np.ndarray, size: int | tuple[int, int], dtype) -> np.ndarray:
    """(C, size, size) background drawn from (C, M) float32 ``measured`` pixels, in ``dtype``:
    per channel their level plus their noise times the fixed pattern, kept within their range
    (a clipped background stays at its floor; integer data keep their range)."""
    h, w = (size, size) if np.isscalar(size) else size
    return fill_block(fill_levels(measured), _fill_pattern(int(h), int(w)), dtype)


def fill_levels(measured: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per channel of (C, M) float32 ``measured`` pixels: the background's level and noise,
    and the pixels' lowest and highest value (each (C,) float64), as :func:`fill_block`
    draws from them."""
    # numpy's linear percentiles (ctcnet.core.robust), not the model's nearest rank: the fill
    # of every crop at a frame border, and so the golden predict events, were made with them.
    (q_low, q_high), lowest, highest = percentiles_and_range(measured, (10, 30))
    level, noise = background_from_percentiles(q_low, q_high)
    return level, noise, lowest, highest


def fill_block(levels: tuple[np.ndarray, ...], pattern: np.ndarray, dtype) -> np.ndarray:
    """(C, h, w) background in ``dtype`` from :func:`fill_levels` and an (h, w) block of the
    fixed pattern: each pixel on its own, so any block of the pattern gives that block of the
    whole fill."""
    level, noise, lowest, highest = levels
    fill = level[:, None, None] + noise[:, None, None] * pattern[None]
    fill = np.clip(fill, lowest[:, None, None], highest[:, None, None]).astype(np.float32)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(fill), info.min, info.max).astype(dtype)
    return fill.astype(dtype, copy=False)


def cropping_contract() -> dict:
    """How a frame's event becomes a model-scale crop, as data a port can check its own code
    against (the ONNX file's ``cropping`` metadata; docs/deploying.md says it in prose): the
    window's side and origin, the background fill's percentiles, formula and fixed pattern,
    and the resize. Built from the constants this module crops with, so it cannot drift."""
    z_low, z_high = (NORMAL_QUANTILES[q] for q in (10.0, 30.0))
    return {
        "window_side": "crop_size where pixel_size_um equals the scanner's (as floats, "
                       "exactly), else ceil(crop_size * pixel_size_um / scanner_um) + 1",
        "window_origin": "round_half_even(y) - side // 2, round_half_even(x) - side // 2 "
                         "(the event's pixel at index side // 2)",
        "border_fill": {
            "percentiles": [10, 30], "percentile_method": "linear",
            "measured_on": "the window's pixels inside the frame, per channel",
            "noise": f"(q30 - q10) / {z_high - z_low:.7f}",
            "level": f"q30 + {-z_high:.7f} * noise",
            "pixel": "level + noise * pattern[row, col], clipped to the in-frame pixels' "
                     "minimum and maximum, kept float32",
            "pattern": {"generator": "numpy.random.default_rng (PCG64)", "seed": _FILL_SEED,
                        "draw": "standard_normal((side, side)).astype(float32)"},
        },
        "resize": {
            "size": "m = max(crop_size, round_half_even(side * r)), r = scanner_um / "
                    "pixel_size_um computed first (float64: the product rounds otherwise at "
                    "exact halves)",
            "kernel": "bilinear, half-pixel centres (align_corners=False); when shrinking "
                      "the tent widened by side / m and renormalised (antialias)",
            "keep": "rows and columns (m - crop_size) // 2 to (m - crop_size) // 2 + "
                    "crop_size - 1",
            "dtype": "float32",
        },
        # A crop folder's crops are no windows of a frame: resized alike, then fitted.
        "crop_folder": {
            "resize": "to max(1, round_half_even(h * r)) rows and likewise w columns, r = "
                      "its pixel size / pixel_size_um computed first as above, the kernel as "
                      "resize above, without resize's max with crop_size (a crop that comes "
                      "out smaller is fitted as smaller says)",
            "larger": "centre-cut: rows and columns (m - crop_size) // 2 on",
            "smaller": f"placed at row (crop_size - h) // 2, column (crop_size - w) // 2 of a "
                       f"crop_size x crop_size crop; the margin filled as border_fill, measured "
                       f"on the crop's outer ring of min({_RING_PX}, h // 2, w // 2) pixels, the "
                       f"pattern of side crop_size, clipped to the ring's minimum and maximum",
        },
    }


def background_fill(crops, inside, measure=None):
    """(N, C, H, W) crops with the pixels outside ``inside`` ((N, H, W) bool) replaced by
    background: per crop and channel the level and noise of ``measure`` (default: the inside
    pixels) times a fixed noise pattern. Same dtype as ``crops`` (integers rounded and clipped
    to their range); numpy only."""
    crops = np.asarray(crops)
    out = crops.astype(np.float32)
    for i in range(len(crops)):
        mask = np.asarray(inside[i], bool)
        where = mask if measure is None else np.asarray(measure[i], bool)
        if not where.any():  # nothing to measure: the whole window lies outside
            where = np.ones_like(mask)
        fill = fill_values(out[i][:, where], crops.shape[-2:], np.float32)
        out[i] = np.where(mask[None], out[i], fill)
    if np.issubdtype(crops.dtype, np.integer):
        info = np.iinfo(crops.dtype)
        return np.clip(np.rint(out), info.min, info.max).astype(crops.dtype)
    return out.astype(crops.dtype, copy=False)


# Width of the crop border ring whose pixels give the background a smaller crop is padded with:
# the corners and edges of a tight crop are background even when the cell fills most of it.
_RING_PX = 2


def centre_fit(crops, size: int) -> tuple:
    """Centre-cut or background-pad (N, C, H, W) crops to (N, C, size, size).

    A side longer than ``size`` is centre-cut first (an export long one way and short the
    other too); then a shorter side's margin is filled with the background of the cut crop's
    outer ring (:func:`background_fill`, its pattern of side ``size``), as the ONNX file's
    ``cropping.crop_folder`` tells a port. Returns the crops, pixels cut, pixels padded.
    """
    h, w = crops.shape[-2:]
    cut = max(0, h - size) + max(0, w - size)
    crops = crops[..., max(0, (h - size) // 2):, max(0, (w - size) // 2):][..., :size, :size]
    h, w = crops.shape[-2:]
    ph, pw = size - h, size - w
    if (ph or pw) and is_tensor(crops):  # only crop datasets pad, and they come as numpy
        raise ValueError("padding is done on numpy crops only")
    if ph or pw:
        crops = np.asarray(crops, np.float32)
        placed = np.zeros((*crops.shape[:2], size, size), np.float32)
        top, left = ph // 2, pw // 2
        placed[..., top:top + h, left:left + w] = crops
        inside = np.zeros((size, size), bool)
        inside[top:top + h, left:left + w] = True
        ring = inside.copy()
        # At least 1: a crop 1 px thin has a ring of none at 0, and its margin was filled
        # at the zeros placed round it (a speck on black), not at its own background.
        r = max(1, min(_RING_PX, h // 2, w // 2))
        ring[top + r:top + h - r, left + r:left + w - r] = False
        n = len(crops)
        crops = background_fill(placed, np.broadcast_to(inside, (n, size, size)),
                                np.broadcast_to(ring, (n, size, size)))
    return crops, cut, ph + pw


def to_model_scale(crops, data_pixel_um: float | None, model_pixel_um: float | None,
                   crop_size: int) -> tuple:
    """(N, C, H, W) crops at ``data_pixel_um`` -> (N, C, crop_size, crop_size) float32 at
    ``model_pixel_um``: resample, then centre-cut or pad with background (padding: numpy crops
    only).
    Torch tensors come back as tensors on their device.

    Returns the crops and the pixels cut and padded per crop (both axes). Without pixel
    sizes (either None) no resampling is done; a size of 0 or less is refused (a caller's
    -0.64 made every crop a padded speck, called debris).
    """
    for what, um in (("the crops' pixel size", data_pixel_um),
                     ("the model's pixel size", model_pixel_um)):
        if um is not None and not (math.isfinite(float(um)) and float(um) > 0):
            raise InputError(f"{what} must be a positive number of micrometres, got {um!r}")
    if int(crop_size) < 1:
        raise InputError(f"the crop size must be a whole number of pixels, got {crop_size!r}")
    factor = 1.0
    if data_pixel_um and model_pixel_um:
        factor = float(data_pixel_um) / float(model_pixel_um)
    crop_size = int(crop_size)
    h, w = np.shape(crops)[-2:]
    size = resampled_size(h, w, factor)
    if size != (h, w) and crop_size <= min(size) and size[0] >= h and size[1] >= w:
        # Enlarged, then centre-cut: interpolate just the pixels that are kept (the frame
        # path's case when the scanner's pixels are larger than the model's).
        top, left = (size[0] - crop_size) // 2, (size[1] - crop_size) // 2
        fitted = bilinear(crops, size, slice(top, top + crop_size),
                          slice(left, left + crop_size))
        cut = (size[0] - crop_size) + (size[1] - crop_size)
        return _contiguous(fitted), cut, 0
    fitted, cut, padded = centre_fit(resample(crops, factor), crop_size)
    return _contiguous(fitted), cut, padded


def _contiguous(crops):
    if is_tensor(crops):
        return crops.float().contiguous()
    return np.ascontiguousarray(crops, dtype=np.float32)


def report_fit(what: str, n: int, cut: int, padded: int, padding_expected: bool = False
               ) -> None:
    """Log how many of ``n`` crops were cut or padded to the model's field of view (a note,
    not a warning, where padding is expected: crops each fitted to their cell are smaller than
    the field of view by design)."""
    if padded:
        log.log(logging.INFO if padding_expected else logging.WARNING,
                "%s: %d of %d crops were smaller than the model's field of view after "
                "resampling and were padded with their background", what, padded, n)
    if cut:
        log.info("%s: %d of %d crops were larger than the model's field of view; their "
                 "centre was used", what, cut, n)


def extract_crops(frame: np.ndarray, x: np.ndarray, y: np.ndarray, crop_size: int,
                  model_pixel_um: float | None = None, scan_pixel_um: float | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready crops (N, C, crop_size, crop_size) float32 around (x, y), plus ``padded``.

    With both pixel sizes given and different, a window covering the model's field of view is
    cut and brought to model scale as :func:`to_model_scale` does (:func:`resampled_crops`:
    the same numbers up to float rounding, batched over the frame's events). A request that
    would make crops up (a frame not (C, H, W), positions not finite or off the frame, one
    pixel size alone) is refused in words (:func:`~ctcnet.detect.crop_request.checked_request`).
    """
    frame = np.asarray(frame)
    x, y = checked_request(frame.shape, x, y, model_pixel_um, scan_pixel_um)
    window = window_size(crop_size, model_pixel_um, scan_pixel_um)
    along = window_weights(window, scale_factor(scan_pixel_um, model_pixel_um), int(crop_size))
    if along is not None:
        return resampled_crops(frame, x, y, along)
    windows, padded = extract_windows(frame, x, y, window)
    crops, _, _ = to_model_scale(windows, scan_pixel_um, model_pixel_um, crop_size)
    return crops, padded


def scale_factor(scan_pixel_um: float | None, model_pixel_um: float | None) -> float:
    """Model pixels per scan pixel (1 when either size is unknown)."""
    if scan_pixel_um and model_pixel_um:
        return float(scan_pixel_um) / float(model_pixel_um)
    return 1.0


@functools.lru_cache(maxsize=16)
def window_weights(window: int, factor: float, crop_size: int) -> np.ndarray | None:
    """(crop_size, window) float32 weights that take a window to its model-scale crop along
    either axis, as :func:`to_model_scale` resamples and centre-cuts it: bilinear when enlarging,
    antialiased when shrinking, only the output pixels the centre cut keeps. None when no
    resampling is needed or the result would be padded (those go through
    :func:`to_model_scale`)."""
    size = resampled_size(window, window, factor)[0]
    if size == window or size < crop_size:
        return None
    keep = slice((size - crop_size) // 2, (size - crop_size) // 2 + crop_size)
    if size > window:
        weights = bilinear_matrix(window, size, keep)
    else:
        weights = antialias_matrix(window, size)[keep]
    weights.flags.writeable = False  # shared between calls and threads
    return weights


# Events resampled together: their windows (270 KB each at 0.45 um/px) stay in the cache
# between the two passes (8 was fastest of 2 to 64 on a frame of 0.45 um/px: 0.76 against
# 1.10 ms an event at 32, 1.23 at 64), and memory does not grow with a crowded frame.
_CHUNK = 8


def resampled_crops(frame: np.ndarray, x: np.ndarray, y: np.ndarray, along: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Crops (N, C, crop, crop) float32 of windows around (x, y), each taken to model scale by
    ``along`` ((crop, window) weights, :func:`window_weights`) on both axes, and ``padded``.

    Per window this is ``along @ window @ along.T`` (what :func:`to_model_scale` computes, up
    to float rounding), arranged so that each pass is one large product over many windows: the
    windows are laid out row by row ((window rows, N, C, window columns)), so the row pass is a
    sparse product (a weight row has two or three taps) streaming over whole rows, and the
    column pass a few matrix products over every row of every window, one per band of the
    weights (:func:`weight_bands`). Done per window, as small dense products (and with the
    border fill before :func:`~ctcnet.core.robust.percentiles_and_range`), cropping took 4.2
    to 4.6 times as long at 0.45 um/px and 2.5 times at 0.78.
    """
    from scipy import sparse  # detection's dependency; imported here to keep this module light

    c, h, w = frame.shape
    crop, window = along.shape
    top, left, padded = place_windows(x, y, window, h, w)
    out = np.empty((len(top), c, crop, crop), np.float32)
    rows = sparse.csr_matrix(along)
    bands = weight_bands(along)
    # One buffer of each pass's input and output for every chunk: made afresh per chunk
    # (2 and 1 MB at 0.45 um/px), each was mapped and faulted in anew.
    laid_buffer = np.empty((window, min(_CHUNK, len(top)), c, window), np.float32)
    both_buffer = np.empty((crop * min(_CHUNK, len(top)) * c, crop), np.float32)
    for start in range(0, len(top), _CHUNK):
        t, lf = top[start:start + _CHUNK].tolist(), left[start:start + _CHUNK].tolist()
        n = len(t)
        laid = laid_buffer if n == laid_buffer.shape[1] else laid_buffer[:, :n]
        for i in range(n):
            inside = t[i] >= 0 and lf[i] >= 0 and t[i] + window <= h and lf[i] + window <= w
            part = (frame[:, t[i]:t[i] + window, lf[i]:lf[i] + window] if inside
                    else border_window(frame, t[i], lf[i], window))
            laid[:, i] = part.transpose(1, 0, 2)
        by_rows = (rows @ laid.reshape(window, -1)).reshape(crop * n * c, window)
        both = both_buffer[:crop * n * c]
        for (o0, o1), (i0, i1) in bands:
            np.matmul(by_rows[:, i0:i1], along[o0:o1, i0:i1].T, out=both[:, o0:o1])
        out[start:start + n] = both.reshape(crop, n, c, crop).transpose(1, 2, 0, 3)
    return out, padded


def weight_bands(weights: np.ndarray, parts: int = 4) -> list[tuple[tuple[int, int],
                                                                     tuple[int, int]]]:
    """``weights`` ((outputs, inputs), banded) split into ``parts`` blocks of output pixels,
    each with the range of input pixels it reaches: ((out start, stop), (in start, stop)).

    A column pass by blocks multiplies a quarter of the zeros a dense product does: 1.4 to 3
    times faster for a 116-pixel window on a busy machine (8 blocks about as fast, 16 slower
    again: products too small to run at speed).
    """
    n_out = len(weights)
    edges = np.linspace(0, n_out, min(parts, n_out) + 1).astype(int)
    bands = []
    for o0, o1 in zip(edges[:-1].tolist(), edges[1:].tolist()):
        used = np.flatnonzero(weights[o0:o1].any(axis=0))
        bands.append(((o0, o1), (int(used[0]), int(used[-1]) + 1)))
    return bands
