"""The frame source interface, its registry and the digest that tells two frames apart.

See :mod:`ctcnet.io.sources` for what a source is.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ctcnet.core.paths import written_lately
from ctcnet.errors import InputError
from ctcnet.io.images import ome_pixel_size

# Two stated pixel sizes within 1 % are one (rounding in metadata and panel.json).
PIXEL_SIZE_RTOL = 0.01


def same_pixel_size(a: float, b: float) -> bool:
    """Whether two stated pixel sizes are the same one."""
    return math.isclose(a, b, rel_tol=PIXEL_SIZE_RTOL)


def refuse_other_ome_pixel_size(path: Path, stated_um: float, whose: str = "frames'") -> None:
    """Refuse (InputError) where the file's OME metadata state another pixel size than
    panel.json's ``stated_um``: one of the two is wrong, and a wrong pixel size sizes every
    cell wrongly (``whose``: the files', as the message names them)."""
    said = ome_pixel_size(path)
    if said is not None and not same_pixel_size(said, float(stated_um)):
        raise InputError(f"the {whose} OME metadata say {said:g} um per pixel, panel.json "
                         f"{stated_um:g}: correct one of them", path)


def refuse_another_crops_pixel_size(names, stated_um: float | None, path: Path) -> None:
    """Refuse (InputError) a crop whose OME metadata state another pixel size than its
    folder's crops state (``stated_um``: the first's, or panel.json's; None: nothing held):
    crops of two scanners in one folder, read at one size (a 0.4 um crop among 0.64 um ones
    read at 0.64: its CTCs called debris, unsaid). ``names``: the file's channel names as its
    read gave them, which carry an OME file's size (:class:`~ctcnet.io.images.StoredNames`);
    an OME TIFF without channel names has its header read again for it."""
    if stated_um is None:
        return
    said = getattr(names, "pixel_size_um", None) if names is not None else \
        ome_pixel_size(path) if Path(path).suffix.lower() in (".tif", ".tiff") else None
    if said is not None and not same_pixel_size(said, stated_um):
        raise InputError(f"the crop's OME metadata say {said:g} um per pixel, the folder's "
                         f"crops {stated_um:g}: crops of two pixel sizes (two scanners?) are "
                         "read at one; keep each in a folder of its own", path)


@dataclass(frozen=True)
class FrameRef:
    """One frame of a cartridge: where it sits and which file(s) hold its channels."""

    index: int
    row: int
    col: int
    files: tuple[Path, ...]  # one multipage file, or one file per channel in channel order
    stem: str
    digest: str = ""  # of its files' bytes (frame_digest): a tile written twice shows up
    problem: str | None = None  # why it cannot be read (a channel missing, a copy): skipped
    source: str = ""  # the registered source that reads it (empty: told by its files)
    scene: int = 0  # in a container file: which scene (image) holds the frame
    region: tuple[int, int, int, int] | None = None  # (y0, x0, y1, x1) of a tiled scene
    # Per-channel frames: the channels whose file is absent (``files`` holds the others, in
    # channel order). Their ``problem`` says so until a model's channels are known: a plane
    # the model does not read is only measured, and its file's absence costs no frame.
    missing: tuple[int, ...] = ()
    copy_of: str | None = None  # the frame whose bytes it holds (``problem`` says so)

    @property
    def frame_id(self) -> str:
        """The frame's position as predict's tables name it: ``r<row>c<col>``."""
        return f"r{self.row:02d}c{self.col:02d}"

    @property
    def source_name(self) -> str:
        """The source that reads this frame (frames built before sources were named carry
        none: a single file is a whole-frame file, several are per-channel files)."""
        if self.source:
            return self.source
        return "multipage" if len(self.files) == 1 else "channel-files"


@dataclass(frozen=True)
class FramePart:
    """What a source makes of one file it claims. ``stem`` and ``channel`` name the frame
    and channel of a named frame file; a container file (one that holds many frames) has
    neither: its frames are listed from its metadata."""

    path: Path
    source: str
    stem: str | None = None
    channel: int | None = None  # None: the whole frame (or, for a container, every frame)


class FrameSource:
    """One way frames lie on disk. Subclasses set :attr:`name` and implement the three
    methods; :func:`register` adds an instance to the registry."""

    name: ClassVar[str] = ""
    # True: one file holds many frames, listed from its metadata (the sources of
    # ctcnet.io.sources.microscopy); False: one frame per file name.
    container: ClassVar[bool] = False

    def claim(self, path: Path) -> FramePart | None:
        """The part of a frame (or the frames) ``path`` holds, or None if not this source's."""
        raise NotImplementedError

    def panel(self, parts: list[FramePart], stated):
        """The panel of the files' channels, in their order. ``stated`` is panel.json's (or
        the one given to open_cartridge), None when there is none; a source whose files name
        their channels and pixel size reads them and needs it only for what they lack."""
        if stated is None:
            raise no_panel_json(parts[0].path.parent)
        return stated

    def frames(self, parts: list[FramePart], info: dict, panel) -> list[FrameRef]:
        """The frames of the parts claimed in one folder (positions from the names or the
        metadata; ``info`` is the folder's cartridge.json). Called once per folder, on the
        source of the first part, with every part: all named, or all containers."""
        raise NotImplementedError

    def read(self, frame: FrameRef, panel, keep: list[int]) -> list[np.ndarray]:
        """The (H, W) planes of the channels ``keep`` (indices into ``panel``, the files'
        own) of one frame, CellSearch's export offset removed; nothing else is decoded."""
        raise NotImplementedError

    def shape(self, frame: FrameRef) -> tuple[int, int] | None:
        """The frame's (height, width) without decoding its pixels (a file's header, a
        container's metadata); None where this source cannot tell."""
        return None


_REGISTRY: dict[str, FrameSource] = {}


def register(source: FrameSource) -> FrameSource:
    """Add a source to the registry (after those already there: the first claim wins)."""
    if not source.name or source.name in _REGISTRY:
        raise ValueError(f"a frame source needs a new name, got {source.name!r}")
    _REGISTRY[source.name] = source
    return source


def get_source(name: str) -> FrameSource:
    """The registered source called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"no frame source {name!r} (known: {', '.join(_REGISTRY)})") from None


def list_sources() -> list[str]:
    """Names of the registered sources, in claim order."""
    return list(_REGISTRY)


def no_panel_json(folder: Path) -> InputError:
    """The refusal of a cartridge folder without a panel.json, pointing at one beside it (a
    site's, for all its scans), which a cartridge does not read."""
    beside = Path(folder).parent / "panel.json"
    try:
        empty = not any(Path(folder).iterdir())
    except OSError:
        empty = False
    if empty:  # (one of a night's folders, incoming/*, made before its copy began)
        return InputError("an empty folder, no cartridge yet (a copy not begun?): run again "
                          "once the scan is in it", folder)
    hint = (f" (the one in {beside.parent} is not read: each cartridge reads its own; copy it "
            "into each cartridge's folder)") if beside.is_file() else ""
    if not hint and _written_lately_in(Path(folder)):  # a scan still being copied or written
        hint = (" (its files were written in the last minutes: if the scan is still being "
                "copied, panel.json may come last; run again once it is whole)")
    return InputError(f"no panel.json in the cartridge folder: it names the channel order{hint}",
                      folder)


def _written_lately_in(folder: Path) -> bool:
    """Whether a folder's files were written in the last minutes (:func:`written_lately`)."""
    try:
        return written_lately([p for p in folder.iterdir() if p.is_file()])
    except OSError:
        return False


def nested_frames_hint(folder: Path) -> str:
    """`` (frames of a scan lie in scan/Images: pass that folder as the cartridge, ...)`` where
    ``folder`` holds none itself but a folder under it does (:func:`frames_below`), else
    ``""``."""
    below = frames_below(folder)
    if below is None:
        return ""
    return (f"; frames of a scan lie in {below.relative_to(folder)}: pass that folder as the "
            "cartridge, with panel.json (and cartridge.json) in it beside the frames")


def frames_below(folder: Path, depth: int = 3) -> Path | None:
    """The first folder under ``folder`` (``depth`` levels down at most; hidden ones passed
    over) holding a frame named as a scan's (``r00c00.tif``, ``r00c00_c0.tif``), or None: a
    scanner's export nested in a folder (``scan/Images/``), which read from above is no
    cartridge."""
    if depth <= 0:
        return None
    try:
        subs = sorted(p for p in Path(folder).iterdir()
                      if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return None
    for sub in subs:
        try:
            if any(e.is_file() and not e.name.startswith(".") and _named_frame(e)
                   for e in sub.iterdir()):
                return sub
        except OSError:
            continue
        found = frames_below(sub, depth - 1)
        if found is not None:
            return found
    return None


def _named_frame(path: Path) -> bool:
    """Whether a source reads ``path`` as a frame named by its position (not a container)."""
    part = claim(path)
    return part is not None and part.stem is not None


def claim(path: Path) -> FramePart | None:
    """The first registered source's claim on ``path``, or None if no source reads it."""
    for source in _REGISTRY.values():
        part = source.claim(path)
        if part is not None:
            return part
    return None


# A frame's digest reads this many blocks of this size, spread evenly over each of its files:
# a few hundred kB per frame, against ~11 MB of pixels in a CellSearch frame. A camera frame's
# noise makes any block of pixel data differ between two frames, so equal digests mean a copy.
DIGEST_BLOCKS = 8
DIGEST_BLOCK_BYTES = 1 << 14


def unreadable_reason(paths: tuple[Path, ...]) -> str | None:
    """Why a frame's files cannot be read at all (not readable by this user, gone, empty), or
    None: such a frame is skipped with its reason, never taken for a copy of another (two
    empty files hold the same bytes) nor allowed to stop the cartridge's other frames."""
    for path in paths:
        if path.is_dir():
            continue
        which = f" {path.name}" if len(paths) > 1 else ""  # the skip names a frame's one file
        try:
            with open(path, "rb") as fh:
                if not fh.read(1):
                    return f"empty file{which} (0 bytes): export it again"
        except OSError as err:
            return f"cannot read{which}: {err.strerror or err}"
    return None


def frame_digest(paths: tuple[Path, ...]) -> str:
    """A digest of the bytes of a frame's files (size plus sampled blocks; the whole of a
    small file). A folder (an OME-Zarr store) is digested by the names and sizes of its files,
    the sampled bytes of its metadata files and the first block of a few of its chunk files,
    never by reading its chunks whole (:func:`_digest_folder`)."""
    digest = hashlib.blake2b(digest_size=16)
    for path in paths:
        if path.is_dir():
            _digest_folder(digest, path)
            continue
        size = path.stat().st_size
        digest.update(size.to_bytes(8, "little"))
        with open(path, "rb") as fh:
            if size <= DIGEST_BLOCKS * DIGEST_BLOCK_BYTES:
                digest.update(fh.read())
                continue
            step = (size - DIGEST_BLOCK_BYTES) // (DIGEST_BLOCKS - 1)
            for k in range(DIGEST_BLOCKS):
                fh.seek(k * step)
                digest.update(fh.read(DIGEST_BLOCK_BYTES))
    return digest.hexdigest()


# A zarr store's metadata files (the others are its chunks).
_ZARR_METADATA = (".zattrs", ".zgroup", ".zarray", "zarr.json")


def _digest_folder(digest, root: Path) -> None:
    """Digest a store folder: its files' names and sizes, its metadata files' first block, and
    the first block of ``DIGEST_BLOCKS`` chunk files spread over it. Uncompressed chunks all
    have one size: stores of two frames written with one metadata were alike in names and
    sizes, their digests one."""
    chunks = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(root).as_posix()
        size = path.stat().st_size
        digest.update(f"{rel}\0{size}\n".encode("utf-8", "surrogateescape"))
        if path.name in _ZARR_METADATA:
            digest.update(path.read_bytes()[:DIGEST_BLOCK_BYTES])
        else:
            chunks.append(path)
    for path in chunks[::max(1, len(chunks) // DIGEST_BLOCKS)][:DIGEST_BLOCKS]:
        try:
            with open(path, "rb") as fh:
                digest.update(fh.read(DIGEST_BLOCK_BYTES))
        except OSError:  # a chunk not read here is said where its frame is read
            continue
