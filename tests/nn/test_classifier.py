"""ctcnet.nn.classifier: model files with NaN weights, a zero temperature or broken contents
are refused when loaded, in one line."""

import shutil

import numpy as np
import pytest
import torch

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.errors import InputError
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.classifier import build_classifier, load_model, save_model
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


@pytest.fixture
def cart(base, tmp_path):
    shutil.copytree(base / "cart", tmp_path / "cart")
    return tmp_path / "cart"


def run_cli(capsys, *argv):
    """(exit status, stderr lines) of ``ctcnet ARGV`` run in this process."""
    status = main([str(a) for a in argv])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return status, err


def predict_args(base, cart, *extra):
    return ["predict", cart, "--out", cart.parent / "out", "--model", base / "model.pt",
            "--device", "cpu", "--quiet", "--no-report", "--workers", "0", *extra]


def assert_one_line_error(status, err, match):
    assert status == 2 and len(err) == 1, err
    assert match in err[0], err[0]


def _nan_weight_model(base, path):
    """``base``'s model with one convolution weight NaN, saved to ``path``."""
    blob = torch.load(base / "model.pt", weights_only=True)
    key = next(k for k, v in blob["state_dict"].items() if k.startswith("net.") and v.ndim == 4)
    blob["state_dict"][key].view(-1)[0] = float("nan")
    torch.save(blob, path)
    return path, key


def test_a_model_file_with_nan_weights_is_refused_when_loaded(base, cart, crops, capsys):
    nan, key = _nan_weight_model(base, cart.parent / "nan.pt")
    with pytest.raises(InputError, match=f"NaN or infinite values \\({key}\\)"):
        load_model(nan)
    argv = predict_args(base, cart)
    argv[argv.index("--model") + 1] = nan
    status, err = run_cli(capsys, *argv)
    assert_one_line_error(status, err, f"{nan}: weights hold NaN or infinite values")
    assert not (cart.parent / "out" / "S1" / "events.csv").exists()
    status, err = run_cli(capsys, "evaluate", crops, "--model", nan, "--out",
                          cart.parent / "ev", "--no-baselines", "--device", "cpu")
    assert_one_line_error(status, err, f"{nan}: weights hold NaN or infinite values")


def test_temperature_zero_model_is_refused(base, tmp_path, capsys):
    blob = torch.load(base / "model.pt", weights_only=True)
    blob["ctcnet_spec"]["temperature"] = 0.0
    torch.save(blob, tmp_path / "t0.pt")
    with pytest.raises(InputError, match="temperature 0.0 must be a positive"):
        load_model(tmp_path / "t0.pt")


# 9. Crop datasets.

@pytest.fixture
def crops(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(90, 200, (4, 5, CROP, CROP)).astype(np.uint16)
    return write_crop_dataset(tmp_path / "crops", images, ["ctc", "wbc", "ctc", "debris"],
                              load_panel(None), ["p1", "p1", "p2", "p2"])


def _edited_model(base, tmp_path, edit):
    blob = torch.load(base / "model.pt", weights_only=True)
    edit(blob)
    torch.save(blob, tmp_path / "edited.pt")
    return tmp_path / "edited.pt"


@pytest.mark.parametrize("edit, match", [
    (lambda b: b["ctcnet_spec"].update(arch="vgg99"), "unknown arch"),
    (lambda b: b["ctcnet_spec"].update(crop_size=0), "crop_size 0"),
    (lambda b: b["state_dict"].update({k: torch.zeros(3, 3) for k in b["state_dict"]
                                       if k.endswith("features.0.0.weight")}), "do not fit"),
])
def test_broken_model_files_give_one_line(base, tmp_path, edit, match):
    with pytest.raises(InputError, match=match):
        load_model(_edited_model(base, tmp_path, edit))
