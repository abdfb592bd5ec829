"""The decision rule at cartridge prevalence (``spec.decision``): the call it makes, its checks,
its round trip through checkpoint, ONNX metadata and the torch-free runtime, its fitting, and
the marker guard's calls counted apart from the automatic count."""

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from ctcnet.errors import InputError
from ctcnet.evaluation.counts import cartridge_counts
from ctcnet.evaluation.decision import FitTable, count_agreement, fit_decision, rescore
from ctcnet.inference.guard import counted, guard_events
from ctcnet.io.panel import default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.calls import FAILED_CLASS, DecisionRule, calls_from_proba, deployment_proba
from ctcnet.nn.spec import ModelSpec

NAMES = ["ctc", "wbc", "cluster", "debris"]
RULE = DecisionRule.from_dict({"rule": "prior_shift", "log_weights": {"ctc": -5.0}}, NAMES)


def spec_with(decision=None, crop_size=64):
    return ModelSpec(arch="compact", panel=default_panel(), taxonomy=default_taxonomy(),
                     crop_size=crop_size, decision=decision or DecisionRule.balanced())


def test_prior_shift_is_bayes_at_deployment_prevalence():
    proba = np.array([[0.9, 0.0, 0.0, 0.1],       # ctc at balanced prior, debris at 1:150
                      [0.9999, 0.0, 0.0, 0.0001],  # ctc either way
                      [0.1, 0.8, 0.0, 0.1],        # wbc either way
                      [np.nan, 0.1, 0.1, 0.1]], np.float32)
    plain = calls_from_proba(proba, NAMES, 0.9)
    ruled = calls_from_proba(proba, NAMES, 0.9, RULE)
    assert plain[0].tolist() == ["ctc", "ctc", "wbc", FAILED_CLASS]
    assert ruled[0].tolist() == ["debris", "ctc", "wbc", FAILED_CLASS]
    # The confidence is the deployment posterior: 0.1 / (0.1 + 0.9 e^-5) for the first row.
    expected = 0.1 / (0.1 + 0.9 * np.exp(-5.0))
    assert ruled[1][0] == pytest.approx(expected, rel=1e-5)
    # Row 3's wbc call is under the 0.9 threshold, but at this prior the doubt is wbc or debris
    # (no count moves): not queued. A failed row always is.
    assert ruled[2].tolist() == [False, False, False, True]
    assert plain[2].tolist() == [False, False, True, True]  # at the balanced prior: ctc 0.1
    assert np.allclose(deployment_proba(proba[:3], NAMES, RULE).sum(axis=1), 1.0)
    assert deployment_proba(proba, NAMES, DecisionRule.balanced()) is not None
    assert np.array_equal(deployment_proba(proba[:3], NAMES, None), proba[:3])


@pytest.mark.parametrize("decision, message", [
    ({"rule": "threshold"}, "not one of"),
    ({"rule": "prior_shift", "log_weights": {"tumour": -2.0}}, "unknown class"),
    ({"rule": "prior_shift", "log_weights": {"ctc": float("nan")}}, "finite"),
    ({"rule": "prior_shift", "log_weights": ["ctc", -2.0]}, "map class names"),
])
def test_a_bad_rule_in_a_spec_is_refused(decision, message):
    data = spec_with().to_dict() | {"decision": decision}
    with pytest.raises(InputError, match=message):
        ModelSpec.from_dict(data)


def test_rule_round_trips_through_checkpoint_onnx_and_runtime(tmp_path, tiny_model_file):
    from ctcnet.deploy.export import export_onnx, restamp_onnx
    from ctcnet.deploy.runtime import OnnxClassifier
    from ctcnet.inference.backends import OnnxBackend
    from ctcnet.nn.classifier import load_model, save_model
    from ctcnet.nn.crop_input import synthetic_crops

    pt, spec = tiny_model_file(tmp_path / "m.pt", crop_size=40, width=8)
    export_onnx(pt)
    onnx = pt.with_suffix(".onnx")
    before = hashlib.sha256(pt.read_bytes()).hexdigest()
    model, spec = load_model(pt)
    # A rule strong enough to change calls of an untrained model: push ctc far down.
    plain = {"rule": "prior_shift", "log_weights": {"ctc": -30.0, "debris": 2.0},
             "fitted": {"note": "unit test"}}
    rule = DecisionRule.from_dict(plain, NAMES)
    save_model(pt, model, spec.replace(decision=rule))
    assert load_model(pt)[1].decision.to_dict() == plain
    with pytest.raises(InputError, match="not exported from"):
        restamp_onnx(onnx, pt, previous_sha256="0" * 64)
    restamp_onnx(onnx, pt, previous_sha256=before)
    clf = OnnxClassifier(onnx)
    assert clf.spec["decision"] == plain
    # The export is still current for its checkpoint (the stale check predict uses).
    assert OnnxBackend(onnx, device="cpu").source_checkpoint() == pt
    crops = synthetic_crops(spec, 16, seed=3)
    called, proba = clf.predict(crops)
    assert called == calls_from_proba(proba, NAMES, spec.review_threshold, rule)[0].tolist()
    assert "ctc" not in called


def test_a_spec_written_into_a_checkpoint_reaches_its_onnx_export(tmp_path, tiny_model_file):
    """What scripts/fit_marker_fusion.py and refit_guard.py write (a fitted fusion, a guard
    reference) reaches both files of a model; a model without an export is written alone."""
    from ctcnet.deploy.export import export_onnx, write_spec
    from ctcnet.inference.backends import OnnxBackend
    from ctcnet.nn.classifier import load_model

    pt, _ = tiny_model_file(tmp_path / "m.pt", crop_size=40, width=8)
    export_onnx(pt)
    model, spec = load_model(pt)
    fitted = spec.replace(metrics={**spec.metrics, "marker_fusion": {"note": "unit test"}})
    assert write_spec(pt, model, fitted) == pt.with_suffix(".onnx")
    assert load_model(pt)[1].metrics["marker_fusion"] == {"note": "unit test"}
    onnx = OnnxBackend(pt.with_suffix(".onnx"), device="cpu")
    assert onnx.spec.metrics["marker_fusion"] == {"note": "unit test"}
    assert onnx.source_checkpoint() == pt  # still current for its checkpoint
    alone, _ = tiny_model_file(tmp_path / "alone.pt", crop_size=40, width=8)
    assert write_spec(alone, model, fitted) is None


def test_both_backends_take_a_spec_without_the_rule(tmp_path, tiny_model_file):
    """The golden predict test runs the shipped model without its rule on whichever backend
    load_backend picks; the torch one once refused the assignment."""
    from ctcnet.deploy.export import export_onnx
    from ctcnet.inference.backends import load_backend
    from ctcnet.nn.classifier import load_model, save_model

    pt, _ = tiny_model_file(tmp_path / "m.pt", crop_size=40, width=8)
    model, spec = load_model(pt)
    plain = {"rule": "prior_shift", "log_weights": {"ctc": -3.0}, "fitted": {"note": "unit test"}}
    save_model(pt, model, spec.replace(decision=DecisionRule.from_dict(plain, NAMES)))
    export_onnx(pt)
    for path in (pt, pt.with_suffix(".onnx")):
        backend = load_backend(path, device="cpu")
        assert backend.spec.decision.to_dict() == plain
        backend.spec = backend.spec.replace(decision=DecisionRule.balanced())
        assert backend.spec.decision.to_dict() == {}


def fit_events(rng, n_carts=6, n_other=3000, n_ctc=10):
    """Synthetic predicted cartridges: CTCs at p_ctc ~0.999, a few debris at p_ctc ~0.8."""
    parts = []
    for k in range(n_carts):
        n = n_other + n_ctc
        p_ctc = np.concatenate([rng.uniform(0.995, 0.9999, n_ctc),
                                rng.uniform(0.6, 0.95, 8), rng.uniform(0.0, 0.04, n_other - 8)])
        proba = np.column_stack([p_ctc, np.zeros(n), np.zeros(n), 1 - p_ctc])
        x = np.arange(n) * 30.0
        events = pd.DataFrame({"row": 0, "col": 0, "x": x, "y": 10.0, "edge_cut": False,
                               "guard": ""})
        for j, name in enumerate(NAMES):
            events[f"p_{name}"] = proba[:, j].astype(np.float32)
        events["model_class"] = np.where(p_ctc > 0.5, "ctc", "debris")
        truth = pd.DataFrame({"row": 0, "col": 0, "x": x, "y": 10.0,
                              "class": ["ctc"] * n_ctc + ["debris"] * n_other})
        parts.append((f"c{k}", events, truth))
    return parts


def test_fitted_rule_separates_the_false_calls_from_the_ctcs(rng):
    spec = spec_with(crop_size=40)
    table = FitTable.build(fit_events(rng), NAMES, spec.pixel_size_um)
    assert len(table.events) < 6 * 3010 and table.sizes.tolist() == [3010] * 6
    decision, curves = fit_decision(table, spec, positives=("ctc",),
                                    grid=np.arange(0.0, -10.01, -0.5), rounds=1)
    w = decision.weights["ctc"]
    # The false calls (p <= 0.95, log odds <= 2.9) go, the CTCs (log odds >= 5.3) stay.
    assert -5.0 <= w <= -3.0
    at = decision.fitted["at_fit"]["ctc"]
    assert at["recall"] == 1.0 and at["false_per_1000_events"] == 0.0
    assert at["within"] == pytest.approx(1.0)
    assert curves["ctc"][0]["within"] < 0.01  # no rule: ~140 false calls per full cartridge
    json.dumps(decision.to_dict())  # plain JSON: it travels in checkpoints loaded weights_only


def test_count_agreement_by_hand():
    # Perfect recall, no false calls: always within, always on the right side.
    assert count_agreement(1.0, np.array([0.0]), [0, 3, 10]) == {"within": 1.0,
                                                                  "cutoff_agrees": 1.0}
    # No true events, one false call expected per cartridge: within (<= 1) with
    # P(F <= 1) = 2/e.
    out = count_agreement(1.0, np.array([1.0 / 52500]), [0])
    assert out["within"] == pytest.approx(2 / np.e)


def test_rescore_is_predicts_labelling(rng):
    spec = spec_with(crop_size=40)
    _, events, _ = fit_events(rng, n_carts=1)[0]
    events.loc[events.index[:2], "guard"] = "cd45_positive"
    out = rescore(events, spec, RULE)
    proba = events[[f"p_{n}" for n in NAMES]].to_numpy()
    assert out["model_class"].tolist() == calls_from_proba(proba, NAMES, 0.9, RULE)[0].tolist()
    # Guard flags stay where the call stayed (the CTCs), and send them to review.
    assert out["guard"].tolist()[:2] == ["cd45_positive"] * 2 and out["review"][:2].all()
    assert (out.loc[out["model_class"] != events["model_class"], "guard"] == "").all()


def test_rescore_keeps_the_markers_call_over_a_wbc_call():
    """A ``wbc`` call whose markers make it a CTC (``markers_ctc``, written by predict) is
    called ``ctc`` under any rule that leaves it ``wbc``, where the network finds it at least
    as likely a CTC; under a rule that calls it ``ctc`` itself it is a plain ``ctc`` call."""
    spec = spec_with()
    proba = np.array([[0.6, 0.4, 0.0, 0.0], [0.3, 0.7, 0.0, 0.0], [0.6, 0.4, 0.0, 0.0]])
    events = pd.DataFrame({"p_ctc": proba[:, 0], "p_wbc": proba[:, 1], "p_cluster": 0.0,
                           "p_debris": 0.0, "model_class": ["wbc", "wbc", "wbc"],
                           "class": ["ctc", "wbc", "wbc"], "guard": ["", "possible_ctc", ""],
                           "edge_cut": False, "markers_ctc": [True, True, False],
                           "review": [False, True, False]})
    ruled = rescore(events, spec, RULE)
    assert ruled["model_class"].tolist() == ["wbc", "wbc", "wbc"]
    assert ruled["class"].tolist() == ["ctc", "wbc", "wbc"]
    assert ruled["guard"].tolist() == ["", "possible_ctc", ""]
    plain = rescore(events, spec, None)
    assert plain["class"].tolist() == ["ctc", "wbc", "ctc"]
    assert plain["guard"].tolist() == ["", "possible_ctc", ""]
    assert rescore(events.drop(columns="markers_ctc"), spec, RULE)["class"].tolist() == \
        ["wbc", "wbc", "wbc"]


def cell(rng, dapi=400.0, cd45=0.0, size=64):
    """A CK disk round a nucleus, optional CD45 ring (as in test_guard)."""
    x = 100.0 + rng.normal(0, 3.0, (5, size, size))
    r = np.hypot(*(np.mgrid[:size, :size] - (size - 1) / 2))
    x[1] += 300.0 * (r <= 8)
    x[0] += dapi * (r <= 4)
    x[2] += cd45 * ((r > 6) & (r <= 9))
    return x.astype(np.float32)


def test_guard_flagged_calls_are_counted_apart(rng):
    spec = spec_with()
    # The last: CK without DNA, called debris (a CTC-like crop called debris would be
    # flagged as a possible missed CTC and counted apart too).
    crops = np.stack([cell(rng), cell(rng, cd45=80), cell(rng, dapi=0), cell(rng, dapi=0)])
    proba = np.eye(4)[[0, 0, 1, 3]] * 0.96 + 0.01
    events = pd.DataFrame({"row": 0, "col": 0, "x": [10.0, 60.0, 110.0, 160.0], "y": 10.0,
                           "model_class": ["ctc", "ctc", "wbc", "debris"],
                           "class": ["ctc", "ctc", "wbc", "debris"], "review": False})
    events = guard_events(events, crops, proba, spec)
    assert counted(events).tolist() == [True, False, True, True]
    truth = events[["row", "col", "x", "y"]].assign(**{"class": ["ctc", "wbc", "wbc",
                                                                 "debris"]})
    c = cartridge_counts(events, truth, NAMES, spec.pixel_size_um)
    assert c["automatic"]["ctc"] == 1 and c["held_by_guard"]["ctc"] == 1
    assert c["false_calls"]["ctc"] == 0
    assert c["guard"]["ctc"] == {"wrong_calls": 1, "wrong_held": 1, "right_held": 0}
    assert c["after_review"]["ctc"] == 1 and c["after_review"]["wbc"] == 2


def test_rescoring_reads_one_ctc_one_count_again_under_the_new_rule():
    """A markers' CTC held beside a network ctc call (same_ctc): under a rule that takes the
    network's call away, the flag was kept and the one CTC counted nowhere; it stands again.
    Under the rule predict used, the hold is as predict wrote it."""
    from ctcnet.inference.guard import counted

    spec = spec_with()
    events = pd.DataFrame({
        "p_ctc": [0.6, 0.6], "p_wbc": [0.4, 0.4], "p_cluster": 0.0, "p_debris": 0.0,
        "model_class": ["ctc", "wbc"], "class": ["ctc", "ctc"], "guard": ["", "same_ctc"],
        "edge_cut": False, "markers_ctc": [False, True], "review": [False, True],
        "x": [0.0, 24.0], "y": [0.0, 0.0], "area_um2": [100.0, 100.0],
        "area_px": [400.0, 400.0]})  # 0.5 um/px: 12 um apart
    out = rescore(events, spec, RULE)
    assert out["model_class"].tolist() == ["wbc", "wbc"]
    assert out["guard"].tolist() == ["", ""] and int(((out["class"] == "ctc") &
                                                       counted(out)).sum()) == 1
    same = rescore(events, spec, None)
    assert same["guard"].tolist() == ["", "same_ctc"] and same["review"].tolist()[1]


def test_rescoring_reads_one_cluster_one_count_again_under_the_new_rule():
    """One cluster read twice, 8 um apart: predict counts the more confident call and holds
    the other (same_cluster). Under a rule that makes the counted one a ctc call, the hold was
    kept: the cluster counted nowhere and its part counted as a CTC. Read again, the cluster
    call left counts and the part is held beside it; under the rule predict used, the holds
    are as written."""
    spec = spec_with()
    events = pd.DataFrame({
        "p_ctc": [0.38, 0.02], "p_wbc": 0.01, "p_cluster": [0.60, 0.55], "p_debris": [0.01, 0.42],
        "model_class": "cluster", "class": "cluster", "confidence": [0.60, 0.55],
        "guard": ["", "same_cluster"], "edge_cut": False, "review": [False, True],
        "x": [0.0, 16.0], "y": 0.0, "area_um2": 100.0, "area_px": 400.0, "frame_id": "f"})
    same = rescore(events, spec, None)
    assert same["class"].tolist() == ["cluster", "cluster"]
    assert same["guard"].tolist() == ["", "same_cluster"] and same["review"].tolist()[1]
    out = rescore(events, spec, DecisionRule.prior_shift({"ctc": 1.5}))
    assert out["class"].tolist() == ["ctc", "cluster"]
    assert out["guard"].tolist() == ["same_cluster", ""]
    assert out.loc[counted(out), "class"].tolist() == ["cluster"]
