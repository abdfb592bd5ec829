"""The review server's application: the samples of one results folder, kept current as
predict writes new runs, and the tiles it cuts for them (cut once, kept, the next few cut
ahead while the server is idle; :mod:`ctcnet.review_server.tiles`). The HTTP side is
:mod:`ctcnet.review_server.server`.

Predict may run again (``--overwrite``) while a server is up: every request checks the events
table on disk, and when another run is there the sample is read again; while predict is still
writing, requests get :class:`~ctcnet.review_server.sample_states.ResultsBeingWritten`.

A sample is read when it is first asked for, and the server keeps the ``KEEP_SAMPLES`` read
last: a folder of a night's hundred samples of half a million events each is served in the
memory of a few (read all at start, four such samples took 1.5 GB before a page opened).
"""

from __future__ import annotations

import html
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote, unquote

from ctcnet.core.install_hint import install_command
from ctcnet.core.paths import same_name
from ctcnet.errors import CtcnetError, InputError
from ctcnet.exports.event_crops import check_scans_for
from ctcnet.inference.backends import has_torch, load_backend
from ctcnet.inference.summary import RunSummary
from ctcnet.io.digests import file_sha256_cached
from ctcnet.report.colours import DEFAULT_PALETTE
from ctcnet.review import decisions as D
from ctcnet.review.runs import check_sample_folder
from ctcnet.review.signoff import HISTORY_FILE, SIGNOFF_FILE
from ctcnet.review_server.sample import Sample
from ctcnet.review_server.sample_states import (
    READ_ONLY_TEXT,
    ResultsBeingWritten,
    being_written,
    cannot_write_text,
    events_stamp,
    written_ns,
)
from ctcnet.review_server.tiles import TileCutter

log = logging.getLogger(__name__)

AHEAD = 3         # tiles cut ahead: the first of a sample at start, the next after each one
KEEP_SAMPLES = 4  # samples kept read (the least recently asked for goes first)


class UnknownSample(LookupError):
    """A sample the results folder does not hold, said with the ones it does (404)."""


class ReviewApp:
    """The samples of one results folder and what the request handler asks of them."""

    def __init__(self, results: str | Path, reviewer: str | None = None,
                 saliency: bool = True, scans: str | Path | None = None,
                 palette: str = DEFAULT_PALETTE):
        self.results = Path(results)
        self.scans, self.palette = scans, palette
        # Every sample's folder, by name; the samples read, the last asked for last.
        self.folders = D.find_samples(self.results)
        check_scans_for(self.folders, scans, self.results)
        self.samples: OrderedDict[str, Sample] = OrderedDict()
        self._not_served: set[str] = set()  # finished later, refused by --scans
        self.reviewer = reviewer or D.default_reviewer()
        # Saliency maps need torch: without it the page is told so (its `s` says why) rather
        # than offered tiles that come back without the row.
        self.saliency = saliency and has_torch()
        if saliency and not self.saliency:
            log.warning("tiles have no saliency row: it needs torch, which this install lacks "
                        "(%s adds it)", install_command("all"))
        self.tiles = TileCutter()
        self._explain = {}
        self._explain_lock = threading.Lock()
        self._load_lock = threading.Lock()
        # What the list of samples says of a sample read since the server started and no
        # longer kept (:class:`Listed`): its summary as its decisions made it then, or why it
        # cannot be read, with the events table it was of (another run on disk: summary.json
        # says), summary.json's time then (written since by another server: it says) and
        # its page's candidates (the same run's, whoever decided since).
        self.listed: dict[str, Listed] = {}
        # Called after each decision or sign-off saved (``ctcnet review`` begins its log file
        # there: a look at an archive writes nothing).
        self.on_write = None
        self.token: str | None = None  # what requests must carry (review_server.access)
        self._say_what_cannot_be_done()

    def _say_what_cannot_be_done(self) -> None:
        """Warn as the server starts of what its pages will refuse: a folder that cannot be
        written (each decision refused, the first found at the first press), or scans no
        longer where predict read them (every tile not in the gallery refused, one by one)."""
        if not os.access(self.results, os.W_OK):
            log.warning("%s: %s", self.results, READ_ONLY_TEXT)
        if self.scans is not None:
            return
        moved = []
        for folder in self.folders.values():
            try:
                scan = RunSummary.read(folder).input
            except (InputError, OSError, KeyError, TypeError, ValueError):
                continue  # (the sample's page says what is wrong with it)
            if scan and not Path(scan).exists():
                moved.append(scan)
        if moved:
            log.warning("the scans of %d of %d sample(s) are not where predict read them "
                        "(e.g. %s): tiles beyond the gallery and the frames around a cell "
                        "cannot be cut; start again with --scans FOLDER (where they are now)",
                        len(moved), len(self.folders), moved[0])

    def sample(self, name: str) -> Sample:
        """Sample ``name`` as its folder holds it now: read again when predict has written
        another run since (ResultsBeingWritten while it is still writing). A name its
        accents written decomposed (as macOS writes them) is the sample composed."""
        if name not in self.folders:
            self.look_again()  # a night's batch may have finished it since the server began
            name = next((known for known in self.folders if same_name(known, name)), name)
        if name not in self.folders:
            known = sorted(self.folders)
            raise UnknownSample(f"no sample {name!r} in {self.results} (its samples: "
                                f"{', '.join(known[:10])}{', ...' if len(known) > 10 else ''})")
        sample = self.samples.get(name)
        if sample is not None and sample.is_current():
            with self._load_lock:
                if name in self.samples:
                    self.samples.move_to_end(name)
            if written_ns(sample.folder / "summary.json") != sample.summary_written:
                # Changed since this server wrote or read it (a hand edit): checked again
                # now, as a fresh server's first look checks it, not at the next decision.
                sample.write_counts()
            return sample
        with self._load_lock:
            sample = self.samples.get(name)
            if sample is not None and sample.is_current():  # read meanwhile
                return sample
            folder = self.folders[name]
            if sample is not None and being_written(folder):
                raise ResultsBeingWritten(f"the results of {name} are being written (ctcnet "
                                          "predict running?), or the run writing them stopped "
                                          "before it finished (run it again); reload the page "
                                          "when it is done")
            try:
                fresh = Sample(name, folder, self.scans, self.palette)
            except InputError as err:
                self.listed[name] = Listed(events_stamp(folder), f"cannot be read: {err}")
                if sample is None:
                    raise
                raise ResultsBeingWritten(f"cannot read the results of {name} now: "
                                          f"{err}") from None
            if sample is not None:
                log.info("%s: another run was written (run %s, was %s); read again",
                         folder, fresh.run.run_id, sample.run.run_id)
            self.samples[name] = fresh
            self.samples.move_to_end(name)
            while len(self.samples) > KEEP_SAMPLES:
                gone, kept = self.samples.popitem(last=False)
                self.listed[gone] = Listed.of(kept)
            return fresh

    def file_path(self, name: str, relative: str) -> Path | None:
        """The file ``relative`` (URL-decoded once) inside sample ``name``'s folder, or None
        when it would lie outside it (``..``, absolute, a symlink out) or is hidden."""
        folder = self.folders.get(name)
        if folder is None:
            return None
        parts = unquote(relative).split("/")
        if not parts or any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\x00" in p
                            for p in parts):
            return None
        root = folder.resolve()
        target = root.joinpath(*parts).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            return None
        return target

    def _explainer(self, sample: Sample):
        """The run's model's saliency function, loaded when a tile first asks for saliency
        (loading it imports torch: seconds, and hundreds of MB); None without torch or
        model, with saliency turned off, or where the file at the model's path is no longer
        the one that made the calls (a fine-tune written again under its name: its saliency
        beside the earlier network's calls would explain calls it did not make)."""
        model = sample.summary.model
        key = (model.path, model.sha256)
        with self._explain_lock:
            if key not in self._explain:
                explain = None
                if self.saliency and model.path is not None:  # None: a model given in memory
                    try:
                        now = file_sha256_cached(model.path)
                        if model.sha256 and now != model.sha256:
                            raise CtcnetError(
                                f"{model.path} is not the model file that made {sample.name}'s "
                                f"calls (SHA-256 {model.sha256[:12]}..., now {now[:12]}...: "
                                "written again since?); put that file back to see its "
                                "saliency")
                        explain = load_backend(model.path, device="cpu").explainer()
                    except (CtcnetError, OSError, ImportError, RuntimeError) as err:
                        log.warning("no saliency on quality-control tiles: %s", err)
                self._explain[key] = explain
            return self._explain[key]

    def _tile_key(self, sample: Sample, event_id: int, context: bool, saliency: bool):
        # The events table on disk, not the run's numbering alone: a rerun with another
        # model or prior keeps the numbering, not the calls and probabilities a tile's
        # caption shows.
        return (sample.name, sample.stamp, int(event_id),
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

    def check_one_servable(self) -> None:
        """Refuse a results folder none of whose samples can be served (each refused: a
        folder renamed or copied from another sample's, a summary that does not read), as
        ``crops`` and ``export-events`` refuse it, rather than serve a list whose every page
        answers why it cannot be read. One that passes (its summary alone read: a sample is
        read when its page asks) suffices."""
        refused = []
        for name, folder in self.folders.items():
            try:
                check_sample_folder(folder)
                return
            except InputError as err:
                refused.append(f"{name}: {str(err).removeprefix(f'{self.folders[name]}: ')}")
        if refused:
            raise InputError(f"no sample here can be reviewed ({'; '.join(refused[:3])}"
                             f"{'; ...' if len(refused) > 3 else ''})", self.results)

    def warm_up(self) -> None:
        """In the background, at start: each sample's display levels (read from its frames
        for a run that did not keep them) and its first tiles, so the first page is quick;
        and the sign-offs of the other samples checked (:meth:`check_signed`)."""
        jobs = []
        for name in list(self.folders)[:KEEP_SAMPLES]:
            try:
                sample = self.sample(name)
            except (InputError, ResultsBeingWritten) as err:  # said when its page asks
                log.warning("%s: not read ahead (%s)", name, err)
                continue
            except PermissionError as err:  # (another account's file: its page is 403)
                log.warning("%s: not read ahead (%s)", name, cannot_write_text(err))
                continue
            jobs.append((("levels", sample.name, sample.run.run_id), _levels_job(sample)))
            jobs += self._ahead(sample, None, False)
        self.tiles.prefetch(jobs)
        threading.Thread(target=self.check_signed, name="check-signoffs", daemon=True).start()

    def look_again(self) -> None:
        """Add the samples written into the results folder since the server began (a night's
        batch still running as the morning's review starts): they are served as they
        finish, without a restart."""
        try:
            found = D.find_samples(self.results)
        except InputError:  # none there (yet), or the folder gone: the known ones stay
            return
        new = {name: folder for name, folder in found.items()
               if name not in self.folders and name not in self._not_served}
        if new:
            try:  # --scans checked as at the start, over every sample (a warning there)
                check_scans_for({**self.folders, **new}, self.scans, self.results)
            except InputError as err:  # the samples served so far stay served
                log.warning("%s not served: %s", ", ".join(sorted(new)), err)
                self._not_served |= set(new)  # said once, not at every look
                return
            # A new dict, not one grown in place: another request may be going over it.
            self.folders = {**self.folders, **new}
            log.info("%d sample(s) written since the server began: %s", len(new),
                     ", ".join(sorted(new)))

    def index_html(self) -> str:
        """The page listing the samples to review, each with whether its result may be read
        (partial, failed, signed off...), its review list and how much of it is decided: a
        morning's work read before a sample is opened."""
        self.look_again()
        # (relative: the list is served under the session's path, :mod:`access`)
        links = "".join(f'<li><a href="review/{html.escape(quote(n, safe=""))}">'
                        f'{html.escape(n)}</a>: {html.escape(self._line(n, folder))}</li>'
                        for n, folder in self.folders.items())
        # A night killed or stopped: the samples it did not finish or begin are in no list
        # below (a morning's reader saw three samples and no word of the other two).
        undone = self.run_undone()
        run = ("<p id='run-undone'>The run that wrote these results did not finish all of "
               "them, or its index is not theirs:</p><ul>"
               + "".join(f"<li>{html.escape(p)}</li>" for p in undone) + "</ul>"
               if undone else "")
        return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                "<title>ctcnet review</title></head><body><h1>Samples to review</h1>"
                f"{run}<ul>{links}</ul></body></html>")


    def run_undone(self) -> list[str]:
        """What the run that wrote the results left undone (samples it did not finish or
        begin, an index not theirs), in words; [] where nothing."""
        from ctcnet.exports.results_audit import audit_run

        return audit_run(self.results)

    def _line(self, name: str, folder: Path) -> str:
        """Sample ``name``'s line on the index: as its decisions and sign-off read when the
        server last read it (the run on disk still the one read), else as its summary.json
        says (on read-only media, what the last command could write)."""
        sample = self.samples.get(name)
        if sample is not None and sample.is_current():
            # Another server's decision or sign-off since: its summary.json says it, not
            # what this server last made (a sign-off listed as holding after it stopped).
            written = written_ns(folder / "summary.json")
            now = sample.summary_now if written == sample.summary_written else None
            return _sample_line(folder, now, len(sample.candidate_rows))
        listed = self.listed.get(name)
        if listed is None or listed.stamp != events_stamp(folder):
            return _sample_line(folder)
        if isinstance(listed.summary, str):
            return listed.summary
        # Another server's decision or sign-off since it was last read here: summary.json's.
        now = listed.summary if written_ns(folder / "summary.json") == listed.written else None
        return _sample_line(folder, now, listed.candidates)

    def check_signed(self) -> None:
        """Every signed-off sample not yet read, read once (one at a time, not kept), so the
        index says of each whether its sign-off holds now, not only what its summary.json
        said when last written (a record edited since, or read-only media)."""
        for name, folder in list(self.folders.items()):
            if name in self.samples or name in self.listed or not any(
                    (folder / record).exists() for record in (SIGNOFF_FILE, HISTORY_FILE)):
                continue
            try:
                sample = Sample(name, folder, self.scans, self.palette)
            except (CtcnetError, OSError, ValueError) as err:
                self.listed[name] = Listed(events_stamp(folder), f"cannot be read: {err}")
                continue
            self.listed[name] = Listed.of(sample, candidates=False)  # (read for its sign-off)


class Listed(NamedTuple):
    """What the list of samples keeps of a sample read and no longer kept: the events table
    it was of (:func:`events_stamp`), its summary as made here (or why it cannot be read),
    summary.json's time then and its page's candidates."""

    stamp: tuple | None
    summary: dict | str
    written: int | None = None
    candidates: int | None = None

    @classmethod
    def of(cls, sample: Sample, candidates: bool = True) -> Listed:
        """``sample`` as read now (``candidates``: its page's, where they were made)."""
        return cls(sample.stamp, sample.summary_now, sample.summary_written,
                   len(sample.candidate_rows) if candidates else None)


def _sample_line(folder: Path, summary: dict | None = None,
                 candidates: int | None = None) -> str:
    """A sample's line on the index: its result state, review list and decisions so far, from
    ``summary`` or its summary.json (the sample itself is read when its page is opened), out
    of the page's ``candidates`` where the sample was read (its list holds more than the
    events sent to review: "14 sent to review, 14 decided" read as done with 28 to go)."""
    from ctcnet.inference.result_state import result_state, signoff_holds
    from ctcnet.inference.summary import SUMMARY_FILE

    if summary is None:
        try:
            summary = json.loads((Path(folder) / SUMMARY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            return f"its summary.json cannot be read ({err.__class__.__name__})"
    if not isinstance(summary, dict):
        return "its summary.json is not a run's summary"
    state = result_state(summary)["state"]
    if state == "partial" and summary.get("signoff"):  # the state names the scan's part alone
        state += "; signed off" if signoff_holds(summary) else "; sign-off stale"
    listed = (summary.get("review_list") or {}).get("events")
    decided = (summary.get("reviewed") or {}).get("reviewed", 0)
    # (its page also shows every counted-class call and a quality-control sample: more
    # candidates than the list sent to review)
    return f"{state}" + (f"; {listed} sent to review, beside every counted-class call and a "
                         "quality-control sample" if listed is not None else "") + (
        f"; {decided} of its page's {candidates} decided" if candidates is not None else
        f"; {decided} decided (open it for how many its page lists)")


def _levels_job(sample: Sample) -> Callable[[], bytes]:
    """A job for the tile cutter that reads a sample's display levels and makes its rows for
    the page (its result, kept under a key no page asks for, is empty)."""
    def job() -> bytes:
        sample.display_levels()
        sample.candidate_rows  # noqa: B018 (made and kept for the first state)
        return b""
    return job

