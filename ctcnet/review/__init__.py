"""A reviewer's decisions on a run, recorded and counted: ``decisions`` (the front door the rest
of ctcnet asks), ``decision_journal`` (``review.csv``, appended to decision by decision),
``matching`` (which decision counts for which event of the run now in the folder), ``runs``
(the run decisions are made on: its events, candidates and identity), ``levels`` (the sample's
display levels kept with the run), ``tally`` (the reviewed counts kept current), ``signoff``
(a sample's "reviewed by, on") and ``agreement`` (a second reader's decisions against the
first's). The review server writes them; the static report,
the event exports and ``ctcnet crops --reviewed`` read them."""
