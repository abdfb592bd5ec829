"""scripts/fit_decision.py: a refit keeps the review band fitted under the same weights."""

from pathlib import Path

from ctcnet.nn.decision_rule import DecisionRule

BAND = {"band": 0.5, "level": 0.01, "confidence": 0.95, "cells": 1044, "misses": 3}


def test_a_refit_keeps_the_band_under_the_same_weights_and_drops_it_when_they_move(caplog):
    """The band's guarantee holds for the rule it was fitted under: a refit that lands on the
    same weights (its record refreshed) keeps it; one that moves them drops it, saying so,
    instead of shipping a band fitted for another rule (or dropping it silently)."""
    from conftest import load_script

    script = load_script(Path(__file__).resolve().parents[2] / "scripts" / "fit_decision.py")
    before = DecisionRule.prior_shift({"ctc": -3.0, "cluster": -7.5}).with_review_band(BAND)
    same = DecisionRule.prior_shift({"ctc": -3.0, "cluster": -7.5})
    kept = script.kept_review_band(before, same)
    assert kept.review_band_record == BAND and kept.weights == same.weights
    moved = DecisionRule.prior_shift({"ctc": -2.0, "cluster": -7.5})
    with caplog.at_level("WARNING"):
        assert script.kept_review_band(before, moved).review_band is None
    assert "review band fitted under the old rule is dropped" in caplog.text
    assert script.kept_review_band(DecisionRule.balanced(), same) == same


def test_a_rule_is_not_fitted_on_a_handful_of_cartridges_nor_a_missing_model(tmp_path, capsys):
    """2 cartridges of 2 frames (26 CTCs) wrote a ctc weight of -0.25 over the shipped -3.00
    into the model, its card reading recall 1.000; --cartridges 0 ended in a traceback, and
    a mistyped model too. Refused in one line, before any work."""
    import pytest
    from conftest import load_script

    script = load_script(Path(__file__).resolve().parents[2] / "scripts" / "fit_decision.py")
    model = Path(__file__).resolve().parents[2] / "models" / "ctcnet-default.pt"
    for argv, said in ((["--model", str(model), "--cartridges", "2"], "at least 10"),
                       (["--model", str(model), "--cartridges", "0"], "at least 10"),
                       (["--model", str(tmp_path / "nope.pt")], "model file not found")):
        with pytest.raises(SystemExit) as stop:
            script.main([*argv, "--work", str(tmp_path / "work")])
        assert stop.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
