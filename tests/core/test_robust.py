"""ctcnet.core.robust: numpy's percentiles, NaN and empty rows, the methods' difference bounded."""

import numpy as np
import pytest

from ctcnet.core.robust import (
    METHODS,
    background_and_noise,
    background_from_percentiles,
    background_sample,
    median,
    median_and_mad_sigma,
    percentile_indices,
    percentiles,
    percentiles_and_range,
)


def random_cases(rng):
    return [rng.normal(100, 20, (5, 301)).astype(np.float32),
            rng.normal(100, 20, (2, 3, 400)).astype(np.float32),  # leading axes
            rng.integers(0, 4, (3, 50)).astype(np.float32),      # ties everywhere
            rng.integers(0, 4000, (2, 77)).astype(np.uint16),
            rng.normal(size=(4, 2)), rng.normal(size=(3, 1))]


@pytest.mark.parametrize("method", METHODS)
def test_percentiles_are_numpys(rng, method):
    for values in random_cases(rng):
        qs = (10, 30, 50, 75, 99)
        got = percentiles(values, qs, method)
        want = np.percentile(values, qs, axis=-1, method=method)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert np.array_equal(got, want), (values.dtype, values.shape)


@pytest.mark.parametrize("method", METHODS)
def test_masked_percentiles_are_numpys_nanpercentile(rng, method):
    values = rng.normal(0, 3, (40, 57)).astype(np.float32)
    values[:, ::7] = np.round(values[:, ::7])  # ties
    mask = rng.random((40, 57)) < 0.3
    mask[3] = False                            # nothing: NaN
    mask[4] = False
    mask[4, 9] = True                          # one entry
    values[5, ~mask[5]] = np.nan               # NaN off the mask does not matter
    q50, q75 = percentiles(values, (50, 75), method, mask=mask)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
        want = np.nanpercentile(np.where(mask, values, np.nan).astype(np.float64), (50, 75),
                                axis=1, method=method)
    assert np.array_equal(q50, want[0], equal_nan=True)
    assert np.array_equal(q75, want[1], equal_nan=True)
    assert np.isnan(q50[3]) and q50[4] == values[4, 9]


def test_percentiles_and_range_are_numpys(rng):
    cases = random_cases(rng) + [
        np.where(rng.random((3, 40)) < 0.1, np.nan, rng.normal(size=(3, 40)))]
    for values in cases:
        (low, high), lowest, highest = percentiles_and_range(values, (10, 30))
        as64 = values.astype(np.float64)
        want = np.percentile(as64, (10, 30), axis=-1)
        for got, expected in ((low, want[0]), (high, want[1]), (lowest, as64.min(axis=-1)),
                              (highest, as64.max(axis=-1))):
            assert np.array_equal(got, expected, equal_nan=True), values.dtype


def test_counts_are_counted_to_numpys_percentiles(rng):
    """Rows of whole numbers within 16 bits (a frame border's window of scanner counts) are
    counted, not sorted: numpy's numbers all the same, whatever type holds them, with ties,
    a constant row, a row at 0 and one at 65535; other values are still sorted."""
    from ctcnet.core import robust

    long = robust.COUNTED_MIN_VALUES + 333
    counted = [
        np.rint(rng.gamma(2, 150, (5, long))).astype(np.float32),   # a background and cells
        rng.integers(0, 4000, (2, 3, long)).astype(np.uint16),        # leading axes
        rng.integers(63000, 65536, (3, long)).astype(np.int64),       # the top of the range
        np.stack([np.full(long, 7.0), np.zeros(long), rng.integers(0, 3, long) * 1.0]),
        rng.integers(0, 2 * long, (2, long)).astype(np.float64),      # the widest span counted
    ]
    sorted_ = [
        rng.normal(300, 20, (3, long)).astype(np.float32),             # fractions
        rng.integers(0, 65536, (2, long)).astype(np.float32),          # too wide a span
        rng.integers(-5, 4000, (2, long)).astype(np.float32),          # below zero
        rng.integers(0, 4000, (2, robust.COUNTED_MIN_VALUES - 1)).astype(np.float32),  # short
    ]
    nan_row = np.rint(rng.gamma(2, 150, (2, long))).astype(np.float32)
    nan_row[1, 5] = np.nan
    for values, is_counted in [(v, True) for v in counted] + \
            [(v, False) for v in (*sorted_, nan_row)]:
        assert (robust._as_counts(values) is not None) == is_counted, values.dtype
        (low, high), lowest, highest = percentiles_and_range(values, (10, 30))
        as64 = values.astype(np.float64)
        want = np.percentile(as64, (10, 30), axis=-1)
        for got, expected in ((low, want[0]), (high, want[1]), (lowest, as64.min(axis=-1)),
                              (highest, as64.max(axis=-1))):
            assert got.dtype == np.float64 and got.shape == expected.shape
            assert np.array_equal(got, expected, equal_nan=True), (values.dtype, values.shape)


@pytest.mark.parametrize("method", METHODS)
def test_nan_and_empty_rows_give_nan(rng, method):
    values = rng.normal(size=(3, 50)).astype(np.float32)
    values[1, 7] = np.nan
    got = percentiles(values, (10, 30), method)
    assert np.isnan(got[:, 1]).all() and np.isfinite(got[:, [0, 2]]).all()
    empty = percentiles(np.zeros((4, 0), np.float32), (10, 30), method)
    assert empty.shape == (2, 4) and np.isnan(empty).all()
    level, noise = background_and_noise(np.zeros((2, 0)), method)
    assert np.isnan(level).all() and np.isnan(noise).all()
    (low, _), lowest, highest = percentiles_and_range(np.zeros((2, 0)), (10, 30))
    assert np.isnan(low).all() and np.isnan(lowest).all() and np.isnan(highest).all()


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method"):
        percentiles(np.zeros((2, 5)), (10,), "midpoint")
    with pytest.raises(ValueError, match="method"):
        percentile_indices(10, method="linear")


def test_percentile_indices_are_the_methods_ranks():
    for count in (1, 2, 10, 400, 1600, 1601):
        ranks = np.arange(count, dtype=np.float64)
        for method in ("nearest", "lower"):
            want = np.percentile(ranks, (10, 30, 50), method=method)
            assert percentile_indices(count, (10, 30, 50), method) == tuple(want.astype(int))
    assert percentile_indices(400) == (40, 120)  # the normalisation's ranks, by default


def test_background_of_gaussian_noise_and_of_an_object(rng):
    x = rng.normal(300.0, 12.0, (2, 3, 80, 80)).astype(np.float32)
    x[:, :, 20:60, 20:60] += 5000  # an object on a quarter of the crop
    sample = background_sample(x, 2)
    for method in METHODS:
        level, noise = background_and_noise(sample, method)
        # the object pushes the low percentiles up a little: within half a noise sd
        np.testing.assert_allclose(level, 300, atol=6)
        np.testing.assert_allclose(noise, 12, rtol=0.25)
    centre, sigma = median_and_mad_sigma(rng.normal(50.0, 4.0, (3, 20000)))
    np.testing.assert_allclose(centre, 50, atol=0.2)
    np.testing.assert_allclose(sigma, 4, rtol=0.05)


def test_nearest_and_linear_differ_by_less_than_the_rank_step(rng):
    """The interpolated and the rank statistic lie between the same two neighbouring order
    statistics: they differ by at most one gap, a few hundredths of a noise sd on a crop."""
    x = rng.normal(300.0, 12.0, (200, 4, 80, 80)).astype(np.float32)
    sample = background_sample(x, 2).astype(np.float64)   # 1600 pixels a crop and channel
    ranked = np.sort(sample, axis=-1)
    gap = np.diff(ranked, axis=-1).max(axis=-1)
    near, lin = percentiles(sample, (10, 30), "nearest"), percentiles(sample, (10, 30))
    assert (np.abs(near - lin) <= gap).all()
    level_n, noise_n = background_from_percentiles(*near)
    level_l, noise_l = background_from_percentiles(*lin)
    assert np.abs(level_n - level_l).max() < 0.05 * 12
    assert np.abs(noise_n / noise_l - 1).max() < 0.05


def test_lower_median_formula_is_the_augmentations():
    values = np.array([[0.0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]], np.float32)
    level, noise = background_and_noise(values, "lower", 0.5, qs=(10, 50))
    assert level[0] == 5.0  # floor(0.5 * 11) = rank 5
    assert noise[0] == np.float32((5.0 - 1.0) / 1.2815516)  # floor(1.1) = rank 1


def test_median_and_mad_on_torch_tensors_are_numpys(rng):
    torch = pytest.importorskip("torch")
    for n in (1, 2, 7, 8, 400):
        x = rng.normal(size=(3, n)).astype(np.float32)
        np.testing.assert_allclose(median(torch.from_numpy(x)), median(x), rtol=1e-6)
        t_centre, t_sigma = median_and_mad_sigma(torch.from_numpy(x))
        centre, sigma = median_and_mad_sigma(x)
        np.testing.assert_allclose(t_centre, centre, rtol=1e-6)
        np.testing.assert_allclose(t_sigma, sigma, rtol=1e-5, atol=1e-7)


def test_crop_statistics_of_a_crop_far_from_square():
    """A strip cut at a frame's edge (80 px tall, 1 to 8 wide) has a centre to read: its
    statistics were an IndexError that took a whole crop folder down."""
    from ctcnet.core.robust import crop_statistics

    rng = np.random.default_rng(0)
    for width in (1, 2, 3, 8, 80):
        strip = rng.normal(100, 5, (2, 3, 80, width)).astype(np.float32)
        strip[:, 1, 38:42, :] = 400  # a bright row across the middle
        background, noise, top = crop_statistics(strip)
        assert background.shape == noise.shape == top.shape == (2, 3)
        assert np.isfinite(top).all() and (top[:, 1] > background[:, 1]).all()
