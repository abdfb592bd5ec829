"""The labelled crops ``ctcnet evaluate`` and ``ctcnet robustness`` score: a crop folder's
test crops (:func:`labelled_index`, :func:`labelled_test_set`), the crops the classical
baselines are fitted on (a folder, the data's ``split=train`` rows, or crops simulated for the
model's panel with seeds no test uses: :func:`simulated_training_set`), and the warning when
the folder is the one the model was trained on."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ctcnet.detect.crop_dataset import load_crops, read_crop_index
from ctcnet.detect.crop_fingerprints import seen_in
from ctcnet.detect.crop_writing import dataset_record
from ctcnet.detect.sample_splits import warn_of_samples_on_both_sides
from ctcnet.errors import InputError
from ctcnet.evaluation.baselines import fit_baselines
from ctcnet.io.data_panel_leaks import said_unread_leaks
from ctcnet.nn.spec import ModelSpec
from ctcnet.simulate import SimConfig, simulate_crops, undrawn_classes

log = logging.getLogger(__name__)
# Seeds of simulated baseline training sets: far from the seeds tests and shifts use.
BASELINE_TRAIN_SEED = 7919


def labels_to_indices(labels, class_names: list[str]) -> np.ndarray:
    """Class names (or indices) -> int64 indices into class_names, with a clear error."""
    labels = list(labels)
    if labels and isinstance(labels[0], (int, np.integer)):
        return np.asarray(labels, np.int64)
    unknown = sorted(set(labels) - set(class_names))
    if unknown:
        raise InputError(f"labels {unknown} are not classes of the model {class_names}")
    return np.array([class_names.index(x) for x in labels], np.int64)


def simulated_training_set(spec: ModelSpec, n_per_class: int, seed: int = BASELINE_TRAIN_SEED,
                           config=None) -> tuple[np.ndarray, np.ndarray]:
    """Crops (raw counts) and label indices simulated for the model's panel and classes."""
    batch = simulate_crops(int(n_per_class), spec.panel, spec.taxonomy, spec.crop_size,
                           seed=seed, config=config or SimConfig())
    return (batch.images.astype(np.float32),
            labels_to_indices(batch.labels, spec.class_names))




def _baseline_training(index, spec: ModelSpec, baseline_train, n_per_class: int, seed: int,
                       scored_apart: bool = False):
    """Training crops for the baselines, and the test part of ``index`` (``scored_apart``:
    ``index`` holds only rows that are not scored, ``--split``'s others, so its
    ``split=train`` rows fit the baselines even when they are all it holds)."""
    is_train = np.array([s.lower() == "train" for s in index.splits])
    if baseline_train is not None:
        train_index = read_crop_index(baseline_train, taxonomy=spec.taxonomy).conform(
            spec.panel, "baseline training set")
        crops = load_crops(train_index, spec.crop_size, spec.pixel_size_um)
        return crops, train_index.label_indices(spec.taxonomy), index, "folder"
    if is_train.any() and (scored_apart or not is_train.all()):
        train_index = index.subset(is_train)
        return (load_crops(train_index, spec.crop_size, spec.pixel_size_um),
                train_index.label_indices(spec.taxonomy), index.subset(~is_train), "split=train")
    if spec.reads_exports:
        # The simulated training crops are scans: a gate or feature classifier fitted on their
        # counts says nothing of exports, which keep none of them (the card leaves them out too).
        why = ("none: the model reads exports only, and the simulated crops the baselines "
               "would be fitted on are scans; give labelled exports to fit them on "
               "(--baseline-train, or rows with split=train)")
        log.warning("baselines: %s", why)
        return None, None, index, why
    undrawn = undrawn_classes(spec.panel, spec.taxonomy)
    if undrawn:
        why = (f"none: the simulator draws no {', '.join(undrawn)} (the taxonomy lists no "
               "subtype to draw it as) to fit them on; give labelled crops to fit them on "
               "(--baseline-train, or rows with split=train)")
        log.warning("baselines: %s", why)
        return None, None, index, why
    crops, labels = simulated_training_set(spec, n_per_class, seed)
    return crops, labels, index, "simulated"


def _refuse_train_misspelt(index) -> None:
    """Refuse a manifest split value that reads like ``train`` but is not: ``train`` with more
    after it (``training``, ``trainval``, ``train2``) or a letter dropped or two swapped
    (``trian``, ``tran``). By default every row but split=train is scored, so its crops, which
    a model trained on the manifest may have learnt from, were scored without a word
    (finetune and train refuse values other than train, val and test; evaluate scores a
    lab's own split names, ``main`` or ``spain`` among them)."""
    values = sorted({s for s in index.splits if s and s.lower() != "train"})
    like = [v for v in values if v.lower().startswith("train") or v.lower() in _TRAIN_SLIPS]
    if like:
        counts = {v: sum(s == v for s in index.splits) for v in like}
        raise InputError(
            "manifest split value(s) " + ", ".join(f"{v!r} ({n} crops)" for v, n in
                                                   counts.items())
            + " read like train, whose crops are left out of the figures, but are not it: "
            "they would be scored. Correct them in manifest.csv (or, with ctcnet evaluate, "
            "name the splits to score with --split)", index.root)


# "train" with one letter dropped or two neighbours swapped (a substitution makes words:
# brain, trail, grain).
_TRAIN_SLIPS = {"train"[:i] + "train"[i + 1:] for i in range(5)} | {
    "train"[:i] + "train"[i + 1] + "train"[i] + "train"[i + 2:] for i in range(4)}


def chosen_splits(index, splits) -> np.ndarray:
    """Which rows of ``index`` are of the manifest splits named in ``splits`` (``--split``):
    refused, with the splits the folder has, where a name picks no row."""
    have = {}
    for split in index.splits:
        have[split] = have.get(split, 0) + 1
    listed = ", ".join(f"{name or '(none)'} {n}" for name, n in sorted(have.items()))
    unknown = [s for s in splits if s not in have]
    if unknown:
        raise InputError(f"--split {','.join(unknown)}: no crop of {index.root} is of that "
                         f"split (its manifest.csv's split column has: {listed})", index.root)
    return np.isin(np.asarray(index.splits, dtype=object), list(splits))


def labelled_index(data, spec: ModelSpec, with_baselines: bool = True, baseline_train=None,
                   n_train_per_class: int = 300, training_seed: int = BASELINE_TRAIN_SEED,
                   fit_seed: int = BASELINE_TRAIN_SEED, pixel_size: float | str | None = None,
                   progress=None, splits=None):
    """A labelled crop folder's test crops, without their pixels, and the baselines fitted
    for it: (index of the test crops, baselines or None, where the baselines' training crops
    came from). ``progress``: as for :func:`~ctcnet.detect.crop_dataset.read_crop_index`;
    ``splits``: the manifest splits scored (``--split``; default: every row but those the
    baselines are fitted on)."""
    # The data's channels are mapped to the model's by name (extra ones dropped, a note).
    index = read_crop_index(data, taxonomy=spec.taxonomy, pixel_size=pixel_size,
                            progress=progress)
    said_unread_leaks(index.panel, Path(data) / "panel.json")  # (the model's are read)
    index = index.conform(spec.panel)
    baselines, source, fit_on = None, None, None
    is_train = np.array([s.lower() == "train" for s in index.splits], bool)
    if not splits:
        _refuse_train_misspelt(index)
    if not splits and is_train.any() and not is_train.all():
        # The train rows are what a model trained on this manifest learnt from: left out of
        # every figure whether the baselines fit on them or not (with --no-baselines or
        # --baseline-train they were scored, two thirds of a tour's "held-out" figures).
        scored = sorted({s or "none" for s, train in zip(index.splits, is_train) if not train})
        log.warning("%s: the %d crops of split=train are left out of every figure%s, which "
                    "are of the other %d (split %s; --split picks the rows scored)",
                    index.root, int(is_train.sum()),
                    " and fit the baselines" if with_baselines and baseline_train is None
                    else "", int((~is_train).sum()), ", ".join(scored))
        fit_on, index = index.subset(is_train), index.subset(~is_train)
    elif splits:
        # The baselines fit on rows not scored (their split=train rows), never on those scored.
        chosen = chosen_splits(index, splits)
        warn_of_samples_on_both_sides(
            [s.lower() for s in index.splits], index.split_groups, index.root,
            "the baselines (fitted on its train rows) and a model trained on this manifest")
        fit_on, index = index.subset(~chosen), index.subset(chosen)
        log.info("%s: scoring the %d crops of split %s", index.root, len(index),
                 ", ".join(splits))
    if with_baselines:
        train_crops, train_labels, rest, source = _baseline_training(
            index if fit_on is None else fit_on, spec, baseline_train, n_train_per_class,
            training_seed, scored_apart=fit_on is not None)
        index = rest if fit_on is None else index
        if train_crops is not None:
            _say_what_the_baselines_lack(train_labels, index, spec, source)
            baselines = fit_baselines(train_crops, train_labels, spec.panel, spec.class_names,
                                      fit_seed)
    return index, baselines, source


# Fewer labelled crops of a class than this fit a baseline that says little of it.
FEW_TO_FIT = 10


def _say_what_the_baselines_lack(labels, index, spec: ModelSpec, source: str) -> None:
    """Warn where the baselines' training crops lack a class the scored crops hold (they never
    call it: their F1 on it is 0 by construction) or hold few of one: the CNN's margin over
    them is then the training set's, not the method's."""
    held = np.bincount(np.asarray(labels, np.int64), minlength=len(spec.class_names))
    scored = set(index.label_indices(spec.taxonomy).tolist())
    lacked = [spec.class_names[k] for k in sorted(scored) if held[k] == 0]
    few = [f"{spec.class_names[k]} {held[k]}" for k in sorted(scored)
           if 0 < held[k] < FEW_TO_FIT]
    if lacked or few:
        log.warning("baselines: their training crops (%s) %s: their figures, and the CNN's "
                    "margin over them, say that much of the training set, not of the method",
                    source, "; ".join(filter(None, [
                        f"hold no {', '.join(lacked)}, which they never call" if lacked else "",
                        f"hold few of {', '.join(few)}" if few else ""])))


def labelled_test_set(data, spec: ModelSpec, with_baselines: bool = True, baseline_train=None,
                      n_train_per_class: int = 300, training_seed: int = BASELINE_TRAIN_SEED,
                      fit_seed: int = BASELINE_TRAIN_SEED,
                      pixel_size: float | str | None = None):
    """:func:`labelled_index` with the test crops loaded at model scale, in memory: (crops,
    index, baselines, source). ``ctcnet robustness`` changes the crops it is given."""
    index, baselines, source = labelled_index(data, spec, with_baselines, baseline_train,
                                              n_train_per_class, training_seed, fit_seed,
                                              pixel_size)
    return load_crops(index, spec.crop_size, spec.pixel_size_um), index, baselines, source


def _learnt_from(spec: ModelSpec, calibrated: bool = True) -> list[str]:
    """The fingerprints of the crops the model's training, fine-tune and recalibration
    recorded (``calibrated``: a fine-tune's held-out crops it was calibrated on too)."""
    training = spec.training or {}
    fields = ("learnt_from", "calibrated_on") if calibrated else ("learnt_from",)
    return [record[field] for record in (training.get(key) for key in (
        "data", "finetune", "recalibration")) if isinstance(record, dict)
            for field in fields if isinstance(record.get(field), str)]


def crops_learnt_from(spec: ModelSpec, crops: np.ndarray, calibrated: bool = True
                      ) -> np.ndarray:
    """Which of ``crops`` (at model scale) are, pixel for pixel, crops the model was trained,
    fine-tuned or (``calibrated``) calibrated on (the fingerprints each recorded)."""
    recorded = _learnt_from(spec, calibrated)
    return seen_in(crops, recorded) if recorded else np.zeros(len(crops), bool)


def model_labels_warning(data: str | Path) -> str | None:
    """A warning when ``data``'s labels are a model's own calls (``ctcnet crops`` without
    ``--reviewed`` records ``"labels": "model"`` in dataset.json): scored against them, a
    model's figures measure agreement with those calls, not its accuracy."""
    if dataset_record(data).get("labels") != "model":
        return None
    return (f"{data}: its labels are a model's own calls (ctcnet crops without --reviewed), "
            "not a person's: the figures measure agreement with those calls, not accuracy "
            "(cut the crops with --reviewed after a review)")


def own_training_data_warning(spec: ModelSpec, data: str | Path,
                              crops: np.ndarray | None = None, splits=None) -> str | None:
    """A warning when ``data`` is the crop folder the model was trained on (its training
    record's ``data_dir``) and the manifest splits scored (``splits``, ``--split``; None: all
    but the baselines') are not its held-out ``test`` alone, which training never reads (said
    by the folder alone, the docs' own held-out workflow was warned of every time); or when
    ``crops`` (``data``'s at model scale) hold crops it learnt from, wherever they were copied
    (the fingerprints its training or fine-tune recorded, ``learnt_from``): their figures
    would be of crops the model learnt from."""
    training = spec.training or {}
    trained_on = (training.get("data") or {}).get("data_dir")
    try:
        same = bool(trained_on) and Path(trained_on).resolve() == Path(data).resolve()
    except OSError:
        same = False
    if same and not (splits and set(splits) <= {"test"}):
        return (f"{data} is the crop folder this model was trained on (its training and "
                "validation crops): every figure is optimistic; evaluate on crops kept apart")
    if crops is None:
        return None
    seen = crops_learnt_from(spec, crops)
    if not seen.any():
        return None
    return (f"{int(seen.sum())} of {len(crops)} crops of {data} are, pixel for pixel, crops "
            "this model was trained, fine-tuned or calibrated on (predictions.csv's learnt_from "
            "column names them): their figures are optimistic; evaluate on crops kept apart")
