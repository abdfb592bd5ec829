"""Normalisation of raw counts into network input, as a torch module inside the model.

It lives inside the network (and so inside the exported ONNX graph), which makes the contract
for every caller the same: raw scanner counts in, class probabilities out. Training, torch
inference and ONNX inference cannot drift apart because they run this one piece of code.

Methods, per channel, from the panel:

* ``snr`` (default): a robust per-crop background ``b`` and noise ``s`` from the 10th and 30th
  percentiles of the crop, read on every ``sample_step``-th pixel in each direction (assuming at
  least ~70 % of a crop is background, which holds for cells and clusters in 80 px crops); then
  ``z = (x - b) / (s * softness)`` is compressed. Invariant to camera gain and offset, so
  scanners whose intensities differ 10x, or whose backgrounds differ, look alike.
  ``compression``: ``asinh`` (the default for new models, at softness 1: linear within the
  noise, logarithmic above, so the ratio of two channels stays visible over four decades: a
  bright CK and its 2 % leak into another channel differ by ~4 in the input, not by nothing),
  or ``rational`` = z / (1 + |z|) (the default of models made before; at softness 6 it
  saturates above ~30 noise units, so a leak and real staining looked alike). ``noise_floor``
  (counts) bounds ``s`` from below for flat or 8-bit data. ``background_from``: ``crop``
  (every pixel of the crop; the first models') or ``ring`` (only the crop's outer ring of
  ``ring_px`` pixels: background even when the object fills most of the crop, as in a tight
  single-cell export padded to the model's field of view, or a cluster; the percentiles still
  tolerate a neighbour covering up to ~70 % of the ring).
* ``fixed``: ``(x - low) / (high - low)`` over the channel's ``value_range``.

Keys missing from a panel's normalisation take the values of the first release (asinh, step
2, softness 3), so every model keeps the preprocessing it was trained with.
"""

from __future__ import annotations

import torch
from torch import nn

from ctcnet.core.robust import (
    background_and_noise,
    background_from_percentiles,
    background_sample,
    percentile_indices,
)
from ctcnet.io.panel import Panel

COMPRESSIONS = ("rational", "asinh")
BACKGROUND_SOURCES = ("crop", "ring")


class Normalise(nn.Module):
    """Raw (N, C, H, W) counts -> normalised network input, per the panel's channel settings."""

    def __init__(self, panel: Panel):
        super().__init__()
        panel.check_normalisation()
        snr, softness, floor, low, scale = [], [], [], [], []
        compression, step, source = set(), set(), set()
        for ch in panel.channels:
            cfg = ch.normalisation_in_full
            snr.append(cfg.get("method", "snr") == "snr")
            softness.append(float(cfg["softness"]))
            floor.append(float(cfg["noise_floor"]))
            if snr[-1]:
                compression.add(cfg["compression"])
                step.add(int(cfg["sample_step"]))
                source.add((cfg["background_from"], int(cfg["ring_px"])))
            lo, hi = ch.value_range
            low.append(float(lo))
            scale.append(1.0 / (float(hi) - float(lo)))
        # One compression and one sampling step for the whole crop: they are per-model choices
        # (Panel.check_normalisation refused a panel whose channels differ).
        self.compression = compression.pop() if compression else "rational"
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"unknown compression {self.compression!r}; use {COMPRESSIONS}")
        self.sample_step = step.pop() if step else 2
        self.background_from, self.ring_px = source.pop() if source else ("crop", 10)
        if self.background_from not in BACKGROUND_SOURCES:
            raise ValueError(f"unknown background_from {self.background_from!r}; use "
                             f"{BACKGROUND_SOURCES}")
        shape = (1, len(snr), 1, 1)
        self.register_buffer("snr_mask", torch.tensor(snr, dtype=torch.float32).view(shape))
        self.register_buffer("softness", torch.tensor(softness).view(shape))
        self.register_buffer("noise_floor", torch.tensor(floor).view(shape))
        self.register_buffer("fixed_low", torch.tensor(low).view(shape))
        self.register_buffer("fixed_scale", torch.tensor(scale).view(shape))
        self.any_snr, self.all_snr = any(snr), all(snr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw counts as the network's input, per channel as the panel says: a fixed range, or
        noise units over the background measured on each crop."""
        x = x.float()
        if not self.any_snr:
            return (x - self.fixed_low) * self.fixed_scale
        n, c = x.shape[:2]
        # Percentiles from a pixel grid (neighbouring pixels are correlated by the PSF anyway)
        # via TopK of the lowest 30 %: far cheaper than sorting the whole crop, exports to ONNX
        # TopK and runs the same on every backend. Unsorted, the k-th smallest is the largest
        # of the k smallest; the 10th percentile is found the same way among the lowest 30 %
        # (the same order statistics as one sorted TopK, 3 % faster in onnxruntime). This is
        # ctcnet.core.robust's ``nearest`` percentile method written as graph ops.
        sample = background_sample(x, self.sample_step, self.background_from, self.ring_px)
        i_low, i_high = percentile_indices(sample.shape[-1])
        lowest, _ = torch.topk(sample, i_high + 1, dim=-1, largest=False, sorted=False)
        q_high = lowest.amax(dim=-1)
        q_low = torch.topk(lowest, i_low + 1, dim=-1, largest=False, sorted=False)[0].amax(dim=-1)
        background, noise = background_from_percentiles(
            q_low.view(n, c, 1, 1), q_high.view(n, c, 1, 1), self.noise_floor)
        # Elementwise passes over the whole batch dominate the cost: one fused multiply-add,
        # then the cheapest compression that keeps the sign and bounds the bright end.
        gain = 1.0 / (noise * self.softness)
        z = torch.addcmul(-background * gain, x, gain)
        snr = z / (1.0 + z.abs()) if self.compression == "rational" else _asinh(z)
        if self.all_snr:
            return snr
        return torch.where(self.snr_mask > 0, snr, (x - self.fixed_low) * self.fixed_scale)


def _asinh(z: torch.Tensor) -> torch.Tensor:
    """asinh(z) as sign(z) log(|z| + sqrt(z^2 + 1)), the sign taken as z / |z|.

    The ONNX exporter writes torch.asinh as this formula with a Sign node, and onnxruntime's
    CPU Sign and Asinh kernels are scalar loops (1.6 and 10 ns a value, against 0.3 for Div):
    this form runs the shipped model 1.09x faster there, with the values of the graph before (z
    / |z| is exactly +-1; below |z| = 1e-30 the log is exactly 0 either way). Written here,
    torch and the ONNX graph compute the same formula. It is within 1e-6 of torch.asinh (less
    precise only below |z| ~ 1e-4, far inside the noise).
    """
    magnitude = z.abs()
    return torch.log(magnitude + torch.sqrt(magnitude * magnitude + 1.0)) * (
        z / torch.clamp(magnitude, min=1e-30))


def snr_reference(x, softness: float = 3.0, noise_floor: float = 0.5,
                  compression: str = "asinh", sample_step: int = 2,
                  background_from: str = "crop", ring_px: int = 10):
    """The ``snr`` method in plain numpy on one (C, H, W) crop, for documentation and tests."""
    import numpy as np

    sample = background_sample(x[None], sample_step, background_from, ring_px)[0]
    background, noise = background_and_noise(sample.astype(np.float64), "nearest", noise_floor)
    z = (x - background[:, None, None]) / (noise[:, None, None] * softness)
    return z / (1.0 + np.abs(z)) if compression == "rational" else np.arcsinh(z)

