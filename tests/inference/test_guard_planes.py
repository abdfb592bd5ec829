"""The marker guard finds its planes by their markers' names: a lab's own names for CK and
CD45 are read, and a plane it cannot find is said (not a guard silently off)."""

import logging

import numpy as np
import pytest

from ctcnet.core.said_once import forget_said
from ctcnet.errors import InputError
from ctcnet.inference.guard import measure
from ctcnet.inference.guard.planes import missing_guard_planes, warn_unguarded
from ctcnet.inference.guard.rules import RULES
from ctcnet.inference.run_summary import count_definition
from ctcnet.inference.spillover import leak_check
from ctcnet.io.panel import load_panel, marker_role
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec

SIZE = 40


def ctc(rng) -> np.ndarray:
    """A (3, SIZE, SIZE) crop in DAPI, CK, CD45 order: a CK disk round a nucleus."""
    x = 100.0 + rng.normal(0, 3.0, (3, SIZE, SIZE))
    r = np.hypot(*(np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2))
    x[1] += 600 * (r <= 8)
    x[0] += 400 * (r <= 4)
    return x.astype(np.float32)


@pytest.mark.parametrize("name, role", [("CK8/18", "epithelial"), ("CK19", "epithelial"),
                                        ("KRT18-PE", "epithelial"), ("pan-keratin", "epithelial"),
                                        ("CD45RA", "leukocyte"), ("CD45RO-APC", "leukocyte"),
                                        ("CD4", "unknown"), ("CKX", "unknown"),
                                        ("CK20", "unknown"), ("KRT7", "unknown")])
def test_a_labs_names_for_ck_and_cd45_are_read(name, role):
    """CK8/18, the CellSearch kit's keratins, read as no marker: the guard went without CK. A
    keratin a panel reads beside its CK (CK20 in a colorectal panel) is a marker apart."""
    assert marker_role(name) == role


def test_a_ck20_plane_beside_the_ck_leaves_the_ck_the_models():
    model = load_panel({"channels": ["DAPI", "CK", "CD45"]})
    for scan in (["DAPI", "CK-PE", "CD45-APC", "CK20-FITC"], ["Hoechst", "panCK", "CD45",
                                                             "KRT20"]):
        assert model.match_channels(load_panel({"channels": scan}))[0] == [0, 1, 2]


def test_a_ck_plane_named_by_its_keratins_is_measured(rng):
    crops = np.stack([ctc(rng)])
    kit = load_panel({"channels": ["DAPI", "CK8/18", "CD45"]})
    assert missing_guard_planes(kit) == []
    assert measure(crops, kit, 0.64)["ck_peak"][0] > 50


def test_a_plane_the_guard_cannot_find_is_said_once_and_recorded(rng, caplog):
    forget_said()
    own = load_panel({"channels": ["DAPI", "KeratinMix", "CD45"]})
    assert missing_guard_planes(own) == ["CK (cytokeratin)"]
    with caplog.at_level(logging.WARNING):
        measure(np.stack([ctc(rng)]), own, 0.64)
        measure(np.stack([ctc(rng)]), own, 0.64)
        warn_unguarded(own)
        warn_unguarded(load_panel({"channels": ["DAPI", "CK", "CD45", "pan-CK"]}), "train")
    said = [r.getMessage() for r in caplog.records if "marker guard" in r.getMessage()]
    assert len(said) == 1 and "DAPI, KeratinMix, CD45" in said[0]
    assert "none of them CK (cytokeratin)" in said[0]
    assert [r.getMessage() for r in caplog.records if "all read as" in r.getMessage()] == [
        "train reads the channels DAPI, CK, CD45, pan-CK: CK and pan-CK all read as CK "
        "(cytokeratin) (the guard reads CK); name each plane by what it holds"]
    spec = ModelSpec(arch="compact", panel=own, taxonomy=default_taxonomy(), crop_size=SIZE)
    counted_as = count_definition(spec)
    assert "name no CK (cytokeratin)" in counted_as["unguarded_planes"]
    assert counted_as["ck_negative"].startswith("With no CK plane")
    # Its leaks were measured on nothing: null, not a leak of 0.
    check = leak_check(np.zeros(3, np.float32), own, RULES, "crops", crops=0)
    assert check["source"] is None and check["leaks"] == {"CD45": None}
    # The shipped panel has every plane: nothing said, nothing recorded.
    full = ModelSpec(arch="compact", panel=load_panel({"channels": ["DAPI", "CK", "CD45"]}),
                     taxonomy=default_taxonomy(), crop_size=SIZE)
    assert "unguarded_planes" not in count_definition(full)


@pytest.mark.parametrize("names", [["DAPI", "CK", ""], ["DAPI", " ", "CD45"],
                                   ["DAPI", "CK", "CK "]])
def test_a_blank_or_repeated_channel_name_is_refused(names):
    """A blank name made an events column "mean_" and a console line of no marker."""
    with pytest.raises(InputError, match="unique and not blank"):
        load_panel({"channels": names})
