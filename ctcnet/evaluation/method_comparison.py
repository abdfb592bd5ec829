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
  with the 95 % limits of agreement (Bland-Altman), each with its 95 % interval (the bias's
  from the t distribution; the limits' from their standard error, sd x sqrt(3 / n), Bland
  and Altman 1986);
* the Passing-Bablok line of ctcnet's rates on the reference's (slope and intercept with
  their 95 % intervals: a slope whose interval holds 1 and an intercept whose holds 0 say
  the two methods differ neither by a factor nor by an offset), which, unlike least squares,
  lets both methods err and no one sample lead;
* the share within the counting tolerance, max(1, 15 % of the reference), its 1 being one
  cell of the blood read where that is less than a tube (a partial scan's rate moves by
  7.5 / volume a cell);
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
            "reference_units_in_doubt": units_in_doubt(rated),
            "tolerance": f"max({ABS_TOLERANCE:g}, one cell of the blood read, "
                         f"{REL_TOLERANCE:.0%} of the reference)",
            **_agreement(rated, "called", cutoffs),
            "after_review": (_agreement(rated, "after_review", cutoffs)
                             if len(rated) and complete.all() else None)}


def _agreement(rows: pd.DataFrame, mode: str, cutoffs: Sequence[float]) -> dict:
    """Bias and limits, tolerance and cut-off agreement of one reading (``called`` or
    ``after_review``: the column ``<mode>_per_7_5_ml``) against the reference."""
    called = rows[f"{mode}_per_7_5_ml"].to_numpy(np.float64)
    reference = rows["expected_per_7_5_ml"].to_numpy(np.float64)
    ids = rows["sample_id"].astype(str).to_numpy()
    within = within_tolerance(called, reference, absolute=one_cell(rows))
    agreement = bland_altman(called, reference)
    agreement.update(_bland_altman_intervals(agreement))
    cuts = []
    for cutoff in cutoffs:
        entry = cutoff_agreement(called, reference, cutoff)
        apart = (called >= cutoff) != (reference >= cutoff)
        entry["discordant"] = [{"sample_id": i, "reference_per_7_5_ml": float(r),
                                "called_per_7_5_ml": float(c)}
                               for i, r, c in zip(ids[apart], reference[apart], called[apart])]
        cuts.append(entry)
    return {"bland_altman": agreement, "passing_bablok": passing_bablok(reference, called),
            "within_tolerance": {"n": int(within.sum()), "of": int(within.size),
                                 "ci95": share_interval(int(within.sum()), int(within.size)),
                                 "outside": ids[~within].tolist()},
            "at_cutoffs": cuts}


def one_cell(rows: pd.DataFrame) -> np.ndarray:
    """Per sample, the counting tolerance's absolute part: one cell per 7.5 mL (``ABS_TOLERANCE``)
    or, where less blood was read (a partial scan), one cell of the blood read: its rate moves
    by 7.5 / volume a cell, and a difference of one cell is within any count's tolerance."""
    volume = rows["blood_volume_read_ml"].to_numpy(np.float64) if "blood_volume_read_ml" in rows \
        else np.full(len(rows), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        cell = np.where(volume > 0, 7.5 / volume, ABS_TOLERANCE)
    return np.maximum(ABS_TOLERANCE, np.nan_to_num(cell, nan=ABS_TOLERANCE))


def _bland_altman_intervals(agreement: dict) -> dict:
    """The 95 % intervals of the bias (t distribution) and of each limit of agreement (its
    standard error sd x sqrt(3 / n)), of :func:`~ctcnet.evaluation.counts.bland_altman`'s
    figures; empty under 3 samples."""
    from scipy.stats import t

    n, bias, sd = agreement["n"], agreement["bias"], agreement["sd"]
    if n < 3:
        return {}
    q = float(t.ppf(0.975, n - 1))
    half, limit_half = q * sd / np.sqrt(n), q * sd * np.sqrt(3.0 / n)
    return {"bias_ci95": [bias - half, bias + half],
            "lower_ci95": [bias - 1.96 * sd - limit_half, bias - 1.96 * sd + limit_half],
            "upper_ci95": [bias + 1.96 * sd - limit_half, bias + 1.96 * sd + limit_half]}


# The samples a method comparison's regression asks for (CLSI EP09); fewer are said.
EP09_SAMPLES = 40


def passing_bablok(x, y) -> dict:
    """The Passing-Bablok line of ``y`` on ``x`` (Passing and Bablok 1983): the slope the
    shifted median of the pairwise slopes (pairs of equal points left out, a slope of -1
    too; a pair with equal x a slope of +-inf by the sign of its y difference), the intercept
    the median of y - slope x; 95 % intervals from the slopes' ranks. No slope (None, with a
    ``note`` saying why) under 3 samples, without two distinct slopes or where the
    reference's rates do not spread, and a ``note`` under :data:`EP09_SAMPLES` samples."""
    from scipy.stats import norm

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = x.size
    if n < 3:
        return {"n": int(n), "slope": None, "slope_ci95": None, "intercept": None,
                "intercept_ci95": None, "note": f"no line: {n} sample(s), a line needs 3 "
                f"at least (CLSI EP09 asks {EP09_SAMPLES} or more)"}
    i, j = np.triu_indices(n, k=1)
    dx, dy = x[j] - x[i], y[j] - y[i]
    keep = ~((dx == 0) & (dy == 0))
    dx, dy = dx[keep], dy[keep]
    with np.errstate(divide="ignore", invalid="ignore"):
        slopes = np.where(dx == 0, np.sign(dy) * np.inf, dy / dx)
    slopes = np.sort(slopes[slopes != -1.0])
    count = slopes.size
    if count < 2:  # (said, not null: a console said nothing of the missing line)
        return {"n": int(n), "slope": None, "slope_ci95": None, "intercept": None,
                "intercept_ci95": None, "note": "no line: the samples' rates give fewer than "
                "two distinct slopes (every sample at the same pair of rates, all 0?)"}
    shift = int((slopes < -1).sum())  # K: makes the estimate unbiased under a slope near 1

    def at(rank: float) -> float:  # the 1-based rank'th slope after the shift, clipped
        return float(slopes[int(np.clip(rank + shift - 1, 0, count - 1))])

    slope = at((count + 1) / 2) if count % 2 else 0.5 * (at(count / 2) + at(count / 2 + 1))
    if not np.isfinite(slope):  # (JSON has no Infinity: a reader would fail on the file)
        return {"n": int(n), "slope": None, "slope_ci95": None, "intercept": None,
                "intercept_ci95": None, "note": "no line: the reference's rates do not spread "
                "(most pairs of samples have equal reference rates, all 0 in a blank panel)"}
    c = float(norm.ppf(0.975)) * np.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    low_rank = round((count - c) / 2)
    intercept = float(np.median(y - slope * x))
    few = ({"note": f"{n} samples: CLSI EP09 asks 40 or more, and the intervals of so few are "
                    "wide"} if n < EP09_SAMPLES else {})
    if low_rank < 1:  # too few samples: the interval runs past the slopes there are (n <= 4)
        return {"n": int(n), "slope": slope, "slope_ci95": None, "intercept": intercept,
                "intercept_ci95": None, "note": f"{n} samples: too few for an interval "
                f"(CLSI EP09 asks {EP09_SAMPLES} or more)"}
    low, high = at(low_rank), at(count - low_rank + 1)
    if not np.isfinite([low, high]).all():  # an end of the interval is a vertical pair's
        return {"n": int(n), "slope": slope, "slope_ci95": None, "intercept": intercept,
                "intercept_ci95": None, "note": "no interval: the reference's rates spread "
                "too little (pairs of equal reference rates reach its ends)"}
    return {"n": int(n), "slope": slope, "slope_ci95": [low, high], "intercept": intercept,
            "intercept_ci95": [float(np.median(y - high * x)), float(np.median(y - low * x))],
            **few}


# ctcnet's median rate over the reference's that a reference per mL (7.5 x too low) gives:
# a method agreeing within -25 % / +35 % of it (a method twice as sensitive is far below).
PER_ML_RATIO = (5.5, 10.0)


def units_in_doubt(rows: pd.DataFrame) -> str | None:
    """What to say where the reference's rates look like another unit than per 7.5 mL: on
    tubes read whole, a rate per 7.5 mL is a whole count, so most of them not whole (0.13,
    0.53) are likely per mL, or a scaled figure. None where they look like counts."""
    whole = rows[np.isclose(rows["blood_volume_read_ml"].astype(float), 7.5)]
    values = whole["expected_per_7_5_ml"].astype(float).to_numpy()
    values = values[np.isfinite(values) & (values > 0)]
    fractional = int((np.abs(values - np.round(values)) > 1e-6).sum())
    ratio = rows["called_per_7_5_ml"].astype(float) / rows["expected_per_7_5_ml"].astype(float)
    ratio = ratio[np.isfinite(ratio) & (ratio > 0)]
    median = float(np.median(ratio)) if len(ratio) else None
    said = f" (ctcnet's rates are a median {median:.2f}x the reference's)" if median else ""
    if len(values) >= 3 and fractional * 2 >= len(values):
        return (f"{fractional} of {len(values)} reference rates on tubes read whole are not "
                "whole counts, as a count per 7.5 mL of a whole tube is: is the reference per "
                f"mL (x7.5 is per 7.5 mL), or scaled?{said}")
    # Whole numbers per mL (rounded) pass the test above: ctcnet then reads about 7.5x them.
    if len(ratio) >= 3 and PER_ML_RATIO[0] <= median <= PER_ML_RATIO[1]:
        return (f"ctcnet's rates are a median {median:.2f}x the reference's, about the 7.5 "
                "that a reference per mL gives: is it per mL (x7.5 is per 7.5 mL)?")
    return None


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
                         np.where(has, within_tolerance(rate, reference,
                                                        absolute=one_cell(rows)), None))
        for cutoff in cutoffs:
            name = f"{cutoff:g}".replace(".", "_")
            if not suffix:
                table[f"reference_at_or_over_{name}"] = reference >= cutoff
            table[f"{mode}_at_or_over_{name}"] = np.where(has, rate >= cutoff, None)
    text = io.StringIO()
    table.to_csv(text, index=False, float_format="%.6g", lineterminator="\n")
    return text.getvalue()
