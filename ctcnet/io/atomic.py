"""Atomic file writes: an output is either complete or absent, never half written.

Every output ctcnet writes (tables, JSON, images, checkpoints) goes to a temporary file in the
same folder and is renamed into place, so a killed run never leaves a truncated file that a
resumed run would trust; outputs made as one (an export's files) are removed together when
one of them fails (:func:`ctcnet.io.written_together.written_together`). And a named output
that exists is not replaced unless asked (:func:`refuse_existing`): the commands'
``--overwrite``, the library's ``overwrite=True``; one that is a file the command reads is
never replaced (:func:`refuse_overwriting_inputs`), and one that could not be written at the
end is refused before the work (:func:`check_output_file`, :func:`check_output_folder`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import socket
import stat
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ctcnet.core.file_modes import make_folder, new_file_mode, open_fd, rewritten_file_mode
from ctcnet.core.paths import HOME_NOT_EXPANDED, absolute, unexpanded_home
from ctcnet.errors import FolderHeldError, InputError, OutputFolderError

log = logging.getLogger(__name__)
# What flock says when another process holds the lock; any other error is the filesystem's.
_HELD = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def refuse_not_a_folder(folder: str | Path, what: str) -> None:
    """Refuse (one line naming it) a link or a file standing at ``folder``, a folder ctcnet
    writes and deletes in (``what`` it keeps there): through a link planted there, the ctcnet
    account would overwrite and delete files outside the results folder."""
    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise InputError(f"is {'a link' if folder.is_symlink() else 'a file'}, not a folder: "
                         f"ctcnet keeps {what} there; move it away, then rerun", folder)


def own_folder(folder: str | Path, what: str) -> Path:
    """:func:`refuse_not_a_folder`, then the folder made where missing."""
    refuse_not_a_folder(folder, what)
    return make_folder(folder)


@contextlib.contextmanager
def atomic_path(path: str | Path, like: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` if the block succeeds.
    ``like``: a file whose permissions a new ``path`` takes (one file of a pair that is
    removed and written anew, beside one written over)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():  # (renamed over, a link is replaced itself)
        raise InputError("is a folder where ctcnet writes a file: move it away, then rerun",
                         path)
    make_folder(path.parent)
    try:  # (beside it as the disk reads the path: mkstemp reads `link/..` as text)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                                   dir=absolute(path.parent))
    except OSError as err:  # named by the output, not by the temporary name it tried
        raise OSError(err.errno, err.strerror, str(path)) from err
    os.close(fd)
    # mkstemp creates 0600 files; outputs get the usual permissions (0666 less the umask), and
    # a file written again keeps its own: a folder a lab made private (umask 077) stays so
    # when the review server, started under another umask, rewrites its summary.
    os.chmod(tmp, _mode_of(path, like))
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        # A write that failed without naming its file (a full disk, a file-size limit), or
        # naming the temporary file beside it (a folder made read-only as the run wrote), is
        # named here: the error says which output it was.
        if err.errno is not None and (err.filename is None or
                                      os.fsdecode(err.filename) == str(tmp_path)):
            raise OSError(err.errno, err.strerror, str(path)) from err
        if err.errno is None and _SHORT_WRITE.search(str(err)):  # (numpy's tofile, unnumbered)
            raise OSError(errno.ENOSPC, f"a write cut short ({err}): no space left on the "
                          "disk, or a file-size limit", str(path)) from err
        raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


# How numpy says a write was cut short (a full disk, a file-size limit), with no error number.
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


# What :func:`atomic_path` names its temporary files: ".<name>.<8 random characters>.tmp<suffix>".
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[^.]*)?$")


def remove_stale_temporaries(folder: str | Path) -> int:
    """Remove the temporary files that :func:`atomic_path` left in ``folder`` (and below) when
    its process was killed between writing and renaming; returns how many. Only for a folder
    no other writer uses now (hold :func:`exclusive_folder`)."""
    removed = 0
    for path in Path(folder).rglob(".*.tmp*"):
        if _TEMPORARY.match(path.name) and path.is_file():
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    return removed


def _mode_of(path: Path, like: str | Path | None) -> int:
    """The permissions :func:`atomic_path` gives ``path``: its own where it is a file, else
    ``like``'s where that is one, else those of a new file (:func:`new_file_mode`)."""
    for there in (path, like):
        if there is None:
            continue
        try:
            found = os.lstat(there)
        except OSError:  # not there yet (or not to be read: the rename says so)
            continue
        if stat.S_ISREG(found.st_mode):
            return rewritten_file_mode(path, stat.S_IMODE(found.st_mode))
    return new_file_mode(path)


def atomic_write_bytes(path: str | Path, data: bytes, like: str | Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file, synced and renamed over it: a reader
    never sees half a file (``like``: :func:`atomic_path`'s)."""
    with atomic_path(path, like) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str, like: str | Path | None = None) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically (:func:`atomic_write_bytes`)."""
    # A path of a name that is not UTF-8 (b'cart\xe9') holds lone surrogates, which UTF-8 cannot
    # encode: written as the escape "\udce9" (valid UTF-8; a JSON reader gets the path back).
    atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"), like)


# How each mode opens a file, beside O_NOFOLLOW (open_own).
_OPEN_FLAGS = {"a": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
               "a+": os.O_RDWR | os.O_APPEND | os.O_CREAT,
               "a+b": os.O_RDWR | os.O_APPEND | os.O_CREAT,
               "r+b": os.O_RDWR, "rb": os.O_RDONLY, "r": os.O_RDONLY}


def open_own(path: str | Path, mode: str, encoding: str | None = None):
    """``open(path, mode)`` (``a``, ``a+``, ``a+b``, ``r+b``, ``rb``, ``r``) that never follows a
    symbolic link at ``path``: a lock or journal file ctcnet writes in place, not by replacing it. A
    link planted there by anyone who may write the results folder (a shared, group-writable
    area) made ctcnet truncate and write the file it points to, with the rights of the
    account that runs it; it is refused, naming it (OutputFolderError)."""
    flags = _OPEN_FLAGS[mode] | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = open_fd(path, flags)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        raise OutputFolderError("is a symbolic link: ctcnet writes its locks and journals "
                                "in place and never through a link (one planted in a results "
                                "folder would have it overwrite the file it points to); "
                                "remove the link", path) from None
    return os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None)


def append_synced(path: str | Path, data: bytes) -> None:
    """Append ``data`` to the journal ``path`` and fsync it; where this account may not write
    the file in place (another's, made under a umask of 022) but may write its folder, the
    file is written again whole with ``data`` at its end, atomically. For journals appended
    under their lock only: a rewrite would lose a line appended meanwhile. A write cut short (a
    full disk) is taken back: no half line for the next to join (a sign-off history read its
    next sign-off as edited since); after a line a killed writer left unended, a new line."""
    try:
        with open_own(path, "a+b") as fh:
            fd = fh.fileno()  # (written unbuffered: nothing is left to write on closing)
            end = os.lseek(fd, 0, os.SEEK_END)
            data = data if not end or os.pread(fd, 1, end - 1) == b"\n" else b"\n" + data
            try:
                left = memoryview(data)
                while left:
                    left = left[os.write(fd, left):]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                raise
    except PermissionError:
        if not Path(path).is_file():
            raise
        atomic_write_bytes(path, Path(path).read_bytes() + data)


def open_lock(path: str | Path):
    """A lock file opened to ``flock`` (text, ``a+``): read-only where it is there and this
    account may not write it (another reviewer's, made under a umask of 022), since a lock
    needs no write; what a holder writes into it (its name) is then not written."""
    try:
        return open_own(path, "a+")
    except PermissionError:
        if not Path(path).is_file():
            raise
        return open_own(path, "r")


@contextlib.contextmanager
def exclusive_folder(folder: str | Path, what: str = "run", wait_s: float = 0.0,
                     wait_for: tuple[str, ...] = ()) -> Iterator[None]:
    """Hold an advisory lock on ``folder`` for the block, as ``what`` (``predict``,
    ``review``); a second holder is refused, naming the one that holds it.

    Two runs writing one output folder would both do all the work, and one's ``--overwrite``
    would delete the files the other is writing. The lock (``flock`` on ``.ctcnet.lock``) is
    released by the kernel when the process dies, so a killed run never leaves a stale lock.
    While the holder is one of ``wait_for`` (writers that hold the folder for moments, as the
    review server saving a decision does), the lock is tried again for up to ``wait_s``
    seconds before the refusal: a nightly predict must not fail because someone is reviewing.
    """
    folder = Path(folder)
    created = not folder.exists()
    make_folder(folder)
    try:
        import fcntl
    except ImportError:  # no flock on this platform: run unlocked rather than not at all
        yield
        return
    with open_lock(folder / ".ctcnet.lock") as fh:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as err:
                if err.errno not in _HELD:  # a filesystem without locks (NFS without lockd)
                    log.warning("%s: this filesystem cannot lock folders (%s): running without "
                                "the lock, so make sure no other run writes to it", folder,
                                err.strerror or err)
                    yield
                    return
                holder, since, where = _lock_holder(fh)
                if holder not in wait_for or time.monotonic() >= deadline:
                    raise FolderHeldError(
                        f"another ctcnet {holder or 'process'}{where} is writing to this "
                        "folder: wait for it (it finishes this output; if that process is "
                        "gone, killed or preempted, run this command again), or use another "
                        "--out", folder, since) from None
                time.sleep(0.05)
        try:  # who holds it, for the refusal of the next one
            fh.seek(0)
            fh.truncate()
            fh.write(f"{what} {os.getpid()} {time.time():.3f} {socket.gethostname()}\n")
            fh.flush()
        except OSError:
            pass
        try:
            yield
        finally:
            if created:  # nothing written (an input set aside): no folder left of it
                _remove_if_only_the_lock(folder)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _remove_if_only_the_lock(folder: Path) -> None:
    """Remove ``folder`` where it holds only its lock file (a run that made it and wrote
    nothing, as for an input set aside), else leave it; removed under the lock, so another
    run opening the lock afterwards makes a folder of its own."""
    try:
        if [p.name for p in folder.iterdir()] == [".ctcnet.lock"]:
            (folder / ".ctcnet.lock").unlink()
            folder.rmdir()
    except OSError:  # written to meanwhile, or not ours to remove: left as it is
        pass


def folder_is_held(folder: str | Path) -> bool:
    """Whether a ctcnet process holds ``folder`` now (:func:`exclusive_folder`'s lock): a run
    that was killed holds it no more. False where it has no lock file or locks cannot be
    taken here."""
    try:
        import fcntl

        with open_own(Path(folder) / ".ctcnet.lock", "rb") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                return err.errno in _HELD
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return False
    except (ImportError, OSError):
        return False


def _lock_holder(fh) -> tuple[str | None, float | None, str]:
    """The kind of process (``predict``, ``review``) that wrote its name into a lock file it
    holds, when it took the lock (seconds since the epoch), None for either where unknown (an
    older ctcnet, or the moment before it writes), and which process it is, " (pid 4242 on
    node7)" ("" where unknown): an operator finds it in the scheduler's list."""
    try:
        fh.seek(0)
        words = fh.read().split()
    except (OSError, ValueError):
        return None, None, ""
    try:
        since = float(words[2]) if len(words) > 2 else None
    except ValueError:
        since = None
    pid = words[1] if len(words) > 1 and words[1].isdigit() else None
    where = f" (pid {pid}{f' on {words[3]}' if len(words) > 3 else ''})" if pid else ""
    return (words[0] if words else None), since, where


def existing_outputs(paths: Iterable[str | Path]) -> list[Path]:
    """The paths that exist as a file (or link) or a folder with anything in it: an empty
    folder holds nothing to lose."""
    out = []
    for path in map(Path, paths):
        if path.is_symlink() or path.is_file() or (path.is_dir() and any(path.iterdir())):
            out.append(path)
        elif path.exists() and not path.is_dir():  # a FIFO or device named like the output
            out.append(path)
    return out


def refuse_existing(paths: Iterable[str | Path], overwrite: bool, where: str = "--out") -> None:
    """Refuse, before any work, to write over outputs that exist, unless ``overwrite``: a
    model, an export or a dataset made earlier (perhaps in hours) is not lost to a repeated
    command line or a repeated call."""
    found = [] if overwrite else existing_outputs(paths)
    if found:
        names = ", ".join(str(p) for p in found)
        them = "it" if len(found) == 1 else "them"
        raise InputError(f"{names} already exist{'s' if len(found) == 1 else ''}; pass "
                         f"--overwrite (overwrite=True from Python) to replace {them}, or "
                         f"choose another {where}")


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (through links, ``..`` or another spelling)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return a.resolve() == b.resolve()


def refuse_overwriting_inputs(out: str | Path, inputs: Iterable[str | Path | None],
                              where: str = "--out") -> None:
    """Refuse, even with ``--overwrite``, to write an output over a file the same command
    reads (the model it starts from): the result would replace what it was made from, and a
    failed run would leave neither."""
    out = Path(out)
    for source in inputs:
        if source is not None and _same_file(out, Path(source)):
            raise InputError(f"is the model this command reads; it is never written over: "
                             f"choose another path for {where}", out)


def check_output_path(path: str | Path, where: str = "--out") -> None:
    """Refuse, before any work, an output path no run could write as meant (``where``: the
    option or folder to choose again): one beginning with a ``~`` the shell did not expand (a
    folder named ``~`` made here, while pandas, expanding it, read the home folder's tables);
    one whose name is not UTF-8 (bytes another system's encoding wrote: Parquet and the other
    writers take UTF-8 paths only, so the run would fail at its first table, after its work),
    or that a non-UTF-8 locale would write in its own encoding; one too long for the files
    written under it."""
    if unexpanded_home(path):
        raise InputError(f"{where}: {HOME_NOT_EXPANDED}", path)
    full = Path(path).absolute()
    try:
        os.fsdecode(full).encode("utf-8")
    except UnicodeEncodeError:
        try:  # its own name is fine: a folder it lies in (the working folder?) is not
            os.fsdecode(full.name).encode("utf-8")
        except UnicodeEncodeError:
            whose = "its name is"
        else:
            whose = f"the path of the folder it lies in ({full.parent}) is"
        raise InputError(f"{whose} not UTF-8, so the tables cannot be written under it; "
                         f"choose another {where} (a path in UTF-8)", path) from None
    try:
        on_disk(full)
    except UnicodeEncodeError:  # (a Latin-1 locale's 患者17: a traceback ended the batch)
        raise InputError(f"this system writes file names in {sys.getfilesystemencoding()}, "
                         f"which cannot write this one; {_UTF8_LOCALE}", path) from None
    named = max(full.parts, key=lambda part: len(os.fsencode(part)))
    if len(os.fsencode(named)) > NAME_MAX:
        raise InputError(f"a folder name in it is {len(os.fsencode(named))} bytes long, past "
                         f"the {NAME_MAX} a file system allows ({named[:40]}...); choose "
                         f"another {where}", path)
    longest = _path_max(full) - OUTPUT_DEPTH_BYTES
    if len(on_disk(full)) > longest:  # the last table written (a traceback, after the work)
        raise InputError(f"the path is {len(on_disk(full))} bytes long: the files a run "
                         f"writes under it need up to {OUTPUT_DEPTH_BYTES} more, past the "
                         f"{longest + OUTPUT_DEPTH_BYTES} this system allows; choose a "
                         f"shorter {where}", path)
    if on_disk(full) != os.fsdecode(full).encode("utf-8"):  # a Latin-1 locale's Müller
        raise InputError(f"this system writes file names in {sys.getfilesystemencoding()}, "
                         "and the tables' writer reads them as UTF-8: a name beyond ASCII "
                         f"would be another file to it; {_UTF8_LOCALE}", path)


_UTF8_LOCALE = "run in a UTF-8 locale (LC_ALL=C.UTF-8) or with PYTHONUTF8=1"


# The bytes a run's files take under its --out: a sample's folder (an id of up to 200 bytes),
# its journal's folder and a temporary file's name.
OUTPUT_DEPTH_BYTES = 400
NAME_MAX = 255  # bytes of one file or folder name (ext4, XFS, NTFS, most shares)


def _path_max(path: Path) -> int:
    """The longest path this system takes where ``path`` would lie (4096 on Linux)."""
    for there in (path, *path.parents):
        if there.exists():
            try:
                return int(os.pathconf(there, "PC_PATH_MAX"))
            except (OSError, ValueError, AttributeError):  # not asked here (Windows)
                break
    return 4096


def on_disk(path: Path) -> bytes:
    """The bytes ``path`` is written as on disk (this system's file-name encoding)."""
    return os.fsencode(path)


def check_output_file(path: str | Path, where: str = "--out", example: str = "model.pt",
                      earlier: str | None = None, suffix: str | None = None) -> None:
    """Refuse, before any work, an output file that could not be written at the end: a folder
    (or FIFO, device) at that path, or a folder for it that is not a folder or not writable.
    A long run that fails only when it saves its result loses all of it (``example``: a name
    the refusal offers inside a folder given). Missing folders are fine: :func:`atomic_path`
    makes them, so the nearest one that exists must be writable. ``earlier``: what a file
    already there would be (the command's ``--overwrite`` not given): it is refused, named so,
    and kept. ``suffix``: the one its kind is told by (``.onnx``), refused otherwise."""
    path = Path(path)
    check_output_path(path, where)
    if suffix and path.suffix.lower() != suffix:  # (a tool tells a model's kind by it)
        raise InputError(f"{where} names a {suffix} file: give it the {suffix} suffix", path)
    if earlier is not None and path.is_file():
        raise InputError(f"exists: {earlier}? choose another {where}, or pass --overwrite to "
                         "write over it", path)
    if path.is_dir():
        raise InputError(f"is a folder; {where} names the file to write (e.g. "
                         f"{path / example})", path)
    if path.exists() and not path.is_file():
        raise InputError(f"is not a regular file (a FIFO or device?); choose another {where}",
                         path)
    folder = path.absolute().parent
    while not folder.exists() and not folder.is_symlink() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder, so nothing can be written under it; "
                         f"choose another {where}", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"folder {folder} is not writable; choose another {where}", path)


def check_output_folder(path: str | Path, where: str = "--out") -> None:
    """Refuse, before any work, an output folder whose path is taken by a file (or FIFO,
    device): the folder could not be made there."""
    path = Path(path)
    check_output_path(path, where)
    if path.exists() and not path.is_dir():
        raise InputError(f"exists and is not a folder; {where} names a folder to write; "
                         "choose another", path)
