"""A run's index.html: what its display note says of the tiles."""


def test_the_report_names_the_overlays_colour_of_each_channel():
    from ctcnet.report.report_page import display_note

    note = display_note({"channels": ["CK", "CD45", "DAPI", "VIM"], "pixel_size_um": 0.64})
    assert "in colour (CK green, CD45 red, DAPI blue (CK with CD45 yellow); VIM in its own " \
        "panel only)" in note
    # The tiles' field is the model's, not the scan's pixel size the report gives elsewhere.
    note = display_note({"channels": ["DAPI", "CK", "CD45"], "pixel_size_um": 0.78}, 80, 0.64)
    assert "each tile 80 px at the model's 0.64 um/px, 51 um across whatever" in note


def test_the_report_says_what_the_counts_include_and_the_channels_not_read():
    """A six-channel scan read by a three-channel model: the report names the scan's channels
    the model did not read, and what a CTC count includes (no CK: not counted, unless the
    model reads a marker that vouches for it)."""
    from types import SimpleNamespace

    from ctcnet.inference.run_summary import count_definition
    from ctcnet.io.panel import Panel
    from ctcnet.nn.classifier import load_model
    from ctcnet.nn.registry import get_model
    from ctcnet.report.report_page import _counted_as, _unread_channels

    read = SimpleNamespace(run_fingerprint={"plane_order": {
        "file": ["DAPI", "CK", "CD45", "EpCAM", "Vimentin", "free"], "read": [0, 1, 2]}})
    assert _unread_channels(read) == " (the scan's EpCAM, Vimentin, free not read by this model)"
    assert _unread_channels(SimpleNamespace(run_fingerprint={})) == ""
    spec = load_model(get_model("ctcnet-core3").checkpoint)[1]
    shipped = count_definition(spec)
    assert list(shipped["classes"]) == ["ctc", "cluster"]
    assert "A cell without CK is not counted as a CTC" in _counted_as(shipped)
    assert _counted_as(shipped).startswith("ctc: Circulating tumour cell")
    six = spec.replace(panel=Panel.from_dict({"channels": ["DAPI", "CK", "CD45", "Vimentin"]}))
    said = count_definition(six)["ck_negative"]
    assert said.startswith("A CTC without CK is counted where the model calls it so and the "
                           "guard reads Vimentin of its own at the cell (above what DAPI and CK "
                           "leak into it), with no CD45 over the cell (a ctc call with neither "
                           "CK nor Vimentin of its own is held for a person)")
    assert "only its own validation (its card) establishes" in said  # not a claim of ours
    assert "not_guarded" not in shipped
    from ctcnet.io.taxonomy import load_taxonomy

    emt = count_definition(spec.replace(taxonomy=load_taxonomy({
        "classes": ["ctc", "ctc_emt", "wbc", "cluster", "debris"],
        "reported": ["ctc", "ctc_emt", "cluster"]})))
    assert _counted_as(emt).endswith("ctc_emt calls are counted, listed for review and queued "
                                     "where the network doubts them, but the marker guard does "
                                     "not check their markers (a CD45+ cell so called is "
                                     "counted): review every one.")
    # A lab's emt_ctc left out of "reported": its calls have no rate and no guard, said.
    unreported = count_definition(spec.replace(taxonomy=load_taxonomy({
        "classes": ["ctc", "emt_ctc", "wbc", "junk"]})))
    assert _counted_as(unreported).endswith(
        "The taxonomy's emt_ctc, named as a kind of CTC, is not reported (reported: ctc): "
        "neither counted per 7.5 mL nor listed for review; list it in \"reported\" with "
        "\"checked_as\": \"ctc\" to count it, checked as a CTC (docs/data-formats.md).")
    assert "not_reported" not in shipped


def test_each_count_column_says_what_it_means_over_its_heading():
    """A reader of the page alone (no docs beside it) reads what "held by the guard" or "sent
    to review" mean over their headings."""
    import html

    import pandas as pd

    from ctcnet.inference.counts import count_events
    from ctcnet.report.counts_table import COLUMN_MEANINGS, MODEL_COLUMNS, counts_table

    events = pd.DataFrame({"class": ["ctc", "wbc", "ctc"], "guard": ["", "", "no_ck"],
                           "review": [True, False, True]})
    tally = count_events(events, ["ctc", "wbc", "cluster", "debris"], ["ctc", "cluster"], 7.5)
    table = counts_table(tally, None)
    for key, heading in MODEL_COLUMNS:
        assert f'<th scope="col" title="{html.escape(COLUMN_MEANINGS[key])}">{heading}</th>' \
            in table



def test_the_page_says_how_far_a_review_may_move_each_reported_count():
    """A count of 5 with 4 of its calls in doubt and 11 other events listed reads "1 to 16":
    the automatic count alone does not tell a sure 5 from 1 sure and 15 in doubt."""
    import pandas as pd

    from ctcnet.inference.counts import count_events
    from ctcnet.report.counts_table import counts_table

    calls = ["ctc"] * 5 + ["debris"] * 12 + ["wbc"] * 3 + ["ctc"]
    review = [True] * 4 + [False] + [True] * 10 + [False] * 2 + [True] + [False] * 2 + [True]
    guard = [""] * 20 + ["no_dna"]  # one ctc call held by the guard: listed, not counted
    tally = count_events(pd.DataFrame({"class": calls, "review": review, "guard": guard}),
                         ["ctc", "wbc", "cluster", "debris"], ["ctc", "cluster"], 7.5)
    assert tally.counted["ctc"] == 5 and tally.confident["ctc"] == 1
    assert tally.review_span == {"ctc": (1, 5 + 1 + 11), "cluster": (0, 16)}
    table = counts_table(tally, None)
    assert "the count after review may be</th>" in table and "ctc 1 to 17, cluster 0 to 16" \
        in table
    # A failed sample (no result): no span; nor once a sign-off holds (the review is done).
    failed = counts_table(tally, None, no_result=True)
    assert "may be" not in failed
    # Its held row reads no count either (it read "1 (no DNA 1 ...)" beside cells of '-').
    assert 'data-col="held_total">-</td>' in failed
    assert "may be" not in counts_table(tally, None, signed=True)
    # Nor where the channel order is in doubt: no decision corrects it (a swapped CK and CD45
    # read 263 CTCs, "after review 170 to 355", on a sample of 5).
    doubt = counts_table(tally, None, order_in_doubt=True)
    assert "may be" not in doubt and "not what a review settles: the channel order" in doubt
    # Nor once decisions were taken: the after-review column says where the count stands.
    from ctcnet.inference.counts import ReviewedCounts

    decided = ReviewedCounts(tally.classes, tally.reported, dict(tally.counted),
                             dict(tally.counted), dict(tally.counted), 1, 0, 0, 7.5)
    assert "may be" not in counts_table(tally, decided)
    # On a tube of another volume the span is said per 7.5 mL too, as the rates are.
    half = count_events(pd.DataFrame({"class": calls, "review": review, "guard": guard}),
                        ["ctc", "wbc", "cluster", "debris"], ["ctc", "cluster"], 5.0)
    assert "ctc 1 to 17 (1.50 to 25.50 per 7.5 mL)" in counts_table(half, None)
    assert half.review_span_per_7_5_ml["ctc"] == [1.5, 25.5]
    # Said as every other output says a rate: a count a hair under a cut-off of 5 reads 4.99
    # here as in its row above (it read 5.00, at the cut-off); a tie rounds up (13.13).
    near = count_events(pd.DataFrame({"class": ["ctc"] * 5 + ["wbc"] * 2,
                                      "review": [False] * 5 + [True] * 2, "guard": [""] * 7}),
                        ["ctc", "wbc", "cluster", "debris"], ["ctc", "cluster"], 7.503)
    assert "(4.99 to " in counts_table(near, None)
    tie = count_events(pd.DataFrame({"class": ["ctc"] * 5 + ["wbc"] * 2,
                                     "review": [False] * 5 + [True] * 2, "guard": [""] * 7}),
                       ["ctc", "wbc", "cluster", "debris"], ["ctc", "cluster"], 4.0)
    assert "(9.38 to 13.13 per 7.5 mL)" in counts_table(tie, None)


def test_a_gallery_of_calls_the_guard_held_some_of_says_how_many_are_counted():
    import pandas as pd

    from ctcnet.inference.counts import count_events
    from ctcnet.report.report_page import gallery_note

    tally = count_events(pd.DataFrame({"class": ["ctc"] * 8 + ["wbc"] * 2,
                                       "review": [False] * 7 + [True] * 3,
                                       "guard": [""] * 7 + ["out_of_focus", "", ""]}),
                         ["ctc", "wbc", "cluster", "debris"], ["ctc", "cluster"], 7.5)
    assert gallery_note({"shown": 8, "total": 8}, tally, "ctc") == \
        "8 event(s): 7 counted, 1 held by the guard (not counted)"
    assert gallery_note({"shown": 2, "total": 2}, tally, "wbc") == "2 event(s)"
    assert gallery_note({"shown": 5, "total": 8}, tally, "ctc").startswith("5 of 8 shown: 7 ")



def test_a_gallery_page_names_its_events_in_words():
    """A page of tiles is one picture: its text names the events it shows, for a screen
    reader (the captions are pixels)."""
    from ctcnet.report.report_page import page_images

    page = page_images([{"path": "gallery/ctc_001.png", "width": 500,
                         "event_ids": [12, 40]}], "ctc")
    assert 'alt="ctc page 1: events #12, #40, top to bottom' in page
    # The captions drawn into the tiles, where the record keeps them, in words below.
    page = page_images([{"path": "gallery/ctc_001.png", "width": 500, "event_ids": [12, 40],
                         "captions": ["#12 r00c00 ctc p=0.97 | CK<sup>", "#40 r00c01 ctc"]}],
                       "ctc")
    assert "their captions in words below the image" in page
    assert "<ol><li>#12 r00c00 ctc p=0.97 | CK&lt;sup&gt;</li><li>#40 r00c01 ctc</li></ol>" \
        in page
    assert 'alt="ctc page 1"' in page_images([{"path": "g.png", "width": 5}], "ctc")


def test_the_report_names_the_labs_own_record_of_the_scan(clean_run, tmp_path):
    """cartridge.json's keys ctcnet does not read (a draw date, a site) are on the page a
    pathologist signs, beside the sample id, escaped."""
    import json

    from ctcnet.inference.summary import RunSummary
    from ctcnet.report.report_page import write_html

    data = json.loads((clean_run["root"] / "clean" / "summary.json").read_text())
    data["cartridge_info"] = {"draw_date": "2026-11-30", "site": "<B>"}
    write_html(tmp_path, RunSummary.from_dict(data), gallery_info={})
    page = (tmp_path / "index.html").read_text()
    assert '<th scope="row">draw_date</th><td>2026-11-30</td>' in page and "&lt;B&gt;" in page
    assert page.index("draw_date") < page.index('<th scope="row">input</th>')
    # A screen reader's landmarks and table headings: the content in one main, each row
    # and column heading saying which it heads.
    assert page.count("<main>") == 1 and page.index("<h1>") < page.index("</main>") < \
        page.index("<script>")
    assert "<th>" not in page and '<th scope="col">class</th>' in page
    # A simulated cartridge (its truth beside the frames) says so where the sample is named.
    assert data["ground_truth"] and "(simulated: a ground truth lies beside its frames)" in page
    write_html(tmp_path, RunSummary.from_dict({**data, "ground_truth": None}), gallery_info={})
    assert "simulated:" not in (tmp_path / "index.html").read_text()


def test_the_page_says_an_assumed_blood_volume_beside_the_volume_read(clean_run, tmp_path):
    """The rates rest on a volume cartridge.json did not state: said in the run's table as well
    as the headline (a reader of the table saw 7.5 mL as stated)."""
    import json

    from ctcnet.inference.summary import RunSummary
    from ctcnet.report.report_page import write_html

    data = json.loads((clean_run["root"] / "clean" / "summary.json").read_text())
    write_html(tmp_path, RunSummary.from_dict({**data, "blood_volume_stated": False}),
               gallery_info={})
    assert "(assumed: cartridge.json states none)" in (tmp_path / "index.html").read_text()
    write_html(tmp_path, RunSummary.from_dict(data), gallery_info={})
    assert "assumed: cartridge.json" not in (tmp_path / "index.html").read_text()


def test_a_printed_report_has_its_figures_and_sample_on_every_page(clean_run, tmp_path):
    """A record's PDF: before a sign-off the automatic counts with their intervals stand under
    the headline (page 1 ended above the counts table), the sample and the page number on
    every page, the columns' meanings printed (tooltips are lost on paper), what only a screen
    can use left off, each gallery on a page of its own."""
    import json

    from ctcnet.inference.summary import RunSummary
    from ctcnet.report.page_frame import _css_string
    from ctcnet.report.report_page import write_html

    data = json.loads((clean_run["root"] / "clean" / "summary.json").read_text())
    data["sample_id"] = 'PT "7"'
    write_html(tmp_path, RunSummary.from_dict(data), gallery_info={})
    page = (tmp_path / "index.html").read_text()
    head = page[page.index('<p id="result-state"'):page.index("<table")]
    rate = data["per_7_5_ml"]["ctc"]
    assert '<p id="automatic-figures"><b>Automatic counts</b>' in head
    assert f"ctc {data['counts']['ctc']} ({rate:.2f} per 7.5 mL, 95 % blood-draw interval" \
        in head
    assert '@top-left { content: "ctcnet predictions: PT \\22 7\\22 "' in page
    # The model named whole, file and network: the printed record alone proves which.
    assert f"file SHA-256 {data['model']['sha256']}" in page
    assert f"network SHA-256 {data['run_fingerprint']['model_sha256']}" in page
    assert 'content: "page " counter(page) " of " counter(pages)' in page
    assert '<dl class="print-only" id="counts-meanings"><dt>counted</dt>' in page
    assert '<p class="screen-only">Tables:' in page and \
        '<div class="screen-only"><h2>Timings</h2>' in page
    assert _css_string("a\\b<\n") == "a\\5c b\\3c \\a "
    # Signed off, the headline gives the figures to report: no automatic line beside it.
    signed = {**data, "signoff": {"reviewer": "ann", "signed_at": "2026-12-01T10:00:00+00:00",
                                  "status": "current", "decided": 0, "unreviewed": 0}}
    write_html(tmp_path, RunSummary.from_dict(data), gallery_info={},
               signoff=signed["signoff"])
    assert 'id="automatic-figures"' not in (tmp_path / "index.html").read_text()
    # A partial sample signed off stays partial: its page gave the automatic counts "not
    # signed off" under the headline that gave the ones to report.
    write_html(tmp_path, RunSummary.from_dict({**data, "status": "partial"}), gallery_info={},
               signoff=signed["signoff"])
    assert 'id="automatic-figures"' not in (tmp_path / "index.html").read_text()
    # What the signed-off review changed is said above the galleries (they show predict's
    # calls: two rejected CTCs stood among "ctc calls" as counted ones).
    page_record = {"path": "gallery/ctc_001.png", "width": 504, "height": 14 + 8 * 110,
                   "event_ids": list(range(8)), "captions": [f"#{i}" for i in range(8)]}
    changed = {**signed["signoff"], "changed": {"ctc -> rejected": [64, 70],
                                                "debris -> ctc": [85]}}
    write_html(tmp_path, RunSummary.from_dict(data), signoff=changed,
               gallery_info={"ctc": {"total": 8, "shown": 8, "pages": [page_record]}})
    page = (tmp_path / "index.html").read_text()
    assert ("the signed-off review changed ctc -&gt; rejected 2 (#64, #70), debris -&gt; "
            "ctc 1 (#85).") in page
    write_html(tmp_path, RunSummary.from_dict(data), signoff={**changed, "status": "stale"},
               gallery_info={"ctc": {"total": 8, "shown": 8, "pages": [page_record]}})
    assert 'id="reviewed-galleries"' not in (tmp_path / "index.html").read_text()
    # Under review, or its sign-off no longer holding: the decisions so far, said so (a
    # rejected CTC stood among the counted ones with nothing to tell it).
    so_far = {"ctc -> rejected": [72]}
    for record, whose in ((None, "not signed off"),
                          ({**changed, "status": "stale"}, "its sign-off no longer holds")):
        write_html(tmp_path, RunSummary.from_dict(data), signoff=record, changed=so_far,
                   gallery_info={"ctc": {"total": 8, "shown": 8, "pages": [page_record]}})
        assert (f"the review so far ({whose}) changed ctc -&gt; rejected 1 (#72)." in
                (tmp_path / "index.html").read_text())
    # On paper a gallery page's captions are listed in words (a folded list printed its
    # summary alone, and the image fitted to one sheet holds them as specks).
    assert '<details class="screen-only">' in page and \
        '<div class="print-only"><p>ctc page 1, its captions in words:</p><ol><li>#0' in page
    # An empty gallery starts no page of its own: a negative sample's record was blank pages.
    write_html(tmp_path, RunSummary.from_dict(data), gallery_info={
        "ctc": {"total": 8, "shown": 8, "pages": [page_record]},
        "cluster": {"total": 0, "shown": 0, "pages": []}})
    page = (tmp_path / "index.html").read_text()
    assert '<section class="gallery"><h2>ctc calls' in page
    assert '<section class="gallery empty"><h2>cluster calls' in page
    assert "section.gallery.empty { break-before: auto; }" in page


def test_the_report_says_whether_spillover_was_compensated():
    """--compensate moved calls and counts, and the page a person reads and signs said
    nothing of it (summary.json alone had it)."""
    from ctcnet.report.report_page import compensation_text

    assert compensation_text(None).startswith("off")
    said = compensation_text({"source": "CK", "leaks": {"CD45": 0.0856, "CD61": 0.1681},
                               "frames": 4, "ck_events": 731})
    assert said.startswith("on (--compensate): CK's leak taken off the crops before the model")
    assert "CD45 8.6%, CD61 16.8%" in said and "731 CK-bright events" in said


def test_the_held_row_says_held_calls_apart_from_flagged_ones():
    """The report's row of the guard's calls: a ctc call held out of the count is said apart
    from a debris call the guard flagged (nothing held back), as the console says them."""
    from ctcnet.inference.counts import Counts
    from ctcnet.report.counts_table import held_text

    classes = ("ctc", "wbc", "cluster", "debris")
    zero = dict.fromkeys(classes, 0)
    tally = Counts(classes=classes, reported=("ctc", "cluster"), counted=zero,
                   held={**zero, "ctc": 14, "debris": 6}, review=zero, confident=zero,
                   events=100, review_events=20, failed=0, blood_volume_ml=7.5,
                   held_by_flag={"possible_ctc": 20})
    text = held_text(tally)
    assert text.startswith("20 (") and text.endswith(
        "; held from the count: ctc 14; flagged, not a counted call: debris 6)")
    assert held_text(Counts(classes=classes, reported=("ctc", "cluster"), counted=zero,
                            held=zero, review=zero, confident=zero, events=1, review_events=0,
                            failed=0, blood_volume_ml=7.5)) == "0"
