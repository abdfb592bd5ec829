"""ctcnet.evaluation.recovery: a spike level's pooled recovery with its exact interval, and
the tubes that look swapped or mislabelled."""

import numpy as np
import pandas as pd
import pytest

from ctcnet.evaluation.recovery import (
    blanks_with_calls,
    pooled_recovery,
    recovery_interval,
    suspect_tubes,
    tube_cells,
)
from ctcnet.inference.counts import poisson_interval


def test_the_pooled_recovery_is_cells_found_over_spiked_with_the_poisson_interval():
    """Two tubes of 5 finding 3 each: 6 of 10, the interval Garwood's of 6 over 10 (2.20 to
    13.06 cells), rounded outward to whole per cent; a level may find more than it was given
    (a nominal spike is a Poisson draw), which no binomial interval allows."""
    level = pooled_recovery(np.array([3.0, 3.0]), np.array([5.0, 5.0]))
    low, high = poisson_interval(6)
    assert (level["cells_found"], level["cells_spiked"]) == (6, 10.0)
    assert level["recovery"] == pytest.approx(0.6)
    assert level["recovery_ci95"] == [0.22, 1.31]
    assert level["recovery_ci95"][0] <= low / 10 and level["recovery_ci95"][1] >= high / 10
    assert recovery_interval(16, 3)[0] > 1.0  # 16 of 3: over 100 % beyond doubt
    assert recovery_interval(0, 0) is None
    # A tube without a rate (its run failed) is left out of the sums.
    assert pooled_recovery(np.array([4.0, np.nan]), np.array([5.0, 5.0]))["cells_spiked"] == 5


def test_a_tubes_cells_are_its_count_in_the_blood_read():
    """A rate of 12 per 7.5 mL of 5 mL read is 8 cells; a 7.5 mL tube spiked with 30 read
    for 5 mL held 20 of them; a summary without the blood read read its whole tube."""
    rows = pd.DataFrame({"spiked": [30.0, 10.0], "blood_volume_ml": [7.5, 5.0],
                         "blood_volume_read_ml": [5.0, np.nan],
                         "called_per_7_5_ml": [12.0, 12.0]})
    found, spiked = tube_cells(rows, "called")
    assert found.tolist() == [8.0, 8.0] and spiked.tolist() == [20.0, 10.0]


def test_a_swapped_tube_is_named_and_poisson_noise_at_five_cells_is_not():
    # A tube of 50 labelled 20 finds 52 of its "20": more than the tube can hold.
    (found,) = suspect_tubes(["a", "b"], np.array([23.0, 52.0]), np.array([20.0, 20.0]), "20")
    assert found["samples"] == ["b"] and "more than the tube can hold" in found["reason"]
    # A tube of 20 labelled 50 beside a true one: either of the two may be the one.
    (pair,) = suspect_tubes(["c", "d"], np.array([16.0, 38.0]), np.array([50.0, 50.0]), "50")
    assert pair["samples"] == ["c", "d"] and pair["recoveries"] == [0.32, 0.76]
    # Of three or more, the one off the others is named alone.
    (odd,) = suspect_tubes(["e", "f", "g"], np.array([45.0, 44.0, 12.0]),
                           np.full(3, 50.0), "50")
    assert odd["samples"] == ["g"] and "under the level's other tubes' 89%" in odd["reason"]
    # At 5 cells, no two counts of 0 to 8 are flagged (0 beside 8: p = 0.008 is, 2 x 2^-8),
    # nor any count up to 11 of a lone tube: Poisson noise, however far apart in ratio.
    flagged = [(a, b) for a in range(9) for b in range(9)
               if suspect_tubes(["x", "y"], np.array([a, b], float), np.full(2, 5.0), "5")]
    assert flagged == [(0, 8), (8, 0)]
    assert not any(suspect_tubes(["x"], np.array([k], float), np.array([5.0]), "5")
                   for k in range(12))


def test_poisson_noise_alone_rarely_flags_a_study():
    """Studies of 5, 20 and 50 cells, 2 tubes a level, every tube at 85 % recovery with
    Poisson noise alone (seeded): few are flagged (about 1.5 %; docs/training.md)."""
    rng = np.random.default_rng(7)
    flagged = 0
    for _ in range(400):
        flagged += any(suspect_tubes(["a", "b"], rng.poisson(0.85 * s, 2).astype(float),
                                     np.full(2, float(s)), str(s)) for s in (5, 20, 50))
    assert flagged / 400 < 0.04


def test_the_blanks_with_calls_are_named_with_their_cells():
    assert blanks_with_calls(["b1", "b2", "b3"], np.array([0.0, 3.0, np.nan]),
                             np.array([0.0, 3.0, np.nan])) == [
        {"sample_id": "b2", "cells_called": 3, "called_per_7_5_ml": 3.0}]


def test_a_swap_names_the_swapped_tubes_not_their_honest_neighbours():
    """Tubes of 12 and 50 cells swapped: each level's pooled recovery was pulled by the tube
    swapped in, and honest tubes read off against it (4 tubes named for one swap)."""
    # (cells found by the model: 6, 10, 14 of 12 spiked; 39, 65, 38 of 50; M2 and H1 swapped)
    low = suspect_tubes(["M1", "H1", "M3"], np.array([6.0, 39.0, 14.0]),
                        np.array([12.0, 12.0, 12.0]), "12")
    high = suspect_tubes(["M2", "H2", "H3"], np.array([10.0, 65.0, 38.0]),
                         np.array([50.0, 50.0, 50.0]), "50")
    assert [f["samples"] for f in low] == [["H1"]]
    assert [f["samples"] for f in high] == [["M2"]] and "under" in high[0]["reason"]
