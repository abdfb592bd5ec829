"""The review band for a stated miss rate: a finite-sample bound, the smallest list that holds
it, and the band carried by the decision rule into the calls."""

import numpy as np
import pandas as pd

from ctcnet.evaluation.miss_rate import (
    band_for_miss_rate,
    band_inputs,
    cells_needed,
    fresh_verdict,
    miss_upper_bound,
    misses_at,
    no_band_text,
)
from ctcnet.nn.calls import DecisionRule, calls_from_proba, uncounted_doubt


def test_the_bound_is_clopper_pearsons():
    # No miss in 299 cells: the one-sided 95 % bound is 1 %, the rule of three.
    assert abs(miss_upper_bound(0, 299, 0.95) - 0.01) < 2e-4
    assert miss_upper_bound(3, 100, 0.95) > 0.03
    assert miss_upper_bound(5, 5, 0.95) == 1.0


def test_a_fit_without_a_band_says_how_many_cells_it_takes():
    assert cells_needed(0.01, 0.95) == 299  # the rule of three
    assert miss_upper_bound(0, cells_needed(0.05, 0.95), 0.95) <= 0.05
    assert miss_upper_bound(0, cells_needed(0.05, 0.95) - 1, 0.95) > 0.05
    few = band_for_miss_rate(np.ones(98), np.zeros(98, bool), np.ones(98, bool))
    assert "at least 299 CTCs and clusters are needed" in no_band_text(few)
    many = band_for_miss_rate(np.zeros(2000), np.zeros(2000, bool), np.ones(2000, bool))
    assert "the model misses too many" in no_band_text(many)


def test_a_band_its_fresh_family_contradicts_is_not_to_be_written():
    """A band fitted for 5 % whose fresh cartridges miss 6 of 66 CTCs: beyond chance, so
    the statement does not hold (refused); 4 of 66 above the level but within chance: a
    warning; at or under the level: nothing."""
    verdict = fresh_verdict({"misses": 6, "cells": 66}, 0.05, 0.95)
    assert verdict is not None and verdict[0] == "warn"  # 6/66: lower bound 0.04
    verdict = fresh_verdict({"misses": 12, "cells": 66}, 0.05, 0.95)
    assert verdict is not None and verdict[0] == "refuse" and "not written" in verdict[1]
    assert fresh_verdict({"misses": 3, "cells": 66}, 0.05, 0.95) is None
    assert fresh_verdict({"misses": 0, "cells": 0}, 0.05, 0.95) is None


def test_the_band_is_the_largest_whose_bound_holds(rng):
    n_cells, n_other = 2000, 20000
    # Cells of a counted class only the band can show: their counted mass spreads down to
    # 1e-3; the others sit mostly far lower.
    cells = 10 ** rng.uniform(-3, 0, n_cells)
    other = 10 ** rng.uniform(-6, -1, n_other)
    mass = np.r_[cells, other]
    truth = np.r_[np.ones(n_cells, bool), np.zeros(n_other, bool)]
    shown = np.zeros(len(mass), bool)
    record = band_for_miss_rate(mass, shown, truth, level=0.01, confidence=0.95)
    band = record["band"]
    assert record["miss_bound"] <= 0.01
    assert record["misses"] == int((cells < band).sum())
    # A band a step larger would break the bound: the list is as short as the bound allows.
    wider = np.nextafter(band, 1.0) * 1.2
    assert miss_upper_bound(int((cells < wider).sum()), n_cells, 0.95) > 0.01 or wider > 0.5
    # Fewer cells than the bound can tell from a 1 % miss share: no band.
    few = band_for_miss_rate(cells[:100], np.zeros(100, bool), np.ones(100, bool))
    assert few["band"] is None
    # On another draw of the same cells the miss share stays near the level.
    again = misses_at(band, 10 ** rng.uniform(-3, 0, n_cells), np.zeros(n_cells, bool),
                      np.ones(n_cells, bool))
    assert again["miss_share"] <= 0.02


def test_cells_shown_otherwise_never_count_as_misses():
    mass = np.zeros(400)
    truth = np.ones(400, bool)
    assert band_for_miss_rate(mass, np.ones(400, bool), truth)["band"] == 0.5
    assert band_for_miss_rate(mass, np.zeros(400, bool), truth)["band"] is None


def test_the_rules_band_decides_which_uncounted_calls_are_shown():
    names = ["ctc", "wbc", "cluster", "debris"]
    proba = np.array([[0.03, 0.90, 0.00, 0.07],    # a wbc call with 3 % on a CTC
                      [0.001, 0.60, 0.0, 0.399],   # leukocyte or debris
                      [0.70, 0.20, 0.00, 0.10]])   # a doubtful ctc call
    plain = DecisionRule.balanced()
    banded = plain.prior_shift({}, {}).with_review_band({"band": 0.02, "level": 0.01})
    assert banded.review_band == 0.02 and plain.review_band is None
    assert calls_from_proba(proba, names, 0.8, plain)[2].tolist() == [False, False, True]
    assert calls_from_proba(proba, names, 0.8, banded)[2].tolist() == [True, False, True]
    assert uncounted_doubt(proba, names, 0.8, banded).tolist() == [False, True, False]
    # The record round-trips with the rule's dict (checkpoints and ONNX metadata).
    again = DecisionRule.from_dict(banded.to_dict(), names)
    assert again.review_band == 0.02 and again == banded


def test_band_inputs_match_events_to_drawn_ctcs_and_clusters():
    class Spec:
        class_names = ["ctc", "wbc", "cluster", "debris"]
        decision = None

    events = pd.DataFrame({"row": 0, "col": 0, "x": [10.0, 50.0, 90.0],
                           "y": [10.0, 10.0, 10.0], "class": ["wbc", "ctc", "debris"],
                           "guard": ["", "", "possible_ctc"],
                           "p_ctc": [0.2, 0.9, 0.1], "p_wbc": [0.7, 0.05, 0.1],
                           "p_cluster": [0.05, 0.0, 0.0], "p_debris": [0.05, 0.05, 0.8]})
    truth = pd.DataFrame({"row": 0, "col": 0, "x": [11.0, 49.0, 200.0], "y": [10.0] * 3,
                          "class": ["ctc", "wbc", "cluster"]})
    out = band_inputs(events, truth, Spec, pixel_size_um=1.0)
    assert out["is_counted_truth"].tolist() == [True, False, False]
    assert out["shown_otherwise"].tolist() == [False, True, True]
    assert np.allclose(out["counted_mass"], [0.2, 0.9, 0.1])
    # A debris call a CTC outweighs before the prior counts as shown: the band, once written,
    # brings it whatever its share (ctcnet.nn.calls.filed_by_prior).
    events.loc[2, ["guard", "p_ctc", "p_debris"]] = ["", 0.6, 0.3]
    assert band_inputs(events, truth, Spec, 1.0)["shown_otherwise"].tolist() == [
        False, True, True]
    events.loc[2, "p_ctc"] = 0.2
    assert band_inputs(events, truth, Spec, 1.0)["shown_otherwise"].tolist() == [
        False, True, False]


def test_a_card_states_a_crop_band_with_its_figures_and_none_without():
    from ctcnet.evaluation.card_markdown import crop_band_lines

    record = {"band": 0.19, "level": 0.01, "confidence": 0.95, "cells": 3300, "misses": 23,
              "miss_share": 0.00697, "miss_bound": 0.00986,
              "fitted_on": {"crops": 6525, "seed": 38000, "what": "export looks"},
              "fresh_family": {"cells": 3300, "misses": 25, "miss_share": 0.00758,
                               "seed": 39000},
              "review_load": {"fit": 0.1436, "fresh_family": 0.147},
              "without_band": {"fit": {"review_load": 0.2319},
                               "fresh_family": {"review_load": 0.2434}},
              "command": "python scripts/fit_crop_review_band.py --model MODEL"}
    text = "\n".join(crop_band_lines(record))
    assert "at least 0.19 of the network's posterior" in text and "at most 1%" in text
    assert "| calibration | 3300 | 23 | 0.70% (bound 0.99%) | 14.4% | 23.2% |" in text
    assert "| fresh family (seed 39000) | 3300 | 25 | 0.76% (bound 1.06%) | 14.7% | 24.3% |" in text
    assert crop_band_lines(None) == [] and crop_band_lines({"band": None}) == []


def test_a_band_fitted_below_one_percent_is_stated_as_fitted():
    """A band for --level 0.005 --confidence 0.995 (the fitting scripts take both) was stated
    "at most 0% with 100% confidence": whole percents said another guarantee."""
    from ctcnet.evaluation.card_markdown import crop_band_lines, review_band_lines

    n = 2000
    record = band_for_miss_rate(np.full(n, 0.9), np.zeros(n, bool), np.ones(n, bool), 0.005,
                                0.995)
    assert (record["level"], record["confidence"]) == (0.005, 0.995)
    for lines in (review_band_lines(record), crop_band_lines(record)):
        assert "at most 0.5% with 99.5% confidence" in "\n".join(lines)
    shipped = review_band_lines({**record, "level": 0.01, "confidence": 0.95})
    assert "at most 1% with 95% confidence" in "\n".join(shipped)


def test_the_cartridge_band_says_what_its_bound_assumes_and_the_fresh_familys_own_bound():
    """The bound takes cells as independent, which cells of one cartridge are not: the card
    and summary.json say so, and the fresh family's misses get their own bound (3 of 509 is
    0.59 %, but its bound, 1.52 %, cannot confirm 1 %)."""
    import json
    from pathlib import Path

    from ctcnet.evaluation.card_markdown import render_card

    card = json.loads((Path(__file__).parents[2] / "models" / "ctcnet-default.json").read_text())
    text = render_card(card)
    assert "as independent draws" in text and "misses may cluster by cartridge" in text
    fresh = card["decision"]["review_band"]["fresh_family"]
    bound = miss_upper_bound(fresh["misses"], fresh["cells"], 0.95)
    assert f"{fresh['miss_share']:.2%} (bound {bound:.2%})" in text
