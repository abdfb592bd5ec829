"""ctcnet.exports.event_crops: a run's events cut into a crop dataset, with the model's
channels or every channel of the scan."""

import json

import numpy as np
import tifffile
from conftest import frames, predict

from ctcnet.detect.crop_dataset import read_crop_index
from ctcnet.exports.event_crops import write_event_dataset


def test_every_channel_of_the_scan_is_cut_when_asked(clean_run, cart, tmp_path):
    """A scan with a channel the model does not read (a lab's vimentin): cut with the
    model's channels by default, and with every channel of the scan, in its order, with
    every_channel (for a model of the lab's own)."""
    for frame in frames(cart):
        planes = tifffile.imread(frame)
        tifffile.imwrite(frame, np.concatenate([planes, planes[1:2] // 2]))
    panel = json.loads((cart / "panel.json").read_text())
    panel["channels"].append("Vimentin")
    (cart / "panel.json").write_text(json.dumps(panel))
    out = tmp_path / "out"
    predict(clean_run, cart, out)
    write_event_dataset(out, tmp_path / "model_channels", reviewed=False)
    write_event_dataset(out, tmp_path / "every", reviewed=False, every_channel=True)
    model, every = (read_crop_index(tmp_path / name) for name in ("model_channels", "every"))
    assert "Vimentin" not in model.panel.names and every.panel.names[-1] == "Vimentin"
    assert len(every) == len(model) > 0
    a, b = model.read(0), every.read(0)
    assert b.shape[0] == a.shape[0] + 1
    assert np.array_equal(b[every.panel.names.index("CK")], a[model.panel.names.index("CK")])


def test_samples_of_other_channels_are_said_so_and_unreviewed_ones_not_weighed(
        clean_run, tmp_path):
    """A three-channel sample beside five-channel ones was refused as stating "other value
    ranges" while the ranges it named read alike; and under --reviewed a sample nobody
    decided on, which gives no crop, was weighed too."""
    import shutil

    import pytest
    from conftest import edit_json

    from ctcnet.errors import InputError
    from ctcnet.exports.event_crops import check_one_scale

    folders = {}
    for name in ("five", "three"):
        folders[name] = tmp_path / name
        shutil.copytree(clean_run["root"] / "clean", folders[name])
        edit_json(folders[name] / "summary.json", output_folder=name)  # (its own, not copied)
    summary = json.loads((folders["three"] / "summary.json").read_text())
    panel = summary["panel"]
    edit_json(folders["three"] / "summary.json",
              panel={**panel, "channels": panel["channels"][:3]})
    with pytest.raises(InputError, match=r"scans hold other channels \(five: DAPI, CK, CD45, "
                                         r".*; three: DAPI, CK, CD45\)"):
        check_one_scale(folders)
    # Under --reviewed, the three-channel sample without a decision is not weighed.
    (folders["five"] / "review.csv").write_text("")
    with pytest.raises(InputError) as refused:
        write_event_dataset(tmp_path, tmp_path / "crops", reviewed=True)
    assert "other channels" not in str(refused.value), refused.value


def test_the_cut_a_killed_run_left_beside_out_is_removed_by_the_next(clean_run, tmp_path):
    """SIGKILL as the crops were cut left a hidden folder beside --out as large as the cut,
    never cleaned and never said; each kill added one. A running one's, another machine's,
    one added to lately and the earlier crops a killed swap took out stay."""
    import os
    import subprocess
    import sys
    import time

    from ctcnet import cli
    from ctcnet.commands.crops import _cut_prefix

    out = tmp_path / "crops"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    killed = tmp_path / f"{_cut_prefix('crops', int(dead))}abcd1234"
    swapped = tmp_path / f"{killed.name}.old"
    running = tmp_path / f"{_cut_prefix('crops')}efgh5678"  # this process's
    elsewhere = tmp_path / ".crops.cut1@another-host.ijkl9012"
    recent = tmp_path / f"{_cut_prefix('crops', int(dead))}mnop3456"  # (another container's?)
    for folder in (killed, swapped, running, elsewhere, recent):
        (folder / "ctc").mkdir(parents=True)
    hour_ago = time.time() - 3600
    for folder in (killed, killed / "ctc"):
        os.utime(folder, (hour_ago, hour_ago))
    assert cli.main(["crops", str(clean_run["root"] / "clean"), "--out", str(out)]) == 0
    assert not killed.exists()
    # The earlier crops an interrupted swap took out stay (said): their only copy.
    assert swapped.exists() and running.exists() and elsewhere.exists() and recent.exists()
    assert (out / "dataset.json").is_file()


def test_crops_without_room_are_refused_naming_the_folder_asked_for(clean_run, tmp_path,
                                                                   monkeypatch, capsys):
    """A full disk was said of the hidden folder the crops are written into first (gone by
    the time the line is read), not of the --out given."""
    import shutil
    from collections import namedtuple

    from ctcnet import cli

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "lab crops"
    assert cli.main(["crops", str(clean_run["root"] / "clean"), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"{out}: " in error and "is free there" in error, error
    assert f"{tmp_path}/." not in error and not out.exists()

    # A disk that fills while the crops are written: the machine's error names --out too.
    import errno

    import ctcnet.exports.event_crops as event_crops

    monkeypatch.undo()

    def full(folder, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "ctc" / "x.tif"))

    monkeypatch.setattr(event_crops, "write_crop_files", full)
    assert cli.main(["crops", str(clean_run["root"] / "clean"), "--out", str(out)]) == 4
    error = capsys.readouterr().err
    assert str(out) in error and f"{tmp_path}/." not in error, error
    assert not out.exists()


def test_crops_are_cut_from_their_own_frame_once_a_missing_frame_arrives(clean_run, cart,
                                                                         tmp_path):
    """Predicted with the first frame not yet in the folder (the others' events numbered
    frame 0, 1, ...), then the frame arrived, as predict's warning invites: every crop was cut
    from the frame before its own, labelled with its own event's call, unsaid."""
    from ctcnet.detect.cropping import extract_crops
    from ctcnet.io.scan import open_cartridge

    first = frames(cart)[0]
    held = tmp_path / first.name
    first.rename(held)
    out = tmp_path / "out"
    spec = predict(clean_run, cart, out).model
    held.rename(first)
    write_event_dataset(out, tmp_path / "crops", reviewed=False)
    rows = json.loads((tmp_path / "crops" / "dataset.json").read_text())["crops"]
    assert rows and first.stem not in {r["frame_id"] for r in rows}
    cartridge = open_cartridge(cart)
    pixels = {f.frame_id: cartridge.read(f) for f in cartridge.frames}
    for row in rows[:10]:
        kept = tifffile.imread(tmp_path / "crops" / row["path"]).astype(np.float32)
        off = {frame_id: float(np.abs(extract_crops(
            frame, np.array([row["x"]]), np.array([row["y"]]), spec.crop_size,
            spec.pixel_size_um, cartridge.panel.pixel_size_um)[0][0] - kept).max())
            for frame_id, frame in pixels.items()}
        assert min(off, key=off.get) == row["frame_id"]
