"""ctcnet.nn.spec: the model spec's round trip."""

import pytest

from ctcnet.errors import InputError
from ctcnet.io.panel import default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.spec import ModelSpec


def test_spec_round_trip():
    spec = ModelSpec("compact", default_panel(), default_taxonomy(), crop_size=64,
                     temperature=1.3, training={"n": 5}, metrics={"macro_f1": 0.9})
    again = ModelSpec.from_json(spec.to_json())
    assert again == spec
    with pytest.raises(InputError):
        ModelSpec.from_dict({"nothing": 1})
