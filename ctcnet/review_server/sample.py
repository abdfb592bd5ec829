"""One sample on the review server: its run read back, its candidates as the page shows them,
the decisions of its readings recorded and counted, and its sign-off.

A sample has two readings (:mod:`ctcnet.review.agreement`): the first (review.csv) is counted,
each saved decision bringing summary.json and index.html up to date; a second reader's
(review-second.csv) is kept apart and compared, its disagreements adjudicated by deciding the
event again in the first reading. Each reader reads one of them.

A request for a run the folder no longer holds (predict ran since the page was loaded) raises
``ResultsChanged``: a stale page records no decision on another cell."""

from __future__ import annotations

import errno
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from ctcnet.errors import InputError
from ctcnet.inference.counts import ReviewedCounts, count_events
from ctcnet.inference.figures_seal import figures_edited, refuse_broken_seals
from ctcnet.inference.guard import counted as guard_passed
from ctcnet.inference.result_state import RESEARCH_USE, result_state
from ctcnet.inference.run_entry import review_entry
from ctcnet.inference.run_index import refresh_run_index
from ctcnet.inference.summary import RunSummary, keep_not_as_written
from ctcnet.io.atomic import exclusive_folder
from ctcnet.io.panel import Panel
from ctcnet.report.colours import DEFAULT_PALETTE, overlay_legend
from ctcnet.report.reasons import ranked_with_reasons, reason_filter
from ctcnet.report.report_page import compensation_text, write_summary_and_page
from ctcnet.review import decisions as D
from ctcnet.review.agreement import (
    check_one_reading_each,
    readers_of,
    readings_agreement,
)
from ctcnet.review.journal_seal import check_as_sealed
from ctcnet.review.signoff import (
    SIGNOFF_FILE,
    SignOff,
    copy_in_history,
    journal_seal,
    read_signoff,
    signoff_record,
    write_signoff,
)
from ctcnet.review.signoff_words import decision_changes
from ctcnet.review.tally import ReviewTally
from ctcnet.review_server.candidate_rows import candidate_rows, decided_rows, listed_in_reading
from ctcnet.review_server.requests import (
    CONFIRM,
    FIRST,
    NOTE_CHARS,
    REJECT,
    SECOND,
    UNDECIDED,
    one_line,
    parse_batch,
    parse_decision,
    parse_signoff,
    reviewer_name,
    shown_decision,
)
from ctcnet.review_server.sample_images import SampleImages
from ctcnet.review_server.sample_states import (
    READ_ONLY_ERRNOS,
    DecisionsChanged,
    ResultsChanged,
    being_written,
    cannot_write_text,
    events_stamp,
    written_ns,
)
from ctcnet.review_server.signoff_checks import (
    left_undecided,
    open_disagreements,
    refuse_unread_second,
    refuse_unseen_signoff,
    signoff_key,
)
from ctcnet.review_server.tiles import FrameSource
from ctcnet.review_server.unread_review import unread_now

log = logging.getLogger(__name__)

READING_FILES = {FIRST: D.REVIEW_FILE, SECOND: D.SECOND_FILE}


class Sample(SampleImages):
    """One cartridge's predict outputs, read once per run (``stamp``: the events table it was
    read from). Decisions are read from the readings' journals on each request (another server
    may write them too: the lines appended since, :class:`~ctcnet.review.decision_journal.
    DecisionLog`) and written under their file lock; frames and display levels when a tile
    first needs them."""

    summary_written: int | None = None  # summary.json's time, taken before summary_now read it

    def __init__(self, name: str, folder: Path, scans: str | Path | None = None,
                 palette: str = DEFAULT_PALETTE):
        self.name, self.folder = name, folder
        self.stamp = events_stamp(folder)  # before reading: a run written meanwhile is noticed
        self.events, self.summary = D.load_sample(folder)
        self.run = D.RunEvents.of_sample(folder, self.events, self.summary)
        matched = D.migrate_decisions(folder, self.run)
        self.logs = {read: D.DecisionLog(folder, file) for read, file in READING_FILES.items()}
        self.decisions = self.logs[FIRST]
        self.reported = D.reported_classes(self.summary)
        self.classes = list(self.summary.model.classes)
        self.threshold = float(self.summary.model.review_threshold)
        self.panel = Panel.from_dict(self.summary.panel)
        self.tally = count_events(  # of the events shown, whatever summary.json says
            self.events, self.classes, self.reported, self.summary.volume_read_ml)
        # Each reading's decisions bring their events onto its own page (listed_in_reading).
        second = self.logs[SECOND].matched(self.run)
        D.warn_not_counted(folder, second, READING_FILES[SECOND])
        decided = {*matched.decisions["event_id"], *second.decisions["event_id"]}
        candidates = D.select_candidates(self.events, self.reported,
                                         self.summary.sample_id or name, decided=decided)
        self.candidates = ranked_with_reasons(candidates, self.reported, self.threshold)
        self.candidate_ids = frozenset(self.candidates["event_id"].astype(int).tolist())
        self.by_id = self.events.set_index("event_id", drop=False)
        self.tallies = {reading: ReviewTally(self.events, self.tally) for reading in self.logs}
        self.frames = FrameSource(self.summary, scans)
        self._init_images(palette)
        self.write_counts()

    def is_current(self) -> bool:
        """Whether the events table on disk is still the one this sample read, its summary beside
        it (not a rerun's that stopped after withdrawing it: a sample half replaced)."""
        return events_stamp(self.folder) == self.stamp and not being_written(self.folder)

    @cached_property
    def candidate_rows(self) -> list[dict]:
        """What the page shows of each candidate but its decision (made once a run)."""
        return candidate_rows(self)

    def state(self, reviewer: str, saliency: bool = False, reading: str = FIRST) -> dict:
        """Everything the page shows of ``reading``; ``saliency``: whether tiles cut here can
        have a saliency row. A second reading is blind: it shows its own decisions and counts,
        not the first's, nor their agreement or the sign-off."""
        log_ = self.logs[reading]
        matched = log_.matched(self.run)
        decided = matched.decisions
        rows, listed = decided_rows(self.candidate_rows, self.candidates, decided)
        model = self.summary.model
        out = {"sample": self.name, "run_id": self.run.token, "reviewer": reviewer,
               "reading": reading, "classes": self.classes, "reported": self.reported,
               "review_threshold": self.threshold,
               "channels": [c["name"] for c in self.summary.panel["channels"]],
               "reasons": reason_filter(self.candidates["reasons"][listed].tolist(),
                                        self.reported), "candidates": rows,
               "counts": self.counts(matched, reading=reading), "stamp": log_.read_stamp,
               "saliency": bool(saliency), "unattached": self.unattached(matched),
               # What the scan was (failed, partial: estimated rates), above the candidates.
               "scan_state": self.scan_state, "research_use": RESEARCH_USE,
               "tile_um": self.summary.model.crop_size * self.summary.model.pixel_size_um,
               "overlay": overlay_legend(self.panel.names, self.panel.roles(), self.palette),
               "compensation": self.summary.spillover and compensation_text(self.summary.spillover),
               # Which model file's calls are reviewed (and signed): named on the page.
               "model": {"name": model.path and Path(model.path).name, "sha256": model.sha256}}
        if reading == FIRST:
            out["signoff"] = self.signoff(matched)
            out["agreement"] = self.agreement(stamped=True)
        return out

    @cached_property
    def scan_state(self) -> dict:
        """:func:`~ctcnet.inference.result_state.result_state` of the run before any review."""
        return result_state(self.summary.to_dict(), review=False)

    @cached_property
    def held_ids(self) -> frozenset[int]:
        """The events whose call the guard held: not counted until a person decides."""
        held = ~guard_passed(self.events)
        return frozenset(self.events["event_id"].to_numpy()[held].astype(int).tolist())

    def unattached(self, matched: D.Matched) -> list[dict]:
        """The decisions that attach to no event of this run, as the page lists them."""
        return [{"event_id": int(u["event_id"]), "frame_id": u["frame_id"],
                 "reviewer_call": u["reviewer_call"], "time": u["time"], "reason": u["reason"]}
                for u in matched.unattached.to_dict("records")]

    def changes(self, since: str, reading: str = FIRST) -> dict:
        """What a page holding ``reading``'s journal as of stamp ``since`` lacks: nothing
        while the file is unchanged (a stat, no read), else the run's decisions and counts."""
        log_ = self.logs[reading]
        if log_.stamp() == since:
            return {"run_id": self.run.token, "stamp": since, "unchanged": True}
        matched = log_.matched(self.run)
        decided = matched.decisions
        out = {"run_id": self.run.token, "stamp": log_.read_stamp,
               "decisions": [[int(e), str(c)] for e, c in zip(decided["event_id"],
                                                              decided["reviewer_call"])],
               "counts": self.counts(matched, reading=reading),
               "unattached": self.unattached(matched)}
        if reading == FIRST:  # decisions made elsewhere may have outdated the sign-off
            out["signoff"] = self.signoff(matched)
        return out

    def write_if_signoff_moved(self, shown: dict | None) -> None:
        """summary.json, index.html and samples.csv written again where the sign-off a page was
        shown (:meth:`state`, :meth:`changes`) reads otherwise than summary.json (a journal
        edited by hand since): once a change, after the records' read let go of the lock."""
        status = (shown or {}).get("status")
        if self.__dict__.get("_signoff_seen", "unread") == status:
            return
        self._signoff_seen = status
        try:
            on_disk = json.loads((self.folder / "summary.json").read_bytes()).get("signoff")
        except (OSError, ValueError):
            return  # said when the folder is read or written
        if (on_disk or {}).get("status") != status:
            self.write_counts()

    def check_run(self, run_id: str | None) -> None:
        """Refuse a request made for another run than the one this sample holds now."""
        if run_id is not None and run_id != self.run.token:
            raise ResultsChanged(self.run.refusal(run_id, self.name))

    def _event(self, event_id: int) -> int:
        """``event_id``, one of the candidates: a decision on another event would change the
        counts unseen, on no page and in no sign-off's list."""
        if event_id not in self.by_id.index:
            raise InputError(f"no event {event_id} in sample {self.name}")
        if event_id not in self.candidate_ids:
            raise InputError(f"event {event_id} of sample {self.name} is not on its review "
                             "page (counted-class calls, flagged events, the quality-control "
                             "sample and events decided before are): decisions are made on "
                             "those")
        return event_id

    def decide(self, body, default_reviewer: str) -> dict:
        """Record one decision (:func:`parse_decision`'s request) and answer what the page
        needs: the decision, the counts and the journal's stamps before and after."""
        event_id, call, reviewer, run_id, reading = parse_decision(body)
        # A page loaded before predict ran again names events by their old numbers.
        self.check_run(run_id)
        self._event(event_id)
        reviewer = self._reader(reviewer, default_reviewer, reading)
        # The decision the page showed, when it says (a page's own): another reviewer's made
        # since is not replaced unseen (409, naming it).
        expect = shown_decision(body, (*self.classes, D.REJECTED), D.ANY, lambda: D.decision_of(
            self.logs[reading], self.run, event_id)[0])
        log_ = self.logs[reading]
        before = log_.stamp()
        log_.forget_append()
        if call == UNDECIDED:
            D.clear_decision(self.folder, self.run, event_id, reviewer, decisions=log_,
                             expect=expect)
            decision = None
        else:
            decision = self.reviewer_call(event_id, call)
            D.record_decision(self.folder, self.run, event_id, decision, reviewer,
                              decisions=log_, expect=expect)
        return {"event_id": event_id, "decision": decision,
                **self._saved(reading, log_, before)}

    def decide_many(self, body, default_reviewer: str) -> dict:
        """Record one call on several events at once (:func:`parse_batch`'s request: a grid's
        page confirmed, or its exceptions rejected); ``confirm`` confirms each one's call."""
        ids, call, reviewer, run_id, reading = parse_batch(body)
        self.check_run(run_id)
        for event_id in ids:
            self._event(event_id)
        reviewer = self._reader(reviewer, default_reviewer, reading)
        calls = {e: self.reviewer_call(e, call) for e in ids}
        log_ = self.logs[reading]
        before = log_.stamp()
        log_.forget_append()
        skipped: list[int] = []
        D.record_decisions(self.folder, self.run, calls, reviewer, decisions=log_,
                           undecided_only=body.get("undecided_only") is True, skipped=skipped)
        return {"decisions": [[e, c] for e, c in calls.items() if e not in skipped],
                "skipped": skipped, **self._saved(reading, log_, before)}

    def _reader(self, reviewer: str | None, default_reviewer: str, reading: str) -> str:
        """The decision's reviewer, refused where they are a reader of the other reading
        (:func:`~ctcnet.review.agreement.readers_of`: a call of theirs standing, or replaced
        by another person's, which was still read as their own call)."""
        name = reviewer_name(reviewer, default_reviewer, reading)
        other = self.logs[SECOND if reading == FIRST else FIRST].matched(self.run)
        check_one_reading_each(name, readers_of(other, self.run.run_id), reading)
        return name

    def _saved(self, reading: str, log_: D.DecisionLog, before: str) -> dict:
        """The counts after a save (written back to summary.json and index.html for the first
        reading) and the journal's stamps before and after it."""
        previous, stamp = log_.last_append or (before, before)
        if reading != FIRST:
            if (self.folder / SIGNOFF_FILE).exists():  # its record counts the second's rows:
                self.write_counts()  # summary.json, index.html and run.json say its status
            matched = log_.matched(self.run)
            return {"counts": self.counts(matched, self.reviewed(matched, reading)),
                    "previous": previous, "stamp": stamp}
        matched, reviewed = self.write_counts()
        return {"counts": self.counts(matched, reviewed), "previous": previous, "stamp": stamp,
                "signoff": self.signoff(matched)}

    def reviewer_call(self, event_id: int, call: str) -> str:
        """What the journal records for ``call`` on an event: its class on a confirmation."""
        if call == CONFIRM:
            return str(self.by_id.at[event_id, "class"])
        if call == REJECT:
            return D.REJECTED
        if call not in self.classes:
            raise InputError(f"call {call!r} is not {CONFIRM}, {REJECT}, {UNDECIDED} or one "
                             f"of {self.classes}")
        return call

    def reviewed(self, matched: D.Matched, reading: str = FIRST) -> ReviewedCounts:
        """What ``reading``'s decisions add up to, beside the model's tally (per 7.5 mL of the
        blood read, as the tally)."""
        return self.tallies[reading].counts(matched)

    def counts(self, matched: D.Matched, reviewed: ReviewedCounts | None = None,
               reading: str = FIRST) -> dict:
        """The model's tally and the reviewed counts of ``reading``'s ``matched``
        (``reviewed``, when counted already), as the page shows them."""
        reviewed = reviewed if reviewed is not None else self.reviewed(matched, reading)
        return {"model": self.tally.to_dict(), "reviewed": reviewed.to_dict()}

    def agreement(self, stamped: bool = False) -> dict:
        """The readings' agreement; ``stamped``: with the second journal's stamp (read first)."""
        stamp = {"second_stamp": self.logs[SECOND].stamp()} if stamped else {}
        return {**readings_agreement(*(self.logs[r].matched(self.run) for r in (FIRST, SECOND)),
                                     self.run.run_id), **stamp}

    def signoff(self, matched: D.Matched, reviewed: ReviewedCounts | None = None) -> dict | None:
        """The sample's sign-off as shown now (:func:`ctcnet.review.signoff.signoff_record`),
        checked against the reviewed counts ``matched`` adds up to now (``reviewed``, when
        counted already)."""
        signed = read_signoff(self.folder)
        if signed is None:
            return None
        reviewed = reviewed if reviewed is not None else self.reviewed(matched)
        record = signoff_record(signed, self.run.run_id, matched.n_rows, self.run.calls_id,
                                reviewed.after_review_per_7_5_ml,
                                self.logs[SECOND].matched(self.run).n_rows, self.folder,
                                self.summary.model.sha256, self.summary.network_sha256,
                                matched.n_decisions, self.summary.cartridge_info or {})
        # (``signed_seen``: what a sign-off over it names, refuse_unseen_signoff)
        return None if record is None else {**record, "signed_seen": signoff_key(signed)}

    def sign_off(self, body, default_reviewer: str) -> dict:
        """Sign the sample off (:func:`parse_signoff`'s request: the run and the decisions'
        stamp the signer read, a note where calls are left undecided): who, when, the
        decisions it covers, what is left undecided and the reviewed counts, written to
        signoff.json, then to summary.json and index.html beside the model's counts."""
        reviewer, run_id, seen, note = parse_signoff(body)
        self.check_run(run_id)
        if self.summary.status == "failed":  # no frame read: a signature would vouch for nothing
            raise InputError("a failed sample (no frame read) has no result to sign off")
        reviewer = self._reader(reviewer, default_reviewer, FIRST)  # (not a second reader)
        with D.decisions_lock(self.folder):
            if self.decisions.stamp() != seen:
                raise DecisionsChanged(
                    f"{self.name}: the stamp this sign-off names is not the decisions' stamp "
                    "now (decisions recorded since it was read, by another page, reviewer or "
                    "script; or not a stamp the state gave): the counts it would sign are not "
                    "those read; read the state again (the page does within seconds) and sign "
                    "off again")
            refuse_unread_second(self.name, self.logs[SECOND], self.run, body.get("second_stamp"))
            refuse_unseen_signoff(self.name, read_signoff(self.folder), body.get("signed_seen"))
            for name in READING_FILES.values():  # its seal would sign a hand edit as ctcnet's
                check_as_sealed(self.folder / name)
            matched = self.decisions.matched(self.run)
            reviewed = self.reviewed(matched)
            decided = set(matched.decisions["event_id"].astype(int).tolist())
            # What it leaves, the guard's held calls among them (the sign-off says how many,
            # as its page did before the second press); those needing a note refused without.
            second = self.agreement()
            left, held = left_undecided(
                self.candidates[listed_in_reading(self.candidates, decided)], decided,
                one_line(note, NOTE_CHARS),
                (self.summary.counted_as or {}).get("not_guarded_classes") or (),
                self.reported, open_disagreements(second, self.reported))
            record = SignOff(
                reviewer=reviewer, signed_at=datetime.now(UTC).isoformat(timespec="seconds"),
                run_id=self.run.run_id, cartridge_id=self.run.cartridge_id,
                decided=len(decided), unreviewed=int(left), held_undecided=int(held),
                after_review_per_7_5_ml=reviewed.after_review_per_7_5_ml,
                after_review_per_7_5_ml_interval=reviewed.after_review_per_7_5_ml_interval,
                journal_rows=matched.n_rows, second_reading=second if second["second"] else None,
                calls_id=self.run.calls_id, sample_status=self.summary.status,
                second_journal_rows=self.logs[SECOND].matched(self.run).n_rows,
                blood_volume_read_ml=self.summary.volume_read_ml,
                model_sha256=self.summary.model.sha256, note=one_line(note, NOTE_CHARS) or None,
                journals=journal_seal(self.folder, READING_FILES.values()),
                events_sha256=self.summary.events_sha256, counted_at=self.summary.counted_at,
                network_sha256=self.summary.network_sha256,
                decided_by={str(k): int(v) for k, v in
                            matched.decisions["reviewer"].value_counts().items()},
                automatic_per_7_5_ml=dict(self.summary.per_7_5_ml or {}),
                changed=decision_changes(matched.decisions, self.held_ids),
                cartridge_info=dict(self.summary.cartridge_info or {}))
            write_signoff(self.folder, record)
            answer = {"signoff": self.signoff(matched)}  # this one's: another may sign next
        self.write_counts()
        return answer

    def write_counts(self) -> tuple[D.Matched, ReviewedCounts]:
        """summary.json (the tally, the reviewed counts once review.csv has a decision, the
        sign-off) and index.html (what the decisions changed) brought up to date, under the
        decisions lock; never while predict holds the folder nor once another run is there;
        samples.csv follows where its review columns moved. Returns the match counted and its
        counts (a folder this account cannot write keeps its files: warned once)."""
        # summary.json's sign-off is written again here: the next look compares it with the
        # file, not with what it showed before (a sign-off over a "changed since", then a
        # decision another hand appended, left summary.json "current").
        self.__dict__.pop("_signoff_seen", None)
        counted, row_moved, now = None, False, None
        try:
            with D.decisions_lock(self.folder):
                matched = self.decisions.matched(self.run)
                counted = matched, self.reviewed(matched)
                decided = matched.n_decisions or len(matched.unattached)
                if not self.is_current():  # another run: the next request reads it
                    self.summary_now = self._summary_now(*counted)
                    return counted
                self.summary_written = written_ns(self.folder / "summary.json")
                on_disk = json.loads((self.folder / "summary.json").read_bytes())
                refuse_broken_seals(on_disk)  # (said below, the file left as it lies)
                summary = RunSummary.from_dict(on_disk)
                fields = RunSummary.count_fields(self.tally)
                signed = self.signoff(matched, counted[1])
                # (a copy unlike the record's that no sign-off ever was: the copy alone edited)
                edited = (f"its counts {summary.counts} are not its events' "
                          f"{fields['counts']} (edited after predict wrote it, or counted "
                          "by another ctcnet version)") if summary.counts != \
                    fields["counts"] else figures_edited(on_disk) and (
                        "its figures (an after-review count, a rate) were changed since "
                        "ctcnet wrote them: its seal says so") or on_disk.get("signoff") != \
                    signed and copy_in_history(self.folder, on_disk.get("signoff")) is False \
                    and ("its copy of the sign-off names one its history never recorded "
                         "(its reviewer or time written over by hand?)")
                updated = replace(summary, **fields, reviewed=counted[1] if decided else None,
                                  unread_markers=unread_now(summary.unread_markers,
                                                            self.events, matched, decided))
                now = {**updated.to_dict(), "signoff": signed}
                # The folder held only to write: a look leaves an archive's files as they lie.
                if edited or updated != summary or on_disk.get("signoff") != signed:
                    with exclusive_folder(self.folder, "review"):
                        if not self.is_current():  # another run written meanwhile
                            self.summary_now = self._summary_now(*counted)
                            return counted
                        if edited:  # not as ctcnet wrote it: the file found is the evidence
                            kept = keep_not_as_written(self.folder, "summary.json")
                            log.warning("%s: summary.json: %s: written again from the events "
                                        "and decisions, the file found kept as %s",
                                        self.folder, edited, kept.relative_to(self.folder))
                        write_summary_and_page(self.folder, updated, signed, decision_changes(
                            matched.decisions, self.held_ids))
                        self.summary_written = written_ns(self.folder / "summary.json")
                        # (the rates too: one written at another precision moves the row)
                        row_moved = review_entry(on_disk) != review_entry(now) or \
                            on_disk.get("per_7_5_ml") != now.get("per_7_5_ml")
        except InputError as err:  # predict holds the folder
            log.info("%s: summary.json not updated now: %s", self.folder, err)
        except (OSError, ValueError, KeyError, TypeError) as err:
            if getattr(err, "errno", None) in READ_ONLY_ERRNOS:  # (an archive's: no alarm)
                said, before = cannot_write_text(err), self.__dict__.get("_said_unwritable")
                # A warning once a sample and cause, not at every request that asks again.
                log.log(logging.INFO if err.errno == errno.EROFS or said == before else
                        logging.WARNING, "%s: %s; summary.json and index.html keep what the "
                        "last command wrote, this server's pages say the review and sign-off "
                        "as they read now", self.folder, said)
                self._said_unwritable = said
            else:
                log.warning("%s: cannot update summary.json and index.html with the review "
                            "counts: %s", self.folder, err)
        if row_moved:
            self._refresh_run_index()
        if counted is None:
            matched = self.decisions.matched(self.run)
            counted = matched, self.reviewed(matched)
        # What the list of samples says: as written, or as it would be where it was not.
        self.summary_now = now if now is not None else self._summary_now(*counted)
        return counted

    def _summary_now(self, matched: D.Matched, reviewed: ReviewedCounts) -> dict:
        """summary.json as the decisions and sign-off make it now, from the summary read."""
        decided = matched.n_decisions or len(matched.unattached)
        now = replace(self.summary, **RunSummary.count_fields(self.tally),
                      reviewed=reviewed if decided else None,
                      unread_markers=unread_now(self.summary.unread_markers, self.events,
                                                matched, decided))
        return {**now.to_dict(), "signoff": self.signoff(matched, reviewed)}

    def _refresh_run_index(self) -> None:
        """The folder's run.json and samples.csv with this sample's review as it is now (only
        as its row moves: it reads every sample's summary); a failure said, the decision kept."""
        try:
            refresh_run_index(self.folder.parent)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
            log.warning("%s: run.json and samples.csv not updated (%s)", self.folder.parent, err)
