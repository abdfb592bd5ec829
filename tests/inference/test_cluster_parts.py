"""ctcnet.inference.cluster_parts: one cluster read twice is counted once."""

import pandas as pd

from ctcnet.inference.cluster_parts import SAME_CLUSTER, hold_cluster_repeats
from ctcnet.inference.guard import counted


def frame(x, calls, confidence, guard=None):
    n = len(x)
    return pd.DataFrame({"event_id": range(n), "x": x, "y": [100.0] * n, "class": calls,
                         "confidence": confidence, "guard": guard or [""] * n,
                         "review": [False] * n})


def test_a_cluster_read_twice_is_counted_once_and_shown():
    """Two cluster calls 10 um apart (0.5 um/px: 20 px) are one cluster: the more confident
    counts, the other is held for a person; one 30 um away is another cluster."""
    events = frame([100.0, 120.0, 160.0], ["cluster"] * 3, [0.9, 0.99, 0.95])
    held = hold_cluster_repeats(events, 0.5)
    assert held["guard"].tolist() == [SAME_CLUSTER, "", ""]
    assert held["review"].tolist() == [True, False, False]
    assert counted(held).tolist() == [False, True, True]


def test_only_counted_cluster_calls_are_one_cluster():
    """A CTC beside a cluster, a cluster call the guard holds already, a table without a pixel
    size: nothing is held."""
    events = frame([100.0, 110.0, 115.0], ["cluster", "ctc", "cluster"], [0.9, 0.99, 0.95],
                   guard=["", "", "one_cell"])
    assert hold_cluster_repeats(events, 0.5)["guard"].tolist() == ["", "", "one_cell"]
    pair = frame([100.0, 110.0], ["cluster"] * 2, [0.9, 0.99])
    assert hold_cluster_repeats(pair, None) is pair


def test_a_part_of_a_cluster_the_prior_filed_as_a_ctc_is_held_beside_it():
    """A CTC-neutrophil cluster detected as two events: one called cluster, the other, to
    which the network gave a cluster 0.99, filed as a CTC by the cartridge's prior and
    counted beside it (one cluster, one CTC). Held as the cluster read again; a CTC the
    network finds a CTC, or one far from any counted cluster, stays counted."""
    events = frame([100.0, 123.0, 110.0, 300.0], ["cluster", "ctc", "ctc", "ctc"],
                   [0.9, 0.6, 0.8, 0.6])
    events["p_cluster"] = [0.95, 0.99, 0.1, 0.99]
    events["p_ctc"] = [0.04, 0.01, 0.9, 0.01]
    held = hold_cluster_repeats(events, 0.5)
    assert held["guard"].tolist() == ["", SAME_CLUSTER, "", ""]
    assert counted(held).tolist() == [True, False, True, True]
    assert held["review"].tolist() == [False, True, False, False]


def test_a_labs_class_checked_as_a_cluster_read_twice_is_counted_once():
    """A lab's reported ``ctc_cluster`` (checked as a cluster): two calls 8 um apart were
    both counted, the hold looking for the class named ``cluster`` alone."""
    from ctcnet.inference.cluster_parts import counted_kinds
    from ctcnet.io.taxonomy import load_taxonomy

    taxonomy = load_taxonomy({"classes": ["ctc", "wbc", {"name": "ctc_cluster",
                                                         "checked_as": "cluster"}, "debris"],
                              "reported": ["ctc", "ctc_cluster"]})
    kinds = counted_kinds(taxonomy)
    assert kinds == (["ctc"], ["ctc_cluster"])
    events = frame([100.0, 116.0], ["ctc_cluster"] * 2, [0.9, 0.99])
    assert hold_cluster_repeats(events, 0.5, kinds=kinds)["guard"].tolist() == \
        [SAME_CLUSTER, ""]
