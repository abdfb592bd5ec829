"""``ctcnet robustness``: the matrix written as JSON and a heat map."""

import json
from pathlib import Path

import numpy as np
from conftest import disk_crops

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.io.panel import default_panel

SIZE = 40
CLASSES = ["ctc", "wbc", "cluster", "debris"]


def test_robustness_command_writes_json_and_heat_map(tmp_path, capsys, tiny_model_file):
    panel = default_panel()
    tiny_model_file(tmp_path / "m.pt", crop_size=SIZE)
    crops = np.concatenate([disk_crops(n=3, channel=k, seed=k, noise=4) for k in range(4)])
    labels = [CLASSES[k] for k in range(4) for _ in range(3)]
    write_crop_dataset(tmp_path / "data", crops.astype(np.uint16), labels, panel)
    rc = main(["robustness", str(tmp_path / "data"), "--model", str(tmp_path / "m.pt"),
               "--out", str(tmp_path / "out"), "--no-baselines", "--families", "crop",
               "nonspecific", "--device", "cpu"])
    assert rc == 0
    report = json.loads((tmp_path / "out" / "robustness.json").read_text())
    assert report["methods"] == ["cnn"] and report["n"] == 12
    assert {c["family"] for c in report["cells"]} == {"crop", "nonspecific"}
    assert "review" in report["cells"][0] and "check" in report
    from PIL import Image

    assert Image.open(tmp_path / "out" / "robustness.png").size[1] > 100
    out = capsys.readouterr().out
    assert "off centre" in out
    for failure in report["check"]["failures"]:  # each failing check printed, as stored
        assert f"  - {failure}" in out
    # The clean figure first, and what made the matrix, as evaluate's report says it.
    assert "clean (unperturbed)" in out.splitlines()[1]
    assert report["model_sha256"] and report["software"]["ctcnet"] and report["written_at"]
    # Named as evaluate's reports name it: an absolute path, the network's digest.
    assert Path(report["model"]).is_absolute()
    assert report["model_record"]["sha256"] == report["model_sha256"]
    assert report["model_record"]["network_sha256"]
    assert report["families"] == ["crop", "nonspecific"] and report["pixel_size_um"] == 0.64
    assert report["data"] == str((tmp_path / "data").absolute())


def test_without_a_model_the_shipped_one_with_the_crops_channels_is_scored(
        with_tiny3, tmp_path, capsys):
    """A three-marker lab's crops: the default five-channel model cannot read them; the
    matrix is made with the shipped three-channel one, as predict would choose it."""
    from ctcnet.io.panel import load_panel

    crops = np.concatenate([disk_crops(n=2, channel=k % 3, seed=k, noise=4)[:, :3]
                            for k in range(4)])
    labels = [CLASSES[k] for k in range(4) for _ in range(2)]
    write_crop_dataset(tmp_path / "lab3", crops.astype(np.uint16), labels,
                       load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64}))
    rc = main(["robustness", str(tmp_path / "lab3"), "--out", str(tmp_path / "out"),
               "--no-baselines", "--families", "crop", "--device", "cpu"])
    assert rc == 0
    assert f"model: tiny3 (from {with_tiny3}; fits the crops' channels)" in capsys.readouterr().err
