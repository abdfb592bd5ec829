"""The decision rule at deployment prevalence as a type (numpy only, no torch).

:class:`DecisionRule` is what ``spec.decision`` holds and what :mod:`ctcnet.nn.calls` applies:
per-class log weights added to the log probabilities before the call (why: the docstring of
:mod:`ctcnet.nn.calls`). It is made one of three ways, one per provenance: balanced (no
reweighting), from a stated prior (class frequencies, :func:`stated_prior`) or fitted at
cartridge prevalence (``ctcnet.evaluation.decision.fit_decision``); a spec's plain dict is read
by :meth:`DecisionRule.from_dict` and written back, unchanged, by :meth:`DecisionRule.to_dict`,
so checkpoints and ONNX metadata keep the dict they always held.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctcnet.core.decimal_comma import meant_by_comma
from ctcnet.errors import InputError
from ctcnet.io.taxonomy import as_class_name

DECISION_RULES = ("prior_shift",)
# Named priors (``ctcnet.nn.calls.prior_rule``); anything else given as a prior is stated
# frequencies.
CARTRIDGE_PRIOR = "cartridge"
BALANCED_PRIOR = "balanced"
# A kept review band's words where the base's cartridge marker fusion, which it read, was not
# kept (a fine-tune: the fusion was fitted on the base network's probabilities).
FUSION_NOT_KEPT = "fitted on its cartridge marker fusion, which is not kept"


@dataclass(frozen=True, eq=False)
class DecisionRule:
    """The decision rule at deployment prevalence: per-class log weights added to the log
    probabilities before the call (``spec.decision``; the module docstring says why).

    Frozen: the weights are a tuple of ``(class, weight)`` pairs, and the ``fitted`` record
    (and any other key of the stored dict) is a copy of what it was made from that nothing
    changes (:attr:`fitted` and :meth:`to_dict` return fresh copies). Made by one of three
    constructors, one per provenance (:attr:`name`): :meth:`balanced` (no
    reweighting: the network's own, balanced training prior), :meth:`from_prior` (stated class
    frequencies) and :meth:`prior_shift` (weights fitted at cartridge prevalence,
    ``ctcnet.evaluation.decision.fit_decision``); :meth:`from_dict` reads the plain dict a
    spec stores and :meth:`to_dict` writes it back exactly. Truthiness is that of the dict: a
    rule is true when one is set, even one whose weights are all 0; :attr:`is_balanced` says
    whether it changes any call.

    Parameters
    ----------
    rule : str, optional
        The rule's kind, one of :data:`DECISION_RULES`; None: no rule (balanced).
    log_weights : tuple of (str, float) pairs, default ()
        Each class's log weight, in the order the rule states them; a class not named keeps 0.
    records : tuple of (str, object) pairs, default ()
        The stored dict's other keys and their plain-data values, in order: ``fitted`` (what
        the rule was fitted on, or the stated prior), and any other key it was read with, kept
        so that it is written back unchanged.
    """

    rule: str | None = None
    log_weights: tuple[tuple[str, float], ...] = ()
    records: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        if self.rule is None and (self.log_weights or self.records):
            raise ValueError("a DecisionRule without a rule holds no weights or records")
        if self.rule is not None and self.rule not in DECISION_RULES:
            raise ValueError(f"decision rule {self.rule!r} is not one of {DECISION_RULES}")
        if not isinstance(self.log_weights, tuple) or not all(
                isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str)
                for p in self.log_weights):
            raise TypeError("DecisionRule.log_weights: a tuple of (class name, weight) pairs")

    # -- constructors --------------------------------------------------------------------------
    @classmethod
    def balanced(cls) -> DecisionRule:
        """No rule: the most probable class at the balanced training prior.

        Returns
        -------
        DecisionRule
            The empty rule (``to_dict()`` is ``{}``).
        """
        return cls()

    @classmethod
    def prior_shift(cls, log_weights: Mapping[str, float],
                    fitted: Mapping | None = None) -> DecisionRule:
        """A prior-shift rule with these log weights, e.g. the one fitted at cartridge
        prevalence with its ``fitted`` record.

        Parameters
        ----------
        log_weights : mapping of str to float
            Log weight per class name (classes not named keep 0).
        fitted : mapping, optional
            Plain-JSON record of what the rule was fitted on.

        Returns
        -------
        DecisionRule
            The rule (its class names are checked against a model's by :meth:`check`).
        """
        return cls("prior_shift", tuple((str(n), w) for n, w in dict(log_weights).items()),
                   () if fitted is None else (("fitted", copy.deepcopy(dict(fitted))),))

    @classmethod
    def from_prior(cls, prior: str, class_names: Sequence[str]) -> DecisionRule:
        """The rule of stated class frequencies (``"ctc=0.01,cluster=0.005"``,
        :func:`stated_prior`): each class's log weight is ``log(p * K)``, its prior against
        the balanced training prior ``1 / K``; the frequencies are its ``fitted`` record.

        Parameters
        ----------
        prior : str
            Class frequencies as ``class=p`` pairs; classes not named share the rest equally.
        class_names : sequence of str
            The model's classes, in output order.

        Returns
        -------
        DecisionRule
            The rule; its :attr:`name` is the frequencies of every class, ``class=p,...``.

        Raises
        ------
        InputError
            The text is not class frequencies of these classes (:func:`stated_prior`).
        """
        freq = stated_prior(prior, class_names)
        k = len(class_names)
        return cls.prior_shift({n: math.log(p * k) for n, p in freq.items()},
                               {"stated_prior": freq})

    @classmethod
    def from_dict(cls, decision: Any, class_names: Sequence[str],
                  source: str | None = None) -> DecisionRule:
        """Read the plain dict a spec stores (checkpoint, ONNX metadata); empty or None: no
        rule. A rule that names an unknown rule or class, or holds a non-finite weight, is
        refused (it would silently call nothing, or everything, of a class).

        Parameters
        ----------
        decision : dict or None
            ``{"rule": "prior_shift", "log_weights": {...}, "fitted": {...}}`` or empty.
        class_names : sequence of str
            The model's classes: every weighted class must be one of them.
        source : str, optional
            The file the dict came from, named in errors.

        Returns
        -------
        DecisionRule
            The rule; ``to_dict()`` gives ``decision`` back.

        Raises
        ------
        InputError
            The dict is not a valid decision rule for these classes.
        """
        if not decision:
            return cls.balanced()
        if not isinstance(decision, dict) or decision.get("rule") not in DECISION_RULES:
            raise InputError(f"model spec: decision rule {decision!r} is not one of "
                             f"{DECISION_RULES}", source)
        weights = decision.get("log_weights", {})
        if not isinstance(weights, dict):
            raise InputError("model spec: decision log_weights must map class names to "
                             "numbers", source)
        _check_weights(weights.items(), class_names, source)
        # Copied, not rebuilt: the same objects pickle to the same checkpoint bytes.
        return cls(decision["rule"], tuple(weights.items()),
                   tuple((k, copy.deepcopy(v)) for k, v in decision.items()
                         if k not in ("rule", "log_weights")))

    # -- what it is ----------------------------------------------------------------------------
    def check(self, class_names: Sequence[str], source: str | None = None) -> None:
        """Refuse weights of classes the model lacks and weights that are not finite numbers.

        Parameters
        ----------
        class_names : sequence of str
            The model's classes.
        source : str, optional
            The file the rule came from, named in errors.

        Raises
        ------
        InputError
            A weight names an unknown class or is not a finite number.
        """
        _check_weights(self.log_weights, class_names, source)

    def to_dict(self) -> dict:
        """The rule as the plain dict a spec stores (a fresh copy).

        Returns
        -------
        dict
            ``{}`` for no rule, else ``rule``, ``log_weights``, ``fitted`` (when the rule has
            a record) and any other keys it was read with: the dict :meth:`from_dict` read.
        """
        if self.rule is None:
            return {}
        return {"rule": self.rule, "log_weights": dict(self.log_weights),
                **{k: copy.deepcopy(v) for k, v in self.records}}

    @property
    def fitted(self) -> dict | None:
        """The ``fitted`` record (a fresh copy), or None when the rule has none."""
        return copy.deepcopy(dict(self.records).get("fitted"))

    @property
    def review_band(self) -> float | None:
        """The review band fitted with the rule (``review_band.band`` of its dict): a call of
        an uncounted class is shown when a counted class holds at least this share of the
        posterior (:func:`ctcnet.evaluation.miss_rate.band_for_miss_rate`); None: none."""
        record = dict(self.records).get("review_band")
        band = record.get("band") if isinstance(record, Mapping) else None
        return float(band) if isinstance(band, (int, float)) and 0.0 < band <= 1.0 else None

    @property
    def review_band_record(self) -> dict | None:
        """The review band's whole record (the band, its stated miss rate and where it was
        fitted; a fresh copy), or None without one."""
        record = dict(self.records).get("review_band")
        return copy.deepcopy(dict(record)) if isinstance(record, Mapping) else None

    def with_review_band(self, record: Mapping) -> DecisionRule:
        """The same rule with ``record`` (``band`` and how it was fitted) as its review band."""
        records = tuple((k, v) for k, v in self.records if k != "review_band")
        return DecisionRule(self.rule, self.log_weights,
                            records + (("review_band", copy.deepcopy(dict(record))),))

    def with_band_kept(self, base: str, by: str, drop_fusion: bool) -> DecisionRule:
        """The same rule whose review band (where it has one) says it was fitted for ``base``
        and kept by ``by`` (a fine-tune, a recalibration), not measured again: its stated miss
        rate is of the base network's calls. A band kept before (a fine-tune of a recalibrated
        model) keeps the first base it names and adds this keeper after it, so the record
        reads each keeper in turn. ``drop_fusion``: the base's cartridge fusion is not kept,
        so a band read on the fused posterior reads the network's here, and says so."""
        band = self.review_band_record
        if band is None:
            return self
        earlier = band.get("fitted_for")
        fitted_for = (f"{earlier}; then kept from {base} by {by}" if earlier else
                      f"the base model {base} (kept by {by}, not measured again on this model)")
        if drop_fusion and band.get("reads") == "fused":
            fitted_for += f"; {FUSION_NOT_KEPT}: here it reads the network's posterior"
            band = {**band, "reads": "network"}
        return self.with_review_band({**band, "fitted_for": fitted_for})

    @property
    def weights(self) -> dict[str, float]:
        """The log weights by class name (a copy; empty: no reweighting)."""
        return dict(self.log_weights)

    @property
    def is_balanced(self) -> bool:
        """True when the rule changes no probability (no weight other than 0): the calls
        are the network's most probable class."""
        return not any(float(w) for _, w in self.log_weights)

    @property
    def name(self) -> str:
        """Where the rule comes from, as ``summary.json`` names a prior: ``balanced`` (no
        rule), the stated frequencies ``class=p,...`` (:meth:`from_prior`) or ``cartridge``
        (any other rule: the model's, fitted at cartridge prevalence)."""
        if self.rule is None:
            return BALANCED_PRIOR
        stated = (self.fitted or {}).get("stated_prior")
        if isinstance(stated, dict):
            return ",".join(f"{n}={p:.6g}" for n, p in stated.items())
        return CARTRIDGE_PRIOR

    def log_weights_for(self, class_names: Sequence[str]) -> np.ndarray:
        """The log weights in class order.

        Parameters
        ----------
        class_names : sequence of str
            The model's classes, in output order.

        Returns
        -------
        ndarray, float64, shape (K,)
            Each class's log weight (0 for a class the rule does not name).
        """
        weights = self.weights
        return np.array([float(weights.get(n, 0.0)) for n in class_names], np.float64)

    def __bool__(self) -> bool:
        return self.rule is not None

    def __eq__(self, other) -> bool:
        if not isinstance(other, DecisionRule):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.rule, frozenset(self.log_weights)))


def as_rule(decision: DecisionRule | None) -> DecisionRule:
    """``decision`` itself, or the balanced rule for None; anything else (a spec's plain dict
    included: :meth:`DecisionRule.from_dict` reads one) is refused.

    Parameters
    ----------
    decision : DecisionRule or None
        A rule, or None for none.

    Returns
    -------
    DecisionRule
        The rule to apply.

    Raises
    ------
    TypeError
        ``decision`` is not a DecisionRule.
    """
    if decision is None:
        return DecisionRule.balanced()
    if not isinstance(decision, DecisionRule):
        raise TypeError(f"a decision rule is a DecisionRule, not {type(decision).__name__} "
                        "(DecisionRule.from_dict reads a spec's dict)")
    return decision


def _check_weights(weights, class_names: Sequence[str], source: str | None) -> None:
    """Refuse a weight of a class the model lacks or one that is not a finite number."""
    for name, value in weights:
        if name not in class_names:
            raise InputError(f"model spec: decision weight for unknown class {name!r} "
                             f"(classes: {list(class_names)})", source)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"model spec: decision weight of {name!r} is {value!r}, not a "
                             "finite number", source)


def stated_prior(text: str, class_names: Sequence[str]) -> dict[str, float]:
    """Class frequencies from ``"ctc=0.01,cluster=0.005"``: every class, in ``class_names``
    order; classes not named share what the named ones leave, equally. Each must be > 0 (a
    class of prior 0 could never be called) and the named ones may not exceed 1."""
    stated: dict[str, float] = {}
    items = str(text).split(",")
    for before, item in zip(items, items[1:]):  # "ctc=0,02": read as ctc=0, refused as 0
        name, sep, value = before.partition("=")
        meant = meant_by_comma(f"{value},{item}") if sep else None
        if meant:
            raise InputError(f"prior (--prior) {text!r}: a decimal comma? write "
                             f"{name.strip()}={meant} (the pairs are separated by commas)")
    for item in items:
        name, sep, value = item.partition("=")
        name = as_class_name(name.strip(), class_names)  # EMT-CTC as a class folder reads
        if not sep or not name:
            raise InputError(f"prior (--prior) {text!r}: give {CARTRIDGE_PRIOR}, "
                             f"{BALANCED_PRIOR} or class frequencies as class=p pairs, e.g. "
                             "ctc=0.01,cluster=0.005")
        if name not in class_names:
            raise InputError(f"prior (--prior): {name!r} is not a class of the model "
                             f"{list(class_names)}")
        if name in stated:  # (CTC and ctc are one class: the second given is not the one)
            raise InputError(f"prior (--prior): {name} is given twice in {text!r}")
        try:
            p = float(value)
        except ValueError:
            raise InputError(f"prior (--prior): {name}={value!r} is not a number") from None
        if not (math.isfinite(p) and 0 < p <= 1):
            raise InputError(f"prior (--prior): {name}={value} must be above 0 and at most 1")
        stated[name] = p
    rest = [n for n in class_names if n not in stated]
    left = 1.0 - sum(stated.values())
    if left < -1e-6 or (rest and left <= 1e-12):  # 1e-6: frequencies rounded when written
        raise InputError("prior (--prior): the stated frequencies sum to "
                         f"{sum(stated.values()):.6g}; they may not exceed 1"
                         + (f", and must leave some for {rest}" if rest else ""))
    if rest:
        return {n: stated[n] if n in stated else left / len(rest) for n in class_names}
    # Every class stated: read as relative frequencies (rounded ones need not sum to 1).
    total = sum(stated.values())
    return {n: stated[n] / total for n in class_names}
