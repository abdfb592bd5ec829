"""Metrics against values computed by hand."""

import json

import numpy as np
import pytest

from ctcnet.evaluation import metrics


def one_hot_proba(pred, k, conf=0.9):
    """Probabilities whose argmax is ``pred`` with top probability ``conf``."""
    pred = np.asarray(pred)
    p = np.full((len(pred), k), (1 - conf) / (k - 1))
    p[np.arange(len(pred)), pred] = conf
    return p


def test_report_matches_hand_computed_values():
    names = ["ctc", "wbc", "debris"]
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    r = metrics.classification_report(y_true, one_hot_proba(y_pred, 3), names)
    # confusion rows = truth: ctc 2 right 1 as wbc; wbc 1 right 1 as debris; debris 1 right
    assert r["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["per_class"]["ctc"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert r["per_class"]["wbc"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert r["per_class"]["debris"] == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    json.dumps(r)  # JSON-ready


def test_macro_f1_over_present_classes_and_absent_calls_are_errors():
    names = ["ctc", "wbc", "cluster", "debris"]
    y_true = [0, 0, 1, 1]
    y_pred = [0, 2, 1, 1]  # one CTC called "cluster", a class absent from the data
    r = metrics.classification_report(y_true, one_hot_proba(y_pred, 4), names)
    assert set(r["per_class"]) == {"ctc", "wbc"}
    assert r["per_class"]["ctc"]["recall"] == pytest.approx(0.5)
    assert r["per_class"]["ctc"]["f1"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert r["absent_predicted"] == {"cluster": 1, "debris": 0}
    assert r["accuracy"] == pytest.approx(0.75)
    assert metrics.macro_f1(y_true, y_pred, 4) == pytest.approx(r["macro_f1"])


def test_present_class_never_predicted_has_zero_f1():
    r = metrics.classification_report([0, 1, 1], one_hot_proba([1, 1, 1], 2), ["ctc", "wbc"])
    assert r["per_class"]["ctc"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert r["per_class"]["wbc"]["precision"] == pytest.approx(2 / 3)
    assert r["macro_f1"] == pytest.approx((0 + 0.8) / 2)


def test_expected_calibration_error_by_hand():
    # Two events at confidence 0.95 (one right), two at 0.65 (both right), 10 bins:
    # |0.5 - 0.95| * 0.5 + |1.0 - 0.65| * 0.5 = 0.4
    proba = np.array([[0.95, 0.05], [0.95, 0.05], [0.35, 0.65], [0.65, 0.35]])
    y = np.array([0, 1, 1, 0])
    assert metrics.expected_calibration_error(proba, y, n_bins=10) == pytest.approx(0.4)
    bins = metrics.reliability_bins(proba, y, n_bins=10)
    assert bins["count"].tolist() == [0, 0, 0, 0, 0, 0, 2, 0, 0, 2]
    assert bins["accuracy"][9] == pytest.approx(0.5)
    # A perfectly calibrated, perfectly confident model has ECE 0.
    assert metrics.expected_calibration_error(np.eye(3), [0, 1, 2]) == pytest.approx(0.0)


def test_sensitivity_at_specificity_by_hand():
    negatives = np.arange(10) / 10  # 0.0 .. 0.9
    positives = np.array([0.95, 0.85, 0.5])
    scores = np.concatenate([negatives, positives])
    is_pos = np.r_[np.zeros(10, bool), np.ones(3, bool)]
    at90 = metrics.sensitivity_at_specificity(scores, is_pos, 0.9)  # one negative may pass
    assert at90["sensitivity"] == pytest.approx(2 / 3)
    assert at90["specificity"] == pytest.approx(0.9)
    assert 0.8 < at90["threshold"] <= 0.85
    at99 = metrics.sensitivity_at_specificity(scores, is_pos, 0.99)  # none may pass
    assert at99["sensitivity"] == pytest.approx(1 / 3)
    assert at99["specificity"] == 1.0
    # Ties at the cut-off are kept out, so specificity never drops below the target.
    tied = metrics.sensitivity_at_specificity([0.5, 0.5, 0.5, 0.5], [0, 0, 1, 1], 0.5)
    assert tied["specificity"] == 1.0 and tied["sensitivity"] == 0.0
    assert metrics.sensitivity_at_specificity([0.1, 0.2], [1, 1], 0.99)["sensitivity"] is None


def test_one_vs_rest_auc_by_hand():
    # Classic example: ROC AUC 0.75, average precision (1 + 2/3) / 2.
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    proba = np.stack([1 - p1, p1], axis=1)
    out = metrics.one_vs_rest_auc([0, 0, 1, 1], proba, ["wbc", "ctc"])
    assert out["roc_auc"]["ctc"] == pytest.approx(0.75)
    assert out["pr_auc"]["ctc"] == pytest.approx((1 + 2 / 3) / 2)
    none = metrics.one_vs_rest_auc([0, 0], np.array([[0.9, 0.1], [0.8, 0.2]]), ["a", "b"])
    assert none["roc_auc"] == {"a": None, "b": None}


def test_recall_by_group():
    out = metrics.recall_by_group([0, 0, 0, 1], [0, 1, 0, 1], ["ctc_dim", "ctc_dim", "ctc", "wbc"])
    assert out == {"ctc": {"recall": 1.0, "n": 1}, "ctc_dim": {"recall": 0.5, "n": 2},
                   "wbc": {"recall": 1.0, "n": 1}}


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        metrics.classification_report([0, 1], np.ones((3, 2)) / 2, ["a", "b"])
    with pytest.raises(ValueError):
        metrics.classification_report([0, 5], np.ones((2, 2)) / 2, ["a", "b"])
