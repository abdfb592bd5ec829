"""List files: a text file naming inputs (cartridges, folders of them, crop sets), one a line.

``ctcnet predict`` and ``ctcnet evaluate`` take one wherever they take a folder. A list may
name other lists; a relative line is read from the list's own folder; blank lines and lines
starting with ``#`` are skipped. A list that names itself, directly or through other lists,
is refused: read naively it would be read again forever. A file that a frame source reads (an
OME-TIFF, CZI, ND2 or LIF holding a whole scan) is passed on as the scan it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ctcnet.core.paths import name_key
from ctcnet.errors import InputError
from ctcnet.io.metadata_text import read_metadata_text
from ctcnet.io.sources import claim

# The files of a scan folder or of a run's outputs, never a list of inputs (cartridge.json,
# panel.json, summary.json, events.parquet ...): given alone, their folder was meant.
NOT_LISTS = (".json", ".parquet", ".fcs", ".html", ".npz", ".geojson")


def _is_frame_file(path: Path) -> bool:
    """Whether a frame source reads ``path`` (an OME-TIFF holding a whole scan, a frame file):
    a scan, never a list, whatever its bytes."""
    try:
        return claim(path) is not None
    except InputError:  # named like a frame but unreadable as one: said where it is opened
        return True


def read_list_file(path: str | Path) -> list[Path]:
    """The paths a list file names, relative ones taken from the list's folder.

    Refused, by the list's name: a list that names nothing (a nightly job whose list came out
    empty must not pass as a run), and a line naming no file or folder, by its number (a text
    file that is no list, a CSV say, fails at its first line, not as a path of its header).
    """
    path = Path(path)
    not_a_list = InputError("not a list of cartridge folders (a text file, one path per line); "
                            "pass the cartridge folder itself", path)
    if path.suffix.lower() in NOT_LISTS:  # a scan's or a run's own file, given for its folder
        raise InputError(f"a {path.suffix} file, no list of inputs: pass the folder holding "
                         f"it ({path.parent})", path)
    try:
        # As the metadata files are read: a list saved by Notepad (a byte-order mark, UTF-16,
        # an accented name in Windows-1252) reads as its author wrote it.
        text = read_metadata_text(path)
    except InputError:
        raise not_a_list from None
    if "\0" in text:  # binary, whatever it decoded as
        raise not_a_list
    named = []
    for number, whole in enumerate(text.splitlines(), 1):
        line = whole.strip()
        if not line or line.startswith("#"):
            continue
        target = _target(path, line)
        if not target.exists() and whole != line and _target(path, whole).exists():
            target = _target(path, whole)  # a folder whose name ends in a space
        unquoted = _unquoted(line)
        if not target.exists() and unquoted != line and _target(path, unquoted).exists():
            target = _target(path, unquoted)  # Windows' "Copy as path" quotes the path
        if not target.exists():
            shown = line if len(line) <= 80 else line[:77] + "..."
            meant = _meant(path, line)
            raise InputError(f"line {number} names {shown!r}, which does not exist"
                             + (f"; did you mean {meant!r}?" if meant else "")
                             + " (read as a list file: one cartridge folder, crop set or list "
                             "a line, relative to the list's folder)", path)
        named.append(target)
    if not named:
        raise InputError("the list file names no inputs (one cartridge folder, crop set or "
                         "list a line; blank lines and # comments are skipped)", path)
    return named


def _unquoted(line: str) -> str:
    """``line`` without the quotes round it (``"D:\\scans\\P01"``, as Windows' "Copy as
    path" writes it; ``'...'``), else as it is."""
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        return line[1:-1]
    return line


def _target(list_file: Path, line: str) -> Path:
    """What a line of a list names: an absolute path, or one relative to the list's folder."""
    return Path(line) if Path(line).is_absolute() else list_file.parent / line


def _meant(list_file: Path, line: str) -> str | None:
    """What a list's line that names nothing may have meant: the path with Windows'
    backslashes as slashes, or the one entry of its folder alike but for case or the
    encoding of its accents (a list typed on another system than the share's)."""
    slashed = line.replace("\\", "/")
    if slashed != line and _target(list_file, slashed).exists():
        return slashed
    target = _target(list_file, slashed)
    try:
        alike = [p.name for p in target.parent.iterdir()
                 if name_key(p.name) == name_key(target.name)]
    except OSError:
        return None
    return str(target.parent / alike[0]) if len(alike) == 1 else None


def expand_list_files(inputs: Iterable[str | Path],
                      reading: tuple[Path, ...] = ()) -> list[Path]:
    """``inputs`` with every list file replaced by what it names, recursively, in order.

    ``reading``: the lists being read around this call (resolved), to refuse a cycle by name.
    Anything that is not a regular file (a folder, a missing path) is passed on as it is. One
    path given alone (``"carts"``, not ``["carts"]``) is that one input, not its letters.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[Path] = []
    for raw in inputs:
        path = Path(raw)
        if not path.is_file() or _is_frame_file(path):
            out.append(path)
            continue
        here = path.resolve()
        if here in reading:
            chain = " -> ".join(str(p) for p in (*reading[reading.index(here):], here))
            raise InputError(f"list file names itself ({chain}); a list may name cartridges, "
                             "crop sets and other lists, never one it is read from", path)
        out += expand_list_files(read_list_file(path), (*reading, here))
    return out
