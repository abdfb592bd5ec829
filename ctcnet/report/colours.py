"""The false colour of each marker role in the gallery's overlay panel, and its name for the
report's legend: one table a palette, so the legend says what the tiles show.

``cellsearch`` (the default) is close to the usual CellSearch false colours: CK green beside
CD45 red, which a red-green colour-blind reviewer (about one man in twelve) sees as one
yellow. ``colourblind`` keeps the pair that decides a call apart under deuteranopia,
protanopia and tritanopia alike (CK orange, CD45 cyan, DAPI blue; simulated (Machado 2009):
CK and CD45 84 or more CIELAB units apart in each, against 25 for green and red under
deuteranopia; the closest pair, DAPI and CD45 under tritanopia, 39); the platelet and
neutrophil markers stay told apart by their grey panels.
"""

from __future__ import annotations

# Display colour per marker role (RGB, 0-1), close to the usual CellSearch false colours, and
# the word for it.
ROLE_COLOURS = {
    "nucleus": ((0.25, 0.35, 1.0), "blue"), "epithelial": ((0.1, 1.0, 0.2), "green"),
    "leukocyte": ((1.0, 0.15, 0.1), "red"), "platelet": ((1.0, 0.85, 0.0), "yellow"),
    "neutrophil": ((1.0, 0.2, 0.9), "magenta"), "mesenchymal": ((0.0, 0.9, 0.9), "cyan"),
    "epcam": ((0.6, 1.0, 0.3), "light green"), "unknown": ((0.6, 0.6, 0.6), "grey"),
}


COLOURBLIND_COLOURS = {
    "nucleus": ((0.25, 0.45, 1.0), "blue"), "epithelial": ((1.0, 0.7, 0.0), "orange"),
    "leukocyte": ((0.0, 0.9, 0.9), "cyan"), "platelet": ((0.9, 0.9, 0.9), "white"),
    "neutrophil": ((0.85, 0.3, 0.65), "pink"), "mesenchymal": ((0.6, 0.4, 0.0), "brown"),
    "epcam": ((1.0, 0.9, 0.5), "pale yellow"), "unknown": ((0.6, 0.6, 0.6), "grey"),
}
PALETTES = {"cellsearch": ROLE_COLOURS, "colourblind": COLOURBLIND_COLOURS}
# CK and CD45 added up, in each palette (a CK+CD45+ leukocyte, a CTC with a leukocyte on it).
MIXED = {"cellsearch": "yellow", "colourblind": "white"}
DEFAULT_PALETTE = "cellsearch"


# The markers the overlay mixes: CellSearch's composite (the nucleus and the CTC marker) and
# CD45, which a call turns on. Colours mixed add up: with CD61 yellow and CD66b magenta in it
# too, a CK+CD45+ leukocyte showed as yellow as a platelet-coated cluster, CD45 over DAPI as
# magenta as a neutrophil marker. The others are read in their own grey panels.
OVERLAY_ROLES = ("nucleus", "epithelial", "leukocyte")
# A panel without CK shows its CTC marker in the overlay in CK's place.
CTC_MARKER_ROLES = ("epithelial", "mesenchymal", "epcam")


def overlay_roles(roles: list[str]) -> set[str]:
    """The roles of ``roles`` (a panel's, in order) the overlay mixes."""
    shown = set(OVERLAY_ROLES)
    if "epithelial" not in roles:
        shown |= {r for r in CTC_MARKER_ROLES if r in roles}
    return shown


def role_colour(role: str, palette: str = DEFAULT_PALETTE) -> tuple[float, float, float]:
    """The overlay colour (RGB, 0-1) of a marker role in ``palette``."""
    colours = PALETTES[palette]
    return colours.get(role, colours["unknown"])[0]


def overlay_legend(names: list[str], roles: list[str], palette: str = DEFAULT_PALETTE) -> str:
    """"DAPI blue, CK green, CD45 red (CK with CD45 yellow); CD61, CD66b in their own panels
    only": each channel the overlay mixes with its colour, what the two markers of a call
    make together, and the channels it leaves out."""
    colours = PALETTES[palette]
    shown = overlay_roles(list(roles))
    said = ", ".join(f"{name} {colours.get(role, colours['unknown'])[1]}"
                     for name, role in zip(names, roles) if role in shown)
    both = [n for n, r in zip(names, roles) if r in ("epithelial", "leukocyte")]
    if len(both) == 2:  # what the pair that decides a call shows as together
        said += f" ({both[0]} with {both[1]} {MIXED[palette]})"
    left = [name for name, role in zip(names, roles) if role not in shown]
    own = "in its own panel only" if len(left) == 1 else "in their own panels only"
    return said + (f"; {', '.join(left)} {own}" if left else "")
