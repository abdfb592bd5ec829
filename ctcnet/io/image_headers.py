"""What an image file's header says before its pixels are read: a frame's size and a TIFF's
channels, as :mod:`ctcnet.io.images` will read them.

Scan checks (a frame of another size, a panel naming another number of channels) ask these
of every frame without decoding it. Each answers None where the header cannot be read: the
file's own read then says why, with its name.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from ctcnet.errors import InputError

# JPEG's names (Windows saves a browser's JPEG as .jfif): each read as one, none passed over.
JPEG_SUFFIXES = (".jpg", ".jpeg", ".jfif", ".jpe")
RASTER_SUFFIXES = (".png", *JPEG_SUFFIXES)  # read with Pillow; everything else is TIFF
# Images ctcnet does not read (other raster formats, microscopes' own files): a crop folder's
# files of these are named as unread, not passed over as a note or a sidecar is.
UNREAD_IMAGE_SUFFIXES = (".bmp", ".gif", ".webp", ".jp2", ".j2k", ".heic", ".heif", ".czi",
                         ".nd2", ".lif", ".svs", ".vsi", ".ims", ".lsm", ".dcm")
ORIENTATION = 0x0112  # the EXIF tag
MAX_PLANE_PIXELS = 2**26  # 8192 x 8192
# The most channels an image stored channels last ((H, W, C), as image software and tifffile
# write an array as it is) is read with: a panel's channels, never a plane's width.
MAX_CHANNELS_LAST = 6
# Micrometres per unit of the OME lengths a pixel size is stated in (OME's own symbols), for
# a TIFF's OME header and a container's metadata alike.
UM_PER_UNIT = {"pm": 1e-6, "Å": 1e-4, "nm": 1e-3, "µm": 1.0, "um": 1.0, "mm": 1e3, "cm": 1e4,
               "m": 1e6, "in": 25400.0}


class TiffDamage(logging.Filter):
    """While the block runs, what tifffile logs from this thread (its way to report damage,
    e.g. pages past the end of a truncated file) is taken from its logger: its errors kept in
    ``messages`` (for the read to refuse the file by name), nothing printed (it printed
    "<tifffile.TiffPages @8> invalid page offset" unattributed, once for each look at the
    file).

    tifffile has one logger for the whole process. Predict reads frames in several threads, so
    damage logged while one thread reads a truncated file must not reach a thread reading an
    intact one, and refuse it: only records logged by the thread that opened the block count
    (a logger's filters run in the thread that logs; ``read_tiff`` decodes with
    ``maxworkers=1`` so tifffile logs from that thread alone). Others' pass as they were.
    """

    def __init__(self):
        super().__init__()
        self.messages: list[str] = []
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep this thread's record out of the logger's handlers (its errors kept here)."""
        # Not ``record.thread``: it is None when an application turns ``logging.logThreads``
        # off, which would then let every damage record through.
        if threading.get_ident() != self.thread:
            return True
        if record.levelno >= logging.ERROR:
            # tifffile names the damage after its own objects ("<tifffile.TiffPages @8>
            # invalid page offset 819408"): the words are kept, the object's repr is not.
            self.messages.append(re.sub(r"<tifffile\.[^>]*>\s*", "",
                                        record.getMessage()).strip())
        return False

    def __enter__(self):
        logging.getLogger("tifffile").addFilter(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("tifffile").removeFilter(self)


# The first bytes of the image formats a file named .tif may truly be (saved under the wrong
# name, renamed by hand): said by name, not read as a corrupt TIFF.
FORMAT_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG", ".png"), (b"\xff\xd8\xff", "JPEG", ".jpg"),
                     (b"GIF8", "GIF", ".gif"), (b"BM", "BMP", ".bmp"),
                     (b"\x00\x00\x00\x0cjP  ", "JPEG 2000", ".jp2"))


def format_by_content(path: str | Path) -> tuple[str, str] | None:
    """(format, usual suffix) of another image format's file, by its first bytes; None where
    they are none of :data:`FORMAT_SIGNATURES` or cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    return next(((name, suffix) for magic, name, suffix in FORMAT_SIGNATURES
                 if head.startswith(magic)), None)


def unreadable_tiff(err: Exception, path: Path) -> InputError:
    """The refusal of a file tifffile could not read: another format's file named .tif said
    as such (a PNG saved so is no corrupt TIFF), else tifffile's own words."""
    import tifffile

    other = format_by_content(path)
    if other is not None:
        return InputError(f"not a TIFF but a {other[0]} file named {path.suffix}: rename it "
                          f"{other[1]}", path)
    # Its own errors say what is wrong; others (IndexError, struct.error ...) come from
    # deep inside the parser and would only puzzle whoever reads them.
    said = f": {err}" if isinstance(err, (tifffile.TiffFileError, ValueError)) else ""
    # Never the file's bytes (tifffile quotes a non-TIFF's first ones: a link to a system
    # file put "header=b'root'" into the logs and summary.json).
    said = re.sub(r"""\bb(['"]).*?\1""", "b'...'", said)
    return InputError(f"not a readable TIFF (corrupt or truncated?){said}", path)


def rows_of_channels(tif, page) -> bool:
    """Whether a TIFF is an (H, W, C) array written as it is (tifffile's ``imwrite`` of a
    channels-last frame or crop): H pages of W x C, C no more than a panel's channels. It is
    read as one image, channels first (:func:`ctcnet.io.images.read_tiff`), not refused for
    its pages."""
    return len(tif.pages) > MAX_CHANNELS_LAST >= int(page.imagewidth) and \
        len(tif.pages) * int(page.imagelength) <= MAX_PLANE_PIXELS


def image_shape(path: str | Path) -> tuple[int, int] | None:
    """An image file's (height, width) from its header (a TIFF's first page; a PNG or JPEG
    turned as its EXIF orientation says)."""
    path = Path(path)
    try:
        if path.suffix.lower() in RASTER_SUFFIXES:
            from PIL import Image

            with Image.open(path) as im:
                width, height = im.size
                turned = im.getexif().get(ORIENTATION, 1) in (5, 6, 7, 8)
            return (width, height) if turned else (height, width)
        import tifffile

        with TiffDamage(), tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if rows_of_channels(tif, page):  # (H, W, C) written as it is: H pages of W x C
                return len(tif.pages), int(page.imagelength)
            return int(page.imagelength), int(page.imagewidth)
    except (ImportError, MemoryError):  # this install or this machine, not the file
        raise
    except Exception:  # readers raise many types on damaged files: said when it is read
        return None


def tiff_planes(path: str | Path) -> int | None:
    """A TIFF's channels as :func:`ctcnet.io.images.read_tiff` reads them: a page each, an
    (H, W, C) array's C, or an interleaved page's samples."""
    import tifffile

    try:
        with TiffDamage() as damage, tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if rows_of_channels(tif, page):
                return int(page.imagewidth)
            # (a reduced-resolution page, a thumbnail beside the planes, is no plane: the
            # frame's read refuses it by name)
            kept = [p for p in tif.pages if not getattr(p, "is_reduced", False)]
            pages = len(kept)
            if not tif.is_ome and not _one_stack_of_planes(tif, kept):
                return None
            # A file cut short holds the pages before the cut (a 5-channel frame read as 1
            # plane, refusing its whole cartridge for panel.json's): its read says why.
            if damage.messages:
                return None
            return int(page.samplesperpixel) if page.samplesperpixel > 1 else pages
    except (ImportError, MemoryError):  # this install or this machine, not the file
        raise
    except Exception:  # readers raise many types on damaged files: said when it is read
        return None


def _one_stack_of_planes(tif, pages) -> bool:
    """Whether a plain multipage TIFF's ``pages`` are one stack of channel planes: not pages
    of several sizes, nor an ImageJ hyperstack of channels by slices or time points (a
    thumbnail read as a sixth plane refused its cartridge as missing a channel in
    panel.json; the frame's read refuses such a file with what it holds). (Its series say
    nothing: a page written at a time is a series of its own.)"""
    stacked = (tif.imagej_metadata or {}) if tif.is_imagej else {}
    # (a stack of slices alone, Fiji's "Images to Stack", is read as the channels it holds)
    hyperstack = stacked.get("channels", 1) > 1 and any(
        stacked.get(k, 1) > 1 for k in ("slices", "frames"))
    return len({(p.imagelength, p.imagewidth) for p in pages}) == 1 and not hyperstack
