"""The marker outputs of an ONNX export (:class:`ctcnet.deploy.graph.OnnxGraph` with
``markers``): what the metadata says of them (``marker_measurements``) and their check against
the torch graph that was exported.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ctcnet.deploy.marker_graph import COLUMNS
from ctcnet.errors import CtcnetError, InputError
from ctcnet.inference.guard.rules import DOUBTED_CALLS, MARKERS_DEBRIS_CTC, MISSED_CTC_CALLS
from ctcnet.inference.marker_fusion import marker_fusion_of, scan_fusion_of
from ctcnet.inference.onnx_runtime import (
    FUSED_OUTPUT,
    INPUT_NAME,
    MARKERS_KEY,
    OUTPUT_NAMES,
    SCAN_FUSED_OUTPUT,
    OnnxClassifier,
)
from ctcnet.nn.spec import ModelSpec

# Allowed |difference| of the graph's measurements and fused probabilities against torch's
# (atol, rtol): float32 sums in another order; NaN must stand where NaN stands.
MARKER_TOLERANCE = (1e-3, 1e-3)
MARKERS_FORMAT = 1
# Tolerances of the fused probabilities of an fp16 backbone: (atol, rtol).
FP16_FUSED_TOLERANCE = (2e-2, 2e-2)


def fusion_digest(fusion: dict | None) -> str | None:
    """SHA-256 of a marker fusion's plain mapping (None: none)."""
    if fusion is None:
        return None
    return hashlib.sha256(json.dumps(fusion, sort_keys=True).encode("utf-8")).hexdigest()


def markers_record(graph, spec: ModelSpec) -> dict:
    """What the metadata says of a graph's marker outputs (``MARKERS_KEY``): the columns, the
    guard rules they were measured with, the flood fill's steps, and digests of the fusions
    baked into the graph (a spec whose fusion differs needs a new export)."""
    return {"format": MARKERS_FORMAT, "columns": list(COLUMNS),
            "fused": graph.fusion is not None,
            "fusion_sha256": fusion_digest(marker_fusion_of(spec))
            if graph.fusion is not None else None,
            "scan_fused": graph.scan_fusion is not None,
            "scan_fusion_sha256": fusion_digest(scan_fusion_of(spec))
            if graph.scan_fusion is not None else None,
            "flood_steps": graph.markers.flood_steps,
            "rules": asdict(graph.markers.rules),
            # The rules of the markers' own call that a port applies after the graph (from
            # ctcnet.inference.guard.rules), so that it need not copy them from our code.
            "call_rules": {"markers_debris_ctc": MARKERS_DEBRIS_CTC,
                           "missed_ctc_calls": list(MISSED_CTC_CALLS),
                           "doubted_calls": list(DOUBTED_CALLS)},
            "units": MEASUREMENT_UNITS,
            "measured_on": "raw crops as given, not compensated (a model of scans: the guard's "
                           "scan rules; a model of display exports: its export rules, as "
                           "ctcnet predict reads a folder of them)"}


# Each measurement column's unit, as a port reads it (ctcnet.inference.guard.measure says
# how each is taken). Noise units: counts over the crop's robust background (its 10th and
# 30th percentiles, as the network's normalisation reads them), divided by its noise there.
MEASUREMENT_UNITS = {
    "ck_peak": "CK noise units (the brightest 3x3 mean within the guard's radius)",
    "ck_area": "pixels of the model's crop (crop_size at pixel_size_um)",
    "dna_in_ck": "DNA noise units (the brightest inside the CK area)",
    "dna_own_structure": "share of the pixel noise (DNA's structure once the best copy of CK "
                         "is taken off)",
    "ck_own_structure": "share of the pixel noise (CK's structure once the best copy of DNA "
                        "is taken off)",
    "cd45_over_ck": "CD45 noise units (upper quartile over the CK area, leaks taken off)",
    "cd45_core": "CD45 noise units (over the CK area's core, leaks taken off)",
    "exclusion_around_ck": "noise units of the exclusion markers (the highest upper quartile "
                           "round the CK area, leaks taken off)",
    "partner_um2": "square micrometres (of the band round the CK area an exclusion marker "
                   "lights)",
    "cd45_peak": "CD45 noise units (the brightest 3x3 mean in the disk)",
    "cd45_over_cell": "CD45 noise units (upper quartile over the cell's core, leaks taken off; "
                      "only on a crop without a CK area, NaN elsewhere)",
    "cd45_at_ceiling": "share of the CK area (of the cell's core without one) where CD45 "
                       "reaches its channel's ceiling",
    "area_unfinished": "1 where the CK area's flood fill was cut short, else 0",
}


def verify_markers(graph, onnx_path: Path, crops: np.ndarray,
                   precision: str = "fp32") -> dict:
    """Run the marker outputs of the ONNX file and of the torch graph on the same raw crops:
    the max |difference| per output (NaN where both are NaN counts as equal); raises
    ``CtcnetError`` where one is over ``MARKER_TOLERANCE`` or NaN stands in one only."""
    x = np.ascontiguousarray(crops, np.float32)
    expected = graph.outputs_of(x)
    names = graph.output_names
    got = OnnxClassifier(onnx_path).session.run(names, {INPUT_NAME: x})
    record = {"batch": len(x)}
    for name, a in zip(names, got):
        b = expected[name]
        if name in OUTPUT_NAMES:
            continue
        # The fused probabilities carry the backbone's precision; the measurements are fp32.
        atol, rtol = FP16_FUSED_TOLERANCE \
            if name in (FUSED_OUTPUT, SCAN_FUSED_OUTPUT) and precision != "fp32" \
            else MARKER_TOLERANCE
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        same_nan = np.isnan(a) == np.isnan(b)
        both = ~np.isnan(a) & ~np.isnan(b)
        diff = float(np.abs(a - b)[both].max()) if both.any() else 0.0
        record[f"max_abs_{name}_diff"] = diff
        if not same_nan.all() or not (np.abs(a - b)[both] <= atol + rtol * np.abs(b)[both]).all():
            raise CtcnetError(f"exported {name} disagree with torch: max |diff| {diff:.3g}, "
                              f"{int((~same_nan).sum())} NaN in one only")
    return record


def carried_markers(metadata: dict[str, str], spec: ModelSpec, onnx_path: Path,
                    model_path: Path) -> dict[str, str]:
    """The marker metadata a restamped export keeps (none where it has no markers). The
    fusions' weights are in the graph: a spec that now carries another fusion than one the
    graph computes is refused (re-export). A fusion the graph does not compute is the
    runtime's to warn of (:meth:`OnnxClassifier.calls`)."""
    if MARKERS_KEY not in metadata:
        return {}
    baked = json.loads(metadata[MARKERS_KEY])
    for kind, fused, digest, fusion in (
            ("marker", "fused", "fusion_sha256", marker_fusion_of(spec)),
            ("cartridge", "scan_fused", "scan_fusion_sha256", scan_fusion_of(spec))):
        if baked.get(fused) and baked.get(digest) != fusion_digest(fusion):
            raise InputError(f"{onnx_path.name} computes another {kind} fusion than "
                             f"{model_path.name} now carries (re-export: ctcnet export "
                             f"{model_path} --markers)", onnx_path)
    return {MARKERS_KEY: metadata[MARKERS_KEY]}
