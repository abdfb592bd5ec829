"""How an event's text columns become numbers in its exports: class names by code, the guard's
flags by bit, the same from sample to sample."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ctcnet.exports.sample_review import REVIEWER_CALL
from ctcnet.inference.cluster_parts import HELD_REPEATS
from ctcnet.inference.counts import REJECTED
from ctcnet.inference.guard import FLAGS
from ctcnet.nn.calls import FAILED_CLASS


@dataclass
class EventCodes:
    """How the text columns become numbers: class names by code, guard flags by bit."""

    classes: list[str]
    guard_flags: list[str]

    def class_code(self, column: pd.Series) -> np.ndarray:
        """Each call as its class code (NaN for a name not in ``classes``)."""
        lookup = {name: code for code, name in enumerate(self.classes)}
        return column.astype(str).map(lookup).to_numpy(np.float32)

    def guard_code(self, column: pd.Series) -> np.ndarray:
        """Each event's guard flags as one bit field."""
        bits = {flag: 1 << i for i, flag in enumerate(self.guard_flags)}
        return np.array([sum(bits[f] for f in guard_flags_of(v)) for v in column], np.float32)

    def keywords(self) -> dict[str, str]:
        """The FCS keywords that say what the class codes and guard bits mean."""
        return {"CTCNET_CLASS_CODES": ",".join(f"{i}={c}" for i, c in enumerate(self.classes)),
                "CTCNET_GUARD_BITS": ",".join(f"{1 << i}={f}"
                                              for i, f in enumerate(self.guard_flags))}

    @classmethod
    def of(cls, events: pd.DataFrame, model_classes: Sequence[str]) -> EventCodes:
        """The model's classes in its order, then ``failed`` and ``rejected``, then any other
        seen (a call typed into review.csv by hand); the guard's flags in its order, then any
        other seen: codes stay the same from sample to sample (a hand-typed "rejectd" moved
        ``rejected``'s code)."""
        classes = list(model_classes) + [c for c in (FAILED_CLASS, REJECTED)
                                         if c not in model_classes]
        seen = set(events["class"].astype(str))
        if "model_class" in events:
            seen |= set(events["model_class"].astype(str))
        if REVIEWER_CALL in events:  # "rejected" gets a code; "" (not decided) none
            seen |= set(events[REVIEWER_CALL].astype(str)) - {""}
        classes += sorted(seen - set(classes))
        flags = [*FLAGS, *HELD_REPEATS]  # the guard's and the repeats' holds
        if "guard" in events:
            flags += sorted({f for v in events["guard"] for f in guard_flags_of(v)} - set(flags))
        return cls(classes, flags)


def guard_flags_of(value) -> list[str]:
    """The guard column's ``flag+flag`` text as a list (empty or missing: none)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return [f for f in str(value).split("+") if f]
