"""A scan's markers the model does not read, summarised over the sample's own cells.

The events table gives each event's mean over its object in every plane of the scan, those the
model does not read too (``mean_<name>``, :mod:`ctcnet.io.unread_planes`): a therapy marker
(HER2, PD-L1) imaged beside the panel. Its level on a CTC means little alone: the plane's
background, exposure and bleed differ by scanner and by sample. The sample's leukocytes are
its own negative control (they carry no epithelial therapy marker): their median and spread
in the plane give the level a CTC's mean stands out from. :func:`unread_marker_summary`
states that reference and how many of the counted CTCs lie above it (``summary.json``'s
``unread_markers``); the events table keeps every mean, for a lab's own threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.core.robust import median_and_mad_sigma
from ctcnet.inference.guard import counted

# A CTC is above the leukocytes where its mean exceeds their median by this many robust sd
# (1.4826 median absolute deviations): at 3, about 1 in 700 leukocytes would be.
ABOVE_LEUKOCYTE_SD = 3.0
# Leukocytes needed for the reference: fewer give a spread too uncertain to judge by.
MIN_LEUKOCYTES = 20


def unread_marker_summary(events: pd.DataFrame, names: list[str], ctc_classes: list[str],
                          leukocyte_classes: list[str]) -> dict | None:
    """Per plane of ``names`` (not read by the model, measured in ``events`` as
    ``mean_<name>``): the leukocytes' reference (calls of ``leukocyte_classes`` the guard did
    not hold) and the counted CTCs (calls of ``ctc_classes`` the guard did not hold) above it;
    None where there are no such planes."""
    names = [n for n in names if f"mean_{n}" in events]
    if not names:
        return None
    calls = events["class"].astype(str) if len(events) else pd.Series([], dtype=str)
    kept = counted(events)
    ctcs = calls.isin(ctc_classes).to_numpy() & kept
    # The leukocyte calls the guard did not hold: a held one may be a possible missed CTC.
    leukocytes = calls.isin(leukocyte_classes).to_numpy() & kept
    out = {}
    for name in names:
        values = events[f"mean_{name}"].to_numpy(np.float64)
        reference = values[leukocytes & np.isfinite(values)]
        record = {"leukocytes": int(len(reference)), "counted_ctcs": int(ctcs.sum()),
                  "leukocyte_median": None, "leukocyte_sd": None, "above_level": None,
                  "counted_ctcs_above": None}
        if len(reference) >= MIN_LEUKOCYTES:
            centre, spread = (float(v) for v in median_and_mad_sigma(reference))
            level = centre + ABOVE_LEUKOCYTE_SD * spread
            record.update(leukocyte_median=round(centre, 2), leukocyte_sd=round(spread, 2),
                          above_level=round(level, 2),
                          counted_ctcs_above=int((values[ctcs] > level).sum()))
        out[name] = record
    return {"planes": out,
            "rule": f"a counted CTC's mean over its object in the plane above the sample's "
                    f"leukocytes' median + {ABOVE_LEUKOCYTE_SD:g} robust sd (1.4826 median "
                    f"absolute deviations), with {MIN_LEUKOCYTES} leukocytes at least; "
                    f"every event's mean is in the events table (mean_<plane>)"}
