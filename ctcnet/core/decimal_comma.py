"""A number typed with a decimal comma ("7,5", a European keyboard's or spreadsheet's), told
apart from text that is no number, so a refusal can say which number was meant."""

from __future__ import annotations

import re

_DECIMAL_COMMA = re.compile(r"\s*([+-]?\d+),(\d+)\s*")


def meant_by_comma(text) -> str | None:
    """The number ``text`` means with its decimal comma made a point ("7,5" -> "7.5"), or both
    it may mean where three digits follow the comma ("1,000": "1.000 or 1000", a thousands
    separator as likely); None where it is no number so written."""
    found = _DECIMAL_COMMA.fullmatch(text) if isinstance(text, str) else None
    if not found:
        return None
    point = f"{found[1]}.{found[2]}"
    return f"{point} or {found[1]}{found[2]}" if len(found[2]) == 3 else point
