"""The guard's references: the leukocytes of the same frame (or sample) for the DNA content and
the nucleus's edge, and the training events for the out-of-distribution distance.

Leukocytes are the scan's own diploid, in-focus reference, as in DNA-content cytometry, so the
checks that read them hold at any stain strength and for a whole frame out of focus. The
out-of-distribution reference is stored in the model spec (``spec.metrics["guard"]``) by
:func:`fit_reference` from training or validation crops; a change to the measurements needs it
re-fitted (``scripts/refit_guard.py``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.inference.guard.measurements import measure
from ctcnet.inference.guard.rules import REFERENCE_CLASS, RULES, GuardRules


def leukocyte_reference(values: np.ndarray, called_names: np.ndarray,
                        groups: np.ndarray | None = None, rules: GuardRules = RULES
                        ) -> np.ndarray:
    """Per event, the median of ``values`` (a measurement: DAPI content, nucleus edge width)
    over the leukocyte calls of its group (one frame, or one sample of a crop set; default: all
    events are one group); NaN where the group has fewer than ``rules.min_reference_events``
    of them."""
    leukocyte = np.asarray(called_names, dtype=object) == REFERENCE_CLASS
    return group_median(values, leukocyte, groups, rules.min_reference_events)


def group_median(values: np.ndarray, included: np.ndarray, groups: np.ndarray | None,
                 min_events: int) -> np.ndarray:
    """Per event, the median of ``values`` over the ``included`` events of its group with a
    finite value (default: all events are one group); NaN where there are fewer than
    ``min_events`` of them."""
    values = np.asarray(values, np.float64)
    groups = np.zeros(len(values), np.int64) if groups is None else np.asarray(groups)
    keys, group_index = np.unique(groups, return_inverse=True)
    included = np.asarray(included, bool) & np.isfinite(values)
    # One grouped pass (a crop set may give every crop a sample of its own): the values sorted
    # within their groups, each group's median the mean of its middle one or two.
    kept, owner = values[included], group_index[included]
    order = np.lexsort((kept, owner))
    kept, owner = kept[order], owner[order]
    size = np.bincount(owner, minlength=len(keys))
    start = np.cumsum(size) - size
    enough = np.flatnonzero((size >= min_events) & (size > 0))  # (a group of none: NaN)
    low = kept[start[enough] + (size[enough] - 1) // 2]
    high = kept[start[enough] + size[enough] // 2]
    median = np.full(len(keys), np.nan)
    median[enough] = (low + high) / 2
    return median[group_index]


def group_shift(values: np.ndarray, groups: np.ndarray | None, min_events: int,
                min_share: float) -> np.ndarray:
    """Per event, the median of the whole-pixel shifts ``values`` over the finite ones of its
    group, rounded, where ``min_events`` or more are read and ``min_share`` of them at least
    lie off the same way as that median (a shift the group's events agree on); 0 elsewhere."""
    values = np.asarray(values, np.float64)
    median = np.rint(np.nan_to_num(group_median(values, np.ones(len(values), bool), groups,
                                                min_events)))
    finite = np.isfinite(values)
    groups = np.zeros(len(values), np.int64) if groups is None else np.asarray(groups)
    _, group_index = np.unique(groups, return_inverse=True)
    agree = np.bincount(group_index, (finite & (np.sign(values) == np.sign(median)) &
                                      (median != 0)).astype(np.float64))
    read = np.bincount(group_index, finite.astype(np.float64))
    share = agree / np.maximum(read, 1)
    return np.where(share[group_index] >= min_share, median, 0.0)


def _ood_features(m: pd.DataFrame, channels: int) -> np.ndarray:
    """The features of the distance: per channel the asinh peak and mean, and the log CK area."""
    cols = [f"peak_{i}" for i in range(channels)] + [f"mean_{i}" for i in range(channels)]
    area = np.log1p(np.nan_to_num(m["ck_area"].to_numpy(np.float64)))
    # Column by column: a pandas selection of several columns costs twice the copies.
    return np.column_stack([*(m[c].to_numpy(np.float64) for c in cols), area])


def fit_reference(crops: np.ndarray, targets: np.ndarray, spec,
                  quantile: float = 0.995) -> dict:
    """The out-of-distribution reference from training or validation crops (plain JSON).

    Class means and a pooled, slightly regularised covariance of the features; the threshold
    is the ``quantile`` of the distances of these crops to their own class.
    """
    feats = _ood_features(measure(crops, spec.panel, spec.pixel_size_um), spec.in_chans)
    targets = np.asarray(targets)
    means = np.stack([feats[targets == k].mean(axis=0) if (targets == k).any()
                      else feats.mean(axis=0) for k in range(spec.num_classes)])
    centred = feats - means[targets]
    cov = np.cov(centred, rowvar=False) + 1e-3 * np.eye(feats.shape[1])
    inv = np.linalg.inv(cov)
    dist = np.sqrt(np.einsum("ij,jk,ik->i", centred, inv, centred))
    return {"means": means.tolist(), "cov_inv": inv.tolist(),
            "threshold": float(np.quantile(dist, quantile)), "quantile": quantile,
            "n": int(len(targets))}


def pooled_reference(reference: dict, crops: np.ndarray, targets: np.ndarray, spec,
                     prior: float = 100.0) -> dict:
    """A model's out-of-distribution reference with a lab's labelled crops pooled in, so a
    fine-tuned model does not call its own instrument's look unusual.

    A prior of the base's training events weighing ``prior`` crops, spread evenly over the
    classes, updated by the lab's crops, each weighing 1: a class's mean moves toward the
    lab's crops of it as they outnumber its share of the prior, and the covariance takes in
    the lab's scatter round the means and the shift of the means. The base's part never
    drops out: a lab's crops of a few samples do not show how samples differ, and a class
    the lab labelled few or none of keeps (nearly) the base's mean. (Letting the lab's crops
    replace the prior once they were ``prior`` in number made a class the lab had 14 crops of
    unusual on every cluster of its next cartridge: 3 of 3 held.) The threshold stays the
    base's.
    """
    feats = _ood_features(measure(crops, spec.panel, spec.pixel_size_um), spec.in_chans)
    targets = np.asarray(targets)
    means = np.asarray(reference["means"], np.float64)
    base_cov = np.linalg.inv(np.asarray(reference["cov_inv"], np.float64))
    k = len(means)
    w_base = prior / k  # per class
    counts = np.bincount(targets, minlength=k).astype(np.float64)
    sums = np.zeros_like(means)
    np.add.at(sums, targets, feats)
    pooled_means = (w_base * means + sums) / (w_base + counts)[:, None]
    shift = means - pooled_means
    centred = feats - pooled_means[targets]
    scatter = w_base * k * base_cov + w_base * shift.T @ shift + centred.T @ centred
    cov = scatter / (w_base * k + len(targets))
    return {**reference, "means": pooled_means.tolist(), "cov_inv": np.linalg.inv(cov).tolist(),
            "pooled": {"lab_crops": int(len(targets)), "prior": float(prior)}}


def ood_distance(measurements: pd.DataFrame, called: np.ndarray, reference: dict,
                 channels: int) -> np.ndarray:
    """Mahalanobis distance of each event to the training events of its called class."""
    feats = _ood_features(measurements, channels)
    centred = feats - np.asarray(reference["means"])[called]
    inv = np.asarray(reference["cov_inv"])
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", centred, inv, centred), 0.0))
