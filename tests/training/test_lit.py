"""ctcnet.training.lit: a model starts from another's weights, channels matched by name."""

import pytest
from conftest import make_tiny_model

from ctcnet.errors import PanelMismatchError

RGB_ORDER = ["CK", "CD45", "DAPI"]  # R, G, B as published composites show them
TINY_CROP = 32


# --- training for another panel -------------------------------------------------------------------

def test_a_five_channel_model_starts_a_three_marker_one(tmp_path, caplog):
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
    assert not any("um/px" in r.getMessage() for r in caplog.records)  # the same scale
    CTCLitModule(panel={"channels": RGB_ORDER, "pixel_size_um": 0.32}, crop_size=TINY_CROP,
                 arch_kwargs={"width": 8}, init_from=str(five))
    assert any("a model of 0.64 um/px, for one of 0.32: cells are 2x as wide" in r.getMessage()
               for r in caplog.records)


def test_a_channel_the_starting_model_never_saw_starts_as_initialised(tmp_path, caplog):
    """A lab adds VIM to its panel: DAPI's and CK's filters come from the five-channel model,
    VIM's are this model's own initial ones, and the run says so. Sharing no channel at all
    is refused."""
    import torch

    from ctcnet.nn.classifier import load_model
    from ctcnet.training.lit import CTCLitModule

    five = make_tiny_model(tmp_path / "five.pt", ["DAPI", "CK", "CD45", "CD61", "CD66b"])
    panel = {"channels": ["DAPI", "CK", "VIM"], "pixel_size_um": 0.64}
    torch.manual_seed(7)
    fresh = CTCLitModule(panel=panel, crop_size=TINY_CROP, arch_kwargs={"width": 8})
    torch.manual_seed(7)
    module = CTCLitModule(panel=panel, crop_size=TINY_CROP, arch_kwargs={"width": 8},
                          init_from=str(five))
    assert any("never saw ['VIM']" in r.getMessage() for r in caplog.records)
    source, own = load_model(five)[0].state_dict(), fresh.model.state_dict()
    stems = [k for k, v in module.model.state_dict().items() if v.shape != source[k].shape]
    assert stems
    for key in stems:
        value = module.model.state_dict()[key]
        assert (value[:, :2] == source[key][:, :2]).all(), key  # DAPI, CK copied
        assert (value[:, 2] == own[key][:, 2]).all(), key  # VIM as initialised
    with pytest.raises(PanelMismatchError, match="shares no channel"):
        CTCLitModule(panel={"channels": ["VIM", "EpCAM", "HER2"], "pixel_size_um": 0.64},
                     crop_size=TINY_CROP, arch_kwargs={"width": 8}, init_from=str(five))


def test_lightnings_advertising_tips_are_not_printed(capsys, caplog):
    import logging

    import lightning as L

    import ctcnet.training.lit  # noqa: F401  (its import installs the filter)

    with caplog.at_level(logging.INFO):
        L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False)
    captured = capsys.readouterr()
    assert "Tip:" not in captured.out + captured.err + caplog.text
