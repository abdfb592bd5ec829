"""The slips a person makes editing a scan's metadata by hand (a scanner's XML copied into
panel.json or cartridge.json), named so that the refusal says what to change: a JSON file's
trailing or missing comma, single quotes and a decimal comma, at their line; a pixel size in
nm or mm where um is meant, with its value in um."""

from __future__ import annotations

import json
import re


def pixel_unit_hint(value: float) -> str:
    """What a pixel size out of range may be in another unit (a scanner's XML gives nm, or
    mm): "; in nm? that is 0.5321 um per pixel" where that unit gives a scan's size, else
    ""."""
    for factor, unit in ((1e-3, "nm"), (1e3, "mm")):
        if 0.05 <= value * factor <= 2.0:
            return f"; in {unit}? that is {value * factor:g} um per pixel"
    return ""


def json_error_text(err: Exception, text: str) -> str:
    """A JSON parser's error as a person editing the file by hand can act on it: the slips
    such files hold (a comma after the last item, one missing at a line's end, single
    quotes) named at their line, Python's message beside."""
    if not isinstance(err, json.JSONDecodeError):
        return str(err)
    before = text[:err.pos].rstrip()
    here = text[err.pos:err.pos + 1]
    if not text[err.pos:].strip() and text.strip():  # the text ends where the parser stood
        return (f"the file ends before its JSON does (cut short: a copy or export stopped "
                f"part-way?): write it again whole ({err})")
    if before.endswith(",") and here in "}]" and here:
        line = before.count("\n") + 1
        return (f"a comma after the last item on line {line} (JSON allows none before "
                f"{here!r}): remove it ({err})")
    if here == "'":
        return f"JSON quotes names and texts with double quotes (\"), not single ones ({err})"
    comma = re.search(r"(\d+),\s*$", before)
    if comma and here.isdigit() and err.msg.startswith("Expecting property name"):
        number = comma.group(1) + "." + re.match(r"\d+", text[err.pos:]).group()
        return (f"a decimal comma on line {before.count(chr(10)) + 1}? JSON writes a number "
                f"with a point ({number}) ({err})")
    if err.msg.startswith("Expecting ',' delimiter") and "\n" in text[len(before):err.pos]:
        return (f"a comma missing at the end of line {before.count(chr(10)) + 1}? ({err})")
    return str(err)
