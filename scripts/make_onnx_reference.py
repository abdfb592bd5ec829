"""Write the ONNX port reference: a few raw crops and what the shipped model must return.

A port (C++, C#, Node with onnxruntime-node, ...) runs the shipped ``.onnx`` file unchanged on
``crops.u16.gz`` and compares with ``expected.json`` (see docs/deploying.md, "Checking a port").
Crops are simulated for the model's panel (one per class), plus a copy of the first with one NaN
pixel to check the per-crop finiteness rule. ``expected.json``'s ``markers`` holds what an export
of the same checkpoint with ``--markers`` gives on them beside the network (the measurements and
the cartridge fusion's posterior), computed by the torch graph it is exported from (the export
checks itself against that graph), so a port of a markers export has a reference too. Rerun
after retraining the shipped model or changing the guard's measurements:

    python scripts/make_onnx_reference.py [--model models/ctcnet-default.onnx] [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "data" / "onnx_reference"


def reference_crops(spec, seed: int = 7) -> np.ndarray:
    """One simulated crop per class (a nominal scanner), uint16 raw counts (N, C, S, S)."""
    from ctcnet.simulate import SimConfig, simulate_crops

    batch = simulate_crops(1, spec.panel, spec.taxonomy, spec.crop_size, seed=seed,
                           config=SimConfig.clean(), num_samples=1)
    return np.clip(np.rint(batch.images), 0, 65535).astype(np.uint16), list(batch.labels)


def markers_reference(checkpoint: Path, raw: np.ndarray) -> dict:
    """What an export of ``checkpoint`` with the markers gives on the finite crops ``raw``
    beyond the network: its measurement columns and, per crop, the measurements (None for
    NaN) and each fused output (the torch graph the export is made of and checked against,
    :class:`ctcnet.deploy.graph.OnnxGraph`)."""
    from ctcnet.deploy.graph import OnnxGraph
    from ctcnet.deploy.marker_graph import COLUMNS
    from ctcnet.deploy.markers import MARKER_TOLERANCE
    from ctcnet.deploy.runtime import MARKER_OUTPUTS, MEASUREMENTS_OUTPUT
    from ctcnet.nn.classifier import load_model

    graph = OnnxGraph(load_model(checkpoint)[0], markers=True)
    out = graph.outputs_of(raw)
    fused = [name for name in graph.output_names
             if name in MARKER_OUTPUTS and name != MEASUREMENTS_OUTPUT]

    def plain(values):
        return [None if not np.isfinite(v) else round(float(v), 6) for v in values]

    return {"columns": list(COLUMNS), "outputs": fused,
            "tolerance": {"abs": MARKER_TOLERANCE[0], "rel": MARKER_TOLERANCE[1]},
            "crops": [{"index": i, MEASUREMENTS_OUTPUT: plain(out[MEASUREMENTS_OUTPUT][i]),
                       **{name: plain(out[name][i]) for name in fused}}
                      for i in range(len(raw))]}


def main() -> int:
    """Run the shipped ONNX model on the reference crops and write them with its outputs; returns
    the exit status."""
    from ctcnet.deploy.runtime import DIGEST_KEY, OnnxClassifier
    from ctcnet.inference.backends import default_model_path
    from ctcnet.io.atomic import atomic_write_bytes, atomic_write_text
    from ctcnet.nn.calls import calls_from_proba, decision_weights

    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    model = args.model or default_model_path("onnx")
    clf = OnnxClassifier(model, providers=["CPUExecutionProvider"])
    crops, labels = reference_crops(clf.to_model_spec())
    raw = np.concatenate([crops, crops[:1]]).astype(np.float32)
    raw[-1, 1, clf.crop_size // 2, clf.crop_size // 2] = np.nan  # the finiteness-rule case
    logits, proba = clf.run(raw)
    decision = clf.decision  # the deployment-prevalence rule, if any
    called, confidence, review, failed = calls_from_proba(proba, clf.classes,
                                                          clf.review_threshold, decision)
    rows = []
    for i in range(len(raw)):
        rows.append({
            "index": i,
            "source": f"crops.u16.gz[{i}]" if i < len(crops) else
            f"crops.u16.gz[0] as float32 with channel 1, pixel ({clf.crop_size // 2}, "
            f"{clf.crop_size // 2}) set to NaN",
            "simulated_class": labels[i] if i < len(crops) else labels[0],
            "logits": None if failed[i] else [round(float(v), 6) for v in logits[i]],
            "probabilities": None if failed[i] else [round(float(v), 6) for v in proba[i]],
            "call": str(called[i]), "review": bool(review[i])})
    expected = {
        "model_file": Path(model).name, "ctcnet_digest": clf.metadata[DIGEST_KEY],
        "channels": clf.channels, "classes": clf.classes, "crop_size": clf.crop_size,
        "review_threshold": clf.review_threshold,
        "decision_log_weights": decision_weights(decision),
        "crops_file": {"name": "crops.u16.gz", "encoding": "gzip of raw little-endian uint16, "
                       "C order", "shape": list(crops.shape)},
        "tolerance": {"probabilities_abs": 1e-4, "logits_abs": 1e-3},
        "crops": rows,
        "markers": markers_reference(Path(model).with_suffix(".pt"), crops.astype(np.float32))}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "crops.u16.gz",
                       gzip.compress(crops.astype("<u2").tobytes(), compresslevel=9, mtime=0))
    atomic_write_text(args.out / "expected.json", json.dumps(expected, indent=1) + "\n")
    size = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"{len(rows)} reference crops for {model} -> {args.out} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
