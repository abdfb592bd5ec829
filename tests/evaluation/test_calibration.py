"""ctcnet.evaluation.calibration: calibration on one class or too few crops is refused."""

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
    status, err = run_cli(capsys, "evaluate", crops, "--model", cart_and_model / "model.pt",
                          "--out", tmp_path / "ev", "--no-baselines", "--device", "cpu",
                          "--calibrate-on", crops, "--save-model", tmp_path / "c.pt")
    assert_one_line_error(status, err, f"{crops}: calibration needs at least 100 crops")
    assert "these are 4 (ctc 2, wbc 1, debris 1)" in err[0]
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / "ev").exists()
