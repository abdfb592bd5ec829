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
run and a fresh one hold alike; re-scoring under another rule keeps the flag where the
network's call is unchanged (``evaluation.decision.rescore``), as for the guard's flags.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from ctcnet.inference.alternates import POSSIBLE_CTC
from ctcnet.inference.cluster_parts import SAME_CTC
from ctcnet.inference.scan_leak_hold import ScanLeakHold, ctc_cd45_allowance

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


class CtcRepeatHold:
    """Holds, table by table, the markers' CTC calls that repeat a counted one
    (:func:`repeated_ctcs`, at ``pixel_size_um``) with :data:`SAME_CTC` and sends them to
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
        possible = np.asarray([POSSIBLE_CTC in (g or "") for g in guard], bool)
        if not by_markers.any() and not possible.any():  # (most frames: nothing further)
            return table
        standing = np.asarray([not g for g in guard], bool)  # "" or None: no flag
        xy = np.stack([table.column(c).to_numpy(zero_copy_only=False) for c in ("x", "y")], 1)
        # The network's CTC probability (of any class it checks as a CTC) ranks markers' calls.
        p_ctc = np.max([np.asarray(table.column(f"p_{c}").to_numpy(zero_copy_only=False),
                                   np.float64) for c in self.ctc_classes
                        if f"p_{c}" in table.column_names] or [np.zeros(len(table))], axis=0)
        calls = np.asarray(table.column("class").to_pylist(), object)
        xy_um = xy.astype(np.float64) * float(self.pixel_size_um)
        held = repeated_ctcs(calls, standing, by_markers, xy_um, p_ctc, self.ctc_classes,
                             self.counted)
        # A possible missed CTC (held, not counted) beside a counted call of the network's is
        # that CTC's neighbour as a rule, its crop holding the CTC's CK: said as the same CTC
        # again, as a markers' call there is, not as a CTC missed (relabelled so, the one CTC
        # counted twice).
        again = beside_counted(calls, standing, by_markers, xy_um, self.counted,
                               asked=possible)
        if not held.any() and not again.any():
            return table
        self.held += int(held.sum())
        guard = np.where(held, SAME_CTC, guard)
        guard[again] = [g.replace(POSSIBLE_CTC, SAME_CTC) for g in guard[again]]
        review = table.column("review").to_numpy(zero_copy_only=False) | held
        table = table.set_column(table.schema.get_field_index("guard"), "guard",
                                 pa.array(guard.tolist(), table.schema.field("guard").type))
        return table.set_column(table.schema.get_field_index("review"), "review",
                                pa.array(review, pa.bool_()))


class RunHolds:
    """What a run holds of each frame's journaled table as its events tables are written, in
    order: the calls the scan's own CK leak does not clear (:class:`ScanLeakHold`, from the
    leak check ``checked``), then the markers' calls that repeat a counted one
    (:class:`CtcRepeatHold`)."""

    def __init__(self, checked: dict | None, spec, pixel_size_um: float | None):
        ctc, taxonomy = spec.taxonomy.of_kind("ctc"), spec.taxonomy
        self.leak = ScanLeakHold(ctc_cd45_allowance(checked, spec.panel), ctc)
        # A counted call a markers' CTC repeats: one checked as a CTC or a cluster (a lab's
        # reported class checked as neither is counted whatever its markers: no CTC's repeat).
        counted = [c for c in taxonomy.reported_classes()
                   if c in (*ctc, *taxonomy.of_kind("cluster"))]
        self.repeats = CtcRepeatHold(pixel_size_um, ctc, counted)

    def __call__(self, table: pa.Table) -> pa.Table:
        """``table`` (a frame's journaled events) with both holds applied."""
        return self.repeats(self.leak(table))

    def record(self) -> dict:
        """What summary.json's ``leak_check`` says of the leak hold (the repeats held are
        ``guard.by_flag``'s :data:`SAME_CTC`)."""
        return self.leak.record()
