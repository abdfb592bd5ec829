"""ctcnet.nn.registry: the shipped and site models, and which one the data's channels and kind
choose."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_model, save_tiny_model
from PIL import Image

from ctcnet.cli import main
from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.io.panel import load_panel
from ctcnet.nn import registry

CORE3 = ["DAPI", "CK", "CD45"]
RGB_ORDER = ["CK", "CD45", "DAPI"]  # R, G, B as published composites show them
TINY_CROP = 32


# --- the registry ---------------------------------------------------------------------------------


def test_registry_lists_shipped_and_site_models(with_tiny3):
    models = registry.list_models()
    assert [m.name for m in models] == ["ctcnet-default", "tiny3"]
    tiny = registry.get_model("tiny3")
    assert tiny.channels == CORE3 and tiny.crop_size == TINY_CROP
    assert tiny.size_bytes == (with_tiny3 / "tiny3.pt").stat().st_size
    assert tiny.figures() == {"test_rgb_jpeg": 0.25, "robustness_min": 0.2}
    assert registry.resolve_model("tiny3") == with_tiny3 / "tiny3.pt"
    assert registry.resolve_model(None) == registry.PACKAGE_MODELS / "ctcnet-default.pt"
    assert registry.resolve_model("elsewhere/m.pt") == Path("elsewhere/m.pt")  # a path as given
    with pytest.raises(InputError, match=r"no shipped model called 'tiny5'.*tiny3"):
        registry.resolve_model("tiny5")
    with pytest.raises(InputError, match="no ONNX export"):
        tiny.file("onnx")


def test_a_model_file_without_its_card_is_said_not_skipped_silently(with_tiny3, caplog):
    trained = with_tiny3 / "trained.pt"  # the module's models folder: taken out after
    trained.write_bytes((with_tiny3 / "tiny3.pt").read_bytes())
    try:
        with caplog.at_level("WARNING", logger="ctcnet.nn.registry"):
            names = [m.name for m in registry.list_models()]
    finally:
        trained.unlink()
    assert "trained" not in names
    assert "trained.pt: has no card (trained.json)" in caplog.text
    assert "tiny3.pt" not in caplog.text  # a model with its card is no news
    # Asked for by name: the file named, not "no shipped model" (its folder was searched).
    trained.write_bytes((with_tiny3 / "tiny3.pt").read_bytes())
    try:
        with pytest.raises(InputError, match=r"trained.pt has no card \(trained.json\) beside "
                                             r"it, so it is not offered by name: pass the file"):
            registry.get_model("trained")
    finally:
        trained.unlink()


def test_shipped_models_are_found_without_the_override(monkeypatch):
    monkeypatch.delenv(registry.MODELS_ENV, raising=False)
    models = registry.list_models()
    assert models[0].name == "ctcnet-default"
    for info in models:  # package data, as the wheel ships it, each with both files
        assert info.folder == registry.PACKAGE_MODELS
        assert info.checkpoint is not None and info.onnx is not None, info.name
        assert info.figures(), info.name


def test_shipped_models_are_chosen_by_the_kind_of_data(monkeypatch):
    # The shipped cards as they are: export crops get the export model, a composite cartridge
    # the model with a cartridge rule, a three-marker scan core3, never the export model.
    monkeypatch.delenv(registry.MODELS_ENV, raising=False)
    composite = load_panel({"channels": RGB_ORDER, "composite": "rgb"})
    scan = load_panel({"channels": ["DAPI", "CK", "CD45"]})
    export = registry.get_model("ctcnet-core3-export")
    assert export.reads_exports and not export.has_cartridge_rule
    assert "test_tight_exports" in export.figures()
    assert registry.choose_model([composite]).name == "ctcnet-core3-export"
    assert registry.choose_model([composite], cartridges=True).name == "ctcnet-core3"
    assert registry.choose_model([scan]).name == "ctcnet-core3"
    assert registry.choose_model([scan], cartridges=True).name == "ctcnet-core3"
    # Composites at a scanner's own pixel size (a gallery's thumbnails) get the scan model.
    assert registry.choose_model([composite], scan_scale=True).name == "ctcnet-core3"


def test_composite_folders_at_a_scanners_pixel_size_get_the_scan_model(monkeypatch, tmp_path,
                                                                       caplog):
    """A composite crop folder stated at 0.3 um/px or more (its panel.json, or a number
    passed) whose crops are 40 um or more across is read as a scan's thumbnails; one at an
    export's magnification or cut tight round its cell, or read with fit or auto (no size
    stated), gets the export model."""
    from ctcnet.inference.model_choice import choose_for_inputs

    monkeypatch.delenv(registry.MODELS_ENV, raising=False)
    folder = tmp_path / "crops"
    (folder / "ctc").mkdir(parents=True)

    def chosen(stated, pixel_size=None, side=80):
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (side, side, 3), np.uint8),
                        "RGB").save(folder / "ctc" / "a.png")
        panel = {"channels": RGB_ORDER, "composite": "rgb",
                 **({"pixel_size_um": stated} if stated else {})}
        (folder / "panel.json").write_text(json.dumps(panel))
        return choose_for_inputs([], [folder], pixel_size, "crops").name

    assert chosen(0.64) == "ctcnet-core3"                   # 51 um across
    assert chosen(0.64, side=40) == "ctcnet-core3-export"   # 26 um: cut tight round a cell
    assert chosen(0.1) == "ctcnet-core3-export"
    assert chosen(None, 0.5, side=100) == "ctcnet-core3"
    assert chosen(0.64, 0.1) == "ctcnet-core3-export"      # the number passed wins
    assert chosen(None, "fit") == "ctcnet-core3-export"
    caplog.clear()
    with caplog.at_level("WARNING", logger="ctcnet.inference.model_choice"):
        assert chosen(0.64, "auto") == "ctcnet-core3-export"
    # auto keeps the export model, and says how a gallery's thumbnails get the scan model.
    assert "with --pixel-size auto are read as high-magnification single-cell exports " \
        "(ctcnet-core3-export)" in caplog.text and "--pixel-size UM" in caplog.text
    # A crop that cannot be read is the run's to report: the others still tell the field.
    (folder / "ctc" / "b.png").write_bytes(b"not an image")
    assert chosen(0.64) == "ctcnet-core3"


def test_registry_chooses_the_model_whose_channels_the_data_has(with_tiny3):
    five = load_panel(None)
    rgb = load_panel({"channels": RGB_ORDER})
    assert registry.choose_model([five]).name == "ctcnet-default"  # uses all five channels
    assert registry.choose_model([rgb]).name == "tiny3"
    with pytest.raises(PanelMismatchError) as err:
        registry.choose_model([load_panel({"channels": ["DAPI", "CK", "VIM"]})])
    message = str(err.value)
    assert "tiny3 needs ['DAPI', 'CK', 'CD45'] (missing ['CD45'])" in message
    assert "ctcnet-default needs" in message and "README" in message


def test_on_a_tie_the_shipped_model_is_chosen_before_a_sites_and_each_says_where_from(
        with_tiny3, tmp_path, monkeypatch):
    """A lab's trial fine-tune in $CTCNET_MODELS that fits the data as well as a shipped model
    is not chosen over it for sorting first by name, and a run names where a model is from."""
    site = tmp_path / "site"
    site.mkdir()
    card = json.loads((registry.PACKAGE_MODELS / "ctcnet-default.json").read_text())
    (site / "aaa-lab.json").write_text(json.dumps(card))
    (site / "aaa-lab.pt").symlink_to(registry.PACKAGE_MODELS / "ctcnet-default.pt")
    monkeypatch.setenv(registry.MODELS_ENV, f"{site}{os.pathsep}{with_tiny3}")
    chosen = registry.choose_model([load_panel(None)])
    assert chosen.name == "ctcnet-default" and chosen.origin == "shipped"
    assert registry.get_model("aaa-lab").origin == f"from {site}"
    with pytest.raises(InputError, match=registry.MODELS_ENV):
        registry.get_model("lab")


def test_a_sites_model_named_like_a_shipped_one_never_takes_its_name(with_tiny3, tmp_path,
                                                                     monkeypatch, caplog):
    """A lab's fine-tune saved as ctcnet-default in $CTCNET_MODELS replaced the shipped model
    by name and in predict's choice (a five-class one: the default vanished and the choice
    fell to a model of fewer channels), without a word; so did the second of two site folders
    holding one name."""
    site, other = tmp_path / "site", tmp_path / "other"
    for folder in (site, other):
        folder.mkdir()
        card = json.loads((with_tiny3 / "tiny3.json").read_text())
        for name in ("ctcnet-default", "tiny3"):
            (folder / f"{name}.json").write_text(json.dumps(card))
            (folder / f"{name}.pt").symlink_to(with_tiny3 / "tiny3.pt")
    monkeypatch.setenv(registry.MODELS_ENV, os.pathsep.join(map(str, (with_tiny3, site, other))))
    with caplog.at_level("WARNING"):
        models = {m.name: m for m in registry.list_models()}
    assert models["ctcnet-default"].origin == "shipped"
    assert models["tiny3"].folder == with_tiny3
    said = caplog.text
    assert f"{site / 'ctcnet-default.json'}: named like the model 'ctcnet-default'" in said
    assert f"{other / 'tiny3.json'}: named like the model 'tiny3'" in said
    assert registry.choose_model([load_panel(None)]).name == "ctcnet-default"


def test_models_that_cannot_run_as_their_card_says_are_said(with_tiny3, tmp_path,
                                                            monkeypatch, capsys, caplog):
    """A lab's network registered in its own code, a checkpoint cut short, a card whose
    weights were moved: each was listed (or left out) without a word, and predict refused."""
    from ctcnet.cli import main

    site = tmp_path / "site"
    site.mkdir()
    card = json.loads((with_tiny3 / "tiny3.json").read_text())
    weights = (with_tiny3 / "tiny3.pt").read_bytes()
    (site / "labnet.json").write_text(json.dumps({**card, "arch": "labnet"}))
    (site / "labnet.pt").write_bytes(weights)
    (site / "cut.json").write_text(json.dumps({**card, "file": "cut.pt",
                                               "size_bytes": len(weights)}))
    (site / "cut.pt").write_bytes(weights[:len(weights) // 2])
    (site / "moved.json").write_text(json.dumps(card))
    monkeypatch.setenv(registry.MODELS_ENV, os.pathsep.join(map(str, (with_tiny3, site))))
    with caplog.at_level("WARNING"):
        assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert "WARNING: its network 'labnet' is none this install builds" in listed
    assert f"WARNING: cut.pt is {len(weights) // 2:,} bytes, its card records " \
        f"{len(weights):,}: cut short or replaced?" in listed
    assert "moved.json: a model card with no moved.pt or moved.onnx beside it" in caplog.text
    assert "notes.json" not in caplog.text  # a file of notes is no card


def test_an_export_model_is_chosen_for_composites_and_never_for_scans(with_tiny3, tmp_path,
                                                                     monkeypatch, capsys):
    # A model whose card says it reads exports only (configs/core3-export.yaml) beside tiny3,
    # which has the same channels and reads scans.
    exports = tmp_path / "exports"
    exports.mkdir()
    path = make_tiny_model(exports / "tiny3-export.pt")
    card = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({
        **card, "reads": "exports",
        "test_default_randomisation": {"macro_f1": 0.5, "export": "tight single-cell, JPEG"}}))
    monkeypatch.setenv(registry.MODELS_ENV, f"{with_tiny3}{os.pathsep}{exports}")
    assert registry.get_model("tiny3-export").reads_exports
    # Its held-out test was made on exports, and the figure is named so.
    assert registry.get_model("tiny3-export").figures()["test_tight_exports"] == 0.5
    assert not registry.get_model("tiny3").reads_exports
    composite = load_panel({"channels": RGB_ORDER, "composite": "rgb"})
    scan = load_panel({"channels": RGB_ORDER})
    assert registry.choose_model([composite]).name == "tiny3-export"
    assert registry.choose_model([scan]).name == "tiny3"          # a 16-bit three-channel scan
    assert registry.choose_model([composite, scan]).name == "tiny3"  # not every input an export
    # A cartridge is judged by its frames: 8-bit colour frames are an export whatever
    # panel.json says, 16-bit frames are a scan even where it says "composite".
    from ctcnet.inference.inputs import resolve_inputs
    from ctcnet.inference.model_choice import input_panels
    from ctcnet.simulate import simulate_cartridge

    def panels(cartridge):
        return input_panels(*resolve_inputs([cartridge]))

    scan_cart = tmp_path / "scan_cart"
    simulate_cartridge(scan_cart, load_panel({"channels": RGB_ORDER, "pixel_size_um": 0.64}),
                       num_frames=1, frame_shape=(64, 64), seed=2, events_per_frame=2)
    panel_json = json.loads((scan_cart / "panel.json").read_text())
    (scan_cart / "panel.json").write_text(json.dumps({**panel_json, "composite": "rgb"}))
    rgb_cart = tmp_path / "rgb_cart"
    rgb_cart.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8),
                    "RGB").save(rgb_cart / "r00c00.png")
    (rgb_cart / "panel.json").write_text(json.dumps({"channels": RGB_ORDER,
                                                     "pixel_size_um": 0.3}))
    assert registry.choose_model(panels(scan_cart)).name == "tiny3"
    assert registry.choose_model(panels(rgb_cart)).name == "tiny3-export"
    # Whole cartridges want a rule fitted at cartridge prevalence: the export model has none,
    # so a scan model with one that reads composites too comes first; with neither having
    # one, the export model stays first.
    assert registry.choose_model(panels(rgb_cart), cartridges=True).name == \
        "tiny3-export"
    card3 = json.loads((with_tiny3 / "tiny3.json").read_text())
    (with_tiny3 / "tiny3.json").write_text(json.dumps(
        {**card3, "decision": {"rule": "prior_shift", "log_weights": {"ctc": -4.0}}}))
    assert registry.get_model("tiny3").has_cartridge_rule
    assert not registry.get_model("tiny3-export").has_cartridge_rule
    assert registry.choose_model(panels(rgb_cart), cartridges=True).name == "tiny3"
    assert registry.choose_model(panels(rgb_cart)).name == "tiny3-export"
    (with_tiny3 / "tiny3.json").write_text(json.dumps(card3))
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("reads 8-bit composite exports only") == 1
    assert listed.index("reads 8-bit") > listed.index("tiny3-export")
    (exports / "tiny3-export.json").rename(exports / "only.json")
    (exports / "tiny3-export.pt").rename(exports / "only.pt")
    monkeypatch.setenv(registry.MODELS_ENV, str(exports))
    monkeypatch.setattr(registry, "PACKAGE_MODELS", tmp_path / "none")
    with pytest.raises(PanelMismatchError, match="read composite exports only"):
        registry.choose_model([scan])


def test_a_labs_model_of_more_channels_without_a_cartridge_rule_is_passed_over_and_said(
        tmp_path, monkeypatch, caplog):
    """A lab's six-channel model (with vimentin) in $CTCNET_MODELS has no cartridge rule: a
    six-channel cartridge goes to the shipped model with one, and the run says which model was
    passed over and why; a crop folder of the same channels gets the lab's model."""
    site = tmp_path / "site"
    site.mkdir()
    six = ["DAPI", "CK", "CD45", "CD61", "CD66b", "VIM"]
    make_tiny_model(site / "lab6.pt", channels=six)
    monkeypatch.setenv(registry.MODELS_ENV, str(site))
    data = load_panel({"channels": six, "pixel_size_um": 0.64})
    with caplog.at_level("WARNING", logger="ctcnet.nn.registry"):
        chosen = registry.choose_model([data], cartridges=True)
    assert chosen.name == "ctcnet-default"
    assert "lab6 reads more of the data's channels than ctcnet-default, but has no cartridge " \
        "decision rule" in caplog.text
    assert registry.choose_model([data]).name == "lab6"


def test_no_model_fitting_planes_alike_by_a_marker_names_them():
    """CK-PE beside a therapy plane named CK-FITC: the models lack "CK", and the planes read
    as one marker were not named (the advice to rename a channel "CK" then met a refusal)."""
    from ctcnet.nn.registry import choose_model

    panel = load_panel({"channels": ["DAPI", "CK-PE", "CD45-APC", "CK-FITC"],
                        "pixel_size_um": 0.64})
    with pytest.raises(PanelMismatchError, match=r"CK-PE and CK-FITC both read as one marker "
                                                 r"\(epithelial\): name each plane by what it "
                                                 r"holds") as refused:
        choose_model([panel], "cartridge X", cartridges=True)
    # Said first, as the fix, before each model's needs (not after "missing CK" and the
    # advice to name a channel CK).
    assert str(refused.value).index("both read as one") < str(refused.value).index("missing")
    assert "name it so in panel.json" not in str(refused.value)


def test_a_mistyped_checkpoint_path_is_a_file_not_found_not_an_unknown_model():
    """A .ckpt path mistyped read as "no shipped model called ..." (.pt and .onnx said the
    file was not found)."""
    from ctcnet.nn.registry import is_registry_name, resolve_model

    for name in ("runs/x/lst.ckpt", "runs/x/LST.CKPT", "runs/x/m.pt"):
        assert resolve_model(name) == Path(name) and not is_registry_name(name)
    import ctcnet

    with pytest.raises(InputError, match="model file not found"):
        ctcnet.load_backend("runs/x/lst.ckpt")


def test_a_model_mapped_to_cuda_where_there_is_none_is_said_so_not_damaged(monkeypatch):
    import torch

    from ctcnet.errors import CtcnetError
    from ctcnet.nn.classifier import load_model

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(CtcnetError, match="no CUDA device is available") as said:
        load_model("ctcnet-default", map_location="cuda")
    assert "damaged" not in str(said.value)


def test_a_shipped_models_weights_missing_are_said_not_an_unknown_name(tmp_path, monkeypatch,
                                                                      caplog):
    """A shipped card whose weights went vanished from `ctcnet models` without a word, and
    --model NAME said no such model was shipped."""
    import shutil

    package = tmp_path / "models"
    package.mkdir()
    for suffix in (".json", ".pt"):
        shutil.copy(registry.PACKAGE_MODELS / f"ctcnet-default{suffix}", package)
    shutil.copy(registry.PACKAGE_MODELS / "ctcnet-core3.json", package)
    shutil.copy(registry.PACKAGE_MODELS / "SHA256SUMS", package)  # (it lists the card)
    monkeypatch.setattr(registry, "PACKAGE_MODELS", package)
    monkeypatch.delenv(registry.MODELS_ENV, raising=False)
    with caplog.at_level("WARNING"):
        names = [m.name for m in registry.list_models()]
    assert names == ["ctcnet-default"]
    assert "ctcnet-core3.json: a model card with no ctcnet-core3.pt or ctcnet-core3.onnx" in \
        caplog.text and "ctcnet verify names the shipped files missing" in caplog.text
    with pytest.raises(InputError, match="'ctcnet-core3' has its card but not its weights"):
        registry.get_model("ctcnet-core3")


def test_a_named_model_whose_onnx_export_is_of_an_older_checkpoint_is_refused_on_onnx(
        tmp_path, monkeypatch):
    """Re-fine-tuned, the export forgotten: --backend onnx --model NAME ran the earlier
    network without a word (the torch path says it and runs the checkpoint)."""
    import shutil

    import ctcnet
    from ctcnet.deploy.export import export_onnx

    lab = tmp_path / "lab"
    lab.mkdir()
    save_tiny_model(lab / "lab.pt", width=4, seed=0)
    export_onnx(lab / "lab.pt", lab / "lab.onnx")
    shutil.copy(registry.PACKAGE_MODELS / "ctcnet-default.json", lab / "lab.json")
    monkeypatch.setenv(registry.MODELS_ENV, str(lab))
    assert type(ctcnet.load_backend("lab", backend="onnx")).__name__ == "OnnxBackend"
    save_tiny_model(lab / "lab.pt", width=4, seed=1)  # fine-tuned again
    with pytest.raises(InputError, match="lab.onnx was not exported from the current lab.pt"):
        ctcnet.load_backend("lab", backend="onnx")
    ctcnet.load_backend(str(lab / "lab.onnx"))  # the file itself: run as it is


def test_a_lab_checkpoint_replaced_under_its_card_is_said_where_it_runs(tmp_path, monkeypatch,
                                                                        caplog):
    """A fine-tune's card recorded its file's size alone and predict said nothing of a file
    swapped under it: the card's SHA-256 of its own file ties summary.json's model.sha256 to
    it, and a file that is not it is said by `ctcnet models` and where it runs."""
    import ctcnet
    from ctcnet.deploy.export import export_onnx
    from ctcnet.io.digests import file_sha256

    lab = tmp_path / "lab"
    lab.mkdir()
    save_tiny_model(lab / "lab.pt", width=4, seed=0)
    card = json.loads((registry.PACKAGE_MODELS / "ctcnet-default.json").read_text())
    card.update(file="lab.pt", sha256=file_sha256(lab / "lab.pt"),
                size_bytes=(lab / "lab.pt").stat().st_size)
    (lab / "lab.json").write_text(json.dumps(card))
    monkeypatch.setenv(registry.MODELS_ENV, str(lab))
    assert registry.get_model("lab").unlike_its_card() is None
    save_tiny_model(lab / "lab.pt", width=4, seed=1)  # same size, another network
    assert "lab.pt's SHA-256 is not the one its card records" in \
        registry.get_model("lab").unlike_its_card()
    with caplog.at_level("WARNING"):
        ctcnet.load_backend("lab", backend="torch")
    assert "lab.pt's SHA-256 is not the one its card records" in caplog.text
    # An ONNX-only model's card names its .onnx: that file is held to it.
    (lab / "lab.pt").unlink()
    export_onnx(registry.PACKAGE_MODELS / "ctcnet-core3.pt", lab / "lab.onnx")
    card.update(file="lab.onnx")
    (lab / "lab.json").write_text(json.dumps(card))
    assert "lab.onnx's SHA-256 is not the one its card records" in \
        registry.get_model("lab").unlike_its_card()


def test_a_model_pair_renamed_together_is_current_on_onnx(tmp_path, monkeypatch):
    """The export records its source's name and digest: a .pt/.onnx pair copied under another
    name was refused as stale."""
    import shutil

    import ctcnet

    lab = tmp_path / "lab"
    lab.mkdir()
    for suffix in (".pt", ".onnx", ".json"):
        shutil.copy(registry.PACKAGE_MODELS / f"ctcnet-core3{suffix}", lab / f"mylab{suffix}")
    monkeypatch.setenv(registry.MODELS_ENV, str(lab))
    assert type(ctcnet.load_backend("mylab", backend="onnx")).__name__ == "OnnxBackend"
