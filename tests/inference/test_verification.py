"""``ctcnet verify``: an installation checked against the shipped files and the reference
cartridge's recorded calls, passing here and failing, with the reason, where either differs."""

import json
import shutil

import pandas as pd
import pytest

import ctcnet.inference.verification as verification
from ctcnet.cli import main
from ctcnet.inference.verification import check_shipped_files, event_differences


def test_this_installation_verifies(tmp_path, capsys):
    status = main(["verify", "--device", "cpu", "--out", str(tmp_path / "iq.json")])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "software: ctcnet " in printed
    assert "every call, flag and position as recorded at the balanced prior and at the " \
        "cartridge rule" in printed and "PASSED" in printed
    record = json.loads((tmp_path / "iq.json").read_text())
    assert record["passed"] and record["shipped_files"]["files"] >= 14
    assert record["warnings"] == []
    assert record["reference"]["events"] > 50 and record["software"]["ctcnet"]
    # When, where and by whom: an installation qualification's record stands alone.
    assert record["checked_at"].endswith("Z") and record["host"]
    # The backend a lab's nights use may be asked for: the checkpoint verifies too.
    assert main(["verify", "--device", "cpu", "--backend", "torch", "--json"]) == 0
    torch_record = json.loads(capsys.readouterr().out)
    assert torch_record["reference"]["backend"] == "torch" and torch_record["passed"]


def test_a_changed_file_or_call_fails_with_what_differs(tmp_path, monkeypatch, capsys):
    # a shipped file altered (a copy of the list and one file)
    models = tmp_path / "models"
    (models / "reference").mkdir(parents=True)
    shutil.copy(verification.CHECKSUMS, models / "SHA256SUMS")
    shutil.copy(verification.REFERENCE_EVENTS, models / "reference" / "events.parquet")
    (models / "reference" / "events.parquet").write_bytes(b"x")
    checked = check_shipped_files(models / "SHA256SUMS")
    assert not checked["passed"] and checked["differ"] == ["reference/events.parquet"]
    assert "ctcnet-default.onnx" in checked["missing"]
    # A lab's model (and its card) dropped into the shipped folder is offered as shipped:
    # named, and the installation fails (it passed, "as shipped").
    (models / "lab.pt").write_bytes(b"weights")
    (models / "lab.json").write_text("{}")
    (models / "notes.txt").write_text("a lab's note, no model")
    (models / "README.md").write_text("a lab's note, no card")  # (no model beside it)
    for junk in (".DS_Store", "._lab.json", "Thumbs.db"):  # an OS's, a desktop's
        (models / junk).write_bytes(b"")
        (models / "reference" / junk).write_bytes(b"")
    (models / "reference" / "events_old.parquet").write_bytes(b"x")
    assert check_shipped_files(models / "SHA256SUMS")["unlisted"] == [
        "lab.json", "lab.pt", "reference/events_old.parquet"]
    assert check_shipped_files()["unlisted"] == []  # the shipped folder as shipped
    # a call and a position moved: named, with the events
    want = pd.read_parquet(verification.REFERENCE_EVENTS)
    got = want.copy()
    got.loc[3, "class"] = "ctc" if want.loc[3, "class"] != "ctc" else "wbc"
    got.loc[5, "x"] += 0.05
    said = event_differences(got, want)
    assert any(s.startswith("class: 1 of") for s in said)
    assert any(s.startswith("x: 1 of") and "largest difference 0.05" in s for s in said)
    assert event_differences(got.iloc[:-1], want) == [f"{len(want) - 1} events, {len(want)} "
                                                      "recorded"]
    # ... and the command says FAILED, exit 1
    monkeypatch.setattr(verification, "check_reference", lambda device, backend=None: {
        "backend": "onnx", "device": "cpu", "events": len(got), "differences": said,
        "passed": False})
    capsys.readouterr()
    assert main(["verify"]) == 1
    printed = capsys.readouterr().out
    assert "FAILED: the reference's calls differ" in printed and "class: 1 of" in printed


def test_a_broken_cartridge_rule_fails_and_a_missing_record_is_a_failure(monkeypatch):
    """The calls a night counts are checked too: a model whose cartridge rule is lost (read
    at the balanced prior) fails at the cartridge rule alone; a recorded table gone is a
    failure said, not a traceback."""
    from ctcnet.inference import backends
    from ctcnet.nn.calls import DecisionRule

    real = backends.load_backend

    def without_rule(*args, **kwargs):
        backend = real(*args, **kwargs)
        backend.spec = backend.spec.replace(decision=DecisionRule.balanced())
        return backend

    monkeypatch.setattr(backends, "load_backend", without_rule)
    checked = verification.check_reference("cpu")
    assert not checked["passed"]
    assert checked["differences"] and all(d.startswith("at the cartridge rule: ")
                                          for d in checked["differences"])
    monkeypatch.setattr(backends, "load_backend", real)
    monkeypatch.setattr(verification, "REFERENCE_EVENTS_CARTRIDGE",
                        verification.REFERENCE / "gone.parquet")
    checked = verification.check_reference("cpu")
    assert not checked["passed"] and "cannot be read or predicted" in checked["differences"][0]


def test_a_full_temporary_folder_is_the_machines_state_not_calls_that_differ(monkeypatch):
    """A 512 KiB TMPDIR read as "the reference's calls differ" (FAILED, exit 1): a full disk
    is said as one (exit 4 from the command line), naming the folder."""
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "/tmp/x/parts/r00c01.npz")

    monkeypatch.setattr(verification, "predict_reference", full)
    with pytest.raises(OSError, match="where the reference is predicted, the temporary "
                                      "folder .* \\(TMPDIR") as caught:
        verification.check_reference()
    assert caught.value.errno == errno.ENOSPC

    def missing(*args, **kwargs):
        raise OSError(errno.ENOENT, "No such file", "cartridge")

    monkeypatch.setattr(verification, "predict_reference", missing)
    got = verification.check_reference()
    assert not got["passed"] and "cannot be read or predicted" in got["differences"][0]


def test_an_earlier_record_is_written_over_only_when_asked(tmp_path, capsys):
    """Another user's FAILED record in a shared folder was replaced by a PASSED one, exit 0:
    a qualification's evidence is kept unless --overwrite says otherwise (refused before the
    checks run)."""
    earlier = tmp_path / "iq.json"
    earlier.write_text('{"passed": false}')
    assert main(["verify", "--out", str(earlier)]) == 2
    assert "exists: an earlier record" in capsys.readouterr().err
    assert earlier.read_text() == '{"passed": false}'
