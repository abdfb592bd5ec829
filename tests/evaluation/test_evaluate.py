"""Evaluation: features, baselines, calibration, saliency, figures and the evaluate command."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.errors import PanelMismatchError
from ctcnet.evaluation.baselines import (
    FeatureClassifier,
    MarkerGate,
    baseline_probabilities,
    fit_baselines,
)
from ctcnet.evaluation.calibration import (
    calibration_summary,
    fit_temperature,
    review_band,
    review_threshold_for_precision,
    softmax,
)
from ctcnet.evaluation.evaluate import evaluate_crops
from ctcnet.evaluation.features import crop_features
from ctcnet.evaluation.metrics import expected_calibration_error, macro_f1
from ctcnet.inference.backends import TorchBackend
from ctcnet.io.panel import Panel, default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.calls import DecisionRule, calls_from_proba
from ctcnet.nn.classifier import build_classifier
from ctcnet.nn.saliency import channel_importance, grad_cam
from ctcnet.nn.spec import ModelSpec

CLASSES = ["ctc", "wbc", "cluster", "debris"]
SIZE = 48


def toy_crops(n_per_class, seed=0, size=SIZE):
    """Drawn cells on the default 5-channel panel (DAPI, CK, CD45, CD61, CD66b), raw counts.

    ctc: nucleus in CK cytoplasm (CK 60-300 counts); wbc: nucleus in a CD45 ring; cluster: a CTC
    touching a CD45+ CD66b+ neutrophil; debris: a small CK+ DAPI- vesicle.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    centre = (size - 1) / 2

    def disk(cy, cx, r):
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r

    crops, labels = [], []
    for k in range(4):
        for _ in range(n_per_class):
            img = rng.normal(100, 5, (5, size, size))
            cy, cx = centre + rng.uniform(-2, 2, 2)
            if k == 0:
                img[0][disk(cy, cx, 5)] += 200
                img[1][disk(cy, cx, 8)] += rng.uniform(60, 300)
            elif k == 1:
                img[0][disk(cy, cx, 5)] += 200
                img[2][disk(cy, cx, 7) & ~disk(cy, cx, 5)] += 150
            elif k == 2:
                img[0][disk(cy, cx - 6, 5)] += 200
                img[1][disk(cy, cx - 6, 8)] += 150
                img[0][disk(cy, cx + 7, 4)] += 200
                img[2][disk(cy, cx + 7, 6)] += 150
                img[4][disk(cy, cx + 7, 6)] += 150
            else:
                img[1][disk(cy, cx, 2)] += 200
            crops.append(img)
            labels.append(k)
    return np.clip(np.stack(crops), 0, 4095).astype(np.float32), np.array(labels)


@pytest.fixture(scope="module")
def toy():
    return toy_crops(20, seed=0), toy_crops(15, seed=1)


# --- features ------------------------------------------------------------------------------------

def test_a_crop_without_an_object_has_no_centre_offset():
    """No object read as one at the crop's corner (35.8 um off centre at 80 px)."""
    from ctcnet.evaluation.features import _shape_moments

    mask = np.zeros((2, 80, 80), bool)
    mask[1, 10:20, 10:20] = True
    elongation, offset = _shape_moments(mask, 0.64)
    assert elongation[0] == 1.0 and offset[0] == 0.0 and offset[1] > 10


def test_features_taken_a_chunk_at_a_time_are_those_of_one_batch(toy, monkeypatch):
    from ctcnet.evaluation import features

    (x, _), _ = toy
    whole = crop_features(x, default_panel())
    monkeypatch.setattr(features, "FEATURE_CHUNK", 3)
    chunked = crop_features(x, default_panel())
    assert chunked.keys() == whole.keys()
    for name in whole:
        np.testing.assert_array_equal(chunked[name], whole[name], err_msg=name)


def test_features_see_markers_size_and_nuclei(toy):
    (x, y), _ = toy
    f = crop_features(x, default_panel())
    assert all(v.shape == (len(y),) and np.isfinite(v).all() for v in f.values())
    ck, cd45 = f["CK_p90"], f["CD45_p90"]
    assert ck[y == 0].min() > 5 * max(ck[y == 1].max(), 1)      # CTCs CK+, WBCs CK-
    assert cd45[y == 1].min() > 5 * max(cd45[y == 0].max(), 1)  # WBCs CD45+, CTCs CD45-
    # A CTC of radius 8 px at 0.64 um/px is ~10-12 um across; a 2 px vesicle is far smaller.
    assert 9 < np.median(f["diameter_um"][y == 0]) < 14
    assert np.median(f["diameter_um"][y == 3]) < 6
    assert f["nucleus_in_epithelial"][y == 0].min() > 0.9
    assert (f["DAPI_pos_area"][y == 3] == 0).all()


def test_features_are_in_micrometres():
    x, _ = toy_crops(3, seed=2)
    p064 = default_panel()
    p032 = p064.with_pixel_size(0.32)
    d064 = crop_features(x, p064)["diameter_um"]
    d032 = crop_features(x, p032)["diameter_um"]
    assert np.allclose(d064, 2 * d032, rtol=1e-5)


def test_features_follow_channel_roles_not_positions():
    x, y = toy_crops(5, seed=3)
    order = [2, 0, 4, 1, 3]  # CD45, DAPI, CD66b, CK, CD61
    shuffled = Panel.from_dict({"channels": [default_panel().names[i] for i in order]})
    f_ref = crop_features(x, default_panel())
    f_shuf = crop_features(x[:, order], shuffled)
    for name in f_ref:
        assert np.allclose(f_ref[name], f_shuf[name]), name


def test_empty_crop_gives_zero_object():
    flat = np.random.default_rng(0).normal(100, 5, (2, 5, SIZE, SIZE)).astype(np.float32)
    f = crop_features(flat, default_panel())
    assert (f["area_um2"] == 0).all() and (f["objects_in_crop"] == 0).all()


# --- baselines -----------------------------------------------------------------------------------

def test_baselines_fit_and_generalise(toy):
    (x, y), (xt, yt) = toy
    panel = default_panel()
    fitted = fit_baselines(x, y, panel, CLASSES)
    proba = baseline_probabilities(fitted, xt, panel)
    for name, p in proba.items():
        assert p.shape == (len(yt), 4)
        assert np.allclose(p.sum(axis=1), 1)
        assert macro_f1(yt, p.argmax(axis=1), 4) > 0.9, name
    thresholds = fitted["marker_gate"].thresholds
    assert set(thresholds) >= {"nucleus", "epithelial", "leukocyte", "cluster_diameter_um"}


def test_marker_gate_fit_improves_on_bad_start(toy):
    (x, y), _ = toy
    f = crop_features(x, default_panel())
    bad = {"nucleus": 1e6, "epithelial": 1e6, "leukocyte": 1e6, "neutrophil": 1e6,
           "platelet": 1e6, "cluster_diameter_um": 1e6}
    gate = MarkerGate(default_panel(), CLASSES, thresholds=dict(bad))
    before = macro_f1(y, gate.predict(f), 4)
    gate.fit(f, y)
    assert macro_f1(y, gate.predict(f), 4) > before + 0.5


def test_baselines_on_a_taxonomy_subset(toy):
    (x, y), _ = toy
    keep = (y == 0) | (y == 1)
    f = crop_features(x[keep], default_panel())
    gate = MarkerGate(default_panel(), ["ctc", "wbc"]).fit(f, y[keep])
    assert set(np.unique(gate.predict(f))) <= {0, 1}
    clf = FeatureClassifier(["ctc", "wbc", "cluster"], max_iter=20).fit(f, y[keep])
    assert clf.predict_proba(f).shape == (keep.sum(), 3)
    assert (clf.predict_proba(f)[:, 2] == 0).all()  # never trained on, never predicted


def test_the_feature_classifier_fits_on_a_labs_few_crops():
    """Under 40 training crops sklearn's trees could not split (20 events a leaf): every crop
    called one class, and the report gave the CNN a +0.90 margin over nothing."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 6)  # a lab's 24 crops, 6 a class
    feats = {"a": y * 10.0 + rng.normal(0, 0.5, len(y)), "b": rng.normal(0, 1, len(y))}
    clf = FeatureClassifier(CLASSES, max_iter=50).fit(feats, y)
    assert macro_f1(y, clf.predict(feats), 4) > 0.9


def test_the_baselines_say_a_class_their_training_crops_lack(caplog):
    from types import SimpleNamespace

    from ctcnet.evaluation.test_set import _say_what_the_baselines_lack
    from ctcnet.io.taxonomy import default_taxonomy

    spec = SimpleNamespace(class_names=CLASSES, taxonomy=default_taxonomy())
    scored = SimpleNamespace(label_indices=lambda taxonomy: np.array([0, 1, 2, 3]))
    with caplog.at_level("WARNING"):
        _say_what_the_baselines_lack(np.array([0] * 12 + [1] * 3 + [3] * 12), scored, spec,
                                     "folder")
    assert "hold no cluster, which they never call; hold few of wbc 3" in caplog.text


def test_a_gates_record_lists_the_thresholds_its_panel_and_classes_read():
    """A four-channel panel without CD66b or CD61, a model without a cluster class: those
    thresholds decide nothing, so its record does not list them."""
    panel = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "EpCAM"]})
    used = MarkerGate(panel, ["ctc", "wbc", "debris"]).used_thresholds()
    assert set(used) == {"nucleus", "epithelial", "leukocyte", "bleed_ratio"}
    assert set(MarkerGate(default_panel(), CLASSES).used_thresholds()) == {
        "nucleus", "epithelial", "leukocyte", "neutrophil", "platelet", "cluster_diameter_um",
        "bleed_ratio"}


def test_a_gate_without_a_debris_class_files_what_it_cannot_explain_as_no_ctc(toy):
    """A lab's five classes (no debris): events the gate's markers do not explain go to the
    commonest class its rules do not name, not to the first class (ctc) of balanced labels."""
    (x, y), _ = toy
    f = crop_features(x, default_panel())
    classes = ["ctc", "wbc", "tdev", "bare_nucleus", "artefact"]
    labels = np.arange(len(y)) % len(classes)  # balanced: ctc first among equals
    labels[:3] = 3  # bare_nucleus the commonest of the classes the gate does not name
    gate = MarkerGate(default_panel(), classes).fit(f, labels)
    assert gate.fallback == "bare_nucleus"


# --- calibration ---------------------------------------------------------------------------------

def test_temperature_lowers_ece_of_overconfident_model():
    rng = np.random.default_rng(0)
    n = 2000
    y = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), y] += 1.5
    overconfident = 4.0 * logits  # the true temperature is 4 / 1.5
    t = fit_temperature(overconfident, y)
    assert 2.2 < t < 3.2
    summary = calibration_summary(overconfident, y, t)
    assert summary["calibrated"]["ece"] < 0.5 * summary["uncalibrated"]["ece"]
    assert summary["calibrated"]["nll"] < summary["uncalibrated"]["nll"]
    # A calibrated model keeps (roughly) its temperature of 1.
    assert 0.8 < fit_temperature(logits * 1.5, y) < 1.25


def test_review_threshold_reaches_target_precision():
    rng = np.random.default_rng(1)
    n = 1000
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 2.0
    proba = softmax(logits)
    t = review_threshold_for_precision(proba, y, target=0.99)
    band = review_band(proba, y, t, ["ctc", "wbc", "debris"])
    assert band["auto_precision"] >= 0.99
    assert 0 < band["reviewed_fraction"] < 1
    # The lowest such threshold: one step lower lets in a call that breaks the target.
    lower = np.sort(proba.max(axis=1))
    lower = lower[lower < t].max()
    assert review_band(proba, y, lower)["auto_precision"] < 0.99


def test_a_threshold_no_call_reaches_reviews_every_call_in_float32_too():
    # No prefix is precise enough: the threshold lies above every probability, for the float64
    # fit and for the float32 posteriors deployment compares (a float64 step past 0.6 rounds
    # back onto float32(0.6), and the one wrong CTC call went out unreviewed).
    names = ["ctc", "wbc", "cluster", "debris"]
    proba = np.array([[0.6, 0.2, 0.1, 0.1]])
    t = review_threshold_for_precision(proba, np.array([1]), 0.99)
    assert t > 0.6 and np.float32(t) > np.float32(0.6)
    assert review_band(proba, np.array([1]), t)["reviewed"] == 1
    assert review_band(proba, np.array([1]), t, names)["reviewed"] == 1
    assert calls_from_proba(proba.astype(np.float32), names, t)[2].tolist() == [True]


def test_review_band_says_what_predict_shows_beside_what_is_under_the_threshold():
    names = ["ctc", "wbc", "cluster", "debris"]
    proba = np.array([[0.01, 0.58, 0.01, 0.40],   # leukocyte or debris: no count can change
                      [0.55, 0.40, 0.02, 0.03],   # a CTC call in doubt
                      [0.97, 0.01, 0.01, 0.01]])  # sure
    band = review_band(proba, np.array([1, 0, 0]), 0.9, names)
    assert band["reviewed"] == 2 and band["shown"] == 1
    assert band["shown"] == int(calls_from_proba(proba, names, 0.9)[2].sum())
    # At a cartridge's prior the figures are of the calls made there: every call falls under
    # the threshold (the CTC call at 0.71, the second crop now a wbc call at 0.88), and only
    # the CTC call in doubt is shown (without a band, the prior's filing is not).
    rule = DecisionRule.prior_shift({"ctc": -3.0, "cluster": -7.5})
    at_prior = review_band(proba, np.array([1, 0, 0]), 0.9, names, rule)
    assert at_prior["reviewed"] == 3 and at_prior["shown"] == 1
    # A model that counts its leukocytes too (a lab's reported class): their doubt is shown.
    assert review_band(proba, None, 0.9, names, counted=["ctc", "cluster", "wbc"])[
        "shown"] == 2


def test_calibrate_spec_stores_temperature_and_review_threshold():
    from ctcnet.evaluation.calibration import calibrate_spec

    rng = np.random.default_rng(2)
    n = 800
    y = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), y] += 2.5
    spec = ModelSpec("compact", default_panel(), default_taxonomy())
    calibrated = calibrate_spec(spec, 3.0 * logits, y, target=0.99)
    assert 1.0 < calibrated.temperature < 1.45  # the true temperature is 3 / 2.5
    assert calibrated.review_threshold == pytest.approx(
        review_threshold_for_precision(softmax(3.0 * logits, calibrated.temperature), y, 0.99))
    assert calibrated.metrics["calibration"]["review"]["auto_precision"] >= 0.99
    assert ModelSpec.from_json(calibrated.to_json()).temperature == calibrated.temperature


def test_review_threshold_by_hand():
    proba = np.array([[0.99, 0.01], [0.95, 0.05], [0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    labels = np.array([0, 0, 0, 1, 0])  # the 0.8 call is wrong
    assert review_threshold_for_precision(proba, labels, 0.99) == pytest.approx(0.9)
    assert review_threshold_for_precision(proba, labels, 0.75) == pytest.approx(0.7)
    assert review_threshold_for_precision(proba[3:4], labels[3:4], 0.99) > 0.8


# --- saliency ------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["compact", pytest.param("resnet18", marks=pytest.mark.resnet)])
def test_grad_cam_has_the_crops_shape(arch):
    torch.manual_seed(0)
    spec = ModelSpec(arch, default_panel(), default_taxonomy(), crop_size=SIZE)
    model = build_classifier(spec).train()
    x, y = toy_crops(2, seed=4)
    maps = grad_cam(model, x, target_class=0)
    assert model.training  # grad_cam runs in eval mode and restores the mode it found
    assert maps.shape == x.shape
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert grad_cam(model, x, target_class=list(y)).shape == x.shape
    assert grad_cam(model, x[:3]).shape == (3, 5, SIZE, SIZE)
    imp = channel_importance(maps)
    assert imp.shape == (len(x), 5)
    assert np.allclose(imp.sum(axis=1)[imp.sum(axis=1) > 0], 1)


def test_grad_cam_in_fixed_batches_gives_each_crop_its_own_map():
    # A GPU runs every batch at one shape (the last padded with blank crops): the maps of the
    # real crops must not change.
    torch.manual_seed(0)
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=SIZE)
    model = build_classifier(spec)
    x, y = toy_crops(3, seed=6)
    plain = grad_cam(model, x, target_class=list(y), batch_size=5, fixed_batch=False)
    padded = grad_cam(model, x, target_class=list(y), batch_size=5, fixed_batch=True)
    assert len(x) % 5 and padded.shape == plain.shape
    np.testing.assert_allclose(padded, plain, atol=1e-5)
    np.testing.assert_allclose(grad_cam(model, x, batch_size=5, fixed_batch=True),
                               grad_cam(model, x, batch_size=5), atol=1e-5)


@pytest.mark.gpu
def test_grad_cam_on_cuda_matches_the_cpu():
    torch.manual_seed(0)
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=SIZE)
    model = build_classifier(spec)
    x, y = toy_crops(3, seed=6)
    on_cpu = grad_cam(model, x, target_class=list(y), batch_size=5)
    on_gpu = grad_cam(model.cuda(), x, target_class=list(y), batch_size=5)  # padded batches
    np.testing.assert_allclose(on_gpu, on_cpu, atol=2e-2)  # cuDNN may run convs in TF32


def test_grad_cam_points_at_the_marker_a_trained_model_uses():
    """A tiny model trained to tell CTCs (CK+) from WBCs (CD45+) credits CK for its CTC calls."""
    torch.manual_seed(0)
    x, y = toy_crops(16, seed=5)
    keep = y < 2
    x, y = x[keep], y[keep]
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=SIZE,
                     arch_kwargs={"width": 8})
    model = build_classifier(spec)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    model.eval()
    ctcs = x[y == 0][:6]
    imp = channel_importance(grad_cam(model, ctcs, target_class=0))
    assert np.median(imp[:, 1]) > np.median(imp[:, 2])  # CK over CD45


# --- evaluation ----------------------------------------------------------------------------------

def test_evaluate_crops_report(toy):
    (x, y), (xt, yt) = toy
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=SIZE)
    torch.manual_seed(0)
    model = build_classifier(spec).eval()
    baselines = fit_baselines(x, y, spec.panel, CLASSES)
    subtypes = np.where(yt == 0, "ctc_bright", "other")
    report = evaluate_crops(TorchBackend.from_model(model, device="cpu"), xt,
                            [CLASSES[k] for k in yt], subtypes, baselines)
    cnn = report["cnn"]
    assert set(cnn["per_class"]) == set(CLASSES)
    assert set(cnn["ctc_sensitivity_at_specificity"]) == {"0.990", "0.998"}
    assert set(report["baselines"]) == {"marker_gate", "feature_classifier"}
    margin = report["cnn_minus_baseline"]["marker_gate"]["macro_f1"]
    assert margin == pytest.approx(cnn["macro_f1"] - report["baselines"]["marker_gate"]["macro_f1"])
    assert "ctc_bright" in cnn["recall_by_subtype"]


def test_evaluate_command_on_a_class_subset(tmp_path, toy, capsys, tiny_model_file):
    (x, y), (xt, yt) = toy
    panel = default_panel()
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    # The dataset holds only ctc and wbc; its train split fits the baselines.
    keep, keep_t = y < 2, yt < 2
    crops = np.concatenate([x[keep], xt[keep_t]]).astype(np.uint16)
    labels = [CLASSES[k] for k in np.concatenate([y[keep], yt[keep_t]])]
    splits = ["train"] * keep.sum() + ["test"] * keep_t.sum()
    write_crop_dataset(tmp_path / "data", crops, labels, panel, splits=splits)
    out = tmp_path / "out"
    rc = main(["evaluate", str(tmp_path / "data"), "--model", str(tmp_path / "m.pt"),
               "--out", str(out), "--json"])
    assert rc == 0
    said = capsys.readouterr()
    printed = json.loads(said.out)
    # The model read is named, as predict names it (two evaluations' logs told apart).
    assert f"model: {tmp_path / 'm.pt'} (given)" in said.err
    assert {"macro_f1", "accuracy", "per_class", "ece"} <= set(printed)
    assert set(printed["per_class"]) == {"ctc", "wbc"}
    assert printed["n"] == keep_t.sum()
    assert printed["baseline_training"] == "split=train"
    for name in ("report.json", "confusion.json", "confusion.png", "reliability.png",
                 "confusion_marker_gate.png"):
        assert (out / name).stat().st_size > 0, name
    # CK's leak measured on the crops, against the guard's allowance, as predict reports it.
    check = json.loads((out / "report.json").read_text())["leak_check"]
    assert check["source"] == "CK" and set(check["allowance"]) == {"CD45", "CD61", "CD66b"}
    from PIL import Image

    assert Image.open(out / "confusion.png").size[0] > 100
    assert json.loads((out / "confusion.json").read_text())["class_names"] == CLASSES
    # Calibrate on validation crops (enough of them) and evaluate that model.
    xv, yv = toy_crops(30, seed=2)
    write_crop_dataset(tmp_path / "val", xv.astype(np.uint16), [CLASSES[k] for k in yv], panel)
    rc = main(["evaluate", str(tmp_path / "data"), "--model", str(tmp_path / "m.pt"),
               "--out", str(tmp_path / "out2"), "--no-baselines", "--json",
               "--calibrate-on", str(tmp_path / "val"), "--save-model", str(tmp_path / "c.pt")])
    assert rc == 0
    from ctcnet.nn.classifier import load_model

    _, calibrated = load_model(tmp_path / "c.pt")
    assert calibrated.temperature != 1.0
    # The guard made the lab's as finetune makes it (recalibration.lab_guard): what its CTCs
    # showed of CK's leaks is recorded.
    # (the toy CTCs agree on no leak: measured as none, beside what it replaced, nothing)
    assert set(calibrated.metrics["leaks"]) == {"source", "leaks", "crops", "replaced"}
    assert calibrated.metrics["leaks"]["replaced"] == {}
    printed = json.loads(capsys.readouterr().out)
    assert printed["temperature"] == calibrated.temperature
    # The report says what the model was calibrated from and on, and scores the calibration
    # it replaced (the same network's) beside the new one and none.
    from ctcnet.io.digests import file_sha256

    made = printed["recalibrated"]
    assert made["from_sha256"] == file_sha256(tmp_path / "m.pt")
    assert made["calibrated_on"] == str((tmp_path / "val").absolute())
    assert made["crops"] == len(yv) and made["method"] in ("lab", "pooled")
    assert "ece_before_recalibration" in printed["cnn"]


def test_evaluate_names_the_classes_its_labels_lack(tmp_path, toy, capsys, caplog,
                                                   tiny_model_file):
    """A set of one class scores macro-F1 over that class alone: the summary, the report and
    a warning say which classes were absent; a set of every class says nothing."""
    _, (xt, yt) = toy
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    ctc = yt == 0
    write_crop_dataset(tmp_path / "ctc", xt[ctc].astype(np.uint16), ["ctc"] * int(ctc.sum()),
                       default_panel())
    args = ["--model", str(tmp_path / "m.pt"), "--no-baselines", "--device", "cpu"]
    assert main(["evaluate", str(tmp_path / "ctc"), "--out", str(tmp_path / "e1"), *args]) == 0
    printed = capsys.readouterr().out
    note = ("the labels hold no wbc, cluster, debris: macro-F1 is ctc's F1 alone and says "
            "nothing of how those classes are told apart")
    assert f"note: {note}" in printed
    report = json.loads((tmp_path / "e1" / "report.json").read_text())
    assert report["cnn"]["absent_classes"] == ["wbc", "cluster", "debris"]
    assert report["warnings"] == [note]
    assert any(r.levelname == "WARNING" and r.getMessage() == note for r in caplog.records)
    write_crop_dataset(tmp_path / "all", xt.astype(np.uint16), [CLASSES[k] for k in yt],
                       default_panel())
    assert main(["evaluate", str(tmp_path / "all"), "--out", str(tmp_path / "e2"), *args]) == 0
    report = json.loads((tmp_path / "e2" / "report.json").read_text())
    assert report["cnn"]["absent_classes"] == [] and "warnings" not in report
    assert "note:" not in capsys.readouterr().out
    # Crops the manifest does not list, left out of the figures: the validation record says
    # so, as the console did (report.json named the whole folder, scored on fewer crops).
    import shutil

    (tmp_path / "all" / "more").mkdir()
    shutil.copy(next((tmp_path / "all").glob("ctc/*.tif")), tmp_path / "all" / "more" / "x.tif")
    assert main(["evaluate", str(tmp_path / "all"), "--out", str(tmp_path / "e3"), *args]) == 0
    report = json.loads((tmp_path / "e3" / "report.json").read_text())
    assert [w for w in report["warnings"] if "not in its manifest.csv" in w] == [
        f"{tmp_path / 'all'}: 1 image file(s) there are not in its manifest.csv and are not "
        "read (e.g. more/x.tif): the manifest lists the dataset; add them to it, or remove it "
        "to read the class folders"]
    assert "not in its manifest.csv" in (tmp_path / "e3" / "index.html").read_text()


def test_options_a_crop_set_would_not_read_are_refused(tmp_path, capsys, tiny_model_file):
    """--save-model without --calibrate-on wrote no model and said nothing (a user who forgot
    --calibrate-on believed a calibrated model saved); --cutoffs was ignored alike."""
    x, y = toy_crops(2, seed=3)
    write_crop_dataset(tmp_path / "data", x.astype(np.uint16), [CLASSES[k] for k in y],
                       default_panel())
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    args = ["evaluate", str(tmp_path / "data"), "--model", str(tmp_path / "m.pt"), "--out",
            str(tmp_path / "ev"), "--no-baselines", "--device", "cpu"]
    assert main([*args, "--save-model", str(tmp_path / "c.pt")]) == 2
    assert "--save-model (where --calibrate-on writes its model); drop it" in \
        capsys.readouterr().err
    assert main([*args, "--cutoffs", "5", "--review-precision", "0.9"]) == 2
    err = capsys.readouterr().err
    assert "--cutoffs (cartridges' and a comparison's); --review-precision" in err
    assert not (tmp_path / "ev" / "report.json").exists() and not (tmp_path / "c.pt").exists()


def test_calibrating_on_the_evaluated_crops_is_said_to_be_optimistic(tmp_path, capsys, caplog,
                                                                    tiny_model_file):
    x, y = toy_crops(30, seed=3)
    write_crop_dataset(tmp_path / "data", x.astype(np.uint16), [CLASSES[k] for k in y],
                       default_panel())
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    assert main(["evaluate", str(tmp_path / "data"), "--model", str(tmp_path / "m.pt"),
                 "--out", str(tmp_path / "ev"), "--no-baselines", "--device", "cpu",
                 "--calibrate-on", str(tmp_path / "data"), "--save-model",
                 str(tmp_path / "c.pt")]) == 0
    warning = (f"120 of the 120 evaluated crops ({tmp_path / 'data'}) are among the 120 "
               f"calibration crops ({tmp_path / 'data'}): ECE, the review band")
    assert any(r.levelname == "WARNING" and warning in r.getMessage() for r in caplog.records)
    assert warning in capsys.readouterr().out
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert any(warning in w for w in report["warnings"])
    # Of a --split alone, the crops scored are counted (all 120 calibration crops were said
    # to be among 30 evaluated).
    from ctcnet.commands.evaluate_calibration import calibration_overlap_warning

    manifest = tmp_path / "data" / "manifest.csv"
    table = pd.read_csv(manifest)
    table["split"] = ["test" if i % 4 == 0 else "train" for i in range(len(table))]
    table.to_csv(manifest, index=False)
    said = calibration_overlap_warning(tmp_path / "data", tmp_path / "data", ["test"])
    assert said.startswith(f"30 of the 30 evaluated crops ({tmp_path / 'data'}, split test) "
                           "are among the 120 calibration crops")


def test_evaluate_runs_an_onnx_export_like_its_checkpoint(tmp_path, toy, capsys,
                                                         tiny_model_file):
    """`ctcnet evaluate --model x.onnx` goes through the same backend as predict, and a 0.32
    um/px copy of the data is brought to the model's 0.64 um/px (pixel size not ignored)."""
    from ctcnet.deploy.export import export_onnx
    from ctcnet.detect.resampling import resample

    _, (xt, yt) = toy
    panel = default_panel()
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx")
    labels = [CLASSES[k] for k in yt]
    write_crop_dataset(tmp_path / "data", xt.astype(np.uint16), labels, panel)
    fine = np.clip(np.rint(resample(xt.astype(np.float32), 2.0)), 0, 65535).astype(np.uint16)
    write_crop_dataset(tmp_path / "fine", fine, labels, panel.with_pixel_size(0.32))
    scores = {}
    for model, data in (("m.pt", "data"), ("m.onnx", "data"), ("m.onnx", "fine")):
        assert main(["evaluate", str(tmp_path / data), "--model", str(tmp_path / model),
                     "--out", str(tmp_path / f"out-{model}-{data}"), "--no-baselines",
                     "--json"]) == 0
        scores[model, data] = json.loads(capsys.readouterr().out)
    assert scores["m.onnx", "data"]["macro_f1"] == pytest.approx(scores["m.pt", "data"]["macro_f1"])
    assert scores["m.onnx", "fine"]["accuracy"] == pytest.approx(
        scores["m.onnx", "data"]["accuracy"], abs=0.1)


def test_evaluate_refuses_other_channels(tmp_path, toy, tiny_model_file):
    (x, y), _ = toy
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    other = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "CD61", "VIM"]})
    write_crop_dataset(tmp_path / "data", x[:4].astype(np.uint16), ["ctc"] * 4, other)
    from ctcnet.evaluation.evaluate import evaluate_dataset

    with pytest.raises(PanelMismatchError):
        evaluate_dataset(tmp_path / "data", tmp_path / "m.pt", tmp_path / "out",
                         with_baselines=False)
    assert main(["evaluate", str(tmp_path / "data"), "--model", str(tmp_path / "m.pt"),
                 "--out", str(tmp_path / "out"), "--no-baselines"]) == 2


def test_ece_helper_agrees_with_report(toy):
    _, (xt, yt) = toy
    p = np.eye(4)[yt] * 0.7 + 0.075
    assert expected_calibration_error(p, yt) == pytest.approx(1 - 0.775)  # always right at 0.775


def test_an_export_model_is_not_compared_with_baselines_fitted_on_scans(
        tmp_path, toy, caplog, capsys, tiny_model_file):
    """Baselines fitted on simulated scans read counts an export has lost: for a model that
    reads exports only they are left out, unless labelled exports are given to fit them on."""
    from ctcnet.evaluation.evaluate import evaluate_dataset

    (x, y), (xt, yt) = toy
    panel = default_panel()
    tiny_model_file(tmp_path / "e.pt", crop_size=SIZE, training={"data": {"view": "export"}})
    write_crop_dataset(tmp_path / "data", xt.astype(np.uint16), [CLASSES[k] for k in yt], panel)
    with caplog.at_level("WARNING"):
        report = evaluate_dataset(tmp_path / "data", tmp_path / "e.pt", tmp_path / "out")
    assert "baselines" not in report
    assert report["baseline_training"].startswith("none: the model reads exports only")
    assert "the model reads exports only" in caplog.text
    assert main(["evaluate", str(tmp_path / "data"), "--model", str(tmp_path / "e.pt"),
                 "--out", str(tmp_path / "out1")]) == 0
    assert "baselines: none: the model reads exports only" in capsys.readouterr().out
    # Labelled crops of the same kind as the test (here a split=train): fitted on those.
    crops = np.concatenate([x, xt]).astype(np.uint16)
    write_crop_dataset(tmp_path / "split", crops, [CLASSES[k] for k in np.concatenate([y, yt])],
                       panel, splits=["train"] * len(x) + ["test"] * len(xt))
    caplog.clear()
    with caplog.at_level("WARNING"):
        report = evaluate_dataset(tmp_path / "split", tmp_path / "e.pt", tmp_path / "out2")
    assert report["baseline_training"] == "split=train" and report["baselines"]
    # ... and says that those rows are in no figure.
    assert f"the {len(x)} crops of split=train are left out of every figure and fit the " \
        "baselines" in caplog.text


@pytest.mark.parametrize("baselines", ["none", "folder"])
def test_train_rows_are_scored_in_no_figure_whatever_fits_the_baselines(
        tmp_path, toy, caplog, tiny_model_file, baselines):
    """--no-baselines (or baselines fitted on another folder) scored a manifest's split=train
    rows too: a tour's held-out figures were two thirds training crops, said only as "this
    model was trained on this folder"."""
    from ctcnet.evaluation.evaluate import evaluate_dataset

    (x, y), (xt, yt) = toy
    panel = default_panel()
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    crops = np.concatenate([x, xt]).astype(np.uint16)
    # ("Train" as training reads it: the manifest's split words are read in any case)
    write_crop_dataset(tmp_path / "split", crops, [CLASSES[k] for k in np.concatenate([y, yt])],
                       panel, splits=["Train"] * len(x) + ["test"] * len(xt))
    if baselines == "folder":
        write_crop_dataset(tmp_path / "fit", x.astype(np.uint16), [CLASSES[k] for k in y], panel)
    with caplog.at_level("WARNING"):
        report = evaluate_dataset(tmp_path / "split", tmp_path / "m.pt", tmp_path / "out",
                                  with_baselines=baselines != "none",
                                  baseline_train=tmp_path / "fit" if baselines == "folder"
                                  else None)
    assert report["n"] == len(xt)
    said = f"the {len(x)} crops of split=train are left out of every figure, which are of " \
        f"the other {len(xt)} (split test;"
    assert said in caplog.text


def test_a_split_that_reads_like_train_is_refused_unless_the_splits_scored_are_named(
        tmp_path, toy):
    """Training crops under a misspelt split ("trian") were scored as test crops without a
    word (training refuses the value); a lab's own split names are scored as before."""
    from ctcnet.errors import InputError
    from ctcnet.evaluation.test_set import labelled_index

    (x, y), _ = toy
    n = len(x)
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=SIZE)
    for value, refused in (("trian", True), ("training", True), ("holdout", False),
                           ("spain", False)):
        folder = tmp_path / value
        write_crop_dataset(folder, x.astype(np.uint16), [CLASSES[k] for k in y],
                           default_panel(), splits=[value] * (n // 2) + ["test"] * (n - n // 2))
        if refused:
            with pytest.raises(InputError, match=f"'{value}' \\({n // 2} crops\\) read like "
                                                 "train"):
                labelled_index(folder, spec, with_baselines=False)
        else:
            assert len(labelled_index(folder, spec, with_baselines=False)[0]) == n
        index = labelled_index(folder, spec, with_baselines=False, splits=["test"])[0]
        assert len(index) == n - n // 2


def test_a_patient_in_two_splits_is_named_when_one_split_is_scored(tmp_path, toy, caplog):
    """Half of a patient's crops split=train, half split=test: training named it, evaluate
    --split test (its baselines fitted on the train rows) said nothing."""
    import logging

    from ctcnet.evaluation.test_set import labelled_index

    (x, y), _ = toy
    n = len(x)
    samples = ["P1"] * (n // 2) + ["P3"] * (n - n // 2)
    splits = ["train"] * (n // 2) + ["train", "test"] * ((n - n // 2) // 2) + \
        ["test"] * ((n - n // 2) % 2)
    write_crop_dataset(tmp_path / "data", x.astype(np.uint16), [CLASSES[k] for k in y],
                       default_panel(), sample_ids=samples, splits=splits)
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=SIZE)
    with caplog.at_level(logging.WARNING):
        labelled_index(tmp_path / "data", spec, with_baselines=False, splits=["test"])
    said = [r.getMessage() for r in caplog.records if "more than one split" in r.getMessage()]
    assert len(said) == 1 and "P3 (train, test)" in said[0] and "the baselines" in said[0]


def test_split_scores_one_split_of_a_manifest_the_baselines_fitted_on_train(
        tmp_path, toy, capsys, tiny_model_file):
    """--split test scores the test rows alone (not val), the baselines still fitted on the
    train rows; a split the manifest lacks is refused, naming those it has."""
    (x, y), (xt, yt) = toy
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    n_val = len(xt) // 2
    crops = np.concatenate([x, xt]).astype(np.uint16)
    splits = ["train"] * len(x) + ["val"] * n_val + ["test"] * (len(xt) - n_val)
    write_crop_dataset(tmp_path / "data", crops,
                       [CLASSES[k] for k in np.concatenate([y, yt])], default_panel(),
                       splits=splits)
    args = ["evaluate", str(tmp_path / "data"), "--model", str(tmp_path / "m.pt"), "--json"]
    assert main([*args, "--out", str(tmp_path / "all")]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == len(xt)  # val and test
    assert main([*args, "--out", str(tmp_path / "test"), "--split", "test"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == len(xt) - n_val and printed["baseline_training"] == "split=train"
    report = json.loads((tmp_path / "test" / "report.json").read_text())
    assert report["splits"] == ["test"]
    scored = pd.read_csv(tmp_path / "test" / "predictions.csv")
    assert len(scored) == len(xt) - n_val
    # Scoring the train rows: the baselines fit on none of them (simulated crops instead).
    assert main([*args, "--out", str(tmp_path / "train"), "--split", "train",
                 "--train-per-class", "20"]) == 0  # a few simulated: the test is of the rows
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == len(x) and printed["baseline_training"] == "simulated"
    status = main([*args, "--out", str(tmp_path / "x"), "--split", "holdout"])
    err = capsys.readouterr().err
    assert status != 0 and "--split holdout" in err and "train " in err and "test " in err


def test_evaluating_a_models_own_training_folder_is_warned_about(tmp_path):
    from ctcnet.evaluation.test_set import own_training_data_warning
    from ctcnet.io.panel import default_panel
    from ctcnet.io.taxonomy import default_taxonomy

    (tmp_path / "lab").mkdir()
    (tmp_path / "held_out").mkdir()
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=32,
                     training={"data": {"data_dir": str(tmp_path / "lab")}})
    assert "trained on" in own_training_data_warning(spec, tmp_path / "lab" / ".")
    assert own_training_data_warning(spec, tmp_path / "held_out") is None
    assert own_training_data_warning(spec.replace(training={}), tmp_path / "lab") is None
    # Its held-out test split (--split test), which training never reads, is no leak; its
    # validation split picked the checkpoint kept.
    assert own_training_data_warning(spec, tmp_path / "lab", splits=["test"]) is None
    for splits in (["val"], ["val", "test"], ["train"]):
        assert "trained on" in own_training_data_warning(spec, tmp_path / "lab", splits=splits)


def test_evaluates_rows_are_predicts_for_the_same_crops(tmp_path, toy, tiny_model_file):
    """predictions.csv of evaluate and of predict on one folder: the same calls, the guard's
    flags and what they send to review (evaluate's lacked the guard, 7 of 240 reviews)."""
    (x, y), _ = toy
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    write_crop_dataset(tmp_path / "data", x.astype(np.uint16), [CLASSES[k] for k in y],
                       default_panel())
    model = str(tmp_path / "m.pt")
    assert main(["evaluate", str(tmp_path / "data"), "--model", model, "--out",
                 str(tmp_path / "ev"), "--no-baselines"]) == 0
    assert main(["predict", str(tmp_path / "data"), "--model", model, "--out",
                 str(tmp_path / "pr")]) == 0
    ev = pd.read_csv(tmp_path / "ev" / "predictions.csv", keep_default_na=False)
    pr = pd.read_csv(tmp_path / "pr" / "data" / "predictions.csv", keep_default_na=False)
    for column in ("path", "class", "review", "guard", "markers_vouch"):
        assert ev[column].tolist() == pr[column].tolist(), column
    # The list a lab faces, as predict makes it, in the report (its band's share is the
    # network's doubt alone).
    listed = json.loads((tmp_path / "ev" / "report.json").read_text())["cnn"]["review_list"]
    summary = json.loads((tmp_path / "pr" / "data" / "summary.json").read_text())
    assert listed["events"] == int(ev["review"].astype(str).eq("True").sum()) == \
        summary["review_list"]["events"] and listed["n"] == len(ev)
    assert listed["by_reason"] == summary["review_list"]["by_reason"]


def test_crops_labelled_by_a_models_calls_are_said_to_measure_agreement(tmp_path):
    """`ctcnet crops` without --reviewed labels crops by the model's calls: evaluate then
    scored the model against itself as if it were a validation (macro-F1 0.956)."""
    from ctcnet.evaluation.test_set import model_labels_warning

    (tmp_path / "dataset.json").write_text(json.dumps({"labels": "model"}))
    said = model_labels_warning(tmp_path)
    assert "its labels are a model's own calls" in said and "not accuracy" in said
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": "reviewer"}))
    assert model_labels_warning(tmp_path) is None
    assert model_labels_warning(tmp_path / "none") is None


def test_a_recalibration_a_fine_tune_came_after_is_not_the_models_calibration():
    """A recalibrated model fine-tuned keeps its base's training record: its report would
    have scored the new network under the old network's temperature as "the calibration it
    replaced"."""
    from types import SimpleNamespace

    from ctcnet.evaluation.recalibrated_model import last_recalibration

    made = {"from_temperature": 0.8, "at": "2026-12-01T10:00:00+00:00"}
    spec = SimpleNamespace(training={"recalibration": made})
    assert last_recalibration(spec) == made
    spec.training["finetune"] = {"at": "2026-12-02T10:00:00+00:00"}
    assert last_recalibration(spec) == {}
    spec.training["recalibration"] = {**made, "at": "2026-12-03T10:00:00+00:00"}
    assert last_recalibration(spec)["at"].startswith("2026-12-03")  # recalibrated again
    assert last_recalibration(SimpleNamespace(training=None)) == {}
