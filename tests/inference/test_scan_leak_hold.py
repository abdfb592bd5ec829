"""A CTC call whose CD45 needs more of CK's leak than its scan shows is held: what each call
needs, the scan's allowance, and the hold as the events tables are written."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from ctcnet.inference.guard import RULES
from ctcnet.inference.guard.measurements import measure_for_guard_start
from ctcnet.inference.scan_leak_hold import (
    LEAK_NEEDED,
    ScanLeakHold,
    ctc_cd45_allowance,
    with_leak_needed,
)
from ctcnet.io.panel import default_panel, load_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec

SIZE = 64
DAPI, CK, CD45 = 0, 1, 2


def cell(rng, ck=3000.0, cd45_ring=0.0, cd45_fill=0.0, leak=0.0, noise=3.0):
    """One (5, H, W) crop: a CK disk round a nucleus, CK leaking ``leak`` of its counts into
    CD45, a CD45 membrane ring of ``cd45_ring`` counts, and CD45 of ``cd45_fill`` counts over
    the cell (a membrane over and under it, as a scan's few pixels show one)."""
    x = 100.0 + rng.normal(0, noise, (5, SIZE, SIZE))
    r = np.hypot(*(np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2))
    x[CK] += ck * (r <= 8)
    x[DAPI] += 400.0 * (r <= 4)
    x[CD45] += cd45_ring * ((r > 6) & (r <= 9)) + (cd45_fill + leak * ck) * (r <= 8)
    return x.astype(np.float32)


@pytest.fixture()
def spec():
    return ModelSpec(arch="compact", panel=default_panel(), taxonomy=default_taxonomy(),
                     crop_size=SIZE)


def needs(crops, spec):
    _, start = measure_for_guard_start(np.stack(crops), spec)
    events = {"class": ["ctc"] * len(crops), "guard": [""] * len(crops)}
    return with_leak_needed(pd.DataFrame(events), start, ["ctc"])[LEAK_NEEDED].to_numpy()


def test_a_ctc_needs_no_more_than_its_leak_and_a_ck_bright_leukocyte_needs_more(rng, spec):
    """A CTC whose CK leaks 3 % needs about that; a CK-bright cell with a leukocyte's CD45
    (240 counts, 8 % of its CK: under the guard's 12 %) and a 1 % leak needs far more; a cell
    with CD45 the guard's whole allowance leaves reads inf; no CK area reads NaN."""
    ctc, bright_wbc, wbc, bare = needs([cell(rng, leak=0.03),
                                        cell(rng, cd45_fill=240.0, leak=0.01),
                                        cell(rng, ck=300.0, cd45_ring=300.0),
                                        cell(rng, ck=0.0)], spec)
    # (between two steps, where CD45 crosses the level: read to the step, 0.03 and 0.09)
    assert 0.022 < ctc < 0.03
    assert 0.075 < bright_wbc < 0.09
    assert wbc == np.inf
    assert np.isnan(bare)


def test_only_counted_calls_checked_as_a_ctc_are_read_and_no_split_objects_whole(rng, spec):
    """A lab's class the guard checks as a CTC is read as ``ctc`` is; a split object's whole
    whose members were offered is not (held afterwards, it would take its members' CTC with
    it: its reading was chosen on its call)."""
    from ctcnet.detect.members import GROUP, PART

    crops = [cell(rng, cd45_fill=240.0)] * 5
    _, start = measure_for_guard_start(np.stack(crops), spec)
    events = pd.DataFrame({"class": ["ctc", "ctc", "cluster", "ctc_emt", "ctc"],
                           "guard": ["", "no_dna", "", "", ""],
                           GROUP: [-1, -1, -1, -1, 0], PART: [False] * 5})
    need = with_leak_needed(events, start, ["ctc", "ctc_emt"])[LEAK_NEEDED].to_numpy()
    assert np.isfinite(need[[0, 3]]).all() and np.isnan(need[[1, 2, 4]]).all()
    member = events.assign(**{PART: [False, False, False, False, True]})
    assert np.isfinite(with_leak_needed(member, start, ["ctc"])[LEAK_NEEDED].iloc[4])
    assert np.isnan(with_leak_needed(events, None, ["ctc"])[LEAK_NEEDED]).all()  # no guard


def check(leak, crops=400, allowance=0.12):
    return {"source": "CK", "leaks": {"CD45": leak, "CD61": 0.3, "CD66b": 0.0},
            "allowance": {"CD45": allowance, "CD61": 0.12, "CD66b": 0.12},
            "beyond": [], "measured_on": crops}


def test_the_scans_allowance_follows_its_measured_leak():
    panel = default_panel()
    assert ctc_cd45_allowance(check(0.05), panel) == pytest.approx(0.065)
    assert ctc_cd45_allowance(check(0.003), panel) == RULES.scan_leak_floor
    assert ctc_cd45_allowance(check(0.2), panel) == 0.12  # never past the guard's
    assert ctc_cd45_allowance(check(0.3, allowance=0.36), panel) == pytest.approx(0.36)
    # Not measured: the guard's allowance alone.
    assert ctc_cd45_allowance(check(0.05, crops=RULES.scan_leak_min_events - 1), panel) is None
    assert ctc_cd45_allowance(check(0.0), panel) is None
    assert ctc_cd45_allowance(None, panel) is None
    # A panel without CD45: no leak into it to hold by.
    assert ctc_cd45_allowance(check(0.05), load_panel({"channels": ["DAPI", "CK", "CD61"]})) is None


def test_the_hold_holds_counted_ctc_calls_needing_more_and_nothing_else():
    table = pa.table({"class": ["ctc", "ctc", "ctc", "cluster", "wbc", "ctc_emt"],
                      "guard": ["", "", "no_dna", "", "", ""],
                      "review": [False, False, True, False, False, False],
                      LEAK_NEEDED: pa.array([0.08, 0.02, 0.5, np.nan, np.nan, 0.06],
                                            pa.float32())})
    hold = ScanLeakHold(0.05, ["ctc", "ctc_emt"])
    held = hold(table)
    assert held.column("guard").to_pylist() == ["cd45_positive", "", "no_dna", "", "",
                                                "cd45_positive"]
    assert held.column("review").to_pylist() == [True, False, True, False, False, True]
    assert held.schema == table.schema
    assert hold.held == 2 and hold.record() == {"ctc_cd45_allowance": 0.05,
                                                 "ctc_held_over_leak": 2}
    # Unmeasured, or a journal written before the column: as written.
    assert ScanLeakHold(None)(table) is table
    assert ScanLeakHold(0.05)(table.drop_columns([LEAK_NEEDED])).equals(
        table.drop_columns([LEAK_NEEDED]))
