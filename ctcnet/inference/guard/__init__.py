"""Marker-consistency guard: calls whose measured markers contradict the class definition, and
events unlike the training data, go to a person (pure numpy; no torch, so it runs beside the
ONNX runtime too).

The package has one module per job:

* :mod:`.rules`: :class:`GuardRules`, the one frozen record of the guard's thresholds (the
  default :data:`RULES`), and the names of the flags, calls and panel roles;
* :mod:`.measurements`: the per-crop marker measurements (:func:`measure`,
  :func:`measure_for_guard`, made before the calls, :func:`measure_for_guard_start`, the same
  with what they started from; :class:`ExclusionReader`, the costly leak fits, the count of
  nuclei and the copy tests at a frame's registration, for the events whose flags read them);
* :mod:`.leaks`: other dyes' leaks into a marker's channel, fitted and taken off;
* :mod:`.nuclei`: how many nuclei an object's DAPI mask holds (a cluster's second cell);
* :mod:`.masks`: the per-crop mask operations the measurements use (the disk they read,
  connected parts within each crop, a mask's rim and its growth);
* :mod:`.reference`: the leukocytes of the frame as the DNA and focus reference (medians
  over a frame's or sample's events, as is its registration), and the training events as the
  out-of-distribution reference (:func:`fit_reference`);
* :mod:`.flags`: the flags as a table of rules (:data:`FLAG_RULES`) and
  :func:`review_flags`, the one entry point for predict, the model card and the robustness
  matrix;
* :mod:`.calls`: what the flags do to the calls and counts (:func:`marker_calls`,
  :func:`crop_set_calls`, :func:`crop_set_measurements`, :func:`crop_set_review`,
  :func:`markers_overrule`, :func:`markers_call`, :func:`guard_events`, :func:`counted`,
  :func:`guard_summary`).
"""

from ctcnet.inference.guard.calls import (
    cluster_partners,
    counted,
    crop_set_calls,
    crop_set_measurements,
    crop_set_review,
    guard_events,
    guard_summary,
    guarded_review,
    marker_calls,
    markers_call,
    markers_overrule,
)
from ctcnet.inference.guard.flags import (
    FLAG_RULES,
    TABLE_MEASURES,
    Evidence,
    FlagRule,
    review_flags,
)
from ctcnet.inference.guard.leaks import box_least_squares
from ctcnet.inference.guard.masks import disk_core
from ctcnet.inference.guard.measurements import (
    ON_DEMAND_COLUMNS,
    ExclusionReader,
    measure,
    measure_for_guard,
    measure_for_guard_start,
)
from ctcnet.inference.guard.reference import fit_reference, leukocyte_reference, ood_distance
from ctcnet.inference.guard.rules import (
    CLUSTER_PARTNER,
    CTC_DYE_ROLES,
    DOUBTED_CALLS,
    EDGE_LEVELS,
    FLAGS,
    GUARDED_CLASSES,
    MARKER_FLAGS,
    MARKERS_CTC,
    MARKERS_VOUCH,
    MISSED_CTC_CALLS,
    REFERENCE_CLASS,
    RULES,
    GuardRules,
    leak_allowance,
)
from ctcnet.io.marker_names import EXCLUSION_ROLES

__all__ = [
    "CLUSTER_PARTNER", "CTC_DYE_ROLES", "DOUBTED_CALLS", "EDGE_LEVELS", "EXCLUSION_ROLES", "FLAGS",
    "FLAG_RULES", "GUARDED_CLASSES", "MARKERS_CTC", "MARKERS_VOUCH", "MARKER_FLAGS",
    "MISSED_CTC_CALLS",
    "ON_DEMAND_COLUMNS", "REFERENCE_CLASS", "RULES", "TABLE_MEASURES", "Evidence",
    "ExclusionReader", "FlagRule",
    "GuardRules",
    "box_least_squares", "cluster_partners", "counted", "crop_set_calls",
    "crop_set_measurements", "crop_set_review",
    "disk_core",
    "fit_reference", "guard_events", "guard_summary", "guarded_review", "leak_allowance",
    "leukocyte_reference",
    "marker_calls", "markers_call", "markers_overrule", "measure", "measure_for_guard",
    "measure_for_guard_start",
    "ood_distance", "review_flags",
]
