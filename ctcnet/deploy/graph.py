"""What an exported ONNX file computes (:class:`OnnxGraph`): the classifier from raw counts to
calibrated probabilities, normalisation and test-time symmetry included, and with the markers
the guard's measurements and the marker fusions' posteriors beside it, batched with the
network. :mod:`ctcnet.deploy.export` exports it and checks the file against it.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ctcnet.deploy.marker_graph import FusionHead, MarkerGraph
from ctcnet.deploy.scan_fusion_graph import ScanFusionHead
from ctcnet.inference.guard.rules import RULES
from ctcnet.inference.marker_fusion import marker_fusion_of, scan_fusion_of
from ctcnet.inference.onnx_runtime import (
    FUSED_OUTPUT,
    MEASUREMENTS_OUTPUT,
    OUTPUT_NAMES,
    SCAN_FUSED_OUTPUT,
)
from ctcnet.nn.classifier import CTCClassifier
from ctcnet.nn.symmetry import symmetric_logits


class OnnxGraph(nn.Module):
    """What the ONNX file computes: raw counts -> (logits, calibrated probabilities), and with
    ``markers`` the guard's measurements (and the fused probabilities of each marker fusion
    the spec carries: the crop sets', the cartridges') of the same crops.

    With ``half=True`` the backbone runs in float16 while the normalisation stays float32 (raw
    16-bit counts overflow float16 and percentiles need the full precision); the measurements
    are float32 (float64 where numpy computes so) whatever the backbone's precision.
    """

    def __init__(self, classifier: CTCClassifier, half: bool = False, markers: bool = False):
        super().__init__()
        self.normalise = classifier.normalise
        self.net = copy.deepcopy(classifier.net).half() if half else classifier.net
        self.half = half
        spec = classifier.spec
        self.temperature = float(spec.temperature)
        self.symmetry = spec.symmetry
        # Measured as predict measures the crops the model reads: a model of display exports,
        # whose every input is one, at the guard's export levels (the scan's levels read
        # CD45 over 70 of 100 composites otherwise, and a port lost half their CTCs).
        self.markers = MarkerGraph(spec.panel, spec.crop_size, spec.pixel_size_um,
                                   RULES.for_crops(spec.reads_exports)) if markers else None
        fusion = marker_fusion_of(spec) if markers else None
        self.fusion = FusionHead(fusion, spec.class_names) if fusion else None
        scan = scan_fusion_of(spec) if markers else None
        self.scan_fusion = ScanFusionHead(scan, spec.class_names, spec.panel) if scan else None

    @property
    def output_names(self) -> list[str]:
        """The graph's outputs, in order."""
        extra = ([FUSED_OUTPUT] if self.fusion is not None else []) + \
            ([SCAN_FUSED_OUTPUT] if self.scan_fusion is not None else []) + \
            ([MEASUREMENTS_OUTPUT] if self.markers is not None else [])
        return [*OUTPUT_NAMES, *extra]

    def forward(self, raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(logits, probabilities[, fused][, scan fused][, measurements]) of raw counts
        (symmetry-averaged)."""
        x = self.normalise(raw)
        logits = symmetric_logits(lambda v: self.net(v.half() if self.half else v).float(), x,
                                  self.symmetry)
        proba = torch.softmax(logits / self.temperature, dim=1)
        if self.markers is None:
            return logits, proba
        measured = self.markers(raw)
        fused = [head(proba, measured) for head in (self.fusion, self.scan_fusion)
                 if head is not None]
        return logits, proba, *fused, measured

    def outputs_of(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Each output (:attr:`output_names`) of raw (N, C, S, S) crops, as numpy arrays by
        name: what the exported file should give them (its checks and references)."""
        with torch.inference_mode():
            out = self.eval()(torch.from_numpy(np.ascontiguousarray(raw, np.float32)))
        return {name: t.numpy() for name, t in zip(self.output_names, out)}
