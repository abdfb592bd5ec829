"""``ctcnet evaluate``: bad options give one line."""

import numpy as np
import pytest

from ctcnet.cli import main
from ctcnet.detect.crop_dataset import write_crop_dataset
from ctcnet.io.panel import load_panel

CROP = 32


def run_cli(capsys, *argv):
    """(exit status, stderr lines) of ``ctcnet ARGV`` run in this process."""
    status = main([str(a) for a in argv])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return status, err


def assert_one_line_error(status, err, match):
    assert status == 2 and len(err) == 1, err
    assert match in err[0], err[0]


# 9. Crop datasets.

@pytest.fixture
def crops(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(90, 200, (4, 5, CROP, CROP)).astype(np.uint16)
    return write_crop_dataset(tmp_path / "crops", images, ["ctc", "wbc", "ctc", "debris"],
                              load_panel(None), ["p1", "p1", "p2", "p2"])


def test_evaluate_batch_size_zero_gives_one_line(crops, capsys):
    assert_one_line_error(*run_cli(capsys, "evaluate", crops, "--out", crops.parent / "ev",
                                   "--batch-size", "0"), "--batch-size")
