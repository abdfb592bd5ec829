"""A sample's headline says whether its result may be read as one, before its numbers."""

from ctcnet.inference.result_state import RESEARCH_USE, result_state


def summary(**over):
    base = {"status": "ok", "blood_volume_ml": 7.5, "blood_volume_stated": True,
            "blood_volume_processed_ml": 7.5,
            "frames": {"total": 4, "processed": 4, "skipped": 0, "missing": 0}, "problems": []}
    return {**base, **over}


def test_the_review_decides_between_preliminary_signed_off_and_stale():
    assert result_state(summary())["state"] == "preliminary"
    signed = {"reviewer": "ann", "signed_at": "2026-11-30T07:00:00+00:00", "status": "current"}
    got = result_state(summary(signoff=signed))
    assert got["state"] == "signed off" and "SIGNED OFF by ann" in got["text"]
    assert "undecided" not in got["text"]
    # Signed off with calls the guard held left undecided: the headline says so.
    held = result_state(summary(signoff={**signed, "held_undecided": 2}))["text"]
    assert "by ann on 2026-11-30 07:00:00 UTC (2 call(s) held by the marker guard left " \
        "undecided" in held
    # Signed off with most candidates undecided: how much a person decided is said.
    some = result_state(summary(signoff={**signed, "decided": 7, "unreviewed": 48}))["text"]
    assert "(7 of 55 candidates decided, 48 left as called)" in some
    every = result_state(summary(signoff={**signed, "decided": 55, "unreviewed": 0}))["text"]
    assert "candidates decided" not in every
    stale = result_state(summary(signoff={**signed, "status": "changed since"}))
    assert stale["state"] == "sign-off stale" and "review again" in stale["text"]


def test_a_partial_or_failed_scan_says_so_whatever_its_review():
    signed = {"reviewer": "ann", "signed_at": "t", "status": "current"}
    partial = result_state(summary(
        status="partial", blood_volume_processed_ml=3.75, signoff=signed,
        frames={"total": 3, "processed": 2, "skipped": 1, "missing": 1}))
    assert partial["state"] == "partial"
    assert partial["text"].startswith("PARTIAL: 2 of 4 frames read (3.75 of 7.5 mL)")
    assert "estimates" in partial["text"] and "SIGNED OFF by ann" in partial["text"]
    failed = result_state(summary(status="failed"))
    assert failed["state"] == "failed" and "no negative" in failed["text"]


def test_a_preliminary_result_says_how_it_is_reviewed():
    assert "`ctcnet review` on the results folder" in result_state(summary())["text"]


def test_a_review_begun_is_said_not_read_as_not_reviewed():
    """Three decisions taken, not signed off: the headline still said "not reviewed" above
    the counts after review that the same page showed."""
    reviewed = {"reviewed": 3, "reported": ["ctc"], "after_review": {"ctc": 5},
                "after_review_per_7_5_ml":
                {"ctc": 5.0}, "after_review_per_7_5_ml_interval": {"ctc": [1.62, 11.67]}}
    got = result_state(summary(reviewed=reviewed))
    assert got["state"] == "preliminary"
    assert got["text"].startswith("UNDER REVIEW, NOT SIGNED OFF: 3 event(s) decided; the "
                                  "automatic counts stand until a person signs off")
    assert "after review so far: ctc 5 (5.00 per 7.5 mL" in got["text"]
    assert "not reviewed" not in got["text"]


def test_a_channel_order_in_doubt_leads_the_partial_headline():
    """A leak past the guard's allowance found first, then the nucleus in the CD45 plane: the
    headline leads with the channel order, which every other reading rests on."""
    problems = ["CK leaks 19% into CD61, past the marker guard's 12%",
                "a nucleus lies in the CD45 plane: DAPI and CD45 swapped? Check panel.json's "
                "channel order"]
    text = result_state(summary(status="partial", problems=problems))["text"]
    assert text.startswith("PARTIAL: a nucleus lies in the CD45 plane") and \
        "(and 1 more problem(s) of the inputs)" in text
    skipped = result_state(summary(status="partial", problems=problems,
                                   frames={"total": 4, "processed": 2, "skipped": 2,
                                           "missing": 0}))["text"]
    assert skipped.startswith("PARTIAL: a nucleus lies in the CD45 plane") and \
        "2 of 4 frames read" in skipped
    long = result_state(summary(status="partial", problems=["word " * 80]))["text"]
    assert "word ..." in long and "wor..." not in long


def test_a_volume_not_stated_or_not_a_tube_is_said():
    assumed = result_state(summary(blood_volume_stated=False))
    assert assumed["state"] == "preliminary" and "7.5 mL assumed" in assumed["text"]
    short = result_state(summary(blood_volume_ml=4.0, blood_volume_processed_ml=4.0))
    assert "scaled by 1.875" in short["text"]  # (to 5 figures: 1.88 gave no rate by hand)
    # Part of the tube read: scaled by the volume read, as the rates are (2 of 3 frames of
    # 4 mL: by 2.81, not by the tube's 1.88).
    part = result_state(summary(status="partial", blood_volume_ml=4.0,
                                blood_volume_processed_ml=4.0 * 2 / 3))["text"]
    assert "scaled by 2.8125 (7.5 / 2.667 mL read)" in part and "1.875" not in part
    assert "scaled" not in result_state(summary(blood_volume_ml=7.2))["text"]
    assert "research use only" in RESEARCH_USE.lower()


def test_a_sample_partial_for_its_inputs_alone_says_the_first_problem():
    crowded = "crowded: 4,087 detected events per mm^2 of frame; the counts may be low"
    got = result_state(summary(status="partial", problems=[crowded, "another"]))
    assert got["text"].startswith(f"PARTIAL: {crowded} (and 1 more problem(s) of the inputs).")
    assert "estimates" not in got["text"]  # the whole tube was read


def test_the_scans_part_alone_of_a_whole_scan_is_complete_not_preliminary():
    """The review state's scan_state read "preliminary" for a signed-off sample."""
    signed = {"status": "ok", "signoff": {"reviewer": "ann", "signed_at": "t",
                                          "status": "current"}}
    assert result_state(signed, review=False) == {"state": "complete", "text": ""}
    assert result_state({**signed, "status": "failed"}, review=False)["state"] == "failed"
