"""ctcnet.detect.metadata_signs: a scan whose planes are in another order than panel.json says
(the nucleus in another plane than DNA's; CD66b lit without CD45 on more nucleated events than
CD45 without CD66b), or whose stated pixel size its nuclei belie, is a problem of the sample
(a warning on a crop folder), and a scan as stated is not."""

import json
import shutil

import numpy as np
import pytest
from conftest import save_tiny_model

import ctcnet.detect.metadata_signs as metadata_signs
from ctcnet.detect.metadata_signs import (
    MIN_ALONE,
    MIN_NUCLEI,
    MIN_NUCLEUS_VOTES,
    frame_signs,
    metadata_problems,
)
from ctcnet.io.panel import load_panel

PX = 0.64
SIDE = 80


def _disc(r_um, value, ring_from_um=None):
    yy, xx = np.mgrid[:SIDE, :SIDE]
    r = np.hypot(yy - (SIDE - 1) / 2, xx - (SIDE - 1) / 2) * PX
    inside = r <= r_um if ring_from_um is None else (r <= r_um) & (r >= ring_from_um)
    return np.where(inside, value, 0.0)


def _leukocyte(neutrophil: bool, faint_ck: bool, rng) -> np.ndarray:
    """A (5, H, W) crop of the default panel (DAPI, CK, CD45, CD61, CD66b): a nucleus inside a
    CD45 membrane, for a neutrophil CD66b over the cell, on some faint non-specific CK, on a
    background with noise."""
    planes = np.zeros((5, SIDE, SIDE))
    planes[0] = _disc(3.5, 900.0)
    planes[2] = _disc(6.0, 400.0, ring_from_um=4.5)
    if neutrophil:
        planes[4] = _disc(6.0, 300.0)
    if faint_ck:
        planes[1] = _disc(6.0, 60.0)
    return planes + 100.0 + rng.normal(0, 4.0, planes.shape)


@pytest.fixture(scope="module")
def leukocytes():
    """60 leukocytes: 20 neutrophils, 20 with faint CK."""
    rng = np.random.default_rng(0)
    return np.stack([_leukocyte(i % 3 == 0, i % 3 == 1, rng)
                     for i in range(60)]).astype(np.float32)


@pytest.fixture
def every_event_read(monkeypatch):
    """Each frame's events read up to CHECK_EVENTS (a small test frame's share is a few)."""
    monkeypatch.setattr(metadata_signs, "CHECK_SHARE", 1.0)


def test_ctcs_whose_cd66b_a_leak_lights_are_no_sign_of_swapped_leukocyte_markers(
        leukocytes, every_event_read):
    """A folder of CTC candidates (CK bright, no CD45, CD66b lit faintly by a leak or a sticky
    antibody) read "12 nucleated crops are lit in CD66b without CD45 ... swapped?", and a lab
    that "fixed" panel.json would have broken every call."""
    rng = np.random.default_rng(1)
    ctcs = []
    for _ in range(40):
        planes = np.zeros((5, SIDE, SIDE))
        planes[0] = _disc(4.0, 900.0)
        planes[1] = _disc(7.0, 1500.0)
        planes[4] = _disc(7.0, 250.0)  # CD66b: a sixth of CK's
        ctcs.append(planes + 100.0 + rng.normal(0, 4.0, planes.shape))
    panel = load_panel(None)
    signs = frame_signs(np.concatenate([np.stack(ctcs), leukocytes[:3]]).astype(np.float32),
                        panel, PX, 1)
    assert signs["lit"][4] >= 40  # the CTCs light CD66b...
    assert signs["neutrophil_alone"] == 0  # ...and are not read as lone neutrophils
    assert metadata_problems([signs], panel, PX, "crops", whole_sample=False)[0] == []


def test_signs_of_a_frame_in_its_order_and_swapped(leukocytes, every_event_read):
    panel = load_panel(None)
    assert panel.names == ["DAPI", "CK", "CD45", "CD61", "CD66b"]
    signs = frame_signs(leukocytes, panel, PX, 1)
    diameters = signs["nucleus_um"]
    assert len(diameters) == 60 and 6.0 < np.median(diameters) < 8.0  # drawn 7 um across
    assert 6.0 < np.median(signs["own_nucleus_um"]) < 8.0  # alone, at its own half-peak too
    assert {k: v for k, v in signs.items()
            if k not in ("nucleus_um", "own_nucleus_um", "offset_um")} == {
        "read": 60, "lit": [60, 20, 60, 0, 20], "nucleus": [60, 0, 0, 0, 0],
        "neutrophil_alone": 0, "leukocyte_alone": 40}
    problems, record = metadata_problems([signs, None], panel, PX)
    assert problems == []
    # Each lit plane's centre on the nucleus's: in register.
    assert set(record["median_offset_um"]) == {"CK", "CD45", "CD66b"}
    assert all(abs(m["dx"]) < 0.1 and abs(m["dy"]) < 0.1
               for m in record["median_offset_um"].values())
    # The same frames written DAPI <-> CK, or CD45 <-> CD66b: each said, by name.
    dna_swapped = frame_signs(leukocytes[:, [1, 0, 2, 3, 4]], panel, PX, 1)
    assert dna_swapped["nucleus"] == [0, 60, 0, 0, 0]
    problems, record = metadata_problems([dna_swapped], panel, PX)
    assert len(problems) == 1 and "\n" not in problems[0]
    assert problems[0].startswith("the nucleus lies in the CK plane on 60 of the 60 events that "
                                  "show one, in DAPI's on 0: are DAPI and CK swapped?")
    assert record["nucleus_by_plane"] == {"DAPI": 0, "CK": 60, "CD45": 0, "CD61": 0,
                                          "CD66b": 0}
    markers_swapped = frame_signs(leukocytes[:, [0, 1, 4, 3, 2]], panel, PX, 1)
    assert markers_swapped["lit"] == [60, 20, 20, 0, 60]
    assert markers_swapped["neutrophil_alone"] == 40 and markers_swapped["leukocyte_alone"] == 0
    problems, record = metadata_problems([markers_swapped], panel, PX)
    assert len(problems) == 1 and problems[0].startswith(
        "40 nucleated events are lit in CD66b without CD45, 0 in CD45 without CD66b")
    assert "are CD45 and CD66b swapped?" in problems[0]
    assert record == {"events_read": 60,
                      "lit_by_plane": {"DAPI": 60, "CK": 20, "CD45": 20, "CD61": 0,
                                       "CD66b": 60},
                      "events_with_a_nucleus": 60,
                      "nucleus_by_plane": {"DAPI": 60, "CK": 0, "CD45": 0, "CD61": 0, "CD66b": 0},
                      "neutrophil_alone": 40, "leukocyte_alone": 0, "nuclei_measured": 60,
                      "nucleus_median_um": round(float(np.median(diameters)), 2),
                      "own_nucleus_median_um": round(
                          float(np.median(markers_swapped["own_nucleus_um"])), 2),
                      "pixel_size_judged": record["pixel_size_judged"],
                      "median_offset_um": record["median_offset_um"]}
    # A frame's share of the cartridge's CHECK_EVENTS, spread over it; none on crops too small
    # to show a cell and background round it, or on a frame without events.
    assert frame_signs(leukocytes, panel, PX, 30)["read"] == 5
    assert frame_signs(leukocytes[:, :, 25:55, 25:55], panel, PX, 1) is None  # 19 um
    assert frame_signs(leukocytes[:0], panel, PX, 1) is None


def test_a_frame_reads_its_share_unless_its_first_events_look_described_otherwise(
        leukocytes):
    # About CHECK_EVENTS a cartridge spread over its frames, one a frame at least, and
    # CHECK_SHARE of a frame's events at most, where they look as a scan in its order does (a
    # short cartridge's check stays small: 0.3 s more doubled the guard's stage)...
    panel = load_panel(None)
    assert frame_signs(leukocytes, panel, PX, 175)["read"] == 1
    lit_ck = leukocytes.copy()
    lit_ck[:, 1] += _disc(7.0, 1500.0)  # (CK lit on every event, as some of a sample's are)
    assert frame_signs(lit_ck, panel, PX, 5)["read"] == \
        int(np.ceil(metadata_signs.CHECK_SHARE * 60))
    # ... but CHECK_MIN_EVENTS a cartridge where the first look otherwise: CK lit on none (a
    # lamp that failed: 3 frames read 21-33 events, and 0 of 30 CTCs counted read "ok"), the
    # nucleus in another plane (at 3 %, 5 frames read 45 events and DAPI and CK swapped went
    # unsaid); CD66b alone as often as CD45 alone too (tested on cartridges).
    assert frame_signs(leukocytes, panel, PX, 5)["read"] == metadata_signs.CHECK_MIN_EVENTS // 5
    swapped = lit_ck[:, [1, 0, 2, 3, 4]]
    signs = frame_signs(swapped, panel, PX, 5)
    assert signs["read"] == metadata_signs.CHECK_MIN_EVENTS // 5 and signs["nucleus"][1] > 10
    assert frame_signs(swapped, panel, PX, 1)["read"] == 60  # all it holds


def test_too_few_signs_or_a_panel_without_the_markers_judge_nothing():
    panel = load_panel(None)
    few = {"nucleus": [0, MIN_NUCLEUS_VOTES - 1, 0, 0, 0], "neutrophil_alone": MIN_ALONE - 1,
           "leukocyte_alone": 0, "nucleus_um": [3.0] * (MIN_NUCLEI - 1)}
    assert metadata_problems([few], panel, PX)[0] == []
    # The signs of frames add up over the cartridge.
    assert len(metadata_problems([few, few], panel, PX)[0]) == 3
    # Close votes are not a swap: the DNA plane must be outvoted by half again.
    close = {"nucleus": [30, 40, 0, 0, 0], "neutrophil_alone": 20, "leukocyte_alone": 11}
    assert metadata_problems([close], panel, PX)[0] == []
    # Nor are 10 neutrophil-marker-alone events against 5 (a correct simulated scan's).
    assert metadata_problems([{"neutrophil_alone": 10, "leukocyte_alone": 5}], panel,
                             PX)[0] == []
    # A three-channel panel (no neutrophil marker): the nucleus judged alone.
    core3 = panel.subset([0, 1, 2])
    assert metadata_problems([{"nucleus": [40, 0, 0]}], core3, PX)[0] == []
    said = metadata_problems([{"nucleus": [0, 40, 0]}], core3, PX)[0]
    assert len(said) == 1 and "are DAPI and CK swapped?" in said[0]
    # Signs of another panel's frames (a journal of another run) are not summed.
    assert metadata_problems([{"nucleus": [0, 40, 0]}], panel, PX)[1]["events_with_a_nucleus"] \
        == 0


@pytest.mark.parametrize("dark", ["DAPI", "CD45", "CK"])
def test_a_dark_plane_is_said_and_not_read_as_a_swap(leukocytes, dark, every_event_read):
    """A channel that failed (its plane the camera's dark noise): DNA lights every cell's
    nucleus, CD45 every leukocyte and CK some cells faintly, so such a plane lighting almost
    no event (CK: none) is said as such, not as the swap its missing nuclei or leukocytes
    would otherwise suggest."""
    panel = load_panel(None)
    k = panel.names.index(dark)
    crops = leukocytes.copy()
    crops[:, k] = 100.0 + np.random.default_rng(1).normal(0, 4.0, crops[:, k].shape)
    signs = frame_signs(crops, panel, PX, 1)
    assert signs["lit"][k] == 0
    problems, record = metadata_problems([signs], panel, PX)
    assert record["lit_by_plane"][dark] == 0
    assert len(problems) == 1 and problems[0].startswith(
        f"{dark} lights 0 of the 60 events read, where a blood sample lights the DNA stain "
        "and CD45 on most and CK on some: a channel that failed")
    assert "swapped" not in problems[0]
    # Crops someone chose (a folder of CTCs shows no CD45): no plane is judged dark.
    chosen = metadata_problems([signs], panel, PX, "crops", whole_sample=False)[0]
    assert not any(line.startswith(f"{dark} lights") for line in chosen)
    # Too few events read to say a plane is dark.
    few = metadata_problems([{**signs, "read": metadata_signs.MIN_READ - 1}], panel, PX)[0]
    assert not any(line.startswith(f"{dark} lights") for line in few)


@pytest.mark.parametrize(("plane", "shift_px", "said"), [("CK", 3, True), ("CD45", -3, True),
                                                         ("CK", 0, False)])
def test_a_plane_out_of_register_is_said(leukocytes, plane, shift_px, said, every_event_read):
    """A plane shifted against the others (a filter or stage shift between exposures): its
    centre lies off the nucleus's on every cell alike, and the median says so."""
    panel = load_panel(None)
    k = panel.names.index(plane)
    crops = leukocytes.copy()
    crops[:, k] = np.roll(crops[:, k], shift_px, axis=2)
    problems, record = metadata_problems([frame_signs(crops, panel, PX, 1)], panel, PX)
    offset = record["median_offset_um"][plane]
    assert offset["dx"] == pytest.approx(shift_px * PX, abs=0.15) and abs(offset["dy"]) < 0.15
    assert len(problems) == said
    if said:
        assert problems[0].startswith(f"{plane} {abs(shift_px) * PX:.1f} um off DAPI's centre")
        assert "out of register" in problems[0]


@pytest.mark.parametrize(("median", "said"), [(4.4, True), (4.95, True), (5.5, False),
                                              (9.3, False), (13.2, False), (15.0, True)])
def test_nuclei_of_no_nucleus_size_say_the_pixel_size_is_wrong(median, said):
    """Half a coarse scan's pixel size (1.3 um/px stated 0.65) read its nuclei 4.95 um and was
    not said; a suggestion from nuclei read too small is a floor ("at least")."""
    panel = load_panel(None)
    signs = {"nucleus": [0] * 5, "nucleus_um": [median] * MIN_NUCLEI}
    problems, record = metadata_problems([signs], panel, 0.5)
    assert record["nuclei_measured"] == MIN_NUCLEI and record["nucleus_median_um"] == median
    assert record["pixel_size_judged"]
    assert len(problems) == said
    # Too few nuclei to judge (a small scan): not judged, and the record says so.
    few = {**signs, "nucleus_um": [median] * (MIN_NUCLEI - 1)}
    unjudged = metadata_problems([few], panel, 0.5)
    assert not unjudged[1]["pixel_size_judged"] and not unjudged[0]
    if said:
        suggested = 0.5 * metadata_signs.SCAN_NUCLEUS_UM / median
        assert problems[0].startswith(f"the nuclei of the events read {median:.1f} um across "
                                      f"(median of {MIN_NUCLEI}) at the stated pixel size of "
                                      "0.5 um")
        assert f"suggest {'at least ' * (median < 5.4)}about {suggested:.2g}" in problems[0]
        assert ("binned 2 x 2" in problems[0]) == (median < 5)
    # Each crop given its own scale (--pixel-size fit): nothing stated to judge.
    assert metadata_problems([signs], panel, None)[0] == []


@pytest.mark.parametrize(("own", "said"), [(6.7, False), (5.8, True), (None, True)])
def test_small_nuclei_of_a_crowded_frame_are_read_at_their_own_peak(own, said):
    """A crowded frame, its pixel size right: each crop's brightest neighbour cut its nucleus
    at more than half its own peak (4.2 um median), and "is that pixel size right?" made a
    DLA lab's dense scans partial; at their own peak they read 6.7. Half a pixel size reads
    small both ways; a journal written before the own peak was kept judges as before."""
    panel = load_panel(None)
    signs = {"nucleus": [0] * 5, "nucleus_um": [4.2] * MIN_NUCLEI,
             **({} if own is None else {"own_nucleus_um": [own] * MIN_NUCLEI})}
    problems, record = metadata_problems([signs], panel, 0.64)
    assert record["own_nucleus_median_um"] == own
    assert bool(problems) == said and all("pixel size right" in p for p in problems)


def test_own_peak_reads_a_nucleus_beside_a_brighter_neighbour_whole():
    """The central nucleus beside a neighbour four times as bright: at the crop's half-peak it
    vanished under the cut and the neighbour was measured in its place; at its own it reads
    as it does alone."""
    from ctcnet.detect.pixel_size import nucleus_diameter_of, own_nucleus_diameter_of

    yy, xx = np.mgrid[:80, :80].astype(np.float32)

    def nucleus(x, peak):
        return peak * np.exp(-((yy - 39.5) ** 2 + (xx - x) ** 2) / (2 * 4.0 ** 2))

    alone = own_nucleus_diameter_of(nucleus(39.5, 100), 1.0)
    assert alone == pytest.approx(nucleus_diameter_of(nucleus(39.5, 100), 1.0))
    crowded = nucleus(39.5, 100) + nucleus(70, 400)
    assert own_nucleus_diameter_of(crowded, 1.0) == pytest.approx(alone, rel=0.02)
    assert nucleus_diameter_of(crowded, 1.0) == pytest.approx(
        nucleus_diameter_of(nucleus(70, 400), 1.0), rel=0.02)  # the neighbour's


@pytest.mark.parametrize("swap", [None, ("DAPI", "CK"), ("CD45", "CD66b"), "half pixel",
                                  ("Hoechst", "CK")])
def test_a_simulated_scan_misdescribed_is_partial(tmp_path_factory, swap, every_event_read):
    """The simulator's cartridge (default panel) predicted as it is: no problem of its
    metadata; with panel.json naming two planes in the other's place, or stating half its
    pixel size (a frame binned 2 x 2, the size not doubled): a problem (the sample is partial)
    that says which, and summary.json's metadata_check."""
    from ctcnet.inference.backends import load_backend
    from ctcnet.inference.predict import PredictOptions, predict_cartridge
    from ctcnet.simulate import simulate_cartridge

    root = tmp_path_factory.getbasetemp() / "metadata_signs"
    if not (root / "cart").exists():
        simulate_cartridge(root / "cart", load_panel(None), num_frames=2,
                           frame_shape=(420, 560), seed=11, events_per_frame=110,
                           sample_id="S1")
        save_tiny_model(root / "model.pt", crop_size=SIDE)
    cart = tmp_path_factory.mktemp("cart") / "cart"
    shutil.copytree(root / "cart", cart)
    panel = json.loads((cart / "panel.json").read_text())
    if swap and swap[0] == "Hoechst":  # another DNA stain's name: the problem uses the panel's
        for channel in panel["channels"]:
            channel["name"] = "Hoechst" if channel["name"] == "DAPI" else channel["name"]
    if swap == "half pixel":
        panel["pixel_size_um"] /= 2
    elif swap:
        for channel in panel["channels"]:
            channel["name"] = {swap[0]: swap[1], swap[1]: swap[0]}.get(channel["name"],
                                                                       channel["name"])
    (cart / "panel.json").write_text(json.dumps(panel))
    summary = predict_cartridge(cart, load_backend(root / "model.pt", device="cpu"),
                                cart.parent / "out",
                                PredictOptions(quiet=True, workers=0, report=False))
    said = [p for p in summary.problems if "(metadata_check)" in p]
    assert summary.metadata_check["events_with_a_nucleus"] >= MIN_NUCLEUS_VOTES
    if swap is None:
        assert said == []  # (an untrained model's calls may make it partial otherwise)
        assert 5.0 < summary.metadata_check["nucleus_median_um"] < 14.0
    else:
        assert len(said) == 1
        assert ("is that pixel size right" if swap == "half pixel"
                else f"are {swap[0]} and {swap[1]} swapped?") in said[0]
        assert summary.status == "partial"
        on_disk = json.loads((cart.parent / "out" / "summary.json").read_text())
        assert on_disk["metadata_check"] == summary.metadata_check


@pytest.mark.parametrize("order", [None, [1, 0, 2, 3, 4], [0, 1, 4, 3, 2], "half pixel"])
def test_a_raw_crop_folder_misdescribed_is_warned_of(leukocytes, tmp_path, caplog, order):
    """Raw crops in TIFFs that store no channel names, read in panel.json's order: written in
    another, or stated at half their pixel size, one warning saying which; as stated,
    none."""
    import tifffile

    from ctcnet.detect.crop_dataset import load_crops, read_crop_index

    panel = load_panel(None).with_pixel_size(PX / 2 if order == "half pixel" else PX)
    (tmp_path / "wbc").mkdir()
    (tmp_path / "panel.json").write_text(json.dumps(panel.to_dict()))
    written = leukocytes if order in (None, "half pixel") else leukocytes[:, order]
    for i, crop in enumerate(written):
        tifffile.imwrite(tmp_path / "wbc" / f"{i:03d}.tif", crop.astype(np.uint16),
                         metadata=None)
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        load_crops(read_crop_index(tmp_path), SIDE)
    said = [r.getMessage() for r in caplog.records if "Check panel.json" in r.getMessage()
            or "pixel size right" in r.getMessage()]
    if order is None:
        assert said == []
    elif order == "half pixel":
        assert len(said) == 1 and said[0].startswith(
            f"crop dataset {tmp_path}: the nuclei of the crops read 3.")
        # predict keeps it in the folder's summary.json and on its page, not the console alone
        from ctcnet.inference.backends import load_backend
        from ctcnet.inference.crop_sets import predict_crop_dataset
        from ctcnet.inference.predict import PredictOptions

        model, _ = save_tiny_model(tmp_path.parent / "tiny.pt", crop_size=SIDE, width=8)
        out = tmp_path.parent / "out"
        summary = predict_crop_dataset(tmp_path, load_backend(model, device="cpu"), out,
                                       PredictOptions(quiet=True))
        kept = [w for w in summary.warnings if "the nuclei of the crops read 3." in w]
        assert len(kept) == 1
        assert kept[0] in json.loads((out / "summary.json").read_text())["warnings"]
    else:
        pair, start = ("DAPI and CK", "the nucleus lies in the CK plane on 60 of the 60 crops") \
            if order[0] == 1 else ("CD45 and CD66b", "40 nucleated crops are lit in CD66b")
        assert len(said) == 1 and f"are {pair} swapped?" in said[0]
        assert said[0].startswith(f"crop dataset {tmp_path}: {start}")


def test_a_neighbours_plane_in_the_disk_does_not_move_a_planes_centre():
    """A crowded frame: a brighter neighbour's CD66b inside the 8 um disk round an event pulled
    the centre of its plane toward it (a dense cartridge in register was said "CD66b 0.6 um
    off DAPI's centre"); the part nearest the nucleus is its own."""
    from ctcnet.detect.plane_register import offsets_from_dna

    yy, xx = np.mgrid[:80, :80].astype(np.float32)

    def blob(x, y, peak, sigma):
        return peak * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma ** 2))

    dna = blob(39.5, 39.5, 100, 3.0)
    cd66b = blob(39.5, 39.5, 60, 4.0) + blob(39.5, 51.5, 100, 2.0)  # 7.7 um below, brighter
    near = np.hypot(yy - 39.5, xx - 39.5) * PX <= 8.0
    offsets = offsets_from_dna(np.stack([dna, cd66b]), np.ones(2), 0, near, (xx, yy), PX, 10)
    assert len(offsets) == 1 and offsets[0][0] == 1
    assert abs(offsets[0][1]) < 0.05 and abs(offsets[0][2]) < 0.05, offsets


def test_a_median_off_by_chance_is_not_out_of_register():
    """A plane is out of register where its events lie off the same way, not where a small
    sample's median does: the same median of 0.8 um, read on 21 events spread as a dense
    scan's in register (neighbours' planes pull some centres, others read 0) or on 21 that
    all lie near it (a shift between exposures)."""
    panel = load_panel(None)
    chance = [0.0] * 8 + [0.8] * 6 + [1.2] * 7    # median 0.8 um; 8 read none
    shifted = [0.7] * 8 + [0.8] * 6 + [0.9] * 7
    for offsets, said in ((chance, False), (shifted, True)):
        signs = {"nucleus": [0] * 5, "offset_um": [[2, dx, 0.0] for dx in offsets]}
        problems, record = metadata_problems([signs], panel, PX)
        offset = record["median_offset_um"]["CD45"]
        assert offset["dx"] == 0.8 and offset["events"] == 21
        # The sign test's 90 % bound on 21 events is their 8th smallest.
        assert offset["sure_um"] == (0.7 if said else 0.0)
        assert len(problems) == said
        assert not said or problems[0].startswith("CD45 0.8 um off DAPI's centre")


def test_a_scanners_samples_at_another_scale_among_a_folders_are_named():
    """One panel.json's pixel size for crops of two scanners: the samples whose nuclei read
    at another scale than the other samples' are named; samples alike in scale, or too few nuclei,
    name none."""
    from ctcnet.detect.crop_folder_signs import samples_off_scale

    rng = np.random.default_rng(0)
    nuclei = {f"s{k}": list(rng.normal(8.5, 1.0, 20)) for k in range(4)}
    assert samples_off_scale(nuclei) is None
    nuclei["s9"] = list(rng.normal(25.0, 2.0, 20))  # enlarged 3x
    said = samples_off_scale(nuclei)
    assert said.startswith("the nuclei of 1 of 5 samples") and "s9 (" in said
    assert samples_off_scale({"s0": [8.0] * 20, "s9": [25.0] * 3}) is None  # too few


def test_a_sample_enlarged_2x_is_named_however_many_crops_it_holds():
    """Each sample is read against the others' medians, a vote a sample: with their nuclei
    pooled, a large sample enlarged 2x pulled the folder's figure towards its own, and one of
    three went unsaid. Of two samples apart, the one whose nuclei read a nucleus's size is
    taken to be right; where neither or both do, both are listed."""
    from ctcnet.detect.crop_folder_signs import samples_off_scale

    rng = np.random.default_rng(1)
    nuclei = {"a": list(rng.normal(8.5, 1.0, 15)), "b": list(rng.normal(8.5, 1.0, 15)),
              "big": list(rng.normal(17.0, 2.0, 60))}  # enlarged 2x, twice the others' crops
    said = samples_off_scale(nuclei)
    assert said.startswith("the nuclei of 1 of 3 samples") and "big (" in said
    assert "a (" not in said and "b (" not in said
    said = samples_off_scale({"a": list(rng.normal(8.5, 1.0, 10)),
                              "big": list(rng.normal(17.0, 2.0, 40))})
    assert said.startswith("the nuclei of 1 of 2 samples") and "big (" in said
    assert "a (" not in said
    # Most samples enlarged (one at 9 um, two at 18), two against two: the enlarged named.
    said = samples_off_scale({"a": [9.0] * 10, "big": [18.0] * 10, "big2": [18.5] * 10})
    assert said.startswith("the nuclei of 2 of 3 samples") and "a (" not in said, said
    said = samples_off_scale({"a": [9.0] * 10, "b": [8.5] * 10, "big": [18.0] * 10,
                              "big2": [18.5] * 10})
    assert said.startswith("the nuclei of 2 of 4 samples") and "big (" in said and \
        "big2 (" in said and "a (" not in said, said
    said = samples_off_scale({"a": [6.0] * 10, "b": [12.0] * 10})  # both a nucleus's size
    assert said.startswith("the nuclei of the 2 samples read at scales 2.0x apart")
    assert "a (6.0 um)" in said and "b (12.0 um)" in said


def test_one_sample_exported_in_another_channel_order_is_named(leukocytes, tmp_path, caplog):
    """One patient's crops of a lab's folder written in another order (CD45, DAPI, CK ... for
    DAPI, CK, CD45 ...): a fifth of the folder, too few for the folder's judgement; only a
    CK/CD45 label warning said something was wrong, and named the wrong planes."""
    import tifffile

    from ctcnet.detect.crop_dataset import load_crops, read_crop_index

    panel = load_panel(None).with_pixel_size(PX)
    (tmp_path / "wbc").mkdir()
    (tmp_path / "panel.json").write_text(json.dumps(panel.to_dict()))
    for i, crop in enumerate(leukocytes):
        sample = f"P{i % 5}"
        if sample == "P4":
            crop = crop[[2, 0, 1, 3, 4]]  # DAPI in the second plane, CD45 in the first
        tifffile.imwrite(tmp_path / "wbc" / f"{sample}__{i:03d}.tif", crop.astype(np.uint16),
                         metadata=None)
    with caplog.at_level("WARNING", logger="ctcnet.detect.crop_dataset"):
        load_crops(read_crop_index(tmp_path), SIDE)
    said = [r.getMessage() for r in caplog.records if "another plane than" in r.getMessage()]
    assert len(said) == 1 and "the nucleus of 1 of 5 samples" in said[0], said
    assert "(P4: in CK on " in said[0]
    assert not any("are DAPI and" in r.getMessage() for r in caplog.records)


def test_a_frame_is_read_at_whole_cells_spread_over_it_not_at_its_first_event(leukocytes):
    """Detection lists a frame's events from its top, so its first is as a rule a cell the
    top border cuts: a cartridge of 175 frames reads one event a frame, in the middle of the
    frame's list, and only events whose crops lie whole in the frame where it has any."""
    panel = load_panel(None)
    # Crops whose DNA and CD45 planes trade places: their nucleus reads in CD45's plane.
    odd = leukocytes[:, [2, 1, 0, 3, 4]]
    first_odd = np.concatenate([odd[:1], leukocytes[1:]])
    signs = frame_signs(first_odd, panel, PX, 175)
    assert signs["read"] == 1 and signs["nucleus"][0] == 1 and signs["nucleus"][2] == 0
    # Half the frame's crops cut by its border (odd here), the other half whole.
    half = np.concatenate([odd[:30], leukocytes[30:]])
    whole = np.arange(60) >= 30
    for frames in (1, 30, 175):
        signs = frame_signs(half, panel, PX, frames, whole)
        assert signs["nucleus"][2] == 0 and signs["nucleus"][0] == signs["read"] > 0
    # A frame whose every crop is cut is still read (its events are all it has).
    assert frame_signs(half, panel, PX, 60, np.zeros(60, bool))["read"] == 2


def test_crops_too_narrow_for_a_cell_at_the_stated_pixel_size_are_said():
    """panel.json's pixel size ten times too small (0.064 for 0.64): 80 px crops read 5 um
    across, no nucleus whole in them to measure, and every crop was called debris unsaid."""
    from ctcnet.detect.crop_folder_signs import CropFolderSigns
    from ctcnet.io.panel import default_panel

    crops = np.full((30, 5, 80, 80), 100, np.float32)
    for px, said in ((0.064, True), (0.64, False)):
        signs = CropFolderSigns(default_panel(), len(crops), px)
        for i, crop in enumerate(crops):
            signs.add(i, crop, px)
        assert any("too narrow to hold a cell" in line for line in signs.problems()) == said


def test_crops_too_narrow_to_read_say_so_not_that_no_nucleus_lies_in_dna():
    """48 px crops at 0.3 um/px, 14.4 um across, are too narrow for the nuclei's check, so
    none was read: "0 of the crops read show a nucleus in DAPI's plane" sent a researcher
    looking for a swap in a panel in order."""
    from ctcnet.detect.crop_folder_signs import CropFolderSigns
    from ctcnet.io.panel import default_panel

    crops = np.full((30, 5, 48, 48), 100, np.float32)
    signs = CropFolderSigns(default_panel(), len(crops), 0.3)
    for i, crop in enumerate(crops):
        signs.add(i, crop, 0.3)
    said = signs.order_unjudged()
    assert said.startswith("the crops are 14.4 um across at most, too narrow to read a "
                           "nucleus inside its cell (at least 20 um)"), said
    assert "0 of the crops read" not in said


def test_a_dna_stains_bleed_into_cd66b_is_no_swap(every_event_read):
    """A DNA stain leaking 8 % into CD66b lit it on every nucleus: CTCs and bare nuclei read
    "CD66b without CD45", lymphocytes lost "CD45 alone", and a CTC-rich simulated cartridge
    in its right order was called swapped and partial. Lit past the bleed only, the same
    events read as what they are; the planes swapped are still said."""
    rng = np.random.default_rng(3)
    crops = []
    for i in range(40):
        x = _leukocyte(False, False, rng) if i % 2 else np.stack([
            _disc(3.5, 900.0), _disc(6.0, 500.0), *np.zeros((3, SIDE, SIDE))]) + 100.0 + \
            rng.normal(0, 4.0, (5, SIDE, SIDE))  # lymphocytes and CTCs, alternately
        x[4] += 0.08 * (x[0] - 100.0)  # DAPI's bleed into CD66b
        crops.append(x)
    crops = np.stack(crops).astype(np.float32)
    panel = load_panel(None)
    signs = frame_signs(crops, panel, PX, 1)
    assert signs["lit"][4] == 40  # the bleed lights CD66b on every nucleus...
    assert (signs["neutrophil_alone"], signs["leukocyte_alone"]) == (0, 20)  # ...no marker
    assert metadata_problems([signs], panel, PX)[0] == []
    swapped = frame_signs(crops[:, [0, 1, 4, 3, 2]], panel, PX, 1)
    assert (swapped["neutrophil_alone"], swapped["leukocyte_alone"]) == (20, 0)
    assert "are CD45 and CD66b swapped?" in metadata_problems([swapped], panel, PX)[0][0]


def test_crops_read_at_a_coarse_pixel_size_have_a_centre_to_read():
    """A speck of debris fitted to one size (--pixel-size fit) was read at 10.6 um/px: no
    pixel lay within the centre's radius, and predict ended in a traceback."""
    crops = np.random.default_rng(0).normal(100, 3, (2, 5, 8, 8)).astype(np.float32)
    signs = metadata_signs.frame_signs(crops, load_panel(None), 10.6, 1)
    assert signs is not None and signs["read"] >= 1
