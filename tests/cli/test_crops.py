"""``ctcnet crops``: an output that is an existing file gives one line."""

from conftest import assert_one_line_error, run_cli


def test_crops_into_an_existing_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("a file kept here\n")
    status, err = run_cli(capsys, "crops", tmp_path / "results", "--reviewed", "--out", taken)
    assert_one_line_error(status, err, f"{taken}: exists and is not a folder")
    assert taken.read_text() == "a file kept here\n"


def test_crops_of_a_frame_changed_since_predict_are_refused_in_one_line(clean_run, cart,
                                                                        capsys):
    """A frame shifted 60 px after predict: its crops would be cut from other cells than those
    called (they were, silently); refused, naming the sample and the frame. A frame only
    touched (its time changed, its bytes not) is no change."""
    import os

    import numpy as np
    import tifffile
    from conftest import frames, one_line_refusal, predict

    predict(clean_run, cart, out=cart.parent / "results" / "S1")
    for path in frames(cart):
        os.utime(path)
    status, err = run_cli(capsys, "crops", cart.parent / "results", "--out",
                          cart.parent / "touched")
    assert status == 0, err
    path = frames(cart)[1]
    tifffile.imwrite(path, np.roll(tifffile.imread(path), 60, axis=2), photometric="minisblack")
    one_line_refusal(capsys, ["crops", cart.parent / "results", "--out", cart.parent / "cut"],
                     "sample S1: frame r00c01 changed since predict read it (its files' SHA-256")
    assert not any((cart.parent / "cut").iterdir())
