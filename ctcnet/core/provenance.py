"""What software made a result: the record a run's summary carries so that a lab can trace a
count to the code and libraries that computed it (standard library only: the libraries'
versions are read from their installed metadata, none imported here, so the record is the
same in every process of a run).

``ctcnet``'s own version names a release; run from a git checkout, the commit it is at is
read from the checkout's ``.git`` (its ``HEAD`` and refs, without running git; a worktree's
``.git`` file is followed), since a checkout's code changes between releases, and whether the
package's tracked files differ from that commit (``modified``: asked of git where it is
installed; None where it cannot be told), since a count made by edited code is no commit's.
Every record also holds ``code_sha256``, a digest of the package's own files as they are:
an installed package has no commit, and its version alone names no code (two builds between
releases share it), so this is what tells the code that counted apart wherever it runs.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
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

    commit = checkout_commit()
    return {"ctcnet": __version__, "commit": commit,
            **({"modified": checkout_modified()} if commit else {}),
            "code_sha256": code_digest(),
            "python": platform.python_version(), "platform": platform.platform(),
            "libraries": library_versions()}


def made_now() -> dict:
    """What made a file and when, for a model file's record of its making (a fine-tune, a
    recalibration): :func:`software_record` and the UTC time."""
    from datetime import UTC, datetime

    return {"software": software_record(), "at": datetime.now(UTC).isoformat(timespec="seconds")}


def check_record() -> dict:
    """Who checked, where, when and with what (a qualification's or an audit's evidence):
    ``checked_at`` (UTC), ``host``, ``user`` (None for a container's nameless uid) and
    :func:`software_record`."""
    import getpass
    import socket
    import time

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # a container's uid with no name
        user = None
    return {"checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": socket.gethostname(), "user": user, "software": software_record()}


def software_text(software: dict | None, version: str | None = None) -> str:
    """A software record (:func:`software_record`'s) in words: ctcnet's version, and the
    checkout's commit where run from one, said modified where its code differed from it."""
    software = software or {}
    text = f"ctcnet {software.get('ctcnet') or version or '?'}"
    commit, code = software.get("commit"), software.get("code_sha256")
    # Modified unknown (None: git would not say, e.g. a checkout another user owns) reads as
    # neither clean nor modified, and the code's digest names what ran.
    modified = software.get("modified", False)  # (a record older than the key: as clean)
    if commit:
        text += f", commit {commit[:12]}" + (" (modified)" if modified else
                                             " (modified: unknown)" if modified is None else "")
    if code and (not commit or modified or modified is None):  # what names the code then
        text += f", code {code[:12]}"
    return text


# The package's files that make its numbers and pages (not caches, not the models, which
# carry digests of their own, nor the training configs: links in a checkout, files in a wheel,
# they would give the same code two digests).
CODE_SUFFIXES = (".py", ".html", ".json", ".yaml")
LINKED_FOLDERS = ("models", "configs")


@lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 over the package's own files (:data:`CODE_SUFFIXES`; each path, relative, and
    its bytes, in path order), read once a process: the code that ran, named wherever it was
    installed from. Files that cannot be read are named as such."""
    import hashlib

    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in CODE_SUFFIXES and
                       "__pycache__" not in p.parts and
                       p.relative_to(package).parts[0] not in LINKED_FOLDERS):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"unreadable")
        digest.update(b"\0")
    return digest.hexdigest()


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


def _checkout() -> Path | None:
    """The root of the git checkout ctcnet runs from (the folder holding this ``ctcnet``
    package and a ``.git``), or None: an installed wheel, even one installed inside another
    repository's folder (a virtualenv in a checkout), whose commit is not the running code's."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / ".git").exists() else None


@lru_cache(maxsize=1)
def checkout_commit() -> str | None:
    """The commit of the git checkout ctcnet runs from (None for an installed wheel, or where
    the checkout cannot be read)."""
    root = _checkout()
    if root is None:
        return None
    git = root / ".git"
    if git.is_file():  # a worktree: "gitdir: <its folder in the main repository>"
        try:
            text = git.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if not text.startswith("gitdir: "):
            return None
        git = (root / text[len("gitdir: "):]).resolve()
    return _head_commit(git)


@lru_cache(maxsize=1)
def checkout_modified() -> bool | None:
    """Whether the package's tracked files in the checkout differ from its commit (None: no
    checkout, no git installed, or git could not tell)."""
    root, git = _checkout(), shutil.which("git")
    if root is None or git is None:
        return None
    try:
        # --no-optional-locks: a status refreshes and writes .git/index (index.lock): a run
        # writes nothing outside --out. safe.directory: git refuses a checkout another
        # account owns ("dubious ownership": every other user read "modified: unknown"),
        # although its owner already controls the code this process runs from it; no
        # fsmonitor command of its config is run for that.
        done = subprocess.run([git, "-c", f"safe.directory={root}", "-c", "core.fsmonitor=",
                               "-C", str(root), "--no-optional-locks", "status",
                               "--porcelain", "--untracked-files=no", "--", "ctcnet"],
                              capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(done.stdout.strip()) if done.returncode == 0 else None


def _head_commit(git: Path) -> str | None:
    # A worktree keeps its own HEAD; its refs are the main repository's (commondir).
    common = git
    try:
        if (git / "commondir").is_file():
            common = (git / (git / "commondir").read_text(encoding="utf-8").strip()).resolve()
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref: "):
            return head or None  # a detached HEAD holds the commit itself
        ref = head[len("ref: "):]
        loose = common / ref
        if loose.is_file():
            return loose.read_text(encoding="utf-8").strip() or None
        packed = common / "packed-refs"
        for line in packed.read_text(encoding="utf-8").splitlines() if packed.is_file() else ():
            commit, _, name = line.partition(" ")
            if name.strip() == ref:
                return commit
    except OSError:
        return None
    return None
