"""ONNX export: torch/ORT parity, fp16 and int8 variants, verification and the int8 gate; an
existing file is written over only with --overwrite (overwrite=True from Python)."""

import contextlib
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from conftest import digest, refused, save_tiny_model

from ctcnet.cli import main
from ctcnet.deploy import export as export_module
from ctcnet.deploy.export import OnnxGraph, export_onnx, verify_against_torch, write_spec
from ctcnet.deploy.export_crops import load_labelled_crops, stratified_order, verification_crops
from ctcnet.deploy.quantise import LabelledCrops, check_f1_gate, f1_drop_points
from ctcnet.deploy.runtime import OnnxClassifier, calls_from_proba
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.errors import CtcnetError, InputError, PanelMismatchError
from ctcnet.evaluation.metrics import macro_f1
from ctcnet.inference.tables import label_events
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import Taxonomy
from ctcnet.nn.classifier import build_classifier, load_model, save_model
from ctcnet.nn.crop_input import synthetic_crops
from ctcnet.nn.decision_rule import DecisionRule
from ctcnet.nn.spec import ModelSpec
from ctcnet.simulate import simulate_crops

CHANNELS = ["DAPI", "CK", "CD45", "CD61", "CD66b"]


# A training record as a fine-tune on a lab's crops writes it: folders named by patient, the
# samples held out and their sign-offs by sample id.
PATIENT_RECORD = {
    "dataset": "unit-test", "data": {"data_dir": "/lab/DOE_JOHN_MRN123456/crops"},
    "finetune": {"base": {"path": "/lab/models/base.pt", "sha256": "ab" * 32},
                 "data": {"path": "/lab/DOE_JOHN_MRN123456", "samples": 3,
                          "held_out": {"samples": ["ROE_JANE_MRN654321"], "crops": 9},
                          "signoff_status": {"DOE_JOHN_MRN123456": "signed off",
                                             "ROE_JANE_MRN654321": "signed off",
                                             "POE_ALAN_MRN777777": "not signed off"},
                          "added_crops": {"POE_ALAN_MRN777777": 4, "DOE_JOHN_MRN123456": 2},
                          "learnt_from": "fingerprints"}},
    "recalibration": {"from": "/lab/DOE_JOHN_MRN123456/tuned.pt", "data_dir": "/lab/x"},
    # ... and a fine-tune's warnings (they name samples and folders), a training config's
    # model and run folders, any other absolute path.
    "warnings": ["/lab/DOE_JOHN_MRN123456: 4 crop(s) are not from the cut (ROE_JANE 4)"],
    "config": {"trainer": {"default_root_dir": "runs/DOE_JOHN_MRN123456"},
               "model": {"init_from": "base.pt"}, "sources": ["/lab/a", "C:\\lab\\b"]}}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A 5-channel 40 px model with non-trivial BN statistics, exported through the CLI."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("export")
    spec = ModelSpec("compact", load_panel({"channels": CHANNELS, "pixel_size_um": 0.64}),
                     Taxonomy.from_dict(["ctc", "wbc", "cluster", "debris"]), crop_size=40,
                     arch_kwargs={"width": 8}, temperature=1.3,
                     training=PATIENT_RECORD)
    model = build_classifier(spec)
    with torch.no_grad():  # make logits large enough that a broken graph cannot hide
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 2.0)
    save_model(root / "tiny.pt", model)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["export", str(root / "tiny.pt")]) == 0  # default --out: beside it
    return root, root / "tiny.onnx", spec, out.getvalue()


def test_the_onnx_file_carries_no_path_or_sample_id_of_the_training_record(exported):
    """A model file going to instrument software and other sites: the training, fine-tune and
    calibration folders' paths (named by patient) and the held-out samples' ids are left out
    of its spec, said by the export and listed in the record; counts, digests and the crops'
    fingerprints stay; the checkpoint keeps everything, and a restamped file withholds too."""
    root, path, spec, printed = exported
    meta = OnnxClassifier(path).metadata
    assert "MRN" not in meta["ctcnet_spec"] and "/lab/" not in meta["ctcnet_spec"]
    shared = json.loads(meta["ctcnet_spec"])["training"]
    tuned = shared["finetune"]["data"]
    assert tuned["path"] == "withheld" and tuned["held_out"] == {"samples": 1, "crops": 9}
    assert tuned["signoff_status"] == {"signed off": 2, "not signed off": 1}
    assert tuned["added_crops"] == 6 and tuned["learnt_from"] == "fingerprints"
    assert shared["finetune"]["base"] == {"path": "withheld", "sha256": "ab" * 32}
    assert shared["withheld"] == [
        "data.data_dir", "finetune.base.path", "finetune.data.path",
        "finetune.data.held_out.samples", "finetune.data.signoff_status",
        "finetune.data.added_crops", "recalibration.from", "recalibration.data_dir",
        "warnings", "config.trainer.default_root_dir", "config.model.init_from",
        "config.sources"]
    assert shared["warnings"] == 1 and shared["config"]["sources"] == ["withheld"] * 2
    assert "left out of the file's training record, as what may name a patient" in printed
    assert "finetune.data.held_out.samples" in printed
    assert load_model(root / "tiny.pt")[1].training == PATIENT_RECORD
    restamped = root / "restamp"
    restamped.mkdir()
    shutil.copy(root / "tiny.pt", restamped / "tiny.pt")
    shutil.copy(path, restamped / "tiny.onnx")
    model, spec = load_model(restamped / "tiny.pt")
    write_spec(restamped / "tiny.pt", model, spec.replace(review_threshold=0.8))
    meta = OnnxClassifier(restamped / "tiny.onnx").metadata
    assert "MRN" not in meta["ctcnet_spec"] and json.loads(meta["ctcnet_spec"])[
        "review_threshold"] == 0.8
    # Nor do its nodes name the exporting machine's files (each op's source lines, under the
    # installed package's path: a home folder, a user name).
    from ctcnet.deploy.export import __file__ as exporter

    for onnx_file in (path, restamped / "tiny.onnx"):
        graph = onnx.load(str(onnx_file))
        records = [p.value for n in graph.graph.node for p in n.metadata_props]
        assert records and not any(str(Path(exporter).parent) in r for r in records)


def test_a_training_record_without_identifiers_is_carried_as_it_is():
    from ctcnet.deploy.shared_record import shareable_training

    plain = {"data": {"crop_size": 80, "simulated": {"per_class": 10}}, "epochs": 3}
    assert shareable_training(plain) == (plain, [])
    assert shareable_training({}) == ({}, [])


def test_cli_prints_verification(exported):
    _, path, _, printed = exported
    assert path.exists()
    assert "verify batch  1: max |logit diff|" in printed
    assert "verify batch  7" in printed and "class agreement" in printed


@pytest.mark.parametrize("batch", [1, 7, 33, 100])
def test_torch_and_onnxruntime_agree(exported, batch):
    root, path, spec, _ = exported
    model, _ = load_model(root / "tiny.pt")
    crops = synthetic_crops(spec, batch, seed=batch)
    with torch.inference_mode():
        ref_logits, ref_proba = (t.numpy() for t in OnnxGraph(model)(torch.from_numpy(
            crops.astype(np.float32))))
    logits, proba = OnnxClassifier(path).run(crops)
    assert np.abs(ref_logits).max() > 0.1
    np.testing.assert_allclose(logits, ref_logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(proba, ref_proba, atol=1e-5)
    assert (logits.argmax(1) == ref_logits.argmax(1)).all()


def test_metadata_round_trip(exported):
    _, path, spec, _ = exported
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    read = ModelSpec.from_json(meta["ctcnet_spec"])  # (but what may name a patient)
    assert read.replace(training=spec.training) == spec and read.training != spec.training
    assert json.loads(meta["channels"]) == CHANNELS
    assert meta["crop_size"] == "40" and meta["pixel_size_um"] == "0.64"
    assert meta["precision"] == "fp32" and "raw" in meta["input_contract"]
    info = json.loads(meta["ctcnet_export"])
    assert info["opset"] == 18 and info["source"] == "tiny.pt"
    assert all(v["max_abs_logit_diff"] <= v["tolerance"] for v in info["verification"])
    # Dynamic batch axis, fixed channels and crop size.
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [5, 40, 40]
    assert [o.name for o in proto.graph.output] == ["logits", "probabilities"]
    # Oldest IR the opset allows (older instrument runtimes), and a valid model for onnx.
    assert proto.ir_version == 8 and [o.domain for o in proto.opset_import] == [""]
    onnx.checker.check_model(proto, full_check=True)
    assert OnnxClassifier(path).spec["training"]["dataset"] == "unit-test"


def test_fp16_export(exported, tmp_path):
    root, fp32_path, spec, _ = exported
    report = export_onnx(root / "tiny.pt", tmp_path / "tiny16.onnx", precision="fp16", opset=20)
    assert report.size_bytes < fp32_path.stat().st_size
    clf = OnnxClassifier(tmp_path / "tiny16.onnx")
    assert clf.precision == "fp16"
    crops = synthetic_crops(spec, 16, seed=5)
    fp32 = OnnxClassifier(fp32_path).predict_proba(crops)
    assert np.abs(clf.predict_proba(crops) - fp32).max() < 2e-2
    assert {o.domain: o.version for o in onnx.load(str(tmp_path / "tiny16.onnx")).opset_import
            }[""] == 20


@pytest.fixture
def reuse_fp32_graph(exported, monkeypatch):
    """Skip the slow torch export in int8 tests: copy the already exported fp32 graph."""
    fp32_path = exported[1]
    monkeypatch.setattr(export_module, "_torch_export",
                        lambda graph, crops, path, opset: shutil.copy(fp32_path, path))


def _labelled(spec, n, seed=0):
    crops = synthetic_crops(spec, n, seed)
    return LabelledCrops(crops, np.random.default_rng(seed).integers(0, 4, n), "synthetic")


def test_int8_export_and_gate_record(exported, tmp_path, reuse_fp32_graph):
    root, fp32_path, spec, _ = exported
    report = export_onnx(root / "tiny.pt", tmp_path / "q.onnx", precision="int8",
                         calibration=_labelled(spec, 200), max_f1_drop=100.0)
    clf = OnnxClassifier(tmp_path / "q.onnx")
    assert clf.precision == "int8" and report.size_bytes < fp32_path.stat().st_size
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "TopK", "Abs"} <= ops  # normalisation stays float
    proto = onnx.load(str(tmp_path / "q.onnx"))
    assert [o.domain for o in proto.opset_import] == [""] and proto.ir_version == 8
    onnx.checker.check_model(proto, full_check=True)
    info = json.loads(clf.metadata["ctcnet_export"])["int8"]
    assert info["eval_crops"] == 100 and info["calibration_crops"] == 100
    assert info["drop_points"] == pytest.approx(
        100 * (info["macro_f1_fp32"] - info["macro_f1_int8"]))
    assert 0.5 < info["agreement_with_fp32"] <= 1.0


def test_int8_refused_when_f1_drops(exported, tmp_path, reuse_fp32_graph):
    root, _, spec, _ = exported
    with pytest.raises(CtcnetError, match="int8 model refused"):
        export_onnx(root / "tiny.pt", tmp_path / "q.onnx", precision="int8",
                    calibration=_labelled(spec, 60), max_f1_drop=-1000.0)
    assert not (tmp_path / "q.onnx").exists()


def test_an_int8_gate_on_few_crops_is_said(exported, tmp_path, reuse_fp32_graph, caplog):
    root, _, spec, _ = exported
    with caplog.at_level("WARNING"):
        export_onnx(root / "tiny.pt", tmp_path / "q.onnx", precision="int8",
                    calibration=_labelled(spec, 32), max_f1_drop=100.0)
    assert any("int8 gate compares fp32 and int8 on 16 held-out crops" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    balanced = LabelledCrops(synthetic_crops(spec, 400, 1), np.arange(400) % 4, "synthetic")
    with caplog.at_level("WARNING"):
        export_onnx(root / "tiny.pt", tmp_path / "q2.onnx", precision="int8",
                    calibration=balanced, max_f1_drop=100.0)
    assert not any("int8 gate compares" in r.getMessage() for r in caplog.records)


def test_f1_gate_and_metric():
    check_f1_gate(0.900, 0.8960)  # 0.4 points: kept
    with pytest.raises(CtcnetError, match=r"macro-F1 0.8940 vs fp32 0.9000 is a drop of 0.60 "
                                          r"percentage points"):
        check_f1_gate(0.900, 0.894)
    assert f1_drop_points(0.9, 0.91) == pytest.approx(-1.0)
    # A limit of 0 ("no drop at all") keeps a model that drops none (it refused 1.0 vs 1.0).
    check_f1_gate(1.0, 1.0, 0.0)
    with pytest.raises(CtcnetError, match="drop of 0.10"):
        check_f1_gate(1.0, 0.999, 0.0)
    y = np.array([0, 0, 1, 1, 2, 2])
    assert macro_f1(y, y, 4) == 1.0
    # Class 2 never predicted (F1 0); classes 0 and 1 each gain one false positive (F1 0.8);
    # class 3 is absent from the truth and does not count.
    assert macro_f1(y, np.array([0, 0, 1, 1, 1, 0]), 4) == pytest.approx((0.8 + 0.8 + 0) / 3)


def test_verification_fails_above_tolerance(exported):
    root, path, spec, _ = exported
    model, _ = load_model(root / "tiny.pt")
    with torch.no_grad():
        model.net.head[1].bias += 1.0  # the graph no longer matches this torch model
    with pytest.raises(CtcnetError, match="disagrees with torch at batch 1"):
        verify_against_torch(model, path, synthetic_crops(spec, 7), "fp32")


def test_each_batch_size_reads_every_crop(exported, monkeypatch):
    """Batch 1 read the first crop alone, where the record said the 7 crops: the same crops
    are read one at a time and together."""
    from ctcnet.inference.backends import OnnxBackend

    root, path, spec, _ = exported
    model, _ = load_model(root / "tiny.pt")
    read = []
    original = OnnxBackend.predict_logits

    def spy(self, x):
        read.append((self.batch_size, len(x)))
        return original(self, x)

    monkeypatch.setattr(OnnxBackend, "predict_logits", spy)
    verify_against_torch(model, path, synthetic_crops(spec, 7), "fp32")
    assert read == [(1, 7), (7, 7)]


def test_simulated_calibration_for_a_labs_own_class_points_to_a_crop_folder(exported):
    """A model of a class of the lab's own was told to edit its taxonomy (which a trained
    model cannot take), not to give --int8 its labelled crops."""
    from ctcnet.io.taxonomy import load_taxonomy

    _, _, spec, _ = exported
    own = spec.replace(taxonomy=load_taxonomy({"classes": ["ctc", "wbc", "cluster", "debris",
                                                           "emt_ctc"]}))
    with pytest.raises(InputError, match=r"emt_ctc.*--int8 CROP_FOLDER"):
        load_labelled_crops("simulate:8", own)


def test_calibration_from_crop_folder(exported, tmp_path):
    _, _, spec, _ = exported
    crops = synthetic_crops(spec, 12, seed=2)
    labels = ["ctc", "wbc", "cluster", "debris"] * 3
    write_crop_dataset(tmp_path / "ds", crops, labels, spec.panel)
    data = load_labelled_crops(tmp_path / "ds", spec, count=8)
    assert data.images.shape == (8, 5, 40, 40)
    assert set(data.labels) <= {0, 1, 2, 3}
    # Channels are taken by name: the same crops stored in another channel order load the same.
    other = load_panel({"channels": CHANNELS[::-1], "pixel_size_um": 0.64})
    write_crop_dataset(tmp_path / "other", np.ascontiguousarray(crops[:, ::-1]), labels, other)
    assert np.array_equal(load_labelled_crops(tmp_path / "other", spec, count=12).images,
                          load_labelled_crops(tmp_path / "ds", spec, count=12).images)
    lacking = load_panel({"channels": CHANNELS[:-1] + ["VIM"], "pixel_size_um": 0.64})
    write_crop_dataset(tmp_path / "lacking", crops, labels, lacking)
    with pytest.raises(PanelMismatchError, match="lacks"):
        load_labelled_crops(tmp_path / "lacking", spec)


def test_verification_crops_are_raw_counts(exported):
    spec = exported[2]
    crops, source = verification_crops(spec, 7)
    assert crops.shape == (7, 5, 40, 40) and crops.dtype == np.uint16 and source


def test_stratified_order_covers_every_class_first():
    labels = np.array([2, 0, 0, 1, 2, 2, 3, 0])
    order = stratified_order(labels)
    assert sorted(order) == list(range(8))
    assert list(labels[order[:4]]) == [0, 1, 2, 3]


def test_bad_requests(exported, tmp_path):
    root = exported[0]
    with pytest.raises(InputError, match="not found"):
        export_onnx(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="calibration"):
        export_onnx(root / "tiny.pt", tmp_path / "x.onnx", precision="int8")
    with pytest.raises(InputError, match="opset 17"):
        export_onnx(root / "tiny.pt", tmp_path / "x.onnx", opset=17)
    assert main(["export", str(tmp_path / "missing.pt")]) == 2
    with pytest.raises(SystemExit):
        main(["export", str(root / "tiny.pt"), "--fp16", "--int8", "simulate"])
    # Refused before any work, not after an int8 export's minutes (or silently passed over).
    model, onnx = str(root / "tiny.pt"), str(tmp_path / "y.onnx")
    for args in (["--out", str(tmp_path / "x.txt")],
                 ["--out", onnx, "--max-f1-drop", "0.5"],  # the default, given: said too
                 ["--out", onnx, "--int8", "simulate", "--max-f1-drop", "-1"],  # (at once)
                 ["--out", onnx, "--int8", "simulate:0"],
                 ["--out", onnx, "--int8", ""]):  # (it wrote fp32, said so, exit 0)
        assert main(["export", model, *args]) == 2, args
    assert main(["export", ""]) == 2  # (a traceback: '.' has an empty name)
    assert not (tmp_path / "y.onnx").exists() and not (tmp_path / "x.txt").exists()


def deploying_example() -> str:
    """The Python example of docs/deploying.md, as written."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "deploying.md").read_text()
    return re.search(r"## Example.*?```python\n(.*?)```", doc, re.S).group(1)


# What the example prints for a test to compare: run with ``python -c example + EXAMPLE_OUT``.
EXAMPLE_OUT = ("\nimport sys, json; assert 'torch' not in sys.modules\n"
               "print(json.dumps({'calls': calls.tolist(), 'review': review.tolist()}))\n")


def test_deploying_doc_example_gives_the_runtimes_calls(tmp_path):
    """The example of docs/deploying.md runs as written, without torch, and gives the calls
    and review flags of the runtime's rule (``calls_from_proba``) on simulated crops: with
    the shipped model's cartridge rule (a review band) and with the same rule without its
    band; a crop with a NaN pixel is no call."""
    example = deploying_example()
    assert len(example.strip().splitlines()) <= 45  # (telemetry off before onnxruntime loads)
    shipped = Path(__file__).resolve().parents[2] / "models" / "ctcnet-default"
    unbanded = tmp_path / "unbanded"
    unbanded.mkdir()
    for suffix in (".pt", ".onnx"):
        shutil.copy(shipped.with_suffix(suffix), unbanded / f"ctcnet-default{suffix}")
    model, spec = load_model(unbanded / "ctcnet-default.pt")
    rule = spec.decision.to_dict()
    rule.pop("review_band")
    write_spec(unbanded / "ctcnet-default.pt", model, dataclasses.replace(
        spec, decision=DecisionRule.from_dict(rule, spec.class_names)))
    crops = simulate_crops({"ctc": 30, "wbc": 30, "cluster": 30, "debris": 30},
                           seed=5).images.astype(np.float32)
    crops[3, 1, 5, 5] = np.nan
    reviewed = []
    for model_file in (shipped.with_suffix(".onnx"), unbanded / "ctcnet-default.onnx"):
        work = tmp_path / f"run{len(reviewed)}"
        work.mkdir()
        shutil.copy(model_file, work / "model.onnx")
        np.save(work / "crops.npy", crops)
        out = subprocess.run([sys.executable, "-c", example + EXAMPLE_OUT], cwd=work, check=True,
                             capture_output=True, text=True).stdout
        got = json.loads(out.strip().splitlines()[-1])
        clf = OnnxClassifier(model_file)
        calls, confidence, review, _ = calls_from_proba(
            clf.predict_proba(crops), clf.classes, clf.review_threshold, clf.decision)
        assert got["calls"] == calls.tolist() and got["review"] == review.tolist()
        assert got["calls"][3] == "failed" and got["review"][3]
        # Events the frame border cuts, as predict labels them (label_events): filed as
        # debris, a CTC or cluster call shown.
        cut = np.zeros(len(crops), bool)
        cut[[0, 3, 40, 70, 100]] = True
        np.save(work / "edge_cut.npy", cut)
        out = subprocess.run([sys.executable, "-c", example + EXAMPLE_OUT], cwd=work, check=True,
                             capture_output=True, text=True).stdout
        edged = json.loads(out.strip().splitlines()[-1])
        table = label_events(pd.DataFrame({"edge_cut": cut}), clf.predict_proba(crops),
                             ModelSpec.from_dict(clf.spec), edge_cut_class="debris")
        assert edged["calls"] == table["class"].tolist()
        assert edged["review"] == table["review"].tolist()
        assert edged["calls"][0] == "debris" and edged["calls"][3] == "failed"
        # The rule is more than the threshold: a threshold alone queues other events.
        assert (review != (np.nan_to_num(confidence) < clf.review_threshold)).any()
        reviewed.append(review)
    assert (reviewed[0] != reviewed[1]).any()  # the band changes what is queued


def test_asinh_translation_matches_torch(tmp_path):
    """The graph's asinh (log/sqrt form) equals torch.asinh over the whole 16-bit SNR range."""
    import onnxruntime as ort

    class Asinh(torch.nn.Module):
        def forward(self, x):
            return torch.asinh(x)

    z = torch.cat([torch.linspace(-5e4, 5e4, 20001), torch.linspace(-3, 3, 6001),
                   torch.tensor([0.0, -1e-7, 1e-7])]).view(1, -1)
    with contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(Asinh().eval(), (z,), dynamo=True, opset_version=18,
                                    custom_translation_table={
                                        torch.ops.aten.asinh.default: export_module._asinh_onnx})
    program.save(str(tmp_path / "asinh.onnx"))
    session = ort.InferenceSession(str(tmp_path / "asinh.onnx"),
                                   providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: z.numpy()})[0]
    assert "Asinh" not in {n.op_type for n in onnx.load(str(tmp_path / "asinh.onnx")).graph.node}
    np.testing.assert_allclose(got, torch.asinh(z).numpy(), atol=2e-6, rtol=1e-6)


SIZE = 32


def test_export_refuses_an_existing_onnx(tmp_path, capsys):
    model, _ = save_tiny_model(tmp_path / "m.pt", crop_size=SIZE, width=8)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"an export made earlier, e.g. the one a scanner runs")
    before = digest(onnx)
    refused(capsys, onnx, ["export", str(model)])  # the default --out: beside the checkpoint
    refused(capsys, onnx, ["export", str(model), "--out", str(onnx)])
    assert digest(onnx) == before
    assert main(["export", str(model), "--overwrite"]) == 0
    assert digest(onnx) != before


def test_export_onnx_from_python_refuses_an_existing_file(tmp_path):
    from ctcnet.deploy.export import export_onnx

    model, _ = save_tiny_model(tmp_path / "m.pt", crop_size=SIZE, width=8)
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"an export made earlier")
    with pytest.raises(InputError, match="overwrite=True"):
        export_onnx(model)
    assert onnx.read_bytes() == b"an export made earlier"
    export_onnx(model, overwrite=True)
    assert onnx.read_bytes() != b"an export made earlier"


def test_a_shipped_model_exports_into_the_working_folder_from_python_too(tmp_path, monkeypatch):
    """From Python, export_onnx("ctcnet-default") failed after the export (the name read as a
    file), and a shipped checkpoint's default output was the package's own ONNX file, the
    refusal inviting overwrite=True to replace it."""
    from ctcnet.deploy.export import export_paths
    from ctcnet.nn.registry import PACKAGE_MODELS

    monkeypatch.chdir(tmp_path)
    shipped = PACKAGE_MODELS / "ctcnet-default.pt"
    assert export_paths("ctcnet-default", None) == (shipped, Path("ctcnet-default.onnx"))
    assert export_paths(shipped, None) == (shipped, Path("ctcnet-default.onnx"))
    assert export_paths(tmp_path / "lab.pt", None) == (tmp_path / "lab.pt", tmp_path / "lab.onnx")
    assert export_paths("ctcnet-default", "x.onnx")[1] == Path("x.onnx")
    # Run in the shipped models' folder, the default lands on the shipped ONNX file: refused
    # (overwrite=True wrote over it, and ctcnet verify failed).
    from ctcnet.errors import InputError

    monkeypatch.chdir(PACKAGE_MODELS)
    for model in ("ctcnet-default", shipped):
        with pytest.raises(InputError, match="is a shipped model file"):
            export_paths(model, None)


def test_cropping_record_rebuilds_predicts_border_crop(exported):
    """A port following the file's ``cropping`` record alone (the seed, the fill's numbers,
    the window rule) cuts the crop predict cuts at a frame corner, pixel for pixel."""
    from ctcnet.detect.cropping import extract_crops

    _, path, spec, _ = exported
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    record = json.loads(meta["cropping"])
    fill = record["border_fill"]
    divisor = float(re.search(r"/ ([0-9.]+)", fill["noise"]).group(1))
    over = float(re.search(r"\+ ([0-9.]+) \* noise", fill["level"]).group(1))
    assert "round(1.9 / scanner_um)" in record["centre"] and fill["percentiles"] == [10, 30]

    rng = np.random.default_rng(3)
    frame = rng.normal(500, 20, (5, 60, 70)).astype(np.float32)
    size = spec.crop_size
    x, y = 3.0, 5.0  # a corner event: its window runs past the top and the left border
    top, left = int(np.rint(y)) - size // 2, int(np.rint(x)) - size // 2
    expected = np.empty((5, size, size), np.float32)
    pattern = np.random.default_rng(fill["pattern"]["seed"]).standard_normal(
        (size, size)).astype(np.float32)
    rows = slice(max(top, 0), top + size)
    cols = slice(max(left, 0), left + size)
    for c in range(5):
        inside = frame[c, rows, cols]
        q10, q30 = np.percentile(inside, [10, 30])
        noise = (q30 - q10) / divisor
        block = np.clip(q30 + over * noise + noise * pattern, inside.min(), inside.max())
        block[-top:, -left:] = inside
        expected[c] = block
    crops, padded = extract_crops(frame, np.array([x]), np.array([y]), size,
                                  spec.pixel_size_um, spec.pixel_size_um)
    assert padded[0]
    np.testing.assert_allclose(crops[0], expected, atol=1e-3)


def test_cropping_record_pads_a_crop_folders_small_crop_as_predict_does(exported):
    """A crop smaller than the model's view, padded from the record's ``crop_folder`` alone
    (where it sits, the ring measured, the pattern's side, the clip), is predict's crop; the
    record says too how predict files an event the border cuts and where the decision rule
    applies, and a markers export names every measurement's unit."""
    from ctcnet.deploy.marker_graph import COLUMNS
    from ctcnet.deploy.markers import MEASUREMENT_UNITS
    from ctcnet.detect.cropping import to_model_scale

    _, path, spec, _ = exported
    record = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}[
        "cropping"])
    fill, small = record["border_fill"], record["crop_folder"]["smaller"]
    assert "(crop_size - h) // 2" in small and "outer ring of min(2, h // 2, w // 2)" in small
    divisor = float(re.search(r"/ ([0-9.]+)", fill["noise"]).group(1))
    over = float(re.search(r"\+ ([0-9.]+) \* noise", fill["level"]).group(1))
    size, h = spec.crop_size, 20
    crop = np.random.default_rng(4).normal(300, 15, (1, 5, h, h)).astype(np.float32)
    top = (size - h) // 2
    ring = np.ones((h, h), bool)
    ring[2:-2, 2:-2] = False
    pattern = np.random.default_rng(fill["pattern"]["seed"]).standard_normal(
        (size, size)).astype(np.float32)
    expected = np.empty((5, size, size), np.float32)
    for c in range(5):
        measured = crop[0, c][ring]
        q10, q30 = np.percentile(measured, [10, 30])
        noise = (q30 - q10) / divisor
        expected[c] = np.clip(q30 + over * noise + noise * pattern, measured.min(),
                              measured.max())
        expected[c, top:top + h, top:top + h] = crop[0, c]
    fitted, _, padded = to_model_scale(crop, spec.pixel_size_um, spec.pixel_size_um, size)
    assert padded[0] if np.ndim(padded) else padded
    np.testing.assert_allclose(fitted[0], expected, atol=1e-3)
    assert "'debris' whatever the graph says" in record["edge_cut"]
    assert "a crop folder is called at the balanced prior" in record["decision_applies"]
    assert "10-80 % of whose pixels" in record["clipped_background"]
    assert set(MEASUREMENT_UNITS) == set(COLUMNS)


def test_an_export_over_a_shipped_model_file_is_refused_whatever_overwrite_says(tmp_path):
    """export_onnx(..., overwrite=True) into the package's models folder replaced the shipped,
    checksummed ONNX file (ctcnet verify then failed); the docs say never."""
    from ctcnet.nn.registry import PACKAGE_MODELS, is_shipped_file

    shipped = PACKAGE_MODELS / "ctcnet-default.onnx"
    before = shipped.read_bytes()
    with pytest.raises(InputError, match="is a shipped model file"):
        export_onnx("ctcnet-default", shipped, overwrite=True)
    assert shipped.read_bytes() == before
    assert is_shipped_file(shipped) and not is_shipped_file(tmp_path / "ctcnet-default.onnx")
    assert not is_shipped_file(PACKAGE_MODELS / "lab.onnx")  # a lab's own, beside them


def test_an_int8_export_with_no_crop_held_out_for_its_gate_is_refused_before_the_work(
        tmp_path, capsys):
    """One calibration crop left none for the gate: it passed on 0 crops (macro-F1 0 against
    0) and wrote an agreement of NaN, no JSON, into the file's metadata."""
    from ctcnet.cli import main

    assert main(["export", "ctcnet-default", "--out", str(tmp_path / "x.onnx"), "--int8",
                 "simulate:1"]) == 2
    assert "leave none held out for the gate" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_a_composite_models_export_crops_are_composites():
    """ctcnet-core3-export reads composite exports: its int8 file was calibrated and gated on
    raw scan counts up to 4095, a look it never reads."""
    from ctcnet.deploy.export_crops import simulated_crops
    from ctcnet.nn.registry import resolve_model

    _, spec = load_model(resolve_model("ctcnet-core3-export"))
    labelled = simulated_crops(spec, 6, seed=3)
    assert labelled.source.startswith("simulated exports (6 crops")
    assert labelled.images.shape == (6, spec.panel.num_channels, spec.crop_size,
                                      spec.crop_size)
    assert 0 <= labelled.images.min() and labelled.images.max() <= 255.01
    assert sorted(set(labelled.labels.tolist())) == list(range(spec.num_classes))
