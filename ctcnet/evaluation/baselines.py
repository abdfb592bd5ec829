"""Classical baselines the CNN has to beat, on the same crops and in the same report.

* :class:`MarkerGate`: the CellSearch rule (DAPI+, CK+, CD45-, larger than 4 um) on segmented
  per-channel intensities and areas (:mod:`ctcnet.evaluation.features`), extended to the
  taxonomy's other classes the way an analyst would gate them: CK+ DAPI+ objects that also carry
  leukocyte, neutrophil or platelet signal or are larger than one cell are clusters; DAPI+ CD45+
  CK- objects are leukocytes; the rest is debris. Its intensity and cluster-size thresholds, and
  a CK bleed-through compensation ratio, are fitted on a training set by coordinate ascent of
  macro-F1; the 4 um size rule stays as CellSearch sets it.
* :class:`FeatureClassifier`: gradient-boosted trees (scikit-learn) on all features.

Both map onto any taxonomy: a rule whose class the taxonomy lacks is skipped, and a class the
baselines cannot express (``tdev`` as a class of its own, say) is simply never predicted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctcnet.evaluation.features import crop_features, feature_matrix, role_feature
from ctcnet.evaluation.metrics import macro_f1
from ctcnet.io.panel import Panel

# CellSearch: a CTC is larger than 4 um.
CTC_MIN_DIAMETER_UM = 4.0
# Marker thresholds in blurred SNR units (see features.py); starting points for the fit.
DEFAULT_THRESHOLDS = {"nucleus": 3.0, "epithelial": 3.0, "leukocyte": 3.0, "neutrophil": 3.0,
                      "platelet": 3.0, "cluster_diameter_um": 22.0, "bleed_ratio": 0.0}
# The gate reads each marker's 90th percentile inside the object: robust to a nucleus or a CD45
# ring that covers only part of it.
MARKER_FEATURE = "p90"
_ROLES = ("nucleus", "epithelial", "leukocyte", "neutrophil", "platelet")


@dataclass
class MarkerGate:
    """CellSearch-style gate over segmented per-channel features."""

    panel: Panel
    class_names: list[str]
    thresholds: dict = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    fallback: str = "debris"

    def __post_init__(self):
        # Thresholds given in part (or saved by an older version) are completed by the defaults.
        self.thresholds = {**DEFAULT_THRESHOLDS, **self.thresholds}

    def _markers(self, feats: dict) -> dict[str, np.ndarray | None]:
        return {role: role_feature(feats, self.panel, role, MARKER_FEATURE) for role in _ROLES}

    def _decide(self, markers: dict, diameter: np.ndarray, thresholds: dict) -> np.ndarray:
        n = diameter.shape[0]
        no = np.zeros(n, bool)

        def positive(role):
            values = markers[role]
            return no if values is None else values > thresholds[role]

        def compensated(role):
            # Bright CK bleeds into its neighbouring channels; as an analyst's compensation, a
            # leukocyte/platelet/neutrophil marker only counts above a share of the CK signal.
            ck_values = markers["epithelial"]
            if ck_values is None or markers[role] is None:
                return positive(role)
            return positive(role) & (markers[role] > thresholds["bleed_ratio"] * ck_values)

        dapi, ck, cd45 = positive("nucleus"), positive("epithelial"), compensated("leukocyte")
        attached = cd45 | compensated("neutrophil") | compensated("platelet") | (
            diameter > thresholds["cluster_diameter_um"])
        rules = [("cluster", dapi & ck & attached),
                 ("ctc", dapi & ck & ~cd45 & (diameter > CTC_MIN_DIAMETER_UM)),
                 ("wbc", dapi & cd45 & ~ck)]
        out = np.full(n, self.class_names.index(self.fallback), np.int64)
        decided = no.copy()
        for name, hit in rules:
            if name in self.class_names:
                take = hit & ~decided
                out[take] = self.class_names.index(name)
                decided |= take
        return out

    def fit(self, feats: dict, labels: np.ndarray, rounds: int = 3) -> MarkerGate:
        """Fit thresholds on training features by coordinate ascent of macro-F1."""
        labels = np.asarray(labels, np.int64)
        if self.fallback not in self.class_names:
            # No debris class: unexplained events go to the most common training class of
            # those the gate's rules do not name (a lab's tdev, bare_nucleus, artefact), not
            # to a CTC that the gate's markers did not find.
            counts = np.bincount(labels, minlength=len(self.class_names))
            ungated = [k for k, n in enumerate(self.class_names)
                       if n not in ("ctc", "cluster", "wbc")]
            pool = ungated or list(range(len(self.class_names)))
            self.fallback = self.class_names[max(pool, key=lambda k: counts[k])]
        markers, diameter = self._markers(feats), feats["diameter_um"]
        k = len(self.class_names)
        candidates = {role: np.unique(np.quantile(markers[role], np.linspace(0.02, 0.98, 41)))
                      for role in _ROLES if markers[role] is not None}
        if markers["epithelial"] is not None:
            candidates["bleed_ratio"] = np.linspace(0.0, 0.5, 26)
        if "cluster" in self.class_names:
            candidates["cluster_diameter_um"] = np.unique(
                np.quantile(diameter, np.linspace(0.5, 0.99, 25)))
        # Coordinate ascent moves one threshold at a time, so it cannot leave a plateau where
        # two must move together (DAPI and CK both unreachable): start from the better of the
        # current and the default thresholds.
        starts = [dict(self.thresholds), dict(DEFAULT_THRESHOLDS)]
        scores = [macro_f1(labels, self._decide(markers, diameter, t), k) for t in starts]
        best, best_score = starts[int(np.argmax(scores))], max(scores)
        for _ in range(rounds):
            improved = False
            for key, values in candidates.items():
                for value in values:
                    trial = {**best, key: float(value)}
                    score = macro_f1(labels, self._decide(markers, diameter, trial), k)
                    if score > best_score + 1e-12:
                        best, best_score, improved = trial, score, True
            if not improved:
                break
        self.thresholds = {key: float(v) for key, v in best.items()}
        return self

    def used_thresholds(self) -> dict:
        """The thresholds the gate reads for its panel and classes (a report's record): a
        marker the panel lacks, the cluster size without a cluster class, or CK's bleed
        without CK decide nothing, and listed they read as gates applied."""
        roles = set(self.panel.roles())
        return {key: value for key, value in self.thresholds.items()
                if key in roles or (key == "cluster_diameter_um" and
                                    "cluster" in self.class_names)
                or (key == "bleed_ratio" and "epithelial" in roles)}

    def predict(self, feats: dict) -> np.ndarray:
        """Class index per event, from the gate's thresholds on the marker means and diameter."""
        return self._decide(self._markers(feats), feats["diameter_um"], self.thresholds)

    def predict_proba(self, feats: dict) -> np.ndarray:
        """One-hot probabilities: a gate is certain (its AUCs are those of a single cut)."""
        return np.eye(len(self.class_names))[self.predict(feats)]


@dataclass
class FeatureClassifier:
    """Gradient-boosted trees on the per-channel intensity and shape features."""

    class_names: list[str]
    seed: int = 0
    max_iter: int = 200
    model: object = None
    columns: list[str] = field(default_factory=list)

    def fit(self, feats: dict, labels: np.ndarray) -> FeatureClassifier:
        """Fit the trees on the features of labelled events; returns the classifier."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        x, self.columns = feature_matrix(feats)
        labels = np.asarray(labels, np.int64)
        # sklearn's leaves hold 20 events at least: under 40 a tree cannot split, and the
        # classifier called every crop one class (a lab's 24 crops: "CNN +0.90" over nothing).
        # A leaf of a fortieth of the events, 20 from 800 on as before, lets a few fit.
        leaf = int(np.clip(len(labels) // 40, 1, 20))
        self.model = HistGradientBoostingClassifier(max_iter=self.max_iter, learning_rate=0.1,
                                                    min_samples_leaf=leaf,
                                                    early_stopping=False, random_state=self.seed)
        self.model.fit(x, labels)
        return self

    def predict_proba(self, feats: dict) -> np.ndarray:
        """Class probabilities (N, K) in ``class_names`` order; classes absent in training get 0."""
        x, columns = feature_matrix(feats)
        if columns != self.columns:
            raise ValueError("features differ from those the classifier was fitted on")
        seen = self.model.predict_proba(x)
        # Classes absent from the training set get probability 0.
        out = np.zeros((x.shape[0], len(self.class_names)))
        out[:, self.model.classes_] = seen
        return out

    def predict(self, feats: dict) -> np.ndarray:
        """Most probable class index per event."""
        return self.predict_proba(feats).argmax(axis=1)


def fit_baselines(crops: np.ndarray, labels: np.ndarray, panel: Panel,
                  class_names: list[str], seed: int = 0) -> dict:
    """Fit both baselines on training crops (raw counts); returns {name: fitted baseline}."""
    feats = crop_features(crops, panel)
    return {"marker_gate": MarkerGate(panel, list(class_names)).fit(feats, labels),
            "feature_classifier": FeatureClassifier(list(class_names), seed).fit(feats, labels)}


def baseline_probabilities(baselines: dict, crops: np.ndarray, panel: Panel) -> dict:
    """{baseline name: (N, K) probabilities} on crops, features computed once."""
    feats = crop_features(crops, panel)
    return {name: b.predict_proba(feats) for name, b in baselines.items()}
