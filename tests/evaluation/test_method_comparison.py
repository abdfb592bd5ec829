"""ctcnet.evaluation.method_comparison and ``ctcnet evaluate RESULTS --expected`` with another
method's rates: a lab validating its counts against CellSearch's on the same tubes."""

import json

import numpy as np
import pandas as pd
import pytest

from ctcnet.errors import InputError
from ctcnet.evaluation.expected_file import read_expected
from ctcnet.evaluation.method_comparison import (
    comparison_csv,
    comparison_report,
    passing_bablok,
)
from ctcnet.evaluation.spike_in import sample_rows


def summary(rate: float, volume: float = 7.5, status: str = "ok") -> dict:
    return {"blood_volume_ml": volume, "per_7_5_ml": {"ctc": rate}, "status": status}


def test_a_reference_is_taken_per_7_5_ml_as_stated_never_rescaled_by_a_volume(tmp_path):
    """A CellSearch 7 on a 5 mL tube is 7 per 7.5 mL already (a spike-in's 7 cells in 5 mL
    would be 10.5)."""
    path = tmp_path / "reference.csv"
    path.write_text("sample_id,reference_per_7_5_ml\nA,7\nB,0\n")
    expected = read_expected(path)
    rows = sample_rows({"A": summary(9.0, volume=5.0), "B": summary(0.0)}, expected)
    assert rows.set_index("sample_id").loc["A", "expected_per_7_5_ml"] == 7.0
    # A consortium's sites pooled: each row says its scan's scale and crowding.
    rows = sample_rows({"A": {**summary(9.0), "pixel_size_um": 0.45, "events_per_mm2": 1032.1},
                        "B": summary(0.0)}, expected).set_index("sample_id")
    assert (rows.loc["A", "pixel_size_um"], rows.loc["A", "events_per_mm2"]) == (0.45, 1032.1)
    assert np.isnan(rows.loc["B", "pixel_size_um"])
    for text, said in (("sample_id,spiked,reference_per_7_5_ml\nA,1,1\n", "or sample_id,"),
                       ("sample_id,reference_per_7_5_ml\nA,-1\n", "a reference rate"),
                       ("sample_id,reference_per_7_5_ml,level\nA,1,x\n", "level groups")):
        path.write_text(text)
        with pytest.raises(InputError, match=said):
            read_expected(path)


def test_one_cell_of_a_partial_scan_is_within_the_tolerance():
    """Another model on the same partial scan (6 mL read) counts one CTC more: 5.00 against
    3.75 per 7.5 mL, a difference of 1.25 that is one cell, within max(1, 15 %)."""
    expected = pd.DataFrame({"reference": [3.75, 3.75]}, index=["p", "q"])
    summaries = {k: {**summary(5.0), "blood_volume_processed_ml": 6.0} for k in ("p", "q")}
    summaries["q"]["per_7_5_ml"] = {"ctc": 6.25}  # two cells more: outside
    report = comparison_report(sample_rows(summaries, expected), (5,))
    assert report["within_tolerance"]["n"] == 1 and report["within_tolerance"]["outside"] == \
        ["q"]
    assert "one cell of the blood read" in report["tolerance"]


def test_bias_limits_and_each_cutoffs_agreement_name_the_samples_on_opposite_sides():
    reference = {"a": 0.0, "b": 2.0, "c": 4.0, "d": 5.0, "e": 12.0, "f": 30.0}
    called = {"a": 0.0, "b": 2.0, "c": 5.0, "d": 4.0, "e": 12.0, "f": 26.0}
    expected = pd.DataFrame({"reference": list(reference.values())}, index=list(reference))
    rows = sample_rows({k: summary(v) for k, v in called.items()}, expected)
    report = comparison_report(rows, (3, 5))
    ba = report["bland_altman"]
    assert ba["bias"] == pytest.approx(-4 / 6) and ba["lower"] < ba["bias"] < ba["upper"]
    # f: 26 against 30 is within 15 %; nothing else is off by more than 1.
    assert report["within_tolerance"]["n"] == 6 and report["within_tolerance"]["outside"] == []
    three, five = report["at_cutoffs"]
    assert (three["agree"], three["positive_agreement"], three["negative_agreement"]) == \
        (6, 1.0, 1.0)
    # c reads over 5, d under it: one each way, both named with both rates.
    assert five["agree"] == 4 and five["positive_agreement"] == pytest.approx(2 / 3)
    assert five["negative_agreement"] == pytest.approx(2 / 3)
    assert [d["sample_id"] for d in five["discordant"]] == ["c", "d"]
    assert five["discordant"][1] == {"sample_id": "d", "reference_per_7_5_ml": 5.0,
                                     "called_per_7_5_ml": 4.0}
    assert report["after_review"] is None  # no sample's review is final
    low, high = ba["bias_ci95"]
    assert low < ba["bias"] < high and ba["lower_ci95"][0] < ba["lower"] < ba["lower_ci95"][1]
    assert report["passing_bablok"]["n"] == 6
    table = pd.read_csv(__import__("io").StringIO(comparison_csv(rows, (3, 5))))
    row = table.set_index("sample_id").loc["d"]
    assert row["difference_per_7_5_ml"] == -1.0 and not row["called_at_or_over_5"]
    assert row["reference_at_or_over_5"] and "spiked" not in table


def test_evaluate_expected_with_a_reference_compares_the_methods(tmp_path, capsys,
                                                                monkeypatch):
    from ctcnet.cli import main

    # (summaries written here, without the record a sign-off is checked against: theirs
    # are taken as holding)
    monkeypatch.setattr("ctcnet.commands.draws.signoff_holds_now",
                        lambda folder, edited=None: True)

    results = tmp_path / "results"
    for name, rate, status in (("P1", 0.0, "ok"), ("P2", 4.0, "ok"), ("P3", 8.0, "partial"),
                               ("P4", 6.0, "ok"), ("P5", None, "failed")):
        (results / name).mkdir(parents=True)
        (results / name / "summary.json").write_text(json.dumps(
            {**summary(rate, status=status), "sample_id": name,
             "review_list": {"events": 0}}))
        pd.DataFrame({"event_id": [0]}).to_parquet(results / name / "events.parquet")
    reference = tmp_path / "cellsearch.csv"
    # (a spreadsheet's blank row under the table is no tube)
    reference.write_text("sample_id,reference_per_7_5_ml\nP1,0\nP2,5\nP3,6\nP4,6\nP5,2\n,\n")
    out = tmp_path / "out"
    assert main(["evaluate", str(results), "--expected", str(reference), "--out", str(out),
                 "--cutoffs", "3,5"]) == 0
    said = capsys.readouterr().out
    assert "at >= 5: agree 3/4" in said and "P2 (reference 5.00, ctcnet 4.00)" in said
    assert "P3: " in said  # a partial sample is named, scored as it stands
    assert "left out of every figure, no rate (their runs failed" in said and "P5" in said
    report = json.loads((out / "comparison.json").read_text())
    assert report["cutoffs"] == [3.0, 5.0] and report["partial_samples"] == 1
    assert len(report["reference_sha256"]) == 64 and report["software"]["code_sha256"]
    # Nothing flagged, but nobody signed any off: no figure after review (a sample nobody
    # opened is preliminary); a failed run has no count to review.
    assert report["after_review"] is None and report["samples_not_reviewed"] == [
        "P1", "P2", "P3", "P4"]
    assert report["samples_without_rate"] == ["P5"]
    table = pd.read_csv(out / "comparison.csv").set_index("sample_id")
    assert list(table.index) == ["P1", "P2", "P3", "P4", "P5"]
    assert np.isnan(table.loc["P2", "difference_after_review_per_7_5_ml"])
    assert not table.loc["P5", "review_complete"]
    # Signed off: its figure after review is the signed one, in the table beside the rest.
    signed = json.loads((results / "P2" / "summary.json").read_text())
    signed.update(signoff={"status": "current", "reviewer": "ann"},
                  reviewed={"reviewed": 1, "after_review_per_7_5_ml": {"ctc": 5.0}})
    (results / "P2" / "summary.json").write_text(json.dumps(signed))
    assert main(["evaluate", str(results), "--expected", str(reference), "--out", str(out),
                 "--cutoffs", "3,5"]) == 2  # the earlier comparison is not replaced unasked
    assert main(["evaluate", str(results), "--expected", str(reference), "--out", str(out),
                 "--cutoffs", "3,5", "--overwrite"]) == 0
    table = pd.read_csv(out / "comparison.csv").set_index("sample_id")
    assert table.loc["P2", "difference_after_review_per_7_5_ml"] == 0.0
    assert table.loc["P2", "after_review_at_or_over_5"] and table.loc["P2", "review_complete"]
    # A spike-in has no cut-offs; cut-offs are CTCs per 7.5 mL above 0.
    spiked = tmp_path / "spiked.csv"
    spiked.write_text("sample_id,spiked\nP1,0\n")
    assert main(["evaluate", str(results), "--expected", str(spiked), "--out", str(out),
                 "--cutoffs", "5"]) == 2
    with pytest.raises(SystemExit):
        main(["evaluate", str(results), "--expected", str(reference), "--out", str(out),
              "--cutoffs", "0,5"])


def test_the_console_says_a_rate_as_every_output_does(tmp_path, capsys):
    # 5 CTCs in 7.503 mL: 4.998 per 7.5 mL reads 4.99, under the cut-off of 5 it is counted
    # under (it read 5.00 against a reference of 5.00, "on opposite sides").
    from ctcnet.cli import main

    results = tmp_path / "results"
    for name, rate in (("P1", 5 * 7.5 / 7.503), ("P2", 8.0)):
        (results / name).mkdir(parents=True)
        (results / name / "summary.json").write_text(json.dumps(
            {**summary(rate, volume=7.503), "sample_id": name, "review_list": {"events": 0}}))
        pd.DataFrame({"event_id": [0]}).to_parquet(results / name / "events.parquet")
    reference = tmp_path / "cellsearch.csv"
    reference.write_text("sample_id,reference_per_7_5_ml\nP1,5\nP2,8\n")
    assert main(["evaluate", str(results), "--expected", str(reference), "--out",
                 str(tmp_path / "out"), "--cutoffs", "5"]) == 0
    said = capsys.readouterr().out
    assert "P1 (reference 5.00, ctcnet 4.99)" in said
    assert any(line.split()[:3] == ["P1", "5.00", "4.99"] for line in said.splitlines())


def test_the_passing_bablok_line_finds_a_factor_and_an_offset_and_holds_ties():
    """y = 2x + 1 exactly: slope 2, intercept 1. Counts tie often (many tubes at 0): equal
    points are left out, equal x with other y are infinite slopes, and the line still reads
    1 and 0 where the methods agree but for noise."""
    x = np.arange(1.0, 21.0)
    line = passing_bablok(x, 2 * x + 1)
    assert (line["slope"], line["intercept"]) == (2.0, 1.0)
    assert line["slope_ci95"] == [2.0, 2.0]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 12, 60).astype(float)
    line = passing_bablok(x, x + rng.integers(-1, 2, 60))
    assert line["slope_ci95"][0] <= 1.0 <= line["slope_ci95"][1]
    assert line["intercept_ci95"][0] <= 0.0 <= line["intercept_ci95"][1]
    few = passing_bablok([1.0, 2.0], [1.0, 2.0])  # under 3 samples: said why
    assert few["slope"] is None and few["note"].startswith("no line: 2 sample(s)")
    # Up to 4 samples the interval would run past the slopes there are: none is given (the
    # range of the slopes read as a narrow 95 % interval that excluded 1).
    few = passing_bablok([1.0, 4.0, 8.0], [1.0, 5.0, 9.0])
    assert few["slope_ci95"] is None and few["intercept_ci95"] is None and few["slope"] > 1
    # Under EP09's 40 samples the line says its interval is of few; at 60 it does not.
    assert few["note"] == "3 samples: too few for an interval (CLSI EP09 asks 40 or more)"
    assert "note" not in line
    assert "intervals of so few are wide" in passing_bablok(x[:12], x[:12] + 1)["note"]
    # Three samples at one pair of rates: no two slopes; said (it was null, and the
    # console said nothing of the missing line).
    same = passing_bablok([2.0] * 3, [3.0] * 3)
    assert same["slope"] is None and "fewer than two distinct slopes" in same["note"]


def test_a_reference_of_blanks_alone_gives_no_line_and_the_report_stays_json():
    """Every reference rate 0 (a panel of healthy donors): no slope (it would be infinite),
    said, and comparison.json is JSON a strict reader (a LIMS, JavaScript) takes."""
    import json

    line = passing_bablok([0.0] * 6, [0.0, 1.0, 0.0, 2.0, 0.0, 1.0])
    assert line["slope"] is None and "do not spread" in line["note"]
    json.dumps(line, allow_nan=False)


def test_a_reference_per_ml_is_doubted_and_one_of_counts_is_not(tmp_path, caplog):
    """Reviewer counts divided by 7.5 (per mL) read as a slope of 7.5 with exit 0: on tubes
    read whole, rates per 7.5 mL are whole counts, so most of them not whole is said."""
    from ctcnet.evaluation.method_comparison import units_in_doubt

    called = {"A": 4.0, "B": 11.0, "C": 2.0, "D": 0.0, "E": 23.0}
    per_ml = tmp_path / "per_ml.csv"
    per_ml.write_text("sample_id,reference_per_7_5_ml\n"
                      + "".join(f"{k},{v / 7.5:.4f}\n" for k, v in called.items()))
    counts = tmp_path / "counts.csv"
    counts.write_text("sample_id,reference_per_7_5_ml\n"
                      + "".join(f"{k},{v:g}\n" for k, v in called.items()))
    summaries = {k: {**summary(v), "blood_volume_processed_ml": 7.5} for k, v in called.items()}
    doubt = units_in_doubt(sample_rows(summaries, read_expected(per_ml)))
    assert doubt.startswith("4 of 4 reference rates on tubes read whole are not whole counts")
    assert "per mL" in doubt and "a median 7.50x the reference's" in doubt
    report = comparison_report(sample_rows(summaries, read_expected(counts)))
    assert report["reference_units_in_doubt"] is None


def test_a_reference_of_two_models_or_the_results_themselves_is_warned_of(tmp_path, caplog):
    from ctcnet.commands.evaluate_spikes import _warn_comparison

    two = {"reference_models": [{"path": "/m/ctcnet-default.onnx", "sha256": "aa" * 32},
                                {"path": "/m/ctcnet-core3.onnx", "sha256": "bb" * 32}]}
    with caplog.at_level("WARNING"):
        _warn_comparison(two, tmp_path / "ref", tmp_path / "results")
        _warn_comparison({}, tmp_path / "results", tmp_path / "results")
    said = caplog.text
    assert "the reference's counts were made by more than one model (ctcnet-default.onnx " \
        "(aaaaaaaaaaaa); ctcnet-core3.onnx (bbbbbbbbbbbb))" in said
    assert "the reference is the results folder itself" in said
    caplog.clear()
    with caplog.at_level("WARNING"):
        _warn_comparison({"reference_models": two["reference_models"][:1]}, tmp_path / "ref",
                         tmp_path / "results")
    assert caplog.text == ""



def test_a_reference_per_ml_in_whole_numbers_is_doubted_by_the_ratio():
    """Per mL rounded to whole numbers passes the whole-count test: ctcnet then reads about
    7x the reference, which is said; a method close to the reference is not."""
    from ctcnet.evaluation.method_comparison import units_in_doubt

    called = {"A": 8.0, "B": 15.0, "C": 22.0, "D": 45.0, "E": 0.0}
    summaries = {k: {**summary(v), "blood_volume_processed_ml": 7.5} for k, v in called.items()}
    per_ml = pd.DataFrame({"reference": [1.0, 2.0, 3.0, 6.0, 0.0]},
                          index=pd.Index(list(called), name="sample_id"))
    said = units_in_doubt(sample_rows(summaries, per_ml))
    assert said.startswith("ctcnet's rates are a median 7.50x the reference's") and "per mL" in said
    close = per_ml.assign(reference=[7.0, 16.0, 20.0, 44.0, 0.0])
    assert units_in_doubt(sample_rows(summaries, close)) is None
