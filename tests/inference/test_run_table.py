"""samples.csv keeps its columns from night to night, whatever the samples had to say."""

import csv
import io
from pathlib import Path

from ctcnet.inference.run_table import samples_csv

CLEAN = {"name": "S1", "result_state": "preliminary", "status": "ok", "events": 900,
         "counts": {"ctc": 3, "wbc": 500, "cluster": 0, "debris": 397},
         "held": {"ctc": 1, "wbc": 0, "cluster": 0, "debris": 2},
         "per_7_5_ml": {"ctc": 3.0, "cluster": 0.0}}  # run.json's: the reported classes'
REVIEWED = {**CLEAN, "name": "S2", "status": "partial", "frames_skipped": 1,
            "problems": ["frame r00c01 skipped", "no blood volume stated"],
            "after_review": {"ctc": 4, "cluster": 0},
            "after_review_per_7_5_ml": {"ctc": 4.0, "cluster": 0.0},
            "signed_off": "ann 2026-11-30T10:00:00+00:00"}


def header(entries) -> list[str]:
    return next(csv.reader(io.StringIO(samples_csv(entries))))


def test_a_clean_night_and_a_reviewed_one_have_the_same_columns():
    clean, reviewed, both = header([CLEAN]), header([REVIEWED]), header([CLEAN, REVIEWED])
    assert clean == reviewed == both
    assert clean.index("count_ctc") < clean.index("count_wbc")  # the counted classes first
    for column in ("signed_off", "after_review_ctc", "frames_skipped", "problems"):
        assert column in clean
    rows = list(csv.DictReader(io.StringIO(samples_csv([CLEAN, REVIEWED]))))
    assert rows[0]["signed_off"] == "" and rows[1]["after_review_ctc"] == "4"
    assert rows[1]["problems"] == "frame r00c01 skipped; no blood volume stated"


def test_a_night_of_failed_samples_has_the_same_columns():
    failed = {"name": "S3", "status": "failed", "events": 0}
    assert header([failed]) == header([CLEAN])


def test_a_row_without_a_result_tonight_says_why_in_its_state():
    aside = {"name": "S4 (cart4)", "set_aside": "its sample id 'S4' is that of cart9 too"}
    missing = {"name": "S5", "missing": True, "reason": "its process failed"}
    partial = {**CLEAN, "name": "S6", "status": "partial", "result_state": "partial",
               "frames_skipped": 1, "skipped_because": ["r00c01: corrupt or truncated TIFF"]}
    rows = list(csv.DictReader(io.StringIO(samples_csv([aside, missing, partial]))))
    assert [r["result_state"] for r in rows] == ["set aside", "missing", "partial"]
    assert rows[2]["skipped_because"] == "r00c01: corrupt or truncated TIFF"


def test_rates_and_counts_after_review_are_the_reported_classes_columns():
    """The rate and after-review columns are the reported classes': the counted ones every
    night, none of an uncounted class (always empty), and a class a lab's taxonomy reports
    where the night's entries name it."""
    default = csv.DictReader(io.StringIO(samples_csv([
        {"name": "s", "counts": {"ctc": 3, "wbc": 9, "cluster": 0, "debris": 5},
         "per_7_5_ml": {"ctc": 3.0, "cluster": 0.0}}]))).fieldnames
    assert "per_7_5_ml_ctc" in default and "after_review_cluster" in default
    assert "count_wbc" in default and "per_7_5_ml_wbc" not in default
    assert "after_review_debris" not in default
    row = next(csv.DictReader(io.StringIO(samples_csv([
        {"name": "s", "counts": {"ctc": 3, "ctc_emt": 2, "wbc": 9},
         "per_7_5_ml": {"ctc": 3.0, "ctc_emt": 2.0},
         "after_review": {"ctc": 3, "ctc_emt": 1}}]))))
    assert row["per_7_5_ml_ctc_emt"] == "2.00" and row["after_review_ctc_emt"] == "1"


def test_a_rate_has_its_interval_and_what_it_rests_on():
    """A study's table needs each rate's uncertainty and its denominator: the interval
    beside the rate, the tube's volume, the frames read of those expected."""
    part = {**CLEAN, "name": "S5", "status": "partial", "blood_volume_read_ml": 4 * 2 / 3,
            "blood_volume_ml": 4.0, "frames_read": 2, "frames_expected": 3,
            "events_per_mm2": 1032.1,  # a crowded site's: its touching cells read as fewer
            "per_7_5_ml": {"ctc": 16.875, "cluster": 0.0},
            "per_7_5_ml_interval": {"ctc": [6.1928, 36.7298], "cluster": [0.0, 10.375]}}
    failed = {"name": "S6", "status": "failed", "events": 0, "blood_volume_read_ml": 0.0,
              "blood_volume_ml": 7.5, "frames_read": 0, "frames_expected": 3,
              "per_7_5_ml_interval": {"ctc": None, "cluster": None}}
    columns = header([part])
    assert columns == header([CLEAN]) == header([failed])
    assert columns.index("per_7_5_ml_ctc") < columns.index("per_7_5_ml_low_ctc") < \
        columns.index("per_7_5_ml_high_ctc") < columns.index("after_review_ctc")
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(samples_csv([part, failed])))}
    got = rows["S5"]
    assert (got["per_7_5_ml_ctc"], got["per_7_5_ml_low_ctc"], got["per_7_5_ml_high_ctc"]) == \
        ("16.88", "6.19", "36.73")
    assert (got["blood_volume_ml"], got["frames_read"], got["frames_expected"],
            got["events_per_mm2"]) == ("4.0", "2", "3", "1032.1")
    assert rows["S6"]["per_7_5_ml_low_ctc"] == "" and rows["S6"]["frames_read"] == "0"
    # What the review could still make a count, beside it: a count of 4 whose one held call
    # may take it to 5 is found in the table (it was in summary.json alone).
    spanned = {**part, "name": "S7", "counts": {"ctc": 4}, "review_span": {"ctc": [4, 5]}}
    row = next(csv.DictReader(io.StringIO(samples_csv([spanned]))))
    assert (row["review_span_low_ctc"], row["review_span_high_ctc"]) == ("4", "5")
    assert columns.index("held_ctc") < columns.index("review_span_low_ctc") < \
        columns.index("per_7_5_ml_ctc")


def test_the_table_takes_run_jsons_permissions_as_it_is_written_anew(tmp_path):
    """A run removes samples.csv as it starts and writes it anew, while run.json is written
    over: under a job of another umask the two would drift apart."""
    import os

    from ctcnet.inference.run_table import write_samples_csv

    (tmp_path / "run.json").write_text("{}")
    os.chmod(tmp_path / "run.json", 0o640)
    before = os.umask(0o077)
    try:
        write_samples_csv(tmp_path, [{"name": "a", "status": "ok"}])
    finally:
        os.umask(before)
    assert (tmp_path / "samples.csv").stat().st_mode & 0o777 == 0o640


def test_a_row_says_the_pixel_size_and_channels_its_scan_was_read_at():
    """Two scanners' samples pooled in one study table are told apart by their rows."""
    from ctcnet.inference.run_entry import output_entry

    summary = {"status": "ok", "events": 10, "counts": {"ctc": 1}, "counted_at": 1.8e9,
               "panel": {"pixel_size_um": 0.519, "channels": [{"name": "DAPI"},
                                                               {"name": "CK"}]}}
    entry = output_entry("S7", summary, Path("S7/summary.json"))
    assert entry["pixel_size_um"] == 0.519 and entry["channels"] == ["DAPI", "CK"]
    row = next(csv.DictReader(io.StringIO(samples_csv([{**CLEAN, **entry}]))))
    assert (row["pixel_size_um"], row["channels"]) == ("0.519", "DAPI CK")
    crops = output_entry("C1", {"crops": 4, "pixel_size_um": 0.64, "counted_at": 1.8e9},
                         Path("C1/summary.json"))
    assert crops["pixel_size_um"] == 0.64 and "channels" not in crops


def test_interval_ends_are_rounded_outward_and_rates_as_printed():
    """At two decimals an interval never narrows (0.6187-9.0309 is 0.61-9.04, not 0.62-9.03),
    a rate's tie rounds up as every output prints it, and an end a float holds a hair off
    two decimals stays where it is."""
    entry = {**CLEAN, "per_7_5_ml": {"ctc": 16.25, "cluster": 0.0},
             "per_7_5_ml_interval": {"ctc": [0.6187, 9.0309], "cluster": [0.0, 2.2]}}
    row = next(csv.DictReader(io.StringIO(samples_csv([entry]))))
    assert (row["per_7_5_ml_low_ctc"], row["per_7_5_ml_high_ctc"]) == ("0.61", "9.04")
    # Two decimals written as every output prints them (0.00, 2.20; not 0.0, 2.2).
    assert (row["per_7_5_ml_low_cluster"], row["per_7_5_ml_high_cluster"]) == ("0.00", "2.20")
    assert row["per_7_5_ml_ctc"] == "16.25"
    tie = next(csv.DictReader(io.StringIO(samples_csv(
        [{**CLEAN, "per_7_5_ml": {"ctc": 5.625, "cluster": 0.0}}]))))
    assert tie["per_7_5_ml_ctc"] == "5.63"  # Python's round gives 5.62


def test_a_row_names_the_builds_that_made_a_resumed_runs_frames():
    """A run resumed by another build: its software is the build that finished it, and the
    frames the earlier one made are said in the row (a lab filing samples.csv alone missed
    it)."""
    made = {"onnx (file c538449cce41), ctcnet 0.1.0 (c1a604d2d2e2)": 5}
    row = next(csv.DictReader(io.StringIO(samples_csv([{**CLEAN, "frames_made_by": made}]))))
    assert row["frames_made_by"] == "onnx (file c538449cce41), ctcnet 0.1.0 (c1a604d2d2e2): " \
        "5 frame(s)"
    assert next(csv.DictReader(io.StringIO(samples_csv([CLEAN]))))["frames_made_by"] == ""


def test_a_list_cell_splits_back_into_its_items():
    """An item's own '; ' (a problem's text) would split it in two for a reader of the cell."""
    problems = ["blood_volume: its default was used in its place; correct the key",
                "frame r00c01 skipped"]
    row = next(csv.DictReader(io.StringIO(samples_csv([{**REVIEWED, "problems": problems}]))))
    assert row["problems"].split("; ") == [
        "blood_volume: its default was used in its place, correct the key",
        "frame r00c01 skipped"]


def test_a_sample_id_a_spreadsheet_would_run_is_written_as_text():
    row = next(csv.DictReader(io.StringIO(samples_csv([{**CLEAN, "name": "=1+2"}]))))
    assert row["name"] == "'=1+2"
    assert next(csv.DictReader(io.StringIO(samples_csv([CLEAN]))))["name"] == "S1"
    # In another row's list alike, each item as its own cell gives it: "'=1+2; -007"
    # escaped the first item alone, and a reader matched neither list to the names.
    ids = ["M\u00fcller", "=1+2", "-007"]
    rows = list(csv.DictReader(io.StringIO(samples_csv(
        [{**CLEAN, "name": n, "cartridge_id": "eab335047adfe691"} for n in ids]))))
    names = {r["name"] for r in rows}
    for row in rows:
        assert set(row["same_scan_as"].split("; ")) == names - {row["name"]}


def test_a_row_names_the_build_that_counted_it():
    """Every build of a release is one ctcnet_version: the row names the build (software)."""
    built = "ctcnet 0.1.0, commit f11e939705c7 (modified), code e28154d0fe69"
    row = next(csv.DictReader(io.StringIO(samples_csv([{**CLEAN, "software": built}]))))
    assert row["software"] == built and row["ctcnet_version"] == ""


def test_an_interval_reads_alike_on_the_console_the_page_and_in_the_table():
    """The page and the console said 17.79 to 39.28 where samples.csv said 39.29: every
    output now rounds an interval outward."""
    from ctcnet.inference.counts import interval_text

    assert interval_text(0.6187, 9.0309) == "0.61 to 9.04"
    assert interval_text(0.6187, 9.0309, "-") == "0.61-9.04"
    row = next(csv.DictReader(io.StringIO(samples_csv([{
        **CLEAN, "per_7_5_ml_interval": {"ctc": [0.6187, 9.0309], "cluster": None}}]))))
    assert f"{row['per_7_5_ml_low_ctc']} to {row['per_7_5_ml_high_ctc']}" == "0.61 to 9.04"


def test_a_signed_double_reading_gives_the_agreement_a_month_pools():
    """A reading team's monthly agreement was gathered from each sign-off by hand: the table
    carries each sample's, as it stands and as the readers first read."""
    from ctcnet.inference.run_entry import review_entry

    summary = {"reviewed": {"reviewed": 30}, "signoff": {
        "status": "current", "second_reading": {
            "both": 30, "agree": 27, "kappa": 0.8131,
            "independent": {"both": 30, "agree": 25, "kappa": 0.7664}}}}
    entry = review_entry(summary)
    assert (entry["readers_both"], entry["readers_agree"], entry["readers_own_agree"]) == \
        (30, 27, 25)
    row = next(csv.DictReader(io.StringIO(samples_csv([{**CLEAN, **entry}]))))
    assert (row["readers_both"], row["readers_own_agree"], row["readers_own_kappa"]) == \
        ("30", "25", "0.7664")
    stale = review_entry({**summary, "signoff": {**summary["signoff"], "status": "changed since"}})
    assert "readers_both" not in stale
    # The readers' own calls are of their own events (a call taken back, one adjudicated):
    # pooled over readers_both, 7 of 11 read 7 of 9. Given as they were, also where none
    # of the decisions as they stand is both readers'.
    own = {"both": 11, "agree": 7, "kappa": 0.5368}
    for both in (9, 0):
        entry = review_entry({**summary, "signoff": {**summary["signoff"], "second_reading": {
            "both": both, "agree": 5, "kappa": 0.4, "independent": own}}})
        assert (entry["readers_own_both"], entry["readers_own_agree"]) == (11, 7)
        assert ("readers_both" in entry) == bool(both)


def test_a_row_gives_the_clusters_by_partner_and_the_unread_planes_ctcs_above():
    """A study of clusters or of a therapy marker reads them per sample from the table, not
    from each summary.json; a night without them keeps the columns, empty."""
    entry = {**CLEAN, "clusters_by_partner": {"neutrophil": 2, "homotypic": 1},
             "unread_ctcs_above": {"HER2": [12, 23], "PD-L1": [None, 23]}}
    rows = list(csv.DictReader(io.StringIO(samples_csv([entry, CLEAN]))))
    assert rows[0]["clusters_by_partner"] == "neutrophil 2; homotypic 1"
    assert rows[0]["unread_ctcs_above"] == "HER2 12 of 23; PD-L1 n/a of 23"
    assert rows[1]["clusters_by_partner"] == rows[1]["unread_ctcs_above"] == ""
    assert header([CLEAN]) == header([entry])


def test_a_row_names_its_signer_and_the_rows_of_its_scan_under_another_id():
    """Who signed which draw was in each signoff.json alone; one scan run again under a
    corrected id had two rows a spreadsheet counted as two draws."""
    signed = {**REVIEWED, "name": "P02_WK3", "cartridge_id": "eab335047adfe691",
              "signed_off": True, "signed_off_by": "Dr. Okafor",
              "signed_off_at": "2026-12-02T14:31:55+00:00"}
    again = {**CLEAN, "name": "P20_WK3", "cartridge_id": "eab335047adfe691"}
    other = {**CLEAN, "name": "P01_D0", "cartridge_id": "0123456789abcdef"}
    rows = list(csv.DictReader(io.StringIO(samples_csv([signed, again, other]))))
    assert rows[0]["signed_off_by"] == "Dr. Okafor" and rows[1]["signed_off_by"] == ""
    assert rows[0]["signed_off_at"] == "2026-12-02T14:31:55+00:00"
    assert [r["same_scan_as"] for r in rows] == ["P20_WK3", "P02_WK3", ""]


def test_run_json_gives_a_cartridges_density_beside_what_its_rates_rest_on():
    """Three sites at 0.45, 0.64 and 0.8 um/px with the same events a frame: the finest is
    the most crowded (1,032 against 340 events per mm²), its merged cells reading as fewer;
    run.json and samples.csv say so, not summary.json alone."""
    from ctcnet.inference.run_entry import _denominator

    summary = {"blood_volume_ml": 7.5, "frames": {"processed": 3, "total": 3, "missing": 0},
               "events_per_mm2": 1032.1}
    assert _denominator(summary)["events_per_mm2"] == 1032.1
    assert _denominator({**summary, "events_per_mm2": None})["events_per_mm2"] is None


def test_settings_that_differ_are_said_with_how():
    """A group of settings by the ones that differ, a setting by its values and the runs that
    hold each; a setting present in one run alone by its values too (it read "decision ()")."""
    from ctcnet.inference.setting_differences import how_settings_differ

    assert how_settings_differ({"a": {"guard": {"x": 1, "y": 2}},
                                "b": {"guard": {"x": 1, "y": 3}}}) == ["guard (y: 2 in a; 3 in b)"]
    assert how_settings_differ({"a": {"decision": None}, "b": {"decision": {}}}) == \
        ["decision rule (--prior) (the model's own in a; none, the most probable class "
         "(--prior balanced) in b)"]  # (it read "decision (null in a; {} in b)")
    assert how_settings_differ({n: {"edge_cut_as": v} for n, v in
                                (("a", "debris"), ("b", "wbc"), ("c", "wbc"))}) == \
        ['edge_cut_as ("debris" in a; "wbc" in b, c)']
    assert how_settings_differ({"a": {"model_sha256": "1" * 64}, "b": {"model_sha256": "2" * 64}},
                               {"a": "m.pt"}) == [f"model (by its network) (m.pt network "
                                                  f"{'1' * 12} in a; network {'2' * 12} in b)"]
