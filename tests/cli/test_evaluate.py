"""``ctcnet evaluate``: bad options give one line."""

from conftest import assert_one_line_error, run_cli

# 9. Crop datasets.

def test_evaluate_batch_size_zero_gives_one_line(crops, capsys):
    assert_one_line_error(*run_cli(capsys, "evaluate", crops, "--out", crops.parent / "ev",
                                   "--batch-size", "0"), "--batch-size")


def test_the_summary_says_when_calibration_fits_worse_and_what_the_review_band_holds():
    from ctcnet.commands.evaluate_figures import summary_lines as _summary_lines

    band = {"threshold": 0.8, "reviewed_fraction": 0.037, "auto_precision": 0.85577,
            "shown_fraction": 0.012, "reviewed": 4, "n": 108, "auto_right": 89,
            "auto_calls": 104, "counted_cells": 13, "counted_missed": 3}
    cnn = {"macro_f1": 0.9, "accuracy": 0.9, "ece": 0.166, "ece_uncalibrated": 0.090,
           "per_class": {}, "review_band": band}
    lines = _summary_lines({"n": 108, "class_counts": {}, "cnn": cnn})
    assert any("fits these crops worse than none: --calibrate-on" in line for line in lines)
    # Each share with what it is of, and the figure a card's guarantee states.
    assert any("3.7% of crops (4 of 108), the calls above it 85.6% precise (89 of 104); "
               "1.2% of crops the network's doubt that could change a reported count (before "
               "the markers' word and the guard's flags: what predict shows is the review list "
               "below); CTCs and clusters neither counted nor shown 3 of 13" in line
               for line in lines)
    lines = _summary_lines({"n": 108, "class_counts": {}, "cnn": {**cnn, "ece": 0.05}})
    assert not any("fits these crops worse" in line for line in lines)
    # Calibrated here: not told to take the step just taken.
    lines = _summary_lines({"n": 108, "class_counts": {}, "cnn": cnn}, calibrated_on="lab_cal")
    assert any("the temperature fitted here on lab_cal fits these crops worse than none: its "
               "crops are few or unlike these" in line for line in lines)
    assert not any("--calibrate-on" in line for line in lines)
    # Against the calibration it replaced, not only none: T=1 read 0.033 where the model's
    # own read 0.017 beside the new 0.014.
    refit = {**cnn, "ece": 0.02, "ece_uncalibrated": 0.033, "ece_before_recalibration": 0.017}
    lines = _summary_lines({"n": 108, "class_counts": {}, "cnn": refit}, calibrated_on="lab")
    assert "ECE 0.020 (uncalibrated 0.033, under the calibration it replaced 0.017; of the " \
           "network's probabilities)" in lines[1]
    assert any("fits these crops worse than the one it replaced" in line for line in lines)


def test_a_class_never_called_has_no_precision_on_the_console():
    """0/0 read "P 0.000" beside "counted P n/a (0/0)" in the same report."""
    from ctcnet.commands.evaluate_figures import summary_lines as _summary_lines

    band = {"threshold": 0.8, "reviewed_fraction": 0.0, "auto_precision": 0.833,
            "reviewed": 0, "n": 30, "auto_right": 25, "auto_calls": 30}
    cnn = {"macro_f1": 0.45, "accuracy": 0.83, "ece": 0.1, "ece_uncalibrated": 0.1,
           "review_band": band, "class_names": ["ctc", "wbc"], "confusion": [[25, 0], [5, 0]],
           "per_class": {"ctc": {"precision": 0.833, "recall": 1.0, "f1": 0.909, "support": 25},
                         "wbc": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 5}}}
    lines = _summary_lines({"n": 30, "class_counts": {}, "cnn": cnn})
    assert "  wbc        P n/a (never called)  R 0.000  F1 0.000  n 5" in lines
    assert "  ctc        P 0.833  R 1.000  F1 0.909  n 25" in lines


def test_the_model_line_names_the_model_calibrated_here(capsys):
    """Evaluated after --calibrate-on, the figures are the saved model's: the line named the
    model given."""
    from ctcnet.commands.models import say_model

    say_model("models/lab_cal.pt", calibrated_from="models/lab.pt")
    assert capsys.readouterr().err == \
        "model: models/lab_cal.pt (calibrated here from models/lab.pt)\n"


def test_the_summary_says_the_pixel_size_the_crops_were_read_at():
    """A gallery's thumbnails read at a size they were not made at are called otherwise (and
    may get another model); the console named no size, the report page alone did."""
    from ctcnet.commands.evaluate_figures import summary_lines as _summary_lines

    band = {"threshold": 0.8, "reviewed_fraction": 0.0, "auto_precision": 1.0,
            "reviewed": 0, "n": 8, "auto_right": 8, "auto_calls": 8}
    cnn = {"macro_f1": 0.9, "accuracy": 0.9, "ece": 0.05, "ece_uncalibrated": 0.05,
           "per_class": {}, "review_band": band}
    stated = _summary_lines({"n": 8, "class_counts": {}, "cnn": cnn, "pixel_size_um": 0.64,
                             "pixel_size_from": "panel.json"})
    assert stated[0] == "8 crops {}, read at 0.64 um/px (panel.json)"
    fitted = _summary_lines({"n": 8, "class_counts": {}, "cnn": cnn, "pixel_size_um": 0.581,
                             "pixel_size_from": "each crop fitted to its cell"})
    assert fitted[0].endswith("read at each crop fitted to its cell (median 0.581 um/px)")
    assert _summary_lines({"n": 8, "class_counts": {}, "cnn": cnn})[0] == "8 crops {}"


def test_a_macro_f1_resting_on_a_class_of_a_few_crops_is_said():
    """A held-out patient with one cluster: its F1 of 1.000 was a quarter of the macro-F1."""
    from ctcnet.commands.evaluate_figures import few_crops_warning

    per_class = {"ctc": {"support": 12}, "wbc": {"support": 30}, "cluster": {"support": 1},
                 "debris": {"support": 10}}
    said = few_crops_warning({"cnn": {"per_class": per_class}})
    assert said.startswith("cluster on 1 crop(s): macro-F1 weighs each class alike, so 1/4")
    per_class["cluster"]["support"] = 10
    assert few_crops_warning({"cnn": {"per_class": per_class}}) is None
