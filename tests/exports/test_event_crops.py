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
