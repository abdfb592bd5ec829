"""Frame sources: the registry, which source claims which file, and the metadata mapping the
microscopy containers share (pure functions, no bioio needed)."""

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from ctcnet.errors import InputError
from ctcnet.io.panel import Channel, Panel
from ctcnet.io.scan import is_cartridge, open_cartridge, read_frame, write_frame
from ctcnet.io.sources import (
    FramePart,
    FrameSource,
    base,
    claim,
    get_source,
    list_sources,
    microscopy,
    register,
)
from ctcnet.io.sources.microscopy import (
    SceneInfo,
    dtype_range,
    metadata_channel_names,
    metadata_panel,
    metadata_pixel_size,
    tile_regions,
)

PANEL = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})


def test_registry_lists_every_layout_in_claim_order():
    assert list_sources() == ["multipage", "composite", "channel-files", "ome-tiff", "ome-zarr",
                              "czi", "nd2", "lif"]
    assert get_source("czi").container and not get_source("multipage").container
    with pytest.raises(InputError, match="no frame source"):
        get_source("nope")
    with pytest.raises(ValueError, match="new name"):
        register(get_source("multipage"))


@pytest.mark.parametrize("name, source, stem, channel", [
    ("r03c12.tif", "multipage", "r03c12", None),
    ("R03C12.TIFF", "multipage", "R03C12", None),
    ("frame7.tif", "multipage", "frame7", None),
    ("r00c01.png", "composite", "r00c01", None),
    ("r00c01.jpg", "composite", "r00c01", None),
    ("r00c01_c2.tif", "channel-files", "r00c01", 2),
    ("frame_3_c0.png", "channel-files", "frame_3", 0),
    # Named by its marker: matched to panel.json's channels once read (a name matching none,
    # a mask or an overview, is said and left out then).
    ("r00c01_CD45-APC.tif", "channel-files", "r00c01", "CD45-APC"),
    ("r00c00_mask.tif", "channel-files", "r00c00", "mask"),
    ("r00c00_DAPI.ome.tif", "ome-tiff", None, None),  # an OME-TIFF's, read by its metadata
    ("scan.ome.tif", "ome-tiff", None, None),
    ("r00c00.ome.tiff", "ome-tiff", None, None),
    ("slide.czi", "czi", None, None),
    ("well.nd2", "nd2", None, None),
    ("project.lif", "lif", None, None),
])
def test_each_file_is_claimed_by_one_source(tmp_path, name, source, stem, channel):
    path = tmp_path / name
    path.write_bytes(b"x")
    part = claim(path)
    assert part == FramePart(path, source, stem, channel)


@pytest.mark.parametrize("name", ["overview.tif", "r00c00.txt", "notes.png",
                                  "r00c00 - Copy.tif", "r00c00_2.tif"])
def test_files_no_source_reads_are_not_claimed(tmp_path, name):
    (tmp_path / name).write_bytes(b"x")
    assert claim(tmp_path / name) is None


def test_zarr_stores_are_folders(tmp_path):
    (tmp_path / "scan.ome.zarr").mkdir()
    (tmp_path / "file.zarr").write_bytes(b"x")  # a file named .zarr is no store
    assert claim(tmp_path / "scan.ome.zarr") == FramePart(tmp_path / "scan.ome.zarr", "ome-zarr")
    assert claim(tmp_path / "file.zarr") is None
    assert is_cartridge(tmp_path) and is_cartridge(tmp_path / "scan.ome.zarr")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_named_like_a_frame_is_refused_by_its_claim(tmp_path):
    os.mkfifo(tmp_path / "r00c00.tif")
    with pytest.raises(InputError, match="frame"):
        claim(tmp_path / "r00c00.tif")
    assert is_cartridge(tmp_path)


def test_frames_record_the_source_that_reads_them(tmp_path, rng):
    for col, layout in enumerate(["multipage", "channels"]):
        write_frame(tmp_path, 0, col, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), PANEL,
                    layout=layout)
    (tmp_path / "panel.json").write_text(json.dumps(PANEL.to_dict()))
    cart = open_cartridge(tmp_path)
    assert [f.source for f in cart.frames] == ["multipage", "channel-files"]
    assert all(f.source_name == f.source for f in cart.frames)
    # Reading dispatches through the registry; the channels kept are the only ones read.
    (tmp_path / "r00c01_c2.tif").unlink()
    assert read_frame(cart.frames[1], PANEL, channels=[1, 0]).shape == (2, 16, 16)


@pytest.mark.parametrize("stated, unit, refused", [(0.64, "µm", False), (0.6432, "µm", False),
                                                   (0.45, "µm", True), (640.0, "nm", False),
                                                   (450.0, "nm", True),
                                                   (0.000064, "cm", False),
                                                   (0.000045, "cm", True)])
def test_a_plain_tiff_frames_ome_pixel_size_must_agree_with_panel_json(tmp_path, rng, stated,
                                                                      unit, refused):
    from ctcnet.io.images import write_tiff

    frame = rng.integers(1, 999, (3, 16, 16), dtype=np.uint16)
    write_tiff(tmp_path / "r00c00.tif", frame, PANEL.names)  # OME, names, no pixel size
    (tmp_path / "panel.json").write_text(json.dumps(PANEL.to_dict()))
    assert open_cartridge(tmp_path).panel.pixel_size_um == 0.64
    import tifffile

    tifffile.imwrite(tmp_path / "r00c00.tif", frame, ome=True, photometric="minisblack",
                     metadata={"axes": "CYX", "PhysicalSizeX": stated,
                               "PhysicalSizeXUnit": unit, "PhysicalSizeY": stated,
                               "PhysicalSizeYUnit": unit})
    in_um = stated * {"µm": 1, "nm": 1e-3, "cm": 1e4}[unit]
    if refused:
        with pytest.raises(InputError, match=f"OME metadata say {in_um:g} um per pixel, "
                                             "panel.json 0.64"):
            open_cartridge(tmp_path)
    else:
        assert open_cartridge(tmp_path).panel.pixel_size_um == 0.64


def test_each_frames_ome_pixel_size_is_held_to_panel_json_and_channel_files_too(tmp_path,
                                                                               rng):
    """A second frame stating 0.32 um among frames of 0.64 is not read at 0.64 (only the
    first frame's was held to panel.json); channel files stating another size are refused
    as a multipage frame is."""
    import tifffile

    def ome(path, pixels, px):
        tifffile.imwrite(path, pixels, ome=True, photometric="minisblack", metadata={
            "axes": "CYX"[-pixels.ndim:], "PhysicalSizeX": px, "PhysicalSizeY": px})

    frame = rng.integers(1, 999, (3, 16, 16), dtype=np.uint16)
    (tmp_path / "panel.json").write_text(json.dumps(PANEL.to_dict()))
    ome(tmp_path / "r00c00.tif", frame, 0.64)
    ome(tmp_path / "r00c01.tif", frame, 0.32)
    cart = open_cartridge(tmp_path)
    assert read_frame(cart.frames[0], PANEL).shape == (3, 16, 16)
    with pytest.raises(InputError, match="r00c01.tif: the frames' OME metadata say 0.32 um"):
        read_frame(cart.frames[1], PANEL)
    files = tmp_path / "files"
    files.mkdir()
    (files / "panel.json").write_text(json.dumps(PANEL.to_dict()))
    for c in range(3):
        ome(files / f"r00c00_c{c}.tif", frame[c], 0.32)
    with pytest.raises(InputError, match="r00c00_c0.tif: the frames' OME metadata say 0.32"):
        open_cartridge(files)
    # The first frame's files as stated, a later frame's not: that frame is refused when read.
    for c in range(3):
        ome(files / f"r00c00_c{c}.tif", frame[c], 0.64)
        ome(files / f"r00c01_c{c}.tif", frame[c], 0.32)
    cart = open_cartridge(files)
    assert read_frame(cart.frames[0], PANEL).shape == (3, 16, 16)
    with pytest.raises(InputError, match="r00c01_c0.tif: the frames' OME metadata say 0.32"):
        read_frame(cart.frames[1], PANEL)


def test_named_frames_and_containers_in_one_folder_are_refused(tmp_path, rng):
    write_frame(tmp_path, 0, 0, rng.integers(1, 999, (3, 16, 16), dtype=np.uint16), PANEL)
    (tmp_path / "panel.json").write_text(json.dumps(PANEL.to_dict()))
    (tmp_path / "scan.ome.tif").write_bytes(b"x")
    with pytest.raises(InputError, match="two layouts"):
        open_cartridge(tmp_path)


def test_a_container_without_its_plugin_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "scan.czi").write_bytes(b"x")
    monkeypatch.setattr(get_source("czi"), "plugin", "ctcnet_no_such_plugin")
    import re

    from ctcnet.core.install_hint import install_command

    with pytest.raises(InputError, match=re.escape(install_command("czi"))):
        open_cartridge(tmp_path)


def test_a_new_source_plugs_into_the_registry(tmp_path):
    class Dummy(FrameSource):
        name = "dummy-test"

        def claim(self, path: Path):
            return None

    source = Dummy()
    try:
        register(source)
        assert list_sources()[-1] == "dummy-test" and get_source("dummy-test") is source
    finally:
        base._REGISTRY.pop("dummy-test")


# --- the metadata mapping every container shares --------------------------------------------

@pytest.mark.parametrize("names, expected", [
    (["DAPI", "CK-PE", "CD45-APC"], ("DAPI", "CK-PE", "CD45-APC")),
    ([" DAPI ", "CK", "CD45"], ("DAPI", "CK", "CD45")),
    (["Channel:0:0", "Channel:0:1", "Channel:0:2"], None),  # OME without names
    (["C0", "C1", "C2"], None),
    # Some name a marker: kept, panel.json names the others (metadata_panel).
    (["Ch1", "CK", "CD45"], ("Ch1", "CK", "CD45")),
    (["DAPI", "", "CD45"], ("DAPI", "", "CD45")),
    (["DAPI", "PE", "APC"], ("DAPI", "PE", "APC")),
    (["DAPI", "dapi", "CD45"], ("DAPI", "dapi", "CD45")),  # refused by metadata_panel
    (["PE", "APC", "FITC"], None),  # a microscope's dyes or filters: panel.json names them
    (["405", "488nm", "647"], None),
    (["DAPI", "PE-CK", "CD45 (APC)"], ("DAPI", "PE-CK", "CD45 (APC)")),
    ([], None),
    (None, None),
])
def test_channel_names_made_up_by_a_reader_are_no_names(names, expected):
    assert metadata_channel_names(names) == expected


def test_pixel_size_from_the_readers_physical_sizes():
    sizes = SimpleNamespace  # the shape of bioio's PhysicalPixelSizes (Z, Y, X)
    assert metadata_pixel_size(sizes(Z=None, Y=0.65, X=0.65)) == 0.65
    assert metadata_pixel_size(sizes(Z=2.0, Y=0.651, X=0.65)) == 0.65
    assert metadata_pixel_size(sizes(Z=None, Y=None, X=None)) is None
    assert metadata_pixel_size(sizes(Z=0.0, Y=0.0, X=0.0)) is None  # CZI writes 0 for unknown
    with pytest.raises(InputError, match="not square"):
        metadata_pixel_size(sizes(Z=None, Y=0.5, X=0.65))


def test_value_range_from_the_pixel_type_and_significant_bits():
    assert dtype_range(np.uint8) == (0, 255)
    assert dtype_range(np.uint16) == (0, 65535)
    assert dtype_range(np.uint16, 12) == (0, 4095)
    with pytest.raises(InputError, match="value_range"):
        dtype_range(np.float32)


def _scene(names=("DAPI", "CK", "CD45"), pixel=0.65, dtype=np.uint16, bits=None, channels=3):
    return SceneInfo("s0", names, pixel, (64, 64), channels, np.dtype(dtype),
                     significant_bits=bits)


def test_metadata_panel_takes_names_and_pixel_size_from_the_file():
    panel = metadata_panel(_scene(bits=12), None, "f")
    assert panel.names == ["DAPI", "CK", "CD45"] and panel.pixel_size_um == 0.65
    assert all(c.value_range == (0, 4095) for c in panel.channels)


def test_metadata_panel_matches_panel_json_by_name_not_position():
    stated = Panel((Channel("CD45", (0, 1000)), Channel("CK", (0, 2000)),
                    Channel("DAPI", (0, 3000))), pixel_size_um=0.65)
    panel = metadata_panel(_scene(names=("DAPI", "CK-PE", "CD45")), stated, "f")
    # The file's order; each channel's name and range from the panel.json channel of its
    # name (or alias: CK-PE is the lab's CK, its events' column mean_CK in any container).
    assert panel.names == ["DAPI", "CK", "CD45"]
    assert [c.value_range for c in panel.channels] == [(0, 3000), (0, 2000), (0, 1000)]


def test_a_range_panel_json_does_not_state_is_the_files_significant_bits():
    """A 14-bit OME-TIFF (SignificantBits 14) and a panel.json naming its channels but no
    range: read as 0-4095 and every frame skipped as out of range. A range or bit depth
    panel.json states is kept; significant bits as many as the pixel type's say nothing."""
    stated = Panel.from_dict({"channels": ["DAPI", {"name": "CK", "value_range": [0, 1000]},
                                           {"name": "CD45", "bit_depth": 16}],
                              "pixel_size_um": 0.65})
    ranges = [c.value_range for c in metadata_panel(_scene(bits=14), stated, "f").channels]
    assert ranges == [(0, 16383), (0, 1000), (0, 65535)]
    assert [c.range_stated for c in stated.channels] == [False, True, True]
    assert metadata_panel(_scene(bits=16), stated, "f").channels[0].value_range == (0, 4095)
    twelve = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"], "bit_depth": 12,
                              "pixel_size_um": 0.65})
    assert metadata_panel(_scene(bits=14), twelve, "f").channels[0].value_range == (0, 4095)


def test_panel_json_fills_in_what_the_metadata_lack():
    stated = Panel((Channel("DAPI"), Channel("CK"), Channel("CD45")), pixel_size_um=0.5)
    panel = metadata_panel(_scene(names=None, pixel=None), stated, "f")
    assert panel.names == ["DAPI", "CK", "CD45"] and panel.pixel_size_um == 0.5
    with pytest.raises(InputError, match="does not name its channels"):
        metadata_panel(_scene(names=None), None, "f")
    with pytest.raises(InputError, match="does not state its pixel size"):
        metadata_panel(_scene(pixel=None), None, "f")
    with pytest.raises(InputError, match="4 unnamed channels"):
        metadata_panel(_scene(names=None, channels=4), stated, "f")


def test_channels_named_by_no_marker_take_the_channels_the_marker_names_leave():
    """Four markers and a dye (FITC), CK and CD45 in another order than panel.json's: every
    name was dropped and panel.json's read by position (CD45 read as CK: 0 of 16 CTCs, 18
    leukocytes called CTCs, status ok). The markers are placed by their names, the dye's
    channel takes the one panel.json channel left; where that cannot be told, refused."""
    stated = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "CD61", "CD66b"],
                              "pixel_size_um": 0.65})

    def read(*names):
        return metadata_panel(_scene(names=metadata_channel_names(names), channels=5),
                              stated, "f").names

    assert read("DAPI", "CD45", "CK", "CD61", "FITC") == ["DAPI", "CD45", "CK", "CD61", "CD66b"]
    assert read("CK", "DAPI", "", "CD61", "CD66b") == ["CK", "DAPI", "CD45", "CD61", "CD66b"]
    # Named in panel.json's order: each channel named by no marker is panel.json's there.
    assert read("DAPI", "PE", "CD45", "Channel:0:3", "") == stated.names
    with pytest.raises(InputError, match=r"f: .*'PE', 'FITC' name no marker .*which of "
                                         r"panel.json's channels"):
        read("CD45", "CK", "DAPI", "PE", "FITC")
    with pytest.raises(InputError, match="does not name its channels"):
        metadata_panel(_scene(names=metadata_channel_names(["DAPI", "PE", "CD45"])), None, "f")
    with pytest.raises(InputError, match="unique"):  # one marker named twice
        metadata_panel(_scene(names=("DAPI", "dapi", "CD45")), None, "f")


def test_a_pixel_size_stated_twice_must_agree():
    stated = Panel((Channel("DAPI"), Channel("CK"), Channel("CD45")), pixel_size_um=0.64)
    assert metadata_panel(_scene(pixel=0.642), stated, "f").pixel_size_um == 0.642
    with pytest.raises(InputError, match="0.325 um per pixel, panel.json 0.64"):
        metadata_panel(_scene(pixel=0.325), stated, "f")


@pytest.mark.parametrize("shape, tile, expected", [
    ((1036, 1384), 2048, 1),
    ((4096, 4096), 2048, 4),
    ((5000, 3000), 2048, 6),
])
def test_large_scenes_are_cut_into_tiles_that_cover_them_once(shape, tile, expected):
    regions = tile_regions(shape, tile)
    assert len(regions) == expected
    cover = np.zeros(shape, int)
    for y0, x0, y1, x1 in regions.values():
        assert y1 - y0 <= tile and x1 - x0 <= tile
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()


def test_every_container_source_names_its_extra():
    for source in microscopy.SOURCES:
        assert source.extra and source.plugin.startswith("bioio_") and source.suffixes


# --- a container's frames, through a stand-in for a bioio image ------------------------------

class _Lazy:
    """What a reader's dask array offers here: slicing, then compute()."""

    def __init__(self, arr):
        self.arr = arr

    def __getitem__(self, key):
        return _Lazy(self.arr[key])

    def compute(self, scheduler=None):
        return self.arr


class _FakeImage:
    """The bioio image calls a container source makes, over in-memory scenes (as an ND2 with
    three stage positions, none named like a frame, would answer them)."""

    def __init__(self, scenes):
        self.data = scenes
        self.scenes = tuple(f"Position {k}" for k in range(len(scenes)))
        self.channel_names = ["DAPI", "CK-PE", "CD45-APC"]
        self.physical_pixel_sizes = SimpleNamespace(Z=None, Y=0.65, X=0.65)
        self.dtype = np.uint16
        self.index = 0

    def set_scene(self, index):
        self.index = index

    @property
    def dims(self):
        c, h, w = self.data[self.index].shape
        return SimpleNamespace(T=1, Z=1, C=c, Y=h, X=w)

    def get_image_dask_data(self, order, T=0, Z=0, C=None):
        assert order == "CYX"
        return _Lazy(self.data[self.index][C])


def test_scenes_not_named_like_frames_are_numbered_in_scan_order(tmp_path, monkeypatch, rng):
    scenes = [rng.integers(1, 4000, (3, 32, 40), dtype=np.uint16) for _ in range(4)]
    (tmp_path / "run.nd2").write_bytes(b"x")
    (tmp_path / "cartridge.json").write_text(json.dumps({"sample_id": "S", "columns": 2}))
    nd2 = get_source("nd2")
    monkeypatch.setattr(nd2, "_open", lambda path: _FakeImage(scenes))
    cart = open_cartridge(tmp_path)
    assert cart.panel.names == ["DAPI", "CK-PE", "CD45-APC"] and cart.panel.pixel_size_um == 0.65
    # frame<k> order: serpentine over cartridge.json's two columns.
    assert [f.frame_id for f in cart.frames] == ["r00c00", "r00c01", "r01c01", "r01c00"]
    assert [f.scene for f in cart.frames] == [0, 1, 2, 3]
    assert [f.stem for f in cart.frames] == ["run_s0", "run_s1", "run_s2", "run_s3"]
    model = Panel.from_dict({"channels": ["CD45", "DAPI", "CK"], "pixel_size_um": 0.65})
    conformed = cart.conform(model)  # by name and alias: CD45-APC carries CD45
    np.testing.assert_array_equal(conformed.read(conformed.frames[2]), scenes[2][[2, 0, 1]])


def test_scenes_that_disagree_or_hold_stacks_are_refused(tmp_path, monkeypatch, rng):
    (tmp_path / "run.nd2").write_bytes(b"x")
    (tmp_path / "panel.json").write_text(json.dumps(PANEL.to_dict()))
    image = _FakeImage([rng.integers(1, 4000, (3, 32, 40), dtype=np.uint16)] * 2)
    monkeypatch.setattr(get_source("nd2"), "_open", lambda path: image)
    monkeypatch.setattr(_FakeImage, "dims", property(
        lambda self: SimpleNamespace(T=1, Z=5, C=3, Y=32, X=40)))
    with pytest.raises(InputError, match="5 planes per channel"):
        open_cartridge(tmp_path)
    monkeypatch.undo()
    monkeypatch.setattr(get_source("nd2"), "_open", lambda path: image)
    image.physical_pixel_sizes = SimpleNamespace(Z=None, Y=0.325, X=0.325)
    with pytest.raises(InputError, match="0.325 um per pixel, panel.json 0.64"):
        open_cartridge(tmp_path)


@pytest.mark.parametrize("tile_px", [0, 10, "big", 512.5, True])
def test_a_tile_size_that_is_no_size_is_refused(tmp_path, monkeypatch, rng, tile_px):
    (tmp_path / "run.nd2").write_bytes(b"x")
    (tmp_path / "cartridge.json").write_text(json.dumps({"tile_px": tile_px}))
    image = _FakeImage([rng.integers(1, 4000, (3, 32, 40), dtype=np.uint16)])
    monkeypatch.setattr(get_source("nd2"), "_open", lambda path: image)
    with pytest.raises(InputError, match="tile_px"):
        open_cartridge(tmp_path)
