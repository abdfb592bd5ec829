"""What software made a result: the record a run's summary carries so that a lab can trace a
count to the code and libraries that computed it (standard library only: the libraries'
versions are read from their installed metadata, none imported here, so the record is the
same in every process of a run).

``ctcnet``'s own version names a release; run from a git checkout, the commit it is at is
read from the checkout's ``.git`` (its ``HEAD`` and refs, without running git), since a
checkout's code changes between releases.
"""

from __future__ import annotations

import platform
from functools import lru_cache
from importlib import metadata
from pathlib import Path

# The installed distributions whose versions decide a run's numbers (torch is absent from
# the torch-free install, and left out there).
LIBRARIES = ("numpy", "scipy", "pandas", "pyarrow", "onnxruntime", "torch", "scikit-image",
             "tifffile")


def software_record() -> dict:
    """ctcnet's version (and the git commit of a checkout), Python, the platform and the
    installed versions of the numeric libraries."""
    from ctcnet import __version__

    return {"ctcnet": __version__, "commit": checkout_commit(),
            "python": platform.python_version(), "platform": platform.platform(),
            "libraries": library_versions()}


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """The installed version of each of :data:`LIBRARIES` (those installed)."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


@lru_cache(maxsize=1)
def checkout_commit() -> str | None:
    """The commit of the git checkout ctcnet runs from (None for an installed wheel, or where
    the checkout cannot be read)."""
    for folder in Path(__file__).resolve().parents:
        git = folder / ".git"
        if git.is_dir():
            return _head_commit(git)
        if folder == folder.parent:
            break
    return None


def _head_commit(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head or None  # a detached HEAD holds the commit itself
        ref = head[len("ref: "):]
        loose = git / ref
        if loose.is_file():
            return loose.read_text().strip() or None
        packed = git / "packed-refs"
        for line in packed.read_text().splitlines() if packed.is_file() else ():
            commit, _, name = line.partition(" ")
            if name.strip() == ref:
                return commit
    except OSError:
        return None
    return None
