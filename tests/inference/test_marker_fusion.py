"""The marker fusion: network output and measured markers read together into a crop set's call,
fitted on labelled crops, carried in the spec; the CellSearch line (CD45+ is never a CTC) holds
whatever the fusion's weights say."""

import numpy as np
import pandas as pd
import pytest

from ctcnet.inference.guard import crop_set_calls, guard_events, measure, review_flags
from ctcnet.inference.marker_fusion import (
    MEASURES,
    feature_names,
    fit_fusion,
    fused_proba,
    fusion_features,
)
from ctcnet.io.panel import default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec

SIZE = 64
DAPI, CK, CD45 = 0, 1, 2


@pytest.fixture()
def spec():
    return ModelSpec(arch="compact", panel=default_panel(), taxonomy=default_taxonomy(),
                     crop_size=SIZE)


def cell(rng, ck=300.0, dapi=400.0, cd45=0.0, noise=3.0):
    """One (5, H, W) crop: a CK disk round a nucleus, an optional CD45 ring."""
    x = 100.0 + rng.normal(0, noise, (5, SIZE, SIZE))
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    r = np.hypot(yy, xx)
    x[CK] += ck * (r <= 8)
    x[DAPI] += dapi * (r <= 4)
    x[CD45] += cd45 * ((r > 6) & (r <= 9))
    return x.astype(np.float32)


def labelled_set(rng, n=12):
    """CTCs (CK+ CD45-), leukocytes (CD45+, half with CK on them), tdEV-like debris (CK, no
    DNA) and clusters (CK+ with CD45 beside): the network's output says wbc for every one, so
    only the markers can tell them apart."""
    crops, targets = [], []
    for _ in range(n):
        crops += [cell(rng, ck=rng.uniform(100, 600)), cell(rng, ck=0, cd45=80),
                  cell(rng, ck=200, cd45=80), cell(rng, dapi=0)]
        targets += [0, 1, 1, 3]
        crops.append(cell(rng, ck=400, cd45=rng.uniform(20, 40)))
        targets.append(2)
    return np.stack(crops), np.array(targets)


def fusion_saying_ctc(spec, bias) -> dict:
    """A marker fusion that reads no measurement: its call is its ``bias`` (one a class)."""
    f = len(feature_names(spec.class_names))
    return {"format": 1, "classes": spec.class_names, "mean": [0.0] * f, "scale": [1.0] * f,
            "weights": [[0.0] * f] * spec.num_classes, "bias": list(bias)}


def network_says_wbc(n, k=4):
    proba = np.full((n, k), 0.1)
    proba[:, 1] = 0.7
    return proba


def test_features_are_log_probabilities_then_each_measure_and_whether_it_is_missing(rng, spec):
    crops, _ = labelled_set(rng, 2)
    m = measure(crops, spec.panel, spec.pixel_size_um)
    x = fusion_features(network_says_wbc(len(crops)), m)
    assert x.shape == (len(crops), len(feature_names(spec.class_names)))
    assert len(feature_names(spec.class_names)) == 4 + 2 * len(MEASURES)
    assert np.isfinite(x).all()
    np.testing.assert_allclose(x[:, 1], np.log(0.7))
    # The leukocyte without CK has no CK area to compare DAPI's shape over: missing, read as 0.
    names = feature_names(spec.class_names)
    missing = names.index("missing_dna_own_structure")
    value = names.index("asinh_dna_own_structure")
    assert x[0, missing] == 0.0 and x[0, value] > 0
    assert x[1, missing] == 1.0 and x[1, value] == 0.0


def test_fitted_fusion_reads_the_markers_where_the_network_cannot(rng, spec):
    crops, targets = labelled_set(rng)
    m = measure(crops, spec.panel, spec.pixel_size_um)
    proba = network_says_wbc(len(crops))
    fusion = fit_fusion(proba, m, targets, spec.class_names, fitted_on={"seed": 1})
    assert fusion["fitted_on"] == {"seed": 1} and fusion["classes"] == spec.class_names
    test_crops, test_targets = labelled_set(np.random.default_rng(99), 4)
    tm = measure(test_crops, spec.panel, spec.pixel_size_um)
    p = fused_proba(fusion, network_says_wbc(len(test_crops)), tm, spec.class_names)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert (p.argmax(axis=1) == test_targets).mean() >= 0.9
    with pytest.raises(ValueError, match="other classes"):
        fused_proba(fusion, proba[:, :3], m, ["ctc", "wbc", "debris"])
    with pytest.raises(ValueError, match="every class"):
        fit_fusion(proba, m, np.zeros(len(crops), int), spec.class_names)


def test_crop_set_calls_take_the_fusion_and_never_call_a_cd45_positive_event_ctc(rng, spec):
    crops = np.stack([cell(rng), cell(rng, cd45=80), cell(rng, ck=0, cd45=80)])
    proba = network_says_wbc(len(crops))
    proba[2] = np.nan  # a failed row keeps its call
    called = np.array(["wbc", "wbc", "failed"], object)
    flags = review_flags(crops, np.nan_to_num(proba), spec)
    # A fusion that calls everything ctc: the CD45 line still makes the CK+CD45+ cell other.
    says_ctc = fusion_saying_ctc(spec, [5.0, 1.0, 0.0, 0.0])
    fused = spec.replace(metrics={"marker_fusion": says_ctc})
    assert crop_set_calls(called, flags, crops, proba, fused).tolist() == \
        ["ctc", "wbc", "failed"]
    # Without a fusion: the marker rule over the network's calls.
    assert crop_set_calls(called, flags, crops, proba, spec).tolist() == \
        ["ctc", "wbc", "failed"]
    # A leukocyte has CD45: a fusion that calls a clear CK+ CD45- nucleated cell wbc is
    # overruled; the CK+CD45+ cell stays wbc.
    says_wbc = {**says_ctc, "bias": [0.0, 5.0, 0.0, 0.0]}
    assert crop_set_calls(called, flags, crops, proba,
                          spec.replace(metrics={"marker_fusion": says_wbc})).tolist() == \
        ["ctc", "wbc", "failed"]
    # Otherwise the fusion decides: one that calls everything debris is obeyed.
    says_debris = {**says_ctc, "bias": [0.0, 0.0, 0.0, 5.0]}
    events = pd.DataFrame({"class": called[:2], "review": np.zeros(2, bool)})
    decided = guard_events(events, crops[:2], proba[:2],
                           spec.replace(metrics={"marker_fusion": says_debris}),
                           markers_decide=True)
    assert decided["class"].tolist() == ["debris", "debris"]


def test_a_display_exports_ck_copy_in_cd45_is_a_leak_a_leukocytes_cd45_is_not(rng, spec):
    """An RGB export's planes are each stretched by a viewer: a dim-CK CTC there shows a copy
    of its CK at 15-30 % in the CD45 plane, which is read as a leak on exports and as CD45 on
    scans (where dyes leak 1-10 %); a CK+CD45+ leukocyte's CD45 ring is CD45 on both."""
    from ctcnet.inference.guard import RULES, leak_allowance

    assert leak_allowance(True) == RULES.export_max_leak > RULES.max_leak == leak_allowance(False)
    ctc = cell(rng, ck=300)
    ctc[CD45] += 0.2 * (ctc[CK] - np.median(ctc[CK]))  # CK's copy at 20 %
    leukocyte = cell(rng, ck=200, cd45=150)
    crops = np.stack([ctc, leukocyte])
    scan = measure(crops, spec.panel, spec.pixel_size_um, max_leak=leak_allowance(False))
    export = measure(crops, spec.panel, spec.pixel_size_um, max_leak=leak_allowance(True))
    assert scan["cd45_over_ck"][0] > 2.0 > export["cd45_over_ck"][0]
    assert min(scan["cd45_over_ck"][1], export["cd45_over_ck"][1]) > 2.0


def test_a_fused_crop_sets_cd45_line_is_the_guards_without_a_ck_area_and_at_the_ceiling(rng,
                                                                                       spec):
    """A leukocyte without CK reads CD45 over its core, and an aggregate clipped in every
    channel reads none under the clip: the guard holds either as ``cd45_positive``, and a
    fusion's calls keep them off ``ctc`` by the same line, as the marker rule does."""
    leukocyte = cell(rng, ck=0, cd45=300)
    clipped = cell(rng, ck=9000, dapi=9000)
    clipped[CD45] += 9000 * (np.hypot(*(np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2)) <= 9)
    crops = np.minimum(np.stack([leukocyte, clipped, cell(rng)]), 4095).astype(np.float32)
    proba = np.full((3, 4), 0.1)
    proba[:, 0] = 0.7
    called = np.array(["ctc"] * 3, object)
    flags = review_flags(crops, proba, spec)
    assert flags["cd45_positive"].tolist() == [True, True, False]
    says_ctc = fusion_saying_ctc(spec, [5.0, 1.0, 0.0, 0.0])
    fused = spec.replace(metrics={"marker_fusion": says_ctc})
    assert crop_set_calls(called, flags, crops, proba, fused).tolist() == ["wbc", "wbc", "ctc"]


def test_a_ctc_call_the_fusion_makes_is_checked_for_an_unusual_profile_as_the_networks_is():
    """The same crop called ``ctc`` by the network and by the fusion over the network's
    ``wbc``: the unusual check (the distance to the ctc calls' reference) holds both."""
    from ctcnet.inference.guard import crop_set_review
    from ctcnet.nn.calls import DecisionRule
    from ctcnet.nn.classifier import load_model
    from ctcnet.nn.registry import get_model

    core3 = load_model(get_model("ctcnet-core3").checkpoint)[1]
    core3 = core3.replace(decision=DecisionRule.balanced())
    size = core3.crop_size
    r = np.hypot(*(np.mgrid[:size, :size] - (size - 1) / 2))
    crop = 100 + np.random.default_rng(0).normal(0, 3, (3, size, size))
    crop[1] += 40 * (r <= 4.8)  # dim CK on a small cell
    crop[0] += 3900 * (r <= 2.5)  # a bright nucleus
    crops = np.minimum(np.stack([crop, crop]), 4095).astype(np.float32)
    proba = np.array([[0.0999, 0.9001, 0.0, 0.0], [0.9001, 0.0999, 0.0, 0.0]])
    calls, flags = crop_set_review(crops, proba, core3, np.array(["wbc", "ctc"], object))
    assert calls.tolist() == ["ctc", "ctc"]
    assert flags["unusual"].tolist() == [True, True]
