"""scripts/tight_training_set.py: the export model's fine-tuning data."""

from pathlib import Path

import numpy as np
import pytest

from ctcnet.detect.crop_dataset import read_crop_index


def test_tight_training_set_joins_a_jpeg_and_a_png_half(tmp_path):
    """scripts/tight_training_set.py (the export model fine-tunes' data): two
    `simulate crops --export tight` halves in one crop dataset, each sample its own."""
    from conftest import load_script

    script = load_script(Path(__file__).resolve().parents[2] / "scripts" /
                         "tight_training_set.py")
    assert script.main([str(tmp_path / "set"), "--counts", "1", "--samples", "2"]) == 0
    index = read_crop_index(tmp_path / "set")
    assert len(index) == 8 and index.panel.pixel_size_um == 0.1
    suffixes = sorted(Path(p).suffix for p in index.paths)
    assert suffixes == [".jpg"] * 4 + [".png"] * 4
    halves = {s.split("-")[0] for s in index.sample_ids}
    assert halves == {"set0", "set1"}
    assert all(index.read(i).dtype == np.uint8 for i in range(len(index)))
    with pytest.raises(SystemExit, match="exists"):
        script.main([str(tmp_path / "set")])
