"""The review band for a stated miss rate: the smallest review list that keeps the share of
CTCs and clusters neither counted nor shown under a level, with a stated confidence.

On labelled events (simulated cartridges, held-out crops), a cell of a counted class is
*missed* at band ``b`` when its call is of an uncounted class, no guard flag shows it, and no
counted class holds ``b`` of its posterior (:mod:`ctcnet.nn.calls`). Its share of the counted
cells grows with ``b``; the list of events shown shrinks. :func:`band_for_miss_rate` takes the
largest band whose miss share is under ``level`` with ``confidence``, by a fixed-sequence test
(Learn then Test, Angelopoulos et al. 2021): the candidate bands are tested from the smallest
up, each with a one-sided binomial (Clopper-Pearson) bound on its miss share, and the sequence
stops at the first that fails. As the miss share only grows with the band, each test is a
valid test of its own hypothesis and the family-wise error stays under ``1 - confidence``.
The guarantee holds for cells drawn as the calibration cells were: events of one cartridge
are not independent, so cartridges, not events, are what a new family must come from.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ctcnet.core.printable import stated_percent
from ctcnet.detect.truth_matching import MATCH_RADIUS_UM, match_to_truth
from ctcnet.inference.tables import before_prior_of
from ctcnet.nn.calls import COUNTED_CLASSES, deployment_proba, filed_by_prior

# The bands tried, from the most shown up: fine near 0, where a cartridge's posteriors sit.
CANDIDATES = np.unique(np.r_[np.geomspace(1e-4, 0.5, 80), 0.5])


def miss_upper_bound(misses: int, n: int, confidence: float) -> float:
    """One-sided Clopper-Pearson upper bound on a share from ``misses`` of ``n``."""
    from scipy.stats import beta  # fitting side only (the ``all`` extra)

    if n <= 0:
        return 1.0
    if misses >= n:
        return 1.0
    return float(beta.ppf(confidence, misses + 1, n - misses))


def cells_needed(level: float, confidence: float) -> int:
    """The fewest labelled CTCs and clusters on which any band can state ``level`` with
    ``confidence``: all of them shown, none missed (more where some are missed)."""
    return int(math.ceil(math.log(1.0 - confidence) / math.log(1.0 - level)))


def no_band_text(record: dict) -> str:
    """Why a fit found no band (:func:`band_for_miss_rate` with ``band`` None), and what it
    would take."""
    level, confidence, n = record["level"], record["confidence"], record["cells"]
    need = cells_needed(level, confidence)
    more = (f"at least {need} CTCs and clusters are needed to state it even with none "
            f"missed: fit on more cartridges or crops" if n < need else
            "the misses no band can show keep it above the level: the model misses too many")
    return f"no band keeps the miss share under {level} with {confidence} on {n} cells: {more}"


def fresh_verdict(fresh: dict, level: float, confidence: float) -> tuple[str, str] | None:
    """What a fresh family (:func:`misses_at` on cells not used to fit) says of a band fitted
    for ``level``: ("refuse", why) where its misses' one-sided lower bound at ``confidence``
    lies above the level (the statement is contradicted: not to be written into a model),
    ("warn", why) where only their share does (within chance on so few cells), else None."""
    from scipy.stats import beta

    misses, n = int(fresh.get("misses") or 0), int(fresh.get("cells") or 0)
    if n <= 0 or misses / n <= level:
        return None
    lower = float(beta.ppf(1.0 - confidence, misses, n - misses + 1))
    said = (f"the fresh family misses {misses} of {n} CTCs and clusters ({misses / n:.3f}) "
            f"against the stated {level}")
    if lower > level:
        return "refuse", (f"{said}, beyond chance ({stated_percent(confidence)} lower bound "
                          f"{lower:.3f}): the band's statement does not hold; not written")
    return "warn", f"{said}, within chance on {n} cells: check it on more"


def band_for_miss_rate(counted_mass: np.ndarray, shown_otherwise: np.ndarray,
                       is_counted_truth: np.ndarray, level: float = 0.01,
                       confidence: float = 0.95) -> dict:
    """The largest band whose miss share is under ``level`` with ``confidence``.

    Per event: ``counted_mass``, the largest posterior of a counted class; ``shown_otherwise``,
    shown whatever the band (called a counted class, or flagged by the guard);
    ``is_counted_truth``, the event is a CTC or cluster. Returns the band (None when even the
    smallest candidate fails: too few cells, or misses no band can reach), the misses and
    their bound at it, the cells it was fitted on and the share of events the band shows
    beyond ``shown_otherwise`` and in all.
    """
    mass = np.nan_to_num(np.asarray(counted_mass, np.float64), nan=0.0)
    shown = np.asarray(shown_otherwise, bool)
    target = np.asarray(is_counted_truth, bool)
    n = int(target.sum())
    at_risk = mass[target & ~shown]  # cells only the band can show
    chosen = None
    for band in CANDIDATES:
        misses = int((at_risk < band).sum())
        bound = miss_upper_bound(misses, n, confidence)
        if bound > level:
            break
        chosen = (float(band), misses, bound)
    record = {"level": float(level), "confidence": float(confidence), "cells": n,
              "events": int(len(mass)), "band": None}
    if chosen is None:
        return record
    band, misses, bound = chosen
    by_band = ~shown & (mass >= band)
    record.update(band=band, misses=misses, miss_bound=round(bound, 5),
                  miss_share=round(misses / n, 5) if n else None,
                  shown_by_band=round(float(by_band.mean()), 5) if len(mass) else 0.0,
                  shown=round(float((shown | by_band).mean()), 5) if len(mass) else 0.0)
    return record


def misses_at(band: float, counted_mass: np.ndarray, shown_otherwise: np.ndarray,
              is_counted_truth: np.ndarray) -> dict:
    """What ``band`` does on other labelled events (a family not used to fit it)."""
    mass = np.nan_to_num(np.asarray(counted_mass, np.float64), nan=0.0)
    shown = np.asarray(shown_otherwise, bool) | (mass >= band)
    target = np.asarray(is_counted_truth, bool)
    n = int(target.sum())
    misses = int((target & ~shown).sum())
    return {"band": float(band), "cells": n, "misses": misses,
            "miss_share": round(misses / n, 5) if n else None,
            "shown": round(float(shown.mean()), 5) if len(mass) else 0.0}


def band_inputs(events: pd.DataFrame, truth: pd.DataFrame, spec, pixel_size_um: float,
                radius_um: float = MATCH_RADIUS_UM) -> pd.DataFrame:
    """Per event of a predicted simulated cartridge, what the band is fitted on:
    ``counted_mass`` (the largest deployment posterior of a counted class, under the model's
    decision rule), ``shown_otherwise`` (called a counted class, flagged by the guard, or a
    counted class the likeliest before the prior, which a rule with a band shows:
    :func:`ctcnet.nn.calls.filed_by_prior`) and
    ``is_counted_truth`` (matched one-to-one within ``radius_um`` to a drawn CTC or cluster;
    matched per frame by ``row`` and ``col``)."""
    names = list(spec.class_names)
    counted = [i for i, n in enumerate(names) if n in COUNTED_CLASSES]
    # The probabilities the band read (a review-only marker fusion's), else the calls' own.
    before_prior, calls = before_prior_of(events, names)
    posterior = deployment_proba(before_prior, names, spec.decision)
    guard = events["guard"].fillna("").astype(str) if "guard" in events else ""
    # Shown once the rule carries a band, whatever the band.
    by_prior = filed_by_prior(before_prior, calls, names, spec.decision, banded=True)
    out = pd.DataFrame({
        "counted_mass": posterior[:, counted].max(axis=1) if counted else 0.0,
        "shown_otherwise": events["class"].isin(COUNTED_CLASSES).to_numpy()
        | (guard != "").to_numpy() | by_prior,
        "is_counted_truth": False}, index=events.index)
    radius = radius_um / pixel_size_um
    by_frame = dict(list(events.groupby(["row", "col"])))
    for key, t in truth.groupby(["row", "col"]):
        e = by_frame.get(key)
        if e is None:
            continue
        ti, di = match_to_truth(e[["x", "y"]].to_numpy(), t[["x", "y"]].to_numpy(), radius)
        hit = t["class"].isin(COUNTED_CLASSES).to_numpy()[ti]
        out.loc[e.index[di[hit]], "is_counted_truth"] = True
    return out
