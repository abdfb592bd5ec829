"""Several outputs written as one (every file of an export): a block that fails takes back
the files it wrote and puts back the earlier output it replaced, and a block stopped outright
(SIGKILL, the machine's power) leaves a journal, ``JOURNAL``, by which the next block into
the same place does so first: nobody takes half an export, or an export half replaced, for a
whole one, and no hidden copy of the earlier one is left behind."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ctcnet.io.atomic import atomic_write_text

log = logging.getLogger(__name__)

# The journal of a block at work (in the place given as ``journal``'s folder).
JOURNAL = ".ctcnet-written-together.json"


class _Journalled(list):
    """The files a block has written, each added to its journal as it is (a list that
    rewrites ``journal`` with ``kept`` on every append)."""

    def __init__(self, journal: Path | None, kept: dict[Path, Path]):
        super().__init__()
        self.journal, self.kept = journal, kept
        self._write()

    def append(self, path) -> None:
        super().append(Path(path))
        self._write()

    def _write(self) -> None:
        if self.journal is not None:
            atomic_write_text(self.journal, json.dumps(
                {"written": [str(p) for p in self],
                 "kept": {str(k): str(v) for k, v in self.kept.items()}}) + "\n")


def take_back_stopped(journal: Path) -> None:
    """Where a block into ``journal``'s place was stopped outright: its files taken back, the
    earlier output it was replacing put back (said), the journal removed."""
    try:
        record = json.loads(journal.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        record = {}
    kept = {Path(k): Path(v) for k, v in (record.get("kept") or {}).items()}
    for path in map(Path, record.get("written") or []):
        if path not in kept:
            with contextlib.suppress(OSError):
                path.unlink()
    for path, aside in kept.items():
        with contextlib.suppress(OSError):
            os.replace(aside, path)
    with contextlib.suppress(OSError):
        journal.unlink()
    log.warning("%s: an earlier write here was stopped outright midway: its %d file(s) taken "
                "back and the %d it was replacing put back", journal.parent,
                len(record.get("written") or []), len(kept))


@contextlib.contextmanager
def written_together(folders: Iterable[str | Path] = (),
                     replacing: Iterable[str | Path] = (),
                     journal: str | Path | None = None) -> Iterator[list[Path]]:
    """Several outputs written as one (every file of an export): yields a list to which the
    block adds each file once written. If the block fails (the disk fills at the third file),
    the files it wrote are removed, and so are those of ``folders`` that it made and left
    empty: a rerun finds nothing of the failed try, so it needs no ``--overwrite`` for it, and
    nobody takes half an export for a whole one. ``replacing``: the files of an earlier
    output the block may write over or remove (``--overwrite``), kept aside (a hard link, as
    a temporary file) and put back if it fails: a failed rerun took the earlier export with
    it, and left half of one. ``journal``: where the block's journal lies while it works (a
    block stopped outright there before is taken back first, :func:`take_back_stopped`)."""
    journal = Path(journal) if journal is not None else None
    if journal is not None:
        take_back_stopped(journal)
    made = sorted((Path(f) for f in folders if not Path(f).exists()),
                  key=lambda f: len(f.parts), reverse=True)  # the deepest first
    if journal is not None:
        journal.parent.mkdir(parents=True, exist_ok=True)
    kept: dict[Path, Path] = {}
    written: list[Path] = []
    try:
        for path in map(Path, replacing):
            aside = _kept_aside(path) if path.is_file() else None
            if aside is not None:
                kept[path] = aside
        written = _Journalled(journal, kept)
        yield written
    except BaseException:
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        for path, aside in kept.items():
            with contextlib.suppress(OSError):
                if path.exists() and os.path.samefile(path, aside):
                    aside.unlink()  # never replaced (a rename onto its own link does nothing)
                else:
                    os.replace(aside, path)
        if journal is not None:  # (taken back: nothing left to take back)
            with contextlib.suppress(OSError):
                journal.unlink()
        for folder in made:
            with contextlib.suppress(OSError):  # not empty (another's files), or gone
                folder.rmdir()
        raise
    for aside in kept.values():
        with contextlib.suppress(OSError):
            aside.unlink()
    if journal is not None:
        with contextlib.suppress(OSError):
            journal.unlink()


def _kept_aside(path: Path) -> Path | None:
    """A copy of ``path`` beside it under a hidden temporary name (``.<name>.<hex>.tmp``, of
    no output's suffix: a sweep of an export's ``*.geojson`` passes it by): a hard link where
    the file system allows one (no bytes copied), else a copy; None, said, where neither can
    be made (the file is then not put back if the block fails)."""
    aside = path.with_name(f".{path.name}.{os.urandom(4).hex()}.tmp")
    try:
        try:
            os.link(path, aside)
        except OSError:
            import shutil

            shutil.copy2(path, aside)
    except OSError as err:
        with contextlib.suppress(OSError):
            aside.unlink()
        log.warning("%s: could not be kept aside (%s): if this write fails it is not put back",
                    path, err.strerror or err)
        return None
    return aside
