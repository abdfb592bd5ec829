"""A sign-off holds only while its record is as ctcnet left it, and only for the model file
that made the calls: a decision edited in review.csv, a signoff.json written by hand or copied
from another folder, and calls of another model file (the same calls) each say it no longer
holds, and what changed."""

import json
import logging
import shutil

import pytest
from conftest import save_tiny_model

from ctcnet.inference.backends import load_backend
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.io.digests import file_sha256
from ctcnet.io.panel import load_panel
from ctcnet.review.signoff import EDITED, HISTORY_FILE, MODEL_CHANGED, SIGNOFF_FILE
from ctcnet.review.signoff_words import signoff_text
from ctcnet.review_server.refresh import refresh_reviewed
from ctcnet.review_server.sample import Sample
from ctcnet.simulate import simulate_cartridge

OPTIONS = dict(quiet=True, workers=0, refresh_review=refresh_reviewed)


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    """A cartridge predicted, two of its candidates decided and signed off: (root, out)."""
    root = tmp_path_factory.mktemp("signed")
    simulate_cartridge(root / "cart", load_panel(None), num_frames=2, frame_shape=(256, 320),
                       seed=5, events_per_frame=25, sample_id="P001")
    save_tiny_model(root / "model.pt", crop_size=48)
    out = root / "results" / "P001"
    predict_cartridge(root / "cart", load_backend(root / "model.pt", device="cpu"), out,
                      PredictOptions(**OPTIONS))
    sample = Sample("P001", out)
    state = sample.state("ann")
    ids = [c["event_id"] for c in state["candidates"]][:2]
    sample.decide_many({"event_ids": ids, "call": "wbc", "run_id": state["run_id"]}, "ann")
    sample.sign_off({"stamp": sample.decisions.stamp(),
                     "reviewer": "ann", "run_id": state["run_id"],
                     "note": "=2 held calls\nleft, checked on the frames"}, "ann")
    return root, out


@pytest.fixture
def folder(signed, tmp_path):
    """A copy of the signed sample's folder the test may change."""
    shutil.copytree(signed[1], tmp_path / "P001")
    return tmp_path / "P001"


def fingerprint(folder) -> dict:
    """Each file under ``folder``: its SHA-256 and modification time (a look leaves both)."""
    import hashlib

    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest(),
                                         p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def shown(folder):
    return Sample("P001", folder).state("ann")["signoff"]


def test_a_sign_off_untouched_holds_and_keeps_its_journals_digest(folder):
    state = Sample("P001", folder).state("ann")
    record = state["signoff"]
    assert record["status"] == "current"
    # what it left undecided, and how many of those the guard holds, as the page counts them
    open_ = [c for c in state["candidates"] if not c.get("decision")]
    assert record["unreviewed"] == len(open_)
    assert record["held_undecided"] == sum(bool(c["held"]) for c in open_)
    # the reviewer's note, on one line and never a spreadsheet formula
    assert record["note"] == "'=2 held calls left, checked on the frames"
    assert 'note: "\'=2 held calls left' in signoff_text(record)
    sealed = record["journals"]["review.csv"]
    assert sealed["bytes"] == (folder / "review.csv").stat().st_size
    assert record["decided_by"] == {"ann": 2} and "decided," in signoff_text(record)
    # What the review started from, and what its decisions changed, by event.
    want = {}
    for c in sorted((c for c in state["candidates"] if c.get("decision")),
                    key=lambda c: c["event_id"]):
        if c["call"] != "wbc" or c["held"]:
            held = " (held)" if c["held"] else ""
            want.setdefault(f"{c['call']}{held} -> wbc", []).append(c["event_id"])
    assert want and record["changed"] == want
    assert f"changed {next(iter(want))} {len(next(iter(want.values())))} (#" in \
        signoff_text(record)
    summary = json.loads((folder / "summary.json").read_text())
    assert record["automatic_per_7_5_ml"] == summary["per_7_5_ml"]
    # the table signed, by the digest a reader without ctcnet can make
    assert record["events_sha256"] == file_sha256(folder / "events.parquet")


def test_a_decision_edited_in_review_csv_is_noticed(folder):
    """The same number of lines, one decision changed by hand: the sign-off does not hold."""
    path = folder / "review.csv"
    text = path.read_text()
    assert text.count(",wbc,") == 2
    path.write_text(text.replace(",wbc,", ",ctc,", 1))
    record = shown(folder)
    assert record["status"] == EDITED and "review.csv" in record["problem"]
    assert "its record was changed since" in signoff_text(record)
    # summary.json and samples.csv read it as not signed off
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["signoff"]["status"] == EDITED
    assert summary["result_state"]["state"] != "signed off"


def test_draws_reads_a_sign_off_as_its_record_holds_not_as_summary_json_says(folder, capsys):
    """review.csv edited after the sign-off, nothing read since: summary.json still says
    signed off, and draws reported the signed figure, "after review", without a note."""
    from ctcnet.cli import main
    from ctcnet.commands.draws import signoff_holds_now

    assert signoff_holds_now(folder)
    assert main(["draws", str(folder)]) == 0
    assert "after review" in capsys.readouterr().out
    path = folder / "review.csv"
    path.write_text(path.read_text().replace(",wbc,", ",ctc,", 1))
    assert json.loads((folder / "summary.json").read_text())["signoff"]["status"] == "current"
    assert not signoff_holds_now(folder)
    assert main(["draws", str(folder)]) == 0
    said = capsys.readouterr().out
    assert "automatic" in said and "its sign-off no longer holding" in said
    # ... and the record changed by hand said as such, not as a review under way alone.
    assert "its review record was changed by hand since the sign-off (" in said, said


def test_a_spike_in_reads_a_sign_off_as_its_record_holds_not_as_summary_json_says(
        folder, capsys, caplog):
    """review.csv edited after the sign-off: draws read the automatic count, and the spike-in
    figures the sample as signed off with the edited count after review."""
    import pandas as pd

    from ctcnet.cli import main

    (folder.parent / "expected.csv").write_text("sample_id,spiked\nP001,4\n")

    def scored(out):
        assert main(["evaluate", str(folder), "--expected", str(folder.parent / "expected.csv"),
                     "--out", str(folder.parent / out)]) == 0
        return pd.read_csv(folder.parent / out / "spike_in.csv").iloc[0]

    assert scored("before")["review_complete"]
    capsys.readouterr()
    path = folder / "review.csv"
    path.write_text(path.read_text().replace(",wbc,", ",ctc,", 1))
    with caplog.at_level(logging.WARNING):
        row = scored("o")
    assert not row["signed_off"] and not row["review_complete"]
    assert pd.isna(row["after_review_per_7_5_ml"])
    assert "none of the 1 samples is signed off" in capsys.readouterr().out
    assert "P001: its review record was changed by hand since the sign-off (" in caplog.text


def test_a_journal_edited_while_the_server_runs_reaches_summary_json_at_its_next_read(folder):
    """The server has the sample open; review.csv is edited by hand: the page's next poll
    reads the sign-off as edited, and summary.json (so samples.csv, index.html) says so
    too, not "signed off" until the server is started again."""
    sample = Sample("P001", folder)
    stamp = sample.state("ann")["stamp"]
    path = folder / "review.csv"
    path.write_text(path.read_text().replace(",wbc,", ",ctc,", 1))
    changes = sample.changes(stamp)
    assert changes["signoff"]["status"] == EDITED
    sample.write_if_signoff_moved(changes["signoff"])  # as the server does, after the read
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["signoff"]["status"] == EDITED
    assert summary["result_state"]["state"] != "signed off"


def test_a_decision_appended_on_the_page_still_reads_changed_since(folder):
    sample = Sample("P001", folder)
    state = sample.state("ann")
    third = [c["event_id"] for c in state["candidates"]][2]
    sample.decide_many({"event_ids": [third], "call": "debris", "run_id": state["run_id"]},
                       "ann")
    assert shown(folder)["status"] == "changed since"


@pytest.mark.parametrize("forge", ["edited", "copied"])
def test_a_sign_off_written_by_hand_or_copied_is_noticed(folder, forge):
    path = folder / SIGNOFF_FILE
    if forge == "edited":  # re-attributed, the history left as it is
        path.write_text(json.dumps({**json.loads(path.read_text()), "reviewer": "Dr Smith"}))
    else:  # copied into a folder whose history never had it
        (folder / HISTORY_FILE).unlink()
    record = shown(folder)
    assert record["status"] == EDITED and HISTORY_FILE in record["problem"]


def test_calls_of_another_model_file_say_the_sign_off_no_longer_holds(signed, tmp_path,
                                                                      caplog):
    """The same weights saved again with another record: the same calls, another file."""
    root, _ = signed
    out = tmp_path / "P001"
    shutil.copytree(signed[1], out)
    signed_table = json.loads((out / "summary.json").read_text())["events_sha256"]
    save_tiny_model(tmp_path / "other.pt", crop_size=48, version="0.0.2")
    with caplog.at_level(logging.WARNING):
        predict_cartridge(root / "cart", load_backend(tmp_path / "other.pt", device="cpu"), out,
                          PredictOptions(**OPTIONS, overwrite=True))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["signoff"]["status"] == MODEL_CHANGED
    assert "another model file" in caplog.text and "sign it off" in caplog.text
    # The calls the review was signed on stay on record beside the new run's.
    (kept,) = (out / "previous").glob("events-*.parquet")
    assert file_sha256(kept) == signed_table


def test_other_calls_of_another_model_file_say_the_model_changed(signed, tmp_path, caplog):
    """Another network's other calls on the same events: the sign-off names the model's
    change, as docs/review.md says (it read "calls changed since", as a rerun of the same
    model with another rule or prior does)."""
    root, _ = signed
    out = tmp_path / "P001"
    shutil.copytree(signed[1], out)
    before = json.loads((out / "summary.json").read_text())
    save_tiny_model(tmp_path / "other.pt", crop_size=48, seed=3)
    predict_cartridge(root / "cart", load_backend(tmp_path / "other.pt", device="cpu"), out,
                      PredictOptions(**OPTIONS, overwrite=True))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"] != before["counts"]  # other calls (the case this is about)
    assert summary["signoff"]["status"] == MODEL_CHANGED
    # Another model's calls on other events (a new numbering) read so too.
    from ctcnet.review.signoff import read_signoff, signoff_record

    signed = read_signoff(signed[1])
    assert signoff_record(signed, "another-numbering", 0, "x", model_sha256="f" * 64,
                          network_sha256="f" * 64)["status"] == MODEL_CHANGED
    record = signoff_record(signed, "another-numbering", 0, "x",
                            model_sha256=signed.model_sha256,
                            network_sha256=signed.network_sha256)
    assert record["status"] != MODEL_CHANGED
    # Its changes name the events as the run it signed numbered them, said so beside the
    # review of this run (its numbers then another event's).
    assert "; changed (event numbers of the run it signed) " in signoff_text(record)


def test_a_corrected_patient_id_says_the_sign_off_no_longer_holds(signed, tmp_path, caplog,
                                                                 capsys):
    """A signed-off sample whose patient id is corrected in cartridge.json and run again: the
    same calls and counts, now under another patient. The sign-off read "current" (a result
    signed for one patient shown as signed for another)."""
    from conftest import edit_json

    from ctcnet.review.signoff import RECORD_CHANGED
    from ctcnet.review.signoff_words import signoff_text

    root, _ = signed
    out, cart = tmp_path / "P001", tmp_path / "cart"
    shutil.copytree(signed[1], out)
    shutil.copytree(root / "cart", cart)
    assert json.loads((out / "signoff.json").read_text())["cartridge_info"] == \
        (json.loads((out / "summary.json").read_text())["cartridge_info"] or {})
    edit_json(cart / "cartridge.json", patient_id="PAT-002")
    with caplog.at_level(logging.WARNING):
        predict_cartridge(cart, load_backend(root / "model.pt", device="cpu"), out,
                          PredictOptions(**OPTIONS))
    record = json.loads((out / "summary.json").read_text())["signoff"]
    assert record["status"] == RECORD_CHANGED and record["record_changed"] == ["patient_id"]
    assert "patient_id None, now 'PAT-002'" in caplog.text and "sign it off again" in caplog.text
    assert "cartridge.json's patient_id changed since the sign-off" in signoff_text(record)
    # An audit says why, not that the review went on after it (no decision was made).
    from ctcnet.cli import main

    main(["verify", "--results", str(out)])
    said = capsys.readouterr().out
    assert "stale (sample record changed since): cartridge.json's patient_id changed" in said


def test_the_same_calls_by_the_checkpoints_onnx_export_keep_the_sign_off(signed, tmp_path):
    """A re-analysis with the ONNX export of the checkpoint signed (or resuming on its
    frames): one network, the same calls, so the sign-off holds; the summary names both."""
    from ctcnet.deploy.export import export_onnx

    root, _ = signed
    out = tmp_path / "P001"
    shutil.copytree(signed[1], out)
    export_onnx(root / "model.pt", tmp_path / "model.onnx")
    predict_cartridge(root / "cart", load_backend(tmp_path / "model.onnx", device="cpu"), out,
                      PredictOptions(**OPTIONS, overwrite=True))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"]["sha256"] == file_sha256(tmp_path / "model.onnx")
    assert summary["signoff"]["status"] == "current"
    assert summary["signoff"]["network_sha256"] == file_sha256(root / "model.pt")


def test_an_events_table_changed_by_hand_is_refused_and_a_rerun_writes_it_again(
        signed, folder, caplog):
    """One call edited in events.parquet: the review, crops and exports would read calls the
    run never made. Refused, naming the file; predict run again says so and writes it anew."""
    import pandas as pd

    from ctcnet.errors import InputError

    events = pd.read_parquet(folder / "events.parquet")
    events.loc[events.index[0], "class"] = "ctc" if events["class"].iloc[0] != "ctc" else "wbc"
    events.to_parquet(folder / "events.parquet")
    with pytest.raises(InputError, match="events.parquet was changed since predict wrote it"):
        Sample("P001", folder)
    root, _ = signed
    with caplog.at_level(logging.WARNING):
        predict_cartridge(root / "cart", load_backend(root / "model.pt", device="cpu"), folder,
                          PredictOptions(**OPTIONS))
    assert "events.parquet was changed since predict wrote it" in caplog.text
    assert shown(folder)["status"] == "current"  # the run's own table again


def test_a_journal_cut_back_to_what_the_sign_off_saw_is_noticed(folder):
    """A decision made after the sign-off, then the file truncated to the sealed size: the
    later decision would vanish without trace; the journal's own seal tells."""
    sealed = json.loads((folder / SIGNOFF_FILE).read_text())["journals"]["review.csv"]["bytes"]
    sample = Sample("P001", folder)
    state = sample.state("bob")
    third = [c["event_id"] for c in state["candidates"]][2]
    sample.decide_many({"event_ids": [third], "call": "debris", "run_id": state["run_id"]},
                       "bob")
    with open(folder / "review.csv", "r+b") as fh:
        fh.truncate(sealed)
    record = shown(folder)
    assert record["status"] == EDITED and "review.csv no longer holds what ctcnet wrote" in \
        record["problem"]


def test_a_decision_added_by_hand_dated_before_the_sign_off_is_noticed(folder):
    lines = (folder / "review.csv").read_text().splitlines()
    signed_at = json.loads((folder / SIGNOFF_FILE).read_text())["signed_at"]
    header, last = lines[0].split(","), lines[-1].split(",")
    last[header.index("time")] = "2000-01-01T00:00:00+00:00"
    with open(folder / "review.csv", "a") as fh:
        fh.write(",".join(last) + "\n")
    record = shown(folder)
    assert record["status"] == EDITED and "dated before it" in record["problem"]
    assert signed_at in record["problem"]


def test_a_sign_off_whose_seal_was_removed_is_noticed(folder):
    """journals set to null in signoff.json and its history line alike: it would read as an
    older ctcnet's sign-off, but it holds the fields that came with the seal."""
    for name in (SIGNOFF_FILE, HISTORY_FILE):
        path = folder / name
        path.write_text(path.read_text().replace('"journals":', '"journals_was":'))
    record = shown(folder)  # the history's own seal tells the edit first...
    assert record["status"] == EDITED and HISTORY_FILE in record["problem"]
    (folder / f".{HISTORY_FILE}.seal").unlink()  # ...and taken away with it, the record does
    record = shown(folder)
    assert record["status"] == EDITED and "holds no seal" in record["problem"]


def test_an_fcs_export_checks_the_sign_off_itself(folder):
    """review.csv edited after the last command wrote summary.json: the export does not copy
    summary.json's "current", it checks the record."""
    from ctcnet.exports.event_exports import events_fcs, load_sample, signoff_now

    path = folder / "review.csv"
    path.write_text(path.read_text().replace(",wbc,", ",ctc,", 1))
    assert json.loads((folder / "summary.json").read_text())["signoff"]["status"] == "current"
    events, summary = load_sample(folder)
    keywords = events_fcs(events, summary, folder, signoff=signoff_now(folder, events,
                                                                        summary))["keywords"]
    assert keywords["CTCNET_SIGNOFF"].startswith("edited since; ann; ")


def test_a_decision_added_by_hand_without_ctcnets_time_is_noticed(folder):
    lines = (folder / "review.csv").read_text().splitlines()
    header, last = lines[0].split(","), lines[-1].split(",")
    for bad in ("garbage", "2099-01-01T00:00:00"):  # unreadable; no UTC offset
        last[header.index("time")] = bad
        with open(folder / "review.csv", "a") as fh:
            fh.write(",".join(last) + "\n")
        record = shown(folder)
        assert record["status"] == EDITED and "not dated as ctcnet dates them" in \
            record["problem"]


def test_a_sample_folder_copied_under_another_name_is_refused(folder, tmp_path):
    """In a batch's --out a folder is its sample id: one holding another sample's outputs
    would file that patient's cells under this name in the review, crops and exports."""
    from ctcnet.errors import InputError

    batch = tmp_path / "batch"
    shutil.copytree(folder, batch / "P002")
    (batch / "run.json").write_text("{}")
    with pytest.raises(InputError, match="holds the outputs of sample 'P001'.*rename it back "
                                         "to 'P001' to read it"):
        Sample("P002", batch / "P002")
    # Alone, without a batch's run.json beside it: the summary names the folder it was
    # written into, so a copy renamed is told apart there too.
    shutil.copytree(folder, tmp_path / "alone" / "P999")
    with pytest.raises(InputError, match="written into a folder named 'P001'"):
        Sample("P999", tmp_path / "alone" / "P999")
    Sample("P001", shutil.copytree(folder, tmp_path / "moved" / "P001"))  # moved, not renamed
    # A results folder whose every sample is so: the server refuses to start, as crops and
    # export-events refuse it (it served a list whose every page said why it could not).
    from ctcnet.review_server.server import make_server

    with pytest.raises(InputError, match=r"no sample here can be reviewed \(P002: the folder "
                                         "holds the outputs of sample 'P001'"):
        make_server(batch, port=0, reviewer="tester", warm_up=False)


def test_the_list_of_samples_says_a_sign_off_no_longer_holds_where_files_cannot_be_written(
        signed, tmp_path, monkeypatch):
    """On read-only media (an archive) the server cannot rewrite summary.json: the list of
    samples says what the record reads as now, for a sample read or only checked at start,
    not the "signed off" the stale file says; an events table edited by hand, why it cannot
    be read."""
    from ctcnet.review_server import sample as sample_module
    from ctcnet.review_server.app import ReviewApp

    results = tmp_path / "results"
    shutil.copytree(signed[1], results / "P001")
    app = ReviewApp(results, saliency=False)
    assert "P001</a>: partial; signed off" in app.index_html()  # (a tiny model's calls)

    def read_only(*_args, **_kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(sample_module, "write_summary_and_page", read_only)
    path = results / "P001" / "review.csv"
    path.write_text(path.read_text().replace(",wbc,", ",ctc,", 1))
    assert json.loads((results / "P001" / "summary.json").read_text())["signoff"][
        "status"] == "current"  # the file as it was
    for check in ("read", "checked"):
        app = ReviewApp(results, saliency=False)
        if check == "read":
            app.sample("P001")
        else:
            app.check_signed()
        assert "P001</a>: partial; sign-off stale" in app.index_html(), check
    import pandas as pd

    table = results / "P001" / "events.parquet"
    pd.read_parquet(table).to_parquet(table)  # the same data, saved again by hand
    app = ReviewApp(results, saliency=False)
    app.check_signed()
    assert "P001</a>: cannot be read: " in app.index_html()


def test_a_journals_seal_lost_with_the_hidden_files_is_said_not_taken_for_an_edit(folder,
                                                                                  caplog):
    """An archive that dropped dot-files: the record is as signed (current), but the check
    that would tell a journal cut back to the signed lines cannot be made, and the page and
    an export say so."""
    from ctcnet.exports.event_exports import load_sample, signoff_now

    (folder / ".review.csv.seal").unlink()
    record = shown(folder)
    assert record["status"] == "current"
    assert "the seal of review.csv is missing" in record["unchecked"]
    assert "cannot be told" in signoff_text(record)
    events, summary = load_sample(folder)
    with caplog.at_level(logging.WARNING):
        assert signoff_now(folder, events, summary)["status"] == "current"
    assert "the seal of review.csv is missing" in caplog.text


def test_the_sign_off_historys_seal_lost_is_said_unchecked(folder, capsys):
    """A copy without hidden files, the signer's name then written over in every record: the
    history's seal that would tell it is gone, and the audit says so (it said only
    review.csv's, and read a name written over as checked)."""
    from ctcnet.cli import main

    for seal in folder.glob(".*.seal"):
        seal.unlink()
    for name in (SIGNOFF_FILE, HISTORY_FILE, "summary.json"):
        path = folder / name
        path.write_text(path.read_text().replace('"ann"', '"dr-smith"'))
    record = shown(folder)
    assert record["reviewer"] == "dr-smith" and record["status"] == "current"
    assert HISTORY_FILE in record["unchecked"] and "review.csv" in record["unchecked"]
    assert "rewritten" in record["unchecked"]
    main(["verify", "--results", str(folder)])
    assert f"the seal of review.csv, {HISTORY_FILE} is missing" in capsys.readouterr().out


def test_a_sign_off_of_a_ctcnet_that_sealed_no_history_names_that_version_too(folder):
    """A sign-off made by a ctcnet that sealed its journals but not yet its history (before
    it recorded the automatic figures): the history's seal missing was said as an archive
    that dropped hidden files, of every such sign-off after an upgrade."""
    record = json.loads((folder / SIGNOFF_FILE).read_text())
    assert record.pop("automatic_per_7_5_ml") is not None
    line = json.dumps(record, separators=(",", ":"))
    (folder / SIGNOFF_FILE).write_text(json.dumps(record, indent=2))
    (folder / HISTORY_FILE).write_text(line + "\n")
    (folder / f".{HISTORY_FILE}.seal").unlink()
    signed = shown(folder)
    assert signed["status"] == "current", signed.get("problem")
    assert "made by an earlier ctcnet, which sealed no sign-off history" in signed["unchecked"]
    (folder / ".review.csv.seal").unlink()  # a journal's seal lost too: an archive's doing
    assert "made by an earlier" not in shown(folder)["unchecked"]


def test_summary_jsons_counts_edited_are_said_and_the_sign_off_read_on_the_events(folder,
                                                                                  caplog):
    """summary.json's counts after review edited by hand (a forged figure): the sign-off is
    checked against what the events and decisions give, and the copy's edit is said, not
    blamed on a volume correction."""
    from ctcnet.exports.event_exports import load_sample, signoff_now

    data = json.loads((folder / "summary.json").read_text())
    assert data["reviewed"]["reviewed"]  # the fixture's sample has decisions
    data["reviewed"]["after_review"]["ctc"] += 1  # its rates are read from the counts
    (folder / "summary.json").write_text(json.dumps(data))
    events, summary = load_sample(folder)
    with caplog.at_level(logging.WARNING):
        record = signoff_now(folder, events, summary)
    assert record["status"] == "current"
    assert "are not what its events and review decisions give" in caplog.text


def test_a_sign_off_whose_record_was_deleted_is_said_by_an_export(folder, caplog):
    """signoff.json and its history deleted, summary.json's copy left: the export says the
    record is gone (deleted, not never signed) and exports it as not signed off."""
    from ctcnet.exports.event_exports import load_sample, signoff_now

    assert json.loads((folder / "summary.json").read_text())["signoff"]
    for name in ("signoff.json", "signoff_history.jsonl"):
        (folder / name).unlink()
    events, summary = load_sample(folder)
    with caplog.at_level(logging.WARNING):
        assert signoff_now(folder, events, summary) is None
    assert "summary.json records a sign-off by" in caplog.text and "gone" in caplog.text


def test_a_decision_that_no_longer_attaches_to_its_cell_moves_the_sign_off_on(folder):
    """A frame replaced since (its digest another): the decision made on it is set aside, so
    the sign-off covered a decision that no longer counts; it does not hold as current."""
    import csv

    rows = list(csv.DictReader((folder / "review.csv").open()))
    frame = rows[0]["frame_id"]
    summary = json.loads((folder / "summary.json").read_text())
    summary["frame_digests"][frame]["sha256"] = "0" * 64  # the frame, and so the scan,
    summary["cartridge_id"] = "f" * 16                    # changed as a rerun records them
    (folder / "summary.json").write_text(json.dumps(summary))
    record = shown(folder)
    assert record["status"] == "changed since" and record["decided"] == 2


def test_a_lost_signoff_json_or_a_table_changed_with_its_digest_reads_edited_not_unsigned(
        folder):
    """An archive copy that lost signoff.json (its history kept), or a call changed in
    events.parquet with summary.json's digest made to match: the sample was signed, and its
    record is not as ctcnet left it; neither reads as never signed."""
    import pandas as pd

    from ctcnet.exports.event_exports import load_sample, signoff_now

    kept = (folder / SIGNOFF_FILE).read_text()
    (folder / SIGNOFF_FILE).unlink()
    record = shown(folder)
    assert record["status"] == EDITED and "signoff.json is missing" in record["problem"]
    events, summary = load_sample(folder)
    assert signoff_now(folder, events, summary)["status"] == EDITED
    (folder / SIGNOFF_FILE).write_text("{not json")
    assert "cannot be read" in shown(folder)["problem"]
    (folder / SIGNOFF_FILE).write_text(kept)
    assert shown(folder)["status"] == "current"
    table = pd.read_parquet(folder / "events.parquet")
    table.loc[table.index[0], "class"] = "ctc" if table["class"].iloc[0] != "ctc" else "wbc"
    table.to_parquet(folder / "events.parquet")
    summary = json.loads((folder / "summary.json").read_text())
    summary["events_sha256"] = file_sha256(folder / "events.parquet")
    (folder / "summary.json").write_text(json.dumps(summary))
    record = shown(folder)
    assert record["status"] == EDITED and "events.parquet is not the table signed" in \
        record["problem"]


def test_no_decision_or_sign_off_is_recorded_on_a_journal_edited_by_hand(folder):
    """A decision or a sign-off recorded after a hand edit would seal the edited file as
    ctcnet's: both are refused, saying how to go on; with the seal deleted (the way the
    message gives), the review goes on from the file as it is, and the earlier sign-off
    still reads as edited."""
    from ctcnet.review.journal_seal import JournalEdited

    path = folder / "review.csv"
    path.write_text(path.read_text().replace(",wbc,", ",ctc,", 1))
    edited = path.read_text()
    sample = Sample("P001", folder)
    state = sample.state("ann")
    third = [c["event_id"] for c in state["candidates"]][2]
    decide = {"event_ids": [third], "call": "debris", "run_id": state["run_id"]}
    with pytest.raises(JournalEdited, match=r"changed other than by ctcnet.*\.review\.csv\.seal"):
        sample.decide_many(decide, "ann")
    with pytest.raises(JournalEdited):
        sample.sign_off({**over(sample, folder), "note": "held calls checked",
                         "reviewer": "ann", "run_id": state["run_id"]}, "ann")
    assert path.read_text() == edited and shown(folder)["status"] == EDITED
    (folder / ".review.csv.seal").unlink()
    sample = Sample("P001", folder)
    sample.decide_many(decide, "ann")
    assert shown(folder)["status"] == EDITED  # the sign-off's own seal still tells
    sample.sign_off({**over(sample, folder), "note": "held calls checked",
                     "reviewer": "bob", "run_id": state["run_id"]}, "ann")
    assert shown(folder)["status"] == "current"


def test_a_sign_off_names_who_made_the_decisions_it_signs(folder):
    """The signer vouches for every decision, but the record says who made each."""
    sample = Sample("P001", folder)
    state = sample.state("bob")
    third = [c["event_id"] for c in state["candidates"]][2]
    sample.decide_many({"event_ids": [third], "call": "debris", "run_id": state["run_id"],
                        "reviewer": "bob"}, "bob")
    sample.sign_off({**over(sample, folder), "note": "held calls checked",
                     "reviewer": "ann", "run_id": state["run_id"]}, "ann")
    record = shown(folder)
    assert record["decided_by"] == {"ann": 2, "bob": 1}
    assert "3 event(s) decided (2 by ann, 1 by bob)" in signoff_text(record)


def test_each_of_two_sign_offs_at_once_is_answered_with_its_own(folder, monkeypatch):
    """Two reviewers sign at the same moment, having read the same state: the first is
    signed and told so (the answer was read from signoff.json after the lock, so the first
    signer was told the second had signed in their place); the second, which never saw the
    first, is refused, not told "signed" and replaced unseen (three at once all read 200)."""
    from ctcnet.review_server.sample_states import DecisionsChanged

    sample, other = Sample("P001", folder), Sample("P001", folder)
    run_id = sample.state("ann")["run_id"]
    body = {"stamp": sample.decisions.stamp(), "note": "held calls checked", "run_id": run_id,
            "signed_seen": seen(folder)}
    write_counts, answers = Sample.write_counts, []

    def the_other_signs_meanwhile(self):
        if self is sample and not answers:
            try:
                answers.append(other.sign_off({**body, "reviewer": "bob"}, "bob"))
            except DecisionsChanged as err:
                answers.append(err)
        return write_counts(self)

    monkeypatch.setattr(Sample, "write_counts", the_other_signs_meanwhile)
    first = sample.sign_off({**body, "reviewer": "cy"}, "cy")
    assert first["signoff"]["reviewer"] == "cy"
    assert isinstance(answers[0], DecisionsChanged)
    assert "signed off by cy at" in str(answers[0])
    history = (folder / HISTORY_FILE).read_text().splitlines()
    assert json.loads(history[-1])["reviewer"] == "cy" and shown(folder)["reviewer"] == "cy"
    # Named, the sign-off read is signed over.
    again = other.sign_off({**body, "reviewer": "bob", "signed_seen": seen(folder)}, "bob")
    assert again["signoff"]["reviewer"] == "bob"


def test_a_sign_off_leaving_held_calls_undecided_says_why(folder):
    """A call the marker guard held is a possible count (a possible missed CTC among them):
    a sign-off that leaves any undecided needs a note saying why, from a script as from the
    page (whose preview asks for one)."""
    from ctcnet.errors import InputError

    sample = Sample("P001", folder)
    state = sample.state("ann")
    held = [c for c in state["candidates"] if c["held"] and not c.get("decision")]
    assert held, "the signed cartridge leaves held calls undecided"
    body = {"stamp": sample.decisions.stamp(), "reviewer": "bob", "run_id": state["run_id"],
            "signed_seen": state["signoff"]["signed_seen"]}
    before = (folder / "signoff_history.jsonl").read_text()
    for note in ({}, {"note": "  "}):
        with pytest.raises(InputError, match=f"{len(held)} call.s. the marker guard held"):
            sample.sign_off({**body, **note}, "bob")
    assert (folder / "signoff_history.jsonl").read_text() == before
    sample.sign_off({**body, "note": "held calls checked on the frames"}, "bob")
    assert shown(folder)["reviewer"] == "bob"


def test_a_sign_off_of_another_runs_calls_is_said_on_the_page_as_earlier(folder):
    """After predict ran again the page read "not signed off", as of a sample nobody had
    signed, and summary.json dropped it (a LIMS read a withdrawn sign-off as never
    reviewed): the sign-off is shown as of the calls before, stale."""
    record = json.loads((folder / SIGNOFF_FILE).read_text())
    (folder / SIGNOFF_FILE).write_text(json.dumps({**record, "run_id": "another run"}))
    state = Sample("P001", folder).state("ann")
    assert state["signoff"]["reviewer"] == "ann"
    assert state["signoff"]["signed_at"] == record["signed_at"]
    assert state["signoff"]["status"] == "calls changed since"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["signoff"]["status"] == "calls changed since"
    assert summary["result_state"]["state"] in ("sign-off stale", "partial")


def test_verify_results_audits_an_archive_as_it_lies_and_writes_nothing(folder, capsys):
    """A data manager's question of a folder kept for years: each sample as ctcnet recorded
    it, or what differs (no command answered it; the review server repairs what it reads)."""
    from ctcnet.cli import main

    before = fingerprint(folder)
    assert main(["verify", "--results", str(folder)]) == 0
    said = capsys.readouterr().out
    assert "P001: intact, signed off\n" in said and "PASSED: 1 sample(s)" in said
    assert "note: signed off with " in said and "candidate(s) left undecided" in said
    assert fingerprint(folder) == before  # read as it lies: not a lock file touched
    summary = json.loads((folder / "summary.json").read_text())
    summary["counts"]["wbc"] += 1
    (folder / "summary.json").write_text(json.dumps(summary))
    path = folder / "review.csv"
    path.write_text(path.read_text().replace(",wbc,", ",ctc,", 1))
    assert main(["verify", "--results", str(folder.parent), "--json"]) == 1
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    problems = " | ".join(sample["problems"])
    assert "summary.json's figures were changed since ctcnet wrote them" in problems
    assert "review.csv was changed since ctcnet last wrote it" in problems
    assert "its sign-off does not hold: edited since" in problems


def test_verify_results_names_a_sign_off_of_another_runs_calls(folder, capsys):
    """A sign-off copied in from another sample's folder, consistent in itself: the audit
    names the run it signs, not "withdrawn (its record is gone)" beside a record there."""
    from ctcnet.cli import main

    signed = json.loads((folder / SIGNOFF_FILE).read_text())
    (folder / ".signoff_history.jsonl.seal").unlink()
    for name in (SIGNOFF_FILE, HISTORY_FILE):
        path = folder / name
        path.write_text(path.read_text().replace(signed["run_id"], "0123456789ab")
                        .replace(signed["calls_id"], "feedc0ffee00"))
    assert main(["verify", "--results", str(folder)]) == 1
    said = capsys.readouterr().out
    assert "withdrawn" not in said
    assert "not of this run's calls: its record (signoff.json) signs those of run " \
        "0123456789ab" in said


def test_verify_results_names_a_sample_whose_events_table_is_gone(folder, tmp_path, capsys):
    """A results folder one of whose finished samples lost its events table: the folder's
    audit said PASSED over the others, the sample left out without a word."""
    import shutil

    from ctcnet.cli import main

    results = tmp_path / "night"
    shutil.copytree(folder, results / "P001")
    shutil.copytree(folder, results / "P002")
    (results / "P002" / "events.parquet").unlink()
    assert main(["verify", "--results", str(results)]) == 1
    said = capsys.readouterr().out
    assert "P001: intact" in said and "P002" in said and "events.parquet is missing" in said


def test_verify_results_says_counts_after_review_left_behind_their_decisions(folder, capsys):
    """A review server killed between appending a decision and writing summary.json left its
    counts after review one decision behind review.csv; the audit read the sample intact."""
    from ctcnet.cli import main
    from ctcnet.review import decisions as D

    sample = Sample("P001", folder)
    state = sample.state("ann")
    other = next(c["event_id"] for c in state["candidates"] if c["call"] == "debris"
                 and c["decision"] is None)
    D.record_decision(folder, sample.run, other, "ctc", "ann")  # the journal alone
    assert main(["verify", "--results", str(folder)]) == 1
    said = capsys.readouterr().out
    assert "summary.json's counts after review per 7.5 mL" in said and \
        "are not those its review decisions give" in said
    sample.write_counts()  # what opening it in the review does: written again, intact
    assert main(["verify", "--results", str(folder)]) == 0


def test_verify_results_notes_reviewed_counts_an_earlier_ctcnet_did_not_keep(folder, capsys):
    """An earlier ctcnet's review kept no counts after review in summary.json: its decisions
    are not checked against them (a note), not read as a review stopped while writing them
    (every reviewed sample of that time failed its audit)."""
    from ctcnet.cli import main

    summary = json.loads((folder / "summary.json").read_text())
    assert summary.pop("reviewed")
    (folder / "summary.json").write_text(json.dumps(summary))
    main(["verify", "--results", str(folder), "--json"])
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    assert not any("counts after review per 7.5 mL" in p for p in sample["problems"])
    assert any("holds no counts after review beside" in n and "not checked" in n
               for n in sample["notes"]), sample["notes"]


def test_verify_results_names_a_sample_folder_that_is_a_link_elsewhere(folder, tmp_path,
                                                                       capsys):
    """A sample moved to other storage with a link left behind: the folder's audit said
    PASSED without reading it (the review and exports do not read a sample through a link);
    through a link to the sample itself, it is the sample's folder, not one renamed."""
    import shutil

    from ctcnet.cli import main

    results = tmp_path / "night"
    shutil.copytree(folder, results / "P001")
    shutil.copytree(folder, tmp_path / "archive" / "P002")
    (results / "P002").symlink_to(tmp_path / "archive" / "P002")
    assert main(["verify", "--results", str(results)]) == 1
    said = capsys.readouterr().out
    assert "P002" in said and "a link to " in said and "not checked here" in said
    (tmp_path / "one").symlink_to(results / "P001")
    assert main(["verify", "--results", str(tmp_path / "one")]) == 0
    assert "renamed" not in capsys.readouterr().out


def test_verify_results_fails_a_folder_whose_run_did_not_finish(folder, tmp_path, capsys):
    """A night killed outright: each sample written is intact, but run.json still reads
    running with its process gone, and a sample holds a journal and no summary; the audit said
    PASSED, which a morning check read as a night done."""
    import shutil
    import socket
    import subprocess
    import sys

    from ctcnet.cli import main

    results = tmp_path / "night"
    shutil.copytree(folder, results / "P001")
    (results / "P002" / "parts").mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (results / "run.json").write_text(json.dumps(
        {"format_version": 1, "state": "running", "host": socket.gethostname(),
         "pid": gone.pid, "inputs": ["P001", "P002", "P003"], "outputs": []}))
    assert main(["verify", "--results", str(results)]) == 1
    said = capsys.readouterr().out
    # An input the killed run never began: no folder names it, run.json's inputs do.
    assert "run: P003: not started (its run ended before it began it)" in said
    assert "P001: not started" not in said and "P002: not started" not in said
    # The review's list of samples says so above them: P002 and P003 are in no list below.
    from ctcnet.review_server.app import ReviewApp

    page = ReviewApp(results, saliency=False).index_html()
    assert "The run that wrote these results did not finish all of them" in page
    assert "P003: not started" in page and "P002: unfinished" in page
    assert "run: run.json reads running: its run was killed outright (its process is gone)" \
        in said
    assert "run: P002: unfinished (a run began it and ended before finishing it" in said
    # A run that failed (a full disk) ended it: said so, not as a kill.
    # One an earlier run left (killed), which its index lists as not its own, stays so.
    (results / "OLD" / "parts").mkdir(parents=True)
    (results / "run.json").write_text(json.dumps(
        {"format_version": 1, "state": "failed", "error": "No space left on device",
         "inputs": ["P001", "P002", "P003"], "outputs": [],
         "unfinished_outputs": {"OLD": "a run began it and ended before finishing it"}}))
    assert main(["verify", "--results", str(results)]) == 1
    failed = capsys.readouterr().out
    assert "run: P002: unfinished (its run failed before finishing it (No space left on " \
        "device): running its command again resumes it from its journal)" in failed
    assert "run: OLD: unfinished (a run began it and ended before finishing it (killed or " \
        "preempted)" in failed
    shutil.rmtree(results / "OLD")
    assert "P001: intact" in said and "FAILED: 1 sample(s) as ctcnet recorded them, but not " \
        "the folder as a whole" in said
    # Finished, its index as predict writes it: passed; a count edited in run.json (what a
    # laboratory system reads) is not its summary's.
    from ctcnet.inference.run_entry import output_entry, review_entry

    summary = json.loads((results / "P001" / "summary.json").read_text())
    entry = {**output_entry("P001", summary, results / "P001" / "summary.json"),
             **review_entry(summary)}
    (results / "run.json").write_text(json.dumps({"format_version": 1, "state": "finished",
                                                  "outputs": [entry]}))
    (results / "samples.csv").write_text("name\nP001\n")  # (written with run.json)
    shutil.rmtree(results / "P002")
    assert main(["verify", "--results", str(results), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"] == []
    entry["counts"] = {**entry["counts"], "ctc": entry["counts"]["ctc"] + 3}
    (results / "run.json").write_text(json.dumps({"format_version": 1, "state": "finished",
                                                  "outputs": [entry]}))
    assert main(["verify", "--results", str(results), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["run"] == [
        "run.json's entry of P001 is not its summary.json's in counts (the index or the "
        "summary edited?)"]
    # ...and the model file or build a laboratory system files with the count.
    entry["counts"]["ctc"] -= 3
    entry["model"] = {**entry["model"], "sha256": "0" * 64}
    entry["software"] = "ctcnet 9.9.9"
    (results / "run.json").write_text(json.dumps({"format_version": 1, "state": "finished",
                                                  "outputs": [entry]}))
    assert main(["verify", "--results", str(results), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["run"] == [
        "run.json's entry of P001 is not its summary.json's in model, software (the index "
        "or the summary edited?)"]
    # A forged sign-off and blood volume in the indices (what a laboratory system reads)
    # passed: only the counts, rates and status of samples.csv were compared.
    from ctcnet.inference.run_table import samples_csv

    entry = {**output_entry("P001", summary, results / "P001" / "summary.json"),
             **review_entry(summary)}
    forged = {**entry, "blood_volume_read_ml": entry["blood_volume_read_ml"] / 2}
    (results / "run.json").write_text(json.dumps({"format_version": 1, "state": "finished",
                                                  "outputs": [forged]}))
    (results / "samples.csv").write_text(samples_csv([{
        **entry, "signed_off": not entry.get("signed_off"), "signed_off_by": "Dr X"}]))
    assert main(["verify", "--results", str(results), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["run"] == [
        "run.json's entry of P001 is not its summary.json's in blood_volume_read_ml (the "
        "index or the summary edited?)", "samples.csv's row of P001 is not its summary.json's "
        "in signed_off, signed_off_by (the table or the summary edited?)"]
    # The same table saved again by a spreadsheet (a byte-order mark first) was not read at
    # all; a row removed or renamed passed.
    (results / "run.json").write_text(json.dumps({"format_version": 1, "state": "finished",
                                                  "outputs": [entry]}))
    edited = samples_csv([{**entry, "signed_off_by": "Dr X"}])
    for table, problem in [
            ("\ufeff" + edited, "samples.csv's row of P001 is not its summary.json's in "
             "signed_off_by (the table or the summary edited?)"),
            (edited.split("\n")[0] + "\n", "samples.csv has no row of P001, which run.json "
             "lists (the table edited?)"),
            (edited.replace("\nP001,", "\nP009,"), "samples.csv has no row of P001, which "
             "run.json lists (the table edited?)")]:
        (results / "samples.csv").write_text(table, encoding="utf-8")
        assert main(["verify", "--results", str(results), "--json"]) == 1
        assert problem in json.loads(capsys.readouterr().out)["run"]
    # Its rows of the samples a run began and did not finish (or an earlier run left) are
    # no edit; nor is a sample id a spreadsheet would read as a formula, written as text.
    (results / "run.json").write_text(json.dumps({"format_version": 1, "state": "finished",
                                                  "outputs": [entry], "unfinished_outputs":
                                                  {"P000": "its journal, no summary"}}))
    earlier = samples_csv([entry, {**entry, "name": "P000"}])
    (results / "samples.csv").write_text(earlier, encoding="utf-8")
    assert main(["verify", "--results", str(results), "--json"]) == 0, capsys.readouterr().out
    capsys.readouterr()
    from ctcnet.exports.table_audit import cell_text, same_cell

    assert cell_text("'+PC") == "+PC" and cell_text("'note") == "'note"
    assert same_cell("'=1+2", "=1+2") and not same_cell("'=1+2", "=1+3")
    # A rate at two decimals within its rounding; a number written whole as written (a pixel
    # size 2 % off, a volume 7.51 for 7.5, passed as intact within the hundredth).
    assert same_cell("8.0", "8.00") and same_cell("0.4551", 0.4551)
    assert not same_cell("0.4651", 0.4551) and not same_cell("7.51", 7.5)
    # An entry an earlier ctcnet wrote, without the keys added since: as it was written.
    older = {k: v for k, v in entry.items() if k not in (
        "signed_off_by", "signed_off_at", "result_state", "blood_volume_read_ml")}
    (results / "run.json").write_text(json.dumps({"format_version": 1, "state": "finished",
                                                  "outputs": [older]}))
    (results / "samples.csv").write_text(samples_csv([entry]))
    assert main(["verify", "--results", str(results)]) == 0
    capsys.readouterr()
    # ...and summary.json's own state, which no seal covers.
    path = results / "P001" / "summary.json"
    path.write_text(json.dumps({**summary, "result_state": {"state": "signed off",
                                                            "text": "SIGNED OFF"}}))
    assert main(["verify", "--results", str(results)]) == 1
    assert "P001: summary.json's result_state says 'signed off', its figures and sign-off " \
        f"make it {summary['result_state']['state']!r} (edited?)" in capsys.readouterr().out


def test_an_events_table_this_account_cannot_read_is_said_so_not_read_as_edited(
        folder, capsys, monkeypatch):
    """chmod 000 on events.csv read "not the table predict wrote (changed since)": a
    permission, recorded by an auditor as tampering."""
    import builtins

    from ctcnet.cli import main

    real = builtins.open

    def denied(path, *args, **kwargs):  # (as root no mode keeps a file from being read)
        if str(path).endswith("events.csv"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", denied)
    assert main(["verify", "--results", str(folder)]) == 1
    said = capsys.readouterr().out
    assert "events.csv is " in said and "cannot read: not checked" in said
    assert "not the table predict wrote" not in said


def test_a_look_at_a_sample_leaves_its_files_as_they_lie(folder):
    """Every review start rewrote each sample's .ctcnet.lock, with nothing to write: a
    fixity check of an archive failed for a look at it."""
    Sample("P001", folder).state("ann")  # (brought up to date once, as a copy may need)
    before = fingerprint(folder)
    sample = Sample("P001", folder)
    sample.state("ann")
    sample.write_counts()
    assert fingerprint(folder) == before


def test_an_audit_tells_a_stale_sign_off_from_an_edit_and_keeps_who_checked(folder, tmp_path,
                                                                            capsys):
    """A decision made after the sign-off was reported FAILED, "not as ctcnet recorded them",
    as an edit would be; the record kept no checked_at, host or user."""
    from ctcnet.cli import main

    sample = Sample("P001", folder)
    state = sample.state("ann")
    undecided = [c["event_id"] for c in state["candidates"] if not c["decision"]]
    sample.decide({"event_id": undecided[0], "call": "reject", "run_id": state["run_id"]},
                  "bob")
    out = tmp_path / "audit.json"
    assert main(["verify", "--results", str(folder), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "P001: intact, sign-off stale (changed since)" in said and "PASSED" in said
    assert "decisions changed since the sign-off: sign it off again" in said
    record = json.loads(out.read_text())
    assert {"checked_at", "host", "user", "software"} <= set(record)
    (entry,) = record["samples"]
    assert entry["folder"] == str(folder.resolve()) and not entry["problems"]
    assert any("sign it off again" in n for n in entry["notes"])
    # A summary the review server found edited and wrote again: intact now, its past said.
    (folder / "previous").mkdir(exist_ok=True)
    (folder / "previous" / "summary-20261201T000000Z-not-as-written.json").write_text("{}")
    main(["verify", "--results", str(folder)])
    assert "previous/ keeps 1 file(s) found not as ctcnet wrote them" in capsys.readouterr().out
    # A run resumed by another build: which build made its frames is said (a validation
    # file names what made the calls, not only what finished the run).
    from ctcnet.exports.results_audit import audit_results

    summary = json.loads((folder / "summary.json").read_text())
    summary["frames_made_by"] = {"onnx (file c538449cce41), ctcnet 0.1.0 (c1a604d2d2e2)": 5}
    (folder / "summary.json").write_text(json.dumps(summary))
    (entry,) = audit_results(folder)
    assert "a resumed run: frames made by another build, backend or model file than the one " \
        "its summary names (onnx (file c538449cce41), ctcnet 0.1.0 (c1a604d2d2e2): 5)" in \
        entry["notes"], entry


def test_a_batchs_table_says_what_a_sign_off_left_undecided_and_its_note(folder):
    """A sign-off on 2 of many candidates, with a note, read in samples.csv as one on all."""
    from ctcnet.inference.run_entry import review_entry
    from ctcnet.inference.run_table import samples_csv

    summary = json.loads((folder / "summary.json").read_text())
    entry = review_entry(summary)
    assert entry["signed_off"] and entry["decided"] == 2
    assert entry["left_undecided"] == summary["signoff"]["unreviewed"] > 0
    assert entry["signoff_note"] == summary["signoff"]["note"]
    table = samples_csv([{"name": "P001", "status": "ok", **entry}])
    header, row = table.splitlines()[:2]
    assert "left_undecided" in header and "signoff_note" in header
    assert "'=2 held calls" in row  # the note starts as a formula: guarded


def test_verify_results_holds_summarys_sign_off_and_folder_name_to_their_records(
        folder, tmp_path):
    """A data manager's audit: summary.json's copy of the sign-off with its reviewer changed
    (signoff.json still naming the one who signed) passed as intact, as did a sample folder
    renamed after predict wrote it (run.json naming the old one; the exports refuse it)."""
    from ctcnet.exports.results_audit import audit_results, audit_run

    assert [p for s in audit_results(folder) for p in s["problems"]] == []  # as left
    data = json.loads((folder / "summary.json").read_text())
    data["signoff"]["reviewer"] = "Reviewer-A"
    (folder / "summary.json").write_text(json.dumps(data))
    (audit,) = audit_results(folder)
    assert ("summary.json's sign-off is not its record's (signoff.json) in reviewer"
            in " ".join(audit["problems"]))
    results = tmp_path / "results"
    results.mkdir()
    renamed = results / "SITE03-P017"
    shutil.copytree(folder, renamed)
    (results / "run.json").write_text(json.dumps({"state": "finished", "outputs": [
        {"name": "P001", "summary": "P001/summary.json"}]}))
    (audit,) = audit_results(results)
    assert any("its folder is named SITE03-P017, predict wrote it as P001" in p
               for p in audit["problems"])
    assert any("run.json lists P001, whose summary.json is not there" in p
               for p in audit_run(results))
    # A run killed as it ended once left run.json "finished" without samples.csv: said.
    assert "run.json reads finished, but samples.csv is not there: running its command " \
        "again writes it" in audit_run(results)
    (results / "samples.csv").write_text("name\nP001\n")
    assert not any("samples.csv is not there" in p for p in audit_run(results))
    # (and the renamed folder is one the index lists nowhere: a laboratory system's reading)
    assert any("SITE03-P017 holds a finished output run.json lists nowhere" in p
               for p in audit_run(results))


def test_verify_results_takes_a_sample_folder_copied_through_macos_as_itself(folder, tmp_path):
    """A copy through macOS decomposes the accents of a sample's folder name: the same
    sample, which the review, crops and exports take; the audit failed it as renamed (two
    names printed alike) and said run.json's entry had no summary."""
    import unicodedata

    from ctcnet.exports.results_audit import audit_results, audit_run

    name = "P\u00e2tient \u00fc 01"
    data = json.loads((folder / "summary.json").read_text())
    data["output_folder"] = name
    (folder / "summary.json").write_text(json.dumps(data))
    results = tmp_path / "copied"
    results.mkdir()
    shutil.copytree(folder, results / unicodedata.normalize("NFD", name))
    (results / "run.json").write_text(json.dumps({"state": "finished", "outputs": [
        {"name": name, "summary": f"{name}/summary.json"}], "other_outputs": [name]}))
    (audit,) = audit_results(results)
    assert not any("its folder is named" in p for p in audit["problems"]), audit
    assert not any("summary.json is not there" in p for p in audit_run(results))


def test_verify_results_fails_an_index_calling_a_finished_sample_missing(folder, tmp_path):
    """Shards run into separate folders, copied together by hand: the last run.json copied
    called the other shards' finished samples missing (no result tonight, for a laboratory
    system), and the audit passed the folder."""
    from ctcnet.exports.results_audit import audit_run

    results = tmp_path / "combined"
    results.mkdir()
    shutil.copytree(folder, results / "P001")
    (results / "samples.csv").write_text("name\nP001\n")
    for entry, said in (({"name": "P001", "missing": True, "reason": "it falls to --shard "
                          "1/3"}, "missing"),
                        ({"name": "P001", "set_aside": "held"}, "set aside")):
        (results / "run.json").write_text(json.dumps({"state": "finished",
                                                      "outputs": [entry]}))
        assert any(f"run.json lists P001 as {said}, but its folder holds a finished output"
                   in p for p in audit_run(results)), audit_run(results)
    # Set aside with the earlier output it kept, as run.json records one: as ctcnet wrote it.
    (results / "run.json").write_text(json.dumps({"state": "finished", "outputs": [
        {"name": "P001", "set_aside": "held", "kept_output": {}}]}))
    assert not any("holds a finished output" in p for p in audit_run(results))


def test_verify_results_names_a_journal_planted_as_a_link_and_goes_on(folder, tmp_path):
    """review.csv a link to a file outside the folder: the audit of the whole folder ended in
    one error; the sample is failed, saying why, and the audit goes on."""
    from ctcnet.exports.results_audit import audit_results

    outside = tmp_path / "outside.csv"
    outside.write_bytes((folder / "review.csv").read_bytes())
    (folder / "review.csv").unlink()
    (folder / "review.csv").symlink_to(outside)
    (audit,) = audit_results(folder)
    assert any("is a symbolic link" in p for p in audit["problems"]), audit
    # Not signed off: said all the same (it was silent).
    data = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**data, "signoff": None}))
    (folder / "signoff.json").unlink()
    (audit,) = audit_results(folder)
    assert any("is a symbolic link" in p for p in audit["problems"]), audit


def test_verify_results_finds_a_name_written_over_in_every_copy_and_a_copy_removed(folder):
    """The reviewer's name replaced in signoff.json, its history and summary.json alike
    passed as intact (review.csv, sealed, names who decided); summary.json's sign-off taken
    out while signoff.json holds this run's passed a one-sample audit."""
    from ctcnet.exports.results_audit import audit_results

    record = json.loads((folder / "signoff.json").read_text())
    record["decided_by"] = {"someone else": sum(record["decided_by"].values())}
    (folder / "signoff.json").write_text(json.dumps(record))
    data = json.loads((folder / "summary.json").read_text())
    data["signoff"]["decided_by"] = record["decided_by"]
    (folder / "summary.json").write_text(json.dumps(data))
    history = (folder / "signoff_history.jsonl").read_text().splitlines()
    last = json.loads(history[-1])
    last["decided_by"] = record["decided_by"]
    (folder / "signoff_history.jsonl").write_text("\n".join([*history[:-1], json.dumps(last)])
                                                   + "\n")
    (audit,) = audit_results(folder)
    assert audit["problems"][0] == ("its sign-off credits someone else with decisions "
                                    "review.csv does not name: edited by hand?")
    # ...and the history, sealed as a journal is, no longer what ctcnet wrote.
    assert "signoff_history.jsonl no longer holds what ctcnet wrote" in audit["problems"][1]


def test_verify_results_finds_summarys_sign_off_removed(folder):
    from ctcnet.exports.results_audit import audit_results

    data = json.loads((folder / "summary.json").read_text())
    del data["signoff"]
    (folder / "summary.json").write_text(json.dumps(data))
    (audit,) = audit_results(folder)
    assert "summary.json names no sign-off, but signoff.json holds this run's (its copy " \
        "removed by hand?)" in audit["problems"]


@pytest.mark.parametrize("edit", [
    lambda s: s["model"].update(sha256="0" * 64), lambda s: s.update(ctcnet_version="9.9.9"),
    lambda s: s["software"].update(commit="f" * 40),
    lambda s: s["frame_digests"].update({next(iter(s["frame_digests"])): "0" * 64}),
    lambda s: s.update(cartridge_id="0" * 16),
    lambda s: s["run_fingerprint"].update(model_sha256="0" * 64),
])
def test_verify_results_tells_what_made_the_figures_edited_by_hand(folder, capsys, edit):
    """A technical file traces a result to its model file, software and inputs: each written
    over in summary.json read "intact" (only the figures were sealed)."""
    from ctcnet.cli import main

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["provenance_sha256"]
    edit(summary)
    (folder / "summary.json").write_text(json.dumps(summary))
    assert main(["verify", "--results", str(folder), "--json"]) == 1
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    assert any(p.startswith("what made its figures (summary.json's model, software") and
               "provenance_sha256" in p for p in sample["problems"]), sample["problems"]


@pytest.mark.parametrize("edit", [
    lambda s: s.update(skipped_frames=[{"frame": "r00c01", "reason": "unreadable"}]),
    lambda s: s["frames"].update(processed=1),
    lambda s: s.update(events_per_mm2=1.0),
    lambda s: s["events_by_frame"].update({next(iter(s["events_by_frame"])): 0}),
])
def test_an_edit_of_the_blood_read_fails_the_audit(folder, capsys, edit):
    """The frames read and skipped edited (a skipped frame edited away read as a whole
    sample), the crowding: outside the figures' and the provenance's seals, such edits read
    "intact"."""
    from ctcnet.cli import main

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["reading_sha256"]
    edit(summary)
    (folder / "summary.json").write_text(json.dumps(summary))
    assert main(["verify", "--results", str(folder), "--json"]) == 1
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    assert any(p.startswith("what its blood read rests on") and "reading_sha256" in p
               for p in sample["problems"]), sample["problems"]
    # The review server does not write the edit over, sealing it as ctcnet's.
    from ctcnet.review_server.sample import Sample

    edited = (folder / "summary.json").read_bytes()
    sample = Sample("P001", folder)
    event = int(sample.candidates["event_id"].iloc[0])
    sample.decide({"event_id": event, "call": "reject", "run_id": sample.run.token}, "ann")
    assert (folder / "summary.json").read_bytes() == edited
    del summary["reading_sha256"]  # an earlier ctcnet's summary: read, unchecked
    (folder / "summary.json").write_text(json.dumps(summary))
    assert main(["verify", "--results", str(folder), "--json"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize("edit", [
    lambda s: s.update(blood_volume_processed_ml=2.5), lambda s: s.update(blood_volume_ml=10.0),
    lambda s: s.update(status="ok", problems=[]) if s.get("problems") else
    s.update(status="partial", problems=["edited in"]),
])
def test_what_the_rates_rest_on_edited_is_not_sealed_by_a_look_nor_exported(
        folder, capsys, edit, tmp_path):
    """A volume read edited from 7.5 to 2.5 mL tripled the rate: the figures' seal said so,
    but the review server wrote the counts again from the events and sealed the volume as it
    found it, and the audit then passed it; an export carried an edited status into its FCS
    keywords. Now what the rates rest on is sealed apart: left as it lies, and refused."""
    from ctcnet.cli import main
    from ctcnet.errors import InputError
    from ctcnet.exports.event_exports import export_events
    from ctcnet.review_server.sample import Sample

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["basis_sha256"]
    edit(summary)
    (folder / "summary.json").write_text(json.dumps(summary))
    edited = (folder / "summary.json").read_bytes()
    sample = Sample("P001", folder)
    sample.state("ann")
    assert (folder / "summary.json").read_bytes() == edited  # a look seals nothing
    assert main(["verify", "--results", str(folder), "--json"]) == 1
    (said,) = json.loads(capsys.readouterr().out)["samples"]
    assert any(p.startswith("what its rates rest on (summary.json's status, problems and "
                            "blood volumes)") for p in said["problems"]), said["problems"]
    with pytest.raises(InputError, match="what its rates rest on"):
        export_events(folder, fcs=True, out=tmp_path / "exports")


def test_a_summary_sealed_before_its_provenance_was_reads_with_a_note(folder, capsys):
    """An earlier ctcnet's summary (figures sealed, provenance not) is read, with a note; the
    review server writing its counts again does not seal what it only copied (a look at an
    old folder sealed its model and frames as this version's, and the note went)."""
    from ctcnet.cli import main
    from ctcnet.review_server.sample import Sample

    summary = json.loads((folder / "summary.json").read_text())
    del summary["provenance_sha256"], summary["sample_record_sha256"]
    (folder / "summary.json").write_text(json.dumps(summary))
    for look in range(2):
        assert main(["verify", "--results", str(folder), "--json"]) == 0
        (sample,) = json.loads(capsys.readouterr().out)["samples"]
        assert any("before ctcnet sealed what made its figures" in n for n in sample["notes"])
        if look == 0:
            sample = Sample("P001", folder)
            event = int(sample.candidates["event_id"].iloc[0])
            sample.decide({"event_id": event, "call": "reject", "run_id": sample.run.token},
                          "ann")
            written = json.loads((folder / "summary.json").read_text())
            assert written["reviewed"] != summary.get("reviewed")  # written again
            assert "provenance_sha256" not in written and "sample_record_sha256" not in written
            assert written["reading_sha256"] == summary["reading_sha256"]


def test_a_reviewers_name_written_over_in_every_copy_of_the_sign_off_is_told(folder, capsys):
    """signoff.json, the history's last line and summary.json's copy, three plain edits,
    read "intact, signed off": the history is sealed as a journal is."""
    from ctcnet.cli import main

    assert (folder / ".signoff_history.jsonl.seal").is_file()
    for name in ("signoff.json", "signoff_history.jsonl", "summary.json"):
        path = folder / name
        path.write_text(path.read_text().replace('"ann"', '"Dr Someone Else"'))
    assert main(["verify", "--results", str(folder), "--json"]) == 1
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    assert any("signoff_history.jsonl no longer holds what ctcnet wrote to it" in p
               for p in sample["problems"]), sample["problems"]
    # No sign-off is recorded on the edited history: it would seal the edit as ctcnet's.
    from ctcnet.review.journal_seal import JournalEdited

    sample = Sample("P001", folder)
    state = sample.state("ann")
    with pytest.raises(JournalEdited, match="signoff_history.jsonl"):
        sample.sign_off({**over(sample, folder), "reviewer": "ann",
                         "run_id": state["run_id"], "note": "held calls checked"}, "ann")


def test_verify_results_names_an_earlier_output_removed_but_still_indexed(folder, tmp_path,
                                                                         capsys):
    """A core facility's clean-up removed a sample folder: run.json's other_outputs and
    samples.csv still listed it until the next run, and the audit passed."""
    from ctcnet.cli import main
    from ctcnet.inference.run_entry import output_entry, review_entry

    results = tmp_path / "results"
    shutil.copytree(folder, results / "P001")
    (results / "samples.csv").write_text("name\nP001\n")  # (written with run.json)
    summary = json.loads((results / "P001" / "summary.json").read_text())
    entry = {**output_entry("P001", summary, results / "P001" / "summary.json"),
             **review_entry(summary)}
    for others, status in ((["P001"], 0), (["P000"], 1)):  # an earlier output there, gone
        (results / "run.json").write_text(json.dumps({
            "format_version": 1, "state": "finished", "outputs": [entry] * (status == 1),
            "other_outputs": others}))
        assert main(["verify", "--results", str(results), "--json"]) == status
        out = capsys.readouterr().out
    (said,) = json.loads(out)["run"]
    assert said.startswith("run.json lists P000 among the folder's earlier outputs, whose "
                           "summary.json is not there (removed since?")


def test_summary_json_follows_the_sign_off_after_it_is_signed_again(folder):
    """Signed, changed since (a decision), signed again, then a decision appended by another
    hand: the page read "changed since" as it had before the second sign-off, so summary.json
    (and index.html) went on saying "current" with counts no journal gave."""
    from ctcnet.review import decisions as D

    sample = Sample("P001", folder)
    state = sample.state("ann")
    third = [c["event_id"] for c in state["candidates"] if not c.get("decision")][0]
    sample.decide_many({"event_ids": [third], "call": "wbc", "run_id": state["run_id"]}, "ann")
    assert sample.state("ann")["signoff"]["status"] == "changed since"
    sample.sign_off({**over(sample, folder), "reviewer": "ann",
                     "run_id": state["run_id"], "note": "the rest as called"}, "ann")
    on_disk = json.loads((folder / "summary.json").read_text())["signoff"]
    assert on_disk["status"] == "current"
    fourth = [c["event_id"] for c in state["candidates"] if not c.get("decision")][1]
    D.record_decision(folder, sample.run, fourth, "ctc", "bob")  # another writer's line
    shown = sample.state("ann")["signoff"]
    assert shown["status"] == "changed since"
    sample.write_if_signoff_moved(shown)  # as the server does, after the read
    on_disk = json.loads((folder / "summary.json").read_text())["signoff"]
    assert on_disk["status"] == "changed since"


def test_verify_names_the_review_records_and_folders_this_account_cannot_read(
        folder, capsys, monkeypatch):
    """A reviewer's signoff.json 0600 read "intact, not signed off" by the service account; a
    sample folder 0700 gave exit 4 and "make the folder writable" to a command that writes
    nothing. Each is named with its owner and mode."""
    import os
    import pathlib

    from ctcnet.cli import main

    real_open = pathlib.Path.open

    def forbidden(self, *args, **kwargs):
        if self.name == SIGNOFF_FILE:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", forbidden)
    assert main(["verify", "--results", str(folder)]) == 1
    said = capsys.readouterr().out
    assert f"{SIGNOFF_FILE} is " in said and "cannot read: its review and sign-off are not " \
        "checked" in said and "FAILED" in said
    monkeypatch.undo()
    real_access = os.access

    def shut(path, mode, **kwargs):  # the folder may not be entered by this account
        if pathlib.Path(path) == folder and mode == os.X_OK:
            return False
        if str(path).startswith(str(folder) + os.sep):
            return False
        return real_access(path, mode, **kwargs)

    def unreadable(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", str(folder / "summary.json"))

    monkeypatch.setattr(os, "access", shut)
    monkeypatch.setattr("ctcnet.exports.results_audit.audit_results", unreadable)
    assert main(["verify", "--results", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"may not read it ({folder} is " in err and "mode 0" in err
    assert "writable" not in err


def test_a_sign_off_of_a_ctcnet_that_kept_no_history_is_unchecked_and_kept_when_signed_again(
        folder):
    """An archive's sign-off by a ctcnet before the sign-off history (no history, no seals,
    none of the fields that came after it) read "edited since ... written by hand" after an
    upgrade, and signing again left no record of who had signed the result reported. It is
    said not checked; signed again, it is the history's first line."""
    old_fields = ("reviewer", "signed_at", "run_id", "cartridge_id", "decided", "unreviewed",
                  "after_review_per_7_5_ml", "journal_rows", "second_reading", "calls_id")
    record = json.loads((folder / SIGNOFF_FILE).read_text())
    (folder / SIGNOFF_FILE).write_text(json.dumps({k: record[k] for k in old_fields}))
    for name in (HISTORY_FILE, f".{HISTORY_FILE}.seal"):
        (folder / name).unlink()
    signed = shown(folder)
    assert signed["status"] == "current", signed.get("problem")
    assert "made by an earlier ctcnet" in signed["unchecked"]
    sample = Sample("P001", folder)
    state = sample.state("ann")
    sample.sign_off({**over(sample, folder), "reviewer": "bob",
                     "run_id": state["run_id"], "note": "again"}, "bob")
    lines = [json.loads(line) for line in (folder / HISTORY_FILE).read_text().splitlines()]
    assert [r["reviewer"] for r in lines] == ["ann", "bob"]
    assert lines[0]["signed_at"] == record["signed_at"]
    assert shown(folder)["status"] == "current" and "unchecked" not in shown(folder)


def test_a_summary_json_that_is_no_object_is_one_line_everywhere(folder, capsys):
    """A summary.json replaced by valid JSON that is no object (``[]``): verify, export-events
    and crops ended in a traceback (exit 1); each says so of the sample."""
    from ctcnet.cli import main

    (folder / "summary.json").write_text("[]")
    assert main(["verify", "--results", str(folder.parent)]) == 1
    assert "P001: summary.json cannot be read: it holds a JSON list, not a run's record" in \
        capsys.readouterr().out
    for command in (["export-events", str(folder.parent), "--fcs", "--out",
                     str(folder.parent / "x")],
                    ["crops", str(folder.parent), "--out", str(folder.parent / "y")]):
        assert main(command) == 2
        assert "a JSON list where a record (RunSummary: an object of fields) belongs" in \
            capsys.readouterr().err


def test_cutting_a_signed_off_sample_whose_review_csv_went_says_so(folder, capsys):
    """review.csv deleted beside its sign-off: `crops` said "nothing confirmed or relabelled
    yet: run ctcnet review first" of a sample reviewed and signed off."""
    from ctcnet.cli import main

    (folder / "review.csv").unlink()
    assert main(["crops", str(folder.parent), "--reviewed", "--out",
                 str(folder.parent / "cut")]) == 2
    said = capsys.readouterr().err
    assert "no decision in review.csv, though P001 is signed off: its review.csv removed or " \
        "replaced?" in said, said


def test_a_crop_folders_summary_is_not_said_to_be_an_earlier_versions(tmp_path):
    """No ctcnet seals a crop folder's summary.json: the audit said every fresh one was
    written by "an earlier version"."""
    from ctcnet.exports.results_audit import _audit_sample

    (tmp_path / "crops").mkdir()
    (tmp_path / "crops" / "summary.json").write_text(json.dumps({"crops": 3, "counts": {}}))
    (tmp_path / "scan").mkdir()
    (tmp_path / "scan" / "summary.json").write_text(json.dumps({"counts": {}}))
    crops = _audit_sample("crops", tmp_path / "crops")
    assert crops["notes"] == ["a crop folder's summary.json, which ctcnet does not seal: its "
                              "figures unchecked"] and not crops["problems"]
    scan = _audit_sample("scan", tmp_path / "scan")
    assert any("an earlier version's" in note for note in scan["notes"])


def test_a_sign_off_read_without_open_files_left_is_the_machines_error(folder, monkeypatch):
    """The review server out of file descriptors read a signed-off sample as not signed off
    or "edited since", and warned of signoff.json as damaged: the machine's state is raised,
    never read as a sign-off's."""
    import errno
    from pathlib import Path

    from ctcnet.review.signoff import read_signoff

    assert read_signoff(folder) is not None
    real = Path.read_text

    def no_files_left(self, *args, **kwargs):
        if self.name in (SIGNOFF_FILE, HISTORY_FILE):
            raise OSError(errno.EMFILE, "Too many open files", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_files_left)
    with pytest.raises(OSError, match="Too many open files"):
        read_signoff(folder)


def test_verify_results_fails_a_night_killed_before_its_first_sample(tmp_path, capsys):
    """A run killed outright before it wrote any sample: its --out holds run.json (running, its
    process gone) and no sample; the audit ended in an error (exit 2, as for a bad input)
    where a morning check must read FAILED."""
    import socket
    import subprocess
    import sys

    from ctcnet.cli import main

    night = tmp_path / "night"
    night.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (night / "run.json").write_text(json.dumps(
        {"format_version": 1, "state": "running", "host": socket.gethostname(),
         "pid": gone.pid, "inputs": ["P001"], "outputs": []}))
    assert main(["verify", "--results", str(night)]) == 1
    said = capsys.readouterr().out
    assert "run: run.json reads running: its run was killed outright" in said
    assert "FAILED: 0 sample(s)" in said
    assert main(["verify", "--results", str(tmp_path / "empty")]) == 2  # no such folder


def seen(folder):
    """What a sign-off over the sample's names of the one there (signed_seen)."""
    from ctcnet.review.signoff import read_signoff
    from ctcnet.review_server.signoff_checks import signoff_key

    return signoff_key(read_signoff(folder))


def over(sample, folder) -> dict:
    """A sign-off's stamp and signed_seen, as the state reads them now."""
    return {"stamp": sample.decisions.stamp(), "signed_seen": seen(folder)}


def test_events_csv_deleted_as_the_retention_allows_is_a_note_not_a_failure(folder, capsys):
    """The docs' retention lets events.csv go where events.parquet is kept: the audit failed
    every folder so kept. The Parquet table missing still fails it."""
    from ctcnet.cli import main

    (folder / "events.csv").unlink()
    assert main(["verify", "--results", str(folder), "--json"]) == 0
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    assert any(n.startswith("events.csv deleted (the retention the docs allow")
               for n in sample["notes"]), sample
    (folder / "events.parquet").unlink()
    assert main(["verify", "--results", str(folder), "--json"]) == 1
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    assert any("events.parquet is missing" in p for p in sample["problems"]), sample


def test_a_sign_off_copy_written_over_is_kept_when_the_review_writes_it_again(folder, capsys,
                                                                              caplog):
    """The reviewer's name written over in summary.json's copy alone: the audit said so, then
    the review's first look wrote the copy again from the record, without a trace, and the
    audit passed the folder with no note."""
    from ctcnet.cli import main
    from ctcnet.review_server.sample import Sample

    summary = json.loads((folder / "summary.json").read_text())
    summary["signoff"]["reviewer"] = "dr.smith"
    (folder / "summary.json").write_text(json.dumps(summary))
    with caplog.at_level("WARNING"):
        Sample("P001", folder).state("ann")
    assert "its copy of the sign-off names one its history never recorded" in caplog.text
    assert json.loads((folder / "summary.json").read_text())["signoff"]["reviewer"] == "ann"
    kept = list((folder / "previous").glob("summary-*not-as-written*.json"))
    assert len(kept) == 1 and "dr.smith" in kept[0].read_text()
    assert main(["verify", "--results", str(folder), "--json"]) == 0
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    assert any(n.startswith("previous/ keeps 1 file(s) found not as ctcnet wrote them")
               for n in sample["notes"]), sample
    # signoff.json edited alone: the copy the server writes from it is its own, not kept as
    # a hand edit of summary.json at every later look.
    path = folder / "signoff.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "reviewer": "dr.jones"}))
    caplog.clear()
    for _ in range(3):
        Sample("P001", folder).state("ann")
    assert "its copy of the sign-off names one" not in caplog.text
    assert len(list((folder / "previous").glob("summary-*not-as-written*.json"))) == 1
