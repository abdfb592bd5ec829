"""ctcnet.detect.pixel_size: a crop set's pixel size estimated from its nuclei."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctcnet.errors import InputError


def test_the_pixel_size_of_a_crop_set_is_estimated_from_its_nuclei(tmp_path):
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.detect.pixel_size import estimate_pixel_size
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import write_tight_export_dataset

    panel = Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                             "channels": ["DAPI", "CK", "CD45"]})
    batch = simulate_crops({"ctc": 10, "wbc": 10, "debris": 5}, panel, crop_size=80, seed=5)
    for true_um in (0.08, 0.2):
        root = write_tight_export_dataset(batch, tmp_path / f"t{true_um}", panel,
                                          pixel_size_um=true_um)
        index = read_crop_index(root)
        crops = [index.read(i) for i in range(len(index))]
        estimate = estimate_pixel_size(crops, index.panel.names.index("DAPI"))
        assert 0.6 < estimate / true_um < 1.6    # well inside the models' 0.5-2x range
        auto = read_crop_index(root, pixel_size="auto").panel.pixel_size_um
        assert auto == pytest.approx(estimate)
    with pytest.raises(InputError, match="cannot estimate the pixel size"):
        estimate_pixel_size([np.zeros((3, 50, 50), np.uint8)] * 10, 2)


def test_crops_at_very_different_scales_are_said_to_need_fit(tmp_path, caplog):
    """Published crops each scaled to fit their cell, 40 to 800 px: auto read them all at one
    scale, calls lost without a word; one scale's crops say nothing."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.detect.pixel_size import estimate_pixel_size
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import write_tight_export_dataset

    panel = Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                             "channels": ["DAPI", "CK", "CD45"]})
    batch = simulate_crops({"ctc": 8, "wbc": 8}, panel, crop_size=80, seed=5)
    crops = {}
    for true_um in (0.05, 0.4):
        root = write_tight_export_dataset(batch, tmp_path / f"t{true_um}", panel,
                                          pixel_size_um=true_um)
        index = read_crop_index(root)
        crops[true_um] = [index.read(i) for i in range(len(index))]
    dna = index.panel.names.index("DAPI")
    with caplog.at_level("WARNING", logger="ctcnet.detect.pixel_size"):
        estimate_pixel_size(crops[0.05], dna)
    assert "very different scales" not in caplog.text
    with caplog.at_level("WARNING", logger="ctcnet.detect.pixel_size"):
        estimate_pixel_size(crops[0.05] + crops[0.4], dna, option="--pixel-size")
    assert "crops at very different scales" in caplog.text and "--pixel-size fit" in caplog.text


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1),
       st.floats(0.2, 0.8))
def test_filled_holes_is_scipys_binary_fill_holes(h, w, seed, share):
    """The holes of any mask, a ring, a ring touching the edge or a mask with none, are filled
    as scipy's binary_fill_holes fills them."""
    from scipy import ndimage

    from ctcnet.detect.pixel_size import filled_holes

    mask = np.random.default_rng(seed).random((h, w)) < share
    assert np.array_equal(filled_holes(mask), ndimage.binary_fill_holes(mask))
    yy, xx = np.mgrid[:h, :w]
    ring = np.abs(np.hypot(yy - h / 2, xx - w / 3) - min(h, w) / 3) < 1.2
    assert np.array_equal(filled_holes(ring), ndimage.binary_fill_holes(ring))
