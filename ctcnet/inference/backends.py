"""Inference backends: the one way to run a model on raw crops (torch, or ONNX fp32/fp16/int8).

Every place that classifies crops (predict, evaluate, export verification, the benchmark, the
script that builds the shipped model) goes through a :class:`Backend`: ``spec`` (the model's
:class:`~ctcnet.nn.spec.ModelSpec`), ``predict_logits`` and ``predict_proba`` on raw crops
(N, C, S, S), batched on the backend's device, ``name``, ``device_name``, ``model_path`` and
``explainer()`` (per-channel saliency for the review gallery, or None). Each backend class is
bound to its record in :mod:`ctcnet.inference.backend_registry` (name, model-file suffixes,
batch size per device type). ``load_backend`` picks one from a model file's suffix through that
registry, or from a shipped model's name (:mod:`ctcnet.nn.registry`): for a shipped model, its
ONNX export on a CPU when that export was made from the current checkpoint, else the checkpoint
with torch (with a logged warning).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from ctcnet.core.install_hint import install_command
from ctcnet.core.said_once import first_time
from ctcnet.errors import (
    CtcnetError,
    InputError,
    check_device_name,
    check_regular_file,
    check_whole_number,
)
from ctcnet.inference.backend_registry import (
    backend_class,
    backend_for_path,
    default_batch_size,
    get_backend,
    opener,
)
from ctcnet.inference.onnx_runtime import OnnxClassifier, select_providers
from ctcnet.inference.resources import cpu_model_threads
from ctcnet.io.digests import file_sha256
from ctcnet.nn.calls import finite_crops
from ctcnet.nn.crop_input import checked_crops, say_crop_values, say_not_finite
from ctcnet.nn.registry import DEFAULT_MODEL_NAME, get_model, is_registry_name, resolve_model

log = logging.getLogger(__name__)


def has_torch() -> bool:
    """Whether torch can be imported here, found without importing it (~600 MB of memory with
    its CUDA libraries): the torch-free installs (``ctcnet``, ``ctcnet[predict]``) lack it."""
    import importlib.util

    try:
        return importlib.util.find_spec("torch") is not None
    except ImportError:  # an import hook that refuses it (scripts/no_torch.py's)
        return False
    except ValueError:  # a torch module without a spec, as some test shims leave
        return "torch" in sys.modules and sys.modules["torch"] is not None


@runtime_checkable
class Backend(Protocol):
    """What every way of running a model offers."""

    name: str
    spec: object  # ModelSpec
    model_path: Path | None
    batch_size: int

    def predict_logits(self, crops: np.ndarray) -> np.ndarray:
        """Uncalibrated logits (N, K) float32 of raw-count crops (N, C, S, S)."""

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, K) float32 (softmax of logits / temperature)."""

    @property
    def device_name(self) -> str:
        """Where the model runs, as the summary records it (a device or the providers)."""

    @property
    def gpu(self) -> str | None:
        """``cuda`` or ``cuda:N``: the GPU the model runs on; None on the CPU."""

    def explainer(self):
        """Per-channel saliency for the review gallery, or None where the backend has none."""


@backend_class("torch")
class TorchBackend:
    """A ``CTCClassifier`` on CPU or CUDA; classifies raw (N, C, S, S) crops in batches.

    On CUDA it runs under fp16 autocast by default (``precision``: ``fp16``, ``bf16`` or
    ``fp32``); ``channels_last`` switches the memory format (the benchmark compares both).
    """

    name = "torch"
    PRECISIONS = ("fp32", "fp16", "bf16")

    def __init__(self, model_path: str | Path | None = None, device: str = "auto",
                 batch_size: int | None = None, model=None, precision: str = "fp16",
                 channels_last: bool = False):
        if not has_torch():
            raise CtcnetError("torch models (.pt, --backend torch) need torch, which this "
                              f"install lacks: {install_command('all')}; without it, run an .onnx "
                              "export (a shipped model's, when --backend is left out)")
        # torch only for a torch model: the ONNX path runs without it.
        import torch

        from ctcnet.nn.classifier import load_model, select_device

        if precision not in self.PRECISIONS:
            raise InputError(f"precision {precision!r} is not one of {self.PRECISIONS}")
        self.device = select_device(device)
        if model is None:
            model, _ = load_model(model_path, map_location=self.device)
        self.model = model.to(self.device).eval()
        self.channels_last = bool(channels_last)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.precision = precision if self.device.type == "cuda" else "fp32"
        self.model_path = Path(model_path) if model_path else None
        self.batch_size = int(batch_size or default_batch_size(self.name, self.device.type))
        self._torch = torch
        self._said: set[str] = set()  # what the crops' values were said to be amiss in
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick kernels

    @classmethod
    def from_model(cls, model, device: str = "auto", batch_size: int | None = None,
                   **options) -> TorchBackend:
        """A backend over a classifier in memory (e.g. one just trained)."""
        return cls(None, device, batch_size, model=model, **options)

    @property
    def spec(self):
        """The model's spec."""
        # Read from the model each time: calibration replaces ``model.spec``.
        return self.model.spec

    def model_identity(self) -> str:
        """What the calls follow: the checkpoint file's digest; for a model given in memory,
        its spec's and weights' (the same weights resume a run, other weights are another
        model)."""
        if self.model_path is not None:
            return file_sha256(self.model_path)
        digest = hashlib.sha256(self.spec.to_json().encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    @spec.setter
    def spec(self, value):
        # As on the ONNX backend: a caller may run the network under another spec (the golden
        # predict test and its script drop the decision rule).
        self.model.spec = value

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, K) of raw-count crops, in batches."""
        return self._run(crops, self.model.predict_proba)

    def predict_logits(self, crops: np.ndarray) -> np.ndarray:
        """Uncalibrated logits (N, K) of raw-count crops, in batches."""
        return self._run(crops, self.model)

    def _run(self, crops: np.ndarray, fn) -> np.ndarray:
        spec = self.spec
        crops = checked_crops(crops, spec.panel.names, spec.crop_size)  # as the ONNX path does
        if not len(crops):
            return np.zeros((0, spec.num_classes), np.float32)
        say_crop_values(crops, spec.panel.value_tops, self._said, spec.reads_exports)
        if self.device.type == "cuda":
            out, finite = self._run_cuda(crops, fn)
        else:
            torch, parts, finite = self._torch, [], finite_crops(crops)
            with torch.inference_mode():
                for start in range(0, len(crops), self.batch_size):
                    batch = np.ascontiguousarray(crops[start:start + self.batch_size],
                                                 dtype=np.float32)
                    parts.append(fn(self._layout(torch.from_numpy(batch))).float())
            out = torch.cat(parts).numpy()
        bad = np.flatnonzero(~finite)
        out[bad] = np.nan  # a call 'failed', as the ONNX path leaves them
        say_not_finite(bad.tolist())
        return out

    def _layout(self, batch):
        if self.channels_last:
            return batch.contiguous(memory_format=self._torch.channels_last)
        return batch

    def _run_cuda(self, crops: np.ndarray, fn) -> tuple[np.ndarray, np.ndarray]:
        """The network's outputs and whether each crop's pixels are all finite, read on the GPU
        (numpy's pass took longer than the network). Two page-locked staging buffers in turn:
        the CPU fills one while the GPU classifies the other; one synchronisation at the end."""
        torch = self._torch
        shape = (self.batch_size,) + tuple(crops.shape[1:])
        if getattr(self, "_staging", None) is None or self._staging[0].shape != shape:
            self._staging = [torch.empty(shape, dtype=torch.float32, pin_memory=True)
                             for _ in range(2)]
        copied: list = [None, None]
        out, finite = [], []
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(self.precision)
        with torch.inference_mode(), torch.autocast("cuda", dtype=dtype or torch.float32,
                                                    enabled=dtype is not None):
            for i, start in enumerate(range(0, len(crops), self.batch_size)):
                k = i % 2
                if copied[k] is not None:  # the copy out of this buffer must have finished
                    copied[k].synchronize()
                chunk = crops[start:start + self.batch_size]
                host = self._staging[k][:len(chunk)]
                host.copy_(torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32)))
                batch = self._layout(host.to(self.device, non_blocking=True))
                copied[k] = torch.cuda.Event()
                copied[k].record()
                finite.append(torch.isfinite(batch).flatten(1).all(1))
                out.append(fn(batch).float())
            return torch.cat(out).cpu().numpy(), torch.cat(finite).cpu().numpy()

    @property
    def device_name(self) -> str:
        """The torch device the model is on."""
        return str(self.device)

    @property
    def gpu(self) -> str | None:
        """The CUDA device the model is on; None on the CPU."""
        return str(self.device) if self.device.type == "cuda" else None

    def explainer(self):
        """Per-channel saliency for the review gallery: (crops, class indices) -> (N,C,S,S)."""
        from ctcnet.nn.saliency import grad_cam  # torch (saliency needs gradients)

        # A copy of its own: grad_cam hooks the network and switches its mode, and a report
        # drawn on a background thread (ctcnet.inference.report_overlap) would do so while
        # the main thread classifies the next cartridge with the model.
        model = copy.deepcopy(self.model)
        return lambda crops, classes: grad_cam(model, crops, classes)


@backend_class("onnx")
class OnnxBackend:
    """An exported ONNX model through :mod:`ctcnet.inference.onnx_runtime` (numpy +
    onnxruntime only; public as ``ctcnet.deploy.runtime``)."""

    name = "onnx"

    def __init__(self, model_path: str | Path, device: str = "auto",
                 batch_size: int | None = None, threads: int | None = None,
                 say_marker_cost: bool = True):  # False: an export checking its own file
        # onnxruntime falls back to the CPU with at most a warning; a person who asked for the
        # GPU must hear that it is not there rather than wait at CPU speed.
        no_cuda = CtcnetError(f"--device {device} asked for, but onnxruntime cannot use CUDA "
                              "here (no GPU, or the CPU-only onnxruntime package: "
                              "onnxruntime-gpu in its place runs the models on CUDA); use "
                              "--device cpu or auto")
        providers = None  # runtime picks CUDA when available
        if check_device_name(device) == "cpu":
            providers = ["CPUExecutionProvider"]
        elif device.startswith("cuda"):
            if "CUDAExecutionProvider" not in select_providers():
                raise no_cuda
            gpu = {"device_id": int(device.partition(":")[2] or 0)}  # cuda:N: GPU N, not 0
            providers = [("CUDAExecutionProvider", gpu), "CPUExecutionProvider"]
        # On a CPU the model gets the cores the frame workers leave (one of two here: two
        # onnxruntime threads are slower than one on a 2-core box), and its idle threads do
        # not spin, so they never take a core from the reader and detector.
        self.classifier = OnnxClassifier(model_path, providers=providers,
                                         threads=threads or cpu_model_threads(),
                                         spin_wait=False, batch_size=batch_size)
        if device.startswith("cuda") and "CUDAExecutionProvider" not in self.classifier.providers:
            raise no_cuda
        if say_marker_cost and self.classifier.marker_columns is not None:
            # onnxruntime runs the whole graph whatever outputs are asked: the measurements,
            # which ctcnet makes in numpy, then cost every crop (a 3-frame cartridge read in
            # 14.0 s against the plain export's 3.0 s, with the same events).
            log.warning("%s computes the marker measurements in its graph (exported with "
                        "--markers, for instrument software), which ctcnet reads in numpy: "
                        "each crop costs them as well, several times the network's time; "
                        "export without --markers for ctcnet's own runs", Path(model_path).name)
        self.spec = self.classifier.model_spec
        self.model_path = Path(model_path)
        self.batch_size = self.classifier.batch_size

    def predict_proba(self, crops: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (N, K) of raw-count crops, in batches."""
        return self.classifier.predict_proba(crops, batch_size=self.batch_size)

    def predict_logits(self, crops: np.ndarray) -> np.ndarray:
        """Uncalibrated logits (N, K) of raw-count crops, in batches."""
        return self.classifier.run(crops, batch_size=self.batch_size)[0]

    @property
    def device_name(self) -> str:
        """The onnxruntime execution providers, in order."""
        return ",".join(self.classifier.providers)

    @property
    def gpu(self) -> str | None:
        """The CUDA device of the CUDA provider; None without it."""
        if "CUDAExecutionProvider" not in self.classifier.providers:
            return None
        options = self.classifier.session.get_provider_options().get("CUDAExecutionProvider", {})
        return f"cuda:{int(options.get('device_id', 0))}"

    def export_record(self) -> dict:
        """The graph's ``ctcnet_export`` record (its source's name and SHA-256, precision)."""
        try:
            record = json.loads(self.classifier.metadata.get("ctcnet_export", "{}"))
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def model_identity(self) -> str:
        """What the calls follow: an fp32 graph makes the calls of the checkpoint it was
        exported from (up to float rounding), so it is that checkpoint's digest, and a run
        resumed on the other copy of one shipped model (torch on a GPU node, ONNX on a CPU
        one) resumes; a quantised graph, or one without its record, is its own file's."""
        source = self.export_record()
        if source.get("precision") == "fp32" and source.get("source_sha256"):
            return str(source["source_sha256"])
        return file_sha256(self.model_path)

    def source_checkpoint(self) -> Path | None:
        """The torch checkpoint this graph was exported from, if it lies beside it unchanged:
        by the name the export records, else the .pt of the graph's own name (a pair copied
        under another name together), each held to the recorded SHA-256."""
        source = self.export_record()
        digest = source.get("source_sha256")
        if not digest:
            return None
        for path in (self.model_path.parent / str(source.get("source") or ""),
                     self.model_path.with_suffix(".pt")):
            if path.is_file() and path != self.model_path and file_sha256(path) == digest:
                return path
        return None

    def explainer(self):
        """Saliency needs gradients: taken from the unchanged source checkpoint when it is
        beside the ONNX file (the shipped model's case), else None (gallery without maps)."""
        path = self.source_checkpoint()
        return None if path is None else checkpoint_explainer(path)


def checkpoint_explainer(path: Path):
    """Per-channel saliency from the torch checkpoint at ``path``, loaded in this process (a
    report drawn in a process of its own: ``ctcnet.inference.report_overlap``); None without
    torch."""
    if not has_torch():
        _log_no_saliency()
        return None
    # torch, only when the gallery asks for saliency (~600 MB on a CPU run).
    from ctcnet.nn.classifier import load_model
    from ctcnet.nn.saliency import grad_cam

    model, _ = load_model(path)
    return lambda crops, classes: grad_cam(model, crops, classes)


def portable_explainer(backend) -> tuple[bool, object]:
    """(True, factory) where another process can make ``backend.explainer()``'s saliency
    itself: ``factory`` a picklable zero-argument callable (None: the backend has no saliency);
    (False, None) where only this process can (a model on a GPU or held only in memory)."""
    if isinstance(backend, OnnxBackend) and backend.gpu is None:
        source = backend.source_checkpoint()
        return True, None if source is None else functools.partial(checkpoint_explainer,
                                                                    source)
    if isinstance(backend, TorchBackend) and backend.gpu is None and backend.model_path and \
            backend.model_path.suffix == ".pt":
        return True, functools.partial(checkpoint_explainer, backend.model_path)
    return False, None


_told_no_saliency = False


def _log_no_saliency() -> None:
    """Say once per process that the gallery goes without saliency maps (a torch-free install
    runs every sample of a run the same way)."""
    global _told_no_saliency
    if not _told_no_saliency:
        _told_no_saliency = True
        log.warning("the review gallery has no saliency maps: they need torch, which this "
                    "install lacks (%s adds them)", install_command("all"))


def default_model_path(backend: str | None = None) -> Path:
    """The shipped default model's checkpoint (or its ``.onnx`` export for the ONNX backend)."""
    return resolve_model(None, backend)


def _shipped_onnx_for_cpu(name: str, device: str, batch_size: int | None):
    """A shipped model's ONNX export as a backend when it fits: CPU inference, and exported
    from the shipped checkpoint as it is now (its recorded source digest matches), else None.
    Without torch, the export whenever there is one, on ``device``.

    On a CPU, ONNX Runtime runs the same graph faster than eager torch (docs/benchmarks.md).
    """
    info = get_model(name)
    pt, onnx = info.checkpoint, info.onnx
    if onnx is not None and not has_torch():
        # Without torch the export is the only way to run the model (onnxruntime picks the
        # device: a GPU where its build has CUDA); even a stale one, said so below.
        backend = OnnxBackend(onnx, device=device, batch_size=batch_size)
        if pt is not None and backend.source_checkpoint() != pt:
            log.warning("%s was not exported from the current %s; running it all the same, "
                        "as this install has no torch for the checkpoint (%s)", onnx.name,
                        pt.name, install_command("all"))
        return backend
    if onnx is None or not runs_on_cpu(device):
        return None
    try:
        backend = OnnxBackend(onnx, device="cpu", batch_size=batch_size)
    except (ImportError, CtcnetError) as err:
        log.warning("cannot use %s (%s); running the checkpoint with torch", onnx.name, err)
        return None
    if pt is not None and backend.source_checkpoint() != pt:
        # A stale export of an older checkpoint: use the checkpoint itself, slower on a CPU.
        log.warning("%s was not exported from the current %s; running the checkpoint with "
                    "torch (re-export: ctcnet export %s)", onnx.name, pt.name, pt)
        return None
    return backend


def nvidia_driver_present() -> bool:
    """Whether this machine has an NVIDIA driver loaded (a cheap look, no CUDA library)."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or Path("/dev/nvidiactl").exists()


def runs_on_cpu(device: str) -> bool:
    """Whether ``device`` means the CPU here. Without an NVIDIA driver "auto" is the CPU, known
    without importing torch: its CUDA libraries alone take ~600 MB of memory, more than the
    rest of a CPU run."""
    if check_device_name(device) == "cpu":
        return True
    if device == "auto" and not nvidia_driver_present():
        return True
    if not has_torch():  # then only onnxruntime can use the GPU
        return "CUDAExecutionProvider" not in select_providers()
    from ctcnet.nn.classifier import select_device  # torch, needed only to ask CUDA

    return select_device(device).type == "cpu"


def load_backend(model_path: str | Path | None = None, backend: str | None = None,
                 device: str = "auto", batch_size: int | None = None):
    """Open a model file with the backend its suffix implies (or the one asked for), as the
    backend registry says (:func:`~ctcnet.inference.backend_registry.backend_for_path`).

    ``model_path`` may also be a shipped model's name (None: the default model); a shipped model
    runs as its ONNX export on a CPU when that export is current (without torch: always),
    else as the checkpoint. ``batch_size``: crops per model call (None: the device's)."""
    check_whole_number(batch_size, 1, "batch_size", may_be_none=True)
    named = is_registry_name(model_path)
    info = get_model(str(model_path or DEFAULT_MODEL_NAME)) if named else None
    if info is not None:  # a lab's file replaced under its card: said whichever file runs
        unlike = info.unlike_its_card()
        if unlike and first_time(__name__, unlike):  # (a run opens its model more than once)
            log.warning("%s", unlike)
    if backend is None and named:
        chosen = _shipped_onnx_for_cpu(str(model_path or DEFAULT_MODEL_NAME), device,
                                       batch_size)
        if chosen is not None:
            return chosen
    if backend is not None:
        get_backend(backend)  # an unknown name is refused before any file is looked for
    path = resolve_model(model_path, backend)
    implied = backend_for_path(path).name
    backend = backend or implied
    if backend != implied:
        if backend == "onnx":
            raise InputError("--backend onnx needs an exported .onnx model (ctcnet export CKPT "
                             "--out model.onnx)", path)
        raise InputError(f"{path.suffix} models run with --backend {implied}", path)
    # (found before the backend opens it: a torch install's lack was said of a file not there)
    check_regular_file(path, "a model file", missing="model file not found")
    opened = opener(backend)(path, device=device, batch_size=batch_size)
    if backend == "onnx" and info is not None:
        _refuse_a_stale_export(opened, info.checkpoint)
    return opened


def _refuse_a_stale_export(backend, pt: Path | None) -> None:
    """A model asked for by name with ``--backend onnx`` whose export is of another network
    than the checkpoint beside it (re-fine-tuned, the export forgotten) is refused: it ran
    the earlier network without a word where its card is the later one's. (A graph that
    records no source runs as it is; a pair renamed together is current.) ``pt``: its card's."""
    if pt is not None and backend.export_record().get("source_sha256") and \
            backend.source_checkpoint() != pt:
        onnx = backend.model_path
        raise InputError(f"{onnx.name} was not exported from the current {pt.name} beside it "
                         f"(the model its card describes): export it again (ctcnet export "
                         f"{pt} --out {onnx} --overwrite, with the options it was exported "
                         "with), or give the file itself as --model to run it as it is", onnx)
