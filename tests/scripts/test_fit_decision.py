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
