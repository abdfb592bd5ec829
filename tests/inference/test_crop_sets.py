"""ctcnet.inference.crop_sets: a crop folder read a chunk at a time gets the calls, counts and
leaks of one read of it all, and never holds more than a chunk of crops."""

import json
import logging

import numpy as np
import pandas as pd
import pytest

from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.errors import InputError
from ctcnet.inference import crop_sets
from ctcnet.inference.backends import load_backend
from ctcnet.inference.guard import measurements
from ctcnet.inference.predict import PredictOptions, predict_crop_dataset
from ctcnet.io.panel import load_panel
from ctcnet.simulate import SimConfig, simulate_crops

PANEL = load_panel(None)


@pytest.fixture(scope="module")
def crop_set(tmp_path_factory):
    """40 crops of three samples in the look the shipped network was trained on."""
    batch = simulate_crops({"ctc": 14, "wbc": 12, "cluster": 6, "debris": 8}, PANEL, None, 80,
                           seed=5, num_samples=3, config=SimConfig().with_filled_ctc_look())
    root = tmp_path_factory.mktemp("crop_set") / "crops"
    write_crop_dataset(root, batch.images, batch.labels, PANEL, batch.sample_ids)
    return root


def _run(root, out, model, **options):
    predict_crop_dataset(root, load_backend(model, device="cpu"), out,
                         PredictOptions(quiet=True, **options))
    return (pd.read_csv(out / "predictions.csv"),
            json.loads((out / "summary.json").read_text()))


@pytest.mark.parametrize("model", ["ctcnet-default", "ctcnet-core3"])  # without / with fusion
def test_chunks_give_the_calls_of_one_read_and_hold_a_chunk_at_most(crop_set, tmp_path,
                                                                     monkeypatch, model):
    whole, summary = _run(crop_set, tmp_path / "whole", model, compensate=True)
    seen = {"network": [], "prepared": []}
    predict_proba = type(load_backend(model, device="cpu")).predict_proba
    monkeypatch.setattr(type(load_backend(model, device="cpu")), "predict_proba",
                        lambda self, crops: seen["network"].append(len(crops)) or
                        predict_proba(self, crops))
    prepare = measurements._Batch.of
    monkeypatch.setattr(measurements._Batch, "of", classmethod(
        lambda cls, x, *a: seen["prepared"].append(len(x)) or prepare(x, *a)))
    monkeypatch.setattr(crop_sets, "CHUNK_CROPS", 7)
    monkeypatch.setattr(measurements, "READ_CHUNK", 4)
    chunked, chunked_summary = _run(crop_set, tmp_path / "chunked", model, compensate=True)

    pd.testing.assert_frame_equal(chunked, whole)
    assert chunked_summary["spillover"] == summary["spillover"]
    assert len(summary["spillover"]) == 3
    assert chunked_summary["counts"] == summary["counts"]
    assert sum(seen["network"]) == 40 and max(seen["network"]) <= 7
    # The measurements' six chunks; then, without a fusion (which measures every column of
    # every crop), what the reader reads on the calls that need it, four crops at a time.
    assert seen["prepared"][:6] == seen["network"]
    read_after = seen["prepared"][6:]
    assert (len(read_after) > 0 and max(read_after) <= 4) if model == "ctcnet-default" \
        else not read_after


def test_a_bad_crop_in_a_late_chunk_is_named_before_any_crop_is_classified(crop_set,
                                                                           tmp_path,
                                                                           monkeypatch):
    import shutil

    root = tmp_path / "crops"
    shutil.copytree(crop_set, root)
    bad = sorted(root.rglob("*.tif"))[-1]
    bad.write_bytes(b"not a tiff")
    monkeypatch.setattr(crop_sets, "CHUNK_CROPS", 5)
    backend = load_backend(None, device="cpu")
    monkeypatch.setattr(backend, "predict_proba", lambda crops: pytest.fail("classified"))
    with pytest.raises(InputError, match=bad.name):
        predict_crop_dataset(root, backend, tmp_path / "out", PredictOptions(quiet=True))
    assert not (tmp_path / "out" / "predictions.csv").exists()
    assert not list((tmp_path / "out").glob(".ctcnet-spill*"))


@pytest.mark.parametrize("model", ["ctcnet-default", "ctcnet-core3"])
def test_crops_in_memory_are_measured_and_reviewed_a_chunk_at_a_time_alike(crop_set,
                                                                         monkeypatch, model):
    """``ctcnet evaluate``'s crops, held in memory: the guard measures and reads them a chunk
    at a time past ``READ_CHUNK`` crops, with the calls and flags of one batch."""
    from ctcnet.detect.crop_dataset import load_crops, read_crop_index
    from ctcnet.inference.guard import calls, crop_set_review

    backend = load_backend(model, device="cpu")
    spec = backend.spec
    index = read_crop_index(crop_set).conform(spec.panel)
    crops = load_crops(index, spec.crop_size, spec.pixel_size_um)
    proba = backend.predict_proba(crops)
    called = np.asarray(spec.class_names, object)[proba.argmax(axis=1)]
    samples = np.asarray(index.sample_ids)
    whole = crop_set_review(crops, proba, spec, called, samples)
    seen = []
    measure = calls.measure_for_guard if model == "ctcnet-default" else calls.measure
    monkeypatch.setattr(calls, "measure_for_guard" if model == "ctcnet-default" else "measure",
                        lambda part, *a, **k: seen.append(len(part)) or measure(part, *a, **k))
    monkeypatch.setattr(calls, "READ_CHUNK", 6)
    monkeypatch.setattr(measurements, "READ_CHUNK", 6)
    chunked = crop_set_review(crops, proba, spec, called, samples)
    np.testing.assert_array_equal(chunked[0], whole[0])
    pd.testing.assert_frame_equal(chunked[1], whole[1])
    assert sum(seen) == len(crops) and max(seen) <= 6


def test_leaks_pooled_over_chunks_are_those_of_each_sample_held_at_once(crop_set):
    """The chunked reading's compensation (SampleLeaks, compensate_each) against the one for
    crops in memory (compensate_samples), which ``ctcnet robustness`` and the card use."""
    from ctcnet.detect.crop_dataset import load_crops, read_crop_index
    from ctcnet.inference.spillover import SampleLeaks, compensate_each, compensate_samples

    index = read_crop_index(crop_set)
    crops = load_crops(index, 80, PANEL.pixel_size_um)
    samples = np.asarray(index.sample_ids)
    held, records = compensate_samples(crops, PANEL, samples)
    pooled = SampleLeaks(PANEL)
    for start in range(0, len(crops), 9):
        pooled.add(crops[start:start + 9], samples[start:start + 9])
    leaks = pooled.leaks()
    assert pooled.records(leaks) == records and len(records) == 3
    assert any(any(r["leaks"].values()) for r in records.values())  # something is taken off
    np.testing.assert_allclose(compensate_each(crops, samples, leaks, PANEL), held, rtol=1e-6)


def test_the_run_shows_a_bar_for_each_step_unless_quiet(crop_set, tmp_path, capsys):
    from ctcnet.cli import main

    assert main(["predict", str(crop_set), "--out", str(tmp_path / "a"), "--pixel-size",
                 "fit", "--no-report"]) == 0
    said = capsys.readouterr()
    # (stderr captured is no terminal: each step in a plain line, as a batch log gets it)
    for step in ("fitted", "read", "classified"):
        assert any(line.startswith(f"crops: {step}: 40 of 40 (100 %)")
                   for line in said.err.splitlines()), (step, said.err)
    # The bars are on stderr: stdout is the caller's (a pipe, a script's own output).
    assert "crops: read" not in said.out
    assert main(["predict", str(crop_set), "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert "crops: read" not in capsys.readouterr().err


def test_evaluate_shows_its_bars_on_stderr_when_asked(crop_set, tmp_path, capsys):
    """On stderr, so that ``ctcnet evaluate --json`` keeps one JSON object on stdout (the
    command asks for them at a terminal only)."""
    from ctcnet.evaluation.evaluate import evaluate_dataset

    evaluate_dataset(crop_set, "ctcnet-default", tmp_path / "a", with_baselines=False,
                     device="cpu", progress=True)
    captured = capsys.readouterr()
    assert "crops: classified" in captured.err and "crops: read" in captured.err
    assert "crops:" not in captured.out
    evaluate_dataset(crop_set, "ctcnet-default", tmp_path / "b", with_baselines=False,
                     device="cpu")
    assert "crops: read" not in capsys.readouterr().err


def test_a_crop_set_whose_ck_leaks_past_the_guards_allowance_is_warned_of(crop_set, tmp_path):
    """CK's leaks are measured on a share of the crops whether or not they are taken off:
    beyond the guard's allowance the summary says so; a set of the usual look does not."""
    # The instrument's leak, the rest of the matrix small (as on one scanner's filter set).
    batch = simulate_crops({"ctc": 16, "wbc": 4, "cluster": 2, "debris": 6}, PANEL, None, 80,
                           seed=6, num_samples=2,
                           config=SimConfig(bleed_through=(0.002, 0.01),
                                            instrument_bleed=(("CK", "CD45", 0.30),)))
    write_crop_dataset(tmp_path / "leaky", batch.images, batch.labels, PANEL, batch.sample_ids)
    from ctcnet.report import run_report

    _, leaky = _run(tmp_path / "leaky", tmp_path / "out1", "ctcnet-default", report=run_report)
    assert leaky["leak_check"]["beyond"] == ["CD45"] and leaky.get("spillover") is None
    assert leaky["leak_check"]["leaks"]["CD45"] == pytest.approx(0.3, abs=0.03)
    page = (tmp_path / "out1" / "index.html").read_text()
    assert "CK leaking into CD45" in page and "past the marker guard&#x27;s 12%" in page
    _, usual = _run(crop_set, tmp_path / "out2", "ctcnet-default")
    assert usual["leak_check"]["beyond"] == []


def test_a_crop_sets_review_list_is_stated_by_reason_and_a_crop_band_read_at_balanced_only(
        crop_set, tmp_path):
    """summary.json states a crop set's review list by reason, as a cartridge's. A model that
    carries a crop-set review band (``spec.metrics["crop_review_band"]``) shows an uncounted
    call exactly when a counted class holds the band of its posterior, and states the band;
    with a stated prior the band does not apply."""
    from ctcnet.inference.options import CROP_REVIEW_BAND, spec_for_crop_set

    backend = load_backend("ctcnet-default", device="cpu")
    predict_crop_dataset(crop_set, backend, tmp_path / "plain", PredictOptions(quiet=True))
    summary = json.loads((tmp_path / "plain" / "summary.json").read_text())
    plain = summary["review_list"]
    assert plain["review_band"] is None and plain["events"] == summary["review"]

    band = 0.02
    record = {"band": band, "level": 0.01, "confidence": 0.95, "cells": 1, "misses": 0}
    backend.spec = backend.spec.replace(metrics={**backend.spec.metrics,
                                                 CROP_REVIEW_BAND: record})
    assert spec_for_crop_set(backend.spec, "ctc=0.1")[0].decision.review_band is None
    assert spec_for_crop_set(backend.spec, None)[0].decision.review_band == band
    predict_crop_dataset(crop_set, backend, tmp_path / "band", PredictOptions(quiet=True))
    table = pd.read_parquet(tmp_path / "band" / "predictions.parquet")
    stated = json.loads((tmp_path / "band" / "summary.json").read_text())["review_list"]
    assert stated["review_band"]["band"] == band
    uncounted = ~table["model_class"].isin(["ctc", "cluster"]) & (table["guard"] == "")
    mass = table[["p_ctc", "p_cluster"]].max(axis=1)
    assert (mass[uncounted] >= band).any() and (mass[uncounted] < band).any()
    assert (table["review"][uncounted] == (mass[uncounted] >= band)).all()
    assert stated["by_reason"]["counted_class_in_band"] == int(
        (table["review"] & uncounted).sum())


def test_crops_labelled_with_a_class_the_model_lacks_are_said_left_out_of_the_accuracy(
        crop_set, tmp_path, caplog):
    """A lab's folder named in its own words (``tumour/``) is classified; its accuracy leaves
    those crops out, and the run says so instead of reporting the rest's as the folder's."""
    import shutil

    root = tmp_path / "crops"
    shutil.copytree(crop_set, root)
    (root / "manifest.csv").unlink()
    (root / "ctc").rename(root / "tumour")
    with caplog.at_level("WARNING"):
        _, summary = _run(root, tmp_path / "out", "ctcnet-default")
    assert summary["accuracy_of"] == 26 and summary["crops"] == 40
    assert "14 crop(s) labelled with classes the model has not (tumour 14)" in caplog.text
    assert "laid out sample/class" not in caplog.text
    # A patient's folder above its class folders: refused before any work, as evaluate and
    # train refuse it (it was read with the patient as the label and the class as the sample).
    (root / "P017").mkdir()
    (root / "tumour").rename(root / "P017" / "CTC")
    with pytest.raises(InputError, match=r"the folder is laid out sample/class "
                                         r"\(P017/CTC/\.\.\.\)"):
        _run(root, tmp_path / "flipped", "ctcnet-default")
    assert not (tmp_path / "flipped").exists()


def test_crops_stored_at_16_times_their_counts_get_the_guard_readings_of_their_counts(
        tmp_path, caplog):
    """A crop set exported from a camera that stores 12-bit counts x16 in 16-bit files,
    panel.json stating 0-65535: the same calls, guard flags, review list and marker readings
    as the counts themselves, in predict and in ``ctcnet evaluate`` (its "as predict counts
    it" figures). The guard read every pixel past the model's 4095 as saturated (bright CK
    and DNA left out of its readings: other flags, clusters held); it now reads saturation
    at the set's stated range where that is the wider."""
    import shutil

    import tifffile

    from ctcnet.evaluation.evaluate import evaluate_dataset

    batch = simulate_crops({"cluster": 12, "ctc": 4}, PANEL, None, 80, seed=12, num_samples=2)
    counts = write_crop_dataset(tmp_path / "counts", batch.images, batch.labels, PANEL,
                                batch.sample_ids)
    scaled = shutil.copytree(counts, tmp_path / "x16")
    for path in scaled.rglob("*.tif"):
        tifffile.imwrite(path, tifffile.imread(path).astype(np.uint16) * 16)
    panel = json.loads((scaled / "panel.json").read_text())
    for channel in panel["channels"]:
        channel["value_range"] = [0, 65535]
    (scaled / "panel.json").write_text(json.dumps(panel))
    one, _ = _run(counts, tmp_path / "one", "ctcnet-default")
    sixteen, _ = _run(scaled, tmp_path / "sixteen", "ctcnet-default")
    for column in ("class", "guard", "review", "markers_vouch", "cluster_partner"):
        assert one[column].astype(str).equals(sixteen[column].astype(str)), column
    # The same crops in memory, with their folder's panel: the folder's calls (without it,
    # the guard read them saturated, CTCs called wbc, and nothing was said); without it, said.
    from ctcnet import call_crops, load_crops, read_crop_index

    backend = load_backend("ctcnet-default", device="cpu")
    index = read_crop_index(scaled).conform(backend.spec.panel)
    crops = load_crops(index, backend.spec.crop_size, backend.spec.pixel_size_um)
    calls = call_crops(crops, backend, sample_ids=index.sample_ids, panel=index.panel)
    for column in ("class", "guard", "review"):
        assert calls[column].fillna("").astype(str).tolist() == \
            sixteen[column].fillna("").astype(str).tolist(), column
    with caplog.at_level(logging.WARNING):
        call_crops(crops, backend, sample_ids=index.sample_ids)
    assert "values above the model's value range" in caplog.text and "panel=" in caplog.text
    reports = [evaluate_dataset(root, "ctcnet-default", tmp_path / f"ev_{root.name}",
                                device="cpu", with_baselines=False)["cnn"]["counted"]
               for root in (counts, scaled)]
    assert reports[0] == reports[1]
    # Brighter counts clipped at the 12-bit camera's 4095, stated 0-4095 or 0-65535: read
    # as saturated at 4095 both ways (the camera's top under the wider statement).
    bright = write_crop_dataset(tmp_path / "bright", np.minimum(batch.images * 3, 4095),
                                batch.labels, PANEL, batch.sample_ids)
    wide = shutil.copytree(bright, tmp_path / "wide")
    (wide / "panel.json").write_text(json.dumps(panel))
    readings = [_guard_reading(root, tmp_path / f"spill_{root.name}")
                for root in (bright, wide)]
    pd.testing.assert_frame_equal(readings[0].measured, readings[1].measured)
    ck = PANEL.index_of("CK")
    assert readings[1].read_as.panel.channels[ck].value_range == (0.0, 4095.0)


def _guard_reading(root, spill):
    """The chunked read of a crop set as predict makes it, with the guard's measurements."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.inference.options import spec_read_as
    from ctcnet.io.spilled import SpilledArray

    backend = load_backend("ctcnet-default", device="cpu")
    index = read_crop_index(root).conform(backend.spec.panel)
    spec = spec_read_as(backend.spec, index.panel, wider_only=True)
    spill.mkdir()
    shape = (len(index), spec.panel.num_channels, spec.crop_size, spec.crop_size)
    with SpilledArray(shape, np.float32, spill) as crops:
        return crop_sets.read_and_classify(index, spec, backend.predict_proba, crops, None,
                                           measurements.RULES.for_crops(index.exported))


def test_a_rerun_made_otherwise_keeps_the_summary_it_replaces(crop_set, tmp_path, caplog):
    """--network-calls-only over a default run of the same crops: recorded in summary.json,
    and the run it replaces kept in previous/ and said (its calls left no record); the same
    settings again replace it as before."""
    import logging

    out = tmp_path / "out"
    _, first = _run(crop_set, out, "ctcnet-core3")
    assert first["markers_decide"] is True
    with caplog.at_level(logging.WARNING):
        _, second = _run(crop_set, out, "ctcnet-core3", marker_calls=False)
    assert second["markers_decide"] is False
    (kept,) = (out / "previous").glob("summary-*.json")
    assert json.loads(kept.read_text())["markers_decide"] is True
    assert "made with another markers_decide" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _run(crop_set, out, "ctcnet-core3", marker_calls=False)
    assert "made with another" not in caplog.text


def test_a_crop_sets_summary_is_written_last_and_an_earlier_one_goes_first(crop_set, tmp_path,
                                                                          monkeypatch):
    """A stop as the page is drawn leaves no summary calling the sample done (it stood with
    one tile of the page); one as another model's calls were written left the earlier run's
    summary and page beside the new predictions."""
    from ctcnet.report import run_report

    out = tmp_path / "out"
    _run(crop_set, out, "ctcnet-default", report=run_report)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_report, "write_crop_set_page", stopped)
    with pytest.raises(KeyboardInterrupt):
        _run(crop_set, out, "ctcnet-core3", report=run_report)
    assert not (out / "summary.json").exists() and not (out / "index.html").exists()
    assert (out / "previous").is_dir()  # the earlier run's summary, kept as it is replaced
    # A first run stopped as its page is drawn leaves no summary calling it done.
    with pytest.raises(KeyboardInterrupt):
        _run(crop_set, tmp_path / "first", "ctcnet-default", report=run_report)
    assert not (tmp_path / "first" / "summary.json").exists()


def test_another_crop_folder_of_the_same_name_is_refused_not_written_over(crop_set, tmp_path,
                                                                            caplog):
    """siteA/crops, then siteB/crops, into one --out: the second replaced the first's calls
    without a word. Refused while the first folder is there, its results untouched; a folder
    moved since is the same crops, its earlier summary kept and said."""
    import logging
    import shutil

    out = tmp_path / "out"
    _, first = _run(crop_set, out, "ctcnet-core3")
    other = tmp_path / "siteB" / "crops"
    shutil.copytree(crop_set, other)
    before = (out / "predictions.csv").read_bytes()
    with pytest.raises(InputError, match="holds the results of another crop folder"):
        _run(other, out, "ctcnet-core3")
    assert (out / "predictions.csv").read_bytes() == before
    moved = tmp_path / "moved" / "crops"
    shutil.copytree(crop_set, moved)
    out2 = tmp_path / "out2"
    _run(moved, out2, "ctcnet-core3")
    shutil.rmtree(moved)
    with caplog.at_level(logging.WARNING):
        _, second = _run(other, out2, "ctcnet-core3")
    assert second["dataset"] == str(other.resolve())
    assert "made with another dataset" in caplog.text
    assert len(list((out2 / "previous").glob("summary-*.json"))) == 1


def test_the_export_model_on_raw_crops_is_said(crop_set, tmp_path):
    """ctcnet-core3-export reads 8-bit composite exports only: passed by hand on a folder of
    raw 16-bit crops it read them without a word (fewer right, more sent to review)."""
    _, summary = _run(crop_set, tmp_path / "out", "ctcnet-core3-export")
    assert any("reads 8-bit composite exports only" in w for w in summary["warnings"])
    _, summary = _run(crop_set, tmp_path / "out2", "ctcnet-core3")
    assert not any("composite exports only" in w for w in summary["warnings"])


def test_a_misspelt_class_folder_is_named_with_the_class_meant(crop_set, tmp_path, caplog):
    """wcb/ (or CTCs/, Leukocytes/) was classified with its crops left out of the accuracy,
    the class meant unnamed (evaluate and train, which need the labels, refuse it naming it);
    predict needs none, so it runs and names it."""
    import shutil

    root = tmp_path / "crops"
    shutil.copytree(crop_set, root)
    (root / "manifest.csv").unlink()
    (root / "wbc").rename(root / "wcb")
    with caplog.at_level("WARNING"):
        _, summary = _run(root, tmp_path / "out", "ctcnet-default")
    assert summary["crops"] == 40
    assert "left out of the accuracy (did you mean wcb -> wbc? rename the folders to score " \
        "them)" in caplog.text


def test_class_folders_in_another_case_are_scored_as_their_classes(crop_set, tmp_path):
    """A lab's folders CTC, WBC, Cluster, Debris: predict left every crop out of its accuracy
    ("labelled with classes the model has not") where evaluate and train read them."""
    import shutil

    root = tmp_path / "caps"
    shutil.copytree(crop_set, root)
    (root / "manifest.csv").write_text(
        "\n".join(line if i == 0 else ",".join([line.split(",")[0], line.split(",")[1].upper(),
                                                *line.split(",")[2:]])
                  for i, line in enumerate((crop_set / "manifest.csv").read_text()
                                           .splitlines())) + "\n")
    table, summary = _run(root, tmp_path / "out", "ctcnet-core3")
    plain, same = _run(crop_set, tmp_path / "plain", "ctcnet-core3")
    assert summary["accuracy_of"] == 40 and summary["accuracy"] == same["accuracy"]
    assert any("labels read as the model's class names: CLUSTER as cluster, CTC as ctc"
               in w for w in summary["warnings"])


@pytest.mark.parametrize("model, options", [
    ("ctcnet-default", {}),
    ("ctcnet-core3", {"compensate": True}),  # a scan fusion; each sample's leak taken off
    ("ctcnet-default", {"prior": "cartridge", "marker_calls": False}),
])
def test_crops_in_memory_get_the_calls_their_folder_gets(crop_set, tmp_path, model, options):
    """ctcnet.call_crops on the crops of a folder, brought to model scale by load_crops: the
    rows of predict's predictions.parquet, column for column, with no file written."""
    from ctcnet import call_crops, load_crops, read_crop_index

    backend = load_backend(model, device="cpu")
    predict_crop_dataset(crop_set, backend, tmp_path, PredictOptions(quiet=True, **options))
    folder = pd.read_parquet(tmp_path / "predictions.parquet")
    spec = backend.spec
    index = read_crop_index(crop_set).conform(spec.panel)
    crops = load_crops(index, spec.crop_size, spec.pixel_size_um)
    calls = call_crops(crops.astype(np.uint16), backend, sample_ids=index.sample_ids,
                       **options)
    assert calls["crop"].tolist() == list(range(len(crops)))
    pd.testing.assert_frame_equal(calls.drop(columns="crop"),
                                  folder.drop(columns=["path", "label"]), check_dtype=False)


def test_crops_in_memory_that_cannot_be_called_are_refused_by_name():
    from ctcnet import call_crops

    backend = load_backend("ctcnet-default", device="cpu")
    with pytest.raises(InputError, match=r"crops must be \(N, 5, 80, 80\)"):
        call_crops(np.zeros((2, 80, 80, 5), np.uint16), backend)
    with pytest.raises(InputError, match="sample_ids names 1 crops, crops holds 2"):
        call_crops(np.zeros((2, 5, 80, 80), np.uint16), backend, sample_ids=["a"])
    # A table column with gaps: each gap was a sample of its own, "None" or "nan".
    for gap in (None, float("nan"), np.float32("nan"), pd.NA):
        with pytest.raises(InputError, match="no sample for 1 crop.*crop 1"):
            call_crops(np.zeros((2, 5, 80, 80), np.uint16), backend, sample_ids=["a", gap])
    none = call_crops(np.zeros((0, 5, 80, 80), np.uint16), backend)
    some = call_crops(np.full((2, 5, 80, 80), 200, np.uint16), backend)
    assert none.empty
    # One dtype a column whatever the rows, names as text: batches concatenate alike.
    assert none.dtypes.astype(str).to_dict() == some.dtypes.astype(str).to_dict()
    assert {str(some[c].dtype) for c in ("class", "model_class", "guard")} == {"str"}
    # A model's name, or the torch-free runtime for instrument software, where a loaded model
    # is meant: refused naming ctcnet.load_backend (an AttributeError deep inside before).
    from ctcnet import OnnxClassifier

    for given in ("ctcnet-default", OnnxClassifier("ctcnet-default")):
        with pytest.raises(InputError, match=r"a loaded model, ctcnet.load_backend\("):
            call_crops(np.zeros((2, 5, 80, 80), np.uint16), given)
    # The network load_model gives (its spec looked like a backend's: "takes a tensor" said
    # of fine crops, and predict_cartridge's AttributeError 'gpu').
    from ctcnet import load_model, predict_cartridge

    network = load_model("ctcnet-default")[0]
    for call in (lambda: call_crops(np.zeros((2, 5, 80, 80), np.uint16), network),
                 lambda: predict_cartridge("scan", network, "out")):
        with pytest.raises(InputError, match=r"ctcnet.load_backend\(\) .*not the network "
                                             "ctcnet.load_model gives"):
            call()
    with pytest.raises(InputError, match="batch_size is a whole number >= 1 or None, got -3"):
        load_backend("ctcnet-default", batch_size=-3)
    # A crop of NaN pixels is not read: 'failed', shown, with no measurement or flag made up
    # (it read as a blank crop's: no_ck, a CK area of 0).
    nan = np.full((2, 5, 80, 80), 200, np.float32)
    nan[1, 0, 3, 3] = np.nan
    failed = call_crops(nan, backend).iloc[1]
    assert failed["class"] == "failed" and failed["review"] and failed["guard"] == ""
    assert np.isnan(failed["ck_peak"]) and np.isnan(failed["ck_area_um2"])
    # One text of sample_ids is every crop's sample (it was read a character a crop).
    one = call_crops(np.full((2, 5, 80, 80), 200, np.uint16), backend, sample_ids="P1")
    assert one["sample_id"].tolist() == ["P1", "P1"]
    with pytest.raises(InputError, match="channels as one text 'DAPI,CK'"):
        OnnxClassifier("ctcnet-default").check_panel("DAPI,CK")


def test_composites_read_by_a_model_of_counts_are_not_said_background_subtracted(caplog):
    """Composites handed to ctcnet-core3 (a model of a camera's counts) were warned "background
    subtracted and clipped at 0", its advice false too: a display's black is no clip. Every
    path that reads them says them display levels, call_crops(exported=True) too."""
    from ctcnet.inference.crop_calls import call_crops

    backend = load_backend("ctcnet-core3", device="cpu")
    rng = np.random.default_rng(4)
    size = backend.spec.crop_size
    crops = np.zeros((6, 3, size, size), np.uint8)
    inner = slice(size // 6, 5 * size // 6)  # (a black border: 56 % of the pixels at 0)
    crops[:, :, inner, inner] = rng.integers(60, 250, crops[:, :, inner, inner].shape)
    with caplog.at_level(logging.WARNING):
        call_crops(crops, backend, exported=True)
    assert "background subtracted" not in caplog.text
