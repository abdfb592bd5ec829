"""Test-time symmetry: a model's logits averaged over turned and mirrored views of each crop.

A cell's class does not change when its crop is turned by a quarter or mirrored, and training
already shows the network every such view (augmentation), but one forward pass still answers
slightly differently for each. Averaging the logits over the views is an ensemble of the model
with itself: on the shipped models' held-out sets it removes 12-22 % of the errors (same
weights; docs/core3-rgb.md), at 4x ("rot4") or 8x ("d4") the network's compute. The views
ride along the batch dimension, so one call of the network serves them all and the same code
runs in torch, under autocast and in the ONNX graph (quarter turns are a transpose and a flip:
square crops only, which every ctcnet crop is).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ctcnet.nn.spec import SYMMETRIES


def symmetric_views(x: torch.Tensor, symmetry: str) -> torch.Tensor:
    """(N, C, S, S) -> (V*N, C, S, S): the views of ``symmetry``, view-major."""
    views = [x]
    for _ in range(3 if symmetry in ("rot4", "d4") else 0):
        views.append(views[-1].transpose(2, 3).flip(3))  # a quarter turn
    if symmetry == "d4":
        views += [v.flip(3) for v in views]
    return torch.cat(views) if len(views) > 1 else x


def symmetric_logits(net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     symmetry: str) -> torch.Tensor:
    """``net``'s logits for normalised crops ``x``, averaged over the views of ``symmetry``."""
    n_views = SYMMETRIES[symmetry]
    if n_views == 1:
        return net(x)
    logits = net(symmetric_views(x, symmetry))
    return logits.unflatten(0, (n_views, -1)).mean(dim=0)
