"""ctcnet.detect.clipped_background: a crop whose background was subtracted and clipped at 0
gets its clipped pixels back as the background's lower tail, so its noise reads as the
camera's; crops of counts, and display levels, are left as they are."""

import logging

import numpy as np

from ctcnet.detect.clipped_background import restore_clipped_background
from ctcnet.detect.crop_dataset import load_crops, read_crop_index
from ctcnet.inference.spillover import robust_background
from ctcnet.io.images import read_image, write_tiff

LEVEL, NOISE = 300.0, 20.0  # (noise of some counts: whole counts make its reading coarse)


def counts(seed=0, channels=5, size=80) -> np.ndarray:
    """A (C, size, size) crop of counts: Gaussian background, a bright disk in channel 1."""
    rng = np.random.default_rng(seed)
    crop = rng.normal(LEVEL, NOISE, (channels, size, size))
    yy, xx = np.mgrid[:size, :size]
    crop[1][np.hypot(yy - size / 2, xx - size / 2) < 9] += 500.0
    return np.round(crop).astype(np.uint16)


def subtracted(crop: np.ndarray, q: float = 50) -> np.ndarray:
    """Each channel less its own ``q``-th percentile, clipped at 0, as a viewer exports."""
    level = np.percentile(crop.reshape(len(crop), -1).astype(np.float32), q, axis=1)
    return np.clip(crop - level[:, None, None], 0, None).astype(np.uint16)


def test_the_noise_of_a_subtracted_crop_reads_as_the_cameras_once_restored():
    for q in (20, 50, 70):
        clipped = subtracted(counts(seed=q), q)
        _, noise_clipped = robust_background(clipped[None].astype(np.float32))
        restored, channels = restore_clipped_background(clipped)
        level, noise = robust_background(restored[None])
        assert channels == [0, 1, 2, 3, 4]
        # Clipped, the noise is a share of the brightest channel's, not the camera's; restored,
        # the camera's, as closely as some hundred pixels over the clip tell it (the camera's
        # own 10th and 30th percentiles read it within about 15 % on these crops).
        assert np.all(np.abs(noise_clipped[0] / NOISE - 1) > 0.4)
        assert np.all(np.abs(noise[0] / NOISE - 1) < 0.3)
        assert abs(np.median(noise[0]) / NOISE - 1) < 0.1
        expected = LEVEL - np.percentile(counts(seed=q).astype(np.float32), q, axis=(1, 2))
        assert np.all(np.abs(level[0] - expected) < 0.5 * NOISE)
        # Only the pixels at 0 are drawn, and only under the clip.
        kept = clipped > 0
        assert np.array_equal(restored[kept], clipped[kept].astype(np.float32))
        assert np.all(restored[~kept] <= 0)


def test_the_same_crop_is_restored_to_the_same_pixels():
    clipped = subtracted(counts())
    first, _ = restore_clipped_background(clipped)
    again, _ = restore_clipped_background(clipped.copy())
    assert np.array_equal(first, again)


def test_counts_and_channels_without_a_clip_are_left_as_they_are():
    crop = counts()
    assert restore_clipped_background(crop)[0] is crop  # no pixel at 0: the same array
    # A few pixels at 0 (a dark corner), and a channel nearly all 0: no background to read.
    crop[0, :10, :10] = 0
    crop[3] = 0
    crop[3, ::3, ::3] = 5
    assert restore_clipped_background(crop) == (crop, [])
    crop[2] = subtracted(crop[2:3])[0]
    restored, channels = restore_clipped_background(crop)
    assert channels == [2]
    assert np.array_equal(np.delete(restored, 2, axis=0), np.delete(crop, 2, axis=0))


def test_zero_padding_beside_a_cameras_counts_is_no_clip():
    """A quarter of a crop padded with 0 (a tile's edge, a border crop) beside counts on an
    offset of 500, noise of a few: read as a clipped background, the padding was drawn as the
    Gaussian's tail at 38 noise units under its level, -inf, and the frame refused as NaN."""
    rng = np.random.default_rng(3)
    crop = np.round(rng.normal(500.0, 4.0, (3, 80, 80))).astype(np.uint16)
    crop[:, :, 60:] = 0
    assert restore_clipped_background(crop) == (crop, [])
    # Subtracted and clipped, the same background is one (its zeros the Gaussian's share).
    clipped = subtracted(crop[:, :, :60].copy())
    restored, channels = restore_clipped_background(clipped)
    assert channels == [0, 1, 2] and np.isfinite(restored).all()


def test_a_subtracted_crop_folder_is_said_and_read_restored(crops, caplog):
    index = read_crop_index(crops)
    before = load_crops(index)
    for path in index.paths[:2]:
        write_tiff(path, subtracted(read_image(path)[0]))
    with caplog.at_level(logging.WARNING, logger="ctcnet.detect.crop_dataset"):
        after = load_crops(read_crop_index(crops))
    said = [r.getMessage() for r in caplog.records if "subtracted" in r.getMessage()]
    assert len(said) == 1 and "2 of 4 crops have their background subtracted and clipped at 0 " \
        "in DAPI, CK, CD45, CD61, CD66b" in said[0]
    assert str(index.paths[0].relative_to(crops)) in said[0]
    # The crops subtracted hold their clipped pixels again (under 0); the others as they were.
    assert (after[:2] < 0).any() and not (after[:2] == 0).any()
    assert np.array_equal(after[2:], before[2:])
