"""`ctcnet benchmark --quick` still runs end to end and writes its record (no timing checks)."""

import json

import pytest

from ctcnet.cli import main


@pytest.fixture
def tiny_model(tmp_path, tiny_model_file):
    return tiny_model_file(tmp_path / "model.pt", crop_size=48, width=8)[0]


def test_quick_benchmark_writes_record(tmp_path, tiny_model):
    out, work = tmp_path / "docs", tmp_path / "work"
    # A workdir kept from an earlier run, with another model's files: they are replaced.
    work.mkdir()
    (work / "model-fp32.onnx").write_bytes(b"an older export")
    (work / tiny_model.name).write_bytes(b"another checkpoint")
    rc = main(["benchmark", "--quick", "--model", str(tiny_model), "--out", str(out),
               "--workdir", str(work)])
    assert rc == 0
    record = json.loads((out / "benchmarks.json").read_text())
    if record["cartridges"]["rows"][0]["backend"] == "onnx":  # with CUDA: torch, no export
        assert (work / tiny_model.name).read_bytes() == tiny_model.read_bytes()
    engines = {r["engine"] for r in record["classification"]["rows"]}
    assert {"torch eager fp32", "ORT fp32"} <= engines
    base = [r for r in record["classification"]["rows"] if r["engine"] == "torch eager fp32"]
    assert all(r["ratio_to_torch_eager"] == pytest.approx(1.0) for r in base)
    frames = [r["frames"] for r in record["cartridges"]["rows"]]
    assert frames == [2, 3]
    for row in record["cartridges"]["rows"]:
        assert row["events"] > 0 and row["total_s"]["median"] > 0
        assert {"read", "detect", "crop", "classify", "write"} <= set(row["stages_s"])
    training = record["training"]
    assert all(training[k]["median"] > 0 for k in ("crops_per_s", "augment_crops_per_s",
                                                     "step_crops_per_s"))
    text = (out / "benchmarks.md").read_text()
    assert "Quick mode" in text and "Whole cartridges" in text
    assert "augmentation" in text and "crops/s on one core" in text


def test_gpu_training_record_says_how_many_workers_feed_the_step():
    from ctcnet.benchmark import render_markdown

    rate = lambda v: {"median": v, "min": v, "max": v}  # noqa: E731
    record = {"created": "now", "quick": False, "machine": {
        "cpu": "x", "cores": 16, "memory_gib": 1, "torch": "t",
        "torch_threads": 16, "onnxruntime": "o", "cuda": {"device": "H100"}},
        "training": {"arch": "compact", "crop_size": 80, "batch_size": 128, "device": "cuda",
                     "threads": 16, "augment": True, "crops_per_s": rate(700.0),
                     "augment_crops_per_s": rate(700.0), "step_crops_per_s": rate(20000.0)}}
    text = render_markdown(record)
    assert "about 29 workers (`--data.num_workers`) keep the GPU busy" in text


def test_benchmark_rejects_bad_arguments(tiny_model, capsys):
    assert main(["benchmark", "--model", str(tiny_model), "--sections", "classify,fly"]) == 2
    assert "unknown benchmark sections" in capsys.readouterr().err


def test_gpu_record_shows_the_frame_path_comparison():
    # What a GPU machine's record holds for the middle cartridge: the defaults (frames on the
    # GPU) beside --frame-device numpy; rendered without running anything.
    from ctcnet.benchmark import render_cartridges

    timing = {"median": 10.0, "min": 9.0, "max": 11.0}
    run = {"runs": 1, "total_s": timing, "process_s": timing, "peak_rss_mb": 900.0,
           "stages_s": {"read": 1.0, "detect": 2.0, "crop": 1.0, "classify": 3.0}}
    row = {"frames": 175, "events": 49000, "total_s": timing, "process_s": timing,
           "events_per_s": 4900.0, "stages_s": run["stages_s"], "peak_rss_mb": 900.0,
           "configs": {"defaults": run, "--frame-device numpy": run}}
    text = "\n".join(render_cartridges({"frame_shape": [1036, 1384], "events_per_frame": 290,
                                        "rows": [row], "device": "cuda:0"}))
    assert "in 2 configurations" in text and "| --frame-device numpy | 1 |" in text
    assert "detect and cut crops on the GPU" in text


def test_a_stopped_run_keeps_what_it_measured(tmp_path, tiny_model, monkeypatch):
    # The largest cartridge size overruns (a time limit): the sizes done stay in the record.
    import ctcnet.benchmark as bench

    timing = {"median": 10.0, "min": 9.0, "max": 11.0}
    row = {"frames": 10, "events": 2800, "total_s": timing, "process_s": timing,
           "events_per_s": 280.0, "stages_s": {"read": 1.0, "classify": 3.0},
           "peak_rss_mb": 600.0}

    def cartridges_then_stop(model_path, settings, workdir, on_progress=None):
        on_progress({"rows": [row], "frame_shape": [1036, 1384], "events_per_frame": 290,
                     "device": "cpu"})
        raise KeyboardInterrupt

    monkeypatch.setattr(bench, "bench_cartridges", cartridges_then_stop)
    out = tmp_path / "docs"
    with pytest.raises(KeyboardInterrupt):
        bench.run_benchmark(tiny_model, out, bench.BenchSettings(quick=True),
                            workdir=tmp_path / "work", sections=("cartridge", "train"),
                            log=lambda _: None)
    record = json.loads((out / "benchmarks.json").read_text())
    assert record["complete"] is False and "training" not in record
    assert [r["frames"] for r in record["cartridges"]["rows"]] == [10]
    text = (out / "benchmarks.md").read_text()
    assert "Incomplete" in text and "| 10 |" in text
