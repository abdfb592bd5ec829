"""An evaluation's --out folder: an earlier report is not replaced unasked; replaced, it stays
until the new report is written, and then none of its figures stays beside the new report; a
run that fails, is stopped or killed leaves it whole."""

import pytest

from ctcnet.commands.report_folders import (
    EARLIER,
    EVALUATION,
    ROBUSTNESS,
    file_kept_aside,
    prepare_report_folder,
    report_replaced,
)
from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_write_text

EARLIER_FILES = ("report.json", "confusion.png", "confusion_logistic.png", "index.html",
           "predictions.csv")


def _earlier_report(out):
    out.mkdir()
    for name in EARLIER_FILES:
        (out / name).write_text("earlier")
    (out / "notes.txt").write_text("a lab's notes")


def _held(out) -> dict:
    """The folder's files (its lock, hidden, left out), with what they hold."""
    return {p.name: p.read_text() for p in out.iterdir()
            if p.is_file() and not p.name.startswith(".")}


def test_an_earlier_report_is_refused_and_replaced_once_the_new_one_is_written(tmp_path):
    out = tmp_path / "eval"
    prepare_report_folder(out, overwrite=False)  # nothing there: nothing to refuse
    _earlier_report(out)
    with pytest.raises(InputError, match="report.json already exists; pass --overwrite"):
        prepare_report_folder(out, overwrite=False)
    with report_replaced(out, overwrite=True):
        assert set(_held(out)) == {*EARLIER_FILES, "notes.txt"}
        atomic_write_text(out / "predictions.csv", "new")
        atomic_write_text(out / "report.json", "new")  # (no baselines: no logistic figure)
    assert _held(out) == {"predictions.csv": "new", "report.json": "new",
                          "notes.txt": "a lab's notes"}
    assert not (out / EVALUATION.mark(EARLIER)).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        prepare_report_folder(tmp_path / "file", overwrite=True)


def test_a_link_at_the_reports_tiles_folder_is_refused_before_any_work(tmp_path):
    """The page's tiles are written and cleared in gallery/: a link there was refused only
    once the whole evaluation had run (or followed)."""
    out = tmp_path / "eval"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "gallery").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="gallery: is a link, not a folder"):
        prepare_report_folder(out, overwrite=True)
    with pytest.raises(InputError, match="gallery: is a link, not a folder"), \
            report_replaced(out, overwrite=True):
        pytest.fail("ran into a linked gallery")


def test_a_run_that_fails_or_writes_no_report_puts_the_earlier_one_back_whole(tmp_path):
    """`evaluate --overwrite --model ctcnet-defualt` (a typo) deleted the validated report
    before the model was looked up; a run that failed after writing its table left it beside
    the earlier report.json, as if one report."""
    out = tmp_path / "eval"
    _earlier_report(out)
    before = _held(out)
    with pytest.raises(InputError), report_replaced(out, overwrite=True):
        atomic_write_text(out / "predictions.csv", "half a run")
        atomic_write_text(out / "reliability.png", "half a run")
        raise InputError("no shipped model called 'ctcnet-defualt'")
    assert _held(out) == before and not (out / EVALUATION.mark(EARLIER)).exists()
    with pytest.raises(KeyboardInterrupt), report_replaced(out, overwrite=True):
        atomic_write_text(out / "predictions.csv", "half a run")
        raise KeyboardInterrupt
    assert _held(out) == before
    with report_replaced(out, overwrite=True):
        pass  # ended without a report
    assert _held(out) == before


def test_a_run_killed_outright_leaves_the_earlier_report_aside_for_the_next_to_put_back(
        tmp_path):
    import os

    out = tmp_path / "eval"
    _earlier_report(out)
    before = _held(out)
    (out / EVALUATION.mark(EARLIER)).mkdir()  # as a run left it, killed as it wrote its own report
    for name in EARLIER_FILES:
        os.link(out / name, out / EVALUATION.mark(EARLIER) / name)
    atomic_write_text(out / "predictions.csv", "half a run")
    (out / "report.json").unlink()
    with pytest.raises(InputError, match="report.json already exists"):
        prepare_report_folder(out, overwrite=False)  # the next run: the earlier report back
    assert _held(out) == before and not (out / EVALUATION.mark(EARLIER)).exists()


def test_a_predict_output_is_refused_and_another_commands_report_left_alone(tmp_path):
    """--out pointed at a crop folder's predict output: its page and table were written over
    and its gallery emptied. robustness --overwrite into an evaluation's folder deleted the
    evaluation (and evaluate a robustness matrix)."""
    predicted = tmp_path / "P"
    predicted.mkdir()
    (predicted / "summary.json").write_text("{}")
    with pytest.raises(InputError, match="is a ctcnet predict output"), \
            report_replaced(predicted, overwrite=True):
        pass
    out = tmp_path / "eval"
    _earlier_report(out)
    before = _held(out)
    with report_replaced(out, overwrite=False, kind=ROBUSTNESS):  # none of its own there
        atomic_write_text(out / "robustness.json", "new")
        atomic_write_text(out / "robustness.png", "new")
    with report_replaced(out, overwrite=True, kind=ROBUSTNESS):
        atomic_write_text(out / "robustness.json", "again")
    assert _held(out) == {**before, "robustness.json": "again"}
    with report_replaced(out, overwrite=True):
        atomic_write_text(out / "report.json", "new")
    assert _held(out)["robustness.json"] == "again"


def test_a_first_run_that_does_not_finish_leaves_none_of_its_files(tmp_path):
    """Killed or failed before its report, a first run left its table and a baseline's
    figure, which the next run (no --overwrite needed) took for its own."""
    import os

    out = tmp_path / "eval"
    out.mkdir()
    (out / "notes.txt").write_text("a lab's notes")
    with pytest.raises(OSError), report_replaced(out, overwrite=False):
        atomic_write_text(out / "predictions.csv", "half a run")
        raise OSError(28, "No space left on device")
    assert _held(out) == {"notes.txt": "a lab's notes"}
    marker = out / EVALUATION.mark("unfinished")  # as a run killed outright leaves it
    marker.write_text("[\"notes.txt\"]")
    atomic_write_text(out / "confusion_marker_gate.png", "killed")
    prepare_report_folder(out, overwrite=False)
    assert _held(out) == {"notes.txt": "a lab's notes"} and not marker.exists()
    assert not any(p.name.startswith(".report") for p in out.iterdir() if p.is_dir())
    assert sorted(os.listdir(out)) == [".ctcnet.lock", "notes.txt"]


def test_a_save_model_replaced_by_a_run_that_fails_is_put_back(tmp_path):
    """--calibrate-on --save-model M --overwrite writes M before the evaluation: a run that
    then failed put the earlier report back naming M by a digest it no longer had."""
    model = tmp_path / "cal.pt"
    model.write_text("earlier")
    with pytest.raises(KeyboardInterrupt), file_kept_aside(model):
        atomic_write_text(model, "calibrated anew")
        raise KeyboardInterrupt
    assert model.read_text() == "earlier" and not list(tmp_path.glob(".cal.pt*"))
    with file_kept_aside(model):
        atomic_write_text(model, "calibrated anew")
    assert model.read_text() == "calibrated anew" and not list(tmp_path.glob(".cal.pt*"))


@pytest.mark.parametrize("command", ["evaluate", "robustness"])
def test_a_refused_rerun_of_the_command_keeps_the_earlier_report(tmp_path, command, capsys):
    from ctcnet.cli import main

    out = tmp_path / "eval"
    _earlier_report(out)
    before = _held(out)
    assert main([command, str(tmp_path / "no_such_crops"), "--out", str(out), "--overwrite",
                 "--model", "ctcnet-defualt"]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line says why
    assert _held(out) == before


def test_a_second_evaluation_into_the_folder_is_refused_and_touches_nothing(tmp_path):
    """A second run's check put the first run's set-aside back while the first was writing:
    its new table went, and its end failed."""
    out = tmp_path / "eval"
    _earlier_report(out)
    with report_replaced(out, overwrite=True):
        atomic_write_text(out / "predictions.csv", "new")
        with pytest.raises(InputError, match="another ctcnet|is writing|held"):
            prepare_report_folder(out, overwrite=False)
        atomic_write_text(out / "report.json", "new")
    assert _held(out)["predictions.csv"] == "new" and _held(out)["report.json"] == "new"


def test_a_set_aside_half_made_or_a_clearing_cut_short_is_settled_by_the_next_run(tmp_path):
    """Killed while the earlier files were being linked aside: the next run put back the few
    linked and deleted the rest; killed while clearing after a finished report: it put the
    earlier report back over the new one."""
    import os

    from ctcnet.commands.report_folders import CLEARING, TAKING

    out = tmp_path / "eval"
    _earlier_report(out)
    before = _held(out)
    (out / EVALUATION.mark(TAKING)).mkdir()
    os.link(out / "report.json", out / EVALUATION.mark(TAKING) / "report.json")  # ...and killed
    with pytest.raises(InputError, match="report.json already exists"):
        prepare_report_folder(out, overwrite=False)
    assert _held(out) == before and not (out / EVALUATION.mark(TAKING)).exists()
    # A finished run, killed as it cleared the earlier files away:
    (out / EVALUATION.mark(CLEARING)).mkdir()
    for name in EARLIER_FILES:
        os.link(out / name, out / EVALUATION.mark(CLEARING) / name)
    atomic_write_text(out / "report.json", "new")
    atomic_write_text(out / "predictions.csv", "new")
    with pytest.raises(InputError, match="report.json already exists"):
        prepare_report_folder(out, overwrite=False)
    assert _held(out) == {"report.json": "new", "predictions.csv": "new",
                          "notes.txt": "a lab's notes"}


def test_the_pages_gallery_is_kept_aside_and_put_back_with_it(tmp_path):
    out = tmp_path / "eval"
    _earlier_report(out)
    (out / "gallery").mkdir()
    (out / "gallery" / "ctc_1.png").write_text("earlier")
    with pytest.raises(KeyboardInterrupt), report_replaced(out, overwrite=True):
        (out / "gallery" / "ctc_1.png").unlink()  # (the new page's stale pages removed)
        atomic_write_text(out / "gallery" / "wbc_1.png", "half a run")
        raise KeyboardInterrupt
    assert sorted(p.name for p in (out / "gallery").iterdir()) == ["ctc_1.png"]


def test_an_output_inside_the_data_a_command_reads_is_refused(tmp_path, capsys):
    """evaluate and robustness wrote their reports into the crop folder they read (its class
    folders then held "ev", refused the next run); --save-model into it; verify --out over a
    sample's summary.json (it then failed with a traceback). Refused before any work."""
    from ctcnet.cli import main

    crops = tmp_path / "crops"
    assert main(["simulate", "crops", str(crops), "--counts", "2", "--crop-size", "32"]) == 0
    before = sorted(p.relative_to(crops) for p in crops.rglob("*"))
    for argv, said in (
            (["evaluate", crops, "--out", crops / "ev", "--no-baselines"], "--out lies in"),
            (["robustness", crops, "--out", crops, "--no-baselines"], "--out is"),
            (["evaluate", crops, "--out", tmp_path / "ev", "--calibrate-on", crops,
              "--save-model", crops / "m.pt"], "--save-model lies in"),
            (["verify", "--results", crops, "--out", crops / "summary.json", "--overwrite"],
             "--out lies in")):
        capsys.readouterr()
        assert main([str(a) for a in argv]) == 2, argv
        err = capsys.readouterr().err
        assert said in err and "which this command reads" in err, err
        assert sorted(p.relative_to(crops) for p in crops.rglob("*")) == before
