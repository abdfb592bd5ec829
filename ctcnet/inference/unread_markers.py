"""A scan's markers the model does not read, summarised over the sample's own cells.

The events table gives each event's mean over its object in every plane of the scan, those the
model does not read too (``mean_<name>``, :mod:`ctcnet.io.unread_planes`): a therapy marker
(HER2, PD-L1) imaged beside the panel. Its level on a CTC means little alone: the plane's
background, exposure and bleed differ by scanner and by sample. The sample's leukocytes are
its own negative control (they carry no epithelial therapy marker): their median and spread
in the plane give the level a CTC's mean stands out from.

A CTC's CK leaks into the plane as into any other, and the leukocytes, which have no CK, cannot
show it: a mean over a cell's object varies little (a simulated sample's leukocytes 1.2 counts
sd), so a leak of well under 1 % of a bright CK crossed a line set by them alone, and a
HER2-negative sample read 11 of 27 CTCs above. A CTC is therefore above where its excess over
the leukocytes' median passes their 3 sd plus the share of its own CK excess (over the
leukocytes' CK) that the marker guard allows a CK leak into CD45 (``GuardRules.max_leak``):
what a leak can carry is not read as the marker. The sample's CK leak into the plane (the
lower quartile over its counted CTCs of excess over CK excess: a leak, were three in four of
them to carry the marker) is stated beside it; past the allowance, the figure cannot tell
the marker from CK's leak, and that is said.

:func:`unread_marker_summary` states that reference and which of the counted CTCs lie above
it (``summary.json``'s ``unread_markers``); the events table keeps every mean, for a lab's
own threshold.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ctcnet.core.robust import median_and_mad_sigma
from ctcnet.inference.guard import RULES, counted

log = logging.getLogger(__name__)

# A CTC is above the leukocytes where its mean exceeds their median by this many robust sd
# (1.4826 median absolute deviations): at 3, about 1 in 700 leukocytes would be.
ABOVE_LEUKOCYTE_SD = 3.0
# Leukocytes needed for the reference: fewer give a spread too uncertain to judge by.
MIN_LEUKOCYTES = 20
# Counted CTCs needed to state the sample's CK leak into a plane (a quartile of fewer is noise).
MIN_CTCS_FOR_LEAK = 5


def unread_marker_summary(events: pd.DataFrame, names: list[str], ctc_classes: list[str],
                          leukocyte_classes: list[str], ck_name: str | None = None,
                          leak_allowance: float = RULES.max_leak, sample_id: str = ""
                          ) -> dict | None:
    """Per plane of ``names`` (not read by the model, measured in ``events`` as
    ``mean_<name>``): the leukocytes' reference (calls of ``leukocyte_classes`` the guard did
    not hold), the sample's CK leak into it and the counted CTCs (calls of ``ctc_classes``
    the guard did not hold) above it, with their event ids; None where there are no such
    planes. ``ck_name``: the scan's CK plane (``mean_<ck_name>``; None: no CK, no leak
    allowed for); ``leak_allowance``: the share of a CTC's CK excess not read as the marker
    (see the module). A leak past it is marked (``ck_leak_past_allowance``: the figure
    cannot tell the marker from it) and, where ``sample_id`` names the sample (predict's
    run, not a review's reading again), warned of."""
    names = [n for n in names if f"mean_{n}" in events]
    if not names:
        return None
    calls = events["class"].astype(str) if len(events) else pd.Series([], dtype=str)
    kept = counted(events)
    ctcs = calls.isin(ctc_classes).to_numpy() & kept
    # The leukocyte calls the guard did not hold: a held one may be a possible missed CTC.
    leukocytes = calls.isin(leukocyte_classes).to_numpy() & kept
    ck = events[f"mean_{ck_name}"].to_numpy(np.float64) if ck_name and \
        f"mean_{ck_name}" in events else None
    out = {}
    for name in names:
        values = events[f"mean_{name}"].to_numpy(np.float64)
        reference = values[leukocytes & np.isfinite(values)]
        record = {"leukocytes": int(len(reference)), "counted_ctcs": int(ctcs.sum()),
                  # CTCs of frames that lack the plane's file: never read as above it.
                  "counted_ctcs_unmeasured": int((~np.isfinite(values[ctcs])).sum()),
                  "leukocyte_median": None, "leukocyte_sd": None, "above_level": None,
                  "ck_leak": None, "ck_leak_past_allowance": None, "counted_ctcs_above": None,
                  "above_event_ids": None}
        if len(reference) >= MIN_LEUKOCYTES:
            centre, spread = (float(v) for v in median_and_mad_sigma(reference))
            level = centre + ABOVE_LEUKOCYTE_SD * spread
            excess = values[ctcs] - centre
            line = np.full(len(excess), level - centre)
            if ck is not None:
                # The CTCs' CK over the leukocytes': what a leak of it can carry is allowed.
                ck_excess = np.clip(ck[ctcs] - float(np.nanmedian(ck[leukocytes])), 0, None)
                line = line + leak_allowance * ck_excess
                record["ck_leak"] = _ck_leak(excess, ck_excess)
                past = record["ck_leak"] is not None and record["ck_leak"] > leak_allowance
                record["ck_leak_past_allowance"] = past
                if past and sample_id:
                    log.warning("%s: CK leaks %.1f%% into %s on the counted CTCs, past the "
                                "%.0f%% allowed for: its CTCs above the leukocytes cannot be "
                                "told from CK's leak (or nearly every CTC carries it)",
                                sample_id, 100 * record["ck_leak"], name, 100 * leak_allowance)
            above = excess > line
            record.update(leukocyte_median=round(centre, 2), leukocyte_sd=round(spread, 2),
                          above_level=round(level, 2), counted_ctcs_above=int(above.sum()),
                          above_event_ids=[int(i) for i in
                                           events["event_id"].to_numpy()[ctcs][above]])
        out[name] = record
    allowed = (f" and {leak_allowance:.0%} of its CK over the leukocytes' (what a leak of CK "
               "can carry: the marker guard's allowance for CD45)") if ck is not None else ""
    return {"planes": out,
            "rule": f"a counted CTC's mean over its object in the plane above the sample's "
                    f"leukocytes' median + {ABOVE_LEUKOCYTE_SD:g} robust sd (1.4826 median "
                    f"absolute deviations){allowed}, with {MIN_LEUKOCYTES} leukocytes at "
                    f"least; every event's mean is in the events table (mean_<plane>)",
            "leak_allowance": leak_allowance if ck is not None else None,
            # What the figure read, so a review can read it again (after_review).
            "ctc_classes": list(ctc_classes), "leukocyte_classes": list(leukocyte_classes),
            "ck_plane": ck_name if ck is not None else None,
            # The leukocytes' CK, from which a CTC's CK excess is taken: with above_level
            # and leak_allowance, any event's own line (line_of).
            "ck_leukocyte_median": round(float(np.nanmedian(ck[leukocytes])), 2)
            if ck is not None and leukocytes.any() else None}


def line_of(unread: dict, plane: str, ck_mean: float | None) -> float | None:
    """The level an event's mean in ``plane`` must pass to be above the leukocytes: the
    plane's ``above_level`` plus the allowed share of the event's CK excess over the
    leukocytes' (None where the plane has no level)."""
    level = ((unread.get("planes") or {}).get(plane) or {}).get("above_level")
    if level is None:
        return None
    ck_median, share = unread.get("ck_leukocyte_median"), unread.get("leak_allowance")
    if ck_median is None or share is None or ck_mean is None or not np.isfinite(ck_mean):
        return float(level)
    return round(float(level) + share * max(float(ck_mean) - ck_median, 0.0), 2)


def _ck_leak(excess: np.ndarray, ck_excess: np.ndarray) -> float | None:
    """The lower quartile of the counted CTCs' excess in the plane over their CK excess:
    CK's leak into it where a quarter of them carry no marker (a sample whose CTCs nearly all
    carry it reads high); None under :data:`MIN_CTCS_FOR_LEAK` CTCs with CK."""
    bright = (ck_excess > 0) & np.isfinite(excess)  # (not where a frame lacks the plane)
    if bright.sum() < MIN_CTCS_FOR_LEAK:
        return None
    return round(float(np.percentile(excess[bright] / ck_excess[bright], 25)), 4)


def after_review(unread: dict | None, events: pd.DataFrame, final: np.ndarray,
                 kept: np.ndarray) -> dict | None:
    """``unread`` (summary.json's ``unread_markers``) with ``after_review``: per plane the
    CTCs counted after review (``final``: each event's class then, ``kept``: whether it is
    counted then) and those above, read by the same rule over the events as reviewed. The
    figure was the automatic count's alone: 19 of 27 HER2+ beside a signed-off 26 CTCs.
    None where there is no such plane."""
    if not unread or not unread.get("planes"):
        return unread
    reviewed = events.assign(**{"class": final, "guard": np.where(kept, "", "held")})
    figures = unread_marker_summary(
        reviewed, list(unread["planes"]), unread.get("ctc_classes") or ["ctc"],
        unread.get("leukocyte_classes") or ["wbc"], ck_name=unread.get("ck_plane"),
        leak_allowance=unread.get("leak_allowance") or RULES.max_leak) or {"planes": {}}
    return {**unread, "after_review": {
        name: {key: record.get(key) for key in ("counted_ctcs", "counted_ctcs_above",
                                                "counted_ctcs_unmeasured", "above_event_ids")}
        for name, record in figures["planes"].items()}}
