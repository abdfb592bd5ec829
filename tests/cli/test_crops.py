"""``ctcnet crops``: an output that is an existing file gives one line."""

from conftest import assert_one_line_error, run_cli


def test_crops_into_an_existing_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a file kept here\n")
    status, err = run_cli(capsys, "crops", tmp_path / "results", "--reviewed", "--out", taken)
    assert_one_line_error(status, err, f"{taken}: exists and is not a folder")
    assert taken.read_text() == "a file kept here\n"
