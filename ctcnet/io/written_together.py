"""Several outputs written as one (every file of an export, a model and its cards): all of
them, or, where the block fails, none, and what they replace put back."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

log = logging.getLogger(__name__)


@contextlib.contextmanager
def written_together(folders: Iterable[str | Path] = (),
                     replacing: Iterable[str | Path] = ()) -> Iterator[list[Path]]:
    """Several outputs written as one (every file of an export): yields a list to which the
    block adds each file once written. If the block fails (the disk fills at the third file),
    the files it wrote are removed, and so are those of ``folders`` that it made and left
    empty: a rerun finds nothing of the failed try, so it needs no ``--overwrite`` for it, and
    nobody takes half an export for a whole one. ``replacing``: the files of an earlier
    output the block may write over or remove (``--overwrite``), kept aside (a hard link, as
    a temporary file) and put back if it fails: a failed rerun took the earlier export with
    it, and left half of one."""
    made = sorted((Path(f) for f in folders if not Path(f).exists()),
                  key=lambda f: len(f.parts), reverse=True)  # the deepest first
    written: list[Path] = []
    kept: dict[Path, Path] = {}
    try:
        for path in map(Path, replacing):
            aside = _kept_aside(path) if path.is_file() else None
            if aside is not None:
                kept[path] = aside
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
        for folder in made:
            with contextlib.suppress(OSError):  # not empty (another's files), or gone
                folder.rmdir()
        raise
    for aside in kept.values():
        with contextlib.suppress(OSError):
            aside.unlink()


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
