"""Members of merged objects whose own markers read as a CTC's are offered as events of their
own beside the whole (``detect_events(..., alternates=True)``); other objects are left alone."""

import numpy as np

from ctcnet.detect.detection import detect_events
from ctcnet.detect.members import GROUP, PART, ctc_like
from ctcnet.io.panel import load_panel
from tests.detect.test_detection import CD45, CK, DAPI, KINDS, PANEL, draw_frame

PX = 0.64


def near(events, x_um, y_um, radius_um=4.0):
    d = np.hypot(events.x - x_um / PX, events.y - y_um / PX)
    return events[d <= radius_um / PX]


def test_a_ctc_merged_with_a_leukocyte_is_offered_as_its_own_event():
    # The CTC and its neighbour merge into one event (as a cluster would): the whole stays a
    # row, and the two members come as parts of it.
    frame = draw_frame([("ctc", 60, 130), ("wbc", 73, 130)], shape=(280, 200))
    plain = detect_events(frame, PANEL)
    assert len(plain) == 1 and GROUP not in plain
    events = detect_events(frame, PANEL, alternates=True)
    wholes, parts = events[~events[PART]], events[events[PART]]
    assert len(wholes) == 1 and len(parts) == 2
    assert (events[GROUP] == wholes[GROUP].iloc[0]).all()
    ctc = near(parts, 60, 130)
    assert len(ctc) == 1
    assert float(ctc["mean_CK"].iloc[0]) > float(parts["mean_CK"].min())
    assert float(ctc["mean_CD45"].iloc[0]) < float(parts["mean_CD45"].max())
    # The whole is measured exactly as without alternates.
    assert np.allclose(wholes[plain.columns].to_numpy(float), plain.to_numpy(float))


def test_a_dim_ctc_on_a_bright_aggregates_tail_is_offered_too():
    kinds = dict(KINDS, aggregate=[(DAPI, 2.5, 900.0), (CK, 2.5, 900.0), (CD45, 2.5, 900.0)],
                 dim_ctc=[(DAPI, 3.0, 90.0), (CK, 4.0, 70.0)])
    KINDS.update(kinds)
    try:
        frame = draw_frame([("aggregate", 60, 60), ("dim_ctc", 72, 60)], shape=(200, 200))
    finally:
        for k in ("aggregate", "dim_ctc"):
            KINDS.pop(k)
    events = detect_events(frame, PANEL, alternates=True)
    assert len(events[~events[PART]]) == 1, "the two read as one object"
    assert len(near(events[events[PART]], 72, 60)) == 1


def test_objects_of_one_kind_and_lone_cells_get_no_alternates():
    # Two touching leukocytes (split anyway, or merged: no CTC-like member), a lone CTC.
    frame = draw_frame([("wbc", 60, 60), ("wbc", 71, 60), ("ctc", 60, 140)],
                       shape=(280, 200))
    events = detect_events(frame, PANEL, alternates=True)
    assert not events[PART].any()
    assert (events[GROUP] == -1).all()
    assert len(events) == len(detect_events(frame, PANEL))


def test_a_member_reads_as_a_ctc_by_ck_and_dna_without_cd45():
    peaks = np.array([[0, 0, 0],        # background
                      [30, 80, 3],      # a CTC: DNA, CK, little CD45
                      [30, 80, 40],     # CK and CD45: a leukocyte with non-specific CK
                      [2, 80, 1],       # CK without DNA: a tdEV
                      [30, 3, 1]],      # DNA alone: a bare nucleus
                     float)
    assert ctc_like(peaks, 0, 1, 2, 5.0).tolist() == [False, True, False, False, False]
    # Without a CD45 channel, CK and DNA decide.
    assert ctc_like(peaks, 0, 1, None, 5.0).tolist() == [False, True, True, False, False]


def test_ctc_like_reads_ck_of_its_own_and_cd45_that_does_not_outshine_it():
    peaks = np.array([[0, 0, 0],
                      [200, 15, 1],     # a bare nucleus with DAPI's bleed (or a CTC's blur) in CK
                      [40, 30, 3],      # a CTC
                      [30, 30, 2]],     # a leukocyte taking a CTC's CK blur at their border
                     float)
    cd45_peak = np.array([0, 1, 20, 90], float)  # each member's own CD45 peak
    assert ctc_like(peaks, 0, 1, 2, 5.0).tolist() == [False, False, True, True]
    assert ctc_like(peaks, 0, 1, 2, 5.0, cd45_peak).tolist() == [False, False, True, False]


def test_a_ctc_beside_a_bright_bare_nucleus_is_offered_alone():
    """A bright bare nucleus beside a CTC, DAPI's bleed and the CTC's CK blur in its CK: the
    CTC is a member of its own (its CK of its own, its nucleus apart from the other's) and is
    offered as a part."""
    KINDS["bare"] = [(DAPI, 3.0, 900.0), (CK, 3.0, 40.0)]
    try:
        frame = draw_frame([("bare", 60, 60), ("ctc", 74, 60)], shape=(200, 200))
    finally:
        KINDS.pop("bare")
    events = detect_events(frame, PANEL, alternates=True)
    assert len(events[~events[PART]]) == 1, "the two read as one object"
    assert len(near(events[events[PART]], 74, 60)) == 1


def test_a_nucleus_whose_own_ck_dips_inside_a_lit_ring_seeds_its_member():
    """CK is the cytoplasm's: over a dim CTC's nucleus it can fall under the threshold while
    the ring round it is lit (the demo's seed had CK 4 over a DNA peak of 13, 6-8 a working
    pixel off, beside a bright CK+ CD45+ neighbour): its DNA peak still seeds a member. A
    leukocyte's nucleus in such a ring, CD45 over it, seeds none."""
    from ctcnet.detect.members import marker_seeds

    def maps(cd45_over_nucleus):
        snr = np.zeros((3, 13, 11), np.float32)  # DNA, CK, CD45
        snr[0, 7:10, 4:7], snr[0, 8, 5] = 10.0, 13.0  # the nucleus
        # CK: a lit ring, dim over the nucleus but for a pixel beside its DNA peak
        snr[1, 6:11, 3:8], snr[1, 7:10, 4:7], snr[1, 8, 4] = 7.0, 4.0, 6.0
        snr[2, 7:10, 4:7] = cd45_over_nucleus
        snr[:, 0:3, 2:6] = [[[7.0]], [[35.0]], [[40.0]]]  # the bright neighbour
        return snr

    ctc = marker_seeds(maps(0.0), np.ones((13, 11), bool), (0, 1, 2), 2, 5.0)
    assert ctc[8, 5] and ctc.sum() == 1
    leukocyte = marker_seeds(maps(5.0), np.ones((13, 11), bool), (0, 1, 2), 2, 5.0)
    assert not leukocyte[7:10, 4:7].any()


def test_a_ctc_touching_a_fibre_bright_in_every_channel_is_offered_alone():
    """A fibre lit in every channel (CK, DNA, and CD45, CD61 and CD66b at a quarter to two
    fifths of its CK) touching a CTC: the fibre is no CTC, lit in every exclusion marker; the
    CTC is one (read where its nucleus peaks: its CK peaks on the fibre's border), and it is
    offered as a member of its own rather than lost inside the fibre's event."""
    panel = load_panel({"channels": ["DAPI", "CK", "CD45", "CD61", "CD66b"],
                        "pixel_size_um": PX})
    h, w = 200, 240
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:h, 0:w] * PX
    frame = np.zeros((5, h, w)) + np.array([40.0, 25.0, 30.0, 30.0, 30.0])[:, None, None]
    # the fibre: a ridge from (20, 30) um to (62, 50) um, 1.5 um wide
    start, end = np.array([20.0, 30.0]), np.array([62.0, 50.0])
    along = ((xx - start[0]) * (end - start)[0] + (yy - start[1]) * (end - start)[1]) / \
        np.sum((end - start) ** 2)
    t = np.clip(along, 0.0, 1.0)
    d2 = (xx - start[0] - t * (end - start)[0]) ** 2 + (yy - start[1] - t * (end - start)[1]) ** 2
    ridge = np.exp(-d2 / (2 * 1.5 ** 2))
    for channel, amplitude in enumerate([70.0, 400.0, 100.0, 110.0, 160.0]):
        frame[channel] += amplitude * ridge
    # the CTC, its nucleus 7 um past the fibre's end
    r2 = (xx - 66.0) ** 2 + (yy - 56.0) ** 2
    frame[0] += 500.0 * np.exp(-r2 / (2 * 3.0 ** 2))
    frame[1] += 120.0 * np.exp(-r2 / (2 * 5.0 ** 2))
    frame = np.clip(rng.poisson(frame) + rng.normal(100.0, 3.0, frame.shape), 0, 4095)
    events = detect_events(frame.astype(np.float32), panel, alternates=True)
    wholes = events[~events[PART]]
    x, y = 66 / PX, 56 / PX
    inside = (wholes.bbox_x0 <= x) & (x < wholes.bbox_x1) & (wholes.bbox_y0 <= y) & \
        (y < wholes.bbox_y1)
    assert len(wholes) == 1 and inside.all(), "the fibre and the CTC read as one object"
    ctc = near(events, 66, 56)
    assert len(ctc) == 1 and bool(ctc[PART].iloc[0]), "the CTC is offered as a member"
