"""ctcnet.inference.ground_truth: a simulated cartridge's truth read by the model's classes."""

import logging

import pandas as pd

from ctcnet.inference.ground_truth import read_as, truth_by_taxonomy
from ctcnet.io.taxonomy import default_taxonomy, load_taxonomy


def test_the_truth_is_read_as_the_models_taxonomy_names_its_subtypes(caplog):
    """A cartridge simulated with the default classes, read by a lab's model whose ctc_emt
    includes ctc_dim: its dim CTCs are ctc_emt to that model (and it is said); the default
    model reads the file's classes; a table without subtypes, or with one the model has no
    class for, keeps its own."""
    truth = pd.DataFrame({"class": ["ctc", "ctc", "wbc", "debris"],
                          "subtype": ["ctc_bright", "ctc_dim", "lymphocyte", "tdev"]})
    emt = load_taxonomy({"name": "emt", "classes": [
        {"name": "ctc", "includes": ["ctc_bright", "ctc_apoptotic"]},
        {"name": "ctc_emt", "includes": ["ctc_dim"]}, "wbc", "cluster", "debris"]})
    with caplog.at_level(logging.INFO, logger="ctcnet.inference.ground_truth"):
        read = truth_by_taxonomy(truth, emt, "tube7")
    assert read["class"].tolist() == ["ctc", "ctc_emt", "wbc", "debris"]
    assert "tube7: " in caplog.text and "1 ctc -> ctc_emt (ctc_dim)" in caplog.text
    assert read_as(truth, read) == {"ctc -> ctc_emt (ctc_dim)": 1}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ctcnet.inference.ground_truth"):
        truth_by_taxonomy(truth, emt)  # no sample named: read, not said (said once a run)
    assert not caplog.text
    assert truth["class"].tolist() == ["ctc", "ctc", "wbc", "debris"]  # not changed in place
    assert truth_by_taxonomy(truth, default_taxonomy())["class"].tolist() == \
        truth["class"].tolist()
    assert truth_by_taxonomy(truth[["class"]], emt)["class"].tolist() == \
        truth["class"].tolist()
    two = load_taxonomy({"classes": ["ctc", "wbc"]})  # no class for tdev: the file stands
    assert truth_by_taxonomy(truth, two)["class"].tolist() == truth["class"].tolist()
    # A lab's model whose ctc_emt lists no subtypes (checked as a CTC by its word) reads a
    # cartridge simulated with the lab's taxonomy as drawn, and the default one as drawn too.
    said = load_taxonomy({"classes": ["ctc", {"name": "ctc_emt", "checked_as": "ctc"}, "wbc",
                                      "cluster", "debris"]})
    drawn = truth.assign(**{"class": ["ctc", "ctc_emt", "wbc", "debris"]})
    assert truth_by_taxonomy(drawn, said)["class"].tolist() == drawn["class"].tolist()
    assert truth_by_taxonomy(truth, said)["class"].tolist() == truth["class"].tolist()
