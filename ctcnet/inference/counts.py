"""The one tally of a run's events, and of what a reviewer made of them.

A sample's counts are read in several places: ``summary.json`` (predict), ``index.html`` (the
static report), the review page (``ctcnet.review_server.server``) and cartridge evaluation
(``ctcnet.evaluation.counts``). They all come from :func:`count_events`, so a class count, the
calls the marker guard held apart and the per-7.5 mL figures cannot disagree between them:

* ``counted``: calls that enter the automatic count (the guard passed them:
  ``ctcnet.inference.guard.counted``);
* ``held``: calls the guard held for review (a non-empty ``guard`` column), counted apart;
* ``review``: events of each call sent to a person (guard-held or below the review
  threshold); ``confident``: the others;
* ``per_7_5_ml``: ``counted`` of each reported class per 7.5 mL of the blood volume actually
  read (``summary.json``'s ``blood_volume_processed_ml``: the frames processed), None when no
  blood was read;
* ``per_7_5_ml_interval``: the blood draw's 95 % interval of each of those rates (an exact
  Poisson interval of the count, scaled alike): what sampling one tube alone leaves
  uncertain, not the calls.

:func:`count_reviewed` is the same for a reviewer's decisions (``review.csv`` matched to the
run by ``ctcnet.review.decisions``): the confirmed count per class, and the count after review
(the automatic count with every decision applied). The records need numpy only (``summary.json``
reads them: :class:`ctcnet.inference.summary.RunSummary`); the builders read pandas tables.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import TYPE_CHECKING

import numpy as np

from ctcnet.core.json_text import known_fields

if TYPE_CHECKING:
    import pandas as pd

# A reviewer's call on an event that is not what the model said, class unknown.
REJECTED = "rejected"
PER_ML = 7.5  # the CellSearch tube: counts are reported per 7.5 mL of blood


def per_7_5_ml(count: int, volume_ml: float | None) -> float | None:
    """``count`` per 7.5 mL of ``volume_ml``; None when no blood was read (a failed sample:
    zero would read as a clean negative)."""
    if volume_ml is None or not volume_ml > 0:
        return None
    # To 9 decimals, far below any count's meaning: the volume read is a share of the tube
    # in floating point (5.4 mL, 5 of 6 frames: 4.500000000000001), and 3 CTCs in it read
    # 4.999999999999999 per 7.5 mL, below a cut-off of 5 in every table and test.
    return round(count * PER_ML / float(volume_ml), 9)


def rate_interval(count: int, volume_ml: float | None) -> list[float] | None:
    """The blood draw's 95 % interval of ``count`` per 7.5 mL of ``volume_ml``
    (:func:`poisson_interval`, scaled as the rate is); None when no blood was read."""
    scale = per_7_5_ml(1, volume_ml)
    if scale is None:
        return None
    # Rounded outward at four decimals, as the tables round it at two: rounded to nearest
    # first, 1.339998 read 1.3400, then 1.34, a little narrower than the interval.
    low, high = poisson_interval(int(count))
    return list(interval_outward(low * scale, high * scale, "0.0001"))


# The blood-draw interval's level: a count of rare cells in one tube is a Poisson draw of the
# patient's blood, whatever the classifier does.
INTERVAL_LEVEL = 0.95


@functools.lru_cache(maxsize=4096)  # every tally's dict has it, several times a decision
def poisson_interval(count: int, level: float = INTERVAL_LEVEL) -> tuple[float, float]:
    """The exact (Garwood) two-sided interval of a Poisson mean from one observed ``count``:
    the means under which seeing ``count`` or more (lower end), or ``count`` or fewer (upper
    end), has probability (1 - level) / 2. Found by bisection on the Poisson sums (standard
    library only: summary.json reads it where scipy is not installed)."""
    tail = (1.0 - level) / 2.0

    def at_most(k: int, mean: float) -> float:  # P(X <= k) for X ~ Poisson(mean)
        if mean == 0:
            return 1.0
        log_term, log_mean, total = -mean, math.log(mean), 0.0
        for i in range(k + 1):
            if i:
                log_term += log_mean - math.log(i)
            total += math.exp(log_term)
        return min(total, 1.0)

    def solve(k: int, want: float) -> float:  # the mean where P(X <= k) = want (decreasing)
        low, high = 0.0, max(10.0, 2.0 * k + 20.0 * math.sqrt(k + 1.0))
        for _ in range(100):
            mid = (low + high) / 2
            if at_most(k, mid) > want:
                low = mid
            else:
                high = mid
        return (low + high) / 2

    lower = 0.0 if count == 0 else solve(count - 1, 1.0 - tail)
    return lower, solve(count, tail)


def per_volume_text(value: float) -> str:
    """A per-7.5 mL figure as every output prints it: two decimals, a tie rounded up (5.625 ->
    5.63), as the review page's ``toFixed(2)`` does; Python's own formatting rounds such a tie
    to even (5.62), so the report and the page would disagree. A figure just under a whole
    number is cut, not rounded up onto it (4.9967 -> 4.99, not 5.00): a cut-off such as
    CellSearch's 5 read from the tables must not flip (4 CTCs in 6.004 mL of blood)."""
    value = float(value)
    if not math.isfinite(value) or abs(value) >= 1e21:  # as toFixed: no fixed-point form
        return str(value)
    exact = Decimal(value)  # the float's exact value: no tie appears that is not there
    rounded = exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP, context=Context(prec=60))
    if rounded > exact and rounded == rounded.to_integral_value():
        rounded = exact.quantize(Decimal("0.01"), rounding=ROUND_DOWN, context=Context(prec=60))
    return str(rounded)


def per_volume_value(value: float) -> float:
    """A per-7.5 mL figure as a table holds it: :func:`per_volume_text`'s two decimals."""
    return float(per_volume_text(value))


def interval_at_two_decimals(low: float, high: float) -> tuple[float, float]:
    """A 95 % interval's ends at two decimals, rounded outward (the low end down, the high end
    up): rounded to nearest, 0.6187-9.0309 read 0.62-9.03, a little narrower than the interval
    it states."""
    return interval_outward(low, high, "0.01")


def interval_outward(low: float, high: float, step: str) -> tuple[float, float]:
    """An interval's ends rounded outward to ``step`` (``"0.01"``: two decimals)."""
    def outward(value: float, rounding: str) -> float:
        return float(Decimal(float(value)).quantize(Decimal(step), rounding=rounding,
                                                    context=Context(prec=60)))

    # A nanounit's slack: an end a float holds a hair off a step (2.2 is stored as
    # 2.2000000000000002) is not moved a whole step.
    return outward(low + 1e-9, ROUND_FLOOR), outward(high - 1e-9, ROUND_CEILING)


def interval_text(low: float, high: float, joint: str = " to ") -> str:
    """A 95 % interval as every output prints it: its ends at two decimals, rounded outward
    (:func:`interval_at_two_decimals`), as samples.csv holds them: ``0.61 to 9.04``."""
    ends = interval_at_two_decimals(low, high)
    return joint.join(f"{end:.2f}" for end in ends)


def _per_class(mask: np.ndarray, calls: np.ndarray, classes: Sequence[str]) -> dict[str, int]:
    return {name: int((mask & (calls == name)).sum()) for name in classes}


def _record_from_dict(cls, data: dict):
    """A frozen record from its JSON form: derived keys (per-7.5 mL) are left out, lists of
    class names become tuples again."""
    values = known_fields(cls, data)
    for key in ("classes", "reported"):
        values[key] = tuple(values.get(key, ()))
    return cls(**values)



def held_apart(held: dict, reported: Sequence[str]) -> tuple[dict, dict]:
    """The guard's calls by class (``held``, none of 0) split as a person reads them: those
    of a ``reported`` class, held out of its count, and the others, only flagged for a look
    (nothing held back: debris with a CTC's markers)."""
    held = {k: v for k, v in held.items() if v}
    return ({k: v for k, v in held.items() if k in reported},
            {k: v for k, v in held.items() if k not in reported})

@dataclass(frozen=True)
class Counts:
    """Per class: calls counted, calls the guard held apart, events sent to review."""

    classes: tuple[str, ...]          # the model's classes, in output order
    reported: tuple[str, ...]         # classes reported per 7.5 mL (ctc, cluster)
    counted: dict[str, int]
    held: dict[str, int]
    review: dict[str, int]
    confident: dict[str, int]         # calls not sent to review (no doubt, no flag)
    events: int
    review_events: int                # every event sent to review (no-call events too)
    failed: int                       # events whose model output was not finite: no call
    blood_volume_ml: float | None     # the blood actually read (0: no frame); None: unknown
    # Guard-held events per flag (an event with two flags is under both).
    held_by_flag: dict[str, int] = field(default_factory=dict)

    @property
    def held_total(self) -> int:
        """Calls the guard held apart, all classes together."""
        return sum(self.held.values())

    @property
    def per_7_5_ml(self) -> dict[str, float | None]:
        """The counted calls of each reported class per 7.5 mL of the blood read (None without a
        volume)."""
        return {name: per_7_5_ml(self.counted[name], self.blood_volume_ml)
                for name in self.reported}

    @property
    def per_7_5_ml_interval(self) -> dict[str, list[float] | None]:
        """Per reported class, the blood draw's 95 % interval of the rate per 7.5 mL
        (:func:`poisson_interval` of the counted calls, scaled as the rate is): the
        uncertainty of sampling one tube of blood alone, not of the calls (None without a
        volume)."""
        return {name: rate_interval(self.counted[name], self.blood_volume_ml)
                for name in self.reported}

    @property
    def review_span(self) -> dict[str, tuple[int, int]]:
        """Per reported class, where a review of the list can take its count: from the calls
        of the class on no review list (every listed one rejected) to those plus every event
        on the list found to be one (its held calls confirmed, every other listed event
        relabelled to it). A count of 5 may be a sure 5 or 1 sure and 15 in doubt."""
        return {name: (int(self.confident[name]),
                       int(self.counted[name] + self.held[name] + self.review_events
                           - self.review[name]))
                for name in self.reported}

    @property
    def review_span_per_7_5_ml(self) -> dict[str, list[float] | None]:
        """:attr:`review_span` per 7.5 mL of the blood read, as the rates are given (a 5 mL
        tube's 5 to 9 is 7.5 to 13.5: a cut-off is read on these); None without a volume."""
        return {name: (None if per_7_5_ml(low, self.blood_volume_ml) is None else
                       [per_7_5_ml(low, self.blood_volume_ml),
                        per_7_5_ml(high, self.blood_volume_ml)])
                for name, (low, high) in self.review_span.items()}

    def to_dict(self) -> dict:
        """The tally as plain data, with the derived totals and per-7.5 mL figures."""
        return {"classes": list(self.classes), "reported": list(self.reported),
                "counted": dict(self.counted), "held": dict(self.held),
                "review": dict(self.review), "confident": dict(self.confident),
                "events": self.events, "review_events": self.review_events,
                "failed": self.failed, "blood_volume_ml": self.blood_volume_ml,
                "held_by_flag": dict(self.held_by_flag), "held_total": self.held_total,
                "per_7_5_ml": self.per_7_5_ml,
                "per_7_5_ml_interval": self.per_7_5_ml_interval,
                "review_span": {k: list(v) for k, v in self.review_span.items()},
                "review_span_per_7_5_ml": self.review_span_per_7_5_ml}

    @classmethod
    def from_dict(cls, data: dict) -> Counts:
        """Read a tally back from :meth:`to_dict`'s output (derived fields are recomputed)."""
        return _record_from_dict(cls, data)


# A blood sample's events after enrichment are mostly leukocytes: a cartridge with CTC calls,
# or cluster calls, at a quarter of its leukocyte calls or more (and at least this many) is
# what a scan whose panel.json swaps CK and CD45 gives (every leukocyte reads CK+ CD45-), or CK
# and a platelet marker (every platelet on a cell reads as a CTC's partner: 63 clusters on 4
# frames, none said). A spike-in experiment's cartridge can look alike: the problem says so.
# Each kind is judged on its own: a reference cartridge rich in both (ctcnet verify's: 25 CTC
# and cluster calls against 25 leukocytes) is no swap.
IMPLAUSIBLE_CTC_SHARE = 0.25
IMPLAUSIBLE_CTC_MIN = 20


def implausible_marker_balance(tally: Counts, ctc_classes: Sequence[str] = ("ctc",),
                               at_training_prior: bool = False,
                               wbc_classes: Sequence[str] = ("wbc",)) -> str | None:
    """What to say when a cartridge's calls are not what blood looks like: as many CTCs (the
    calls of ``ctc_classes``: ``ctc``, and a lab's class checked as one, ``ctc_emt``; or the
    cluster classes, judged so on their own) as a quarter of its leukocytes, the sign of a
    channel-order mistake (None: nothing); or, for
    calls made ``at_training_prior`` (a model without a decision rule for cartridges, as
    ``ctcnet train`` makes one), first of that prior. ``wbc_classes``: the leukocyte classes
    (a lab's ``leukocyte``, checked as ``wbc``: named otherwise, it was never checked)."""
    kinds = [k for k in ctc_classes if k in tally.classes]
    leukocytes = [k for k in wbc_classes if k in tally.classes]
    if not kinds or not leukocytes:
        return None
    ctc = sum(tally.counted[k] + tally.held[k] for k in kinds)
    wbc = sum(tally.counted[k] + tally.held[k] for k in leukocytes)
    if ctc < IMPLAUSIBLE_CTC_MIN or ctc < IMPLAUSIBLE_CTC_SHARE * wbc:
        return None
    # The calls, held ones included: the counts a summary gives leave those out (418 counted
    # there beside 422 called here read as two figures of one thing).
    held = sum(tally.held[k] for k in [*kinds, *leukocytes])
    said = f"{ctc} events called {' or '.join(kinds)} against {wbc} called " \
        f"{' or '.join(leukocytes)}" + (
        f" ({held} of them held for review)" if held else "") + \
        f": more CTCs{' (alone or in clusters)' if 'cluster' in tally.classes else ''} " \
        "than blood holds beside its leukocytes"
    if at_training_prior:  # the likelier cause, said before a channel mistake
        return (f"{said}; the calls were made at the model's balanced training prior (it has "
                "no decision rule for cartridges), at which rare classes are called far more "
                "often: state the cartridge's prior with --prior (or fit a rule, "
                "scripts/fit_decision.py) and read the counts then; if they still read so, "
                # (not "channel order": those words put a report's counts in doubt, and
                # the prior is the likelier cause: result_state.channel_order_doubt)
                "check that panel.json lists the channels as the frames hold them (CK and "
                "CD45 swapped?)")
    return (f"{said}; check panel.json's channel order and the channel files' names (CK and "
            "CD45 swapped? the DNA stain and CK? CD45 and another marker, EpCAM? CK and a "
            "platelet or neutrophil marker, where clusters are many? metadata_check in "
            "summary.json says where the nuclei lie) "
            "before reading the counts (a spike-in experiment's cartridge can look alike: its "
            "order checked and right, its counts stand); with panel.json corrected, run this "
            "sample again alone with --overwrite (a rerun into the same folder refuses the "
            "other channel order)")


# One frame's channel files swapped (a technician's renaming, a frame re-exported in another
# order) hides under the cartridge's share: 28 CTC calls against 49 leukocytes on that frame
# (its truth 4 CTCs) took a cartridge's 18 CTCs to 39 while the whole stayed under a quarter.
# A frame is said where its CTC calls are at least this many and a quarter of its leukocyte
# calls, and more than the rest of the cartridge's share makes likely at this level (a
# binomial tail): CTCs are spread over a sample's frames as its leukocytes are, so a spike-in
# cartridge rich in CTCs on every frame is not such a frame.
IMPLAUSIBLE_FRAME_MIN = 10
IMPLAUSIBLE_FRAME_P = 1e-6
FRAMES_NAMED = 3


def implausible_frames(events: pd.DataFrame, ctc_classes: Sequence[str] = ("ctc",),
                       wbc_classes: Sequence[str] = ("wbc",)) -> str | None:
    """What to say of the frames whose CTC calls (``ctc_classes``, counted or held) stand out
    against their leukocyte calls (``wbc_classes``) as no other frame's do (None: none; or no
    ``frame_id``)."""
    # (scipy.special, not scipy.stats: the torch-free install's predict imports no stats)
    from scipy.special import bdtrc

    kinds = list(ctc_classes)
    if not len(events) or "frame_id" not in events or not kinds or not list(wbc_classes):
        return None  # (no leukocyte class: nothing to weigh the CTC calls against)
    calls = events["class"].astype(object).to_numpy()
    frames, which = np.unique(events["frame_id"].astype(str).to_numpy(), return_inverse=True)
    ctc = np.bincount(which, np.isin(calls, kinds), len(frames)).astype(int)
    wbc = np.bincount(which, np.isin(calls, list(wbc_classes)), len(frames)).astype(int)
    candidates = (ctc >= IMPLAUSIBLE_FRAME_MIN) & (ctc >= IMPLAUSIBLE_CTC_SHARE * wbc)
    said = []
    for i in np.flatnonzero(candidates):
        rest_ctc, rest_wbc = ctc.sum() - ctc[i], wbc.sum() - wbc[i]
        # The rest's share, kept off 0 (a cartridge with no other CTC call) by one of each.
        share = (rest_ctc + 1) / (rest_ctc + rest_wbc + 2)
        if bdtrc(ctc[i] - 1, ctc[i] + wbc[i], share) < IMPLAUSIBLE_FRAME_P:  # P(X >= ctc)
            said.append((frames[i], int(ctc[i]), int(wbc[i]), int(rest_ctc),
                         int(rest_wbc)))
    if not said:
        return None
    named = "; ".join(f"frame {f}: {c} called {' or '.join(kinds)} against {w} called "
                      f"{' or '.join(wbc_classes)} "
                      f"(the other frames {rc} against {rw})"
                      for f, c, w, rc, rw in said[:FRAMES_NAMED])
    more = f" and {len(said) - FRAMES_NAMED} more frames" if len(said) > FRAMES_NAMED else ""
    whose = "that frame's" if len(said) == 1 else "those frames'"
    return (f"{named}{more}: more CTCs than the rest of the sample makes likely; check "
            f"{whose} channel files (CK and CD45 swapped, or renamed?) and CD45's plane on "
            f"{'it' if len(said) == 1 else 'them'} (dark, its lamp or filter failed: "
            "leukocytes then lack the marker that tells them from CTCs) before reading the "
            "counts")


def count_events(events: pd.DataFrame, classes: Sequence[str], reported: Sequence[str],
                 blood_volume_ml: float | None) -> Counts:
    """The tally of an events table (``class``, ``review`` and, after the guard, ``guard``
    columns); ``blood_volume_ml``: the blood actually read (the frames processed)."""
    # The guard brings pandas and scipy: the builders need it, the records (numpy) do not.
    from ctcnet.inference.guard import FLAGS, counted

    n = len(events)
    calls = events["class"].astype(object).to_numpy() if n else np.zeros(0, object)
    review = events["review"].to_numpy(bool) if n else np.zeros(0, bool)
    kept = counted(events)
    flags = Counter(f for cell in (events["guard"][~kept] if "guard" in events else ())
                    for f in str(cell).split("+") if f)
    return Counts(
        classes=tuple(classes), reported=tuple(reported),
        counted=_per_class(kept, calls, classes), held=_per_class(~kept, calls, classes),
        review=_per_class(review, calls, classes),
        confident=_per_class(~review, calls, classes),
        events=int(n), review_events=int(review.sum()),
        failed=int((~np.isin(calls, list(classes))).sum()),
        blood_volume_ml=None if blood_volume_ml is None else float(blood_volume_ml),
        held_by_flag={f: flags[f] for f in [*FLAGS, *sorted(set(flags) - set(FLAGS))]
                      if flags[f]})


@dataclass(frozen=True)
class ReviewedCounts:
    """What a reviewer's decisions add up to, beside the model's :class:`Counts`.

    ``confirmed``: events whose reviewer call is the class (confirmed calls and events
    relabelled into it). ``after_review``: the automatic count with every decision applied (a
    decided event counts as its reviewer call, a rejected one nowhere; undecided events as the
    automatic count has them, so a guard-held call counts once a person confirms it).
    ``decided``: the model's calls of each class a person decided. ``unattached``: rows of
    review.csv that attach to no event of this run (never counted). ``updated``: when the
    latest decision was made or taken back (a take-back changes the counts too).
    """

    classes: tuple[str, ...]
    reported: tuple[str, ...]
    confirmed: dict[str, int]
    after_review: dict[str, int]
    decided: dict[str, int]
    reviewed: int
    rejected: int
    unattached: int
    blood_volume_ml: float | None
    updated: str | None = None

    @property
    def confirmed_per_7_5_ml(self) -> dict[str, float | None]:
        """The confirmed count of each reported class per 7.5 mL of the blood read."""
        return {n: per_7_5_ml(self.confirmed[n], self.blood_volume_ml) for n in self.reported}

    @property
    def after_review_per_7_5_ml(self) -> dict[str, float | None]:
        """The after-review count of each reported class per 7.5 mL of the blood read."""
        return {n: per_7_5_ml(self.after_review[n], self.blood_volume_ml)
                for n in self.reported}

    @property
    def after_review_per_7_5_ml_interval(self) -> dict[str, list[float] | None]:
        """The blood draw's 95 % interval of each after-review rate (a signed count's own,
        not the automatic count's)."""
        return {n: rate_interval(self.after_review[n], self.blood_volume_ml)
                for n in self.reported}

    def to_dict(self) -> dict:
        """The reviewed tally as plain data, with the per-7.5 mL figures."""
        return {"classes": list(self.classes), "reported": list(self.reported),
                "confirmed": dict(self.confirmed), "after_review": dict(self.after_review),
                "decided": dict(self.decided), "reviewed": self.reviewed,
                "rejected": self.rejected, "unattached": self.unattached,
                "blood_volume_ml": self.blood_volume_ml, "updated": self.updated,
                "confirmed_per_7_5_ml": self.confirmed_per_7_5_ml,
                "after_review_per_7_5_ml": self.after_review_per_7_5_ml,
                "after_review_per_7_5_ml_interval": self.after_review_per_7_5_ml_interval}

    @classmethod
    def from_dict(cls, data: dict) -> ReviewedCounts:
        """Read a reviewed tally back from :meth:`to_dict`'s output (derived fields are
        recomputed)."""
        return _record_from_dict(cls, data)


def count_reviewed(events: pd.DataFrame, decisions: pd.DataFrame, model: Counts,
                   unattached: int = 0, updated: str | None = None) -> ReviewedCounts:
    """The reviewed tally of ``events`` (the run ``model`` was counted on); ``decisions``: one
    per event (``event_id``, ``model_call``, ``reviewer_call``, ``time``: the
    ``Matched.decisions`` of ``ctcnet.review.decisions``). ``updated``: when the decisions
    last changed (``Matched.latest``, which a take-back moves too); by default the latest of
    ``decisions``."""
    import pandas as pd

    from ctcnet.inference.guard import counted  # pandas, scipy: see count_events

    classes = model.classes
    n = len(events)
    calls = events["class"].astype(object).to_numpy() if n else np.zeros(0, object)
    # The automatic count's call per event (None: not counted), then each decision over it.
    after = pd.Series(np.where(counted(events), calls, None), dtype=object,
                      index=events["event_id"].to_numpy() if n else None)
    said = decisions["reviewer_call"].astype(object).to_numpy()
    decided_ids = decisions["event_id"].to_numpy(np.int64)
    on_run = np.isin(decided_ids, after.index.to_numpy())
    after.loc[decided_ids[on_run]] = np.where(said[on_run] == REJECTED, None, said[on_run])
    after_calls = after.to_numpy(object)
    model_calls = decisions["model_call"].astype(object).to_numpy()
    times = decisions["time"].astype(str) if len(decisions) else pd.Series([], dtype=str)
    return ReviewedCounts(
        classes=classes, reported=model.reported,
        confirmed={c: int((said == c).sum()) for c in classes},
        after_review={c: int((after_calls == c).sum()) for c in classes},
        decided={c: int((model_calls == c).sum()) for c in classes},
        reviewed=int(len(decisions)), rejected=int((said == REJECTED).sum()),
        unattached=int(unattached), blood_volume_ml=model.blood_volume_ml,
        updated=updated or (str(times.max()) if len(times) else None))
