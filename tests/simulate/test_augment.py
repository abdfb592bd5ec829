"""ctcnet.simulate.augment: the rgb-jpeg augmentation, at the scan's and at an export's zoom."""

import numpy as np

TINY_CROP = 32


def test_rgb_jpeg_augmentation(rng):
    from ctcnet.simulate.augment import build_train_augment

    crop = rng.poisson(200, (3, TINY_CROP, TINY_CROP)).astype(np.float32)
    crop[:, 10:20, 12:22] += np.array([3000, 50, 800], np.float32)[:, None, None]
    out = build_train_augment({"jpeg_p": 1.0, "jpeg_headroom": [1.0, 1.0]}, seed=0)(crop)
    assert out.shape == crop.shape and out.dtype == np.float32
    assert out.max() <= 255 and np.array_equal(out, np.rint(out))  # 8-bit, as exported
    assert out[0, 12:18, 14:20].mean() > out[0, :5, :5].mean() + 50  # the cell survives


def test_rgb_jpeg_augmentation_at_an_export_zoom(rng):
    """Exported at 2-3x the crop's magnification and brought back: same size, 0..255, the
    cell where it was and as bright, and not the export at model scale."""
    from ctcnet.simulate.export import as_rgb_jpeg

    crop = rng.poisson(200, (3, TINY_CROP, TINY_CROP)).astype(np.float32)
    crop[:, 10:20, 12:22] += np.array([3000, 50, 800], np.float32)[:, None, None]
    zoomed = as_rgb_jpeg(crop, np.random.default_rng(1), (70, 70), zoom=(2.0, 3.0),
                         headroom=(1.0, 1.0))
    flat = as_rgb_jpeg(crop, np.random.default_rng(1), (70, 70), headroom=(1.0, 1.0))
    assert zoomed.shape == crop.shape and zoomed.dtype == np.float32
    assert 0 <= zoomed.min() and zoomed.max() <= 255
    assert zoomed[0, 12:18, 14:20].mean() > zoomed[0, :5, :5].mean() + 50
    inside = (slice(None), slice(12, 18), slice(14, 20))
    assert np.allclose(zoomed[inside].mean(axis=(1, 2)), flat[inside].mean(axis=(1, 2)), atol=6)
    assert not np.array_equal(zoomed, flat)


def test_tight_export_view_adds_a_ck_copy_to_the_cd45_plane(rng):
    """``tight_ck_copy_p``: the CD45 plane of a CK+ CD45- cell's export shows CK at the drawn
    share (as a published dim-CK CTC's does); off by default, and only with the panel's roles."""
    from ctcnet.simulate.augment_options import augment_config
    from ctcnet.simulate.augment_steps import tight_export_view
    from ctcnet.simulate.export import with_ck_copy

    roles = ("nucleus", "epithelial", "leukocyte")
    crop = rng.normal(200, 5, (3, 48, 48)).astype(np.float32)
    crop[0, 18:30, 18:30] += 2000  # the nucleus
    crop[1, 14:34, 14:34] += 1500  # CK round it; no CD45

    def view(**options):
        cfg = augment_config({"tight_jpeg_share": 0.0, "tight_scale_error": [1.0, 1.0],
                              "tight_fine": [1.0, 1.0], **options})
        return tight_export_view(crop, cfg, np.random.default_rng(3), roles=roles)

    plain = view()
    copied = view(tight_ck_copy_p=1.0, tight_ck_copy_share=[0.2, 0.2])
    ck = plain[1] > 100
    assert plain[2][ck].mean() < 10  # no CD45 without the copy
    ratio = copied[2][ck].mean() / copied[1][ck].mean()
    assert 0.17 < ratio < 0.23
    assert np.array_equal(copied[:2], plain[:2])  # the other planes as they were
    assert np.array_equal(view(tight_ck_copy_share=[0.2, 0.2]), plain)  # off by default
    shown = np.full((3, 4, 4), 200.0, np.float32)
    assert with_ck_copy(shown, ("nucleus", "epithelial", "unknown"), 0.3) is shown
    assert with_ck_copy(shown, roles, 0.3)[2].max() == 255.0  # clipped as the display is


def test_intensity_stage_adds_a_ck_copy_to_a_scan_crops_cd45(rng):
    """``ck_copy_p``: a scan crop's CD45 channel shows its CK signal at the drawn share (a
    published dim-CK CTC's CK seen through the CD45 filter); off by default, the random stream
    of a recipe without it unchanged, and nothing without the panel's roles."""
    from ctcnet.simulate.augment_options import augment_config
    from ctcnet.simulate.augment_steps import augment_intensities

    roles = ("nucleus", "epithelial", "leukocyte")
    crop = rng.normal(200, 5, (3, 48, 48)).astype(np.float32)
    crop[0, 18:30, 18:30] += 2000  # the nucleus
    crop[1, 14:34, 14:34] += 1500  # CK round it; no CD45
    quiet = {"bleed_p": 0.0, "nonspecific_ck_p": 0.0, "gain_p": 0.0, "gamma_p": 0.0,
             "noise_p": 0.0, "offset_p": 0.0, "scale_p": 0.0}

    def stage(roles=roles, **options):
        return augment_intensities(crop, augment_config({**quiet, **options}),
                                   np.random.default_rng(3), roles=roles)

    plain = stage()
    copied = stage(ck_copy_p=1.0, ck_copy_share=[0.25, 0.25])
    ck = slice(14, 34), slice(14, 34)
    excess = copied[2][ck].mean() - plain[2][ck].mean()
    assert 0.2 < excess / (plain[1][ck].mean() - 200) < 0.25  # CK's signal over 2 noise sd
    assert np.array_equal(copied[:2], plain[:2])  # the other channels as they were
    assert np.array_equal(stage(ck_copy_share=[0.25, 0.25]), plain)  # off by default
    assert np.array_equal(stage(roles=("nucleus", "epithelial", "unknown"), ck_copy_p=1.0),
                          plain)
