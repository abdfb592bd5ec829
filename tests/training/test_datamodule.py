"""ctcnet.training.datamodule: crops without a panel.json, and a missing folder, are refused by
what they lack."""

import pytest

from ctcnet.errors import InputError


def test_training_on_crops_without_panel_json_is_refused(tmp_path):
    from ctcnet.training.datamodule import CTCDataModule

    (tmp_path / "ctc").mkdir()
    with pytest.raises(InputError, match="no panel.json"):
        CTCDataModule(data_dir=str(tmp_path))
    with pytest.raises(InputError, match="crop dataset folder not found"):
        CTCDataModule(data_dir=str(tmp_path / "missing"))
    (tmp_path / "run.json").write_text("{}")  # a file where the folder is meant: not "missing"
    with pytest.raises(InputError, match=r"a file, not a crop dataset folder: pass the folder "
                                         r"\(for this file, "):
        CTCDataModule(data_dir=str(tmp_path / "run.json"))


def _lab_crops(root, n=4, pixel_size=True):
    """A small crop folder of two samples; its panel.json without a pixel size unless
    ``pixel_size``."""
    import json

    from ctcnet.detect.crop_dataset import write_crop_dataset
    from ctcnet.io.panel import load_panel
    from ctcnet.simulate import simulate_crops

    batch = simulate_crops(n, load_panel(None), crop_size=32, seed=3, num_samples=2)
    write_crop_dataset(root, batch.images, batch.labels, load_panel(None), batch.sample_ids)
    if not pixel_size:
        panel = json.loads((root / "panel.json").read_text())
        del panel["pixel_size_um"]
        (root / "panel.json").write_text(json.dumps(panel))
    return root


def test_crops_without_a_pixel_size_name_train_s_own_option_and_take_it(tmp_path):
    """``ctcnet train`` is told of data.pixel_size (its --pixel-size), which reads as predict's
    option does: a number, auto or fit; anything else is refused by name."""
    from ctcnet.training.datamodule import CTCDataModule

    crops = _lab_crops(tmp_path / "crops", pixel_size=False)
    with pytest.raises(InputError, match="pass --data.pixel_size fit .* --data.pixel_size auto "
                                         ".* --data.pixel_size UM"):
        CTCDataModule(data_dir=str(crops), crop_size=32)
    dm = CTCDataModule(data_dir=str(crops), crop_size=32, pixel_size=0.5)
    assert dm.panel.pixel_size_um == 0.5
    # The run's identity (ctcnet train reads it before training) reads the folder as the data
    # module does: it refused the folder, naming predict's --pixel-size.
    from ctcnet.training.run_identity import data_identity

    assert data_identity(dm)["crops"] == 16
    dm.setup("fit")
    assert dm.summary()["pixel_size"] == 0.5
    fitted = CTCDataModule(data_dir=str(crops), crop_size=32, pixel_size="fit")
    assert 0.05 < fitted.panel.pixel_size_um < 5  # the crops' median scale: the model's
    assert data_identity(fitted)["crops"] == 16
    fitted.setup("fit")
    assert sum(len(s.targets) for s in fitted.splits.values()) == 16
    with pytest.raises(InputError, match="data.pixel_size: expected a number of um, 'auto' "
                                         "or 'fit', got 'fitted'"):
        CTCDataModule(data_dir=str(crops), pixel_size="fitted")


def test_a_blank_crop_is_refused_before_training(tmp_path):
    import numpy as np

    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.io.images import write_tiff
    from ctcnet.training.datamodule import CTCDataModule

    crops = _lab_crops(tmp_path / "crops")
    blank = read_crop_index(crops).paths[5]
    write_tiff(blank, np.zeros((5, 32, 32), np.uint16))
    with pytest.raises(InputError, match=f"{blank}: blank: every channel is 0"):
        CTCDataModule(data_dir=str(crops), crop_size=32).setup("fit")


def test_a_reported_class_the_guard_will_not_check_is_said_before_training(caplog):
    """A lab's taxonomy reporting ctc_emt without saying how the guard checks it: said when the
    data are set up, since the model keeps the taxonomy it is trained with; said so, not."""
    from ctcnet.training.datamodule import CTCDataModule

    classes = ["ctc", "ctc_emt", "wbc", "cluster", "debris"]
    reported = ["ctc", "ctc_emt", "cluster"]
    with caplog.at_level("WARNING", logger="ctcnet.training.datamodule"):
        CTCDataModule(taxonomy={"classes": classes, "reported": reported},
                      simulate={"train": {"ctc": 4}})
    assert "reports ctc_emt, which the marker guard checks as neither" in caplog.text
    caplog.clear()
    said = [{"name": "ctc_emt", "checked_as": "ctc"} if c == "ctc_emt" else c for c in classes]
    with caplog.at_level("WARNING", logger="ctcnet.training.datamodule"):
        CTCDataModule(taxonomy={"classes": said, "reported": reported},
                      simulate={"train": {"ctc": 4}})
    assert "marker guard" not in caplog.text


def test_a_model_file_given_as_the_crops_is_told_for_what_it_is(tmp_path):
    """`ctcnet finetune models/ctcnet-default.pt --out ...`: not "folder not found"."""
    from ctcnet.detect.crop_dataset import read_crop_index

    model = tmp_path / "lab.pt"
    model.write_bytes(b"weights")
    with pytest.raises(InputError, match="a model file, not a crop dataset folder"):
        read_crop_index(model)


def test_a_misspelt_simulate_key_is_refused_not_read_over():
    """--data.simulate.trian 60 trained on the default 4 crops a class, the slip recorded."""
    from ctcnet.training.datamodule import CTCDataModule

    with pytest.raises(InputError, match=r"data.simulate: key 'trian' is not read; did you "
                                         r"mean 'train'\?"):
        CTCDataModule(simulate={"trian": 60, "val": 4})


def test_simulate_numbers_given_as_text_on_the_command_line_are_the_same_data():
    """--data.simulate.train=60 arrives as "60", a YAML file's train: 60 as 60: the same crops,
    one data identity and one render-cache key (a resume from one to the other was refused
    as "other crops", and the cache rendered them twice), numbers in the spec."""
    from ctcnet.training.datamodule import CTCDataModule
    from ctcnet.training.run_identity import data_identity

    typed = CTCDataModule(simulate={"train": 6, "val": 2, "num_samples": 2})
    given = CTCDataModule(simulate={"train": "6", "val": "2", "num_samples": "2"})
    assert given.simulate == typed.simulate == {"train": 6, "val": 2, "num_samples": 2}
    assert data_identity(given) == data_identity(typed)


def _said_of_a_taxonomy(caplog, classes: list[str], simulated: str) -> tuple[str, str]:
    """What is warned of a taxonomy of ``classes`` as the data are set up (``simulated``
    crops drawn to train on) and as predict runs a model of it."""
    from ctcnet.inference.options import say_what_other_reported_classes_lack
    from ctcnet.io.taxonomy import load_taxonomy
    from ctcnet.training.datamodule import CTCDataModule

    with caplog.at_level("WARNING"):
        CTCDataModule(taxonomy={"classes": classes}, simulate={"train": {simulated: 4}})
    training = caplog.text
    caplog.clear()

    class Spec:  # what the predict-time warning reads of a model
        taxonomy = load_taxonomy({"classes": classes})

    with caplog.at_level("WARNING"):
        say_what_other_reported_classes_lack(Spec())
    return training, caplog.text


def test_a_class_named_as_a_ctc_but_not_reported_is_said_before_training_and_predicting(
        caplog):
    """A lab's emt_ctc without "reported": its calls are neither counted per 7.5 mL nor
    checked by the guard; said when the data are set up and when predict runs (it dropped out
    of the counts unsaid), not once it is reported and checked as a CTC."""
    from ctcnet.io.taxonomy import load_taxonomy

    classes = ["ctc", "emt_ctc", "wbc", "junk"]
    training, predicting = _said_of_a_taxonomy(caplog, classes, "ctc")
    assert ("the taxonomy's emt_ctc, named as a kind of CTC, is not reported (reported: ctc): "
            "neither counted per 7.5 mL nor listed for review") in training
    assert "emt_ctc, named as a kind of CTC, is not reported" in predicting
    said = load_taxonomy({"classes": [c if c != "emt_ctc" else {"name": c, "checked_as": "ctc"}
                                      for c in classes], "reported": ["ctc", "emt_ctc"]})
    assert said.checking_notes() == [] and said.unreported_note() is None


def test_a_taxonomy_that_reports_none_of_its_classes_is_said_before_training_and_predicting(
        caplog):
    """A lab's own classes (tumour, leuko, other) under the default "reported" (ctc and
    cluster, which it has not): the model counted nothing, every sample's figure n/a, and
    neither train nor predict said a word."""
    from ctcnet.io.taxonomy import load_taxonomy

    classes = ["tumour", "leuko", "other"]
    training, predicting = _said_of_a_taxonomy(caplog, classes, "tumour")
    assert "the taxonomy reports none of its classes (tumour, leuko, other" in training
    assert "predict counts nothing per 7.5 mL" in predicting
    assert load_taxonomy({"classes": classes, "reported": ["tumour"]}).unreported_note() is None
