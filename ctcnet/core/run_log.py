"""A command's own log file in its output folder: what an unattended run said, kept for an audit.

A nightly job's stderr goes to cron's mail or a journal that is rotated away, and the console
shows warnings alone. :func:`run_log` keeps every ``ctcnet`` record of a run from INFO up, each
with its UTC time, and once the run has begun (:meth:`RunLog.open`: its checks passed, so a
refused command leaves no folder behind) writes them to
``<folder>/logs/<command>-<UTC start>-<host>-<pid>.log``, whatever the console's level (``--quiet``,
``-v``): what ran (the command line, the version, the host and process), every note, warning
and error, the outcome lines the command prints (:meth:`RunLog.note`), and how it ended (its
exit status, or the error or signal that ended it). The console's output is unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ctcnet.core.file_modes import make_folder, open_fd
from ctcnet.core.printable import PrintableFormatter

LOGS_DIR = "logs"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_HELD_MAX = 10_000  # records kept before the file opens (a refused run's are dropped)


def ending_text(error: BaseException | str) -> str:
    """What ended a run, in words: the error, or the signal that stopped it (a text: as it
    is)."""
    if isinstance(error, str):
        return error[:500]
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C, or a scheduler's SIGTERM (said so)
        return f"stopped by {error}" if str(error) else "stopped by an interrupt (Ctrl-C)"
    return f"{type(error).__name__}: {error}"[:500]


class _UtcFormatter(PrintableFormatter):
    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + \
            f".{int(record.msecs):03d}Z"


class RunLog(logging.Handler):
    """The log of one run: records held until :meth:`open` writes them, and those after, to
    ``path``; :meth:`note` adds a line of the file alone (the console has it already)."""

    def __init__(self, path: Path, command: str):
        super().__init__(logging.INFO)
        self.path, self.command = path, command
        self.setFormatter(_UtcFormatter(_FORMAT))
        self._held: list[logging.LogRecord] = []
        self._file = None
        self._started = time.time()

    def emit(self, record: logging.LogRecord) -> None:
        """Write the record, or hold it until the file is open."""
        if self._file is not None:
            try:
                self._file.write(self.format(record) + "\n")
                self._file.flush()
            except OSError as err:  # a full disk: the log goes quiet, the run goes on
                self._give_up(err)
        elif self.path is not None and len(self._held) < _HELD_MAX:
            self._held.append(record)

    def _give_up(self, err: OSError) -> None:
        """The file cannot be written (a full disk): closed, said once on the console, and
        the run goes on without it (its own writes say the disk's state)."""
        stream, self._file, where, self.path = self._file, None, self.path, None
        with contextlib.suppress(OSError):
            stream.close()
        logging.getLogger("ctcnet").warning("the run's log %s cannot be written (%s); the run "
                                            "goes on without it", where, err.strerror or err)

    def open(self) -> None:
        """Begin the file with the records held so far (once; a folder that cannot hold it
        costs the log alone, said as a warning)."""
        if self._file is not None or self.path is None:
            return
        if self.path.parent.is_symlink():  # ctcnet never writes through a link
            logging.getLogger("ctcnet").warning(
                "no log file in %s: it is a link to %s, not a folder; the run goes on",
                self.path.parent, os.readlink(self.path.parent))
            self.path = None
            return
        try:
            make_folder(self.path.parent)
            self._file = self._new_file()
        except OSError as err:
            logging.getLogger("ctcnet").warning("no log file in %s (%s); the run goes on",
                                                self.path.parent, err.strerror or err)
            self.path = None
            return
        held, self._held = self._held, []
        for record in held:
            if self._file is None:
                break
            self.emit(record)

    def _new_file(self):
        """The log file, made new: never another run's (two of one name get -2, -3, ...)."""
        stem = self.path.stem
        for n in range(1, 100):
            try:  # no more open than its folder (a review's log was 0644 in a folder of 0700)
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                return os.fdopen(open_fd(self.path, flags), "w", encoding="utf-8")
            except FileExistsError:
                self.path = self.path.with_name(f"{stem}-{n + 1}.log")
        raise FileExistsError(f"{stem}: 99 logs of this name")

    def note(self, text: str, level: int = logging.INFO) -> None:
        """``text`` as a line of the file, not of the console."""
        self.handle(logging.LogRecord(f"ctcnet.{self.command}", level, __file__, 0, text,
                                      None, None))

    def ended(self, status: int) -> None:
        """The run's last line: its exit status."""
        self.note(f"ended after {time.time() - self._started:.1f} s: exit status {status}")

    def ended_by(self, error: BaseException) -> None:
        """The run's last line: the error or signal that ended it."""
        self.note(f"ended after {time.time() - self._started:.1f} s: {ending_text(error)}",
                  logging.ERROR)

    @property
    def opened(self) -> bool:
        """Whether the file was begun (a refused run's never is)."""
        return self._file is not None

    def close(self) -> None:
        """Close the file (the records still held are dropped: the run never began)."""
        if self._file is not None:
            with contextlib.suppress(OSError):  # its last lines on a full disk: given up
                self._file.close()
            self._file = None
        self._held = []
        super().close()


# The log of the run an error ended last in this process: the command line says the exit
# status and its line once it has them (:func:`note_exit`), after the run's block has closed.
_ENDED_BY_ERROR: list[Path] = []


def note_exit(status: int, said: str | None = None) -> None:
    """Where an error ended the last run's block (its log's last line the error alone): the
    exit status and what the console said of it (what to do: "free space and rerun to
    resume") appended to that log, so that a cron job's record holds them whatever became of
    its console. Nothing where no run ended so."""
    if not _ENDED_BY_ERROR:
        return
    path = _ENDED_BY_ERROR.pop()
    line = f"exit status {status}" + (f": {said}" if said else "")
    record = logging.LogRecord("ctcnet", logging.ERROR, __file__, 0, line, None, None)
    with contextlib.suppress(OSError):  # a full disk: the console said it
        with open(path, "a", encoding="utf-8") as file:  # as the log's own lines are written
            file.write(_UtcFormatter(_FORMAT).format(record) + "\n")


def log_host() -> str:
    """This host's name as a log file's name carries it (letters, digits, - and . kept)."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())[:40]


def latest_log_of(folder: str | Path, command: str, pid: int, since: float = 0.0
                  ) -> Path | None:
    """The newest log :func:`run_log` wrote in ``folder`` for ``command`` run by process
    ``pid`` of this host, modified since ``since`` (its name's -2, -3 ... included); None
    where there is none: never another host's, nor an earlier run's of a reused pid."""
    named = re.compile(rf"{re.escape(command)}-\d{{8}}T\d{{6}}Z-{re.escape(log_host())}-"
                       rf"{pid}(-\d+)?\.log")
    found = []
    for path in (Path(folder) / LOGS_DIR).glob(f"{command}-*.log"):
        try:
            modified = path.stat().st_mtime_ns
        except OSError:  # gone meanwhile
            continue
        if named.fullmatch(path.name) and modified >= since * 1e9:
            found.append((modified, path))
    return max(found)[1] if found else None


_BEFORE_CLOSING: list[Callable[[], None]] = []


def before_closing(hook: Callable[[], None]) -> None:
    """Have ``hook`` called as a run's log closes, before its file stops taking records: the
    worker processes' records still on their way to this process's loggers."""
    if hook not in _BEFORE_CLOSING:
        _BEFORE_CLOSING.append(hook)


@contextlib.contextmanager
def run_log(folder: str | Path, command: str, argv: Sequence[str] | None = None,
            logger: str = "ctcnet") -> Iterator[RunLog]:
    """A :class:`RunLog` of ``logger``'s records inside the block (INFO and up), its first
    line what ran, its last how the block ended where the caller did not say (an error or a
    signal); the console's handlers keep the level they had."""
    _ENDED_BY_ERROR.clear()  # an earlier block's, whose command never said its exit
    target = logging.getLogger(logger)
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    # The host too: jobs of an array start in the same second, and in containers each is pid 1.
    log = RunLog(Path(folder) / LOGS_DIR / f"{command}-{started}-{log_host()}-{os.getpid()}.log",
                 command)
    # The file wants INFO; the console keeps its threshold, now on its own handlers.
    before = target.level
    console = [h for h in target.handlers if h.level == logging.NOTSET]
    for handler in console:
        handler.setLevel(target.getEffectiveLevel())
    target.setLevel(min(target.getEffectiveLevel(), logging.INFO))
    target.addHandler(log)
    from ctcnet.core.provenance import software_record, software_text

    # The code that ran, as every summary names it (its commit, or its digest where the
    # checkout was modified or there is none): two runs by other code read apart here too.
    shown = " ".join(str(a) for a in (argv if argv is not None else sys.argv))
    log.note(f"{software_text(software_record())} on {socket.gethostname()}, pid "
             f"{os.getpid()}, in {Path.cwd()}: {shown}")
    try:
        yield log
    except BaseException as err:
        log.ended_by(err)
        _ENDED_BY_ERROR[:] = [log.path] if log.path is not None and log.opened else []
        raise
    finally:
        for hook in list(_BEFORE_CLOSING):  # (records of other processes still on their way)
            hook()
        target.removeHandler(log)
        log.close()
        target.setLevel(before)
        for handler in console:
            handler.setLevel(logging.NOTSET)
