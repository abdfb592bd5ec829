"""One patient's draws side by side: each draw's figure to report with its blood-draw interval,
where it stands against a cut-off, and whether the count changed between draws.

A clinician following a patient on therapy asks two things of serial cartridges: is the count
below the cut-off (5 CTCs per 7.5 mL in metastatic breast and prostate cancer, 3 in colorectal),
and did it fall? Two draws' 95 % intervals overlapping does not answer the second: it is a far
weaker test than the one the question asks. Given the two counts ``k1`` and ``k2`` of blood
volumes ``v1`` and ``v2``, the same rate in both makes ``k1`` a binomial draw of ``k1 + k2``
with probability ``v1 / (v1 + v2)`` (the conditional test of two Poisson rates); its exact
two-sided p-value is the chance, under that rate, of a split as unlikely as the one seen.
Like the intervals, it is about sampling one tube of blood each time, not about the calls.

Each draw is read from a predict output's ``summary.json``: the figure its report says to use
(the counts after review once signed off, else the automatic ones), the blood volume read,
and what made it (``run_fingerprint``): draws counted by other models or at other settings are
said not to be comparable, as are figures not yet reviewed or of a partial scan.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ctcnet.core.paths import typed_id
from ctcnet.errors import InputError
from ctcnet.inference.counts import per_7_5_ml, per_volume_text, rate_interval
from ctcnet.inference.draw_dates import say_dates_out_of_order
from ctcnet.inference.figures_seal import check_figures_sealed, refuse_edited_seals
from ctcnet.inference.journal import PARTS_DIR
from ctcnet.inference.result_state import result_state, reviewed_figures, signoff_holds
from ctcnet.inference.run_entry import scanner_text
from ctcnet.inference.run_table import list_cell
from ctcnet.inference.setting_differences import how_settings_differ, settings_that_differ
from ctcnet.inference.summary import SUMMARY_FILE
from ctcnet.io.cartridge_info import PATIENT_KEY, RUN_INDEX_FILE
from ctcnet.io.scan import is_cartridge

# The cut-off CellSearch's prognostic studies used in metastatic breast and prostate cancer
# (colorectal: 3): per 7.5 mL of blood.
DEFAULT_CUTOFF = 5.0

# The least p-value a draws table holds: one too small for a float sums to 0.0 (each of its
# few thousand terms under 1e-308), and is under this bound, never 0.
P_FLOOR = 1e-300


def rate_change_p(k1: int, v1: float, k2: int, v2: float) -> float:
    """The exact two-sided p-value of two counts ``k1``, ``k2`` (of blood volumes ``v1``,
    ``v2``) arising from one rate: ``k1`` is binomial of ``k1 + k2`` with probability
    ``v1 / (v1 + v2)`` under it; the p-value sums the splits no likelier than the one seen."""
    if min(v1, v2) <= 0 or not all(map(math.isfinite, (v1, v2))):
        raise ValueError("blood volumes must be positive")
    n = int(k1) + int(k2)
    if n == 0:
        return 1.0
    p = v1 / (v1 + v2)
    log_pmf = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
               + (i * math.log(p) if i else 0.0) + ((n - i) * math.log1p(-p) if n - i else 0.0)
               for i in range(n + 1)]
    seen = log_pmf[int(k1)]
    # A relative tolerance, as exact tests use: a split as likely as the one seen is kept.
    return min(1.0, sum(math.exp(lp) for lp in log_pmf if lp <= seen + 1e-7))


@dataclass
class Draw:
    """One draw as the comparison reads it (a row of ``draws.csv``)."""

    draw: int                       # its place in the series (1 = the first given)
    name: str
    folder: str
    result_state: str | None
    status: str | None
    figure: str                     # "after review" (signed off) or "automatic"
    count: int | None
    blood_volume_read_ml: float | None
    per_7_5_ml: float | None
    low: float | None
    high: float | None
    cutoff: float
    against_cutoff: str             # "at or above", "below", "n/a"
    interval_spans_cutoff: bool | None  # None: no rate
    change_from_previous: float | None = None   # ratio of rates
    p_from_previous: float | None = None
    change_from_first: float | None = None
    p_from_first: float | None = None
    drawn_at: str | None = None
    patient: str | None = None       # cartridge.json's patient id (PATIENT_KEY), where stated
    cartridge_id: str | None = None  # the scan: one scan is one blood draw
    pixel_size_um: float | None = None  # the scanner's
    scanner: str | None = field(default=None, repr=False)  # with its range (not a column)
    network_sha256: str | None = None  # what counted it
    model: str | None = None           # the model file's name
    not_comparable: str = ""        # the settings the draws' runs differ in ("": none)
    notes: list[str] = field(default_factory=list)
    # Keys of its cartridge.json the options may have meant (not a column): "patient", one
    # like the patient key where that is absent; "date", one that reads as a date where no
    # --date-key was given.
    keys_near: dict[str, str] = field(default_factory=dict, repr=False)
    near_patient: str | None = field(default=None, repr=False)  # keys_near's value (not a column)

    def row(self) -> dict:
        """The draw as a flat row (notes joined by ``; ``: :func:`.run_table.list_cell`)."""
        out = asdict(self)
        del out["keys_near"], out["near_patient"], out["scanner"]
        out["notes"] = list_cell(self.notes)
        if self.per_7_5_ml is not None:  # to 4 decimals, as its interval's ends
            out["per_7_5_ml"] = round(self.per_7_5_ml, 4)
        return out


def _decided_so_far(summary: dict, class_name: str, cutoff: float,
                    automatic: float | None, stale: bool = False) -> str | None:
    """A review under way, not signed off, as its decisions stand (summary.json's
    ``reviewed``), or None before any decision; where they stand on the other side of
    ``cutoff`` from the ``automatic`` rate, that the review decides the side. The span a
    review could move the count to is said beside it as what it is, of the calls as predict
    made them: a confident call relabelled goes past it (2.14-3.21 stated beside an
    after-review 4.29). ``stale``: it was signed off, a sign-off that no longer holds."""
    reviewed = summary.get("reviewed")
    if not isinstance(reviewed, dict) or not reviewed.get("reviewed"):
        return None
    count = (reviewed.get("after_review") or {}).get(class_name)
    rate = (reviewed.get("after_review_per_7_5_ml") or {}).get(class_name)
    so_far = "" if count is None else (
        f", {class_name} {count} after review so far"
        + ("" if rate is None else f" ({per_volume_text(rate)} per 7.5 mL)"))
    if rate is not None and automatic is not None and (rate >= cutoff) != (automatic >= cutoff):
        so_far += (f", {'at or above' if rate >= cutoff else 'below'} the cut-off of "
                   f"{cutoff:g} where the automatic count is not: the review decides which "
                   "side")
    state = ("under review again, its sign-off no longer holding" if stale else
             "under review, not signed off")
    return (f"{state}: {reviewed['reviewed']} event(s) decided{so_far}; the figure above is "
            f"the automatic count until the review is signed off{' again' if stale else ''}")


def _what_folder(folder: Path) -> str:
    """What a folder given as a draw is instead, where it tells: a sample predict began and
    did not finish, a whole --out folder, or a scan."""
    if (folder / PARTS_DIR).is_dir():
        return ("; predict began this sample and did not finish it (stopped?): the same "
                "predict command resumes it")
    if (folder / RUN_INDEX_FILE).is_file():
        return (f"; {folder} is a whole --out folder of several samples: give its sample "
                f"folders ({folder}/<sample>)")
    if is_cartridge(folder, unreadable=False):
        return "; it is a scan, not a result: give the folder `ctcnet predict` wrote for it"
    return ""


def _draw_summary(folder: Path) -> tuple[dict, str | None]:
    """A draw's summary.json, read and held to its seals, and what its figures' seal leaves
    unchecked (None: nothing); a folder that is no sample's output is refused, said what it
    is instead."""
    path = folder / SUMMARY_FILE
    if not folder.is_dir():  # (a typo, a sample set aside, a file listed by a wildcard)
        raise InputError("is a file, not a sample's output folder: give the folder of one "
                         "sample's predict output (<--out>/<sample>)" if folder.exists() else
                         "no such folder: give the folder of one sample's predict output "
                         "(<--out>/<sample>)", folder)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError("no summary.json: give the folder of one sample's predict output "
                         f"(<--out>/<sample>){_what_folder(folder)}", folder) from None
    except (OSError, ValueError) as err:
        raise InputError(f"summary.json cannot be read: {err}", folder) from None
    if not isinstance(summary, dict) or "crops" in summary:
        raise InputError("not a cartridge's output (a crop folder has no blood volume)", folder)
    unsealed = check_figures_sealed(summary, folder)
    refuse_edited_seals(summary, folder)  # (another patient's id edited in read as theirs)
    return summary, unsealed


def refuse_unreported(rates: dict | None, class_name: str, where) -> None:
    """Refuse a class a sample's model does not report (``rates``: its rates per 7.5 mL by
    class, which a failed run holds as None): one it calls and does not count, as wbc, has
    no rate to read (``where``: the sample's folder or name)."""
    if class_name not in (rates or {}):
        raise InputError(f"its model reports no {class_name!r} (reported: "
                         f"{sorted(rates or {})})", where)


def read_draw(folder: str | Path, place: int, class_name: str = "ctc",
              cutoff: float = DEFAULT_CUTOFF, date_key: str | None = None,
              signoff_check: Callable[[Path], bool] | None = None,
              patient_key: str | None = PATIENT_KEY) -> tuple[Draw, dict]:
    """A predict output folder as a :class:`Draw` of ``class_name``, and its run fingerprint
    (``patient_key``: the cartridge.json key naming the patient, kept as ``patient``).
    ``signoff_check``: whether the sample's sign-off holds as its record and decisions are
    now (summary.json's copy is as fresh as the last command that wrote it: a review.csv or
    signoff.json changed since read as signed); the review's, handed in from above."""
    folder = Path(folder)
    summary, unsealed = _draw_summary(folder)
    state = result_state(summary)
    # (a partial scan signed off too: its state is partial)
    signed = signoff_holds(summary) and (signoff_check is None or signoff_check(folder))
    figures = reviewed_figures(summary) if signed else {
        "after_review": summary.get("counts") or {},
        "after_review_per_7_5_ml": summary.get("per_7_5_ml") or {}}
    refuse_unreported(figures["after_review_per_7_5_ml"], class_name, folder)
    # A failed sample read no frame: its zeros are no count.
    failed = summary.get("status") == "failed"
    count = None if failed else (figures["after_review"] or {}).get(class_name)
    volume = summary.get("blood_volume_processed_ml", summary.get("blood_volume_ml"))
    rate = per_7_5_ml(count, volume) if count is not None else None
    bounds = rate_interval(count, volume) if count is not None else None
    notes = ["failed: no frame was read, so there is no result"] if failed else []
    notes += [unsealed] if unsealed else []
    if summary.get("blood_volume_stated") is False and not failed:
        notes.append(f"blood volume not stated in cartridge.json: "
                     f"{summary.get('blood_volume_ml')} mL assumed; the rate, its interval "
                     "and the tests rest on it")
    if summary.get("status") == "partial":  # why, in its own words (a count may be no count)
        tube = summary.get("blood_volume_ml")
        if volume is not None and tube is not None and volume < tube:
            notes.append(f"partial scan: a rate of the blood read ({volume:.4g} mL of "
                         f"{tube:g}), not of a whole tube")
        notes += [f"partial: {problem}" for problem in summary.get("problems") or []]
        # The frames refused, each with its reason: a draw read short must say why.
        skipped = [s for s in summary.get("skipped_frames") or [] if isinstance(s, dict)]
        notes += [f"partial: frame {s.get('frame')} skipped: {s.get('reason')}"
                  for s in skipped[:5]]
        if len(skipped) > 5:
            notes.append(f"partial: {len(skipped) - 5} more frame(s) skipped (summary.json's "
                         "skipped_frames)")
    stale = bool(summary.get("signoff")) and not signed
    decided = _decided_so_far(summary, class_name, cutoff, rate, stale) \
        if not signed and not failed else None
    if stale and not decided:  # (said in the review's line where it has decisions)
        notes.append("its sign-off no longer holds: the automatic count, until it is signed "
                     "off again")
    elif not signed and not failed and not decided:
        notes.append("the automatic count: not reviewed and signed off")
    span = ((summary.get("tally") or {}).get("review_span_per_7_5_ml") or {}).get(class_name)
    spans = not signed and not failed and isinstance(span, list) and len(span) == 2 and \
        span[0] != span[1]
    # Where the span reaches across the cut-off, the review decides the side: said in words.
    crossing = (f"; that crosses the cut-off of {cutoff:g}: the review decides which side"
                if spans and span[0] < cutoff <= span[1] else "")
    if decided:  # (the span is of the calls as predict made them: a relabel goes past it)
        notes.append(decided + (f"; before the review, its calls held or in doubt could move "
                                f"it to {per_volume_text(span[0])}-"
                                f"{per_volume_text(span[1])} per 7.5 mL (a confident call "
                                f"relabelled goes past that){crossing}" if spans else ""))
    elif spans:  # what a review could still move it to
        notes.append(f"its review could move it to {per_volume_text(span[0])}-"
                     f"{per_volume_text(span[1])} per 7.5 mL "
                     f"(calls held or in doubt){crossing}")
    info = summary.get("cartridge_info") if isinstance(summary.get("cartridge_info"), dict) \
        else {}
    drawn_at = info.get(date_key) if date_key else None
    if isinstance(drawn_at, str) and not drawn_at.strip():
        drawn_at = None  # (an empty date, as cartridge.json's record keeps it: none given)
    if date_key and drawn_at is None:
        close = difflib.get_close_matches(date_key, [str(k) for k in info], n=1)
        notes.append(f"cartridge.json had no {date_key!r}, or an empty one, as predict read "
                     "it (summary.json's cartridge_info; given since: rerun predict, which "
                     "keeps the counts)"
                     + (f"; it has {close[0]!r}: --date-key {close[0]}?" if close else ""))
    patient = info.get(patient_key) if patient_key else None
    near = {"patient": _near_key(patient_key, info) if patient_key and patient is None
            else None,
            "date": None if date_key else next((str(k) for k in info if _reads_as_date(k)),
                                               None)}
    against = "n/a" if rate is None else "at or above" if rate >= cutoff else "below"
    fingerprint = summary.get("run_fingerprint")
    fingerprint = fingerprint if isinstance(fingerprint, dict) else {}
    panel = summary.get("panel") if isinstance(summary.get("panel"), dict) else {}
    model = summary.get("model") if isinstance(summary.get("model"), dict) else {}
    shown_state = state.get("state")
    if shown_state == "signed off" and not signed:  # a decision or record moved on since
        shown_state = "sign-off stale"
    draw = Draw(draw=place, name=str(summary.get("sample_id") or folder.name),
                folder=str(folder), result_state=shown_state,
                status=summary.get("status"), figure="after review" if signed else "automatic",
                count=count, blood_volume_read_ml=volume, per_7_5_ml=rate,
                low=bounds[0] if bounds else None, high=bounds[1] if bounds else None,
                cutoff=cutoff, against_cutoff=against,
                interval_spans_cutoff=None if bounds is None else
                bool(bounds[0] < cutoff <= bounds[1]),
                drawn_at=None if drawn_at is None else str(drawn_at),
                patient=None if patient is None else typed_id(str(patient)),
                cartridge_id=summary.get("cartridge_id"),
                pixel_size_um=panel.get("pixel_size_um"), scanner=scanner_text(summary),
                network_sha256=fingerprint.get("model_sha256"),
                model=Path(str(model["path"])).name if model.get("path") else None, notes=notes,
                keys_near={what: key for what, key in near.items() if key},
                near_patient=None if near["patient"] is None or info.get(near["patient"]) is None
                else str(info[near["patient"]]))
    return draw, fingerprint


def _reads_as_date(key) -> bool:
    """Whether a cartridge.json key names a draw's date by its words (``draw_date``,
    ``DrawDate``, ``collected_on``; not ``updated_at``, ``date_of_birth``, ``collected_by``)."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key)).lower()
    if re.search(r"birth|dob|born", words):  # the patient's, never the draw's
        return False
    return bool(re.search(r"(^|[_\W])date($|[_\W])|drawn|collected_(on|at|date|time)",
                          words))


def _near_key(key: str, info: dict) -> str | None:
    """A key of ``info`` that is ``key`` mistyped (``patientid``, ``PatientID`` for
    ``patient_id``): letters and digits alike but for one or two; None if none is."""
    def bare(text):
        return re.sub(r"[^0-9a-z]", "", str(text).lower())

    near = [k for k in info if str(k) != key and
            difflib.SequenceMatcher(None, bare(k), bare(key)).ratio() >= 0.85]
    return str(near[0]) if near else None


def compare_draws(folders, class_name: str = "ctc", cutoff: float = DEFAULT_CUTOFF,
                  date_key: str | None = None,
                  signoff_check: Callable[[Path], bool] | None = None,
                  patient_key: str | None = PATIENT_KEY) -> tuple[list[Draw], list[str]]:
    """The draws of ``folders`` (in draw order), each compared with the one before and the
    first (:func:`rate_change_p`), and what makes them not comparable (each setting that
    differs between the runs that counted them, with how: :func:`.how_settings_differ`;
    ``signoff_check``: as :func:`read_draw`'s). Draws naming other patients (cartridge.json's
    ``patient_key``) are refused."""
    read = [read_draw(f, i + 1, class_name, cutoff, date_key, signoff_check, patient_key)
            for i, f in enumerate(folders)]
    draws = [d for d, _ in read]
    check_one_patient(draws, patient_key)
    seen: dict[str, Draw] = {}
    for draw in draws:  # a rerun of one scan (a volume corrected) is no second draw
        first = seen.setdefault(draw.cartridge_id, draw) if draw.cartridge_id else draw
        if first is not draw:
            raise InputError(f"draws {first.draw} and {draw.draw} ({first.folder}, "
                             f"{draw.folder}) are one scan (cartridge_id "
                             f"{draw.cartridge_id}): one scan is one blood draw; give each "
                             "draw's output once", draw.folder)
    _refuse_shared_frames(draws)
    for i, draw in enumerate(draws[1:], start=1):
        _compare(draw, draws[i - 1], "change_from_previous", "p_from_previous")
        _compare(draw, draws[0], "change_from_first", "p_from_first")
    say_dates_out_of_order(draws)
    differ = settings_that_differ([f for _, f in read])
    how = how_settings_differ({f"draw {d.draw}": f for d, f in read},
                              {f"draw {d.draw}": d.model for d in draws if d.model})
    # A scanner by its pixel size and its channels' range: a 12-bit and a 16-bit scanner at
    # one pixel size were read as one.
    scanners = sorted({d.scanner for d in draws if d.scanner is not None})
    for draw in draws:  # said in every row too: a table travels without the console
        draw.not_comparable = ", ".join(differ)
        if len(scanners) > 1:
            draw.notes.append(OTHER_SCANNERS.format("; ".join(scanners)))
    return draws, how


def _refuse_shared_frames(draws: list[Draw]) -> None:
    """Refuse two draws that hold the same frames (summary.json's ``frame_digests``): a scan
    and a copy of it missing a frame have two cartridge ids but are one blood draw (they read
    as a change, "x0.75, p = 1")."""
    owner: dict[str, Draw] = {}
    for draw in draws:
        try:
            summary = json.loads((Path(draw.folder) / SUMMARY_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # read already by read_draw: its own error said there
            continue
        for digest in (summary.get("frame_digests") or {}).values():
            sha = digest.get("sha256") if isinstance(digest, dict) else digest
            first = owner.setdefault(str(sha), draw) if sha else draw
            if first is not draw:
                raise InputError(f"draws {first.draw} and {draw.draw} ({first.folder}, "
                                 f"{draw.folder}) hold the same frames (a scan and a copy of "
                                 "it): one scan is one blood draw; give each draw's output "
                                 "once", draw.folder)


def check_one_patient(draws: list[Draw], patient_key: str | None) -> None:
    """Refuse draws whose cartridge.json name other patients: a change from one patient's
    baseline to another's draw is no response."""
    # One patient's id as typed at two desks: spaces round it, an accent composed on one
    # system and decomposed on another (a name copied through macOS) are the same patient.
    same = typed_id
    named: dict[str, list[int]] = {}
    shown: dict[str, str] = {}
    for draw in draws:
        if draw.patient is not None:
            key = same(draw.patient)
            named.setdefault(key, []).append(draw.draw)
            shown.setdefault(key, draw.patient)
    # A draw naming its patient under a key like the others' (PatientID beside patient_id)
    # is checked by it: another patient's there was compared as one patient's fall.
    other = next((d for d in draws if d.patient is None and d.near_patient is not None
                  and named and same(d.near_patient) not in named), None)
    if other is not None:
        raise InputError(f"draw {other.draw}'s cartridge.json names no patient by "
                         f"{patient_key!r} but {other.near_patient!r} by "
                         f"{other.keys_near['patient']!r}, where the other draws name "
                         f"{', '.join(map(repr, shown.values()))}: `ctcnet draws` compares one "
                         "patient's draws; give each patient's apart, or correct its "
                         "cartridge.json")
    if len(named) > 1:
        which = "; ".join(f"{shown[key]!r} in draw(s) {', '.join(map(str, places))}"
                          for key, places in named.items())
        raise InputError(f"the draws name {len(named)} patients ({patient_key}: {which}): "
                         "`ctcnet draws` compares one patient's draws; give each patient's "
                         "apart")
    if named:  # the others' patient unchecked, said where a table travels without the console
        for draw in draws:
            if draw.patient is None and draw.near_patient is not None:
                draw.notes.append(f"its cartridge.json names the patient by "
                                  f"{draw.keys_near['patient']!r}, not {patient_key!r}: the "
                                  "same patient as the other draws")
            elif draw.patient is None:
                draw.notes.append(f"its cartridge.json names no patient ({patient_key}), "
                                  f"the other draws {next(iter(named))}: not checked to be "
                                  "the same patient's")
    elif len(draws) > 1 and patient_key:  # none named: every change unchecked
        near = next((d for d in draws if "patient" in d.keys_near), None)
        if near is not None:  # a key mistyped turns the check off: refused, not a note
            key = near.keys_near["patient"]
            raise InputError(f"no draw's cartridge.json names a patient by {patient_key!r}; "
                             f"draw {near.draw}'s has {key!r}: --patient-key {key}? "
                             "(--patient-key '' compares the draws unchecked)")
        for draw in draws[1:]:
            draw.notes.append(f"no draw's cartridge.json names a patient ({patient_key}): not "
                              "checked to be the same patient's as the draws before it")


# What a series of draws from other scanners is said with (a row's note; the console's once).
OTHER_SCANNERS = ("the draws were scanned at other pixel sizes or ranges of counts ({}): other "
                  "scanners, whose counts a lab has validated against each other?")


def _compare(draw: Draw, ref: Draw, ratio_key: str, p_key: str) -> None:
    """The change of ``draw``'s rate from ``ref``'s: their ratio (None from a rate of 0) and
    the exact test's p-value to four significant figures (None where a count or volume is
    missing, or where neither draw holds a cell: nothing to test, said in a note)."""
    which = "previous" if ratio_key == "change_from_previous" else "first"
    said = which == "previous" or draw.draw > 2  # (the first is the previous of draw 2)
    if None in (draw.count, ref.count, draw.blood_volume_read_ml, ref.blood_volume_read_ml):
        if draw.count is not None and ref.count is None and said:
            draw.notes.append(f"the {which} draw ({ref.draw}) has no result: no change from "
                              "it to test")
        return
    if draw.count == ref.count == 0:
        if said:
            draw.notes.append(f"none counted in this draw or the {which}: no change to test")
        return
    if ref.per_7_5_ml:
        setattr(draw, ratio_key, round(draw.per_7_5_ml / ref.per_7_5_ml, 4))
    # Significant figures, not decimals: a p of 4.6e-07 rounded to 6 places read p = 0.
    p = rate_change_p(ref.count, ref.blood_volume_read_ml, draw.count, draw.blood_volume_read_ml)
    # A p past a float's reach (thousands of cells against none) is written as its bound.
    setattr(draw, p_key, float(f"{max(p, P_FLOOR):.4g}"))
