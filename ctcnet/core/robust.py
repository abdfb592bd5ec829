"""Robust background level and noise: the pixels read, the percentile step, the formulas.

The one implementation behind every stage's background and noise: the model's normalisation
(:mod:`ctcnet.nn.normalise`, and so every ONNX export), the background fill of padded crops
(:mod:`ctcnet.detect.cropping`), the pixel-size estimate, detection's noise, the marker guard and
spillover, the evaluation features, the report's display levels and the augmentation. numpy,
or torch where a function says so; this module never imports torch, so the numpy and
ONNX-runtime paths stay torch-free.

* :func:`background_sample`: the pixels a crop's background is read from (a grid over the
  whole crop, or over its outer ring).
* :func:`percentiles`: the one percentile step, over the last axis, numpy's numbers
  (``np.percentile(values, qs, axis=-1, method=method)``; ``mask`` for ``np.nanpercentile``).
* :func:`background_from_percentiles`: the one formula: two low percentiles of Gaussian
  background, read as the standard normal's quantiles, give the noise sd and the level.
  Robust to an object covering up to ~70 % of the pixels read (the 10th and 30th).
* :func:`background_and_noise`: the two together on (..., M) pixel values.
* :func:`median`, :func:`median_and_mad_sigma`: the MAD noise scale, for residuals whose
  median is the background (a frame minus its background map, neighbour differences).

The percentile ``method`` is a parameter because callers read three different statistics and
must keep reading them (``tests/core/test_robust.py`` bounds their difference):

* ``nearest``: the order statistic at rank ``round(q/100 (M-1))``, no interpolation. The
  model's normalisation (torch TopK in every exported ONNX graph, so it is fixed in every
  shipped model and in what each was trained on), and the estimates that must read crops as
  the model does (spillover and the guard, the display levels, :func:`~ctcnet.nn.normalise.
  snr_reference`).
* ``linear``: numpy's default, interpolated between the two neighbouring order statistics. The
  background fill of padded crops and frame borders, the pixel-size estimate, simulated
  tight exports, the evaluation features and the guard's marker quartiles. Measured: reading
  the fill as ``nearest`` moves the golden predict events' probabilities (by up to 5e-4,
  tests/inference/test_golden_predict.py), and reading the features so changes 8 of 240
  feature-classifier calls on simulated crops (the baselines on the committed model cards).
* ``lower``: the order statistic at ``floor(q/100 (M-1))``: the augmentation's median and 10th
  percentile (``qs=(10, 50)``), with which every shipped model's training crops were augmented
  (as the 10th/30th at ``nearest`` its level moves by up to 0.7 noise sd and its noise by
  -21 % to +55 %).

Detection's noise on whole frames stays the MAD (:func:`median_and_mad_sigma`): its residual's
median is the background, and read from the 10th/30th percentiles the golden cartridge gives 97
events for 98.
"""

from __future__ import annotations

import math
import sys

import numpy as np

# The percentiles (0-100) the background formula reads by default.
Q_LOW, Q_HIGH = 10.0, 30.0
# Standard normal quantiles of the percentiles the formula may read, to 7 decimals (the
# numbers every shipped model's normalisation computes with).
NORMAL_QUANTILES = {10.0: -1.2815516, 30.0: -0.5244005, 50.0: 0.0}
# sd of a Gaussian per median absolute deviation.
MAD_TO_SIGMA = 1.4826
METHODS = ("linear", "nearest", "lower")
# The shares of a channel's pixels at 0 read as a background subtracted and clipped: from
# where the 10th percentile the normalisation reads is at the clip, to where too little
# background is left above it to read its noise from (a crop folder's or a frame's reading
# draws it again, ctcnet.detect.clipped_background; an array of crops is said to hold one).
CLIPPED_SHARES = (0.10, 0.80)


def _is_tensor(x) -> bool:
    """A torch tensor (told without importing torch: a tensor exists only once it is)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def background_sample(x, step: int, source: str = "crop", ring_px: int = 10):
    """(N, C, M) pixels the background is read from: every ``step``-th pixel of the whole
    crop, or every ``step // 2``-th of its outer ring ``ring_px`` wide (top and bottom bands,
    then the left and right bands between them). Torch or numpy (plain slicing and
    concatenation, which ONNX exports as such)."""
    n, c, h, w = x.shape
    r = min(int(ring_px), h // 2, w // 2)
    if source == "crop" or r <= 0:
        return x[:, :, ::step, ::step].reshape(n, c, -1)
    # The ring holds ~45 % of an 80 px crop's pixels: read at half the step, it gives more
    # samples than the whole crop at the full step (~700 against 400), so the noise estimate
    # is no noisier.
    step = max(1, step // 2)
    bands = [x[:, :, :r:step, ::step], x[:, :, h - r::step, ::step],
             x[:, :, r:h - r:step, :r:step], x[:, :, r:h - r:step, w - r::step]]
    flat = [b.reshape(n, c, -1) for b in bands]
    if _is_tensor(x):
        return sys.modules["torch"].cat(flat, dim=-1)
    return np.concatenate(flat, axis=-1)


def percentile_indices(count: int, qs=(Q_LOW, Q_HIGH), method: str = "nearest"
                       ) -> tuple[int, ...]:
    """Ranks (0-based, in ascending order) of the percentiles ``qs`` among ``count`` values,
    as numpy's ``nearest`` (round half to even) or ``lower`` (floor) method finds them."""
    last = count - 1
    if method == "nearest":
        return tuple(int(round(q / 100 * last)) for q in qs)
    if method == "lower":
        return tuple(int(math.floor(q / 100 * last)) for q in qs)
    raise ValueError(f"percentile_indices: method {method!r} has no single rank; use "
                     "'nearest' or 'lower'")


def percentiles(values, qs, method: str = "linear", mask=None) -> np.ndarray:
    """Percentiles ``qs`` (0-100) of ``values`` over the last axis, as a (len(qs), ...) array:
    numpy's numbers (``np.percentile(values, qs, axis=-1, method=method)``), faster.

    ``linear`` is computed in float64 (numpy's result for a list of percentiles), ``nearest`` and
    ``lower`` are order statistics in the values' own type. With ``mask`` ((..., M) bool), only
    the masked values count (``np.nanpercentile`` with the others NaN), all rows at once. A row
    with no value (M = 0, nothing masked) or, without a mask, a NaN among its values gives NaN.
    """
    if method not in METHODS:
        raise ValueError(f"unknown percentile method {method!r}; use {METHODS}")
    values = np.asarray(values)
    qs = np.asarray(qs, np.float64).reshape(-1)
    if mask is not None:
        return _masked_percentiles(values, np.asarray(mask, bool), qs, method)
    m = values.shape[-1]
    if m == 0:
        return np.full((len(qs), *values.shape[:-1]), np.nan)
    if method == "linear":
        return _sorted_linear(np.sort(values, axis=-1), qs)[0]
    out = _order_statistics(values, percentile_indices(m, qs, method))
    if np.issubdtype(values.dtype, np.floating):
        nan_rows = np.isnan(values.max(axis=-1))
        if nan_rows.any():
            out = np.where(nan_rows, np.nan, out)
    return out


def percentiles_and_range(values, qs):
    """``linear`` :func:`percentiles` of (..., M) values with each row's minimum and maximum
    (all float64, NaN for a row with a NaN): np.percentile converts, moves the axis and
    partitions, 4 times slower, and that was most of the cost of a crop at a frame border.

    Rows of whole numbers within 16 bits (a scanner's counts, whatever type holds them) are
    counted (:func:`_counted_linear`: the same numbers, 4-5 times faster on the few thousand
    pixels of a frame border's window); others are sorted in their own type (float32 moves
    half the bytes of float64, and numpy's vectorised sort is faster than a partition at the
    places needed)."""
    values = np.asarray(values)
    qs = np.asarray(qs, np.float64).reshape(-1)
    if values.shape[-1] == 0:
        empty = np.full(values.shape[:-1], np.nan)
        return np.full((len(qs), *values.shape[:-1]), np.nan), empty, empty.copy()
    counted = _as_counts(values)
    if counted is not None:
        return _counted_linear(*counted, qs)
    return _sorted_linear(np.sort(values, axis=-1), qs)


# Rows shorter than this are sorted: counting pays only on rows of some thousands of values.
COUNTED_MIN_VALUES = 2048
# Counting costs a pass over the span of values (max - min) as well as over the values, so it
# is used where that span is at most this many times a row's length: a row of 3,000 values
# spanning 0-65535 counted in 0.20 ms a row where a sort takes 0.04; 9,000 spanning 3,000
# in 0.03 ms against 0.13.
COUNTED_MAX_SPAN = 2


def _as_counts(values: np.ndarray):
    """(``values`` as uint16, each row's minimum and maximum) when every value is a whole
    number in 0-65535, and rows are long enough and the span of values short enough to be
    worth counting; else None (sorted)."""
    m = values.shape[-1]
    if m < COUNTED_MIN_VALUES or not np.issubdtype(values.dtype, np.number) or \
            np.issubdtype(values.dtype, np.complexfloating):
        return None
    with np.errstate(invalid="ignore"):
        lowest, highest = values.min(axis=-1), values.max(axis=-1)
        # NaN fails every comparison: such values are sorted (numpy's NaN rules).
        if not ((lowest >= 0).all() and (highest <= 65535).all()
                and (highest - lowest).max() <= COUNTED_MAX_SPAN * m):
            return None
    if np.issubdtype(values.dtype, np.floating) and not np.array_equal(values,
                                                                         np.floor(values)):
        return None
    return (values.astype(np.uint16, copy=False), lowest.astype(np.int64),
            highest.astype(np.int64))


def _counted_linear(counts: np.ndarray, lowest: np.ndarray, highest: np.ndarray,
                    qs: np.ndarray):
    """:func:`_sorted_linear`'s numbers for rows of uint16 ``counts`` whose minimum and maximum
    are ``lowest`` and ``highest``, by counting each row's values instead of sorting them: one
    histogram of every row from its own minimum (the rows side by side in one bincount),
    cumulated along each row; the value of rank r is the first whose cumulated count exceeds
    r."""
    shape = counts.shape[:-1]
    rows = counts.reshape(-1, counts.shape[-1])
    lowest, highest = lowest.reshape(-1), highest.reshape(-1)
    n_rows, n = rows.shape
    below, above, gamma = _linear_ranks(n, qs, 2)
    span = int((highest - lowest).max()) + 1
    offsets = np.arange(n_rows, dtype=np.int64) * span - lowest
    cumulated = np.bincount((rows + offsets[:, None]).ravel(), minlength=n_rows * span) \
        .cumsum()
    # Row i's running counts are cumulated[i * span:(i + 1) * span] less the i * n values of
    # the rows before it, so "values of row i up to v" exceeds rank r first at the first place
    # the whole run exceeds i * n + r: one binary search for every rank of every row (counting
    # the places at or under each rank took a pass over every row's span per rank).
    ranks = np.concatenate([below, above]).astype(np.int64)
    targets = np.arange(n_rows, dtype=np.int64)[None, :] * n + ranks[:, None]
    found = np.searchsorted(cumulated, targets, side="right") \
        - np.arange(n_rows, dtype=np.int64)[None, :] * span + lowest[None, :]
    a = found[:len(qs)].astype(np.float64)
    b = found[len(qs):].astype(np.float64)
    result = _lerp(a, b, gamma).reshape(len(qs), *shape)
    return (result, lowest.astype(np.float64).reshape(shape),
            highest.astype(np.float64).reshape(shape))


def _linear_ranks(n: int, qs: np.ndarray, ndim: int):
    """numpy's linear method for ``qs`` among ``n`` sorted values: the ranks below and above
    each percentile and the weight of the one above, shaped to broadcast over results of
    ``ndim`` dimensions (the percentiles first)."""
    virtual = (n - 1) * (qs / 100)
    below = np.floor(virtual).astype(np.intp)
    above = np.minimum(below + 1, n - 1)
    return below, above, (virtual - below).reshape(-1, *(1,) * (ndim - 1))


def _sorted_linear(ranked: np.ndarray, qs: np.ndarray):
    """numpy's linear percentiles, minimum and maximum of values sorted along the last axis."""
    n = ranked.shape[-1]
    below, above, gamma = _linear_ranks(n, qs, ranked.ndim)
    a = np.moveaxis(ranked[..., below], -1, 0).astype(np.float64)
    b = np.moveaxis(ranked[..., above], -1, 0).astype(np.float64)
    result = _lerp(a, b, gamma)
    lowest, highest = ranked[..., 0].astype(np.float64), ranked[..., n - 1].astype(np.float64)
    if np.issubdtype(ranked.dtype, np.floating):
        nan_rows = np.isnan(highest)  # NaN sorts last: numpy's NaN rules
        if nan_rows.any():
            result[:, nan_rows] = np.nan
            lowest[nan_rows] = np.nan
    return result, lowest, highest


def _lerp(a, b, t):
    """numpy's lerp: from the nearer neighbour, so equal neighbours give exactly their value."""
    diff = b - a
    result = a + diff * t
    np.subtract(b, diff * (1 - t), out=result, where=np.broadcast_to(t >= 0.5, result.shape))
    return result


def _order_statistics(values: np.ndarray, ranks) -> np.ndarray:
    """(len(ranks), ...) values at the given ranks of the last axis, by successive selections:
    the highest rank first, then each lower one among the values below it (the same order
    statistics as one np.partition with all of them, at a fraction of its cost)."""
    if values.dtype == np.float32 and values.size:
        # Floats with the sign bit clear (no negative, no -0.0; +inf and NaN last) order as
        # their bits read as integers, and integers partition faster (about 10 % on a frame's
        # crops): the same values, bit for bit.
        bits = values.view(np.int32)
        if bits.min() >= 0:
            return _order_statistics(bits, ranks).view(np.float32)
    found = {}
    part = values
    for rank in sorted(set(ranks), reverse=True):
        part = np.partition(part, rank, axis=-1)
        found[rank] = part[..., rank]
        part = part[..., :rank]
    return np.stack([found[r] for r in ranks])


def _masked_percentiles(values, mask, qs, method):
    """:func:`percentiles` over the masked values of each row, all rows at once."""
    mask = np.broadcast_to(mask, values.shape)
    if np.issubdtype(values.dtype, np.floating):
        mask = mask & ~np.isnan(values)
    ranked = np.sort(np.where(mask, values, np.inf), axis=-1)
    count = mask.sum(axis=-1)
    last = np.maximum(count - 1, 0)
    out = []
    for q in qs:
        pos = last * (q / 100)
        if method == "nearest":
            lo = hi = np.around(pos).astype(np.intp)
        else:
            lo = np.floor(pos).astype(np.intp)
            hi = np.minimum(lo + 1, last) if method == "linear" else lo
        a = np.take_along_axis(ranked, lo[..., None], axis=-1)[..., 0].astype(np.float64)
        b = np.take_along_axis(ranked, hi[..., None], axis=-1)[..., 0].astype(np.float64)
        with np.errstate(invalid="ignore"):  # rows with nothing masked hold inf
            value = _lerp(a, b, pos - lo) if method == "linear" else a
        out.append(np.where(count > 0, value, np.nan))
    return np.stack(out) if out else np.empty((0, *values.shape[:-1]))


def background_from_percentiles(q_low, q_high, noise_floor=0.0, qs=(Q_LOW, Q_HIGH)):
    """Background level and noise sd from two percentiles ``qs`` (default the 10th and 30th)
    of background pixels, read as the standard normal's quantiles (numpy or torch,
    elementwise): the one formula of the normalisation, the background fill and the rest."""
    z_low, z_high = (NORMAL_QUANTILES[float(q)] for q in qs)
    noise = (q_high - q_low) / (z_high - z_low)
    noise = noise.clip(min=noise_floor) if hasattr(noise, "clip") else max(noise, noise_floor)
    return q_high - z_high * noise, noise


def background_and_noise(values, method: str = "linear", noise_floor=0.0,
                         qs=(Q_LOW, Q_HIGH)):
    """Background level and noise sd of (..., M) pixel values over the last axis: the
    percentiles ``qs`` (:func:`percentiles` by ``method``) through
    :func:`background_from_percentiles`. A clipped (constant) background gives zero noise
    (then ``noise_floor``)."""
    q_low, q_high = percentiles(values, qs, method)
    return background_from_percentiles(q_low, q_high, noise_floor, qs)


def median(x):
    """numpy's median over the last axis (the mean of the two middle values for an even
    count), of a numpy array or a torch tensor (torch's own median takes the lower one)."""
    if not _is_tensor(x):
        return np.median(x, axis=-1)
    ordered = x.sort(dim=-1).values
    n = ordered.shape[-1]
    if n % 2:
        return ordered[..., n // 2]
    return (ordered[..., n // 2 - 1] + ordered[..., n // 2]) / 2


def median_and_mad_sigma(x):
    """Median and noise sd (``MAD_TO_SIGMA`` times the median absolute deviation) over the last
    axis, numpy or torch: the scale of residuals whose median is the background."""
    centre = median(x)
    return centre, MAD_TO_SIGMA * median(abs(x - centre[..., None]))


assert math.isclose(NORMAL_QUANTILES[Q_HIGH] - NORMAL_QUANTILES[Q_LOW], 0.7571511, rel_tol=1e-6)


# A crop's brightest signal: this percentile of its central half.
CELL_PERCENTILE = 99.5


def crop_statistics(crops: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per crop and channel (each (N, C)): background and noise (from the crop's outer ring,
    as the model's normalisation reads them) and the brightest signal of its central half."""
    x = np.asarray(crops, np.float32)
    n, c, h, w = x.shape
    if not n:  # a sample without events (every frame failed): no statistics, no levels
        return (np.zeros((0, c), np.float32),) * 3
    ring = background_sample(x, 2, "ring", max(2, min(h, w) // 8))
    background, noise = background_and_noise(ring, "nearest")
    # The central half of each side (a crop as it came may be far from square: a strip cut
    # at a frame's edge 80 px tall and 8 wide), never less than a pixel.
    qh, qw = min(h // 4, (h - 1) // 2), min(w // 4, (w - 1) // 2)
    centre = x[:, :, qh:h - qh, qw:w - qw].reshape(n, c, -1)
    top = np.percentile(centre, CELL_PERCENTILE, axis=2)
    return background, noise, top
