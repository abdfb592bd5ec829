"""Fixtures of the command tests (tests/cli/)."""

import pytest
from conftest import save_tiny_model

from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.io.panel import load_panel


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A lab's folder: ``base.pt``, an untrained model (crop size 32), and ``crops/``, a crop
    dataset of two samples simulated at that size."""
    from ctcnet.simulate import simulate_crops

    size = 32
    base = tmp_path_factory.mktemp("lab")
    save_tiny_model(base / "base.pt", crop_size=size, width=8)
    batch = simulate_crops(4, load_panel(None), crop_size=size, seed=3, num_samples=2)
    write_crop_dataset(base / "crops", batch.images, batch.labels, load_panel(None),
                       batch.sample_ids)
    return base
