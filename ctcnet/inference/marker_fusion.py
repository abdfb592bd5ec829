"""Marker fusion: the network's probabilities and the guard's marker measurements read together
into one call for a crop set (pure numpy at run time; no torch, so it runs beside ONNX too).

A network trained on simulated cells learns whatever separates the classes there, shapes and
sizes included; the CellSearch definition reads the markers (CK positive, CD45 negative, a
nucleus of its own, an intact cell). The fusion is a multinomial logistic regression over the
network's log-probabilities and a few marker measurements of the guard
(:func:`ctcnet.inference.guard.measure`: CK peak and area, DAPI inside the CK area and its shape
of its own, CK's shape of its own, CD45 over and exclusion markers round the CK area), fitted on
simulated crop sets whose cells are drawn in every class's shape
(``scripts/fit_marker_fusion.py``), so that where the network leans on a cell's look the
markers can outweigh it, and where the markers are ambiguous (a tdEV's CK with a leak of DNA,
a cluster's attached leukocyte) the network still speaks. Every measurement enters through
``arcsinh`` (noise units span four orders of magnitude between a 16-bit scan and an 8-bit
export) with a flag where it could not be measured (no CK area, a clipped one).

The fitted weights travel in the model spec (``spec.metrics["marker_fusion"]``, a plain
mapping, so the checkpoint and the ONNX metadata carry it); a model without one makes its crop
set calls with the guard's marker rule instead (:func:`ctcnet.inference.guard.marker_calls`).
"""

from __future__ import annotations

import numpy as np

# The guard's measurements the fusion reads (columns of ``guard.measure``).
MEASURES = ("ck_peak", "ck_area", "dna_in_ck", "dna_own_structure", "ck_own_structure",
            "cd45_over_ck", "cd45_core", "exclusion_around_ck")
# Probabilities under this are read as this. The network's certainty is no better than the
# simulation it was trained on: on cells of a look it never saw (hand-drawn composites) it
# gives a thin-rim CTC p(ctc) 1e-6 and less, which, read as it is, no marker could outweigh.
LEAST_PROBA = 1e-3
FORMAT = 1
# Where a model keeps its cartridge fusion (the same format, fitted on a cartridge's events:
# :mod:`ctcnet.inference.scan_fusion`) and what it may decide (its ``role``): the calls (the
# posterior the cartridge's rule acts on), or only which events the review band shows (the
# calls stay the network's). Here, beside the crop sets' fusion, because the torch-free ONNX
# runtime reads them too.
SCAN_FUSION = "scan_fusion"
SCAN_FUSION_ROLES = ("calls", "review")


def feature_names(class_names) -> list[str]:
    """The fusion's inputs, in order: log p per class, then per measure its arcsinh and
    whether it was missing."""
    names = [f"log_p_{c}" for c in class_names]
    for m in MEASURES:
        names += [f"asinh_{m}", f"missing_{m}"]
    return names


def fusion_features(proba: np.ndarray, measured) -> np.ndarray:
    """(N, F) float64 inputs from (N, K) probabilities and the guard's measurement table."""
    proba = np.asarray(proba, np.float64)
    columns = [np.log(np.clip(proba, LEAST_PROBA, 1.0))]
    for m in MEASURES:
        values = np.asarray(measured[m], np.float64)
        missing = ~np.isfinite(values)
        columns.append(np.arcsinh(np.where(missing, 0.0, values))[:, None])
        columns.append(missing.astype(np.float64)[:, None])
    return np.concatenate(columns, axis=1)


def fit_fusion(proba: np.ndarray, measured, targets: np.ndarray, class_names,
               strength: float = 1.0, fitted_on: dict | None = None,
               class_weight: str | None = None) -> dict:
    """Fit the fusion on labelled crops (``targets``: class indices) and return it as the plain
    mapping the spec stores. ``strength``: the inverse L2 penalty on standardised inputs;
    ``class_weight``: ``"balanced"`` weighs each class alike (events of a cartridge, where
    leukocytes and debris outnumber CTCs, read at the network's balanced training prior).
    Needs scikit-learn (training side only: the ``all`` extra)."""
    from sklearn.linear_model import LogisticRegression  # training side, not the runtime

    x = fusion_features(proba, measured)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0  # a constant input (a measure never missing) carries nothing
    targets = np.asarray(targets)
    if set(np.unique(targets)) != set(range(len(class_names))):
        raise ValueError("the fusion needs crops of every class to be fitted")
    model = LogisticRegression(C=strength, max_iter=5000, class_weight=class_weight)
    model.fit((x - mean) / scale, targets)
    return {"format": FORMAT, "classes": list(class_names),
            "features": feature_names(class_names),
            "mean": mean.tolist(), "scale": scale.tolist(),
            "weights": model.coef_.tolist(), "bias": model.intercept_.tolist(),
            "fitted_on": fitted_on or {}}


def marker_fusion_of(spec) -> dict | None:
    """The model's marker fusion (``spec.metrics["marker_fusion"]``), if it carries one."""
    return spec.metrics.get("marker_fusion") if isinstance(spec.metrics, dict) else None


def scan_fusion_of(spec) -> dict | None:
    """The model's cartridge fusion (``spec.metrics["scan_fusion"]``,
    :mod:`ctcnet.inference.scan_fusion`), if it carries one."""
    metrics = spec.metrics if isinstance(spec.metrics, dict) else {}
    return metrics.get(SCAN_FUSION) or None


def scan_fusion_role(spec) -> str | None:
    """What the model's cartridge fusion decides (:data:`SCAN_FUSION_ROLES`), None without
    one."""
    fusion = scan_fusion_of(spec)
    return None if fusion is None else fusion.get("role", "calls")


def check_fusion(fusion: dict, class_names) -> None:
    """Refuse a fusion fitted for other classes or in another format (ValueError)."""
    if list(fusion["classes"]) != list(class_names) or fusion.get("format") != FORMAT:
        raise ValueError("the marker fusion was fitted for other classes or another format: "
                         f"{fusion.get('classes')} vs {list(class_names)}")


def fused_proba(fusion: dict, proba: np.ndarray, measured, class_names) -> np.ndarray:
    """(N, K) class probabilities of the fusion for the network's ``proba`` and the guard's
    measurements of the same crops."""
    check_fusion(fusion, class_names)
    x = (fusion_features(proba, measured) - np.asarray(fusion["mean"])) / \
        np.asarray(fusion["scale"])
    logits = x @ np.asarray(fusion["weights"]).T + np.asarray(fusion["bias"])
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)
