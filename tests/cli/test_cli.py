"""ctcnet.cli: every subcommand listed with its help; no command writes over the model it reads."""


import importlib
import json

import pytest
from conftest import digest, one_line_refusal, refused, run_cli, save_tiny_model

from ctcnet.cli import SUBCOMMANDS, build_parser, main

# --- CLI ----------------------------------------------------------------------------------------

def test_cli_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


def test_no_command_shows_the_usage_as_a_usage_error(capsys):
    assert main([]) == 2  # a script calling `ctcnet $EMPTY` learns that nothing ran
    said = capsys.readouterr()
    assert not said.out and "usage: ctcnet" in said.err
    assert said.err.rstrip().endswith("ctcnet: error: a command is required (the list above)")


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_subcommand_has_help(capsys, name):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert "usage: ctcnet " + name in capsys.readouterr().out


def test_simulate_help_names_every_shift(capsys):
    from ctcnet.simulate import NAMED_SHIFTS

    with pytest.raises(SystemExit):
        main(["simulate", "crops", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for name in NAMED_SHIFTS:
        assert name in out


SIZE = 32


def test_no_command_writes_over_the_model_it_reads(lab, tmp_path, capsys):
    model, _ = save_tiny_model(tmp_path / "m.pt", crop_size=SIZE, width=8)
    before = digest(model)
    crops = lab / "crops"
    again = tmp_path / "sub" / ".." / "m.pt"  # the same file, spelt otherwise
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.pt").symlink_to(model)
    evaluate = ["evaluate", crops, "--model", model, "--out", tmp_path / "ev", "--no-baselines",
                "--device", "cpu", "--calibrate-on", crops, "--save-model"]
    for target in (model, again, tmp_path / "link.pt"):
        for more in ([], ["--overwrite"]):
            line = one_line_refusal(capsys, evaluate + [target] + more,
                                    "is the model this command reads")
            assert "choose another path for --save-model" in line and str(target) in line
    refused(capsys, lab / "base.pt", [str(a) for a in evaluate + [lab / "base.pt"]])
    one_line_refusal(capsys, ["finetune", crops, "--base", model, "--out", again,
                              "--overwrite", "--steps", "1", "--device", "cpu"],
                     "is the model this command reads")
    one_line_refusal(capsys, ["export", model, "--out", model, "--overwrite"],
                     "is the model this command reads")
    assert digest(model) == before and not (tmp_path / "ev").exists()


def test_verbose_is_taken_before_or_after_the_subcommand():
    parse = build_parser().parse_args
    assert parse(["models", "-v"]).verbose == 1
    assert parse(["-v", "models"]).verbose == 1
    assert parse(["-vv", "models"]).verbose == 2
    assert parse(["models"]).verbose == 0
    # train hands the rest of its line to LightningCLI as it is
    assert parse(["train", "-v"]).cli_args == ["-v"]


# --- crop folders: what every command that reads them holds to --------------------------------

CROP_COMMANDS = ("predict", "evaluate", "robustness", "finetune")


def _crop_command(name, crops, lab, tmp_path):
    """``name`` run on ``crops`` with the lab's tiny model, as cheaply as it runs."""
    model = lab / "base.pt"
    out = tmp_path / f"{name}-out"
    return {"predict": ["predict", crops, "--model", model, "--out", out, "--no-report",
                        "--quiet"],
            "evaluate": ["evaluate", crops, "--model", model, "--out", out, "--no-baselines",
                         "--device", "cpu"],
            "robustness": ["robustness", crops, "--model", model, "--out", out,
                           "--no-baselines", "--families", "stain", "--device", "cpu"],
            "finetune": ["finetune", crops, "--base", model, "--out", out / "m.pt", "--steps",
                         "1", "--batch-size", "8", "--simulated-per-class", "0",
                         "--sim-check-per-class", "0", "--device", "cpu"]}[name]


def test_each_crop_folder_command_takes_the_pixel_size_option_its_messages_name(lab, tmp_path,
                                                                               capsys):
    """Crops whose panel.json states no pixel size: each command says to pass --pixel-size,
    and has it (finetune once had not: a dead end); the option parses alike everywhere."""
    import json
    import shutil

    crops = shutil.copytree(lab / "crops", tmp_path / "crops")
    panel = json.loads((crops / "panel.json").read_text())
    del panel["pixel_size_um"]
    (crops / "panel.json").write_text(json.dumps(panel))
    parse = build_parser().parse_args
    for name in CROP_COMMANDS:
        args = _crop_command(name, crops, lab, tmp_path)
        line = one_line_refusal(capsys, args, "pass --pixel-size fit")
        assert "--pixel-size auto" in line and "--pixel-size UM" in line
        assert parse([str(a) for a in args] + ["--pixel-size", "fit"]).pixel_size == "fit"
        assert parse([str(a) for a in args] + ["--pixel-size", "0.5"]).pixel_size == 0.5
        with pytest.raises(SystemExit):
            parse([str(a) for a in args] + ["--pixel-size", "50"])
    assert "not a plausible pixel size" in capsys.readouterr().err
    assert main([str(a) for a in _crop_command("finetune", crops, lab, tmp_path)]
                + ["--pixel-size", "0.64"]) == 0
    assert (tmp_path / "finetune-out" / "m.pt").exists()


def test_a_blank_crop_is_refused_alike_by_each_command_that_reads_crops(lab, tmp_path, capsys):
    """An all-zero crop among labelled ones: predict, evaluate, robustness and finetune each
    refuse in one line naming it (ctcnet train's data module: tests/training)."""
    import shutil

    import numpy as np

    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.io.images import write_tiff

    crops = shutil.copytree(lab / "crops", tmp_path / "crops")
    blank = read_crop_index(crops).paths[3]
    write_tiff(blank, np.zeros((5, SIZE, SIZE), np.uint16))
    refusal = f"{blank}: blank: every channel is 0 (an empty or failed export): delete it " \
              "or its manifest.csv line"
    for name in ("predict", "evaluate", "robustness"):
        one_line_refusal(capsys, _crop_command(name, crops, lab, tmp_path), refusal)
    # (finetune warns first that four crops a class are few to learn from)
    status, err = run_cli(capsys, *_crop_command("finetune", crops, lab, tmp_path))
    assert status == 2 and any(refusal in line for line in err), err
    assert not (tmp_path / "finetune-out" / "m.pt").exists()


def test_the_log_goes_to_stderr_as_it_is_when_a_record_is_logged(monkeypatch):
    """An in-process caller that swaps stderr after a command (a notebook, a test's capture)
    gets the next command's log on the new stream, not an error about the closed old one."""
    import io
    import logging
    import sys

    from ctcnet.cli import setup_logging

    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging()
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("ctcnet.test").warning("said")
    assert second.getvalue() == "WARNING ctcnet.test: said\n"


@pytest.mark.parametrize("argv, said", [
    (["simulate", "cartridge", "OUT", "--seed", "-1"], "a seed is a whole number, 0 or more"),
    (["simulate", "crops", "OUT", "--seed", "x"], "a seed is a whole number, 0 or more"),
    (["export", "ctcnet-default", "--out", "OUT/m.onnx", "--seed", "-3"], "a seed is"),
    (["evaluate", "OUT", "--review-precision", "2"], "a number over 0 and at most 1"),
    (["predict", "OUT", "--out", "OUT/r", "--frame-device", "tpu"],
     "--frame-device 'tpu' is not one of numpy, auto"),
])
def test_a_value_out_of_its_range_is_refused_in_one_line_before_any_work(tmp_path, capsys,
                                                                         argv, said):
    """A negative seed, a precision over 1, a frame device that is none: one line naming the
    option, exit status 2, nothing written (not a traceback from deep in the run, nor a
    cartridge set aside for the command's typo)."""
    try:  # argparse's own refusal ends the parse (SystemExit 2); ctcnet's returns 2
        status, err = run_cli(capsys, *[str(a).replace("OUT", str(tmp_path / "o"))
                                        for a in argv])
    except SystemExit as stop:
        status, err = stop.code, capsys.readouterr().err.splitlines()
    assert status == 2 and said in err[-1], err
    assert not any("Traceback" in line for line in err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, said", [
    (["evaluate", "DATA", "--out", "FILE"], "exists and is not a folder"),
    (["robustness", "DATA", "--out", "FILE"], "exists and is not a folder"),
    (["simulate", "gallery", "FILE"], "exists and is not a folder"),
    (["verify", "--out", "FOLDER"], "is a folder; --out names the file to write (e.g. "),
])
def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys,
                                                                           argv, said):
    """An output folder whose path is a file, or an output file whose path is a folder: one
    line, exit status 2, before the evaluation or the installation's check runs (not a
    traceback once the work is done)."""
    (tmp_path / "FILE").write_text("a lab's notes\n")
    (tmp_path / "FOLDER").mkdir()
    paths = {"FILE": tmp_path / "FILE", "FOLDER": tmp_path / "FOLDER",
             "DATA": tmp_path / "no-data"}
    status, err = run_cli(capsys, *[paths.get(a, a) for a in argv])
    assert status == 2 and len(err) == 1 and said in err[0], err
    assert (tmp_path / "FILE").read_text() == "a lab's notes\n"


def test_quiet_before_any_command_leaves_only_errors(tmp_path, capsys):
    """``ctcnet --quiet COMMAND``: a command without a --quiet of its own prints no lines
    (its errors still reach stderr); `models`, whose lines are the answer, still lists."""
    assert main(["--quiet", "simulate", "cartridge", str(tmp_path / "c"), "--frames", "1",
                 "--events", "10"]) == 0
    assert capsys.readouterr().out == "" and (tmp_path / "c" / "cartridge.json").is_file()
    status, err = run_cli(capsys, "--quiet", "simulate", "cartridge", tmp_path / "c")
    assert status == 2 and "already exist" in err[0]
    assert main(["--quiet", "models"]) == 0 and "ctcnet-default" in capsys.readouterr().out


def test_a_misspelt_option_is_refused_with_its_commands_usage(capsys):
    """``ctcnet predict ... --qiet`` names the command's usage (where the right spelling is),
    not ctcnet's own line of commands."""
    with pytest.raises(SystemExit) as stop:
        main(["predict", "somewhere", "--out", "o", "--qiet"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "ctcnet predict: error: unrecognized arguments: --qiet" in err
    assert "usage: ctcnet predict" in err
    assert "(did you mean --quiet?)" in err  # the spelling meant, named


def test_ctrl_c_while_the_commands_load_ends_with_a_line_not_a_traceback(monkeypatch, capsys):
    import ctcnet.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    with pytest.raises(SystemExit) as ended:
        cli.main(["predict", "x"])
    assert ended.value.code == 130 and capsys.readouterr().err == "ctcnet: interrupted\n"


def test_a_misspelt_required_option_is_named_with_the_one_meant(capsys):
    """``--ot results``: argparse said only that --out is required, as if none were typed."""
    with pytest.raises(SystemExit) as stop:
        main(["predict", "somewhere", "--ot", "results"])
    err = capsys.readouterr().err
    assert stop.value.code == 2
    assert "the following arguments are required: --out; --ot is no option here (did you " \
        "mean --out?)" in err


def test_a_results_folder_given_bare_to_verify_is_shown_its_option(capsys, tmp_path):
    """``ctcnet verify results``: review, crops and export-events take the folder bare."""
    with pytest.raises(SystemExit):
        main(["verify", str(tmp_path)])
    assert f"(a results folder is given as --results {tmp_path})" in capsys.readouterr().err


def test_a_file_this_user_may_not_read_is_an_input_to_correct(tmp_path, monkeypatch):
    """A model file another user keeps 0600 exited 4 with "make the folder writable": it is
    an input (exit 2, read access), unlike a place the run writes."""
    import errno
    import os

    from ctcnet import cli

    model = tmp_path / "lab600.pt"
    model.write_bytes(b"x")
    out = tmp_path / "out"
    out.mkdir()
    inside = out / "part.parquet"
    inside.write_bytes(b"x")
    real = os.access
    # Nothing may be read; folders may be entered, and what is there is there.
    monkeypatch.setattr(os, "access", lambda path, mode: mode == os.X_OK or (
        mode == os.F_OK and real(path, mode)))

    def denied(path):
        return OSError(errno.EACCES, "Permission denied", str(path))

    assert cli._unreadable_input(denied(model), out)
    assert cli._unreadable_input(denied(model), None)
    assert not cli._unreadable_input(denied(inside), out)  # a place the run writes
    assert not cli._unreadable_input(denied(tmp_path / "gone"), out)
    assert not cli._unreadable_input(OSError(errno.ENOSPC, "full", str(model)), out)


def test_a_full_disk_without_a_file_named_points_at_the_temporary_folder(monkeypatch, capsys):
    """An export's traced graph filled a small TMPDIR: "No space left on device" named no
    place, and --out had room."""
    import errno

    from ctcnet import cli
    from ctcnet.commands import models as models_command

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(models_command, "run", full)
    assert cli.main(["models"]) == cli.MACHINE_STATUS
    err = capsys.readouterr().err
    assert "No space left on device (in the temporary folder " in err and "TMPDIR" in err


def test_no_thread_to_start_is_the_machines_state_not_a_traceback(monkeypatch, capsys):
    """Under ulimit -v a report's threads could not start: a RuntimeError traceback, exit 1."""
    from ctcnet import cli
    from ctcnet.commands import models as models_command

    def limited(args):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(models_command, "run", limited)
    assert cli.main(["models"]) == cli.MACHINE_STATUS
    assert "a limit on memory or threads" in capsys.readouterr().err

    def bug(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(models_command, "run", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["models"])


def test_a_disk_with_space_but_no_inode_left_says_so(monkeypatch, capsys, tmp_path):
    """`df` showed free space beside "No space left on device ... free space"."""
    import errno
    import os
    from types import SimpleNamespace

    from ctcnet import cli
    from ctcnet.commands import models as models_command

    def full(args):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.json"))

    monkeypatch.setattr(models_command, "run", full)
    monkeypatch.setattr(os, "statvfs", lambda p: SimpleNamespace(f_files=30, f_ffree=0,
                                                                  f_bavail=1000))
    assert cli.main(["models"]) == cli.MACHINE_STATUS
    said = capsys.readouterr().err
    assert "its inodes are all used, df -i" in said and "remove files" in said


@pytest.mark.parametrize("raised", [MemoryError("no room"), OSError(12, "Cannot allocate memory")])
def test_the_machines_advice_fits_the_command(monkeypatch, capsys, raised):
    """A simulate out of memory was told to give "fewer --workers" (it has none) and "rerun
    to resume" (it does not resume); predict's advice stays its own."""
    from ctcnet import cli
    from ctcnet.commands import predict as predict_command
    from ctcnet.commands import simulate as simulate_command

    def short(args):
        raise raised

    for module in (simulate_command, predict_command):
        monkeypatch.setattr(module, "run", short)
    assert cli.main(["simulate", "cartridge", "x"]) == cli.MACHINE_STATUS
    said = capsys.readouterr().err
    assert said.rstrip().endswith("free memory (other jobs ended) and run it again"), said
    assert cli.main(["predict", "x", "--out", "y"]) == cli.MACHINE_STATUS
    said = capsys.readouterr().err
    assert said.rstrip().endswith("free memory (fewer --workers, other jobs ended) and rerun "
                                  "to resume"), said


def test_predict_help_gives_every_exit_status_the_docs_table_does(capsys):
    """A workflow engine's retry policy reads the exit status: `predict --help` names each
    code of docs/outputs.md's table, not only the docs."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "outputs.md").read_text()
    table = doc.split("## Exit codes of ctcnet predict", 1)[1]
    codes = re.findall(r"^\| (\d+) \|", table, flags=re.M)
    assert {"0", "2", "3", "4", "130", "143", "1"} <= set(codes)
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    said = " ".join(capsys.readouterr().out.split()).split("exit status:", 1)[1]
    for code in codes:
        assert re.search(rf"(?<![\d.]){code}(?![\d.])", said), code


def test_simulate_draws_the_look_the_shipped_cards_were_measured_on(tmp_path):
    """An assessor reproducing a card's held-out figures needs its look: `--look filled-ctc`
    draws it (CK-filled CTCs, CD45 floored), recorded in dataset.json's config."""
    from ctcnet.simulate import SimConfig

    assert main(["--quiet", "simulate", "crops", str(tmp_path / "d"), "--counts", "2",
                 "--look", "filled-ctc"]) == 0
    config = json.loads((tmp_path / "d" / "dataset.json").read_text())["config"]
    filled = SimConfig().with_filled_ctc_look()
    assert config["ctc_rim_share"] == filled.ctc_rim_share == 0.0
    assert config["cd45_bright_snr"] == filled.cd45_bright_snr != SimConfig().cd45_bright_snr


def test_a_hangup_stops_a_command_as_sigterm_does_unless_ignored(monkeypatch, capsys):
    """A terminal closed (or an ssh link dropped) under a run killed it as SIGKILL would:
    run.json left "running", nothing said. SIGHUP now stops it as SIGTERM does (129); under
    nohup, which ignores it, it stays ignored."""
    import os
    import signal

    from ctcnet import cli
    from ctcnet.commands import models as models_command
    from ctcnet.commands.stop_signals import stop_on_sigterm
    from ctcnet.errors import Terminated

    hangup = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # (as a terminal's run has it)
    previous = stop_on_sigterm()
    try:
        assert signal.SIGHUP in previous
        with pytest.raises(Terminated, match="SIGHUP"):
            os.kill(os.getpid(), signal.SIGHUP)
            signal.sigtimedwait([], 1.0)  # (the handler runs at the next bytecode anyway)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        previous = stop_on_sigterm()
        assert signal.SIGHUP not in previous  # (nohup's) kept
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGHUP, hangup)

    def hung_up(args):
        raise Terminated("SIGHUP")

    monkeypatch.setattr(models_command, "run", hung_up)
    assert cli.main(["models"]) == 129
    assert "ctcnet models: stopped (SIGHUP)" in capsys.readouterr().err

    def import_stopped(args):  # a stop inside a compiled extension's first import
        try:
            raise Terminated("SIGTERM")
        except Terminated as stop:
            raise ImportError("initialization failed") from stop

    monkeypatch.setattr(models_command, "run", import_stopped)
    assert cli.main(["models"]) == 143  # was 1, a failure
    assert "ctcnet models: stopped (SIGTERM)" in capsys.readouterr().err


def test_a_command_run_in_process_puts_the_loggers_back(capsys):
    """main(["--quiet", ...]) in a notebook left ctcnet's logger at ERROR with a handler on
    stderr: every later library warning (a crop of NaN, a scale of 0-1) went unsaid."""
    import logging

    from ctcnet import cli

    ours, tiff = logging.getLogger("ctcnet"), logging.getLogger("tifffile")
    before = ours.level, list(ours.handlers), tiff.propagate, list(tiff.handlers)
    assert cli.main(["--quiet", "models"]) == 0
    assert (ours.level, list(ours.handlers), tiff.propagate, list(tiff.handlers)) == before
    capsys.readouterr()


@pytest.mark.parametrize("command, said", [
    ("finetune", "nothing was written (a model it would replace is kept): the same command "
                 "starts it again"),
    ("evaluate", "an earlier report in --out is kept as it was (cartridges: the same command "
                 "resumes each one's run beside it)")])
def test_a_command_interrupted_says_what_it_left(monkeypatch, capsys, tmp_path, command, said):
    """A fine-tune stopped by Ctrl-C said "interrupted" alone: whether it resumes (it does
    not: it starts again) or what it left was for the user to guess."""
    module = importlib.import_module(f"ctcnet.commands.{command}")

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "run", interrupted)
    args = [str(tmp_path / "crops"), "--out", str(tmp_path / "out")]
    assert main([command, *args]) == 130
    assert capsys.readouterr().err.strip() == f"ctcnet {command}: interrupted; {said}"


@pytest.mark.parametrize("argv", [
    ["predict", "", "--out", "OUT"], ["predict", "IN", "--out", ""],
    ["crops", "", "--out", "OUT"], ["verify", "--results", ""], ["export", ""],
    ["export", "ctcnet-default", "--int8", ""], ["export-events", "IN", "--fcs", "--out", ""],
    ["benchmark", "--frames=", "--out", "OUT"], ["benchmark", "--out", ""],
    ["simulate", "crops", "--out", "", "--counts", "2"], ["robustness", "IN", "--out", "OUT",
                                                          "--model", ""],
    ["finetune", "IN", "--out", "m.pt", "--base", ""]])
def test_an_empty_path_is_refused_not_read_as_the_working_folder(argv, tmp_path, monkeypatch,
                                                                 capsys):
    """'' (a script's unset variable) was the working folder: predict ran every scan in it,
    --out wrote into it, --int8 '' exported fp32, export '' failed with a traceback and
    benchmark --frames= ran the whole default benchmark."""
    from ctcnet.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "IN").mkdir()
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "an empty name" in err or "got ''" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IN"]
