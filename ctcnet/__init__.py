"""ctcnet: find and type circulating tumour cells in multichannel fluorescence scans.

The package follows the pipeline, one subpackage per stage:

    io/ -> detect/ -> nn/ -> inference/ -> report/      (frames -> events -> crops -> calls -> page)
    review_server/ (the review page)   review/ (its decisions)   exports/ (events for other tools)
    simulate/ (training data)   training/   evaluation/   deploy/ (ONNX)   commands/ (the CLI)

What users import is re-exported here lazily (``from ctcnet import load_model``), so that
``import ctcnet`` stays cheap and the ONNX runtime path never pulls in torch; docs/python.md
shows the entry points in use (``load_backend``, ``predict_inputs``, ``predict_cartridge``,
``OnnxClassifier``). On an install without torch (``pip install .``) the names that need it
are left out of ``__all__``, so ``help(ctcnet)`` and ``from ctcnet import *`` work there, and
asked for by name they say which install gives them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

__version__ = "0.1.0"

# onnxruntime (1.32 and others) records a device id and usage events under
# ~/.cache/Microsoft/DeveloperTools unless told not to when it is imported: a lab's patient
# scans are run without it. A user who sets ORT_DISABLE_TELEMETRY keeps their own choice.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

# Public API: name -> module that defines it.
_EXPORTS = {
    "InputError": "ctcnet.errors",
    "PanelMismatchError": "ctcnet.errors",
    "CtcnetError": "ctcnet.errors",
    "Panel": "ctcnet.io.panel",
    "load_panel": "ctcnet.io.panel",
    "Taxonomy": "ctcnet.io.taxonomy",
    "load_taxonomy": "ctcnet.io.taxonomy",
    "read_image": "ctcnet.io.images",
    "open_cartridge": "ctcnet.io.scan",
    "read_crop_index": "ctcnet.detect.crop_dataset",
    "load_crops": "ctcnet.detect.crop_dataset",
    "detect_events": "ctcnet.detect.detection",
    "extract_crops": "ctcnet.detect.cropping",
    "ModelSpec": "ctcnet.nn.spec",
    "CTCClassifier": "ctcnet.nn.classifier",
    "load_model": "ctcnet.nn.classifier",
    "save_model": "ctcnet.nn.classifier",
    "create_model": "ctcnet.nn.nets",
    "load_backend": "ctcnet.inference.backends",
    "predict_cartridge": "ctcnet.inference.predict",
    "predict_inputs": "ctcnet.inference.predict",
    "call_crops": "ctcnet.inference.crop_calls",
    "PredictOptions": "ctcnet.inference.options",
    "OnnxClassifier": "ctcnet.deploy.runtime",
    "simulate_crops": "ctcnet.simulate",
    "SimConfig": "ctcnet.simulate",
}

# The names whose modules import torch at their top (the network itself).
_NEEDS_TORCH = {"CTCClassifier", "load_model", "save_model", "create_model"}


def _torch_installed() -> bool:
    """Whether torch can be imported, looked up and not imported (finding the package costs
    nothing like importing it); a module set to None in sys.modules, or a finder that refuses
    it, is one blocked (as the torch-free install's tests run)."""
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


_HAS_TORCH = _torch_installed()
_AVAILABLE = {name for name in _EXPORTS if _HAS_TORCH or name not in _NEEDS_TORCH}


def __getattr__(name: str):
    if name in _AVAILABLE:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _EXPORTS:
        from ctcnet.core.install_hint import install_command

        raise ImportError(f"ctcnet.{name} needs torch, which this install lacks: "
                          f"{install_command('all')} (the ONNX runtime, ctcnet.OnnxClassifier and "
                          "ctcnet.load_backend, runs without it)")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _AVAILABLE)


__all__ = sorted(_AVAILABLE)
