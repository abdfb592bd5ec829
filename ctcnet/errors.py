"""Errors that ctcnet reports to a person instead of a traceback.

Every check of user input raises :class:`InputError` with the offending file and what is wrong
with it; the CLI prints the message and exits non-zero. Library errors from deep inside tifffile,
PIL or onnxruntime are caught at the boundary and re-raised as one of these.
"""

from __future__ import annotations

import errno
import numbers
from pathlib import Path

from ctcnet.core.printable import printable_name


class CtcnetError(Exception):
    """Base class for errors ctcnet explains to the user."""


class InputError(CtcnetError):
    """Bad input data: a file that cannot be read, or is the wrong shape, dtype or panel."""

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = None if path is None else str(path)
        super().__init__(f"{printable_name(self.path)}: {message}" if self.path else message)


class OutputFolderError(InputError):
    """An output folder refuses the work: another run is writing to it, it holds another run's
    outputs (another model, settings or scan), or it cannot be written. A matter for whoever
    runs the job, not for the scan, which a run into another folder reads."""


class SampleIdTakenError(OutputFolderError):
    """The output folder holds a run of another scan under this sample id (other frames, read
    from another folder): two scans share a sample id, the lab's matter, which the scan's
    cartridge.json settles; ``set_aside_kind`` says ``input``."""


class FolderHeldError(OutputFolderError):
    """Another ctcnet process holds the output folder (another run of the same batch, a review
    server saving a decision): that process finishes it. ``held_since``: when it took the
    folder (seconds since the epoch; None where it did not say)."""

    def __init__(self, message: str, path: str | Path | None = None,
                 held_since: float | None = None):
        super().__init__(message, path)
        self.held_since = held_since


class FinishedEarlierError(OutputFolderError):
    """The output folder holds this sample's finished run, made by another version of ctcnet
    from the same scan with the same model and settings: its outputs are kept as they are (a
    night resumed after an upgrade keeps the samples it finished), read as this run's.
    ``summary``: the finished run's summary as read (a ``RunSummary``)."""

    def __init__(self, message: str, path: str | Path | None = None, summary=None):
        super().__init__(message, path)
        self.summary = summary


class Terminated(KeyboardInterrupt):
    """SIGTERM, as a scheduler stops a job (cron, SLURM, systemd, ``kill``), or SIGHUP (the
    terminal closed), raised where the command runs (its message: the signal's name): it stops
    as on Ctrl-C (what is done stays done, predict's journal closed), says so, and exits 143
    (129) as a process killed by the signal would."""


def stop_within(err: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C or stop signal (:class:`Terminated`) an import's error was raised from, if
    any: a signal that lands while a compiled extension is first imported (scipy's,
    matplotlib's) surfaces as that import's ImportError, caused by the signal, and a stopped
    run read as failed (exit 1, run.json "failed"). Other errors raised while a stop was
    handled (a full disk as the run's work was put away) stay what they are."""
    if isinstance(err, KeyboardInterrupt):
        return err
    if not isinstance(err, ImportError):
        return None
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, KeyboardInterrupt):
            return err
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return None


class WholeFileError(InputError):
    """A file read whole that its panel does not describe (its channels' names or count,
    values past their range or rescaled): no file still being written reads so, unlike one
    cut short, so no "still being written?" is said of it."""


class PanelMismatchError(WholeFileError):
    """Channels of the data do not match the channels the model was trained on."""


def check_device_name(name: str, option: str = "--device", also: str = "") -> str:
    """Refuse a ``--device`` (``option``) that is not auto, cpu, cuda or cuda:N (e.g. "gpu")
    by name; ``also``: the other values the option takes, as said."""
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(name)):
        raise InputError(f"{option} {name!r} is not one of {also}auto, cpu, cuda, cuda:N")
    return str(name)


def not_found(path: Path, missing: str) -> InputError:
    """The refusal of a path that is not there (``missing``: what is not found), saying where
    it is a link whose target is gone: listed, it looks there (a share not mounted)."""
    import os

    if Path(path).is_symlink():
        try:
            os.path.realpath(path, strict=True)
        except OSError as err:
            if err.errno == errno.ELOOP:  # (a link to itself, or links in a ring)
                return InputError(f"{missing}: it is a link that leads back to itself "
                                  f"({os.readlink(path)}), never to a file", path)
        return InputError(f"{missing}: it is a link to {os.readlink(path)}, which is not there "
                          "(a share not mounted, or moved?)", path)
    return InputError(missing, path)


# The machine's state, not the data or a bug: a full disk or quota, a file-size limit (ulimit
# -f), a read-only file system, a folder the user may not write, the open-files limit (ulimit
# -n), memory; each with what to do (:func:`machine_advice`). The command line exits 4 on them
# (ctcnet.cli) and checks say them so, never as a result that differs.
MACHINE_ERRNO_ADVICE = {
    errno.ENOSPC: "free space and {again}",
    errno.EDQUOT: "free space and {again}",
    errno.EFBIG: "raise the file-size limit (ulimit -f) and {again}",
    errno.EROFS: "write to another folder (--out)",
    errno.EACCES: "make the folder writable (or write to another --out) and {again}",
    errno.EPERM: "make the folder writable (or write to another --out) and {again}",
    errno.EMFILE: "raise the open-files limit (ulimit -n){or_fewer_workers}, and {again}",
    errno.ENFILE: "end other jobs (the system's open files are all taken) and {again}",
    errno.ENOMEM: "free memory ({fewer_workers}other jobs ended) and {again}"}
MACHINE_ERRNOS = frozenset(MACHINE_ERRNO_ADVICE)


def machine_advice(errno_: int, resumes: bool, workers: bool) -> str:
    """What to do of the machine's ``errno_``, for a command that ``resumes`` where it
    stopped on a plain rerun (predict's journal) or is run again whole, and has
    ``--workers`` or not (a simulate told to "rerun to resume" with fewer --workers had
    neither)."""
    return MACHINE_ERRNO_ADVICE[errno_].format(
        again="rerun to resume" if resumes else "run it again",
        or_fewer_workers=" or give fewer --workers" if workers else "",
        fewer_workers="fewer --workers, " if workers else "")


# Of those, the ones a read meets that say nothing of the file read: a frame read then is not
# a bad frame (skipped, its sample partial), but a run to stop and resume.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})


def is_resource_error(err: BaseException) -> bool:
    """Whether ``err`` is the process's resources running out (open files, memory): never a
    file's fault, so never said as a file that cannot be read."""
    return isinstance(err, MemoryError) or (isinstance(err, OSError) and
                                            err.errno in RESOURCE_ERRNOS)


# Of the machine's errors, those every later output meets alike (space, a size limit, open
# files, memory), where one folder made read-only or another account's is that output's own.
RUN_WIDE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG}) | RESOURCE_ERRNOS


def fails_every_output(err: BaseException) -> bool:
    """Whether ``err`` would fail every output written after it alike (a full disk, no
    memory, no thread to start): a run stops on it for a rerun, rather than recording one
    sample's failure and going on into the next."""
    if isinstance(err, OSError):
        return err.errno in RUN_WIDE_ERRNOS
    return is_machine_state(err)


def is_machine_state(err: BaseException) -> bool:
    """Whether ``err`` is the machine's state (a full disk, memory, a limit), not the data's
    or a bug's: what stops a run to be resumed, rather than one input's failure recorded and
    passed over (a full disk fails every input after it alike)."""
    if isinstance(err, MemoryError):
        return True
    if isinstance(err, OSError):
        return err.errno in MACHINE_ERRNOS
    # (threading's words where the process may start no more threads: a memory or task limit)
    return isinstance(err, RuntimeError) and str(err).startswith("can't start new thread")


# Files a command told to read crops may be given by mistake (a model in DATA's place).
MODEL_SUFFIXES = (".pt", ".ckpt", ".onnx")


def folder_not_found(path: Path, what: str = "crop dataset folder") -> InputError:
    """The error for a missing folder, or a model file given where the folder is meant."""
    if Path(path).is_file() and Path(path).suffix.lower() in MODEL_SUFFIXES:
        return InputError(f"a model file, not a {what} (a model is given with --model, or "
                          "finetune's --base)", path)
    if Path(path).exists():  # a file where the folder is meant: it is there, not "not found"
        return InputError(f"a file, not a {what}: pass the folder (for this file, "
                          f"{Path(path).parent})", path)
    return InputError(f"{what} not found", path)


def check_regular_file(path: str | Path, what: str = "a file",
                       missing: str = "file not found") -> Path:
    """Refuse a missing path, and a FIFO, socket, device or folder where a file is to be read:
    opening a FIFO blocks until something writes to it, so ctcnet never opens one."""
    import stat

    path = Path(path)
    if not path.exists():
        raise not_found(path, missing)
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        kind = ("folder" if stat.S_ISDIR(mode) else "FIFO" if stat.S_ISFIFO(mode) else
                "socket" if stat.S_ISSOCK(mode) else "device")
        raise InputError(f"not a regular file: a {kind} where {what} is meant", path)
    return path


def check_whole_number(value, least: int, name: str, may_be_none: bool = False) -> None:
    """InputError unless ``value`` (the option ``name``) is a whole number, not a bool, of
    ``least`` or more, or None where ``may_be_none``: a caller's -1 workers or 0 batch size
    ran as if nothing were wrong, or failed at the first model call."""
    if value is None and may_be_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise InputError(f"{name} is a whole number >= {least}"
                         f"{' or None' if may_be_none else ''}, got {value!r}")


def run_script(main, name: str):
    """Run a script's ``main`` and exit with its status; a refusal (:class:`CtcnetError`)
    ends in one line, as ctcnet's commands give it, not a traceback."""
    import sys

    try:
        status = main()
    except CtcnetError as err:
        sys.exit(f"{name}: {err}")
    sys.exit(status)
