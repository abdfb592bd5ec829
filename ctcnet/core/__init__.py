"""The lowest layer: small pieces every stage shares (numpy and the standard library only, never
torch).

:mod:`ctcnet.core.robust` holds the one robust background level and noise estimate (the pixels
it is read from, the percentile step, the formula) and the MAD noise scale;
:mod:`ctcnet.core.ordered` the one way work runs on threads with its results in order.
"""
