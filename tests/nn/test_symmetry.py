"""Test-time symmetry: the views, the averaged logits, the spec field, training and ONNX."""

import numpy as np
import pytest
import torch

from ctcnet.deploy.export import export_onnx
from ctcnet.deploy.runtime import OnnxClassifier
from ctcnet.errors import InputError
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.classifier import build_classifier, load_model, save_model
from ctcnet.nn.crop_input import synthetic_crops
from ctcnet.nn.nets import create_model
from ctcnet.nn.spec import ModelSpec
from ctcnet.nn.symmetry import SYMMETRIES, symmetric_logits, symmetric_views

CROP = 24


def _turns_and_mirrors(x, mirrors: bool):
    views = [torch.rot90(x, k, (2, 3)) for k in range(4)]
    return views + [v.flip(2) for v in views] if mirrors else views


@pytest.mark.parametrize("symmetry,mirrors", [("rot4", False), ("d4", True)])
def test_views_are_the_group(symmetry, mirrors):
    x = torch.randn(3, 2, 5, 5)
    views = symmetric_views(x, symmetry).unflatten(0, (SYMMETRIES[symmetry], -1))
    expected = _turns_and_mirrors(x, mirrors)
    assert len(views) == len(expected)
    for e in expected:  # each view of the group once, in some order
        assert sum(bool(torch.equal(v, e)) for v in views) == 1
    assert symmetric_views(x, "none") is x


@pytest.mark.parametrize("symmetry,mirrors", [("rot4", False), ("d4", True)])
def test_averaged_logits_are_invariant(symmetry, mirrors):
    torch.manual_seed(0)
    net = create_model("compact", in_chans=2, num_classes=4, width=4).eval()
    x = torch.randn(6, 2, CROP, CROP)
    with torch.no_grad():
        plain = net(x)
        averaged = symmetric_logits(net, x, symmetry)
        expected = torch.stack([net(v) for v in _turns_and_mirrors(x, mirrors)]).mean(0)
        torch.testing.assert_close(averaged, expected, atol=1e-5, rtol=1e-5)
        for view in _turns_and_mirrors(x, mirrors)[1:]:
            torch.testing.assert_close(symmetric_logits(net, view, symmetry), averaged,
                                       atol=1e-5, rtol=1e-5)
    # A network of one view is not invariant: the test above can fail.
    assert not torch.allclose(plain, net(torch.rot90(x, 1, (2, 3))), atol=1e-3)


def _spec(symmetry="rot4"):
    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    return ModelSpec("compact", panel, default_taxonomy(), crop_size=CROP,
                     arch_kwargs={"width": 4}, symmetry=symmetry)


def test_classifier_averages_in_eval_and_trains_on_one_view():
    torch.manual_seed(1)
    model = build_classifier(_spec())
    raw = torch.rand(4, 3, CROP, CROP) * 1000 + 100
    with torch.no_grad():
        x = model.normalise(raw)
        model.eval()
        torch.testing.assert_close(model(raw), symmetric_logits(model.net, x, "rot4"))
        model.train()
        model.net.eval()  # BatchNorm on running statistics: only the views differ
        torch.testing.assert_close(model(raw), model.net(x))


def test_spec_round_trip_and_refusal(tmp_path):
    spec = _spec("d4")
    assert ModelSpec.from_dict(spec.to_dict()).symmetry == "d4"
    legacy = {k: v for k, v in spec.to_dict().items() if k != "symmetry"}
    assert ModelSpec.from_dict(legacy).symmetry == "none"  # models made before the field
    with pytest.raises(InputError, match="symmetry 'rot8' is not one of"):
        ModelSpec.from_dict({**spec.to_dict(), "symmetry": "rot8"})
    save_model(tmp_path / "m.pt", build_classifier(spec))
    assert load_model(tmp_path / "m.pt")[1].symmetry == "d4"


def test_onnx_export_carries_the_symmetry(tmp_path):
    torch.manual_seed(2)
    spec = _spec("rot4")
    model = build_classifier(spec).eval()
    save_model(tmp_path / "m.pt", model)
    export_onnx(tmp_path / "m.pt", tmp_path / "m.onnx")  # verification against torch inside
    crops = synthetic_crops(spec, 9, seed=3)
    with torch.no_grad():
        ref = model(torch.from_numpy(crops.astype(np.float32))).numpy()
    clf = OnnxClassifier(tmp_path / "m.onnx")
    assert clf.spec["symmetry"] == "rot4"
    np.testing.assert_allclose(clf.run(crops)[0], ref, atol=1e-4, rtol=1e-4)


def test_card_and_registry_name_the_symmetry():
    from ctcnet.commands.models import _line
    from ctcnet.evaluation.card_markdown import symmetry_text
    from ctcnet.nn.registry import get_model

    assert "four quarter turns" in symmetry_text("rot4") and "4x" in symmetry_text("rot4")
    assert "8x" in symmetry_text("d4") and symmetry_text("none") == ""
    core3 = get_model("ctcnet-core3")  # shipped with rot4: its card says so, and so does the list
    assert core3.symmetry == load_model(core3.checkpoint)[1].symmetry == "rot4"
    assert "test-time symmetry rot4 (4 views per crop)" in _line(core3)
    assert "quarter turns" in (core3.folder / "ctcnet-core3.md").read_text()
    assert "test-time symmetry" not in _line(get_model("ctcnet-default"))
