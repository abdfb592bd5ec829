"""Foundation: panel and taxonomy loading, image/crop/cartridge formats, bad input, CLI help."""

import json

import numpy as np
import pytest
import tifffile

from ctcnet.cli import SUBCOMMANDS, main
from ctcnet.detect.crop_dataset import load_crops, read_crop, read_crop_index, write_crop_dataset
from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.io.images import read_image, remove_cellsearch_offset, write_tiff
from ctcnet.io.panel import Panel, default_panel, load_panel, marker_role
from ctcnet.io.scan import (
    open_cartridge,
    read_frame,
    serpentine_position,
    write_cartridge_info,
    write_frame,
)
from ctcnet.io.taxonomy import Taxonomy, default_taxonomy, load_taxonomy
from ctcnet.nn.spec import ModelSpec

# --- panel and taxonomy -------------------------------------------------------------------------

def test_default_panel_and_taxonomy():
    panel = default_panel()
    assert panel.names == ["DAPI", "CK", "CD45", "CD61", "CD66b"]
    assert panel.pixel_size_um == pytest.approx(0.64)
    assert panel.roles() == ["nucleus", "epithelial", "leukocyte", "platelet", "neutrophil"]
    assert default_taxonomy().names == ["ctc", "wbc", "cluster", "debris"]


def test_minimal_panel_json_is_accepted(tmp_path):
    (tmp_path / "panel.json").write_text(json.dumps(
        {"channels": ["DAPI", "CK", "CD45", "VIM"], "pixel_size_um": 0.5}))
    panel = load_panel(tmp_path)
    assert panel.names == ["DAPI", "CK", "CD45", "VIM"]
    assert panel.channels[3].role == "mesenchymal"
    assert panel.pixel_size_um == 0.5
    assert Panel.from_dict(panel.to_dict()) == panel


def test_panel_yaml_and_aliases(tmp_path):
    path = tmp_path / "panel.yaml"
    path.write_text("channels: [Hoechst, panCK, CD45, CD41, CD15, EpCAM]\npixel_size_um: 0.325\n")
    panel = load_panel(path)
    assert panel.roles() == ["nucleus", "epithelial", "leukocyte", "platelet", "neutrophil",
                             "epcam"]
    assert marker_role("something-new") == "unknown"


@pytest.mark.parametrize("bad", [
    {"channels": ["DAPI", "CK"]},                         # too few
    {"channels": ["A", "B", "C", "D", "E", "F", "G"]},    # too many
    {"channels": ["DAPI", "dapi", "CK"]},                 # duplicates
    {"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 40},
    {"channels": [{"name": "DAPI", "normalisation": {"method": "zscore"}}, "CK", "CD45"]},
    {"name": "no channels"},
])
def test_bad_panels_are_refused(bad):
    with pytest.raises(InputError):
        load_panel(bad)


def test_panel_mismatch_names_the_problem():
    model_panel = default_panel()
    swapped = Panel.from_dict({"channels": ["CK", "DAPI", "CD45", "CD61", "CD66b"]})
    with pytest.raises(PanelMismatchError, match="another order"):
        model_panel.check_matches(swapped)
    model_panel.check_matches(Panel.from_dict({"channels": ["dapi", "ck", "cd45", "cd61",
                                                            "cd66b"]}))


def test_taxonomy_subtype_mapping(tmp_path):
    tax = load_taxonomy(["ctc", "wbc", "cluster", "debris", "tdev", "bare_nucleus"])
    assert tax.class_for_subtype("tdev", "debris") == "tdev"
    assert tax.class_for_subtype("fibre", "debris") == "debris"
    custom = Taxonomy.from_dict({"classes": ["ctc", {"name": "other", "includes": ["lymphocyte",
                                                                                    "fibre"]}]})
    assert custom.class_for_subtype("lymphocyte", "wbc") == "other"
    with pytest.raises(InputError, match="no class"):
        custom.class_for_subtype("tdev", "debris")
    with pytest.raises(InputError):
        load_taxonomy(["ctc", "CTC!"])
    path = tmp_path / "tax.json"
    path.write_text(json.dumps(tax.to_dict()))
    assert load_taxonomy(path) == tax


def test_spec_round_trip():
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=64,
                     temperature=1.3, training={"n": 5}, metrics={"macro_f1": 0.9})
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    with pytest.raises(InputError):
        ModelSpec.from_dict({"nothing": 1})


# --- images and crop datasets -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_round_trip_with_channel_names(tmp_path, rng, dtype):
    arr = (rng.random((5, 20, 24)) * 200).astype(dtype)
    write_tiff(tmp_path / "x.tif", arr, ["DAPI", "CK", "CD45", "CD61", "CD66b"], 0.64)
    back, names = read_image(tmp_path / "x.tif")
    assert back.dtype == dtype and np.array_equal(back, arr)
    assert names == ["DAPI", "CK", "CD45", "CD61", "CD66b"]


def test_bad_images_give_clear_errors(tmp_path, rng):
    good = tmp_path / "good.tif"
    write_tiff(good, rng.integers(0, 4000, (3, 30, 30), dtype=np.uint16))
    data = good.read_bytes()
    (tmp_path / "trunc.tif").write_bytes(data[: len(data) // 3])
    (tmp_path / "junk.tif").write_bytes(b"this is not a tiff")
    with pytest.raises(InputError, match="trunc.tif"):
        read_image(tmp_path / "trunc.tif")
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_image(tmp_path / "junk.tif")
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "missing.tif")
    nan = np.ones((3, 8, 8), np.float32)
    nan[1, 2, 2] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    with pytest.raises(InputError, match="NaN"):
        read_image(tmp_path / "nan.tif")
    tifffile.imwrite(tmp_path / "int32.tif", np.ones((3, 8, 8), np.int32))
    with pytest.raises(InputError, match="unsupported pixel type"):
        read_image(tmp_path / "int32.tif")


def _toy_crops(rng, n=6, c=5, size=32):
    return rng.integers(100, 4000, (n, c, size, size), dtype=np.uint16)


def test_crop_dataset_round_trip_and_sample_ids(tmp_path, rng):
    panel = default_panel()
    crops = _toy_crops(rng)
    labels = ["ctc", "wbc", "wbc", "debris", "ctc", "wbc"]
    samples = ["P1", "P1", "P2", "P2", "P3", "P3"]
    write_crop_dataset(tmp_path / "ds", crops, labels, panel, samples)
    index = read_crop_index(tmp_path / "ds", taxonomy=default_taxonomy())
    assert index.labels == labels and index.sample_ids == samples
    assert np.array_equal(load_crops(index), crops.astype(np.float32))
    assert index.class_counts() == {"ctc": 2, "debris": 1, "wbc": 3}
    # Without the manifest the class-folder layout gives the same labels and sample ids.
    (tmp_path / "ds" / "manifest.csv").unlink()
    folders = read_crop_index(tmp_path / "ds")
    assert sorted(zip(folders.labels, folders.sample_ids)) == sorted(zip(labels, samples))


def test_crop_dataset_errors(tmp_path, rng):
    panel = default_panel()
    write_crop_dataset(tmp_path / "ds", _toy_crops(rng, n=2), ["ctc", "platypus"], panel)
    with pytest.raises(InputError, match="platypus"):
        read_crop_index(tmp_path / "ds", taxonomy=default_taxonomy())
    (tmp_path / "nopanel" / "ctc").mkdir(parents=True)
    with pytest.raises(InputError, match="panel.json"):
        read_crop_index(tmp_path / "nopanel")
    # Wrong channel count, wrong channel order, too small for the model.
    write_tiff(tmp_path / "four.tif", _toy_crops(rng, n=1, c=4)[0])
    with pytest.raises(InputError, match="4 channels"):
        read_crop(tmp_path / "four.tif", panel)
    write_tiff(tmp_path / "swap.tif", _toy_crops(rng, n=1)[0],
               ["CK", "DAPI", "CD45", "CD61", "CD66b"])
    with pytest.raises(PanelMismatchError, match="another order"):
        read_crop(tmp_path / "swap.tif", panel)
    write_tiff(tmp_path / "small.tif", _toy_crops(rng, n=1, size=20)[0])
    with pytest.raises(InputError, match="smaller than the model input"):
        read_crop(tmp_path / "small.tif", panel, min_size=64)


# --- cartridges ---------------------------------------------------------------------------------

def test_cellsearch_offset():
    raw = np.array([[0, 100, 4095]], dtype=np.uint16)
    shifted = np.where(raw > 0, raw + 32768, raw).astype(np.uint16)
    assert np.array_equal(remove_cellsearch_offset(shifted), raw)
    genuine = np.array([[0, 40000, 65535]], dtype=np.uint16)  # real 16-bit: untouched
    assert np.array_equal(remove_cellsearch_offset(genuine), genuine)


@pytest.mark.parametrize("layout", ["multipage", "channels", "png"])
def test_cartridge_round_trip(tmp_path, rng, layout):
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "CD61"]})
    dtype = np.uint8 if layout == "png" else np.uint16
    frames = {}
    for index in range(5):
        row, col = serpentine_position(index, columns=3)
        frame = rng.integers(1, 250, (4, 24, 32)).astype(dtype)
        write_frame(tmp_path, row, col, frame, panel, layout=layout,
                    cellsearch_offset=(layout == "multipage"))
        frames[(row, col)] = frame
    write_cartridge_info(tmp_path, panel, "S1", 5, rows=2, columns=3, frame_shape=(24, 32))
    cart = open_cartridge(tmp_path)
    assert cart.sample_id == "S1" and len(cart) == 5 and not cart.problems
    assert [(f.row, f.col) for f in cart.frames] == [serpentine_position(i, 3) for i in range(5)]
    for f in cart.frames:
        assert np.array_equal(read_frame(f, panel), frames[(f.row, f.col)].astype(np.float32))


def test_truncated_cartridge_and_bad_frames(tmp_path, rng):
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    write_frame(tmp_path, 0, 0, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel)
    write_frame(tmp_path, 0, 1, np.zeros((3, 16, 16), np.uint16), panel)
    write_frame(tmp_path, 0, 2, rng.integers(1, 999, (4, 16, 16), dtype=np.uint16), panel)
    write_frame(tmp_path, 1, 2, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), panel,
                layout="channels")
    (tmp_path / "r01c02_c1.tif").unlink()
    write_cartridge_info(tmp_path, panel, "S2", 6, rows=2, columns=3, frame_shape=(16, 16))
    cart = open_cartridge(tmp_path)
    # The frame that lacks a channel file stays listed, to be skipped with its reason: its
    # blood volume was not read.
    assert len(cart) == 4 and cart.frames_scanned == 6
    assert any("truncated" in p for p in cart.problems)
    read_frame(cart.frames[0], panel)
    with pytest.raises(InputError, match="empty frame"):
        read_frame(cart.frames[1], panel)
    with pytest.raises(InputError, match="4 channels"):
        read_frame(cart.frames[2], panel)
    with pytest.raises(InputError, match=r"missing channel file\(s\) \[1\]"):
        read_frame(cart.frames[3], panel)


# --- CLI ----------------------------------------------------------------------------------------

def test_cli_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_subcommand_has_help(capsys, name):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: ctcnet " + name in capsys.readouterr().out
