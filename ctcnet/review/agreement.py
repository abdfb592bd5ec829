"""Two readings of one sample compared: Cohen's kappa between the first reader's decisions
(review.csv, the ones counted) and a second reader's (review-second.csv, kept apart), and the
events they disagree on, listed for adjudication.

The kappa compares the events both readers decided; a label is the reviewer's call as
recorded (a class name, or ``rejected``). An event the second reader called otherwise than the
model where the first reading holds no decision is listed among the disagreements too
(:func:`left_as_called`): the first reading counts the model's call on it. Adjudicating is
deciding the event again in the first reading, whose decisions are the ones counted: the kappa
is of the decisions as they stand, which adjudication moves toward agreement. The readers'
own agreement is therefore also measured on each reader's own call on each event before any
adjudication (``independent``, :func:`independent_decisions`: a reader's own corrections
count, the adjudication does not): that is the inter-reader figure an audit reads.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from ctcnet.core.kappa import cohen_kappa
from ctcnet.errors import InputError


def compare_readings(first: pd.DataFrame, second: pd.DataFrame) -> dict:
    """The agreement of two readings (each a match's ``decisions``: event_id, reviewer_call,
    reviewer, model_call): how many events both decided, how many they agree on, the kappa,
    each reading's count of decisions and the disagreements (event, model call, both calls
    and readers), in event order."""
    both = first.merge(second, on="event_id", suffixes=("_first", "_second"))
    calls = list(zip(both["reviewer_call_first"], both["reviewer_call_second"]))
    kappa = cohen_kappa([a for a, _ in calls], [b for _, b in calls])
    differ = both[both["reviewer_call_first"] != both["reviewer_call_second"]]
    return {
        "first": int(len(first)), "second": int(len(second)), "both": int(len(both)),
        "agree": int(len(both) - len(differ)),
        "kappa": None if kappa is None else round(float(kappa), 4),
        "disagreements": [
            {"event_id": int(e), "model_call": str(m), "first": str(a), "second": str(b),
             "first_reviewer": str(ra), "second_reviewer": str(rb)}
            for e, m, a, b, ra, rb in zip(
                differ["event_id"], differ["model_call_first"], differ["reviewer_call_first"],
                differ["reviewer_call_second"], differ["reviewer_first"],
                differ["reviewer_second"])]}


def _decision_rows(matched, run_id: str) -> pd.DataFrame:
    """A reading's decisions on the events of the run ``run_id``, in the order they were
    written, takes-back kept (``undone``: a call before one is not the reader's call from
    then on; :func:`_standing` keeps the events it holds a decision on now):
    event_id, reviewer_call, reviewer, model_call (the call the reviewer saw), when and
    ``undone``. A row a later one replaced is read where the match's ``history`` places it
    (its id in the run it was made on, by position from another run: a rerun that numbers
    the events otherwise keeps the readers' own calls and the adjudication). A row the match
    set aside (``unattached``: a rejection of a call a rerun with the same numbering changed)
    is nobody's call on the event now."""
    from ctcnet.review.matching import UNDECIDED

    table = matched.table
    calls = table["reviewer_call"].astype(str).to_numpy()
    history = getattr(matched, "history", None)
    if history is not None:
        event = history.copy()
    else:  # a match built without one: a row names its event in the run it was made on
        own = (table["run_id"].astype(str).to_numpy() == run_id if "run_id" in table
               else np.zeros(len(table), bool))
        event = np.where(matched.target >= 0, matched.target,
                         np.where(own, table["event_id"].to_numpy(np.int64), -1))
    event[matched.unattached.index.to_numpy(np.int64)] = -1
    rows = np.flatnonzero(event >= 0)
    picked = table.iloc[rows]
    out = pd.DataFrame({column: picked[column].astype(str).to_numpy()
                        for column in ("reviewer_call", "reviewer", "model_call")})
    out.insert(0, "event_id", event[rows])
    # (each as ISO 8601 says, in one unit: a row of another form was NaT, and two journals in
    # two units could not be set against each other)
    out["time"] = pd.to_datetime(picked["time"], utc=True, errors="coerce", format="ISO8601")\
        .dt.as_unit("ns").to_numpy() if "time" in picked else pd.NaT
    out["undone"] = calls[rows] == UNDECIDED
    return out


def _standing(rows: pd.DataFrame) -> pd.DataFrame:
    """:func:`_decision_rows` of the events whose last row is a decision, not a take-back:
    the second reader's call taken back is no call (counted, a decision undone read as the
    reader's own). The first reader's rows are read whole: that reader's own call stays
    theirs once the second reader read the event, whatever is taken back later (taking back
    is not adjudicating)."""
    stands = ~rows.drop_duplicates("event_id", keep="last").set_index("event_id")["undone"]
    return rows[rows["event_id"].map(stands).to_numpy(bool)]


def _readings(first_matched, second_matched, run_id: str):
    """Both readings' decision rows and, per first-reading row, when the second reader first
    decided its event (NaT: never): what the readers' own calls and the adjudication are
    read from, built once."""
    first, every_second = (_decision_rows(m, run_id) for m in (first_matched, second_matched))
    second = _standing(every_second)
    seen = pd.to_datetime(first["event_id"].map(second.groupby("event_id")["time"].min()),
                          utc=True)
    first["disputed"] = _shown_disputed(first, every_second)
    return first, second, seen


# How long before a first-reading decision the second reader's call must have stood for the
# first reader's page to have shown it: the page reads the agreement every 5 polls of 4 s.
SHOWN_AFTER = pd.Timedelta(seconds=30)


def _shown_disputed(first: pd.DataFrame, second_rows: pd.DataFrame) -> np.ndarray:
    """(len(first),) bool: whether, when each first-reading decision was made, the first
    reader's page had listed its event as disputed (:func:`left_as_called`): the second
    reader's call standing ``SHOWN_AFTER`` before it differed from the model's. A decision
    made then knows the other call (an adjudication, whichever it keeps), not a blind own
    call; made sooner, or after the second reader came round to the model's call, it is."""
    out = np.zeros(len(first), bool)
    timed = first["time"].notna().to_numpy() & first["event_id"].isin(second_rows["event_id"])
    if not timed.any() or not len(second_rows):
        return out
    asked = pd.DataFrame({"row": np.flatnonzero(timed), "event_id": first["event_id"][timed]
                          .to_numpy(), "time": (first["time"][timed] - SHOWN_AFTER).to_numpy()})
    calls = second_rows[second_rows["time"].notna()].assign(
        differs=lambda t: ~t["undone"] & (t["reviewer_call"] != t["model_call"]))
    # (stable: two calls of one second stand in the journal's order, the later one last)
    standing = pd.merge_asof(asked.sort_values("time", kind="stable"),
                             calls[["event_id", "time", "differs"]].sort_values(
                                 "time", kind="stable"), on="time", by="event_id")
    out[standing["row"].to_numpy()] = standing["differs"].fillna(False).to_numpy(bool)
    return out


def _first_readers_own(first: pd.DataFrame, seen: pd.Series) -> pd.DataFrame:
    """The first reading's rows that are its reader's own call on each event (its last before
    the second reader first decided it, else its first), as :func:`independent_decisions`
    reads them; the table's own index kept, so that what came after is told apart."""
    before = first[(first["time"] < seen).to_numpy()].drop_duplicates("event_id", keep="last")
    before = before[~before["undone"]]  # taken back before the second reader came: no call
    later = first[~first["event_id"].isin(before["event_id"]) & ~first["undone"]
                  & ~(first["time"] < seen).to_numpy()]
    # The first decision after the second reader's; made with the dispute shown, it was an
    # adjudication, and none after it is a blind call; nor is one by someone who made no call
    # before the second reader came (a third person adjudicating was read as the first
    # reader's own call, and the readers' agreement rose).
    after = later.drop_duplicates("event_id", keep="first")
    readers = {reader_key(r) for r in first.loc[(first["time"] < seen).to_numpy(), "reviewer"]}
    by_reader = after["reviewer"].map(reader_key).isin(readers) if readers else True
    after = after[~after["disputed"] & by_reader]
    return pd.concat([before, after]).sort_values("event_id", kind="stable")


def _own_calls(first: pd.DataFrame, second: pd.DataFrame, seen: pd.Series
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`independent_decisions` of the rows :func:`_readings` gives."""
    own = _first_readers_own(first, seen)
    return (own.drop(columns=["time", "undone", "disputed"]).reset_index(drop=True),
            second.drop_duplicates("event_id", keep="last").drop(columns=["time", "undone"])
            .reset_index(drop=True))


def _agreement_of(own: tuple[pd.DataFrame, pd.DataFrame]) -> dict:
    """:func:`compare_readings` of the readers' own calls, with the events they disagreed on
    (``disagreed``: an adjudication that took the second reader's call takes the event off
    the list of the decisions as they stand, not off this one)."""
    out = compare_readings(*own)
    return {**{k: out[k] for k in ("both", "agree", "kappa")},
            "disagreed": [d["event_id"] for d in out["disagreements"]]}


def _adjudicated(first: pd.DataFrame, seen: pd.Series) -> set[int]:
    """:func:`adjudicated_events` of the rows :func:`_readings` gives: a first-reading
    decision after its reader's own call and after the second reader decided the event. The
    first reader's one decision made after the second reader's (two readers at work at once)
    is that reader's own call, not an adjudication, unless the page had shown the event as
    disputed by then (:func:`_shown_disputed`): read as one, a disagreement nobody looked at
    again was listed as adjudicated.
    An event whose decision is taken back at the last is adjudicated by nobody: the model's
    call stands on it."""
    own = _first_readers_own(first, seen).index
    later = (first["time"] > seen).to_numpy() & ~first.index.isin(own) & \
        ~first["undone"].to_numpy()
    last = first.drop_duplicates("event_id", keep="last")
    taken_back = set(last["event_id"][last["undone"].to_numpy(bool)].astype(int))
    return {int(e) for e in first["event_id"][later]} - taken_back


def independent_decisions(first_matched, second_matched, run_id: str
                          ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each reader's own call on each event, before any adjudication: the blind second
    reader's last (a mis-key put right is the reader's own call); the first reader's last
    made before the second reader first decided the event, or, where none was made before
    it (at the same second the journals' times cannot order them), the first reader's first
    decision (later ones are the adjudication of a disagreement)."""
    return _own_calls(*_readings(first_matched, second_matched, run_id))


def independent_agreement(first_matched, second_matched, run_id: str) -> dict:
    """The readers' own agreement: :func:`compare_readings` of each reader's own call on each
    event of the run ``run_id`` (:func:`independent_decisions`, before any adjudication),
    without the list of disagreements."""
    return _agreement_of(independent_decisions(first_matched, second_matched, run_id))


def adjudicated_events(first_matched, second_matched, run_id: str) -> set[int]:
    """The events the first reading decided again, after its reader's own call, once the
    second reader had decided them (later by the journals' times, to the second):
    adjudicated, whichever call it kept."""
    first, _, seen = _readings(first_matched, second_matched, run_id)
    return _adjudicated(first, seen)


def readings_agreement(first_matched, second_matched, run_id: str) -> dict:
    """A sample's two readings compared, as the review server gives them: the decisions as
    they stand (:func:`compare_readings`, each disagreement marked ``adjudicated`` where the
    first reading decided it again after the second reader, whichever call it kept), and the
    readers' own (``independent``); the journals' rows read once for both."""
    out = compare_readings(first_matched.decisions, second_matched.decisions)
    first, second, seen = _readings(first_matched, second_matched, run_id)
    done = _adjudicated(first, seen)
    for entry in out["disagreements"]:
        entry["adjudicated"] = entry["event_id"] in done
    out["disagreements"] = sorted(
        out["disagreements"] + left_as_called(first_matched.decisions, second_matched.decisions),
        key=lambda d: d["event_id"])
    return {**out, "independent": _agreement_of(_own_calls(first, second, seen)),
            "second_readers": list(dict.fromkeys(
                second_matched.decisions["reviewer"].astype(str)))}


def left_as_called(first: pd.DataFrame, second: pd.DataFrame) -> list[dict]:
    """The events the second reader called otherwise than the model where the first reading
    holds no decision (each a match's ``decisions``): the first reading counts the model's
    call on them, so they are disagreements as the decisions stand (``first``: the model's
    call, ``as_called``), none adjudicated: a second reader's ``ctc`` on a ``wbc`` the first
    reader left as called is a possible missed CTC, which a sign-off took without a word."""
    alone = second[~second["event_id"].isin(first["event_id"])]
    alone = alone[alone["reviewer_call"].astype(str) != alone["model_call"].astype(str)]
    return [{"event_id": int(e), "model_call": str(m), "first": str(m), "second": str(c),
             "first_reviewer": "", "second_reviewer": str(r), "as_called": True,
             "adjudicated": False}
            for e, m, c, r in zip(alone["event_id"], alone["model_call"],
                                  alone["reviewer_call"], alone["reviewer"])]


def readers_of(matched, run_id: str) -> list[str]:
    """The reviewers a reading (``matched``: its journal matched to the run ``run_id``) counts
    as its readers: those whose decision stands, and those whose last row on an event of this
    run is a call, though another's call replaced it since (replaced, it was still read as
    their own call, and a reader agreed with themselves); a call its reviewer took back last
    (a misclick on the other reading's link) leaves them free."""
    names = set(matched.decisions["reviewer"].astype(str)) if len(matched.decisions) else set()
    if len(matched.table) and "run_id" in matched.table:
        # Rows of an earlier run too, by position (a rerun that numbers the events otherwise
        # let a first reader whose call was replaced join the second reading).
        rows = _decision_rows(matched, run_id)
        last = rows.groupby(["event_id", "reviewer"], sort=False)["undone"].last()
        names |= {str(r) for (_, r), undone in last.items() if not undone}
    return sorted(names)


def reader_key(name: str) -> str:
    """A reviewer's name as the readings tell readers apart by: case, spaces and the width or
    encoding of its letters aside ("tech a", "Tech A", "TechA" and full-width "ＴＥＣＨ Ａ" are
    one person)."""
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", str(name)).split()).casefold()


def check_one_reading_each(reviewer: str, other_reading: Iterable[str], reading: str) -> None:
    """Refuse a ``reading``'s decision by a reviewer who decided in the sample's other
    reading (``other_reading``: its reviewers' names): one person's two readings are no
    inter-reader agreement, and were counted as one (a second reading's decisions by the first
    reader agreed with themselves)."""
    if reader_key(reviewer) in {reader_key(n) for n in other_reading}:
        other = "first" if reading == "second" else "second"
        raise InputError(f"{reviewer} decided events of this sample in the {other} reading: a "
                         f"{reading} reading is another person's (each reader reads one; the "
                         "first reading's reader or another adjudicates on the first "
                         "reading's page)")
