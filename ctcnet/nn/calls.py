"""From class probabilities to calls: the one rule every path applies (numpy only, no torch).

The call is the most probable class; it goes to human review when its probability is below the
model's review threshold. A row that is not a finite distribution (a NaN or infinite crop, a
broken model) is **no call**: its class is :data:`FAILED_CLASS`, its confidence NaN, and it is
always reviewed. Without this rule ``argmax`` of a NaN row picks class 0 (``ctc``) and
``NaN < threshold`` is false, so a broken number would become a confident, unreviewed CTC.
Used by slide-scale predict and by the torch-free ONNX runtime, so a port has one rule to copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

FAILED_CLASS = "failed"


def finite_crops(raw: np.ndarray) -> np.ndarray:
    """Bool (N,): True where every pixel of the crop is finite (integer crops always are)."""
    raw = np.asarray(raw)
    if not np.issubdtype(raw.dtype, np.floating):
        return np.ones(len(raw), bool)
    return np.isfinite(raw.reshape(len(raw), -1)).all(axis=1)


def calls_from_proba(proba: np.ndarray, class_names: Sequence[str], review_threshold: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(called class names, confidence, review flag, failed flag), one per row of ``proba``."""
    proba = np.asarray(proba, dtype=np.float32).reshape(-1, len(class_names))
    failed = ~np.isfinite(proba).all(axis=1)
    top = np.nan_to_num(proba, nan=-1.0).argmax(axis=1)
    names = np.asarray(list(class_names), dtype=object)
    called = np.where(failed, FAILED_CLASS, names[top] if len(proba) else names[:0])
    confidence = np.where(failed, np.nan, proba[np.arange(len(proba)), top]).astype(np.float32)
    review = failed | (np.nan_to_num(confidence, nan=0.0) < review_threshold)
    return called.astype(object), confidence, review, failed
