"""Fine-tuning a model on a lab's crops: frozen blocks, held-out figures, calibration, card."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import save_tiny_model

from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.evaluation.calibration import MIN_CALIBRATION_CROPS
from ctcnet.io.panel import load_panel
from ctcnet.nn.classifier import load_model
from ctcnet.training.finetune import FinetuneOptions, finetune
from ctcnet.training.lit import backbone_blocks

SIZE = 32
# simulated_per_class=None: as many simulated crops per class as the data's mean (6 here).
TINY = FinetuneOptions(steps=4, batch_size=8, train_blocks=2, simulated_per_class=None,
                       sim_check_per_class=3, device="cpu")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A tiny base model and a small 'lab' crop dataset of two samples from a shifted scanner."""
    from ctcnet.simulate import SimConfig, simulate_crops

    base = tmp_path_factory.mktemp("finetune")
    _, spec = save_tiny_model(base / "base.pt", crop_size=SIZE, width=8)
    batch = simulate_crops(6, load_panel(None), crop_size=SIZE, seed=11, num_samples=2,
                           config=SimConfig().with_shift("noise_2x"))
    write_crop_dataset(base / "crops", batch.images, batch.labels, load_panel(None),
                       batch.sample_ids)
    return base


def test_finetune_frees_the_last_blocks_and_recalibrates_few_crops_pooled(
        lab, tmp_path, caplog):
    """The held-out part here is one sample's 12 crops, under the 100 calibration on the lab's
    crops alone needs: temperature and review threshold are fitted on them pooled with the
    simulated check's crops (the lab's weighing 12 %), and spec, card and log say so, with what
    the lab's crops guarantee."""
    import logging

    caplog.set_level(logging.INFO, logger="ctcnet.training.finetune")
    out = tmp_path / "tuned.pt"
    record = finetune(lab / "crops", out, lab / "base.pt", TINY)
    base, base_spec = load_model(lab / "base.pt")
    tuned, spec = load_model(out)
    before, after = backbone_blocks(base.net), backbone_blocks(tuned.net)
    frozen = len(before) - TINY.train_blocks
    for b, a in zip(before[:frozen], after[:frozen]):  # weights and BN statistics kept
        for (name, x), (_, y) in zip(b.state_dict().items(), a.state_dict().items()):
            assert torch.equal(x, y), name
    changed = [not torch.equal(x, y) for b, a in zip(before[frozen:], after[frozen:])
               for x, y in zip(b.state_dict().values(), a.state_dict().values())]
    assert any(changed)
    info = spec.training["finetune"]
    assert info["base"]["path"] == str(lab / "base.pt")
    # What made it and when (the card's version was the base's alone)
    assert info["software"]["ctcnet"] and info["at"].endswith("+00:00")
    assert info["data"]["samples"] == 2 and info["data"]["held_out"]["unit"] == "sample"
    assert 0 < info["data"]["held_out"]["crops"] < 24
    assert info["data"]["train"]["crops"] == 24 - info["data"]["held_out"]["crops"] + 4 * 6
    # The lab's crops said apart from the simulated ones mixed in.
    assert info["data"]["train"]["lab_crops"] == 24 - info["data"]["held_out"]["crops"]
    assert info["data"]["train"]["simulated_crops"] == 4 * 6
    assert info["data"]["train"]["lab_samples"] == 1
    assert info["options"]["simulated_per_class"] == 6
    held = info["data"]["held_out"]["crops"]
    # More simulated crops than the lab's trained on: the card says so.
    assert f"6 simulated crops per class mixed in (24 against the lab's {24 - held} trained " \
        "on: the simulator's look weighs more" in (tmp_path / "tuned.pt").with_suffix(
            ".md").read_text()
    cal = info["calibration"]
    assert "skipped" not in cal and cal["method"] == "pooled"
    assert cal["lab_crops"] == held and cal["reference_crops"] == 12
    assert cal["lab_weight"] == pytest.approx(held / MIN_CALIBRATION_CROPS)
    assert spec.temperature == pytest.approx(cal["temperature"])
    assert spec.review_threshold == pytest.approx(cal["review"]["threshold"])
    assert spec.metrics["calibration"]["guarantee"]["crops"] == held
    said = [r.getMessage() for r in caplog.records]
    assert any("fitted on them pooled with simulated crops" in m for m in said)
    assert any(f"pooled: {held} lab crops" in m and "neither counted nor shown" in m
               for m in said), said
    assert set(record["simulated_test"]) == {"base", "finetuned"}
    assert record["simulated_test"]["base"]["n"] == 12
    card = out.with_suffix(".md").read_text()
    assert "base.pt" in card and "macro-F1, held-out lab crops" in card
    # The calls a lab reads (the markers taking part), beside the network's own: each of
    # the held-out crops, scored as ctcnet evaluate scores them.
    calls = record["held_out_calls"]
    assert calls["base"]["n"] == calls["finetuned"]["n"] == held
    assert "the calls predict makes | " in card and "the network's own calls | " in card
    assert "pooled with 12 simulated crops" in card and "Clopper-Pearson" in card
    assert json.dumps(spec.to_dict())  # plain data: loads with weights_only=True
    # The base model's figures are filed as the base's; what the calls read stays in place.
    in_use = {k for k in ("calibration", "guard", "marker_fusion") if k in base_spec.metrics}
    assert set(spec.metrics) == in_use | {"calibration", "base", "finetune"}
    assert spec.metrics["base"] == {k: v for k, v in base_spec.metrics.items()
                                    if k not in in_use}


def test_finetune_under_the_floor_keeps_the_base_calibration_and_says_so(lab, tmp_path,
                                                                         caplog):
    """Held out (one sample, 25 % of each class): 2 CTCs and no crop of another class (the one
    leukocyte stays in training), too few even to pool; the tuned model keeps the base model's
    temperature and review threshold (warning, spec, card)."""
    rng = np.random.default_rng(3)
    images = rng.integers(90, 200, (8, 5, SIZE, SIZE)).astype(np.uint16)
    write_crop_dataset(tmp_path / "few", images, ["ctc"] * 7 + ["wbc"], load_panel(None),
                       ["s1"] * 8)
    out = tmp_path / "few.pt"
    finetune(tmp_path / "few", out, lab / "base.pt", TINY)
    _, base_spec = load_model(lab / "base.pt")
    _, spec = load_model(out)
    info = spec.training["finetune"]
    held = info["data"]["held_out"]["crops"]
    assert held == 2
    skipped = info["calibration"]["skipped"]
    assert "needs labelled crops of at least two classes; these are 2 (ctc 2)" in skipped
    assert (spec.temperature, spec.review_threshold) == (base_spec.temperature,
                                                         base_spec.review_threshold)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("keeps the base model's calibration" in m and "--holdout" in m for m in warned)
    assert "Calibration: **skipped**" in out.with_suffix(".md").read_text()
    # Two samples, the one held out whole of one class: --holdout cannot mend it (it said so).
    caplog.clear()
    write_crop_dataset(tmp_path / "two", images, ["wbc"] * 4 + ["ctc"] * 4, load_panel(None),
                       ["s1"] * 4 + ["s2"] * 4)
    finetune(tmp_path / "two", tmp_path / "two.pt", lab / "base.pt", TINY)
    warned = [r.getMessage() for r in caplog.records if "keeps the base model's" in
              r.getMessage()]
    assert warned and "place crops of the other classes in the val split" in warned[0]
    assert "--holdout" not in warned[0]


def test_a_fine_tuned_model_joins_the_models_of_its_folder(lab, tmp_path, monkeypatch):
    """finetune writes the .json card the registry reads: the folder named in CTCNET_MODELS
    offers the model by name, its figure the held-out lab crops' macro-F1."""
    from ctcnet.nn.registry import get_model

    out = tmp_path / "mine" / "lab-tuned.pt"
    record = finetune(lab / "crops", out, lab / "base.pt", TINY)
    monkeypatch.setenv("CTCNET_MODELS", str(out.parent))
    info = get_model("lab-tuned")
    assert info.file("torch") == out
    # The calls' figure (as predict makes them), the card's headline, not the network's own.
    assert info.figures()["test_held_out_lab_crops"] == pytest.approx(
        record["held_out_calls"]["finetuned"]["macro_f1"])
    _, spec = load_model(out)
    assert info.classes == spec.class_names and info.crop_size == spec.crop_size
    # A held-out part lacking classes: its figure says so in the listing (1.000 on ctc and
    # debris alone read as a perfect score on all four).
    import json

    from ctcnet.commands.models import _line

    card = json.loads(out.with_suffix(".json").read_text())
    card["test_held_out_lab_crops"]["absent_classes"] = ["wbc", "cluster"]
    out.with_suffix(".json").write_text(json.dumps(card))
    assert "held_out_lab_crops" in _line(get_model("lab-tuned")) and \
        "crops; no wbc, cluster)" in _line(get_model("lab-tuned"))


def test_finetune_recalibrates_on_enough_held_out_crops(tmp_path, lab):
    from ctcnet.simulate import simulate_crops

    batch = simulate_crops(40, load_panel(None), crop_size=SIZE, seed=13, num_samples=1)
    write_crop_dataset(tmp_path / "many", batch.images, batch.labels, load_panel(None),
                       batch.sample_ids)
    options = FinetuneOptions(steps=2, batch_size=8, simulated_per_class=0, holdout=0.75,
                              sim_check_per_class=0, device="cpu")
    record = finetune(tmp_path / "many", tmp_path / "t.pt", lab / "base.pt", options)
    _, spec = load_model(tmp_path / "t.pt")
    info = spec.training["finetune"]
    assert info["data"]["held_out"]["crops"] >= MIN_CALIBRATION_CROPS
    assert "skipped" not in record["calibration"]
    assert spec.temperature == pytest.approx(info["calibration"]["temperature"])
    assert spec.review_threshold == pytest.approx(info["calibration"]["review"]["threshold"])
    card = (tmp_path / "t.md").read_text()
    assert "Calibration: temperature" in card
    # The review load with the crops it rests on; the guarantee's calls said as what they are
    # (not shown to a person: predict's rule), not as the band's "automatic" calls.
    review = info["calibration"]["review"]
    assert f"held-out crops under it ({review['reviewed']} of {review['n']}: " in card
    assert "calls not shown to a person wrong" in card


def test_finetune_on_crops_lacking_classes_warns_and_on_one_class_is_refused(
        lab, tmp_path, caplog, capsys):
    from ctcnet.cli import main
    from ctcnet.errors import InputError

    rng = np.random.default_rng(0)
    images = rng.integers(90, 200, (12, 5, SIZE, SIZE)).astype(np.uint16)
    write_crop_dataset(tmp_path / "two", images, ["ctc", "wbc"] * 6, load_panel(None))
    finetune(tmp_path / "two", tmp_path / "two.pt", lab / "base.pt", TINY)
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"the crops of {tmp_path / 'two'} hold no cluster, debris" in m
               and "simulated crops mixed in" in m for m in warned), warned
    write_crop_dataset(tmp_path / "one", images, ["ctc"] * 12, load_panel(None))
    with pytest.raises(InputError, match=r"hold only \['ctc'\]; training needs crops of at "
                                         "least two classes"):
        finetune(tmp_path / "one", tmp_path / "one.pt", lab / "base.pt", TINY)
    capsys.readouterr()
    assert main(["finetune", str(tmp_path / "one"), "--out", str(tmp_path / "one.pt"),
                 "--base", str(lab / "base.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "least two classes" in err[0], err
    assert not (tmp_path / "one.pt").exists()


def test_finetune_command_and_bad_input(lab, tmp_path, capsys):
    from ctcnet.cli import main

    out = tmp_path / "cli.pt"
    assert main(["finetune", str(lab / "crops"), "--out", str(out), "--base",
                 str(lab / "base.pt"), "--steps", "2", "--batch-size", "8",
                 "--simulated-per-class", "0", "--sim-check-per-class", "0",
                 "--device", "cpu"]) == 0
    assert out.exists() and "held-out macro-F1" in capsys.readouterr().out
    # Crops at another pixel size (a viewer's export at twice the zoom) are brought to the
    # model's scale, as evaluate and predict bring them.
    from ctcnet.simulate import simulate_crops

    fine = load_panel(dict(load_panel(None).to_dict(), pixel_size_um=0.32))
    batch = simulate_crops(4, fine, crop_size=2 * SIZE, seed=12, num_samples=2)
    write_crop_dataset(tmp_path / "px", batch.images, batch.labels, fine, batch.sample_ids)
    record = finetune(tmp_path / "px", tmp_path / "x.pt", lab / "base.pt", TINY)
    assert record["data"]["held_out"]["crops"] > 0 and (tmp_path / "x.pt").exists()
    assert (record["data"]["pixel_size_um"], record["data"]["pixel_size_from"]) == (
        0.32, "panel.json")
    # --pixel-size auto is recorded as the size it estimated, not as the word.
    record = finetune(tmp_path / "px", tmp_path / "auto.pt", lab / "base.pt",
                      replace(TINY, pixel_size="auto"))
    assert record["data"]["pixel_size_from"] == "estimated from the nuclei"
    assert 0.2 < record["data"]["pixel_size_um"] < 0.5, record["data"]
    card = (tmp_path / "auto.md").read_text()
    assert f"read at {record['data']['pixel_size_um']:.3g} um/px (estimated from the " \
        "nuclei)" in card
    # Nothing said of a size nobody gave (the folder's look ahead read the crops at a
    # placeholder of 0.64 and said so, into the card for good), nor with the stated size given.
    assert "--pixel-size 0.64" not in card
    shutil.copytree(tmp_path / "px", tmp_path / "px2")
    finetune(tmp_path / "px2", tmp_path / "given.pt", lab / "base.pt",
             replace(TINY, pixel_size=0.32))
    assert "0.64" not in (tmp_path / "given.md").read_text()
    four = load_panel({"channels": ["DAPI", "CK", "CD45", "CD61"]})
    write_crop_dataset(tmp_path / "four", np.zeros((8, 4, SIZE, SIZE), np.uint16),
                       ["ctc", "wbc"] * 4, four)
    with pytest.raises(PanelMismatchError):
        finetune(tmp_path / "four", tmp_path / "y.pt", lab / "base.pt", TINY)


def test_curve_png_draws_every_point(tmp_path):
    from PIL import Image

    from ctcnet.evaluation.plots import curve_png

    path = curve_png([0, 10, 25], {"a": [0.8, 0.9, None], "b": [0.6, 0.7, 0.99]},
                     tmp_path / "c.png", "t", "N", "F1", y_range=(0.5, 1.0), target=0.97)
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("RGB"))
    orange = (np.abs(pixels.astype(int) - (230, 120, 40)).sum(-1) < 30)
    assert orange.any() and pixels.shape[1] > 420


def test_finetune_yaml_trains_as_the_command_does():
    """configs/finetune.yaml (LightningCLI form) and `ctcnet finetune` train alike."""
    from pathlib import Path

    import yaml

    config = yaml.safe_load((Path(__file__).parent.parent.parent / "configs" / "finetune.yaml")
                            .read_text())
    d = FinetuneOptions()
    assert config["trainer"]["max_steps"] == d.steps
    assert config["model"]["lr"] == pytest.approx(d.lr)
    assert config["model"]["train_blocks"] == d.train_blocks
    assert config["data"]["batch_size"] == d.batch_size
    assert config["data"]["val_fraction"] == pytest.approx(d.holdout)
    assert config["model"]["label_smoothing"] == pytest.approx(d.label_smoothing)


def test_finetune_smooths_the_labels_as_its_config_does(lab, tmp_path, monkeypatch):
    """configs/finetune.yaml (and the shipped models' training) smooths the labels by 0.02;
    the command trained with none, its model built without the setting."""
    from ctcnet.training import lit

    class Built(Exception):
        pass

    def module(**settings):
        raise Built(settings)

    monkeypatch.setattr(lit, "CTCLitModule", module)
    with pytest.raises(Built) as built:
        finetune(lab / "crops", tmp_path / "t.pt", lab / "base.pt", TINY)
    assert built.value.args[0]["label_smoothing"] == pytest.approx(0.02)


def test_a_rule_recorded_in_a_fine_tuned_models_card_keeps_its_own_md(lab, tmp_path):
    """fit_decision and the robustness matrix record into the .json card beside a model: a
    fine-tuned model's takes the entry and keeps the .md finetune wrote."""
    from ctcnet.evaluation.model_card import refresh_decision

    out = tmp_path / "t.pt"
    finetune(lab / "crops", out, lab / "base.pt", TINY)
    md = out.with_suffix(".md").read_text()
    refresh_decision(out.with_suffix(".json"), {"rule": {"ctc": -1.0}})
    assert json.loads(out.with_suffix(".json").read_text())["decision"]["rule"] == {"ctc": -1.0}
    assert out.with_suffix(".md").read_text() == md


def test_a_labs_ctcs_teach_the_guard_its_instruments_leak(lab, tmp_path):
    """The lab's crops labelled ``ctc`` show its instrument's leak of CK into CD45 (30 %
    here, past the 12 % the guard allows by default): measured on them into the model's
    panel, which the guard reads (``GuardRules.leak_cap``); a lab whose crops show no such
    leak leaves the panel's allowance as it was."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.evaluation.recalibration import with_instrument_leaks
    from ctcnet.inference.guard import RULES
    from ctcnet.simulate import SimConfig, simulate_crops

    panel = load_panel(None)
    config = SimConfig(instrument_bleed=(("CK", "CD45", 0.30),))
    batch = simulate_crops(8, panel, crop_size=SIZE, seed=5, num_samples=2, config=config)
    write_crop_dataset(tmp_path / "crops", batch.images, batch.labels, panel, batch.sample_ids)
    spec = load_model(lab / "base.pt")[1]
    tuned, found = with_instrument_leaks(spec, read_crop_index(tmp_path / "crops").conform(
        spec.panel))
    assert found["source"] == "CK" and found["crops"]["CD45"] >= 3
    assert found["leaks"]["CD45"] == pytest.approx(0.3, abs=0.03)
    cd45 = spec.panel.index_of("CD45")
    assert tuned.panel.channels[cd45].leaks_in == {"CK": found["leaks"]["CD45"]}
    assert RULES.leak_cap(tuned.panel, cd45) > 0.3 > RULES.leak_cap(spec.panel, cd45)
    assert found["replaced"] == {}  # the base allowed none of its own
    # Measured again on a model that has them (a fine-tune recalibrated): what they replace
    # is kept in the record, said beside the new ones.
    again = with_instrument_leaks(tuned, read_crop_index(tmp_path / "crops").conform(
        spec.panel))[1]
    assert again["replaced"] == {name: {"CK": v} for name, v in found["leaks"].items()}
    # The same crops under the lab's own names for the channels ("PanCK", "CD45-APC", which
    # reach the model's CK and CD45 by name): the leak is the model's CK into its CD45, not lost
    # under a name the model's panel has not (nor refused as one).
    from dataclasses import replace

    names = {"CK": "PanCK", "CD45": "CD45-APC"}
    lab_panel = replace(panel, channels=tuple(replace(c, name=names.get(c.name, c.name))
                                              for c in panel.channels))
    write_crop_dataset(tmp_path / "named", batch.images, batch.labels, lab_panel,
                       batch.sample_ids)
    named, found_named = with_instrument_leaks(spec, read_crop_index(tmp_path / "named").conform(
        spec.panel))
    assert found_named["leaks"] == found["leaks"] and named.panel == tuned.panel
    # The finetune of the plain lab (the training ranges' leaks) records what it measured,
    # and pools the lab's crops into a base's out-of-distribution reference (the lab's look
    # is the tuned model's own).
    from ctcnet.inference.guard import fit_reference
    from ctcnet.nn.classifier import save_model

    model, plain = load_model(lab / "base.pt")
    ref = simulate_crops(4, panel, crop_size=SIZE, seed=6)
    save_model(tmp_path / "base.pt", model, plain.replace(metrics={"guard": fit_reference(
        np.asarray(ref.images, np.float32), np.array([plain.taxonomy.index(k)
                                                      for k in ref.labels]), plain)}))
    record = finetune(lab / "crops", tmp_path / "tuned.pt", tmp_path / "base.pt", TINY)
    assert record["leaks"]["source"] == "CK"
    assert "Instrument's leaks" in (tmp_path / "tuned.md").read_text()
    tuned = load_model(tmp_path / "tuned.pt")[1]
    leaky = tuned.panel
    assert all(RULES.leak_cap(leaky, i) == RULES.max_leak for i in range(leaky.num_channels))
    assert tuned.metrics["guard"]["pooled"] == {"lab_crops": 24, "prior": 100.0}


def test_a_fine_tune_says_its_cartridge_rule_and_band_are_the_base_models(lab, tmp_path):
    """A lab's crops hold no cartridge to refit the rule or check the band on: the fine-tuned
    model keeps the base's, and its band record and card say whose calls they were measured
    on (summary.json states the band's miss rate from that record)."""
    from ctcnet.nn.classifier import load_model, save_model
    from ctcnet.nn.decision_rule import DecisionRule

    model, spec = load_model(lab / "base.pt")
    band = {"band": 0.5, "level": 0.01, "miss_bound": 0.0074, "reads": "fused"}
    rule = DecisionRule.prior_shift({"ctc": -3.0, "cluster": -7.5}).with_review_band(band)
    save_model(tmp_path / "banded.pt", model, spec.replace(decision=rule))
    out = tmp_path / "t.pt"
    finetune(lab / "crops", out, tmp_path / "banded.pt", TINY)
    kept = load_model(out)[1].decision
    assert kept.weights == rule.weights and kept.review_band == 0.5
    assert "base model banded" in kept.review_band_record["fitted_for"]
    # The base's cartridge fusion is not kept: the band reads the network, and says why.
    assert kept.review_band_record["reads"] == "network"
    assert "fusion, which is not kept" in kept.review_band_record["fitted_for"]
    card = out.with_suffix(".md").read_text()
    assert "the base model's, kept; its review band 0.5" in card
    assert "The base's cartridge marker fusion (fitted on the base network's probabilities) " \
        "is not kept: on a cartridge the band reads this network's posterior alone" in card


def test_a_fine_tune_of_a_recalibrated_model_says_the_fusion_is_not_kept():
    """The recalibration had kept the band (its record names the base): the fine-tune's
    card left out that the fusion the band read is gone, and its review list longer."""
    from types import SimpleNamespace

    from ctcnet.nn.decision_rule import DecisionRule
    from ctcnet.training.finetune_card import _cartridge_rule_lines

    band = {"band": 0.5, "level": 0.01, "reads": "fused"}
    recal = DecisionRule.prior_shift({"ctc": -3.0}).with_review_band(band).with_band_kept(
        "default", "a recalibration", drop_fusion=False)
    tuned = recal.with_band_kept("recal", "a fine-tune", drop_fusion=True)
    card = _cartridge_rule_lines(SimpleNamespace(decision=tuned))[0]
    assert "The base's cartridge marker fusion (fitted on the base network's probabilities) " \
        "is not kept: on a cartridge the band reads this network's posterior alone" in card


def test_a_split_by_hand_that_puts_a_patient_on_both_sides_is_said_and_carded(
        lab, tmp_path, caplog):
    """A manifest's split column made by hand: a sample with crops in train and val is
    named (its held-out figures are of a patient trained on), the test split's crops are said
    to be left out, and the card says both, and which class the held-out crops lack."""
    from ctcnet.simulate import simulate_crops

    batch = simulate_crops(6, load_panel(None), crop_size=SIZE, seed=12, num_samples=2)
    samples = ["p1"] * 12 + ["p2"] * 12
    splits = ["train"] * 12 + ["train"] * 6 + ["val"] * 4 + ["test"] * 2
    write_crop_dataset(tmp_path / "hand", batch.images, batch.labels, load_panel(None),
                       samples, splits)
    out = tmp_path / "hand.pt"
    finetune(tmp_path / "hand", out, lab / "base.pt", TINY)
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "1 sample(s) have crops in more than one split: p2 (train, val, test)" in warned
    assert "2 crops of the manifest's test split are left out" in warned
    held = load_model(out)[1].training["finetune"]["data"]["held_out"]
    assert held["unit"] == "manifest" and held["samples_also_trained_on"] == 1
    card = out.with_suffix(".md").read_text()
    assert "split by manifest; 1 of its samples also trained on" in card
    assert "2 crops of the manifest's test split left out" in card
    # What the console said is kept with the model, for whoever audits it later; and the
    # manifest it was made from is named by its digest.
    record = load_model(out)[1].training["finetune"]
    assert any("more than one split" in w for w in record["warnings"])
    assert "## Said while it was made" in card and "more than one split: p2" in card
    assert len(record["data"]["manifest_sha256"]) == 64


def test_evaluate_tells_the_crops_a_fine_tune_learnt_from_wherever_they_are_copied(
        lab, tmp_path, caplog):
    """Scoring a fine-tuned model on its own lab crops (here a copy of the folder, under
    other names) is said in evaluate's warnings, with how many crops it learnt from; crops it
    never saw are not."""
    import shutil

    from ctcnet.cli import main

    out = tmp_path / "tuned.pt"
    finetune(lab / "crops", out, lab / "base.pt", TINY)
    learnt = load_model(out)[1].training["finetune"]
    held = learnt["data"]["held_out"]["crops"]
    assert "learnt_from" in learnt and "learnt_from" not in json.loads(
        out.with_suffix(".json").read_text())["finetune"]  # the model, not its card, holds it
    shutil.copytree(lab / "crops", tmp_path / "copy")
    assert main(["evaluate", str(tmp_path / "copy"), "--model", str(out), "--out",
                 str(tmp_path / "ev"), "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    warnings = report.get("warnings", [])
    # The report names the fine-tune (its card beside it) and the base it was made from.
    from ctcnet.io.digests import file_sha256

    assert report["model_record"]["name"] == "tuned"
    assert report["model_record"]["path"] == str(out.absolute())
    assert report["model_record"]["finetuned_from"]["sha256"] == file_sha256(lab / "base.pt")
    # the 24 crops but the held-out ones, those it was not trained on; the held-out ones too
    # where its calibration was fitted on them (an evaluation of them is in-sample for it)
    seen = 24 if "calibrated_on" in learnt else 24 - held
    assert ("calibrated_on" in learnt) == ("skipped" not in load_model(out)[1].training[
        "finetune"]["calibration"])
    assert any(f"{seen} of 24 crops" in w and "trained, fine-tuned or calibrated on" in w
               for w in warnings), warnings
    # ... and which: predictions.csv names them
    table = pd.read_csv(tmp_path / "ev" / "predictions.csv")
    assert int(table["learnt_from"].sum()) == seen
    from ctcnet.simulate import simulate_crops

    fresh = simulate_crops(3, load_panel(None), crop_size=SIZE, seed=99, num_samples=1)
    write_crop_dataset(tmp_path / "fresh", fresh.images, fresh.labels, load_panel(None),
                       fresh.sample_ids)
    assert main(["evaluate", str(tmp_path / "fresh"), "--model", str(out), "--out",
                 str(tmp_path / "ev2"), "--device", "cpu"]) == 0
    assert not any("trained, fine-tuned or calibrated on" in w for w in json.loads(
        (tmp_path / "ev2" / "report.json").read_text()).get("warnings", []))
    # Calibrated on them (--calibrate-on): a threshold fitted on crops it learnt from, said.
    from ctcnet.evaluation.recalibrated_model import calibrate_model_file

    with caplog.at_level("WARNING"):
        calibrate_model_file(out, tmp_path / "copy", tmp_path / "cal.pt", device="cpu")
    assert f"{seen} of its 24 calibration crops are, pixel for pixel" in caplog.text
    # Fine-tuned again on other crops, it still knows the first fine-tune's.
    again = tmp_path / "again.pt"
    finetune(tmp_path / "fresh", again, out, TINY)
    assert main(["evaluate", str(tmp_path / "copy"), "--model", str(again), "--out",
                 str(tmp_path / "ev3"), "--device", "cpu"]) == 0
    warnings = json.loads((tmp_path / "ev3" / "report.json").read_text()).get("warnings", [])
    # (what it learnt from, not the crops the first was calibrated on: it was calibrated anew)
    assert any(f"{24 - held} of 24 crops" in w for w in warnings), warnings


def test_a_crop_sets_labels_and_held_out_share_are_said_and_recorded(tmp_path, caplog,
                                                                    monkeypatch):
    """Crops of the model's own calls (ctcnet crops without --reviewed) are said in a warning
    and recorded as such; a reviewed set records each sample's sign-off; whole samples held
    out far from --holdout's share are said, naming them."""
    import json
    from types import SimpleNamespace

    from ctcnet.training.finetune import crops_made_by
    from ctcnet.training.held_out import say_the_held_out_share

    (tmp_path / "dataset.json").write_text(json.dumps({"labels": "model", "sources": []}))
    with caplog.at_level("WARNING"):
        assert crops_made_by(tmp_path) == {"labels": "model"}
    assert "its labels are the model's own calls" in caplog.text
    caplog.clear()
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": "reviewer", "sources": [
        {"sample_id": "A", "signoff": {"status": "current"}},
        {"sample_id": "B", "signoff": {"status": "changed since"}}, {"sample_id": "C"}]}))
    with caplog.at_level("WARNING"):
        assert crops_made_by(tmp_path) == {"labels": "reviewer", "signoff_status": {
            "A": "current", "B": "changed since", "C": "not signed off"}}
    assert not caplog.text
    # The card says whose labels they are, and which sign-offs did not hold.
    from ctcnet.training.finetune_card import _labels_said

    assert _labels_said(crops_made_by(tmp_path)) == (
        "; a reviewer's decisions, not signed off (or no longer) on B, C")
    assert _labels_said({"labels": "model"}).endswith("not a person's")
    assert crops_made_by(tmp_path / "elsewhere") == {}  # crops ctcnet did not cut
    # Crops a lab added to the cut are not the cut's: said, and the card says whose they are
    # (it said "every sample signed off" of 113 crops, 20 of them added by hand).
    record = {"labels": "reviewer", "sources": [{"sample_id": "A",
                                                 "signoff": {"status": "current"}}],
              "crops": [{"path": "ctc/A__0000000.tif"}, {"path": "wbc/A__0000001.tif"}]}
    (tmp_path / "dataset.json").write_text(json.dumps(record))
    read = SimpleNamespace(root=tmp_path, sample_ids=["A", "A", "lab", "lab"], paths=[
        tmp_path / "ctc/A__0000000.tif", tmp_path / "wbc/A__0000001.tif",
        tmp_path / "ctc/own_1.tif", tmp_path / "wbc/own_2.tif"])
    with caplog.at_level("WARNING"):
        made = crops_made_by(tmp_path, read)
    assert made["added_crops"] == {"lab": 2}
    assert "2 crop(s) are not from the `ctcnet crops` cut its dataset.json records" \
        in caplog.text
    assert _labels_said(made) == ("; a reviewer's decisions, every sample signed off; 2 "
                                  "crop(s) added to the cut, not from it (lab 2): labelled "
                                  "by whoever added them")
    read.sample_ids, read.paths = read.sample_ids[:2], read.paths[:2]
    assert "added_crops" not in crops_made_by(tmp_path, read)
    # The folder named relatively (`ctcnet finetune lab_crops/`): its index's root is
    # relative, its paths absolute; every crop of the cut was called added.
    monkeypatch.chdir(tmp_path.parent)
    (tmp_path.parent / "linked").unlink(missing_ok=True)
    (tmp_path.parent / "linked").symlink_to(tmp_path)
    for named in (tmp_path.name, f"../{tmp_path.parent.name}/{tmp_path.name}", "linked"):
        read.root = type(tmp_path)(named)
        assert "added_crops" not in crops_made_by(read.root, read), named
    read.root = tmp_path
    caplog.clear()
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": "reviewer", "sources": [
        {"sample_id": "A", "signoff": {"status": "current"}},
        {"sample_id": "B", "signoff": {"status": "changed since"}}, {"sample_id": "C"}]}))
    index = SimpleNamespace(sample_ids=["A"] * 36 + ["B"] * 26, splits=[""] * 62)
    held = SimpleNamespace(targets=[0] * 36, sample_ids=["A"] * 36)
    with caplog.at_level("WARNING"):
        say_the_held_out_share(tmp_path, index, held, 0.25)
    assert "36 of its 62 crops (58 %) are held out, where --holdout asked 25 %" in caplog.text
    assert "(A)" in caplog.text
    caplog.clear()
    near = SimpleNamespace(targets=[0] * 16, sample_ids=["A"] * 16)
    placed = SimpleNamespace(sample_ids=index.sample_ids, splits=["val"] * 36 + ["train"] * 26)
    with caplog.at_level("WARNING"):
        say_the_held_out_share(tmp_path, index, near, 0.25)  # 26 %: as asked
        say_the_held_out_share(tmp_path, placed, held, 0.25)  # placed by hand
    assert not caplog.text


def test_crops_that_name_no_sample_are_said_to_be_split_by_crop():
    """Files named cell_0001.tif (no manifest, no patient subfolder) are each their own
    sample: the card said "split by sample" of what was a split by crop, with nothing of the
    patients the held-out crops may share with the training ones."""
    from types import SimpleNamespace

    from ctcnet.training.finetune_card import _held_out_line
    from ctcnet.training.held_out import held_out_unit

    index = SimpleNamespace(sample_ids=[f"cell_{i:04d}" for i in range(8)], splits=[""] * 8,
                            patient_ids=None)
    train = SimpleNamespace(sample_ids=index.sample_ids[:6])
    held = SimpleNamespace(sample_ids=index.sample_ids[6:])
    unit = held_out_unit(index, train, held)
    assert unit == "crop, no sample ids"
    line = _held_out_line({"held_out": {"crops": 2, "unit": unit, "per_class": {"ctc": 2}}})
    assert "split by crop, no sample ids; the crops name no sample (patient)" in line
    # Two patients' crops, one held out whole: a split by sample.
    index = SimpleNamespace(sample_ids=["P1"] * 4 + ["P2"] * 4, splits=[""] * 8,
                            patient_ids=None)
    assert held_out_unit(index, SimpleNamespace(sample_ids=["P1"] * 4),
                         SimpleNamespace(sample_ids=["P2"] * 4)) == "sample"


def test_held_out_crops_copied_into_the_training_part_are_said_and_recorded(
        lab, tmp_path, caplog):
    """Every held-out crop copied, under another name, into a sample trained on: the card
    gave held-out figures of 1.000 as kept apart (only "pixel-identical copies" was said)."""
    import shutil

    crops = tmp_path / "crops"
    shutil.copytree(lab / "crops", crops)
    (crops / "manifest.csv").unlink(missing_ok=True)
    samples = sorted({p.name.split("__")[0] for p in crops.glob("*/*.tif")})
    for path in list(crops.glob("*/*.tif")):  # each crop also in every other sample
        for other in samples:
            if not path.name.startswith(other + "__"):
                shutil.copy(path, path.with_name(f"{other}__copy{path.name}"))
    with caplog.at_level("WARNING"):
        finetune(crops, tmp_path / "dup.pt", lab / "base.pt", TINY)
    held = load_model(tmp_path / "dup.pt")[1].training["finetune"]["data"]["held_out"]
    assert held["copies_trained_on"] == held["crops"] > 0
    assert f"{held['crops']} of the {held['crops']} held-out crops are, pixel for pixel, " \
        "crops it trains on too" in caplog.text


def test_held_out_crops_the_base_model_learnt_from_are_said_and_carded(lab, tmp_path, caplog):
    """A model fine-tuned again on the folder it learnt from, split another way: some of the
    crops held out for its figures are crops it was trained on; said before the training,
    recorded, and on the card (its figures, base 0.8688 -> 0.8724, read as held out)."""
    from dataclasses import replace

    first = tmp_path / "first.pt"
    finetune(lab / "crops", first, lab / "base.pt", TINY)
    caplog.clear()
    again = tmp_path / "again.pt"
    finetune(lab / "crops", again, first, replace(TINY, seed=7))  # the other sample held out
    _, spec = load_model(again)
    learnt = spec.training["finetune"]["data"]["held_out"]["learnt_by_base"]
    assert learnt > 0
    assert f"{learnt} of the" in caplog.text and "crops the base model learnt from" in \
        caplog.text
    assert "crops the base model learnt from, so its figures" in again.with_suffix(
        ".md").read_text()
    _, first_spec = load_model(first)
    assert first_spec.training["finetune"]["data"]["held_out"]["learnt_by_base"] == 0


def test_the_result_line_says_the_classes_held_out_lack_and_a_worse_model_is_warned_of(
        caplog):
    """Held-out crops of one class gave the headline macro-F1 0.79 -> 0.67 unqualified, and
    the worse model was written with no word."""
    from ctcnet.commands.finetune import result_line

    record = {"held_out": {"base": {"macro_f1": 0.8}, "finetuned": {"macro_f1": 0.7}},
              "held_out_calls": {"base": {"macro_f1": 0.7879}, "finetuned": {"macro_f1": 0.6667}},
              "data": {"held_out": {"per_class": {"ctc": 0, "emt_ctc": 20, "wbc": 0}}},
              "simulated_test": {}, "calibration": {"skipped": "the crops are all called right"}}
    with caplog.at_level("WARNING"):
        line = result_line(record, "lab.pt")
    assert "0.7879 -> 0.6667" in line and "(the held-out crops hold no ctc, wbc)" in line
    # The calibration's own reason, as the card and the warning give it ("too few held-out
    # crops" whatever it was).
    assert line.endswith("calibration skipped, the base model's kept (the crops are all "
                         "called right)")
    assert "lab.pt: the fine-tuned model reads the held-out crops worse than its base " \
        "(0.7879 -> 0.6667)" in caplog.text


def test_the_held_out_unit_names_patients_where_the_crops_name_them():
    """Two draws of one patient held out together: the card said "split by sample"."""
    from types import SimpleNamespace as NS

    from ctcnet.training.held_out import held_out_unit

    samples = ["P01_D0", "P01_WK3", "P02_D0", "P02_D0"]
    held, train = NS(sample_ids=samples[:2]), NS(sample_ids=samples[2:])
    named = NS(sample_ids=samples, patient_ids=["P01", "P01", "P02", "P02"], splits=[""] * 4)
    assert held_out_unit(named, train, held) == "patient"
    unnamed = NS(sample_ids=samples, patient_ids=None, splits=[""] * 4)
    assert held_out_unit(unnamed, train, held) == "sample"


def test_a_calibration_worse_than_none_on_the_lab_crops_is_said_on_the_card():
    """A refit that read the lab's held-out crops worse (ECE 0.143 against 0.128) showed only
    its temperature."""
    from ctcnet.training.finetune_card import _worse_than_none

    worse = {"uncalibrated": {"ece": 0.1278}, "calibrated": {"ece": 0.1433}}
    assert _worse_than_none(worse).startswith("; on the held-out lab crops it reads worse than "
                                              "none (ECE 0.143 against 0.128 uncalibrated)")
    assert _worse_than_none({**worse, "calibrated": {"ece": 0.05}}) == ""
    assert _worse_than_none({}) == ""


def test_the_cards_leak_line_names_a_channel_read_but_not_measured(tmp_path):
    """CD45 read on 5 CTCs whose ratios did not agree was left off the card's line, which
    then read as "no leak into CD45"; and with none measured the line printed the ratios'
    dict as a number."""
    from conftest import save_tiny_model

    from ctcnet.evaluation.recalibration import leaks_line

    spec = save_tiny_model(tmp_path / "m.pt")[1]
    found = {"source": "CK", "leaks": {"CD66b": 0.044},
             "crops": {"CD45": 5, "CD61": 0, "CD66b": 13}}
    line = leaks_line(found, spec)
    assert "CD66b 4.4%" in line and "CD45 not measured (5 CTC ratio(s)" in line
    none = leaks_line({**found, "leaks": {}}, spec)
    assert "none measured" in none and "{" not in none and "CD45 not measured" in none


def test_a_class_whose_every_crop_is_held_out_is_said(tmp_path, caplog):
    """One crop of a class, in the sample held out: the fine-tune learnt the class from the
    simulator's crops alone, and only "few crops of cluster (8)" was said."""
    from ctcnet.simulate import simulate_crops

    _, spec = save_tiny_model(tmp_path / "base.pt", crop_size=SIZE, width=8)
    batch = simulate_crops(4, load_panel(None), crop_size=SIZE, seed=12, num_samples=2)
    labels, samples = np.asarray(batch.labels), np.asarray(batch.sample_ids)
    cluster = "cluster" if labels.dtype.kind in "UO" else spec.class_names.index("cluster")
    said = {}
    for sample in sorted(set(samples)):  # the one cluster crop in one sample, then the other
        keep = (labels != cluster) | (samples == sample)
        keep[np.flatnonzero((labels == cluster) & (samples == sample))[1:]] = False
        folder = write_crop_dataset(tmp_path / f"crops-{sample}", np.asarray(batch.images)[keep],
                                    labels[keep], load_panel(None), list(samples[keep]))
        caplog.clear()
        with caplog.at_level("WARNING"):
            record = finetune(folder, tmp_path / f"t-{sample}.pt", tmp_path / "base.pt", TINY)
        held = record["data"]["held_out"]["per_class"]["cluster"]
        said[held] = "every crop of cluster is held out" in caplog.text
    assert said == {0: False, 1: True}


def test_a_held_out_part_of_one_class_gives_no_headline_figure():
    """10 wbc and 3 ctc in two samples held out the wbc sample alone: `ctcnet models` and
    the card's first row read "held-out macro-F1 1.000", wbc's alone."""
    from ctcnet.training.finetune_card import _calls_rows, _one_class_held_out

    def record(per_class):
        return {"data": {"held_out": {"per_class": per_class}}}

    assert _one_class_held_out(record({"ctc": 0, "wbc": 8, "cluster": 0, "debris": 0}))
    assert not _one_class_held_out(record({"ctc": 2, "wbc": 8, "cluster": 0, "debris": 0}))
    calls = {"base": {"macro_f1": 1.0, "accuracy": 1.0},
             "finetuned": {"macro_f1": 1.0, "accuracy": 1.0}}
    assert "held-out lab crops (one class), the calls" in _calls_rows(calls, True)[0]
    assert "(one class)" not in _calls_rows(calls)[0]


def test_a_fine_tune_that_diverges_is_said_in_one_line_and_writes_nothing(lab, tmp_path):
    """--lr 1e12: its weights stayed finite but its calls did not (a traceback from the
    held-out figures' ROC AUC: "Input contains NaN")."""
    from dataclasses import replace

    from ctcnet.errors import InputError

    with pytest.raises(InputError, match="diverged at --lr 1e\\+12"):
        finetune(lab / "crops", tmp_path / "d.pt", lab / "base.pt", replace(TINY, lr=1e12))
    assert not (tmp_path / "d.pt").exists()


def test_a_stop_as_the_model_is_written_keeps_the_model_it_would_replace(lab, tmp_path,
                                                                          monkeypatch):
    """The model, its cards and the removal of its old export are one write: a Ctrl-C among
    them puts the earlier model back whole, as the command's message says (the new weights
    stood beside the earlier model's card)."""
    import ctcnet.training.finetune_card as cards

    out = tmp_path / "lab.pt"
    finetune(lab / "crops", out, lab / "base.pt", TINY)
    out.with_suffix(".onnx").write_bytes(b"the earlier model's export")
    names = [out, out.with_suffix(".md"), out.with_suffix(".json"), out.with_suffix(".onnx")]
    before = {p: p.read_bytes() for p in names}

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cards, "write_registry_card", stopped)
    with pytest.raises(KeyboardInterrupt):
        finetune(lab / "crops", out, lab / "base.pt", replace(TINY, seed=7), overwrite=True)
    assert {p: p.read_bytes() for p in names} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in names)


def test_a_class_all_in_the_test_split_is_counted_as_none_of_the_labs(tmp_path, caplog):
    """Every cluster crop in the manifest's test split, which the fine-tune leaves out: it
    said "few crops of cluster (3)", its record and card counted them as the data's, and the
    card never said the clusters were learnt from the simulator's crops alone."""
    from ctcnet.simulate import simulate_crops

    _, spec = save_tiny_model(tmp_path / "base.pt", crop_size=SIZE, width=8)
    batch = simulate_crops(6, load_panel(None), crop_size=SIZE, seed=12, num_samples=2)
    labels = [spec.class_names[k] if not isinstance(k, str) else k for k in batch.labels]
    splits = ["test" if label == "cluster" else "" for label in labels]
    folder = write_crop_dataset(tmp_path / "crops", batch.images, batch.labels,
                                load_panel(None), batch.sample_ids, splits)
    with caplog.at_level("WARNING"):
        record = finetune(folder, tmp_path / "t.pt", tmp_path / "base.pt", TINY)
    assert record["data"]["per_class"]["cluster"] == 0
    assert record["data"]["train"]["lab_per_class"]["cluster"] == 0
    assert sum(record["data"]["train"]["lab_per_class"].values()) == \
        record["data"]["train"]["lab_crops"]
    assert "few crops of cluster" not in caplog.text
    card = (tmp_path / "t.md").read_text()
    assert "(cluster learnt from the simulator's crops alone)" in card


def test_the_cards_calibration_line_says_which_classes_the_simulator_stood_in_for():
    """121 held-out lab crops, 3 of them CTCs and no cluster: the fit pooled the simulator's
    CTCs and clusters in, and the card said the simulated crops weighed "what the lab's fall
    short of 100", which 121 do not, and nothing of the classes they stood in for."""
    from types import SimpleNamespace

    from ctcnet.training.finetune_card import _calibration_line

    review = {"reviewed_fraction": 0.2, "reviewed": 24, "n": 121, "target_precision": 0.95}
    cal = {"method": "pooled", "lab_crops": 121, "reference_crops": 200, "lab_weight": 0.95,
           "temperature": 1.1, "review": review, "filled_from_reference": ["ctc", "cluster"]}
    line = _calibration_line(cal, SimpleNamespace(review_threshold=0.9))
    assert "fall short of" not in line
    assert "the simulator's ctc, cluster standing in for the lab's (under 5 of each held " \
        "out): the review threshold rests on simulated crops of them" in line
    few = _calibration_line({**cal, "lab_crops": 40, "filled_from_reference": []},
                            SimpleNamespace(review_threshold=0.9))
    assert "(the simulated crops together weigh what the lab's fall short of 100)" in few


def test_the_cards_calibration_line_says_the_stand_ins_where_every_crop_was_called_right():
    """16 held-out lab crops all called right, none of cluster or debris: the record and the
    log said the simulator's crops stood in for those, the card's line did not."""
    from types import SimpleNamespace

    from ctcnet.evaluation.recalibration import SEPARABLE
    from ctcnet.training.finetune_card import _calibration_line

    review = {"reviewed_fraction": 0.0, "reviewed": 0, "n": 16, "target_precision": 0.99}
    cal = {"method": "pooled", "lab_crops": 16, "reference_crops": 400, "lab_weight": 0.16,
           "temperature": 0.55, "review": review, "note": SEPARABLE,
           "filled_from_reference": ["cluster", "debris"]}
    line = _calibration_line(cal, SimpleNamespace(review_threshold=0.68))
    assert "every held-out crop was called right" in line
    assert "the simulator's cluster, debris standing in for the lab's (under 5 of each held " \
        "out): the review threshold rests on simulated crops of them" in line


def test_the_cards_bound_on_automatic_calls_is_said_to_be_in_sample():
    """The threshold was fitted on the crops whose automatic calls are counted: "0 of 16
    ... wrong (at most 17.1%)" read as a bound for other crops (the log said "in-sample")."""
    from types import SimpleNamespace

    from ctcnet.training.finetune_card import _calibration_line

    review = {"reviewed_fraction": 0.0, "reviewed": 0, "n": 16, "target_precision": 0.99}
    guarantee = {"confidence": 0.95, "counted_classes": ["ctc", "cluster"], "auto_calls": 16,
                 "auto_wrong": 0, "auto_error_bound": 0.1707, "counted_cells": 7,
                 "missed": 0, "miss_bound": 0.3482, "cells_for_one_percent": 299,
                 "in_sample": True, "missed_before_fit": 0}
    cal = {"method": "lab", "lab_crops": 16, "temperature": 0.55, "review": review,
           "guarantee": guarantee}
    line = _calibration_line(cal, SimpleNamespace(review_threshold=0.68))
    assert "0 of 16 calls not shown to a person wrong" in line
    assert "(in-sample alike: as a count on crops the fit did not see, at most 17.1%)" in line


def test_a_fine_tune_leaves_the_test_split_out_and_refuses_a_compensated_model(
        tmp_path, monkeypatch):
    """The guard's leak was fitted on the manifest's test split the fine-tune said it left
    out, and the card counted that split's samples as its data's. A base trained on
    compensated crops was tuned on uncompensated ones (predict then compensated them for it):
    refused, with the training that does it."""
    from ctcnet.evaluation import recalibration
    from ctcnet.nn.classifier import load_model as load
    from ctcnet.nn.classifier import save_model
    from ctcnet.simulate import simulate_crops

    save_tiny_model(tmp_path / "base.pt", crop_size=SIZE, width=8)
    batch = simulate_crops(6, load_panel(None), crop_size=SIZE, seed=12, num_samples=3)
    samples = list(batch.sample_ids)
    test_sample = sorted(set(samples))[-1]
    splits = ["test" if s == test_sample else "" for s in samples]
    folder = write_crop_dataset(tmp_path / "crops", batch.images, batch.labels,
                                load_panel(None), samples, splits)
    leak_reads = []
    real_leaks = recalibration.with_instrument_leaks

    def leaks(spec, index):
        leak_reads.append(set(index.splits))
        return real_leaks(spec, index)

    monkeypatch.setattr(recalibration, "with_instrument_leaks", leaks)
    record = finetune(folder, tmp_path / "t.pt", tmp_path / "base.pt", TINY)
    assert leak_reads and all("test" not in splits_read for splits_read in leak_reads)
    assert record["data"]["samples"] == len(set(samples)) - 1
    model, spec = load(tmp_path / "base.pt")
    data = {**(spec.training.get("data") or {}), "compensate": True}
    save_model(tmp_path / "base.pt", model, spec.replace(training={**spec.training,
                                                                   "data": data}))
    with pytest.raises(InputError, match=r"data.compensate\), which a fine-tune does not do: "
                                         r"train it on the lab's crops instead"):
        finetune(folder, tmp_path / "t2.pt", tmp_path / "base.pt", TINY)
