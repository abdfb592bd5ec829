"""ctcnet.evaluation.matrix: the robustness matrix counts right (flips, F1, flags), its figure
and its place in the model card."""

import json

import numpy as np
import pytest
from conftest import disk_crops

from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.evaluation import perturb
from ctcnet.evaluation.matrix import check_targets, matrix_png, run_matrix
from ctcnet.io.panel import Panel, default_panel, load_panel

SIZE = 40
CLASSES = ["ctc", "wbc", "cluster", "debris"]


def test_catalogue_covers_every_ordered_pair_and_skips_missing_roles():
    panel = default_panel()
    cells, notes = perturb.perturbation_catalogue(panel)
    bleeds = {c.name for c in cells if c.family == "bleed"}
    assert len(bleeds) == panel.num_channels * (panel.num_channels - 1)
    assert "bleed CK->CD61" in bleeds and "bleed CD61->CK" in bleeds
    ends = [c for c in cells if c.name == "stain CK" and c.range_end]
    assert [c.strength for c in ends] == [0.25, 8.0]
    assert not notes
    small = Panel.from_dict({"channels": ["DAPI", "CD45", "FITC"]})
    cells, notes = perturb.perturbation_catalogue(small)
    assert not [c for c in cells if c.family == "nonspecific"]
    assert len(notes) == 2 and "epithelial" in notes[0]
    x = disk_crops(n=2, channels=3, channel=1)
    for cell in cells:  # every cell runs on a 3-channel panel and keeps the shape
        assert cell.apply(x, np.random.default_rng(0)).shape == x.shape, cell.name


def _toy_classify(crops):
    """Calls class 0 when channel 1 is brighter than channel 2, else class 1."""
    score = crops[:, 1].mean(axis=(1, 2)) - crops[:, 2].mean(axis=(1, 2))
    proba = np.stack([score > 0, score <= 0], axis=1).astype(np.float64)
    return {"cnn": proba, "marker_gate": np.tile([0.5, 0.5], (len(crops), 1))}


def test_run_matrix_counts_flips_f1_and_flags():
    crops = np.concatenate([disk_crops(n=5, channel=1), disk_crops(n=5, channel=2)])
    labels = np.array([0] * 5 + [1] * 5)
    names = ["ctc", "wbc"]
    cells = [perturb.Cell("test", "identity", 1.0, "1x", True, lambda x, rng: x),
             perturb.Cell("test", "swap", 1.0, "1x", True, lambda x, rng: x[:, [0, 2, 1]])]
    flags = lambda x, p: np.arange(len(x)) >= 5  # noqa: E731  flag the second half
    m = run_matrix(crops[:, :3], labels, names, _toy_classify, cells, flags={"half": flags})
    identity, swap = m["cells"]
    assert identity["methods"]["cnn"] == {"flip_rate": 0.0, "macro_f1": 1.0,
                                          "confusion": [[5, 0], [0, 5]],
                                          "transitions": [[5, 0], [0, 5]],
                                          "right_to_wrong": 0, "wrong_to_right": 0}
    assert swap["methods"]["cnn"]["flip_rate"] == 1.0
    assert swap["methods"]["cnn"]["macro_f1"] == 0.0
    # Every call moved to the other class, and each move broke a right call.
    assert swap["methods"]["cnn"]["transitions"] == [[0, 5], [5, 0]]
    assert swap["methods"]["cnn"]["right_to_wrong"] == 10
    # Under the swap all five wbc are called ctc; the flags catch every one of them.
    assert swap["review"]["half"] == {"flagged_share": 0.5, "wrong_ctc_calls": 5,
                                      "wrong_ctc_caught": 1.0, "missed_ctc": 5,
                                      "missed_ctc_caught": 0.0, "leukocytes": 5,
                                      "leukocytes_called_ctc_unflagged": 0}
    check = check_targets(m)
    assert not check["passed"]
    assert any("swap" in f and "flips" in f and "ctc->wbc 5, wbc->ctc 5; 10 of 10 broke"
               in f for f in check["failures"])
    assert not any("identity" in f for f in check["failures"])


def test_check_targets_sees_double_positive_leukocytes_and_the_gate():
    names = ["ctc", "wbc"]
    cell = {"family": "nonspecific", "name": "CK += CD45 pattern", "label": "100%",
            "range_end": True,
            "methods": {"cnn": {"flip_rate": 0.0, "macro_f1": 0.98,
                                "confusion": [[50, 0], [2, 48]]},
                        "marker_gate": {"flip_rate": 0.0, "macro_f1": 0.99,
                                        "confusion": [[50, 0], [1, 49]]}}}
    check = check_targets({"class_names": names, "cells": [cell], "epithelial_channel": "CK"})
    assert check["double_positive_wbc_called_ctc"] == pytest.approx(0.04)
    assert check["double_positive_wbc_counted_ctc"] is None  # no guard run on this cell
    assert len(check["failures"]) == 2  # 4 % > 1 % and below the marker gate
    # The guard holds one of the two: one of 50 leukocytes is left in the automatic count,
    # and the target still reads the network's own call.
    cell["review"] = {"marker_guard": {"leukocytes": 50, "leukocytes_called_ctc_unflagged": 1}}
    check = check_targets({"class_names": names, "cells": [cell], "epithelial_channel": "CK"})
    assert check["double_positive_wbc_counted_ctc"] == pytest.approx(0.02)
    assert len(check["failures"]) == 2


def test_a_clean_figure_under_the_target_is_said_first_not_each_unchanged_range_end():
    """Clean macro-F1 0.931: range ends with no flip and the clean figure were listed as
    failures one by one, the clean figure itself not named."""
    names = ["ctc", "wbc"]

    def cell(label, f1):
        return {"family": "stain", "name": "CD61", "label": label, "range_end": True,
                "methods": {"cnn": {"flip_rate": 0.0, "macro_f1": f1,
                                    "confusion": [[5, 0], [0, 5]]}}}

    check = check_targets({"class_names": names, "clean": {"cnn": {"macro_f1": 0.931}},
                           "cells": [cell("0.25x", 0.931), cell("4x", 0.90)]})
    assert check["failures"] == ["CD61 4x: macro-F1 0.9000 < 0.97"]
    assert check["clean_below_target"] == 0.931 and not check["passed"]
    check = check_targets({"class_names": names, "clean": {"cnn": {"macro_f1": 0.931}},
                           "cells": [cell("0.25x", 0.931)]})
    assert check["failures"] == [] and not check["passed"]  # (the clean figure misses it)


def test_matrix_png_draws_any_number_of_methods(tmp_path):
    cell = {"name": "x", "label": "1x", "range_end": True,
            "methods": {m: {"flip_rate": 0.1, "macro_f1": 0.9} for m in ("cnn", "a", "b")}}
    path = matrix_png({"n": 3, "methods": ["cnn", "a", "b"], "cells": [cell, cell]},
                      tmp_path / "m.png")
    assert path.stat().st_size > 0


def test_matrix_goes_into_a_model_card(tmp_path):
    """The range ends, the check and the flags land in the card's JSON and Markdown."""
    import shutil

    from ctcnet.evaluation.model_card import matrix_summary, update_card
    from ctcnet.nn.registry import get_model

    crops = np.concatenate([disk_crops(n=5, channel=1), disk_crops(n=5, channel=2)])
    labels = np.array([0] * 5 + [1] * 5)
    cells = [perturb.Cell("test", "identity", 1.0, "1x", True, lambda x, rng: x),
             perturb.Cell("test", "swap", 1.0, "1x", False, lambda x, rng: x[:, [0, 2, 1]]),
             perturb.Cell("test", "swap", 2.0, "2x", True, lambda x, rng: x[:, [0, 2, 1]])]
    m = run_matrix(crops[:, :3], labels, ["ctc", "wbc"], _toy_classify, cells,
                   flags={"half": lambda x, p: np.arange(len(x)) >= 5})
    m["check"] = check_targets(m)
    card = tmp_path / "card.json"
    info = get_model("ctcnet-core3")
    shutil.copy(info.folder / f"{info.name}.json", card)
    update_card(card, robustness_matrix=matrix_summary(m, "python make_it.py"))
    stored = json.loads(card.read_text())["robustness_matrix"]
    assert [c["strength"] for c in stored["range_ends"]] == ["1x", "2x"]  # range ends only
    assert stored["range_ends"][1]["cnn"] == {
        "flip_rate": 1.0, "macro_f1": 0.0,
        "flips": "ctc->wbc 5, wbc->ctc 5; 10 of 10 broke a right call"}
    text = card.with_suffix(".md").read_text()
    assert "## Robustness matrix (range ends)" in text and "`python make_it.py`" in text
    # cnn, then the gate's columns, then where the CNN's calls went
    assert "| swap | 2x | 100.0% | 0.000 | 0.0% | 0.333 | ctc->wbc 5, wbc->ctc 5; 10 of 10 " \
        "broke a right call |" in text and "**not met**" in text
    assert "## Held-out test" in text  # the rest of the card is still there
    assert "reads exports only" not in text
    # An export model's matrix says so, with the flips the export alone makes.
    m.update(exported=True, export_redraw={"flip_rate": 0.105, "macro_f1": 0.8193, "n": 10})
    update_card(card, robustness_matrix=matrix_summary(m, "python make_it.py"))
    assert json.loads(card.read_text())["robustness_matrix"]["export_redraw"] == {
        "flip_rate": 0.105, "macro_f1": 0.8193}
    assert "exported again with other settings flip 10.5% of its calls (macro-F1 0.819)" in \
        card.with_suffix(".md").read_text()
    # A refit rewrites the checkpoint beside the card: the card's size is read again.
    (tmp_path / json.loads(card.read_text())["file"]).write_bytes(b"\0" * 1234)
    update_card(card, robustness_matrix=matrix_summary(m, "python make_it.py"))
    assert json.loads(card.read_text())["size_bytes"] == 1234
    assert "(0.00 MB," in card.with_suffix(".md").read_text()


def test_flip_summary_names_the_commonest_moves_and_the_damage():
    """A cell where a dimmed marker sends CTCs to two classes and mends one wrong call."""
    from ctcnet.evaluation.matrix import flip_summary, method_cell

    names = ["ctc", "wbc", "cluster", "debris"]
    labels = np.array([0] * 6 + [3] * 2)
    reference = np.array([0, 0, 0, 0, 0, 0, 0, 3])  # one debris called ctc before
    pred = np.array([1, 1, 1, 2, 0, 0, 3, 3])        # ... and debris after
    cell = method_cell(labels, pred, reference, len(names))
    assert cell["right_to_wrong"] == 4 and cell["wrong_to_right"] == 1
    assert flip_summary(cell, names) == ("ctc->wbc 3, ctc->cluster 1, ctc->debris 1; "
                                         "4 of 5 broke a right call")
    assert flip_summary(cell, names, top=1) == "ctc->wbc 3; 4 of 5 broke a right call"
    unchanged = method_cell(labels, reference, reference, len(names))
    assert flip_summary(unchanged, names) == ""
    assert flip_summary({"flip_rate": 0.1, "macro_f1": 0.9}, names) == ""  # an older card


def test_robustness_compensate_shows_the_cnn_the_compensated_crops_and_the_flags_the_raw(
        tmp_path, tiny_model_file, monkeypatch):
    """``--compensate``: every CNN call of a cell sees the perturbed crops with CK's spillover
    taken off per sample; the review flags (the marker guard) and the baselines see them as
    they are."""
    from ctcnet.evaluation import matrix as matrix_module
    from ctcnet.inference import guard, spillover

    panel = default_panel()
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    crops = np.concatenate([disk_crops(n=3, channel=k, seed=k, noise=4) for k in range(4)])
    labels = [CLASSES[k] for k in range(4) for _ in range(3)]
    write_crop_dataset(tmp_path / "data", crops.astype(np.uint16), labels, panel)
    measured, compensated, guarded = [], [], []  # kept alive: no array's id is reused
    real, real_flags = spillover.compensate_samples, guard.review_flags

    def counting(x, *args, **kwargs):
        measured.append(len(x))
        out = real(x, *args, **kwargs)
        compensated.append(out[0])
        return out

    def guarding(x, *args, **kwargs):
        guarded.append(x)
        return real_flags(x, *args, **kwargs)

    monkeypatch.setattr(spillover, "compensate_samples", counting)
    monkeypatch.setattr(guard, "review_flags", guarding)
    report = matrix_module.robustness_dataset(tmp_path / "data", tmp_path / "m.pt",
                                              tmp_path / "out", with_baselines=False,
                                              families=["crop"], device="cpu", compensate=True)
    assert report["compensated"] is True
    assert measured == [12] * (1 + len(report["cells"]))  # clean + one per cell, the CNN only
    assert guarded and not any(g is c for g in guarded for c in compensated)
    plain = matrix_module.robustness_dataset(tmp_path / "data", tmp_path / "m.pt",
                                             tmp_path / "out2", with_baselines=False,
                                             families=["crop"], device="cpu")
    assert plain["compensated"] is False and len(measured) == 1 + len(report["cells"])
    # 12 crops: one flip is 8 %, none bounds it under 25 %; "all targets met" was read as a
    # verdict on the 2 % target.
    assert plain["check"]["too_few_crops"] is True
    assert any(n.startswith("12 crops cannot resolve the 2% flip target: one flip is 8.3% of "
                            "them, and none bounds the rate only under 25.0% (95 %); a verdict "
                            "on the targets needs 150 crops at least") for n in plain["notes"])


def test_an_export_model_reads_every_cell_exported_and_so_does_its_guard(
        tmp_path, tiny_model_file, monkeypatch):
    """A model that reads exports only is given each changed crop exported once (as its
    validation crops were), the guard measures that export, the export cells (an export of an
    export) and the intensity baselines are left out with a note."""
    from ctcnet.evaluation import matrix as matrix_module
    from ctcnet.inference import guard
    from ctcnet.inference.backends import load_backend
    from ctcnet.simulate.augment import exported_once

    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    trained = {"tight_p": 1.0, "jpeg_p": 0.3}
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE, panel=panel.to_dict(),
                    training={"data": {"view": "export", "augment": trained}})
    # The matrix reads tight exports at their stated pixel size, none of training's composites.
    augment = {**trained, "jpeg_p": 0.0, "tight_scale_error": (1.0, 1.0)}
    backend = load_backend(tmp_path / "m.pt", device="cpu")
    assert backend.spec.reads_exports
    crops = np.concatenate([disk_crops(n=2, channel=k, seed=k, noise=4, channels=3)
                            for k in range(3)] * 2)
    labels = np.repeat(np.arange(4), 3)
    seen, guarded = [], []
    real_proba, real_flags = backend.predict_proba, guard.review_flags
    monkeypatch.setattr(backend, "predict_proba", lambda x: seen.append(x) or real_proba(x))
    monkeypatch.setattr(guard, "review_flags",
                        lambda x, *a, **k: guarded.append(x) or real_flags(x, *a, **k))
    m = matrix_module.matrix_for_crops(backend, crops, labels, {"marker_gate": object()},
                                       seed=5, families=["crop", "export", "optics"])
    assert m["exported"] is True and m["methods"] == ["cnn"]
    assert m["cells"] and {c["family"] for c in m["cells"]} == {"optics"}
    assert any("skipped: the model reads exports only" in n for n in m["notes"])
    # Off centre measures nothing there: the tight re-cut centres the cell again (0 flips,
    # read as robust).
    assert any("off centre skipped: the export re-cut tight" in n for n in m["notes"])
    assert any("baselines left out" in n for n in m["notes"])
    # The clean set as the model's own export makes it, then each cell's change exported.
    np.testing.assert_array_equal(seen[0], exported_once(crops, augment, 5, panel.roles()))
    # ... and once more with other export settings, against the clean export: what the
    # export alone changes (the clean export is scored once, not again for this).
    assert len(seen) == 2 + len(m["cells"])
    np.testing.assert_array_equal(seen[1], exported_once(crops, augment, 6, panel.roles()))
    assert 0.0 <= m["export_redraw"]["flip_rate"] <= 1.0
    assert all(x.max() <= 255 and x.min() >= 0 for x in seen) and crops.max() > 255
    assert guarded and all(any(g is x for x in seen) for g in guarded)
    # Crop by crop the same export settings, whatever the other crops are: a change to the
    # first crop (its object larger, so its export draws more noise) leaves the others' alone.
    changed = crops.copy()
    changed[0] = perturb.pixel_size(crops[:1], 1.5)[0]
    again = exported_once(changed, augment, 5, panel.roles())
    assert not np.array_equal(again[0], seen[0][0])
    np.testing.assert_array_equal(again[1:], seen[0][1:])
    # A model that reads scans sees the crops as they are.
    tiny_model_file(tmp_path / "scan.pt", crop_size=SIZE, panel=panel.to_dict())
    plain = matrix_module.matrix_for_crops(load_backend(tmp_path / "scan.pt", device="cpu"),
                                           crops, labels, None, families=["export"])
    assert plain["exported"] is False and {c["family"] for c in plain["cells"]} == {"export"}
    assert "export_redraw" not in plain


def test_crops_stored_x16_perturb_as_their_counts_do(tmp_path, tiny_model_file):
    """A crop set of 12-bit counts stored x16, stated 0-65535: a stain made brighter clips
    at the stated top, not at the model's 4095 (which turned every bright x16 pixel into
    the same value and read as a fragile model); the cells score as the counts' do."""
    from dataclasses import replace

    from ctcnet.evaluation import matrix as matrix_module

    panel = default_panel()
    wide = replace(panel, channels=tuple(replace(c, value_range=(0.0, 65535.0))
                                         for c in panel.channels))
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    crops = np.concatenate([disk_crops(n=3, channel=k, seed=k, noise=4) for k in range(4)])
    labels = [CLASSES[k] for k in range(4) for _ in range(3)]
    write_crop_dataset(tmp_path / "counts", crops.astype(np.uint16), labels, panel)
    write_crop_dataset(tmp_path / "x16", crops.astype(np.uint16) * 16, labels, wide)
    cells = [[{k: c[k] for k in ("name", "label", "methods", "review")} for c in
              matrix_module.robustness_dataset(tmp_path / name, tmp_path / "m.pt",
                                               tmp_path / f"out_{name}", with_baselines=False,
                                               families=["stain"], device="cpu")["cells"]]
             for name in ("counts", "x16")]
    assert cells[0] == cells[1]


def test_a_matrix_on_a_models_own_calls_says_so(tmp_path, tiny_model_file):
    """A crop folder cut without --reviewed (its labels the model's calls): evaluate said its
    figures measure agreement, not accuracy; the robustness matrix said nothing, and its
    missed targets read as the model's failures."""
    from ctcnet.evaluation import matrix as matrix_module

    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    crops = np.concatenate([disk_crops(n=3, channel=k, seed=k, noise=4) for k in range(4)])
    labels = [CLASSES[k] for k in range(4) for _ in range(3)]
    write_crop_dataset(tmp_path / "data", crops.astype(np.uint16), labels, default_panel())
    (tmp_path / "data" / "dataset.json").write_text(json.dumps({"labels": "model"}))
    report = matrix_module.robustness_dataset(tmp_path / "data", tmp_path / "m.pt",
                                              tmp_path / "out", with_baselines=False,
                                              families=["stain"], device="cpu")
    assert any("its labels are a model's own calls" in n for n in report["notes"])


def test_a_matrix_of_no_cells_gives_no_verdict(tmp_path, tiny_model_file):
    """Families of which no cell applies (the export cells, to a model that reads exports):
    zero cells run, and the run said "0 targets missed", exit 0."""
    from ctcnet.errors import InputError
    from ctcnet.evaluation.matrix import robustness_dataset

    panel = default_panel()
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    crops = np.concatenate([disk_crops(n=3, channel=k, seed=k, noise=4) for k in range(4)])
    labels = [CLASSES[k] for k in range(4) for _ in range(3)]
    write_crop_dataset(tmp_path / "data", crops.astype(np.uint16), labels, panel)
    with pytest.raises(InputError, match="nothing to measure"):
        robustness_dataset(tmp_path / "data", tmp_path / "m.pt", tmp_path / "out",
                           with_baselines=False, device="cpu", families=["no such family"])
