"""Shared test set-up: CPU only, few threads, small deterministic data."""

import logging

import numpy as np
import pytest
import torch

torch.set_num_threads(2)

@pytest.fixture(autouse=True)
def ctcnet_log_level_restored():
    """An in-process CLI run sets the ``ctcnet`` logger's level (``--quiet``: errors only);
    later tests that read warnings through caplog must not depend on which test ran before."""
    yield
    logging.getLogger("ctcnet").setLevel(logging.NOTSET)


@pytest.fixture
def rng():
    return np.random.default_rng(0)

def pytest_collection_modifyitems(config, items):
    from ctcnet.nn.nets import torchvision_error

    skips = {}
    if not torch.cuda.is_available():
        skips["gpu"] = pytest.mark.skip(reason="needs a CUDA device")
    problem = torchvision_error() if any("resnet" in i.keywords for i in items) else None
    if problem is not None:
        skips["resnet"] = pytest.mark.skip(reason=f"torchvision unusable here ({problem})")
    for item in items:
        for keyword, skip in skips.items():
            if keyword in item.keywords:
                item.add_marker(skip)


def save_tiny_model(path, crop_size=48, panel=None, taxonomy=None, width=None, seed=0,
                    **spec_fields):
    """Write an untrained compact model (a few kB) to ``path``; returns (path, spec).

    The model every test that needs "a model file" starts from: panel and taxonomy default to
    the shipped ones; ``width`` makes it smaller still.
    """
    from ctcnet.io.panel import load_panel
    from ctcnet.io.taxonomy import load_taxonomy
    from ctcnet.nn.classifier import build_classifier, save_model
    from ctcnet.nn.spec import ModelSpec

    torch.manual_seed(seed)
    arch_kwargs = {"width": width} if width else {}
    spec = ModelSpec("compact", load_panel(panel), load_taxonomy(taxonomy),
                     crop_size=crop_size, arch_kwargs=arch_kwargs, **spec_fields)
    save_model(path, build_classifier(spec), spec)
    return path, spec


@pytest.fixture(scope="session")
def tiny_model_file():
    """:func:`save_tiny_model` for tests and fixtures of any scope."""
    return save_tiny_model
