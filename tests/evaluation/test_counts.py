"""Count-level truth: matching, after-review counts, Bland-Altman, cut-offs, the command."""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctcnet.cli import main
from ctcnet.detect.truth_matching import MATCH_RADIUS_UM
from ctcnet.evaluation.counts import (
    agreement_text,
    bland_altman,
    cartridge_counts,
    count_report,
    cutoff_agreement,
    share_ci,
    share_interval,
    truth_class_of_events,
    within_tolerance,
)
from ctcnet.evaluation.counts_figure import counts_png
from ctcnet.inference.counts import Counts, ReviewedCounts, count_events, count_reviewed
from ctcnet.inference.guard import counted

NAMES = ["ctc", "wbc", "cluster", "debris"]


def test_bland_altman_by_hand():
    ba = bland_altman([3, 5, 10], [2, 5, 8])
    assert ba["bias"] == pytest.approx(1.0)
    assert ba["sd"] == pytest.approx(1.0)
    assert (ba["lower"], ba["upper"]) == pytest.approx((1 - 1.96, 1 + 1.96))
    assert bland_altman([], [])["bias"] is None
    # One cartridge: its bias, and no limits (no spread to draw them from), not "-1 to -1".
    one = bland_altman([3], [4])
    assert one["bias"] == -1.0 and one["sd"] is None and one["lower"] is None


def test_cutoff_agreement_counts_both_kinds_of_error():
    out = cutoff_agreement([0, 5, 6, 4, 9], [0, 4, 7, 5, 9], 5)
    assert (out["agree"], out["n"], out["false_positive"], out["false_negative"]) == (3, 5, 1, 1)
    # Cohen's kappa: observed 0.6, chance 0.6 x 0.6 + 0.4 x 0.4 = 0.52 (each method 3 of 5
    # positive): (0.6 - 0.52) / 0.48; one way throughout, undefined.
    assert out["kappa"] == pytest.approx(0.08 / 0.48)
    assert cutoff_agreement([6, 7], [5, 9], 5)["kappa"] is None


def test_share_interval_is_wilson_and_wide_at_twenty_cartridges():
    low, high = share_interval(14, 20)
    # Wilson by hand: centre (p + z^2/2n) / (1 + z^2/n), half-width z sqrt(p(1-p)/n + z^2/4n^2)
    # / (1 + z^2/n), z = 1.96.
    assert low == pytest.approx(0.481, abs=2e-3) and high == pytest.approx(0.855, abs=2e-3)
    assert share_interval(20, 20)[1] == pytest.approx(1.0) and share_interval(20, 20)[0] < 0.85
    assert share_interval(0, 0) is None
    assert share_ci({"ci95": [0.481, 0.855]}) == " (95 % CI 48-86 %)" and share_ci({}) == ""
    assert cutoff_agreement([5, 6], [5, 6], 5)["ci95"] == share_interval(2, 2)
    entry = {"within_tolerance": {"n": 14, "of": 20, "ci95": share_interval(14, 20)},
             "cutoffs": [cutoff_agreement([0, 6], [1, 6], 1)]}
    assert agreement_text(entry) == ("within tolerance 14/20 (95 % CI 48-85 %); cut-offs agree "
                                     ">= 1: 1/2 (95 % CI 9-91 %)")


def test_tolerance_is_one_event_or_fifteen_percent():
    ok = within_tolerance([1, 0, 12, 10, 24, 25], [0, 1, 10, 12, 21, 21])
    # 1 vs 0 and 0 vs 1: one event; 12 vs 10: 2 > max(1, 1.5); 10 vs 12: 2 > 1.8;
    # 24 vs 21: 3 <= 3.15; 25 vs 21: 4 > 3.15.
    assert ok.tolist() == [True, True, False, False, True, False]


def _tables():
    truth = pd.DataFrame({"row": [0, 0, 0, 0, 1], "col": [0, 0, 0, 0, 0],
                          "x": [10.0, 50.0, 90.0, 130.0, 10.0], "y": [10.0] * 5,
                          "class": ["ctc", "debris", "wbc", "ctc", "ctc"]})
    # Detections: the first CTC (called ctc, sure), the debris (called ctc, flagged), the wbc
    # (called wbc), a detection of nothing (called ctc, flagged), the second frame's CTC placed
    # in the wrong frame's coordinates (called debris, flagged: no true event near it there).
    events = pd.DataFrame({"row": [0, 0, 0, 0, 1], "col": [0, 0, 0, 0, 0],
                           "x": [11.0, 51.0, 89.0, 200.0, 60.0], "y": [10.0] * 5,
                           "class": ["ctc", "ctc", "wbc", "ctc", "debris"],
                           "review": [False, True, False, True, True]})
    return events, truth


def test_truth_class_of_events_matches_per_frame_within_radius():
    events, truth = _tables()
    got = truth_class_of_events(events, truth, pixel_size_um=1.0, radius_um=5.0)
    assert got.tolist() == ["ctc", "debris", "wbc", None, None]


def test_cartridge_counts_automatic_and_after_review():
    events, truth = _tables()
    c = cartridge_counts(events, truth, NAMES, pixel_size_um=0.2, blood_volume_ml=3.75)
    assert c["true"] == {"ctc": 3, "wbc": 1, "cluster": 0, "debris": 1}
    assert c["automatic"] == {"ctc": 3, "wbc": 1, "cluster": 0, "debris": 1}
    # After review: the flagged debris and the detection of nothing become debris.
    assert c["after_review"] == {"ctc": 1, "wbc": 1, "cluster": 0, "debris": 3}
    assert c["flagged"] == 3 and c["flagged_wrong"] == 2
    assert c["false_calls"]["ctc"] == 2 and c["missed_calls"]["ctc"] == 0
    assert c["true_per_7_5_ml"]["ctc"] == 6.0  # half the volume: twice the count per 7.5 mL
    # By subtype: the bright CTC counted, neither dim one (no event lies within reach of
    # either): a total of 3 called CTCs against 3 true ones hid that both were missed.
    dims = truth.assign(subtype=["ctc_bright", "fragment", "lymphocyte", "ctc_dim", "ctc_dim"])
    by = cartridge_counts(events, dims, NAMES, pixel_size_um=0.2,
                          blood_volume_ml=3.75)["by_subtype"]
    assert by == {"ctc/ctc_bright": {"true": 1, "counted": 1, "shown": 0},
                  "ctc/ctc_dim": {"true": 2, "counted": 0, "shown": 0}}
    assert count_report([{"sample_id": "a", **cartridge_counts(
        events, dims, NAMES, pixel_size_um=0.2)}] * 2, NAMES)["by_subtype"][
        "ctc/ctc_dim"] == {"true": 4, "counted": 0, "shown": 0}
    # A lab's taxonomy reports another class (an EMT CTC class): its subtypes are given too.
    lab = cartridge_counts(events, dims, NAMES, pixel_size_um=0.2,
                           counted_classes=("ctc", "wbc"))["by_subtype"]
    assert "wbc/lymphocyte" in lab and "wbc/lymphocyte" not in by


def test_truth_that_does_not_line_up_with_its_frames_is_said():
    """Truth moved 9 um off its frames scored 7 of 10 CTCs missed and 7 false, with every count
    "within tolerance" and no word that the positions, not the calls, were wrong."""
    events, truth = _tables()
    c = cartridge_counts(events, truth, NAMES, pixel_size_um=0.2)
    assert (c["true_events"], c["true_matched"]) == (5, 3)  # the far CTC, the other frame's
    many = [{"sample_id": "lined_up", **c, "true_events": 20, "true_matched": 19},
            {"sample_id": "moved", **c, "true_events": 20, "true_matched": 9},
            {"sample_id": "few", **c, "true_events": 5, "true_matched": 0}]
    report = count_report(many, NAMES)
    assert report["detection"] == {"radius_um": MATCH_RADIUS_UM, "true": 45, "matched": 28,
                                   "share": 28 / 45, "poorly_matched": ["moved"]}


def _tallied():
    # Five ctc calls (one held by the guard for CD45, one sure), a wbc held as a possible missed
    # CTC, two debris (one unsure), an event without a call.
    return pd.DataFrame({
        "event_id": range(9),
        "class": ["ctc"] * 5 + ["wbc", "debris", "debris", "failed"],
        "review": [True, False, True, True, True, True, False, True, True],
        "guard": ["cd45_positive", "", "", "", "", "possible_ctc+unusual", "", "", ""]})


def test_one_tally_counts_guard_held_calls_apart_per_volume_read():
    tally = count_events(_tallied(), NAMES, ["ctc", "cluster"], blood_volume_ml=2.5)
    assert tally.counted == {"ctc": 4, "wbc": 0, "cluster": 0, "debris": 2}
    assert tally.held == {"ctc": 1, "wbc": 1, "cluster": 0, "debris": 0}
    assert tally.held_total == 2
    assert tally.held_by_flag == {"cd45_positive": 1, "unusual": 1, "possible_ctc": 1}
    assert tally.review == {"ctc": 4, "wbc": 1, "cluster": 0, "debris": 1}
    assert tally.confident == {"ctc": 1, "wbc": 0, "cluster": 0, "debris": 1}
    assert (tally.events, tally.review_events, tally.failed) == (9, 7, 1)
    # Per 7.5 mL of the 2.5 mL read: three times the count; reported classes only.
    assert tally.per_7_5_ml == {"ctc": 12.0, "cluster": 0.0}
    assert Counts.from_dict(tally.to_dict()) == tally  # summary.json round trip
    # No blood read (no frame processed): no figure, never zero.
    assert count_events(_tallied(), NAMES, ["ctc"], 0.0).per_7_5_ml == {"ctc": None}
    # The evaluation's automatic count and guard-held calls are the same tally.
    c = cartridge_counts(_tallied().assign(row=0, col=0, x=0.0, y=0.0), _tables()[1].iloc[:0],
                         NAMES, pixel_size_um=1.0, blood_volume_ml=2.5)
    assert c["automatic"] == tally.counted and c["held_by_guard"] == tally.held
    assert c["automatic_per_7_5_ml"]["ctc"] == tally.per_7_5_ml["ctc"]


def test_a_rate_exactly_at_the_cut_off_reads_at_it_from_a_share_of_the_tube():
    """5.4 mL, 5 of 6 frames read: 4.5 mL of blood, and 3 CTCs in it are 5.00 per 7.5 mL.
    In floating point the volume read 4.500000000000001 and the rate 4.999999999999999,
    printed 4.99 and below a cut-off of 5 in every table, draw and comparison."""
    from ctcnet.inference.counts import per_7_5_ml, per_volume_text
    from ctcnet.inference.summary import volume_read_ml

    assert volume_read_ml(5.4, 6, 1) == 4.5 and volume_read_ml(8.4, 140, 15) == 7.5
    for tube, frames, skipped, ctcs in [(5.4, 6, 1, 3), (8.4, 140, 15, 5), (8.4, 140, 15, 3)]:
        rate = per_7_5_ml(ctcs, volume_read_ml(tube, frames, skipped))
        assert rate == (5.0 if tube == 5.4 else ctcs), rate
        assert per_volume_text(rate) == f"{rate:.2f}"
    # A rate truly just under a whole number stays under it (4 CTCs in 6.004 mL).
    assert per_volume_text(per_7_5_ml(4, 6.004)) == "4.99" and per_7_5_ml(4, 6.004) < 5


def test_reviewed_tally_applies_each_decision_to_the_automatic_count():
    events = _tallied()
    tally = count_events(events, NAMES, ["ctc", "cluster"], 2.5)
    decisions = pd.DataFrame({  # the held ctc confirmed, a counted ctc rejected, a debris -> wbc
        "event_id": [0, 1, 6], "model_call": ["ctc", "ctc", "debris"],
        "reviewer_call": ["ctc", "rejected", "wbc"],
        "time": ["2024-01-01T10:00:00+00:00", "2024-01-01T10:05:00+00:00",
                 "2024-01-01T10:01:00+00:00"]})
    reviewed = count_reviewed(events, decisions, tally, unattached=2)
    assert reviewed.after_review == {"ctc": 4, "wbc": 1, "cluster": 0, "debris": 1}
    assert reviewed.confirmed == {"ctc": 1, "wbc": 1, "cluster": 0, "debris": 0}
    assert reviewed.decided == {"ctc": 2, "wbc": 0, "cluster": 0, "debris": 1}
    assert (reviewed.reviewed, reviewed.rejected, reviewed.unattached) == (3, 1, 2)
    assert reviewed.after_review_per_7_5_ml == {"ctc": 12.0, "cluster": 0.0}
    assert reviewed.updated == "2024-01-01T10:05:00+00:00"
    assert ReviewedCounts.from_dict(reviewed.to_dict()) == reviewed


def test_count_report_and_figure(tmp_path):
    rows = []
    for k, (true, auto) in enumerate([(0, 1), (3, 3), (6, 4), (20, 22)]):
        zero = {n: 0 for n in NAMES}
        rows.append({"sample_id": f"s{k}", "events": 100, "flagged": 5,
                     "false_calls": {"ctc": max(auto - true, 0), "cluster": k == 0},
                     "true": {**zero, "ctc": true}, "automatic": {**zero, "ctc": auto},
                     "after_review": {**zero, "ctc": true},
                     "true_per_7_5_ml": {**zero, "ctc": true},
                     "automatic_per_7_5_ml": {**zero, "ctc": auto},
                     "after_review_per_7_5_ml": {**zero, "ctc": true}})
    report = count_report(rows, NAMES)
    ctc = report["per_class"]["ctc"]
    assert ctc["automatic"]["bland_altman"]["bias"] == pytest.approx(0.25)
    assert ctc["automatic"]["within_tolerance"]["n"] == 3  # 6 vs 4 misses
    five = ctc["automatic"]["cutoffs"][-1]  # (1, 3, 5)
    assert five["cutoff"] == 5 and five["agree"] == 3 and five["false_negative"] == 1
    assert ctc["after_review"]["bland_altman"]["bias"] == 0.0
    assert report["flagged_share"] == pytest.approx(0.05)
    # Clusters are a counted class too: their agreement and their false calls (one on s0).
    assert report["counted_classes"] == ["ctc", "cluster"]
    assert report["per_class"]["cluster"]["automatic"]["within_tolerance"]["of"] == 4
    assert report["false_calls_per_1000_events"] == {"ctc": pytest.approx(7.5),
                                                     "cluster": pytest.approx(2.5)}
    assert counts_png(report, tmp_path / "c.png").stat().st_size > 0
    # A model reporting only ctc: its agreement is of ctc alone.
    assert count_report(rows, NAMES, reported=["ctc"])["counted_classes"] == ["ctc"]


def test_count_report_agrees_on_a_labs_reported_class():
    """A lab's taxonomy reporting ctc_emt beside ctc and cluster: its count's agreement and
    its false calls are read as theirs."""
    names = ["ctc", "ctc_emt", "wbc", "cluster", "debris"]
    zero = {n: 0 for n in names}
    rows = [{"sample_id": f"s{k}", "events": 100, "flagged": 5,
             "false_calls": {"ctc": 0, "cluster": 0, "ctc_emt": int(auto > true)},
             "true": {**zero, "ctc_emt": true}, "automatic": {**zero, "ctc_emt": auto},
             "after_review": {**zero, "ctc_emt": true},
             "true_per_7_5_ml": {**zero, "ctc_emt": true},
             "automatic_per_7_5_ml": {**zero, "ctc_emt": auto},
             "after_review_per_7_5_ml": {**zero, "ctc_emt": true},
             "guard_flagged": 2, "guard": {"ctc": {"wrong_calls": 0, "wrong_held": 0,
                                                   "right_held": 0},
                                           "ctc_emt": {"wrong_calls": 2, "wrong_held": 1,
                                                       "right_held": k}}}
            for k, (true, auto) in enumerate([(0, 1), (4, 4), (10, 5)])]
    report = count_report(rows, names, reported=["ctc", "ctc_emt", "cluster"])
    assert report["counted_classes"] == ["ctc", "ctc_emt", "cluster"]
    assert report["per_class"]["ctc_emt"]["automatic"]["within_tolerance"]["n"] == 2
    assert report["false_calls_per_1000_events"]["ctc_emt"] == pytest.approx(1 / 3 * 10)
    # The guard's work on each counted class, not on ctc's alone.
    assert report["guard"]["wrong_calls"] == 0
    assert report["guard"]["catch_share"] is None  # no wrong call to catch: not "none caught"
    assert report["guard_by_class"]["ctc_emt"] == {"wrong_calls": 6, "wrong_held": 3,
                                                   "right_held": 3, "catch_share": 0.5}


def test_evaluate_command_on_simulated_cartridges(tmp_path, capsys, caplog):
    from ctcnet.simulate import simulate_cartridge

    for seed in (1, 2):
        simulate_cartridge(tmp_path / "carts" / f"c{seed}", num_frames=1, frame_shape=(256, 320),
                           seed=seed, events_per_frame=25, rare_rates={"ctc": 0.2})
    rc = main(["evaluate", str(tmp_path / "carts"), "--out", str(tmp_path / "out"),
               "--device", "cpu"])
    assert rc == 0
    said = capsys.readouterr().out
    assert "after_review (ctc)" in said and "after_review (cluster)" in said
    assert "resolved every flagged event to its true class" in said  # a perfect reviewer's
    assert "false calls per 1,000 events: ctc" in said
    # The pooled shares a validation report states, each with its interval.
    assert "ctc automatic, pooled: recall " in said and "% CI" in said.split("pooled:")[1]
    # clusters' counts beside the CTCs', per cartridge: the console is what a lab reads
    assert "ctc per 7.5 mL" in said and "cluster per 7.5 mL" in said
    report = json.loads((tmp_path / "out" / "counts.json").read_text())
    assert [c["sample_id"] for c in report["cartridges"]] == ["sim1", "sim2"]
    truth = pd.read_csv(tmp_path / "carts" / "c1" / "ground_truth.csv")
    first = report["cartridges"][0]
    assert first["true"]["ctc"] == int((truth["class"] == "ctc").sum())
    events = pd.read_parquet(tmp_path / "out" / "sim1" / "events.parquet")
    # The automatic count leaves out the calls the marker guard held for review.
    assert first["automatic"]["ctc"] == int(((events["class"] == "ctc") & counted(events)).sum())
    assert (tmp_path / "out" / "counts.png").stat().st_size > 0
    assert np.isfinite(report["per_class"]["ctc"]["automatic"]["bland_altman"]["bias"])
    recall = report["per_class"]["ctc"]["automatic"]["recall"]
    hits = sum(c["automatic"]["ctc"] - c["false_calls"]["ctc"] for c in report["cartridges"])
    assert recall["n"] == hits and recall["of"] == sum(c["true"]["ctc"]
                                                       for c in report["cartridges"])
    assert len(recall["ci95"]) == 2
    # What was scored, for an audit: the model by its absolute path, file and network digests
    # and name (the shipped default, run as its ONNX export on a CPU), the software and when.
    record = report["model_record"]
    assert Path(record["path"]).is_absolute() and record["path"] == report["model"]
    summary = json.loads((tmp_path / "out" / "sim1" / "summary.json").read_text())
    assert record["sha256"] == report["model_sha256"] == summary["model"]["sha256"]
    assert record["network_sha256"] == summary["run_fingerprint"]["model_sha256"]
    assert record["name"] == "ctcnet-default" and "finetuned_from" not in record
    assert report["software"]["ctcnet"] and report["written_at"]
    # Crop-set options given with cartridges are refused by name, before any work: a
    # calibrated model that would never be written, a baseline folder never read.
    for extra, named in ((["--calibrate-on", str(tmp_path / "carts"), "--save-model", "cal.pt"],
                          "--calibrate-on, --save-model: crop-set options"),
                         (["--batch-size", "4"], "--batch-size: crop-set option,"),
                         (["--baseline-train", "nosuch"], "--baseline-train: crop-set option,")):
        capsys.readouterr()
        rc = main(["evaluate", str(tmp_path / "carts"), "--out", str(tmp_path / "out2"),
                   "--device", "cpu", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1 and named in err[0], err
        assert not (tmp_path / "out2").exists() and not Path("cal.pt").exists()
    # --overwrite, a rerun's habit, is no crop-set option: cartridges are made again anyway.
    from argparse import Namespace

    from ctcnet.commands.evaluate import refuse_crop_options

    refuse_crop_options(Namespace(data="carts", overwrite=True))
    # Two cartridges of one sample id (a seed drawn again with a shift) would be one output
    # folder: refused by name before any work, not the first's results replaced.
    simulate_cartridge(tmp_path / "carts" / "c1_dim", num_frames=1, frame_shape=(256, 320),
                       seed=1, events_per_frame=25, rare_rates={"ctc": 0.2})
    capsys.readouterr()
    rc = main(["evaluate", str(tmp_path / "carts"), "--out", str(tmp_path / "out3"),
               "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "its sample id 'sim1' is that of" in err and "one folder" in err
    assert not (tmp_path / "out3").exists()
    # One scan under another sample id (a copy): scored, and said to be one draw twice.
    import shutil

    shutil.rmtree(tmp_path / "carts" / "c1_dim")
    shutil.copytree(tmp_path / "carts" / "c1", tmp_path / "carts" / "copy")
    info = json.loads((tmp_path / "carts" / "copy" / "cartridge.json").read_text())
    (tmp_path / "carts" / "copy" / "cartridge.json").write_text(
        json.dumps({**info, "sample_id": "copy1"}))
    with caplog.at_level("WARNING"):
        assert main(["evaluate", str(tmp_path / "carts"), "--out", str(tmp_path / "out4"),
                     "--device", "cpu"]) == 0
    assert "are one scan (the same frames, cartridge_id alike)" in caplog.text


def test_an_evaluation_stopped_part_way_resumes_each_cartridges_run(tmp_path, capsys):
    """The same command after a stop resumes each cartridge's run where it stopped (it redid
    every cartridge, the finished ones too); a folder of another model's run is refused
    without --overwrite and run again with it."""
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(tmp_path / "carts" / "c1", num_frames=2, frame_shape=(256, 320), seed=1,
                       events_per_frame=25, rare_rates={"ctc": 0.2})
    command = ["evaluate", str(tmp_path / "carts"), "--out", str(tmp_path / "out"),
               "--device", "cpu"]
    assert main(command) == 0
    first = json.loads((tmp_path / "out" / "counts.json").read_text())
    (tmp_path / "out" / "counts.json").unlink()  # stopped before its report was written
    assert main(command) == 0
    summary = json.loads((tmp_path / "out" / "sim1" / "summary.json").read_text())
    assert summary["frames"]["resumed_from_journal"] == 2
    again = json.loads((tmp_path / "out" / "counts.json").read_text())
    assert again["cartridges"] == first["cartridges"]
    (tmp_path / "out" / "counts.json").unlink()
    capsys.readouterr()
    other = [*command, "--model", "ctcnet-core3"]
    assert main(other) == 2
    assert "holds a run with another model" in capsys.readouterr().err
    assert main([*other, "--overwrite"]) == 0
    summary = json.loads((tmp_path / "out" / "sim1" / "summary.json").read_text())
    assert summary["model"]["path"].endswith("ctcnet-core3.onnx")
    assert summary["frames"]["resumed_from_journal"] == 0


def test_the_crop_only_options_refused_for_cartridges_are_evaluates_own_defaults():
    """The defaults the refusal compares with are the parser's: a changed default must not
    make every cartridge evaluation refuse (or let a given option pass unseen)."""
    import argparse

    from ctcnet.commands.evaluate import CROP_ONLY_OPTIONS, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["data", "--out", "x"])
    assert {k: getattr(args, k) for k in CROP_ONLY_OPTIONS} == CROP_ONLY_OPTIONS


def test_the_blood_draw_interval_is_the_exact_poisson_one_scaled_as_the_rate():
    """Garwood's interval (as scipy's chi-square quantiles give it), per 7.5 mL of the blood
    read; none without blood."""
    from scipy.stats import chi2

    from ctcnet.inference.counts import poisson_interval

    for k in (1, 3, 5, 20, 200):
        low, high = poisson_interval(k)
        assert abs(low - chi2.ppf(0.025, 2 * k) / 2) < 1e-6 * max(1, k)
        assert abs(high - chi2.ppf(0.975, 2 * k + 2) / 2) < 1e-6 * max(1, k)
    assert poisson_interval(0)[0] == 0 and abs(poisson_interval(0)[1] - 3.6889) < 1e-4
    tally = Counts(classes=("ctc", "wbc"), reported=("ctc",), counted={"ctc": 5, "wbc": 9},
                   held={"ctc": 0, "wbc": 0}, review={"ctc": 0, "wbc": 0},
                   confident={"ctc": 5, "wbc": 9}, events=14, review_events=0, failed=0,
                   blood_volume_ml=3.75)
    low, high = tally.per_7_5_ml_interval["ctc"]
    assert abs(low - 2 * 1.6235) < 1e-3 and abs(high - 2 * 11.6683) < 1e-3
    assert Counts.from_dict(tally.to_dict()) == tally
    from dataclasses import replace

    assert replace(tally, blood_volume_ml=None).per_7_5_ml_interval == {"ctc": None}


def test_a_model_is_named_by_its_card_not_by_any_json_beside_it(tmp_path):
    """A model copied under a shipped model's file name beside an unrelated JSON file has no
    name in a report (it would read as that shipped model beside another's digest)."""
    import shutil
    from types import SimpleNamespace

    from ctcnet.inference.model_records import model_record
    from ctcnet.nn.registry import get_model

    shipped = get_model("ctcnet-core3")
    assert model_record(SimpleNamespace(model_path=shipped.checkpoint, spec=None))["name"] == \
        "ctcnet-core3"
    copy = tmp_path / "ctcnet-default.pt"
    shutil.copyfile(shipped.checkpoint, copy)
    (tmp_path / "ctcnet-default.json").write_text('{"settings": 1}')
    record = model_record(SimpleNamespace(model_path=copy, spec=None))
    assert "name" not in record and record["sha256"] == record["network_sha256"]


def test_a_cartridge_without_blood_read_takes_part_in_no_figure(tmp_path):
    """A cartridge whose frames were all unreadable has no rates: it is listed and named as
    left out, never scored as a count of 0 (which agrees at every cut-off and puts NaN into the
    Bland-Altman figures)."""
    from ctcnet.core.json_text import strict_json

    zero = {n: 0 for n in NAMES}
    none = {n: None for n in NAMES}

    def row(name, true, auto, rates=True):
        per = (lambda v: {**zero, "ctc": v}) if rates else (lambda v: none)
        return {"sample_id": name, "events": 100 if rates else 0, "flagged": 0,
                "status": "ok" if rates else "failed", "false_calls": {},
                "true": {**zero, "ctc": true}, "automatic": {**zero, "ctc": auto},
                "after_review": {**zero, "ctc": true}, "true_per_7_5_ml": per(true),
                "automatic_per_7_5_ml": per(auto), "after_review_per_7_5_ml": per(true)}

    rows = [row("a", 2, 2), row("b", 6, 4), row("failed", 0, 0, rates=False)]
    report = count_report(rows, NAMES)
    assert report["left_out"] == ["failed"] and len(report["cartridges"]) == 3
    auto = report["per_class"]["ctc"]["automatic"]
    assert auto["bland_altman"]["n"] == 2 and np.isfinite(auto["bland_altman"]["bias"])
    assert auto["within_tolerance"]["of"] == 2
    assert all(c["agree"] + c["false_negative"] + c["false_positive"] == 2
               for c in auto["cutoffs"])
    json.loads(strict_json(report))  # strict JSON: no NaN
    assert counts_png(report, tmp_path / "c.png").stat().st_size > 0


def test_a_cluster_read_twice_is_matched_to_its_counted_event_not_the_held_repeat():
    """Two events of one drawn cluster, the nearer held as a repeat (same_cluster): the
    counted one is the cluster's event, the repeat matches no cell (it scored the counted
    cluster a false call)."""
    from ctcnet.evaluation.counts import match_events

    truth = pd.DataFrame({"row": [0], "col": [0], "x": [100.0], "y": [100.0],
                          "class": ["cluster"]})
    events = pd.DataFrame({"row": [0, 0], "col": [0, 0], "x": [101.0, 106.0],
                           "y": [100.0, 100.0], "class": ["cluster", "cluster"],
                           "guard": ["same_cluster", ""]})
    assert match_events(events, truth, 0.64).tolist() == [-1, 0]
    # Without a guard column (or both counted) the nearer is the match, as before.
    assert match_events(events.drop(columns="guard"), truth, 0.64).tolist() == [0, -1]


def test_a_damaged_ground_truth_is_refused_by_name_and_a_frame_it_lacks_is_said(tmp_path,
                                                                                caplog):
    """A ground_truth.csv cut short was read without a word (its last frames' cells scored as
    missed, a row cut mid-way as a cell), and one without its class column was a KeyError."""
    from ctcnet.errors import InputError
    from ctcnet.evaluation.cartridge_evaluation import _say_frames_without_truth
    from ctcnet.io.scan import open_cartridge
    from ctcnet.simulate import simulate_cartridge
    from ctcnet.simulate.cartridge import read_truth

    simulate_cartridge(tmp_path / "c", num_frames=2, frame_shape=(256, 320), seed=1,
                       events_per_frame=25)
    path = tmp_path / "c" / "ground_truth.csv"
    whole = path.read_text()
    truth = read_truth(tmp_path / "c")
    for damaged, said in ((whole[:len(whole) // 2 + 3], "ends within a row"),
                          (whole.replace("class", "klass", 1), "lacks the column(s) class"),
                          (whole + "0,0,0,,1\n", "line(s) " + str(len(truth) + 2) + " lack"),
                          (whole.replace("\n0,0,0,", "\n0,zero,0,", 1), "column(s) row hold text")):
        path.write_text(damaged)
        with pytest.raises(InputError, match=re.escape(said)):
            read_truth(tmp_path / "c")
    path.write_text(whole.splitlines()[0] + "\n")  # a cartridge of no cell: read, empty
    assert len(read_truth(tmp_path / "c")) == 0
    path.write_text(whole)
    cartridge = open_cartridge(tmp_path / "c")
    with caplog.at_level("WARNING"):
        _say_frames_without_truth(cartridge, truth)
        assert not caplog.text
        _say_frames_without_truth(cartridge, truth[truth["frame_id"] == "r00c00"])
    assert "holds no cell of 1 of its 2 frames (r00c01)" in caplog.text


def test_evaluate_runs_afresh_only_what_overwrite_answers(monkeypatch, tmp_path):
    """With --overwrite, a refusal --overwrite answers is run afresh (an earlier version's
    finished run too: it was kept, its events scored); a folder held by another process, or
    not writable, stands (the retry threw away a resumable journal)."""
    import ctcnet.inference.predict as predicting
    from ctcnet.errors import FinishedEarlierError, FolderHeldError, OutputFolderError
    from ctcnet.evaluation.cartridge_evaluation import _predicted
    from ctcnet.inference.predict import PredictOptions

    class Cart:
        sample_id = "s"

    def refusing(error):
        def predict(cart, backend, out_dir, options):
            if options.overwrite:
                return "afresh"
            raise error
        return predict

    other = OutputFolderError("it holds a run with another model; use another --out or "
                              "--overwrite", tmp_path)
    earlier = FinishedEarlierError("finished by an earlier run (--overwrite redoes it)",
                                   tmp_path, summary="kept")
    for error, overwrite, got in ((other, True, "afresh"), (earlier, True, "afresh"),
                                  (earlier, False, "kept")):
        monkeypatch.setattr(predicting, "predict_cartridge", refusing(error))
        assert _predicted(Cart(), None, tmp_path, PredictOptions(), overwrite) == got
    for error, overwrite in ((other, False), (FolderHeldError("held by another run", tmp_path),
                                               True),
                             (OutputFolderError("cannot write its output folder", tmp_path),
                              True)):
        monkeypatch.setattr(predicting, "predict_cartridge", refusing(error))
        with pytest.raises(OutputFolderError):
            _predicted(Cart(), None, tmp_path, PredictOptions(), overwrite)


def test_a_rates_interval_is_never_narrower_than_the_exact_one_at_either_rounding():
    """summary.json's ends at four decimals rounded to nearest, then the tables' two rounded
    outward: 4 CTCs in 6.1 mL, exact 1.339998-12.592117, read 1.34-12.60 (49 of 4,230 counts
    and volumes so)."""
    from ctcnet.inference.counts import (
        interval_at_two_decimals,
        per_7_5_ml,
        poisson_interval,
        rate_interval,
    )

    for count in range(30):
        for volume in np.arange(1.0, 15.01, 0.1):
            low, high = (end * per_7_5_ml(1, volume) for end in poisson_interval(count))
            four = rate_interval(count, volume)
            two = interval_at_two_decimals(*four)
            assert four[0] <= low + 1e-12 and four[1] >= high - 1e-12
            assert two[0] <= low + 1e-12 and two[1] >= high - 1e-12
    assert interval_at_two_decimals(*rate_interval(4, 6.1)) == (1.33, 12.6)


def test_an_evaluation_of_cartridges_none_of_which_was_read_is_refused_in_a_line(tmp_path,
                                                                                 capsys):
    """Every frame truncated: the table of n/a rows, then a traceback (a bias of None)."""
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(tmp_path / "carts" / "c1", num_frames=1, frame_shape=(256, 320), seed=1,
                       events_per_frame=25, rare_rates={"ctc": 0.2})
    for frame in (tmp_path / "carts" / "c1").glob("r*c*.tif"):
        frame.write_bytes(frame.read_bytes()[:1000])
    for json_mode in ([], ["--json"]):  # (with --json: exit 0, success and null figures)
        rc = main(["evaluate", str(tmp_path / "carts"), "--out", str(tmp_path / "out"),
                   "--device", "cpu", *json_mode])
        assert rc == 2 and "no cartridge had a frame read: nothing to score" in \
            capsys.readouterr().err


def test_counts_png_draws_each_limit_at_its_value_on_axes_in_rates(tmp_path, monkeypatch):
    """A limit of agreement beyond every difference (-6.80, the differences within -6): drawn
    at the panel's border, where it read as -6, and the rates' axes said "count"."""
    from PIL import Image, ImageDraw

    said, text = [], ImageDraw.ImageDraw.text
    monkeypatch.setattr(ImageDraw.ImageDraw, "text",
                        lambda self, xy, words, *a, **k: said.append(words) or
                        text(self, xy, words, *a, **k))

    from ctcnet.evaluation.plots import BLUE

    truth, called = [10.0, 10.0, 8.0, 8.0], [10.0, 10.0, 3.0, 5.0]  # differences 0 0 -5 -3
    carts = [{"true_per_7_5_ml": {"ctc": t}, "automatic_per_7_5_ml": {"ctc": c},
              "after_review_per_7_5_ml": {"ctc": t}} for t, c in zip(truth, called)]
    ba = bland_altman(called, truth)
    assert ba["lower"] < -6 < -5  # beyond every difference
    report = {"positive_class": "ctc", "cartridges": carts, "per_class": {"ctc": {
        "automatic": {"bland_altman": ba, "cutoffs": []},
        "after_review": {"bland_altman": bland_altman(truth, truth)}}}}
    image = np.asarray(Image.open(counts_png(report, tmp_path / "c.png")).convert("RGB"))
    assert {"true per 7.5 mL", "called per 7.5 mL"} <= set(said)
    size, top, x0 = 300, 50, 55 + 300 + 80  # the Bland-Altman panel (counts_png's layout)
    panel = image[top:top + size + 1, x0 + 5:x0 + size - 5].astype(int)
    rows = np.flatnonzero((np.abs(panel - BLUE).max(axis=2) < 30).mean(axis=1) > 0.9)
    lines = [int(g.mean()) for g in np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1)]
    assert len(lines) == 3 and 0 < lines[0] and lines[-1] < size  # none on the border
    upper, bias, lower = lines  # (rows from the top) the limits as far from the bias as drawn
    assert (lower - bias) / (bias - upper) == pytest.approx(
        (ba["bias"] - ba["lower"]) / (ba["upper"] - ba["bias"]), abs=0.05)
