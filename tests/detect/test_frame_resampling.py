"""A whole frame brought to model scale: the dense product of its weights (float rounding only),
only the tiles the crops read, and event centres mapped onto its grid."""

import numpy as np
import pytest
from conftest import frame_with_spots

from ctcnet.detect.frame_resampling import model_centres, model_scale_frame
from ctcnet.detect.resampling import frame_weights, resampled_size


@pytest.mark.parametrize("shape", [(3, 150, 170), (2, 300, 90), (1, 7, 5)])
@pytest.mark.parametrize("factor", [0.45 / 0.64, 0.5, 0.3])
def test_model_scale_frame_is_the_dense_product(shape, factor):
    frame = frame_with_spots(shape)
    got = model_scale_frame(frame, factor)
    assert got.shape == (shape[0], *resampled_size(*shape[1:], factor))
    assert got.dtype == np.float32
    want = frame_weights(shape[1], factor) @ frame.astype(np.float32) @ frame_weights(
        shape[2], factor).T
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=2e-3)


def test_only_the_tiles_windows_reach_are_computed_with_the_same_numbers():
    factor = 0.45 / 0.64
    frame = frame_with_spots((2, 400, 450))
    whole = model_scale_frame(frame, factor)
    top, left = np.array([-30, 150]), np.array([200, -20])
    out = np.full_like(whole, np.nan)
    model_scale_frame(frame, factor, out, (top, left, 40))
    done = ~np.isnan(out[0])
    assert np.array_equal(out[:, done], whole[:, done])
    assert done[:10, 200:240].all() and done[150:190, :20].all() and not done[-60:].any()
    assert done.mean() < 0.5
    # A window wholly outside reads the frame's nearest pixels (filled from them): computed.
    model_scale_frame(frame, factor, out, (np.array([-300]), np.array([-300]), 40))
    assert np.array_equal(out[:, 0, 0], whole[:, 0, 0])


@pytest.mark.parametrize("factor", [0.45 / 0.64, 0.5])
def test_event_centres_land_on_the_same_point_at_model_scale(factor):
    """A ramp (each pixel's value its column) resampled: a model pixel's value is the scan
    coordinate it is centred on, so model_centres maps a point onto itself (to 0.05 scan px:
    torch's antialias taps are cut to whole pixels, not quite symmetric)."""
    w = 400
    ramp = np.broadcast_to(np.arange(w, dtype=np.float32), (1, 16, w))
    scaled = model_scale_frame(ramp, factor)[0, 3]
    cols = np.arange(len(scaled))
    inner = (cols > 4) & (cols < len(scaled) - 5)  # away from the ends, where taps are cut
    tol = 0.05
    np.testing.assert_allclose(scaled[inner], (cols[inner] + 0.5) / factor - 0.5, atol=tol)
    x = np.array([100.0, 250.3])
    xm, _ = model_centres(x, x, factor)
    np.testing.assert_allclose(np.interp(xm, cols, scaled), x, atol=tol)
    np.testing.assert_allclose(frame_weights(w, factor).sum(axis=1), 1, rtol=1e-5)


def test_frames_are_only_shrunk():
    """A scan of coarser pixels is enlarged window by window (cropping.extract_crops)."""
    with pytest.raises(ValueError, match="shrink"):
        frame_weights(100, 0.78 / 0.64)
