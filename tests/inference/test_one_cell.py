"""A ``cluster`` call needs a second cell: a partner marker attached to its CTC, or a second
nucleus. One nucleus with nothing attached is flagged ``one_cell`` (a single CTC whose long or
large outline the network took for two)."""

import numpy as np
import pytest

from ctcnet.inference.guard import review_flags
from ctcnet.inference.guard.nuclei import count_nuclei
from ctcnet.io.panel import default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec

SIZE = 64
DAPI, CK, CD45 = range(3)
PIXEL_UM = 0.64


@pytest.fixture()
def spec():
    return ModelSpec(arch="compact", panel=default_panel(), taxonomy=default_taxonomy(),
                     crop_size=SIZE)


def ellipse(centre, a, b, angle=0.0):
    """(SIZE, SIZE) bool: an ellipse of semi-axes a (along ``angle``) and b, in pixels."""
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    u, v = xx - centre[0], yy - centre[1]
    along = u * np.cos(angle) + v * np.sin(angle)
    across = v * np.cos(angle) - u * np.sin(angle)
    return (along / a) ** 2 + (across / b) ** 2 <= 1


def test_touching_nuclei_count_two_and_an_elongated_one_counts_one():
    pair = ellipse((-4.5, 0), 5, 5) | ellipse((4.5, 0), 5, 5)     # overlapping, one mask
    apart = ellipse((-9, 0), 4, 4) | ellipse((9, 0), 4, 4)
    trio = ellipse((-8, -3), 4.5, 4.5) | ellipse((0, 4), 4.5, 4.5) | ellipse((8, -3), 4.5, 4.5)
    long = ellipse((0, 0), 9, 4.5, angle=0.6)                    # a spindle CTC's nucleus
    round_ = ellipse((0, 0), 6, 6)
    speck = ellipse((0, 0), 1, 1)                                # under the least half width
    masks = np.stack([pair, apart, trio, long, round_, speck, np.zeros_like(pair)])
    got = count_nuclei(masks, PIXEL_UM, min_half_width_um=1.6, min_separation_um=2.5)
    assert got.tolist() == [2, 2, 3, 1, 1, 0, 0]


def crop(rng, cells, cd45_ring=None, noise=3.0):
    """(5, SIZE, SIZE): CK over each cell's ellipse round a nucleus of half its axes;
    ``cd45_ring``: a CD45+ leukocyte (ring round its own nucleus) at that offset."""
    x = 100.0 + rng.normal(0, noise, (5, SIZE, SIZE))
    for centre, a, b, angle in cells:
        x[CK] += 300 * ellipse(centre, a, b, angle)
        x[DAPI] += 400 * ellipse(centre, 0.55 * a, 0.6 * b, angle)
    if cd45_ring is not None:
        x[CD45] += 200 * (ellipse(cd45_ring, 6, 6) & ~ellipse(cd45_ring, 4, 4))
        x[DAPI] += 400 * ellipse(cd45_ring, 3.5, 3.5)
    return x.astype(np.float32)


def test_a_cluster_call_on_one_cell_is_flagged_and_real_clusters_are_not(rng, spec):
    crops = np.stack([
        crop(rng, [((0, 0), 14, 5, 0.4)]),                          # a spindle CTC
        crop(rng, [((0, 0), 8, 7.5, 0.0)]),                         # a round CTC
        crop(rng, [((-7, 0), 7.5, 7, 0.0), ((7, 0), 7.5, 7, 0.0)]),  # two CTCs touching
        crop(rng, [((-3, 0), 8, 7.5, 0.0)], cd45_ring=(9, 0)),      # a CTC and a leukocyte
        crop(rng, [((0, 0), 14, 5, 0.4)]),                          # the spindle called ctc
    ])
    names = ["cluster", "cluster", "cluster", "cluster", "ctc"]
    proba = np.eye(spec.num_classes)[[spec.class_names.index(n) for n in names]]
    flags = review_flags(crops, proba, spec)
    assert flags["one_cell"].tolist() == [True, True, False, False, False]
    assert flags["any"][:2].all()
