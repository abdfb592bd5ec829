"""Cropping on frames: the batched paths give the per-window results (float rounding only)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ctcnet.detect.cropping import (
    background_fill,
    border_gather,
    border_window,
    centre_fit,
    cut_windows,
    extract_crops,
    extract_windows,
    place_windows,
    to_model_scale,
    window_size,
    window_weights,
)


def frame_with_spots(shape=(3, 150, 170), dtype=np.uint16, seed=0):
    """Counts on an offset and a gradient, a few sharp bright spots (the pixels resampling
    moves most), Poisson noise."""
    rng = np.random.default_rng(seed)
    c, h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    frame = 100.0 + 20 * np.arange(c)[:, None, None] + 30 * xx / w + np.zeros((c, 1, 1))
    for _ in range(12):
        x, y, ch = rng.uniform(0, w), rng.uniform(0, h), rng.integers(c)
        frame[ch] += rng.uniform(200, 3000) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2)
                                                     / (2 * rng.uniform(0.7, 4) ** 2))
    return np.clip(rng.poisson(frame), 0, 4095).astype(dtype)


# Centres well inside, near every border, on its outer edge, and on a non-square frame's far
# corner.
X = np.array([85.0, 60.3, 2.2, 168.4, 40.0, 120.7, -0.5, 169.5, 99.5])
Y = np.array([75.0, 30.8, 70.0, 100.2, 1.4, 148.9, -0.4, 149.5, 0.0])


def per_window(frame, x, y, crop, model_um, scan_um):
    """Each window cut, then resampled and centre-cut on its own: the reference."""
    windows, padded = extract_windows(frame, x, y, window_size(crop, model_um, scan_um))
    return to_model_scale(windows, scan_um, model_um, crop)[0], padded


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("scan_um", [0.45, 0.5, 0.662, 0.78, 0.64])
def test_frame_crops_are_the_per_window_crops(scan_um, dtype):
    frame = frame_with_spots(dtype=dtype)
    got, padded = extract_crops(frame, X, Y, 32, 0.64, scan_um)
    want, want_padded = per_window(frame, X, Y, 32, 0.64, scan_um)
    assert got.dtype == np.float32 and got.flags.c_contiguous and got.shape == (9, 3, 32, 32)
    assert (padded == want_padded).all() and padded[2:].all() and not padded[:2].any()
    # Float rounding of the same sums in another order, nothing more (counts up to ~3000).
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=2e-3)


@pytest.mark.parametrize("scan_um", [0.64, 0.45])
def test_a_frame_of_counts_crops_alike_as_uint16_and_float32(scan_um):
    """A notebook's uint16 frame (tifffile) and a cartridge reader's float32 copy of it give
    the same crops, border windows included: their fill is not rounded to whole counts."""
    frame = frame_with_spots(dtype=np.uint16)
    as_counts, padded = extract_crops(frame, X, Y, 32, 0.64, scan_um)
    as_float, _ = extract_crops(frame.astype(np.float32), X, Y, 32, 0.64, scan_um)
    assert padded.any()
    np.testing.assert_array_equal(as_counts, as_float)


@pytest.mark.parametrize("shape", [(60, 100), (100, 57), (33, 81)])
def test_a_crop_long_one_way_and_short_the_other_is_cut_then_padded(shape):
    """The ONNX file's crop_folder contract: the longer side centre-cut, then the margin of
    the shorter filled from the cut crop's ring with a pattern of side crop_size, so a port
    that follows it matches predict to 1e-4 (padding first, on the uncut crop's ring and a
    pattern of its size, put a port 0.1 apart on real exports)."""
    rng = np.random.default_rng(1)
    crops = (rng.random((2, 3, *shape)) * 400 + 100).astype(np.float32)
    h, w = shape
    cut = crops[..., max(0, (h - 80) // 2):, max(0, (w - 80) // 2):][..., :80, :80]
    got, pixels_cut, pixels_padded = centre_fit(crops, 80)
    want, _, _ = centre_fit(np.ascontiguousarray(cut), 80)
    assert got.shape == (2, 3, 80, 80) and np.array_equal(got, want)
    assert pixels_cut == max(0, h - 80) + max(0, w - 80)
    assert pixels_padded == max(0, 80 - h) + max(0, 80 - w)


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
    assert got.dtype == np.float32
    assert np.array_equal(got[padded], background_fill(gathered.astype(np.float32), inside))
    for i in np.flatnonzero(~padded):
        assert np.array_equal(got[i], frame[:, top[i]:top[i] + 41, left[i]:left[i] + 41])


# (most windows drawn lie inside or wholly outside the frame: those are not this test's)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(dtype=st.sampled_from([np.uint8, np.uint16, np.float32]), seed=st.integers(0, 2**16),
       window=st.integers(2, 30), top=st.integers(-29, 40), left=st.integers(-29, 40))
def test_a_border_window_is_the_general_fill_wherever_it_lies(dtype, seed, window, top, left):
    """border_window draws only the bands round the part inside the frame: the same numbers
    as filling the whole gathered window through its mask, at any place and size."""
    rng = np.random.default_rng(seed)
    frame = (rng.random((3, 17, 23)) * 250).astype(dtype)
    rows, cols, inside = border_gather(np.array([top]), np.array([left]), window, 17, 23)
    # a window inside the frame is a slice; one wholly outside, the general fill
    assume(inside.any() and not inside.all())
    gathered = frame[:, rows[:, :, None], cols[:, None, :]].transpose(1, 0, 2, 3)
    got = border_window(frame, top, left, window)
    assert got.dtype == np.float32
    assert np.array_equal(got, background_fill(gathered.astype(np.float32), inside)[0])


def test_a_window_wholly_outside_is_background():
    frame = frame_with_spots()
    crop = cut_windows(frame, np.array([-60]), np.array([-70]), 20)[0]
    assert crop.shape == (3, 20, 20) and crop.dtype == np.float32
    assert (crop >= frame.min()).all() and (crop <= frame.max()).all()


def test_window_weights_only_where_resampling_keeps_the_whole_crop():
    assert window_weights(80, 1.0, 80) is None
    shrink = window_weights(window_size(80, 0.64, 0.45), 0.45 / 0.64, 80)
    enlarge = window_weights(window_size(80, 0.64, 0.78), 0.78 / 0.64, 80)
    for weights in (shrink, enlarge):
        assert weights.shape[0] == 80 and weights.dtype == np.float32
        np.testing.assert_allclose(weights.sum(axis=1), 1, rtol=1e-5)  # each output a mean
    assert window_weights(10, 0.5, 8) is None  # 5 px: padded, left to to_model_scale


@pytest.mark.parametrize("data_um, model_um, size", [(-1.0, 0.64, 80), (0.5, -0.64, 80),
                                                     (0.0, 0.64, 80), (0.5, float("nan"), 80),
                                                     (0.5, 0.64, 0)])
def test_an_impossible_pixel_or_crop_size_is_refused_not_read_as_none(data_um, model_um, size):
    """-0.64 made every crop a padded speck (called debris, with a padding warning); 0 was
    read as "not given"."""
    from ctcnet.errors import InputError

    with pytest.raises(InputError, match="pixel size must be a positive|crop size must be"):
        to_model_scale(np.ones((1, 3, 40, 40), np.float32), data_um, model_um, size)


def test_load_crops_refuses_a_crop_size_of_zero(crops):
    from ctcnet.detect.crop_dataset import load_crops, read_crop_index
    from ctcnet.errors import InputError

    with pytest.raises(InputError, match="crop size must be"):
        load_crops(read_crop_index(crops), 0)


def test_a_crop_request_that_cuts_nothing_sensible_is_refused_in_words():
    """extract_crops, a step of docs/python.md, took a channels-last frame (1036 planes of
    crops), a NaN position (a crop of anywhere) and x, y of other lengths (a broadcast
    error) without a word of its own."""
    from ctcnet.detect.cropping import extract_crops
    from ctcnet.errors import InputError

    frame = np.zeros((5, 120, 140), np.uint16)
    x, y = np.array([60.0, 70.0]), np.array([50.0, 40.0])
    assert extract_crops(frame, x, y, 32)[0].shape == (2, 5, 32, 32)
    assert extract_crops(frame, 60.0, 50.0, 32)[0].shape == (1, 5, 32, 32)
    for args, said in (((np.moveaxis(frame, 0, -1), x, y), "channels last?"),
                       ((frame[0], x, y), r"a frame is \(channels, height, width\)"),
                       ((frame, np.array([np.nan, 1.0]), y), "not finite"),
                       ((frame, np.arange(5.0), y), r"got shapes \(5,\) and \(2,\)")):
        with pytest.raises(InputError, match=said):
            extract_crops(*args, 32)


def test_a_crop_request_that_would_make_crops_up_is_refused():
    """A position off the frame gave a crop of background alone, called debris at 0.99
    without a word; one pixel size alone was ignored: the crop cut at the scan's scale, the
    cell read 36 % too large at 0.47 um/px."""
    from ctcnet.detect.cropping import extract_crops
    from ctcnet.errors import InputError

    frame = np.zeros((5, 120, 140), np.uint16)
    edges = extract_crops(frame, np.array([-0.5, 139.5]), np.array([119.5, -0.5]), 32)
    assert edges[0].shape == (2, 5, 32, 32) and edges[1].all()  # on the border: padded
    for x, y, said in ((5000.0, 60.0, "1 of the 1 positions lie off the 140 x 120 frame"),
                       (60.0, 120.0, "y 120"), (-0.6, 10.0, "x -0.6")):
        with pytest.raises(InputError, match=said):
            extract_crops(frame, x, y, 32)
    for sizes in ({"model_pixel_um": 0.64}, {"scan_pixel_um": 0.47}):
        with pytest.raises(InputError, match="give both model_pixel_um and scan_pixel_um"):
            extract_crops(frame, 60.0, 50.0, 32, **sizes)
