"""A file's stored channel names held to its panel: an OME file's names (the writer's own
record of each plane) take its planes in the panel's order, a plane it names by no marker (a
dye, a filter, nothing) the channel the others leave; labels a viewer or scanner wrote
(ImageJ ``Labels``, TIFF ``PageName``s) are compared where they name well-known markers. The
names are what :mod:`ctcnet.io.images` reads from a file; frames (:mod:`ctcnet.io.sources.named`)
and crops (:mod:`ctcnet.detect.crop_dataset`) alike are held to them here."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctcnet.io.panel import DYE_WORD, PanelMismatchError, check_channel_order, marker_role

log = logging.getLogger(__name__)

# Names readers give channels the file does not name: "Channel:0:1" (OME), "C1", "Ch2".
_GENERIC_CHANNEL = re.compile(r"^(channel[:_ ]?[\d:]*|c(h)?\d+|)$", re.IGNORECASE)


def no_marker_name(name) -> bool:
    """Whether one stored channel name names no marker: made up by a reader
    (``Channel:0:1``), a dye or a wavelength alone (``PE``, ``FITC``, ``488``: a microscope's
    filter), or empty. panel.json names such a channel."""
    name = str(name).strip()
    return bool(_GENERIC_CHANNEL.match(name) or DYE_WORD.match(name))


def names_no_marker(names: Sequence[str]) -> bool:
    """Whether none of a file's channel names names a marker (:func:`no_marker_name`): then
    panel.json names every channel, in the file's order."""
    return all(no_marker_name(n) for n in names)


def fill_unnamed(planes: list[int | None], unnamed: Sequence[int],
                 num_found: int) -> list[int | None]:
    """``planes`` (for each panel channel, the file's plane that names it, or None; the file
    has ``num_found``) with the planes that name no marker (``unnamed``) given the channels
    the named ones leave, where that can be told: each its own place where every named plane
    sits at its channel's (the file is in the panel's order), else the one channel left to
    the one such plane. Otherwise as they were, for the caller to refuse: an unnamed plane
    taken by position against marker names in another order read CK as CD45."""
    missing = [j for j, p in enumerate(planes) if p is None]
    filled = list(planes)
    if not unnamed or not missing:
        return filled
    if len(planes) == num_found and all(p in (None, j) for j, p in enumerate(planes)):
        for i in unnamed:
            filled[i] = i
    elif len(unnamed) == 1 and len(missing) == 1:
        filled[missing[0]] = unnamed[0]
    return filled


def check_channel_names(found: Sequence[str] | None, expected: Sequence[str], path) -> None:
    """Refuse a file whose stored channel names differ from the panel's, by name and order;
    planes labelled by a viewer or a scanner (:class:`StoredNames`, not strict) where both
    name a well-known marker and not the same: panel.json written in a brochure's order,
    not the file's, counted 0 of a cartridge's 19 CTCs, its pages labelled all along."""
    if found is None:
        return
    if getattr(found, "strict", True):
        if len(found) == len(expected) and any(no_marker_name(n) for n in found):
            _check_partly_named(found, expected, path)
            return
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


def _check_partly_named(found: Sequence[str], expected: Sequence[str], path) -> None:
    """Refuse a file whose OME channel names leave planes unnamed (a dye, a filter, nothing)
    where the others do not tell which of the panel's channels those hold
    (:func:`planes_by_name`)."""
    if planes_by_name(found, expected) == list(range(len(expected))):
        return
    unnamed = ", ".join(repr(str(n)) for n in found if no_marker_name(n))
    raise PanelMismatchError(
        f"channel mismatch: the file's OME channel names {list(found)}: {unnamed} name no "
        "marker (a dye, a filter or nothing), and the others do not tell which of the "
        f"panel's channels {list(expected)} those planes hold (named in another order, or not "
        "all of the panel's): name every plane's marker in the file, or put panel.json's "
        "channels in the file's order", path)


def check_channel_file_name(found: Sequence[str] | None, expected: str, path) -> None:
    """Refuse a per-channel file (``r00c00_c1.tif``) whose one stored channel name is a
    well-known marker of another role than the panel's channel its file name places it as:
    CD45's plane stored as ``_c1``, named "CD45" where panel.json's channel 1 is CK, was
    read as CK and called 182 CTCs on a sample of 1. Names of no well-known marker pass (a
    dye, a scanner's own)."""
    if not found or len(found) != 1:
        return
    stored = str(found[0])
    role, wanted = marker_role(stored), marker_role(str(expected))
    if stored.upper() == str(expected).upper() or "unknown" in (role, wanted) or role == wanted:
        return
    if re.search(r"_c\d+$", Path(path).stem, re.IGNORECASE):  # numbered in panel.json's order
        raise PanelMismatchError(
            f"channel mismatch: the file names its channel {stored!r}, but a channel file of "
            f"its name holds panel.json's {expected!r} (files _c0, _c1, ... in panel.json's "
            "order): rename the channel files to the channels they hold, or put panel.json's "
            "channels in the files' order", path)
    raise PanelMismatchError(  # a file named for its marker (r00c00_CK.tif)
        f"channel mismatch: the file names its channel {stored!r}, but its file name says "
        f"{expected!r}: one of the two is wrong; rename the file to the channel it holds, or "
        "export it again", path)


def planes_by_name(found: Sequence[str], expected: Sequence[str]) -> list[int] | None:
    """For each of the panel's channels (``expected``), the file's plane that names it: by its
    own name (case aside) first, else the one plane left whose well-known marker is its
    marker's alone (Hoechst for DAPI; never CD15 for CD66b, two of one role); planes that
    name no marker (``FITC``, ``Channel:0:4``, blank) take the channels the others leave where
    that can be told (:func:`fill_unnamed`). None where a channel is named by no plane, or by
    two."""
    if len(found) != len(expected):
        return None
    upper = [str(n).upper() for n in found]
    planes: list[int | None] = [upper.index(str(e).upper()) if upper.count(str(e).upper()) == 1
                                else None for e in expected]
    unnamed = [i for i in range(len(found)) if i not in planes and no_marker_name(found[i])]
    left = [i for i in range(len(found)) if i not in planes and i not in unnamed]
    for j, name in enumerate(expected):
        role = marker_role(str(name))
        if planes[j] is not None or role == "unknown":
            continue
        alike = [i for i in left if marker_role(str(found[i])) == role]
        rivals = [e for k, e in enumerate(expected) if planes[k] is None
                  and marker_role(str(e)) == role]
        if len(alike) == 1 and len(rivals) == 1:
            planes[j] = alike[0]
            left.remove(alike[0])
    planes = fill_unnamed(planes, unnamed, len(found))
    return None if None in planes or len(set(planes)) != len(planes) else planes


_ORDERS_SAID: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()


def say_other_order(read: Sequence[str], stated: Sequence[str], where) -> None:
    """Say, once per pair of orders, that files name panel.json's channels in another order
    and that their names are read: where they are right that is as it should be; where the
    software that wrote them swapped the labels every call is wrong, so a person should know
    which of the two was believed."""
    key = (tuple(read), tuple(stated))
    if key[0] != key[1] and key not in _ORDERS_SAID:
        _ORDERS_SAID.add(key)
        log.warning("%s: the file names its channels in another order (%s) than panel.json "
                    "(%s); the file's names are read, panel.json's order is not used",
                    where, ", ".join(read), ", ".join(stated))


def _names_stored(found) -> bool:
    """Whether ``found`` are a file's own channel names (not none, nor a viewer's labels,
    which are never reordered by)."""
    return found is not None and getattr(found, "strict", True) and not isinstance(found, str)


def _reordering(found, expected: Sequence[str]) -> list[int] | None:
    """The file's plane of each panel channel where its stored names order them otherwise
    than the panel (:func:`planes_by_name`), else None."""
    if not _names_stored(found):
        return None
    planes = planes_by_name(found, expected)
    return planes if planes is not None and planes != list(range(len(planes))) else None


def stored_order(found, expected: Sequence[str]) -> str:
    """How a file's stored channel names (``found``, as :func:`in_panel_order` takes them)
    order the panel's channels (``expected``): ``unnamed`` (none stored, or a viewer's labels
    that are never reordered by: read in panel.json's order), ``another order`` or ``panel
    order``."""
    if not _names_stored(found):
        return "unnamed"
    return "another order" if _reordering(found, expected) is not None else "panel order"


def in_panel_order(arr: np.ndarray, found: Sequence[str] | None, expected: Sequence[str],
                   path) -> np.ndarray:
    """The planes of a file read in the panel's order: an OME file that names the panel's
    channels in another order has its planes taken by name (:func:`planes_by_name`), as a
    container's are (its names are the writer's own record of each plane; a frame of a
    cartridge exported in another order was skipped), said once per pair of orders; a plane
    named by no marker takes the channel the others leave (:func:`fill_unnamed`). Any
    other disagreement is refused as :func:`check_channel_names` says; viewers' labels are
    never reordered by."""
    planes = _reordering(found, expected)
    if planes is not None:
        # (the panel's names in the file's order: Hoechst read as DAPI)
        say_other_order([str(expected[planes.index(i)]) for i in range(len(planes))],
                        [str(e) for e in expected], path)
        return arr[planes]
    check_channel_names(found, expected, path)
    return arr
