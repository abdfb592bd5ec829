"""The review page's own logic (``ReviewLogic`` in review_page.html), run in a JS engine: where
the cursor goes when a filter changes, and what a key does depending on the focused element.

Node runs it where installed; otherwise headless Chromium (CI installs it for the page test);
without either the tests skip. The whole page is driven in Chromium by tests/test_review.py.
"""

import json
import re
import shutil
import subprocess

import pytest

from ctcnet.report.server import PAGE


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
    from test_review import Browser, _chromium

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
    ("Enter", "BODY", {}, {"call": "confirm"}),  # the shortcut, with no button focused
    ("Enter", "DIV", {}, {"call": "confirm"}),
    ("y", "BUTTON", {}, {"call": "confirm"}),    # letter shortcuts work wherever focus is
    ("n", "BODY", {}, {"call": "reject"}),
    ("u", "BODY", {}, {"call": "undecided"}),   # take the decision back
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
