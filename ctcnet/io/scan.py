"""Cartridge scans: a folder of frames, each frame one image of every channel.

Layouts read (the first that matches wins, per frame):

* one multipage TIFF per frame (one page per channel, CellSearch layout): ``r03c12.tif``;
* one single-page TIFF per channel: ``r03c12_c0.tif``, ``r03c12_c1.tif``, ...;
* one 8-bit (or 16-bit) PNG per channel, as other scanners export: ``r03c12_c0.png``, ...;
* one colour composite per frame (RGB PNG, JPEG or TIFF; ``panel.json`` names the planes).

A frame's stem carries its position, ``r<row>c<col>`` (or ``frame<index>``, whose row and column
then follow the serpentine scan order given by ``cartridge.json``'s ``columns``). ``panel.json``
beside the frames names the channels; ``cartridge.json`` (optional) records the sample id, layout
and the blood volume. CellSearch's 2^15 export offset is removed on read.
:meth:`Cartridge.conform` maps the frames' channels to a model's by name (see
:meth:`~ctcnet.io.panel.Panel.channel_indices`); :meth:`Cartridge.read` then returns frames in the
model's channel order.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.images import (
    IMAGE_SUFFIXES,
    check_channel_names,
    read_channel_file,
    read_image,
    remove_cellsearch_offset,
    write_tiff,
)
from ctcnet.io.panel import Panel, load_panel, save_panel

_FRAME_RC = re.compile(r"^r(?P<row>\d+)c(?P<col>\d+)$", re.IGNORECASE)
_FRAME_INDEX = re.compile(r"^frame[_-]?(?P<index>\d+)$", re.IGNORECASE)
_CHANNEL_FILE = re.compile(r"^(?P<stem>.+)_c(?P<channel>\d+)$", re.IGNORECASE)
FRAME_SUFFIXES = IMAGE_SUFFIXES
DEFAULT_BLOOD_VOLUME_ML = 7.5


@dataclass(frozen=True)
class FrameRef:
    """One frame of a cartridge: where it sits and which file(s) hold its channels."""

    index: int
    row: int
    col: int
    files: tuple[Path, ...]  # one multipage file, or one file per channel in channel order
    stem: str

    @property
    def frame_id(self) -> str:
        return f"r{self.row:02d}c{self.col:02d}"


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

    def __len__(self) -> int:
        return len(self.frames)

    def conform(self, model_panel: Panel) -> Cartridge:
        """This cartridge seen through a model's channels: ``panel`` becomes the model's channel
        order (at the scan's pixel size) and :meth:`read` returns those channels only."""
        source = self.file_panel or self.panel
        indices = model_panel.channel_indices(source, what=f"cartridge {self.sample_id}")
        return replace(self, panel=source.subset(indices), file_panel=source,
                       channels=tuple(indices))

    def read(self, frame: FrameRef) -> np.ndarray:
        """One frame as float32 (C, H, W) in ``self.panel``'s channel order."""
        return read_frame(frame, self.file_panel or self.panel, self.channels)


def serpentine_position(index: int, columns: int) -> tuple[int, int]:
    """Row and column of the index-th frame of a serpentine scan (even rows left to right)."""
    row, k = divmod(index, columns)
    return row, (k if row % 2 == 0 else columns - 1 - k)


def is_cartridge(path: str | Path) -> bool:
    path = Path(path)
    if not path.is_dir():
        return False
    if (path / "cartridge.json").exists():
        return True
    return any(_frame_stem(p)[0] is not None for p in path.iterdir() if
               p.suffix.lower() in FRAME_SUFFIXES)


def _frame_stem(path: Path) -> tuple[str | None, int | None]:
    """(frame stem, channel index or None) of a file name, or (None, None) if not a frame."""
    stem, channel = path.stem, None
    m = _CHANNEL_FILE.match(stem)
    if m and (_FRAME_RC.match(m["stem"]) or _FRAME_INDEX.match(m["stem"])):
        stem, channel = m["stem"], int(m["channel"])
    if _FRAME_RC.match(stem) or _FRAME_INDEX.match(stem):
        return stem, channel
    return None, None


def _positive_number(info: dict, key: str, default: float, root: Path) -> float:
    """A finite number > 0 from cartridge.json (null, a bool, text or 0 is refused, not
    guessed); ``default`` only when the key is absent."""
    value = info.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise InputError(f"cartridge.json: {key} must be a positive number, got {value!r}", root)
    return value


def _whole_number(info: dict, key: str, root: Path) -> int | None:
    value = info.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not float(value).is_integer() or value < 1:
        raise InputError(f"cartridge.json: {key} must be a whole number >= 1, got {value!r}",
                         root)
    return int(value)


def safe_sample_id(value, root: Path) -> str:
    """The sample id names the output folder: one plain path component, never a path."""
    sid = str(value).strip() if isinstance(value, (str, int)) and \
        not isinstance(value, bool) else ""
    # Path(sid).name differs from sid for anything with a drive or root (Windows "c:x").
    if not sid or sid in (".", "..") or "/" in sid or "\\" in sid or "\0" in sid or \
            sid != Path(sid).name:
        raise InputError(f"cartridge.json: sample_id {value!r} must be a plain name (it names the "
                         "output folder): no '/', '\\' or '..'", root)
    return sid


def read_cartridge_info(root: Path) -> dict:
    """cartridge.json as a checked mapping (empty when the file is absent)."""
    path = root / "cartridge.json"
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise InputError(f"cartridge.json is not valid JSON: {err}", root) from None
    if not isinstance(info, dict):
        raise InputError("cartridge.json must hold one JSON object (sample_id, columns, "
                         f"blood_volume_ml, ...), got {type(info).__name__}", root)
    return info


def open_cartridge(root: str | Path, panel: Panel | str | Path | None = None) -> Cartridge:
    """Index a cartridge folder: find frames, their positions and their files. Reads no pixels."""
    root = Path(root)
    if not root.is_dir():
        raise InputError("cartridge folder not found", root)
    info = read_cartridge_info(root)
    if panel is None:
        if not (root / "panel.json").exists():
            raise InputError("no panel.json in the cartridge folder: it names the channel order",
                             root)
        panel = load_panel(root / "panel.json")
    else:
        panel = load_panel(panel)
    columns = _whole_number(info, "columns", root)
    expected = _whole_number(info, "num_frames", root)
    volume = _positive_number(info, "blood_volume_ml", DEFAULT_BLOOD_VOLUME_ML, root)
    sample_id = safe_sample_id(info.get("sample_id", root.name), root)

    problems: list[str] = []
    whole: dict[str, Path] = {}
    per_channel: dict[str, dict[int, Path]] = {}
    for path in sorted(root.iterdir()):
        if path.suffix.lower() not in FRAME_SUFFIXES or path.name.startswith("."):
            continue
        stem, channel = _frame_stem(path)
        if stem is None:
            continue
        if not path.is_file():  # a FIFO or a folder named like a frame would hang or fail
            problems.append(f"{path.name}: not a regular file, left out")
            continue
        if channel is None:
            whole[stem] = path
        else:
            per_channel.setdefault(stem, {})[channel] = path

    frames = []
    for stem in sorted(set(whole) | set(per_channel)):
        if stem in whole:
            files = (whole[stem],)
        else:
            chans = per_channel[stem]
            missing = [c for c in range(panel.num_channels) if c not in chans]
            if missing:
                problems.append(f"{stem}: missing channel file(s) {missing}")
                continue
            files = tuple(chans[c] for c in range(panel.num_channels))
        m = _FRAME_RC.match(stem)
        if m:
            row, col = int(m["row"]), int(m["col"])
            index = -1
        else:
            index = int(_FRAME_INDEX.match(stem)["index"])
            row, col = serpentine_position(index, columns) if columns else (0, index)
        frames.append(FrameRef(index, row, col, files, stem))
    if not frames:
        raise InputError("no frames found (expected r<row>c<col>.tif, r<row>c<col>_c<k>.tif|png "
                         "or frame<k>.tif files)", root)
    _refuse_shared_positions(frames, root)
    # Scan order: by index when given, else serpentine order of (row, col).
    frames.sort(key=lambda f: (f.row, f.col if f.row % 2 == 0 else -f.col)
                if f.index < 0 else (f.index,))
    frames = [FrameRef(i, f.row, f.col, f.files, f.stem) for i, f in enumerate(frames)]
    if expected is not None and expected != len(frames):
        problems.append(f"cartridge.json lists {expected} frames but {len(frames)} are present "
                        "(truncated cartridge?)")
    return Cartridge(root, panel, frames, sample_id, float(volume), info, problems)


def _refuse_shared_positions(frames: list[FrameRef], root: Path) -> None:
    """Two files for one frame position (``r00c01`` and ``r0c1``, or ``r00c00`` and ``frame0``)
    would share one frame id: one frame's events would be counted twice, the other's lost."""
    seen: dict[str, FrameRef] = {}
    for f in frames:
        other = seen.setdefault(f.frame_id, f)
        if other is not f:
            raise InputError(f"{other.files[0].name} and {f.files[0].name} both name frame "
                             f"{f.frame_id} (row {f.row}, column {f.col}); keep one", root)


def read_frame(frame: FrameRef, panel: Panel, channels=None) -> np.ndarray:
    """Read one frame as float32 (C, H, W) in the scanner's counts, checked against the panel
    (the files' own); ``channels`` (indices into it) picks and orders the channels returned."""
    keep = list(range(panel.num_channels)) if channels is None else list(channels)
    if len(frame.files) == 1:
        arr, names = read_image(frame.files[0])
        if arr.shape[0] != panel.num_channels:
            raise InputError(f"frame has {arr.shape[0]} channels, the panel {panel.names} has "
                             f"{panel.num_channels}", frame.files[0])
        check_channel_names(names, panel.names, frame.files[0])
        planes = [remove_cellsearch_offset(arr[c]) for c in keep]
    else:  # one file per channel: files of channels not kept are never read
        planes = [remove_cellsearch_offset(read_channel_file(frame.files[c])) for c in keep]
        shapes = {p.shape for p in planes}
        if len(shapes) != 1:
            raise InputError(f"channel files of frame {frame.stem} differ in size: {shapes}",
                             frame.files[0])
    out = np.stack(planes).astype(np.float32, copy=False)
    if float(out.max()) == float(out.min()):
        raise InputError("empty frame: every pixel has the same value", frame.files[0])
    return out


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

        from ctcnet.io.atomic import atomic_path

        if frame.dtype != np.uint8:
            raise ValueError("the png layout holds 8-bit channels; convert the frame first")
        paths = [root / f"{stem}_c{c}.png" for c in range(frame.shape[0])]
        for c, path in enumerate(paths):
            with atomic_path(path) as tmp:
                Image.fromarray(frame[c]).save(tmp, format="PNG")
        return paths
    raise ValueError(f"unknown frame layout {layout!r}")
