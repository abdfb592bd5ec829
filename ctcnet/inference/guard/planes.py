"""Which of the marker guard's planes a panel names: the guard reads the nucleus (DNA), CK
and CD45 by their markers' names (:func:`ctcnet.io.panel.marker_role`). A plane named in a
way no role is known by (``CK 8/18`` was, before keratins by number were read) left the guard
without it: every measurement of a CTC call NaN, nothing held, and no word of it anywhere.
"""

from __future__ import annotations

import logging

from ctcnet.core.said_once import first_time

log = logging.getLogger(__name__)

# The guard's roles, as a person names their planes.
GUARD_PLANES = {"nucleus": "the DNA (DAPI, Hoechst)", "epithelial": "CK (cytokeratin)",
                "leukocyte": "CD45"}


def missing_guard_planes(panel) -> list[str]:
    """The guard's planes ``panel`` names none of, as a person names them."""
    roles = set(panel.roles())
    return [said for role, said in GUARD_PLANES.items() if role not in roles]


def doubled_guard_planes(panel) -> list[str]:
    """The guard's planes ``panel`` names twice or more (DAPI and Hoechst, CK and pan-CK), as
    said: the guard reads the first of each."""
    said = []
    for role in GUARD_PLANES:
        names = [c.name for c in panel.channels if c.role == role]
        if len(names) > 1:
            said.append(f"{' and '.join(names)} all read as {GUARD_PLANES[role]} (the guard "
                        f"reads {names[0]})")
    return said


def warn_unguarded(panel, what: str = "the model") -> None:
    """Say once a process (logging) that ``panel`` lacks a plane the guard reads, and so what
    the guard cannot check, or names one twice (a batch of crops asks each time: the names
    looked up first, the roles only once)."""
    if not first_time("guard-planes", tuple(panel.names)):
        return
    missing = missing_guard_planes(panel)
    if missing:
        log.warning("%s reads the channels %s, none of them %s by its name: the marker guard "
                    "checks no call by that marker (its measurements NaN, nothing held for "
                    "it); name each plane by its marker (CK, CD45, DAPI; aliases such as "
                    "pan-CK, CK8/18, PTPRC, Hoechst are read)", what, ", ".join(panel.names),
                    " or ".join(missing))
    for doubled in doubled_guard_planes(panel):
        log.warning("%s reads the channels %s: %s; name each plane by what it holds", what,
                    ", ".join(panel.names), doubled)
