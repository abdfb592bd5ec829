"""A spike-in validation of a run's counts: called against spiked CTCs per sample, the way a
lab validates a CTC assay on blood it spiked with a known number of cancer cells (pure numpy
and pandas on predict's outputs; ``ctcnet evaluate RESULTS --expected FILE`` writes it).

The lab states per sample how many cells it spiked into the tube (``expected.csv``:
``sample_id,spiked``; 0 for a blank; an optional ``level`` column groups tubes whose exact
counts differ into one spike level). Each sample's expected rate per 7.5 mL is that number
over the tube's stated blood volume (``cartridge.json``), and the called rate is predict's
(``per_7_5_ml``, of the blood read: a partial sample's rate is its frames' estimate), and after
review the reviewer's, where a person decided. From them:

* per sample: recovery (called over expected rate), beside its status and sign-off;
* per spike level (the ``level`` column's, else the spiked number's): samples, mean expected
  and called rates, the called rate's SD and CV, mean recovery, and the recovery pooled over
  its tubes with its exact 95 % interval (:mod:`ctcnet.evaluation.recovery`);
* the tubes whose recovery is implausible or off their level's others: a swapped or
  mislabelled tube (:func:`ctcnet.evaluation.recovery.suspect_tubes`);
* linearity: the least-squares line of called against expected rate over the spiked samples
  (slope with its 95 % interval, intercept, R^2);
* these figures again of the counts after review, where every sample's review is final
  (signed off, the sign-off holding);
* limit of blank (CLSI EP17, non-parametric): the blanks' called rates at rank
  0.5 + 0.95 B of the B blanks in order (the highest one when B < 20, said so; the blanks
  that carried calls named), and limit of
  detection (parametric): the limit of blank plus 1.645 / (1 - 1/(4 (L - J))) times the
  pooled SD of the lowest spiked level's L results over its J = 1 level; EP17 asks for 60
  blanks and 60 low-level results a reagent lot, and the report says how many it had.

The spiked number itself is a draw: pipetting a few cells from a suspension is Poisson at
best, so a sample spiked with 5 holds 5 +- 2.2 cells; recovery at low levels spreads by that
alone, and the report gives each level's Poisson share of the CV beside the measured one.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ctcnet.core.provenance import software_text
from ctcnet.errors import InputError
from ctcnet.evaluation import recovery
from ctcnet.inference.model_records import model_file_of
from ctcnet.inference.run_entry import scan_pixel_size, scanner_text
from ctcnet.inference.run_table import others_of_scan
from ctcnet.inference.setting_differences import batch_settings
from ctcnet.inference.summary import signoff_holds

log = logging.getLogger(__name__)

# EP17's one-sided 95 % z.
Z95 = 1.645
# Fewer blanks than this give no rank at 0.95 between two of them: the highest is taken.
EP17_MIN_BLANKS = 20


def sample_rows(summaries: dict[str, dict], expected: pd.DataFrame, positive: str = "ctc",
                signoff_check: Callable[[str], bool] | None = None) -> pd.DataFrame:
    """A row per sample of ``expected`` that has a summary (predict's ``summary.json`` as
    parsed, by sample id): spiked, the expected and called rates per 7.5 mL of ``positive``
    (automatic; after review where a person decided), recoveries, status and sign-off.
    InputError naming the samples ``expected`` lists that the results lack. ``signoff_check``
    (by sample id): whether a sign-off holds as its record and decisions are now (summary.json's
    copy is as fresh as the last command that wrote it), handed in from above."""
    missing = [s for s in expected.index if s not in summaries]
    if missing:
        lower = {k.lower(): k for k in summaries}

        def held(sample: str) -> str:  # (case aside, or a slip of the keys: LI for L1)
            if sample.lower() in lower:
                return f" (results hold {lower[sample.lower()]!r})"
            near = difflib.get_close_matches(sample, list(summaries), n=1, cutoff=0.5)
            return f" ({near[0]!r} mistyped?)" if near else ""

        named = [s + held(s) for s in missing]
        raise InputError(f"{len(missing)} sample(s) of the expected counts have no predict "
                         f"output here: {', '.join(named[:10])}"
                         + (f", ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
                         + " (a study's nights: score the folder that holds them all)")
    _refuse_one_scan_twice({sample: summaries[sample] for sample in expected.index})
    rows = []
    reference = "reference" in expected  # another method's rate: taken as it is stated
    for sample, spiked in expected["reference" if reference else "spiked"].items():
        summary = summaries[sample]
        volume = float(summary.get("blood_volume_ml") or 0.0)
        expected_rate = spiked if reference else \
            spiked * 7.5 / volume if volume > 0 else math.nan
        called = (summary.get("per_7_5_ml") or {}).get(positive)
        reviewed = summary.get("reviewed") or {}
        signed = signoff_holds(summary) and (signoff_check is None or signoff_check(sample))
        complete = _review_complete(summary, signed)
        # Only a final review gives a figure after review (a sign-off gone stale, or decisions
        # not yet signed: none, as the tables say).
        after = ((reviewed.get("after_review_per_7_5_ml") or {}).get(positive)
                 if reviewed.get("reviewed") and complete else None)
        if complete and after is None:  # signed off with no decision: as called
            after = called
        rows.append({"sample_id": sample, "spiked": math.nan if reference else spiked,
                     "blood_volume_ml": volume,
                     # The blood the rate is of: a partial sample's frames read (its rate is
                     # their estimate for the tube), 0 for a failed one.
                     "blood_volume_read_ml": _number(summary.get("blood_volume_processed_ml")),
                     # The scan's scale and crowding: sites at 0.45 and 0.8 um/px pooled in
                     # one study read their touching cells as fewer events at the finer size.
                     "pixel_size_um": _number(scan_pixel_size(summary)),
                     # ... and its range of counts: a 12-bit and a 16-bit site at one size
                     "scanner": scanner_text(summary),
                     "events_per_mm2": _number(summary.get("events_per_mm2")),
                     "expected_per_7_5_ml": expected_rate,
                     "called_per_7_5_ml": _number(called),
                     "after_review_per_7_5_ml": _number(after),
                     "status": summary.get("status"),
                     # Why a sample is not ok, as its summary says (its problems, or
                     # the frames it could not read).
                     "problems": "; ".join([str(p) for p in summary.get("problems") or []]
                                           or [str(f.get("reason", f)) for f in
                                               summary.get("skipped_frames") or []]),
                     "signed_off": signed,
                     "review_complete": complete,
                     # Decisions made (a review under way or gone stale): not in a figure
                     # until signed off, which the console says.
                     "review_decisions": int(reviewed.get("reviewed") or 0),
                     # What made the counts: a study pools one model and one software.
                     "model_sha256": _model_sha256(summary),
                     "model_name": _model_name(summary),
                     "software": software_text(summary.get("software"),
                                               summary.get("ctcnet_version")),
                     # ... and one setting of what decides the calls (prior, guard, detection)
                     "settings": settings_digest(summary),
                     "blood_volume_stated": summary.get("blood_volume_stated") is not False})
    table = pd.DataFrame(rows)
    table["level"] = (expected["level"].to_numpy() if "level" in expected
                      else table["spiked"].map(lambda v: f"{v:g}"))
    for mode in ("called", "after_review"):
        with np.errstate(divide="ignore", invalid="ignore"):
            table[f"recovery_{mode}"] = np.where(
                table["expected_per_7_5_ml"] > 0,
                table[f"{mode}_per_7_5_ml"] / table["expected_per_7_5_ml"], np.nan)
    return table


def _review_complete(summary: dict, signed: bool) -> bool:
    """Whether a sample's counts after review are final: a person signed them off, and the
    sign-off holds (``signed``: as its record and decisions are now). An empty review list
    is no review: the page lists every CTC and cluster call and a quality-control sample
    beside it, and a sample nobody opened read "reviewed" with the automatic count as its
    figure after review. Candidates a sign-off left undecided are its signer's to answer for
    (the sign-off records how many)."""
    if summary.get("status") == "failed":  # no frame read: no count to review
        return False
    return signed


def _model_name(summary: dict) -> str | None:
    """The model file's name a summary gives (a cartridge's ``model`` record's path)."""
    path = model_file_of(summary)[0]
    return Path(str(path)).name if path else None


def _model_sha256(summary: dict) -> str | None:
    """The model file a summary names (a cartridge's ``model`` record; a crop set's
    ``model_sha256`` beside its path)."""
    return model_file_of(summary)[1]


def made_by_several(rows: pd.DataFrame) -> list[str]:
    """What differs between the samples' makers (``model`` files, ``software``), each maker
    with its samples ("model (2 different: ctcnet-default.onnx: B1, L1; ctcnet-core3.onnx:
    B4)"): a study's recovery and linearity pooled over two models or versions are no one
    assay's."""
    out = []
    for column, what, shown in (("model_sha256", "model", "model_name"),
                                ("software", "software", "software"),
                                ("settings", "setting of the run (prior, guard, detection: "
                                 "summary.json's run_fingerprint)", "settings"),
                                ("scanner", "scanner (pixel size, range of counts)",
                                 "scanner")):
        if column not in rows or rows[column].nunique(dropna=False) < 2:
            continue
        # A model by its file's name, else its digest's first 12 characters; two files of
        # one name (a model replaced in place) by their name and digest.
        digest = rows[column].astype(str).str[:12]
        names = (rows[shown] if shown in rows else rows[column]).fillna(digest)
        if shown in rows and names.nunique() < rows[column].nunique(dropna=False):
            names = names + " (" + digest + ")"
        makers = [f"{names[g.index[0]]}: {', '.join(g['sample_id'].astype(str))}"
                  for _, g in rows.groupby(rows[column].fillna(""), sort=False)]
        out.append(f"{what} ({len(makers)} different: {'; '.join(makers)})")
    return out


def settings_digest(summary: dict) -> str | None:
    """The first 12 hex digits of a digest of the batch settings that decide a run's calls
    beside its model (``run_fingerprint``'s: prior, guard, detection, edge cut...,
    :func:`.setting_differences.batch_settings`); None where the summary records none (an
    earlier ctcnet's, a crop set's)."""
    fingerprint = summary.get("run_fingerprint")
    if not isinstance(fingerprint, dict):
        return None
    # The batch's settings alone (each sample's input and panel differ; the model and the
    # software are columns of their own).
    settings = {k: v for k, v in batch_settings(fingerprint).items() if k != "model_sha256"}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()
                          ).hexdigest()[:12]


def _refuse_one_scan_twice(summaries: dict[str, dict]) -> None:
    """Refuse samples of the study that are one scan (the same frames run under two sample
    ids, ``cartridge_id`` alike): scored as two tubes, a precision study read the same cells
    twice (a CV of 0) and a recovery counted them twice."""
    items = [{"name": sample, "cartridge_id": summary.get("cartridge_id")}
             for sample, summary in summaries.items()]
    for item, others in zip(items, others_of_scan(items)):
        if others:
            raise InputError(f"samples {' and '.join([item['name'], *others])} are one scan "
                             f"(cartridge_id {item['cartridge_id']}: the same frames under two "
                             "sample ids): one scan is one tube; list one of them in the "
                             "expected counts")


def _number(value) -> float:
    return math.nan if value is None else float(value)


def limit_of_blank(blank_rates: np.ndarray) -> dict:
    """EP17's non-parametric limit of blank of the blanks' called rates (see the module)."""
    rates = np.sort(np.asarray(blank_rates, np.float64))
    n = int(rates.size)
    if not n:
        return {"value": None, "blanks": 0, "method": "no blank (spiked 0) among the samples"}
    if n < EP17_MIN_BLANKS:
        return {"value": float(rates[-1]), "blanks": n,
                "method": f"the highest of {n} blanks: EP17's rank 0.5 + 0.95 B needs "
                          f"{EP17_MIN_BLANKS} or more, and it asks for 60"}
    rank = 0.5 + 0.95 * n  # 1-based, between two ordered results
    low = int(math.floor(rank))
    value = rates[low - 1] + (rank - low) * (rates[min(low, n - 1)] - rates[low - 1])
    return {"value": float(value), "blanks": n,
            "method": "EP17 non-parametric: rank 0.5 + 0.95 B of the ordered blanks"}


def poisson_floor(lob: float, tube_ml: float = 7.5) -> float:
    """The least rate per 7.5 mL at which a tube of ``tube_ml`` holds more cells than the
    limit of blank ``lob`` allows in 95 % of draws: the Poisson draw of the cells alone, the
    assay perfect (``lob`` 0: at least one cell, 3.0 per tube; the exact chi-square bound,
    P(X <= k) = 0.05 at lambda = chi2(0.95, 2 (k + 1)) / 2)."""
    from scipy.stats import chi2

    allowed = math.floor(lob * tube_ml / 7.5 + 1e-9)  # cells a blank may read
    return float(chi2.ppf(0.95, 2 * (allowed + 1)) / 2.0) * 7.5 / tube_ml


def limit_of_detection(lob: float | None, low_rates: np.ndarray,
                       tube_ml: float | Sequence[float] = 7.5, suspect: Sequence[str] = (),
                       levels_given: bool = False) -> dict:
    """EP17's parametric limit of detection from the lowest spiked level's called rates, never
    under the counts' own Poisson floor (:func:`poisson_floor` of each of its tubes' volumes,
    ``tube_ml``, the highest: the floor of a tube of the median volume lay under every real
    tube's, which then exceeded the limit of blank in 84 % of draws, not 95 %): the
    parametric figure takes the results as Gaussian, which counts of one to three cells are
    not (1.88 per 7.5 mL read as a limit where a tube at that level holds no cell 15 % of the
    time). ``suspect``: the level's tubes that look mislabelled, named in its warning;
    ``levels_given``: as :func:`_lod_missing` reads it."""
    rates = np.asarray(low_rates, np.float64)
    n = int(rates.size)
    if lob is None or n < 2:
        return {"value": None, "results": n, "method": _lod_missing(lob is None, n, levels_given)}
    c_p = Z95 / (1.0 - 1.0 / (4.0 * (n - 1)))
    sd = float(rates.std(ddof=1))
    # EP17 verifies a limit of detection at a level whose results exceed the limit of blank
    # 95 % of the time or more; at a level under it the SD-based figure is no such limit.
    over = int((rates > lob).sum())
    # A tube of another level labelled as this one spreads the level as no assay does: its
    # label is checked before a higher level is spiked.
    remedy = (f"check the label{'s' if len(suspect) > 1 else ''} of {', '.join(suspect)}, "
              "whose recovery is out of line, before spiking a higher low level"
              if suspect else "spike a higher low level")
    unverified = ({"warning": f"{over} of {n} results at the lowest level exceed the limit "
                              "of blank, where EP17 asks 95 % or more: that level is under "
                              "the limit of detection, which it does not establish "
                              f"({remedy})"} if over < 0.95 * n else {})
    volumes = [tube_ml] if isinstance(tube_ml, (int, float)) else list(tube_ml) or [7.5]
    parametric = float(lob + c_p * sd)
    floor = max(poisson_floor(lob, float(v)) for v in volumes)
    return {"value": max(parametric, floor), "results": n, "sd": sd, "c_p": c_p,
            "parametric": parametric, "poisson_floor": floor,
            "results_over_limit_of_blank": over,
            "method": "EP17 parametric: LoB + c_p x SD of the lowest spiked level"
                      + ("; EP17 asks for 60 results" if n < 60 else "")
                      + (f"; raised to the Poisson floor of the counts ({limit_text(floor)}: "
                         "a tube under it holds no more cells than the limit of blank in over "
                         "5 % of draws, whatever the assay)" if floor > parametric else ""),
            **unverified}


def limit_text(value: float) -> str:
    """A limit per 7.5 mL in words: two decimals rounded up, never under the limit (2.9957
    reads 3.00, where a rate, cut so as not to reach a cut-off, reads 2.99)."""
    from decimal import ROUND_CEILING, Decimal

    # (the float's shortest text, not its binary expansion: 2.2 is 2.2000000000000002 there,
    # which read 2.21)
    return str(Decimal(repr(float(value))).quantize(Decimal("0.01"), rounding=ROUND_CEILING))


def _lod_missing(no_blank: bool, results: int, levels_given: bool = False) -> str:
    """What a limit of detection lacks, and only that: a limit of blank (no blank among the
    samples) or a second result at the lowest spiked level (``levels_given``: the tubes were
    grouped into levels by the expected file's ``level`` column already)."""
    needs = (["a limit of blank (no blank, spiked 0, among the samples)"] if no_blank else [])
    if results == 0:
        needs.append("a spiked level (only blanks were given)")
    elif results < 2:
        needs.append(f"2 or more results at the lowest spiked level, which has {results} "
                     + ("(spike another tube at that level)" if levels_given else
                        "(tubes of exact counts: group them with a level column)"))
    return "needs " + " and ".join(needs)


def linearity(expected: np.ndarray, called: np.ndarray) -> dict | None:
    """Least-squares line of called on expected rates, slope with its 95 % interval."""
    from scipy import stats

    ok = np.isfinite(expected) & np.isfinite(called)
    x, y = expected[ok], called[ok]
    if x.size < 3 or np.ptp(x) == 0:
        return None
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.975, x.size - 2) * fit.stderr
    return {"samples": int(x.size), "slope": float(fit.slope),
            "slope_ci95": [float(fit.slope - half), float(fit.slope + half)],
            "intercept": float(fit.intercept), "r2": float(fit.rvalue ** 2)}


def spike_report(rows: pd.DataFrame, positive: str = "ctc",
                 level_column: bool = False) -> dict:
    """Recovery per level, linearity, limit of blank and of detection (see the module), of the
    automatic counts and, where every sample was reviewed, of the counts after review
    (``after_review``). A sample without a called rate (a run that failed) is named and left
    out of every figure. ``level_column``: the levels are the lab's (its tubes counted
    exactly), which the Poisson CV is read against."""
    header, rows = report_header(rows, positive)
    complete = rows["review_complete"].astype(bool)
    return {
        **header, "level_column": bool(level_column), "recovery_method": recovery.METHOD,
        **_figures(rows, "called", level_column),
        # The same figures of the counts after review, where every sample's review is final.
        "after_review": (_figures(rows, "after_review", level_column)
                         if len(rows) and complete.all() else None)}


def report_header(rows: pd.DataFrame, positive: str = "ctc") -> tuple[dict, pd.DataFrame]:
    """What a report of :func:`sample_rows` says first (the samples, those without a rate,
    those not ok, their review, what made their counts), and the rows with a called rate,
    which its figures are of."""
    rated = rows["called_per_7_5_ml"].notna()
    without = rows.loc[~rated, "sample_id"].astype(str).tolist()
    rows = rows[rated]
    complete = rows["review_complete"].astype(bool)
    return {
        "class": positive, "samples": int(len(rows)), "samples_without_rate": without,
        # Said where the samples' counts were made by several models or software versions.
        "made_by_several": made_by_several(rows),
        "partial_samples": int((rows["status"] != "ok").sum()),
        "partial_problems": {str(r.sample_id): str(r.problems) for r in
                             rows[rows["status"] != "ok"].itertuples()},
        "reviewed_samples": int(complete.sum()),
        # Those whose review is not final (not signed off, or candidates left undecided).
        "samples_not_reviewed": rows.loc[~complete, "sample_id"].astype(str).tolist(),
        "signed_off_samples": int(rows["signed_off"].fillna(False).astype(bool).sum()),
        # Those with review decisions whose figures are still the automatic counts.
        "samples_decided_not_final": (
            rows.loc[~complete & (rows["review_decisions"] > 0), "sample_id"].astype(str)
            .tolist() if "review_decisions" in rows else []),
        # Rates per 7.5 mL of a tube whose volume cartridge.json did not state (7.5 assumed).
        "blood_volume_assumed": (rows.loc[~rows["blood_volume_stated"].astype(bool), "sample_id"]
                                 .astype(str).tolist() if "blood_volume_stated" in rows
                                 else [])}, rows


def _figures(rows: pd.DataFrame, mode: str, level_column: bool = False) -> dict:
    """Levels, linearity and limits of one reading of the rates (``called`` or
    ``after_review``: the columns ``<mode>_per_7_5_ml`` and ``recovery_<mode>``), with the
    tubes whose recovery is out of line with their level's and the blanks that carried calls."""
    rate, recovery_column = f"{mode}_per_7_5_ml", f"recovery_{mode}"
    found, spiked_read = recovery.tube_cells(rows, mode)
    levels, suspect = [], []
    order = rows.groupby("level")["spiked"].mean().sort_values(kind="stable")
    for level, spiked_mean in order.items():
        mask = (rows["level"] == level).to_numpy()
        group = rows[mask]
        called = group[rate].to_numpy(np.float64)
        mean = float(called.mean()) if len(called) else None
        sd = float(called.std(ddof=1)) if len(called) > 1 else None
        pooled = recovery.pooled_recovery(found[mask], spiked_read[mask])
        if spiked_mean > 0:
            suspect += recovery.suspect_tubes(group["sample_id"], found[mask],
                                              spiked_read[mask], str(level))
        levels.append({
            "level": str(level), "spiked": float(spiked_mean), "samples": int(len(group)),
            # Beside the called rate, the rate spiked (cells over each tube's volume).
            "mean_expected_per_7_5_ml": float(group["expected_per_7_5_ml"].mean()),
            "mean_called_per_7_5_ml": mean,
            "sd": sd, "cv": sd / mean if sd is not None and mean else None,
            # The CV the spike's own Poisson draw gives the level, whatever the assay does
            # (of the cells in the blood read: a tube read in part holds fewer).
            "poisson_cv": _poisson_cv(spiked_read[mask]) if spiked_mean > 0 else None,
            "mean_recovery": (float(np.nanmean(group[recovery_column]))
                              if spiked_mean > 0 and group[recovery_column].notna().any()
                              else None),
            # Pooled: the level's cells found over its cells spiked, with its exact interval.
            **pooled,
            "spiked_without_calls": recovery.spiked_without_calls(
                group["sample_id"], found[mask], spiked_read[mask])})
    spiked = rows[rows["spiked"] > 0]
    blank = (rows["spiked"] == 0).to_numpy()
    lob = {**limit_of_blank(rows.loc[blank, rate].to_numpy()),
           "blanks_with_calls": recovery.blanks_with_calls(
               rows.loc[blank, "sample_id"], found[blank], rows.loc[blank, rate].to_numpy())}
    lowest = next((lv for lv in levels if lv["spiked"] > 0), None)
    low = (spiked.loc[spiked["level"] == lowest["level"], rate].to_numpy()
           if lowest is not None else np.zeros(0))
    low_suspect = [sample for t in suspect for sample in t["samples"]
                   if lowest is not None and t["level"] == lowest["level"]]
    return {"levels": levels,
            "linearity": linearity(spiked["expected_per_7_5_ml"].to_numpy(np.float64),
                                   spiked[rate].to_numpy(np.float64)),
            "limit_of_blank_per_7_5_ml": lob,
            "limit_of_detection_per_7_5_ml": {
                **limit_of_detection(lob["value"], low, _tube_ml(spiked, lowest), low_suspect,
                                     levels_given=level_column),
                "level": None if lowest is None else lowest["level"],
                "level_spiked": None if lowest is None else lowest["spiked"]},
            "suspect_tubes": suspect}


def _poisson_cv(cells_read: np.ndarray) -> float | None:
    """1 / sqrt of the mean cells spiked into the blood read (None without any)."""
    mean = float(np.mean(cells_read)) if len(cells_read) else 0.0
    return 1.0 / math.sqrt(mean) if mean > 0 else None


def _tube_ml(spiked: pd.DataFrame, lowest: dict | None) -> list[float]:
    """The blood the lowest level's tubes were read in (7.5 mL where none is stated): a tube
    read in part holds its cells in the blood read, so its floor is that blood's (a half-read
    tube's floor at its whole volume held no cell 22 % of the time, not 5 %)."""
    if lowest is None or "blood_volume_ml" not in spiked:
        return [7.5]
    level = spiked[spiked["level"] == lowest["level"]]
    volumes = level["blood_volume_ml"].to_numpy(float)
    if "blood_volume_read_ml" in level:
        read = level["blood_volume_read_ml"].to_numpy(float)
        volumes = np.where(np.isfinite(read) & (read > 0), read, volumes)
    volumes = volumes[np.isfinite(volumes) & (volumes > 0)]
    return volumes.tolist() if len(volumes) else [7.5]


def rows_csv(rows: pd.DataFrame, report: dict | None = None) -> str:
    """The per-sample table as CSV text; with its ``report`` (:func:`spike_report`'s), each
    reading's cells found and recovery interval per sample, and its level's pooled recovery
    and interval (empty where that reading has no figures: not every sample reviewed)."""
    table = rows.copy()
    for mode in ("called", "after_review"):
        found, spiked = recovery.tube_cells(table, mode)
        ends = np.array([recovery.recovery_interval(f, s) or [math.nan] * 2
                         for f, s in zip(found, spiked)], np.float64).reshape(-1, 2)
        at = table.columns.get_loc(f"recovery_{mode}")
        table.insert(at, f"cells_{mode}", found)
        table.insert(at + 2, f"recovery_{mode}_low", ends[:, 0])
        table.insert(at + 3, f"recovery_{mode}_high", ends[:, 1])
        if report is not None:
            reading = report if mode == "called" else (report.get("after_review") or {})
            pooled = _level_recovery(reading, table["level"])
            for suffix, values in zip(("", "_low", "_high"), pooled):
                table[f"level_recovery_{mode}{suffix}"] = values
    text = io.StringIO()
    table.to_csv(text, index=False, float_format="%.6g")
    return text.getvalue()


def _level_recovery(reading: dict, levels: pd.Series) -> tuple[list, list, list]:
    """Per sample, its level's pooled recovery and interval ends in one reading of a report
    (NaN where the reading has none)."""
    by_level = {lv["level"]: lv for lv in reading.get("levels", ())}
    out: tuple[list, list, list] = ([], [], [])
    for name in levels.astype(str):
        level = by_level.get(name) or {}
        ends = level.get("recovery_ci95") or [None, None]
        for column, value in zip(out, (level.get("recovery"), *ends)):
            column.append(_number(value))
    return out
