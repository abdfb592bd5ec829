"""Event detection and crop extraction on small drawn frames (and simulated ones when present);
odd frames and crops anywhere around them never crash (hypothesis)."""

import numpy as np
import pandas as pd
import pytest
from conftest import FUZZ
from hypothesis import given, reject
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import ndimage

from ctcnet.detect.cropping import extract_crops, extract_windows, to_model_scale, window_size
from ctcnet.detect.detection import DetectConfig, bin_frame, detect_events
from ctcnet.detect.splitting import LabelRuns, adjacent_saddles, group_max, window_max_at
from ctcnet.detect.truth_matching import detection_recall, match_to_truth
from ctcnet.errors import InputError
from ctcnet.io.panel import Panel, load_panel
from ctcnet.io.scan import open_cartridge

PANEL = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
DAPI, CK, CD45 = 0, 1, 2


def gauss(shape, x, y, sigma, amplitude):
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return amplitude * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2.0 * sigma ** 2))


# Object kinds in micrometres: (channel, sigma_um, amplitude in counts over background).
KINDS = {
    "wbc": [(DAPI, 2.5, 250.0), (CD45, 4.0, 120.0)],
    "ctc": [(DAPI, 3.0, 250.0), (CK, 5.0, 300.0)],
    "tdev": [(CK, 0.9, 120.0)],              # DAPI-negative: must still be found
    "bare_nucleus": [(DAPI, 2.5, 200.0)],
}


def draw_frame(objects, shape=(256, 320), pixel_um=0.64, seed=0, gradient=True):
    """A (3, H, W) frame of raw counts: offset, illumination gradient, blobs, Poisson+read noise.

    ``objects``: list of (kind, x_um, y_um). Returns float32 counts.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    frame = np.zeros((3, h, w), dtype=np.float64)
    background = np.array([40.0, 25.0, 30.0])[:, None, None]
    if gradient:  # uneven illumination: background doubles across the frame
        background = background * (1.0 + np.linspace(0, 1, w)[None, None, :])
    frame += background
    for kind, x_um, y_um in objects:
        for ch, sigma_um, amp in KINDS[kind]:
            frame[ch] += gauss(shape, x_um / pixel_um, y_um / pixel_um, sigma_um / pixel_um, amp)
    frame = rng.poisson(frame) + rng.normal(100.0, 3.0, frame.shape)  # camera offset + read
    return np.clip(frame, 0, 4095).astype(np.float32)


def grid_objects(kinds, shape_um=(160, 200), spacing_um=40.0):
    """Objects on a grid, well apart and away from the border."""
    xs = np.arange(spacing_um, shape_um[1] - spacing_um / 2, spacing_um)
    ys = np.arange(spacing_um, shape_um[0] - spacing_um / 2, spacing_um)
    spots = [(x, y) for y in ys for x in xs]
    return [(kinds[i % len(kinds)], x, y) for i, (x, y) in enumerate(spots)]


def test_finds_every_kind_including_dapi_negative_and_nothing_else():
    objects = grid_objects(list(KINDS))
    frame = draw_frame(objects)
    events = detect_events(frame, PANEL)
    truth = np.array([(x / 0.64, y / 0.64) for _, x, y in objects])
    ti, di = match_to_truth(events[["x", "y"]].to_numpy(), truth, radius_px=3.0)
    assert len(ti) == len(objects), "every drawn object found within 3 px of its centre"
    assert len(events) == len(objects), "no false detections on the noisy gradient background"
    tdev = [i for i, (k, _, _) in enumerate(objects) if k == "tdev"]
    found_tdev = events.iloc[di[np.isin(ti, tdev)]]
    assert len(found_tdev) == len(tdev)
    assert (found_tdev["mean_CK"] > found_tdev["mean_DAPI"]).all()
    ctc = events.iloc[di[np.isin(ti, [i for i, o in enumerate(objects) if o[0] == "ctc"])]]
    wbc = events.iloc[di[np.isin(ti, [i for i, o in enumerate(objects) if o[0] == "wbc"])]]
    assert ctc["mean_CK"].mean() > wbc["mean_CK"].mean()
    assert wbc["mean_CD45"].mean() > ctc["mean_CD45"].mean()
    # Boxes hold their centres; areas are physical.
    assert ((events.bbox_x0 <= events.x) & (events.x < events.bbox_x1)).all()
    assert ((events.bbox_y0 <= events.y) & (events.y < events.bbox_y1)).all()
    assert np.allclose(events.area_um2, events.area_px * 0.64 ** 2)


def test_a_frame_scaled_to_fractions_is_refused_not_read_as_empty(tmp_path):
    """A notebook's frame scaled to 0-1 (skimage.img_as_float) found no event, without a
    word: refused in words as a scan's reader refuses it; the same counts as float32 are
    read, and a panel may be given as its panel.json's path."""
    frame = draw_frame(grid_objects(list(KINDS)))
    path = tmp_path / "panel.json"
    path.write_text('{"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64}')
    assert len(detect_events(frame, str(path))) == len(detect_events(frame, PANEL)) > 0
    for top in (4095.0, 65535.0):
        with pytest.raises(InputError, match="lie within 0-1 .* scaled"):
            detect_events(frame / top, PANEL)
    assert len(detect_events(np.zeros_like(frame), PANEL)) == 0  # dark, not fractions
    with pytest.raises(InputError, match="panel must be the frame's Panel"):
        detect_events(frame, None)
    # A dim scan's background subtracted and clipped at 0, drawn again as predict draws it:
    # fractions below 0 of its own, not a scaling; predict's reader checked its counts.
    from ctcnet.detect.clipped_background import restore_clipped_background

    wide = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64,
                       "bit_depth": 16})
    offsets = np.array([140.0, 125.0, 130.0], np.float32)[:, None, None]
    dim = np.clip(draw_frame(grid_objects(["ctc"]), gradient=False) - offsets, 0, None).round()
    restored, drawn = restore_clipped_background(dim)
    assert drawn == [0, 1, 2] and float(restored.max()) < 0.01 * 65535
    assert len(detect_events(restored, wide, counts_checked=True)) > 0


def test_pure_noise_gives_no_events():
    frame = draw_frame([], seed=3)
    assert len(detect_events(frame, PANEL)) == 0


def test_a_display_exports_clipped_black_and_faint_halo_pixels_are_no_events():
    """An 8-bit composite frame: background clipped to 0 (no noise to measure) and the
    halo pixels of 1-3 counts compression leaves round bright cells. Read in units of the
    quantisation's noise, the cells are the events, not the halo."""
    rng = np.random.default_rng(5)
    cells = grid_objects(["ctc", "wbc"], spacing_um=50.0)
    frame = np.zeros((3, 256, 320))
    for kind, x_um, y_um in cells:
        for ch, sigma_um, amp in KINDS[kind]:
            frame[ch] += gauss(frame.shape[1:], x_um / 0.64, y_um / 0.64, sigma_um / 0.64, amp)
    frame = np.clip(np.floor(frame * 0.8), 0, 255)
    black = frame.sum(axis=0) == 0
    for _ in range(40):  # compression's 6 x 6 px blocks of a count or two on the black
        y, x = rng.integers(0, 250), rng.integers(0, 314)
        if black[y:y + 6, x:x + 6].all():
            frame[rng.integers(0, 3), y:y + 6, x:x + 6] = rng.integers(1, 3)
    events = detect_events(frame.astype(np.uint8), PANEL)
    assert len(events) == len(cells)


def test_touching_leukocytes_split_but_ctc_cluster_kept_whole():
    # Two ~10 um leukocytes 13 um apart (CD45 halos joined, a dip between them) -> two events.
    # A CTC (~15 um of CK) with a leukocyte attached at the same spacing -> one cluster event.
    objects = [("wbc", 60, 60), ("wbc", 73, 60), ("ctc", 60, 130), ("wbc", 73, 130)]
    frame = draw_frame(objects, shape=(280, 200))
    events = detect_events(frame, PANEL)
    top = events[events.y < 100 / 0.64]
    bottom = events[events.y >= 100 / 0.64]
    assert len(top) == 2
    assert len(bottom) == 1
    # Without splitting the touching leukocytes stay one object: the split is what made two.
    merged = detect_events(frame, PANEL, DetectConfig(split_touching=False))
    assert len(merged[merged.y < 100 / 0.64]) == 1


def test_sizes_follow_pixel_size():
    objects = grid_objects(["wbc", "ctc", "bare_nucleus"])
    coarse = detect_events(draw_frame(objects, (256, 320), 0.64), PANEL)
    fine_panel = PANEL.with_pixel_size(0.32)
    fine = detect_events(draw_frame(objects, (512, 640), 0.32), fine_panel)
    assert len(coarse) == len(fine) == len(objects)
    # Same scene, same physical positions (within 1.5 um) and areas, whatever the pixel size.
    ci, fi = match_to_truth(fine[["x", "y"]].to_numpy() * 0.32,
                            coarse[["x", "y"]].to_numpy() * 0.64, radius_px=1.5)
    assert len(ci) == len(objects)
    assert np.allclose(coarse.area_um2.to_numpy()[ci], fine.area_um2.to_numpy()[fi], rtol=0.35)


def test_size_limits_in_micrometres():
    frame = draw_frame([("wbc", 80, 80)], gradient=False)
    frame[CK, 30, 30] += 3000  # a hot pixel: far below the smallest event
    events = detect_events(frame, PANEL)
    assert len(events) == 1
    strict = detect_events(frame, PANEL, DetectConfig(max_diameter_um=5.0))
    assert len(strict) == 0  # the leukocyte (~10 um) is above this limit


def test_edge_cut_objects_flagged_and_cropped_with_padding():
    frame = draw_frame([("ctc", 1.0, 60.0), ("wbc", 100.0, 60.0)], gradient=False)
    events = detect_events(frame, PANEL).sort_values("x")
    assert events["edge_cut"].tolist() == [True, False]
    crops, padded = extract_crops(frame, events.x.to_numpy(), events.y.to_numpy(), 64)
    assert crops.shape == (2, 3, 64, 64) and crops.dtype == np.float32
    assert padded.tolist() == [True, False]
    assert np.isfinite(crops).all()


def test_crops_are_centred_and_match_plain_slicing():
    rng = np.random.default_rng(1)
    frame = rng.random((3, 90, 120), dtype=np.float32)
    x, y = np.array([60.0, 10.0, 118.0]), np.array([45.0, 5.0, 88.0])
    windows, padded = extract_windows(frame, x, y, 20)
    assert np.array_equal(windows[0], frame[:, 35:55, 50:70])
    assert padded.tolist() == [False, True, True]
    # Past the border: background, never a mirror image of the frame.
    mirrored = np.pad(frame, ((0, 0), (20, 20), (20, 20)), mode="reflect")
    assert not np.array_equal(windows[1], mirrored[:, 20 + 5 - 10:20 + 5 + 10, 20:40])
    np.testing.assert_array_equal(windows[1][:, 5:, :], frame[:, 0:15, 0:20])


def test_resampling_covers_the_model_field_of_view():
    objects = [("ctc", 50, 50)]
    coarse = draw_frame(objects, (160, 160), 0.64, gradient=False)
    fine = draw_frame(objects, (320, 320), 0.32, gradient=False)
    assert window_size(64, 0.64, 0.32) == 129 and window_size(64, 0.64, 0.64) == 64
    a, _ = extract_crops(coarse, np.array([50 / 0.64]), np.array([50 / 0.64]), 64)
    b, _ = extract_crops(fine, np.array([50 / 0.32]), np.array([50 / 0.32]), 64, 0.64, 0.32)
    assert b.shape == a.shape == (1, 3, 64, 64)
    # The same cell fills the same part of the crop: compare CK profiles (noise aside).
    prof_a, prof_b = a[0, CK].mean(axis=0), b[0, CK].mean(axis=0)
    assert np.corrcoef(prof_a, prof_b)[0, 1] > 0.97


def test_bin_frame_is_block_mean():
    frame = np.arange(2 * 7 * 10, dtype=np.float32).reshape(2, 7, 10)
    out = bin_frame(frame, 3)
    assert out.shape == (2, 2, 3)
    assert np.isclose(out[1, 1, 2], frame[1, 3:6, 6:9].mean())


def test_detection_recall_matches_per_frame():
    truth = pd.DataFrame({"frame": [0, 0, 1], "x": [10.0, 50.0, 10.0], "y": [10.0, 10.0, 10.0],
                          "class": ["ctc", "wbc", "wbc"]})
    events = pd.DataFrame({"frame": [0, 1, 1], "x": [11.0, 200.0, 9.0], "y": [10.0, 9.0, 10.0]})
    r = detection_recall(events, truth, pixel_size_um=1.0, radius_um=3.0)
    assert r["recall"] == pytest.approx(2 / 3)
    assert r["recall_per_class"]["ctc"]["recall"] == 1.0
    assert r["precision"] == pytest.approx(2 / 3)


def test_recall_on_simulated_cartridge(tmp_path):
    from ctcnet.io.scan import read_frame
    from ctcnet.simulate import simulate_cartridge

    panel = load_panel(None)
    truth = simulate_cartridge(tmp_path / "cart", panel, num_frames=2, frame_shape=(512, 640),
                               seed=5, events_per_frame=80)
    cart = open_cartridge(tmp_path / "cart")
    tables = []
    for frame in cart.frames:
        ev = detect_events(read_frame(frame, cart.panel), cart.panel)
        tables.append(ev.assign(frame=frame.index, row=frame.row, col=frame.col))
    events = pd.concat(tables, ignore_index=True)
    result = detection_recall(events, truth, panel.pixel_size_um)
    assert result["recall"] >= 0.9, result
    for cls in ("ctc", "wbc", "cluster"):
        if cls in result["recall_per_class"]:
            assert result["recall_per_class"][cls]["recall"] >= 0.9, result


def test_any_panel_size():
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "CD61", "VIM", "X1"],
                             "pixel_size_um": 0.64})
    frame3 = draw_frame([("ctc", 60, 60)], gradient=False)
    frame = np.concatenate([frame3, frame3[:3] * 0 + 120.0 +
                            np.random.default_rng(0).normal(0, 3, frame3.shape)]).astype(
        np.float32)
    events = detect_events(frame, panel)
    assert len(events) == 1
    assert [c for c in events.columns if c.startswith("mean_")] == \
        [f"mean_{n}" for n in panel.names]


# --- bringing crops to model scale --------------------------------------------------------------

def test_to_model_scale_resamples_then_fits_the_crop_size():
    from ctcnet.detect.cropping import to_model_scale

    crops = np.ones((2, 3, 160, 120), np.float32)
    out, cut, padded = to_model_scale(crops, 0.32, 0.64, 64)   # 160x120 -> 80x60 -> 64x64
    assert out.shape == (2, 3, 64, 64) and out.dtype == np.float32
    assert cut == 80 - 64 and padded == 64 - 60
    same, cut, padded = to_model_scale(crops[..., :64, :64], 0.64, 0.64, 64)
    assert cut == padded == 0 and np.array_equal(same, crops[..., :64, :64])


def test_to_model_scale_averages_large_factors_instead_of_aliasing():
    """A 0.02 um/px photo (one cell hundreds of px across) shrunk 32x: fine stripes average
    out to their mean; plain subsampling would hit only the bright or only the dark ones."""
    from ctcnet.detect.cropping import to_model_scale

    stripes = np.zeros((1, 1, 2560, 2560), np.float32)
    stripes[..., ::2, :] = 1000.0
    out, _, _ = to_model_scale(stripes, 0.02, 0.64, 80)
    assert out.shape == (1, 1, 80, 80)
    assert np.allclose(out, 500.0, rtol=0.02)


def test_padding_and_cutting_are_logged(tmp_path, caplog):
    import logging

    from ctcnet.detect.crop_dataset import load_crops, read_crop_index, write_crop_dataset

    panel = PANEL.with_pixel_size(0.64)
    small = np.random.default_rng(0).integers(90, 110, (2, 3, 40, 40), dtype=np.uint16)
    write_crop_dataset(tmp_path / "d", small, ["ctc", "wbc"], panel)
    with caplog.at_level(logging.INFO, logger="ctcnet.detect.cropping"):
        out = load_crops(read_crop_index(tmp_path / "d"), 64, 0.64)
    assert out.shape == (2, 3, 64, 64)
    assert "2 of 2 crops were smaller" in caplog.text


def crop_dataset_at(tmp_path, pixel_um, seed=5):
    """The same simulated cells written as a dataset at 0.64 and at ``pixel_um`` um/px."""
    from ctcnet.detect.crop_dataset import write_crop_dataset
    from ctcnet.detect.resampling import resample
    from ctcnet.simulate import simulate_crops

    panel = load_panel(None)
    batch = simulate_crops(3, panel, crop_size=48, seed=seed)
    fine = resample(batch.images.astype(np.float32), 0.64 / pixel_um)
    write_crop_dataset(tmp_path / "coarse", batch.images, batch.labels, panel)
    write_crop_dataset(tmp_path / "fine", np.clip(np.rint(fine), 0, 65535).astype(np.uint16),
                       batch.labels, panel.with_pixel_size(pixel_um))
    return batch


@pytest.mark.parametrize("path", ["load_crops", "datamodule", "export_calibration"])
def test_every_crop_path_brings_finer_crops_to_model_scale(tmp_path, path):
    """0.32 um/px crops reach the model as the same 0.64 um/px crops on each path (evaluate
    and predict on crop datasets use load_crops; training its data module; int8 export its
    calibration loader)."""
    from ctcnet.detect.crop_dataset import load_crops, read_crop_index

    batch = crop_dataset_at(tmp_path, 0.32)
    reference = load_crops(read_crop_index(tmp_path / "coarse"), 48, 0.64)
    if path == "load_crops":
        got = load_crops(read_crop_index(tmp_path / "fine"), 48, 0.64)
    elif path == "datamodule":
        from ctcnet.training.datamodule import CTCDataModule

        dm = CTCDataModule(crop_size=48, data_dir=str(tmp_path / "fine"),
                           panel=load_panel(None).to_dict(), val_fraction=0.0)
        dm.setup("fit")
        got = np.concatenate([split.images for split in dm.splits.values()])
    else:
        from ctcnet.deploy.export_crops import load_labelled_crops
        from ctcnet.io.taxonomy import default_taxonomy
        from ctcnet.nn.spec import ModelSpec

        spec = ModelSpec("compact", load_panel(None), default_taxonomy(), crop_size=48)
        got = load_labelled_crops(str(tmp_path / "fine"), spec, count=len(batch.labels)).images
    assert got.shape == reference.shape
    if path != "load_crops":  # these split or sample the crops; compare sorted sums
        assert np.allclose(np.sort(got.sum(axis=(1, 2, 3))),
                           np.sort(reference.sum(axis=(1, 2, 3))), rtol=0.05)
    else:
        assert np.abs(got - reference).mean() < 0.05 * reference.mean()


@pytest.mark.parametrize("shape,window", [((3, 120, 150), 31), ((2, 12, 9), 40), ((1, 5, 1), 4)])
def test_border_windows_keep_the_frame_and_fill_the_rest_with_its_background(shape, window):
    rng = np.random.default_rng(4)
    frame = rng.normal(1000, 30, shape).clip(0).astype(np.uint16)
    _, h, w = shape
    x, y = rng.uniform(-15, w + 15, 60), rng.uniform(-15, h + 15, 60)
    got, padded = extract_windows(frame, x, y, window)
    pad = 3 * window + max(h, w)
    placed = np.pad(frame.astype(np.int64), ((0, 0), (pad, pad), (pad, pad)), constant_values=-1)
    top = np.rint(y).astype(int) - window // 2 + pad
    left = np.rint(x).astype(int) - window // 2 + pad
    want = np.stack([placed[:, t:t + window, s:s + window] for t, s in zip(top, left)])
    inside = want >= 0
    np.testing.assert_array_equal(got[inside], want[inside])   # the frame's own pixels
    outside = got[~inside].astype(float)                       # background of the frame's level
    assert padded.any() and abs(outside.mean() - 1000) < 60  # a 5 px frame measures roughly
    assert outside.min() >= frame.min() and outside.max() <= frame.max()


def test_the_fill_pattern_is_the_documented_table_and_a_copy():
    """deploying.md tells a port to save this table: numpy default_rng(20261125), w x w
    standard normals. Each call gives a copy, so no caller can change another's fill."""
    from ctcnet.detect.cropping import fill_pattern

    pattern = fill_pattern(67, 67)
    expected = np.random.default_rng(20261125).standard_normal((67, 67)).astype(np.float32)
    np.testing.assert_array_equal(pattern, expected)
    pattern[:] = 0
    np.testing.assert_array_equal(fill_pattern(67, 67), expected)


def test_a_cell_at_the_frame_border_is_not_doubled_by_padding():
    """A mirror would show a second cell past the border (a 'cluster'); background shows none."""
    frame = np.full((1, 60, 60), 100.0, np.float32)
    frame[0, 20:40, 0:8] = 5000.0                    # a bright cell cut by the left border
    crops, padded = extract_crops(frame, np.array([2.0]), np.array([30.0]), 32)
    assert padded[0]
    left_of_border = crops[0, 0, :, :14]             # window columns -14..-1: past the border
    assert left_of_border.max() <= 100.0 + 1e-3


def test_a_tight_crop_is_padded_with_its_background_not_tiled():
    """A crop smaller than the field of view, the cell filling it: the margin is its background
    (a clipped black one stays black), so the model sees one cell, not a 3x3 tile of cells."""
    yy, xx = np.mgrid[:30, :30]
    cell = (((yy - 14.5) ** 2 + (xx - 14.5) ** 2) < 14 ** 2).astype(np.float32) * 200.0
    crops, cut, padded = to_model_scale(cell[None, None], None, None, 80)
    assert padded == 100 and cut == 0
    assert np.count_nonzero(crops[0, 0] > 100) == np.count_nonzero(cell > 100)
    assert crops[0, 0, :25].max() == 0.0             # black background padded with black
    noisy = cell + np.random.default_rng(0).normal(50, 5, cell.shape).astype(np.float32)
    out = to_model_scale(noisy[None, None], None, None, 80)[0][0, 0]
    margin = out[:25].ravel()
    assert abs(margin.mean() - 50) < 2 and 3 < margin.std() < 7
    # A crop 1 px thin (a strip, or a crop resampling shrank to 1 px) has a ring: itself. Its
    # margin was filled at the zeros placed round it.
    strip = to_model_scale(np.full((1, 1, 1, 5), 1000, np.float32), None, None, 8)[0]
    assert np.median(strip) == 1000


@pytest.mark.parametrize("size", [(82, 82), (79, 83), (67, 134)])
def test_bilinear_is_torchs_bilinear_interpolation(size):
    import torch
    import torch.nn.functional as F

    from ctcnet.detect.resampling import bilinear

    crops = np.random.default_rng(5).poisson(300, (4, 3, 67, 67)).astype(np.uint16)
    want = F.interpolate(torch.from_numpy(crops.astype(np.float32)), size=size,
                         mode="bilinear", align_corners=False).numpy()
    np.testing.assert_allclose(bilinear(crops, size), want, rtol=1e-6, atol=1e-3)
    part = bilinear(crops, size, slice(2, 50), slice(1, 60))
    np.testing.assert_allclose(part, want[..., 2:50, 1:60], rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("shape,size", [((300, 5, 88, 88), (81, 81)), ((2, 3, 160, 120), (80, 60)),
                                        ((1, 1, 640, 640), (20, 20)), ((3, 2, 67, 134), (47, 94)),
                                        ((2, 3, 40, 60), (50, 30)), ((0, 3, 40, 40), (30, 30))])
def test_numpy_resampling_is_torchs_antialiased_interpolation(shape, size):
    """Crops shrunk in numpy (predict needs no torch) match torch's antialiased bilinear
    interpolation, which the frames on a GPU use, to float rounding."""
    import torch
    import torch.nn.functional as F

    from ctcnet.detect.resampling import antialias_matrix, resample

    crops = np.random.default_rng(6).poisson(300, shape).astype(np.float32)
    want = F.interpolate(torch.from_numpy(crops), size=size, mode="bilinear",
                         align_corners=False, antialias=True).numpy() if len(crops) else \
        np.zeros((*shape[:2], *size), np.float32)
    if size[0] <= shape[2] and size[1] <= shape[3]:
        got = resample(crops, size[0] / shape[2])
    else:  # one side grows, one shrinks: resample() scales both alike, so the matrices
        got = antialias_matrix(shape[2], size[0]) @ crops @ antialias_matrix(shape[3], size[1]).T
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


def frames():
    """(3, H, W) frames of every accepted pixel type, tiny to roomy, with any values."""
    dtype = st.sampled_from([np.uint8, np.uint16, np.float32])
    shape = st.tuples(st.just(3), st.integers(1, 70), st.integers(1, 70))
    return dtype.flatmap(lambda dt: hnp.arrays(
        dt, shape, elements=hnp.from_dtype(np.dtype(dt), allow_nan=True, allow_infinity=True)
        if dt == np.float32 else None))


def frames_with_cells():
    """Background noise plus a few bright blobs, so detection finds events to crop."""
    return st.builds(_cell_frame, st.integers(12, 90), st.integers(12, 90),
                     st.integers(0, 2**16 - 1), st.sampled_from([np.uint16, np.float32]),
                     st.floats(1.0, 1e6))


def _cell_frame(h, w, seed, dtype, scale):
    rng = np.random.default_rng(seed)
    frame = rng.normal(100, 5, (3, h, w))
    yy, xx = np.mgrid[:h, :w]
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        frame += 400 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
    frame *= scale / 100.0
    info = np.iinfo(dtype) if dtype == np.uint16 else np.finfo(dtype)
    return np.clip(frame, 0, info.max).astype(dtype)


@FUZZ
@given(frames())
def test_detection_either_refuses_or_finds_events_inside_the_frame(frame):
    try:
        events = detect_events(frame, PANEL)
    except InputError:
        reject()  # (hypothesis fails a test whose inputs are all refused)
    _, h, w = frame.shape
    assert np.isfinite(events[["x", "y"]].to_numpy()).all()
    assert ((events["x"] >= 0) & (events["x"] < w) & (events["y"] >= 0) & (events["y"] < h)).all()
    assert (events["area_px"] > 0).all()


@FUZZ
@given(frames_with_cells(), st.sampled_from([16, 33]), st.sampled_from([0.32, 0.64, 1.0]))
def test_crops_have_the_model_size_and_stay_finite(frame, crop, model_px):
    events = detect_events(frame, PANEL, DetectConfig(threshold_snr=4.0))
    crops, padded = extract_crops(frame, events["x"].to_numpy(), events["y"].to_numpy(), crop,
                                  model_px, PANEL.pixel_size_um)
    assert crops.shape == (len(events), 3, crop, crop) and crops.dtype == np.float32
    assert len(padded) == len(events)
    assert np.isfinite(crops).all()
    # Crops are made of frame pixels (resampled, or background filled within the range of the
    # pixels measured): never outside the frame's range.
    if len(crops):
        lo, hi = float(frame.min()), float(frame.max())
        span = max(1.0, hi - lo) * 1e-3
        assert crops.min() >= lo - span and crops.max() <= hi + span


@FUZZ
@given(st.floats(0, 1), st.floats(0, 1), st.integers(1, 40), st.integers(1, 40),
       st.integers(-3, 3), st.integers(-3, 3))
def test_crops_anywhere_around_tiny_frames(fy, fx, h, w, dy, dx):
    """Windows far larger than the frame, centred anywhere on it: filled, never a crash; a
    centre off it is refused (its crop would be background alone)."""
    frame = np.arange(2 * h * w, dtype=np.float32).reshape(2, h, w)
    x, y = np.array([fx * w - 0.5 + dx * (w + 1)]), np.array([fy * h - 0.5 + dy * (h + 1)])
    if dx or dy:
        with pytest.raises(InputError, match="off the"):
            extract_crops(frame, x, y, 24)
        return
    crops, padded = extract_crops(frame, x, y, 24)
    assert crops.shape == (1, 2, 24, 24) and np.isfinite(crops).all()
    if 24 > min(h, w):  # the window cannot fit: it must be reported as padded
        assert padded[0]


@pytest.mark.parametrize("shape", [(3, 12, 12), (3, 3, 500), (3, 400, 5), (3, 1, 1)])
def test_known_odd_frames(shape):
    """Frame shapes that once crashed detection: refused by name or detected."""
    frame = np.random.default_rng(0).integers(90, 110, shape).astype(np.uint16)
    try:
        events = detect_events(frame, PANEL)
    except InputError as err:
        assert "too small" in str(err) and min(shape[1:]) < 12
    else:
        assert min(shape[1:]) >= 12
        assert ((events["x"] < shape[2]) & (events["y"] < shape[1])).all()


@FUZZ
@given(hnp.arrays(np.float32, st.integers(0, 300),
                  elements=st.floats(-1e6, 1e6, width=32) | st.just(float("nan"))),
       st.integers(1, 12), st.randoms(use_true_random=False))
def test_group_max_is_numpys_maximum_at(values, size, random):
    """Per-label maxima (peaks, saddles) by sorting the labels give np.maximum.at's numbers:
    empty groups -inf, a NaN in a group NaN."""
    groups = np.array([random.randrange(size) for _ in range(len(values))], np.int64)
    want = np.full(size, -np.inf)
    np.maximum.at(want, groups, values)
    assert np.array_equal(group_max(values, groups, size), want, equal_nan=True)


@FUZZ
@given(st.integers(0, 2**32 - 1))
def test_label_reductions_are_scipys(seed):
    """The CD45 where each piece's CK peaks is scipy's maximum_position read (ties aside), and
    the saddles of several heights read in one pass are each one's own."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, (12, 15))
    by, values, other = (rng.normal(size=labels.shape) for _ in range(3))
    n = int(labels.max())
    runs = LabelRuns(labels, n)
    got, peak = runs.at_max(values, by), runs.max(by)
    for k in range(1, n + 1):
        if (labels == k).any():
            assert got[k] == values[ndimage.maximum_position(by, labels, k)]
            assert peak[k] == by[labels == k].max()
        else:
            assert np.isnan(got[k]) and peak[k] == -np.inf
    assert np.array_equal(peak, group_max(by[labels > 0], labels[labels > 0], n + 1))
    a, b, first, second = adjacent_saddles(labels, by, other)
    assert all(np.array_equal(x, y) for x, y in zip((a, b, first), adjacent_saddles(labels, by)))
    assert np.array_equal(second, adjacent_saddles(labels, other)[2])
    assert np.array_equal(np.stack([a, b], 1), np.unique(np.stack([a, b], 1), axis=0))


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(1, 6))
def test_window_max_at_points_is_scipys_maximum_filter(seed, radius):
    """The window maxima read at a few points are scipy's maximum_filter there (mode
    "nearest": the border repeats), for float maps and for a bool map of seeds."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(int(rng.integers(1, 30)), int(rng.integers(1, 30)))).astype(np.float32)
    seeds = rng.random(image.shape) < 0.1
    points = rng.random(image.shape) < 0.3
    ys, xs = np.nonzero(points)
    size = 2 * radius + 1
    for field in (image, seeds):
        want = ndimage.maximum_filter(field, size=size, mode="nearest")[ys, xs]
        assert np.array_equal(window_max_at(field, ys, xs, size), want)


def test_a_frame_of_other_planes_than_the_panels_is_refused_channels_last_named():
    """3 of a 5-channel panel's planes, or a channels-last array: refused by name (the first
    ran and gave 3 channels' columns; the second read as a frame too small)."""
    from ctcnet.errors import InputError
    from ctcnet.io.panel import default_panel

    panel = default_panel()
    frame = np.full((5, 256, 256), 120, np.uint16)
    with pytest.raises(InputError, match=r"panel's 5 channels, got shape \(3, 256, 256\)$"):
        detect_events(frame[:3], panel)
    with pytest.raises(InputError, match=r"channels last\? np.moveaxis\(frame, -1, 0\)"):
        detect_events(np.moveaxis(frame, 0, -1), panel)


def test_a_strip_one_pixel_wide_resamples_alike_as_tensor_and_array():
    """torch's antialiased kernel gave every output the first value from a side of one pixel
    ([0.43, 0.43, 0.43] for [0.43, 4.44, 13.0]): tensors of such crops take the numpy path's
    weights."""
    import torch

    from ctcnet.detect.resampling import resample

    for shape in ((1, 1, 5, 1), (2, 3, 1, 7)):
        crops = (np.arange(np.prod(shape), dtype=np.float32) ** 2).reshape(shape)
        want = resample(crops, 0.6)
        got = resample(torch.from_numpy(crops), 0.6).numpy()
        assert len(np.unique(want)) > 1
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
