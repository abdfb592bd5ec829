"""A reviewer's decisions on one cartridge, recorded and counted: the one place the rest of
ctcnet asks (the review server, ``ctcnet crops --reviewed``); the matched decisions are counted
by :func:`ctcnet.inference.counts.count_reviewed`.

The pieces, each in its own module:

* :mod:`ctcnet.review.runs`: the predict output folder read back, the candidates a reviewer
  is shown, and the run's identity (``run_id``, a digest of its event numbering);
* :mod:`ctcnet.review.decision_journal`: review.csv, an append-only journal (a line per decision,
  written under a file lock, read incrementally by :class:`DecisionLog`);
* :mod:`ctcnet.review.matching`: which recorded decision counts for which event of the run
  now in the folder, by run and position, so a re-run never hands a decision to another cell;
* :mod:`ctcnet.review.agreement`: a second reader's decisions compared with the first's.

Predict numbers events in scan order, and a re-run (``--overwrite``, another model, other
detection settings) numbers them anew, so a decision is keyed by its run and its event's
position, and the cartridge it was made on (``cartridge_id``, summary.json's digest of the
scan's frame list): a decision made on another cartridge with this sample id is set aside,
kept in the file, never counted and reported. Files written before positions were recorded
are still read: such a row attaches to the event with its id only if it was decided after the
current ``events.parquet`` was written and the model call agrees; :func:`migrate_decisions`
(the review server, on opening a sample) rewrites the file in the current layout.
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.printable import utc_text
from ctcnet.errors import CtcnetError, InputError
from ctcnet.inference.counts import REJECTED
from ctcnet.review.decision_journal import (
    COLUMNS,
    LEGACY_COLUMNS,
    LOCK_FILE,
    POSITION_COLUMNS,
    REVIEW_FILE,
    SECOND_FILE,
    DecisionLog,
    _read,
    _write,
    decisions_lock,
    read_decisions,
)
from ctcnet.review.matching import (
    UNDECIDED,
    Matched,
    extend_match,
    match_decisions,
    warn_set_aside,
)
from ctcnet.review.runs import (
    POSITION_TOLERANCE_UM,
    QC_FRACTION,
    QC_MIN,
    RunEvents,
    default_reviewer,
    find_samples,
    load_sample,
    reported_classes,
    run_id,
    select_candidates,
)
from ctcnet.review.superseding import superseded_rows

# The decisions' API, gathered from the modules that make it (matching, the journal, runs).
__all__ = [
    "COLUMNS", "LEGACY_COLUMNS", "LOCK_FILE", "POSITION_COLUMNS", "POSITION_TOLERANCE_UM",
    "QC_FRACTION", "QC_MIN", "REJECTED", "REVIEW_FILE", "SECOND_FILE", "UNDECIDED",
    "DecisionLog", "Matched", "RunEvents", "clear_decision", "decision_of", "decisions_lock",
    "default_reviewer", "extend_match", "find_samples", "load_decisions", "load_sample",
    "match_decisions", "migrate_decisions", "read_decisions", "record_decision",
    "record_decisions", "reported_classes", "reviewed_labels", "run_id", "select_candidates",
    "second_reading_rows", "superseded_rows", "warn_not_counted", "warn_set_aside",
]

log = logging.getLogger(__name__)


def _decision_rows(run: RunEvents, event_ids, reviewer_calls, reviewer: str,
                   now: datetime | None) -> pd.DataFrame:
    """review.csv rows for decisions on ``event_ids`` of ``run`` (a call per event)."""
    events = run.events.loc[list(event_ids)]
    # Always six digits: isoformat() leaves the fraction out on a whole second, and a
    # reader's fixed format (%S.%f) would fail on that row.
    when = (now or datetime.now(UTC)).isoformat(timespec="microseconds")
    n = len(events)
    def text(values) -> pd.Series:  # Python strings, as journal rows read back hold them
        return pd.Series(list(values), dtype=object)
    return pd.DataFrame({
        "run_id": text([run.run_id] * n), "cartridge_id": text([run.cartridge_id or ""] * n),
        "event_id": events["event_id"].to_numpy(np.int64),
        "frame_id": text(events["frame_id"].tolist()),
        "x": events["x"].to_numpy(np.float64).round(2),
        "y": events["y"].to_numpy(np.float64).round(2),
        "model_call": text(events["class"].tolist()),
        "reviewer_call": text(reviewer_calls), "reviewer": text([reviewer] * n),
        "time": text([when] * n),
        "frame_digest": text(run.digests_of(events["frame_id"]).tolist())}, columns=COLUMNS)


def _decision_row(run: RunEvents, event_id: int, reviewer_call: str, reviewer: str,
                  now: datetime | None) -> pd.DataFrame:
    return _decision_rows(run, [event_id], [reviewer_call], reviewer, now)


class DecidedMeanwhile(CtcnetError):
    """A decision sent for an event whose decision is no longer the one its sender saw: another
    reviewer decided it meanwhile (or took it back), and the later decision would replace
    theirs unseen."""


# ``expect`` not given: whatever the event's decision is, the new one replaces it.
ANY = object()


def decision_of(decisions: DecisionLog, run: RunEvents, event_id: int
                ) -> tuple[str | None, pd.DataFrame]:
    """Event ``event_id``'s decision in ``run`` (None: undecided), and its journal rows."""
    table = decisions.matched(run).decisions
    row = table[table["event_id"].to_numpy(np.int64) == event_id]
    return (None if row.empty else str(row["reviewer_call"].iloc[-1])), row


def _check_expected(decisions: DecisionLog, run: RunEvents, event_id: int, expect,
                    wanted: str | None) -> None:
    """Under the lock: refuse when event ``event_id``'s decision is not ``expect`` (None:
    undecided), naming who decided it and when; not where it is already ``wanted``, the
    decision asked for (two reviewers confirming one event at once: nothing of either is
    replaced unseen, and the second was told "not saved" of what the event holds)."""
    if expect is ANY:
        return
    current, row = decision_of(decisions, run, event_id)
    if current != expect and current != wanted:
        if current is None:  # never decided, or taken back: `was` names a decision read
            raise DecidedMeanwhile(f"event {event_id} is undecided now (taken back since, or "
                                   f"never decided), where the request read it {expect}: "
                                   "`was` names the decision read, null for an undecided "
                                   "event, never the model's call; read the state again")
        said = (f"decided {current} by {row['reviewer'].iloc[-1]} at "
                f"{utc_text(row['time'].iloc[-1])}")
        raise DecidedMeanwhile(f"event {event_id} was {said} since this page (or script) "
                               f"read it {expect or 'undecided'}: the page now shows it (a "
                               "script: read the state again); decide again if yours should "
                               "stand")


def record_decision(sample_dir: str | Path, run: RunEvents, event_id: int,
                    reviewer_call: str, reviewer: str, now: datetime | None = None,
                    decisions: DecisionLog | None = None, expect=ANY) -> Matched:
    """Record one decision on event ``event_id`` of ``run``: appended to review.csv, it
    replaces the decisions that attach to that event (the latest wins); every other row is
    kept. ``decisions``: the sample's log, when the caller keeps one (a server: nothing is
    read twice). ``expect``: the event's decision as its sender saw it (None: undecided);
    another, as the line would be written, is refused (:class:`DecidedMeanwhile`). Returns
    the new match."""
    if reviewer_call == UNDECIDED:
        raise InputError(f"{UNDECIDED!r} is no decision: use clear_decision", sample_dir)
    event_id = _event_of_run(sample_dir, run, event_id)
    decisions = decisions or DecisionLog(sample_dir)
    with decisions_lock(sample_dir):
        _check_expected(decisions, run, event_id, expect, reviewer_call)
        decisions.append(run, _decision_row(run, event_id, reviewer_call, reviewer, now))
    return decisions.matched(run)


def record_decisions(sample_dir: str | Path, run: RunEvents, calls: dict[int, str],
                     reviewer: str, now: datetime | None = None,
                     decisions: DecisionLog | None = None, undecided_only: bool = False,
                     skipped: list[int] | None = None) -> Matched:
    """Record a decision on each event of ``calls`` (event id -> reviewer call) at once, as
    a grid's page confirmed in one action: the lines are appended together (one write, one
    fsync), each replacing the earlier decisions on its event. ``undecided_only``: only on
    the events no decision counts for as the lines are written (a grid's page shows undecided
    events: another reviewer's decision made since is not overwritten); the others are left
    as they are and listed in ``skipped``. Returns the new match."""
    if any(call == UNDECIDED for call in calls.values()):
        raise InputError(f"{UNDECIDED!r} is no decision: use clear_decision", sample_dir)
    ids = [_event_of_run(sample_dir, run, e) for e in calls]
    decisions = decisions or DecisionLog(sample_dir)
    if ids:
        with decisions_lock(sample_dir):
            if undecided_only:  # under the lock: what counts now, not when the page was drawn
                decided = set(decisions.matched(run).decisions["event_id"].astype(int))
                taken = [e for e in ids if e in decided]
                ids = [e for e in ids if e not in decided]
                if skipped is not None:
                    skipped.extend(taken)
            if ids:
                decisions.append(run, _decision_rows(run, ids, [calls[e] for e in ids],
                                                     reviewer, now))
    return decisions.matched(run)


def clear_decision(sample_dir: str | Path, run: RunEvents, event_id: int, reviewer: str = "",
                   now: datetime | None = None,
                   decisions: DecisionLog | None = None, expect=ANY) -> Matched:
    """Take back every decision that attaches to event ``event_id`` of ``run``: the event is
    undecided again (a row ``undecided`` appended; nothing when no decision counts for it; a
    decision made on another cartridge stays, as it attaches to none). ``expect``: as for
    :func:`record_decision`."""
    event_id = _event_of_run(sample_dir, run, event_id)
    decisions = decisions or DecisionLog(sample_dir)
    with decisions_lock(sample_dir):
        _check_expected(decisions, run, event_id, expect, None)
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
                    if legacy_file:
                        _keep_earlier_layout(path)
                    _write(sample_dir, matched.table)
                    log.info("%s: %d decision(s) without run or position in review.csv: %d "
                             "attached to this run's events (same id and call, decided after "
                             "the run), %d kept as they were; rewritten with run ids and "
                             "positions", sample_dir, old, upgraded, old - upgraded)
        except OSError as err:
            log.warning("%s: cannot rewrite review.csv in the current layout (%s); it is read "
                        "as it is", sample_dir, err.strerror or err)
    warn_set_aside(sample_dir, matched)
    warn_not_counted(sample_dir, matched)
    return matched


def warn_not_counted(sample_dir: str | Path, matched: Matched, file: str = REVIEW_FILE) -> None:
    """One warning naming the decisions of ``file`` that count for no event of this run, each
    with why: no event where it was made, or a rejection of a call the event no longer has
    (the event is there, called otherwise)."""
    if len(matched.unattached):
        log.warning("%s: %d decision(s) in %s count for no event of this run (kept in the "
                    "file, not counted): %s", sample_dir, len(matched.unattached), file,
                    "; ".join(f"event {e}: {r}" for e, r in zip(
                        matched.unattached["event_id"][:5], matched.unattached["reason"][:5])))


# An older layout's review.csv, as it was before the rewrite: an earlier ctcnet (a second
# workstation not yet upgraded, a rollback) reads this copy, not the new layout.
EARLIER_LAYOUT_FILE = REVIEW_FILE + ".earlier-layout"


def _keep_earlier_layout(path: Path) -> None:
    """Copy a review.csv of an older layout beside it before it is rewritten (once: a copy
    made before is not replaced), and say so."""
    kept = path.with_name(EARLIER_LAYOUT_FILE)
    if kept.exists():
        return
    shutil.copy2(path, kept)
    log.warning("%s: review.csv is rewritten in this ctcnet's layout, which an earlier ctcnet "
                "cannot read; the file as it was is kept as %s", path.parent, kept.name)


def _keys_changed(before: pd.DataFrame, after: pd.DataFrame) -> bool:
    """Whether matching gave rows a run key, a cartridge or a frame's digest they did not
    have in the file."""
    return bool((after["run_id"] != before["run_id"]).any() or
                (after["cartridge_id"] != before["cartridge_id"]).any() or
                (after["frame_digest"] != before["frame_digest"]).any())


def load_decisions(sample_dir: str | Path, run: RunEvents) -> Matched:
    """A sample's review.csv matched to its current run."""
    return match_decisions(read_decisions(sample_dir), run)


def second_reading_rows(sample_dir: str | Path, run: RunEvents) -> int:
    """The lines of a sample's review-second.csv matched to its current run, as a sign-off
    recorded them (a second reading's decision since moves the agreement it signed); 0
    where there is no second reading."""
    if not (Path(sample_dir) / SECOND_FILE).exists():
        return 0
    return match_decisions(read_decisions(sample_dir, SECOND_FILE), run).n_rows



# ---------------------------------------------------------------------------------------------
# What the decisions add up to: ``ctcnet.inference.counts.count_reviewed``.

def reviewed_labels(decisions: pd.DataFrame) -> pd.DataFrame:
    """The decisions that give a label: confirmed or relabelled events (rejections give none)."""
    return decisions[decisions["reviewer_call"] != REJECTED]
