"""What a sign-off may leave undecided: the review list's candidates a person did not decide,
and among them those that need a word in the sign-off's note before it is made.

A call the marker guard holds is a possible count (a possible missed CTC among them); a call
counted in the figures signed (a CTC, a cluster) vouches for them on the network's word; a call
of a reported class the guard does not check (a lab's ``tdev``: its markers are read by no
check, and predict says to review every one) is counted on the network's word alone; another
call that a counted class could be (in its review band, its likeliest class filed otherwise by
the cartridge's prior, or cut by the frame border) is a possible missed CTC or cluster. Each,
left undecided, is said in the note: the sign-off then vouches for it knowingly. The
quality-control sample of confident calls needs no word.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ctcnet.errors import InputError
from ctcnet.report.reasons import GUARD_PREFIX
from ctcnet.review_server.sample_states import DecisionsChanged

# The reasons that put another call on the list for a count it could change.
COULD_BE_COUNTED = ("low_confidence", "counted_likeliest", "cut_by_border")


def could_be_counted(call: str, codes, reported) -> bool:
    """Whether a candidate is another call on the list for a count it could change (not of a
    ``reported`` class, a reason of ``COULD_BE_COUNTED`` among its ``codes``), the guard
    holding none of it: a possible missed count, which a sign-off leaves only with a note."""
    return str(call) not in reported and not any(c.startswith(GUARD_PREFIX) for c in codes) \
        and any(c in COULD_BE_COUNTED for c in codes)


def open_disagreements(agreement: dict | None, reported: Iterable[str]) -> str:
    """The readers' disagreements on a ``reported`` class not adjudicated (in
    :func:`ctcnet.review.agreement.readings_agreement`'s ``agreement``), in words; empty
    where none is left: a first reader's wbc against a second's ctc is a possible missed CTC,
    which a sign-off took without a word."""
    reported = set(reported)
    left = [d["event_id"] for d in (agreement or {}).get("disagreements") or ()
            if not d.get("adjudicated") and reported & {d.get("first"), d.get("second")}]
    return (f"{len(left)} disagreement(s) of the two readers on a counted class not "
            f"adjudicated (event(s) {', '.join(map(str, left[:10]))}"
            + (", ..." if len(left) > 10 else "") + ")") if left else ""


def left_undecided(candidates: pd.DataFrame, decided: set[int], note: str,
                   unchecked: Iterable[str] = (), reported: Iterable[str] = (),
                   disagreements: str = "") -> tuple[int, int]:
    """(candidates left undecided, of them the calls the guard holds) of ``candidates`` (the
    review list, with ``event_id``, ``class`` and ``reasons`` columns) once ``decided`` (event
    ids) are; refused (InputError) where held calls, calls of the ``unchecked`` reported
    classes, calls of the ``reported`` classes counted in the figures signed, or the readers'
    ``disagreements`` (:func:`open_disagreements`) are left without ``note``."""
    open_ = [int(e) not in decided for e in candidates["event_id"]]
    is_held = [any(c.startswith(GUARD_PREFIX) for c in codes) for codes in candidates["reasons"]]
    held = sum(o and h for o, h in zip(open_, is_held))
    calls = candidates["class"].astype(str).tolist() if "class" in candidates else []
    unchecked, reported = set(unchecked), list(reported)

    def left(classes, held_too=False) -> str:
        """"13 ctc, 2 cluster" of the undecided calls of ``classes`` (held ones only where
        ``held_too``)."""
        n = {c: sum(o and (held_too or not h) and call == c
                    for o, h, call in zip(open_, is_held, calls)) for c in classes}
        return ", ".join(f"{k} {c}" for c, k in sorted(n.items()) if k)

    # Each needs a word, all said at once (a script fixing one met the next): a held call is
    # a possible count; a class the guard does not check is counted on the network's word
    # alone; a counted call nobody looked at vouches for the figure on the network's word (a
    # sign-off with 2 of 83 candidates decided, none of the 23 CTC calls among them).
    # Another call on the list for a count it could change, the guard holding none of it.
    could_be = sum(o and could_be_counted(call, codes, reported)
                   for o, call, codes in zip(open_, calls, candidates["reasons"]))
    needs = [f"{held} call(s) the marker guard held" if held else "",
             f"{blind} call(s) of a class the marker guard does not check (counted on the "
             "network's word alone)" if (blind := left(unchecked, held_too=True)) else "",
             f"{counted} call(s) counted in the figures signed" if (
                 counted := left(set(reported) - unchecked)) else "",
             f"{could_be} other call(s) that could be {' or '.join(sorted(reported))} "
             "(a possible missed count: in the review band, the likeliest class, or cut by "
             "the border)" if could_be else ""]
    needs = [n for n in needs if n]
    if (needs or disagreements) and not note:
        said = [f"{'; '.join(needs)}: left undecided; confirm, relabel or reject them"] \
            if needs else []
        said += [f"{disagreements}: adjudicate each on the first reading's page (decide it "
                 "again)"] if disagreements else []
        raise InputError(f"{'; '.join(said)}; or say in the sign-off's note why they are "
                         "signed as they stand")
    return sum(open_), held


def refuse_unread_second(name: str, second, run, read: str | None) -> None:
    """Refuse a sign-off of sample ``name`` that did not read the second reading (``second``:
    its journal, of which the run ``run``'s rows count) as it is now: ``read``, the
    agreement's ``second_stamp`` it names (None: none named). A second reader's ``ctc`` on an
    event the first left undecided, made after the signer looked, was signed under a note
    that never saw it. A journal holding no row of this run (none, or an earlier run's) is
    no second reading of it."""
    now = second.stamp()
    if now == "none" or read == now or not second.matched(run).n_rows:
        return
    raise DecisionsChanged(
        f"{name}: " + ("a second reading of this run was made, and the sign-off names none "
                       "as read (its second_stamp, which the agreement gives)" if read is None
                       else "the second reading has decisions this sign-off did not read (its "
                       "second_stamp is not the one the agreement gives now)") +
        ": a disagreement it leaves might be one its note never saw; read the agreement again "
        "(the page does as sign off is first pressed) and sign off again")


def signoff_key(signed) -> str | None:
    """What names a sign-off to one who signs over it (``signed_seen``): its reviewer and
    time; None where there is none."""
    return None if signed is None else f"{signed.reviewer} {signed.signed_at}"


def refuse_unseen_signoff(name: str, signed, seen: str | None) -> None:
    """Refuse a sign-off over one its signer did not read (``seen``: the request's
    ``signed_seen``, :func:`signoff_key` of the sign-off the state showed, null where none):
    three reviewers pressing at once were each told "signed", and two were replaced unseen."""
    if signoff_key(signed) != seen:
        raise DecisionsChanged(
            f"{name}: " + (f"signed off by {signed.reviewer} at {signed.signed_at}, which this "
                           "sign-off does not name (signed_seen)" if signed is not None else
                           "its sign-off named (signed_seen) is no longer there")
            + ": read the state again (the page does within seconds) and sign off again")
