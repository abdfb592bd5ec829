"""scripts/adaptation_curve.py: the drawn-composite protocol's lab sets and the base model's
calibration put back for the before figures."""

import sys
from pathlib import Path

import numpy as np
import pytest

from ctcnet.detect.crop_dataset import read_crop_index

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def curve():
    from conftest import load_script

    sys.path.insert(0, str(SCRIPTS))  # the script imports drawn_composites as its own dir does
    try:
        yield load_script(SCRIPTS / "adaptation_curve.py")
    finally:
        sys.path.remove(str(SCRIPTS))


def test_a_drawn_lab_set_takes_n_crops_a_class_from_several_kinds(curve, tmp_path):
    folder, files, labels = curve.drawn_pool(tmp_path / "pool", seed=3, per_kind=2,
                                             look="as_drawn")
    assert len(files) == 14 and sorted(set(labels)) == ["ctc", "wbc"]
    lab = curve.drawn_subset(folder, files, labels, 3, tmp_path / "lab")
    index = read_crop_index(lab, pixel_size=1.0)
    assert sorted(index.labels) == ["ctc"] * 3 + ["wbc"] * 3
    kinds = {Path(p).name.rsplit("_", 1)[0] for p in index.paths if "ctc" in Path(p).name}
    assert len(kinds) >= 2  # shuffled: not the first kind's cells only
    assert (lab / "panel.json").read_text() == (folder / "panel.json").read_text()


def test_the_before_model_is_the_tuned_network_with_the_base_calibration(curve, tmp_path):
    from conftest import save_tiny_model

    from ctcnet.nn.classifier import load_model

    _, spec = save_tiny_model(tmp_path / "t.pt", crop_size=32, width=8)
    tuned, tuned_spec = load_model(tmp_path / "t.pt")
    base = spec.replace(temperature=0.5, review_threshold=0.42)
    kept = curve.with_base_calibration(tuned, tuned_spec, base, tmp_path / "kept.pt")
    model, kept_spec = load_model(kept)
    assert (kept_spec.temperature, kept_spec.review_threshold) == (0.5, 0.42)
    for x, y in zip(tuned.state_dict().values(), model.state_dict().values()):
        assert np.array_equal(x.numpy(), y.numpy())


def test_a_report_of_other_runs_draws_its_plot_beside_them(curve, tmp_path, capsys):
    """--report of runs kept in another --out replaced docs/adapting.png, the plot the docs
    show of their own runs; it goes beside the runs it draws."""
    import json
    from argparse import Namespace

    runs = tmp_path / "runs.jsonl"
    rows = [{"scanner": curve.scanner_digest(), "base_sha256": "abc", "seed": 0, "n": n,
             "steps": 150, "train_blocks": None, "lr": 1e-4, "simulated_per_class": None,
             "macro_f1": 0.9 + n / 1000, "seconds": 1.0, "test_crops": 40} for n in (0, 10)]
    runs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shown = curve.ROOT / "docs" / "adapting.png"
    before = shown.stat().st_mtime_ns
    curve.report(Namespace(out=runs, base_digest="abc", base=None, steps=150, lr=1e-4,
                           simulated_per_class=None, train_blocks=0))
    assert (tmp_path / "runs.png").is_file() and shown.stat().st_mtime_ns == before
    assert "| 10 |" in capsys.readouterr().out
