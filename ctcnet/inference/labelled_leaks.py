"""The instrument's leaks measured on the CTCs a person labelled (``ctcnet finetune``,
``ctcnet evaluate --calibrate-on``): a CTC carries no CD45, CD61 or CD66b of its own, so the
floor of the CK-shaped signal those channels show over its CK is the instrument's leak
(:mod:`ctcnet.inference.spillover` reads the same ratios on a scan's events).
"""

from __future__ import annotations

import logging

import numpy as np

from ctcnet.inference.spillover import (
    MAX_LEAK,
    PLAUSIBLE_LEAK,
    leak_channels,
    leak_mode,
    leak_ratios,
)

log = logging.getLogger(__name__)

# What :func:`labelled_leaks` measures a leak from: as on a scan, the lowest mode of the
# labelled CTCs' ratios (each a Gaussian of its uncertainty), here of LABELLED_WEIGHT crops'
# worth: two CTCs whose ratios agree within their uncertainties. A leak is the floor every CTC
# shows; what lies above it is a neighbour's CD45 in the ratio (1.55 against 0.31 for its
# peers on the simulated new scanner of scripts/adaptation_curve.py) or a CTC's own signal in
# the channel. The median of the ratios was read before: on 22 labelled CTCs of a simulated
# scanner leaking 0.75 % of CK into CD45, whose ratios spread from 0.008 to 4.2 (CK showing in
# the CD45 of dim CTCs), it read 11.5 % and raised the guard's CD45 allowance to 13.8 %; their
# floor reads 2.7 %, under the allowance. One ratio alone, or two that disagree, measure
# nothing; 2-5 of a lab's first 5 CTCs keep a ratio (the brightest clip, or share a crop).
MIN_LABELLED = 2
LABELLED_WEIGHT = 1.5


def labelled_leaks(crops, panel) -> dict:
    """CK's leak into each target channel measured on crops a person labelled CTCs (a
    sequence of (C, H, W) arrays, of any sizes). A CTC carries no CD45, CD61 or CD66b of its
    own, so the CK-shaped signal those channels show over its CK is, at its floor, the
    instrument's leak: {"source", "leaks": {channel: the ratios' lowest mode}, "crops":
    {channel: ratios}}; a channel whose ratios show no such mode (``LABELLED_WEIGHT``) is left
    out."""
    source, targets = leak_channels(panel)
    found = {t: ([], []) for t in targets}
    by_shape: dict[tuple, list] = {}
    for crop in crops:
        by_shape.setdefault(np.shape(crop), []).append(crop)
    for same in by_shape.values() if source is not None else ():
        ratio, sd = leak_ratios(np.stack(same).astype(np.float32), source, targets,
                                panel.saturation_levels)
        for t in targets:
            kept = np.isfinite(ratio[:, t])
            found[t][0].extend(ratio[kept, t].tolist())
            found[t][1].extend(sd[kept, t].tolist())
    # Read up to a whole dye's counts: labelled CTCs carry no co-expressing leukocyte, so a
    # floor they agree on above PLAUSIBLE_LEAK is a leak (or the panel misdescribed), said
    # as such; it was dropped and the card said the ratios did not agree.
    # A floor they agree on at 0 is measured too: an instrument with no leak there (a model
    # fine-tuned for another kept its 30 %, said "not measured").
    leaks = {t: leak_mode(np.asarray(r), np.asarray(sd), LABELLED_WEIGHT, MAX_LEAK)
             for t, (r, sd) in found.items() if len(r) >= MIN_LABELLED}
    leaks = {t: m for t, m in leaks.items() if m is not None}
    agreed = [t for t, m in leaks.items() if m <= PLAUSIBLE_LEAK]
    beyond = {panel.names[t]: round(m, 4) for t, m in leaks.items() if m > PLAUSIBLE_LEAK}
    for name, share in beyond.items():  # (the grid's top, 1.0, stands for that or more)
        log.warning("the labelled CTCs' %s reads %s of its counts in %s, more than a leak "
                    "(%.0f%% at most; a filter set passing half a dye is broken): not taken "
                    "in, so the guard reads it as the CTCs' own %s and holds such calls. "
                    "First check panel.json's channel order (%s and %s in each other's "
                    "place?) and the channels' gains", panel.names[source],
                    "all or more" if share >= MAX_LEAK else f"{share:.0%}", name,
                    100 * PLAUSIBLE_LEAK, name, panel.names[source], name)
    return {"source": None if source is None else panel.names[source],
            "leaks": {panel.names[t]: round(leaks[t], 4) for t in agreed},
            "crops": {panel.names[t]: len(r) for t, (r, _) in found.items()},
            **({"beyond_plausible": beyond} if beyond else {})}
