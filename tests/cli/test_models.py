"""``ctcnet models``: the registry's models listed."""

import json

import pytest

from ctcnet.cli import main

# --- the registry ---------------------------------------------------------------------------------


def test_models_command(with_tiny3, capsys):
    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows] == ["ctcnet-default", "tiny3"]
    assert rows[0]["channels"] == ["DAPI", "CK", "CD45", "CD61", "CD66b"]
    # The scan path's figures, as the listing below gives them (--json left them out).
    assert len(rows[0]["cartridge_figures"]) == 2 and rows[1]["cartridge_figures"] == []
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny3" in out and "DAPI, CK, CD45 at 0.64 um/px" in out and "MB on disk" in out
    # Each held-out figure with the crops it was measured on (a fine-tune's 4 crops said).
    assert "held-out macro-F1: default_randomisation 0.986 (6,000 crops)" in out
    # The scan path's figures from its card: the cartridge rule's fit and the review band's
    # stated miss rate (a model without a cartridge rule, tiny3, has none).
    assert "on simulated cartridges: CTCs counted 0.930 at 0.069 false CTC calls per 1,000 " \
        "events (40 cartridges of 10 frames" in out
    assert "neither counted nor shown at most 1% (95% confidence; fresh family 3 of 509, " \
        "4.7% of its CTC-rich events shown)" in out
    assert out.count("on simulated cartridges") == 2
    assert main(["predict", "x", "--out", "y", "--model", "tiny5"]) == 2


def test_a_fine_tunes_cartridge_figures_are_said_to_be_its_bases():
    """A fine-tune keeps its base's cartridge rule and review band; `ctcnet models` listed
    their figures as the lab model's own (its card said they were measured on the base)."""
    from dataclasses import replace

    from ctcnet.nn.registry import get_model

    shipped = get_model("ctcnet-default")
    assert shipped.cartridge_figures() and not any(
        "base model" in line for line in shipped.cartridge_figures())
    band = {**shipped.card["decision"]["review_band"], "fitted_for": "the base model ..."}
    for card in ({**shipped.card, "finetune": {"base": {}}},
                 {**shipped.card, "decision": {**shipped.card["decision"], "review_band": band}}):
        lines = replace(shipped, card=card).cartridge_figures()
        assert len(lines) == 2 and all(
            line.endswith("[the base model's, not measured on this model]") for line in lines)


def test_the_listing_states_a_band_below_one_percent_as_fitted():
    """A band for 0.5 % with 99.5 % confidence was listed "at most 0% (100% confidence)"."""
    from dataclasses import replace

    from ctcnet.nn.registry import get_model

    shipped = get_model("ctcnet-default")
    band = {**shipped.card["decision"]["review_band"], "level": 0.005, "confidence": 0.995}
    card = {**shipped.card, "decision": {**shipped.card["decision"], "review_band": band}}
    lines = replace(shipped, card=card).cartridge_figures()
    assert any("at most 0.5% (99.5% confidence;" in line for line in lines)


def test_a_model_file_shows_its_card_or_says_it_has_none(with_tiny3, tmp_path, capsys):
    """A lab's fine-tuned model is shown by its file, as the refusal of a name advises; a
    file without a card beside it (ctcnet train's) shows the spec it carries."""
    assert main(["models", str(with_tiny3 / "tiny3.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "tiny3"
    # Its card, then the channels and classes its JSON card records (a fine-tune's Markdown
    # card names neither), read without loading the file.
    carded = tmp_path / "carded"
    carded.mkdir()
    for suffix in (".pt", ".json"):
        (carded / f"tiny3{suffix}").write_bytes((with_tiny3 / f"tiny3{suffix}").read_bytes())
    (carded / "tiny3.md").write_text("# tiny3\n\nFine-tuned on 40 crops.\n")
    assert main(["models", str(carded / "tiny3.pt")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# tiny3") and "\ntiny3\n  channels DAPI" in out and \
        "\n  classes " in out
    # A Lightning checkpoint beside a JSON (which the registry reads for .pt and .onnx alone):
    # the spec it carries, not "no shipped model called ...".
    (carded / "tiny3.pt").rename(carded / "tiny3.ckpt")
    assert main(["models", str(carded / "tiny3.ckpt")]) == 0
    assert "channels DAPI [0, 4095]" in capsys.readouterr().out
    bare = tmp_path / "model.pt"
    bare.write_bytes((with_tiny3 / "tiny3.pt").read_bytes())
    assert main(["models", str(bare)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{bare} (no card beside it: the spec the file carries)")
    assert "channels DAPI [0, 4095], CK [0, 4095], CD45 [0, 4095] at 0.64 um/px" in out
    assert main(["models", str(bare), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["panel"]["channels"][0]["name"] == "DAPI"
    # An earlier ctcnet's fine-tune wrote its Markdown card alone: shown, not "no card".
    bare.with_suffix(".md").write_text("# lab_nov\n\nFine-tuned on 40 crops.\n")
    assert main(["models", str(bare)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# lab_nov") and "no card beside it" not in out
    assert "(its card above, without the JSON card" in out and "channels DAPI" in out
    # An ONNX export's metadata, read without torch's checkpoint.
    onnx = tmp_path / "export.onnx"
    onnx.write_bytes((tmp_path / "shipped" / "ctcnet-default.onnx").read_bytes())
    assert main(["models", str(onnx)]) == 0
    out = capsys.readouterr().out
    assert "CD66b" in out and "decision rule at cartridge prevalence: log weights" in out
    # Which precision the file is, and where it came from (an int8 file read as any other).
    assert "ONNX fp32, exported " in out and "from ctcnet-default.pt (SHA-256 " in out


def test_a_card_less_file_says_its_recalibration_and_the_epoch_its_weights_are_of(with_tiny3):
    """A lab's `evaluate --save-model` file showed only its base's training, as "6 epochs"
    (the best epoch kept) beside the base card's 8: read as the shipped model it came from."""
    from ctcnet.commands.models import _carried_spec, _spec_text

    spec = _carried_spec(with_tiny3 / "tiny3.pt")
    spec = spec.replace(training={**(spec.training or {}), "epochs_completed": 6},
                        metrics={**(spec.metrics or {}),
                                 "calibration": {"method": "pooled", "lab_crops": 40}})
    text = _spec_text(with_tiny3 / "tiny3.pt", spec)
    assert "trained: the weights after epoch 6" in text
    assert "recalibrated on 40 lab crops pooled with simulated crops" in text
    tuned = spec.replace(training={**spec.training, "finetune": {
        "data": {"path": "/lab/crops", "per_class": {"ctc": 5, "wbc": 5}},
        "options": {"steps": 120}}})
    text = _spec_text(with_tiny3 / "tiny3.pt", tuned)
    assert "fine-tuned on 10 crops of /lab/crops (120 steps)" in text
    assert "recalibrated" not in text  # the fine-tune's own calibration, said with it
    # An ONNX file's record withholds the folder's path (it may name a patient).
    from ctcnet.deploy.shared_record import shareable_training

    shared = tuned.replace(training=shareable_training(tuned.training)[0])
    assert "fine-tuned on 10 crops of a lab's folder (its path withheld from this file) " \
        "(120 steps)" in _spec_text(with_tiny3 / "tiny3.pt", shared)
    # ... but a recalibration made after the fine-tune is said (it was hidden).
    tuned = tuned.replace(training={**tuned.training, "finetune": {
        **tuned.training["finetune"], "at": "2026-12-01T10:00:00+00:00"},
        "recalibration": {"at": "2026-12-02T10:00:00+00:00"}})
    text = _spec_text(with_tiny3 / "tiny3.pt", tuned)
    assert "fine-tuned on 10 crops" in text and "recalibrated on 40 lab crops" in text


def test_a_listing_piped_into_a_reader_that_stops_ends_without_a_traceback(monkeypatch):
    """`ctcnet models | head -1`: the reader goes, the command ends as a shell tool does
    (141, nothing on stderr); a broken pipe that is not stdout's still raises."""
    import io
    import os

    import ctcnet.commands.models as models_command

    def broken(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(models_command, "run", broken)
    read, write = os.pipe()
    out = io.TextIOWrapper(io.FileIO(write, "w"))
    monkeypatch.setattr("sys.stdout", out)
    with pytest.raises(BrokenPipeError):  # its reader still there: not stdout's pipe
        main(["models"])
    os.close(read)
    assert main(["models"]) == 141
    out.close()
