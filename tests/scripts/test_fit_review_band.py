"""scripts/fit_review_band.py: a run is reused only of the model fitted and of the cartridge
as last drawn."""

import json
import os
from pathlib import Path

from conftest import load_script


def test_a_run_is_reused_only_of_this_model_and_this_drawing_of_its_cartridge(tmp_path):
    """A fit into the same --work with other --events draws its cartridges again: the runs
    on the cells drawn before are predicted again, not scored against the new truth."""
    script = load_script(Path(__file__).resolve().parents[2] / "scripts" / "fit_review_band.py")
    cart, run = tmp_path / "fit_63000", tmp_path / "runs" / "fit_63000"
    cart.mkdir()
    run.mkdir(parents=True)
    (cart / "ground_truth.csv").write_text("x,y\n")
    (run / "summary.json").write_text(json.dumps({"model": {"sha256": "a" * 64}}))
    drawn = (cart / "ground_truth.csv").stat().st_mtime_ns
    os.utime(run / "summary.json", ns=(drawn + 10**9, drawn + 10**9))
    assert script.reusable(run, cart, "a" * 64)
    assert not script.reusable(run, cart, "b" * 64)  # another model's calls
    os.utime(cart / "ground_truth.csv", ns=(drawn + 2 * 10**9, drawn + 2 * 10**9))
    assert not script.reusable(run, cart, "a" * 64)  # the cartridge drawn again since
    assert not script.reusable(tmp_path / "none", cart, "a" * 64)
