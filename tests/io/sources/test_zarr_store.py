"""ctcnet.io.sources.zarr_store: an OME-Zarr frame whose chunk files are not all on disk is
refused by name (zarr would read the missing ones as zeros), and predict skips it with the
reason instead of counting a frame with a black patch."""

import json
import shutil

import numpy as np
import pytest
from conftest import predict

from ctcnet.errors import InputError
from ctcnet.io.scan import open_cartridge, read_frame
from ctcnet.io.sources.zarr_store import missing_chunks

pytest.importorskip("bioio_ome_zarr")


def write_stores(cart, dst, chunk=(1, 64, 64)):
    """The cartridge ``cart`` as one OME-Zarr store per frame (chunks of ``chunk``), beside its
    cartridge.json and panel.json."""
    from bioio_ome_zarr.writers import Channel, OMEZarrWriter

    opened = open_cartridge(cart)
    dst.mkdir()
    for name in ("cartridge.json", "panel.json"):
        shutil.copy(cart / name, dst / name)
    for frame in opened.frames:
        data = read_frame(frame, opened.panel).astype(np.uint16)
        px = opened.panel.pixel_size_um
        OMEZarrWriter(dst / f"{frame.frame_id}.ome.zarr", level_shapes=[data.shape],
                      dtype="uint16", chunk_shape=[chunk], axes_names=["c", "y", "x"],
                      axes_types=["channel", "space", "space"],
                      axes_units=[None, "micrometer", "micrometer"],
                      physical_pixel_size=[1.0, px, px], image_name=frame.frame_id,
                      channels=[Channel(label=n, color="FFFFFF") for n in opened.panel.names]
                      ).write_full_volume(data)
    return dst


def test_a_missing_chunk_is_named_never_read_as_zeros(cart, tmp_path):
    folder = write_stores(cart, tmp_path / "zarr")
    cart = open_cartridge(folder)
    frame = next(f for f in cart.frames if f.frame_id == "r00c01")
    store = folder / "r00c01.ome.zarr"
    assert missing_chunks(store, 0, [0, 1, 2, 3, 4], None) == []
    (store / "0" / "c" / "1" / "1" / "2").unlink()  # CK, rows 64-127, columns 128-159
    assert missing_chunks(store, 0, [1], None) == ["0/c/1/1/2"]
    assert missing_chunks(store, 0, [0, 2], None) == []  # other channels: not needed
    with pytest.raises(InputError, match=r"r00c01.ome.zarr: .*1 chunk file\(s\) missing .*"
                                         r"0/c/1/1/2.*read them as zeros"):
        read_frame(frame, cart.panel)
    read_frame(frame, cart.panel, channels=[0, 2])  # a read without CK needs no CK chunk


def test_predict_skips_a_frame_with_a_chunk_missing_with_the_reason(clean_run, cart, tmp_path):
    folder = write_stores(cart, tmp_path / "zarr")
    (folder / "r00c01.ome.zarr" / "0" / "c" / "2" / "0" / "0").unlink()
    summary = predict(clean_run, folder, out=tmp_path / "out")
    assert summary.status == "partial"
    assert summary.frames.skipped == 1 and summary.frames.processed == 2
    (skip,) = summary.skipped_frames
    assert skip["frame"] == "r00c01" and "chunk file(s) missing" in skip["reason"]
    # Its blood is not counted as read: the per-7.5 mL figures are of two frames' blood.
    assert summary.blood_volume_processed_ml == pytest.approx(summary.blood_volume_ml * 2 / 3)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["status"] == "partial"


def test_a_store_given_alone_reads_the_cartridge_json_and_panel_json_beside_it(cart, tmp_path):
    """An OME-Zarr store given as the cartridge reads its sample id, blood volume and panel
    from beside it, as one OME-TIFF holding the scan does (the store's rates per 7.5 mL were
    of 7.5 mL assumed, a stated 3.75 passed over without a word); a store holding them is
    read as its own folder."""
    stores = write_stores(cart, tmp_path / "stores")
    alone = tmp_path / "alone"
    alone.mkdir()
    store = shutil.move(str(stores / "r00c00.ome.zarr"), alone / "slide.ome.zarr")
    info = json.loads((cart / "cartridge.json").read_text())
    info.update(sample_id="P017", blood_volume_ml=3.75)
    info.pop("num_frames", None)
    (alone / "cartridge.json").write_text(json.dumps(info))
    shutil.copy(cart / "panel.json", alone / "panel.json")
    opened = open_cartridge(store)
    assert (opened.sample_id, opened.blood_volume_ml) == ("P017", 3.75)
    (store / "cartridge.json").write_text(json.dumps({**info, "sample_id": "inside"}))
    assert open_cartridge(store).sample_id == "inside"


def test_a_store_holding_no_image_among_good_ones_is_a_frame_skipped_with_the_reason(cart,
                                                                                    tmp_path):
    """A store of a plain zarr group (the pixels without OME-Zarr's 'multiscales') beside
    good ones listed no frame and was said nowhere: the sample read whole. It is its frame,
    skipped with the reason."""
    import zarr

    folder = write_stores(cart, tmp_path / "zarr")
    shutil.rmtree(folder / "r00c01.ome.zarr")
    zarr.open_group(str(folder / "r00c01.ome.zarr"), mode="w", zarr_format=2).create_array(
        "0", shape=(5, 32, 32), dtype="uint16")[:] = 1
    opened = open_cartridge(folder)
    (frame,) = [f for f in opened.frames if f.frame_id == "r00c01"]
    assert frame.problem.startswith("r00c01.ome.zarr holds no image (no OME-Zarr image "
                                    "metadata, 'multiscales'")
    assert [f.frame_id for f in opened.frames if f.problem is None] == ["r00c00", "r00c02"]
    with pytest.raises(InputError, match="r00c01.ome.zarr: r00c01.ome.zarr holds no image"):
        read_frame(frame, opened.panel)
