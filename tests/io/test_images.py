"""ctcnet.io.images: TIFF round trip with channel names, bad images refused clearly."""


import numpy as np
import pytest
import tifffile
from conftest import rgb_planes, save_rgb

from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.io.image_headers import image_shape
from ctcnet.io.images import read_channel_file, read_image, read_tiff, write_tiff

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
    (tmp_path / "empty.tif").write_bytes(b"II*\x00garbage")  # a header and nothing readable
    with pytest.raises(InputError, match="trunc.tif"):
        read_image(tmp_path / "trunc.tif")
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_image(tmp_path / "junk.tif")
    with pytest.raises(InputError, match=r"empty.tif.*not a readable TIFF.*holds no image$"):
        read_image(tmp_path / "empty.tif")
    with pytest.warns(UserWarning, match="zero-size"):
        tifffile.imwrite(tmp_path / "zero.tif", np.zeros((0, 0), np.uint16))
    with pytest.raises(InputError, match=r"zero.tif: empty image \(shape \(0, 0\)\)"):
        read_image(tmp_path / "zero.tif")
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "missing.tif")
    nan = np.ones((3, 8, 8), np.float32)
    nan[1, 2, 2] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", nan)
    with pytest.raises(InputError, match="NaN"):
        read_image(tmp_path / "nan.tif")
    # Counts in another integer type are counts (a signed int16 export); negative ones are
    # no camera's (a signed export that wrapped past 32767).
    tifffile.imwrite(tmp_path / "int16.tif", np.full((3, 8, 8), 4000, np.int16))
    arr, _ = read_image(tmp_path / "int16.tif")
    assert arr.dtype == np.uint16 and (arr == 4000).all()
    wrapped = np.full((3, 8, 8), 100, np.int16)
    wrapped[0, 0, 0] = -32000
    tifffile.imwrite(tmp_path / "wrapped.tif", wrapped)
    with pytest.raises(InputError, match="int16 pixels down to -32000: a camera's counts"):
        read_image(tmp_path / "wrapped.tif")
    tifffile.imwrite(tmp_path / "complex.tif", np.ones((3, 8, 8), np.complex64))
    with pytest.raises(InputError, match="unsupported pixel type"):
        read_image(tmp_path / "complex.tif")


def test_an_ome_crop_cut_short_anywhere_is_refused(tmp_path, rng):
    """An OME-TIFF's planes after the first are read as frames (their offsets, not every
    tag): a file cut short anywhere past its header is still refused, never read as zeros."""
    arr = rng.integers(0, 4000, (5, 40, 40), dtype=np.uint16)
    whole = tmp_path / "whole.tif"
    write_tiff(whole, arr, ["DAPI", "CK", "CD45", "CD61", "CD66b"], 0.64)
    with tifffile.TiffFile(whole) as tif:
        assert tif.is_ome and len(tif.pages) == 5
    back, _ = read_image(whole)
    assert np.array_equal(back, arr)
    data = whole.read_bytes()
    for end in np.linspace(16, len(data) - 1, 24).astype(int):
        cut = tmp_path / f"cut{end}.tif"
        cut.write_bytes(data[:end])
        with pytest.raises(InputError, match=f"cut{end}.tif"):
            read_image(cut)


# --- reading colour files ------------------------------------------------------------------------

@pytest.mark.parametrize("name,fmt,alpha", [("a.png", "PNG", False), ("a.png", "PNG", True),
                                            ("a.tif", "TIFF", False), ("a.tif", "TIFF", True)])
def test_colour_files_read_as_their_rgb_planes(tmp_path, rng, name, fmt, alpha):
    planes = rgb_planes(rng)
    save_rgb(tmp_path / name, planes, fmt, alpha)
    arr, _ = read_image(tmp_path / name)
    assert arr.dtype == np.uint8 and np.array_equal(arr, planes)  # alpha dropped, R, G, B


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_four_channel_crops_stored_as_rgb_plus_alpha_keep_their_fourth_marker(tmp_path, rng,
                                                                               dtype):
    # tifffile.imwrite stores a (4, H, W) array as RGB with an alpha plane, one plane after
    # another, unless told otherwise: a lab's 4-marker crops written so must keep all four.
    crop = rng.integers(0, 200, (4, 24, 24)).astype(dtype)
    tifffile.imwrite(tmp_path / "x.tif", crop)
    assert tifffile.TiffFile(tmp_path / "x.tif").pages[0].photometric == 2  # RGB as stored
    back, _ = read_image(tmp_path / "x.tif")
    assert np.array_equal(back, crop)
    crop[3] = 0  # a blank 4th marker stored so is still a marker
    tifffile.imwrite(tmp_path / "blank.tif", crop)
    assert np.array_equal(read_image(tmp_path / "blank.tif")[0], crop)
    # Interleaved 8-bit RGBA whose alpha varies (an editor's export with transparency), and
    # interleaved RGBA of any depth whose alpha is one value throughout: three planes.
    rgba = rng.integers(0, 255, (24, 24, 4)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "editor.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    assert np.array_equal(read_image(tmp_path / "editor.tif")[0], rgba[..., :3].transpose(2, 0, 1))
    opaque = np.dstack([rgba[..., :3], np.full((24, 24), 255, np.uint8)]).astype(dtype)
    tifffile.imwrite(tmp_path / "opaque.tif", opaque, photometric="rgb",
                     extrasamples=["unassalpha"])
    assert np.array_equal(read_image(tmp_path / "opaque.tif")[0],
                          opaque[..., :3].transpose(2, 0, 1))


def test_a_pngs_transparent_pixels_read_as_black_and_jfif_as_jpeg(tmp_path, rng):
    """A composite exported with a clear background was read by the white under it (13 of
    20 crops called otherwise); a Windows .jfif JPEG was passed over unsaid."""
    from PIL import Image

    rgba = rng.integers(0, 255, (24, 24, 4)).astype(np.uint8)
    rgba[..., 3] = 255
    rgba[:8, :, :3], rgba[:8, :, 3] = 255, 0  # a clear top band over white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    arr, _ = read_image(tmp_path / "clear.png")
    assert arr.shape == (3, 24, 24) and not arr[:, :8].any()
    assert np.array_equal(arr[:, 8:], rgba[8:, :, :3].transpose(2, 0, 1))
    grey = np.dstack([rgba[..., 0], rgba[..., 3]])
    Image.fromarray(grey, "LA").save(tmp_path / "grey.png")
    assert not read_image(tmp_path / "grey.png")[0][..., :8, :].any()
    # ... in a 16-bit RGBA PNG too, and where a colour key (tRNS) marks the background clear.
    import imagecodecs

    wide = rgba.astype(np.uint16) * 257
    (tmp_path / "wide.png").write_bytes(imagecodecs.png_encode(wide))
    assert np.array_equal(read_image(tmp_path / "wide.png")[0], arr)
    keyed = rgba[..., :3].copy()
    Image.fromarray(keyed, "RGB").save(tmp_path / "keyed.png", transparency=(255, 255, 255))
    assert not read_image(tmp_path / "keyed.png")[0][:, :8].any()
    planes = rgb_planes(rng)
    save_rgb(tmp_path / "a.jfif", planes, "JPEG")
    save_rgb(tmp_path / "a.jpg", planes, "JPEG")
    assert np.array_equal(read_image(tmp_path / "a.jfif")[0], read_image(tmp_path / "a.jpg")[0])


def test_jpeg_crops_read_as_composites(tmp_path, rng):
    planes = rgb_planes(rng)
    save_rgb(tmp_path / "a.jpg", planes, "JPEG")
    arr, names = read_image(tmp_path / "a.jpg")
    assert names is None and arr.shape == planes.shape and arr.dtype == np.uint8
    assert np.abs(arr.astype(int) - planes).mean() < 4  # lossy, but the planes stay apart
    (tmp_path / "bad.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:200])
    with pytest.raises(InputError, match="not a readable JPEG"):
        read_image(tmp_path / "bad.jpg")
    # A per-channel frame file must be one channel: a composite is refused there, an RGB export
    # of a grey channel (equal planes) is read as that channel.
    with pytest.raises(InputError, match="must be greyscale"):
        read_channel_file(tmp_path / "a.jpg")
    save_rgb(tmp_path / "grey.png", np.repeat(planes[:1], 3, axis=0), "PNG")
    assert np.array_equal(read_channel_file(tmp_path / "grey.png"), planes[0])


def test_a_channel_file_naming_another_marker_than_its_place_is_refused(tmp_path, rng):
    """``r00c00_c1.tif`` holds panel.json's channel 1 (CK): one whose OME name says CD45 is
    refused (read as CK it called 182 CTCs on a sample of 1); its own name, a name in
    another case, a dye's name of the same marker or a name of no well-known marker pass."""
    plane = rng.integers(0, 4000, (1, 20, 24), dtype=np.uint16)
    write_tiff(tmp_path / "r00c00_c1.tif", plane, ["CD45"], 0.64)
    with pytest.raises(PanelMismatchError, match="names its channel 'CD45', but a channel "
                       "file of its name holds panel.json's 'CK'"):
        read_channel_file(tmp_path / "r00c00_c1.tif", "CK")
    assert np.array_equal(read_channel_file(tmp_path / "r00c00_c1.tif"), plane[0])
    for name in ("CK", "ck", "PanCK-PE", "Marker6"):
        write_tiff(tmp_path / "r00c00_c1.tif", plane, [name], 0.64)
        assert np.array_equal(read_channel_file(tmp_path / "r00c00_c1.tif", "CK"), plane[0])


# --- what a file says of itself: orientation, bit depth, several images --------------------------

def test_a_colour_file_is_read_as_its_orientation_tag_turns_it(tmp_path, rng):
    """Stored rotated with an EXIF tag that turns it back, as a camera or a viewer's export
    writes it: read as every viewer shows it, not mirrored (every event would land at the
    mirrored place)."""
    from PIL import Image

    planes = rgb_planes(rng)
    upright = np.moveaxis(planes, 0, -1)
    for tag, stored in ((3, upright[::-1, ::-1]), (2, upright[:, ::-1]), (6, np.rot90(upright))):
        exif = Image.Exif()
        exif[0x0112] = tag
        Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "o.png", exif=exif)
        arr, _ = read_image(tmp_path / "o.png")
        assert np.array_equal(arr, planes), tag


def test_a_sixteen_bit_colour_png_is_read_whole_or_refused(tmp_path, rng):
    """Pillow reads a 16-bit colour PNG as its high bytes: 8-bit levels stretched by 257 read
    back as those levels; 16-bit counts would be cut to a sixteenth, so they are refused."""
    import imagecodecs

    planes = rgb_planes(rng)
    stretched = np.ascontiguousarray(np.moveaxis(planes, 0, -1)).astype(np.uint16) * 257
    (tmp_path / "s.png").write_bytes(imagecodecs.png_encode(stretched))
    arr, _ = read_image(tmp_path / "s.png")
    assert arr.dtype == np.uint8 and np.array_equal(arr, planes)
    counts = rng.integers(0, 4096, (16, 16, 3)).astype(np.uint16)
    (tmp_path / "c.png").write_bytes(imagecodecs.png_encode(counts))
    with pytest.raises(InputError, match=r"c.png: a 16-bit colour PNG whose levels are not"):
        read_image(tmp_path / "c.png")


def test_files_that_are_not_one_image_are_refused(tmp_path, rng):
    from PIL import Image

    Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save(tmp_path / "k.jpg")
    with pytest.raises(InputError, match=r"k.jpg: a CMYK image"):
        read_image(tmp_path / "k.jpg")
    frame = rng.integers(0, 4000, (3, 32, 32), dtype=np.uint16)
    with tifffile.TiffWriter(tmp_path / "two.tif", ome=True) as tif:
        tif.write(frame, metadata={"axes": "CYX"})
        tif.write(frame, metadata={"axes": "CYX"})
    with pytest.raises(InputError, match=r"two.tif: holds 2 OME images"):
        read_image(tmp_path / "two.tif")
    with tifffile.TiffWriter(tmp_path / "thumb.tif") as tif:
        for plane in frame:
            tif.write(plane, contiguous=False)
        tif.write(frame[0, ::4, ::4])  # a thumbnail after the channels
    with pytest.raises(InputError, match=r"thumb.tif: holds pages of 2 sizes"):
        read_image(tmp_path / "thumb.tif")
    for name in ("z.tif", "z.png"):
        (tmp_path / name).write_bytes(b"")
        with pytest.raises(InputError, match=rf"{name}: empty file \(0 bytes\)"):
            read_image(tmp_path / name)


def test_sixteen_bit_pngs_are_turned_as_tagged_and_grey_alpha_reads_as_grey(tmp_path, rng):
    """The 16-bit path decodes the file again (Pillow cannot hold 16-bit colour): it turns
    the pixels as the EXIF tag says, as the 8-bit path does, for every orientation."""
    import imagecodecs
    from PIL import Image

    planes = rgb_planes(rng)[:, :6, :4]  # 6 x 4: not square, so a turn shows
    for tag in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = tag
        colour = np.ascontiguousarray(np.moveaxis(planes, 0, -1))
        Image.fromarray(colour).save(tmp_path / "eight.png", exif=exif)
        eight, _ = read_image(tmp_path / "eight.png")
        # the same pixels as 16-bit (x257), the same tag put in by Pillow's writer
        (tmp_path / "raw16.png").write_bytes(imagecodecs.png_encode(colour.astype(np.uint16)
                                                                    * 257))
        with Image.open(tmp_path / "raw16.png") as im:
            assert im.mode == "RGB"
        sixteen = _with_exif(tmp_path / "raw16.png", exif)
        got, _ = read_image(sixteen)
        assert np.array_equal(got, eight), tag
    grey = rng.integers(0, 4096, (8, 8)).astype(np.uint16)
    alpha = np.full((8, 8), 65535, np.uint16)
    (tmp_path / "la.png").write_bytes(imagecodecs.png_encode(np.stack([grey, alpha], -1)))
    arr, _ = read_image(tmp_path / "la.png")
    assert arr.dtype == np.uint16 and np.array_equal(arr[0], grey)


def _with_exif(png, exif):
    """``png`` with an eXIf chunk holding ``exif`` (before its first IDAT), as a camera app
    writes a 16-bit PNG; returns the new file's path."""
    import struct
    import zlib

    data = png.read_bytes()
    payload = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif\x00\x00") else \
        exif.tobytes()
    chunk = struct.pack(">I", len(payload)) + b"eXIf" + payload + \
        struct.pack(">I", zlib.crc32(b"eXIf" + payload) & 0xFFFFFFFF)
    at = data.index(b"IDAT") - 4
    out = png.with_name(png.stem + "_exif.png")
    out.write_bytes(data[:at] + chunk + data[at:])
    return out


def test_a_tiff_claiming_more_than_a_frame_is_refused_from_its_header(tmp_path, monkeypatch):
    """A header claiming more pixels a plane than a frame holds, or more pages than a frame
    has channels, is refused before any page is decoded (a 2 kB file claiming 5 x 100000 x
    100000 pixels asked for 93 GiB)."""
    import ctcnet.io.images as images

    monkeypatch.setattr(images, "MAX_PLANE_PIXELS", 40 * 40)
    tifffile.imwrite(tmp_path / "wide.tif", np.zeros((3, 41, 40), np.uint16),
                     photometric="minisblack", metadata=None)
    with pytest.raises(InputError, match="an image of 41 x 40 px: more than a frame"):
        read_image(tmp_path / "wide.tif")
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((images.MAX_PAGES + 1, 8, 8), np.uint16),
                     photometric="minisblack", metadata=None)
    with pytest.raises(InputError, match=f"holds {images.MAX_PAGES + 1} pages"):
        read_image(tmp_path / "pages.tif")
    tifffile.imwrite(tmp_path / "frame.tif", np.ones((5, 40, 40), np.uint16),
                     photometric="minisblack", metadata=None)
    assert read_image(tmp_path / "frame.tif")[0].shape == (5, 40, 40)
    # Pages and plane each within bounds, the whole not: 64 compressed 8192 x 8192 pages in
    # 8.7 MB asked for 8 GiB and stopped a night's batch as out of memory.
    monkeypatch.setattr(images, "MAX_DECODED_BYTES", 4 * 40 * 40 * 2)
    with pytest.raises(InputError, match=r"5 pages of 40 x 40 px would decode to"):
        read_image(tmp_path / "frame.tif")


def test_a_crop_written_channels_last_as_it_is_is_read_channels_first(tmp_path):
    """tifffile writes an (H, W, C) array as H pages of W x C: a crop of 80 px so is read as
    one crop, channels first (it was refused for holding 80 pages, one of 48 px was read)."""
    for height in (48, 80):
        crop = np.arange(height * height * 5, dtype=np.uint16).reshape(height, height, 5)
        tifffile.imwrite(tmp_path / f"last{height}.tif", crop)
        assert np.array_equal(read_image(tmp_path / f"last{height}.tif")[0],
                              np.moveaxis(crop, -1, 0))
        # ... and its size is the image's, not a page's (a frame's size read as 1384 x 5
        # made its events 100,000 per mm^2, "crowded").
        assert image_shape(tmp_path / f"last{height}.tif") == (height, height)


def test_an_ome_crop_carries_a_uuid_of_its_content_not_of_the_machine(tmp_path):
    """tifffile's default UUID is time-based (version 1): the writing machine's network
    address and the moment, in every crop a lab shares. A UUID of the content instead: the
    same crop written twice is the same file."""
    import re
    import uuid

    import tifffile

    from ctcnet.io.images import write_tiff

    crop = np.arange(3 * 8 * 8, dtype=np.uint16).reshape(3, 8, 8)
    for name in ("a", "b"):
        write_tiff(tmp_path / f"{name}.tif", crop, ["DAPI", "CK", "CD45"], 0.64)
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        said = re.search(r'UUID="urn:uuid:([^"]+)"', tif.ome_metadata).group(1)
    assert uuid.UUID(said).version == 5
    assert (tmp_path / "a.tif").read_bytes() == (tmp_path / "b.tif").read_bytes()


@pytest.mark.parametrize("how", ["pagename", "imagej"])
def test_planes_labelled_by_a_viewer_or_scanner_are_checked_where_they_name_markers(
        tmp_path, rng, how):
    """A panel.json written in a brochure's order, not the file's, counted 0 of a cartridge's
    19 CTCs although each page carried its marker's name (TIFF PageName, ImageJ Labels):
    labels that name well-known markers are checked against the panel; labels that name
    none (filters, numbers) are no channel names and are read as before."""
    import tifffile

    from ctcnet.errors import PanelMismatchError
    from ctcnet.io.stored_names import check_channel_names

    arr = rng.integers(100, 4000, (4, 24, 24)).astype(np.uint16)

    def written(labels):
        path = tmp_path / f"{how}_{'_'.join(labels)}.tif"
        if how == "imagej":
            tifffile.imwrite(path, arr, imagej=True, metadata={"axes": "CYX", "Labels": labels})
        else:
            with tifffile.TiffWriter(path) as tif:
                for plane, label in zip(arr, labels):
                    tif.write(plane, extratags=[(285, "s", 0, label, True)])
        got, names = read_tiff(path)
        assert np.array_equal(got, arr) and names == labels
        return path, names

    panel = ["DAPI", "CK", "CD45", "EpCAM"]
    path, names = written(["Hoechst", "PanCK-PE", "PTPRC-APC", "EpCAM"])
    check_channel_names(names, panel, path)  # the same markers under their dyes' names
    path, names = written(["Hoechst", "EpCAM", "PanCK-PE", "CD45-APC"])
    with pytest.raises(PanelMismatchError, match=r"the file labels its planes \['Hoechst', "
                                                 r"'EpCAM', 'PanCK-PE', 'CD45-APC'\] .*put "
                                                 r"panel.json's channels in the file's order"):
        check_channel_names(names, panel, path)
    path, names = written(["Channel 1", "FITC", "PE", "APC"])  # no marker named: not checked
    check_channel_names(names, panel, path)


def test_a_single_plane_files_imagej_label_is_read(tmp_path, rng):
    """One channel a file, labelled by ImageJ: tifffile reads a single plane's Labels back as
    a string, not a list, and the label was dropped unread (a CD45 file in CK's place read as
    CK: a cartridge's CTC calls 24 -> 41)."""
    import tifffile

    path = tmp_path / "r00c00_c1.tif"
    tifffile.imwrite(path, rng.integers(100, 4000, (24, 24)).astype(np.uint16), imagej=True,
                     metadata={"axes": "YX", "Labels": ["CD45"]})
    assert read_tiff(path)[1] == ["CD45"]
    # Read as panel.json's CK: refused, the advice by how the files are named (a file named
    # for its marker was told to renumber _c0, _c1 ... or reorder panel.json).
    from ctcnet.errors import PanelMismatchError
    from ctcnet.io.images import read_channel_file

    with pytest.raises(PanelMismatchError, match=r"files _c0, _c1, \.\.\. in panel.json's"):
        read_channel_file(path, "CK")
    named = path.rename(tmp_path / "r00c00_CK.tif")
    with pytest.raises(PanelMismatchError, match="'CD45', but its file name says 'CK': one of "
                                                 "the two is wrong"):
        read_channel_file(named, "CK")


def test_the_cellsearch_offset_taken_off_is_noted_once_a_folder(tmp_path, caplog):
    """Exports holding counts of 12 bits with 2^15 added to some read as the counts: said in
    the run's log, once a folder, where nothing said what was assumed of the data."""
    import logging

    from ctcnet.io.images import remove_cellsearch_offset

    plane = np.array([[100, 32768 + 200], [4095, 32768 + 4095]], np.uint16)
    with caplog.at_level(logging.INFO, logger="ctcnet.io.images"):
        for name in ("r00c00_c0.tif", "r00c00_c1.tif"):
            got = remove_cellsearch_offset(plane, tmp_path / "scan" / name)
            assert got.tolist() == [[100, 200], [4095, 4095]]
        remove_cellsearch_offset(np.array([[100, 200]], np.uint16), tmp_path / "other" / "a.tif")
    said = [r.getMessage() for r in caplog.records if "2^15 export offset" in r.getMessage()]
    assert len(said) == 1 and str(tmp_path / "scan") in said[0]
    # 16-bit counts past 32767 that are no such export are left as they are.
    wide = np.array([[100, 40000]], np.uint16)
    assert remove_cellsearch_offset(wide, tmp_path / "x" / "a.tif").tolist() == [[100, 40000]]


def test_an_ome_files_planes_are_taken_by_their_own_names_then_by_a_unique_marker(caplog):
    """Two channels of one role (CD15 and CD66b, CK8 and CK19) were matched by role alone:
    swapped planes were read in the file's order, and a CK/CD45 swap in such a panel was
    refused. The order read is said once, as a container's."""
    import logging

    from ctcnet.io import stored_names
    from ctcnet.io.images import StoredNames
    from ctcnet.io.stored_names import in_panel_order, planes_by_name

    six = ["DAPI", "CK", "CD45", "CD61", "CD15", "CD66b"]
    assert planes_by_name(["DAPI", "CK", "CD45", "CD61", "CD66b", "CD15"], six) == \
        [0, 1, 2, 3, 5, 4]
    assert planes_by_name(["DAPI", "CD45", "CK", "CD61", "CD15", "CD66b"], six) == \
        [0, 2, 1, 3, 4, 5]
    assert planes_by_name(["DAPI", "CK19", "CK8", "CD45"], ["DAPI", "CK8", "CK19", "CD45"]) \
        == [0, 2, 1, 3]
    # Aliases where a marker's role is its own; never between two of one role.
    assert planes_by_name(["PanCK-PE", "Hoechst", "CD45-APC"], ["DAPI", "CK", "CD45"]) == \
        [1, 0, 2]
    assert planes_by_name(["DAPI", "CK", "CD45", "CD61", "CD66b-FITC", "CD15-PE"], six) is None
    assert planes_by_name(["DAPI", "DAPI", "CD45"], ["DAPI", "CK", "CD45"]) is None
    arr = np.arange(6)[:, None, None] * np.ones((1, 2, 2))
    stored_names._ORDERS_SAID.clear()
    with caplog.at_level(logging.WARNING, logger="ctcnet.io"):
        for _ in range(2):
            got = in_panel_order(arr, ["DAPI", "CK", "CD45", "CD61", "CD66b", "CD15"], six,
                                 "f.tif")
            assert got[:, 0, 0].tolist() == [0, 1, 2, 3, 5, 4]
    assert caplog.text.count("the file names its channels in another order") == 1
    assert "(DAPI, CK, CD45, CD61, CD66b, CD15) than panel.json" in caplog.text
    # A viewer's labels are never reordered by.
    labels = StoredNames(["PanCK-PE", "Hoechst", "CD45-APC"])
    labels.strict = False
    with pytest.raises(PanelMismatchError):
        in_panel_order(arr[:3], labels, ["DAPI", "CK", "CD45"], "f.tif")


def test_another_formats_file_named_tif_is_said_by_its_format(tmp_path, rng):
    """A PNG saved with a .tif name read "not a readable TIFF (corrupt or truncated?)"."""
    save_rgb(tmp_path / "a.tif.png", rgb_planes(rng), "PNG")
    (tmp_path / "a.tif.png").rename(tmp_path / "crop.tif")
    with pytest.raises(InputError, match="crop.tif: not a TIFF but a PNG file named .tif: "
                                         "rename it .png"):
        read_image(tmp_path / "crop.tif")
    (tmp_path / "junk.tif").write_bytes(b"II*\x00" + bytes(40))
    with pytest.raises(InputError, match="not a readable TIFF"):
        read_image(tmp_path / "junk.tif")
