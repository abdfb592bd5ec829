"""ctcnet.detect.plane_order: composite crop folders whose R, G, B planes are in another order
than panel.json says are warned of in one line (the likely order and where to state it); the
project's own simulated composites, in their order, are not."""

import json
import shutil
from collections import Counter

import numpy as np
import pytest

from ctcnet.detect.crop_dataset import load_crops, read_crop_index
from ctcnet.detect.plane_order import MIN_VOTES, PlaneVotes, nucleus_plane

LOGGER = "ctcnet.detect.crop_dataset"


@pytest.fixture(scope="module")
def composites(tmp_path_factory):
    """The simulator's composite exports as ``ctcnet simulate crops --export`` writes them:
    ``rgb-jpeg`` (a viewer's composites) and ``tight`` (single-cell figures), R, G, B = CK,
    CD45, DAPI."""
    from ctcnet.cli import main

    root = tmp_path_factory.mktemp("composites")
    for export, counts, seed in (("rgb-jpeg", "8", "1"), ("tight", "6", "2")):
        assert main(["simulate", "crops", str(root / export), "--export", export, "--counts",
                     counts, "--seed", seed]) == 0
    return root


def _plane_warnings(caplog, folder):
    caplog.clear()
    with caplog.at_level("WARNING", logger=LOGGER):
        load_crops(read_crop_index(folder), 80)
    return [r.getMessage() for r in caplog.records if "the nucleus" in r.getMessage()]


def _swapped(folder, to):
    """A copy of ``folder`` whose panel.json names R as DAPI and B as CK: its files were
    exported R, G, B = CK, CD45, DAPI (a viewer's order stated wrongly)."""
    shutil.copytree(folder, to)
    panel = json.loads((to / "panel.json").read_text())
    channels = panel["channels"]
    channels[0], channels[2] = channels[2], channels[0]
    (to / "panel.json").write_text(json.dumps(panel))
    return to


@pytest.mark.parametrize("export", ["rgb-jpeg", "tight"])
def test_a_folder_with_its_planes_swapped_is_warned_of_and_a_right_one_is_not(
        composites, export, tmp_path, caplog):
    assert _plane_warnings(caplog, composites / export) == []
    warned = _plane_warnings(caplog, _swapped(composites / export, tmp_path / export))
    assert len(warned) == 1, warned
    line = warned[0]
    assert "\n" not in line and "in the B plane" in line and "(DAPI by panel.json)" in line
    assert 'panel.json\'s "channels" names the R, G, B planes in order; likely ' \
           '["CK", "CD45", "DAPI"]' in line


def test_a_nucleus_inside_its_cell_is_found_in_whichever_plane_it_is():
    yy, xx = np.mgrid[:64, :64]
    r2 = (yy - 31.5) ** 2 + (xx - 31.5) ** 2
    cell = np.where(r2 <= 18 ** 2, 120.0, 5.0)   # CK: the cytoplasm
    nucleus = np.where(r2 <= 7 ** 2, 200.0, 5.0)  # DAPI: inside it
    empty = np.full((64, 64), 5.0)
    noise = np.random.default_rng(0).normal(0, 1, (3, 64, 64))
    assert nucleus_plane(np.stack([cell, empty, nucleus]) + noise) == 2
    assert nucleus_plane(np.stack([nucleus, empty, cell]) + noise) == 0
    # One body lit alike in two planes, or a lone marker: no nesting, no vote.
    assert nucleus_plane(np.stack([cell, empty, cell]) + noise) is None
    assert nucleus_plane(np.stack([empty, empty, nucleus]) + noise) is None


def test_few_or_split_votes_are_not_warned_of():
    votes = PlaneVotes(["CK", "CD45", "DAPI"], 2, 500)
    votes.votes = Counter({0: MIN_VOTES - 1})
    assert votes.warning() is None  # too few crops show a nucleus in a cell
    votes.votes = Counter({0: 11, 1: 3, 2: 8})  # a folder of debris: no clear winner
    assert votes.warning() is None
    votes.votes = Counter({0: 30, 1: 3, 2: 8})
    assert 'likely ["DAPI", "CD45", "CK"]' in votes.warning()
    # The published order rotated (R = DAPI, G = CK, B = CD45 named, the nucleus in B): the
    # published order is offered, not a swap that leaves CK and CD45 in each other's planes.
    rotated = PlaneVotes(["DAPI", "CK", "CD45"], 0, 500)
    rotated.votes = Counter({2: 30, 0: 3})
    assert 'likely ["CK", "CD45", "DAPI"]' in rotated.warning()
    other = PlaneVotes(["DAPI", "CK", "CD66b"], 0, 500)  # not the published markers: a swap
    other.votes = Counter({2: 30, 0: 3})
    assert 'likely ["CD66b", "CK", "DAPI"]' in other.warning()


def _cell_with_bleed(first: bool, seed: int) -> tuple[np.ndarray, int]:
    """A CTC crop (CK cytoplasm round a DAPI nucleus) with a plane carrying a fifth of DAPI's
    signal plus noise (DAPI's bleed into a therapy marker's plane), first or last; and DAPI's
    index."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:80, :80]
    r2 = (yy - 40.0) ** 2 + (xx - 40.0) ** 2
    nucleus = 3000.0 * np.exp(-r2 / (2 * 6.0 ** 2))
    ck = 2000.0 * np.exp(-r2 / (2 * 12.0 ** 2))
    planes = [nucleus, ck, 0.2 * nucleus]
    crop = np.stack(planes) + 200.0 + rng.normal(0, 20.0, (3, 80, 80))
    if first:
        return crop[[2, 0, 1]], 1
    return crop, 0


@pytest.mark.parametrize("first", [False, True])
def test_a_plane_carrying_dapis_bleed_is_not_the_nucleuss_in_either_order(first):
    """The nucleus's plane is DAPI's, not the dimmer copy's, wherever the copy's plane lies:
    the smallest object alone handed the copy about half the crops."""
    votes = Counter()
    for seed in range(12):
        crop, dapi = _cell_with_bleed(first, seed)
        votes[nucleus_plane(crop) == dapi] += 1
    assert votes[True] == 12, votes
