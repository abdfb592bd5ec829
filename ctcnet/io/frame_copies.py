"""A tile written twice under two names, found where a cartridge's frames are listed: kept in
the frame list with the reason, so the run skips it and its blood is not counted twice as
read. Frames are matched by their files' sampled digest and held to their whole bytes (a
store folder's, file by file)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from ctcnet.io.digests import file_sha256_cached
from ctcnet.io.sources import FrameRef

log = logging.getLogger(__name__)


def mark_copies(frames: list[FrameRef]) -> list[FrameRef]:
    """A frame whose files hold the same bytes as an earlier frame's (the same tile written
    twice under two names) is kept in the list, to be skipped with the reason: counted once,
    and its position's blood volume not counted as read (which of the two positions the tile
    belongs to cannot be told)."""
    first: dict[str, list[FrameRef]] = {}
    out = []
    for f in frames:
        alike = first.setdefault(f.digest, [])
        # The digest samples a large file's blocks: two sparse 8-bit frames on a black
        # background sampled alike where their cells differ, and one was skipped as a copy.
        # A match is held to the whole files' bytes.
        original = next((o for o in alike if _same_bytes(o, f)), None)
        if original is None:
            alike.append(f)
        elif f.problem is None:
            # Whether the first is read is its own line (it may be skipped too: a run of
            # identical garbage files counts no tile at all).
            f = replace(f, problem=f"same bytes as frame {original.frame_id} "
                                   f"({original.files[0].name}): the same tile written twice "
                                   f"under two names? Its bytes count at most once, as "
                                   f"{original.frame_id}", copy_of=original.frame_id)
            log.info("%s holds the same bytes as %s: skipped", f.files[0],  # (its folder)
                     original.files[0].name)
        out.append(f)
    return out


def _same_bytes(a: FrameRef, b: FrameRef) -> bool:
    """Whether two frames of one sampled digest hold the same bytes throughout (a folder, an
    OME-Zarr store, file by file: :func:`_same_folder`)."""
    if len(a.files) != len(b.files):
        return False
    try:
        return all(_same_folder(Path(x), Path(y)) if Path(x).is_dir() or Path(y).is_dir()
                   else _same_file(x, y) for x, y in zip(a.files, b.files))
    except OSError:  # no copy known: the frame is read, and what fails is said there
        return False


def _same_file(x, y) -> bool:
    """Whether two files hold the same bytes."""
    return Path(x).stat().st_size == Path(y).stat().st_size and \
        file_sha256_cached(x) == file_sha256_cached(y)


def _same_folder(x: Path, y: Path) -> bool:
    """Whether two folders hold the same files with the same bytes: two frames' OME-Zarr
    stores written uncompressed with one metadata have every file's name and size alike,
    and one was skipped as the other's copy, its cells not counted."""
    if not (x.is_dir() and y.is_dir()):
        return False
    files = sorted(p.relative_to(x) for p in x.rglob("*") if p.is_file())
    if files != sorted(p.relative_to(y) for p in y.rglob("*") if p.is_file()):
        return False
    return all(_same_file(x / f, y / f) for f in files)
