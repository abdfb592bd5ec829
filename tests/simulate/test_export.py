"""ctcnet.simulate.export: the rgb-jpeg and tight single-cell exports of the simulator."""

import dataclasses
import json

import numpy as np
import pytest
from PIL import Image

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import read_crop_index
from ctcnet.errors import InputError
from ctcnet.io.panel import load_panel
from ctcnet.simulate import SimConfig, simulate_crops

RGB_ORDER = ["CK", "CD45", "DAPI"]  # R, G, B as published composites show them
TINY_CROP = 32


# --- the simulator's rgb-jpeg export --------------------------------------------------------------

def test_the_console_says_an_exports_drawn_sizes_as_the_exports(tmp_path, capsys):
    """"the panel's 0.64 x the simulator's pixel_scale" stood beside 0.15-0.25 um/px, which is
    the export's 0.2 x it."""
    assert main(["simulate", "crops", str(tmp_path / "x"), "--counts", "2", "--crop-size", "32",
                 "--seed", "424743", "--export", "rgb-jpeg", "--export-pixel-size", "0.2"]) == 0
    said = capsys.readouterr().out
    drawn = json.loads((tmp_path / "x" / "dataset.json").read_text())["drawn_pixel_size_um"]
    assert f"drawn at {min(drawn):.2f}-{max(drawn):.2f} um/px a sample (the export's 0.2 x the " \
        "simulator's pixel_scale; each crop's in dataset.json drawn_pixel_size_um" in said


def test_rgb_jpeg_export_is_a_readable_crop_dataset(tmp_path):
    from PIL import JpegImagePlugin

    from ctcnet.simulate import simulate_crops
    from ctcnet.simulate.export import encode_jpeg, write_rgb_jpeg_dataset

    batch = simulate_crops(2, load_panel(None), None, TINY_CROP, seed=11)
    write_rgb_jpeg_dataset(batch, tmp_path / "x", planes=RGB_ORDER, quality=(70, 80),
                           pixel_size_um=0.32, seed=3)
    index = read_crop_index(tmp_path / "x")
    assert index.panel.composite == "rgb" and index.panel.names == RGB_ORDER
    assert index.panel.pixel_size_um == 0.32 and len(index) == len(batch)
    arr = index.read(0)
    assert arr.dtype == np.uint8 and arr.shape == (3, 2 * TINY_CROP, 2 * TINY_CROP)
    info = json.loads((tmp_path / "x" / "dataset.json").read_text())
    assert all(70 <= q <= 80 for q in info["qualities"])
    # Each crop's truth: drawn at its sample's scale, resized as if at the panel's (0.64 to
    # 0.32: twice as many pixels), so it lies at half its drawn size (recorded as 0.64).
    assert info["drawn_pixel_size_um"] == [round(float(v) / 2, 4) for v in batch.pixel_size_um]
    # Highlights clip (display maximum below the bright end) and chroma subsampling is real.
    assert max(int(index.read(i).max()) for i in range(len(index))) == 255
    rgb = np.ascontiguousarray(arr.transpose(1, 2, 0))
    for code in (0, 2):
        (tmp_path / "s.jpg").write_bytes(encode_jpeg(rgb, 80, code))
        with Image.open(tmp_path / "s.jpg") as im:
            assert JpegImagePlugin.get_sampling(im) == code
    assert main(["simulate", "crops", str(tmp_path / "cli"), "--counts", "1", "--crop-size",
                 "32", "--export", "rgb-jpeg", "--jpeg-quality", "high"]) == 2


def test_an_option_of_another_export_is_refused_not_passed_over(tmp_path, capsys):
    """--export-pixel-size 0.2 asked of the default TIFF crops wrote them at the panel's 0.64
    um/px without a word, as did --image-format, --jpeg-quality and --render-pixel-size."""
    from ctcnet.cli import main

    base = ["simulate", "crops", str(tmp_path / "out"), "--counts", "1", "--crop-size", "32"]
    for extra, said in ((["--export-pixel-size", "0.2"], "--export-pixel-size is an option of "
                         "--export rgb-jpeg or tight, not of --export tiff"),
                        (["--image-format", "jpg", "--export", "rgb-jpeg"], "--image-format is "
                         "an option of --export tight, not of --export rgb-jpeg"),
                        (["--render-pixel-size", "0.2"], "--render-pixel-size"),
                        (["--ck-copy", "0.5"], "--ck-copy is an option of --export tight")):
        assert main([*base, *extra]) == 2
        assert said in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main([*base, "--export", "tight", "--jpeg-quality", "60-90"]) == 2  # PNG
    assert "add --image-format jpg" in capsys.readouterr().err
    assert main([*base, "--export", "rgb-jpeg", "--planes", "CK,CD45"]) == 2  # (a panel's)
    assert "--planes names the 3 planes of an RGB export" in capsys.readouterr().err
    assert main([*base, "--export", "rgb-jpeg", "--planes", "CK,CD45,DAPI", "--ck-copy",
                 "0"]) == 0


def test_rgb_jpeg_display_per_image_stretches_each_crop_on_its_own(tmp_path):
    """A gallery's export shows a sample's crops in one display range, so a dim crop stays
    dim; exported one by one, each crop is stretched to its own bright end."""
    from ctcnet.simulate import simulate_crops
    from ctcnet.simulate.export import write_rgb_jpeg_dataset

    batch = simulate_crops(4, load_panel(None), None, TINY_CROP, seed=11, num_samples=1)
    peaks = {}
    for display in ("sample", "image"):
        write_rgb_jpeg_dataset(batch, tmp_path / display, planes=RGB_ORDER, quality=(95, 95),
                               seed=3, display=display)
        index = read_crop_index(tmp_path / display)
        peaks[display] = np.array([int(index.read(i).max()) for i in range(len(index))])
        info = json.loads((tmp_path / display / "dataset.json").read_text())
        assert info["display"] == display
    assert (peaks["image"] >= 200).all()  # every crop reaches near white in some plane
    assert (peaks["sample"] < 200).any()  # the sample's dim crops stay dim
    with pytest.raises(InputError, match="display"):
        write_rgb_jpeg_dataset(batch, tmp_path / "x", display="crop")


def test_export_headroom_dims_a_crop_as_a_whole_sample_export_would(rng):
    """A crop exported alone with headroom h looks as it would in a sample whose bright end is
    h times its own: every grey level divided by h (before rounding), none clipped."""
    from ctcnet.simulate.export import EXPORT_HEADROOM, as_rgb_jpeg, display_8bit_per_sample

    crop = rng.poisson(200, (1, 3, TINY_CROP, TINY_CROP)).astype(np.float32)
    crop[:, :, 10:20, 12:22] += np.array([3000, 50, 800], np.float32)[:, None, None]
    stretched = display_8bit_per_sample(crop, ["a"], np.random.default_rng(2)).astype(float)
    dimmed = display_8bit_per_sample(crop, ["a"], np.random.default_rng(2),
                                     headroom=(10.0, 10.0))
    kept = stretched < 255
    assert np.abs(dimmed[kept] - stretched[kept] / 10).max() <= 0.5 + 1e-6
    assert dimmed.max() <= 255 / 10 / 0.35 + 1  # the display maximum is at most 1/0.35 of it
    # The augmentation's default draws headroom: some crops stay far below 255.
    peaks = [as_rgb_jpeg(crop[0], np.random.default_rng(s))[0].max() for s in range(20)]
    assert EXPORT_HEADROOM[1] > 10 and min(peaks) < 60 < max(peaks)


def test_tight_exports_are_cut_round_the_cell_black_and_read_back_as_crops(tmp_path):
    """The tight single-cell export family: the cell fills half or more of each image, the
    background is clipped to black, and the files are an ordinary crop dataset."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import write_tight_export_dataset

    panel = Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                             "channels": ["DAPI", "CK", "CD45"]})
    batch = simulate_crops({"ctc": 4, "wbc": 4}, panel, crop_size=80, seed=3)
    root = write_tight_export_dataset(batch, tmp_path / "tight", panel, pixel_size_um=0.1,
                                      state_pixel_size=False)
    assert "pixel_size_um" not in json.loads((root / "panel.json").read_text())
    with pytest.raises(InputError, match="--pixel-size auto"):
        read_crop_index(root)                      # a pixel size is never guessed unasked
    index = read_crop_index(root, pixel_size=0.1)
    assert len(index) == 8 and index.panel.composite == "rgb"
    assert index.panel.pixel_size_um == 0.1
    for i in range(len(index)):
        rgb = index.read(i)
        assert rgb.dtype == np.uint8 and min(rgb.shape[1:]) > 80   # finer than the scan
        lit = (rgb > 20).any(axis=0)
        assert lit.mean() > 0.2                                    # the cell fills the image
        corners = rgb[:, [0, 0, -1, -1], [0, -1, 0, -1]]
        assert np.median(corners) == 0                             # a black background


def test_tight_exports_with_a_ck_copy_show_ck_in_the_cd45_plane(tmp_path):
    """``ck_copy``: the CD45 plane of a CTC's export shows its CK at 15-30 %, as published
    dim-CK CTCs do; the rest of every export (and every export without a copy) is as drawn
    without the option; a share outside 0-1 is refused."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import write_tight_export_dataset

    panel = Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                             "channels": ["DAPI", "CK", "CD45"]})
    batch = simulate_crops({"ctc": 6}, panel, crop_size=80, seed=5)
    plain = read_crop_index(write_tight_export_dataset(batch, tmp_path / "plain", panel))
    copied = read_crop_index(write_tight_export_dataset(batch, tmp_path / "copy", panel,
                                                        ck_copy=1.0))
    assert json.loads((tmp_path / "copy" / "dataset.json").read_text())["ck_copy"] == 1.0
    shares = []
    for i in range(len(plain)):
        before, after = plain.read(i), copied.read(i)    # R = CK, G = CD45, B = DAPI
        assert np.array_equal(before[[0, 2]], after[[0, 2]])
        ck = (before[0] > 60) & (after[1] < 255)
        if ck.sum() >= 20:
            added = after[1][ck].astype(float) - before[1][ck]
            shares.append(np.median(added / before[0][ck]))
    assert len(shares) >= 4 and all(0.14 <= share <= 0.31 for share in shares)
    with pytest.raises(InputError, match="0-1"):
        write_tight_export_dataset(batch, tmp_path / "bad", panel, ck_copy=1.5)


def test_simulate_crops_writes_tight_exports_of_cells_rendered_at_fine_pixels(tmp_path):
    """`ctcnet simulate crops --export tight` renders the cells at a fine pixel size (the field
    of view kept) and writes them as tight exports at the export's pixel size, stated: a
    labelled set of the kind the model card tests an export model on, to train or fine-tune
    one on."""
    from ctcnet.detect.crop_dataset import read_crop_index

    panel = tmp_path / "core3.json"
    panel.write_text(json.dumps({"name": "core3", "pixel_size_um": 0.64,
                                 "channels": ["DAPI", "CK", "CD45"]}))
    out = tmp_path / "tight"
    assert main(["simulate", "crops", str(out), "--counts", "ctc=3,wbc=3", "--panel",
                 str(panel), "--crop-size", "40", "--export", "tight", "--render-pixel-size",
                 "0.32", "--export-pixel-size", "0.16", "--image-format", "jpg"]) == 0
    info = json.loads((out / "dataset.json").read_text())
    assert info["pixel_size_stated"] and info["file_format"] == "jpg"
    assert info["simulated_pixel_size_um"] == 0.32 and info["pixel_size_um"] == 0.16
    index = read_crop_index(out)
    assert index.panel.pixel_size_um == 0.16 and index.panel.composite == "rgb"
    assert sorted(index.labels) == ["ctc"] * 3 + ["wbc"] * 3
    for i in range(len(index)):
        rgb = index.read(i)
        # The background is black, or a haze no viewer sees: a faint channel stretched to its
        # own peak lifts the background's noise by a few grey levels.
        assert rgb.dtype == np.uint8 and np.median(rgb[:, [0, 0, -1, -1], [0, -1, 0, -1]]) <= 10
        # A cell of ~8-20 um at 0.16 um/px: far more pixels than the 40 px scan crop.
        assert min(rgb.shape[1:]) > 40
    # 0 read as "not given" wrote rgb-jpeg crops at the panel's size, nobody's asked for:
    # refused as the option is read.
    for option, export in (("--render-pixel-size", "tight"), ("--export-pixel-size", "rgb-jpeg")):
        with pytest.raises(SystemExit) as refused:
            main(["simulate", "crops", str(tmp_path / "bad"), "--export", export, option, "0",
                  "--counts", "ctc=1"])
        assert refused.value.code == 2 and not (tmp_path / "bad").exists()
    copied = tmp_path / "copied"
    assert main(["simulate", "crops", str(copied), "--counts", "ctc=2", "--panel", str(panel),
                 "--crop-size", "40", "--export", "tight", "--render-pixel-size", "0.32",
                 "--export-pixel-size", "0.16", "--ck-copy", "0.5"]) == 0
    assert json.loads((copied / "dataset.json").read_text())["ck_copy"] == 0.5
    assert main(["simulate", "crops", str(tmp_path / "bad_copy"), "--counts", "ctc=2",
                 "--panel", str(panel), "--crop-size", "40", "--export", "tight",
                 "--render-pixel-size", "0.32", "--ck-copy", "1.5"]) == 2
    assert not (tmp_path / "bad_copy").exists()  # refused before anything is written
    assert main(["simulate", "crops", str(tmp_path / "tiff_copy"), "--counts", "ctc=2",
                 "--ck-copy", "0.5"]) == 2                      # a copy is drawn on exports


def test_tight_renders_show_a_dim_ck_ctcs_ck_as_published_figures_do():
    """A dim-CK CTC rendered for a tight export (a microscope's single-cell image, less noise
    per pixel than a scan: tight_config) shows its CK on the 8-bit export, as published
    dim-CK CTCs do (81 % of these; at a scan's noise 44 %, the rest a red haze at most)."""
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.export import (
        TIGHT_RENDER_NOISE,
        tight_config,
        tight_export,
        tight_rendering,
    )

    shifted = SimConfig().with_shift("noise_2x")
    assert tight_config(shifted).noise_scale == pytest.approx(2.0 * TIGHT_RENDER_NOISE)
    panel, side, config = tight_rendering(Panel.from_dict(
        {"name": "core3", "pixel_size_um": 0.64, "channels": ["DAPI", "CK", "CD45"]}), 80,
        config=dataclasses.replace(SimConfig(), neighbours=(0.0, 0.0)))
    batch = simulate_crops({"ctc": 90}, panel, crop_size=side, seed=48000, config=config)
    rng = np.random.default_rng(0)
    shown = []
    for image, subtype in zip(batch.images, batch.subtypes):
        if subtype != "ctc_dim":
            continue
        export = tight_export(image[[1, 2, 0]], rng, markers=[True, True, False])
        cell = export.max(axis=0) >= 20
        shown.append(np.percentile(export[0][cell], 95) >= 50)
    assert len(shown) >= 15
    assert np.mean(shown) >= 0.75, f"CK visible on {np.mean(shown):.0%} of dim-CK CTCs"
