"""Tests of the scan simulator: determinism, biology per class, physics, shifts, panels, CLI."""

import dataclasses
import json

import numpy as np
import pytest

from ctcnet.errors import InputError
from ctcnet.io.panel import load_panel
from ctcnet.simulate import NAMED_SHIFTS, SUBTYPES, SimConfig, simulate_crops, write_crop_batch

PANEL5 = load_panel(None)  # DAPI, CK, CD45, CD61, CD66b at 0.64 µm
SUBTYPE_TAXONOMY = {"classes": sorted(SUBTYPES)}  # every subtype its own class
# Full randomisation but nothing else in the crop, and bleed-through at a good instrument's
# level: the marker statistics below are about biology; strong bleed has a test of its own.
# Biology only: no bleed-through, non-specific CK or autofluorescence, and stain strength over
# 4x (the physics of the default ranges has tests of its own).
QUIET = SimConfig(neighbours=(0.0, 0.0), bleed_through=(0.0, 0.0), nonspecific_ck_rate=(0, 0),
                  granulocyte_autofluorescence=(0, 0), stain_strength=(0.5, 2.0))
# One nominal scanner, and nothing in the crop but the object's own stains.
CLEAN_ALONE = dataclasses.replace(SimConfig.clean(), neighbours=(0.0, 0.0),
                                  bleed_through=(0.0, 0.0), nonspecific_ck_rate=(0, 0),
                                  granulocyte_autofluorescence=(0, 0))


def signal(images, channel, radius=6):
    """Mean counts over background in a central disk, per crop (background: 20th percentile)."""
    x = images[:, channel].astype(np.float64)
    s = x.shape[-1]
    yy, xx = np.mgrid[:s, :s] - (s - 1) / 2
    disk = (yy ** 2 + xx ** 2) <= radius ** 2
    background = np.percentile(x.reshape(len(x), -1), 20, axis=1)
    return x[:, disk].mean(axis=1) - background


def peak(images, channel, radius=6):
    """Brightest 3x3 mean within a central disk, over background, per crop."""
    from scipy.ndimage import uniform_filter

    x = uniform_filter(images[:, channel].astype(np.float64), size=(1, 3, 3))
    s = x.shape[-1]
    yy, xx = np.mgrid[:s, :s] - (s - 1) / 2
    disk = (yy ** 2 + xx ** 2) <= radius ** 2
    background = np.percentile(x.reshape(len(x), -1), 20, axis=1)
    return x[:, disk].max(axis=1) - background


def noise_sd(images, channel):
    """Robust background noise per crop: spread of the lower half of the pixels."""
    x = images[:, channel].astype(np.float64).reshape(len(images), -1)
    q10, q30 = np.percentile(x, [10, 30], axis=1)
    return (q30 - q10) / 0.757


def by_subtype(batch, name):
    return np.array([s == name for s in batch.subtypes])


@pytest.fixture(scope="module")
def per_subtype():
    """A few crops of every subtype on the 5-channel panel (full default randomisation)."""
    return simulate_crops(6, PANEL5, SUBTYPE_TAXONOMY, crop_size=64, seed=3, config=QUIET)


def test_counts_given_as_text_as_a_dotted_override_gives_them():
    """``--data.simulate.train=60`` reaches the simulator as the text "60"."""
    a = simulate_crops("2", PANEL5, crop_size=32, seed=1)
    assert len(a.labels) == 2 * len(set(a.labels)) == 8
    with pytest.raises(InputError, match="counts must be an int"):
        simulate_crops("two", PANEL5, crop_size=32, seed=1)


def test_same_seed_same_bytes_and_other_seed_differs():
    a = simulate_crops({"ctc": 3, "debris": 3}, PANEL5, crop_size=48, seed=11)
    b = simulate_crops({"ctc": 3, "debris": 3}, PANEL5, crop_size=48, seed=11)
    c = simulate_crops({"ctc": 3, "debris": 3}, PANEL5, crop_size=48, seed=12)
    assert a.images.dtype == np.uint16 and a.images.shape == (6, 5, 48, 48)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.labels == b.labels and a.subtypes == b.subtypes and a.sample_ids == b.sample_ids
    assert a.images.tobytes() != c.images.tobytes()


def test_labels_counts_samples_and_realistic_counts():
    batch = simulate_crops({"ctc": 5, "wbc": 7, "cluster": 2, "debris": 4}, PANEL5,
                           crop_size=48, seed=0, num_samples=3)
    assert sorted(batch.labels) == sorted(["ctc"] * 5 + ["wbc"] * 7 + ["cluster"] * 2 +
                                          ["debris"] * 4)
    assert len(set(batch.sample_ids)) == 3
    for label, subtype in zip(batch.labels, batch.subtypes):
        assert SUBTYPES[subtype] == label
    # Pseudo 12-bit counts: an offset of 100-200 (dimmed by vignetting at most 30 %), never
    # above saturation.
    assert batch.images.max() <= 4095
    assert 60 <= np.median(batch.images) <= 600


def test_ctcs_are_ck_positive_cd45_negative_and_wbcs_the_reverse(per_subtype):
    # One nominal scanner (equal channel gains), so counts compare across channels; what
    # little there is of the other marker is faint non-specific CK.
    b = simulate_crops(16, PANEL5, SUBTYPE_TAXONOMY, crop_size=64, seed=3,
                       config=dataclasses.replace(SimConfig.clean(), neighbours=(0.0, 0.0),
                                                  bleed_through=(0.0, 0.0)))
    ck, cd45 = signal(b.images, 1), signal(b.images, 2)
    for name in ("ctc_bright", "ctc_apoptotic"):
        m = by_subtype(b, name)
        assert ck[m].mean() > 10 * max(cd45[m].mean(), 1.0), name
    for name in ("lymphocyte", "neutrophil", "monocyte"):
        m = by_subtype(b, name)
        assert cd45[m].mean() > 5 * max(ck[m].mean(), 1.0), name
    # Over the full randomisation, in noise units (channel gains differ up to 10x):
    b = per_subtype
    ck = signal(b.images, 1) / noise_sd(b.images, 1)
    cd45 = signal(b.images, 2) / noise_sd(b.images, 2)
    ctc = by_subtype(b, "ctc_bright") | by_subtype(b, "ctc_apoptotic")
    wbc = by_subtype(b, "lymphocyte") | by_subtype(b, "neutrophil") | by_subtype(b, "monocyte")
    assert ck[ctc].mean() > 5 * max(cd45[ctc].mean(), 0.5)
    assert cd45[wbc].mean() > 3 * max(ck[wbc].mean(), 0.5)
    # CK-dim CTCs: weak but present CK (a few noise units), no CD45.
    dim = by_subtype(b, "ctc_dim")
    assert (ck[dim] > 1.0).all()
    assert np.abs(cd45[dim]).mean() < 0.2 * cd45[wbc].mean()


def test_tdevs_lack_dna_and_bare_nuclei_lack_ck(per_subtype):
    b = per_subtype
    dapi, ck = peak(b.images, 0), peak(b.images, 1)
    dapi_noise, ck_noise = noise_sd(b.images, 0), noise_sd(b.images, 1)
    tdev, bare = by_subtype(b, "tdev"), by_subtype(b, "bare_nucleus")
    # (the brightest 3x3 mean of pure noise sits ~1-2 sd over the background percentile)
    assert (dapi[tdev] < 2.5 * dapi_noise[tdev]).all()
    assert (ck[tdev] > 3 * ck_noise[tdev]).all()
    assert (dapi[bare] > 5 * dapi_noise[bare]).all()
    assert (ck[bare] < 2.5 * ck_noise[bare] + 0.05 * dapi[bare]).all()  # bleed-through only


def test_fragment_dapi_specks_hold_less_dna_than_any_ctc_nucleus():
    """A CK+DAPI+ fragment is debris: its DAPI speck holds less DNA stain than the nucleus of
    any CTC at the same stain (summed over a 10 um disk, so blur cannot blur the rule)."""
    cfg = dataclasses.replace(CLEAN_ALONE, dna_stain_strength=(1.0, 1.0))
    batch = simulate_crops({"fragment": 80, "ctc_bright": 40, "ctc_dim": 40}, PANEL5,
                           SUBTYPE_TAXONOMY, crop_size=64, seed=21, config=cfg)
    x = batch.images[:, 0].astype(np.float64)
    x -= np.median(x.reshape(len(x), -1), axis=1)[:, None, None]
    yy, xx = np.mgrid[:64, :64] - 31.5
    dna = x[:, np.hypot(yy, xx) <= 10 / PANEL5.pixel_size_um].sum(axis=1)
    fragment = by_subtype(batch, "fragment")
    assert dna[fragment].max() < dna[~fragment].min()


def test_fragments_never_look_like_an_intact_cell():
    """A CTC fragment is no intact cell: its CK (above half its peak) is in several pieces or
    one body under the CellSearch 4 um, while a CTC's (filled or a rim) is one body larger.
    (The first fragments, pieces within 2.5 um of the centre, merged into one CTC-sized body
    half the time.)"""
    from scipy import ndimage

    batch = simulate_crops({"fragment": 200, "ctc_bright": 100, "ctc_dim": 100}, PANEL5,
                           SUBTYPE_TAXONOMY, crop_size=64, seed=21, config=CLEAN_ALONE)
    ck = batch.images[:, 1].astype(np.float64)
    ck -= np.median(ck.reshape(len(ck), -1), axis=1)[:, None, None]
    ck = ndimage.gaussian_filter(ck, (0, 1, 1))

    # A CK rim broken by its texture is one cell: gaps under 2 um (3 px) are closed and the
    # rim's inside filled before the pieces are counted.
    yy, xx = np.mgrid[-3:4, -3:4]
    close = yy ** 2 + xx ** 2 <= 9

    def not_intact(image):
        body = ndimage.binary_fill_holes(ndimage.binary_closing(image > 0.5 * image.max(),
                                                                close))
        pieces, n = ndimage.label(body)
        largest = np.bincount(pieces.ravel())[1:].max()
        return n >= 2 or 2 * np.sqrt(largest / np.pi) * PANEL5.pixel_size_um < 4.0

    broken = np.array([not_intact(image) for image in ck])
    fragment = by_subtype(batch, "fragment")
    assert broken[fragment].mean() >= 0.8
    assert broken[~fragment].mean() <= 0.05


def test_platelet_puncta_only_where_platelets_are(per_subtype):
    b = per_subtype
    x = b.images[:, PANEL5.index_of_role("platelet")].astype(np.float64)
    flat = x.reshape(len(x), -1)
    background = np.median(flat, axis=1)
    bright = (flat > background[:, None] + 8 * noise_sd(b.images, 3)[:, None]).sum(axis=1)
    platelet = by_subtype(b, "ctc_platelet")
    # Everything else (except all-channel aggregates and fibres) shows no CD61 at all.
    others = ~platelet & ~by_subtype(b, "aggregate") & ~by_subtype(b, "fibre") & \
        ~by_subtype(b, "blob") & ~by_subtype(b, "autofluorescent")
    assert (bright[platelet] >= 6).all()
    assert bright[others].max() <= 2


def test_dim_ctcs_carry_vimentin_when_the_panel_has_it():
    panel = load_panel(["DAPI", "CK", "CD45", "Vimentin"])
    b = simulate_crops({"ctc_bright": 8, "ctc_dim": 8}, panel, SUBTYPE_TAXONOMY, crop_size=48,
                       seed=5, config=QUIET)
    vim = signal(b.images, 3)
    assert vim[by_subtype(b, "ctc_dim")].mean() > 3 * vim[by_subtype(b, "ctc_bright")].mean()


def _nucleus_area(pixel_size, config=None, crop=64):
    """DAPI area above half maximum of lymphocytes, in pixels (mean over crops)."""
    cfg = dataclasses.replace(config or SimConfig.clean(), neighbours=(0.0, 0.0),
                              defocus_um=(0.0, 0.0))
    b = simulate_crops({"lymphocyte": 6}, PANEL5.with_pixel_size(pixel_size), SUBTYPE_TAXONOMY,
                       crop_size=crop, seed=2, config=cfg)
    x = b.images[:, 0].astype(np.float64)
    background = np.median(x.reshape(len(x), -1), axis=1)[:, None, None]
    peak = x.reshape(len(x), -1).max(axis=1)[:, None, None]
    return ((x - background) > 0.5 * (peak - background)).sum(axis=(1, 2)).mean()


def test_sizes_in_um_follow_the_pixel_size():
    small_px, large_px = _nucleus_area(0.4), _nucleus_area(0.8)
    assert 3.0 < small_px / large_px < 5.0  # area in pixels scales with 1 / pixel_size^2
    shrunk = _nucleus_area(0.4, SimConfig.clean().with_shift("small_cells"))
    assert 0.35 < shrunk / small_px < 0.7  # 0.7x the size: about half the area


def test_crops_follow_the_configured_pixel_size_range():
    b = simulate_crops(2, PANEL5, crop_size=32, seed=0, num_samples=8)
    low, high = SimConfig().pixel_scale
    assert (b.pixel_size_um >= 0.64 * low - 1e-6).all()
    assert (b.pixel_size_um <= 0.64 * high + 1e-6).all()
    assert b.pixel_size_um.std() > 0.01
    shifted = simulate_crops(2, PANEL5, crop_size=32, seed=0,
                             config=SimConfig().with_shift("pixel_size"))
    assert np.allclose(shifted.pixel_size_um, 0.64 * 0.7)


@pytest.mark.parametrize("names", [
    ["DAPI", "CK", "CD45"],
    ["DAPI", "CK", "CD45", "VIM"],
    ["DAPI", "CK", "CD45", "CD41", "CD15"],
    ["Hoechst", "panCK", "CD45", "EpCAM", "Vimentin", "FooBar"],
])
def test_every_panel_size_works(names):
    panel = load_panel({"channels": names, "pixel_size_um": 0.64})
    b = simulate_crops(3, panel, crop_size=40, seed=1, config=QUIET)
    assert b.images.shape == (12, len(names), 40, 40)
    has_platelets = panel.index_of_role("platelet") is not None
    assert ("ctc_platelet" in b.subtypes) <= has_platelets
    unknown = [i for i, role in enumerate(panel.roles()) if role == "unknown"]
    for ch in unknown:  # background only, except for all-channel debris
        plain = ~by_subtype(b, "aggregate") & ~by_subtype(b, "fibre") & ~by_subtype(b, "blob")
        assert (np.abs(signal(b.images, ch)[plain]) < 3 * noise_sd(b.images, ch)[plain]).all()


def test_a_panel_without_platelets_cannot_make_a_platelet_class():
    with pytest.raises(InputError, match="ctc_platelet"):
        simulate_crops({"ctc_platelet": 2}, ["DAPI", "CK", "CD45"], SUBTYPE_TAXONOMY)


def test_named_shifts_change_what_they_claim():
    assert {"defocus", "dim_ck", "noise_2x", "pixel_size", "small_cells", "large_cells",
            "bleed_through", "display_8bit"} <= set(NAMED_SHIFTS)
    base_cfg = SimConfig.clean()
    counts = {"ctc_bright": 6}

    def make(*shifts):
        return simulate_crops(counts, PANEL5, SUBTYPE_TAXONOMY, crop_size=48, seed=4,
                              config=base_cfg.with_shift(*shifts) if shifts else base_cfg)

    base = make()
    ratio = signal(make("dim_ck").images, 1).mean() / signal(base.images, 1).mean()
    assert 0.4 < ratio < 0.6
    noise = noise_sd(make("noise_2x").images, 3).mean() / noise_sd(base.images, 3).mean()
    assert 1.6 < noise < 2.4
    eight = make("display_8bit")
    assert eight.images.max() <= 255 and (eight.images == 255).any()
    # Written, its panel.json says 0-255, as a cartridge's does (it said 0-4095, and the
    # clipped highlights read as counts far under a 12-bit ceiling went unsaid).
    import tempfile
    from pathlib import Path

    from ctcnet.simulate import write_crop_batch

    with tempfile.TemporaryDirectory() as folder:
        write_crop_batch(eight, folder, PANEL5)
        ranges = {tuple(c["value_range"]) for c in
                  json.loads((Path(folder) / "panel.json").read_text())["channels"]}
    assert ranges == {(0.0, 255.0)}
    def steepest(images):  # the steepest DAPI edge, on 3x3 means (not the pixel noise's)
        from scipy.ndimage import uniform_filter

        dapi = uniform_filter(images[:, 0].astype(float), size=(1, 3, 3))
        return np.abs(np.diff(dapi, axis=-1)).max(axis=(1, 2))

    assert steepest(make("defocus").images).mean() < 0.7 * steepest(base.images).mean()
    assert make("large_cells").images[:, 1].astype(float).sum() > \
        base.images[:, 1].astype(float).sum()
    assert base_cfg.with_shift("dim_ck", "noise_2x").shifts == ("dim_ck", "noise_2x")
    with pytest.raises(InputError, match="unknown shift"):
        base_cfg.with_shift("sunburn")


def test_bleed_through_shift_shows_ck_in_the_next_channel():
    counts = {"ctc_bright": 6}
    base = simulate_crops(counts, PANEL5, SUBTYPE_TAXONOMY, crop_size=48, seed=4,
                          config=SimConfig.clean())
    bled = simulate_crops(counts, PANEL5, SUBTYPE_TAXONOMY, crop_size=48, seed=4,
                          config=SimConfig.clean().with_shift("bleed_through"))
    assert signal(bled.images, 2).mean() > 3 * max(signal(base.images, 2).mean(), 1.0)


def test_instrument_bleed_is_one_fixed_leak_by_channel_name():
    """An instrument's spillover is the same on every sample, found by name in any panel order."""
    from ctcnet.simulate.scanner import draw_samples

    cfg = dataclasses.replace(SimConfig.clean(), bleed_through=(0.0, 0.0),
                              intensity_scale=(0.5, 2.0),
                              instrument_bleed=(("CK", "CD61", 0.2), ("CK", "Vimentin", 0.5)))
    reordered = PANEL5.from_dict({**PANEL5.to_dict(),
                                  "channels": PANEL5.to_dict()["channels"][::-1]})
    for panel in (PANEL5, reordered):
        draws = draw_samples(np.random.default_rng(0), cfg, panel, 5)
        ck, cd61 = panel.names.index("CK"), panel.names.index("CD61")
        gain = draws.channel_gain
        # In camera counts (the bleed is applied before the channel gain): 20 % of CK in CD61.
        seen = draws.bleed[:, cd61, ck] * gain[:, cd61] / gain[:, ck]
        assert np.allclose(seen, 0.2, rtol=1e-5)
        off = ~np.eye(panel.num_channels, dtype=bool)
        off[cd61, ck] = False
        assert np.allclose(draws.bleed[:, off], 0.0)  # the panel lacks Vimentin: skipped


def test_bad_requests_raise_input_errors():
    with pytest.raises(InputError, match="not in the taxonomy"):
        simulate_crops({"alien": 3}, PANEL5)
    with pytest.raises(InputError, match="nothing to simulate"):
        simulate_crops(0, PANEL5)
    with pytest.raises(InputError, match="crop_size"):
        simulate_crops(1, PANEL5, crop_size=4)


def test_written_crop_batch_reads_back(tmp_path):
    from ctcnet.detect.crop_dataset import load_crops, read_crop_index

    batch = simulate_crops({"ctc": 2, "wbc": 3}, PANEL5, crop_size=32, seed=9, num_samples=2)
    root = write_crop_batch(batch, tmp_path / "ds", PANEL5)
    index = read_crop_index(root)
    assert index.class_counts() == {"ctc": 2, "wbc": 3}
    assert sorted(index.sample_ids) == sorted(batch.sample_ids)
    order = np.argsort([int(p.stem.split("__")[1]) for p in index.paths])
    loaded = load_crops(index)[order]
    assert np.array_equal(loaded, batch.images.astype(np.float32))
    meta = json.loads((root / "dataset.json").read_text())
    assert meta["seed"] == 9 and meta["class_counts"] == {"ctc": 2, "wbc": 3}


# --------------------------------------------------------------------------------------------
# Cartridges
# --------------------------------------------------------------------------------------------

SMALL_FRAME = (256, 320)


@pytest.fixture(scope="module")
def cartridge(tmp_path_factory):
    root = tmp_path_factory.mktemp("cart")
    truth = simulate_cartridge_small(root, seed=7)
    return root, truth


def simulate_cartridge_small(root, seed=7, **kw):
    from ctcnet.simulate import simulate_cartridge

    kw = {"num_frames": 3, "frame_shape": SMALL_FRAME, "events_per_frame": 25,
          "rare_rates": {"ctc": 0.15, "cluster": 0.1}, "columns": 2, **kw}
    return simulate_cartridge(root, PANEL5, seed=seed, **kw)


def test_a_cartridge_states_one_pixel_size(cartridge):
    """cartridge.json states the pixel size panel.json reads the frames at (the simulator's
    draw, rounded once), not a second, unrounded one a port would have to choose between."""
    root, _ = cartridge
    info = json.loads((root / "cartridge.json").read_text())
    panel = json.loads((root / "panel.json").read_text())
    assert info["pixel_size_um"] == panel["pixel_size_um"] != 0.64


def test_cartridge_layout_and_truth_columns(cartridge):
    from ctcnet.io.scan import open_cartridge, read_frame

    root, truth = cartridge
    cart = open_cartridge(root)
    assert not cart.problems and len(cart) == 3
    # Serpentine order over 2 columns: r00c00, r00c01, r01c01.
    assert [f.stem for f in cart.frames] == ["r00c00", "r00c01", "r01c01"]
    assert list(truth.columns[:12]) == ["frame", "row", "col", "x", "y", "class", "subtype",
                                        "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "edge_cut"]
    assert set(truth["frame"]) == {0, 1, 2}
    assert (truth[["row", "col"]].drop_duplicates().values.tolist() ==
            [[0, 0], [0, 1], [1, 1]])
    frame = read_frame(cart.frames[0], cart.panel)
    assert frame.shape == (5, *SMALL_FRAME) and frame.max() <= 4095
    import pandas as pd

    on_disk = pd.read_csv(root / "ground_truth.csv")
    assert len(on_disk) == len(truth) and on_disk["subtype"].tolist() == truth["subtype"].tolist()
    # Hundreds of events per full frame scale to ~25 here; rare classes present at these rates.
    assert 40 <= len(truth) <= 110
    assert {"ctc", "wbc", "debris"} <= set(truth["class"])


def test_cartridge_truth_matches_what_was_drawn(cartridge):
    from ctcnet.io.scan import open_cartridge, read_frame

    root, truth = cartridge
    cart = open_cartridge(root)
    for f in cart.frames:
        frame = read_frame(f, cart.panel).astype(np.float64)
        background = np.median(frame, axis=(1, 2))
        noise = (np.percentile(frame, 30, axis=(1, 2)) - np.percentile(frame, 10, axis=(1, 2))) \
            / 0.757
        mask = np.zeros(frame.shape[1:], bool)
        for r in truth[truth["frame"] == f.index].itertuples():
            # half-open boxes, as events.csv's
            assert r.bbox_x0 <= r.x < r.bbox_x1 and r.bbox_y0 <= r.y < r.bbox_y1
            box = frame[:, r.bbox_y0:r.bbox_y1, r.bbox_x0:r.bbox_x1]
            excess = (box.max(axis=(1, 2)) - background) / noise
            assert excess.max() > 4, (r.subtype, excess)  # every truth box holds signal
            m = 4  # the glow of a saturated object reaches past its box
            mask[max(r.bbox_y0 - m, 0):r.bbox_y1 + m, max(r.bbox_x0 - m, 0):r.bbox_x1 + m] \
                = True
        # ... and outside every box there is (nearly) nothing bright: no undeclared objects.
        outside = (frame[:, ~mask] - background[:, None]) / noise[:, None]
        assert (outside.max(axis=0) > 12).mean() < 1e-3
    cut = truth[truth["edge_cut"]]
    assert (cut["subtype"] == "edge_cut").all() and (cut["class"] == "debris").all()
    touches = ((cut["bbox_x0"] == 0) | (cut["bbox_y0"] == 0) |
               (cut["bbox_x1"] == SMALL_FRAME[1]) | (cut["bbox_y1"] == SMALL_FRAME[0]))
    assert touches.all()


def test_cartridge_is_deterministic_and_png_layout_is_8bit(tmp_path, cartridge):
    root, truth = cartridge
    again = simulate_cartridge_small(tmp_path / "again", seed=7)
    assert again.equals(truth)
    assert (tmp_path / "again" / "r00c01.tif").read_bytes() == (root / "r00c01.tif").read_bytes()
    png = simulate_cartridge_small(tmp_path / "png", seed=7, num_frames=1, layout="png")
    from ctcnet.io.scan import open_cartridge, read_frame

    cart = open_cartridge(tmp_path / "png")
    frame = read_frame(cart.frames[0], cart.panel)
    assert frame.max() <= 255 and len(cart.frames[0].files) == 5 and len(png) > 0
    # Its true spillover in the levels its files hold (each channel shown at its own top),
    # not in the counts they were made from: a png cartridge read 0.20 where 0.057 stood.
    counts = simulate_cartridge_small(tmp_path / "counts", seed=7, num_frames=1)
    assert counts.equals(png)
    record, shown = (json.loads((tmp_path / name / "cartridge.json").read_text())
                     for name in ("counts", "png"))
    top = np.asarray(shown["display_max"])
    assert "display_max" not in record and len(top) == 5
    np.testing.assert_allclose(np.asarray(shown["spillover"]),
                               np.asarray(record["spillover"]) * top[None, :] / top[:, None],
                               rtol=2e-3, atol=2e-5)


def test_cartridge_rejects_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="layout"):
        simulate_cartridge_small(tmp_path, layout="jpeg")
    with pytest.raises(InputError, match=r"the rates \(--rates\): unknown class"):
        simulate_cartridge_small(tmp_path, rare_rates={"unicorn": 0.1})
    # Every class given, short of 1: each was rescaled without a word (ctc=0.01 drew 6.6 %).
    with pytest.raises(InputError, match="of every class add up to 0.22, not 1"):
        simulate_cartridge_small(tmp_path, rare_rates={"ctc": 0.01, "cluster": 0.01,
                                                       "wbc": 0.1, "debris": 0.1})
    with pytest.raises(InputError, match=r"the rates \(--rates\) add up to more than 1"):
        simulate_cartridge_small(tmp_path, rare_rates={"ctc": 0.6, "wbc": 0.6})
    with pytest.raises(InputError, match=r"add up to 0.905, not 1 \(with ctc 0.004, cluster "
                                         r"0.001, the defaults of those left out\)"):
        simulate_cartridge_small(tmp_path, rare_rates={"wbc": 0.5, "debris": 0.4})

    # What predict then refused: a pixel size drawn past a scan's, a sample id no folder or
    # Windows share can carry.
    from ctcnet.simulate import simulate_cartridge

    with pytest.raises(InputError, match=r"drawn at 1.33-2.47 um per pixel.*within 0.0714-1.54"):
        simulate_cartridge(tmp_path, PANEL5.with_pixel_size(1.9), num_frames=1)
    for sample_id in ("../x", "CON", ""):  # (an empty one was taken for the default)
        with pytest.raises(InputError, match="--sample-id .* must be a plain name"):
            simulate_cartridge_small(tmp_path, sample_id=sample_id)


def test_rates_that_fill_the_events_leave_the_rare_defaults_out():
    """The docs' "classes left out share what is left": ctc=1, or wbc and debris adding up to
    1, were refused as adding past 1 with the cluster rate nobody typed."""
    from ctcnet.io.taxonomy import load_taxonomy
    from ctcnet.simulate.cartridge import event_mixture

    def drawn(rates, taxonomy=None):
        names, probs = event_mixture(rates, PANEL5, load_taxonomy(taxonomy), SimConfig())
        parents = {}
        for name, p in zip(names, probs):
            parent = SUBTYPES[name]
            parents[parent] = parents.get(parent, 0.0) + p
        return {k: round(v, 6) for k, v in parents.items() if v}

    assert drawn({"ctc": 1.0}) == {"ctc": 1.0}
    assert drawn({"wbc": 0.5, "debris": 0.5}) == {"wbc": 0.5, "debris": 0.5}
    assert drawn({"ctc": 0.5, "wbc": 0.2, "debris": 0.3}) == {"ctc": 0.5, "wbc": 0.2,
                                                              "debris": 0.3}
    # Where they fit, the defaults stay: the rest is shared by wbc and debris.
    assert drawn({"ctc": 0.01})["cluster"] == 0.001
    # A class set without debris: debris's share is wbc's, the rates asked stay (every class
    # took a share of it, CTCs drawn at 2.5x the rate asked and recorded).
    assert drawn({"ctc": 0.01}, {"classes": ["ctc", "wbc", "cluster"]}) == {
        "ctc": 0.01, "cluster": 0.001, "wbc": 0.989}
    assert drawn(None, {"classes": ["ctc", "wbc", "debris"]})["ctc"] == 0.004
    # A blank (ctc=0,cluster=0) asks for no cluster: no class needed for it.
    assert drawn({"ctc": 0, "cluster": 0}, {"classes": ["ctc", "wbc", "debris"]}) == {
        "wbc": 0.4, "debris": 0.6}



def test_a_cartridge_drawn_past_what_predict_reads_uncrowded_is_said(tmp_path, caplog):
    """--events is per frame: at 0.3 um per pixel the defaults drew a sample predict then
    marked partial as crowded, without a word here."""
    from ctcnet.simulate import simulate_cartridge

    with caplog.at_level("WARNING"):
        simulate_cartridge(tmp_path / "fine", PANEL5.with_pixel_size(0.3), num_frames=1,
                           frame_shape=SMALL_FRAME, events_per_frame=25, seed=1)
    assert "predict reads a sample past 2000 as crowded" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        simulate_cartridge(tmp_path / "coarse", PANEL5, num_frames=1, frame_shape=SMALL_FRAME,
                           events_per_frame=25, seed=1)
    assert "crowded" not in caplog.text


def test_cartridge_with_a_custom_taxonomy_keeps_tdevs_apart(tmp_path):
    from ctcnet.simulate import simulate_cartridge

    taxonomy = {"classes": ["ctc", "wbc", "cluster", "tdev", "debris"]}
    truth = simulate_cartridge(tmp_path, PANEL5, taxonomy, num_frames=1, frame_shape=SMALL_FRAME,
                               events_per_frame=40, seed=3)
    assert (truth.loc[truth["subtype"] == "tdev", "class"] == "tdev").all()
    assert "tdev" in set(truth["class"])


def test_a_class_set_without_clusters_draws_a_cartridge_without_them(tmp_path, caplog):
    """A lab's ctc/wbc/debris: its cartridge is drawn without cluster events, said, as its
    crops are; asked for by --rates, they are refused with the remedy."""
    from ctcnet.simulate import simulate_cartridge

    taxonomy = {"classes": ["ctc", "wbc", "debris"]}
    with caplog.at_level("WARNING"):
        truth = simulate_cartridge(tmp_path / "a", PANEL5, taxonomy, num_frames=1,
                                   frame_shape=SMALL_FRAME, events_per_frame=40, seed=3)
    assert set(truth["class"]) <= {"ctc", "wbc", "debris"}
    assert any("no cluster events drawn" in r.getMessage() for r in caplog.records)
    with pytest.raises(InputError, match="add it to a class's 'includes'"):
        simulate_cartridge(tmp_path / "b", PANEL5, taxonomy, num_frames=1,
                           frame_shape=SMALL_FRAME, events_per_frame=40, seed=3,
                           rare_rates={"cluster": 0.01})
    # The minimal class set of the docs, ctc and wbc: objects the frame border cuts are
    # filed as their own cell's class (it warned that debris would not be drawn, then
    # stopped: no class for the subtype edge_cut).
    truth = simulate_cartridge(tmp_path / "c", PANEL5, {"classes": ["ctc", "wbc"]},
                               num_frames=1, frame_shape=SMALL_FRAME, events_per_frame=40,
                               seed=3)
    assert truth["edge_cut"].any() and set(truth["class"]) <= {"ctc", "wbc"}


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def test_cli_simulate_crops_cartridge_gallery(tmp_path, capsys):
    from ctcnet.cli import main
    from ctcnet.detect.crop_dataset import read_crop_index

    assert main(["simulate", "crops", str(tmp_path / "crops"), "--counts", "ctc=2,wbc=3",
                 "--crop-size", "32", "--samples", "2", "--seed", "1", "--shift", "dim_ck"]) == 0
    index = read_crop_index(tmp_path / "crops")
    assert index.class_counts() == {"ctc": 2, "wbc": 3}
    meta = json.loads((tmp_path / "crops" / "dataset.json").read_text())
    assert meta["config"]["shifts"] == ["dim_ck"] and meta["config"]["ck_scale"] == 0.5

    assert main(["simulate", "cartridge", str(tmp_path / "cart"), "--frames", "2",
                 "--frame-shape", "128x160", "--events", "10", "--clean"]) == 0
    assert (tmp_path / "cart" / "ground_truth.csv").exists()
    assert (tmp_path / "cart" / "r00c01.tif").exists()

    panel = tmp_path / "panel.json"
    panel.write_text(json.dumps({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64}))
    assert main(["simulate", "gallery", str(tmp_path / "gal"), "--per-class", "2",
                 "--crop-size", "40", "--panel", str(panel)]) == 0
    from PIL import Image

    pngs = sorted(p.name for p in (tmp_path / "gal").glob("*.png"))
    assert pngs == ["gallery_cluster.png", "gallery_ctc.png", "gallery_debris.png",
                    "gallery_wbc.png"]
    with Image.open(tmp_path / "gal" / "gallery_ctc.png") as im:
        assert im.size[0] > 4 * 80 and im.size[1] > 2 * 80

    capsys.readouterr()
    assert main(["simulate", "crops", str(tmp_path / "bad"), "--shift", "sunburn"]) == 2
    assert "unknown shift" in capsys.readouterr().err
    assert main(["simulate", "crops", str(tmp_path / "bad"), "--counts", "ctc=x"]) == 2


def test_default_physics_leaks_every_way_and_draws_double_positive_leukocytes():
    from ctcnet.simulate.optics import bleed_matrices

    m = bleed_matrices(np.random.default_rng(0), 200, 5, *SimConfig().bleed_through)
    off = m[:, ~np.eye(5, dtype=bool)]
    # Every ordered pair leaks, a few % typically, never above the stated 10 %.
    assert (off > 0).all() and off.max() <= 0.1 + 1e-6 and 0.005 < np.median(off) < 0.03
    # CK+CD45+ leukocytes exist and are labelled wbc; autofluorescent debris is debris.
    cfg = SimConfig(neighbours=(0.0, 0.0), bleed_through=(0.0, 0.0),
                    nonspecific_ck_rate=(1.0, 1.0), nonspecific_ck_ratio=(0.5, 2.0))
    b = simulate_crops({"lymphocyte": 8, "neutrophil": 8, "autofluorescent": 4}, PANEL5,
                       SUBTYPE_TAXONOMY, crop_size=48, seed=6, config=cfg)
    ck = signal(b.images, 1) / noise_sd(b.images, 1)
    cd45 = signal(b.images, 2) / noise_sd(b.images, 2)
    wbc = ~by_subtype(b, "autofluorescent")
    assert (ck[wbc] > 1).mean() > 0.8 and (cd45[wbc] > 1).all()
    assert SUBTYPES["autofluorescent"] == "debris"


def test_recorded_spillover_is_what_the_pixels_show(tmp_path):
    """The ground-truth spillover a batch (and its dataset.json) records is the ratio a leak
    shows in the pixels: CD45 over CK on bright CTCs (which carry no CD45 of their own)."""
    from scipy.ndimage import uniform_filter

    from ctcnet.inference.spillover import robust_background

    panel = load_panel(None)
    ck, cd45 = panel.index_of("CK"), panel.index_of("CD45")
    cfg = dataclasses.replace(SimConfig(), bleed_through=(0.03, 0.10),
                              subtype_weights={"ctc_bright": 1.0})
    batch = simulate_crops({"ctc": 40}, panel, crop_size=64, seed=5, config=cfg, num_samples=2)
    assert set(batch.spillover) == set(batch.sample_ids)
    for sample, truth in batch.spillover.items():
        assert truth.shape == (5, 5) and np.allclose(np.diag(truth), 1.0)
        x = batch.images[np.array(batch.sample_ids) == sample].astype(np.float32)
        background, noise = robust_background(x)
        signal = uniform_filter(x - background[:, :, None, None], size=(1, 1, 3, 3))
        bright = signal[:, ck] > 30 * noise[:, ck, None, None]
        ratio = [(signal[k, cd45][bright[k]] * signal[k, ck][bright[k]]).sum()
                 / (signal[k, ck][bright[k]] ** 2).sum() for k in range(len(x)) if bright[k].any()]
        assert np.median(ratio) == pytest.approx(truth[cd45, ck], rel=0.15, abs=0.004)
    write_crop_batch(batch, tmp_path / "set", panel)
    stored = json.loads((tmp_path / "set" / "dataset.json").read_text())["spillover"]
    assert np.allclose(stored[batch.sample_ids[0]], batch.spillover[batch.sample_ids[0]],
                       atol=1e-5)


def test_every_leukocyte_shows_cd45_but_a_dim_tail():
    """Real leukocytes show CD45 on every one: all but the dim tail (cd45_dim_share) carry
    cd45_bright_snr noise units or more at their membrane (peak over background)."""
    b = simulate_crops({"wbc": 240}, PANEL5, seed=31, config=QUIET)
    snr = peak(b.images, 2) / noise_sd(b.images, 2)
    cfg = SimConfig()
    # The PSF spreads the membrane's peak; half the nominal level is what survives any blur.
    assert (snr >= 0.5 * cfg.cd45_bright_snr).mean() >= 1 - 2 * cfg.cd45_dim_share
    assert (snr >= 0.5 * cfg.cd45_min_snr).all()


def test_shape_swap_gives_cells_other_classes_shapes():
    """With shape_swap 1 no cell keeps its class's own shape; at 0 every cell does; in
    between, the native shape keeps its share."""
    from ctcnet.simulate.cells import SHAPES, draw_shapes
    from ctcnet.simulate.primitives import Context

    def shapes(swap, native):
        ctx = Context(rng=np.random.default_rng(0), stain=None, noise=None, ctc_median_um=None,
                      size_scale=1.0, panel_roles=frozenset(), shape_swap=swap)
        return draw_shapes(ctx, 2000, native)

    for native in SHAPES:
        assert not (shapes(1.0, native) == native).any()
        assert set(shapes(1.0, native)) == set(SHAPES) - {native}
        assert (shapes(0.0, native) == native).all()
        assert 0.45 < (shapes(0.5, native) == native).mean() < 0.55


def test_shape_swapped_cells_keep_their_markers():
    """Swapped CTCs are CK+ CD45- in leukocytes' shapes, swapped leukocytes CD45+ in others'
    (a CTC's included): only the markers name the class."""
    native = simulate_crops({"ctc": 150, "wbc": 150}, PANEL5, seed=32, config=QUIET)
    swapped = simulate_crops({"ctc": 150, "wbc": 150}, PANEL5, seed=32,
                             config=dataclasses.replace(QUIET, shape_swap=1.0))
    for b in (native, swapped):
        labels = np.array(b.labels)
        ck = signal(b.images, 1) / noise_sd(b.images, 1)
        cd45 = signal(b.images, 2) / noise_sd(b.images, 2)
        assert np.median(ck[labels == "ctc"]) > 5 * max(np.median(cd45[labels == "ctc"]), 0.5)
        assert np.median(cd45[labels == "wbc"]) > 3 * max(np.median(ck[labels == "wbc"]), 0.5)




def _ck_elongation(config):
    """Length over width of simulated bright CTCs' CK (above a fifth of its peak), per crop:
    the ratio of the principal axes of that area."""
    cfg = dataclasses.replace(config, neighbours=(0.0, 0.0), defocus_um=(0.0, 0.0))
    b = simulate_crops({"ctc_bright": 12}, PANEL5, SUBTYPE_TAXONOMY, crop_size=64, seed=9,
                       config=cfg)
    out = []
    for ck in b.images[:, 1].astype(np.float64):
        ck -= np.median(ck)
        ys, xs = np.nonzero(ck > 0.2 * ck.max())
        eig = np.linalg.eigvalsh(np.cov(np.stack([ys, xs]).astype(float)))
        out.append(np.sqrt(eig[1] / eig[0]))
    return np.array(out)


def test_elongated_ctcs_are_spindles_and_the_default_draws_are_unchanged(monkeypatch):
    # The knob at its default draws nothing (no random number taken, so every recorded
    # simulation stands): the stretch is never even called.
    import ctcnet.simulate.cells as cells

    def never(*args, **kwargs):
        raise AssertionError("the default simulator stretched a cell")

    monkeypatch.setattr(cells, "_elongated", never)
    simulate_crops({"ctc_bright": 4, "ctc_dim": 4, "ctc_doublet": 4}, PANEL5, SUBTYPE_TAXONOMY,
                   crop_size=48, seed=3, config=SimConfig(shape_swap=1.0))
    monkeypatch.undo()
    native = _ck_elongation(SimConfig.clean())
    spindle = _ck_elongation(SimConfig.clean().with_shift("elongated_ctcs"))
    assert np.median(native) < 1.4 < 1.6 < np.median(spindle)


def test_a_cell_is_cut_by_the_frame_border_when_its_outline_crosses_it(monkeypatch):
    """The truth calls an object edge-cut debris when the outline of one of its shapes crosses
    the frame border, not when its soft edge or blur alone reaches it: a CTC whose rim alone
    touches the border is a CTC, as a reviewer counts it."""
    import ctcnet.simulate.cartridge as cartridge
    from ctcnet.simulate.scanner import draw_samples

    built = {}
    build = cartridge.build_events

    def spy(subtypes, ctx):
        prims, radius = build(subtypes, ctx)
        built.update(prims=prims)
        return prims, radius

    def along_the_left_border(rng, radius_px, shape, gap_px, tries=24):
        # Event i's outline reaches the border's side by (i % 4 - 1.5) px: two just inside,
        # two across, each about a pixel from it.
        prims = built["prims"]
        reach = np.full(len(radius_px), -np.inf)  # um left of the event's centre
        np.maximum.at(reach, prims["event"], cartridge.outline_reach(prims)[0] - prims["x"])
        out = np.full((len(radius_px), 2), np.nan)
        for i in range(min(len(radius_px), shape[0] // 70)):
            out[i] = (reach[i] / px + (1.5 - i % 4), 40 + 70 * i)
        return out

    monkeypatch.setattr(cartridge, "build_events", spy)
    monkeypatch.setattr(cartridge, "place_events", along_the_left_border)
    cfg = SimConfig()
    rng = np.random.default_rng(5)
    draws = draw_samples(rng, cfg, PANEL5, 1)
    px = float(draws.pixel_um[0])
    _, truth = cartridge.render_frame(rng, cfg, PANEL5, draws, (1000, 160), 12,
                                      np.array(["ctc_bright"]), np.array([1.0]), False)
    expect = np.array([i % 4 >= 2 for i in range(len(truth))])
    assert len(truth) >= 8
    assert truth["edge_cut"].to_numpy().tolist() == expect.tolist()
    assert (truth.loc[~expect, "subtype"] == "ctc_bright").all()
    # Their boxes (to the soft edge and one blur sigma beyond) all reach the border.
    assert (truth["bbox_x0"] == 0).all()


def test_an_outline_reaches_a_border_by_its_own_extent_there():
    """A spindle 20 um long and 2 um wide lying along the top border, 5 um from it: read as a
    circle of its long axis, it reached 15 um past the border, and whole CTCs and fibres lying
    near it were filed as cut debris (10 of 1,264 CTCs on elongated-CTC cartridges)."""
    from ctcnet.simulate.cartridge import outline_reach

    prims = {"a": np.array([20.0, 20.0, 5.0]), "b": np.array([2.0, 2.0, 5.0]),
             "theta": np.array([0.0, np.pi / 2, 1.0])}
    across, down = outline_reach(prims)
    assert np.allclose(across, [20.0, 2.0, 5.0]) and np.allclose(down, [2.0, 20.0, 5.0])


def test_a_class_no_subtype_maps_to_is_told_how_to_map_one():
    """A lab's ctc_emt class: the refusal shows the taxonomy line that draws it (includes)
    and the subtypes there are; with that line the class is drawn from those subtypes."""
    from ctcnet.io.taxonomy import load_taxonomy

    bare = load_taxonomy({"classes": ["ctc", "ctc_emt", "wbc", "cluster", "debris"]})
    with pytest.raises(InputError, match=r'"includes": \["ctc_dim"\]\} \(subtypes: ctc_bright, '):
        simulate_crops({"ctc_emt": 2}, load_panel(None), bare, crop_size=32, seed=1)
    mapped = load_taxonomy({"classes": [
        "ctc", {"name": "ctc_emt", "includes": ["ctc_dim"]}, "wbc", "cluster", "debris"]})
    batch = simulate_crops({"ctc_emt": 3}, load_panel(None), mapped, crop_size=32, seed=1)
    assert list(batch.subtypes) == ["ctc_dim"] * 3


def test_the_camera_ceiling_is_the_panels_so_14_bit_files_are_not_clipped_at_4095():
    """A 14-bit panel (value ranges 0-16383) was written with counts clipped at 4095, its
    panel.json saying 16383. The ceiling follows the panel; the default panel's stays 4095, a
    ceiling a config sets is kept, and an 8-bit export keeps its own."""
    from dataclasses import replace

    from ctcnet.io.panel import load_panel
    from ctcnet.simulate.config import SimConfig, at_panel_ceiling

    panel = load_panel(None)
    fourteen = replace(panel, channels=tuple(replace(c, value_range=(0.0, 16383.0))
                                             for c in panel.channels))
    assert at_panel_ceiling(SimConfig(), panel).saturation == 4095.0
    assert at_panel_ceiling(SimConfig(), fourteen).saturation == 16383.0
    assert at_panel_ceiling(SimConfig(saturation=9000.0), fourteen).saturation == 9000.0
    assert at_panel_ceiling(SimConfig(output_bits=8), fourteen).saturation == 4095.0


def test_an_8_bit_panel_is_drawn_on_its_own_scale_not_clipped(tmp_path):
    """Counts drawn at a 12-bit camera's exposure and cut at an 8-bit panel's 255 left nine
    tenths of a channel's pixels at its top: predict counted none of 26 CTCs."""
    import tifffile

    from ctcnet.simulate import simulate_cartridge

    path = tmp_path / "panel.json"
    path.write_text(json.dumps({"channels": ["DAPI", "CK", "CD45", "CD61"],
                                "pixel_size_um": 0.64, "bit_depth": 8}))
    simulate_cartridge(tmp_path / "cart", load_panel(path), num_frames=1,
                       frame_shape=SMALL_FRAME, events_per_frame=25, seed=3)
    frame = tifffile.imread(tmp_path / "cart" / "r00c00.tif")
    assert frame.max() <= 255
    assert max(float((plane == 255).mean()) for plane in frame) < 0.02
    written = json.loads((tmp_path / "cart" / "panel.json").read_text())
    assert all(c["value_range"] == [0.0, 255.0] for c in written["channels"])
    # Crops likewise.
    batch = simulate_crops(4, load_panel(path), crop_size=32, seed=1)
    assert batch.images.max() <= 255
    assert float((batch.images == 255).mean()) < 0.05  # (a bright core at the top, as shown)
