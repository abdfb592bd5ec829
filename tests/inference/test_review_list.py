"""summary.json's review list by reason, the uncounted doubt left off it, and the band's
statement where the decision rule carries one."""

import numpy as np
import pandas as pd

from ctcnet.inference.review_list import review_list_summary
from ctcnet.io.taxonomy import default_taxonomy, load_taxonomy
from ctcnet.nn.calls import DecisionRule, calls_from_proba


class Spec:
    class_names = ["ctc", "wbc", "cluster", "debris"]
    taxonomy = default_taxonomy()
    review_threshold = 0.8
    decision = None


def table(proba, guard, spec):
    called, confidence, review, _ = calls_from_proba(np.array(proba), spec.class_names,
                                                     spec.review_threshold, spec.decision)
    review = review | (np.array(guard) != "")
    return pd.DataFrame({"class": called, "confidence": confidence, "review": review,
                         "guard": guard,
                         **{f"p_{c}": np.array(proba)[:, k]
                            for k, c in enumerate(spec.class_names)}})


def test_each_reason_counts_the_events_it_brings():
    proba = [[0.70, 0.10, 0.00, 0.20],    # counted call in doubt
             [0.25, 0.60, 0.00, 0.15],    # a CTC within the band
             [0.00, 0.55, 0.00, 0.45],    # leukocyte or debris: not queued
             [0.00, 0.95, 0.00, 0.05],    # sure, but held by the guard
             [0.00, 0.98, 0.00, 0.02]]    # sure
    events = table(proba, ["", "", "", "unusual", ""], Spec)
    out = review_list_summary(events, Spec)
    assert out["events"] == 3
    assert out["by_reason"]["counted_call_doubt"] == 1
    assert out["by_reason"]["counted_class_in_band"] == 1
    assert out["by_reason"]["guard:unusual"] == 1
    assert out["uncounted_doubt_not_queued"] == 1
    assert out["review_band"] is None


def test_the_doubt_about_a_ctc_call_the_markers_back_is_counted_apart_not_queued():
    proba = [[0.70, 0.10, 0.00, 0.20],    # counted call in doubt, the markers back it
             [0.70, 0.10, 0.00, 0.20],    # the same, the markers do not
             [0.99, 0.01, 0.00, 0.00]]    # sure, the markers back it
    events = table(proba, ["", "", ""], Spec)
    events["markers_vouch"] = [True, False, True]
    events.loc[0, "review"] = False       # what the guard makes of the first
    out = review_list_summary(events, Spec)
    assert out["events"] == 1 and out["by_reason"]["counted_call_doubt"] == 1
    assert out["counted_on_markers_doubt_not_queued"] == 1


def test_the_bands_statement_comes_from_the_rule():
    class Banded(Spec):
        decision = DecisionRule.prior_shift({}, {}).with_review_band(
            {"band": 0.02, "level": 0.01, "confidence": 0.95, "cells": 800, "misses": 2,
             "fresh_family": {"miss_share": 0.004}, "curves": [1, 2, 3]})

    events = table([[0.03, 0.9, 0.0, 0.07]], [""], Banded)
    out = review_list_summary(events, Banded)
    assert out["events"] == 1 and out["by_reason"]["counted_class_in_band"] == 1
    assert out["review_band"]["level"] == 0.01
    assert out["review_band"]["fresh_family"] == {"miss_share": 0.004}
    assert "curves" not in out["review_band"]


def test_a_counted_class_likeliest_before_the_prior_is_its_own_reason():
    """An uncounted call that a counted class outweighs before the cartridge's prior is
    counted apart from the band, read on the fused columns where the table has them."""
    class Cartridge(Spec):
        decision = DecisionRule.prior_shift({"ctc": -3.0, "cluster": -7.5}).with_review_band(
            {"band": 0.0103})

    proba = [[0.014, 0.001, 0.981, 0.004],    # a cluster to the network, filed as debris
             [0.30, 0.66, 0.00, 0.04]]        # a CTC within the band
    events = table(proba, ["", ""], Cartridge)
    assert events["class"].tolist() == ["debris", "wbc"]
    out = review_list_summary(events, Cartridge)
    assert out["events"] == 2
    assert out["by_reason"]["counted_class_likeliest"] == 1
    assert out["by_reason"]["counted_class_in_band"] == 1
    # The fusion's posterior, where written, is what is read.
    fused_proba = np.array([[0.01, 0.02, 0.02, 0.95], [0.30, 0.66, 0.00, 0.04]])
    fused = events.assign(**{f"fused_p_{c}": fused_proba[:, k]
                             for k, c in enumerate(Spec.class_names)})
    out = review_list_summary(fused, Cartridge)
    assert out["by_reason"]["counted_class_likeliest"] == 0
    assert out["by_reason"]["counted_class_in_band"] == 2


def test_a_ctc_call_the_frame_border_cuts_is_shown_for_that_alone():
    """A sure CTC call filed as debris because the border cuts it is shown (a whole cell that
    touches the border reads as cut), with its own reason and its own look on the page; a
    sure leukocyte the border cuts is not, and a CTC in doubt that is cut is shown for the
    border, not counted twice as network doubt."""
    from ctcnet.inference.tables import label_events
    from ctcnet.io.panel import load_panel
    from ctcnet.io.taxonomy import default_taxonomy
    from ctcnet.nn.spec import ModelSpec
    from ctcnet.report.reasons import event_reasons

    spec = ModelSpec("compact", load_panel(None), default_taxonomy(), crop_size=32)
    names = list(spec.class_names)
    rows = {"ctc": [0.999, 0.0, 0.0, 0.001], "wbc": [0.0, 0.999, 0.0, 0.001],
            "doubt": [0.6, 0.3, 0.0, 0.1], "whole": [0.999, 0.0, 0.0, 0.001]}
    proba = np.array([[r[names.index(c)] for c in ("ctc", "wbc", "cluster", "debris")]
                      for r in rows.values()], np.float32)
    events = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "edge_cut": [True, True, True, False]})
    out = label_events(events, proba, spec, edge_cut_class="debris")
    out["guard"] = ""
    assert out["class"].tolist() == ["debris", "debris", "debris", "ctc"]
    assert out["review"].tolist() == [True, False, True, False]
    listed = review_list_summary(out, spec)
    assert listed["by_reason"]["counted_class_cut_by_border"] == 2
    assert listed["by_reason"]["counted_class_in_band"] == 0
    assert listed["by_reason"]["counted_call_doubt"] == 0
    codes = event_reasons(out, ("ctc", "cluster"))
    assert codes[0] == ["cut_by_border"] and codes[2] == ["cut_by_border"]
    assert codes[1] == [] and codes[3] == ["call"]
    # Filed by the prior as well as cut: shown for both, counted once for the border.
    by_prior = out.assign(model_class=["debris", "wbc", "debris", "ctc"],
                          filed_by_prior=[True, False, False, False],
                          review=[True, False, True, False])
    assert event_reasons(by_prior, ("ctc", "cluster"))[0] == ["counted_likeliest",
                                                             "cut_by_border"]
    listed = review_list_summary(by_prior, spec)["by_reason"]
    assert listed["counted_class_cut_by_border"] == 1 and listed["counted_class_likeliest"] == 1
    # Kept as the network calls it (predict --keep-edge-calls): counted, not shown for it.
    kept = label_events(events, proba, spec)
    assert kept["class"].tolist()[0] == "ctc" and not kept["review"].tolist()[0]


def test_a_labs_reported_class_brings_its_doubt_to_the_list():
    """A lab's taxonomy reporting ctc_emt: a ctc_emt call in doubt and a leukocyte call to
    which a ctc_emt holds much of the posterior are shown, each for the network's doubt,
    with the reasons the page names; with the shipped classes' counts that doubt would be
    between uncounted classes and left off."""
    from ctcnet.inference.tables import label_events
    from ctcnet.io.panel import load_panel
    from ctcnet.nn.spec import ModelSpec
    from ctcnet.report.reasons import event_reasons

    names = ["ctc", "ctc_emt", "wbc", "cluster", "debris"]
    taxonomy = load_taxonomy({"classes": names, "reported": ["ctc", "ctc_emt", "cluster"]})
    spec = ModelSpec("compact", load_panel(None), taxonomy, crop_size=32, review_threshold=0.9)
    proba = np.array([[0.02, 0.60, 0.30, 0.04, 0.04],    # ctc_emt call in doubt
                      [0.01, 0.40, 0.55, 0.02, 0.02],    # wbc, a ctc_emt the runner-up
                      [0.01, 0.01, 0.60, 0.01, 0.37],    # wbc or debris: left off
                      [0.00, 0.00, 0.99, 0.00, 0.01]], np.float32)
    out = label_events(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), proba, spec)
    out["guard"] = ""
    assert out["review"].tolist() == [True, True, False, False]
    listed = review_list_summary(out, spec)
    assert listed["by_reason"]["counted_call_doubt"] == 1
    assert listed["by_reason"]["counted_class_in_band"] == 1
    assert listed["uncounted_doubt_not_queued"] == 1
    codes = event_reasons(out, taxonomy.reported_classes())
    assert codes[0] == ["call", "low_confidence"] and codes[1] == ["low_confidence"]
    # The same table under the shipped classes' counts: no doubt about a count.
    shipped = label_events(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), proba, spec.replace(
        taxonomy=load_taxonomy({"classes": names})))
    assert not shipped["review"].any()


def test_a_clusters_repeat_held_apart_is_a_reason_of_its_own():
    """A cluster call read again within reach of a more confident one (cluster_parts) is
    held with the guard's ``same_cluster``: the list and the guard's counts say so."""
    from ctcnet.inference.guard import guard_summary

    proba = [[0.01, 0.01, 0.97, 0.01], [0.01, 0.01, 0.96, 0.02]]
    events = table(proba, ["", "same_cluster"], Spec).assign(model_class="cluster")
    assert review_list_summary(events, Spec)["by_reason"]["guard:same_cluster"] == 1
    assert guard_summary(events, Spec)["by_flag"]["same_cluster"] == 1
