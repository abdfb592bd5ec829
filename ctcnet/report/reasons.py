"""Why an event is shown to a reviewer, in words: for the review page's rows and filter, its
tiles and the gallery's tile captions.

An event is on the review list for one or more reasons, each a code:

* ``call``: a call of a reported class (``ctc``, ``cluster``): every one is shown;
* ``markers``: a ``ctc`` call the markers made over the network's ``wbc``, ``debris`` or
  lone-cell ``cluster`` (on a cartridge, :func:`ctcnet.inference.guard.markers_overrule`);
* ``guard:<flag>``: a flag of the marker guard (:mod:`ctcnet.inference.guard`); the call is
  held for review and counted apart;
* ``low_confidence``: the network's doubt could change a count: a CTC or cluster call below
  the review threshold, or another call to which a CTC or cluster holds the review band
  (:mod:`ctcnet.nn.calls`); not on an event the guard holds, as summary.json's review list
  counts them (:func:`ctcnet.inference.review_list.review_list_summary`);
* ``vouched``: a ``ctc`` call below the review threshold whose doubt is toward a cluster,
  its markers reading one CTC (``markers_vouch``): counted, the doubt not queued;
* ``counted_likeliest``: a leukocyte or debris call that a CTC or cluster outweighs before the
  cartridge's prior (:func:`ctcnet.nn.calls.filed_by_prior`): only the prior filed it so;
* ``cut_by_border``: a CTC or cluster call (or one the likeliest before the prior) filed as
  another class because the frame border cuts it
  (:func:`ctcnet.inference.tables.cut_counted_of`): a person decides whether the cell is whole
  enough to count;
* ``failed``: the model's output was not finite (no call);
* ``qc``: the fixed random quality-control sample of the confident other calls;
* ``decided``: only an earlier decision brings it in (made on another run);
* ``flagged``: marked for review for none of the reasons above (a table written by other
  means).

Captions are ASCII: the gallery draws them with PIL's default bitmap font.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctcnet.inference.guard import RULES
from ctcnet.inference.review_list import network_doubt
from ctcnet.inference.tables import BAND_PREFIX, cut_counted_of
from ctcnet.nn.calls import COUNTED_CLASSES, FAILED_CLASS

GUARD_PREFIX = "guard:"
# A guard flag's caption starts so: the flag holds the call out of the count until a person
# decides.
HELD_CAPTION = "held: "
HELD_NOT_COUNTED = "held, not counted: "  # a counted class's call the guard holds
# Each guard flag: (caption, what it means). The guard's module docstring has the full rules.
GUARD_FLAGS = {
    "cd45_positive": ("CD45 over CK", "CD45 over the CK area, or over the cell without one, "
                      "or more CD45 than the scan's own leak of CK into it explains (a CTC is "
                      "CD45 negative)"),
    "no_dna": ("no DNA in CK", "no DAPI inside the CK area (no nucleus: a fragment?)"),
    "dna_copies_ck": ("DAPI copies CK", "the DAPI inside the CK area is only a copy of CK, or "
                      "the two are one body lit in both (a leak or autofluorescence, not a "
                      "nucleus)"),
    "low_dna": ("low DNA", "far less DNA than the frame's leukocytes hold (a fragment?)"),
    "no_ck": ("no CK", "no CK area (nor, where the model reads EpCAM or vimentin, that "
              "marker of its own beyond what DAPI and CK leak into it)"),
    "out_of_focus": ("out of focus", "the nucleus's edge is blurred wider than the frame's "
                     "leukocytes' (out of the focal plane)"),
    "one_cell": ("one cell", "a cluster call with one nucleus and no partner attached (no "
                 "leukocyte or platelet marker of the panel round it): a single cell (a CTC "
                 "taken for two?)"),
    "unusual": ("unlike training", "unlike the events the model was trained on"),
    "same_cluster": ("same cluster again", "a cluster call, or a CTC call the network read "
                     "as a cluster more than a CTC, within 20 um of a more confident cluster "
                     "(the review page names it beside this one): one cluster that detection "
                     "read twice, counted once (confirm it if these are two)"),
    "same_ctc": ("same CTC again", "a CTC its markers read (a ctc call they made where the "
                 "network called it otherwise, or a possible missed CTC) within 14 um of a "
                 "counted call the network made itself: a neighbour whose crop holds that "
                 "CTC's CK, one CTC read twice, counted once (call it a CTC only if these "
                 "are two cells)"),
    "possible_ctc": ("possible missed CTC", "a possible missed CTC (the markers of a CTC, or "
                     "the network still gives a CTC "
                     f"{100 * RULES.possible_ctc_proba:g} % or more)"),
}
REASONS = {  # code: (caption, what it means); guard flags are added per flag
    "call": ("reported call", "a call of a reported class: every one is shown"),
    "markers": ("called by its markers", "the network's leukocyte, debris or one-cell cluster "
                "call made ctc by the markers: CK positive, no CD45, a nucleus of its own, and "
                "the network finds it at least as likely a CTC, or a cluster on one cell, as "
                "what it called it"),
    "low_confidence": ("low p", "a CTC or cluster call (or one of another class the model "
                       "reports) below the review threshold, or another call to which such a "
                       "class holds the review band: the doubt could change a count"),
    "vouched": ("doubt settled by markers", "a ctc call below the review threshold whose "
                "doubt is toward a cluster, its markers reading one CTC (no partner marker, one "
                "nucleus): counted, its doubt not queued"),
    "counted_likeliest": ("{counted} likeliest", "the network (with the markers, where "
                          "a cartridge's fusion read them) finds a CTC or cluster (or another "
                          "reported class) the likeliest class; only the cartridge's prior, "
                          "which keeps the rare calls from the far more numerous debris, filed "
                          "it as another class (debris, a leukocyte, or a CTC where the network "
                          "finds a cluster: a cluster of one bright CTC and a dim partner can "
                          "be counted as one CTC)"),
    "cut_by_border": ("{counted} cut by border", "the network finds a CTC or cluster (or "
                      "another reported class), but the frame border cuts the event, so it is "
                      "filed as debris: only whole cells are counted. Detection reads a "
                      "whole cell that touches the border as cut. If the cell is whole, or "
                      "nearly, and its markers are a CTC's (CK positive, a nucleus, no CD45 of "
                      "its own), relabel it ctc or cluster (its number key) to count it; "
                      "confirming files it as debris, and rejecting takes it out of every "
                      "count"),
    "failed": ("no call", "the model's output was not finite: no call"),
    "qc": ("quality-control sample", "a random quality-control sample of the confident calls"),
    "decided": ("decided, not listed", "not on the review list: a decision made on it "
                "brings it in (on an earlier run that called it otherwise, or through the "
                "page's API)"),
    "flagged": ("flagged", "marked for review"),
}
# The order the page's filter lists them in.
ORDER = ["call", "markers", *(GUARD_PREFIX + f for f in GUARD_FLAGS), "low_confidence",
         "vouched", "counted_likeliest", "cut_by_border", "failed", "qc", "decided", "flagged"]


# The review list's reasons as summary.json counts them (ctcnet.inference.review_list).
# ({counted}: the model's reported classes, :func:`counted_words`)
LIST_REASONS = {"counted_call_doubt": "a {counted} call in doubt",
                "counted_class_in_band": "another call a {counted} holds the review band of",
                "counted_class_likeliest": "a {counted} the likeliest, filed as another "
                                           "class by the cartridge's prior",
                "counted_class_cut_by_border": "a {counted} cut by the frame border",
                "failed": "no call"}
# ``counted_class_in_band`` under a rule without a band (ctcnet.nn.calls): the runner-up.
UNBANDED_IN_BAND = "another call under the review threshold, a {counted} its runner-up"


def review_list_text(review_list: dict | None, events: int, reported=None) -> str:
    """A page's line for its review list: the events, what brings them (an event may have
    several reasons) and the doubt left off it (between uncounted classes alone; between a CTC
    and a cluster on what the markers read as one CTC). ``reported``: the model's reported
    classes, named where they are not the shipped ones (:func:`counted_words`)."""
    if not review_list:
        return str(events)
    # Without a band (a model fitted without one) another call is shown under the threshold
    # where a counted class is its runner-up (ctcnet.nn.calls): said so, not "the band" (a
    # summary older than its review_band key: as the band).
    banded = review_list.get("review_band", {}) is not None

    def caption(code: str) -> str:
        flag = GUARD_FLAGS.get(code.removeprefix(GUARD_PREFIX))
        listed = (LIST_REASONS.get(code, "") if banded or code != "counted_class_in_band"
                  else UNBANDED_IN_BAND)
        listed = listed.replace("{counted}", counted_words(reported))
        return listed or (flag[0] if flag else code)

    reasons = {code: n for code, n in review_list.get("by_reason", {}).items() if n}
    parts = [f"{n} {caption(code)}" for code, n in reasons.items()]
    several = ("; these add up to more: an event may have several reasons"
               if sum(reasons.values()) > events else "")
    text = f"{events}" + (f" ({', '.join(parts)}{several})" if parts else "")
    left = review_list.get("uncounted_doubt_not_queued", 0)
    backed = review_list.get("counted_on_markers_doubt_not_queued", 0)
    return text + (f"; {left} in doubt between uncounted classes alone, not queued" if left
                   else "") + \
        (f"; {backed} CTC call{'s' if backed > 1 else ''} in doubt with a cluster, one cell "
         "by the markers, counted and not queued" if backed else "")


def guard_flags(value) -> list[str]:
    """The flags of one ``guard`` cell ('' or NaN: none; several joined by '+')."""
    if not isinstance(value, str) or not value:
        return []
    return [f for f in value.split("+") if f]


def event_reasons(events: pd.DataFrame, reported,
                  review_threshold: float | None = None) -> list[list[str]]:
    """The reason codes of each event (``class``, ``review`` and, after the guard, ``guard``
    columns; the run's ``filed_by_prior`` and the markers' columns where there are; a ``why``
    column from the candidate selection adds ``qc`` and ``decided``; ``review_threshold``,
    where given, ``vouched`` under it)."""
    n = len(events)
    calls = events["class"].astype(object).to_numpy()
    review = events["review"].to_numpy(bool)
    guard = events["guard"].astype(object).to_numpy() if "guard" in events else [""] * n
    why = events["why"].to_numpy(object) if "why" in events else [None] * n
    # The markers' call over the network's wbc, debris or lone-cell cluster
    # (ctcnet.inference.guard.markers_overrule).
    by_markers = np.zeros(n, bool)
    if "markers_ctc" in events and "model_class" in events:
        by_markers = events["markers_ctc"].fillna(False).to_numpy(bool) & \
            np.isin(events["model_class"].astype(object).to_numpy(),
                    ("wbc", "debris", "cluster")) & \
            (calls == "ctc")
    # The network's doubt as summary.json's review list counts it, on events the guard does
    # not hold: a CTC or cluster call in doubt or another call a CTC or cluster is within the
    # band of ("low_confidence"), another call only the cartridge's prior filed as it is
    # ("counted_likeliest").
    call_doubt, in_band, likeliest = network_doubt(events, counted=list(reported))
    # A ctc call whose doubt toward a cluster the markers settle: counted, not queued for it
    # (said, or its caption read as a confident call's beside one "low p" at the same p).
    vouched = np.zeros(n, bool)
    if "markers_vouch" in events and review_threshold is not None:
        vouched = events["markers_vouch"].fillna(False).to_numpy(bool) & (
            np.nan_to_num(events["confidence"].to_numpy(np.float64), nan=1.0) < review_threshold)
    out = []
    for call, flagged, flags, chosen, marked, low, settled, only_prior, cut in zip(
            calls, review, guard, why, by_markers, call_doubt | in_band, vouched, likeliest,
            cut_counted_of(events, list(reported))):
        codes = ["call"] if call in reported else []
        if marked:
            codes.append("markers")
        codes += [GUARD_PREFIX + f for f in guard_flags(flags)]
        if call == FAILED_CLASS:
            codes.append("failed")
        elif low:
            codes.append("low_confidence")
        elif settled and not guard_flags(flags):  # (a held call is not counted)
            codes.append("vouched")
        if only_prior:
            codes.append("counted_likeliest")
        if cut:
            codes.append("cut_by_border")
        if chosen in ("qc", "decided"):
            codes.append(chosen)
        if flagged and not codes:
            codes.append("flagged")
        out.append(codes)
    return out


# The review list's order, most pressing first: what the guard holds, the markers called, the
# prior or the border filed away, and failed calls (each needs a look of its own); then the
# network's doubt about a count; then the confident reported calls; the quality-control sample
# (confident calls checked at random) and events only an earlier decision brings in last.
_FIRST = ("markers", "counted_likeliest", "cut_by_border", "failed")


def review_rank(codes: list[str]) -> int:
    """Where an event with these reason codes comes in the review list (0 first)."""
    if any(c.startswith(GUARD_PREFIX) or c in _FIRST for c in codes):
        return 0
    if "low_confidence" in codes:
        return 1
    if "call" in codes:
        return 2
    if "flagged" in codes:
        return 3
    return 4 if "qc" in codes else 5


def ranked_with_reasons(candidates: pd.DataFrame, reported,
                        review_threshold: float | None = None) -> pd.DataFrame:
    """The review list's candidates with their reason codes (a ``reasons`` column), most
    pressing first (:func:`review_rank`), in scan order within each rank."""
    reasons = event_reasons(candidates, reported, review_threshold)
    order = np.argsort(np.array([review_rank(codes) for codes in reasons], dtype=np.int64),
                       kind="stable")
    return candidates.assign(reasons=reasons).iloc[order]


def call_text(call: str, model_call: str, confidence: float, own: str | None = None,
              own_p: float | None = None, partner: str | None = None,
              after: str = " after prior") -> str:
    """A call with its probability under the run's decision rule: "ctc p=0.49 after prior"
    (``after``: what the p is after; a cartridge's prior takes a confident network's 0.94 to
    0.49, which a reviewer would read as the network's doubt, so it is said; "" for a crop
    set's balanced prior). Where the call shown is not the network's (an edge-cut event filed
    as debris, a call the markers made), the network's call with its probability, "debris
    (network: ctc p=0.66 after prior)": ``confidence`` is the probability of the network's
    call, never of another class. Where the most probable class before the cartridge's prior
    (``own``, ``own_p``: :func:`own_calls`, the network's with the markers where the
    cartridge's fusion read them) is another, it is named too: a cluster the prior filed as a
    leukocyte, called a CTC by its markers, reads "ctc (network: wbc p=0.45 after prior;
    likeliest before prior: cluster p=1.00)", so the reviewer is asked about the cluster
    the network saw. A cluster call names the partner its markers read (``partner``:
    ``cluster_partner``), "cluster [partner: neutrophil]"."""
    p = "n/a" if not np.isfinite(confidence) else f"{confidence:.2f}"
    label = f"{call} [partner: {partner}]" if call == "cluster" and isinstance(partner, str) \
        and partner else call
    likeliest = (f"likeliest before prior: {own} p={own_p:.2f}" if own and own != model_call
                 and own_p is not None and np.isfinite(own_p) else "")
    if call == model_call:
        return f"{label} p={p}{after}" + (f" ({likeliest})" if likeliest else "")
    return f"{label} (network: {model_call} p={p}{after}" + \
        (f"; {likeliest})" if likeliest else ")")


def own_calls(events: pd.DataFrame, classes, counted=COUNTED_CLASSES) -> tuple[list, list]:
    """Each event's most probable class before the cartridge's prior where it is a
    ``counted`` class (a CTC or cluster the prior may have filed away: the model's reported
    classes), and its probability: of what the
    prior acted on (the marker fusion's ``fused_p_<class>`` where the run wrote them, as
    ``counted_likeliest`` reads them, else the network's ``p_<class>``); None where it is
    another class, the table has no such columns or the event none that is finite."""
    columns = [f"{BAND_PREFIX}{c}" for c in classes]
    if not all(c in events for c in columns):
        columns = [f"p_{c}" for c in classes]
    if not columns or not len(events) or not all(c in events for c in columns):
        return [None] * len(events), [None] * len(events)
    p = events[columns].to_numpy(np.float64)
    finite = np.isfinite(p).all(axis=1)
    top = np.where(finite, np.nan_to_num(p, nan=-1.0).argmax(axis=1), 0)
    named = finite & np.isin(np.asarray(classes, object)[top], list(counted))
    return ([classes[k] if ok else None for k, ok in zip(top, named)],
            [float(p[i, k]) if ok else None for i, (k, ok) in enumerate(zip(top, named))])


def counted_words(reported=None) -> str:
    """How a caption names the classes whose count a doubt could change: "CTC/cluster" for
    the shipped ones (``reported`` None, or ctc and cluster), "CTC" for a model that reports
    CTCs alone (no cluster class), a lab's by their names ("ctc/ctc_emt/cluster")."""
    shipped = {"ctc": "CTC", "cluster": "cluster"}
    if not reported:
        return "CTC/cluster"
    if set(reported) <= set(COUNTED_CLASSES):
        return "/".join(shipped[name] for name in COUNTED_CLASSES if name in reported)
    return "/".join(reported)


def caption(code: str, confidence: float | None = None,
            review_threshold: float | None = None, reported=None) -> str:
    """A few words for a reason code (a tile caption, a list row); ``reported``: the model's
    reported classes, named where they are not the shipped ones (:func:`counted_words`)."""
    if code.startswith(GUARD_PREFIX):
        flag = code[len(GUARD_PREFIX):]
        # "held": the guard's flag keeps the call out of the count until a person decides.
        return HELD_CAPTION + GUARD_FLAGS.get(flag, (flag.replace("_", " "), ""))[0]
    if code == "low_confidence" and confidence is not None and review_threshold is not None \
            and confidence < review_threshold:
        # As many places as tell the two apart ("0.878 < 0.882", never "0.88 < 0.88").
        places = next((d for d in (2, 3, 4) if f"{confidence:.{d}f}" !=
                       f"{review_threshold:.{d}f}"), 4)
        return f"low p {confidence:.{places}f} < {review_threshold:.{places}f}"
    if code == "low_confidence":  # at or over the threshold: shown for the band or the markers
        return f"{counted_words(reported)} in doubt"
    return REASONS.get(code, (code, ""))[0].replace("{counted}", counted_words(reported))


def meaning(code: str, confidence: float | None = None,
            review_threshold: float | None = None) -> str:
    """What a reason code means, in a sentence (the review page's event panel and filter)."""
    if code.startswith(GUARD_PREFIX):
        flag = code[len(GUARD_PREFIX):]
        text = GUARD_FLAGS.get(flag, ("", f"the guard's {flag.replace('_', ' ')} flag"))[1]
        return f"marker guard, {flag}: {text}; held for review, counted apart"
    if code == "low_confidence" and confidence is not None and review_threshold is not None:
        below = (f"p {confidence:.2f} of the network's call is below the review threshold "
                 f"{review_threshold:.2f}" if confidence < review_threshold else
                 f"p {confidence:.2f} of the network's call is at or over the review "
                 f"threshold {review_threshold:.2f}")
        return (f"in doubt: {below}; a CTC or cluster is the call, or holds the model's review "
                "band of the posterior (its card states the band; a model without one: the "
                "runner-up, or the rest of the threshold)")
    return REASONS.get(code, (code, code))[1]


def described(codes: list[str], confidence: float | None, review_threshold: float,
              reported=None) -> list[dict]:
    """Each reason of one event as ``{"code", "caption", "meaning"}`` (``reported``: as
    :func:`caption` takes it)."""
    return [{"code": c, "caption": caption(c, confidence, review_threshold, reported),
             "meaning": meaning(c, confidence, review_threshold)} for c in codes]


def caption_line(codes: list[str], confidence: float | None, review_threshold: float,
                 reported=None) -> str:
    """One event's reasons on one line (tile captions: a tile is ~500 px, 80-odd characters,
    so the guard's flags share one "held:"; ``reported``: as :func:`caption` takes it)."""
    flags = [caption(c)[len(HELD_CAPTION):] for c in codes if c.startswith(GUARD_PREFIX)]
    # A counted class's call the guard holds is not counted: said so in its place, not
    # "reported call" (read as counted) beside a hold.
    held_call = bool(flags) and "call" in codes
    parts = [caption(c, confidence, review_threshold, reported) for c in codes
             if not c.startswith(GUARD_PREFIX) and not (held_call and c == "call")]
    if flags:
        parts.insert(0, (HELD_NOT_COUNTED if held_call else HELD_CAPTION) + " + ".join(flags))
    return "; ".join(parts)


def reason_filter(candidate_codes: list[list[str]], reported=None) -> list[dict]:
    """The page's filter options: each reason present, with how many candidates have it, in
    :data:`ORDER`; ``guard`` (any flag of the marker guard) before the single flags
    (``reported``: as :func:`caption` takes it)."""
    counts: dict[str, int] = {}
    for codes in candidate_codes:
        for code in dict.fromkeys(codes):
            counts[code] = counts.get(code, 0) + 1
    held = sum(any(c.startswith(GUARD_PREFIX) for c in codes) for codes in candidate_codes)
    known = [c for c in ORDER if c in counts] + sorted(c for c in counts if c not in ORDER)
    options = [{"code": c, "caption": caption(c, reported=reported), "meaning": meaning(c),
                "count": counts[c]}
               for c in known]
    if held:
        options.insert(next((i for i, o in enumerate(options)
                             if o["code"].startswith(GUARD_PREFIX)), len(options)),
                       {"code": "guard", "caption": "held by the guard (any flag)",
                        "meaning": "a flag of the marker guard: held for review, counted apart",
                        "count": held})
    return options
