"""A file's stored channel names held to its panel: an OME file's names (the writer's own
record of each plane) take its planes in the panel's order; labels a viewer or scanner wrote
(ImageJ ``Labels``, TIFF ``PageName``s) are compared where they name well-known markers. Read
by :mod:`ctcnet.io.images` (which finds the names) for frames and crops alike."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from ctcnet.io.panel import PanelMismatchError, check_channel_order, marker_key, marker_role

log = logging.getLogger(__name__)


def check_channel_names(found: Sequence[str] | None, expected: Sequence[str], path) -> None:
    """Refuse a file whose stored channel names differ from the panel's, by name and order;
    planes labelled by a viewer or a scanner (:class:`StoredNames`, not strict) where both
    name a well-known marker and not the same: panel.json written in a brochure's order,
    not the file's, counted 0 of a cartridge's 19 CTCs, its pages labelled all along."""
    if found is None:
        return
    if getattr(found, "strict", True):
        check_channel_order(expected, found, "file", path, expected_by="the panel")
        return
    roles = [(marker_role(f), marker_role(e)) for f, e in zip(found, expected)]
    if len(found) == len(expected) and any("unknown" not in pair and pair[0] != pair[1]
                                           for pair in roles):
        raise PanelMismatchError(
            f"channel mismatch: the file labels its planes {list(found)} (ImageJ labels or "
            f"TIFF page names) but the panel names them {list(expected)}: put panel.json's "
            "channels in the file's order where every file labels them so; where this file "
            "alone does, export it again in the others' order", path)


def in_panel_order(arr: np.ndarray, found: Sequence[str] | None, expected: Sequence[str],
                   path) -> np.ndarray:
    """The planes of a file read in the panel's order: an OME file that names the panel's
    channels in another order has its planes taken by name, as a container's are (its names
    are the writer's own record of each plane; a frame of a cartridge exported in another
    order refused the whole cartridge). Any other disagreement is refused as
    :func:`check_channel_names` says; viewers' labels are never reordered by."""
    if found is not None and getattr(found, "strict", True) and len(found) == len(expected) \
            and not isinstance(found, str):
        mine = [marker_key(n) for n in expected]
        theirs = [marker_key(n) for n in found]
        if mine != theirs and sorted(mine) == sorted(theirs) and len(set(mine)) == len(mine):
            log.info("%s stores its channels as %s: read by name in the panel's order %s",
                     path, list(found), list(expected))
            return arr[[theirs.index(key) for key in mine]]
    check_channel_names(found, expected, path)
    return arr
