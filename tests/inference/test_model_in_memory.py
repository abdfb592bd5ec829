"""A model given in memory (Python API, no file): its outputs say so with null, not a path."""

import json

from conftest import QUIET

from ctcnet.exports.event_exports import events_fcs, load_sample
from ctcnet.inference.backends import TorchBackend
from ctcnet.inference.crop_sets import predict_crop_dataset
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.inference.summary import RunSummary
from ctcnet.nn.classifier import load_model
from ctcnet.report import run_report


def test_a_model_given_in_memory_is_recorded_as_null(cart_and_model, tmp_path):
    model, _ = load_model(cart_and_model / "model.pt")
    backend = TorchBackend(model=model, device="cpu")
    out = tmp_path / "out"
    predict_cartridge(cart_and_model / "cart", backend, out,
                      PredictOptions(**{**QUIET, "report": run_report}))

    written = json.loads((out / "summary.json").read_text())
    assert written["model"]["path"] is None and written["model"]["sha256"] is None
    events, summary = load_sample(out)
    assert summary.model.path is None
    assert "a model given in memory" in (out / "index.html").read_text()
    keywords = events_fcs(events, summary, out)["keywords"]
    assert keywords["CTCNET_MODEL"] == ""


def test_an_older_summary_saying_none_reads_as_null(clean_run, tmp_path):
    written = json.loads((clean_run["root"] / "clean" / "summary.json").read_text())
    written["model"]["path"] = "None"
    assert RunSummary.from_dict(written).model.path is None


def test_a_crop_folder_read_by_a_model_given_in_memory(cart_and_model, crops, tmp_path):
    model, _ = load_model(cart_and_model / "model.pt")
    out = tmp_path / "crops_out"
    predict_crop_dataset(crops, TorchBackend.from_model(model, device="cpu"), out,
                         PredictOptions(**{**QUIET, "report": run_report}))
    written = json.loads((out / "summary.json").read_text())
    assert written["model"] is None and written["model_sha256"] is None
    assert (out / "index.html").is_file()


def test_a_link_at_a_crop_folders_gallery_is_refused_before_any_work(cart_and_model, crops,
                                                                    tmp_path):
    """Refused only once every crop was classified, the earlier summary and page already
    moved aside and the predictions rewritten: now before any work, all as it was."""
    import pytest

    from ctcnet.errors import InputError

    model, _ = load_model(cart_and_model / "model.pt")
    out = tmp_path / "crops_out"
    backend = TorchBackend.from_model(model, device="cpu")
    predict_crop_dataset(crops, backend, out, PredictOptions(**QUIET))
    before = {p.name: p.read_bytes() for p in out.iterdir()
              if p.is_file() and not p.name.startswith(".")}  # (its lock, taken anew)
    (tmp_path / "elsewhere").mkdir()
    (out / "gallery").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="gallery: is a link, not a folder"):
        predict_crop_dataset(crops, backend, out, PredictOptions(**{**QUIET,
                                                                    "marker_calls": False}))
    assert {p.name: p.read_bytes() for p in out.iterdir()
            if p.is_file() and not p.name.startswith(".")} == before


def test_a_summary_a_later_ctcnet_wrote_is_read_keys_unknown_aside(clean_run):
    """Rolled back, a ctcnet stopped on a frame count it did not know ("unexpected keyword
    argument 'expected_stated'"), and one such sample refused the whole review. Each record
    of summary.json keeps the keys it knows."""
    written = json.loads((clean_run["root"] / "clean" / "summary.json").read_text())
    later = {**written, "a_later_key": 1, "frames": {**written["frames"], "a_later_count": 2},
             "model": {**written["model"], "a_later_field": "x"}}
    later["tally"] = {**later["tally"], "a_later_tally": 3}
    read = RunSummary.from_dict(later)
    assert read.frames == RunSummary.from_dict(written).frames
    assert read.to_dict() == RunSummary.from_dict(written).to_dict()
