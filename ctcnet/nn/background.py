"""Background level and noise of a crop from its low percentiles (numpy or torch, torch-free).

The one estimate behind the model's normalisation (:mod:`ctcnet.nn.normalise`), the background
fill of padded crops (:mod:`ctcnet.detect.cropping`) and the pixel-size estimate: the 10th and
30th percentiles of the background pixels, read as the standard normal's quantiles, give the
noise sd and the level. Robust to an object covering up to ~70 % of the pixels read. This module
never imports torch, so the numpy and ONNX-runtime paths stay torch-free.
"""

from __future__ import annotations

import math
import sys

import numpy as np

# Standard normal quantiles of the two percentiles used to estimate background and noise.
_Q_LOW, _Q_HIGH = 0.10, 0.30
_Z_LOW, _Z_HIGH = -1.2815516, -0.5244005


def background_from_percentiles(q_low, q_high, noise_floor=0.0):
    """Background level and noise sd from the 10th and 30th percentiles of background pixels
    (numpy or torch, elementwise): the one formula of the normalisation and background fill."""
    noise = (q_high - q_low) / (_Z_HIGH - _Z_LOW)
    noise = noise.clip(min=noise_floor) if hasattr(noise, "clip") else max(noise, noise_floor)
    return q_high - _Z_HIGH * noise, noise


def percentile_indices(count: int) -> tuple[int, int]:
    """Indices of the 10th and 30th percentiles among ``count`` sorted values."""
    last = count - 1
    return int(round(_Q_LOW * last)), int(round(_Q_HIGH * last))


def background_sample(x, step: int, source: str = "crop", ring_px: int = 10):
    """(N, C, M) pixels the background is read from: every ``step``-th pixel of the whole
    crop, or every ``step // 2``-th of its outer ring ``ring_px`` wide (top and bottom bands,
    then the left and right bands between them). Torch or numpy (plain slicing and
    concatenation, which ONNX exports as such)."""
    n, c, h, w = x.shape
    r = min(int(ring_px), h // 2, w // 2)
    if source == "crop" or r <= 0:
        return x[:, :, ::step, ::step].reshape(n, c, -1)
    # The ring holds ~45 % of an 80 px crop's pixels: read at half the step, it gives more
    # samples than the whole crop at the full step (~700 against 400), so the noise estimate
    # is no noisier.
    step = max(1, step // 2)
    bands = [x[:, :, :r:step, ::step], x[:, :, h - r::step, ::step],
             x[:, :, r:h - r:step, :r:step], x[:, :, r:h - r:step, w - r::step]]
    flat = [b.reshape(n, c, -1) for b in bands]
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported
    if torch is not None and isinstance(x, torch.Tensor):
        return torch.cat(flat, dim=-1)
    return np.concatenate(flat, axis=-1)


assert math.isclose(_Z_HIGH - _Z_LOW, 0.7571511, rel_tol=1e-6)
