"""The card of a model recalibrated on a lab's crops (``ctcnet evaluate --calibrate-on
--save-model``): ``<name>.json``, which lets ``CTCNET_MODELS`` offer it by name with its own
digest, and ``<name>.md`` for a person. The network is the base's: its card's figures are the
base's, not measured again, and the card says so."""

from __future__ import annotations

import json
from pathlib import Path

from ctcnet.evaluation.model_card import model_entries
from ctcnet.evaluation.recalibration import describe, leaks_line
from ctcnet.io.atomic import atomic_write_text


def write_recalibration_card(model_path, spec) -> None:
    """``<model>.json`` and ``<model>.md`` beside a recalibrated model file written with
    ``spec`` (its ``training["recalibration"]`` and ``metrics["calibration"]`` the record of
    its making): written over a card there (an earlier model's, which it would misdescribe)."""
    model_path = Path(model_path)
    made = (spec.training or {}).get("recalibration") or {}
    calibration = spec.metrics.get("calibration") or {}
    card = {**model_entries(model_path.stem, model_path, spec),
            **({"decision": spec.decision.to_dict()} if spec.decision is not None else {}),
            "recalibration": {**{k: v for k, v in made.items() if k != "learnt_from"},
                              "calibration": calibration}}
    atomic_write_text(model_path.with_suffix(".json"),
                      json.dumps(card, indent=2, default=float) + "\n")
    base = Path(str(made.get("from", "")))
    lines = [
        f"# Model card: {model_path.name} (recalibrated)", "",
        f"- Base model: `{made.get('from')}` (sha256 {str(made.get('from_sha256'))[:12]}...): "
        "the same network, recalibrated; its held-out tests, robustness matrix and cartridge "
        "figures are the base's" + (f" (its card, `{base.with_suffix('.md').name}`)"
                                    if base.with_suffix(".md").is_file() else "")
        + ", not measured again",
        f"- Calibration crops: `{made.get('data_dir')}`, {made.get('crops')} crops",
        f"- Calibration: {describe(calibration)}" if calibration else
        "- Calibration: the base model's, kept",
        # the marker guard made the lab's: its leaks, and its reference pooled with the crops
        leaks_line(spec.metrics["leaks"], spec, "the calibration crops")
        if spec.metrics.get("leaks") else "",
        "- Cartridge rule and review band: the base's, kept (a lab's crops hold no cartridge "
        "to fit or check them on)" if spec.decision is not None and spec.decision.weights
        else "",
        f"- Made by ctcnet {spec.version}" + (f", {made['at']}" if made.get("at") else ""),
        f"- SHA-256 of {model_path.name}: {card['sha256']}",
    ]
    atomic_write_text(model_path.with_suffix(".md"),
                      "\n".join([lines[0], "", *(line for line in lines[1:] if line)]) + "\n")
