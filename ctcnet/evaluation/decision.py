"""Fitting the decision rule at deployment prevalence (``spec.decision``, applied by
``ctcnet.nn.calls``) on predicted simulated cartridges.

The network learns on balanced classes; a cartridge holds tens of thousands of events with
0-30 CTCs among them. A debris->CTC rate of 1 in 1,000, harmless on a balanced test set, adds
~50 CTCs to every 52,500-event cartridge. The Bayes call at the cartridge's prevalence adds
``log(deployment prior / training prior)`` to each class's log probability; how far the rare
classes must be pushed down depends on how well the model separates them, so the shift is
*fitted* rather than computed from the prevalence alone:

* :func:`rescore` re-makes the calls of a predicted event table under another rule, exactly as
  predict would (``inference.tables.label_events``, edge-cut rule included); the marker guard's
  flags are kept where the call is unchanged (they depend only on the crop and the call) and
  dropped where it changed (not measurable without the crop). Rare-class counts are exact
  except for calls that move from cluster to ctc or back (their guard flags are unknown); the
  flagged share is a lower bound. Measured: 20 cartridges re-scored and predicted with the rule
  agree on every CTC count;
* :func:`count_agreement` turns a positive class's per-event rates into the expected share of
  deployment-size cartridges whose automatic count is within max(1, 15 %) of the truth and
  which land on the right side of the >= 5 cut-off (binomial detection of the true events,
  Poisson false calls at each fitting cartridge's own false-call rate, so the spread between
  samples counts);
* :func:`fit_decision` picks per rare class the log weight on a grid that maximises it
  (coordinate ascent; ties go to the weight that keeps more recall) and returns the rule with
  what it was fitted on.

``scripts/fit_decision.py`` simulates the fitting cartridges, predicts them and writes the rule
into the model files; ``scripts/cartridge_counts.py`` measures it on other seeds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ctcnet.evaluation.counts import ABS_TOLERANCE, REL_TOLERANCE, match_events, patient_counts
from ctcnet.inference.cluster_parts import clusters_held_again, counted_kinds
from ctcnet.inference.ctc_repeats import before_repeats, held_again, repeat_classes
from ctcnet.inference.guard import (
    MARKERS_CTC,
    MARKERS_VOUCH,
    counted,
    guarded_review,
    markers_call,
    markers_overrule,
)
from ctcnet.inference.tables import band_proba_of, filed_by_prior_of, label_events
from ctcnet.nn.calls import COUNTED_CLASSES, DecisionRule, as_rule

log = logging.getLogger(__name__)

FULL_SIZE_EVENTS = 175 * 300   # a 175-frame CellSearch cartridge at ~300 events per frame
# The rare classes a prior shift weighs: those a sample's result counts.
RARE_CLASSES = COUNTED_CLASSES
# An event whose rare-class probabilities are all below this is never called rare by a rule
# that only lowers rare classes (wbc or debris then holds at least 0.45).
CANDIDATE_P = 0.05
DEFAULT_GRID = tuple(np.round(np.arange(0.0, -16.01, -0.25), 2))
CUTOFF = 5


def rescore(events: pd.DataFrame, spec, decision: DecisionRule | None,
            edge_cut_class: str | None = "debris") -> pd.DataFrame:
    """The event table predict would have written with ``decision`` as the model's rule.

    Parameters
    ----------
    events : DataFrame
        A predicted event table (``p_*`` columns, ``model_class``, ``guard``, ``edge_cut``,
        ``markers_ctc`` and ``markers_vouch`` where predict wrote them).
    spec : ModelSpec
        The model's spec.
    decision : DecisionRule or None
        The rule to call with (None: the most probable class).
    edge_cut_class : str or None, default "debris"
        The class an event cut by the frame border is filed as (predict's default).

    Returns
    -------
    DataFrame
        The table with the calls, review flags and guard flags re-made (the guard's where the
        model's call is unchanged; a ``wbc`` call the markers overrule, ``ctc``; a cluster
        read twice and a markers' call repeating a counted one read again,
        ``ctcnet.inference.cluster_parts`` and ``ctcnet.inference.ctc_repeats``).
    """
    names = spec.class_names
    proba = events[[f"p_{n}" for n in names]].to_numpy(np.float32)
    edge = edge_cut_class if edge_cut_class in names else None
    out = label_events(events.drop(columns=["review"], errors="ignore"), proba,
                       spec.replace(decision=as_rule(decision)), edge,
                       band_proba_of(events, names))
    guard = events["guard"].fillna("").astype(str) if "guard" in events else \
        pd.Series("", index=events.index)
    same = out["model_class"].to_numpy(object) == events["model_class"].to_numpy(object)
    out["guard"] = np.where(same, guard.to_numpy(object), "")
    if MARKERS_CTC in events:  # the markers' call over the network's, as predict makes it
        kinds, reported = spec.taxonomy.guard_kinds(), spec.taxonomy.reported_classes()
        overruled = markers_overrule(out["model_class"].to_numpy(object),
                                     events[MARKERS_CTC].to_numpy(bool), proba, names,
                                     out["class"].to_numpy(object),
                                     out["edge_cut"].to_numpy(bool) if "edge_cut" in out
                                     else None, kinds, reported)
        out.loc[overruled, "class"] = markers_call(proba, names, kinds,
                                                   reported=reported)[overruled]
    # One cluster, one count, read afresh on the rule's calls, as predict holds them: before
    # the CTC repeats (a markers' call held as one stands meanwhile, a part of a cluster).
    if MARKERS_CTC in out:
        out["guard"] = before_repeats(out["guard"].to_numpy(object),
                                      out[MARKERS_CTC].fillna(False).to_numpy(bool),
                                      out["class"].to_numpy(object),
                                      repeat_classes(spec.taxonomy)[0])
    out = clusters_held_again(out, counted_kinds(spec.taxonomy))
    # One CTC, one count, read afresh: whether a markers' call repeats a counted one depends
    # on the calls beside it, which the rule may have changed (kept as it was, a CTC held
    # beside a network call the rule took away counted nowhere).
    out = held_again(out, spec.taxonomy)
    # What the guard's reading shows, as predict shows it (guarded_review): a ctc call whose
    # doubt the markers settle (as predict read them, on the same call) is not queued for it;
    # a call predict did not make has no such reading.
    vouched = same & (events[MARKERS_VOUCH].to_numpy(bool) if MARKERS_VOUCH in events
                      else False)
    markers = events[MARKERS_CTC].to_numpy(bool) if MARKERS_CTC in events else \
        np.zeros(len(out), bool)
    out["review"], out[MARKERS_VOUCH] = guarded_review(
        out["review"].to_numpy(bool), out["guard"].to_numpy(object) != "", vouched,
        filed_by_prior_of(out), out["model_class"].to_numpy(object),
        out["class"].to_numpy(object), markers, spec.taxonomy.reported_classes())
    return out


@dataclass
class FitTable:
    """Predicted events of many cartridges, with their truth, ready for fast re-scoring."""

    events: pd.DataFrame          # candidate events of all cartridges (p_*, model_class, guard,
                                  # edge_cut): those with a rare class above CANDIDATE_P
    true_class: np.ndarray        # per event: the matched true class, "none" for none
    cartridge: np.ndarray         # per event: index of its cartridge
    true_counts: pd.DataFrame     # per cartridge (rows) and class (columns): truth totals
    sample_ids: list[str]
    sizes: np.ndarray             # per cartridge: all its events (the table keeps candidates)

    @classmethod
    def build(cls, parts: Sequence[tuple[str, pd.DataFrame, pd.DataFrame]],
              class_names: Sequence[str], pixel_size_um: float) -> FitTable:
        """From (sample id, events, truth of the processed frames) per cartridge."""
        events, true_class, cart, counts, sizes = [], [], [], [], []
        for k, (sample, ev, truth) in enumerate(parts):
            truth = truth.reset_index(drop=True)
            idx = match_events(ev, truth, pixel_size_um)
            tc = np.where(idx >= 0, truth["class"].to_numpy(object)[np.maximum(idx, 0)],
                          "none") if len(truth) else np.full(len(ev), "none", object)
            # Only events a rule that pushes rare classes down could call rare: the rest
            # stay as they are under every such rule (kept out for speed; counted in events).
            rare = [f"p_{n}" for n in class_names if n in RARE_CLASSES and f"p_{n}" in ev]
            keep = (ev[rare] > CANDIDATE_P).any(axis=1).to_numpy() if rare else \
                np.ones(len(ev), bool)
            # (its sample named: re-scoring reads a frame's events together, frame by frame)
            events.append(ev[keep].reset_index(drop=True).assign(sample_id=sample))
            true_class.append(tc[keep].astype(object))
            cart.append(np.full(int(keep.sum()), k))
            sizes.append(len(ev))
            counts.append({n: int((truth["class"] == n).sum()) for n in class_names})
        return cls(pd.concat(events, ignore_index=True), np.concatenate(true_class),
                   np.concatenate(cart), pd.DataFrame(counts),
                   [sid for sid, _, _ in parts], np.array(sizes))

    def rates(self, spec, decision: DecisionRule | None, positive: str) -> dict:
        """Per cartridge: events, automatic false ``positive`` calls; pooled recall (detected,
        called and counted true ``positive`` events over all true ones)."""
        scored = rescore(self.events, spec, decision)
        called = (scored["class"].to_numpy(object) == positive) & counted(scored)
        right = self.true_class == positive
        n_cart = len(self.sample_ids)
        false = np.bincount(self.cartridge, called & ~right, n_cart)
        events = self.sizes
        true_total = int(self.true_counts[positive].sum())
        hits = int((called & right).sum())
        return {"events": events, "false": false, "hits": hits, "true_total": true_total,
                "recall": hits / true_total if true_total else 1.0}


def count_agreement(recall: float, false_per_event: np.ndarray, true_counts: Sequence[int],
                    events: float = FULL_SIZE_EVENTS, cutoff: float = CUTOFF) -> dict:
    """Expected share of ``events``-event cartridges within max(1, 15 %) of the truth, and on
    the right side of ``cutoff``, over true counts ``true_counts`` and samples whose false-call
    rates per event are ``false_per_event`` (one per fitting cartridge)."""
    within, cut = [], []
    for n in true_counts:
        n = int(n)
        hit = stats.binom.pmf(np.arange(n + 1), n, recall)          # true events counted
        tol = max(ABS_TOLERANCE, REL_TOLERANCE * n)
        for rate in np.asarray(false_per_event, np.float64):
            lam = rate * events
            pois = stats.poisson(lam)
            t = np.arange(n + 1)
            # |t + F - n| <= tol with F >= 0 false calls
            hi = np.floor(n - t + tol + 1e-9)
            lo = np.ceil(n - t - tol - 1e-9)
            p_in = np.where(hi >= 0, pois.cdf(hi) - np.where(lo > 0, pois.cdf(lo - 1), 0.0), 0.0)
            within.append(float((hit * p_in).sum()))
            # Called >= cutoff when t + F >= cutoff.
            need = np.maximum(cutoff - t, 0)
            p_pos = float((hit * np.where(need > 0, pois.sf(need - 1), 1.0)).sum())
            cut.append(p_pos if n >= cutoff else 1.0 - p_pos)
    return {"within": float(np.mean(within)), "cutoff_agrees": float(np.mean(cut))}


def fit_decision(table: FitTable, spec, positives: Sequence[str] = ("ctc", "cluster"),
                 true_counts: dict | None = None, events: float = FULL_SIZE_EVENTS,
                 grid: Sequence[float] = DEFAULT_GRID, rounds: int = 2
                 ) -> tuple[DecisionRule, dict]:
    """The prior-shift rule (per-class log weights) that maximises expected count agreement at
    deployment size: the model's rule fitted at cartridge prevalence.

    Parameters
    ----------
    table : FitTable
        The predicted fitting cartridges with their truth.
    spec : ModelSpec
        The model's spec.
    positives : sequence of str, default ("ctc", "cluster")
        The rare classes to fit a weight for.
    true_counts : dict, optional
        Per class, the true counts a deployment cartridge holds (default: as in patients,
        0-30 CTCs and 0-3 clusters, most of them low: quadratic spacing).
    events : float
        Events of a deployment-size cartridge.
    grid : sequence of float
        The log weights tried.
    rounds : int, default 2
        Rounds of coordinate ascent over the classes.

    Returns
    -------
    rule : DecisionRule
        The rule for ``spec.decision``, with its ``fitted`` record.
    curves : dict
        Per class, the scores of every weight on the grid.
    """
    true_counts = true_counts or {"ctc": patient_counts(20, 30),
                                  "cluster": patient_counts(20, 3)}
    weights = {p: 0.0 for p in positives if p in spec.class_names and p in RARE_CLASSES}
    curves: dict[str, list] = {}
    for _ in range(rounds):
        for positive in weights:
            rows = []
            for w in grid:
                decision = DecisionRule.prior_shift({**weights, positive: w})
                r = table.rates(spec, decision, positive)
                fp = r["false"] / np.maximum(r["events"], 1)
                agree = count_agreement(r["recall"], fp, true_counts[positive], events)
                if positive != "ctc":  # the clinical cut-off is a CTC count
                    agree["cutoff_agrees"] = None
                rows.append({"log_weight": float(w), "recall": r["recall"],
                             "false_per_1000_events": 1000 * r["false"].sum() /
                             max(r["events"].sum(), 1), **agree,
                             "score": agree["within"] + (agree["cutoff_agrees"] or 0.0)})
            best = max(rows, key=lambda row: (round(row["score"], 6), row["recall"]))
            weights[positive] = best["log_weight"]
            curves[positive] = rows
            log.debug("%s: log weight %.2f (recall %.3f, %.3f false calls per 1000 events, "
                      "expected within tolerance %.3f, >= %d cut-off %s)", positive,
                      best["log_weight"], best["recall"], best["false_per_1000_events"],
                      best["within"], CUTOFF, best["cutoff_agrees"])
    chosen = {p: next(r for r in curves[p] if r["log_weight"] == weights[p]) for p in weights}
    # Plain JSON types only: the rule travels in checkpoints loaded with weights_only=True.
    plain = json.loads(json.dumps({"rule": "prior_shift", "log_weights": weights,
            "fitted": {"cartridges": len(table.sample_ids), "events": int(len(table.events)),
                       "deployment_events_per_cartridge": float(events),
                       "true_counts": {p: [min(true_counts[p]), max(true_counts[p])]
                                       for p in weights},
                       "objective": "expected share within max(1, 15 %) (+ for ctc the share "
                                    f"agreeing at >= {CUTOFF})",
                       "at_fit": chosen}}, default=float))
    return DecisionRule.from_dict(plain, spec.class_names), curves

