"""Slide-scale inference on small simulated cartridges: outputs, resume, bad input, backends."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import predict_args, run_cli, save_tiny_model

from ctcnet.detect.truth_matching import detection_recall
from ctcnet.errors import PanelMismatchError
from ctcnet.inference.backends import load_backend
from ctcnet.inference.batcher import CrossFrameBatcher
from ctcnet.inference.distributed import stable_rank
from ctcnet.inference.frames import FrameWork
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.inference.summary import RunSummary
from ctcnet.io.panel import load_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.report import gallery_pages, run_report

REPO = Path(__file__).resolve().parents[2]
CROP = 64  # small crops keep the untrained model fast; the pipeline does not care
QUIET = dict(quiet=True, workers=1)
REPORTED = dict(QUIET, report=run_report)  # gallery and index.html, as ctcnet predict draws them
SHIPPED = REPO / "models" / "ctcnet-default.pt"


def make_model(path, panel, crop=CROP):
    return save_tiny_model(path, crop_size=crop, panel=panel)[0]


def simulate(root, seed=3, frames=3, sample_id=None):
    from ctcnet.simulate import simulate_cartridge

    return simulate_cartridge(root, load_panel(None), num_frames=frames, frame_shape=(256, 320),
                              seed=seed, events_per_frame=25, sample_id=sample_id,
                              rare_rates={"ctc": 0.2, "cluster": 0.1})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("predict")
    truth = simulate(base / "cart")
    model = make_model(base / "model.pt", load_panel(None))
    backend = load_backend(model, device="cpu", batch_size=32)
    reference = predict_cartridge(base / "cart", backend, base / "ref",
                                  PredictOptions(**REPORTED))
    return {"base": base, "cart": base / "cart", "truth": truth, "model": model,
            "backend": backend, "ref_dir": base / "ref", "ref": reference}


def read_events(out_dir):
    return pd.read_parquet(Path(out_dir) / "events.parquet")


def test_outputs_per_cartridge(setup):
    out, summary, truth = setup["ref_dir"], setup["ref"], setup["truth"]
    for name in ("events.csv", "events.parquet", "summary.json", "index.html"):
        assert (out / name).is_file(), name
    events = read_events(out)
    csv = pd.read_csv(out / "events.csv")
    assert len(csv) == len(events) == summary.events > 0
    assert events["event_id"].tolist() == list(range(len(events)))
    names = setup["backend"].spec.class_names
    for col in ["frame", "x", "y", "bbox_x0", "bbox_y1", "area_px", "class", "review",
                "edge_cut", "padded", *[f"mean_{n}" for n in load_panel(None).names],
                *[f"p_{n}" for n in names]]:
        assert col in events.columns, col
    proba = events[[f"p_{n}" for n in names]].to_numpy()
    assert np.allclose(proba.sum(axis=1), 1.0, atol=1e-4)
    assert (events["model_class"] == np.array(names)[proba.argmax(1)]).all()
    # Events cut by the frame border are filed as debris (not intact); others keep the call.
    edge = events["edge_cut"].to_numpy()
    assert edge.any() and (events["class"][edge] == "debris").all()
    assert (events["class"][~edge] == events["model_class"][~edge]).all()
    assert (events["review"] == (proba.max(1) < setup["backend"].spec.review_threshold)).all()
    # Summary agrees with the table; per 7.5 mL follows the blood volume.
    on_disk = json.loads((out / "summary.json").read_text())
    assert RunSummary.read(out) == summary  # the typed record round-trips through the JSON
    # Calls the marker guard holds for review are counted apart, not in the counts.
    held = int((events["guard"].fillna("") != "").sum())
    assert sum(on_disk["counts"].values()) + held == len(events)
    assert on_disk["guard"]["flagged"] == held
    assert on_disk["per_7_5_ml"]["ctc"] == pytest.approx(
        on_disk["counts"]["ctc"] * 7.5 / on_disk["blood_volume_ml"])
    assert on_disk["frames"] == {"total": 3, "processed": 3, "skipped": 0,
                                 "resumed_from_journal": 0, "missing": 0,
                                 "expected_stated": True}
    assert set(on_disk["timings_s"]) >= {"read", "detect", "crop", "classify", "write", "total"}
    assert on_disk["model"]["arch"] == "compact" and on_disk["panel"]["channels"]
    # Every gallery page listed exists; every page is a real PNG.
    pages = [p["path"] for g in on_disk["gallery"].values() for p in g["pages"]]
    assert pages and all((out / p).is_file() for p in pages)
    from PIL import Image

    with Image.open(out / pages[0]) as im:
        assert im.width > CROP * 6 and im.height > CROP
    # Detection found the simulated events; the summary reports the same figure.
    scan_pixel_um = json.loads((setup["cart"] / "panel.json").read_text())["pixel_size_um"]
    recall = detection_recall(events, truth, pixel_size_um=scan_pixel_um)
    assert recall["recall"] >= 0.85, recall
    assert on_disk["ground_truth"]["detection"]["recall"] == pytest.approx(recall["recall"])
    assert on_disk["ground_truth"]["true_counts"] == {
        n: int((truth["class"] == n).sum()) for n in names}


def test_gallery_has_a_saliency_row_only_when_asked(setup, tmp_path, capsys):
    # By default a gallery tile is one row (channels and overlay) and no saliency is computed;
    # --saliency adds the per-channel saliency row under it (the review server draws the same
    # row on demand).
    def tile_rows(*flag):
        out = tmp_path / ("with" if flag else "without")
        status, err = run_cli(capsys, "predict", setup["cart"], "--out", out, "--model",
                              setup["model"], "--device", "cpu", "--quiet", "--workers", "0",
                              *flag)
        assert status == 0, err
        summary = json.loads(next(out.glob("*/summary.json")).read_text())
        return {(cat, p["path"]): (p["height"] - gallery_pages.LABEL_HEIGHT) / len(p["event_ids"])
                for cat, g in summary["gallery"].items() for p in g["pages"]}

    plain, salient = tile_rows(), tile_rows("--saliency")
    assert plain and plain.keys() == salient.keys()
    assert all(salient[k] - plain[k] >= CROP for k in plain), (plain, salient)


def test_resume_after_interruption_loses_and_duplicates_nothing(setup, tmp_path):
    class Stop(Exception):
        pass

    def stop_after_first(frame_id):
        raise Stop(frame_id)

    out = tmp_path / "run"
    with pytest.raises(Stop):
        predict_cartridge(setup["cart"], setup["backend"], out,
                          PredictOptions(**QUIET, on_frame_done=stop_after_first))
    assert len(list((out / "parts").glob("*.parquet"))) == 1
    assert not (out / "events.csv").exists()
    summary = predict_cartridge(setup["cart"], setup["backend"], out, PredictOptions(**QUIET))
    assert summary.frames.resumed_from_journal == 1
    pd.testing.assert_frame_equal(read_events(out), read_events(setup["ref_dir"]))
    # The leak check reads every frame's kept ratios, the resumed ones' from the journal.
    assert summary.leak_check == setup["ref"].leak_check
    assert setup["ref"].leak_check["beyond"] == []


def test_a_scan_copied_in_a_frame_at_a_time_reads_the_leak_of_a_scan_copied_whole(
        setup, tmp_path, monkeypatch):
    """A scan copied in while the nightly job ran: frames journaled when fewer had arrived
    read a larger share of their CK-bright events, and the leak check (with the CTC calls a
    scan's leak holds) read more of them than a run of the whole scan; it reads the same
    ones now."""
    import shutil

    # (a few events a frame: this small scan's frames hold fewer CK-bright ones than a share)
    monkeypatch.setattr("ctcnet.inference.leak_sample.LEAK_CHECK_EVENTS", 6)
    whole = predict_cartridge(setup["cart"], setup["backend"], tmp_path / "whole",
                              PredictOptions(**QUIET))
    staged = tmp_path / "staged"
    shutil.copytree(setup["cart"], staged)
    later = sorted(staged.glob("r*.tif"))[1:]
    for frame in later:
        frame.rename(tmp_path / frame.name)
    predict_cartridge(staged, setup["backend"], tmp_path / "run", PredictOptions(**QUIET))
    for frame in later:
        (tmp_path / frame.name).rename(staged / frame.name)
    again = predict_cartridge(staged, setup["backend"], tmp_path / "run",
                              PredictOptions(**QUIET))
    assert again.frames.resumed_from_journal == 1
    assert again.leak_check == whole.leak_check and whole.leak_check["measured_on"] > 0


def test_ctc_calls_needing_more_leak_than_the_scan_allows_are_held_not_counted(
        setup, tmp_path, monkeypatch):
    """Every counted ``ctc`` call carries the CK leak its CD45 needs; with the scan's allowance
    under it, the call is held as ``cd45_positive``: shown, out of the count, said in the
    summary's leak check. (The reference run holds none it should not.)"""
    ref = read_events(setup["ref_dir"])
    allowance = setup["ref"].leak_check["ctc_cd45_allowance"]
    counted = ref[(ref["class"] == "ctc") & (ref["guard"] == "")]
    read = counted["cd45_leak_needed"].notna()  # (not a split object's whole: its own test)
    assert read.sum() >= len(counted) - 2 > 0
    assert ref.loc[ref["cd45_leak_needed"].notna(), "class"].eq("ctc").all()
    if allowance is not None:
        assert (counted["cd45_leak_needed"] <= allowance).all()
    monkeypatch.setattr("ctcnet.inference.ctc_repeats.ctc_cd45_allowance",
                        lambda checked, panel: -1.0)  # (every reading over it)
    summary = predict_cartridge(setup["cart"], setup["backend"], tmp_path / "run",
                                PredictOptions(**QUIET))
    events = read_events(tmp_path / "run")
    held = events["guard"].eq("cd45_positive") & events["cd45_leak_needed"].notna()
    assert held.sum() == read.sum() == summary.leak_check["ctc_held_over_leak"]
    assert events.loc[held, "review"].all() and events.loc[held, "class"].eq("ctc").all()
    assert summary.counts["ctc"] == len(counted) - read.sum() < setup["ref"].counts["ctc"]
    assert summary.leak_check["ctc_cd45_allowance"] == -1.0
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["counts"]["ctc"] == summary.counts["ctc"]


def test_a_scan_whose_ck_leaks_past_the_guards_allowance_is_warned_of(setup, tmp_path,
                                                                       caplog):
    """An instrument whose CK leaks 30 % into CD45 (the guard allows 12 %): the run measures
    the leak on its CK-bright events, records it and warns, naming what to do."""
    from ctcnet.simulate import SimConfig, simulate_cartridge

    simulate_cartridge(tmp_path / "leaky", load_panel(None), num_frames=3,
                       frame_shape=(256, 320), seed=8, events_per_frame=40,
                       rare_rates={"ctc": 0.3}, sample_id="leaky",
                       config=SimConfig(instrument_bleed=(("CK", "CD45", 0.30),)))
    summary = predict_cartridge(tmp_path / "leaky", setup["backend"], tmp_path / "run",
                                PredictOptions(**QUIET))
    check = json.loads((tmp_path / "run" / "summary.json").read_text())["leak_check"]
    assert check == summary.leak_check and check["beyond"] == ["CD45"]
    assert check["leaks"]["CD45"] == pytest.approx(0.3, abs=0.03)
    assert check["allowance"]["CD45"] == 0.12
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("leaky: CK leaks 3" in m and "ctcnet finetune" in m for m in said), said
    # The count is not to be trusted alone: the run is partial, with the reason.
    assert summary.status == "partial"
    assert any("into CD45, past the marker guard's 12%" in p for p in summary.problems)


_SLOW_RUN = """
import sys, time
import ctcnet.inference.frame_workers as P
original = P.prepare_frame
def slow(*args, **kwargs):
    time.sleep(0.4)  # give the test time to kill the run between frames
    return original(*args, **kwargs)
P.prepare_frame = slow
from ctcnet.cli import main
sys.exit(main(sys.argv[1:]))
"""


# The first frame at its pace, every later one held until the run is stopped (at most a
# minute): a loaded machine no longer finishes the run before the test's signal reaches it.
_HELD_RUN = """
import sys, time
import ctcnet.inference.frame_workers as P
original, seen = P.prepare_frame, []
def held(*args, **kwargs):
    seen.append(1)
    if len(seen) > 1:
        time.sleep(60)
    return original(*args, **kwargs)
P.prepare_frame = held
from ctcnet.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_kill(setup, tmp_path):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", _SLOW_RUN, "predict", str(setup["cart"]), "--model",
           str(setup["model"]), "--out", str(out), "--device", "cpu", "--quiet",
           "--workers", "0", "--batch-size", "32"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    from ctcnet.inference.frames import journaled_frames

    parts = out / "sim3" / "parts"

    def journaled() -> list:
        """The parts written with their frame's record: a part killed before its record is
        done again (so counted here, a loaded machine failed the test, not the resume)."""
        records = journaled_frames(parts)
        return [p for p in parts.glob("r*.parquet") if p.stem in records]

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if journaled():
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = journaled()
    assert 1 <= len(done) < 3
    assert not (out / "sim3" / "events.csv").exists()
    summary = predict_cartridge(setup["cart"], setup["backend"], out / "sim3",
                                PredictOptions(**QUIET))
    assert summary.frames.resumed_from_journal == len(done)
    pd.testing.assert_frame_equal(read_events(out / "sim3"), read_events(setup["ref_dir"]))


def test_a_scheduler_stop_is_an_interrupt_said_and_resumed(setup, tmp_path):
    """SIGTERM (cron, SLURM, systemd stop a job so) stops a run as Ctrl-C does: the journal
    closed on the frames done, one line saying the same command resumes, exit 143; the rerun
    takes the frames done from the journal."""
    out = tmp_path / "stopped"
    cmd = [sys.executable, "-c", _HELD_RUN, "predict", str(setup["cart"]), "--model",
           str(setup["model"]), "--out", str(out), "--device", "cpu", "--quiet",
           "--workers", "0", "--batch-size", "32"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    parts = out / "sim3" / "parts"
    from ctcnet.inference.frames import journaled_frames

    def journaled() -> list:
        """The parts with their frame's record: a part the signal catches before its record
        is done again (a loaded machine failed the test there, not the resume)."""
        records = journaled_frames(parts)
        return [p for p in parts.glob("r*.parquet") if p.stem in records]

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not journaled():
        time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == \
        "ctcnet predict: stopped (SIGTERM); the same command resumes where it stopped"
    done = journaled()
    assert 1 <= len(done) < 3 and not (out / "sim3" / "summary.json").exists()
    summary = predict_cartridge(setup["cart"], setup["backend"], out / "sim3",
                                PredictOptions(**QUIET))
    assert summary.frames.resumed_from_journal == len(done)
    pd.testing.assert_frame_equal(read_events(out / "sim3"), read_events(setup["ref_dir"]))


def test_journal_of_another_model_is_refused(setup, tmp_path):
    from ctcnet.errors import InputError

    out = tmp_path / "run"
    predict_cartridge(setup["cart"], setup["backend"], out, PredictOptions(**QUIET, report=False))
    other = load_backend(make_model(tmp_path / "other.pt", load_panel(None), crop=48),
                         device="cpu")
    with pytest.raises(InputError, match="another model"):
        predict_cartridge(setup["cart"], other, out, PredictOptions(**QUIET))
    summary = predict_cartridge(setup["cart"], other, out,
                                PredictOptions(**QUIET, overwrite=True, report=False))
    assert summary.frames.resumed_from_journal == 0


def _without_table_columns(run: dict) -> None:
    run.pop("table_columns")


def _without_a_guard_level(run: dict) -> None:
    run["guard"].pop("markers_cd45_band")


@pytest.mark.parametrize("earlier_run, match", [
    # An earlier ctcnet's parts hold other columns: not resumed into events files it cannot
    # assemble.
    (_without_table_columns, r"another version's event columns or of another scan \(it "
                             r"differs in table_columns\).*--overwrite"),
    # Frames whose flags and markers' calls were made under other guard levels are not mixed
    # into one count; the refusal names the level.
    (_without_a_guard_level, r"other settings.*differs in guard \(markers_cd45_band\)"
                             r".*--overwrite"),
])
def test_journal_of_an_earlier_ctcnet_is_refused(setup, tmp_path, earlier_run, match):
    """A journal an earlier ctcnet wrote (other event columns, other guard levels) of a run
    it did not finish is refused with the way out (one it finished is kept as it is:
    tests/inference/test_finished_runs.py)."""
    from ctcnet.errors import InputError

    out = tmp_path / "run"
    predict_cartridge(setup["cart"], setup["backend"], out, PredictOptions(**QUIET, report=False))
    manifest = out / "parts" / "run.json"
    earlier = json.loads(manifest.read_text())
    earlier_run(earlier)
    manifest.write_text(json.dumps(earlier))
    (out / "summary.json").unlink()  # stopped before its summary: not finished
    with pytest.raises(InputError, match=match):
        predict_cartridge(setup["cart"], setup["backend"], out, PredictOptions(**QUIET))


def test_bad_frames_are_skipped_with_reasons(setup, tmp_path, capsys):
    cart = tmp_path / "cart"
    shutil.copytree(setup["cart"], cart)
    frames = sorted(cart.glob("r*.tif"))
    data = frames[1].read_bytes()
    frames[1].write_bytes(data[: len(data) // 3])          # truncated: corrupt
    frames[2].unlink()                                     # missing
    summary = predict_cartridge(cart, setup["backend"], tmp_path / "out",
                                PredictOptions(**{**REPORTED, "quiet": False}))
    assert summary.frames.skipped == 1
    # The progress (plain lines: stderr is no terminal here) says a frame is skipped, not
    # just "2 of 2 (100 %)".
    progress = [line for line in capsys.readouterr().err.splitlines() if " of 2 (" in line]
    assert progress and "2 of 2 (100 %)" in progress[-1]
    assert "events, 1 frame skipped, " in progress[-1]
    assert summary.skipped_frames[0]["frame"] == frames[1].stem
    assert "corrupt or truncated" in summary.skipped_frames[0]["reason"]
    assert any("3 frames" in p for p in summary.problems)  # cartridge.json lists 3
    events = read_events(tmp_path / "out")
    ref = read_events(setup["ref_dir"])
    # The intact frame's events are exactly those of the full run.
    keep = ref["frame_id"] == frames[0].stem
    pd.testing.assert_frame_equal(
        events.drop(columns="event_id").reset_index(drop=True),
        ref[keep].drop(columns="event_id").reset_index(drop=True), check_dtype=False)
    html = (tmp_path / "out" / "index.html").read_text()
    assert frames[1].stem in html and "Skipped frames" in html
    # The page leads with whether its numbers may be read: partial, before any of them.
    assert html.index('data-state="partial"') < html.index('id="counts"')
    assert "PARTIAL: 1 of 3 frames read" in html and "Research use only" in html
    # The command it names is set as code, not shown with the console's backticks.
    assert "<code>ctcnet review</code>" in html and "`" not in html
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["result_state"][
        "state"] == "partial"


def test_panel_mismatch_stops_before_any_work(setup, tmp_path):
    # The model needs VIM, which the five-channel cartridge lacks: refused by name, no output.
    needs_vim = load_panel({"channels": ["DAPI", "CK", "CD45", "VIM"], "pixel_size_um": 0.64})
    backend = load_backend(make_model(tmp_path / "m3.pt", needs_vim), device="cpu")
    out = tmp_path / "out"
    with pytest.raises(PanelMismatchError, match=r"lacks \['VIM'\]"):
        predict_cartridge(setup["cart"], backend, out, PredictOptions(**QUIET))
    assert not out.exists()
    from ctcnet.cli import main

    assert main(["predict", str(setup["cart"]), "--model", str(tmp_path / "m3.pt"),
                 "--out", str(out), "--quiet"]) == 2
    assert not out.exists()


def test_cli_runs_in_process_and_accepts_a_folder_of_cartridges(setup, tmp_path, capsys):
    from ctcnet.cli import main

    folder = tmp_path / "cartridges"
    folder.mkdir()
    shutil.copytree(setup["cart"], folder / "a")
    rc = main(["predict", str(folder), "--model", str(setup["model"]), "--out",
               str(tmp_path / "out"), "--device", "cpu", "--quiet", "--no-report"])
    assert rc == 0
    assert capsys.readouterr().out == ""  # --quiet: no progress bar, no summary lines
    assert len(read_events(tmp_path / "out" / "sim3")) == setup["ref"].events


def test_crop_dataset_input(setup, tmp_path):
    from ctcnet.cli import main
    from ctcnet.simulate import simulate_crops, write_crop_batch

    batch = simulate_crops(3, load_panel(None), crop_size=CROP, seed=1)
    write_crop_batch(batch, tmp_path / "crops", load_panel(None))
    assert main(["predict", str(tmp_path / "crops"), "--model", str(setup["model"]), "--out",
                 str(tmp_path / "out"), "--quiet"]) == 0
    table = pd.read_csv(tmp_path / "out" / "crops" / "predictions.csv")
    assert len(table) == len(batch.labels)
    summary = json.loads((tmp_path / "out" / "crops" / "summary.json").read_text())
    assert summary["decision_log_weights"] == {}  # the tiny model has no prevalence rule
    assert set(table["class"]) <= set(default_taxonomy().names)
    # Every crop's call is in the summary: counted, or held for review by the guard.
    held = table["guard"].fillna("").astype(str) != ""
    for name in default_taxonomy().names:
        calls = table["class"] == name
        assert summary["counts"][name] == int((calls & ~held).sum())
        assert summary["held"][name] == int((calls & held).sum())
    # A crop folder named like a file the run writes at the top of --out is refused by name,
    # before any work (its folder would be that file).
    (tmp_path / "crops").rename(tmp_path / "run.json")
    assert main(["predict", str(tmp_path / "run.json"), "--model", str(setup["model"]),
                 "--out", str(tmp_path / "out2"), "--quiet"]) == 2
    assert not (tmp_path / "out2" / "run.json").exists()


def test_cross_frame_batcher_returns_each_frame_its_own_rows():
    # Each crop carries its global number; the fake model returns it as "probability".
    sizes = [0, 3, 5, 0, 1, 7]
    start = np.cumsum([0] + sizes)[:-1]
    calls = []

    def classify(x):
        calls.append(len(x))
        return np.stack([x[:, 0, 0, 0], -x[:, 0, 0, 0]], axis=1)

    batcher = CrossFrameBatcher(classify, batch_size=4)
    got = []
    for k, (n, s) in enumerate(zip(sizes, start)):
        crops = np.arange(s, s + n, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2),
                                                                                     np.float32)
        batcher.add(FrameWork(frame=k, events=pd.DataFrame({"i": np.arange(n)}), crops=crops))
        got += batcher.ready()
    got += batcher.ready(final=True)
    assert [w.frame for w, _ in got] == list(range(len(sizes)))
    for (_, proba), n, s in zip(got, sizes, start):
        if n:
            assert proba[:, 0].tolist() == list(range(s, s + n))
        else:
            assert proba is None
    assert all(c % 4 == 0 for c in calls[:-1]) and sum(calls) == sum(sizes)


@pytest.mark.slow  # the torch -> ONNX export alone takes 5-20 s on a shared 2-core CPU
def test_onnx_and_torch_backends_give_the_same_classes(setup, tmp_path):
    export = pytest.importorskip("ctcnet.deploy.export")
    onnx_path = tmp_path / "model.onnx"
    export.export_onnx(setup["model"], onnx_path)
    onnx = load_backend(onnx_path, device="cpu", batch_size=32)
    assert onnx.name == "onnx"
    predict_cartridge(setup["cart"], onnx, tmp_path / "onnx", PredictOptions(**QUIET,
                                                                             report=False))
    a, b = read_events(setup["ref_dir"]), read_events(tmp_path / "onnx")
    assert len(a) == len(b)
    names = setup["backend"].spec.class_names
    pa, pb = a[[f"p_{n}" for n in names]].to_numpy(), b[[f"p_{n}" for n in names]].to_numpy()
    assert np.abs(pa - pb).max() < 1e-3
    # Identical calls except where the top two probabilities tie within float noise.
    top2 = np.sort(pa, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 1e-3
    assert (a["class"][clear] == b["class"][clear]).all()


def test_torch_frame_path_gives_the_same_events_and_calls(setup, tmp_path, monkeypatch):
    # The GPU path's detection and cropping (ctcnet.detect.device), run on CPU tensors.
    import ctcnet.inference.frames as frames

    measured = frames.frame_background

    def numpy_only(pixels):  # (a CUDA tensor has no numpy view: every frame failed on a GPU)
        assert isinstance(pixels, np.ndarray), type(pixels)
        return measured(pixels)

    monkeypatch.setattr(frames, "frame_background", numpy_only)
    summary = predict_cartridge(setup["cart"], setup["backend"], tmp_path / "torch-frames",
                                PredictOptions(**QUIET, report=False, frame_device="cpu"))
    a, b = read_events(setup["ref_dir"]), read_events(tmp_path / "torch-frames")
    assert summary.counts == setup["ref"].counts
    assert len(a) == len(b) > 0
    assert (a[["frame", "bbox_x0", "bbox_y0", "area_px", "class"]].to_numpy()
            == b[["frame", "bbox_x0", "bbox_y0", "area_px", "class"]].to_numpy()).all()
    names = setup["backend"].spec.class_names
    pa, pb = a[[f"p_{n}" for n in names]].to_numpy(), b[[f"p_{n}" for n in names]].to_numpy()
    assert np.abs(pa - pb).max() < 1e-4


BOX = ["frame", "bbox_x0", "bbox_y0", "bbox_x1", "bbox_y1", "area_px"]


def matched_events(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The events of two runs of one cartridge that both found, row for row. A merged object's
    members replace it when one of them is called a CTC and the whole is not, so where the
    model's probabilities differ in float rounding (fp16 on a GPU) a borderline call may keep
    the whole in one run and its members in the other; every other event is found by both."""
    keys = [tuple(r) for r in a[BOX].to_numpy().tolist()], \
        [tuple(r) for r in b[BOX].to_numpy().tolist()]
    common = set(keys[0]) & set(keys[1])
    only = [[k for k in ks if k not in common] for ks in keys]
    unpaired = [k for side in only for k in side]
    for side, other in ((only[0], only[1]), (only[1], only[0])):
        for f, x0, y0, x1, y1, area in side:
            # A part of the other run's whole, or a whole holding the other run's parts.
            assert any(g == f and ((gx0 <= x0 and gy0 <= y0 and x1 <= gx1 and y1 <= gy1)
                                   or (x0 <= gx0 and y0 <= gy0 and gx1 <= x1 and gy1 <= y1))
                       for g, gx0, gy0, gx1, gy1, _ in other), (f, x0, y0, x1, y1, area)
    assert len(unpaired) <= 0.1 * len(a)
    rows = [[k in common for k in ks] for ks in keys]
    return a[rows[0]].reset_index(drop=True), b[rows[1]].reset_index(drop=True)


def test_matched_events_pairs_a_whole_with_its_members():
    # As one H200 ran the gpu test's cartridge: the model on CPU kept three members of a
    # merged object, on CUDA (fp16) the whole; the other events were found by both.
    members = [[2, 104, 72, 128, 112, 832], [2, 128, 60, 164, 120, 1648],
               [2, 156, 84, 180, 120, 704]]
    whole, shared = [[2, 104, 60, 180, 120, 3184]], [[r, 0, 0, 8, 8, 40] for r in range(40)]
    table = lambda rows: pd.DataFrame(rows, columns=BOX).assign(p=range(len(rows)))  # noqa: E731
    a, b = matched_events(table(shared + members), table(shared + whole))
    assert len(a) == len(b) == 40 and a["p"].tolist() == b["p"].tolist()
    with pytest.raises(AssertionError):  # an event found in one run only, and no whole of it
        matched_events(table(shared + members), table(shared + [[1, 300, 300, 310, 310, 9]]))


@pytest.mark.gpu
def test_cuda_path_matches_cpu(setup, tmp_path):
    # Small batches, so several go through the two pinned staging buffers in turn; frames are
    # detected and cropped on the GPU (frame_device "auto").
    gpu = load_backend(setup["model"], device="cuda", batch_size=16)
    summary = predict_cartridge(setup["cart"], gpu, tmp_path / "gpu",
                                PredictOptions(**QUIET, report=False))
    assert summary.device.startswith("cuda")
    a, b = matched_events(read_events(setup["ref_dir"]), read_events(tmp_path / "gpu"))
    names = setup["backend"].spec.class_names
    pa, pb = a[[f"p_{n}" for n in names]].to_numpy(), b[[f"p_{n}" for n in names]].to_numpy()
    assert np.abs(pa - pb).max() < 2e-2  # fp16 autocast on the GPU
    top2 = np.sort(pa, axis=1)[:, -2:]
    clear = (top2[:, 1] - top2[:, 0]) > 0.05
    assert (a["class"][clear] == b["class"][clear]).all()


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed "
                    "(apt-get install chromium)")
def test_html_page_renders_every_image_in_chromium(setup):
    page = setup["ref_dir"] / "index.html"
    result = subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
         page.as_uri()], capture_output=True, text=True, timeout=120)
    dom = result.stdout
    pages = [p for g in setup["ref"].gallery.values() for p in g["pages"]]
    assert f'data-images-total="{len(pages)}"' in dom, result.stderr[-2000:]
    assert 'data-images-ok="yes"' in dom


@pytest.mark.slow  # starts two Python processes that import torch
def test_two_processes_share_the_cartridges(setup, tmp_path):
    # Two cartridges, two CPU processes under torchrun: each cartridge done exactly once.
    for name in ("a", "b"):
        shutil.copytree(setup["cart"], tmp_path / "in" / name)
        info = json.loads((tmp_path / "in" / name / "cartridge.json").read_text())
        info["sample_id"] = f"sample_{name}"
        (tmp_path / "in" / name / "cartridge.json").write_text(json.dumps(info))
    env = dict(os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "ctcnet", "predict", str(tmp_path / "in"),
           "--model", str(setup["model"]), "--out", str(tmp_path / "out"), "--device", "cpu",
           "--quiet", "--no-report", "--workers", "0"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["world_size"] == 2
    assert sorted(e["name"] for e in run["outputs"]) == ["sample_a", "sample_b"]
    for entry in run["outputs"]:
        events = read_events(tmp_path / "out" / entry["name"])
        assert len(events) == setup["ref"].events
        # every event's call is in run.json: counted, or held by the guard for a person
        assert sum(entry["counts"].values()) + sum(entry["held"].values()) == len(events)


def test_job_array_shards_do_each_cartridge_once_and_the_last_leaves_the_whole_index(
        setup, tmp_path):
    from ctcnet.cli import main

    for name in ("a", "b"):
        shutil.copytree(setup["cart"], tmp_path / "in" / name)
        info = json.loads((tmp_path / "in" / name / "cartridge.json").read_text())
        info["sample_id"] = f"sample_{name}"
        (tmp_path / "in" / name / "cartridge.json").write_text(json.dumps(info))
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "in"), "--model", str(setup["model"]), "--out", str(out),
            "--device", "cpu", "--quiet", "--no-report", "--workers", "0"]
    assert main(args + ["--shard", "1/2"]) == 0
    done = {p.name for p in out.iterdir() if (p / "summary.json").is_file()}
    # this job's share only: the samples whose names fall to it
    assert done == {n for n in ("sample_a", "sample_b") if stable_rank(n, 2) == 0}
    run = json.loads((out / "run.json").read_text())
    assert sum(bool(e.get("missing")) for e in run["outputs"]) == 2 - len(done)
    assert run["world_size"] == 2
    assert main(args + ["--shard", "2/2"]) == 0
    run = json.loads((out / "run.json").read_text())
    assert sorted(e["name"] for e in run["outputs"] if not e.get("missing")) == \
        ["sample_a", "sample_b"]
    for name in ("sample_a", "sample_b"):
        assert len(read_events(out / name)) == setup["ref"].events
    # Each sample's status, as its summary.json gives it, in the one index a batch job reads.
    for entry in run["outputs"]:
        summary = json.loads((out / entry["summary"]).read_text())
        assert entry["status"] == summary["status"]
    for bad in ("0/2", "3/2", "2", "a/b", "1/0"):
        assert main(args + ["--shard", bad]) == 2


def test_any_run_removes_the_shared_memory_a_killed_run_left(setup, tmp_path, monkeypatch):
    """A run killed outright with frame processes leaves their results in /dev/shm; the next
    run removes them even when it reads its frames on threads."""
    from ctcnet.core import shared_pickle
    from ctcnet.inference.predict import predict_inputs

    monkeypatch.setattr(shared_pickle, "SHM_DIR", tmp_path / "shm")
    (tmp_path / "shm").mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    left = tmp_path / "shm" / f"{shared_pickle.PREFIX}{int(dead.stdout)}-slot0"
    left.write_bytes(b"x" * 64)
    predict_inputs([setup["cart"]], tmp_path / "out", setup["backend"],
                   PredictOptions(quiet=True, workers=0, report=False))
    assert not left.exists()


def test_a_sample_a_killed_run_began_is_named_by_the_next_runs_index(tmp_path):
    """Two jobs of one night into one --out, each with its own inputs: one killed outright
    (its sample holds a journal, no summary), the other ending later. Its index names the
    unfinished sample, and one another run is writing, rather than read as the whole night."""
    from ctcnet.inference.run_index import write_run_index
    from ctcnet.io.atomic import exclusive_folder

    out = tmp_path / "out"
    (out / "s1").mkdir(parents=True)
    (out / "s1" / "summary.json").write_text(json.dumps({"events": 5, "status": "ok"}))
    for name in ("killed", "running"):
        (out / name / "parts").mkdir(parents=True)
    with exclusive_folder(out / "running", "predict"):
        index = write_run_index(out, ["s1"], 1, {})
    assert set(index["unfinished_outputs"]) == {"killed", "running"}
    assert "resumes it from its journal" in index["unfinished_outputs"]["killed"]
    assert "is writing it now" in index["unfinished_outputs"]["running"]
    assert json.loads((out / "run.json").read_text())["unfinished_outputs"] == \
        index["unfinished_outputs"]
    table = pd.read_csv(out / "samples.csv").set_index("name")
    assert table.loc["killed", "result_state"] == "missing"
    assert "killed or preempted" in table.loc["killed", "reason"]
    assert table.loc["s1", "status"] == "ok"


def test_an_input_another_job_set_aside_reads_set_aside_not_an_earlier_runs_summary(tmp_path):
    """s1 was done by an earlier run; tonight job 2 sets it aside (its folder holds another
    model's journal) and job 1, ending last, writes run.json: s1 reads set aside, with the
    reason, not "ok" with last night's counts. Once a run finishes s1, it reads ok again."""
    import os
    import time

    from ctcnet.inference.run_index import note_set_aside, write_run_index

    out = tmp_path / "out"
    for name in ("s1", "s2"):
        (out / name).mkdir(parents=True)
        (out / name / "summary.json").write_text(json.dumps({"events": 5, "status": "ok"}))
    old = time.time() - 3600
    os.utime(out / "s1" / "summary.json", (old, old))
    note_set_aside(out, {"s1": "holds a run with another model"})  # job 2
    run = {e["name"]: e for e in write_run_index(out, ["s1", "s2"], 2, {})["outputs"]}  # job 1
    assert run["s1"]["set_aside"] == "holds a run with another model"
    assert "status" not in run["s1"]
    # Last night's output is kept beside it, and samples.csv keeps its row, so marked.
    assert run["s1"]["kept_output"]["events"] == 5
    import pandas as pd

    table = pd.read_csv(out / "samples.csv").set_index("name")
    assert table.loc["s1", "set_aside"] == "holds a run with another model"
    assert table.loc["s1", "events"] == 5 and bool(table.loc["s1", "earlier_run"])
    # Tonight's status is none; the kept output's is said apart (a partial's rates are of
    # the blood read, not of a whole tube).
    assert pd.isna(table.loc["s1", "status"]) and table.loc["s1", "earlier_status"] == "ok"
    assert run["s2"]["status"] == "ok"
    (out / "s1" / "summary.json").write_text(json.dumps({"events": 7, "status": "ok"}))
    later = time.time() + 5
    os.utime(out / "s1" / "summary.json", (later, later))
    run = {e["name"]: e for e in write_run_index(out, ["s1", "s2"], 2, {})["outputs"]}
    assert run["s1"]["status"] == "ok" and run["s1"]["events"] == 7


def test_a_stopped_run_lists_what_it_did_not_reach_as_missing_not_as_an_earlier_result(
        tmp_path):
    """A batch stopped (Ctrl-C) before it reached s2 and s3: s2's output of last night is
    kept beside a missing entry (samples.csv: missing, no status, earlier_run), not listed
    "ok" as tonight's; s3's refusal of last night is not repeated as tonight's."""
    import os
    import time

    import pandas as pd

    from ctcnet.inference.run_index import note_set_aside, write_run_index

    out = tmp_path / "out"
    began = time.time()
    for name in ("s1", "s2", "s3"):
        (out / name).mkdir(parents=True)
    old = began - 3600
    for name, when in (("s1", began + 1), ("s2", old), ("s3", old - 60)):
        (out / name / "summary.json").write_text(json.dumps(
            {"events": 5, "status": "ok", "counted_at": when, "finished_at": when}))
    note_set_aside(out, {"s3": "holds a run with another model"})
    record = out / ".set_aside" / "s3.json"
    os.utime(record, (old, old))
    record.write_text(json.dumps({**json.loads(record.read_text()), "at": old}))
    run = {e["name"]: e for e in write_run_index(
        out, ["s1", "s2", "s3"], 1, {}, since=began, state="stopped",
        missing_reason="not reached: the run ended")["outputs"]}
    assert run["s1"]["status"] == "ok"
    for name in ("s2", "s3"):
        assert run[name]["missing"] and run[name]["reason"] == "not reached: the run ended"
        assert "status" not in run[name] and run[name]["kept_output"]["status"] == "ok"
        assert "set_aside" not in run[name]
    table = pd.read_csv(out / "samples.csv").set_index("name")
    assert table.loc["s2", "result_state"] == "missing" and pd.isna(table.loc["s2", "status"])
    assert bool(table.loc["s2", "earlier_run"]) and table.loc["s2", "events"] == 5
    # The same index of a finished run (a job array's: earlier outputs stand) is unchanged.
    run = {e["name"]: e for e in write_run_index(out, ["s2"], 1, {}, since=began)["outputs"]}
    assert run["s2"]["status"] == "ok"


def test_a_sample_another_run_held_and_finished_is_not_set_aside(tmp_path):
    """Two runs of one batch into one --out: each sets aside what the other holds, and writes
    its record as it ends, after the other finished those samples. The record is of when the
    run began, so run.json reads them finished, not set aside."""
    import time

    from ctcnet.inference.run_index import write_run_index

    out = tmp_path / "out"
    began = time.time() - 60                  # run B began a minute ago, then refused s1 ...
    (out / "s1").mkdir(parents=True)          # ... which run A finished since
    (out / "s1" / "summary.json").write_text(json.dumps({"events": 5, "status": "ok"}))
    held = {"s1": "another ctcnet predict is writing it"}
    run = {e["name"]: e for e in write_run_index(out, ["s1"], 1, held, since=began)["outputs"]}
    assert run["s1"]["status"] == "ok"
    # Last night's counts, their file saved again by a review decision since this run began:
    # the refusal is newer than the counts, so s1 reads set aside.
    (out / "s1" / "summary.json").write_text(json.dumps({"events": 5, "status": "ok",
                                                          "counted_at": began - 3600}))
    refused = {"s1": "cartridge.json cannot be read"}
    run = {e["name"]: e for e in write_run_index(out, ["s1"], 1, refused,
                                                 since=began)["outputs"]}
    assert run["s1"]["set_aside"] == "cartridge.json cannot be read"
    assert "status" not in run["s1"] and run["s1"]["kept_output"]["status"] == "ok"


def test_shard_gives_each_item_to_exactly_one_rank():
    from ctcnet.inference.distributed import shard

    items = list(range(11))
    shares = [shard(items, r, 3, weight=lambda i: 1 + i % 4) for r in range(3)]
    assert sorted(sum(shares, [])) == items
    loads = [sum(1 + i % 4 for i in s) for s in shares]
    assert max(loads) - min(loads) <= 4


def test_a_split_by_name_holds_when_items_come_and_go_between_jobs():
    """The jobs of an array start at different times: a cartridge copied in (or moved out)
    between them must not leave another to no job, nor give one to two."""
    from ctcnet.inference.distributed import shard

    names = [f"patient_{i:03d}" for i in range(40)]
    later = names[:17] + names[18:] + ["patient_new"]   # one gone, one new
    first = [shard(names, r, 4, key=str) for r in range(4)]
    second = [shard(later, r, 4, key=str) for r in range(4)]
    assert sorted(sum(first, [])) == sorted(names)
    assert sorted(sum(second, [])) == sorted(later)
    for r in range(4):  # every name kept stays with its job
        assert set(first[r]) - {names[17]} == set(second[r]) - {"patient_new"}
    assert min(map(len, first)) >= 4  # even in number, roughly (10 each on average)


@pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped model is not built yet")
def test_default_model_is_the_shipped_one():
    import hashlib

    backend = load_backend(device="cpu")
    assert backend.model_path.resolve().parent == SHIPPED.parent.resolve()
    assert backend.model_path.stem == "ctcnet-default"
    # On a CPU the ONNX export of the same weights is preferred (it runs faster), but only
    # when its recorded source digest is the checkpoint's: a stale export is never used.
    onnx = SHIPPED.with_suffix(".onnx")
    current = False
    if onnx.exists():
        from ctcnet.deploy.runtime import OnnxClassifier

        record = json.loads(OnnxClassifier(onnx).metadata.get("ctcnet_export", "{}"))
        current = record.get("source_sha256") == hashlib.sha256(SHIPPED.read_bytes()).hexdigest()
    assert backend.name == ("onnx" if current else "torch")


@pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped model is not built yet")
def test_counts_match_ground_truth_within_the_classifiers_error(tmp_path):
    from ctcnet.simulate import simulate_cartridge

    # Cells at about full-frame density (~0.15 per 1000 px^2), CTCs and clusters enriched so
    # that a small cartridge holds some.
    simulate_cartridge(tmp_path / "cart", load_panel(None), num_frames=8, frame_shape=(256, 320),
                       seed=21, events_per_frame=12, sample_id="gt",
                       rare_rates={"ctc": 0.1, "cluster": 0.05})
    backend = load_backend(SHIPPED, device="cpu")
    summary = predict_cartridge(tmp_path / "cart", backend, tmp_path / "out",
                                PredictOptions(**QUIET, report=False))
    spec = backend.spec
    truth = summary.ground_truth
    true_n = np.array([truth["true_counts"][c] for c in spec.class_names], dtype=float)
    got = np.array([summary.counts[c] for c in spec.class_names], dtype=float)
    # The classifier's error: its held-out confusion (recorded in the model) turns the true
    # counts into expected calls with a binomial spread; detection misses add to it.
    confusion = np.asarray(spec.metrics["test_default_randomisation"]["confusion"], float)
    p = confusion / confusion.sum(axis=1, keepdims=True)
    expected = true_n @ p
    spread = np.sqrt((true_n[:, None] * p * (1 - p)).sum(axis=0))
    missed = (1 - truth["detection"]["recall"]) * true_n
    assert truth["detection"]["recall"] >= 0.9
    assert (np.abs(got - expected) <= 3 * spread + missed + 1).all(), \
        (spec.class_names, got.tolist(), expected.round(1).tolist(), true_n.tolist())


def test_summary_records_the_prevalence_rule_and_the_flag_turns_it_off(setup, tmp_path):
    """Calls of the shipped model use its decision rule unless --no-prevalence-rule; the
    summary says which, so counts from the two are never mixed up."""
    from ctcnet.cli import main
    from ctcnet.nn.registry import get_model

    info = get_model("ctcnet-default")
    weights = info.card["decision"]["log_weights"]
    for flag, expected in (([], weights), (["--no-prevalence-rule"], {})):
        out = tmp_path / ("off" if flag else "on")
        assert main(["predict", str(setup["cart"]), "--out", str(out), "--device", "cpu",
                     "--quiet", "--no-report", *flag]) == 0
        summary = json.loads((out / "sim3" / "summary.json").read_text())
        assert summary["model"]["decision_log_weights"] == pytest.approx(expected)
    on, off = read_events(tmp_path / "on" / "sim3"), read_events(tmp_path / "off" / "sim3")
    # The rule only moves calls away from the rare classes it down-weights. (The events are
    # paired by place: a merged object nobody would see under one rule's calls is read as
    # its members, so the two tables need not hold the same rows.)
    both = on.merge(off, on=["frame", "x", "y"], suffixes=("_on", "_off"))
    assert len(both) >= 0.9 * max(len(on), len(off))
    moved = both["model_class_on"] != both["model_class_off"]
    assert set(both.loc[moved, "model_class_off"]) <= set(weights)


def test_events_tables_are_streamed_a_row_group_at_a_time(tmp_path, monkeypatch):
    """write_tables never holds the whole table: the files it streams (several row groups, the
    CSV header once) hold what one concatenated table would, and what it keeps in memory is
    only the summary's columns, strings as categoricals."""
    import pyarrow.parquet as pq

    import ctcnet.inference.tables as T

    monkeypatch.setattr(T, "ROWS_PER_GROUP", 4)
    rng = np.random.default_rng(0)
    tables = [pd.DataFrame({"frame": np.full(n, f), "frame_id": [f"r00c{f:02d}"] * n,
                            "x": rng.uniform(0, 100, n), "y": rng.uniform(0, 100, n),
                            "class": rng.choice(["ctc", "wbc", "debris"], n),
                            "guard": rng.choice(["", "unusual", "cd45_positive"], n),
                            "mean_CK": rng.uniform(0, 9, n).astype(np.float32)})
              for f, n in enumerate([3, 5, 1, 7])]
    kept = T.write_tables(tmp_path, iter(tables), keep=("event_id", "frame_id", "x", "class"))
    whole = pd.concat(tables, ignore_index=True)
    whole.insert(0, "event_id", np.arange(len(whole), dtype=np.int64))
    assert pq.ParquetFile(tmp_path / "events.parquet").num_row_groups > 1
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "events.parquet"), whole)
    csv = pd.read_csv(tmp_path / "events.csv", keep_default_na=False)
    assert list(csv.columns) == list(whole.columns) and len(csv) == len(whole)
    assert (csv["guard"] == whole["guard"]).all()
    np.testing.assert_allclose(csv["x"], whole["x"], rtol=1e-4)
    assert list(kept.columns) == ["event_id", "frame_id", "x", "class"]
    assert isinstance(kept["class"].dtype, pd.CategoricalDtype)
    assert (kept["class"].astype(str).to_numpy() == whole["class"].to_numpy()).all()
    assert (kept["event_id"].to_numpy() == whole["event_id"].to_numpy()).all()
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary files left behind


class RecordingLibc:
    """glibc's allocator calls a run makes, recorded in ``calls`` instead of made."""

    def __init__(self, calls: list):
        self.calls = calls

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("trim",))
        return 1


def test_every_cartridges_frames_keep_their_buffers_and_the_report_gives_them_back(
        setup, tmp_path, monkeypatch):
    """The allocator's settings a run makes, in order: each cartridge's frames are prepared
    with freed frame-sized blocks kept for reuse (glibc's thresholds set back from the 1 MiB
    the previous cartridge's tables and report left), and after its frames the memory is
    handed back. Without the setting back, every cartridge after a process's first faulted
    in each frame-sized array afresh."""
    from ctcnet.inference import frame_workers, resources

    calls = []
    prepare = frame_workers.prepare_frame

    def recorded(frame, *args, **kwargs):
        calls.append(("frame", frame.frame_id))
        return prepare(frame, *args, **kwargs)

    monkeypatch.setattr(resources, "_libc", lambda: RecordingLibc(calls))
    monkeypatch.setattr(frame_workers, "prepare_frame", recorded)
    for run in ("first", "second"):
        predict_cartridge(setup["cart"], setup["backend"], tmp_path / run,
                          PredictOptions(**QUIET, report=False))
    mmap = [c for c in calls if c[0] == "mallopt" and c[1] == resources._M_MMAP_THRESHOLD]
    assert [c[2] for c in mmap] == [resources.FRAME_LOOP_MMAP, 1 << 20, 1 << 20] * 2
    threshold = None
    for call in calls:
        if call[0] == "mallopt" and call[1] == resources._M_MMAP_THRESHOLD:
            threshold = call[2]
        elif call[0] == "frame":
            assert threshold == resources.FRAME_LOOP_MMAP, call
    assert sum(c[0] == "frame" for c in calls) == 6
    assert ("mallopt", resources._M_TRIM_THRESHOLD, resources.FRAME_LOOP_TRIM) in calls


def test_the_predict_command_asks_for_one_heap_before_it_loads_the_model(cart_and_model, cart,
                                                                         capsys, monkeypatch):
    """glibc fixes its number of heaps when a second thread first allocates, so the one-heap
    setting (its frame loop's buffers stay mapped) must come before the model and the frame
    threads: on a small machine, the first allocator setting the run makes, before the model
    is loaded."""
    from ctcnet.inference import backends, resources

    calls = []
    loading = backends.load_backend

    def recorded(*args, **kwargs):
        calls.append(("load",))
        return loading(*args, **kwargs)

    monkeypatch.setattr(resources, "_libc", lambda: RecordingLibc(calls))
    monkeypatch.setattr(backends, "load_backend", recorded)
    monkeypatch.setattr(resources, "cpu_cores", lambda: 2)
    assert run_cli(capsys, *predict_args(cart_and_model, cart))[0] == 0
    assert calls[0] == ("mallopt", resources._M_ARENA_MAX, 1)
    assert ("load",) in calls
    # Measured on 2 cores only: a larger machine (a GPU server's many frame threads) keeps
    # glibc's own number of heaps.
    calls.clear()
    assert resources.one_malloc_arena(resources.ONE_ARENA_MAX_CORES + 1) is False
    assert resources.one_malloc_arena(resources.ONE_ARENA_MAX_CORES) is True
    assert calls == [("mallopt", resources._M_ARENA_MAX, 1)]


def test_another_cartridge_of_the_same_sample_id_is_refused_not_resumed(setup, tmp_path,
                                                                        monkeypatch):
    """The summary records the scan folder absolute (the review and `ctcnet crops` read its
    frames from anywhere), and another cartridge with the same sample id, into the same --out,
    is refused by name instead of redoing "changed" frames over the first one's results (a
    copy of the same bytes is the same scan moved: tests/inference/test_journal.py)."""
    import os

    from ctcnet.errors import InputError

    other = tmp_path / "other"
    shutil.copytree(setup["cart"], other)
    frames = sorted(other.glob("r*c*.tif"))
    frames[1].write_bytes(frames[0].read_bytes())  # another scan: other pixels
    for frame in frames:  # written at other times
        os.utime(frame, (1e9, 1e9))
    out = tmp_path / "run"
    monkeypatch.chdir(setup["cart"].parent)
    summary = predict_cartridge(Path(setup["cart"].name), setup["backend"], out,
                                PredictOptions(**QUIET, report=False))
    assert Path(summary.input).is_absolute() and Path(summary.input) == setup["cart"].absolute()
    with pytest.raises(InputError, match=r"read from another folder: it read .*--overwrite"):
        predict_cartridge(other, setup["backend"], out, PredictOptions(**QUIET, report=False))


def test_run_json_repeats_the_first_skipped_frames_reasons():
    """An operator reading run.json learns why frames were skipped without opening each
    sample's summary.json; a long list is cut, saying how many more there are."""
    from ctcnet.inference.run_entry import SKIP_REASONS_SHOWN, _why

    skipped = [{"frame": f"r00c{i:02d}", "reason": "empty file (0 bytes)"} for i in range(7)]
    why = _why({"input": "/scans/a", "frames": {"skipped": 7}, "skipped_frames": skipped})
    assert why["frames_skipped"] == 7
    assert why["skipped_because"][0] == "r00c00: empty file (0 bytes)"
    assert len(why["skipped_because"]) == SKIP_REASONS_SHOWN + 1
    assert why["skipped_because"][-1] == "and 2 more (summary.json)"
    assert "skipped_because" not in _why({"input": "/scans/b", "frames": {"skipped": 0}})


def test_run_json_names_the_samples_an_earlier_run_left_in_the_output_folder(tmp_path):
    """A rerun of part of a batch, or another batch into the same --out, lists its own
    samples; those an earlier run left there are named apart, not hidden."""
    from ctcnet.inference.run_index import write_run_index

    out = tmp_path / "out"
    for name in ("s1", "s2", "s3"):
        (out / name).mkdir(parents=True)
        (out / name / "summary.json").write_text(json.dumps({"events": 5, "status": "ok"}))
    index = write_run_index(out, ["s2"], 1, {})
    assert [e["name"] for e in index["outputs"]] == ["s2"]
    assert index["other_outputs"] == ["s1", "s3"]
    # samples.csv is the folder's table: the earlier samples keep their rows, so marked (a
    # rerun of one sample wrote its row alone).
    import pandas as pd

    table = pd.read_csv(out / "samples.csv").set_index("name")
    assert list(table.index) == ["s2", "s1", "s3"]
    assert table["earlier_run"].fillna(False).astype(bool).tolist() == [False, True, True]
    assert "other_outputs" not in write_run_index(out, ["s1", "s2", "s3"], 1, {})


def test_run_json_repeats_a_reviewed_samples_counts_after_review(tmp_path):
    """A batch reader of run.json sees a reviewed sample's counts after review and whether
    they are signed off, beside the automatic ones; an unreviewed sample carries neither."""
    from ctcnet.inference.run_index import write_run_index

    out = tmp_path / "out"
    reviewed = {"reported": ["ctc", "cluster"], "reviewed": 5,
                "after_review": {"ctc": 6, "wbc": 90, "cluster": 1, "debris": 40},
                "after_review_per_7_5_ml": {"ctc": 8.0, "cluster": 1.33}}
    summaries = {"a": {"counts": {"ctc": 4, "cluster": 1}, "reviewed": reviewed,
                       "signoff": {"reviewer": "jd"}},
                 "b": {"counts": {"ctc": 4, "cluster": 1}, "reviewed": reviewed,
                       "signoff": None},
                 "e": {"counts": {"ctc": 4, "cluster": 1}, "reviewed": reviewed,
                       "signoff": {"reviewer": "jd", "status": "counts changed since"},
                       "model": {"path": "/models/lab.pt", "sha256": "ab12"},
                       "counted_at": 1.8e9},
                 "c": {"counts": {"ctc": 2, "cluster": 0}},
                 "d": {"counts": {"ctc": 2, "cluster": 0}, "reviewed": {"reviewed": 0}}}
    for name, summary in summaries.items():
        (out / name).mkdir(parents=True)
        (out / name / "summary.json").write_text(json.dumps(summary))
    entries = {e["name"]: e for e in write_run_index(out, list(summaries), 1, {})["outputs"]}
    assert entries["a"]["counts"] == {"ctc": 4, "cluster": 1}
    assert entries["a"]["after_review"] == {"ctc": 6, "cluster": 1}
    assert entries["a"]["after_review_per_7_5_ml"] == {"ctc": 8.0, "cluster": 1.33}
    assert entries["a"]["signed_off"] is True and entries["b"]["signed_off"] is False
    # A sign-off the figures moved on from is named, not read as one that holds.
    assert entries["e"]["signed_off"] is False
    assert entries["e"]["signoff_status"] == "counts changed since"
    # Which model made each sample's numbers, and when: one folder may hold two models' runs.
    assert entries["e"]["model"] == {"path": "/models/lab.pt", "sha256": "ab12"}
    assert entries["e"]["counted_at"] == "2027-01-15T08:00:00Z"
    # The same as a table a row a sample, for a statistics package.
    import pandas as pd

    table = pd.read_csv(out / "samples.csv").set_index("name")
    assert list(table.index) == list(summaries)
    assert table.loc["a", "count_ctc"] == 4 and table.loc["a", "after_review_ctc"] == 6
    assert table.loc["a", "after_review_per_7_5_ml_cluster"] == 1.33
    assert bool(table.loc["a", "signed_off"]) and not bool(table.loc["e", "signed_off"])
    assert table.loc["e", "model_sha256"] == "ab12" and pd.isna(table.loc["c", "signed_off"])
    # The counted classes' columns first: the ones a study reports.
    assert [c for c in table.columns if c.startswith("count_")][:2] == ["count_ctc",
                                                                         "count_cluster"]
    for name in ("c", "d"):
        assert not {"after_review", "signed_off"} & set(entries[name])


def test_a_refusal_of_an_input_with_a_long_name_is_recorded(tmp_path):
    """An input refused for a name past the sample id's 200 bytes is recorded as set aside
    (under a digest of its name: the atomic write's suffixes would pass the 255 bytes a file
    name may have), and run.json names it."""
    from ctcnet.inference.run_index import write_run_index

    name = "y" * 240
    index = write_run_index(tmp_path / "out", [name, "s2"], 1, {name: "a name too long"})
    entries = {e["name"]: e for e in index["outputs"]}
    assert entries[name]["set_aside"] == "a name too long"
    assert entries["s2"]["missing"] is True


def test_a_failed_samples_row_leaves_its_counts_empty():
    """A failed sample read no blood: a 0 in its count cells would read as a clean negative."""
    from ctcnet.inference.run_table import sample_row

    row = sample_row({"name": "s", "status": "failed", "counts": {"ctc": 0},
                      "per_7_5_ml": {"ctc": None}})
    assert row["count_ctc"] is None and row["status"] == "failed"
    assert sample_row({"name": "s", "status": "ok", "counts": {"ctc": 0}})["count_ctc"] == 0


def test_a_samples_row_says_its_review_list_and_rates_to_two_decimals(tmp_path):
    from ctcnet.inference.run_entry import output_entry
    from ctcnet.inference.run_table import samples_csv

    summary = {"events": 4500, "counts": {"ctc": 2}, "per_7_5_ml": {"ctc": 2 * 7.5 / 4.5},
               "review_list": {"events": 23}, "status": "partial",
               "counted_at_utc": "2026-11-30T09:00:00Z"}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    entry = output_entry("s", summary, tmp_path / "summary.json")
    assert entry["review_events"] == 23
    header, row = samples_csv([entry]).splitlines()
    cells = dict(zip(header.split(","), row.split(",")))
    assert cells["review_events"] == "23" and cells["per_7_5_ml_ctc"] == "3.33"


def test_a_refresh_of_samples_csv_leaves_a_running_batchs_table_alone(tmp_path):
    """A sign-off while a batch runs into the folder (run.json says running, no outputs yet)
    does not write samples.csv as a header alone (the running batch took the earlier table
    away); the batch's end writes it."""
    import time

    from ctcnet.inference.run_index import (
        mark_run_started,
        refresh_run_index,
        write_run_index,
    )

    out = tmp_path / "out"
    for name in ("s1", "s2"):
        (out / name).mkdir(parents=True)
        (out / name / "summary.json").write_text(json.dumps({"events": 5, "status": "ok"}))
    write_run_index(out, ["s1", "s2"], 1, {})
    assert (out / "samples.csv").read_text().count("\n") == 3
    mark_run_started(out, ["s3"], time.time())
    refresh_run_index(out)
    assert not (out / "samples.csv").exists()
    write_run_index(out, ["s3"], 1, {})  # the batch's end: every sample of the folder
    assert (out / "samples.csv").read_text().count("\n") == 4


def test_a_sample_folder_or_logs_planted_as_a_link_is_not_written_through(clean_run, cart,
                                                                          tmp_path, caplog):
    """A link planted at a sample's name in a shared results folder took its events, summary
    and gallery to where it pointed, ok and unsaid (the docs: ctcnet never writes through a
    symbolic link): refused by name, nothing written there. A logs/ link: no log, said."""
    from conftest import predict

    from ctcnet.core.run_log import run_log
    from ctcnet.errors import OutputFolderError

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "results").mkdir()
    planted = tmp_path / "results" / "S1"
    planted.symlink_to(elsewhere)
    with pytest.raises(OutputFolderError, match="is a link to .*never writes through a "
                                                "symbolic link"):
        predict(clean_run, cart, planted)
    assert list(elsewhere.iterdir()) == []
    (tmp_path / "results" / "logs").symlink_to(elsewhere)
    with caplog.at_level("WARNING"), run_log(tmp_path / "results", "predict") as log:
        log.open()
    assert "it is a link to" in caplog.text and list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("name", ["parts", "gallery"])
def test_a_link_planted_at_a_samples_journal_or_gallery_is_not_written_through(
        clean_run, cart, tmp_path, name):
    """A link planted at a sample's parts/ had its journal written where it pointed (a
    run.json there overwritten), and one at gallery/ had the tiles there deleted as stale,
    both ok and unsaid; with --overwrite, parts/ as a link ended the batch in a traceback
    (rmtree on a link): refused by name before any work, nothing there touched."""
    from conftest import predict

    from ctcnet.errors import InputError

    out = tmp_path / "out"
    predict(clean_run, cart, out)
    victim = tmp_path / "victim"
    victim.mkdir()
    for kept in ("run.json", "ctc_005.png"):
        (victim / kept).write_text("precious")
    if (out / name).exists():
        shutil.rmtree(out / name)
    (out / name).symlink_to(victim)
    for overwrite in (False, True):
        with pytest.raises(InputError, match=f"{name}: is a link, not a folder: ctcnet keeps"):
            predict(clean_run, cart, out, overwrite=overwrite)
    assert {p.name: p.read_text() for p in victim.iterdir()} == {
        "run.json": "precious", "ctc_005.png": "precious"}
    assert (out / "summary.json").is_file()  # the finished run is left as it was


def test_options_given_as_a_dict_are_read_and_a_stranger_refused_by_name():
    """`predict_cartridge(..., {"report": None})` ended in an AttributeError deep in the run."""
    from ctcnet.errors import InputError
    from ctcnet.inference.options import PredictOptions, as_options

    assert as_options(None) == PredictOptions()
    assert as_options({"report": None, "quiet": True}) == PredictOptions(report=None,
                                                                          quiet=True)
    with pytest.raises(InputError, match="options: repot is no field of PredictOptions"):
        as_options({"repot": None})
    with pytest.raises(InputError, match="must be a PredictOptions .*not list"):
        as_options([("report", None)])
