"""The torch-free ONNX runtime: no torch import, spec and panel checks, input checks, tampering."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import save_tiny_model

from ctcnet.deploy.export import export_onnx
from ctcnet.deploy.runtime import OnnxClassifier, select_providers
from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.nn.classifier import save_model
from ctcnet.nn.crop_input import synthetic_crops

CHANNELS = ["DAPI", "CK", "CD45", "CD61"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained 4-channel, 32 px model exported once for the whole module."""
    root = tmp_path_factory.mktemp("runtime")
    _, spec = save_tiny_model(root / "tiny.pt", crop_size=32, width=8, temperature=1.5,
                              panel={"channels": CHANNELS, "pixel_size_um": 0.64})
    export_onnx(root / "tiny.pt", root / "tiny.onnx")
    return root / "tiny.onnx", spec


def test_runtime_does_not_import_torch():
    code = ("import sys, ctcnet.deploy.runtime, ctcnet.detect.cropping, ctcnet.detect.pixel_size, "
            "ctcnet.detect.crop_dataset, ctcnet.core.robust, ctcnet.inference.guard; "
            "heavy = [m for m in ('torch', 'lightning', 'onnx') if m in sys.modules]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_loads_in_a_torch_free_process_and_classifies(tiny):
    path, spec = tiny
    code = (
        "import sys, numpy as np; from ctcnet.deploy.runtime import OnnxClassifier; "
        f"clf = OnnxClassifier({str(path)!r}); "
        "x = np.full((3, 4, 32, 32), 200, np.uint16); x[:, :, 10:20, 10:20] += 500; "
        "names, p = clf.predict(x); assert len(names) == 3 and p.shape == (3, 4); "
        "assert 'torch' not in sys.modules; print(','.join(names))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert set(out.stdout.strip().split(",")) <= set(spec.class_names)


def test_a_shipped_model_is_loaded_by_its_name_without_torch():
    """OnnxClassifier("ctcnet-default"), as load_backend and load_model take a name; a name
    that is neither a file nor a shipped model is a missing file."""
    code = ("import sys; from ctcnet.deploy.runtime import OnnxClassifier; "
            "clf = OnnxClassifier('ctcnet-default'); "
            "assert clf.path.name == 'ctcnet-default.onnx'; "
            "assert 'torch' not in sys.modules; print(clf.spec['panel']['channels'][1]['name'])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "CK"
    with pytest.raises(InputError, match="ONNX model file not found"):
        OnnxClassifier("ctcnet-nonesuch")


def test_spec_round_trip(tiny):
    path, spec = tiny
    clf = OnnxClassifier(path)
    assert clf.spec == spec.to_dict()
    assert clf.to_model_spec() == spec
    assert clf.channels == CHANNELS and clf.classes == spec.class_names
    assert clf.crop_size == 32 and clf.pixel_size_um == 0.64 and clf.precision == "fp32"
    assert json.loads(clf.metadata["channels"]) == CHANNELS
    assert json.loads(clf.metadata["classes"]) == spec.class_names
    assert clf.metadata["crop_size"] == "32" and clf.metadata["temperature"] == "1.5"
    export_info = json.loads(clf.metadata["ctcnet_export"])
    assert [v["batch"] for v in export_info["verification"]] == [1, 7]


def test_predict_outputs_and_dtypes(tiny):
    path, spec = tiny
    clf = OnnxClassifier(path)
    x16 = synthetic_crops(spec, 5, seed=3)
    names, proba = clf.predict(x16)
    assert proba.dtype == np.float32 and proba.shape == (5, 4)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-5)
    assert names == [spec.class_names[i] for i in proba.argmax(1)]
    # uint16 and the same counts as float32 are the same input; batching does not matter.
    np.testing.assert_allclose(clf.predict_proba(x16.astype(np.float32)), proba, atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(x16, batch_size=2), proba, atol=1e-6)
    quiet = OnnxClassifier(path, threads=1, spin_wait=False, batch_size=3)
    assert quiet.batch_size == 3
    np.testing.assert_allclose(quiet.predict_proba(x16), proba, atol=1e-6)
    # On a CPU small batches are the fast ones (docs/benchmarks.md).
    assert OnnxClassifier(path, providers=["CPUExecutionProvider"]).batch_size == 8
    x8 = np.clip(x16 // 4, 0, 255).astype(np.uint8)
    assert clf.predict_proba(x8).shape == (5, 4)
    assert clf.predict_proba(x16[:0]).shape == (0, 4)


def test_probabilities_use_the_temperature(tiny):
    path, spec = tiny
    logits, proba = OnnxClassifier(path).run(synthetic_crops(spec, 4, seed=1))
    z = logits / spec.temperature
    expected = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(proba, expected / expected.sum(1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 3, 32, 32), np.uint16), "shape"),
    (np.zeros((2, 4, 40, 40), np.uint16), "shape"),
    (np.zeros((4, 32, 32), np.uint16), "shape"),
    (np.zeros((2, 4, 32, 32), np.int64), "uint8, uint16 or float32"),
])
def test_bad_input_is_refused(tiny, bad, message):
    with pytest.raises(InputError, match=message):
        OnnxClassifier(tiny[0]).predict_proba(bad)


def test_no_crops_and_other_byte_orders_are_read_as_what_they_are(tiny):
    clf = OnnxClassifier(tiny[0])
    names, proba = clf.predict([])  # no crops, as a plain empty list
    assert len(names) == 0 and proba.shape == (0, len(clf.classes))
    x = synthetic_crops(tiny[1], 3)
    for order in (">f4", ">u2"):  # big-endian counts (e.g. from some TIFFs): the same values
        crops = x.astype(np.uint16) if order == ">u2" else x
        np.testing.assert_array_equal(clf.predict_proba(crops.astype(order)),
                                      clf.predict_proba(crops))


def test_non_finite_crops_are_named_not_the_batch_refused(tiny):
    """Per-crop finiteness rule: a NaN/inf crop gets a NaN row and the call 'failed'; the
    other crops (in this batch and the next) are classified as if alone."""
    x = np.full((3, 4, 32, 32), 100.0, np.float32)
    x[1] += np.arange(32, dtype=np.float32)
    x[2, 1, 5, 5] = np.inf
    clf = OnnxClassifier(tiny[0])
    names, proba = clf.predict(x, batch_size=2)
    assert clf.bad_crops == [2]
    assert names[2] == "failed" and np.isnan(proba[2]).all()
    assert names[0] in clf.classes and names[1] in clf.classes
    np.testing.assert_allclose(proba[:2], clf.predict_proba(x[:2]), atol=1e-6)
    # One session for many threads: each thread reads its own run's bad crops.
    import threading

    seen = {}

    def run(name, crops):
        barrier.wait()
        for _ in range(20):
            clf.run(crops)
            seen.setdefault(name, set()).add(tuple(clf.bad_crops))

    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=run, args=("nan", x)),
               threading.Thread(target=run, args=("clean", x[:2]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"nan": {(2,)}, "clean": {()}}


def test_panel_mismatch_refused(tiny):
    clf = OnnxClassifier(tiny[0])
    clf.check_panel(["dapi", "ck", "cd45", "cd61"])  # case does not matter
    # A marker's other names, as predict reads a scan's panel: its dye, an alias.
    clf.check_panel(["Hoechst 33342", "PanCK-PE", "CD45-APC", "CD41"])
    with pytest.raises(PanelMismatchError, match="another order"):
        clf.check_panel(["PanCK", "DAPI", "CD45-APC", "CD61"])
    with pytest.raises(PanelMismatchError, match="another order"):
        clf.check_panel(["CK", "DAPI", "CD45", "CD61"])
    with pytest.raises(PanelMismatchError, match="expects"):
        clf.check_panel(["DAPI", "CK", "CD45", "CD66b"])


def test_truncated_file_refused(tiny, tmp_path):
    data = tiny[0].read_bytes()
    for cut in (len(data) // 2, len(data) - 7):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(data[:cut])
        with pytest.raises(InputError, match="truncated|corrupted"):
            OnnxClassifier(bad)


def test_not_onnx_refused(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"PK\x03\x04 this is a zip, not a model")
    with pytest.raises(InputError, match="not a loadable ONNX model"):
        OnnxClassifier(bad)
    with pytest.raises(InputError, match="not found"):
        OnnxClassifier(tmp_path / "missing.onnx")


def _edited(path, tmp_path, edit):
    proto = onnx.load(str(path))
    edit(proto)
    out = tmp_path / "edited.onnx"
    onnx.save(proto, str(out))
    return out


def test_tampered_weights_refused(tiny, tmp_path):
    def scale_first_weight(proto):
        init = max(proto.graph.initializer, key=lambda t: len(t.raw_data))
        arr = onnx.numpy_helper.to_array(init) * 1.01
        init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))

    with pytest.raises(InputError, match="modified after export"):
        OnnxClassifier(_edited(tiny[0], tmp_path, scale_first_weight))


def test_tampered_metadata_refused(tiny, tmp_path):
    def swap_classes(proto):
        for prop in proto.metadata_props:
            if prop.key == "ctcnet_spec":
                prop.value = prop.value.replace('"ctc"', '"tmp"').replace('"wbc"', '"ctc"')

    with pytest.raises(InputError, match="modified after export"):
        OnnxClassifier(_edited(tiny[0], tmp_path, swap_classes))

    def strip_metadata(proto):
        del proto.metadata_props[:]

    with pytest.raises(InputError, match="no 'ctcnet_spec' metadata"):
        OnnxClassifier(_edited(tiny[0], tmp_path, strip_metadata))


def test_provider_choice():
    assert select_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert select_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_both_backends_take_their_cpu_batch_size_from_the_registry(tiny):
    from ctcnet.deploy.runtime import default_batch_size
    from ctcnet.inference.backends import OnnxBackend, TorchBackend

    assert OnnxClassifier(tiny[0], providers=["CPUExecutionProvider"]).batch_size == \
        default_batch_size("onnx", "cpu") == 8
    assert OnnxBackend(tiny[0], device="cpu").batch_size == 8
    assert TorchBackend(tiny[0].with_suffix(".pt"), device="cpu").batch_size == \
        default_batch_size("torch", "cpu") == 64


def test_onnx_backend_runs_on_the_gpu_asked_for(tiny, monkeypatch):
    """cuda:N (as --device, or as each torchrun rank is handed its GPU) is the CUDA provider's
    device_id N, not onnxruntime's default GPU 0. No GPU here: a CPU session stands in,
    reporting the providers and options it was given as onnxruntime does."""
    import onnxruntime as ort

    from ctcnet.inference import backends

    real, asked = ort.InferenceSession, []

    class Session:
        def __init__(self, model, sess_options=None, providers=()):
            asked.append(providers)
            self._real = real(model, sess_options=sess_options,
                              providers=["CPUExecutionProvider"])
            given = dict(p for p in providers if isinstance(p, tuple))  # (name, options)
            cuda = given.get("CUDAExecutionProvider", {})
            self._cuda = {"device_id": str(cuda.get("device_id", 0))}

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

        def get_provider_options(self):
            return {"CUDAExecutionProvider": self._cuda}

        def __getattr__(self, name):
            return getattr(self._real, name)

    monkeypatch.setattr(ort, "InferenceSession", Session)
    monkeypatch.setattr(backends, "select_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    for device, gpu in (("cuda:1", "cuda:1"), ("cuda:3", "cuda:3"), ("cuda", "cuda:0")):
        assert backends.OnnxBackend(tiny[0], device=device).gpu == gpu
    assert asked[0] == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]


@pytest.mark.gpu
def test_runs_on_cuda_provider(tiny):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime build has no CUDA provider")
    clf = OnnxClassifier(tiny[0])
    assert clf.providers[0] == "CUDAExecutionProvider"
    cpu = OnnxClassifier(tiny[0], providers=["CPUExecutionProvider"])
    x = synthetic_crops(tiny[1], 16)
    np.testing.assert_allclose(clf.predict_proba(x), cpu.predict_proba(x), atol=1e-4)


def _resigned(spec_change):
    """An edit of the ONNX file's spec (``spec_change(spec)`` in place) signed again with a
    valid digest, as a newer ctcnet or a careless tool would write it."""
    from ctcnet.deploy.runtime import DIGEST_KEY, model_digest

    def edit(proto):
        meta = {p.key: p.value for p in proto.metadata_props}
        spec = json.loads(meta["ctcnet_spec"])
        spec_change(spec)
        meta["ctcnet_spec"] = json.dumps(spec)
        onnx.helper.set_model_props(proto, meta)
        meta[DIGEST_KEY] = model_digest(proto.SerializeToString(), meta)
        onnx.helper.set_model_props(proto, meta)
    return edit


def test_plain_keys_that_contradict_the_spec_are_refused(tiny, tmp_path):
    """`channels` reordered beside an untouched spec and the digest recomputed: a port that
    reads the plain key would feed the channels in the wrong order. Refused at load."""
    from ctcnet.deploy.runtime import DIGEST_KEY, model_digest

    def reorder(proto):
        meta = {p.key: p.value for p in proto.metadata_props}
        meta["channels"] = json.dumps(list(reversed(json.loads(meta["channels"]))))
        onnx.helper.set_model_props(proto, meta)
        meta[DIGEST_KEY] = model_digest(proto.SerializeToString(), meta)
        onnx.helper.set_model_props(proto, meta)

    with pytest.raises(InputError, match="metadata 'channels' says .* its ctcnet spec"):
        OnnxClassifier(_edited(tiny[0], tmp_path, reorder))


def test_newer_spec_format_refused(tiny, tmp_path):
    """A correctly signed file from a newer ctcnet is refused by format, not misread."""
    from ctcnet.deploy.runtime import SPEC_FORMAT
    from ctcnet.nn import spec as spec_module

    assert SPEC_FORMAT == spec_module.SPEC_FORMAT
    newer = _resigned(lambda spec: spec.update(format=SPEC_FORMAT + 1))
    with pytest.raises(InputError, match="newer than this runtime"):
        OnnxClassifier(_edited(tiny[0], tmp_path, newer))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_signed_spec_without_a_working_temperature_refused(tiny, tmp_path, temperature):
    """A correctly signed file whose spec no working model has (here a temperature that is not
    a positive number, which turns every probability into NaN) is refused at load, as loading
    its checkpoint would refuse it."""
    bad = _resigned(lambda spec: spec.update(temperature=temperature))
    with pytest.raises(InputError, match="temperature"):
        OnnxClassifier(_edited(tiny[0], tmp_path, bad))


def test_stale_shipped_export_falls_back_to_torch_with_a_warning(tiny, tmp_path, monkeypatch,
                                                                 caplog):
    """The shipped ONNX export runs on a CPU only while it matches the checkpoint; a stale one
    is never used silently."""
    import logging
    import shutil

    import torch

    from ctcnet.inference import backends
    from ctcnet.nn import registry

    pt = tmp_path / f"{backends.DEFAULT_MODEL_NAME}.pt"
    shutil.copy(tiny[0].with_suffix(".pt"), pt)
    export_onnx(pt, pt.with_suffix(".onnx"))
    spec = tiny[1]  # a shipped model is its files plus a card
    pt.with_suffix(".json").write_text(json.dumps({
        "panel": spec.panel.to_dict(), "classes": spec.class_names, "crop_size": spec.crop_size}))
    monkeypatch.setattr(registry, "PACKAGE_MODELS", tmp_path)
    monkeypatch.delenv(registry.MODELS_ENV, raising=False)
    assert backends.load_backend(device="cpu").name == "onnx"  # current export: used
    model = backends.TorchBackend(pt, device="cpu").model
    with torch.no_grad():
        model.net.head[1].bias += 1.0
    save_model(pt, model)  # the checkpoint moved on; the export did not
    with caplog.at_level(logging.WARNING, logger="ctcnet.inference.backends"):
        chosen = backends.load_backend(device="cpu")
    assert chosen.name == "torch"
    assert "was not exported from the current" in caplog.text


def test_cli_verbosity_flags_set_the_ctcnet_log_level():
    import logging

    from ctcnet.cli import setup_logging

    logger = logging.getLogger("ctcnet")
    try:
        for flags, level in (((0, False), logging.WARNING), ((1, False), logging.INFO),
                             ((2, False), logging.DEBUG), ((2, True), logging.ERROR)):
            setup_logging(*flags)
            assert logger.level == level
            assert sum(h.get_name() == "ctcnet-cli" for h in logger.handlers) == 1
    finally:
        for h in [h for h in logger.handlers if h.get_name() == "ctcnet-cli"]:
            logger.removeHandler(h)
        logger.setLevel(logging.NOTSET)


def test_shipped_model_reproduces_the_port_reference():
    """tests/data/onnx_reference is what a port (C++, C#, Node) checks itself against: the
    shipped ONNX file must still give these numbers (rerun scripts/make_onnx_reference.py after
    retraining the shipped model)."""
    import gzip

    from ctcnet.inference.backends import default_model_path

    ref_dir = Path(__file__).parents[1] / "data" / "onnx_reference"
    expected = json.loads((ref_dir / "expected.json").read_text())
    clf = OnnxClassifier(default_model_path("onnx"), providers=["CPUExecutionProvider"])
    assert clf.metadata["ctcnet_digest"] == expected["ctcnet_digest"], \
        "shipped model changed: rerun scripts/make_onnx_reference.py"
    shape = expected["crops_file"]["shape"]
    crops = np.frombuffer(gzip.decompress((ref_dir / "crops.u16.gz").read_bytes()),
                          "<u2").reshape(shape)
    raw = np.concatenate([crops, crops[:1]]).astype(np.float32)
    raw[-1, 1, shape[-1] // 2, shape[-1] // 2] = np.nan
    logits, proba = clf.run(raw)
    names, _ = clf.predict(raw)
    tol = expected["tolerance"]
    for row in expected["crops"]:
        i = row["index"]
        assert names[i] == row["call"]
        if row["probabilities"] is None:
            assert np.isnan(proba[i]).all() and row["call"] == "failed" and row["review"]
            continue
        np.testing.assert_allclose(proba[i], row["probabilities"], atol=tol["probabilities_abs"])
        np.testing.assert_allclose(logits[i], row["logits"], atol=tol["logits_abs"])
        # Review compares the deployment posterior (the rule's log weights, if any).
        weights = expected.get("decision_log_weights", {})
        post = proba[i] * np.exp([weights.get(c, 0.0) for c in expected["classes"]])
        assert row["review"] == bool(post.max() / post.sum() < expected["review_threshold"])


def test_shipped_checkpoints_markers_graph_reproduces_the_port_reference():
    """expected.json's ``markers``: what an export of the shipped checkpoint with --markers
    gives beside the network (its measurements, the cartridge fusion's posterior), as the
    graph it is exported from gives them now (rerun scripts/make_onnx_reference.py after
    changing the guard's measurements or the fusion)."""
    import gzip

    from ctcnet.deploy.graph import OnnxGraph
    from ctcnet.inference.backends import default_model_path
    from ctcnet.nn.classifier import load_model

    ref_dir = Path(__file__).parents[1] / "data" / "onnx_reference"
    expected = json.loads((ref_dir / "expected.json").read_text())
    markers = expected["markers"]
    crops = np.frombuffer(gzip.decompress((ref_dir / "crops.u16.gz").read_bytes()),
                          "<u2").reshape(expected["crops_file"]["shape"]).astype(np.float32)
    graph = OnnxGraph(load_model(default_model_path("torch"))[0], markers=True)
    out = graph.outputs_of(crops)
    assert graph.output_names[2:] == [*markers["outputs"], "measurements"]
    tol = markers["tolerance"]
    for row in markers["crops"]:
        for name in ("measurements", *markers["outputs"]):
            want = np.array([np.nan if v is None else v for v in row[name]], np.float64)
            np.testing.assert_allclose(out[name][row["index"]], want, atol=tol["abs"],
                                       rtol=tol["rel"], err_msg=name)


def test_onnxruntime_records_nothing_outside_the_run(tmp_path):
    """onnxruntime records a device id and usage events under ~/.cache unless told not to
    when it is imported; imported through ctcnet, it writes nothing there."""
    import os

    code = ("import sys, numpy as np, ctcnet.deploy.runtime as r\n"
            "c = r.OnnxClassifier(sys.argv[1])\n"
            "c.predict_proba(np.ones((1, len(c.channels), c.crop_size, c.crop_size), "
            "np.float32))\n")
    model = Path(__file__).resolve().parents[2] / "models" / "ctcnet-default.onnx"
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    subprocess.run([sys.executable, "-c", code, str(model)], check=True,
                   env={**env, "HOME": str(tmp_path)}, capture_output=True)
    assert not list(tmp_path.rglob("*")), list(tmp_path.rglob("*"))


def test_every_backend_refuses_crops_the_model_does_not_take(tmp_path):
    """A network with global pooling runs on crops of any size (100 px crops read at 0.87
    accuracy against 0.997): the torch backend refuses them by name, as the ONNX one does."""
    from ctcnet.errors import InputError
    from ctcnet.inference.backends import load_backend

    path, spec = save_tiny_model(tmp_path / "tiny.pt", crop_size=32)
    export_onnx(path, tmp_path / "tiny.onnx")
    channels = spec.panel.num_channels
    for model in (path, tmp_path / "tiny.onnx"):
        backend = load_backend(model, device="cpu")
        assert backend.predict_proba(np.ones((2, channels, 32, 32), np.uint16)).shape == (2, 4)
        for shape in ((2, channels, 40, 40), (2, channels - 1, 32, 32)):
            with pytest.raises(InputError, match=r"crops must be \(N, "):
                backend.predict_proba(np.ones(shape, np.uint16))


def test_a_model_of_exports_measures_its_markers_at_the_export_levels(tmp_path, rng):
    """A composite's planes are each a viewer's stretch: predict reads a folder of them at the
    guard's export levels (a wider leak, CK's copy in CD45 read as one), and the ``--markers``
    graph of the export model read them at the scan's: CD45 over the CK area read on 70 of
    100 composites, and a port lost half their CTCs. A model of exports measures as predict
    does now; a model of scans still at the scan's levels."""
    import torch

    from ctcnet.deploy.graph import OnnxGraph
    from ctcnet.deploy.marker_graph import COLUMNS
    from ctcnet.inference.guard import measure
    from ctcnet.inference.guard.rules import RULES
    from ctcnet.io.panel import load_panel
    from ctcnet.nn.classifier import load_model

    panel = load_panel({"channels": ["CK", "CD45", "DAPI"], "composite": "rgb",
                        "pixel_size_um": 0.64})
    size = 48
    r = np.hypot(*(np.mgrid[:size, :size] - (size - 1) / 2))
    crops = 20 + rng.normal(0, 2, (6, 3, size, size))
    crops[:, 0] += 180 * (r <= 7)           # CK
    crops[:, 1] += 0.3 * 180 * (r <= 7)      # CK's copy in CD45, as a viewer's stretch shows
    crops[:, 2] += 150 * (r <= 4)           # DAPI
    crops = np.clip(crops, 0, 255).astype(np.float32)
    for view, rules in (("export", RULES.for_crops(True)), (None, RULES)):
        path, _ = save_tiny_model(tmp_path / f"{view}.pt", crop_size=size, panel=panel,
                                  training={"data": {"view": view}} if view else {})
        graph = OnnxGraph(load_model(path)[0], markers=True).eval()
        assert graph.markers.rules == rules
        with torch.inference_mode():
            got = graph.markers(torch.from_numpy(crops)).numpy()
        want = measure(crops, panel, 0.64, rules)
        np.testing.assert_allclose(got[:, COLUMNS.index("cd45_over_ck")],
                                   want["cd45_over_ck"], atol=1e-3)


def test_a_model_too_fine_for_the_markers_graph_is_refused_with_what_to_do():
    """At 0.3 um/px the guard's disk is wider than a row the graph packs: ``ctcnet export
    --markers`` ended in a traceback of the packing."""
    from ctcnet.deploy.marker_graph import MarkerGraph
    from ctcnet.errors import InputError
    from ctcnet.io.panel import load_panel

    with pytest.raises(InputError, match="at 0.3 um/px it is .* export this model without "
                                         "--markers"):
        MarkerGraph(load_panel(None), 80, 0.3)
