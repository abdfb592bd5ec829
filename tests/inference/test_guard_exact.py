"""The guard's faster paths give the numbers of the plain ones, bit for bit: the bounded least
squares stopped once its shares settle, and the flags' names joined once per pattern."""

import numpy as np

from ctcnet.inference.guard import leaks
from ctcnet.inference.guard.calls import fired_names
from ctcnet.inference.guard.rules import FLAGS


def test_box_least_squares_stopped_when_settled_is_every_sweep_run(rng, monkeypatch):
    n, k, p = 60, 3, 150
    design = rng.normal(size=(n, 1, p)) + 0.3 * rng.normal(size=(n, k, p))
    target = np.einsum("nk,nkp->np", rng.uniform(-0.1, 0.3, (n, k)), design)
    gram = np.einsum("nip,njp->nij", design, design)
    rhs = np.einsum("nip,np->ni", design, target)
    for dtype in (np.float32, np.float64):
        g, r = gram.astype(dtype), rhs.astype(dtype)
        for rows in (slice(None), slice(0, 1)):  # many rows; one (settles early)
            fast = leaks.box_least_squares(g[rows], r[rows], 0.0, 0.12)
            with monkeypatch.context() as m:
                m.setattr(leaks, "CONVERGED_CHECK", 10 ** 6)  # never checked: all sweeps
                every = leaks.box_least_squares(g[rows], r[rows], 0.0, 0.12)
            assert fast.dtype == every.dtype
            np.testing.assert_array_equal(fast.view(f"i{fast.itemsize}"),
                                          every.view(f"i{every.itemsize}"))


def test_fired_names_joins_each_rows_flags(rng):
    fired = rng.random((50, len(FLAGS))) < 0.15
    names = np.array(FLAGS, dtype=object)
    assert fired_names(fired) == ["+".join(names[row]) for row in fired]
    assert fired_names(np.zeros((0, len(FLAGS)), bool)) == []


def test_a_group_with_no_values_has_no_median_whatever_the_least_asked():
    """min_events 0 (a caller's GuardRules(min_reference_events=0)): a group of no included
    value read another group's median, or an IndexError."""
    from ctcnet.inference.guard.reference import group_median

    got = group_median([1.0, 5.0, 9.0], [False, True, True], ["a", "b", "b"], 0)
    assert np.isnan(got[0]) and got[1:].tolist() == [7.0, 7.0]
    got = group_median([1.0, 5.0, 9.0], [True, False, False], ["a", "b", "b"], 0)
    assert got[0] == 1.0 and np.isnan(got[1:]).all()


def test_the_markers_call_a_labs_classes_by_their_kinds_whatever_their_names():
    """A taxonomy of tumour, leukocyte, tumour_cluster, junk (checked as ctc, wbc, cluster,
    debris): a leukocyte call with a CTC's markers stayed a leukocyte, a CD45+ tumour call a
    tumour, and no junk or leukocyte call was ever the markers' CTC on a cartridge."""
    import pandas as pd

    from ctcnet.inference.guard import marker_calls, markers_overrule
    from ctcnet.inference.guard.rules import MARKERS_CTC

    names = ["tumour", "leukocyte", "tumour_cluster", "junk"]
    kinds = ["ctc", "wbc", "cluster", "debris"]
    proba = np.array([[0.4, 0.5, 0.05, 0.05], [0.7, 0.2, 0.05, 0.05], [0.8, 0.0, 0.0, 0.2]])
    flags = pd.DataFrame({MARKERS_CTC: [True, False, True],
                          "cd45_positive": [False, True, False]})
    called = np.array(["leukocyte", "tumour", "junk"], object)
    assert marker_calls(called, flags, names, kinds, proba).tolist() == [
        "tumour", "leukocyte", "tumour"]
    overruled = markers_overrule(called, flags[MARKERS_CTC], proba, names, kinds=kinds)
    assert overruled.tolist() == [False, False, True]  # (0.4 < 0.5: the network disagrees)
    proba[0] = [0.5, 0.4, 0.05, 0.05]
    assert markers_overrule(called, flags[MARKERS_CTC], proba, names, kinds=kinds)[0]
