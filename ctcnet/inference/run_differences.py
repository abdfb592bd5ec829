"""How predict names what an earlier run in a sample's output folder differs from this one in
(its journal's or summary's fingerprint against this run's), and what ``--overwrite`` would
cost there: the words of the refusals that keep a run from writing over another one."""

from __future__ import annotations

from pathlib import Path

from ctcnet.inference.setting_differences import comparable

SCAN_PIXEL_SIZE = "scan_pixel_size_um"

# Fingerprint entries whose name alone does not say what changed them.
WHAT_MOVES_IT = {"plane_order": ": which plane is read as which channel, panel.json's or the "
                                "files' channel names",
                 "decision": " (the rule the calls are made by: another --prior, or the "
                             "model's own prior where one of the runs named another)",
                 # A nightly job that names no --model changes it with an upgrade that ships
                 # another default model: said, or "model_sha256" reads as a fault.
                 "model_sha256": " (another model file: another --model, or the default "
                                 "model of another ctcnet version)"}


def differing_keys(previous: dict, fingerprint: dict) -> list[str]:
    """The fingerprint's entries an earlier run's (``previous``) differs in, sorted (as runs
    are compared: :func:`~ctcnet.inference.setting_differences.comparable`)."""
    previous, fingerprint = comparable(previous), comparable(fingerprint)
    # (an earlier ctcnet's journal recorded no input folder: no difference of the scan's)
    return sorted(k for k in set(previous) | set(fingerprint)
                  if previous.get(k) != fingerprint.get(k)
                  and not (k == "input" and previous.get("input") is None))


def what_differs(previous, fingerprint: dict) -> str:
    """The fingerprint's entries (and the settings within them) an earlier run's differs in."""
    if not isinstance(previous, dict):
        return "an unreadable record"
    named = []
    for key in differing_keys(previous, fingerprint):
        old, new = previous.get(key), fingerprint.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            inner = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            named.append(f"{key} ({', '.join(inner)})")
        elif key == SCAN_PIXEL_SIZE:  # the scan's, not a setting: both sizes said
            named.append(f"{key} ({old} then, {new} now: another scan of the sample, a "
                         "rescan, or a pixel size corrected)")
        else:
            named.append(key + WHAT_MOVES_IT.get(key, ""))
    return ", ".join(named)


def overwrite_advice(out_dir: str | Path) -> str:
    """What a refusal adds to "--overwrite" where the sample was signed off: the sign-off is of
    the calls ``--overwrite`` makes again, so it no longer holds (it stays in the sample's
    sign-off history) and the sample is reviewed and signed off again. Empty elsewhere."""
    if not (Path(out_dir) / "signoff.json").exists():
        return ""
    import json

    try:  # a sign-off that no longer holds already is not called "signed off"
        status = (json.loads((Path(out_dir) / "summary.json").read_text(encoding="utf-8"))
                  .get("signoff") or {}).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status not in (None, "current"):
        return (f"; its sign-off no longer holds already ({status}), and --overwrite makes "
                "its calls again: review and sign it off again after")
    return ("; the sample is signed off, and --overwrite makes its calls again: that sign-off "
            "then no longer holds (it stays in signoff_history.jsonl) until the sample is "
            "reviewed and signed off again")
