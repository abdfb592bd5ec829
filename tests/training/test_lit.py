"""ctcnet.training.lit: a model starts from another's weights, channels matched by name."""

import pytest
from conftest import make_tiny_model

from ctcnet.errors import PanelMismatchError

RGB_ORDER = ["CK", "CD45", "DAPI"]  # R, G, B as published composites show them
TINY_CROP = 32


# --- training for another panel -------------------------------------------------------------------

def test_a_five_channel_model_starts_a_three_marker_one(tmp_path):
    from ctcnet.nn.classifier import load_model
    from ctcnet.training.lit import CTCLitModule

    five = make_tiny_model(tmp_path / "five.pt", ["DAPI", "CK", "CD45", "CD61", "CD66b"])
    module = CTCLitModule(panel={"channels": RGB_ORDER, "pixel_size_um": 0.64},
                          crop_size=TINY_CROP, arch_kwargs={"width": 8}, init_from=str(five))
    source = load_model(five)[0].state_dict()
    cut = 0
    for key, value in module.model.state_dict().items():
        if value.shape == source[key].shape:
            assert (value == source[key]).all(), key
        else:  # the stem: CK, CD45, DAPI filters taken from the five-channel model by name
            assert (value == source[key][:, [1, 2, 0]]).all(), key
            cut += 1
    assert cut >= 1
    with pytest.raises(PanelMismatchError, match=r"lacks \['VIM'\]"):
        CTCLitModule(panel={"channels": ["DAPI", "CK", "VIM"], "pixel_size_um": 0.64},
                     crop_size=TINY_CROP, arch_kwargs={"width": 8}, init_from=str(five))
