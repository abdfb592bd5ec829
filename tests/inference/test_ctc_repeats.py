"""One CTC, one count: a CTC call the markers made beside a counted call the network made
itself is held (same_ctc), after the scan-leak hold, as the events tables are written."""

import numpy as np
import pyarrow as pa
import pytest

from ctcnet.inference.ctc_repeats import SAME_CTC, CtcRepeatHold, RunHolds, repeated_ctcs
from ctcnet.inference.scan_leak_hold import LEAK_NEEDED


def frame(calls, markers, x, guard=None, p_ctc=None, need=None):
    """A frame's journaled table: events on one row of the frame, ``x`` in pixels (0.5 um)."""
    n = len(calls)
    columns = {"class": calls, "guard": guard or [""] * n, "markers_ctc": markers,
               "x": np.asarray(x, float), "y": np.zeros(n), "review": [False] * n,
               "p_ctc": p_ctc or [0.5] * n}
    if need is not None:
        columns[LEAK_NEEDED] = pa.array(need, pa.float32())
    return pa.table(columns)


@pytest.mark.parametrize("calls, markers, x, guard, held", [
    # A lymphocyte's event 12 um from a CTC the network called: its markers' CTC is the same.
    (["ctc", "ctc"], [False, True], [0, 24], None, [False, True]),
    (["ctc", "ctc"], [False, True], [0, 40], None, [False, False]),      # 20 um: two cells
    (["cluster", "ctc"], [False, True], [0, 24], None, [False, True]),  # a cluster's CTC
    # The network's call held by the guard counts nothing: the markers' call is no repeat.
    (["ctc", "ctc"], [False, True], [0, 24], ["no_dna", ""], [False, False]),
    # Two network calls are its own, never held here.
    (["ctc", "ctc"], [False, False], [0, 24], None, [False, False]),
    (["wbc", "ctc"], [False, True], [0, 24], None, [False, False]),      # a wbc counts nothing
])
def test_a_markers_ctc_beside_a_counted_call_of_the_network_is_held(calls, markers, x, guard,
                                                                      held):
    hold = CtcRepeatHold(0.5, ["ctc"], ["ctc", "cluster"])
    out = hold(frame(calls, markers, x, guard))
    assert [g == SAME_CTC for g in out.column("guard").to_pylist()] == held
    assert out.column("review").to_pylist() == held
    assert hold.held == sum(held)


def test_a_possible_missed_ctc_beside_a_counted_ctc_reads_as_the_same_ctc_again():
    """A lymphocyte beside a counted CTC, flagged a possible missed CTC (its crop holds the
    CTC's CK): relabelled ctc as that flag invites, the one CTC counted twice. Beside a
    counted call it reads as a repeat; apart from one, as it was."""
    hold = CtcRepeatHold(0.5, ["ctc"], ["ctc", "cluster"])
    table = frame(["ctc", "wbc", "wbc"], [False, False, False], [0, 24, 200],
                  guard=["", "unusual+possible_ctc", "possible_ctc"])
    table = table.set_column(table.schema.get_field_index("review"), "review",
                             pa.array([False, True, True]))
    out = hold(table)
    assert out.column("guard").to_pylist() == ["", "unusual+same_ctc", "possible_ctc"]
    assert out.column("review").to_pylist() == [False, True, True]
    assert hold.held == 0  # nothing more held: it counted for nothing before either


def test_of_two_markers_calls_with_no_network_call_near_the_likelier_ctc_counts():
    out = repeated_ctcs(np.array(["ctc", "ctc", "ctc"], object), np.ones(3, bool),
                        np.ones(3, bool), np.array([[0, 0], [10, 0], [40, 0]], float),
                        np.array([0.4, 0.9, 0.3]), ["ctc"], ["ctc", "cluster"])
    assert out.tolist() == [True, False, False]


def test_a_call_the_scan_leak_hold_takes_leaves_the_markers_call_beside_it_counted():
    """A touching pair whose network ctc is a CK-bright leukocyte the scan's leak does not
    clear: held for its CD45 first, it counts nothing, and the markers' CTC beside it (the
    true CTC) stays counted; the two holds never take both."""
    from types import SimpleNamespace

    from ctcnet.io.panel import load_panel

    taxonomy = SimpleNamespace(of_kind=lambda kind: ["ctc"] if kind == "ctc" else ["cluster"],
                               reported_classes=lambda: ["ctc", "cluster"])
    spec = SimpleNamespace(panel=load_panel(None), taxonomy=taxonomy)
    checked = {"leaks": {"CD45": 0.02}, "allowance": {"CD45": 0.12}, "measured_on": 400}
    table = frame(["ctc", "ctc"], [False, True], [0, 24], need=[0.1, 0.0])
    out = RunHolds(checked, spec, 0.5)(table)
    assert out.column("guard").to_pylist() == ["cd45_positive", ""]
    cleared = RunHolds(checked, spec, 0.5)(frame(["ctc", "ctc"], [False, True], [0, 24],
                                                 need=[0.01, 0.0]))
    assert cleared.column("guard").to_pylist() == ["", SAME_CTC]


def test_a_table_without_markers_calls_or_a_pixel_size_is_as_written():
    table = frame(["ctc", "wbc"], [False, False], [0, 24])
    assert CtcRepeatHold(0.5, ["ctc"], ["ctc"])(table) is table
    made = frame(["ctc", "ctc"], [False, True], [0, 24])
    assert CtcRepeatHold(None, ["ctc"], ["ctc"])(made) is made
    assert CtcRepeatHold(0.5, ["ctc"], ["ctc"])(made.drop(["markers_ctc"])).equals(
        made.drop(["markers_ctc"]))


def test_read_again_a_possible_ctc_whose_markers_read_one_keeps_its_flags():
    """A debris call whose markers read a CTC, the call left the network's: flagged a possible
    missed CTC, said as the same CTC beside a counted one. Re-scoring under the same calls
    gave it no flag at all (those joined to it lost too); a held markers' call stands again
    and is held again."""
    import pandas as pd

    from ctcnet.inference.ctc_repeats import held_again
    from ctcnet.io.taxonomy import default_taxonomy

    hold = CtcRepeatHold(0.5, ["ctc"], ["ctc", "cluster"])
    table = frame(["ctc", "debris", "ctc"], [False, True, True], [0, 20, 500],
                  guard=["", "low_dna+possible_ctc", ""])
    table = table.append_column("area_px", pa.array([100.0] * 3)) \
        .append_column("area_um2", pa.array([25.0] * 3)) \
        .append_column("frame_id", pa.array(["f"] * 3))
    written = hold(table).to_pandas()
    assert written["guard"].tolist() == ["", "low_dna+same_ctc", ""]
    assert held_again(written, default_taxonomy())["guard"].tolist() == \
        written["guard"].tolist()
    # A markers' call beside the counted one: held when written, held again when read again.
    moved = pd.DataFrame(table.to_pandas()).assign(x=[0.0, 900.0, 20.0])
    written = hold(pa.Table.from_pandas(moved, preserve_index=False)).to_pandas()
    assert written["guard"].tolist() == ["", "low_dna+possible_ctc", SAME_CTC]
    assert held_again(written, default_taxonomy())["guard"].tolist() == \
        written["guard"].tolist()
