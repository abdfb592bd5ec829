"""ctcnet.inference.journal: the record of the frames a predict run has done."""

import os
import shutil

import pytest
from conftest import save_tiny_model

from ctcnet.inference.backends import load_backend
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.io.panel import load_panel

CROP = 32
QUIET = dict(quiet=True, workers=0, report=False)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A 3-frame simulated cartridge, a tiny model and the clean run's summary."""
    from ctcnet.simulate import simulate_cartridge

    root = tmp_path_factory.mktemp("plausible")
    simulate_cartridge(root / "cart", load_panel(None), num_frames=3, frame_shape=(128, 160),
                       seed=5, events_per_frame=8, sample_id="S1")
    save_tiny_model(root / "model.pt", crop_size=CROP)
    backend = load_backend(root / "model.pt", device="cpu")
    clean = predict_cartridge(root / "cart", backend, root / "clean", PredictOptions(**QUIET))
    assert clean.status == "ok" and clean.events > 0
    return {"root": root, "backend": backend, "clean": clean}


@pytest.fixture
def cart(base, tmp_path):
    shutil.copytree(base["root"] / "cart", tmp_path / "cart")
    return tmp_path / "cart"


def predict(base, cart, out=None, **options):
    return predict_cartridge(cart, base["backend"], out or cart.parent / "out",
                             PredictOptions(**QUIET, **options))


def test_a_copy_done_before_is_dropped_from_the_journal(base, cart):
    """A resumed run does not keep a frame it now knows to be a copy."""
    predict(base, cart)
    before = (cart / "r00c02.tif").stat()
    shutil.copy(cart / "r00c01.tif", cart / "r00c02.tif")  # r00c02 replaced by r00c01's bytes
    # Same name, size and time as before: the journal's own check sees no change.
    os.utime(cart / "r00c02.tif", ns=(before.st_atime_ns, before.st_mtime_ns))
    summary = predict(base, cart)
    assert summary.frames.skipped == 1 and summary.skipped_frames[0]["frame"] == "r00c02"
    assert summary.frames.resumed_from_journal == 2
    assert not (cart.parent / "out" / "parts" / "r00c02.parquet").exists()
