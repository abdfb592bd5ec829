"""A sample folder's own subfolders a run writes and deletes in: ``previous/`` (what a rerun
replaces) and ``gallery/`` (the report's tiles), each refused where a link or a file stands
there, so that nothing is written or deleted outside the results folder."""

from __future__ import annotations

from pathlib import Path

from ctcnet.io.atomic import own_folder, refuse_not_a_folder

PREVIOUS_DIR = "previous"
GALLERY_DIR = "gallery"  # the report's tiles
GALLERY_HOLDS = "the report's tiles (stale ones deleted)"  # what ctcnet keeps in it


def refuse_unsafe_folders(out_dir: str | Path) -> None:
    """A sample folder's ``previous/`` and ``gallery/``, which a run writes and deletes in,
    refused where a link or a file stands there (:func:`ctcnet.io.atomic.refuse_not_a_folder`),
    before any work: the earlier results are left as they were."""
    previous_folder(out_dir, make=False)
    refuse_not_a_folder(Path(out_dir) / GALLERY_DIR, GALLERY_HOLDS)


def previous_folder(out_dir: str | Path, make: bool = True) -> Path:
    """A sample folder's ``previous/``, made where missing (``make``), where what a rerun
    replaces is kept; refused (one line, the sample set aside: nothing is replaced) where it
    is a file or a link, which would take them elsewhere (outside ``--out``) or lose them."""
    folder = Path(out_dir) / PREVIOUS_DIR
    what = "the summary and exports a rerun replaces"
    return own_folder(folder, what) if make else (refuse_not_a_folder(folder, what) or folder)
