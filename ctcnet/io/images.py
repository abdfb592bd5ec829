"""Read and write single multichannel images (one crop or one frame) with strict checks.

Every reader returns a ``(C, H, W)`` array and the channel names stored in the file (OME-TIFF),
if any. Anything wrong becomes one :class:`~ctcnet.errors.InputError` naming the file: corrupt or
truncated TIFF, unsupported dtype, NaN/inf, empty image. 8-bit PNG channels (as some scanners
export them) are read as single channels. Colour files (RGB or RGBA PNG, JPEG or TIFF: composite
exports with one marker per colour plane) are read as their three colour planes, R, G, B, alpha
dropped; ``panel.json`` names what each plane holds. A TIFF whose 4th plane is tagged alpha but
stored plane after plane (as tifffile stores any (4, H, W) array) keeps all four: a marker.
CellSearch's 2^15 export offset is removed here.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctcnet.errors import InputError, WholeFileError, check_regular_file, is_resource_error
from ctcnet.io.atomic import atomic_path
from ctcnet.io.image_headers import (
    JPEG_SUFFIXES,
    MAX_CHANNELS_LAST,
    MAX_PLANE_PIXELS,
    ORIENTATION,
    RASTER_SUFFIXES,
    UM_PER_UNIT,
    TiffDamage,
    rows_of_channels,
    unreadable_tiff,
)
from ctcnet.io.png_pixels import over_black, sixteen_bit_png
from ctcnet.io.stored_names import check_channel_file_name, names_no_marker

log = logging.getLogger(__name__)

SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32)
IMAGE_SUFFIXES = (".tif", ".tiff") + RASTER_SUFFIXES
CELLSEARCH_OFFSET = 32768
PSEUDO_12BIT_MAX = 4095


def check_pixels(arr: np.ndarray, path: str | Path, ndim: int = 3) -> np.ndarray:
    """Validate dtype, shape and finiteness of pixel data read from ``path``: a file still
    being written reads as zeros or cut short, never so (WholeFileError), but an empty one."""
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if arr.dtype.kind in "iu" and arr.dtype.type not in SUPPORTED_DTYPES and arr.size:
        # Counts stored in another integer type (a signed int16 export, a 32-bit file) are
        # counts all the same; a negative one is no camera's.
        low, high = int(arr.min()), int(arr.max())
        if low < 0:
            raise WholeFileError(f"{arr.dtype} pixels down to {low}: a camera's counts are 0 or "
                             "more (a signed export that wrapped past 32767? save it as "
                             "uint16)", path)
        arr = arr.astype(np.uint16 if high <= np.iinfo(np.uint16).max else np.float32)
    if arr.dtype.type not in SUPPORTED_DTYPES:
        raise WholeFileError(f"unsupported pixel type {arr.dtype}; use uint8, uint16, float32 or "
                         "float64", path)
    if arr.ndim == 2 and ndim == 3:
        arr = arr[None]
    if arr.ndim != ndim:
        # A stack (focal planes or time points: an ImageJ hyperstack, (Z, C, H, W)) says so.
        stack = (": planes of several focal planes or time points, it seems; a frame is one "
                 "plane per channel: export one plane or a projection"
                 if arr.ndim == ndim + 1 else "")
        raise WholeFileError(f"expected a {'(C, H, W)' if ndim == 3 else '(H, W)'} image, "
                             f"got shape {arr.shape}{stack}", path)
    if arr.size == 0 or min(arr.shape[-2:]) == 0:
        raise InputError(f"empty image (shape {arr.shape})", path)
    if arr.dtype == np.float32 and not np.isfinite(arr).all():
        raise WholeFileError("image contains NaN or infinite values (damaged, or made so by a "
                         "conversion): export it again from the scanner", path)
    return arr


def remove_cellsearch_offset(arr: np.ndarray, source: Path | None = None) -> np.ndarray:
    """Undo the 2^15 offset of CellSearch exports when the data carry it, else return as is.

    Such exports store pseudo 12-bit values, some of them with +32768 added. We only subtract
    when every value lies in [0, 4095] or [32768, 32768 + 4095], so genuine 16-bit data that
    happens to exceed 32767 is never shifted. Where it is taken off a file of a folder
    (``source``), that is noted once a folder (the run's log): what was assumed of its data.
    """
    if arr.dtype.kind not in "uif":
        return arr
    high = arr >= CELLSEARCH_OFFSET
    if not high.any():
        return arr
    # The same counts converted to floating point (a conversion script's float32): whole
    # numbers only (the refusal said every pixel fitted the offset, and kept it on).
    if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        return arr
    plausible = (arr <= PSEUDO_12BIT_MAX) | (high & (arr <= CELLSEARCH_OFFSET + PSEUDO_12BIT_MAX))
    if not plausible.all():
        return arr
    if source is not None and Path(source).parent not in _OFFSET_SAID:
        _OFFSET_SAID.add(Path(source).parent)
        log.info("%s: pixel values carry CellSearch's 2^15 export offset (32768 added to some "
                 "counts of 12 bits): taken off, as for every such export (%s the first)",
                 Path(source).parent, Path(source).name)
    return np.where(high, arr - CELLSEARCH_OFFSET, arr).astype(arr.dtype)


# The folders whose files' CellSearch offset was noted (once a folder, not once a frame).
_OFFSET_SAID: set[Path] = set()


def _ome_pixels(tif) -> dict | None:
    """The first OME Image's ``Pixels`` record of an open TIFF (its channels, its physical
    pixel size), None where the file has no readable OME metadata."""
    meta = tif.ome_metadata
    if not meta:
        return None
    import tifffile

    try:
        image = tifffile.xml2dict(meta)["OME"]["Image"]
        pixels = (image[0] if isinstance(image, list) else image)["Pixels"]
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return pixels if isinstance(pixels, dict) else None


def _ome_channel_names(tif) -> StoredNames | None:
    """An OME file's channel names, with the pixel size its metadata state beside them."""
    pixels = _ome_pixels(tif)
    if pixels is None:
        return None
    channels = pixels.get("Channel", [])
    if isinstance(channels, dict):
        channels = [channels]
    try:
        names = StoredNames(str(c.get("Name", "")) for c in channels)
    except AttributeError:  # not a list of records
        return None
    names.pixel_size_um = _ome_size_um(pixels)
    # Names that name no marker at all (a reader's Channel:0:1, dyes: PE, APC) are none:
    # panel.json names the planes, as for a container (such a frame named r00c00.tif was
    # refused without a way on). Where some do, those planes are placed by their names and
    # the others take the channels left (one name left blank dropped them all: CK read as
    # DAPI, unsaid).
    return None if names_no_marker(names) else names


class StoredNames(list):
    """The names a file stores for its planes. ``strict``: an OME file's channel names, each
    compared with the panel's; else labels (ImageJ's ``Labels``, TIFF ``PageName`` tags) a
    viewer or scanner wrote, which may name filters or nothing of the marker: compared only
    where both name a well-known marker. ``pixel_size_um``: what an OME file's metadata
    state (None: nothing)."""

    strict = True
    pixel_size_um: float | None = None


def _page_labels(tif, pages) -> StoredNames | None:
    """The planes' labels of a plain (not OME) TIFF: ImageJ's ``Labels``, else a
    ``PageName`` on every page; None without them."""
    labels = (tif.imagej_metadata or {}).get("Labels") if tif.is_imagej else None
    if isinstance(labels, str):  # one plane's label, as tifffile reads a single-plane file's
        labels = [labels]
    if not isinstance(labels, list):
        tags = [page.tags.get("PageName") for page in pages]
        labels = [tag.value for tag in tags] if all(tags) else None
    if not labels or not all(isinstance(n, str) and n.strip() for n in labels):
        return None
    names = StoredNames(n.strip() for n in labels)
    names.strict = False
    return names


def ome_pixel_size(path: str | Path) -> float | None:
    """The pixel size (um) a TIFF's OME metadata state (PhysicalSizeX), None where they state
    none, in a unit not listed, or the file has no OME metadata. Reads the header only."""
    import tifffile

    try:
        with TiffDamage(), tifffile.TiffFile(path) as tif:  # the pixels' read says damage
            pixels = _ome_pixels(tif)
    except Exception as err:  # an unreadable file says so when its pixels are read
        if is_resource_error(err):  # (not a file without a size: the machine's)
            raise
        return None
    return None if pixels is None else _ome_size_um(pixels)


def _ome_size_um(pixels: dict) -> float | None:
    """The pixel size (um) an OME ``Pixels`` record states (:func:`ome_pixel_size`)."""
    size, unit = pixels.get("PhysicalSizeX"), str(pixels.get("PhysicalSizeXUnit", "µm"))
    if size is None or unit not in UM_PER_UNIT:
        return None
    try:
        value = float(size) * UM_PER_UNIT[unit]
    except (TypeError, ValueError):
        return None
    return value if value > 0 and np.isfinite(value) else None


def _checked_image_file(path: Path) -> int:
    """An image file's size, refused (one line) when it is no regular file or holds nothing."""
    check_regular_file(path, "an image")
    size = path.stat().st_size
    if not size:
        raise InputError("empty file (0 bytes)", path)
    return size


# What one frame or crop file can hold. A camera frame is a few megapixels a channel
# (CellSearch: 1384 x 1036, five channels); a file whose header claims far more is refused
# before its pixels are decoded: a 2 kB file claiming 5 x 100000 x 100000 pixels asked for
# 93 GiB and stopped a night's batch, and 6 MB of 20,000 compressed pages took 2.9 GB to
# decode before its channel count was read. A whole-slide scan is read as frames (tiles).
# The most pixels a plane may hold is image_headers' MAX_PLANE_PIXELS.
MAX_PAGES = 64
MAX_DECODED_BYTES = 2**31  # six 16-bit channels of 8192 x 8192 take 0.75 GiB


def _refuse_past_a_frame(tif, path: Path, max_plane_pixels: int | None = None) -> None:
    """Refuse a TIFF of more pages than a frame has channels, or whose first page (every page
    of a frame is its size, checked after) holds more pixels than a frame's plane (or
    ``max_plane_pixels``): from its header, no page decoded."""
    if not len(tif.pages):
        return
    page = tif.pages.first
    if len(tif.pages) > MAX_PAGES and not rows_of_channels(tif, page):  # from page offsets
        raise InputError(f"holds {len(tif.pages)} pages: a frame or crop file holds one page "
                         f"per channel (at most {MAX_PAGES} read)", path)
    height, width = int(page.imagelength), int(page.imagewidth)
    _refuse_plane(height, width, path, max_plane_pixels)
    # Each bound alone let an 8.7 MB file of 64 compressed 8192 x 8192 pages through, which
    # asked for 8 GiB as it was decoded and stopped a night's batch as out of memory.
    decoded = len(tif.pages) * height * width * max(1, int(page.samplesperpixel)) * \
        max(1, -(-int(page.bitspersample) // 8))
    if decoded > MAX_DECODED_BYTES:
        raise InputError(f"{len(tif.pages)} pages of {height} x {width} px would decode to "
                         f"{decoded / 2**30:.1f} GiB: more than a frame or crop holds (at most "
                         f"{MAX_DECODED_BYTES / 2**30:g} GiB are read from one file)", path)


def _refuse_plane(height: int, width: int, path: Path, most: int | None) -> None:
    """Refuse, before decoding, a plane of more pixels than ``most`` (None: a frame's,
    ``MAX_PLANE_PIXELS``; else a cell's crop's)."""
    what = "a frame or crop" if most is None else "a cell's crop"
    most = MAX_PLANE_PIXELS if most is None else most
    if height * width > most:
        raise InputError(f"an image of {height} x {width} px: more than {what} holds (at most "
                         f"{most:,} pixels a plane are read); a whole-slide scan is read as "
                         "frames (tiles), one file each", path)


def read_tiff(path: str | Path, max_plane_pixels: int | None = None
              ) -> tuple[np.ndarray, list[str] | None]:
    """Read a (C, H, W) TIFF (one page per channel or an OME stack) and its channel names
    (refused before decoding where a plane holds more than ``max_plane_pixels``)."""
    import tifffile

    path = Path(path)
    size = _checked_image_file(path)
    try:
        # tifffile logs (rather than raises) some damage, e.g. pages past the end of a
        # truncated file; such a file must be refused, never silently read as zeros.
        with TiffDamage() as damage, tifffile.TiffFile(path) as tif:
            if tif.is_ome:
                # An OME image's planes share its first page's shape and coding, so the others
                # are read as frames (their data offsets alone), not parsed tag by tag: a
                # five-channel 80 px crop reads in two thirds of the time. A plain multipage
                # file keeps whole pages: its pages' sizes are checked against each other.
                tif.pages.useframes = True
            _refuse_past_a_frame(tif, path, max_plane_pixels)
            pages = list(tif.pages)
            names = _ome_channel_names(tif) if tif.is_ome else _page_labels(tif, pages)
            if not pages:
                raise InputError("not a readable TIFF (corrupt or truncated?): it holds no "
                                 "image", path)
            for page in pages:
                if 0 in page.shape:  # before the data check, which it would fail misleadingly
                    raise InputError(f"empty image (shape {page.shape})", path)
                ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts)]
                if ends and max(ends) > size:
                    raise InputError("truncated TIFF: pixel data runs past the end of the file "
                                     "(a copy cut short?): copy or export it again", path)
            interleaved_rgb = _interleaved_rgb(pages[0])
            # One decoding thread (this one): tifffile's own decoding threads would log
            # damage where the collector above does not listen.
            if tif.is_ome and len(tif.series) > 1:
                # Reading the first alone would drop the others without a word.
                # (whole-file refusals: no file still being written reads so)
                raise WholeFileError(f"holds {len(tif.series)} OME images; a frame or crop "
                                     "file holds one (its channels as planes): save each image "
                                     "in a file of its own", path)
            if len(tif.series) == 1 or tif.is_ome:
                arr = tif.series[0].asarray(maxworkers=1)
            else:  # plain multipage file: one page per channel
                shapes = sorted({p.shape for p in pages})
                if len(shapes) > 1:
                    raise WholeFileError(f"holds pages of {len(shapes)} sizes ({shapes}): "
                                         "a second image or a thumbnail beside the channels? A "
                                         "frame or crop file holds one page per channel, all "
                                         "one size", path)
                arr = np.stack([p.asarray(maxworkers=1) for p in pages])
        if damage.messages:
            raise InputError(f"corrupt or truncated TIFF ({damage.messages[0]}): export the "
                             "file again", path)
    except InputError:
        raise
    except Exception as err:  # tifffile raises many types on corrupt/truncated files
        # This install or this machine (too many open files, no memory), not the file.
        if isinstance(err, ImportError) or is_resource_error(err):
            raise
        raise unreadable_tiff(err, path) from None
    arr = np.squeeze(arr) if arr.ndim > 3 else arr
    if arr.ndim == 3 and arr.shape[-1] <= MAX_CHANNELS_LAST < arr.shape[0]:
        # Channel-last (H, W, C) storage, e.g. an RGB-style TIFF: channels first, as everywhere.
        arr = np.ascontiguousarray(np.moveaxis(arr, -1, 0))
    if interleaved_rgb and arr.ndim == 3 and arr.shape[0] == 4 and _is_alpha(arr[3]):
        arr = arr[:3]  # an RGBA export: the alpha plane is no marker
    return check_pixels(arr, path), names


def _interleaved_rgb(page) -> bool:
    """Whether a TIFF page is RGB with its planes interleaved, as image software writes an
    RGBA export. tifffile (and so many lab scripts) stores any (4, H, W) array as RGB plus
    "alpha" one plane after another: there the 4th plane is a marker, even a blank one."""
    import tifffile

    return page.photometric == tifffile.PHOTOMETRIC.RGB and \
        page.planarconfig != tifffile.PLANARCONFIG.SEPARATE


def _is_alpha(plane: np.ndarray) -> bool:
    """Whether the 4th plane of an interleaved RGB TIFF is its alpha rather than a 4th
    marker: an 8-bit one (an editor's RGBA export), or one of one value throughout (fully
    opaque)."""
    return plane.dtype == np.uint8 or bool(plane.size and plane.min() == plane.max())


def _open_raster(path: Path, max_plane_pixels: int | None = None) -> np.ndarray:
    """Pixels of a PNG or JPEG as (H, W) grey or (H, W, 3) colour, alpha and palette resolved,
    turned as its EXIF orientation says (as every viewer shows it); refused before decoding
    where it holds more than ``max_plane_pixels`` a plane."""
    from PIL import Image, ImageOps

    path = Path(path)
    _checked_image_file(path)
    kind = "JPEG" if path.suffix.lower() in JPEG_SUFFIXES else "PNG"
    try:
        with Image.open(path) as im:
            _refuse_plane(im.size[1], im.size[0], path, max_plane_pixels)
            # Pillow reads a 16-bit colour (or grey + alpha) PNG as 8-bit, its high bytes:
            # told before loading, and decoded whole below, turned as the tag says.
            wide = im.mode in ("RGB", "RGBA") and \
                any(";16" in str(tile.args) for tile in im.tile)
            turn = im.getexif().get(ORIENTATION, 1) if wide else 1
            im.load()
            if im.mode == "CMYK":
                raise InputError("a CMYK image: its planes are inks, not the R, G, B planes a "
                                 "composite's markers are shown in; export it as RGB", path)
            im = ImageOps.exif_transpose(im)
            im = over_black(im)
            if im.mode in ("P", "PA", "RGBA", "YCbCr"):
                im = im.convert("RGB")
            elif im.mode in ("1", "LA"):
                im = im.convert("L")
            arr = np.asarray(im)
    except (ImportError, InputError):  # this install, not the file; or said already
        raise
    except Exception as err:  # Pillow raises many types on corrupt/truncated files
        if is_resource_error(err):  # too many open files, no memory: not a corrupt file
            raise
        raise InputError(f"not a readable {kind} (corrupt or truncated?): {err}", path) from None
    if wide:
        arr = _turned(sixteen_bit_png(path), turn)
    if arr.dtype == np.int32:  # PIL's 16-bit grey mode
        arr = arr.astype(np.uint16)
    return np.ascontiguousarray(arr)


def _turned(arr: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W, ...) pixels turned as EXIF ``orientation`` (1-8) says, as
    ``PIL.ImageOps.exif_transpose`` turns an 8-bit image (for the 16-bit ones Pillow cannot
    hold)."""
    turns = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
             7: lambda a: a[::-1, ::-1].swapaxes(0, 1), 8: lambda a: np.rot90(a)}
    return np.ascontiguousarray(turns[orientation](arr)) if orientation in turns else arr


def read_raster(path: str | Path, max_plane_pixels: int | None = None) -> np.ndarray:
    """Read a PNG or JPEG as (C, H, W): one plane if grey, the R, G, B planes if colour."""
    path = Path(path)
    arr = _open_raster(path, max_plane_pixels)
    if arr.ndim == 3:
        arr = np.ascontiguousarray(np.moveaxis(arr[..., :3], -1, 0))
    return check_pixels(arr, path)


def read_channel_file(path: str | Path, expected_name: str | None = None) -> np.ndarray:
    """Read a file that holds one channel (a per-channel frame file) as (H, W); a TIFF that
    names its channel another marker than ``expected_name`` (the panel's channel its file name
    places it as) is refused (:func:`ctcnet.io.stored_names.check_channel_file_name`).

    A colour PNG or JPEG whose planes are all equal is an RGB export of a grey channel and is
    read as that channel; one with differing planes is refused (it is a composite, not one
    channel).
    """
    path = Path(path)
    if path.suffix.lower() not in RASTER_SUFFIXES:
        arr, names = read_tiff(path)
        if arr.shape[0] != 1:
            raise InputError(f"a per-channel file must hold one channel, found {arr.shape[0]}",
                             path)
        if expected_name is not None:
            check_channel_file_name(names, expected_name, path)
        return arr[0]
    arr = _open_raster(path)
    if arr.ndim == 3:
        if not (arr == arr[..., :1]).all():
            raise InputError("colour image: a channel file must be greyscale", path)
        arr = arr[..., 0]
    return check_pixels(np.ascontiguousarray(arr), path, ndim=2)


def read_image(path: str | Path, max_plane_pixels: int | None = None
               ) -> tuple[np.ndarray, list[str] | None]:
    """Read any supported single image file as (C, H, W) plus channel names if stored (a
    plane of more than ``max_plane_pixels`` refused before it is decoded)."""
    path = Path(path)
    if path.suffix.lower() in RASTER_SUFFIXES:
        return read_raster(path, max_plane_pixels), None
    return read_tiff(path, max_plane_pixels)


def is_rgb_composite(arr: np.ndarray) -> bool:
    """Whether pixels read from a file look like an 8-bit colour composite (three planes)."""
    return arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[0] == 3


def content_uuid(arr: np.ndarray, channel_names=None, pixel_size_um=None) -> str:
    """A UUID of an image's pixels, shape, type, channel names and pixel size (a name-based
    UUID of their digest): the same image, the same UUID, wherever and whenever written."""
    digest = hashlib.blake2b(np.ascontiguousarray(arr).tobytes(), digest_size=16)
    digest.update(repr((arr.shape, str(arr.dtype), list(channel_names or []),
                        pixel_size_um)).encode("utf-8"))
    return str(uuid.uuid5(uuid.NAMESPACE_OID, digest.hexdigest()))


def write_tiff(path: str | Path, arr: np.ndarray, channel_names: Sequence[str] | None = None,
               pixel_size_um: float | None = None, ome: bool = True) -> None:
    """Write a (C, H, W) image atomically; OME metadata records channel names and pixel size,
    and an image UUID derived from its content (tifffile's default, a time-based UUID, holds
    the writing machine's network address and the moment: a crop shared with a collaborator
    would carry both, and the same crop written twice would differ)."""
    import tifffile

    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise ValueError(f"write_tiff wants (C, H, W), got {arr.shape}")
    with atomic_path(path) as tmp:
        if ome:
            metadata = {"axes": "CYX", "UUID": content_uuid(arr, channel_names, pixel_size_um)}
            if channel_names is not None:
                metadata["Channel"] = {"Name": list(channel_names)}
            if pixel_size_um is not None:
                metadata.update(PhysicalSizeX=float(pixel_size_um),
                                PhysicalSizeY=float(pixel_size_um))
            tifffile.imwrite(tmp, arr, ome=True, metadata=metadata, photometric="minisblack")
        else:  # plain multipage TIFF, one page per channel, as CellSearch writes frames
            tifffile.imwrite(tmp, arr, metadata=None, photometric="minisblack")
