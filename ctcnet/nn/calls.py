"""From class probabilities to calls: the one rule every path applies (numpy only, no torch).

The call is the most probable class; the network's doubt sends it to human review where the
doubt could change a count: a call of a counted class (the model's reported classes,
``spec.taxonomy.reported_classes()``, each function's ``counted``; by default
:data:`COUNTED_CLASSES`: ``ctc``, ``cluster``) under the model's review threshold, or a call
of another class to which a counted class holds at least the review band of the posterior.
The band is the one fitted with the decision rule for a stated miss rate
(``DecisionRule.review_band``, :mod:`ctcnet.evaluation.miss_rate`); without one, a call under
the threshold whose runner-up is a counted class or to which a counted class holds the rest of
the threshold (``1 - threshold``). With a band, a call of another class that a counted class
outweighs before the decision rule's prior is shown too (:func:`filed_by_prior`: the prior
alone filed it so). Doubt between uncounted classes alone (a leukocyte or debris?) changes no
count and is not queued; :func:`uncounted_doubt` reports it.
A model whose classes include no counted class sends every call under the threshold.

A row that is not a finite distribution (a NaN or infinite crop, a broken model) is **no
call**: its class is :data:`FAILED_CLASS`, its confidence NaN, and it is always reviewed.
Without this rule ``argmax`` of a NaN row picks class 0 (``ctc``) and ``NaN < threshold`` is
false, so a broken number would become a confident, unreviewed CTC. Used by slide-scale predict
and by the torch-free ONNX runtime, so a port has one rule to copy.

**Deployment prevalence.** The network is trained on balanced classes, so its probabilities
are posteriors under equal priors. A cartridge holds debris ~1,000x CTCs: the Bayes call there
weighs each probability by the ratio of deployment to training prior. A model's spec may carry
that weighting as ``spec.decision``, a :class:`~ctcnet.nn.decision_rule.DecisionRule` stored as::

    {"rule": "prior_shift", "log_weights": {"ctc": -6.1, "cluster": -4.0}, "fitted": {...}}

Each class's log weight is added to the log probability and the result renormalised; the call
is the top of this deployment posterior and its confidence (what the review threshold is
compared with) is that posterior's top value. A class without a weight keeps 0, and an empty
rule is the plain most probable class. The weights are fitted on simulated cartridges
(``scripts/fit_decision.py``), not set by hand; the probability columns a run writes stay the
network's own.

**Which prior a run uses** (:func:`prior_rule`; ``--prior`` of ``ctcnet predict`` and
``ctcnet evaluate``). The fitted rule holds only where its prevalence does: in whole cartridges.
A crop set (a folder of crops, often near balanced) called with it would call almost no CTC. So
``cartridge`` (the model's fitted rule) is the default for cartridges, ``balanced`` (no
reweighting: the network's own prior) the default for crop sets, and a user who knows the class
frequencies of a crop set states them (``ctc=0.01,cluster=0.005``; classes not named share the
rest equally). A stated prior becomes the same kind of rule: each class's log weight is
``log(p * K)``, its prior against the balanced training prior ``1 / K``. ``summary.json``
records the prior's name and the log weights applied.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# The rule's type and the named priors live in their own module; imported here as before.
from ctcnet.nn.decision_rule import (  # noqa: F401 (API)
    BALANCED_PRIOR,
    CARTRIDGE_PRIOR,
    DECISION_RULES,
    DecisionRule,
    as_rule,
    stated_prior,
)

FAILED_CLASS = "failed"
# The classes a sample's result counts (CTCs and CTC clusters per 7.5 mL): doubt matters for
# review only where it could move one of these counts.
COUNTED_CLASSES = ("ctc", "cluster")


def finite_crops(raw: np.ndarray) -> np.ndarray:
    """Bool (N,): True where every pixel of the crop is finite (integer crops always are)."""
    raw = np.asarray(raw)
    if not np.issubdtype(raw.dtype, np.floating):
        return np.ones(len(raw), bool)
    return np.isfinite(raw.reshape(len(raw), -1)).all(axis=1)


def decision_weights(decision: DecisionRule | None) -> dict[str, float]:
    """A decision rule's log weights by class name, as ``summary.json`` records them.

    Parameters
    ----------
    decision : DecisionRule or None
        The rule (None: none).

    Returns
    -------
    dict of str to float
        A copy of its weights; empty for no rule.
    """
    return as_rule(decision).weights


def deployment_proba(proba: np.ndarray, class_names: Sequence[str],
                     decision: DecisionRule | None = None) -> np.ndarray:
    """Probabilities reweighted by the decision rule's log weights and renormalised (the
    posterior at deployment prevalence).

    Parameters
    ----------
    proba : ndarray, shape (N, K)
        Calibrated class probabilities, columns in ``class_names`` order.
    class_names : sequence of str
        The model's classes, in output order.
    decision : DecisionRule, optional
        The rule; None or a balanced one leaves the probabilities as they are.

    Returns
    -------
    ndarray, float32, shape (N, K)
        The deployment posterior; ``proba`` itself (as float32) when the rule reweights
        nothing. Non-finite rows stay non-finite.
    """
    proba = np.asarray(proba, dtype=np.float32).reshape(-1, len(class_names))
    w = as_rule(decision).log_weights_for(class_names)
    if not w.any():
        return proba
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = proba.astype(np.float64) * np.exp(w - w.max())[None, :]
        total = shifted.sum(axis=1, keepdims=True)
        out = shifted / np.where(total > 0, total, 1.0)
    # A row of zeros stays zeros; NaN and inf stay non-finite, so the row still fails below.
    return out.astype(np.float32)


def top_class(proba: np.ndarray, class_names: Sequence[str],
              decision: DecisionRule | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The call the decision rule makes, as class indices.

    Parameters
    ----------
    proba : ndarray, shape (N, K)
        Calibrated class probabilities, columns in ``class_names`` order.
    class_names : sequence of str
        The model's classes, in output order.
    decision : DecisionRule, optional
        The rule (None: the most probable class).

    Returns
    -------
    index : ndarray of int, shape (N,)
        The called class per row (a non-finite row's is arbitrary; :func:`calls_from_proba`
        fails it).
    posterior : ndarray, float32, shape (N, K)
        The deployment posterior (:func:`deployment_proba`).
    """
    proba = deployment_proba(proba, class_names, decision)
    return np.nan_to_num(proba, nan=-1.0).argmax(axis=1), proba


def counted_likeliest(proba: np.ndarray, class_names: Sequence[str],
                      counted: Sequence[str] = COUNTED_CLASSES) -> np.ndarray:
    """Bool per row: a ``counted`` class is the most probable of ``proba`` as given, the
    balanced training prior's posterior, before any decision rule (False for a non-finite
    row).

    Why: a cartridge's prior (``spec.decision``: CTCs and clusters are rare among tens of
    thousands of events) files such an event as debris or a leukocyte, and the review band
    reads the posterior after that prior, where a cluster's log weight of -7.5 leaves a
    network's p(cluster) of 0.98 under 1 %. The network, with the markers where a scan fusion
    read them, still finds a CTC or cluster the likelier: only the prior decides against it,
    so a person sees it. On the demo cartridge two CTCs the network read as clusters at 0.92
    and 0.98 were otherwise neither counted nor shown (docs/predict.md).
    """
    proba = np.asarray(proba, dtype=np.float32).reshape(-1, len(class_names))
    indices = [i for i, n in enumerate(class_names) if n in counted]
    if not indices or not len(proba):
        return np.zeros(len(proba), bool)
    finite = np.isfinite(proba).all(axis=1)
    return finite & np.isin(np.nan_to_num(proba, nan=-1.0).argmax(axis=1), indices)


def filed_by_prior(proba: np.ndarray, calls: np.ndarray, class_names: Sequence[str],
                   decision: DecisionRule | None, banded: bool | None = None,
                   counted: Sequence[str] = COUNTED_CLASSES) -> np.ndarray:
    """Bool per row: ``calls`` (class names) that another, ``counted`` class outweighs in
    ``proba``, before the rule's prior (:func:`counted_likeliest`), where the rule carries a
    fitted review band (``banded``: whether to read it as one that does; None: ``decision``'s
    own); else none. The call is of an uncounted class (a leukocyte or debris call the network
    finds a CTC or cluster likelier than), or of another counted class: the prior, which
    weighs a cluster under a CTC, filed as a CTC what the network (with the markers, where a
    scan fusion read them) finds a cluster, and either call changes two counts. On 20 dense
    simulated cartridges (24,969 events, 263 clusters) 10 such ``ctc`` calls, 6 of them
    clusters (doublets, CTC-platelet clusters), were counted as single CTCs and not shown.

    Only with a band: the band's fit counts these as shown
    (:func:`ctcnet.evaluation.miss_rate.band_inputs`, ``banded=True``) and so spends less of
    the list on the posterior after the prior. A model without a band and without a fusion's
    markers to read (``ctcnet-core3``) finds a counted class likeliest on 2.2 % of a
    cartridge's events against the 0.5 % it queues otherwise, for one more CTC shown of
    204."""
    calls = np.asarray(calls, dtype=object)
    if banded is None:
        banded = as_rule(decision).review_band is not None
    if not banded:
        return np.zeros(len(calls), bool)
    proba = np.asarray(proba, dtype=np.float32).reshape(-1, len(class_names))
    names = np.asarray(list(class_names), dtype=object)
    likeliest = names[np.nan_to_num(proba, nan=-1.0).argmax(axis=1)] if len(proba) else \
        names[:0]
    return counted_likeliest(proba, class_names, counted) & (likeliest != calls)


def calls_from_proba(proba: np.ndarray, class_names: Sequence[str], review_threshold: float,
                     decision: DecisionRule | None = None, band_proba: np.ndarray | None = None,
                     counted: Sequence[str] = COUNTED_CLASSES
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The calls, one per row of ``proba``: the one rule every path applies.

    Parameters
    ----------
    proba : ndarray, shape (N, K)
        Calibrated class probabilities, columns in ``class_names`` order.
    class_names : sequence of str
        The model's classes, in output order.
    review_threshold : float
        Top deployment probability below which a call goes to review.
    decision : DecisionRule, optional
        The rule the calls are made with, e.g. the model's ``spec.decision`` (deployment
        prevalence) or :func:`prior_rule`'s; None: the most probable class.
    band_proba : ndarray, shape (N, K), optional
        The probabilities whose counted-class share the review band reads, if not ``proba``'s
        (a cartridge's marker fusion, :mod:`ctcnet.inference.scan_fusion`: the network's and
        the markers' evidence for a CTC read together), at the same rule's prior; and whose
        most probable class :func:`filed_by_prior` reads.
    counted : sequence of str, default ``COUNTED_CLASSES``
        The classes whose counts the doubt is about: the model's reported classes
        (``spec.taxonomy.reported_classes()``; a lab's taxonomy may report ``ctc_emt``).

    Returns
    -------
    called : ndarray of object, shape (N,)
        The called class name, :data:`FAILED_CLASS` for a non-finite row.
    confidence : ndarray, float32, shape (N,)
        The deployment posterior of the call (NaN for a failed row).
    review : ndarray of bool, shape (N,)
        Below the review threshold with a counted class in doubt, a counted class within the
        band or, with a band, the likeliest before the prior (see the module), or failed.
    failed : ndarray of bool, shape (N,)
        The row is not a finite distribution.
    """
    proba = np.asarray(proba, dtype=np.float32).reshape(-1, len(class_names))
    failed = ~np.isfinite(proba).all(axis=1)
    before_prior = proba if band_proba is None else band_proba
    top, proba = top_class(proba, class_names, decision)
    names = np.asarray(list(class_names), dtype=object)
    called = np.where(failed, FAILED_CLASS, names[top] if len(proba) else names[:0])
    confidence = np.where(failed, np.nan, proba[np.arange(len(proba)), top]).astype(np.float32)
    review = failed | _doubt_shown(proba, top, confidence, class_names, review_threshold,
                                   as_rule(decision).review_band,
                                   _band_posterior(band_proba, class_names, decision),
                                   counted) | \
        filed_by_prior(before_prior, called, class_names, decision, counted=counted)
    return called.astype(object), confidence, review, failed


def _band_posterior(band_proba: np.ndarray | None, class_names: Sequence[str],
                    decision: DecisionRule | None) -> np.ndarray | None:
    """``band_proba`` at the rule's prior (None stays None)."""
    if band_proba is None:
        return None
    band_proba = np.asarray(band_proba, dtype=np.float32).reshape(-1, len(class_names))
    return deployment_proba(band_proba, class_names, decision)


def _doubt_shown(posterior: np.ndarray, top: np.ndarray, confidence: np.ndarray,
                 class_names: Sequence[str], review_threshold: float,
                 band: float | None, band_posterior: np.ndarray | None = None,
                 counted_classes: Sequence[str] = COUNTED_CLASSES) -> np.ndarray:
    """Bool per row: the network's doubt puts the event in front of a person. A counted call
    under the review threshold; a call of another class to which a counted class holds at
    least ``band`` of the posterior (the rule's fitted review band; of ``band_posterior``
    where given) or, without one, holds ``1 - review_threshold`` with the call under the
    threshold. A model without counted classes: every call under the threshold."""
    doubtful = np.nan_to_num(confidence, nan=1.0) < review_threshold
    counted = [i for i, n in enumerate(class_names) if n in counted_classes]
    if not counted:
        return doubtful
    counted_call = np.isin(top, counted)
    finite = np.nan_to_num(posterior, nan=0.0)
    mass = finite[:, counted].max(axis=1)
    if band is None:
        # The doubt is about a count where a counted class is the runner-up, or holds the rest
        # of the threshold: "leukocyte, or a CTC?" is shown, "leukocyte, or debris?" is not.
        runner_up = np.argsort(-finite, axis=1, kind="stable")[:, 1] if finite.shape[1] > 1 \
            else top
        near = np.isin(runner_up, counted) | (mass >= 1.0 - review_threshold)
        return doubtful & (counted_call | near)
    if band_posterior is not None:
        mass = np.nan_to_num(band_posterior, nan=0.0)[:, counted].max(axis=1)
    return (doubtful & counted_call) | (~counted_call & (mass >= band))


def uncounted_doubt(proba: np.ndarray, class_names: Sequence[str], review_threshold: float,
                    decision: DecisionRule | None = None, band_proba: np.ndarray | None = None,
                    counted: Sequence[str] = COUNTED_CLASSES) -> np.ndarray:
    """Bool per row: the call is below the review threshold, but only between classes that
    are not ``counted`` (reported, not queued: :func:`calls_from_proba` does not review
    it)."""
    proba = np.asarray(proba, dtype=np.float32).reshape(-1, len(class_names))
    failed = ~np.isfinite(proba).all(axis=1)
    top, posterior = top_class(proba, class_names, decision)
    confidence = np.nan_to_num(posterior[np.arange(len(posterior)), top], nan=1.0)
    names = np.asarray(list(class_names), dtype=object)
    shown = _doubt_shown(posterior, top, confidence, class_names, review_threshold,
                         as_rule(decision).review_band,
                         _band_posterior(band_proba, class_names, decision), counted) | \
        filed_by_prior(proba if band_proba is None else band_proba,
                       names[top] if len(top) else names[:0], class_names, decision,
                       counted=counted)
    return ~failed & (confidence < review_threshold) & ~shown


def prior_rule(prior: str | None, class_names: Sequence[str],
               model_rule: DecisionRule | None, default: str) -> tuple[DecisionRule, str]:
    """The decision rule a run applies at the class prior it is asked for.

    Parameters
    ----------
    prior : str or None
        None (this input's ``default``), ``cartridge`` (``model_rule``, the model's rule
        fitted at cartridge prevalence; none if the model has none), ``balanced`` (no
        reweighting) or stated class frequencies (:func:`stated_prior`).
    class_names : sequence of str
        The model's classes, in output order.
    model_rule : DecisionRule or None
        The model's own rule (``spec.decision``).
    default : str
        The prior of this kind of input: ``cartridge`` for a cartridge, ``balanced`` for a
        crop set.

    Returns
    -------
    rule : DecisionRule
        The rule to apply.
    name : str
        The prior's name as ``summary.json`` records it: ``cartridge``, ``balanced`` (asked
        for, or ``cartridge`` of a model without a rule, which calls at its training prior)
        or ``class=p,...`` over every class.

    Raises
    ------
    InputError
        ``prior`` is neither a named prior nor class frequencies of these classes.
    """
    prior = default if prior is None else str(prior).strip()
    if prior == CARTRIDGE_PRIOR:
        rule = as_rule(model_rule)
        # A model without a rule (a lab's own, not fitted) calls at its training prior: the
        # record says so, or counts of two priors would read as comparable.
        return rule, CARTRIDGE_PRIOR if rule else BALANCED_PRIOR
    if prior == BALANCED_PRIOR:
        return DecisionRule.balanced(), BALANCED_PRIOR
    rule = DecisionRule.from_prior(prior, class_names)
    return rule, rule.name
