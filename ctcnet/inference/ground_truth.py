"""A simulated cartridge's truth beside a run's events: ``ground_truth.csv`` (written by
``ctcnet simulate cartridge``) read over the frames a run processed, for detection recall and
true against called counts in the run's summary, the decision fit and the count checks."""

from __future__ import annotations

import pandas as pd

from ctcnet.detect.truth_matching import detection_recall
from ctcnet.io.scan import Cartridge
from ctcnet.nn.spec import ModelSpec


def compare_with_ground_truth(cartridge: Cartridge, events: pd.DataFrame, spec: ModelSpec,
                              skipped: list[dict]) -> dict | None:
    """For a simulated cartridge (``ground_truth.csv`` beside the frames): detection recall and
    true versus called counts per class, over the frames that were processed."""
    path = cartridge.root / "ground_truth.csv"
    if not path.exists():
        return None
    try:
        truth = pd.read_csv(path)
    except (OSError, ValueError) as err:
        return {"error": f"cannot read {path.name}: {err}"}
    if not {"x", "y", "class", "row", "col"} <= set(truth.columns):
        return {"error": f"{path.name} lacks the columns x, y, class, row, col"}
    truth = truth_of_processed_frames(cartridge, truth, skipped)
    recall = detection_recall(events, truth, cartridge.panel.pixel_size_um)
    return {"detection": recall,
            "true_counts": {n: int((truth["class"] == n).sum()) for n in spec.class_names}}


def truth_of_processed_frames(cartridge: Cartridge, truth: pd.DataFrame,
                              skipped: list[dict]) -> pd.DataFrame:
    """The ground-truth rows of the frames that were processed (not skipped)."""
    skipped_ids = {s["frame"] for s in skipped}
    processed = pd.MultiIndex.from_tuples(
        [(f.row, f.col) for f in cartridge.frames if f.frame_id not in skipped_ids],
        names=["row", "col"])
    return truth[pd.MultiIndex.from_frame(truth[["row", "col"]]).isin(processed)]
