"""The review page's own logic (``ReviewLogic`` in review_page.html), run in a JS engine: where
the cursor goes when a filter changes, and what a key does depending on the focused element;
and the whole page on a stand-in DOM in node (tests/review_server/review_page_dom.js): a decision
redraws its row only, decisions made elsewhere are merged, moving on cancels tile requests.

Node runs it where installed; otherwise headless Chromium (CI installs it for the page test);
without either the tests skip (the stand-in DOM needs node). The whole page is driven in
Chromium by tests/review_server/test_server.py.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ctcnet.review_server.server import PAGE


def logic_source() -> str:
    match = re.search(r'<script id="review-logic">(.*?)</script>', PAGE.read_text(), re.S)
    assert match, "review_page.html has no review-logic script"
    return match.group(1)


def run_js(expression: str):
    """The JSON value of ``expression``, evaluated after the page's logic script."""
    source = logic_source() + f"\nJSON.stringify({expression});"
    node = shutil.which("node") or shutil.which("nodejs")
    if node:
        done = subprocess.run([node, "-e", f"console.log(eval({json.dumps(source)}))"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    from tests.review_server.test_server import Browser, _chromium

    if _chromium() is None:
        pytest.skip("no JS engine (node or chromium) to run the page's logic")
    pytest.importorskip("websocket")
    browser = Browser("about:blank")
    try:
        return json.loads(browser.js(source))
    finally:
        browser.close()


ORDER = [10, 11, 12, 13, 14, 15, 16, 17]


@pytest.mark.parametrize("shown, current, expected", [
    ([11, 13, 15], 13, 1),     # still shown: stays on it
    ([11, 13, 15], 14, 2),     # hidden: the next one shown after it...
    ([11, 13, 15], 12, 1),     # ...wherever the old position was
    ([11, 13, 15], 10, 0),
    ([11, 13, 15], 16, 2),     # nothing shown after it: the last one before it
    ([], 13, 0),               # nothing shown
    ([11, 13, 15], None, 0),   # the cursor was on no event
    ([14], 17, 0),
])
def test_cursor_after_a_filter_change(shown, current, expected):
    got = run_js(f"ReviewLogic.cursorIndex({json.dumps(ORDER)}, {json.dumps(shown)}, "
                 f"{json.dumps(current)})")
    assert got == expected


CLASSES = ["ctc", "wbc", "cluster", "debris"]


@pytest.mark.parametrize("key, target, modifiers, expected", [
    ("Enter", "BUTTON", {}, None),            # the focused button's own press (e.g. reject)
    (" ", "BUTTON", {}, None),
    ("Enter", "A", {}, None),                 # a focused link opens
    # No shortcut: after a decision's button pressed with Enter the focus is on the next
    # event's buttons (a DIV, their group) or the page, and a second Enter must not confirm
    # that event unseen.
    ("Enter", "BODY", {}, None),
    ("Enter", "DIV", {}, None),
    ("y", "BUTTON", {}, {"call": "confirm"}),    # letter shortcuts work wherever focus is
    ("n", "BODY", {}, {"call": "reject"}),
    ("u", "BODY", {}, {"undo": True}),          # the last decision made, not the cursor's
    ("u", "INPUT", {}, None),
    ("3", "BODY", {}, {"call": "cluster"}),
    ("5", "BODY", {}, None),                  # no fifth class
    ("j", "BODY", {}, {"move": 1}),
    ("ArrowUp", "BUTTON", {}, {"move": -1}),
    ("y", "INPUT", {}, None),                 # typing a reviewer name
    ("Enter", "INPUT", {}, None),
    ("n", "SELECT", {}, None),
    ("y", "BODY", {"ctrlKey": True}, None),
    ("x", "BODY", {}, None),
    # A decision key held down repeats: one decision a press, never one per event reached.
    ("y", "BODY", {"repeat": True}, {"held": True}),
    ("n", "BODY", {"repeat": True}, {"held": True}),
    ("2", "BODY", {"repeat": True}, {"held": True}),
    ("u", "BODY", {"repeat": True}, {"held": True}),
    ("j", "BODY", {"repeat": True}, {"move": 1}),   # moving may repeat
    ("y", "INPUT", {"repeat": True}, None),         # typing yyy in a field is typing
    ("Y", "BODY", {}, {"call": "confirm"}),         # Caps Lock on: the same shortcuts
    ("N", "BODY", {"shiftKey": True}, {"call": "reject"}),
    ("Y", "INPUT", {}, None),
])
def test_key_action_depends_on_the_focused_element(key, target, modifiers, expected):
    event = {"key": key, "target": {"tagName": target}, **modifiers}
    got = run_js(f"ReviewLogic.keyAction({json.dumps(event)}, {json.dumps(CLASSES)})")
    assert got == expected


HELD = {"call": "wbc", "held": True, "decision": None,
        "reasons": [{"code": "guard:possible_ctc"}, {"code": "low_confidence"}]}
QC = {"call": "debris", "held": False, "decision": "debris", "reasons": [{"code": "qc"}]}


@pytest.mark.parametrize("candidate, filters, expected", [
    (HELD, {}, True),                                           # no filter
    (HELD, {"reason": "guard"}, True),                          # any flag of the guard
    (QC, {"reason": "guard"}, False),
    (HELD, {"reason": "guard:possible_ctc"}, True),             # one flag
    (HELD, {"reason": "guard:cd45_positive"}, False),
    (HELD, {"reason": "low_confidence"}, True),
    (QC, {"reason": "qc"}, True),
    (QC, {"reason": "qc", "open": True}, False),                # decided: hidden
    (HELD, {"reason": "low_confidence", "cls": "ctc"}, False),  # another call
    (HELD, {"reason": "low_confidence", "cls": "wbc", "open": True}, True),
    (HELD, {"reason": "decided_on"}, False),
    ({**QC, "decided_on": "ctc"}, {"reason": "decided_on"}, True),  # decided on another call
])
def test_filter_by_reason_class_and_decision(candidate, filters, expected):
    got = run_js(f"ReviewLogic.shows({json.dumps(candidate)}, {json.dumps(filters)})")
    assert got == expected


@pytest.mark.skipif(not (shutil.which("node") or shutil.which("nodejs")), reason="no node")
def test_every_script_of_the_page_parses():
    node = shutil.which("node") or shutil.which("nodejs")
    for source in re.findall(r"<script[^>]*>(.*?)</script>", PAGE.read_text(), re.S):
        done = subprocess.run([node, "-e", f"new Function({json.dumps(source)})"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------
# The whole page on a stand-in DOM (tests/review_server/review_page_dom.js): what a decision, a
# poll and a quick move do to the list and to the requests.

HARNESS = Path(__file__).with_name("review_page_dom.js")
CHANNELS = ["DAPI", "CK", "CD45"]


def page_state(n: int, gallery: bool = False) -> dict:
    """A state as the server sends it, of ``n`` candidates whose tiles the server cuts (or,
    ``gallery``, that sit on gallery pages)."""
    classes = ["ctc", "wbc", "cluster", "debris"]
    per_class = {k: 0 for k in classes}
    counts = {"model": {"classes": classes, "counted": per_class, "per_7_5_ml": {"ctc": 0.0},
                        "held": per_class, "review": per_class, "held_total": 0,
                        "held_by_flag": {}},
              "reviewed": {"confirmed": per_class, "confirmed_per_7_5_ml": {"ctc": 0.0},
                           "after_review": per_class, "after_review_per_7_5_ml": {"ctc": 0.0},
                           "decided": per_class, "rejected": 0, "unattached": 0}}
    gallery_tile = {"src": "/files/P001/gallery/ctc_001.png?run=R", "width": 600,
                    "page_height": 900, "header": 14, "top": 14, "height": 120}
    candidates = [{
        "event_id": i, "frame_id": "r00c00", "x": 10.0, "y": 20.0, "call": classes[i % 2],
        "confidence": 0.5, "model_call": classes[i % 2], "flagged": True,
        "edge_cut": False, "held": False,
        "why": "flagged",
        "reasons": [{"code": "low_confidence", "caption": "low p", "meaning": "low p"}],
        "tile": dict(gallery_tile) if gallery else
        {"src": f"/api/P001/tile/{i}.png?run=R"},
        "context": f"/api/P001/context/{i}.png?run=R",
        "markers": [30.5, 0.4, None], "measures": {}, "decision": None} for i in range(n)]
    return {"sample": "P001", "run_id": "R", "reviewer": "tester", "classes": classes,
            "reported": ["ctc", "cluster"], "review_threshold": 0.9, "channels": CHANNELS,
            "reasons": [], "candidates": candidates, "counts": counts, "stamp": "s1",
            "unattached": [], "saliency": True}


def run_page(scenario: str, state: dict, page=PAGE, search: str = "", before: str = ""):
    """Open the page on the stand-in DOM, the server answering with ``state``, and run
    ``scenario`` (the body of an async function: ``page``, ``state``, ``routes`` in scope);
    returns what it returns. Decisions are answered as saved, polls as "unchanged" and tile
    requests are held open, unless ``routes`` (``[url prefix, reply or function]``, first
    match wins) says otherwise. ``search``: the page address's query (``?reading=second``).
    ``before``: run once the page's scripts ran, before its state is answered (what an
    earlier page left in ``page.context.localStorage``)."""
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        pytest.skip("no node to run the page")
    script = f"""
const {{openPage}} = require({json.dumps(str(HARNESS))});
const state = {json.dumps(state)};
const routes = [];
function answer(url, options) {{
  for (const [prefix, reply] of routes) {{
    if (url.startsWith(prefix)) return typeof reply === "function" ? reply(url, options) : reply;
  }}
  if (url === "/api/P001/state") return {{json: state}};
  if (url.startsWith("/api/P001/state?reading=")) {{  // as the server answers it
    return url.endsWith("=second") ? {{json: state}} :
      {{status: 400, json: {{error: "reading must be 'first' or 'second'"}}}};
  }}
  if (url.startsWith("/api/P001/state?since=")) return {{json: {{stamp: "s1", unchanged: true}}}};
  if (url === "/api/P001/decision") {{
    const body = JSON.parse(options.body);
    const c = state.candidates.find((c) => c.event_id === body.event_id);
    const decision = body.call === "confirm" ? c.call : body.call === "reject" ? "rejected" :
      body.call === "undecided" ? null : body.call;
    return {{json: {{event_id: body.event_id, decision, counts: state.counts,
                    previous: "s1", stamp: "s2"}}}};
  }}
  return "hold";
}}
(async () => {{
  const page = openPage({json.dumps(str(page))}, answer, undefined, {json.dumps(search)});
  {before}
  await page.settle();
  const result = await (async () => {{ {scenario} }})();
  console.log(JSON.stringify(result === undefined ? null : result));
}})().catch((e) => {{ console.error((e && e.stack) || String(e)); process.exit(1); }});
"""
    done = subprocess.run([node, "-"], input=script, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_saved_decision_redraws_its_own_row_only():
    got = run_page("""
        const before = page.rows().slice();
        const made = page.document.made;
        page.key("y");
        await page.settle();
        const after = page.rows();
        const post = page.requests.filter((r) => r.method === "POST");
        return {same: after.every((row, i) => row === before[i]), rows: after.length,
                made: page.document.made - made, posted: post.map((r) => JSON.parse(r.body)),
                decision: after[0].getAttribute("data-decision"),
                verdict: after[0].lastChild.textContent,
                current: page.document.getElementById("list").children
                  .filter((r) => r.className === "current").map((r) => r.dataset.eventId),
                saved: page.document.body.getAttribute("data-saved")};
    """, page_state(600))
    # "was": the decision the page showed (none), so another reviewer's made since is kept.
    assert got["posted"] == [{"event_id": 0, "call": "confirm", "reviewer": "tester",
                              "run_id": "R", "reading": "first", "was": None}]
    assert got["saved"] == "1" and got["decision"] == "ctc" and got["verdict"] == "confirmed"
    # Every row is the element it was, and a few dozen elements were made (the event panel,
    # the counts), not a list of 600 rows of four elements each.
    assert got["same"] and got["rows"] == 600 and got["made"] < 100
    assert got["current"] == ["1"]


def test_under_undecided_only_a_decision_takes_out_its_row_and_nothing_else():
    got = run_page("""
        const open = page.document.getElementById("filter-open");
        open.checked = true;
        open.dispatchEvent({type: "change"});
        page.run("setCursor(3)");
        const before = page.rows().slice();
        page.key("n");
        await page.settle();
        const after = page.rows();
        return {ids: after.map((r) => +r.dataset.eventId),
                kept: after.every((row) => before.includes(row)),
                current: after.filter((r) => r.className === "current")
                  .map((r) => +r.dataset.eventId),
                shown: page.run("shown.length")};
    """, page_state(8))
    assert got["ids"] == [0, 1, 2, 4, 5, 6, 7] and got["kept"] and got["shown"] == 7
    assert got["current"] == [4]  # on to the next one, still there after the row went


def test_decisions_made_elsewhere_are_merged_into_their_rows():
    state = page_state(6)
    counts = json.loads(json.dumps(state["counts"]))
    counts["reviewed"]["rejected"] = 1
    got = run_page("""
        routes.push(["/api/P001/state?since=s1", {json: {stamp: "s7", counts: COUNTS,
                     decisions: [[2, "wbc"], [4, "rejected"]]}}]);
        const before = page.rows().slice();
        page.timers.forEach((tick) => tick());  // the poll every few seconds
        await page.settle();
        const rows = page.rows();
        const first = {decisions: rows.map((r) => r.getAttribute("data-decision")),
                       same: rows.every((row, i) => row === before[i]),
                       merged: page.document.body.getAttribute("data-merged"),
                       rejected: page.document.getElementById("summary").children
                         .find((tr) => tr.textContent.startsWith("rejected")).textContent,
                       stamp: page.run("stamp")};
        // Taken back elsewhere: undecided here too; the next poll asks from the new stamp.
        routes.unshift(["/api/P001/state?since=s7", {json: {stamp: "s8", counts: COUNTS,
                        decisions: [[4, "rejected"]]}}]);
        page.timers.forEach((tick) => tick());
        await page.settle();
        const asked = page.requests.filter((r) => r.url.includes("since="))
          .map((r) => r.url.split("?")[1].split("&")[0]);
        return {first, asked, decisions: page.rows().map((r) => r.getAttribute("data-decision"))};
    """.replace("COUNTS", json.dumps(counts)), state)
    first = got["first"]
    assert first["decisions"] == ["", "", "wbc", "", "rejected", ""] and first["same"]
    assert first["merged"] == "2" and first["rejected"] == "rejected1" and first["stamp"] == "s7"
    assert got["asked"] == ["since=s1", "since=s7"]
    assert got["decisions"] == ["", "", "", "", "rejected", ""]


def test_a_poll_answered_while_a_decision_is_saved_does_not_undo_it():
    got = run_page("""
        routes.push(["/api/P001/decision", () => "hold"]);
        page.key("y");                          // in flight, not yet answered
        routes.unshift(["/api/P001/state?since=", {json: {stamp: "s5", counts: state.counts,
                        decisions: [[3, "wbc"]]}}]);
        page.timers.forEach((tick) => tick());
        await page.settle();
        return {decisions: page.rows().map((r) => r.getAttribute("data-decision")),
                stamp: page.run("stamp")};
    """, page_state(4))
    # Not merged (nothing changes on screen, the stamp stays): the next poll will.
    assert got == {"decisions": ["", "", "", ""], "stamp": "s1"}


def test_moving_on_cancels_the_tiles_the_page_no_longer_shows():
    got = run_page("""
        for (let k = 0; k < 9; k++) page.key("j");
        await page.settle();
        const tiles = page.requests.filter((r) => r.url.includes("/tile/"));
        return tiles.map((r) => [r.url.split("?")[0], r.aborted]);
    """, page_state(20))
    assert len(got) == 10
    assert [url for url, _ in got] == [f"/api/P001/tile/{i}.png" for i in range(10)]
    assert [aborted for _, aborted in got] == [True] * 9 + [False]  # the last one only


def test_context_zoom_and_saliency_keys():
    got = run_page("""
        page.key("c");
        await page.settle();
        const context = page.requests.filter((r) => r.url.includes("/context/")).map((r) => r.url);
        const caption = page.document.querySelectorAll("#context p")[0].textContent;
        page.key("z");
        const zoomed = page.document.getElementById("tile").className;
        page.key("s");
        const drawing = page.document.getElementById("status").textContent;
        const tiles = page.requests.filter((r) => r.url.includes("/tile/")).map((r) => r.url);
        page.document.getElementById("tile").click();  // a click zooms back out
        return {context, zoomed, tiles, drawing, caption,
                after: page.document.getElementById("tile").className};
    """, page_state(3))
    # The context's caption in the page's type (drawn into the image it was ~5 px high).
    assert got["caption"].startswith("the frame round #0 (3 fields of view across")
    # Drawn by the model on demand (seconds on a CPU): the page says so while it takes.
    assert got["drawing"] == "drawing the saliency row of #0 (a few seconds)..."
    assert got["context"] == ["/api/P001/context/0.png?run=R"]
    assert got["zoomed"] == "zoomed" and got["after"] == ""
    assert got["tiles"][-1] == "/api/P001/tile/0.png?run=R&saliency=1"


def test_saliency_key_says_why_where_the_server_has_none():
    state = page_state(2)
    state["saliency"] = False  # --no-saliency, or an install without torch
    got = run_page("""
        page.key("s");
        await page.settle();
        return {tiles: page.requests.filter((r) => r.url.includes("saliency=1")).length,
                status: page.document.getElementById("status").textContent};
    """, state)
    assert got["tiles"] == 0
    assert "no saliency maps from this server" in got["status"]


def test_markers_are_written_beside_the_event():
    got = run_page("""
        return page.document.getElementById("markers").textContent;
    """, page_state(2, gallery=True))
    assert got == "mean in noise units: DAPI 30.5, CK 0.4"


def test_a_plane_the_model_does_not_read_is_written_beside_the_event():
    """A therapy plane's mean (raw counts) beside the channels', and whether the sample's
    figure counts this CTC above its leukocytes: a reviewer looking at the HER2+ CTCs had
    nowhere to read it."""
    state = page_state(2, gallery=True)
    state["candidates"][0]["unread"] = [{"plane": "HER2-FITC", "mean": 312.46, "line": 190.0,
                                         "above": True}]
    state["candidates"][1]["unread"] = [{"plane": "HER2-FITC", "mean": 176.0, "line": 180.25,
                                         "above": None}]
    got = run_page("""
        const first = page.document.getElementById("markers").textContent;
        page.key("ArrowDown");
        await page.settle();
        return [first, page.document.getElementById("markers").textContent];
    """, state)
    assert got[0] == ("mean in noise units: DAPI 30.5, CK 0.4; not read by the model: "
                      "HER2-FITC 312.5 counts (over its line 190.0), above in the automatic "
                      "count")
    assert got[1].endswith("not read by the model: HER2-FITC 176.0 counts (under its line "
                           "180.3)")


def test_a_decision_taken_back_elsewhere_brings_its_row_back_in_place():
    state = page_state(6)
    for c in state["candidates"]:
        c["decision"] = "rejected" if c["event_id"] in (1, 3) else None
    got = run_page("""
        const open = page.document.getElementById("filter-open");
        open.checked = true;
        open.dispatchEvent({type: "change"});
        const hidden = page.rows().map((r) => +r.dataset.eventId);
        routes.push(["/api/P001/state?since=s1", {json: {stamp: "s2", counts: state.counts,
                     decisions: [[1, "rejected"]]}}]);
        page.timers.forEach((tick) => tick());
        await page.settle();
        return {hidden, shown: page.rows().map((r) => +r.dataset.eventId),
                list: page.run("shown.map(function (c) { return c.event_id; })")};
    """, state)
    assert got["hidden"] == [0, 2, 4, 5]
    assert got["shown"] == got["list"] == [0, 2, 3, 4, 5]


# ---------------------------------------------------------------------------------------------
# Undo (u and its button) and decisions the server did not save.

CURRENT_ROW = """page.rows().filter((r) => r.className === "current")
                   .map((r) => +r.dataset.eventId)[0]"""
POSTED = """page.requests.filter((r) => r.url === "/api/P001/decision")
                 .map((r) => [JSON.parse(r.body).event_id, JSON.parse(r.body).call])"""


def test_u_takes_back_the_last_decision_made_and_goes_back_to_its_event():
    state = page_state(6)
    state["candidates"][2]["decision"] = "rejected"
    got = run_page(f"""
        const look = () => ({{current: {CURRENT_ROW},
            panel: page.document.getElementById("info").textContent.split(" ")[1],
            decisions: page.rows().map((r) => r.getAttribute("data-decision")),
            undo: page.document.getElementById("undo-button").textContent,
            disabled: page.document.getElementById("undo-button").disabled}});
        page.key("y");                    // #0 confirmed; the cursor moves on to #1
        await page.settle();
        page.key("j");
        page.key("3");                    // #2, rejected before, relabelled; the cursor on #3
        await page.settle();
        const decided = look();
        page.key("u");                    // takes back #2's relabelling, not #3's nothing
        await page.settle();
        const once = look();
        page.document.getElementById("undo-button").click();   // the button: the one before
        await page.settle();
        const twice = look();
        page.key("u");                    // nothing left to take back
        await page.settle();
        return {{decided, once, twice, posted: {POSTED},
                status: page.document.getElementById("status").textContent}};
    """, state)
    assert got["decided"] == {"current": 3, "panel": "#3",
                              "decisions": ["ctc", "", "cluster", "", "", ""],
                              "undo": "undo #2 (u)", "disabled": False}
    # Back to the event (its row and its panel), as it was before (rejected), wherever the
    # cursor was.
    assert got["once"] == {"current": 2, "panel": "#2",
                           "decisions": ["ctc", "", "rejected", "", "", ""],
                           "undo": "undo #0 (u)", "disabled": False}
    assert got["twice"] == {"current": 0, "panel": "#0",
                            "decisions": ["", "", "rejected", "", "", ""],
                            "undo": "undo (u)", "disabled": True}
    assert got["posted"] == [[0, "confirm"], [2, "cluster"], [2, "reject"], [0, "undecided"]]
    assert got["status"] == "nothing to undo"


def test_u_on_an_event_a_filter_now_hides_clears_the_filter_and_shows_it():
    """Rejected under one class filter, then another chosen: u said "undone #0" while the
    panel showed another event, which the next key decided in its place."""
    got = run_page(f"""
        page.key("n");                    // #0 (a ctc call) rejected
        await page.settle();
        const cls = page.document.getElementById("filter-class");
        cls.value = "wbc";                // #0 no longer shown
        cls.dispatchEvent({{type: "change"}});
        page.key("u");
        await page.settle();
        return {{current: {CURRENT_ROW}, cls: cls.value,
                panel: page.document.getElementById("info").textContent.split(" ")[1],
                status: page.document.getElementById("status").textContent}};
    """, page_state(6))
    assert got["current"] == 0 and got["panel"] == "#0" and got["cls"] == ""
    assert got["status"].startswith("undone #0: undecided again")
    assert "filters cleared to show it" in got["status"]


def test_u_under_undecided_only_clears_it_and_stays_on_the_event():
    """Under "undecided only" the event taken back is decided (until the undo is saved, and
    for good where the undo brings back an earlier decision): u said "undone #0" with the
    cursor on another event, which a key pressed meanwhile decided unseen."""
    got = run_page(f"""
        page.key("y");                    // #0 confirmed, the cursor on #1
        await page.settle();
        page.key("k");                    // back to #0, relabelled: its decision now wbc
        page.key("2");
        await page.settle();
        const open = page.document.getElementById("filter-open");
        open.checked = true;              // #0 no longer shown
        open.dispatchEvent({{type: "change"}});
        page.key("u");
        const during = {CURRENT_ROW};      // before the undo is answered
        await page.settle();
        return {{during, current: {CURRENT_ROW}, open: open.checked,
                status: page.document.getElementById("status").textContent}};
    """, page_state(6))
    assert got["during"] == 0 and got["current"] == 0 and not got["open"]
    assert got["status"].startswith("undone #0: ctc again")
    assert '"undecided only" cleared to show it' in got["status"]
    # u at once after y, its save not yet answered: #0 is undecided again once undone, so
    # "undecided only" stays (clearing it lost the reviewer's filter) and #0 is kept in the
    # list while the undo is saved (the answer hid it, the cursor on #1 meanwhile).
    got = run_page(f"""
        const open = page.document.getElementById("filter-open");
        open.checked = true;
        open.dispatchEvent({{type: "change"}});
        await page.settle();
        page.key("y");
        page.key("u");
        const during = {CURRENT_ROW};
        await page.settle();
        return {{during, current: {CURRENT_ROW}, open: open.checked,
                rows: page.rows().map((r) => +r.dataset.eventId)}};
    """, page_state(6))
    assert got == {"during": 0, "current": 0, "open": True, "rows": [0, 1, 2, 3, 4, 5]}
    # Decided again once undone, it goes: no decided row is left under "undecided only".
    got = run_page(f"""
        const open = page.document.getElementById("filter-open");
        open.checked = true;
        open.dispatchEvent({{type: "change"}});
        await page.settle();
        page.key("y");
        await page.settle();
        page.key("u");
        await page.settle();
        page.key("y");
        await page.settle();
        return {{current: {CURRENT_ROW}, rows: page.rows().map((r) => +r.dataset.eventId)}};
    """, page_state(6))
    assert got == {"current": 1, "rows": [1, 2, 3, 4, 5]}


def test_the_undo_button_in_the_grid_leaves_the_grid_as_u_does():
    """The header's button took a decision back while the grid stayed up: the event taken
    back was drawn in a hidden panel."""
    got = run_page(GRID_ROUTE + """
        page.key("y");                    // #0 confirmed one at a time
        await page.settle();
        page.key("g");
        await page.settle();
        page.document.getElementById("undo-button").click();
        await page.settle();
        return {grid: page.document.body.getAttribute("data-grid"),
                status: page.document.getElementById("status").textContent};
    """, page_state(10))
    assert got["grid"] == "off" and got["status"].startswith("undone #0: undecided again")


def test_u_waits_for_the_decision_it_takes_back_and_leaves_one_made_elsewhere():
    got = run_page(f"""
        page.key("y");
        page.key("u");                    // before #0's decision is answered
        await page.settle();
        const quick = {{posted: {POSTED}, current: {CURRENT_ROW},
                       decision: page.rows()[0].getAttribute("data-decision")}};
        page.key("n");                    // #0 rejected here, then made wbc elsewhere
        await page.settle();
        routes.push(["/api/P001/state?since=", {{json: {{stamp: "s9", counts: state.counts,
                     decisions: [[0, "wbc"]]}}}}]);
        page.timers.forEach((tick) => tick());
        await page.settle();
        page.key("u");
        await page.settle();
        return {{quick, posted: {POSTED}, decision: page.rows()[0].getAttribute("data-decision"),
                status: page.document.getElementById("status").textContent}};
    """, page_state(4))
    assert got["quick"] == {"posted": [[0, "confirm"], [0, "undecided"]], "current": 0,
                            "decision": ""}
    # The other reviewer's call stands: nothing is posted, and the page says why.
    assert got["posted"] == [[0, "confirm"], [0, "undecided"], [0, "reject"]]
    assert got["decision"] == "wbc" and "not undone: #0" in got["status"]


STALE = ("the request names run R of P001, but its results hold run S: predict wrote them "
         "again since the page was loaded (or the request names another run): reload the page")


def test_a_decision_not_saved_stays_said_until_it_is_saved():
    got = run_page("""
        const said = () => page.document.getElementById("status").textContent + " | " +
          (page.document.getElementById("unsaved") || {textContent: ""}).textContent;
        routes.push(["/api/P001/decision", {status: 500, json: {error: "disk full"}}]);
        page.key("y");                    // not saved: the cursor goes back to #0
        await page.settle();
        const failed = said();
        const panel = page.document.getElementById("info").textContent.split(" ")[1];
        page.key("j");
        await page.settle();
        const moved = said();
        page.key("k");
        routes.shift();                   // the disk has room again: #0 decided again, saved
        page.key("y");
        await page.settle();
        return {failed, panel, moved, saved: said(),
                unsaved: page.document.body.getAttribute("data-unsaved")};
    """, page_state(4))
    assert "not saved #0: disk full" in got["failed"] and "not saved #0" in got["moved"]
    assert got["panel"] == "#0"  # the event shown is the one the cursor went back to
    assert "not saved" not in got["saved"] and got["unsaved"] == "0"


def test_on_a_stale_page_not_saved_stays_until_the_page_is_reloaded():
    got = run_page(f"""
        const said = () => page.document.getElementById("status").textContent + " | " +
          (page.document.getElementById("unsaved") || {{textContent: ""}}).textContent;
        const stale = {{status: 409, json: {{error: {json.dumps(STALE)}, stale: true}}}};
        routes.push(["/api/P001/decision", stale], ["/api/P001/tile/", stale],
                    ["/api/P001/context/", stale]);
        page.key("y");                    // refused: the tile of #0 is asked for again, refused
        await page.settle();
        const first = said();
        page.key("j");                    // more tiles refused, more decisions refused
        page.key("n");
        await page.settle();
        page.key("c");
        page.timers.forEach((tick) => tick());
        await page.settle();
        return {{first, later: said(),
                reload: page.document.getElementById("reload").style.display}};
    """, page_state(4))
    assert f"not saved #0: {STALE}" in got["first"]
    assert f"not saved #0, #1: {STALE}" in got["later"] and got["reload"] == "inline"


def test_results_being_written_keep_the_page_asking_until_they_are_a_new_run():
    """A poll that landed while predict rewrote the results stopped the polling: the page
    said "being written" for good after predict had finished."""
    got = run_page("""
        const said = () => page.document.getElementById("status").textContent;
        routes.push(["/api/P001/state?since=", {status: 503, json: {
            error: "the results of P001 are being written", stale: true}}]);
        page.timers.forEach((tick) => tick());
        await page.settle();
        const writing = said();
        const reloadWhileWriting = page.document.getElementById("reload").style.display || "";
        routes[0][1] = {status: 409, json: {error: "predict wrote them again: reload the page",
                                           stale: true}};
        page.timers.forEach((tick) => tick());
        await page.settle();
        return {writing, reloadWhileWriting, after: said(),
                reload: page.document.getElementById("reload").style.display};
    """, page_state(2))
    assert "being written" in got["writing"] and got["reloadWhileWriting"] != "inline"
    assert "predict wrote them again" in got["after"] and got["reload"] == "inline"


def test_a_sign_off_of_the_calls_before_a_rerun_is_said_not_read_as_never_signed():
    state = page_state(2)
    state["signoff"] = {"reviewer": "ann", "signed_at": "2026-12-01T08:00:00+00:00",
                        "status": "calls changed since"}
    got = run_page("""
        const text = page.document.getElementById("signoff-text");
        return [text.textContent, text.getAttribute("data-status")];
    """, state)
    assert got[0].startswith("sign-off no longer holds: signed off by ann on "
                             "2026-12-01T08:00:00+00:00 (of the calls "
                             "before predict ran again, not of these")
    assert got[1] == "calls changed since"


def test_a_sign_off_that_decisions_changed_since_says_first_that_it_no_longer_holds():
    """The page's line led with "signed off by" and ended "(decisions changed since)": read at
    a glance as signed, where the report's box says it no longer holds."""
    state = page_state(2)
    state["signoff"] = {"reviewer": "ann", "signed_at": "2026-12-01T08:00:00+00:00",
                        "status": "changed since"}
    got = run_page("""
        return page.document.getElementById("signoff-text").textContent;
    """, state)
    assert got.startswith("sign-off no longer holds: signed off by ann")
    assert got.endswith("(decisions changed since: sign off again)")
    state["signoff"]["status"] = "current"
    assert run_page("""
        return page.document.getElementById("signoff-text").textContent;
    """, state) == "signed off by ann on 2026-12-01T08:00:00+00:00"


def test_the_sign_off_preview_names_counted_calls_nobody_confirmed():
    state = page_state(4)
    state["signoff"] = None
    got = run_page("""
        page.document.getElementById("signoff-button").click();
        return page.document.getElementById("signoff-text").textContent;
    """, state)
    counted = sum(c["call"] in state["reported"] and not c.get("held")
                  for c in state["candidates"])
    assert counted and f"{counted} of them counted calls ({', '.join(state['reported'])}) " \
        "nobody confirmed" in got and "a sign-off leaving them needs one" in got


def test_the_sign_off_preview_names_the_readers_disagreements_left_on_a_counted_class():
    """A first reader's wbc against a second's ctc, not adjudicated: a possible missed CTC,
    which the preview names as the server asks a note for it (an adjudicated one, or one
    between uncounted classes, is not)."""
    state = page_state(2)
    state["signoff"] = None
    for c in state["candidates"]:
        c["decision"] = c["call"] if c.get("held") or c["call"] in state["reported"] else None
    state["agreement"] = {"both": 3, "agree": 0, "kappa": 0.0, "disagreements": [
        {"event_id": 1, "first": "wbc", "second": "ctc", "adjudicated": False},
        {"event_id": 2, "first": "ctc", "second": "rejected", "adjudicated": True},
        {"event_id": 3, "first": "wbc", "second": "debris", "adjudicated": False}]}
    got = run_page("""
        page.document.getElementById("signoff-button").click();
        return page.document.getElementById("signoff-text").textContent;
    """, state)
    assert "; 1 disagreement(s) of the readers on a counted class not adjudicated" in got
    assert "a sign-off leaving them needs one" in got


# ---------------------------------------------------------------------------------------------
# The grid, the channel sliders, the sign-off and the second reading on the stand-in DOM.

def test_grid_page_is_of_one_call_undecided_and_not_set_aside():
    candidates = [{"event_id": i, "call": ["wbc", "ctc"][i % 3 == 0],
                   "decision": "wbc" if i == 4 else None, "reasons": []} for i in range(12)]
    got = run_js(f"ReviewLogic.gridPage({json.dumps(candidates)}, {{}}, 'wbc', {{'5': true}}, "
                 "3).map(function (c) { return c.event_id; })")
    assert got == [1, 2, 7]  # 4 decided, 5 set aside as an exception, 3 and 6 are ctc calls


def test_a_grid_page_leaves_out_what_a_person_must_look_at_alone():
    """A guard flag (a possible missed CTC), a call the markers made and a CTC or cluster the
    likeliest are never confirmed with a page of others: they are looked at one by one."""
    def candidate(i, held=False, code="low_confidence"):
        return {"event_id": i, "call": "debris", "decision": None, "held": held,
                "reasons": [{"code": code}]}

    candidates = [candidate(0), candidate(1, held=True), candidate(2, code="markers"),
                  candidate(3, code="counted_likeliest"), candidate(4, code="qc")]
    got = run_js(f"ReviewLogic.gridPage({json.dumps(candidates)}, {{}}, 'debris', {{}}, "
                 "10).map(function (c) { return c.event_id; })")
    assert got == [0, 4]


def test_grid_tiles_are_marked_from_the_keyboard():
    got = run_page(GRID_ROUTE + """
        page.key("g");
        await page.settle();
        const cells = () => page.document.getElementById("grid-cells").children;
        const cell = cells()[1];
        const role = [cell.getAttribute("role"), cell.getAttribute("tabindex")];
        page.document.getElementById("grid-cells").listeners.keydown[0](
          {key: " ", target: cell, preventDefault() {}, stopPropagation() {}});
        const pressed = cell.getAttribute("aria-pressed");
        const marked = cells().filter((c) => c.className === "cell marked").length;
        return {role, pressed, marked};
    """, page_state(10))
    assert got["role"] == ["button", "0"] and got["pressed"] == "true" and got["marked"] == 1


def test_channel_gain_of_a_slider():
    assert run_js("[ReviewLogic.gain(0), ReviewLogic.gain(10), ReviewLogic.gain(-20)]") == [
        1, 2, 0.25]


GRID_ROUTE = """
routes.push(["/api/P001/decisions", (url, options) => {
  const body = JSON.parse(options.body);
  return {json: {decisions: body.event_ids.map((id) => {
    const c = state.candidates.find((c) => c.event_id === id);
    return [id, body.call === "confirm" ? c.call : "rejected"];
  }), counts: state.counts, previous: "s1", stamp: "s2", signoff: null}};
}]);
"""


def test_grid_confirms_a_page_in_one_request_and_sets_the_exceptions_aside():
    got = run_page(GRID_ROUTE + """
        page.key("g");
        await page.settle();
        const said = page.document.getElementById("status").textContent;
        const cells = () => page.document.getElementById("grid-cells").children;
        const first = cells().map((c) => +c.getAttribute("data-event-id"));
        cells()[2].click();                      // an exception
        cells()[2].click();                      // changed their mind
        cells()[5].click();
        const marked = cells().filter((c) => c.className === "cell marked").length;
        page.key("y");
        await page.settle();
        const posts = page.requests.filter((r) => r.method === "POST");
        const next = cells().map((c) => +c.getAttribute("data-event-id"));
        page.key("g");
        return {first, said, marked, posted: posts.map((r) => [r.url, JSON.parse(r.body)]), next,
                decided: page.document.body.getAttribute("data-grid-decided"),
                grid: page.document.body.getAttribute("data-grid"),
                rows: page.rows().filter((r) => r.getAttribute("data-decision")).length};
    """, page_state(400))
    # page_state alternates ctc and wbc calls: the grid opens on the uncounted one (a page
    # of ctc calls confirmed by a y meant for one event held doubted CTC calls), and says so.
    wbc = [i for i in range(400) if i % 2 == 1]
    assert got["first"] == wbc[:100] and got["marked"] == 1
    assert got["said"].startswith("grid shown: a page of 100 wbc call(s); y confirms them all")
    assert len(got["posted"]) == 1
    url, body = got["posted"][0]
    assert url == "/api/P001/decisions" and body["call"] == "confirm"
    assert body["event_ids"] == [e for e in wbc[:100] if e != wbc[5]]
    assert got["decided"] == "99" and got["rows"] == 99
    assert got["next"] == wbc[100:200]       # the exception is not put back on the page
    assert got["grid"] == "off"


def test_grid_exceptions_stay_set_aside_after_a_reload_and_marks_across_a_call_switch():
    """Tiles marked "not what the call says" came back on a grid page unmarked after a reload
    (or a switch to another call and back), for y to confirm; a page of exceptions alone
    set nothing aside."""
    state = page_state(40)
    wbc = [i for i in range(40) if i % 2 == 1]
    left = run_page(GRID_ROUTE + """
        page.key("g");
        await page.settle();
        const cells = () => page.document.getElementById("grid-cells").children;
        cells()[0].click();
        cells()[3].click();
        const select = page.document.getElementById("grid-call");
        select.value = "ctc";
        select.dispatchEvent({type: "change"});
        select.value = "wbc";
        select.dispatchEvent({type: "change"});
        const kept = cells().filter((c) => c.className === "cell marked").map(
          (c) => +c.getAttribute("data-event-id"));
        page.key("y");
        await page.settle();
        return {kept, stored: page.context.localStorage.getItem("ctcnet-set-aside-P001")};
    """, state)
    assert left["kept"] == [wbc[0], wbc[3]]
    assert json.loads(left["stored"]) == {"run": state["run_id"], "ids": [wbc[0], wbc[3]]}
    before = ("page.context.localStorage.setItem('ctcnet-set-aside-P001', "
              f"{json.dumps(left['stored'])});")
    reloaded = """
        page.key("g");
        await page.settle();
        return page.document.getElementById("grid-cells").children.map(
          (c) => +c.getAttribute("data-event-id"));
    """
    shown = run_page(GRID_ROUTE + reloaded, state, before=before)
    assert wbc[0] not in shown and wbc[3] not in shown and shown[0] == wbc[1]
    # Another run's memory sets nothing aside.
    other = json.dumps(json.dumps({"run": "another", "ids": [wbc[0]]}))
    assert run_page(GRID_ROUTE + reloaded, state, before="page.context.localStorage.setItem("
                    f"'ctcnet-set-aside-P001', {other});")[0] == wbc[0]
    # A page of exceptions alone: set aside, the next page follows, nothing posted.
    got = run_page(GRID_ROUTE + """
        page.key("g");
        await page.settle();
        const cells = () => page.document.getElementById("grid-cells").children;
        cells().forEach((c) => c.click());
        page.key("y");
        await page.settle();
        return {posts: page.requests.filter((r) => r.method === "POST").length,
                said: page.document.getElementById("status").textContent,
                shown: cells().length};
    """, state)
    assert got["posts"] == 0 and got["shown"] == 0
    assert got["said"].startswith("20 exception(s) left for one-by-one review")


def test_a_decided_grid_page_keeps_the_focus_and_its_menu_counts():
    """The tile that had the focus is drawn away with its page: the focus went to the page's
    top, and the call menu still said the counts of when the grid was opened."""
    got = run_page(GRID_ROUTE + """
        page.key("g");
        await page.settle();
        const cells = () => page.document.getElementById("grid-cells").children;
        cells()[3].focus();
        page.key("y", cells()[3]);
        await page.settle();
        const focused = page.document.activeElement;
        const menu = page.document.getElementById("grid-call").children.map(
          (o) => o.textContent);
        return {tile: focused.getAttribute("data-event-id"), first: cells()[0] === focused,
                menu};
    """, page_state(400))
    assert got["first"] and got["tile"] == "201"   # the next page's first wbc tile
    assert "wbc (100 undecided)" in got["menu"] and "ctc (200 undecided)" in got["menu"]


def test_escape_and_the_undo_button_give_the_focus_to_the_current_row():
    """Escape out of a menu, and the undo button, dropped the focus on the page's body: a
    screen reader then starts again at the top of the page."""
    got = run_page("""
        const rowFocused = () => page.document.activeElement.parentNode ===
          page.document.getElementById("list");
        const menu = page.document.getElementById("filter-class");
        menu.focus();
        page.key("Escape", menu);
        const afterEscape = [rowFocused(), page.document.activeElement.getAttribute(
          "data-event-id")];
        page.key("y", page.document.activeElement);
        await page.settle();
        const undo = page.document.getElementById("undo-button");
        undo.focus();
        undo.click();
        await page.settle();
        return {afterEscape, afterUndo: [rowFocused(), page.document.activeElement.getAttribute(
          "data-event-id")]};
    """, page_state(3))
    assert got == {"afterEscape": [True, "0"], "afterUndo": [True, "0"]}


def test_a_grid_page_ends_what_u_takes_back():
    got = run_page(GRID_ROUTE + f"""
        page.key("y");                    // one at a time, then a grid page
        await page.settle();
        page.key("g");
        await page.settle();
        page.key("y");
        await page.settle();
        page.key("g");
        page.key("u");
        await page.settle();
        return {{posted: {POSTED}, status: page.document.getElementById("status").textContent,
                disabled: page.document.getElementById("undo-button").disabled}};
    """, page_state(10))
    # Neither the grid page nor the decision made before it is taken back.
    assert got["posted"] == [[0, "confirm"]] and got["disabled"]
    assert got["status"].startswith("nothing to undo: a grid page")


def test_a_slider_lays_a_gain_over_its_channel_and_is_remembered():
    got = run_page("""
        const inputs = page.document.querySelectorAll("#display-controls input");
        const said = () => inputs.map((i) => i.getAttribute("aria-valuetext"));
        const first = said();
        inputs[2].value = "-10";
        inputs[2].listeners.input[0]();
        const layers = page.document.querySelectorAll("#tile div.gain");
        return {inputs: inputs.length, layers: layers.map((l) => [
                  l.getAttribute("data-channel"), l.style.left, l.style.backdropFilter]),
                stored: page.context.localStorage.getItem("ctcnet-gain-P001-CD45"),
                first, said: said()};
    """, page_state(2, gallery=True))
    assert got["inputs"] == len(CHANNELS)
    # A screen reader says the gain shown, not the slider's -20 to 20.
    assert got["first"] == ["x1.00"] * 3 and got["said"] == ["x1.00", "x1.00", "x0.50"]
    assert got["layers"] == [["2", "50%", "brightness(0.500)"]]
    assert got["stored"] == "-10"


@pytest.mark.parametrize("gallery", [True, False])
def test_a_tile_carries_a_scale_bar_and_the_page_says_the_panels_width(gallery):
    """No scale bar nor pixel size anywhere: a cell's size could not be judged."""
    state = page_state(2, gallery=gallery)
    state["tile_um"] = 51.2  # 80 px at 0.64 um
    got = run_page("""
        const bars = page.document.querySelectorAll("#tile div.scalebar");
        return {bars: bars.map((b) => [b.style.width, b.getAttribute("title")]),
                legend: page.document.getElementById("overlay-legend").textContent};
    """, state)
    panels = len(CHANNELS) + 1
    assert got["bars"] == [[f"{100 * 10 / 51.2 / panels}%", "10 \u00b5m"]]
    assert "Each panel is 51 \u00b5m across; the white bar under the first is 10 \u00b5m" \
        in got["legend"]


def test_the_page_says_the_calls_were_made_on_compensated_crops():
    """``--compensate`` moves calls and counts; the report said so, the page a reviewer
    decides on did not (its tiles are as scanned)."""
    state = page_state(2)
    state["compensation"] = "on (--compensate): CK's leak taken off the crops before the model"
    got = run_page("""
        return page.document.getElementById("overlay-legend").textContent;
    """, state)
    assert "Spillover compensation on (--compensate): CK's leak taken off the crops before " \
        "the model; the tiles show the channels as scanned." in got
    assert "compensation" not in run_page("""
        return page.document.getElementById("overlay-legend").textContent;
    """, page_state(2))


def test_sign_off_and_agreement_are_shown():
    state = page_state(4)
    state["signoff"] = None
    for c in state["candidates"][1::2]:  # wbc calls a CTC or cluster could be
        c["could_be_counted"] = True
    state["agreement"] = {"first": 3, "second": 3, "both": 3, "agree": 2, "kappa": 0.4,
                          "disagreements": [{"event_id": 2, "model_call": "ctc",
                                             "first": "ctc", "second": "rejected",
                                             "first_reviewer": "a", "second_reviewer": "b"}]}
    got = run_page("""
        routes.push(["/api/P001/signoff", {json: {signoff: {reviewer: "ann",
          signed_at: "2026-01-01T00:00:00+00:00", status: "current"}}}]);
        const before = page.document.getElementById("signoff-text").textContent;
        page.document.getElementById("signoff-button").click();  // says what it would sign
        await page.settle();
        const preview = page.document.getElementById("signoff-text").textContent;
        const postedFirst = page.requests.filter((r) => r.method === "POST").length;
        page.document.getElementById("signoff-button").click();  // signs
        await page.settle();
        const select = page.document.getElementById("filter-reason");
        select.value = "disagreement";
        select.dispatchEvent({type: "change"});
        const signed = page.requests.filter((r) => r.url === "/api/P001/signoff")
                                    .map((r) => JSON.parse(r.body));
        return {before, preview, postedFirst, signed,
                after: page.document.getElementById("signoff-text").textContent,
                agreement: page.document.getElementById("agreement").textContent,
                rows: page.rows().map((r) => +r.getAttribute("data-event-id"))};
    """, state)
    assert got["before"] == "not signed off"
    assert got["postedFirst"] == 0 and got["preview"].startswith("sign off P001")
    assert "4 of 4 candidates undecided" in got["preview"]
    assert "2 of them other calls that could be ctc or cluster (possible missed counts)" \
        in got["preview"]
    assert got["after"] == "signed off by ann on 2026-01-01T00:00:00+00:00"
    # It names the run and the decisions as the page read them.
    assert [(b["run_id"], b["stamp"]) for b in got["signed"]] == [("R", "s1")]
    assert "2 agree (Cohen's kappa 0.40); 1 disagreement(s)" in got["agreement"]
    assert got["rows"] == [2]


def test_a_second_readings_decision_after_the_sign_off_reaches_the_first_readers_page():
    """The first reader's page polls its own journal; a second reader's decision after the
    sign-off left it green "signed off" until reloaded. The readings' comparison it fetches
    now and then brings the sign-off as it holds."""
    state = page_state(4)
    state["signoff"] = {"reviewer": "ann", "signed_at": "2026-01-01T00:00:00+00:00",
                        "status": "current"}
    state["agreement"] = {"first": 0, "second": 0, "both": 0, "agree": 0, "kappa": None,
                          "disagreements": []}
    got = run_page("""
        const before = page.document.getElementById("signoff-text").textContent;
        routes.push(["/api/P001/agreement", {json: {...state.agreement, second: 1,
          signoff: {...state.signoff, status: "changed since"}}}]);
        for (let k = 0; k < 5; k++) {
          page.timers.forEach((tick) => tick());
          await page.settle();
        }
        return {before, after: page.document.getElementById("signoff-text").textContent};
    """, state)
    assert got["before"] == "signed off by ann on 2026-01-01T00:00:00+00:00"
    assert got["after"] == "sign-off no longer holds: " + got["before"] + \
        " (decisions changed since: sign off again)"
    left = run_page('return page.document.getElementById("signoff-text").textContent;',
                    {**state, "signoff": {**state["signoff"], "unreviewed": 25,
                                          "held_undecided": 6}})
    # All it left undecided, as the report says it (the page named the 6 held alone).
    assert left == "signed off by ann on 2026-01-01T00:00:00+00:00 (25 candidate(s) left " \
        "undecided, 6 of them held by the marker guard)"


def test_the_page_prints_per_volume_figures_as_the_report_does():
    """A per-7.5 mL figure reads the same on the page, in index.html and on the console: ties
    such as 3 x 7.5 / 4 = 5.625 included (Python's own formatting rounds them to even)."""
    from ctcnet.inference.counts import per_volume_text

    values = [5.625, 0.125, 2.675, 1.005, 37.5, 24.428571428571427, 0.0, 1e-9,
              4 * 7.5 / 6.004, 0.996, 4.995, 5.0]
    got = run_js(f"{json.dumps(values)}.map(function (v) {{ "
                 "return ReviewLogic.countText(v, 'after_review_per_7_5_ml'); })")
    assert got == [per_volume_text(v) for v in values]
    assert got[0] == "5.63"
    # Just under a whole number, never rounded onto it (4 CTCs in 6.004 mL read "5.00" beside
    # "below 5"): cut to two decimals.
    assert got[8:] == ["4.99", "0.99", "4.99", "5.00"]
    assert run_js("[ReviewLogic.countText(null, 'per_7_5_ml'), "
                  "ReviewLogic.countText(3, 'counted')]") == ["n/a", "3"]


def test_the_page_prints_intervals_as_the_report_does():
    """A 95 % interval's ends read as index.html, samples.csv and the sign-off give them:
    rounded outward, never narrower than the interval stated."""
    import numpy as np

    from ctcnet.inference.counts import interval_text

    rng = np.random.default_rng(3)
    ends = [[3.4512, 15.7612], [4.7987, 18.3912], [0.6187, 8.7701], [2.2, 4.4], [0.0, 3.69]]
    ends += np.sort(rng.uniform(0, 60, (40, 2)), axis=1).round(6).tolist()
    got = run_js(f"{json.dumps(ends)}.map(function (v) {{ "
                 "return ReviewLogic.countText(v, 'after_review_interval'); })")
    assert got == [interval_text(low, high) for low, high in ends]
    assert got[:3] == ["3.45 to 15.77", "4.79 to 18.40", "0.61 to 8.78"]


def test_a_partial_scan_is_said_above_the_candidates_and_in_the_sign_off_preview():
    state = page_state(2)
    state["signoff"] = None
    state["scan_state"] = {"state": "partial", "text": "PARTIAL: 2 of 4 frames read"}
    state["research_use"] = "Research use only"
    got = run_page("""
        page.document.getElementById("signoff-button").click();
        return {scan: page.document.getElementById("scan-state").textContent,
                ruo: page.document.getElementById("research-use").textContent,
                preview: page.document.getElementById("signoff-text").textContent};
    """, state)
    assert got["scan"] == "PARTIAL: 2 of 4 frames read" and got["ruo"] == "Research use only"
    assert "This sample is partial: PARTIAL: 2 of 4 frames read" in got["preview"]


def test_the_single_key_shortcuts_can_be_turned_off():
    """A screen reader's browse keys and speech input type letters: with the keys off, y
    decides nothing; the setting is remembered."""
    got = run_page("""
        const box = page.document.getElementById("keys-on");
        box.checked = false;
        box.listeners.change[0]();
        page.key("y");
        await page.settle();
        return {posted: page.requests.filter((r) => r.method === "POST").length,
                stored: page.context.localStorage.getItem("ctcnet-keys")};
    """, page_state(3))
    assert got == {"posted": 0, "stored": "off"}


def test_a_relabelled_row_reads_the_word_and_shows_the_arrow():
    """A relabelled row's name ended "-> wbc", read out as "dash greater than wbc"."""
    got = run_page("""
        page.key("2");
        await page.settle();
        const verdict = page.rows()[0].lastChild;
        page.key("k");
        await page.settle();
        return {shown: verdict.textContent, name: verdict.getAttribute("aria-label"),
                info: page.document.getElementById("info").textContent};
    """, page_state(3))
    assert got["shown"] == "\u2192 wbc" and got["name"] == "relabelled wbc"
    assert "reviewer: relabelled wbc" in got["info"]


def test_a_decision_carried_from_another_call_reads_against_the_call_it_was_made_on():
    """Another model called the event ``wbc`` where the reviewer confirmed a ``ctc`` call: the
    row read "-> ctc" (relabelled) and nothing found such decisions. It now says the call it
    was made on, a reason filter lists them, and a decision made here reads as usual."""
    state = page_state(3)
    state["candidates"][1].update(call="wbc", decision="ctc", decided_on="ctc")
    state["candidates"][2].update(call="ctc", decision="ctc")
    got = run_page("""
        const verdict = page.rows()[1].lastChild;
        const reason = page.document.getElementById("reason-decided_on");
        const carried = {shown: verdict.textContent, name: verdict.getAttribute("aria-label"),
                         option: reason && reason.textContent};
        const select = page.document.getElementById("filter-reason");
        select.value = "decided_on";
        select.dispatchEvent({type: "change"});
        await page.settle();
        carried.listed = page.rows().length;
        select.value = "";
        select.dispatchEvent({type: "change"});
        await page.settle();
        page.key("2");  // the cursor on the event the filter showed: decided here, wbc
        await page.settle();
        carried.after = page.rows()[1].lastChild.textContent;
        carried.left = reason.textContent;
        return carried;
    """, state)
    assert got["shown"] == "confirmed on ctc"
    assert got["name"] == "confirmed ctc (decided on a ctc call; the call is now wbc)"
    assert got["option"] == "decided on another call (1)" and got["listed"] == 1
    assert got["after"] == "confirmed"  # decided here on this run's wbc call
    assert got["left"] == "decided on another call (0)"


def test_the_page_names_the_model_file_whose_calls_it_shows():
    """After a rerun with another model the page did not say whose calls it showed."""
    state = {**page_state(1), "model": {"name": "lab.pt", "sha256": "ab12" * 16}}
    got = run_page("""
        return page.document.getElementById("overlay-legend").textContent;
    """, state)
    assert got.startswith("Calls by lab.pt (SHA-256 ab12ab12ab12...). ")


def test_with_the_shortcuts_off_the_list_and_the_buttons_do_what_the_keys_did():
    """A screen reader's user (keys off) moves with the list's rows (Enter on a focused row)
    and the previous/next buttons; the row shown says so (aria-current), not by colour
    alone, and the event shown is said in the status line (the panel's paragraph, read out
    whole at every move, was too much)."""
    got = run_page("""
        const box = page.document.getElementById("keys-on");
        box.checked = false;
        box.listeners.change[0]();
        const rows = page.rows();
        rows[2].dispatchEvent({type: "keydown", key: "Enter", stopPropagation() {}});
        await page.settle();
        const afterRow = page.document.getElementById("info").textContent;
        const current = rows.map((r) => r.getAttribute("aria-current"));
        const buttons = page.document.getElementById("buttons").children;
        const next = buttons.find((b) => b.getAttribute("data-view") === "next");
        next.click();
        await page.settle();
        return {afterRow, current, afterNext: page.document.getElementById("info").textContent,
                live: page.document.getElementById("info").getAttribute("aria-live"),
                said: page.document.getElementById("status").textContent,
                pressed: buttons.filter((b) => b.getAttribute("aria-pressed") != null)
                  .map((b) => [b.getAttribute("data-view"), b.getAttribute("aria-pressed")]),
                tabindex: rows.map((r) => r.getAttribute("tabindex")),
                views: buttons.map((b) => b.getAttribute("data-view")).filter(Boolean)};
    """, page_state(4))
    assert got["afterRow"].startswith("event #2 ") and got["afterNext"].startswith("event #3 ")
    assert got["current"] == [None, None, "true", None]
    # The list is one tab stop, the row shown (roving tabindex).
    assert got["live"] is None and got["tabindex"] == ["-1", "-1", "-1", "0"]
    assert got["said"] == "showing #3 (4 of 4): wbc"
    assert got["pressed"] == [["zoom", "false"], ["saliency", "false"]]
    assert got["views"] == ["context", "zoom", "saliency", "previous", "next"]


def test_a_panel_button_pressed_keeps_the_focus_on_its_like():
    """With the shortcuts off, Enter on "next event" moves on and the focus stays on "next
    event" (the panel is drawn again), so the next Enter moves on again."""
    got = run_page("""
        const next = () => page.document.getElementById("buttons").children
            .find((b) => b.getAttribute("data-view") === "next");
        next().focus();
        next().click();
        await page.settle();
        const focused = page.document.activeElement;
        focused.click();
        await page.settle();
        return {view: focused.getAttribute("data-view"),
                info: page.document.getElementById("info").textContent};
    """, page_state(4))
    assert got["view"] == "next" and got["info"].startswith("event #2 ")


def test_a_mistyped_reading_is_refused_not_opened_as_the_first_and_the_second_is_blind():
    """?reading=Second (a typo) once opened the first reading's page, counted, with no word:
    it is passed to the server, which refuses it by name. The second reading's page has no
    link to the static report (the first reading's counts and sign-off)."""
    got = run_page("""
        return {asked: page.requests.map((r) => r.url).filter((u) => u.includes("state")),
                status: page.document.getElementById("status").textContent};
    """, page_state(2), search="?reading=Second")
    assert got["asked"] == ["/api/P001/state?reading=Second"]
    assert "reading must be 'first' or 'second'" in got["status"]
    second = run_page("""
        return [page.document.getElementById("static-link").style.display,
                page.document.getElementById("samples-link").style.display,
                page.document.getElementById("reviewer").value];
    """, page_state(2), search="?reading=second")
    # Nor the server's --reviewer in its name box (usually the first reader's): the second
    # reader's decisions went in under it. Nor a link to the list of samples (the first
    # reading's decided counts), which the first reader's page has, to move on to the next.
    assert second == ["none", "none", ""]
    assert run_page('return page.document.getElementById("samples-link").style.display;',
                    page_state(2)) != "none"
    first = run_page('return page.document.getElementById("reviewer").value;', page_state(2))
    assert first == "tester"


def test_a_held_call_reads_held_not_counted_in_the_list():
    state = page_state(2)
    state["candidates"][0].update(held=True, reasons=[
        {"code": "call", "caption": "reported call", "meaning": "m"},
        {"code": "guard:out_of_focus", "caption": "held: out of focus", "meaning": "m"}])
    got = run_page("""
        return page.rows().map((r) => r.children[1].textContent);
    """, state)
    assert got == ["held, not counted: out of focus", "low p"]


def test_a_held_call_decided_is_said_in_the_held_row():
    """Confirming a held call counted it after review; the held row still read 11 as if
    nothing were decided."""
    state = page_state(2)
    state["candidates"][0].update(held=True)
    state["counts"]["model"]["held_total"] = 1
    got = run_page("""
        page.key("y");
        await page.settle();
        return page.document.querySelectorAll("#summary td")
          .filter((td) => td.getAttribute("data-col") === "held_total")[0].textContent;
    """, state)
    assert got == "1; 1 of them decided, counted after review as decided"


def test_the_held_row_says_held_calls_apart_from_flagged_ones():
    """A counted class's call the guard holds is out of its count; a debris call it flags is
    only shown: the row said "held by the guard (not counted)" of both together."""
    state = page_state(2)
    state["counts"]["model"].update(held={"ctc": 2, "wbc": 0, "cluster": 0, "debris": 1},
                                    held_total=3, held_by_flag={"possible_ctc": 3})
    got = run_page("""
        const row = page.document.querySelectorAll("#summary tr")
          .filter((tr) => tr.getAttribute("data-row") === "held")[0];
        return [row.children[0].textContent, row.children[1].textContent];
    """, state)
    assert got[0] == "held or flagged by the guard"
    assert got[1].startswith("3 (") and \
        "held from the count: ctc 2; flagged, not a counted call: debris 1)" in got[1]


def test_a_refused_sign_off_takes_back_its_press_again_line():
    state = page_state(2)
    state["signoff"] = None
    got = run_page("""
        routes.push(["/api/P001/signoff", {status: 400, json: {error: "a note is needed"}}]);
        const button = page.document.getElementById("signoff-button");
        button.click();
        const armed = page.document.getElementById("signoff-text").textContent;
        button.click();
        await page.settle();
        return {armed, after: page.document.getElementById("signoff-text").textContent,
                status: page.document.getElementById("status").textContent};
    """, state)
    assert "Press sign off again" in got["armed"]
    assert "Press sign off again" not in got["after"] and "not signed off" in got["status"]


def test_an_armed_sign_off_is_disarmed_by_a_decision_and_by_escape():
    """The first press says what would be signed; a decision since moves the counts, so the
    next press says it again rather than signing figures nobody was shown. Escape leaves it
    unsigned whatever has the focus."""
    state = page_state(4)
    state["signoff"] = None
    got = run_page("""
        routes.push(["/api/P001/signoff", {json: {signoff: {reviewer: "ann",
          signed_at: "2026-01-01T00:00:00+00:00", status: "current"}}}]);
        const button = page.document.getElementById("signoff-button");
        button.click();                         // armed
        page.key("y");                          // a decision: the counts move
        await page.settle();
        const afterDecision = button.textContent;
        button.click();                         // armed again, not signed
        await page.settle();
        page.key("Escape");
        const afterEscape = button.textContent;
        const signoffs = page.requests.filter((r) => r.url.indexOf("/signoff") >= 0).length;
        return {afterDecision, afterEscape, signoffs,
                status: page.document.getElementById("status").textContent};
    """, state)
    assert got.pop("status").startswith("not signed off")  # not "press sign off again"
    assert got == {"afterDecision": "sign off", "afterEscape": "sign off", "signoffs": 0}


def test_a_cluster_call_names_its_partner_as_the_captions_do():
    state = page_state(2)
    state["candidates"][0].update(call="cluster", model_call="cluster", partner="platelet")
    got = run_page("""
        return page.document.body.textContent;
    """, state)
    assert "cluster [partner: platelet] p=0.50 after prior" in got
    assert "[partner:" not in got.replace("cluster [partner: platelet]", "")


def test_a_note_beside_the_last_save_does_not_hide_it():
    """With saliency on, "saliency row of #646 drawn" replaced "saved #545": said beside it."""
    got = run_page("""
        const said = () => page.document.getElementById("status").textContent;
        page.run('status("saved #545"); statusBeside("saliency row of #646 drawn")');
        const first = said();
        page.run('statusBeside("saliency row of #647 drawn")');
        const second = said();
        page.run('status("not saved #5: refused", true); statusBeside("row of #648 drawn")');
        return [first, second, said()];
    """, page_state(2))
    assert got == ["saved #545; saliency row of #646 drawn",
                   "saved #545; saliency row of #647 drawn", "row of #648 drawn"]


# ---------------------------------------------------------------------------------------------
# The keyboard's way round the page: the list as one tab stop, the focus after a decision, the
# skip link, the event panel scrolled by keyboard; the filters and cursor kept over a reload.

@pytest.mark.parametrize("key, index, modifiers, expected", [
    ("ArrowDown", 2, {}, 3),
    ("ArrowUp", 2, {}, 1),
    ("ArrowUp", 0, {}, 0),          # at the first row: stays
    ("ArrowDown", 4, {}, 4),        # at the last
    ("Home", 3, {}, 0),
    ("End", 1, {}, 4),
    ("ArrowRight", 2, {}, None),    # not the list's: the page's shortcut (or nothing)
    ("j", 2, {}, None),
    ("ArrowDown", 2, {"shiftKey": True}, None),
    ("End", 2, {"ctrlKey": True}, None),
])
def test_the_lists_own_keys(key, index, modifiers, expected):
    got = run_js(f"ReviewLogic.rowStep({json.dumps({'key': key, **modifiers})}, {index}, 5)")
    assert got == expected


FOCUSED = "page.document.activeElement.getAttribute('data-event-id')"


@pytest.mark.parametrize("keys_on", [True, False])
def test_the_list_is_one_tab_stop_and_its_arrow_keys_move_the_event_shown(keys_on):
    """Every row was a tab stop: 53 Tabs from the top of the page to "confirm". The current
    row alone is (roving tabindex); the arrow keys, Home and End move within the list, the
    shortcuts on or off, and the event shown moves with the focus."""
    got = run_page(f"""
        const box = page.document.getElementById("keys-on");
        box.checked = {json.dumps(keys_on)};
        box.listeners.change[0]();
        const rows = page.rows();
        rows[0].focus();
        const seen = [];
        for (const key of ["ArrowDown", "ArrowDown", "End", "ArrowDown", "Home", "ArrowUp"]) {{
          page.key(key, page.document.activeElement);
          await page.settle();
          seen.push([{FOCUSED}, {CURRENT_ROW},
                     page.document.getElementById("info").textContent.split(" ")[1],
                     rows.filter((r) => r.getAttribute("tabindex") === "0").length]);
        }}
        return {{seen, role: page.document.getElementById("list").getAttribute("role"),
                options: rows.every((r) => r.getAttribute("role") === "option")}};
    """, page_state(6))
    assert got["role"] == "listbox" and got["options"]
    assert got["seen"] == [["1", 1, "#1", 1], ["2", 2, "#2", 1], ["5", 5, "#5", 1],
                           ["5", 5, "#5", 1], ["0", 0, "#0", 1], ["0", 0, "#0", 1]]


def test_a_focused_row_is_the_event_the_keys_decide():
    """With one row focused while another event was shown, y decided the one shown. A row
    focused (a click, a screen reader's cursor) is shown, and the focus follows the cursor as
    decisions move it on: the focused row is always the event a key decides."""
    got = run_page(f"""
        const rows = page.rows();
        rows[3].focus();
        rows[3].dispatchEvent({{type: "focusin"}});
        const shown = {{current: {CURRENT_ROW}, tabindex: rows[3].getAttribute("tabindex"),
                       info: page.document.getElementById("info").textContent.split(" ")[1]}};
        page.key("y", page.document.activeElement);
        await page.settle();
        page.key("j", page.document.activeElement);
        await page.settle();
        return {{shown, posted: {POSTED}, focused: {FOCUSED}, current: {CURRENT_ROW}}};
    """, page_state(8))
    assert got["shown"] == {"current": 3, "tabindex": "0", "info": "#3"}
    assert got["posted"] == [[3, "confirm"]]
    assert got["focused"] == "5" and got["current"] == 5


def test_the_focus_stays_in_the_list_when_its_row_is_taken_out():
    """Under "undecided only" the last row decided is taken out: the focus goes to the row
    the cursor goes to, not to the page."""
    got = run_page(f"""
        const open = page.document.getElementById("filter-open");
        open.checked = true;
        open.dispatchEvent({{type: "change"}});
        const last = page.rows()[3];
        last.focus();
        last.dispatchEvent({{type: "focusin"}});
        page.key("n", last);
        await page.settle();
        return {{rows: page.rows().length, focused: {FOCUSED}, current: {CURRENT_ROW}}};
    """, page_state(4))
    assert got == {"rows": 3, "focused": "2", "current": 2}


def test_deciding_the_last_row_of_a_list_keeps_the_focus_on_the_page():
    """Under "undecided only" the last row decided left the focus on the body, with nothing
    said: the end of a review, just before its sign-off."""
    got = run_page("""
        const open = page.document.getElementById("filter-open");
        open.checked = true;
        open.dispatchEvent({type: "change"});
        const row = page.rows()[0];
        row.focus();
        row.dispatchEvent({type: "focusin"});
        page.key("y", row);
        await page.settle();
        return {rows: page.rows().length, focused: page.document.activeElement.id,
                status: page.document.getElementById("status").textContent};
    """, page_state(1))
    assert got["rows"] == 0 and got["focused"] == "viewer"
    assert "no candidate left in this list" in got["status"]


def test_the_grid_keys_act_on_its_page_alone_and_say_what_they_did():
    """A row focused before the grid opened took y, which confirmed the grid's page; n, which
    the grid's line names, did nothing; a marked tile's name did not say so."""
    got = run_page(GRID_ROUTE + """
        const row = page.rows()[0];
        row.focus();
        page.key("g", row);
        await page.settle();
        const inert = page.document.getElementById("list").inert;
        const tiles = page.document.getElementById("grid-cells").children.length;
        row.focus();  // back on the row (Shift+Tab, before the list was inert)
        page.key("y", row);
        await page.settle();
        const onRow = [page.requests.filter((r) => r.method === "POST").length,
                       page.document.getElementById("status").textContent];
        const grid = page.document.getElementById("grid");
        grid.focus();
        page.key("n", grid);
        await page.settle();
        const nothing = page.document.getElementById("status").textContent;
        const cell = page.document.getElementById("grid-cells").children[0];
        cell.click();
        const marked = [cell.getAttribute("aria-label"),
                        page.document.getElementById("status").textContent];
        page.key("n", grid);
        await page.settle();
        const posts = page.requests.filter((r) => r.method === "POST");
        return {inert, tiles, onRow, nothing, marked, posted: JSON.parse(posts[0].body)};
    """, page_state(10))
    assert got["inert"] is True and got["tiles"] == 5
    assert got["onRow"][0] == 0 and "not on the row" in got["onRow"][1]
    assert got["nothing"].startswith("no tile is marked to reject")
    assert got["marked"][0].endswith("marked: an exception, not confirmed")
    assert "marked: left for one-by-one review" in got["marked"][1]
    assert got["posted"]["call"] == "reject" and len(got["posted"]["event_ids"]) == 1


def test_a_decision_made_by_a_button_leaves_the_focus_on_the_next_events_buttons():
    """The shortcuts off, a decision's button pressed left the focus on the page: ~35 Tabs to
    the next decision. It goes to the group of the next event's decision buttons (one Tab to
    its "confirm"), not to a button: a second Enter decides nothing unseen."""
    got = run_page(f"""
        const box = page.document.getElementById("keys-on");
        box.checked = false;
        box.listeners.change[0]();
        const button = (call) => page.document.getElementById("buttons").children
            .find((b) => b.getAttribute("data-call") === call);
        button("reject").focus();
        button("reject").click();
        await page.settle();
        const group = page.document.activeElement;
        page.key("Enter", group);               // no shortcut: nothing decided
        await page.settle();
        return {{focused: group.id, label: group.getAttribute("aria-label"),
                role: group.getAttribute("role"), posted: {POSTED},
                first: group.firstChild.getAttribute("data-call"),
                info: page.document.getElementById("info").textContent.split(" ")[1]}};
    """, page_state(4))
    assert got == {"focused": "buttons", "label": "decide #1", "role": "group",
                   "posted": [[0, "reject"]], "first": "confirm", "info": "#1"}


def test_the_skip_link_goes_to_the_decision_buttons():
    got = run_page(GRID_ROUTE + """
        const link = page.document.getElementById("skip-link");
        link.click();
        const one = page.document.activeElement.getAttribute("data-call");
        page.key("g");
        await page.settle();
        link.click();
        return {one, grid: page.document.activeElement.id, href: link.getAttribute("href")};
    """, page_state(4))
    assert got == {"one": "confirm", "grid": "grid-confirm", "href": "#buttons"}
    # The first tab stop of the page, shown when the keyboard reaches it.
    body = PAGE.read_text().split("<body", 1)[1]
    assert re.search(r"<(a|button|input|select)\b", body).group(0) == "<a"
    assert 'id="skip-link"' in body.split("<header>")[0]
    # Headings a screen reader moves by: the page's and each pane's.
    assert re.findall(r"<h2[^>]*>([^<]+)</h2>", body) == [
        "candidates", "the event", "counts", "grid of one call"]


def test_the_grid_and_the_counts_are_named_as_shown():
    """A tile's name began "event 12" under its visible "#12": speech input could not say it;
    the counts' headings said nothing of row or column."""
    got = run_page(GRID_ROUTE + """
        page.key("g");
        await page.settle();
        const cell = page.document.getElementById("grid-cells").children[0];
        const ths = page.document.getElementById("summary").querySelectorAll("th");
        return {label: cell.getAttribute("aria-label"), shown: cell.children[1].textContent,
                scopes: ths.map((th) => th.getAttribute("scope"))};
    """, page_state(4))
    assert got["label"].startswith(got["shown"].split(" (")[0]), got
    assert set(got["scopes"]) == {"col", "row"}


@pytest.mark.parametrize("key, target, expected", [
    ("ArrowDown", {"tagName": "DIV", "id": "viewer"}, None),   # scrolls the focused panel
    ("ArrowUp", {"tagName": "DIV", "id": "viewer"}, None),
    ("j", {"tagName": "DIV", "id": "viewer"}, {"move": 1}),    # j / k still move
    ("ArrowDown", {"tagName": "DIV", "id": "buttons"}, {"move": 1}),
    # A panel that all fits (a large screen, the panel clicked): the arrows move, as before.
    ("ArrowDown", {"tagName": "DIV", "id": "viewer", "scrollHeight": 700,
                   "clientHeight": 900, "scrollWidth": 900, "clientWidth": 900}, {"move": 1}),
    ("ArrowRight", {"tagName": "DIV", "id": "viewer", "scrollHeight": 1700,
                    "clientHeight": 900, "scrollWidth": 900, "clientWidth": 900}, {"move": 1}),
    ("ArrowDown", {"tagName": "DIV", "id": "viewer", "scrollHeight": 1700,
                   "clientHeight": 900, "scrollWidth": 900, "clientWidth": 900}, None),
])
def test_the_event_panel_focused_scrolls_with_the_arrow_keys(key, target, expected):
    got = run_js(f"ReviewLogic.keyAction({json.dumps({'key': key, 'target': target})}, "
                 f"{json.dumps(CLASSES)})")
    assert got == expected


def test_the_event_panel_is_a_named_tab_stop():
    """The counts below the buttons were out of the keyboard's reach (~60 Tabs)."""
    got = run_page("""
        const viewer = page.document.getElementById("viewer");
        return [viewer.getAttribute("tabindex"), viewer.getAttribute("role"),
                viewer.getAttribute("aria-label")];
    """, page_state(2))
    assert got == ["0", "region", "the event, its decisions and the counts"]


def test_the_focus_is_drawn_clearly_on_every_control():
    """The browser's own ring is thin and dark blue on the dark page."""
    style = re.search(r"<style>(.*?)</style>", PAGE.read_text(), re.S).group(1)
    style = re.sub(r"/\*.*?\*/", "", style, flags=re.S)
    rule = re.search(r"([^{}]*):focus-visible\s*\{([^}]*)\}", style)
    assert rule and "outline: 3px solid" in rule.group(2)
    selectors = {s.strip().split(":")[0] for s in rule.group(1).split(",")}
    assert {"a", "button", "input", "select", "[tabindex]"} <= selectors


def test_the_reason_filter_counts_the_undecided_as_decisions_come_in():
    """The options kept their totals as the page loaded them, "undecided only" ticked or
    not, while the grid's call menu said "(N undecided)"."""
    state = page_state(6)
    state["reasons"] = [
        {"code": "low_confidence", "caption": "low p", "meaning": "m", "count": 6},
        {"code": "qc", "caption": "QC sample", "meaning": "m", "count": 2},
        {"code": "guard", "caption": "held by the guard (any flag)", "meaning": "m",
         "count": 1}]
    for i in (4, 5):
        state["candidates"][i]["reasons"].append({"code": "qc", "caption": "QC sample",
                                                  "meaning": "m"})
    state["candidates"][5]["decision"] = "wbc"
    state["candidates"][2]["held"] = True
    got = run_page("""
        const said = () => page.document.getElementById("filter-reason").children
          .map((o) => o.textContent);
        const first = said();
        page.run("setCursor(4)");
        page.key("y");                                   // #4 (low p, QC) decided here
        await page.settle();
        const decided = said();
        routes.push(["/api/P001/state?since=s", {json: {stamp: "s9", counts: state.counts,
                     decisions: [[4, "wbc"], [5, "wbc"], [2, "rejected"]]}}]);
        page.timers.forEach((tick) => tick());           // #2 (held) decided elsewhere
        await page.settle();
        return {first, decided, merged: said()};
    """, state)
    # (The stand-in DOM holds the options with an id: not "every candidate".)
    assert got["first"] == ["low p (5 undecided)", "QC sample (1 undecided)",
                            "held by the guard (any flag) (1 undecided)"]
    assert got["decided"] == ["low p (4 undecided)", "QC sample (0 undecided)",
                              "held by the guard (any flag) (1 undecided)"]
    assert got["merged"] == ["low p (3 undecided)", "QC sample (0 undecided)",
                             "held by the guard (any flag) (0 undecided)"]


def test_undecided_by_reason_reads_reasons_as_the_filter_does():
    candidates = [
        {"decision": None, "held": True, "reasons": [{"code": "guard:a"}, {"code": "guard:a"}]},
        {"decision": None, "reasons": [{"code": "qc"}], "disagreement": {"second": "ctc"}},
        {"decision": "ctc", "held": True, "reasons": [{"code": "qc"}]}]
    got = run_js(f"ReviewLogic.undecidedByReason({json.dumps(candidates)})")
    assert got == {"guard:a": 1, "guard": 1, "qc": 1, "disagreement": 1}


@pytest.mark.parametrize("saved, expected", [
    ({"run": "R", "cls": "wbc", "reason": "qc", "open": True, "event": 5},
     {"cls": "wbc", "reason": "qc", "open": True, "event": 5}),
    # Another run's numbers name other cells, and its filters would hide today's events
    # unsaid (yesterday's "clusters, undecided only"): nothing of it is restored.
    ({"run": "OLD", "cls": "wbc", "reason": "qc", "open": True, "event": 5},
     {"cls": "", "reason": "", "open": False, "event": None}),
    # A class or reason this run does not offer: every candidate.
    ({"run": "R", "cls": "tdev", "reason": "guard", "open": False, "event": 5},
     {"cls": "", "reason": "", "open": False, "event": 5}),
    ("not json", {"cls": "", "reason": "", "open": False, "event": None}),
    (None, {"cls": "", "reason": "", "open": False, "event": None}),
])
def test_a_remembered_view_is_restored_as_far_as_it_holds(saved, expected):
    text = saved if isinstance(saved, str) or saved is None else json.dumps(saved)
    got = run_js(f"ReviewLogic.restoreView({json.dumps(text)}, ['ctc', 'wbc'], ['qc'], 'R')")
    assert got == expected


RELOADED = f"""
    return {{open: page.document.getElementById("filter-open").checked,
             cls: page.document.getElementById("filter-class").value,
             reason: page.document.getElementById("filter-reason").value,
             current: {CURRENT_ROW}, rows: page.rows().map((r) => +r.dataset.eventId)}};
"""


def test_a_reload_comes_back_to_the_filters_and_the_event_it_left():
    """A reload forgot "undecided only", the class and reason filters and the cursor."""
    state = page_state(12)
    state["reasons"] = [{"code": "low_confidence", "caption": "low p", "meaning": "m",
                         "count": 12}]
    state["candidates"][2]["decision"] = "rejected"
    left = run_page("""
        const set = (id, value) => {
          const box = page.document.getElementById(id);
          if (id === "filter-open") box.checked = value; else box.value = value;
          box.dispatchEvent({type: "change"});
        };
        set("filter-open", true);
        set("filter-class", "ctc");
        set("filter-reason", "low_confidence");
        page.key("j");
        page.key("j");
        return page.context.localStorage.getItem("ctcnet-view-P001");
    """, state)
    before = f"page.context.localStorage.setItem('ctcnet-view-P001', {json.dumps(left)});"
    got = run_page(RELOADED, state, before=before)
    # ctc calls are the even events; #2 is decided: 0, 4, 6 ... and the cursor on #6.
    assert got == {"open": True, "cls": "ctc", "reason": "low_confidence", "current": 6,
                   "rows": [0, 4, 6, 8, 10]}
    # The event remembered decided since (hidden under "undecided only"): the next one shown.
    state["candidates"][6]["decision"] = "ctc"
    assert run_page(RELOADED, state, before=before)["current"] == 8
    # An event this run does not have: the first one shown.
    gone = json.dumps({**json.loads(left), "event": 999})
    got = run_page(RELOADED, state, before="page.context.localStorage.setItem("
                   f"'ctcnet-view-P001', {json.dumps(gone)});")
    assert got["current"] == 0 and got["open"] and got["cls"] == "ctc"
    # Kept per reading: the second reader's page does not take the first reader's view.
    second = run_page(RELOADED, state, search="?reading=second", before=before)
    assert second == {"open": False, "cls": "", "reason": "", "current": 0,
                      "rows": list(range(12))}


def test_the_sign_off_note_has_a_name_of_its_own():
    """A placeholder alone is no name (it goes once typed in, and not every reader says it)."""
    label = re.search(r'<label for="signoff-note"[^>]*>(.*?)</label>', PAGE.read_text(), re.S)
    assert label and " ".join(label.group(1).split()) == "sign-off note"


def test_the_narrow_layout_takes_a_1366_wide_screen_at_150_percent():
    """At 150 % a 1366-wide screen is 911 CSS px: two panes were cramped, the buttons cut
    off; at 100 % it keeps two panes. The script's NARROW says the stylesheet's width."""
    page = PAGE.read_text()
    css = int(re.search(r"@media \(max-width: (\d+)px\)", page).group(1))
    script = int(re.search(r'var NARROW = "\(max-width: (\d+)px\)"', page).group(1))
    assert css == script and 1366 / 1.5 <= css < 1366


def test_an_event_beside_another_names_it_to_decide_them_together():
    """A cluster read twice (one counted, one held as a repeat) or a doublet read as a CTC and
    a cluster: each event's line names the other, so a reviewer does not count it twice."""
    state = page_state(2)
    state["candidates"][0]["beside"] = [{"event_id": 1, "call": "cluster", "counted": True,
                                         "um": 9.2}]
    got = run_page("""
        return page.document.getElementById("info").textContent;
    """, state)
    assert "beside it (one cell or cluster read twice? decide them together): #1 cluster, " \
        "counted, 9.2 um" in got
    assert "beside" not in run_page("""
        return page.document.getElementById("info").textContent;
    """, page_state(2))


def _cluster_read_twice(state: dict, counted: tuple[bool, bool]) -> dict:
    """``state`` with every candidate a cluster call and events 0 and 1 named beside each
    other 9.2 um apart, ``counted``: whether predict counted event 0, and event 1."""
    for c in state["candidates"]:
        c["call"] = c["model_call"] = "cluster"
    for event, other in ((0, 1), (1, 0)):
        state["candidates"][event]["beside"] = [{"event_id": other, "call": "cluster",
                                                 "counted": counted[other], "um": 9.2}]
    return state


def test_confirming_a_cluster_beside_a_counted_one_says_it_may_count_twice():
    """A cluster read twice, the repeat held: confirming both counted it twice, unsaid; the
    note beside the other event read as predict left it, not as decided."""
    state = _cluster_read_twice(page_state(2), counted=(False, True))
    got = run_page("""
        page.key("y");
        await page.settle();
        return {status: page.document.getElementById("status").textContent,
                info: page.document.getElementById("info").textContent};
    """, state)
    assert got["status"] == "saved #0: confirmed cluster; #1 beside it counts as cluster " \
        "too: one cluster " \
        "counted twice? (two only if the tiles show two)"
    assert "#0 cluster, decided: confirmed cluster, 9.2 um" in got["info"]  # the cursor on #1 now
    state["candidates"][1]["beside"][0]["counted"] = False
    state["candidates"][0]["beside"][0]["counted"] = False
    got = run_page("""
        page.key("y");
        await page.settle();
        return page.document.getElementById("status").textContent;
    """, state)
    assert got == "saved #0: confirmed cluster"


def test_a_ctc_confirmed_beside_a_counted_cluster_says_it_may_count_twice():
    """A cluster's CTC read as an event of its own (held as same_cluster) and confirmed counted
    the one cluster as a cluster and a CTC, unsaid: only neighbours of one class were
    compared."""
    state = _cluster_read_twice(page_state(2), counted=(False, True))
    state["candidates"][0]["call"] = state["candidates"][0]["model_call"] = "ctc"
    state["signoff"] = None
    got = run_page("""
        page.key("y");
        await page.settle();
        const status = page.document.getElementById("status").textContent;
        page.document.getElementById("signoff-button").click();
        return {status, preview: page.document.getElementById("signoff-text").textContent};
    """, state)
    assert got["status"] == "saved #0: confirmed ctc; #1 beside it counts as cluster: one " \
        "cell or cluster counted twice? (two only if the tiles show two)"
    assert "events beside each other both counted: #0 and #1 ctc and cluster" in got["preview"]


def test_the_status_line_says_which_decision_was_saved():
    """"saved #0" alone left a screen reader's user unsure whether y or n was heard."""
    got = run_page("""
        var said = [];
        page.key("y"); await page.settle();
        said.push(page.document.getElementById("status").textContent);
        page.key("n"); await page.settle();
        said.push(page.document.getElementById("status").textContent);
        return said;
    """, page_state(3))
    assert got[0].startswith("saved #0: confirmed ") and got[1] == "saved #1: rejected"


def test_the_sign_off_preview_names_events_beside_each_other_both_counted():
    """A cluster read twice, both events counting as a cluster (one confirmed, one counted as
    predict left it): the preview names the pair; one rejected, it does not."""
    state = _cluster_read_twice(page_state(3), counted=(True, True))
    state["signoff"] = None
    preview = """
        page.document.getElementById("signoff-button").click();
        return page.document.getElementById("signoff-text").textContent;
    """
    got = run_page(preview, state)
    assert "events beside each other both counted: #0 and #1 cluster (one cell " \
        "or cluster counted twice?)" in got
    state["candidates"][1]["decision"] = "rejected"
    assert "beside each other" not in run_page(preview, state)


def test_the_server_gives_each_candidate_its_unread_planes_and_whether_it_is_above():
    from types import SimpleNamespace

    import pandas as pd

    from ctcnet.review_server.candidate_rows import _unread_planes, _unread_value

    candidates = pd.DataFrame({"event_id": [4, 9, 11], "class": ["ctc", "ctc", "ctc"],
                               "guard": [None, None, "possible_ctc"],
                               "mean_HER2": [312.46, float("nan"), 170.0],
                               "mean_CK": [900.0, 500.0, 400.0]})
    summary = SimpleNamespace(unread_markers={
        "planes": {"HER2": {"above_event_ids": [4], "above_level": 150.0},
                   "PD-L1": {"above_event_ids": None}},
        "ck_plane": "CK", "ck_leukocyte_median": 200.0, "leak_allowance": 0.12,
        "ctc_classes": ["ctc"]})
    sample = SimpleNamespace(summary=summary, candidates=candidates)
    assert _unread_planes(sample) == {"HER2": {4}}  # (PD-L1: no column among the candidates)
    # Its own line: the level and 12 % of its CK over the leukocytes' (a held one's too).
    assert _unread_value(sample, 0, "HER2", {4}, 4) == {"plane": "HER2", "mean": 312.5,
                                                       "line": 234.0, "above": True}
    assert _unread_value(sample, 1, "HER2", {4}, 9) == {"plane": "HER2", "mean": None,
                                                       "line": 186.0, "above": False}
    # A held candidate is no automatic CTC: not "not above", but not counted at all.
    assert _unread_value(sample, 2, "HER2", {4}, 11)["above"] is None


# Under "undecided only", the cursor on #2, which another reviewer rejects (the next poll).
DECIDED_ELSEWHERE = """
        const open = page.document.getElementById("filter-open");
        open.checked = true;
        open.dispatchEvent({type: "change"});
        page.run("setCursor(2)");
        routes.push(["/api/P001/state?since=s1", {json: {stamp: "s2", counts: state.counts,
                     decisions: [[2, "rejected"]]}}]);
        page.timers.forEach((tick) => tick());
        await page.settle();
"""


def test_an_event_decided_elsewhere_under_its_reviewers_eyes_stays_shown_and_said():
    """Under "undecided only", another reviewer's decision on the event in front of her took
    its row away at the next poll: the cursor went to the next event, unsaid, and her next y
    confirmed that one unseen. It stays, with their decision, said in the status line; the
    next key decides the event she sees, knowing their decision ("was")."""
    got = run_page(DECIDED_ELSEWHERE + """
        const after = {current: CURRENT_ROW, rows: page.rows().map((r) => +r.dataset.eventId),
                       status: page.document.getElementById("status").textContent};
        page.key("y");
        await page.settle();
        // Decided here, it goes as "undecided only" says, and the cursor does not come back.
        const rows = page.rows().map((r) => +r.dataset.eventId);
        page.key("k");
        page.key("k");
        return {after, posted: POSTED_BODIES, rows, back: CURRENT_ROW};
    """.replace("CURRENT_ROW", CURRENT_ROW).replace(
        "POSTED_BODIES", """page.requests.filter((r) => r.url === "/api/P001/decision")
                              .map((r) => JSON.parse(r.body))"""), page_state(6))
    assert got["after"]["current"] == 2 and got["after"]["rows"] == [0, 1, 2, 3, 4, 5]
    assert got["after"]["status"] == ("#2 was decided elsewhere meanwhile: rejected; still "
                                      "shown here")
    assert [(b["event_id"], b["was"]) for b in got["posted"]] == [(2, "rejected")]
    assert got["rows"] == [0, 1, 3, 4, 5] and got["back"] == 0
    # Left with j instead: its row goes, the count of rows shown and the status line with it.
    got = run_page(DECIDED_ELSEWHERE + """
        page.key("j");
        return {rows: page.rows().map((r) => +r.dataset.eventId),
                progress: page.document.getElementById("progress-text").textContent,
                status: page.document.getElementById("status").textContent};
    """, page_state(6))
    assert got["rows"] == [0, 1, 3, 4, 5] and got["progress"].endswith("(5 shown)")
    assert "still shown here" not in got["status"]


def test_a_refused_decision_looks_for_the_one_made_elsewhere_at_once():
    """A 409 says "the page now shows it": the decision made elsewhere is looked for at once,
    not at the next poll seconds later."""
    got = run_page("""
        routes.push(["/api/P001/decision", {status: 409, json: {
          error: "event 0 was decided debris by bob: the page now shows it"}}]);
        routes.push(["/api/P001/state?since=s1", {json: {stamp: "s2", counts: state.counts,
                     decisions: [[0, "rejected"]]}}]);
        page.key("y");
        await page.settle();
        return {decision: page.rows()[0].getAttribute("data-decision"),
                polls: page.requests.filter((r) => r.url.includes("since=")).length};
    """, page_state(4))
    assert got == {"decision": "rejected", "polls": 1}


def test_a_grid_page_decided_by_its_button_leaves_the_focus_on_the_next_pages_tile():
    """Enter on "confirm the unmarked" kept the focus on the button: a second Enter confirmed
    the next page, unseen. The grid opens with the focus on its first tile too."""
    got = run_page(GRID_ROUTE + """
        page.key("g");
        await page.settle();
        const cells = () => page.document.getElementById("grid-cells").children;
        const opened = page.document.activeElement === cells()[0];
        const button = page.document.getElementById("grid-confirm");
        button.focus();
        button.click();
        await page.settle();
        return {opened, onTile: page.document.activeElement === cells()[0],
                posts: page.requests.filter((r) => r.method === "POST").length};
    """, page_state(400))
    assert got == {"opened": True, "onTile": True, "posts": 1}


def test_the_ends_of_the_list_are_said():
    """j on the last event and k on the first did nothing and said nothing; y on the last
    left the cursor on it, unsaid."""
    got = run_page("""
        page.key("k");
        const first = page.document.getElementById("status").textContent;
        page.key("End");
        page.run("setCursor(3)");
        page.key("j");
        const last = page.document.getElementById("status").textContent;
        page.key("y");
        await page.settle();
        return {first, last, saved: page.document.getElementById("status").textContent};
    """, page_state(4))
    assert got["first"] == "the first event of this list (#0, 1 of 4)"
    assert got["last"] == "the last event of this list (#3, 4 of 4)"
    assert got["saved"].endswith("; no event after it in this list")
