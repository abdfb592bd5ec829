"""A number typed with a decimal comma ("7,5", a European keyboard's or spreadsheet's), told
apart from text that is no number, so a refusal can say which number was meant."""

from __future__ import annotations

import re

_DECIMAL_COMMA = re.compile(r"\s*([+-]?\d+),(\d+)\s*")


def meant_by_comma(text) -> str | None:
    """The number ``text`` means with its decimal comma made a point ("7,5" -> "7.5"); None
    where it is no number so written."""
    found = _DECIMAL_COMMA.fullmatch(text) if isinstance(text, str) else None
    return f"{found[1]}.{found[2]}" if found else None
