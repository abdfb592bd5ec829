"""``ctcnet review``'s web server: the interactive review page on 127.0.0.1.

The standard library's ``http.server`` is enough for one reviewer on loopback: no framework,
no login (the socket is bound to 127.0.0.1 only). Routes:

* ``GET /`` lists the samples of the results folder (one sample: straight to its page);
* ``GET /review/<sample>`` the page (``review_page.html``, keyboard-first);
* ``GET /api/<sample>/state`` the run's id, candidates (each with the reasons it is on the
  list: :mod:`ctcnet.report.reasons`, and its markers' mean in noise units), their tiles,
  decisions so far, the counts (the model's tally, ``ctcnet.inference.counts.Counts``, beside
  the reviewed ones), the decisions of review.csv that attach to no event of this run
  (``unattached``) and review.csv's ``stamp``;
* ``GET /api/<sample>/state?since=STAMP`` what a page that has review.csv as of ``STAMP``
  needs to catch up with decisions made elsewhere (another tab, another server): nothing
  (``"unchanged": true``) while the file is as it was, else every decision and the counts;
* ``POST /api/<sample>/decision`` ``{"event_id", "call", "reviewer", "run_id"}``, saved at
  once to ``review.csv`` (``call``: ``confirm``, ``reject``, a class name, or ``undecided``
  to take a decision back; ``event_id`` a JSON integer); see :mod:`ctcnet.report.decisions`
  for how decisions are keyed and how several servers on one folder share the file. Each
  saved decision rewrites summary.json's ``reviewed`` counts and index.html; the answer
  carries review.csv's stamps before and after it (``previous``, ``stamp``);
* ``GET /api/<sample>/tile/<event_id>.png`` a tile cut from the original frame, for the
  events the gallery has no picture of, captioned with why the event is on the list, each
  channel on the sample's display scale with its intensities (:mod:`ctcnet.report.display`);
  ``?saliency=1`` adds the saliency row (the model is loaded, and torch imported, only then);
* ``GET /api/<sample>/context/<event_id>.png`` the frame round the event, ``CONTEXT`` times
  wider than its crop, the crop outlined;
* ``GET /files/<sample>/<path>`` the sample's own files (gallery pages, index.html, tables).

Tiles are cut lazily, one at a time, and kept (:mod:`ctcnet.report.tiles`); a tile request
whose page went away while it waited is dropped, and a client that hangs up is no error. At
start a background thread reads each sample's display levels and cuts its first tiles.

Predict may run again (``--overwrite``) while a server is up. Every request checks the events
table on disk: when another run is there, the sample is read again; while predict is still
writing, requests get 503. A request that names the run it was made for (``run_id`` in a
decision, ``?run=`` on tiles and gallery pages: the page sends both) and names another one
gets 409, ``"stale": true``, so a page loaded before the re-run never records a decision on,
or shows the tile of, another cell. Errors are JSON, ``{"error": ...}``; a malformed request
gets 400.

File requests are confined to the sample's folder: the path is decoded once, ``..`` segments
are refused, and the resolved file (symlinks followed) must lie inside the folder. A POST must
be JSON and the Host header must be a loopback name, so a web page elsewhere in the reviewer's
browser cannot post decisions or read results through this server (DNS rebinding).
"""

from __future__ import annotations

import io
import json
import logging
import math
import mimetypes
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import cached_property
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import pandas as pd

from ctcnet.errors import CtcnetError, InputError
from ctcnet.inference.backends import load_backend
from ctcnet.inference.counts import ReviewedCounts, count_events, count_reviewed
from ctcnet.inference.summary import RunSummary
from ctcnet.io.atomic import exclusive_folder
from ctcnet.io.panel import Panel
from ctcnet.report import decisions as D
from ctcnet.report import display
from ctcnet.report.reasons import GUARD_PREFIX, described, event_reasons, reason_filter
from ctcnet.report.review import (
    GAP,
    LABEL_HEIGHT,
    montage_page,
    render_tiles,
    tile_labels,
    write_summary_and_page,
)
from ctcnet.report.tiles import ClientGone, FrameSource, TileCutter, client_connected

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("review_page.html")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost"}
# The calls a decision request may make besides a class name; "undecided" takes a decision back.
CONFIRM, REJECT, UNDECIDED = "confirm", "reject", "undecided"
DECISION_FORM = ('a decision is {"event_id": N, "call": "confirm" | "reject" | "undecided" | '
                 'CLASS, "reviewer": NAME, "run_id": RUN}')
MAX_EVENT_ID = 2 ** 63 - 1  # event ids are int64
CONTEXT = 3       # a context tile is this many times wider than the event's crop
TILE_PX = 96      # crops are zoomed to about this many pixels a side (80 px ones shown 1:1)
AHEAD = 3         # tiles cut ahead: the first of a sample at start, the next after each one
LEVEL_FRAMES = 4  # display levels read from the frames: the events of this many frames...
LEVEL_EVENTS = 240  # ... at most this many of them


class ResultsChanged(CtcnetError):
    """A request made for a run that the results folder no longer holds (predict ran again
    since the page was loaded): its event ids and tiles would name other cells."""


class ResultsBeingWritten(CtcnetError):
    """The results folder is being written (predict is running), or a run stopped before its
    summary: nothing in it can be trusted to belong together."""


def events_stamp(folder: Path) -> tuple[int, int, int] | None:
    """What identifies the events table on disk: predict replaces it whole (a new file) on
    every run, so a changed stamp means another run."""
    try:
        st = (folder / "events.parquet").stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def being_written(folder: Path) -> bool:
    """Predict writes events.parquet first and summary.json last: an events table newer than
    the summary (or either missing) is a run not finished."""
    try:
        return (folder / "events.parquet").stat().st_mtime_ns > \
            (folder / "summary.json").stat().st_mtime_ns
    except OSError:
        return True


def parse_decision(body) -> tuple[int, str, str | None, str | None]:
    """(event id, call, reviewer, run id) of a decision request; InputError when malformed.

    An event id is a JSON integer: ``true`` (a bool is an int in Python) and ``2.9`` (a
    float) name no event, and are refused rather than rounded to one."""
    if not isinstance(body, dict):
        raise InputError(DECISION_FORM)
    event_id, call = body.get("event_id"), body.get("call")
    if type(event_id) is not int or not 0 <= event_id <= MAX_EVENT_ID:
        raise InputError(f"event_id must be a whole number of 0 or more, not "
                         f"{json.dumps(event_id)[:40]}; {DECISION_FORM}")
    if not isinstance(call, str) or not call:
        raise InputError(f"call must be a string; {DECISION_FORM}")
    reviewer, run_id = body.get("reviewer"), body.get("run_id")
    if reviewer is not None and not isinstance(reviewer, str):
        raise InputError("reviewer must be a string")
    if run_id is not None and not isinstance(run_id, str):
        raise InputError("run_id must be a string")
    return event_id, call, reviewer, run_id


def _no_json_constants(name: str):
    raise ValueError(f"{name} is not a JSON value")


def parse_json(raw: bytes):
    """A request body as JSON; NaN and Infinity (which Python's parser takes) are refused."""
    return json.loads(raw, parse_constant=_no_json_constants)


class Sample:
    """One cartridge's predict outputs, read once per run (``stamp``: the events table it was
    read from; :meth:`ReviewApp.sample` reads it again when predict has written another).
    Decisions are read from review.csv on each request (another server may write it too: only
    the lines appended since are read, :class:`~ctcnet.report.decisions.DecisionLog`) and
    written under its file lock; each saved decision brings summary.json's ``reviewed`` counts
    and index.html up to date. The run's frames (``frames``) and display levels are read when
    a tile first needs them."""

    def __init__(self, name: str, folder: Path, scans: str | Path | None = None):
        self.name, self.folder = name, folder
        self.stamp = events_stamp(folder)  # before reading: a run written meanwhile is noticed
        self.events, self.summary = D.load_sample(folder)
        self.run = D.RunEvents.of_sample(folder, self.events, self.summary)
        matched = D.migrate_decisions(folder, self.run)
        self.decisions = D.DecisionLog(folder)
        self.reported = D.reported_classes(self.summary)
        self.classes = list(self.summary.model.classes)
        self.threshold = float(self.summary.model.review_threshold)
        self.panel = Panel.from_dict(self.summary.panel)
        # The counts of the events this server shows, whatever summary.json says.
        self.tally = count_events(self.events, self.classes, self.reported,
                                  self.summary.volume_read_ml)
        candidates = D.select_candidates(self.events, self.reported,
                                         self.summary.sample_id or name,
                                         decided=matched.decisions["event_id"])
        self.candidates = candidates.assign(
            reasons=event_reasons(candidates, self.reported, self.threshold))
        self.by_id = self.events.set_index("event_id", drop=False)
        self.frames = FrameSource(self.summary, scans)
        self._levels: list = []  # [levels or None] once found
        self._levels_lock = threading.Lock()
        self.write_counts()

    def is_current(self) -> bool:
        return events_stamp(self.folder) == self.stamp

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
                    # The run in the address: a page of another run is refused, not shown.
                    tiles.setdefault(int(event_id), {
                        "src": f"/files/{self.name}/{page['path']}?run={self.run.run_id}",
                        "width": page["width"], "page_height": page["height"],
                        "header": LABEL_HEIGHT, "top": round(LABEL_HEIGHT + i * row),
                        "height": round(row - GAP)})
        return tiles

    def tile_src(self, event_id: int, kind: str = "tile") -> str:
        return f"/api/{self.name}/{kind}/{event_id}.png?run={self.run.run_id}"

    @cached_property
    def cut_order(self) -> list[int]:
        """The candidates the server cuts tiles of (no gallery picture), in list order."""
        return [int(e) for e in self.candidates["event_id"] if int(e) not in self.gallery_tiles]

    @cached_property
    def cut_position(self) -> dict[int, int]:
        return {e: k for k, e in enumerate(self.cut_order)}

    def display_levels(self) -> display.DisplayLevels | None:
        """The sample's display scale (:mod:`ctcnet.report.display`): the run's kept levels,
        else read from crops of the frames of the first candidates (and kept); None when the
        frames cannot be read (tiles are then each stretched to themselves)."""
        with self._levels_lock:
            if not self._levels:
                self._levels.append(self._find_levels())
            return self._levels[0]

    def _find_levels(self) -> display.DisplayLevels | None:
        names = self.panel.names
        levels = display.read_levels(self.folder, self.run.run_id, names)
        if levels is not None:
            return levels
        model = self.summary.model
        try:
            crops = self.frames.cut(self._level_events(), model.crop_size, model.pixel_size_um)
        except (CtcnetError, OSError) as err:
            log.warning("%s: no display scale for the sample (%s): each tile is stretched "
                        "to itself", self.folder, err)
            return None
        levels = display.levels_from_crops(crops, names, self.run.run_id)
        if levels is not None:
            self._keep_levels(levels)
        return levels

    def _level_events(self) -> pd.DataFrame:
        """The events the levels are read from: every event (not only candidates: the
        sample's cells) of the frames of the first candidates, which the reviewer sees first
        (their frames are then read already), evenly thinned to ``LEVEL_EVENTS``."""
        frames = list(dict.fromkeys(self.candidates["frame"]))[:LEVEL_FRAMES]
        chosen = self.events[self.events["frame"].isin(frames)]
        if not len(chosen):
            chosen = self.events
        step = max(1, len(chosen) // LEVEL_EVENTS)
        return chosen.iloc[::step].head(LEVEL_EVENTS)

    def _keep_levels(self, levels: display.DisplayLevels) -> None:
        """Kept in the sample's folder for this run, unless predict holds the folder or
        another run is there (a folder that cannot be written keeps them in memory)."""
        try:
            with exclusive_folder(self.folder, "review"):
                if self.is_current():
                    display.write_levels(self.folder, levels)
        except (InputError, OSError) as err:
            log.info("%s: display levels not kept: %s", self.folder, err)

    def candidate_markers(self) -> tuple[list, list]:
        """Per candidate: each channel's mean in noise units (None where unknown) and the
        guard's measurements the events table holds."""
        levels = self.display_levels()
        if levels is None:
            means = [None] * len(self.candidates)
        else:
            values = np.round(display.mean_snr(self.candidates, levels), 1)
            means = [[float(v) if math.isfinite(v) else None for v in row] for row in values]
        return means, display.guard_measures(self.candidates)

    @cached_property
    def candidate_rows(self) -> list[dict]:
        """What the page shows of each candidate but its decision: the same for the whole
        run, so made once (thousands of rows take a while)."""
        means, measures = self.candidate_markers()
        rows, said = [], {}
        columns = ["event_id", "frame_id", "x", "y", "class", "confidence", "review",
                   "edge_cut", "why", "reasons"]
        values = zip(*(self.candidates[c].tolist() for c in columns))
        for k, (event_id, frame_id, x, y, call, p, review, edge_cut, why, codes) in \
                enumerate(values):
            event_id, p = int(event_id), float(p)
            # Unrounded: the page, the reasons and the tile captions round it alike. The words
            # depend on the codes and p as printed: said once for the candidates that share them.
            key = (tuple(codes), f"{p:.2f}")
            if key not in said:
                said[key] = described(codes, p, self.threshold)
            tile = self.gallery_tiles.get(event_id) or {"src": self.tile_src(event_id)}
            rows.append({"event_id": event_id, "frame_id": str(frame_id),
                         "x": round(float(x), 1), "y": round(float(y), 1), "call": str(call),
                         # JSON has no NaN: an event without a call has no confidence.
                         "confidence": p if math.isfinite(p) else None,
                         "flagged": bool(review), "edge_cut": bool(edge_cut),
                         "held": any(c.startswith(GUARD_PREFIX) for c in codes),
                         "why": why, "reasons": said[key],
                         "tile": tile, "context": self.tile_src(event_id, "context"),
                         "markers": means[k]})
            if measures[k]:  # the guard's measurements, where the events table has them
                rows[-1]["measures"] = measures[k]
        return rows

    def state(self, reviewer: str, saliency: bool = False) -> dict:
        """Everything the page shows (see the module's notes); ``saliency``: whether tiles
        cut here can have a saliency row."""
        matched = self.decisions.matched(self.run)
        decided = matched.decisions
        calls = dict(zip(decided["event_id"].astype(int), decided["reviewer_call"]))
        rows = [{**r, "decision": calls.get(r["event_id"])} for r in self.candidate_rows]
        return {"sample": self.name, "run_id": self.run.run_id, "reviewer": reviewer,
                "classes": self.classes, "reported": self.reported,
                "review_threshold": self.threshold,
                "channels": [c["name"] for c in self.summary.panel["channels"]],
                "reasons": self.reason_options, "candidates": rows,
                "counts": self.counts(matched), "stamp": self.decisions.read_stamp,
                "saliency": bool(saliency), "unattached": self.unattached(matched)}

    @cached_property
    def reason_options(self) -> list[dict]:
        return reason_filter(self.candidates["reasons"].tolist())

    def unattached(self, matched: D.Matched) -> list[dict]:
        return [{"event_id": int(u["event_id"]), "frame_id": u["frame_id"],
                 "reviewer_call": u["reviewer_call"], "time": u["time"], "reason": u["reason"]}
                for u in matched.unattached.to_dict("records")]

    def changes(self, since: str) -> dict:
        """What a page holding review.csv as of stamp ``since`` lacks: nothing while the file
        is unchanged (a stat, no read), else every decision of the run and the counts."""
        if self.decisions.stamp() == since:
            return {"run_id": self.run.run_id, "stamp": since, "unchanged": True}
        matched = self.decisions.matched(self.run)
        decided = matched.decisions
        return {"run_id": self.run.run_id, "stamp": self.decisions.read_stamp,
                "decisions": [[int(e), str(c)] for e, c in zip(decided["event_id"],
                                                               decided["reviewer_call"])],
                "counts": self.counts(matched), "unattached": self.unattached(matched)}

    def check_run(self, run_id: str | None) -> None:
        """Refuse a request made for another run than the one this sample holds now."""
        if run_id is not None and run_id != self.run.run_id:
            raise ResultsChanged(f"the results of {self.name} were written again since this "
                                 f"page was loaded (run {run_id}, now {self.run.run_id}): "
                                 "reload the page")

    def decide(self, body, default_reviewer: str) -> dict:
        event_id, call, reviewer, run_id = parse_decision(body)
        # A page loaded before predict ran again names events by their old numbers.
        self.check_run(run_id)
        if event_id not in self.by_id.index:
            raise InputError(f"no event {event_id} in sample {self.name}")
        reviewer = (reviewer or "").strip()[:64] or default_reviewer
        before = self.decisions.stamp()
        self.decisions.forget_append()
        if call == UNDECIDED:
            D.clear_decision(self.folder, self.run, event_id, reviewer,
                             decisions=self.decisions)
            decision = None
        else:
            decision = self.reviewer_call(event_id, call)
            D.record_decision(self.folder, self.run, event_id, decision, reviewer,
                              decisions=self.decisions)
        previous, stamp = self.decisions.last_append or (before, before)
        matched, reviewed = self.write_counts()
        return {"event_id": event_id, "decision": decision,
                "counts": self.counts(matched, reviewed), "previous": previous, "stamp": stamp}

    def reviewer_call(self, event_id: int, call: str) -> str:
        """What review.csv records for ``call`` on an event: its class on a confirmation."""
        if call == CONFIRM:
            return str(self.by_id.at[event_id, "class"])
        if call == REJECT:
            return D.REJECTED
        if call not in self.classes:
            raise InputError(f"call {call!r} is not {CONFIRM}, {REJECT}, {UNDECIDED} or one "
                             f"of {self.classes}")
        return call

    def reviewed(self, matched: D.Matched) -> ReviewedCounts:
        # Per 7.5 mL of the blood actually read (skipped frames excluded), as the tally.
        return count_reviewed(self.events, matched.decisions, self.tally,
                              len(matched.unattached))

    def counts(self, matched: D.Matched, reviewed: ReviewedCounts | None = None) -> dict:
        """The model's tally and the reviewed counts (``reviewed``, when counted already), as
        the page shows them."""
        reviewed = reviewed if reviewed is not None else self.reviewed(matched)
        return {"model": self.tally.to_dict(), "reviewed": reviewed.to_dict()}

    def write_counts(self) -> tuple[D.Matched, ReviewedCounts]:
        """summary.json (the tally of these events, and the reviewed counts once review.csv
        has any decision) and index.html, brought up to date. Under the decisions lock, so
        the counts are of the file as it is; never while predict holds the folder (it is
        writing another run) nor once another run is there. A folder that cannot be written
        keeps its files: the page shows the counts all the same. Returns the match counted
        and its counts."""
        counted = None
        try:
            with D.decisions_lock(self.folder):
                matched = self.decisions.matched(self.run)
                counted = matched, self.reviewed(matched)
                decided = len(matched.decisions) or len(matched.unattached)
                with exclusive_folder(self.folder, "review"):
                    if not self.is_current():
                        return counted  # another run: the next request reads it
                    summary = RunSummary.read(self.folder)
                    updated = replace(summary, **RunSummary.count_fields(self.tally),
                                      reviewed=counted[1] if decided else None)
                    if updated != summary:
                        write_summary_and_page(self.folder, updated)
        except InputError as err:  # predict holds the folder
            log.info("%s: summary.json not updated now: %s", self.folder, err)
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("%s: cannot update summary.json and index.html with the review "
                        "counts: %s", self.folder, err)
        if counted is None:
            matched = self.decisions.matched(self.run)
            counted = matched, self.reviewed(matched)
        return counted

    def tile_label(self, event_id: int) -> str:
        """The caption of a tile cut by the server: the event and why it is on the list."""
        rows = self.candidates[self.candidates["event_id"] == event_id]
        if not len(rows):  # any event may be asked for: its own reasons, no candidate's
            rows = self.by_id.loc[[event_id]]
            rows = rows.assign(reasons=event_reasons(rows, self.reported, self.threshold))
        return tile_labels(rows, rows["reasons"].tolist(), self.threshold)[0]

    def render_tile(self, event_id: int, context: bool = False, explain=None) -> bytes:
        """One event's tile as PNG bytes: every channel on the sample's display scale with
        its intensities above it, the overlay, the centre marked on each; ``explain``: the
        model's saliency function (a second row); ``context``: the frame round the event,
        ``CONTEXT`` times wider, its crop outlined."""
        event = self.by_id.loc[[event_id]]
        model = self.summary.model
        s = model.crop_size
        size = s * CONTEXT if context else s
        crops = self.frames.cut(event, size, model.pixel_size_um)
        levels = self.display_levels()
        saliency, call = None, str(event["class"].iloc[0])
        if explain is not None and not context and call in model.classes:  # failed: no call
            saliency = explain(crops, [model.classes.index(call)])
        scale = 1 if context else max(1, int(round(TILE_PX / s)))
        tiles = render_tiles(crops, self.panel, scale, saliency, levels,
                             box=s if context else None)
        measures = None
        if levels is not None:
            own = crops[:, :, (size - s) // 2:(size + s) // 2, (size - s) // 2:(size + s) // 2]
            measures = display.measure_texts(display.mean_snr(event, levels),
                                             display.peak_snr(own, levels, model.pixel_size_um))
        label = self.tile_label(event_id) + (f" | context {CONTEXT}x" if context else "")
        image = montage_page(tiles, [label], self.panel.names + ["overlay"], size * scale,
                             measures)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()


class ReviewApp:
    """The samples of one results folder and what the request handler asks of them."""

    def __init__(self, results: str | Path, reviewer: str | None = None,
                 saliency: bool = True, scans: str | Path | None = None):
        self.results = Path(results)
        self.scans = scans
        self.samples = {name: Sample(name, folder, scans)
                        for name, folder in D.find_samples(self.results).items()}
        self.reviewer = reviewer or D.default_reviewer()
        self.saliency = saliency
        self.tiles = TileCutter()
        self._explain = {}
        self._explain_lock = threading.Lock()
        self._load_lock = threading.Lock()

    def sample(self, name: str) -> Sample:
        """Sample ``name`` as its folder holds it now: read again when predict has written
        another run since (ResultsBeingWritten while it is still writing)."""
        sample = self.samples.get(name)
        if sample is None:
            raise LookupError(name)
        if sample.is_current():
            return sample
        with self._load_lock:
            sample = self.samples[name]
            if sample.is_current():  # another request read it meanwhile
                return sample
            if being_written(sample.folder):
                raise ResultsBeingWritten(f"the results of {name} are being written (ctcnet "
                                          "predict running?); reload the page when it is done")
            try:
                fresh = Sample(name, sample.folder, self.scans)
            except InputError as err:
                raise ResultsBeingWritten(f"cannot read the results of {name} now: "
                                          f"{err}") from None
            log.info("%s: another run was written (run %s, was %s); read again",
                     sample.folder, fresh.run.run_id, sample.run.run_id)
            self.samples[name] = fresh
            return fresh

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
        """The run's model's saliency function, loaded when a tile first asks for saliency
        (loading it imports torch: seconds, and hundreds of MB); None without torch or
        model, or with saliency turned off."""
        key = sample.summary.model.path
        with self._explain_lock:
            if key not in self._explain:
                explain = None
                if self.saliency:
                    try:
                        explain = load_backend(key, device="cpu").explainer()
                    except (CtcnetError, OSError, ImportError, RuntimeError) as err:
                        log.warning("no saliency on quality-control tiles: %s", err)
                self._explain[key] = explain
            return self._explain[key]

    def _tile_key(self, sample: Sample, event_id: int, context: bool, saliency: bool):
        return (sample.name, sample.run.run_id, int(event_id),
                "context" if context else "tile", bool(saliency and self.saliency and
                                                       not context))

    def _cutter(self, sample: Sample, event_id: int, context: bool,
                saliency: bool) -> Callable[[], bytes]:
        def cut() -> bytes:
            explain = self._explainer(sample) if saliency and not context else None
            return sample.render_tile(event_id, context, explain)
        return cut

    def tile_png(self, name: str, event_id: int, run_id: str | None = None,
                 saliency: bool = False, context: bool = False,
                 wanted: Callable[[], bool] = lambda: True) -> bytes:
        """One event's tile as PNG bytes (:meth:`Sample.render_tile`), cut once and kept;
        ``run_id``: the run the page shows; ``saliency``: with the saliency row; ``context``:
        the frame round it; ``wanted()``: whether the page still waits for it (ClientGone
        when not, once the tile's turn comes). The next tiles of the list are cut ahead."""
        sample = self.sample(name)
        sample.check_run(run_id)
        if event_id not in sample.by_id.index:
            raise LookupError(event_id)
        data = self.tiles.get(self._tile_key(sample, event_id, context, saliency),
                              self._cutter(sample, event_id, context, saliency), wanted)
        if not context:
            self.cut_ahead(sample, event_id, saliency)
        return data

    def cut_ahead(self, sample: Sample, after: int | None = None,
                  saliency: bool = False) -> None:
        """Have the next ``AHEAD`` tiles of ``sample``'s list after event ``after`` (from the
        start: None) cut while the server is idle."""
        self.tiles.prefetch(self._ahead(sample, after, saliency))

    def _ahead(self, sample: Sample, after: int | None, saliency: bool) -> list:
        order = sample.cut_order
        start = 0
        if after is not None:
            start = sample.cut_position.get(int(after), -1) + 1
            if start == 0:
                return []
        return [(self._tile_key(sample, e, False, saliency),
                 self._cutter(sample, e, False, saliency)) for e in order[start:start + AHEAD]]

    def warm_up(self) -> None:
        """In the background, at start: each sample's display levels (read from its frames
        for a run that did not keep them) and its first tiles, so the first page is quick."""
        jobs = []
        for sample in self.samples.values():
            jobs.append((("levels", sample.name, sample.run.run_id), _levels_job(sample)))
            jobs += self._ahead(sample, None, False)
        self.tiles.prefetch(jobs)

    def index_html(self) -> str:
        import html

        links = "".join(f'<li><a href="/review/{html.escape(n)}">{html.escape(n)}</a></li>'
                        for n in self.samples)
        return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                "<title>ctcnet review</title></head><body><h1>Samples to review</h1>"
                f"<ul>{links}</ul></body></html>")


def _levels_job(sample: Sample) -> Callable[[], bytes]:
    """A job for the tile cutter that reads a sample's display levels and makes its rows for
    the page (its result, kept under a key no page asks for, is empty)."""
    def job() -> bytes:
        sample.display_levels()
        sample.candidate_rows  # noqa: B018 (made and kept for the first state)
        return b""
    return job


def query_value(query: str, name: str) -> str | None:
    """Parameter ``name`` of a request's query (its first value), or None."""
    values = parse_qs(query).get(name)
    return values[0] if values else None


def run_of(query: str) -> str | None:
    """The ``run`` parameter of a request's query: the run the page was loaded for."""
    return query_value(query, "run")


def tile_route(rest: str) -> tuple[str, int] | None:
    """("tile" or "context", event id) of an address's ``<kind>/<id>.png``, else None."""
    kind, _, name = rest.partition("/")
    if kind not in ("tile", "context") or not name.endswith(".png"):
        return None
    try:
        return kind, int(name[:-len(".png")])
    except ValueError:
        raise LookupError(rest) from None


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

    def _error(self, status: HTTPStatus, message: str | None = None, **extra) -> None:
        """Every error is JSON, ``{"error": message}`` (and ``"stale": true`` when the page
        shows a run the folder no longer holds), so the page can say what went wrong."""
        self._json(status, {"error": message or status.phrase, **extra})

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in LOOPBACK_HOSTS or host == "::1"

    def handle(self):
        # A client that hangs up (a page moving on, a tab closed) is no error of the server.
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError) as err:
            log.debug("%s went away: %s", self.address_string(), err)

    def finish(self):
        try:
            super().finish()
        except (BrokenPipeError, ConnectionResetError) as err:
            log.debug("%s went away: %s", self.address_string(), err)

    def _answer(self, route, input_status: HTTPStatus) -> None:
        """Run ``route`` and answer what it raises: stale runs 409 / 503, unknown names 404,
        an InputError ``input_status`` (a malformed request's 400; on a GET, whose address is
        all it sends, a problem of the results, such as a scan that moved: 409), anything
        unforeseen 500 (logged), so no request is left without an answer; a client that went
        away gets none."""
        try:
            return route()
        except (ClientGone, BrokenPipeError, ConnectionResetError) as err:
            log.debug("%s %s: the client went away (%s)", self.command, self.path,
                      type(err).__name__)
            self.close_connection = True
            return None
        except ResultsChanged as err:
            return self._error(HTTPStatus.CONFLICT, str(err), stale=True)
        except ResultsBeingWritten as err:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, str(err), stale=True)
        except LookupError:
            return self._error(HTTPStatus.NOT_FOUND)
        except InputError as err:
            return self._error(input_status, str(err))
        except CtcnetError as err:
            return self._error(HTTPStatus.CONFLICT, str(err))
        except Exception as err:  # a bug: said to the page, logged with its traceback
            log.exception("review server: %s %s failed", self.command, self.path)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"server error: {err}")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "only loopback host names are served")
        self._answer(self._get, HTTPStatus.CONFLICT)

    def _get(self):
        url = urlsplit(self.path)
        path, run_id = url.path, run_of(url.query)
        parts = path.split("/", 3)  # '', head, sample, rest (still URL-encoded)
        if path == "/":
            if len(self.app.samples) == 1:
                self.send_response(HTTPStatus.FOUND)
                self.send_header("Location", f"/review/{next(iter(self.app.samples))}")
                self.send_header("Content-Length", "0")
                return self.end_headers()
            return self._send(200, self.app.index_html().encode(), "text/html; charset=utf-8")
        if parts[1] == "review" and len(parts) == 3:
            if unquote(parts[2]) not in self.app.samples:
                raise LookupError(parts[2])
            return self._send(200, PAGE.read_bytes(), "text/html; charset=utf-8")
        if parts[1] == "api" and len(parts) == 4 and parts[3] == "state":
            sample = self.app.sample(unquote(parts[2]))
            since = query_value(url.query, "since")
            if since is None:
                return self._json(200, sample.state(self.app.reviewer, self.app.saliency))
            sample.check_run(run_id)  # a page of another run must reload, not merge
            return self._json(200, sample.changes(since))
        tile = tile_route(parts[3]) if parts[1] == "api" and len(parts) == 4 else None
        if tile is not None:
            kind, event_id = tile
            png = self.app.tile_png(
                unquote(parts[2]), event_id, run_id,
                saliency=query_value(url.query, "saliency") == "1", context=kind == "context",
                wanted=lambda: client_connected(self.connection))
            return self._send(200, png, "image/png")
        if parts[1] == "files" and len(parts) == 4:
            if run_id is not None:  # a gallery page asked for by the run the page shows
                self.app.sample(unquote(parts[2])).check_run(run_id)
            target = self.app.file_path(unquote(parts[2]), parts[3])
            if target is None:
                raise LookupError(parts[3])
            kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            return self._send(200, target.read_bytes(), kind)
        raise LookupError(path)

    def do_POST(self):
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "only loopback host names are served")
        self._answer(self._post, HTTPStatus.BAD_REQUEST)

    def _post(self):
        parts = urlsplit(self.path).path.split("/", 3)
        if len(parts) != 4 or parts[1] != "api" or parts[3] != "decision":
            raise LookupError(self.path)
        # JSON only: a form on another site cannot send it without a CORS preflight we refuse.
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise InputError("Content-Length is not a number") from None
        if not 0 < length <= 65536:
            raise InputError("empty or oversized body")
        try:
            body = parse_json(self.rfile.read(length))
        except ValueError as err:
            raise InputError(f"the body is not JSON: {err}") from None
        sample = self.app.sample(unquote(parts[2]))
        try:
            result = sample.decide(body, self.app.reviewer)
        except OSError as err:  # e.g. a read-only results folder: the page says "not saved"
            log.error("cannot save a decision in %s: %s", sample.folder, err)
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"cannot write review.csv: "
                               f"{err.strerror or err}")
        return self._json(200, result)


class ReviewServer(ThreadingHTTPServer):
    """The HTTP server with its app (``app``); closing it stops the tiles cut ahead."""

    app: ReviewApp

    def server_close(self) -> None:
        super().server_close()
        self.app.tiles.close()


def make_server(results: str | Path, port: int = 0, reviewer: str | None = None,
                saliency: bool = True, scans: str | Path | None = None,
                warm_up: bool = True) -> ReviewServer:
    """A review server on 127.0.0.1:``port`` (0: a free port); call ``serve_forever``.
    ``warm_up``: read the display levels and cut the first tiles in the background now."""
    app = ReviewApp(results, reviewer, saliency, scans)
    handler = type("BoundReviewHandler", (ReviewHandler,), {"app": app})
    try:
        server = ReviewServer(("127.0.0.1", int(port)), handler)
    except OSError as err:
        raise CtcnetError(f"cannot listen on 127.0.0.1:{port}: {err.strerror or err} "
                          "(--port 0 picks a free port)") from None
    server.daemon_threads = True
    server.app = app
    if warm_up:
        app.warm_up()
    return server


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/"

