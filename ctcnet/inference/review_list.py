"""What a run's review list holds, by reason, for ``summary.json`` (a cartridge's and a crop
set's): the events the network's doubt brings (a counted call under the review threshold; an
uncounted call within the review band of a counted class, or one that a counted class
outweighs before the prior, :func:`ctcnet.nn.calls.filed_by_prior`), the CTC and cluster
calls the frame border cuts (:func:`ctcnet.inference.tables.cut_counted_of`), those the marker
guard holds (per flag), failed ones; beside them the doubt between uncounted classes alone,
reported and not queued (:func:`ctcnet.nn.calls.uncounted_doubt`, read off the table's call,
confidence and review columns), the network's doubt toward a cluster about ``ctc`` calls the markers
read as one CTC (``markers_vouch``: :meth:`ctcnet.inference.guard.Evidence.markers_vouch`),
not queued either, and the band's stated miss rate where the model's decision rule carries
one (``DecisionRule.review_band``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ctcnet.inference.cluster_parts import HELD_REPEATS
from ctcnet.inference.guard import FLAGS, MARKERS_VOUCH
from ctcnet.inference.tables import cut_counted_of, filed_by_prior_of
from ctcnet.nn.calls import COUNTED_CLASSES, FAILED_CLASS, as_rule

# What the bound assumes of the calibration cells, said beside it.
CELLS_AS_INDEPENDENT = ("The bound takes the calibration cells as independent draws; cells of "
                        "one cartridge share its scanner's look, so misses may cluster by "
                        "cartridge and the bound be optimistic. The fresh family checks it on "
                        "cartridges not used to fit, with its own bound: a fresh family of a "
                        "few hundred cells cannot confirm a level of 1 % on its own.")
# What summary.json keeps of a band's record: the statement and where it was measured.
BAND_KEYS = ("band", "reads", "level", "confidence", "cells", "misses", "miss_share",
             "miss_bound", "shown", "shown_by_band", "fitted_on", "fitted_for", "fresh_family",
             "command")


def network_doubt(events: pd.DataFrame, spec=None, counted: Sequence[str] | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per event of a labelled, guarded table, the network's doubt that put it on the review
    list, of events the guard does not hold and that have a call: (a CTC or cluster call in
    doubt, another call a CTC or cluster is within the band of, a call only the cartridge's
    prior filed as it is, a CTC or cluster likelier before it:
    :func:`ctcnet.inference.tables.filed_by_prior_of`, under
    ``spec``'s rule where the table has no column for it); not a CTC or cluster call the frame
    border cuts, shown for the border (:func:`ctcnet.inference.tables.cut_counted_of`).
    ``counted``: the classes counted (default: ``spec``'s reported classes, else ctc and
    cluster). The review list counts them
    (:func:`review_list_summary`) and the review page and gallery name them
    (:func:`ctcnet.report.reasons.event_reasons`)."""
    counted = counted_classes(spec) if counted is None else counted
    n = len(events)
    review = events["review"].to_numpy(bool) if n else np.zeros(0, bool)
    calls = events["class"].astype(object).to_numpy() if n else np.zeros(0, object)
    held = (events["guard"].fillna("").astype(str) != "").to_numpy() if "guard" in events \
        else np.zeros(n, bool)
    # A CTC or cluster call filed away because the border cuts it is shown for the border
    # (a CTC or cluster the likeliest before the prior is shown for both).
    model_counted = np.isin(events["model_class"].astype(object).to_numpy(), counted) \
        if "model_class" in events and n else np.zeros(n, bool)
    network = review & ~held & (calls != FAILED_CLASS) & \
        ~(cut_counted_of(events, counted) & model_counted)
    counted_call = np.isin(calls, counted)
    by_prior = filed_by_prior_of(events, spec)  # of any call, a CTC where it was a cluster too
    return (network & counted_call & ~by_prior, network & ~counted_call & ~by_prior,
            network & by_prior)


def counted_classes(spec=None) -> list[str]:
    """The classes whose counts the review list is about: ``spec``'s reported classes
    (``ctc`` and ``cluster``, or a lab's own), or those two without a spec."""
    return spec.taxonomy.reported_classes() if spec is not None else list(COUNTED_CLASSES)


def review_list_summary(events: pd.DataFrame, spec) -> dict:
    """Counts of a labelled, guarded event table's review list by reason (an event may have
    several), the uncounted doubt left off it, and the band's statement (None without one),
    under ``spec``'s decision rule (the run's prior)."""
    rule = as_rule(spec.decision)
    n = len(events)
    review = events["review"].to_numpy(bool) if n else np.zeros(0, bool)
    calls = events["class"].astype(object).to_numpy() if n else np.zeros(0, object)
    guard = events["guard"].fillna("").astype(str) if "guard" in events else \
        pd.Series([""] * n, dtype=object)
    failed = calls == FAILED_CLASS
    counted = counted_classes(spec)
    counted_call = np.isin(calls, counted)
    call_doubt, in_band, likeliest = network_doubt(events, spec, counted)
    # With a band, another call that a counted class outweighs before the cartridge's prior
    # is shown whatever the band reads (ctcnet.nn.calls.filed_by_prior): said apart above,
    # and read again for the doubt the markers settle below (a column, where the run wrote it).
    by_prior = filed_by_prior_of(events, spec)
    # Under the threshold yet not queued: only uncounted classes were in doubt (the calls'
    # own rule, ctcnet.nn.calls.uncounted_doubt, read off the table's columns).
    confidence = events["confidence"].to_numpy(np.float64) if n else np.zeros(0)
    doubted = np.nan_to_num(confidence, nan=1.0) < spec.review_threshold
    left_off = ~review & ~failed & ~counted_call & doubted
    # A ctc call whose doubt toward a cluster the markers settle: that doubt (under the
    # threshold, or filed by the prior) is not queued either.
    vouched = events[MARKERS_VOUCH].to_numpy(bool) if MARKERS_VOUCH in events and n else \
        np.zeros(n, bool)
    band = rule.review_band
    record = rule.review_band_record or {}
    return {
        "events": int(review.sum()),
        "share": round(float(review.mean()), 5) if n else None,  # of no event: no share
        "by_reason": {
            "counted_call_doubt": int(call_doubt.sum()),
            "counted_class_in_band": int(in_band.sum()),
            "counted_class_likeliest": int(likeliest.sum()),
            "counted_class_cut_by_border": int(cut_counted_of(events, counted).sum()),
            **{f"guard:{f}": int(guard.str.contains(f, regex=False).sum())
               for f in (*FLAGS, *HELD_REPEATS)},
            "failed": int(failed.sum())},
        "uncounted_doubt_not_queued": int(left_off.sum()),
        "counted_on_markers_doubt_not_queued": int((vouched & ~review & (doubted | by_prior))
                                                   .sum()),
        "review_band": ({**{k: record[k] for k in BAND_KEYS if k in record},
                         "bound_assumes": CELLS_AS_INDEPENDENT} if band is not None else None),
    }
