"""The false colour of each marker role in the gallery's overlay panel, and its name for the
report's legend: one table, so the legend says what the tiles show."""

from __future__ import annotations

# Display colour per marker role (RGB, 0-1), close to the usual CellSearch false colours, and
# the word for it.
ROLE_COLOURS = {
    "nucleus": ((0.25, 0.35, 1.0), "blue"), "epithelial": ((0.1, 1.0, 0.2), "green"),
    "leukocyte": ((1.0, 0.15, 0.1), "red"), "platelet": ((1.0, 0.85, 0.0), "yellow"),
    "neutrophil": ((1.0, 0.2, 0.9), "magenta"), "mesenchymal": ((0.0, 0.9, 0.9), "cyan"),
    "epcam": ((0.6, 1.0, 0.3), "light green"), "unknown": ((0.6, 0.6, 0.6), "grey"),
}


def role_colour(role: str) -> tuple[float, float, float]:
    """The overlay colour (RGB, 0-1) of a marker role."""
    return ROLE_COLOURS.get(role, ROLE_COLOURS["unknown"])[0]


def overlay_legend(names: list[str], roles: list[str]) -> str:
    """"DAPI blue, CK green, CD45 red, ...": each channel with its overlay colour."""
    return ", ".join(f"{name} {ROLE_COLOURS.get(role, ROLE_COLOURS['unknown'])[1]}"
                     for name, role in zip(names, roles))
