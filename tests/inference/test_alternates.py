"""One reading of each split object is kept: its members replace the whole when the whole is
not counted unflagged and one of them is counted or held as a possible CTC, or the whole is
one nobody would see (no counted call, no flag, not in review)."""

import numpy as np
import pandas as pd
import pytest

from ctcnet.detect.members import GROUP, PART
from ctcnet.inference.alternates import alternates_kept, resolve_alternates


def table(whole_call, part_calls, guard=None, review=None):
    calls = [whole_call, *part_calls]
    return pd.DataFrame({
        "x": np.arange(len(calls), dtype=float), GROUP: [7] * len(calls),
        PART: [False] + [True] * len(part_calls), "class": calls,
        "guard": guard or [""] * len(calls), "review": review or [False] * len(calls)})


@pytest.mark.parametrize("whole, parts, kept", [
    ("debris", ["ctc", "debris"], [False, True, True]),      # a CTC beside a blob
    ("wbc", ["cluster", "wbc"], [False, True, True]),
    ("cluster", ["ctc", "wbc"], [True, False, False]),       # a cluster stays one event
    ("ctc", ["ctc", "debris"], [True, False, False]),        # counted either way: once
    ("wbc", ["wbc", "debris"], [False, True, True]),        # unseen either way: each its own
])
def test_members_replace_the_whole_where_a_counted_cell_would_be_lost_or_none_is_seen(
        whole, parts, kept):
    assert alternates_kept(table(whole, parts)).tolist() == kept


def test_a_whole_a_person_sees_stays_unless_a_member_is_counted_or_held():
    """A whole in review (or flagged) is seen: members that show nothing would take it off
    the list, so it stays; a counted member replaces it all the same."""
    in_review = table("wbc", ["debris", "wbc"], review=[True, False, False])
    assert alternates_kept(in_review).tolist() == [True, False, False]
    flagged = table("debris", ["debris", "wbc"], guard=["unusual", "", ""])
    assert alternates_kept(flagged).tolist() == [True, False, False]
    counted = table("wbc", ["ctc", "wbc"], review=[True, False, False])
    assert alternates_kept(counted).tolist() == [False, True, True]


def test_a_member_held_as_a_possible_ctc_replaces_the_whole():
    events = table("debris", ["debris", "wbc"], guard=["", "unusual+possible_ctc", ""])
    assert alternates_kept(events).tolist() == [False, True, True]


def test_a_whole_whose_counted_call_the_guard_holds_gives_way_to_a_counted_member():
    """A CTC beside a leukocyte, read whole, is a ctc call held for the leukocyte's CD45: its
    members (the CTC alone, the leukocyte) replace it; a held whole whose members count
    nothing stays."""
    held = table("ctc", ["ctc", "wbc"], guard=["cd45_positive", "", ""])
    assert alternates_kept(held).tolist() == [False, True, True]
    nothing = table("ctc", ["wbc", "debris"], guard=["cd45_positive", "", ""])
    assert alternates_kept(nothing).tolist() == [True, False, False]


def test_events_outside_split_objects_are_kept_and_the_columns_dropped():
    events = pd.concat([table("wbc", ["ctc", "debris"]),
                        pd.DataFrame({"x": [9.0], GROUP: [-1], PART: [False],
                                      "class": ["wbc"], "guard": [""]})], ignore_index=True)
    kept, crop_rows = resolve_alternates(events)
    assert kept["x"].tolist() == [1.0, 2.0, 9.0]
    assert crop_rows.tolist() == [1, 2, 3]
    assert GROUP not in kept and PART not in kept
    plain = events.drop(columns=[GROUP, PART])
    same, rows = resolve_alternates(plain)
    assert same is plain and rows is None


def test_the_journal_keeps_the_crops_of_the_rows_kept(tmp_path):
    """The gallery's crops are those of the events the table keeps (a member's, not the whole's
    it replaced), found through the crop rows resolve_alternates returns."""
    from ctcnet.inference.journal import write_part

    events = table("debris", ["ctc", "wbc"])
    crops = np.arange(len(events), dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 3, 3))
    kept, crop_rows = resolve_alternates(events)
    write_part(tmp_path, "f0", kept, crops, lambda t: np.flatnonzero(t["class"] == "ctc"),
               crop_rows)
    saved = np.load(tmp_path / "f0.gallery.npz")
    assert saved["rows"].tolist() == [0]
    assert saved["crops"][:, 0, 0, 0].tolist() == [1.0]  # the member's crop, row 1 of the frame
    assert pd.read_parquet(tmp_path / "f0.parquet")["class"].tolist() == ["ctc", "wbc"]
