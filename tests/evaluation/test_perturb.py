"""ctcnet.evaluation.perturb: the perturbations do what their physics says."""

import numpy as np
import pytest
from conftest import disk_crops

from ctcnet.evaluation import perturb
from ctcnet.io.panel import default_panel

SIZE = 40


def test_signal_is_the_smoothed_crop_above_its_median():
    x = disk_crops()
    signal = perturb.split_signal(x)
    assert signal.shape == x.shape and signal.min() >= 0
    assert signal[:, 0].max() == 0  # flat channels carry no signal
    centre = SIZE // 2
    assert signal[0, 1, centre, centre] == pytest.approx(400, rel=0.01)
    assert signal[0, 1, 0, 0] == 0


def test_stain_scales_signal_and_keeps_noise_and_background():
    x = disk_crops(noise=5.0)
    same = perturb.stain_strength(x, 1, 1.0)
    np.testing.assert_allclose(same, x, atol=1e-3)
    brighter = perturb.stain_strength(x, 1, 3.0)
    centre = SIZE // 2
    assert brighter[0, 1, centre, centre] - x[0, 1, centre, centre] == pytest.approx(800, rel=0.05)
    # The corners (background) and the other channels are untouched up to the noise smoothing.
    assert np.abs(brighter[:, 1, :3, :3] - x[:, 1, :3, :3]).max() < 15
    np.testing.assert_array_equal(brighter[:, [0, 2, 3, 4]], x[:, [0, 2, 3, 4]])


def test_stain_saturates_at_the_channel_range():
    x = disk_crops(amplitude=3000)
    out = perturb.stain_strength(x, 1, 8.0, default_panel())
    assert out.max() == 4095.0


def test_bleed_copies_a_fraction_of_one_channel_into_another():
    x = disk_crops()
    out = perturb.bleed(x, 1, 3, 0.05)
    centre = SIZE // 2
    assert out[0, 3, centre, centre] - x[0, 3, centre, centre] == pytest.approx(20, rel=0.02)
    np.testing.assert_array_equal(out[:, [0, 1, 2, 4]], x[:, [0, 1, 2, 4]])


def test_random_stain_draws_per_crop_and_channel_in_range(rng):
    x = disk_crops(n=50)
    out = perturb.random_stain(x, 0.3, 3.0, rng)
    centre = SIZE // 2
    ratio = (out[:, 1, centre, centre] - 100) / 400
    assert 0.3 - 1e-3 <= ratio.min() and ratio.max() <= 3.0 + 1e-3
    assert ratio.std() > 0.2


def test_background_offset_and_gradient():
    x = disk_crops()
    out = perturb.background_offset(x, 1.0)
    np.testing.assert_allclose(out[:, :, 0, 0], 200.0)
    ramp = perturb.background_gradient(x, 0.5, np.random.default_rng(1))
    span = ramp[:, 0].max(axis=(1, 2)) - ramp[:, 0].min(axis=(1, 2))
    # 0.5 x the median from edge to edge along the ramp's direction (up to ~1.41 diagonally).
    assert np.all(span >= 49) and np.all(span <= 71)
    assert ramp[:, 0].mean() == pytest.approx(100, abs=0.5)


def test_defocus_spreads_but_keeps_the_signal():
    x = disk_crops(radius=3.0)
    out = perturb.defocus(x, 2.0)
    centre = SIZE // 2
    assert out[0, 1, centre, centre] < x[0, 1, centre, centre]
    assert (out[0, 1] - 100).sum() == pytest.approx((x[0, 1] - 100).sum(), rel=0.05)


def test_noise_factor_is_measured_and_applied(rng):
    x = disk_crops(n=8, noise=10.0)
    assert float(np.median(perturb.noise_std(x))) == pytest.approx(10.0, rel=0.1)
    out = perturb.more_noise(x, 2.0, rng)
    assert float(np.median(perturb.noise_std(out))) == pytest.approx(20.0, rel=0.1)


@pytest.mark.parametrize("factor", [0.5, 1.5])
def test_pixel_size_changes_apparent_size(factor):
    x = disk_crops(radius=6.0)
    out = perturb.pixel_size(x, factor)
    area = lambda a: (a[0, 1] > 300).sum()  # noqa: E731
    assert area(out) / area(x) == pytest.approx(1.0 / factor ** 2, rel=0.2)


def test_8bit_export_clips_the_stated_share():
    x = disk_crops(n=6, noise=5.0)
    out = perturb.display_8bit_by_quantile(x, 0.01)
    assert out.min() >= 0 and out.max() == 255
    assert np.all(out == np.round(out))
    assert (out[:, 1] == 255).mean() == pytest.approx(0.01, abs=0.01)


def test_jpeg_composite_stays_close_to_the_8bit_export():
    panel = default_panel()
    assert perturb.composite_groups(panel) == [[1, 2, 0], [3, 4]]
    clean = disk_crops(n=3)  # a clean disk survives a good JPEG; lossier loses more
    out = perturb.jpeg_composite(clean, 95, panel)
    assert out.shape == clean.shape
    assert np.abs(out - perturb.display_8bit_by_quantile(clean, 0.001)).mean() < 3
    noisy = disk_crops(n=3, noise=5.0)
    ref = perturb.display_8bit_by_quantile(noisy, 0.001)
    error = {q: np.abs(perturb.jpeg_composite(noisy, q, panel) - ref).mean() for q in (95, 30)}
    assert error[30] > error[95]


def test_off_centre_moves_the_object_by_the_distance(rng):
    x = disk_crops(n=10)
    out = perturb.off_centre(x, 6.0, rng)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    w = out[:, 1] - 100
    cy = (w * yy).sum(axis=(1, 2)) / w.sum(axis=(1, 2))
    cx = (w * xx).sum(axis=(1, 2)) / w.sum(axis=(1, 2))
    shift = np.hypot(cy - (SIZE - 1) / 2, cx - (SIZE - 1) / 2)
    np.testing.assert_allclose(shift, 6.0, atol=0.8)


def test_off_centre_fills_the_uncovered_border_with_background(rng):
    """A cell at the crop's edge moved off centre is not mirrored into a second one."""
    x = (100.0 + rng.normal(0, 3, (20, 2, SIZE, SIZE))).astype(np.float32)
    x[:, :, :, -5:] += 2000.0
    out = perturb.off_centre(x, 8.0, rng)
    assert ((out[:, 0] > 1000).sum(axis=(1, 2)) <= (x[:, 0] > 1000).sum(axis=(1, 2))).all()
    assert out.min() > 70 and abs(np.median(out[:, 0]) - 100) < 3


def test_misregistered_moves_one_plane_and_keeps_the_others():
    x = disk_crops(n=4)
    out = perturb.misregistered(x, 1, 3)
    np.testing.assert_array_equal(out[:, 0], x[:, 0])
    yy, xx = np.mgrid[:SIZE, :SIZE]
    w = out[:, 1] - 100
    cx = (w * xx).sum(axis=(1, 2)) / w.sum(axis=(1, 2))
    np.testing.assert_allclose(cx - (SIZE - 1) / 2, 3.0, atol=0.3)
    # the uncovered edge is the plane's own edge (its background), never a wrapped cell
    assert np.abs(out[:, 1, :, :3] - 100).max() < 50
    np.testing.assert_array_equal(perturb.misregistered(x, 1, 0), x)


def test_the_matrix_moves_each_marker_plane_but_dna():
    panel = default_panel()
    cells, _ = perturb.perturbation_catalogue(panel)
    moved = {c.name for c in cells if c.family == "registration"}
    assert moved == {f"{n} out of register" for n in panel.names if n != "DAPI"}
    # Whole pixels are moved, and the label says how many: 1 um at 0.64 um/px is 2.
    assert panel.pixel_size_um == 0.64
    assert {c.label for c in cells if c.family == "registration" and c.range_end} == \
        {"1 um (2 px)"}
