"""ctcnet.inference.inputs: RGB composite crops and three-channel cartridges matched to a model
by channel name, resampled to its pixel size, and predicted and evaluated on."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import rgb_planes, save_rgb

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import read_crop_index
from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.io.panel import load_panel, save_panel
from ctcnet.io.scan import open_cartridge, write_cartridge_info, write_frame

CORE3 = ["DAPI", "CK", "CD45"]
RGB_ORDER = ["CK", "CD45", "DAPI"]  # R, G, B as published composites show them
TINY_CROP = 32


def _rgb_dataset(root: Path, rng, fmt="PNG", sizes=((40, 52),), planes_order=RGB_ORDER,
                 pixel_size_um=0.64, labels=("ctc",)) -> list[np.ndarray]:
    suffix = {"PNG": "png", "JPEG": "jpg", "TIFF": "tif"}[fmt]
    written = []
    for i, (label, (h, w)) in enumerate(zip(labels, sizes)):
        planes = rgb_planes(rng, h, w)
        save_rgb(root / label / f"P{i % 2}__{i:03d}.{suffix}", planes, fmt)
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
        assert model.channel_indices(data) == [2, 3, 4, 1]  # a run opens its inputs twice
    assert caplog.text.count("dropping channel(s) ['VIM']") == 1  # said once
    # ... and what it costs: the CTCs only vimentin shows are not counted.
    assert "CTCs that only VIM shows (CK-negative: EMT) are not counted" in caplog.text
    # Said as the inputs were checked, it is kept in the record of the work that reads them
    # (a crop set's summary.json lacked it), not said twice.
    from ctcnet.core.log_capture import kept_warnings

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ctcnet.io.panel"), kept_warnings() as said:
        model.channel_indices(data, what="crop dataset x")
        model.channel_indices(data, what="crop dataset x")
    assert caplog.text.count("dropping channel(s)") == 1
    assert len(said) == 1 and "dropping channel(s) ['VIM']" in said[0]
    with kept_warnings() as said:
        model.channel_indices(data, what="crop dataset x")
    assert len(said) == 1 and "CTCs that only VIM shows" in said[0]


def test_composite_panel_refuses_a_16bit_file(tmp_path, rng):
    root = tmp_path / "ds"
    (root / "ctc").mkdir(parents=True)
    tifffile.imwrite(root / "ctc" / "a.tif", rng.integers(0, 4000, (3, 20, 20), dtype=np.uint16),
                     photometric="minisblack")
    (root / "panel.json").write_text(json.dumps({"channels": RGB_ORDER, "composite": "rgb",
                                                     "pixel_size_um": 0.1}))
    with pytest.raises(InputError, match="the folder's crops are RGB composites"):
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


def test_rgb_crops_are_resampled_to_the_model_pixel_size(tmp_path):
    """A zoomed export (0.1 um/px, one 8 um nucleus 80 px across) reaches a 0.64 um/px model
    as the same 8 um: ~12.5 px across, whatever the file's size."""
    from ctcnet.detect.crop_dataset import load_crops

    yy, xx = np.mgrid[0:300, 0:260]
    disk = ((yy - 150) ** 2 + (xx - 130) ** 2 <= 40 ** 2).astype(np.float64)
    planes = np.stack([np.full(disk.shape, 10.0), np.full(disk.shape, 12.0), 20 + 200 * disk])
    save_rgb(tmp_path / "ds" / "ctc" / "a.png", planes.astype(np.uint8), "PNG")
    (tmp_path / "ds" / "panel.json").write_text(json.dumps({"channels": RGB_ORDER,
                                                            "pixel_size_um": 0.1}))
    index = read_crop_index(tmp_path / "ds").conform(load_panel({"channels": CORE3}))
    crop = load_crops(index, TINY_CROP, 0.64)[0]
    assert crop.shape == (3, TINY_CROP, TINY_CROP)
    dapi = crop[0]  # DAPI came from the blue plane
    area = float(((dapi - 20) / 200).sum())  # the disk's area in model pixels
    assert abs(area - np.pi * (4.0 / 0.64) ** 2) < 0.1 * np.pi * (4.0 / 0.64) ** 2
    # Still centred: the disk's centre of mass (its rows all reach the same peak, so the first
    # maximum would be its top edge, or any row, by float rounding).
    rows = (dapi - 20).sum(axis=1)
    assert abs(float((np.arange(TINY_CROP) * rows).sum() / rows.sum()) - TINY_CROP / 2) <= 1


def test_a_folder_of_images_without_panel_json_is_told_what_it_lacks(tmp_path, rng):
    """Published crops come without panel.json: the refusal says so, with the RGB example,
    whether the images lie in the folder or in class folders; a folder of no images is not
    an input at all."""
    from ctcnet.inference.inputs import resolve_inputs

    _rgb_dataset(tmp_path / "flat", rng, labels=("",))
    _rgb_dataset(tmp_path / "classes", rng)
    for folder in ("flat", "classes"):
        (tmp_path / folder / "panel.json").unlink()
        with pytest.raises(InputError, match="no panel.json.*composite"):
            resolve_inputs([tmp_path / folder])
    # A class folder's sample folders (ctc/P017/cell.tif, a layout data-formats.md gives).
    patients = tmp_path / "patients" / "ctc" / "P017"
    patients.mkdir(parents=True)
    for crop in (tmp_path / "classes").rglob("*.png"):
        crop.rename(patients / crop.name)
        break
    with pytest.raises(InputError, match="no panel.json.*composite"):
        resolve_inputs([tmp_path / "patients"])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(InputError, match="neither a cartridge"):
        resolve_inputs([tmp_path / "nothing"])


def test_a_folder_of_cartridges_names_its_subfolders_that_are_none(tmp_path, caplog):
    """A scan still being copied (an empty folder) or a folder of notes beside the cartridges
    is named once, by the run's own listing, not passed over without a word."""
    from ctcnet.inference.inputs import resolve_inputs

    scans = tmp_path / "scans"
    (scans / "c1").mkdir(parents=True)
    (scans / "c1" / "cartridge.json").write_text("{}")
    (scans / "arriving").mkdir()
    (scans / "notes").mkdir()
    (scans / "notes" / "run.txt").write_text("x")
    (scans / ".cache").mkdir()
    (scans / "results").mkdir()  # the night's --out, kept among its scans: no scan missing
    (scans / "results" / "run.json").write_text("{}")
    (scans / "again").symlink_to(scans)  # a link to the folder itself: said, never "pass it"
    with caplog.at_level("WARNING"):
        assert resolve_inputs([scans]) == ([scans / "c1"], [])
    assert not caplog.records
    with caplog.at_level("WARNING"):
        assert resolve_inputs([scans], say_skipped=True) == ([scans / "c1"], [])
    said = [r.getMessage() for r in caplog.records]
    assert said == [f"{scans / 'again'}: a link to this folder or one above it, not read",
                    f"{scans / 'arriving'}: not a cartridge (empty), not read",
                    f"{scans / 'notes'}: not a cartridge (no frames nor cartridge.json), "
                    "not read"], said
    # Its panel.json copied, its frames not yet: taken as a cartridge, to be set aside with
    # its reason in run.json and samples.csv (the log alone named it, the night's record lost
    # it); a crop set's panel.json beside its class folders is no such.
    (scans / "copying").mkdir()
    (scans / "copying" / "panel.json").write_text("{}")
    (scans / "crops" / "ctc").mkdir(parents=True)
    (scans / "crops" / "panel.json").write_text("{}")
    assert resolve_inputs([scans])[0] == [scans / "c1", scans / "copying"]


def test_a_sites_folder_with_one_panel_json_beside_its_cartridges_is_a_folder_of_them(
        tmp_path, caplog):
    """A site's folder holding one panel.json for all its scans and the cartridges below (each
    with its cartridge.json) is a folder of cartridges, said, not a crop folder whose frames
    would be classified as crops; a crop folder's class folders stay crops."""
    from ctcnet.inference.inputs import resolve_inputs

    site = tmp_path / "siteB"
    for name in ("B_P01", "B_P02"):
        (site / name).mkdir(parents=True)
        (site / name / "cartridge.json").write_text("{}")
    (site / "panel.json").write_text("{}")
    with caplog.at_level("WARNING"):
        assert resolve_inputs([site], say_skipped=True) == ([site / "B_P01", site / "B_P02"],
                                                            [])
    assert "read as a folder of cartridges, each with the panel.json in its own folder" in \
        caplog.text
    # A folder of sites' folders: told to pass the sites' folders, not that it lacks a panel.
    with pytest.raises(InputError, match=r"holds folders of cartridges \(siteB\), not "
                                         r"cartridges: pass those folders"):
        resolve_inputs([tmp_path])
    crops = tmp_path / "crops"
    (crops / "ctc").mkdir(parents=True)
    (crops / "panel.json").write_text("{}")
    (crops / "ctc" / "cell_01.ome.tif").write_bytes(b"II*\x00")  # a crop exported as OME-TIFF
    (crops / "wbc").mkdir()
    (crops / "wbc" / "frame_0000.tif").write_bytes(b"II*\x00")  # an image sequence's names
    assert resolve_inputs([crops]) == ([], [crops])
    # A class folder named in a lab's word or misspelt is a class folder still (the whole
    # folder, ctc/ too, was read as scans, each crop a frame, with rates per 7.5 mL): read as
    # crops, where the label is said.
    for odd in ("Leukocytes", "leukocyte", "WBC"):
        (crops / "wbc").rename(crops / odd)
        assert resolve_inputs([crops]) == ([], [crops]), odd
        (crops / odd).rename(crops / "wbc")
    # A class folder of its own word beside them: said as such, not as a panel.json missing.
    (crops / "tumour").mkdir()
    (crops / "tumour" / "cell_02.ome.tif").write_bytes(b"II*\x00")
    with pytest.raises(InputError, match=r"class folders are named by its classes \(ctc, wbc, "
                                         r"cluster, debris\), and tumour is none"):
        resolve_inputs([crops])
    shutil.rmtree(crops / "tumour")
    # Without the panel.json: no crop folder, and no folder of scans either.
    (crops / "panel.json").unlink()
    with pytest.raises(InputError, match="its folders ctc, wbc are named as classes, and no "
                                         "scan's metadata is in them: a crop folder needs a "
                                         "panel.json"):
        resolve_inputs([crops])
    # Scans named like classes but for a number (a spike-in series, a patient's draws) are
    # scans, with a panel.json beside them or with none (OME-TIFFs describe themselves).
    for name, panel in (("spikes", True), ("omes", False)):
        for scan in ("CTC1", "CTC2", "WBC01"):
            (tmp_path / name / scan).mkdir(parents=True)
            (tmp_path / name / scan / "scan.ome.tif").write_bytes(b"II*\x00")
        if panel:
            (tmp_path / name / "panel.json").write_text("{}")
        assert resolve_inputs([tmp_path / name])[0] == [
            tmp_path / name / s for s in ("CTC1", "CTC2", "WBC01")], name
    # Cartridges without a cartridge.json (it is optional): told by their frames' names.
    bare = tmp_path / "siteC"
    for name in ("C_P01", "C_P02"):
        (bare / name).mkdir(parents=True)
        (bare / name / "r00c00.tif").write_bytes(b"II*\x00")
    (bare / "panel.json").write_text("{}")
    assert resolve_inputs([bare]) == ([bare / "C_P01", bare / "C_P02"], [])
    with pytest.raises(InputError, match="no panel.json in the cartridge folder: it names the "
                                         r"channel order \(the one in .*siteC is not read: "
                                         "each cartridge reads its own; copy it"):
        open_cartridge(bare / "C_P01")  # said where the site's one is, not only that it lacks
    # ... or by a whole scan in one container file (an OME-TIFF), its channels named there.
    ome = tmp_path / "siteD"
    (ome / "D_P01").mkdir(parents=True)
    (ome / "D_P01" / "scan.ome.tif").write_bytes(b"II*\x00")
    (ome / "panel.json").write_text("{}")
    assert resolve_inputs([ome]) == ([ome / "D_P01"], [])
    # A folder of cartridges holding a site's folder too: the site's folder is named as such.
    (tmp_path / "mixd" / "C_P09").mkdir(parents=True)
    (tmp_path / "mixd" / "C_P09" / "cartridge.json").write_text("{}")
    shutil.copytree(site, tmp_path / "mixd" / "siteB")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert resolve_inputs([tmp_path / "mixd"], say_skipped=True)[0] == [
            tmp_path / "mixd" / "C_P09"]
    assert "siteB: not a cartridge (a folder of cartridges: pass it too" in caplog.text


def test_unlabelled_crops_in_the_folder_itself_are_predicted(with_tiny3, tmp_path, rng):
    """Crops nobody labelled, straight in the folder beside panel.json, are classified (label
    ``unlabelled``) beside any class folders."""
    _rgb_dataset(tmp_path / "flat", rng, sizes=((40, 52), (36, 30), (44, 44)),
                 labels=("", "", "ctc"))
    index = read_crop_index(tmp_path / "flat")
    assert sorted(index.labels) == ["ctc", "unlabelled", "unlabelled"]
    assert main(["predict", str(tmp_path / "flat"), "--out", str(tmp_path / "p"),
                 "--device", "cpu", "--quiet"]) == 0
    summary = json.loads((tmp_path / "p" / "flat" / "summary.json").read_text())
    assert summary["crops"] == 3


def test_inputs_that_would_write_one_output_folder_are_set_aside_and_the_others_run(
        with_tiny3, tmp_path, rng, capsys):
    """Two sites' folders both named "crops" would write one out/<name>, the second replacing
    the first: both are set aside, each naming the other, and the batch's others run (the
    whole night was refused for them); so is a crop folder named as a file a run writes at
    the top of --out (logs). Alone, such a folder is refused."""
    for site in ("siteA", "siteB", "siteC"):
        _rgb_dataset(tmp_path / site / "crops", rng, sizes=((40, 52), (36, 30)),
                     labels=("ctc", "wbc"))
    shutil.move(tmp_path / "siteC" / "crops", tmp_path / "siteC" / "logs")
    _rgb_dataset(tmp_path / "good", rng, sizes=((40, 52), (36, 30)), labels=("ctc", "wbc"))
    a, b = tmp_path / "siteA" / "crops", tmp_path / "siteB" / "crops"
    args = [str(a), str(b), str(tmp_path / "siteC" / "logs"), str(tmp_path / "good"),
            "--out", str(tmp_path / "p"), "--device", "cpu", "--quiet"]
    # Declared so before the job too (it listed all four as outputs, exit 0).
    assert main(["predict", *args, "--list-outputs"]) == 2
    said = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    for site in (a, b):
        assert said[str(site)].endswith("\tset aside: its name is another input's: their "
                                        "outputs would be one folder")
    assert "\tset aside: a run writes 'logs' at the top of --out" in \
        said[str(tmp_path / "siteC" / "logs")]
    assert "set aside" not in said[str(tmp_path / "good")]
    assert not (tmp_path / "p").exists()
    assert main(["predict", *args]) == 2
    err = capsys.readouterr().err
    assert f"its name 'crops' is that of {b} too" in err
    assert "would write its output folder as 'logs'" in err
    assert not (tmp_path / "p" / "crops").exists()
    assert (tmp_path / "p" / "good" / "summary.json").is_file()
    index = json.loads((tmp_path / "p" / "run.json").read_text())
    aside = {e["name"]: e for e in index["outputs"] if "set_aside" in e}
    assert sorted(aside) == sorted([f"crops ({a})", f"crops ({b})", "logs"])
    assert aside["logs"]["input"] == str(tmp_path / "siteC" / "logs")
    assert [e["name"] for e in index["outputs"] if "set_aside" not in e] == ["good"]
    assert len(index["outputs"]) == 4  # each input once: none listed missing beside
    assert main(["predict", str(tmp_path / "siteC" / "logs"), "--out", str(tmp_path / "q"),
                 "--device", "cpu", "--quiet"]) == 2
    assert "would write its output folder as 'logs'" in capsys.readouterr().err


def test_a_crop_set_output_folder_has_one_writer(with_tiny3, tmp_path, rng):
    from ctcnet.errors import InputError
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.crop_sets import predict_crop_dataset
    from ctcnet.io.atomic import exclusive_folder
    from ctcnet.nn.registry import resolve_model

    _rgb_dataset(tmp_path / "ds", rng, sizes=((40, 52),), labels=("ctc",))
    backend = load_backend(resolve_model("tiny3"), device="cpu")
    with exclusive_folder(tmp_path / "p" / "ds", "predict"):
        with pytest.raises(InputError,
                           match=r"another ctcnet predict \(pid \d+ on .+\) is writing"):
            predict_crop_dataset(tmp_path / "ds", backend, tmp_path / "p" / "ds")
    assert predict_crop_dataset(tmp_path / "ds", backend, tmp_path / "p" / "ds").crops == 1


def test_padding_crops_fitted_to_their_cell_is_a_note_not_a_warning(tmp_path, rng, caplog):
    """Crops each fitted to their cell are smaller than the model's field of view by design:
    their padding is logged as a note; crops read at a stated pixel size that leaves them
    smaller still get the warning."""
    from ctcnet.detect.crop_dataset import load_crops

    _rgb_dataset(tmp_path / "ds", rng, sizes=((40, 52), (36, 30)), labels=("ctc", "wbc"),
                 pixel_size_um=0.1)
    for pixel_size, level in (("fit", logging.INFO), (None, logging.WARNING)):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            load_crops(read_crop_index(tmp_path / "ds", pixel_size=pixel_size), 80, 0.64)
        padded = [r for r in caplog.records if "padded with their background" in r.message]
        assert [r.levelno for r in padded] == [level]


def test_training_data_with_a_crop_outside_the_class_folders_names_it(tmp_path, rng):
    """Where labels are needed (training, evaluation against the taxonomy) a crop lying in the
    folder itself is named, with the way out, not reported as a class 'unlabelled'."""
    from ctcnet.io.taxonomy import default_taxonomy

    _rgb_dataset(tmp_path / "ds", rng, sizes=((40, 52), (36, 30)), labels=("ctc", ""))
    with pytest.raises(InputError, match=r"1 crop\(s\) lie in the folder itself.*P1__001"):
        read_crop_index(tmp_path / "ds", taxonomy=default_taxonomy())
    # Labelled so in a manifest, they lie in a class folder: said as it is.
    files = sorted(p.relative_to(tmp_path / "ds").as_posix()
                   for p in (tmp_path / "ds").rglob("*.png"))
    (tmp_path / "ds" / "manifest.csv").write_text(
        "path,label\n" + "".join(f"{f},{'unlabelled' if i else 'ctc'}\n"
                                   for i, f in enumerate(files)))
    with pytest.raises(InputError, match=r"labelled 'unlabelled' in manifest.csv"):
        read_crop_index(tmp_path / "ds", taxonomy=default_taxonomy())


def test_a_misspelt_cartridge_json_key_is_named_once(tmp_path, caplog):
    """`blood_volume` for `blood_volume_ml`: the default 7.5 mL would be used without a word.
    A lab's own keys are left alone."""
    from ctcnet.inference.inputs import checked_cartridge
    from ctcnet.io.scan import open_cartridge, write_cartridge_info

    panel = load_panel({"channels": CORE3, "pixel_size_um": 0.64})
    write_cartridge_info(tmp_path / "c", panel, "S9", 1, 1, 1, (16, 16))
    (tmp_path / "c" / "cartridge.json").write_text(json.dumps(
        {"sample_id": "S9", "blood_volume": 4.0, "patient": "P17", "scan_date": "2026-11"}))
    (tmp_path / "c" / "r00c00.tif").write_bytes(b"")
    cartridge = open_cartridge(tmp_path / "c")
    with caplog.at_level("WARNING"):
        checked_cartridge(cartridge)
        checked_cartridge(cartridge)
    # (The frame was written just now and no num_frames is stated: a scan still being
    # written would read as whole, which opening it says, once, and keeps as a problem: the
    # sample reads partial, never ok on a warning a log alone holds.)
    assert any("no num_frames stated" in p for p in cartridge.problems)
    said = [r.getMessage() for r in caplog.records if "num_frames" not in r.getMessage()]
    slip = ("cartridge.json's 'blood_volume' is not read (did you mean 'blood_volume_ml'?): "
            "its default was used in its place; correct the key and run the same command again")
    assert said == [f"S9: {slip}"], said
    assert cartridge.blood_volume_ml == 7.5
    # A key the rates rest on: the sample is partial with the slip said, not ok.
    assert slip in checked_cartridge(cartridge).problems
    # One they do not rest on (a frame's height) is warned of alone.
    (tmp_path / "c" / "cartridge.json").write_text(json.dumps(
        {"sample_id": "S9", "blood_volume_ml": 4.0, "frame_heigth": 16}))
    caplog.clear()
    with caplog.at_level("WARNING"):
        checked = checked_cartridge(open_cartridge(tmp_path / "c"))
    assert not any("frame_heigth" in p for p in checked.problems)
    assert any(r.getMessage().endswith("'frame_heigth' is not read (did you mean 'frame_height'?)")
               for r in caplog.records)


def test_cartridge_json_keys_that_look_like_personal_data_are_said_once(tmp_path, caplog):
    """patient_name, dob, hospital_number went into summary.json and the report's header
    without a word; a coded patient_id, a site or a scanner's name are no such keys."""
    from ctcnet.inference.inputs import checked_cartridge
    from ctcnet.io.cartridge_info import personal_keys_note
    from ctcnet.io.scan import open_cartridge, write_cartridge_info

    panel = load_panel({"channels": CORE3, "pixel_size_um": 0.64})
    write_cartridge_info(tmp_path / "c", panel, "S9", 1, 1, 1, (16, 16), extra={
        "patient_name": "Smith John", "dob": "1965-03-02", "hospital_number": "H123",
        "patient_id": "P017", "site": "SITE03", "scanner_name": "CS-2"})
    (tmp_path / "c" / "r00c00.tif").write_bytes(b"")
    with caplog.at_level("WARNING"):
        checked_cartridge(open_cartridge(tmp_path / "c"))
        checked_cartridge(open_cartridge(tmp_path / "c"))
    said = [r.getMessage() for r in caplog.records if "personal data" in r.getMessage()]
    assert said == ["S9: cartridge.json's patient_name, dob, hospital_number look like "
                    "personal data: copied into summary.json (cartridge_info) and the "
                    "report's header; leave them out of cartridge.json where results leave "
                    "the lab (docs/outputs.md, Identifiers in the outputs)"]
    assert personal_keys_note({"patient_id": "P017", "run_name": "night 3",
                               "scanner_name": "CS-2", "stain_lot": "L7"}) is None
    assert "PatientName looks like" in personal_keys_note({"PatientName": "x"})
    # Staff are persons too, and a key may be a bare name.
    said = personal_keys_note({"name": "x", "DateOfBirth": "y", "operator": "z",
                               "referring_doctor": "w"})
    assert said.startswith("cartridge.json's name, DateOfBirth, operator, referring_doctor look")


# --- one container file holding the whole scan -----------------------------------------------

def _one_ome_tiff(cart: Path, path: Path) -> Path:
    """The frames of ``cart`` as the scenes of one OME-TIFF (named by position, channels and
    pixel size in its metadata)."""
    opened = open_cartridge(cart)
    path.parent.mkdir(parents=True, exist_ok=True)
    px = opened.panel.pixel_size_um
    with tifffile.TiffWriter(path, ome=True) as tw:
        for frame in opened.frames:
            pixels = opened.read(frame).astype(np.uint16)
            tw.write(pixels, photometric="minisblack", metadata={
                "axes": "CYX", "Name": frame.frame_id, "Channel": {"Name": opened.panel.names},
                "PhysicalSizeX": px, "PhysicalSizeY": px, "SignificantBits": 12})
    return path


def test_one_ome_tiff_holding_the_scan_is_predicted_as_the_scan(clean_run, cart, capsys,
                                                                 caplog):
    """``ctcnet predict scan.ome.tif``: the file is the scan (it was "not a list of cartridge
    folders"), read as its folder is: the cartridge.json beside it when it is the folder's only
    scan; another scan file beside it makes that cartridge.json the folder's, not read."""
    pytest.importorskip("bioio_ome_tiff")
    from conftest import predict_args, run_cli

    from ctcnet.inference.inputs import resolve_inputs

    scan = _one_ome_tiff(cart, cart.parent / "ome" / "scan.ome.tif")
    (scan.parent / "cartridge.json").write_text((cart / "cartridge.json").read_text())
    assert resolve_inputs([scan]) == ([scan], [])
    status, err = run_cli(capsys, *predict_args(clean_run["root"], scan))
    assert status == 0, err
    summary = json.loads((scan.parent / "out" / "S1" / "summary.json").read_text())
    assert summary["input"] == str(scan.absolute()) and summary["status"] == "ok"
    assert summary["events"] == clean_run["clean"].events
    # Commands that read the frames again open the same file.
    status, err = run_cli(capsys, "crops", scan.parent / "out", "--out", scan.parent / "cut")
    assert status == 0, err
    assert list((scan.parent / "cut").rglob("*.tif"))
    # A second scan file beside it: its folder's cartridge.json is of both, not of this one.
    (scan.parent / "other.ome.tif").write_bytes(scan.read_bytes())
    with caplog.at_level("WARNING", logger="ctcnet.io"):
        alone = open_cartridge(scan)
    assert alone.sample_id == "scan" and "not read for this file alone" in caplog.text


def test_one_frame_file_alone_is_refused_in_one_line(clean_run, cart, capsys):
    from conftest import one_line_refusal, predict_args

    frame = sorted(cart.glob("r*c*.tif"))[0]
    one_line_refusal(capsys, predict_args(clean_run["root"], frame),
                     "one frame of a cartridge: pass the cartridge folder holding it")


def test_one_ome_tiff_frame_of_a_cartridge_of_them_is_refused_as_a_frame(clean_run, cart,
                                                                         capsys):
    """A cartridge of OME-TIFF frames (r00c00.ome.tif, r00c01.ome.tif): one of them given
    alone is a frame, not a scan (it was counted as the whole tube, its rate per 7.5 mL from
    half the blood); a scan file named otherwise beside another is still a scan."""
    pytest.importorskip("bioio_ome_tiff")
    from conftest import one_line_refusal, predict_args

    from ctcnet.inference.inputs import resolve_inputs

    frame = _one_ome_tiff(cart, cart.parent / "omes" / "r00c00.ome.tif")
    (frame.parent / "r00c01.ome.tif").write_bytes(frame.read_bytes())
    one_line_refusal(capsys, predict_args(clean_run["root"], frame),
                     "one frame of a cartridge: pass the cartridge folder holding it")
    assert resolve_inputs([frame.parent]) == ([frame.parent], [])
    scan = frame.rename(frame.with_name("patient_17.ome.tif"))
    assert resolve_inputs([scan]) == ([scan], [])
    # A scan named with a plate's well beside another scan: a scan of its own.
    well = scan.rename(scan.with_name("donor7_r1c2.ome.tif"))
    assert resolve_inputs([well]) == ([well], [])
    scan = well.rename(scan)
    # Alone in its folder, a file named as a frame is the scan it holds.
    (frame.parent / "r00c01.ome.tif").unlink()
    alone = scan.rename(frame)
    assert resolve_inputs([alone]) == ([alone], [])


def test_a_batch_of_panels_that_differ_says_which_inputs_another_model_would_read(
        with_tiny3, caplog):
    from ctcnet.inference.model_choice import _say_a_mixed_batch
    from ctcnet.nn import registry

    five = load_panel(None)
    three = load_panel({"channels": ["DAPI", "CK", "CD45"]})
    chosen = registry.choose_model([five, three], cartridges=True)
    assert chosen.name == "tiny3"
    with caplog.at_level(logging.WARNING, logger="ctcnet.inference.model_choice"):
        _say_a_mixed_batch([("A_P01", five), ("C_P01", three), ("A_P02", five)], chosen,
                           [(True, False)] * 3)
        _say_a_mixed_batch([("A_P01", five), ("A_P02", five)], registry.choose_model([five]),
                           [(True, False)] * 2)
    assert caplog.text.count("the inputs differ") == 1
    assert "tiny3, the model every input fits" in caplog.text
    assert "ctcnet-default for A_P01, A_P02" in caplog.text  # which inputs, by name


def test_a_folder_of_scans_thumbnails_beside_exports_is_said_to_get_another_model_alone(caplog):
    """One panel, two looks: a folder of scans' thumbnails run beside exports gets the
    exports' model, said; the warning named the model it got alone the other way round."""
    from ctcnet.inference.model_choice import _say_a_mixed_batch
    from ctcnet.nn import registry

    rgb = load_panel({"channels": ["CK", "CD45", "DAPI"], "composite": "rgb",
                      "pixel_size_um": 0.64})
    exports = registry.choose_model([rgb])
    thumbs = registry.choose_model([rgb], scan_scale=True)
    assert exports.name != thumbs.name
    with caplog.at_level(logging.WARNING, logger="ctcnet.inference.model_choice"):
        _say_a_mixed_batch([("tight", rgb), ("gallery", rgb)], exports,
                           [(False, False), (False, True)])
    assert f"{thumbs.name} for gallery" in caplog.text and "tight" not in caplog.text
    # Exports beside a cartridge: alone, the folder gets the exports' model (judged as if the
    # cartridge were with it, it got the scans' model, and no word was said).
    caplog.clear()
    five = load_panel(None)
    both = registry.choose_model([five, rgb], cartridges=True)
    with caplog.at_level(logging.WARNING, logger="ctcnet.inference.model_choice"):
        _say_a_mixed_batch([("cartA", five), ("drawn", rgb)], both,
                           [(True, False), (False, False)])
    assert both.name != exports.name and f"{exports.name} for drawn" in caplog.text


def test_a_batch_no_model_fits_whole_runs_on_the_model_that_fits_most(monkeypatch, caplog):
    """One cartridge no shipped model reads (DAPI, CK, VIM) made a batch fall back to the
    default model, and a three-channel cartridge ctcnet-core3 reads was set aside with it:
    its counts one night's and not the next's. Now the model that fits most runs, said with
    what it cannot read and what reads it."""
    from ctcnet.inference import model_choice

    five = load_panel(None)
    three = load_panel({"channels": ["DAPI", "CK", "CD45"]})
    vim = load_panel({"channels": ["DAPI", "CK", "VIM"]})
    named = [("c02", three), ("c07", vim), ("c12", five)]
    monkeypatch.setattr(model_choice, "_named_panels", lambda cartridges, indices: named)
    monkeypatch.setattr(model_choice, "_crop_indices", lambda datasets, size: [])
    with caplog.at_level(logging.WARNING, logger="ctcnet.inference.model_choice"):
        chosen = model_choice.choose_for_most([Path("c02"), Path("c07"), Path("c12")], [], None)
    assert chosen.name == "ctcnet-core3"
    assert "no shipped model fits every input: ctcnet-core3 runs the 2 it fits; it cannot " \
        "read c07 (no shipped model reads it); alone, some would get another, reading more " \
        "of their channels: c12 (ctcnet-default)" in caplog.text
    named[:] = [("c07", vim)]
    assert model_choice.choose_for_most([Path("c07")], [], None) is None
    named[:] = [("c02", three), ("c12", five)]  # every one fits: not a choice of channels
    assert model_choice.choose_for_most([Path("c02"), Path("c12")], [], None) is None


def test_a_panel_naming_fewer_channels_than_its_frames_hold_chooses_no_model(cart, tmp_path):
    """One cartridge of a night whose panel.json lost a channel (4 named, 5 planes): every
    other cartridge of the batch ran on the three-channel model every input fitted, their
    counts moved, "ok". It plays no part in the choice; alone it is refused in one line."""
    from ctcnet.inference.model_choice import choose_for_inputs

    broken = tmp_path / "broken"
    shutil.copytree(cart, broken)
    panel = json.loads((broken / "panel.json").read_text())
    assert len(panel["channels"]) == 5
    (broken / "panel.json").write_text(json.dumps({**panel, "channels": panel["channels"][:4]}))
    assert choose_for_inputs([cart, broken], [], None, "the batch").name == "ctcnet-default"
    with pytest.raises(InputError, match="its frames hold 5 planes where panel.json names 4"):
        choose_for_inputs([broken], [], None, "the batch")
    # One file a channel, the fifth numbered past the four panel.json names: the same.
    from ctcnet.simulate import simulate_cartridge

    files = tmp_path / "files"
    simulate_cartridge(files, load_panel(None), num_frames=1, frame_shape=(64, 64), seed=3,
                       events_per_frame=2, layout="channels")
    panel = json.loads((files / "panel.json").read_text())
    (files / "panel.json").write_text(json.dumps({**panel, "channels": panel["channels"][:4]}))
    assert choose_for_inputs([cart, files], [], None, "the batch").name == "ctcnet-default"
    with pytest.raises(InputError, match="channel files numbered past panel.json's 4"):
        choose_for_inputs([files], [], None, "the batch")


def test_an_output_alike_but_for_case_is_refused_and_one_alike_in_encoding_is_the_same(
        tmp_path):
    """--out holding "S1" refuses a sample "s1" (one folder on a Windows or macOS share); a
    folder whose name differs only in how its accents are encoded (macOS writes them
    decomposed) is the sample's own, rerun, not another's."""
    import unicodedata

    from ctcnet.errors import InputError
    from ctcnet.inference.output_names import refuse_alike_output

    (tmp_path / "S1").mkdir()
    (tmp_path / unicodedata.normalize("NFD", "Müller")).mkdir()
    (tmp_path / "run.json").write_text("{}")
    refuse_alike_output(tmp_path / "S1")
    refuse_alike_output(tmp_path / unicodedata.normalize("NFC", "Müller"))
    refuse_alike_output(tmp_path / "run.JSON")  # a file is no sample's output
    with pytest.raises(InputError, match="already holds the output of sample 'S1'"):
        refuse_alike_output(tmp_path / "s1")


def test_what_in_a_folder_of_cartridges_may_be_a_scan_out_of_reach(tmp_path):
    """A link whose target is gone and names no file may be an unmounted scan; a stale link
    to a log file, a regular file and a system folder are none."""
    from ctcnet.inference.inputs import _out_of_reach, _system_entry

    (tmp_path / "P042").symlink_to(tmp_path / "share" / "P042")
    (tmp_path / "2026.03.01_P17").symlink_to(tmp_path / "share" / "2026.03.01_P17")
    (tmp_path / "current").symlink_to(tmp_path / "gone.log")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "@eaDir").mkdir()
    assert _out_of_reach(tmp_path / "P042") and _out_of_reach(tmp_path / "2026.03.01_P17")
    assert not any(_out_of_reach(tmp_path / n) for n in ("current", "notes.txt", "@eaDir"))
    # System folders by name; a scan may be named "#42" or "@lab3".
    assert all(map(_system_entry, ("#recycle", "$RECYCLE.BIN", "@eaDir", ".snapshot")))
    assert not any(map(_system_entry, ("#42", "@lab3", "$P1")))


def test_an_out_under_a_share_not_mounted_asks_whether_it_is(tmp_path, caplog, monkeypatch):
    """A mount point the system's fstab names, with nothing mounted: a warning. An empty folder
    that is no mount point (a first night's): a note for the run's log, no page."""
    import ctcnet.inference.inputs as inputs
    from ctcnet.io import mounts

    (tmp_path / "mnt" / "share").mkdir(parents=True)
    (tmp_path / "results" / "2025").mkdir(parents=True)
    fstab = tmp_path / "fstab"
    fstab.write_text(f"# a comment\n//nas/lab {tmp_path / 'mnt' / 'share'} cifs ro 0 0\n"
                     f"//nas/two {tmp_path / 'mnt' / 'two'}/ cifs ro 0 0\n"  # a slash at the end
                     "proc /proc proc defaults 0 0\n")
    monkeypatch.setattr(mounts, "FSTAB", fstab)
    with caplog.at_level("INFO"):
        inputs.check_writable(tmp_path / "results" / "2026" / "01-07")  # a night in use
        assert not caplog.records
        inputs.check_writable(tmp_path / "mnt" / "share" / "results" / "night")
    (said,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "nothing is mounted there" in said.getMessage()
    assert str(tmp_path / "mnt" / "share") in said.getMessage()
    # written with a slash at the end, and reached through a link
    (tmp_path / "mnt" / "two").mkdir()
    (tmp_path / "to_two").symlink_to(tmp_path / "mnt" / "two")
    caplog.clear()
    with caplog.at_level("WARNING"):
        inputs.check_writable(tmp_path / "to_two" / "results")
    assert "nothing is mounted there" in caplog.text
    caplog.clear()
    (tmp_path / "mnt2").mkdir()
    with caplog.at_level("INFO"):
        inputs.check_writable(tmp_path / "mnt2" / "2026-03-01")  # a first night
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "is it mounted?" in caplog.text
    # The scans' share not mounted, read with --allow-empty: no quiet night (exit 0, a note)
    # but a refusal naming the mount point; an empty folder that is no mount point is one.
    from ctcnet.errors import InputError

    with pytest.raises(InputError, match=r"is a mount point in .*fstab with nothing mounted "
                                         r"there: is the share of scans mounted\?"):
        inputs.without_empty_folders([tmp_path / "mnt" / "share"])
    assert inputs.without_empty_folders([tmp_path / "mnt2"]) == []


def test_a_loop_giving_every_cartridge_one_folder_is_told_so(clean_run, cart, tmp_path):
    """predict_cartridge(..., "results") for each cartridge of a notebook's loop: the second
    sample is refused as another sample's folder, not as "this sample read elsewhere"."""
    import json

    from conftest import predict

    from ctcnet.errors import OutputFolderError

    predict(clean_run, cart, tmp_path / "results")
    info = json.loads((cart / "cartridge.json").read_text())
    (cart / "cartridge.json").write_text(json.dumps({**info, "sample_id": "P002"}))
    with pytest.raises(OutputFolderError, match=r"it holds the output of sample 'S1', not "
                                                r"of 'P002': give each cartridge a folder"):
        predict(clean_run, cart, tmp_path / "results")


def test_one_input_given_alone_is_that_input_not_its_letters(cart_and_model, tmp_path):
    """predict_inputs("carts", ...) read "c", "a", ... and refused "c" as not found."""
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_inputs

    backend = load_backend(cart_and_model / "model.pt", device="cpu")
    done = predict_inputs(str(cart_and_model / "cart"), tmp_path / "out", backend,
                          PredictOptions(quiet=True, workers=0))
    assert len(done) == 1 and done[0].status == "ok"


@pytest.mark.parametrize("bad", [{"workers": -1}, {"batch_size": 0}, {"prefetch": 0},
                                 {"gallery_limit": -5}, {"batch_size": 2.5}])
def test_predict_options_no_run_could_use_are_refused(bad):
    """PredictOptions(workers=-1) and batch_size=0 ran as if nothing were wrong."""
    from ctcnet.errors import InputError
    from ctcnet.inference.predict import PredictOptions

    with pytest.raises(InputError, match=f"PredictOptions.{next(iter(bad))} is a whole number"):
        PredictOptions(**bad)


def test_a_link_to_a_folder_named_too_is_said_as_that_folder(cart_and_model, tmp_path, caplog):
    """`predict real2 link2` said "link2: named more than once" of a folder named once."""
    from ctcnet.inference.inputs import resolve_inputs

    real = tmp_path / "real2"
    shutil.copytree(cart_and_model / "cart", real)
    (tmp_path / "link2").symlink_to(real)
    with caplog.at_level("WARNING"):
        cartridges, _ = resolve_inputs([real, tmp_path / "link2"], say_skipped=True)
    assert len(cartridges) == 1
    assert f"link2: the folder of {real}, named too; run once" in caplog.text


def test_a_measured_plane_of_no_known_marker_is_said_in_the_log_not_warned(caplog):
    """A HER2 plane beside the model's channels is the panel as designed (measured beside the
    calls): warned of, it filled every night's cron mail; a known marker the model cannot
    read (CD61 for a three-channel model) is still a warning."""
    model = load_panel({"channels": ["DAPI", "CK", "CD45"]})
    with caplog.at_level(logging.INFO, logger="ctcnet.io.panel"):
        model.channel_indices(load_panel({"channels": ["DAPI", "CK", "CD45", "HER2"]}),
                              what="cartridge H", dropped_as=" as an input: measured")
        model.channel_indices(load_panel({"channels": ["DAPI", "CK", "CD45", "CD61"]}),
                              what="cartridge P", dropped_as=" as an input: measured")
    levels = {r.getMessage().split(":")[0]: r.levelname for r in caplog.records
              if "dropping channel" in r.getMessage()}
    assert levels == {"cartridge H": "INFO", "cartridge P": "WARNING"}


def test_a_scan_copied_with_its_old_file_times_and_no_frame_count_is_not_read_whole(tmp_path):
    """`cp -p` (or rsync -a) of half a scan, its frames' modification times hours old and no
    num_frames stated: read 'ok' at a whole tube's volume. The copy's change times are its
    own: the frames arrived lately, and the sample reads partial."""
    import os

    from ctcnet.core.paths import written_lately
    from ctcnet.io.scan import open_cartridge, write_cartridge_info, write_frame

    panel = load_panel({"channels": CORE3, "pixel_size_um": 0.64})
    write_cartridge_info(tmp_path / "c", panel, "S9", 1, 1, 1, (16, 16))
    (tmp_path / "c" / "cartridge.json").write_text(json.dumps({"sample_id": "S9"}))
    (frame,) = write_frame(tmp_path / "c", 0, 0, np.full((3, 16, 16), 100, np.uint16), panel)
    hours_ago = frame.stat().st_mtime - 3 * 3600
    os.utime(frame, (hours_ago, hours_ago))
    assert not written_lately([frame]) and written_lately([frame], arrived=True)
    assert any("no num_frames stated" in p for p in open_cartridge(tmp_path / "c").problems)


def test_inputs_set_aside_are_named_as_run_json_names_them(tmp_path):
    """Two crop folders both named logs (a name a run writes) were set aside under 'logs',
    the one overwriting the other, while run.json named them with their folders: their
    entries read missing."""
    from ctcnet.inference.output_names import run_names, set_aside_colliding

    folders = [tmp_path / "d1" / "logs", tmp_path / "d2" / "logs", tmp_path / "d3" / "Run.json",
               tmp_path / "d4" / "run.json", tmp_path / "d5" / "other"]
    record = {}
    aside = set_aside_colliding([], record, folders)
    assert sorted(record) == sorted(run_names([], folders)[:4])
    assert aside == {str(f) for f in folders[:4]} and "other" in run_names([], folders)


def test_a_folder_of_crop_folders_is_told_to_pass_each(tmp_path, rng, capsys):
    """parent/A and parent/B, each a crop folder with its panel.json: the refusal said parent
    "holds images but no panel.json", and one written there was refused as laid out
    sample/class."""
    for name in ("A", "B"):
        _rgb_dataset(tmp_path / "parent" / name, rng, sizes=((40, 52),), labels=("ctc",))
    assert main(["predict", str(tmp_path / "parent"), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "holds crop folders (A, B), not crops: pass each (e.g. " in err
    assert "no panel.json" not in err


def test_a_sample_folder_whose_accents_a_copy_decomposed_is_the_samples_own(clean_run, cart,
                                                                            capsys):
    """A results folder copied through macOS ("Mu\u0308ller 7" for "M\u00fcller 7"): a rerun
    resumes in it, as every other command reads it; it wrote a second, unreviewed folder
    beside the signed one, and the run index listed the sample twice. --scans finds a scan
    folder so renamed too."""
    import json
    import shutil
    import unicodedata

    from conftest import predict_args, run_cli

    from ctcnet.exports.event_crops import open_scanned_cartridge
    from ctcnet.inference.summary import RunSummary

    scan = cart.parent / "scans" / "K\u00e4rtchen"
    shutil.copytree(cart, scan)
    info = json.loads((scan / "cartridge.json").read_text())
    (scan / "cartridge.json").write_text(json.dumps({**info, "sample_id": "M\u00fcller 7"}))
    out = scan.parent / "out"
    assert run_cli(capsys, *predict_args(clean_run["root"], scan))[0] == 0
    decomposed = out / unicodedata.normalize("NFD", "M\u00fcller 7")
    (out / "M\u00fcller 7").rename(decomposed)
    assert run_cli(capsys, *predict_args(clean_run["root"], scan))[0] == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and p.name != "logs") == [decomposed.name]
    run = json.loads((out / "run.json").read_text())
    assert [e.get("status") for e in run["outputs"]] == ["ok"] and "other_outputs" not in run
    assert len((out / "samples.csv").read_text().splitlines()) == 2  # (a row, not two)
    moved = cart.parent / "moved"
    moved.mkdir()
    scan.rename(moved / unicodedata.normalize("NFD", scan.name))
    found = open_scanned_cartridge(RunSummary.read(decomposed), moved)
    assert unicodedata.normalize("NFC", found.root.name) == "K\u00e4rtchen"


def test_crops_named_as_a_scans_frames_are_read_as_a_crop_folder(tmp_path, rng, caplog):
    """24 unlabelled crops of 80 px named frame_0000.tif..., a panel.json beside them: read as
    a scan, they came out as 35 "events" with rates per 7.5 mL. With a cartridge.json saying
    it is a scan, a scan of frames that small it stays."""
    from ctcnet.inference.inputs import resolve_inputs

    folder = tmp_path / "crops"
    folder.mkdir()
    save_panel(load_panel(None), folder / "panel.json")
    for k in range(3):
        tifffile.imwrite(folder / f"frame_{k:04d}.tif",
                         rng.integers(90, 200, (5, 80, 80)).astype(np.uint16))
    with caplog.at_level(logging.WARNING, logger="ctcnet.inference.inputs"):
        assert resolve_inputs([folder]) == ([], [folder])
    assert "80 x 80 px, a cell's crop" in caplog.text
    # Inside a folder of scans, as given alone: the same folder gives the same reading, said
    # once (inputs are resolved more than once a run), and not said "not read".
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ctcnet.inference.inputs"):
        assert resolve_inputs([tmp_path], say_skipped=True) == ([], [folder])
    assert "not read" not in caplog.text and "a cell's crop" not in caplog.text
    write_cartridge_info(folder, load_panel(None), "S1", 3, 1, 3, (80, 80))
    assert resolve_inputs([folder]) == ([folder], [])
