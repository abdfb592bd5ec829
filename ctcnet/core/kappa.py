"""Cohen's kappa: agreement of two labellings of the same items beyond chance (pure Python), for
two readers of one sample (:mod:`ctcnet.review.agreement`) and two methods' calls at a
cut-off (:func:`ctcnet.evaluation.counts.cutoff_agreement`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa of two readers' labels of the same items (``first[i]`` and ``second[i]``
    label item i): (observed - chance agreement) / (1 - chance agreement), chance from each
    reader's own label frequencies. None when it is undefined: no items, or both readers
    gave one and the same label throughout (chance agreement 1)."""
    if len(first) != len(second):
        raise ValueError("the two readings must label the same items")
    n = len(first)
    if not n:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    left, right = Counter(first), Counter(second)
    chance = sum(left[k] * right[k] for k in left) / (n * n)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1.0 - chance)
