import json
import math

import numpy as np
import pytest

from ctcnet.core.json_text import finite_or_null, strict_json


def test_non_finite_floats_are_written_null():
    value = {"recall": float("nan"), "n": 3, "limits": (1.0, math.inf), "rows": [
        {"p": np.float64("nan"), "name": "NaN"}, -math.inf]}
    text = strict_json(value, indent=1)
    assert "NaN" not in text.replace('"NaN"', "") and "Infinity" not in text
    assert json.loads(text) == {"recall": None, "n": 3, "limits": [1.0, None],
                                "rows": [{"p": None, "name": "NaN"}, None]}
    assert finite_or_null(0.5) == 0.5


def test_what_json_cannot_write_still_raises():
    with pytest.raises(TypeError):
        strict_json({"x": object()})
