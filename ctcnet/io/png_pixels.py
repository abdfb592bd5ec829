"""What a PNG's pixels read as: transparency laid over black (a clear background is no
signal), and a 16-bit colour PNG as the 8-bit display levels it holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctcnet.errors import InputError


def over_black(im):
    """An image whose transparency varies laid over black, as its signal reads where it holds
    none: its colour under a transparent pixel (white, in a composite exported with a clear
    background) is no signal a viewer shows. One without transparency, or with one alpha
    throughout (an export's setting, not a shape), is returned as it is: its alpha dropped,
    as a TIFF's is."""
    from PIL import Image

    if im.mode in ("P", "PA", "RGB") and (im.mode == "PA" or "transparency" in im.info):
        im = im.convert("RGBA")  # (a colour key, tRNS: a white background marked clear)
    elif im.mode == "L" and "transparency" in im.info:
        im = im.convert("LA")
    if im.mode not in ("RGBA", "LA"):
        return im
    low, high = im.getchannel("A").getextrema()
    if low == high:
        return im
    laid = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im.convert("RGBA"))
    return laid.convert("L") if im.mode == "LA" else laid


def sixteen_bit_png(path: Path) -> np.ndarray:
    """A 16-bit PNG's pixels that Pillow would cut to their high bytes: a grey + alpha one as
    (H, W) 16-bit grey; a colour one as (H, W, 3) 8-bit levels, its values being 8-bit levels
    stretched by 257 (what saving an 8-bit composite as 16-bit gives), each laid over black
    where its alpha varies (:func:`over_black`). Other 16-bit colour values are counts, which a
    composite's display planes are not (as a 16-bit colour TIFF is refused)."""
    import imagecodecs

    arr = imagecodecs.png_decode(path.read_bytes())
    alpha = arr[..., -1] if arr.ndim == 3 and arr.shape[-1] in (2, 4) else None
    shown = alpha is not None and alpha.min() != alpha.max()
    if arr.ndim == 3 and arr.shape[-1] == 2:  # grey + alpha: the grey plane, as 16-bit grey
        grey = arr[..., 0]
        return np.rint(grey * (alpha / 65535.0)).astype(grey.dtype) if shown else grey
    arr = arr[..., :3]
    if (arr % 257).any():
        raise InputError("a 16-bit colour PNG whose levels are not 8-bit display levels "
                         "stretched (x257): a composite's planes are display levels; give "
                         "16-bit counts as a TIFF, one plane per channel", path)
    levels = (arr // 257).astype(np.uint8)
    return np.rint(levels * (alpha[..., None] / 65535.0)).astype(np.uint8) if shown else levels
