"""A reviewer's decisions on one cartridge: which events to show, and review.csv (the matched
decisions are counted by :func:`ctcnet.inference.counts.count_reviewed`).

Candidates (what a reviewer looks at): every call of a reported class (``ctc``, ``cluster``),
every event the model flagged for review, and a fixed random sample of the rest for quality
control (a model that hides CTCs among confident debris calls is only caught this way), plus
any event an earlier decision attaches to, so no decision counts unseen. The sample is drawn
with a seed taken from the sample id, so it stays the same across reloads and server restarts.

``RESULTS/<sample>/review.csv`` holds one row per decision, oldest first:
``run_id, cartridge_id, event_id, frame_id, x, y, model_call, reviewer_call, reviewer, time``.
``reviewer_call`` is a class name (the model's own on a confirmation, another on a relabel) or
``rejected`` (not what the model said, class unknown). A decision taken back
(:func:`clear_decision`) leaves no row: the event is undecided again.

Predict numbers events in scan order, and a re-run (``--overwrite``, another model, other
detection settings) numbers them anew, so an event id alone would hand a decision to another
cell. A decision is therefore keyed by its run and its event's position. ``run_id`` is a digest
of the run's numbering (each event's id, frame and position): in the run that made it, the
decision's ``event_id`` holds; from any other run, it attaches to the nearest current event of
its frame within ``POSITION_TOLERANCE_UM``. A decision that attaches to no event (its cell was
not found this time, or it rejected a call the model no longer makes) stays in the file, is
never counted and is reported (``Matched.unattached``). When several decisions attach to one
event, the latest counts.

A sample id names a patient's sample, not one scan: another cartridge predicted with
``--overwrite`` into the same folder has events at other places, some within the tolerance of
a decided cell. ``cartridge_id`` (``summary.json``'s, a digest of the scan's frame list) is
therefore recorded with every decision, and a decision made on another cartridge is set aside
(kept in the file, never counted, reported with a warning naming how many). A decision recorded
before cartridges were identified (no ``cartridge_id``) attaches to the run it was made in, and
gets that run's cartridge when the file is rewritten; from another run it is set aside too, as
nothing says it was made on this cartridge.

Files written before positions were recorded (``event_id, model_call, reviewer_call, reviewer,
time``) are still read: such a row attaches to the event with its id only if it was decided
after the current ``events.parquet`` was written and the model call agrees, since otherwise the
run it was made in is unknown; :func:`migrate_decisions` (the review server, on opening a
sample) rewrites the file in the new layout, with those rows given this run's key (and
its cartridge).

Writers (two servers, two browser tabs, two processes) hold an exclusive ``flock`` on
``.review.csv.lock`` beside the file for each read-modify-write, and the file is replaced
atomically, so a reader never sees half a file and no writer overwrites another's decision.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import logging
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.errors import InputError
from ctcnet.inference.counts import REJECTED
from ctcnet.inference.summary import RunSummary
from ctcnet.io.atomic import atomic_write_text

log = logging.getLogger(__name__)

REVIEW_FILE = "review.csv"
LOCK_FILE = ".review.csv.lock"  # hidden: the server does not serve it
COLUMNS = ["run_id", "cartridge_id", "event_id", "frame_id", "x", "y", "model_call",
           "reviewer_call", "reviewer", "time"]
# Written before decisions named their cartridge: keyed by run and position only.
POSITION_COLUMNS = [c for c in COLUMNS if c != "cartridge_id"]
LEGACY_COLUMNS = ["event_id", "model_call", "reviewer_call", "reviewer", "time"]
# One cell's centroid moves by a pixel or two between runs with other detection settings;
# two events are at least a seed distance apart (DetectConfig.seed_distance_um, 7 um), so
# less than half of that never reaches a neighbour instead.
POSITION_TOLERANCE_UM = 3.0
QC_FRACTION = 0.02  # of the events that are neither reported calls nor flagged
QC_MIN = 20


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return "reviewer"


def load_sample(sample_dir: str | Path) -> tuple[pd.DataFrame, RunSummary]:
    """A predict output folder's events table and summary; InputError if it is not one."""
    sample_dir = Path(sample_dir)
    summary_path, events_path = sample_dir / "summary.json", sample_dir / "events.parquet"
    if not summary_path.is_file() or not events_path.is_file():
        raise InputError("not a predict output folder (no summary.json / events.parquet)",
                         sample_dir)
    try:
        summary = RunSummary.from_dict(json.loads(summary_path.read_text()))
        events = pd.read_parquet(events_path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise InputError(f"cannot read the predict outputs: {err}", sample_dir) from None
    return events, summary


def find_samples(results: str | Path) -> dict[str, Path]:
    """Sample id -> folder for a predict ``--out`` folder (or one sample's own folder)."""
    results = Path(results)
    if not results.is_dir():
        raise InputError("results folder not found", results)
    if (results / "summary.json").is_file():
        return {results.resolve().name: results}
    samples = {p.name: p for p in sorted(results.iterdir())
               if p.is_dir() and (p / "summary.json").is_file()
               and (p / "events.parquet").is_file()}
    if not samples:
        raise InputError("no predict outputs here (expected <sample>/summary.json and "
                         "events.parquet, as ctcnet predict --out writes)", results)
    return samples


def reported_classes(summary: RunSummary) -> list[str]:
    """The classes a report counts per 7.5 mL (predict writes one figure per reported class)."""
    return list(summary.per_7_5_ml)


def select_candidates(events: pd.DataFrame, reported: list[str], sample_id: str,
                      qc_fraction: float = QC_FRACTION, qc_min: int = QC_MIN,
                      decided=()) -> pd.DataFrame:
    """The events to review, in scan order, with a ``why`` column: call, flagged, qc, or
    decided (an event only an earlier decision brings in, e.g. from a run that called it
    otherwise; ``decided`` holds the event ids decisions attach to)."""
    if not len(events):
        return events.assign(why=pd.Series(dtype=object))
    called = events["class"].isin(reported).to_numpy()
    flagged = events["review"].astype(bool).to_numpy()
    rest = np.flatnonzero(~called & ~flagged)
    n_qc = min(len(rest), max(qc_min, int(np.ceil(qc_fraction * len(rest)))))
    rng = np.random.default_rng(zlib.crc32(sample_id.encode("utf-8")))
    qc = np.zeros(len(events), bool)
    qc[rng.choice(rest, size=n_qc, replace=False)] = True
    # After the draw, so the quality-control sample does not depend on what was decided.
    earlier = events["event_id"].isin(list(decided)).to_numpy()
    why = np.where(called, "call", np.where(flagged, "flagged",
                                            np.where(qc, "qc", "decided")))
    keep = called | flagged | qc | earlier
    return events[keep].assign(why=why[keep])


# ---------------------------------------------------------------------------------------------
# The run decisions are matched to.

def run_id(events: pd.DataFrame) -> str:
    """A digest of a run's event numbering: every event's id, frame and position, in order.

    Two runs share it only when each event id names the same position in both, which is
    exactly when a decision's ``event_id`` can be trusted as it is.
    """
    digest = hashlib.sha256()
    digest.update(events["event_id"].to_numpy(np.int64).tobytes())
    codes, frames = pd.factorize(events["frame_id"].astype(str))
    digest.update(codes.astype(np.int64).tobytes())
    digest.update("\0".join(frames).encode("utf-8"))
    for column in ("x", "y"):
        digest.update(events[column].to_numpy(np.float64).tobytes())
    return digest.hexdigest()[:16]


class RunEvents:
    """The current run's events as decisions are matched to them: its id, each event's frame,
    position and call, the position tolerance in scan pixels, when the run was written
    (``written_at``, seconds since the epoch: old-layout decisions older than it were made on
    an earlier run) and the cartridge it scanned (``cartridge_id``; None for a run written
    before cartridges were identified: decisions are then matched as they were)."""

    def __init__(self, events: pd.DataFrame, pixel_size_um: float,
                 written_at: float | None = None, cartridge_id: str | None = None):
        self.run_id = run_id(events)
        self.cartridge_id = cartridge_id or None
        table = events[["event_id", "frame_id", "x", "y", "class"]]
        self.events = table.assign(frame_id=table["frame_id"].astype(str),
                                   **{"class": table["class"].astype(str)}
                                   ).set_index("event_id", drop=False)
        self.tolerance_px = POSITION_TOLERANCE_UM / float(pixel_size_um)
        self.written_at = written_at

    @classmethod
    def of_sample(cls, sample_dir: str | Path, events: pd.DataFrame,
                  summary: RunSummary) -> RunEvents:
        """The run in a predict output folder (``events`` and ``summary`` as load_sample)."""
        try:
            written = (Path(sample_dir) / "events.parquet").stat().st_mtime
        except OSError:
            written = None
        return cls(events, summary.panel["pixel_size_um"], written, summary.cartridge_id)

    @cached_property
    def _by_frame(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        groups = self.events.groupby("frame_id", sort=False).indices
        ids = self.events["event_id"].to_numpy(np.int64)
        xy = self.events[["x", "y"]].to_numpy(np.float64)
        return {str(f): (ids[rows], xy[rows]) for f, rows in groups.items()}

    def nearest(self, frame_id: str, x: float, y: float) -> int:
        """The event of ``frame_id`` nearest (x, y) within the tolerance, or -1."""
        found = self._by_frame.get(str(frame_id))
        if found is None or not (np.isfinite(x) and np.isfinite(y)):
            return -1
        ids, xy = found
        d2 = (xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2
        k = int(np.argmin(d2))
        return int(ids[k]) if d2[k] <= self.tolerance_px ** 2 else -1


@dataclass
class Matched:
    """review.csv matched to a run.

    ``table``: the file's rows (``COLUMNS``; old-layout rows that attach carry this run's key).
    ``target``: per row of ``table``, the current event it attaches to, or -1.
    ``decisions``: the decision that counts per event (the latest), with ``model_call`` the
    event's call in this run and ``decided_call`` the call the reviewer saw.
    ``unattached``: the rows that attach to no event, with a ``reason``.
    ``superseded``: rows attached to an event that a later decision also covers.
    ``other_cartridge``: rows of ``unattached`` set aside as made on another cartridge (or
    on another run, with no cartridge recorded).
    """

    table: pd.DataFrame
    target: np.ndarray
    decisions: pd.DataFrame
    unattached: pd.DataFrame
    superseded: int
    other_cartridge: int = 0


def _empty_table() -> pd.DataFrame:
    kinds = {"event_id": "int64", "x": "float64", "y": "float64"}
    return pd.DataFrame({c: pd.Series(dtype=kinds.get(c, object)) for c in COLUMNS})


def _read(path: Path) -> tuple[pd.DataFrame, bool]:
    """review.csv in the current layout, and whether the file had an older one."""
    if not path.exists():
        return _empty_table(), False
    text = {c: str for c in ("run_id", "cartridge_id", "frame_id", "model_call",
                             "reviewer_call", "reviewer", "time")}
    try:
        table = pd.read_csv(path, dtype=text, keep_default_na=False,
                            na_values={"x": [""], "y": [""]})
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the review decisions: {err}", path) from None
    legacy = list(table.columns) == LEGACY_COLUMNS
    older = legacy or list(table.columns) == POSITION_COLUMNS
    if legacy:  # no run, no position: matched by event id under conditions (match_decisions)
        table = table.assign(run_id="", frame_id="", x=np.nan, y=np.nan)
    elif list(table.columns) != COLUMNS and not older:
        raise InputError(f"review.csv needs the columns {','.join(COLUMNS)} (or, written by "
                         f"an older ctcnet, {','.join(POSITION_COLUMNS)} or "
                         f"{','.join(LEGACY_COLUMNS)})", path)
    if "cartridge_id" not in table:  # made before decisions named their cartridge
        table = table.assign(cartridge_id="")
    table = table[COLUMNS]
    try:
        table = table.astype({"event_id": "int64", "x": "float64", "y": "float64"})
    except (ValueError, TypeError) as err:
        raise InputError(f"cannot read the review decisions: {err}", path) from None
    return table.reset_index(drop=True), older


def read_decisions(sample_dir: str | Path) -> pd.DataFrame:
    """review.csv's rows as a table (``COLUMNS``; empty when nobody has reviewed yet). An
    old-layout file reads with an empty ``run_id`` and no position; one written before
    decisions named their cartridge, with an empty ``cartridge_id``."""
    return _read(Path(sample_dir) / REVIEW_FILE)[0]


def match_decisions(table: pd.DataFrame, run: RunEvents) -> Matched:
    """Attach review.csv's rows (:func:`read_decisions`) to the events of ``run``."""
    n = len(table)
    target = np.full(n, -1, np.int64)
    reason = np.full(n, "", dtype=object)
    table = table.reset_index(drop=True)  # a copy; rows are addressed by position
    known = table["event_id"].isin(run.events.index).to_numpy()
    keys = table["run_id"].to_numpy(dtype=object)
    legacy = keys == ""
    aside = _other_cartridge(table, run, reason)
    this_run = (keys == run.run_id) & known & ~aside
    target[this_run] = table["event_id"].to_numpy()[this_run]
    # Old layout: the event with its id, if the decision is younger than this run's events
    # table and saw the call the event has now; otherwise the run it was made in is unknown.
    if legacy.any():
        decided_at = pd.to_datetime(table["time"], utc=True, errors="coerce", format="ISO8601")
        after = decided_at.notna() if run.written_at is None else \
            decided_at >= pd.Timestamp(int(run.written_at), unit="s", tz="UTC")
        after = after.to_numpy(dtype=bool)
        current = run.events["class"].reindex(table["event_id"]).to_numpy(dtype=object)
        same_call = table["model_call"].to_numpy(dtype=object) == current
        ok = legacy & known & after & same_call & ~aside
        target[ok] = table["event_id"].to_numpy()[ok]
        reason[legacy & ~known] = "old layout, no such event in this run"
        reason[legacy & known & ~after] = ("old layout, decided before this run's events "
                                           "were written (made on an earlier run?)")
        reason[legacy & known & after & ~same_call] = "old layout, the model's call differs"
        rows = np.flatnonzero(ok)
        if len(rows):  # give them this run's key and their event's position
            at = run.events.loc[table["event_id"].to_numpy()[rows]]
            table.loc[rows, "run_id"] = run.run_id
            table.loc[rows, "frame_id"] = at["frame_id"].to_numpy()
            table.loc[rows, "x"] = at["x"].to_numpy(np.float64).round(2)
            table.loc[rows, "y"] = at["y"].to_numpy(np.float64).round(2)
    if run.cartridge_id is not None:  # decided on this run, hence on this cartridge
        table.loc[(this_run | (legacy & (target >= 0))) & (table["cartridge_id"] == ""),
                  "cartridge_id"] = run.cartridge_id
    # Another run of this cartridge (or a row of this one whose id is gone): by position.
    frames = table["frame_id"].to_numpy(dtype=object)
    xs, ys = table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    for i in np.flatnonzero(~legacy & ~this_run & ~aside):
        target[i] = run.nearest(frames[i], xs[i], ys[i])
        if target[i] < 0:
            reason[i] = (f"no event within {POSITION_TOLERANCE_UM:g} um of x {xs[i]:g}, "
                         f"y {ys[i]:g} in frame {frames[i]} in this run")
    # A rejection says "not the call I saw"; it says nothing about another call.
    attached = target >= 0
    calls_now = np.full(n, "", dtype=object)
    calls_now[attached] = run.events["class"].reindex(target[attached]).to_numpy(dtype=object)
    seen = table["model_call"].to_numpy(dtype=object)
    other = attached & (table["reviewer_call"].to_numpy(dtype=object) == REJECTED) \
        & (seen != calls_now)
    for i in np.flatnonzero(other):
        reason[i] = f"rejected a {seen[i]} call; this run calls the event {calls_now[i]}"
    target[other] = -1
    attached = target >= 0
    # The latest decision per event counts (file order breaks ties: rows are appended).
    when = pd.to_datetime(table["time"], utc=True, errors="coerce", format="ISO8601")
    order = pd.DataFrame({"target": target, "when": when, "row": np.arange(n)})[attached]
    order = order.sort_values(["when", "row"], na_position="first", kind="stable")
    latest = order.drop_duplicates("target", keep="last").sort_values("target")
    rows = latest["row"].to_numpy()
    decisions = pd.DataFrame({
        "event_id": target[rows], "model_call": calls_now[rows],
        "reviewer_call": table["reviewer_call"].to_numpy(dtype=object)[rows],
        "reviewer": table["reviewer"].to_numpy(dtype=object)[rows],
        "time": table["time"].to_numpy(dtype=object)[rows],
        "decided_call": seen[rows], "row": rows})
    unattached = table[~attached].assign(reason=reason[~attached])
    return Matched(table, target, decisions, unattached, int(attached.sum() - len(rows)),
                   int(aside.sum()))


def _other_cartridge(table: pd.DataFrame, run: RunEvents, reason: np.ndarray) -> np.ndarray:
    """Rows that must not attach to ``run``'s events, as made on another cartridge (``reason``
    filled in for them): one whose ``cartridge_id`` is not the run's, and (the run's cartridge
    being known) one with no cartridge from another run, which nothing ties to this cartridge.
    Old-layout rows (no run) are left to their own conditions."""
    aside = np.zeros(len(table), bool)
    if run.cartridge_id is None:  # a run written before cartridges were identified
        return aside
    made_on = table["cartridge_id"].to_numpy(dtype=object)
    keys = table["run_id"].to_numpy(dtype=object)
    other = (made_on != "") & (made_on != run.cartridge_id)
    unknown = (made_on == "") & (keys != "") & (keys != run.run_id)
    for i in np.flatnonzero(other):
        reason[i] = (f"made on another cartridge with this sample id (cartridge {made_on[i]}; "
                     f"this run's is {run.cartridge_id})")
    for i in np.flatnonzero(unknown):
        reason[i] = ("made on another run before decisions named their cartridge: nothing says "
                     f"it was on this cartridge ({run.cartridge_id})")
    aside[other | unknown] = True
    return aside


def warn_set_aside(sample_dir: str | Path, matched: Matched) -> None:
    """One warning naming how many decisions were set aside as made on another cartridge."""
    if matched.other_cartridge:
        log.warning("%s: %d decision(s) in review.csv were made on another cartridge with this "
                    "sample id (predict --overwrite with another scan?): set aside, kept in the "
                    "file, not counted", sample_dir, matched.other_cartridge)


def load_decisions(sample_dir: str | Path, run: RunEvents) -> Matched:
    """A sample's review.csv matched to its current run."""
    return match_decisions(read_decisions(sample_dir), run)


# ---------------------------------------------------------------------------------------------
# Writing: one read-modify-write at a time per folder, across threads and processes.

_NO_FLOCK = threading.Lock()
_warned_no_flock = False


@contextlib.contextmanager
def decisions_lock(sample_dir: str | Path) -> Iterator[None]:
    """Hold the exclusive lock on a sample's review.csv (blocks until it is free).

    ``flock`` on a lock file that is never deleted (deleting it would let a waiter lock the
    old file while a newcomer locks a new one); the kernel releases it when a holder dies.
    Where there is no ``flock``, a lock of this process only, with a warning.
    """
    global _warned_no_flock
    try:
        import fcntl
    except ImportError:
        if not _warned_no_flock:
            log.warning("no file locking on this platform: decisions are safe from other "
                        "threads of this server only; run one review server per results "
                        "folder")
            _warned_no_flock = True
        with _NO_FLOCK:
            yield
        return
    with open(Path(sample_dir) / LOCK_FILE, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write(sample_dir: Path, table: pd.DataFrame) -> None:
    # fsync'd and renamed into place: a decision that was answered "saved" survives a crash.
    atomic_write_text(sample_dir / REVIEW_FILE, table[COLUMNS].to_csv(index=False))


def record_decision(sample_dir: str | Path, run: RunEvents, event_id: int,
                    reviewer_call: str, reviewer: str, now: datetime | None = None) -> Matched:
    """Record one decision on event ``event_id`` of ``run``: it replaces the decisions that
    attach to that event (the latest wins); every other row is kept. Returns the new match."""
    event_id = _event_of_run(sample_dir, run, event_id)
    event = run.events.loc[event_id]
    when = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    row = pd.DataFrame([[run.run_id, run.cartridge_id or "", event_id, event["frame_id"],
                         round(float(event["x"]), 2), round(float(event["y"]), 2),
                         event["class"], reviewer_call, reviewer, when]], columns=COLUMNS)
    return _replace_decisions(sample_dir, run, event_id, row)


def clear_decision(sample_dir: str | Path, run: RunEvents, event_id: int) -> Matched:
    """Take back every decision that attaches to event ``event_id`` of ``run``: the event is
    undecided again (a decision made on another cartridge stays, as it attaches to none)."""
    event_id = _event_of_run(sample_dir, run, event_id)
    return _replace_decisions(sample_dir, run, event_id, None)


def _event_of_run(sample_dir: str | Path, run: RunEvents, event_id: int) -> int:
    event_id = int(event_id)
    if event_id not in run.events.index:
        raise InputError(f"no event {event_id} in this run", sample_dir)
    return event_id


def _replace_decisions(sample_dir: str | Path, run: RunEvents, event_id: int,
                       row: pd.DataFrame | None) -> Matched:
    """review.csv without the rows that attach to ``event_id``, plus ``row`` (None: none)."""
    sample_dir = Path(sample_dir)
    with decisions_lock(sample_dir):
        # Read inside the lock: what another writer saved a moment ago is kept.
        matched = match_decisions(read_decisions(sample_dir), run)
        kept = matched.table[matched.target != event_id]
        table = kept if row is None else (pd.concat([kept, row], ignore_index=True)
                                          if len(kept) else row)
        _write(sample_dir, table)
    return match_decisions(table.reset_index(drop=True), run)


def migrate_decisions(sample_dir: str | Path, run: RunEvents) -> Matched:
    """Rewrite an older review.csv in the current layout (rows that attach to this run get
    its key, its cartridge and their event's position; the others are kept as they were).
    Returns the match; logs what it did, what was set aside as made on another cartridge and
    what attaches to no event. A folder it cannot write is left as it is, with a warning (the
    match holds in memory all the same)."""
    sample_dir = Path(sample_dir)
    path = sample_dir / REVIEW_FILE
    table, legacy_file = _read(path)
    matched = match_decisions(table, run)
    if legacy_file or _keys_changed(table, matched.table):
        try:
            with decisions_lock(sample_dir):
                table, legacy_file = _read(path)  # again: another writer may have been first
                matched = match_decisions(table, run)
                old = int((table["run_id"] == "").sum())
                upgraded = old - int((matched.table["run_id"] == "").sum())
                if legacy_file or _keys_changed(table, matched.table):
                    _write(sample_dir, matched.table)
                    log.info("%s: %d decision(s) without run or position in review.csv: %d "
                             "attached to this run's events (same id and call, decided after "
                             "the run), %d kept as they were; rewritten with run ids and "
                             "positions", sample_dir, old, upgraded, old - upgraded)
        except OSError as err:
            log.warning("%s: cannot rewrite review.csv in the current layout (%s); it is read "
                        "as it is", sample_dir, err.strerror or err)
    warn_set_aside(sample_dir, matched)
    if len(matched.unattached):
        log.warning("%s: %d decision(s) in review.csv attach to no event of this run (kept "
                    "in the file, not counted): %s", sample_dir, len(matched.unattached),
                    "; ".join(f"event {e}: {r}" for e, r in zip(
                        matched.unattached["event_id"][:5], matched.unattached["reason"][:5])))
    return matched


def _keys_changed(before: pd.DataFrame, after: pd.DataFrame) -> bool:
    """Whether matching gave rows a run key or a cartridge they did not have in the file."""
    return bool((after["run_id"] != before["run_id"]).any() or
                (after["cartridge_id"] != before["cartridge_id"]).any())


# ---------------------------------------------------------------------------------------------
# What the decisions add up to: ``ctcnet.inference.counts.count_reviewed``.

def reviewed_labels(decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions that give a label: confirmed or relabelled events (rejections give none)."""
    return decisions[decisions["reviewer_call"] != REJECTED]
