"""Inference backends by name: which model files each one opens, and its crops per call.

Each backend is registered once with :func:`register_backend`: its name (``--backend``), the
model-file suffixes it opens, and its default batch size per device type. The class that runs
it is bound to the name with the :func:`backend_class` decorator where it is defined
(:mod:`ctcnet.inference.backends`). The records live here, apart from those classes, because
the torch-free scanner runtime (:mod:`ctcnet.inference.onnx_runtime`) reads its batch size and
the CLI its backend names without importing the classes (and through them onnxruntime).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ctcnet.errors import InputError


@dataclass(frozen=True)
class BackendKind:
    """One backend: ``name``, the lower-case ``suffixes`` of the model files it opens, and
    ``batch_sizes``: crops per model call by device type (``cpu``, ``cuda``)."""

    name: str
    suffixes: tuple[str, ...]
    batch_sizes: Mapping[str, int]

    def batch_size(self, device_type: str) -> int:
        """Crops per call on ``device_type``; a device type not listed gets the CPU's."""
        return int(self.batch_sizes.get(device_type, self.batch_sizes["cpu"]))


_KINDS: dict[str, BackendKind] = {}
_CLASSES: dict[str, type] = {}
# A model file whose suffix no backend claims is a torch checkpoint, as ``torch.save`` writes
# any name.
FALLBACK_BACKEND = "torch"


def register_backend(name: str, suffixes: tuple[str, ...],
                     batch_sizes: Mapping[str, int]) -> BackendKind:
    """Record the backend ``name``; ``batch_sizes`` must give the CPU's."""
    if name in _KINDS:
        raise ValueError(f"backend {name!r} is already registered")
    if "cpu" not in batch_sizes:
        raise ValueError(f"backend {name!r}: batch_sizes needs a 'cpu' entry")
    kind = BackendKind(name, tuple(s.lower() for s in suffixes),
                       MappingProxyType(dict(batch_sizes)))
    _KINDS[name] = kind
    return kind


def backend_class(name: str) -> Callable[[type], type]:
    """Decorator: the class that runs the registered backend ``name``, opened as
    ``cls(path, device=..., batch_size=...)``; its ``name`` attribute is the backend's."""
    get_backend(name)

    def bind(cls: type) -> type:
        if getattr(cls, "name", name) != name:
            raise ValueError(f"{cls.__name__}.name is {cls.name!r}, not {name!r}")
        cls.name = name
        _CLASSES[name] = cls
        return cls
    return bind


def list_backends() -> list[str]:
    """The registered backend names, in registration order."""
    return list(_KINDS)


def get_backend(name: str) -> BackendKind:
    """The backend called ``name``; an unknown name lists the registered ones."""
    kind = _KINDS.get(name)
    if kind is None:
        raise InputError(f"unknown backend {name!r}: use one of {', '.join(_KINDS)}")
    return kind


def backend_for_path(path: str | Path) -> BackendKind:
    """The backend that opens ``path``, by its suffix (:data:`FALLBACK_BACKEND` for others)."""
    suffix = Path(path).suffix.lower()
    for kind in _KINDS.values():
        if suffix in kind.suffixes:
            return kind
    return _KINDS[FALLBACK_BACKEND]


def opener(name: str) -> type:
    """The class bound to backend ``name`` (:func:`backend_class`)."""
    get_backend(name)
    if name not in _CLASSES:
        raise InputError(f"backend {name!r} is registered but nothing runs it here")
    return _CLASSES[name]


def checked_backend(backend, where: str = "backend"):
    """``backend`` where it is a loaded model (:func:`ctcnet.load_backend`'s, whose ``spec``
    is a model spec); otherwise the refusal naming what to pass: a model's name or file, or
    the torch-free ``OnnxClassifier`` for instrument software (its spec a plain mapping),
    failed deep inside with an AttributeError; and the network ``ctcnet.load_model`` gives
    (a spec of its own, but no crops' checks nor batches: said to take a tensor)."""
    spec = getattr(backend, "spec", None)
    network = type(backend).__name__ == "CTCClassifier"  # (torch's: not imported here)
    if spec is not None and hasattr(spec, "class_names") and not network:
        return backend
    if network:
        named, what = None, "the network ctcnet.load_model gives (for training and export)"
    elif type(backend).__name__ == "OnnxClassifier":
        named = backend.path
        what = "ctcnet.OnnxClassifier, the runtime for software without ctcnet's pipeline"
    else:
        named, what = backend, type(backend).__name__
    given = "" if named is None else repr(str(named))
    raise InputError(f"{where}: a loaded model, ctcnet.load_backend({given}) (it opens an ONNX "
                     f"file without torch too), not {what}")


def default_batch_size(backend: str, device_type: str) -> int:
    """Crops per model call of ``backend`` on ``device_type`` (``cpu``, ``cuda``)."""
    return get_backend(backend).batch_size(device_type)


# torch eager needs large batches on a CPU to amortise its per-call cost.
register_backend("torch", (".pt", ".ckpt", ".pth"), {"cpu": 64, "cuda": 1024})
# onnxruntime is fastest at small CPU batches because the normalisation's elementwise passes
# stay in cache (one thread: 2,300 crops/s at batch 8, 2,030 at 64, 1,790 at 256;
# docs/benchmarks.md).
register_backend("onnx", (".onnx",), {"cpu": 8, "cuda": 1024})
