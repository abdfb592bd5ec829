"""``ctcnet robustness``: the matrix written as JSON and a heat map."""

import json

import numpy as np

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.io.panel import default_panel

SIZE = 40
CLASSES = ["ctc", "wbc", "cluster", "debris"]


def disk_crops(n=4, radius=6.0, amplitude=400.0, background=100.0, noise=0.0, seed=0,
               channel=1, channels=5):
    """Crops with one bright disk in ``channel`` on a flat (or noisy) background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    c = (SIZE - 1) / 2
    disk = ((yy - c) ** 2 + (xx - c) ** 2 <= radius ** 2).astype(np.float32)
    x = np.full((n, channels, SIZE, SIZE), background, np.float32)
    x[:, channel] += amplitude * disk
    return x + noise * rng.standard_normal(x.shape).astype(np.float32)


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
