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


# A crop is a cell's neighbourhood (40-200 px); a file whose sides both pass this is a frame.
FRAME_MIN_SIDE = 300


def nested_scan(root: Path, paths: list[Path], labels: list[str], classes) -> InputError | None:
    """The refusal of a folder read as crops whose unlabelled-by-class files are a scan's
    frames (named as frames, frame-sized) in a folder under it: a scanner's export nested as
    ``scan/Images/r00c00.tif``, beside a panel.json above it, would read as a few crops of a
    class ``scan``. None where no such file is found (crops named like frames in a class
    folder, ``ctc/frame_0000.tif``, stay crops)."""
    from ctcnet.core.paths import shown_in
    from ctcnet.io.image_headers import image_shape
    from ctcnet.io.scan import claim

    known = {name.casefold() for name in classes}
    for path, label in zip(paths, labels):
        if label.casefold() in known:
            continue
        part = claim(path)
        shape = image_shape(path) if part is not None and part.stem is not None else None
        if shape is not None and min(shape) >= FRAME_MIN_SIDE:
            return InputError(f"holds the frames of a scan ({shown_in(path, root)}, "
                              f"{shape[1]} x {shape[0]} px), not crops: pass "
                              f"{shown_in(path.parent, root)} as the cartridge, with "
                              "panel.json (and cartridge.json) in it beside the frames", root)
    return None
