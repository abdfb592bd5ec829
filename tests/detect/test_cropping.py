"""Cropping on frames: a scan of finer pixels than the model's is brought to model scale once
(the dense product of its weights, float rounding only) and crops are cut from it; a scan of
coarser pixels has its windows resampled in batches as each would be on its own."""

import numpy as np
import pytest
from conftest import frame_with_spots

from ctcnet.detect.cropping import (
    background_fill,
    border_gather,
    cut_windows,
    extract_crops,
    extract_windows,
    place_windows,
    to_model_scale,
    window_size,
    window_weights,
)
from ctcnet.detect.frame_resampling import model_centres
from ctcnet.detect.resampling import frame_weights

# Centres well inside, near every border, past it, and on a non-square frame's far corner.
X = np.array([85.0, 60.3, 2.2, 168.4, 40.0, 120.7, -3.0, 171.0, 99.5])
Y = np.array([75.0, 30.8, 70.0, 100.2, 1.4, 148.9, -2.0, 152.0, 0.0])


def reference(frame, x, y, crop, model_um, scan_um):
    """The reference: a finer scan times its dense weights on both axes, windows cut from it
    around the centres mapped onto its grid; a coarser one (or the model's own) cut window by
    window, each resampled and centre-cut on its own."""
    f = scan_um / model_um
    if f >= 1:
        windows, padded = extract_windows(frame, x, y, window_size(crop, model_um, scan_um))
        return to_model_scale(windows, scan_um, model_um, crop)[0], padded
    _, h, w = frame.shape
    scaled = frame_weights(h, f) @ frame.astype(np.float32) @ frame_weights(w, f).T
    return extract_windows(scaled, *model_centres(x, y, f), crop)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("scan_um", [0.45, 0.5, 0.662, 0.78, 0.64])
def test_frame_crops_are_the_reference_crops(scan_um, dtype):
    frame = frame_with_spots(dtype=dtype)
    got, padded = extract_crops(frame, X, Y, 32, 0.64, scan_um)
    want, want_padded = reference(frame, X, Y, 32, 0.64, scan_um)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == (9, 3, 32, 32)
    assert (padded == want_padded).all() and padded[2:].all() and not padded[:2].any()
    # Float rounding of the same sums in another order (counts up to ~3000); the background
    # past the border is measured on those pixels, so it moves with them.
    np.testing.assert_allclose(got[~padded], want[~padded], rtol=1e-6, atol=2e-3)
    np.testing.assert_allclose(got[padded], want[padded], rtol=1e-5, atol=2e-2)


@pytest.mark.parametrize("scan_um", [0.45, 0.662, 0.64])
def test_a_crop_does_not_depend_on_the_other_events(scan_um):
    """The report cuts a few events again (ctcnet.report.event_crops): the same numbers as
    predict cut among all the frame's events."""
    frame = frame_with_spots()
    every, _ = extract_crops(frame, X, Y, 32, 0.64, scan_um)
    some, _ = extract_crops(frame, X[[1, 3, 8]], Y[[1, 3, 8]], 32, 0.64, scan_um)
    assert np.array_equal(some, every[[1, 3, 8]])


def test_no_events_give_no_crops():
    frame = frame_with_spots()
    for scan_um in (0.45, 0.64, 0.78):
        crops, padded = extract_crops(frame, X[:0], Y[:0], 32, 0.64, scan_um)
        assert crops.shape == (0, 3, 32, 32) and crops.dtype == np.float32
        assert padded.shape == (0,)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_border_windows_are_the_general_background_fill(dtype):
    """A window past the border is filled from the rectangle inside the frame, with the same
    numbers as gathering the window and filling it through its mask."""
    frame = frame_with_spots(dtype=dtype)
    h, w = frame.shape[1:]
    top, left, padded = place_windows(X, Y, 41, h, w)
    got = cut_windows(frame, top, left, 41)
    rows, cols, inside = border_gather(top[padded], left[padded], 41, h, w)
    gathered = frame[:, rows[:, :, None], cols[:, None, :]].transpose(1, 0, 2, 3)
    assert got.dtype == frame.dtype
    assert np.array_equal(got[padded], background_fill(gathered, inside))
    for i in np.flatnonzero(~padded):
        assert np.array_equal(got[i], frame[:, top[i]:top[i] + 41, left[i]:left[i] + 41])


def test_a_window_wholly_outside_is_background():
    frame = frame_with_spots()
    crop = cut_windows(frame, np.array([-60]), np.array([-70]), 20)[0]
    assert crop.shape == (3, 20, 20) and crop.dtype == frame.dtype
    assert (crop >= frame.min()).all() and (crop <= frame.max()).all()


def test_window_weights_only_where_resampling_keeps_the_whole_crop():
    assert window_weights(80, 1.0, 80) is None
    shrink = window_weights(window_size(80, 0.64, 0.45), 0.45 / 0.64, 80)
    enlarge = window_weights(window_size(80, 0.64, 0.78), 0.78 / 0.64, 80)
    for weights in (shrink, enlarge):
        assert weights.shape[0] == 80 and weights.dtype == np.float32
        np.testing.assert_allclose(weights.sum(axis=1), 1, rtol=1e-5)  # each output a mean
    assert window_weights(10, 0.5, 8) is None  # 5 px: padded, left to to_model_scale
