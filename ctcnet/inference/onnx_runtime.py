"""Scanner-side inference: a ctcnet ONNX model run with numpy and onnxruntime only.

This is the module instrument software embeds (under its public name ``ctcnet.deploy.runtime``,
which re-exports it; it lives here, beside the backends, because ``OnnxBackend`` runs every
ONNX model through it), so it imports nothing heavy (no torch, no Lightning, no onnx package):
only numpy, onnxruntime, the standard library and the torch-free ``ctcnet.errors``,
``ctcnet.io.panel``, ``ctcnet.nn`` spec, calls and crop input, and the backend records
(:mod:`ctcnet.inference.backend_registry`, for its batch size). The contract of the graph (see
``docs/deploying.md``):

* input ``raw``: float32 (N, C, S, S) raw scanner counts, channels in the order of the
  embedded panel; uint8 / uint16 crops are simply cast to float32 (normalisation is inside
  the graph, nothing else is done to the pixels);
* outputs ``logits`` (N, K) and ``probabilities`` (N, K), calibrated with the spec's
  temperature, classes in the order of the embedded taxonomy; a file exported with the
  markers (``ctcnet.deploy.export.export_onnx(markers=True)``) has ``fused_probabilities``
  (N, K, where the spec carries a crop sets' marker fusion), ``scan_fused_probabilities``
  (N, K, where it carries a cartridge fusion: what :meth:`OnnxClassifier.calls` reads on a
  scan's events) and ``measurements`` (N, M: the marker guard's measurements, columns named
  in the metadata key ``marker_measurements``) after them
  (:meth:`OnnxClassifier.run_markers`).

Every file carries its model spec as JSON under the metadata key ``ctcnet_spec`` and a SHA-256
digest (``ctcnet_digest``) over the graph, the weights and the other metadata, so a truncated,
corrupted or edited file is refused with a clear message instead of giving wrong answers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from ctcnet.errors import InputError, check_regular_file
from ctcnet.inference.backend_registry import default_batch_size
from ctcnet.inference.marker_fusion import scan_fusion_role
from ctcnet.inference.onnx_digest import DIGEST_KEY, model_digest  # noqa: F401 (API)
from ctcnet.io.panel import DEFAULT_VALUE_RANGE, check_channel_order
from ctcnet.nn.calls import (  # noqa: F401 (API)
    BALANCED_PRIOR,
    CARTRIDGE_PRIOR,
    FAILED_CLASS,
    DecisionRule,
    calls_from_proba,
    finite_crops,
    prior_rule,
)
from ctcnet.nn.crop_input import (  # noqa: F401 (API)
    ACCEPTED_DTYPES,
    NOT_CLASSIFIED,
    checked_crops,
    crop_value_warning,
    say_crop_values,
    say_not_finite,
)

# torch-free: ctcnet.nn.spec imports only the standard library, ctcnet.io and ctcnet.nn.calls
from ctcnet.nn.spec import DEFAULT_REVIEW_THRESHOLD, SPEC_FORMAT, SPEC_KEY, ModelSpec  # noqa: F401

log = logging.getLogger(__name__)

INPUT_NAME = "raw"
OUTPUT_NAMES = ("logits", "probabilities")
# The optional outputs after them, in this order, and the metadata describing them.
FUSED_OUTPUT = "fused_probabilities"
SCAN_FUSED_OUTPUT = "scan_fused_probabilities"
MEASUREMENTS_OUTPUT = "measurements"
MARKER_OUTPUTS = (FUSED_OUTPUT, SCAN_FUSED_OUTPUT, MEASUREMENTS_OUTPUT)
MARKERS_KEY = "marker_measurements"
INPUT_CONTRACT = ("raw: float32 (N, C, S, S) raw scanner counts (uint8/uint16 cast to float32), "
                  "channels in panel order, no preprocessing; outputs logits and calibrated "
                  "probabilities (N, K) in class order")
# A model trained on composite exports (``spec.reads_exports``) reads display levels, not counts.
EXPORT_INPUT_CONTRACT = ("raw: float32 (N, C, S, S) an 8-bit colour composite export's planes "
                         "(levels 0-255 cast to float32, never counts), each plane given to "
                         "the channel its colour shows (by name, in panel order: metadata "
                         "composite_input), no other preprocessing; outputs logits and "
                         "calibrated probabilities (N, K) in class order")


# What a file with the marker outputs adds: its measurements read levels, not only shapes.
MARKERS_INPUT_CONTRACT = ("; the marker measurements read each channel on its value_range "
                          "(metadata ctcnet_spec): scale a scanner of another range so that "
                          "its top lands on value_range's top, which reads as saturated")
EXPORT_MARKERS_INPUT_CONTRACT = ("; the marker measurements read a level as saturated only at "
                                 "its channel's value_range top (metadata ctcnet_spec)")


def input_contract(reads_exports: bool, markers: bool = False) -> str:
    """The one-line input contract of a model's file (``input_contract`` metadata): raw
    scanner counts, or a composite export's display levels for a model that reads exports;
    with ``markers`` (an ``export --markers`` file) what its measurements need of the levels:
    the network reads any scale alike, the measurements do not."""
    if not markers:
        return EXPORT_INPUT_CONTRACT if reads_exports else INPUT_CONTRACT
    if reads_exports:
        return EXPORT_INPUT_CONTRACT + EXPORT_MARKERS_INPUT_CONTRACT
    return INPUT_CONTRACT.replace(", no preprocessing", "") + MARKERS_INPUT_CONTRACT


def select_providers(available: Sequence[str] | None = None) -> list[str]:
    """CUDA when this onnxruntime build has it, always with the CPU as fallback."""
    available = list(ort.get_available_providers() if available is None else available)
    chosen = [p for p in ("CUDAExecutionProvider",) if p in available]
    return chosen + ["CPUExecutionProvider"]


class CropCalls(NamedTuple):
    """:meth:`OnnxClassifier.calls`: per crop the call (``failed`` for a row that is not
    finite), its deployment posterior, whether it goes to a person, whether it failed; the
    network's probabilities and the cartridge fusion's posterior (None where not read)."""

    called: np.ndarray
    confidence: np.ndarray
    review: np.ndarray
    failed: np.ndarray
    probabilities: np.ndarray
    fused: np.ndarray | None


class OnnxClassifier:
    """An exported ctcnet model: load, check the panel, classify raw crops. Example::

        clf = OnnxClassifier("ctcnet-default")  # a shipped model's name, or an .onnx file
        clf.check_panel(["DAPI", "CK", "CD45", "CD61", "CD66b"])
        # crops: (N, C, S, S) raw counts at the model's pixel size. A scan's events are
        # called at the cartridge's prior (the default); crops someone chose (a labelled
        # folder: what `ctcnet predict` reads a crop folder at) at the balanced one.
        names, proba = clf.predict(crops_uint16, prior="cartridge")

    The file's ``ctcnet_spec`` metadata and graph are checked on loading, so a file that is not
    a ctcnet model, or whose spec and graph disagree, is refused here rather than mis-fed later.
    ``spec`` is that metadata as a plain dict; ``decision`` its decision rule, read once as a
    :class:`~ctcnet.nn.decision_rule.DecisionRule` (what :meth:`predict` applies at the
    ``cartridge`` prior).

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file, or a shipped model's name (``ctcnet models`` lists them; a file
        of that name in the working folder is read first).
    providers : sequence of str or (str, dict), optional
        onnxruntime execution providers, each a name or a (name, options) pair (the CUDA
        provider's ``device_id``: its GPU); by default CUDA when available, else CPU.
    threads : int, optional
        Cap on onnxruntime's intra-op threads (its default: one per core).
    spin_wait : bool, default True
        False stops idle threads from busy-waiting between batches, leaving the CPU to the
        reader and detection threads that feed the model.
    batch_size : int, optional
        Crops per graph call; by default the ``onnx`` backend's
        :func:`~ctcnet.inference.backend_registry.default_batch_size` on the device the
        providers in use run on (8 on a CPU, 1024 on a GPU). Each call may give its own.

    Raises
    ------
    InputError
        The file is missing, unreadable, not ONNX, or holds no valid ctcnet spec.
    """

    def __init__(self, path: str | Path, providers: Sequence | None = None,
                 threads: int | None = None, spin_wait: bool = True,
                 batch_size: int | None = None):
        if not Path(path).exists():  # a shipped model's name (the registry needs no torch)
            from ctcnet.nn.registry import is_registry_name, resolve_model

            if is_registry_name(path):
                path = resolve_model(path, "onnx")
        self.path = check_regular_file(path, "an ONNX model", missing="ONNX model file not found")
        try:
            model_bytes = self.path.read_bytes()
        except OSError as err:
            raise InputError(f"cannot read ONNX model: {err.strerror or err}", self.path) from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = int(threads)
        if not spin_wait:
            # Idle worker threads otherwise spin after each batch, taking CPU from the reader
            # and detection threads that feed the model in a pipeline on a small machine.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        try:
            self.session = ort.InferenceSession(
                model_bytes, sess_options=options,
                providers=list(providers) if providers else select_providers())
        except Exception as err:  # onnxruntime raises its own pybind exception types
            raise InputError("not a loadable ONNX model (truncated, corrupted or not ONNX?): "
                             f"{str(err).splitlines()[0][:300]}", self.path) from None
        metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.spec = _check_metadata(model_bytes, metadata, self.path)
        self.metadata = metadata
        # The model's rule at cartridge prevalence, read from the metadata's dict once.
        self.decision = DecisionRule.from_dict(self.spec.get("decision"), self.classes,
                                               str(self.path))
        # The indices of this thread's last run's non-finite crops: one session serves any
        # number of threads, and one thread's run must not show another's.
        self._last_run = threading.local()
        # Whether a file without the model's cartridge fusion has said so (once a classifier),
        # and what the crops' values were said to be amiss in, against the channels' tops.
        self._said_no_scan_fusion, self._said = False, set()
        self._tops = [float(c.get("value_range", DEFAULT_VALUE_RANGE)[1])
                      for c in self.spec["panel"]["channels"]]
        device_type = "cuda" if "CUDAExecutionProvider" in self.providers else "cpu"
        self.batch_size = int(batch_size or default_batch_size("onnx", device_type))
        self._check_graph()

    # -- what the model is -------------------------------------------------------------------
    @property
    def channels(self) -> list[str]:
        """The channel names the model reads, in order."""
        return [c["name"] for c in self.spec["panel"]["channels"]]

    @property
    def classes(self) -> list[str]:
        """The class names, in output order."""
        return [c["name"] for c in self.spec["taxonomy"]["classes"]]

    @property
    def crop_size(self) -> int:
        """The side of the square crops the model takes, in pixels."""
        return int(self.spec["crop_size"])

    @property
    def pixel_size_um(self) -> float:
        """The pixel size the model was trained at, in micrometres."""
        return float(self.spec["panel"]["pixel_size_um"])

    @property
    def review_threshold(self) -> float:
        """Top probability below which a call goes to review (0.9 when the spec has none)."""
        return float(self.spec.get("review_threshold", DEFAULT_REVIEW_THRESHOLD))

    @property
    def precision(self) -> str:
        """The precision the graph was exported in (``fp32`` unless the metadata says otherwise)."""
        return self.metadata.get("precision", "fp32")

    @property
    def providers(self) -> list[str]:
        """The onnxruntime execution providers the session runs on."""
        return self.session.get_providers()

    def to_model_spec(self):
        """The spec as a ``ctcnet.nn.spec.ModelSpec`` (pure Python, still no torch)."""
        return ModelSpec.from_dict(self.spec, str(self.path))

    def check_panel(self, channel_names: Sequence[str], what: str = "data") -> None:
        """Refuse data whose channel names or order differ from the model's (case-insensitive)."""
        check_channel_order(self.channels, channel_names, what)

    # -- inference ---------------------------------------------------------------------------
    def run(self, raw: np.ndarray, batch_size: int | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
        """(logits, probabilities), each float32 (N, K), for raw (N, C, S, S) crops.

        Per-crop finiteness rule: a crop with any NaN or infinite pixel is not sent to the
        graph (one such pixel would only poison its own row, but nothing says what a NaN count
        means); its rows are NaN, and it is named in a warning and in ``self.bad_crops`` (per
        thread). The other crops of the batch are classified as usual.
        """
        k = len(self.classes)
        out = self._run_batches(raw, list(OUTPUT_NAMES), dict.fromkeys(OUTPUT_NAMES, k),
                                batch_size, NOT_CLASSIFIED)
        return out[OUTPUT_NAMES[0]], out[OUTPUT_NAMES[1]]

    def _run_batches(self, raw: np.ndarray, names: list[str], widths: dict[str, int],
                     batch_size: int | None, unrun: str) -> dict[str, np.ndarray]:
        """The graph's ``names`` outputs of every crop, batch by batch, float32, one row a
        crop (``widths`` columns); a crop with a pixel that is not finite is not sent to the
        graph, its rows NaN, and named in a warning (``unrun``: what it was not)."""
        raw = self._checked(raw)
        step = max(1, int(batch_size or self.batch_size))
        out = {name: np.full((len(raw), widths[name]), np.nan, np.float32) for name in names}
        bad = []
        for start in range(0, len(raw), step):
            # Cast one batch at a time: 50,000 uint16 crops would take 6 GB as float32.
            x = np.ascontiguousarray(raw[start:start + step], dtype=np.float32)
            ok = finite_crops(x)
            if not ok.all():
                bad += (start + np.flatnonzero(~ok)).tolist()
                x = np.ascontiguousarray(x[ok])
            if len(x):
                rows = start + np.flatnonzero(ok)
                for name, values in zip(names, self.session.run(names, {INPUT_NAME: x})):
                    out[name][rows] = values
        self._last_run.bad = bad
        say_not_finite(bad, unrun)
        return out

    @property
    def marker_columns(self) -> list[str] | None:
        """The names of the ``measurements`` output's columns (None: the file has none)."""
        record = self.metadata.get(MARKERS_KEY)
        return list(json.loads(record)["columns"]) if record else None

    @property
    def has_fusion(self) -> bool:
        """Whether the file gives ``fused_probabilities`` (the crop sets' marker fusion)."""
        return FUSED_OUTPUT in self._outputs

    @property
    def has_scan_fusion(self) -> bool:
        """Whether the file gives ``scan_fused_probabilities`` (the cartridges' fusion)."""
        return SCAN_FUSED_OUTPUT in self._outputs

    def run_markers(self, raw: np.ndarray, batch_size: int | None = None
                    ) -> dict[str, np.ndarray]:
        """Every output of a file exported with the markers, by name (``logits``,
        ``probabilities``, ``fused_probabilities`` where the spec has a crop sets' fusion,
        ``scan_fused_probabilities`` where it has a cartridge fusion, ``measurements`` with
        the columns :attr:`marker_columns`), float32, one row a crop;
        a crop with a pixel that is not finite gets NaN rows (as :meth:`run`)."""
        if MEASUREMENTS_OUTPUT not in self._outputs:
            raise InputError("this ONNX file has no marker measurements (export it with the "
                             "markers)", self.path)
        return self._run_batches(raw, list(self._outputs), self._widths, batch_size,
                                 "measured (rows NaN)")

    @property
    def bad_crops(self) -> list[int]:
        """Indices of the non-finite crops of this thread's last :meth:`run` (their rows NaN)."""
        return list(getattr(self._last_run, "bad", []))

    def predict_proba(self, raw: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Calibrated class probabilities, float32 (N, K), columns in ``self.classes`` order."""
        return self.run(raw, batch_size)[1]

    def predict(self, raw: np.ndarray, batch_size: int | None = None,
                prior: str = CARTRIDGE_PRIOR) -> tuple[list[str], np.ndarray]:
        """Call each crop: a class name, or ``"failed"`` for a crop whose row is not finite
        (never a class; ``ctcnet.nn.calls``).

        Parameters
        ----------
        raw : ndarray, shape (N, C, S, S)
            Raw counts, channels in the model's order (:meth:`check_panel`).
        batch_size : int, optional
            Crops per graph call; by default the classifier's.
        prior : str, default "cartridge"
            As ``ctcnet predict --prior``: ``"cartridge"`` (the events of a scan, called with
            the model's rule fitted at cartridge prevalence), ``"balanced"`` (crops of a crop
            set, as ``ctcnet predict`` calls a crop folder by default) or stated class
            frequencies ``"ctc=0.01,cluster=0.005"``.

        Returns
        -------
        names : list of str
            The call per crop.
        proba : ndarray, float32, shape (N, K)
            Calibrated probabilities, columns in :attr:`classes` order.
        """
        done = self._calls(raw, batch_size, prior, None, review=False)
        return list(done.called), done.probabilities

    def calls(self, raw: np.ndarray, batch_size: int | None = None,
              prior: str = CARTRIDGE_PRIOR, scan: bool | None = None) -> CropCalls:
        """The calls, confidences and review flags of each crop as ``ctcnet predict``'s
        network part makes them (:func:`calls_from_proba`; the marker guard's flags are not
        among them, docs/deploying.md).

        A scan's events (``scan``; by default when ``prior`` is the cartridge's) are read with
        the model's cartridge fusion where it carries one: the network's probabilities and
        the markers' measurements together, as the file computes them
        (``scan_fused_probabilities``, an export with the markers). It decides the review
        band (its ``role`` ``review``, the shipped default model's) or the calls (``calls``).
        A file without that output is read on the network alone, with a warning: its review
        list is not predict's."""
        return self._calls(raw, batch_size, prior, scan, review=True)

    def _calls(self, raw: np.ndarray, batch_size: int | None, prior: str, scan: bool | None,
               review: bool) -> CropCalls:
        """:meth:`calls`; without ``review`` (:meth:`predict`, the calls alone) a fusion
        that decides only the review band is not read."""
        rule, _ = prior_rule(prior, self.classes, self.decision, CARTRIDGE_PRIOR)
        # (read as prior_rule reads it: None is the cartridge's, " cartridge" is it; the raw
        # word skipped the fusion, the band read on the network alone, unsaid)
        asked = CARTRIDGE_PRIOR if prior is None else str(prior).strip()
        role = scan_fusion_role(self.model_spec) \
            if (asked == CARTRIDGE_PRIOR if scan is None else scan) else None
        if role == "review" and not review:
            role = None
        if role and not self.has_scan_fusion:
            if not self._said_no_scan_fusion:
                self._said_no_scan_fusion = True
                log.warning("%s carries a cartridge marker fusion the file does not compute "
                            "(export it with the markers): %s read on the network alone, "
                            "not as ctcnet predict reads a cartridge", self.path.name,
                            "its review band is" if role == "review" else "its calls are")
            role = None
        if role:
            out = self.run_markers(raw, batch_size)
            proba, fused = out[OUTPUT_NAMES[1]], out[SCAN_FUSED_OUTPUT]
        else:
            proba, fused = self.predict_proba(raw, batch_size), None
        called, confidence, shown, failed = calls_from_proba(
            fused if role == "calls" else proba, self.classes, self.review_threshold, rule,
            band_proba=fused if role == "review" else None,
            counted=self.model_spec.taxonomy.reported_classes())
        return CropCalls(called, confidence, shown, failed, proba, fused)

    @cached_property
    def model_spec(self) -> ModelSpec:
        """:meth:`to_model_spec`, read once."""
        return self.to_model_spec()

    def _checked(self, raw) -> np.ndarray:
        raw = checked_crops(raw, self.channels, self.crop_size)
        say_crop_values(raw, self._tops, self._said, self.model_spec.reads_exports)
        return raw

    def _check_graph(self) -> None:
        """The graph's input and outputs must agree with the embedded spec."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        c, s, k = len(self.channels), self.crop_size, len(self.classes)
        if len(inputs) != 1 or inputs[0].name != INPUT_NAME or \
                list(inputs[0].shape[1:]) != [c, s, s]:
            raise InputError(f"graph input {[(i.name, i.shape) for i in inputs]} does not match "
                             f"the spec (raw, N x {c} x {s} x {s})", self.path)
        names = [o.name for o in outputs]
        extra = names[len(OUTPUT_NAMES):]
        widths = {**dict.fromkeys((*OUTPUT_NAMES, FUSED_OUTPUT, SCAN_FUSED_OUTPUT), k),
                  MEASUREMENTS_OUTPUT: len(self.marker_columns or ())}
        # The marker outputs: any of the fused ones, in MARKER_OUTPUTS' order, then the
        # measurements.
        in_order = [o for o in MARKER_OUTPUTS if o in extra] == extra
        if names[:len(OUTPUT_NAMES)] != list(OUTPUT_NAMES) or not in_order or \
                (extra and (extra[-1] != MEASUREMENTS_OUTPUT or
                            MARKERS_KEY not in self.metadata)) or \
                any(o.shape[-1] != widths[o.name] for o in outputs):
            raise InputError(f"graph outputs {[(o.name, o.shape) for o in outputs]} do not match "
                             f"the spec ({list(OUTPUT_NAMES)}, N x {k}, then optionally "
                             f"{list(MARKER_OUTPUTS)} as {MARKERS_KEY} says)", self.path)
        self._outputs = names
        self._widths = widths  # each output's columns, for run_markers


def _check_metadata(model_bytes: bytes, metadata: dict[str, str], path: Path) -> dict:
    """Parse the embedded spec and verify the digest; clear errors for edited files."""
    if SPEC_KEY not in metadata:
        raise InputError(f"ONNX model has no '{SPEC_KEY}' metadata: not exported by "
                         "`ctcnet export`", path)
    if DIGEST_KEY not in metadata:
        raise InputError(f"ONNX model has no '{DIGEST_KEY}' metadata: not exported by "
                         "`ctcnet export`, or edited", path)
    try:
        digest = model_digest(model_bytes, metadata)
    except ValueError as err:
        raise InputError(f"ONNX model is truncated or corrupted ({err})", path) from None
    if digest != metadata[DIGEST_KEY]:
        raise InputError("ONNX model content does not match its ctcnet digest: the file was "
                         "modified after export (weights, graph or metadata); re-export it", path)
    try:
        spec = json.loads(metadata[SPEC_KEY])
        names_present = all(isinstance(c["name"], str) for c in
                            spec["panel"]["channels"] + spec["taxonomy"]["classes"])
        int(spec["crop_size"]), float(spec["panel"]["pixel_size_um"])
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"embedded ctcnet spec is unreadable: {err!r}", path) from None
    if not names_present:
        raise InputError("embedded ctcnet spec has channel or class names that are not text", path)
    if int(spec.get("format", 1)) > SPEC_FORMAT:
        raise InputError(f"model spec format {spec['format']} is newer than this runtime "
                         f"understands ({SPEC_FORMAT}); upgrade ctcnet", path)
    # The values no working model has (a temperature that is not a positive number, a crop
    # size or review threshold out of range, an unknown symmetry or decision rule) are
    # refused here, as loading the checkpoint refuses them, not met later as NaN.
    ModelSpec.from_dict(spec, str(path))
    _check_plain_keys(metadata, spec, path)
    return spec


def _check_plain_keys(metadata: dict[str, str], spec: dict, path: Path) -> None:
    """The plain keys beside the spec (``channels``, ``classes``, ``crop_size``,
    ``pixel_size_um``: what a port reads first) must say what the spec says: a file whose
    ``channels`` were reordered and its digest recomputed would feed a port the channels in
    the wrong order while this runtime, reading the spec, ran right."""
    said = {"channels": [c["name"] for c in spec["panel"]["channels"]],
            "classes": [c["name"] for c in spec["taxonomy"]["classes"]],
            "crop_size": int(spec["crop_size"]),
            "pixel_size_um": float(spec["panel"]["pixel_size_um"])}
    for key, value in said.items():
        if key not in metadata:
            continue
        try:
            plain = json.loads(metadata[key])
        except ValueError:
            plain = metadata[key]
        same = plain == value if isinstance(value, list) else \
            isinstance(plain, (int, float)) and float(plain) == float(value)
        if not same:
            raise InputError(f"ONNX metadata '{key}' says {metadata[key]}, its ctcnet spec "
                             f"{value}: the file was edited; re-export it", path)
