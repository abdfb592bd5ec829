"""A model file recalibrated on a lab's labelled crops (``ctcnet evaluate --calibrate-on``),
and what its making records and its reports say of it."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ctcnet.core.paths import absolute
from ctcnet.detect.crop_dataset import load_crops, read_crop_index
from ctcnet.errors import InputError
from ctcnet.evaluation.test_set import crops_learnt_from
from ctcnet.inference.backends import TorchBackend
from ctcnet.io.atomic import refuse_overwriting_inputs
from ctcnet.io.taxonomy import as_class_name
from ctcnet.nn.spec import ModelSpec

log = logging.getLogger(__name__)


def calibrate_model_file(model_path, val_data, out_path, target: float = 0.99,
                         device: str = "auto", batch_size: int = 256,
                         pixel_size: float | str | None = None,
                         expected: list[str] | None = None) -> ModelSpec:
    """Fit temperature and review threshold on a validation crop folder; save the model. Under
    100 crops the fit is pooled with simulated crops (:mod:`ctcnet.evaluation.recalibration`),
    and what the crops guarantee is recorded in ``spec.metrics["calibration"]``.
    ``pixel_size``: the crops' where their panel.json does not state it (as ``--pixel-size``:
    um per pixel, ``auto`` or ``fit``); ``expected``: the classes the crops to be scored hold
    (a class of them the calibration crops hold too few of is pooled, however many they are)."""
    from ctcnet.evaluation.recalibration import (
        lab_guard,
        recalibrate_spec,
        reference_crops,
    )
    from ctcnet.nn.classifier import save_model  # torch

    refuse_overwriting_inputs(out_path, [model_path], "--save-model")
    backend = TorchBackend(model_path, device=device, batch_size=batch_size)
    model, spec = backend.model, backend.spec
    index = read_crop_index(val_data, taxonomy=spec.taxonomy, pixel_size=pixel_size).conform(
        spec.panel, "validation data")
    crops = load_crops(index, spec.crop_size, spec.pixel_size_um, fitting=True)
    seen = crops_learnt_from(spec, crops)
    if seen.any():  # a model is surer of crops it learnt from: a threshold set lower on them
        log.warning("%s: %d of its %d calibration crops are, pixel for pixel, crops this model "
                    "was trained, fine-tuned or calibrated on: the temperature, the review "
                    "threshold and the guarantee fitted on them are optimistic; calibrate on "
                    "crops kept apart", val_data, int(seen.sum()), len(crops))
    logits = backend.predict_logits(crops)
    labels = index.label_indices(spec.taxonomy)

    def reference():  # the simulator's crops, drawn only where the lab's cannot fit alone
        images, ref_labels = reference_crops(spec)
        return backend.predict_logits(images), ref_labels

    try:
        spec = recalibrate_spec(spec, logits, labels, target, reference, None if expected is None
                                else [as_class_name(label, spec.class_names)
                                      for label in expected])  # (a CTC/ folder is ctc)
    except ValueError as err:  # under the floor (the command refuses that before any work), or
        # crops all called right that no pool bounds
        raise InputError(str(err), val_data) from None
    spec, leaks = lab_guard(spec, index, crops, labels)  # the guard made the lab's too
    spec = spec.replace(metrics={**spec.metrics, "leaks": leaks})
    if spec.decision is not None:  # the band was measured on the base's calibrated calls
        spec = spec.replace(decision=spec.decision.with_band_kept(
            Path(model_path).stem, "a recalibration on a lab's crops", drop_fusion=False))
    made = recalibration_record(model_path, val_data, crops, backend.spec.temperature)
    spec = spec.replace(training={**(spec.training or {}), "recalibration": made},
                        version=made["software"]["ctcnet"])  # (the spec's writer: this ctcnet)
    model.spec = spec
    save_model(out_path, model.cpu(), spec)
    from ctcnet.evaluation.recalibration_card import write_recalibration_card
    from ctcnet.nn.classifier import drop_stale_export

    write_recalibration_card(out_path, spec)  # (the card an earlier model there had replaced)
    drop_stale_export(out_path, "recalibration")  # ... and its export, not this model's
    return spec


def recalibration_record(model_path, val_data, crops: np.ndarray,
                         from_temperature: float | None = None) -> dict:
    """What a recalibrated model file records of its making: the model it was made from (by
    digest) and its temperature (the same network's: its calibration is scored beside the
    new one), the crop folder and its crops (``learnt_from``: their fingerprints, so that a
    model scored on its own calibration crops is warned of, as one scored on its training
    crops is), the software and when."""
    from ctcnet.core.provenance import made_now
    from ctcnet.detect.crop_fingerprints import crop_fingerprints, packed
    from ctcnet.io.digests import file_sha256

    return {"from": absolute(model_path), "from_sha256": file_sha256(model_path),
            **({"from_temperature": float(from_temperature)}
               if from_temperature is not None else {}),
            "data_dir": absolute(val_data), "crops": int(len(crops)),
            "learnt_from": packed(crop_fingerprints(crops)), **made_now()}


def last_recalibration(spec) -> dict:
    """The spec's ``training["recalibration"]`` where it was the model's last making (empty
    where none, or where a fine-tune came after: its network is then another, and so is the
    calibration the record names)."""
    training = spec.training or {}
    made, tuned = training.get("recalibration") or {}, training.get("finetune") or {}
    if made and tuned and str(tuned.get("at") or "") > str(made.get("at") or ""):
        return {}
    return made


def recalibrated_record(spec) -> dict:
    """What a report says of a recalibrated model's making: the model it was made from, the
    crops it was calibrated on, and how (``spec.metrics["calibration"]``'s method, weights and
    figures on those crops)."""
    made = last_recalibration(spec)
    calibration = spec.metrics.get("calibration") or {}
    return {"from": made.get("from"), "from_sha256": made.get("from_sha256"),
            "from_temperature": made.get("from_temperature"),
            "calibrated_on": made.get("data_dir"), "crops": made.get("crops"),
            "at": made.get("at"),
            **{k: calibration[k] for k in ("method", "lab_crops", "reference_crops",
                                           "lab_weight", "filled_from_reference", "guarantee")
               if k in calibration}}
