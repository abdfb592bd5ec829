"""What a review decision costs at lab scale: on the server, with 100,000 decisions recorded,
and in the browser, a list update at 10,000 rows.

    python scripts/review_benchmark.py [--decisions 100000] [--rows 10000] [--work DIR]

A small cartridge is simulated and predicted once (``ctcnet simulate cartridge``, ``ctcnet
predict`` with the shipped model); its events table is then enlarged with copies of its events
(new ids, other positions), so the review server has a cartridge of the wanted size without a
long predict run.

* Server: review.csv holds ``--decisions`` decisions on as many events; a review server's
  sample (``ctcnet.review_server.sample.Sample``) records further decisions, and each one's time is
  measured whole (appending the line, bringing the match up to date, counting, writing
  summary.json and index.html back), in process and over HTTP. Target: under 50 ms.
* Browser (headless Chromium, where installed): the page of a cartridge with about ``--rows``
  candidates; the CPU time of the list update after a saved decision (the row redrawn, the
  cursor moved, the counts and progress drawn, layout forced), and the main thread's task time
  per decision made by key press (DevTools' TaskDuration). Target: under 16 ms. The whole list
  drawn again is measured beside it, for comparison.

Prints a table and writes ``WORK/review_benchmark.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.io.digests import file_sha256

ROOT = Path(__file__).resolve().parents[1]


def build_results(work: Path) -> Path:
    """A small simulated cartridge predicted with the shipped model (made once per WORK)."""
    from ctcnet.cli import main as ctcnet

    cartridge, results = work / "cartridge", work / "results"
    if not (results / "bench" / "summary.json").exists():
        rc = ctcnet(["simulate", "cartridge", str(cartridge), "--frames", "2", "--events", "60",
                     "--sample-id", "bench", "--seed", "7", "--overwrite"])
        if rc == 0:
            rc = ctcnet(["predict", str(cartridge), "--out", str(results), "--overwrite"])
        if rc:
            raise SystemExit("simulate or predict failed; see above")
    return results


def enlarge(source: Path, target: Path, events_wanted: int, flagged: int, seed: int = 0) -> Path:
    """A copy of sample ``source`` whose events table holds ``events_wanted`` events: its own
    and copies of them (new ids, positions moved within the frame), ``flagged`` of them sent
    to review and the rest confident debris calls."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    for stale in ("review.csv", "review-second.csv", "signoff.json"):
        (target / stale).unlink(missing_ok=True)
    events = pd.read_parquet(target / "events.parquet")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(events), events_wanted)
    big = events.iloc[picks].reset_index(drop=True)
    big["event_id"] = np.arange(events_wanted, dtype=np.int64)
    big["x"] = rng.uniform(40, events["x"].max(), events_wanted)
    big["y"] = rng.uniform(40, events["y"].max(), events_wanted)
    big["class"] = "debris"
    big["confidence"] = 0.99
    big["review"] = False
    if "guard" in big:
        big["guard"] = None
    # Spread over the table (decisions are written on its first events).
    big.loc[rng.choice(big.index, min(flagged, events_wanted), replace=False),
            ["class", "confidence", "review"]] = ("wbc", 0.6, True)
    big = big.sort_values(["frame", "event_id"], kind="stable").reset_index(drop=True)
    big["event_id"] = np.arange(events_wanted, dtype=np.int64)
    big.to_parquet(target / "events.parquet", index=False)
    summary = json.loads((target / "summary.json").read_text())
    summary["gallery"] = {}  # its pages show events of the small table
    # As predict records its table: this one is the benchmark's run, not an edit by hand.
    summary["events_sha256"] = file_sha256(target / "events.parquet")
    # Written after the events table: a finished run.
    (target / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return target


def write_decisions(sample: Path, n: int) -> None:
    """review.csv with ``n`` decisions of the sample's run, one per event, a few per second."""
    from ctcnet.review import decisions as D

    events, summary = D.load_sample(sample)
    run = D.RunEvents.of_sample(sample, events, summary)
    chosen = events.iloc[:n]
    start = pd.Timestamp("2026-01-01", tz="UTC")
    table = pd.DataFrame({
        "run_id": run.run_id, "cartridge_id": run.cartridge_id or "",
        "event_id": chosen["event_id"].to_numpy(), "frame_id": chosen["frame_id"].astype(str),
        "x": chosen["x"].round(2), "y": chosen["y"].round(2), "model_call": chosen["class"],
        "reviewer_call": np.where(np.arange(n) % 7 == 0, D.REJECTED, chosen["class"]),
        "reviewer": "bench",
        "time": [(start + pd.Timedelta(seconds=k // 3)).isoformat() for k in range(n)]},
        columns=D.COLUMNS)
    table.to_csv(sample / D.REVIEW_FILE, index=False)


def percentiles(times_ms: list[float]) -> dict:
    """Median, 95th percentile and maximum of ``times_ms`` (rounded), with the count."""
    arr = np.asarray(times_ms)
    return {"median_ms": round(float(np.median(arr)), 2),
            "p95_ms": round(float(np.percentile(arr, 95)), 2),
            "max_ms": round(float(arr.max()), 2), "n": len(times_ms)}


def server_benchmark(results: Path, work: Path, decisions: int, repeats: int) -> dict:
    """Time recording a decision on a review server sample that already holds ``decisions``
    decisions, ``repeats`` times."""
    from ctcnet.review import decisions as D
    from ctcnet.review_server.sample import Sample
    from ctcnet.review_server.server import make_server

    base = results / "bench"
    folder = work / "server" / "bench"
    # Decisions are taken on the page's candidates only: enough flagged events for the new
    # decisions and the batches among the undecided sixth of the table.
    enlarge(base, folder, int(decisions * 1.2), flagged=max(200, 8 * (repeats + 500)))
    write_decisions(folder, decisions)
    t0 = time.perf_counter()
    sample = Sample("bench", folder)
    opened = time.perf_counter() - t0
    matched = sample.decisions.matched(sample.run)
    assert len(matched.decisions) == decisions, len(matched.decisions)
    open_ = [int(e) for e in sample.events["event_id"].iloc[decisions:]
             if int(e) in sample.candidate_ids]
    free = open_[:repeats]
    again = [int(e) for e in sample.events["event_id"].iloc[:repeats]]
    whole, record_only = [], []
    for k, event_id in enumerate(free + again):  # new decisions, then decisions replaced
        body = {"event_id": event_id, "call": "reject" if k % 2 else "confirm",
                "run_id": sample.run.token, "reviewer": "bench"}
        t = time.perf_counter()
        sample.decide(body, "bench")
        whole.append(1000 * (time.perf_counter() - t))
    for event_id in free:
        t = time.perf_counter()
        D.record_decision(folder, sample.run, event_id, "wbc", "bench",
                          decisions=sample.decisions)
        record_only.append(1000 * (time.perf_counter() - t))
    batch = []
    for k in range(5):
        ids = open_[repeats + 100 * k:repeats + 100 * (k + 1)]
        t = time.perf_counter()
        sample.decide_many({"event_ids": ids, "call": "confirm",
                            "run_id": sample.run.token}, "bench")
        batch.append(1000 * (time.perf_counter() - t))
    # Over HTTP, through a server of its own on the same folder.
    server = make_server(folder.parent, port=0, reviewer="bench", warm_up=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    http_ms = []
    try:
        host, port = server.server_address[:2]
        ids = [int(e) for e in sample.events["event_id"].iloc[:repeats]]
        for k, event_id in enumerate(ids):
            body = json.dumps({"event_id": event_id, "call": "confirm" if k % 2 else "reject",
                               "run_id": sample.run.token})
            conn = http.client.HTTPConnection(host, port, timeout=120)
            t = time.perf_counter()
            conn.request("POST", "/api/bench/decision", body,
                          {"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            http_ms.append(1000 * (time.perf_counter() - t))
            conn.close()
            assert resp.status == 200, resp.status
    finally:
        server.shutdown()
        server.server_close()
    recorded = len(D.read_decisions(folder))
    return {"decisions_recorded": recorded, "events": int(len(sample.events)),
            "open_sample_s": round(opened, 2),
            "decision_whole": percentiles(whole), "decision_journal_and_match":
            percentiles(record_only), "grid_page_of_100": percentiles(batch),
            "decision_over_http": percentiles(http_ms)}


# ---------------------------------------------------------------------------------------------
# The browser, over the DevTools protocol.

class Chromium:
    """Headless Chromium with one page (websocket-client drives it)."""

    def __init__(self, url: str):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="ctcnet-bench-")
        self.proc = subprocess.Popen(
            [shutil.which("chromium") or shutil.which("chromium-browser"), "--headless",
             "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
             "--window-size=1400,900", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        endpoint = None
        while endpoint is None:
            line = self.proc.stderr.readline()
            if "DevTools listening on" in line:
                endpoint = line.split("listening on", 1)[1].strip()
            elif not line:
                raise SystemExit("Chromium did not start")
        port = int(endpoint.split(":")[2].split("/")[0])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/json/list")
        target = next(t for t in json.loads(conn.getresponse().read()) if t["type"] == "page")
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=120,
                                              suppress_origin=True)
        self.next_id = 0

    def send(self, method: str, **params) -> dict:
        """Send one DevTools command and wait for its answer's ``result``."""
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                return msg.get("result", {})

    def js(self, expression: str):
        """Evaluate ``expression`` in the page and return its value."""
        return self.send("Runtime.evaluate", expression=expression,
                         returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 120) -> None:
        """Poll until ``expression`` is truthy in the page; exit after ``timeout`` seconds."""
        deadline = time.time() + timeout
        while not self.js(expression):
            if time.time() > deadline:
                raise SystemExit(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def task_seconds(self) -> float:
        """The browser's main-thread busy time so far (DevTools ``TaskDuration``), in seconds."""
        metrics = self.send("Performance.getMetrics")["metrics"]
        return next(m["value"] for m in metrics if m["name"] == "TaskDuration")

    def close(self) -> None:
        """Close the page, stop the browser and remove its profile folder."""
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=20)
        shutil.rmtree(self.profile, ignore_errors=True)


# The list update after a saved decision, as the page's answer handler does it (decide()),
# with layout forced so its cost is counted; alternately a rejection and back.
LIST_UPDATE = """(function () {
  var times = [];
  for (var k = 0; k < %d; k++) {
    var c = shown[current];
    var t0 = performance.now();
    c.decision = k %% 2 ? null : "rejected";
    refreshCandidate(c);
    placeCursor([c.event_id]);
    renderSummary(state.counts);
    renderProgress();
    void document.body.offsetHeight;
    times.push(performance.now() - t0);
  }
  return JSON.stringify(times);
})()"""

FULL_LIST = """(function () {
  var times = [];
  for (var k = 0; k < 5; k++) {
    var t0 = performance.now();
    renderList();
    void document.body.offsetHeight;
    times.push(performance.now() - t0);
  }
  return JSON.stringify(times);
})()"""


def browser_benchmark(results: Path, work: Path, rows: int, repeats: int) -> dict:
    """Time a list update in the review page at ``rows`` rows in headless Chromium, or say it was
    skipped when there is none."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return {"skipped": "no chromium"}
    from ctcnet.review.runs import QC_FRACTION
    from ctcnet.review_server.server import make_server, server_url

    events = rows * 4
    # Candidates: the flagged events plus a QC_FRACTION sample of the rest.
    flagged = int((rows - QC_FRACTION * events) / (1 - QC_FRACTION))
    folder = work / "browser" / "bench"
    enlarge(results / "bench", folder, events, flagged=flagged)
    server = make_server(folder.parent, port=0, reviewer="bench")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = Chromium(server_url(server))
    try:
        browser.send("Performance.enable")
        browser.wait_for("document.body.getAttribute('data-ready') === 'yes'")
        shown_rows = browser.js("document.querySelectorAll('#list div').length")
        update = json.loads(browser.js(LIST_UPDATE % repeats))
        full = json.loads(browser.js(FULL_LIST))
        per_key = []
        for _ in range(repeats):
            saved = browser.js("document.body.getAttribute('data-saved')")
            before = browser.task_seconds()
            for kind in ("keyDown", "keyUp"):
                browser.send("Input.dispatchKeyEvent", type=kind, key="n", code="KeyN",
                             text="n" if kind == "keyDown" else "", windowsVirtualKeyCode=78)
            browser.wait_for(f"document.body.getAttribute('data-saved') !== '{saved}'")
            per_key.append(1000 * (browser.task_seconds() - before))
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
    return {"rows": shown_rows, "list_update": percentiles(update),
            "whole_list_redrawn": percentiles(full),
            "main_thread_per_key_decision": percentiles(per_key)}


def main(argv: list[str] | None = None) -> int:
    """Run both benchmarks and write ``review_benchmark.json`` into the work folder."""
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) /
                        "ctcnet-review-benchmark")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results = build_results(args.work)
    out = {"server": server_benchmark(results, args.work, args.decisions, args.repeats),
           "browser": browser_benchmark(results, args.work, args.rows, args.repeats)}
    (args.work / "review_benchmark.json").write_text(json.dumps(out, indent=2) + "\n")
    server, browser = out["server"], out["browser"]
    print(f"server, {server['decisions_recorded']:,} decisions recorded "
          f"({server['events']:,} events):")
    for key in ("decision_whole", "decision_journal_and_match", "decision_over_http",
                "grid_page_of_100"):
        s = server[key]
        print(f"  {key:28s} median {s['median_ms']:8.2f} ms   p95 {s['p95_ms']:8.2f} ms")
    if "skipped" in browser:
        print(f"browser: skipped ({browser['skipped']})")
    else:
        print(f"browser, {browser['rows']:,} rows:")
        for key in ("list_update", "main_thread_per_key_decision", "whole_list_redrawn"):
            s = browser[key]
            print(f"  {key:28s} median {s['median_ms']:8.2f} ms   p95 {s['p95_ms']:8.2f} ms")
    print(f"(targets: a decision under 50 ms on the server, a list update under 16 ms; "
          f"{args.work / 'review_benchmark.json'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
