"""Two readings of one sample compared: Cohen's kappa between the first reader's decisions
(review.csv, the ones counted) and a second reader's (review-second.csv, kept apart), and the
events they disagree on, listed for adjudication.

Only events both readers decided are compared; a label is the reviewer's call as recorded (a
class name, or ``rejected``). Adjudicating is deciding the event again in the first reading,
whose decisions are the ones counted: the kappa is of the decisions as they stand, which
adjudication moves toward agreement. The readers' own agreement is therefore also measured on
each reading's first decision on each event (``independent``, :func:`first_decisions`), which
no later decision changes: that is the inter-reader figure an audit reads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd


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


def compare_readings(first: pd.DataFrame, second: pd.DataFrame) -> dict:
    """The agreement of two readings (each a match's ``decisions``: event_id, reviewer_call,
    reviewer, model_call): how many events both decided, how many they agree on, the kappa,
    each reading's count of decisions and the disagreements (event, model call, both calls
    and readers), in event order."""
    both = first.merge(second, on="event_id", suffixes=("_first", "_second"))
    calls = list(zip(both["reviewer_call_first"], both["reviewer_call_second"]))
    kappa = cohen_kappa([a for a, _ in calls], [b for _, b in calls])
    differ = both[both["reviewer_call_first"] != both["reviewer_call_second"]]
    return {
        "first": int(len(first)), "second": int(len(second)), "both": int(len(both)),
        "agree": int(len(both) - len(differ)),
        "kappa": None if kappa is None else round(float(kappa), 4),
        "disagreements": [
            {"event_id": int(e), "model_call": str(m), "first": str(a), "second": str(b),
             "first_reviewer": str(ra), "second_reviewer": str(rb)}
            for e, m, a, b, ra, rb in zip(
                differ["event_id"], differ["model_call_first"], differ["reviewer_call_first"],
                differ["reviewer_call_second"], differ["reviewer_first"],
                differ["reviewer_second"])]}


def first_decisions(matched, run_id: str) -> pd.DataFrame:
    """A reading's first decision on each event of the run ``run_id`` (a match's rows in the
    order they were written: the earliest that is a decision, not a take-back), in the layout
    of ``matched.decisions`` (event_id, reviewer_call, reviewer, model_call: here the call the
    reviewer saw). A row a later one replaced attaches to no event in the match (its
    ``target`` is -1): a row made on this run names its event by its id; one made on an
    earlier run counts where it still attaches."""
    from ctcnet.review.matching import UNDECIDED

    table = matched.table
    calls = table["reviewer_call"].astype(str).to_numpy()
    own = (table["run_id"].astype(str).to_numpy() == run_id if "run_id" in table
           else np.zeros(len(table), bool))
    event = np.where(matched.target >= 0, matched.target,
                     np.where(own, table["event_id"].to_numpy(np.int64), -1))
    rows = np.flatnonzero((event >= 0) & (calls != UNDECIDED))
    first = table.iloc[rows].assign(event_id=event[rows])
    first = first.drop_duplicates("event_id", keep="first")
    return pd.DataFrame({column: first[column].to_numpy() if column == "event_id"
                         else first[column].astype(str).to_numpy()
                         for column in ("event_id", "reviewer_call", "reviewer", "model_call")})


def independent_agreement(first_matched, second_matched, run_id: str) -> dict:
    """The readers' own agreement: :func:`compare_readings` of each reading's first decision
    on each event of the run ``run_id`` (before any adjudication), without the list of
    disagreements."""
    out = compare_readings(first_decisions(first_matched, run_id),
                           first_decisions(second_matched, run_id))
    return {k: out[k] for k in ("both", "agree", "kappa")}
