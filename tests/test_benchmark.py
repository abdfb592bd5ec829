"""`ctcnet benchmark --quick` still runs end to end and writes its record (no timing checks)."""

import json

import pytest

from ctcnet.cli import main
from ctcnet.io.panel import default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.classifier import build_classifier, save_model
from ctcnet.nn.spec import ModelSpec


@pytest.fixture
def tiny_model(tmp_path):
    path = tmp_path / "model.pt"
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=48,
                     arch_kwargs={"width": 8})
    save_model(path, build_classifier(spec))
    return path


def test_quick_benchmark_writes_record(tmp_path, tiny_model):
    out = tmp_path / "docs"
    rc = main(["benchmark", "--quick", "--model", str(tiny_model), "--out", str(out),
               "--workdir", str(tmp_path / "work")])
    assert rc == 0
    record = json.loads((out / "benchmarks.json").read_text())
    engines = {r["engine"] for r in record["classification"]["rows"]}
    assert {"torch eager fp32", "ORT fp32"} <= engines
    base = [r for r in record["classification"]["rows"] if r["engine"] == "torch eager fp32"]
    assert all(r["ratio_to_torch_eager"] == pytest.approx(1.0) for r in base)
    frames = [r["frames"] for r in record["cartridges"]["rows"]]
    assert frames == [2, 3]
    for row in record["cartridges"]["rows"]:
        assert row["events"] > 0 and row["total_s"]["median"] > 0
        assert {"read", "detect", "crop", "classify", "write"} <= set(row["stages_s"])
    assert record["training"]["crops_per_s"]["median"] > 0
    text = (out / "benchmarks.md").read_text()
    assert "Quick mode" in text and "Whole cartridges" in text


def test_benchmark_rejects_bad_arguments(tiny_model, capsys):
    assert main(["benchmark", "--model", str(tiny_model), "--sections", "classify,fly"]) == 2
    assert "unknown benchmark sections" in capsys.readouterr().err
