"""Crops an export checks and calibrates on: simulated raw crops of the model's panel and
classes (:func:`simulated_crops`, in an order that covers every class first), the pixels the
ONNX graph is compared with torch on (:func:`verification_crops`), and a lab's labelled crop
folder or ``simulate[:N]`` for an int8 calibration and its gate (:func:`load_labelled_crops`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctcnet.deploy.quantise import LabelledCrops
from ctcnet.detect.crop_dataset import load_crops, read_crop_index
from ctcnet.errors import InputError
from ctcnet.nn.spec import ModelSpec

CALIBRATION_CROPS = 512
EVALUATION_CROPS = 4000
# Simulated calibration/evaluation crops use seed + this offset: far from the seeds the shipped
# model was trained, validated and tested on (0, 1000, 424242 in scripts/train_default_model.py).
CALIBRATION_SEED_OFFSET = 9001


def verification_crops(spec: ModelSpec, count: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """(count, C, S, S) simulated crops in the look the model reads (uint16 raw counts; a
    composite model's exports, :func:`simulated_crops`) and where they come from: of the model's
    classes, or, for a lab's classes the simulator cannot draw (``emt_ctc`` with no subtype
    listed), of its own cells. The check compares the two graphs' outputs on pixels, which
    need no label: a lab's model was refused an export for a simulator it never used."""
    from ctcnet.simulate import undrawn_classes  # scipy

    if undrawn_classes(spec.panel, spec.taxonomy):
        from dataclasses import replace

        from ctcnet.io.taxonomy import load_taxonomy

        spec = replace(spec, taxonomy=load_taxonomy(None))
    simulated = simulated_crops(spec, count, seed)
    return simulated.images, simulated.source


def simulated_crops(spec: ModelSpec, count: int, seed: int = 0) -> LabelledCrops:
    """``count`` labelled simulated crops for this spec's panel, classes and crop size, in the
    look the model reads: a model of composite exports gets simulated exports (its int8 file
    was calibrated and gated on raw counts, which it never reads)."""
    per_class = -(-count // spec.num_classes)
    if spec.reads_exports:
        from ctcnet.evaluation.held_out import tight_export_set  # scipy, PIL

        images, batch = tight_export_set(spec, per_class, seed)
        what = "simulated exports"
    else:
        from ctcnet.simulate import simulate_crops  # scipy

        batch = simulate_crops(per_class, spec.panel, taxonomy=spec.taxonomy,
                               crop_size=spec.crop_size, seed=seed)
        images, what = batch.images, "simulated"
    labels = np.array([spec.taxonomy.index(name) for name in batch.labels], dtype=np.int64)
    order = stratified_order(labels)[:count]
    return LabelledCrops(np.asarray(images)[order], labels[order],
                         f"{what} ({len(order)} crops, seed {seed})")


def stratified_order(labels: np.ndarray) -> np.ndarray:
    """Indices taking one crop of each class in turn, so any prefix covers every class."""
    by_class = np.argsort(labels, kind="stable")
    sorted_labels = labels[by_class]
    rank = np.empty(len(labels), dtype=np.int64)
    rank[by_class] = np.arange(len(labels)) - np.searchsorted(sorted_labels, sorted_labels)
    return np.lexsort((labels, rank))


def load_labelled_crops(source: str | Path | LabelledCrops, spec: ModelSpec,
                        count: int = CALIBRATION_CROPS + EVALUATION_CROPS, seed: int = 0
                        ) -> LabelledCrops:
    """Labelled raw crops from a crop dataset folder, or simulated with ``simulate[:N]``."""
    if isinstance(source, LabelledCrops):
        return source
    text = str(source)
    if text == "simulate" or text.startswith("simulate:"):
        try:
            n = int(text.split(":", 1)[1]) if ":" in text else count
        except ValueError:
            raise InputError(f"calibration {text!r}: use 'simulate' or 'simulate:N'") from None
        if n < 1:
            raise InputError(f"calibration {text!r}: simulate:N draws N crops, 1 or more")
        try:
            return simulated_crops(spec, n, seed + CALIBRATION_SEED_OFFSET)
        except InputError as err:  # a class of the lab's own: the model's taxonomy is fixed
            if "cannot make class" not in str(err):
                raise
            raise InputError(f"{err}; a trained model's taxonomy is its own: give the "
                             "export labelled crops in its place (--int8 CROP_FOLDER, as "
                             "evaluate reads them)") from None

    index = read_crop_index(source, taxonomy=spec.taxonomy).conform(
        spec.panel, what=f"calibration dataset {source}")
    if len(index) > count:
        keep = np.zeros(len(index), bool)
        keep[np.random.default_rng(seed).choice(len(index), count, replace=False)] = True
        index = index.subset(keep)
    return LabelledCrops(load_crops(index, spec.crop_size, spec.pixel_size_um),
                         index.label_indices(spec.taxonomy),
                         f"crop dataset {source} ({len(index)} crops)")
