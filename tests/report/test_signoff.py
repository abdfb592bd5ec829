"""A sign-off holds for the run and the calls it was made on."""

import pandas as pd

from ctcnet.report.runs import calls_id, run_id
from ctcnet.report.signoff import CHANGED, CURRENT, SignOff, signoff_record


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
    assert signoff_record(signed, run_id(events), 1, calls_id(other_calls)) is None
    assert signoff_record(signed, "another run", 1, calls_id(events)) is None
    # A sign-off written before the calls were recorded is judged by its run, as it was.
    older = SignOff.from_dict({k: v for k, v in signed.to_dict().items()
                               if k != "calls_id"})
    assert signoff_record(older, run_id(events), 1, calls_id(other_calls))["status"] == CURRENT

