"""A CD45+ cell is not counted as a CTC under a leak allowance its scan does not need (numpy
and Arrow).

The guard reads a CTC call's CD45 once other dyes' leaks are taken off, each up to an
allowance that covers any filter set (``GuardRules.max_leak``). A scan's own CK leak into
CD45, measured at the end of the run on its CK-bright events (``spillover.leak_check``), is
most often far less; under the full allowance a CK-bright cell with a leukocyte's CD45 reads
CD45-negative. So each counted ``ctc`` call carries the least CK leak its CD45 needs to be no
marker (``cd45_leak_needed``, :func:`with_leak_needed`, in the frame's finishing), and once
the scan's leak is known the calls that need more than it allows
(:func:`ctc_cd45_allowance`) are held with the guard's ``cd45_positive`` flag
(:class:`ScanLeakHold`, as the events tables are written from the journal): shown to a
person, not counted.

Measured (scripts/cartridge_counts.py's 20 cartridges, 10 frames each, true CK leaks into
CD45 0.2-10 %): every counted CTC call needs at most 0.88x its scan's measured leak (183
read), so none is held and no count changes (two scans leaking 0.2 and 0.7 % read no leak:
nothing is held there). CK+CD45+ cells painted into a simulated scan whose
CK leaks 5.7 % into CD45 (measured 5.55 %; the painted cells carry the scan's spillover), CK
1-5x a CTC's and CD45 0.25-1x a leukocyte's: the guard counted 13 of them as CTCs; 9 need
0.077-0.114 (1.4-2.1x the leak) and are held, 4 (CK 5x a CTC's, CD45 a quarter to half a
leukocyte's) need 0.051-0.069, within what such a leak can carry, and stay counted. Where a scan
leaks 1-2 %, as most do, the allowance is 2 %.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from ctcnet.core.columns import with_columns
from ctcnet.detect.members import GROUP, PART
from ctcnet.inference.guard.calls import counted as guard_counted
from ctcnet.inference.guard.leak_needed import cd45_leak_needed
from ctcnet.inference.guard.rules import RULES, GuardRules

LEAK_NEEDED = "cd45_leak_needed"
HELD_FLAG = "cd45_positive"


def with_leak_needed(events: pd.DataFrame, guard_start, ctc_classes: Sequence[str]
                     ) -> pd.DataFrame:
    """A guarded frame table, one row per crop (before a split object's reading is chosen),
    with :data:`LEAK_NEEDED` (:func:`cd45_leak_needed`) on its counted calls of
    ``ctc_classes`` (those the guard checks as a CTC; no ``guard`` flag), NaN elsewhere.
    ``guard_start``: what the guard's measurements of the frame's crops started from (None:
    no guard, nothing read). Not on a split object's whole whose members were offered
    (:mod:`ctcnet.inference.alternates`): that reading is chosen by the frame's calls, and a
    whole held afterwards would take its members' CTC with it (a CTC touching a leukocyte,
    read whole, needs the leukocyte's CD45)."""
    need = np.full(len(events), np.nan, np.float32)
    if guard_start is not None and len(events):
        counted = np.isin(events["class"].to_numpy(object), list(ctc_classes)) \
            & guard_counted(events)
        if GROUP in events:
            counted &= (events[GROUP].to_numpy(np.int64) < 0) | events[PART].to_numpy(bool)
        rows = np.flatnonzero(counted)
        if rows.size:
            need[rows] = cd45_leak_needed(guard_start, rows)
    return with_columns(events, {LEAK_NEEDED: need})


def ctc_cd45_allowance(checked: dict | None, panel, rules: GuardRules = RULES
                       ) -> float | None:
    """The CK leak into CD45 a counted CTC may need, from the scan's leak check
    (``spillover.leak_check``: CK's leaks and the CK-bright events they were read on): the
    measured leak times ``rules.scan_leak_margin``, at least ``rules.scan_leak_floor``, at most
    the guard's allowance. None (the guard's allowance stands) where no leak was measured: too
    few CK-bright events (``rules.scan_leak_min_events``), or no common floor among them (a
    leak of 0), or a ``panel`` (the model's) without CK or CD45."""
    checked, cd45 = checked or {}, panel.index_of_role("leukocyte")
    if cd45 is None:
        return None
    leak = (checked.get("leaks") or {}).get(panel.names[cd45])
    cap = (checked.get("allowance") or {}).get(panel.names[cd45])
    if not leak or cap is None or checked.get("measured_on", 0) < rules.scan_leak_min_events:
        return None
    return float(min(cap, max(rules.scan_leak_floor, rules.scan_leak_margin * leak)))


def with_guard_and_review(table: pa.Table, guard: np.ndarray, review: np.ndarray) -> pa.Table:
    """A frame's journaled ``table`` with its ``guard`` flags and ``review`` column replaced,
    each of the type the journal wrote (one schema for every frame's table; a guard column of
    nulls alone written as strings)."""
    kind = table.schema.field("guard").type
    table = table.set_column(table.schema.get_field_index("guard"), "guard", pa.array(
        guard.tolist(), pa.string() if pa.types.is_null(kind) else kind))
    return table.set_column(table.schema.get_field_index("review"), "review",
                            pa.array(review, pa.bool_()))


class ScanLeakHold:
    """Holds, table by table, the counted calls of ``ctc_classes`` whose CD45 needs more CK
    leak than ``allowance`` (None: none held) with :data:`HELD_FLAG` and sends them to
    review; counts them in ``held``."""

    def __init__(self, allowance: float | None, ctc_classes: Sequence[str] = ("ctc",)):
        self.allowance, self.ctc_classes = allowance, list(ctc_classes)
        self.held = 0

    def __call__(self, table: pa.Table) -> pa.Table:
        """``table`` (a frame's journaled events) with its calls over the allowance held."""
        if self.allowance is None or LEAK_NEEDED not in table.column_names or not len(table):
            return table
        need = table.column(LEAK_NEEDED).to_numpy(zero_copy_only=False)
        guard = np.asarray(table.column("guard").to_pylist(), object)
        calls = np.asarray(table.column("class").to_pylist(), object)
        with np.errstate(invalid="ignore"):
            held = np.isin(calls, self.ctc_classes) & ((guard == "") | pd.isna(guard)) & \
                (need > np.float32(self.allowance))
        if not held.any():
            return table
        self.held += int(held.sum())
        return with_guard_and_review(table, np.where(held, HELD_FLAG, guard),
                                     table.column("review").to_numpy(zero_copy_only=False) | held)

    def record(self) -> dict:
        """What summary.json's ``leak_check`` says of the hold."""
        return {"ctc_cd45_allowance": None if self.allowance is None
                else round(self.allowance, 4), "ctc_held_over_leak": self.held}
