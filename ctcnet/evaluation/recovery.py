"""Recovery of spiked cells per spike level, pooled over the level's tubes with its exact 95 %
interval, and the tubes whose recovery is out of line (a swapped or mislabelled tube): pure
numpy, pandas and scipy, for :mod:`ctcnet.evaluation.spike_in`.

A tube's cells found are its called rate times the blood read over 7.5 mL (predict's rate is
the count per 7.5 mL of the blood read, so this is the count itself); its cells spiked are the
number spiked times the share of the tube read (all of them where the whole tube was read). A
level's recovery is the cells found over the cells spiked, each summed over its tubes.

The interval is exact Poisson (Garwood) on the cells found, divided by the cells spiked, not
Clopper-Pearson: the cells found are no binomial draw of the number spiked. A nominal spike
is itself a Poisson draw of the suspension, and cells found by each with probability r from
a Poisson number of mean S are Poisson of mean r S exactly, so the interval is exact for r;
false calls can make the found exceed the spiked, which no binomial allows. Where the tubes'
cells were counted (a ``level`` column), found is binomial, narrower than Poisson, and the
interval is conservative. It is the counting noise alone: tubes differing beyond it (a
level's CV above its Poisson CV) spread the recovery more than it says.

A tube is suspect (:func:`suspect_tubes`) where its recovery is implausible, over
:data:`IMPLAUSIBLE_RECOVERY` and more cells than the number spiked gives (Poisson) with a
p under :data:`SUSPECT_P`, or where the level has others and the tube's recovery is
:data:`OFF_FACTOR` or more times theirs (or under 1 / that) with the split of the cells
between it and them beyond Poisson noise (exact binomial test given their cells spiked,
two-sided p under :data:`SUSPECT_P`). Both need the effect and the evidence: at a level of 5
cells, 1 cell found beside 4 is 4x off but a common draw, and says nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.inference.counts import PER_ML, interval_at_two_decimals, poisson_interval

# A tube recovering over this share of the cells spiked holds more than it was given.
IMPLAUSIBLE_RECOVERY = 1.5
# A tube this many times off its level's other tubes (either way) may be another level's.
OFF_FACTOR = 2.0
# The evidence asked beside either effect: with p under 0.01 per tube, a study of 8 to 12
# spiked tubes whose differences are Poisson noise alone is rarely flagged (see the tests).
SUSPECT_P = 0.01

METHOD = ("cells found over cells spiked, summed over the level's tubes; 95 % interval: "
          "exact Poisson (Garwood) of the cells found, over the cells spiked (the counting "
          "noise alone)")


def tube_cells(rows: pd.DataFrame, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row of :func:`~ctcnet.evaluation.spike_in.sample_rows`, the cells found by one
    reading (``called`` or ``after_review``; NaN without a rate) and the cells spiked into
    the blood read (the spiked number where the tube's volume is unknown)."""
    rate = rows[f"{mode}_per_7_5_ml"].to_numpy(np.float64)
    stated = rows["blood_volume_ml"].to_numpy(np.float64)
    read = (rows["blood_volume_read_ml"].to_numpy(np.float64)
            if "blood_volume_read_ml" in rows else np.full(len(rows), np.nan))
    # A summary that gives no blood read (an older one) read its whole tube.
    read = np.where(np.isfinite(read) & (read > 0), read, stated)
    with np.errstate(invalid="ignore", divide="ignore"):
        # The rate is a count scaled by the blood read: scaled back, it is that count (a
        # float's hair off an integer, rounded away).
        found = np.round(rate * read / PER_ML)
        share = np.where(stated > 0, read / stated, 1.0)
    return found, rows["spiked"].to_numpy(np.float64) * np.nan_to_num(share, nan=1.0)


def recovery_interval(found: float, spiked: float) -> list[float] | None:
    """The exact 95 % interval of a recovery of ``found`` cells of ``spiked`` (see the
    module), its ends rounded outward to whole per cent; None without cells spiked or found."""
    if not spiked > 0 or not np.isfinite(found):
        return None
    low, high = poisson_interval(int(found))
    return list(interval_at_two_decimals(low / spiked, high / spiked))


def pooled_recovery(found: np.ndarray, spiked: np.ndarray) -> dict:
    """One level's recovery over its tubes with a rate: ``cells_found``, ``cells_spiked``,
    ``recovery`` and ``recovery_ci95`` (None where nothing was spiked)."""
    ok = np.isfinite(found) & np.isfinite(spiked)
    total_found, total_spiked = float(found[ok].sum()), float(spiked[ok].sum())
    rate = total_found / total_spiked if total_spiked > 0 else None
    return {"cells_found": int(total_found), "cells_spiked": total_spiked, "recovery": rate,
            "recovery_ci95": recovery_interval(total_found, total_spiked)}


def suspect_tubes(ids, found: np.ndarray, spiked: np.ndarray, level: str) -> list[dict]:
    """What of one spike level looks swapped or mislabelled (see the module): each tube whose
    recovery is implausible, and each tube off the level's others; of a level of two tubes
    off each other (neither implausible), both, as one finding: either may be the one. Each
    finding gives ``level``, ``samples`` (ids), their ``recoveries`` and why (``reason``)."""
    from scipy.stats import poisson  # scipy: the detection extra, as spike_in's tests

    ids, found, spiked = np.asarray(ids, str), np.asarray(found, float), np.asarray(spiked, float)
    ok = np.isfinite(found) & (spiked > 0)
    ids, found, spiked = ids[ok], found[ok], spiked[ok]
    recovery = found / spiked
    out = []
    implausible = set()
    for i in range(len(ids)):
        p = float(poisson.sf(found[i] - 1, spiked[i]))  # P(as many or more | all spiked)
        if recovery[i] > IMPLAUSIBLE_RECOVERY and p < SUSPECT_P:
            implausible.add(i)
            out.append(_finding(level, ids[[i]], recovery[[i]],
                                f"{found[i]:.0f} cells found of {spiked[i]:.3g} spiked, more "
                                f"than the tube can hold (p = {p:.2g})"))
    if len(ids) == 2 and not implausible:
        p = _split_p(found, spiked, 0)
        ratio = recovery[0] / recovery[1] if recovery[1] > 0 else np.inf
        if _off(ratio) and p < SUSPECT_P:
            out.append(_finding(level, ids, recovery,
                                f"recoveries more than {OFF_FACTOR:g}x apart (p = {p:.2g}), "
                                "either may be the one"))
    # Against the level's other tubes, the most out of line first, then the rest again
    # without it (and without the implausible ones): a tube swapped in pulls its level's pooled
    # recovery, and compared with it honest tubes read off too (4 tubes named for one swap).
    remaining = [i for i in range(len(ids)) if i not in implausible] if len(ids) > 2 else []
    while len(remaining) > 2:
        off = []
        for i in remaining:
            rest = [j for j in remaining if j != i]
            others = found[rest].sum() / spiked[rest].sum()
            ratio = recovery[i] / others if others > 0 else np.inf
            p = _split_p(found[remaining], spiked[remaining], remaining.index(i))
            if _off(ratio) and p < SUSPECT_P:
                off.append((p, i, ratio, others))
        if not off:
            break
        p, i, ratio, others = min(off)
        out.append(_finding(level, ids[[i]], recovery[[i]],
                            f"{'over' if ratio > 1 else 'under'} the level's other tubes' "
                            f"{others:.0%} by more than {OFF_FACTOR:g}x (p = {p:.2g})"))
        remaining.remove(i)
    return out


def _off(ratio: float) -> bool:
    """Whether one recovery over another is :data:`OFF_FACTOR` or more apart, either way."""
    return bool(ratio >= OFF_FACTOR or ratio <= 1.0 / OFF_FACTOR)


def _split_p(found: np.ndarray, spiked: np.ndarray, i: int) -> float:
    """The exact two-sided p of tube ``i``'s share of its level's cells found, were every
    tube's recovery the same (its share then follows its cells spiked: a binomial given the
    total, as two Poisson counts split); 1 where the level found none."""
    from scipy.stats import binomtest  # scipy: the detection extra

    total = int(found.sum())
    if total == 0:
        return 1.0
    return float(binomtest(int(found[i]), total, spiked[i] / spiked.sum()).pvalue)


def _finding(level: str, ids: np.ndarray, recoveries: np.ndarray, reason: str) -> dict:
    return {"level": str(level), "samples": [str(s) for s in ids],
            "recoveries": [float(r) for r in recoveries], "reason": reason}


def spiked_without_calls(ids, found: np.ndarray, spiked: np.ndarray) -> list[dict]:
    """The spiked tubes in which no cell was found, each with its cells spiked: a fact, not a
    suspicion (at 5 cells and 85 % recovery one tube in 70 finds none by chance), said as the
    blanks with calls are, since a spike that did not happen or a blank labelled as spiked
    reads so, and a level of several tubes seldom gives that evidence past
    :data:`SUSPECT_P`."""
    return [{"sample_id": str(s), "cells_spiked": float(n)}
            for s, f, n in zip(ids, found, spiked) if np.isfinite(f) and f == 0 and n > 0]


def blanks_with_calls(ids, found: np.ndarray, rates: np.ndarray) -> list[dict]:
    """The blanks that carried calls, each with its cells called and rate: what raised the
    limit of blank (false calls, or a spiked tube labelled as a blank)."""
    return [{"sample_id": str(s), "cells_called": int(f), "called_per_7_5_ml": float(r)}
            for s, f, r in zip(ids, found, rates) if np.isfinite(r) and r > 0]
