"""A run's gallery pages: tiles captioned with why each event is shown, pages drawn on threads
as they are one by one, and the pages of an earlier run removed."""

import json

import pandas as pd
import pytest
from conftest import save_tiny_model

from ctcnet.inference.backends import load_backend
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.io.panel import load_panel
from ctcnet.report import gallery_pages, run_report

CROP = 48


def test_gallery_tiles_are_captioned_with_their_reasons():
    from ctcnet.report.gallery_pages import tile_labels
    from ctcnet.report.reasons import event_reasons

    events = pd.DataFrame({"event_id": [1, 2, 3, 4], "frame_id": ["f"] * 4, "x": [1.0] * 4,
                           "y": [2.0] * 4, "class": ["ctc", "wbc", "debris", "ctc"],
                           "confidence": [0.95, 0.97, 0.5, 0.6],
                           "review": [False, True, True, True], "edge_cut": [False] * 4,
                           "guard": ["", "possible_ctc", "", "cd45_positive+out_of_focus"]})
    labels = tile_labels(events, event_reasons(events, ["ctc", "cluster"]), 0.9)
    assert labels[0].endswith("| reported call")
    assert labels[1].endswith("| held: possible missed CTC")
    assert labels[2].endswith("| low p 0.50 < 0.90")
    # A call the guard holds is on the list for the guard (as summary.json counts it).
    assert labels[3].endswith("| held, not counted: CD45 over CK + out of focus")
    # A ctc call under the threshold whose doubt toward a cluster its markers settle: its
    # caption read "reported call" alone, as a sure call's, beside another at its p "low p".
    vouch = events.iloc[[0, 0]].assign(confidence=[0.8, 0.95], markers_vouch=True)
    assert event_reasons(vouch, ["ctc", "cluster"], 0.9) == [["call", "vouched"], ["call"]]
    assert event_reasons(vouch, ["ctc", "cluster"]) == [["call"], ["call"]]
    held = vouch.assign(guard="cd45_positive")  # held by the run's end: not counted
    assert event_reasons(held, ["ctc", "cluster"], 0.9)[0] == ["call", "guard:cd45_positive"]
    assert tile_labels(vouch, event_reasons(vouch, ["ctc", "cluster"], 0.9), 0.9)[0] \
        .endswith("| reported call; doubt settled by markers")
    # A ctc call the markers made over the network's wbc says so.
    events["model_class"] = ["ctc", "wbc", "debris", "wbc"]
    events["markers_ctc"] = [False, True, False, True]
    events["guard"] = ["", "possible_ctc", "", ""]
    reasons = event_reasons(events, ["ctc", "cluster"])
    assert reasons[3] == ["call", "markers", "low_confidence"] and "markers" not in reasons[1]
    assert tile_labels(events, reasons, 0.9)[3].endswith(
        "| reported call; called by its markers; low p 0.60 < 0.90")
    # The p is the network call's (its posterior under the model's rule): where the call
    # shown is another, both are named, never another class's p beside the call.
    labels = tile_labels(events, reasons, 0.9)
    assert " ctc p=0.95 after prior " in labels[0] and "network" not in labels[0]
    assert " ctc (network: wbc p=0.60 after prior) " in labels[3]
    # The network's own most probable class, where the cartridge's prior made its call
    # another (a cluster filed as a leukocyte, called a CTC by its markers), is named too.
    for name, p in (("ctc", [0.95, 0.01, 0.3, 0.001]), ("wbc", [0.02, 0.97, 0.2, 0.001]),
                    ("cluster", [0.02, 0.01, 0.1, 0.997]), ("debris", [0.01, 0.01, 0.4, 0.001])):
        events[f"p_{name}"] = p
    labels = tile_labels(events, reasons, 0.9, ["ctc", "wbc", "cluster", "debris"])
    assert " ctc (network: wbc p=0.60 after prior; likeliest before prior: cluster p=1.00) " \
        in labels[3]
    assert " ctc p=0.95 after prior " in labels[0] and "likeliest" not in labels[0]
    assert " debris p=0.50 after prior (likeliest before prior: debris" not in labels[2]
    # Where the cartridge's fusion wrote its posterior, the likeliest class is read there, as
    # the calls' rule read it (and as counted_likeliest is decided).
    fused = events.assign(**{f"fused_p_{n}": v for n, v in (
        ("ctc", [0.9, 0.0, 0.1, 0.8]), ("wbc", [0.0, 1.0, 0.0, 0.1]),
        ("cluster", [0.1, 0.0, 0.1, 0.1]), ("debris", [0.0, 0.0, 0.8, 0.0]))})
    labels = tile_labels(fused, reasons, 0.9, ["ctc", "wbc", "cluster", "debris"])
    assert " ctc (network: wbc p=0.60 after prior; likeliest before prior: ctc p=0.80) " \
        in labels[3]
    # Only a counted class is named: a leukocyte the fusion reads likelier debris is not.
    fused["fused_p_wbc"], fused["fused_p_debris"] = [0.0, 0.45, 0.0, 0.1], [0.0, 0.55, 0.8, 0.0]
    assert "likeliest" not in tile_labels(fused, reasons, 0.9,
                                          ["ctc", "wbc", "cluster", "debris"])[1]
    # A debris call that a cluster outweighs before the cartridge's prior (the run's
    # filed_by_prior column) says so.
    events["guard"] = ["", "", "", ""]
    events["filed_by_prior"] = [False, False, True, False]
    reasons = event_reasons(events, ["ctc", "cluster"])
    assert reasons[2] == ["counted_likeliest"]
    assert not any("counted_likeliest" in r for r in reasons[:2] + reasons[3:])
    assert tile_labels(events, reasons, 0.9)[2].endswith("| CTC/cluster likeliest")
    # Another call shown for the band at a p over the threshold is said so, not "low p".
    events["confidence"] = [0.95, 0.97, 0.93, 0.6]
    events["filed_by_prior"] = [False] * 4
    reasons = event_reasons(events, ["ctc", "cluster"])
    assert reasons[2] == ["low_confidence"]
    assert tile_labels(events, reasons, 0.9)[2].endswith("| CTC/cluster in doubt")
    # A lab that reports a class of its own reads its classes named, not "CTC/cluster".
    lab = ["ctc", "ctc_emt", "cluster"]
    assert tile_labels(events, reasons, 0.9, counted=lab)[2].endswith(
        "| ctc/ctc_emt/cluster in doubt")
    from ctcnet.report.reasons import caption, reason_filter
    assert caption("cut_by_border", reported=lab) == "ctc/ctc_emt/cluster cut by border"
    assert caption("counted_likeliest") == "CTC/cluster likeliest"
    assert reason_filter([["counted_likeliest"]], lab)[0]["caption"] == \
        "ctc/ctc_emt/cluster likeliest"


def test_gallery_pages_drawn_two_at_a_time_are_those_drawn_one_by_one(tmp_path, monkeypatch):
    """The report draws its montage pages on threads: the files and the gallery's record (its
    pages in order, each page's events) are the same as one page at a time; a page that
    fails to draw fails the report."""
    from ctcnet.simulate import simulate_cartridge

    simulate_cartridge(tmp_path / "cart", load_panel(None), num_frames=1, frame_shape=(256, 320),
                       seed=9, events_per_frame=30, sample_id="P009")
    save_tiny_model(tmp_path / "model.pt", crop_size=CROP)
    backend = load_backend(tmp_path / "model.pt", device="cpu", batch_size=64)
    monkeypatch.setattr(gallery_pages, "TILES_PER_PAGE", 3)  # several pages a category
    drawn = {}
    for threads in (1, 2):
        monkeypatch.setattr(gallery_pages, "PAGE_THREADS", threads)
        out = tmp_path / f"threads{threads}"
        summary = predict_cartridge(tmp_path / "cart", backend, out, PredictOptions(
            quiet=True, workers=0, gallery_limit=12, report=run_report))
        pages = {p.name: p.read_bytes() for p in sorted((out / "gallery").glob("*.png"))}
        drawn[threads] = (summary.gallery, pages)
    assert drawn[1] == drawn[2]
    assert max(len(g["pages"]) for g in drawn[2][0].values()) >= 3
    # Each page's captions kept as text, one per tile, starting with its event.
    for group in drawn[2][0].values():
        for page in group["pages"]:
            assert [c.split()[0] for c in page["captions"]] == [f"#{e}" for e in
                                                                page["event_ids"]]
    # With its report drawn, the summary names the folder it was written into too (a copy
    # under another name is refused by it).
    assert json.loads((tmp_path / "threads2" / "summary.json").read_text())[
        "output_folder"] == "threads2"

    def broken(*args, **kwargs):
        raise RuntimeError("a page failed")

    monkeypatch.setattr(gallery_pages, "montage_page", broken)
    with pytest.raises(RuntimeError, match="a page failed"):
        predict_cartridge(tmp_path / "cart", backend, tmp_path / "broken", PredictOptions(
            quiet=True, workers=0, gallery_limit=12, report=run_report))


def test_pages_no_group_lists_are_removed_as_an_earlier_runs(tmp_path):
    for name in ("ctc_001.png", "ctc_002.png", "wbc_001.png", "levels.json"):
        (tmp_path / name).write_text("x")
    kept = {"ctc": {"pages": [{"path": "gallery/ctc_001.png"}]}, "wbc": {"pages": []}}
    gallery_pages.remove_stale_pages(tmp_path, kept)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ctc_001.png", "levels.json"]


def test_the_review_list_comes_most_pressing_first_in_scan_order_within():
    """Held, border-cut and prior-filed events first, then the network's doubt about a
    count, the confident reported calls, and the quality-control sample last: a reviewer
    opens on a possible missed CTC, not on a QC event that changes no count."""
    from ctcnet.report.reasons import ranked_with_reasons

    events = pd.DataFrame({
        "event_id": range(7),
        "class": ["wbc", "ctc", "debris", "ctc", "wbc", "debris", "ctc"],
        "model_class": ["wbc", "ctc", "ctc", "ctc", "wbc", "debris", "ctc"],
        "confidence": [0.99, 0.99, 0.99, 0.6, 0.99, 0.97, 0.99],
        "review": [False, False, True, True, False, True, False],
        "edge_cut": [False, False, True, False, False, False, False],
        "guard": ["", "", "", "", "", "possible_ctc", ""],
        "why": ["qc", "call", "flagged", "call", "qc", "flagged", "call"]})
    ranked = ranked_with_reasons(events, ("ctc", "cluster"))
    assert ranked["event_id"].tolist() == [2, 5, 3, 1, 6, 0, 4]
    assert ranked["reasons"].tolist()[0] == ["cut_by_border"]
    assert ranked["reasons"].tolist()[-1] == ["qc"]


def test_a_cluster_calls_caption_names_its_partner():
    from ctcnet.report.gallery_pages import tile_labels
    from ctcnet.report.reasons import event_reasons

    events = pd.DataFrame({"event_id": [1, 2], "frame_id": ["f"] * 2, "x": [1.0] * 2,
                           "y": [2.0] * 2, "class": ["cluster", "ctc"],
                           "model_class": ["cluster", "cluster"], "confidence": [0.99, 0.9],
                           "review": [False, True], "edge_cut": [False] * 2, "guard": ["", ""],
                           "cluster_partner": ["neutrophil", ""]})
    labels = tile_labels(events, event_reasons(events, ["ctc", "cluster"]), 0.9)
    assert " cluster [partner: neutrophil] p=0.99 after prior " in labels[0]
    # (no partner read on a ctc call)
    assert " ctc (network: cluster p=0.90 after prior) " in labels[1]


def test_a_low_p_caption_tells_the_p_from_the_threshold():
    """p 0.8787 under a threshold of 0.8815 read "low p 0.88 < 0.88"."""
    from ctcnet.report.reasons import caption

    assert caption("low_confidence", 0.8787, 0.8815) == "low p 0.879 < 0.881"
    assert caption("low_confidence", 0.6, 0.9) == "low p 0.60 < 0.90"
