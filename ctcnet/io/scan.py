"""Cartridge scans: a folder of frames, each frame one image of every channel.

How frames lie on disk is each frame source's business (:mod:`ctcnet.io.sources`): one
multipage TIFF per frame (CellSearch), one colour composite per frame, one file per channel
(TIFF or PNG), or microscopy containers (OME-TIFF, OME-Zarr, CZI, ND2, LIF through bioio, whose
metadata name the channels and pixel size). A cartridge folder holds named frames or
containers, not both; a container store (``scan.ome.zarr``) or one container file holding
the whole scan (``scan.ome.tif``) may itself be given as the cartridge.

A frame's stem carries its position, ``r<row>c<col>`` (or ``frame<index>``, whose row and column
then follow the serpentine scan order given by ``cartridge.json``'s ``columns``). ``panel.json``
beside the frames names the channels; ``cartridge.json`` (optional) records the sample id, layout
and the blood volume (:mod:`ctcnet.io.cartridge_info`). CellSearch's 2^15 export offset is
removed on read.

The frame list is built once, by position, and refuses what it cannot read one way: two files
for one position (another spelling, another case or format, a whole-frame file beside
per-channel files), a FIFO or device named like a frame, a name that is not UTF-8. A tile
written twice under two names (the same bytes) is counted once: the copy is skipped with the
reason (unless ``cartridge.json`` says ``"repeated_frames": true``: a synthetic cartridge
whose frames repeat on purpose, as ``ctcnet benchmark`` builds one from hard links; never a
scan), and so is a frame of another size than the cartridge's others
(:mod:`ctcnet.io.frame_checks`). :attr:`Cartridge.identity` tells the cartridge from another
with the same sample id (review decisions carry it). :func:`plausibility_problems` checks what
the metadata claim (pixel size, blood volume) and :func:`read_frame` what a frame's pixels hold
against the panel (values above its stated range, an empty channel).
:meth:`Cartridge.conform` maps the frames' channels to a model's by name (see
:meth:`~ctcnet.io.panel.Panel.channel_indices`); :meth:`Cartridge.read` then returns frames in the
model's channel order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ctcnet.core.paths import WRITTEN_LATELY_S, written_lately
from ctcnet.errors import InputError, PanelMismatchError, not_found
from ctcnet.io.atomic import atomic_path, atomic_write_text

# cartridge.json is read in its own module; what callers (inputs) imported from here stays.
from ctcnet.io.cartridge_info import (  # noqa: F401
    check_stated_layout,
    name_as_sample_id,
    positive_number,
    read_cartridge_info,
    safe_sample_id,
    say_if_mistyped,
    say_once,
    whole_number,
)
from ctcnet.io.data_panel_leaks import said_unread_leaks

# The frame checks stay importable from here, where callers (crop datasets) find them.
from ctcnet.io.frame_checks import (  # noqa: F401
    check_frame_values,
    check_plane_depths,
    mark_odd_sizes,
)
from ctcnet.io.frame_copies import mark_copies
from ctcnet.io.image_headers import tiff_planes
from ctcnet.io.images import IMAGE_SUFFIXES, write_tiff
from ctcnet.io.layout_checks import frames_outside_grid, layout_problems, stated_layout_notes
from ctcnet.io.missing_planes import read_without_unread_files
from ctcnet.io.panel import Panel, load_panel, save_panel

# frame_digest and serpentine_position stay importable here (predict, simulator, benchmarks).
from ctcnet.io.sources import FramePart, FrameRef, claim, frame_digest, get_source  # noqa: F401
from ctcnet.io.sources.base import nested_frames_hint, no_panel_json
from ctcnet.io.sources.named import serpentine_position  # noqa: F401

FRAME_SUFFIXES = IMAGE_SUFFIXES
DEFAULT_BLOOD_VOLUME_ML = 7.5


log = logging.getLogger(__name__)


@dataclass
class Cartridge:
    """An indexed cartridge scan folder."""

    root: Path
    panel: Panel
    frames: list[FrameRef]
    sample_id: str
    blood_volume_ml: float = DEFAULT_BLOOD_VOLUME_ML
    info: dict = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # files found but unusable, with reasons
    # Set by conform(): the files' own panel and which of their channels to keep, in order.
    file_panel: Panel | None = None
    channels: tuple[int, ...] | None = None
    identity: str = ""  # cartridge_identity() of the frames: another scan, another identity
    expected_frames: int | None = None  # cartridge.json's num_frames, when stated
    frame_shape: tuple[int, int] | None = None  # (height, width) of its frames, as most have

    @property
    def frames_scanned(self) -> int:
        """The frames the blood volume spreads over: those found, or as many as cartridge.json
        lists when some are missing (a missing frame's blood was not read)."""
        return max(len(self.frames), self.expected_frames or 0)

    def __len__(self) -> int:
        """The frames found (those skipped with a problem included)."""
        return len(self.frames)

    def conform(self, model_panel: Panel) -> Cartridge:
        """This cartridge seen through a model's channels: ``panel`` becomes the model's channel
        order (at the scan's pixel size) and :meth:`read` returns those channels only."""
        source = self.file_panel or self.panel
        try:
            indices = model_panel.channel_indices(
                source, what=f"cartridge {self.sample_id} ({self.root.name})",
                dropped_as=" as an input: each event's mean over its object in them is measured "
                           "(events table: mean_<channel>; summary.json: unread_markers)")
        except PanelMismatchError as err:
            # A channel panel.json left out reads as a stain the scan lacks: where the files
            # hold another number of planes than panel.json names, say that first.
            planes = frame_planes(self.frames[0]) if self.frames else None
            if planes is None or planes == source.num_channels:
                raise
            raise PanelMismatchError(f"{err} (its frames hold {planes} planes where "
                                     f"panel.json names {source.num_channels} channels "
                                     f"{source.names}: a channel missing from panel.json?)"
                                     ) from None
        return replace(self, panel=source.subset(indices), file_panel=source,
                       channels=tuple(indices), frames=read_without_unread_files(
                           self.frames, indices, source, self.sample_id))

    def read(self, frame: FrameRef) -> np.ndarray:
        """One frame as float32 (C, H, W) in ``self.panel``'s channel order."""
        return read_frame(frame, self.file_panel or self.panel, self.channels)


def frame_planes(frame: FrameRef) -> int | None:
    """The planes of a frame held in one multipage TIFF, from its header; None for other
    layouts or a file that cannot be read (its read says why)."""
    if frame.source_name != "multipage" or len(frame.files) != 1:
        return None
    return tiff_planes(frame.files[0])


def is_cartridge(path: str | Path, unreadable: bool = True) -> bool:
    """Whether a folder is a cartridge: it has a cartridge.json or a file a frame source
    claims, or it is itself a container store (an OME-Zarr folder); or a path is a container
    file (an OME-TIFF, CZI, ND2 or LIF holding the whole scan), given as the scan itself. A
    folder this user may not read is ``unreadable``."""
    path = Path(path)
    if is_container_file(path):
        return True
    if not path.is_dir():
        return False
    try:
        if (path / "cartridge.json").exists() or claim(path) is not None:
            return True
        return any(_claimed(p) is not None for p in path.iterdir())
    except PermissionError:
        # A folder this user may not look into, given as an input: taken as a cartridge
        # (``unreadable``), so that opening it sets it aside with its reason (the other inputs
        # run) rather than stopping the run. Among a folder's subfolders (a lost+found beside
        # the scans), not one: its folder's listing names it as not read.
        return unreadable


def is_container_file(path: str | Path) -> bool:
    """Whether ``path`` is one file of a microscopy container (OME-TIFF, CZI, ND2, LIF) that
    a frame source reads many frames from: such a file alone is a whole scan."""
    path = Path(path)
    return path.is_file() and _container(path)


def _container(path: Path) -> bool:
    """Whether a frame source reads ``path`` (a file, or a folder: an OME-Zarr store) as a
    container of many frames."""
    part = claim(path)
    return part is not None and get_source(part.source).container


def _claimed(path: Path) -> FramePart | None:
    """A source's claim on a folder entry; a file that cannot be a frame (hidden, a FIFO
    or device) refused by the claim counts as claimed: the folder is a cartridge whose
    opening says what is wrong."""
    if path.name.startswith("."):
        return None
    try:
        return claim(path)
    except InputError:
        return FramePart(path, "")


def open_cartridge(root: str | Path, panel: Panel | str | Path | None = None) -> Cartridge:
    """Index a cartridge folder: find frames, their positions and their files. Decodes no
    pixels; reads a few sampled blocks of each frame file (:func:`frame_digest`), so a tile
    written twice under two names is found and the cartridge gets its :attr:`identity`.
    Container files (OME-TIFF, OME-Zarr, ...) also have their metadata read: their channel
    names and pixel size, matched by name to ``panel`` (or panel.json) where both exist.
    A folder or metadata file this user may not read is an :class:`InputError` of the
    cartridge (a batch sets it aside and runs the others), not an error of the run's output."""
    try:
        return _opened_cartridge(Path(root), panel)
    except PermissionError as err:
        raise InputError(f"cannot read the cartridge: {err.strerror}",
                         err.filename or root) from None


def _opened_cartridge(root: Path, panel: Panel | str | Path | None) -> Cartridge:
    """:func:`open_cartridge`'s work (a scan in one file, or a store given alone, has its
    cartridge.json and panel.json beside it; a store holding them is its own folder)."""
    single = is_container_file(root) or (root.is_dir() and _container(root) and not any(
        (root / name).exists() for name in ("cartridge.json", "panel.json")))
    if not root.is_dir() and not single:
        raise not_found(root, "cartridge folder not found")
    info = _info_beside(root) if single else read_cartridge_info(root)
    beside = root.parent if single else root  # where panel.json lies
    if panel is None:
        stated = _panel_beside(beside / "panel.json", info)
    else:
        stated = load_panel(panel)
    columns = whole_number(info, "columns", root)
    expected = listed = whole_number(info, "num_frames", root)
    rows = whole_number(info, "rows", root)
    if listed is None and rows and columns:  # a stated grid is the scan's whole: frames missing
        expected = rows * columns  # from it are said, as num_frames' are
    volume = positive_number(info, "blood_volume_ml", DEFAULT_BLOOD_VOLUME_ML, root)
    sample_id = safe_sample_id(info["sample_id"], root) if "sample_id" in info else \
        safe_sample_id(name_as_sample_id(root), root,
                       "the folder's name, the sample id without one in cartridge.json,")
    if info.get("simulated") is not True and "sample_id" in info:  # (simulate's, the name's:
        say_if_mistyped(sample_id, root)                             # no slip)
    parts = _frame_parts(root)
    if not parts:
        if stated is None:
            raise no_panel_json(root)
        raise InputError("no frames found (expected r<row>c<col>.tif, r<row>c<col>_c<k>.tif|png,"
                         " r<row>c<col>_<marker>.tif or frame<k>.tif files, or OME-TIFF, "
                         "OME-Zarr, CZI, ND2 or LIF files)" + nested_frames_hint(root)
                         + prefixed_frames_hint(root), root)
    source = get_source(parts[0].source)  # one layout per folder (_frame_parts)
    panel = source.panel(parts, stated)
    check_stated_layout(info, root)
    frames, outside = frames_outside_grid(
        source.frames(parts, {**info, "columns": columns}, panel), info)
    problems = layout_problems(parts, frames, info, panel, expected) + [outside] * bool(outside)
    # Scan order: by index when given, else serpentine order of (row, col).
    frames.sort(key=lambda f: (f.row, f.col if f.row % 2 == 0 else -f.col)
                if f.index < 0 else (f.index,))
    frames = [replace(f, index=i) for i, f in enumerate(frames)]
    if info.get("repeated_frames") is not True:  # a benchmark's frames repeat on purpose
        frames = mark_copies(frames)
    size = (whole_number(info, "frame_height", root), whole_number(info, "frame_width", root))
    frames, shape = mark_odd_sizes(frames, size if None not in size else None)
    stated_layout_notes(info, frames, shape, root)
    if expected is not None and expected != len(frames):
        why = (("a scan still being written, or a truncated cartridge?" if written_lately(
            [p for f in frames for p in f.files]) else "truncated cartridge?") + " Once the "
            "missing frames are in the folder, the same command reads them and keeps those done") \
            if len(frames) < expected else "frames of another scan, or copies, in the folder?"
        said = "lists" if listed is not None else f"states a grid of {rows} x {columns} ="
        problems.append(f"cartridge.json {said} {expected} frames but {len(frames)} are present "
                        f"({why}){missing_positions(info, frames, expected, root)}"
                        + prefixed_frames_hint(root))
    elif expected is None and written_lately([p for f in frames for p in f.files],
                                             arrived=True):
        # Nothing says how many frames the scan holds: a scan still being written (or copied:
        # ``cp -p`` keeps old modification times) reads as whole at the stated volume (4 of 6
        # frames read 'ok', 20 CTCs of 28). A problem, so the sample reads partial, not 'ok'
        # on a log's warning; the same command run once the scan is complete reads it whole.
        problems.append("no num_frames stated (cartridge.json), and frames were written in the "
                        f"last {WRITTEN_LATELY_S / 60:.0f} minutes: if the scan is still being "
                        "written, the frames present "
                        "are read as the whole scan; state num_frames (the scanner's "
                        "cartridge.json written first) or run again once the scan is complete")
    return Cartridge(root, panel, frames, sample_id, float(volume), info, problems,
                     identity=cartridge_identity(frames), expected_frames=expected,
                     frame_shape=shape)


def _panel_beside(path: Path, info: dict) -> Panel | None:
    """panel.json beside the frames (None: none); one without a pixel size is refused naming
    the one cartridge.json states, if it does (the frames are read at panel.json's alone)."""
    if not path.exists():
        return None
    try:
        return said_unread_leaks(load_panel(path), path)
    except InputError as err:
        stated = info.get("pixel_size_um")
        if stated is None or "no pixel_size_um" not in str(err):
            raise
        raise InputError(f"{str(err).removeprefix(f'{path}: ')}; cartridge.json states "
                         f"pixel_size_um {stated}: if that is the frames', state it in "
                         "panel.json too", path) from None


def _info_beside(path: Path) -> dict:
    """The cartridge.json beside a container file given alone: read when the file is the only
    scan in its folder (the folder is then this scan); the folder's several scans' otherwise,
    not read (its sample id and blood volume are of them all), with a warning."""
    others = [p for p in path.parent.iterdir() if p != path and _claimed(p) is not None]
    if not others:
        return read_cartridge_info(path.parent)
    if (path.parent / "cartridge.json").exists():
        say_once(path, f"the cartridge.json beside it is of its folder's {len(others) + 1} "
                        "scan files, not read for this file alone (its sample id is the file's "
                        f"name, its blood volume {DEFAULT_BLOOD_VOLUME_ML:g} mL): give the "
                        "folder to read them all as one cartridge")
    return {}


# A file name that starts as a frame's does (r<row>c<col>) but is not one; said once a run.
FRAME_NAME_START = re.compile(r"r\d+c\d+\D", re.IGNORECASE)
# A frame's position inside a longer name ("Scan 2024-05-13 r00c02.tif": a scanner's prefix).
FRAME_POSITION = re.compile(r"(?<![a-z0-9])r\d+c\d+(?![0-9])", re.IGNORECASE)


def prefixed_frames_hint(root: Path) -> str:
    """What to say of image files in ``root`` that hold a frame's position after other text
    (a scanner's prefix): not read as frames, so a person renames them; "" where none."""
    if not root.is_dir():  # one container file holding the scan
        return ""
    names = sorted(p.name for p in root.iterdir() if p.suffix.lower() in FRAME_SUFFIXES
                   and not FRAME_NAME_START.match(p.name) and FRAME_POSITION.search(p.name))
    if not names:
        return ""
    return (f"; {len(names)} file(s) hold a frame's position after other text and are not "
            f"read as frames ({', '.join(repr(n) for n in names[:3])}"
            f"{', ...' if len(names) > 3 else ''}): name each r<row>c<col>.tif "
            "(r<row>c<col>_<marker>.tif for a file a channel)")


_COPIES_SAID: set[tuple[str, tuple[str, ...]]] = set()


def _frame_parts(root: Path) -> list[FramePart]:
    """What the frame sources claim of a folder's files (or of the folder itself, a container
    store given as the cartridge). Files that cannot be frames are refused by name rather than
    left out: a FIFO or device named like a frame (never opened: opening a FIFO blocks), a
    name that is not UTF-8. Named frames and containers in one folder are refused: which of
    the two is the scan cannot be told."""
    itself = claim(root)
    if itself is not None:
        return [itself]
    parts, ignored = [], []
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        part = claim(path)
        if part is not None or path.suffix.lower() in FRAME_SUFFIXES:
            _refuse_undecodable_name(path, root)
        if part is not None:
            parts.append(part)
        elif path.suffix.lower() in FRAME_SUFFIXES:
            ignored.append(path.name)
    # A frame's name with more to it ("r00c00 - Copy.tif", "r00c01 (1).tif": a copy made by
    # Windows or a browser) is no frame, but a person may think it one: said as a warning;
    # other images (an overview, a thumbnail) as a note.
    copies = [n for n in ignored if FRAME_NAME_START.match(n)]
    if copies and (str(root), tuple(copies)) not in _COPIES_SAID:  # a run opens it often
        _COPIES_SAID.add((str(root), tuple(copies)))
        log.warning("%s: %d file(s) named like a frame and more, not read as frames (copies "
                    "of a frame?): %s", root, len(copies), ", ".join(copies[:5]))
    if len(ignored) > len(copies):
        others = [n for n in ignored if n not in copies]
        log.info("%s: %d image file(s) not named like frames, not read: %s", root, len(others),
                 ", ".join(others[:5]))
    kinds = {get_source(p.source).container: p for p in parts}
    if len(kinds) > 1:
        raise InputError(f"{kinds[False].path.name} (a named frame) and {kinds[True].path.name} "
                         "(a microscopy container) are two layouts of a scan in one folder; "
                         "keep one", root)
    return parts


def _refuse_undecodable_name(path: Path, root: Path) -> None:
    """A name that is not UTF-8 (a Latin-1 export, a damaged copy) cannot be matched to a
    frame position; said by name, never passed over."""
    try:
        path.name.encode("utf-8")
    except UnicodeEncodeError:
        shown = ascii(os.fsencode(path.name))
        raise InputError(f"file name {shown} is not valid UTF-8: it cannot be matched to a "
                         "frame position; rename it", root) from None


def missing_positions(info: dict, frames: list, expected: int, root: Path) -> str:
    """``; missing: r00c02, ...`` where ``cartridge.json`` states a grid (``rows`` x ``columns``,
    as many as ``num_frames``) and frames of it are absent (at most ten named), else ``""``:
    an operator re-exports those frames by name."""
    rows, columns = (whole_number(info, key, root) for key in ("rows", "columns"))
    if not rows or not columns or rows * columns != expected:
        return ""
    present = {(f.row, f.col) for f in frames}
    absent = [f"r{r:02d}c{c:02d}" for r in range(rows) for c in range(columns)
              if (r, c) not in present]
    if not absent:
        return ""
    more = f" and {len(absent) - 10} more" if len(absent) > 10 else ""
    return f"; missing: {', '.join(absent[:10])}{more}"


def cartridge_identity(frames: list[FrameRef]) -> str:
    """What tells one cartridge from another with the same sample id: a digest of its frame
    list (each frame's position, its files' names and sizes, and its bytes' digest; equal
    sizes alone do not tell two scans apart, an uncompressed frame's size is set by its
    shape)."""
    digest = hashlib.sha256()
    for f in sorted(frames, key=lambda f: f.frame_id):
        names = "\0".join(p.name for p in f.files)
        digest.update(f"{f.frame_id}\0{names}\0{f.digest}\n".encode("utf-8",
                                                                      "surrogateescape"))
    return digest.hexdigest()[:16]


def read_frame(frame: FrameRef, panel: Panel, channels=None) -> np.ndarray:
    """Read one frame as float32 (C, H, W) in the scanner's counts, checked against the panel
    (the files' own); ``channels`` (indices into it) picks and orders the channels returned."""
    return read_frame_and(frame, panel, channels)[0]


def read_frame_and(frame: FrameRef, panel: Panel, channels=None, also=()
                   ) -> tuple[np.ndarray, list[np.ndarray]]:
    """:func:`read_frame`, and the planes ``also`` (indices into the panel) read in the same
    pass as the files hold them, unchecked: planes measured beside the channels, whose oddities
    must not cost the frame."""
    keep = list(range(panel.num_channels)) if channels is None else list(channels)
    if frame.problem is not None:
        raise InputError(frame.problem, frame.files[0] if frame.files else frame.stem)
    # The frame's source reads only the kept channels where its layout allows.
    planes = get_source(frame.source_name).read(frame, panel, keep + list(also))
    planes, others = planes[:len(keep)], planes[len(keep):]
    if any(plane is None for plane in planes):  # a file of a channel read: no frame
        raise InputError("missing channel file(s) of " + ", ".join(
            panel.names[c] for c, p in zip(keep, planes) if p is None), frame.stem)
    check_plane_depths(planes, [panel.names[c] for c in keep], [  # a file a channel, or one
        frame.files[c if len(frame.files) == panel.num_channels else 0] for c in keep])
    if len({plane.shape for plane in planes}) == 1:
        # Each plane converted straight into its place: stacking, then converting, wrote the
        # frame twice (3.1 against 1.4 ms for a 5-channel CellSearch frame).
        out = np.empty((len(planes), *planes[0].shape), np.float32)
        for i, plane in enumerate(planes):
            out[i] = plane
    else:  # numpy's error names the sizes
        out = np.stack(planes).astype(np.float32, copy=False)
    check_frame_values(out, [panel.channels[c] for c in keep], frame.files[0],
                       fresh=written_lately(frame.files, arrived=True))
    return out, others


def write_cartridge_info(root: str | Path, panel: Panel, sample_id: str, num_frames: int,
                         rows: int, columns: int, frame_shape: tuple[int, int],
                         blood_volume_ml: float = DEFAULT_BLOOD_VOLUME_ML,
                         extra: dict | None = None) -> None:
    """Write panel.json and cartridge.json for a cartridge folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    save_panel(panel, root / "panel.json")
    info = {"sample_id": sample_id, "num_frames": int(num_frames), "rows": int(rows),
            "columns": int(columns), "frame_height": int(frame_shape[0]),
            "frame_width": int(frame_shape[1]), "blood_volume_ml": float(blood_volume_ml)}
    info.update(extra or {})
    atomic_write_text(root / "cartridge.json", json.dumps(info, indent=2) + "\n")


def write_frame(root: str | Path, row: int, col: int, frame: np.ndarray, panel: Panel,
                layout: str = "multipage", cellsearch_offset: bool = False) -> list[Path]:
    """Write one (C, H, W) frame in a given layout: 'multipage', 'channels' or 'png'."""
    root = Path(root)
    stem = f"r{row:02d}c{col:02d}"
    frame = np.asarray(frame)
    if cellsearch_offset:
        if frame.dtype != np.uint16:
            raise ValueError("the CellSearch offset applies to uint16 frames")
        # As some CellSearch exports do: values above the 12-bit range... carry +32768.
        frame = np.where(frame > 0, frame | np.uint16(0x8000), frame).astype(np.uint16)
    if layout == "multipage":
        path = root / f"{stem}.tif"
        write_tiff(path, frame, ome=False)
        return [path]
    if layout == "channels":
        paths = [root / f"{stem}_c{c}.tif" for c in range(frame.shape[0])]
        for c, path in enumerate(paths):
            write_tiff(path, frame[c:c + 1], ome=False)
        return paths
    if layout == "png":
        from PIL import Image

        if frame.dtype != np.uint8:
            raise ValueError("the png layout holds 8-bit channels; convert the frame first")
        paths = [root / f"{stem}_c{c}.png" for c in range(frame.shape[0])]
        for c, path in enumerate(paths):
            with atomic_path(path) as tmp:
                Image.fromarray(frame[c]).save(tmp, format="PNG")
        return paths
    raise ValueError(f"unknown frame layout {layout!r}")
