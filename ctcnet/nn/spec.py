"""The model spec: everything needed to rebuild a model and its preprocessing from one file.

It travels in every checkpoint (``checkpoint["ctcnet_spec"]``) and every ONNX file (metadata
key ``ctcnet_spec``, JSON), so inference never guesses the channels, classes, crop size, pixel
size or normalisation. Plain data only, so checkpoints load with ``weights_only=True``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import Any

from ctcnet import __version__
from ctcnet.errors import InputError
from ctcnet.io.panel import Panel
from ctcnet.io.taxonomy import Taxonomy
from ctcnet.nn.decision_rule import DecisionRule

SPEC_FORMAT = 1
# Where the spec lives: the checkpoint dict key and the ONNX metadata key.
SPEC_KEY = "ctcnet_spec"
# The top probability below which a call goes to review, for a spec that states none.
DEFAULT_REVIEW_THRESHOLD = 0.9
# Test-time symmetries (``ctcnet.nn.symmetry``) and how many views of a crop each averages over.
SYMMETRIES = {"none": 1, "rot4": 4, "d4": 8}


@dataclass(frozen=True)
class ModelSpec:
    """What a model is: enough to rebuild the network and its preprocessing from one file.

    Frozen; :meth:`replace` makes a changed copy. :meth:`check` refuses values no working model
    has; :meth:`from_dict` runs it on every spec it reads.

    Parameters
    ----------
    arch : str
        Architecture name in the network registry (``"compact"``, ``"resnet18"``, ...).
    panel : Panel
        The channels the model reads, by name and in order, with their value ranges,
        normalisation and the pixel size it was trained at.
    taxonomy : Taxonomy
        The classes it outputs, in order, and which of them the summary reports.
    crop_size : int, default 80
        Side of the square input crop, in pixels (8 to 1024).
    arch_kwargs : dict, optional
        Extra keyword arguments for the architecture's constructor.
    temperature : float, default 1.0
        Softmax temperature fitted on validation data; 1.0 is uncalibrated.
    review_threshold : float, default 0.9
        Top probability below which a call goes to human review.
    decision : DecisionRule, optional
        The decision rule at deployment prevalence (:mod:`ctcnet.nn.calls`); the default,
        balanced, calls the most probable class. Stored as its plain dict
        (:meth:`DecisionRule.to_dict`).
    symmetry : {"none", "rot4", "d4"}, default "none"
        Test-time views whose logits are averaged.
    training, metrics : dict, optional
        The training-data summary and hyper-parameters, and the last validation metrics
        (recorded, never read back to rebuild the model).
    version : str
        The ctcnet version that wrote the spec.
    """

    arch: str
    panel: Panel
    taxonomy: Taxonomy
    crop_size: int = 80
    arch_kwargs: dict = field(default_factory=dict)
    # Softmax temperature fitted on validation data (calibration); 1.0 = uncalibrated.
    temperature: float = 1.0
    # Top-probability threshold below which a call goes to human review.
    review_threshold: float = DEFAULT_REVIEW_THRESHOLD
    # The decision rule at deployment prevalence (``ctcnet.nn.calls``): per-class log weights
    # added to the log probabilities before the call, fitted on simulated cartridges by
    # ``scripts/fit_decision.py``; balanced = the most probable class (balanced training).
    decision: DecisionRule = field(default_factory=DecisionRule.balanced)
    # Test-time symmetry (``ctcnet.nn.symmetry``): logits averaged over the crop's quarter turns
    # ("rot4") and mirror images ("d4"), or one view ("none").
    symmetry: str = "none"
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    version: str = __version__

    def __post_init__(self):
        if not isinstance(self.decision, DecisionRule):  # a spec's dict is read by from_dict
            raise TypeError("ModelSpec.decision is a DecisionRule, not "
                            f"{type(self.decision).__name__} (DecisionRule.from_dict reads one)")

    @property
    def pixel_size_um(self) -> float:
        """The pixel size the model was trained at (the panel's), in micrometres."""
        return self.panel.pixel_size_um

    @property
    def compensated_input(self) -> bool:
        """Trained on crops with CK's spillover taken off per sample (``data.compensate``):
        predict, evaluate and robustness then take it off too unless told otherwise."""
        data = (self.training or {}).get("data") or {}
        return bool(data.get("compensate", False))

    @property
    def reads_exports(self) -> bool:
        """Trained on 8-bit composite exports only (``data.view: export``): it is chosen for
        composite data (RGB exports) and never for scans, which it was not trained to read."""
        data = (self.training or {}).get("data") or {}
        return data.get("view") == "export"

    @property
    def in_chans(self) -> int:
        """How many input channels the model reads."""
        return self.panel.num_channels

    @property
    def num_classes(self) -> int:
        """How many classes the model outputs."""
        return self.taxonomy.num_classes

    @property
    def class_names(self) -> list[str]:
        """The class names, in output order."""
        return self.taxonomy.names

    def replace(self, **changes) -> ModelSpec:
        """A copy of the spec with ``changes`` applied (the spec is frozen)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The spec as plain data, as it is stored in checkpoints and ONNX metadata."""
        return {
            "format": SPEC_FORMAT,
            "arch": self.arch,
            "arch_kwargs": dict(self.arch_kwargs),
            "panel": self.panel.to_dict(),
            "taxonomy": self.taxonomy.to_dict(),
            "crop_size": int(self.crop_size),
            "pixel_size_um": float(self.pixel_size_um),
            "temperature": float(self.temperature),
            "review_threshold": float(self.review_threshold),
            "decision": self.decision.to_dict(),
            "symmetry": self.symmetry,
            "training": self.training,
            "metrics": self.metrics,
            "version": self.version,
        }

    def to_json(self) -> str:
        """The spec as JSON with sorted keys (the ONNX metadata value)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str | None = None) -> ModelSpec:
        """Read a spec from :meth:`to_dict`'s output; an ``InputError`` for a file that holds
        none, one from a newer ctcnet or bad values."""
        if not isinstance(data, dict) or "arch" not in data or "panel" not in data:
            raise InputError("no ctcnet model spec found (is this a ctcnet model?)", source)
        if not isinstance(data.get("format", 1), int) or data.get("format", 1) > SPEC_FORMAT:
            raise InputError(f"model spec format {data['format']} is newer than this ctcnet "
                             f"understands ({SPEC_FORMAT}); upgrade ctcnet", source)
        try:
            spec = cls(
                arch=str(data["arch"]),
                arch_kwargs=dict(data.get("arch_kwargs", {})),
                panel=Panel.from_dict(data["panel"], source),
                taxonomy=Taxonomy.from_dict(data["taxonomy"], source, stored=True),
                crop_size=int(data.get("crop_size", 80)),
                temperature=float(data.get("temperature", 1.0)),
                review_threshold=float(data.get("review_threshold",
                                                DEFAULT_REVIEW_THRESHOLD)),
                symmetry=str(data.get("symmetry", "none")),
                training=dict(data.get("training", {})),
                metrics=dict(data.get("metrics", {})),
                version=str(data.get("version", "unknown")),
            )
        except (TypeError, ValueError, KeyError) as err:  # e.g. crop_size "80px", no taxonomy
            raise InputError(f"model spec has a bad value: {type(err).__name__}: {err}",
                             source) from None
        spec.check(source)
        # The rule last, as check() refuses it last: its classes are the taxonomy's.
        return spec.replace(decision=DecisionRule.from_dict(data.get("decision"),
                                                            spec.class_names, source))

    def check(self, source: str | None = None) -> None:
        """Refuse values no working model has: they would crash or give NaN much later."""
        if not 8 <= self.crop_size <= 1024:
            raise InputError(f"model spec: crop_size {self.crop_size} is not 8 to 1024 px", source)
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise InputError(f"model spec: temperature {self.temperature} must be a positive "
                             "number (0 turns every probability into NaN)", source)
        if not 0.0 <= self.review_threshold <= 1.0:
            raise InputError(f"model spec: review_threshold {self.review_threshold} is not a "
                             "probability", source)
        if self.symmetry not in SYMMETRIES:
            raise InputError(f"model spec: symmetry {self.symmetry!r} is not one of "
                             f"{sorted(SYMMETRIES)}", source)

        self.decision.check(self.class_names, source)

    @classmethod
    def from_json(cls, text: str, source: str | None = None) -> ModelSpec:
        """Read a spec from :meth:`to_json`'s output; an ``InputError`` when it is not valid
        JSON."""
        try:
            data = json.loads(text)
        except ValueError as err:
            raise InputError(f"model spec is not valid JSON: {err}", source) from None
        return cls.from_dict(data, source)
