"""From class probabilities to calls: the one rule every path applies (numpy only, no torch).

The call is the most probable class; it goes to human review when its probability is below the
model's review threshold. A row that is not a finite distribution (a NaN or infinite crop, a
broken model) is **no call**: its class is :data:`FAILED_CLASS`, its confidence NaN, and it is
always reviewed. Without this rule ``argmax`` of a NaN row picks class 0 (``ctc``) and
``NaN < threshold`` is false, so a broken number would become a confident, unreviewed CTC.
Used by slide-scale predict and by the torch-free ONNX runtime, so a port has one rule to copy.

**Deployment prevalence.** The network is trained on balanced classes, so its probabilities
are posteriors under equal priors. A cartridge holds debris ~1,000x CTCs: the Bayes call there
weighs each probability by the ratio of deployment to training prior. A model's spec may carry
that weighting as ``spec.decision``::

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

import math
from collections.abc import Sequence

import numpy as np

from ctcnet.errors import InputError

FAILED_CLASS = "failed"
DECISION_RULES = ("prior_shift",)
# Named priors (see the module docstring); anything else given as a prior is stated frequencies.
CARTRIDGE_PRIOR = "cartridge"
BALANCED_PRIOR = "balanced"


def finite_crops(raw: np.ndarray) -> np.ndarray:
    """Bool (N,): True where every pixel of the crop is finite (integer crops always are)."""
    raw = np.asarray(raw)
    if not np.issubdtype(raw.dtype, np.floating):
        return np.ones(len(raw), bool)
    return np.isfinite(raw.reshape(len(raw), -1)).all(axis=1)


def check_decision(decision: dict | None, class_names: Sequence[str],
                   source: str | None = None) -> None:
    """Refuse a decision rule that names an unknown rule or class or holds a non-finite
    weight (it would silently call nothing, or everything, of a class)."""
    if not decision:
        return
    if not isinstance(decision, dict) or decision.get("rule") not in DECISION_RULES:
        raise InputError(f"model spec: decision rule {decision!r} is not one of "
                         f"{DECISION_RULES}", source)
    weights = decision.get("log_weights", {})
    if not isinstance(weights, dict):
        raise InputError("model spec: decision log_weights must map class names to numbers",
                         source)
    for name, value in weights.items():
        if name not in class_names:
            raise InputError(f"model spec: decision weight for unknown class {name!r} "
                             f"(classes: {list(class_names)})", source)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"model spec: decision weight of {name!r} is {value!r}, not a "
                             "finite number", source)


def decision_weights(decision: dict | None) -> dict[str, float]:
    """A decision rule's log weights by class name (a copy; empty: no rule)."""
    return dict((decision or {}).get("log_weights", {}))


def log_weights(decision: dict | None, class_names: Sequence[str]) -> np.ndarray:
    """(K,) log weights of a decision rule (zeros: the plain most probable class)."""
    weights = decision_weights(decision)
    return np.array([float(weights.get(n, 0.0)) for n in class_names], np.float64)


def deployment_proba(proba: np.ndarray, class_names: Sequence[str],
                     decision: dict | None = None) -> np.ndarray:
    """Probabilities reweighted by the decision rule's log weights and renormalised (the
    posterior at deployment prevalence); ``proba`` itself when there is no rule."""
    proba = np.asarray(proba, dtype=np.float32).reshape(-1, len(class_names))
    w = log_weights(decision, class_names)
    if not w.any():
        return proba
    with np.errstate(invalid="ignore", over="ignore"):
        shifted = proba.astype(np.float64) * np.exp(w - w.max())[None, :]
        total = shifted.sum(axis=1, keepdims=True)
        out = shifted / np.where(total > 0, total, 1.0)
    # A row of zeros stays zeros; NaN and inf stay non-finite, so the row still fails below.
    return out.astype(np.float32)


def top_class(proba: np.ndarray, class_names: Sequence[str],
              decision: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(index of the called class, the deployment posterior) per row: the call the decision
    rule makes (a non-finite row's index is arbitrary; :func:`calls_from_proba` fails it)."""
    proba = deployment_proba(proba, class_names, decision)
    return np.nan_to_num(proba, nan=-1.0).argmax(axis=1), proba


def calls_from_proba(proba: np.ndarray, class_names: Sequence[str], review_threshold: float,
                     decision: dict | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(called class names, confidence, review flag, failed flag), one per row of ``proba``;
    ``decision`` is the model's ``spec.decision`` (deployment prevalence), if any."""
    proba = np.asarray(proba, dtype=np.float32).reshape(-1, len(class_names))
    failed = ~np.isfinite(proba).all(axis=1)
    top, proba = top_class(proba, class_names, decision)
    names = np.asarray(list(class_names), dtype=object)
    called = np.where(failed, FAILED_CLASS, names[top] if len(proba) else names[:0])
    confidence = np.where(failed, np.nan, proba[np.arange(len(proba)), top]).astype(np.float32)
    review = failed | (np.nan_to_num(confidence, nan=0.0) < review_threshold)
    return called.astype(object), confidence, review, failed


def stated_prior(text: str, class_names: Sequence[str]) -> dict[str, float]:
    """Class frequencies from ``"ctc=0.01,cluster=0.005"``: every class, in ``class_names``
    order; classes not named share what the named ones leave, equally. Each must be > 0 (a
    class of prior 0 could never be called) and the named ones may not exceed 1."""
    stated: dict[str, float] = {}
    for item in str(text).split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(f"--prior {text!r}: give {CARTRIDGE_PRIOR}, {BALANCED_PRIOR} or "
                             "class frequencies as class=p pairs, e.g. ctc=0.01,cluster=0.005")
        if name not in class_names:
            raise InputError(f"--prior: {name!r} is not a class of the model "
                             f"{list(class_names)}")
        try:
            p = float(value)
        except ValueError:
            raise InputError(f"--prior: {name}={value!r} is not a number") from None
        if not (math.isfinite(p) and 0 < p <= 1):
            raise InputError(f"--prior: {name}={value} must be above 0 and at most 1")
        stated[name] = p
    rest = [n for n in class_names if n not in stated]
    left = 1.0 - sum(stated.values())
    if left < -1e-6 or (rest and left <= 1e-12):  # 1e-6: frequencies rounded when written
        raise InputError(f"--prior: the stated frequencies sum to {sum(stated.values()):.6g}; "
                         "they may not exceed 1" + (f", and must leave some for {rest}"
                                                    if rest else ""))
    if rest:
        return {n: stated[n] if n in stated else left / len(rest) for n in class_names}
    # Every class stated: read as relative frequencies (rounded ones need not sum to 1).
    total = sum(stated.values())
    return {n: stated[n] / total for n in class_names}


def prior_rule(prior: str | None, class_names: Sequence[str], model_rule: dict | None,
               default: str) -> tuple[dict, str]:
    """(decision rule to apply, the prior's name as ``summary.json`` records it).

    ``prior``: None (this input's ``default``: ``cartridge`` for a cartridge, ``balanced`` for
    a crop set), ``cartridge`` (``model_rule``, the model's rule fitted at cartridge prevalence;
    none if the model has none), ``balanced`` (no reweighting) or stated class frequencies
    (:func:`stated_prior`), recorded as ``class=p,...`` over every class.
    """
    prior = default if prior is None else str(prior).strip()
    if prior == CARTRIDGE_PRIOR:
        return dict(model_rule or {}), CARTRIDGE_PRIOR
    if prior == BALANCED_PRIOR:
        return {}, BALANCED_PRIOR
    freq = stated_prior(prior, class_names)
    k = len(class_names)
    rule = {"rule": "prior_shift",
            "log_weights": {n: math.log(p * k) for n, p in freq.items()},
            "fitted": {"stated_prior": freq}}
    return rule, ",".join(f"{n}={p:.6g}" for n, p in freq.items())
