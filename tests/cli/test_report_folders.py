"""An evaluation's --out folder: an earlier report is not replaced unasked; replaced, it stays
until the new report is written, and then none of its figures stays beside the new report; a
run that fails, is stopped or killed leaves it whole."""

import pytest

from ctcnet.commands.report_folders import EARLIER_DIR, prepare_report_folder, report_replaced
from ctcnet.errors import InputError
from ctcnet.io.atomic import atomic_write_text

EARLIER = ("report.json", "confusion.png", "confusion_logistic.png", "index.html",
           "predictions.csv")


def _earlier_report(out):
    out.mkdir()
    for name in EARLIER:
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
        assert set(_held(out)) == {*EARLIER, "notes.txt"}
        atomic_write_text(out / "predictions.csv", "new")
        atomic_write_text(out / "report.json", "new")  # (no baselines: no logistic figure)
    assert _held(out) == {"predictions.csv": "new", "report.json": "new",
                          "notes.txt": "a lab's notes"}
    assert not (out / EARLIER_DIR).exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        prepare_report_folder(tmp_path / "file", overwrite=True)


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
    assert _held(out) == before and not (out / EARLIER_DIR).exists()
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
    (out / EARLIER_DIR).mkdir()  # as a run left it, killed as it wrote its own report
    for name in EARLIER:
        os.link(out / name, out / EARLIER_DIR / name)
    atomic_write_text(out / "predictions.csv", "half a run")
    (out / "report.json").unlink()
    with pytest.raises(InputError, match="report.json already exists"):
        prepare_report_folder(out, overwrite=False)  # the next run: the earlier report back
    assert _held(out) == before and not (out / EARLIER_DIR).exists()


def test_files_of_no_report_are_left_alone(tmp_path):
    """--out pointed at a crop folder's predict output (its index.html and predictions.csv,
    no report): they went once the evaluation wrote its report."""
    out = tmp_path / "eval"
    out.mkdir()
    for name in ("index.html", "predictions.csv", "counts.png"):
        (out / name).write_text("predict's")
    with report_replaced(out, overwrite=True):
        atomic_write_text(out / "robustness.json", "new")
    assert _held(out) == {"index.html": "predict's", "predictions.csv": "predict's",
                          "counts.png": "predict's", "robustness.json": "new"}


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
    (out / TAKING).mkdir()
    os.link(out / "report.json", out / TAKING / "report.json")  # ...and killed
    with pytest.raises(InputError, match="report.json already exists"):
        prepare_report_folder(out, overwrite=False)
    assert _held(out) == before and not (out / TAKING).exists()
    (out / CLEARING).mkdir()  # a finished run, killed as it cleared the earlier files away
    for name in EARLIER:
        os.link(out / name, out / CLEARING / name)
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
