"""What a microscopy container's metadata say, made into ctcnet's terms: a scene's channel names
(None where the reader made them up), its pixel size in um (OME lengths in their stated unit;
square pixels only), the value range of its pixel type, and its panel, the metadata's words
first and ``panel.json``'s for what they lack (:func:`metadata_panel`). Pure functions of the
values a reader gives (:mod:`ctcnet.io.sources.microscopy` reads them through bioio), so they
are tested without files.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ctcnet.errors import InputError
from ctcnet.io.image_headers import UM_PER_UNIT
from ctcnet.io.panel import Channel, Panel
from ctcnet.io.sources.base import same_pixel_size
from ctcnet.io.stored_names import (
    fill_unnamed,
    names_no_marker,
    no_marker_name,
    say_other_order,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class SceneInfo:
    """What a container's metadata say about one scene, as ctcnet needs it."""

    name: str
    channel_names: tuple[str, ...] | None  # None: the file does not name its channels
    pixel_size_um: float | None
    shape: tuple[int, int]  # (height, width)
    num_channels: int
    dtype: np.dtype
    planes: int = 1  # T x Z: ctcnet reads one plane per channel
    significant_bits: int | None = None


def metadata_channel_names(names) -> tuple[str, ...] | None:
    """Channel names as a file's metadata give them, or None where none names a marker: made
    up by the reader (``Channel:0:1``), a dye or a wavelength alone (``PE``, ``FITC``,
    ``488``: a microscope's filter), or empty; then panel.json names the channels. Where some
    do, panel.json names the others (:func:`metadata_panel`)."""
    if names is None:
        return None
    names = tuple(str(n).strip() for n in names)
    return None if names_no_marker(names) else names


# OME-Zarr (NGFF) names its units in words, OME in symbols (UM_PER_UNIT's).
NGFF_UNITS = {"picometer": "pm", "angstrom": "Å", "nanometer": "nm", "micrometer": "µm",
              "millimeter": "mm", "centimeter": "cm", "meter": "m", "inch": "in"}


def in_um(value, unit) -> float | None:
    """An OME or OME-Zarr length in um (None: not stated; no unit: um); a unit no pixel is
    measured in is refused."""
    if value is None:
        return None
    name = str(getattr(unit, "value", unit) or "µm")
    name = NGFF_UNITS.get(name.lower(), name)
    if name not in UM_PER_UNIT:
        raise InputError(f"pixel size stated in {name!r}, not a unit of length ctcnet reads "
                         f"({', '.join(UM_PER_UNIT)})")
    return float(value) * UM_PER_UNIT[name]


def metadata_pixel_size(sizes, path=None) -> float | None:
    """The pixel size in um from a reader's physical pixel sizes (Z, Y, X), or None when the
    metadata give none (missing or zero). Pixels that are not square are refused: frames are
    read as square pixels."""
    x, y = getattr(sizes, "X", None), getattr(sizes, "Y", None)
    values = [float(v) for v in (x, y) if v is not None and float(v) > 0 and math.isfinite(v)]
    if not values:
        return None
    if len(values) == 2 and not same_pixel_size(values[0], values[1]):
        raise InputError(f"pixels are not square ({values[0]:g} x {values[1]:g} um): "
                         "resample the scan to square pixels", path)
    return values[0]


def dtype_range(dtype: np.dtype, significant_bits: int | None = None) -> tuple[float, float]:
    """The value range a channel of this pixel type can hold (its significant bits where the
    metadata state them: 12-bit data in 16-bit pixels)."""
    dtype = np.dtype(dtype)
    if dtype.kind != "u":
        raise InputError(f"{dtype} pixels: panel.json must give each channel's value_range")
    bits = dtype.itemsize * 8
    if significant_bits and 1 <= significant_bits < bits:
        bits = significant_bits
    return 0.0, float(2 ** bits - 1)


def metadata_panel(scene: SceneInfo, stated: Panel | None, where: str) -> Panel:
    """The panel of one scene: the metadata's channel names and pixel size first; panel.json
    (``stated``) names the channels where the metadata do not (by position; a channel the
    metadata name by no marker where others are named: :func:`_named_from_panel`), gives the pixel
    size where the metadata do not, and gives each channel it names (matched by name or a
    well-known alias) its name, value range (one it does not state: the file's significant
    bits, where recorded: :func:`_value_range`) and normalisation."""
    names = _scene_names(scene, stated, where)
    pixel_size = _scene_pixel_size(scene, stated, where)
    channels = []
    for name in names:
        match = stated.index_of(name) if stated is not None else None
        if match is None:
            channels.append(Channel(name, dtype_range(scene.dtype, scene.significant_bits)))
        else:  # named as panel.json names it: a file's alias (PanCK-PE) is the lab's CK, and
            # the events' columns (mean_CK) one name whatever container the frames came in
            channels.append(Channel(stated.channels[match].name,
                                    _value_range(stated.channels[match], scene),
                                    dict(stated.channels[match].normalisation)))
    panel = Panel(tuple(channels), pixel_size_um=float(pixel_size),
                  name=stated.name if stated is not None else "metadata")
    if stated is not None:
        unused = [c.name for c in stated.channels if panel.index_of(c.name) is None]
        if unused:
            log.warning("%s: panel.json names %s, which the file's channels %s do not hold",
                        where, unused, list(names))
        _warn_other_order(panel, stated, where)
    return panel


def _value_range(channel: Channel, scene: SceneInfo) -> tuple[float, float]:
    """A panel.json channel's value range where it states one (or a bit depth), else the
    file's significant bits' where it records fewer than its pixel type holds (16 of 16 say
    nothing of the camera): a 14-bit OME-TIFF named by a panel.json stating no range read as
    0-4095, and every frame was skipped as out of range."""
    dtype, bits = np.dtype(scene.dtype), scene.significant_bits
    if channel.range_stated or dtype.kind != "u" or not bits or bits >= dtype.itemsize * 8:
        return channel.value_range
    return dtype_range(dtype, bits)


def _warn_other_order(panel: Panel, stated: Panel, where: str) -> None:
    """Say (once per pair of orders, :func:`.stored_names.say_other_order`) that the file
    names the channels panel.json names in another order: the metadata's is read."""
    order = tuple(c.name for c in stated.channels if panel.index_of(c.name) is not None)
    read = tuple(stated.channels[stated.index_of(c.name)].name for c in panel.channels
                 if stated.index_of(c.name) is not None)
    say_other_order(read, order, where)


def _scene_names(scene: SceneInfo, stated: Panel | None, where: str) -> tuple[str, ...]:
    """The metadata's channel names, else panel.json's (as many as the file has channels)."""
    names = scene.channel_names
    if names is not None:
        if len(names) != scene.num_channels:
            raise InputError(f"{where}: metadata name {len(names)} channels, the pixels hold "
                             f"{scene.num_channels}")
        if not any(no_marker_name(n) for n in names):
            return names
        if stated is not None:
            return _named_from_panel(names, stated, where)
    if stated is None:
        raise InputError(f"{where}: the file does not name its channels' markers (no names, "
                         "made-up ones, or a dye or filter alone: PE, FITC, 488) and there is "
                         "no panel.json to name them: write one naming them in the file's "
                         "order")
    if stated.num_channels != scene.num_channels:
        raise InputError(f"{where}: {scene.num_channels} unnamed channels, panel.json "
                         f"names {stated.num_channels} ({stated.names})")
    return tuple(stated.names)


def _named_from_panel(names: tuple[str, ...], stated: Panel, where: str) -> tuple[str, ...]:
    """The metadata's names, each that names no marker (a dye, a filter, a reader's, blank)
    replaced by the panel.json channel the marker names leave it (:func:`fill_unnamed`);
    refused where that cannot be told. Dropping every name for one such (and reading
    panel.json's by position) read a file's CD45 as CK: 0 of 16 CTCs, 18 leukocytes called
    CTCs."""
    upper = [n.upper() for n in stated.names]
    planes: list[int | None] = [None] * stated.num_channels
    unnamed = []
    for i, name in enumerate(names):
        if no_marker_name(name):  # (matched by its own name alone: panel.json's "FITC")
            j = upper.index(name.upper()) if name.upper() in upper else None
        else:
            j = stated.index_of(name)
        if j is not None and planes[j] is None:
            planes[j] = i
        elif no_marker_name(name):
            unnamed.append(i)
    fills = {i: stated.names[j] for j, i in enumerate(fill_unnamed(planes, unnamed, len(names)))
             if i in unnamed}
    left = [names[i] for i in unnamed if i not in fills]
    if left:
        raise InputError(f"{where}: the file names its channels {list(names)}: "
                         f"{', '.join(map(repr, left))} name no marker (a dye, a filter or "
                         "nothing), and the others do not tell which of panel.json's channels "
                         f"({', '.join(stated.names)}) those hold (named in another order, or "
                         "not all of panel.json's): name every channel's marker in the file, "
                         "or put panel.json's channels in the file's order")
    return tuple(fills.get(i, name) for i, name in enumerate(names))


def _scene_pixel_size(scene: SceneInfo, stated: Panel | None, where: str) -> float:
    """The metadata's pixel size, else panel.json's; stated by both, they must agree (one of
    them is wrong, and a wrong pixel size sizes every event wrongly)."""
    pixel_size = scene.pixel_size_um
    if pixel_size is None:
        if stated is None:
            raise InputError(f"{where}: the file does not state its pixel size and there is no "
                             "panel.json to state it")
        return stated.pixel_size_um
    if stated is not None and not same_pixel_size(pixel_size, stated.pixel_size_um):
        raise InputError(f"{where}: the metadata say {pixel_size:g} um per pixel, panel.json "
                         f"{stated.pixel_size_um:g}: correct one of them")
    return pixel_size
