"""A simulated cartridge's truth beside a run's events: ``ground_truth.csv`` (written by
``ctcnet simulate cartridge``) read over the frames a run processed, for detection recall and
true against called counts in the run's summary, the decision fit and the count checks."""

from __future__ import annotations

import logging

import pandas as pd

from ctcnet.detect.truth_matching import detection_recall
from ctcnet.io.scan import Cartridge
from ctcnet.io.taxonomy import SUBTYPE_PARENTS, Taxonomy
from ctcnet.nn.spec import ModelSpec

log = logging.getLogger(__name__)


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
    read = truth_by_taxonomy(truth, spec.taxonomy, cartridge.sample_id)
    moved = read_as(truth, read)
    truth = truth_of_processed_frames(cartridge, read, skipped)
    recall = detection_recall(events, truth, cartridge.panel.pixel_size_um)
    return {"detection": recall,
            "true_counts": {n: int((truth["class"] == n).sum()) for n in spec.class_names},
            **({"classes_read_as": moved} if moved else {})}


def truth_of_processed_frames(cartridge: Cartridge, truth: pd.DataFrame,
                              skipped: list[dict]) -> pd.DataFrame:
    """The ground-truth rows of the frames that were processed (not skipped)."""
    skipped_ids = {s["frame"] for s in skipped}
    processed = pd.MultiIndex.from_tuples(
        [(f.row, f.col) for f in cartridge.frames if f.frame_id not in skipped_ids],
        names=["row", "col"])
    return truth[pd.MultiIndex.from_frame(truth[["row", "col"]]).isin(processed)]


def truth_by_taxonomy(truth: pd.DataFrame, taxonomy: Taxonomy, sample: str | None = None
                      ) -> pd.DataFrame:
    """The truth's ``class`` as ``taxonomy`` names its cells' simulator subtypes (the
    ``subtype`` column), where it names them (a class that includes the subtype, or is named
    like it): a cartridge simulated with the default classes, read by a lab's model whose
    ``ctc_emt`` includes ``ctc_dim``, has its dim CTCs as ``ctc_emt``, not ``ctc``. Elsewhere
    the file's class stands where the model has it (a model whose ``ctc_emt`` lists no
    subtypes reads a cartridge simulated with its taxonomy as drawn), else the subtype's
    parent's. Said, naming ``sample``, where that changes a class (:func:`read_as`); None:
    not said. A table without subtypes, or with one outside the simulator's catalogue, keeps
    its classes."""
    if "subtype" not in truth or not len(truth):
        return truth
    subtypes = truth["subtype"].astype(str)
    if not subtypes.isin(list(SUBTYPE_PARENTS)).all():
        return truth
    # As the simulator draws them (``Taxonomy.class_for_subtype``): a class's includes first,
    # then a class named like the subtype.
    named = {s: s for s in subtypes.unique() if s in taxonomy.names}
    named.update({s: c.name for c in taxonomy.classes for s in c.includes})
    given = truth["class"].astype(str)
    parent = subtypes.map(SUBTYPE_PARENTS)
    classes = subtypes.map(named).astype(object).fillna(
        given.where(given.isin(taxonomy.names), parent))
    read = truth.assign(**{"class": classes.to_numpy(object)})
    moved = read_as(truth, read)
    if moved and sample is not None:
        log.warning("%s: ground_truth.csv's classes read as the model's taxonomy (%s) names "
                    "its cells' subtypes: %s", sample, taxonomy.name,
                    ", ".join(f"{n} {move}" for move, n in moved.items()))
    return read


def read_as(truth: pd.DataFrame, read: pd.DataFrame) -> dict[str, int]:
    """How many cells :func:`truth_by_taxonomy` read as another class, by move and subtype:
    ``{"ctc -> ctc_emt (ctc_dim)": 13}`` (summary.json's ``ground_truth.classes_read_as``)."""
    changed = read["class"].astype(str) != truth["class"].astype(str)
    if not changed.any():
        return {}
    moves = (truth["class"].astype(str)[changed] + " -> " + read["class"].astype(str)[changed]
             + " (" + truth["subtype"].astype(str)[changed] + ")")
    return {move: int(n) for move, n in moves.value_counts().items()}
