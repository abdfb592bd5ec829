"""ctcnet.evaluation.calibration: calibration on one class or too few crops is refused."""

import numpy as np
import pytest
import torch

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.errors import InputError
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.classifier import build_classifier, save_model
from ctcnet.nn.spec import ModelSpec

CROP = 32


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    from ctcnet.simulate import simulate_cartridge

    root = tmp_path_factory.mktemp("harden")
    simulate_cartridge(root / "cart", load_panel(None), num_frames=3, frame_shape=(128, 160),
                       seed=5, events_per_frame=8, sample_id="S1")
    torch.manual_seed(0)
    spec = ModelSpec("compact", load_panel(None), default_taxonomy(), crop_size=CROP)
    save_model(root / "model.pt", build_classifier(spec))
    return root


def run_cli(capsys, *argv):
    """(exit status, stderr lines) of ``ctcnet ARGV`` run in this process."""
    status = main([str(a) for a in argv])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return status, err


def assert_one_line_error(status, err, match):
    assert status == 2 and len(err) == 1, err
    assert match in err[0], err[0]


# 9. Crop datasets.

@pytest.fixture
def crops(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(90, 200, (4, 5, CROP, CROP)).astype(np.uint16)
    return write_crop_dataset(tmp_path / "crops", images, ["ctc", "wbc", "ctc", "debris"],
                              load_panel(None), ["p1", "p1", "p2", "p2"])


def test_calibration_on_one_class_is_refused():
    from ctcnet.evaluation.calibration import calibrate_spec

    spec = ModelSpec("compact", load_panel(None), default_taxonomy(), crop_size=CROP)
    logits = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    with pytest.raises(InputError, match="at least two classes"):
        calibrate_spec(spec, logits, np.zeros(30, np.int64))


def test_calibrating_on_too_few_crops_is_refused_before_any_work(base, crops, tmp_path,
                                                                 capsys):
    status, err = run_cli(capsys, "evaluate", crops, "--model", base / "model.pt", "--out",
                          tmp_path / "ev", "--no-baselines", "--device", "cpu",
                          "--calibrate-on", crops, "--save-model", tmp_path / "c.pt")
    assert_one_line_error(status, err, f"{crops}: calibration needs at least 100 crops")
    assert "these are 4 (ctc 2, wbc 1, debris 1)" in err[0]
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / "ev").exists()
