"""A crop folder's page: every call shown with its crop, the guard's holds first, and each
crop drawn on one scale for all its channels."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import disk_crops

from ctcnet.cli import main
from ctcnet.nn.spec import ModelSpec
from ctcnet.report.crop_set_page import HELD, crop_groups, disagreement_groups, tile_captions
from ctcnet.report.gallery_pages import stretch_each_crop


def _spec() -> ModelSpec:
    from ctcnet.io.panel import load_panel
    from ctcnet.io.taxonomy import load_taxonomy

    return ModelSpec("compact", load_panel(None), load_taxonomy(None), crop_size=32)


def _table() -> pd.DataFrame:
    return pd.DataFrame({
        "path": ["ctc/a.png", "ctc/b.png", "wbc/c.png", "wbc/d.png", "ctc/e.png"],
        "label": ["ctc", "ctc", "wbc", "wbc", "ctc"],
        "class": ["ctc", "ctc", "wbc", "ctc", "wbc"],
        "model_class": ["ctc", "wbc", "wbc", "ctc", "wbc"],
        "confidence": [0.99, 0.70, 0.95, 0.60, 0.80],
        "review": [False, True, False, True, True],
        "guard": ["", "possible_ctc", "", "", ""],
        "markers_ctc": [False, True, False, False, False]})


def test_the_guards_holds_come_first_then_each_class_least_confident_first():
    groups = crop_groups(_table(), _spec())
    assert list(groups) == [HELD, "ctc", "wbc"]  # the reported class before the others
    assert groups[HELD].tolist() == [1]
    assert groups["ctc"].tolist() == [3, 0]  # p 0.60 before 0.99
    assert groups["wbc"].tolist() == [4, 2]
    # every crop in exactly one group
    assert sorted(np.concatenate(list(groups.values())).tolist()) == [0, 1, 2, 3, 4]


def test_a_caption_names_the_file_the_call_a_disagreeing_label_and_the_guards_why():
    captions = tile_captions(_table(), _spec())
    assert captions[0] == "a.png ctc p=0.99"
    # The guard's why on a line of its own: a three-marker tile is too narrow for both.
    first, why = captions[1].split("\n")
    assert first == "b.png ctc (network: wbc p=0.70)" and why.startswith("held: ")
    assert "(label wbc)" in captions[3] and "(label" not in captions[2]
    assert "(label ctc)" in captions[4]
    # Two patients' files of one name, told apart by their sample folders.
    table = _table().assign(path=["ctc/P1/cell_0.tif", "ctc/P2/cell_0.tif", "wbc/c.png",
                                  "wbc/d.png", "ctc/e.png"])
    named = [c.split(" ")[0] for c in tile_captions(table, _spec())]
    assert named[:2] == ["P1/cell_0.tif", "P2/cell_0.tif"]
    # Unlabelled crops in batch folders (their label the folder's name, no class's): the
    # folder stays, or both tiles read cell_0.tif.
    table = table.assign(path=["batch1/cell_0.tif", "batch2/cell_0.tif", "wbc/c.png",
                               "wbc/d.png", "ctc/e.png"], label=["batch1", "batch2", "wbc",
                                                                 "wbc", "ctc"])
    named = [c.split(" ")[0] for c in tile_captions(table, _spec())]
    assert named[:2] == ["batch1/cell_0.tif", "batch2/cell_0.tif"]


def test_a_faint_copy_in_one_channel_stays_faint_beside_the_bright_one():
    crops = disk_crops(n=1, amplitude=1000.0, noise=5.0, channel=1, channels=3, size=40)
    crops[:, 2] += 0.2 * (crops[:, 1] - 100.0)  # CD45 plane: a fifth of CK's signal
    together = stretch_each_crop(crops, together=True)
    assert together[0, 1].max() > 0.95
    assert 0.1 < together[0, 2].max() < 0.3
    assert stretch_each_crop(crops)[0, 2].max() > 0.95  # each channel to itself: as bright


def test_predict_on_a_crop_folder_writes_a_page_of_every_call_with_its_crop(
        crops, tiny_model_file, tmp_path, capsys):
    model, _ = tiny_model_file(tmp_path / "model.pt", crop_size=32)
    out = tmp_path / "out"
    assert main(["predict", str(crops), "--model", str(model), "--out", str(out),
                 "--device", "cpu"]) == 0
    folder = out / crops.name
    assert f"-> {folder}" in capsys.readouterr().out  # the line says where the page is
    page = (folder / "index.html").read_text()
    assert page.count("<main>") == 1 and "<th>" not in page  # landmarks, headings' scopes
    # The statement summary.json's intended_use says the page shows (a cartridge's did).
    assert '<p class="ruo" id="research-use">Research use only' in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert images and all((folder / src).is_file() for src in images)
    table = pd.read_csv(folder / "predictions.csv")
    shown = [int(n) for n in re.findall(r"<p>(\d+) crop\(s\), least confident first", page)]
    assert sum(shown) == len(table) == 4  # every crop in one group
    # each crop's file listed once under its group, a link to the image itself, relative to
    # the page (it holds wherever a share is mounted)
    from urllib.parse import unquote

    hrefs = re.findall(r'<li><a href="([^"]+)"', page)
    assert hrefs and not any(":" in u for u in hrefs)
    links = [folder / unquote(u) for u in hrefs]
    assert sorted(p.name for p in links) == sorted(Path(p).name for p in table["path"])
    assert all(p.is_file() for p in links)
    assert "predictions.csv" in page
    # The review list's size on the page is summary.json's, with what brings it.
    summary = json.loads((folder / "summary.json").read_text())
    assert f"sent to review</th><td>{summary['review']}" in page
    again = tmp_path / "bare"
    assert main(["predict", str(crops), "--model", str(model), "--out", str(again),
                 "--device", "cpu", "--quiet", "--no-report"]) == 0
    assert not (again / crops.name / "index.html").exists()


def test_evaluate_groups_the_crops_called_other_than_their_label_most_confident_first():
    table = _table()
    table.loc[0, "class"] = "wbc"  # a second ctc called wbc, more confident than row 4
    table.loc[0, "confidence"] = 0.9
    groups = disagreement_groups(table, _spec())
    assert list(groups) == ["ctc_as_wbc", "wbc_as_ctc"]
    assert groups["ctc_as_wbc"].tolist() == [0, 4]
    assert groups["wbc_as_ctc"].tolist() == [3]


def test_evaluate_writes_a_page_of_the_crops_called_other_than_their_label(
        crops, tiny_model_file, tmp_path):
    model, _ = tiny_model_file(tmp_path / "model.pt", crop_size=32)
    out = tmp_path / "eval"
    assert main(["evaluate", str(crops), "--model", str(model), "--out", str(out),
                 "--device", "cpu", "--no-baselines"]) == 0
    page = (out / "index.html").read_text()
    assert all((out / src).is_file() for src in re.findall(r'<img src="([^"]+)"', page))
    table = pd.read_csv(out / "predictions.csv")
    wrong = int((table["class"] != table["label"]).sum())
    assert f"{wrong} of 4 crops called other than their label" in page
    shown = [int(n) for n in re.findall(r"<p>(\d+) crop\(s\), most confident first", page)]
    assert sum(shown) == wrong


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed "
                    "(apt-get install chromium)")
def test_the_crop_folder_page_shows_every_image_in_chromium(crops, tiny_model_file, tmp_path):
    model, _ = tiny_model_file(tmp_path / "model.pt", crop_size=32)
    assert main(["predict", str(crops), "--model", str(model), "--out", str(tmp_path / "out"),
                 "--device", "cpu", "--quiet"]) == 0
    page = tmp_path / "out" / crops.name / "index.html"
    result = subprocess.run(
        [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--allow-file-access-from-files", "--virtual-time-budget=10000",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    images = len(re.findall(r'<img src="', page.read_text()))
    assert images and f'data-images-total="{images}"' in result.stdout, result.stderr[-2000:]
    assert 'data-images-ok="yes"' in result.stdout


def test_the_pages_drawn_on_threads_are_those_drawn_one_at_a_time(tmp_path, monkeypatch):
    """The crop-folder page draws its montage pages on threads, as the cartridge report does
    (``gallery_pages.drawn_in_order``): the files and each group's record are those of one page at a
    time, in order."""
    from ctcnet.report import crop_set_page, gallery_pages

    spec = _spec()
    rng = np.random.default_rng(3)
    n = 23
    table = pd.DataFrame({
        "path": [f"ctc/c{i:02d}.png" for i in range(n)], "label": ["ctc"] * n,
        "class": rng.choice(["ctc", "wbc"], n).tolist(), "model_class": ["ctc"] * n,
        "confidence": rng.uniform(0.5, 1.0, n), "review": np.zeros(n, bool),
        "guard": [""] * n, "markers_ctc": np.zeros(n, bool)})
    crops = rng.poisson(100, (n, spec.panel.num_channels, 32, 32)).astype(np.float32)
    groups = crop_set_page.crop_groups(table, spec)
    monkeypatch.setattr(gallery_pages, "TILES_PER_PAGE", 2)
    monkeypatch.setattr(crop_set_page, "TILES_PER_PAGE", 2)
    drawn = {}
    for threads in (1, 2):
        monkeypatch.setattr(gallery_pages, "PAGE_THREADS", threads)
        out = tmp_path / f"threads{threads}"
        info = crop_set_page.write_tile_pages(out, table, crops, spec, groups, limit=50)
        drawn[threads] = (info, {p.name: p.read_bytes()
                                 for p in sorted((out / "gallery").glob("*.png"))})
    assert drawn[1] == drawn[2]
    for group, record in drawn[2][0].items():  # every page, in order
        assert [p["path"] for p in record["pages"]] == [
            f"gallery/{group}_{k:03d}.png" for k in range(1, -(-record["shown"] // 2) + 1)]
    assert sum(len(g["pages"]) for g in drawn[2][0].values()) >= 12


def test_the_review_list_line_names_each_reason_that_brings_events_and_the_doubt_left_off():
    from ctcnet.report.reasons import review_list_text

    record = {"by_reason": {"counted_call_doubt": 4, "counted_class_in_band": 0,
                            "guard:possible_ctc": 9, "guard:one_cell": 0, "failed": 1},
              "uncounted_doubt_not_queued": 66}
    assert review_list_text(record, 13) == ("13 (4 a CTC/cluster call in doubt, 9 possible "
                                            "missed CTC, 1 no call; these add up to more: "
                                            "an event may have several reasons); 66 in doubt "
                                            "between "
                                            "uncounted classes alone, not queued")
    record["counted_on_markers_doubt_not_queued"] = 3
    assert review_list_text(record, 13).endswith(
        "not queued; 3 CTC calls in doubt with a cluster, one cell by the markers, counted "
        "and not queued")
    assert "several" not in review_list_text(record, 14)  # as many reasons as events
    assert review_list_text(None, 7) == "7"
    # A lab's reported classes are named as they are.
    assert review_list_text(record, 13, ["ctc", "ctc_emt", "cluster"]).startswith(
        "13 (4 a ctc/ctc_emt/cluster call in doubt, ")
    assert review_list_text({"by_reason": {}, "uncounted_doubt_not_queued": 0}, 0) == "0"
    # A model reporting CTCs alone, without a fitted band: the reason says what brought them.
    plain = {"by_reason": {"counted_class_in_band": 250}, "review_band": None}
    assert review_list_text(plain, 250, ["ctc"]) == (
        "250 (250 another call under the review threshold, a CTC its runner-up)")
    banded = {**plain, "review_band": {"band": 0.02}}
    assert review_list_text(banded, 250) == (
        "250 (250 another call a CTC/cluster holds the review band of)")
