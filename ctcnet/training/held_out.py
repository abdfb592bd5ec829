"""A fine-tune's held-out crops: how they were chosen (whole samples, patients, a manifest's
split), whether that share is near what ``--holdout`` asked, and whether they are crops a model
learnt from (the base's training, or this fine-tune's own training crops: a copy of a held-out
crop among them makes its held-out figures, and the calibration fitted on them, in-sample)."""

from __future__ import annotations

import logging

log = logging.getLogger("ctcnet.training.finetune")  # (the fine-tune's words: one logger)


def held_out_learnt(data_dir, spec, held, prints: dict[str, str]) -> tuple[int, int]:
    """How many of the ``held`` crops the base model learnt from, and how many are, pixel for
    pixel, crops this fine-tune trains on (``prints``: the folder's crops' fingerprints a
    split, as read), each warned of before the training, so that a person can hold out
    others."""
    import numpy as np

    from ctcnet.detect.crop_fingerprints import unpacked
    from ctcnet.evaluation.test_set import crops_learnt_from  # (the simulator, scipy)

    # (trained on: the held-out crops an earlier fine-tune was calibrated on are not learnt)
    learnt = int(crops_learnt_from(spec, held.images, calibrated=False).sum())
    if learnt:
        log.warning("%s: %d of the %d held-out crops are crops the base model learnt from (its "
                    "training or an earlier fine-tune): its held-out figures, and the gain "
                    "over it, are of crops it was trained on; hold out crops it never saw",
                    data_dir, learnt, len(held.targets))
    copied = int(np.isin(unpacked(prints.get("val", "")), unpacked(prints.get("train", "")))
                 .sum())
    if copied:
        log.warning("%s: %d of the %d held-out crops are, pixel for pixel, crops it trains on "
                    "too (copies across the split): its held-out figures, and the calibration "
                    "fitted on them, are of crops it learns from; remove the copies",
                    data_dir, copied, len(held.targets))
    return learnt, copied


def say_the_held_out_share(data_dir, index, held, asked: float) -> None:
    """Warn where whole samples held out (a split by sample) are a share of the lab's crops
    far from ``--holdout``: with two samples, one of them may be most of the labels."""
    if any(bool(s) for s in index.splits):  # placed by hand (manifest.csv's split column)
        return
    lab = len(index.sample_ids)
    share = len(held.targets) / max(lab, 1)
    if lab and (share > 1.5 * asked or share < asked / 1.5):
        samples = sorted(set(map(str, held.sample_ids)))
        log.warning("%s: %d of its %d crops (%.0f %%) are held out, where --holdout asked "
                    "%.0f %%: whole samples (patients) are held out (%s), and the fine-tune "
                    "learns from "
                    "the other %d; add samples, or place the crops by hand (manifest.csv's "
                    "split column)", data_dir, len(held.targets), lab, 100 * share,
                    100 * asked, ", ".join(samples[:5]), lab - len(held.targets))


NO_SAMPLE_IDS = "crop, no sample ids"


def held_out_unit(index, train, held) -> str:
    """How the held-out crops were chosen: ``manifest`` (its ``split`` column), ``sample``
    (whole samples), ``patient`` (whole patients, each with every draw of theirs: the crops
    name them), ``crop`` (one sample's crops split) or ``crop, no sample ids`` (every
    crop its own sample: files that name no patient, whose "split by sample" was one by
    crop); ``manifest, the rest by ...`` where the column places only some crops."""
    rest = "sample" if not set(held.sample_ids) & set(train.sample_ids) else "crop"
    if rest == "sample" and len(set(index.sample_ids)) == len(index.sample_ids) > 1:
        rest = NO_SAMPLE_IDS
    elif rest == "sample" and any(index.patient_ids or ()):
        rest = "patient"  # the crops name their patients: a patient's draws kept together
    placed = [bool(s) for s in index.splits]
    if all(placed):
        return "manifest"
    return f"manifest, the rest by {rest}" if any(placed) else rest
