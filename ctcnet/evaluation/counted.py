"""What a crop set's calls come to as ``ctcnet predict`` counts them: the marker guard holds its
flagged calls for a person, apart from the counts, so a validation reads, per class, the calls
held and the precision and recall of the calls counted, each with its Wilson 95 % interval and
its n; and what the markers changed of the network's calls, every change by its two classes.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ctcnet.evaluation.counts import share_interval


def counted_report(labels: np.ndarray, calls: np.ndarray, held: np.ndarray,
                   class_names: list[str]) -> dict:
    """Per class (true class indices ``labels``, call names ``calls``, ``held``: bool, the
    guard held the call): ``held`` calls, and the ``precision`` of the calls ``counted`` and
    the ``recall`` of the class among them, each ``{"value", "k", "n", "ci95"}`` (None
    where n is 0)."""
    labels = np.asarray(labels, np.int64)
    calls = np.asarray(calls, dtype=object)
    held = np.asarray(held, bool)
    truth = np.asarray(class_names, dtype=object)[labels]
    out = {}
    for name in class_names:
        called, true = calls == name, truth == name
        if not called.any() and not true.any():
            continue
        counted = called & ~held
        out[name] = {"held": int((called & held).sum()),
                     "precision": _share(int((counted & true).sum()), int(counted.sum())),
                     "recall": _share(int((counted & true).sum()), int(true.sum()))}
    return out


def _share(k: int, n: int) -> dict:
    return {"value": k / n if n else None, "k": k, "n": n, "ci95": share_interval(k, n)}


def marker_changes(network_calls: np.ndarray, calls: np.ndarray) -> dict:
    """The network's calls the markers changed: how many, the ``ctc`` and ``wbc`` calls they
    made, and every change as ``"from->to": n``."""
    network_calls = np.asarray(network_calls, dtype=object)
    calls = np.asarray(calls, dtype=object)
    changed = calls != network_calls
    pairs = Counter(f"{a}->{b}" for a, b in zip(network_calls[changed], calls[changed]))
    return {"changed": int(changed.sum()),
            "to_ctc": int((changed & (calls == "ctc")).sum()),
            "to_wbc": int((changed & (calls == "wbc")).sum()),
            "by_change": dict(sorted(pairs.items()))}


def by_sample(labels: np.ndarray, calls: np.ndarray, sample_ids, class_names: list[str]
              ) -> dict:
    """Per sample (patient): its crops, the accuracy of the calls, and each class's recall
    (``{"k", "n"}``): one patient's crops can hold every error of a set."""
    labels = np.asarray(labels, np.int64)
    truth = np.asarray(class_names, dtype=object)[labels]
    calls = np.asarray(calls, dtype=object)
    samples = np.asarray(sample_ids, dtype=object)
    out = {}
    for sample in sorted(set(samples.tolist()), key=str):
        at = samples == sample
        right = calls[at] == truth[at]
        out[str(sample)] = {
            "n": int(at.sum()), "accuracy": float(right.mean()),
            "recall": {name: {"k": int((right & (truth[at] == name)).sum()),
                              "n": int((truth[at] == name).sum())}
                       for name in class_names if (truth[at] == name).any()}}
    return out
