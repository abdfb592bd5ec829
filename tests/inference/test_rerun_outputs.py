"""ctcnet.inference.rerun_outputs: what a rerun keeps of a sample's review and exports in a
folder several accounts write (a service account's runs, reviewers' decisions)."""

import pathlib

import pytest

from ctcnet.errors import InputError
from ctcnet.inference import rerun_outputs as R


def test_the_review_records_a_rerun_carries_are_the_reviews_own():
    from ctcnet.review.decision_journal import LOCK_FILE, REVIEW_FILE, SECOND_FILE
    from ctcnet.review.journal_seal import _seal_file
    from ctcnet.review.signoff import HISTORY_FILE, SIGNOFF_FILE

    journals = (REVIEW_FILE, SECOND_FILE, HISTORY_FILE)
    assert set(R.REVIEW_RECORDS) == {*journals, SIGNOFF_FILE, LOCK_FILE,
                                     *(_seal_file(pathlib.Path(j)).name for j in journals)}


def test_a_geojson_export_this_account_could_not_move_is_refused_before_any_work(
        tmp_path, monkeypatch):
    """A reviewer's geojson/ folder 0755: a rerun whose tables changed rewrote the events,
    withdrew the summary, then stopped on the move, leaving the old exports beside the new
    table. It is refused before any work."""
    import os

    (tmp_path / R.GEOJSON_DIR).mkdir()
    R.EarlierRun.read(tmp_path)  # movable: read as before
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if (
        pathlib.Path(path).name == R.GEOJSON_DIR and mode == os.W_OK) else real(path, mode))
    with pytest.raises(InputError, match=r"geojson: is \S+'s, mode 0\d{3}, which this account "
                                         r"\(\S+\) cannot move into previous/"):
        R.EarlierRun.read(tmp_path)


def test_a_sample_whose_sign_off_this_account_cannot_read_is_refused(tmp_path, monkeypatch):
    """A reviewer's signoff.json 0600: the rerun wrote summary.json "not signed off" of a
    signed-off result; it is refused before any work, naming the file and its owner."""
    (tmp_path / "signoff.json").write_text("{}")
    (tmp_path / "review.csv").write_text("")
    real = pathlib.Path.open

    def forbidden(self, *args, **kwargs):
        if self.name == "signoff.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    R.EarlierRun.read(tmp_path)  # readable: read as before
    monkeypatch.setattr(pathlib.Path, "open", forbidden)
    assert R.unreadable_review(tmp_path) == [tmp_path / "signoff.json"]
    with pytest.raises(InputError, match=r"signoff.json: is \S+'s, mode 0\d{3}, which this "
                                         r"account \(\S+\) cannot read"):
        R.EarlierRun.read(tmp_path)


def test_exports_that_cannot_all_be_moved_are_all_left_in_place(tmp_path, monkeypatch):
    """A reviewer's geojson/ folder the service account may not move: the FCS file moved
    before it went back, so the next rerun does not read the exports as edited by hand."""
    fcs, geojson = R.in_folder_exports(tmp_path, "S1")
    fcs.write_bytes(b"FCS3.1")
    geojson.mkdir()
    real = pathlib.Path.rename

    def refused(self, target):
        if self.name == geojson.name:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", refused)
    with pytest.raises(InputError, match="cannot move the exports"):
        R.retire_exports(tmp_path, "S1")
    assert fcs.read_bytes() == b"FCS3.1" and geojson.is_dir()
    assert not list((tmp_path / "previous").glob("exports-*"))


def test_an_earlier_ctcnets_summary_without_a_record_reads_no_record_changed(tmp_path, caplog):
    """A summary of a ctcnet that kept no cartridge_info: the rerun warned that the record
    changed ("patient_id None, now 'P-001'"), which a lab reads as a patient id altered."""
    import json

    (tmp_path / "summary.json").write_text(json.dumps({"frames": {"processed": 2},
                                                       "status": "ok"}))
    earlier = R.EarlierRun.read(tmp_path)
    assert earlier.cartridge_info is None
    with caplog.at_level("WARNING"):
        earlier.keep_if_record_moved(tmp_path, "S1", {"patient_id": "P-001"})
    assert "record of the sample changed" not in caplog.text



def test_tables_of_a_run_stopped_before_its_summary_are_no_edit(tmp_path, caplog):
    """A run that replaced a summary (kept in previous/) and was killed after writing its
    tables, before its summary.json: the rerun read those tables against the kept summary's
    digests and warned "edited by hand", kept events.csv as not-as-written, and verify said
    so for ever after. A summary.json beside other tables is an edit still."""
    import json

    from ctcnet.inference.summary import keep_previous_summary

    (tmp_path / "summary.json").write_text(json.dumps({
        "frames": {"processed": 1}, "status": "ok", "counted_at": 1.0e9,
        "events_sha256": "a" * 64, "events_csv_sha256": "b" * 64}))
    keep_previous_summary(tmp_path)
    (tmp_path / "events.parquet").write_bytes(b"the stopped run's table")
    (tmp_path / "events.csv").write_text("the stopped run's table\n")
    kept = sorted(p.name for p in (tmp_path / "previous").iterdir())
    with_summary = R.EarlierRun.read(tmp_path)
    (tmp_path / "summary.json").unlink()
    earlier = R.EarlierRun.read(tmp_path)
    assert earlier.from_kept and earlier.events_sha256 == "a" * 64
    with caplog.at_level("WARNING"):
        earlier.settle(tmp_path, "S1", tmp_path / "parts", ["r00c00"], False)
    assert "changed since predict wrote it" not in caplog.text and not earlier.edited
    assert sorted(p.name for p in (tmp_path / "previous").iterdir()) == kept
    assert (tmp_path / "events.csv").is_file()
    (tmp_path / "summary.json").write_text((tmp_path / "previous" / kept[0]).read_text())
    with caplog.at_level("WARNING"):
        with_summary.settle(tmp_path, "S1", tmp_path / "parts", ["r00c00"], False)
    assert with_summary.edited and "events.csv was changed since predict wrote it" in caplog.text
