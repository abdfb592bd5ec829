"""ctcnet.inference.dropped_planes: a panel.json that swaps the DNA channel with a plane the
model does not read (DAPI and VIM of a six-channel scan read by a three-channel model) is
said, where the metadata check of the model's planes cannot see it."""

import json
from types import SimpleNamespace

import pytest

from ctcnet.detect.detection import DetectConfig
from ctcnet.io.panel import load_panel
from ctcnet.io.scan import open_cartridge

CORE3 = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
SPEC = SimpleNamespace(crop_size=80, pixel_size_um=0.64)


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    from ctcnet.simulate import simulate_cartridge

    cart = tmp_path_factory.mktemp("six") / "cart"
    simulate_cartridge(cart, load_panel({"channels": ["DAPI", "CK", "CD45", "VIM", "EpCAM",
                                                      "CD61"], "pixel_size_um": 0.64}),
                       num_frames=3, seed=3, events_per_frame=150)
    return cart


def test_the_dna_plane_swapped_with_a_dropped_one_is_said(six, tmp_path):
    from ctcnet.inference.dropped_planes import dropped_plane_problems

    assert dropped_plane_problems(open_cartridge(six).conform(CORE3), SPEC, DetectConfig()) \
        == []
    import shutil

    swapped = shutil.copytree(six, tmp_path / "swapped")
    panel = json.loads((swapped / "panel.json").read_text())
    channels = panel["channels"]
    channels[0], channels[3] = channels[3], channels[0]  # panel.json says VIM, ..., DAPI
    (swapped / "panel.json").write_text(json.dumps(panel))
    said = dropped_plane_problems(open_cartridge(swapped).conform(CORE3), SPEC, DetectConfig())
    assert len(said) == 1 and "the nucleus lies in the VIM plane" in said[0]
    assert "a plane this model does not read" in said[0]


def test_a_scan_of_the_models_own_channels_reads_nothing_more(six):
    from ctcnet.inference.dropped_planes import dropped_plane_problems

    cart = open_cartridge(six)
    assert dropped_plane_problems(cart.conform(cart.panel), SPEC, DetectConfig()) == []


def test_the_leukocyte_markers_light_in_a_dropped_plane_is_said(tmp_path):
    """A CellSearch-like scan whose empty FITC panel.json lists in CD45's place: the model read
    FITC as CD45 and dropped the real CD45 as "FITC" (0 of 8 CTCs counted, ok). A dropped plane
    of no known marker lighting the events the leukocyte marker should is said; the scan in its
    order says nothing."""
    import shutil

    from ctcnet.inference.dropped_planes import dropped_plane_problems
    from ctcnet.simulate import simulate_cartridge

    cart = tmp_path / "cart"
    simulate_cartridge(cart, load_panel({"channels": ["DAPI", "CK", "CD45", "FITC"],
                                         "pixel_size_um": 0.64}),
                       num_frames=3, seed=4, events_per_frame=400)
    assert dropped_plane_problems(open_cartridge(cart).conform(CORE3), SPEC, DetectConfig()) \
        == []
    swapped = shutil.copytree(cart, tmp_path / "swapped")
    panel = json.loads((swapped / "panel.json").read_text())
    channels = panel["channels"]
    channels[2], channels[3] = channels[3], channels[2]  # panel.json: DAPI, CK, FITC, CD45
    (swapped / "panel.json").write_text(json.dumps(panel))
    said = dropped_plane_problems(open_cartridge(swapped).conform(CORE3), SPEC, DetectConfig())
    assert any("FITC, a plane this model does not read, lights" in s and
               "the leukocyte marker's light lies in a dropped plane" in s for s in said), said


def test_two_scans_of_one_sample_id_each_say_their_dropped_plane(tmp_path, caplog):
    """The warning of a plane the model does not read is said once a scan, not once a sample
    id: a second scan under the same id (another draw, a rescan) lost it in a notebook."""
    from ctcnet.io.panel import load_panel
    from ctcnet.io.scan import open_cartridge
    from ctcnet.simulate import simulate_cartridge

    six = load_panel({"channels": ["DAPI", "CK", "CD45", "CD61", "CD66b", "VIM"],
                      "pixel_size_um": 0.64})
    model = load_panel(None)
    for name in ("first", "second"):
        simulate_cartridge(tmp_path / name, six, num_frames=1, frame_shape=(96, 128),
                           events_per_frame=4, seed=1, sample_id="S1")
    with caplog.at_level("INFO"):
        for name in ("first", "second", "first"):
            open_cartridge(tmp_path / name).conform(model)
    said = [r.getMessage() for r in caplog.records if "VIM" in r.getMessage()]
    assert len(said) == 2 and "(first)" in said[0] and "(second)" in said[1], said


def test_a_problem_names_a_dropped_plane_as_a_word_of_its_own():
    """A problem was filed as naming a dropped plane wherever the plane's name stood in its
    text: a dropped CD4 named by every line on CD45, CK by one on CK20."""
    from ctcnet.inference.dropped_planes import names_a_plane

    assert not names_a_plane("CD45 lights 80 % of the events read", ["CD4"])
    assert not names_a_plane("the plane CK20 is dark on every frame", ["CK"])
    assert names_a_plane("CD4 lights 80 % of the events read", ["CD4"])
    assert names_a_plane('"HER2" (plane 5) lights where CD45 does', ["HER2"])
