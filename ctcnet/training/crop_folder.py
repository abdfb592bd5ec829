"""A crop dataset folder as the data module's splits (:class:`ctcnet.training.datamodule.
CTCDataModule` with ``data_dir``).

The folder's own ``panel.json`` names its channels (any order: they are taken by name) and
gives its pixel size; the crops are brought to the model's. Where ``panel.json`` does not
state the pixel size (published crops rarely do), ``data.pixel_size`` gives it as ``ctcnet
predict --pixel-size`` does: a number, ``auto`` (one scale, from the nuclei) or ``fit`` (a
scale per crop). A manifest ``split`` column (train / val / test) is honoured; otherwise whole
samples (patients) go to validation, never single crops, because crops of one sample are
correlated (or single crops, class-stratified, for a folder of one sample).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ctcnet.detect.crop_dataset import (
    CropIndex,
    dataset_panel,
    load_crops,
    read_crop_index,
)
from ctcnet.detect.sample_splits import (
    SPLITS,
    warn_of_alike_sample_ids,
    warn_of_samples_on_both_sides,
)
from ctcnet.errors import InputError
from ctcnet.io.panel import Panel
from ctcnet.io.taxonomy import Taxonomy
from ctcnet.training.splits import SplitData, crop_level_split, sample_level_split

log = logging.getLogger(__name__)

# The option that gives a crop folder's pixel size to ``ctcnet train`` (LightningCLI), named
# where a message asks for it.
PIXEL_SIZE_OPTION = "--data.pixel_size"


def folder_panel(data_dir: str | Path, taxonomy: Taxonomy, pixel_size: float | str | None,
                 option: str = PIXEL_SIZE_OPTION) -> tuple[Panel, CropIndex | None]:
    """The model's panel when none is given: the folder's ``panel.json`` as written, at the
    pixel size it states or ``pixel_size`` gives; with ``auto`` or ``fit`` measured from the
    crops now (the model's panel is fixed before anything is fitted), and the folder's index
    returned too, so that the crops are measured once. A ``panel.json`` without a pixel size
    and no ``pixel_size`` is refused, naming ``option``."""
    panel = dataset_panel(Path(data_dir) / "panel.json", pixel_size, option)
    if pixel_size is None:
        return panel, None
    if not isinstance(pixel_size, str):
        return panel.with_pixel_size(float(pixel_size)), None
    index = read_crop_index(data_dir, taxonomy=taxonomy, pixel_size=pixel_size, option=option)
    return panel.with_pixel_size(index.panel.pixel_size_um), index


def folder_index(data_dir: str | Path, panel: Panel, taxonomy: Taxonomy,
                 pixel_size: float | str | None = None, option: str = PIXEL_SIZE_OPTION,
                 index: CropIndex | None = None) -> CropIndex:
    """The folder's crops in ``panel``'s channels: by name from its own ``panel.json`` when it
    has one, else read as ``panel`` says (``index``: the folder's index already read, by
    :func:`folder_panel`)."""
    what = f"crop dataset {data_dir}"
    if index is not None:
        return index.conform(panel, what)
    if (Path(data_dir) / "panel.json").exists():
        return read_crop_index(data_dir, taxonomy=taxonomy, pixel_size=pixel_size,
                               option=option).conform(panel, what)
    return read_crop_index(data_dir, panel, taxonomy, pixel_size=pixel_size, option=option)


def folder_splits(index: CropIndex, taxonomy: Taxonomy, crop_size: int, model_pixel_um: float,
                  val_fraction: float, split_seed: int, split_unit: str) -> dict[str, SplitData]:
    """The folder's crops at model scale, split: by the manifest's ``split`` column where it
    has one, the rest (``split_unit``) by sample (by patient where the manifest names the
    patients: a patient's serial draws stay on one side) or by crop into train and val."""
    images = load_crops(index, crop_size, model_pixel_um, fitting=True)
    targets = index.label_indices(taxonomy)
    splits = np.array([s.lower() for s in index.splits], dtype=object)
    by_hand = (splits != "").any()  # a manifest's split column: a person placed these crops
    warn_of_alike_sample_ids(index.sample_ids, index.root)
    if index.patient_ids:  # (the split keeps a patient's draws together by this id)
        warn_of_alike_sample_ids(index.patient_ids, index.root, "patient id")
    groups = index.split_groups
    unknown = sorted(set(splits) - set(SPLITS) - {""})
    if unknown:
        raise InputError(f"manifest split values {unknown} are not one of {SPLITS}", index.root)
    if (splits == "").any():
        # Crops without a split: whole samples go to validation.
        free = np.flatnonzero(splits == "")
        free_samples = [groups[i] for i in free]
        warn_if_each_crop_its_own_sample(free_samples, index.root,
                                         [index.labels[i] for i in free],
                                         [Path(index.paths[i]).stem for i in free])
        by_crop = split_unit == "crop" or (split_unit == "auto" and len(set(free_samples)) < 2)
        if by_crop and split_unit == "auto" and len(free_samples) > 10:
            # Validation then holds crops of the patient trained on: its figures (which pick
            # the checkpoint kept) are optimistic, as a second patient's would not be.
            log.warning("%s: all %d crops are of one sample (%s): they are split by crop, so "
                        "validation holds crops of the patient trained on and its figures "
                        "are optimistic; give the crops of each patient a sample id (a "
                        "subfolder of its class folder, <sample>__<n>.tif, or a manifest.csv "
                        "sample_id column) or a manifest split column", index.root,
                        len(free_samples), free_samples[0])
        if by_crop:
            to_val = crop_level_split(targets[free], val_fraction, split_seed)
        else:
            to_val = sample_level_split(free_samples, val_fraction, split_seed)
        splits[free] = np.where(to_val, "val", "train")
    if by_hand:  # a split by crop puts samples on both sides by design, and says so itself
        warn_of_samples_on_both_sides(splits, groups, index.root)
    out = {}
    for name in SPLITS:
        keep = np.flatnonzero(splits == name)
        if len(keep):
            out[name] = SplitData(images[keep], targets[keep],
                                  [index.sample_ids[i] for i in keep])
    return out


def warn_if_each_crop_its_own_sample(sample_ids: Sequence[str], root,
                                     labels: Sequence[str] | None = None,
                                     stems: Sequence[str] | None = None) -> None:
    """Say when every crop of a split is its own sample (no ``__`` in the names, no sample
    subfolders or manifest column), or when crops named alike in several class folders (an
    export numbering each folder anew: ``ctc/cell_1.tif``, ``wbc/cell_1.tif``) are read as
    one sample of one crop a class: a patient's crops would then straddle the split."""
    how = ("name crops <sample>__<n>.tif, put each sample's crops in a subfolder of its "
           "class folder, or give a manifest.csv sample_id column")
    if len(sample_ids) > 10 and len(set(sample_ids)) == len(sample_ids):
        log.warning("%s: every crop is its own sample, so the split cannot keep a patient's "
                    "crops together: %s", root, how)
        return
    if labels is not None and stems is not None:
        crops = defaultdict(list)  # sample id -> (label, file name) of its crops
        for sample, label, stem in zip(sample_ids, labels, stems):
            crops[sample].append((label, stem))
        numbered = [s for s, held in crops.items() if len(held) > 1 and
                    all(stem == s for _, stem in held) and len({lb for lb, _ in held}) == len(held)]
        if len(sample_ids) > 10 and len(numbered) >= max(3, len(crops) // 2):
            log.warning("%s: %d file names recur in several class folders, one crop in each "
                        "(e.g. %s), and are read as one sample each: they number crops, not "
                        "patients, so the split cannot keep a patient's crops together: %s",
                        root, len(numbered), ", ".join(sorted(numbered)[:3]), how)
            return
    # Some crops named without a sample (each its own) beside samples of many: the split
    # holds out a share of the samples, so those single crops take its places (4 unnamed
    # crops among 10 patients held out 4 crops of one class).
    sizes = Counter(sample_ids)
    alone = [s for s, n in sizes.items() if n == 1]
    if len(alone) >= max(3, len(sizes) // 4) and len(alone) < len(sizes):
        log.warning("%s: %d crops are each a sample of their own beside %d samples of several "
                    "crops (e.g. %s): the split holds out whole samples, so these single crops "
                    "weigh as much as a patient there; %s", root, len(alone),
                    len(sizes) - len(alone), ", ".join(alone[:3]), how)
