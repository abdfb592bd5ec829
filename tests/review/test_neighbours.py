"""ctcnet.review.neighbours: the counted or listed calls of an event's frame within a
cluster's reach are named beside it; other frames, far events and uncounted unlisted calls
are not."""

import numpy as np
import pandas as pd

from ctcnet.review.neighbours import events_beside


def test_the_calls_beside_a_listed_event_are_named_nearest_first():
    events = pd.DataFrame({
        "event_id": [0, 1, 2, 3, 4, 5],
        "frame_id": ["r00c00"] * 5 + ["r00c01"],
        "x": [100.0, 110.0, 104.0, 300.0, 101.0, 100.0],
        "y": [100.0, 100.0, 100.0, 100.0, 103.0, 100.0],
        "class": ["cluster", "cluster", "ctc", "ctc", "wbc", "ctc"],
        "guard": ["same_cluster", "", "", "", "", ""]})
    # 0: a held repeat of cluster 1 (10 px = 6.4 um away), a counted CTC at 4 px, a leukocyte
    # at 3.2 px (neither counted nor listed), a CTC 200 px off, one of another frame.
    beside = events_beside(events, np.array([0]), ["ctc", "cluster"], 0.64)
    assert [b["event_id"] for b in beside[0]] == [2, 1]
    assert beside[0][1] == {"event_id": 1, "call": "cluster", "counted": True, "um": 6.4}
    # A listed leukocyte is named; without a pixel size nothing is.
    beside = events_beside(events, np.array([0, 4]), ["ctc", "cluster"], 0.64)
    assert [b["event_id"] for b in beside[0]] == [4, 2, 1]
    assert beside[4][0] == {"event_id": 0, "call": "cluster", "counted": False, "um": 2.0}
    assert events_beside(events, np.array([0]), ["ctc", "cluster"], None) == {}
