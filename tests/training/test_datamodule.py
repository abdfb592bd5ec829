"""ctcnet.training.datamodule: crops without a panel.json, and a missing folder, are refused by
what they lack."""

import pytest

from ctcnet.errors import InputError


def test_training_on_crops_without_panel_json_is_refused(tmp_path):
    from ctcnet.training.datamodule import CTCDataModule

    (tmp_path / "ctc").mkdir()
    with pytest.raises(InputError, match="no panel.json"):
        CTCDataModule(data_dir=str(tmp_path))
    with pytest.raises(InputError, match="crop dataset folder not found"):
        CTCDataModule(data_dir=str(tmp_path / "missing"))
