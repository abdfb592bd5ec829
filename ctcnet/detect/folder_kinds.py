"""What a folder given as crops is when it is none: one of ctcnet's other folders (a scan, a
predict run's output), told apart so that the refusal says what to run instead of what the
folder lacks."""

from __future__ import annotations

from pathlib import Path

from ctcnet.errors import InputError


def is_predict_output(root: Path) -> bool:
    """``root`` is a ``ctcnet predict`` output (its ``--out``, or one sample's folder)."""
    return (root / "run.json").exists() or (root / "summary.json").exists() or \
        any(root.glob("*/summary.json"))


def not_a_crop_folder(root: Path) -> InputError:
    """The refusal of a folder without panel.json, saying what it is where it is one of
    ctcnet's other folders (a predict run's output, a scan), else what a crop folder needs."""
    from ctcnet.io.scan import is_cartridge

    if is_predict_output(root):
        return InputError("is a ctcnet predict output, not a crop folder: make its reviewed "
                          "events labelled crops with `ctcnet crops RESULTS --reviewed --out "
                          "DIR` and give DIR", root)
    if (root / "cartridge.json").exists() or is_cartridge(root):
        return InputError("is a cartridge (a scan's frames), not a crop folder: crops are cut "
                          "from it by `ctcnet predict` and, once reviewed, `ctcnet crops`",
                          root)
    return InputError("no panel.json beside the crops: it names the channel order "
                      '(e.g. {"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})',
                      root)
