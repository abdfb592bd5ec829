"""SHA-256 digests: of a file, read in blocks, the one identity a model file has everywhere (run
summaries, the resume journal, exports' source record, fine-tuned cards, models/SHA256SUMS); and
of the frames a run read, so that a command that reads them again (``ctcnet crops``, the review's
tiles) knows whether they are still the pixels the run counted.

A frame's record (:func:`frame_record`) holds its files' names, sizes and modification times and
one SHA-256: of its files' bytes where the frame is its own files (a CellSearch TIFF: what
``sha256sum`` prints for it), of its pixels as read where it lies in a container that holds other
frames (an OME-TIFF scene, a tile of an OME-Zarr store), whose whole file would cost too much to
hash per frame. Checking a frame (:func:`frame_change`) costs a ``stat`` while its files are
unchanged, and a digest only when they are not (touched, copied elsewhere, or changed); a frame
of an OME-Zarr store is hashed again every time (its chunks change inside the store's folder,
whose own size and time do not tell).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np


def file_sha256(path: str | Path) -> str:
    """SHA-256 of the file's bytes, as hex (what ``sha256sum`` prints)."""
    return _files_sha256([path])


_KNOWN: dict[tuple, str] = {}  # (path, inode, mtime, size) -> SHA-256, the last few


def file_sha256_cached(path: str | Path) -> str:
    """:func:`file_sha256`, kept while the file's inode, time and size stay (a table checked
    on every review decision is read once, not per request)."""
    st = Path(path).stat()
    key = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
    if key not in _KNOWN:
        if len(_KNOWN) > 64:
            _KNOWN.clear()
        _KNOWN[key] = file_sha256(path)
    return _KNOWN[key]


def _files_sha256(paths) -> str:
    """SHA-256 of the files' bytes one after another (of a single file: its own)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def pixels_sha256(pixels: np.ndarray) -> str:
    """SHA-256 of an array's shape, type and values."""
    pixels = np.ascontiguousarray(pixels)
    digest = hashlib.sha256(f"{pixels.shape} {pixels.dtype}\n".encode())
    digest.update(memoryview(pixels).cast("B"))
    return digest.hexdigest()


def file_stats(paths, changed: bool = False) -> list[list]:
    """[name, size, modification time in ns] of each file (None, None where it is gone);
    ``changed``: the inode change time after them, from the same stat."""
    out = []
    for path in paths:
        try:
            st = Path(path).stat()
            out.append([Path(path).name, st.st_size, st.st_mtime_ns,
                        *([st.st_ctime_ns] if changed else [])])
        except OSError:
            out.append([Path(path).name, None, None, *([None] if changed else [])])
    return out


class ChangedWhileRead(OSError):
    """A frame's files changed between its reading and its digest (written, cut short or
    replaced meanwhile): the digest would not be of the pixels read."""


def file_marks(paths) -> list[list]:
    """:func:`file_stats` with each file's inode change time, which a writer cannot set back
    (a rewrite that restores the file's modification time still moves it)."""
    return file_stats(paths, changed=True)


def frame_record(files, pixels: np.ndarray, whole_files: bool,
                 before: list[list] | None = None) -> dict:
    """The record of a frame just read: its ``files``' stats and the SHA-256 of their bytes
    (``whole_files``: the frame is its files, read whole a moment ago, so they are hashed from
    the page cache) or of its ``pixels`` (a frame in a container shared with others).
    ``before``: the files' marks (:func:`file_marks`) taken before the frame was read; where
    they differ once it is hashed, :class:`ChangedWhileRead`."""
    before = file_marks(files) if before is None else before
    stats = [mark[:3] for mark in before]
    if whole_files:
        record = {"files": stats, "of": "files", "sha256": _files_sha256(files)}
    else:
        record = {"files": stats, "of": "pixels", "sha256": pixels_sha256(pixels)}
    if file_marks(files) != before:
        raise ChangedWhileRead("its files changed while it was read (size or times: being "
                               "written, cut short or replaced?): read it again once whole")
    return record


def frame_change(files, record: dict | None, pixels: np.ndarray | None = None,
                 read: Callable[[], np.ndarray] | None = None) -> str | None:
    """What differs in a frame since ``record`` was made (None: nothing, or no record to tell).
    Files whose stats are unchanged are taken as they were (as make and rsync do); otherwise
    their digest is made again, of their bytes, or of the frame's ``pixels`` (read with
    ``read()`` when not given)."""
    if not record or "sha256" not in record:
        return None
    folders = any(Path(p).is_dir() for p in files)  # an OME-Zarr store: chunks change inside
    if not folders and file_stats(files) == record.get("files"):
        return None
    try:
        if record.get("of") == "files":
            now = _files_sha256(files)
        else:
            now = pixels_sha256(pixels if pixels is not None else read())
    except OSError as err:
        return f"its files cannot be read: {err.strerror or err}"
    if now == record["sha256"]:
        return None
    what = "its files'" if record.get("of") == "files" else "its pixels'"
    return f"{what} SHA-256 is {now[:12]}..., was {record['sha256'][:12]}... when predict read it"
