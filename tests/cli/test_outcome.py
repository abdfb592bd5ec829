"""The line ctcnet predict prints per input, from the input's summary.json data: a cartridge's
and a crop set's, and the --processes parent's from its index when a summary cannot be read."""

import json
from pathlib import Path

from ctcnet.commands.outcome import outcome_line
from ctcnet.commands.predict_processes import say_outcome


def test_a_cartridges_line_says_its_counts_holds_skipped_frames_and_time():
    summary = {"status": "partial", "events": 1200, "counts": {"ctc": 3, "wbc": 900},
               "per_7_5_ml": {"ctc": 3.2, "cluster": None},
               "tally": {"held": {"ctc": 1, "wbc": 0}}, "frames": {"skipped": 2},
               "timings_s": {"total": 12.34}, "review_list": {"events": 17}}
    assert outcome_line("s1", summary, Path("out/s1")) == (
        "s1: partial, 1200 events (ctc 3, wbc 900; per 7.5 mL: ctc 3.20), held for "
        "review by the guard (ctc 1), 17 event(s) on the review list, 2 frame(s) skipped "
        "(once fixed, the same command reads them and keeps the rest), 12.3 s -> out/s1")
    # With its blood-draw interval where the summary has one (a rate near a cut-off reads
    # differently with it).
    bounded = {**summary, "tally": {"held": {}, "per_7_5_ml_interval": {
        "ctc": [0.66, 9.35], "cluster": [0.0, 2.95]}}}
    assert "; per 7.5 mL: ctc 3.20 (95 % 0.66-9.35))," in outcome_line("s1", bounded, Path("o"))
    # A therapy plane's figure, as the report and samples.csv give it.
    her2 = {**summary, "unread_markers": {"planes": {"HER2-FITC": {
        "counted_ctcs_above": 14, "counted_ctcs": 31}}}}
    assert ", counted CTCs above the leukocytes in HER2-FITC 14 of 31, " in outcome_line(
        "s1", her2, Path("o"))
    clean = {**summary, "status": "ok", "tally": {"held": {}}, "frames": {"skipped": 0}}
    assert "held" not in outcome_line("s1", clean, Path("o")) and \
        "skipped" not in outcome_line("s1", clean, Path("o"))
    # Why it is partial, and what an earlier run's journal gave.
    resumed = {**summary, "frames": {"skipped": 0, "total": 3, "resumed_from_journal": 2,
                                     "missing": 1},
               "problems": ["cartridge.json lists 3 frames but 2 are present (truncated "
                            "cartridge?); missing: r00c02", "a second reason"]}
    assert ("2 of 3 frame(s) from an earlier run's journal, cartridge.json lists 3 frames but "
            "2 are present (truncated cartridge?); missing: r00c02 (whole in summary.json; 1 "
            "more), 12.3 s") in outcome_line("s1", resumed, Path("o"))
    # A long reason, said whole by its warning and summary.json, by its lead (a crowded
    # sample's 600 characters were in the line a third time).
    crowded = {**summary, "problems": [
        "crowded: 2,224 detected events per mm^2 of frame, more than the 2,000 detection was "
        "checked to (in simulated crowds it misses and merges cells: " + "x" * 400 + ")"]}
    assert ", crowded: 2,224 detected events per mm^2 of frame, more than the 2,000 detection "\
        "was checked to (whole in summary.json), 12.3 s" in outcome_line("s1", crowded, Path("o"))


def test_a_signed_off_samples_line_says_the_figures_signed_and_whether_they_hold():
    """A batch run again over samples signed off: the figures a lab reports are the signed
    ones, said beside the model's; a sign-off that no longer holds is said to."""
    summary = {"status": "ok", "events": 900, "counts": {"ctc": 9},
               "per_7_5_ml": {"ctc": 9.0},
               "signoff": {"reviewer": "J. Tech", "status": "current",
                           "after_review_per_7_5_ml": {"ctc": 8.0, "cluster": None}}}
    line = outcome_line("nightB", summary, Path("o"))
    assert "; per 7.5 mL: ctc 9.00), signed off by J. Tech at ctc 8.00 per 7.5 mL -> o" in line
    summary["signoff"]["status"] = "changed since"
    assert "8.00 per 7.5 mL (changed since: it no longer holds; review and sign it off " \
        "again)" in outcome_line("nightB", summary, Path("o"))
    summary["signoff"]["after_review_per_7_5_ml_interval"] = {"ctc": [3.45, 15.76]}
    assert "signed off by J. Tech at ctc 8.00 (95 % 3.45-15.76) per 7.5 mL" in \
        outcome_line("nightB", summary, Path("o"))


def test_a_crop_sets_line_says_its_prior_and_no_status(tmp_path):
    summary = {"crops": 5, "counts": {"ctc": 2}, "held": {"ctc": 1}, "prior": "balanced",
               "timings_s": {"total": 0.2}}
    assert outcome_line("imgs", summary, Path("out/imgs")) == (
        "imgs: 5 crops (ctc 2; prior balanced), held for review by the guard "
        "(ctc 1), 0.2 s -> out/imgs")
    # A debris call the guard flags (a possible missed CTC) is shown, not held from a count.
    flagged = {**summary, "held": {"ctc": 1, "debris": 3}}
    assert "held for review by the guard (ctc 1), flagged for review by the guard, not in " \
        "the calls above (debris 3)," \
        in outcome_line("imgs", flagged, Path("out/imgs"))
    # A lab's own reported class held by the guard is held from its count, as a cartridge's
    # line says it (it read "flagged ..., not in the calls above (ctc_emt 13)").
    lab = {**summary, "held": {"ctc": 1, "ctc_emt": 13, "debris": 1},
           "reported": ["ctc", "ctc_emt", "cluster"]}
    assert "held for review by the guard (ctc 1, ctc_emt 13), flagged for review by the " \
        "guard, not in the calls above (debris 1)," in outcome_line("imgs", lab, Path("x"))
    # --pixel-size auto: the scale the crops were read at, said where it is decided.
    estimated = {**summary, "pixel_size_um": 0.5303, "pixel_size_from": "estimated from the "
                 "nuclei"}
    assert "5 crops (ctc 2; prior balanced), read at 0.530 um/px estimated from the nuclei," in \
        outcome_line("imgs", estimated, Path("out/imgs"))


def test_the_parent_reads_each_summary_and_falls_back_to_its_index(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "summary.json").write_text(json.dumps(
        {"status": "ok", "events": 10, "counts": {"ctc": 0}, "per_7_5_ml": {"ctc": 0.0},
         "frames": {"skipped": 1}, "timings_s": {"total": 1.0}}))
    index = {"outputs": [
        {"name": "a", "summary": "a/summary.json", "events": 10, "status": "ok"},
        {"name": "b", "summary": "b/summary.json", "events": 4, "counts": {"ctc": 1}},
        {"name": "c", "missing": True}]}
    index["outputs"].append({"name": "d", "set_aside": "4 of 4 crops cannot be read"})
    assert say_outcome(index, tmp_path) == {"d": "4 of 4 crops cannot be read"}  # said last
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "a: ok, 10 events (ctc 0; per 7.5 mL: ctc 0.00), 1 frame(s) " \
        "skipped (once fixed, the same command reads them and keeps the rest), 1.0 s -> " \
        f"{tmp_path / 'a'}"
    assert lines[1] == f"b: 4 crops (ctc 1) -> {tmp_path / 'b'}"
    assert lines[2].startswith("c: no output") and "the same command resumes it" in lines[2]
    # The batch's tally last: what an operator reads before the lines above it. An output
    # its process did not write is missing (as run.json says), not failed (no frame read).
    assert lines[3] == f"4 inputs: 1 ok, 1 missing (c), 1 crop sets, 1 set aside (below); 0 " \
        f"event(s) on the review lists, 0 signed off; the table of them all: " \
        f"{tmp_path / 'samples.csv'}"


def test_a_batchs_tally_names_what_is_not_ok_and_counts_the_review_lists():
    from ctcnet.commands.outcome import batch_line

    ok = {"status": "ok", "review_list": {"events": 12}}
    results = {"A": ok, "B": {**ok, "signoff": {"reviewer": "J"}},
               **{f"P{i}": {"status": "partial", "review_list": {"events": 3}} for i in range(7)}}
    assert batch_line(results, 1, Path("out")) == (
        "10 inputs: 2 ok, 7 partial (P0, P1, P2, P3, P4, and 2 more partial), 1 set aside "
        "(below); 45 "
        "event(s) on the review lists, 1 signed off; the table of them all: out/samples.csv")
    # A sign-off the decisions moved on from is no sample signed off: said apart.
    results["A"] = {**ok, "signoff": {"reviewer": "K", "status": "changed since"}}
    assert "1 signed off (1 more sign-off(s) no longer hold: sign off again);" in \
        batch_line(results, 1, Path("out"))
    # The rest after named reasons: a count of its own, not read as the last one's reason.
    many = {f"Z{i}": {"status": "partial", "frames": {"processed": 2, "total": 2, "missing": 1}}
            for i in range(6)}
    assert "Z4: 2 of 3 frames read; and 1 more partial)" in batch_line(many, 0, Path("out"))
    # Each partial sample with why, where its summary says: the operator's line, not the
    # lines above it (a channel order in doubt is no frame short).
    why = {"B": {"status": "partial", "frames": {"processed": 4, "total": 4, "missing": 1}},
           "C": {"status": "partial", "problems": ["CK lights 3 of 300 events: check "
                                                   "panel.json's channel order"],
                 "frames": {"processed": 5, "total": 5}}}
    assert batch_line({"A": ok, **why}, 0, Path("out")).startswith(
        "3 inputs: 1 ok, 2 partial (B: 4 of 5 frames read; C: channel order in doubt, its "
        "counts not to be reported until it is checked); 12 event(s)")
    empty = {"status": "partial", "problems": ["almost nothing detected: 0 event(s) in 3 "
                                               "frame(s) read, ..."]}
    assert "1 partial (E: almost nothing detected, its zeros no negative)" in batch_line(
        {"A": ok, "E": empty}, 0, Path("out"))
    assert batch_line({"A": ok}, 0, Path("out")) is None  # one input: its line says it all
    # Two runs of one batch: what the other finished is no "set aside (below)" with no line
    # below.
    assert batch_line({"A": ok}, 0, Path("out"), others=2).startswith(
        "3 inputs: 1 ok, 2 finished or being written by another run; 12 event(s)")
    # A crop set's listed crops are said as crops, not added to the cartridges' events.
    crops = {"crops": 140, "review_list": {"events": 6}}
    assert "; 12 event(s) and 6 crop(s) on the review lists" in \
        batch_line({"A": ok, "C": crops}, 0, Path("out"))
    assert "; 12 crop(s) on the review lists" in batch_line({"C": crops, "D": crops}, 0,
                                                           Path("out"))


def test_frames_resumed_from_another_ctcnet_are_said_with_their_makers():
    """A night straddling an upgrade: which ctcnet made which frames was in summary.json and
    the report alone; the console line says it too."""
    summary = {"status": "ok", "events": 10, "counts": {"ctc": 1}, "per_7_5_ml": {"ctc": 1.0},
               "frames": {"resumed_from_journal": 2, "total": 6},
               "frames_made_by": {"onnx, ctcnet 0.1.0 (code 0123456789ab)": 2,
                                  "onnx, ctcnet 0.1.0 (code ba9876543210)": 4}}
    line = outcome_line("S1", summary, Path("out/S1"))
    assert "2 of 6 frame(s) from an earlier run's journal (made by onnx, ctcnet 0.1.0 (code " \
           "0123456789ab): 2; onnx, ctcnet 0.1.0 (code ba9876543210): 4)" in line


def test_a_sample_decided_but_not_signed_off_says_so():
    summary = {"status": "ok", "events": 10, "counts": {"ctc": 1}, "per_7_5_ml": {"ctc": 1.0},
               "reviewed": {"reviewed": 2}}
    assert "2 event(s) decided, not signed off" in outcome_line("S1", summary, Path("o/S1"))


def test_a_sample_whose_every_frame_failed_alike_is_told_the_one_cause():
    """Every frame skipped for one reason (but its file's name) is the sample's cause, said
    once (a panel.json listing channels the files do not hold, not four cut-short files)."""
    from types import SimpleNamespace

    from ctcnet.commands.outcome import _one_reason

    def failed(*reasons):
        return SimpleNamespace(skipped_frames=[{"frame": f"r00c0{i}", "reason": r}
                                               for i, r in enumerate(reasons)])

    alike = failed(*(f"/scan/r00c0{i}.tif: frame has 4 channels, the panel has 5"
                     for i in range(3)))
    assert _one_reason(alike) == (3, "frame has 4 channels, the panel has 5")
    # Alike but for the frame's own file named in it, or its values: the first said.
    files = failed(*(f"missing channel file(s) [4] (r00c0{i}_c4.tif)" for i in range(3)))
    assert _one_reason(files) == (3, "missing channel file(s) [4] (r00c00_c4.tif)")
    values = failed("/s/r00c00.tif: CK holds values up to 2756, out of [0, 255]",
                    "/s/r00c01.tif: CK holds values up to 3126, out of [0, 255]")
    assert _one_reason(values) == (2, "CK holds values up to 2756, out of [0, 255]")
    assert _one_reason(failed("/scan/r00c00.tif: empty file", "/scan/r00c01.tif: cut short")) \
        is None
    assert _one_reason(failed("/scan/r00c00.tif: empty file")) is None  # one frame: said as is


def test_a_crop_sets_line_says_its_listed_crops_as_crops():
    from ctcnet.commands.outcome import outcome_line

    line = outcome_line("C", {"crops": 140, "counts": {"ctc": 3}, "review_list": {"events": 6}},
                        Path("out/C"))
    assert "6 crop(s) sent to review (its index.html shows them)" in line
    assert "event(s)" not in line
