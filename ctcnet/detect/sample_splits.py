"""What a labelled crop folder's sample ids and manifest splits say of its held-out figures:
a patient whose crops lie in more than one split (trained on and held out at once), and one
patient's id written two ways (which a split by sample then puts on both sides). Said where a
folder's splits are read: by training, and by ``ctcnet evaluate --split``, whose baselines fit
on the manifest's train rows and score the rest.
"""

from __future__ import annotations

import logging

from ctcnet.core.paths import name_key

# The training module's logger: these warnings are the crop folder's, whichever reads it.
log = logging.getLogger("ctcnet.training.crop_folder")

SPLITS = ("train", "val", "test")


def samples_on_both_sides(splits, sample_ids) -> dict[str, list[str]]:
    """Each sample whose crops lie in more than one split, with those splits (in
    :data:`SPLITS` order): a patient trained on and held out at once."""
    where: dict[str, set[str]] = {}
    for split, sample in zip(splits, sample_ids):
        where.setdefault(sample, set()).add(split)
    return {sample: [s for s in SPLITS if s in found] for sample, found in where.items()
            if len(found) > 1}


def warn_of_samples_on_both_sides(splits, sample_ids, root, learner: str = "the model"
                                  ) -> None:
    """Say which samples a split (a manifest's ``split`` column, made by hand) puts on both
    sides: the held-out figures, and the checkpoint and calibration they choose, then rest on
    crops of patients ``learner`` learnt from."""
    shared = samples_on_both_sides(splits, sample_ids)
    if shared:
        named = "; ".join(f"{sample} ({', '.join(found)})"
                          for sample, found in list(shared.items())[:5])
        log.warning("%s: %d sample(s) have crops in more than one split: %s%s. Their held-out "
                    "crops are of a patient %s learns from, so those figures are optimistic: "
                    "give each sample's crops one split (manifest.csv)", root, len(shared),
                    named, " ..." if len(shared) > 5 else "", learner)


def warn_of_alike_sample_ids(sample_ids, root, what: str = "sample id") -> None:
    """Say which sample ids (or patient ids, ``what``) differ only in case, surrounding spaces
    or the encoding of their accents ("P002", "p002 "; "Müller" typed on Windows and on a
    Mac): one patient labelled by two people lands on both sides of a split by sample."""
    spellings: dict[str, set[str]] = {}
    for sample in set(sample_ids):
        spellings.setdefault(name_key(sample.strip()), set()).add(sample)
    alike = [sorted(names) for names in spellings.values() if len(names) > 1]
    if alike:
        named = "; ".join(" and ".join(repr(n) for n in names) for names in alike[:5])
        log.warning("%s: %d %s(s) are written more than one way (%s%s): one patient "
                    "under two ids may be trained on and held out at once; write each "
                    "patient's id one way", root, len(alike), what, named,
                    " ..." if len(alike) > 5 else "")
