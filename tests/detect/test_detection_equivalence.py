"""Detection's fast pieces give the numbers of the plain ones they stand for, exactly: the
banded binning against one pass over the whole frame, window maxima against scipy's filter,
the flat nonzero against numpy's 2-D one, the border saddles against slices of the 2-D
labels, the hysteresis against scikit-image's."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from ctcnet.detect.detection import BIN_BAND_ROWS, bin_frame, hysteresis_threshold
from ctcnet.detect.splitting import adjacent_saddles, group_max, nonzero_2d, window_max


def _binned_whole(frame, factor):
    """The separable strided sums over the whole frame at once (what the bands stand for)."""
    c, h, w = frame.shape
    hb, wb = h // factor, w // factor
    cols = frame[:, :hb * factor, 0:wb * factor:factor].astype(np.float32)
    for dx in range(1, factor):
        cols += frame[:, :hb * factor, dx:wb * factor:factor]
    out = cols[:, 0::factor].copy()
    for dy in range(1, factor):
        out += cols[:, dy::factor]
    out *= 1.0 / (factor * factor)
    return out


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("factor", [2, 3, 4])
def test_the_banded_binning_is_the_whole_frames(dtype, factor):
    rng = np.random.default_rng(factor)
    # Taller than a band and not a whole number of bins, so the last band is short.
    h = 2 * BIN_BAND_ROWS + 3 * factor + 1
    frame = (rng.random((2, h, 53)) * 4000).astype(dtype)
    assert bin_frame(frame, factor).tobytes() == _binned_whole(frame, factor).tobytes()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.integers(0, 20), st.integers(0, 2**32 - 1))
def test_window_max_is_scipys_maximum_filter(h, w, radius, seed):
    image = np.random.default_rng(seed).integers(0, 6, (h, w)).astype(np.float32)
    expected = ndimage.maximum_filter(image, size=2 * radius + 1, mode="nearest")
    assert window_max(image, radius).tobytes() == expected.tobytes()


def test_window_max_and_saddles_of_nothing_are_nothing():
    assert window_max(np.zeros((0, 4), np.float32), 2).shape == (0, 4)
    a, b, saddle = adjacent_saddles(np.zeros((3, 0), np.int32), np.zeros((3, 0), np.float32))
    assert len(a) == len(b) == len(saddle) == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 12), st.integers(0, 12), st.integers(0, 2**32 - 1))
def test_nonzero_2d_is_numpys(h, w, seed):
    mask = np.random.default_rng(seed).random((h, w)) < 0.3
    for ours, theirs in zip(nonzero_2d(mask), np.nonzero(mask)):
        assert ours.dtype == theirs.dtype and np.array_equal(ours, theirs)
    fortran = np.asfortranarray(mask)
    assert all(np.array_equal(o, t) for o, t in zip(nonzero_2d(fortran), np.nonzero(mask)))


def _saddles_by_slices(pieces, height):
    """The border saddles as the 2-D slices read them, one axis after the other."""
    a_parts, b_parts, v_parts = [], [], []
    for sl_a, sl_b in (((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                       ((slice(None, -1), slice(None)), (slice(1, None), slice(None)))):
        a, b = pieces[sl_a], pieces[sl_b]
        edge = (a > 0) & (b > 0) & (a != b)
        a_parts.append(np.minimum(a[edge], b[edge]))
        b_parts.append(np.maximum(a[edge], b[edge]))
        v_parts.append(np.minimum(height[sl_a][edge], height[sl_b][edge]))
    a, b, v = (np.concatenate(p) for p in (a_parts, b_parts, v_parts))
    if not len(a):
        return a, b, v
    n = int(pieces.max()) + 1
    keys, inverse = np.unique(a.astype(np.int64) * n + b, return_inverse=True)
    return keys // n, keys % n, group_max(v, inverse, len(keys))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 15), st.integers(1, 15), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_border_saddles_over_flat_indices_are_the_slices(h, w, labels, seed):
    rng = np.random.default_rng(seed)
    pieces = rng.integers(0, labels + 1, (h, w)).astype(np.int32)
    height = rng.random((h, w)).astype(np.float32)
    for ours, theirs in zip(adjacent_saddles(pieces, height), _saddles_by_slices(pieces, height)):
        assert ours.tobytes() == theirs.tobytes()


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 30), st.integers(1, 30), st.floats(0, 6), st.floats(0, 6),
       st.integers(0, 2**32 - 1))
def test_hysteresis_is_scikit_images(h, w, low, high, seed):
    from skimage.filters import apply_hysteresis_threshold

    image = (np.random.default_rng(seed).random((h, w)) * 8).astype(np.float32)
    assert np.array_equal(hysteresis_threshold(image, low, high),
                          apply_hysteresis_threshold(image, low, high))
