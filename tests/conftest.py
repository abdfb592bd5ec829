"""Shared test set-up: CPU only, few threads, small deterministic data."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from ctcnet.io.panel import load_panel
from ctcnet.nn import registry

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


def load_script(path):
    """A script of scripts/ as a module (they are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Models laid out as the registry finds them (shipped or in a site folder): tests of the
# registry, of the models command and of inputs matched to a model by channel name.

CORE3 = ["DAPI", "CK", "CD45"]
TINY_CROP = 32


def make_tiny_model(path: Path, channels=CORE3, pixel_size_um=0.64) -> Path:
    """An untrained small model plus a card, as a shipped model is laid out."""
    import torch

    from ctcnet.io.taxonomy import default_taxonomy
    from ctcnet.nn.classifier import build_classifier, save_model
    from ctcnet.nn.spec import ModelSpec

    torch.manual_seed(0)
    panel = load_panel({"channels": list(channels), "pixel_size_um": pixel_size_um})
    spec = ModelSpec("compact", panel, default_taxonomy(), crop_size=TINY_CROP,
                     arch_kwargs={"width": 8})
    save_model(path, build_classifier(spec))
    card = {"name": path.stem, "panel": panel.to_dict(), "classes": spec.class_names,
            "crop_size": TINY_CROP, "test_rgb_jpeg": {"macro_f1": 0.25},
            "robustness": {"defocus": {"macro_f1": 0.2}}}
    path.with_suffix(".json").write_text(json.dumps(card))
    return path



@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    make_tiny_model(root / "tiny3.pt")
    (root / "notes.json").write_text("{}")  # no weights beside it: not a model
    return root



@pytest.fixture
def with_tiny3(models_dir, tmp_path, monkeypatch):
    """The registry as {shipped default, tiny3}, whatever else ships: choices stay fixed."""
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    for suffix in (".json", ".pt", ".onnx"):
        (shipped / f"ctcnet-default{suffix}").symlink_to(
            registry.PACKAGE_MODELS / f"ctcnet-default{suffix}")
    monkeypatch.setattr(registry, "PACKAGE_MODELS", shipped)
    monkeypatch.setenv(registry.MODELS_ENV, str(models_dir))
    return models_dir
