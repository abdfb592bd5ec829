"""A method comparison of a run's counts: ctcnet's CTCs per 7.5 mL against another method's on
the same tubes, as a lab validates a new assay against the one it runs (CellSearch's counts,
a manual count), pure numpy and pandas on predict's outputs (``ctcnet evaluate RESULTS
--expected FILE`` with a ``reference_per_7_5_ml`` column writes it).

The reference is taken as it is stated, per 7.5 mL: no volume of ours rescales it (a spike-in
states cells in the tube instead, :mod:`ctcnet.evaluation.spike_in`). ctcnet's rate is
predict's (``per_7_5_ml``, of the blood read: a partial sample's rate is its frames'
estimate, and the sample is named as partial), and after review the reviewer's, where every
sample's review is final. Of each reading:

* the difference (ctcnet - reference) per sample, and over the samples its mean (the bias)
  with the 95 % limits of agreement (Bland-Altman);
* the share within the counting tolerance, max(1, 15 % of the reference);
* at each clinical cut-off (CTCs per 7.5 mL, >= the cut-off is positive): the overall,
  positive and negative percent agreement (CLSI EP12) with their Wilson 95 % intervals, and
  the samples the two methods put on opposite sides, each with both rates.

Clusters are not in the CTC rate (CellSearch counts a cluster's cells one by one; predict
reports clusters apart): a reference that counts them so reads higher where clusters are.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ctcnet.evaluation.counts import (
    ABS_TOLERANCE,
    CUTOFFS,
    REL_TOLERANCE,
    bland_altman,
    cutoff_agreement,
    share_interval,
    within_tolerance,
)
from ctcnet.evaluation.spike_in import report_header


def comparison_report(rows: pd.DataFrame, cutoffs: Sequence[float] = CUTOFFS,
                      positive: str = "ctc") -> dict:
    """The agreement of ctcnet's rates with the reference's (see the module), of the
    automatic counts and, where every sample's review is final, of the counts after review
    (``after_review``). ``rows``: :func:`ctcnet.evaluation.spike_in.sample_rows` of a
    reference (``expected_per_7_5_ml`` the reference's rate). A sample without a called rate
    (a run that failed) is named and left out of every figure."""
    header, rated = report_header(rows, positive)
    complete = rated["review_complete"].astype(bool)
    return {**header, "cutoffs": [float(c) for c in cutoffs],
            "tolerance": f"max({ABS_TOLERANCE:g}, {REL_TOLERANCE:.0%} of the reference)",
            **_agreement(rated, "called", cutoffs),
            "after_review": (_agreement(rated, "after_review", cutoffs)
                             if len(rated) and complete.all() else None)}


def _agreement(rows: pd.DataFrame, mode: str, cutoffs: Sequence[float]) -> dict:
    """Bias and limits, tolerance and cut-off agreement of one reading (``called`` or
    ``after_review``: the column ``<mode>_per_7_5_ml``) against the reference."""
    called = rows[f"{mode}_per_7_5_ml"].to_numpy(np.float64)
    reference = rows["expected_per_7_5_ml"].to_numpy(np.float64)
    ids = rows["sample_id"].astype(str).to_numpy()
    within = within_tolerance(called, reference)
    cuts = []
    for cutoff in cutoffs:
        entry = cutoff_agreement(called, reference, cutoff)
        apart = (called >= cutoff) != (reference >= cutoff)
        entry["discordant"] = [{"sample_id": i, "reference_per_7_5_ml": float(r),
                                "called_per_7_5_ml": float(c)}
                               for i, r, c in zip(ids[apart], reference[apart], called[apart])]
        cuts.append(entry)
    return {"bland_altman": bland_altman(called, reference),
            "within_tolerance": {"n": int(within.sum()), "of": int(within.size),
                                 "ci95": share_interval(int(within.sum()), int(within.size)),
                                 "outside": ids[~within].tolist()},
            "at_cutoffs": cuts}


def comparison_csv(rows: pd.DataFrame, cutoffs: Sequence[float] = CUTOFFS) -> str:
    """The per-sample table of a comparison as CSV text: each sample's reference and called
    rates, their difference, whether it is within tolerance and each cut-off's call by both
    methods, the same of the rate after review (empty where the sample has none), its
    status and problems, the blood read, sign-off and what made it."""
    table = rows.drop(columns=[c for c in ("spiked", "level", "recovery_called",
                                           "recovery_after_review") if c in rows])
    table = table.rename(columns={"expected_per_7_5_ml": "reference_per_7_5_ml"})
    reference = table["reference_per_7_5_ml"].to_numpy(np.float64)
    for mode, suffix in (("called", ""), ("after_review", "_after_review")):
        rate = table[f"{mode}_per_7_5_ml"].to_numpy(np.float64)
        has = np.isfinite(rate)
        at = table.columns.get_loc(f"{mode}_per_7_5_ml") + 1
        with np.errstate(invalid="ignore"):
            table.insert(at, f"difference{suffix}_per_7_5_ml", rate - reference)
            table.insert(at + 1, f"within_tolerance{suffix}",
                         np.where(has, within_tolerance(rate, reference), None))
        for cutoff in cutoffs:
            name = f"{cutoff:g}".replace(".", "_")
            if not suffix:
                table[f"reference_at_or_over_{name}"] = reference >= cutoff
            table[f"{mode}_at_or_over_{name}"] = np.where(has, rate >= cutoff, None)
    text = io.StringIO()
    table.to_csv(text, index=False, float_format="%.6g", lineterminator="\n")
    return text.getvalue()
