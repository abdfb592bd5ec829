"""``ctcnet predict`` on bad input: no traceback, no hang, no silent wrong number.

Each bad input either gives one clear line and exit status 2, or is skipped and
recorded while the rest finishes; a sample with no readable frame is ``failed`` (exit 3), never
zero counts. The CLI runs in process (``ctcnet.cli.main``) on a tiny simulated cartridge.
"""

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch
from conftest import QUIET, assert_one_line_error, edit_json, frames, predict_args, run_cli

from ctcnet.errors import InputError
from ctcnet.inference.backends import load_backend
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.inference.summary import RunSummary
from ctcnet.io.atomic import exclusive_folder
from ctcnet.io.scan import open_cartridge
from ctcnet.report import run_report

# 1. A readable but odd frame is skipped with its reason; the other frames finish.

def _odd(kind):
    rng = np.random.default_rng(0)
    if kind == "3x500":
        return rng.integers(90, 110, (5, 3, 500)).astype(np.uint16)
    if kind == "400x5":
        return rng.integers(90, 110, (5, 400, 5)).astype(np.uint16)
    frame = rng.random((5, 128, 160)).astype(np.float32)
    frame[:, 48:56, 48:56] = 3e38  # overflows float32 when binned
    return frame


# A frame of another size than the cartridge's is skipped for its size, before it is read.
@pytest.mark.parametrize("kind, reason", [("3x500", "3 x 500 px, the cartridge's frames 128 x 160"),
                                          ("400x5", "400 x 5 px, the cartridge's frames"),
                                          ("float32 3e38", "out of range")])
def test_odd_frame_is_skipped_and_the_rest_finishes(cart_and_model, cart, kind, reason):
    tifffile.imwrite(frames(cart)[0], _odd(kind), photometric="minisblack")
    if kind.startswith("float32"):  # a float panel, so the values reach detection
        panel = json.loads((cart / "panel.json").read_text())
        for channel in panel["channels"]:
            channel["value_range"] = [0, 3.4e38]
        (cart / "panel.json").write_text(json.dumps(panel))
    backend = load_backend(cart_and_model / "model.pt", device="cpu")
    summary = predict_cartridge(cart, backend, cart.parent / "out",
                                PredictOptions(**QUIET)).to_dict()
    assert summary["frames"]["skipped"] == 1 and summary["frames"]["processed"] == 2
    assert reason in summary["skipped_frames"][0]["reason"]
    assert summary["status"] == "partial"
    # Per 7.5 mL over the blood volume of the two frames read, not all three.
    assert summary["blood_volume_processed_ml"] == pytest.approx(7.5 * 2 / 3)
    assert summary["per_7_5_ml"]["ctc"] == pytest.approx(summary["counts"]["ctc"] * 1.5)
    events = pd.read_csv(cart.parent / "out" / "events.csv")
    assert set(events["frame_id"]) <= {"r00c01", "r00c02"} and len(events) == summary["events"]


def test_an_unexpected_detection_error_skips_only_that_frame(cart_and_model, cart, monkeypatch):
    import ctcnet.inference.frames as F

    original = F.detect_events

    def flaky(frame, *args, **kwargs):
        if frame.shape[-1] == 160 and frame[0, 0, 0] == -1:
            raise IndexError("boom")
        return original(frame, *args, **kwargs)

    data = tifffile.imread(frames(cart)[1]).astype(np.float32)
    data[0, 0, 0] = -1
    tifffile.imwrite(frames(cart)[1], data, photometric="minisblack")
    monkeypatch.setattr(F, "detect_events", flaky)
    summary = predict_cartridge(cart, load_backend(cart_and_model / "model.pt", device="cpu"),
                                cart.parent / "out", PredictOptions(**QUIET)).to_dict()
    assert summary["frames"]["skipped"] == 1
    assert "IndexError: boom" in summary["skipped_frames"][0]["reason"]


def test_a_model_with_a_nan_weight_calls_nothing(cart_and_model, cart, capsys):
    """A model that goes NaN in memory (a file with NaN weights is refused when loaded): its
    events are failed, and the review gallery shows them uncalled."""
    backend = load_backend(cart_and_model / "model.pt", device="cpu")
    state = backend.model.state_dict()
    key = next(k for k, v in state.items() if k.startswith("net.") and v.ndim == 4)
    with torch.no_grad():
        state[key].view(-1)[0] = float("nan")
    out = cart.parent / "out"
    summary = predict_cartridge(cart, backend, out, PredictOptions(
        quiet=True, workers=0, report=run_report)).to_dict()
    assert summary["events"] > 0 and sum(summary["counts"].values()) == 0
    assert summary["failed_events"] == summary["events"] == summary["review"]
    assert summary["status"] == "partial"
    assert (out / "index.html").exists() and list((out / "gallery").glob("review_*.png"))
    # The tiny model has no decision rule for cartridges: its calls, at its training prior,
    # are recorded and reported so, not as at a cartridge's prevalence.
    assert summary["model"]["prior"] == "balanced"
    assert "the model&#x27;s training prior (balanced; a model without a decision rule" in \
        (out / "index.html").read_text()


def test_a_model_pinned_by_its_digest_runs_and_any_other_is_refused_before_any_output(
        cart_and_model, cart, capsys):
    from ctcnet.io.digests import file_sha256

    args = predict_args(cart_and_model, cart)
    out = cart.parent / "out"
    status, err = run_cli(capsys, *args, "--model-sha256", "0" * 64)
    assert_one_line_error(status, err, "not the one --model-sha256 names")
    assert file_sha256(cart_and_model / "model.pt") in err[0]
    assert not (out / "run.json").exists()  # refused before the run began
    status, err = run_cli(capsys, *args, "--model-sha256", "12ab")
    assert_one_line_error(status, err, "at least its first 12")
    digest = file_sha256(cart_and_model / "model.pt")
    assert run_cli(capsys, *args, "--model-sha256", digest[:12].upper())[0] == 0
    assert json.loads((out / "S1" / "summary.json").read_text())["model"]["sha256"] == digest


# 3.-5. Frame ids, sample ids, a sample with no readable frame.

@pytest.mark.parametrize("extra", ["r0c1.tif", "frame0.tif"])
def test_two_files_for_one_frame_are_refused(cart, extra):
    shutil.copy(frames(cart)[1], cart / extra)
    with pytest.raises(InputError, match="both name frame"):
        open_cartridge(cart)


@pytest.mark.parametrize("sid", ["../../x", "/tmp/abs", "a/b", "..", "a\\b", "", ["x"],
                                 "y" * 300, "new\nline", ".hidden"])
def test_sample_id_that_is_a_path_is_refused(cart_and_model, cart, capsys, sid):
    edit_json(cart / "cartridge.json", sample_id=sid)
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart))
    assert_one_line_error(status, err, "sample_id")
    assert not (cart.parent / "x").exists()


def test_a_sample_with_no_readable_frame_is_failed_not_negative(cart_and_model, cart, capsys):
    for f in frames(cart):
        f.write_bytes(b"not a tiff")
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart))
    # (The tiny test model has no cartridge rule, which is said once first.)
    assert "no decision rule for cartridges" in err[0]
    err = err[1:]
    # One error line, after a line per frame naming it and why it was skipped.
    assert status == 3 and "no readable frame" in err[-1]
    skipped = err[:-1]
    assert len(skipped) == len(frames(cart))
    assert all(f"frame {f.stem} skipped" in line for f, line in zip(frames(cart), skipped))
    assert "not a readable TIFF" in skipped[0]
    summary = json.loads((cart.parent / "out" / "S1" / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["frames"]["processed"] == 0
    assert all(v is None for v in summary["per_7_5_ml"].values())
    assert summary["frame_shape"] is None  # (no frame read: not the headers' size)


# 6.-7. Missing or bad metadata: one line, exit 2.

@pytest.mark.parametrize("file, changes, match", [
    ("panel.json", {"pixel_size_um": None}, "pixel_size_um must be a number"),
    ("panel.json", {"pixel_size_um": "0.64 um"}, "pixel_size_um must be a number"),
    ("cartridge.json", {"blood_volume_ml": 0}, "blood_volume_ml must be a positive"),
    ("cartridge.json", {"blood_volume_ml": -2}, "blood_volume_ml must be a positive"),
    ("cartridge.json", {"blood_volume_ml": "7.5 mL"}, "blood_volume_ml must be a positive"),
    ("cartridge.json", {"columns": "six"}, "columns must be a whole number"),
    ("cartridge.json", {"num_frames": 2.5}, "num_frames must be a whole number"),
])
def test_bad_metadata_values_give_one_line(cart_and_model, cart, capsys, file, changes, match):
    edit_json(cart / file, **changes)
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart))
    assert_one_line_error(status, err, match)
    assert err[0].count(str(cart)) == 1  # the file is named once


def test_metadata_of_the_wrong_shape_gives_one_line(cart_and_model, cart, capsys):
    (cart / "cartridge.json").write_text("[1, 2]")
    assert_one_line_error(*run_cli(capsys, *predict_args(cart_and_model, cart)), "one JSON object")
    (cart / "cartridge.json").unlink()
    panel = json.loads((cart / "panel.json").read_text())
    panel["channels"][0]["normalisation"] = None
    (cart / "panel.json").write_text(json.dumps(panel))
    assert_one_line_error(*run_cli(capsys, *predict_args(cart_and_model, cart)),
                          "normalisation must be a mapping")
    del panel["pixel_size_um"]
    panel["channels"][0]["normalisation"] = {"method": "snr"}
    (cart / "panel.json").write_text(json.dumps(panel))
    assert_one_line_error(*run_cli(capsys, *predict_args(cart_and_model, cart)), "no pixel_size_um")


# 8. Resume notices a replaced frame.

def test_resume_redoes_a_frame_whose_file_changed(cart_and_model, cart):
    backend = load_backend(cart_and_model / "model.pt", device="cpu")
    out = cart.parent / "out"
    predict_cartridge(cart, backend, out, PredictOptions(**QUIET))
    first, second = frames(cart)[:2]
    # Frame 0 now holds frame 1's pixels one count brighter: the same events, other bytes (a
    # byte copy would be one tile under two names, which is skipped as such).
    tifffile.imwrite(first, tifffile.imread(second) + np.uint16(1), photometric="minisblack")
    summary = predict_cartridge(cart, backend, out, PredictOptions(**QUIET)).to_dict()
    assert summary["frames"]["resumed_from_journal"] == 2
    ev = pd.read_parquet(out / "events.parquet")
    a = ev[ev.frame_id == "r00c00"][["x", "y"]].to_numpy()
    b = ev[ev.frame_id == "r00c01"][["x", "y"]].to_numpy()
    np.testing.assert_allclose(a, b)


# 10. Files and runs.

def test_a_fifo_named_like_a_frame_is_refused_unopened(cart_and_model, cart, capsys):
    # Refused, not left out: a position left out would still count its blood volume as read.
    # Opening a FIFO blocks, so a listing that opened it would hang here.
    os.mkfifo(cart / "r09c09.tif")
    with pytest.raises(InputError, match=r"r09c09.tif: not a regular file: a FIFO"):
        open_cartridge(cart)
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart))
    assert_one_line_error(status, err, "not a regular file: a FIFO where a frame is meant")


def test_predict_into_a_folder_another_run_holds_is_one_line(cart_and_model, cart, capsys):
    """The second run (even with --overwrite) is refused before it deletes or writes anything."""
    sample_dir = cart.parent / "out" / "S1"
    with exclusive_folder(sample_dir, "predict"):
        # (--prior balanced: the tiny model has no cartridge rule, which would be said first)
        status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--overwrite",
                                                    "--prior", "balanced"))
    assert_one_line_error(status, err, f"another ctcnet predict (pid {os.getpid()} on ")
    assert "if that process is gone, killed or preempted, run this command again" in err[0]
    assert not (sample_dir / "parts").exists()


def test_a_lone_rerun_refused_for_other_settings_is_set_aside_beside_the_output_it_kept(
        cart_and_model, cart, capsys):
    """Rerun alone with another prior, a sample is refused once the run has begun: run.json
    says it was set aside, with the earlier output kept beside the reason, not a "failed"
    run listing that output's figures as tonight's."""
    assert run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced"))[0] == 0
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior",
                                                "ctc=0.01,cluster=0.005"))
    said = [line for line in err if "error:" in line]
    assert status == 2 and len(said) == 1 and "S1 was set aside" in said[0]
    index = json.loads((cart.parent / "out" / "run.json").read_text())
    (entry,) = index["outputs"]
    assert index["state"] == "finished" and "another model, other settings" in entry["set_aside"]
    assert entry["kept_output"]["status"] == "ok"


def test_a_samples_table_held_open_by_a_spreadsheet_is_named(cart_and_model, cart, capsys,
                                                            monkeypatch):
    """samples.csv that cannot be replaced (a spreadsheet holds it open on a share) is said by
    name, with what was written, not blamed on the folder."""
    import ctcnet.inference.run_index as run_index

    def locked(out, *args):
        raise PermissionError(errno.EACCES, "Permission denied", str(out))

    monkeypatch.setattr(run_index, "write_samples_csv", locked)
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced"))
    assert_one_line_error(status, err, "cannot replace samples.csv (Permission denied)")
    assert "open in another program" in err[0] and "run.json is written" in err[0]


@pytest.mark.parametrize("code, message, remedy", [
    (errno.ENOSPC, "No space left on device", "free space and rerun"),
    (errno.EROFS, "Read-only file system", "write to another folder"),
    (errno.EFBIG, "File too large", "raise the file-size limit"),
    (errno.EACCES, "Permission denied", "make the folder writable"),
])
def test_disk_full_or_read_only_is_one_line(cart_and_model, cart, capsys, monkeypatch, code,
                                            message, remedy):
    import ctcnet.inference.rerun_outputs as P  # where predict's tables are written

    def refused(*args, **kwargs):
        raise OSError(code, message, "events.parquet")

    monkeypatch.setattr(P, "write_tables", refused)
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced"))
    assert_one_line_error(status, err, message, code=4)  # the machine's, not the input's
    assert remedy in err[0]


def full_disk_at(name: str):
    """An atomic write that fills the disk partway through the file ``name``: a part written,
    then ENOSPC, as the system gives it (named by atomic_path)."""
    from ctcnet.io.atomic import atomic_path

    def write(path, text):
        with atomic_path(path) as tmp:
            tmp.write_text(text[:100])
            if Path(path).name == name:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            tmp.write_text(text)
    return write


def reported_args(cart_and_model, cart):
    """``ctcnet predict`` with the report drawn (gallery and index.html); at a stated prior, so
    that stderr holds the error alone (the tiny model has no rule for cartridges)."""
    return [a for a in predict_args(cart_and_model, cart, "--prior", "balanced")
            if a != "--no-report"]


def test_a_disk_that_fills_during_the_report_leaves_no_ok_summary(cart_and_model, cart,
                                                                   capsys, monkeypatch):
    """The events tables are written, then the disk fills at index.html: the one no-space line,
    and no summary.json calling the sample done; a rerun with room draws the report from the
    journal and writes it."""
    from ctcnet.report import report_page

    out = cart.parent / "out" / "S1"
    monkeypatch.setattr(report_page, "atomic_write_text", full_disk_at("index.html"))
    status, err = run_cli(capsys, *reported_args(cart_and_model, cart))
    assert_one_line_error(status, err, "No space left on device", code=4)
    assert "index.html); nothing was left half written, free space and rerun" in err[0]
    assert (out / "events.parquet").is_file() and not (out / "summary.json").exists()
    monkeypatch.undo()
    status, err = run_cli(capsys, *reported_args(cart_and_model, cart))
    assert status == 0, err
    assert RunSummary.read(out).status == "ok" and (out / "index.html").is_file()
    assert json.loads((out / "parts" / "report.json").read_text()) == {"report": "done"}


def fill_the_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "the file it was writing")


@pytest.mark.parametrize("module, writer, extra, kept", [
    ("ctcnet.inference.tables", "write_csv_rows", [], True),  # the same tables written again
    ("ctcnet.inference.finishing", "write_part", ["--overwrite"], False),  # a frame redone
], ids=["events-table", "journal-part"])
def test_a_disk_that_fills_on_a_rerun_leaves_no_earlier_ok_summary(
        cart_and_model, cart, capsys, monkeypatch, module, writer, extra, kept):
    """A rerun over a finished sample (a nightly batch, or --overwrite) whose disk fills on
    the way: the earlier run's summary.json goes, not left saying "ok" beside what this run
    changed and did not finish; the next rerun writes it again. Where the run changed nothing
    (its tables the earlier run's, their write failed whole), the earlier summary stands."""
    import importlib

    out = cart.parent / "out" / "S1"
    args = predict_args(cart_and_model, cart, "--prior", "balanced")
    assert run_cli(capsys, *args)[0] == 0 and RunSummary.read(out).status == "ok"
    monkeypatch.setattr(importlib.import_module(module), writer, fill_the_disk)
    assert_one_line_error(*run_cli(capsys, *args, *extra), "No space left on device",
                          code=4)
    assert (out / "summary.json").exists() == kept
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
    monkeypatch.undo()
    assert run_cli(capsys, *args)[0] == 0 and RunSummary.read(out).status == "ok"


def test_a_shard_that_holds_no_input_says_so(cart_and_model, cart, capsys):
    """A job of an array whose share of a split by name is empty: exit 0 (the split is valid,
    and the other job runs the cartridge), one line saying this job ran nothing."""
    from ctcnet.inference.distributed import stable_rank

    empty = 2 - stable_rank("S1", 2)  # the share (1 or 2 of 2) that S1 does not fall to
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced",
                                                "--shard", f"{empty}/2"))
    assert status == 0 and len(err) == 1, err
    assert f"--shard {empty}/2: none of the 1 input(s) falls to this share" in err[0]
    run = json.loads((cart.parent / "out" / "run.json").read_text())
    (entry,) = run["outputs"]
    assert entry["name"] == "S1" and entry["missing"]
    assert f"it falls to --shard {3 - empty}/2: that job has not run" in entry["reason"]
    # The share that holds it killed while writing it (its journal, no summary): said so,
    # not as a job that has not run.
    from ctcnet.inference.journal import PARTS_DIR

    (cart.parent / "out" / "S1" / PARTS_DIR).mkdir(parents=True)
    run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced", "--shard",
                                  f"{empty}/2"))
    (entry,) = json.loads((cart.parent / "out" / "run.json").read_text())["outputs"]
    assert f"it falls to --shard {3 - empty}/2; a run began it and ended before finishing " \
        "it" in entry["reason"], entry
    shutil.rmtree(cart.parent / "out" / "S1")
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced",
                                                "--shard", f"{3 - empty}/2"))
    assert status == 0 and err == []  # the share that holds it: no such line


def test_a_shard_stopped_on_its_own_input_says_it_stopped(cart_and_model, cart, capsys,
                                                         monkeypatch):
    """The job whose share holds S1, stopped (Ctrl-C, a time limit's SIGTERM) before S1 was
    written: its index says the run ended before the output, not that another job has not
    run."""
    import ctcnet.inference.predict as P
    from ctcnet.inference.distributed import stable_rank

    own = stable_rank("S1", 2) + 1

    def stopped(*args, on_start, **kwargs):
        on_start()
        raise KeyboardInterrupt

    monkeypatch.setattr(P, "predict_inputs", stopped)
    status, _ = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced",
                                              "--shard", f"{own}/2"))
    assert status == 130
    (entry,) = json.loads((cart.parent / "out" / "run.json").read_text())["outputs"]
    assert entry["missing"] and entry["reason"].startswith(
        "not finished: the run ended (stopped by an interrupt (Ctrl-C)) before its output")
    assert entry["reason"].endswith("the same command resumes it")
    # With --overwrite, the same command would start afresh: the way to resume is said.
    status, _ = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced",
                                              "--shard", f"{own}/2", "--overwrite"))
    (entry,) = json.loads((cart.parent / "out" / "run.json").read_text())["outputs"]
    assert status == 130 and entry["reason"].endswith(
        "the same command without --overwrite resumes it where this run began it (with it, "
        "each sample starts afresh); one with an earlier output kept (kept_output), which "
        "this run did not reach, is replaced only with --overwrite: give those inputs alone")

def test_run_json_says_the_runs_state_each_inputs_folder_and_why_a_sample_is_partial(
        cart_and_model, cart, capsys, monkeypatch):
    """A nightly job reads run.json alone: the run's state and times, and per sample the folder
    it was read from and why it is partial. A run that stops leaves no earlier run's index
    behind, all "ok", but what it has done, said "stopped"."""
    out = cart.parent / "out"
    frames(cart)[-1].unlink()  # a truncated cartridge: partial
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced"))
    assert status == 0, err
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "finished" and run["started_at"] <= run["written_at"]
    (entry,) = run["outputs"]
    assert entry["status"] == "partial" and entry["input"] == str(cart)
    assert entry["frames_missing"] == 1 and "r00c02" in entry["problems"][0], entry

    import ctcnet.inference.predict as P

    seen = []

    assert (out / "samples.csv").is_file()

    def stopped(*args, on_start, **kwargs):  # once its checks pass, run.json says "running"
        on_start()
        seen.append(json.loads((out / "run.json").read_text()))
        # ... and no earlier run's samples.csv stands beside it for tonight's
        seen.append((out / "samples.csv").exists())
        raise KeyboardInterrupt

    monkeypatch.setattr(P, "predict_inputs", stopped)
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced",
                                                "--overwrite"))
    # The same command, with --overwrite, would start every sample again: without it resumes.
    assert status == 130 and "; the same command without --overwrite resumes it where this " \
        "run began it (with it, each sample starts afresh)" in err[-1]
    assert seen[0]["state"] == "running" and seen[0]["outputs"] == [] and \
        seen[0]["inputs"] == ["S1"] and seen[1] is False
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "stopped" and run["outputs"][0]["name"] == "S1"
    assert run["error"] == "stopped by an interrupt (Ctrl-C)"
    import os
    assert seen[0]["pid"] == os.getpid() and seen[0]["host"]  # a monitor tells a killed run
    # Every field outputs.md says is always written, in the running form too.
    assert seen[0]["intended_use"] and seen[0]["world_size"] == 1


def test_a_run_that_the_full_disk_ends_does_not_stay_running(cart_and_model, cart, capsys,
                                                            monkeypatch):
    """A full disk ends a run, and then the index of what it did cannot be written either (its
    new file needs blocks): run.json is written over in place with the state and the error
    rather than left saying "running" for a run that has ended."""
    import errno

    import ctcnet.commands.predict_index as C
    import ctcnet.inference.predict as P

    out = cart.parent / "out"
    full = OSError(errno.ENOSPC, "No space left on device")

    def fills_the_disk(*args, on_start, **kwargs):
        on_start()
        raise full

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(P, "predict_inputs", fills_the_disk)
    monkeypatch.setattr(C, "write_run_index", no_room)
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--prior", "balanced"))
    assert status != 0 and any("No space left on device" in line for line in err), err
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "failed" and "No space left on device" in run["error"], run


# Options and model files.

@pytest.mark.parametrize("extra, match", [
    (["--threshold-snr", "nan"], "--threshold-snr"), (["--threshold-snr", "0"], "--threshold-snr"),
    (["--threshold-snr", "-5"], "--threshold-snr"), (["--device", "gpu"], "--device 'gpu'"),
])
def test_bad_options_give_one_line(cart_and_model, cart, capsys, extra, match):
    assert_one_line_error(*run_cli(capsys, *predict_args(cart_and_model, cart, *extra)), match)


def test_out_pointing_at_a_file_gives_one_line(cart_and_model, cart, capsys):
    (cart.parent / "afile").write_text("x")
    argv = predict_args(cart_and_model, cart)
    argv[argv.index("--out") + 1] = cart.parent / "afile"
    assert_one_line_error(*run_cli(capsys, *argv), "cannot create output folder")
    # ... saying which path is the file ("File exists" read as the folder being there).
    argv[argv.index("--out") + 1] = cart.parent / "afile" / "night"
    assert_one_line_error(*run_cli(capsys, *argv),
                          f"{(cart.parent / 'afile').absolute()} is a file, not a folder")
    # ... or which is a link to nothing there ("File exists" too: a share not mounted).
    (cart.parent / "gone").symlink_to(cart.parent / "unmounted" / "results")
    argv[argv.index("--out") + 1] = cart.parent / "gone"
    assert_one_line_error(*run_cli(capsys, *argv), "gone is a link to "
                          f"{cart.parent / 'unmounted' / 'results'}, which is not there")


def test_an_out_this_user_may_not_make_is_the_machines_state_exit_4(cart_and_model, cart,
                                                                    capsys, monkeypatch):
    """--out in a folder the job may not write (a mount it has no rights on): exit 4 as the
    exit-status table says, naming the folder and what to do; it was 2, a bad input's."""
    import errno
    from pathlib import Path

    out = cart.parent / "out"
    made = Path.mkdir

    def refused(self, *args, **kwargs):
        if self == out:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return made(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refused)
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart))
    assert_one_line_error(status, err, f"cannot create output folder: Permission denied "
                                       f"({out}); nothing was left half written, make the "
                                       "folder writable", code=4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_with_onnx_without_a_gpu_is_refused(cart_and_model, cart, capsys, tmp_path):
    from ctcnet.deploy.export import export_onnx

    export_onnx(cart_and_model / "model.pt", tmp_path / "m.onnx")
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--device", "cuda"))
    assert_one_line_error(status, err, "no CUDA device")
    argv = predict_args(cart_and_model, cart, "--device", "cuda", "--backend", "onnx")
    argv[argv.index("--model") + 1] = tmp_path / "m.onnx"
    status, err = run_cli(capsys, *argv)
    assert_one_line_error(status, err, "onnxruntime cannot use CUDA")


def test_pickled_checkpoint_refusal_is_one_line(tmp_path, capsys, cart):
    from argparse import Namespace

    torch.save({"x": Namespace(a=1)}, tmp_path / "evil.pt")  # not weights-only loadable
    status, err = run_cli(capsys, "predict", cart, "--out", tmp_path / "o", "--model",
                          tmp_path / "evil.pt", "--device", "cpu", "--quiet")
    assert_one_line_error(status, err, "pickled Python objects besides tensors, which ctcnet "
                                       "never loads")
    assert "weights_only" not in err[0]  # torch's advice on loading it anyway is not passed on
    (tmp_path / "cut.pt").write_bytes((tmp_path / "evil.pt").read_bytes()[:40])
    status, err = run_cli(capsys, "predict", cart, "--out", tmp_path / "o", "--model",
                          tmp_path / "cut.pt", "--device", "cpu", "--quiet")
    assert_one_line_error(status, err, "not a loadable ctcnet checkpoint")
    # Not a torch archive at all (text, or an ONNX file under another name): said so, not
    # taken for pickled objects.
    (tmp_path / "notes.txt").write_text("hello\n")
    for model in ("notes.txt", "cut.pt"):
        if model == "cut.pt":
            (tmp_path / "cut.pt").write_bytes(b"\x08\x07\x12\x07pytorch")  # ONNX's start
        status, err = run_cli(capsys, "predict", cart, "--out", tmp_path / "o", "--model",
                              tmp_path / model, "--device", "cpu", "--quiet")
        assert_one_line_error(status, err, "not a ctcnet checkpoint: a .pt model is a torch "
                                           "archive")
        assert "pickled Python objects" not in err[0]


# Model folders, list files and output paths.

def _finishes(work, seconds=20.0):
    """Run ``work`` in a thread; whether it finished in time (a FIFO opened would block it)."""
    import threading

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


def test_a_fifo_in_the_models_folder_is_skipped_not_opened(cart_and_model, cart, tmp_path,
                                                           monkeypatch, capsys, caplog):
    from ctcnet.nn import registry

    folder = tmp_path / "site_models"
    folder.mkdir()
    shutil.copy(cart_and_model / "model.pt", folder / "piped.pt")
    os.mkfifo(folder / "piped.json")  # a card that is a FIFO, beside real weights
    os.mkfifo(folder / "other.pt")
    (folder / "other.json").write_text("{}")
    monkeypatch.setenv(registry.MODELS_ENV, str(folder))
    found = []
    assert _finishes(lambda: found.extend(registry.list_models())), "a FIFO was opened"
    assert "piped" not in [m.name for m in found]
    skipped = [r.getMessage() for r in caplog.records if "not a regular file" in r.getMessage()]
    assert any("piped.json" in m for m in skipped) and any("other.pt" in m for m in skipped)
    assert _finishes(lambda: found.append(run_cli(capsys, "models")))
    assert found[-1][0] == 0
    # A FIFO given as --model is refused by name, never opened.
    assert _finishes(lambda: found.append(run_cli(
        capsys, "predict", cart, "--out", tmp_path / "o", "--model", folder / "other.pt",
        "--device", "cpu", "--quiet")))
    assert_one_line_error(*found[-1], f"{folder / 'other.pt'}: not a regular file: a FIFO")


def test_models_env_naming_a_file_is_refused(cart_and_model, cart, monkeypatch, capsys):
    from ctcnet.nn import registry

    monkeypatch.setenv(registry.MODELS_ENV, str(cart_and_model / "model.pt"))
    assert_one_line_error(
        *run_cli(capsys, "models"),
        f"{cart_and_model / 'model.pt'}: named in $CTCNET_MODELS but not a folder")
    # Predict looks the model up by the data's channels: refused the same way.
    status, err = run_cli(capsys, "predict", cart, "--out", cart.parent / "out", "--device",
                          "cpu", "--quiet", "--no-report")
    assert_one_line_error(status, err, "named in $CTCNET_MODELS but not a folder")
    assert not (cart.parent / "out").exists()


def test_a_list_file_that_names_itself_is_refused(cart_and_model, cart, capsys):
    from ctcnet.io.input_lists import expand_list_files

    lists = cart.parent
    (lists / "self.txt").write_text("# a list of one list: itself\nself.txt\n")
    (lists / "a.txt").write_text(f"{cart}\nb.txt\n")
    (lists / "b.txt").write_text("cart\na.txt\n")
    (lists / "twice.txt").write_text("c.txt\nc.txt\n")  # the same list twice: no cycle
    (lists / "c.txt").write_text("cart\n")
    for name, chain in (("self.txt", "self.txt -> "), ("a.txt", "b.txt -> ")):
        argv = predict_args(cart_and_model, cart)
        argv[1] = lists / name
        status, err = run_cli(capsys, *argv)
        assert_one_line_error(status, err, "list file names itself")
        assert chain in err[0] and str(lists / name) in err[0]
        with pytest.raises(InputError, match="names itself"):
            expand_list_files([lists / name])
    assert expand_list_files([lists / "twice.txt"]) == [lists / "cart"] * 2
    assert not (cart.parent / "out").exists()


def test_negative_workers_are_refused_not_read_as_inline(cart_and_model, cart, capsys):
    argv = predict_args(cart_and_model, cart)
    argv[argv.index("--workers") + 1] = "-3"
    assert_one_line_error(*run_cli(capsys, *argv), "--workers must be 0 (inline) or more, got -3")
    assert not (cart.parent / "out").exists()


def test_a_list_file_naming_nothing_or_no_path_is_refused_by_line(cart_and_model, cart, capsys):
    """A list that came out empty is no run (a nightly job must not pass on nothing), and a
    text file that is no list (a CSV) is refused at its first line, naming the list and the
    line, not as a path made of its header."""
    lists = cart.parent
    (lists / "empty.txt").write_text("# tonight's cartridges\n\n")
    (lists / "table.csv").write_text("frame,row,col,x,y\n0,0,0,1,2\n")
    (lists / "late.txt").write_text("cart\n# a comment\nno_such_cartridge\n")
    for name, says in (("empty.txt", "the list file names no inputs"),
                       ("table.csv", "line 1 names 'frame,row,col,x,y', which does not exist"),
                       ("late.txt", "line 3 names 'no_such_cartridge', which does not exist")):
        argv = predict_args(cart_and_model, cart)
        argv[1] = lists / name
        status, err = run_cli(capsys, *argv)
        assert_one_line_error(status, err, says)
        assert str(lists / name) in err[0]
    # A scan's own file given for its folder (cartridge.json): said so, not read as a list.
    argv = predict_args(cart_and_model, cart)
    argv[1] = cart / "cartridge.json"
    status, err = run_cli(capsys, *argv)
    assert_one_line_error(status, err, f"a .json file, no list of inputs: pass the folder "
                                       f"holding it ({cart})")
    assert not (cart.parent / "out").exists()


def test_a_list_file_saved_by_a_windows_editor_reads_as_written(tmp_path):
    """A list saved by Notepad (a byte-order mark, CRLF, UTF-16, an accented folder name in
    Windows-1252) names what its author typed; a folder whose name ends in a space is found;
    a binary file is no list."""
    from ctcnet.io.input_lists import read_list_file

    for name in ("Probe Müller", "trail "):
        (tmp_path / name).mkdir()
    text = "Probe Müller\r\ntrail \r\n"
    for encoding, data in (("utf-8-sig", text.encode("utf-8-sig")),
                           ("utf-16", text.encode("utf-16")),
                           ("cp1252", text.encode("cp1252"))):
        (tmp_path / "list.txt").write_bytes(data)
        assert read_list_file(tmp_path / "list.txt") == [tmp_path / "Probe Müller",
                                                         tmp_path / "trail "], encoding
    # Windows' "Copy as path" quotes each path: read as the path it quotes.
    (tmp_path / "list.txt").write_text(f'"{tmp_path / "Probe Müller"}"\n\'Probe Müller\'\n')
    assert read_list_file(tmp_path / "list.txt") == [tmp_path / "Probe Müller"] * 2
    (tmp_path / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(InputError, match="not a list of cartridge folders"):
        read_list_file(tmp_path / "blob.txt")
    # A line that names nothing as written, but one folder alike: said, not guessed.
    (tmp_path / "nights" / "S2").mkdir(parents=True)
    for line, meant in (("nights/s2", "S2"), ("nights\\S2", "nights/S2"),
                        ("probe mu\u0308ller", "Probe Müller")):
        (tmp_path / "list.txt").write_text(line + "\n")
        with pytest.raises(InputError, match="did you mean") as refused:
            read_list_file(tmp_path / "list.txt")
        assert meant in str(refused.value)


def test_pixel_size_given_for_a_cartridge_is_said_to_be_unused(cart_and_model, cart, capsys):
    """--pixel-size is for crop folders: on a cartridge the run says so instead of ignoring it
    silently, and reads the cartridge at its panel.json's pixel size."""
    status, err = run_cli(capsys, *predict_args(cart_and_model, cart, "--pixel-size", "0.5"))
    assert status == 0
    assert any("--pixel-size (PredictOptions.pixel_size) is for crop folders" in line
               for line in err)


def test_the_global_quiet_leaves_only_errors(cart_and_model, cart, capsys):
    args = ["predict", str(cart), "--out", str(cart.parent / "q"), "--model",
            str(cart_and_model / "model.pt"), "--device", "cpu", "--no-report", "--workers", "0"]
    from ctcnet.cli import main

    assert main(["--quiet", *args]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_cartridge_this_user_may_not_read_is_set_aside_not_blamed_on_the_output(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """A cartridge folder or metadata the user may not read is an input's problem: set aside
    with its reason (the others run), not a stop of the batch that blames --out."""
    import ctcnet.io.cartridge_info as cartridge_info
    import ctcnet.io.scan as scan

    scans, out = tmp_path / "scans", tmp_path / "out"
    for name in ("a", "b"):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=f"S_{name}")
    real = scan.read_cartridge_info

    def locked(root):
        if Path(root).name == "b":
            raise PermissionError(errno.EACCES, "Permission denied", str(root / "cartridge.json"))
        return real(root)

    monkeypatch.setattr(scan, "read_cartridge_info", locked)
    monkeypatch.setattr(cartridge_info, "read_cartridge_info", locked)  # its sample id too
    status, err = run_cli(capsys, "predict", scans / "a", scans / "b", "--out", out,
                          *quiet_batch(cart_and_model))
    assert status == 2 and (out / "S_a" / "summary.json").is_file()
    said = [line for line in err if "error:" in line]
    assert len(said) == 1 and "b was set aside" in said[0] and "Permission denied" in said[0]
    assert "--out" not in said[0] and "writable" not in said[0]
    run = run_outputs(out)
    assert "Permission denied" in run["b"]["set_aside"]
    assert run["b"]["input"] == str(scans / "b")  # the folder refused, named apart
    assert run["b"]["set_aside_kind"] == "input"  # the scan's: the lab's matter


def test_a_scan_out_of_reach_in_a_folder_of_cartridges_is_set_aside_not_passed_over(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """A subfolder this user may not read (a share's access list) or a link whose target is
    gone (a share not mounted) may be a patient's scan: set aside with the reason and exit 2,
    never a night that reads finished without it. A system's own folder is no scan."""
    scans, out = tmp_path / "scans", tmp_path / "out"
    shutil.copytree(cart_and_model / "cart", scans / "a")
    (scans / "P042").symlink_to(tmp_path / "unmounted" / "P042")
    for name in ("locked", "lost+found"):
        (scans / name).mkdir()
    real = Path.iterdir

    def iterdir(self):
        if self.name in ("locked", "lost+found"):  # as a folder of mode 000 reads to a user
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    status, err = run_cli(capsys, "predict", scans, "--out", out,
                          *quiet_batch(cart_and_model))
    assert status == 2 and (out / "S1" / "summary.json").is_file()
    run = run_outputs(out)
    assert set(run) == {"S1", "P042", "locked"}
    assert "a link to" in run["P042"]["set_aside"] and "not mounted" in run["P042"]["set_aside"]
    assert "set_aside" in run["locked"] and run["locked"]["input"] == str(scans / "locked")
    rows = pd.read_csv(out / "samples.csv").set_index("name")
    assert rows.loc["P042", "input"] == str(scans / "P042")


def test_sample_ids_alike_but_for_case_are_one_folder_on_a_share_and_set_aside(
        cart_and_model, tmp_path, capsys):
    """"S1" and "s1" are one folder on a Windows or macOS share: in one batch both are set
    aside, naming each other; a later run of one into an --out holding the other's output is
    refused, not written into it."""
    scans, out = tmp_path / "scans", tmp_path / "out"
    for name, sid in (("a", "S1"), ("b", "s1"), ("c", "S2")):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=sid)
    args = ["--out", out, *quiet_batch(cart_and_model)]
    status, err = run_cli(capsys, "predict", scans, *args)
    assert status == 2 and (out / "S2" / "summary.json").is_file()
    assert not (out / "S1").exists() and not (out / "s1").exists()
    aside = [e for e in json.loads((out / "run.json").read_text())["outputs"]
             if "set_aside" in e]
    assert len(aside) == 2 and all("tells no case apart" in e["set_aside"] for e in aside)
    assert {e["input"] for e in aside} == {str(scans / "a"), str(scans / "b")}
    status, err = run_cli(capsys, "predict", scans / "c", *args[:1], out, *args[2:])
    assert status == 0
    edit_json(scans / "b" / "cartridge.json", sample_id="s2")
    index = (out / "run.json").read_text()
    status, err = run_cli(capsys, "predict", scans / "b", *args)
    said = [line for line in err if "error:" in line]
    assert status == 2 and len(said) == 1 and "already holds the output of sample 'S2'" in said[0]
    # Refused before any work, as a lone input's refusal is: the last night's index stands,
    # reading "failed" with the refusal (not "finished", tonight's to a monitor).
    after = json.loads((out / "run.json").read_text())
    assert not (out / "s2").exists() and after["state"] == "failed"
    assert "already holds the output of sample 'S2'" in after["error"]
    assert after["outputs"] == json.loads(index)["outputs"]


def test_a_sample_whose_output_folder_cannot_be_written_is_set_aside_the_others_run(
        cart_and_model, tmp_path, capsys, monkeypatch):
    import ctcnet.inference.predict as predicting

    scans, out = tmp_path / "scans", tmp_path / "out"
    for name in ("a", "b"):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=f"S_{name}")
    real = predicting.exclusive_folder

    def locked(folder, *args, **kwargs):
        if Path(folder).name == "S_a":  # the first sample's folder: the run must go on
            raise PermissionError(errno.EACCES, "Permission denied", str(folder / ".lock"))
        return real(folder, *args, **kwargs)

    monkeypatch.setattr(predicting, "exclusive_folder", locked)
    status, err = run_cli(capsys, "predict", scans, "--out", out,
                          *quiet_batch(cart_and_model))
    assert status == 2 and (out / "S_b" / "summary.json").is_file()
    run = run_outputs(out)
    assert "cannot write its output folder (Permission denied)" in run["S_a"]["set_aside"]
    assert run["S_a"]["input"] == str(scans / "a")
    assert run["S_b"]["status"] == "ok" and run_state(out) == "finished"


@pytest.mark.parametrize("blocked", ["S_a", "S_a/parts"])
def test_a_file_where_a_samples_folder_goes_sets_it_aside_the_others_run(
        cart_and_model, tmp_path, capsys, blocked):
    """A file standing where a sample's folder (or its journal's folder) goes is that
    sample's refusal, said so, not the batch's end with a traceback."""
    scans, out = tmp_path / "scans", tmp_path / "out"
    for name in ("a", "b"):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=f"S_{name}")
    (out / blocked).parent.mkdir(parents=True, exist_ok=True)
    (out / blocked).write_text("not a folder")
    status, err = run_cli(capsys, "predict", scans, "--out", out,
                          *quiet_batch(cart_and_model))
    assert status == 2 and (out / "S_b" / "summary.json").is_file()
    run = run_outputs(out)
    said = ("a file stands where a folder goes" if blocked == "S_a" else
            "parts: is a file, not a folder: ctcnet keeps the run's journal")
    assert said in run["S_a"]["set_aside"]
    assert run["S_b"]["status"] == "ok" and run_state(out) == "finished"


def run_state(out) -> str:
    return json.loads((Path(out) / "run.json").read_text())["state"]


def run_outputs(out) -> dict:
    """run.json's entries of --out, by name."""
    return {e["name"]: e for e in json.loads((Path(out) / "run.json").read_text())["outputs"]}


def quiet_batch(cart_and_model) -> list:
    """The arguments of a quick batch run with the tiny model, after the inputs and --out."""
    return ["--model", cart_and_model / "model.pt", "--device", "cpu", "--quiet", "--no-report",
            "--workers", "0"]


def test_a_sample_set_aside_one_night_and_run_the_next_is_no_longer_set_aside(
        cart_and_model, tmp_path, capsys):
    """Night 2 refuses a cartridge (a blood volume no tube holds); night 3, its metadata
    mended, takes every frame from the journal and writes the same tables, keeping night 1's
    counted_at: run.json must still read it as run, not as set aside since night 2."""
    scans, out = tmp_path / "scans", tmp_path / "out"
    for name in ("a", "b"):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=f"S_{name}")
    model = quiet_batch(cart_and_model)
    assert run_cli(capsys, "predict", scans, "--out", out, *model)[0] == 0
    counted = json.loads((out / "S_a" / "summary.json").read_text())["counted_at"]
    volume = json.loads((scans / "a" / "cartridge.json").read_text()).get("blood_volume_ml")
    edit_json(scans / "a" / "cartridge.json", blood_volume_ml=10000)
    assert run_cli(capsys, "predict", scans, "--out", out, *model)[0] == 2
    run = run_outputs(out)
    assert "set_aside" in run["S_a"]
    edit_json(scans / "a" / "cartridge.json", blood_volume_ml=volume or 7.5)
    assert run_cli(capsys, "predict", scans, "--out", out, *model)[0] == 0
    run = run_outputs(out)
    assert "set_aside" not in run["S_a"] and run["S_a"]["status"] == "ok"
    assert json.loads((out / "S_a" / "summary.json").read_text())["counted_at"] == counted


def test_a_batch_sets_a_refused_cartridge_aside_and_runs_the_others(cart_and_model, tmp_path,
                                                                     capsys):
    """One bad cartridge of a night's batch (metadata that cannot be read, another run's
    journal in its folder) is set aside with its reason; the others run; exit 2 at the end."""
    scans, out = tmp_path / "scans", tmp_path / "out"
    for name in ("a", "b", "c"):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=f"S_{name}")
    (scans / "b" / "cartridge.json").write_text("{not json")
    model = ["--model", cart_and_model / "model.pt", "--device", "cpu", "--quiet",
             "--no-report", "--workers", "0", "--prior", "balanced"]
    # another run's journal in S_c's folder: other detection settings
    assert run_cli(capsys, "predict", scans / "c", "--out", out, *model,
                   "--threshold-snr", "7")[0] == 0
    status, err = run_cli(capsys, "predict", scans, "--out", out, *model)
    assert status == 2
    assert (out / "S_a" / "events.parquet").is_file()
    assert not (out / "b").exists()
    set_aside = [line for line in err if line.startswith("ctcnet predict: error:")]
    assert len(set_aside) == 2
    assert any("b was set aside" in line and "cartridge.json" in line for line in set_aside)
    assert any("S_c was set aside" in line for line in set_aside)
    run = run_outputs(out)
    assert run["S_a"]["status"] == "ok" and "set_aside" in run["b"] and \
        "set_aside" in run["S_c"]
    # Alone, a refused cartridge still stops the run at once, in one line.
    assert_one_line_error(*run_cli(capsys, "predict", scans / "b", "--out", tmp_path / "o2",
                                   *model), "cartridge.json")
    # Two cartridges of one sample id (which one the lab meant no run can tell): both set
    # aside, each naming the other's folder; the rest of the batch runs, and run.json says so.
    shutil.copytree(scans / "a", scans / "d")
    (scans / "b" / "cartridge.json").unlink()
    shutil.rmtree(scans / "b")
    status, err = run_cli(capsys, "predict", scans, "--out", tmp_path / "o3", *model)
    assert status == 2
    said = [line for line in err if line.startswith("ctcnet predict: error:")]
    assert any(f"is that of {scans / 'd'} too" in line for line in said), said
    run = run_outputs(tmp_path / "o3")
    assert "set_aside" in run[f"S_a ({scans / 'a'})"] and \
        "set_aside" in run[f"S_a ({scans / 'd'})"], list(run)
    assert run["S_c"]["status"] == "ok" and not (tmp_path / "o3" / "S_a").exists()
    # ... even where one of them would be refused on its own too (the clash is told first,
    # as run.json names them); and a folder named twice runs once.
    edit_json(scans / "d" / "cartridge.json", blood_volume_ml=10000)
    status, err = run_cli(capsys, "predict", scans, "--out", tmp_path / "o4", *model)
    run = run_outputs(tmp_path / "o4")
    assert status == 2 and set(run) == {f"S_a ({scans / 'a'})", f"S_a ({scans / 'd'})", "S_c"}
    assert all("set_aside" in run[n] for n in run if n != "S_c")
    status, err = run_cli(capsys, "predict", scans / "c", scans / "c", "--out",
                          tmp_path / "o5", *model)
    assert status == 0 and (tmp_path / "o5" / "S_c" / "summary.json").is_file()
    # A folder whose cartridge.json cannot be read goes by its folder's name: named as
    # another's sample id, both are set aside (run.json names them so), the other not run.
    shutil.rmtree(scans / "d")
    shutil.copytree(scans / "c", scans / "S_a")
    (scans / "S_a" / "cartridge.json").write_text('{"sample_id": "S_a", "num_frames": ')
    status, err = run_cli(capsys, "predict", scans, "--out", tmp_path / "o6", *model)
    run = run_outputs(tmp_path / "o6")
    assert status == 2 and not (tmp_path / "o6" / "S_a").exists()
    assert "set_aside" in run[f"S_a ({scans / 'a'})"] and "set_aside" in run[
        f"S_a ({scans / 'S_a'})"] and run["S_c"]["status"] == "ok"
    assert not [p for p in (tmp_path / "o6" / ".set_aside").rglob("*") if p.is_dir()]
    assert "its metadata cannot be read" in run[f"S_a ({scans / 'S_a'})"]["set_aside"]
    # Where the sample id has an output of an earlier night, that output's row (once) says
    # why tonight did not replace it; the set-aside rows carry no figures of it.
    assert run_cli(capsys, "predict", scans / "a", "--out", tmp_path / "o7", *model)[0] == 0
    assert run_cli(capsys, "predict", scans, "--out", tmp_path / "o7", *model)[0] == 2
    rows = pd.read_csv(tmp_path / "o7" / "samples.csv").set_index("name")
    assert rows.loc["S_a", "earlier_run"] and "set aside" in rows.loc["S_a", "set_aside"]
    assert rows.loc["S_a", "count_ctc"] == json.loads(
        (tmp_path / "o7" / "S_a" / "summary.json").read_text())["counts"]["ctc"]
    clash = rows[rows.index.str.startswith("S_a (")]
    assert len(clash) == 2 and clash["count_ctc"].isna().all()


def test_a_file_where_the_runs_refusals_are_kept_is_refused_before_any_work(
        cart_and_model, tmp_path, capsys):
    """--out/.set_aside, where a run keeps its refusals, taken by a file: one line before any
    work, not a traceback as the night's index is written."""
    out = tmp_path / "out"
    out.mkdir()
    (out / ".set_aside").write_text("not a folder")
    status, err = run_cli(capsys, "predict", cart_and_model / "cart", "--out", out,
                          *quiet_batch(cart_and_model))
    assert status == 2 and len(err) == 1 and ".set_aside is not a folder" in err[0], err
    assert not (out / "run.json").exists()


def test_a_frame_device_this_install_cannot_use_is_the_runs_refusal(cart_and_model, tmp_path,
                                                                    capsys, monkeypatch):
    """--frame-device cuda on an install without torch: one line before any work, not every
    cartridge of the night set aside for it ("the other inputs run", which failed alike)."""
    import ctcnet.inference.frame_device as F

    monkeypatch.setattr(F, "has_torch", lambda: False)
    scans, out = tmp_path / "scans", tmp_path / "out"
    for name in ("a", "b"):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=f"S_{name}")
    status, err = run_cli(capsys, "predict", scans, "--out", out, "--frame-device", "cuda",
                          *quiet_batch(cart_and_model))
    assert_one_line_error(status, err, "frame device 'cuda' needs torch")
    assert not (out / "run.json").exists() and not (out / "S_a").exists()


def test_a_home_folder_the_shell_did_not_expand_is_said_not_written_beside(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """`--out "~/ctc results"` (quoted in a cron script) wrote a folder named '~' here while
    pandas read the sample's journal back from the home folder's: another scan's events, exit
    0, where one was there."""
    monkeypatch.chdir(tmp_path)
    cart = cart_and_model / "cart"
    args = predict_args(cart_and_model, cart)
    args[args.index("--out") + 1] = "~/ctc results"
    assert_one_line_error(*run_cli(capsys, *args), "begins with a '~' the shell did not expand")
    args[1], args[args.index("--out") + 1] = "~/scans/S1", "out"
    assert_one_line_error(*run_cli(capsys, *args), "input not found: it begins with a '~'")
    assert not (tmp_path / "~").exists()
    with pytest.raises(InputError, match="the shell did not expand"):
        predict_cartridge(cart, load_backend(cart_and_model / "model.pt", device="cpu"),
                          "~/ctc results/S1")


@pytest.mark.parametrize("inside", [True, False])
def test_an_out_in_or_equal_to_a_crop_folder_read_is_refused_before_any_output(
        cart_and_model, crops, capsys, inside):
    """Its gallery's images were read as crops by every later run of the folder, and the
    folder, holding run.json, was then refused as a predict output."""
    out = crops / "results" if inside else crops
    before = sorted(p.name for p in crops.rglob("*"))
    status, err = run_cli(capsys, "predict", crops, "--out", out, "--model",
                          cart_and_model / "model.pt", "--device", "cpu", "--quiet")
    assert_one_line_error(status, err, "the crop folder")
    assert "choose an --out outside it" in err[0]
    assert sorted(p.name for p in crops.rglob("*")) == before


def test_a_crop_folder_named_as_no_sample_may_be_is_refused_by_its_name(cart_and_model, crops,
                                                                        capsys):
    """A cartridge's sample id with characters Windows cannot name a file with is refused; a
    crop folder so named became an output folder no lab's share could open."""
    odd = crops.parent / 'crops "x" :|'
    crops.rename(odd)
    status, err = run_cli(capsys, "predict", odd, "--out", odd.parent / "out", "--model",
                          cart_and_model / "model.pt", "--device", "cpu", "--quiet")
    assert_one_line_error(status, err, "the crop folder's name 'crops \"x\" :|' must be a "
                                       "plain name")


def test_list_outputs_names_each_inputs_output_folder_and_writes_nothing(
        cart_and_model, cart, capsys):
    """A workflow engine declares a job's outputs before it runs: the output folder is the
    sample id cartridge.json gives (S1), not the input's name (cart); listed, nothing made."""
    from ctcnet.cli import main

    out = cart.parent / "results x"
    assert main(["predict", str(cart), "--out", str(out), "--list-outputs"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said == [f"{cart.absolute()}\t{(out / 'S1').absolute()}"]
    assert not out.exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_list_outputs_that_cannot_be_written_fail_the_command(cart, tmp_path):
    """Its printed lines are the command's whole result: written to a full device (or a
    closed pipe), the list was dropped as a run's progress is and the command exited 0, a
    workflow engine declaring no outputs."""
    import subprocess
    import sys

    done = subprocess.run(f'"{sys.executable}" -m ctcnet predict "{cart}" --out '
                          f'"{tmp_path / "out"}" --list-outputs > /dev/full', shell=True,
                          capture_output=True, text=True)
    assert done.returncode == 4 and "No space left on device (stdout" in done.stderr


def test_a_shard_refuses_the_inputs_its_list_outputs_set_aside(cart_and_model, tmp_path,
                                                              capsys):
    """Two scans of one sample id: the job of the array whose --list-outputs sets them aside
    (exit 2) is the job whose run refuses them, whatever folders they lie in (the run had
    split its refusals by a hash of the name and the folder, list-outputs by the name)."""
    from ctcnet.cli import main

    scans, out = tmp_path / "scans", tmp_path / "out"
    for name, sample in zip("abcdef", ("S_p", "S_p", "S_q", "S_q", "S_r", "S_r")):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=sample)
    model = str(cart_and_model / "model.pt")
    statuses = []
    for k in (1, 2):
        listed = main(["predict", str(scans), "--out", str(out), "--list-outputs",
                       "--shard", f"{k}/2"])
        ran = main(["predict", str(scans), "--out", str(out), "--model", model,
                    "--shard", f"{k}/2", "--quiet"])
        assert listed == ran, f"share {k}/2"
        statuses.append(ran)
    # Each pair falls to the share of its sample id: one share at least refuses a pair.
    from ctcnet.inference.distributed import stable_rank

    assert statuses == [2 if any(stable_rank(i, 2) == k for i in ("S_p", "S_q", "S_r")) else 0
                        for k in (0, 1)]
    capsys.readouterr()


def test_list_outputs_lists_a_shards_share_and_says_what_the_run_would_set_aside(
        cart_and_model, tmp_path, capsys):
    """A job array's job declares its share alone (--shard), as the run splits the inputs by
    name; two scans of one sample id, or a sample id no folder can be named by, are listed
    with the run's refusal and exit 2, as the run would (both read as outputs, exit 0)."""
    from ctcnet.cli import main

    scans, out = tmp_path / "scans", tmp_path / "out"
    for name in ("a", "b", "c", "d"):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=f"S_{name}")
    shares = []
    for k in (1, 2):
        assert main(["predict", str(scans), "--out", str(out), "--list-outputs",
                     "--shard", f"{k}/2"]) == 0
        shares.append(capsys.readouterr().out.splitlines())
    assert sorted(shares[0] + shares[1]) == sorted(
        f"{(scans / n).absolute()}\t{(out / f'S_{n}').absolute()}" for n in "abcd")
    assert shares[0] and shares[1]
    edit_json(scans / "b" / "cartridge.json", sample_id="S_a")
    edit_json(scans / "c" / "cartridge.json", sample_id=["x", "y"])
    assert main(["predict", str(scans), "--out", str(out), "--list-outputs"]) == 2
    said = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    assert said[str((scans / "b").absolute())].endswith(
        "\tset aside: its sample id is another input's: their outputs would be one folder")
    assert "\tset aside: cartridge.json: sample_id ['x', 'y'] must be a plain name" in \
        said[str((scans / "c").absolute())]
    assert "set aside" not in said[str((scans / "d").absolute())]
    # A scan without a channel the model reads (a night's odd panel): set aside, as the run
    # sets it aside (listed as an output it would never write).
    panel = json.loads((scans / "d" / "panel.json").read_text())
    panel["channels"][-1] = "EpCAM"
    (scans / "d" / "panel.json").write_text(json.dumps(panel))
    assert main(["predict", str(scans), "--out", str(out), "--list-outputs", "--model",
                 str(cart_and_model / "model.pt")]) == 2
    said = dict(line.split("\t", 1) for line in capsys.readouterr().out.splitlines())
    assert "\tset aside: channel mismatch" in said[str((scans / "d").absolute())]
    assert not out.exists()


def test_a_frame_read_into_two_samples_is_named_in_each(cart_and_model, cart, tmp_path,
                                                         capsys):
    """A frame's file copied (or linked) into another patient's folder: both samples came
    out ok, the frame's cells counted in each, without a word (one scan under two ids was
    said; one frame was not). run.json names the frames in each, and the run warns."""
    from ctcnet.io.panel import load_panel
    from ctcnet.simulate import simulate_cartridge

    batch = tmp_path / "batch"
    shutil.copytree(cart, batch / "S1")
    simulate_cartridge(batch / "S2", load_panel(None), num_frames=3, frame_shape=(128, 160),
                       seed=6, events_per_frame=8, sample_id="S2")
    shutil.copyfile(batch / "S1" / "r00c00.tif", batch / "S2" / "r00c01.tif")
    argv = predict_args(cart_and_model, batch)
    argv[argv.index("--out") + 1] = tmp_path / "out"
    status, err = run_cli(capsys, *argv)
    entries = {e["name"]: e for e in
               json.loads((tmp_path / "out" / "run.json").read_text())["outputs"]}
    assert entries["S1"]["frames_shared_with"] == {"S2": ["r00c01"]}
    assert entries["S2"]["frames_shared_with"] == {"S1": ["r00c00"]}
    assert any("read as frames of S2 too" in line for line in err), err


def test_a_bad_shard_is_refused_before_a_model_is_chosen_and_named(cart, capsys):
    """--shard 3/2 with the model left to predict's choice: the model was chosen and named on
    the console before the refusal, two lines where a slip gets one."""
    status, err = run_cli(capsys, "predict", cart, "--out", cart.parent / "out", "--shard",
                          "3/2")
    assert_one_line_error(status, err, "--shard is K/N with 1 <= K <= N")
    assert not (cart.parent / "out").exists()
