"""How much of CK's leak into CD45 a call's CD45 needs to be no marker (pure numpy).

The guard reads CD45 over a CTC call's CK area once every other dye's leak is taken off, each
up to its allowance (``GuardRules.max_leak``, 12 % of its counts): no filter set's spillover
is given, so the allowance covers the worst. On a CK-bright cell that allowance also takes a
leukocyte's CD45 off: CK at 5x a CTC's with CD45 at a leukocyte's level is 10 % of CK's counts,
under 12 %, and such CK+CD45+ cells painted into a scan were counted as CTCs. A scan measures
its own CK leak, at the end of the run (``spillover.leak_check``, from the CK-bright events of
every frame). :func:`cd45_leak_needed` gives each call the least share of CK's counts that a
leak into CD45 must carry for its CD45 to read no more than ``GuardRules.cd45_level`` (the
other dyes' leaks still at their allowance), so that the run can compare it with the scan's
leak once it is known (:mod:`ctcnet.inference.scan_leak_hold`).
"""

from __future__ import annotations

import numpy as np

from ctcnet.inference.guard.around import over_area
from ctcnet.inference.guard.leaks import marker_excess

# The shares of CK's counts tried (the guard's allowance is the last step), about a tenth
# apart at a leak of 5 %, the need read between two of them: a CTC's sits under its scan's
# leak (on the 20 counting cartridges every counted CTC call's at most 0.88x it).
STEPS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045, 0.05, 0.06, 0.07,
         0.08, 0.09, 0.1, 0.11)


def cd45_leak_needed(batch, rows: np.ndarray) -> np.ndarray:
    """(len(rows),) float32 for the crops ``rows`` of a guard ``batch`` (what the guard's
    measurements of a frame's crops, as the scanner wrote them, started from:
    ``measure_for_guard_start``): the least share of CK's counts (read on :data:`STEPS` and
    the guard's allowance into CD45 after them, and between two steps where CD45's upper
    quartile crosses the level) at which CD45 over the CK area reads no more than the
    batch's ``rules.cd45_level`` with CK's leak allowed that share and every other dye's its
    allowance; inf where CD45 reads positive even at the allowance (the guard's
    ``cd45_positive``); NaN without a CK area (or one all saturated), a CD45 or a CK
    channel."""
    rows = np.asarray(rows, np.int64)
    need = np.full(len(rows), np.nan, np.float32)
    if not len(rows) or batch.ck is None or batch.cd45 is None:
        return need
    rules, n = batch.rules, len(rows)
    cap = rules.leak_cap(batch.panel, batch.cd45)
    steps = np.array([s for s in STEPS if s < cap] + [cap], np.float32)
    sources = [i for i in range(batch.signal.shape[1]) if i != batch.cd45]
    each = np.tile(rows, len(steps))  # step by step, every crop in each
    allowed = np.full((len(each), len(sources)), cap, np.float32)
    allowed[:, sources.index(batch.ck)] = np.repeat(steps, n)
    excess, = marker_excess(batch.signal[each], batch.noise[each], batch.clipped[each],
                            batch.disk, [batch.cd45], sources, [allowed])
    has_area = batch.ck_area[each] > 0
    _, upper = over_area(excess, batch.clipped[each], batch.disk, batch.area[each], has_area)
    upper = upper.reshape(len(steps), n)
    negative = upper <= rules.cd45_level  # (the flag fires over the level)
    # Between the last step CD45 reads positive at and the first it reads negative at, where
    # its upper quartile crosses the level (read to the step, a need of 6.1 % read 7 %).
    first = negative.argmax(axis=0)
    before = np.maximum(first - 1, 0)
    cols = np.arange(n)
    high, low = upper[before, cols], upper[first, cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.clip((high - rules.cd45_level) / (high - low), 0.0, 1.0)
    share = np.where(np.isfinite(share), share, 1.0)
    crossed = steps[before] + share * (steps[first] - steps[before])
    need[:] = np.where(~negative.any(axis=0), np.inf, np.where(first == 0, 0.0, crossed))
    # (a CK area all saturated holds no ratio: CD45 unread there, as the guard reads it)
    need[(batch.ck_area[rows] == 0) | np.isnan(upper).all(axis=0)] = np.nan
    return need
