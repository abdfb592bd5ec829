"""The cartridge fusion: on a cartridge the network's probabilities and the guard's measurements
read together before the cartridge's prior; a CD45+ event is never a CTC; a model without a
scan fusion calls a cartridge's events as before."""

import numpy as np
import pandas as pd
import pytest

from ctcnet.inference.guard import counted, guard_events, measure, measure_for_guard_start
from ctcnet.inference.marker_fusion import SCAN_FUSION, fit_fusion
from ctcnet.inference.scan_fusion import (
    FUSED_COLUMN,
    apply_scan_fusion,
    completed,
    fusion_rows,
    marked_fused,
)
from ctcnet.inference.tables import label_events
from ctcnet.io.panel import default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.calls import DecisionRule
from ctcnet.nn.spec import ModelSpec
from tests.inference.test_marker_fusion import CD45, SIZE, cell, fusion_saying_ctc

# The shipped default model's cartridge prior for ctc, about.
RULE = DecisionRule.prior_shift({"ctc": -3.75, "cluster": -3.0})
# The network reads a bright-CK, CD45-negative, nucleated cell at a moderate p(ctc): at the
# cartridge's prior alone that is a leukocyte or debris, and no markers' call takes it back
# (the markers overrule a ``wbc`` or ``debris`` call only where p(ctc) is at least the call's).
MODERATE = [0.45, 0.5, 0.01, 0.04]
DEBRIS_RUNNER_UP = [0.4, 0.02, 0.01, 0.57]
LEUKOCYTE = [0.02, 0.95, 0.01, 0.02]
SURE_LEUKOCYTE = [0.002, 0.99, 0.003, 0.005]


@pytest.fixture()
def spec():
    return ModelSpec(arch="compact", panel=default_panel(), taxonomy=default_taxonomy(),
                     crop_size=SIZE, decision=RULE)


def fitted_fusion(rng, spec, n=10, moderate=MODERATE):
    """A fusion fitted on events whose network output is alike for CTCs and CK+ leukocytes
    (``moderate`` on both): only the markers tell them apart."""
    crops, proba, targets = [], [], []
    for _ in range(n):
        crops += [cell(rng, ck=rng.uniform(150, 600)), cell(rng, ck=200, cd45=80),
                  cell(rng, ck=0, cd45=80), cell(rng, ck=300, cd45=30), cell(rng, dapi=0)]
        proba += [moderate, moderate, LEUKOCYTE, moderate, [0.3, 0.1, 0.1, 0.5]]
        targets += [0, 1, 1, 2, 3]
    crops = np.stack(crops)
    m = measure(crops, spec.panel, spec.pixel_size_um)
    fusion = fit_fusion(np.array(proba), m, np.array(targets), spec.class_names,
                        class_weight="balanced")
    return fusion


def frame(rng, moderate=MODERATE):
    """A frame's events: a CK+ CD45- nucleated cell the network gives ``moderate``, a CK+CD45+
    leukocyte it gives the same, and plain leukocytes (the frame's reference)."""
    crops = [cell(rng, ck=400), cell(rng, ck=200, cd45=80)] + \
        [cell(rng, ck=0, cd45=80) for _ in range(6)]
    proba = np.array([moderate, moderate] + [LEUKOCYTE] * 6, np.float32)
    events = pd.DataFrame({"x": np.full(len(crops), 32.0), "y": np.full(len(crops), 32.0),
                           "edge_cut": np.zeros(len(crops), bool)})
    return np.stack(crops), proba, events


def called(events, crops, proba, spec):
    """Predict's finishing of one frame: fusion, labels, the guard (predict.finish's order)."""
    measured, start = measure_for_guard_start(crops, spec)
    proba, measured, fused = apply_scan_fusion(proba, crops, measured, spec, start)
    table = marked_fused(label_events(events, proba, spec, "debris"), fused)
    return guard_events(table, crops, proba, spec, measured, start=start)


@pytest.mark.parametrize(("moderate", "filed"), [(MODERATE, "wbc"), (DEBRIS_RUNNER_UP, "debris")])
def test_a_ck_positive_cd45_negative_cell_the_prior_filed_other_is_counted_after_fusion(
        rng, spec, moderate, filed):
    crops, proba, events = frame(rng, moderate)
    before = called(events, crops, proba, spec)
    assert before["class"].iloc[0] == filed  # the prior alone (and no markers' call)
    assert FUSED_COLUMN not in before
    fused_spec = spec.replace(metrics={SCAN_FUSION: fitted_fusion(rng, spec, moderate=moderate)})
    after = called(events, crops, proba, fused_spec)
    assert after["class"].iloc[0] == "ctc" and counted(after)[0]
    # The fused posterior, which the rule acted on, is written as the event's probabilities.
    assert after["p_ctc"].iloc[0] > max(0.9, before["p_ctc"].iloc[0])
    # The CK+CD45+ leukocyte at the same network output stays a leukocyte.
    assert after["class"].iloc[1] != "ctc"
    assert after[FUSED_COLUMN].iloc[:2].all()


def test_a_cd45_positive_event_is_never_called_ctc_whatever_the_fusion_says(rng, spec):
    crops, proba, events = frame(rng)
    says_ctc = fusion_saying_ctc(spec, [20.0, 0.0, 0.0, 0.0])
    out = called(events, crops, proba, spec.replace(metrics={SCAN_FUSION: says_ctc}))
    assert out["class"].iloc[0] == "ctc"
    assert out["class"].iloc[1] != "ctc" and out["p_ctc"].iloc[1] == 0.0
    np.testing.assert_allclose(out[[f"p_{c}" for c in spec.class_names]].sum(axis=1), 1.0,
                               rtol=1e-5)
    # A fusion so sure of CTC that the other classes underflow float32: the CD45+ event
    # takes the network's other classes (a row of zeros was called ctc, the first class).
    sure = {**says_ctc, "bias": [110.0, 0.0, 0.0, 0.0]}
    out = called(events, crops, proba, spec.replace(metrics={SCAN_FUSION: sure}))
    assert out["class"].iloc[1] != "ctc" and out["p_ctc"].iloc[1] == 0.0
    np.testing.assert_allclose(out[[f"p_{c}" for c in spec.class_names]].iloc[1].sum(), 1.0,
                               rtol=1e-5)


def test_the_fusion_gives_no_ctc_probability_over_any_of_the_guards_cd45_line(rng, spec):
    """A leukocyte without CK (CD45 read over its core) and a cell whose CD45 is clipped at
    the camera's ceiling over its CK area (no CD45 pixel left to read): both CD45 positive by
    the guard's line, so the fusion leaves neither a CTC probability, however sure it is."""
    crops, proba, events = frame(rng)
    crops[2] = cell(rng, ck=0, cd45=300)
    crops[3] = cell(rng, ck=400)
    crops[3, CD45] += 9000 * (np.hypot(*(np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2)) <= 9)
    crops = np.minimum(crops, 4095)
    says_ctc = fusion_saying_ctc(spec, [20.0, 0.0, 0.0, 0.0])
    out = called(events, crops, proba, spec.replace(metrics={SCAN_FUSION: says_ctc}))
    assert out["class"].iloc[0] == "ctc"
    assert (out["p_ctc"].iloc[2:4] == 0.0).all() and (out["class"].iloc[2:4] != "ctc").all()


def test_without_a_scan_fusion_a_cartridge_is_called_as_before(rng, spec):
    crops, proba, events = frame(rng)
    measured, start = measure_for_guard_start(crops, spec)
    # A crop set's fusion is no scan fusion: the network's probabilities, untouched.
    crop_only = spec.replace(metrics={"marker_fusion": {"format": 1}})
    for model in (spec, crop_only):
        p, m, fused = apply_scan_fusion(proba, crops, measured, model, start)
        assert p is proba and m is measured and fused is None
    table = label_events(events, proba, spec, "debris")
    plain = guard_events(table, crops, proba, spec, measured, start=start)
    pd.testing.assert_frame_equal(called(events, crops, proba, crop_only), plain)


def test_the_fusion_reads_and_applies_only_where_it_could_change_a_counted_call(rng, spec):
    crops = np.stack([cell(rng, ck=400), cell(rng, ck=0, dapi=0, cd45=80),
                      cell(rng, ck=0, cd45=80)])
    proba = np.array([SURE_LEUKOCYTE, SURE_LEUKOCYTE, MODERATE], np.float32)
    measured, start = measure_for_guard_start(crops, spec)
    rows = fusion_rows(proba, measured, spec)
    # The bright CK with DNA inside it, and the network's doubt; not a plain leukocyte.
    assert rows.tolist() == [True, False, True]
    full = completed(crops, spec, measured, rows, start)
    whole = measure(crops, spec.panel, spec.pixel_size_um)
    for col in ("cd45_over_ck", "ck_own_structure", "exclusion_around_ck"):
        assert np.isnan(measured[col]).all()  # predict's frame threads leave them unread
        np.testing.assert_allclose(full[col][rows], whole[col][rows], rtol=1e-5)
        assert np.isnan(full[col][~rows]).all()
    fusion = fitted_fusion(rng, spec)
    p, _, fused = apply_scan_fusion(proba, crops, measured,
                                    spec.replace(metrics={SCAN_FUSION: fusion}), start)
    assert fused.tolist() == rows.tolist()
    np.testing.assert_array_equal(p[1], proba[1])  # outside the gate: the network's own


def test_a_review_fusion_leaves_the_calls_and_moves_only_the_band(rng, spec):
    """With the role ``review`` the calls and probabilities stay the network's; the review
    band reads the fused posterior, written beside them: a CK+CD45+ leukocyte the network
    gives a CTC a few percent of is no longer queued, a CK+ CD45- nucleated cell still is."""
    from types import SimpleNamespace

    from ctcnet.inference.scan_fusion import fused_labels
    from ctcnet.inference.tables import BAND_PREFIX, band_proba_of

    # The shipped default model's rule, about (its band is fitted with the fusion).
    shipped = DecisionRule.prior_shift({"ctc": -3.75, "cluster": -6.5})
    banded = spec.replace(decision=shipped.with_review_band({"band": 0.01}))
    crops, proba, events = frame(rng)
    measured, start = measure_for_guard_start(crops, banded)
    work = SimpleNamespace(events=events, crops=crops, measured=measured, guard_start=start)
    plain, _, _ = fused_labels(work, proba, banded, "debris")
    fusion = {**fitted_fusion(rng, spec), "role": "review"}
    reviewed, p, _ = fused_labels(work, proba, banded.replace(
        metrics={SCAN_FUSION: fusion}), "debris")
    assert p is proba  # the guard reads the network's probabilities, as without the fusion
    names = [f"p_{c}" for c in spec.class_names]
    pd.testing.assert_frame_equal(reviewed[["class", "model_class", "confidence", *names]],
                                  plain[["class", "model_class", "confidence", *names]])
    assert band_proba_of(plain, spec.class_names) is None
    band = band_proba_of(reviewed, spec.class_names)
    assert band is not None and f"{BAND_PREFIX}ctc" in reviewed
    # Both CK+ cells sit in the network's band; the fused posterior keeps only the CTC there.
    assert plain["review"].iloc[:2].all()
    assert reviewed["review"].iloc[0] and not reviewed["review"].iloc[1]
    assert band[0, 0] > band[1, 0]
