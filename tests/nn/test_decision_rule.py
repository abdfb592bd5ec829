"""The decision rule as a type (``ctcnet.nn.decision_rule.DecisionRule``): the dict a spec
stores read and written back unchanged (shipped models' checkpoints and ONNX metadata), its
checks, its immutability, its provenance and the balanced rule's calls."""

import dataclasses
import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from ctcnet.errors import InputError
from ctcnet.io.panel import default_panel
from ctcnet.io.taxonomy import default_taxonomy
from ctcnet.nn.calls import (
    DecisionRule,
    calls_from_proba,
    decision_weights,
    deployment_proba,
    prior_rule,
    top_class,
)
from ctcnet.nn.spec import SPEC_KEY, ModelSpec

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["ctc", "wbc", "cluster", "debris"]
SHIPPED = sorted([*ROOT.glob("models/*.pt"), *ROOT.glob("models/*.onnx"),
                  *ROOT.glob("ctcnet/models/*.pt"), *ROOT.glob("ctcnet/models/*.onnx")])
FITTED = {"rule": "prior_shift", "log_weights": {"ctc": -3.75, "cluster": -6.5},
          "fitted": {"cartridges": 40, "at_fit": {"ctc": {"recall": 0.89, "cutoff": None}},
                     "true_counts": {"ctc": [0, 30]}}}


def stored_spec(path: Path) -> tuple[dict, str | None]:
    """The spec dict a shipped model file stores, and its ONNX metadata text (None: a .pt)."""
    if path.suffix == ".pt":
        import torch

        return torch.load(path, weights_only=True, map_location="cpu")[SPEC_KEY], None
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    text = {p.key: p.value for p in model.metadata_props}[SPEC_KEY]
    return json.loads(text), text


def test_the_shipped_models_are_found():
    assert {p.suffix for p in SHIPPED} == {".pt", ".onnx"} and len(SHIPPED) >= 4


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_rules_round_trip_byte_identical(path):
    data, text = stored_spec(path)
    stored = data.get("decision")
    rule = DecisionRule.from_dict(stored, [c["name"] for c in data["taxonomy"]["classes"]])
    out = rule.to_dict()
    assert out == (stored or {})
    if text is None:  # a checkpoint: same keys in the same order, same pickle
        assert json.dumps(out) == json.dumps(stored or {})
        assert pickle.dumps(out) == pickle.dumps(stored or {})
    else:  # ONNX metadata is JSON with sorted keys
        assert json.dumps(out, sort_keys=True) == json.dumps(stored or {}, sort_keys=True)
    spec = ModelSpec.from_dict(data)
    assert spec.decision == rule and bool(rule) == bool(stored)
    if text is not None:  # ONNX metadata: the spec's JSON, byte for byte
        assert spec.to_json() == text
    else:  # a checkpoint: torch.save of the spec writes the same bytes as of the stored dict
        import torch

        written, original = io.BytesIO(), io.BytesIO()
        torch.save(spec.to_dict(), written)
        torch.save({**spec.to_dict(), "decision": stored}, original)
        assert written.getvalue() == original.getvalue()
    assert rule.name == ("cartridge" if stored else "balanced")


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.suffix == ".onnx"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_onnx_runtime_reads_the_rule_once_from_the_metadata(path):
    from ctcnet.deploy.runtime import OnnxClassifier

    clf = OnnxClassifier(path, providers=["CPUExecutionProvider"])
    assert isinstance(clf.decision, DecisionRule)
    assert clf.decision.to_dict() == (clf.spec.get("decision") or {})
    assert clf.decision == clf.to_model_spec().decision


@pytest.mark.parametrize("decision, message", [
    ({"rule": "threshold"}, "not one of"),
    (["rule", "prior_shift"], "not one of"),
    ({"log_weights": {"ctc": -1.0}}, "not one of"),
    ({"rule": "prior_shift", "log_weights": {"tumour": -2.0}}, "unknown class"),
    ({"rule": "prior_shift", "log_weights": {"ctc": float("nan")}}, "finite"),
    ({"rule": "prior_shift", "log_weights": {"ctc": float("inf")}}, "finite"),
    ({"rule": "prior_shift", "log_weights": {"ctc": "-2"}}, "finite"),
    ({"rule": "prior_shift", "log_weights": ["ctc", -2.0]}, "map class names"),
])
def test_invalid_rules_are_refused_with_the_specs_messages(decision, message):
    with pytest.raises(InputError, match=message) as err:
        DecisionRule.from_dict(decision, NAMES, "m.pt")
    assert "m.pt" in str(err.value)
    data = ModelSpec(arch="compact", panel=default_panel(),
                     taxonomy=default_taxonomy()).to_dict() | {"decision": decision}
    with pytest.raises(InputError, match=message):
        ModelSpec.from_dict(data)


def test_only_the_type_is_taken_past_the_parsing_boundary():
    proba = np.full((2, 4), 0.25, np.float32)
    plain = {"rule": "prior_shift", "log_weights": {"ctc": -1.0}}
    for call in (lambda: calls_from_proba(proba, NAMES, 0.9, plain),
                 lambda: deployment_proba(proba, NAMES, {}),
                 lambda: top_class(proba, NAMES, plain),
                 lambda: decision_weights(plain),
                 lambda: prior_rule("cartridge", NAMES, plain, "cartridge"),
                 lambda: ModelSpec(arch="compact", panel=default_panel(),
                                   taxonomy=default_taxonomy(), decision={})):
        with pytest.raises(TypeError, match="DecisionRule"):
            call()
    with pytest.raises(ValueError):
        DecisionRule(None, (("ctc", -1.0),))
    with pytest.raises(ValueError, match="not one of"):
        DecisionRule("threshold")


def test_a_rule_is_frozen_and_hands_out_copies():
    rule = DecisionRule.from_dict(FITTED, NAMES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.log_weights = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rule.rule = None
    out = rule.to_dict()
    out["log_weights"]["ctc"] = 0.0
    out["fitted"]["at_fit"]["ctc"]["recall"] = 0.0
    fitted = rule.fitted
    fitted["cartridges"] = 0
    weights = rule.weights
    weights["wbc"] = 5.0
    assert rule.to_dict() == FITTED
    # ...and it does not share the dict it was read from.
    source = json.loads(json.dumps(FITTED))
    read = DecisionRule.from_dict(source, NAMES)
    source["fitted"]["cartridges"] = 0
    source["log_weights"]["ctc"] = 0.0
    assert read.to_dict() == FITTED
    # Equal rules are equal whatever the order of their keys, and hash alike.
    reordered = DecisionRule.from_dict(
        {"fitted": FITTED["fitted"], "log_weights": {"cluster": -6.5, "ctc": -3.75},
         "rule": "prior_shift"}, NAMES)
    assert reordered == rule and hash(reordered) == hash(rule)
    assert len({rule, reordered, DecisionRule.balanced()}) == 2
    assert rule != FITTED  # a rule is not its dict: to_dict() is


def test_the_stored_dict_keeps_what_it_was_read_with():
    """A record of None and keys this version does not know are written back as read."""
    stored = {"rule": "prior_shift", "log_weights": {"ctc": -2}, "fitted": None,
              "note": {"by": "hand"}}
    rule = DecisionRule.from_dict(stored, NAMES)
    assert rule.to_dict() == stored and list(rule.to_dict()) == list(stored)
    assert json.dumps(rule.to_dict()) == json.dumps(stored)  # -2 stays an int
    assert rule.fitted is None and rule.log_weights_for(NAMES).tolist() == [-2.0, 0, 0, 0]
    assert DecisionRule.from_dict(None, NAMES).to_dict() == {}
    assert DecisionRule.from_dict({}, NAMES) == DecisionRule.balanced()


def test_a_band_kept_twice_drops_the_fusion_and_names_each_keeper():
    """A fine-tune of a recalibrated model: the recalibration had kept the fused band, so the
    fine-tune's keeping it left ``reads: fused`` (the fusion gone) and the card's fusion
    sentence out: each keeper is named in turn, and the fusion drop applies."""
    from ctcnet.nn.decision_rule import FUSION_NOT_KEPT

    band = {"band": 0.5, "level": 0.01, "confidence": 0.95, "reads": "fused"}
    rule = DecisionRule.prior_shift({"ctc": -3.0}).with_review_band(band)
    recal = rule.with_band_kept("default", "a recalibration", drop_fusion=False)
    assert recal.review_band_record["reads"] == "fused"
    tuned = recal.with_band_kept("recal", "a fine-tune", drop_fusion=True).review_band_record
    assert tuned["reads"] == "network"
    assert tuned["fitted_for"] == (
        "the base model default (kept by a recalibration, not measured again on this model); "
        f"then kept from recal by a fine-tune; {FUSION_NOT_KEPT}: here it reads the network's "
        "posterior")


def test_balanced_is_a_no_op_on_the_calls(rng):
    proba = rng.dirichlet(np.ones(4), 200).astype(np.float32)
    proba[3] = np.nan
    balanced = DecisionRule.balanced()
    assert not balanced and balanced.is_balanced and balanced.name == "balanced"
    assert balanced.to_dict() == {} and balanced.weights == {} and balanced.fitted is None
    assert balanced.log_weights_for(NAMES).tolist() == [0.0] * 4
    assert deployment_proba(proba, NAMES, balanced) is not None
    np.testing.assert_array_equal(deployment_proba(proba, NAMES, balanced), proba)
    plain = calls_from_proba(proba, NAMES, 0.9)
    for got in (calls_from_proba(proba, NAMES, 0.9, balanced),
                calls_from_proba(proba, NAMES, 0.9, None)):
        for a, b in zip(got, plain):
            np.testing.assert_array_equal(a, b)
    finite = np.isfinite(proba).all(axis=1)
    assert (plain[0][finite] == np.asarray(NAMES, object)[proba[finite].argmax(axis=1)]).all()
    # A stated prior equal to the training prior is a rule (truthy, recorded) that changes
    # nothing; so is a rule of zero weights.
    even = DecisionRule.from_prior("ctc=0.25,wbc=0.25,cluster=0.25,debris=0.25", NAMES)
    assert even and even.is_balanced
    np.testing.assert_array_equal(calls_from_proba(proba, NAMES, 0.9, even)[0], plain[0])
    zero = DecisionRule.prior_shift({"ctc": 0.0})
    assert zero and zero.is_balanced and zero.to_dict() == {"rule": "prior_shift",
                                                           "log_weights": {"ctc": 0.0}}


def test_a_rule_says_where_it_comes_from():
    fitted = DecisionRule.from_dict(FITTED, NAMES)
    assert fitted.name == "cartridge" and not fitted.is_balanced and fitted
    assert fitted.weights == {"ctc": -3.75, "cluster": -6.5}
    assert fitted.log_weights_for(NAMES).tolist() == [-3.75, 0.0, -6.5, 0.0]
    assert fitted.log_weights_for(["debris", "cluster"]).tolist() == [0.0, -6.5]
    stated, name = prior_rule("ctc=0.02", NAMES, fitted, "balanced")
    assert stated.name == name == "ctc=0.02,wbc=0.326667,cluster=0.326667,debris=0.326667"
    assert stated == DecisionRule.from_prior("ctc=0.02", NAMES)
    assert stated.weights["ctc"] == pytest.approx(np.log(0.02 * 4))
    assert stated.fitted["stated_prior"]["ctc"] == 0.02
    # Its provenance survives the spec's dict (a spec saved with a stated prior).
    assert DecisionRule.from_dict(stated.to_dict(), NAMES).name == name
    assert prior_rule("cartridge", NAMES, fitted, "balanced") == (fitted, "cartridge")
    assert prior_rule("balanced", NAMES, fitted, "cartridge") == (DecisionRule.balanced(),
                                                                  "balanced")
    with pytest.raises(InputError, match="--prior"):
        DecisionRule.from_prior("tumour=0.1", NAMES)
    made = DecisionRule.prior_shift({"ctc": -3.75, "cluster": -6.5}, FITTED["fitted"])
    assert made == fitted and made.to_dict() == FITTED


def test_a_spec_holds_the_type_and_stores_the_dict():
    rule = DecisionRule.from_dict(FITTED, NAMES)
    spec = ModelSpec(arch="compact", panel=default_panel(), taxonomy=default_taxonomy(),
                     decision=rule)
    assert ModelSpec(arch="compact", panel=default_panel(),
                     taxonomy=default_taxonomy()).decision == DecisionRule.balanced()
    assert spec.to_dict()["decision"] == FITTED
    again = ModelSpec.from_json(spec.to_json())
    assert again.decision == rule and again.to_json() == spec.to_json()
    # A rule made in code is checked against the spec's classes like one read from a file.
    with pytest.raises(InputError, match="unknown class"):
        spec.replace(decision=DecisionRule.prior_shift({"tumour": -1.0})).check()
