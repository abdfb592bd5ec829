"""``ctcnet evaluate``: bad options give one line."""

from conftest import assert_one_line_error, run_cli

# 9. Crop datasets.

def test_evaluate_batch_size_zero_gives_one_line(crops, capsys):
    assert_one_line_error(*run_cli(capsys, "evaluate", crops, "--out", crops.parent / "ev",
                                   "--batch-size", "0"), "--batch-size")
