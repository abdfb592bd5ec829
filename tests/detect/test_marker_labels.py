"""ctcnet.detect.marker_labels: a labelled folder whose CK and CD45 read swapped in some
files (another scanner's channel order) is said, naming the samples; a right one is not."""

import numpy as np
import pytest

from ctcnet.detect.crop_dataset import load_crops, read_crop_index, write_crop_dataset
from ctcnet.io.panel import load_panel
from ctcnet.simulate import simulate_crops


@pytest.fixture(scope="module")
def drawn():
    return simulate_crops(40, load_panel(None), crop_size=48, seed=21, num_samples=4)


def swapped_warning(tmp_path, drawn, swap_samples, caplog) -> list[str]:
    panel = load_panel(None)
    ck, cd45 = panel.index_of_role("epithelial"), panel.index_of_role("leukocyte")
    images = drawn.images.copy()
    for k, sample in enumerate(drawn.sample_ids):
        if sample in swap_samples:
            images[k, [ck, cd45]] = images[k, [cd45, ck]]
    root = write_crop_dataset(tmp_path / "lab", images, drawn.labels, panel, drawn.sample_ids)
    caplog.clear()
    with caplog.at_level("WARNING"):
        load_crops(read_crop_index(root))
    return [r.getMessage() for r in caplog.records if "CK and CD45" in r.getMessage()]


def test_a_folder_whose_ck_and_cd45_are_swapped_in_some_files_is_said(tmp_path, drawn, caplog):
    samples = sorted(set(drawn.sample_ids))
    assert swapped_warning(tmp_path / "right", drawn, set(), caplog) == []
    said = swapped_warning(tmp_path / "all", drawn, set(samples), caplog)
    assert len(said) == 1 and "are CK and CD45 swapped" in said[0]
    said = swapped_warning(tmp_path / "one", drawn, {samples[1]}, caplog)
    assert len(said) == 1 and f"sample(s) {samples[1]} (" in said[0], said


def test_cd45_or_ck_swapped_with_another_plane_of_the_panel_is_said(tmp_path, drawn, caplog):
    """CD45 swapped with CD66b (or CD61, EpCAM) in every file, or CK with CD61: the crops of
    the label whose marker moved light that plane instead, named (it was said of CK and CD45
    alone, and such a swap read on without a word); a right folder says none."""
    panel = load_panel(None)
    names = panel.names
    ck, cd45 = panel.index_of_role("epithelial"), panel.index_of_role("leukocyte")
    said = {}
    for own, other in ((cd45, names.index("CD66b")), (ck, names.index("CD61")), (None, None)):
        images = drawn.images.copy()
        if own is not None:
            images[:, [own, other]] = images[:, [other, own]]
        root = write_crop_dataset(tmp_path / f"swap{other}", images, drawn.labels, panel,
                                  drawn.sample_ids)
        caplog.clear()
        with caplog.at_level("WARNING"):
            load_crops(read_crop_index(root))
        said[other] = " ".join(r.getMessage() for r in caplog.records if "swapped in" in
                               r.getMessage())
    assert "crops labelled wbc light CD66b and not CD45" in said[names.index("CD66b")]
    assert "are CD45 and CD66b swapped in panel.json or in some files?" in \
        said[names.index("CD66b")]
    assert "crops labelled ctc light CD61 and not CK" in said[names.index("CD61")]
    assert said[None] == ""


def test_a_right_vimentin_folder_is_no_swap_a_swapped_one_is(tmp_path, caplog):
    """A CTC that lost CK lights vimentin: a fifth of a right folder's ctc crops light VIM
    and not CK, and a folder of 10 CTCs passed the 30 % of another plane by chance one time
    in three ("are CK and VIM swapped?" on the simulator's own crops). Said where the share
    is past that fifth beyond chance: CK and VIM swapped."""
    from ctcnet.io.panel import Panel

    panel = Panel.from_dict({"channels": ["CD45", "DAPI", "CK", "VIM"],
                             "pixel_size_um": 0.8})
    said = {}
    for seed, ctcs in ((4, 10), (5, 10), (6, 40)):
        drawn = simulate_crops({"ctc": ctcs, "wbc": 10}, panel, crop_size=48, seed=seed,
                               num_samples=2)
        for swap in (False, True):
            images = drawn.images.copy()
            if swap:
                images[:, [2, 3]] = images[:, [3, 2]]
            root = write_crop_dataset(tmp_path / f"{seed}{swap}", images, drawn.labels, panel,
                                      drawn.sample_ids)
            caplog.clear()
            with caplog.at_level("WARNING"):
                load_crops(read_crop_index(root))
            said[seed, swap] = [r.getMessage() for r in caplog.records
                                if "CK and VIM swapped" in r.getMessage()]
    assert not said[4, False] and not said[5, False] and not said[6, False], said
    assert said[6, True] and said[5, True], said  # (10 CTCs may not tell it: 4's do not)


def test_unlabelled_crops_or_a_panel_without_the_markers_cast_no_vote():
    from ctcnet.detect.marker_labels import MarkerLabelVotes

    panel = load_panel(None)
    assert MarkerLabelVotes.of(panel, ["unlabelled"] * 3, ["s"] * 3) is None
    votes = MarkerLabelVotes.of(panel, ["ctc", "debris"], ["s", "s"])
    votes.add(1, np.zeros((panel.num_channels, 32, 32), np.float32))  # debris: no vote
    assert not votes.by_sample and votes.warning() is None


def test_raw_8_bit_crops_are_said_and_named_beside_a_swap(tmp_path, drawn, caplog):
    """A scan's counts stored in 8 bits (counts / 16) lose dim CK and CD45: said as such, and
    named as a cause beside the swap their lost markers may read as; 16-bit crops are not."""
    panel = load_panel(None)
    ck, cd45 = panel.index_of_role("epithelial"), panel.index_of_role("leukocyte")
    images = drawn.images.copy()
    images[:, [ck, cd45]] = images[:, [cd45, ck]]
    for name, stored in (("counts", images), ("eight", (images // 16).astype(np.uint8))):
        root = write_crop_dataset(tmp_path / name, stored, drawn.labels, panel, drawn.sample_ids)
        caplog.clear()
        with caplog.at_level("WARNING"):
            load_crops(read_crop_index(root))
        said = [r.getMessage() for r in caplog.records]
        eight = [m for m in said if "crops are 8-bit (256 levels)" in m]
        swap = [m for m in said if "are CK and CD45 swapped" in m]
        assert len(swap) == 1, said
        assert len(eight) == (name == "eight"), said
        if eight:  # the files named, for the lab to find them
            assert "; e.g. " in eight[0] and eight[0].count(".tif") == 3, eight
        assert ("Or it is the 8-bit levels of the 160 8-bit crops" in swap[0]) == \
            (name == "eight"), swap


def test_raw_8_bit_crops_in_their_right_order_are_no_swap(tmp_path, drawn, caplog):
    """Counts stored in 8 bits, the channels in their order: a flat background (noise 0)
    made a CD45 one level over it read as lit, and a right folder was asked whether CK was
    swapped with CD45, CD61 and CD66b at once."""
    panel = load_panel(None)
    eight = (drawn.images // 16).astype(np.uint8)
    root = write_crop_dataset(tmp_path / "eight", eight, drawn.labels, panel, drawn.sample_ids)
    with caplog.at_level("WARNING"):
        load_crops(read_crop_index(root))
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "swapped" in m], said
    assert [m for m in said if "crops are 8-bit (256 levels)" in m]


def test_a_display_exports_leukocytes_are_not_judged_its_ctcs_are():
    """Per-sample scan thumbnails (8-bit RGB, one display range a sample) in their right order
    read "CK and not CD45" on half their wbc crops and a sample's 5 CTCs all the other way:
    said swapped. A composite folder is judged on its ctc crops past a half (a sample alone
    on 10 or more, past 70 %): the right folder is not said, the swapped one still is."""
    from collections import Counter

    from ctcnet.detect.marker_labels import MarkerLabelVotes

    panel = load_panel({"channels": ["CK", "CD45", "DAPI"], "pixel_size_um": 0.64,
                        "composite": "rgb"})

    def votes(counts: dict) -> MarkerLabelVotes:
        v = MarkerLabelVotes.of(panel, ["ctc", "wbc"], ["s", "s"])
        v.by_sample = Counter(counts)
        return v

    right = {("s1", "ctc", "read"): 45, ("s1", "ctc", "odd"): 0, ("s7", "ctc", "read"): 5,
             ("s7", "ctc", "odd"): 5, ("s1", "wbc", "read"): 50, ("s1", "wbc", "odd"): 25}
    assert votes(right).warning() is None
    swapped = {("s1", "ctc", "read"): 41, ("s1", "ctc", "odd"): 36, ("s1", "wbc", "read"): 35,
               ("s1", "wbc", "odd"): 7}
    said = votes(swapped).warning()
    assert said and said.startswith("36 of 41 crops labelled ctc light CD45 and not CK")
    assert "its leukocytes' faint CD45 is not judged" in said
    one = {**right, ("s9", "ctc", "read"): 12, ("s9", "ctc", "odd"): 10}  # one scanner's
    assert "sample(s) s9 (10)" in votes(one).warning()
    # 16-bit crops of the same counts are judged on both labels, as before.
    raw = MarkerLabelVotes.of(load_panel(None), ["ctc", "wbc"], ["s", "s"])
    raw.by_sample = Counter(right)
    assert raw.warning() is not None


def test_neutrophils_whose_cd66b_outshines_their_cd45_are_no_swap():
    """A leukocyte lighting CD66b far above its CD45 (a neutrophil) is no sign of a swap: a
    right cartridge's crops were said to have CD45 and CD66b swapped; leukocytes without CD45
    lit at all, lighting CD66b, still are."""
    from ctcnet.detect.marker_labels import MarkerLabelVotes

    panel = load_panel(None)
    cd45, cd66b = panel.index_of_role("leukocyte"), panel.names.index("CD66b")
    rng = np.random.default_rng(0)

    def crops(cd45_level, cd66b_level, n=40):
        out = rng.normal(100.0, 10.0, (n, panel.num_channels, 32, 32)).astype(np.float32)
        out[:, cd45, 12:20, 12:20] += cd45_level
        out[:, cd66b, 12:20, 12:20] += cd66b_level
        return out

    for images, swapped in ((crops(400.0, 1200.0), False), (crops(0.0, 400.0), True)):
        votes = MarkerLabelVotes.of(panel, ["wbc"] * len(images), ["s"] * len(images))
        for i, crop in enumerate(images):
            votes.add(i, crop)
        said = votes.other_plane_warnings()
        assert bool(said) == swapped, said
        assert not swapped or "light CD66b and not CD45" in said[0]


def test_a_dim_cd45_look_is_no_swap_and_a_swap_names_the_one_plane():
    """The simulator's filled-ctc look (the default model's): leukocytes with a dim CD45 tail
    lit CD66b without CD45 on 15 of 100 wbc crops, and a right folder was asked whether CD45
    and CD66b were swapped. CD45 without CD66b is lit on more of them, as no swap leaves it.
    Swapped with CD61, CD66b (a neutrophil's) reads so too; the plane named is CD61 alone."""
    from ctcnet.detect.marker_labels import MarkerLabelVotes
    from ctcnet.simulate.config import SimConfig

    panel = load_panel(None)
    cd45 = panel.index_of_role("leukocyte")
    drawn = simulate_crops({"ctc": 1, "wbc": 100, "cluster": 1, "debris": 1}, panel, seed=0,
                           config=SimConfig().with_filled_ctc_look())
    wbc = drawn.images[np.array([label == "wbc" for label in drawn.labels])]

    def said(swap: str | None) -> list[str]:
        votes = MarkerLabelVotes.of(panel, ["wbc"] * len(wbc), ["s"] * len(wbc))
        for i, crop in enumerate(wbc):
            crop = crop.copy()
            if swap:
                other = panel.names.index(swap)
                crop[[cd45, other]] = crop[[other, cd45]]
            votes.add(i, crop)
        return votes.other_plane_warnings()

    assert said(None) == []
    cd66b = said("CD66b")
    assert len(cd66b) == 1 and "are CD45 and CD66b swapped" in cd66b[0]
    cd61 = said("CD61")
    assert len(cd61) == 1 and "are CD45 and CD61 swapped" in cd61[0]


def test_8_bit_crops_of_one_class_alone_are_said_to_tell_the_class(tmp_path, drawn, caplog):
    """Exports from two sources merged, every CTC from one at 8 bits: the depth tells the
    class, which a model learns in place of the markers; said as such, not only as 8 bits."""
    import tifffile

    from ctcnet.detect.crop_checks import depth_by_class

    panel = load_panel(None)
    root = write_crop_dataset(tmp_path / "mixed", drawn.images, drawn.labels, panel,
                              drawn.sample_ids)
    index = read_crop_index(root)
    for path, label in zip(index.paths, index.labels):
        if label == "ctc":
            tifffile.imwrite(path, (tifffile.imread(path) // 16).astype(np.uint8))
    with caplog.at_level("WARNING"):
        load_crops(read_crop_index(root))
    (eight,) = [r.getMessage() for r in caplog.records if "crops are 8-bit" in r.getMessage()]
    assert "they are the ctc crops and (nearly) none of the others: the depth tells the " \
        "class" in eight
    # Spread over the classes, or of every class: no such clause.
    assert depth_by_class(["ctc", "wbc", "ctc", "wbc"], [0, 1]) == ""
    assert depth_by_class(["ctc", "wbc"], [0, 1]) == ""
    assert depth_by_class(["ctc", "wbc", "wbc"], [0]).startswith("; they are the ctc crops")
