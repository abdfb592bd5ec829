"""The names of markers: the biological role each well-known marker name or alias plays, and
how a channel's name is read past its dye, species and "anti" to its marker (``CD61-FITC``,
``anti-human CD45``, ``HER2-FITC``). The panel (:mod:`ctcnet.io.panel`) matches channels by
these."""

from __future__ import annotations

import re

# Marker name (upper case) -> biological role. Roles are what the simulator renders and what the
# marker gate reads; a name not listed here is a channel of unknown role (rendered as background).
MARKER_ROLES = {
    "DAPI": "nucleus", "HOECHST": "nucleus", "DNA": "nucleus",
    "CK": "epithelial", "CYTOKERATIN": "epithelial", "PANCK": "epithelial", "PAN-CK": "epithelial",
    "PANCYTOKERATIN": "epithelial", "PAN-CYTOKERATIN": "epithelial", "KERATIN": "epithelial",
    "PAN-KERATIN": "epithelial", "PANKERATIN": "epithelial", **dict.fromkeys(  # CellSearch's:
        ("CK8", "CK18", "CK19", "KRT8", "KRT18", "KRT19"), "epithelial"),  # (CK20, CK7: apart)
    "CD45": "leukocyte", "PTPRC": "leukocyte", "CD45RA": "leukocyte", "CD45RO": "leukocyte",
    "CD61": "platelet", "CD41": "platelet",
    "CD66B": "neutrophil", "CD15": "neutrophil",
    "VIM": "mesenchymal", "VIMENTIN": "mesenchymal",
    "EPCAM": "epcam", "CD326": "epcam",
}
# Markers that can vouch for a CTC that lost CK (the simulator's, the guard's no_ck, a drop).
CK_NEGATIVE_CTC_ROLES = ("mesenchymal", "epcam")
# The markers a lone CTC lacks: one lit means a leukocyte, platelet or granulocyte is there
# (read so by the marker guard and by detection's members).
EXCLUSION_ROLES = ("leukocyte", "platelet", "neutrophil")

# A marker named with its dye ("CD61-FITC", "CD66b AF647", "DAPI_405"): words parted so.
_DYE_SEPARATORS = re.compile(r"[-_ /(]")
QUALIFIERS = {"ANTI", "HUMAN", "HU", "CANINE", "DOG", "FELINE", "CAT", "MURINE", "MOUSE",
              "RAT", "EQUINE", "BOVINE", "PORCINE", "MACAQUE", "PRIMATE"}
# A dye or wavelength word (APC, PE, AF647, Cy5, 405nm), after a marker or before it: read past.
DYE_WORD = re.compile(r"^(apc|pe|fitc|percp|bv\d+|bb\d+|af\d+|alexa\d*|cy\d+|dylight\d*|"
                      r"atto\d*|\d+(nm)?)$", re.IGNORECASE)
# DNA dyes sold by number (Hoechst 33342, DAPI's 405 nm): read with the number run on. Only
# these: a CD's number is its identity (CD4 and CD45 are other markers), as a keratin's is.
_NUMBERED_DYES = {"HOECHST", "DAPI"}


def from_the_marker(words: list[str]) -> list[str]:
    """A channel name's words from its marker on (canine CD45, anti-human CD45, PE-CK)."""
    while len(words) > 1 and (words[0] in QUALIFIERS or DYE_WORD.match(words[0])):
        words = words[1:]
    return words


def marker_core(name: str) -> str:
    """A channel name without the dye and qualifiers round its marker (``HER2-FITC``,
    ``anti-HER2``, ``PE HER2``: ``HER2``), for markers no alias names."""
    words = from_the_marker([w for w in _DYE_SEPARATORS.split(name.strip().upper()) if w])
    # A dye's name after the marker, never a bare number: IL-6 and IL-8, Ki-67, CD-45 and
    # CD-61 are other markers, not one marker at two wavelengths.
    while len(words) > 1 and DYE_WORD.match(words[-1]) and not words[-1].isdigit():
        words = words[:-1]
    return "-".join(words)


def marker_role(name: str) -> str:
    """The role of a well-known marker name or alias (``CD61-FITC``: 'platelet'), or 'unknown'."""
    upper = name.strip().upper()
    words = from_the_marker([w for w in _DYE_SEPARATORS.split(upper) if w])
    if not words:
        return "unknown"
    # A dye's number run on to its name (Hoechst33342, DAPI405): the name before the digits.
    run_on = re.fullmatch(r"([A-Z]+)\d+", words[0])
    # The whole name, its first word, or its first two as one (pan-CK-PE, Pan Cytokeratin).
    for key in (upper, words[0], "-".join(words[:2]),
                run_on[1] if run_on and run_on[1] in _NUMBERED_DYES else None):
        if key in MARKER_ROLES:
            return MARKER_ROLES[key]
    return "unknown"


def marker_key(name) -> str:
    """What a channel name is compared by: its well-known marker's role, else the name."""
    role = marker_role(str(name))
    return f"role:{role}" if role != "unknown" else str(name).upper()
