"""An export with the markers: the ONNX file alone (onnxruntime, numpy and a TIFF reader, no
ctcnet) gives the marker measurements, fused probabilities and fused calls that ctcnet's own
functions give on the same crop folder, and the cartridge fusion's posterior predict's review
band reads; the runtime exposes the outputs and calls a scan's events with them; a restamp
keeps them and refuses a spec whose fusion the graph does not compute."""

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import save_tiny_model

from ctcnet.deploy.export import export_onnx, restamp_onnx
from ctcnet.deploy.marker_graph import COLUMNS
from ctcnet.deploy.runtime import MARKERS_KEY, OnnxClassifier
from ctcnet.detect.crop_dataset import load_crops, read_crop_index, write_crop_dataset
from ctcnet.errors import InputError
from ctcnet.inference.guard import (
    crop_set_calls,
    crop_set_measurements,
    measure_for_guard_start,
    review_flags,
)
from ctcnet.inference.marker_fusion import SCAN_FUSION, feature_names
from ctcnet.inference.scan_fusion import DEFAULT_GATE, apply_scan_fusion
from ctcnet.io.digests import file_sha256
from ctcnet.io.panel import load_panel
from ctcnet.nn.calls import DecisionRule, calls_from_proba
from ctcnet.nn.classifier import load_model, save_model
from ctcnet.simulate import simulate_crops
from tests.deploy.test_export import EXAMPLE_OUT, deploying_example
from tests.deploy.test_marker_graph import guards

CROP = 48
CLASSES = ["ctc", "wbc", "cluster", "debris"]

# What instrument software runs: the file and the crop folder, no ctcnet. It prints the
# outputs as JSON and fails if anything imported ctcnet.
STANDALONE = r"""
import csv, json, sys
import numpy as np, onnxruntime as ort, tifffile
model, folder = sys.argv[1], sys.argv[2]
session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
meta = session.get_modelmeta().custom_metadata_map
spec, markers = json.loads(meta["ctcnet_spec"]), json.loads(meta["marker_measurements"])
with open(f"{folder}/manifest.csv") as f:
    rows = list(csv.DictReader(f))
crops = np.stack([tifffile.imread(f"{folder}/{r['path']}") for r in rows]).astype(np.float32)
names = [o.name for o in session.get_outputs()]
out = dict(zip(names, session.run(names, {"raw": crops})))
columns = markers["columns"]
classes = [c["name"] for c in spec["taxonomy"]["classes"]]
fused = out["fused_probabilities"].astype(np.float64)
# The CellSearch line: CD45 over the guard's level over the CK area (over the cell's core
# without one), or clipped at the ceiling over its share of that area, is never a CTC.
rules, m = markers["rules"], out["measurements"]
def col(name):
    return m[:, columns.index(name)]
with np.errstate(invalid="ignore"):
    cd45 = (col("cd45_over_ck") > rules["cd45_level"]) | \
        (~(col("ck_area") > 0) & (col("cd45_over_cell") > rules["cd45_level"]))
    if rules["cd45_ceiling_share"] is not None:
        cd45 |= col("cd45_at_ceiling") >= rules["cd45_ceiling_share"]
fused[cd45, classes.index("ctc")] = -1.0
assert not any(m == "ctcnet" or m.startswith("ctcnet.") for m in sys.modules)
print(json.dumps({"columns": columns, "measurements": out["measurements"].tolist(),
                  "proba": out["probabilities"].tolist(),
                  "fused": out["fused_probabilities"].tolist(),
                  "scan_fused": out["scan_fused_probabilities"].tolist(),
                  "calls": [classes[i] for i in fused.argmax(axis=1)],
                  "call_rules": markers["call_rules"]}, allow_nan=True))
"""


def fusion_for(rng) -> dict:
    """A marker fusion of the spec's format with weights that read the markers strongly."""
    features = feature_names(CLASSES)
    return {"format": 1, "classes": CLASSES, "features": features,
            "mean": rng.normal(0, 0.5, len(features)).tolist(),
            "scale": rng.uniform(0.5, 2.0, len(features)).tolist(),
            "weights": rng.normal(0, 1.0, (len(CLASSES), len(features))).tolist(),
            "bias": rng.normal(0, 0.3, len(CLASSES)).tolist(), "fitted_on": {}}


def scan_fusion_for(rng) -> dict:
    """A cartridge fusion (the shipped default model's role) whose gate the untrained network's
    probabilities pass on some crops only, so that the markers' route decides the rest."""
    return {**fusion_for(rng), "gate": {**DEFAULT_GATE, "counted_p": GATE_COUNTED_P},
            "role": "review"}


# Above what the untrained network gives ctc and cluster together on some crops, under it on
# others (0.46-0.54 on the fixture's).
GATE_COUNTED_P = 0.5
# A cartridge rule whose band reads the fused posterior.
RULE = DecisionRule.prior_shift({"ctc": -1.0, "cluster": -1.0}).with_review_band(
    {"band": 0.1, "reads": "fused"})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("markers")
    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    path, _ = save_tiny_model(root / "tiny.pt", crop_size=CROP, panel=panel, width=8,
                              taxonomy=CLASSES, decision=RULE,
                              metrics={"marker_fusion": fusion_for(np.random.default_rng(0)),
                                       SCAN_FUSION: scan_fusion_for(np.random.default_rng(5))})
    report = export_onnx(path, markers=True)
    batch = simulate_crops(6, panel, crop_size=CROP, seed=3)
    folder = write_crop_dataset(root / "crops", np.asarray(batch.images), batch.labels, panel,
                                [f"s{i % 2}" for i in range(len(batch.labels))])
    return path, root / "tiny.onnx", folder, report


def test_the_file_alone_gives_ctcnets_measurements_fusion_and_calls(exported):
    path, onnx_path, folder, report = exported
    assert report.markers and "verify markers" in "\n".join(report.lines())
    # The exporter's CastLike nodes written as Casts: onnxruntime folds them without a word.
    import onnx
    assert not [n for n in onnx.load(str(onnx_path)).graph.node if n.op_type == "CastLike"]
    done = subprocess.run([sys.executable, "-c", STANDALONE, str(onnx_path), str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    alone = json.loads(done.stdout)
    assert alone["columns"] == list(COLUMNS)
    # The markers' own call's rules travel in the file, as ctcnet applies them.
    from ctcnet.inference.guard.rules import MARKERS_DEBRIS_CTC

    assert alone["call_rules"]["markers_debris_ctc"] == MARKERS_DEBRIS_CTC
    # ctcnet's own: the crops as predict reads a crop folder, the guard's measurements and
    # the crop set's calls with the fusion.
    model, spec = load_model(path)
    index = read_crop_index(folder, taxonomy=spec.taxonomy)
    crops = load_crops(index, spec.crop_size, spec.pixel_size_um)
    measured = crop_set_measurements(crops, spec)
    got = np.asarray(alone["measurements"], np.float64)
    for i, column in enumerate(COLUMNS[:-1]):  # the last: the flood fill's own diagnostic
        np.testing.assert_allclose(got[:, i], guards(measured, column, spec.panel),
                                   rtol=1e-3, atol=1e-3, err_msg=column)
    assert not got[:, COLUMNS.index("area_unfinished")].any()
    proba = np.asarray(alone["proba"], np.float32)
    called = calls_from_proba(proba, spec.class_names, 1.0)[0]
    flags = review_flags(crops, proba, spec, measured=measured, called=np.array(
        [spec.class_names.index(c) for c in called]))
    # ctcnet's crop set call less the markers' own call (a ``wbc`` call the markers alone make
    # ``ctc``: it reads the DNA references of a sample's leukocytes, which no per-crop graph
    # has): the fusion and the CellSearch line.
    flags["markers_ctc"] = False
    expected = crop_set_calls(np.asarray(called, object), flags, crops, proba, spec,
                              measured=measured)
    assert list(alone["calls"]) == list(expected)
    # The cartridge fusion, as predict applies it to a frame's events: where its gate lets
    # it (both routes taken here), fused, with the CellSearch line.
    guard_measured, start = measure_for_guard_start(crops, spec)
    scan_fused, _, rows = apply_scan_fusion(proba, crops, guard_measured, spec, start)
    assert 0 < rows.sum() < len(rows)
    np.testing.assert_allclose(np.asarray(alone["scan_fused"]), scan_fused, atol=1e-4)


def test_runtime_exposes_the_marker_outputs(exported):
    _, onnx_path, folder, _ = exported
    clf = OnnxClassifier(onnx_path)
    assert clf.marker_columns == list(COLUMNS) and clf.has_fusion
    # Its measurements read levels: the contract says on which range, not "no preprocessing".
    contract = clf.metadata["input_contract"]
    assert "value_range" in contract and "no preprocessing" not in contract
    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    crops = np.asarray(simulate_crops(2, panel, crop_size=CROP, seed=4).images, np.float32)
    crops[1, 0, 3, 3] = np.nan
    out = clf.run_markers(crops, batch_size=3)
    assert out["measurements"].shape == (len(crops), len(COLUMNS))
    assert np.isnan(out["fused_probabilities"][1]).all() and clf.bad_crops == [1]
    good = np.isfinite(out["fused_probabilities"]).all(axis=1)
    np.testing.assert_allclose(out["fused_probabilities"][good].sum(axis=1), 1.0, atol=1e-5)
    # the plain run still gives the two outputs every ctcnet file has
    logits, proba = clf.run(crops[good])
    np.testing.assert_allclose(proba, out["probabilities"][good], atol=1e-6)


def test_runtime_calls_a_scans_events_with_the_cartridge_fusion(exported):
    _, onnx_path, folder, _ = exported
    clf = OnnxClassifier(onnx_path)
    assert clf.has_scan_fusion
    crops = load_crops(read_crop_index(folder), CROP, 0.64)
    out = clf.run_markers(crops)
    done = clf.calls(crops)
    np.testing.assert_array_equal(done.fused, out["scan_fused_probabilities"])
    expected = calls_from_proba(out["probabilities"], CLASSES, clf.review_threshold, RULE,
                                band_proba=out["scan_fused_probabilities"])
    for got, want in zip(done[:4], expected):
        np.testing.assert_array_equal(got, want)
    # The band read on the network alone (what a file without the output gives) differs.
    alone = calls_from_proba(out["probabilities"], CLASSES, clf.review_threshold, RULE)
    assert (alone[2] != done.review).any()
    # Crops someone chose (the balanced prior) are no scan's events: no cartridge fusion.
    assert clf.calls(crops, prior="balanced").fused is None
    assert list(clf.predict(crops)[0]) == list(done.called)
    # No prior (the input's default, the cartridge's) and the word as typed read the same: the
    # raw word was compared, and the band read on the network alone, unsaid.
    for prior in (None, " cartridge"):
        np.testing.assert_array_equal(clf.calls(crops, prior=prior).review, done.review)
        np.testing.assert_array_equal(clf.calls(crops, prior=prior).fused, done.fused)


def test_deploying_doc_example_reads_the_band_on_the_cartridge_fusion(exported, tmp_path):
    """docs/deploying.md's example, run on the file exported with the markers (its scanner's
    channels the tiny model's), queues what the runtime's ``calls`` queues."""
    _, onnx_path, folder, _ = exported
    example = deploying_example().replace('["DAPI", "CK", "CD45", "CD61", "CD66b"]',
                                          '["DAPI", "CK", "CD45"]')
    crops = load_crops(read_crop_index(folder), CROP, 0.64)
    shutil.copy(onnx_path, tmp_path / "model.onnx")
    np.save(tmp_path / "crops.npy", crops)
    out = subprocess.run([sys.executable, "-c", example + EXAMPLE_OUT], cwd=tmp_path,
                         check=True, capture_output=True, text=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    done = OnnxClassifier(onnx_path).calls(crops)
    assert got["calls"] == done.called.tolist() and got["review"] == done.review.tolist()


def test_restamp_keeps_the_markers_and_refuses_another_fusion(exported, tmp_path):
    path, onnx_path, _, _ = exported
    copy_pt, copy_onnx = tmp_path / "m.pt", tmp_path / "m.onnx"
    copy_pt.write_bytes(path.read_bytes())
    copy_onnx.write_bytes(onnx_path.read_bytes())
    before = file_sha256(copy_pt)
    restamp_onnx(copy_onnx, copy_pt, before)
    assert MARKERS_KEY in OnnxClassifier(copy_onnx).metadata
    model, spec = load_model(copy_pt)
    save_model(copy_pt, model, replace(
        spec, metrics={"marker_fusion": fusion_for(np.random.default_rng(1))}))
    with pytest.raises(InputError, match="another marker fusion"):
        restamp_onnx(copy_onnx, copy_pt, before)
    save_model(copy_pt, model, replace(
        spec, metrics={**spec.metrics, SCAN_FUSION: scan_fusion_for(np.random.default_rng(2))}))
    with pytest.raises(InputError, match="another cartridge fusion"):
        restamp_onnx(copy_onnx, copy_pt, before)
    # What the graph computes with changed (its temperature): refused, the file as it was (a
    # refusal checked the file after writing it, and left one that did not load).
    kept = copy_onnx.read_bytes()
    save_model(copy_pt, model, replace(spec, temperature=spec.temperature * 2))
    with pytest.raises(InputError, match="temperature changed.*re-export"):
        restamp_onnx(copy_onnx, copy_pt, before)
    assert copy_onnx.read_bytes() == kept
    # Through write_spec (a refit's path), refused before the checkpoint is written: both
    # files stay one model (the checkpoint was saved, then the restamp refused).
    from ctcnet.deploy.export import write_spec

    copy_pt.write_bytes(path.read_bytes())  # the checkpoint the export was made from
    checkpoint = copy_pt.read_bytes()
    for changed, said in ((replace(spec, temperature=spec.temperature * 3),
                           "temperature changed"),
                          (replace(spec, metrics={"marker_fusion": fusion_for(
                              np.random.default_rng(3))}), "another marker fusion")):
        with pytest.raises(InputError, match=said):
            write_spec(copy_pt, model, changed)
        assert copy_pt.read_bytes() == checkpoint


def test_markers_are_not_exported_in_int8(exported):
    path, _, _, _ = exported
    with pytest.raises(InputError, match="int8"):
        export_onnx(path, path.with_name("q.onnx"), precision="int8", calibration="simulate:8",
                    markers=True)


def test_plain_export_has_no_marker_outputs(tiny_model_file, tmp_path, caplog):
    path, _ = tiny_model_file(tmp_path / "plain.pt", width=4, decision=RULE,
                              metrics={SCAN_FUSION: scan_fusion_for(np.random.default_rng(5))})
    torch.manual_seed(0)
    export_onnx(path)
    clf = OnnxClassifier(path.with_suffix(".onnx"))
    assert clf.marker_columns is None and not clf.has_fusion and not clf.has_scan_fusion
    assert "value_range" not in clf.metadata["input_contract"]
    # The calls alone need no fusion that decides only the review band: nothing to say.
    crops = np.zeros((2, len(clf.channels), clf.crop_size, clf.crop_size), np.float32)
    with caplog.at_level("WARNING"):
        clf.predict(crops)
    assert "does not compute" not in caplog.text
    # A scan's review list is then read on the network alone, and the port is told so.
    with caplog.at_level("WARNING"):
        assert clf.calls(crops).fused is None
    assert "does not compute" in caplog.text
    with pytest.raises(InputError, match="no marker measurements"):
        clf.run_markers(np.zeros((1, len(clf.channels), clf.crop_size, clf.crop_size),
                                 np.float32))


def test_ctcnets_own_runs_are_told_the_markers_file_costs_them(exported, caplog):
    """ctcnet measures the markers in numpy: a run on a file that measures them in its graph
    as well is told so (onnxruntime runs the whole graph whatever is asked of it)."""
    from ctcnet.inference.backends import OnnxBackend

    _, onnx_path, _, _ = exported
    with caplog.at_level("WARNING"):
        OnnxBackend(onnx_path, device="cpu")
    assert "export without --markers" in caplog.text
