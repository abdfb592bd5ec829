"""Microscopy containers through bioio: small files written by the writers those libraries ship
(tifffile's OME writer, bioio-ome-zarr's OMEZarrWriter, pylibCZIrw's CZI writer) read to the
same frames, and predict to the same events, as their TIFF twin. Skipped where bioio or a
format's plugin is not installed."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctcnet.errors import InputError
from ctcnet.io.panel import Panel
from ctcnet.io.scan import is_cartridge, open_cartridge, read_frame

pytest.importorskip("bioio")
tifffile = pytest.importorskip("tifffile")

NAMES = ["DAPI", "CK", "CD45", "CD61", "CD66b"]


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """A small simulated cartridge in CellSearch's layout (the TIFF twin) and its frames."""
    from ctcnet.simulate import simulate_cartridge

    root = tmp_path_factory.mktemp("twin") / "tiff"
    # The simulator draws the scan's pixel size (panel.json records it): the twins state it.
    panel = Panel.from_dict({"channels": NAMES, "pixel_size_um": 0.64})
    simulate_cartridge(root, panel=panel, num_frames=3, frame_shape=(192, 256), seed=5,
                       events_per_frame=25, columns=3)
    cart = open_cartridge(root)
    frames = {f.frame_id: read_frame(f, cart.panel).astype(np.uint16) for f in cart.frames}
    return root, cart, frames


def _cartridge_json(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    info = json.loads((src / "cartridge.json").read_text())
    (dst / "cartridge.json").write_text(json.dumps(info))


def write_ome_tiff(twin, dst: Path, unit: str = "µm", names=NAMES) -> Path:
    """All frames in one OME-TIFF, one OME Image (scene) per frame, named by position; the
    channel names, pixel size (in ``unit``) and 12 significant bits in the OME metadata, no
    panel.json."""
    root, cart, frames = twin
    px = cart.panel.pixel_size_um / {"µm": 1.0, "nm": 1e-3, "mm": 1e3, "in": 25400.0}[unit]
    _cartridge_json(root, dst)
    with tifffile.TiffWriter(dst / "scan.ome.tif", ome=True) as tw:
        for frame_id, frame in frames.items():
            tw.write(frame, photometric="minisblack", metadata={
                "axes": "CYX", "Name": frame_id, "Channel": {"Name": list(names)},
                "PhysicalSizeX": px, "PhysicalSizeY": px, "PhysicalSizeXUnit": unit,
                "PhysicalSizeYUnit": unit, "SignificantBits": 12})
    return dst


def test_metadata_naming_the_channels_in_another_order_than_panel_json_is_said(twin, tmp_path,
                                                                              caplog):
    """The file's names are read (they are right where panel.json is a lab's generic order),
    but a person is told, once, that the two disagree: labels swapped by the writing software
    would change every call."""
    pytest.importorskip("bioio_ome_tiff")
    from ctcnet.io import stored_names

    stored_names._ORDERS_SAID.clear()
    swapped = [NAMES[0], NAMES[2], NAMES[1], *NAMES[3:]]
    folder = write_ome_tiff(twin, tmp_path / "ome", names=swapped)
    (folder / "panel.json").write_text(json.dumps({"channels": NAMES,
                                                   "pixel_size_um": twin[1].panel.pixel_size_um}))
    with caplog.at_level("WARNING", logger="ctcnet.io"):
        cart = open_cartridge(folder)
    assert list(cart.panel.names) == swapped
    said = [r.getMessage() for r in caplog.records if "another order" in r.getMessage()]
    assert len(said) == 1 and ", ".join(swapped) in said[0]


def test_scan_files_naming_the_same_channels_in_other_orders_say_so(twin, tmp_path):
    """One cartridge is one panel: OME frame files naming the channels in two orders are
    refused, saying it is an order (a writer's), not another panel."""
    pytest.importorskip("bioio_ome_tiff")
    _, cart, frames = twin
    folder = tmp_path / "orders"
    folder.mkdir()
    swapped = [NAMES[0], NAMES[2], NAMES[1], *NAMES[3:]]
    px = cart.panel.pixel_size_um
    for (frame_id, frame), names in zip(list(frames.items())[:2], (NAMES, swapped)):
        tifffile.imwrite(folder / f"{frame_id}.ome.tif", frame, ome=True,
                         photometric="minisblack", metadata={
                             "axes": "CYX", "Channel": {"Name": names},
                             "PhysicalSizeX": px, "PhysicalSizeY": px})
    with pytest.raises(InputError, match="one cartridge is one panel: the same channels in "
                                         "another order; export every file in one order"):
        open_cartridge(folder)


def test_a_pixel_size_no_scan_has_in_the_metadata_names_the_file(twin, tmp_path):
    """OME stating 0.5 m per pixel (a unit mix-up): refused, naming the file that says so."""
    pytest.importorskip("bioio_ome_tiff")
    folder = write_ome_tiff(twin, tmp_path / "m", "mm")
    scan = folder / "scan.ome.tif"
    data = scan.read_bytes().replace(b'PhysicalSizeXUnit="mm"', b'PhysicalSizeXUnit="m" ') \
        .replace(b'PhysicalSizeYUnit="mm"', b'PhysicalSizeYUnit="m" ')
    scan.write_bytes(data)
    with pytest.raises(InputError, match=r"scan.ome.tif: .*not a plausible pixel size"):
        open_cartridge(folder)
    # A unit of length no pixel is measured in: refused, naming the file (it named none).
    scan.write_bytes(data.replace(b'PhysicalSizeXUnit="m" ', b'PhysicalSizeXUnit="mi"')
                     .replace(b'PhysicalSizeYUnit="m" ', b'PhysicalSizeYUnit="mi"'))
    with pytest.raises(InputError, match=r"scan.ome.tif: pixel size stated in 'mi'"):
        open_cartridge(folder)


@pytest.mark.parametrize("unit", ["nm", "mm", "in"])
def test_an_ome_pixel_size_in_another_unit_is_read_in_um(twin, tmp_path, unit):
    """OME states the pixel size with its unit (591.3 nm is 0.5913 um); the reader hands
    the number on as written."""
    pytest.importorskip("bioio_ome_tiff")
    _, tiff_cart, _ = twin
    cart = open_cartridge(write_ome_tiff(twin, tmp_path / unit, unit))
    assert cart.panel.pixel_size_um == pytest.approx(tiff_cart.panel.pixel_size_um)


def write_ome_zarr(twin, dst: Path, order=(4, 2, 0, 1, 3), chunk=None) -> Path:
    """One OME-Zarr store per frame (``r00c00.ome.zarr``), written by bioio-ome-zarr, its
    channels in another order than the twin's; panel.json gives the value ranges, matched by
    name."""
    pytest.importorskip("bioio_ome_zarr")
    from bioio_ome_zarr.writers import Channel, OMEZarrWriter

    root, cart, frames = twin
    _cartridge_json(root, dst)
    shutil.copy(root / "panel.json", dst / "panel.json")
    for frame_id, frame in frames.items():
        data = frame[list(order)]
        writer = OMEZarrWriter(
            dst / f"{frame_id}.ome.zarr", level_shapes=[data.shape], dtype="uint16",
            chunk_shape=[chunk or data.shape], axes_names=["c", "y", "x"],
            axes_types=["channel", "space", "space"], axes_units=[None, "micrometer",
                                                                   "micrometer"],
            physical_pixel_size=[1.0, cart.panel.pixel_size_um, cart.panel.pixel_size_um],
            image_name=frame_id,
            channels=[Channel(label=NAMES[c], color="FFFFFF") for c in order])
        writer.write_full_volume(data)
    return dst


def write_czi(twin, dst: Path) -> Path:
    """One CZI per frame (``r00c00.czi``), written by pylibCZIrw with channel names and
    scaling; panel.json gives the value ranges."""
    pytest.importorskip("bioio_czi")
    pyczi = pytest.importorskip("pylibCZIrw.czi")
    root, cart, frames = twin
    px = cart.panel.pixel_size_um * 1e-6  # CZI scales are in metres
    _cartridge_json(root, dst)
    shutil.copy(root / "panel.json", dst / "panel.json")
    for frame_id, frame in frames.items():
        with pyczi.create_czi(str(dst / f"{frame_id}.czi"), exist_ok=True) as writer:
            for c in range(frame.shape[0]):
                writer.write(frame[c][..., None], plane={"C": c})
            writer.write_metadata(frame_id, channel_names=dict(enumerate(NAMES)),
                                  scale_x=px, scale_y=px)
    return dst


WRITERS = {"ome-tiff": write_ome_tiff, "ome-zarr": write_ome_zarr, "czi": write_czi}


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_each_format_reads_the_frames_of_its_tiff_twin(twin, tmp_path, fmt):
    _, tiff_cart, frames = twin
    pytest.importorskip(f"bioio_{fmt.replace('-', '_')}")
    cart = open_cartridge(WRITERS[fmt](twin, tmp_path / fmt))
    assert cart.sample_id == tiff_cart.sample_id and not cart.problems
    assert [f.frame_id for f in cart.frames] == [f.frame_id for f in tiff_cart.frames]
    assert {f.source for f in cart.frames} == {fmt}
    assert cart.panel.pixel_size_um == pytest.approx(tiff_cart.panel.pixel_size_um)
    assert sorted(cart.panel.names) == sorted(NAMES)
    assert [c.value_range for c in cart.panel.channels] == [(0, 4095)] * len(NAMES)
    # Seen through the twin's channel order (by name), every frame reads the same pixels.
    conformed = cart.conform(tiff_cart.panel)
    assert conformed.panel.names == NAMES
    for f in conformed.frames:
        np.testing.assert_array_equal(conformed.read(f), frames[f.frame_id])
    assert len({f.digest for f in cart.frames}) == len(cart.frames)  # no frame taken for a copy


def test_a_folder_of_frames_is_found_and_a_store_given_alone_is_a_cartridge(twin, tmp_path):
    pytest.importorskip("bioio_ome_zarr")
    folder = write_ome_zarr(twin, tmp_path / "zarr")
    assert is_cartridge(folder)
    store = folder / "r00c01.ome.zarr"
    cart = open_cartridge(store, panel=folder / "panel.json")
    assert [f.frame_id for f in cart.frames] == ["r00c01"] and cart.sample_id == "r00c01"


def test_metadata_and_panel_json_that_disagree_are_refused(twin, tmp_path):
    folder = write_ome_tiff(twin, tmp_path / "ome")
    panel = {"channels": NAMES, "pixel_size_um": 0.325}
    (folder / "panel.json").write_text(json.dumps(panel))
    with pytest.raises(InputError, match="um per pixel, panel.json 0.325"):
        open_cartridge(folder)


def test_unnamed_channels_take_panel_json_names(twin, tmp_path):
    root, tiff_cart, frames = twin
    folder = tmp_path / "plain"
    _cartridge_json(root, folder)
    frame = frames["r00c00"]
    tifffile.imwrite(folder / "r00c00.ome.tif", frame, ome=True, photometric="minisblack",
                     metadata={"axes": "CYX"})
    with pytest.raises(InputError, match="does not name its channels"):
        open_cartridge(folder)
    shutil.copy(root / "panel.json", folder / "panel.json")
    cart = open_cartridge(folder)
    assert cart.panel.names == NAMES
    assert cart.panel.pixel_size_um == tiff_cart.panel.pixel_size_um
    np.testing.assert_array_equal(read_frame(cart.frames[0], cart.panel), frame)


def test_a_large_scene_is_read_tile_by_tile(twin, tmp_path):
    """A stitched scan in one OME-Zarr scene becomes tiles; reading one tile's channel touches
    only its chunks (every other chunk is corrupted first, and the read still succeeds)."""
    pytest.importorskip("bioio_ome_zarr")
    from bioio_ome_zarr.writers import Channel, OMEZarrWriter

    rng = np.random.default_rng(0)
    data = rng.integers(100, 4000, (3, 256, 384), dtype=np.uint16)
    folder = tmp_path / "slide"
    folder.mkdir()
    writer = OMEZarrWriter(
        folder / "slide.ome.zarr", level_shapes=[data.shape], dtype="uint16",
        chunk_shape=[(1, 64, 64)], axes_names=["c", "y", "x"],
        axes_types=["channel", "space", "space"], axes_units=[None, "micrometer", "micrometer"],
        physical_pixel_size=[1.0, 0.5, 0.5], image_name="slide",
        channels=[Channel(label=n, color="FFFFFF") for n in ["DAPI", "CK", "CD45"]])
    writer.write_full_volume(data)
    (folder / "cartridge.json").write_text(json.dumps({"sample_id": "slide", "tile_px": 128}))
    cart = open_cartridge(folder)
    assert cart.panel.names == ["DAPI", "CK", "CD45"] and cart.panel.pixel_size_um == 0.5
    assert sorted(f.frame_id for f in cart.frames) == [f"r{r:02d}c{c:02d}" for r in range(2)
                                                        for c in range(3)]
    tile = next(f for f in cart.frames if f.frame_id == "r01c02")
    assert tile.region == (128, 256, 256, 384)
    # Chunks are 64 px: tile r01c02 of channel CK (index 1) is chunks y 2-3, x 4-5.
    chunks = folder / "slide.ome.zarr" / "0" / "c"
    keep = {chunks / "1" / str(y) / str(x) for y in (2, 3) for x in (4, 5)}
    files = [p for p in chunks.rglob("*") if p.is_file()]
    assert len(files) == 3 * 4 * 6
    for path in files:
        if path not in keep:
            path.write_bytes(b"not a chunk")
    got = read_frame(tile, cart.panel, channels=[1])
    np.testing.assert_array_equal(got[0], data[1, 128:256, 256:384])
    with pytest.raises(InputError):
        read_frame(tile, cart.panel, channels=[0])


def write_store(path: Path, data: np.ndarray, names=("DAPI", "CK", "CD45"), px: float = 0.5,
                unit: str = "micrometer") -> Path:
    """One small OME-Zarr store of ``data`` (C, Y, X), written by bioio-ome-zarr, its pixel
    size ``px`` stated in ``unit``."""
    pytest.importorskip("bioio_ome_zarr")
    from bioio_ome_zarr.writers import Channel, OMEZarrWriter

    OMEZarrWriter(path, level_shapes=[data.shape], dtype=str(data.dtype),
                  chunk_shape=[data.shape], axes_names=["c", "y", "x"],
                  axes_types=["channel", "space", "space"], axes_units=[None, unit, unit],
                  physical_pixel_size=[1.0, px, px], image_name=path.name.split(".")[0],
                  channels=[Channel(label=n, color="FFFFFF") for n in names]
                  ).write_full_volume(data)
    return path


@pytest.mark.parametrize("unit, scale", [("nanometer", 455.1), ("millimeter", 0.0004551)])
def test_an_ome_zarr_scale_in_another_unit_is_read_in_um(tmp_path, unit, scale):
    """NGFF axes state their unit: a store at 455.1 nanometer per pixel was read as 455.1 um
    (refused against panel.json's 0.4551: "correct one of them")."""
    store = write_store(tmp_path / "scan.ome.zarr", np.ones((3, 32, 32), np.uint16), px=scale,
                        unit=unit)
    stated = {"channels": NAMES[:3], "pixel_size_um": 0.4551}
    assert open_cartridge(store, panel=stated).panel.pixel_size_um == pytest.approx(0.4551)


def test_a_store_whose_array_metadata_are_cut_short_is_refused_by_name(tmp_path):
    """An array's zarr.json cut short raised a JSONDecodeError: one line naming the store."""
    store = write_store(tmp_path / "cut.ome.zarr", np.ones((3, 32, 32), np.uint16))
    (store / "0" / "zarr.json").write_text('{"zarr_format": 3, ')
    with pytest.raises(InputError, match="cut.ome.zarr: not a readable ome-zarr file"):
        open_cartridge(store, panel={"channels": NAMES[:3], "pixel_size_um": 0.5})


def test_a_store_holding_no_image_given_as_the_cartridge_is_refused_by_name(tmp_path):
    """A plain zarr group (its array without OME-Zarr's 'multiscales') given as the cartridge
    raised a StopIteration: one line naming the store."""
    pytest.importorskip("bioio_ome_zarr")
    zarr = pytest.importorskip("zarr")
    store = tmp_path / "plain.ome.zarr"
    zarr.open_group(str(store), mode="w", zarr_format=2).create_array(
        "0", shape=(3, 32, 32), dtype="uint16")[:] = 1
    with pytest.raises(InputError, match=r"plain.ome.zarr: holds no image \(no OME-Zarr image "
                                         "metadata, 'multiscales'"):
        open_cartridge(store, panel={"channels": NAMES[:3], "pixel_size_um": 0.5})


def _predict(cartridge: Path, out: Path, workers: int) -> pd.DataFrame:
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge

    backend = load_backend(None, device="cpu")
    predict_cartridge(cartridge, backend, out, PredictOptions(quiet=True, workers=workers,
                                                              report=False))
    return pd.read_parquet(out / "events.parquet")


@pytest.mark.slow
def test_each_format_predicts_the_events_of_its_tiff_twin(twin, tmp_path):
    want = _predict(twin[0], tmp_path / "out-tiff", workers=0)
    assert len(want) > 20 and want["class"].nunique() > 1
    compared = []
    for fmt, write in WRITERS.items():
        try:
            folder = write(twin, tmp_path / fmt)
        except pytest.skip.Exception:  # this format's writer or plugin is not installed
            continue
        # Frames read in worker threads: each thread opens the container for itself.
        got = _predict(folder, tmp_path / f"out-{fmt}", workers=1)
        pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-6, atol=1e-6,
                                      obj=fmt)
        compared.append(fmt)
    if not compared:
        pytest.skip("no container format's writer and plugin are installed")


def test_channels_stored_interleaved_are_said_so(tmp_path):
    """An OME-TIFF of channels last (SamplesPerPixel 5) read as a panel of one channel ("a
    panel needs 3 to 6 channels, got 1: ['DAPI']")."""
    pytest.importorskip("bioio_ome_tiff")
    tifffile.imwrite(tmp_path / "scan.ome.tif", np.zeros((32, 32, 5), np.uint16), ome=True,
                     photometric="minisblack", planarconfig="contig",
                     metadata={"axes": "YXC", "Channel": {"Name": NAMES},
                               "PhysicalSizeX": 0.64, "PhysicalSizeY": 0.64})
    with pytest.raises(InputError, match="stores 5 channels interleaved"):
        open_cartridge(tmp_path / "scan.ome.tif")
