"""ctcnet's calls of crops held in memory: what ``ctcnet predict`` on a crop folder writes to
``predictions.csv`` (the network, its markers taking part, the decision rule at the set's
prior, the marker guard's flags and the review list), for a numpy array of crops, with no
file read or written (:func:`call_crops`).

The crops are a crop folder's once it is read: (N, C, S, S) counts at the model's crop size
and pixel size, in its channel order (``ctcnet.load_crops`` brings a folder there). The
reading's part, the network's and the markers' are the crop folder's own code
(:func:`~ctcnet.inference.crop_sets.first_pass`,
:func:`~ctcnet.inference.crop_sets.classify_chunks`,
:func:`~ctcnet.inference.crop_sets.crop_set_calls`), so the two give the same calls.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ctcnet.detect.crop_checks import past_stated_top
from ctcnet.detect.crop_dataset import CHUNK_CROPS
from ctcnet.errors import InputError
from ctcnet.inference.backend_registry import checked_backend
from ctcnet.inference.crop_sets import classify_chunks, crop_set_calls, first_pass
from ctcnet.inference.guard import RULES
from ctcnet.inference.options import spec_for_crop_set, spec_read_as
from ctcnet.inference.spillover import leak_check
from ctcnet.nn.crop_input import checked_crops

log = logging.getLogger(__name__)

# The calls' columns of names (a class, the guard's flags, a cluster's partner).
TEXT_COLUMNS = ("sample_id", "model_class", "class", "guard", "cluster_partner")


def call_crops(crops, backend=None, *, sample_ids=None, prior: str | None = None,
               exported: bool | None = None, marker_calls: bool = True,
               compensate: bool | None = None, panel=None) -> pd.DataFrame:
    """The calls of ``crops`` as ``ctcnet predict`` makes a crop folder's: one row a crop
    (``crop``, its row in ``crops``; ``sample_id``), then the columns of ``predictions.csv``
    after ``label`` (``model_class``, ``class``, ``p_<class>``, ``confidence``, ``review``,
    ``guard``, the markers' readings...).

    Parameters
    ----------
    crops : array (N, C, S, S)
        Raw counts (uint8, uint16 or float32) at the model's ``crop_size`` and
        ``pixel_size_um``, channels in ``backend.spec.panel.names``' order.
    backend : Backend, optional
        The model (:func:`ctcnet.load_backend`; default: the shipped default model).
    sample_ids : sequence of str, optional
        Each crop's sample: the marker guard compares a crop's DNA with its own sample's
        leukocytes, and the leak of CK into the other channels is a sample's (default: one
        sample).
    prior : str, optional
        ``balanced`` (default: a crop set is not at a cartridge's prevalence) or ``cartridge``,
        as ``--prior``.
    exported : bool, optional
        Whether the crops are display exports (8-bit composites, each plane stretched by a
        viewer), whose leaks and CD45 line the guard reads otherwise (default: as the model
        was trained, ``spec.reads_exports``).
    marker_calls : bool
        The markers take part in the call (False, as ``--network-calls-only``: the
        network's calls, the markers only flagging).
    compensate : bool, optional
        Take each sample's measured spillover off before the network reads it (default: as
        the model was trained), as ``--compensate``.
    panel : Panel, optional
        The crops' own panel (``index.panel`` of :func:`ctcnet.read_crop_index`, or
        :func:`ctcnet.load_panel` of their panel.json): the value ranges it states, where
        they reach higher than the model's (counts stored x16 in 16-bit files, stated
        0-65535), are those the guard reads saturation by, as predict reads a folder's.
        Without it, crops past the model's range are said to need it.
    """
    if backend is None:
        from ctcnet.inference.backends import load_backend

        backend = load_backend()
    spec, _ = spec_for_crop_set(checked_backend(backend).spec, prior)
    if panel is not None:  # (where pixels saturate: the crops' range, not the model's)
        spec = spec_read_as(spec, panel, wider_only=True)
    crops = checked_crops(crops, spec.panel.names, spec.crop_size)
    if panel is None:
        _say_past_range(crops, spec.panel)
    n = len(crops)
    # (one text: every crop's sample, not a sample a character)
    given = ["sample"] * n if sample_ids is None else [sample_ids] * n \
        if isinstance(sample_ids, str) else list(sample_ids)
    if len(given) != n:
        raise InputError(f"sample_ids names {len(given)} crops, crops holds {n}")
    # A gap in a table's column (None, NaN) read as a sample named "None" or "nan" of its own.
    gaps = [i for i, s in enumerate(given) if pd.api.types.is_scalar(s) and pd.isna(s)]
    if gaps:
        raise InputError(f"sample_ids has no sample for {len(gaps)} crop(s) (the first: crop "
                         f"{gaps[0]}, {given[gaps[0]]!r}): name each crop's sample")
    samples = np.asarray(given).astype(str)
    display = spec.reads_exports if exported is None else bool(exported)
    rules = RULES.for_crops(display)

    def chunks():  # float32 a chunk at a time, as a folder's crops are read
        return ((start, np.asarray(crops[start:start + CHUNK_CROPS], np.float32))
                for start in range(0, n, CHUNK_CROPS))

    spec, leaks, compensated = first_pass(chunks(), samples, spec, compensate, n)
    outputs, measured, _ = classify_chunks(chunks(), samples, spec, backend.predict_proba,
                                           leaks.leaks() if compensated else None, rules,
                                           display=display)
    leak_check(leaks.pooled(), spec.panel, rules, "crops")  # (warns of a leak past the guard's)
    table = pd.DataFrame({"crop": np.arange(n), "sample_id": samples})
    table = crop_set_calls(table, crops, outputs, spec, measured, marker_calls, rules)
    # Text columns as text whatever the rows (no rows, calls made as numpy names): a notebook's
    # batches concatenated or checked against a schema see one dtype, as events.parquet has.
    return table.astype({c: "str" for c in TEXT_COLUMNS if c in table})


def _say_past_range(crops: np.ndarray, panel) -> None:
    """Warn where ``crops`` hold values above ``panel``'s value ranges (the model's): read
    so, the guard takes those pixels as saturated and the markers as unreadable (12-bit
    counts stored x16: 11 of 15 CTCs called ``wbc``, their CD45 over CK unread), where a
    crop folder stating its range is read right."""
    if not len(crops):
        return
    tops = np.asarray([c.value_range[1] for c in panel.channels], np.float64)
    highest = np.nanmax(crops, axis=(0, 2, 3)).astype(np.float64)
    # (as a crop folder's reading judges them: a pixel at the top, resampled, is not past it)
    past = np.flatnonzero(past_stated_top(highest, tops)).tolist()
    if past:
        log.warning("the crops hold values above the model's value range (%s): the marker "
                    "guard reads such pixels as saturated; give call_crops their panel "
                    "(panel=index.panel, or ctcnet.load_panel of a panel.json stating their "
                    "value_range), as predict reads a crop folder's",
                    ", ".join(f"{panel.names[i]} up to {highest[i]:g}, the model's "
                              f"{tops[i]:g}" for i in past[:3]))
