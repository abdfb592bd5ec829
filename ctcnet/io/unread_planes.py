"""The planes of a scan that the model does not read, read beside its channels to be measured.

A scan may image more markers than a model reads: a therapy marker (HER2, PD-L1), an EMT
marker (vimentin), a FITC plane left empty. :meth:`~ctcnet.io.scan.Cartridge.conform` keeps the
model's channels; these planes are read in the same pass (a CellSearch frame's file is decoded
whole anyway; a channel file is one more file), so that detection can give each event's mean
over its object in them too (``mean_<name>`` in the events table) without their taking any part
in finding events, cutting crops or calling them. They are measurements, not inputs: a plane
of another size than the frame's, or one that will not read, is left out of that frame's
measurements (its events' ``mean_<name>`` empty), never the frame's reason to be skipped.
"""

from __future__ import annotations

import logging

import numpy as np

from ctcnet.errors import InputError
from ctcnet.io.scan import Cartridge, read_frame_and
from ctcnet.io.sources import FrameRef

log = logging.getLogger(__name__)


def unread_planes(cartridge: Cartridge) -> list[tuple[int, str]]:
    """(index in the files' panel, name) of each plane ``cartridge`` (conformed to a model)
    holds but does not read, in the files' order; [] before :meth:`Cartridge.conform` or
    where it keeps every plane."""
    if cartridge.file_panel is None or cartridge.channels is None:
        return []
    kept = set(cartridge.channels)
    return [(i, name) for i, name in enumerate(cartridge.file_panel.names) if i not in kept]


def ck_plane(cartridge: Cartridge) -> str | None:
    """The name of the scan's CK plane (the model reads it): a CTC's CK leaks into an unread
    plane as into any other, so its mean is read beside theirs; None without one."""
    index = cartridge.panel.index_of_role("epithelial")
    return None if index is None else cartridge.panel.names[index]


def read_with_unread(cartridge: Cartridge, frame: FrameRef
                     ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:meth:`Cartridge.read` of ``frame``, and its unread planes by name ({} where there are
    none): each as the file holds it, of the frame's size (a plane of another size is left
    out, with a debug line)."""
    planes = unread_planes(cartridge)
    if not planes:
        return cartridge.read(frame), {}
    try:
        pixels, others = read_frame_and(frame, cartridge.file_panel, cartridge.channels,
                                        [i for i, _ in planes])
    except InputError as err:
        # Read with the model's channels, where a file of one of these planes would not read
        # (cut, of another size, misnamed): the frame read alone decides, and the planes are
        # left out of its measurements (a damaged therapy-marker file had the frame skipped,
        # its cells and its blood with it).
        pixels = cartridge.read(frame)
        log.warning("%s %s: %s not read (%s): not measured on this frame",
                    cartridge.sample_id, frame.stem, ", ".join(name for _, name in planes),
                    err)
        return pixels, {}
    measured = {}
    for (_, name), plane in zip(planes, others):
        if np.shape(plane) == pixels.shape[1:]:
            measured[name] = plane
        else:
            log.debug("%s %s: plane %s is %s, the frame %s: not measured", cartridge.sample_id,
                      frame.stem, name, np.shape(plane), pixels.shape[1:])
    return pixels, measured
