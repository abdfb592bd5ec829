"""Scale bars, labels and white frames burnt into composite crops are filled; a cell's own white
is not."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ctcnet.io.annotations import annotation_mask, frame_widths, without_annotations, without_frame


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


def _disc(rgb, cy, cx, r, colour, blur=1.0):
    """``rgb`` with a blurred disc of ``colour`` at (cy, cx), radius ``r``."""
    from scipy import ndimage

    yy, xx = np.mgrid[:rgb.shape[1], :rgb.shape[2]]
    disc = ndimage.gaussian_filter((np.hypot(yy - cy, xx - cx) <= r).astype(np.float32), blur)
    out = rgb.astype(np.float32)
    for c, level in enumerate(colour):
        out[c] = out[c] * (1 - disc) + level * disc
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _bar_only(side, length, top, left=10, thick=3):
    rgb = np.random.default_rng(1).integers(0, 3, (3, side, side)).astype(np.uint8)
    rgb[:, top:top + thick, left:left + length] = 255
    return rgb


@pytest.mark.parametrize("colour, r", [((235, 215, 195), 9),   # CK+CD45+ cell, whitish
                                      ((255, 255, 255), 6)])   # a saturated white core
def test_a_cell_beside_a_bar_is_kept(colour, r):
    rgb = _bar_only(160, 60, top=140)
    for gap in (15, 25, 35):  # the cell's edge this far above the bar
        cell = _disc(rgb, 140 - gap - r, 40, r, colour)
        mask = annotation_mask(cell)
        yy, xx = np.mgrid[:160, :160]
        near_cell = np.hypot(yy - (140 - gap - r), xx - 40) <= r + 1
        assert not mask[near_cell].any(), gap
        assert mask[140:143, 10:70].all()  # the bar itself


def test_a_small_white_ringed_cell_beside_a_bar_keeps_its_ring():
    rgb = _bar_only(160, 70, top=140)
    yy, xx = np.mgrid[:160, :160]
    r = np.hypot(yy - 115, xx - 45)
    rgb[2][r < 12] = 200
    ring = (r >= 12) & (r < 15)  # a leukocyte 30 px across, its membrane white
    rgb[:, ring] = 255
    assert not annotation_mask(rgb)[ring].any()


@pytest.mark.parametrize("side, speck", [(20, (2, 4)), (40, (2, 6)), (32, (2, 9))])
def test_specks_and_membrane_pieces_of_small_crops_are_not_bars(side, speck):
    rgb = _cell(side)
    h, w = speck
    rgb[:, side - 4:side - 4 + h, 2:2 + w] = 255
    assert not annotation_mask(rgb).any()


def test_a_straight_white_membrane_at_a_cells_edge_is_not_a_bar():
    rgb = np.zeros((3, 32, 32), np.uint8)
    rgb[2, 8:24, 8:24] = 200  # a sharp square cell: nucleus ...
    rgb[:, 8:10, 8:24] = 255  # ... and a straight saturated membrane along one side
    rgb[1, 8:24, 8:10] = 255
    assert not annotation_mask(rgb).any()


@pytest.mark.parametrize("sides", [(2, 2, 2, 2), (3, 0, 0, 0), (0, 2, 0, 3)])
def test_a_white_frame_at_the_edges_is_filled_from_the_pixels_inside_it(sides):
    # A figure panel's border (or the white gap beside it) cut with the panel: every marker
    # at full scale along whole edges, read as a cell's CK and CD45 round the crop.
    cell = _cell()
    framed = cell.copy()
    top, bottom, left, right = sides
    framed[:, :top] = 255
    framed[:, framed.shape[1] - bottom:] = 255
    framed[:, :, :left] = 255
    framed[:, :, framed.shape[2] - right:] = 255
    # The frame's lines and the one inside each (its anti-aliasing or JPEG ringing).
    assert frame_widths(framed) == tuple(n + 1 if n else 0 for n in sides)
    filled, n = without_frame(framed)
    assert filled.shape == cell.shape and n > 0
    # No white is left (every plane bright at once), and inside the band it took the crop is
    # as it was.
    assert filled.min(axis=0).max() < 230
    inner = (slice(None), slice(top + 1, 120 - bottom - 1), slice(left + 1, 120 - right - 1))
    assert np.array_equal(filled[inner], cell[inner])


def test_no_frame_without_whole_white_edges():
    # A cell's white membrane reaching an edge, or a scale bar along the bottom, is no frame.
    cell = _cell(ring_white=True)
    cell[:, 40:80, 0] = 255  # white over a third of the left edge
    cell[:, 2, :] = 255  # a white line two lines in from the top edge, none at the edge
    assert frame_widths(cell) == (0, 0, 0, 0)
    assert without_frame(cell)[1] == 0
    assert frame_widths(_with_bar(_cell())) == (0, 0, 0, 0)


def test_a_light_grey_frame_is_a_frame_and_a_lifted_black_is_not():
    cell = _cell()
    grey = cell.copy()
    grey[:, :, :3] = 180  # a light grey border at the left edge
    assert frame_widths(grey) == (0, 0, 4, 0)
    lifted = (40 + cell * (215 / 255)).astype(np.uint8)  # a grey background, black at 40
    assert frame_widths(lifted) == (0, 0, 0, 0)


def test_a_frame_ends_at_its_first_line_that_is_not_white():
    cell = _cell()
    cell[:, 0, :] = 255  # a one-line frame at the top ...
    cell[:, 2, :] = 255  # ... and a white line two lines in, past a dark one: not the frame's
    assert frame_widths(cell) == (2, 0, 0, 0)


def test_a_crop_folders_reader_fills_a_frame_and_says_so(tmp_path, caplog):
    from ctcnet.detect.crop_dataset import read_crop
    from ctcnet.io.annotations import warn_of_marks
    from ctcnet.io.panel import Panel

    cell = _cell()
    framed = cell.copy()
    framed[:, :3], framed[:, -3:], framed[:, :, :3], framed[:, :, -3:] = 255, 255, 255, 255
    Image.fromarray(framed.transpose(1, 2, 0).copy()).save(tmp_path / "cell.png")
    panel = Panel.from_dict({"composite": "rgb", "channels": ["CK", "CD45", "DAPI"],
                             "pixel_size_um": 0.1})
    marks = []
    read = read_crop(tmp_path / "cell.png", panel, marks=marks)
    assert marks == ["frame"] and read.min(axis=0).max() < 230
    with caplog.at_level("WARNING"):
        warn_of_marks(tmp_path, marks + ["scale bar"], 7)
    assert "1 of 7 crops have a white or grey frame" in caplog.text
    assert "1 of 7 crops show a scale bar" in caplog.text
