"""``ctcnet review``'s web server: the interactive review page on 127.0.0.1.

The standard library's ``http.server`` is enough for one reviewer on loopback: no framework,
no login (the socket is bound to 127.0.0.1 only). Routes:

* ``GET /`` lists the samples of the results folder (one sample: straight to its page);
* ``GET /review/<sample>`` the page (``review_page.html``, keyboard-first);
* ``GET /api/<sample>/state`` the run's id, candidates, their tiles, decisions so far, the
  counts and the decisions of review.csv that attach to no event of this run (``unattached``);
* ``POST /api/<sample>/decision`` ``{"event_id", "call", "reviewer", "run_id"}``, saved at
  once to ``review.csv`` (``call``: ``confirm``, ``reject`` or a class name; a ``run_id``
  other than this run's is refused, as the page was loaded before predict ran again; see
  :mod:`ctcnet.report.decisions` for how decisions are keyed and how several servers on one
  folder share the file);
* ``GET /api/<sample>/tile/<event_id>.png`` a tile cut from the original frame, for the
  quality-control events the gallery has no picture of;
* ``GET /files/<sample>/<path>`` the sample's own files (gallery pages, index.html, tables).

File requests are confined to the sample's folder: the path is decoded once, ``..`` segments
are refused, and the resolved file (symlinks followed) must lie inside the folder. A POST must
be JSON and the Host header must be a loopback name, so a web page elsewhere in the reviewer's
browser cannot post decisions or read results through this server (DNS rebinding).
"""

from __future__ import annotations

import io
import json
import logging
import mimetypes
import threading
from functools import cached_property
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ctcnet.errors import CtcnetError, InputError
from ctcnet.report import decisions as D
from ctcnet.report.review import GAP, LABEL_HEIGHT

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("review_page.html")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}


class Sample:
    """One cartridge's predict outputs, read once. Decisions are read from review.csv on each
    request (another server may write it too) and written under its file lock."""

    def __init__(self, name: str, folder: Path):
        self.name, self.folder = name, folder
        self.events, self.summary = D.load_sample(folder)
        self.run = D.RunEvents.of_sample(folder, self.events, self.summary)
        matched = D.migrate_decisions(folder, self.run)
        self.reported = D.reported_classes(self.summary)
        self.candidates = D.select_candidates(self.events, self.reported,
                                              self.summary.sample_id or name,
                                              decided=matched.decisions["event_id"])
        self.by_id = self.events.set_index("event_id", drop=False)

    @cached_property
    def gallery_tiles(self) -> dict[int, dict]:
        """event_id -> where its tile sits on a gallery page (the page keeps the saliency)."""
        tiles = {}
        for info in (self.summary.gallery or {}).values():
            for page in info.get("pages", []):
                ids = page.get("event_ids")
                if not ids:  # a report written before pages listed their events
                    continue
                row = (page["height"] - LABEL_HEIGHT) / len(ids)
                for i, event_id in enumerate(ids):
                    tiles.setdefault(int(event_id), {
                        "src": f"/files/{self.name}/{page['path']}", "width": page["width"],
                        "page_height": page["height"], "header": LABEL_HEIGHT,
                        "top": round(LABEL_HEIGHT + i * row), "height": round(row - GAP)})
        return tiles

    def state(self, reviewer: str) -> dict:
        matched = D.load_decisions(self.folder, self.run)
        decided = matched.decisions
        calls = dict(zip(decided["event_id"].astype(int), decided["reviewer_call"]))
        rows = []
        columns = ["event_id", "frame_id", "x", "y", "class", "confidence", "review",
                   "edge_cut", "why"]
        for r in self.candidates[columns].to_dict("records"):
            event_id = int(r["event_id"])
            tile = self.gallery_tiles.get(event_id) or {
                "src": f"/api/{self.name}/tile/{event_id}.png"}
            rows.append({"event_id": event_id, "frame_id": str(r["frame_id"]),
                         "x": round(float(r["x"]), 1), "y": round(float(r["y"]), 1),
                         "call": str(r["class"]), "confidence": round(float(r["confidence"]), 4),
                         "flagged": bool(r["review"]), "edge_cut": bool(r["edge_cut"]),
                         "why": r["why"], "tile": tile, "decision": calls.get(event_id)})
        return {"sample": self.name, "run_id": self.run.run_id, "reviewer": reviewer,
                "classes": list(self.summary.model.classes),
                "reported": self.reported,
                "channels": [c["name"] for c in self.summary.panel["channels"]],
                "candidates": rows, "counts": self.counts(matched),
                "unattached": [{"event_id": int(u["event_id"]), "frame_id": u["frame_id"],
                                "reviewer_call": u["reviewer_call"], "time": u["time"],
                                "reason": u["reason"]}
                               for u in matched.unattached.to_dict("records")]}

    def decide(self, body: dict, default_reviewer: str) -> dict:
        try:
            event_id = int(body["event_id"])
            call = str(body["call"])
        except (KeyError, TypeError, ValueError):
            raise InputError('a decision is {"event_id": N, "call": "confirm" | "reject" | '
                             'CLASS}') from None
        if event_id not in self.by_id.index:
            raise InputError(f"no event {event_id} in sample {self.name}")
        model_call = str(self.by_id.at[event_id, "class"])
        if body.get("run_id") not in (None, self.run.run_id):
            # A page loaded before predict ran again names events by their old numbers.
            raise InputError("the results were written again since this page was loaded; "
                             "reload it")
        classes = list(self.summary.model.classes)
        if call == "confirm":
            call = model_call
        elif call == "reject":
            call = D.REJECTED
        elif call not in classes:
            raise InputError(f"call {call!r} is not confirm, reject or one of {classes}")
        reviewer = str(body.get("reviewer") or default_reviewer).strip()[:64] or default_reviewer
        matched = D.record_decision(self.folder, self.run, event_id, call, reviewer)
        return {"event_id": event_id, "decision": call, "counts": self.counts(matched)}

    def counts(self, matched: D.Matched) -> dict:
        # Per 7.5 mL of the blood actually read (skipped frames excluded), as predict reports.
        volume = self.summary.blood_volume_processed_ml or self.summary.blood_volume_ml
        return D.review_counts(self.events, matched.decisions, volume,
                               self.summary.model.classes, len(matched.unattached))


class ReviewApp:
    """The samples of one results folder and what the request handler asks of them."""

    def __init__(self, results: str | Path, reviewer: str | None = None,
                 saliency: bool = True, scans: str | Path | None = None):
        self.results = Path(results)
        self.samples = {name: Sample(name, folder)
                        for name, folder in D.find_samples(self.results).items()}
        self.reviewer = reviewer or D.default_reviewer()
        self.saliency = saliency
        self.scans = scans
        self._explain = {}
        self._tile_lock = threading.Lock()  # one frame read and model at a time on a small CPU

    def sample(self, name: str) -> Sample:
        sample = self.samples.get(name)
        if sample is None:
            raise LookupError(name)
        return sample

    def file_path(self, name: str, relative: str) -> Path | None:
        """The file ``relative`` (URL-decoded once) inside sample ``name``'s folder, or None
        when it would lie outside it (``..``, absolute, a symlink out) or is hidden."""
        sample = self.samples.get(name)
        if sample is None:
            return None
        parts = unquote(relative).split("/")
        if not parts or any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\x00" in p
                            for p in parts):
            return None
        root = sample.folder.resolve()
        target = root.joinpath(*parts).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
        return target

    def _explainer(self, sample: Sample):
        """The run's model's saliency function, loaded once (None without torch or model)."""
        key = sample.summary.model.path
        if key not in self._explain:
            explain = None
            if self.saliency:
                try:
                    from ctcnet.inference.backends import load_backend

                    explain = load_backend(key, device="cpu").explainer()
                except (CtcnetError, OSError, ImportError, RuntimeError) as err:
                    log.warning("no saliency on quality-control tiles: %s", err)
            self._explain[key] = explain
        return self._explain[key]

    def tile_png(self, name: str, event_id: int) -> bytes:
        """One event's tile (channels, overlay, saliency when the model loads) as PNG bytes."""
        from ctcnet.io.panel import Panel
        from ctcnet.report.event_crops import cut_event_crops, open_scanned_cartridge
        from ctcnet.report.review import montage_page, render_tiles

        sample = self.sample(name)
        if event_id not in sample.by_id.index:
            raise LookupError(event_id)
        event = sample.by_id.loc[[event_id]]
        model = sample.summary.model
        with self._tile_lock:
            cartridge = open_scanned_cartridge(sample.summary, self.scans)
            crops = cut_event_crops(cartridge, event, model.crop_size, model.pixel_size_um)
            explain = self._explainer(sample)
            saliency = None
            if explain is not None:
                saliency = explain(crops, [model.classes.index(event["class"].iloc[0])])
        panel = Panel.from_dict(sample.summary.panel)
        s = crops.shape[-1]
        scale = max(1, int(round(96 / s)))
        e = event.iloc[0]
        label = (f"#{event_id} {e['frame_id']} x={e['x']:.0f} y={e['y']:.0f} {e['class']} "
                 f"p={e['confidence']:.2f} (quality-control sample)")
        image = montage_page(render_tiles(crops, panel, scale, saliency), [label],
                             panel.names + ["overlay"], s * scale)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

    def index_html(self) -> str:
        import html

        links = "".join(f'<li><a href="/review/{html.escape(n)}">{html.escape(n)}</a></li>'
                        for n in self.samples)
        return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>ctcnet "
                f"review</title></head><body><h1>Samples to review</h1><ul>{links}</ul>"
                "</body></html>")


class ReviewHandler(BaseHTTPRequestHandler):
    app: ReviewApp  # set on the subclass that make_server builds
    server_version = "ctcnet-review"

    def log_message(self, fmt, *args):  # the library logs; no lines on stderr per request
        log.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data) -> None:
        self._send(status, json.dumps(data).encode("utf-8"), "application/json")

    def _error(self, status: HTTPStatus, message: str | None = None) -> None:
        self._send(status, (message or status.phrase).encode("utf-8"),
                   "text/plain; charset=utf-8")

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in LOOPBACK_HOSTS or host == "::1"

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "only loopback host names are served")
        path = urlsplit(self.path).path
        parts = path.split("/", 3)  # '', head, sample, rest (still URL-encoded)
        try:
            if path == "/":
                if len(self.app.samples) == 1:
                    self.send_response(HTTPStatus.FOUND)
                    self.send_header("Location", f"/review/{next(iter(self.app.samples))}")
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                return self._send(200, self.app.index_html().encode(), "text/html; charset=utf-8")
            if parts[1] == "review" and len(parts) == 3:
                self.app.sample(unquote(parts[2]))
                return self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
            if parts[1] == "api" and len(parts) == 4 and parts[3] == "state":
                return self._json(200, self.app.sample(unquote(parts[2])).state(
                    self.app.reviewer))
            if parts[1] == "api" and len(parts) == 4 and parts[3].startswith("tile/") \
                    and parts[3].endswith(".png"):
                event_id = int(parts[3][len("tile/"):-len(".png")])
                return self._send(200, self.app.tile_png(unquote(parts[2]), event_id),
                                  "image/png")
            if parts[1] == "files" and len(parts) == 4:
                target = self.app.file_path(unquote(parts[2]), parts[3])
                if target is None:
                    return self._error(HTTPStatus.NOT_FOUND)
                kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
                return self._send(200, target.read_bytes(), kind)
        except (LookupError, ValueError):
            return self._error(HTTPStatus.NOT_FOUND)
        except CtcnetError as err:
            return self._error(HTTPStatus.CONFLICT, str(err))
        return self._error(HTTPStatus.NOT_FOUND)

    def do_POST(self):
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "only loopback host names are served")
        parts = urlsplit(self.path).path.split("/", 3)
        if len(parts) != 4 or parts[1] != "api" or parts[3] != "decision":
            return self._error(HTTPStatus.NOT_FOUND)
        # JSON only: a form on another site cannot send it without a CORS preflight we refuse.
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= 65536:
                raise ValueError("empty or oversized body")
            body = json.loads(self.rfile.read(length))
            sample = self.app.sample(unquote(parts[2]))
        except LookupError:
            return self._error(HTTPStatus.NOT_FOUND)
        except ValueError as err:
            return self._error(HTTPStatus.BAD_REQUEST, str(err))
        try:
            result = sample.decide(body if isinstance(body, dict) else {}, self.app.reviewer)
        except InputError as err:
            return self._error(HTTPStatus.BAD_REQUEST, str(err))
        except OSError as err:  # e.g. a read-only results folder: the page says "not saved"
            log.error("cannot save a decision in %s: %s", sample.folder, err)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot write review.csv: "
                               f"{err.strerror or err}")
        return self._json(200, result)


def make_server(results: str | Path, port: int = 0, reviewer: str | None = None,
                saliency: bool = True, scans: str | Path | None = None) -> ThreadingHTTPServer:
    """A review server on 127.0.0.1:``port`` (0: a free port); call ``serve_forever``."""
    app = ReviewApp(results, reviewer, saliency, scans)
    handler = type("BoundReviewHandler", (ReviewHandler,), {"app": app})
    try:
        server = ThreadingHTTPServer(("127.0.0.1", int(port)), handler)
    except OSError as err:
        raise CtcnetError(f"cannot listen on 127.0.0.1:{port}: {err.strerror or err} "
                          "(--port 0 picks a free port)") from None
    server.daemon_threads = True
    server.app = app
    return server


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"

