"""`ctcnet benchmark --quick` still runs end to end and writes its record, and the stage check's
verdict on recorded multiples (no timing checks: speed goes in the benchmark)."""

import json
import time
from pathlib import Path

import pytest
from conftest import edit_json

from ctcnet.cli import main
from ctcnet.errors import InputError
from ctcnet.io.scan import open_cartridge


@pytest.fixture
def tiny_model(tmp_path, tiny_model_file):
    return tiny_model_file(tmp_path / "model.pt", crop_size=48, width=8)[0]


def test_a_quick_check_never_replaces_the_record_and_shipped_names_are_models(tmp_path,
                                                                             monkeypatch):
    """Without --out, --quick writes benchmark-quick/ and a full run benchmark/, never docs/
    (the project's record, written with --out docs). --model takes a shipped model's name."""
    import ctcnet.benchmark as benchmark
    from ctcnet.nn.registry import get_model

    calls = []
    monkeypatch.setattr(benchmark, "run_benchmark", lambda model, out, *a: calls.append(
        (model, out)))
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", "--quick", "--model", "ctcnet-core3"]) == 0
    assert main(["benchmark", "--sections", "classify"]) == 0
    assert calls[0] == (get_model("ctcnet-core3").file("torch"), Path("benchmark-quick"))
    assert calls[1][1] == Path("benchmark")


def test_a_quick_run_into_a_full_record_and_a_workdir_that_is_a_file_are_refused(
        tmp_path, monkeypatch, capsys):
    """`--quick --out docs` replaced the project's full record with a quick one, its other
    sections (the scripts' too) dropped unsaid; a --workdir naming a file was a traceback."""
    import ctcnet.benchmark as benchmark

    calls = []
    monkeypatch.setattr(benchmark, "run_benchmark", lambda *a: calls.append(a))
    out = tmp_path / "docs"
    out.mkdir()
    record = out / "benchmarks.json"
    record.write_text(json.dumps({"created": "then", "quick": False, "training": {"arch": "x"}}))
    assert main(["benchmark", "--quick", "--sections", "train", "--out", str(out)]) == 2
    assert "holds a full benchmark record, which a --quick run would replace" in \
        capsys.readouterr().err
    assert json.loads(record.read_text())["quick"] is False and not calls
    record.write_text(json.dumps({"created": "then", "quick": True}))
    assert main(["benchmark", "--quick", "--sections", "train", "--out", str(out)]) == 0
    for holding_nothing in ({}, []):  # nothing a quick run would lose
        record.write_text(json.dumps(holding_nothing))
        assert main(["benchmark", "--quick", "--sections", "train", "--out", str(out)]) == 0
    del calls[1:]
    (tmp_path / "afile").write_text("")
    assert main(["benchmark", "--quick", "--sections", "train", "--out", str(out),
                 "--workdir", str(tmp_path / "afile")]) == 2
    assert "--workdir" in capsys.readouterr().err and len(calls) == 1


def test_cartridge_sizes_are_read_smallest_first_and_bounded_and_outputs_checked_first(
        tmp_path, monkeypatch, capsys):
    """--frames 175,10 read its first and last sizes as the smallest and largest (flatness
    "from 175 to 10 frames"); a size past any scan's was taken; a benchmarks.json that is a
    folder failed after the measuring, a traceback, its figures lost."""
    import ctcnet.benchmark as benchmark

    calls = []
    monkeypatch.setattr(benchmark, "run_benchmark",
                        lambda model, out, settings, *a: calls.append(settings.frame_counts))
    out = tmp_path / "bench"
    assert main(["benchmark", "--sections", "cartridge", "--frames", "175,10,175",
                 "--out", str(out)]) == 0
    assert calls == [(10, 175)]
    assert main(["benchmark", "--sections", "cartridge", "--frames", "10,100000",
                 "--out", str(out)]) == 2
    assert "at most 10,000 frames" in capsys.readouterr().err
    (out / "benchmarks.json").unlink(missing_ok=True)
    (out / "benchmarks.json").mkdir()
    assert main(["benchmark", "--sections", "cartridge", "--frames", "2",
                 "--out", str(out)]) == 2
    assert "benchmarks.json there is no file" in capsys.readouterr().err and len(calls) == 1


def test_a_workdir_folder_the_benchmark_did_not_make_is_not_replaced(tmp_path):
    """A --workdir given by hand holding a lab's cartridge-5/ (or sim-N/) had it deleted."""
    from ctcnet.benchmark.cartridges import linked_cartridge, simulate_base_cartridge
    from ctcnet.benchmark.common import BenchSettings

    lab = tmp_path / "work" / "cartridge-5"
    lab.mkdir(parents=True)
    (lab / "cartridge.json").write_text('{"sample_id": "patient-42"}')
    (lab / "r00c00_DAPI.tif").write_text("precious")
    with pytest.raises(InputError, match="the benchmark did not make"):
        linked_cartridge(tmp_path / "work" / "sim-3", lab, 5)
    sim = tmp_path / "work" / "sim-3"
    sim.mkdir()
    (sim / "ground_truth.csv").write_text("a lab's truth")
    with pytest.raises(InputError, match="the benchmark did not make"):
        simulate_base_cartridge(sim, 3, BenchSettings.quick_settings())
    assert (lab / "r00c00_DAPI.tif").read_text() == "precious" and (sim / "ground_truth.csv"
                                                                     ).exists()
    # ... but one a stopped run left (its mark) is the benchmark's own, made again.
    half = tmp_path / "work" / "cartridge-7"
    half.mkdir()
    (half / ".ctcnet-bench-linking").touch()
    (half / "r00c00.tif").write_text("half linked")
    from ctcnet.benchmark.cartridges import _own_or_refused

    _own_or_refused(half, (half / ".ctcnet-bench-linking").exists())  # (no refusal)


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
    # The build measured and the model are named in the record and on its page.
    assert record["software"].startswith("ctcnet ")
    assert f"Code: {record['software']}; model: {tiny_model.name}." in \
        (out / "benchmarks.md").read_text()
    if record["cartridges"]["rows"][0]["backend"] == "onnx":  # with CUDA: torch, no export
        assert (work / tiny_model.name).read_bytes() == tiny_model.read_bytes()
    engines = {r["engine"] for r in record["classification"]["rows"]}
    assert {"torch eager fp32", "ORT fp32"} <= engines
    base = [r for r in record["classification"]["rows"] if r["engine"] == "torch eager fp32"]
    assert all(r["ratio_to_torch_eager"] == pytest.approx(1.0) for r in base)
    frames = [r["frames"] for r in record["cartridges"]["rows"]]
    assert frames == [2, 3]
    # The scan's pixel size, which the cost of cropping and of the guard follows, is stated.
    pixel = record["cartridges"]["pixel_size_um"]
    assert 0.3 < pixel < 1.0 and f"px at {pixel:.4g} um/px (the cost of cropping" in \
        (out / "benchmarks.md").read_text()
    for row in record["cartridges"]["rows"]:
        assert row["events"] > 0 and row["total_s"]["median"] > 0
        assert {"read", "detect", "crop", "classify", "write"} <= set(row["stages_s"])
        # Every stage but the report stands beside a floor measured in the same run.
        table = row["stage_table"]
        assert {"read", "detect", "crop", "guard", "classify", "write"} <= set(table)
        assert all(table[s]["floor_per_event_ms"] > 0 and table[s]["x_model_floor"] > 0
                   for s in ("read", "detect", "crop", "guard", "classify", "write"))
    # The middle size stands beside its peers: the classic gate in 1 and 2 processes, and
    # predict in 1 and 2 (its cartridge split in two), as ratios; GPU lines only with CUDA.
    middle = record["cartridges"]["rows"][1]
    gate = middle["peer"]["by_workers"]
    assert set(gate) == {"1", "2"} and gate["1"]["objects"] == gate["2"]["objects"] > 0
    assert set(middle["predict_processes"]["by_processes"]) == {"1", "2"}
    ratios = middle["peer_ratios"]
    for key in ("predict_to_peer_2", "around_network_to_network", "total_to_model",
                "peer_scaling", "predict_processes_scaling"):
        assert ratios[key] > 0, key
    assert record["cartridges"]["rows"][0]["peer"] is None
    import torch

    assert ("gpu" in middle) == torch.cuda.is_available()
    floors = record["cartridges"]["frame_floors"]
    assert floors["crop_fine_to_model_pixel"] > 0 and floors["events"] > 0
    assert record["cartridges"]["model_floor"]["best_batch"] >= 1
    training = record["training"]
    assert all(training[k]["median"] > 0 for k in ("crops_per_s", "augment_crops_per_s",
                                                     "step_crops_per_s"))
    text = (out / "benchmarks.md").read_text()
    assert "Quick mode" in text and "Whole cartridges" in text
    assert "Each stage against its floor" in text and "0.45 um/px" in text
    assert "Beside a classic gate: 3 frames" in text and "| classic gate | 2 |" in text
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
    said = capsys.readouterr().err  # (a first guess, "training", was told no more than that)
    assert "unknown benchmark sections ['fly']: give classify, cartridge or train" in said


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
    import ctcnet.benchmark.record as record_module

    timing = {"median": 10.0, "min": 9.0, "max": 11.0}
    row = {"frames": 10, "events": 2800, "total_s": timing, "process_s": timing,
           "events_per_s": 280.0, "stages_s": {"read": 1.0, "classify": 3.0},
           "peak_rss_mb": 600.0}

    def cartridges_then_stop(model_path, settings, workdir, on_progress=None):
        on_progress({"rows": [row], "frame_shape": [1036, 1384], "events_per_frame": 290,
                     "device": "cpu"})
        raise KeyboardInterrupt

    monkeypatch.setattr(record_module, "bench_cartridges", cartridges_then_stop)
    out = tmp_path / "docs"
    monkeypatch.setenv("TZ", "America/St_Johns")  # a half-hour zone: its "NST" was written
    time.tzset()
    try:
        with pytest.raises(KeyboardInterrupt):
            bench.run_benchmark(tiny_model, out, bench.BenchSettings(quick=True),
                                workdir=tmp_path / "work", sections=("cartridge", "train"),
                                log=lambda _: None)
    finally:
        monkeypatch.undo()
        time.tzset()
    record = json.loads((out / "benchmarks.json").read_text())
    assert record["created"].endswith(" UTC")
    made = time.mktime(time.strptime(record["created"], "%Y-%m-%d %H:%M:%S UTC"))
    assert abs(made - time.mktime(time.gmtime())) < 600
    assert record["complete"] is False and "training" not in record
    assert [r["frames"] for r in record["cartridges"]["rows"]] == [10]
    text = (out / "benchmarks.md").read_text()
    assert "Incomplete" in text and "| 10 |" in text


def test_a_section_measured_again_keeps_its_earlier_record_until_whole(tiny_model, tmp_path,
                                                                       monkeypatch):
    """A rerun stopped after its first cartridge size wiped the earlier record's whole
    cartridge section (an hour's 175- and 1,000-frame figures): it stays until the new one
    is whole, the new part beside it."""
    import ctcnet.benchmark as bench
    import ctcnet.benchmark.record as record_module

    out = tmp_path / "docs"
    out.mkdir()
    shape = {"frame_shape": [1036, 1384], "events_per_frame": 290, "device": "cpu"}
    old = {"rows": [], **shape, "runs": 1}
    from ctcnet.io.digests import file_sha256

    (out / "benchmarks.json").write_text(json.dumps(
        {"created": "2026-01-01 00:00:00 UTC", "quick": True, "cartridges": old,
         "model_sha256": file_sha256(tiny_model)}))
    part = {"rows": [], **shape, "runs": 2}

    def stopped(model_path, settings, workdir, on_progress=None):
        on_progress(part)
        raise KeyboardInterrupt

    monkeypatch.setattr(record_module, "bench_cartridges", stopped)
    with pytest.raises(KeyboardInterrupt):
        bench.run_benchmark(tiny_model, out, bench.BenchSettings(quick=True),
                            workdir=tmp_path / "work", sections=("cartridge",),
                            log=lambda _: None)
    record = json.loads((out / "benchmarks.json").read_text())
    assert record["cartridges"] == old and record["unfinished"]["cartridges"] == part
    assert "cartridges" in record["kept_sections"] and record["complete"] is False
    page = (out / "benchmarks.md").read_text()
    assert "**Cartridges: measured again, stopped after the sizes none" in page
    assert "**Incomplete: the run stopped before it finished; below is what it had measured " \
        "by then, but for cartridges (the earlier record's, above).**" in page
    assert "Sections not measured in this run" not in page
    whole = {"rows": [], **shape, "runs": 3}
    monkeypatch.setattr(record_module, "bench_cartridges", lambda *a, **k: whole)
    bench.run_benchmark(tiny_model, out, bench.BenchSettings(quick=True),
                        workdir=tmp_path / "work", sections=("cartridge",), log=lambda _: None)
    record = json.loads((out / "benchmarks.json").read_text())
    assert record["cartridges"] == whole and record["complete"] is True
    assert "unfinished" not in record and "kept_sections" not in record


def test_a_run_of_some_sections_keeps_the_others(tmp_path):
    # `--sections cartridge` rewrites the cartridge tables and keeps the record's other
    # sections, labelled with the run that measured them.
    import ctcnet.benchmark.record as record_module

    out = tmp_path / "docs"
    out.mkdir()
    earlier = {"created": "2026-01-01 00:00:00 UTC", "quick": False,
               "machine": {"cpu": "Some CPU", "cores": 2},
               "classification": {"rows": []}, "training": {"arch": "compact"},
               "cartridges": {"rows": ["old"]}}
    (out / "benchmarks.json").write_text(json.dumps(earlier))
    kept, when = record_module.earlier_sections(out, ("cartridge",), quick=False)
    assert set(kept) == {"classification", "training"}
    made = "2026-01-01 00:00:00 UTC (`ctcnet benchmark`) on Some CPU, 2 cores"
    assert when == {"classification": made, "training": made}
    assert record_module.earlier_sections(out, ("cartridge",), quick=True) == ({}, {})
    # A quick record's other sections are kept by a quick run (they were dropped unsaid).
    quick = {**earlier, "quick": True}
    (out / "benchmarks.json").write_text(json.dumps(quick))
    kept, _ = record_module.earlier_sections(out, ("cartridge",), quick=True)
    assert set(kept) == {"classification", "training"}
    assert record_module.earlier_sections(out, ("cartridge",), quick=False) == ({}, {})
    # The scripts' sections (dated in themselves) are kept across it; a record that is JSON
    # but no object is replaced, as an unreadable one (it was an AttributeError).
    (out / "benchmarks.json").write_text(json.dumps({**quick, "student": {"rows": [1]}}))
    assert record_module.earlier_sections(out, ("cartridge",), quick=False)[0] == {
        "student": {"rows": [1]}}
    (out / "benchmarks.json").write_text("[]")
    assert record_module.earlier_sections(out, ("cartridge",), quick=True) == ({}, {})
    (out / "benchmarks.json").write_text(json.dumps(earlier))
    # Sections that scripts record (dated in themselves) are kept by every run.
    earlier["student"] = {"rows": []}
    (out / "benchmarks.json").write_text(json.dumps(earlier))
    kept, _ = record_module.earlier_sections(out, ("classify", "cartridge", "train"), False)
    assert set(kept) == {"student"}
    # A record of another model keeps none of its measured sections beside this model's:
    # ctcnet-core3's page showed ctcnet-default's crops/s. Nor does one that kept no digest:
    # the page's cartridge figures were of a network retrained since, unsaid.
    earlier["model"] = "ctcnet-default.pt"
    (out / "benchmarks.json").write_text(json.dumps(earlier))
    assert record_module.earlier_sections(out, ("cartridge",), False, "b" * 64) == (
        {"student": {"rows": []}}, {})
    _, when = record_module.earlier_sections(out, ("cartridge",), False)  # (none to compare)
    assert when["training"].endswith("model ctcnet-default.pt (its digest not recorded)")
    earlier["model_sha256"] = "a" * 64
    earlier["software"] = "ctcnet 0.1.0, commit 80972a7dba17"
    earlier["machine"]["cpu_model"] = "family 25 model 17"
    (out / "benchmarks.json").write_text(json.dumps(earlier))
    kept, when = record_module.earlier_sections(out, ("cartridge",), False, "b" * 64)
    assert set(kept) == {"student"} and when == {}
    kept, when = record_module.earlier_sections(out, ("cartridge",), False, "a" * 64)
    assert set(kept) == {"classification", "training", "student"}
    assert when["training"] == "2026-01-01 00:00:00 UTC (`ctcnet benchmark`) on Some CPU " \
        "(family 25 model 17), 2 cores, model ctcnet-default.pt, ctcnet 0.1.0, commit " \
        "80972a7dba17"  # (the code that measured it, as the page's own header names its)
    (out / "benchmarks.json").write_text(json.dumps({**earlier, "quick": True}))
    assert "(`ctcnet benchmark --quick`)" in record_module.earlier_sections(
        out, ("cartridge",), True, "a" * 64)[1]["training"]


def test_the_page_states_the_command_that_made_it():
    """`--sections classify --repeats 1` read `--sections classify` over "Medians over
    repeated runs"; `--quick` read `--quick --frames 2,3`."""
    from ctcnet.benchmark.common import BenchSettings
    from ctcnet.benchmark.render import _repeated, command_arguments

    one = {"sections": ["classify"], "settings": {**vars(BenchSettings()), "repeats": 1,
                                                  "cartridge_repeats": 1, "peer_repeats": 1}}
    assert command_arguments(one) == " --sections classify --repeats 1"
    assert _repeated(one).startswith("Single runs")
    quick = {"sections": ["classify", "cartridge", "train"], "quick": True,
             "settings": vars(BenchSettings.quick_settings())}
    assert command_arguments(quick) == ""
    # --repeats 5: the classification's default, not the cartridges' (3), which ran 5 times
    five = {"sections": ["classify", "cartridge"],
            "settings": {**vars(BenchSettings()), "repeats": 5, "cartridge_repeats": 5}}
    assert command_arguments(five) == " --sections classify,cartridge --repeats 5"
    assert _repeated(quick).startswith("Medians")


def test_the_student_section_says_whether_a_narrower_network_halves_the_time():
    from ctcnet.benchmark.render import render_student

    def rows(*times):
        return [{"width": w, "mflop": 1.0, "ms_per_crop": t, "x_shipped": t / times[0]}
                for w, t in zip((16, 8, 1), times)]

    section = {"created": "now", "command": "python scripts/student_speed.py", "machine": "a CPU",
               "load": "0.1", "crops": 64, "batches": [8], "rounds": 1, "shipped_width": 16}
    text = "\n".join(render_student({**section, "rows": rows(0.3, 0.2, 0.16)}))
    assert "| 16 (shipped) |" in text and "no student halves" in text
    text = "\n".join(render_student({**section, "rows": rows(0.3, 0.14, 0.05)}))
    assert "Widths [8, 1] halve it here" in text


def test_the_crop_folder_section_shows_each_command_and_how_its_memory_grows():
    from ctcnet.benchmark.render import render_crop_sets

    def row(crops, peak, wall, stages):
        return {"crops": crops, "peak_rss_mb": peak, "wall_s": wall, "timings_s": stages}

    entry = {"created": "now", "model": "ctcnet-default", "machine": "a CPU", "note": None}
    text = "\n".join(render_crop_sets({
        "predict": {**entry, "command": "python scripts/crop_set_memory.py",
                    "rows": [row(1000, 450, 10.0, {"read": 2.0}),
                             row(16000, 540, 80.0, {"read": 30.0})]},
        "evaluate": {**entry, "command": "... --command evaluate", "note": "Before: 10 GB.",
                     "rows": [row(1000, 1600, 14.0, {}), row(16000, 1610, 90.0, {})]}}))
    assert "| 16,000 | 540 | 80.0 | 1.88 |" in text  # read: 30 s over 16,000 crops
    assert "From 1,000 to 16,000 crops: peak RSS 1.20x, time per crop 0.50x." in text
    assert "| 16,000 | 1,610 | 90.0 |" in text and "peak RSS 1.01x" in text
    assert "Before: 10 GB." in text and "`ctcnet evaluate` with `ctcnet-default`" in text


def test_a_script_records_its_section_beside_the_benchmark(tmp_path):
    from ctcnet.benchmark.record import record_script_section

    # The project's own record: a section recorded beside it renders with the rest.
    docs = Path(__file__).resolve().parents[2] / "docs"
    earlier = json.loads((docs / "benchmarks.json").read_text())
    (tmp_path / "benchmarks.json").write_text(json.dumps(earlier))
    section = {"created": "now", "command": "python scripts/student_speed.py",
               "machine": "a CPU", "load": "0.1", "crops": 64, "batches": [8], "rounds": 1,
               "shipped_width": 16, "rows": [{"width": 16, "mflop": 24.4,
                                              "ms_per_crop": 0.3, "x_shipped": 1.0}]}
    record_script_section(tmp_path, "student", section)
    assert json.loads((tmp_path / "benchmarks.json").read_text())["student"] == section
    assert "## A narrower student network" in (tmp_path / "benchmarks.md").read_text()


def test_stage_check_fails_a_stage_twice_as_slow_and_passes_the_record():
    from ctcnet.benchmark.stages import compare_ratios

    recorded = {"read": 0.16, "detect": 0.4, "crop": 0.9, "guard": 0.45, "classify": 0.85,
                "write": 1.2, "report": 9.0, "total": 13.0}
    assert compare_ratios(dict(recorded), recorded) == []
    # Within the tolerance (1.4x) passes; a stage twice as slow fails, by name.
    assert compare_ratios({**recorded, "guard": 0.45 * 1.4}, recorded) == []
    failures = compare_ratios({**recorded, "guard": 0.9}, recorded)
    assert len(failures) == 1 and failures[0].startswith("guard:")
    # A stage far cheaper than the model is held to the minimum ratio, not to its own noise...
    assert compare_ratios({**recorded, "read": 0.14}, {"read": 0.02}) == []
    # ...but a recorded stage that was not measured fails.
    assert compare_ratios({"read": 0.1}, {"read": 0.1, "guard": 0.4}) == ["guard: not measured"]


def test_stage_check_verdict_from_a_recorded_file(tmp_path, monkeypatch, caplog):
    # run_check against a record, with the measurement replaced by fixed multiples: the
    # record passes itself, a doctored stage twice as slow (on every attempt) exits 1.
    import logging

    import ctcnet.benchmark.stages as stages

    ratios = {"read": 0.2, "crop": 1.0, "guard": 0.5, "total": 10.0}
    measured = {"events": 300, "model_per_event_ms": 1.0, "batch_size": 8,
                "load_average": None, "ratios": dict(ratios),
                "per_event_ms": dict(ratios)}
    monkeypatch.setattr(stages, "measure_ratios", lambda *a, **k: dict(measured))
    baseline = tmp_path / "stages.json"
    assert stages.run_check(tmp_path / "m.onnx", baseline, record=True) == 0
    assert json.loads(baseline.read_text())["ratios"] == ratios
    assert stages.run_check(tmp_path / "m.onnx", baseline) == 0
    measured["ratios"] = {**ratios, "crop": 2.0}
    with caplog.at_level(logging.ERROR):
        assert stages.run_check(tmp_path / "m.onnx", baseline) == 1
    assert "crop: 2.000x the model floor" in caplog.text
    # Over once and within on the second measurement (a burst of other work): passes.
    answers = iter([{**measured, "ratios": {**ratios, "crop": 2.0}},
                    {**measured, "ratios": dict(ratios), "per_event_ms": dict(ratios)}])
    monkeypatch.setattr(stages, "measure_ratios", lambda *a, **k: next(answers))
    assert stages.run_check(tmp_path / "m.onnx", baseline) == 0
    # A stage kept from an earlier attempt is marked, its row read at that attempt's floor;
    # one a later attempt measured lower again is the later one's, unmarked.
    answers = iter([{**measured, "ratios": {**ratios, "crop": 2.0, "guard": 0.4}},
                    {**measured, "ratios": {**ratios, "crop": 2.0, "guard": 0.45},
                     "model_per_event_ms": 2.0}])
    monkeypatch.setattr(stages, "measure_ratios", lambda *a, **k: next(answers))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert stages.run_check(tmp_path / "m.onnx", baseline) == 1
    assert "* an earlier attempt's measurement" in caplog.text
    marked = [line for line in caplog.text.splitlines() if line.rstrip().endswith(" *")]
    assert len(marked) == 1 and "guard" in marked[0]
    answers = iter([{**measured, "ratios": {**ratios, "crop": 2.0, "guard": 0.4}},
                    {**measured, "ratios": {**ratios, "crop": 2.0, "guard": 0.45}},
                    {**measured, "ratios": {**ratios, "crop": 2.0, "guard": 0.3}}])
    monkeypatch.setattr(stages, "measure_ratios", lambda *a, **k: next(answers))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        stages.run_check(tmp_path / "m.onnx", baseline, attempts=3)
    last = caplog.text.split("measuring again")[-1]
    assert not [line for line in last.splitlines() if line.rstrip().endswith(" *")]


def test_a_stage_check_without_peer_runs_checks_the_rest_not_the_gate(tmp_path, monkeypatch):
    """--peer-runs 0 ("none", as its help says) failed on every machine: the record's
    predict-over-gate ratio read as not measured."""
    import ctcnet.benchmark.stages as stages

    ratios = {"read": 0.2, "guard": 0.5, "total": 10.0, "total_x_peer": 1.5}
    measured = {"events": 300, "model_per_event_ms": 1.0, "batch_size": 8,
                "load_average": None, "ratios": dict(ratios), "per_event_ms": dict(ratios)}
    monkeypatch.setattr(stages, "measure_ratios", lambda *a, **k: json.loads(json.dumps(
        measured)))
    baseline = tmp_path / "stages.json"
    assert stages.run_check(tmp_path / "m.onnx", baseline, record=True) == 0
    del measured["ratios"]["total_x_peer"]
    none = stages.StageCheckSettings(peer_runs=0)
    assert stages.run_check(tmp_path / "m.onnx", baseline, none) == 0
    assert stages.run_check(tmp_path / "m.onnx", baseline) == 1  # asked for and not measured
    measured["ratios"]["guard"] = 2.0  # the rest still checked
    assert stages.run_check(tmp_path / "m.onnx", baseline, none) == 1


def test_a_benchmark_cartridge_repeats_its_frames_on_purpose(clean_run, tmp_path):
    """``ctcnet benchmark`` builds long cartridges from hard links to a few frames: it says
    so in cartridge.json, and every frame is read (a scan never says so)."""
    from ctcnet.benchmark import linked_cartridge

    target = linked_cartridge(clean_run["root"] / "cart", tmp_path / "bench", 7)
    assert all(f.problem is None for f in open_cartridge(target).frames)
    edit_json(target / "cartridge.json", repeated_frames=False)  # an older benchmark folder
    copies = [f for f in open_cartridge(target).frames if f.problem]
    assert len(copies) == 4 and "same bytes as frame" in copies[0].problem
    linked_cartridge(clean_run["root"] / "cart", target, 7)  # kept, and marked again
    assert all(f.problem is None for f in open_cartridge(target).frames)


def test_a_machine_is_held_to_its_own_cpus_record_and_others_to_the_largest():
    from ctcnet.benchmark.stages import compare_ratios, recorded_ratios, with_machine

    first = {"machine": {"cpu": "A"}, "measured": "day 1", "ratios": {"guard": 0.71, "crop": 0.47}}
    second = {"machine": {"cpu": "B"}, "measured": "day 2", "events": 302,
              "ratios": {"guard": 1.02, "crop": 0.40}}
    merged = with_machine(first, second)
    assert merged["ratios"] == {"guard": 1.02, "crop": 0.47}
    assert [m["measured"] for m in merged["machines"]] == ["day 1", "day 2"]
    # Recorded again on B: its entry replaced, not added to.
    again = with_machine(merged, {**second, "measured": "day 3", "ratios": {"guard": 0.9,
                                                                              "crop": 0.5}})
    assert [m["measured"] for m in again["machines"]] == ["day 1", "day 3"]
    assert again["ratios"] == {"guard": 0.9, "crop": 0.5}
    # Each machine against its own record: a guard twice as slow on A is caught there.
    assert recorded_ratios(merged, {"cpu": "A"}) == first["ratios"]
    assert compare_ratios({"guard": 1.4, "crop": 0.47}, recorded_ratios(merged, {"cpu": "A"}))
    assert not compare_ratios(second["ratios"], recorded_ratios(merged, {"cpu": "B"}))
    # A CPU never recorded: the largest of them.
    assert recorded_ratios(merged, {"cpu": "C"}) == {"guard": 1.02, "crop": 0.47}


def test_cpus_of_one_name_and_another_model_keep_records_of_their_own():
    """Two generations sold under one name ("AMD EPYC") compare numpy with onnxruntime
    differently: each is held to its own record, and a model not recorded to the largest of
    the name's records (one taken before models were told apart is older code's)."""
    from ctcnet.benchmark.stages import recorded_ratios, with_machine

    by_name = {"machine": {"cpu": "A"}, "measured": "day 1", "ratios": {"crop": 0.47}}
    newer = {"machine": {"cpu": "A", "cpu_model": "family 25 model 17"}, "measured": "day 2",
             "ratios": {"crop": 0.81}}
    merged = with_machine(by_name, newer)
    assert [m["measured"] for m in merged["machines"]] == ["day 1", "day 2"]
    assert recorded_ratios(merged, newer["machine"]) == {"crop": 0.81}
    assert recorded_ratios(merged, {"cpu": "A", "cpu_model": "family 25 model 1"}) == \
        {"crop": 0.81}
    older = {"machine": {"cpu": "A", "cpu_model": "family 23 model 49"}, "measured": "day 2",
             "ratios": {"crop": 0.5, "guard": 1.9}}
    assert recorded_ratios(with_machine(merged, older), {"cpu": "A", "cpu_model": "other"}) == \
        {"crop": 0.81, "guard": 1.9}
    assert recorded_ratios(merged, {"cpu": "B", "cpu_model": "family 6 model 85"}) == \
        {"crop": 0.81}
    # The newer model recorded again replaces its own entry only.
    again = with_machine(merged, {**newer, "measured": "day 3"})
    assert [m["measured"] for m in again["machines"]] == ["day 1", "day 3"]


def test_a_workdir_kept_from_a_run_of_other_settings_is_not_read_as_this_ones(tmp_path):
    """A --workdir kept from a --quick run held its small cartridge under the name a full run
    reads: the full run's record showed it as 1384 x 1036 frames. Another base is drawn again,
    and a cartridge linked from another base made again."""
    import json

    from ctcnet.benchmark import BenchSettings
    from ctcnet.benchmark.cartridges import linked_cartridge, simulate_base_cartridge

    quick = BenchSettings.quick_settings()
    base = simulate_base_cartridge(tmp_path / "sim-2", 2, quick)
    linked = linked_cartridge(base, tmp_path / "cartridge-2", 2)
    first = json.loads((linked / "cartridge.json").read_text())["made_of"]
    other = BenchSettings.quick_settings()
    other.events_per_frame = quick.events_per_frame + 5
    again = simulate_base_cartridge(tmp_path / "sim-2", 2, other)
    assert json.loads((again / "simulated_with.json").read_text())["events_per_frame"] == \
        quick.events_per_frame + 5
    relinked = linked_cartridge(again, tmp_path / "cartridge-2", 2)
    assert json.loads((relinked / "cartridge.json").read_text())["made_of"] != first


def test_bad_benchmark_options_are_refused_before_any_measuring(tmp_path, capsys):
    """--repeats 0 or -1 (a traceback), --sections '' (an empty record marked complete), an
    --out that is a file (a traceback after the measuring): refused in a line, first."""
    from ctcnet.cli import main

    for args in (["--repeats", "0"], ["--repeats", "-1"]):
        with pytest.raises(SystemExit):
            main(["benchmark", *args])
    assert main(["benchmark", "--sections", ""]) == 2
    (tmp_path / "afile").write_text("")
    assert main(["benchmark", "--quick", "--out", str(tmp_path / "afile")]) == 2
    assert main(["benchmark", "--frames", "0", "--out", str(tmp_path / "o")]) == 2
    # --frames with no cartridge section; an ONNX file (timed by predict, not here)
    assert main(["benchmark", "--sections", "classify", "--frames", "3",
                 "--out", str(tmp_path / "o")]) == 2
    assert main(["benchmark", "--model", str(tmp_path / "x.onnx"), "--out",
                 str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()
    assert "is not a folder" in capsys.readouterr().err


def test_the_pace_line_says_the_peak_memory_of_every_configuration_measured():
    """"peak RSS at most 637 MB (aim: 1,000 MB)" stood beside --frame-pool processes at
    1,046 MB in the table above it: the aim read as met where auto's choice on a larger
    machine missed it."""
    from ctcnet.benchmark.render_stages import render_targets

    stage = {"read": {"x_floor": 1.2}}
    rows = [{"frames": 10, "peak_rss_mb": 600.0, "stage_table": stage,
             "configs": {"--frame-pool processes": {"peak_rss_mb": 1046.0},
                         "--saliency": {"peak_rss_mb": 750.0}}},
            {"frames": 175, "peak_rss_mb": 637.0, "stage_table": stage,
             "ratios_to_floor": {"total_to_model": 2.03}}]
    line = render_targets({"rows": rows})[-1]
    assert "peak RSS at most 637 MB with the defaults (1,046 MB with --frame-pool processes) " \
        "(aim: 1,000 MB)" in line
    rows[0]["configs"] = {"--saliency": {"peak_rss_mb": 500.0}}
    assert "peak RSS at most 637 MB with the defaults (aim: 1,000 MB)" in \
        render_targets({"rows": rows})[-1]


def test_the_page_says_which_figures_are_medians_and_which_single_runs():
    """The header said every figure was a median over repeats: the classic gate, run once by
    default, read "48.1 (48.1-48.1)" under it, and --quick's middle size too."""
    from dataclasses import asdict

    from ctcnet.benchmark.common import BenchSettings
    from ctcnet.benchmark.render import _repeated

    full = _repeated({"settings": asdict(BenchSettings())})
    assert "classification (5 runs), the middle cartridge size's defaults (3 runs); single " \
        "runs: the cartridge section's other sizes and settings, the peers" in full
    quick = _repeated({"settings": asdict(BenchSettings.quick_settings())})
    assert "classification (2 runs); single runs:" in quick and "defaults, the peers" in quick
    assert _repeated({"settings": {"repeats": 1, "cartridge_repeats": 1,
                                   "peer_repeats": 1}}).startswith("Single runs")
