"""Strict JSON for the files a laboratory's software reads: a float that is not finite (NaN,
infinity: a recall over no cell, a bias over no cartridge) is written ``null``, as the docs say,
never the bare ``NaN`` Python's ``json`` writes by default, which a strict reader (a
browser's ``JSON.parse``, Jackson, ``jq``) refuses, losing the whole file where it mattered.
And a record read back keeps the keys its dataclass knows (:func:`known_fields`); one read
strictly refuses those bare constants too (:func:`strict_loads`)."""

from __future__ import annotations

import json
import math
from dataclasses import MISSING, fields
from typing import Any


def finite_or_null(value: Any) -> Any:
    """``value`` with every non-finite float inside it (dicts, lists, tuples) as None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(item) for item in value]
    return value


def strict_json(value: Any, **dumps_options) -> str:
    """``json.dumps(value, **dumps_options)`` with non-finite floats as ``null``
    (:func:`finite_or_null`); anything else ``json`` cannot write still raises."""
    return json.dumps(finite_or_null(value), allow_nan=False, **dumps_options)


def _no_json_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def strict_loads(text: str | bytes, **loads_options) -> Any:
    """``json.loads(text, **loads_options)`` refusing ``NaN``, ``Infinity`` and
    ``-Infinity``, which Python's parser takes and no strict reader does (ValueError)."""
    return json.loads(text, parse_constant=_no_json_constant, **loads_options)


def known_fields(record, data: dict) -> dict:
    """The keys of the JSON object ``data`` that the dataclass ``record`` has: a file a later
    ctcnet wrote, read by an earlier one (rolled back to), holds keys it does not know, and
    one record that refused them refused the whole summary. ValueError where ``data`` is no
    object (a file replaced by a JSON list: a traceback where a one-line error belongs), or
    where it lacks a field the record cannot do without."""
    if not isinstance(data, dict):
        raise ValueError(f"a JSON {type(data).__name__} where a record ({record.__name__}: "
                         "an object of fields) belongs")
    names = {f.name for f in fields(record)}
    # A field with no default that the object lacks (a summary edited by hand): ValueError
    # naming it, as the callers catch, where the record's own TypeError named its __init__.
    lacking = [f.name for f in fields(record) if f.name not in data and f.init
               and f.default is MISSING and f.default_factory is MISSING]
    if lacking:
        raise ValueError(f"a {record.__name__} record lacking {', '.join(map(repr, lacking))}")
    return {k: v for k, v in data.items() if k in names}
