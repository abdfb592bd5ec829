"""Which reading of a split object a run keeps: the whole, or the members detection offered
beside it (:mod:`ctcnet.detect.members`), decided by their calls.

A merged object holding a member whose own markers read as a CTC's is classified both ways.
The whole stays unless reading it so would lose a counted cell: when the whole is called
neither ``ctc`` nor ``cluster`` (or is, but the marker guard holds that call) and one of its
members is called one of them, or is held by the marker guard as a possible CTC, the members
replace it. So a CTC-neutrophil cluster the network calls ``cluster`` stays one event, and a
CTC beside a debris blob or a leukocyte is no longer lost inside an event called ``debris``
or ``wbc``, nor inside a ``ctc`` call held for the leukocyte's CD45 (``cd45_positive``): over
20 dense simulated cartridges (``scripts/merged_ctcs.py``) that held whole was one of the 14
CTCs lost to a neighbour's event. A whole nobody would see (no counted call, no guard flag,
not in the review band) gives way to its members as well, whatever they are called: no count
and nothing shown changes, and the member whose markers made detection offer it keeps its own
row and crop rather than lying inside a neighbour's box (on those cartridges, 12 -> 7 CTCs
lost so, the calls, counts and review list as they were but for 5 members in review).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ctcnet.detect.members import GROUP, PART
from ctcnet.nn.calls import COUNTED_CLASSES

# The guard's flag for an event whose markers make a CTC the call did not (a person decides).
POSSIBLE_CTC = "possible_ctc"
ALTERNATE_COLUMNS = [GROUP, PART]


def alternates_kept(events: pd.DataFrame, counted: Sequence[str] = COUNTED_CLASSES
                    ) -> np.ndarray:
    """(N,) bool: the rows a labelled, guarded frame table keeps (every row of a table without
    alternates; per split object its whole or its members, as a call of a ``counted`` class,
    the model's reported ones, stands on either, and its members where nobody would see the
    whole)."""
    if GROUP not in events or not len(events):
        return np.ones(len(events), bool)
    group = events[GROUP].to_numpy(np.int64)
    part = events[PART].to_numpy(bool)
    counted = np.isin(events["class"].to_numpy(object), list(counted))
    shown = counted.copy()
    guard = events["guard"].fillna("").astype(str) if "guard" in events else None
    if guard is not None:
        shown |= guard.str.contains(POSSIBLE_CTC, regex=False).to_numpy()
    if "markers_ctc" in events:
        shown |= events["markers_ctc"].to_numpy(bool)
    # A whole counts as read only where its counted call stands unflagged: a CTC beside a
    # leukocyte, read whole, is a ctc call held for the leukocyte's CD45 (cd45_positive).
    stands = counted & ((guard == "").to_numpy() if guard is not None else True)
    seen = shown | (events["review"].to_numpy(bool) if "review" in events else False)
    if guard is not None:
        seen |= (guard != "").to_numpy()
    keep = group < 0
    for g in np.unique(group[group >= 0]):  # a few split objects a frame
        rows = group == g
        members, whole = rows & part, rows & ~part
        # A whole nobody would see (no counted call, no flag, not in review) gives way to its
        # members too: the member its markers made one stays an event of its own, where the
        # whole kept it inside a neighbour's box.
        use_members = not stands[whole].any() and (shown[members].any() or not seen[whole].any())
        keep |= members if use_members else whole
    return keep


def resolve_alternates(events: pd.DataFrame, counted: Sequence[str] = COUNTED_CLASSES
                       ) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The frame's table with one reading of each split object (:func:`alternates_kept`) and
    without the alternates' columns, and for each of its rows the row of that event's crop
    among the frame's crops (None where each event keeps its own row). The crops are not
    gathered here: the journal keeps a few of them (the review gallery's), and a copy of a
    frame's crops (tens of MB, 3.5-8 ms) cost a twentieth to a tenth of the frame's
    classification on two cores."""
    if GROUP not in events:
        return events, None
    keep = alternates_kept(events, counted)
    events = events[keep].drop(columns=ALTERNATE_COLUMNS).reset_index(drop=True)
    # The members follow the wholes (detect.members.attach_parts): where every whole stays,
    # the rows kept are the first ones.
    kept = int(keep.sum())
    return events, (None if keep[:kept].all() else np.flatnonzero(keep))
