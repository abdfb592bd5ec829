"""Backbones: plain ``nn.Module`` factories for multichannel cell crops.

``create_model(arch, in_chans, num_classes)`` returns a network that maps normalised
(N, in_chans, H, W) float32 input to (N, num_classes) logits, for any H, W (global pooling).

* ``compact``: a small CNN designed for 64-96 px crops at ~0.64 um/px (~20 MMAC and 70 k
  parameters at 80 px, 5 channels), so a 2-core CPU classifies thousands of events per second;
  average and max pooling are concatenated because a few bright platelet puncta or a small
  nucleus matter as much as the mean signal.
* ``resnet18``: torchvision's ResNet-18 with an N-channel stem; RGB weights, when given as a
  state dict, are adapted to N channels (timm's ``adapt_input_conv`` idea); never downloaded.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHS = ("compact", "resnet18")


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class CompactCNN(nn.Module):
    """Five 3x3 conv-BN-ReLU layers (three with stride 2), then mean+max pooling and a linear head.

    Plain convolutions, not depthwise-separable ones: on a CPU they run 4-7x faster per MAC in
    PyTorch and onnxruntime, which matters more here than the parameter count.
    """

    def __init__(self, in_chans: int, num_classes: int, width: int = 16, dropout: float = 0.1):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(in_chans, w, stride=2),    # 80 -> 40: cells are >= 10 px, platelets ~4 px
            _conv_bn(w, 2 * w, stride=2),       # 40 -> 20
            _conv_bn(2 * w, 2 * w),
            _conv_bn(2 * w, 4 * w, stride=2),   # 20 -> 10: receptive field covers a cluster
            _conv_bn(4 * w, 4 * w),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)
        return self.head(pooled)


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Turn an RGB stem weight (O, 3, k, k) into (O, in_chans, k, k) keeping activation scale."""
    out, cin = weight.shape[:2]
    if cin == in_chans:
        return weight
    mean = weight.float().mean(dim=1, keepdim=True)
    return (mean.repeat(1, in_chans, 1, 1) * (cin / in_chans)).to(weight.dtype)


def _resnet18(in_chans: int, num_classes: int, pretrained_state: dict | None = None) -> nn.Module:
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    if pretrained_state is not None:
        state = dict(pretrained_state)
        state["conv1.weight"] = adapt_input_conv(state["conv1.weight"], in_chans)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    net.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    if pretrained_state is not None:
        net.load_state_dict(state, strict=False)
    return net


def create_model(arch: str, in_chans: int, num_classes: int, **kwargs) -> nn.Module:
    """Build a backbone by name. ``resnet18`` accepts ``pretrained_path`` (a local state dict)."""
    if arch == "compact":
        return CompactCNN(in_chans, num_classes, **kwargs)
    if arch == "resnet18":
        path = kwargs.pop("pretrained_path", None)
        state = torch.load(path, map_location="cpu", weights_only=True) if path else None
        if kwargs:
            raise TypeError(f"resnet18 got unexpected arguments {sorted(kwargs)}")
        return _resnet18(in_chans, num_classes, state)
    raise ValueError(f"unknown arch {arch!r}; choose one of {ARCHS}")
