"""ctcnet.evaluation.recalibration: few labelled crops pooled with simulated ones, the floor
under which nothing is refitted, and what the lab's own crops guarantee."""

import numpy as np
import pytest

from ctcnet.evaluation.calibration import (
    MIN_CALIBRATION_CROPS,
    MIN_CALIBRATION_PER_CLASS,
    calibrate_spec,
    fit_temperature,
    review_threshold_for_precision,
)
from ctcnet.evaluation.recalibration import (
    CELLS_FOR_ONE_PERCENT,
    calibration_method,
    describe,
    lab_guarantee,
    pooled_weights,
    recalibrate_spec,
)
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec


def spec():
    return ModelSpec("compact", load_panel(None), default_taxonomy(), crop_size=32)


def logits_for(labels, margin, rng, wrong=()):
    """Logits whose true class leads by ``margin`` (rows in ``wrong``: class 1 or 0 leads)."""
    z = rng.normal(0, 0.3, (len(labels), 4))
    z[np.arange(len(labels)), labels] += margin
    for i in wrong:
        z[i, (labels[i] + 1) % 4] += 2 * margin
    return z


def test_the_pool_weighs_the_lab_crops_one_each_and_the_simulated_ones_the_rest():
    ref = np.repeat(np.arange(4), 90)
    w = pooled_weights(np.zeros(10), ref)
    assert w[:10].tolist() == [1.0] * 10
    assert w[10:].sum() == pytest.approx(MIN_CALIBRATION_CROPS - 10)
    assert pooled_weights(np.zeros(150), ref)[150:].sum() == 0.0  # enough: theirs alone
    # A class the scored data holds that the lab's crops hold too few of is filled from the
    # simulator's crops of it, however many lab crops there are.
    lab = np.r_[np.zeros(148), [2, 2]]
    w = pooled_weights(lab, ref, short=[2, 3])[150:]
    assert w[ref == 2].sum() == pytest.approx(MIN_CALIBRATION_PER_CLASS - 2)
    assert w[ref == 3].sum() == pytest.approx(MIN_CALIBRATION_PER_CLASS)
    assert w[ref < 2].sum() == 0.0


def test_calibration_crops_without_a_class_the_scored_crops_hold_are_pooled_for_it():
    """120 lab crops with no cluster fitted alone gave a threshold that let every cluster of
    the scored set through unshown; the simulator's clusters now stand in for the lab's."""
    rng = np.random.default_rng(3)
    lab_y = np.repeat([0, 1, 3], 40)                    # ctc, wbc, debris: no cluster
    lab_z = logits_for(lab_y, 4.0, rng, wrong=[3])
    ref_y = np.repeat(np.arange(4), 100)
    ref_z = logits_for(ref_y, 2.0, rng, wrong=np.flatnonzero(ref_y == 2)[:20])
    names = list(spec().class_names)
    alone = recalibrate_spec(spec(), lab_z, lab_y, reference=(ref_z, ref_y))
    assert alone.metrics["calibration"]["method"] == "lab"  # nothing says a class is missing
    new = recalibrate_spec(spec(), lab_z, lab_y, reference=(ref_z, ref_y), expected=names)
    cal = new.metrics["calibration"]
    assert cal["method"] == "pooled" and cal["filled_from_reference"] == ["cluster"]
    assert cal["lab_weight"] == pytest.approx(120 / 125)
    assert "its cluster standing in for the lab's (under 5 crops)" in describe(cal)
    # Where the simulator draws none of it (a lab's own class), the lab's crops fit alone,
    # as without the scored set's classes; a name no class of the model is is passed over.
    def none_drawn():
        raise ValueError("the simulator draws no cluster")

    kept = recalibrate_spec(spec(), lab_z, lab_y, reference=none_drawn,
                            expected=[*names, "platelet"])
    assert kept.metrics["calibration"]["method"] == "lab"
    assert kept.review_threshold == alone.review_threshold
    # The simulator's clusters take part in the fit.
    assert (new.temperature, new.review_threshold) != (alone.temperature,
                                                       alone.review_threshold)


def test_weights_move_the_temperature_and_the_review_threshold():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)
    z = logits_for(y, 4.0, rng, wrong=[0])
    heavy = np.ones(100)
    heavy[0] = 50.0  # one confident error that counts as 50 crops
    assert review_threshold_for_precision(softmax_(z), y, 0.99) < \
        review_threshold_for_precision(softmax_(z), y, 0.99, weights=heavy)
    assert fit_temperature(z, y) < fit_temperature(z, y, weights=heavy)
    # Weights of one change nothing.
    assert fit_temperature(z, y, weights=np.ones(100)) == pytest.approx(fit_temperature(z, y))


def softmax_(z):
    from ctcnet.evaluation.calibration import softmax

    return softmax(z)


def test_few_lab_crops_are_pooled_and_the_card_figures_are_the_labs():
    rng = np.random.default_rng(1)
    lab_y = np.repeat(np.arange(4), 3)                  # 12 lab crops, 3 a class
    lab_z = logits_for(lab_y, 6.0, rng, wrong=[0, 4])   # overconfident: two confident errors
    ref_y = np.repeat(np.arange(4), 100)
    ref_z = logits_for(ref_y, 3.0, rng)
    new = recalibrate_spec(spec(), lab_z, lab_y, reference=(ref_z, ref_y))
    cal = new.metrics["calibration"]
    assert cal["method"] == "pooled" and cal["lab_crops"] == 12
    assert cal["reference_crops"] == 400 and cal["lab_weight"] == pytest.approx(0.12)
    lab_alone, ref_alone = fit_temperature(lab_z, lab_y), fit_temperature(ref_z, ref_y)
    assert min(lab_alone, ref_alone) < new.temperature < max(lab_alone, ref_alone)
    assert cal["review"]["n"] == 12  # figures of the lab's crops, not of the pool
    g = cal["guarantee"]
    assert g["crops"] == 12 and g["counted_cells"] == 6  # ctc and cluster
    # Fitted on these crops: in-sample, said so, with the base model's misses on them beside.
    assert g["in_sample"] and isinstance(g["missed_before_fit"], int)
    assert "(in-sample: no bound for other crops;" in describe(cal)
    assert f"({g['missed_before_fit']} before the fit)" in describe(cal)
    assert "pooled: 12 lab crops (12% of the fit) with 400 simulated crops" in describe(cal)
    # The review load is of the held-out crops, not of the CTCs and clusters before it.
    assert f"{g['reviewed_fraction']:.0%} of the 12 calibration crops shown" in describe(cal)
    # The calls not shown, with their bound, as the fine-tune's card says them.
    assert (f"{g['auto_wrong']} of {g['auto_calls']} calls not shown to a person wrong "
            f"(one-sided Clopper-Pearson bound {g['auto_error_bound']:.1%}") in describe(cal)
    with pytest.raises(ValueError, match="reference crops"):
        recalibrate_spec(spec(), lab_z, lab_y)


def test_under_the_floor_nothing_is_refitted():
    assert calibration_method({"ctc": 3, "wbc": 0}) == (
        None, "recalibration needs labelled crops of at least two classes; these are 3 (ctc 3)")
    assert calibration_method({})[0] is None
    assert calibration_method({"ctc": 1, "wbc": 1})[0] == "pooled"
    assert calibration_method({"ctc": 50, "wbc": 50})[0] == "lab"
    with pytest.raises(ValueError, match="at least two classes"):
        recalibrate_spec(spec(), np.zeros((3, 4)), np.array([0, 0, 0]),
                         reference=(np.zeros((4, 4)), np.arange(4)))


def test_enough_lab_crops_calibrate_on_them_alone_as_before():
    rng = np.random.default_rng(2)
    y = np.repeat(np.arange(4), 30)
    z = logits_for(y, 3.0, rng, wrong=[5])
    before = calibrate_spec(spec(), z, y)
    after = recalibrate_spec(spec(), z, y, reference=(z[:8], y[:8]))
    assert after.metrics["calibration"]["method"] == "lab"
    assert (after.temperature, after.review_threshold) == (before.temperature,
                                                           before.review_threshold)


def test_the_guarantee_counts_misses_on_the_labs_crops_with_a_clopper_pearson_bound():
    from scipy.stats import beta

    s = spec().replace(review_threshold=0.9)
    y = np.array([0] * 10 + [1] * 10)  # 10 CTCs, 10 leukocytes
    z = np.full((20, 4), -5.0)
    z[np.arange(20), y] = 5.0
    z[0] = [-5, 5, -5, -5]          # a CTC confidently called wbc: missed
    z[1] = [0.2, 0.0, -5, -5]       # a CTC called ctc in doubt: shown, not missed
    g = lab_guarantee(s, z, y)
    assert (g["counted_cells"], g["missed"]) == (10, 1)
    assert g["miss_bound"] == pytest.approx(beta.ppf(0.95, 2, 9), abs=1e-4)
    assert g["auto_calls"] == 19 and g["auto_wrong"] == 1
    assert g["cells_for_one_percent"] == CELLS_FOR_ONE_PERCENT == 299


def test_crops_all_called_right_are_pooled_at_half_the_fit_not_run_to_the_bound():
    """Enough lab crops, every one called right: alone, the temperature has no minimum and
    runs towards 0, and the review band empties. They are pooled with the
    simulator's crops (drawn only then), half of the fit each; where those cannot bound it
    either, or none are given, nothing is refitted."""
    rng = np.random.default_rng(3)
    y = np.repeat(np.arange(4), 40)
    z = logits_for(y, 4.0, rng)                        # 160 crops, all right
    alone = calibrate_spec(spec(), z, y)
    assert alone.temperature < 0.5 and alone.metrics["calibration"]["review"][
        "reviewed_fraction"] == 0.0
    ref_y = np.repeat(np.arange(4), 100)
    ref_z = logits_for(ref_y, 3.0, rng, wrong=range(0, 400, 25))
    drawn = []

    def reference():
        drawn.append(1)
        return ref_z, ref_y

    new = recalibrate_spec(spec(), z, y, reference=reference)
    cal = new.metrics["calibration"]
    assert drawn and cal["method"] == "pooled" and cal["lab_weight"] == pytest.approx(0.5)
    assert new.temperature > 2 * alone.temperature and "all called right" in describe(cal)
    with pytest.raises(ValueError, match="runs towards 0"):
        recalibrate_spec(spec(), z, y)
    with pytest.raises(ValueError, match="so are the simulated crops"):
        recalibrate_spec(spec(), z, y, reference=(logits_for(ref_y, 4.0, rng), ref_y))
    # Enough crops, but too few of a class to fit alone: pooled, and all right, they still
    # weigh no more than half (the simulator's would otherwise weigh nothing past 100).
    few_ctc = np.r_[np.zeros(3, int), np.repeat(np.arange(1, 4), 40)]
    pooled = recalibrate_spec(spec(), logits_for(few_ctc, 4.0, rng), few_ctc,
                              reference=reference).metrics["calibration"]
    assert pooled["method"] == "pooled" and pooled["lab_weight"] == pytest.approx(0.5)
    # Crops with an error among them fit alone; the pool is never drawn.
    drawn.clear()
    wrong = logits_for(y, 3.0, rng, wrong=[3, 50])
    assert recalibrate_spec(spec(), wrong, y, reference=reference).metrics[
        "calibration"]["method"] == "lab" and not drawn


def test_the_guarantee_counts_the_models_own_counted_classes_and_names_them():
    """A lab's taxonomy that counts ``apoptotic`` beside ``ctc`` (no cluster class): its
    apoptotic cells are in the guarantee (they were left out, and a card stated 0 of 10 where
    evaluate read 0 of 20), and the line names the classes, not "CTCs and clusters"."""
    from ctcnet.io.taxonomy import load_taxonomy

    lab = load_taxonomy({"classes": ["ctc", "apoptotic", "wbc", "debris"],
                         "reported": ["ctc", "apoptotic"]})
    s = ModelSpec("compact", load_panel(None), lab, crop_size=32, review_threshold=0.9)
    y = np.repeat(np.arange(4), 10)
    z = np.full((40, 4), -5.0)
    z[np.arange(40), y] = 5.0
    z[10] = [-5, -5, 5, -5]  # an apoptotic cell confidently called wbc: missed
    g = lab_guarantee(s, z, y)
    assert (g["counted_cells"], g["missed"]) == (20, 1)
    assert g["counted_classes"] == ["ctc", "apoptotic"]
    line = describe({"temperature": 1.0, "review": {"threshold": 0.9, "n": 40},
                     "lab_crops": 40, "guarantee": g})
    assert "1 of 20 cells of ctc, apoptotic neither counted nor shown" in line, line
