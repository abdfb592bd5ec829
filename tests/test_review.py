"""The review loop: candidates, review.csv, the server (paths confined), the page in Chromium,
and reviewed events cut into a crop dataset."""

import http.client
import json
import shutil
import subprocess
import tempfile
import threading
import time

import numpy as np
import pandas as pd
import pytest
from conftest import save_tiny_model

from ctcnet.errors import InputError
from ctcnet.inference.backends import load_backend
from ctcnet.inference.predict import PredictOptions, predict_cartridge
from ctcnet.io.panel import load_panel
from ctcnet.report import decisions as D
from ctcnet.report.server import make_server, server_url

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
                      PredictOptions(quiet=True, workers=0, gallery_limit=8))
    # An untrained model is unsure of everything; make it sure of the events without a
    # gallery tile (the pool of the quality-control sample) and call two of the rest ctc.
    sample = base / "results" / "P001"
    events = pd.read_parquet(sample / "events.parquet")
    summary = json.loads((sample / "summary.json").read_text())
    shown = {e for g in summary["gallery"].values() for p in g["pages"] for e in p["event_ids"]}
    in_gallery = events["event_id"].isin(shown)
    events.loc[~in_gallery, ["review", "confidence"]] = (False, 0.99)
    events.loc[events.index[in_gallery][:2], "class"] = "ctc"
    events.to_parquet(sample / "events.parquet", index=False)
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


def post_decision(server, event_id, call):
    return request(server, "POST", "/api/P001/decision",
                   json.dumps({"event_id": event_id, "call": call}),
                   {"Content-Type": "application/json"})


def test_candidates_are_calls_flags_and_a_stable_qc_sample():
    events = pd.DataFrame({"event_id": range(100), "class": ["debris"] * 90 + ["ctc"] * 10,
                           "review": [False] * 80 + [True] * 20})
    chosen = D.select_candidates(events, ["ctc", "cluster"], "S1", qc_fraction=0.1, qc_min=5)
    assert set(chosen.loc[chosen["why"] == "call", "event_id"]) == set(range(90, 100))
    assert set(chosen.loc[chosen["why"] == "flagged", "event_id"]) == set(range(80, 90))
    qc = chosen.loc[chosen["why"] == "qc", "event_id"]
    assert len(qc) == 8 and (qc < 80).all()
    again = D.select_candidates(events, ["ctc", "cluster"], "S1", qc_fraction=0.1, qc_min=5)
    assert again["event_id"].tolist() == chosen["event_id"].tolist()  # same after a restart


def test_decisions_replace_and_count(tmp_path):
    D.record_decision(tmp_path, 3, "ctc", "ctc", "a")
    D.record_decision(tmp_path, 1, "ctc", "wbc", "a")
    D.record_decision(tmp_path, 3, "ctc", D.REJECTED, "b")  # a second look wins
    table = D.read_decisions(tmp_path)
    assert table["event_id"].tolist() == [1, 3]
    assert table["reviewer_call"].tolist() == ["wbc", "rejected"]
    assert list(table.columns) == D.COLUMNS
    events = pd.DataFrame({"event_id": range(4), "class": ["ctc", "ctc", "wbc", "ctc"]})
    counts = D.review_counts(events, table, 3.75, ["ctc", "wbc", "cluster"])
    assert counts["classes"]["ctc"] == {"model": 3, "model_per_7_5_ml": 6.0, "confirmed": 0,
                                        "confirmed_per_7_5_ml": 0.0, "decided": 2}
    assert counts["classes"]["wbc"]["confirmed_per_7_5_ml"] == 2.0
    assert counts["rejected"] == 1 and counts["reviewed"] == 2
    (tmp_path / "review.csv").write_text("what,ever\n1,2\n")
    with pytest.raises(InputError):
        D.read_decisions(tmp_path)


def test_server_saves_decisions_and_survives_a_restart(served):
    out, server = served
    status, data = request(server, "GET", "/api/P001/state")
    assert status == 200
    state = json.loads(data)
    cands = state["candidates"]
    assert cands and {c["why"] for c in cands} >= {"qc"}
    in_gallery = [c for c in cands if "width" in c["tile"]]
    assert in_gallery, "gallery tiles are located on the montage pages"
    first, second = cands[0], cands[1]
    assert post_decision(server, first["event_id"], "confirm")[0] == 200
    status, data = post_decision(server, second["event_id"], "debris")
    assert status == 200 and json.loads(data)["decision"] == "debris"
    assert post_decision(server, first["event_id"], "nonsense")[0] == 400
    assert post_decision(server, 10 ** 6, "confirm")[0] == 400
    # Not JSON: refused (a form posted from another site cannot set this content type).
    assert request(server, "POST", "/api/P001/decision", "event_id=1&call=confirm",
                   {"Content-Type": "application/x-www-form-urlencoded"})[0] == 415
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


def test_review_command_rejects_a_folder_without_results(tmp_path, capsys):
    from ctcnet.cli import main

    assert main(["review", str(tmp_path), "--no-browser", "--port", "0"]) == 2
    assert "no predict outputs" in capsys.readouterr().err


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
        code = f"Digit{key}" if key.isdigit() else f"Key{key.upper()}"
        for kind in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=kind, key=key, code=code,
                      text=key if kind == "keyDown" else "",
                      windowsVirtualKeyCode=ord(key.upper()))

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


def test_reviewed_events_become_a_crop_dataset(results, tmp_path):
    from ctcnet.cli import main
    from ctcnet.inference.predict import journal_gallery
    from ctcnet.io.crop_dataset import load_crops, read_crop_index
    from ctcnet.io.scan import open_cartridge
    from ctcnet.report.review import gallery_lookup

    out = tmp_path / "results"
    shutil.copytree(results / "results", out)
    sample = out / "P001"
    events = pd.read_parquet(sample / "events.parquet")
    assert main(["crops", str(out), "--reviewed", "--out", str(tmp_path / "none")]) == 2
    D.record_decision(sample, 1, "ctc", "ctc", "a")        # confirmed
    D.record_decision(sample, 5, "debris", "wbc", "b")     # relabelled
    D.record_decision(sample, 9, "debris", D.REJECTED, "a")  # rejected: no class, left out
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
