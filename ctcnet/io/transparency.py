"""A raster image with transparency read as its signal: laid over black."""

from __future__ import annotations


def over_black(im):
    """An image whose transparency varies laid over black, as its signal reads where it holds
    none: its colour under a transparent pixel (white, in a composite exported with a clear
    background) is no signal a viewer shows. One without transparency, or with one alpha
    throughout (an export's setting, not a shape), is returned as it is: its alpha dropped,
    as a TIFF's is."""
    from PIL import Image

    if im.mode in ("P", "PA") and (im.mode == "PA" or "transparency" in im.info):
        im = im.convert("RGBA")
    if im.mode not in ("RGBA", "LA"):
        return im
    low, high = im.getchannel("A").getextrema()
    if low == high:
        return im
    laid = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im.convert("RGBA"))
    return laid.convert("L") if im.mode == "LA" else laid
