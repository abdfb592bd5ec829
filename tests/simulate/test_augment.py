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
