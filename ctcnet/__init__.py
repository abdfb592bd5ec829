"""ctcnet: find and type circulating tumour cells in multichannel fluorescence scans.

The package follows the pipeline, one subpackage per stage:

    io/ -> detect/ -> nn/ -> inference/ -> report/      (frames -> events -> crops -> calls -> page)
    simulate/ (training data)   training/   evaluation/   deploy/ (ONNX)   commands/ (the CLI)

What users import is re-exported here lazily (``from ctcnet import load_model``), so that
``import ctcnet`` stays cheap and the ONNX runtime path never pulls in torch. The module names of
the first release's flat layout (``ctcnet.runtime``, ``ctcnet.model``, ...) still import, as
aliases of their new homes.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

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
    "ModelSpec": "ctcnet.nn.spec",
    "CTCClassifier": "ctcnet.nn.classifier",
    "load_model": "ctcnet.nn.classifier",
    "save_model": "ctcnet.nn.classifier",
    "create_model": "ctcnet.nn.nets",
    "load_backend": "ctcnet.inference.backends",
    "predict_cartridge": "ctcnet.inference.predict",
    "predict_inputs": "ctcnet.inference.predict",
    "OnnxClassifier": "ctcnet.deploy.runtime",
    "simulate_crops": "ctcnet.simulate",
    "SimConfig": "ctcnet.simulate",
}

# The first release's flat module names -> where they live now.
_MOVED = {
    "fileutil": "io.atomic", "panel": "io.panel", "taxonomy": "io.taxonomy",
    "imageio": "io.images", "scan": "io.scan", "crops": "detect.crop_dataset",
    "detect": "detect.detection", "cropping": "detect.cropping",
    "nets": "nn.nets", "normalize": "nn.normalise", "model": "nn.classifier", "spec": "nn.spec",
    "backends": "inference.backends", "predict": "inference.predict",
    "distributed": "inference.distributed", "report": "report.review",
    "metrics": "evaluation.metrics", "features": "evaluation.features",
    "baselines": "evaluation.baselines", "calibration": "evaluation.calibration",
    "saliency": "nn.saliency", "evaluate": "evaluation.evaluate",
    "plots": "evaluation.plots", "augment": "simulate.augment",
    "datamodule": "training.datamodule", "lit": "training.lit", "training": "training.cli",
    "export": "deploy.export", "quantize": "deploy.quantise", "runtime": "deploy.runtime",
}
# Names that are now packages themselves keep their package meaning.
_MOVED = {k: v for k, v in _MOVED.items() if k not in {"detect", "report"}}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Lets ``import ctcnet.runtime`` (an old name) return ``ctcnet.deploy.runtime``."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return importlib.import_module(f"{__name__}.{_MOVED[spec.name.partition('.')[2]]}")

    def exec_module(self, module):  # the real module is already executed
        pass


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _MOVED:
        return importlib.import_module(f"{__name__}.{_MOVED[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)
