"""Backbones: plain ``nn.Module`` factories for multichannel cell crops, chosen by name.

``create_model(arch, in_chans, num_classes)`` returns a network that maps normalised
(N, in_chans, H, W) float32 input to (N, num_classes) logits, for any H, W (global pooling).
Each architecture is a factory ``(in_chans, num_classes, **kwargs) -> nn.Module`` registered
under its name with :func:`register_architecture`, as timm registers its models;
:func:`list_architectures` names them. A lab's own network reaches the command line (train,
predict, evaluate, finetune, export) through its installed package's entry point in the
``ctcnet.architectures`` group, ``labnet = "labpkg.nets:labnet"`` (the factory, registered
under the entry point's name), loaded when a name is not one registered here.

* ``compact``: a small CNN designed for 64-96 px crops at ~0.64 um/px (~20 MMAC and 70 k
  parameters at 80 px, 5 channels), so a 2-core CPU classifies thousands of events per second;
  average and max pooling are concatenated because a few bright platelet puncta or a small
  nucleus matter as much as the mean signal.
* ``resnet18``: torchvision's ResNet-18 with an N-channel stem; RGB weights, when given as a
  local state dict (``init_from`` in training), are adapted to N channels by
  :func:`load_backbone_state` (timm's ``adapt_input_conv`` idea); never downloaded. It needs
  the ``resnet`` extra (torchvision, built for the installed torch): torchvision is published
  for the registry's CUDA builds of torch only, so the default install, which takes a machine's
  local CPU torch when it has one, leaves it out.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ctcnet.core.install_hint import install_command
from ctcnet.errors import CtcnetError

ArchFactory = Callable[..., nn.Module]
_ARCHITECTURES: dict[str, ArchFactory] = {}


def register_architecture(name: str) -> Callable[[ArchFactory], ArchFactory]:
    """Decorator: make ``factory(in_chans, num_classes, **kwargs)`` the architecture ``name``.

    A name is registered once: a second factory under it would silently change what every
    checkpoint recording that name rebuilds.
    """
    def register(factory: ArchFactory) -> ArchFactory:
        if name in _ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is already registered")
        _ARCHITECTURES[name] = factory
        return factory
    return register


def list_architectures() -> list[str]:
    """The registered architecture names, in registration order, installed packages' entry
    points among them (:data:`ENTRY_POINTS`)."""
    _load_entry_points()
    return list(_ARCHITECTURES)


# The entry point group of a lab's own architectures (each: name = "module:factory").
ENTRY_POINTS = "ctcnet.architectures"


def _load_entry_points() -> None:
    """Register each installed ``ctcnet.architectures`` entry point not registered yet; one
    that cannot be loaded is refused by name (its package's own error beside)."""
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINTS):
        if point.name in _ARCHITECTURES:
            continue
        try:
            factory = point.load()
        except Exception as err:  # noqa: BLE001 - whatever its import raised, said in a line
            raise CtcnetError(f"the architecture {point.name!r} ({point.value}, entry point "
                              f"of {ENTRY_POINTS}) cannot be loaded: {type(err).__name__}: "
                              f"{err}") from None
        if point.name not in _ARCHITECTURES:  # (its module may register it as it loads)
            _ARCHITECTURES[point.name] = factory


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@register_architecture("compact")
class CompactCNN(nn.Module):
    """Five 3x3 conv-BN-ReLU layers (three with stride 2), then mean+max pooling and a linear head.

    Plain convolutions, not depthwise-separable ones: on a CPU they run several times faster per
    MAC in PyTorch and onnxruntime (see docs/benchmarks.md), which matters more here than the
    parameter count.
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
        """(N, in_chans, H, W) normalised crops -> (N, num_classes) logits."""
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


def torchvision_error() -> str | None:
    """Why torchvision cannot be used here, or None when it can. A torchvision built for
    another torch build fails at import with a RuntimeError, not an ImportError."""
    try:
        import torchvision.models  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any failure means the same to the user
        return f"{type(exc).__name__}: {exc}"
    return None


@register_architecture("resnet18")
def _resnet18(in_chans: int, num_classes: int, **kwargs) -> nn.Module:
    if kwargs:
        raise TypeError(f"resnet18 got unexpected arguments {sorted(kwargs)}")
    problem = torchvision_error()
    if problem is not None:
        raise CtcnetError("arch resnet18 needs torchvision built for this torch "
                          f"({torch.__version__}): {install_command('resnet')} ({problem})")
    from torchvision.models import resnet18

    net = resnet18(weights=None)
    net.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def load_backbone_state(net: nn.Module, state: dict) -> list[str]:
    """Load a plain backbone state dict (e.g. torchvision RGB weights) into ``net``.

    A stem convolution with another channel count is adapted (:func:`adapt_input_conv`);
    tensors whose shape still differs (the classifier head) are left as initialised. Returns
    the names of the tensors that were not loaded. The weights are copied once, at model
    creation, so the model never refers to the file again (it loads after the file is gone).
    """
    own = net.state_dict()
    usable, skipped = {}, []
    for name, value in state.items():
        target = own.get(name)
        if target is None:
            continue
        if value.ndim == 4 and target.ndim == 4 and value.shape[0] == target.shape[0] \
                and value.shape[2:] == target.shape[2:] and value.shape[1] != target.shape[1]:
            value = adapt_input_conv(value, target.shape[1])
        if value.shape == target.shape:
            usable[name] = value
        else:
            skipped.append(name)
    net.load_state_dict(usable, strict=False)
    return sorted(skipped + [k for k in own if k not in state])


def create_model(arch: str, in_chans: int, num_classes: int, **kwargs) -> nn.Module:
    """Build a backbone by name (randomly initialised; see :func:`load_backbone_state`).

    ``kwargs`` go to the architecture's factory; an unknown name lists the registered ones.
    """
    if arch not in _ARCHITECTURES:
        _load_entry_points()  # a lab's own, installed with its package
    factory = _ARCHITECTURES.get(arch)
    if factory is None:
        raise ValueError(f"unknown arch {arch!r}; choose one of {list_architectures()} (a lab's "
                         f"own: its package's entry point in {ENTRY_POINTS}, docs/training.md)")
    import inspect

    signature = inspect.signature(factory)
    try:  # an option the architecture does not take (a misspelt width): said in a line
        signature.bind(in_chans, num_classes, **kwargs)
    except TypeError as err:
        from ctcnet.errors import InputError

        takes = list(signature.parameters)[2:]
        raise InputError(f"arch {arch!r}: {err} (model.arch_kwargs; it takes "
                         f"{', '.join(takes) or 'none'})") from None
    return factory(in_chans, num_classes, **kwargs)
