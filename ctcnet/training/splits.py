"""Labelled crops in memory for training: one split's arrays (:class:`SplitData`), the torch
dataset that serves them, augmented, to a loader (:class:`CropDataset`, :func:`crop_loader`),
and how crops are assigned to validation: by whole sample (:func:`sample_level_split`), or by
crop only where the data come from one sample (:func:`crop_level_split`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ctcnet.errors import InputError

# Each process of a DDP run draws its own augmentation, its rank's step off the seed: seeded
# alike, four GPUs applied the same zoom, gain and noise draws to four crops at once. Rank 0
# keeps the seed's own stream, so a run of one process reproduces as before.
RANK_SEED_STEP = 1_000_003


def worker_init(worker_id: int) -> None:
    """Each dataloader worker gets its own augmentation random stream (torch seeds it; the
    same on every process of a DDP run, so the dataset's ``rank`` steps it off)."""
    info = torch.utils.data.get_worker_info()
    augment = getattr(info.dataset, "augment", None)
    if augment is not None and hasattr(augment, "reseed"):
        rank = int(getattr(info.dataset, "rank", 0))
        augment.reseed(int((info.seed + RANK_SEED_STEP * rank) % 2**32))


def crop_loader(dataset: Dataset, batch_size: int, num_workers: int, train: bool
                ) -> DataLoader:
    """The batches of one split: shuffled for training (its last partial batch dropped when
    each process has a full one besides: a batch of one crop would break BatchNorm), in order
    otherwise. Under
    DDP, validation and test crops are each scored once: Lightning's sampler would pad the
    ranks' shares with repeats, which count twice in the metrics that choose the checkpoint
    (a set of 9 scored as 10), and a set smaller than the processes is refused: a process
    with no crop to score would leave the others waiting on it."""
    sampler = None
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    processes = torch.distributed.get_world_size() if distributed else 1
    if not train and distributed:
        from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

        if 0 < len(dataset) < processes:  # (Lightning's sampler asserts, and DDP hangs up)
            raise InputError(f"{len(dataset)} validation crop(s) for {processes} processes: "
                             "each process scores a share, at least one; hold out more crops "
                             "(data.val_fraction, data.simulate's val counts) or train on "
                             "fewer processes (trainer.devices)")
        sampler = UnrepeatedDistributedSampler(dataset, shuffle=False)
    # Each process's share decides whether a partial batch can be spared: under DDP a set of
    # 64 in batches of 48 is 32 a process, whose one partial batch dropped trained nothing.
    share = -(-len(dataset) // processes)
    return DataLoader(dataset, batch_size=batch_size, shuffle=train, sampler=sampler,
                      drop_last=train and share > batch_size, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available(), persistent_workers=num_workers > 0,
                      worker_init_fn=worker_init if num_workers > 0 else None)


class CropDataset(Dataset):
    """(raw crop float32 tensor (C, S, S), class index) pairs from one in-memory array, and
    optionally a second of crops rendered at finer pixels (``fine``: their own (N, C, F, F)
    array and targets), which the augmentation brings to model scale as tight exports
    (``fine_ratio``: their pixel size over the model's). ``rank``: the process's in a DDP
    run, whose workers' augmentation streams it steps off (:func:`worker_init`)."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, augment=None,
                 fine: SplitData | None = None, fine_ratio: float = 1.0, rank: int = 0):
        if len(images) != len(targets):
            raise ValueError("one target per image")
        if fine is not None and (augment is None or not fine_ratio < 1.0):
            raise ValueError("finer crops need the augmentation to bring them to model scale")
        self.images = images
        self.fine = fine
        self.fine_ratio = float(fine_ratio)
        own = np.asarray(targets, dtype=np.int64)
        self.targets = own if fine is None else np.concatenate([own, fine.targets])
        self.augment = augment
        self.rank = int(rank)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        n = len(self.images)
        if i >= n:  # a finer crop: always a tight export, brought to the model's side
            crop = self.augment(self.fine.images[i - n].astype(np.float32), self.fine_ratio,
                                self.images.shape[-1])
        else:
            crop = self.images[i].astype(np.float32)
            if self.augment is not None:
                crop = self.augment(crop)
        return torch.from_numpy(np.ascontiguousarray(crop)), int(self.targets[i])


@dataclass
class SplitData:
    """One split in memory plus what it is made of (for the model card)."""

    images: np.ndarray
    targets: np.ndarray
    sample_ids: list[str] = field(default_factory=list)

    def class_counts(self, class_names: list[str]) -> dict[str, int]:
        """Crops per class, by name."""
        counts = np.bincount(self.targets, minlength=len(class_names))
        return {name: int(n) for name, n in zip(class_names, counts)}


def sample_level_split(sample_ids: list[str], val_fraction: float, seed: int) -> np.ndarray:
    """True for crops whose sample goes to validation; a stable hash of (seed, sample) decides.

    At least one sample goes to validation and at least one stays for training when there are
    two or more samples, unless ``val_fraction`` is 0: none then (a lab that placed its
    validation patients by hand lost another one from training to it).
    """
    unique = sorted(set(sample_ids))
    scores = {s: int(hashlib.sha1(f"{seed}:{s}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
              for s in unique}
    ranked = sorted(unique, key=scores.get)
    n_val = int(round(val_fraction * len(unique)))
    if len(unique) >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), len(unique) - 1)
    val_samples = set(ranked[:n_val])
    return np.array([s in val_samples for s in sample_ids], dtype=bool)


def crop_level_split(targets: np.ndarray, val_fraction: float, seed: int) -> np.ndarray:
    """True for crops that go to validation: ``val_fraction`` of each class, at random.

    Only for data from one sample (e.g. one cartridge's reviewed events), where a sample-level
    split is impossible; validation figures are then optimistic (correlated crops).
    """
    targets = np.asarray(targets)
    rng = np.random.default_rng(seed)
    to_val = np.zeros(len(targets), bool)
    for k in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == k))
        n_val = int(round(val_fraction * len(members)))
        if len(members) >= 2 and val_fraction > 0:
            n_val = min(max(n_val, 1), len(members) - 1)
        to_val[members[:n_val]] = True
    return to_val
