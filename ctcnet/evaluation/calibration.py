"""Calibration: a softmax temperature fitted on validation data, and the human-review band.

* :func:`fit_temperature` finds the single temperature T that minimises the negative
  log-likelihood of ``softmax(logits / T)`` on held-out data (Guo et al. 2017). It changes no
  decision (argmax is unchanged), only how far the probabilities can be trusted; it is stored in
  the model spec (``spec.temperature``) and applied by ``CTCClassifier.predict_proba`` and the
  exported ONNX graph.
* :func:`review_threshold_for_precision` picks the lowest top-probability threshold such that
  the calls at or above it (the automatic calls) are at least ``target`` precise; events below
  it form the review band a person looks at (``spec.review_threshold``).
"""

from __future__ import annotations

import numpy as np

from ctcnet.errors import InputError
from ctcnet.evaluation.metrics import expected_calibration_error
from ctcnet.nn.calls import COUNTED_CLASSES, calls_from_proba, deployment_proba

# Temperatures outside this range mean broken logits, not miscalibration.
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
# The smallest set calibration is fitted on. The review band is cut where the automatic calls
# reach 99 % precision, which only 100 crops or more can tell from 100 % (one error in 100);
# on fewer, a run of right calls sets the threshold and the temperature runs to its lower
# bound (3 held-out crops gave T 0.25: every probability near 0 or 1). And each class the
# crops hold must be there, with a few crops: a class left out is called under a temperature
# and a threshold fitted without it.
MIN_CALIBRATION_CROPS = 100
MIN_CALIBRATION_PER_CLASS = 5


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Numerically stable softmax over the last axis of logits / temperature."""
    z = np.asarray(logits, np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 100,
                    weights: np.ndarray | None = None) -> float:
    """Temperature minimising the NLL of softmax(logits / T) on (validation) labels, by LBFGS;
    ``weights``: one per crop (a pooled fit, :mod:`ctcnet.evaluation.recalibration`)."""
    import torch

    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
    if z.ndim != 2 or z.shape[0] != y.shape[0] or z.shape[0] == 0:
        raise ValueError(f"need (N, K) logits and N labels, got {tuple(z.shape)} and "
                         f"{tuple(y.shape)}")
    w = None if weights is None else torch.as_tensor(np.asarray(weights), dtype=torch.float64)
    # Optimise log T: positive by construction and better conditioned than T itself.
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        if w is None:
            loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        else:
            each = torch.nn.functional.cross_entropy(z / log_t.exp(), y, reduction="none")
            loss = (each * w).sum() / w.sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    t = float(log_t.detach().exp())
    if not np.isfinite(t):
        return 1.0
    return float(np.clip(t, MIN_TEMPERATURE, MAX_TEMPERATURE))


def calibration_summary(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """ECE and NLL before and after applying ``temperature``."""
    labels = np.asarray(labels, np.int64)
    out = {"temperature": float(temperature)}
    for key, t in (("uncalibrated", 1.0), ("calibrated", temperature)):
        p = softmax(logits, t)
        nll = -np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, None)).mean()
        out[key] = {"ece": expected_calibration_error(p, labels), "nll": float(nll)}
    return out


def review_threshold_for_precision(proba: np.ndarray, labels: np.ndarray,
                                   target: float = 0.99,
                                   weights: np.ndarray | None = None) -> float:
    """Lowest top-probability threshold whose automatic calls are at least ``target`` precise.

    Events are sorted by top probability, most confident first; the automatic set is the
    longest such prefix (cut only between distinct probabilities) whose accuracy reaches the
    target. Returns its lowest probability (calls with ``top >= threshold`` are automatic), or
    a value above every probability when no prefix is precise enough (everything is reviewed).
    ``weights`` (one per event) weigh each call in the precision (a pooled fit).
    """
    proba = np.asarray(proba, np.float64)
    labels = np.asarray(labels, np.int64)
    top = proba.max(axis=1)
    correct = proba.argmax(axis=1) == labels
    order = np.argsort(-top, kind="stable")
    top, correct = top[order], correct[order]
    w = np.ones(len(top)) if weights is None else np.asarray(weights, np.float64)[order]
    precision = np.cumsum(correct * w) / np.maximum(np.cumsum(w), 1e-300)
    # A cut is only possible after the last of a group of equal probabilities.
    at_group_end = np.r_[top[1:] != top[:-1], True]
    ok = np.flatnonzero((precision >= target) & at_group_end)
    if ok.size == 0:
        # Above every probability as deployment compares them too, in float32: a float64 step
        # past a float32 probability rounds back onto it there, and its call went unreviewed.
        return float(np.nextafter(np.float32(top[0]), np.float32(np.inf))) if top.size else 1.0
    return float(top[ok[-1]])


def missed_counted(truth: np.ndarray, called: np.ndarray, shown: np.ndarray,
                   counted=COUNTED_CLASSES) -> tuple[int, int]:
    """(cells of the ``counted`` classes, those neither counted nor shown): labelled
    ``truth`` and ``called`` class names per crop, ``shown`` whether each went to a person."""
    cells = np.isin(truth, list(counted))
    return int(cells.sum()), int((cells & ~np.isin(called, list(counted)) & ~shown).sum())


def review_band(proba: np.ndarray, labels: np.ndarray | None, threshold: float,
                class_names: list[str] | None = None, decision=None,
                counted=COUNTED_CLASSES) -> dict:
    """What a review threshold does to calibrated probabilities ``proba``, at ``decision``'s
    prior (None: as given): the share of calls under it (``reviewed``), the precision of the
    calls over it (per class with ``class_names``) and, with ``class_names``, the share
    ``ctcnet predict`` shows for the network's doubt (``shown``: by the one rule,
    :func:`ctcnet.nn.calls.calls_from_proba`, with ``decision``'s band; the guard's flags
    aside). Predict queues only doubt that could change a count of the ``counted`` classes
    (the model's reported ones: ctc and cluster, or a lab's own), so ``shown`` is the smaller
    but for a band's calls."""
    proba = np.asarray(proba, np.float64)
    shown = None
    if class_names is not None:
        shown = calls_from_proba(proba, class_names, threshold, decision, counted=counted)[2]
        proba = deployment_proba(proba, class_names, decision)
    top = proba.max(axis=1)
    pred = proba.argmax(axis=1)
    auto = top >= threshold
    out = {"threshold": float(threshold), "n": int(len(top)),
           "reviewed": int((~auto).sum()), "reviewed_fraction": float((~auto).mean())
           if len(top) else 0.0}
    if shown is not None:
        out.update(shown=int(shown.sum()),
                   shown_fraction=float(shown.mean()) if len(shown) else 0.0)
    if labels is None:
        return out
    labels = np.asarray(labels, np.int64)
    right = pred == labels
    out["auto_precision"] = float(right[auto].mean()) if auto.any() else None
    out["auto_calls"], out["auto_right"] = int(auto.sum()), int(right[auto].sum())
    if shown is not None:  # the figure a card's guarantee states, read on these crops
        names = np.asarray(class_names, dtype=object)
        out["counted_cells"], out["counted_missed"] = missed_counted(
            names[labels], names[pred], shown, counted)
        out["counted_classes"] = [c for c in counted if c in names]
    if class_names is not None:
        per_class = {}
        for k, name in enumerate(class_names):
            calls = auto & (pred == k)
            if calls.any():
                per_class[name] = {"auto_calls": int(calls.sum()),
                                   "precision": float(right[calls].mean())}
        out["auto_per_class"] = per_class
    return out


def calibration_shortfall(counts: dict[str, int], expected: list[str] | None = None
                          ) -> str | None:
    """Why crops of these per-class ``counts`` are too few to calibrate on (None when they are
    enough): fewer than :data:`MIN_CALIBRATION_CROPS`, fewer than two classes, or fewer than
    :data:`MIN_CALIBRATION_PER_CLASS` of a class of ``expected`` (default: the classes counted;
    a caller passes the classes its whole data set holds)."""
    held = {name: int(n) for name, n in counts.items() if n}
    wanted = list(held) if expected is None else list(expected)
    short = [name for name in wanted if held.get(name, 0) < MIN_CALIBRATION_PER_CLASS]
    total = sum(held.values())
    if len(held) >= 2 and total >= MIN_CALIBRATION_CROPS and not short:
        return None
    have = ", ".join(f"{name} {n}" for name, n in held.items()) or "none"
    each = f"of {', '.join(wanted)}" if len(wanted) > 1 else "class they hold"
    return (f"calibration needs at least {MIN_CALIBRATION_CROPS} crops of at least two "
            f"classes, {MIN_CALIBRATION_PER_CLASS} or more of each {each}; these are "
            f"{total} ({have})")


def calibrate_spec(spec, logits: np.ndarray, labels: np.ndarray, target: float = 0.99):
    """The spec with temperature and review threshold fitted on validation logits and labels.

    The review threshold is chosen on the calibrated probabilities, so that automatic calls
    (top probability at or above it) are at least ``target`` precise on this validation set.
    The fit's numbers go to ``spec.metrics["calibration"]``. Only a set of one class is
    refused here; the commands that calibrate on a user's crops (``evaluate --calibrate-on``,
    ``finetune``) first ask :func:`calibration_shortfall` whether they are enough.
    """
    present = np.unique(np.asarray(labels))
    if len(present) < 2:
        # With one class every temperature towards 0 looks better and every threshold is 100 %
        # precise: the fit would save nonsense (T 0.067, threshold 1.0) as if it were calibrated.
        names = [spec.class_names[i] for i in present]
        raise InputError(f"calibration needs validation crops of at least two classes; these "
                         f"hold only {names or 'none'}")
    temperature, threshold = fitted_calibration(logits, labels, target)
    summary = calibration_record(logits, labels, temperature, threshold, target,
                                 spec.class_names, spec.taxonomy.reported_classes())
    metrics = {**spec.metrics, "calibration": summary}
    return spec.replace(temperature=temperature, review_threshold=threshold, metrics=metrics)


def fitted_calibration(logits: np.ndarray, labels: np.ndarray, target: float,
                       weights: np.ndarray | None = None) -> tuple[float, float]:
    """(temperature, review threshold) fitted on ``logits`` and ``labels`` (each crop weighing
    ``weights``, 1 by default): the threshold for ``target`` precision of the automatic calls
    on the calibrated probabilities."""
    temperature = fit_temperature(logits, labels, weights=weights)
    if not (np.isfinite(temperature) and temperature > 0):
        raise InputError(f"calibration failed: fitted temperature {temperature} (non-finite "
                         "model outputs?)")
    threshold = review_threshold_for_precision(softmax(logits, temperature), labels, target,
                                               weights=weights)
    return temperature, threshold


def calibration_record(logits: np.ndarray, labels: np.ndarray, temperature: float,
                       threshold: float, target: float, class_names,
                       counted=COUNTED_CLASSES) -> dict:
    """What ``spec.metrics["calibration"]`` records of a temperature and threshold, read on
    ``logits`` and ``labels`` (:func:`calibration_summary`, the review band they give, at the
    balanced prior: as a crop folder is read; ``counted``: the model's reported classes)."""
    summary = calibration_summary(logits, labels, temperature)
    summary["review"] = review_band(softmax(logits, temperature), labels, threshold,
                                    class_names, counted=counted)
    summary["review"]["target_precision"] = float(target)
    return summary
