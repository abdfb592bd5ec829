"""A reviewer's decisions (:mod:`ctcnet.review.decisions`): candidates, review.csv keyed by run
and position (a line appended per decision, old files migrated, concurrent writers), decisions
matched to a re-run and to their cartridge, and a log that reads what others append."""

import multiprocessing
import os
import sys
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from ctcnet.errors import InputError
from ctcnet.inference.counts import count_events, count_reviewed
from ctcnet.review import decision_journal
from ctcnet.review import decisions as D


def test_candidates_are_calls_flags_and_a_stable_qc_sample():
    events = pd.DataFrame({"event_id": range(100), "class": ["debris"] * 90 + ["ctc"] * 10,
                           "review": [False] * 80 + [True] * 20})
    chosen = D.select_candidates(events, ["ctc", "cluster"], "S1", qc_fraction=0.1, qc_min=5)
    assert set(chosen.loc[chosen["why"] == "call", "event_id"]) == set(range(90, 100))
    assert set(chosen.loc[chosen["why"] == "flagged", "event_id"]) == set(range(80, 90))
    qc = chosen.loc[chosen["why"] == "qc", "event_id"]
    assert len(qc) == 8 and (qc < 80).all()
    again = D.select_candidates(events, ["ctc", "cluster"], "S1", qc_fraction=0.1, qc_min=5)
    assert again["event_id"].tolist() == chosen["event_id"].tolist()  # same after a restart


def tiny_run(classes=("ctc", "ctc", "wbc", "ctc"), frame="f0", pixel_um=0.5):
    """A run of a few events 20 px apart in one frame (tolerance: 3 um = 6 px)."""
    n = len(classes)
    events = pd.DataFrame({"event_id": range(n), "frame_id": [frame] * n,
                           "x": 10.0 + 20.0 * np.arange(n), "y": [5.0] * n,
                           "class": list(classes)})
    return events, D.RunEvents(events, pixel_um)


def test_decisions_replace_and_count(tmp_path):
    events, run = tiny_run()
    D.record_decision(tmp_path, run, 3, "ctc", "a")
    D.record_decision(tmp_path, run, 1, "wbc", "a")
    matched = D.record_decision(tmp_path, run, 3, D.REJECTED, "b")  # a second look wins
    table = D.read_decisions(tmp_path)
    assert list(table.columns) == D.COLUMNS
    # Appended, oldest first: the second look replaces the first, which stays as history.
    assert table["event_id"].tolist() == [3, 1, 3] and set(table["run_id"]) == {run.run_id}
    assert table[["frame_id", "x", "y"]].values.tolist() == [["f0", 70.0, 5.0],
                                                               ["f0", 30.0, 5.0],
                                                               ["f0", 70.0, 5.0]]
    assert D.superseded_rows(table, run.tolerance_px).tolist() == [True, False, False]
    decided = matched.decisions
    assert decided["event_id"].tolist() == [1, 3]
    assert decided["reviewer_call"].tolist() == ["wbc", "rejected"]
    model = count_events(events.assign(review=False), ["ctc", "wbc", "cluster"],
                         ["ctc", "cluster"], 3.75)
    counts = count_reviewed(events, decided, model)
    assert model.counted["ctc"] == 3 and model.per_7_5_ml["ctc"] == 6.0
    assert counts.confirmed["ctc"] == 0 and counts.decided["ctc"] == 2
    # Event 1 relabelled wbc, event 3 rejected: one ctc call is left, and two wbc.
    assert counts.after_review == {"ctc": 1, "wbc": 2, "cluster": 0}
    assert counts.after_review_per_7_5_ml["ctc"] == 2.0
    assert counts.confirmed["wbc"] == 1
    assert counts.rejected == 1 and counts.reviewed == 2 and counts.unattached == 0
    with pytest.raises(InputError):
        D.record_decision(tmp_path, run, 99, "ctc", "a")
    (tmp_path / "review.csv").write_text("what,ever\n1,2\n")
    with pytest.raises(InputError):
        D.read_decisions(tmp_path)


def test_a_call_that_is_no_class_of_the_model_counts_for_nothing_and_is_said(tmp_path):
    """A journal row with a call the server refuses ("tumour": edited by hand, or another
    model's) was counted as a class of its own and cut into a crop folder of that name."""
    events, plain = tiny_run()
    run = D.RunEvents(events, 0.5, classes=("ctc", "wbc", "cluster", "debris"))
    D.record_decision(tmp_path, run, 1, "wbc", "a")
    D.record_decision(tmp_path, run, 2, D.REJECTED, "a")
    line = (tmp_path / "review.csv").read_text().splitlines()[1]
    with open(tmp_path / "review.csv", "a") as fh:
        fh.write(line.replace(",wbc,a,", ",tumour,a,").replace(f",{events['x'][1]:g},",
                                                               f",{events['x'][0]:g},")
                 .replace(f"{run.run_id},,1,", f"{run.run_id},,0,") + "\n")
    matched = D.load_decisions(tmp_path, run)
    assert matched.decisions["reviewer_call"].tolist() == ["wbc", "rejected"]
    (said,) = matched.unattached["reason"]
    # On the event decided: the earlier decision stands (the row took it back unsaid).
    with open(tmp_path / "review.csv", "a") as fh:
        fh.write(line.replace(",wbc,a,", ",tumour,a,") + "\n")
    matched = D.load_decisions(tmp_path, run)
    assert matched.decisions.set_index("event_id")["reviewer_call"].to_dict() == {
        1: "wbc", 2: "rejected"}
    assert len(matched.unattached) == 2
    assert said == ("its call 'tumour' is none of the model's classes (ctc, wbc, cluster, "
                    "debris) nor a rejection: not counted")
    # Unchecked where the run names no classes (a caller's own table).
    assert "tumour" in D.load_decisions(tmp_path, plain).decisions["reviewer_call"].tolist()


def test_a_machine_clock_set_back_dates_no_decision_before_those_it_follows(tmp_path,
                                                                             caplog):
    """A review server a day behind dated its decisions before the journal's latest line and
    the sign-off, and the sign-off's check then read ctcnet's own lines as added by hand:
    each is dated no earlier than the latest, and the clock is said."""
    from datetime import UTC, datetime, timedelta

    events, run = tiny_run()
    now = datetime(2026, 12, 7, 0, 41, 54, tzinfo=UTC)
    D.record_decision(tmp_path, run, 1, "wbc", "a", now=now)
    with caplog.at_level("WARNING"):
        D.record_decision(tmp_path, run, 2, D.REJECTED, "a", now=now - timedelta(days=1))
    assert D.read_decisions(tmp_path)["time"].tolist() == [now.isoformat(
        timespec="microseconds")] * 2
    assert "this machine's clock reads 2026-12-06T00:41:54" in caplog.text
    signed = now + timedelta(seconds=1)
    from ctcnet.review.signoff import SignOff, write_signoff

    write_signoff(tmp_path, SignOff(reviewer="a", signed_at=signed.isoformat(),
                                    run_id=run.run_id, cartridge_id=None, decided=2,
                                    unreviewed=0, after_review_per_7_5_ml={}, journal_rows=2))
    D.record_decision(tmp_path, run, 3, "ctc", "a", now=now)
    assert D.read_decisions(tmp_path)["time"].tolist()[-1] == signed.isoformat(
        timespec="microseconds")
    later = now + timedelta(minutes=5)  # a clock that is right: as it reads
    D.record_decision(tmp_path, run, 0, "ctc", "a", now=later)
    assert D.read_decisions(tmp_path)["time"].tolist()[-1] == later.isoformat(
        timespec="microseconds")


def test_decisions_match_a_rerun_by_position_and_keep_the_rest(tmp_path):
    events, run = tiny_run()
    D.record_decision(tmp_path, run, 0, "ctc", "a")
    D.record_decision(tmp_path, run, 1, "wbc", "a")
    D.record_decision(tmp_path, run, 2, D.REJECTED, "a")
    D.record_decision(tmp_path, run, 3, "ctc", "a")
    # The re-run: event 0 gone (ids shift by one), centroids 1.5 px off, event 2 called debris.
    moved = events.iloc[1:].assign(event_id=range(3), x=events["x"].iloc[1:] + 1.5,
                                   **{"class": ["ctc", "debris", "ctc"]})
    rerun = D.RunEvents(moved, 0.5)
    assert rerun.run_id != run.run_id
    matched = D.load_decisions(tmp_path, rerun)
    assert dict(zip(matched.decisions["event_id"], matched.decisions["reviewer_call"])) == {
        0: "wbc", 2: "ctc"}
    assert matched.decisions["decided_call"].tolist() == ["ctc", "ctc"]
    reasons = dict(zip(matched.unattached["event_id"], matched.unattached["reason"]))
    assert set(reasons) == {0, 2}  # the first run's ids: kept as they were written
    assert "no event within 3 um" in reasons[0]
    assert "rejected a wbc call; this run calls the event debris" in reasons[2]
    # A new decision in the re-run replaces the one that attaches to its event, nothing else.
    matched = D.record_decision(tmp_path, rerun, 0, D.REJECTED, "b")
    table = D.read_decisions(tmp_path)
    assert len(table) == 5 and (table["run_id"] == rerun.run_id).sum() == 1
    # The first run's decision on that cell is history now, in the file but replaced.
    assert D.superseded_rows(table, rerun.tolerance_px).tolist() == [False, True, False,
                                                                       False, False]
    assert len(matched.unattached) == 2 and matched.decisions["event_id"].tolist() == [0, 2]
    # Decisions of two other runs on the event the first run's 3 was (5 px either side of the
    # re-run's event 2): the later one counts, the other is superseded; both stay in the file.
    table = pd.concat([table, table.iloc[[-1]].assign(
        run_id="another", event_id=9, x=76.5, reviewer_call="wbc",
        time=(datetime.now(UTC) + timedelta(minutes=5)).isoformat())],
        ignore_index=True)
    table.loc[table["event_id"] == 3, "x"] = 66.5
    matched = D.match_decisions(table, rerun)
    assert matched.superseded == 2 and len(matched.table) == 6  # the replaced row, and 3
    assert dict(zip(matched.decisions["event_id"], matched.decisions["reviewer_call"])) == {
        0: "rejected", 2: "wbc"}


def test_old_review_csv_is_read_and_migrated(tmp_path):
    events, run = tiny_run()
    (tmp_path / "events.parquet").write_bytes(b"")  # its time is the run's
    written = (tmp_path / "events.parquet").stat().st_mtime
    run = D.RunEvents(events, 0.5, written_at=written)
    later = datetime.fromtimestamp(written + 60, UTC).isoformat(timespec="seconds")
    earlier = datetime.fromtimestamp(written - 60, UTC).isoformat(timespec="seconds")
    old = pd.DataFrame([[1, "ctc", "wbc", "a", later],        # this run: attaches
                        [2, "wbc", "wbc", "a", earlier],      # decided before this run
                        [3, "wbc", "wbc", "a", later],        # the call differs
                        [7, "ctc", "ctc", "a", later]],       # no such event
                       columns=D.LEGACY_COLUMNS)
    old.to_csv(tmp_path / "review.csv", index=False)
    matched = D.load_decisions(tmp_path, run)
    assert matched.decisions["event_id"].tolist() == [1]
    assert sorted(matched.unattached["event_id"]) == [2, 3, 7]
    before = (tmp_path / "review.csv").read_text()
    D.migrate_decisions(tmp_path, run)
    table = D.read_decisions(tmp_path)
    assert list(pd.read_csv(tmp_path / "review.csv").columns) == D.COLUMNS
    # The file as it was stays beside it, for an earlier ctcnet to read.
    assert (tmp_path / D.EARLIER_LAYOUT_FILE).read_text() == before
    assert table["event_id"].tolist() == [1, 2, 3, 7]  # nothing dropped
    assert table["run_id"].tolist() == [run.run_id, "", "", ""]
    assert table[["frame_id", "x"]].iloc[0].tolist() == ["f0", 30.0]
    # Once keyed, the decision follows its event through a re-run.
    moved = events.iloc[1:].assign(event_id=range(3))
    matched = D.load_decisions(tmp_path, D.RunEvents(moved, 0.5, written_at=written + 3600))
    assert matched.decisions[["event_id", "reviewer_call"]].values.tolist() == [[0, "wbc"]]
    assert len(matched.unattached) == 3


def _record_many(folder, events, pixel_um, ids):
    run = D.RunEvents(events, pixel_um)
    for event_id in ids:
        D.record_decision(folder, run, event_id, D.REJECTED, f"pid{os.getpid()}")


def test_without_flock_threads_still_take_turns(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "fcntl", None)  # `import fcntl` fails, as on Windows
    monkeypatch.setattr(decision_journal, "_warned_no_flock", False)
    events, _ = tiny_run(classes=["debris"] * 40)
    threads = [threading.Thread(target=_record_many, args=(tmp_path, events, 0.5,
                                                           range(k, 40, 2))) for k in range(2)]
    with caplog.at_level("WARNING", logger="ctcnet.review"):
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(D.read_decisions(tmp_path)["event_id"]) == list(range(40))
    assert "no file locking on this platform" in caplog.text
    assert not (tmp_path / D.LOCK_FILE).exists()


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    events, _ = tiny_run(classes=["debris"] * 60)
    ctx = multiprocessing.get_context("spawn")  # two interpreters, as two servers would be
    procs = [ctx.Process(target=_record_many, args=(tmp_path, events, 0.5, range(k, 60, 2)))
             for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    table = D.read_decisions(tmp_path)
    assert sorted(table["event_id"]) == list(range(60))
    assert table["reviewer"].nunique() == 2

# --- Decisions belong to one cartridge --------------------------------------------------------



def test_decisions_of_another_run_attach_only_on_their_cartridge(tmp_path, caplog):
    events, run = tiny_run()
    on_a = D.RunEvents(events, 0.5, cartridge_id="cartA")
    D.record_decision(tmp_path, on_a, 1, "wbc", "a")
    assert D.read_decisions(tmp_path)["cartridge_id"].tolist() == ["cartA"]
    # The same positions in a run of cartridge A (another model) and of cartridge B (another
    # patient's scan predicted into this folder under the same sample id).
    moved = events.assign(x=events["x"] + 1.0)
    again_a = D.RunEvents(moved, 0.5, cartridge_id="cartA")
    assert D.load_decisions(tmp_path, again_a).decisions["event_id"].tolist() == [1]
    on_b = D.RunEvents(moved, 0.5, cartridge_id="cartB")
    with caplog.at_level("WARNING", logger="ctcnet.review"):
        matched = D.migrate_decisions(tmp_path, on_b)
    assert matched.decisions.empty and matched.other_cartridge == 1
    assert "made on another cartridge with this sample id (cartridge cartA; this run's is " \
        "cartB)" in matched.unattached["reason"].iloc[0]
    assert "1 decision(s) in review.csv were made on another cartridge" in caplog.text
    # Recorded on B, a decision on the same event keeps A's in the file (never counted on B).
    D.record_decision(tmp_path, on_b, 1, "ctc", "b")
    table = D.read_decisions(tmp_path)
    assert table["cartridge_id"].tolist() == ["cartA", "cartB"]
    assert D.load_decisions(tmp_path, again_a).decisions["reviewer_call"].tolist() == ["wbc"]


def test_decisions_on_a_frame_unchanged_attach_when_another_frame_of_the_cartridge_changed(
        tmp_path, caplog):
    """A frame fixed after a review (a truncated frame exported again) makes another
    cartridge id, but the decisions made on the frames that kept their pixels still count;
    those on the frame that changed are set aside. A decision of the file's layout before
    frames' digests were recorded is given its frame's digest on the run it was made in."""
    events = pd.DataFrame({"event_id": range(4), "frame_id": ["f0", "f0", "f1", "f1"],
                           "x": [10.0, 30.0, 10.0, 30.0], "y": [5.0] * 4,
                           "class": ["ctc", "ctc", "ctc", "wbc"]})
    before = {"f0": {"sha256": "d0"}, "f1": {"sha256": "d1"}}
    on_a = D.RunEvents(events, 0.5, cartridge_id="cartA", frame_digests=before)
    D.record_decisions(tmp_path, on_a, {1: "wbc", 2: "wbc"}, "a")
    assert D.read_decisions(tmp_path)["frame_digest"].tolist() == ["d0", "d1"]
    # f1 fixed: the cartridge's id changes, and the rerun numbers its events anew.
    fixed = {"f0": {"sha256": "d0"}, "f1": {"sha256": "d1-fixed"}}
    rerun = events.assign(event_id=events["event_id"] + 10, x=events["x"] + 1.0)
    on_b = D.RunEvents(rerun, 0.5, cartridge_id="cartB", frame_digests=fixed)
    with caplog.at_level("WARNING", logger="ctcnet.review"):
        matched = D.migrate_decisions(tmp_path, on_b)
    assert matched.decisions["event_id"].tolist() == [11]
    assert matched.decisions["reviewer_call"].tolist() == ["wbc"]
    assert matched.other_cartridge == 1
    assert matched.unattached["frame_id"].tolist() == ["f1"]
    # A later decision on B replaces the one made on A for the same cell of the same pixels.
    D.record_decision(tmp_path, on_b, 11, "ctc", "b")
    assert D.load_decisions(tmp_path, on_b).decisions["reviewer_call"].tolist() == ["ctc"]
    # Another scan under the same sample id: no frame has the pixels decided on.
    other = D.RunEvents(rerun, 0.5, cartridge_id="cartC",
                        frame_digests={"f0": {"sha256": "e0"}, "f1": {"sha256": "e1"}})
    assert D.load_decisions(tmp_path, other).decisions.empty
    # The file of the layout before frames' digests (a ctcnet that kept no seal): a row made
    # on this run gets them.
    (tmp_path / "review.csv").unlink()
    (tmp_path / ".review.csv.seal").unlink()
    D.record_decision(tmp_path, on_a, 1, "wbc", "a")
    table = D.read_decisions(tmp_path)
    table[D.COLUMNS[:-1]].to_csv(tmp_path / "review.csv", index=False)
    (tmp_path / ".review.csv.seal").unlink()
    assert D.read_decisions(tmp_path)["frame_digest"].tolist() == [""]
    assert D.migrate_decisions(tmp_path, on_a).decisions["event_id"].tolist() == [1]
    written = pd.read_csv(tmp_path / "review.csv", keep_default_na=False)
    assert list(written.columns) == D.COLUMNS and written["frame_digest"].tolist() == ["d0"]
    assert D.load_decisions(tmp_path, on_b).decisions["event_id"].tolist() == [11]


def test_decisions_recorded_before_cartridges_were_named(tmp_path, caplog):
    """A file without cartridge_id: a row attaches to the run it was made in (and is given
    its cartridge when the file is rewritten); from another run it is set aside."""
    events, run = tiny_run()
    D.record_decision(tmp_path, run, 1, "wbc", "a")  # no cartridge known
    D.record_decision(tmp_path, run, 2, "wbc", "a")
    table = D.read_decisions(tmp_path)
    table.loc[1, "run_id"] = "an-earlier-run"
    table[D.POSITION_COLUMNS].to_csv(tmp_path / "review.csv", index=False)
    now = D.RunEvents(events, 0.5, cartridge_id="cartA")
    matched = D.migrate_decisions(tmp_path, now)
    assert matched.decisions["event_id"].tolist() == [1]
    assert "before decisions named their cartridge" in matched.unattached["reason"].iloc[0]
    written = pd.read_csv(tmp_path / "review.csv", keep_default_na=False)
    assert list(written.columns) == D.COLUMNS
    assert written["cartridge_id"].tolist() == ["cartA", ""]
    # Said as what it is: not "made on another cartridge (another scan?)", which an upgrade
    # followed by predict --overwrite of the same scan read as its decisions' scan replaced.
    import logging

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        D.warn_set_aside(tmp_path, matched)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "did not record which cartridge" in said[0], said

# ---------------------------------------------------------------------------------------------
# review.csv grows by a line per decision; readers take the last decision per event.



def test_a_decision_is_appended_and_the_file_never_rewritten(tmp_path):
    events, run = tiny_run()
    D.record_decision(tmp_path, run, 1, "wbc", "a")
    path = tmp_path / D.REVIEW_FILE
    first, inode = path.read_bytes(), path.stat().st_ino
    D.record_decision(tmp_path, run, 2, D.REJECTED, "a")
    D.clear_decision(tmp_path, run, 1, "a")
    text = path.read_bytes()
    # The same file, grown by a line each: what was saved before is never written again.
    assert path.stat().st_ino == inode and text.startswith(first)
    assert text.count(b"\n") == first.count(b"\n") + 2
    matched = D.load_decisions(tmp_path, run)
    assert matched.decisions[["event_id", "reviewer_call"]].values.tolist() == [
        [2, D.REJECTED]]
    assert matched.unattached.empty  # a take-back is no decision left over
    # Taking back an undecided event writes nothing.
    D.clear_decision(tmp_path, run, 3, "a")
    assert path.read_bytes() == text


def test_an_unfinished_last_line_is_ignored_then_cut_off(tmp_path, caplog):
    events, run = tiny_run()
    D.record_decision(tmp_path, run, 1, "wbc", "a")
    path = tmp_path / D.REVIEW_FILE
    whole = path.read_bytes()
    with open(path, "ab") as fh:  # a writer stopped mid-line (a crash before its fsync)
        fh.write(f"{run.run_id},,3,f0,70.0,5.0,ctc,wb".encode())
    with caplog.at_level("WARNING", logger="ctcnet.review"):
        assert D.read_decisions(tmp_path)["event_id"].tolist() == [1]
        D.record_decision(tmp_path, run, 0, "ctc", "a")
    assert "unfinished last line" in caplog.text
    assert path.read_bytes().startswith(whole)
    table = D.read_decisions(tmp_path)
    assert table["event_id"].tolist() == [1, 0] and table["reviewer_call"].tolist() == [
        "wbc", "ctc"]


def test_a_replaced_decision_does_not_come_back_after_a_rerun(tmp_path):
    """Confirmed, then rejected: in a re-run that calls the cell otherwise the rejection says
    nothing, and the confirmation it replaced must not count in its stead."""
    events, run = tiny_run()
    D.record_decision(tmp_path, run, 3, "ctc", "a")
    D.record_decision(tmp_path, run, 3, D.REJECTED, "a")
    D.record_decision(tmp_path, run, 1, "wbc", "a")
    D.clear_decision(tmp_path, run, 1, "a")  # taken back: stays undecided in the re-run too
    rerun = D.RunEvents(events.assign(x=events["x"] + 1.0, **{"class": ["ctc", "ctc", "wbc",
                                                                         "wbc"]}), 0.5)
    matched = D.load_decisions(tmp_path, rerun)
    assert matched.decisions.empty
    assert matched.unattached["reason"].tolist() == [
        "rejected a ctc call; this run calls the event wbc"]


def test_a_log_reads_what_others_append_and_what_they_rewrite(tmp_path, monkeypatch):
    events, run = tiny_run(classes=["debris"] * 8)
    mine, theirs = D.DecisionLog(tmp_path), D.DecisionLog(tmp_path)
    D.record_decision(tmp_path, run, 0, "ctc", "a", decisions=mine)
    whole_reads = []
    real = D.DecisionLog._read_whole
    monkeypatch.setattr(D.DecisionLog, "_read_whole",
                        lambda self, fh: (whole_reads.append(1), real(self, fh)))
    D.record_decision(tmp_path, run, 1, "wbc", "b", decisions=theirs)
    assert mine.matched(run).decisions["event_id"].tolist() == [0, 1]
    D.record_decision(tmp_path, run, 2, "wbc", "a", decisions=mine)
    assert mine.matched(run).decisions["event_id"].tolist() == [0, 1, 2]
    # Only `theirs` read the file whole (the first time); `mine` read the lines appended.
    assert len(whole_reads) == 1
    # Their line lands between two of mine: what mine keeps is still the whole file's match.
    D.record_decision(tmp_path, run, 3, D.REJECTED, "b", decisions=theirs)
    D.record_decision(tmp_path, run, 4, "ctc", "a", decisions=mine)
    whole = D.match_decisions(D.read_decisions(tmp_path), run)
    assert matched_values(mine.matched(run)) == matched_values(whole)
    assert mine.matched(run).decisions["event_id"].tolist() == [0, 1, 2, 3, 4]
    # A rewrite (a new file renamed into place) is read whole again.
    table = D.read_decisions(tmp_path)
    D._write(tmp_path, table.iloc[1:])
    assert mine.matched(run).decisions["event_id"].tolist() == [1, 2, 3, 4]
    assert len(whole_reads) == 2


def test_a_journal_changed_in_place_before_its_last_line_is_read_again(tmp_path):
    """A copy restored over the journal (the same file, the same size) or an earlier line
    edited in place: the log reads the file as it is, not the rows it read before (a sign-off
    signed a count that no line of the file gave)."""
    events, run = tiny_run(classes=["debris"] * 16)
    log = D.DecisionLog(tmp_path)
    for event in range(16):  # the first line well before the last's few hundred bytes
        D.record_decision(tmp_path, run, event, "wbc", "a", decisions=log)
    path = tmp_path / D.REVIEW_FILE
    signed = path.read_bytes()
    lines = signed.splitlines(keepends=True)
    edited = b"".join([lines[0], lines[1].replace(b",wbc,a,", b",ctc,a,"), *lines[2:]])
    assert len(edited) == len(signed) and edited != signed
    for content, first_call in ((edited, "ctc"), (signed, "wbc")):
        inode = path.stat().st_ino
        with open(path, "r+b") as fh:  # in place, as cp over it writes
            fh.write(content)
        assert path.stat().st_ino == inode
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
        calls = log.refresh().sort_values("event_id")["reviewer_call"].tolist()
        assert calls == [first_call] + ["wbc"] * 15


def matched_values(m: D.Matched) -> dict:
    """A match as plain values, to compare two."""
    return {"target": m.target.tolist(), "superseded": m.superseded,
            "other_cartridge": m.other_cartridge, "replaced": m.replaced.tolist(),
            "decisions": m.decisions[["event_id", "model_call", "reviewer_call", "reviewer",
                                      "time", "decided_call", "row"]].astype(str)
            .values.tolist(),
            "unattached": list(zip(m.unattached.index.tolist(),
                                   m.unattached["reason"].tolist())),
            "table": m.table.astype(str).values.tolist()}


def test_a_match_brought_up_to_date_from_its_own_rows_is_the_whole_match(tmp_path):
    """What a server keeps (the match extended by each decision it appends) is what matching
    the whole file gives, decisions of other runs and cartridges and take-backs included."""
    rng = np.random.default_rng(3)
    classes = rng.choice(["ctc", "wbc", "debris"], 30)
    events = pd.DataFrame({"event_id": range(30), "frame_id": ["f0", "f1"] * 15,
                           "x": 10.0 + 20.0 * np.arange(30), "y": [5.0] * 30,
                           "class": classes})
    earlier = D.RunEvents(events.assign(x=events["x"] + 1.0,
                                        **{"class": np.roll(classes, 1)}), 0.5,
                          cartridge_id="cartA")
    other = D.RunEvents(events, 0.5, cartridge_id="cartB")
    for k in range(12):  # decisions of an earlier run of this cartridge and of another one
        source = earlier if k % 3 else other
        call = [D.REJECTED, "ctc", "wbc"][k % 3]
        D.record_decision(tmp_path, source, int(rng.integers(30)), call, "old")
    run = D.RunEvents(events, 0.5, cartridge_id="cartA")
    log = D.DecisionLog(tmp_path)
    for k in range(40):
        event_id = int(rng.integers(30))
        if k % 5 == 4:
            D.clear_decision(tmp_path, run, event_id, "r", decisions=log)
        else:
            call = [D.REJECTED, "ctc", "wbc", "debris"][int(rng.integers(4))]
            D.record_decision(tmp_path, run, event_id, call, "r", decisions=log)
        kept = log.matched(run)
        whole = D.match_decisions(D.read_decisions(tmp_path), run)
        assert matched_values(kept) == matched_values(whole), k


@pytest.mark.parametrize("first", [False, True])
def test_a_decision_whose_seal_cannot_be_written_is_taken_back(tmp_path, monkeypatch, first):
    """On a full disk the seal's write failed after the line was appended: the reviewer was
    told "not saved" while the decision stood, and a sign-off counted it. It is taken back
    (the first decision's file removed, a later one's line cut off)."""
    import errno

    from ctcnet.review import decision_journal

    events, run = tiny_run()
    if not first:
        D.record_decision(tmp_path, run, 1, "wbc", "a")
    before = (tmp_path / "review.csv").read_bytes() if not first else None
    real = decision_journal.write_seal

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(decision_journal, "write_seal", full)
    with pytest.raises(OSError):
        D.record_decision(tmp_path, run, 3, D.REJECTED, "a")
    monkeypatch.setattr(decision_journal, "write_seal", real)
    if first:
        assert not (tmp_path / "review.csv").exists()
    else:
        assert (tmp_path / "review.csv").read_bytes() == before
    matched = D.record_decision(tmp_path, run, 0, "ctc", "a")  # the next one is recorded
    assert 3 not in set(matched.decisions["event_id"].astype(int))


def test_a_rerun_with_other_calls_keeps_the_numbering_but_not_the_pages_run():
    """Another prior or model calls the same events otherwise: decisions still attach by
    their ids (run_id), but the run a page or script names (the state's run_id, the token)
    differs, so a decision or sign-off made on a page of the earlier calls is refused."""
    import pandas as pd

    events = pd.DataFrame({"event_id": [0, 1], "frame_id": ["f", "f"], "x": [1.0, 9.0],
                           "y": [2.0, 2.0], "class": ["debris", "wbc"]})
    before = D.RunEvents(events, 1.0)
    after = D.RunEvents(events.assign(**{"class": ["ctc", "wbc"]}), 1.0)
    assert before.run_id == after.run_id and before.token != after.token
    assert before.token.startswith(before.run_id + ".")
    # Refused, each saying why: the earlier calls, or the numbering alone (review.csv's form).
    assert "other calls of the same events" in after.refusal(before.token, "S")
    assert f"send the state's run_id, {after.token}" in after.refusal(after.run_id, "S")


def test_each_readers_own_call_is_their_correction_not_the_adjudication():
    """The independent kappa's calls: the first reader's mis-key put right before the second
    reading is theirs; their change after the second reader decided is the adjudication."""
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from ctcnet.review.agreement import independent_agreement, independent_decisions

    def journal(rows):
        table = pd.DataFrame(rows, columns=["event_id", "reviewer_call", "reviewer", "time"])
        table = table.assign(run_id="R", model_call="ctc")
        return SimpleNamespace(table=table, target=np.full(len(table), -1),
                               unattached=table.iloc[:0])

    first = journal([(1, "rejected", "ann", "2026-01-01T10:00:00+00:00"),   # mis-key
                     (1, "ctc", "ann", "2026-01-01T10:00:05+00:00"),        # put right
                     (2, "wbc", "ann", "2026-01-01T10:00:06+00:00"),
                     (2, "ctc", "ann", "2026-01-01T11:00:00+00:00")])       # adjudicated
    second = journal([(1, "ctc", "bob", "2026-01-01T10:30:00+00:00"),
                      (2, "ctc", "bob", "2026-01-01T10:30:01+00:00")])
    own, blind = independent_decisions(first, second, "R")
    assert own["reviewer_call"].tolist() == ["ctc", "wbc"]
    assert blind["reviewer_call"].tolist() == ["ctc", "ctc"]
    assert independent_agreement(first, second, "R")["agree"] == 1
    # Event 2 decided again after the second reader: adjudicated (here to agreement); one
    # the second reader never decided is nobody's adjudication.
    from ctcnet.review.agreement import adjudicated_events

    assert adjudicated_events(first, second, "R") == {2}
    assert adjudicated_events(first, journal([]), "R") == set()
    # Two readers at work at once: the first reader's one decision made after the second
    # reader's is their own call, not an adjudication, where the second reader kept the
    # model's call, so nothing disputed was shown (it was listed as adjudicated, and the
    # page's count of disagreements to adjudicate missed it); decided again, it is one, and
    # the readers' own disagreement stays listed after it took the second reader's call.
    early = journal([(3, "ctc", "bob", "2026-01-01T10:35:00+00:00")])
    late = journal([(3, "wbc", "ann", "2026-01-01T10:40:00+00:00")])
    assert adjudicated_events(late, early, "R") == set()
    again = journal([(3, "wbc", "ann", "2026-01-01T10:40:00+00:00"),
                     (3, "ctc", "ann", "2026-01-01T10:50:00+00:00")])
    assert adjudicated_events(again, early, "R") == {3}
    assert independent_agreement(again, early, "R")["disagreed"] == [3]
    # Where the second reader's call differs from the model's, the first reader's page lists
    # the event as disputed: the first decision made after it, keeping either call, is the
    # adjudication (it was read as a blind own call, and the disagreement stayed open).
    disputing = journal([(3, "wbc", "bob", "2026-01-01T10:35:00+00:00")])
    keeps = journal([(3, "ctc", "ann", "2026-01-01T10:40:00+00:00")])
    assert adjudicated_events(keeps, disputing, "R") == {3}
    assert independent_agreement(keeps, disputing, "R")["both"] == 0
    # ...made before the page could show it (it reads the agreement every 20 s or so), it
    # is a blind own call, and the disagreement stays open.
    soon = journal([(3, "ctc", "ann", "2026-01-01T10:35:05+00:00")])
    assert adjudicated_events(soon, disputing, "R") == set()
    assert independent_agreement(soon, disputing, "R")["disagreed"] == [3]
    # The call standing when the page was read counts, not the second reader's first: one
    # come round to the model's call showed nothing disputed; one that left it, did.
    round_ = journal([(3, "wbc", "bob", "2026-01-01T10:00:00+00:00"),
                      (3, "ctc", "bob", "2026-01-01T10:10:00+00:00")])
    assert adjudicated_events(keeps, round_, "R") == set()
    left = journal([(3, "ctc", "bob", "2026-01-01T10:00:00+00:00"),
                    (3, "wbc", "bob", "2026-01-01T10:10:00+00:00")])
    assert adjudicated_events(keeps, left, "R") == {3}
    # Two calls of one second stand in the journal's order, the later one last, on many
    # events too (a sort that was not stable read 173 of 200 come-round ones as disputes).
    many = range(10, 210)
    mis_key = journal([row for e in many for row in ((e, "wbc", "bob", "2026-01-01T10:00:00Z"),
                                                     (e, "ctc", "bob", "2026-01-01T10:00:00Z"))])
    later = journal([(e, "ctc", "ann", "2026-01-01T10:05:00Z") for e in many])
    assert adjudicated_events(later, mis_key, "R") == set()
    # A decision after an adjudication is no blind call, whatever the second reader did then.
    back = journal([(3, "wbc", "bob", "2026-01-01T10:00:00+00:00"),
                    (3, "ctc", "bob", "2026-01-01T10:40:00+00:00")])
    twice = journal([(3, "wbc", "ann", "2026-01-01T10:35:00+00:00"),
                     (3, "ctc", "ann", "2026-01-01T11:30:00+00:00")])
    assert adjudicated_events(twice, back, "R") == {3}
    assert independent_agreement(twice, back, "R")["both"] == 0
    # A decision taken back is no reader's call: the second reader's undo of event 2 takes
    # it out of the readers' own comparison, as of the decisions as they stand (it was
    # counted as a disagreement in the record signed).
    undone = journal([(1, "ctc", "bob", "2026-01-01T10:30:00+00:00"),
                      (2, "ctc", "bob", "2026-01-01T10:30:01+00:00"),
                      (2, "undecided", "bob", "2026-01-01T10:31:00+00:00")])
    own_agreement = independent_agreement(first, undone, "R")
    assert own_agreement["both"] == 1 and own_agreement["disagreed"] == []
    # The first reader's decision taken back before the second reader came: neither that
    # call nor, once nothing stands, the event counts; decided again afterwards, the new
    # call is the reader's own.
    taken = journal([(4, "wbc", "ann", "2026-01-01T10:00:00+00:00"),
                     (4, "undecided", "ann", "2026-01-01T10:01:00+00:00"),
                     (5, "wbc", "ann", "2026-01-01T10:00:00+00:00"),
                     (5, "undecided", "ann", "2026-01-01T10:01:00+00:00"),
                     (5, "ctc", "ann", "2026-01-01T11:00:00+00:00")])
    blind5 = journal([(4, "ctc", "bob", "2026-01-01T10:30:00+00:00"),
                      (5, "ctc", "bob", "2026-01-01T10:30:00+00:00")])
    own, blind = independent_decisions(taken, blind5, "R")
    assert own["event_id"].tolist() == [5] and own["reviewer_call"].tolist() == ["ctc"]
    assert adjudicated_events(taken, blind5, "R") == set()


def test_a_first_readers_call_taken_back_after_the_second_read_is_still_a_disagreement():
    """Taking back is not adjudicating: the first reader's wbc, the second reader's ctc, then
    the first reader's take-back left the model's wbc standing, and the readers' own
    disagreement, the list to adjudicate and the sign-off's need of a note all lost it (a
    sign-off went through without a word on a possible missed CTC). A second reader's call on
    an event the first reading left as called is a disagreement with the call that counts."""
    from types import SimpleNamespace

    import numpy as np
    import pandas as pd

    from ctcnet.review.agreement import readings_agreement
    from ctcnet.review_server.signoff_checks import open_disagreements

    def journal(rows):
        table = pd.DataFrame(rows, columns=["event_id", "reviewer_call", "reviewer", "time"])
        table = table.assign(run_id="R", model_call="wbc")
        last = table.drop_duplicates("event_id", keep="last")
        decisions = last[last["reviewer_call"] != "undecided"][
            ["event_id", "reviewer_call", "reviewer", "model_call"]].reset_index(drop=True)
        return SimpleNamespace(table=table, target=np.full(len(table), -1),
                               unattached=table.iloc[:0], decisions=decisions)

    first = journal([(61, "wbc", "ann", "2026-01-01T10:00:00+00:00"),
                     (61, "undecided", "ann", "2026-01-01T10:40:00+00:00"),
                     (62, "wbc", "ann", "2026-01-01T10:00:00+00:00"),
                     (62, "ctc", "ann", "2026-01-01T10:41:00+00:00"),      # adjudicated...
                     (62, "undecided", "ann", "2026-01-01T10:42:00+00:00")])  # ...taken back
    second = journal([(61, "ctc", "bob", "2026-01-01T10:30:00+00:00"),
                      (62, "ctc", "bob", "2026-01-01T10:30:00+00:00"),
                      (63, "ctc", "bob", "2026-01-01T10:30:00+00:00"),   # never first-read
                      (64, "wbc", "bob", "2026-01-01T10:30:00+00:00")])  # agrees as called
    got = readings_agreement(first, second, "R")
    assert got["independent"]["disagreed"] == [61, 62]
    assert [(d["event_id"], d["first"], d["second"], d["adjudicated"])
            for d in got["disagreements"]] == [(61, "wbc", "ctc", False),
                                               (62, "wbc", "ctc", False),
                                               (63, "wbc", "ctc", False)]
    assert got["both"] == 0 and got["second_readers"] == ["bob"]
    assert "3 disagreement(s) of the two readers on a counted class not adjudicated " \
        "(event(s) 61, 62, 63)" == open_disagreements(got, ["ctc", "cluster"])
    # The first reader then keeps the model's wbc on 63, with the dispute on the page: that
    # settles it (it was read as a blind own call, the disagreement still open).
    settled = journal([*first.table[["event_id", "reviewer_call", "reviewer", "time"]]
                       .itertuples(index=False, name=None),
                       (63, "wbc", "ann", "2026-01-01T11:00:00+00:00")])
    got = readings_agreement(settled, second, "R")
    assert [d["event_id"] for d in got["disagreements"] if not d["adjudicated"]] == [61, 62]


def test_a_decision_is_saved_where_another_reviewer_made_review_csv(tmp_path, monkeypatch):
    """review.csv of another account, not group-writable (a umask of 022): written again
    whole, atomically, with the decision at its end; every earlier line kept."""
    events, run = tiny_run()
    D.record_decision(tmp_path, run, 1, "wbc", "ann")
    path = tmp_path / D.REVIEW_FILE
    before = path.read_bytes()
    real = decision_journal.open_own

    def not_writable(where, mode, encoding=None):
        if where == path and mode == "r+b":
            raise PermissionError(13, "Permission denied", str(where))
        return real(where, mode, encoding)

    monkeypatch.setattr(decision_journal, "open_own", not_writable)
    log = decision_journal.DecisionLog(tmp_path)
    D.record_decision(tmp_path, run, 2, D.REJECTED, "bob", decisions=log)
    assert path.read_bytes().startswith(before)
    table = D.read_decisions(tmp_path)
    assert table["event_id"].tolist() == [1, 2]
    assert table["reviewer"].tolist() == ["ann", "bob"]
    assert log.matched(run).decisions["event_id"].tolist() == [1, 2]


def test_a_seal_another_account_keeps_from_this_one_is_no_edit(tmp_path, monkeypatch):
    """A reviewer's .review.csv.seal 0600: the next account read review.csv as "changed other
    than by ctcnet" (409, a sign-off made stale, advice to delete the seal); it is a
    permission error, said as one (403 on the page, set aside by predict)."""
    import pathlib

    from ctcnet.review.journal_seal import JournalEdited, check_as_sealed

    events, run = tiny_run()
    D.record_decision(tmp_path, run, 1, "wbc", "bob")
    real = pathlib.Path.read_text

    def kept(self, *args, **kwargs):
        if self.name == ".review.csv.seal":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", kept)
    with pytest.raises(PermissionError):
        check_as_sealed(tmp_path / D.REVIEW_FILE)
    monkeypatch.undo()
    check_as_sealed(tmp_path / D.REVIEW_FILE)  # readable: as sealed
    with pytest.raises(JournalEdited):
        (tmp_path / D.REVIEW_FILE).write_text("edited\n")
        check_as_sealed(tmp_path / D.REVIEW_FILE)


def test_readers_own_agreement_leaves_out_rejections_a_rerun_set_aside(tmp_path):
    """Both readers rejected a ctc call that a rerun with other calls (the same numbering) now
    calls wbc: their rejections say nothing of the new call and are set aside in the match,
    so the readers' own agreement compares no more events than the decisions as they stand
    (it read 2 of 1: the set-aside rows still counted, by their event id)."""
    from ctcnet.review.agreement import readings_agreement

    events, run = tiny_run()
    second = decision_journal.DecisionLog(tmp_path, D.SECOND_FILE)
    for reader, log_ in (("ann", None), ("bob", second)):
        D.record_decision(tmp_path, run, 0, D.REJECTED, reader, decisions=log_)
        D.record_decision(tmp_path, run, 1, "ctc", reader, decisions=log_)
    rerun = D.RunEvents(events.assign(**{"class": ["wbc", "ctc", "wbc", "ctc"]}), 0.5)
    assert rerun.run_id == run.run_id
    first_now = D.match_decisions(D.read_decisions(tmp_path), rerun)
    second_now = D.match_decisions(D.read_decisions(tmp_path, D.SECOND_FILE), rerun)
    assert first_now.decisions["event_id"].tolist() == [1]
    agreement = readings_agreement(first_now, second_now, rerun.run_id)
    assert agreement["both"] == 1
    assert agreement["independent"]["both"] == 1
    assert agreement["independent"]["agree"] == 1


def test_a_journal_planted_as_a_link_is_neither_read_nor_signed(tmp_path):
    """review.csv a link to a file outside the results folder: recording a decision refused
    it, but its decisions were read, shown and signed off (the sign-off sealing the file it
    points to)."""
    import pytest

    from ctcnet.errors import InputError

    events, run = tiny_run()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    D.record_decision(elsewhere, run, 0, "ctc", "mallory")
    folder = tmp_path / "sample"
    folder.mkdir()
    (folder / D.REVIEW_FILE).symlink_to(elsewhere / D.REVIEW_FILE)
    with pytest.raises(InputError, match="is a symbolic link"):
        D.read_decisions(folder)
    with pytest.raises(InputError, match="is a symbolic link"):
        D.DecisionLog(folder, D.REVIEW_FILE).matched(run)
    (elsewhere / D.REVIEW_FILE).unlink()  # a link to nothing: refused too, not read as empty
    with pytest.raises(InputError, match="is a symbolic link"):
        D.DecisionLog(folder, D.REVIEW_FILE).matched(run)


def test_a_decision_refused_before_the_file_changed_says_no_false_alarm(tmp_path, caplog,
                                                                      monkeypatch):
    """A read-only archive refused the write before any byte changed, and the log said "a
    decision not saved may stand in the file ... check it on the review page" all the same;
    the review server's refusal advised making an archive group-writable."""
    from ctcnet.review_server.sample_states import cannot_write_text

    _, run = tiny_run()
    log = D.DecisionLog(tmp_path)
    D.record_decision(tmp_path, run, 0, "ctc", "ann", decisions=log)
    before = (tmp_path / D.REVIEW_FILE).read_bytes()

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / D.REVIEW_FILE))

    monkeypatch.setattr(log, "_append_row", refused)
    monkeypatch.setattr(decision_journal, "open_own", refused)  # (nor is the file opened)
    with caplog.at_level("ERROR"), pytest.raises(PermissionError):
        D.record_decision(tmp_path, run, 1, "wbc", "ann", decisions=log)
    assert "may stand in the file" not in caplog.text
    assert (tmp_path / D.REVIEW_FILE).read_bytes() == before
    # A folder nobody may write (chmod -R a-w): said as an archive, not a sharing to mend.
    err = PermissionError(13, "Permission denied", str(tmp_path / D.REVIEW_FILE))
    tmp_path.chmod(0o555)
    try:
        said = cannot_write_text(err)
    finally:
        tmp_path.chmod(0o755)
    assert "which no account may write: the results folder cannot be written" in said
    assert "chgrp" not in said


def test_a_decision_on_a_whole_second_keeps_its_six_digits_and_a_clash_reads_the_time_plainly(
        tmp_path):
    """review.csv's times are to the microsecond (docs/outputs.md, Times): isoformat() left
    the fraction out on a whole second, which a reader's fixed format fails on. The clash a
    page is told of gives the time as pages give times, not the journal's digits."""
    events, run = tiny_run()
    whole = datetime(2026, 12, 6, 15, 0, 0, tzinfo=UTC)
    D.record_decision(tmp_path, run, 1, "wbc", "ann", now=whole)
    times = pd.read_csv(tmp_path / D.REVIEW_FILE)["time"].tolist()
    assert times == ["2026-12-06T15:00:00.000000+00:00"]
    datetime.strptime(times[0], "%Y-%m-%dT%H:%M:%S.%f%z")
    with pytest.raises(D.DecidedMeanwhile) as said:
        D.record_decision(tmp_path, run, 1, D.REJECTED, "bob", expect=None)
    assert "decided wbc by ann at 2026-12-06 15:00:00 UTC since" in str(said.value)


def test_readings_made_on_an_earlier_run_keep_their_history_in_a_renumbered_rerun(tmp_path):
    """The first reader's own call, the second reader's, then the adjudication, all made on
    one run; a rerun (another threshold) numbers the events otherwise. The rows the
    adjudication replaced are history of the same cells: read by position, the readers' own
    disagreement and the adjudication stand as they did (the rerun read the adjudicated call
    as the first reader's own, kappa rose, and the event read as never adjudicated)."""
    from ctcnet.review.agreement import adjudicated_events, readings_agreement

    events, run = tiny_run()
    second = decision_journal.DecisionLog(tmp_path, D.SECOND_FILE)
    start = datetime(2026, 1, 1, 10, tzinfo=UTC)
    D.record_decision(tmp_path, run, 1, "wbc", "ann", now=start)
    D.record_decision(tmp_path, run, 3, "ctc", "ann", now=start)
    D.record_decision(tmp_path, run, 1, "ctc", "bob", now=start + timedelta(minutes=5),
                      decisions=second)
    D.record_decision(tmp_path, run, 3, "ctc", "bob", now=start + timedelta(minutes=5),
                      decisions=second)
    D.record_decision(tmp_path, run, 1, "ctc", "ann", now=start + timedelta(minutes=30))

    def agreement_on(events_run):
        first_now = D.match_decisions(D.read_decisions(tmp_path), events_run)
        second_now = D.match_decisions(D.read_decisions(tmp_path, D.SECOND_FILE), events_run)
        return (readings_agreement(first_now, second_now, events_run.run_id),
                adjudicated_events(first_now, second_now, events_run.run_id))

    before, done_before = agreement_on(run)
    assert done_before == {1}
    assert before["independent"]["disagreed"] == [1]
    # The rerun: a new event ahead of the others, so every id moves up by one.
    moved = pd.concat([events.iloc[[0]].assign(x=200.0), events]).assign(
        event_id=range(len(events) + 1))
    rerun = D.RunEvents(moved, 0.5)
    assert rerun.run_id != run.run_id
    after, done_after = agreement_on(rerun)
    assert done_after == {2}
    assert after["independent"]["disagreed"] == [2]
    assert (after["independent"]["both"], after["independent"]["agree"]) == \
        (before["independent"]["both"], before["independent"]["agree"])
    assert [d["adjudicated"] for d in after["disagreements"]] == \
        [d["adjudicated"] for d in before["disagreements"]]


def test_a_first_reader_whose_call_was_replaced_stays_one_in_a_renumbered_rerun(tmp_path):
    """ann's first-reading call, bob's second, carol's adjudication; a rerun numbering the
    events otherwise let ann read the second reading too (agreeing with herself)."""
    from ctcnet.review.agreement import readers_of

    events, run = tiny_run()
    second = decision_journal.DecisionLog(tmp_path, D.SECOND_FILE)
    start = datetime(2026, 1, 1, 10, tzinfo=UTC)
    D.record_decision(tmp_path, run, 1, "wbc", "ann", now=start)
    D.record_decision(tmp_path, run, 1, "ctc", "bob", now=start + timedelta(minutes=5),
                      decisions=second)
    D.record_decision(tmp_path, run, 1, "ctc", "carol", now=start + timedelta(minutes=30))
    moved = pd.concat([events.iloc[[0]].assign(x=200.0), events]).assign(
        event_id=range(len(events) + 1))
    for events_run in (run, D.RunEvents(moved, 0.5)):
        first = D.match_decisions(D.read_decisions(tmp_path), events_run)
        assert readers_of(first, events_run.run_id) == ["ann", "carol"]


def test_a_sign_off_over_an_unfinished_line_still_holds_once_the_next_writer_cuts_it(tmp_path):
    """A writer killed mid-line leaves an unfinished last line, which readers ignore and the
    next writer cuts off. A sign-off sealed the file with it, and the next decision's cut
    read as the signed bytes changed: "edited by hand?" where ctcnet itself had written."""
    from ctcnet.review.journal_seal import changed_since
    from ctcnet.review.signoff import journal_seal

    events, run = tiny_run()
    D.record_decision(tmp_path, run, 0, "ctc", "ann")
    with open(tmp_path / "review.csv", "ab") as fh:
        fh.write(b"half a line, no newline")
    sealed = journal_seal(tmp_path, ["review.csv"])["review.csv"]
    D.record_decision(tmp_path, run, 1, "wbc", "ann")
    assert b"half a line" not in (tmp_path / "review.csv").read_bytes()
    assert not changed_since(tmp_path / "review.csv", sealed)
    # A line the writer did not cut (edited by hand) still reads as changed.
    text = (tmp_path / "review.csv").read_text().replace(",ctc,", ",wbc,", 1)
    (tmp_path / "review.csv").write_text(text)
    assert changed_since(tmp_path / "review.csv", sealed)


def test_a_call_of_no_class_stays_unattached_when_its_event_is_decided_on_an_open_log(
        tmp_path):
    """A line calling the event 'tumour' (a hand edit, another model's class) counts for
    nothing and is said; deciding the event again on an open log dropped it from the
    unattached until the file was read again."""
    events, _ = tiny_run()
    run = D.RunEvents(events, 0.5, classes=("ctc", "wbc", "cluster", "debris"))
    D.record_decision(tmp_path, run, 1, "wbc", "a")
    line = (tmp_path / "review.csv").read_text().splitlines()[1]
    with open(tmp_path / "review.csv", "a") as fh:
        fh.write(line.replace(",wbc,a,", ",tumour,a,") + "\n")
    (tmp_path / ".review.csv.seal").unlink()  # as the docs say: review on from it as it is
    log_ = decision_journal.DecisionLog(tmp_path)
    assert len(log_.matched(run).unattached) == 1
    D.record_decision(tmp_path, run, 1, "ctc", "b", decisions=log_)
    live = log_.matched(run)
    full = D.match_decisions(D.read_decisions(tmp_path), run)
    assert len(live.unattached) == len(full.unattached) == 1
    assert live.decisions.to_dict("list") == full.decisions.to_dict("list")


def test_a_journal_saved_again_with_semicolons_is_said_so(tmp_path):
    """review.csv opened and saved by a spreadsheet in a European locale: refused with the
    list of columns it needs, nothing said of its semicolons."""
    events, run = tiny_run()
    D.record_decision(tmp_path, run, 0, "ctc", "ann")
    path = tmp_path / "review.csv"
    path.write_text(path.read_text().replace(",", ";"))
    with pytest.raises(InputError, match="review.csv is separated by semicolons"):
        D.read_decisions(tmp_path)
