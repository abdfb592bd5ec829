"""A sample's reviewed counts kept up to date decision by decision, so a save costs the same at
10 or 100,000 recorded decisions.

:func:`ctcnet.inference.counts.count_reviewed` counts a whole match (every event, every
decision); :class:`ReviewTally` gives the same :class:`~ctcnet.inference.counts.ReviewedCounts`
and, when the match it is asked about extends the one it counted last (a few decisions
appended: :func:`ctcnet.review.matching.extend_match`), counts only the events those decisions
changed. Any other match (decisions another server appended, another run) is counted whole.
tests/review_server/test_sample.py checks it against ``count_reviewed``.
"""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pandas as pd

from ctcnet.inference.counts import REJECTED, Counts, ReviewedCounts
from ctcnet.review.matching import Matched


class ReviewTally:
    """The reviewed counts of one run's ``events`` over its model tally ``tally``."""

    def __init__(self, events: pd.DataFrame, tally: Counts):
        from ctcnet.inference.guard.calls import counted  # pandas, scipy: as count_reviewed

        calls = events["class"].astype(object).to_numpy()
        automatic = np.where(counted(events), calls, None) if len(events) else calls
        # Each event's call in the automatic count (None: not counted).
        self.automatic = dict(zip(events["event_id"].tolist(), automatic.tolist()))
        self.tally = tally
        self._lock = threading.Lock()
        self._serial = None

    def counts(self, matched: Matched) -> ReviewedCounts:
        """``count_reviewed(events, matched.decisions, tally, len(matched.unattached),
        matched.latest)``."""
        with self._lock:
            if matched.serial != self._serial:
                extends = matched.extends
                if extends is not None and extends[0] == self._serial:
                    self._update(matched, extends[1])
                else:
                    self._rebuild(matched)
                self._serial = matched.serial
            return self._result(len(matched.unattached), matched.latest)

    def _rebuild(self, matched: Matched) -> None:
        d = matched.decisions
        self.decided: dict[int, tuple] = {}
        self.confirmed, self.by_model = Counter(), Counter()
        self.after = Counter(v for v in self.automatic.values() if v is not None)
        self.rejected = 0
        for row in zip(d["event_id"].tolist(), d["reviewer_call"].astype(object).tolist(),
                       d["model_call"].astype(object).tolist()):
            self._add(*row)

    def _update(self, matched: Matched, events) -> None:
        # The decisions that count for those events now: the match's new ones (the whole
        # table of decisions is not needed, nor joined).
        d = matched.changed if matched.changed is not None else matched.decisions
        wanted = {int(e) for e in events}
        now = {int(e): row for e, *row in zip(
            d["event_id"].tolist(), d["reviewer_call"].tolist(), d["model_call"].tolist())
            if int(e) in wanted}
        for event in events:
            event = int(event)
            if event in self.decided:
                self._remove(event)
            if event in now:
                said, model_call = now[event]
                self._add(event, str(said), str(model_call))

    def _add(self, event: int, said: str, model_call: str) -> None:
        if event not in self.automatic:  # a decision on no event of the run counts nowhere
            return
        self.decided[event] = (said, model_call)
        self.confirmed[said] += 1
        self.by_model[model_call] += 1
        self.rejected += said == REJECTED
        self._move(self.automatic[event], None if said == REJECTED else said)

    def _remove(self, event: int) -> None:
        said, model_call = self.decided.pop(event)
        self.confirmed[said] -= 1
        self.by_model[model_call] -= 1
        self.rejected -= said == REJECTED
        self._move(None if said == REJECTED else said, self.automatic[event])

    def _move(self, old: str | None, new: str | None) -> None:
        if old is not None:
            self.after[old] -= 1
        if new is not None:
            self.after[new] += 1

    def _result(self, unattached: int, updated: str | None) -> ReviewedCounts:
        classes, tally = self.tally.classes, self.tally
        return ReviewedCounts(
            classes=classes, reported=tally.reported,
            confirmed={c: self.confirmed[c] for c in classes},
            after_review={c: self.after[c] for c in classes},
            decided={c: self.by_model[c] for c in classes},
            reviewed=len(self.decided), rejected=int(self.rejected), unattached=int(unattached),
            blood_volume_ml=tally.blood_volume_ml, updated=updated)
