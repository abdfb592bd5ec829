"""ctcnet.inference.ctc_repeats: one CTC whose markers a neighbour's event reads again is
counted once."""

import numpy as np
import pandas as pd

from ctcnet.inference.ctc_repeats import hold_ctc_repeats
from ctcnet.inference.guard import counted


def frame(x, calls, model, markers, guard=None):
    n = len(x)
    return pd.DataFrame({"event_id": range(n), "x": x, "y": [100.0] * n, "class": calls,
                         "model_class": model, "markers_ctc": markers,
                         "guard": guard or [""] * n, "review": [False] * n,
                         "cd45_leak_needed": np.zeros(n, np.float32)})


def test_a_neighbours_event_reading_a_counted_ctcs_markers_is_shown_not_counted():
    """A lymphocyte 2 um from a CTC (their events 12 um apart at 0.5 um/px: 24 px): the
    network calls the CTC, the markers make the lymphocyte's event a second CTC from the
    CTC's CK in its crop. It goes back to the network's wbc, shown as a possible CTC; one
    30 um away stays the markers' CTC, and the network's own CTCs stay counted."""
    events = frame([100.0, 124.0, 160.0, 220.0], ["ctc", "ctc", "ctc", "ctc"],
                   ["ctc", "wbc", "ctc", "debris"], [False, True, False, True])
    held = hold_ctc_repeats(events, 0.5)
    assert held["class"].tolist() == ["ctc", "wbc", "ctc", "ctc"]
    assert held["guard"].tolist() == ["", "possible_ctc", "", ""]
    assert held["review"].tolist() == [False, True, False, False]
    assert held["markers_ctc"].tolist() == [False, False, False, True]
    assert np.isnan(held["cd45_leak_needed"].iloc[1])
    assert counted(held).tolist() == [True, False, True, True]
    assert events["class"].tolist() == ["ctc"] * 4  # (a copy changed)


def test_only_a_counted_ctc_of_the_networks_own_is_read_again():
    """Beside a CTC the guard holds, or the markers' CTC alone, or without a pixel size:
    nothing changes. A lab's class the guard checks as a CTC is one."""
    held_ctc = frame([100.0, 124.0], ["ctc", "ctc"], ["ctc", "wbc"], [False, True],
                     guard=["cd45_positive", ""])
    assert hold_ctc_repeats(held_ctc, 0.5)["class"].tolist() == ["ctc", "ctc"]
    pair = frame([100.0, 124.0], ["ctc", "ctc"], ["wbc", "wbc"], [True, True])
    assert hold_ctc_repeats(pair, 0.5)["guard"].tolist() == ["", ""]
    lab = frame([100.0, 124.0], ["ctc_emt", "ctc_emt"], ["ctc_emt", "wbc"], [False, True])
    assert hold_ctc_repeats(lab, 0.5, ["ctc_emt"])["class"].tolist() == ["ctc_emt", "wbc"]
    assert hold_ctc_repeats(lab, None) is lab
