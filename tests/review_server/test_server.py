"""The review loop through the server: decisions saved and surviving a restart, paths confined,
tiles cut on demand and dropped when their page went away, decisions made elsewhere (another
tab, another server) caught up with, a re-run of predict noticed, the page in Chromium, and
reviewed events cut into a crop dataset. review.csv itself: tests/review/test_decisions.py."""

import dataclasses
import http.client
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import pytest
import tifffile
from conftest import edit_json, save_tiny_model, write_events

from ctcnet.inference.backends import load_backend
from ctcnet.inference.counts import count_events, count_reviewed
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.io.atomic import exclusive_folder
from ctcnet.io.panel import load_panel
from ctcnet.report import gallery_pages, run_report
from ctcnet.review import decisions as D
from ctcnet.review_server.server import make_server, server_url

CROP = 48


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """A predict --out folder of one small simulated cartridge, by an untrained tiny model."""
    from ctcnet.simulate import simulate_cartridge

    base = tmp_path_factory.mktemp("review")
    simulate_cartridge(base / "cart", load_panel(None), num_frames=2, frame_shape=(256, 320),
                       seed=5, events_per_frame=25, sample_id="P001",
                       rare_rates={"ctc": 0.3, "cluster": 0.1})
    save_tiny_model(base / "model.pt", crop_size=CROP)
    backend = load_backend(base / "model.pt", device="cpu", batch_size=64)
    predict_cartridge(base / "cart", backend, base / "results" / "P001",
                      PredictOptions(quiet=True, workers=0, gallery_limit=8, report=run_report,
                                     saliency=True))
    # An untrained model is unsure of everything; make it sure of the events without a
    # gallery tile (the pool of the quality-control sample) and call two of the rest ctc.
    sample = base / "results" / "P001"
    events = pd.read_parquet(sample / "events.parquet")
    summary = json.loads((sample / "summary.json").read_text())
    shown = {e for g in summary["gallery"].values() for p in g["pages"] for e in p["event_ids"]}
    in_gallery = events["event_id"].isin(shown)
    events.loc[~in_gallery, ["review", "confidence"]] = (False, 0.99)
    events.loc[events.index[in_gallery][:2], "class"] = "ctc"
    write_events(sample, events, index=False)
    return base


@pytest.fixture
def served(results, tmp_path):
    """A fresh copy of the results (decisions start empty) behind a running server."""
    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    server = make_server(out, port=0, reviewer="tester")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield out, server
    server.shutdown()
    server.server_close()


def request(server, method, path, body=None, headers=None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def post_decision(server, event_id, call, sample="P001", run_id=None):
    """A decision as the page posts it: on the run it shows (by default the one served)."""
    if run_id is None:
        try:
            run_id = server.app.sample(sample).run.token
        except LookupError:  # a sample not served: the server answers for itself
            run_id = "none"
    body = {"event_id": event_id, "call": call, "run_id": run_id}
    return request(server, "POST", f"/api/{sample}/decision", json.dumps(body),
                   {"Content-Type": "application/json"})


def test_server_saves_decisions_and_survives_a_restart(served):
    out, server = served
    status, data = request(server, "GET", "/api/P001/state")
    assert status == 200
    state = json.loads(data)
    cands = state["candidates"]
    assert cands and {c["why"] for c in cands} >= {"qc"}
    in_gallery = [c for c in cands if "width" in c["tile"]]
    assert in_gallery, "gallery tiles are located on the montage pages"
    # The network's call beside the call shown: the probability is the network call's.
    events = pd.read_parquet(out / "P001" / "events.parquet").set_index("event_id")
    for c in cands:
        row = events.loc[c["event_id"]]
        assert (c["call"], c["model_call"]) == (row["class"], row["model_class"])
        assert c["confidence"] == pytest.approx(row["confidence"])
    first, second = cands[0], cands[1]
    assert post_decision(server, first["event_id"], "confirm")[0] == 200
    status, data = post_decision(server, second["event_id"], "debris")
    assert status == 200 and json.loads(data)["decision"] == "debris"
    assert post_decision(server, first["event_id"], "nonsense")[0] == 400
    assert post_decision(server, 10 ** 6, "confirm")[0] == 400
    # Not JSON: refused (a form posted from another site cannot set this content type).
    assert request(server, "POST", "/api/P001/decision", "event_id=1&call=confirm",
                   {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
    # JSON's media type in any case is JSON (a script's "Application/JSON" read 415).
    assert request(server, "POST", "/api/P001/decision", json.dumps(
        {"event_id": second["event_id"], "call": "debris",
         "run_id": server.app.sample("P001").run.token}),
        {"Content-Type": "Application/JSON; charset=utf-8"})[0] == 200
    table = pd.read_csv(out / "P001" / "review.csv")
    assert table.set_index("event_id")["reviewer_call"].to_dict() == {
        first["event_id"]: first["call"], second["event_id"]: "debris"}
    assert set(table["reviewer"]) == {"tester"}
    # A new server on the same folder sees the decisions.
    again = make_server(out, port=0)
    state = again.app.sample("P001").state("x")
    again.server_close()
    decided = {c["event_id"]: c["decision"] for c in state["candidates"] if c["decision"]}
    assert decided == {first["event_id"]: first["call"], second["event_id"]: "debris"}


def test_quality_control_tile_is_cut_from_the_frame(served):
    out, server = served
    state = json.loads(request(server, "GET", "/api/P001/state")[1])
    qc = next(c for c in state["candidates"] if "width" not in c["tile"])
    status, data = request(server, "GET", qc["tile"]["src"])
    assert status == 200 and data[:8] == b"\x89PNG\r\n\x1a\n"
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:  # channels + overlay, and a saliency row
        assert im.width > 5 * CROP and im.height > 2 * CROP
    assert request(server, "GET", "/api/P001/tile/999999.png")[0] == 404


def test_a_sample_whose_every_frame_failed_opens_with_nothing_to_review(results, tmp_path):
    """A failed sample (no frame read, no event) is listed and its page opens: no
    candidates, no display scale to read from its crops, and no server error."""
    cart = tmp_path / "cart"
    shutil.copytree(results / "cart", cart)
    for frame in cart.glob("*.tif"):
        frame.write_bytes(b"not a tiff")
    backend = load_backend(results / "model.pt", device="cpu")
    out = tmp_path / "results"
    predict_cartridge(cart, backend, out / "P001", PredictOptions(quiet=True, workers=0,
                                                                  report=False))
    server = make_server(out, port=0, reviewer="tester")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, data = request(server, "GET", "/api/P001/state")
        assert status == 200, data
        state = json.loads(data)
        assert state["candidates"] == []
        # ... and nothing to sign off: a signature would vouch for no result.
        status, data = request(server, "POST", "/api/P001/signoff", json.dumps(
            {"reviewer": "ann", "run_id": state["run_id"], "stamp": state["stamp"]}),
            {"Content-Type": "application/json"})
        assert status == 400 and b"no result to sign off" in data
        assert not (out / "P001" / "signoff.json").exists()
    finally:
        server.shutdown()
        server.server_close()


def test_server_refuses_paths_outside_the_results(served, tmp_path):
    out, server = served
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the browser")
    (out / "P001" / "escape").symlink_to(secret)
    (out / "P001" / "escape_dir").symlink_to(tmp_path, target_is_directory=True)
    assert request(server, "GET", "/files/P001/summary.json")[0] == 200
    page = json.loads(request(server, "GET", "/api/P001/state")[1])["candidates"]
    src = next(c["tile"]["src"] for c in page if "width" in c["tile"])
    assert request(server, "GET", src)[0] == 200
    for path in ["/files/P001/../../secret.txt", "/files/P001/..%2f..%2fsecret.txt",
                 "/files/P001/%2e%2e/%2e%2e/secret.txt", "/files/P001/%2E%2E%2F%2E%2E%2Fsecret.txt",
                 "/files/P001/escape", "/files/P001/escape_dir/secret.txt",
                 "/files/..%2f" + tmp_path.name + "/secret.txt", "/files/P001/" +
                 str(secret).replace("/", "%2f"), "/files/P001//etc/passwd",
                 "/files/P001/parts/..%5c..%5csecret.txt", "/review/..%2f..", "/api/nope/state"]:
        status, data = request(server, "GET", path)
        assert status == 404 and b"not for the browser" not in data, path
    # Only loopback host names are answered (DNS rebinding).
    assert request(server, "GET", "/api/P001/state", headers={"Host": "evil.example"})[0] == 403


def test_another_site_can_neither_frame_the_page_nor_post_and_a_planted_page_runs_apart(
        served):
    """Every answer forbids framing (a click in another site's frame would be a decision);
    the results' own files are sandboxed (a page planted in a results folder runs in an
    origin of its own); a post from another origin is refused; JSON nested thousands deep is
    a bad request, not a server error; a name a spreadsheet would run is kept as text."""
    import http.client

    out, server = served
    host, port = server.server_address[:2]

    def headers_of(path):
        conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        return resp.getheader("X-Frame-Options"), resp.getheader("Content-Security-Policy")

    assert headers_of("/review/P001") == ("DENY", "frame-ancestors 'none'")
    frame, policy = headers_of("/files/P001/index.html")
    assert frame == "DENY" and "sandbox allow-scripts" in policy
    assert "allow-downloads" in policy  # the report's events.csv link: a sandbox refused it
    sample = server.app.sample("P001")
    body = json.dumps({"event_id": int(sample.candidates["event_id"].iloc[0]), "call": "reject",
                       "run_id": sample.run.token})
    json_type = {"Content-Type": "application/json"}
    assert request(server, "POST", "/api/P001/decision", body,
                   {**json_type, "Origin": "https://evil.example"})[0] == 403
    assert request(server, "POST", "/api/P001/decision", body,
                   {**json_type, "Origin": f"http://127.0.0.1:{port}"})[0] == 200
    # Another local program's page (another port) is another origin.
    assert request(server, "POST", "/api/P001/decision", body,
                   {**json_type, "Origin": f"http://localhost:{port + 1}"})[0] == 403
    # An origin whose port is no number is refused, not a thread's traceback and a dropped
    # connection; another scheme on this port is no page of this server's either.
    for origin in (f"http://127.0.0.1:{port}.evil.example", "http://127.0.0.1:abc",
                   f"javascript://127.0.0.1:{port}"):
        assert request(server, "POST", "/api/P001/decision", body,
                       {**json_type, "Origin": origin})[0] == 403, origin
    # A method no route takes: a JSON 405, as every error here is (the stock page was HTML);
    # a tile's id is digits alone ("6_2" read as event 62).
    status, data = request(server, "PUT", "/api/P001/decision", body, json_type)
    assert status == 405 and json.loads(data)["error"].startswith("PUT is not served")
    assert request(server, "GET", "/api/P001/tile/6_2.png")[0] == 404
    # A reviewer's name past what is kept is refused, not cut short without a word.
    long_name = json.dumps({**json.loads(body), "reviewer": "x" * 65})
    status, data = request(server, "POST", "/api/P001/decision", long_name, json_type)
    assert status == 400 and b"65 characters, over the 64 kept" in data
    # Another site's <img> must not learn whether a sample id is served; a link to the page
    # (a navigation) is followed as ever.
    fetched = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    assert request(server, "GET", "/api/P001/state", None, fetched)[0] == 403
    assert request(server, "GET", "/api/P999/state", None, fetched)[0] == 403
    assert request(server, "GET", "/review/P001", None,
                   {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"})[0] == 200
    assert request(server, "GET", "/api/P001/state", None,
                   {"Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"})[0] == 200
    # The static report, sandboxed (an origin of its own), asked for its gallery cross-site
    # and was refused ("3 of 3 images failed to load"): served with its images inline.
    status, page = request(server, "GET", "/files/P001/index.html")
    assert status == 200 and b'src="data:image/png;base64,' in page
    assert b'<img src="gallery/' not in page and b"gallery/" in page  # (its links stay)
    image = next(p for p in (out / "P001" / "gallery").glob("*.png")).name
    assert request(server, "GET", f"/files/P001/gallery/{image}", None, fetched)[0] == 403
    status, data = request(server, "POST", "/api/P001/decision", "[" * 30000 + "]" * 30000,
                           json_type)
    assert status == 400 and b"not JSON" in data
    assert request(server, "POST", "/api/P001/decision",
                   json.dumps({**json.loads(body), "reviewer": '=HYPERLINK("x")'}),
                   json_type)[0] == 200
    import pandas as pd
    assert pd.read_csv(out / "P001" / "review.csv")["reviewer"].iloc[-1] == "'=HYPERLINK(\"x\")"


def test_review_command_rejects_a_folder_without_results(tmp_path, capsys):
    from ctcnet.cli import main

    assert main(["review", str(tmp_path), "--no-browser", "--port", "0"]) == 2
    assert "no predict outputs" in capsys.readouterr().err


def test_review_on_a_port_another_server_holds_is_one_line(served, capsys):
    # A second `ctcnet review` on the port of one running: refused in one line (exit 2), not
    # an AttributeError from closing a server whose bind failed.
    from conftest import one_line_refusal

    out, server = served
    port = server.server_address[1]
    line = one_line_refusal(capsys, ["review", out, "--no-browser", "--port", port],
                            f"cannot listen on 127.0.0.1:{port}")
    assert "--port 0" in line
    assert request(server, "GET", "/api/P001/state")[0] == 200  # the first one serves on


# ---------------------------------------------------------------------------------------------
# The page in headless Chromium, driven over the DevTools protocol.

def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """Headless Chromium with one page, driven over the DevTools websocket."""

    def __init__(self, url: str):
        import websocket  # websocket-client

        self.profile = tempfile.mkdtemp(prefix="ctcnet-chromium-")
        self.proc = subprocess.Popen(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", f"--user-data-dir={self.profile}",
             "--remote-debugging-port=0", "--window-size=1400,900", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        endpoint = None
        deadline = time.time() + 60
        while time.time() < deadline and endpoint is None:
            line = self.proc.stderr.readline()
            if "DevTools listening on" in line:
                endpoint = line.split("listening on", 1)[1].strip()
            elif not line and self.proc.poll() is not None:
                break
        assert endpoint, "Chromium did not start"
        port = endpoint.split(":")[2].split("/")[0]
        targets = []
        while time.time() < deadline and not targets:
            conn = http.client.HTTPConnection("127.0.0.1", int(port), timeout=10)
            conn.request("GET", "/json/list")
            targets = [t for t in json.loads(conn.getresponse().read()) if t["type"] == "page"]
            conn.close()
        self.ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.next_id = 0

    def send(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                assert "error" not in msg, msg
                return msg.get("result", {})

    def js(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.js(expression):
                return
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}: "
                             f"{self.js('document.body && document.body.innerText')}")

    def key(self, key: str):
        """Press a key as a person would (keyDown with its text, then keyUp)."""
        if key == "Enter":
            code, text, vk = "Enter", "\r", 13
        else:
            code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
            text, vk = key, ord(key.upper())
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=code,
                      text=text if kind == "keyDown" else "", windowsVirtualKeyCode=vk)

    def close(self):
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed "
                    "(apt-get install chromium)")
def test_review_page_by_keyboard_in_chromium(served):
    pytest.importorskip("websocket")
    out, server = served
    browser = Browser(server_url(server))  # "/" redirects to the only sample's page
    try:
        browser.wait_for("document.body.getAttribute('data-ready') === 'yes'")
        assert browser.js("document.querySelectorAll('#list div').length") > 2
        # Every tile image of the first candidates loads (gallery page or cut on demand).
        first = browser.js("document.querySelector('#list div').getAttribute('data-event-id')")
        browser.key("y")                                   # confirm the first candidate
        browser.wait_for("document.body.getAttribute('data-saved') === '1'")
        second = browser.js("document.querySelector('#list div.current')"
                            ".getAttribute('data-event-id')")
        assert second != first
        classes = browser.js("JSON.stringify(state.classes)")
        names = json.loads(classes)
        call = browser.js(f"state.candidates.find(c => c.event_id == {second}).call")
        target = next(n for n in names if n != call)
        browser.key(str(names.index(target) + 1))         # relabel the second by its number
        browser.wait_for("document.body.getAttribute('data-saved') === '2'")
        browser.wait_for("Array.from(document.images).every(i => i.complete)")
        assert browser.js("Array.from(document.images).every(i => i.naturalWidth > 0)")
        browser.send("Page.reload")
        browser.wait_for("document.body.getAttribute('data-ready') === 'yes'")
        decided = browser.js("JSON.stringify(Array.from(document.querySelectorAll("
                             "'#list div')).filter(d => d.dataset.decision)"
                             ".map(d => [d.dataset.eventId, d.dataset.decision]))")
        first_call = browser.js(f"state.candidates.find(c => c.event_id == {first}).call")
        assert sorted(json.loads(decided)) == sorted([[first, first_call], [second, target]])
        confirmed = browser.js(f"document.querySelector('#summary tr[data-class={target}] "
                               "td[data-col=confirmed]').textContent")
        want = 1 + (first_call == target)
        assert int(confirmed) == want
    finally:
        browser.close()
    table = pd.read_csv(out / "P001" / "review.csv")
    assert table.set_index("event_id")["reviewer_call"].to_dict() == {
        int(first): first_call, int(second): target}


def _page_in_a_window(served, width: int, height: int) -> Browser:
    """The served review page loaded in Chromium in a window of ``width`` x ``height`` CSS
    px (a narrow one: a laptop's at 150 or 200 % zoom)."""
    pytest.importorskip("websocket")
    _, server = served
    browser = Browser(server_url(server))
    try:
        browser.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                     deviceScaleFactor=1, mobile=False)
        browser.wait_for("document.body.getAttribute('data-ready') === 'yes'")
    except BaseException:  # (the caller's own try has not begun: no browser left behind)
        browser.close()
        raise
    return browser


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed "
                    "(apt-get install chromium)")
def test_a_decision_not_saved_stays_in_sight_in_a_narrow_window(served):
    """800 x 600: the page scrolled to the event, a refused decision's red line was 256 px
    above the window, with the header."""
    browser = _page_in_a_window(served, 800, 600)
    try:
        browser.js("window.scrollTo(0, document.body.scrollHeight); "
                   "notSaved([state.candidates[0].event_id], 'refused here'); 1")
        box = json.loads(browser.js("JSON.stringify((function () { var r = document"
                                    ".getElementById('unsaved').getBoundingClientRect(); "
                                    "return [r.top, r.bottom, window.scrollY]; })())"))
        assert box[2] > 0, "the page did not scroll: the test shows nothing"
        assert 0 <= box[0] < box[1] <= 600, box
        # The focused row brought into view from above (as a move up the list does) stops
        # below the line, not under it.
        row = json.loads(browser.js(
            "JSON.stringify((function () { var row = document.querySelector('#list .current');"
            " window.scrollTo(0, row.getBoundingClientRect().bottom + window.scrollY + 5);"
            " row.scrollIntoView({block: 'nearest'});"
            " return [row.getBoundingClientRect().top,"
            " document.getElementById('unsaved').getBoundingClientRect().bottom]; })())"))
        assert row[0] >= row[1], row
    finally:
        browser.close()


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed "
                    "(apt-get install chromium)")
def test_the_focused_row_and_its_event_stay_in_sight_at_200_percent_zoom(served):
    """A 1366 x 768 laptop at 200 %: j moved the focus down the list while the page scrolled
    to the event, leaving the focused row above the window."""
    browser = _page_in_a_window(served, 683, 384)
    try:
        browser.js("document.querySelector('#list .current').focus(); 1")
        for _ in range(3):
            browser.key("j")
        where = json.loads(browser.js(
            "JSON.stringify((function () { var row = document.activeElement;"
            " var r = row.getBoundingClientRect(), list = document.getElementById('list')"
            ".getBoundingClientRect();"
            " return {current: row.classList.contains('current'), top: r.top,"
            " bottom: r.bottom, listBottom: list.bottom,"
            " event: document.getElementById('info').getBoundingClientRect().top,"
            " scrolled: window.scrollY}; })())"))
        assert where["current"], where
        assert where["scrolled"] > 0, f"the page did not scroll: the test shows nothing {where}"
        assert 0 <= where["top"] < where["bottom"] <= min(384, where["listBottom"]), where
        assert where["event"] < 384, where  # the event right below the list
        assert where["bottom"] - where["top"] >= 24, where  # a target a hand hits (2.5.8)
    finally:
        browser.close()


def filter_that_hides(candidates):
    """A filter (select id, value) and a candidate it hides, where the cursor must go to the
    first shown candidate after it, at another position in the filtered list than the hidden
    one had in the full list (so keeping the position would be caught)."""
    def shows(name, value, c):
        if name == "filter-class":
            return c["call"] == value
        return value in [r["code"] for r in c["reasons"]]
    options = [("filter-class", c["call"]) for c in candidates] + \
        [("filter-reason", r["code"]) for c in candidates for r in c["reasons"]]
    for name, value in dict.fromkeys(options):
        shown = [i for i, c in enumerate(candidates) if shows(name, value, c)]
        for i, c in enumerate(candidates):
            after = [k for k, j in enumerate(shown) if j > i]
            if not shows(name, value, c) and after and after[0] != min(i, len(shown) - 1):
                return name, value, i, candidates[shown[after[0]]]["event_id"]
    raise AssertionError("no filter tells the cursor rules apart on these candidates")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed "
                    "(apt-get install chromium)")
def test_review_page_filter_and_focused_button_in_chromium(served):
    pytest.importorskip("websocket")
    out, server = served
    browser = Browser(server_url(server))
    try:
        browser.wait_for("document.body.getAttribute('data-ready') === 'yes'")
        candidates = json.loads(browser.js("JSON.stringify(state.candidates)"))
        name, value, row, expected = filter_that_hides(candidates)
        browser.js(f"document.querySelectorAll('#list div')[{row}].click()")
        current = "document.querySelector('#list div.current').getAttribute('data-event-id')"
        assert int(browser.js(current)) == candidates[row]["event_id"]
        browser.js(f"var s = document.getElementById('{name}'); s.value = '{value}'; "
                   "s.dispatchEvent(new Event('change'))")
        # The cursor's event is hidden: it goes to the next one shown, not to its old position.
        assert int(browser.js(current)) == expected
        browser.js(f"var s = document.getElementById('{name}'); s.value = ''; "
                   "s.dispatchEvent(new Event('change'))")
        assert int(browser.js(current)) == expected  # still shown: the cursor stays on it
        # Enter on a focused "reject" rejects (the page's Enter shortcut confirms elsewhere).
        browser.js("document.querySelector('#buttons button[data-call=reject]').focus()")
        assert browser.js("document.activeElement.getAttribute('data-call')") == "reject"
        browser.key("Enter")
        browser.wait_for("document.body.getAttribute('data-saved') === '1'")
        decided = browser.js(f"state.candidates.find(c => c.event_id == {expected}).decision")
        assert decided == D.REJECTED
        browser.key("Enter")  # focus left with the old buttons: Enter is no shortcut
        browser.key("y")      # the shortcut confirms
        browser.wait_for("document.body.getAttribute('data-saved') === '2'")
    finally:
        browser.close()
    table = pd.read_csv(out / "P001" / "review.csv").set_index("event_id")["reviewer_call"]
    nxt = candidates[next(i for i, c in enumerate(candidates) if c["event_id"] == expected) + 1]
    assert table.to_dict() == {expected: D.REJECTED, nxt["event_id"]: nxt["call"]}


def test_reviewed_events_become_a_crop_dataset(results, tmp_path):
    from ctcnet.cli import main
    from ctcnet.detect.crop_dataset import load_crops, read_crop_index
    from ctcnet.inference.journal import journal_gallery
    from ctcnet.io.scan import open_cartridge
    from ctcnet.report.gallery_pages import gallery_lookup

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    sample = out / "P001"
    events = pd.read_parquet(sample / "events.parquet")
    assert main(["crops", str(out), "--reviewed", "--out", str(tmp_path / "none")]) == 2
    run = D.RunEvents.of_sample(sample, *D.load_sample(sample))
    D.record_decision(sample, run, 1, "ctc", "a")          # confirmed or relabelled
    D.record_decision(sample, run, 5, "wbc", "b")          # relabelled
    D.record_decision(sample, run, 9, D.REJECTED, "a")     # rejected: no class, left out
    assert main(["crops", str(out), "--reviewed", "--out", str(tmp_path / "ds")]) == 0
    index = read_crop_index(tmp_path / "ds")
    assert sorted(index.labels) == ["ctc", "wbc"] and set(index.sample_ids) == {"P001"}
    assert index.panel.names == load_panel(None).names
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert [(c["event_id"], c["label"]) for c in info["crops"]] == [(1, "ctc"), (5, "wbc")]
    assert info["sources"][0]["scan"] == str(results / "cart")
    # The crops are the ones the model saw (the journal's float16 gallery copies).
    crops = load_crops(index)
    assert crops.shape[1:] == (load_panel(None).num_channels, CROP, CROP)
    cartridge = open_cartridge(results / "cart")
    gallery = journal_gallery(sample / "parts", cartridge.frames)
    position, stacked = gallery_lookup(events, gallery)
    for k, event_id in enumerate([1, 5]):
        if event_id in position.index:
            seen = stacked[position[event_id]].astype(np.float32)
            assert np.allclose(crops[k], seen, rtol=2e-3, atol=1.0)
    assert any(e in position.index for e in (1, 5))


def test_every_event_is_cut_a_frame_at_a_time_after_a_check_of_the_disk(results, tmp_path,
                                                                        monkeypatch):
    """Without --reviewed every event is cut: a frame's crops at a time, each written as cut
    (a sample of 90,000 events held whole took 24 GB), and a disk that cannot hold them is
    refused before anything is cut."""
    import collections

    from ctcnet.cli import main
    from ctcnet.detect.crop_dataset import read_crop_index
    from ctcnet.exports import event_crops

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    events = pd.read_parquet(out / "P001" / "events.parquet")
    full = collections.namedtuple("usage", "total used free")(10**9, 10**9 - 1000, 1000)
    with monkeypatch.context() as patch:
        patch.setattr(event_crops.shutil, "disk_usage", lambda path: full)
        assert main(["crops", str(out), "--out", str(tmp_path / "full")]) == 2
    assert not list((tmp_path / "full").rglob("*.tif"))
    chunks = []
    cut = event_crops.frame_event_crops

    def counted(*args, **kwargs):
        for rows, crops in cut(*args, **kwargs):
            chunks.append(len(rows))
            yield rows, crops

    monkeypatch.setattr(event_crops, "frame_event_crops", counted)
    assert main(["crops", str(out), "--out", str(tmp_path / "all")]) == 0
    index = read_crop_index(tmp_path / "all")
    assert len(index.labels) == len(events) == sum(chunks)
    assert len(chunks) == events["frame"].nunique() > 1
    assert sorted(set(index.labels)) == sorted(set(events["class"]))


def test_a_crop_sets_sources_are_recorded_absolute_whatever_the_working_folder(
        results, tmp_path, monkeypatch):
    """Given relative paths, dataset.json recorded them as typed: the set outlives the folder
    it was cut in (outputs.md says the scan path is absolute)."""
    from ctcnet.cli import main

    shutil.copytree(results / "results", tmp_path / "results")
    monkeypatch.chdir(tmp_path)
    assert main(["crops", "results", "--out", "ds"]) == 0
    (source,) = json.loads((tmp_path / "ds" / "dataset.json").read_text())["sources"]
    assert source["results"] == str(tmp_path / "results" / "P001")
    assert os.path.isabs(source["scan"])


def test_a_crops_run_into_an_out_another_run_filled_meanwhile_keeps_the_others(
        results, tmp_path, monkeypatch, capsys):
    """Two `crops` runs into one new --out at once both said they wrote it: one's dataset.json
    beside the other's crops. The crops are written beside --out and put in place whole."""
    from ctcnet.cli import main
    from ctcnet.exports import event_crops

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    target = tmp_path / "ds"
    cut = event_crops.write_event_dataset

    def beaten(results_dir, folder, **kwargs):
        assert folder.parent == tmp_path and folder.name.startswith(".ds.")  # not --out
        info = cut(results_dir, folder, **kwargs)
        (target / "dataset.json").write_text("{}")  # the other run finished first
        return info

    monkeypatch.setattr(event_crops, "write_event_dataset", beaten)
    assert main(["crops", str(out), "--out", str(target)]) == 2
    assert "another run wrote this folder" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["dataset.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]
    monkeypatch.setattr(event_crops, "write_event_dataset", cut)
    (target / "dataset.json").unlink()
    assert main(["crops", str(out), "--out", str(target)]) == 0  # into an empty folder
    assert (target / "dataset.json").stat().st_size > 2


# ---------------------------------------------------------------------------------------------
# Decisions keyed by run and position through the server: several servers, a re-run.

def as_sample(results, folder, name: str | None = None):
    """The predicted sample P001 as another sample's output in ``folder`` (named ``name``, by
    default the folder's), as predict would have written it there: a copy alone is another
    sample's outputs, refused."""
    shutil.copytree(results / "results" / "P001", folder)
    edit_json(folder / "summary.json", sample_id=name or folder.name,
              output_folder=folder.name)  # (sealed, as predict writes it)
    return folder


def served_twice(out):
    """Two review servers on one results folder (two people, or a restarted one left running)."""
    servers = [make_server(out, port=0, reviewer=f"r{k}") for k in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return servers


def test_two_servers_on_one_folder_keep_every_decision(results, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    events = pd.read_parquet(out / "P001" / "events.parquet")
    ids = events["event_id"].tolist()
    servers = served_twice(out)
    failures = []

    def post_all(k):
        for event_id in ids[k::2]:  # interleaved: the two servers never decide the same event
            status, data = post_decision(servers[k], event_id, "reject")
            if status != 200:
                failures.append((event_id, status, data))

    try:
        threads = [threading.Thread(target=post_all, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert not failures
    table = pd.read_csv(out / "P001" / "review.csv")
    assert sorted(table["event_id"]) == sorted(ids), "a writer overwrote the other's decisions"
    assert set(table["reviewer_call"]) == {D.REJECTED}


def renumber(sample, drop, shift_px=0.0):
    """What a re-run with other detection settings does to events.parquet: events in ``drop``
    are gone, the others renumbered in scan order, centroids moved by ``shift_px``."""
    events = pd.read_parquet(sample / "events.parquet")
    kept = events[~events["event_id"].isin(drop)].reset_index(drop=True)
    kept["event_id"] = np.arange(len(kept))
    kept["x"] += shift_px
    write_events(sample, kept, index=False)
    return kept


def test_decisions_follow_their_events_after_a_rerun(served):
    out, server = served
    sample = out / "P001"
    cands = json.loads(request(server, "GET", "/api/P001/state")[1])["candidates"]
    confirmed, relabelled, lost = cands[2], cands[3], cands[4]
    assert post_decision(server, confirmed["event_id"], "confirm")[0] == 200
    other = "wbc" if relabelled["call"] != "wbc" else "debris"
    assert post_decision(server, relabelled["event_id"], other)[0] == 200
    assert post_decision(server, lost["event_id"], "reject")[0] == 200
    # The re-run finds no event where `lost` was, and one fewer before the others: every id
    # after the first moves, so decisions keyed by event id alone land on other events.
    renumber(sample, drop=[cands[0]["event_id"], lost["event_id"]], shift_px=0.7)
    again = make_server(out, port=0)
    try:
        state = again.app.sample("P001").state("x")
    finally:
        again.server_close()
    decided = {(c["frame_id"], round(c["x"] - 0.7, 1), c["y"]): c["decision"]
               for c in state["candidates"] if c["decision"]}
    assert decided == {
        (confirmed["frame_id"], confirmed["x"], confirmed["y"]): confirmed["call"],
        (relabelled["frame_id"], relabelled["x"], relabelled["y"]): other}
    # The decision whose event is gone is reported, not attached, and still in the file.
    assert [u["event_id"] for u in state["unattached"]] == [lost["event_id"]]
    reviewed = state["counts"]["reviewed"]
    assert reviewed["unattached"] == 1 and reviewed["reviewed"] == 2
    table = pd.read_csv(sample / "review.csv")
    assert lost["event_id"] in table["event_id"].tolist() and len(table) == 3


def test_reviewed_crops_follow_their_events_after_a_rerun(served, tmp_path):
    from ctcnet.cli import main

    out, server = served
    sample = out / "P001"
    before = pd.read_parquet(sample / "events.parquet").set_index("event_id")
    picked = before.index[[3, 6, 9]].tolist()
    for event_id in picked:
        assert post_decision(server, event_id, "wbc")[0] == 200
    after = renumber(sample, drop=[before.index[0], picked[2]])
    assert main(["crops", str(out), "--reviewed", "--out", str(tmp_path / "ds")]) == 0
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    cut = after.set_index("event_id").loc[[c["event_id"] for c in info["crops"]]]
    # The crops are of the decided cells (same frame and position), under their new ids.
    assert cut[["frame_id", "x", "y"]].values.tolist() == \
        before.loc[picked[:2], ["frame_id", "x", "y"]].values.tolist()
    assert info["sources"][0]["unattached_decisions"] == 1


def test_review_of_another_cartridge_with_the_same_sample_id(results, tmp_path, caplog):
    """predict --overwrite of another patient's cartridge (same sample id, events at the same
    places) into a reviewed results folder: the decisions are set aside, not carried over."""
    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    sample = out / "P001"
    events, summary = D.load_sample(sample)
    run = D.RunEvents.of_sample(sample, events, summary)
    assert run.cartridge_id == summary.cartridge_id and run.cartridge_id
    picked = events["event_id"].iloc[:3].tolist()
    for event_id in picked:
        D.record_decision(sample, run, event_id, "wbc", "tester")
    # Another scan: every pixel one count brighter, so its events sit where the first's did.
    other = tmp_path / "other"
    shutil.copytree(results / "cart", other)
    for frame in other.glob("r*c*.tif"):
        tifffile.imwrite(frame, tifffile.imread(frame) + np.uint16(1),
                         photometric="minisblack")
    backend = load_backend(results / "model.pt", device="cpu", batch_size=64)
    with caplog.at_level("WARNING", logger="ctcnet.inference.journal"):
        rerun = predict_cartridge(other, backend, sample, PredictOptions(
            quiet=True, workers=0, report=False, overwrite=True))
    assert rerun.sample_id == "P001" and rerun.cartridge_id != summary.cartridge_id
    assert "review.csv holds decisions made on a scan with sample id P001 whose frames were " \
        "not all these" in caplog.text
    caplog.clear()
    events, summary = D.load_sample(sample)
    with caplog.at_level("WARNING", logger="ctcnet.review"):
        matched = D.migrate_decisions(sample, D.RunEvents.of_sample(sample, events, summary))
    assert matched.decisions.empty and matched.other_cartridge == 3
    assert "3 decision(s) in review.csv were made on another cartridge" in caplog.text
    counts = count_reviewed(events, matched.decisions,
                            count_events(events, ["ctc", "wbc"], ["ctc"], 7.5),
                            len(matched.unattached))
    assert counts.reviewed == 0 and counts.unattached == 3
    assert len(pd.read_csv(sample / "review.csv")) == 3  # kept in the file


# ---------------------------------------------------------------------------------------------
# One tally: the review server, summary.json and index.html show the same counts.

@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A predict output with calls the marker guard held (every third event, two kinds of
    flag) and one of three frames unreadable, so the blood read is two thirds of the tube."""
    from ctcnet.inference import finishing as P
    from ctcnet.simulate import simulate_cartridge

    base = tmp_path_factory.mktemp("guarded")
    simulate_cartridge(base / "cart", load_panel(None), num_frames=3, frame_shape=(256, 320),
                       seed=11, events_per_frame=25, sample_id="G001",
                       rare_rates={"ctc": 0.3, "cluster": 0.1})
    frame = sorted((base / "cart").glob("r*.tif"))[1]
    frame.write_bytes(frame.read_bytes()[:1000])  # truncated: skipped with its reason
    save_tiny_model(base / "model.pt", crop_size=CROP)
    real = P.guard_events

    def flag_some(events, *args, **kwargs):
        out = real(events, *args, **kwargs)
        pick = np.arange(len(out)) % 3 == 0
        kinds = np.where(np.arange(len(out)) % 2 == 0, "cd45_positive", "possible_ctc+unusual")
        out["guard"] = np.where(pick, kinds, "").astype(object)
        out["review"] = out["review"].to_numpy(bool) | pick
        return out

    backend = load_backend(base / "model.pt", device="cpu", batch_size=64)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "guard_events", flag_some)
        predict_cartridge(base / "cart", backend, base / "results" / "G001",
                          PredictOptions(quiet=True, workers=0, gallery_limit=8, report=run_report))
    return base / "results"


def html_counts(page: str) -> dict:
    """The counts table of index.html: {class: {column: text}}, plus the held-by-guard row."""
    import re

    table = re.search(r'<table id="counts">(.*?)</table>', page, re.S).group(1)
    out = {name: dict(re.findall(r'<td data-col="(\w+)">([^<]*)</td>', row))
           for name, row in re.findall(r'<tr data-class="(\w+)">(.*?)</tr>', table, re.S)}
    out["held_total"] = re.search(r'data-col="held_total">([^<]*)<', table).group(1)
    return out


def shown(value) -> str:
    """A count as index.html prints it."""
    return "n/a" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def test_server_summary_and_report_show_the_same_counts(guarded, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(guarded, out)
    sample = out / "G001"
    summary = json.loads((sample / "summary.json").read_text())
    tally = summary["tally"]
    events = pd.read_parquet(sample / "events.parquet")
    held = events["guard"].fillna("") != ""
    assert tally["held_total"] == int(held.sum()) > 0
    assert tally["held_by_flag"]["cd45_positive"] > 0 and tally["held_by_flag"]["unusual"] > 0
    for name in summary["model"]["classes"]:  # held calls are counted apart, never twice
        calls = events["class"] == name
        assert tally["counted"][name] == summary["counts"][name] == int((calls & ~held).sum())
        assert tally["held"][name] == int((calls & held).sum())
    # Per 7.5 mL of the blood actually read: two of the three frames.
    assert summary["frames"]["skipped"] == 1
    volume = summary["blood_volume_processed_ml"]
    assert volume == pytest.approx(summary["blood_volume_ml"] * 2 / 3)
    assert tally["blood_volume_ml"] == volume
    for name, value in summary["per_7_5_ml"].items():
        assert value == tally["per_7_5_ml"][name] == pytest.approx(
            summary["counts"][name] * 7.5 / volume)
    # index.html's timings are summary.json's (written once they were final).
    page = (sample / "index.html").read_text()
    assert f"{summary['timings_s']['total']:.2f} s" in page
    assert f"{summary['timings_s']['report']:.2f} s" in page

    server = make_server(out, port=0, reviewer="tester")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        state = json.loads(request(server, "GET", "/api/G001/state")[1])
        assert state["counts"]["model"] == tally  # the server's tally is predict's
        check_report_shows(sample, state["counts"])
        # Decisions: a held call confirmed, a counted one rejected, a third taken back.
        held_id = int(events.loc[held, "event_id"].iloc[0])
        kept_id = int(events.loc[~held & (events["class"] != "failed"), "event_id"].iloc[0])
        third = int(events.loc[~held, "event_id"].iloc[1])
        for event_id, call in ((held_id, "confirm"), (kept_id, "reject"), (third, "wbc")):
            status, data = post_decision(server, event_id, call, "G001")
            assert status == 200, data
        status, data = post_decision(server, third, "undecided", "G001")
        assert status == 200 and json.loads(data)["decision"] is None
        counts = json.loads(data)["counts"]
        assert json.loads(request(server, "GET", "/api/G001/state")[1])["counts"] == counts
    finally:
        server.shutdown()
        server.server_close()
    reviewed = counts["reviewed"]
    held_call = str(events.set_index("event_id").at[held_id, "class"])
    kept_call = str(events.set_index("event_id").at[kept_id, "class"])
    assert reviewed["reviewed"] == 2 and reviewed["rejected"] == 1
    after = dict(tally["counted"])
    after[held_call] += 1   # confirmed: the held call now counts
    after[kept_call] -= 1   # rejected: out of the count
    assert reviewed["after_review"] == after
    assert reviewed["confirmed"][held_call] == 1
    check_report_shows(sample, counts)
    on_disk = json.loads((sample / "summary.json").read_text())
    assert on_disk["reviewed"] == reviewed and on_disk["tally"] == tally
    assert on_disk["reviewed"]["blood_volume_ml"] == volume


def check_report_shows(sample, counts):
    """summary.json and index.html hold the server's counts (reviewed ones once decided)."""
    summary = json.loads((sample / "summary.json").read_text())
    assert summary["tally"] == counts["model"]
    assert summary.get("reviewed") == (counts["reviewed"] if counts["reviewed"]["reviewed"]
                                       or counts["reviewed"]["unattached"] else None)
    table = html_counts((sample / "index.html").read_text())
    model = counts["model"]
    assert table["held_total"].startswith(str(model["held_total"]))
    for name in model["classes"]:
        for key in ("counted", "held", "review", "per_7_5_ml"):
            if name in model[key]:
                assert table[name][key] == shown(model[key][name]), (name, key)
        if "reviewed" in summary:
            for key in ("confirmed", "after_review", "after_review_per_7_5_ml", "decided"):
                if name in counts["reviewed"][key]:
                    assert table[name][key] == shown(counts["reviewed"][key][name])


def post_json(server, sample, body):
    return request(server, "POST", f"/api/{sample}/decision", body,
                   {"Content-Type": "application/json"})


# ---------------------------------------------------------------------------------------------
# Why each event is on the list.

def test_every_candidate_and_tile_says_why_it_is_listed(served):
    out, server = served
    state = json.loads(request(server, "GET", "/api/P001/state")[1])
    threshold = state["review_threshold"]
    sample = server.app.sample("P001")
    for c in state["candidates"]:
        codes = [r["code"] for r in c["reasons"]]
        assert codes, c
        assert ("qc" in codes) == (c["why"] == "qc")
        assert ("call" in codes) == (c["call"] in state["reported"])
        guard = sample.by_id.at[c["event_id"], "guard"] or ""
        assert [k for k in codes if k.startswith("guard:")] == \
            ["guard:" + f for f in guard.split("+") if f]
        assert c["held"] == bool(guard)
        # The network's doubt, on an event the guard does not hold, as summary.json counts
        # it: said with the call's p and the threshold.
        low = next((r for r in c["reasons"] if r["code"] == "low_confidence"), None)
        if low is not None:
            assert c["flagged"] and not c["held"], c
            assert f"{c['confidence']:.2f}" in low["meaning"]
            assert f"{threshold:.2f}" in low["meaning"]
        # A tile's caption names the same reasons; "quality-control sample" only on QC ones.
        label = sample.tile_label(c["event_id"])
        assert ("quality-control sample" in label) == (c["why"] == "qc"), label
        held_call = c["held"] and any(r["code"] == "call" for r in c["reasons"])
        for r in c["reasons"]:  # the guard's flags share one "held:"
            if r["code"] == "call" and held_call:  # a held call: "held, not counted"
                assert "held, not counted: " in label, label
                continue
            assert r["caption"].removeprefix("held: ") in label
    # The filter lists each reason present with how many candidates have it.
    options = {o["code"]: o["count"] for o in state["reasons"]}
    for code, n in options.items():
        if code != "guard":
            assert n == sum(code in [r["code"] for r in c["reasons"]]
                            for c in state["candidates"])
    assert {"qc", "low_confidence"} <= set(options)
    page = request(server, "GET", "/review/P001")[1].decode()
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert 'id="filter-reason"' in page


def test_guard_flags_are_explained_and_held_events_counted_apart(guarded, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(guarded, out)
    server = make_server(out, port=0)
    try:
        state = server.app.sample("G001").state("x")
    finally:
        server.server_close()
    held = [c for c in state["candidates"] if c["held"]]
    assert held and all(c["flagged"] for c in held)
    reasons = {r["code"]: r for c in held for r in c["reasons"]}
    assert "CD45 over the CK area" in reasons["guard:cd45_positive"]["meaning"]
    assert "possible missed CTC" in reasons["guard:possible_ctc"]["meaning"]
    assert "counted apart" in reasons["guard:unusual"]["meaning"]
    assert reasons["guard:cd45_positive"]["caption"] == "held: CD45 over CK"
    options = {o["code"]: o["count"] for o in state["reasons"]}
    assert options["guard"] == len(held)
    # (a possible missed CTC beside a counted CTC reads as its repeat: same_ctc)
    assert options["guard:cd45_positive"] + options["guard:possible_ctc"] + \
        options.get("guard:same_ctc", 0) == len(held)
    assert state["counts"]["model"]["held_total"] >= len(held)
    # index.html has a row of its own for them, by flag.
    row = html_counts((out / "G001" / "index.html").read_text())["held_total"]
    assert "CD45 over CK" in row and "possible missed CTC" in row  # the review line's words


# ---------------------------------------------------------------------------------------------
# predict --overwrite under a running server.

def test_server_notices_a_new_run_and_refuses_requests_for_the_old(results, served, tmp_path):
    out, server = served
    sample = out / "P001"
    old = json.loads(request(server, "GET", "/api/P001/state")[1])
    old_run = old["run_id"]
    gallery_tile = next(c["tile"]["src"] for c in old["candidates"] if "width" in c["tile"])
    cut_tile = next(c["tile"]["src"] for c in old["candidates"] if "width" not in c["tile"])
    assert f"?run={old_run}" in gallery_tile and f"?run={old_run}" in cut_tile
    first = old["candidates"][0]
    assert post_decision(server, first["event_id"], "confirm", run_id=old_run)[0] == 200
    # Another scan of the cells, shifted: predict --overwrite numbers other events.
    other = tmp_path / "shifted"
    shutil.copytree(results / "cart", other)
    for frame in other.glob("r*c*.tif"):
        tifffile.imwrite(frame, np.roll(tifffile.imread(frame), 37, axis=-1),
                         photometric="minisblack")
    backend = load_backend(results / "model.pt", device="cpu", batch_size=64)
    predict_cartridge(other, backend, sample, PredictOptions(
        quiet=True, workers=0, gallery_limit=8, overwrite=True, report=run_report))
    # A decision, a cut tile and a gallery page asked for by the old page: refused, clearly.
    status, data = post_decision(server, first["event_id"], "reject", run_id=old_run)
    answer = json.loads(data)
    assert status == 409 and answer["stale"] and "reload the page" in answer["error"]
    for src in (cut_tile, gallery_tile):
        status, data = request(server, "GET", src)
        assert status == 409 and json.loads(data)["stale"], src
    # The state is the new run's; its tiles are served.
    new = json.loads(request(server, "GET", "/api/P001/state")[1])
    assert new["run_id"] != old_run
    events = pd.read_parquet(sample / "events.parquet")
    assert new["run_id"] == D.RunEvents(events, 1.0).token
    src = next(c["tile"]["src"] for c in new["candidates"] if "width" in c["tile"])
    assert request(server, "GET", src)[0] == 200
    table = pd.read_csv(sample / "review.csv")
    assert table["reviewer_call"].tolist() == [first["call"]]  # the refused one not written
    # While predict writes (the events table newer than the summary), requests wait for it.
    stamp = (sample / "summary.json").stat()
    os.utime(sample / "events.parquet", ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10 ** 9))
    with exclusive_folder(sample, "predict"):
        status, data = request(server, "GET", "/api/P001/state")
    assert status == 503 and "being written" in json.loads(data)["error"]
    # No run holding it, the summary naming this very table: a restore that set the files'
    # times in the archive's order (an unzip, tar -m), not a run (503 for good before).
    assert request(server, "GET", "/api/P001/state")[0] == 200
    # A rerun killed after it withdrew the summary, its events table not yet replaced: no
    # decision or sign-off on a sample half replaced (both were recorded, answered 200).
    os.utime(sample / "events.parquet", ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert request(server, "GET", "/api/P001/state")[0] == 200
    (sample / "summary.json").rename(tmp_path / "withdrawn.json")
    status, data = post_decision(server, first["event_id"], "reject", run_id=new["run_id"])
    assert status == 503 and "stopped before it finished" in json.loads(data)["error"]
    assert pd.read_csv(sample / "review.csv")["reviewer_call"].tolist() == [first["call"]]


# ---------------------------------------------------------------------------------------------
# Malformed decision requests.

@pytest.mark.parametrize("body, complaint", [
    ('{"event_id": Infinity, "call": "confirm"}', "not JSON"),
    ('{"event_id": NaN, "call": "confirm"}', "not JSON"),
    ('{"event_id": 1, "call": "confirm", "call": "reject"}', "'call' given more than once"),
    ('{"event_id": true, "call": "confirm"}', "event_id must be a whole number"),
    ('{"event_id": 2.9, "call": "confirm"}', "event_id must be a whole number"),
    ('{"event_id": 2.0, "call": "confirm"}', "event_id must be a whole number"),
    ('{"event_id": "2", "call": "confirm"}', "event_id must be a whole number"),
    ('{"event_id": -1, "call": "confirm"}', "event_id must be a whole number"),
    ('{"event_id": 1e400, "call": "confirm"}', "event_id must be a whole number"),
    ('{"event_id": 100000000000000000000000, "call": "confirm"}', "event_id must be"),
    ('{"event_id": 1}', "call must be a string"),
    ('{"event_id": 1, "call": 3}', "call must be a string"),
    ('{"event_id": 1, "call": "confirm", "reviewer": 5}', "reviewer must be a string"),
    ('{"event_id": 1, "call": "confirm", "run_id": []}', "run_id must be a string"),
    ('[1, "confirm"]', "a decision is"),
    ('{"event_id": CAND, "call": "maybe", "run_id": "RUN"}', "is not confirm, reject, undecided"),
    # Without the run its numbers are of: after a rerun the number may name another cell.
    ('{"event_id": CAND, "call": "confirm"}', "run_id must name the run"),
    ('{"event_id": 1', "not JSON"),
    ('\xff', "not JSON"),
    # A key no decision has is refused, not dropped: an adjudication's note was answered 200
    # and recorded nowhere.
    ('{"event_id": CAND, "call": "wbc", "run_id": "RUN", "note": "CD45 dim"}',
     "a decision has no 'note'; a decision carries no note"),
    ('{"event_id": CAND, "call": "wbc", "run_id": "RUN", "comment": 1}',
     "a decision has no 'comment'"),
])
def test_malformed_decisions_get_400_and_a_json_error(served, body, complaint):
    out, server = served
    sample = server.app.sample("P001")
    body = body.replace("RUN", sample.run.token).replace(
        "CAND", str(int(sample.candidates["event_id"].min())))
    status, data = post_json(server, "P001", body.encode("latin-1"))
    assert status == 400, data
    assert complaint in json.loads(data)["error"]
    assert not (out / "P001" / "review.csv").exists()
    assert request(server, "GET", "/api/P001/state")[0] == 200  # the server still answers


@pytest.mark.parametrize("flag", ['"true"', "1"])
def test_a_batch_whose_undecided_only_is_not_a_boolean_is_refused_not_read_as_false(served,
                                                                                     flag):
    """``"undecided_only": "true"`` was read as false: another reviewer's decision on an
    event of the batch written over, answered 200."""
    out, server = served
    sample = server.app.sample("P001")
    event = int(sample.candidates["event_id"].min())
    body = (f'{{"event_ids": [{event}], "call": "confirm", "run_id": "{sample.run.token}", '
            f'"undecided_only": {flag}}}')
    status, data = request(server, "POST", "/api/P001/decisions", body,
                           {"Content-Type": "application/json"})
    assert status == 400 and "undecided_only must be true or false" in json.loads(data)["error"]
    assert not (out / "P001" / "review.csv").exists()


def test_a_page_of_a_reading_that_is_neither_is_a_400(served):
    """?reading=third answered 200 with a page whose data request was then refused: a script
    or monitor that checks the page's status was told all is well."""
    _, server = served
    assert request(server, "GET", "/review/P001?reading=second")[0] == 200
    status, data = request(server, "GET", "/review/P001?reading=third")
    assert status == 400 and "reading must be 'first' or 'second'" in data.decode()
    # Given empty, it opened the counted first reading, decisions and sign-off shown.
    for path in ("/review/P001?reading=", "/api/P001/state?reading="):
        assert request(server, "GET", path)[0] == 400, path


def test_a_decision_can_be_taken_back(served):
    out, server = served
    cands = json.loads(request(server, "GET", "/api/P001/state")[1])["candidates"]
    a, b = cands[0]["event_id"], cands[1]["event_id"]
    assert post_decision(server, a, "reject")[0] == 200
    assert post_decision(server, b, "confirm")[0] == 200
    status, data = post_decision(server, a, "undecided")
    assert status == 200 and json.loads(data)["decision"] is None
    assert json.loads(data)["counts"]["reviewed"]["reviewed"] == 1
    # Taken back by a line of its own: the file keeps what was decided, and says it no longer is.
    table = pd.read_csv(out / "P001" / "review.csv")
    assert table[["event_id", "reviewer_call"]].values.tolist()[-1] == [a, D.UNDECIDED]
    assert set(table["event_id"]) == {a, b}
    state = json.loads(request(server, "GET", "/api/P001/state")[1])
    decided = {c["event_id"]: c["decision"] for c in state["candidates"]}
    assert decided[a] is None and decided[b] == cands[1]["call"]
    # Taking every decision back leaves summary.json without reviewed counts.
    assert post_decision(server, b, "undecided")[0] == 200
    assert "reviewed" not in json.loads((out / "P001" / "summary.json").read_text())


def test_a_server_with_a_token_answers_its_own_page_alone(results, tmp_path):
    """Any local account reached the server on 127.0.0.1: read a sample's state past the
    folder's permissions, and posted decisions and a sign-off under any reviewer's name. With
    the token ctcnet review gives it, a request must carry it (the first address's query, then
    the port's cookie it sets); the static report's files are the folder's own."""
    from ctcnet.review_server.access import cookie_name, session_prefix

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    server = make_server(out, port=0, reviewer="tester", token="s3cret-token")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, data = request(server, "GET", "/api/P001/state")
        assert status == 403 and b"answers the page it opened" in data
        # A person's browser without the token (a bookmark, a restarted server) reads a page.
        status, data = request(server, "GET", "/review/P001", headers={"Accept": "text/html"})
        assert status == 403 and data.startswith(b"<!doctype html>")
        assert b"open the address printed" in data
        assert post_decision(server, 1, "reject")[0] == 403
        assert not (out / "P001" / "review.csv").exists()
        assert request(server, "GET", "/api/P001/state?token=wrong")[0] == 403
        host, port = server.server_address[:2]
        conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.request("GET", "/review/P001?token=s3cret-token&reading=first")
        answer = conn.getresponse()
        answer.read()
        # On to the same page under the session's path, the cookie kept to that path: a
        # browser sends a cookie of 127.0.0.1 to every port there, and one of "/" reached
        # another account's server on another port, which then held the token.
        session = session_prefix("s3cret-token")
        assert answer.status == 302 and session.startswith("/s/") and "s3cret" not in session
        assert answer.getheader("Location") == f"{session}/review/P001?reading=first"
        cookie = answer.getheader("Set-Cookie")
        assert cookie.startswith(f"{cookie_name(port)}=s3cret-token;") and "HttpOnly" in cookie
        assert f"Path={session}/" in cookie and "SameSite=Lax" in cookie
        # The session's path without its closing slash is sent on to it (the cookie is kept
        # to the folder); no answer names the session's path in a Referer.
        bare = http.client.HTTPConnection(host, port, timeout=60)
        bare.request("GET", session)
        moved = bare.getresponse()
        moved.read()
        assert moved.status == 302 and moved.getheader("Location") == f"{session}/"
        bare.request("GET", f"{session}/review/P001",
                     headers={"Cookie": f"{cookie_name(port)}=s3cret-token"})
        page = bare.getresponse()
        page.read()
        assert page.status == 200 and page.getheader("Referrer-Policy") == "no-referrer"
        held = {"Cookie": f"{cookie_name(port)}=s3cret-token"}
        assert request(server, "GET", f"{session}/review/P001", headers=held)[0] == 200
        status, data = request(server, "GET", f"{session}/api/P001/state", headers=held)
        assert status == 200
        # The cookie answers under the session's path alone (no browser sends it elsewhere).
        assert request(server, "GET", "/api/P001/state", headers=held)[0] == 403
        # Another program's cookie the standard parser refuses, sent before this one (a
        # JSON value): read past, not every request refused.
        messy = {"Cookie": 'prefs={"theme":"dark"}; session=abc def; ' + held["Cookie"]}
        assert request(server, "GET", f"{session}/api/P001/state", headers=messy)[0] == 200
        event = json.loads(data)["candidates"][0]["event_id"]
        body = json.dumps({"event_id": event, "call": "reject",
                           "run_id": server.app.sample("P001").run.token})
        assert request(server, "POST", f"{session}/api/P001/decision", body,
                       {**held, "Content-Type": "application/json"})[0] == 200
        # The results' own files too (another account read a folder kept to its owner
        # through them): with the cookie, or under the token's key, which the sandboxed
        # report's own links keep and the page is told.
        assert request(server, "GET", "/files/P001/summary.json")[0] == 403
        assert request(server, "GET", f"{session}/files/P001/summary.json",
                       headers=held)[0] == 200
        keyed = json.loads(request(server, "GET", f"{session}/api/P001/state",
                                   headers=held)[1])["files"]
        assert keyed.startswith("/files/") and keyed != "/files/" and "s3cret" not in keyed
        assert request(server, "GET", keyed + "P001/summary.json")[0] == 200
        assert request(server, "GET", keyed + "P001/index.html")[0] == 200
        assert request(server, "GET", "/files/" + "0" * 32 + "/P001/summary.json")[0] == 403
    finally:
        server.shutdown()
        server.server_close()


def test_the_review_keeps_a_log_from_its_first_write_and_a_look_writes_none(results,
                                                                           tmp_path):
    """The review server's warnings and who saved what went to the console alone: its log
    file (logs/review-*.log) is begun by the first decision saved, and a look writes none."""
    from ctcnet.commands.review import _log_kept_from_first_write
    from ctcnet.core.run_log import run_log

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    with run_log(out, "review", ["ctcnet", "review", str(out)]) as log, \
            _log_kept_from_first_write(log, out) as keep_log:
        server = make_server(out, port=0, reviewer="tester")
        server.app.on_write = keep_log
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            cands = json.loads(request(server, "GET", "/api/P001/state")[1])["candidates"]
            assert not (out / "logs").exists() or not list((out / "logs").glob("review-*"))
            assert post_decision(server, cands[0]["event_id"], "reject")[0] == 200
        finally:
            server.shutdown()
            server.server_close()
    (kept,) = (out / "logs").glob("review-*.log")
    text = kept.read_text()
    event = cands[0]["event_id"]
    assert "ctcnet review " in text
    assert f"P001: decision saved by tester (first reading): event {event}: reject" in text


# ---------------------------------------------------------------------------------------------
# What a reviewer sees of the markers; tiles cut lazily; tabs and servers kept in step.

def test_predict_keeps_the_display_scale_of_its_run(results):
    from ctcnet.report.gallery_pages import LABEL_HEIGHT
    from ctcnet.review.levels import read_levels

    sample = results / "results" / "P001"
    events, summary = D.load_sample(sample)
    run = D.RunEvents.of_sample(sample, events, summary)
    names = [c["name"] for c in summary.panel["channels"]]
    levels = read_levels(sample, run.run_id, names)
    assert levels is not None and levels.cells > 0
    assert all(w > b for w, b in zip(levels.white, levels.background))
    # Each gallery tile has its line of intensities above it (the server's strips follow).
    page = next(p for g in summary.gallery.values() for p in g["pages"])
    row = (page["height"] - LABEL_HEIGHT) / len(page["event_ids"])
    tile = 2 * (2 * CROP + gallery_pages.GAP)  # channels and saliency, each zoomed twice
    assert row == 2 * LABEL_HEIGHT + tile + gallery_pages.GAP


def test_a_run_without_a_kept_scale_gets_one_from_its_frames(results, tmp_path):
    from ctcnet.review.levels import LEVELS_FILE, read_levels

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    (out / "P001" / LEVELS_FILE).unlink()
    server = make_server(out, port=0, warm_up=False)
    try:
        sample = server.app.sample("P001")
        state = sample.state("x")
    finally:
        server.server_close()
    levels = read_levels(out / "P001", sample.run.run_id, sample.panel.names)
    assert levels is not None and levels == sample.display_levels()
    markers = [c["markers"] for c in state["candidates"]]
    assert all(len(m) == len(state["channels"]) for m in markers)
    assert any(v is not None for m in markers for v in m)


def test_context_and_saliency_tiles(served):
    import io

    from PIL import Image

    out, server = served
    state = json.loads(request(server, "GET", "/api/P001/state")[1])
    cut = next(c for c in state["candidates"] if "width" not in c["tile"])
    sizes = {}
    for name, src in (("tile", cut["tile"]["src"]), ("saliency", cut["tile"]["src"] +
                                                     "&saliency=1"), ("context", cut["context"])):
        status, data = request(server, "GET", src)
        assert status == 200, data
        with Image.open(io.BytesIO(data)) as im:
            sizes[name] = im.size
    assert sizes["saliency"][1] > sizes["tile"][1]       # a second row: the saliency
    assert sizes["context"][0] > sizes["tile"][0]        # the frame round the event
    assert state["saliency"] is True
    stale = cut["context"].replace(state["run_id"], "another-run")
    assert request(server, "GET", stale)[0] == 409


def test_a_rerun_with_other_calls_gets_tiles_of_its_own_calls(served):
    """A rerun with another model or prior keeps the numbering, not the calls a tile's
    caption shows: the server kept serving the earlier run's tiles, an event called ``ctc``
    now captioned with its earlier call."""
    out, server = served
    state = json.loads(request(server, "GET", "/api/P001/state")[1])
    cut = next(c for c in state["candidates"] if "width" not in c["tile"])
    before = {src: request(server, "GET", src)[1] for src in (cut["tile"]["src"], cut["context"])}
    events = pd.read_parquet(out / "P001" / "events.parquet")
    at = events["event_id"] == cut["event_id"]
    other = "debris" if cut["call"] != "debris" else "wbc"
    events.loc[at, "class"] = other
    write_events(out / "P001", events, index=False)
    again = json.loads(request(server, "GET", "/api/P001/state")[1])
    assert again["run_id"] != state["run_id"]
    for src, old in before.items():
        status, data = request(server, "GET", src.replace(state["run_id"], again["run_id"]))
        assert status == 200 and data != old


def test_no_saliency_from_a_model_file_written_again_since_the_calls(results, tmp_path,
                                                                      caplog):
    """A fine-tune written again under the run's model path: its saliency beside the earlier
    network's calls explained calls it did not make, without a word. Now none, said why."""
    from types import SimpleNamespace

    from ctcnet.io.digests import file_sha256
    from ctcnet.review_server.app import ReviewApp

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    app = ReviewApp(out, saliency=True)
    model = tmp_path / "lab.pt"
    save_tiny_model(model, crop_size=48)
    made = file_sha256(model)
    sample = SimpleNamespace(name="P001", summary=SimpleNamespace(
        model=SimpleNamespace(path=str(model), sha256=made)))
    assert app._explainer(sample) is not None
    save_tiny_model(model, crop_size=48, version="0.0.2")  # written again under its name
    with caplog.at_level(logging.WARNING):
        assert app._explainer(sample) is not None  # (the run that made them: as it was)
        sample.summary.model.sha256 = "0" * 64
        assert app._explainer(sample) is None
    assert "is not the model file that made P001's calls" in caplog.text


def test_the_list_of_samples_hears_of_a_decision_made_on_another_server(results, tmp_path):
    """Two servers on one folder: a decision on one voids the sign-off made on the other; the
    other's list of samples kept saying "signed off" (its own last summary), though
    summary.json said otherwise."""
    import re

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    here, there = served_twice(out)
    try:
        state = json.loads(request(here, "GET", "/api/P001/state")[1])
        status, data = request(here, "POST", "/api/P001/signoff", json.dumps(
            {"reviewer": "ann", "run_id": state["run_id"], "stamp": state["stamp"],
             "note": "the rest checked as called"}), {"Content-Type": "application/json"})
        assert status == 200, data

        def listed(server):  # (one sample: "/" leads to its page; the list is the same)
            return re.sub(r"<[^>]*>", " ", server.app.index_html())

        assert "signed off" in listed(here)
        request(there, "GET", "/api/P001/state")
        event = state["candidates"][0]
        assert post_decision(there, event["event_id"], "debris")[0] == 200
        assert json.loads((out / "P001" / "summary.json").read_text())["signoff"][
            "status"] == "changed since"
        assert "sign-off stale" in listed(here), listed(here)
    finally:
        for server in (here, there):
            server.shutdown()
            server.server_close()


def test_state_since_catches_up_with_decisions_made_elsewhere(results, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    here, there = served_twice(out)
    try:
        state = json.loads(request(here, "GET", "/api/P001/state")[1])
        stamp, run_id = state["stamp"], state["run_id"]
        since = f"/api/P001/state?since={stamp}&run={run_id}"
        assert json.loads(request(here, "GET", since)[1]) == {
            "run_id": run_id, "stamp": stamp, "unchanged": True}
        first, second = state["candidates"][0], state["candidates"][1]
        status, data = post_decision(there, first["event_id"], "reject", run_id=run_id)
        answer = json.loads(data)
        assert status == 200 and answer["previous"] == stamp != answer["stamp"]
        caught = json.loads(request(here, "GET", since)[1])
        assert caught["decisions"] == [[first["event_id"], D.REJECTED]]
        assert caught["counts"]["reviewed"]["rejected"] == 1
        # A decision here after one elsewhere: its answer says the page missed one.
        answer = json.loads(post_decision(here, second["event_id"], "confirm",
                                          run_id=run_id)[1])
        assert answer["previous"] == caught["stamp"] != stamp
        assert request(here, "GET", f"/api/P001/state?since={stamp}&run=old")[0] == 409
    finally:
        for server in (here, there):
            server.shutdown()
            server.server_close()


def test_tiles_whose_page_went_away_are_not_cut(results, tmp_path, monkeypatch, caplog):
    import socket

    from ctcnet.review_server import app as A
    from ctcnet.review_server.sample import Sample

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    monkeypatch.setattr(A, "AHEAD", 0)  # nothing cut ahead: every cut is one asked for
    cut = []
    real = Sample.render_tile

    def slow(self, event_id, *args, **kwargs):
        cut.append(event_id)
        time.sleep(0.5)
        return real(self, event_id, *args, **kwargs)

    monkeypatch.setattr(Sample, "render_tile", slow)
    server = make_server(out, port=0, warm_up=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        state = json.loads(request(server, "GET", "/api/P001/state")[1])
        srcs = [c["tile"]["src"] for c in state["candidates"] if "width" not in c["tile"]][:5]
        with caplog.at_level("DEBUG", logger="ctcnet"):
            first = socket.create_connection((host, port))
            first.sendall(f"GET {srcs[0]} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            time.sleep(0.1)  # its cut has begun
            for src in srcs[1:4]:  # three more asked for and given up while it is cut
                gone = socket.create_connection((host, port))
                gone.sendall(f"GET {src} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                gone.close()
            status, data = request(server, "GET", srcs[4])
            first.close()
    finally:
        server.shutdown()
        server.server_close()
    assert status == 200 and data[:4] == b"\x89PNG"
    ids = [int(s.split("/")[-1].split(".")[0]) for s in srcs]
    assert cut == [ids[0], ids[4]]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_client_that_hangs_up_is_no_error(served, caplog):
    import io
    from http import HTTPStatus

    out, server = served

    class HungUp(io.BytesIO):
        def write(self, data):
            raise BrokenPipeError(32, "Broken pipe")

    handler = object.__new__(server.RequestHandlerClass)
    handler.wfile, handler.command, handler.path = HungUp(), "GET", "/api/P001/state"
    handler.request_version, handler.requestline = "HTTP/1.1", "GET /api/P001/state HTTP/1.1"
    handler.client_address, handler.close_connection = ("127.0.0.1", 1), False
    handler.headers = {}  # (the request's: none asked for)
    with caplog.at_level("DEBUG", logger="ctcnet"):
        handler._answer(handler._get, HTTPStatus.CONFLICT)
    assert handler.close_connection  # said to nobody, and logged as no error
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


FIRST_TILE = r"""
import json, sys, http.client, threading
from ctcnet.review_server.server import make_server
server = make_server(sys.argv[1], port=0, warm_up=False)
threading.Thread(target=server.serve_forever, daemon=True).start()
def get(path):
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=120)
    conn.request("GET", path)
    answer = conn.getresponse()
    return answer.status, answer.read()
state = json.loads(get("/api/P001/state")[1])
src = next(c["tile"]["src"] for c in state["candidates"] if "width" not in c["tile"])
plain = get(src)
torch_then = "torch" in sys.modules
salient = get(src + "&saliency=1")
print(json.dumps([plain[0], torch_then, salient[0], "torch" in sys.modules]))
server.server_close()
"""


def test_the_first_tiles_import_no_torch(results, tmp_path):
    """Torch takes seconds to import: a tile is cut without it, until saliency is asked for."""
    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    done = subprocess.run([sys.executable, "-c", FIRST_TILE, str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [200, False, 200, True]


def test_the_server_cuts_the_first_tiles_when_it_starts(served):
    out, server = served
    sample = server.app.sample("P001")
    first = sample.cut_order[:2]
    keys = [server.app._tile_key(sample, e, False, False) for e in first]
    deadline = time.time() + 120
    while time.time() < deadline and not all(server.app.tiles.cached(k) for k in keys):
        time.sleep(0.1)
    assert all(server.app.tiles.cached(k) for k in keys)
    assert sample._levels  # the display scale was read meanwhile too


def test_a_client_that_went_away_is_told_from_one_that_waits():
    import socket

    from ctcnet.review_server.tiles import client_connected

    ours, theirs = socket.socketpair()
    try:
        assert client_connected(ours)          # waiting for its answer
        theirs.sendall(b"GET / HTTP/1.1\r\n")  # a further request: still there
        assert client_connected(ours)
        ours.recv(100)
        theirs.close()                         # gone
        assert not client_connected(ours)
    finally:
        ours.close()


def test_a_sample_id_with_url_characters_gets_its_tiles(results, tmp_path):
    """A sample named "Pt #17?" (a '#' ends a path in a browser, a '?' starts a query): every
    address the server hands out is escaped, and each one answers."""
    from urllib.parse import quote

    out = tmp_path / "results"
    out.mkdir()
    as_sample(results, out / "Pt #17?")
    server = make_server(out, port=0, reviewer="tester")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        name = quote("Pt #17?", safe="")
        status, data = request(server, "GET", f"/api/{name}/state")
        assert status == 200, data[:300]
        state = json.loads(data)
        sources = [c["tile"]["src"] for c in state["candidates"] if c.get("tile")]
        assert sources and all(f"/{name}/" in src for src in sources)
        assert all(request(server, "GET", src)[0] == 200 for src in sources[:3])
        status, _ = request(server, "GET", "/")
        assert status == 302 or status == 200
    finally:
        server.shutdown()
        server.server_close()




def test_a_colour_blind_palette_cuts_every_tile_in_its_colours(results, tmp_path):
    """``ctcnet review --palette colourblind``: no gallery tile (drawn in CK green, CD45 red)
    is offered; every tile is cut from the frames with CK orange and CD45 cyan, and the page
    names them."""
    import io

    import numpy as np
    from PIL import Image

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    tiles = {}
    for palette in ("cellsearch", "colourblind"):
        server = make_server(out, port=0, reviewer="tester", warm_up=False, palette=palette)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            state = json.loads(request(server, "GET", "/api/P001/state")[1])
            tiles[palette] = [c["tile"] for c in state["candidates"]]
            event = state["candidates"][0]["event_id"]
            status, png = request(server, "GET", f"/api/P001/tile/{event}.png?run="
                                  f"{state['run_id']}")
            assert status == 200
            tiles[palette + "_png"] = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
            tiles[palette + "_legend"] = state["overlay"]
        finally:
            server.shutdown()
            server.server_close()
    assert any(t.get("width") for t in tiles["cellsearch"])  # gallery tiles offered
    assert not any(t.get("width") for t in tiles["colourblind"])  # every one cut
    assert "CK green" in tiles["cellsearch_legend"]
    assert "CK orange" in tiles["colourblind_legend"] and "CD45 cyan" in tiles["colourblind_legend"]
    assert tiles["cellsearch_png"].shape == tiles["colourblind_png"].shape
    assert not np.array_equal(tiles["cellsearch_png"], tiles["colourblind_png"])


def test_samples_are_read_when_asked_for_and_few_are_kept(results, tmp_path, monkeypatch):
    """A folder of many samples: none is read before its page asks (but the first few, read
    ahead), and only the last few asked for stay read."""
    from ctcnet.review_server import app as app_module

    out = tmp_path / "results"
    for k in range(3):
        as_sample(results, out / f"S{k}")
    monkeypatch.setattr(app_module, "KEEP_SAMPLES", 2)
    server = make_server(out, port=0, reviewer="tester", warm_up=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = server.app
        assert list(app.folders) == ["S0", "S1", "S2"] and not app.samples
        assert b"S2" in request(server, "GET", "/")[1]  # listed, not read
        for name in ("S0", "S1", "S2"):
            assert request(server, "GET", f"/api/{name}/state")[0] == 200
        assert list(app.samples) == ["S1", "S2"]  # S0, asked for first, went
        assert request(server, "GET", "/api/S0/state")[0] == 200  # read again
        assert list(app.samples) == ["S2", "S0"]
        status, data = request(server, "GET", "/api/S9/state")
        assert status == 404  # an unknown sample named with the ones there are
        assert "no sample 'S9' in" in json.loads(data)["error"] and "S0, S1, S2" in \
            json.loads(data)["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_the_index_of_a_sample_no_longer_kept_reads_another_servers_decisions(
        results, tmp_path, monkeypatch):
    """Two servers on one folder: a sample this one read and let go, decided by the other
    since, was listed as this one last made it ("0 decided"), and every sample let go lost
    its page's count of candidates."""
    from ctcnet.review_server import app as app_module
    from ctcnet.review_server.app import ReviewApp

    out = tmp_path / "results"
    for k in range(2):
        as_sample(results, out / f"S{k}")
    monkeypatch.setattr(app_module, "KEEP_SAMPLES", 1)
    here, there = ReviewApp(out, saliency=False), ReviewApp(out, saliency=False)
    pages = len(here.sample("S0").candidate_rows)
    here.sample("S1")  # S0 let go
    assert "S0" not in here.samples
    assert f"0 of its page&#x27;s {pages} decided" in here.index_html()
    other = there.sample("S0")
    event = other.candidate_rows[0]["event_id"]
    other.decide({"event_id": event, "call": "reject", "run_id": other.run.token}, "bob")
    assert f"1 of its page&#x27;s {pages} decided" in here.index_html()
    # Decided elsewhere while still kept here, then let go: the list reads the decision too
    # (it took the file's time as it let the sample go, not as its summary was made).
    here.sample("S0")
    event = other.candidate_rows[1]["event_id"]
    other.decide({"event_id": event, "call": "reject", "run_id": other.run.token}, "bob")
    here.sample("S1")
    assert "S0" not in here.samples
    assert f"2 of its page&#x27;s {pages} decided" in here.index_html()


def test_a_summary_whose_rates_are_written_again_brings_the_index_with_it(results, tmp_path):
    """A summary written at another precision (an earlier ctcnet's 1.0869565217391304 per
    7.5 mL, now 1.086956522) is written again as the review opens it: run.json and
    samples.csv kept the earlier figure, and the audit called the index edited."""
    from ctcnet.exports.results_audit import audit_run
    from ctcnet.inference.run_index import refresh_run_index
    from ctcnet.inference.summary import RunSummary
    from ctcnet.review_server.app import ReviewApp

    out = tmp_path / "results"
    folder = as_sample(results, out / "S0")
    summary = RunSummary.read(folder)
    rates = {k: (None if v is None else v + 1e-12) for k, v in summary.per_7_5_ml.items()}
    (folder / "summary.json").write_text(json.dumps(
        {**json.loads((folder / "summary.json").read_text()),
         **{k: v for k, v in dataclasses.replace(summary, per_7_5_ml=rates).to_dict().items()
            if k in ("per_7_5_ml", "figures_sha256")}}))
    (out / "run.json").write_text(json.dumps({"state": "finished", "outputs": [
        {"name": "S0", "summary": "S0/summary.json"}]}))
    refresh_run_index(out)  # (the entry as that run wrote it)
    assert json.loads((out / "run.json").read_text())["outputs"][0]["per_7_5_ml"] == rates
    assert audit_run(out) == []
    ReviewApp(out, saliency=False).sample("S0")  # opened: its rates written again
    assert RunSummary.read(folder).per_7_5_ml != rates
    assert audit_run(out) == []


def test_samples_a_running_batch_finishes_later_are_served_without_a_restart(results, tmp_path):
    """The review started while the night's batch was still writing: a sample finished
    since is listed and served, not 404 until someone restarts the server."""
    from ctcnet.review_server.app import ReviewApp

    out = tmp_path / "results"
    shutil.copytree(results / "results" / "P001", out / "P001")
    app = ReviewApp(out, saliency=False)
    assert list(app.folders) == ["P001"]
    as_sample(results, out / "P002")
    assert "review/P002" in app.index_html()
    assert app.sample("P002").name == "P002"
    # --scans naming one cartridge fits one sample: a second one finished later is not
    # served (said), and the one served stays so, not every request refused.
    shutil.rmtree(out / "P002")
    single = ReviewApp(out, saliency=False, scans=results / "cart")
    as_sample(results, out / "P002")
    assert "review/P001" in single.index_html() and "P002" not in single.folders


def test_a_sample_named_with_accents_decomposed_is_the_one_composed(results, tmp_path):
    """A page link or a script on macOS writes "Café" decomposed (e + combining accent): the
    same sample as the folder's composed name, not 404."""
    import unicodedata

    from ctcnet.review_server.app import ReviewApp

    out = tmp_path / "results"
    name = unicodedata.normalize("NFC", "Café")
    as_sample(results, out / name)
    app = ReviewApp(out, saliency=False)
    assert app.sample(unicodedata.normalize("NFD", "Café")).name == name


def test_a_long_json_answer_is_sent_compressed_where_the_browser_asks(served, monkeypatch):
    """A list of tens of thousands of candidates is megabytes of repeated words: sent gzip'd
    where the browser accepts it, as it is where it does not."""
    import gzip

    from ctcnet.review_server import server as server_module

    out, server = served
    monkeypatch.setattr(server_module, "GZIP_FROM_BYTES", 100)
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=60)
    conn.request("GET", "/api/P001/state", headers={"Accept-Encoding": "gzip, deflate"})
    resp = conn.getresponse()
    packed = resp.read()
    conn.close()
    assert resp.status == 200 and resp.getheader("Content-Encoding") == "gzip"
    plain = request(server, "GET", "/api/P001/state")[1]
    assert json.loads(gzip.decompress(packed))["run_id"] == json.loads(plain)["run_id"]
    assert len(packed) < len(plain)


def test_the_index_says_each_samples_state_review_list_and_decisions(tmp_path):
    """The page listing a night's samples says, before one is opened, whether its result may
    be read and how much review it holds."""
    from ctcnet.review_server.app import _sample_line

    partial = tmp_path / "a"
    partial.mkdir()
    (partial / "summary.json").write_text(json.dumps(
        {"status": "partial", "skipped_frames": [{"frame": "r00c01", "reason": "empty"}],
         "frames": {"total": 5, "processed": 4, "skipped": 1, "missing": 0},
         "review_list": {"events": 23}, "reviewed": {"reviewed": 5}}))
    assert _sample_line(partial) == ("partial; 23 sent to review, beside every counted-class "
                                     "call and a quality-control sample; 5 decided (open it "
                                     "for how many its page lists)")
    # Read, the page's candidates are known: the decisions are out of them (a line of "14
    # sent to review; 14 decided" read as done with 28 of its 42 still to go).
    assert _sample_line(partial, None, 42).endswith("; 5 of its page's 42 decided")
    (partial / "summary.json").write_text("{ not json")
    assert _sample_line(partial).startswith("its summary.json cannot be read")


def test_a_decision_on_read_only_media_is_refused_saying_so(served, monkeypatch):
    """An archive opened read-only: a decision cannot be written, and the page is told why
    (403, what to do), not a server error."""
    import errno

    from ctcnet.review_server.sample import Sample

    _out, server = served

    def read_only(*_args, **_kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Sample, "decide", read_only)
    state = json.loads(request(server, "GET", "/api/P001/state")[1])
    status, data = post_decision(server, state["candidates"][0]["event_id"], "wbc",
                                 run_id=state["run_id"])
    assert status == 403
    assert "cannot be written (read-only media, an archive?)" in json.loads(data)["error"]



def test_a_decision_refused_by_another_accounts_file_names_it(served, monkeypatch):
    """A reviewer's review.csv the next reviewer's account may not write was answered "read-only
    media, an archive?": the 403 names the file, whose it is, its mode and the shared setup."""
    from ctcnet.core.file_modes import account_name
    from ctcnet.review_server.sample import Sample

    out, server = served
    journal = out / "P001" / "review.csv"
    journal.write_text("")
    journal.chmod(0o640)

    def not_theirs(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", str(journal))

    monkeypatch.setattr(Sample, "decide", not_theirs)
    state = json.loads(request(server, "GET", "/api/P001/state")[1])
    status, data = post_decision(server, state["candidates"][0]["event_id"], "wbc",
                                 run_id=state["run_id"])
    error = json.loads(data)["error"]
    assert status == 403 and "read-only media" not in error
    assert f"{journal} is {account_name(journal.stat().st_uid)}'s, mode 0640" in error
    assert "chmod it 2770" in error

def test_a_body_shorter_than_its_length_is_a_400_not_a_server_error(served, monkeypatch):
    """A client that says 100 bytes and sends 10: let go after the handler's timeout with a
    400 naming the cause (it was a 500 "server error: timed out", logged as a traceback)."""
    import socket

    out, server = served
    monkeypatch.setattr(server.RequestHandlerClass, "timeout", 0.5)
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(b"POST /api/P001/decision HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\": 1}")
        received = b""  # the whole answer: its headers and body may come apart
        while chunk := conn.recv(65536):
            received += chunk
        answer = received.decode("utf-8", "replace")
    assert answer.startswith("HTTP/1.0 400") or answer.startswith("HTTP/1.1 400"), answer[:80]
    assert "ended before its Content-Length" in answer


def test_the_server_says_at_its_start_what_its_pages_will_refuse(results, tmp_path, caplog,
                                                                 monkeypatch):
    """Scans moved since predict, a folder that cannot be written: said once as it starts,
    not found at the first tile or decision."""
    import ctcnet.review_server.app as app_module
    from ctcnet.review_server.server import make_server

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    summary = json.loads((out / "P001" / "summary.json").read_text())
    assert os.path.exists(summary["input"])
    monkeypatch.setattr(app_module.os, "access", lambda path, mode: False)
    moved = tmp_path / "moved"
    read = app_module.RunSummary.read
    monkeypatch.setattr(app_module.RunSummary, "read", classmethod(
        lambda cls, folder: dataclasses.replace(read(folder), input=str(moved))))
    with caplog.at_level("WARNING"):
        server = make_server(out, 0, warm_up=False)
        server.server_close()
    assert "the results folder cannot be written" in caplog.text
    assert f"the scans of 1 of 1 sample(s) are not where predict read them (e.g. {moved})" \
        in caplog.text


def test_a_sample_folder_this_account_may_not_enter_is_left_out_and_named(results, tmp_path,
                                                                          monkeypatch, caplog):
    """A service account's sample folder 0700 beside the others: ``ctcnet review`` refused
    the whole results folder (naming logs/ first), and verify stopped there. The review
    serves the others, naming the folder left out; verify fails naming it."""
    from pathlib import Path

    from ctcnet.cli import main
    from ctcnet.review.decisions import find_samples

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    shutil.copytree(out / "P001", out / "P002")
    (out / "logs").mkdir()
    real = Path.exists

    def shut(self, *args, **kwargs):  # P002 and logs/ may not be entered
        if self.parent.name in ("P002", "logs"):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", shut)
    with caplog.at_level("WARNING"):
        assert list(find_samples(out)) == ["P001"]
    assert "1 folder(s) this account" in caplog.text and "left out (P002: " in caplog.text
    assert main(["verify", "--results", str(out)]) == 1


def test_a_sample_with_a_file_another_account_keeps_is_403_and_the_server_starts(
        results, tmp_path, monkeypatch):
    """A reviewer's review.csv 0600: ``ctcnet review`` refused to start for every sample
    (exit 2; so did a seal 0600); it starts, and that sample's page answers 403 naming the
    file."""
    from pathlib import Path

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    import ctcnet.review.decision_journal as journals

    journal = out / "P001" / "review.csv"
    journal.write_text("")
    real = journals.open_own

    def kept(path, mode, *args, **kwargs):  # (the account running tests may read anything)
        if Path(path) == journal:
            raise PermissionError(13, "Permission denied", str(journal))
        return real(path, mode, *args, **kwargs)

    monkeypatch.setattr(journals, "open_own", kept)
    server = make_server(out, port=0, reviewer="tester")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, data = request(server, "GET", "/api/P001/state")
        assert status == 403, data
        assert f"{journal} may not be read or written" in json.loads(data)["error"]
    finally:
        server.shutdown()
        server.server_close()


def test_a_poll_brings_summary_json_up_to_a_sign_off_a_hand_edit_voided(results, tmp_path):
    """The page's poll reads the records under the decisions lock, then writes summary.json
    where the sign-off moved (a review.csv edited by hand): summary.json says so."""
    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    here, there = served_twice(out)
    try:
        state = json.loads(request(here, "GET", "/api/P001/state")[1])
        assert post_decision(here, state["candidates"][0]["event_id"], "debris")[0] == 200
        state = json.loads(request(here, "GET", "/api/P001/state")[1])
        status, data = request(here, "POST", "/api/P001/signoff", json.dumps(
            {"reviewer": "ann", "run_id": state["run_id"], "stamp": state["stamp"],
             "note": "the rest checked as called"}), {"Content-Type": "application/json"})
        assert status == 200, data
        stamp = json.loads(request(here, "GET", "/api/P001/state")[1])["stamp"]
        journal = out / "P001" / "review.csv"
        journal.write_text(journal.read_text().replace(",debris,", ",ctc,", 1))
        polled = json.loads(request(here, "GET", f"/api/P001/state?since={stamp}&run="
                                    f"{state['run_id']}")[1])
        assert polled["signoff"]["status"] != "current"
        assert json.loads((out / "P001" / "summary.json").read_text())["signoff"][
            "status"] == polled["signoff"]["status"]
    finally:
        for server in (here, there):
            server.shutdown()
            server.server_close()


def test_a_stop_waits_for_the_decisions_in_progress(results, tmp_path, monkeypatch):
    """Closing the server lets a decision being saved finish (its journal line and the
    summary it updates) before the command ends: socketserver joins no daemon thread, and a
    Ctrl-C in a burst of decisions left the summary behind the journal."""
    from ctcnet.review_server.sample import Sample

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    server = make_server(out, port=0, reviewer="tester", warm_up=False)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    started = threading.Event()
    decide = Sample.decide

    def slow_decide(self, body, default_reviewer):
        started.set()
        time.sleep(0.5)  # the request is in progress as the stop comes
        return decide(self, body, default_reviewer)

    monkeypatch.setattr(Sample, "decide", slow_decide)
    event_id = server.app.sample("P001").state("x")["candidates"][0]["event_id"]
    answers = []
    poster = threading.Thread(
        target=lambda: answers.append(post_decision(server, event_id, "confirm")[0]))
    poster.start()
    assert started.wait(30)
    server.shutdown()
    server.server_close()
    table = pd.read_csv(out / "P001" / "review.csv")
    assert event_id in set(table["event_id"])
    summary = json.loads((out / "P001" / "summary.json").read_text())
    assert summary["reviewed"]["reviewed"] == 1
    poster.join(30)
    assert answers == [200]


@pytest.mark.parametrize("edit, said", [
    (lambda d: (d.pop("counts"), d.pop("per_7_5_ml")), "lacking 'counts', 'per_7_5_ml'"),
    (lambda d: d.__setitem__("blood_volume_ml", "7.5 mL"), "result state cannot be worked out"),
    (lambda d: d.__setitem__("panel", None), "its review's counts not checked")])
def test_verify_says_a_summary_edited_by_hand_is_not_a_runs_record(results, tmp_path, capsys,
                                                                   edit, said):
    """verify --results, the audit meant to catch hand edits, ended in a traceback on a
    summary.json lacking its counts, with a volume in words or a panel of null."""
    from ctcnet.cli import main

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    decide_one_offline(out)
    path = out / "P001" / "summary.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["verify", "--results", str(out)]) == 1
    text = capsys.readouterr().out
    assert said in text and "FAILED: 1 of 1 sample(s)" in text
    # The review, crops and exports refuse it in one line naming the file (a traceback, or
    # an error naming none).
    assert main(["crops", str(out), "--out", str(tmp_path / "crops")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "cannot read the predict outputs: summary.json: " in line, line


def decide_one_offline(out):
    """One decision on the sample, as a reviewer's (so the review's counts are checked)."""
    server = make_server(out, port=0, reviewer="tester", warm_up=False)
    try:
        event_id = server.app.sample("P001").state("x")["candidates"][0]["event_id"]
        server.app.sample("P001").decide({"event_id": event_id, "call": "confirm",
                                          "run_id": server.app.sample("P001").run.token},
                                         "tester")
    finally:
        server.server_close()


def test_a_lone_finished_sample_of_a_night_left_undone_opens_on_the_list(results, tmp_path):
    """A night killed while it ran its second sample: the one finished sample was opened
    straight away, and its page said nothing of the other (the list names it); opened now
    on the list. A lone sample of a finished run still opens straight away."""
    out = tmp_path / "night"
    out.mkdir()
    as_sample(results, out / "P001")
    (out / "P002" / "parts").mkdir(parents=True)  # begun, not finished
    import socket

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (out / "run.json").write_text(json.dumps(
        {"format_version": 1, "state": "running", "host": socket.gethostname(),
         "pid": gone.pid, "inputs": ["P001", "P002"], "outputs": []}))
    server = make_server(out, port=0, reviewer="tester")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, data = request(server, "GET", "/")
        assert status == 200 and b"P002" in data and b"did not finish all of" in data
        shutil.rmtree(out / "P002")
        (out / "run.json").unlink()
        assert request(server, "GET", "/")[0] == 302
    finally:
        server.shutdown()
        server.server_close()


def test_a_reviewer_name_of_invisible_characters_alone_is_refused_not_the_servers():
    """A zero-width space or a bell for a name was recorded as the server's account: a
    sign-off pinned on whoever ran the server."""
    from ctcnet.review_server.requests import BadRequest, reviewer_name

    for name in ("\u200b", "\x07", "\u202e", "\ufeff"):
        with pytest.raises(BadRequest, match="no character that can be shown"):
            reviewer_name(name, "root")
    assert reviewer_name("  ", "root") == "root" and reviewer_name(None, "root") == "root"
    assert reviewer_name("ann\u200b", "root") == "ann"


def test_the_request_log_never_holds_the_token(caplog):
    """At -vv each request line went to stderr with its ?token=..., which a service's captured
    stderr keeps; the page's address carries it."""
    from ctcnet.review_server.server import ReviewHandler

    handler = object.__new__(ReviewHandler)
    handler.client_address = ("127.0.0.1", 5000)
    with caplog.at_level("DEBUG", logger="ctcnet.review_server.server"):
        handler.log_message('"%s" %s %s', "GET /api/S1/state?run=a.b&token=Yu9kQ_d0 HTTP/1.1",
                            "200", "-")
    assert "Yu9kQ_d0" not in caplog.text and "run=a.b&token=... HTTP/1.1" in caplog.text
    from ctcnet.review_server.server import without_secrets

    assert without_secrets("GET /x?%74oken=abc&run=1 HTTP/1.1") == \
        "GET /x?%74oken=...&run=1 HTTP/1.1"
    assert without_secrets("GET /files/0123456789abcdef0123456789abcdef/S1/a.png HTTP/1.1") == \
        "GET /files/.../S1/a.png HTTP/1.1"
