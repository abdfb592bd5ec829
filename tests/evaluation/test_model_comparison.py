"""ctcnet.evaluation.model_comparison and ``ctcnet evaluate NEW --expected OLD``: a new model
version's run of the same scans against the one a lab runs, its counts and its events."""

import json

import numpy as np
import pandas as pd
import pytest

from ctcnet.evaluation.model_comparison import event_changes, mcnemar_exact, paired_events


def run(folder, sample, events, rate, model, cartridge=None):
    """A sample's predict output as the comparison reads it: events.parquet and summary.json
    (its scan's cartridge_id the sample's own unless given: one scan is one tube)."""
    cartridge = cartridge or f"scan-{sample}"
    path = folder / sample
    path.mkdir(parents=True)
    pd.DataFrame(events).to_parquet(path / "events.parquet")
    (path / "summary.json").write_text(json.dumps(
        {"sample_id": sample, "status": "ok", "blood_volume_ml": 7.5,
         "per_7_5_ml": {"ctc": rate}, "review_list": {"events": 0}, "cartridge_id": cartridge,
         "model": {"path": f"/models/{model}.onnx", "sha256": model * 8},
         "run_fingerprint": {"model_sha256": model * 8}, "frame_device": "numpy",
         "software": {"ctcnet": "0.1.0", "commit": model * 40, "modified": model == "b",
                      "code_sha256": "c" * 64}}))
    return path


def events(classes, guard=None, review=None, shift=0.0, ids=None):
    n = len(classes)
    return {"frame_id": ["r00c00"] * n, "event_id": ids or list(range(n)),
            "x": [10.0 * i + shift for i in range(n)], "y": [5.0] * n, "class": classes,
            "guard": guard or [""] * n, "review": review or [False] * n,
            "p_ctc": [0.9 if c == "ctc" else 0.1 for c in classes]}


def test_events_are_paired_by_place_not_by_id(tmp_path):
    """Another model's detection may number a frame's events otherwise and move them by a
    pixel: paired by mutual nearest place, an event too far from any is one run's alone."""
    old = run(tmp_path / "a", "s", events(["ctc", "wbc", "debris", "wbc"]), 7.5, "a")
    new = run(tmp_path / "b", "s", events(["ctc", "wbc", "debris"], shift=0.8,
                                          ids=[7, 8, 9]), 7.5, "b")
    both, old_only, new_only = paired_events(old, new)
    assert list(both["event_id_reference"][:3]) == [0, 1, 2]
    assert list(both["event_id"][:3]) == [7, 8, 9]
    assert (old_only, new_only) == (1, 0)
    # The reference's event found by it alone comes after the pairs, its other side empty.
    alone = both.iloc[3]
    assert alone["event_id_reference"] == 3 and pd.isna(alone["event_id"])
    assert alone["class_reference"] == "wbc" and pd.isna(alone["class"])


def test_a_ctc_one_run_found_alone_is_a_change_and_counts_in_mcnemar(tmp_path):
    old = run(tmp_path / "a", "s", events(["wbc", "ctc"]), 7.5, "a")
    new = run(tmp_path / "b", "s", events(["wbc"]), 0.0, "b")
    summary, table = event_changes([("s", old, new)])
    assert summary["events_paired"] == 1 and summary["events_reference_only"] == 1
    assert summary["counted_ctc"]["reference_only"] == 1 and summary["calls_changed"] == 0
    assert summary["review_changed"] == 0  # an event found alone has no review to change
    assert table[["class_reference", "x_reference"]].values.tolist() == [["ctc", 10.0]]
    # The compared run's columns stay empty: its position was the reference's.
    assert table[["x", "y", "event_id"]].isna().all(axis=None)


def test_changed_events_and_the_ctcs_counted_by_one_run_alone(tmp_path):
    old = run(tmp_path / "a", "s", events(["ctc", "ctc", "wbc", "debris", "ctc"],
                                          guard=["", "", "", "", "no_dna"]), 15.0, "a")
    new = run(tmp_path / "b", "s", events(["ctc", "debris", "ctc", "debris", "ctc"],
                                          review=[False, False, False, True, False]), 22.5, "b")
    summary, table = event_changes([("s", old, new)])
    # 1: a counted CTC lost to debris; 2: a wbc now a counted CTC; 3: review alone; 4: a CTC
    # the guard held, now counted.
    assert list(table["event_id"]) == [1, 2, 3, 4]
    assert summary["by_change"] == {"ctc -> debris": 1, "wbc -> ctc": 1}
    assert summary["calls_changed"] == 2 and summary["review_changed"] == 1
    # The same call counted by one run and held by the other is a change of its own.
    assert summary["by_counting_change"] == {"ctc held -> counted": 1}
    assert summary["counting_changed"] == 1
    assert summary["counted_ctc"]["compared_only"] == 2
    assert summary["counted_ctc"]["reference_only"] == 1
    assert summary["counted_ctc"]["mcnemar_exact_p"] == pytest.approx(1.0)


def test_mcnemar_exact_is_the_binomial_test_of_the_discordant_events():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(0, 8) == pytest.approx(2 * 0.5 ** 8)
    assert mcnemar_exact(6, 1) == pytest.approx(0.125)


def test_evaluate_expected_with_another_models_run_names_both_and_lists_the_changes(
        tmp_path, capsys):
    from ctcnet.cli import main

    for sample, (rate_a, rate_b) in {"P1": (7.5, 15.0), "P2": (0.0, 0.0)}.items():
        run(tmp_path / "old", sample, events(["ctc", "wbc"] if rate_a else ["wbc", "wbc"]),
            rate_a, "a")
        run(tmp_path / "new", sample, events(["ctc", "ctc"] if rate_b else ["wbc", "wbc"]),
            rate_b, "b")
    # Another scan under a sample id of the reference: its events are not paired.
    run(tmp_path / "old", "P3", events(["ctc"]), 7.5, "a", cartridge="other")
    run(tmp_path / "new", "P3", events(["ctc"]), 7.5, "b")
    out = tmp_path / "out"
    assert main(["evaluate", str(tmp_path / "new"), "--expected", str(tmp_path / "old"),
                 "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "reference: a.onnx (SHA-256 aaaaaaaa" in said and "ctcnet:    b.onnx" in said
    # Two builds of one version told apart (a validation compares builds, not versions).
    assert "ctcnet 0.1.0, commit aaaaaaaaaaaa, frames on numpy)" in said
    assert "ctcnet 0.1.0, commit bbbbbbbbbbbb (modified), code cccccccccccc" in said
    assert "calls changed 1 (wbc -> ctc 1)" in said and "(2 sample(s)," in said
    assert "another scan than the reference's (cartridge_id differs" in said and \
        said.rstrip().splitlines()[-2].endswith(": P3")
    report = json.loads((out / "comparison.json").read_text())
    assert report["reference_models"][0]["sha256"] == "a" * 8
    assert report["models"][0]["network_sha256"] == "b" * 8
    assert report["models"][0]["software"].startswith("ctcnet 0.1.0, commit bbbbbbbbbbbb")
    assert report["models"][0]["frame_device"] == "numpy"
    assert report["bland_altman"]["bias"] == pytest.approx(7.5 / 3)
    assert "reference_sha256" not in report  # a folder, named by its models instead
    assert report["event_changes"]["other_scans"] == ["P3"]
    changed = pd.read_csv(out / "changed_events.csv")
    assert changed[["sample_id", "class_reference", "class"]].values.tolist() == [
        ["P1", "wbc", "ctc"]]
    assert np.isclose(changed["p_ctc"].iloc[0], 0.9)
    from tests.test_outputs_doc import doc_tables  # every column documented, and no other

    assert {n for row, _ in doc_tables()["changed_events.csv"] for n in row} == \
        set(changed.columns)
    # --class: the events counted by one run alone are of that class too (they were ctc's
    # while the rates were the class asked for).
    for folder in ("old", "new"):
        for summary_path in (tmp_path / folder).glob("*/summary.json"):
            summary = json.loads(summary_path.read_text())
            summary["per_7_5_ml"]["wbc"] = 7.5
            summary_path.write_text(json.dumps(summary))
    assert main(["evaluate", str(tmp_path / "new"), "--expected", str(tmp_path / "old"),
                 "--out", str(tmp_path / "wbc"), "--class", "wbc"]) == 0
    said = capsys.readouterr().out
    report = json.loads((tmp_path / "wbc" / "comparison.json").read_text())
    assert report["class"] == "wbc" and "counted_wbc" in report["event_changes"]
    assert "wbc counted by ctcnet alone 0, by the reference alone 1" in said


def test_a_reference_resumed_from_another_builds_frames_names_the_builds_that_made_them(
        tmp_path, capsys):
    """A reference run finished by an upgraded ctcnet from its journal: the comparison named
    the finishing build alone, though the earlier one made every call."""
    from ctcnet.cli import main

    path = run(tmp_path / "old", "P1", events(["ctc", "wbc"]), 7.5, "a")
    summary = json.loads((path / "summary.json").read_text())
    made = {"onnx (file 999999999999), ctcnet 0.1.0 (eeeeeeeeeeee)": 3}
    (path / "summary.json").write_text(json.dumps({**summary, "frames_made_by": made}))
    run(tmp_path / "new", "P1", events(["ctc", "wbc"]), 7.5, "b")
    out = tmp_path / "out"
    assert main(["evaluate", str(tmp_path / "new"), "--expected", str(tmp_path / "old"),
                 "--out", str(out)]) == 0
    assert "[its resumed samples' frames made by onnx (file 999999999999), ctcnet 0.1.0 " \
        "(eeeeeeeeeeee): 3]" in capsys.readouterr().out
    report = json.loads((out / "comparison.json").read_text())
    assert report["reference_models"][0]["frames_made_by"] == made
    assert "frames_made_by" not in report["models"][0]
    # Each maker once, its frames summed over the samples (one entry a sample before).
    from ctcnet.evaluation.model_comparison import makers_of

    makers = makers_of([{**summary, "frames_made_by": {"x": n}} for n in (3, 5)] + [summary]
                       + [{**summary, "frames_made_by": {"y": None}}])
    assert len(makers) == 1 and makers[0]["frames_made_by"] == {"x": 8}


def test_a_reference_without_events_leaves_every_compared_event_alone(tmp_path):
    """A reference run that failed (no frame read) has an empty events table: each of the
    compared run's events is its own, where the comparison fell over (KeyError)."""
    old = run(tmp_path / "a", "s", events([]), 0.0, "a")
    new = run(tmp_path / "b", "s", events(["ctc", "wbc"]), 7.5, "b")
    both, old_only, new_only = paired_events(old, new)
    assert (old_only, new_only) == (0, 2)
    assert list(both["event_id"]) == [0, 1] and both["event_id_reference"].isna().all()
    # ... and the other way round.
    assert paired_events(new, old)[1:] == (2, 0)


def restate(path, **fields):
    """A sample's summary.json with ``fields`` set (a frame skipped, a run that failed)."""
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, **fields}))
    return path


def test_a_frame_one_run_skipped_is_left_out_of_the_pairs(tmp_path):
    """A frame the reference could not read (a plane missing that it reads and the other
    model does not): the other run's CTCs there read as counted by it alone, and McNemar's
    test took them for a direction of the new model."""
    old = restate(run(tmp_path / "a", "s", events(["ctc"]), 7.5, "a"),
                  events_by_frame={"r00c00": 1},
                  skipped_frames=[{"frame": "r00c01", "reason": "missing channel file(s)"}])
    # r00c00: the reference's CTC and a CTC of its own; r00c01: three CTCs
    new = {**events(["ctc"] * 5), "frame_id": ["r00c00"] * 2 + ["r00c01"] * 3}
    new = restate(run(tmp_path / "b", "s", new, 30.0, "b"),
                  events_by_frame={"r00c00": 2, "r00c01": 3})
    summary, table = event_changes([("s", old, new)])
    assert (summary["events_paired"], summary["events_compared_only"]) == (1, 1)
    assert summary["counted_ctc"]["compared_only"] == 1
    assert set(table["frame_id"]) == {"r00c00"}
    assert summary["frames_one_run_read"] == 1


def test_a_sample_without_a_rate_on_one_side_has_no_events_compared(tmp_path, capsys):
    """A failed run read no frame: each of the other's events read as one it missed."""
    from ctcnet.cli import main

    for side, model in (("old", "a"), ("new", "b")):
        run(tmp_path / side, "P1", events(["ctc", "wbc"]), 7.5, model)
        run(tmp_path / side, "P2", events(["ctc", "wbc"]), 7.5, model)
    restate(tmp_path / "new" / "P2", status="failed", per_7_5_ml={"ctc": None},
            events_by_frame={})
    pd.DataFrame(events([])).to_parquet(tmp_path / "new" / "P2" / "events.parquet")
    out = tmp_path / "out"
    assert main(["evaluate", str(tmp_path / "new"), "--expected", str(tmp_path / "old"),
                 "--out", str(out)]) == 0
    assert "events not compared, no rate on one side (its run failed): P2" in \
        capsys.readouterr().out
    changes = json.loads((out / "comparison.json").read_text())["event_changes"]
    assert changes["samples_without_rate"] == ["P2"] and changes["samples"] == 1
    assert changes["events_reference_only"] == 0 and changes["other_scans"] == []
    # The failed run as the reference: left out the same way.
    assert main(["evaluate", str(tmp_path / "old"), "--expected", str(tmp_path / "new"),
                 "--out", str(tmp_path / "back")]) == 0
    changes = json.loads((tmp_path / "back" / "comparison.json").read_text())["event_changes"]
    assert changes["samples_without_rate"] == ["P2"] and changes["events_compared_only"] == 0


def test_a_run_of_some_of_the_references_tubes_names_the_others_not_compared(
        tmp_path, capsys):
    """A new model run on a subset of the tubes: the reference's others were refused as
    mistyped ids, as a file of expected counts listing them would be."""
    from ctcnet.cli import main

    for sample in ("P1", "P2", "P3"):
        run(tmp_path / "old", sample, events(["ctc", "wbc"]), 7.5, "a")
    run(tmp_path / "new", "P1", events(["ctc", "wbc"]), 7.5, "b")
    out = tmp_path / "out"
    assert main(["evaluate", str(tmp_path / "new"), "--expected", str(tmp_path / "old"),
                 "--out", str(out)]) == 0
    assert "2 sample(s) of the reference this run did not read, not compared: P2, P3" in \
        capsys.readouterr().out
    report = json.loads((out / "comparison.json").read_text())
    assert report["reference_not_read"] == ["P2", "P3"] and report["samples"] == 1
    assert pd.read_csv(out / "comparison.csv")["sample_id"].tolist() == ["P1"]
