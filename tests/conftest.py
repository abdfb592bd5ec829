"""Shared test set-up: CPU only, few threads, small deterministic data."""

import numpy as np
import pytest
import torch

torch.set_num_threads(2)

@pytest.fixture
def rng():
    return np.random.default_rng(0)

def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
