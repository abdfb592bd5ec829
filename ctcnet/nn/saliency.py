"""Per-channel saliency: which marker, where, drove a call (short own code, no extra library).

Grad-CAM (Selvaraju et al. 2017) tells *where* in the crop the evidence for a class lies: the
last convolutional feature maps weighted by the mean gradient of the class logit. It has no
channel axis, because the first convolution mixes the channels. To tell *which marker* drove a
call we multiply it with gradient x input of the normalised image, per channel (the "guided
Grad-CAM" idea with plain gradients): a CK channel that pushes towards "ctc" lights up inside the
Grad-CAM region, a CD45 channel that argues against it stays dark.

``grad_cam(model, crops, target_class) -> (N, C, H, W)``, scaled to [0, 1] per event over all
channels, so a reviewer can compare channels of one event side by side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

# Blur (px) of the gradient x input maps: raw input gradients are speckled at pixel scale.
GRADIENT_SMOOTHING_SIGMA = 1.5


def target_layer(net: nn.Module) -> nn.Module:
    """The module whose output is the last spatial feature map of a backbone."""
    for name in ("features", "layer4"):
        module = getattr(net, name, None)
        if module is not None:
            return module
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("the network has no convolution to explain")
    return convs[-1]


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), every channel alike, edges replicated."""
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    padded = nn.functional.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = nn.functional.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return nn.functional.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def grad_cam(model: nn.Module, crops, target_class: int | Sequence[int] | None = None,
             batch_size: int = 64, fixed_batch: bool | None = None) -> np.ndarray:
    """Per-channel saliency (N, C, H, W) in [0, 1] for ``target_class`` (default: the call).

    ``model`` is a :class:`~ctcnet.nn.classifier.CTCClassifier` (raw counts in, logits out);
    ``crops`` raw counts (N, C, H, W) as numpy or torch; ``target_class`` one class index for
    all events, one per event, or None for each event's predicted class. ``fixed_batch``: run
    every batch at ``batch_size`` crops, the last one padded with blank crops (default: on a
    GPU, where cuDNN in benchmark mode, as predict sets it, tunes its kernels afresh for every
    new input shape, forwards and backwards, which costs more than the padded rows). Each
    crop's map is its own: the network in eval mode mixes nothing across a batch.
    """
    x_all = torch.as_tensor(np.asarray(crops, dtype=np.float32))
    if x_all.ndim != 4:
        raise ValueError(f"expected (N, C, H, W) crops, got shape {tuple(x_all.shape)}")
    n = x_all.shape[0]
    if target_class is None or np.ndim(target_class) == 0:
        targets = None if target_class is None else np.full(n, int(target_class))
    else:
        targets = np.asarray(target_class, np.int64)
        if targets.shape != (n,):
            raise ValueError(f"need one target class per crop ({n}), got {targets.shape}")
    device = next(model.parameters()).device
    if fixed_batch is None:
        fixed_batch = device.type == "cuda"
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, n, batch_size):
            x = x_all[start:start + batch_size]
            t = None if targets is None else torch.as_tensor(targets[start:start + batch_size])
            kept = len(x)
            if fixed_batch and kept < batch_size:
                x = torch.cat([x, x.new_zeros((batch_size - kept, *x.shape[1:]))])
                t = None if t is None else torch.cat([t, t.new_zeros(batch_size - kept)])
            out.append(_grad_cam_batch(model, x.to(device), t)[:kept].cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(tuple(x_all.shape), np.float32)


def _grad_cam_batch(model: nn.Module, raw: torch.Tensor, targets: torch.Tensor | None
                    ) -> torch.Tensor:
    captured = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured["maps"] = output

    hook = target_layer(model.net).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            x = model.normalise(raw.float()).detach().requires_grad_(True)
            # The crop as shown, not the test-time symmetry's turned views: the map must line
            # up with the image beside it.
            logits = model.net(x)
            if targets is None:
                targets = logits.argmax(dim=1)
            targets = targets.to(logits.device)
            chosen = logits.gather(1, targets.view(-1, 1)).sum()
            chosen.backward()
    finally:
        hook.remove()
    maps, grads = captured["maps"], captured["maps"].grad
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * maps).sum(dim=1, keepdim=True))
    cam = nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)
    evidence = torch.relu(_gaussian_blur((x.grad * x).detach(), GRADIENT_SMOOTHING_SIGMA))
    saliency = cam.detach() * evidence
    peak = saliency.amax(dim=(1, 2, 3), keepdim=True)
    return torch.where(peak > 0, saliency / peak.clamp_min(1e-12), torch.zeros_like(saliency))


def channel_importance(saliency: np.ndarray) -> np.ndarray:
    """Share of each channel in an event's saliency, (N, C), rows summing to 1 (or 0)."""
    total = saliency.sum(axis=(2, 3))
    norm = total.sum(axis=1, keepdims=True)
    return np.divide(total, norm, out=np.zeros_like(total), where=norm > 0)
