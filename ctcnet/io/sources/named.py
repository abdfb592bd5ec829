"""Frames named by their files: the position is in the name, ``r<row>c<col>`` or ``frame<k>``.

Three sources, asked in this order:

* ``multipage``: one TIFF per frame, one page per channel (CellSearch): ``r03c12.tif``;
* ``composite``: one colour image per frame (RGB PNG or JPEG; ``panel.json`` names the
  planes): ``r03c12.png``;
* ``channel-files``: one single-channel TIFF, PNG or JPEG per channel, numbered in
  ``panel.json``'s order (``r03c12_c0.tif``, ``r03c12_c1.tif``, ...) or named by their marker as
  many scanners export them (``r03c12_DAPI.tif``, ``r03c12_CD45-APC.tif``: matched to
  ``panel.json``'s channels by name or well-known alias, as a model's channels are).

``frame<k>`` frames take their row and column from the serpentine scan order given by
``cartridge.json``'s ``columns``. One position has one way to be read: two names for it (another
spelling, case or format), a whole-frame file beside per-channel files, or two files for one
channel are refused by name, since taking either would drop the other or count the frame twice.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ctcnet.errors import InputError, WholeFileError, check_regular_file
from ctcnet.io.image_headers import RASTER_SUFFIXES, image_shape
from ctcnet.io.images import (
    IMAGE_SUFFIXES,
    read_channel_file,
    read_image,
    remove_cellsearch_offset,
)
from ctcnet.io.panel import DYE_WORD, MARKER_ROLES, from_the_marker
from ctcnet.io.sources.base import (
    FramePart,
    FrameRef,
    FrameSource,
    frame_digest,
    refuse_other_ome_pixel_size,
    register,
    unreadable_reason,
)
from ctcnet.io.stored_names import in_panel_order

FRAME_RC = re.compile(r"^r(?P<row>\d+)c(?P<col>\d+)$", re.IGNORECASE)
FRAME_INDEX = re.compile(r"^frame[_-]?(?P<index>\d+)$", re.IGNORECASE)
_CHANNEL_FILE = re.compile(r"^(?P<stem>.+)_c(?P<channel>\d+)$", re.IGNORECASE)
# A frame's channel file named by its marker (r00c00_DAPI, frame3-CD45-APC): the frame stem,
# then a name that starts with a letter.
_MARKER_FILE = re.compile(r"^(?P<stem>r\d+c\d+|frame[_-]?\d+)[_-](?P<marker>[a-z][\w+ .()-]*)$",
                          re.IGNORECASE)
TIFF_SUFFIXES = tuple(s for s in IMAGE_SUFFIXES if s not in RASTER_SUFFIXES)


def is_frame_stem(stem: str) -> bool:
    """Whether a name (without suffix) names a frame position."""
    return bool(FRAME_RC.match(stem) or FRAME_INDEX.match(stem))


# Dashes and spaces a word processor or a spreadsheet writes for "-" and " " (en and em dash,
# Unicode hyphens, the minus sign; no-break and thin spaces): r00c00_CK–PE.tif was no
# channel's file, and every frame was skipped as missing its CK.
_TYPESET = str.maketrans({**dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
                          **dict.fromkeys("\u00a0\u2007\u2009\u202f", " ")})


def frame_stem(path: Path) -> tuple[str | None, int | str | None]:
    """(frame stem, channel) of a file name: the channel's index (``_c<k>``), its marker's
    name as written (``_DAPI``: matched to panel.json's channels once the panel is known,
    :func:`resolve_marker_files`; typeset dashes and spaces read as plain ones) or None (a
    whole frame); (None, None) if not a frame."""
    stem, channel = path.stem.translate(_TYPESET), None
    m = _CHANNEL_FILE.match(stem)
    if m and is_frame_stem(m["stem"]):
        return m["stem"], int(m["channel"])
    m = None if stem.lower().endswith(".ome") else _MARKER_FILE.match(stem)  # an OME-TIFF's
    if m:
        return m["stem"], m["marker"]
    if is_frame_stem(stem):
        return stem, channel
    return None, None


# Words after a marker's name that name its dye or wavelength (CD45-APC, CK_PE, Vimentin-AF488,
# PE-Cy7, Hoechst 33342, DAPI_405; panel.DYE_WORD), or before it a dye, a species or "anti"
# (PE-CK, anti-human CD45): read past. Any other word (CK_preview, CK_mask) makes the file no
# channel's.


def _marker_words(name: str) -> list[str]:
    """A marker's name as words, upper case: a file's ``-``, ``_``, space or ``.`` and a
    panel name's ``/`` or brackets (``HER2/neu``, which no file name can hold; ``HER2
    (FITC)``) all part them alike."""
    return [w.upper() for w in re.split(r"[-_ ./()]+", name.translate(_TYPESET).strip()) if w]


def _without_dye(words: list[str]) -> str:
    """A marker's words with its dye or wavelength words read past (and the dye, species or
    "anti" before it), joined by ``-``."""
    words = list(words)
    while len(words) > 1 and DYE_WORD.match(words[-1]):
        words.pop()
    return "-".join(from_the_marker(words))


def marker_channel(marker: str, panel) -> int | None:
    """The channel of ``panel`` a file's marker name is: the one channel named so, case and
    separators aside (``HER2-FITC`` for panel.json's ``HER2-FITC``, ``HER2-neu`` for
    ``HER2/neu``); else the one channel of the same name with each one's dye or wavelength
    words read past (``CD45`` for ``CD45-APC``, ``HER2-FITC`` for ``HER2``); else the one
    channel whose name starts with a one-word marker (``HER2`` for ``HER2/neu``) or is
    stained with a one-word dye (``FITC`` for ``HER2-FITC``); else the one channel whose role
    a well-known name of it has (Hoechst for DAPI, pan-CK for CK); None where it is none of
    these (``CK_preview``)."""
    words = _marker_words(marker)
    names = [_marker_words(n) for n in panel.names]
    # Whole name; marker without dyes; the marker alone for a name of more words (HER2 for
    # HER2/neu); a dye alone for the one channel stained with it (FITC for HER2-FITC).
    for same in (lambda n: n == words, lambda n: _without_dye(n) == _without_dye(words),
                 lambda n: len(words) == 1 and n[0] == words[0],
                 lambda n: len(words) == 1 and DYE_WORD.match(words[0]) and words[0] in n[1:]):
        found = [i for i, n in enumerate(names) if same(n)]
        if len(found) == 1:
            return found[0]
        if found:  # two channels read alike (CK-PE, CK-FITC by "CK"): none of them
            return None
    name = _without_dye(words)
    # Its role by the whole name only: marker_role's first word would read CK_preview as CK.
    return panel.index_of(name, MARKER_ROLES.get(name) or MARKER_ROLES.get(name.replace("-", ""))
                          or "unknown")


def resolve_marker_files(parts: list, panel) -> tuple[list, list[str]]:
    """``parts`` with each channel file named by its marker given the index of panel.json's
    channel it names (:func:`marker_channel`), and the names of those that name no channel of
    the panel (``r00c00_copy.tif``, ``r00c00_CK_preview.jpg``): not read."""
    from dataclasses import replace

    kept, unnamed = [], []
    for part in parts:
        if not isinstance(part.channel, str):
            kept.append(part)
            continue
        index = marker_channel(part.channel, panel)
        if index is None:
            unnamed.append(part.path.name)
        else:
            kept.append(replace(part, channel=index))
    return kept, unnamed


def serpentine_position(index: int, columns: int) -> tuple[int, int]:
    """Row and column of the index-th frame of a serpentine scan (even rows left to right)."""
    row, k = divmod(index, columns)
    return row, (k if row % 2 == 0 else columns - 1 - k)


def stem_position(stem: str, columns: int | None) -> tuple[tuple[int, int], int]:
    """((row, col), scan index) a frame stem names: ``r<row>c<col>`` (index -1: ordered by
    position) or ``frame<k>`` (placed by the serpentine order when ``columns`` is known)."""
    m = FRAME_RC.match(stem)
    if m:
        return (int(m["row"]), int(m["col"])), -1
    index = int(FRAME_INDEX.match(stem)["index"])
    return (serpentine_position(index, columns) if columns else (0, index)), index


class NamedFrames(FrameSource):
    """Frames whose file names give their position; the three named sources share how a
    folder's named files become frames (:meth:`frames` takes every named source's parts, so
    that a position claimed two ways is refused)."""

    suffixes: tuple[str, ...] = ()
    per_channel = False

    def claim(self, path: Path) -> FramePart | None:
        """A file of this source's suffixes named like a frame (or a frame's channel)."""
        if path.suffix.lower() not in self.suffixes:
            return None
        stem, channel = frame_stem(path)
        if stem is None or (channel is not None) != self.per_channel:
            return None
        # A non-regular frame is refused, never skipped: a skipped position would still count
        # its blood volume as read (and opening a FIFO to read it would hang).
        check_regular_file(path, "a frame")
        return FramePart(path, self.name, stem, channel)

    def frames(self, parts: list[FramePart], info: dict, panel) -> list[FrameRef]:
        """One frame per position; each position's files checked to name it one way."""
        columns = info.get("columns")
        root = parts[0].path.parent
        parts, unnamed = resolve_marker_files(parts, panel)
        # A scanner's own numbering (_ch00, _channel1) is no name ctcnet reads as one.
        hint = "; channel files numbered by the scanner are read as _c<k> (r00c00_c0.tif, " \
            "frame0_c0.tif: k from 0 in panel.json's order): rename _ch<k> or _channel<k> so" \
            if any(re.search(r"_(ch|channel)\d+\.\w+$", name, re.IGNORECASE)
                   for name in unnamed) else ""
        if unnamed and parts:  # a cartridge is opened several times a run: said once
            from ctcnet.io.cartridge_info import say_once  # it reads sources: not at import

            say_once(root, f"{len(unnamed)} file(s) named like a frame's channel file but naming "
                           f"no channel of panel.json ({', '.join(panel.names)}) by a marker "
                           "and its dye alone (a preview, a mask, an overview? or a channel "
                           "panel.json leaves out: list it there to read it), not read: "
                           f"{', '.join(unnamed[:5])}{hint}")
        if not parts:
            raise InputError("no frames found: the files named like a frame's channel name no "
                             f"channel of panel.json ({', '.join(panel.names)}), e.g. "
                             f"{unnamed[0]}{hint}", root)
        if not columns and any(FRAME_INDEX.match(part.stem) for part in parts):
            from ctcnet.io.cartridge_info import say_once

            say_once(root, "frames numbered frame<k> and no columns in cartridge.json: they "
                           "are placed in one row (r00c00, r00c01, ...), not on the scanner's "
                           "grid; state columns (frames per row) for the events' and the "
                           "review's positions to be the scanner's")
        by_position: dict[tuple[int, int], list[FramePart]] = {}
        indices = {}
        for part in parts:
            position, indices[part.stem] = stem_position(part.stem, columns)
            by_position.setdefault(position, []).append(part)
        for position, group in by_position.items():
            refuse_ambiguity(position, group, root)
        return [_frame_ref(position, group, indices[group[0].stem], panel)
                for position, group in by_position.items()]

    def read(self, frame: FrameRef, panel, keep: list[int]) -> list[np.ndarray]:
        """The whole file is decoded (one file holds every channel), its stored channel
        names (OME) read in the panel's order or checked against it."""
        path = frame.files[0]
        arr, names = read_image(path)
        if arr.shape[0] != panel.num_channels:
            # Fewer pages than channels is most often a file cut short or still being written.
            # (more pages than channels: a whole file, not one still being written)
            error = InputError if arr.shape[0] < panel.num_channels else WholeFileError
            raise error(f"frame has {arr.shape[0]} channels, the panel {panel.names} has "
                        f"{panel.num_channels}" + (
                            " (where every frame reads so, panel.json lists channels "
                            "the files do not hold; one frame alone: a file cut short, "
                            "or still being written?)"
                            if arr.shape[0] < panel.num_channels else ""), path)
        held_to_stated_size([path], panel)
        arr = in_panel_order(arr, names, panel.names, path)
        return [remove_cellsearch_offset(arr[c], path) for c in keep]

    def shape(self, frame: FrameRef) -> tuple[int, int] | None:
        """The (height, width) of the frame's first file, from its header."""
        return image_shape(frame.files[0])


class MultipageTiff(NamedFrames):
    """One TIFF per frame, one page per channel (CellSearch's layout)."""

    name = "multipage"
    suffixes = TIFF_SUFFIXES

    def panel(self, parts: list[FramePart], stated):
        """panel.json's panel; a pixel size the first frame's OME metadata state must agree
        with it (as a container's must: one of the two is wrong, and a wrong pixel size sizes
        every event wrongly)."""
        panel = super().panel(parts, stated)
        held_to_stated_size([parts[0].path], panel)
        return panel


class CompositeImage(NamedFrames):
    """One colour PNG or JPEG per frame, one marker per colour plane."""

    name = "composite"
    suffixes = RASTER_SUFFIXES


class ChannelFiles(NamedFrames):
    """One single-channel TIFF, PNG or JPEG per channel: ``r03c12_c0.png``, ..."""

    name = "channel-files"
    suffixes = IMAGE_SUFFIXES
    per_channel = True

    def panel(self, parts: list[FramePart], stated):
        """panel.json's panel; a pixel size the first TIFF's OME metadata state must agree
        with it, as a multipage frame's must (channel files of 0.32 um were read at 0.64)."""
        panel = super().panel(parts, stated)
        held_to_stated_size([p.path for p in parts], panel)
        return panel

    def read(self, frame: FrameRef, panel, keep: list[int]) -> list[np.ndarray | None]:
        """The kept channels' files only: files of channels not kept are never read. A
        channel whose file the frame lacks (:attr:`FrameRef.missing`) reads as None."""
        present = [c for c in range(panel.num_channels) if c not in frame.missing]
        files = dict(zip(present, frame.files))
        held_to_stated_size(frame.files, panel)  # (each frame's, as a multipage frame's)
        planes = [remove_cellsearch_offset(read_channel_file(files[c], panel.names[c]), files[c])
                  if c in files else None for c in keep]
        shapes = [p.shape for p in planes if p is not None]
        if len(set(shapes)) > 1:
            # The file of a size the others do not share is the one to look at.
            common = max(set(shapes), key=shapes.count)
            odd = [files[c].name for c, p in zip(keep, planes)
                   if p is not None and p.shape != common]
            raise InputError(f"channel files of frame {frame.stem} differ in size: "
                             f"{', '.join(odd)} {'is' if len(odd) == 1 else 'are'} not "
                             f"{common[0]} x {common[1]} as the others are "
                             f"({sorted(set(shapes))})", frame.files[0])
        return planes


def held_to_stated_size(files, panel) -> None:
    """The pixel size the first TIFF of ``files`` states in its OME metadata held to
    panel.json's (:func:`refuse_other_ome_pixel_size`), each frame's and not the first's
    alone: a frame of 0.32 um among 0.64 um ones was read at 0.64, unsaid. Its header read
    once more: a tenth of a frame's read."""
    tiff = next((Path(f) for f in files if Path(f).suffix.lower() in TIFF_SUFFIXES), None)
    if tiff is not None:
        refuse_other_ome_pixel_size(tiff, panel.pixel_size_um)


def refuse_ambiguity(position: tuple[int, int], files: list[FramePart], root: Path) -> None:
    """One frame position, one way to read it. Two names for the position (``r00c01`` and
    ``r0c1``, ``r00c00`` and ``frame0``, ``R00C00``), two whole-frame files (``r00c00.TIF``
    and ``r00c00.tif``, ``.tif`` and ``.png``), whole-frame and per-channel files, or two files
    for one channel: taking either would drop the other (or count the frame twice)."""
    first = files[0]
    row, col = position
    where = f"frame r{row:02d}c{col:02d} (row {row}, column {col})"
    other = next((f for f in files if f.stem != first.stem), None)
    if other is not None:
        raise InputError(f"{first.path.name} and {other.path.name} both name {where}; keep one",
                         root)
    whole = [f for f in files if f.channel is None]
    per_channel = [f for f in files if f.channel is not None]
    if len(whole) > 1:
        raise InputError(f"{whole[0].path.name} and {whole[1].path.name} both name {where} "
                         "(the same name in another case or format); keep one", root)
    if whole and per_channel:
        raise InputError(f"{whole[0].path.name} and {per_channel[0].path.name} both name "
                         f"{where}: a whole-frame file and per-channel files; keep one layout",
                         root)
    seen: dict[int, FramePart] = {}
    for f in per_channel:
        twin = seen.setdefault(f.channel, f)
        if twin is not f:
            raise InputError(f"{twin.path.name} and {f.path.name} both name channel "
                             f"{f.channel} of {where}: a copy, or another channel's file "
                             "misnamed? Rename a misnamed file to the channel it holds, or "
                             "move the copy out", root)


def _frame_ref(position: tuple[int, int], files: list[FramePart], index: int,
               panel) -> FrameRef:
    """The frame of one position's files (already checked to be unambiguous). A per-channel
    frame that lacks a channel's file stays in the list with the reason, so the run skips it
    and its blood volume is not counted as read."""
    first = files[0]
    row, col = position
    problem, missing = None, []
    if first.channel is None:
        paths = (first.path,)
    else:
        chans = {f.channel: f.path for f in files}
        missing = [c for c in range(panel.num_channels) if c not in chans]
        if missing:
            extra = sorted(c for c in chans if c >= panel.num_channels)
            # Files numbered from _c1 lack _c0 and have one past the panel: say how they count.
            names = ", ".join(_channel_file_name(first.path, c, panel) for c in missing)
            problem = f"missing channel file(s) {missing} ({names})" + (
                f" and channel file(s) {extra} past the panel's {panel.num_channels} channels "
                f"(channel files are numbered from _c0 in panel.json's order)" if extra else "")
            paths = tuple(chans[c] for c in sorted(chans))
        else:
            paths = tuple(chans[c] for c in range(panel.num_channels))
    unreadable = unreadable_reason(paths)
    # An unreadable frame's digest is its own: it is skipped for its reason, not as a copy.
    digest = frame_digest(paths) if unreadable is None else f"unreadable:{paths[0]}"
    # Only a frame that lacks files and has nothing else wrong may be read without them.
    alone = bool(missing) and problem is not None and "past the panel" not in problem
    return FrameRef(index, row, col, paths, first.stem, digest=digest,
                    problem=problem or unreadable, source=first.source,
                    missing=tuple(missing) if alone and unreadable is None else ())


SOURCES = [register(MultipageTiff()), register(CompositeImage()), register(ChannelFiles())]


def _channel_file_name(present: Path, channel: int, panel) -> str:
    """The file name channel ``channel`` of ``present``'s frame would have (its digits as
    wide as ``present``'s, or its marker's name where ``present`` is named by its marker):
    what a missing channel's file is called."""
    named = _MARKER_FILE.match(present.stem)
    if named and not _CHANNEL_FILE.match(present.stem):
        cut = len(named["stem"]) + 1
        # (a name no file can hold, HER2/neu, as a file would: HER2-neu)
        marker = re.sub(r"[/\\]+", "-", panel.names[channel])
        return f"{present.stem[:cut]}{marker}{present.suffix}"
    m = _CHANNEL_FILE.match(present.stem)
    if m is None:
        return f"channel {channel}"
    digits = m["channel"]
    start = present.stem.rfind(digits)
    return f"{present.stem[:start]}{channel:0{len(digits)}d}{present.suffix}"
