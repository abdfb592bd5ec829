"""Scale bars and labels burnt into composite crops are filled; a cell's own white is not."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ctcnet.io.annotations import annotation_mask, without_annotations


def _cell(side=120, ring_white=False, seed=0):
    """A (3, side, side) composite: a leukocyte-like disc (blue nucleus, green membrane ring)
    on a black background with a level or two of noise; ``ring_white``: its membrane ring
    saturated in every plane, as a leukocyte whose CK-channel signal and CD45 both saturate,
    with the nucleus's blue blurred out to it, shows it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    r = np.hypot(yy - side / 2, xx - side / 2)
    rgb = rng.integers(0, 3, (3, side, side)).astype(np.float32)
    rgb[2][r < 0.38 * side] = 200
    ring = (r >= 0.38 * side) & (r < 0.42 * side)
    rgb[1][ring] = 255
    if ring_white:
        rgb[:, ring] = 255
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _with_bar(rgb, label=True):
    image = Image.fromarray(rgb.transpose(1, 2, 0).copy())
    draw = ImageDraw.Draw(image)
    side = rgb.shape[1]
    draw.rectangle([6, side - 8, 6 + side // 3, side - 5], fill=(255, 255, 255))
    if label:
        draw.text((8, side - 22), "5 um", fill=(255, 255, 255))
    return np.asarray(image).transpose(2, 0, 1)


def test_a_scale_bar_and_its_label_are_filled_from_the_background_round_them():
    cell = _cell()
    marked = _with_bar(cell)
    mask = annotation_mask(marked)
    drawn = (np.abs(marked.astype(int) - cell).max(axis=0) > 10)
    assert mask[drawn].mean() > 0.95  # the bar and the label's strokes
    filled, n = without_annotations(marked)
    assert n == mask.sum() > 0
    # what was drawn is background again; the cell is untouched
    assert filled[:, drawn].max() <= 20  # (the faintest anti-aliasing of the text may stay)
    inside = np.hypot(*np.mgrid[-60:60, -60:60]) < 0.42 * 120
    np.testing.assert_array_equal(filled[:, inside], cell[:, inside])


@pytest.mark.parametrize("ring_white", [False, True])
def test_a_cell_without_a_bar_is_returned_as_it_is(ring_white):
    cell = _cell(ring_white=ring_white)
    assert not annotation_mask(cell).any()
    filled, n = without_annotations(cell)
    assert n == 0 and filled is cell


def test_a_label_without_its_bar_and_a_thick_white_blob_are_kept():
    cell = _cell()
    image = Image.fromarray(cell.transpose(1, 2, 0).copy())
    ImageDraw.Draw(image).text((8, 98), "A", fill=(255, 255, 255))
    assert not annotation_mask(np.asarray(image).transpose(2, 0, 1)).any()
    blob = cell.copy()
    blob[:, 40:80, 40:80] = 255  # every marker saturated over a wide area: a cell's, kept
    assert not annotation_mask(blob).any()


def test_a_white_ring_next_to_a_bar_keeps_all_but_what_touches_the_label():
    cell = _cell(ring_white=True)
    filled, _ = without_annotations(_with_bar(cell, label=False))
    ring = np.all(cell == 255, axis=0)
    assert (filled[:, ring] == 255).all(axis=0).mean() > 0.95
