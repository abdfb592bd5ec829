"""ctcnet.detect.crop_checks: blank crops (every channel 0) refused with the unreadable ones,
each named, in the one read every command makes of a crop folder."""

import numpy as np
import pytest

from ctcnet.detect.crop_dataset import crop_chunks, load_crops, read_crop_index
from ctcnet.errors import InputError
from ctcnet.io.images import write_tiff


def test_a_blank_crop_is_refused_naming_it_and_what_to_do(crops):
    index = read_crop_index(crops)
    blank = index.paths[2]
    write_tiff(blank, np.zeros((5, 32, 32), np.uint16))
    with pytest.raises(InputError) as err:
        load_crops(index)
    assert str(err.value) == (f"{blank}: blank: every channel is 0 (an empty or failed "
                              "export): delete it or its manifest.csv line")
    # Read a crop at a time, the crops before it are handed on, none after it.
    given = []
    with pytest.raises(InputError, match="blank"):
        for start, _ in crop_chunks(index, chunk=1):
            given.append(start)
    assert given == [0, 1]


def test_blank_and_unreadable_crops_are_named_in_one_error(crops):
    index = read_crop_index(crops)
    write_tiff(index.paths[0], np.zeros((5, 32, 32), np.uint16))
    index.paths[3].write_bytes(b"not a tiff")
    with pytest.raises(InputError, match=r"2 of 4 crops cannot be used; 1 blank crop\(s\) "
                                         r"\(every channel 0\): delete them") as err:
        load_crops(index)
    assert f"{index.paths[0]}: blank" in str(err.value)
    assert str(index.paths[3]) in str(err.value)


def test_a_black_composite_is_blank_a_dark_one_is_not(tmp_path):
    from PIL import Image

    folder = tmp_path / "rgb"
    (folder / "ctc").mkdir(parents=True)
    (folder / "panel.json").write_text('{"channels": ["CK", "CD45", "DAPI"], '
                                       '"pixel_size_um": 0.64}')
    dark = np.zeros((40, 40, 3), np.uint8)
    dark[20, 20, 2] = 1  # one level of DAPI: a dim export, not an empty one
    Image.fromarray(dark).save(folder / "ctc" / "a.png")
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(folder / "ctc" / "b.png")
    with pytest.raises(InputError, match="b.png: blank"):
        load_crops(read_crop_index(folder))
    (folder / "ctc" / "b.png").unlink()
    assert load_crops(read_crop_index(folder)).shape == (1, 3, 40, 40)


def test_a_crop_whose_name_is_not_utf8_is_refused_by_name(crops):
    """A Latin-1 name (bytes cell\\xe9.tif): refused as the folder is read, naming it, not a
    traceback after every crop was classified, as the predictions table was written."""
    import os

    index = read_crop_index(crops)
    folder = index.paths[0].parent
    os.rename(index.paths[0], os.path.join(os.fsencode(folder), b"cell\xe9.tif"))
    with pytest.raises(InputError, match=r"file name b'\w+/cell\\xe9.tif' is not valid"):
        read_crop_index(crops)


@pytest.mark.parametrize("text, said", [
    ("path,label,sample_id,split\nctc/a.tif,ctc,extra,s1,\n", "line 2 has 5 fields where its "
                                                              "header has 4"),
    ("path;label\nctc/a.tif;ctc\n", "separated by semicolons"),
    ("filename,class\nctc/a.tif,ctc\n", "needs the columns path,label.*; its header has "
                                         "filename, class: rename the columns"),
    ("path,label\nctc/caf\xe9.tif,ctc\n".encode("latin-1"), r"not UTF-8 \(line 2"),
])
def test_a_manifest_slip_is_named_at_its_line(tmp_path, text, said):
    """A row with a field too many read its sample id and split from the wrong columns (a
    patient named "extra"), silently; a semicolon CSV and a Latin-1 file are named as such."""
    from ctcnet.detect.manifest_file import manifest_rows

    path = tmp_path / "manifest.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InputError, match=said):
        manifest_rows(path)


def test_whole_frames_read_as_a_crop_folder_are_refused_and_some_said(crops, caplog):
    """A scanner's frames whose names are no frame's (Slide_0042_Tile(3,7).tif) read as a crop
    folder got one call each for hundreds of cells, exit 0: images whose shorter side spans a
    scanner's field at the stated pixel size are refused when all are, said when some are."""
    import logging

    index = read_crop_index(crops)
    um = index.panel.pixel_size_um
    side = int(220 / um) + 1  # over 200 um
    rng = np.random.default_rng(0)
    for path in index.paths[:2]:
        write_tiff(path, rng.integers(90, 400, (5, side, side + 40)).astype(np.uint16))
    with caplog.at_level(logging.WARNING, logger="ctcnet.detect.crop_dataset"):
        load_crops(index)
    said = [r.getMessage() for r in caplog.records if "scanner's field" in r.getMessage()]
    assert len(said) == 1 and "2 of 4 images are a scanner's field" in said[0]
    assert "Leave them out of the crop folder, or give a scan's frames as a cartridge" in said[0]
    for path in index.paths[2:]:
        write_tiff(path, rng.integers(90, 400, (5, side, side)).astype(np.uint16))
    with pytest.raises(InputError, match=r"4 of 4 images are a scanner's field, not a cell's "
                                         r"crop .*Give a scan's frames as a cartridge: one TIFF "
                                         r"a frame named r<row>c<col>\.tif"):
        load_crops(index)
    # A crop of a large cluster (150 um) is a crop.
    for path in index.paths:
        write_tiff(path, rng.integers(90, 400, (5, int(150 / um), int(150 / um)))
                   .astype(np.uint16))
    load_crops(index)


def test_a_crop_labelled_otherwise_than_its_class_folder_is_named(tmp_path, rng, caplog):
    """A manifest labelling a crop of the wbc folder ctc trained on the manifest's label
    without a word; the folder and the label disagreeing means one is a slip."""
    import logging

    from ctcnet.detect.crop_writing import write_crop_dataset
    from ctcnet.io.panel import load_panel

    crops = rng.integers(100, 400, (4, 5, 32, 32)).astype(np.uint16)
    root = write_crop_dataset(tmp_path / "ds", crops, ["ctc", "ctc", "wbc", "wbc"],
                              load_panel(None))
    with caplog.at_level(logging.WARNING):
        load_crops(read_crop_index(root))
    assert "labelled otherwise" not in caplog.text
    manifest = root / "manifest.csv"
    lines = manifest.read_text().splitlines()
    wrong = next(i for i, line in enumerate(lines) if line.startswith("wbc/"))
    lines[wrong] = lines[wrong].replace(",wbc", ",ctc", 1)
    manifest.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        load_crops(read_crop_index(root))
    assert "1 crops are labelled otherwise than the class folder they sit in" in caplog.text
    assert f"{lines[wrong].split(',')[0]} (ctc)" in caplog.text
