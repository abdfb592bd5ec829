"""Backbones: every arch x channel count trains (shapes, no NaN, a gradient for every parameter)."""

import pytest
import torch

from ctcnet.nn.nets import (
    adapt_input_conv,
    create_model,
    list_architectures,
    load_backbone_state,
    register_architecture,
)


@pytest.mark.parametrize("arch", [pytest.param(a, marks=pytest.mark.resnet) if a == "resnet18"
                                  else a for a in list_architectures()])
@pytest.mark.parametrize("in_chans", [3, 4, 5, 6])
def test_forward_backward_every_parameter_gets_a_gradient(arch, in_chans):
    torch.manual_seed(0)
    net = create_model(arch, in_chans=in_chans, num_classes=4)
    x = torch.randn(3, in_chans, 48, 48)
    logits = net(x)
    assert logits.shape == (3, 4) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None, f"{arch}: {name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{arch}: {name} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in net.parameters())


@pytest.mark.parametrize("size", [64, 80, 96, 37])
def test_compact_takes_any_input_size(size):
    net = create_model("compact", in_chans=5, num_classes=3).eval()
    assert net(torch.randn(2, 5, size, size)).shape == (2, 3)


def test_compact_is_small_enough_to_ship():
    net = create_model("compact", in_chans=5, num_classes=4)
    assert sum(p.numel() for p in net.parameters()) < 500_000


def test_channels_last_gives_the_same_logits():
    net = create_model("compact", in_chans=5, num_classes=4).eval()
    x = torch.randn(2, 5, 64, 64)
    expected = net(x)
    net = net.to(memory_format=torch.channels_last)
    got = net(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_adapt_input_conv_keeps_the_activation_scale():
    rgb = torch.randn(8, 3, 7, 7)
    adapted = adapt_input_conv(rgb, 5)
    assert adapted.shape == (8, 5, 7, 7)
    # A grey image (equal channels) gives the same response with either stem.
    grey3, grey5 = torch.ones(1, 3, 7, 7), torch.ones(1, 5, 7, 7)
    torch.testing.assert_close(torch.nn.functional.conv2d(grey5, adapted),
                               torch.nn.functional.conv2d(grey3, rgb), rtol=1e-4, atol=1e-4)


@pytest.mark.resnet
def test_resnet18_adapts_local_rgb_weights(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    rgb = resnet18(weights=None).state_dict()
    net = create_model("resnet18", in_chans=6, num_classes=4)
    skipped = load_backbone_state(net, rgb)
    assert net.conv1.weight.shape == (64, 6, 7, 7)
    torch.testing.assert_close(net.conv1.weight, adapt_input_conv(rgb["conv1.weight"], 6))
    torch.testing.assert_close(net.layer1[0].conv1.weight, rgb["layer1.0.conv1.weight"])
    assert net.fc.out_features == 4 and "fc.weight" in skipped


@pytest.mark.resnet
def test_init_from_rgb_weights_loads_after_the_file_is_gone(tmp_path):
    """init_from copies the weights at creation: the fine-tuned model never needs the file."""
    from torchvision.models import resnet18

    from ctcnet.nn.classifier import load_model, save_model
    from ctcnet.training.lit import CTCLitModule

    torch.manual_seed(0)
    rgb = resnet18(weights=None).state_dict()
    path = tmp_path / "rgb.pt"
    torch.save(rgb, path)
    module = CTCLitModule(crop_size=32, arch="resnet18", init_from=str(path))
    torch.testing.assert_close(module.model.net.layer1[0].conv1.weight,
                               rgb["layer1.0.conv1.weight"])
    save_model(tmp_path / "tuned.pt", module.model, module.current_spec())
    path.unlink()
    model, spec = load_model(tmp_path / "tuned.pt")
    assert "pretrained_path" not in spec.arch_kwargs
    torch.testing.assert_close(model.net.layer1[0].conv1.weight, rgb["layer1.0.conv1.weight"])


def test_unknown_arch_is_refused_with_the_registered_names():
    with pytest.raises(ValueError, match="unknown arch.*compact.*resnet18"):
        create_model("vit_huge", in_chans=5, num_classes=4)


def test_a_registered_architecture_is_built_by_name(monkeypatch):
    from ctcnet.nn import nets

    monkeypatch.setattr(nets, "_ARCHITECTURES", dict(nets._ARCHITECTURES))

    @register_architecture("tiny_linear")
    def tiny(in_chans, num_classes):
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_chans * 64, num_classes))

    assert list_architectures()[-1] == "tiny_linear"
    assert create_model("tiny_linear", 2, 4)(torch.randn(1, 2, 8, 8)).shape == (1, 4)
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("compact")(tiny)


def test_an_architecture_giving_other_than_a_logit_a_class_is_refused_as_it_is_built(
        monkeypatch):
    """A lab's network ignoring num_classes (3 logits for 4 classes) ran the data's setup and
    died at the first loss with a traceback."""
    from ctcnet.errors import InputError
    from ctcnet.io.panel import default_panel
    from ctcnet.io.taxonomy import default_taxonomy
    from ctcnet.nn import nets
    from ctcnet.nn.classifier import build_classifier
    from ctcnet.nn.spec import ModelSpec

    monkeypatch.setattr(nets, "_ARCHITECTURES", dict(nets._ARCHITECTURES))

    @register_architecture("three_only")
    def three(in_chans, num_classes):
        return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                   torch.nn.Linear(in_chans, 3))

    spec = ModelSpec(arch="three_only", panel=default_panel(), taxonomy=default_taxonomy(),
                     crop_size=16)
    with pytest.raises(InputError, match=r"arch 'three_only' gives \(3,\) outputs for a crop, "
                                         r"not one logit for each of the 4 classes"):
        build_classifier(spec)
    assert build_classifier(ModelSpec(arch="compact", panel=default_panel(),
                                      taxonomy=default_taxonomy(), crop_size=16,
                                      arch_kwargs={"width": 8})).spec.num_classes == 4


def test_resnet18_without_torchvision_says_which_extra(monkeypatch):
    """The default install leaves torchvision out; asking for resnet18 names the extra."""
    from ctcnet.errors import CtcnetError
    from ctcnet.nn import nets

    monkeypatch.setattr(nets, "torchvision_error", lambda: "ModuleNotFoundError: torchvision")
    import re

    from ctcnet.core.install_hint import install_command

    with pytest.raises(CtcnetError, match=re.escape(install_command("resnet"))):
        create_model("resnet18", in_chans=5, num_classes=4)


def test_an_option_the_architecture_does_not_take_is_refused_in_a_line():
    """--model.arch_kwargs.widht 16 ended in a 54-line traceback."""
    import pytest

    from ctcnet.errors import InputError
    from ctcnet.nn.nets import create_model

    with pytest.raises(InputError, match=r"arch 'compact': .*'widht' .*it takes width"):
        create_model("compact", 5, 4, widht=16)


def _lab_network(in_chans, num_classes):
    """A lab's own network, as its package's entry point names it."""
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                               torch.nn.Linear(in_chans, num_classes))


def test_a_labs_network_is_found_by_its_packages_entry_point(monkeypatch):
    """A lab's own architecture reached the command line only through a wrapper script that
    imported it first: an installed package's ctcnet.architectures entry point is found."""
    import importlib.metadata

    from ctcnet.errors import CtcnetError
    from ctcnet.nn import nets

    monkeypatch.setattr(nets, "_ARCHITECTURES", dict(nets._ARCHITECTURES))
    points = [importlib.metadata.EntryPoint("labnet", f"{__name__}:_lab_network",
                                            nets.ENTRY_POINTS)]
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: points if group == nets.ENTRY_POINTS else [])
    assert create_model("labnet", 5, 4)(torch.randn(2, 5, 16, 16)).shape == (2, 4)
    assert "labnet" in list_architectures()
    points.append(importlib.metadata.EntryPoint("broken", "no_such_module:net",
                                                nets.ENTRY_POINTS))
    with pytest.raises(CtcnetError, match=r"the architecture 'broken' \(no_such_module:net, "
                                          r"entry point of ctcnet.architectures\) cannot be"):
        create_model("other", 5, 4)
