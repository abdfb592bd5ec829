"""Shared test set-up: CPU only, few threads, small deterministic data."""

import hashlib
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ctcnet.io.panel import load_panel
from ctcnet.nn import registry

torch.set_num_threads(2)

@pytest.fixture(autouse=True)
def ctcnet_log_level_restored():
    """An in-process CLI run sets the ``ctcnet`` logger's level (``--quiet``: errors only);
    later tests that read warnings through caplog must not depend on which test ran before;
    nor on which said a channel drop first (said once per process)."""
    from ctcnet.core.said_once import forget_said

    yield
    logging.getLogger("ctcnet").setLevel(logging.NOTSET)
    forget_said()


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


# One-line refusals of the CLI, run in this process (``ctcnet.cli.main``).

def run_cli(capsys, *argv):
    """(exit status, stderr lines) of ``ctcnet ARGV`` run in this process."""
    from ctcnet.cli import main

    status = main([str(a) for a in argv])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return status, err


def assert_one_line_error(status, err, match, code=2):
    assert status == code and len(err) == 1, err
    assert match in err[0], err[0]


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(capsys, path, args) -> None:
    """The command exits 2, naming ``path`` and --overwrite."""
    from ctcnet.cli import main

    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "--overwrite" in err, err


def one_line_refusal(capsys, args, match) -> str:
    """The command exits 2 with one line holding ``match``; returns that line."""
    from ctcnet.cli import main

    capsys.readouterr()
    assert main([str(a) for a in args]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and match in err[0], err
    return err[0]


def edit_json(path, **changes):
    """``changes`` into a JSON file; a summary.json's seals (of its figures and the others
    beside them) made again, as ctcnet's own writes make them (a test sets up a run's
    outcome; ``refuse_edits`` tests a change by hand)."""
    from ctcnet.inference.figures_seal import figures_sha256, record_seals

    data = json.loads(path.read_text())
    data.update(changes)
    seals = {"figures_sha256": figures_sha256(data), **record_seals(data)}
    data.update({name: seal for name, seal in seals.items()
                 if name in data and name not in changes})
    path.write_text(json.dumps(data))


def stated_range(root: Path, top: float, scale: int = 1) -> Path:
    """A cartridge folder's frames as 16-bit counts ``scale`` times their own, and its
    panel.json stating every channel ``[0, top]`` (a 12-bit camera's counts stored x16, or
    stated 0-65535 as they are); ``root``, changed in place."""
    import tifffile

    for frame in root.glob("r*.tif"):
        tifffile.imwrite(frame, tifffile.imread(frame).astype(np.uint16) * scale)
    panel = json.loads((root / "panel.json").read_text())
    panel["channels"] = [{"name": c if isinstance(c, str) else c["name"],
                          "value_range": [0, top]} for c in panel["channels"]]
    (root / "panel.json").write_text(json.dumps(panel))
    return root


def write_events(sample: Path, events, **options) -> None:
    """``events`` as a predict output's events.parquet, its digest recorded in summary.json as
    predict records it: a test's own run, not a table changed by hand (which is refused)."""
    from ctcnet.io.digests import file_sha256

    events.to_parquet(sample / "events.parquet", **options)
    edit_json(sample / "summary.json", events_sha256=file_sha256(sample / "events.parquet"))


# A simulated cartridge and a model to run on it: built once per session, read only (a test that
# changes the cartridge works on its own copy, the ``cart`` fixture).

SIM_CROP = 32
QUIET = dict(quiet=True, workers=0, report=False)


@pytest.fixture(scope="session")
def cart_and_model(tmp_path_factory):
    """A folder holding ``cart/``, a 3-frame simulated cartridge, and ``model.pt``, an untrained
    model (crop size 32)."""
    from ctcnet.simulate import simulate_cartridge

    root = tmp_path_factory.mktemp("cartridge")
    simulate_cartridge(root / "cart", load_panel(None), num_frames=3, frame_shape=(128, 160),
                       seed=5, events_per_frame=8, sample_id="S1")
    save_tiny_model(root / "model.pt", crop_size=SIM_CROP)
    return root


@pytest.fixture(scope="session")
def clean_run(cart_and_model):
    """:func:`cart_and_model` predicted once: ``root`` (its folder, the run's output in
    ``root / "clean"``), ``backend`` (its model loaded) and ``clean`` (the run's summary)."""
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge

    root = cart_and_model
    backend = load_backend(root / "model.pt", device="cpu")
    clean = predict_cartridge(root / "cart", backend, root / "clean", PredictOptions(**QUIET))
    assert clean.status == "ok" and clean.events > 0
    return {"root": root, "backend": backend, "clean": clean}


@pytest.fixture
def cart(cart_and_model, tmp_path):
    """A copy of the simulated cartridge that the test may change."""
    shutil.copytree(cart_and_model / "cart", tmp_path / "cart")
    return tmp_path / "cart"


def frames(cart):
    return sorted(cart.glob("r*c*.tif"))


def predict(clean_run, cart, out=None, **options):
    """``cart`` predicted in process with the clean run's backend."""
    from ctcnet.inference.predict import PredictOptions, predict_cartridge

    return predict_cartridge(cart, clean_run["backend"], out or cart.parent / "out",
                             PredictOptions(**QUIET, **options))


def predict_args(cart_and_model, cart, *extra):
    return ["predict", cart, "--out", cart.parent / "out", "--model",
            cart_and_model / "model.pt", "--device", "cpu", "--quiet", "--no-report",
            "--workers", "0", *extra]


@pytest.fixture
def crops(tmp_path):
    """A 4-crop dataset (crop size 32, two samples) on disk."""
    from ctcnet.detect.crop_dataset import write_crop_dataset

    rng = np.random.default_rng(0)
    images = rng.integers(90, 200, (4, 5, SIM_CROP, SIM_CROP)).astype(np.uint16)
    return write_crop_dataset(tmp_path / "crops", images, ["ctc", "wbc", "ctc", "debris"],
                              load_panel(None), ["p1", "p1", "p2", "p2"])


# Synthetic crops and images.

def disk_crops(n=4, radius=6.0, amplitude=400.0, background=100.0, noise=0.0, seed=0,
               channel=1, channels=5, size=40):
    """Crops with one bright disk in ``channel`` on a flat (or noisy) background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    disk = ((yy - c) ** 2 + (xx - c) ** 2 <= radius ** 2).astype(np.float32)
    x = np.full((n, channels, size, size), background, np.float32)
    x[:, channel] += amplitude * disk
    return x + noise * rng.standard_normal(x.shape).astype(np.float32)


def rgb_planes(rng, h=40, w=52) -> np.ndarray:
    """Three different uint8 planes: smooth enough for JPEG to keep them apart."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2]).astype(np.float64)
    return np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)


def save_rgb(path: Path, planes: np.ndarray, fmt: str, alpha: bool = False) -> None:
    """``planes`` (3, H, W) written as an RGB(A) PNG, JPEG or TIFF."""
    import tifffile
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = np.ascontiguousarray(planes.transpose(1, 2, 0))
    if fmt == "TIFF":
        data = np.dstack([rgb, np.full(rgb.shape[:2], 77, np.uint8)]) if alpha else rgb
        tifffile.imwrite(path, data, photometric="rgb",
                         extrasamples=["unassalpha"] if alpha else None)
        return
    im = Image.fromarray(rgb, "RGB")
    if alpha:
        im.putalpha(77)
    im.save(path, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))


# Hypothesis: the settings of the fuzz tests and any JSON value.

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) |
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6)
