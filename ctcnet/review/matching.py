"""review.csv matched to a run: which decision counts for which event, and which attach to
none (:func:`match_decisions`; :func:`extend_match` brings a match up to date from the rows
appended since, so a save costs the same at 10 or 100,000 recorded decisions).

In the run that made it, a decision's ``event_id`` holds; from any other run, it attaches to
the nearest current event of its frame within ``POSITION_TOLERANCE_UM``. A decision made on
another cartridge with the same sample id is set aside (never counted), unless its frame's
pixels are those it was made on (a cartridge whose other frames were fixed since). A row
replaces every earlier row that attached to its event in the run it was made in
(:func:`superseded_rows`), and the latest decision per event counts; an ``undecided`` row
leaves its event undecided.
"""

from __future__ import annotations

import itertools
import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.inference.counts import REJECTED
from ctcnet.review.runs import POSITION_TOLERANCE_UM, RunEvents
from ctcnet.review.superseding import replaced_by_rows, superseded_rows

log = logging.getLogger(__name__)

UNDECIDED = "undecided"  # reviewer_call of a row that takes the decisions on its event back
_serials = itertools.count(1)


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
    ``history``: per row of ``table``, the current event whose cell the row decided, replaced
    or not (a row of another run by position, as ``target``), or -1: what a reading's history
    (the readers' own calls, the adjudication) is read from, in a renumbered rerun too.
    ``serial``: this match's own number; ``extends``: (the serial of the match it extends,
    the events whose decision the new rows changed), when :func:`extend_match` made it, so
    counts can be brought up to date from those events alone; ``changed``: then, the
    decisions that count for those events now (none for an event taken back). ``latest``: the
    time of the latest row that attaches to an event of the run, a take-back included (when the
    review last changed: an export made before a take-back is out of date too).

    A match that :func:`extend_match` made keeps the earlier match's table and decisions and
    the rows appended since apart, and joins them only when ``table`` or ``decisions`` is
    asked for (a page's state, not a save): a decision costs the same at 10 or 100,000
    recorded ones. ``n_rows`` and ``n_decisions`` count them without joining.
    """

    _JOIN_AFTER = 256  # decision changes kept apart before they are joined

    def __init__(self, table: pd.DataFrame, target: np.ndarray, decisions: pd.DataFrame,
                 unattached: pd.DataFrame, superseded: int, other_cartridge: int = 0,
                 replaced: np.ndarray | None = None, serial: int | None = None,
                 extends: tuple[int, tuple[int, ...]] | None = None,
                 changed: pd.DataFrame | None = None, latest: str | None = None,
                 history: np.ndarray | None = None):
        self._parts = [table]
        self.history = target if history is None else history
        self.latest = latest
        self._n_rows = len(table)
        self.target, self.unattached = target, unattached
        self.superseded, self.other_cartridge, self.replaced = \
            superseded, other_cartridge, replaced
        self.serial = next(_serials) if serial is None else serial
        self.extends, self.changed = extends, changed
        # The decisions: a table (sorted by event), and the changes made to it since, in order:
        # (the events a change decided again -> whether each has a decision now, its rows).
        self._decisions, self._changes = decisions, []
        self._n_decisions = len(decisions)
        self._decided_ids: np.ndarray | None = None
        self._joining = threading.Lock()  # pages of several threads may join at once

    def __repr__(self) -> str:
        return (f"Matched(rows={self.n_rows}, decisions={self.n_decisions}, "
                f"unattached={len(self.unattached)}, superseded={self.superseded}, "
                f"serial={self.serial}, extends={self.extends})")

    @property
    def n_rows(self) -> int:
        """``len(self.table)``, without joining it."""
        return self._n_rows

    @property
    def n_decisions(self) -> int:
        """``len(self.decisions)``, without joining it."""
        return self._n_decisions

    @property
    def table(self) -> pd.DataFrame:
        """The file's rows (joined here when rows were appended since)."""
        with self._joining:
            if len(self._parts) > 1:
                self._parts = [pd.concat(self._parts, ignore_index=True)]
            return self._parts[0]

    @property
    def decisions(self) -> pd.DataFrame:
        """The decision that counts per event, in event order (the changes of the rows
        appended since joined here)."""
        with self._joining:
            return self._joined_decisions()

    def _joined_decisions(self) -> pd.DataFrame:
        if self._changes:
            changes, self._changes = self._changes, []
            later: set[int] = set()
            new = []
            for events, rows in reversed(changes):  # a later change wins
                if len(rows):
                    new.append(rows[~rows["event_id"].isin(later)])
                later.update(events)
            base = self._decisions
            kept = base[~base["event_id"].isin(later)]
            new = [r for r in reversed(new) if len(r)]
            if new:
                kept = pd.concat([kept, *new], ignore_index=True).sort_values(
                    "event_id", kind="stable")
            self._decisions = kept.reset_index(drop=True)
            self._decided_ids = None
        return self._decisions

    def _decided(self, events: np.ndarray) -> np.ndarray:
        """Whether each of ``events`` has a decision that counts, without joining."""
        out = np.zeros(len(events), bool)
        pending = np.ones(len(events), bool)
        for decided, _ in reversed(self._changes):
            for k in np.flatnonzero(pending):
                now = decided.get(int(events[k]))
                if now is not None:
                    out[k], pending[k] = now, False
        if pending.any():
            if self._decided_ids is None:
                self._decided_ids = self._decisions["event_id"].to_numpy(np.int64)
            out[pending] = np.isin(events[pending], self._decided_ids)
        return out

    def _extended(self, rows: pd.DataFrame, decided: dict[int, bool],
                  made: pd.DataFrame, **fields) -> Matched:
        """This match with ``rows`` appended and ``made`` the decisions now counting for the
        events of ``decided`` (kept apart until asked for)."""
        with self._joining:  # as this match is now, not while another thread joins it
            out = Matched(self._parts[0], decisions=self._decisions, **fields)
            out._parts = self._parts + [rows]
            if len(out._parts) > 4:  # the small parts appended, joined (each read per save)
                out._parts = [out._parts[0], pd.concat(out._parts[1:], ignore_index=True)]
            out._n_rows = self._n_rows + len(rows)
            out._changes = self._changes + [(decided, made)]
            out._n_decisions = self._n_decisions - int(self._decided(
                np.fromiter(decided, np.int64, len(decided))).sum()) + len(made)
            out._decided_ids = self._decided_ids
        if len(out._changes) > self._JOIN_AFTER:
            out.decisions  # noqa: B018 (joins them)
        return out



def match_decisions(table: pd.DataFrame, run: RunEvents) -> Matched:
    """Attach review.csv's rows (:func:`read_decisions`) to the events of ``run``."""
    n = len(table)
    target = np.full(n, -1, np.int64)
    reason = np.full(n, "", dtype=object)
    table = table.reset_index(drop=True)  # a copy; rows are addressed by position
    foreign = _not_a_call_of(table, run, reason)
    # History: rows a later row replaced attach to nothing and are reported as nothing (a
    # row whose call counts for nothing replaces none: it took a decision back unsaid).
    replaced = np.zeros(n, bool)
    replaced[~foreign] = superseded_rows(table[~foreign].reset_index(drop=True),
                                         run.tolerance_px)
    known = table["event_id"].isin(run.events.index).to_numpy()
    keys = table["run_id"].to_numpy(dtype=object)
    legacy = keys == ""
    aside = _other_cartridge(table, run, reason)
    made_here = (keys == run.run_id) & known & ~aside & ~foreign
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
        ok = legacy & known & after & same_call & ~aside & ~replaced & ~foreign
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
    # ...and on this run's pixels of its frame.
    undigested = np.flatnonzero((made_here | (legacy & (target >= 0))) &
                                (table["frame_digest"] == "").to_numpy())
    if len(undigested) and run.frame_digests:
        table.loc[undigested, "frame_digest"] = run.digests_of(
            table["frame_id"].to_numpy(dtype=object)[undigested])
    # Another run of this cartridge (or a row of this one whose id is gone): by position.
    frames = table["frame_id"].to_numpy(dtype=object)
    xs, ys = table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    for i in np.flatnonzero(~legacy & ~made_here & ~aside & ~replaced & ~foreign):
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
    history = _history(table, target, replaced & ~foreign & ~aside & ~legacy, run)
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
                   replaced, latest=_later(None, table["time"].astype(str)[attached]),
                   history=history)


def _history(table: pd.DataFrame, target: np.ndarray, replaced: np.ndarray,
             run: RunEvents) -> np.ndarray:
    """``target`` with the ``replaced`` rows attached as a row that counted would be (its id
    in the run it was made on, by position from another): a replaced row is history of its
    cell, not nobody's; a rejection of a call the run changed says nothing of it still."""
    history = target.copy()
    ids, keys = table["event_id"].to_numpy(), table["run_id"].to_numpy(dtype=object)
    frames = table["frame_id"].to_numpy(dtype=object)
    xs, ys = table["x"].to_numpy(np.float64), table["y"].to_numpy(np.float64)
    for i in np.flatnonzero(replaced):
        history[i] = ids[i] if keys[i] == run.run_id and ids[i] in run.events.index \
            else run.nearest(frames[i], xs[i], ys[i])
    rows = np.flatnonzero(replaced & (history >= 0))
    now = run.events["class"].reindex(history[rows]).to_numpy(dtype=object)
    rejected = (table["reviewer_call"].to_numpy(dtype=object)[rows] == REJECTED) & \
        (table["model_call"].to_numpy(dtype=object)[rows] != now)
    history[rows[rejected]] = -1
    return history


def _foreign_rows(unattached: pd.DataFrame, run: RunEvents) -> np.ndarray:
    """The rows (positions in the table) of ``unattached`` whose call is none of the run's
    model's classes, nor a rejection or a take-back (:func:`_not_a_call_of`)."""
    if run.classes is None or not len(unattached):
        return np.zeros(0, np.int64)
    calls = unattached["reviewer_call"].astype(str)
    return unattached.index[~calls.isin([*run.classes, REJECTED, UNDECIDED])].to_numpy(np.int64)


def _not_a_call_of(table: pd.DataFrame, run: RunEvents, reason: np.ndarray) -> np.ndarray:
    """The rows whose call is none of the run's model's classes, nor a rejection or a
    take-back (a journal edited by hand, or another model's): not counted, each said in
    ``reason``. The server refuses such a call; read from the file, it was counted as a
    class of its own ("tumour 1"), and cut into a crop folder of that name."""
    calls = table["reviewer_call"].astype(str).to_numpy(dtype=object)
    if run.classes is None:
        return np.zeros(len(table), bool)
    foreign = ~np.isin(calls, [*run.classes, REJECTED, UNDECIDED])
    for i in np.flatnonzero(foreign):
        reason[i] = (f"its call {calls[i]!r} is none of the model's classes "
                     f"({', '.join(run.classes)}) nor a rejection: not counted")
    return foreign


def extend_match(matched: Matched, rows: pd.DataFrame, run: RunEvents) -> Matched:
    """:func:`match_decisions` of ``matched.table`` with ``rows`` appended, from ``matched``
    (that table's match to ``run``) and the new rows alone. Each row is a decision of ``run``
    on another of its events (a page of a grid confirmed at once, or one decision): it
    replaces every earlier row that attached to its event, so only those events' decisions
    change (and what the rows replace leaves the unattached)."""
    n, m = matched.n_rows, len(rows)
    rows = rows.reset_index(drop=True)
    events = rows["event_id"].to_numpy(np.int64)
    if len(set(events.tolist())) != m:
        raise ValueError("extend_match takes one row per event")
    before = matched.replaced if matched.replaced is not None else np.zeros(n, bool)
    newly = replaced_by_rows(matched._parts, rows, run.tolerance_px) & ~before
    # A row whose call is none of the model's counts for nothing and replaces nothing, nor is
    # replaced (as match_decisions reads it): it stays among the unattached, said, where an open
    # server dropped it until the file was read again.
    newly[_foreign_rows(matched.unattached, run)] = False
    was = np.isin(matched.target, events)
    target = np.append(np.where(newly, -1, matched.target), events)
    calls = rows["reviewer_call"].to_numpy(dtype=object)
    made = calls != UNDECIDED
    changed = pd.DataFrame({
        "event_id": events[made],
        "model_call": run.events["class"].reindex(events[made]).to_numpy(dtype=object),
        "reviewer_call": calls[made],
        "reviewer": rows["reviewer"].to_numpy(dtype=object)[made],
        "time": rows["time"].to_numpy(dtype=object)[made],
        "decided_call": rows["model_call"].to_numpy(dtype=object)[made],
        "row": n + np.flatnonzero(made)})
    unattached = matched.unattached[~matched.unattached.index.isin(np.flatnonzero(newly))]
    # Per event as one row would: its earlier rows are replaced, and it had a decision before.
    again = np.isin(events, matched.target[was]).sum()
    superseded = matched.superseded + int(newly.sum() - was.sum()) + int(again)
    return matched._extended(
        rows, dict(zip(events.tolist(), made.tolist())), changed,
        target=target, unattached=unattached, superseded=superseded,
        other_cartridge=matched.other_cartridge,
        replaced=np.append(before | newly, np.zeros(m, bool)),
        extends=(matched.serial, tuple(events.tolist())), changed=changed,
        latest=_later(matched.latest, rows["time"].astype(str)),
        history=np.append(matched.history, events))


def _later(latest: str | None, times: pd.Series) -> str | None:
    """The later of ``latest`` and the latest of ``times`` (ISO 8601 UTC, compared as text,
    as :func:`ctcnet.inference.counts.count_reviewed` compares them)."""
    times = times[times != ""]
    if not len(times):
        return latest
    return str(times.max()) if latest is None else max(latest, str(times.max()))


# The reason of a decision made on another run by a ctcnet that did not yet name its cartridge.
_NO_CARTRIDGE = "made on another run before decisions named their cartridge"


def _other_cartridge(table: pd.DataFrame, run: RunEvents, reason: np.ndarray) -> np.ndarray:
    """Rows that must not attach to ``run``'s events, as made on another cartridge (``reason``
    filled in for them): one whose ``cartridge_id`` is not the run's, unless it was made on
    the pixels its frame has in this run (another frame of the cartridge changed: fixed,
    exported again), and (the run's cartridge being known) one with no cartridge from another
    run, which nothing ties to this cartridge. Old-layout rows (no run) are left to their own
    conditions."""
    aside = np.zeros(len(table), bool)
    if run.cartridge_id is None:  # a run written before cartridges were identified
        return aside
    made_on = table["cartridge_id"].to_numpy(dtype=object)
    keys = table["run_id"].to_numpy(dtype=object)
    digest = table["frame_digest"].to_numpy(dtype=object)
    same_pixels = (digest != "") & \
        (digest == run.digests_of(table["frame_id"].to_numpy(dtype=object)))
    other = (made_on != "") & (made_on != run.cartridge_id) & ~same_pixels
    unknown = (made_on == "") & (keys != "") & (keys != run.run_id)
    for i in np.flatnonzero(other):
        reason[i] = (f"made on another cartridge with this sample id (cartridge {made_on[i]}; "
                     f"this run's is {run.cartridge_id}), or on this frame before its files "
                     "changed (repaired, exported again)")
    for i in np.flatnonzero(unknown):
        reason[i] = (f"{_NO_CARTRIDGE}: nothing says it was on this cartridge "
                     f"({run.cartridge_id})")
    aside[other | unknown] = True
    return aside


def warn_set_aside(sample_dir: str | Path, matched: Matched) -> None:
    """A warning naming how many decisions were set aside as made on another cartridge, and
    one for those an earlier ctcnet made without naming their cartridge (its review.csv
    rewritten in this layout): nothing says which scan they were made on."""
    reasons = matched.unattached.get("reason", pd.Series(dtype=object)).astype(str)
    unnamed = int(reasons.str.startswith(_NO_CARTRIDGE).sum())
    if matched.other_cartridge - unnamed > 0:
        log.warning("%s: %d decision(s) in review.csv were made on another cartridge with this "
                    "sample id (predict --overwrite with another scan?), or on frames of this "
                    "one whose files changed since (repaired, exported again): set aside, kept "
                    "in the file, not counted", sample_dir, matched.other_cartridge - unnamed)
    if unnamed:
        log.warning("%s: %d decision(s) in review.csv were made on an earlier run by a ctcnet "
                    "that did not record which cartridge they were made on: nothing ties them "
                    "to this run's scan, so they are set aside, kept in the file, not counted; "
                    "where it is the same scan, decide those events again in ctcnet review "
                    "(the earlier calls stay in review.csv)", sample_dir, unnamed)

