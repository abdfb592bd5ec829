"""A model of a lab's own classes, some the simulator draws no cell of (``emt_ctc`` and
``junk`` listing no subtype): export, evaluate and finetune work on it, going without what
needs simulated labels (baselines, a forgetting check, a calibration pool) and saying so.
Each was refused, finetune after its training."""

import numpy as np
import pytest
from conftest import save_tiny_model

from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import load_taxonomy
from ctcnet.simulate import undrawn_classes

SIZE = 32
LAB = {"name": "lab", "classes": [{"name": "ctc"}, {"name": "emt_ctc"}, {"name": "wbc"},
                                  {"name": "junk"}]}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A tiny model of the lab's classes and a folder of 10 crops a class."""
    root = tmp_path_factory.mktemp("lab_classes")
    save_tiny_model(root / "lab.pt", crop_size=SIZE, width=8, taxonomy=LAB)
    rng = np.random.default_rng(0)
    labels = [name for name in ("ctc", "emt_ctc", "wbc", "junk") for _ in range(10)]
    images = rng.integers(90, 900, (len(labels), 5, SIZE, SIZE)).astype(np.uint16)
    write_crop_dataset(root / "crops", images, labels, load_panel(None),
                       [f"s{i % 2}" for i in range(len(labels))])
    return root


def test_the_classes_the_simulator_draws_no_cell_of_are_named():
    panel = load_panel(None)
    assert undrawn_classes(panel, load_taxonomy(None)) == []
    assert undrawn_classes(panel, load_taxonomy(LAB)) == ["emt_ctc", "junk"]


def test_a_labs_model_exports_checked_on_the_simulators_own_cells(lab, tmp_path):
    from ctcnet.cli import main

    assert main(["export", str(lab / "lab.pt"), "--out", str(tmp_path / "lab.onnx")]) == 0
    assert (tmp_path / "lab.onnx").stat().st_size > 0


def test_a_labs_model_is_evaluated_on_its_crops_without_baselines(lab, tmp_path, caplog):
    from ctcnet.cli import main

    assert main(["evaluate", str(lab / "crops"), "--model", str(lab / "lab.pt"), "--out",
                 str(tmp_path / "eval"), "--device", "cpu"]) == 0
    assert "baselines: none: the simulator draws no emt_ctc, junk" in caplog.text


def test_a_labs_model_is_fine_tuned_on_its_crops_alone_and_keeps_its_calibration(
        lab, tmp_path, caplog):
    from ctcnet.errors import InputError
    from ctcnet.nn.classifier import load_model
    from ctcnet.training.finetune import FinetuneOptions, finetune

    options = FinetuneOptions(steps=2, batch_size=8, train_blocks=2, device="cpu")
    finetune(lab / "crops", tmp_path / "tuned.pt", lab / "lab.pt", options)
    _, spec = load_model(tmp_path / "tuned.pt")
    info = spec.training["finetune"]
    assert info["options"]["simulated_per_class"] == 0
    assert "no simulated crops to pool them with" in info["calibration"]["skipped"]
    assert "mixes in no simulated crops and checks none" in caplog.text
    # Asked for simulated crops it cannot draw: refused before any training.
    with pytest.raises(InputError, match="--simulated-per-class 5: the simulator draws no "
                                         "emt_ctc, junk"):
        finetune(lab / "crops", tmp_path / "again.pt", lab / "lab.pt",
                 FinetuneOptions(steps=2, simulated_per_class=5, device="cpu"))
