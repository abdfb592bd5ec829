"""``ctcnet predict --processes N``: one machine's inputs shared between predict processes.

The children are real processes (the parent's ctcnet run anew, each on its share of the
inputs); their outputs must be those of one process, the run's index written once, and a
refused input must still fail the run.
"""

import json
import os
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import save_tiny_model

import ctcnet
from ctcnet.cli import main
from ctcnet.commands.predict_processes import (
    MAX_AUTO_PROCESSES,
    auto_processes,
    available_memory_gib,
    child_command,
    exit_status,
    parse_processes,
)
from ctcnet.errors import InputError
from ctcnet.io.panel import load_panel


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """Three small cartridges (of 2, 3 and 1 frames) and an untrained model."""
    from ctcnet.simulate import simulate_cartridge

    base = tmp_path_factory.mktemp("processes")
    for i, frames in enumerate((2, 3, 1)):
        simulate_cartridge(base / "scans" / f"c{i}", load_panel(None), num_frames=frames,
                           frame_shape=(192, 256), seed=10 + i, events_per_frame=20,
                           sample_id=f"sample_{i}", rare_rates={"ctc": 0.2})
    model = save_tiny_model(base / "model.pt", crop_size=48, width=8)[0]
    return base, model


def _args(base, model, out, *more):
    return ["predict", str(base / "scans"), "--model", str(model), "--out", str(out),
            "--device", "cpu", "--no-report", "--workers", "0", *more]


@pytest.mark.slow  # starts two Python processes that import torch
def test_processes_share_the_inputs_and_give_what_one_process_gives(scans, capsys):
    base, model = scans
    assert main(_args(base, model, base / "one")) == 0
    one_said = capsys.readouterr().out
    args = _args(base, model, base / "two", "--processes", "2")
    args.remove(str(base / "scans"))
    assert main(args + ["--", str(base / "scans")]) == 0  # the inputs after a "--" too
    captured = capsys.readouterr()
    said = captured.out
    # a line on stderr as each input is done, before what each came to
    assert sorted(line.split("] ")[1] for line in captured.err.splitlines()
                  if " done] " in line) == ["sample_0", "sample_1", "sample_2"]
    one = json.loads((base / "one" / "run.json").read_text())
    two = json.loads((base / "two" / "run.json").read_text())
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert [e["name"] for e in two["outputs"]] == ["sample_0", "sample_1", "sample_2"]
    for a, b in zip(one["outputs"], two["outputs"]):
        assert a["counts"] == b["counts"] and a["held"] == b["held"]
        # ok, or partial for the untrained model's calls alone (as many CTCs as a spike-in's,
        # said as a possible channel swap): the same either way
        assert a["status"] == b["status"] and a.get("problems") == b.get("problems")
        assert not [p for p in a.get("problems", []) if "swapped?" not in p]
        events = [pd.read_parquet(base / run / a["name"] / "events.parquet")
                  for run in ("one", "two")]
        pd.testing.assert_frame_equal(events[0], events[1])
        assert f"{a['name']}: {a['status']}, {a['events']} events" in said  # a line per input
    # ... in the words one process uses (but for the time taken and where it went)
    assert _facts(said) == _facts(one_said) and len(_facts(said)) == 3
    # each child's log names the parent and its share, not only a share file deleted since
    logs = {p.stem.rsplit("-", 1)[1]: p.read_text()
            for p in (base / "two" / "logs").glob("predict-*.log")}
    shares = [m for m in (re.search(r"one process of the run of pid (\d+); its share: (.*)", text)
                          for text in logs.values()) if m]
    assert len(logs) == 3 and len(shares) == 2
    (parent,) = {m.group(1) for m in shares}  # the one parent, whose own log is there
    assert "--processes 2" in logs[parent]
    assert sorted(Path(s).name for m in shares for s in m.group(2).split(", ")) == [
        "c0", "c1", "c2"]  # the input folders, each once


def _facts(said: str) -> list[str]:
    """predict's lines per input, less the seconds and the output folder."""
    return sorted(re.sub(r", [0-9.]+ s -> .*", "", line) for line in said.splitlines()
                  if " -> " in line)


@pytest.mark.slow
def test_an_input_refused_by_one_process_fails_the_run_and_the_others_finish(scans, tmp_path,
                                                                             capfd):
    import shutil

    base, model = scans
    shutil.copytree(base / "scans", tmp_path / "scans")
    # The 1-frame cartridge is a process's whole share (3 processes, dealt by frames): one
    # input alone, refused, is set aside all the same, as in one process of three inputs.
    (tmp_path / "scans" / "c2" / "panel.json").write_text("{not json")
    assert main(_args(tmp_path, model, tmp_path / "out", "--processes", "3", "--quiet")) == 2
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["world_size"] == 3
    by_name = {e["name"]: e for e in run["outputs"]}
    (refused,) = [e for e in run["outputs"] if "set_aside" in e]
    # Its panel.json unreadable, its cartridge.json not: named by the sample id it states.
    assert refused["input"].endswith("c2") and refused["name"] != "c2"
    assert {by_name["sample_0"]["status"], by_name["sample_1"]["status"]} <= {"ok", "partial"}
    assert "missing" not in by_name["sample_0"] and "missing" not in by_name["sample_1"]
    # Said once, at the run's end, not by its process as well (the same line twice).
    assert capfd.readouterr().err.count(" was set aside: ") == 1


def test_processes_and_a_shard_are_one_or_the_other(scans, capsys):
    base, model = scans
    assert main(_args(base, model, base / "x", "--processes", "2", "--shard", "1/2")) == 2
    assert "give one or the other" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["0", "-1", "two"])
def test_a_bad_process_count_is_refused(bad):
    with pytest.raises(InputError, match="--processes"):
        parse_processes(bad)


def test_auto_runs_one_process_on_a_cpu_and_one_per_two_cores_beside_a_gpu():
    assert parse_processes("auto") is None and parse_processes("3") == 3
    assert auto_processes(10, on_gpu=False, cores=64) == 1
    assert auto_processes(10, on_gpu=True, cores=16) == MAX_AUTO_PROCESSES == 8
    assert auto_processes(10, on_gpu=True, cores=64, memory_gib=500) == 8
    assert auto_processes(10, on_gpu=True, cores=8) == 4
    assert auto_processes(10, on_gpu=True, cores=3) == 1
    assert auto_processes(2, on_gpu=True, cores=16) == 2  # no more processes than inputs
    # each process takes about 4 GB: no more than the memory available holds
    assert auto_processes(10, on_gpu=True, cores=16, memory_gib=13.5) == 3
    assert auto_processes(10, on_gpu=True, cores=16, memory_gib=2.0) == 1


def test_the_memory_available_is_read_where_the_system_says_it():
    memory = available_memory_gib()
    assert memory is None or 0 < memory < 1e6


def test_a_child_is_the_parents_command_with_its_share_put_after_the_subcommand():
    argv = ["-v", "predict", "--out", "o", "--processes", "4", "--", "in"]
    command = child_command(argv, "share.json")
    # before the "--", after which options would read as inputs; later options win
    assert command[4:] == ["-v", "predict", "--processes", "1", "--quiet", "--process-inputs",
                           "share.json", "--out", "o", "--processes", "4", "--", "in"]
    assert command[3] == str(Path(ctcnet.__file__).parents[1])  # the parent's ctcnet
    # a model the parent chose (the command line names none) goes to every child
    chosen = child_command(argv, "share.json", "ctcnet-core3")
    assert chosen[4:12] == ["-v", "predict", "--processes", "1", "--quiet", "--process-inputs",
                            "share.json", "--model"] and chosen[12] == "ctcnet-core3"


def test_a_failed_process_is_said_with_its_own_logs_last_error(monkeypatch, tmp_path):
    """run_in_processes reads what ended a failed process from the log it wrote this run."""
    from ctcnet.commands import predict_processes
    from ctcnet.core.run_log import log_host

    class Child:
        def __init__(self, command, env=None, **kwargs):
            self.pid = 4242
            (tmp_path / "logs").mkdir(exist_ok=True)
            (tmp_path / "logs" / f"predict-20261205T010203Z-{log_host()}-4242.log").write_text(
                "2026-12-05T01:02:09.000Z ERROR ctcnet: exit status 4: ctcnet predict: error: "
                "File too large (S1/events.parquet); nothing was left half written\n")

        def poll(self):
            return 4

        def wait(self):
            return 4

    monkeypatch.setattr(predict_processes.subprocess, "Popen", Child)
    endings = {}
    assert predict_processes.run_in_processes(["predict", "x"], [["a"]], out=tmp_path,
                                              endings=endings) == 4
    assert endings == {1: "File too large (S1/events.parquet); nothing was left half written"}


def test_each_process_takes_its_share_of_the_cores(monkeypatch):
    """N processes on a machine of C cores: each sizes its frame workers and model threads
    to C / N (CTCNET_CORES), not to the whole machine."""
    from ctcnet.commands import predict_processes
    from ctcnet.inference import resources

    started = []

    class Child:
        def __init__(self, command, env=None, **kwargs):
            started.append(env)
            self.pid = 0

        def poll(self):
            return 0

        def wait(self):
            return 0

    monkeypatch.setattr(predict_processes.subprocess, "Popen", Child)
    monkeypatch.setattr(resources, "cpu_cores", lambda: 16)
    assert predict_processes.run_in_processes(["predict", "x"], [["a"], ["b"], ["c"]]) == 0
    assert [env[resources.CORES_ENV] for env in started] == ["5"] * 3
    monkeypatch.undo()
    # What a child then reads as its cores: its share, or fewer where its affinity says so.
    monkeypatch.setenv(resources.CORES_ENV, "1")
    assert resources.cpu_cores() == 1
    monkeypatch.setenv(resources.CORES_ENV, "100000")
    assert resources.cpu_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setenv(resources.CORES_ENV, "many")
    assert resources.cpu_cores() == len(os.sched_getaffinity(0))


def test_torchruns_ranks_share_their_nodes_cores(monkeypatch):
    """Each of a node's torchrun ranks (LOCAL_WORLD_SIZE) takes its share of the cores, as
    --processes' processes do, not the whole machine for its frame workers and model threads."""
    from ctcnet.inference import resources

    monkeypatch.setattr(resources.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv(resources.CORES_ENV, raising=False)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resources.cpu_cores() == 4
    assert resources.cpu_model_threads() + resources.cpu_frame_workers() == 4
    monkeypatch.setenv(resources.CORES_ENV, "2")  # and --processes' share within a rank's
    assert resources.cpu_cores() == 2
    monkeypatch.delenv(resources.CORES_ENV)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")  # more ranks than cores: one each
    assert resources.cpu_cores() == 1
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert resources.cpu_cores() == 16


def test_a_missing_model_or_a_bad_prior_is_refused_once_before_any_process_starts(scans, capsys):
    base, _ = scans
    missing = base / "no-such-model.pt"
    assert main(_args(base, missing, base / "nomodel", "--processes", "2")) == 2
    err = capsys.readouterr().err
    assert err.count("model file not found") == 1
    assert not (base / "nomodel" / "run.json").exists()  # no process ran, no index written
    # a prior the shipped model's classes cannot take: said once too
    args = _args(base, "ctcnet-default", base / "badprior", "--processes", "2", "--prior",
                 "ctc=2")
    assert main(args) == 2
    assert capsys.readouterr().err.count("ctc=2 must be above 0") == 1
    assert not (base / "badprior" / "run.json").exists()
    # an ONNX model file: its prior read off its metadata in the parent, and a file that does
    # not load refused there, each once
    import shutil

    from ctcnet.nn.registry import resolve_model

    onnx = base / "mine.onnx"
    shutil.copy(resolve_model("ctcnet-default", "onnx"), onnx)
    args = _args(base, onnx, base / "badprior2", "--processes", "2", "--prior", "ctc=2")
    assert main(args) == 2
    assert capsys.readouterr().err.count("ctc=2 must be above 0") == 1
    broken = base / "broken.onnx"
    broken.write_bytes(onnx.read_bytes()[:5000])
    assert main(_args(base, broken, base / "broken", "--processes", "2")) == 2
    assert capsys.readouterr().err.count("not a loadable ONNX model") == 1
    assert not (base / "badprior2" / "run.json").exists()
    assert not (base / "broken" / "run.json").exists()


def test_the_runs_status_puts_an_interrupt_then_a_failed_process_then_a_refusal_first():
    assert exit_status([0, 0]) == 0
    assert exit_status([3, 2, 0]) == 2
    assert exit_status([0, 3]) == 3
    assert exit_status([2, 130]) == 130
    assert exit_status([3, 1]) == 1  # a process that failed may have left its share undone
    assert exit_status([0, -9]) == 137  # killed (out of memory, say), as a shell says it
    assert exit_status([-2, 0]) == 130
    # A scheduler's SIGTERM the parent passed on: one child met it mid-import and ended on
    # it as an error (1), the other stopped (143): the run was stopped, not failed.
    assert exit_status([1, 143], stopped_by=15) == 143
    assert exit_status([0, 0], stopped_by=15) == 0  # both had finished: nothing stopped


def test_a_process_a_signal_ended_is_said_so_in_its_error_line():
    """A child the kernel killed for memory ended with status 137, and the console said only
    that (and "its process failed: see above"): its line names the signal and where to look."""
    from ctcnet.commands.predict_processes import _killed_by

    assert _killed_by(137) == " (killed by SIGKILL: out of memory? The system log says, dmesg)"
    assert _killed_by(143) == " (killed by SIGTERM)"
    assert _killed_by(1) == _killed_by(3) == _killed_by(250) == ""


def test_shares_are_dealt_by_frames_and_colliding_outputs_refused_before_any_process(
        scans, tmp_path):
    import shutil

    from ctcnet.commands.predict_processes import plan_shares

    base, _ = scans
    folders = [base / "scans" / f"c{i}" for i in range(3)]  # 2, 3 and 1 frames
    names, shares, aside = plan_shares(folders, [], 2)
    assert names == ["sample_0", "sample_1", "sample_2"] and not aside
    assert shares == [[str(folders[1])], [str(folders[0]), str(folders[2])]]
    assert plan_shares(folders, [], 5)[1] == [[str(folders[1])], [str(folders[0])],
                                               [str(folders[2])]]  # no process without work
    # Another folder of the same sample id: both set aside before any process (which the lab
    # meant no run can tell), named with their folders; the others are shared out.
    again = shutil.copytree(folders[0], tmp_path / "again")
    names, shares, aside = plan_shares(folders + [again], [], 2)
    assert names == [f"sample_0 ({folders[0]})", "sample_1", "sample_2", f"sample_0 ({again})"]
    assert sorted(aside) == sorted([names[0], names[3]])
    assert f"is that of {again} too" in aside[names[0]]
    assert sorted(p for share in shares for p in share) == sorted(map(str, folders[1:]))
    # A crop folder named as a cartridge's sample id: both set aside, as two cartridges are.
    (tmp_path / "sample_1").mkdir()
    (tmp_path / "sample_1" / "manifest.csv").write_text("path,label\n")
    names, shares, aside = plan_shares(folders, [tmp_path / "sample_1"], 2)
    assert sorted(aside) == sorted([f"sample_1 ({folders[1]})", f"sample_1 ({tmp_path})"
                                    .replace(f"({tmp_path})", f"({tmp_path / 'sample_1'})")])
    assert names[1] == f"sample_1 ({folders[1]})"
    assert sorted(p for share in shares for p in share) == sorted(map(str, folders[::2]))


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux: /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


def _running(pid: int) -> bool:
    """Whether process ``pid`` is alive (a zombie is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


_SLOW_FRAMES = """
import os, time
if os.environ.get("CTCNET_TEST_FRAME_DELAY"):  # every process of the run: frames made slow
    import ctcnet.inference.frame_workers as frame_workers
    original = frame_workers.prepare_frame
    def slow(*args, **kwargs):
        time.sleep(float(os.environ["CTCNET_TEST_FRAME_DELAY"]))
        return original(*args, **kwargs)
    frame_workers.prepare_frame = slow
"""


@pytest.mark.slow  # starts three Python processes that import torch
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes in /proc")
@pytest.mark.parametrize("how", ["interrupt", "terminate"])
def test_a_signal_to_the_parent_alone_stops_every_process_and_the_rerun_resumes(
        scans, tmp_path, how):
    """A scheduler's or a shell's signal may reach the parent alone: it is passed on, every
    process stops, and a rerun finishes with what an uninterrupted run gives."""
    import os
    import signal
    import subprocess
    import sys
    import time

    base, model = scans
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_SLOW_FRAMES)
    out = tmp_path / "out"
    args = _args(base, model, out, "--processes", "2", "--quiet")
    env = dict(os.environ, CTCNET_TEST_FRAME_DELAY="1.0", PYTHONPATH=os.pathsep.join(
        [str(tmp_path / "site"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    parent = subprocess.Popen([sys.executable, "-m", "ctcnet", *args], env=env,
                              start_new_session=True, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and parent.poll() is None and \
            len(list(out.glob("*/parts/frames.json"))) < 2:  # both processes at work
        time.sleep(0.05)
    children = _children(parent.pid)
    assert parent.poll() is None and len(children) == 2, parent.communicate()
    parent.send_signal(signal.SIGINT if how == "interrupt" else signal.SIGTERM)
    assert parent.wait(timeout=60) == (130 if how == "interrupt" else 143), parent.stderr.read()
    said = [line for line in parent.stderr.read().splitlines() if "stopped (" in line]
    assert len(said) == 1, said  # the parent's, not one a process
    assert not [pid for pid in children if _running(pid)]
    assert len(list(out.glob("*/summary.json"))) < 3  # stopped part-way
    assert main(_args(base, model, out, "--processes", "2", "--quiet")) == 0
    assert main(_args(base, model, tmp_path / "whole", "--quiet")) == 0
    for name in ("sample_0", "sample_1", "sample_2"):
        pd.testing.assert_frame_equal(pd.read_parquet(out / name / "events.parquet"),
                                      pd.read_parquet(tmp_path / "whole" / name /
                                                      "events.parquet"))


def test_a_process_killed_before_its_share_is_done_fails_the_run_and_says_why(
        scans, tmp_path, monkeypatch):
    """A child killed (kill -9: status 137) leaves its samples without an output: run.json
    says the run failed, and each such sample why, not "finished" with bare "missing"."""
    from ctcnet.commands import predict_processes

    base, model = scans
    monkeypatch.setattr(predict_processes, "run_in_processes", lambda *a, **k: 137)
    assert main(_args(base, model, tmp_path / "out", "--processes", "2")) == 137
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["state"] == "failed"
    assert all(e["missing"] and "ended with status 137" in e["reason"] for e in run["outputs"])


def test_a_process_that_failed_is_said_with_what_its_log_says_ended_it(scans, tmp_path,
                                                                       monkeypatch):
    """A child ended by a full disk: run.json's error read "a process ended with status 4",
    the cause in the child's own log alone."""
    import time

    from ctcnet.commands import predict_processes
    from ctcnet.core.run_log import log_host

    logs = tmp_path / "out" / "logs"
    logs.mkdir(parents=True)
    host = log_host()
    (logs / f"predict-20261205T010203Z-{host}-4242.log").write_text(
        "2026-12-05T01:02:03.000Z INFO ctcnet.predict: ctcnet 0.1 on host, pid 4242\n"
        "2026-12-05T01:02:09.000Z ERROR ctcnet.predict: ended after 6.0 s: OSError: [Errno "
        "28] No space left on device\n"
        "2026-12-05T01:02:09.000Z ERROR ctcnet: exit status 4: ctcnet predict: error: No "
        "space left on device (out/S3/summary.json); nothing was left half written, free "
        "space and rerun to resume\n")
    ending = predict_processes.child_ending(tmp_path / "out", 4242)
    assert ending == ("No space left on device (out/S3/summary.json); nothing was left half "
                      "written, free space and rerun to resume")
    assert predict_processes.child_ending(tmp_path / "out", 4243) is None  # no log of it
    # Never an earlier night's log of a process of the same id, nor another host's whose
    # name ends in the same digits.
    assert predict_processes.child_ending(tmp_path / "out", 4242, time.time() + 60) is None
    other = logs / "predict-20261205T010203Z-ip-10-0-7-21-999.log"
    other.write_text("2026-12-05T01:02:09.000Z ERROR ctcnet: exit status 4: MemoryError\n")
    assert predict_processes.child_ending(tmp_path / "out", 7) is None
    assert predict_processes.child_ending(tmp_path / "out", 21) is None

    running = []

    def failed(*args, **kwargs):
        running.append(json.loads((tmp_path / "out" / "run.json").read_text()))
        args[5][2] = ending  # the second process's, as run_in_processes fills it
        return 4

    base, model = scans
    monkeypatch.setattr(predict_processes, "run_in_processes", failed)
    assert main(_args(base, model, tmp_path / "out", "--processes", "2")) == 4
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["error"] == f"a process ended with status 4 (process 2: {ending})"
    # While it ran, run.json named the processes running it (it read 1).
    assert running[0]["state"] == "running" and running[0]["world_size"] == 2


@pytest.mark.parametrize("status, by", [(130, "an interrupt (Ctrl-C)"), (143, "SIGTERM"),
                                        (129, "SIGHUP")])
def test_a_run_stopped_in_its_processes_says_what_stopped_it(scans, tmp_path, monkeypatch,
                                                           capsys, status, by):
    """Ctrl-C or a scheduler's SIGTERM while the processes run: run.json says the run was
    stopped, by what, and why each sample has no output, as one process's run does; the
    console says it once (the processes, which said it each, leave it to the parent)."""
    from ctcnet.commands import predict_processes

    base, model = scans
    monkeypatch.setattr(predict_processes, "run_in_processes", lambda *a, **k: status)
    assert main(_args(base, model, tmp_path / "out", "--processes", "2")) == status
    said = [line for line in capsys.readouterr().err.splitlines() if "stopped (" in line]
    assert said == [f"ctcnet predict: stopped ({by}); the same command resumes it"]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["state"] == "stopped" and run["error"] == f"stopped by {by}"
    assert all(e["missing"] and "stopped before its output was written" in e["reason"]
               for e in run["outputs"])


def test_a_run_stopped_once_every_input_was_done_is_finished(scans, tmp_path, monkeypatch,
                                                              capsys):
    """SIGTERM as the processes wrote their last outputs: each ended on the signal, but every
    input has its output; run.json said "stopped" beside a complete night."""
    from ctcnet.commands import predict_processes

    base, model = scans
    out = tmp_path / "out"

    def every_input_done_then_stopped(*args, **kwargs):
        assert main(_args(base, model, out)) == 0
        return 143

    monkeypatch.setattr(predict_processes, "run_in_processes", every_input_done_then_stopped)
    assert main(_args(base, model, out, "--processes", "2")) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["state"] == "finished" and "error" not in run
    assert run["outputs"] and not any(e.get("missing") for e in run["outputs"])
    assert "once every input was done" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_child_stops_when_its_parent_is_killed_outright(tmp_path):
    """kill -9 of the parent (or the OOM killer) must not leave the predict processes running
    on, unseen by run.json and by the operator's rerun: each child gets SIGTERM."""
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    child_code = ("from ctcnet.commands.predict_processes import die_with_parent\n"
                  "die_with_parent()\n"
                  "import time; time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        "from ctcnet.commands.predict_processes import PARENT_ENV\n"
        "env = {**os.environ, PARENT_ENV: str(os.getpid())}\n"
        f"child = subprocess.Popen([sys.executable, '-c', {child_code!r}], env=env,\n"
        "                         start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n")])
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):  # gone (or a zombie of no parent's, reaped by init) within 5 s
        try:
            state = Path(f"/proc/{child}/stat").read_text().split()[2]
        except OSError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the child ran on after its parent was killed")


def test_the_shares_are_handed_over_in_the_out_folder_and_a_killed_runs_taken_away(tmp_path):
    """The inputs' paths (patients' scans) go to the children through files in --out, not
    the machine's /tmp, and what a parent killed outright left there goes at the next run."""
    import json
    import os

    from ctcnet.commands.predict_processes import SHARES_DIR, _handed_over

    folder = tmp_path / "out" / SHARES_DIR
    folder.mkdir(parents=True)
    (folder / "share-999999999-x.json").write_text("[]")  # a process gone: a killed run's
    (folder / f"share-{os.getppid()}-y.json").write_text("[]")  # a run still going
    files = _handed_over([["/scans/a"], ["/scans/b"]], folder)
    assert not (folder / "share-999999999-x.json").exists()
    assert (folder / f"share-{os.getppid()}-y.json").exists()
    assert [json.loads(open(f).read()) for f in files] == [["/scans/a"], ["/scans/b"]]
    assert all(str(f).startswith(str(folder)) for f in files)


def test_more_processes_than_cores_are_said(monkeypatch, caplog):
    """--processes 64 on 2 cores started one process an input, 2.2 GB, without a word."""
    import ctcnet.inference.resources as resources
    from ctcnet.commands.predict_processes import said_past_cores

    monkeypatch.setattr(resources, "cpu_cores", lambda: 2)
    with caplog.at_level("WARNING"):
        assert said_past_cores(2) == 2
        assert "--processes" not in caplog.text
        assert said_past_cores(5) == 5
    assert "--processes 5 on 2 cores: the processes share them" in caplog.text
