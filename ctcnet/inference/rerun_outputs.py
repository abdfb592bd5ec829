"""What a rerun of a sample keeps of the results it changes, and where a sample's exports lie.

``ctcnet export-events`` writes a sample's FCS file and GeoJSON folder beside its events
(``<sample>/<sample>.fcs``, ``<sample>/geojson/``). They hold the calls of the tables they
were made from. A rerun whose tables differ from the earlier run's (a frame repaired, a scan
finished, a killed run's frames, another model) moves them into ``previous/exports-<when they
were written, UTC>/`` and keeps the summary it replaces in
``previous/summary-<when its counts were made>.json``, and says so: the counts before stay on
record, and no export sits beside counts it no longer adds up to. A rerun that writes the
same tables (every frame from the journal, a frame skipped again adding none; or frames read
again into the same bytes, its journal deleted) keeps the earlier counts' time
(``counted_at``), and the exports stay; where cartridge.json now states another blood volume,
the earlier summary is kept all the same (its rates per 7.5 mL were of the volume it read).
:func:`tables_from_journal` writes a sample's tables so: the earlier summary stays while the
tables written are its own, and goes before tables that are not.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import re
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ctcnet.core.file_modes import account_name, make_folder, owner_and_mode
from ctcnet.errors import InputError
from ctcnet.inference.figures_seal import sample_record_of
from ctcnet.inference.journal import journal_tables
from ctcnet.inference.sample_folders import previous_folder
from ctcnet.inference.summary import (
    SUMMARY_FILE,
    keep_not_as_written,
    keep_previous_summary,
    kept_summaries,
    withdraw_report_page,
    withdraw_summary,
)
from ctcnet.inference.tables import SUMMARY_COLUMNS, write_tables
from ctcnet.io.cartridge_info import record_changes, record_changes_text, unread_keys
from ctcnet.io.digests import file_sha256
from ctcnet.io.unread_planes import ck_plane, unread_planes

log = logging.getLogger(__name__)

GEOJSON_DIR = "geojson"
# The review's records a rerun carries into the summary it writes: both readings' decisions
# and the sign-off, the journals' lock and seals (the review's own names; a test holds them
# together). One this account cannot read (another's, 0600) lost the sign-off or read as
# edited by hand.
REVIEW_RECORDS = ("review.csv", "review-second.csv", "signoff.json", "signoff_history.jsonl",
                  ".review.csv.lock", ".review.csv.seal", ".review-second.csv.seal",
                  ".signoff_history.jsonl.seal")


def unreadable_review(folder: str | Path) -> list[Path]:
    """The review records of ``folder`` there that this account cannot read (a reviewer's,
    made under a umask of 077)."""
    found = []
    for name in REVIEW_RECORDS:
        try:
            (Path(folder) / name).open("rb").close()
        except PermissionError:
            found.append(Path(folder) / name)
        except OSError:  # not there (or said where it is read)
            pass
    return found


def refuse_unreadable_review(folder: str | Path) -> None:
    """Refuse a sample whose review records this account cannot read, or whose exports it
    could not move should its tables change, before any work: its rerun wrote the summary
    without the sign-off (saying "not signed off" of a signed-off result), or stopped half
    done, its new table beside the old exports."""
    for path in unreadable_review(folder)[:1]:
        raise InputError(f"is {owner_and_mode(path)}, which this account ({account_name()}) "
                         "cannot read: a rerun would write the summary without the sample's "
                         "review and sign-off; give it group read and write (a folder shared "
                         "by a group: docs/review.md), then rerun", path)
    exports = Path(folder) / GEOJSON_DIR  # (moving a folder writes its own entry, "..")
    if exports.is_dir() and not os.access(exports, os.W_OK):
        raise InputError(f"is {owner_and_mode(exports)}, which this account "
                         f"({account_name()}) cannot move into previous/ should the tables "
                         "change: give it group write (a folder shared by a group: "
                         "docs/review.md) or move it away, then rerun", exports)


def file_stem(name: str) -> str:
    """A frame or sample id as a file name: they come from file and folder names already, but
    a separator or control character must never reach the path. Letters and digits of any
    script stay (composed, as the sample's folder is named: "Müller.fcs", not "M_ller.fcs")."""
    return re.sub(r"[^\w.+=-]", "_", unicodedata.normalize("NFC", name)).lstrip(".") or "_"


def in_folder_exports(folder: Path, sample: str) -> tuple[Path, Path]:
    """The FCS file and the GeoJSON folder of ``sample``'s exports beside its events."""
    return Path(folder) / f"{file_stem(sample)}.fcs", Path(folder) / GEOJSON_DIR


def retire_exports(folder: str | Path, sample: str,
                   why: str = "no longer match the tables this run writes") -> Path | None:
    """Move the exports beside ``sample``'s events (:func:`in_folder_exports`), if any, into
    ``previous/exports-<stamp>/`` (the newest one's modification time, UTC), said with
    ``why``; returns that folder (None: nothing moved)."""
    present = [p for p in in_folder_exports(Path(folder), sample) if p.exists()]
    if not present:
        return None
    stamp = datetime.fromtimestamp(max(p.stat().st_mtime for p in present), UTC)
    kept = previous_folder(folder) / f"exports-{stamp:%Y%m%dT%H%M%SZ}"
    for n in range(2, 1000):  # exports of the same second kept before: another folder
        if not kept.exists():
            break
        kept = kept.with_name(f"exports-{stamp:%Y%m%dT%H%M%SZ}-{n}")
    moved: list[Path] = []
    try:
        make_folder(kept)
        for path in present:
            path.rename(kept / path.name)
            moved.append(path)
    except OSError as err:  # previous/ on another disk, a read-only folder, another's file
        # All or none: exports moved in part read as edited by hand at the next rerun.
        for path in moved:
            with contextlib.suppress(OSError):
                (kept / path.name).rename(path)
        with contextlib.suppress(OSError):
            kept.rmdir()
        raise InputError(f"cannot move the exports of the earlier tables ({err.strerror or err})"
                         f" into {kept}: move {', '.join(p.name for p in present)} away, then "
                         "rerun", Path(folder)) from None
    log.warning("%s: the exports of the earlier run (%s) %s: moved to %s (ctcnet "
                "export-events makes this run's)", sample, ", ".join(p.name for p in present),
                why, kept.relative_to(Path(folder)))
    return kept


@dataclass
class EarlierRun:
    """What a sample folder held of an earlier run as this one opened its journal: when its
    counts were made, when its summary.json was written, the frames it had processed and its
    status (None: no summary, or one that cannot be read)."""

    counted_at: float | None = None
    written: float | None = None
    frames: int | None = None
    status: str | None = None
    events_sha256: str | None = None
    events_csv_sha256: str | None = None
    # The SHA-256 each frame it processed had as it was read (its summary's frame_digests);
    # None for a summary without them.
    frame_sha256: dict[str, str] | None = None
    # The blood volume its rates per 7.5 mL were of (cartridge.json's, as it read it).
    blood_volume_ml: float | None = None
    # cartridge.json's record of the sample as it read it (summary.json's cartridge_info: the
    # patient, the draw's date, a lab's keys; {} where none); None: no summary, or one of an
    # earlier ctcnet that kept none (its record unknown: not compared, not "changed").
    cartridge_info: dict | None = None
    # When this run read it: journal parts written since are this run's.
    opened: float = field(default_factory=time.time)
    # Read from previous/ (no summary.json: a run that replaced it was stopped before it
    # wrote its own): the tables beside it are that run's, not the kept summary's to check.
    from_kept: bool = False
    # What settle() found and kept: its table changed by hand; its summary kept in previous/.
    edited: bool = field(default=False, init=False)
    volume_moved: bool = field(default=False, init=False)  # its summary kept for that
    kept: Path | None = field(default=None, init=False)

    @classmethod
    def read(cls, folder: str | Path) -> EarlierRun:
        """The earlier run's summary in ``folder``; where it has none, the latest one kept in
        ``previous/`` (a run ``--overwrite`` replaced, stopped before it wrote its own: a rerun
        writing the same tables keeps that run's counts' time, as it would have). A sample
        whose review this account cannot read is refused (:func:`refuse_unreadable_review`)."""
        refuse_unreadable_review(folder)
        path = Path(folder) / SUMMARY_FILE
        from_kept = not path.exists()
        if from_kept:
            path = (kept_summaries(folder) or [path])[-1]
        try:
            written = path.stat().st_mtime
            summary = json.loads(path.read_text(encoding="utf-8"))
            frames = int(summary["frames"]["processed"])
        except (OSError, ValueError, TypeError, KeyError):
            return cls()
        counted = summary.get("counted_at")
        text = {k: summary.get(k) if isinstance(summary.get(k), str) else None
                for k in ("status", "events_sha256", "events_csv_sha256")}
        digests = summary.get("frame_digests")
        sha = ({fid: r.get("sha256") for fid, r in digests.items() if isinstance(r, dict)}
               if isinstance(digests, dict) else None)
        volume = summary.get("blood_volume_ml")
        return cls(float(counted) if isinstance(counted, (int, float)) else None, written,
                   frames, **text, frame_sha256=sha,
                   blood_volume_ml=float(volume) if isinstance(volume, (int, float)) else None,
                   cartridge_info=sample_record_of(summary), from_kept=from_kept)

    def tables_change(self, parts: Path, frames: list[str], overwrite: bool = False) -> bool:
        """Whether the tables the journal in ``parts`` makes of ``frames`` (the scan's frame
        ids now) differ from the earlier run's: replaced (``overwrite``), no earlier summary,
        parts fewer or more than the frames it processed (a killed run's frames journaled
        after it, a frame gone from the scan folder), a part made of other bytes than the
        frame it counted (a frame replaced and redone since), or a part this run wrote (a
        frame redone). A frame skipped again each rerun (an unreadable file) adds no part:
        the tables stay. Told by the frames' digests, not by file times, which a copy or an
        archive's restore resets; a summary without digests, by its parts' times."""
        if overwrite or self.written is None:
            return True
        found = {frame: p for frame, p in ((f, Path(parts) / f"{f}.parquet") for f in frames)
                 if p.is_file()}
        if len(found) != self.frames or any(p.stat().st_mtime >= self.opened
                                            for p in found.values()):
            return True
        if self.frame_sha256 is None:
            return any(p.stat().st_mtime > self.written for p in found.values())
        from ctcnet.inference.frames import journaled_frames

        journaled = journaled_frames(parts)
        return any((journaled.get(f, {}).get("record") or {}).get("sha256")
                   != self.frame_sha256.get(f) for f in found)

    def keep_if_volume_moved(self, folder: str | Path, sample: str, volume_ml: float) -> None:
        """Where cartridge.json now states another blood volume than the earlier run read (a
        corrected tube), keep the earlier summary in ``previous/`` and say so: its rates per
        7.5 mL change with the same calls and counts, and the earlier figures stay on
        record."""
        if self.blood_volume_ml is None or abs(self.blood_volume_ml - volume_ml) < 1e-9:
            return
        kept = keep_previous_summary(folder)
        if kept is not None:
            self.kept, self.volume_moved = kept, True
            log.warning("%s: the blood volume is now %g mL (cartridge.json), the earlier run "
                        "read %g mL: its rates per 7.5 mL change; its summary is kept as %s",
                        sample, volume_ml, self.blood_volume_ml, kept.relative_to(Path(folder)))
        # Its exports carry the earlier volume and rates (an FCS file read after the
        # correction gave the earlier rate beside the summary's new one).
        retire_exports(folder, sample, f"carry the blood volume it read ({self.blood_volume_ml:g}"
                       f" mL), not the {volume_ml:g} mL now stated")

    def keep_if_record_moved(self, folder: str | Path, sample: str, info: dict | None) -> None:
        """Where cartridge.json's own record of the sample (``info``: its keys ctcnet does not
        read, as summary.json carries them) reads otherwise than the earlier run read it (a
        patient id or draw date corrected), keep the earlier summary in ``previous/`` and say
        what moved: the same counts now stand under another patient or draw, and a LIMS that
        filed them under the earlier one is to hear of it."""
        if self.cartridge_info is None or not record_changes(self.cartridge_info, info):
            return
        kept = self.kept or keep_previous_summary(folder)
        if kept is not None:
            self.kept = kept
        log.warning("%s: cartridge.json's record of the sample changed since the earlier run "
                    "(%s): its result now stands under these%s", sample,
                    record_changes_text(self.cartridge_info, info),
                    f"; the earlier summary is kept as {kept.relative_to(Path(folder))}"
                    if kept is not None else "")

    def settle(self, folder: str | Path, sample: str, parts: Path, frames: list[str],
               overwrite: bool) -> float | None:
        """Before a run of ``sample`` writes its tables into ``folder`` from the journal in
        ``parts`` (of ``frames``): where they may change (:meth:`tables_change`) and on a
        resume (``overwrite`` kept it already: ``journal.open_journal``), the earlier summary
        kept in ``previous/``; returns None, and :meth:`settled` decides once the tables are
        written. Where they do not change, the earlier counts' time, which stands."""
        folder = Path(folder)
        table = folder / "events.parquet"
        # Tables beside a summary kept in previous/ are a stopped run's, written after it
        # withdrew its summary.json: not the kept summary's, and no one's edit.
        self.edited = bool(not self.from_kept and self.events_sha256 and table.is_file()
                           and file_sha256(table) != self.events_sha256)
        if self.edited:
            log.warning("%s: events.parquet was changed since predict wrote it (its SHA-256 is "
                        "not the one summary.json records: edited by hand?); this run writes "
                        "its own", sample)
            keep_previous_summary(folder, keep_events=True)  # the evidence, kept aside
        if not self.from_kept:
            self._keep_an_edited_csv(folder, sample)
        if not self.tables_change(parts, frames, overwrite):
            return self.counted_at
        if not overwrite and self.written is not None:
            self.kept = keep_previous_summary(folder)
        return None

    def _keep_an_edited_csv(self, folder: Path, sample: str) -> None:
        """events.csv changed since predict wrote it (opened and saved in a spreadsheet, a
        call edited): kept in ``previous/`` as ``events-<now>-not-as-written.csv`` and said,
        before this run writes its own over it (it went without a word)."""
        table = folder / "events.csv"
        if not self.events_csv_sha256 or not table.is_file() or \
                file_sha256(table) == self.events_csv_sha256:
            return
        # This run writes its own; the edited one is the evidence.
        kept = keep_not_as_written(folder, table.name, move=True)
        log.warning("%s: events.csv was changed since predict wrote it (its SHA-256 is not the "
                    "one summary.json records: edited by hand, or saved by a spreadsheet?); "
                    "kept as %s, this run writes its own", sample, kept.relative_to(folder))

    def settled(self, folder: str | Path, sample: str, counted_at: float | None,
                overwrite: bool, events_sha256: str) -> float | None:
        """Once this run wrote its tables into ``folder`` (its events table of digest
        ``events_sha256``), after :meth:`settle` returned ``counted_at``: the counts' time
        that stands. Tables the same bytes as the earlier
        run's (its frames read again: a journal deleted, an archive restored without it, a
        frame redone from the same bytes) keep the earlier counts' time and exports, and
        what :meth:`settle` kept of it goes; other tables move the earlier exports aside
        (:func:`retire_exports`) and keep its summary, said; returns None then."""
        if counted_at is not None:
            return counted_at
        folder, kept = Path(folder), self.kept
        if self.events_sha256 == events_sha256:
            log.info("%s: the tables are the earlier run's, byte for byte (its frames read "
                     "again): its counts' time and exports stand", sample)
            if kept is not None and not self.edited and not self.volume_moved:
                _forget_kept(folder, kept)
            return self.counted_at
        retire_exports(folder, sample)
        if kept is not None and not overwrite:
            # Expected where the earlier run was partial (a rerun once the scan is whole, or
            # the share back): a note; a warning where a whole result's counts move.
            repair = self.status in ("partial", "failed") and not any(
                (folder / name).exists() for name in ("review.csv", "signoff.json"))
            log.log(logging.INFO if repair else logging.WARNING,
                    "%s: the tables differ from the earlier run's (frames done, changed or "
                    "gone since, or, where its journal was gone, another model or other "
                    "settings); its summary is kept as %s", sample, kept.relative_to(folder))
        return None


def _forget_kept(folder: Path, kept: Path) -> None:
    """Remove the summary :func:`keep_previous_summary` kept as ``kept`` (and the events
    table kept with it), where the run turned out to write the same tables: no copy of what
    stands beside it."""
    events = kept.with_name(kept.name.replace("summary-", "events-", 1)).with_suffix(".parquet")
    for path in (kept, events):
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        kept.parent.rmdir()  # previous/, where nothing else was kept


def tables_from_journal(out_dir: Path, parts: Path, cartridge, earlier: EarlierRun,
                        overwrite: bool, empty_table, held=None) -> tuple:
    """The sample's events tables written from its journal: (events, their SHA-256, the
    earlier counts' time where the tables are the earlier run's, else None). New tables:
    what they replace is kept aside; the same tables: their counts' time stands.
    ``empty_table()``: the table of a sample without events (every column); ``held``: what
    each frame's journaled table is passed through first (the calls its scan holds:
    :class:`~ctcnet.inference.scan_leak_hold.ScanLeakHold`)."""
    earlier.keep_if_volume_moved(out_dir, cartridge.sample_id, cartridge.blood_volume_ml)
    earlier.keep_if_record_moved(out_dir, cartridge.sample_id, unread_keys(cartridge.info))
    counted_before = earlier.settle(out_dir, out_dir.name, parts,
                                    [f.frame_id for f in cartridge.frames], overwrite)
    # Until this run's summary is written, last, none says the sample is done (a run stopped
    # by a full disk leaves no "ok" beside tables and a report it did not finish); but where
    # the tables will be the earlier run's (a finished night run again), that summary holds
    # for them still, and a run stopped on the way leaves it.
    if counted_before is None:
        withdraw_summary(out_dir)
        if not overwrite:  # (--overwrite withdrew the page as it opened the journal)
            # (what it replaces is not named: kept only if the tables turn out to change)
            withdraw_report_page(out_dir, None, "its frames changed since the run it "
                                 "replaces, or that run did not finish")
    tables = journal_tables(parts, cartridge.frames)
    tables = tables if held is None else map(held, tables)
    first = next(tables, None)
    if first is None:  # no events at all: the files still get every column
        first = empty_table()
    # The summary reads the unread planes' means too, and CK's beside them (unread_markers).
    unread = [f"mean_{name}" for _, name in unread_planes(cartridge)]
    ck = ck_plane(cartridge)
    keep = (*SUMMARY_COLUMNS, *unread, *([f"mean_{ck}"] if unread and ck else []))
    events = write_tables(out_dir, itertools.chain([first], tables), keep)
    events_sha256 = file_sha256(out_dir / "events.parquet")
    counted_before = earlier.settled(out_dir, out_dir.name, counted_before, overwrite,
                                     events_sha256)
    if counted_before is None:  # other tables after all: the earlier summary is not theirs
        withdraw_summary(out_dir)
    return events, events_sha256, counted_before
