"""scripts/robustness_matrix.py and cartridge_counts.py: what they refuse before any work."""

from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.parametrize("argv, said", [
    (["--per-class", "10", "--card"], "a card's matrix is measured on 150 crops at least"),
    (["--per-class", "100", "--families", "stain", "--card"], "drop --families"),
    (["--per-class", "0"], "at least 1"),
    (["--model", "nope.pt"], "nope.pt: model file not found"),
])
def test_a_card_is_given_no_partial_or_tiny_matrix(tmp_path, capsys, argv, said):
    """--card with 40 crops replaced a card's 1000-crop matrix (no too-few note), and one of
    a few families the whole; --per-class 0 and a missing model ended in tracebacks."""
    from conftest import load_script

    from ctcnet.errors import CtcnetError

    script = load_script(SCRIPTS / "robustness_matrix.py")
    with pytest.raises((SystemExit, CtcnetError)) as stop:
        script.main([*argv, "--out", str(tmp_path / "out")])
    text = str(stop.value) if isinstance(stop.value, CtcnetError) else capsys.readouterr().err
    assert said in text
    assert not (tmp_path / "out").exists()


def test_cartridge_counts_refuses_no_cartridges(tmp_path, capsys):
    from conftest import load_script

    script = load_script(SCRIPTS / "cartridge_counts.py")
    with pytest.raises(SystemExit):
        script.main(["--cartridges", "0", "--out", str(tmp_path / "out")])
    assert "at least 1" in capsys.readouterr().err
