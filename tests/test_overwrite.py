"""export, finetune and simulate refuse to write over an existing output unless --overwrite;
export_onnx() and finetune() called from Python refuse too, unless overwrite=True. No command
writes over the model it reads, even with --overwrite, and an output that could not be written
at the end is refused before the work."""

import hashlib
import json
import os

import pytest
from conftest import save_tiny_model

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.errors import InputError
from ctcnet.io.panel import load_panel

SIZE = 32


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(folder):
    """Every file under ``folder`` with its digest: what must stay untouched."""
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*"))
            if p.is_file()}


def refused(capsys, path, args) -> None:
    """The command exits 2, naming ``path`` and --overwrite."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "--overwrite" in err, err


def test_export_refuses_an_existing_onnx(tmp_path, capsys):
    model, _ = save_tiny_model(tmp_path / "m.pt", crop_size=SIZE, width=8)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"an export made earlier, e.g. the one a scanner runs")
    before = digest(onnx)
    refused(capsys, onnx, ["export", str(model)])  # the default --out: beside the checkpoint
    refused(capsys, onnx, ["export", str(model), "--out", str(onnx)])
    assert digest(onnx) == before
    assert main(["export", str(model), "--overwrite"]) == 0
    assert digest(onnx) != before


def test_export_onnx_from_python_refuses_an_existing_file(tmp_path):
    from ctcnet.deploy.export import export_onnx

    model, _ = save_tiny_model(tmp_path / "m.pt", crop_size=SIZE, width=8)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"an export made earlier")
    with pytest.raises(InputError, match="overwrite=True"):
        export_onnx(model)
    assert onnx.read_bytes() == b"an export made earlier"
    export_onnx(model, overwrite=True)
    assert onnx.read_bytes() != b"an export made earlier"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    from ctcnet.simulate import simulate_crops

    base = tmp_path_factory.mktemp("lab")
    save_tiny_model(base / "base.pt", crop_size=SIZE, width=8)
    batch = simulate_crops(4, load_panel(None), crop_size=SIZE, seed=3, num_samples=2)
    write_crop_dataset(base / "crops", batch.images, batch.labels, load_panel(None),
                       batch.sample_ids)
    return base


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
    assert main(finetune_args(lab, out, "--overwrite")) == 0
    assert digest(out) != before and out.with_suffix(".md").exists()


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


def test_simulate_refuses_an_existing_output_and_overwrite_replaces_it_whole(tmp_path, capsys):
    cart = tmp_path / "cart"
    small = ["--frame-shape", "96x128", "--events", "4", "--clean"]
    assert main(["simulate", "cartridge", str(cart), "--frames", "3", *small]) == 0
    before = tree(cart)
    refused(capsys, cart, ["simulate", "cartridge", str(cart), "--frames", "2", "--seed", "1",
                           *small])
    assert tree(cart) == before
    # --overwrite replaces the folder whole: no frame of the 3-frame run stays beside the 2.
    assert main(["simulate", "cartridge", str(cart), "--frames", "2", "--seed", "1", *small,
                 "--overwrite"]) == 0
    assert sorted(p.name for p in cart.glob("r*.tif")) == ["r00c00.tif", "r00c01.tif"]
    assert json.loads((cart / "cartridge.json").read_text())["seed"] == 1

    crops = tmp_path / "crops"
    args = ["simulate", "crops", str(crops), "--counts", "2", "--crop-size", "32"]
    assert main(args) == 0
    before = tree(crops)
    refused(capsys, crops, [*args, "--seed", "4"])
    assert tree(crops) == before
    assert main([*args, "--seed", "4", "--overwrite"]) == 0
    assert json.loads((crops / "dataset.json").read_text())["seed"] == 4

    gallery = tmp_path / "gallery"
    args = ["simulate", "gallery", str(gallery), "--per-class", "1", "--crop-size", "32"]
    assert main(args) == 0
    before = tree(gallery)
    refused(capsys, gallery / "gallery_ctc.png", [*args, "--seed", "2"])
    assert tree(gallery) == before
    assert main([*args, "--seed", "2", "--overwrite"]) == 0
    assert tree(gallery) != before


def test_simulate_overwrite_never_deletes_what_simulate_did_not_write(tmp_path, capsys):
    """A real scan (or a lab's crops) given as OUT by mistake: --overwrite refuses too."""
    scan = tmp_path / "scan"
    scan.mkdir()
    (scan / "r00c00.tif").write_bytes(b"a real frame")
    (scan / "cartridge.json").write_text(json.dumps({"sample_id": "patient 7"}))
    before = tree(scan)
    capsys.readouterr()
    assert main(["simulate", "cartridge", str(scan), "--frames", "1", "--frame-shape", "96x128",
                 "--overwrite"]) == 2
    assert "not one" in capsys.readouterr().err
    assert tree(scan) == before
    # An empty folder holds nothing to lose: written without --overwrite.
    (tmp_path / "empty").mkdir()
    assert main(["simulate", "cartridge", str(tmp_path / "empty"), "--frames", "1",
                 "--frame-shape", "96x128", "--events", "4"]) == 0


def one_line_refusal(capsys, args, match) -> str:
    """The command exits 2 with one line holding ``match``; returns that line."""
    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and match in err[0], err
    return err[0]


def test_no_command_writes_over_the_model_it_reads(lab, tmp_path, capsys):
    model, _ = save_tiny_model(tmp_path / "m.pt", crop_size=SIZE, width=8)
    before = digest(model)
    crops = lab / "crops"
    again = tmp_path / "sub" / ".." / "m.pt"  # the same file, spelt otherwise
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.pt").symlink_to(model)
    evaluate = ["evaluate", crops, "--model", model, "--out", tmp_path / "ev", "--no-baselines",
                "--device", "cpu", "--calibrate-on", crops, "--save-model"]
    for target in (model, again, tmp_path / "link.pt"):
        for more in ([], ["--overwrite"]):
            line = one_line_refusal(capsys, evaluate + [target] + more,
                                    "is the model this command reads")
            assert "choose another path for --save-model" in line and str(target) in line
    refused(capsys, lab / "base.pt", [str(a) for a in evaluate + [lab / "base.pt"]])
    one_line_refusal(capsys, ["finetune", crops, "--base", model, "--out", again,
                              "--overwrite", "--steps", "1", "--device", "cpu"],
                     "is the model this command reads")
    one_line_refusal(capsys, ["export", model, "--out", model, "--overwrite"],
                     "is the model this command reads")
    assert digest(model) == before and not (tmp_path / "ev").exists()


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
    (tmp_path / "afile").write_text("x")
    one_line_refusal(capsys, finetune_args(lab, tmp_path / "afile" / "m.pt"),
                     f"{tmp_path / 'afile'} is not a folder")
    (tmp_path / "card.md").mkdir()  # the card's path taken by a folder
    one_line_refusal(capsys, finetune_args(lab, tmp_path / "card.pt"),
                     f"{tmp_path / 'card.md'}: is a folder")
    one_line_refusal(capsys, finetune_args(lab, tmp_path / "model.md"),
                     "the model card goes beside the model as .md")
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
