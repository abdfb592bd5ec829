"""ctcnet.io.panel: loading the panel (JSON, YAML, aliases, RGB composites), its checks,
mismatches named, any JSON value checked (hypothesis)."""

import json
import math
import re

import pytest
from conftest import FUZZ, JSON_VALUES
from hypothesis import given, reject
from hypothesis import strategies as st

from ctcnet.errors import InputError, PanelMismatchError
from ctcnet.io.panel import (
    PIXEL_SIZE_RANGE_UM,
    Panel,
    default_panel,
    load_panel,
    marker_role,
)
from ctcnet.io.taxonomy import default_taxonomy

# --- panel and taxonomy -------------------------------------------------------------------------

def test_default_panel_and_taxonomy():
    panel = default_panel()
    assert panel.names == ["DAPI", "CK", "CD45", "CD61", "CD66b"]
    assert panel.pixel_size_um == pytest.approx(0.64)
    assert panel.roles() == ["nucleus", "epithelial", "leukocyte", "platelet", "neutrophil"]
    assert default_taxonomy().names == ["ctc", "wbc", "cluster", "debris"]


def test_minimal_panel_json_is_accepted(tmp_path):
    (tmp_path / "panel.json").write_text(json.dumps(
        {"channels": ["DAPI", "CK", "CD45", "VIM"], "pixel_size_um": 0.5}))
    panel = load_panel(tmp_path)
    assert panel.names == ["DAPI", "CK", "CD45", "VIM"]
    assert panel.channels[3].role == "mesenchymal"
    assert panel.pixel_size_um == 0.5
    assert Panel.from_dict(panel.to_dict()) == panel


@pytest.mark.parametrize("listed", [["DAPI", "CK", "CD45"],
                                    [{"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.5}]])
def test_a_panel_file_that_is_a_list_is_refused_as_a_list(tmp_path, listed):
    # Not "has no pixel_size_um": a panel wrapped in a list states one.
    (tmp_path / "panel.json").write_text(json.dumps(listed))
    with pytest.raises(InputError, match=r"panel.json: a panel file is a JSON object .* not a "
                                         r"list"):
        load_panel(tmp_path)
    assert load_panel(["DAPI", "CK", "CD45"]).names == ["DAPI", "CK", "CD45"]  # from Python


def test_panel_yaml_and_aliases(tmp_path):
    path = tmp_path / "panel.yaml"
    path.write_text("channels: [Hoechst, panCK, CD45, CD41, CD15, EpCAM]\npixel_size_um: 0.325\n")
    panel = load_panel(path)
    assert panel.roles() == ["nucleus", "epithelial", "leukocyte", "platelet", "neutrophil",
                             "epcam"]
    assert marker_role("something-new") == "unknown"
    # EpCAM's CD name and vimentin's full name reach a model's EpCAM and VIM.
    assert marker_role("CD326") == "epcam" and marker_role("Vimentin") == "mesenchymal"


def test_a_marker_named_with_its_dye_carries_the_markers_role():
    """Scanners and OME files name channels with their dye, after the marker or before it as
    a conjugate is written (PE-CK): each maps to the model's channel of that marker, as the
    bare name does (a dye-first label read as no marker let a swap in panel.json through); a
    dye alone does not."""
    data = Panel.from_dict({"channels": ["DAPI_405", "CK-PE", "CD45 (APC)", "CD61-FITC",
                                         "CD66b AF647"]})
    assert data.roles() == ["nucleus", "epithelial", "leukocyte", "platelet", "neutrophil"]
    assert default_panel().channel_indices(data) == [0, 1, 2, 3, 4]
    assert marker_role("FITC-CD61") == "platelet" and marker_role("PE") == "unknown"
    assert [marker_role(n) for n in ("PE-CK", "APC-CD45", "AF647 CD66b", "PE-Cy7")] == [
        "epithelial", "leukocyte", "neutrophil", "unknown"]
    assert marker_role("Pan-CK") == "epithelial"
    # A marker no alias names (a lab's HER2) is found past its dye and "anti" too: the model's
    # HER2 lacked from a cartridge holding HER2-FITC.
    lab = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "HER2"]})
    for named in ("HER2-FITC", "HER2_PE", "PE-HER2", "anti-HER2", "her2"):
        scan = Panel.from_dict({"channels": ["DAPI", "CK", "CD45", named]})
        assert lab.channel_indices(scan) == [0, 1, 2, 3], named
    assert Panel.from_dict({"channels": ["DAPI", "CK", "HER2-PE", "HER2-FITC"]}).index_of(
        "HER2") is None  # (two: which one, no name says)
    # A number after a marker's name is its identity, not a wavelength: IL-8 is no IL-6.
    for model, data in (("IL-6", "IL-8"), ("Ki-67", "Ki-76"), ("CD-45", "CD-61")):
        lab = Panel.from_dict({"channels": ["DAPI", "CK", "CD66b", model]})
        scan = Panel.from_dict({"channels": ["DAPI", "CK", "CD66b", data]})
        assert lab.index_of(data) is None and scan.index_of(model) is None, (model, data)


@pytest.mark.parametrize("bad", [
    {"channels": ["DAPI", "CK"]},                         # too few
    {"channels": ["A", "B", "C", "D", "E", "F", "G"]},    # too many
    {"channels": ["DAPI", "dapi", "CK"]},                 # duplicates
    {"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 40},
    {"channels": [{"name": "DAPI", "normalisation": {"method": "zscore"}}, "CK", "CD45"]},
    {"name": "no channels"},
    {"channels": ["DAPI", "CK", {"name": "CD45", "leaks_in": {"CD61": 0.3}}]},  # no CD61
    {"channels": ["DAPI", "CK", {"name": "CD45", "leaks_in": {"CD45": 0.3}}]},  # itself
    {"channels": ["DAPI", "CK", {"name": "CD45", "leaks_in": {"CK": 1.5}}]},    # not a share
    {"channels": ["DAPI", "CK", {"name": "CD45", "leaks_in": {"CK": "30 %"}}]},
    {"channels": ["DAPI", "CK", {"name": "CD45", "leaks_in": [0.3]}]},
])
def test_bad_panels_are_refused(bad):
    with pytest.raises(InputError):
        load_panel(bad)


def test_known_leaks_travel_with_the_panel_and_only_when_stated():
    panel = load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.64})
    assert all("leaks_in" not in c for c in panel.to_dict()["channels"])  # files unchanged
    leaky = panel.with_leaks("CK", {"CD45": 0.31}).with_leaks("DAPI", {"CD45": 0.05})
    assert leaky.channels[2].leaks_in == {"CK": 0.31, "DAPI": 0.05}
    assert leaky.channels[1].leaks_in == {} and panel.channels[2].leaks_in == {}
    again = load_panel(json.loads(json.dumps(leaky.to_dict())))
    assert again == leaky and again != panel


def test_panel_mismatch_names_the_problem():
    model_panel = default_panel()
    swapped = Panel.from_dict({"channels": ["CK", "DAPI", "CD45", "CD61", "CD66b"]})
    with pytest.raises(PanelMismatchError, match="another order"):
        model_panel.check_matches(swapped)
    model_panel.check_matches(Panel.from_dict({"channels": ["dapi", "ck", "cd45", "cd61",
                                                            "cd66b"]}))


CHANNEL = st.one_of(
    st.sampled_from(["DAPI", "CK", "CD45", "CD61"]),
    st.fixed_dictionaries({"name": st.sampled_from(["DAPI", "CK", "CD45", "VIM"]) | JSON_VALUES},
                          optional={"value_range": JSON_VALUES, "normalisation": JSON_VALUES |
                                    st.fixed_dictionaries({"method": st.sampled_from(
                                        ["snr", "fixed", "zscore"])}, optional={
                                        "softness": JSON_VALUES, "sample_step": JSON_VALUES,
                                        "compression": JSON_VALUES})}),
    JSON_VALUES)


GOOD_PANELS = st.fixed_dictionaries({
    "channels": st.lists(st.sampled_from(["CK", "CD45", "CD61", "VIM"]), min_size=2, max_size=4,
                         unique=True).map(lambda others: ["DAPI", *others]),
    "pixel_size_um": st.floats(0.2, 2.0)})
FUZZED = {"channels": st.lists(CHANNEL, min_size=0, max_size=5) | JSON_VALUES,
          "pixel_size_um": JSON_VALUES | st.floats(0.01, 10), "name": JSON_VALUES}


@FUZZ
@given(st.one_of(
    st.fixed_dictionaries({"channels": FUZZED["channels"]},
                          optional={k: FUZZED[k] for k in ("pixel_size_um", "name")}),
    # a good panel, or one with a value fuzzed: some are read, so not every input is refused
    st.tuples(GOOD_PANELS, st.sampled_from(sorted(FUZZED)).flatmap(
        lambda key: st.fixed_dictionaries({}, optional={key: FUZZED[key]}))).map(
            lambda good_fuzzed: {**good_fuzzed[0], **good_fuzzed[1]})))
def test_panel_json_values_are_checked(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("panel") / "panel.json"
    path.write_text(json.dumps(data))
    try:
        panel = load_panel(path)
    except InputError:
        reject()  # (hypothesis fails a test whose inputs are all refused)
    assert 3 <= panel.num_channels <= 6
    lo_um, hi_um = PIXEL_SIZE_RANGE_UM
    assert lo_um <= panel.pixel_size_um <= hi_um
    for c in panel.channels:
        lo, hi = c.value_range
        assert math.isfinite(lo) and math.isfinite(hi) and hi > lo
        assert isinstance(c.normalisation, dict)


RGB_ORDER = ["CK", "CD45", "DAPI"]  # R, G, B as published composites show them


# --- panels: composites, pixel sizes, channels by name --------------------------------------------

@pytest.mark.parametrize("bad", [
    {"channels": ["DAPI", "CK", "CD45", "CD61"], "composite": "rgb"},  # a plane per channel
    {"channels": RGB_ORDER, "composite": "cmyk"},
    {"channels": RGB_ORDER, "pixel_size_um": 0.001},                     # nm written as um
    {"channels": RGB_ORDER, "pixel_size_um": "fine"},
])
def test_bad_composite_panels_are_refused(bad):
    with pytest.raises(InputError):
        load_panel(bad)


def test_viewer_pixel_sizes_are_accepted():
    for um in (0.02, 0.1, 2.0):
        assert load_panel({"channels": RGB_ORDER, "pixel_size_um": um}).pixel_size_um == um


# --- panel.json saved by an older editor (Latin-1) ----------------------------------------------

def test_a_latin1_panel_json_is_read_as_written_with_a_warning_naming_it(tmp_path, caplog):
    """A panel or channel name with an accent saved as Latin-1 (an older editor): read as its
    author typed it, with a warning naming the file; never a UnicodeDecodeError."""
    path = tmp_path / "panel.json"
    data = {"name": "Müller", "pixel_size_um": 0.64,
            "channels": ["DAPI", "CK", "CD45", "Vimentín"]}
    path.write_bytes(json.dumps(data, ensure_ascii=False).encode("latin-1"))
    with caplog.at_level("WARNING", logger="ctcnet.io.metadata_text"):
        panel = load_panel(path)
    assert panel.name == "Müller" and panel.names[3] == "Vimentín"
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and str(path) in said[0] and "not UTF-8" in said[0], said
    # UTF-8 with a byte-order mark (Notepad's "UTF-8") is UTF-8: read without a word.
    caplog.clear()
    path.write_bytes(json.dumps(data, ensure_ascii=False).encode("utf-8-sig"))
    with caplog.at_level("WARNING", logger="ctcnet.io.metadata_text"):
        assert load_panel(path).name == "Müller"
    assert not caplog.records
    # Notepad's "Unicode" is UTF-16 with its byte-order mark: read as written, without a word.
    for encoding in ("utf-16", "utf-16-be"):
        text = json.dumps(data, ensure_ascii=False)
        path.write_bytes(("\ufeff" + text).encode(encoding) if encoding.endswith("be")
                         else text.encode(encoding))
        with caplog.at_level("WARNING", logger="ctcnet.io.metadata_text"):
            assert load_panel(path).name == "Müller"
        assert not caplog.records


def test_a_latin1_panel_json_of_a_crop_folder_and_a_cartridge_is_read(crops, cart, caplog):
    """``ctcnet evaluate`` reads a crop folder's panel.json, predict a cartridge's: both read
    a Latin-1 one (both once raised UnicodeDecodeError)."""
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.io.scan import open_cartridge

    for folder in (crops, cart):
        data = json.loads((folder / "panel.json").read_text())
        data["name"] = "Référence"
        (folder / "panel.json").write_bytes(json.dumps(data, ensure_ascii=False)
                                            .encode("latin-1"))
    assert read_crop_index(crops).panel.name == "Référence"
    assert open_cartridge(cart).panel.name == "Référence"


def test_a_pixel_size_in_nm_or_mm_is_said_in_um():
    """A scanner's XML gives nm (or mm): the refusal says what the number is in um."""
    from ctcnet.detect.pixel_size import pixel_size_option

    with pytest.raises(InputError, match=r"in nm\? that is 0\.5321 um per pixel"):
        load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 532.1})
    with pytest.raises(InputError, match=r"in mm\? that is 0\.64 um per pixel"):
        load_panel({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.00064})
    with pytest.raises(ValueError, match=r"in nm\? that is 0\.64 um per pixel"):
        pixel_size_option("640")
    # The option's bounds are panel.json's (it took 0.005, which panel.json then refused),
    # and a decimal comma is named.
    with pytest.raises(ValueError, match=r"not a plausible pixel size \(0\.01 to 5\)"):
        pixel_size_option("0.005")
    with pytest.raises(ValueError, match=r"\(a decimal point: 0\.64\?\)"):
        pixel_size_option("0,64")


@pytest.mark.parametrize("value_range", [[-100, 4095], [-32768, 32767], [0, 1e300]])
def test_a_value_range_no_camera_has_is_refused(value_range):
    """A negative low end or a top past float32's largest was read on (a 1e300 top with numpy's
    overflow warnings): refused, naming the channel."""
    from ctcnet.io.panel import Panel

    def panel(ck_range):
        return {"pixel_size_um": 0.64, "channels": [
            {"name": "DAPI"}, {"name": "CK", "value_range": ck_range}, {"name": "CD45"}]}

    with pytest.raises(InputError, match="channel CK: value_range .* is no camera's"):
        Panel.from_dict(panel(value_range))
    Panel.from_dict(panel([0, 65535]))


def test_a_channel_read_under_its_dye_name_keeps_the_value_range_the_data_states():
    """A 12-bit camera's counts stored x16, its panel naming the dyes (Hoechst, PanCK-PE,
    CD45-APC) and stating 0-65535: the model reads each under its own name, and its
    saturation too (matched by name alone, the model's 0-4095 stayed: every bright pixel read
    as saturated, and 2 of a cartridge's 19 CTCs went uncounted)."""
    from ctcnet.io.panel import Panel

    model = Panel.from_dict({"pixel_size_um": 0.64, "channels": [
        {"name": "DAPI", "value_range": [0, 4095]}, {"name": "CK", "value_range": [0, 4095]},
        {"name": "CD45", "value_range": [0, 4095]}]})
    data = Panel.from_dict({"pixel_size_um": 0.33, "channels": [
        {"name": "Hoechst", "value_range": [0, 65535]}, "EpCAM",
        {"name": "PanCK-PE", "value_range": [0, 65535]}, {"name": "CD45-APC",
                                                          "value_range": [0, 60000]}]})
    read = model.with_value_ranges_of(data)
    assert [c.value_range for c in read.channels] == [(0, 65535), (0, 65535), (0, 60000)]
    assert read.names == model.names
    assert read.saturation_levels.tolist() == pytest.approx([65469.465, 65469.465, 59940.0])
    # wider_only (crop sets' display ranges) keeps the model's where the data's is narrower.
    narrow = Panel.from_dict({"pixel_size_um": 0.33, "channels": [
        {"name": "Hoechst", "value_range": [0, 255]}, "CK", "CD45"]})
    assert [c.value_range for c in model.with_value_ranges_of(narrow, wider_only=True)
            .channels] == [(0, 4095)] * 3


def test_two_planes_read_as_one_marker_the_model_reads_are_refused_naming_them():
    """A therapy plane named CK beside the scan's CK-PE: the model read "CK" by its name and
    measured the real CK as an extra plane (a count of 13 CTCs for 27, and the run ok). Two
    planes alike by the marker the model lacks are named too (it said only "lacks CK")."""
    model = Panel.from_dict({"channels": ["DAPI", "CK", "CD45"]})
    scan = Panel.from_dict({"channels": ["CK", "DAPI", "CK-PE", "CD45-APC"]})
    with pytest.raises(PanelMismatchError, match=r"names two planes of one marker the model "
                                                 r"reads \(CK and CK-PE both read as CK;"):
        model.channel_indices(scan, "cartridge S1")
    both = Panel.from_dict({"channels": ["DAPI", "CK-PE", "CD45-APC", "CK-FITC"]})
    with pytest.raises(PanelMismatchError, match=r"lacks \['CK'\] \(it has .*; CK-PE and "
                                                 r"CK-FITC both read as CK: name the one"):
        model.channel_indices(both, "cartridge S1")
    # A plane of another marker, or of a marker the model does not read, is measured.
    fine = Panel.from_dict({"channels": ["DAPI", "CK-PE", "CD45-APC", "HER2-FITC", "CD61"]})
    assert model.channel_indices(fine, "cartridge S1") == [0, 1, 2]


# --- keys: a camera's bit depth, slips refused ----------------------------------------------------

def test_a_panel_wide_bit_depth_sets_every_channel_range_a_channel_does_not_state(tmp_path):
    """A 14-bit lab writes "bit_depth": 14 once, not [0, 16383] per channel; a channel's own
    value_range or bit_depth wins, and the two disagreeing in one channel is refused."""
    path = tmp_path / "panel.json"
    path.write_text(json.dumps({"pixel_size_um": 0.5, "bit_depth": 14, "channels": [
        "DAPI", {"name": "CK", "value_range": [0, 65535]}, {"name": "CD45", "bit_depth": 12}]}))
    panel = load_panel(path)
    assert [c.value_range for c in panel.channels] == [(0, 16383), (0, 65535), (0, 4095)]
    # The spec a model or run records holds the ranges themselves: read back the same.
    assert Panel.from_dict(panel.to_dict()) == panel
    for bad, said in [({"bit_depth": 13.5}, "whole number of bits"),
                      ({"bit_depth": 20}, "8 to 16"), ({"bit_depth": True}, "bit_depth"),
                      ({"channels": ["DAPI", {"name": "CK", "bit_depth": 14,
                                              "value_range": [0, 4095]}, "CD45"]},
                       "not bit_depth 14's [0, 16383]")]:
        path.write_text(json.dumps({"pixel_size_um": 0.5, "channels": ["DAPI", "CK", "CD45"],
                                    **bad}))
        with pytest.raises(InputError, match=re.escape(said)):
            load_panel(path)


@pytest.mark.parametrize("slip, meant", [
    ({"pixel_size": 0.5}, "pixel_size_um"), ({"Pixel_Size_um": 0.5}, "pixel_size_um"),
    ({"pixel_size_nm": 500}, "pixel_size_um"), ({"bitdepth": 14}, "bit_depth"),
    ({"bit-depth": 14}, "bit_depth"),
])
def test_a_misspelt_panel_key_is_refused_naming_the_key_meant(tmp_path, slip, meant):
    """Passed over, "pixel_size" was refused as a panel without a pixel size, and "bitdepth"
    left 12 bits in force (every frame of a 14-bit scan skipped as out of range)."""
    path = tmp_path / "panel.json"
    path.write_text(json.dumps({"channels": ["DAPI", "CK", "CD45"], **slip,
                                **({} if meant == "pixel_size_um" else {"pixel_size_um": 0.5})}))
    with pytest.raises(InputError, match=f"key '{next(iter(slip))}' is not read "
                                         rf"\(did you mean '{meant}'\?\)"):
        load_panel(path)


def test_a_misspelt_channel_key_is_refused_and_a_labs_own_keys_are_left_alone(tmp_path):
    path = tmp_path / "panel.json"
    for slip in ({"value-range": [0, 16383]}, {"normalization": {"method": "snr"}},
                 {"leak_in": {"CK": 0.1}}):
        path.write_text(json.dumps({"pixel_size_um": 0.5, "channels": [
            "DAPI", {"name": "CK", **slip}, "CD45"]}))
        with pytest.raises(InputError, match=f"channel CK: key '{next(iter(slip))}' is not "
                                             "read"):
            load_panel(path)
    path.write_text(json.dumps({"pixel_size_um": 0.5, "scanner": "CellTracks", "notes": "x",
                                "channels": ["DAPI", {"name": "CK", "antibody": "C11"},
                                             "CD45"]}))
    assert load_panel(path).names == ["DAPI", "CK", "CD45"]


def test_a_crop_folders_misspelt_pixel_size_is_refused_as_a_slip_not_a_size_left_out(crops):
    """A crop folder may leave its pixel size out (given on the command line); one written
    as "pixel_size" is a slip, refused naming the key, not read as none stated."""
    from ctcnet.detect.crop_dataset import read_crop_index

    panel = json.loads((crops / "panel.json").read_text())
    panel["pixel_size"] = panel.pop("pixel_size_um")
    (crops / "panel.json").write_text(json.dumps(panel))
    with pytest.raises(InputError, match=r"key 'pixel_size' is not read \(did you mean "
                                         r"'pixel_size_um'\?\)"):
        read_crop_index(crops)


@pytest.mark.parametrize("name, role", [
    ("Hoechst33342", "nucleus"), ("DAPI405", "nucleus"), ("canine CD45", "leukocyte"),
    ("anti-human CD45-APC", "leukocyte"), ("CD45 (canine)", "leukocyte"),
    ("mouse anti-CK", "epithelial"),
    # a CD's number is its identity; a species alone names no marker
    ("CD4", "unknown"), ("CD451", "unknown"), ("canine", "unknown"), ("mouse IgG", "unknown"),
])
def test_a_markers_species_or_its_dyes_number_run_on_still_names_it(name, role):
    """A veterinary lab's "canine CD45" and a "Hoechst33342" were channels of unknown role:
    the model's CD45 and DAPI reported missing."""
    assert marker_role(name) == role


def test_a_data_folders_leaks_are_said_not_read(tmp_path, caplog):
    """A lab wrote its spillover matrix into the scans' panel.json: checked, then ignored
    without a word (the guard allows the model's leaks). Said once per file."""
    import logging

    from ctcnet.io.data_panel_leaks import said_unread_leaks

    panel = load_panel({"channels": ["DAPI", "CK", {"name": "CD45", "leaks_in": {"CK": 0.3}}]})
    with caplog.at_level(logging.WARNING, logger="ctcnet.io"):
        assert said_unread_leaks(panel, tmp_path / "a.json") is panel
        said_unread_leaks(panel, tmp_path / "a.json")
        said_unread_leaks(load_panel({"channels": ["DAPI", "CK", "CD45"]}), tmp_path / "b")
    assert caplog.text.count("is not read from a data folder's panel.json") == 1
    assert "CD45 {'CK': 0.3}" in caplog.text
