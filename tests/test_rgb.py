"""Real-world inputs: RGB composite crops (PNG, JPEG, TIFF), channels matched to a model by name,
the registry of shipped models, the rgb-jpeg simulator export and the torch-free base install."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import read_crop_index
from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.io.images import read_channel_file, read_image
from ctcnet.io.panel import load_panel, save_panel
from ctcnet.io.scan import open_cartridge, write_cartridge_info, write_frame
from ctcnet.nn import registry

CORE3 = ["DAPI", "CK", "CD45"]
RGB_ORDER = ["CK", "CD45", "DAPI"]  # R, G, B as published composites show them
TINY_CROP = 32


def _planes(rng, h=40, w=52) -> np.ndarray:
    """Three different uint8 planes: smooth enough for JPEG to keep them apart."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 5, (xx + yy) * 2]).astype(np.float64)
    return np.clip(base + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)


def _save_rgb(path: Path, planes: np.ndarray, fmt: str, alpha: bool = False) -> None:
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


# --- reading colour files ------------------------------------------------------------------------

@pytest.mark.parametrize("name,fmt,alpha", [("a.png", "PNG", False), ("a.png", "PNG", True),
                                            ("a.tif", "TIFF", False), ("a.tif", "TIFF", True)])
def test_colour_files_read_as_their_rgb_planes(tmp_path, rng, name, fmt, alpha):
    planes = _planes(rng)
    _save_rgb(tmp_path / name, planes, fmt, alpha)
    arr, _ = read_image(tmp_path / name)
    assert arr.dtype == np.uint8 and np.array_equal(arr, planes)  # alpha dropped, R, G, B


def test_jpeg_crops_read_as_composites(tmp_path, rng):
    planes = _planes(rng)
    _save_rgb(tmp_path / "a.jpg", planes, "JPEG")
    arr, names = read_image(tmp_path / "a.jpg")
    assert names is None and arr.shape == planes.shape and arr.dtype == np.uint8
    assert np.abs(arr.astype(int) - planes).mean() < 4  # lossy, but the planes stay apart
    (tmp_path / "bad.jpg").write_bytes((tmp_path / "a.jpg").read_bytes()[:200])
    with pytest.raises(InputError, match="not a readable JPEG"):
        read_image(tmp_path / "bad.jpg")
    # A per-channel frame file must be one channel: a composite is refused there, an RGB export
    # of a grey channel (equal planes) is read as that channel.
    with pytest.raises(InputError, match="must be greyscale"):
        read_channel_file(tmp_path / "a.jpg")
    _save_rgb(tmp_path / "grey.png", np.repeat(planes[:1], 3, axis=0), "PNG")
    assert np.array_equal(read_channel_file(tmp_path / "grey.png"), planes[0])


# --- panels: composites, pixel sizes, channels by name --------------------------------------------

@pytest.mark.parametrize("bad", [
    {"channels": ["DAPI", "CK", "CD45", "CD61"], "composite": "rgb"},  # a plane per channel
    {"channels": RGB_ORDER, "composite": "cmyk"},
    {"channels": RGB_ORDER, "pixel_size_um": 0.001},                     # nm written as um
    {"channels": RGB_ORDER, "pixel_size_um": "fine"},
])
def test_bad_composite_panels_are_refused(bad):
    with pytest.raises(InputError):
        load_panel(bad)


def test_viewer_pixel_sizes_are_accepted():
    for um in (0.02, 0.1, 2.0):
        assert load_panel({"channels": RGB_ORDER, "pixel_size_um": um}).pixel_size_um == um


def _rgb_dataset(root: Path, rng, fmt="PNG", sizes=((40, 52),), planes_order=RGB_ORDER,
                 pixel_size_um=0.64, labels=("ctc",)) -> list[np.ndarray]:
    suffix = {"PNG": "png", "JPEG": "jpg", "TIFF": "tif"}[fmt]
    written = []
    for i, (label, (h, w)) in enumerate(zip(labels, sizes)):
        planes = _planes(rng, h, w)
        _save_rgb(root / label / f"P{i % 2}__{i:03d}.{suffix}", planes, fmt)
        written.append(planes)
    (root / "panel.json").write_text(json.dumps({"channels": list(planes_order),
                                                 "pixel_size_um": pixel_size_um}))
    return written


def test_planes_are_mapped_to_the_model_by_name(tmp_path, rng):
    (planes,) = _rgb_dataset(tmp_path / "ds", rng)
    index = read_crop_index(tmp_path / "ds")
    assert index.panel.composite == "rgb"  # inferred from the 8-bit three-plane file
    model = load_panel({"channels": CORE3})
    conformed = index.conform(model)
    assert conformed.panel.names == CORE3
    assert np.array_equal(conformed.read(0), planes[[2, 0, 1]])  # B=DAPI, R=CK, G=CD45
    # The five-channel model needs markers the composite lacks: named, not guessed.
    with pytest.raises(PanelMismatchError, match=r"lacks \['CD61', 'CD66b'\]"):
        index.conform(load_panel(None))
    # A colour file under a panel that names five channels: the message says why.
    save_panel(load_panel({"channels": ["DAPI", "CK", "CD45", "CD61", "CD66b"]}),
               tmp_path / "ds" / "panel.json")
    with pytest.raises(InputError, match="colour file holds three planes"):
        read_crop_index(tmp_path / "ds").read(0)


def test_extra_channels_dropped_with_a_note_and_aliases_match(caplog):
    model = load_panel({"channels": ["DAPI", "CK", "CD45", "CD61"]})
    data = load_panel({"channels": ["VIM", "cd41", "Hoechst", "CK", "CD45"]})
    with caplog.at_level(logging.WARNING, logger="ctcnet.io.panel"):
        assert model.channel_indices(data) == [2, 3, 4, 1]
    assert "dropping channel(s) ['VIM']" in caplog.text


def test_composite_panel_refuses_a_16bit_file(tmp_path, rng):
    root = tmp_path / "ds"
    (root / "ctc").mkdir(parents=True)
    tifffile.imwrite(root / "ctc" / "a.tif", rng.integers(0, 4000, (3, 20, 20), dtype=np.uint16),
                     photometric="minisblack")
    (root / "panel.json").write_text(json.dumps({"channels": RGB_ORDER, "composite": "rgb",
                                                     "pixel_size_um": 0.1}))
    with pytest.raises(InputError, match="says the crops are RGB composites"):
        read_crop_index(root).read(0)


def test_cartridge_channels_by_name_and_unused_files_never_read(tmp_path, rng):
    panel = load_panel({"channels": ["CD45", "VIM", "DAPI", "CK"], "pixel_size_um": 0.64})
    frame = rng.integers(0, 4000, (4, 30, 40), dtype=np.uint16)
    write_cartridge_info(tmp_path, panel, "s1", 1, 1, 1, frame.shape[1:])
    write_frame(tmp_path, 0, 0, frame, panel, layout="channels")
    (tmp_path / "r00c00_c1.tif").write_bytes(b"not a tiff")  # VIM: the model does not use it
    cart = open_cartridge(tmp_path).conform(load_panel({"channels": CORE3}))
    assert cart.panel.names == CORE3
    assert np.array_equal(cart.read(cart.frames[0]), frame[[2, 3, 0]].astype(np.float32))


# --- the registry ---------------------------------------------------------------------------------

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


def test_registry_lists_shipped_and_site_models(with_tiny3):
    models = registry.list_models()
    assert [m.name for m in models] == ["ctcnet-default", "tiny3"]
    tiny = registry.get_model("tiny3")
    assert tiny.channels == CORE3 and tiny.crop_size == TINY_CROP
    assert tiny.size_bytes == (with_tiny3 / "tiny3.pt").stat().st_size
    assert tiny.figures() == {"test_rgb_jpeg": 0.25, "robustness_min": 0.2}
    assert registry.resolve_model("tiny3") == with_tiny3 / "tiny3.pt"
    assert registry.resolve_model(None) == registry.PACKAGE_MODELS / "ctcnet-default.pt"
    assert registry.resolve_model("elsewhere/m.pt") == Path("elsewhere/m.pt")  # a path as given
    with pytest.raises(InputError, match=r"no shipped model called 'tiny5'.*tiny3"):
        registry.resolve_model("tiny5")
    with pytest.raises(InputError, match="no ONNX export"):
        tiny.file("onnx")


def test_shipped_models_are_found_without_the_override(monkeypatch):
    monkeypatch.delenv(registry.MODELS_ENV, raising=False)
    models = registry.list_models()
    assert models[0].name == "ctcnet-default"
    for info in models:  # package data, as the wheel ships it, each with both files
        assert info.folder == registry.PACKAGE_MODELS
        assert info.checkpoint is not None and info.onnx is not None, info.name
        assert info.figures(), info.name


def test_shipped_models_are_chosen_by_the_kind_of_data(monkeypatch):
    # The shipped cards as they are: export crops get the export model, a composite cartridge
    # the model with a cartridge rule, a three-marker scan core3, never the export model.
    monkeypatch.delenv(registry.MODELS_ENV, raising=False)
    composite = load_panel({"channels": RGB_ORDER, "composite": "rgb"})
    scan = load_panel({"channels": ["DAPI", "CK", "CD45"]})
    export = registry.get_model("ctcnet-core3-export")
    assert export.reads_exports and not export.has_cartridge_rule
    assert "test_tight_exports" in export.figures()
    assert registry.choose_model([composite]).name == "ctcnet-core3-export"
    assert registry.choose_model([composite], cartridges=True).name == "ctcnet-core3"
    assert registry.choose_model([scan]).name == "ctcnet-core3"
    assert registry.choose_model([scan], cartridges=True).name == "ctcnet-core3"


def test_registry_chooses_the_model_whose_channels_the_data_has(with_tiny3):
    five = load_panel(None)
    rgb = load_panel({"channels": RGB_ORDER})
    assert registry.choose_model([five]).name == "ctcnet-default"  # uses all five channels
    assert registry.choose_model([rgb]).name == "tiny3"
    with pytest.raises(PanelMismatchError) as err:
        registry.choose_model([load_panel({"channels": ["DAPI", "CK", "VIM"]})])
    message = str(err.value)
    assert "tiny3 needs ['DAPI', 'CK', 'CD45'] (missing ['CD45'])" in message
    assert "ctcnet-default needs" in message and "README" in message


def test_an_export_model_is_chosen_for_composites_and_never_for_scans(with_tiny3, tmp_path,
                                                                     monkeypatch, capsys):
    # A model whose card says it reads exports only (configs/core3-export.yaml) beside tiny3,
    # which has the same channels and reads scans.
    exports = tmp_path / "exports"
    exports.mkdir()
    path = make_tiny_model(exports / "tiny3-export.pt")
    card = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({
        **card, "reads": "exports",
        "test_default_randomisation": {"macro_f1": 0.5, "export": "tight single-cell, JPEG"}}))
    monkeypatch.setenv(registry.MODELS_ENV, f"{with_tiny3}{os.pathsep}{exports}")
    assert registry.get_model("tiny3-export").reads_exports
    # Its held-out test was made on exports, and the figure is named so.
    assert registry.get_model("tiny3-export").figures()["test_tight_exports"] == 0.5
    assert not registry.get_model("tiny3").reads_exports
    composite = load_panel({"channels": RGB_ORDER, "composite": "rgb"})
    scan = load_panel({"channels": RGB_ORDER})
    assert registry.choose_model([composite]).name == "tiny3-export"
    assert registry.choose_model([scan]).name == "tiny3"          # a 16-bit three-channel scan
    assert registry.choose_model([composite, scan]).name == "tiny3"  # not every input an export
    # A cartridge is judged by its frames: 8-bit colour frames are an export whatever
    # panel.json says, 16-bit frames are a scan even where it says "composite".
    from ctcnet.inference.inputs import input_panels, resolve_inputs
    from ctcnet.simulate import simulate_cartridge

    def panels(cartridge):
        return input_panels(*resolve_inputs([cartridge]))

    scan_cart = tmp_path / "scan_cart"
    simulate_cartridge(scan_cart, load_panel({"channels": RGB_ORDER, "pixel_size_um": 0.64}),
                       num_frames=1, frame_shape=(64, 64), seed=2, events_per_frame=2)
    panel_json = json.loads((scan_cart / "panel.json").read_text())
    (scan_cart / "panel.json").write_text(json.dumps({**panel_json, "composite": "rgb"}))
    rgb_cart = tmp_path / "rgb_cart"
    rgb_cart.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8),
                    "RGB").save(rgb_cart / "r00c00.png")
    (rgb_cart / "panel.json").write_text(json.dumps({"channels": RGB_ORDER,
                                                     "pixel_size_um": 0.3}))
    assert registry.choose_model(panels(scan_cart)).name == "tiny3"
    assert registry.choose_model(panels(rgb_cart)).name == "tiny3-export"
    # Whole cartridges want a rule fitted at cartridge prevalence: the export model has none,
    # so a scan model with one that reads composites too comes first; with neither having
    # one, the export model stays first.
    assert registry.choose_model(panels(rgb_cart), cartridges=True).name == \
        "tiny3-export"
    card3 = json.loads((with_tiny3 / "tiny3.json").read_text())
    (with_tiny3 / "tiny3.json").write_text(json.dumps(
        {**card3, "decision": {"rule": "prior_shift", "log_weights": {"ctc": -4.0}}}))
    assert registry.get_model("tiny3").has_cartridge_rule
    assert not registry.get_model("tiny3-export").has_cartridge_rule
    assert registry.choose_model(panels(rgb_cart), cartridges=True).name == "tiny3"
    assert registry.choose_model(panels(rgb_cart)).name == "tiny3-export"
    (with_tiny3 / "tiny3.json").write_text(json.dumps(card3))
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert listed.count("reads 8-bit composite exports only") == 1
    assert listed.index("reads 8-bit") > listed.index("tiny3-export")
    (exports / "tiny3-export.json").rename(exports / "only.json")
    (exports / "tiny3-export.pt").rename(exports / "only.pt")
    monkeypatch.setenv(registry.MODELS_ENV, str(exports))
    monkeypatch.setattr(registry, "PACKAGE_MODELS", tmp_path / "none")
    with pytest.raises(PanelMismatchError, match="read composite exports only"):
        registry.choose_model([scan])


def test_models_command(with_tiny3, capsys):
    assert main(["models", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in rows] == ["ctcnet-default", "tiny3"]
    assert rows[0]["channels"] == ["DAPI", "CK", "CD45", "CD61", "CD66b"]
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "tiny3" in out and "DAPI, CK, CD45 at 0.64 um/px" in out and "MB on disk" in out
    assert main(["predict", "x", "--out", "y", "--model", "tiny5"]) == 2


# --- predict and evaluate on composites and three-channel cartridges, no conversion ---------------

def test_predict_and_evaluate_on_jpeg_crops_of_any_size(with_tiny3, tmp_path, rng, capsys):
    sizes = [(30, 30), (52, 41), (64, 90), (17, 25)]
    _rgb_dataset(tmp_path / "jpg", rng, "JPEG", sizes, labels=("ctc", "wbc", "debris", "ctc"),
                 pixel_size_um=0.3)
    assert main(["predict", str(tmp_path / "jpg"), "--out", str(tmp_path / "p"),
                 "--device", "cpu"]) == 0
    assert "model: tiny3" in capsys.readouterr().err
    summary = json.loads((tmp_path / "p" / "jpg" / "summary.json").read_text())
    assert summary["crops"] == 4 and summary["model"].endswith("tiny3.pt")
    assert main(["evaluate", str(tmp_path / "jpg"), "--out", str(tmp_path / "e"),
                 "--no-baselines", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert report["n"] == 4 and report["model"].endswith("tiny3.pt")


def test_predict_on_a_three_channel_16bit_cartridge(with_tiny3, tmp_path, capsys):
    from ctcnet.simulate import simulate_cartridge

    panel = load_panel({"channels": ["CD45", "DAPI", "CK"], "pixel_size_um": 0.64})
    simulate_cartridge(tmp_path / "cart", panel, num_frames=1, frame_shape=(160, 200), seed=2,
                       events_per_frame=8)
    assert main(["predict", str(tmp_path / "cart"), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--no-report"]) == 0
    assert "model: tiny3" in capsys.readouterr().err
    sample = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    summary = json.loads((sample / "summary.json").read_text())
    assert summary["model"]["path"].endswith("tiny3.pt") and summary["events"] > 0
    # The default five-channel model cannot read it: refused by name, exit 2, nothing written.
    assert main(["predict", str(tmp_path / "cart"), "--out", str(tmp_path / "out5"),
                 "--model", "ctcnet-default", "--quiet"]) == 2
    assert "lacks ['CD61', 'CD66b']" in capsys.readouterr().err


# --- the simulator's rgb-jpeg export --------------------------------------------------------------

def test_rgb_jpeg_export_is_a_readable_crop_dataset(tmp_path):
    from PIL import JpegImagePlugin

    from ctcnet.simulate import simulate_crops
    from ctcnet.simulate.export import encode_jpeg, write_rgb_jpeg_dataset

    batch = simulate_crops(2, load_panel(None), None, TINY_CROP, seed=11)
    write_rgb_jpeg_dataset(batch, tmp_path / "x", planes=RGB_ORDER, quality=(70, 80),
                           pixel_size_um=0.32, seed=3)
    index = read_crop_index(tmp_path / "x")
    assert index.panel.composite == "rgb" and index.panel.names == RGB_ORDER
    assert index.panel.pixel_size_um == 0.32 and len(index) == len(batch)
    arr = index.read(0)
    assert arr.dtype == np.uint8 and arr.shape == (3, 2 * TINY_CROP, 2 * TINY_CROP)
    info = json.loads((tmp_path / "x" / "dataset.json").read_text())
    assert all(70 <= q <= 80 for q in info["qualities"])
    # Highlights clip (display maximum below the bright end) and chroma subsampling is real.
    assert max(int(index.read(i).max()) for i in range(len(index))) == 255
    rgb = np.ascontiguousarray(arr.transpose(1, 2, 0))
    for code in (0, 2):
        (tmp_path / "s.jpg").write_bytes(encode_jpeg(rgb, 80, code))
        with Image.open(tmp_path / "s.jpg") as im:
            assert JpegImagePlugin.get_sampling(im) == code
    assert main(["simulate", "crops", str(tmp_path / "cli"), "--counts", "1", "--crop-size",
                 "32", "--export", "rgb-jpeg", "--jpeg-quality", "high"]) == 2


# --- installs -----------------------------------------------------------------------------------

def test_base_install_commands_without_torch():
    """With torch & co. absent (as in the base install), `ctcnet models` works and a command
    that needs them says what to install, in one line, exit 2."""
    code = ("import sys\n"
            "for m in ('torch', 'lightning', 'torchvision', 'pandas', 'scipy'):\n"
            "    sys.modules[m] = None\n"
            "from ctcnet.cli import main\n"
            "assert main(['models']) == 0\n"
            "assert main(['predict', 'scans', '--out', 'out']) == 2\n"
            "sys.exit(main(['export', 'm.pt', '--out', 'm.onnx']))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    assert "ctcnet-default" in out.stdout
    # predict runs on the torch-free predict extra; export needs everything.
    assert out.stderr.strip().splitlines() == [
        "ctcnet predict: needs pandas, which this install lacks: pip install 'ctcnet[predict]' "
        "(torch-free; 'ctcnet[all]' for every subcommand)",
        "ctcnet export: needs torch, which this install lacks (the base and predict installs "
        "run ONNX models only): pip install 'ctcnet[all]'"]


def test_base_dependencies_leave_torch_out():
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml")
                            .read_text())["project"]
    base = {d.split(">")[0].split("=")[0].split("[")[0] for d in project["dependencies"]}
    assert {"numpy", "onnxruntime", "tifffile", "pillow"} <= base
    assert not base & {"torch", "torchvision", "lightning", "scipy", "pandas"}
    assert "ctcnet[all]" in project["optional-dependencies"]["test"]  # ./run test gets it all
    extras = project["optional-dependencies"]
    assert "ctcnet[predict]" in extras["all"]  # all is predict and more
    assert not {d.split(">")[0] for d in extras["predict"]} & {"torch", "torchvision",
                                                                 "lightning"}
    torch_req = next(d for d in project["optional-dependencies"]["all"] if d.startswith("torch"))
    assert torch_req.startswith("torch>=") and "==" not in torch_req


# --- training for another panel -------------------------------------------------------------------

def test_a_five_channel_model_starts_a_three_marker_one(tmp_path):
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
    with pytest.raises(PanelMismatchError, match=r"lacks \['VIM'\]"):
        CTCLitModule(panel={"channels": ["DAPI", "CK", "VIM"], "pixel_size_um": 0.64},
                     crop_size=TINY_CROP, arch_kwargs={"width": 8}, init_from=str(five))


def test_rgb_jpeg_augmentation(rng):
    from ctcnet.simulate.augment import build_train_augment

    crop = rng.poisson(200, (3, TINY_CROP, TINY_CROP)).astype(np.float32)
    crop[:, 10:20, 12:22] += np.array([3000, 50, 800], np.float32)[:, None, None]
    out = build_train_augment({"jpeg_p": 1.0, "jpeg_headroom": [1.0, 1.0]}, seed=0)(crop)
    assert out.shape == crop.shape and out.dtype == np.float32
    assert out.max() <= 255 and np.array_equal(out, np.rint(out))  # 8-bit, as exported
    assert out[0, 12:18, 14:20].mean() > out[0, :5, :5].mean() + 50  # the cell survives


def test_rgb_jpeg_augmentation_at_an_export_zoom(rng):
    """Exported at 2-3x the crop's magnification and brought back: same size, 0..255, the
    cell where it was and as bright, and not the export at model scale."""
    from ctcnet.simulate.export import as_rgb_jpeg

    crop = rng.poisson(200, (3, TINY_CROP, TINY_CROP)).astype(np.float32)
    crop[:, 10:20, 12:22] += np.array([3000, 50, 800], np.float32)[:, None, None]
    zoomed = as_rgb_jpeg(crop, np.random.default_rng(1), (70, 70), zoom=(2.0, 3.0),
                         headroom=(1.0, 1.0))
    flat = as_rgb_jpeg(crop, np.random.default_rng(1), (70, 70), headroom=(1.0, 1.0))
    assert zoomed.shape == crop.shape and zoomed.dtype == np.float32
    assert 0 <= zoomed.min() and zoomed.max() <= 255
    assert zoomed[0, 12:18, 14:20].mean() > zoomed[0, :5, :5].mean() + 50
    inside = (slice(None), slice(12, 18), slice(14, 20))
    assert np.allclose(zoomed[inside].mean(axis=(1, 2)), flat[inside].mean(axis=(1, 2)), atol=6)
    assert not np.array_equal(zoomed, flat)


def test_export_headroom_dims_a_crop_as_a_whole_sample_export_would(rng):
    """A crop exported alone with headroom h looks as it would in a sample whose bright end is
    h times its own: every grey level divided by h (before rounding), none clipped."""
    from ctcnet.simulate.export import EXPORT_HEADROOM, as_rgb_jpeg, display_8bit_per_sample

    crop = rng.poisson(200, (1, 3, TINY_CROP, TINY_CROP)).astype(np.float32)
    crop[:, :, 10:20, 12:22] += np.array([3000, 50, 800], np.float32)[:, None, None]
    stretched = display_8bit_per_sample(crop, ["a"], np.random.default_rng(2)).astype(float)
    dimmed = display_8bit_per_sample(crop, ["a"], np.random.default_rng(2),
                                     headroom=(10.0, 10.0))
    kept = stretched < 255
    assert np.abs(dimmed[kept] - stretched[kept] / 10).max() <= 0.5 + 1e-6
    assert dimmed.max() <= 255 / 10 / 0.35 + 1  # the display maximum is at most 1/0.35 of it
    # The augmentation's default draws headroom: some crops stay far below 255.
    peaks = [as_rgb_jpeg(crop[0], np.random.default_rng(s))[0].max() for s in range(20)]
    assert EXPORT_HEADROOM[1] > 10 and min(peaks) < 60 < max(peaks)


def test_rgb_crops_are_resampled_to_the_model_pixel_size(tmp_path):
    """A zoomed export (0.1 um/px, one 8 um nucleus 80 px across) reaches a 0.64 um/px model
    as the same 8 um: ~12.5 px across, whatever the file's size."""
    from ctcnet.detect.crop_dataset import load_crops

    yy, xx = np.mgrid[0:300, 0:260]
    disk = ((yy - 150) ** 2 + (xx - 130) ** 2 <= 40 ** 2).astype(np.float64)
    planes = np.stack([np.full(disk.shape, 10.0), np.full(disk.shape, 12.0), 20 + 200 * disk])
    _save_rgb(tmp_path / "ds" / "ctc" / "a.png", planes.astype(np.uint8), "PNG")
    (tmp_path / "ds" / "panel.json").write_text(json.dumps({"channels": RGB_ORDER,
                                                            "pixel_size_um": 0.1}))
    index = read_crop_index(tmp_path / "ds").conform(load_panel({"channels": CORE3}))
    crop = load_crops(index, TINY_CROP, 0.64)[0]
    assert crop.shape == (3, TINY_CROP, TINY_CROP)
    dapi = crop[0]  # DAPI came from the blue plane
    area = float(((dapi - 20) / 200).sum())  # the disk's area in model pixels
    assert abs(area - np.pi * (4.0 / 0.64) ** 2) < 0.1 * np.pi * (4.0 / 0.64) ** 2
    assert abs(np.argmax(dapi.max(axis=1)) - TINY_CROP / 2) <= 2  # still centred


def test_tight_exports_are_cut_round_the_cell_black_and_read_back_as_crops(tmp_path):
    """The tight single-cell export family: the cell fills half or more of each image, the
    background is clipped to black, and the files are an ordinary crop dataset."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import write_tight_export_dataset

    panel = Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                             "channels": ["DAPI", "CK", "CD45"]})
    batch = simulate_crops({"ctc": 4, "wbc": 4}, panel, crop_size=80, seed=3)
    root = write_tight_export_dataset(batch, tmp_path / "tight", panel, pixel_size_um=0.1,
                                      state_pixel_size=False)
    assert "pixel_size_um" not in json.loads((root / "panel.json").read_text())
    with pytest.raises(InputError, match="--pixel-size auto"):
        read_crop_index(root)                      # a pixel size is never guessed unasked
    index = read_crop_index(root, pixel_size=0.1)
    assert len(index) == 8 and index.panel.composite == "rgb"
    assert index.panel.pixel_size_um == 0.1
    for i in range(len(index)):
        rgb = index.read(i)
        assert rgb.dtype == np.uint8 and min(rgb.shape[1:]) > 80   # finer than the scan
        lit = (rgb > 20).any(axis=0)
        assert lit.mean() > 0.2                                    # the cell fills the image
        corners = rgb[:, [0, 0, -1, -1], [0, -1, 0, -1]]
        assert np.median(corners) == 0                             # a black background


def test_simulate_crops_writes_tight_exports_of_cells_rendered_at_fine_pixels(tmp_path):
    """`ctcnet simulate crops --export tight` renders the cells at a fine pixel size (the field
    of view kept) and writes them as tight exports at the export's pixel size, stated: a
    labelled set of the kind the model card tests an export model on, to train or fine-tune
    one on."""
    from ctcnet.detect.crop_dataset import read_crop_index

    panel = tmp_path / "core3.json"
    panel.write_text(json.dumps({"name": "core3", "pixel_size_um": 0.64,
                                 "channels": ["DAPI", "CK", "CD45"]}))
    out = tmp_path / "tight"
    assert main(["simulate", "crops", str(out), "--counts", "ctc=3,wbc=3", "--panel",
                 str(panel), "--crop-size", "40", "--export", "tight", "--render-pixel-size",
                 "0.32", "--export-pixel-size", "0.16", "--image-format", "jpg"]) == 0
    info = json.loads((out / "dataset.json").read_text())
    assert info["pixel_size_stated"] and info["file_format"] == "jpg"
    assert info["simulated_pixel_size_um"] == 0.32 and info["pixel_size_um"] == 0.16
    index = read_crop_index(out)
    assert index.panel.pixel_size_um == 0.16 and index.panel.composite == "rgb"
    assert sorted(index.labels) == ["ctc"] * 3 + ["wbc"] * 3
    for i in range(len(index)):
        rgb = index.read(i)
        # The background is black, or a haze no viewer sees: a faint channel stretched to its
        # own peak lifts the background's noise by a few grey levels.
        assert rgb.dtype == np.uint8 and np.median(rgb[:, [0, 0, -1, -1], [0, -1, 0, -1]]) <= 10
        # A cell of ~8-20 um at 0.16 um/px: far more pixels than the 40 px scan crop.
        assert min(rgb.shape[1:]) > 40
    assert main(["simulate", "crops", str(tmp_path / "bad"), "--export", "tight",
                 "--render-pixel-size", "0"]) == 2


def test_tight_training_set_joins_a_jpeg_and_a_png_half(tmp_path):
    """scripts/tight_training_set.py (the export model fine-tunes' data): two
    `simulate crops --export tight` halves in one crop dataset, each sample its own."""
    from test_training import load_script

    script = load_script(Path(__file__).resolve().parents[1] / "scripts" /
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


def test_apparent_size_measures_what_a_view_shows(capsys):
    """experiments/apparent_size.py: a view's apparent size is the side of its area at or over 10 %
    of white, per class and defining marker; the script runs end to end on a config."""
    from test_training import load_script

    root = Path(__file__).resolve().parents[1]
    script = load_script(root / "experiments" / "apparent_size.py")
    yy, xx = np.mgrid[:40, :40]
    disc = lambda r: np.where((yy - 20) ** 2 + (xx - 20) ** 2 <= r * r, 200.0, 10.0)  # noqa: E731
    views = np.zeros((2, 3, 40, 40))
    views[0, 0], views[0, 1] = disc(4), disc(8)       # a CTC: nucleus, CK
    views[1, 0], views[1, 2] = disc(5), disc(10)      # a leukocyte: nucleus, CD45
    sizes = script.apparent_sizes(views, ["ctc", "wbc"], ["nucleus", "epithelial", "leukocyte"])
    assert sizes["ctc/nucleus"] == pytest.approx(4 * np.sqrt(np.pi), rel=0.1)
    assert sizes["ctc/epithelial"] == pytest.approx(8 * np.sqrt(np.pi), rel=0.1)
    assert sizes["wbc/leukocyte"] == pytest.approx(10 * np.sqrt(np.pi), rel=0.1)
    assert script.main(["--per-class", "2", "--config", str(root / "configs" /
                                                             "core3-export.yaml")]) == 0
    out = capsys.readouterr().out
    assert "tight family, pixel size given" in out and "all of these off" in out


def test_the_pixel_size_of_a_crop_set_is_estimated_from_its_nuclei(tmp_path):
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.detect.pixel_size import estimate_pixel_size
    from ctcnet.io.panel import Panel
    from ctcnet.simulate.crops import simulate_crops
    from ctcnet.simulate.export import write_tight_export_dataset

    panel = Panel.from_dict({"name": "core3", "pixel_size_um": 0.64,
                             "channels": ["DAPI", "CK", "CD45"]})
    batch = simulate_crops({"ctc": 10, "wbc": 10, "debris": 5}, panel, crop_size=80, seed=5)
    for true_um in (0.08, 0.2):
        root = write_tight_export_dataset(batch, tmp_path / f"t{true_um}", panel,
                                          pixel_size_um=true_um)
        index = read_crop_index(root)
        crops = [index.read(i) for i in range(len(index))]
        estimate = estimate_pixel_size(crops, index.panel.names.index("DAPI"))
        assert 0.6 < estimate / true_um < 1.6    # well inside the models' 0.5-2x range
        auto = read_crop_index(root, pixel_size="auto").panel.pixel_size_um
        assert auto == pytest.approx(estimate)
    with pytest.raises(InputError, match="cannot estimate the pixel size"):
        estimate_pixel_size([np.zeros((3, 50, 50), np.uint8)] * 10, 2)
