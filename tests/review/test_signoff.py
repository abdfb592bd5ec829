"""A sign-off holds for the run and the calls it was made on; a signoff.json that is not one
is said and read as none, by every command that reads it."""

import json
import logging

import pandas as pd
import pytest
from conftest import FUZZ, JSON_VALUES, predict_args
from hypothesis import given
from hypothesis import strategies as st

from ctcnet.review.runs import calls_id, run_id
from ctcnet.review.signoff import (
    CALLS_CHANGED,
    CHANGED,
    COUNTS_CHANGED,
    CURRENT,
    SIGNOFF_FILE,
    SignOff,
    read_signoff,
    signoff_record,
)
from ctcnet.review.signoff_words import signoff_text


def test_a_sign_off_holds_for_the_calls_it_was_made_on():
    events = pd.DataFrame({"event_id": [0, 1, 2], "frame_id": ["r00c00"] * 3,
                           "x": [10.0, 20.0, 30.0], "y": [5.0, 6.0, 7.0],
                           "class": ["ctc", "wbc", "debris"]})
    # predict again with another model or prior: the same events, numbered alike, one call
    # other
    other_calls = events.assign(**{"class": ["wbc", "wbc", "debris"]})
    assert run_id(other_calls) == run_id(events) and calls_id(other_calls) != calls_id(events)
    signed = SignOff(reviewer="ann", signed_at="2026-11-27T00:00:00+00:00",
                     run_id=run_id(events), cartridge_id=None, decided=1, unreviewed=0,
                     after_review_per_7_5_ml={"ctc": 1.0}, journal_rows=1,
                     calls_id=calls_id(events))
    assert signoff_record(signed, run_id(events), 1, calls_id(events))["status"] == CURRENT
    assert signoff_record(signed, run_id(events), 2, calls_id(events))["status"] == CHANGED
    # Of the calls before predict ran again: shown so, not dropped (read as never signed).
    assert signoff_record(signed, run_id(events), 1, calls_id(other_calls))["status"] == \
        CALLS_CHANGED
    assert signoff_record(signed, "another run", 1, calls_id(events))["status"] == \
        CALLS_CHANGED
    assert signoff_record(None, "another run", 1, calls_id(events)) is None
    # The same decisions, other figures: the blood volume was corrected after the sign-off.
    assert signoff_record(signed, run_id(events), 1, calls_id(events),
                          {"ctc": 1.0})["status"] == CURRENT
    moved = signoff_record(signed, run_id(events), 1, calls_id(events), {"ctc": 1.5})
    assert moved["status"] == COUNTS_CHANGED and "counts per 7.5 mL changed" in \
        signoff_text(moved)
    # A sign-off written before the calls were recorded is judged by its run, as it was.
    older = SignOff.from_dict({k: v for k, v in signed.to_dict().items()
                               if k != "calls_id"})
    assert signoff_record(older, run_id(events), 1, calls_id(other_calls))["status"] == CURRENT



# ---------------------------------------------------------------------------------------------
# A signoff.json that is not a sign-off: said once, naming the file, and read as none.

GOOD = {"reviewer": "ann", "signed_at": "2026-11-27T00:00:00+00:00", "run_id": "R",
        "cartridge_id": None, "decided": 1, "unreviewed": 0,
        "after_review_per_7_5_ml": {"ctc": 1.0}, "journal_rows": 1,
        "after_review_per_7_5_ml_interval": {"ctc": [0.03, 5.57]},
        "second_reading": {"first": 1, "second": 1, "both": 1, "agree": 1, "kappa": None,
                           "disagreements": []}, "calls_id": None}


def signoff_warnings(caplog, path) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and str(path) in r.getMessage()]


@pytest.mark.parametrize("text, why", [
    ("[1, 2]", "a JSON list, not a sign-off object"),
    ('"signed"', "a JSON string"),
    ("null", "a JSON null"),
    ("{}", "reviewer"),
    (json.dumps({**GOOD, "journal_rows": "1"}), "journal_rows"),
    (json.dumps({**GOOD, "decided": True}), "decided"),
    (json.dumps({**GOOD, "after_review_per_7_5_ml": [1.0]}), "after_review_per_7_5_ml"),
    (json.dumps({**GOOD, "after_review_per_7_5_ml": {"ctc": float("nan")}}), "NaN"),
    (json.dumps({**GOOD, "second_reading": {"both": 2}}), "second_reading"),
    (json.dumps({**GOOD, "after_review_per_7_5_ml_interval": {"ctc": [1.0]}}),
     "after_review_per_7_5_ml_interval"),
    ('{"reviewer": "ann", ', "Expecting"),
])
def test_a_file_that_is_no_sign_off_is_said_and_read_as_none(tmp_path, caplog, text, why):
    path = tmp_path / SIGNOFF_FILE
    path.write_text(text)
    with caplog.at_level(logging.WARNING):
        assert read_signoff(tmp_path) is None
        assert read_signoff(tmp_path) is None  # the review server reads it on each request
    said = signoff_warnings(caplog, path)
    assert len(said) == 1 and why in said[0], said
    path.write_text(json.dumps(GOOD))
    assert read_signoff(tmp_path) == SignOff.from_dict(GOOD)


@FUZZ
@given(key=st.sampled_from(sorted(GOOD)), value=JSON_VALUES)
def test_any_value_in_a_sign_off_is_read_or_refused_never_raised(tmp_path, key, value):
    path = tmp_path / SIGNOFF_FILE
    path.write_text(json.dumps({**GOOD, key: value}))
    signed = read_signoff(tmp_path)
    if signed is not None:  # what is read goes into summary.json, the page and dataset.json
        record = signoff_record(signed, signed.run_id, 2, signed.calls_id)
        assert signoff_text(record)
        json.dumps(record, allow_nan=False)


def test_a_list_in_signoff_json_fails_no_command(cart_and_model, cart, capsys, caplog):
    """``ctcnet predict`` run again over the results, ``ctcnet review`` and ``ctcnet crops
    --reviewed`` each say the file and go on as with no sign-off (signing off again mends
    it)."""
    from ctcnet.cli import main
    from ctcnet.review import decisions as D
    from ctcnet.review_server.server import make_server

    args = [str(a) for a in predict_args(cart_and_model, cart)]
    assert main(args) == 0
    out = cart.parent / "out"
    sample = out / "S1"
    run = D.RunEvents.of_sample(sample, *D.load_sample(sample))
    D.record_decision(sample, run, 0, "wbc", "ann")  # something for crops --reviewed to cut
    path = sample / SIGNOFF_FILE
    caplog.set_level(logging.WARNING)
    for n, command in enumerate(["predict", "review", "crops"]):
        path.write_text(json.dumps(list(range(n + 1))))  # another file: said again
        caplog.clear()
        if command == "predict":     # a rerun brings the review back into its summary.json
            assert main(args) == 0
            assert json.loads((sample / "summary.json").read_text()).get("signoff") is None
        elif command == "review":
            server = make_server(out, port=0, warm_up=False)
            try:
                assert server.app.sample("S1").state("ann")["signoff"] is None
            finally:
                server.server_close()
        else:
            assert main(["crops", str(out), "--reviewed", "--out",
                         str(cart.parent / "ds")]) == 0
        said = signoff_warnings(caplog, path)
        assert len(said) == 1 and "a JSON list" in said[0], (command, said)
    capsys.readouterr()


def test_cutting_crops_says_a_sign_off_is_of_an_earlier_run(tmp_path, caplog):
    """predict ran again on a signed-off sample: `ctcnet crops --reviewed` says the sign-off is
    of the earlier run (sign off again), not that the review was never signed off."""
    from types import SimpleNamespace

    from ctcnet.exports.event_crops import reviewed_signoff
    from ctcnet.review.signoff import write_signoff

    write_signoff(tmp_path, SignOff("ana", "2026-11-28T10:00:00Z", "earlier-run", None, 5, 0,
                                    {"ctc": 2.0}, 5))
    run = SimpleNamespace(run_id="this-run", calls_id=None)
    matched = SimpleNamespace(table=pd.DataFrame({"a": range(5)}), n_decisions=5)
    with caplog.at_level(logging.WARNING):
        assert reviewed_signoff("S1", tmp_path, run, matched)["status"] == "calls changed since"
    assert "predict ran again since the sign-off" in caplog.text
    assert "not signed off" not in caplog.text


def test_a_sign_off_says_the_readers_disagreements_left_open():
    from ctcnet.review.signoff_words import signoff_text

    record = {**GOOD, "decided": 3, "unreviewed": 0,
              "second_reading": {"first": 3, "second": 3, "both": 3, "agree": 1, "kappa": 0.2,
                                 "disagreements": [{"event_id": 4, "adjudicated": True},
                                                   {"event_id": 9, "adjudicated": False}]}}
    text = signoff_text(record)
    assert "second reading: 1 of 3 agree, kappa 0.20 (1 disagreement(s) not adjudicated)" in \
        text
    record["second_reading"]["disagreements"][1]["adjudicated"] = True
    assert "not adjudicated" not in signoff_text(record)


def test_a_sign_off_names_the_second_reader_and_a_disagreement_with_the_call_left_standing():
    """A second reader's ctc on a wbc the first reading left as called: no event both decided,
    but an open disagreement the line says (it said nothing), with the second reader named."""
    from ctcnet.review.signoff_words import signoff_text

    record = {**GOOD, "decided": 3, "unreviewed": 0,
              "second_reading": {"first": 3, "second": 1, "both": 0, "agree": 0, "kappa": None,
                                 "second_readers": ["bob"],
                                 "disagreements": [{"event_id": 61, "first": "wbc",
                                                    "second": "ctc", "as_called": True,
                                                    "adjudicated": False}]}}
    assert "second reading by bob: 0 of 0 agree, kappa n/a (1 disagreement(s) not " \
        "adjudicated)" in signoff_text(record)


def test_what_a_review_changed_names_each_call_overturned_and_each_held_one_counted():
    """A sign-off's automatic 28 and after-review 34 with "changed wbc -> ctc 1": the five
    held CTC calls confirmed into the count were not said, so the figures did not add up."""
    from ctcnet.review.signoff_words import decision_changes

    decisions = pd.DataFrame({"event_id": [9, 3, 5, 7], "model_call": ["ctc", "wbc", "ctc", "ctc"],
                              "reviewer_call": ["ctc", "ctc", "rejected", "ctc"]})
    changed = decision_changes(decisions, held={7, 9})
    assert changed == {"wbc -> ctc": [3], "ctc -> rejected": [5], "ctc (held) -> ctc": [7, 9]}
    record = {"reviewer": "ann", "signed_at": "2026-12-04T08:00:00+00:00", "decided": 4,
              "unreviewed": 0, "changed": changed,
              "automatic_per_7_5_ml": {"ctc": 28.0, "cluster": 2.0},
              "after_review_per_7_5_ml": {"ctc": 30.0, "cluster": 2.0}}
    text = signoff_text(record)
    assert "changed wbc -> ctc 1 (#3), ctc -> rejected 1 (#5), ctc (held) -> ctc 2 (#7, #9)" \
        in text
    assert "(per 7.5 mL, automatic -> after review: ctc 28.00 -> 30.00, cluster 2.00 -> " \
        "2.00)" in text
