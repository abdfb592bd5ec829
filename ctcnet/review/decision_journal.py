"""review.csv, the journal of a reviewer's decisions on one sample: its layout, reading it,
and appending to it safely from several threads, processes and servers. (Predict's resume
journal, of the frames a run finished, is another: :mod:`ctcnet.inference.journal`.)

``RESULTS/<sample>/review.csv`` holds one row per decision, oldest first:
``run_id, cartridge_id, event_id, frame_id, x, y, model_call, reviewer_call, reviewer, time,
frame_digest`` (the SHA-256 of the frame's pixels the decision was made on, as summary.json's
``frame_digests`` records it: a frame unchanged when others of the cartridge changed).
``reviewer_call`` is a class name (the model's own on a confirmation, another on a relabel),
``rejected`` (not what the model said, class unknown) or ``undecided`` (the decisions on the
event taken back). Each decision is appended as a line, so the file keeps the history
(:mod:`ctcnet.review.matching` says which row counts). A second reading of the same sample
(another reviewer, blind to the first) is journalled the same way in ``review-second.csv``
(:data:`SECOND_FILE`), and never counted.

Files written before positions were recorded (``event_id, model_call, reviewer_call, reviewer,
time``), before decisions named their cartridge and before they named their frame's pixels
are still read (with an empty ``run_id`` and no position, an empty ``cartridge_id`` or an
empty ``frame_digest``).

Writers (two servers, two browser tabs, two processes) hold an exclusive ``flock`` on
``.review.csv.lock`` beside the file while they read what others appended and append their
lines (written whole and fsync'd before the decision is answered "saved"); a line left
unfinished by a crash is ignored by readers and cut off by the next writer, so no reader
takes half a decision and no writer loses another's. The file is rewritten whole (atomically,
temp + rename) only when its layout must change. A reader keeps what it read
(:class:`DecisionLog`) and reads only the lines appended since.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.said_once import first_time
from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_write_bytes, atomic_write_text, open_lock, open_own
from ctcnet.review.decision_clock import dated_in_order
from ctcnet.review.journal_seal import check_as_sealed, write_seal
from ctcnet.review.matching import Matched, extend_match, match_decisions
from ctcnet.review.runs import RunEvents

log = logging.getLogger(__name__)

REVIEW_FILE = "review.csv"
# A second reader's decisions: kept apart, compared with the first's, never counted.
SECOND_FILE = "review-second.csv"
LOCK_FILE = ".review.csv.lock"  # hidden: the server does not serve it
COLUMNS = ["run_id", "cartridge_id", "event_id", "frame_id", "x", "y", "model_call",
           "reviewer_call", "reviewer", "time", "frame_digest"]
# Written before decisions named their frame's pixels: a cartridge changed anywhere set
# every decision made on it aside.
CARTRIDGE_COLUMNS = [c for c in COLUMNS if c != "frame_digest"]
# Written before decisions named their cartridge: keyed by run and position only.
POSITION_COLUMNS = [c for c in CARTRIDGE_COLUMNS if c != "cartridge_id"]
LEGACY_COLUMNS = ["event_id", "model_call", "reviewer_call", "reviewer", "time"]
# The text columns (the rest are the event id and its position).
TEXT_COLUMNS = ("run_id", "cartridge_id", "frame_id", "model_call", "reviewer_call",
                "reviewer", "time", "frame_digest")


def _empty_table() -> pd.DataFrame:
    kinds = {"event_id": "int64", "x": "float64", "y": "float64"}
    return pd.DataFrame({c: pd.Series(dtype=kinds.get(c, object)) for c in COLUMNS})


def _complete_lines(data: bytes, path: Path) -> bytes:
    """``data`` up to its last newline: a last line without one was left unfinished (a writer
    stopped mid-line), so it is no decision (the writer never answered "saved")."""
    end = data.rfind(b"\n") + 1
    # (said once a file as it lies: an audit reads a journal several times)
    if end < len(data) and first_time(__name__, "unfinished", str(path), len(data)):
        log.warning("%s: an unfinished last line (%d bytes) is ignored", path, len(data) - end)
    return data[:end]


def _parse(text: str, path: Path) -> tuple[pd.DataFrame, bool]:
    """review.csv's text (header and whole lines) in the current layout, and whether it had
    an older one."""
    if not text.strip():
        return _empty_table(), False
    strings = dict.fromkeys(TEXT_COLUMNS, str)
    try:
        table = pd.read_csv(io.StringIO(text), dtype=strings, keep_default_na=False,
                            na_values={"x": [""], "y": [""]})
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the review decisions: {err}", path) from None
    legacy = list(table.columns) == LEGACY_COLUMNS
    older = legacy or list(table.columns) in (POSITION_COLUMNS, CARTRIDGE_COLUMNS)
    if legacy:  # no run, no position: matched by event id under conditions (match_decisions)
        table = table.assign(run_id="", frame_id="", x=np.nan, y=np.nan)
    elif list(table.columns) != COLUMNS and not older:
        semicolons = len(table.columns) == 1 and ";" in str(table.columns[0])
        raise InputError(("review.csv is separated by semicolons: saved again by a spreadsheet "
                          "in a European locale; restore it as ctcnet wrote it, from a "
                          "copy" if semicolons else "") or
                         f"review.csv needs the columns {','.join(COLUMNS)} (or, written by "
                         f"an older ctcnet, {','.join(CARTRIDGE_COLUMNS)}, "
                         f"{','.join(POSITION_COLUMNS)} or {','.join(LEGACY_COLUMNS)})", path)
    if "cartridge_id" not in table:  # made before decisions named their cartridge
        table = table.assign(cartridge_id="")
    if "frame_digest" not in table:  # made before decisions named their frame's pixels
        table = table.assign(frame_digest="")
    return _parse_typed(table[COLUMNS], path).reset_index(drop=True), older


def _parse_appended(data: bytes, path: Path) -> pd.DataFrame:
    """Whole lines of the current layout (those appended since the last read: a few) as
    :func:`_parse` reads them, without pandas' CSV reader, whose set-up costs more than a few
    lines do; anything unusual goes to :func:`_parse`, which says what is wrong."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8", "replace"))))
    try:
        if any(len(r) != len(COLUMNS) for r in rows):
            raise ValueError("not the layout")
        for r in rows:  # event_id, x, y: numbers (an empty position: none)
            r[2] = int(r[2])
            r[4], r[5] = (float(v) if v else np.nan for v in r[4:6])
    except ValueError:
        return _parse((HEADER + data).decode("utf-8", "replace"), path)[0]
    return _parse_typed(pd.DataFrame(rows, columns=COLUMNS), path)


def _parse_typed(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    # Text as Python objects: matching reads the columns as object arrays, and converting
    # pandas' Arrow-backed strings each time costs more than the match itself.
    kinds = {c: object for c in COLUMNS}
    kinds.update({"event_id": "int64", "x": "float64", "y": "float64"})
    try:
        return table.astype(kinds)
    except (ValueError, TypeError) as err:
        raise InputError(f"cannot read the review decisions: {err}", path) from None


_TYPED = _empty_table().dtypes  # the column types _parse_typed gives


def _read(path: Path) -> tuple[pd.DataFrame, bool]:
    """review.csv in the current layout, and whether the file had an older one."""
    try:
        with open_own(path, "rb") as fh:  # (never through a link, as it is written)
            data = fh.read()
    except FileNotFoundError:
        return _empty_table(), False
    except PermissionError:  # another account's: said with its owner and mode where caught
        raise
    except OSError as err:
        raise InputError(f"cannot read the review decisions: {err}", path) from None
    return _parse(_complete_lines(data, path).decode("utf-8", "replace"), path)


def read_decisions(sample_dir: str | Path, file: str = REVIEW_FILE) -> pd.DataFrame:
    """review.csv's rows as a table (``COLUMNS``; empty when nobody has reviewed yet). An
    old-layout file reads with an empty ``run_id`` and no position; one written before
    decisions named their cartridge, with an empty ``cartridge_id``."""
    return _read(Path(sample_dir) / file)[0]



# ---------------------------------------------------------------------------------------------
# Writing: one read-modify-write at a time per folder, across threads and processes.

_NO_FLOCK = threading.Lock()  # (held on by its holder through _HELD, as the flock is)
_warned_no_flock = False
# The sample folders this thread holds the lock of: a reader that holds it over all its reads
# (review_records_read) may call what takes it again. A second flock of the same file from
# this process waits for the first: it would wait for ever.
_HELD = threading.local()


@contextlib.contextmanager
def decisions_lock(sample_dir: str | Path) -> Iterator[None]:
    """Hold the exclusive lock on a sample's review.csv (blocks until it is free); held by
    this thread already, it is held on.

    ``flock`` on a lock file that is never deleted (deleting it would let a waiter lock the
    old file while a newcomer locks a new one); the kernel releases it when a holder dies.
    Where there is no ``flock``, a lock of this process only, with a warning.
    """
    global _warned_no_flock
    key = os.path.realpath(sample_dir)
    held = _HELD.__dict__.setdefault("folders", set())
    if key in held:
        yield
        return
    try:
        import fcntl
    except ImportError:
        if not _warned_no_flock:
            log.warning("no file locking on this platform: decisions are safe from other "
                        "threads of this server only; run one review server per results "
                        "folder")
            _warned_no_flock = True
        with _NO_FLOCK:
            held.add(key)
            try:
                yield
            finally:
                held.discard(key)
        return
    with open_lock(Path(sample_dir) / LOCK_FILE) as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write(sample_dir: Path, table: pd.DataFrame) -> None:
    # fsync'd and renamed into place: a decision that was answered "saved" survives a crash.
    atomic_write_text(sample_dir / REVIEW_FILE, table[COLUMNS].to_csv(index=False))
    write_seal(sample_dir / REVIEW_FILE)


HEADER = (",".join(COLUMNS) + "\n").encode("utf-8")


def _csv_line(values: list) -> bytes:
    """One row as a line of review.csv, quoted as pandas writes the whole file."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode("utf-8")




class DecisionLog:
    """review.csv of one sample as this process has read it: its rows (:func:`read_decisions`'s
    table), the file's stamp and how far into it they go.

    Between rewrites the file only grows (each decision appends a line), so :meth:`refresh`
    parses only the lines appended since; a file replaced (a rewrite renames a new one into
    place), shortened, or changed anywhere before that point (its digest) is read again
    whole. :meth:`matched` keeps the match of the rows it last read to a run. Thread-safe;
    a writer calls :meth:`append` under :func:`decisions_lock`."""

    def __init__(self, sample_dir: str | Path, file: str = REVIEW_FILE):
        self.sample_dir = Path(sample_dir)
        self.path = self.sample_dir / file
        self._lock = threading.RLock()
        self._appended = threading.local()  # per thread: the stamps of its last append
        self._forget()

    @property
    def _table(self) -> pd.DataFrame:
        """The rows read: the lines this log appended are kept apart until the whole table is
        asked for (a decision that extends the match needs only its own rows)."""
        if len(self._parts) > 1:
            self._parts = [pd.concat(self._parts, ignore_index=True)]
        return self._parts[0]

    @_table.setter
    def _table(self, table: pd.DataFrame) -> None:
        self._parts = [table]

    def _forget(self) -> None:
        self._table, self._older = _empty_table(), False
        # What was read: the bytes up to ``_offset``, whose digest ``_read_hash`` keeps (a
        # file whose first ``_offset`` bytes are no longer these is read again whole).
        self._header, self._offset, self._file = b"", 0, None
        self._read_hash = hashlib.sha256()
        self._stamp = "none"
        self._matched: tuple[str, str, Matched] | None = None

    @staticmethod
    def _stat_stamp(st: os.stat_result) -> str:
        return f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"

    def stamp(self) -> str:
        """What changes whenever review.csv does (identity, size, time): "none" without it."""
        try:
            return self._stat_stamp(os.stat(self.path))
        except FileNotFoundError:
            return "none"

    @property
    def read_stamp(self) -> str:
        """The stamp of the file as last read (the rows :meth:`refresh` returned)."""
        return self._stamp

    @property
    def last_append(self) -> tuple[str, str] | None:
        """This thread's last :meth:`append`: the file's stamps before and after it (None
        after :meth:`forget_append`, or none made)."""
        return getattr(self._appended, "stamps", None)

    def forget_append(self) -> None:
        """Clear this thread's :attr:`last_append`, before it records a new decision."""
        self._appended.stamps = None

    def refresh(self) -> pd.DataFrame:
        """The file's rows now (reading only what was appended since the last refresh)."""
        with self._lock:
            self._refresh()
            return self._table

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self.path.is_symlink():  # a link to nothing is no empty journal
                open_own(self.path, "rb").close()  # (refused, naming the link)
            self._forget()
            return
        stamp = self._stat_stamp(st)
        if stamp != self._stamp:
            # (never through a link: decisions read from a file outside the folder were shown
            # and signed off, where recording one refused the link)
            with open_own(self.path, "rb") as fh:
                if not self._read_appended(fh, st):
                    self._read_whole(fh)
            self._stamp = stamp

    def _read_whole(self, fh) -> None:
        fh.seek(0)
        data = _complete_lines(fh.read(), self.path)
        self._table, self._older = _parse(data.decode("utf-8", "replace"), self.path)
        self._header = data[:data.find(b"\n") + 1]
        self._offset, self._read_hash = len(data), hashlib.sha256(data)
        st = os.fstat(fh.fileno())
        self._file = (st.st_dev, st.st_ino)

    def _read_appended(self, fh, st: os.stat_result) -> bool:
        """Read the lines appended since; False when the file is not the one read before or
        changed before the point reached (it must be read whole)."""
        if self._file != (st.st_dev, st.st_ino) or st.st_size < self._offset or not self._header:
            return False
        # Every byte read before, not only the last line's: a journal restored in place (a
        # copy over it, the same size) or edited in an earlier line kept the rows first read,
        # and a sign-off then signed a count no line of the file gave.
        fh.seek(0)
        if hashlib.sha256(fh.read(self._offset)).digest() != self._read_hash.digest():
            return False
        data = _complete_lines(fh.read(), self.path)
        if data:
            rows = _parse_appended(data, self.path) if self._header == HEADER else \
                _parse((self._header + data).decode("utf-8", "replace"), self.path)[0]
            self._table = pd.concat([self._table, rows], ignore_index=True) \
                if len(self._table) else rows
            self._offset += len(data)
            self._read_hash.update(data)
        return True

    def matched(self, run: RunEvents) -> Matched:
        """The file's rows now matched to ``run`` (kept until the file changes)."""
        with self._lock:
            self._refresh()
            if self._matched is None or self._matched[:2] != (self._stamp, run.run_id):
                self._matched = (self._stamp, run.run_id, match_decisions(self._table, run))
            return self._matched[2]

    def append(self, run: RunEvents, row: pd.DataFrame) -> tuple[str, str]:
        """Append ``row`` (``COLUMNS``, decisions of ``run``, one per event: one, or a grid's
        page of them written at once) to the file; the caller holds :func:`decisions_lock`.
        A file of an older layout is rewritten in the current one first (the only rewrite).
        Returns the file's stamps before and after: equal "before"s mean nobody else wrote.
        When the file was as last matched, the match is brought up to date from the new rows
        alone (:func:`extend_match`), not made again."""
        with self._lock:
            check_as_sealed(self.path)  # the seal written after would take a hand edit in
            self._refresh()
            before = self._stamp
            row = row[COLUMNS].reset_index(drop=True)
            if not row.dtypes.equals(_TYPED):  # rows made here are typed already
                row = _parse_typed(row, self.path)
            # (the journal's last lines: its latest time, without joining its parts whole)
            row = dated_in_order(row, pd.concat([p.tail(1000) for p in self._parts]),
                                 self.path)
            # The file as it was, to go back to where its seal cannot be written (a full disk):
            # a decision answered "not saved" must not stand in the file all the same.
            rewrite = self._stamp == "none" or self._older or self._header != HEADER
            was = (self.path.read_bytes() if self.path.exists() else None) if rewrite else \
                self.path.stat().st_size  # an append: its length before is enough
            try:
                if rewrite:
                    table = match_decisions(self._table, run).table if len(self._table) else \
                        self._table
                    atomic_write_text(self.path, (pd.concat([table, row], ignore_index=True)
                                                  if len(table) else row)[COLUMNS]
                                      .to_csv(index=False))
                    self.refresh()
                else:
                    self._append_row(run, row)
                write_seal(self.path)  # what ctcnet wrote: a journal cut back later is told
            except OSError:
                self._take_back(was)
                raise
            self._appended.stamps = (before, self._stamp)
            return before, self._stamp

    def _take_back(self, was: bytes | int | None) -> None:
        """The file as it was before a decision whose writing failed (``was``: its length
        before a line was appended, its bytes before it was written whole, None where there
        was none); then read again. A failure here is said, not raised (the one that stopped
        the decision is)."""
        if self._as_it_was(was):  # the write failed before the file changed (a read-only
            self.refresh()        # archive's): nothing to take back, nothing to say
            return
        try:
            if was is None:
                self.path.unlink(missing_ok=True)
            elif isinstance(was, int):
                with open_own(self.path, "r+b") as fh:
                    fh.truncate(was)
            else:
                atomic_write_text(self.path, was.decode("utf-8"))
        except OSError as err:
            log.error("%s: a decision not saved may stand in the file (%s): check it on the "
                      "review page", self.path, err)
        self.refresh()

    def _as_it_was(self, was: bytes | int | None) -> bool:
        """Whether the file is as it was before a write (``was``: as for :meth:`_take_back`)."""
        try:
            if was is None:
                return not self.path.exists()
            if isinstance(was, int):
                return self.path.stat().st_size == was
            return self.path.read_bytes() == was
        except OSError:
            return False

    def _append_row(self, run: RunEvents, row: pd.DataFrame) -> None:
        # One write and one fsync for every row: a grid's page costs about what one does.
        line = b"".join(_csv_line(values) for values in row.to_numpy(dtype=object).tolist())
        # The match of the file as it is before this line, if kept (lines appended by others
        # since it was made would be missing from it).
        prior = self._matched if self._matched is not None and \
            self._matched[:2] == (self._stamp, run.run_id) else None
        start, cut = self._append_line(line)
        if cut or start != self._offset:  # the file was not all read: read what is new
            self.refresh()
            return
        self._parts.append(row)  # joined when the whole table is next asked for
        self._offset += len(line)
        self._read_hash.update(line)
        self._stamp = self.stamp()
        if prior is not None:
            self._matched = (self._stamp, run.run_id, extend_match(prior[2], row, run))

    def _append_line(self, line: bytes) -> tuple[int, bool]:
        """Whole lines at the end, fsync'd before the decision is answered; an unfinished
        line a crashed writer left is cut off first, so the new line starts on its own.
        Returns where the line starts and whether a line was cut off."""
        try:
            fh = open_own(self.path, "r+b")
        except PermissionError:  # another reviewer's file, not group-writable
            return self._append_by_rewrite(line)
        with fh:
            end = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, end - 1))
            cut = bool(end) and fh.read(1) != b"\n"
            if cut:
                fh.seek(0)
                keep = fh.read().rfind(b"\n") + 1
                self._say_cut(end - keep)
                fh.truncate(keep)
                end = keep
            fh.seek(end)
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
            return end, cut

    def _append_by_rewrite(self, line: bytes) -> tuple[int, bool]:
        """:meth:`_append_line` where this account may not write review.csv in place (another
        reviewer's, made under a umask of 022) but may write its folder: the file written
        again whole with the line at its end, atomically (under the lock: nothing appended
        meanwhile is lost)."""
        data = self.path.read_bytes()
        keep = data.rfind(b"\n") + 1
        if keep != len(data):
            self._say_cut(len(data) - keep)
        atomic_write_bytes(self.path, data[:keep] + line)
        return keep, keep != len(data)

    def _say_cut(self, n_bytes: int) -> None:
        log.warning("%s: cut off an unfinished last line (%d bytes)", self.path, n_bytes)
