"""What a sign-off may leave undecided: held calls and calls of a class the marker guard does
not check, and counted calls nobody confirmed, need a word in the note."""

import pandas as pd
import pytest

from ctcnet.errors import InputError
from ctcnet.review_server.signoff_checks import left_undecided


def candidates():
    return pd.DataFrame({"event_id": [1, 2, 3, 4],
                         "class": ["ctc", "tdev", "tdev", "wbc"],
                         "reasons": [["call"], ["call"], ["call"], ["guard:possible_ctc"]]})


def test_held_calls_and_unchecked_classes_left_undecided_need_a_note():
    with pytest.raises(InputError, match="1 call.s. the marker guard held"):
        left_undecided(candidates(), {1, 2, 3}, "", ["tdev"])
    with pytest.raises(InputError, match="2 tdev call.s. of a class the marker guard does not "
                                         "check .*: left undecided"):
        left_undecided(candidates(), {1, 4}, "", ["tdev"])
    assert left_undecided(candidates(), {1, 4}, "tdEVs checked on the gallery", ["tdev"]) == \
        (2, 0)
    assert left_undecided(candidates(), {1, 2, 3, 4}, "", ["tdev"]) == (0, 0)
    # A model whose every reported class the guard checks: only held calls need a note.
    assert left_undecided(candidates(), {4}, "", []) == (3, 0)


def test_counted_calls_nobody_confirmed_need_a_note():
    """Signed with 2 of 83 candidates decided, none of the 23 CTC calls among them: the
    figures were vouched for on the network's word, and nothing said so."""
    reported = ["ctc", "cluster", "tdev"]
    with pytest.raises(InputError, match=r"1 ctc call.s. counted in the figures signed: left "
                                         r"undecided; confirm, relabel or reject"):
        left_undecided(candidates(), {2, 3, 4}, "", [], reported)
    assert left_undecided(candidates(), {2, 3, 4}, "CTC calls accepted as called", [],
                          reported) == (1, 0)
    assert left_undecided(candidates(), {1, 2, 3, 4}, "", [], reported) == (0, 0)
    # Every reason at once (a script that decided the held call met the counted ones next).
    with pytest.raises(InputError, match=r"^1 call.s. the marker guard held; 2 tdev call.s. of "
                                         r"a class .*; 1 ctc call.s. counted in the figures"):
        left_undecided(candidates(), set(), "", ["tdev"], reported)
    # A held CTC call is not counted: it needs the held calls' note, said as such.
    held = candidates().assign(reasons=[["guard:possible_ctc"], ["call"], ["call"], ["call"]])
    with pytest.raises(InputError, match="1 call.s. the marker guard held"):
        left_undecided(held, {2, 3, 4}, "", [], reported)


def test_another_call_that_could_be_counted_needs_a_note_a_qc_sample_none():
    """A debris call on the list because the network found a CTC likeliest (p 0.73), left
    undecided: signed without a word, and lumped with the quality-control sample."""
    listed = pd.DataFrame({"event_id": [1, 2, 3, 4, 5],
                           "class": ["debris", "wbc", "debris", "wbc", "ctc"],
                           "reasons": [["counted_likeliest"], ["low_confidence"],
                                       ["cut_by_border"], ["qc"], ["call", "qc"]]})
    reported = ["ctc", "cluster"]
    with pytest.raises(InputError, match=r"^3 other call.s. that could be cluster or ctc "
                                         r"\(a possible missed count"):
        left_undecided(listed, {5}, "", [], reported)
    with pytest.raises(InputError, match=r"^1 other call.s. that could be"):
        left_undecided(listed, {2, 3, 5}, "", [], reported)
    assert left_undecided(listed, {2, 3, 5}, "event 1 read as debris on the gallery", [],
                          reported) == (2, 0)
    # The quality-control sample of confident calls alone needs no word.
    assert left_undecided(listed, {1, 2, 3, 5}, "", [], reported) == (1, 0)


def test_readers_disagreements_are_said_apart_from_what_is_left_undecided():
    """Events both readers decided and disagree on were called "left undecided" in the
    refusal; they are named as disagreements to adjudicate."""
    text = "3 disagreement(s) of the two readers on a counted class not adjudicated (event(s) " \
        "44, 87, 95)"
    with pytest.raises(InputError) as refused:
        left_undecided(candidates(), {1, 2, 3, 4}, "", ["tdev"], disagreements=text)
    said = str(refused.value)
    assert said.startswith(f"{text}: adjudicate each on the first reading's page")
    assert "left undecided" not in said
    assert left_undecided(candidates(), {1, 2, 3, 4}, "as read", ["tdev"],
                          disagreements=text) == (0, 0)


def test_a_sign_off_names_the_second_reading_it_read_where_one_of_this_run_was_made():
    """The second journal as it is now against the agreement's second_stamp the sign-off
    names; one holding no row of this run (none, an earlier run's, a header) asks for none."""
    from types import SimpleNamespace

    from ctcnet.review_server.sample_states import DecisionsChanged
    from ctcnet.review_server.signoff_checks import refuse_unread_second

    def journal(stamp, rows):
        return SimpleNamespace(stamp=lambda: stamp, matched=lambda run: SimpleNamespace(
            n_rows=rows))

    for second, read in ((journal("none", 0), None), (journal("s1", 0), None),
                         (journal("s1", 0), "s0"), (journal("s2", 3), "s2")):
        refuse_unread_second("P1", second, "run", read)
    with pytest.raises(DecisionsChanged, match="names none as read"):
        refuse_unread_second("P1", journal("s2", 3), "run", None)
    with pytest.raises(DecisionsChanged, match="has decisions this sign-off did not read"):
        refuse_unread_second("P1", journal("s3", 4), "run", "s2")
