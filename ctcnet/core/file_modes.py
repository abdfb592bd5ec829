"""The permissions of a file or folder ctcnet makes: the umask's, and no more open than its
folder's (:func:`new_file_mode`), for the results' files and the runs' logs alike; in a folder
a group shares (setgid and group-writable), as open to that group as the folder is, whatever
the umask of the account that writes it (the service account's run, each reviewer's
decisions: one account's umask of 022 locked the others out of the review)."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

log = logging.getLogger(__name__)
_UMASK_LOCK = threading.Lock()


def _current_umask() -> int:
    """The process's umask. Reading it means setting it and back: two threads doing so at
    once could leave it at 0 (every later file world-writable), hence the lock."""
    with _UMASK_LOCK:
        umask = os.umask(0)
        os.umask(umask)
    return umask


def _folder_mode(folder: Path) -> int | None:
    try:
        return os.stat(folder).st_mode
    except OSError:  # (the write in it says why)
        return None


def is_group_shared(mode: int) -> bool:
    """Whether a folder of ``mode`` is shared with its group: setgid (its files take its group)
    and group-writable, the usual way a lab shares one area between accounts."""
    return bool(mode & stat.S_ISGID) and bool(mode & stat.S_IWGRP)


def _group_share(folder: int) -> int:
    """The group read and write bits a file in a folder of mode ``folder`` takes from it: the
    folder's, where its group shares it (:func:`is_group_shared`); none elsewhere."""
    return folder & (stat.S_IRGRP | stat.S_IWGRP) if is_group_shared(folder) else 0


def new_file_mode(path: str | Path) -> int:
    """A new file's permissions: 0666 less the umask, group read and write added in a folder
    its group shares (:func:`is_group_shared`), and no more open than its folder (read and
    write bits; the owner's kept): a reviewer's umask of 022 made review.csv and the sign-off
    0644 in a sample folder predict wrote 0750 under a lab's umask of 027."""
    mode = 0o666 & ~_current_umask()
    folder = _folder_mode(Path(path).parent)
    if folder is None:
        return mode
    return (mode | _group_share(folder)) & ((folder & 0o666) | 0o600)


def group_unshared_text(folder: str | Path) -> str | None:
    """Why a group-writable folder would not share with its group what this account makes in
    it (None where it would, or is not group-writable): without setgid, its files take this
    account's own group, which the folder's other accounts cannot read (a service account's
    results read by no reviewer)."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    if not st.st_mode & stat.S_IWGRP or is_group_shared(st.st_mode) or \
            st.st_gid == os.getegid():
        return None
    return ("it is group-writable but not setgid: what ctcnet writes there takes this "
            "account's group, not the folder's, and the folder's other accounts may not read "
            "it; chmod g+s it, and give the group what it holds already, to share it "
            "(docs/review.md, \"A results folder several accounts write\")")


def rewritten_file_mode(path: str | Path, mode: int) -> int:
    """The permissions of a file of ``mode`` written again (renamed over): its own, with group
    read and write added in a folder its group shares: one written again by an account that
    could not write it in place is then open to the group's other accounts."""
    folder = _folder_mode(Path(path).parent)
    return mode if folder is None else mode | _group_share(folder)


def open_fd(path: str | Path, flags: int) -> int:
    """``os.open(path, flags)``; a file it creates (``O_CREAT``) gets :func:`new_file_mode`
    exactly: ``os.open``'s mode is cut by the umask again, which would take back the group
    write that a shared folder gives."""
    mode = new_file_mode(path)
    if flags & os.O_CREAT and not flags & os.O_EXCL:
        try:
            fd = os.open(path, flags | os.O_EXCL, mode)
        except FileExistsError:  # (or a link there: opened below, as the flags say)
            return os.open(path, flags & ~os.O_CREAT, mode)
    else:
        fd = os.open(path, flags, mode)
        if not flags & os.O_CREAT:
            return fd
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def make_folder(path: str | Path) -> Path:
    """``mkdir -p``; each folder made inside a folder its group shares is shared as it is
    (group read, write and search, setgid), whatever the umask: a sample folder the service
    account made 2750 under a umask of 027 would refuse every reviewer's decision. ``path``
    itself, where it was there already, this account's and unshared in a folder shared
    since, is shared so too (and given the folder's group), said: a sample folder the
    service account made before the results folder was shared took no reviewer's decision."""
    path = Path(path)
    made = []
    where = path
    while not where.exists() and where != where.parent:
        made.append(where)
        where = where.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in reversed(made):  # the outermost first: its parent's mode is final
        _share_like_parent(folder)
    if not made and _share_like_parent(path):
        log.info("%s: shared with its folder's group, as the folder is (made before the "
                 "folder was shared)", path)
    return path


def _share_like_parent(folder: Path) -> bool:
    """Give this account's ``folder``, inside a folder its group shares, that folder's group,
    group read, write and search, and setgid where it lacks them; whether it changed."""
    try:
        parent, own = os.stat(folder.parent), os.stat(folder)
    except OSError:
        return False
    if not is_group_shared(parent.st_mode) or own.st_uid != os.geteuid():
        return False  # (another account's: left as it is)
    mode = stat.S_IMODE(own.st_mode)
    wanted = mode | (parent.st_mode & stat.S_IRWXG) | stat.S_ISGID
    if wanted == mode and own.st_gid == parent.st_gid:
        return False
    try:
        if own.st_gid != parent.st_gid:  # (a group this account is in: it may)
            os.chown(folder, -1, parent.st_gid)
        os.chmod(folder, wanted)
    except OSError:
        return False
    return True


def owned_by_another(path: str | Path) -> bool:
    """Whether ``path`` belongs to another account than this process's (False where it cannot
    be looked at)."""
    try:
        return os.lstat(path).st_uid != os.geteuid()
    except OSError:
        return False


def owner_and_mode(path: str | Path) -> str:
    """Whose ``path`` is and its permissions, as a refusal names them: "ann's, mode 0640"."""
    try:
        st = os.lstat(path)
    except OSError:
        return "not to be read"
    return f"{account_name(st.st_uid)}'s, mode {stat.S_IMODE(st.st_mode):04o}"


def account_name(uid: int | None = None) -> str:
    """The login name of ``uid`` (this process's effective one where None); the number where
    it has none."""
    uid = os.geteuid() if uid is None else uid
    try:
        import pwd
    except ImportError:  # (no such accounts on this platform)
        return str(uid)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
