"""A sample an earlier ctcnet finished is kept when a run resumes after an upgrade: counted as
finished, its outputs untouched, not set aside; a run of other settings is still refused."""

import json

import pytest
from conftest import QUIET

from ctcnet.inference.journal import PARTS_DIR
from ctcnet.inference.predict import PredictOptions, predict_inputs


def _journal_as_written_by(out, **changed):
    """The sample's journal as a run of another ctcnet (or settings) would have recorded it."""
    manifest = out / PARTS_DIR / "run.json"
    fingerprint = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**fingerprint, **changed}))


def test_a_sample_finished_by_another_version_is_kept_as_finished(clean_run, cart, tmp_path,
                                                                   caplog):
    backend, out = clean_run["backend"], tmp_path / "out"
    first = predict_inputs([cart], out, backend, PredictOptions(**QUIET))
    sample = out / first[0].sample_id
    _journal_as_written_by(sample, table_columns=["filed_by_prior", "guard"])
    events = (sample / "events.parquet").stat().st_mtime_ns
    set_aside = {}
    again = predict_inputs([cart], out, backend, PredictOptions(**QUIET), set_aside=set_aside)
    assert not set_aside
    assert [s.sample_id for s in again] == [first[0].sample_id]
    assert again[0].tally == first[0].tally and again[0].status == first[0].status
    assert (sample / "events.parquet").stat().st_mtime_ns == events  # nothing redone
    assert "finished by an earlier run" in caplog.text and "table_columns" in caplog.text


@pytest.mark.parametrize("changed", [{"detect": {"threshold_snr": 9.0}},
                                     {"table_columns": ["guard"], "edge_cut_as": None}])
def test_a_finished_sample_of_other_settings_is_still_refused(clean_run, cart, tmp_path,
                                                              changed):
    backend, out = clean_run["backend"], tmp_path / "out"
    first = predict_inputs([cart], out, backend, PredictOptions(**QUIET))
    _journal_as_written_by(out / first[0].sample_id, **changed)
    set_aside = {}
    assert predict_inputs([cart], out, backend,
                          PredictOptions(**QUIET), set_aside=set_aside) == []
    assert "another version's event columns" in set_aside[first[0].sample_id]


@pytest.mark.parametrize("change", ["frame removed", "volume corrected", "record corrected"])
def test_an_earlier_versions_sample_is_not_kept_once_its_scan_or_record_moved(
        clean_run, cart, tmp_path, change):
    """A frame removed from the scan, a tube's volume or a patient id corrected after an
    earlier version finished: keeping its summary kept the removed frame's cells counted, the
    earlier rates and the earlier patient, as "ok"; it is set aside for --overwrite instead,
    as a run of changed frames is."""
    backend, out = clean_run["backend"], tmp_path / "out"
    first = predict_inputs([cart], out, backend, PredictOptions(**QUIET))
    _journal_as_written_by(out / first[0].sample_id, table_columns=["guard"])
    record = json.loads((cart / "cartridge.json").read_text())
    if change == "frame removed":
        sorted(cart.glob("r*c*.tif"))[-1].unlink()
    elif change == "volume corrected":
        record["blood_volume_ml"] = 5.0
    else:
        record["patient_id"] = "P-corrected"
    (cart / "cartridge.json").write_text(json.dumps(record))
    set_aside = {}
    assert predict_inputs([cart], out, backend, PredictOptions(**QUIET),
                          set_aside=set_aside) == []
    assert "--overwrite" in set_aside[first[0].sample_id]


def test_an_earlier_versions_summary_without_a_record_of_the_sample_is_kept(clean_run, cart,
                                                                             tmp_path):
    """A summary written before ctcnet kept cartridge.json's record of the sample: read as
    "not recorded", not as a record since changed (it was set aside)."""
    backend, out = clean_run["backend"], tmp_path / "out"
    first = predict_inputs([cart], out, backend, PredictOptions(**QUIET))
    sample = out / first[0].sample_id
    _journal_as_written_by(sample, table_columns=["guard"])
    summary = json.loads((sample / "summary.json").read_text())
    assert summary.pop("cartridge_info")  # (the simulator's keys: its seed, its layout...)
    assert summary.pop("sample_record_sha256")  # (and the seal of the record, as it then was)
    (sample / "summary.json").write_text(json.dumps(summary))
    set_aside = {}
    again = predict_inputs([cart], out, backend, PredictOptions(**QUIET), set_aside=set_aside)
    assert not set_aside and [s.sample_id for s in again] == [first[0].sample_id]


def test_a_record_given_to_a_cartridge_that_had_none_is_a_record_moved(clean_run, cart,
                                                                        tmp_path):
    """cartridge.json with none of its own keys when an earlier version finished the sample
    (summary.json sealing an empty record), then given a patient id: the sample was kept as
    finished with no patient, which ctcnet draws and a training split then never saw."""
    from ctcnet.io.cartridge_info import CARTRIDGE_KEYS

    record = json.loads((cart / "cartridge.json").read_text())
    bare = {k: v for k, v in record.items() if k in CARTRIDGE_KEYS}
    (cart / "cartridge.json").write_text(json.dumps(bare))
    backend, out = clean_run["backend"], tmp_path / "out"
    first = predict_inputs([cart], out, backend, PredictOptions(**QUIET))
    summary = json.loads((out / first[0].sample_id / "summary.json").read_text())
    assert "cartridge_info" not in summary and "sample_record_sha256" in summary
    _journal_as_written_by(out / first[0].sample_id, table_columns=["guard"])
    (cart / "cartridge.json").write_text(json.dumps({**bare, "patient_id": "P-7"}))
    set_aside = {}
    assert predict_inputs([cart], out, backend, PredictOptions(**QUIET),
                          set_aside=set_aside) == []
    assert "--overwrite" in set_aside[first[0].sample_id]
