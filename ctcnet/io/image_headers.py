"""What an image file's header says before its pixels are read: a frame's size and a TIFF's
channels, as :mod:`ctcnet.io.images` will read them.

Scan checks (a frame of another size, a panel naming another number of channels) ask these
of every frame without decoding it. Each answers None where the header cannot be read: the
file's own read then says why, with its name.
"""

from __future__ import annotations

from pathlib import Path

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg")  # read with Pillow; everything else is TIFF
ORIENTATION = 0x0112  # the EXIF tag
MAX_PLANE_PIXELS = 2**26  # 8192 x 8192
# The most channels an image stored channels last ((H, W, C), as image software and tifffile
# write an array as it is) is read with: a panel's channels, never a plane's width.
MAX_CHANNELS_LAST = 6


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

        with tifffile.TiffFile(path) as tif:
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
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if rows_of_channels(tif, page):
                return int(page.imagewidth)
            return int(page.samplesperpixel) if page.samplesperpixel > 1 else len(tif.pages)
    except (ImportError, MemoryError):  # this install or this machine, not the file
        raise
    except Exception:  # readers raise many types on damaged files: said when it is read
        return None
