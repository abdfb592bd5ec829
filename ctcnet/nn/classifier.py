"""The classifier as shipped: normalisation + network, built from and saved with its spec.

``build_classifier(spec)`` gives an ``nn.Module`` that takes raw counts (N, C, H, W) and returns
logits (averaged over the spec's test-time symmetry in eval mode); ``predict_proba`` applies the
calibrated temperature. ``save_model`` writes a small
``.pt`` file holding ``{"ctcnet_spec": dict, "state_dict": tensors}``; ``load_model`` reads
those and Lightning checkpoints alike, always with ``weights_only=True``, and refuses a file
whose weights are not finite.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ctcnet.errors import CtcnetError, InputError, check_device_name, check_regular_file
from ctcnet.io.atomic import atomic_path
from ctcnet.nn.nets import create_model
from ctcnet.nn.normalise import Normalise
from ctcnet.nn.spec import SPEC_KEY, ModelSpec
from ctcnet.nn.symmetry import symmetric_logits


class CTCClassifier(nn.Module):
    """Raw counts -> logits. ``net`` is the plain backbone; ``normalise`` comes from the panel."""

    def __init__(self, spec: ModelSpec):
        super().__init__()

        self.spec = spec
        self.normalise = Normalise(spec.panel)
        self.net = create_model(spec.arch, in_chans=spec.in_chans, num_classes=spec.num_classes,
                                **spec.arch_kwargs)
        self._check_outputs()

    def _check_outputs(self) -> None:
        """Refuse, in a line, a network that gives other than one logit a class for a crop (a
        lab's architecture ignoring ``num_classes``: it failed at the first loss with a
        traceback, once the data were made)."""
        spec, was = self.spec, self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                out = self.net(torch.zeros(1, spec.in_chans, spec.crop_size, spec.crop_size))
        finally:
            self.net.train(was)
        if tuple(out.shape) != (1, spec.num_classes):
            raise InputError(f"arch {spec.arch!r} gives {tuple(out.shape)[1:]} outputs for a "
                             f"crop, not one logit for each of the {spec.num_classes} classes "
                             f"{spec.class_names}")

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        """Logits for raw counts: normalised, then the backbone (averaged over the symmetry views
        outside training)."""
        x = self.normalise(raw)
        if self.training:  # augmentation shows the views; one pass each is what trains
            return self.net(x)
        return symmetric_logits(self.net, x, self.spec.symmetry)

    def predict_proba(self, raw: torch.Tensor) -> torch.Tensor:
        """Calibrated class probabilities (softmax of the logits over the spec's temperature)
        of raw counts (N, C, S, S) in the spec's channel order and crop size. Called on its
        own (a notebook's tensors), a crop of another shape is refused: the network's global
        pooling would read it all the same, and wrongly. ``ctcnet.load_backend`` runs numpy
        crops with every check (dtype, values, NaN)."""
        size, channels = self.spec.crop_size, self.spec.in_chans
        if not isinstance(raw, torch.Tensor):  # a numpy array: AttributeError '.float'
            raise InputError("the network takes a torch.Tensor (torch.from_numpy(crops)); "
                             "ctcnet.load_backend(...).predict_proba takes numpy crops, with "
                             f"every check, got {type(raw).__name__}")
        if raw.ndim != 4 or tuple(raw.shape[1:]) != (channels, size, size):
            raise InputError(f"crops must be (N, {channels}, {size}, {size}) raw counts in the "
                             f"channel order {self.spec.panel.names}, got shape "
                             f"{tuple(raw.shape)}")
        return torch.softmax(self(raw).float() / self.spec.temperature, dim=1)


def build_classifier(spec: ModelSpec) -> CTCClassifier:
    """A freshly initialised classifier for ``spec``."""
    return CTCClassifier(spec)


def save_model(path: str | Path, model: CTCClassifier, spec: ModelSpec | None = None) -> None:
    """Write spec + weights atomically; the file loads with ``torch.load(weights_only=True)``."""
    spec = spec or model.spec
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({SPEC_KEY: spec.to_dict(), "state_dict": state}, tmp)


def drop_stale_export(model_path: str | Path, replaced_by: str) -> None:
    """Remove the ONNX export beside a model file just written over (``ctcnet export``'s
    default place), said: beside the new model it would read as its export, and an install
    without torch would run it with the replaced model's calibration and guard.
    ``replaced_by``: what wrote the model over, as the warning names it."""
    exported = Path(model_path).with_suffix(".onnx")
    if exported.is_file():
        exported.unlink()
        logging.getLogger(__name__).warning(
            "%s: removed, the export of the %s %s replaced (export this model again)",
            exported, Path(model_path).name, replaced_by)


def _strip_prefix(state: dict, keys: set[str]) -> dict:
    """Map Lightning's ``model.xxx`` keys onto the classifier's own keys."""
    if set(state) >= keys:
        return state
    for prefix in ("model.", "classifier.", "_orig_mod."):
        stripped = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if stripped and set(stripped) >= keys:
            return stripped
    return state


def nonfinite_weights(state: dict) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold NaN or infinite values."""
    return [k for k, v in state.items()
            if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


def refuse_nonfinite_weights(state: dict, source, why: str) -> None:
    """InputError naming the tensors of ``state`` that hold NaN or infinite values, with
    ``why`` (what such a model is, what to do), said of ``source``."""
    broken = nonfinite_weights(state)
    if broken:
        raise InputError(f"weights hold NaN or infinite values ({', '.join(broken[:3])}"
                         f"{', ...' if len(broken) > 3 else ''}): {why}", source)


def _damaged_entry(path: Path) -> str | None:
    """The first part of a torch archive whose bytes fail the CRC-32 the archive records for
    them, or None: torch reads the parts without checking, so a flipped bit in a weight
    loaded as another model (a bias of 0.10 read as 1.64, calls moved, nothing said)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            for part in archive.infolist():
                if not part.CRC and part.file_size:  # saved with torch's CRCs turned off
                    continue
                try:
                    with archive.open(part) as fh:
                        while fh.read(1 << 20):
                            pass
                except zipfile.BadZipFile:  # (named within the archive: its first folder is
                    return part.filename.split("/", 1)[-1]  # the name torch saved it under)
    except (zipfile.BadZipFile, OSError, EOFError):  # torch read it: its own reader decides
        return None
    return None


def load_model(path: str | Path, map_location: str | torch.device = "cpu",
               diverged: str = "a diverged or damaged model; use an earlier checkpoint"
               ) -> tuple[CTCClassifier, ModelSpec]:
    """Load a ctcnet ``.pt`` model or Lightning ``.ckpt`` (or a shipped model by its name,
    ``ctcnet models``); returns (model in eval mode, spec). The model is the network itself,
    for training, fine-tuning and export; :func:`ctcnet.load_backend` classifies numpy crops
    with every input check. Weights that are not finite are refused, saying ``diverged``
    (what such a file is and what to do, as its caller knows it)."""
    from ctcnet.nn.registry import is_registry_name, resolve_model

    if path is not None and is_registry_name(path):  # "ctcnet-default": its checkpoint
        path = resolve_model(path, "torch")
    path = check_regular_file(path, "a model file", missing="model file not found")
    if str(map_location).startswith("cuda"):  # (a machine without one: said so, never read
        select_device(str(map_location))     # as a damaged file)
    try:
        with warnings.catch_warnings():  # (torch's note on a legacy pickle: refused below)
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            blob = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling error, truncated zip, not a torch file...
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        with open(path, "rb") as fh:
            archive = fh.read(4) == b"PK\x03\x04"
        if not archive and path.suffix.lower() == ".onnx":  # (fine-tune's --base, export's)
            raise InputError("an ONNX export, which runs as it is (predict, review, the ONNX "
                             "runtime) but is not trained, fine-tuned or exported again: give "
                             "the .pt checkpoint it was exported from (the ONNX metadata's "
                             "ctcnet_export names it as source)", path) from None
        if not archive:  # torch's own format is a zip archive (one cut short: said below)
            raise InputError("not a ctcnet checkpoint: a .pt model is a torch archive of its "
                             "spec and weights, and this file is none (an ONNX export runs "
                             "under its .onnx name; it is not exported again)", path) from None
        if first.startswith("Weights only load failed"):
            # torch's own advice goes on to how to load it anyway (weights_only=False): a
            # file that runs code as it is read is never a model to load.
            raise InputError("it holds pickled Python objects besides tensors, which ctcnet "
                             "never loads (reading them can run any code): a ctcnet model "
                             "holds its spec and weights alone; ask its maker for one saved "
                             "by ctcnet (ctcnet train, finetune)", path) from None
        raise InputError(f"not a loadable ctcnet checkpoint (weights only; a damaged file or "
                         f"not a torch file?): {first[:300]}", path) from None
    damaged = _damaged_entry(path)
    if damaged:
        raise InputError(f"damaged: its part {damaged} does not match the checksum the archive "
                         "records for it (a copy altered or cut in transit, a bad disk); copy "
                         "it again from where it was made", path)
    if not isinstance(blob, dict) or SPEC_KEY not in blob:
        raise InputError("checkpoint has no ctcnet model spec", path)
    spec = ModelSpec.from_dict(blob[SPEC_KEY], str(path))
    try:
        model = build_classifier(spec)
    except (ValueError, TypeError, KeyError, OSError) as err:  # unknown arch, bad arguments
        raise InputError(f"cannot build the model its spec describes: {err}", path) from None
    keys = set(model.state_dict())
    state = _strip_prefix(blob.get("state_dict", {}), keys)
    missing = keys - set(state)
    if missing:
        raise InputError(f"checkpoint lacks weights for {sorted(missing)[:5]}...", path)
    # Such a model calls nothing (every probability NaN): refused here, by file, rather than
    # found later as every event of a run 'failed'.
    refuse_nonfinite_weights({k: state[k] for k in keys}, path, diverged)
    try:
        model.load_state_dict({k: state[k] for k in keys})
    except RuntimeError as err:  # weight shapes that do not fit the spec's architecture
        detail = [ln.strip() for ln in str(err).splitlines() if "size mismatch" in ln][:1]
        raise InputError("weights do not fit the architecture in the spec: "
                         f"{(detail or [str(err).splitlines()[0]])[0][:300]}", path) from None
    model.eval()
    return model.to(map_location), spec


def select_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is a clear error."""
    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CtcnetError(f"--device {name} asked for, but no CUDA device is available: use "
                          "--device auto (the GPU where there is one) or cpu")
    return torch.device(name)
