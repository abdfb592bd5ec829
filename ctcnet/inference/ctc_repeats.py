"""One CTC, one count: the markers' own ``ctc`` call on an event beside a counted CTC of the
network's is that CTC's markers read again (pure numpy and pandas).

The markers make a CTC of a ``wbc`` or ``debris`` call whose crop holds a CTC's markers
(``guard.markers_overrule``). They read the CK area connected to the crop's core, and an event
centred on a lymphocyte or a tdEV that touches a CTC holds the CTC's CK there, with its
nucleus: the one CTC was counted twice. On a simulated scan with lymphocytes painted 1.5-3 um
from CTCs (24 pairs), 3 were counted as a second CTC, their events 12-13 um from the CTC's;
over 10 dense simulated cartridges (``scripts/merged_ctcs.py``) the one markers' call that
close to a counted CTC (9 um) was a tdEV beside it. Two CTCs touching sit a cell's width apart
(12 um and more), and the network calls them both as a rule.

:func:`hold_ctc_repeats` gives such a call back to the network (its own class) and shows it as
a possible CTC (``possible_ctc``): a reviewer who finds a second CTC there confirms it, and it
counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ctcnet.inference.alternates import POSSIBLE_CTC
from ctcnet.inference.scan_leak_hold import LEAK_NEEDED

# A markers' call whose centre is nearer than this to a counted CTC of the network's own reads
# that CTC again.
SAME_CTC_UM = 14.0


def hold_ctc_repeats(events: pd.DataFrame, pixel_size_um: float | None,
                     ctc_classes: Sequence[str] = ("ctc",),
                     reach_um: float = SAME_CTC_UM) -> pd.DataFrame:
    """A labelled, guarded frame table (``class``, ``model_class``, ``markers_ctc``,
    ``guard``, ``review``, ``x``, ``y``) with the counted calls of ``ctc_classes`` that the
    markers made (the network called another class) nearer than ``reach_um`` to a counted
    call of the network's own given back to the network's class, ``possible_ctc`` and shown;
    the table as it is without a pixel size or such calls."""
    needed = {"model_class", "markers_ctc", "guard", "review", "x", "y"}
    if not pixel_size_um or not needed <= set(events.columns) or not len(events):
        return events
    calls = events["class"].to_numpy(object).copy()
    model = events["model_class"].to_numpy(object)
    guard = events["guard"].fillna("").astype(str).to_numpy(object)
    counted = np.isin(calls, list(ctc_classes)) & (guard == "")
    by_network = counted & np.isin(model, list(ctc_classes))
    by_markers = counted & events["markers_ctc"].to_numpy(bool) & ~by_network
    if not by_network.any() or not by_markers.any():
        return events
    xy = events[["x", "y"]].to_numpy(np.float64) * float(pixel_size_um)
    own = xy[by_network]
    rows = [row for row in np.flatnonzero(by_markers)
            if np.hypot(*(own - xy[row]).T).min() < reach_um]
    if not rows:
        return events
    events = events.copy()
    calls[rows], guard[rows] = model[rows], POSSIBLE_CTC
    events["class"] = pd.Series(calls, index=events.index, dtype=object)
    events["guard"] = pd.Series(guard, index=events.index, dtype=object)
    for column, value in (("review", True), ("markers_ctc", False)):
        values = events[column].to_numpy(bool).copy()
        values[rows] = value
        events[column] = values
    if LEAK_NEEDED in events:  # (read on counted CTC calls only)
        need = events[LEAK_NEEDED].to_numpy(np.float32).copy()
        need[rows] = np.nan
        events[LEAK_NEEDED] = need
    return events
