"""ctcnet.detect.crop_dataset: crop folders written and read back, their manifests, bad
crop sets refused."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ctcnet.detect.crop_dataset import load_crops, read_crop, read_crop_index, write_crop_dataset
from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.io.images import write_tiff
from ctcnet.io.panel import default_panel, load_panel, save_panel
from ctcnet.io.taxonomy import default_taxonomy


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


def test_a_class_folders_subfolders_are_its_crops_and_name_their_sample(tmp_path, rng):
    """``ctc/P017/cell.tif``, as labs keep a patient's crops: every crop read, the subfolder
    its sample (hidden folders left out)."""
    panel = default_panel()
    crops = _toy_crops(rng)
    ds = tmp_path / "ds"
    write_crop_dataset(ds, crops, ["ctc", "wbc", "wbc", "debris", "ctc", "wbc"], panel,
                       ["P1", "P1", "P2", "P2", "P3", "P3"])
    (ds / "manifest.csv").unlink()
    for f in sorted((ds / "ctc").iterdir()):
        patient = ds / "ctc" / ("P17" if f.name.endswith("0.tif") else "P18") / "day1"
        patient.mkdir(parents=True, exist_ok=True)
        shutil.move(f, patient / "cell.tif" if not (patient / "cell.tif").exists() else
                    patient / "cell2.tif")
    (ds / "ctc" / ".thumbs").mkdir()
    write_tiff(ds / "ctc" / ".thumbs" / "x.tif", crops[0])
    index = read_crop_index(ds, taxonomy=default_taxonomy())
    assert index.class_counts() == {"ctc": 2, "debris": 1, "wbc": 3}
    ctc = sorted(s for s, label in zip(index.sample_ids, index.labels) if label == "ctc")
    assert len(ctc) == 2 and set(ctc) <= {"P17", "P18"}
    assert {s for s, label in zip(index.sample_ids, index.labels) if label != "ctc"} == \
        {"P1", "P2", "P3"}


def test_crops_above_their_stated_range_are_said(tmp_path, rng, caplog):
    crops = _toy_crops(rng)
    crops[2, 1] *= 12  # a 16-bit stretch of one crop's CK
    write_crop_dataset(tmp_path / "ds", crops, ["ctc"] * 6, default_panel())
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        load_crops(read_crop_index(tmp_path / "ds"))
    assert "1 of 6 crops hold values above" in caplog.text and "CK 4095" in caplog.text
    assert 'once panel.json states its range for every channel ("bit_depth": 16' \
        in caplog.text  # what to do, not a guess that the crops are stretched
    assert "DAPI 4095" not in caplog.text  # the channels past their range alone are named
    assert "e.g. ctc/" in caplog.text  # the crop named, as the set's own
    # Given by a link (its crops' paths resolved through it): named all the same.
    (tmp_path / "link").symlink_to(tmp_path / "ds")
    caplog.clear()
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        load_crops(read_crop_index(tmp_path / "link"))
    assert "1 of 6 crops hold values above" in caplog.text


def test_crops_above_their_stated_range_are_refused_to_fit_a_model(tmp_path, rng):
    """Train and finetune fit the guard's readings from the crops into the model: crops past
    their stated range are refused there, with the panel.json line that states it."""
    crops = _toy_crops(rng)
    crops[2, 1] *= 12
    write_crop_dataset(tmp_path / "ds", crops, ["ctc"] * 6, default_panel())
    with pytest.raises(InputError, match=r"1 of 6 crops hold values above their channels' "
                       r"stated range \(CK 4095; .*\), e\.g\. ctc/.*a model fitted from them.*"
                       r'for every channel \("bit_depth": 16.*flat-field'):
        load_crops(read_crop_index(tmp_path / "ds"), fitting=True)
    crops[2, 1] //= 12
    write_crop_dataset(tmp_path / "ok", crops, ["ctc"] * 6, default_panel())
    assert load_crops(read_crop_index(tmp_path / "ok"), fitting=True).shape[0] == 6


def test_saturated_crops_are_said_at_the_top_their_camera_records(tmp_path, rng, caplog):
    """Glare clipping CK at 4095 over a fifth of two crops: said, whether the set states
    0-4095 or 0-65535 (the camera's top under the wider range), or holds the counts x16 at
    65520; a set whose brightest pixels stay under the top is not."""
    from dataclasses import replace

    crops = rng.integers(100, 3000, (6, 5, 32, 32), dtype=np.uint16)
    write_crop_dataset(tmp_path / "calm", crops, ["ctc"] * 6, default_panel())
    crops[1:3, 1, :7] = 4095
    wide = replace(default_panel(), channels=tuple(
        replace(c, value_range=(0.0, 65535.0)) for c in default_panel().channels))
    write_crop_dataset(tmp_path / "counts", crops, ["ctc"] * 6, default_panel())
    write_crop_dataset(tmp_path / "wide", crops, ["ctc"] * 6, wide)
    write_crop_dataset(tmp_path / "x16", crops * 16, ["ctc"] * 6, wide)
    for name in ("counts", "wide", "x16", "calm"):
        caplog.clear()
        with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
            load_crops(read_crop_index(tmp_path / name))
        said = "2 of 6 crops are saturated in CK over more than 5% of their pixels"
        assert (said in caplog.text) == (name != "calm"), name
        if name != "calm":  # ...and which: the first named, as a person is to look at them
            assert "not to be trusted without a look; e.g. ctc/" in caplog.text


def test_crops_at_the_top_of_their_range_brought_to_model_scale_are_not_said(tmp_path, rng,
                                                                             caplog):
    """Resampling's weights sum to 1 up to float rounding: a crop at 4095 read at 0.5 um/px
    holds 4095.0005 at model scale, the top of its range, not past it."""
    crops = _toy_crops(rng)
    crops[2, 1] = 4095  # a clipped CK
    write_crop_dataset(tmp_path / "ds", crops, ["ctc"] * 6, default_panel())
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        load_crops(read_crop_index(tmp_path / "ds", pixel_size=0.5), 80, 0.64)
    assert "values above" not in caplog.text


def test_crops_rescaled_to_fractions_are_said_and_no_model_is_fitted_from_them(tmp_path, rng,
                                                                              caplog):
    """Read, such crops are said with files named; a model fitted from them (train, finetune,
    a recalibration) is refused, as for crops past their range: a fine-tune on crops divided
    by 4095 had warned, then been written with a held-out macro-F1 of 0.11."""
    crops = _toy_crops(rng).astype(np.float32)
    crops[:2] /= 4095.0  # two crops exported as 0-1 floats
    write_crop_dataset(tmp_path / "ds", crops, ["ctc"] * 6, default_panel())
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        load_crops(read_crop_index(tmp_path / "ds"))
    assert "2 of 6 crops hold only fractions" in caplog.text and "; e.g. ctc/" in caplog.text
    with pytest.raises(InputError, match=r"2 of 6 crops hold only fractions .* A model fitted "
                                         r"from them would learn the rescaled values"):
        load_crops(read_crop_index(tmp_path / "ds"), fitting=True)
    caplog.clear()
    write_crop_dataset(tmp_path / "raw", _toy_crops(rng).astype(np.float32), ["ctc"] * 6,
                       default_panel())  # raw counts stored as floats: whole numbers
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        load_crops(read_crop_index(tmp_path / "raw"))
    assert "fractions" not in caplog.text


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
    # A crop that names its channels in another order is read by its names (OME); one that
    # names other channels than the panel's is refused.
    crop = _toy_crops(rng, n=1)[0]
    write_tiff(tmp_path / "swap.tif", crop[[1, 0, 2, 3, 4]],
               ["CK", "DAPI", "CD45", "CD61", "CD66b"])
    write_tiff(tmp_path / "straight.tif", crop, panel.names)
    assert np.array_equal(read_crop(tmp_path / "swap.tif", panel),
                          read_crop(tmp_path / "straight.tif", panel))
    write_tiff(tmp_path / "other.tif", crop, ["CK", "DAPI", "CD45", "CD61", "EpCAM"])
    with pytest.raises(PanelMismatchError, match="channel mismatch"):
        read_crop(tmp_path / "other.tif", panel)
    write_tiff(tmp_path / "small.tif", _toy_crops(rng, n=1, size=20)[0])
    with pytest.raises(InputError, match="smaller than the model input"):
        read_crop(tmp_path / "small.tif", panel, min_size=64)


def test_crops_whose_own_metadata_state_another_pixel_size_than_panel_json_are_refused(
        tmp_path, rng):
    """The crops' OME metadata say one pixel size, panel.json another: read at panel.json's
    without a word (every cell sized wrongly); refused as a cartridge's frames are. A size
    given (--pixel-size) is the user's word over both."""
    import json

    panel = default_panel()
    root = write_crop_dataset(tmp_path / "ds", _toy_crops(rng), ["ctc"] * 6, panel)
    stated = json.loads((root / "panel.json").read_text())
    assert read_crop_index(root).panel.pixel_size_um == stated["pixel_size_um"]
    (root / "panel.json").write_text(json.dumps({**stated, "pixel_size_um": 0.32}))
    with pytest.raises(InputError, match=f"the crops' OME metadata say "
                                         f"{stated['pixel_size_um']:g} um per pixel, "
                                         "panel.json 0.32: correct one of them"):
        read_crop_index(root)
    assert read_crop_index(root, pixel_size=0.32).panel.pixel_size_um == 0.32


def test_a_crop_of_another_pixel_size_among_a_folders_crops_is_refused(tmp_path, rng):
    """A second scanner's crop (its OME metadata: 0.4 um) copied into a folder of 0.64 um
    crops: read at 0.64 it was called debris, unsaid. Each crop is held to the size the
    folder's crops state (the first's), its channel names written or not, at a size stated or
    given; not where each is read at its own scale (fit)."""
    panel = default_panel()
    root = write_crop_dataset(tmp_path / "ds", _toy_crops(rng), ["ctc"] * 6, panel)
    odd = sorted((root / "ctc").glob("*.tif"))[-1]
    for names in (panel.names, None):  # (an OME file without channel names states it too)
        write_tiff(odd, tifffile.imread(odd), names, pixel_size_um=0.4)
        for given in (None, 0.5):
            index = read_crop_index(root, pixel_size=given)
            with pytest.raises(InputError, match=f"{odd.name}: the crop's OME metadata say 0.4 "
                                                 "um per pixel, the folder's crops 0.64"):
                load_crops(index)
            with pytest.raises(InputError, match="two pixel sizes"):
                index.read(len(index) - 1)
    assert read_crop_index(root).read(0).shape[0] == panel.num_channels  # the first reads
    # Each crop read at its own fitted scale: what any crop states is set aside alike.
    from ctcnet.simulate import simulate_crops

    cells = simulate_crops({"ctc": 3, "wbc": 3}, panel, crop_size=48, seed=3)
    root = write_crop_dataset(tmp_path / "cells", cells.images, cells.labels, panel)
    odd = sorted((root / "wbc").glob("*.tif"))[-1]
    write_tiff(odd, tifffile.imread(odd), panel.names, pixel_size_um=0.4)
    fitted = read_crop_index(root, pixel_size="fit")
    assert fitted.stated_crop_um is None and len(load_crops(fitted)) == 6


def test_a_pixel_size_given_over_what_the_crops_state_is_said_once(tmp_path, rng, caplog):
    """--pixel-size 0.32 (or auto, fit) over crops whose panel.json and OME metadata state
    0.64: read as given, and said once (a fine-tune at 0.32 read held-out macro-F1 0.35,
    unsaid); a size given as stated, a look ahead at the channels, say nothing; fit on
    crops labelled cluster says what fit does to them."""
    from ctcnet.core.said_once import forget_said

    forget_said()
    root = write_crop_dataset(tmp_path / "ds", _toy_crops(rng), ["ctc"] * 3 + ["cluster"] * 3,
                              default_panel())
    stated = default_panel().pixel_size_um
    with caplog.at_level("WARNING", logger="ctcnet.detect"):
        read_crop_index(root, pixel_size=stated)
        read_crop_index(root, pixel_size=1.0, look_ahead=True)
        assert not caplog.text
        for _ in range(2):
            read_crop_index(root, pixel_size=0.32)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and f"--pixel-size 0.32 reads the crops at another pixel size than " \
        f"panel.json and the crops' OME metadata state ({stated:g}, {stated:g} um)" in said[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="ctcnet.detect"), \
            pytest.raises(InputError, match="finds no cell"):  # (toy crops: said before)
        read_crop_index(root, pixel_size="fit")
    assert "--pixel-size fit brings every crop's object to one cell's size, but 3 crop(s) " \
        "are labelled cluster" in caplog.text


def test_every_unreadable_crop_is_named_in_one_error(tmp_path, rng):
    """Two bad crops (a truncated file, one of 4 channels) among good ones: one error names
    both, with the count, so a set is mended in one pass; one bad crop keeps its own error."""
    panel = default_panel()
    root = write_crop_dataset(tmp_path / "ds", _toy_crops(rng, n=5), ["ctc"] * 5, panel)
    index = read_crop_index(root)
    first_bytes = index.paths[0].read_bytes()
    bad = [index.paths[1], index.paths[3]]
    bad[0].write_bytes(bad[0].read_bytes()[:200])
    with pytest.raises(InputError) as one:
        load_crops(index)
    assert "crops cannot be read" not in str(one.value) and bad[0].name in str(one.value)
    write_tiff(bad[1], _toy_crops(rng, n=1, c=4)[0])
    with pytest.raises(InputError, match="2 of 5 crops cannot be read") as both:
        load_crops(index)
    assert bad[0].name in str(both.value) and "4 channels" in str(both.value)
    # Several of one reason (truncated files): each named, not the first alone (a lab mended
    # one per run); past BAD_CROPS_NAMED, the rest counted.
    for path in index.paths:
        path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="5 of 5 crops cannot be read") as every:
        load_crops(index)
    assert all(p.name in str(every.value) for p in index.paths), str(every.value)
    # Read for a pixel size first (fit: each crop; auto: a sample), every bad crop is named
    # too, not the first alone.
    index.paths[0].write_bytes(first_bytes)
    for size in ("fit", "auto"):
        with pytest.raises(InputError, match="4 of 5 crops cannot be read") as fitted:
            read_crop_index(root, pixel_size=size)
        assert all(p.name in str(fitted.value) for p in index.paths[1:]), size


# 9. Crop datasets.

def _manifest_lines(crops):
    return (crops / "manifest.csv").read_text().splitlines()


@pytest.mark.parametrize("edit, match", [
    (lambda lines: lines + [lines[1]], "already listed on line 2"),
    (lambda lines: lines + [lines[1].replace(",ctc,", ",wbc,")], "already listed on line 2"),
    (lambda lines: lines + ["../../outside.tif,ctc,p9,"], "outside the dataset folder"),
    (lambda lines: lines[:1], r"lists no crops \(its header alone\)"),
    (lambda lines: ["file,class"] + lines[1:], "needs the columns path,label"),
    # a file renamed after the manifest was written: its row named, and the file beside it
    (lambda lines: lines[:2] + [lines[2].replace(".tif", "_v2.tif", 1)] + lines[3:],
     r"line 3: \S+_v2.tif is not there \(\S+.tif is, beside it\)"),
])
def test_manifest_rows_that_would_miscount_are_refused(crops, edit, match):
    shutil.copy(next(crops.glob("ctc/*.tif")), crops.parent.parent / "outside.tif")
    (crops / "manifest.csv").write_text("\n".join(edit(_manifest_lines(crops))) + "\n")
    with pytest.raises(InputError, match=match):
        read_crop_index(crops)


def test_a_copy_in_a_manifest_folder_named_relative_is_warned_of_not_a_traceback(
        crops, caplog, monkeypatch):
    """A manifest's paths are resolved and a folder typed relative is not: naming a copied
    crop raised "is not in the subpath" (train, evaluate, finetune ended in a traceback)."""
    ctc = sorted(crops.glob("ctc/*.tif"))[0]
    shutil.copy(ctc, crops / "wbc" / "copied.tif")
    (crops / "manifest.csv").write_text("\n".join(_manifest_lines(crops) +
                                                  ["wbc/copied.tif,ctc,p9"]) + "\n")
    monkeypatch.chdir(crops.parent)
    with caplog.at_level("WARNING"):
        index = read_crop_index(Path(crops.name))
        load_crops(index)
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "pixel-identical copies" in warned and f"ctc/{ctc.name} (ctc)" in warned, warned
    assert "wbc/copied.tif (ctc)" in warned  # and its manifest label apart from its folder
    assert index.table()["path"].tolist()[-1] == "wbc/copied.tif"


def test_crops_named_in_another_order_beside_unnamed_ones_are_refused(tmp_path, rng):
    """20 OME crops named their channels DAPI, CK, ... under a panel.json of CK, DAPI, ...;
    20 more stored no names and were read in panel.json's order, DAPI and CK swapped (4 of 10
    CTCs called debris), said only as "the file's names are read"."""
    panel = default_panel()
    crops = _toy_crops(rng, n=4)
    stated = ["CK", "DAPI", "CD45", "CD61", "CD66b"]
    (tmp_path / "ds" / "ctc").mkdir(parents=True)
    save_panel(panel.__class__.from_dict({**panel.to_dict(), "channels": [
        {**c, "name": n} for c, n in zip(panel.to_dict()["channels"], stated)]}),
        tmp_path / "ds" / "panel.json")
    for i, crop in enumerate(crops):
        write_tiff(tmp_path / "ds" / "ctc" / f"c{i}.tif", crop,
                   list(panel.names) if i < 2 else None)
    with pytest.raises(InputError, match=r"2 crop\(s\) name their channels in another order "
                                         r"than panel.json \(CK, DAPI, .*\), and 2 store no "
                                         r"names, .* \(e.g. c2.tif\)"):
        load_crops(read_crop_index(tmp_path / "ds"))
    for i in (0, 1):  # all unnamed: panel.json's order, as documented
        write_tiff(tmp_path / "ds" / "ctc" / f"c{i}.tif", crops[i])
    assert len(load_crops(read_crop_index(tmp_path / "ds"))) == 4


def test_a_manifest_row_typed_in_another_unicode_form_names_its_file(crops):
    """A manifest typed with "é" as one character, the file stored by macOS as "e" and an
    accent: refused as "is not there (Zelle_é.tif is, beside it)", two names alike on screen."""
    ctc = sorted(crops.glob("ctc/*.tif"))[0]
    decomposed = ctc.with_name("Zelle_e\u0301.tif")
    ctc.rename(decomposed)
    lines = [line.replace(f"ctc/{ctc.name}", "ctc/Zelle_\u00e9.tif")
             for line in _manifest_lines(crops)]
    (crops / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    index = read_crop_index(crops)
    assert decomposed in index.paths and len(index) == 4
    # ... a folder on its path too (a copy through macOS decomposes every part).
    (crops / "ctc").rename(crops / "Zellen_e\u0301")
    lines = [line.replace("ctc/", "Zellen_\u00e9/") for line in lines]
    (crops / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(read_crop_index(crops)) == 4


def test_excel_bom_windows_separators_and_macos_resource_forks_are_accepted(crops):
    lines = [line.replace("/", "\\") for line in _manifest_lines(crops)]  # ctc\x.tif
    (crops / "manifest.csv").write_bytes(("\ufeff" + "\n".join(lines) + "\n").encode("utf-8"))
    index = read_crop_index(crops)
    assert len(index) == 4 and all(p.exists() for p in index.paths)
    (crops / "manifest.csv").unlink()
    (crops / "ctc" / "._x.tif").write_bytes(b"\x00\x05\x16\x07")
    index = read_crop_index(crops)
    assert len(index) == 4 and not any(p.name.startswith("._") for p in index.paths)


def test_pixel_identical_copies_are_named_first_those_under_another_class(crops, caplog):
    from ctcnet.detect.crop_dataset import load_crops

    (crops / "manifest.csv").unlink()
    ctc = sorted(crops.glob("ctc/*.tif"))[0]
    shutil.copy(ctc, crops / "wbc" / "p9__relabelled.tif")
    shutil.copy(ctc, crops / "ctc" / "p9__again.tif")
    with caplog.at_level("WARNING"):
        load_crops(read_crop_index(crops))
    warned = [r.getMessage() for r in caplog.records if "pixel-identical" in r.getMessage()]
    assert len(warned) == 1 and "2 crops are pixel-identical copies" in warned[0], warned
    assert "1 of them under another class" in warned[0]
    assert "p9__relabelled.tif (wbc)" in warned[0] and f"{ctc.name} (ctc)" in warned[0]
    caplog.clear()
    (crops / "wbc" / "p9__relabelled.tif").unlink()
    # A copy of the same class under another sample (a training crop held out), named before
    # copies within one sample: three wbc copies hid the two CTC ones that crossed the split.
    for k in range(4):
        shutil.copy(sorted(crops.glob("wbc/*.tif"))[0], crops / "wbc" / f"{ctc.stem}_w{k}.tif")
    with caplog.at_level("WARNING"):
        load_crops(read_crop_index(crops))
    warned = [r.getMessage() for r in caplog.records if "pixel-identical" in r.getMessage()]
    assert "under another class" not in warned[0] and "p9__again.tif (ctc)" in warned[0]
    assert "across the manifest's splits or sample ids" in warned[0]
    caplog.clear()
    (crops / "ctc" / "p9__again.tif").unlink()
    for k in range(4):
        (crops / "wbc" / f"{ctc.stem}_w{k}.tif").unlink()
    with caplog.at_level("WARNING"):
        load_crops(read_crop_index(crops))
    assert not any("pixel-identical" in r.getMessage() for r in caplog.records)


def test_a_fifo_among_crops_is_refused_not_read(crops):
    from ctcnet.detect.crop_dataset import load_crops

    (crops / "manifest.csv").unlink()
    os.mkfifo(crops / "ctc" / "zz.tif")
    with pytest.raises(InputError, match="not a regular file"):
        load_crops(read_crop_index(crops))


def test_a_composite_among_raw_crops_is_refused_whichever_comes_first(tmp_path, rng):
    """A folder of raw three-channel crops (DAPI, CK, CD45 counts) with one 8-bit colour
    composite among them (R = CK, G = CD45, B = DAPI): read as raw counts, its planes would be
    the wrong markers. Refused, whether it sorts first or not."""
    from PIL import Image

    from ctcnet.io.panel import load_panel

    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    colour = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for name in ("a_first.png", "z_last.png"):
        folder = tmp_path / name
        write_crop_dataset(folder, _toy_crops(rng, c=3), ["ctc"] * 6, panel)
        (folder / "manifest.csv").unlink()
        Image.fromarray(colour).save(folder / "ctc" / name)
        index = read_crop_index(folder)
        with pytest.raises(InputError, match="colour composite in a folder read as crops of raw|"
                                             "RGB composites .*, but this file holds"):
            load_crops(index)


def test_a_composite_export_read_in_the_models_channel_order_is_not_said_to_be_rescaled(
        tmp_path, rng, caplog):
    """Composite crops conformed to a model whose channels come in another order (DAPI, CK,
    CD45 against the file's CK, CD45, DAPI) are still display levels: no word of values over
    the counts' range or of rescaling (resampling may overshoot 255 by a hair)."""
    from PIL import Image

    from ctcnet.io.panel import load_panel

    folder = tmp_path / "tight"
    (folder / "ctc").mkdir(parents=True)
    levels = ", ".join(f'{{"name": "{n}", "value_range": [0, 255]}}'
                       for n in ("CK", "CD45", "DAPI"))
    (folder / "panel.json").write_text(f'{{"composite": "rgb", "channels": [{levels}], '
                                       '"pixel_size_um": 0.2}')
    for i in range(4):
        colour = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        colour[5:30, 5:30, 0] = 255  # CK at full white: resampled, a hair over 255
        Image.fromarray(colour).save(folder / "ctc" / f"c{i}.png")
    model = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    index = read_crop_index(folder).conform(model)
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        crops = load_crops(index, 80, 0.64)
    assert crops.max() > 0 and "above" not in caplog.text and "fractions" not in caplog.text


def test_crops_beside_a_manifest_that_does_not_list_them_are_said(crops, caplog):
    """The manifest is the dataset: a class folder added beside it is not read, and said so
    (a count that leaves it out must not pass for the folder's)."""
    with caplog.at_level("WARNING"):
        read_crop_index(crops)
    assert "not in its manifest.csv" not in caplog.text
    (crops / "tumour").mkdir()
    shutil.copy(next(crops.glob("ctc/*.tif")), crops / "tumour" / "x.tif")
    with caplog.at_level("WARNING"):
        index = read_crop_index(crops)
    assert len(index) == 4
    assert "1 image file(s) there are not in its manifest.csv and are not read (e.g. " \
        "tumour/x.tif)" in caplog.text
    caplog.clear()  # a run reads the index more than once: said once (it was thrice)
    with caplog.at_level("WARNING"):
        read_crop_index(crops)
    assert "not in its manifest.csv" not in caplog.text


def test_images_of_a_format_not_read_and_a_table_beside_loose_crops_are_said(crops, caplog):
    """A .bmp or .webp among the crops was dropped without a word (the count fell); a lab's
    labels.csv beside crops in the folder itself went unsaid where class folders were there."""
    (crops / "manifest.csv").unlink()
    (crops / "ctc" / "odd.bmp").write_bytes(b"BM")
    (crops / "ctc" / "odd.webp").write_bytes(b"RIFF")
    shutil.copy(next(crops.glob("wbc/*.tif")), crops / "loose.tif")
    (crops / "labels.csv").write_text("file,label\nloose.tif,wbc\n")
    with caplog.at_level("WARNING"):
        index = read_crop_index(crops)
    assert sorted(set(index.labels)) == ["ctc", "debris", "unlabelled", "wbc"]
    assert "2 image(s) of a format ctcnet does not read are not read (e.g. ctc/odd." \
        in caplog.text
    assert "labels.csv beside the crops is not read" in caplog.text


def test_an_image_of_a_format_not_read_beside_a_manifest_is_said(crops, caplog):
    (crops / "ctc" / "odd.bmp").write_bytes(b"BM")
    with caplog.at_level("WARNING"):
        read_crop_index(crops)
    assert "1 image(s) of a format ctcnet does not read are not read (e.g. ctc/odd.bmp)" \
        in caplog.text


def test_a_crop_of_one_channel_per_file_is_told_a_crop_holds_every_channel(tmp_path):
    """One PNG a channel is how a cartridge's frames may come, not a crop: the refusal says a
    crop is one file of every channel instead of only counting channels."""
    import tifffile

    from ctcnet.detect.crop_dataset import read_crop

    path = tmp_path / "cell_c0.tif"
    tifffile.imwrite(path, np.full((1, 16, 16), 7, np.uint16))
    with pytest.raises(InputError, match=r"crop has 1 channels, the panel .* has 5: a crop is "
                                         r"one file holding every channel"):
        read_crop(path, default_panel())


def test_a_scan_or_a_predict_output_given_as_crops_is_told_what_it_is(tmp_path):
    """finetune and train name the folder's kind and what to run: a cartridge (its
    panel.json beside frames) was read as 'crops in the folder itself', a predict output as
    lacking panel.json."""
    scan = tmp_path / "scan"
    scan.mkdir()
    (scan / "cartridge.json").write_text("{}")
    (scan / "panel.json").write_text('{"channels": ["DAPI", "CK", "CD45"]}')
    with pytest.raises(InputError, match="is a cartridge"):
        read_crop_index(scan)
    results = tmp_path / "results"
    (results / "S1").mkdir(parents=True)
    (results / "S1" / "summary.json").write_text("{}")
    for folder in (results, results / "S1"):
        with pytest.raises(InputError, match="predict output.*ctcnet crops RESULTS --reviewed"):
            read_crop_index(folder)


def test_crops_cut_from_a_cellsearch_export_have_its_offset_removed(tmp_path, rng):
    """2^15 added to some values of a channel (CellSearch's export) is taken off a crop as it
    is off a cartridge's frames; genuine 16-bit counts are left as they are."""
    crops = _toy_crops(rng).astype(np.uint16)
    shifted = crops.copy()
    shifted[:, 1][shifted[:, 1] > 150] += 32768  # the bright part of CK, as the export writes
    write_crop_dataset(tmp_path / "ds", shifted, ["ctc"] * 6, default_panel())
    index = read_crop_index(tmp_path / "ds")
    assert not np.array_equal(shifted[0], crops[0])  # the crop read carried the offset
    assert np.array_equal(index.read(0), crops[0])


def test_a_raw_crop_with_a_dead_channel_is_refused_by_name(tmp_path, rng):
    """A raw crop whose CD45 holds one value throughout (a channel that failed: the network
    calls such leukocytes ctc) is refused, named with the channel, as a blank crop is; an
    8-bit composite whose CD45 plane is black (a CTC's unlit marker) is read."""
    crops = _toy_crops(rng).astype(np.uint16)
    crops[2, 2] = 0
    write_crop_dataset(tmp_path / "raw", crops, ["wbc"] * 6, default_panel())
    with pytest.raises(InputError, match=r"one value throughout in channel\(s\) CD45.*"
                                         r"delete it or its manifest.csv line"):
        load_crops(read_crop_index(tmp_path / "raw"))
    crops[3, 1] = 7
    write_crop_dataset(tmp_path / "two", crops, ["wbc"] * 6, default_panel())
    with pytest.raises(InputError, match=r"2 of 6 crops cannot be used; 2 crop\(s\) with a "
                                         r"channel of one value throughout: delete them"):
        load_crops(read_crop_index(tmp_path / "two"))
    # A plane the model does not read (never acquired): every crop was refused for it.
    unread = _toy_crops(rng).astype(np.uint16)
    unread[:, 4] = 0
    write_crop_dataset(tmp_path / "unread", unread, ["wbc"] * 6, default_panel())
    core3 = read_crop_index(tmp_path / "unread").conform(["DAPI", "CK", "CD45"])
    assert load_crops(core3).shape[:2] == (6, 3)
    with pytest.raises(InputError, match=r"channel of one value throughout"):
        load_crops(read_crop_index(tmp_path / "unread"))
    from PIL import Image

    folder = tmp_path / "composites" / "ctc"
    folder.mkdir(parents=True)
    (folder.parent / "panel.json").write_text(
        '{"composite": "rgb", "channels": ["CK", "CD45", "DAPI"], "pixel_size_um": 0.2}')
    colour = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    colour[..., 1] = 0  # CD45 black: a CTC
    Image.fromarray(colour).save(folder / "c0.png")
    assert load_crops(read_crop_index(folder.parent)).shape[0] == 1


def test_a_manifest_that_cannot_be_a_list_of_crops_is_refused_by_name(tmp_path, rng):
    """A FIFO named manifest.csv would block the run, and a path with a NUL byte crashed it:
    each is one refusal naming the file or the line."""
    import os

    write_crop_dataset(tmp_path / "ds", _toy_crops(rng), ["ctc"] * 6, default_panel())
    manifest = tmp_path / "ds" / "manifest.csv"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([lines[0], "ctc/a\0b.tif,ctc", *lines[1:]]) + "\n")
    with pytest.raises(InputError, match=r"line 2: empty path or label, or no file name"):
        read_crop_index(tmp_path / "ds")
    manifest.unlink()
    os.mkfifo(manifest)
    with pytest.raises(InputError, match="not a regular file"):
        read_crop_index(tmp_path / "ds")


def test_a_folder_named_relative_lists_its_crops_relative_to_it(crops, monkeypatch):
    """predict given the crop folder by a relative path writes each crop's path relative to
    the folder, as it does for an absolute one (the table reads the same either way)."""
    monkeypatch.chdir(crops.parent)
    near = read_crop_index(Path(crops.name)).table()["path"]
    far = read_crop_index(crops).table()["path"]
    assert list(near) == list(far) and not any(Path(p).is_absolute() for p in near)


def test_a_sample_id_with_a_comma_reads_back_from_the_manifest(tmp_path):
    """"Mueller, Anna" is one sample id in manifest.csv (quoted), as ctcnet crops writes a
    reviewed run's events and predict, evaluate and finetune read them back."""
    from ctcnet.detect.crop_dataset import write_crop_dataset
    from ctcnet.io.panel import load_panel

    crops = np.full((2, 5, 16, 16), 100, np.uint16)
    crops[:, :, 6:10, 6:10] = 900
    root = write_crop_dataset(tmp_path / "lab", crops, ["ctc", "wbc"], load_panel(None),
                              ["Mueller, Anna", 'O"Brien'])
    index = read_crop_index(root)
    assert list(index.sample_ids) == ["Mueller, Anna", 'O"Brien']
    assert sorted(p.name for p in index.paths) == ['Mueller, Anna__0000000.tif',
                                                   'O"Brien__0000001.tif']


def test_a_scan_nested_under_a_panel_json_is_not_read_as_crops(tmp_path, rng):
    """A scanner's export as scan/Images/r00c00.tif under the folder given, with panel.json
    beside scan/: refused naming the frames' folder (it had read as a few crops of a class
    "scan"); small crops named like frames in a class folder stay crops."""
    panel = default_panel()
    frames = tmp_path / "cart" / "scan" / "Images"
    frames.mkdir(parents=True)
    for k in range(2):
        write_tiff(frames / f"r00c0{k}.tif", rng.integers(1, 999, (5, 320, 400), dtype=np.uint16))
    (tmp_path / "cart" / "panel.json").write_text(json.dumps(panel.to_dict()))
    with pytest.raises(InputError, match=r"holds the frames of a scan \(scan/Images/r00c00.tif, "
                       r"400 x 320 px\), not crops: pass scan/Images as the cartridge"):
        read_crop_index(tmp_path / "cart")
    crops = _toy_crops(rng)
    write_crop_dataset(tmp_path / "ds", crops, ["ctc"] * 6, panel)
    (tmp_path / "ds" / "manifest.csv").unlink()
    (tmp_path / "ds" / "ctc").rename(tmp_path / "ds" / "tumour")  # a class no model has
    for k, f in enumerate(sorted((tmp_path / "ds" / "tumour").rglob("*.tif"))):
        f.rename(f.parent / f"frame_{k:04d}.tif")
    assert read_crop_index(tmp_path / "ds").labels == ["tumour"] * 6


def test_a_class_folder_misspelt_is_refused_naming_the_class_meant_one_in_capitals_read(
        tmp_path):
    """A lab's folders CTC and EMT-CTC are the classes ctc and emt_ctc (class names are lower
    case with _, which a class file cannot spell otherwise): read as them; a misspelt wcb is
    refused naming wbc, and a name of several words is no misspelling of one of them (EMT-CTC
    was offered as ctc)."""
    crops = np.full((3, 5, 16, 16), 100, np.uint16)
    root = write_crop_dataset(tmp_path / "lab", crops, ["CTC", "wcb", "debris"],
                              default_panel())
    from ctcnet.io.taxonomy import default_taxonomy, load_taxonomy

    with pytest.raises(InputError, match=r"\(did you mean wcb -> wbc\?\)"):
        read_crop_index(root, taxonomy=default_taxonomy())
    root = write_crop_dataset(tmp_path / "caps", crops, ["CTC", "EMT-CTC", "Debris"],
                              default_panel())
    lab = load_taxonomy({"classes": ["ctc", "emt_ctc", "wbc", "debris"]})
    assert sorted(read_crop_index(root, taxonomy=lab).labels) == ["ctc", "debris", "emt_ctc"]
    with pytest.raises(InputError) as refused:
        read_crop_index(root, taxonomy=default_taxonomy())
    assert "EMT-CTC" in str(refused.value) and "did you mean" not in str(refused.value)
    root = write_crop_dataset(tmp_path / "other", crops, ["ctc", "platelet", "debris"],
                              default_panel())
    with pytest.raises(InputError) as refused:  # nothing near: no guess
        read_crop_index(root, taxonomy=default_taxonomy())
    assert "did you mean" not in str(refused.value)
    root = write_crop_dataset(tmp_path / "words", crops, ["ctc", "Leukocytes", "debris"],
                              default_panel())
    with pytest.raises(InputError, match=r"\(did you mean Leukocytes -> wbc\?\)"):
        read_crop_index(root, taxonomy=default_taxonomy())  # a lab's word, no misspelling


def test_a_folder_of_samples_above_classes_is_refused_saying_to_swap_the_levels(tmp_path):
    """A lab's export laid out patient/class (P017/CTC/cell.tif) read its patients as classes
    and was refused as "not in the taxonomy: rename those class folders"; the refusal now says
    the levels are swapped."""
    from ctcnet.io.taxonomy import default_taxonomy

    crops = np.full((2, 5, 16, 16), 100, np.uint16)
    flat = write_crop_dataset(tmp_path / "flat", crops, ["ctc", "wbc"], default_panel())
    (flat / "manifest.csv").unlink()
    root = tmp_path / "lab"
    for crop in flat.rglob("*.tif"):
        target = root / "P017" / crop.parent.name.upper() / crop.name
        target.parent.mkdir(parents=True, exist_ok=True)
        crop.rename(target)
    shutil.copy(flat / "panel.json", root / "panel.json")
    with pytest.raises(InputError) as refused:
        read_crop_index(root, taxonomy=default_taxonomy())
    said = str(refused.value)
    assert "the folder is laid out sample/class (P017/CTC/...)" in said
    assert "swap the two levels" in said and "rename those class" not in said


def test_a_labels_table_of_another_name_is_named_where_its_crops_folder_reads_as_a_class(
        tmp_path):
    """Crops in images/ beside a lab's labels.csv: the folder read as a class 'images', and
    labels.csv passed over unsaid; the refusal names the table and what ctcnet reads."""
    from ctcnet.io.taxonomy import default_taxonomy

    crops = np.full((2, 5, 16, 16), 100, np.uint16)
    root = write_crop_dataset(tmp_path / "lab", crops, ["images"] * 2, default_panel())
    (root / "manifest.csv").unlink()
    (root / "labels.csv").write_text("filename,class\na.tif,ctc\n")
    with pytest.raises(InputError, match=r"classes \['images'\] .*; labels.csv beside the "
                                         r"crops is not read: labels come from class folders "
                                         r"or from manifest.csv"):
        read_crop_index(root, taxonomy=default_taxonomy())


def test_crops_linked_from_outside_the_folder_are_refused_and_no_files_bytes_are_quoted(
        tmp_path):
    """A class folder that is a link elsewhere was read without a word, and a crop linked to
    a system file was opened, its first bytes quoted into the logs and summary.json
    ("header=b'root'"); a manifest's path outside the folder was refused all along."""
    from ctcnet.io.images import read_image

    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "shadow.tif"
    secret.write_bytes(b"root:$6$secret:19000:0:99999:7:::\n" * 4)
    with pytest.raises(InputError) as err:
        read_image(secret)
    assert "not a readable TIFF" in str(err.value) and "root:" not in str(err.value)
    ds = tmp_path / "ds"
    (ds / "wbc").mkdir(parents=True)
    save_panel(default_panel(), ds / "panel.json")
    tifffile.imwrite(ds / "wbc" / "a.tif", np.ones((5, 8, 8), np.uint16))
    (ds / "wbc" / "b.tif").symlink_to(ds / "wbc" / "a.tif")  # a link inside: read
    assert len(read_crop_index(ds)) == 2
    (ds / "wbc" / "c.tif").symlink_to(secret)
    with pytest.raises(InputError, match=r"wbc/c.tif points outside the dataset folder"):
        read_crop_index(ds)
    (ds / "wbc" / "c.tif").unlink()
    tifffile.imwrite(outside / "d.tif", np.ones((5, 8, 8), np.uint16))
    (ds / "ctc").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match=r"ctc/d.tif points outside the dataset folder"):
        read_crop_index(ds)
    # A patient's subfolder of a class folder that is a link: not walked into, its crops were
    # left out without a word.
    (ds / "ctc").unlink()
    (ds / "wbc" / "P99").symlink_to(outside, target_is_directory=True)
    with pytest.raises(InputError, match=r"wbc/P99 is a link to a folder"):
        read_crop_index(ds)


def test_a_crop_past_a_cells_size_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """A 650 kB compressed file of 5 x 8000 x 8000 pixels among a folder's crops took 4.6 GB
    and five minutes before it was read as one crop: refused from its header, PNG or TIFF."""
    from PIL import Image

    import ctcnet.detect.crop_dataset as crop_dataset
    from ctcnet.detect.crop_dataset import read_crop

    monkeypatch.setattr(crop_dataset, "MAX_CROP_PLANE_PIXELS", 64 * 64)
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((5, 65, 64), np.uint16),
                     compression="zlib")
    with pytest.raises(InputError, match=r"an image of 65 x 64 px: more than a cell's crop holds"):
        read_crop(tmp_path / "big.tif", default_panel())
    Image.new("RGB", (80, 70)).save(tmp_path / "big.png")
    panel = load_panel({"channels": ["CK", "CD45", "DAPI"], "composite": "rgb"})
    with pytest.raises(InputError, match=r"an image of 70 x 80 px: more than a cell's crop"):
        read_crop(tmp_path / "big.png", panel)
    tifffile.imwrite(tmp_path / "ok.tif", np.ones((5, 64, 64), np.uint16))
    assert read_crop(tmp_path / "ok.tif", default_panel()).shape == (5, 64, 64)


def test_a_model_fitted_from_too_few_crops_to_check_their_channel_order_is_told(tmp_path, rng,
                                                                                caplog):
    """A fine-tune on 8 crops a class with DAPI and CK swapped in panel.json was written
    without a word (the nucleus check speaks from 20 crops showing a nucleus); a command
    fitting a model from such a folder says the order could not be checked, predict not."""
    crops = _toy_crops(rng)
    write_crop_dataset(tmp_path / "ds", crops, ["ctc"] * 6, default_panel())
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        load_crops(read_crop_index(tmp_path / "ds"))
    assert "(20 are needed) to check the channel order" not in caplog.text
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        load_crops(read_crop_index(tmp_path / "ds"), fitting=True)
    assert "too few (20 are needed) to check the channel order by it, and a model fitted" \
        in caplog.text


def test_the_library_checks_a_pixel_size_and_conforms_to_channel_names(crops):
    """read_crop_index's pixel size is checked as the command line checks it (a text not a
    number raised float()'s ValueError), and conform takes the model's channel names in
    order as well as its panel."""
    from ctcnet.io.panel import default_panel

    with pytest.raises(InputError, match="--pixel-size: expected a number of um, 'auto' or "
                                         "'fit', got 'big'"):
        read_crop_index(crops, pixel_size="big")
    names = default_panel().names
    by_names = read_crop_index(crops).conform(names[::-1])
    assert by_names.panel.names == names[::-1]
    assert by_names.channels == read_crop_index(crops).conform(
        default_panel().subset(list(range(len(names)))[::-1])).channels


def test_a_labels_table_beside_unlabelled_crops_is_said_to_be_unread(tmp_path, rng, caplog):
    """A lab's labels.csv beside a flat folder of crops was passed over without a word by
    predict: its crops read unlabelled, no accuracy given. Said once, and kept in the record
    of the work that reads the folder after."""
    from ctcnet.core.log_capture import kept_warnings

    write_crop_dataset(tmp_path / "ds", _toy_crops(rng), ["ctc"] * 6, default_panel())
    flat = tmp_path / "flat"
    flat.mkdir()
    for crop in (tmp_path / "ds" / "ctc").glob("*.tif"):
        shutil.copy(crop, flat / crop.name)
    shutil.copy(tmp_path / "ds" / "panel.json", flat / "panel.json")
    (flat / "labels.csv").write_text("file,label\n")
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        read_crop_index(flat)
        with kept_warnings() as kept:
            read_crop_index(flat)
    assert caplog.text.count("labels.csv beside the crops is not read") == 1
    assert len(kept) == 1 and "no accuracy is given" in kept[0]


def test_a_subset_takes_a_mask_of_one_boolean_a_crop_never_crop_numbers(tmp_path, rng):
    """Crop numbers [3, 5, 7] read as a mask picked crops 0, 1 and 2 without a word; a
    mask of another length was cut short."""
    write_crop_dataset(tmp_path / "ds", _toy_crops(rng, n=8), ["ctc", "wbc"] * 4,
                       default_panel())
    index = read_crop_index(tmp_path / "ds", taxonomy=default_taxonomy())
    wanted = np.isin(np.arange(len(index)), [3, 5, 7])
    assert index.subset(wanted).paths == [index.paths[i] for i in (3, 5, 7)]
    for wrong in ([3, 5, 7], [True] * 3, np.ones(9, bool)):
        with pytest.raises(InputError, match="a mask of one boolean per crop"):
            index.subset(wrong)
    empty = index.subset(np.zeros(len(index), bool))
    assert len(empty) == 0 and load_crops(empty, 32, 0.64).shape == (0, 5, 32, 32)

