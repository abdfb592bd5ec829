"""experiments/apparent_size.py: how large a recipe's training views show cells."""

from pathlib import Path

import numpy as np
import pytest


def test_apparent_size_measures_what_a_view_shows(capsys):
    """experiments/apparent_size.py: a view's apparent size is the side of its area at or over 10 %
    of white, per class and defining marker; the script runs end to end on a config."""
    from conftest import load_script

    root = Path(__file__).resolve().parents[2]
    script = load_script(root / "experiments" / "apparent_size.py")
    yy, xx = np.mgrid[:40, :40]
    disc = lambda r: np.where((yy - 20) ** 2 + (xx - 20) ** 2 <= r * r, 200.0, 10.0)  # noqa: E731
    views = np.zeros((2, 3, 40, 40))
    views[0, 0], views[0, 1] = disc(4), disc(8)       # a CTC: nucleus, CK
    views[1, 0], views[1, 2] = disc(5), disc(10)      # a leukocyte: nucleus, CD45
    sizes = script.apparent_sizes(views, ["ctc", "wbc"], ["nucleus", "epithelial", "leukocyte"])
    assert sizes["ctc/nucleus"] == pytest.approx(4 * np.sqrt(np.pi), rel=0.1)
    assert sizes["ctc/epithelial"] == pytest.approx(8 * np.sqrt(np.pi), rel=0.1)
    assert sizes["wbc/leukocyte"] == pytest.approx(10 * np.sqrt(np.pi), rel=0.1)
    assert script.main(["--per-class", "2", "--config", str(root / "configs" /
                                                             "core3-export.yaml")]) == 0
    out = capsys.readouterr().out
    assert "tight family, pixel size given" in out and "all of these off" in out
