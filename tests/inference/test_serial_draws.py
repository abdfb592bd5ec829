"""ctcnet draws: one patient's serial draws side by side, the figure each report says to use,
the cut-off, and the exact test of a change between two draws."""

import hashlib
import json
import shutil

import pytest
from conftest import edit_json, run_cli

from ctcnet.errors import InputError
from ctcnet.inference.serial_draws import compare_draws, rate_change_p


@pytest.mark.parametrize("k1, v1, k2, v2", [(13, 7.5, 2, 7.5), (13, 7.5, 3, 6.0), (0, 7.5, 4, 7.5),
                                             (5, 7.5, 5, 7.5), (40, 7.5, 1, 3.0), (1, 2.0, 0, 7.5)])
def test_the_change_test_is_the_exact_conditional_binomial_test(k1, v1, k2, v2):
    from scipy.stats import binomtest

    expected = binomtest(k1, k1 + k2, v1 / (v1 + v2)).pvalue
    assert rate_change_p(k1, v1, k2, v2) == pytest.approx(expected, rel=1e-9)
    assert rate_change_p(0, 7.5, 0, 7.5) == 1.0


def _draw(clean_run, tmp_path, name, ctc, volume, **changes):
    folder = tmp_path / name
    shutil.copytree(clean_run["root"] / "clean", folder)
    summary = json.loads((folder / "summary.json").read_text())
    # (each draw its own scan: frames of its own)
    frames = {fid: {**d, "sha256": hashlib.sha256((name + d["sha256"]).encode()).hexdigest()}
              for fid, d in summary["frame_digests"].items()}
    edit_json(folder / "summary.json", sample_id=name, cartridge_id=f"{abs(hash(name)):016x}",
              frame_digests=frames, counts={**summary["counts"], "ctc": ctc},
              per_7_5_ml={**summary["per_7_5_ml"], "ctc": ctc * 7.5 / volume},
              blood_volume_processed_ml=volume, **changes)
    return folder


def test_draws_are_read_against_the_cutoff_and_each_other(clean_run, tmp_path):
    first = _draw(clean_run, tmp_path, "d0", 13, 7.5)
    second = _draw(clean_run, tmp_path, "wk3", 3, 6.0, status="partial", blood_volume_ml=7.5,
                   problems=["cartridge.json lists 5 frames but 4 are present"],
                   skipped_frames=[{"frame": "r00c01", "reason": "r00c01.tif: empty file"}])
    draws, differ = compare_draws([first, second])
    assert [d.against_cutoff for d in draws] == ["at or above", "below"]
    assert draws[1].per_7_5_ml == pytest.approx(3.75) and draws[1].interval_spans_cutoff
    assert draws[1].p_from_previous == pytest.approx(rate_change_p(13, 7.5, 3, 6.0), rel=1e-3)
    assert draws[1].p_from_previous < 0.05  # the intervals overlap; the counts differ
    assert draws[1].high > draws[0].low
    assert any("of the blood read (6 mL of 7.5)" in n for n in draws[1].notes)
    assert "partial: cartridge.json lists 5 frames but 4 are present" in draws[1].notes
    # A frame refused is named with its reason (only the blood read short was said).
    assert "partial: frame r00c01 skipped: r00c01.tif: empty file" in draws[1].notes
    assert all(d.figure == "automatic" for d in draws) and not differ
    # Counted by another model: said not comparable.
    third = _draw(clean_run, tmp_path, "wk7", 5, 7.5)
    fingerprint = json.loads((third / "summary.json").read_text())["run_fingerprint"]
    edit_json(third / "summary.json", run_fingerprint={**fingerprint, "model_sha256": "0" * 64})
    edit_json(third / "summary.json", run_fingerprint={**fingerprint, "model_sha256": "0" * 64,
                                                       "edge_cut_as": "wbc"})
    draws, differ = compare_draws([first, second, third])
    model = draws[0].model
    sha = fingerprint["model_sha256"][:12]
    assert model and differ == [  # said with how: the models by name, the values by draw
        f"model (by its network) ({model} network {sha} in draw 1, draw 2; {model} network "
        f"{'0' * 12} in draw 3)",
        'edge_cut_as ("debris" in draw 1, draw 2; "wbc" in draw 3)']
    edit_json(third / "summary.json", run_fingerprint={**fingerprint, "model_sha256": "0" * 64})
    draws, differ = compare_draws([first, second, third])
    assert len(differ) == 1 and differ[0].startswith("model (by its network) (")
    assert all(d.row()["not_comparable"] == "model_sha256" for d in draws)  # the CSV says it
    panel = json.loads((third / "summary.json").read_text())["panel"]
    edit_json(third / "summary.json", panel={**panel, "pixel_size_um": 0.45})
    assert "scanned at other pixel sizes" in compare_draws([first, third])[0][0].row()["notes"]
    # ... and a 12-bit scanner beside a 16-bit one at one pixel size: read as one scanner.
    twelve = [{**c, "value_range": [0.0, 4095.0]} for c in panel["channels"]]
    sixteen = [{**c, "value_range": [0.0, 65535.0]} for c in panel["channels"]]
    edit_json(third / "summary.json", panel={**panel, "channels": twelve})
    edit_json(first / "summary.json", panel={**panel, "channels": sixteen})
    notes = compare_draws([first, third])[0][0].row()["notes"]
    assert "other pixel sizes or ranges of counts" in notes and "0-4095" in notes and \
        "0-65535" in notes, notes
    assert "scanner" not in compare_draws([first, third])[0][0].row()  # (a note, no column)
    edit_json(first / "summary.json", panel=panel)
    # What a review could still move an automatic count to is said beside it.
    tally = json.loads((first / "summary.json").read_text())["tally"]
    edit_json(first / "summary.json",
              tally={**tally, "review_span_per_7_5_ml": {"ctc": [13.0, 15.0], "cluster": None}})
    assert "its review could move it to 13.00-15.00 per 7.5 mL (calls held or in doubt)" in \
        compare_draws([first, second])[0][0].notes
    # A span across the cut-off is said to be one: the review decides the side.
    edit_json(first / "summary.json",
              tally={**tally, "review_span_per_7_5_ml": {"ctc": [3.0, 11.0], "cluster": None}})
    assert ("its review could move it to 3.00-11.00 per 7.5 mL (calls held or in doubt); that "
            "crosses the cut-off of 5: the review decides which side") in \
        compare_draws([first, second])[0][0].notes
    # Once decisions are taken, not signed off: where they stand, and the span of the calls
    # as predict made them beside it, said as such (a confident call relabelled goes past it).
    edit_json(first / "summary.json",
              reviewed={"reviewed": 3, "reported": ["ctc", "cluster"],
                        "after_review": {"ctc": 16, "cluster": 0},
                        "after_review_per_7_5_ml": {"ctc": 16.0, "cluster": 0.0}})
    notes = compare_draws([first, second])[0][0].notes
    assert not any(n.startswith("its review could move it") or "not reviewed" in n
                   for n in notes)
    assert ("under review, not signed off: 3 event(s) decided, ctc 16 after review so far "
            "(16.00 per 7.5 mL); the figure above is the automatic count until the review is "
            "signed off; before the review, its calls held or in doubt could move it to "
            "3.00-11.00 per 7.5 mL (a confident call relabelled goes past that); that crosses "
            "the cut-off of 5: the review decides which side") in notes
    assert compare_draws([first, second])[0][0].count == 13
    # Decisions that put a draw on the other side of the cut-off: the review decides the side,
    # said though the span of the calls as predict made them does not cross it.
    edit_json(first / "summary.json",
              tally={**tally, "review_span_per_7_5_ml": {"ctc": [12.0, 13.0], "cluster": None}},
              reviewed={"reviewed": 9, "reported": ["ctc", "cluster"],
                        "after_review": {"ctc": 4, "cluster": 0},
                        "after_review_per_7_5_ml": {"ctc": 4.0, "cluster": 0.0}})
    (decided,) = [n for n in compare_draws([first, second])[0][0].notes
                  if n.startswith("under review")]
    assert ("ctc 4 after review so far (4.00 per 7.5 mL), below the cut-off of 5 where the "
            "automatic count is not: the review decides which side") in decided
    # Signed off once, the sign-off no longer holding: said so in the review's line, not as a
    # review never signed off beside a sign-off that no longer holds.
    edit_json(first / "summary.json", signoff={"status": "changed since", "reviewer": "ann"})
    notes = compare_draws([first, second])[0][0].notes
    (line,) = [n for n in notes if n.startswith("under review again, its sign-off no longer "
                                                 "holding: 9 event(s) decided")]
    assert "the automatic count until the review is signed off again" in line
    assert not any("not signed off" in n or n.startswith("its sign-off no longer holds")
                   for n in notes)
    # One scan given twice (before and after a volume correction) is no second draw.
    with pytest.raises(InputError, match="are one scan"):
        compare_draws([first, first])
    # Nor a copy of a scan that lacks a frame (another cartridge id, the same frames): it read
    # as a change between draws.
    copy = tmp_path / "d0_copy"
    shutil.copytree(first, copy)
    frames = json.loads((copy / "summary.json").read_text())["frame_digests"]
    edit_json(copy / "summary.json", cartridge_id="0" * 16,
              frame_digests=dict(list(frames.items())[:-1]))
    with pytest.raises(InputError, match="hold the same frames"):
        compare_draws([first, copy])
    # Signed off (a partial scan too): the counts after review are the figure reported.
    edit_json(second / "summary.json",
              signoff={"reviewer": "ann", "signed_at": "2026-12-01", "status": "current"},
              reviewed={"reviewed": 2, "reported": ["ctc", "cluster"],
                        "after_review": {"ctc": 4, "cluster": 0},
                        "after_review_per_7_5_ml": {"ctc": 5.0, "cluster": 0.0}})
    signed = compare_draws([first, second])[0][1]
    assert signed.figure == "after review" and signed.count == 4
    assert signed.per_7_5_ml == pytest.approx(5.0) and signed.against_cutoff == "at or above"
    assert not any("not reviewed" in n for n in signed.notes)
    # A failed sample read no frame: no count, no comparison.
    edit_json(third / "summary.json", status="failed")
    lost = compare_draws([first, third])[0][1]
    assert lost.count is None and lost.p_from_previous is None and lost.against_cutoff == "n/a"
    assert lost.notes[0] == "failed: no frame was read, so there is no result"
    assert not any("not reviewed" in n for n in lost.notes)  # no count to review
    assert lost.interval_spans_cutoff is None  # no rate: no interval to span the cut-off


def test_a_tiny_p_is_kept_in_significant_figures_and_no_cell_in_either_draw_is_no_test(
        clean_run, tmp_path, capsys):
    from scipy.stats import binomtest

    from ctcnet.cli import main

    many = _draw(clean_run, tmp_path, "b", 18, 6.0)
    none = _draw(clean_run, tmp_path, "z", 0, 7.5)
    draws, _ = compare_draws([many, none])
    expected = binomtest(0, 18, 7.5 / 13.5).pvalue  # 4.58e-07: p = 0 at six decimals
    assert draws[1].p_from_previous == pytest.approx(expected, rel=1e-3)
    assert main(["draws", str(many), str(none)]) == 0
    assert "p = 4.58e-07" in capsys.readouterr().out
    again = _draw(clean_run, tmp_path, "z2", 0, 7.5)
    draws, _ = compare_draws([none, again])
    assert draws[1].p_from_previous is None and draws[1].change_from_previous is None
    assert "none counted in this draw or the previous: no change to test" in draws[1].notes
    # A volume cartridge.json did not state is said: the rate and the tests rest on it.
    edit_json(again / "summary.json", blood_volume_stated=False)
    assert any("7.5 mL assumed" in n for n in compare_draws([none, again])[0][1].notes)


def test_draws_given_out_of_the_order_their_dates_say_are_said(clean_run, tmp_path):
    """A shell's wildcard lists WK12 before WK3: the fall WK3 -> WK12 then read as a rise."""
    dates = {"d0": "2026-03-29T01:30:00+01:00", "wk12": "2026-06-14", "wk3": "2026-04-19",
             "wk7": "17.05.2026"}  # with an offset, a day alone, day-first (not read)
    folders = []
    for name, when in dates.items():
        folder = _draw(clean_run, tmp_path, name, 4, 7.5)
        info = json.loads((folder / "summary.json").read_text()).get("cartridge_info") or {}
        edit_json(folder / "summary.json", cartridge_info={**info, "scan_date": when})
        folders.append(folder)
    draws, _ = compare_draws(folders, date_key="scan_date")
    said = [[n for n in d.notes if "given after it" in n] for d in draws]
    assert said == [[], [], ["drawn before draw 2 (2026-06-14), given after it: the changes "
                             "are read in the order given; give the draws in the order drawn"],
                    []]
    assert "its date '17.05.2026' is not ISO 8601 (a date written as YYYY-MM-DD): its order " \
        "against the other draws is not checked" in draws[3].notes
    edit_json(folders[3] / "summary.json", cartridge_info={**info, "scan_date": "2026-02-30"})
    assert "its date '2026-02-30' is no date (an ISO 8601 form of a day no calendar has): its " \
        "order against the other draws is not checked" in \
        compare_draws(folders, date_key="scan_date")[0][3].notes
    in_order, _ = compare_draws([folders[0], folders[2], folders[1]], date_key="scan_date")
    assert not any("given after it" in n for d in in_order for n in d.notes)
    # An empty date is none given, said so (it went unsaid, the draw's order unchecked).
    edit_json(folders[3] / "summary.json", cartridge_info={**info, "scan_date": " "})
    assert any("had no 'scan_date', or an empty one" in n
               for n in compare_draws(folders, date_key="scan_date")[0][3].notes)
    # Times with offsets are compared as instants: 01:30+01:00 is 00:30 UTC.
    for when, said in (("2026-03-29T00:40:00Z", False), ("2026-03-29T00:20:00Z", True)):
        edit_json(folders[1] / "summary.json", cartridge_info={"scan_date": when})
        assert said == any("given after it" in n
                           for n in compare_draws(folders[:2], date_key="scan_date")[0][1].notes)
    # A day alone beside a time with an offset: compared by the day each is written on (the
    # UTC day made 23:30 -05:00 the next day's, a false alarm, and 00:30 +02:00 the day
    # before's, a miss); a time without a zone among zoned ones: checked by its day, said.
    for first, then, said in (("2026-01-06T23:30:00-05:00", "2026-01-06", False),
                              ("2026-01-07T00:30:00+02:00", "2026-01-06", True)):
        edit_json(folders[0] / "summary.json", cartridge_info={"scan_date": first})
        edit_json(folders[1] / "summary.json", cartridge_info={"scan_date": then})
        assert said == any("given after it" in n
                           for n in compare_draws(folders[:2], date_key="scan_date")[0][1].notes)
    edit_json(folders[1] / "summary.json", cartridge_info={"scan_date": "2026-01-08T04:15:00"})
    assert "its time '2026-01-08T04:15:00' has no time zone, other draws' have: its order " \
        "against them is checked by the day alone" in \
        compare_draws(folders[:2], date_key="scan_date")[0][1].notes
    # Two zoned draws out of order by hours, a day alone beside them: still said (the day
    # alone took every draw to days, and 02:00 +01:00 the next day passed after 23:30 -05:00).
    for folder, when in zip(folders[:3], ("2026-01-05T23:30:00-05:00",
                                          "2026-01-06T02:00:00+01:00", "2026-01-06")):
        edit_json(folder / "summary.json", cartridge_info={"scan_date": when})
    notes = compare_draws(folders[:3], date_key="scan_date")[0][1].notes
    assert [n for n in notes if "given after it" in n] == [
        "drawn before draw 1 (2026-01-05T23:30:00-05:00), given after it: the changes are "
        "read in the order given; give the draws in the order drawn"]
    # No zone anywhere: a day alone is no midnight (it read as drawn before that day's
    # 10:00), and two draws of one day cannot be put in order by their dates: said.
    for then, said in (("2026-03-01", "dated the day of draw 1 (2026-03-01T10:00)"),
                       ("2026-03-01T09:00", "drawn before draw 1"),
                       ("2026-03-01T11:00", None), ("2026-03-02", None),
                       ("2026-03-01T10:00", "dated the time of draw 1 (2026-03-01T10:00)")):
        edit_json(folders[0] / "summary.json", cartridge_info={"scan_date": "2026-03-01T10:00"})
        edit_json(folders[1] / "summary.json", cartridge_info={"scan_date": then})
        notes = [n for n in compare_draws(folders[:2], date_key="scan_date")[0][1].notes
                 if "draw 1 (" in n]
        assert [n[:len(said)] for n in notes] == ([said] if said else []), then


def test_a_results_folders_own_files_given_by_a_wildcard_are_passed_over(clean_run, tmp_path,
                                                                         capsys):
    """`ctcnet draws results/*` stopped at results/logs ("no summary.json")."""
    from ctcnet.cli import main

    first = _draw(clean_run, tmp_path, "d0", 13, 7.5)
    second = _draw(clean_run, tmp_path, "wk3", 3, 7.5)
    (tmp_path / "logs").mkdir()
    (tmp_path / "run.json").write_text("{}")
    assert main(["draws", str(first), str(tmp_path / "logs"), str(second),
                 str(tmp_path / "run.json")]) == 0
    said = capsys.readouterr().out
    assert "(passed over: " in said
    assert "the results folder's own files or a draws table, not samples)" in said
    assert "2. wk3" in said


def test_the_command_prints_the_draws_writes_the_table_and_refuses_no_sample(
        clean_run, tmp_path, capsys):
    first = _draw(clean_run, tmp_path, "d0", 13, 7.5)
    second = _draw(clean_run, tmp_path, "wk3", 2, 7.5)
    from ctcnet.cli import main

    assert main(["draws", str(first), str(second), "--out", str(tmp_path / "draws.csv"),
                 "--cutoff", "3"]) == 0
    printed = capsys.readouterr().out
    assert "2. wk3: ctc 2 in 7.5 mL, 2.00 (95 % 0.24-7.23) per 7.5 mL, automatic; below 3 " \
        "(the interval spans it); from the previous: x0.15, p = 0.00739" in printed
    assert "the automatic count: not reviewed and signed off" in printed
    assert "p: exact test" in printed
    assert printed.rstrip().endswith(f"table: 2 draw(s) -> {tmp_path / 'draws.csv'}")
    table = (tmp_path / "draws.csv").read_text().splitlines()
    assert table[0].startswith("draw,name,folder,result_state") and len(table) == 3
    assert ",2,7.5,2.0," in table[2] and ",3.0,below," in table[2]
    # Another class against the CTC cut-off is said; one draw prints no p legend.
    assert main(["draws", str(first), "--class", "cluster"]) == 0
    printed = capsys.readouterr().out
    assert "the default cut-off, 5, is CellSearch's for CTCs" in printed
    assert "p: exact test" not in printed
    # Under ctcnet --quiet the lines are the answer unless --out keeps the table.
    assert main(["--quiet", "draws", str(first)]) == 0
    assert "1. d0: ctc 13" in capsys.readouterr().out
    assert main(["--quiet", "draws", str(first), "--out", str(tmp_path / "q.csv")]) == 0
    assert capsys.readouterr().out == "" and (tmp_path / "q.csv").exists()
    status, err = run_cli(capsys, "draws", first, tmp_path)
    assert status == 2 and len(err) == 1 and "no summary.json" in err[0]


def test_a_summary_whose_figures_were_edited_by_hand_is_not_read(clean_run, tmp_path):
    """A count 'corrected' in summary.json (30 CTCs made 2, the events untouched) flipped the
    cut-off in draws without a word: its figures' seal no longer holds, so it is refused."""
    first = _draw(clean_run, tmp_path, "d0", 13, 7.5)
    second = _draw(clean_run, tmp_path, "wk3", 3, 7.5)
    compare_draws([first, second])  # as ctcnet wrote them (sealed)
    summary = json.loads((second / "summary.json").read_text())
    summary["counts"]["ctc"] = 30
    (second / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="figures were changed since ctcnet wrote them"):
        compare_draws([first, second])


def test_a_seal_taken_away_is_refused_and_an_earlier_ctcnets_summary_is_said_unchecked(
        clean_run, tmp_path):
    """The seal deleted with the count changed (a field only a sealing ctcnet writes still
    there): refused; a summary an earlier ctcnet wrote (no seal, no such field): read, with a
    note that its figures are unchecked."""
    first = _draw(clean_run, tmp_path, "d0", 13, 7.5)
    second = _draw(clean_run, tmp_path, "wk3", 3, 7.5)
    summary = json.loads((second / "summary.json").read_text())
    summary["counts"]["ctc"] = 30
    del summary["figures_sha256"]
    (second / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(InputError, match="lost their seal"):
        compare_draws([first, second])
    del summary["events_csv_sha256"]
    (second / "summary.json").write_text(json.dumps(summary))
    draws, _ = compare_draws([first, second])
    assert any("its figures unchecked" in n for n in draws[1].notes)
    assert not any("unchecked" in n for n in draws[0].notes)


def test_a_draws_rate_is_written_to_four_decimals_as_its_interval(clean_run, tmp_path):
    """draws.csv wrote 23.571428571428573 beside an interval of 4 decimals."""
    draw = _draw(clean_run, tmp_path, "d0", 22, 7.0)
    row = compare_draws([draw])[0][0].row()
    assert row["per_7_5_ml"] == 23.5714


def test_draws_of_two_patients_are_refused_and_a_mistyped_key_is_suggested(clean_run,
                                                                           tmp_path, capsys):
    """P02's baseline read as a change from P01's: refused where cartridge.json names the
    patients; a --date-key one letter off names the key there; a whole --out folder or a
    written table is not taken for a draw."""
    folders = []
    for name, patient in (("p01_d0", "P01"), ("p01_wk3", "P01"), ("p02_d0", "P02")):
        folder = _draw(clean_run, tmp_path, name, 4, 7.5)
        edit_json(folder / "summary.json",
                  cartridge_info={"patient_id": patient, "draw_date": "2026-04-19"})
        folders.append(folder)
    draws, _ = compare_draws(folders[:2])
    assert [d.patient for d in draws] == ["P01", "P01"]
    from ctcnet.cli import main

    assert main(["draws", *map(str, folders[:2])]) == 0  # the console names whose they are
    assert capsys.readouterr().out.startswith("patient 'P01' (patient_id)\n")
    with pytest.raises(InputError, match=r"the draws name 2 patients \(patient_id: 'P01' in "
                                         r"draw\(s\) 1, 2; 'P02' in draw\(s\) 3\)"):
        compare_draws(folders)
    # One patient's id typed with a space after it, or with its accent decomposed (a name
    # copied through macOS), is that patient's: they were refused as two patients whose
    # names the refusal showed alike.
    for folder, patient in zip(folders[:2], ("Müller 01", "Mu\u0308ller 01 ")):
        edit_json(folder / "summary.json",
                  cartridge_info={"patient_id": patient, "draw_date": "2026-04-19"})
    read = compare_draws(folders[:2])[0]
    # ... and written so in every row: draws.csv's patient column held both forms, a
    # spreadsheet's grouping split one patient's series in two.
    assert len(read) == 2 and {d.patient for d in read} == {"Müller 01"}
    edit_json(folders[1] / "summary.json",
              cartridge_info={"patient_id": "Muller 01", "draw_date": "2026-04-19"})
    with pytest.raises(InputError, match="'Müller 01' in draw\\(s\\) 1; 'Muller 01' in"):
        compare_draws(folders[:2])
    for folder in folders[:2]:
        edit_json(folder / "summary.json",
                  cartridge_info={"patient_id": "P01", "draw_date": "2026-04-19"})
    assert compare_draws(folders, patient_key=None)[0][2].patient is None  # not asked
    assert not any("names a patient" in n for d in compare_draws(folders, patient_key=None)[0]
                   for n in d.notes)
    for folder in folders:  # none named: no draw checked to be one patient's, said
        edit_json(folder / "summary.json", cartridge_info={"draw_date": "2026-04-19"})
    draws, _ = compare_draws(folders)
    assert not any("names a patient" in n for n in draws[0].notes) and all(
        "no draw's cartridge.json names a patient (patient_id): not checked to be the same "
        "patient's as the draws before it" in d.notes for d in draws[1:])
    edit_json(folders[0] / "summary.json",
              cartridge_info={"patient_id": "P01", "draw_date": "2026-04-19"})
    edit_json(folders[1] / "summary.json", cartridge_info={"draw_date": "2026-04-19"})
    draws, _ = compare_draws(folders[:2])  # one names no patient: said, not refused
    assert "its cartridge.json names no patient (patient_id), the other draws P01: not " \
        "checked to be the same patient's" in draws[1].notes
    edit_json(folders[1] / "summary.json",
              cartridge_info={"patient_id": "P01", "draw_date": "2026-04-19"})
    draws, _ = compare_draws(folders[:2], date_key="drawdate")
    assert any("it has 'draw_date': --date-key draw_date?" in n for n in draws[0].notes)
    (tmp_path / "run.json").write_text("{}")
    from ctcnet.cli import main

    status, err = run_cli(capsys, "draws", tmp_path, tmp_path)
    assert status == 2 and "a whole --out folder of several samples" in err[0]
    scan = tmp_path / "scan"
    scan.mkdir()
    (scan / "cartridge.json").write_text("{}")
    status, err = run_cli(capsys, "draws", scan)
    assert status == 2 and "it is a scan, not a result" in err[0]
    out = tmp_path / "draws.csv"
    assert main(["draws", *map(str, folders[:2]), "--out", str(out)]) == 0
    status, err = run_cli(capsys, "draws", folders[0], tmp_path, "--out", str(out))
    assert status == 2 and "exists" in err[0] and "--overwrite" in err[0]
    assert main(["draws", str(folders[0]), "--out", str(out), "--overwrite"]) == 0
    assert len(out.read_text().splitlines()) == 2


def test_a_patient_key_mistyped_is_refused_not_a_check_turned_off(clean_run, tmp_path, capsys):
    """`--patient-key patientid` found no draw naming a patient and compared two patients'
    draws, with a note that none named one; a key like it in cartridge.json is suggested."""
    folders = []
    for name, patient in (("p01_d0", "P01"), ("p02_d0", "P02")):
        folders.append(_draw(clean_run, tmp_path, name, 4, 7.5))
        edit_json(folders[-1] / "summary.json",
                  cartridge_info={"PatientID": patient, "patient_age": 61})
    with pytest.raises(InputError, match=r"no draw's cartridge.json names a patient by "
                                         r"'patient_id'; draw 1's has 'PatientID': "
                                         r"--patient-key PatientID\?"):
        compare_draws(folders)
    with pytest.raises(InputError, match="the draws name 2 patients"):
        compare_draws(folders, patient_key="PatientID")
    for folder in folders:  # a key merely sharing a word is no suggestion: a note, as before
        edit_json(folder / "summary.json", cartridge_info={"patient_age": 61})
    draws, _ = compare_draws(folders)
    assert any("no draw's cartridge.json names a patient" in n for n in draws[1].notes)
    # One draw naming its patient by the key, another under a key like it: that draw's
    # patient is checked by it (another patient's was compared as one patient's fall, with a
    # note that it named none); the same patient's is said so.
    edit_json(folders[0] / "summary.json", cartridge_info={"patient_id": "P01"})
    edit_json(folders[1] / "summary.json", cartridge_info={"PatientID": "P02"})
    with pytest.raises(InputError, match=r"draw 2's cartridge.json names no patient by "
                                         r"'patient_id' but 'P02' by 'PatientID', where the "
                                         r"other draws name 'P01'"):
        compare_draws(folders)
    edit_json(folders[1] / "summary.json", cartridge_info={"PatientID": " P01"})
    draws, _ = compare_draws(folders)
    assert "its cartridge.json names the patient by 'PatientID', not 'patient_id': the same " \
        "patient as the other draws" in draws[1].notes
    # Without --date-key, a key that reads as the draw's date is pointed to: the order given
    # is otherwise unchecked.
    for folder, when in zip(folders, ("2026-06-14", "2026-04-19")):  # (a birth date is none)
        edit_json(folder / "summary.json", cartridge_info={"date_of_birth": "1961-02-03",
                                                           "collected_by": "ann",
                                                           "draw_date": when})
    from ctcnet.cli import main

    assert main(["draws", *map(str, folders)]) == 0
    assert "their cartridge.json has 'draw_date'; --date-key draw_date shows each draw's date " \
        "and checks the order" in capsys.readouterr().out


def test_dates_of_another_form_are_said_unchecked_though_no_draw_is_iso(clean_run, tmp_path):
    """Day-first dates alone: the order was checked against nothing and said nothing, so a
    fall given in the wrong order read as a rise without a note."""
    folders = []
    for name, when in (("wk12", "30.03.2026"), ("wk3", "26.01.2026")):
        folders.append(_draw(clean_run, tmp_path, name, 4, 7.5))
        edit_json(folders[-1] / "summary.json", cartridge_info={"scan_date": when})
    draws, _ = compare_draws(folders, date_key="scan_date")
    assert all(any("is not ISO 8601 (a date written as YYYY-MM-DD): its order against the "
                   "other draws is not checked" in n for n in d.notes) for d in draws)
    assert not any("ISO" in n for n in compare_draws(folders[:1], date_key="scan_date")[0][0]
                   .notes)  # one draw: no order to check


def test_a_sample_record_edited_in_summary_json_is_not_read(clean_run, tmp_path, capsys):
    """Another patient's draw with its patient id edited in summary.json read as the same
    patient's; a volume said stated where it was assumed dropped the note."""
    from ctcnet.cli import main

    first = _draw(clean_run, tmp_path, "d0", 4, 7.5)
    second = _draw(clean_run, tmp_path, "wk3", 3, 7.5)
    assert json.loads((second / "summary.json").read_text())["sample_record_sha256"]
    stated = json.loads((second / "summary.json").read_text())["blood_volume_stated"]
    for edit in ({"cartridge_info": {"patient_id": "P01"}}, {"blood_volume_stated": not stated}):
        summary = json.loads((second / "summary.json").read_text())
        (second / "summary.json").write_text(json.dumps({**summary, **edit}))  # by hand
        with pytest.raises(InputError, match=r"^[^:]*: its sample's record \(summary.json's "
                           r"cartridge_info: the patient, the draw's date; whether the blood "
                           r"volume was stated\) was changed since ctcnet wrote it \(its "
                           r"seal, sample_record_sha256; edited by hand\?\): not read"):
            compare_draws([first, second])
        assert main(["verify", "--results", str(second), "--json"]) == 1
        (sample,) = json.loads(capsys.readouterr().out)["samples"]
        assert any("sample_record_sha256" in p for p in sample["problems"])
        (second / "summary.json").write_text(json.dumps(summary))


def test_the_table_is_never_written_into_a_draw_and_goes_to_standard_output_with_a_dash(
        clean_run, tmp_path, capsys):
    """`--out WK12/summary.json --overwrite` wrote the CSV over the draw's own summary; `--out
    -` wrote a file named `-`."""
    import pandas as pd

    from ctcnet.cli import main

    first = _draw(clean_run, tmp_path, "d0", 13, 7.5)
    second = _draw(clean_run, tmp_path, "wk3", 2, 7.5)
    before = (second / "summary.json").read_bytes()
    status, err = run_cli(capsys, "draws", first, second, "--out", second / "summary.json",
                          "--overwrite")
    assert status == 2 and "--out lies in the draw's output folder" in err[0]
    assert (second / "summary.json").read_bytes() == before
    assert main(["draws", str(first), str(second), "--out", "-"]) == 0
    out, err = capsys.readouterr()
    table = pd.read_csv(__import__("io").StringIO(out))
    assert list(table["count"]) == [13, 2] and "model" in table.columns
    assert "2. wk3: ctc 2" in err and not (tmp_path / "-").exists()


def test_a_sample_predict_did_not_finish_is_said_so(clean_run, tmp_path, capsys):
    first = _draw(clean_run, tmp_path, "d0", 4, 7.5)
    stopped = tmp_path / "stopped"
    (stopped / "parts").mkdir(parents=True)
    status, err = run_cli(capsys, "draws", first, stopped)
    assert status == 2 and "predict began this sample and did not finish it" in err[0]


def test_a_sign_off_that_no_longer_holds_is_stale_in_the_row_and_a_draw_without_result_said(
        clean_run, tmp_path):
    """A row read `signed off` beside the automatic figure where the sign-off no longer held
    (a decision made since); a draw after a failed one had no change and no word of why."""
    failed = _draw(clean_run, tmp_path, "d0", 0, 7.5, status="failed")
    second = _draw(clean_run, tmp_path, "wk3", 6, 7.5)
    third = _draw(clean_run, tmp_path, "wk6", 2, 7.5,
                  signoff={"reviewer": "ann", "signed_at": "2026-12-01", "status": "current"},
                  reviewed={"reviewed": 2, "reported": ["ctc", "cluster"],
                            "after_review": {"ctc": 4, "cluster": 0},
                            "after_review_per_7_5_ml": {"ctc": 4.0, "cluster": 0.0}})
    draws, _ = compare_draws([failed, second, third])
    assert draws[2].result_state == "signed off" and draws[2].figure == "after review"
    assert "the previous draw (1) has no result: no change from it to test" in draws[1].notes
    assert "the first draw (1) has no result: no change from it to test" in draws[2].notes
    assert not any("has no result" in n for n in draws[0].notes)
    draws, _ = compare_draws([failed, second, third], signoff_check=lambda folder: False)
    assert draws[2].result_state == "sign-off stale" and draws[2].figure == "automatic"
    assert "near_patient" not in draws[2].row()


def test_a_p_past_a_floats_reach_is_written_as_its_bound_never_0(clean_run, tmp_path):
    assert rate_change_p(2000, 7.5, 0, 7.5) == 0.0  # the sum underflows
    many = _draw(clean_run, tmp_path, "b", 2000, 7.5)
    none = _draw(clean_run, tmp_path, "z", 0, 7.5)
    draws, _ = compare_draws([many, none])
    assert draws[1].p_from_previous == 1e-300


def test_overwrite_writes_over_a_draws_table_only_and_stray_files_are_said(clean_run, tmp_path,
                                                                          capsys):
    """`--out <a scan's frame> --overwrite` wrote the CSV over the frame; a draws table
    written into the results folder stopped `draws results/*` with an OS error."""
    from ctcnet.cli import main

    first = _draw(clean_run, tmp_path, "d0", 13, 7.5)
    second = _draw(clean_run, tmp_path, "wk3", 2, 7.5)
    frame = tmp_path / "r00c00.tif"
    frame.write_bytes(b"II*\x00frame")
    status, err = run_cli(capsys, "draws", first, second, "--out", frame, "--overwrite")
    assert status == 2 and "is not a draws table" in err[0]
    assert frame.read_bytes() == b"II*\x00frame"
    table = tmp_path / "draws.csv"
    assert main(["draws", str(first), str(second), "--out", str(table)]) == 0
    assert main(["draws", str(first), str(second), str(table), "--out", str(table),
                 "--overwrite"]) == 0
    said = capsys.readouterr().out
    assert f"(passed over: {table}" in said and "2. wk3" in said
    # A table a spreadsheet saved again (a byte order mark, quoted header, CRLF) is one; an
    # empty file (made by touch) may be written over.
    table.write_bytes(b'\xef\xbb\xbf"draw","name","folder","result_state","status"\r\n1,a\r\n')
    assert main(["draws", str(first), str(second), str(table), "--out", str(table),
                 "--overwrite"]) == 0
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert main(["draws", str(first), "--out", str(empty), "--overwrite"]) == 0
    assert empty.read_text().startswith("draw,name,folder,result_state,")
    status, err = run_cli(capsys, "draws", first, frame)
    assert status == 2 and "is a file, not a sample's output folder" in err[0]
    status, err = run_cli(capsys, "draws", first, tmp_path / "nope")
    assert status == 2 and "no such folder" in err[0]
