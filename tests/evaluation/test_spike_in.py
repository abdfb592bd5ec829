"""ctcnet.evaluation.spike_in and ``ctcnet evaluate RESULTS --expected``: a spike-in
validation of a run's counts."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from ctcnet.errors import InputError
from ctcnet.evaluation.expected_file import read_expected
from ctcnet.evaluation.spike_in import (
    limit_of_blank,
    limit_of_detection,
    poisson_floor,
    sample_rows,
    spike_report,
)


def summary(rate: float, volume: float = 7.5, status: str = "ok", after=None) -> dict:
    out = {"blood_volume_ml": volume, "per_7_5_ml": {"ctc": rate}, "status": status}
    if after is not None:
        out["reviewed"] = {"reviewed": 3, "after_review_per_7_5_ml": {"ctc": after}}
        out["signoff"] = {"status": "current"}
    return out


def test_the_expected_counts_are_read_or_refused_naming_the_line(tmp_path):
    path = tmp_path / "expected.csv"
    path.write_text("\ufeffsample_id,spiked\nA,5\nB,0\n")  # Excel's byte-order mark
    assert read_expected(path)["spiked"].to_dict() == {"A": 5.0, "B": 0.0}
    for text, said in (("sample,n\nA,5\n", "columns sample_id,spiked"),
                       ("sample_id,spiked\nA,5\nB,-1\n", "line 3"),
                       ("sample_id,spiked\nA,five\n", "line 2"),
                       ("sample_id,spiked\nA,5\nA,6\n", "'A' is listed twice"),
                       # A trailing space typed beside the id is the same tube.
                       ("sample_id,spiked\nA,5\nA ,6\n", "'A' is listed twice"),
                       # A header alone (a KeyError of the results' rows, exit 1).
                       ("sample_id,spiked\n", "list no tube"),
                       ("sample_id,reference_per_7_5_ml\n,\n", "list no tube"),
                       # A column read but for its case: the grouping was dropped unsaid.
                       ("sample_id,spiked,Level\nA,5,x\n", r"'Level' is not read \(did you "
                                                            r"mean 'level'\?\)"),
                       # Another locale's spreadsheet, or a tab-separated export.
                       ("sample_id;spiked\nA;4,5\n", r"separated by ';'\?"),
                       ("sample_id;spiked\nA;5\n", r"separated by ';'\?"),
                       ("sample_id\tspiked\nA\t5\n", r"separated by '\\t'\?"),
                       # A decimal comma unquoted: read as 15 and a field of 5 (a traceback,
                       # or, with numeric ids, every count moved to another tube).
                       ("sample_id,spiked\nA,15,5\nB,20\n", "line 2 has 3 fields where its "
                                                            "header names 2"),
                       # ...and where the header ends in a comma too: the 5 lay in the
                       # header's unnamed last column, dropped unsaid, the tube read as 15.
                       ("sample_id,spiked,\nA,15,5,\nB,20,\n", "line 2 has 4 fields where "
                                                               "its header names 2"),
                       # A column named twice (a traceback).
                       ("sample_id,spiked,spiked\nA,1,2\n", "'spiked' is given twice")):
        path.write_text(text)
        with pytest.raises(InputError, match=said):
            read_expected(path)


def test_a_spreadsheets_trailing_comma_reads_each_count_under_its_tube(tmp_path):
    """Every row one comma longer than the header: pandas took the ids for an index, and read
    numeric ids' counts under other tubes (1,2,5 read as tube 2 spiked 5), unsaid."""
    path = tmp_path / "expected.csv"
    path.write_text("sample_id,spiked\n1,2,\n2,3,\n3,1,\n")
    assert read_expected(path)["spiked"].to_dict() == {"1": 2.0, "2": 3.0, "3": 1.0}
    # Two trailing commas, on the header too, and a line of commas under the table (pandas
    # refused it in its own words).
    path.write_text("sample_id,spiked,,\nA,2,,\nB,3\n,,,\n")
    assert read_expected(path)["spiked"].to_dict() == {"A": 2.0, "B": 3.0}
    path.write_text("sample_id,spiked\nPatientin_M\u00fcller,15,\n")
    assert read_expected(path)["spiked"].to_dict() == {"Patientin_M\u00fcller": 15.0}
    # Typed on a Mac (the accent decomposed): the id predict gives the sample (composed).
    path.write_text("sample_id,spiked\nPatientin_Mu\u0308ller,15\n")
    assert read_expected(path)["spiked"].to_dict() == {"Patientin_M\u00fcller": 15.0}


def test_a_column_not_read_is_said(tmp_path, caplog):
    """A blood_volume_ml column (the volumes are summary.json's) or a note: dropped unsaid."""
    path = tmp_path / "expected.csv"
    path.write_text("sample_id,spiked,blood_volume_ml,note\nA,5,5.0,x\n")
    with caplog.at_level("WARNING"):
        assert read_expected(path)["spiked"].tolist() == [5.0]
    said = caplog.text
    assert "column 'blood_volume_ml' is not read (the blood volumes are each sample's " \
        "summary.json's" in said and "column 'note' is not read" in said


def test_rates_and_recovery_are_per_7_5_ml_of_the_tubes_stated_volume():
    """A 5 mL tube spiked with 10 cells expects 15 per 7.5 mL; a sample the expected counts
    list and the results lack is refused by name."""
    expected = pd.DataFrame({"spiked": [10.0, 0.0]}, index=["five", "blank"])
    rows = sample_rows({"five": summary(12.0, volume=5.0, after=15.0), "blank": summary(0.0)},
                       expected).set_index("sample_id")
    assert rows.loc["five", "expected_per_7_5_ml"] == 15.0
    assert rows.loc["five", "recovery_called"] == pytest.approx(0.8)
    assert rows.loc["five", "recovery_after_review"] == 1.0 and rows.loc["five", "signed_off"]
    assert np.isnan(rows.loc["blank", "recovery_called"])
    with pytest.raises(InputError, match="have no predict output here: blank"):
        sample_rows({"five": summary(12.0)}, expected)
    # Another case is named as what the results hold.
    with pytest.raises(InputError, match=r"blank \(results hold 'Blank'\)"):
        sample_rows({"five": summary(12.0), "Blank": summary(0.0)}, expected)
    # A slip of the keys is offered (LI for L1 was refused without a hint).
    with pytest.raises(InputError, match=r"blank \('blanc' mistyped\?\)"):
        sample_rows({"five": summary(12.0), "blanc": summary(0.0)}, expected)


def test_limit_of_blank_is_ep17s_rank_and_the_detection_limit_adds_the_low_levels_sd():
    """EP17: with B = 20 blanks the rank is 0.5 + 0.95 x 20 = 19.5, halfway between the 19th
    and 20th ordered results; fewer than 20 take the highest, and say so."""
    blanks = np.arange(20, dtype=float)  # 0..19: the 19th and 20th are 18 and 19
    lob = limit_of_blank(blanks)
    assert lob["value"] == pytest.approx(18.5) and lob["blanks"] == 20
    few = limit_of_blank(np.array([0.0, 2.0, 1.0]))
    assert few["value"] == 2.0 and "highest of 3" in few["method"]
    assert limit_of_blank(np.zeros(0))["value"] is None
    low = np.array([3.0, 5.0, 7.0])  # sd 2; c_p = 1.645 / (1 - 1/8)
    lod = limit_of_detection(1.0, low)
    assert lod["value"] == pytest.approx(1.0 + 1.645 / (1 - 1 / 8) * 2.0)
    assert limit_of_detection(None, low)["value"] is None
    assert lod["results_over_limit_of_blank"] == 3 and "warning" not in lod
    # A low level whose results do not clear the limit of blank (EP17 asks 95 %) does not
    # establish a limit of detection: the figure is said to be unverified.
    under = limit_of_detection(3.9, np.array([0.0, 2.5, 0.5]))
    assert under["results_over_limit_of_blank"] == 0 and "0 of 3 results" in under["warning"]


def test_the_report_gives_levels_linearity_and_limits():
    levels = [0, 0, 0, 5, 5, 5, 50, 50, 50]
    called = [0, 1, 0, 4, 5, 3, 45, 47, 44]
    expected = pd.DataFrame({"spiked": np.asarray(levels, float)},
                            index=[f"s{i}" for i in range(9)])
    rows = sample_rows({f"s{i}": summary(float(c)) for i, c in enumerate(called)}, expected)
    report = spike_report(rows)
    five = next(level for level in report["levels"] if level["spiked"] == 5)
    assert five["mean_called_per_7_5_ml"] == 4.0 and five["mean_recovery"] == pytest.approx(0.8)
    assert five["poisson_cv"] == pytest.approx(1 / np.sqrt(5))
    line = report["linearity"]
    assert line["samples"] == 6 and 0.85 < line["slope"] < 0.95 and line["r2"] > 0.99
    assert line["slope_ci95"][0] < line["slope"] < line["slope_ci95"][1]
    assert report["limit_of_blank_per_7_5_ml"]["value"] == 1.0
    assert report["limit_of_detection_per_7_5_ml"]["level_spiked"] == 5.0
    assert report["after_review"] is None  # nobody reviewed
    assert report["made_by_several"] == []  # one maker (none recorded, alike)
    # Counts made by two versions of ctcnet and two models are said to be pooled.
    mixed = {f"s{i}": {**summary(float(c)), "model": {"sha256": "ab" if i < 5 else "cd"},
                       "software": {"ctcnet": "0.1.0", "commit": "1234567890abcdef"}
                       if i < 5 else {"ctcnet": "0.2.0"}} for i, c in enumerate(called)}
    rows = sample_rows(mixed, expected)
    assert rows["software"].tolist()[:1] == ["ctcnet 0.1.0, commit 1234567890ab"]
    assert spike_report(rows)["made_by_several"] == [
        "model (2 different: ab: s0, s1, s2, s3, s4; cd: s5, s6, s7, s8)",
        "software (2 different: ctcnet 0.1.0, commit 1234567890ab: s0, s1, s2, s3, s4; "
        "ctcnet 0.2.0: s5, s6, s7, s8)"]
    # A model file replaced in place: one name, two digests, each named by both.
    replaced = {f"s{i}": {**summary(float(c)), "model": {
        "sha256": "c538449cce41aa" if i < 5 else "df421b0b9ec4bb",
        "path": "/models/ctcnet-default.onnx"}} for i, c in enumerate(called)}
    said = spike_report(sample_rows(replaced, expected))["made_by_several"]
    assert said == ["model (2 different: ctcnet-default.onnx (c538449cce41): s0, s1, s2, s3, "
                    "s4; ctcnet-default.onnx (df421b0b9ec4): s5, s6, s7, s8)"], said
    # A sample whose run failed (no rate) is named and left out of every figure.
    failed = {**{f"s{i}": summary(float(c)) for i, c in enumerate(called)},
              "s4": {**summary(0.0), "per_7_5_ml": {}, "status": "failed"}}
    report = spike_report(sample_rows(failed, expected))
    assert report["samples_without_rate"] == ["s4"] and report["samples"] == 8
    assert next(lv for lv in report["levels"] if lv["spiked"] == 5)["samples"] == 2


def test_a_level_column_is_refused_where_it_cannot_be_one_spike(tmp_path, caplog):
    """A level holding blanks and spiked tubes, an empty level, and labels alike but for case
    are refused; a level spanning tubes far apart is said."""
    path = tmp_path / "expected.csv"
    for rows, said in (("a,0,low\nb,4,low\n", "level 'low' holds blanks"),
                       ("a,0,blank\nb,4,\n", "line 3: the level is empty"),
                       ("a,3,Mid\nb,4,mid\n", "levels 'Mid' and 'mid' differ only in case")):
        path.write_text("sample_id,spiked,level\n" + rows)
        with pytest.raises(InputError, match=said):
            read_expected(path)
    path.write_text("sample_id,spiked,level\na,3,x\nb,45,x\n")
    with caplog.at_level("WARNING"):
        assert read_expected(path)["level"].tolist() == ["x", "x"]
    assert "level 'x' holds tubes of 3 to 45 cells" in caplog.text


def test_a_level_column_groups_tubes_of_exact_counts():
    """Tubes counted exactly (3, 4, 6 cells) grouped by the lab's ``level`` column: one level
    with a CV and a detection limit, not three levels of one tube each."""
    expected = pd.DataFrame({"spiked": [0.0, 0.0, 3.0, 4.0, 6.0],
                             "level": ["blank", "blank", "low", "low", "low"]},
                            index=["b1", "b2", "l1", "l2", "l3"])
    called = {"b1": 0.0, "b2": 1.0, "l1": 3.0, "l2": 3.0, "l3": 6.0}
    report = spike_report(sample_rows({k: summary(v) for k, v in called.items()}, expected))
    low = report["levels"][1]
    assert (low["level"], low["samples"], low["spiked"]) == ("low", 3, pytest.approx(13 / 3))
    assert low["mean_expected_per_7_5_ml"] == pytest.approx(13 / 3)
    assert low["cv"] == pytest.approx(np.std([3, 3, 6], ddof=1) / 4)
    assert report["limit_of_detection_per_7_5_ml"]["level"] == "low"
    assert report["limit_of_detection_per_7_5_ml"]["results"] == 3


def test_evaluate_expected_scores_a_predict_output_folder(tmp_path, capsys):
    from ctcnet.cli import main

    results = tmp_path / "results"
    for name, rate in (("blank", 0.0), ("low", 4.0), ("mid", 19.0), ("high", 95.0)):
        (results / name).mkdir(parents=True)
        (results / name / "summary.json").write_text(json.dumps(
            {**summary(rate), "sample_id": name, "panel": {"pixel_size_um": 0.4897}}))
        pd.DataFrame({"event_id": [0]}).to_parquet(results / name / "events.parquet")
    (tmp_path / "expected.csv").write_text(
        "sample_id,spiked\nblank,0\nlow,5\nmid,20\nhigh,100\n")
    assert main(["evaluate", str(results), "--expected", str(tmp_path / "expected.csv"),
                 "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "linearity over 3 spiked samples" in said and "limit of blank: 0.00" in said
    table = pd.read_csv(tmp_path / "out" / "spike_in.csv").set_index("sample_id")
    assert table.loc["mid", "recovery_called"] == pytest.approx(0.95)
    # A cartridge's summary holds its scan's pixel size in its panel: the column was empty.
    assert (table["pixel_size_um"] == 0.4897).all()
    report = json.loads((tmp_path / "out" / "spike_in.json").read_text())
    assert report["linearity"]["slope"] == pytest.approx(0.95, abs=0.01)
    # The counts are predict's: a model to run is no option here.
    assert main(["evaluate", str(results), "--expected", str(tmp_path / "expected.csv"),
                 "--out", str(tmp_path / "out"), "--model", "ctcnet-default"]) == 2


def test_a_labs_own_reported_class_is_said_left_out_and_scored_with_class(tmp_path, capsys,
                                                                          caplog):
    """A lab's ctc_emt (its CK-dim CTCs) was left out of a recovery read as the CTCs', unsaid,
    with no way to score it; a class no run calls is refused."""
    from ctcnet.cli import main

    results = tmp_path / "results"
    for name, (ctc, emt) in (("blank", (0.0, 0.0)), ("low", (3.0, 2.0)),
                             ("mid", (12.0, 8.0))):
        (results / name).mkdir(parents=True)
        (results / name / "summary.json").write_text(json.dumps(
            {**summary(ctc), "per_7_5_ml": {"ctc": ctc, "ctc_emt": emt}, "sample_id": name,
             "model": {"classes": ["ctc", "ctc_emt", "wbc", "cluster", "debris"]},
             "tally": {"reported": ["ctc", "ctc_emt", "cluster"]}}))
        pd.DataFrame({"event_id": [0]}).to_parquet(results / name / "events.parquet")
    (tmp_path / "expected.csv").write_text("sample_id,spiked\nblank,0\nlow,2\nmid,8\n")
    args = ["evaluate", str(results), "--expected", str(tmp_path / "expected.csv")]
    with caplog.at_level("WARNING"):
        assert main([*args, "--out", str(tmp_path / "ctc")]) == 0
    assert "the figures count ctc alone; the runs also report ctc_emt, not in them" in \
        caplog.text
    assert main([*args, "--out", str(tmp_path / "emt"), "--class", "ctc_emt"]) == 0
    report = json.loads((tmp_path / "emt" / "spike_in.json").read_text())
    assert report["class"] == "ctc_emt"
    table = pd.read_csv(tmp_path / "emt" / "spike_in.csv").set_index("sample_id")
    assert table.loc["mid", "recovery_called"] == pytest.approx(1.0)
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "x"), "--class", "ctc_dim"]) == 2
    assert "--class ctc_dim: the runs of blank, low, mid were made by a model that calls no " \
        "ctc_dim" in capsys.readouterr().err
    # One run by a model without it was scored as a failed run, left out unsaid.
    mid = json.loads((results / "mid" / "summary.json").read_text())
    (results / "mid" / "summary.json").write_text(json.dumps(
        {**mid, "model": {"classes": ["ctc", "wbc"]}}))
    assert main([*args, "--out", str(tmp_path / "x"), "--class", "ctc_emt"]) == 2
    assert "the runs of mid were made by a model that calls no ctc_emt" in \
        capsys.readouterr().err
    assert main(["evaluate", str(results), "--class", "ctc_emt", "--out",
                 str(tmp_path / "y")]) == 2
    assert "--class names the class --expected's figures count" in capsys.readouterr().err


def test_a_class_the_model_calls_and_does_not_report_is_refused(tmp_path, capsys):
    """--class wbc (called, never counted per 7.5 mL): every sample read as a failed run
    without a rate, exit 0, where ctcnet draws refuses the class."""
    from ctcnet.cli import main

    results = tmp_path / "results"
    for name, rate in (("blank", 0.0), ("low", 3.0)):
        (results / name).mkdir(parents=True)
        (results / name / "summary.json").write_text(json.dumps(
            {**summary(rate), "per_7_5_ml": {"ctc": rate, "cluster": 0.0}, "sample_id": name,
             "model": {"classes": ["ctc", "wbc", "cluster", "debris"]}}))
        pd.DataFrame({"event_id": [0]}).to_parquet(results / name / "events.parquet")
    (tmp_path / "expected.csv").write_text("sample_id,spiked\nblank,0\nlow,2\n")
    assert main(["evaluate", str(results), "--expected", str(tmp_path / "expected.csv"),
                 "--out", str(tmp_path / "out"), "--class", "wbc"]) == 2
    assert "blank: its model reports no 'wbc' (reported: ['cluster', 'ctc'])" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_evaluate_expected_pools_a_studys_nights(tmp_path, capsys):
    """A spike-in study run over several nights, each into its own predict --out folder: the
    folder holding them is scored as one study; a tube with results in two nights is refused
    (it would count as two tubes)."""
    from ctcnet.cli import main

    study = tmp_path / "study"
    nights = {"night1": (("blank", 0.0), ("low", 4.0)), "night2": (("mid", 19.0),
                                                                    ("high", 95.0))}
    for night, samples in nights.items():
        (study / night).mkdir(parents=True)
        (study / night / "run.json").write_text("{}")
        for name, rate in samples:
            (study / night / name).mkdir()
            (study / night / name / "summary.json").write_text(json.dumps(
                {**summary(rate), "sample_id": name}))
            pd.DataFrame({"event_id": [0]}).to_parquet(study / night / name / "events.parquet")
    (tmp_path / "expected.csv").write_text(
        "sample_id,spiked\nblank,0\nlow,5\nmid,20\nhigh,100\n")
    assert main(["evaluate", str(study), "--expected", str(tmp_path / "expected.csv"),
                 "--out", str(tmp_path / "out")]) == 0
    assert "linearity over 3 spiked samples" in capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "spike_in.csv")
    assert sorted(table["sample_id"]) == ["blank", "high", "low", "mid"]
    # The same tube in two nights: refused, naming both.
    (study / "night2" / "low").mkdir()
    (study / "night2" / "low" / "summary.json").write_text(json.dumps(
        {**summary(5.0), "sample_id": "low"}))
    pd.DataFrame({"event_id": [0]}).to_parquet(study / "night2" / "low" / "events.parquet")
    assert main(["evaluate", str(study), "--expected", str(tmp_path / "expected.csv"),
                 "--out", str(tmp_path / "out2")]) == 2
    assert "sample 'low' has 2 results" in capsys.readouterr().err
    # Named as night2/low, that one is scored; night1's is said and left out.
    (tmp_path / "expected.csv").write_text(
        "sample_id,spiked\nblank,0\nnight2/low,5\nmid,20\nhigh,100\n")
    assert main(["evaluate", str(study), "--expected", str(tmp_path / "expected.csv"),
                 "--out", str(tmp_path / "out3")]) == 0
    report = json.loads((tmp_path / "out3" / "spike_in.json").read_text())
    assert report["results_not_expected"] == ["night1/low"]
    assert "pooled 2 predict output folders: night1, night2" in capsys.readouterr().out
    # Any result may be named by its folder, or by the path spike_in.csv gives it; a night
    # without it is refused naming where it is; both scans of one tube are one tube, and one
    # result named plainly and by its folder is listed twice.
    for ids, rc, said in (("night1/blank,0\nstudy/night2/low,5\nmid,20\nhigh,100", 0, ""),
                          ("blank,0\nnight3/low,5\nmid,20\nhigh,100", 2,
                           "no result of 'low' in a folder 'night3' (it has results in "
                           "night1/low, night2/low)"),
                          ("blank,0\nnight1/low,5\nnight2/low,5\nmid,20\nhigh,100", 2,
                           "name 2 of them (night1/low, night2/low): keep one line"),
                          ("blank,0\nlow,5\nnight2/low,5\nmid,20\nhigh,100", 2,
                           "list it as 'low' beside 'night2/low': keep that line alone"),
                          ("blank,0\nnight1/blank,0\nnight1/low,5\nmid,20\nhigh,100", 2,
                           "name the result 'blank' twice")):
        (tmp_path / "expected.csv").write_text("sample_id,spiked\n" + ids + "\n")
        assert main(["evaluate", str(study), "--expected", str(tmp_path / "expected.csv"),
                     "--out", str(tmp_path / "out4"), "--overwrite"]) == rc
        assert said in capsys.readouterr().err
    # Two results of one sample id in one folder (a tube re-scanned into the same --out under
    # another folder name) are told apart by their folders' names.
    (study / "night2" / "low_rescan").mkdir()
    (study / "night2" / "low_rescan" / "summary.json").write_text(json.dumps(
        {**summary(6.0), "sample_id": "low"}))
    pd.DataFrame({"event_id": [0]}).to_parquet(study / "night2" / "low_rescan" /
                                               "events.parquet")
    (tmp_path / "expected.csv").write_text(
        "sample_id,spiked\nblank,0\nnight2/low_rescan,5\nmid,20\nhigh,100\n")
    assert main(["evaluate", str(study), "--expected", str(tmp_path / "expected.csv"),
                 "--out", str(tmp_path / "out5")]) == 0
    table = pd.read_csv(tmp_path / "out5" / "spike_in.csv").set_index("sample_id")
    assert table.loc["night2/low_rescan", "called_per_7_5_ml"] == 6.0


def test_every_sample_reviewed_gives_the_figures_after_review(tmp_path, capsys):
    """Where a person reviewed every sample, the levels, line and limits are given of the
    counts after review too; one unreviewed sample leaves them out, said."""
    levels = [0, 0, 5, 5, 5, 50, 50, 50]
    called = [1, 0, 3, 4, 2, 40, 41, 39]
    after = [0, 0, 5, 4, 5, 49, 50, 48]
    expected = pd.DataFrame({"spiked": np.asarray(levels, float)},
                            index=[f"s{i}" for i in range(8)])
    rows = sample_rows({f"s{i}": summary(float(c), after=float(a))
                        for i, (c, a) in enumerate(zip(called, after))}, expected)
    report = spike_report(rows)
    reviewed = report["after_review"]
    assert reviewed["limit_of_blank_per_7_5_ml"]["value"] == 0.0
    assert reviewed["levels"][1]["mean_called_per_7_5_ml"] == pytest.approx(14 / 3)
    assert reviewed["linearity"]["slope"] > report["linearity"]["slope"]
    assert report["levels"][1]["mean_called_per_7_5_ml"] == 3.0  # the automatic ones stay
    assert report["samples_not_reviewed"] == []
    # A review is final once signed off (its signer answers for what was left undecided); a
    # sample nobody signed off is not, even with nothing flagged: its page still lists every
    # CTC and cluster call (one nobody opened read "reviewed" with its automatic count).
    waiting = {f"s{i}": summary(float(c), after=float(a))
               for i, (c, a) in enumerate(zip(called, after))}
    waiting["s2"]["signoff"] = {"status": "current", "unreviewed": 1}
    waiting["s0"] = {**summary(1.0), "review_list": {"events": 0}}  # nothing flagged
    report = spike_report(sample_rows(waiting, expected))
    assert report["after_review"] is None and report["samples_not_reviewed"] == ["s0"]
    rows = sample_rows(waiting, expected).set_index("sample_id")
    assert not rows.loc["s0", "review_complete"]
    assert np.isnan(rows.loc["s0", "after_review_per_7_5_ml"])
    assert rows.loc["s2", "review_complete"]


def test_the_limit_of_detection_is_never_under_the_counts_poisson_floor():
    """A limit of blank of 0 and a tight low level gave 1.88 per 7.5 mL, a level at which a
    7.5 mL tube holds no cell e^-1.88 = 15 % of the time: the limit is raised to the rate at
    which a tube holds more cells than a blank in 95 % of draws (3.0 cells; exact)."""
    import math

    from scipy.stats import poisson

    from ctcnet.evaluation.spike_in import poisson_floor

    lod = limit_of_detection(0.0, np.array([1.0, 2.0, 2.0, 3.0]))
    assert lod["parametric"] < 3.0 and lod["value"] == pytest.approx(lod["poisson_floor"])
    assert poisson.cdf(0, lod["value"]) == pytest.approx(0.05)
    assert "Poisson floor" in lod["method"]
    # A blank may read one cell (a limit of blank of 1 per 7.5 mL): P(X <= 1) = 0.05.
    assert poisson.cdf(1, poisson_floor(1.0)) == pytest.approx(0.05)
    # Tubes of 6 mL: the same cells are a higher rate per 7.5 mL.
    assert poisson_floor(0.0, 6.0) == pytest.approx(-math.log(0.05) * 7.5 / 6.0)
    # Where the parametric figure is above the floor, it stands.
    wide = limit_of_detection(1.0, np.array([3.0, 5.0, 7.0]))
    assert wide["value"] == pytest.approx(wide["parametric"]) and "floor" not in wide["method"]


def test_each_level_gives_its_pooled_recovery_the_tubes_out_of_line_and_the_blanks():
    """Per level the cells found over spiked with the exact interval; a tube of another level
    labelled as this one is named; the blanks that carried calls are named with their cells."""
    levels = [0, 0, 5, 5, 50, 50]
    called = [0, 2, 4, 3, 44, 16]  # the last: a tube of 20 labelled 50
    expected = pd.DataFrame({"spiked": np.asarray(levels, float)},
                            index=[f"s{i}" for i in range(6)])
    report = spike_report(sample_rows({f"s{i}": summary(float(c))
                                       for i, c in enumerate(called)}, expected))
    five = report["levels"][1]
    assert (five["cells_found"], five["cells_spiked"]) == (7, 10.0)
    assert five["recovery"] == pytest.approx(0.7) and five["recovery_ci95"] == [0.28, 1.45]
    assert report["levels"][0]["recovery"] is None  # the blanks recover nothing
    (suspect,) = report["suspect_tubes"]
    assert suspect["samples"] == ["s4", "s5"] and suspect["level"] == "50"
    assert report["limit_of_blank_per_7_5_ml"]["blanks_with_calls"] == [
        {"sample_id": "s1", "cells_called": 2, "called_per_7_5_ml": 2.0}]
    assert "Garwood" in report["recovery_method"]


def test_a_spiked_tube_with_no_cell_found_is_named_where_no_test_would_flag_it(
        tmp_path, capsys):
    """Tubes of 5 cells finding 4, 5 and 0: the empty one is no outlier past p 0.01 (a
    binomial p about 0.03), yet a spike that did not happen reads so: named as a fact."""
    from ctcnet.cli import main

    rates = {"b1": 0.0, "l1": 4.0, "l2": 5.0, "l3": 0.0, "h1": 1000.0}
    write_results(tmp_path / "results", rates)
    (tmp_path / "expected.csv").write_text(
        "sample_id,spiked\nb1,0\nl1,5\nl2,5\nl3,5\nh1,1000\n")
    assert main(["evaluate", str(tmp_path / "results"), "--expected",
                 str(tmp_path / "expected.csv"), "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "CHECK THE LABEL" not in said
    assert ("spiked tubes with no CTC found: l3 (level 5, 5 cells spiked); a spike that did "
            "not happen, or a blank labelled as spiked?") in said
    # Cells spiked print as counted, a thousand as 1000.
    assert any(line.split()[:2] == ["1000", "1000"] for line in said.splitlines())
    report = json.loads((tmp_path / "out" / "spike_in.json").read_text())
    five = next(level for level in report["levels"] if level["level"] == "5")
    assert five["spiked_without_calls"] == [{"sample_id": "l3", "cells_spiked": 5.0}]
    assert all(not level["spiked_without_calls"] for level in report["levels"]
               if level["level"] != "5")  # nor a blank's 0, which is what a blank should find


def test_the_limit_of_detection_says_only_what_it_lacks():
    """Two results at the lowest level and no blank: it lacks the blank alone; a level
    holding a tube out of line is named before a higher level is advised."""
    assert limit_of_detection(None, np.array([3.0, 4.0]))["method"] == (
        "needs a limit of blank (no blank, spiked 0, among the samples)")
    assert limit_of_detection(0.0, np.array([3.0]))["method"].startswith(
        "needs 2 or more results at the lowest spiked level, which has 1")
    both = limit_of_detection(None, np.array([3.0]))["method"]
    assert "limit of blank" in both and "which has 1" in both
    under = limit_of_detection(3.0, np.array([3.0, 16.0]), suspect=["L20a"])
    assert "check the label of L20a" in under["warning"]
    assert "spike a higher low level" in limit_of_detection(3.0, np.array([3.0, 16.0]))[
        "warning"]


def write_results(results, rates: dict, after: bool = False) -> None:
    """A predict output folder of one summary.json per sample (rates per 7.5 mL)."""
    for name, rate in rates.items():
        (results / name).mkdir(parents=True)
        (results / name / "summary.json").write_text(json.dumps(
            {**summary(rate, after=rate if after else None), "sample_id": name}))
        pd.DataFrame({"event_id": [0]}).to_parquet(results / name / "events.parquet")


def test_evaluate_expected_says_the_intervals_the_suspect_tubes_and_its_provenance(
        tmp_path, capsys):
    from ctcnet.cli import main

    rates = {"b1": 0.0, "b2": 2.0, "l1": 4.0, "l2": 3.0, "h1": 44.0, "h2": 16.0}
    write_results(tmp_path / "results", rates)
    (tmp_path / "expected.csv").write_text(
        "sample_id,spiked,level\nb1,0,blank\nb2,0,blank\nl1,5,low\nl2,5,low\nh1,50,high\n"
        "h2,50,high\n")
    assert main(["evaluate", str(tmp_path / "results"), "--expected",
                 str(tmp_path / "expected.csv"), "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "recovery (95 % CI)" in said and "70% (28-145%)" in said
    assert "CHECK THE LABELS of h1 (88%) and h2 (32%), level high" in said
    assert "blanks with calls: b2 2 CTCs (2.00 per 7.5 mL)" in said
    # The tubes were counted (a level column): the Poisson CV is what pipetting would add.
    assert "Poisson CV: what pipetting the spike alone would have added" in said
    table = pd.read_csv(tmp_path / "out" / "spike_in.csv").set_index("sample_id")
    assert table.loc["l1", "cells_called"] == 4
    assert table.loc["l1", "level_recovery_called"] == pytest.approx(0.7)
    assert (table.loc["l1", "level_recovery_called_low"],
            table.loc["l1", "level_recovery_called_high"]) == (0.28, 1.45)
    assert table.loc["l1", "recovery_called_low"] < 0.8 < table.loc["l1", "recovery_called_high"]
    assert np.isnan(table.loc["l1", "level_recovery_after_review"])  # nobody reviewed
    report = json.loads((tmp_path / "out" / "spike_in.json").read_text())
    from ctcnet.io.digests import file_sha256

    assert report["expected_sha256"] == file_sha256(tmp_path / "expected.csv")
    assert report["written_at"].endswith("+00:00") and report["software"]["ctcnet"]
    assert report["level_column"] is True


def test_docs_outputs_names_every_field_of_spike_in_and_comparison(tmp_path, monkeypatch):
    """docs/outputs.md's tables of spike_in.json, spike_in.csv and comparison.json against
    what a spike-in (every sample reviewed, a tube out of line) and a method comparison
    write: every field written has its row, and every row is written or marked "(only".."""
    from ctcnet.cli import main
    from tests.test_outputs_doc import doc_tables

    # (summaries written here, without the record a sign-off is checked against: theirs
    # are taken as holding)
    monkeypatch.setattr("ctcnet.commands.draws.signoff_holds_now",
                        lambda folder, edited=None: True)
    rates = {"b1": 0.0, "b2": 1.0, "l1": 4.0, "l2": 3.0, "h1": 44.0, "h2": 16.0}
    write_results(tmp_path / "results", rates, after=True)
    (tmp_path / "expected.csv").write_text(
        "sample_id,spiked\nb1,0\nb2,0\nl1,5\nl2,5\nh1,50\nh2,50\n")
    (tmp_path / "reference.csv").write_text(
        "sample_id,reference_per_7_5_ml\n" + "".join(f"{k},{v + 1}\n" for k, v in rates.items()))
    for expected, out in (("expected.csv", "spike"), ("reference.csv", "comparison")):
        assert main(["evaluate", str(tmp_path / "results"), "--expected",
                     str(tmp_path / expected), "--out", str(tmp_path / out)]) == 0
    spike = json.loads((tmp_path / "spike" / "spike_in.json").read_text())
    comparison = json.loads((tmp_path / "comparison" / "comparison.json").read_text())
    assert spike["after_review"] and spike["suspect_tubes"]
    written = {
        "spike_in.json: top level": set(spike),
        "spike_in.json: each entry of levels": {k for lv in spike["levels"] for k in lv},
        "spike_in.json: linearity": set(spike["linearity"]),
        "spike_in.json: limit_of_blank_per_7_5_ml": set(spike["limit_of_blank_per_7_5_ml"]),
        "spike_in.json: limit_of_detection_per_7_5_ml":
            set(spike["limit_of_detection_per_7_5_ml"]),
        "spike_in.json: each entry of suspect_tubes": {k for t in spike["suspect_tubes"]
                                                       for k in t},
        "spike_in.csv": set(pd.read_csv(tmp_path / "spike" / "spike_in.csv").columns),
        "comparison.json: top level": set(comparison),
        "comparison.csv": {_as_documented(c) for c in pd.read_csv(
            tmp_path / "comparison" / "comparison.csv").columns},
        "comparison.json: bland_altman": set(comparison["bland_altman"]),
        "comparison.json: passing_bablok": set(comparison["passing_bablok"]),
        "comparison.json: each entry of at_cutoffs": {k for c in comparison["at_cutoffs"]
                                                      for k in c}}
    tables = doc_tables()
    for heading, fields in written.items():
        rows = tables[heading]
        named = {n for row, _ in rows for n in row}
        assert fields <= named, f"{heading}: not in docs/outputs.md: {fields - named}"
        stale = {n for row, conditional in rows if not conditional for n in row} - fields
        assert not stale, f"{heading}: in docs/outputs.md, never written: {stale}"


def _as_documented(column: str) -> str:
    """A comparison.csv column as docs/outputs.md names it: a cut-off's as ``<c>``."""
    import re

    return re.sub(r"_at_or_over_[0-9_]+$", "_at_or_over_<c>", column)


def test_runs_under_other_settings_or_an_assumed_volume_are_said_and_json_keeps_provenance(
        tmp_path, capsys, caplog):
    """Nights run under another prior were pooled without a word; a tube whose volume was
    assumed went unsaid, though its rates per 7.5 mL rest on it; --json left out which
    expected counts were scored; a tube named NA read as no id."""
    import logging

    from ctcnet.cli import main

    rates = {"b1": 0.0, "NA": 1.0, "l1": 4.0, "l2": 3.0}
    results = tmp_path / "results"
    for name, rate in rates.items():
        (results / name).mkdir(parents=True)
        prior = "cartridge" if name in ("b1", "l1") else "balanced"
        (results / name / "summary.json").write_text(json.dumps(
            {**summary(rate), "sample_id": name, "blood_volume_stated": name != "l2",
             # (each sample's own input and panel, as every run's: no setting)
             "run_fingerprint": {"model_sha256": "ab", "decision": {"prior": prior},
                                 "input": f"/scans/{name}", "table_columns": [name]}}))
        pd.DataFrame({"event_id": [0]}).to_parquet(results / name / "events.parquet")
    (tmp_path / "expected.csv").write_text("sample_id,spiked\nb1,0\nNA,0\nl1,5\nl2,5\n")
    assert read_expected(tmp_path / "expected.csv").index.tolist() == ["b1", "NA", "l1", "l2"]
    with caplog.at_level(logging.WARNING):
        assert main(["evaluate", str(results), "--expected", str(tmp_path / "expected.csv"),
                     "--out", str(tmp_path / "out")]) == 0
    assert "more than one setting of the run" in caplog.text
    assert "the runs' settings differ in: decision (prior: \"balanced\" in " in caplog.text
    assert "(2 different: " in caplog.text  # two settings, not one a sample
    assert "l2: cartridge.json stated no blood volume, 7.5 mL assumed" in caplog.text
    report = json.loads((tmp_path / "out" / "spike_in.json").read_text())
    assert report["blood_volume_assumed"] == ["l2"]
    table = pd.read_csv(tmp_path / "out" / "spike_in.csv", keep_default_na=False)
    assert table["settings"].nunique() == 2
    assert table.set_index("sample_id")["blood_volume_stated"].to_dict()["l2"] in (False,
                                                                                   "False")
    capsys.readouterr()
    assert main(["evaluate", str(results), "--expected", str(tmp_path / "expected.csv"),
                 "--out", str(tmp_path / "out"), "--overwrite", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["expected_sha256"] == report["expected_sha256"] and printed["results"]
    # Two spiked tubes at one level: no line, said (nothing was printed).
    assert main(["evaluate", str(results), "--expected", str(tmp_path / "expected.csv"),
                 "--out", str(tmp_path / "out"), "--overwrite"]) == 0
    assert "linearity: none (it needs 3 or more spiked tubes of 2 or more expected rates)" \
        in capsys.readouterr().out


def test_a_line_of_calls_all_alike_prints_no_nan():
    from ctcnet.commands.spike_in_console import shown
    from ctcnet.evaluation.spike_in import linearity

    line = linearity(np.array([5.0, 5.0, 50.0, 50.0]), np.zeros(4))
    assert np.isnan(line["r2"]) and shown(line["r2"], ".3f") == "-"


def test_one_scan_under_two_sample_ids_is_no_two_tubes():
    """The same frames run under two sample ids were scored as two replicate tubes: a CV of
    0, the same cells counted twice in the pooled recovery. Refused, naming both."""
    expected = pd.DataFrame({"spiked": [0.0, 5.0, 5.0]}, index=["b", "l1", "l1b"])
    summaries = {name: {**summary(rate), "cartridge_id": scan}
                 for name, rate, scan in (("b", 0.0, "c0"), ("l1", 4.0, "c1"),
                                          ("l1b", 4.0, "c1"))}
    with pytest.raises(InputError, match=r"samples l1 and l1b are one scan \(cartridge_id c1"):
        sample_rows(summaries, expected)
    summaries["l1b"]["cartridge_id"] = "c2"
    assert len(sample_rows(summaries, expected)) == 3


def test_a_figure_after_review_is_given_only_for_a_final_review():
    """A sample reviewed but not signed off (or its sign-off gone stale) had its figure
    after review filled in beside review_complete False, read by a LIMS as final."""
    expected = pd.DataFrame({"spiked": [5.0, 5.0]}, index=["a", "b"])
    stale = summary(4.0, after=3.0)
    stale["signoff"] = {"status": "changed since"}
    rows = sample_rows({"a": stale, "b": summary(4.0, after=3.0)}, expected)
    rows = rows.set_index("sample_id")
    assert not rows.loc["a", "review_complete"] and np.isnan(rows.loc["a",
                                                                      "after_review_per_7_5_ml"])
    assert rows.loc["b", "after_review_per_7_5_ml"] == 3.0


def test_samples_with_decisions_not_signed_off_are_named(capsys):
    """A review under way (decisions, no sign-off) read as none: the figures were the
    automatic counts and nothing on the console said a decision was left out of them."""
    from ctcnet.commands.evaluate_spikes import _say_left_out

    expected = pd.DataFrame({"spiked": [5.0, 5.0, 5.0]}, index=["a", "b", "c"])
    under_way = summary(4.0, after=3.0)
    under_way["signoff"] = None
    unopened = summary(4.0)
    unopened["signoff"], unopened["reviewed"] = None, {"reviewed": 0}
    rows = sample_rows({"a": under_way, "b": summary(4.0, after=3.0), "c": unopened},
                       expected)
    assert rows.set_index("sample_id")["review_decisions"].gt(0).tolist() == [True, True, False]
    report = spike_report(rows)
    assert report["samples_decided_not_final"] == ["a"]
    _say_left_out({**report, "results_not_expected": []})
    assert "1 sample(s) hold review decisions not signed off" in capsys.readouterr().out


def test_the_poisson_floor_is_that_of_the_least_favourable_tube():
    """Tubes of 7.5 and 6 mL at the lowest level: the floor of a median 6.75 mL tube (3.33)
    lay under both tubes' own (4.74, 3.74); the limit is the highest of the tubes'."""
    from ctcnet.evaluation.spike_in import poisson_floor

    lod = limit_of_detection(1.0, np.array([4.0, 5.0]), [7.5, 6.0])
    assert lod["poisson_floor"] == pytest.approx(max(poisson_floor(1.0, 7.5),
                                                     poisson_floor(1.0, 6.0)))
    assert lod["poisson_floor"] == pytest.approx(4.74, abs=0.01)


def test_nothing_signed_off_says_the_figures_are_the_automatic_counts(capsys):
    """None of the samples signed off: the console said nothing of the review, where the docs
    say the figures are then the automatic counts."""
    from ctcnet.commands.evaluate_spikes import _say_left_out

    expected = pd.DataFrame({"spiked": [5.0, 5.0]}, index=["a", "b"])
    unopened = {s: {**summary(4.0), "signoff": None} for s in ("a", "b")}
    report = spike_report(sample_rows(unopened, expected))
    _say_left_out({**report, "results_not_expected": []})
    assert "none of the 2 samples is signed off: the figures are the automatic counts" in \
        capsys.readouterr().out


def test_a_limit_is_said_rounded_up_and_its_advice_knows_a_level_column(capsys):
    """A limit of detection of 2.9957 per 7.5 mL printed 2.99 beside "raised to the Poisson
    floor (3.00)": a rate is cut so as not to reach a cut-off, a limit is never said under
    itself. And one result at the lowest level asked for a level column already given."""
    from ctcnet.commands.spike_in_console import limit_shown
    from ctcnet.evaluation.spike_in import limit_text

    floor = poisson_floor(0.0)
    assert floor == pytest.approx(2.9957, abs=1e-4)
    assert limit_text(floor) == limit_shown(floor) == "3.00" and limit_text(0.0) == "0.00"
    assert limit_text(1.5) == "1.50" and limit_shown(None) == "-"
    assert limit_text(2.2) == "2.20" and limit_text(1.1) == "1.10"  # (not 2.21: binary)
    lod = limit_of_detection(0.0, np.array([2.0, 2.5]))
    assert lod["value"] == pytest.approx(floor) and "floor of the counts (3.00:" in lod["method"]
    assert "group them with a level column" in limit_of_detection(0.0, np.ones(1))["method"]
    given = limit_of_detection(0.0, np.ones(1), levels_given=True)["method"]
    assert "spike another tube at that level" in given and "level column" not in given
    expected = pd.DataFrame({"spiked": [0.0, 0.0, 1.0, 2.0], "level": ["0", "0", "1", "2"]},
                            index=["b1", "b2", "one", "two"])
    rows = sample_rows({s: summary(c) for s, c in zip(expected.index, [0, 0, 1, 2])},
                       expected)
    method = spike_report(rows, level_column=True)["limit_of_detection_per_7_5_ml"]["method"]
    assert "spike another tube at that level" in method, method


def test_two_scanners_pooled_are_said_by_pixel_size_and_range_of_counts():
    """A 16-bit site and a 12-bit site at one pixel size: the study's figures pooled them,
    unsaid (the table's pixel_size_um alike)."""
    def site(rate, top):
        channels = [{"name": c, "value_range": [0.0, top]} for c in ("DAPI", "CK", "CD45")]
        return {**summary(rate), "panel": {"pixel_size_um": 0.64, "channels": channels}}

    expected = pd.DataFrame({"spiked": [5.0, 5.0, 5.0]}, index=["a1", "a2", "b1"])
    rows = sample_rows({"a1": site(4.0, 65535.0), "a2": site(5.0, 65535.0),
                        "b1": site(4.0, 4095.0)}, expected)
    assert rows["scanner"].tolist() == ["0.64 um/px, 0-65535"] * 2 + ["0.64 um/px, 0-4095"]
    assert spike_report(rows)["made_by_several"] == [
        "scanner (pixel size, range of counts) (2 different: 0.64 um/px, 0-65535: a1, a2; "
        "0.64 um/px, 0-4095: b1)"]
    alike = sample_rows({"a1": site(4.0, 65535.0), "a2": site(5.0, 65535.0)},
                        expected.loc[["a1", "a2"]])
    assert spike_report(alike)["made_by_several"] == []



def test_the_floor_and_the_poisson_cv_are_those_of_the_blood_read():
    """The lowest level's tubes read in half (3.75 of 7.5 mL): their cells lie in the blood
    read, so the floor is a 3.75 mL tube's (5.99 per 7.5 mL, not 3.00: at 3.00 a half-read tube
    held no cell 22 % of the time), and the level's Poisson CV that of the 2.5 cells read."""
    blanks = {f"b{i}": summary(0.0) for i in range(3)}
    low = {f"l{j}": {**summary(c * 2.0), "blood_volume_processed_ml": 3.75,
                     "status": "partial"} for j, c in enumerate((3, 2, 3, 2, 3))}
    expected = pd.DataFrame({"spiked": [0.0] * 3 + [5.0] * 5}, index=[*blanks, *low])
    report = spike_report(sample_rows({**blanks, **low}, expected))
    lod = report["limit_of_detection_per_7_5_ml"]
    assert lod["poisson_floor"] == pytest.approx(poisson_floor(0.0, 3.75))
    assert lod["value"] >= poisson_floor(0.0, 3.75) == pytest.approx(5.99, abs=0.01)
    level = next(lv for lv in report["levels"] if lv["spiked"] > 0)
    assert level["poisson_cv"] == pytest.approx(1 / math.sqrt(2.5))
