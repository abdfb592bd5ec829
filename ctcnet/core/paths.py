"""The one way a run names a file or folder in what it records: absolute and normalised (and,
in what is said, as its folder's own: :func:`shown_in`); and
the one way two names are told to be one on a share (:func:`name_key`); and whether files
were written lately (:func:`written_lately`: a scan perhaps still being copied).

``Path.absolute()`` keeps a ``..`` as given (``/runs/nightly/../scans/S1``), so one folder
named from two working directories reads as two, and a resumed run warned that its scan had
moved. Symbolic links are kept (not resolved): a link is how the lab named the folder.
"""

from __future__ import annotations

import os
import re
import time
import unicodedata
from pathlib import Path


def absolute(path: str | os.PathLike) -> str:
    """``path`` absolute, with ``.`` and ``..`` taken out as the disk reads them, as text: up
    to its last ``..`` it is resolved (``link/..`` is the folder above the link's target, not
    the folder the link lies in), the rest kept as given (a link's own name stays)."""
    full = Path(path).absolute()
    if ".." in full.parts:
        last = len(full.parts) - full.parts[::-1].index("..")
        full = Path(*full.parts[:last]).resolve().joinpath(*full.parts[last:])
    return os.path.normpath(full)


def unexpanded_home(path: str | os.PathLike) -> bool:
    """Whether ``path`` begins with a ``~`` the shell left as it is (``"~/ctc results"`` in
    quotes, a cron script's variable): a folder named ``~`` here, not the home folder it
    means (and pandas, expanding it, would read the home folder's)."""
    return re.match(r"~[\w.-]*(/|$)", os.fspath(path)) is not None


# What a path of :func:`unexpanded_home` is refused or not found with.
HOME_NOT_EXPANDED = ("it begins with a '~' the shell did not expand (in quotes?): write "
                     "$HOME/... or the whole path (./~ for a folder named '~')")


def name_key(name: str) -> str:
    """What a file or folder name is on every share: a Windows or macOS share tells no case
    apart ("S1" and "s1" are one folder) and macOS writes accents decomposed ("Mu\u0308ller"
    is "M\u00fcller"), so names alike but for those have one key."""
    return unicodedata.normalize("NFC", name).casefold()


def composed(name: str) -> str:
    """A name in its composed Unicode form (NFC), the one :func:`same_name` compares: a set
    of these is looked up once a name, not compared pair by pair."""
    return unicodedata.normalize("NFC", name)


def typed_id(text) -> str:
    """An identifier as two desks type it alike: spaces round it and the Unicode form of its
    accents aside (a patient id "Müller" typed on Linux and copied through macOS). One
    patient's serial draws are told by it wherever they meet: ``ctcnet draws``, the crop
    folder ``ctcnet crops`` writes and a training split (which, reading them as two
    patients, trained on one draw and held out the other)."""
    return composed(str(text)).strip()


def same_name(a: str, b: str) -> bool:
    """Whether two names are one name written in two Unicode forms: macOS (and a copy
    through it) writes "Pa\u0302tient" where Linux wrote "P\u00e2tient". Case still counts
    (unlike :func:`name_key`): these are the names a run recorded, compared as written."""
    return composed(a) == composed(b)


def as_listed(path: str | os.PathLike) -> Path:
    """``path``, or where it is not there, the entry of its folder named so in another Unicode
    form (a folder copied through macOS, or unzipped from its archive, has its accents
    decomposed: "Mu\u0308ller 7" for "M\u00fcller 7"): on Linux those are two names, and a
    rerun wrote a second, unreviewed "M\u00fcller 7" beside the signed one."""
    path = Path(path)
    if path.exists() or path.is_symlink():
        return path
    try:
        return next((entry for entry in path.parent.iterdir()
                     if same_name(entry.name, path.name)), path)
    except OSError:  # (its folder not there, or not listable: the path as given)
        return path


def as_listed_within(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path`` inside ``root`` with each of its parts below ``root`` :func:`as_listed`: a
    copy through macOS decomposes every folder's accents, "Müller/cell1.tif" too, not only
    the file's. ``path`` itself where it is there or lies outside ``root``."""
    path, root = Path(path), Path(root)
    if path.exists() or not path.is_relative_to(root):
        return path
    found = root
    for part in path.relative_to(root).parts:
        found = as_listed(found / part)
    return found


def name_in_folder(path: str | os.PathLike, root: str | os.PathLike) -> Path:
    """``path`` as named inside the folder ``root`` (itself where it lies outside): compared
    as both are named, then absolute, then resolved (a manifest's paths are resolved, a
    folder typed relative or given by a link is not)."""
    path, root = Path(path), Path(root)
    for inside, named in ((root, path), (root.absolute(), path.absolute()),
                          (root.resolve(), path.resolve())):
        if named.is_relative_to(inside):
            return named.relative_to(inside)
    return path


def shown_in(path: str | os.PathLike, root: str | os.PathLike) -> str:
    """``path`` as a folder's own (:func:`name_in_folder`), else whole: how a file of a
    folder is named in what is said of it."""
    return str(name_in_folder(path, root))


# What a share, a desktop or a copy leaves in any folder it shows: no one's work, no scan.
DESKTOP_FILES = frozenset({"thumbs.db", "desktop.ini", ".ds_store"})


def desktop_file(name: str) -> bool:
    """Whether a file of this name is one a desktop or a share leaves (case aside)."""
    return name.casefold() in DESKTOP_FILES


# What "lately" is: a scan's copy or a scanner's writing of one cartridge takes minutes.
WRITTEN_LATELY_S = 900.0


def written_lately(files, within_s: float = WRITTEN_LATELY_S, arrived: bool = False) -> bool:
    """Whether any of ``files`` was modified in the last ``within_s`` seconds (a frame or a
    scan's metadata that may still be being written); with ``arrived``, or came to be where it
    is (its inode changed: ``cp -p``, ``rsync -a`` keep a copy's modification time from its
    source, but its change time is the copy's own; a rename or a chmod reads so too). A
    modification time ahead of this machine's clock (a scanner's clock ahead) is read as the
    change time: a day ahead, a scan copied in long ago read as written lately all day."""
    now = time.time()
    for path in files:
        try:
            st = Path(path).stat()
            modified = st.st_mtime if st.st_mtime <= now + CLOCK_SLACK_S else st.st_ctime
            if now - (max(modified, st.st_ctime) if arrived else modified) < within_s:
                return True
        except OSError:
            continue
    return False


# How far ahead of this machine's clock a file's time may read and still be its own (clocks of
# machines in one lab drift by seconds).
CLOCK_SLACK_S = 60.0
