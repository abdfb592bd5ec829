"""A nightly batch as an unattended job reads it: one sample's trouble (its folder made
read-only, its report not written for a full disk) is that sample's, said in run.json with why,
and never an "ok" line; a sample another run of the batch finished is no refusal."""

import errno
import io
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
import tifffile
from conftest import edit_json, run_cli

from ctcnet.cli import main
from ctcnet.errors import InputError
from ctcnet.inference.run_index import refusals_that_stand


def batch(cart_and_model, tmp_path) -> tuple[Path, Path]:
    """Two copies of the test cartridge, S_a and S_b, in a folder of cartridges; and --out."""
    scans = tmp_path / "scans"
    for name in ("a", "b"):
        shutil.copytree(cart_and_model / "cart", scans / name)
        edit_json(scans / name / "cartridge.json", sample_id=f"S_{name}")
    return scans, tmp_path / "out"


def options(cart_and_model) -> list:
    return ["--model", cart_and_model / "model.pt", "--device", "cpu", "--workers", "0"]


def outputs(out) -> dict:
    return {e["name"]: e for e in json.loads((Path(out) / "run.json").read_text())["outputs"]}


def test_a_sample_folder_made_read_only_is_set_aside_and_the_others_run(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """A signed-off sample frozen with chmod 555: its lock opens (the file is there), its
    tables cannot be written. Before, the batch ended there and later cartridges never ran."""
    import ctcnet.inference.rerun_outputs as predicting  # where the tables are written

    scans, out = batch(cart_and_model, tmp_path)
    real = predicting.write_tables

    def frozen(out_dir, *args, **kwargs):
        if Path(out_dir).name == "S_a":
            raise PermissionError(errno.EACCES, "Permission denied",
                                  str(Path(out_dir) / "events.parquet"))
        return real(out_dir, *args, **kwargs)

    monkeypatch.setattr(predicting, "write_tables", frozen)
    status, err = run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--no-report",
                          *options(cart_and_model))
    assert status == 2
    run = outputs(out)
    assert "cannot write its output folder (Permission denied)" in run["S_a"]["set_aside"]
    assert run["S_a"]["set_aside_kind"] == "output"  # for whoever runs the job, not the lab
    assert run["S_b"]["status"] == "ok"
    assert json.loads((out / "run.json").read_text())["state"] == "finished"


def test_a_report_a_full_disk_stopped_is_no_ok_line_and_run_json_says_why(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """Drawn beside the next cartridge (a thread here, so the test reaches it), the report
    meets a full disk: the machine's state, which every later report would meet alike, so the
    run stops (exit 4, not 2, the input's code: it went on into the next samples before) and
    run.json says why; the sample has no summary.json, so no result, and a rerun draws it."""
    import ctcnet.inference.predict as predicting
    import ctcnet.report.run_report as report
    from ctcnet.inference.report_overlap import ReportWorker

    monkeypatch.setattr(predicting, "report_worker",
                        lambda *a: ReportWorker("thread", failed=a[3]))
    scans, out = batch(cart_and_model, tmp_path)
    real = report.write_gallery

    def full(out_dir, *args, **kwargs):
        if Path(out_dir).name == "S_a":
            raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / "gallery"))
        return real(out_dir, *args, **kwargs)

    monkeypatch.setattr(report, "write_gallery", full)
    status = main([str(a) for a in ("predict", scans, "--out", out,
                                    *options(cart_and_model))])
    printed = capsys.readouterr()
    assert status == 4
    assert not [line for line in printed.out.splitlines() if line.startswith("S_a")]
    assert "No space left on device" in printed.err and "free space and rerun" in printed.err
    index = json.loads((out / "run.json").read_text())
    assert index["state"] == "failed" and "No space left on device" in index["error"]
    assert not (out / "S_a" / "summary.json").exists()
    monkeypatch.setattr(report, "write_gallery", real)  # space freed: the rerun finishes
    assert main([str(a) for a in ("predict", scans, "--out", out,
                                  *options(cart_and_model))]) == 0
    run = outputs(out)
    assert run["S_a"]["status"] == "ok" and run["S_b"]["status"] == "ok"


def test_a_sample_another_run_finished_or_holds_is_no_refusal_of_this_one():
    from ctcnet.errors import FolderHeldError, InputError
    from ctcnet.inference.output_names import set_aside_reason

    index = {"outputs": [{"name": "S1", "summary": "S1/summary.json"},
                         {"name": "S2", "set_aside": "bad"},
                         {"name": "S3", "set_aside": "held", "set_aside_kind": "held"}]}
    held = FolderHeldError("another ctcnet predict is writing", "S3", held_since=1.0)
    aside = {"S1": set_aside_reason("held", "a", held), "S2": set_aside_reason("bad", "b",
                                                                               InputError("x")),
             "S3": set_aside_reason("held", "c", held)}
    assert refusals_that_stand(index, aside) == {"S2": "bad"}


def test_a_run_keeps_its_log_in_out_with_utc_times_whatever_the_console(
        cart_and_model, tmp_path, capsys):
    """--quiet keeps the console silent on a clean night; the log under --out/logs still says
    what ran, each sample's line and how it ended, each line with its UTC time. A refused run
    leaves no log (nor --out) behind."""
    scans, out = batch(cart_and_model, tmp_path)
    # Two scans, not one under two sample ids nor sharing a frame (which the run warns of, on
    # any console).
    for frame in sorted((scans / "b").glob("r*c*.tif")):
        pixels = tifffile.imread(frame)
        pixels[0, 0, 0] += 1
        tifffile.imwrite(frame, pixels, photometric="minisblack")
    status, err = run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--no-report",
                          "--prior", "balanced", *options(cart_and_model))
    assert status == 0 and err == []
    (log,) = (out / "logs").glob("predict-*Z-*.log")
    lines = log.read_text().splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR) ", line)
               for line in lines), lines
    assert "ctcnet predict" in lines[0] and str(scans) in lines[0]
    # The code and the model that ran, as the summaries name them: two runs by other code or
    # another model file read apart in their logs too.
    from ctcnet.core.provenance import software_record, software_text
    from ctcnet.io.digests import file_sha256

    assert software_text(software_record()) in lines[0]
    model = cart_and_model / "model.pt"
    assert any(f"model {model} (file sha256 {file_sha256(model)}" in line for line in lines)
    assert any("S_a: ok" in line for line in lines) and any("S_b: ok" in line for line in lines)
    assert lines[-1].endswith("exit status 0")
    status, err = run_cli(capsys, "predict", tmp_path / "nowhere", "--out", tmp_path / "o2",
                          *options(cart_and_model))
    assert status == 2 and not (tmp_path / "o2").exists()


def test_a_stopped_run_says_so_in_run_json_and_its_log(cart_and_model, tmp_path, capsys,
                                                       monkeypatch):
    import ctcnet.inference.predict as predicting

    scans, out = batch(cart_and_model, tmp_path)

    def stopped(*args, on_start, **kwargs):
        on_start()
        raise KeyboardInterrupt

    monkeypatch.setattr(predicting, "predict_inputs", stopped)
    status, _ = run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                        *options(cart_and_model))
    assert status == 130
    assert json.loads((out / "run.json").read_text())["error"] == \
        "stopped by an interrupt (Ctrl-C)"
    (log,) = (out / "logs").glob("predict-*.log")
    assert "ERROR" in log.read_text().splitlines()[-1] and "stopped by an interrupt" in \
        log.read_text()
    # A SIGTERM that lands as a compiled extension is first imported surfaces as that
    # import's error: stopped all the same (it read "failed", exit 1).
    from ctcnet.errors import Terminated

    def stopped_in_an_import(*args, on_start, **kwargs):
        on_start()
        try:
            raise Terminated("SIGTERM")
        except Terminated as stop:
            raise ImportError("initialization failed") from stop

    monkeypatch.setattr(predicting, "predict_inputs", stopped_in_an_import)
    status, _ = run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                        *options(cart_and_model))
    index = json.loads((out / "run.json").read_text())
    assert status == 143 and index["state"] == "stopped", index


def test_a_run_stopped_before_its_checks_passed_leaves_no_finished_index(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """Stopped as the model loaded, a rerun over last night's folder exited 143 saying
    "stopped" while run.json still read "finished" beside last night's samples.csv: a wrapper
    took last night's results for tonight's. Where no index was there, none is made."""
    import ctcnet.inference.backends as backends

    scans, out = batch(cart_and_model, tmp_path)
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                   *options(cart_and_model))[0] == 0

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(backends, "load_backend", stopped)
    status, _ = run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                        *options(cart_and_model))
    index = json.loads((out / "run.json").read_text())
    assert status == 130 and index["state"] == "stopped"
    assert all(entry.get("missing") and "kept_output" in entry for entry in index["outputs"])
    status, _ = run_cli(capsys, "predict", scans, "--out", tmp_path / "fresh", "--quiet",
                        *options(cart_and_model))
    assert status == 130 and not (tmp_path / "fresh" / "run.json").exists()
    # Stopped earlier still, as the inputs were read (a night's batch reads every cartridge's
    # metadata first): the index read "finished" there too.
    monkeypatch.undo()
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                   *options(cart_and_model))[0] == 0
    import ctcnet.inference.inputs as inputs

    monkeypatch.setattr(inputs, "resolve_inputs", stopped)
    status, _ = run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                        *options(cart_and_model))
    index = json.loads((out / "run.json").read_text())
    assert status == 130 and index["state"] == "stopped" and "before it had checked" in \
        index["note"], index
    assert not (out / "samples.csv").exists()
    # A dry run (--list-outputs) stopped so writes nothing, the index as it was.
    import ctcnet.commands.predict_outputs as listing

    monkeypatch.undo()
    monkeypatch.setattr(listing, "list_outputs", stopped)
    before = (out / "run.json").read_bytes()
    status, _ = run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--list-outputs",
                        *options(cart_and_model))
    assert status == 130 and (out / "run.json").read_bytes() == before
    monkeypatch.setattr(backends, "load_backend", stopped)
    # Another run writing the same --out now (its index "running", its process alive) keeps
    # its index: this one's stop is not written over it.
    import os
    import socket

    live = {"state": "running", "host": socket.gethostname(), "pid": os.getpid()}
    (out / "run.json").write_text(json.dumps(live))
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                   *options(cart_and_model))[0] == 130
    assert json.loads((out / "run.json").read_text()) == live


def test_a_night_refused_or_failed_as_it_began_leaves_no_finished_index(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """A scan share not mounted (exit 2), a model refused, a folder it may not write (exit
    4): last night's run.json read "finished", and a monitor following the docs' checklist
    took last night's results for tonight's. It reads "failed" with the error, the outputs
    it lists said to be the earlier run's; written over in place where no file can be made
    beside it. Another run's live index is left as it is."""
    import os
    import socket

    import ctcnet.inference.backends as backends
    import ctcnet.inference.run_index as run_index

    scans, out = batch(cart_and_model, tmp_path)
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                   *options(cart_and_model))[0] == 0
    tally = json.loads((out / "run.json").read_text())["tally"]  # a monitor's glance
    assert tally["inputs"] == 2 and tally["ok"] + tally["partial"] == 2, tally
    assert tally["failed"] == tally["set_aside"] == tally["missing"] == 0
    status, _ = run_cli(capsys, "predict", tmp_path / "share_not_mounted", "--out", out,
                        "--quiet", *options(cart_and_model))
    index = json.loads((out / "run.json").read_text())
    assert status == 2 and index["state"] == "failed", index
    assert "share_not_mounted" in index["error"] and "before it had checked" in index["note"]
    assert [e["name"] for e in index["outputs"]] == ["S_a", "S_b"]  # the earlier run's
    assert not (out / "samples.csv").exists()

    def refused(*args, **kwargs):
        raise InputError("the model's digest is not the one asked for")

    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                   *options(cart_and_model))[0] == 0
    monkeypatch.setattr(backends, "load_backend", refused)
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                   *options(cart_and_model))[0] == 2
    index = json.loads((out / "run.json").read_text())
    assert index["state"] == "failed" and "digest" in index["error"]

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(out / ".run.json.tmp"))

    monkeypatch.setattr(run_index, "atomic_write_text", read_only)
    monkeypatch.setattr(run_index, "open_lock", read_only)  # (no lock file to be made)
    (out / "run.json").write_text(json.dumps({"state": "finished", "outputs": []}))
    status, _ = run_cli(capsys, "predict", tmp_path / "gone", "--out", out, "--quiet",
                        *options(cart_and_model))
    index = json.loads((out / "run.json").read_text())
    assert status == 2 and index["state"] == "failed" and "gone" in index["error"]
    # Another run's live index is left: here, or on another host (a container sharing the
    # folder), whose process cannot be asked.
    for live in ({"state": "running", "host": socket.gethostname(), "pid": os.getpid()},
                 {"state": "running", "host": "node17", "pid": 4242}):
        (out / "run.json").write_text(json.dumps(live))
        assert run_cli(capsys, "predict", tmp_path / "gone", "--out", out, "--quiet",
                       *options(cart_and_model))[0] == 2
        assert json.loads((out / "run.json").read_text()) == live
    # The parent of a --processes run refusing the model (the GPU batch's default) too; the
    # earlier run's tally, read alone, would tell its outcome as tonight's.
    monkeypatch.undo()
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                   *options(cart_and_model))[0] == 0
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--processes", "2",
                   "--model-sha256", "0" * 64, *options(cart_and_model))[0] == 2
    index = json.loads((out / "run.json").read_text())
    assert index["state"] == "failed" and "tally" not in index, index


def test_a_process_stopped_keeps_the_refusals_it_made(cart_and_model, tmp_path, capsys,
                                                      monkeypatch):
    """A --processes child stopped by SIGTERM had refused an input (its channels): the
    refusal was not kept, and run.json read it "missing: the same command resumes it", which
    no rerun does."""
    import ctcnet.inference.predict as predicting

    scans, out = batch(cart_and_model, tmp_path)

    def stopped(*args, on_start, set_aside, **kwargs):
        on_start()
        set_aside["S_b"] = "channel mismatch: the model needs more"
        raise KeyboardInterrupt

    monkeypatch.setattr(predicting, "predict_inputs", stopped)
    share = tmp_path / "share.json"
    share.write_text(json.dumps([str(scans / "a"), str(scans / "b")]))
    status, _ = run_cli(capsys, "predict", "--processes", "1", "--quiet", "--process-inputs",
                        share, "--out", out, *options(cart_and_model), scans)
    assert status == 130
    kept = json.loads((out / ".set_aside" / "S_b.json").read_text())
    assert kept["reason"] == "channel mismatch: the model needs more"


def test_a_rerun_that_completes_a_partial_sample_pages_nobody(cart_and_model, tmp_path,
                                                              capsys):
    """A frame still being copied at night, whole by morning: the rerun that completes the
    sample keeps the earlier summary in previous/ with a note, not a warning on a quiet run."""
    scans, out = batch(cart_and_model, tmp_path)
    last = sorted((scans / "a").glob("r*c*.tif"))[-1]
    last.rename(tmp_path / last.name)
    args = ["predict", scans / "a", "--out", out, "--quiet", "--no-report", "--prior",
            "balanced", *options(cart_and_model)]
    assert run_cli(capsys, *args)[0] == 0
    assert outputs(out)["S_a"]["status"] == "partial"
    (tmp_path / last.name).rename(last)
    status, err = run_cli(capsys, *args)
    assert status == 0 and err == [], err
    assert outputs(out)["S_a"]["status"] == "ok"
    assert list((out / "S_a" / "previous").glob("summary-*.json"))
    assert any("the tables differ from the earlier run's" in p.read_text()
               for p in (out / "logs").glob("*.log"))


def test_a_night_without_scans_is_nothing_to_do_with_allow_empty(cart_and_model, tmp_path,
                                                                   capsys):
    """An empty folder of cartridges is refused (a wrong path, say); with --allow-empty it is
    a night without scans: exit 0, run.json finished with no output, the earlier samples kept
    listed."""
    scans, out = batch(cart_and_model, tmp_path)
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--no-report",
                   "--prior", "balanced", *options(cart_and_model))[0] == 0
    tonight = tmp_path / "tonight"
    (tonight / ".snapshot").mkdir(parents=True)  # a share's own entries are no scans
    (tonight / "P001").mkdir()  # a sample's folder made before its scan is copied
    for name in ("Thumbs.db", "desktop.ini", "README.txt", "transfer.log"):
        (tonight / name).write_text("x")
    args = ["predict", tonight, "--out", out, "--prior", "balanced", *options(cart_and_model)]
    status, err = run_cli(capsys, *args)
    assert status == 2 and "neither a cartridge" in err[-1] and "--allow-empty" in err[-1]
    # A workflow engine's dry run of the same writes nothing (it wrote a finished index over
    # the night's, its samples read as earlier outputs; a fresh --out was made).
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    status, err = run_cli(capsys, *args, "--allow-empty", "--list-outputs")
    assert status == 0 and "nothing to do" in err[-1]
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    status, _ = run_cli(capsys, *args[:3], tmp_path / "fresh", *args[4:], "--allow-empty",
                        "--list-outputs")
    assert status == 0 and not (tmp_path / "fresh").exists()
    # The night run into a folder of its own: its audit passes (it was refused as "no predict
    # outputs here", and a nightly "predict, then verify" failed every night without scans).
    assert run_cli(capsys, *args[:3], tmp_path / "fresh", *args[4:], "--allow-empty")[0] == 0
    assert run_cli(capsys, "verify", "--results", tmp_path / "fresh")[0] == 0
    status, err = run_cli(capsys, *args, "--allow-empty")
    assert status == 0 and "nothing to do" in err[-1]
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "finished" and run["outputs"] == []
    assert run["other_outputs"] == ["S_a", "S_b"]


def test_a_sample_another_run_is_writing_is_that_runs_and_pages_nobody(
        cart_and_model, tmp_path, capsys):
    """Two runs of one batch: the sample the other holds is set aside here as held (no error,
    exit 0); once the other has written it after taking it, the index lists it as an output,
    even where its summary was written just before this run came to it."""
    from ctcnet.io.atomic import exclusive_folder

    scans, out = batch(cart_and_model, tmp_path)
    args = ["predict", scans, "--out", out, "--no-report", "--prior", "balanced",
            *options(cart_and_model)]
    with exclusive_folder(out / "S_a", "predict"):  # the other run, at work on S_a
        status, err = run_cli(capsys, *args)
    assert status == 0 and not [line for line in err if "ERROR" in line or "error:" in line]
    run = outputs(out)
    assert run["S_a"]["set_aside_kind"] == "held" and run["S_b"]["status"] == "ok"
    # The other run wrote S_a after it took the folder: its output, tonight's.
    taken = json.loads((out / ".set_aside" / "S_a.json").read_text())["held_since"]
    assert run_cli(capsys, "predict", scans / "a", "--out", out, "--no-report", "--prior",
                   "balanced", *options(cart_and_model))[0] == 0
    summary = json.loads((out / "S_a" / "summary.json").read_text())
    assert summary["finished_at"] > taken
    status, _ = run_cli(capsys, *args)
    assert status == 0 and outputs(out)["S_a"]["status"] == "ok"


def test_a_sample_another_run_is_writing_pages_nobody_under_processes_either(
        cart_and_model, tmp_path, capsys):
    """A --processes run beside another run of the batch (a nightly cron beside a rerun by
    hand): each process's held sample made it exit 2, which the run passed on, every sample
    ok; and the run said the held one as an error."""
    from ctcnet.io.atomic import exclusive_folder

    scans, out = batch(cart_and_model, tmp_path)
    share = tmp_path / "share.json"
    share.write_text(json.dumps([str(scans / "a"), str(scans / "b")]))
    with exclusive_folder(out / "S_a", "predict"):  # the other run, at work on S_a
        # one process of a --processes run, as its parent starts it
        status, err = run_cli(capsys, "predict", "--processes", "1", "--quiet",
                              "--process-inputs", share, "--out", out, "--no-report",
                              "--prior", "balanced", *options(cart_and_model), scans)
        assert status == 0, err
        status, err = run_cli(capsys, "predict", scans, "--out", out, "--processes", "2",
                              "--no-report", "--prior", "balanced", *options(cart_and_model))
    assert status == 0 and not [line for line in err if "ERROR" in line or "error:" in line]
    run = outputs(out)
    assert run["S_a"]["set_aside_kind"] == "held" and run["S_b"]["status"] == "ok"


def test_a_full_disk_at_the_last_index_leaves_no_running_run_json(cart_and_model, tmp_path,
                                                                  capsys, monkeypatch):
    import ctcnet.commands.predict_index as C

    scans, out = batch(cart_and_model, tmp_path)

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(C, "write_run_index", no_room)
    status, _ = run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--no-report",
                        "--prior", "balanced", *options(cart_and_model))
    assert status == 4  # the machine's state: rerun resumes
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "failed" and "No space left on device" in run["error"]


def test_a_full_disk_as_a_rerun_starts_leaves_no_finished_index_of_the_night_before(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """Yesterday's folder reused on a disk full as the run starts: its run.json read
    'finished', every sample ok, and a script's check of it said all was well; written over
    in place with the error, and samples.csv gone."""
    import ctcnet.inference.run_index as I

    scans, out = batch(cart_and_model, tmp_path)
    common = ["predict", scans, "--out", out, "--quiet", "--no-report", "--prior", "balanced",
              *options(cart_and_model)]
    assert run_cli(capsys, *common)[0] == 0
    assert json.loads((out / "run.json").read_text())["state"] == "finished"

    def no_room(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(I, "atomic_write_text", no_room)
    status, _ = run_cli(capsys, *common)
    assert status == 4  # the machine's state: rerun resumes
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "failed" and "No space left on device" in run["error"]
    assert not (out / "samples.csv").exists()


def test_a_sample_added_to_a_nights_folder_at_other_settings_is_said(cart_and_model, tmp_path,
                                                                      capsys, caplog):
    """One sample run into a night's --out later, at another prior (or with another model):
    the folder's table then mixes counts that are not comparable, and the run says so."""
    scans, out = batch(cart_and_model, tmp_path)
    common = ["predict", "--out", out, "--quiet", "--no-report", *options(cart_and_model)]
    assert run_cli(capsys, *common, scans / "a", "--prior", "balanced")[0] == 0
    with caplog.at_level("WARNING"):
        assert run_cli(capsys, *common, scans / "b", "--prior", "balanced")[0] == 0
    assert "other models or settings" not in caplog.text
    assert "not_comparable" not in json.loads((Path(out) / "run.json").read_text())
    with caplog.at_level("WARNING"):
        assert run_cli(capsys, *common, scans / "b", "--prior", "ctc=0.01,cluster=0.005",
                       "--overwrite")[0] == 0
    assert "the folder's outputs were made by other models or settings (they differ in " \
        "decision" in caplog.text
    # In run.json too, for a wrapper that reads the index, not the console.
    differ = json.loads((Path(out) / "run.json").read_text())["not_comparable"]
    assert differ and differ[0].startswith("decision")


def test_a_job_arrays_index_names_each_missing_samples_share_and_mixed_settings(
        cart_and_model, tmp_path, capsys, caplog, monkeypatch):
    """Shares of one batch: a sample whose job has not run is missing with the share it falls
    to; jobs run at other settings into one --out are said; leftover torchrun variables are a
    one-line refusal, not a wait for a process group."""
    from ctcnet.inference.distributed import stable_rank

    scans, out = batch(cart_and_model, tmp_path)
    n = next(k for k in range(2, 20) if stable_rank("S_a", k) != stable_rank("S_b", k))
    share = {name: stable_rank(name, n) + 1 for name in ("S_a", "S_b")}
    common = ["predict", scans, "--out", out, "--quiet", "--no-report",
              *options(cart_and_model)]
    assert run_cli(capsys, *common, "--shard", f"{share['S_a']}/{n}", "--prior",
                   "balanced")[0] == 0
    run = outputs(out)
    assert run["S_b"]["missing"] and f"--shard {share['S_b']}/{n}" in run["S_b"]["reason"]
    with caplog.at_level("WARNING"):
        assert run_cli(capsys, *common, "--shard", f"{share['S_b']}/{n}", "--prior",
                       "ctc=0.01,cluster=0.005")[0] == 0
    assert "other models or settings (they differ in decision" in caplog.text
    monkeypatch.setenv("WORLD_SIZE", "2")
    status, err = run_cli(capsys, *common, "--shard", f"1/{n}")
    assert status == 2 and "WORLD_SIZE is set" in err[-1]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_sample_whose_holder_died_is_a_refusal_that_pages(cart_and_model, tmp_path, capsys,
                                                             monkeypatch, processes):
    """The run that held a sample was killed before it finished it: nobody will, so it is
    not "held" but a refusal of this run's (exit 2), saying to run it again (a --processes
    run said so, and exited 0)."""
    import ctcnet.inference.run_index as run_index
    from ctcnet.io.atomic import exclusive_folder

    scans, out = batch(cart_and_model, tmp_path)
    with exclusive_folder(out / "S_a", "predict"):
        # gone by the time the index is written (by the run, or a --processes run's parent)
        monkeypatch.setattr(run_index, "folder_is_held", lambda folder: False)
        status, err = run_cli(capsys, "predict", scans, "--out", out, "--quiet",
                              "--processes", processes, "--no-report", "--prior", "balanced",
                              *options(cart_and_model))
    assert status == 2
    entry = outputs(out)["S_a"]
    assert entry["set_aside_kind"] == "output" and "ended without finishing it" in \
        entry["set_aside"]
    # The console says what run.json says: run it again (it said to wait for a dead run).
    (said,) = [line for line in err if "S_a was set aside" in line]
    assert said.endswith("the run that held it ended without finishing it: run it again")


def test_a_job_stopped_by_its_time_limit_leaves_its_index(cart_and_model, tmp_path, capsys,
                                                          monkeypatch):
    """A job of an array stopped (SLURM's SIGTERM at the time limit): run.json says stopped,
    with why, as a whole run's does."""
    import ctcnet.inference.predict as predicting

    scans, out = batch(cart_and_model, tmp_path)

    def stopped(*args, on_start, **kwargs):
        on_start()
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(predicting, "predict_inputs", stopped)
    status, _ = run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--shard", "1/2",
                        *options(cart_and_model))
    assert status == 130
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "stopped" and run["error"] == "stopped by SIGTERM"
    assert all("--shard" in e["reason"] for e in run["outputs"])


def test_a_stopped_night_names_the_samples_it_finished_on_the_console(cart_and_model, tmp_path,
                                                                      capsys, monkeypatch):
    """SIGTERM after the first of two cartridges: the console names the one done (an operator
    reads it before run.json), as the run's log does."""
    import ctcnet.inference.predict as predicting

    scans, out = batch(cart_and_model, tmp_path)
    real = predicting.predict_inputs

    def stopped(inputs, *args, **kwargs):
        real(inputs[:1], *args, **kwargs)
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(predicting, "predict_inputs", stopped)
    status, err = run_cli(capsys, "predict", scans / "a", scans / "b", "--out", out, "--quiet",
                          *options(cart_and_model))
    assert status == 130
    assert any("1 sample(s) done before the run ended: S_a (run.json lists each)" in line
               for line in err), err
    assert outputs(out)["S_b"]["missing"] and outputs(out)["S_a"]["status"] == "ok"


def test_a_torchrun_variable_set_empty_is_one_line(cart_and_model, tmp_path, capsys,
                                                   monkeypatch):
    scans, out = batch(cart_and_model, tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "")
    status, err = run_cli(capsys, "predict", scans, "--out", out, *options(cart_and_model))
    assert status == 2 and "WORLD_SIZE='' is no whole number" in err[-1]
    # WORLD_SIZE alone, without the rest torchrun sets: one line, not torch's traceback.
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    status, err = run_cli(capsys, "predict", scans, "--out", out, *options(cart_and_model))
    assert status == 2 and "WORLD_SIZE=2 without RANK, MASTER_ADDR, MASTER_PORT" in err[-1], err


def test_a_nights_scans_moved_together_are_found_by_their_folder_names(cart_and_model,
                                                                       tmp_path, capsys,
                                                                       caplog):
    """The batch's scans restored elsewhere: --scans names the folder holding them, and each
    sample's cartridge is found by the name of the folder predict read (crops, review); one
    cartridge for results of several samples is refused, saying what to pass."""
    from ctcnet.review_server.app import ReviewApp

    scans, out = batch(cart_and_model, tmp_path)
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--no-report",
                   *options(cart_and_model))[0] == 0
    moved = shutil.move(str(scans), tmp_path / "restored")
    status, err = run_cli(capsys, "crops", out, "--out", tmp_path / "crops", "--scans",
                          Path(moved) / "a")
    assert status == 2 and "--scans names one cartridge; the results hold several samples: " \
        "pass the folder holding their cartridges" in err[-1]
    assert run_cli(capsys, "crops", out, "--out", tmp_path / "crops", "--scans", moved)[0] == 0
    app = ReviewApp(out, saliency=False, scans=moved)
    assert app.sample("S_b").frames.cartridge().root == Path(moved) / "b"
    # A folder holding none of them: refused before any sample is read (the review server
    # too, before it serves), naming what it looked for; one holding some: the rest named.
    status, err = run_cli(capsys, "crops", out, "--out", tmp_path / "none", "--scans",
                          tmp_path)
    assert status == 2 and "--scans holds none of these samples' scans (looked for a, b: " \
        "the folders predict read, by name)" in err[-1]
    with pytest.raises(InputError, match="holds none of these samples' scans"):
        ReviewApp(out, saliency=False, scans=tmp_path)
    shutil.rmtree(Path(moved) / "b")
    with caplog.at_level(logging.WARNING):
        ReviewApp(out, saliency=False, scans=moved)
    assert "lacks the scans of 1 of 2 samples (S_b (b))" in caplog.text
    # A cut needs every sample's scan: refused before any is cut, naming the one lacking.
    status, err = run_cli(capsys, "crops", out, "--out", tmp_path / "part", "--scans", moved)
    assert status == 2 and "--scans holds no scan of 1 of 2 samples (S_b) (looked for b" in \
        err[-1] and not (tmp_path / "part").exists()


def test_a_crop_set_whose_crops_cannot_be_read_is_set_aside_and_the_next_runs(
        cart_and_model, tmp_path, capsys):
    """A crop set whose crops hold fewer channels than its panel.json names (exported with a
    plane left out): every crop fails alike, said once with the count (not ten paths saying
    the same), and the crop set after it in the batch still runs. Before, the batch ended at
    it."""
    import numpy as np
    import tifffile

    from ctcnet.detect.crop_dataset import read_crop_index, write_crop_dataset
    from ctcnet.io.panel import load_panel

    rng = np.random.default_rng(0)
    panel = load_panel(None)
    sets = []
    for name in ("bad", "good"):
        images = rng.integers(90, 200, (12, len(panel.channels), 48, 48)).astype(np.uint16)
        sets.append(write_crop_dataset(tmp_path / name, images, ["ctc", "wbc"] * 6, panel))
    for path in read_crop_index(sets[0]).paths:
        tifffile.imwrite(path, tifffile.imread(path)[:4])
    out = tmp_path / "out"
    status, err = run_cli(capsys, "predict", *sets, "--out", out, "--quiet",
                          *options(cart_and_model))
    assert status == 2, err
    run = outputs(out)
    reason = run["bad"]["set_aside"]
    assert "12 of 12 crops cannot be read" in reason and "(12 crops: " in reason
    assert reason.count(".tif") == 10 and reason.endswith(", ...)")  # (BAD_CROPS_NAMED)
    assert "set_aside" not in run["good"] and (out / "good" / "predictions.csv").is_file()


def test_crops_of_samples_stated_at_other_value_ranges_are_not_cut_into_one_dataset(
        cart_and_model, tmp_path, capsys):
    """One night's samples from two instruments, one stating 0-65535: their crops, kept as
    each scan's counts, cannot share one panel.json's range (the guard would read one at
    the other's saturation). Refused before any crop is cut, naming each range."""
    scans, out = batch(cart_and_model, tmp_path)
    panel = json.loads((scans / "b" / "panel.json").read_text())
    panel["channels"] = [{"name": c if isinstance(c, str) else c["name"],
                          "value_range": [0, 65535]} for c in panel["channels"]]
    (scans / "b" / "panel.json").write_text(json.dumps(panel))
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--no-report",
                   *options(cart_and_model))[0] == 0
    status, err = run_cli(capsys, "crops", out, "--out", tmp_path / "crops")
    assert status == 2 and "the samples' scans state other value ranges (S_a: 0-4095; S_b: " \
        "0-65535)" in err[-1]
    assert not (tmp_path / "crops").exists()
    assert run_cli(capsys, "crops", out / "S_b", "--out", tmp_path / "crops_b")[0] == 0


def test_a_night_whose_every_cartridge_is_refused_leaves_an_index_that_says_so(
        cart_and_model, tmp_path, capsys):
    """Last night's run.json in --out read "finished" with last night's samples after a night
    whose cartridges were all refused (an unattended job filed them as tonight's): now the
    index is tonight's, each refusal under the sample id its cartridge.json states (a folder
    of cartridges is a batch even when it holds one)."""
    scans, out = batch(cart_and_model, tmp_path)
    assert run_cli(capsys, "predict", scans / "a", "--out", out, "--quiet", "--no-report",
                   *options(cart_and_model))[0] == 0
    night = tmp_path / "night"
    (night / "broken").mkdir(parents=True)
    (night / "broken" / "cartridge.json").write_text('{"sample_id": "S_c", ')
    (night / "frameless").mkdir()
    (night / "frameless" / "cartridge.json").write_text('{"sample_id": "S_d"}')
    shutil.copy(cart_and_model / "cart" / "panel.json", night / "frameless")
    status, err = run_cli(capsys, "predict", night, "--out", out, "--quiet", "--no-report",
                          *options(cart_and_model))
    assert status == 2
    index = json.loads((out / "run.json").read_text())
    run = outputs(out)
    assert index["state"] == "finished" and "no frames found" in run["S_d"]["set_aside"]
    assert "not valid JSON" in run["broken"]["set_aside"]  # its sample id unreadable
    assert index["other_outputs"] == ["S_a"]  # last night's, said so
    rows = {row.split(",")[0]: row for row in (out / "samples.csv").read_text().splitlines()}
    assert rows["S_d"].split(",")[1] == "set aside" and "True" in rows["S_a"]
    (night / "frameless").rename(tmp_path / "frameless")  # one refused cartridge in a folder
    assert run_cli(capsys, "predict", night, "--out", out, "--quiet", "--no-report",
                   *options(cart_and_model))[0] == 2
    assert set(outputs(out)) == {"broken"}


class _DeadConsole:
    """A console that cannot be written: a pipe into a logger that died, 2>/dev/full."""

    def __init__(self):
        self.tried = 0

    def write(self, text):
        self.tried += 1
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def fileno(self):  # no descriptor to point at the null device
        raise OSError(errno.EBADF, "no descriptor")


def test_a_console_that_cannot_be_written_does_not_stop_the_night(cart_and_model, tmp_path,
                                                                  monkeypatch):
    """A dead console (stderr and stdout) drops the run's lines, not the run: the samples are
    made, run.json finished, and the run's log says the console was lost."""
    scans, out = batch(cart_and_model, tmp_path)
    dead_out, dead_err = _DeadConsole(), _DeadConsole()
    monkeypatch.setattr("sys.stdout", dead_out)
    monkeypatch.setattr("sys.stderr", dead_err)
    status = main(["predict", str(scans), "--out", str(out), "--no-report", "--prior",
                   "balanced", *map(str, options(cart_and_model))])
    assert status == 0 and dead_err.tried and dead_out.tried
    assert json.loads((out / "run.json").read_text())["state"] == "finished"
    assert all(e["status"] == "ok" for e in outputs(out).values())
    (log,) = (out / "logs").glob("predict-*Z-*.log")
    assert "the console's stderr cannot be written" in log.read_text()
    import sys

    assert sys.stderr is dead_err  # the streams it was given, after the command


def test_a_sample_named_in_letters_an_ascii_console_lacks_is_said_escaped(cart_and_model,
                                                                          tmp_path, monkeypatch):
    """Under an ASCII locale a name's u-umlaut raised as the console's encoding error, read as
    a closed console: every later line (the other samples' too) vanished, exit 0."""
    scans, out = batch(cart_and_model, tmp_path)
    edit_json(scans / "a" / "cartridge.json", sample_id="S_M\u00fcller")
    console = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr("sys.stdout", console)
    status = main(["predict", str(scans), "--out", str(out), "--no-report", "--prior",
                   "balanced", *map(str, options(cart_and_model))])
    console.flush()
    said = console.buffer.getvalue().decode("ascii")
    assert status == 0 and "S_M\\xfcller: ok" in said and "S_b: ok" in said


def test_an_address_space_limit_the_libraries_hang_under_is_refused_before_they_load(
        monkeypatch, capsys):
    """Under ulimit -v of a few hundred MB, OpenBLAS retried its allocation for ever as scipy
    loaded, deaf to SIGTERM: the limit is refused in a line first, with what to do instead."""
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda which: (400 * 1024 ** 2, 400 * 1024 ** 2)
                        if which == resource.RLIMIT_AS else (resource.RLIM_INFINITY,) * 2)
    assert main(["models"]) == 2
    said = capsys.readouterr().err
    assert "address-space limit (ulimit -v) is 400 MB" in said and "MemoryMax" in said
    # At exactly 2 GB a batch of two cartridges ran out of memory on the second.
    two = 2 * 1024 ** 3
    monkeypatch.setattr(resource, "getrlimit", lambda which: (two, two)
                        if which == resource.RLIMIT_AS else (resource.RLIM_INFINITY,) * 2)
    assert main(["models"]) == 2 and "is 2048 MB" in capsys.readouterr().err
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resource.RLIM_INFINITY,) * 2)
    assert main(["models"]) == 0


def test_a_finished_sample_read_again_from_a_moved_scan_keeps_its_result_on_a_full_disk(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """The scans' share mounted elsewhere, the disk full as the same tables are written again:
    the earlier summary still counts those tables, so the sample keeps its result (it lost
    its summary.json, a morning's result gone until the disk was freed)."""
    import ctcnet.inference.tables as tables

    scans, out = batch(cart_and_model, tmp_path)
    assert main([str(a) for a in ("predict", scans, "--out", out, "--no-report",
                                  *options(cart_and_model))]) == 0
    before = (out / "S_a" / "summary.json").read_text()
    moved = scans.rename(tmp_path / "remounted")

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "S_a" / "events.csv"))

    monkeypatch.setattr(tables, "write_csv_rows", full)
    status = main([str(a) for a in ("predict", moved, "--out", out, "--no-report",
                                    *options(cart_and_model))])
    assert status == 4 and "No space left on device" in capsys.readouterr().err
    assert (out / "S_a" / "summary.json").read_text() == before
    assert outputs(out)["S_a"]["kept_output"]["status"] == "ok"
    # The run's own log ends as the console did: the exit status and what to do.
    last = sorted((out / "logs").glob("predict-*.log"), key=lambda p: p.stat().st_mtime)[-1]
    end = last.read_text().splitlines()[-1]
    assert "exit status 4: ctcnet predict: error: No space left on device" in end
    assert end.endswith("free space and rerun to resume")


def test_a_result_another_run_finished_beside_this_one_is_not_an_earlier_runs(
        cart_and_model, tmp_path, capsys):
    """Two runs into one --out at once: the one ending last writes the index, listing the
    other's sample as another output; samples.csv marks it an earlier run's only where it
    finished before this run began (it read earlier_run True, and a LIMS held tonight's
    result back)."""
    import csv
    import time

    from ctcnet.inference.run_index import write_run_index

    scans, out = batch(cart_and_model, tmp_path)
    assert run_cli(capsys, "predict", scans, "--out", out, "--quiet", "--no-report",
                   "--prior", "balanced", *options(cart_and_model))[0] == 0

    def rows(since):
        write_run_index(out, ["S_a"], world_size=1, since=since)
        return {r["name"]: r for r in csv.DictReader((out / "samples.csv").open())}

    assert rows(time.time() - 3600)["S_b"]["earlier_run"] == ""  # finished beside it
    assert rows(time.time() + 60)["S_b"]["earlier_run"] == "True"  # before it began
    assert json.loads((out / "run.json").read_text())["other_outputs"] == ["S_b"]


def test_an_events_csv_changed_by_hand_is_kept_when_a_rerun_writes_its_own(
        cart_and_model, tmp_path, capsys, caplog):
    """A call edited in events.csv (a spreadsheet's save): the rerun kept no trace of it, as
    it keeps an edited events.parquet; now the edited file goes to previous/, said."""
    scans, out = batch(cart_and_model, tmp_path)
    args = ["predict", scans, "--out", out, "--no-report", "--prior", "balanced",
            *options(cart_and_model)]
    assert run_cli(capsys, *args)[0] == 0
    table = out / "S_a" / "events.csv"
    written = table.read_text()
    assert json.loads((out / "S_a" / "summary.json").read_text())["events_csv_sha256"]
    table.write_bytes(written.replace("\n", "\r\n").encode())  # saved by a spreadsheet
    with caplog.at_level(logging.WARNING):
        assert run_cli(capsys, *args)[0] == 0
    (kept,) = (out / "S_a" / "previous").glob("events-*-not-as-written.csv")
    assert b"\r\n" in kept.read_bytes() and table.read_bytes() == written.encode()
    assert "events.csv was changed since predict wrote it" in caplog.text
    assert not list((out / "S_b").glob("previous/*.csv"))  # an untouched one: nothing kept


def test_a_frame_rewritten_after_it_was_read_makes_the_sample_partial(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """A rescan written over a frame in place, slower than the read: the frame was read part
    old, part new and the sample read 'ok'. Its files changed after this run read them: a
    problem (partial), and the next run reads the frame again."""
    import os

    import ctcnet.inference.predict as predicting

    scans, out = batch(cart_and_model, tmp_path)
    real = predicting.with_frame_records
    frame = sorted((scans / "a").glob("r*.tif"))[0]

    def written_after_read(cartridge, *args, **kwargs):
        if cartridge.sample_id == "S_a":
            os.utime(frame, (frame.stat().st_atime, frame.stat().st_mtime + 5))
        return real(cartridge, *args, **kwargs)

    monkeypatch.setattr(predicting, "with_frame_records", written_after_read)
    assert run_cli(capsys, "predict", scans, "--out", out, "--no-report", "--prior", "balanced",
                   *options(cart_and_model))[0] == 0
    run = outputs(out)
    assert run["S_a"]["status"] == "partial" and run["S_b"]["status"] == "ok"
    assert any("changed after this run read them" in p for p in run["S_a"]["problems"])
    monkeypatch.undo()
    assert run_cli(capsys, "predict", scans, "--out", out, "--no-report", "--prior", "balanced",
                   *options(cart_and_model))[0] == 0
    assert outputs(out)["S_a"]["status"] == "ok"  # read again, whole


def test_a_frame_cut_short_as_it_is_written_is_told_to_wait_not_to_be_exported_again(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """A frame file cut short seconds ago is a scanner still writing it: its skip says the next
    run reads it once whole (it said only "export the file again")."""
    import os

    scans, out = batch(cart_and_model, tmp_path)
    frame = sorted((scans / "a").glob("r*.tif"))[0]
    frame.write_bytes(frame.read_bytes()[:2000])
    args = ["predict", scans / "a", "--out", out, "--no-report", "--prior", "balanced",
            *options(cart_and_model)]
    run_cli(capsys, *args)
    (why,) = json.loads((out / "S_a" / "summary.json").read_text())["skipped_frames"]
    assert "the next run reads it once whole" in why["reason"]
    os.utime(frame, (1e9, 1e9))  # an old file cut short: a copy that broke off
    run_cli(capsys, *args)
    # (as it arrived here: a moment ago, with its source's time kept, as cp -p keeps it)
    (why,) = json.loads((out / "S_a" / "summary.json").read_text())["skipped_frames"]
    assert "once whole" in why["reason"]
    import time

    import ctcnet.core.paths as paths

    later = time.time() + 20 * 60  # ... and long ago
    monkeypatch.setattr(paths, "time", type("Clock", (), {"time": staticmethod(lambda: later)}))
    run_cli(capsys, *args)
    (why,) = json.loads((out / "S_a" / "summary.json").read_text())["skipped_frames"]
    assert "once whole" not in why["reason"]


def test_a_nights_empty_or_panel_only_folder_given_by_a_wildcard_is_set_aside(
        cart_and_model, tmp_path, capsys):
    """`predict incoming/*` with a folder a copy has only made, or one holding its panel.json
    alone: the whole night was refused, nothing run and no run.json. Now each is set aside
    with its reason, as a cartridge is, and the others run."""
    scans, out = batch(cart_and_model, tmp_path)
    (scans / "c15").mkdir()
    (scans / "c16").mkdir()
    shutil.copy(scans / "a" / "panel.json", scans / "c16" / "panel.json")
    status, err = run_cli(capsys, "predict", *sorted(scans.iterdir()), "--out", out, "--quiet",
                          *options(cart_and_model))
    assert status == 2
    entries = outputs(out)
    assert entries["S_a"]["status"] == entries["S_b"]["status"] == "ok"
    assert "an empty folder, no cartridge yet (a copy not begun?)" in entries["c15"]["set_aside"]
    assert "no frames found" in entries["c16"]["set_aside"]
    # One folder given alone is still refused as no input.
    status, err = run_cli(capsys, "predict", scans / "c15", "--out", tmp_path / "o2", "--quiet",
                          *options(cart_and_model))
    assert status == 2 and "neither a cartridge" in err[-1]


def test_a_job_of_an_array_says_its_own_refusals_and_tally_not_the_others(
        cart_and_model, tmp_path, capsys):
    """Every job checks every input: a cartridge no model reads made both jobs say its
    refusal and end with exit status 2, though it falls to one; neither said a tally."""
    from ctcnet.inference.distributed import stable_rank

    scans, out = batch(cart_and_model, tmp_path)
    shutil.copytree(scans / "a", scans / "bad")
    edit_json(scans / "bad" / "cartridge.json", sample_id="S_bad")
    panel = json.loads((scans / "bad" / "panel.json").read_text())
    panel["channels"] = ["DAPI", "VIM"] + panel["channels"][2:]
    (scans / "bad" / "panel.json").write_text(json.dumps(panel))
    owner = stable_rank("S_bad", 2) + 1
    from ctcnet.cli import main

    said = {}
    for job in (1, 2):
        status = main([str(a) for a in ("predict", scans, "--out", out, "--shard", f"{job}/2",
                                        *options(cart_and_model))])
        printed = capsys.readouterr()
        said[job] = (status, printed.err + printed.out)
    assert said[owner][0] == 2 and "error: S_bad was set aside" in said[owner][1]
    other = 3 - owner  # (its check of every input notes the refusal; the job's end is its own)
    assert said[other][0] == 0 and "error: S_bad" not in said[other][1], said[other][1]
    assert "2 inputs: 2 ok" in said[other][1]  # the tally of its share
    assert outputs(out)["S_bad"]["set_aside"]


def test_verify_fails_a_folder_whose_index_does_not_account_for_its_samples(
        cart_and_model, tmp_path, capsys):
    """An archive audit passed a sample moved in from another run (in neither run.json nor
    samples.csv: the laboratory system never sees it), a run.json removed, and a job array's
    share archived alone (its other job's sample listed missing)."""
    import shutil

    scans, out = batch(cart_and_model, tmp_path)
    args = ["--no-report", "--quiet", "--prior", "balanced", *options(cart_and_model)]
    assert run_cli(capsys, "predict", scans, "--out", out, *args)[0] == 0
    assert run_cli(capsys, "verify", "--results", out)[0] == 0
    alone = tmp_path / "alone"
    assert run_cli(capsys, "predict", scans / "a", "--out", alone, *args)[0] == 0
    shutil.move(out / "S_b", alone / "S_b")
    capsys.readouterr()
    assert main(["verify", "--results", str(alone)]) == 1
    assert "run: S_b holds a finished output run.json lists nowhere (moved in from another " \
        "run?)" in capsys.readouterr().out
    shutil.rmtree(alone / "S_b")
    (alone / "run.json").unlink()
    assert main(["verify", "--results", str(alone)]) == 1
    assert "run: samples.csv is there but run.json, the run's index written with it, is not" \
        in capsys.readouterr().out
    shutil.copytree(scans / "a", scans / "c")  # (split by a hash of the names: S_c, 1 of 2)
    edit_json(scans / "c" / "cartridge.json", sample_id="S_c")
    share = tmp_path / "share"
    assert run_cli(capsys, "predict", scans, "--out", share, "--shard", "1/2", *args)[0] == 0
    assert [p.parent.name for p in share.glob("S_*/summary.json")] == ["S_c"]
    assert main(["verify", "--results", str(share)]) == 1
    assert "run: run.json lists S_a as missing (it falls to --shard 2/2" in capsys.readouterr().out


def test_an_output_folder_gone_read_only_leaves_no_running_run_json(
        cart_and_model, tmp_path, capsys, monkeypatch):
    """The output folder made read-only as the run ends (its set-aside record refused): the
    run's own error is told and run.json reads failed, not running, as if it had been killed;
    with --processes the parent's index alike."""
    import ctcnet.commands.predict as P

    def read_only(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "out"))

    scans, out = batch(cart_and_model, tmp_path)
    common = ["predict", scans, "--out", out, "--quiet", "--no-report", "--prior", "balanced",
              *options(cart_and_model)]
    with monkeypatch.context() as patch:
        patch.setattr(P, "note_set_aside", read_only)
        status, _ = run_cli(capsys, *common)
    assert status == 4
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "failed" and "Permission denied" in run["error"]
    import ctcnet.commands.predict_index as C

    monkeypatch.setattr(C, "write_run_index", read_only)  # the --processes parent's index
    status, _ = run_cli(capsys, *common, "--processes", "2", "--overwrite")
    assert status == 4
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "failed" and "Permission denied" in run["error"]


def test_the_tally_counts_each_entry_once_by_its_kind():
    from ctcnet.inference.run_entry import outcome_tally

    entries = [{"name": "a", "status": "ok"}, {"name": "b", "status": "partial"},
               {"name": "c", "status": "failed"}, {"name": "d", "set_aside": "x",
                                                   "set_aside_kind": "input"},
               {"name": "e", "set_aside": "y", "set_aside_kind": "held"},
               {"name": "f", "missing": True, "kept_output": {"status": "ok"}},
               {"name": "crops", "summary": "crops/summary.json"}]
    assert outcome_tally(entries) == {"inputs": 7, "ok": 1, "partial": 1, "failed": 1,
                                      "crop_sets": 1, "set_aside": 1, "held": 1, "missing": 1}
    assert outcome_tally([])["inputs"] == 0



def test_a_folder_named_in_bytes_no_encoding_names_passes_its_audit(cart_and_model, tmp_path,
                                                                     capsys):
    """A cartridge folder named in Latin-1 bytes (a Windows share's): samples.csv holds its
    path as the escape \\udcfc, run.json the path itself, and the audit of an untouched run
    said the table was edited."""
    import os

    from ctcnet.exports.results_audit import audit_run

    scans, out = batch(cart_and_model, tmp_path)
    named = scans / os.fsdecode(b"M\xfcller")
    (scans / "a").rename(named)
    cartridge = json.loads((named / "cartridge.json").read_text())
    cartridge.pop("sample_id")
    cartridge.pop("simulated", None)  # (a simulated cartridge names its own id: no slip)
    (named / "cartridge.json").write_text(json.dumps(cartridge))
    status = main(["predict", str(scans), "--out", str(out), "--no-report", "--prior",
                   "balanced", *map(str, options(cart_and_model))])
    assert status == 0 and "\\udcfc" in (out / "samples.csv").read_text()
    assert audit_run(out) == []
    # ...and the id read from the folder's name is no slip of a cartridge.json it lacks.
    said = capsys.readouterr().err
    assert "read as Windows-1252" in said and "nearly: a slip" not in said


def test_samples_csv_saved_again_with_semicolons_is_said_so(cart_and_model, tmp_path):
    """samples.csv opened and saved by a spreadsheet in a European locale (semicolons, decimal
    commas): the audit said every sample had no row and the table held rows of None."""
    from ctcnet.exports.results_audit import audit_run

    scans, out = batch(cart_and_model, tmp_path)
    assert main(["predict", str(scans), "--out", str(out), "--no-report", "--prior",
                 "balanced", *map(str, options(cart_and_model))]) == 0
    table = out / "samples.csv"
    table.write_text("\ufeff" + table.read_text().replace(",", ";"))
    said = audit_run(out)
    assert len(said) == 1 and "separated by semicolons" in said[0] and "None" not in said[0]


def test_a_summarys_event_count_edited_is_said_by_the_audit(cart_and_model, tmp_path):
    """summary.json's "events" raised by one: no seal holds it, the audit passed it, and the
    exports then refused the folder blaming its table."""
    from ctcnet.exports.results_audit import audit_results

    scans, out = batch(cart_and_model, tmp_path)
    assert main(["predict", str(scans), "--out", str(out), "--no-report", "--prior",
                 "balanced", *map(str, options(cart_and_model))]) == 0
    path = out / "S_a" / "summary.json"
    summary = json.loads(path.read_text())
    assert not [p for a in audit_results(out) for p in a["problems"]]
    summary["events"] += 1
    path.write_text(json.dumps(summary))  # by hand: no seal written again
    said = [p for a in audit_results(out) if a["sample"] == "S_a" for p in a["problems"]]
    assert any(f"counts {summary['events']} events where events.parquet" in p for p in said)
