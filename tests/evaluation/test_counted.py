"""ctcnet.evaluation.counted: a crop set's calls as predict counts them, and what the markers
changed of the network's."""

import numpy as np

from ctcnet.evaluation.counted import counted_report, marker_changes

NAMES = ["ctc", "wbc", "cluster", "debris"]


def test_counted_calls_leave_the_held_ones_out_and_say_their_interval():
    labels = np.array([0, 0, 0, 1, 1, 3])                      # ctc ctc ctc wbc wbc debris
    calls = np.array(["ctc", "ctc", "wbc", "ctc", "wbc", "debris"], object)
    held = np.array([False, True, False, True, False, False])
    out = counted_report(labels, calls, held, NAMES)
    assert out["ctc"]["held"] == 2
    assert (out["ctc"]["precision"]["k"], out["ctc"]["precision"]["n"]) == (1, 1)
    assert (out["ctc"]["recall"]["k"], out["ctc"]["recall"]["n"]) == (1, 3)
    low, high = out["ctc"]["recall"]["ci95"]
    assert low < 1 / 3 < high
    assert "cluster" not in out  # neither called nor present
    assert out["wbc"]["precision"]["value"] == 0.5  # one of its two counted calls is a CTC


def test_every_change_the_markers_made_is_named():
    network = np.array(["wbc", "ctc", "debris", "ctc", "wbc"], object)
    final = np.array(["ctc", "ctc", "ctc", "debris", "wbc"], object)
    out = marker_changes(network, final)
    assert out == {"changed": 3, "to_ctc": 2, "to_wbc": 0,
                   "by_change": {"ctc->debris": 1, "debris->ctc": 1, "wbc->ctc": 1}}


def test_each_sample_gets_its_accuracy_and_recall():
    from ctcnet.evaluation.counted import by_sample

    labels = np.array([0, 0, 1, 0, 1, 1])
    calls = np.array(["ctc", "wbc", "wbc", "ctc", "wbc", "ctc"], object)
    out = by_sample(labels, calls, ["P2", "P2", "P2", "P1", "P1", "P1"], NAMES)
    assert list(out) == ["P1", "P2"]
    assert out["P2"] == {"n": 3, "accuracy": 2 / 3,
                         "recall": {"ctc": {"k": 1, "n": 2}, "wbc": {"k": 1, "n": 1}}}
    assert out["P1"]["recall"]["wbc"] == {"k": 1, "n": 2}


def test_a_negative_controls_false_calls_are_said():
    from ctcnet.commands.evaluate_figures import absent_classes_warning

    report = {"cnn": {"absent_classes": ["ctc"], "per_class": {"wbc": {}, "debris": {}},
                      "absent_predicted": {"ctc": 2}}}
    note = absent_classes_warning(report)
    assert note.startswith("the labels hold no ctc") and "2 crop(s) called ctc, every one wrong" \
        in note
    report["cnn"]["absent_predicted"] = {"ctc": 0}
    assert "wrong" not in absent_classes_warning(report)


def test_a_network_that_calls_every_crop_one_class_is_said():
    """A model that learnt nothing (every crop wbc) scored accuracy 0.725, the set's share of
    leukocytes, with no word; the markers' 4 calls turned to ctc hid that the network's own
    were one class."""
    from ctcnet.commands.evaluate_figures import one_call_warning, warnings_of

    names = ["ctc", "wbc", "cluster", "debris"]
    cnn = {"class_names": names, "per_class": {},
           "confusion": [[3, 1, 0, 0], [1, 49, 0, 0], [0, 3, 0, 0], [0, 12, 0, 0]],
           "marker_calls": {"by_change": {"wbc->ctc": 4}}}
    note = one_call_warning({"cnn": cnn})
    assert note.startswith("the network calls every crop wbc: it tells none of the classes "
                           "apart (its accuracy is the share of wbc crops, 0.725")
    assert note in warnings_of({"cnn": cnn})
    # A network that calls two classes, or a set of one class, is no such model.
    assert one_call_warning({"cnn": {**cnn, "marker_calls": {}}}) is None
    one_class = {**cnn, "confusion": [[0] * 4, [0, 50, 0, 0], [0] * 4, [0] * 4]}
    assert one_call_warning({"cnn": one_class}) is None
