"""One CTC, one count: a CTC call its markers made beside a counted CTC or cluster the network
called itself is that cell read twice (numpy and Arrow).

A lymphocyte or a tdEV touching a CTC is an event of its own, and its crop holds the CTC's CK
within the core the marker guard reads: its markers then read a CTC (``markers_ctc``, the
network having called it ``wbc`` or ``debris``), and the one CTC was counted twice (3 of 24
CTC-lymphocyte pairs painted 1.5-2.5 um apart into simulated scans; a tdEV 9 um from its CTC
on 10 dense simulated cartridges). The markers' call is held (:data:`SAME_CTC`: shown beside
the call it repeats, not counted; a reviewer who finds two cells confirms it) where a counted
call of the network's own, of a CTC or a cluster, lies nearer than :data:`SAME_CTC_UM`; of
two such markers' calls with no network call between them, the more confident counts. Where
the markers did not make the call but flag the event a possible missed CTC (held, not
counted), its flag there reads :data:`SAME_CTC` too: a reviewer relabelling "a possible
missed CTC" beside a counted CTC counted the one CTC twice.

Held as the events tables are written from the journal (:class:`RunHolds`), after the scan's
leak hold (:mod:`ctcnet.inference.scan_leak_hold`): a network call that hold takes from the
count is no count the markers' call repeats, so a touching pair never loses both. A resumed
run and a fresh one hold alike; re-scoring under another rule (``evaluation.decision.rescore``)
reads the repeats afresh (:func:`held_again`), the calls beside a markers' call being the
rule's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ctcnet.inference.alternates import POSSIBLE_CTC
from ctcnet.inference.cluster_parts import SAME_CTC
from ctcnet.inference.scan_leak_hold import (
    ScanLeakHold,
    ctc_cd45_allowance,
    with_guard_and_review,
)

# A markers' CTC call whose centre lies nearer than this to a counted call of the network's is
# that cell again: a CTC is 12-15 um across, so a neighbour centred this near touches it.
SAME_CTC_UM = 14.0


def repeated_ctcs(calls: np.ndarray, standing: np.ndarray, by_markers: np.ndarray,
                  xy_um: np.ndarray, p_ctc: np.ndarray, ctc_classes: Sequence[str],
                  counted: Sequence[str], reach_um: float = SAME_CTC_UM) -> np.ndarray:
    """(N,) bool: the calls of ``ctc_classes`` the markers made (``by_markers``), standing
    (no guard flag), that repeat a counted call: one of ``counted`` the network made itself,
    standing, nearer than ``reach_um`` (``xy_um``: (N, 2) centres in micrometres), or, where
    no such call is near, a markers' call that near which the network gives a CTC more
    (``p_ctc``)."""
    made = standing & by_markers & np.isin(calls, list(ctc_classes))
    if not made.any():
        return made
    out = made & beside_counted(calls, standing, by_markers, xy_um, counted, reach_um, made)
    left = np.flatnonzero(made & ~out)
    left = left[np.argsort(-np.nan_to_num(p_ctc[left], nan=-1.0), kind="stable")]
    near = _near(xy_um[left], xy_um[left], reach_um)  # (a frame's few markers' calls)
    kept: list[int] = []
    for k, row in enumerate(left):
        if near[k, kept].any():
            out[row] = True
        else:
            kept.append(k)
    return out


def beside_counted(calls: np.ndarray, standing: np.ndarray, by_markers: np.ndarray,
                   xy_um: np.ndarray, counted: Sequence[str], reach_um: float = SAME_CTC_UM,
                   asked: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: which of the ``asked`` events (default: all) lie nearer than ``reach_um``
    to a counted call (of ``counted``, standing) the network made itself (not
    ``by_markers``), other than themselves."""
    own = standing & ~by_markers & np.isin(calls, list(counted))
    rows = np.flatnonzero(np.ones(len(calls), bool) if asked is None else asked)
    out = np.zeros(len(calls), bool)
    if not own.any() or not rows.size:
        return out
    # Read between the events asked of and the counted calls only: a dense frame holds
    # thousands of events, of which a few are asked of.
    near = _near(xy_um[rows], xy_um[own], reach_um)
    near &= rows[:, None] != np.flatnonzero(own)[None, :]  # (its own centre is no neighbour)
    out[rows] = near.any(axis=1)
    return out


def _near(a_um: np.ndarray, b_um: np.ndarray, reach_um: float) -> np.ndarray:
    """(len(a), len(b)) bool: the pairs of centres nearer than ``reach_um``."""
    return np.hypot(*(a_um[:, None, :] - b_um[None, :, :]).transpose(2, 0, 1)) < reach_um


def repeat_flags(calls: np.ndarray, guard: np.ndarray, by_markers: np.ndarray,
                 xy_um: np.ndarray, p_ctc: np.ndarray, ctc_classes: Sequence[str],
                 counted: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """A frame's ``guard`` flags (object array; "" or None: none) with its repeated markers'
    calls held (:func:`repeated_ctcs`) and a possible missed CTC beside a counted call of the
    network's said as a repeat, and which were held ((N,) bool); ``guard`` itself where
    neither is found."""
    standing = np.asarray([not isinstance(g, str) or not g for g in guard], bool)
    possible = np.asarray([isinstance(g, str) and POSSIBLE_CTC in g for g in guard], bool)
    held = repeated_ctcs(calls, standing, by_markers, xy_um, p_ctc, ctc_classes, counted)
    # A possible missed CTC (held, not counted) beside a counted call of the network's is that
    # CTC's neighbour as a rule, its crop holding the CTC's CK: said as the same CTC again, as
    # a markers' call there is, not as a CTC missed (relabelled so, the one CTC counted twice).
    again = beside_counted(calls, standing, by_markers, xy_um, counted, asked=possible)
    if not held.any() and not again.any():
        return guard, held
    guard = np.where(held, SAME_CTC, guard)
    guard[again] = [g.replace(POSSIBLE_CTC, SAME_CTC) for g in guard[again]]
    return guard, held


def before_repeats(guard: np.ndarray, by_markers: np.ndarray, calls: np.ndarray,
                   ctc_classes: Sequence[str]) -> np.ndarray:
    """``guard`` as it was before :func:`repeat_flags`: a held markers' call (a call of
    ``ctc_classes`` the markers made) standing again, a possible missed CTC said as one
    (re-scoring reads them again under another rule, whose calls beside them may differ). An
    event whose markers read a CTC but whose call stayed the network's (``wbc``, ``debris``)
    is such a possible CTC: its flag came back empty, and with it the flags joined to it."""
    out = np.asarray(guard, object).copy()
    made = np.asarray(by_markers, bool) & np.isin(np.asarray(calls, object), list(ctc_classes))
    for k in np.flatnonzero([isinstance(g, str) and SAME_CTC in g for g in out]):
        out[k] = "" if made[k] else out[k].replace(SAME_CTC, POSSIBLE_CTC)
    return out


def repeat_classes(taxonomy) -> tuple[list[str], list[str]]:
    """The classes a markers' CTC call may be of (checked as a CTC), and the counted calls it
    may repeat: reported, checked as a CTC or a cluster (a lab's reported class checked as
    neither is counted whatever its markers: no CTC's repeat)."""
    ctc = taxonomy.of_kind("ctc")
    return ctc, [c for c in taxonomy.reported_classes()
                 if c in (*ctc, *taxonomy.of_kind("cluster"))]


def p_ctc_of(column, names, ctc_classes: Sequence[str], n: int) -> np.ndarray:
    """The network's CTC probability (of any class it checks as a CTC) per event, which ranks
    markers' calls (``column(name)``: a table's column as an array; ``names``: its columns)."""
    found = [np.asarray(column(f"p_{c}"), np.float64) for c in ctc_classes if f"p_{c}" in names]
    return np.max(found, axis=0) if found else np.zeros(n)


class CtcRepeatHold:
    """Holds, table by table, the markers' CTC calls that repeat a counted one
    (:func:`repeat_flags`, at ``pixel_size_um``) with :data:`SAME_CTC` and sends them to
    review, counting them in ``held``; a possible missed CTC beside such a counted call (held
    already) has its flag read :data:`SAME_CTC` too."""

    def __init__(self, pixel_size_um: float | None, ctc_classes: Sequence[str],
                 counted: Sequence[str]):
        self.pixel_size_um, self.ctc_classes, self.counted = pixel_size_um, ctc_classes, counted
        self.held = 0

    def __call__(self, table: pa.Table) -> pa.Table:
        """``table`` (a frame's journaled events) with its repeated markers' calls held."""
        if not self.pixel_size_um or "markers_ctc" not in table.column_names or not len(table):
            return table
        by_markers = np.asarray(table.column("markers_ctc").fill_null(False)
                                .to_numpy(zero_copy_only=False), bool)
        guard = np.asarray(table.column("guard").to_pylist(), object)
        if not by_markers.any() and not any(isinstance(g, str) and POSSIBLE_CTC in g
                                            for g in guard):  # (most frames: nothing further)
            return table
        column = lambda name: table.column(name).to_numpy(zero_copy_only=False)  # noqa: E731
        xy_um = np.stack([column("x"), column("y")], 1).astype(np.float64) * \
            float(self.pixel_size_um)
        flags, held = repeat_flags(
            np.asarray(table.column("class").to_pylist(), object), guard, by_markers, xy_um,
            p_ctc_of(column, table.column_names, self.ctc_classes, len(table)),
            self.ctc_classes, self.counted)
        if flags is guard:
            return table
        self.held += int(held.sum())
        return with_guard_and_review(table, flags, np.asarray(
            table.column("review").fill_null(False).to_numpy(zero_copy_only=False), bool) | held)


def held_again(events: pd.DataFrame, taxonomy) -> pd.DataFrame:
    """An events table (of one cartridge or several: ``frame_id`` and ``sample_id`` where
    present group its frames) with :func:`repeat_flags` read afresh per frame, at each event's
    own pixel size (``area_um2`` over ``area_px``), its flags first as they were before them
    (:func:`before_repeats`): re-scoring under another rule, whose calls beside a markers' call
    may differ. The table as it is without positions, sizes or ``markers_ctc``."""
    need = {"x", "y", "area_um2", "area_px", "markers_ctc", "guard", "class"}
    if not need <= set(events.columns) or not len(events):
        return events
    ctc, counted = repeat_classes(taxonomy)
    by_markers = events["markers_ctc"].fillna(False).to_numpy(bool)
    calls = events["class"].to_numpy(object)
    guard = before_repeats(events["guard"].fillna("").astype(str).to_numpy(object), by_markers,
                           calls, ctc)
    with np.errstate(divide="ignore", invalid="ignore"):
        px = np.sqrt(events["area_um2"].to_numpy(np.float64) /
                     events["area_px"].to_numpy(np.float64))
    xy_um = events[["x", "y"]].to_numpy(np.float64) * px[:, None]
    p_ctc = p_ctc_of(lambda name: events[name].to_numpy(), events.columns, ctc, len(events))
    held = np.zeros(len(events), bool)
    keys = [k for k in ("sample_id", "frame_id") if k in events]
    for rows in (events.groupby(keys, sort=False).indices.values() if keys
                 else [np.arange(len(events))]):
        guard[rows], held[rows] = repeat_flags(calls[rows], guard[rows].copy(),
                                               by_markers[rows], xy_um[rows], p_ctc[rows],
                                               ctc, counted)
    out = events.copy()
    out["guard"] = pd.Series(guard, index=events.index, dtype=object)
    return out


class RunHolds:
    """What a run holds of each frame's journaled table as its events tables are written, in
    order: the calls the scan's own CK leak does not clear (:class:`ScanLeakHold`, from the
    leak check ``checked``), then the markers' calls that repeat a counted one
    (:class:`CtcRepeatHold`)."""

    def __init__(self, checked: dict | None, spec, pixel_size_um: float | None):
        ctc, counted = repeat_classes(spec.taxonomy)
        self.leak = ScanLeakHold(ctc_cd45_allowance(checked, spec.panel), ctc)
        self.repeats = CtcRepeatHold(pixel_size_um, ctc, counted)

    def __call__(self, table: pa.Table) -> pa.Table:
        """``table`` (a frame's journaled events) with both holds applied."""
        return self.repeats(self.leak(table))

    def record(self) -> dict:
        """What summary.json's ``leak_check`` says of the leak hold (the repeats held are
        ``guard.by_flag``'s :data:`SAME_CTC`)."""
        return self.leak.record()
