"""The model card: a trained model's held-out results as plain data (``<name>.json``) and
Markdown (``<name>.md``).

:func:`build_card` turns the results of :func:`ctcnet.evaluation.held_out.card_tests` into the
card that ``scripts/train_default_model.py`` writes beside the shipped model, and
:func:`ctcnet.evaluation.card_markdown.render_card` renders it; :func:`update_card` sets entries
of a card already written (a refitted decision rule, a robustness matrix's summary) and renders
it again.
"""

from __future__ import annotations

import json
import logging

from ctcnet.evaluation.card_markdown import render_card
from ctcnet.evaluation.held_out import TARGETS
from ctcnet.evaluation.matrix import flip_summary, review_lines
from ctcnet.io.atomic import atomic_write_text
from ctcnet.io.digests import file_sha256

log = logging.getLogger(__name__)


def normalisation_text(spec) -> str:
    """How the model normalises its input, in words for the card."""
    cfg = spec.panel.channels[0].normalisation
    if cfg.get("method") != "snr":
        return "fixed value range per channel, inside the model"
    where = (f"of the crop's outer {cfg.get('ring_px', 10)} px ring" if
             cfg.get("background_from", "crop") == "ring" else "of the crop")
    return (f"per-crop robust background/noise (10th/30th percentiles {where}, every "
            f"{cfg.get('sample_step', 2)}th pixel) then {cfg.get('compression', 'asinh')} "
            f"compression (softness {cfg.get('softness', 3.0)}), inside the model")


def targets_met(test: dict) -> dict:
    """Whether the test figures meet each of the card's ``TARGETS``."""
    return {"macro_f1": test["macro_f1"] >= TARGETS["macro_f1"],
            "ctc_recall": test["ctc_recall"] >= TARGETS["ctc_recall"],
            "wbc_called_ctc_rate": test["wbc_called_ctc_rate"] <= TARGETS["wbc_called_ctc_rate"]}


def headline(test: dict) -> dict:
    """The test numbers stored in the model's own spec (``spec.metrics``)."""
    return {k: test[k] for k in ("macro_f1", "accuracy", "ctc_recall", "wbc_called_ctc_rate",
                                 "per_class", "confusion", "ece", "guard") if k in test}


def model_entries(name: str, model_path, spec) -> dict:
    """What a card says of the model itself, all that ``ctcnet.nn.registry`` reads to offer
    it by name and by channels: file, panel, classes, crop and pixel size, what it reads."""
    return {
        "name": name,
        "file": model_path.name,
        "size_bytes": model_path.stat().st_size,
        # (the file's own: a run on it records it as summary.json model.sha256)
        "sha256": file_sha256(model_path),
        "arch": spec.arch,
        "panel": spec.panel.to_dict(),
        "classes": spec.class_names,
        "crop_size": spec.crop_size,
        "pixel_size_um": spec.pixel_size_um,
        "symmetry": spec.symmetry,
        # What the model reads: scans (16-bit counts), or 8-bit composite exports only
        # (ctcnet.nn.registry chooses it for composite data, never for scans).
        "reads": "exports" if spec.reads_exports else "scans",
    }


def build_card(*, name: str, model_path, model, spec, tests: dict, data: dict,
               training: dict, evaluation_seconds: float, reproduce: str) -> dict:
    """The card as plain data (``<name>.json``)."""
    calibration = spec.metrics.get("calibration", {})
    test = tests["test"]
    return {
        **model_entries(name, model_path, spec),
        "parameters": int(sum(p.numel() for p in model.net.parameters())),
        "normalisation": normalisation_text(spec),
        "calibration": {"temperature": spec.temperature,
                        "review_threshold": spec.review_threshold,
                        "fitted_on": "validation split", **calibration},
        "data": data,
        "training": training,
        "test_default_randomisation": {k: v for k, v in test.items() if k != "seed"},
        **({"test_rgb_jpeg": {k: v for k, v in tests["rgb_jpeg"].items()}}
           if "rgb_jpeg" in tests else {}),
        "robustness": tests["robustness"],
        "robustness_vs_baselines": tests["versus_baselines"],
        "ck_positive_leukocytes": tests.get("ck_positive_leukocytes"),
        "targets": TARGETS,
        "targets_met": targets_met(test),
        "evaluation_seconds": round(evaluation_seconds),
        "reproduce": reproduce,
    }


def update_card(card_path, **entries) -> None:
    """Set top-level entries of a model's card (``<name>.json``) and re-render its ``.md``
    (a fine-tuned model's card, which ``ctcnet finetune`` writes with a ``.md`` of its own,
    keeps that one)."""
    from pathlib import Path

    card_path = Path(card_path)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card.update(entries)
    # The refits that call this rewrite the checkpoint beside the card: its size is read again.
    model_file = card_path.with_name(str(card.get("file", "")))
    if card.get("file") and model_file.is_file():
        card["size_bytes"] = model_file.stat().st_size
        if "sha256" in card:
            card["sha256"] = file_sha256(model_file)
    atomic_write_text(card_path, json.dumps(card, indent=2, default=float) + "\n")
    if "finetune" not in card:
        atomic_write_text(card_path.with_suffix(".md"), render_card(card))
    say_if_listed(card_path)


def say_if_listed(card_path) -> None:
    """A shipped card rewritten (the scripts that refit a shipped model): models/SHA256SUMS
    lists it, which `ctcnet verify` and the tests hold it to, so its line is to be updated."""
    from pathlib import Path

    from ctcnet.nn.registry import is_shipped_file

    card_path = Path(card_path)
    if is_shipped_file(card_path):
        log.warning("%s is listed in models/SHA256SUMS (its .md too): update their lines "
                    "(sha256sum *.json *.md in the models folder)", card_path.name)


def refresh_decision(card_path, decision: dict, per_crop: dict | None = None) -> None:
    """Record a (re)fitted decision rule in a model's card (``<name>.json`` and ``.md``)."""
    update_card(card_path, decision={**decision, **({"per_crop": per_crop} if per_crop else {})})


def matrix_summary(matrix: dict, command: str) -> dict:
    """What a card keeps of a robustness matrix (``ctcnet.evaluation.matrix``): the clean
    figures, every range-end cell per method, the target check and the review flags."""
    names = matrix["class_names"]
    return {"n": matrix["n"], "seed": matrix["seed"], "data": matrix.get("data"),
            "command": command, "methods": matrix["methods"],
            "clean": {m: round(v["macro_f1"], 4) for m, v in matrix["clean"].items()},
            "range_ends": [{"perturbation": c["name"], "strength": c["label"],
                            **{m: {"flip_rate": round(v["flip_rate"], 4),
                                   "macro_f1": round(v["macro_f1"], 4),
                                   "flips": flip_summary(v, names)}
                               for m, v in c["methods"].items()}}
                           for c in matrix["cells"] if c["range_end"]],
            "check": {k: matrix["check"][k] for k in ("passed", "failures", "range_end_cells",
                                                      "double_positive_wbc_called_ctc",
                                                      "double_positive_wbc_counted_ctc",
                                                      "targets")},
            "review_flags": review_lines(matrix),
            **({"exported": True, "export_redraw": {
                k: round(matrix["export_redraw"][k], 4) for k in ("flip_rate", "macro_f1")}}
               if matrix.get("exported") else {})}


