"""What the panel.json of data given to predict says of its channels' leaks (``leaks_in``):
checked, and not read. The marker guard's leak allowances are the model's (its panel's
``leaks_in``, measured on a lab's labelled CTCs by ``ctcnet finetune``; ``ctcnet train`` takes
a crop folder's panel as the model's), so a spillover matrix written beside the scans changes
nothing there; said once per file, so that a lab does not believe the guard reads it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ctcnet.core.said_once import first_time
from ctcnet.io.panel import Panel

log = logging.getLogger(__name__)


def said_unread_leaks(panel: Panel, source: str | Path) -> Panel:
    """``panel`` as given, its ``leaks_in`` (where a channel states one) said not read."""
    stated = {c.name: c.leaks_in for c in panel.channels if c.leaks_in}
    if stated and first_time("data-panel-leaks", str(source)):
        log.warning("%s: leaks_in (%s) is not read from a data folder's panel.json: the marker "
                    "guard allows the leaks the model carries; label a few CTCs of this "
                    "instrument and run `ctcnet finetune` (or `ctcnet evaluate --calibrate-on "
                    "... --save-model`) to measure them into the model", source,
                    "; ".join(f"{name} {leaks}" for name, leaks in stated.items()))
    return panel
