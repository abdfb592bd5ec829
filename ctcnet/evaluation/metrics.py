"""Classification metrics for a labelled evaluation: pure numpy (plus sklearn for the AUCs).

Everything takes integer labels ``y_true`` (N,) indexing ``class_names`` and class
probabilities ``proba`` (N, K). Two rules matter for a dataset that holds only some of the
model's classes (a lab's set of CTCs and WBCs, say):

* macro-F1 averages the classes **present in y_true** only, because an absent class has no
  recall to measure;
* predictions into an absent class still count as errors: they lower the recall of the true
  class and appear in the confusion matrix and in ``absent_predicted``;
* the absent classes are named (``absent_classes``): a macro-F1 over the present classes says
  nothing of how the absent ones are told apart (over one class it is that class's F1 alone).

Undefined ratios (0/0) are reported as 0.0 where sklearn's ``zero_division=0`` would, and as
``None`` (JSON null) where the number does not exist at all (an AUC without negatives).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

DEFAULT_ECE_BINS = 15


def _check(y_true, proba) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"proba must be (N, K) with N={y.shape[0]}, got {p.shape}")
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1]}), got {y.min()}..{y.max()}")
    return y, p


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0 (sklearn's zero_division=0)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    y_true = np.asarray(y_true, np.int64).ravel()
    y_pred = np.asarray(y_pred, np.int64).ravel()
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def precision_recall_f1(confusion: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-class precision, recall, F1 and support from a confusion matrix."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return precision, recall, f1, support.astype(np.int64)


def macro_f1(y_true, y_pred, num_classes: int) -> float:
    """Mean F1 over the classes present in y_true; calls into absent classes are errors."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    _, _, f1, support = precision_recall_f1(cm)
    present = support > 0
    return float(f1[present].mean()) if present.any() else 0.0


def reliability_bins(proba, y_true, n_bins: int = DEFAULT_ECE_BINS) -> dict:
    """Top-label calibration per equal-width confidence bin: count, mean confidence, accuracy."""
    y, p = _check(y_true, proba)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # Bin i holds confidences in (edge_i, edge_i+1]; confidence 0 falls into the first bin.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(np.int64)
    mean_conf = _ratio(np.bincount(which, confidence, n_bins), count)
    accuracy = _ratio(np.bincount(which, correct, n_bins), count)
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": accuracy}


def expected_calibration_error(proba, y_true, n_bins: int = DEFAULT_ECE_BINS) -> float:
    """Top-label ECE: sum over bins of |accuracy - confidence| weighted by the bin's share."""
    bins = reliability_bins(proba, y_true, n_bins)
    total = bins["count"].sum()
    if total == 0:
        return 0.0
    gap = np.abs(bins["accuracy"] - bins["confidence"])
    return float((gap * bins["count"]).sum() / total)


def sensitivity_at_specificity(scores, is_positive, specificity: float) -> dict:
    """Best sensitivity whose false-positive rate stays within ``1 - specificity``.

    An event is called positive when ``score >= threshold``. The threshold sits just above the
    (k+1)-th highest negative score, k = floor((1 - specificity) * negatives), so at most k
    negatives pass; ties at that score are all kept out. Returns sensitivity, threshold, the
    specificity actually reached and the counts (with 100 negatives, 99.8 % allows none).
    """
    scores = np.asarray(scores, np.float64).ravel()
    positive = np.asarray(is_positive, bool).ravel()
    if scores.shape != positive.shape:
        raise ValueError("scores and is_positive must have the same length")
    if not 0.0 < specificity <= 1.0:
        raise ValueError(f"specificity must lie in (0, 1], got {specificity}")
    pos, neg = scores[positive], scores[~positive]
    if pos.size == 0 or neg.size == 0:
        return {"sensitivity": None, "threshold": None, "specificity": None,
                "positives": int(pos.size), "negatives": int(neg.size)}
    allowed = int(np.floor((1.0 - specificity) * neg.size + 1e-9))
    if allowed >= neg.size:
        threshold = -np.inf
    else:
        kth_highest = np.sort(neg)[::-1][allowed]
        threshold = float(np.nextafter(kth_highest, np.inf))
    return {"sensitivity": float((pos >= threshold).mean()),
            "threshold": float(threshold),
            "specificity": float((neg < threshold).mean()),
            "positives": int(pos.size), "negatives": int(neg.size)}


def one_vs_rest_auc(y_true, proba, class_names: Sequence[str]) -> dict:
    """ROC AUC and PR AUC (average precision) of each class against the rest.

    A class without positives or without negatives in y_true has no AUC (None).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, p = _check(y_true, proba)
    roc, pr = {}, {}
    for k, name in enumerate(class_names):
        positive = y == k
        if positive.all() or not positive.any():
            roc[name] = pr[name] = None
            continue
        roc[name] = float(roc_auc_score(positive, p[:, k]))
        pr[name] = float(average_precision_score(positive, p[:, k]))
    return {"roc_auc": roc, "pr_auc": pr}


def classification_report(y_true, proba, class_names: Sequence[str],
                          n_bins: int = DEFAULT_ECE_BINS, with_auc: bool = True) -> dict:
    """The headline numbers of an evaluation, JSON-ready.

    Keys: ``accuracy``, ``macro_f1`` (classes present in y_true), ``per_class`` {name:
    {precision, recall, f1, support}} for the present classes, ``absent_classes`` (the
    classes of ``class_names`` y_true lacks), ``absent_predicted`` {absent class: number of
    calls into it}, ``confusion`` (K x K lists, rows true, columns predicted,
    over all ``class_names``), ``class_names``, ``ece``, ``n``, and with ``with_auc`` the
    one-vs-rest ``roc_auc`` / ``pr_auc`` per class.
    """
    y, p = _check(y_true, proba)
    names = list(class_names)
    if p.shape[1] != len(names):
        raise ValueError(f"proba has {p.shape[1]} columns but {len(names)} class names")
    pred = p.argmax(axis=1)
    cm = confusion_matrix(y, pred, len(names))
    precision, recall, f1, support = precision_recall_f1(cm)
    present = support > 0
    report = {
        "n": int(y.size),
        "class_names": names,
        "accuracy": float((pred == y).mean()) if y.size else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": {names[k]: {"precision": float(precision[k]), "recall": float(recall[k]),
                                 "f1": float(f1[k]), "support": int(support[k])}
                      for k in np.flatnonzero(present)},
        "absent_classes": [names[k] for k in np.flatnonzero(~present)],
        "absent_predicted": {names[k]: int(cm[:, k].sum()) for k in np.flatnonzero(~present)},
        "confusion": cm.tolist(),
        "ece": expected_calibration_error(p, y, n_bins),
    }
    if with_auc:
        report.update(one_vs_rest_auc(y, p, names))
    return report


def recall_by_group(y_true, y_pred, groups: Sequence[str]) -> dict:
    """Recall within each group (e.g. simulator subtype ``ctc_dim``): {group: {recall, n}}."""
    y_true = np.asarray(y_true).ravel()
    y_pred = np.asarray(y_pred).ravel()
    groups = np.asarray(groups).ravel()
    out = {}
    for g in np.unique(groups):
        sel = groups == g
        out[str(g)] = {"recall": float((y_pred[sel] == y_true[sel]).mean()), "n": int(sel.sum())}
    return out
