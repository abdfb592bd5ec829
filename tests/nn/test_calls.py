"""The class prior of the calls: the cartridge prevalence rule for cartridges only; a crop set
gets the plain calls unless a prior is stated, alike in predict, evaluate and the ONNX runtime."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import save_tiny_model

from ctcnet.errors import InputError
from ctcnet.io.panel import load_panel
from ctcnet.nn.calls import DecisionRule, calls_from_proba

CROP = 40
NAMES = ["ctc", "wbc", "cluster", "debris"]
# A rule strong enough to move an untrained model's calls: everything not debris far down.
RULE = DecisionRule.from_dict(
    {"rule": "prior_shift", "log_weights": {"ctc": -30.0, "wbc": -30.0, "cluster": -30.0},
     "fitted": {"note": "unit test"}}, NAMES)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from ctcnet.nn.classifier import load_model, save_model
    from ctcnet.simulate import simulate_crops, write_crop_batch

    base = tmp_path_factory.mktemp("prior")
    pt, _ = save_tiny_model(base / "model.pt", crop_size=CROP, width=8)
    model, spec = load_model(pt)
    save_model(pt, model, spec.replace(decision=RULE))
    batch = simulate_crops(10, load_panel(None), crop_size=CROP, seed=4)
    write_crop_batch(batch, base / "crops", load_panel(None))
    return {"base": base, "model": pt, "crops": base / "crops"}


def run_both(setup, out, options):
    """``ctcnet predict`` and ``ctcnet evaluate`` on the same crop folder, same options; their
    per-crop calls (by path), and predict's summary and evaluate's report."""
    from ctcnet.cli import main

    common = ["--model", str(setup["model"]), "--device", "cpu", "--batch-size", "64", *options]
    assert main(["predict", str(setup["crops"]), "--out", str(out / "p"), "--quiet",
                 *common]) == 0
    assert main(["evaluate", str(setup["crops"]), "--out", str(out / "e"), "--no-baselines",
                 *common]) == 0
    predicted = pd.read_csv(out / "p" / "crops" / "predictions.csv")
    summary = json.loads((out / "p" / "crops" / "summary.json").read_text())
    report = json.loads((out / "e" / "report.json").read_text())
    return predicted, summary, report


@pytest.mark.parametrize("options,prior", [
    ([], "balanced"),
    (["--prior", "ctc=0.02,cluster=0.01"], "ctc=0.02,wbc=0.485,cluster=0.01,debris=0.485"),
    (["--prior", "cartridge"], "cartridge"),
])
def test_predict_and_evaluate_call_a_crop_folder_alike(setup, tmp_path, options, prior):
    predicted, summary, report = run_both(setup, tmp_path, options)
    # Evaluate's confusion matrix is made of the same calls predict writes per crop.
    labels = predicted["label"].map(NAMES.index).to_numpy()
    calls = predicted["class"].map(NAMES.index).to_numpy()
    confusion = np.zeros((4, 4), int)
    np.add.at(confusion, (labels, calls), 1)
    assert confusion.tolist() == report["cnn"]["confusion"]
    # ...and its own per-crop calls are predict's, crop by crop.
    evaluated = pd.read_csv(tmp_path / "e" / "predictions.csv")
    merged = predicted.merge(evaluated, on="path", suffixes=("_p", "_e"))
    assert len(merged) == len(predicted) == len(evaluated) == 40
    assert (merged["class_p"] == merged["class_e"]).all()
    # The page holds the figures the console said (it held the macro-F1 alone): per class,
    # with the counted recall's interval, and the review band.
    page = (tmp_path / "e" / "index.html").read_text()
    assert "<h2>Figures</h2>" in page and "as predict counts it" in page
    assert "95 % CI" in page
    assert ("review band (the network&#x27;s top p" in page) == (
        report["cnn"]["review_band"].get("auto_precision") is not None)
    assert (merged["review_p"] >= merged["review_e"]).all()  # predict's guard may add reviews
    # Both record the prior and the weights they applied.
    assert summary["prior"] == report["prior"] == prior
    assert summary["decision_log_weights"] == pytest.approx(report["decision_log_weights"])
    plain = (predicted[[f"p_{n}" for n in NAMES]].to_numpy()).argmax(axis=1)
    network = predicted["model_class"].map(NAMES.index).to_numpy()
    # The markers take part in the calls (guard.marker_calls) but only ever make ctc or wbc.
    changed = calls != network
    assert set(predicted.loc[changed, "class"]) <= {"ctc", "wbc"}
    if prior == "balanced":
        assert summary["decision_log_weights"] == {}
        assert (network == plain).all()
    if prior == "cartridge":  # asked for: the model's rule, which calls everything debris here
        assert summary["decision_log_weights"] == pytest.approx(RULE.weights)
        assert set(predicted["model_class"]) == {"debris"}


def test_the_default_is_not_the_cartridge_rule_on_a_crop_folder(setup, tmp_path):
    """The untrained model calls more than debris on its own: the rule would hide that."""
    predicted, summary, _ = run_both(setup, tmp_path, [])
    assert set(predicted["class"]) != {"debris"}
    assert summary["prior"] == "balanced"


def test_stated_priors_are_checked_and_filled_in():
    from ctcnet.nn.calls import prior_rule, stated_prior

    assert stated_prior("ctc=0.1,cluster=0.3", NAMES) == pytest.approx(
        {"ctc": 0.1, "wbc": 0.3, "cluster": 0.3, "debris": 0.3})
    assert stated_prior("ctc=0.1,wbc=0.1,cluster=0.1,debris=0.1", NAMES) == pytest.approx(
        dict.fromkeys(NAMES, 0.25))
    # A class named as a lab's folders name it (EMT-CTC, Cluster) reads as the class.
    assert stated_prior("CTC=0.1,Cluster=0.3", NAMES) == stated_prior("ctc=0.1,cluster=0.3",
                                                                       NAMES)
    for bad in ("ctc", "tumour=0.1", "ctc=x", "CTC=0.1,ctc=0.2", "ctc=0", "ctc=-1",
                "ctc=0.6,wbc=0.6", "ctc=0.5,wbc=0.5", "ctc=nan"):
        with pytest.raises(InputError, match="--prior"):
            stated_prior(bad, NAMES)
    # A European keyboard's decimal comma: said as one ("ctc=0 must be above 0" was said).
    with pytest.raises(InputError, match=r"a decimal comma\? write ctc=0\.02"):
        stated_prior("ctc=0,02", NAMES)
    # ...as the options' numbers say it (argparse said "invalid float value").
    import argparse

    from ctcnet.commands.arg_types import decimal, positive

    for parse in (decimal, positive):
        with pytest.raises(argparse.ArgumentTypeError, match=r"a decimal comma\? write 4\.5"):
            parse("4,5")
    assert decimal("4.5") == 4.5
    # Three digits after the comma may be a thousands separator: both numbers said.
    with pytest.raises(argparse.ArgumentTypeError, match=r"write 1\.000 or 1000"):
        decimal("1,000")
    # A balanced statement is no reweighting at all; the named priors resolve as documented.
    rule, name = prior_rule("ctc=0.25", NAMES, RULE, "cartridge")
    assert rule.weights == pytest.approx(dict.fromkeys(NAMES, 0.0), abs=1e-12)
    assert prior_rule(None, NAMES, RULE, "cartridge") == (RULE, "cartridge")
    assert prior_rule(None, NAMES, RULE, "balanced") == (DecisionRule.balanced(), "balanced")
    # A model without a rule calls cartridges at its training prior, and says so.
    assert prior_rule("cartridge", NAMES, None, "balanced") == (DecisionRule.balanced(),
                                                                "balanced")


def test_a_bad_prior_stops_predict_before_any_work(setup, tmp_path):
    from ctcnet.cli import main

    out = tmp_path / "out"
    assert main(["predict", str(setup["crops"]), "--model", str(setup["model"]), "--out",
                 str(out), "--quiet", "--prior", "tumour=0.1"]) == 2
    assert not list(out.glob("*/summary.json"))
    assert main(["predict", str(setup["crops"]), "--model", str(setup["model"]), "--out",
                 str(out), "--quiet", "--prior", "cartridge", "--no-prevalence-rule"]) == 2


def test_onnx_runtime_calls_at_the_prior_asked_for(setup, tmp_path):
    from ctcnet.deploy.export import export_onnx
    from ctcnet.deploy.runtime import OnnxClassifier
    from ctcnet.nn.calls import prior_rule
    from ctcnet.nn.classifier import load_model
    from ctcnet.nn.crop_input import synthetic_crops

    export_onnx(setup["model"], tmp_path / "m.onnx")
    clf = OnnxClassifier(tmp_path / "m.onnx")
    spec = load_model(setup["model"])[1]
    crops = synthetic_crops(spec, 24, seed=2)
    # Default: a scan's events, at cartridge prevalence (the model's rule).
    called, proba = clf.predict(crops)
    assert called == calls_from_proba(proba, NAMES, spec.review_threshold, RULE)[0].tolist()
    # A crop set's crops, as ctcnet predict calls a crop folder by default.
    called, proba = clf.predict(crops, prior="balanced")
    assert called == [NAMES[k] for k in proba.argmax(axis=1)]
    called, proba = clf.predict(crops, prior="ctc=0.02")
    rule = prior_rule("ctc=0.02", NAMES, RULE, "balanced")[0]
    assert called == calls_from_proba(proba, NAMES, spec.review_threshold, rule)[0].tolist()


def test_predict_and_evaluate_read_a_crop_set_at_the_stated_or_estimated_pixel_size(tmp_path,
                                                                                     capsys):
    """Published crops rarely state their pixel size: both commands refuse to guess, read them
    at --pixel-size UM, or estimate it (--pixel-size auto), and make the same calls."""
    from ctcnet.cli import main
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import write_tight_export_dataset

    panel = Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                             "channels": ["DAPI", "CK", "CD45"]})
    batch = simulate_crops({"ctc": 6, "wbc": 6}, panel, crop_size=48, seed=2)
    data = write_tight_export_dataset(batch, tmp_path / "tight", panel, pixel_size_um=0.16,
                                      state_pixel_size=False)
    model, _ = save_tiny_model(tmp_path / "m.pt", crop_size=32, width=8,
                               panel={"channels": ["DAPI", "CK", "CD45"],
                                      "pixel_size_um": 0.64})
    assert main(["predict", str(data), "--model", str(model), "--out",
                 str(tmp_path / "refused"), "--quiet", "--no-report"]) != 0
    assert "--pixel-size auto" in capsys.readouterr().err
    for option in ("0.16", "auto"):
        out = tmp_path / f"p{option}"
        assert main(["predict", str(data), "--model", str(model), "--out", str(out),
                     "--pixel-size", option, "--quiet", "--no-report"]) == 0
        summary = json.loads((out / "tight" / "summary.json").read_text())
        assert summary["pixel_size_from"] == ("given" if option == "0.16" else
                                              "estimated from the nuclei")
        if option == "0.16":
            assert summary["pixel_size_um"] == pytest.approx(0.16)
        else:
            assert 0.08 < summary["pixel_size_um"] < 0.32
        ev = tmp_path / f"e{option}"
        assert main(["evaluate", str(data), "--model", str(model), "--out", str(ev),
                     "--pixel-size", option, "--no-baselines"]) == 0
        predicted = pd.read_csv(out / "tight" / "predictions.csv")
        evaluated = pd.read_csv(ev / "predictions.csv")
        assert predicted["class"].tolist() == evaluated["class"].tolist()
        report = json.loads((ev / "report.json").read_text())
        # What evaluate says predict counts is what predict counts: per class the calls the
        # guard held, and the right calls among those counted.
        guard = predicted["guard"].fillna("")
        for name, entry in report["cnn"]["counted"].items():
            called = predicted["class"] == name
            counted = called & (guard == "")
            assert entry["held"] == int((called & (guard != "")).sum())
            assert entry["precision"]["n"] == int(counted.sum())
            assert entry["precision"]["k"] == int((counted & (predicted["label"] == name)).sum())
        assert report["pixel_size_from"] == summary["pixel_size_from"]
        assert report["pixel_size_um"] == pytest.approx(summary["pixel_size_um"])


def test_fit_reads_each_crop_at_the_scale_of_its_own_cell(tmp_path):
    """``--pixel-size fit``: crops each scaled to fit their cell (as published figures are) are
    read size-agnostically: the same cells exported at 0.08 and at 0.2 um/px, no pixel size
    stated, reach the model alike, whatever size each cell is."""
    from ctcnet.detect.crop_dataset import load_crops, read_crop_index
    from ctcnet.detect.pixel_size import FIT_CELL_UM, cell_diameter_px, fitted_pixel_sizes
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import write_tight_export_dataset

    # A disk of 20 px across in one channel: 12 um at 0.6 um/px.
    disk = np.zeros((3, 64, 64), np.float32) + 10.0
    yy, xx = np.mgrid[:64, :64] - 31.5
    disk[1] += 200.0 * (np.hypot(yy, xx) <= 10)
    assert cell_diameter_px(disk) == pytest.approx(20, rel=0.1)
    assert fitted_pixel_sizes([disk])[0] == pytest.approx(FIT_CELL_UM / 20, rel=0.1)

    panel = Panel.from_dict({"name": "core3", "pixel_size_um": 0.32,
                             "channels": ["DAPI", "CK", "CD45"]})
    batch = simulate_crops({"ctc": 4, "wbc": 4}, panel, crop_size=96, seed=5)
    loaded = []
    for um in (0.08, 0.2):
        root = write_tight_export_dataset(batch, tmp_path / f"t{um}", panel, pixel_size_um=um,
                                          state_pixel_size=False, seed=1)
        index = read_crop_index(root, pixel_size="fit")
        assert index.crop_pixel_um is not None and len(index.crop_pixel_um) == 8
        loaded.append(load_crops(index, 48, 0.64))
    sizes = [[cell_diameter_px(c) for c in crops] for crops in loaded]
    # The cells at about the fitted size (12 um at 0.64 um/px: ~19 px), each alike at both
    # magnifications.
    assert np.median(sizes[0]) == pytest.approx(FIT_CELL_UM / 0.64, rel=0.15)
    assert np.allclose(sizes[0], sizes[1], rtol=0.15)


def test_review_queues_doubt_that_could_change_a_count_and_reports_the_rest():
    from ctcnet.nn.calls import uncounted_doubt

    names = ["ctc", "wbc", "cluster", "debris"]
    proba = np.array([[0.70, 0.10, 0.00, 0.20],    # a doubtful ctc call: queued
                      [0.00, 0.55, 0.00, 0.45],    # leukocyte or debris: reported only
                      [0.25, 0.60, 0.00, 0.15],    # a CTC within the band: queued
                      [0.00, 0.95, 0.00, 0.05],    # sure: neither
                      [np.nan, 0.5, 0.2, 0.3],     # failed: queued
                      [0.08, 0.78, 0.06, 0.08]])   # a CTC the runner-up: queued
    _, _, review, failed = calls_from_proba(proba, names, 0.8)
    assert review.tolist() == [True, False, True, False, True, True]
    assert uncounted_doubt(proba, names, 0.8).tolist() == [False, True, False, False, False,
                                                           False]
    # A model without counted classes queues every doubtful call, as before.
    other = ["a", "b", "c", "d"]
    assert calls_from_proba(proba, other, 0.8)[2].tolist() == [True, True, True, False, True,
                                                               True]
    assert not uncounted_doubt(proba, other, 0.8).any()


def test_the_band_reads_band_proba_where_given_and_the_calls_stay_probas():
    """A review band reading another posterior (a cartridge's marker fusion) moves which
    uncounted calls are shown, never a call or its confidence."""
    from ctcnet.nn.calls import uncounted_doubt

    names = ["ctc", "wbc", "cluster", "debris"]
    rule = DecisionRule.prior_shift({"ctc": -3.75, "cluster": -6.5}).with_review_band(
        {"band": 0.01})
    proba = np.array([[0.4, 0.55, 0.01, 0.04], [0.02, 0.9, 0.0, 0.08]], np.float32)
    fused = np.array([[0.01, 0.98, 0.0, 0.01], [0.9, 0.05, 0.0, 0.05]], np.float32)
    plain = calls_from_proba(proba, names, 0.95, rule)
    banded = calls_from_proba(proba, names, 0.95, rule, band_proba=fused)
    assert plain[0].tolist() == banded[0].tolist() == ["wbc", "wbc"]
    np.testing.assert_array_equal(plain[1], banded[1])
    assert plain[2].tolist() == [True, False] and banded[2].tolist() == [False, True]
    assert uncounted_doubt(proba, names, 0.95, rule, band_proba=fused).tolist() == [True, False]


def test_a_counted_class_the_prior_alone_files_as_another_is_shown():
    """A cluster the network and its fusion find the likeliest, filed as debris by the
    cartridge's prior with a counted share under the band, is shown by a rule with a band;
    the call stays the prior's. Where the fused posterior finds debris likelier, it is not;
    at the balanced prior nothing changes (the likeliest class is the call)."""
    from ctcnet.nn.calls import counted_likeliest, deployment_proba, filed_by_prior, uncounted_doubt

    names = ["ctc", "wbc", "cluster", "debris"]
    rule = DecisionRule.prior_shift({"ctc": -3.0, "cluster": -7.5}).with_review_band(
        {"band": 0.0103})
    proba = np.array([[0.014, 0.001, 0.981, 0.004],    # a cluster to the network
                      [0.009, 0.012, 0.915, 0.064],    # the same, its markers say debris
                      [0.001, 0.002, 0.001, 0.996],    # debris
                      [np.nan, 0.1, 0.1, 0.1]], np.float32)
    fused = proba.copy()
    fused[0] = [0.0, 0.009, 0.908, 0.084]     # the fusion agrees: a cluster
    fused[1] = [0.0, 0.184, 0.380, 0.436]
    assert counted_likeliest(proba, names).tolist() == [True, True, False, False]
    assert counted_likeliest(fused, names).tolist() == [True, False, False, False]
    # At the cartridge's prior the cluster holds under the band's 0.0103 of the fusion's
    # posterior: the band alone would not show it.
    assert deployment_proba(fused[:1], names, rule)[0, 2] < 0.0103
    called, _, review, _ = calls_from_proba(proba, names, 0.95, rule, band_proba=fused)
    assert called.tolist() == ["debris", "debris", "debris", "failed"]
    assert review.tolist() == [True, False, False, True]
    # Row 2's doubt, once the fusion read it, is debris or a leukocyte: reported, not queued.
    assert uncounted_doubt(proba, names, 0.95, rule, band_proba=fused).tolist() == [
        False, True, False, False]
    # Without a band (whose fit counts these events as shown) the route is off: the
    # runner-up rule alone reads the prior's posterior (row 1: a CTC the runner-up; row 2:
    # a leukocyte).
    unbanded = DecisionRule.prior_shift({"ctc": -3.0, "cluster": -7.5})
    assert calls_from_proba(proba, names, 0.95, unbanded)[2].tolist() == [
        True, False, False, True]
    assert not filed_by_prior(proba, called, names, unbanded).any()
    assert filed_by_prior(fused, called, names, rule).tolist() == [True, False, False, False]
    balanced = calls_from_proba(proba, names, 0.95)
    assert balanced[0].tolist()[:3] == ["cluster", "cluster", "debris"]
    assert balanced[2].tolist() == [False, True, False, True]


def test_a_cluster_the_prior_files_as_a_ctc_is_shown():
    """The prior weighs a cluster under a CTC: a confident ctc call made of what the network
    (and its fusion) finds a cluster changes two counts and is shown with a band; a ctc call
    the network itself makes, or a cluster call, is not filed by the prior."""
    from ctcnet.nn.calls import filed_by_prior

    names = ["ctc", "wbc", "cluster", "debris"]
    rule = DecisionRule.prior_shift({"ctc": -3.75, "cluster": -7.5}).with_review_band(
        {"band": 0.0103})
    proba = np.array([[0.26, 0.001, 0.738, 0.001],   # a platelet-coated CTC pair
                      [0.998, 0.001, 0.0005, 0.0005],  # a CTC
                      [1e-5, 1e-5, 0.99997, 1e-5]], np.float32)  # a sure cluster
    called, confidence, review, _ = calls_from_proba(proba, names, 0.5, rule)
    assert called.tolist() == ["ctc", "ctc", "cluster"] and confidence[0] > 0.5
    assert filed_by_prior(proba, called, names, rule).tolist() == [True, False, False]
    assert review.tolist() == [True, False, False]
    # Without a band the route is off, as for the leukocyte and debris calls.
    unbanded = DecisionRule.prior_shift({"ctc": -3.75, "cluster": -7.5})
    assert not filed_by_prior(proba, called, names, unbanded).any()
