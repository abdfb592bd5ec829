"""A reviewer's decisions on one cartridge: which events to show, and review.csv (the matched
decisions are counted by :func:`ctcnet.inference.counts.count_reviewed`).

Candidates (what a reviewer looks at): every call of a reported class (``ctc``, ``cluster``),
every event the model flagged for review, and a fixed random sample of the rest for quality
control (a model that hides CTCs among confident debris calls is only caught this way), plus
any event an earlier decision attaches to, so no decision counts unseen. The sample is drawn
with a seed taken from the sample id, so it stays the same across reloads and server restarts.

``RESULTS/<sample>/review.csv`` holds one row per decision, oldest first:
``run_id, cartridge_id, event_id, frame_id, x, y, model_call, reviewer_call, reviewer, time``.
``reviewer_call`` is a class name (the model's own on a confirmation, another on a relabel),
``rejected`` (not what the model said, class unknown) or ``undecided`` (the decisions on the
event taken back, :func:`clear_decision`). Each decision is appended as a line, so the file
keeps the history: a row replaces every earlier row that attached to its event in the run it
was made in (:func:`superseded_rows`), and readers take the last one per event.

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
``.review.csv.lock`` beside the file while they read what others appended and append their
line (written whole and fsync'd before the decision is answered "saved"); a line left
unfinished by a crash is ignored by readers and cut off by the next writer, so no reader
takes half a decision and no writer loses another's. The file is rewritten whole (atomically,
temp + rename) only when its layout must change (:func:`migrate_decisions`). A reader keeps
what it read (:class:`DecisionLog`) and reads only the lines appended since.
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import hashlib
import io
import json
import logging
import os
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
UNDECIDED = "undecided"  # reviewer_call of a row that takes the decisions on its event back
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
    ``replaced``: per row of ``table``, whether a later row replaces it
    (:func:`superseded_rows`).
    """

    table: pd.DataFrame
    target: np.ndarray
    decisions: pd.DataFrame
    unattached: pd.DataFrame
    superseded: int
    other_cartridge: int = 0
    replaced: np.ndarray | None = None


def _empty_table() -> pd.DataFrame:
    kinds = {"event_id": "int64", "x": "float64", "y": "float64"}
    return pd.DataFrame({c: pd.Series(dtype=kinds.get(c, object)) for c in COLUMNS})


def _complete_lines(data: bytes, path: Path) -> bytes:
    """``data`` up to its last newline: a last line without one was left unfinished (a writer
    stopped mid-line), so it is no decision (the writer never answered "saved")."""
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("%s: an unfinished last line (%d bytes) is ignored", path, len(data) - end)
    return data[:end]


def _parse(text: str, path: Path) -> tuple[pd.DataFrame, bool]:
    """review.csv's text (header and whole lines) in the current layout, and whether it had
    an older one."""
    if not text.strip():
        return _empty_table(), False
    strings = {c: str for c in ("run_id", "cartridge_id", "frame_id", "model_call",
                                "reviewer_call", "reviewer", "time")}
    try:
        table = pd.read_csv(io.StringIO(text), dtype=strings, keep_default_na=False,
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


def _read(path: Path) -> tuple[pd.DataFrame, bool]:
    """review.csv in the current layout, and whether the file had an older one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return _empty_table(), False
    except OSError as err:
        raise InputError(f"cannot read the review decisions: {err}", path) from None
    return _parse(_complete_lines(data, path).decode("utf-8", "replace"), path)


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
    # History: rows a later row replaced attach to nothing and are reported as nothing.
    replaced = superseded_rows(table, run.tolerance_px)
    known = table["event_id"].isin(run.events.index).to_numpy()
    keys = table["run_id"].to_numpy(dtype=object)
    legacy = keys == ""
    aside = _other_cartridge(table, run, reason)
    made_here = (keys == run.run_id) & known & ~aside
    this_run = made_here & ~replaced
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
        ok = legacy & known & after & same_call & ~aside & ~replaced
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
        table.loc[(made_here | (legacy & (target >= 0))) & (table["cartridge_id"] == ""),
                  "cartridge_id"] = run.cartridge_id
    # Another run of this cartridge (or a row of this one whose id is gone): by position.
    frames = table["frame_id"].to_numpy(dtype=object)
    xs, ys = table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    for i in np.flatnonzero(~legacy & ~made_here & ~aside & ~replaced):
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
    # A take-back that counts leaves its event undecided; one that attaches nowhere says nothing.
    decisions = decisions[decisions["reviewer_call"] != UNDECIDED].reset_index(drop=True)
    loose = ~attached & ~replaced & (table["reviewer_call"].to_numpy(dtype=object) != UNDECIDED)
    unattached = table[loose].assign(reason=reason[loose])
    return Matched(table, target, decisions, unattached,
                   int(replaced.sum() + attached.sum() - len(rows)), int((aside & loose).sum()),
                   replaced)


def extend_match(matched: Matched, row: pd.DataFrame, run: RunEvents) -> Matched:
    """:func:`match_decisions` of ``matched.table`` with ``row`` appended, from ``matched``
    (that table's match to ``run``) and the row alone: a decision of ``run`` on one of its
    events replaces every earlier row that attached to the event, so only that event's
    decision changes (and what the row replaces leaves the unattached)."""
    n = len(matched.table)
    event = int(row["event_id"].iloc[0])
    table = pd.concat([matched.table, row], ignore_index=True)
    before = matched.replaced if matched.replaced is not None else np.zeros(n, bool)
    newly = _replaced_by(table, n, run.tolerance_px) & ~before
    was = matched.target == event
    target = np.append(np.where(newly, -1, matched.target), event)
    decisions = matched.decisions[matched.decisions["event_id"] != event]
    call = row["reviewer_call"].iloc[0]
    if call != UNDECIDED:
        decisions = pd.concat([decisions, pd.DataFrame({
            "event_id": [event], "model_call": [str(run.events.at[event, "class"])],
            "reviewer_call": [call], "reviewer": [row["reviewer"].iloc[0]],
            "time": [row["time"].iloc[0]], "decided_call": [row["model_call"].iloc[0]],
            "row": [n]})], ignore_index=True).sort_values("event_id", kind="stable")
    unattached = matched.unattached[~matched.unattached.index.isin(np.flatnonzero(newly))]
    superseded = matched.superseded + int(newly.sum() - was.sum()) + int(was.any())
    return Matched(table, target, decisions.reset_index(drop=True), unattached, superseded,
                   matched.other_cartridge, np.append(before | newly, False))


def _replaced_by(table: pd.DataFrame, j: int, tolerance_px: float) -> np.ndarray:
    """Which of the rows before row ``j`` it replaces (:func:`superseded_rows`'s rule)."""
    i = np.arange(j)
    return _replaces(table, i, np.full(j, j), tolerance_px)


def superseded_rows(table: pd.DataFrame, tolerance_px: float) -> np.ndarray:
    """Which rows of review.csv a later row replaces (bool per row, file order).

    A decision (or a take-back) replaces every earlier row that attached to its event in the
    run it was made in, as a rewrite of the file once dropped them; read from the file alone,
    since that run may be gone. An earlier row attached there when it is of the same run and
    event (an old-layout row: the same event id and call), or of another run with a position in
    the same frame within the tolerance; not when it was set aside as made on another
    cartridge, nor, a rejection, when it saw another call than the later row did."""
    n = len(table)
    out = np.zeros(n, bool)
    if n < 2:
        return out
    i, j = _neighbour_pairs(table, tolerance_px)
    out[i[_replaces(table, i, j, tolerance_px)]] = True
    return out


def _replaces(table: pd.DataFrame, i: np.ndarray, j: np.ndarray,
              tolerance_px: float) -> np.ndarray:
    """Per pair of rows (``i`` earlier, ``j`` later), whether row j replaces row i."""
    if not len(i):
        return np.zeros(0, bool)
    col = {c: table[c].to_numpy(dtype=object) for c in ("run_id", "cartridge_id", "frame_id",
                                                         "model_call", "reviewer_call")}
    event = table["event_id"].to_numpy(np.int64)
    x, y = table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    run, cart, call = col["run_id"], col["cartridge_id"], col["model_call"]
    same_event = event[i] == event[j]
    same_run = (run[i] == run[j]) & (run[i] != "")
    close = (col["frame_id"][i] == col["frame_id"][j]) & (col["frame_id"][i] != "") & \
        ((x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2 <= tolerance_px ** 2)
    attached = np.where(same_run, same_event,
                        np.where(run[i] == "", same_event & (call[i] == call[j]), close))
    aside = (cart[j] != "") & (((cart[i] != "") & (cart[i] != cart[j])) |
                               ((cart[i] == "") & (run[i] != "") & (run[i] != run[j])))
    other_call = (col["reviewer_call"][i] == REJECTED) & (call[i] != call[j])
    return attached & ~aside & ~other_call & (run[j] != "")


def _neighbour_pairs(table: pd.DataFrame, tolerance_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Row pairs (earlier, later) that may be decisions on one cell: the same event id, or the
    same frame within the tolerance (sorted by frame and x, so a pass per neighbour offset
    ends once no row has a neighbour that near)."""
    n = len(table)
    rows = np.arange(n)
    pairs = []
    ids = table["event_id"].to_numpy(np.int64)
    repeated = pd.Series(ids).duplicated(keep=False).to_numpy()
    if repeated.any():
        same = pd.DataFrame({"e": ids[repeated], "r": rows[repeated]})
        both = same.merge(same, on="e")
        both = both[both["r_x"] < both["r_y"]]
        pairs.append((both["r_x"].to_numpy(), both["r_y"].to_numpy()))
    frames, _ = pd.factorize(table["frame_id"].astype(str))
    x = table["x"].to_numpy(np.float64)
    placed = np.flatnonzero(np.isfinite(x) & (table["frame_id"].astype(str) != "").to_numpy())
    order = placed[np.lexsort((x[placed], frames[placed]))]
    for k in range(1, len(order)):
        a, b = order[:-k], order[k:]
        near = (frames[a] == frames[b]) & (x[b] - x[a] <= tolerance_px)
        if not near.any():
            break
        a, b = a[near], b[near]
        pairs.append((np.minimum(a, b), np.maximum(a, b)))
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    i = np.concatenate([p[0] for p in pairs])
    j = np.concatenate([p[1] for p in pairs])
    unique = np.unique(i * n + j)
    return unique // n, unique % n


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


HEADER = (",".join(COLUMNS) + "\n").encode("utf-8")


def _csv_line(values: list) -> bytes:
    """One row as a line of review.csv, quoted as pandas writes the whole file."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue().encode("utf-8")


_TAIL_BYTES = 512  # of the last line read: a file changed before that point is read again


class DecisionLog:
    """review.csv of one sample as this process has read it: its rows (:func:`read_decisions`'s
    table), the file's stamp and how far into it they go.

    Between rewrites the file only grows (each decision appends a line), so :meth:`refresh`
    reads only the lines appended since; a file replaced (a rewrite renames a new one into
    place), shortened, or changed before that point is read again whole. :meth:`matched` keeps
    the match of the rows it last read to a run. Thread-safe; a writer calls :meth:`append`
    under :func:`decisions_lock`."""

    def __init__(self, sample_dir: str | Path):
        self.sample_dir = Path(sample_dir)
        self.path = self.sample_dir / REVIEW_FILE
        self._lock = threading.RLock()
        self._appended = threading.local()  # per thread: the stamps of its last append
        self._forget()

    def _forget(self) -> None:
        self._table, self._older = _empty_table(), False
        self._header, self._offset, self._tail, self._file = b"", 0, b"", None
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
        self._appended.stamps = None

    def refresh(self) -> pd.DataFrame:
        """The file's rows now (reading only what was appended since the last refresh)."""
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._forget()
                return self._table
            stamp = self._stat_stamp(st)
            if stamp != self._stamp:
                with open(self.path, "rb") as fh:
                    if not self._read_appended(fh, st):
                        self._read_whole(fh)
                self._stamp = stamp
            return self._table

    def _read_whole(self, fh) -> None:
        fh.seek(0)
        data = _complete_lines(fh.read(), self.path)
        self._table, self._older = _parse(data.decode("utf-8", "replace"), self.path)
        self._header = data[:data.find(b"\n") + 1]
        self._offset, self._tail = len(data), data[-_TAIL_BYTES:]
        st = os.fstat(fh.fileno())
        self._file = (st.st_dev, st.st_ino)

    def _read_appended(self, fh, st: os.stat_result) -> bool:
        """Read the lines appended since; False when the file is not the one read before or
        changed before the point reached (it must be read whole)."""
        if self._file != (st.st_dev, st.st_ino) or st.st_size < self._offset or not self._header:
            return False
        fh.seek(self._offset - len(self._tail))
        if fh.read(len(self._tail)) != self._tail:
            return False
        data = _complete_lines(fh.read(), self.path)
        if data:
            rows = _parse_appended(data, self.path) if self._header == HEADER else \
                _parse((self._header + data).decode("utf-8", "replace"), self.path)[0]
            self._table = pd.concat([self._table, rows], ignore_index=True) \
                if len(self._table) else rows
            self._offset += len(data)
            self._tail = (self._tail + data)[-_TAIL_BYTES:]
        return True

    def matched(self, run: RunEvents) -> Matched:
        """The file's rows now matched to ``run`` (kept until the file changes)."""
        with self._lock:
            table = self.refresh()
            if self._matched is None or self._matched[:2] != (self._stamp, run.run_id):
                self._matched = (self._stamp, run.run_id, match_decisions(table, run))
            return self._matched[2]

    def append(self, run: RunEvents, row: pd.DataFrame) -> tuple[str, str]:
        """Append ``row`` (``COLUMNS``, a decision of ``run``) to the file; the caller holds
        :func:`decisions_lock`. A file of an older layout is rewritten in the current one
        first (the only rewrite). Returns the file's stamps before and after: equal "before"s
        mean nobody else wrote. When the file was as last matched, the match is brought up
        to date from the row alone (:func:`extend_match`), not made again."""
        with self._lock:
            self.refresh()
            before = self._stamp
            row = _parse_typed(row[COLUMNS].reset_index(drop=True), self.path)
            if self._stamp == "none" or self._older or self._header != HEADER:
                table = match_decisions(self._table, run).table if len(self._table) else \
                    self._table
                atomic_write_text(self.path, (pd.concat([table, row], ignore_index=True)
                                              if len(table) else row)[COLUMNS]
                                  .to_csv(index=False))
                self.refresh()
            else:
                self._append_row(run, row)
            self._appended.stamps = (before, self._stamp)
            return before, self._stamp

    def _append_row(self, run: RunEvents, row: pd.DataFrame) -> None:
        line = _csv_line(row.iloc[0].tolist())
        # The match of the file as it is before this line, if kept (lines appended by others
        # since it was made would be missing from it).
        prior = self._matched if self._matched is not None and \
            self._matched[:2] == (self._stamp, run.run_id) else None
        start, cut = self._append_line(line)
        if cut or start != self._offset:  # the file was not all read: read what is new
            self.refresh()
            return
        self._table = pd.concat([self._table, row], ignore_index=True)
        self._offset += len(line)
        self._tail = (self._tail + line)[-_TAIL_BYTES:]
        self._stamp = self.stamp()
        if prior is not None:
            self._matched = (self._stamp, run.run_id, extend_match(prior[2], row, run))

    def _append_line(self, line: bytes) -> tuple[int, bool]:
        """One whole line at the end, fsync'd before the decision is answered; an unfinished
        line a crashed writer left is cut off first, so the new line starts on its own.
        Returns where the line starts and whether a line was cut off."""
        with open(self.path, "r+b") as fh:
            end = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, end - 1))
            cut = bool(end) and fh.read(1) != b"\n"
            if cut:
                fh.seek(0)
                keep = fh.read().rfind(b"\n") + 1
                log.warning("%s: cut off an unfinished last line (%d bytes)", self.path,
                            end - keep)
                fh.truncate(keep)
                end = keep
            fh.seek(end)
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
            return end, cut


def _decision_row(run: RunEvents, event_id: int, reviewer_call: str, reviewer: str,
                  now: datetime | None) -> pd.DataFrame:
    event = run.events.loc[event_id]
    when = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    return pd.DataFrame([[run.run_id, run.cartridge_id or "", event_id, event["frame_id"],
                          round(float(event["x"]), 2), round(float(event["y"]), 2),
                          event["class"], reviewer_call, reviewer, when]], columns=COLUMNS)


def record_decision(sample_dir: str | Path, run: RunEvents, event_id: int,
                    reviewer_call: str, reviewer: str, now: datetime | None = None,
                    decisions: DecisionLog | None = None) -> Matched:
    """Record one decision on event ``event_id`` of ``run``: appended to review.csv, it
    replaces the decisions that attach to that event (the latest wins); every other row is
    kept. ``decisions``: the sample's log, when the caller keeps one (a server: nothing is
    read twice). Returns the new match."""
    if reviewer_call == UNDECIDED:
        raise InputError(f"{UNDECIDED!r} is no decision: use clear_decision", sample_dir)
    event_id = _event_of_run(sample_dir, run, event_id)
    decisions = decisions or DecisionLog(sample_dir)
    with decisions_lock(sample_dir):
        decisions.append(run, _decision_row(run, event_id, reviewer_call, reviewer, now))
    return decisions.matched(run)


def clear_decision(sample_dir: str | Path, run: RunEvents, event_id: int, reviewer: str = "",
                   now: datetime | None = None,
                   decisions: DecisionLog | None = None) -> Matched:
    """Take back every decision that attaches to event ``event_id`` of ``run``: the event is
    undecided again (a row ``undecided`` appended; nothing when no decision counts for it; a
    decision made on another cartridge stays, as it attaches to none)."""
    event_id = _event_of_run(sample_dir, run, event_id)
    decisions = decisions or DecisionLog(sample_dir)
    with decisions_lock(sample_dir):
        if event_id in decisions.matched(run).decisions["event_id"].to_numpy():
            decisions.append(run, _decision_row(run, event_id, UNDECIDED, reviewer, now))
    return decisions.matched(run)


def _event_of_run(sample_dir: str | Path, run: RunEvents, event_id: int) -> int:
    event_id = int(event_id)
    if event_id not in run.events.index:
        raise InputError(f"no event {event_id} in this run", sample_dir)
    return event_id


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
