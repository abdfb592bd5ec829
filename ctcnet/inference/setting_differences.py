"""The settings in which runs differ, said with how: a night's folder or a patient's draws
counted by other models or at other settings (``summary.json``'s ``run_fingerprint``: the
model, detection, guard, prior...) are not comparable, and a person is told which setting
differs and its value in each run."""

from __future__ import annotations

import json
from collections.abc import Sequence

# What a run's settings are in its fingerprint (ctcnet.inference.journal.run_fingerprint): the
# same for every sample of one batch, unlike its input and panel.
_BATCH_SETTINGS = ("model_sha256", "detect", "edge_cut_as", "compensate", "decision", "guard",
                   "same_cluster_um", "frame_device")


def device_kind(device: str) -> str:
    """A torch device's kind (``cuda`` of ``cuda:1``), as a fingerprint records the frames'
    device: frame work on GPU 0 and on GPU 1 runs the same kernels (each torchrun rank has its
    own GPU, draws are counted on other GPUs); numpy's and torch's differ in the last digits."""
    return device.partition(":")[0]


def comparable(fingerprint: dict) -> dict:
    """A run's fingerprint as runs are compared by: its frame device by kind
    (:func:`device_kind`), also where an earlier run recorded the GPU's index (``cuda:1``)."""
    device = fingerprint.get("frame_device")
    if isinstance(device, str) and ":" in device:
        return {**fingerprint, "frame_device": device_kind(device)}
    return fingerprint


def batch_settings(fingerprint: dict) -> dict:
    """The settings of a run's fingerprint that are one batch's (not its input, panel or
    table's columns): what makes two runs' counts one assay's."""
    fingerprint = comparable(fingerprint)
    return {key: fingerprint.get(key) for key in _BATCH_SETTINGS}


def settings_that_differ(fingerprints: Sequence[dict]) -> list[str]:
    """The batch settings (model, detection, guard, prior...) in which runs' fingerprints
    (``summary.json``'s ``run_fingerprint``) differ: counts made otherwise are not
    comparable."""
    settings = [batch_settings(f) for f in fingerprints]
    return [key for key in _BATCH_SETTINGS
            if len({json.dumps(s[key], sort_keys=True) for s in settings}) > 1]


# Settings said otherwise than their fingerprint key.
SAID_AS = {"decision": "decision rule (--prior)", "model_sha256": "model (by its network)"}


def how_settings_differ(made_with: dict[str, dict], models: dict[str, str] | None = None
                        ) -> list[str]:
    """Each setting the runs (a label each: its fingerprint) differ in, with how: each value
    of one setting, or of each setting of a group that differs (``guard (cd45_level: 0.5 in
    a; 0.6 in b)``), with the runs that hold it (the model by its network digest's first 12
    hex digits, after its name in ``models``, a label's model file, where given: the digest
    is the network's, not the file's)."""
    said, made_with = [], {label: comparable(f) for label, f in made_with.items()}
    for key in settings_that_differ(list(made_with.values())):
        values = {label: f.get(key) for label, f in made_with.items()}
        inner = sorted({k for v in values.values() if isinstance(v, dict) for k in v
                        if len({json.dumps(w.get(k) if isinstance(w, dict) else None,
                                           sort_keys=True) for w in values.values()}) > 1})
        if inner and all(isinstance(v, dict) for v in values.values()):
            # Each setting of the group with its values by run: "detect (threshold_snr)" left
            # whoever reruns one to find which run held which.
            said.append(f"{key} (" + " | ".join(
                f"{k}: " + _by_value({label: json.dumps(v.get(k))[:40]
                                      for label, v in values.items()})
                for k in inner[:4]) + (" | ..." if len(inner) > 4 else "") + ")")
            continue
        # (the fingerprint's model_sha256 is the network's digest, which a checkpoint and its
        # ONNX export share, not the file's: said so beside the file's name)
        said.append(f"{SAID_AS.get(key, key)} (" + _by_value({label: (
            f"{(models or {}).get(label, '')} network {str(v)[:12]}".strip()
            if key == "model_sha256" else _decision_text(v) if key == "decision"
            else json.dumps(v)[:40]) for label, v in values.items()}) + ")")
    return said


def _by_value(texts: dict[str, str]) -> str:
    """Runs' values (label -> text) as "value in its runs" for each value, a value's runs
    named once (a night's folder: the first three, and how many more)."""
    by_value: dict[str, list[str]] = {}
    for label, text in texts.items():
        by_value.setdefault(text, []).append(str(label))
    return "; ".join(f"{text} in {', '.join(labels[:3])}"
                      + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
                      for text, labels in by_value.items())


def _decision_text(rule) -> str:
    """A run's decision rule as a person names it: the fingerprint holds one only where the
    run's prior made it other than the model's own (``{}``: no weights, ``--prior
    balanced``); "null" against "{}" said nothing of the prior."""
    if rule is None:
        return "the model's own"
    if rule == {}:
        return "none, the most probable class (--prior balanced)"
    return json.dumps(rule)[:60]
