"""The lowest layer: small numeric pieces every stage shares (numpy only, never torch).

:mod:`ctcnet.core.robust` holds the one robust background level and noise estimate (the pixels
it is read from, the percentile step, the formula) and the MAD noise scale.
"""
