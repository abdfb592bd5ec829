"""Export a ctcnet checkpoint to ONNX (fp32, fp16 or int8), with its spec embedded and verified.

The exported graph is the whole classifier, normalisation included: input ``raw`` float32
(N, C, S, S) raw scanner counts with a dynamic batch axis and the spec's fixed crop size;
outputs ``logits`` and ``probabilities`` (softmax of logits / temperature). Instrument software
therefore reproduces nothing: it casts its uint16 crops to float32 and reads probabilities.
With ``markers=True`` the graph also gives the guard's measurements (``measurements``, columns
in the metadata) and the fused probabilities of the spec's marker fusions: the crop sets'
(:mod:`.markers`) and the cartridges' (:mod:`.scan_fusion_graph`).

The torch.export-based exporter (``dynamo=True``) is used: the TorchScript exporter cannot trace
the percentile indices that ``Normalise`` derives from the crop size. After export, the file is
run in onnxruntime on simulated crops at batch 1 and 7 and compared with the torch model; the
export fails when the logits differ by more than the precision's tolerance. Metadata keys are
listed in ``docs/deploying.md``.
"""

from __future__ import annotations

import copy
import io
import json
import logging
import tempfile
import time
import warnings
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from ctcnet import __version__
from ctcnet.deploy.export_crops import (
    CALIBRATION_CROPS,
    load_labelled_crops,
    verification_crops,
)
from ctcnet.deploy.graph import OnnxGraph
from ctcnet.deploy.markers import carried_markers, markers_record, verify_markers
from ctcnet.deploy.onnx_casts import casts_for_castlikes
from ctcnet.deploy.port_record import composite_record, cropping_record
from ctcnet.deploy.quantise import (
    MAX_F1_DROP_POINTS,
    LabelledCrops,
    check_f1_gate,
    f1_drop_points,
    quantise_int8,
)
from ctcnet.deploy.shared_record import shareable_training
from ctcnet.errors import CtcnetError, InputError
from ctcnet.evaluation.metrics import macro_f1
from ctcnet.inference.backends import OnnxBackend, TorchBackend
from ctcnet.inference.onnx_runtime import (
    DIGEST_KEY,
    INPUT_NAME,
    MARKERS_KEY,
    OnnxClassifier,
    input_contract,
    model_digest,
)
from ctcnet.io.atomic import (
    atomic_write_bytes,
    check_output_file,
    refuse_existing,
    refuse_overwriting_inputs,
)
from ctcnet.io.digests import file_sha256
from ctcnet.nn.classifier import CTCClassifier, load_model, save_model
from ctcnet.nn.registry import PACKAGE_MODELS, is_registry_name, is_shipped_file, resolve_model
from ctcnet.nn.spec import SPEC_KEY, ModelSpec

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
# torch.export-based exporter writes opset 18+ (onnxruntime >= 1.14); onnx's version converter
# cannot take these graphs lower (ReduceMean/Reshape adapters), so older opsets are refused.
MIN_OPSET = 18
PRECISIONS = ("fp32", "fp16", "int8")
VERIFY_BATCHES = (1, 7)
# Allowed |logit difference| against the torch fp32 model: atol + rtol * max |logit|. fp32
# differs only by summation order; fp16 keeps ~3 significant digits; int8 is judged mainly by
# the macro-F1 gate, the logit check only catches a broken graph.
TOLERANCES = {"fp32": (1e-3, 1e-4), "fp16": (5e-2, 2e-2), "int8": (0.5, 0.15)}
# Held-out crops of each class below which the int8 gate's macro-F1 is said to mean little.
MIN_GATE_CROPS_PER_CLASS = 25


@dataclass
class ExportReport:
    """What an export wrote and how it checked out: file, precision, opset, size, the
    ORT-versus-torch verification per batch and, for int8, the macro-F1 it kept."""
    path: str
    precision: str
    opset: int
    size_bytes: int
    verification: list[dict] = field(default_factory=list)
    int8: dict | None = None
    seconds: float = 0.0
    markers: dict | None = None
    withheld: list[str] = field(default_factory=list)  # left out of the file's spec

    def lines(self) -> list[str]:
        """The report as the lines ``ctcnet export`` prints."""
        out = [f"wrote {self.path} ({self.precision}, opset {self.opset}, "
               f"{self.size_bytes / 1024:.0f} KiB) in {self.seconds:.1f} s"]
        for v in self.verification:
            out.append(f"  verify batch {v['batch']:>2}: max |logit diff| "
                       f"{v['max_abs_logit_diff']:.2e} (tolerance {v['tolerance']:.2e}), "
                       f"class agreement {v['class_agreement']:.0%}, on {v['crops']}")
        if self.markers:
            diffs = ", ".join(f"{k[8:-5]} {v:.2e}" for k, v in self.markers.items()
                              if k.startswith("max_abs_"))
            out.append(f"  verify markers on {self.markers['batch']} crops: max |diff| {diffs}")
        if self.int8:
            q = self.int8
            out.append(f"  int8 macro-F1 {q['macro_f1_int8']:.4f} vs fp32 "
                       f"{q['macro_f1_fp32']:.4f} (drop {q['drop_points']:+.2f} percentage points, "
                       f"limit {q['max_drop_points']}) on {q['eval_crops']} crops; "
                       f"fp32 agreement {q['agreement_with_fp32']:.1%}")
        if self.withheld:
            out.append("  left out of the file's training record, as what may name a patient "
                       f"(the checkpoint keeps them): {', '.join(self.withheld)}")
        return out


def export_paths(model: str | Path, out: str | Path | None) -> tuple[Path, Path]:
    """The checkpoint to export and the ONNX file to write: a model's name is its checkpoint
    (wherever pip put it); the export goes beside the checkpoint, but for a model named or a
    shipped checkpoint, whose export goes into the working folder (beside it lies the
    shipped ONNX file, checksummed, which an export must never be invited to replace)."""
    named = is_registry_name(model)
    model = resolve_model(model, "torch") if named else Path(model)
    if out:
        path = Path(out)
    elif named or model.resolve().parent == PACKAGE_MODELS.resolve():
        path = Path(f"{model.stem}.onnx")
    else:
        path = model.with_suffix(".onnx")
    # Also where the default lands on one (the command run in the shipped models' folder),
    # --overwrite too: a shipped file replaced fails ctcnet verify's checksums.
    if is_shipped_file(path):
        raise InputError("is a shipped model file, which ctcnet verify checks against its "
                         "checksum: export elsewhere" + ("" if out else " (--out)"), path)
    return model, path


def export_onnx(model_path: str | Path, out_path: str | Path | None = None, *,
                opset: int = DEFAULT_OPSET, precision: str = "fp32",
                calibration: str | Path | LabelledCrops | None = None,
                max_f1_drop: float = MAX_F1_DROP_POINTS, seed: int = 0,
                overwrite: bool = False, markers: bool = False) -> ExportReport:
    """Export ``model_path`` (.pt / .ckpt, or a shipped model's name) to ONNX at ``out_path``
    (default: beside it; a shipped model's, in the working folder: :func:`export_paths`).

    ``markers``: the graph also measures the guard's markers of each crop and, where the spec
    carries a marker fusion, gives the fused probabilities (:class:`OnnxGraph`); checked
    against torch on the verification crops as the logits are. Not with int8 (the quantiser
    would quantise the leak fits' products).

    An ``out_path`` that exists is refused before any work unless ``overwrite``."""
    started = time.perf_counter()
    if precision not in PRECISIONS:
        raise InputError(f"precision {precision!r} is not one of {PRECISIONS}")
    if precision == "int8" and calibration is None:
        raise InputError("int8 export needs calibration crops (a crop dataset folder or "
                         "'simulate[:N]')")
    if markers and precision == "int8":
        raise InputError("marker measurements are exported in fp32 or fp16 models only: the "
                         "int8 quantiser would quantise the leak fits")
    if int(opset) < MIN_OPSET:
        raise InputError(f"opset {opset} is not supported: the exporter writes opset {MIN_OPSET} "
                         "or newer (runs on onnxruntime 1.14 and later; ctcnet asks for 1.19)")
    model_path, out_path = export_paths(model_path, out_path)
    refuse_overwriting_inputs(out_path, [model_path])
    check_output_file(out_path, example="model.onnx", suffix=".onnx")
    refuse_existing([out_path], overwrite)
    model, spec = load_model(model_path)
    crops, crops_source = verification_crops(spec, max(VERIFY_BATCHES), seed)
    # Bad calibration input should fail before the slow export, not after it.
    labelled = load_labelled_crops(calibration, spec, seed=seed) if precision == "int8" else None
    if labelled is not None and not len(labelled.split(CALIBRATION_CROPS, seed)[1].images):
        # (before the export's work: the gate had nothing to compare, passed on 0 crops, and
        # wrote an agreement of NaN into the file's metadata)
        raise InputError(f"int8: {len(labelled.images)} labelled crop(s) leave none held out "
                         "for the gate that compares int8 with fp32 (half are calibration "
                         "crops): give more (a crop folder, or 'simulate')", calibration)

    with tempfile.TemporaryDirectory() as tmp:
        chosen = Path(tmp) / f"{precision}.onnx"
        fp32_file = Path(tmp) / "fp32.onnx"
        graph = OnnxGraph(model, half=precision == "fp16", markers=markers)
        _torch_export(graph, crops, chosen if precision == "fp16" else fp32_file, opset)
        extra = {MARKERS_KEY: json.dumps(markers_record(graph, spec), sort_keys=True)} \
            if markers else {}
        int8_info = None
        if precision == "int8":
            calib, evaluation = labelled.split(CALIBRATION_CROPS, seed)
            quantise_int8(fp32_file, chosen, calib.images, INPUT_NAME)
            int8_info = _int8_gate(_with_spec(fp32_file, spec), _with_spec(chosen, spec),
                                   evaluation, spec, max_f1_drop)
            int8_info["calibration_crops"] = len(calib.images)
        checked = _with_spec(chosen, spec, extra)
        verification = verify_against_torch(model, checked, crops, precision)
        for v in verification:
            v["crops"] = crops_source
        markers_check = verify_markers(graph, checked, crops, precision) if markers else None
        model_bytes = _with_metadata(chosen, spec, {
            "precision": precision, "opset": opset, "source": model_path.name,
            "source_sha256": file_sha256(model_path), "torch_version": torch.__version__,
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "verification": verification, "int8": int8_info, "markers": markers_check},
            extra)
    atomic_write_bytes(out_path, model_bytes)
    OnnxClassifier(out_path)  # the file as written must load and pass its own checks
    report = ExportReport(str(out_path), precision, opset, len(model_bytes), verification,
                          int8_info, time.perf_counter() - started, markers_check,
                          shareable_training(spec.training)[1])
    for line in report.lines():
        log.info("%s", line.strip())
    return report


def restamp_onnx(onnx_path: str | Path, model_path: str | Path, previous_sha256: str) -> Path:
    """Carry a checkpoint's new spec into its ONNX export without re-exporting the graph.

    For a change that leaves the weights and what the graph computes as they are (the decision
    rule, the review threshold): the spec metadata, the recorded source digest and the file
    digest are rewritten, so the export stays current (``inference.backends`` checks the
    digest) and carries the same rule. ``previous_sha256`` is the checkpoint's digest before
    the change: the export must have been made from it (else it holds other weights and is
    refused: re-export instead). A change the graph holds (its temperature, symmetry,
    channels and normalisation, crop and pixel size, classes) is refused too: metadata saying
    it would describe another graph than the file's. The file is replaced only once the new
    one loads and passes its own checks.
    """
    onnx_path, model_path = Path(onnx_path), Path(model_path)
    _, spec = load_model(model_path)
    record, extra = _restamp_refusals(onnx_path, model_path, spec, previous_sha256)
    record.update(source=model_path.name, source_sha256=file_sha256(model_path),
                  restamped_at=datetime.now(UTC).isoformat(timespec="seconds"))
    written = _with_metadata(onnx_path, spec, record, extra)
    # Checked before it replaces the export: a refusal after the write left no file that loads.
    trial = onnx_path.with_name(f".{onnx_path.name}.restamp")
    try:
        atomic_write_bytes(trial, written)
        OnnxClassifier(trial)  # the file as written must load and pass its own checks
    finally:
        trial.unlink(missing_ok=True)
    atomic_write_bytes(onnx_path, written)
    return onnx_path


def _restamp_refusals(onnx_path: Path, model_path: Path, spec: ModelSpec,
                      previous_sha256: str) -> tuple[dict, dict]:
    """(the export's record, the marker keys it carries on) for a restamp of ``onnx_path``
    with ``spec``, refused where the export was not made from the checkpoint of digest
    ``previous_sha256``, or where ``spec`` changes what its graph computes with (the
    network's settings, :func:`_graph_changes`; a marker fusion, ``carried_markers``)."""
    old = OnnxClassifier(onnx_path)
    record = json.loads(old.metadata.get("ctcnet_export", "{}"))
    if record.get("source_sha256") != previous_sha256:
        raise InputError(f"{onnx_path.name} was not exported from {model_path.name} as it was "
                         f"(re-export: ctcnet export {model_path})", onnx_path)
    _refuse_graph_changes(old.model_spec, spec, onnx_path, model_path)
    return record, carried_markers(old.metadata, spec, onnx_path, model_path)


def _refuse_graph_changes(old, new, onnx_path: Path, model_path: Path) -> None:
    """Refuse a spec ``new`` whose changes from ``old`` (the export's) its graph computes
    with (:func:`_graph_changes`)."""
    changed = _graph_changes(old, new)
    if changed:
        raise InputError(f"{model_path.name}'s {', '.join(changed)} changed, which "
                         f"{onnx_path.name}'s graph computes with: re-export it (ctcnet export "
                         f"{model_path})", onnx_path)


def _graph_changes(old, new) -> list[str]:
    """What of ``new`` (a spec) the graph exported from ``old`` computes otherwise."""
    changed = [name for name in ("temperature", "symmetry", "crop_size", "pixel_size_um")
               if getattr(old, name) != getattr(new, name)]
    if list(old.class_names) != list(new.class_names):
        changed.append("classes")
    if old.panel.to_dict() != new.panel.to_dict():
        changed.append("channels or normalisation")
    return changed


def write_spec(model_path: str | Path, model: CTCClassifier, spec: ModelSpec) -> Path | None:
    """Write a changed spec (same weights) into a checkpoint and, metadata only, into the
    ONNX export beside it (:func:`restamp_onnx`), so both keep describing one model; returns
    the ONNX path when there is one."""
    model_path = Path(model_path)
    before = file_sha256(model_path)
    onnx = model_path.with_suffix(".onnx")
    if onnx.exists():  # refused before the checkpoint is written: both stay one model
        _restamp_refusals(onnx, model_path, spec, before)
    model.spec = spec
    save_model(model_path, model, spec)
    if not onnx.exists():
        return None
    return restamp_onnx(onnx, model_path, previous_sha256=before)


def _asinh_onnx(x):
    """asinh(x) = sign(x) * log(|x| + sqrt(x^2 + 1)), as the exporter's translation of asinh.

    onnxruntime's CPU ``Asinh`` kernel is scalar and a large share of the whole graph's CPU
    time; these elementwise ops are vectorised and multithreaded. The form with |x| has no
    cancellation for negative x; max |error| vs torch.asinh ~1e-6 up to |x| = 5e4 (16-bit
    counts over a 0.5-count noise floor).
    """
    from onnxscript import opset18 as op

    ax = op.Abs(x)
    magnitude = op.Log(op.Add(ax, op.Sqrt(op.Add(op.Mul(ax, ax), op.CastLike(1.0, x)))))
    return op.Mul(magnitude, op.Sign(x))


def _torch_export(graph: OnnxGraph, crops: np.ndarray, path: Path, opset: int) -> None:
    graph = graph.eval()
    # The unrolled marker graph took onnxscript's rewriter 2 of a tiny model's 3 minutes.
    example = torch.from_numpy(crops[:2].astype(np.float32))
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    # Without torchvision (the default install) the exporter warns once per torchvision
    # operator it cannot register; our graphs use none of them. Its rewriters log every
    # initializer they replace (80 lines an export under a notebook's logging at INFO).
    quieted = [logging.getLogger(name) for name in (
        "torch.onnx._internal.exporter._registration", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in quieted]
    for logger in quieted:
        logger.setLevel(logging.ERROR)
    try:
        with redirect_stdout(io.StringIO()), warnings.catch_warnings():
            # torch's own deprecation inside its exporter (LeafSpec), about no code of ours
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)`",
                                    category=FutureWarning)
            program = torch.onnx.export(
                graph, (example,), input_names=[INPUT_NAME],
                output_names=list(graph.output_names),
                dynamic_shapes=({0: batch},), opset_version=int(opset), dynamo=True,
                verbose=False, optimize=graph.markers is None,
                custom_translation_table={torch.ops.aten.asinh.default: _asinh_onnx})
            program.save(str(path))
        if graph.markers is not None:  # not optimised: its CastLikes made Casts
            casts_for_castlikes(path)
    except Exception as err:  # the exporter raises many error types; explain and stop
        raise CtcnetError(f"ONNX export (opset {opset}) failed: "
                          f"{str(err).strip().splitlines()[0][:400]}") from err
    finally:
        for logger, level in zip(quieted, levels):
            logger.setLevel(level)
    written = {o.domain: o.version for o in program.model_proto.opset_import}.get("")
    if written != int(opset):
        raise CtcnetError(f"asked for opset {opset} but the exporter wrote opset {written}")


def _with_spec(onnx_file: Path, spec: ModelSpec, extra: dict[str, str] | None = None) -> Path:
    """A copy of a bare exported graph with the spec in its metadata, so it opens as an
    :class:`~ctcnet.inference.backends.OnnxBackend` for verification (the export record is
    added to the final file afterwards)."""
    path = onnx_file.with_name(f"{onnx_file.stem}.checked.onnx")
    path.write_bytes(_with_metadata(onnx_file, spec, {"precision": "unverified"}, extra))
    return path


def verify_against_torch(model: CTCClassifier, onnx_path: Path, crops: np.ndarray,
                         precision: str = "fp32", batches=VERIFY_BATCHES) -> list[dict]:
    """Run the ONNX file and the torch model, each through its inference backend, on the same
    raw crops at each batch size.

    Returns per batch the max |logit difference|, the class agreement and the tolerance;
    raises ``CtcnetError`` when a difference is above the tolerance for this precision.
    """
    reference = TorchBackend.from_model(copy.deepcopy(model), device="cpu")
    candidate = OnnxBackend(onnx_path, device="cpu", say_marker_cost=False)
    atol, rtol = TOLERANCES[precision]
    results = []
    x = crops.astype(np.float32)
    for b in batches:
        # Every crop at each batch size (the same crops one at a time and together: batch 1
        # read the first crop alone, and the record said all of them)
        candidate.batch_size = reference.batch_size = b
        ref_logits, ref_proba = reference.predict_logits(x), reference.predict_proba(x)
        logits, proba = candidate.predict_logits(x), candidate.predict_proba(x)
        diff = float(np.abs(logits - ref_logits).max())
        tolerance = atol + rtol * float(np.abs(ref_logits).max())
        agreement = float((logits.argmax(1) == ref_logits.argmax(1)).mean())
        results.append({"batch": b, "max_abs_logit_diff": diff, "tolerance": tolerance,
                        "max_abs_proba_diff": float(np.abs(proba - ref_proba).max()),
                        "class_agreement": agreement})
        if not diff <= tolerance:  # also catches NaN
            raise CtcnetError(f"exported {precision} model disagrees with torch at batch {b}: "
                              f"max |logit diff| {diff:.3g} > tolerance {tolerance:.3g} "
                              f"(class agreement {agreement:.0%})")
    return results


def _int8_gate(fp32_file: Path, int8_file: Path, evaluation: LabelledCrops, spec: ModelSpec,
               max_drop: float) -> dict:
    preds = {name: OnnxBackend(path, device="cpu", say_marker_cost=False)
             .predict_proba(evaluation.images).argmax(1)
             for name, path in (("fp32", fp32_file), ("int8", int8_file))}
    f1_fp32 = macro_f1(evaluation.labels, preds["fp32"], spec.num_classes)
    f1_int8 = macro_f1(evaluation.labels, preds["int8"], spec.num_classes)
    per_class = np.bincount(np.asarray(evaluation.labels), minlength=spec.num_classes)
    if per_class.min() < MIN_GATE_CROPS_PER_CLASS:
        # A macro-F1 on a handful of crops a class moves by whole points with one crop: the
        # gate then says little about the int8 model.
        log.warning("the int8 gate compares fp32 and int8 on %d held-out crops (%s a class): "
                    "under %d of some class, its macro-F1 says little; give more calibration "
                    "crops (or 'simulate')", len(evaluation.images),
                    ", ".join(map(str, per_class.tolist())), MIN_GATE_CROPS_PER_CLASS)
    check_f1_gate(f1_fp32, f1_int8, max_drop)
    return {"macro_f1_fp32": f1_fp32, "macro_f1_int8": f1_int8,
            "drop_points": f1_drop_points(f1_fp32, f1_int8), "max_drop_points": max_drop,
            "agreement_with_fp32": float((preds["fp32"] == preds["int8"]).mean()),
            "eval_crops": len(evaluation.images), "source": evaluation.source}


# Per-node records the exporter keeps that name the exporting machine's files (the source
# lines of each op, from the installed package's path: a home folder, a user name).
_SOURCE_PATH_KEYS = ("pkg.torch.onnx.stack_trace",)


def _without_source_paths(proto) -> None:
    """Drop from every node (the graph's and its functions') the records naming source files."""
    nodes = [*proto.graph.node, *(n for f in proto.functions for n in f.node)]
    for node in nodes:
        kept = [p for p in node.metadata_props if p.key not in _SOURCE_PATH_KEYS]
        if len(kept) != len(node.metadata_props):
            del node.metadata_props[:]
            node.metadata_props.extend(kept)


def _with_metadata(onnx_file: Path, spec: ModelSpec, export_info: dict,
                   extra: dict[str, str] | None = None) -> bytes:
    """The model's bytes with the spec, flat keys, export record, ``extra`` keys and digest as
    metadata."""
    import onnx

    proto = onnx.load(str(onnx_file))
    _lowest_ir_version(proto)
    _without_source_paths(proto)
    proto.producer_name, proto.producer_version = "ctcnet", __version__
    contract = input_contract(spec.reads_exports, markers=MARKERS_KEY in (extra or {}))
    proto.doc_string = f"ctcnet {spec.arch} classifier; {contract}"
    metadata = {  # (the training record without the lab's paths and sample ids)
        SPEC_KEY: spec.replace(training=shareable_training(spec.training)[0]).to_json(),
        "channels": json.dumps(spec.panel.names),
        "classes": json.dumps(spec.class_names),
        "crop_size": str(spec.crop_size),
        "pixel_size_um": str(spec.pixel_size_um),
        "temperature": str(spec.temperature),
        "ctcnet_version": __version__,
        "model_version": spec.version,
        "input_contract": contract,
        "precision": export_info["precision"],
        "ctcnet_export": json.dumps(export_info, sort_keys=True),
        "cropping": json.dumps(cropping_record()),
        # How predict reads a composite export before the graph (its planes are display
        # levels, named by the export's own colours): only a model that reads exports.
        **({"composite_input": json.dumps(composite_record())} if spec.reads_exports else {}),
        **(extra or {}),
    }
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, metadata)
    metadata[DIGEST_KEY] = model_digest(proto.SerializeToString(), metadata)
    onnx.helper.set_model_props(proto, metadata)
    return proto.SerializeToString()


def _lowest_ir_version(proto) -> None:
    """Drop unused opset imports and declare the oldest IR version the opsets allow.

    The exporter writes IR 10 and the quantiser declares every onnxruntime domain; neither is
    needed by the graph, and older onnxruntime builds on instrument PCs refuse newer IR.
    """
    import onnx

    used = {node.domain for node in proto.graph.node} | {""}
    for function in proto.functions:
        used |= {function.domain} | {node.domain for node in function.node}
    keep = [o for o in proto.opset_import if o.domain in used]
    del proto.opset_import[:]
    proto.opset_import.extend(keep)
    proto.ir_version = max(onnx.helper.find_min_ir_version_for(keep, ignore_unknown=True),
                           8 if proto.functions else 3)
