"""An evaluation's --out folder: an earlier report is not replaced unasked; replaced, it stays
until the new report is written, and then none of its figures stays beside the new report."""

import pytest

from ctcnet.commands.report_folders import prepare_report_folder, report_replaced
from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_write_text

EARLIER = ("report.json", "confusion.png", "confusion_logistic.png", "index.html")


def _earlier_report(out):
    out.mkdir()
    for name in EARLIER:
        (out / name).write_text("earlier")
    (out / "notes.txt").write_text("a lab's notes")


def test_an_earlier_report_is_refused_and_replaced_once_the_new_one_is_written(tmp_path):
    out = tmp_path / "eval"
    prepare_report_folder(out, overwrite=False)  # nothing there: nothing to refuse
    _earlier_report(out)
    with pytest.raises(InputError, match="report.json already exists; pass --overwrite"):
        prepare_report_folder(out, overwrite=False)
    with report_replaced(out, overwrite=True):
        assert sorted(p.name for p in out.iterdir()) == sorted([*EARLIER, "notes.txt"])
        atomic_write_text(out / "report.json", "new")  # (no baselines: no logistic figure)
        atomic_write_text(out / "confusion.png", "new")
    assert sorted(p.name for p in out.iterdir()) == ["confusion.png", "notes.txt",
                                                     "report.json"]
    assert (out / "report.json").read_text() == "new"
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        prepare_report_folder(tmp_path / "file", overwrite=True)


def test_a_run_that_fails_or_writes_no_report_keeps_the_earlier_one_whole(tmp_path):
    """`evaluate --overwrite --model ctcnet-defualt` (a typo) deleted the validated report
    before the model was looked up: the run failed, and the folder held nothing."""
    out = tmp_path / "eval"
    _earlier_report(out)
    with pytest.raises(InputError), report_replaced(out, overwrite=True):
        atomic_write_text(out / "confusion.png", "half a run")
        raise InputError("no shipped model called 'ctcnet-defualt'")
    with report_replaced(out, overwrite=True):
        pass  # ended without a report
    assert sorted(p.name for p in out.iterdir()) == sorted([*EARLIER, "notes.txt"])
    assert (out / "report.json").read_text() == "earlier"


@pytest.mark.parametrize("command", ["evaluate", "robustness"])
def test_a_refused_rerun_of_the_command_keeps_the_earlier_report(tmp_path, command, capsys):
    from ctcnet.cli import main

    out = tmp_path / "eval"
    _earlier_report(out)
    assert main([command, str(tmp_path / "no_such_crops"), "--out", str(out), "--overwrite",
                 "--model", "ctcnet-defualt"]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line says why
    assert sorted(p.name for p in out.iterdir()) == sorted([*EARLIER, "notes.txt"])
