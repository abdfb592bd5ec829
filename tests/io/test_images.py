"""ctcnet.io.images: TIFF round trip with channel names, bad images refused clearly."""


import numpy as np
import pytest
import tifffile
from conftest import rgb_planes, save_rgb

from ctcnet.errors import InputError
from ctcnet.io.images import read_channel_file, read_image, write_tiff

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
    tifffile.imwrite(tmp_path / "int32.tif", np.ones((3, 8, 8), np.int32))
    with pytest.raises(InputError, match="unsupported pixel type"):
        read_image(tmp_path / "int32.tif")


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
