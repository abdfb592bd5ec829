"""The learning-rate schedules a training run steps per batch: one-cycle, or a linear warm-up
then cosine decay, over the run's ``total`` optimizer steps (pure: an optimizer in, its
scheduler out)."""

from __future__ import annotations

import torch


def lr_schedule(optimizer: torch.optim.Optimizer, schedule: str, lr: float,
                warmup_fraction: float, total: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The scheduler of ``schedule`` (``onecycle``, else warm-up then cosine) for ``total``
    steps, ``warmup_fraction`` of them rising to ``lr``."""
    total = max(int(total), 1)
    if schedule == "onecycle":
        pct = max(min(warmup_fraction, 0.9), 0.01)
        if abs(pct * total - 1.0) < 1e-6:
            # A warm-up of exactly one step: OneCycleLR divides by its length less one (10
            # steps at 0.1 raised ZeroDivisionError; under DDP more processes, fewer steps).
            pct = min(2.0 / total, 0.9)
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total,
                                                   pct_start=pct)
    warmup = min(max(int(warmup_fraction * total), 1), total)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [
        torch.optim.lr_scheduler.LinearLR(optimizer, 0.01, 1.0, total_iters=warmup),
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(total - warmup, 1)),
    ], milestones=[warmup])
