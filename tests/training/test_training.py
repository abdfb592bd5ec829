"""Training: augmentation, data module, loss, LightningModule, checkpoints, CLI, resume, DDP.

Everything on the CPU with tiny data: 32 px crops, a handful per class, one or two steps.
"""

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_script
from lightning.pytorch.callbacks import Callback

from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.io.panel import load_panel
from ctcnet.simulate.augment import build_train_augment
from ctcnet.simulate.augment_options import AugmentConfig
from ctcnet.simulate.augment_steps import (
    adjust_signal,
    augment_intensities,
    augment_optics_and_export,
    background_and_noise,
    display_export,
    gradient,
    jpeg_channels,
    smooth_signal,
    zoom_signal,
)
from ctcnet.simulate.config import with_overrides
from ctcnet.training.datamodule import CTCDataModule
from ctcnet.training.lit import CTCLitModule, balanced_class_weights, focal_loss
from ctcnet.training.splits import sample_level_split

ROOT = Path(__file__).resolve().parents[2]
CLASSES = ["ctc", "wbc", "cluster", "debris"]
SIZE = 32


def toy_crops(n_per_class: int, channels: int = 5, seed: int = 0):
    """Separable fake crops: class k lights up channel k in the centre, over Poisson noise."""
    rng = np.random.default_rng(seed)
    labels = [c for c in CLASSES for _ in range(n_per_class)]
    crops = rng.poisson(120, (len(labels), channels, SIZE, SIZE)).astype(np.float32)
    for i, label in enumerate(labels):
        crops[i, CLASSES.index(label) % channels, 10:22, 10:22] += 600
    return crops, labels


@pytest.fixture(scope="module")
def crop_dir(tmp_path_factory):
    """A crop dataset: four samples (patients), no split column."""
    root = tmp_path_factory.mktemp("crops")
    crops, labels = toy_crops(8)
    samples = [f"P{i % 4}" for i in range(len(labels))]
    write_crop_dataset(root, crops.astype(np.uint16), labels, load_panel(None), samples)
    return root


# ----- augmentation -------------------------------------------------------------------------
def test_augmentation_makes_no_network_call():
    # albumentations asks PyPI for a newer version at import, unless told not to.
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise SystemExit('network call: ' + repr(a[:1]))\n"
        "socket.create_connection = socket.getaddrinfo = refuse\n"
        "from ctcnet.simulate.augment import build_train_augment\n"
        "import numpy\n"
        "build_train_augment(seed=0)(numpy.full((5, 32, 32), 100, numpy.float32))\n")
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "update" not in done.stderr.lower(), done.stderr[-2000:]


def test_augment_keeps_shape_and_stays_finite():
    augment = build_train_augment(seed=0)
    for channels in (3, 4, 5, 6):
        crop = toy_crops(1, channels)[0][0]
        out = augment(crop)
        assert out.shape == crop.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and (out >= 0).all()


def test_augment_fills_the_border_it_uncovers_with_background_never_a_mirror():
    """A cell at the crop's edge: a shift that uncovers the border must not mirror it into a
    second cell there (as mirror padding did at inference); the border gets the crop's own
    background level and noise, and a crop the geometry leaves whole is untouched."""
    quiet = {"flips": False, "rotate90": False, "affine_p": 1.0, "shift_fraction": 0.25,
             "scale_range": [1.0, 1.0], "rotate_degrees": 0.0, "blur_p": 0.0,
             "gain_p": 0.0, "gamma_p": 0.0, "noise_p": 0.0, "offset_p": 0.0, "scale_p": 0.0,
             "bleed_p": 0.0, "nonspecific_ck_p": 0.0}
    augment = build_train_augment(quiet, seed=5)
    rng = np.random.default_rng(2)
    crop = (100.0 + rng.normal(0, 3, (3, SIZE, SIZE))).astype(np.float32)
    crop[:, :, -6:] += 2000.0              # a bright cell cut by the right edge
    bright = (crop[0] > 1000).sum()
    uncovered = 0
    for _ in range(30):
        out = augment(crop)
        assert (out[0] > 1000).sum() <= bright   # never more of the cell than there was
        background = out[0][out[0] < 1000]
        assert abs(np.median(background) - 100) < 3 and background.min() > 70
        uncovered += (out[0] > 1000).sum() < bright
    assert uncovered > 5  # shifts that moved the cell in did happen


def test_augment_mixes_channels_only_when_asked():
    """Without the bleed and non-specific steps, signal in one channel stays in it."""
    rng = np.random.default_rng(1)
    augment = build_train_augment({"noise_p": 0.0, "offset_p": 0.0, "scale_p": 0.0,
                                   "bleed_p": 0.0, "nonspecific_ck_p": 0.0}, seed=3,
                                  roles=tuple(load_panel(None).roles()))
    crop = np.full((5, SIZE, SIZE), 100.0, np.float32) + rng.normal(0, 2, (5, SIZE, SIZE))
    crop[2, 12:20, 12:20] += 1000
    for _ in range(20):
        out = augment(crop.astype(np.float32))
        others = np.delete(out, 2, axis=0)
        assert others.max() < 130, "signal leaked into another channel"
        assert out[2].max() > 400


def test_bleed_and_nonspecific_ck_copy_a_pattern_at_a_ratio():
    roles = tuple(load_panel(None).roles())  # DAPI, CK, CD45, CD61, CD66b
    rng = np.random.default_rng(2)
    crop = np.full((5, SIZE, SIZE), 100.0, np.float32) + rng.normal(0, 2, (5, SIZE, SIZE))
    crop[2, 12:20, 12:20] += 1000  # a CD45+ event, nothing else
    crop = crop.astype(np.float32)
    only = dict(gain_p=0, gamma_p=0, noise_p=0, offset_p=0, scale_p=0)
    ck = augment_intensities(crop, AugmentConfig(**only, bleed_p=0, nonspecific_ck_p=1.0),
                             rng, roles)
    ratio = (ck[1, 12:20, 12:20].mean() - 100) / (crop[2, 12:20, 12:20].mean() - 100)
    assert 0.04 < ratio < 2.1 and np.array_equal(ck[2], crop[2])
    assert np.array_equal(ck[[0, 3, 4]], crop[[0, 3, 4]])
    seen = set()
    cfg = AugmentConfig(**only, bleed_p=1.0, nonspecific_ck_p=0)
    for _ in range(60):
        out = augment_intensities(crop, cfg, rng, roles)
        seen |= {ch for ch in (0, 1, 3, 4) if out[ch, 12:20, 12:20].mean() > 102}
        assert out[:, 12:20, 12:20].mean(axis=(1, 2)).max() < 1100 * 1.13
    assert seen == {0, 1, 3, 4}, "a leak can reach any channel, not only the neighbours"


def test_intensity_scale_covers_ten_x():
    cfg = AugmentConfig(gain_p=0, gamma_p=0, noise_p=0, offset_p=0, scale_p=1.0)
    crop = np.full((3, 8, 8), 100.0, np.float32)
    rng = np.random.default_rng(0)
    scales = [augment_intensities(crop, cfg, rng).mean() / 100 for _ in range(300)]
    assert min(scales) < 0.4 and max(scales) > 2.5


def test_adjust_signal_changes_signal_not_background():
    crop = np.full((2, 16, 16), 100.0, np.float32)
    crop[:, 4:8, 4:8] = 500.0
    background, noise = background_and_noise(crop)
    out = adjust_signal(crop, np.array([2.0, 1.0]), np.array([1.0, 1.0]), background, noise)
    assert out[0, 0, 0] == pytest.approx(100.0)
    assert out[0, 5, 5] > 800 and out[1, 5, 5] == pytest.approx(500.0)


def _one_cell(size: int = 48, radius: float = 6.0, seed: int = 4) -> np.ndarray:
    """Two channels: a bright cell (a blurred disc, as optics show it) in channel 0,
    background and noise only in channel 1."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    crop = 100.0 + rng.normal(0, 3, (2, size, size))
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    crop[0] += ndimage.gaussian_filter(800.0 * (np.hypot(yy, xx) < radius), 1.5)
    return crop.astype(np.float32)


def _area(plane: np.ndarray) -> int:
    return int((plane > 400).sum())


def test_zoom_scales_objects_and_keeps_the_background():
    crop = _one_cell()
    background, _ = background_and_noise(crop)
    signal = smooth_signal(crop, background)
    big, small = zoom_signal(crop, signal, 2.0), zoom_signal(crop, signal, 0.6)
    assert 3.2 < _area(big[0]) / _area(crop[0]) < 4.8
    assert 0.25 < _area(small[0]) / _area(crop[0]) < 0.5
    assert abs(big[1].mean() - crop[1].mean()) < 0.5, "no signal: the background stays"
    corner = (slice(0, 10), slice(0, 10))  # far from the cell: background and noise as they were
    assert abs(big[0][corner].mean() - crop[0][corner].mean()) < 1.0
    assert 0.8 < big[0][corner].std() / crop[0][corner].std() < 1.2


def test_defocus_gradient_and_export_steps():
    crop = _one_cell()
    background, noise = background_and_noise(crop)
    cfg = AugmentConfig(defocus_p=1.0, defocus_sigma=(3.0, 3.0))
    blurred = augment_optics_and_export(crop, cfg, np.random.default_rng(0))
    assert blurred[0].max() < crop[0].max() - 100  # the disc's peak spreads
    assert abs(blurred[0].sum() - crop[0].sum()) < 0.02 * crop[0].sum()  # light is kept
    ramp = gradient(crop, background, 0.5, 0.0)  # left to right: -25 % .. +25 % of background
    assert ramp[1, :, -1].mean() - ramp[1, :, 0].mean() == pytest.approx(
        0.5 * background[1], rel=0.1)
    shown = display_export(crop, background, noise, np.array([1.0, 1.0]),
                           np.array([50.0, 50.0]))
    assert shown.min() >= 0 and shown.max() == 255 and np.array_equal(shown, np.rint(shown))
    assert (shown[0] == 255).sum() >= _area(crop[0]) * 0.9, "highlights above the ceiling clip"
    five = np.concatenate([shown, shown, shown[:1]])
    lossy = jpeg_channels(five, np.random.default_rng(1), (40, 40))
    assert lossy.shape == five.shape and 0 < np.abs(lossy - five).mean() < 20


def test_new_steps_draw_nothing_unless_enabled():
    """The shipped recipe turns the optics/export steps on; other recipes keep their stream."""
    crop = toy_crops(1)[0][0]
    a = build_train_augment(seed=5)(crop)
    b = build_train_augment({"zoom_p": 0.0, "export_p": 0.0}, seed=5)(crop)
    assert np.array_equal(a, b)


def test_simulator_overrides_merge_subtype_weights():
    from ctcnet.simulate import SimConfig

    cfg = with_overrides(SimConfig(), {"subtype_weights": {"fragment": 0.5},
                                       "nonspecific_ck_rate": [0.1, 0.7]})
    assert cfg.subtype_weights["fragment"] == 0.5 and cfg.nonspecific_ck_rate == (0.1, 0.7)
    assert cfg.subtype_weights["tdev"] == SimConfig().subtype_weights["tdev"]
    with pytest.raises(InputError, match="no_such_knob"):
        with_overrides(SimConfig(), {"no_such_knob": 1})


# ----- data ---------------------------------------------------------------------------------
def test_sample_level_split_never_splits_a_sample():
    samples = [f"P{i % 7}" for i in range(70)]
    to_val = sample_level_split(samples, 0.3, seed=0)
    val_samples = {s for s, v in zip(samples, to_val) if v}
    train_samples = {s for s, v in zip(samples, to_val) if not v}
    assert val_samples and train_samples and not val_samples & train_samples
    assert (to_val == sample_level_split(samples, 0.3, seed=0)).all()
    # A fraction of 0 holds out none (a lab placing its validation patients by hand lost a
    # patient more to validation), as a split by crop holds out none.
    assert not sample_level_split(samples, 0.0, seed=0).any()


def test_datamodule_reads_a_folder_split_by_sample(crop_dir):
    dm = CTCDataModule(data_dir=str(crop_dir), crop_size=SIZE, val_fraction=0.25,
                       batch_size=4)
    dm.setup("fit")
    train, val = dm.splits["train"], dm.splits["val"]
    assert len(train.targets) + len(val.targets) == 32
    assert not set(train.sample_ids) & set(val.sample_ids)
    assert dm.panel.names == load_panel(None).names
    raw, target = next(iter(dm.train_dataloader()))
    assert raw.shape == (4, 5, SIZE, SIZE) and raw.dtype == torch.float32
    assert raw.max() > 255, "the data module must feed raw counts, not normalised data"
    assert dm.summary()["splits"]["train"]["crops"] == len(train.targets)


def test_a_folders_training_crops_are_recorded_so_evaluate_tells_them_in_a_copy(crop_dir,
                                                                                 tmp_path):
    """The data summary (the spec's training record) holds the fingerprints of the folder's
    training crops: evaluate's warning counts exactly those among a copy of the folder, read
    as evaluate reads crops, and none of the validation crops."""
    import shutil

    from ctcnet.detect.crop_dataset import load_crops, read_crop_index
    from ctcnet.evaluation.test_set import own_training_data_warning
    from ctcnet.io.taxonomy import default_taxonomy
    from ctcnet.nn.spec import ModelSpec

    shutil.copytree(crop_dir, tmp_path / "copy")
    index = read_crop_index(tmp_path / "copy")
    crops = load_crops(index, SIZE, load_panel(None).pixel_size_um)
    # With spillover compensation too: the crops are recorded as read, before it.
    for compensate in (False, True):
        dm = CTCDataModule(data_dir=str(crop_dir), crop_size=SIZE, val_fraction=0.25,
                           compensate=compensate)
        dm.setup("fit")
        spec = ModelSpec("compact", load_panel(None), default_taxonomy(), crop_size=SIZE,
                         training={"data": dm.summary()})
        said = own_training_data_warning(spec, tmp_path / "copy", crops)
        assert said.startswith(f"{len(dm.splits['train'].targets)} of 32 crops"), compensate
    assert own_training_data_warning(spec, tmp_path / "copy", crops[:0]) is None


def test_a_folder_of_one_patient_is_split_by_crop_and_said_so(tmp_path, caplog):
    """Every crop of one sample: the split can only be by crop, so validation holds crops
    of the patient trained on; training says so (its figures pick the checkpoint kept)."""
    crops, labels = toy_crops(4)
    write_crop_dataset(tmp_path, crops.astype(np.uint16), labels, load_panel(None),
                       ["P017"] * len(labels))
    dm = CTCDataModule(data_dir=str(tmp_path), crop_size=SIZE, val_fraction=0.25)
    with caplog.at_level("WARNING"):
        dm.setup("fit")
    assert f"all {len(labels)} crops are of one sample (P017)" in caplog.text
    assert set(dm.splits["val"].sample_ids) == {"P017"}


def test_a_patients_serial_draws_stay_on_one_side_of_the_split(tmp_path):
    """Crops of several draws of one patient (ctcnet crops of serial cartridges, its manifest's
    patient_id column): the split by sample keeps each patient's draws together."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.detect.crop_writing import finish_crop_dataset, write_crop_files

    crops, labels = toy_crops(6)
    draws = [f"P{k % 3}-D{k % 2}" for k in range(len(labels))]  # 3 patients, 2 draws each
    rows = write_crop_files(tmp_path, crops.astype(np.uint16), labels, draws, load_panel(None))
    finish_crop_dataset(tmp_path, rows, load_panel(None),
                        patient_ids=[d.split("-")[0] for d in draws])
    assert read_crop_index(tmp_path).patient_ids == [d.split("-")[0] for d in draws]
    # One patient's id as typed at two desks (an accent decomposed, spaces round it) is one
    # patient, as ctcnet draws reads it: read as two, one draw was trained on and the other
    # held out.
    import unicodedata

    manifest = tmp_path / "manifest.csv"
    text = manifest.read_text(encoding="utf-8")
    typed = text.replace(",P0\n", ",Mü\n", 1).replace(  # (patient_id: the last column)
        ",P0\n", f", {unicodedata.normalize('NFD', 'Mü')} \n")
    assert unicodedata.normalize("NFD", "Mü") in typed and ",Mü\n" in typed
    manifest.write_text(typed, encoding="utf-8")
    assert {p for p in read_crop_index(tmp_path).patient_ids if p.startswith("M")} == {"Mü"}
    manifest.write_text(text, encoding="utf-8")
    dm = CTCDataModule(data_dir=str(tmp_path), crop_size=SIZE, val_fraction=0.4)
    dm.setup("fit")
    patients = {name: {s.split("-")[0] for s in split.sample_ids}
                for name, split in dm.splits.items()}
    assert patients["train"] and patients["val"] and not patients["train"] & patients["val"]
    assert len(set(dm.splits["val"].sample_ids)) == 2  # both draws of the patient held out


def test_datamodule_honours_the_manifest_split(tmp_path):
    crops, labels = toy_crops(2)
    splits = ["train", "val", "test", "train"] * 2
    write_crop_dataset(tmp_path, crops.astype(np.uint16), labels, load_panel(None),
                       splits=splits)
    dm = CTCDataModule(data_dir=str(tmp_path), crop_size=SIZE)
    dm.setup("fit")
    assert {k: len(v.targets) for k, v in dm.splits.items()} == {"train": 4, "val": 2,
                                                                  "test": 2}


def test_datamodule_without_data_is_refused():
    with pytest.raises(InputError, match="no training data"):
        CTCDataModule()


def test_datamodule_simulates_in_setup():
    dm = CTCDataModule(crop_size=SIZE, simulate={"train": 2, "val": 1, "num_samples": 2})
    assert not dm.splits
    dm.setup("fit")
    assert dm.splits["train"].images.shape == (8, 5, SIZE, SIZE)
    assert sorted(dm.summary()["splits"]["val"]["per_class"].values()) == [1, 1, 1, 1]
    # Validation comes from other simulated samples than training.
    assert not set(dm.splits["train"].sample_ids) & set(dm.splits["val"].sample_ids)


def test_render_cache_gives_the_same_crops_without_rendering_again(tmp_path, monkeypatch):
    import ctcnet.simulate

    sim = {"train": 2, "val": 1, "num_samples": 2}
    cache = tmp_path / "renders"
    first = CTCDataModule(crop_size=SIZE, simulate=sim, render_cache=str(cache))
    first.setup("fit")
    plain = CTCDataModule(crop_size=SIZE, simulate=sim)
    plain.setup("fit")
    assert len(list(cache.iterdir())) == 2  # one entry per split, nothing half written left
    for name in ("train", "val"):
        np.testing.assert_array_equal(first.splits[name].images, plain.splits[name].images)

    def no_render(*args, **kwargs):
        raise AssertionError("rendered although the cache holds it")

    monkeypatch.setattr(ctcnet.simulate, "simulate_crops", no_render)
    again = CTCDataModule(crop_size=SIZE, simulate=sim, render_cache=str(cache))
    again.setup("fit")
    for name in ("train", "val"):
        np.testing.assert_array_equal(again.splits[name].images, plain.splits[name].images)
        np.testing.assert_array_equal(again.splits[name].targets, plain.splits[name].targets)
        assert again.splits[name].sample_ids == plain.splits[name].sample_ids
    # Another knob is another render: asked for, not served from the cache.
    swapped = CTCDataModule(crop_size=SIZE, render_cache=str(cache),
                            simulate={**sim, "overrides": {"shape_swap": 0.5}})
    with pytest.raises(AssertionError, match="rendered although"):
        swapped.setup("fit")
    monkeypatch.undo()
    # An entry cut short is rendered again, not trusted; in-place work never reaches the cache.
    entry = next(p for p in cache.iterdir() if p.is_dir())
    (entry / "images.npy").write_bytes(b"\x93NUMPY")
    mended = CTCDataModule(crop_size=SIZE, simulate=sim, render_cache=str(cache))
    mended.setup("fit")
    for split in mended.splits.values():  # one rendered again, one mapped from the cache
        split.images[:] = 0
    for name in ("train", "val"):
        again = CTCDataModule(crop_size=SIZE, simulate=sim, render_cache=str(cache))
        again.setup("fit")
        np.testing.assert_array_equal(again.splits[name].images, plain.splits[name].images)
    # A file cut to nothing, and one edited in place at its own size (a channel zeroed), are
    # rendered again too.
    for damage in ("empty", "zeroed"):
        entry = next(p for p in cache.iterdir() if p.is_dir())
        if damage == "empty":
            (entry / "images.npy").write_bytes(b"")
        else:
            images = np.load(entry / "images.npy", mmap_mode="r+")
            images[:, 1] = 0
            images.flush()
            del images
        again = CTCDataModule(crop_size=SIZE, simulate=sim, render_cache=str(cache))
        again.setup("fit")
        for name in ("train", "val"):
            np.testing.assert_array_equal(again.splits[name].images, plain.splits[name].images)


def test_a_killed_runs_unfinished_render_is_removed_and_a_live_ones_kept(tmp_path):
    """A run killed as it stored a render left its temporary folder (a split's renders, for
    real recipes gigabytes) in the cache for good. The next run that reads or writes the
    cache removes one left for hours; one written into just now (another run's, storing) is
    kept."""
    import time

    from ctcnet.training import render_cache

    def leave(name: str, age_s: float) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        np.save(folder / "images.npy", np.zeros((2, 3, 4, 4), np.uint16))
        then = time.time() - age_s
        for path in (folder / "images.npy", folder):
            os.utime(path, (then, then))
        return folder

    killed = leave(".%s.x1y2z3" % ("a" * 32), 3 * 24 * 3600)  # three days ago
    storing = leave(".%s.q9r8s7" % ("b" * 32), 5)
    (tmp_path / ".hidden").mkdir()  # not a write's
    images, _, _ = render_cache.cached_render(
        tmp_path, "c" * 32, lambda: (np.ones((1, 3, 4, 4), np.uint16), np.zeros(1), ["s"]))
    assert images.shape == (1, 3, 4, 4)
    assert not killed.exists() and storing.is_dir() and (tmp_path / ".hidden").is_dir()
    assert (tmp_path / ("c" * 32)).is_dir()


def test_render_key_follows_the_simulators_code(monkeypatch):
    from ctcnet.training import render_cache

    key = render_cache.render_key(seed=1)
    assert render_cache.render_key(seed=1) == key and render_cache.render_key(seed=2) != key
    monkeypatch.setattr(render_cache, "simulator_fingerprint", lambda: "edited simulator")
    assert render_cache.render_key(seed=1) != key


def test_the_simulators_fingerprint_covers_every_ctcnet_module_it_imports(monkeypatch):
    """The render cache's key read ctcnet.simulate and two readers by name, not the modules
    those import: a change to the marker names (whose roles the simulator draws, read
    through the panel) was served the earlier code's renders. Every ctcnet module the
    simulator loads, imported whole and drawing crops, is in its fingerprint, and an edit to
    one changes it."""
    from ctcnet.training import render_cache

    # An edit to a module the simulator imports only through another changes the key.
    before = render_cache.simulator_fingerprint()
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda path: read_bytes(path) + (
        b"\n# edited\n" if path.name == "marker_names.py" else b""))
    render_cache.simulator_fingerprint.cache_clear()
    edited = render_cache.simulator_fingerprint()
    monkeypatch.undo()
    render_cache.simulator_fingerprint.cache_clear()
    assert edited != before

    code = ("import importlib, pkgutil, sys\n"
            "import ctcnet.simulate as s\n"
            "for m in pkgutil.walk_packages(s.__path__, 'ctcnet.simulate.'):\n"
            "    importlib.import_module(m.name)\n"
            "s.simulate_crops({'ctc': 1, 'wbc': 1}, crop_size=32, seed=0, num_samples=1)\n"
            "print('\\n'.join(m.__file__ for n, m in list(sys.modules.items())\n"
            "                 if n.split('.')[0] == 'ctcnet' and getattr(m, '__file__', 0)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = {Path(line).resolve() for line in done.stdout.split()}
    assert ROOT / "ctcnet" / "io" / "marker_names.py" in loaded
    # (ctcnet.data is loaded to read its JSON as resources: the panel and taxonomy read from
    # it are in the key themselves)
    sources = set(render_cache.simulator_sources()) | {ROOT / "ctcnet" / "data" / "__init__.py"}
    assert not loaded - sources, sorted(map(str, loaded - sources))


def test_an_export_view_model_sees_exports_in_validation_and_records_it():
    core3 = {"name": "core3", "pixel_size_um": 0.64, "channels": ["DAPI", "CK", "CD45"]}
    sim = {"train": 2, "val": 2, "test": 1, "num_samples": 2}
    with pytest.raises(InputError, match="tight_p: 1.0"):  # not every training crop exported
        CTCDataModule(panel=core3, crop_size=48, simulate=sim, view="export",
                      augment={"tight_p": 0.5})
    with pytest.raises(InputError, match="data.view='exports'"):
        CTCDataModule(panel=core3, crop_size=48, simulate=sim, view="exports")
    raw = CTCDataModule(panel=core3, crop_size=48, simulate=sim)
    raw.setup("fit")
    dm = CTCDataModule(panel=core3, crop_size=48, simulate=sim, view="export",
                       augment={"tight_p": 1.0})
    dm.setup("fit")
    for name in ("val", "test"):
        shown, counts = dm.splits[name].images, raw.splits[name].images
        # The same crops, each an 8-bit export at model scale: a black background (or a haze
        # of a few grey levels where a faint channel is stretched to its own peak).
        assert shown.shape == counts.shape and shown.dtype == np.float32
        assert shown.max() <= 255 and counts.max() > 255
        assert (np.percentile(shown, 10, axis=(1, 2, 3)) < 10).all()
        np.testing.assert_array_equal(dm.splits[name].targets, raw.splits[name].targets)
    again = CTCDataModule(panel=core3, crop_size=48, simulate=sim, view="export",
                          augment={"tight_p": 1.0})
    again.setup("fit")  # drawn once with a fixed seed: every run scores the same images
    np.testing.assert_array_equal(again.splits["val"].images, dm.splits["val"].images)
    # Exported only: training's optics and stain shifts (here on every crop) stay off them,
    # so the checkpoint, calibration and guard reference are fitted on what deployment shows.
    shifted = CTCDataModule(panel=core3, crop_size=48, simulate=sim, view="export",
                            augment={"tight_p": 1.0, "nonspecific_ck_p": 1.0, "gain_p": 1.0,
                                     "affine_p": 1.0, "bleed_p": 1.0})
    shifted.setup("fit")
    for name in ("val", "test"):
        np.testing.assert_array_equal(shifted.splits[name].images, dm.splits[name].images)
    # What scripts/refit_guard.py fits the guard on: the validation split as training saw it.
    fresh = CTCDataModule(panel=core3, crop_size=48, simulate=sim, view="export",
                          augment={"tight_p": 1.0})
    np.testing.assert_array_equal(fresh.simulate_split("val").images, dm.splits["val"].images)
    assert dm.summary()["view"] == "export" and "view" not in raw.summary()
    from ctcnet.nn.spec import ModelSpec

    spec = ModelSpec("compact", load_panel(core3), raw.taxonomy,
                     training={"data": dm.summary()})
    assert spec.reads_exports
    assert not spec.replace(training={"data": raw.summary()}).reads_exports


def test_finer_rendered_training_cells_are_shown_as_tight_exports_at_model_scale():
    # simulate.fine: more training cells rendered at finer pixels over the same field of view,
    # each shown as a tight export brought to the model's side; counted in the class weights
    # and the training record, never in validation.
    core3 = {"name": "core3", "pixel_size_um": 0.64, "channels": ["DAPI", "CK", "CD45"]}
    fine = {"train": {"ctc": 3, "wbc": 1, "cluster": 1, "debris": 1}, "pixel_size_um": 0.32}
    sim = {"train": 2, "val": 1, "num_samples": 2, "fine": fine}
    export = {"panel": core3, "crop_size": 48, "view": "export", "augment": {"tight_p": 1.0}}
    with pytest.raises(InputError, match="needs view: export"):
        CTCDataModule(panel=core3, crop_size=48, simulate=sim)
    with pytest.raises(InputError, match="simulate.fine must be"):
        CTCDataModule(simulate={**sim, "fine": {"train": 2}}, **export)
    with pytest.raises(InputError, match="not finer"):  # refused before anything is rendered
        CTCDataModule(simulate={**sim, "fine": {**fine, "pixel_size_um": 0.64}}, **export)
    dm = CTCDataModule(simulate=sim, **export)
    dm.setup("fit")
    assert dm.fine_train.images.shape == (6, 3, 96, 96)  # 48 px at 0.64 = 96 px at 0.32
    assert dm.fine_train.images.max() > 255  # raw counts, exported when drawn
    assert not set(dm.fine_train.sample_ids) & set(dm.splits["train"].sample_ids)
    np.testing.assert_array_equal(dm.train_class_counts(), [5, 3, 3, 3])
    assert dm.summary()["train_fine"]["per_class"] == {"ctc": 3, "wbc": 1, "cluster": 1,
                                                       "debris": 1}
    assert len(dm.splits["val"].targets) == 4
    dataset = dm.train_dataloader().dataset
    assert len(dataset) == 14
    for i in range(8, 14):
        crop, label = dataset[i]
        assert crop.shape == (3, 48, 48) and float(crop.max()) <= 255.0
        assert label == dm.fine_train.targets[i - 8]
        # A tight export: black background round the cell, brought to model scale (halving
        # the side averages a small object's white peak down, as far as a fifth of 255).
        assert float(np.percentile(crop.numpy(), 10)) < 5 and float(crop.max()) > 40


def test_an_export_view_on_a_folder_reads_its_exports_as_they_are(crop_dir, tmp_path, caplog):
    # Fine-tuning an export model on a lab's exported crops: they are not exported again,
    # the simulated crops mixed in are exported once, and scan crops are refused.
    from ctcnet.simulate import simulate_crops
    from ctcnet.simulate.export import write_rgb_jpeg_dataset

    core3 = {"name": "core3", "pixel_size_um": 0.64, "channels": ["DAPI", "CK", "CD45"]}
    export = {"view": "export", "augment": {"tight_p": 1.0}, "panel": core3, "crop_size": 48}
    with pytest.raises(InputError, match="holds scan crops"):
        CTCDataModule(data_dir=str(crop_dir), **export).setup("fit")
    batch = simulate_crops(3, load_panel(core3), None, 48, seed=5, num_samples=4)
    write_rgb_jpeg_dataset(batch, tmp_path / "lab", planes=["CK", "CD45", "DAPI"],
                           pixel_size_um=0.64, seed=1)
    dm = CTCDataModule(data_dir=str(tmp_path / "lab"), simulate={"train": 2, "num_samples": 2},
                       **export)
    dm.setup("fit")
    plain = CTCDataModule(data_dir=str(tmp_path / "lab"), panel=core3, crop_size=48)
    plain.setup("fit")
    train = dm.splits["train"]
    assert len(train.targets) == len(plain.splits["train"].targets) + 8  # 2 simulated a class
    # Its warnings say whose crops they count (the folder's, and the simulated ones mixed in).
    own = len(plain.splits["train"].targets)
    assert dm.train_described == (f"the training crops ({own} of the folder's and 8 simulated, "
                                   "data.simulate.train)")
    assert plain.train_described == "the training crops"
    assert train.images.max() <= 255  # the simulated crops too (16-bit counts before)
    np.testing.assert_array_equal(dm.splits["val"].images, plain.splits["val"].images)
    cfg = dm.train_dataloader().dataset.augment.cfg
    assert cfg.tight_p == 0.0 and cfg.jpeg_p == 0.0 and cfg.gain_p > 0
    # The folder alone (nothing simulated to export) needs no export settings, and read as
    # a scan model's crops it is said to be exports.
    alone = CTCDataModule(data_dir=str(tmp_path / "lab"), view="export", panel=core3,
                          crop_size=48)
    alone.setup("fit")
    assert alone.train_dataloader().dataset.augment.cfg.tight_p == 0.0
    with pytest.raises(InputError, match="every simulated training crop"):
        CTCDataModule(data_dir=str(tmp_path / "lab"), view="export", panel=core3,
                      crop_size=48, simulate={"train": 2})
    with caplog.at_level("WARNING"):
        CTCDataModule(data_dir=str(tmp_path / "lab"), panel=core3, crop_size=48).setup("fit")
    assert any("holds RGB composite exports, but data.view is scan" in r.getMessage()
               for r in caplog.records)


# ----- loss ---------------------------------------------------------------------------------
def test_focal_loss_with_gamma_zero_is_cross_entropy():
    logits, target = torch.randn(10, 4), torch.randint(0, 4, (10,))
    weight = torch.tensor([4.0, 1.0, 2.0, 1.0])
    torch.testing.assert_close(focal_loss(logits, target, weight, gamma=0.0),
                               torch.nn.functional.cross_entropy(logits, target, weight=weight))
    assert focal_loss(logits, target, gamma=2.0) < focal_loss(logits, target, gamma=0.0)


def test_balanced_class_weights_favour_rare_classes():
    counts = torch.tensor([10, 1000, 100, 0])
    w = balanced_class_weights(counts)
    assert w[0] > w[2] > w[1] > 0 and w[3] == 0
    # Each class carries the same total weight; the mean weight per crop is 1.
    torch.testing.assert_close(w[:3] * counts[:3], torch.full((3,), 1110 / 3))
    assert float((w * counts).sum() / counts.sum()) == pytest.approx(1.0)


# ----- the LightningModule ------------------------------------------------------------------
def test_overfit_one_batch():
    torch.manual_seed(0)
    crops, labels = toy_crops(4)
    raw = torch.from_numpy(crops)
    target = torch.tensor([CLASSES.index(label) for label in labels])
    module = CTCLitModule(crop_size=SIZE, arch_kwargs={"width": 8}, lr=1e-2,
                          class_weights="none")
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    for _ in range(40):
        loss = module.compute_loss(module(raw), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    module.eval()
    assert loss.item() < 0.1
    assert (module(raw).argmax(1) == target).all()


@pytest.mark.resnet
def test_resnet18_module_trains_a_step():
    module = CTCLitModule(crop_size=SIZE, arch="resnet18", loss="focal")
    crops, labels = toy_crops(1)
    loss = module.compute_loss(module(torch.from_numpy(crops)), torch.arange(4))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in module.model.net.parameters())


def test_bad_options_are_refused():
    with pytest.raises(InputError):
        CTCLitModule(loss="hinge")
    with pytest.raises(InputError):
        CTCLitModule(class_weights=[1.0, 2.0])
    # At construction, in one line: not at the optimiser once the data is rendered, nor never.
    for bad in ({"lr": -0.01}, {"lr": 0.0}, {"weight_decay": -1.0}):
        with pytest.raises(InputError, match="lr must be > 0 and weight_decay >= 0"):
            CTCLitModule(**bad)
    with pytest.raises(InputError, match="arch 'nosuch' is not one of"):
        CTCLitModule(arch="nosuch")
    with pytest.raises(InputError, match=r"batch_size=0 \(at least 1\): too small"):
        CTCDataModule(simulate={"train": 2}, batch_size=0)
    with pytest.raises(InputError, match=r"crop_size=8 \(at least 16\), batch_size=-4"):
        CTCDataModule(simulate={"train": 2}, crop_size=8, batch_size=-4)


class StopAfterFirstEpoch(Callback):
    """Interrupts training after epoch 0, like a killed job."""

    def on_train_epoch_end(self, trainer, module):
        trainer.should_stop = True


class RecordEpochs(Callback):
    def __init__(self):
        self.started = []

    def on_train_epoch_start(self, trainer, module):
        self.started.append(trainer.current_epoch)


def _fit(crop_dir, root, epochs=1, ckpt_path=None, panel=None, extra_callbacks=(),
         monitor="val/macro_f1", mode="max"):
    import lightning as L

    from ctcnet.training.cli import BestAndLastCheckpoint

    dm = CTCDataModule(data_dir=str(crop_dir), crop_size=SIZE, batch_size=8, panel=panel)
    torch.manual_seed(0)  # the same initial weights in every fit
    module = CTCLitModule(panel=dm.panel_config, crop_size=SIZE, arch_kwargs={"width": 8})
    checkpoint = BestAndLastCheckpoint(dirpath=Path(root) / "checkpoints", save_last=True,
                                       monitor=monitor, mode=mode)
    trainer = L.Trainer(max_epochs=epochs, limit_train_batches=2, accelerator="cpu",
                        devices=1, default_root_dir=str(root),
                        callbacks=[checkpoint, *extra_callbacks],
                        logger=False, enable_progress_bar=False, enable_model_summary=False)
    # As train resumes: the checkpoint must load without unpickling anything but plain data.
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    return module, trainer, checkpoint


@pytest.fixture(scope="module")
def fitted(crop_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    torch.manual_seed(0)  # as in _fit: these are the weights the fit starts from
    initial = {k: v.clone() for k, v in
               CTCLitModule(crop_size=SIZE, arch_kwargs={"width": 8}).state_dict().items()}
    module, trainer, checkpoint = _fit(crop_dir, root)
    return initial, module, trainer, checkpoint, root


def test_parameters_change_after_a_fit(fitted):
    initial, module, *_ = fitted
    changed = [k for k, v in module.state_dict().items()
               if k.startswith("model.net") and k.endswith("weight")
               and not torch.equal(v, initial[k])]
    weights = [k for k in initial if k.startswith("model.net") and k.endswith("weight")]
    assert changed == weights


def test_checkpoint_round_trip_with_weights_only(fitted):
    from ctcnet.nn.classifier import load_model

    _, module, trainer, checkpoint, _ = fitted
    blob = torch.load(checkpoint.last_model_path, weights_only=True)
    spec = blob["ctcnet_spec"]
    assert spec["panel"]["channels"][0]["name"] == "DAPI" and spec["crop_size"] == SIZE
    assert spec["training"]["data"]["splits"]["train"]["crops"] > 0
    assert set(spec["metrics"]["per_class"]) == set(CLASSES)
    assert "macro_f1" in spec["metrics"] and len(spec["metrics"]["confusion"]) == 4
    # Each class with its support; one the split holds none of is n/a, not a precision of 0.
    for name, row in zip(CLASSES, spec["metrics"]["confusion"]):
        entry = spec["metrics"]["per_class"][name]
        assert entry["support"] == sum(row)
        assert (entry["recall"] is None) == (sum(row) == 0)
    model, loaded_spec = load_model(checkpoint.last_model_path)
    assert loaded_spec.class_names == CLASSES
    raw = torch.from_numpy(toy_crops(1)[0])
    module.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(raw), module.model(raw))


def test_resume_from_last_continues(crop_dir, tmp_path):
    first, trainer, _ = _fit(crop_dir, tmp_path, epochs=2,
                             extra_callbacks=[StopAfterFirstEpoch()])
    steps = trainer.global_step
    assert first.current_epoch == 1 and steps == 2
    record = RecordEpochs()
    _, trainer, _ = _fit(crop_dir, tmp_path, epochs=2, ckpt_path="last",
                         extra_callbacks=[record])
    # Only the missing epoch ran, and the step count (hence the LR schedule) went on.
    assert record.started == [1]
    assert trainer.current_epoch == 2 and trainer.global_step == 2 * steps
    # The checkpoints written since say where the run went on from (another model than an
    # uninterrupted run's: the file alone says how it was made); the first run's say nothing.
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["ctcnet_spec"]["training"]["resumed"] == [{"epoch_index": 0,
                                                           "global_step": steps}]
    assert "resumed" not in first.current_spec().training


class RecordFirstBatches(Callback):
    """A digest of each epoch's first training batch (its augmented crops)."""

    def __init__(self):
        self.first = {}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 0:
            self.first[trainer.current_epoch] = hashlib.sha256(
                batch[0].numpy().tobytes()).hexdigest()


def test_a_resumed_run_does_not_replay_epoch_zeros_batches(crop_dir, tmp_path):
    """Restarted from the seed alone, a resumed run's first epoch was epoch 0 again (the same
    crops, order and augmentations). A run that is not resumed keeps its streams as they
    were."""
    from ctcnet.training.cli import NewStreamsOnResume

    plain, with_callback = RecordFirstBatches(), RecordFirstBatches()
    _fit(crop_dir, tmp_path / "plain", epochs=2, extra_callbacks=[plain])
    _fit(crop_dir, tmp_path / "same", epochs=2,
         extra_callbacks=[with_callback, NewStreamsOnResume()])
    assert with_callback.first == plain.first  # nothing changes without a resume
    _fit(crop_dir, tmp_path / "cut", epochs=2, extra_callbacks=[StopAfterFirstEpoch()])
    resumed = RecordFirstBatches()
    _fit(crop_dir, tmp_path / "cut", epochs=2, ckpt_path="last",
         extra_callbacks=[resumed, NewStreamsOnResume()])
    assert list(resumed.first) == [1] and resumed.first[1] != plain.first[0]


def test_last_checkpoint_is_the_last_epoch_when_it_is_not_the_best(crop_dir, tmp_path):
    # Lightning writes last.ckpt only beside a new best; a later epoch that is not the best
    # left it behind (a resume re-trained done epochs, a run's final weights were lost).
    # Monitored here on the epoch, lowest best: every epoch after the first is worse.
    module, trainer, checkpoint = _fit(crop_dir, tmp_path, epochs=3, monitor="epoch",
                                       mode="min")
    assert Path(checkpoint.best_model_path).name.startswith("epoch=0")
    last = torch.load(checkpoint.last_model_path, weights_only=True)
    assert last["epoch"] == 2 and last["global_step"] == trainer.global_step
    record = last["ctcnet_spec"]["training"]
    assert record["epochs_completed"] == 3 and record["epoch_index"] == 2
    torch.testing.assert_close(last["state_dict"], module.state_dict())
    record = RecordEpochs()  # nothing left to train: the resume finds the run complete
    _, again, _ = _fit(crop_dir, tmp_path, epochs=3, ckpt_path="last", monitor="epoch",
                       mode="min", extra_callbacks=[record])
    assert record.started == [] and again.global_step == trainer.global_step


def test_training_lacking_a_class_warns_and_on_one_class_is_refused(tmp_path, caplog):
    crops, labels = toy_crops(4)
    two = [i for i, label in enumerate(labels) if label in ("ctc", "wbc")]
    samples = [f"P{i % 2}" for i in range(len(two))]
    write_crop_dataset(tmp_path / "two", crops[two].astype(np.uint16),
                       [labels[i] for i in two], load_panel(None), samples)
    _fit(tmp_path / "two", tmp_path / "fit_two")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("the training crops hold no cluster, debris" in m for m in warned), warned
    assert any("the training crops hold few crops of ctc (" in m and "ctcnet finetune" in m
               for m in warned), warned
    ctc = [i for i, label in enumerate(labels) if label == "ctc"]
    write_crop_dataset(tmp_path / "one", crops[ctc].astype(np.uint16), ["ctc"] * len(ctc),
                       load_panel(None), [f"P{i % 2}" for i in range(len(ctc))])
    with pytest.raises(InputError, match="training needs crops of at least two classes"):
        _fit(tmp_path / "one", tmp_path / "fit_one")
    assert not (tmp_path / "fit_one" / "checkpoints").exists()


def test_few_crops_of_a_class_are_said_with_the_threshold_of_how_training_starts(caplog):
    from ctcnet.training.lit import FEW_FROM_A_MODEL, FEW_FROM_SCRATCH, check_training_classes

    counts = {"ctc": 12, "wbc": 400, "cluster": 0}
    with caplog.at_level("WARNING"):
        check_training_classes(counts, few=FEW_FROM_A_MODEL)
    assert not any("few crops" in r.getMessage() for r in caplog.records)
    with caplog.at_level("WARNING"):
        check_training_classes(counts, few=FEW_FROM_SCRATCH)
    few = [r.getMessage() for r in caplog.records if "few crops" in r.getMessage()]
    assert len(few) == 1 and "ctc (12)" in few[0] and "wbc" not in few[0], few


def test_a_class_the_validation_crops_lack_is_named(tmp_path, caplog):
    """Every cluster crop in the training split: the validation macro-F1 that picks the best
    checkpoint says nothing of clusters, and the run says so."""
    crops, labels = toy_crops(4)
    splits = ["train" if label == "cluster" else ("val" if i % 2 else "train")
              for i, label in enumerate(labels)]
    write_crop_dataset(tmp_path / "ds", crops.astype(np.uint16), labels, load_panel(None),
                       [f"P{i % 2}" for i in range(len(labels))], splits)
    module, trainer, _ = _fit(tmp_path / "ds", tmp_path / "fit")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("the validation crops hold no cluster: the validation macro-F1, which picks "
               "the best checkpoint, does not" in m for m in warned), warned
    assert not any("validation crops hold no ctc" in m for m in warned)
    # ... and the macro-F1 is over the classes it holds (evaluate's), the absent one NaN in
    # the logged metrics, where a 0 had put the figure a quarter low.
    per_class = module.last_metrics["per_class"]
    assert per_class["cluster"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    held = [v["f1"] for v in per_class.values() if v["support"]]
    assert module.last_metrics["macro_f1"] == pytest.approx(sum(held) / 3, abs=1e-6)
    logged = trainer.callback_metrics
    assert logged["val/macro_f1"].item() == pytest.approx(sum(held) / 3, abs=1e-6)
    assert torch.isnan(logged["val/f1_cluster"]) and torch.isnan(logged["val/recall_cluster"])


def test_checkpoint_from_another_panel_is_refused(crop_dir, fitted, tmp_path):
    _, _, _, checkpoint, _ = fitted
    other = {"channels": ["DAPI", "CK", "CD45", "VIM", "CD66b"]}
    module = CTCLitModule(panel=other, crop_size=SIZE, arch_kwargs={"width": 8})
    with pytest.raises(PanelMismatchError):
        module.on_load_checkpoint(torch.load(checkpoint.last_model_path, weights_only=True))


# ----- configs, CLI, DDP --------------------------------------------------------------------
@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_config_file_loads(config, crop_dir, tmp_path):
    from ctcnet.training.cli import CTCLightningCLI
    from ctcnet.training.datamodule import CTCDataModule

    args = ["--config", str(config), f"--trainer.default_root_dir={tmp_path}"]
    if "data_dir: null" in config.read_text():
        args.append(f"--data.data_dir={crop_dir}")
    cli = CTCLightningCLI(CTCLitModule, CTCDataModule, run=False, args=args)
    assert isinstance(cli.model, CTCLitModule)
    # Channels, classes and crop size are linked from the data into the model.
    assert cli.model.spec.panel.names == cli.datamodule.panel.names
    assert cli.model.spec.class_names == cli.datamodule.class_names
    assert cli.model.spec.crop_size == cli.datamodule.crop_size


def test_ctcnet_train_runs_in_process_on_smoke(tmp_path):
    from ctcnet.cli import main
    from ctcnet.nn.classifier import load_model

    root = tmp_path / "smoke"
    assert main(["train", "--config", str(ROOT / "configs" / "smoke.yaml"),
                 f"--trainer.default_root_dir={root}", "--model.lr=0.001"]) == 0
    assert (root / "checkpoints" / "last.ckpt").exists()
    _, spec = load_model(root / "model.pt")
    assert spec.crop_size == 32 and spec.training["data"]["simulated"]["train"] == 4
    saved = list(root.rglob("config.yaml"))
    assert saved and "lr: 0.001" in saved[0].read_text()


def test_training_never_exports_over_the_model_it_starts_from(tmp_path, capsys,
                                                              tiny_model_file):
    import hashlib

    from ctcnet.cli import main

    start, _ = tiny_model_file(tmp_path / "model.pt", crop_size=32, width=8)
    before = hashlib.sha256(start.read_bytes()).hexdigest()
    capsys.readouterr()
    assert main(["train", "--config", str(ROOT / "configs" / "smoke.yaml"),
                 f"--trainer.default_root_dir={tmp_path}", f"--model.init_from={start}"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and f"{start}: is the model this command reads" in err[0], err
    assert hashlib.sha256(start.read_bytes()).hexdigest() == before
    assert not (tmp_path / "checkpoints").exists()


def test_ddp_two_processes_on_cpu(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get(
        "PYTHONPATH")])), OMP_NUM_THREADS="1")
    # Nine validation crops over two ranks: each scored once, none repeated to even the shares.
    cmd = [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs/smoke.yaml"),
           "--trainer.accelerator=cpu", "--trainer.devices=2", "--trainer.strategy=ddp",
           f"--trainer.default_root_dir={tmp_path}", "--export=ddp.pt",
           "--data.simulate={train: 4, val: {ctc: 3, wbc: 2, cluster: 2, debris: 2}, seed: 0, "
           "num_samples: 2}"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed_backend=gloo" in done.stderr + done.stdout
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    spec = torch.load(tmp_path / "ddp.pt", weights_only=True)["ctcnet_spec"]
    metrics = spec["metrics"]
    assert metrics["split"] == "val"
    # model.pt says how many processes trained it and the loss's class weights (the config
    # said "balanced" and devices "auto" alone).
    assert spec["training"]["processes"] == 2 and len(spec["training"]["loss_weights"]) == 4
    assert np.asarray(metrics["confusion"]).sum(axis=1).tolist() == [3, 2, 2, 2]
    said = (done.stderr + done.stdout).count("the training crops hold few crops")
    assert said == 1, done.stderr[-3000:]  # said by rank 0, not once a rank


def test_train_py_is_ctcnet_train(tmp_path):
    """The same one-line refusal and exit status 2, not a traceback and 1."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get(
        "PYTHONPATH")])))
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), "--config",
                           str(ROOT / "configs/smoke.yaml"), "--model.lr=-0.01",
                           f"--trainer.default_root_dir={tmp_path}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.startswith("ctcnet train")]
    assert done.returncode == 2 and lines == [
        "ctcnet train: error: lr must be > 0 and weight_decay >= 0 (got lr=-0.01, "
        "weight_decay=0.0001)"], done.stderr[-2000:]
    assert "Traceback" not in done.stderr


def test_training_throughput_is_measured():
    from ctcnet.benchmark import training_throughput

    result = training_throughput(crop_size=SIZE, batch_size=4, steps=1, device="cpu")
    assert result["device"] == "cpu" and result["crops_per_s"] > 0


@pytest.mark.gpu
def test_cuda_training_uses_mixed_precision_and_channels_last(tmp_path):
    from ctcnet.benchmark import training_throughput
    from ctcnet.training.cli import CTCLightningCLI

    args = ["--config", str(ROOT / "configs" / "smoke.yaml"), "--trainer.accelerator=gpu",
            f"--trainer.default_root_dir={tmp_path}"]
    cli = CTCLightningCLI(CTCLitModule, CTCDataModule, run=False, args=args)
    assert cli.trainer.precision in ("bf16-mixed", "16-mixed")
    seen = []

    class FirstConvDuringTraining(Callback):
        # Read during training: the trainer's teardown moves the module back to the CPU.
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            conv = module.model.net.features[0][0].weight
            seen.append((conv.is_cuda, conv.is_contiguous(memory_format=torch.channels_last)))

    cli.trainer.callbacks.append(FirstConvDuringTraining())
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert seen and all(cuda and channels_last for cuda, channels_last in seen)
    assert training_throughput(crop_size=SIZE, batch_size=8, steps=1)["device"].startswith("cuda")


def test_default_model_script_runs_the_recipe_and_writes_the_card(tmp_path):
    """scripts/train_default_model.py at smoke scale: LightningCLI fit, calibration, card."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = load_script(root / "scripts" / "train_default_model.py")
    assert script.main(["--config", str(root / "configs" / "smoke.yaml"), "--out",
                        str(tmp_path / "m"),
                        "--test-per-class", "4", "--shift-per-class", "2",
                        "--baseline-train-per-class", "10", "--train-scale", "2"]) == 0
    # The run beside the lab's model (it went into the checkout's runs/ by default).
    assert list((tmp_path / "m" / "runs" / "checkpoints").glob("*.ckpt"))
    card = json.loads((tmp_path / "m" / "ctcnet-default.json").read_text())
    assert card["training"]["epochs"] == 1 and card["data"]["train_val"]["splits"]["train"][
        "crops"] == 8 * 4  # smoke.yaml: 4 crops per class, x2
    assert "--train-scale 2.0" in card["reproduce"]
    # Where it went, named: followed from the checkout, a line without --out wrote into the
    # shipped models' folder; one for the shipped folder goes beside it.
    assert f"--out {tmp_path / 'm'}" in card["reproduce"]
    args, extra = script.parse_args(["--config", "configs/smoke.yaml"])
    assert "--out runs/ctcnet-default" in script.reproduce_command(args, extra)
    assert "## Robustness" in (tmp_path / "m" / "ctcnet-default.md").read_text()
    from ctcnet.nn.classifier import load_model

    _, model_spec = load_model(tmp_path / "m" / "ctcnet-default.pt")
    assert model_spec.metrics["test_default_randomisation"]["macro_f1"] == card[
        "test_default_randomisation"]["macro_f1"]

    # scripts/refit_guard.py re-makes the same validation split from the recipe: with the
    # measurements unchanged it fits the same guard reference again.
    refit = load_script(root / "scripts" / "refit_guard.py")
    stored = model_spec.metrics["guard"]
    with pytest.raises(InputError, match="fewer than the 400 a guard reference needs"):
        refit.main(["--model", str(tmp_path / "m" / "ctcnet-default.pt"),
                    "--config", str(root / "configs" / "smoke.yaml")])
    assert refit.main(["--model", str(tmp_path / "m" / "ctcnet-default.pt"),
                       "--config", str(root / "configs" / "smoke.yaml"),
                       "--min-crops", "1"]) == 0  # (a smoke recipe's few crops, on purpose)
    _, again = load_model(tmp_path / "m" / "ctcnet-default.pt")
    assert again.metrics["guard"]["threshold"] == pytest.approx(stored["threshold"], rel=1e-6)
    np.testing.assert_allclose(again.metrics["guard"]["means"], stored["means"], rtol=1e-5)
    assert "guard" in json.loads((tmp_path / "m" / "ctcnet-default.json").read_text())[
        "test_default_randomisation"]
    with pytest.raises(InputError, match="validation split"):
        refit.main(["--model", str(tmp_path / "m" / "ctcnet-default.pt"),
                    "--config", str(root / "configs" / "default.yaml")])
    # --keep-reference (a change to the flags, not the measurements): the stored reference
    # stays, whatever today's recipe would make, and no validation split is made (this
    # config's would be refused); the card's guard lines are re-measured.
    from ctcnet.nn.classifier import save_model

    net, kept_spec = load_model(tmp_path / "m" / "ctcnet-default.pt")
    marked = {**kept_spec.metrics["guard"], "threshold": 123.0}
    save_model(tmp_path / "m" / "ctcnet-default.pt", net,
               kept_spec.replace(metrics={**kept_spec.metrics, "guard": marked}))
    assert refit.main(["--model", str(tmp_path / "m" / "ctcnet-default.pt"), "--config",
                       str(root / "configs" / "default.yaml"), "--keep-reference"]) == 0
    _, kept = load_model(tmp_path / "m" / "ctcnet-default.pt")
    assert kept.metrics["guard"] == marked
    assert "guard" in kept.metrics["test_default_randomisation"]
    # The card says its guard lines are of today's draw, beside figures of the training day's.
    card = json.loads((tmp_path / "m" / "ctcnet-default.json").read_text())
    assert card["guard_remeasured"]["command"].endswith("--keep-reference")
    assert "were measured again on" in (tmp_path / "m" / "ctcnet-default.md").read_text()
    save_model(tmp_path / "m" / "ctcnet-default.pt", net, again)   # as refitted, for below

    # --retest: the same network tested again at other sizes under another name; the card
    # keeps the training record and the rule measured on it, the weights are the same.
    from ctcnet.evaluation.model_card import refresh_decision

    refresh_decision(tmp_path / "m" / "ctcnet-default.json", {"rule": {"ctc": -1.0}})
    assert script.main(["--retest", str(tmp_path / "m" / "ctcnet-default.pt"), "--name", "again",
                        "--out", str(tmp_path / "r"), "--test-per-class", "6",
                        "--shift-per-class", "2", "--baseline-train-per-class", "10"]) == 0
    retested = json.loads((tmp_path / "r" / "again.json").read_text())
    assert retested["training"] == card["training"]
    assert retested["data"]["train_val"] == card["data"]["train_val"]
    assert retested["data"]["test"]["per_class"] == 6
    assert retested["decision"] == {"rule": {"ctc": -1.0}}
    assert "--test-per-class 6" in retested["reproduce"]
    before, _ = load_model(tmp_path / "m" / "ctcnet-default.pt")
    after, after_spec = load_model(tmp_path / "r" / "again.pt")
    for key, value in before.state_dict().items():
        assert torch.equal(value, after.state_dict()[key]), key
    assert after_spec.metrics["guard"] == again.metrics["guard"]
    assert after_spec.metrics["validation"] == again.metrics["validation"]

    # --retest of a model fine-tuned from that one (ctcnet finetune): the card keeps the base's
    # training record with the fine-tuning added, states how it was made (--reproduce, which
    # this script's own line would not), and drops the rule and matrix of the base network.
    from ctcnet.detect.crop_dataset import write_crop_dataset
    from ctcnet.simulate import simulate_crops
    from ctcnet.training.finetune import FinetuneOptions, finetune

    card["robustness_matrix"] = {"measured on": "the base network"}
    (tmp_path / "m" / "ctcnet-default.json").write_text(json.dumps(card))
    batch = simulate_crops(6, model_spec.panel, crop_size=model_spec.crop_size, seed=5,
                           num_samples=2)
    write_crop_dataset(tmp_path / "lab", batch.images, batch.labels, model_spec.panel,
                       batch.sample_ids)
    finetune(tmp_path / "lab", tmp_path / "t" / "tuned.pt", tmp_path / "m" / "ctcnet-default.pt",
             FinetuneOptions(steps=2, batch_size=8, sim_check_per_class=0, device="cpu"))
    retest = ["--retest", str(tmp_path / "t" / "tuned.pt"), "--name", "tuned", "--out",
              str(tmp_path / "t"), "--test-per-class", "4", "--shift-per-class", "2",
              "--baseline-train-per-class", "10"]
    with pytest.raises(SystemExit, match="--reproduce"):
        script.main(retest)
    assert script.main(retest + ["--reproduce", "train; ctcnet finetune lab"]) == 0
    tuned_card = json.loads((tmp_path / "t" / "tuned.json").read_text())
    assert tuned_card["reproduce"] == "train; ctcnet finetune lab"
    assert tuned_card["training"]["epochs"] == card["training"]["epochs"]
    assert tuned_card["training"]["finetune"]["options"]["steps"] == 2
    assert "robustness_matrix" not in tuned_card and "decision" not in tuned_card
    assert "Then fine-tuned (`ctcnet finetune`) on 24 labelled crops" in (
        tmp_path / "t" / "tuned.md").read_text()


def test_refit_guard_takes_a_crop_folders_validation_split(crop_dir, tmp_path):
    """A lab's own recipe (a crop folder) gives the guard the validation crops training used,
    and a card naming another folder is refused."""
    import yaml

    root = Path(__file__).resolve().parents[2]
    refit = load_script(root / "scripts" / "refit_guard.py")
    config = tmp_path / "lab.yaml"
    config.write_text(yaml.safe_dump({"data": {"data_dir": str(crop_dir), "crop_size": SIZE,
                                               "val_fraction": 0.25, "num_workers": 1}}))
    with pytest.raises(InputError, match="a guard reference needs"):
        refit.validation_split(config, None)
    val = refit.validation_split(config, None, min_crops=1)
    trained = CTCDataModule(data_dir=str(crop_dir), crop_size=SIZE, val_fraction=0.25)
    trained.setup("fit")
    np.testing.assert_array_equal(val.images, trained.splits["val"].images)
    assert 0 < len(val.targets) < 32
    with pytest.raises(InputError, match="trained on"):
        refit.validation_split(config, {"data": {"train_val": {"data_dir": str(tmp_path)}}},
                               min_crops=1)
    # A mistyped --config, or a file that is no recipe: one line, not a traceback.
    with pytest.raises(InputError, match="cannot read the recipe"):
        refit.validation_split(tmp_path / "lab.yml", None)
    (tmp_path / "broken.yaml").write_text("data: [1\n")
    with pytest.raises(InputError, match=r"cannot read the recipe \(expected .* at line 2\)$"):
        refit.validation_split(tmp_path / "broken.yaml", None)
    (tmp_path / "notes.yaml").write_text("- a list\n")
    with pytest.raises(InputError, match="not a training recipe"):
        refit.validation_split(tmp_path / "notes.yaml", None)


def test_default_config_is_the_shipped_models_recipe():
    """The config the shipped model's card names (its last training stage) holds what the card
    says it was trained with."""
    import json
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    card = json.loads((root / "models" / "ctcnet-default.json").read_text())
    config = yaml.safe_load((root / "configs" / card["training"]["config"]).read_text())
    hp = card["training"]["hyper_parameters"]
    for key, value in config["model"].items():
        assert hp.get(key) == value, key
    assert card["training"]["epochs"] == config["trainer"]["max_epochs"]
    simulated = card["data"]["train_val"]["simulated"]
    for key in ("train", "val", "seed", "num_samples", "randomisation", "overrides"):
        assert simulated.get(key) == config["data"]["simulate"].get(key), key
    assert card["data"]["train_val"].get("augment", True) == config["data"].get("augment", True)
    assert card["crop_size"] == config["data"]["crop_size"]


def test_dotted_augment_overrides_arrive_typed_and_bad_ones_are_refused(tmp_path):
    """`--data.augment.nonspecific_ck_p=0.45` reaches the data module as the text '0.45'; it
    once failed only inside a data-loader worker, after the training crops were simulated."""
    from ctcnet.errors import InputError
    from ctcnet.simulate.augment_options import augment_config
    from ctcnet.training.cli import CTCLightningCLI

    args = ["--config", str(ROOT / "configs" / "smoke.yaml"),
            f"--trainer.default_root_dir={tmp_path}", "--data.augment.nonspecific_ck_p=0.45",
            "--data.augment.nonspecific_ck_ratio=[0.05, 3]", "--data.augment.flips=false"]
    cli = CTCLightningCLI(CTCLitModule, CTCDataModule, run=False, args=args)
    augment = cli.datamodule.augment
    assert augment["nonspecific_ck_p"] == 0.45 and augment["nonspecific_ck_ratio"] == [0.05, 3.0]
    assert augment["flips"] is False
    cfg = augment_config(augment)
    assert isinstance(cfg.nonspecific_ck_p, float) and cfg.export_quality == (40, 95)
    assert augment_config({"export_quality": "[50, 90]"}).export_quality == (50, 90)
    for bad, words in (({"nonspecific_ck_q": 0.4}, "unknown option(s) nonspecific_ck_q"),
                       ({"gain_p": "often"}, "data.augment.gain_p: expected float"),
                       ({"gain_range": [0.2]}, "data.augment.gain_range: expected 2 numbers"),
                       ({"export_quality": [40.5, 95]}, "export_quality: expected 2 numbers"),
                       ({"flips": 1}, "data.augment.flips: expected bool")):
        with pytest.raises(InputError, match=re.escape(words)):
            augment_config(bad)


def test_one_patient_written_two_ways_is_said(caplog):
    from ctcnet.training.crop_folder import warn_of_alike_sample_ids

    with caplog.at_level("WARNING"):
        warn_of_alike_sample_ids(["P002", "p002", "P003", "P003", "s1 ", "S1",
                                  "M\u00fcller", "Mu\u0308ller"], "lab")  # composed, decomposed
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "3 sample id(s) are written more than one way" in said[0]
    assert "'P002' and 'p002'" in said[0] and "'S1' and 's1 '" in said[0]
    assert "M\u00fcller" in said[0] and "Mu\u0308ller" in said[0]
    caplog.clear()
    warn_of_alike_sample_ids(["P002", "P003"], "lab")
    assert not caplog.records


def test_each_ddp_process_draws_its_own_augmentation_and_rank_0_a_lone_runs():
    """Seeded alike, every process of a DDP run applied the same zoom, gain and noise draws to
    its own crops; its rank now steps the workers' streams (rank 0 keeps a one-process run's,
    so a recipe reproduces its model)."""
    from ctcnet.training.splits import CropDataset, crop_loader

    images = np.random.default_rng(3).uniform(90, 3000, (8, 5, 32, 32)).astype(np.float32)
    targets = np.zeros(8, np.int64)

    def first_batch(rank: int) -> torch.Tensor:
        torch.manual_seed(0)  # torch's worker seeds: alike on every process after one seed
        data = CropDataset(images, targets, build_train_augment(seed=7), rank=rank)
        loader = crop_loader(data, batch_size=8, num_workers=1, train=False)
        return next(iter(loader))[0]

    alone = first_batch(0)
    assert torch.equal(first_batch(0), alone)
    assert not torch.equal(first_batch(1), alone)


def test_a_run_stopped_before_its_first_validation_records_no_score(tmp_path):
    """Stopped mid-epoch by max_steps: the sanity check's batches (the untrained weights)
    were kept as the model's validation score; the model now carries none."""
    from ctcnet.cli import main
    from ctcnet.nn.classifier import load_model

    root = tmp_path / "steps"
    assert main(["train", "--config", str(ROOT / "configs" / "smoke.yaml"),
                 f"--trainer.default_root_dir={root}", "--trainer.max_steps=1",
                 "--trainer.num_sanity_val_steps=1",
                 "--data.simulate={train: 8, val: 4, seed: 0, num_samples: 2}",
                 "--data.batch_size=4"]) == 0
    _, spec = load_model(root / "model.pt")
    assert "macro_f1" not in (spec.metrics or {})


def test_one_patient_id_written_two_ways_is_said_as_a_patient_id(tmp_path, caplog):
    """A manifest's patient_id "PA" and "pa": the split by patient put their draws on both
    sides, unsaid (a sample id so written is said)."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.io.taxonomy import load_taxonomy
    from ctcnet.simulate import simulate_crops
    from ctcnet.training.crop_folder import folder_splits

    batch = simulate_crops(2, load_panel(None), crop_size=SIZE, seed=3, num_samples=4)
    write_crop_dataset(tmp_path / "lab", batch.images, batch.labels, load_panel(None),
                       batch.sample_ids)
    manifest = tmp_path / "lab" / "manifest.csv"
    lines = manifest.read_text().splitlines()
    patients = {s: ("PA" if k == 0 else "pa" if k == 1 else f"P{k}")
                for k, s in enumerate(sorted(set(batch.sample_ids)))}
    column = lines[0].split(",").index("sample_id")
    manifest.write_text("\n".join([lines[0] + ",patient_id"] + [
        line + "," + patients[line.split(",")[column]] for line in lines[1:]]) + "\n")
    index = read_crop_index(tmp_path / "lab")
    with caplog.at_level("WARNING"):
        folder_splits(index, load_taxonomy(None), SIZE, index.panel.pixel_size_um, 0.25, 0,
                      "auto")
    assert "1 patient id(s) are written more than one way ('PA' and 'pa')" in caplog.text
