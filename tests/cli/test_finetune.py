"""``ctcnet finetune`` (and ``finetune()`` from Python) refuse to write over an existing model
or card unless --overwrite, and an output that cannot be written is refused before training."""

import os

import pytest
from conftest import digest, one_line_refusal, refused, save_tiny_model

from ctcnet.cli import main
from ctcnet.errors import InputError

SIZE = 32


def finetune_args(lab, out, *more):
    return ["finetune", str(lab / "crops"), "--out", str(out), "--base", str(lab / "base.pt"),
            "--steps", "1", "--batch-size", "8", "--simulated-per-class", "0",
            "--sim-check-per-class", "0", "--device", "cpu", *more]


def test_finetune_refuses_an_existing_model_or_card(lab, tmp_path, capsys):
    out = tmp_path / "tuned.pt"
    save_tiny_model(out, crop_size=SIZE, width=8, seed=5)  # a model tuned earlier
    before = digest(out)
    refused(capsys, out, finetune_args(lab, out))
    assert digest(out) == before and not out.with_suffix(".md").exists()
    # The card alone (its model moved away) is an output too.
    card = tmp_path / "other.md"
    card.write_text("the card of a model tuned earlier\n")
    refused(capsys, card, finetune_args(lab, tmp_path / "other.pt"))
    assert card.read_text() == "the card of a model tuned earlier\n"
    out.with_suffix(".onnx").write_bytes(b"the export of the model tuned earlier")
    assert main(finetune_args(lab, out, "--overwrite")) == 0
    assert digest(out) != before and out.with_suffix(".md").exists()
    # Its export, beside the new model, read as this one's (the old temperature, weights).
    assert not out.with_suffix(".onnx").exists()


def test_finetune_from_python_refuses_an_existing_model_before_training(lab, tmp_path):
    from ctcnet.training.finetune import FinetuneOptions, finetune

    out = tmp_path / "tuned.pt"
    save_tiny_model(out, crop_size=SIZE, width=8, seed=5)
    before = digest(out)
    options = FinetuneOptions(steps=1, batch_size=8, simulated_per_class=0,
                              sim_check_per_class=0, device="cpu")
    with pytest.raises(InputError, match="overwrite=True"):
        finetune(lab / "crops", out, lab / "base.pt", options)
    assert digest(out) == before and not out.with_suffix(".md").exists()
    finetune(lab / "crops", out, lab / "base.pt", options, overwrite=True)
    assert digest(out) != before and out.with_suffix(".md").exists()


def test_finetune_output_that_cannot_be_written_is_refused_before_training(lab, tmp_path, capsys,
                                                                          monkeypatch):
    import ctcnet.nn.classifier as classifier

    def no_training(*args, **kwargs):
        raise AssertionError("the base model was loaded: the output was not checked first")

    monkeypatch.setattr(classifier, "load_model", no_training)
    (tmp_path / "empty").mkdir()
    full = tmp_path / "full"
    full.mkdir()
    (full / "kept.pt").write_bytes(b"a model")
    for folder in (tmp_path / "empty", full):
        for more in ([], ["--overwrite"]):
            one_line_refusal(capsys, finetune_args(lab, folder, *more),
                             f"{folder}: is a folder; --out names the file to write")
    # A torch checkpoint is never written under an ONNX name (it would fail to load later).
    one_line_refusal(capsys, finetune_args(lab, tmp_path / "m.onnx"),
                     "--out names the model's checkpoint: give it a .pt name and export it")
    assert not (tmp_path / "m.onnx").exists()
    (tmp_path / "afile").write_text("x")
    one_line_refusal(capsys, finetune_args(lab, tmp_path / "afile" / "m.pt"),
                     f"{tmp_path / 'afile'} is not a folder")
    (tmp_path / "card.md").mkdir()  # the card's path taken by a folder
    one_line_refusal(capsys, finetune_args(lab, tmp_path / "card.pt"),
                     f"{tmp_path / 'card.md'}: is a folder")
    one_line_refusal(capsys, finetune_args(lab, tmp_path / "model.md"),
                     "the model cards go beside the model as .md and .json")
    assert (full / "kept.pt").read_bytes() == b"a model"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_finetune_into_a_read_only_folder_is_refused_before_training(lab, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        one_line_refusal(capsys, finetune_args(lab, locked / "new" / "m.pt"),
                         f"folder {locked} is not writable")
    finally:
        locked.chmod(0o755)


def test_without_base_the_shipped_model_with_the_crops_channels_is_started_from(
        with_tiny3, tmp_path, capsys, monkeypatch):
    """A three-marker lab's crops: the default five-channel model cannot start them, the
    shipped three-channel one can, as predict would choose it."""
    import numpy as np

    import ctcnet.training.finetune as F
    from ctcnet.detect.crop_dataset import write_crop_dataset
    from ctcnet.io.panel import load_panel

    crops = np.random.default_rng(0).integers(90, 900, (4, 3, SIZE, SIZE)).astype(np.uint16)
    write_crop_dataset(tmp_path / "lab3", crops, ["ctc", "wbc", "ctc", "wbc"],
                       load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64}),
                       ["p1", "p1", "p2", "p2"])
    started = []
    record = {"held_out": {"base": {"macro_f1": 0.5}, "finetuned": {"macro_f1": 0.6}},
              "held_out_calls": {"base": {"macro_f1": 0.7}, "finetuned": {"macro_f1": 0.7}},
              "simulated_test": None, "calibration": {}, "seconds": {"total": 1.0},
              "data": {"held_out": {"per_class": {"ctc": 1, "wbc": 1}}}}
    monkeypatch.setattr(F, "finetune", lambda data, out, base, *a, **k: started.append(base) or
                        record)
    assert main(["finetune", str(tmp_path / "lab3"), "--out", str(tmp_path / "m.pt")]) == 0
    assert started == ["tiny3"]
    assert f"base: tiny3 (from {with_tiny3}; fits the crops' channels)" in capsys.readouterr().err


def test_finetune_names_the_option_whose_value_is_refused(lab, tmp_path, capsys):
    from conftest import assert_one_line_error, run_cli

    for option, value, says in (("--steps", "0", "argument --steps: a whole number, 1 or more, "
                                                 "not 0"),
                                ("--lr", "inf", "argument --lr: a number over 0, not inf"),
                                ("--simulated-per-class", "-5", "argument --simulated-per-class:"
                                                                " a whole number, 0 or more, "
                                                                "not -5")):
        with pytest.raises(SystemExit) as stop:  # argparse's refusal, naming the option
            run_cli(capsys, *finetune_args(lab, tmp_path / "m.pt", option, value))
        assert stop.value.code == 2 and says in capsys.readouterr().err
    for option, value, says in (("--batch-size", "1", "--batch-size must be at least 2, got 1"),
                                ("--holdout", "1.5", "--holdout must be a share between 0 and 1"
                                                     ", got 1.5")):
        assert_one_line_error(*run_cli(capsys, *finetune_args(lab, tmp_path / "m.pt", option,
                                                             value)), says)
    assert not (tmp_path / "m.pt").exists()


def test_a_diverged_fine_tune_is_one_line_and_writes_nothing(lab, tmp_path, capsys):
    """A learning rate that makes the weights NaN: its figures ended in scikit-learn's
    "Input contains NaN" traceback (exit 1)."""
    from conftest import run_cli

    status, err = run_cli(capsys, *finetune_args(lab, tmp_path / "m.pt", "--lr", "1e30",
                                                 "--steps", "2"))
    assert status == 2 and "the fine-tune diverged at --lr 1e+30; lower it" in err[-1]
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "m.pt").exists()


def test_finetune_takes_the_model_as_every_command_names_it():
    from ctcnet.cli import build_parser

    args = build_parser().parse_args(["finetune", "crops", "--out", "m.pt", "--model", "b.pt"])
    assert args.base == "b.pt"
    assert build_parser().parse_args(["finetune", "crops", "--out", "m.pt", "--base",
                                      "b.pt"]).base == "b.pt"
