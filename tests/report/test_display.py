"""Review gallery tiles: channels side by side on the sample's display scale, overlay, centre
marks on every panel, the markers' intensities, and the per-channel saliency row."""

import numpy as np
import pytest

from ctcnet.inference.backends import TorchBackend
from ctcnet.io.panel import default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec
from ctcnet.report.gallery_pages import GAP, heat_colours, render_tiles


def test_tiles_gain_a_saliency_row(rng):
    panel = default_panel()
    crops = rng.normal(150, 5, (3, 5, 32, 32)).astype(np.float32)
    plain = render_tiles(crops, panel, scale=2)
    assert plain.shape == (3, 64, 6 * (64 + GAP), 3)
    saliency = np.zeros((3, 5, 32, 32), np.float32)
    saliency[:, 1, 10:20, 10:20] = 1.0  # the CK channel drove the call
    tiles = render_tiles(crops, panel, scale=2, saliency=saliency)
    assert tiles.shape == (3, 2 * 64 + 2 * GAP, 6 * (64 + GAP), 3)
    heat_row = tiles[:, 64 + 2 * GAP:]
    ck_cell = heat_row[:, 30:32, (64 + GAP) + 30]        # inside the salient square, CK column
    dapi_cell = heat_row[:, 30:32, 30]                   # same place, DAPI column: dark
    assert ck_cell.min() > 200 and dapi_cell.max() < 10
    assert np.array_equal(heat_colours(np.array([0.0, 1.0])), [[0, 0, 0], [1, 1, 1]])


def test_torch_backend_explains_calls(tmp_path, rng, tiny_model_file):
    tiny_model_file(tmp_path / "m.pt", crop_size=32, width=8)
    explain = TorchBackend(tmp_path / "m.pt", device="cpu").explainer()
    crops = rng.normal(150, 5, (4, 5, 32, 32)).astype(np.float32)
    crops[:, 1, 12:20, 12:20] += 300
    maps = explain(crops, [0, 1, 2, 3])
    assert maps.shape == crops.shape and np.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1


def test_gallery_rows_keep_each_category_so_no_class_crowds_out_another():
    import pandas as pd

    from ctcnet.inference.gallery import gallery_categories, gallery_rows
    from ctcnet.io.panel import default_panel

    spec = ModelSpec("compact", default_panel(), default_taxonomy())
    # Many confident clusters, one CTC, two uncertain leukocytes, one sure leukocyte.
    events = pd.DataFrame({"class": ["cluster"] * 6 + ["ctc", "wbc", "wbc", "wbc"],
                           "confidence": [0.99] * 6 + [0.95, 0.5, 0.4, 0.99],
                           "review": [False] * 7 + [True, True, False]},
                          index=range(100, 110))
    rows = gallery_rows(events, spec, per_category=2)
    assert sorted(rows.tolist()) == [0, 1, 6, 7, 8]  # 2 clusters, the CTC, both reviews
    assert list(gallery_categories(events, spec)) == ["ctc", "cluster", "review"]


def test_gallery_categories_rank_as_a_stable_sort_of_the_confidence_decided_calls_first(rng):
    import pandas as pd

    from ctcnet.inference.gallery import gallery_categories
    from ctcnet.io.panel import default_panel

    spec = ModelSpec("compact", default_panel(), default_taxonomy())
    n = 400  # confidences on a coarse grid (many ties), a few not finite (failed rows)
    confidence = rng.integers(0, 8, n) / 8.0
    confidence[rng.random(n) < 0.03] = np.nan
    events = pd.DataFrame({"class": pd.Categorical(rng.choice(spec.class_names, n)),
                           "confidence": confidence, "review": rng.random(n) < 0.3},
                          index=rng.permutation(n) + 1000)
    got = gallery_categories(events, spec)
    reported = spec.taxonomy.reported_classes()
    for name in reported:
        # The calls a person decides (sent to review) first, least confident first; then the
        # rest, most confident first: a frame's cap keeps the calls that move the count.
        calls = events[events["class"] == name]
        want = pd.concat([calls[calls["review"]].sort_values("confidence", kind="stable"),
                          calls[~calls["review"]].sort_values("confidence", ascending=False,
                                                              kind="stable")])
        assert got[name].index.tolist() == want.index.tolist()
    unsure = events[events["review"] & ~events["class"].isin(reported)]
    assert got["review"].index.tolist() == unsure.sort_values("confidence",
                                                               kind="stable").index.tolist()


def test_a_ctc_rich_frames_gallery_keeps_the_calls_a_person_decides():
    """40 CTC calls on a frame, the gallery's cap 32: the 32 surest were kept, and the held
    and doubtful calls, those whose decision moves the count, were in no gallery."""
    import pandas as pd

    from ctcnet.inference.gallery import gallery_rows
    from ctcnet.io.panel import default_panel

    spec = ModelSpec("compact", default_panel(), default_taxonomy())
    confidence = np.linspace(0.99, 0.5, 40)
    review = confidence < 0.6
    guard = np.where(np.arange(40) == 3, "no_dna", "")  # a sure call the guard holds
    events = pd.DataFrame({"class": "ctc", "confidence": confidence, "review": review | (
        guard != ""), "guard": guard})
    kept = set(gallery_rows(events, spec, 32).tolist())
    assert set(np.flatnonzero(review | (guard != ""))) <= kept and len(kept) == 32


def test_a_call_the_run_holds_once_its_frames_are_read_keeps_its_gallery_crop():
    """A CTC-rich frame's crops are kept as it is finished; the scan-leak hold comes once
    every frame is read. A sure call it then held was past the frame's cap: held, shown
    first in the report's order, and on no page."""
    import pandas as pd
    import pyarrow as pa

    from ctcnet.inference.gallery import category_positions, gallery_rows
    from ctcnet.inference.scan_leak_hold import ScanLeakHold
    from ctcnet.io.panel import default_panel

    spec = ModelSpec("compact", default_panel(), default_taxonomy())
    need = np.full(40, 0.001, np.float32)
    need[35] = 0.2  # its CD45 needs a fifth of its CK as leak
    frame = pd.DataFrame({"event_id": np.arange(40), "class": "ctc",
                          "confidence": np.linspace(0.99, 0.9, 40), "review": False,
                          "guard": "", "cd45_leak_needed": need})
    kept = set(gallery_rows(frame, spec, 32).tolist())
    final = ScanLeakHold(0.05)(pa.Table.from_pandas(frame, preserve_index=False)).to_pandas()
    assert final["guard"].tolist()[35] != ""
    assert category_positions(final, spec)["ctc"][0] == 35 and 35 in kept
    assert len(kept) == 33  # the cap's 32 and the one the run may hold


# ---------------------------------------------------------------------------------------------
# The sample's display scale, the centre marks and the intensities written on the tiles.

def cells(rng, n=12, s=32, ck=None):
    """Crops of background 100 (noise 5) with a DAPI nucleus in the centre; ``ck``: the CK
    signal (counts above background) of each crop's centre, none by default."""
    crops = rng.normal(100, 5, (n, 5, s, s)).astype(np.float32)
    c = slice(s // 2 - 4, s // 2 + 4)
    crops[:, 0, c, c] += 400
    for i, level in enumerate(ck if ck is not None else []):
        crops[i, 1, c, c] += level
    return crops


def test_a_dim_marker_looks_dim_on_the_sample_scale(rng):
    from ctcnet.review.levels import levels_from_crops

    panel = default_panel()
    crops = cells(rng, ck=[600] * 3 + [80])  # three bright CTCs, one dim CK leak
    levels = levels_from_crops(crops, panel.names)
    assert levels.background[1] == pytest.approx(100, abs=3)
    assert levels.noise[1] == pytest.approx(5, rel=0.3)
    dim = crops[3:4]
    centre = (slice(28, 36), slice((64 + GAP) + 28, (64 + GAP) + 36))  # CK panel, x2 zoom
    own = render_tiles(dim, panel, scale=2)[0][centre]
    shared = render_tiles(dim, panel, scale=2, levels=levels)[0][centre]
    # Stretched to itself, the leak is white; on the sample's scale, a grey clearly dimmer
    # than the bright CTCs' CK, yet far above the background's noise (on a linear scale a
    # marker a tenth as bright as the sample's brightest was black to the eye).
    bright = render_tiles(crops[:1], panel, scale=2, levels=levels)[0][centre]
    assert own.mean() > 200 and bright.mean() > 200
    assert 60 < shared.mean() < 0.7 * bright.mean()
    corner = render_tiles(dim, panel, scale=2, levels=levels)[0][:12, (64 + GAP) + 2:
                                                                 (64 + GAP) + 14]
    assert corner.mean() < 0.3 * shared.mean()


def test_white_is_never_noise(rng):
    from ctcnet.review.levels import MIN_SNR, levels_from_crops

    levels = levels_from_crops(cells(rng), default_panel().names)  # no CK anywhere
    ck = 1
    assert levels.white[ck] - levels.background[ck] >= MIN_SNR * levels.noise[ck] - 1e-6


def test_every_channel_panel_marks_the_centre(rng):
    from ctcnet.report.gallery_pages import TICK_COLOUR

    panel = default_panel()
    flat = np.full((1, 5, 32, 32), 100, np.float32)
    tile = render_tiles(flat, panel, scale=1)[0]
    tick = np.round(np.array(TICK_COLOUR) * 255).astype(int)
    for k in range(6):  # five channels and the overlay
        left = k * (32 + GAP)
        top_mid, side_mid = tile[0, left + 16], tile[16, left]
        expected = tick if k < 5 else np.array([255, 255, 255])
        assert np.array_equal(top_mid, expected) and np.array_equal(side_mid, expected), k
    # A context tile outlines the event's own crop in every panel.
    boxed = render_tiles(flat, panel, scale=1, box=16)[0]
    assert np.array_equal(boxed[8, 8 + 3], tick) and np.array_equal(boxed[12, 23], tick)


def test_intensities_in_noise_units(rng):
    import pandas as pd

    from ctcnet.report.display import (
        mean_snr,
        measure_texts,
        peak_snr,
    )
    from ctcnet.review.levels import DisplayLevels

    levels = DisplayLevels(("DAPI", "CK"), (100.0, 100.0), (5.0, 5.0), (300.0, 300.0))
    crops = np.full((1, 2, 48, 48), 100, np.float32)
    crops[0, 1, 22:26, 22:26] = 150    # the cell's own CK: 10 noise units
    crops[0, 0, 0:4, 0:4] = 1000       # a bright neighbour in the corner: not the cell's
    peaks = peak_snr(crops, levels, pixel_size_um=0.64)
    assert peaks[0, 1] == pytest.approx(10) and peaks[0, 0] == pytest.approx(0)
    means = mean_snr(pd.DataFrame({"mean_DAPI": [160.0]}), levels)
    assert means[0, 0] == pytest.approx(12) and np.isnan(means[0, 1])
    assert measure_texts(means, peaks) == [["m12.0 pk0.0", "pk10.0"]]


def test_tile_measures_get_a_line_of_their_own(rng):
    from ctcnet.report.gallery_pages import LABEL_HEIGHT, montage_page

    tiles = render_tiles(cells(rng, n=2), default_panel(), scale=1)
    plain = montage_page(tiles, ["a", "b"], ["DAPI"], 32)
    measured = montage_page(tiles, ["a", "b"], ["DAPI"], 32, [["m1 p2"] * 5] * 2)
    assert measured.height == plain.height + 2 * LABEL_HEIGHT


def test_levels_are_kept_for_their_run_only(tmp_path):
    from ctcnet.review.levels import DisplayLevels, read_levels, write_levels

    levels = DisplayLevels(("DAPI", "CK"), (1.0, 2.0), (3.0, 4.0), (50.0, 60.0), run_id="r1")
    write_levels(tmp_path, levels)
    assert read_levels(tmp_path, "r1", ["DAPI", "CK"]) == levels
    assert read_levels(tmp_path, "r2", ["DAPI", "CK"]) is None       # another run's
    assert read_levels(tmp_path, "r1", ["DAPI", "CD45"]) is None     # other channels


def test_each_crop_pixels_place_in_its_frame_is_where_cropping_took_it_from():
    """The marks are placed by where each crop pixel came from: on a frame whose values are
    their own column (and row), a crop's values are the places its pixels were read at."""
    from ctcnet.detect.cropping import extract_crops
    from ctcnet.report.tile_marks import _frame_positions

    h, w = 300, 400
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    frame = np.stack([cols + 1000, rows + 1000])
    for size, model_um, scan_um in ((20, 0.64, 0.64), (21, 0.64, 0.64), (20, 0.64, 0.45),
                                    (24, 0.64, 0.8), (80, 0.64, 0.452)):
        x, y = np.array([181.3, 190.5]), np.array([150.6, 159.4])  # windows inside
        crops, _ = extract_crops(frame, x, y, size, model_um, scan_um)
        np.testing.assert_allclose(crops[:, 0, size // 2, :] - 1000,
                                   _frame_positions(x, size, model_um, scan_um), atol=2e-3)
        np.testing.assert_allclose(crops[:, 1, :, size // 2] - 1000,
                                   _frame_positions(y, size, model_um, scan_um), atol=2e-3)


def test_pixels_past_the_frame_border_are_hatched_on_every_panel(rng):
    """A crop at the frame's border is filled with background past it: the fill is hatched, so
    a cell cut by the border does not look whole beside empty glass."""
    from ctcnet.report.tile_marks import HATCH_COLOUR, outside_frame

    # Events at the left border, at the bottom-right corner and in the middle of a 100 x 200
    # frame; 20-pixel crops cut as they are: a window from rint(x) - 10.
    mask = outside_frame([3.2, 198.6, 100.0], [50.0, 99.4, 50.0], (100, 200), 20, 0.64, 0.64)
    assert mask.shape == (3, 20, 20)
    # The first crop starts at frame column 3 - 10 = -7: its first 7 columns lie outside.
    assert mask[0][:, :7].all() and not mask[0][:, 7:].any()
    # The second ends at column 199 + 9 = 208 and row 99 + 9 = 108: 9 columns and rows past.
    assert mask[1][:, 11:].all() and mask[1][11:, :].all() and not mask[1][:11, :11].any()
    assert not mask[2].any()
    # Resampled (0.45 um/px scan, 0.64 model): a window of 30 frame pixels from column -12,
    # crop pixel j read at about -11.8 + 1.42 j: the first 8 lie past the border.
    resampled = outside_frame([3.0], [50.0], (100, 200), 20, 0.64, 0.45)[0]
    assert resampled[:, :8].all() and not resampled[:, 8:].any()
    panel = default_panel()
    crops = rng.normal(100, 5, (3, 5, 20, 20)).astype(np.float32)
    tiles = render_tiles(crops, panel, scale=1, outside=mask)
    plain = render_tiles(crops, panel, scale=1)
    hatch = (np.asarray(HATCH_COLOUR, np.float32) * 255 + 0.5).astype(np.uint8)  # as drawn
    for k in range(6):  # every channel's panel and the overlay
        left = k * (20 + GAP)
        # Past the border (the centre's ticks aside, rows 8-11): hatch on black, no data.
        part = np.delete(tiles[0, :, left:left + 7], [8, 9, 10, 11], axis=0).reshape(-1, 3)
        stripes = (part == hatch).all(axis=1)
        assert 0.2 < stripes.mean() < 0.3 and (part[~stripes] == 0).all()
    # Inside the frame the tile is as drawn without the mask.
    assert np.array_equal(tiles[2], plain[2])


def test_the_events_box_is_outlined_where_its_object_lies(rng):
    """Detection can merge a CTC with a leukocyte beside it: the box shows what the event's
    numbers are read over."""
    from ctcnet.report.gallery_pages import TICK_COLOUR
    from ctcnet.report.tile_marks import event_boxes

    # A 20-pixel crop cut as it is round (53, 39.8): frame columns 43-62, rows 30-49. The
    # object's box (ends exclusive) spans columns 44-62 and rows 38-41; another lies past the
    # crop's left edge.
    boxes = event_boxes([[44, 38, 63, 42], [0, 38, 30, 42]], [53.0, 53.0], [39.8, 39.8], 20,
                        0.64, 0.64)
    assert boxes.tolist() == [[1, 19, 8, 11], [-1, -1, 8, 11]]
    panel = default_panel()
    crops = rng.normal(100, 5, (2, 5, 20, 20)).astype(np.float32)
    tiles = render_tiles(crops, panel, scale=1, boxes=boxes)
    tile = tiles[0]
    tick = (np.asarray(TICK_COLOUR, np.float32) * 255 + 0.5).astype(np.uint8)
    top_row = (tile[8, 1:20] == tick).all(axis=1)
    columns = np.arange(1, 20)                               # dotted, its corners drawn
    assert np.array_equal(top_row, (columns % 2 == 0) | (columns == 1) | (columns == 19))
    assert (tile[[8, 10], 1] == tick).all()                 # the left side, dotted
    assert not (tile[3] == tick).all(axis=1).any()          # nothing off the box
    # A box off the crop draws nothing but its sides within it (none here).
    assert np.array_equal(tiles[1], render_tiles(crops, panel, scale=1)[1])


def test_the_overlay_leaves_the_noise_out_the_grey_panels_keep_it(rng, monkeypatch):
    """Every channel's noise mixed in colour is speckle of every hue a dim CK must stand out
    of: the overlay takes a noise unit off each channel, the grey panels show the noise."""
    from ctcnet.report import display
    from ctcnet.review.levels import levels_from_crops

    panel = default_panel()
    crops = cells(rng, ck=[600] * 3 + [60])
    levels = levels_from_crops(crops, panel.names)
    width = 32 + GAP
    corner = (slice(0, 10), slice(0, 10))                      # background only

    def drawn():
        tile = render_tiles(crops[3:4], panel, scale=1, levels=levels)[0]
        return tile[:, width:2 * width][corner], tile[:, 5 * width:6 * width]

    grey_ck, overlay = drawn()
    monkeypatch.setattr(display, "OVERLAY_FLOOR_SNR", 0.0)
    grey_unfloored, overlay_unfloored = drawn()
    assert np.array_equal(grey_ck, grey_unfloored) and grey_ck.mean() > 4
    assert overlay[corner].mean() < 0.4 * overlay_unfloored[corner].mean()
    # The dim CK (12 noise units) stays green in the overlay.
    assert overlay[13:19, 13:19][..., 1].mean() > 60


def test_a_caption_wider_than_its_tile_wraps_onto_more_lines():
    """The reasons at a caption's end were cut off at the tile's edge."""
    from ctcnet.report.gallery_pages import LABEL_HEIGHT, montage_page

    tiles = np.zeros((2, 40, 200, 3), np.uint8)
    short = montage_page(tiles, ["#1 ctc p=0.95", "#2 wbc p=0.90"], ["DAPI"], 40)
    long = "#7 r00c01 x=3 y=5 debris (network: ctc p=0.99) border-cut | CTC/cluster cut by border"
    wrapped = montage_page(tiles, ["#1 ctc p=0.95", long], ["DAPI"], 40)
    assert short.height == LABEL_HEIGHT + 2 * (LABEL_HEIGHT + 40 + GAP)
    lines = (wrapped.height - LABEL_HEIGHT) // 2 - 40 - GAP
    assert lines // LABEL_HEIGHT >= 2 and lines % LABEL_HEIGHT == 0


def test_the_events_levels_are_read_from_where_none_were_kept():
    """The first candidates' frames, or, without a candidate (a negative sample), the first
    frames: a few frames read, not every frame of a cartridge of 175; at most LEVEL_EVENTS,
    evenly thinned."""
    import pandas as pd

    from ctcnet.review.levels import LEVEL_EVENTS, LEVEL_FRAMES, level_events

    events = pd.DataFrame({"frame": [f for f in range(20) for _ in range(100)],
                           "event_id": range(2000)})
    chosen = level_events(events, [7, 3, 7, 9])
    assert set(chosen["frame"]) == {3, 7, 9} and len(chosen) <= LEVEL_EVENTS
    chosen = level_events(events)
    assert set(chosen["frame"]) == set(range(LEVEL_FRAMES))
    assert len(chosen) == LEVEL_EVENTS and chosen["event_id"].is_monotonic_increasing
    assert len(level_events(events, [99])) == LEVEL_EVENTS  # frames of none: the first
