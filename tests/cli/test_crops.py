"""``ctcnet crops``: an output that is an existing file gives one line."""

from ctcnet.cli import main


def run_cli(capsys, *argv):
    """(exit status, stderr lines) of ``ctcnet ARGV`` run in this process."""
    status = main([str(a) for a in argv])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return status, err


def assert_one_line_error(status, err, match):
    assert status == 2 and len(err) == 1, err
    assert match in err[0], err[0]


def test_crops_into_an_existing_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a file kept here\n")
    status, err = run_cli(capsys, "crops", tmp_path / "results", "--reviewed", "--out", taken)
    assert_one_line_error(status, err, f"{taken}: exists and is not a folder")
    assert taken.read_text() == "a file kept here\n"
