"""ctcnet.evaluation.calibration: one class or crops under the floor refused; few pooled."""

from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from ctcnet.errors import InputError
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec

CROP = 32


# 9. Crop datasets.

def test_calibration_on_one_class_is_refused():
    from ctcnet.evaluation.calibration import calibrate_spec

    spec = ModelSpec("compact", load_panel(None), default_taxonomy(), crop_size=CROP)
    logits = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with pytest.raises(InputError, match="at least two classes"):
        calibrate_spec(spec, logits, np.zeros(30, np.int64))


def test_calibrating_on_too_few_crops_is_refused_before_any_work(cart_and_model, crops, tmp_path,
                                                                 capsys):
    """Under the floor (crops of two classes) even the pooled fit is refused, before any
    work; 4 crops of three classes (the ``crops`` fixture) are enough to pool."""
    from ctcnet.detect.crop_dataset import write_crop_dataset

    images = np.random.default_rng(0).integers(90, 200, (3, 5, CROP, CROP)).astype(np.uint16)
    three = write_crop_dataset(tmp_path / "three", images, ["ctc"] * 3, load_panel(None))
    status, err = run_cli(capsys, "evaluate", crops, "--model", cart_and_model / "model.pt",
                          "--out", tmp_path / "ev", "--no-baselines", "--device", "cpu",
                          "--calibrate-on", three, "--save-model", tmp_path / "c.pt")
    assert_one_line_error(status, err, f"{three}: recalibration needs labelled crops of at "
                                       "least two classes; these are 3 (ctc 3)")
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / "ev").exists()
    # The model's card is written beside it: one of the report's names (report.pt's card is
    # report.json, which the report replaced), or a file there already, is refused.
    status, err = run_cli(capsys, "evaluate", crops, "--model", cart_and_model / "model.pt",
                          "--out", tmp_path / "ev", "--no-baselines", "--device", "cpu",
                          "--calibrate-on", crops, "--save-model", tmp_path / "ev" / "report.pt")
    assert_one_line_error(status, err, "its report.json is a file of the report")
    (tmp_path / "c.md").write_text("a lab's notes on c")
    status, err = run_cli(capsys, "evaluate", crops, "--model", cart_and_model / "model.pt",
                          "--out", tmp_path / "ev", "--no-baselines", "--device", "cpu",
                          "--calibrate-on", crops, "--save-model", tmp_path / "c.pt")
    assert_one_line_error(status, err, "c.md already exists")
    assert (tmp_path / "c.md").read_text() == "a lab's notes on c"


def test_calibrating_on_few_crops_pools_them_with_simulated_crops(cart_and_model, crops,
                                                                 tmp_path, capsys):
    """4 labelled crops: the saved model's temperature and threshold are fitted pooled with
    simulated crops, and the spec and the line printed say how and what the crops guarantee."""
    from ctcnet.nn.classifier import load_model

    status, err = run_cli(capsys, "evaluate", crops, "--model", cart_and_model / "model.pt",
                          "--out", tmp_path / "ev", "--no-baselines", "--device", "cpu",
                          "--calibrate-on", crops, "--save-model", tmp_path / "c.pt")
    assert status == 0
    _, spec = load_model(tmp_path / "c.pt")
    cal = spec.metrics["calibration"]
    assert cal["method"] == "pooled" and cal["lab_crops"] == 4
    assert cal["reference_crops"] == 400 and cal["lab_weight"] == 0.04
    assert cal["guarantee"]["crops"] == 4 and cal["guarantee"]["counted_cells"] == 2
    line = [x for x in err if x.startswith("calibrated:")]
    assert line and "pooled: 4 lab crops (4% of the fit) with 400 simulated crops" in line[0]
    assert "neither counted nor shown" in line[0] and "calls not shown to a person" in line[0]
    # Recalibrated again over it (--overwrite), the export of the model it replaces goes: it
    # would read as the new model's, its calibration the old one's.
    (tmp_path / "c.onnx").write_bytes(b"the export of the model calibrated earlier")
    status, err = run_cli(capsys, "evaluate", crops, "--model", cart_and_model / "model.pt",
                          "--out", tmp_path / "ev", "--no-baselines", "--device", "cpu",
                          "--calibrate-on", crops, "--save-model", tmp_path / "c.pt",
                          "--overwrite")
    assert status == 0 and not (tmp_path / "c.onnx").exists()
    assert [x for x in err if "c.onnx: removed, the export of the c.pt" in x]


def test_a_recalibrated_model_says_its_review_band_was_measured_on_the_base(cart_and_model,
                                                                            crops, tmp_path):
    """A new temperature moves the posterior the band reads: the band's stated miss rate
    (1 % with 95 % confidence) was the base's, and the recalibrated model's record says so
    (summary.json repeats it); the fusion the band reads is kept, so it still reads it."""
    from ctcnet.evaluation.recalibrated_model import calibrate_model_file
    from ctcnet.nn.classifier import load_model, save_model
    from ctcnet.nn.decision_rule import DecisionRule

    model, spec = load_model(cart_and_model / "model.pt")
    band = {"band": 0.5, "level": 0.01, "confidence": 0.95, "reads": "fused"}
    rule = DecisionRule.prior_shift({"ctc": -3.0}).with_review_band(band)
    save_model(tmp_path / "banded.pt", model, spec.replace(decision=rule))
    calibrate_model_file(tmp_path / "banded.pt", crops, tmp_path / "c.pt")
    record = load_model(tmp_path / "c.pt")[1].decision.review_band_record
    assert record["level"] == 0.01 and record["reads"] == "fused"
    assert record["fitted_for"] == ("the base model banded (kept by a recalibration on a lab's "
                                    "crops, not measured again on this model)")


def test_the_scored_crops_classes_are_read_as_the_models_class_names(cart_and_model, crops,
                                                                    tmp_path):
    """A scored set in CTC/ and WBC/ folders named its classes so: none was found among the
    calibration crops, so none was filled from the simulator's (and a set of 400 was pooled
    for nothing); a label that is no class of the model is passed over."""
    from ctcnet.evaluation.recalibrated_model import calibrate_model_file

    spec = calibrate_model_file(cart_and_model / "model.pt", crops, tmp_path / "c.pt",
                                expected=["CTC", "WBC", "Debris", "platelet"])
    calibration = spec.metrics["calibration"]
    assert calibration["method"] == "pooled"
    assert calibration["filled_from_reference"] == ["ctc", "wbc", "debris"]


def test_a_recalibrated_model_records_its_making_and_its_crops_are_told(cart_and_model, crops,
                                                                       tmp_path):
    """A recalibrated file named neither its base, its crops, the software nor when; scored on
    its own calibration crops it gave no warning ("0 of 30 missed" on the crops fitted to)."""
    from ctcnet.evaluation.recalibrated_model import calibrate_model_file
    from ctcnet.evaluation.test_set import crops_learnt_from
    from ctcnet.io.digests import file_sha256
    from ctcnet.nn.classifier import load_model

    calibrate_model_file(cart_and_model / "model.pt", crops, tmp_path / "c.pt")
    spec = load_model(tmp_path / "c.pt")[1]
    made = spec.training["recalibration"]
    assert made["from_sha256"] == file_sha256(cart_and_model / "model.pt")
    assert made["data_dir"] == str(Path(crops).resolve()) and made["crops"] > 0
    assert made["software"] and made["at"]
    # With its card beside it: offered by name with its own digest (a card-less file was
    # warned of everywhere, sent to finetune for a card), the base's figures said as the base's.
    import json

    from ctcnet.nn.registry import get_model

    card = json.loads((tmp_path / "c.json").read_text())
    assert card["sha256"] == file_sha256(tmp_path / "c.pt")
    assert card["recalibration"]["from_sha256"] == made["from_sha256"]
    assert get_model(str(tmp_path / "c.pt")).name == "c"
    text = (tmp_path / "c.md").read_text()
    assert "(recalibrated)" in text and "are the base's" in text and "temperature" in text
    # What it did to the marker guard, as a fine-tune's card says it: the instrument's leaks.
    assert "- Instrument's leaks" in text and "the guard allows" in text
    from ctcnet.detect.crop_dataset import load_crops, read_crop_index

    index = read_crop_index(crops, taxonomy=spec.taxonomy).conform(spec.panel, "crops")
    images = load_crops(index, spec.crop_size, spec.pixel_size_um, fitting=True)
    assert crops_learnt_from(spec, images).all()


def test_calibration_crops_without_a_stated_pixel_size_take_the_one_given(cart_and_model,
                                                                          crops, tmp_path):
    """--calibrate-on refused crops whose panel.json states no pixel size, telling the user
    to pass --pixel-size, which it then did not read."""
    import json
    import shutil

    from ctcnet.errors import InputError
    from ctcnet.evaluation.recalibrated_model import calibrate_model_file

    unstated = tmp_path / "unstated"
    shutil.copytree(crops, unstated)
    panel = json.loads((unstated / "panel.json").read_text())
    panel.pop("pixel_size_um")
    (unstated / "panel.json").write_text(json.dumps(panel))
    with pytest.raises(InputError, match="pixel"):
        calibrate_model_file(cart_and_model / "model.pt", unstated, tmp_path / "a.pt")
    calibrate_model_file(cart_and_model / "model.pt", unstated, tmp_path / "b.pt",
                         pixel_size=0.64)
    assert (tmp_path / "b.pt").is_file()
    # The command gives its --pixel-size to calibration crops that state none, never over
    # the size a folder states (--pixel-size fit was the evaluated crops' alone).
    from ctcnet.commands.evaluate_calibration import _states_pixel_size

    assert _states_pixel_size(crops) and not _states_pixel_size(unstated)
