"""An evaluation's --out folder: an earlier report is not replaced unasked, and replaced, none
of its figures stays beside the new report."""

import pytest

from ctcnet.commands.report_folders import prepare_report_folder
from ctcnet.errors import InputError


def test_an_earlier_report_is_refused_and_with_overwrite_cleared_but_a_labs_files_kept(
        tmp_path):
    out = tmp_path / "eval"
    prepare_report_folder(out, overwrite=False)  # nothing there: nothing to refuse
    out.mkdir()
    for name in ("report.json", "confusion.png", "confusion_logistic.png", "index.html"):
        (out / name).write_text("earlier")
    (out / "notes.txt").write_text("a lab's notes")
    with pytest.raises(InputError, match="report.json already exists; pass --overwrite"):
        prepare_report_folder(out, overwrite=False)
    assert (out / "confusion_logistic.png").exists()
    prepare_report_folder(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        prepare_report_folder(tmp_path / "file", overwrite=True)
